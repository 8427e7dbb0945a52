//! Declarative networks: layers as data, stored as JSON, with a builder that reads like the
//! notebook's LeNet5 and infers every layer's input size.

use serde::{Deserialize, Serialize};
use vigil_core::{Error, Result};

/// One layer. Layers with parameters carry a `name`, which is also the prefix of their weights
/// in imported PyTorch state dicts (`conv1.weight`, `bn1.running_mean`, …).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Layer {
    /// 2-D convolution over `[channels, height, width]`.
    Conv2d {
        /// Weight-name prefix.
        name: String,
        /// Input channels.
        in_channels: usize,
        /// Output channels.
        out_channels: usize,
        /// Square kernel size.
        kernel: usize,
        /// Stride (default 1).
        #[serde(default = "one")]
        stride: usize,
        /// Zero padding on every side (default 0).
        #[serde(default)]
        padding: usize,
    },
    /// Batch normalisation over channels.
    BatchNorm2d {
        /// Weight-name prefix.
        name: String,
        /// Channels.
        features: usize,
    },
    /// Fully connected layer over a flat vector.
    Linear {
        /// Weight-name prefix.
        name: String,
        /// Input size.
        in_features: usize,
        /// Output size.
        out_features: usize,
    },
    /// max(x, 0).
    Relu,
    /// Max pooling with a square window.
    MaxPool2d {
        /// Window size.
        kernel: usize,
        /// Stride (default: the window size).
        stride: Option<usize>,
    },
    /// Average pooling with a square window.
    AvgPool2d {
        /// Window size.
        kernel: usize,
        /// Stride (default: the window size).
        stride: Option<usize>,
    },
    /// `[c, h, w]` to `[c*h*w]`.
    Flatten,
    /// Zeroes activations with probability `p` while training; identity otherwise.
    Dropout {
        /// Drop probability.
        p: f64,
    },
    /// Softmax over the features.
    Softmax,
}

fn one() -> usize {
    1
}

/// A network: its input shape `[channels, height, width]` and its layers in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkSpec {
    /// Input shape `[channels, height, width]`.
    pub input: [usize; 3],
    /// The layers.
    pub layers: Vec<Layer>,
}

/// Shape of the activations between layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `[channels, height, width]`.
    Image(usize, usize, usize),
    /// A flat vector.
    Flat(usize),
}

impl NetworkSpec {
    /// Starts a network taking `[channels, height, width]` inputs.
    pub fn builder(input: [usize; 3]) -> NetworkBuilder {
        NetworkBuilder {
            spec: NetworkSpec {
                input,
                layers: Vec::new(),
            },
        }
    }

