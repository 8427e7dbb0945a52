//! Training (the notebook's `fit`): batches streamed from a [`DataSource`], an objective, an
//! optimizer, validation every N iterations with metrics per validation set, the best
//! checkpoint kept, early stopping. Deterministic given the seed.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Instant;

use burn::module::Module;
use burn::nn::loss::{CrossEntropyLossConfig, MseLoss, Reduction};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::{AdamConfig, GradientsParams, SgdConfig};
use burn::prelude::*;
use serde::{Deserialize, Serialize};
use vigil_core::{Error, Result, Value};

use crate::model::{Engine, ModelKind, PipelineModel};
use crate::net::{batch_tensor, Net};

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

fn metric_function(m: &Metric) -> Result<MetricFunction> {
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

/// Reported while training.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    /// A step was taken.
    Step {
        /// Steps so far.
        iteration: u64,
        /// Current pass, from 0.
        epoch: u64,
        /// This step's objective.
        loss: f64,
    },
    /// A validation ran.
    Validated {
        /// Steps so far.
        iteration: u64,
        /// The values recorded, by key.
        values: Vec<(String, f64)>,
    },
}

/// What a training run did.
#[derive(Debug, Clone, PartialEq)]
pub struct FitReport {
    /// Steps taken.
    pub iterations: u64,
    /// The key and value of the best checkpoint, if validations ran.
    pub best: Option<(String, f64)>,
    /// Whether patience ran out.
    pub stopped_early: bool,
    /// Wall time of the training, in seconds.
    pub seconds: f64,
}

fn targets_tensor(
    objective: Objective,
    ys: &[Value],
    outputs: usize,
    device: &Device,
    model: &str,
) -> Result<TargetTensor> {
    match objective {
        Objective::CrossEntropy => {
            let labels = ys
                .iter()
                .enumerate()
                .map(|(i, y)| match y.as_i64() {
                    Some(c) if (0..outputs as i64).contains(&c) => Ok(c),
                    _ => Err(Error::model(
                        model,
                        format!("target #{i} is {}, not a class in 0..{outputs}", y.kind()),
                    )),
                })
                .collect::<Result<Vec<i64>>>()?;
            Ok(TargetTensor::Classes(
                Tensor::<1, Int>::from_data(
                    TensorData::new(labels.clone(), [labels.len()]),
                    device,
                ),
                labels,
            ))
        }
        Objective::Mse => {
            let mut flat = Vec::with_capacity(ys.len() * outputs);
            for (i, y) in ys.iter().enumerate() {
                let row: Vec<f32> = match y {
                    Value::Int(_) | Value::Float(_) => vec![y.as_f64().unwrap_or(0.0) as f32],
                    v => v
                        .to_tensor()
                        .and_then(|t| t.to_f32())
                        .map_err(|e| Error::model(model, format!("target #{i}: {e}")))?,
                };
                if row.len() != outputs {
                    return Err(Error::model(
                        model,
                        format!(
                            "target #{i} has {} values, the network {outputs} outputs",
                            row.len()
                        ),
                    ));
                }
                flat.extend(row);
            }
            Ok(TargetTensor::Values(
                Tensor::<2>::from_data(TensorData::new(flat.clone(), [ys.len(), outputs]), device),
                flat,
            ))
        }
    }
}

enum TargetTensor {
    Classes(Tensor<1, Int>, Vec<i64>),
    Values(Tensor<2>, Vec<f32>),
}

/// The objective of raw outputs against targets, in plain Rust (for validation).
fn objective_value(raw: &[f32], targets: &TargetTensor, n: usize) -> f64 {
    let width = raw.len() / n.max(1);
    match targets {
        TargetTensor::Classes(_, labels) => {
            raw.chunks(width)
                .zip(labels)
                .map(|(row, &c)| {
                    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    let lse = max + row.iter().map(|v| (v - max).exp()).sum::<f32>().ln();
                    f64::from(lse - row[c as usize])
                })
                .sum::<f64>()
                / n as f64
        }
        TargetTensor::Values(_, values) => {
            raw.iter()
                .zip(values)
                .map(|(a, b)| f64::from((a - b) * (a - b)))
                .sum::<f64>()
                / raw.len().max(1) as f64
        }
    }
}

