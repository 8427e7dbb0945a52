//! A [`NetworkSpec`] as a burn module: the weights in three lists (convolutions, batch norms,
//! linear layers, plus dropouts), the order of operations in a plan. Weights save and load as
//! safetensors; PyTorch state dicts map onto it by layer name.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AvgPool2dConfig, MaxPool2dConfig};
use burn::nn::{
    BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Linear, LinearConfig, PaddingConfig2d,
};
use burn::prelude::*;
use burn::store::{ModuleSnapshot, PytorchStore, SafetensorsStore};
use vigil_core::{Error, Result};

use crate::spec::{Layer, NetworkSpec};

#[derive(Debug, Clone)]
enum Step {
    Conv(usize),
    Norm(usize),
    Linear(usize),
    Dropout(usize),
    Relu,
    MaxPool(usize, usize),
    AvgPool(usize, usize),
    Flatten,
    Softmax,
}

/// The burn module of a declarative network.
#[derive(Module, Debug)]
pub struct Net {
    convs: Vec<Conv2d>,
    norms: Vec<BatchNorm>,
    linears: Vec<Linear>,
    dropouts: Vec<Dropout>,
    #[module(skip)]
    plan: Vec<Step>,
}

enum Activation {
    Image(Tensor<4>),
    Flat(Tensor<2>),
}

impl Net {
    /// A freshly initialised network on `device` (seed the device first for reproducibility).
    pub fn new(spec: &NetworkSpec, device: &Device) -> Net {
        let mut net = Net {
            convs: Vec::new(),
            norms: Vec::new(),
            linears: Vec::new(),
            dropouts: Vec::new(),
            plan: Vec::new(),
        };
        for layer in &spec.layers {
            let step = match layer {
                Layer::Conv2d {
                    in_channels,
                    out_channels,
                    kernel,
                    stride,
                    padding,
                    ..
                } => {
                    let p = *padding;
                    net.convs.push(
                        Conv2dConfig::new([*in_channels, *out_channels], [*kernel, *kernel])
                            .with_stride([*stride, *stride])
                            .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
                            .init(device),
                    );
                    Step::Conv(net.convs.len() - 1)
                }
                Layer::BatchNorm2d { features, .. } => {
                    net.norms.push(BatchNormConfig::new(*features).init(device));
                    Step::Norm(net.norms.len() - 1)
                }
                Layer::Linear {
                    in_features,
                    out_features,
                    ..
                } => {
                    net.linears
                        .push(LinearConfig::new(*in_features, *out_features).init(device));
                    Step::Linear(net.linears.len() - 1)
                }
                Layer::Dropout { p } => {
                    net.dropouts.push(DropoutConfig::new(*p).init());
                    Step::Dropout(net.dropouts.len() - 1)
                }
                Layer::Relu => Step::Relu,
                Layer::MaxPool2d { kernel, stride } => {
                    Step::MaxPool(*kernel, stride.unwrap_or(*kernel))
                }
                Layer::AvgPool2d { kernel, stride } => {
                    Step::AvgPool(*kernel, stride.unwrap_or(*kernel))
                }
                Layer::Flatten => Step::Flatten,
                Layer::Softmax => Step::Softmax,
            };
            net.plan.push(step);
        }
        net
    }

