//! The training loop as a small [`Trainer`]: it turns batches into tensors, counts steps,
//! validates (recording every metric on every validation set), keeps the best checkpoint and
//! decides when patience has run out. [`fit`] wires it to a network and an optimizer.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::time::Instant;

use burn::module::Module;
use burn::nn::loss::{CrossEntropyLossConfig, MseLoss, Reduction};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::{AdamConfig, GradientsParams, SgdConfig};
use burn::prelude::*;
use vigil_core::{Error, Result, Value};

use crate::model::{Engine, ModelKind, PipelineModel};
use crate::net::{batch_tensor, Net};
use crate::train::{
    metric_function, DataSource, Metric, MetricFunction, Objective, Optimizer, TrainerConfig,
    Validation,
};

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

/// The state of one training run: steps, recorded values and the best checkpoint.
struct Trainer<'a> {
    config: &'a TrainerConfig,
    model_id: String,
    /// The network's output width.
    outputs: usize,
    functions: Vec<(Metric, MetricFunction)>,
    /// The recorded key that picks the best checkpoint (`<set>/<metric>`).
    best_by: Option<String>,
    /// Every value recorded, by key (the model's earlier values included).
    values: BTreeMap<String, Vec<f64>>,
    /// Steps taken.
    iteration: u64,
    /// Objective summed over the steps since the last validation, and their number.
    since_validation: (f64, u64),
    /// The best score so far with its weights (safetensors).
    best: Option<(f64, Vec<u8>)>,
    without_improvement: u32,
}