/// Trains a network model in place: on return its weights are the best checkpoint and its
/// `metric_values` hold every validation. Only declarative networks train.
pub fn fit(
    model: &mut PipelineModel,
    config: &TrainerConfig,
    train: &mut dyn DataSource,
    validations: &mut [Validation<'_>],
    metrics: &[Metric],
    progress: &mut dyn FnMut(&Progress),
) -> Result<FitReport> {
    let id = model.record.identifier.clone();
    let ModelKind::Network { spec, .. } = model.record.kind.clone() else {
        return Err(Error::model(
            &id,
            "only declarative networks can be trained",
        ));
    };
    if config.epochs.is_none() && config.max_iterations.is_none() {
        return Err(Error::model(
            &id,
            "the trainer configuration bounds neither epochs nor iterations",
        ));
    }
    let functions = metrics
        .iter()
        .map(|m| Ok((m.clone(), metric_function(m)?)))
        .collect::<Result<Vec<_>>>()?;
    let best_by = config.best_by.clone().or_else(|| {
        validations.first().map(|v| match metrics.first() {
            Some(m) => format!("{}/{}", v.identifier, m.identifier),
            None => format!("{}/objective", v.identifier),
        })
    });
    let outputs = match spec.check(&id)? {
        crate::spec::Shape::Flat(n) => n,
        crate::spec::Shape::Image(c, h, w) => c * h * w,
    };

    let device = Device::flex().autodiff();
    device.seed(config.seed);
    let mut net = Net::new(&spec, &device);
    net.load_safetensors(model.artifact()?.unwrap_or_default(), &id)?;
    let mut optim = match config.optimizer {
        Optimizer::Adam { weight_decay, .. } => {
            let c = AdamConfig::new().with_epsilon(1e-8);
            if weight_decay > 0.0 {
                c.with_weight_decay(Some(WeightDecayConfig::new(weight_decay)))
            } else {
                c
            }
            .init()
        }
        Optimizer::Sgd { weight_decay, .. } => {
            let c = SgdConfig::new();
            if weight_decay > 0.0 {
                c.with_weight_decay(Some(WeightDecayConfig::new(weight_decay)))
            } else {
                c
            }
            .init()
        }
    };
    let lr = match config.optimizer {
        Optimizer::Adam { learning_rate, .. } | Optimizer::Sgd { learning_rate, .. } => {
            learning_rate
        }
    };
    let ce = CrossEntropyLossConfig::new().init(&device);
    let mse = MseLoss::new();

    let start = Instant::now();
    let mut iteration = 0u64;
    let mut since_validation = (0.0f64, 0u64);
    let mut best: Option<(f64, Vec<u8>)> = None;
    let mut without_improvement = 0u32;
    let mut stopped_early = false;
    let mut values = model.record.metric_values.clone();

    // One validation: records values, keeps the best checkpoint, says whether to stop.
    let mut validate = |net: &Net,
                        iteration: u64,
                        since: &mut (f64, u64),
                        values: &mut BTreeMap<String, Vec<f64>>,
                        model: &PipelineModel,
                        progress: &mut dyn FnMut(&Progress)|
     -> Result<bool> {
        let inference = net.valid();
        let mut recorded = Vec::new();
        if since.1 > 0 {
            recorded.push(("objective".to_string(), since.0 / since.1 as f64));
        }
        *since = (0.0, 0);
        for v in validations.iter_mut() {
            let (mut preds, mut targets, mut objective, mut n) =
                (Vec::new(), Vec::new(), 0.0, 0usize);
            for batch in v.data.batches(0, config.batch_size)? {
                let (xs, ys) = batch?;
                let (data, shape) = model.preprocess_batch(&xs, n)?;
                let x = batch_tensor(
                    data,
                    xs.len(),
                    [shape[0], shape[1], shape[2]],
                    &Device::flex(),
                );
                let raw: Vec<f32> = inference
                    .forward(x)
                    .into_data()
                    .try_to_vec::<f32>()
                    .map_err(|e| Error::model(&model.record.identifier, format!("{e:?}")))?;
                let t = targets_tensor(
                    config.objective,
                    &ys,
                    outputs,
                    &Device::flex(),
                    &model.record.identifier,
                )?;
                objective += objective_value(&raw, &t, xs.len()) * xs.len() as f64;
                let width = raw.len() / xs.len().max(1);
                preds.extend(
                    raw.chunks(width.max(1))
                        .map(|r| model.record.postprocess.apply(r)),
                );
                n += xs.len();
                targets.extend(ys);
            }
            recorded.push((
                format!("{}/objective", v.identifier),
                objective / n.max(1) as f64,
            ));
            for (m, f) in &functions {
                recorded.push((
                    format!("{}/{}", v.identifier, m.identifier),
                    f(&preds, &targets),
                ));
            }
        }
        for (k, v) in &recorded {
            values.entry(k.clone()).or_default().push(*v);
        }
        progress(&Progress::Validated {
            iteration,
            values: recorded.clone(),
        });
        let Some(key) = &best_by else {
            return Ok(false);
        };
        let Some(&(_, score)) = recorded.iter().find(|(k, _)| k == key) else {
            return Err(Error::model(
                &model.record.identifier,
                format!("best_by `{key}` is not a recorded metric"),
            ));
        };
        let lower_is_better = key.ends_with("objective");
        let better = match &best {
            None => true,
            Some((b, _)) => {
                if lower_is_better {
                    score < *b
                } else {
                    score > *b
                }
            }
        };
        if better {
            best = Some((score, inference.to_safetensors(&model.record.identifier)?));
            without_improvement = 0;
        } else {
            without_improvement += 1;
        }
        Ok(config.patience.is_some_and(|p| without_improvement >= p))
    };

    let pool = model.pool.clone();
    'epochs: for epoch in 0.. {
        if config.epochs.is_some_and(|e| epoch >= e) {
            break;
        }
        let mut batches = train.batches(config.seed.wrapping_add(epoch), config.batch_size)?;
        for batch in batches.by_ref() {
            let (xs, ys) = batch?;
            if xs.is_empty() {
                continue;
            }
            let (data, shape) = model.preprocess_batch(&xs, 0)?;
            if shape.len() != 3 {
                return Err(Error::model(
                    &id,
                    format!("inputs of shape {shape:?}; networks take [channels, height, width]"),
                ));
            }
            let x = batch_tensor(data, xs.len(), [shape[0], shape[1], shape[2]], &device);
            let y = targets_tensor(config.objective, &ys, outputs, &device, &id)?;
            // The step runs on the model's capped thread pool.
            let (stepped, loss_value) = pool.install(|| {
                let logits = net.forward(x);
                let loss = match y {
                    TargetTensor::Classes(y, _) => ce.forward(logits, y),
                    TargetTensor::Values(y, _) => mse.forward(logits, y, Reduction::Mean),
                };
                let loss_value = f64::from(loss.clone().into_scalar::<f32>());
                let grads = GradientsParams::from_grads(loss.backward(), &net);
                (optim.step(lr, net, grads), loss_value)
            });
            net = stepped;
            iteration += 1;
            since_validation.0 += loss_value;
            since_validation.1 += 1;
            progress(&Progress::Step {
                iteration,
                epoch,
                loss: loss_value,
            });
            if iteration.is_multiple_of(config.validation_interval)
                && validate(
                    &net,
                    iteration,
                    &mut since_validation,
                    &mut values,
                    model,
                    progress,
                )?
            {
                stopped_early = true;
                break 'epochs;
            }
            if config.max_iterations.is_some_and(|m| iteration >= m) {
                break 'epochs;
            }
        }
    }
    if !iteration.is_multiple_of(config.validation_interval) || iteration == 0 {
        validate(
            &net,
            iteration,
            &mut since_validation,
            &mut values,
            model,
            progress,
        )?;
    }

    let (best_score, weights) = match best.take() {
        Some((score, bytes)) => (Some(score), bytes),
        None => (None, net.valid().to_safetensors(&id)?),
    };
    let mut trained = Net::new(&spec, &Device::flex());
    trained.load_safetensors(weights, &id)?;
    model.engine = Engine::Network {
        net: trained,
        device: Device::flex(),
    };
    model.record.metric_values = values;
    // This run's best, not an earlier training's recorded in the same metric_values.
    let best = best_by.zip(best_score);
    Ok(FitReport {
        iterations: iteration,
        best,
        stopped_early,
        seconds: start.elapsed().as_secs_f64(),
    })
}
