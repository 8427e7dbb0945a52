//! Models: preprocess -> forward (batched, on a capped thread pool) -> postprocess.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, OnceLock, RwLock};

use burn::prelude::*;
use serde::{Deserialize, Serialize};
use tract_onnx::prelude::{tvec, Framework, InferenceModelExt, IntoRunnable, TypedRunnableModel};
use vigil_core::{Error, Result, Value};

use crate::net::{batch_tensor, Net};
use crate::pipeline::{preprocess, Input, Postprocess, Preprocess};
use crate::spec::NetworkSpec;

/// Runs engine or user code that may panic as an error naming the model, so that a panic is
/// never the caller's crash. A registered function is user code; tract has panicked on graphs
/// the fuzzer made.
fn contained<T>(identifier: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        Err(Error::model(
            identifier,
            format!("the model panicked: {}", panic_message(panic.as_ref())),
        ))
    })
}

/// The text a panic was raised with.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// What every model does: predict a batch of values.
pub trait Model: Send + Sync {
    /// The model's name.
    fn identifier(&self) -> &str;
    /// Its version in the registry, if it was added or loaded.
    fn version(&self) -> Option<u32>;
    /// The codec of its outputs, when they are encoded values (`None` for plain values).
    fn output_codec(&self) -> Option<&str>;
    /// One output per input, in order. An input that cannot be processed fails the call with
    /// an error naming its index.
    fn predict(&self, inputs: &[Value]) -> Result<Vec<Value>>;
}

/// A plain Rust function used as a model. It must be registered under its name in every
/// process that loads the model (workers included): records store only the name.
pub type ModelFunction = Arc<dyn Fn(&[Value]) -> Result<Vec<Value>> + Send + Sync>;

fn functions() -> &'static RwLock<BTreeMap<String, ModelFunction>> {
    static FUNCTIONS: OnceLock<RwLock<BTreeMap<String, ModelFunction>>> = OnceLock::new();
    FUNCTIONS.get_or_init(Default::default)
}

/// Registers a function under a name, for [`PipelineModel::function`] and for loading records
/// that name it.
pub fn register_function(name: &str, f: ModelFunction) {
    functions()
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .insert(name.to_string(), f);
}

/// The declarative part of a model, stored as JSON in the registry. Weights and graphs are
/// artifacts, referenced by their content hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRecord {
    /// The model's name.
    pub identifier: String,
    /// What computes the forward pass.
    pub kind: ModelKind,
    /// Steps from a stored value to a tensor.
    #[serde(default)]
    pub preprocess: Vec<Preprocess>,
    /// What is made of each output row.
    pub postprocess: Postprocess,
    /// Inputs per forward pass.
    pub batch_size: usize,
    /// Threads the forward pass may use.
    pub threads: usize,
    /// Metrics recorded while training, by key (`objective`, `my_valid/acc`, …).
    #[serde(default)]
    pub metric_values: BTreeMap<String, Vec<f64>>,
}

/// The engine of a model, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ModelKind {
    /// A declarative network run by burn; `weights` is the safetensors artifact's hash.
    Network {
        /// The layers.
        spec: NetworkSpec,
        /// Hash of the weights artifact (set when stored).
        weights: Option<String>,
    },
    /// An ONNX graph run by tract; `graph` is the ONNX artifact's hash.
    Onnx {
        /// Hash of the ONNX artifact (set when stored).
        graph: Option<String>,
    },
    /// A registered Rust function.
    Function {
        /// Its registered name.
        name: String,
    },
}

pub(crate) enum Engine {
    Network {
        net: Net,
        device: Device,
    },
    Onnx {
        plan: Arc<TypedRunnableModel>,
        bytes: Arc<Vec<u8>>,
    },
    Function(ModelFunction),
}

/// A model built from data: a network, an ONNX graph or a registered function, with its
/// preprocess and postprocess steps. Settings are builder methods that state their default.
pub struct PipelineModel {
    pub(crate) record: ModelRecord,
    pub(crate) engine: Engine,
    pub(crate) version: Option<u32>,
    pub(crate) pool: Arc<rayon::ThreadPool>,
}

impl std::fmt::Debug for PipelineModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("record", &self.record)
            .field("version", &self.version)
            .finish()
    }
}

/// Default inputs per forward pass.
pub const DEFAULT_BATCH_SIZE: usize = 256;

/// Default threads: every core. Half the cores, left to the database, was measured against
/// it on 2 cores (BENCHMARKS.md, issue 15): the SQLite backfill went from 7,212 to 10,503
/// docs/s with the model on both, since the worker's reads and writes wait on the model's
/// pool, not beside it.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn pool(threads: usize, model: &str) -> Result<Arc<rayon::ThreadPool>> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .thread_name(|i| format!("vigil-model-{i}"))
        .build()
        .map(Arc::new)
        .map_err(|e| Error::model(model, format!("starting its thread pool: {e}")))
}

