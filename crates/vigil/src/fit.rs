//! `fit`: training a model on documents selected from the database, streamed in batches.

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value as Json};
use vigil_core::{Error, Result, Value, ID_FIELD};
use vigil_ml::{DataSource, FitReport, Metric, PipelineModel, Progress, TrainerConfig, Validation};

use crate::registry::Dataset;
use crate::{Collection, Cursor, Datalayer};

/// Batches shuffled within a window of this many batches: enough to mix neighbours, bounded so
/// memory does not grow with the collection.
const SHUFFLE_WINDOW: usize = 16;

/// What to train on and how.
#[derive(Clone)]
pub struct FitOptions {
    x: String,
    y: String,
    collection: String,
    select: Json,
    trainer: TrainerConfig,
    metrics: Vec<Metric>,
    validation_sets: Vec<Dataset>,
    observer: Option<FitObserver>,
    stop: Option<Arc<AtomicBool>>,
}

impl std::fmt::Debug for FitOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FitOptions")
            .field("x", &self.x)
            .field("y", &self.y)
            .field("collection", &self.collection)
            .field("select", &self.select)
            .field("trainer", &self.trainer)
            .field("metrics", &self.metrics)
            .field("validation_sets", &self.validation_sets)
            .finish_non_exhaustive()
    }
}

/// What a running fit reports to its observer ([`FitOptions::on_progress`]).
#[derive(Debug)]
pub enum FitProgress<'a> {
    /// Training starts: the steps it will take (0 when neither epochs nor a step limit bound it).
    Started {
        /// Steps in all.
        total_steps: u64,
    },
    /// A step was taken or a validation ran.
    Training(&'a Progress),
}

/// Called with each [`FitProgress`] of a fit, on the fitting thread: draw a bar, log, or
/// record a curve.
pub type FitObserver = Arc<dyn Fn(&FitProgress<'_>) + Send + Sync>;

impl FitOptions {
    /// Train on field `x` to predict field `y` (dotted paths allowed), over the documents of
    /// `collection` that `select` matches and whose `_fold` is `train`.
    pub fn new(
        x: &str,
        y: &str,
        collection: &Collection,
        select: Json,
        trainer: TrainerConfig,
    ) -> Self {
        FitOptions {
            x: x.into(),
            y: y.into(),
            collection: collection.name().into(),
            select,
            trainer,
            metrics: Vec::new(),
            validation_sets: Vec::new(),
            observer: None,
            stop: None,
        }
    }

    /// Adds a metric computed on every validation set. Default: none.
    pub fn metric(mut self, metric: Metric) -> Self {
        self.metrics.push(metric);
        self
    }

    /// Adds a validation set. Default: none.
    pub fn validation_set(mut self, dataset: Dataset) -> Self {
        self.validation_sets.push(dataset);
        self
    }

    /// Stops the training, with [`vigil_core::Error::Interrupted`], at the first step after
    /// `flag` is set (from another thread, a signal handler or the observer). The model and
    /// the registry stay as they were. Default: none.
    pub fn stop_when(mut self, flag: Arc<AtomicBool>) -> Self {
        self.stop = Some(flag);
        self
    }

    /// Reports progress (the steps to take, each step, each validation) to `observer`.
    /// Default: none.
    pub fn on_progress(mut self, observer: FitObserver) -> Self {
        self.observer = Some(observer);
        self
    }
}

/// Documents of a query as `(x, y)` batches, shuffled within a bounded window.
struct CollectionSource {
    collection: Collection,
    filter: Json,
    x: String,
    y: String,
    shuffle: bool,
}

struct Batches {
    cursor: Cursor,
    window: Vec<(Value, Value)>,
    rng: StdRng,
    batch_size: usize,
    shuffle: bool,
    x: String,
    y: String,
    done: bool,
}

impl Batches {
    fn pair(&self, doc: vigil_core::Document) -> Result<(Value, Value)> {
        let field = |path: &str| {
            doc.get_path(path)
                .cloned()
                .ok_or_else(|| Error::InvalidDocument {
                    location: vigil_core::Location::path(path),
                    reason: format!(
                        "document {} has no `{path}` to train on",
                        doc.get(ID_FIELD)
                            .map(|v| v.to_json().to_string())
                            .unwrap_or_default()
                    ),
                })
        };
        Ok((field(&self.x)?, field(&self.y)?))
    }
}

impl Iterator for Batches {
    type Item = Result<(Vec<Value>, Vec<Value>)>;

    fn next(&mut self) -> Option<Self::Item> {
        let capacity = if self.shuffle {
            self.batch_size * SHUFFLE_WINDOW
        } else {
            self.batch_size
        };
        while !self.done && self.window.len() < capacity {
            match self.cursor.next() {
                None => self.done = true,
                Some(Err(e)) => return Some(Err(e)),
                Some(Ok(doc)) => match self.pair(doc) {
                    Ok(p) => self.window.push(p),
                    Err(e) => return Some(Err(e)),
                },
            }
        }
        if self.window.is_empty() {
            return None;
        }
        let n = self.batch_size.min(self.window.len());
        let picked: Vec<(Value, Value)> = if self.shuffle {
            (0..n)
                .map(|_| {
                    let i = self.rng.random_range(0..self.window.len());
                    self.window.swap_remove(i)
                })
                .collect()
        } else {
            self.window.drain(..n).collect()
        };
        Some(Ok(picked.into_iter().unzip()))
    }
}

impl DataSource for CollectionSource {
    fn batches(
        &mut self,
        pass: u64,
        batch_size: usize,
    ) -> Result<Box<dyn Iterator<Item = Result<(Vec<Value>, Vec<Value>)>> + '_>> {
        let cursor = self
            .collection
            .find(self.filter.clone())
            .projection(json!({ &self.x: 1, &self.y: 1 }))
            .run()?;
        Ok(Box::new(Batches {
            cursor,
            window: Vec::new(),
            rng: StdRng::seed_from_u64(pass),
            batch_size,
            shuffle: self.shuffle,
            x: self.x.clone(),
            y: self.y.clone(),
            done: false,
        }))
    }
}