    /// Checks that every layer fits the shape coming into it, that names are unique, and
    /// that the network's sizes are sane (at most [`MAX_PARAMETERS`] weights and
    /// [`MAX_ACTIVATIONS`] values per input at any layer, every product computed without
    /// overflow), before anything is allocated; returns the output shape. A record from the
    /// database is checked like one built in code, so a stored spec asking for absurd sizes
    /// is an error, not an allocation that takes the process down.
    pub fn check(&self, model: &str) -> Result<Shape> {
        let fail = |i: usize, why: String| Err(Error::model(model, format!("layer #{i}: {why}")));
        let [c, h, w] = self.input;
        let too_big = |what: &str| {
            Error::model(
                model,
                format!("{what} exceeds vigil's limits ({MAX_PARAMETERS} weights, {MAX_ACTIVATIONS} values per input)"),
            )
        };
        let elements = |dims: &[usize]| -> Option<usize> {
            dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
        };
        match elements(&[c, h, w]) {
            Some(n) if n <= MAX_ACTIVATIONS => {}
            _ => return Err(too_big("the input shape")),
        }
        let mut parameters: usize = 0;
        for (i, layer) in self.layers.iter().enumerate() {
            let weights = match layer {
                Layer::Conv2d {
                    in_channels,
                    out_channels,
                    kernel,
                    ..
                } => elements(&[*out_channels, *in_channels, *kernel, *kernel])
                    .and_then(|n| n.checked_add(*out_channels)),
                Layer::BatchNorm2d { features, .. } => features.checked_mul(4),
                Layer::Linear {
                    in_features,
                    out_features,
                    ..
                } => elements(&[*in_features, *out_features])
                    .and_then(|n| n.checked_add(*out_features)),
                _ => Some(0),
            };
            parameters = match weights.and_then(|n| parameters.checked_add(n)) {
                Some(n) if n <= MAX_PARAMETERS => n,
                _ => return Err(too_big(&format!("layer #{i}'s weights"))),
            };
            if let Layer::Conv2d {
                padding, kernel, ..
            } = layer
            {
                let fits = *padding <= MAX_ACTIVATIONS && *kernel <= MAX_ACTIVATIONS;
                if !fits {
                    return Err(too_big(&format!("layer #{i}'s padding or kernel")));
                }
            }
        }
        let mut shape = Shape::Image(c, h, w);
        let mut names = std::collections::HashSet::new();
        for (i, layer) in self.layers.iter().enumerate() {
            if let Some(name) = layer.name() {
                if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return fail(
                        i,
                        format!("layer name {name:?} must be ASCII letters, digits or `_`"),
                    );
                }
                if !names.insert(name.to_string()) {
                    return fail(i, format!("layer name `{name}` is used twice"));
                }
            }
            shape = match (layer, shape) {
                (
                    Layer::Conv2d {
                        in_channels,
                        out_channels,
                        kernel,
                        stride,
                        padding,
                        ..
                    },
                    Shape::Image(c, h, w),
                ) => {
                    if *in_channels != c {
                        return fail(
                            i,
                            format!("conv2d expects {in_channels} channels, gets {c}"),
                        );
                    }
                    if *stride == 0
                        || *kernel == 0
                        || h + 2 * padding < *kernel
                        || w + 2 * padding < *kernel
                    {
                        return fail(i, format!("conv2d kernel {kernel} does not fit {h}x{w} (padding {padding}, stride {stride})"));
                    }
                    Shape::Image(
                        *out_channels,
                        (h + 2 * padding - kernel) / stride + 1,
                        (w + 2 * padding - kernel) / stride + 1,
                    )
                }
                (Layer::BatchNorm2d { features, .. }, Shape::Image(c, ..)) if *features != c => {
                    return fail(i, format!("batch_norm2d over {features} channels gets {c}"))
                }
                (Layer::BatchNorm2d { .. }, s @ Shape::Image(..)) => s,
                (
                    Layer::MaxPool2d { kernel, stride } | Layer::AvgPool2d { kernel, stride },
                    Shape::Image(c, h, w),
                ) => {
                    let s = stride.unwrap_or(*kernel);
                    if *kernel == 0 || s == 0 || h < *kernel || w < *kernel {
                        return fail(i, format!("pool window {kernel} does not fit {h}x{w}"));
                    }
                    Shape::Image(c, (h - kernel) / s + 1, (w - kernel) / s + 1)
                }
                (Layer::Flatten, Shape::Image(c, h, w)) => Shape::Flat(c * h * w),
                (Layer::Flatten, s @ Shape::Flat(_)) => s,
                (
                    Layer::Linear {
                        in_features,
                        out_features,
                        ..
                    },
                    Shape::Flat(n),
                ) => {
                    if *in_features != n {
                        return fail(
                            i,
                            format!("linear expects {in_features} features, gets {n}"),
                        );
                    }
                    Shape::Flat(*out_features)
                }
                (Layer::Relu | Layer::Softmax, s) => s,
                (Layer::Dropout { p }, s) if (0.0..1.0).contains(p) => s,
                (Layer::Dropout { p }, _) => {
                    return fail(i, format!("dropout probability {p} outside [0, 1)"))
                }
                (layer, Shape::Flat(_)) => {
                    return fail(
                        i,
                        format!(
                            "{} needs an image-shaped input; flatten comes after it",
                            layer.kind()
                        ),
                    )
                }
                (layer, Shape::Image(..)) => {
                    return fail(
                        i,
                        format!("{} needs a flat input; add flatten before it", layer.kind()),
                    )
                }
            };
            let size = match shape {
                Shape::Image(c, h, w) => elements(&[c, h, w]),
                Shape::Flat(n) => Some(n),
            };
            if size.is_none_or(|n| n > MAX_ACTIVATIONS) {
                return Err(too_big(&format!("layer #{i}'s output")));
            }
        }
        Ok(shape)
    }
}

/// The most weights a network may have (400 MB of f32).
pub const MAX_PARAMETERS: usize = 100_000_000;
/// The most values one input may have at any layer.
pub const MAX_ACTIVATIONS: usize = 64_000_000;

