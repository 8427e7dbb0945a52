//! Training (the notebook's `fit`): batches streamed from a [`DataSource`], an objective, an
//! optimizer, validation every N iterations with metrics per validation set, the best
//! checkpoint kept, early stopping. Deterministic given the seed.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock, RwLock};

use serde::{Deserialize, Serialize};
use vigil_core::{Error, Result, Value};

pub use crate::trainer::{fit, FitReport, Progress};

/// What training minimises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Objective {
    /// Cross-entropy of the outputs (logits) against integer class targets.
    CrossEntropy,
    /// Mean squared error against numeric or tensor targets.
    Mse,
}

/// How parameters are updated.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Optimizer {
    /// Adam (epsilon 1e-8, as PyTorch).
    Adam {
        /// Learning rate.
        learning_rate: f64,
        /// L2 penalty (0 for none).
        weight_decay: f32,
    },
    /// Plain stochastic gradient descent.
    Sgd {
        /// Learning rate.
        learning_rate: f64,
        /// L2 penalty (0 for none).
        weight_decay: f32,
    },
}

/// A trainer configuration: a component of its own in the registry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainerConfig {
    /// Its name.
    pub identifier: String,
    /// What is minimised.
    pub objective: Objective,
    /// How parameters move.
    pub optimizer: Optimizer,
    /// Documents per training step.
    pub batch_size: usize,
    /// Passes over the training data (unbounded when `None`; then `max_iterations` must be set).
    pub epochs: Option<u64>,
    /// Training steps at most.
    pub max_iterations: Option<u64>,
    /// Validate every this many steps (and at the end).
    pub validation_interval: u64,
    /// Seed of the initialisation-independent randomness (shuffling, dropout).
    pub seed: u64,
    /// Stop after this many validations without improvement of `best_by`.
    pub patience: Option<u32>,
    /// The metric key choosing the best checkpoint, e.g. `my_valid/acc`; default: the first
    /// validation set's first metric, else its objective.
    pub best_by: Option<String>,
}

impl TrainerConfig {
    /// Cross-entropy, Adam at 1e-3, batches of 64, one epoch, validation every 100 steps,
    /// seed 0, no early stopping.
    pub fn new(identifier: &str) -> Self {
        TrainerConfig {
            identifier: identifier.to_string(),
            objective: Objective::CrossEntropy,
            optimizer: Optimizer::Adam {
                learning_rate: 1e-3,
                weight_decay: 0.0,
            },
            batch_size: 64,
            epochs: Some(1),
            max_iterations: None,
            validation_interval: 100,
            seed: 0,
            patience: None,
            best_by: None,
        }
    }

    /// Objective. Default: cross-entropy.
    pub fn objective(mut self, o: Objective) -> Self {
        self.objective = o;
        self
    }

    /// Optimizer. Default: Adam, learning rate 1e-3, no weight decay.
    pub fn optimizer(mut self, o: Optimizer) -> Self {
        self.optimizer = o;
        self
    }

    /// Documents per step. Default: 64.
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = n.max(1);
        self
    }

    /// Passes over the data. Default: 1.
    pub fn epochs(mut self, n: u64) -> Self {
        self.epochs = Some(n);
        self
    }

    /// Steps at most. Default: no limit beyond the epochs.
    pub fn max_iterations(mut self, n: u64) -> Self {
        self.max_iterations = Some(n);
        self
    }

    /// Steps between validations. Default: 100.
    pub fn validation_interval(mut self, n: u64) -> Self {
        self.validation_interval = n.max(1);
        self
    }

    /// Seed. Default: 0.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Validations without improvement before stopping. Default: never stop early.
    pub fn patience(mut self, n: u32) -> Self {
        self.patience = Some(n);
        self
    }

    /// The metric key that picks the best checkpoint. Default: see [`TrainerConfig::best_by`].
    pub fn best_by(mut self, key: &str) -> Self {
        self.best_by = Some(key.to_string());
        self
    }
}

/// A metric over predictions and targets; `function` is `accuracy` (built in) or a name given
/// to [`register_metric`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metric {
    /// The key it is recorded under, e.g. `acc`.
    pub identifier: String,
    /// What computes it.
    pub function: String,
}

impl Metric {
    /// The fraction of predictions equal to their targets.
    pub fn accuracy(identifier: &str) -> Metric {
        Metric {
            identifier: identifier.into(),
            function: "accuracy".into(),
        }
    }
}

/// A metric function: predictions, targets -> a number (higher is better).
pub type MetricFunction = Arc<dyn Fn(&[Value], &[Value]) -> f64 + Send + Sync>;

fn metric_functions() -> &'static RwLock<BTreeMap<String, MetricFunction>> {
    static METRICS: OnceLock<RwLock<BTreeMap<String, MetricFunction>>> = OnceLock::new();
    METRICS.get_or_init(Default::default)
}

/// Registers a metric function under a name (in every process that trains with it).
pub fn register_metric(name: &str, f: MetricFunction) {
    metric_functions()
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .insert(name.into(), f);
}

fn same(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// Accuracy: predictions compared with the labels (never with themselves).
pub fn accuracy(predictions: &[Value], targets: &[Value]) -> f64 {
    if targets.is_empty() {
        return 0.0;
    }
    predictions
        .iter()
        .zip(targets)
        .filter(|(p, t)| same(p, t))
        .count() as f64
        / targets.len() as f64
}

pub(crate) fn metric_function(m: &Metric) -> Result<MetricFunction> {
    if m.function == "accuracy" {
        return Ok(Arc::new(accuracy));
    }
    metric_functions()
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(&m.function)
        .cloned()
        .ok_or_else(|| {
            Error::model(
                &m.identifier,
                format!("metric function `{}` is not registered", m.function),
            )
        })
}

/// Batches of `(inputs, targets)` for training or validation, streamed.
pub trait DataSource {
    /// The batches of one pass; `pass` seeds any shuffling so runs are reproducible.
    #[allow(clippy::type_complexity)]
    fn batches(
        &mut self,
        pass: u64,
        batch_size: usize,
    ) -> Result<Box<dyn Iterator<Item = Result<(Vec<Value>, Vec<Value>)>> + '_>>;
}

/// Data already in memory, in order (for tests and benchmarks).
#[derive(Debug, Clone, Default)]
pub struct InMemory {
    /// Inputs.
    pub inputs: Vec<Value>,
    /// Targets.
    pub targets: Vec<Value>,
}

impl DataSource for InMemory {
    fn batches(
        &mut self,
        _pass: u64,
        batch_size: usize,
    ) -> Result<Box<dyn Iterator<Item = Result<(Vec<Value>, Vec<Value>)>> + '_>> {
        Ok(Box::new(
            self.inputs
                .chunks(batch_size)
                .zip(self.targets.chunks(batch_size))
                .map(|(x, y)| Ok((x.to_vec(), y.to_vec()))),
        ))
    }
}

/// A named validation set.
pub struct Validation<'a> {
    /// Its name, the prefix of its metric keys (`my_valid/acc`).
    pub identifier: String,
    /// Its data.
    pub data: &'a mut dyn DataSource,
}