impl PipelineModel {
    fn new(record: ModelRecord, engine: Engine) -> Result<PipelineModel> {
        let pool = pool(record.threads, &record.identifier)?;
        Ok(PipelineModel {
            record,
            engine,
            version: None,
            pool,
        })
    }

    fn record(identifier: &str, kind: ModelKind) -> ModelRecord {
        ModelRecord {
            identifier: identifier.to_string(),
            kind,
            preprocess: Vec::new(),
            postprocess: Postprocess::Argmax,
            batch_size: DEFAULT_BATCH_SIZE,
            threads: default_threads(),
            metric_values: BTreeMap::new(),
        }
    }

    /// A declarative network with freshly initialised weights (deterministic given `seed`).
    pub fn network(identifier: &str, spec: NetworkSpec, seed: u64) -> Result<PipelineModel> {
        crate::check_identifier(identifier)?;
        spec.check(identifier)?;
        let device = Device::flex();
        device.seed(seed);
        let net = Net::new(&spec, &device);
        Self::new(
            Self::record(
                identifier,
                ModelKind::Network {
                    spec,
                    weights: None,
                },
            ),
            Engine::Network { net, device },
        )
    }

    /// A network whose weights come from a PyTorch `state_dict` file (`.pth`), keyed by the
    /// spec's layer names.
    pub fn network_from_pytorch(
        identifier: &str,
        spec: NetworkSpec,
        pth: &Path,
    ) -> Result<PipelineModel> {
        let mut model = Self::network(identifier, spec.clone(), 0)?;
        if let Engine::Network { net, .. } = &mut model.engine {
            net.load_pytorch(&spec, pth, identifier)?;
        }
        Ok(model)
    }

