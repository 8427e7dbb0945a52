//! vigil's models (layer 3 of the design): declarative networks run and trained by burn on its
//! `flex` CPU backend, ONNX graphs run by tract, registered Rust functions; preprocess and
//! postprocess pipelines as data; the training loop.
#![warn(missing_docs)]

mod features;
mod model;
mod net;
mod onnx_check;
pub mod pipeline;
pub mod spec;
pub mod train;
mod trainer;

pub use model::{
    default_threads, panic_message, register_function, Model, ModelFunction, ModelKind,
    ModelRecord, PipelineModel, DEFAULT_BATCH_SIZE,
};
pub use pipeline::{mnist_preprocess, Postprocess, Preprocess};
pub use spec::{lenet5, Layer, NetworkSpec};
pub use train::{
    accuracy as accuracy_of, fit, register_metric, DataSource, FitReport, InMemory, Metric,
    Objective, Optimizer, Progress, TrainerConfig, Validation,
};

use vigil_core::{Error, Result};

/// Model identifiers: ASCII letters, digits, `_` and `-` (`validate_identifier`), since they become
/// the last segment of `_outputs.<key>.<model>`.
pub(crate) fn check_identifier(identifier: &str) -> Result<()> {
    vigil_core::names::validate_identifier(identifier).map_err(|e| match e {
        Error::InvalidName { name, reason, .. } => Error::InvalidName {
            kind: "model",
            name,
            reason,
        },
        other => other,
    })
}