impl Datalayer {
    /// Trains `model` (the notebook's `fit`) on the training fold of the selected documents,
    /// validating on each validation set every `validation_interval` steps. The trainer
    /// configuration, metrics and datasets are stored as components; the trained model (its
    /// best checkpoint, with `metric_values`) is added as a new version.
    pub fn fit(&self, model: &mut PipelineModel, options: FitOptions) -> Result<FitReport> {
        vigil_core::FieldPath::parse(&options.x)?;
        vigil_core::FieldPath::parse(&options.y)?;
        vigil_core::Filter::parse(&options.select)?;
        self.add(&options.trainer)?;
        for m in &options.metrics {
            self.add(m)?;
        }
        for d in &options.validation_sets {
            self.add(d)?;
        }
        let collection = self.collection(&options.collection)?;
        let filter = json!({"$and": [options.select, {"_fold": "train"}]});
        if let Some(observer) = &options.observer {
            let docs = collection.count(filter.clone())?;
            let per_epoch = docs.div_ceil(options.trainer.batch_size as u64);
            let total_steps = match (options.trainer.epochs, options.trainer.max_iterations) {
                (Some(e), Some(m)) => (e * per_epoch).min(m),
                (Some(e), None) => e * per_epoch,
                (None, Some(m)) => m,
                (None, None) => 0,
            };
            observer(&FitProgress::Started { total_steps });
        }
        let mut train = CollectionSource {
            collection: collection.clone(),
            filter,
            x: options.x.clone(),
            y: options.y.clone(),
            shuffle: true,
        };
        let mut sources = options
            .validation_sets
            .iter()
            .map(|d| {
                Ok((
                    d.identifier.clone(),
                    CollectionSource {
                        collection: self.collection(&d.collection)?,
                        filter: d.filter.clone(),
                        x: options.x.clone(),
                        y: options.y.clone(),
                        shuffle: false,
                    },
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut validations: Vec<Validation<'_>> = sources
            .iter_mut()
            .map(|(id, s)| Validation {
                identifier: id.clone(),
                data: s,
            })
            .collect();
        let mut job = vigil_core::listen::JobRecord::start("fit", &model.to_record().identifier, 0);
        self.store().put_job(&job)?;
        let report = vigil_ml::fit(
            model,
            &options.trainer,
            &mut train,
            &mut validations,
            &options.metrics,
            &mut |p| {
                if let Some(observer) = &options.observer {
                    observer(&FitProgress::Training(p));
                }
                match &options.stop {
                    Some(stop) if stop.load(Ordering::Relaxed) => ControlFlow::Break(()),
                    _ => ControlFlow::Continue(()),
                }
            },
        );
        job.finished = Some(vigil_core::listen::now());
        let report = match report.and_then(|r| self.add_model(model).map(|_| r)) {
            Ok(report) => report,
            Err(e) => {
                job.status = vigil_core::listen::JobStatus::Failed;
                job.error = Some(e.to_string());
                self.store().put_job(&job)?;
                return Err(e);
            }
        };
        job.status = vigil_core::listen::JobStatus::Success;
        job.done = report.iterations;
        job.total = report.iterations;
        self.store().put_job(&job)?;
        Ok(report)
    }
}