    /// An ONNX graph (e.g. exported from PyTorch), run by tract.
    pub fn onnx(identifier: &str, bytes: Vec<u8>) -> Result<PipelineModel> {
        crate::check_identifier(identifier)?;
        // tract panics on some malformed graphs (found by fuzzing; see RELIABILITY.md): a
        // panic while loading is an error like any other, never the caller's crash.
        // Sizes and external data are checked on the parsed protobuf first (onnx_check).
        let onnx = tract_onnx::onnx();
        let proto = onnx
            .proto_model_for_read(&mut std::io::Cursor::new(&bytes))
            .map_err(|e| Error::model(identifier, format!("not a usable ONNX graph: {e}")))?;
        crate::onnx_check::check(identifier, proto.graph.as_ref())?;
        // Nothing of the loader is used after a panic, so its state cannot be seen half-made.
        let load = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            onnx.model_for_proto_model(&proto)
                .and_then(|m| m.into_optimized())
                .and_then(|m| m.into_runnable())
        }));
        let plan = match load {
            Ok(plan) => {
                plan.map_err(|e| Error::model(identifier, format!("not a usable ONNX graph: {e}")))?
            }
            Err(_) => {
                return Err(Error::model(
                    identifier,
                    "not a usable ONNX graph: the ONNX loader failed on it",
                ))
            }
        };
        Self::new(
            Self::record(identifier, ModelKind::Onnx { graph: None }),
            Engine::Onnx {
                plan,
                bytes: Arc::new(bytes),
            },
        )
    }

    /// A registered function (see [`register_function`]).
    pub fn function(identifier: &str, name: &str) -> Result<PipelineModel> {
        crate::check_identifier(identifier)?;
        let f = functions()
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
            .ok_or_else(|| {
                Error::model(identifier, format!("function `{name}` is not registered in this process (a worker must be built with it and call register_function)"))
            })?;
        Self::new(
            Self::record(identifier, ModelKind::Function { name: name.into() }),
            Engine::Function(f),
        )
    }

    /// Steps from a stored value to a tensor. Default: none (inputs must be `tensor` values).
    pub fn preprocess(mut self, steps: Vec<Preprocess>) -> Self {
        self.record.preprocess = steps;
        self
    }

    /// What is made of each output row. Default: argmax.
    pub fn postprocess(mut self, post: Postprocess) -> Self {
        self.record.postprocess = post;
        self
    }

    /// Inputs per forward pass. Default: [`DEFAULT_BATCH_SIZE`] (256).
    pub fn batch_size(mut self, n: usize) -> Self {
        self.record.batch_size = n.max(1);
        self
    }

    /// Threads the forward pass may use. Default: [`default_threads`] (every core).
    pub fn threads(mut self, n: usize) -> Result<Self> {
        self.record.threads = n.max(1);
        self.pool = pool(n, &self.record.identifier)?;
        Ok(self)
    }

    /// The declarative record (artifact hashes are filled in by the registry).
    pub fn to_record(&self) -> &ModelRecord {
        &self.record
    }

    /// Metrics recorded while training.
    pub fn metric_values(&self) -> &BTreeMap<String, Vec<f64>> {
        &self.record.metric_values
    }

    /// The artifact the model's parameters are stored as: safetensors weights or ONNX bytes.
    pub fn artifact(&self) -> Result<Option<Vec<u8>>> {
        match &self.engine {
            Engine::Network { net, .. } => net.to_safetensors(&self.record.identifier).map(Some),
            Engine::Onnx { bytes, .. } => Ok(Some(bytes.as_ref().clone())),
            Engine::Function(_) => Ok(None),
        }
    }

    /// Rebuilds a model from its record and its artifact's bytes. Runs no user code: the
    /// record is data, the weights are safetensors, the graph is ONNX.
    pub fn from_record(
        record: ModelRecord,
        artifact: Option<Vec<u8>>,
        version: Option<u32>,
    ) -> Result<PipelineModel> {
        let id = record.identifier.clone();
        let missing = || Error::model(&id, "its stored record has no artifact");
        let mut model = match &record.kind {
            ModelKind::Network { spec, .. } => {
                let mut model = Self::network(&id, spec.clone(), 0)?;
                if let Engine::Network { net, .. } = &mut model.engine {
                    net.load_safetensors(artifact.ok_or_else(missing)?, &id)?;
                }
                model
            }
            ModelKind::Onnx { .. } => Self::onnx(&id, artifact.ok_or_else(missing)?)?,
            ModelKind::Function { name } => Self::function(&id, name)?,
        };
        model.pool = pool(record.threads, &id)?;
        model.record = record;
        model.version = version;
        Ok(model)
    }

    /// Sets the registry version (done by the registry).
    pub fn set_version(&mut self, version: u32) {
        self.version = Some(version);
    }

    /// Preprocesses inputs into one flat buffer; all must have the same shape.
    pub fn preprocess_batch(
        &self,
        inputs: &[Value],
        offset: usize,
    ) -> Result<(Vec<f32>, Vec<usize>)> {
        let mut data = Vec::new();
        let mut shape: Option<Vec<usize>> = None;
        for (i, v) in inputs.iter().enumerate() {
            let Input { shape: s, data: d } =
                preprocess(&self.record.preprocess, v).map_err(|e| {
                    Error::model(
                        &self.record.identifier,
                        format!("input #{}: {e}", offset + i),
                    )
                })?;
            match &shape {
                None => shape = Some(s),
                Some(first) if *first != s => {
                    return Err(Error::model(
                        &self.record.identifier,
                        format!("input #{} has shape {s:?}, the batch {first:?}", offset + i),
                    ))
                }
                _ => {}
            }
            data.extend_from_slice(&d);
        }
        Ok((data, shape.unwrap_or_default()))
    }

    /// The raw outputs (`n` rows) of a preprocessed batch. A panic inside the engine is an
    /// error (tract has panicked on graphs the fuzzer made).
    pub fn forward(&self, data: Vec<f32>, n: usize, shape: &[usize]) -> Result<Vec<f32>> {
        contained(&self.record.identifier, || self.run_engine(data, n, shape))
    }

    fn run_engine(&self, data: Vec<f32>, n: usize, shape: &[usize]) -> Result<Vec<f32>> {
        let id = &self.record.identifier;
        match &self.engine {
            Engine::Network { net, device } => {
                let ModelKind::Network { spec, .. } = &self.record.kind else {
                    unreachable!("a network engine has a network record")
                };
                if shape != spec.input {
                    return Err(Error::model(
                        id,
                        format!(
                            "inputs of shape {shape:?}, the network takes {:?}",
                            spec.input
                        ),
                    ));
                }
                let x = batch_tensor(data, n, spec.input, device);
                let out = self.pool.install(|| net.forward(x).into_data());
                out.try_to_vec::<f32>()
                    .map_err(|e| Error::model(id, format!("reading outputs: {e:?}")))
            }
            Engine::Onnx { plan, .. } => {
                let mut full = vec![n];
                full.extend_from_slice(shape);
                let input = tract_onnx::prelude::Tensor::from_shape(&full, &data)
                    .map_err(|e| Error::model(id, format!("building the input: {e}")))?;
                let out = self
                    .pool
                    .install(|| plan.run(tvec!(input.into())))
                    .map_err(|e| Error::model(id, format!("running the graph: {e}")))?;
                let view = out[0]
                    .to_plain_array_view::<f32>()
                    .map_err(|e| Error::model(id, format!("reading outputs: {e}")))?;
                Ok(view.iter().copied().collect())
            }
            Engine::Function(_) => Err(Error::model(
                id,
                "a function model has no tensor forward pass",
            )),
        }
    }
}