impl Layer {
    /// The layer's name, for layers with weights.
    pub fn name(&self) -> Option<&str> {
        match self {
            Layer::Conv2d { name, .. }
            | Layer::BatchNorm2d { name, .. }
            | Layer::Linear { name, .. } => Some(name),
            _ => None,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Layer::Conv2d { .. } => "conv2d",
            Layer::BatchNorm2d { .. } => "batch_norm2d",
            Layer::Linear { .. } => "linear",
            Layer::Relu => "relu",
            Layer::MaxPool2d { .. } => "max_pool2d",
            Layer::AvgPool2d { .. } => "avg_pool2d",
            Layer::Flatten => "flatten",
            Layer::Dropout { .. } => "dropout",
            Layer::Softmax => "softmax",
        }
    }
}

/// Builds a [`NetworkSpec`] layer by layer; input sizes are inferred from the previous layer.
#[derive(Debug, Clone)]
pub struct NetworkBuilder {
    spec: NetworkSpec,
}

impl NetworkBuilder {
    fn current(&self) -> Shape {
        // Shapes are re-checked in `build`; here a mismatch only needs some value.
        let [c, h, w] = self.spec.input;
        let mut probe = self.spec.clone();
        let mut shape = Shape::Image(c, h, w);
        while !probe.layers.is_empty() {
            if let Ok(s) = probe.check("") {
                shape = s;
                break;
            }
            probe.layers.pop();
        }
        shape
    }

    fn push(mut self, layer: Layer) -> Self {
        self.spec.layers.push(layer);
        self
    }

    /// A convolution with `out_channels` filters of `kernel`x`kernel`, stride 1, no padding.
    pub fn conv2d(self, name: &str, out_channels: usize, kernel: usize) -> Self {
        let in_channels = match self.current() {
            Shape::Image(c, ..) => c,
            Shape::Flat(_) => 0,
        };
        self.push(Layer::Conv2d {
            name: name.into(),
            in_channels,
            out_channels,
            kernel,
            stride: 1,
            padding: 0,
        })
    }

    /// Batch normalisation over the current channels.
    pub fn batch_norm2d(self, name: &str) -> Self {
        let features = match self.current() {
            Shape::Image(c, ..) => c,
            Shape::Flat(_) => 0,
        };
        self.push(Layer::BatchNorm2d {
            name: name.into(),
            features,
        })
    }

    /// A fully connected layer to `out_features`.
    pub fn linear(self, name: &str, out_features: usize) -> Self {
        let in_features = match self.current() {
            Shape::Flat(n) => n,
            Shape::Image(..) => 0,
        };
        self.push(Layer::Linear {
            name: name.into(),
            in_features,
            out_features,
        })
    }

    /// ReLU.
    pub fn relu(self) -> Self {
        self.push(Layer::Relu)
    }

    /// Max pooling over `kernel`x`kernel` windows, stride = kernel.
    pub fn max_pool2d(self, kernel: usize) -> Self {
        self.push(Layer::MaxPool2d {
            kernel,
            stride: None,
        })
    }

    /// Average pooling over `kernel`x`kernel` windows, stride = kernel.
    pub fn avg_pool2d(self, kernel: usize) -> Self {
        self.push(Layer::AvgPool2d {
            kernel,
            stride: None,
        })
    }

    /// Flatten to a vector.
    pub fn flatten(self) -> Self {
        self.push(Layer::Flatten)
    }

    /// Dropout with probability `p` (training only).
    pub fn dropout(self, p: f64) -> Self {
        self.push(Layer::Dropout { p })
    }

    /// Softmax over the features.
    pub fn softmax(self) -> Self {
        self.push(Layer::Softmax)
    }

    /// The checked network.
    pub fn build(self) -> Result<NetworkSpec> {
        self.spec.check("network")?;
        Ok(self.spec)
    }
}

/// The LeNet5 of the reference notebook (conv 6, BN, ReLU, pool; conv 16, BN, ReLU, pool;
/// linear 120, 84, `classes`) on 32x32 grayscale inputs, with PyTorch's layer names.
pub fn lenet5(classes: usize) -> NetworkSpec {
    NetworkSpec::builder([1, 32, 32])
        .conv2d("conv1", 6, 5)
        .batch_norm2d("bn1")
        .relu()
        .max_pool2d(2)
        .conv2d("conv2", 16, 5)
        .batch_norm2d("bn2")
        .relu()
        .max_pool2d(2)
        .flatten()
        .linear("fc1", 120)
        .relu()
        .linear("fc2", 84)
        .relu()
        .linear("fc3", classes)
        .build()
        // A fixed, valid architecture: build cannot fail.
        .expect("LeNet5 is a valid network")
}