    /// Runs the network on `[batch, channels, height, width]` inputs; returns `[batch, outputs]`.
    /// The spec was checked, so every step meets the rank it expects.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let mut act = Activation::Image(x);
        for step in &self.plan {
            act = match (step, act) {
                (Step::Conv(i), Activation::Image(x)) => {
                    Activation::Image(self.convs[*i].forward(x))
                }
                (Step::Norm(i), Activation::Image(x)) => {
                    Activation::Image(self.norms[*i].forward(x))
                }
                (Step::Linear(i), Activation::Flat(x)) => {
                    Activation::Flat(self.linears[*i].forward(x))
                }
                (Step::Dropout(i), Activation::Image(x)) => {
                    Activation::Image(self.dropouts[*i].forward(x))
                }
                (Step::Dropout(i), Activation::Flat(x)) => {
                    Activation::Flat(self.dropouts[*i].forward(x))
                }
                (Step::Relu, Activation::Image(x)) => {
                    Activation::Image(burn::tensor::activation::relu(x))
                }
                (Step::Relu, Activation::Flat(x)) => {
                    Activation::Flat(burn::tensor::activation::relu(x))
                }
                (Step::MaxPool(k, s), Activation::Image(x)) => Activation::Image(
                    MaxPool2dConfig::new([*k, *k])
                        .with_strides([*s, *s])
                        .init()
                        .forward(x),
                ),
                (Step::AvgPool(k, s), Activation::Image(x)) => Activation::Image(
                    AvgPool2dConfig::new([*k, *k])
                        .with_strides([*s, *s])
                        .init()
                        .forward(x),
                ),
                (Step::Flatten, Activation::Image(x)) => Activation::Flat(x.flatten(1, 3)),
                (Step::Flatten, flat @ Activation::Flat(_)) => flat,
                (Step::Softmax, Activation::Flat(x)) => {
                    Activation::Flat(burn::tensor::activation::softmax(x, 1))
                }
                (Step::Softmax, Activation::Image(x)) => {
                    Activation::Image(burn::tensor::activation::softmax(x, 1))
                }
                (_, Activation::Image(x)) => Activation::Image(x),
                (_, Activation::Flat(x)) => Activation::Flat(x),
            };
        }
        match act {
            Activation::Flat(x) => x,
            Activation::Image(x) => x.flatten(1, 3),
        }
    }

    /// The weights as safetensors bytes.
    pub fn to_safetensors(&self, model: &str) -> Result<Vec<u8>> {
        let mut store = SafetensorsStore::from_bytes(None);
        self.save_into(&mut store)
            .map_err(|e| Error::model(model, format!("saving weights: {e}")))?;
        store
            .get_bytes()
            .map_err(|e| Error::model(model, format!("saving weights: {e}")))
    }

    /// Loads weights saved by [`Net::to_safetensors`]; every tensor must be present and fit.
    pub fn load_safetensors(&mut self, bytes: Vec<u8>, model: &str) -> Result<()> {
        let mut store = SafetensorsStore::from_bytes(Some(bytes));
        let result = self
            .load_from(&mut store)
            .map_err(|e| Error::model(model, format!("loading weights: {e}")))?;
        check_applied(&result, model)
    }

    /// Loads a PyTorch `state_dict` (`.pth`) whose keys are the spec's layer names
    /// (`conv1.weight`, `bn1.running_var`, `fc1.bias`, …).
    pub fn load_pytorch(
        &mut self,
        spec: &NetworkSpec,
        path: &std::path::Path,
        model: &str,
    ) -> Result<()> {
        let mut store = PytorchStore::from_file(path).allow_partial(true);
        let (mut convs, mut norms, mut linears) = (0, 0, 0);
        for layer in &spec.layers {
            let (name, target) = match layer {
                Layer::Conv2d { name, .. } => (name, format!("convs.{}", post_inc(&mut convs))),
                Layer::BatchNorm2d { name, .. } => {
                    (name, format!("norms.{}", post_inc(&mut norms)))
                }
                Layer::Linear { name, .. } => (name, format!("linears.{}", post_inc(&mut linears))),
                _ => continue,
            };
            // Layer names are checked to be [A-Za-z0-9_], so they need no regex escaping.
            store = store.with_key_remapping(format!(r"^{name}\."), format!("{target}."));
        }
        let result = self
            .load_from(&mut store)
            .map_err(|e| Error::model(model, format!("loading {}: {e}", path.display())))?;
        check_applied(&result, model)
    }
}

fn post_inc(n: &mut usize) -> usize {
    *n += 1;
    *n - 1
}

fn check_applied(result: &burn::store::ApplyResult, model: &str) -> Result<()> {
    if !result.errors.is_empty() {
        return Err(Error::model(
            model,
            format!("weights do not fit the network: {:?}", result.errors),
        ));
    }
    if !result.missing.is_empty() {
        let missing: Vec<&str> = result.missing.iter().map(|(p, _)| p.as_str()).collect();
        return Err(Error::model(
            model,
            format!("weights missing for {}", missing.join(", ")),
        ));
    }
    Ok(())
}

/// A batch of `n` preprocessed inputs of `shape` `[c, h, w]` as a tensor on `device`.
pub fn batch_tensor(data: Vec<f32>, n: usize, shape: [usize; 3], device: &Device) -> Tensor<4> {
    Tensor::<4>::from_data(
        TensorData::new(data, [n, shape[0], shape[1], shape[2]]),
        device,
    )
}
