//! A network's inner layer as a model of its own: the features a trained classifier computes
//! before it classifies (LeNet5's 84 values before `fc3`), for vector search.

use vigil_core::{Error, Result};

use crate::model::{Engine, ModelKind, PipelineModel};
use crate::pipeline::Postprocess;
use crate::spec::{Layer, NetworkSpec};

impl PipelineModel {
    /// A model that runs this declarative network up to and including the layer named
    /// `layer` (and the ReLU or dropout right after it, if any), with the same weights,
    /// preprocessing, batch size and threads, and outputs that layer's activations as an
    /// `f32` tensor: a vector per input.
    ///
    /// `lenet.features("lenet5-features", "fc2")` gives LeNet5's 84-wide features. The
    /// weights are copied, so training the source afterwards does not change the features
    /// model: make it again from the trained one.
    pub fn features(&self, identifier: &str, layer: &str) -> Result<PipelineModel> {
        crate::check_identifier(identifier)?;
        let source = &self.record.identifier;
        let (Engine::Network { net, .. }, ModelKind::Network { spec, .. }) =
            (&self.engine, &self.record.kind)
        else {
            return Err(Error::model(
                source,
                "only a declarative network can expose an inner layer",
            ));
        };
        let Some(at) = spec.layers.iter().position(|l| l.name() == Some(layer)) else {
            let names: Vec<&str> = spec.layers.iter().filter_map(Layer::name).collect();
            return Err(Error::model(
                source,
                format!(
                    "no layer named `{layer}` (its layers: {})",
                    names.join(", ")
                ),
            ));
        };
        let mut end = at + 1;
        while matches!(
            spec.layers.get(end),
            Some(Layer::Relu | Layer::Dropout { .. })
        ) {
            end += 1;
        }
        let cut = NetworkSpec {
            input: spec.input,
            layers: spec.layers[..end].to_vec(),
        };
        let weights = net.to_safetensors(source)?;
        let mut model = PipelineModel::network(identifier, cut, 0)?;
        if let Engine::Network { net, .. } = &mut model.engine {
            // The source's weights past the cut are left unused.
            net.load_safetensors(weights, identifier)?;
        }
        model
            .preprocess(self.record.preprocess.clone())
            .postprocess(Postprocess::Identity)
            .batch_size(self.record.batch_size)
            .threads(self.record.threads)
    }
}