impl PipelineModel {
    /// One result per input, where an input that cannot be processed fails alone: inputs are
    /// preprocessed one by one (in parallel on the model's pool), the rest go through the
    /// forward pass in batches, and a batch whose forward pass fails is retried input by
    /// input. Listeners use this so one bad document never fails its neighbours.
    pub fn predict_each(&self, inputs: &[Value]) -> Vec<Result<Value>> {
        let id = &self.record.identifier;
        if let Engine::Function(f) = &self.engine {
            let f = |xs: &[Value]| contained(id, || f(xs));
            if let Ok(out) = f(inputs) {
                if out.len() == inputs.len() {
                    return out.into_iter().map(Ok).collect();
                }
            }
            return inputs
                .iter()
                .map(|v| {
                    let mut out = f(std::slice::from_ref(v))?;
                    match (out.pop(), out.is_empty()) {
                        (Some(v), true) => Ok(v),
                        _ => Err(Error::model(
                            id,
                            "the function returned a wrong number of outputs",
                        )),
                    }
                })
                .collect();
        }
        use rayon::prelude::*;
        let steps = &self.record.preprocess;
        let prepared: Vec<std::result::Result<Input, String>> = self
            .pool
            .install(|| inputs.par_iter().map(|v| preprocess(steps, v)).collect());
        let mut results: Vec<Option<Result<Value>>> = (0..inputs.len()).map(|_| None).collect();
        let mut ready: Vec<(usize, Input)> = Vec::with_capacity(inputs.len());
        for (i, p) in prepared.into_iter().enumerate() {
            match p {
                Ok(input) => ready.push((i, input)),
                Err(e) => results[i] = Some(Err(Error::model(id, e))),
            }
        }
        let shape = ready.first().map(|(_, x)| x.shape.clone());
        if let Some(shape) = shape {
            let (same, other): (Vec<_>, Vec<_>) =
                ready.into_iter().partition(|(_, x)| x.shape == shape);
            for (i, x) in other {
                results[i] = Some(Err(Error::model(
                    id,
                    format!("input has shape {:?}, its batch {shape:?}", x.shape),
                )));
            }
            for chunk in same.chunks(self.record.batch_size.max(1)) {
                let mut data = Vec::with_capacity(chunk.len() * chunk[0].1.data.len());
                for (_, x) in chunk {
                    data.extend_from_slice(&x.data);
                }
                match self.forward(data, chunk.len(), &shape) {
                    Ok(raw) => {
                        let width = (raw.len() / chunk.len()).max(1);
                        for ((i, _), row) in chunk.iter().zip(raw.chunks(width)) {
                            results[*i] = Some(Ok(self.record.postprocess.apply(row)));
                        }
                    }
                    Err(e) if chunk.len() == 1 => results[chunk[0].0] = Some(Err(e)),
                    Err(_) => {
                        for (i, x) in chunk {
                            results[*i] = Some(
                                self.forward(x.data.clone(), 1, &shape)
                                    .map(|raw| self.record.postprocess.apply(&raw)),
                            );
                        }
                    }
                }
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(Error::model(id, "input was not processed"))))
            .collect()
    }
}

impl Model for PipelineModel {
    fn identifier(&self) -> &str {
        &self.record.identifier
    }

    fn version(&self) -> Option<u32> {
        self.version
    }

    fn output_codec(&self) -> Option<&str> {
        match self.engine {
            Engine::Function(_) => None,
            _ => self.record.postprocess.output_codec(),
        }
    }

    fn predict(&self, inputs: &[Value]) -> Result<Vec<Value>> {
        if let Engine::Function(f) = &self.engine {
            return contained(&self.record.identifier, || f(inputs));
        }
        let mut outputs = Vec::with_capacity(inputs.len());
        for (b, chunk) in inputs.chunks(self.record.batch_size).enumerate() {
            let (data, shape) = self.preprocess_batch(chunk, b * self.record.batch_size)?;
            let raw = self.forward(data, chunk.len(), &shape)?;
            let width = raw.len() / chunk.len().max(1);
            outputs.extend(
                raw.chunks(width.max(1))
                    .map(|row| self.record.postprocess.apply(row)),
            );
        }
        Ok(outputs)
    }
}