impl<'a> Trainer<'a> {
    fn new(
        model: &PipelineModel,
        config: &'a TrainerConfig,
        outputs: usize,
        validations: &[Validation<'_>],
        metrics: &[Metric],
    ) -> Result<Self> {
        let model_id = model.record.identifier.clone();
        if config.epochs.is_none() && config.max_iterations.is_none() {
            return Err(Error::model(
                &model_id,
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
        Ok(Trainer {
            config,
            model_id,
            outputs,
            functions,
            best_by,
            values: model.record.metric_values.clone(),
            iteration: 0,
            since_validation: (0.0, 0),
            best: None,
            without_improvement: 0,
        })
    }

    /// A batch as tensors: the preprocessed inputs and the targets.
    fn tensors(
        &self,
        model: &PipelineModel,
        xs: &[Value],
        ys: &[Value],
        device: &Device,
    ) -> Result<(Tensor<4>, TargetTensor)> {
        let (data, shape) = model.preprocess_batch(xs, 0)?;
        if shape.len() != 3 {
            return Err(Error::model(
                &self.model_id,
                format!("inputs of shape {shape:?}; networks take [channels, height, width]"),
            ));
        }
        let x = batch_tensor(data, xs.len(), [shape[0], shape[1], shape[2]], device);
        let y = targets_tensor(
            self.config.objective,
            ys,
            self.outputs,
            device,
            &self.model_id,
        )?;
        Ok((x, y))
    }

    /// Counts a step with its objective; true when a validation is due.
    fn stepped(&mut self, loss: f64) -> bool {
        self.iteration += 1;
        self.since_validation.0 += loss;
        self.since_validation.1 += 1;
        self.iteration
            .is_multiple_of(self.config.validation_interval)
    }

    /// Whether the step limit is reached.
    fn at_limit(&self) -> bool {
        self.config
            .max_iterations
            .is_some_and(|m| self.iteration >= m)
    }

    /// Runs every validation set through `net`, records the values (and the training
    /// objective since the last validation), keeps the best checkpoint; true when patience
    /// has run out.
    fn validate(
        &mut self,
        net: &Net,
        model: &PipelineModel,
        validations: &mut [Validation<'_>],
        progress: &mut dyn FnMut(&Progress) -> ControlFlow<()>,
    ) -> Result<bool> {
        let inference = net.valid();
        let mut recorded = Vec::new();
        let (sum, steps) = std::mem::take(&mut self.since_validation);
        if steps > 0 {
            recorded.push(("objective".to_string(), sum / steps as f64));
        }
        for v in validations.iter_mut() {
            recorded.extend(self.evaluate(&inference, model, v)?);
        }
        for (k, v) in &recorded {
            self.values.entry(k.clone()).or_default().push(*v);
        }
        if progress(&Progress::Validated {
            iteration: self.iteration,
            values: recorded.clone(),
        })
        .is_break()
        {
            return Err(interrupted());
        }
        self.keep_best(&recorded, &inference)
    }

    /// The objective and every metric of one validation set.
    fn evaluate(
        &self,
        inference: &Net,
        model: &PipelineModel,
        v: &mut Validation<'_>,
    ) -> Result<Vec<(String, f64)>> {
        let (mut preds, mut targets, mut objective, mut n) = (Vec::new(), Vec::new(), 0.0, 0usize);
        let device = Device::flex();
        for batch in v.data.batches(0, self.config.batch_size)? {
            let (xs, ys) = batch?;
            let (data, shape) = model.preprocess_batch(&xs, n)?;
            let x = batch_tensor(data, xs.len(), [shape[0], shape[1], shape[2]], &device);
            let raw: Vec<f32> = inference
                .forward(x)
                .into_data()
                .try_to_vec::<f32>()
                .map_err(|e| Error::model(&self.model_id, format!("{e:?}")))?;
            let t = targets_tensor(
                self.config.objective,
                &ys,
                self.outputs,
                &device,
                &self.model_id,
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
        let mut out = vec![(
            format!("{}/objective", v.identifier),
            objective / n.max(1) as f64,
        )];
        for (m, f) in &self.functions {
            out.push((
                format!("{}/{}", v.identifier, m.identifier),
                f(&preds, &targets),
            ));
        }
        Ok(out)
    }

    /// Keeps `net`'s weights when the `best_by` value improved; true when the run has gone
    /// `patience` validations without improving.
    fn keep_best(&mut self, recorded: &[(String, f64)], net: &Net) -> Result<bool> {
        let Some(key) = &self.best_by else {
            return Ok(false);
        };
        let Some(&(_, score)) = recorded.iter().find(|(k, _)| k == key) else {
            return Err(Error::model(
                &self.model_id,
                format!("best_by `{key}` is not a recorded metric"),
            ));
        };
        let lower_is_better = key.ends_with("objective");
        let better = match &self.best {
            None => true,
            Some((b, _)) if lower_is_better => score < *b,
            Some((b, _)) => score > *b,
        };
        if better {
            self.best = Some((score, net.to_safetensors(&self.model_id)?));
            self.without_improvement = 0;
        } else {
            self.without_improvement += 1;
        }
        Ok(self
            .config
            .patience
            .is_some_and(|p| self.without_improvement >= p))
    }

    /// Puts the best checkpoint (or the last weights, without validations) into `model`.
    fn finish(
        self,
        model: &mut PipelineModel,
        spec: &crate::spec::NetworkSpec,
        net: Net,
        stopped_early: bool,
        start: Instant,
    ) -> Result<FitReport> {
        let (best_score, weights) = match self.best {
            Some((score, bytes)) => (Some(score), bytes),
            None => (None, net.valid().to_safetensors(&self.model_id)?),
        };
        let mut trained = Net::new(spec, &Device::flex());
        trained.load_safetensors(weights, &self.model_id)?;
        model.engine = Engine::Network {
            net: trained,
            device: Device::flex(),
        };
        model.record.metric_values = self.values;
        Ok(FitReport {
            iterations: self.iteration,
            // This run's best, not an earlier training's recorded in the same metric_values.
            best: self.best_by.zip(best_score),
            stopped_early,
            seconds: start.elapsed().as_secs_f64(),
        })
    }
}

fn interrupted() -> Error {
    Error::Interrupted {
        what: "training".into(),
    }
}

/// Trains a network model in place: on return its weights are the best checkpoint and its
/// `metric_values` hold every validation. Only declarative networks train. `progress` sees
/// every step and validation; returning `ControlFlow::Break` stops the training with
/// [`Error::Interrupted`], leaving the model as it was.
pub fn fit(
    model: &mut PipelineModel,
    config: &TrainerConfig,
    train: &mut dyn DataSource,
    validations: &mut [Validation<'_>],
    metrics: &[Metric],
    progress: &mut dyn FnMut(&Progress) -> ControlFlow<()>,
) -> Result<FitReport> {
    let id = model.record.identifier.clone();
    let ModelKind::Network { spec, .. } = model.record.kind.clone() else {
        return Err(Error::model(
            &id,
            "only declarative networks can be trained",
        ));
    };
    let outputs = match spec.check(&id)? {
        crate::spec::Shape::Flat(n) => n,
        crate::spec::Shape::Image(c, h, w) => c * h * w,
    };
    let mut trainer = Trainer::new(model, config, outputs, validations, metrics)?;

    let device = Device::flex().autodiff();
    device.seed(config.seed);
    let mut net = Net::new(&spec, &device);
    net.load_safetensors(model.artifact()?.unwrap_or_default(), &id)?;
    let (mut optim, lr) = match config.optimizer {
        Optimizer::Adam {
            weight_decay,
            learning_rate,
        } => {
            let c = AdamConfig::new().with_epsilon(1e-8);
            let c = if weight_decay > 0.0 {
                c.with_weight_decay(Some(WeightDecayConfig::new(weight_decay)))
            } else {
                c
            };
            (c.init(), learning_rate)
        }
        Optimizer::Sgd {
            weight_decay,
            learning_rate,
        } => {
            let c = SgdConfig::new();
            let c = if weight_decay > 0.0 {
                c.with_weight_decay(Some(WeightDecayConfig::new(weight_decay)))
            } else {
                c
            };
            (c.init(), learning_rate)
        }
    };
    let ce = CrossEntropyLossConfig::new().init(&device);
    let mse = MseLoss::new();

    let start = Instant::now();
    let mut stopped_early = false;
    // Steps run on one thread whatever the model's pool: burn's parallel reductions sum in
    // an order that depends on the thread count, so a seeded fit gave different weights on 2
    // threads than on 1 (`training_is_deterministic_given_the_seed` caught it when the
    // default pool grew to every core). One thread keeps a seed's model the same on every
    // machine; training on every core stays open (BENCHMARKS.md, issue 15).
    let pool = training_pool(&model.to_record().identifier)?;
    'epochs: for epoch in 0.. {
        if config.epochs.is_some_and(|e| epoch >= e) {
            break;
        }
        for batch in train.batches(config.seed.wrapping_add(epoch), config.batch_size)? {
            let (xs, ys) = batch?;
            if xs.is_empty() {
                continue;
            }
            let (x, y) = trainer.tensors(model, &xs, &ys, &device)?;
            // The step runs on the model's capped thread pool.
            let (stepped, loss) = pool.install(|| {
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
            let due = trainer.stepped(loss);
            if progress(&Progress::Step {
                iteration: trainer.iteration,
                epoch,
                loss,
            })
            .is_break()
            {
                return Err(interrupted());
            }
            if due && trainer.validate(&net, model, validations, progress)? {
                stopped_early = true;
                break 'epochs;
            }
            if trainer.at_limit() {
                break 'epochs;
            }
        }
    }
    if !trainer.iteration.is_multiple_of(config.validation_interval) || trainer.iteration == 0 {
        trainer.validate(&net, model, validations, progress)?;
    }
    trainer.finish(model, &spec, net, stopped_early, start)
}

/// The one-thread pool training steps run on (see `fit`), started once per process.
fn training_pool(model: &str) -> Result<std::sync::Arc<rayon::ThreadPool>> {
    static POOL: std::sync::OnceLock<std::sync::Arc<rayon::ThreadPool>> =
        std::sync::OnceLock::new();
    if let Some(pool) = POOL.get() {
        return Ok(pool.clone());
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .thread_name(|_| "vigil-training".into())
        .build()
        .map(std::sync::Arc::new)
        .map_err(|e| Error::model(model, format!("starting the training thread: {e}")))?;
    Ok(POOL.get_or_init(|| pool).clone())
}
