//! `vigil.Model`, training, listeners, jobs and workers. Models are declarative (networks as
//! data, ONNX graphs, pipelines as data) and stored; a Python callable is a model of this
//! process only (loading runs no code, so it is stored by name and must be registered again,
//! under the same name, in every process that runs it).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};
use serde_json::Value as Json;
use vigil::ml::{register_function, register_metric, NetworkSpec, Postprocess, Preprocess};
use vigil::{
    Applied, Dataset, FitOptions, FitProgress, JobRecord, Metric, Model, PipelineModel, Progress,
    TrainerConfig, Value, WorkerOptions,
};

use crate::convert::{json_or_empty, json_to_py, to_json, to_py, to_value};
use crate::db::{PyCollection, PyCursor, PyDatalayer};
use crate::errors::{to_py as err_to_py, IntoPy};

fn from_json<T: serde::de::DeserializeOwned>(what: &str, json: Json) -> PyResult<T> {
    serde_json::from_value(json).map_err(|e| PyValueError::new_err(format!("invalid {what}: {e}")))
}

fn to_pyjson<T: serde::Serialize>(py: Python<'_>, value: &T) -> PyResult<Py<PyAny>> {
    let json = serde_json::to_value(value).map_err(|e| PyValueError::new_err(e.to_string()))?;
    json_to_py(py, &json)
}

/// A spec given as a dict or as JSON text.
fn json_arg(obj: &Bound<'_, PyAny>) -> PyResult<Json> {
    match obj.extract::<String>() {
        Ok(text) => serde_json::from_str(&text)
            .map_err(|e| PyValueError::new_err(format!("not valid JSON: {e}"))),
        Err(_) => to_json(obj),
    }
}

fn pipeline(
    model: PipelineModel,
    preprocess: Option<&Bound<'_, PyAny>>,
    postprocess: Option<&Bound<'_, PyAny>>,
    batch_size: Option<usize>,
) -> PyResult<PipelineModel> {
    let mut model = model;
    if let Some(p) = preprocess.filter(|p| !p.is_none()) {
        let steps: Vec<Preprocess> = from_json("preprocess", to_json(p)?)?;
        model = model.preprocess(steps);
    }
    if let Some(p) = postprocess.filter(|p| !p.is_none()) {
        let json = match p.extract::<String>() {
            Ok(op) => serde_json::json!({ "op": op }),
            Err(_) => to_json(p)?,
        };
        let post: Postprocess = from_json("postprocess", json)?;
        model = model.postprocess(post);
    }
    if let Some(n) = batch_size {
        model = model.batch_size(n);
    }
    Ok(model)
}

/// Python values in, Python values out, for a callable model or metric.
fn values_to_list<'py>(py: Python<'py>, values: &[Value]) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    for v in values {
        list.append(to_py(py, v)?)?;
    }
    Ok(list)
}

/// A model: `preprocess -> forward -> postprocess`.
#[pyclass(name = "Model", module = "vigil", frozen)]
pub struct PyModel {
    // Boxed: a model holds over-aligned buffers, and Python allocates its objects with only
    // the platform's usual alignment.
    pub inner: Mutex<Box<PipelineModel>>,
}

impl PyModel {
    pub fn wrap(model: PipelineModel) -> PyModel {
        PyModel {
            inner: Mutex::new(Box::new(model)),
        }
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, Box<PipelineModel>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[pymethods]
impl PyModel {
    /// A declarative network (`spec` a dict or JSON, e.g. `vigil.lenet5(10)`), initialised
    /// from `seed`.
    #[staticmethod]
    #[pyo3(signature = (identifier, spec, *, seed=42, preprocess=None, postprocess=None, batch_size=None))]
    fn network(
        identifier: &str,
        spec: &Bound<'_, PyAny>,
        seed: u64,
        preprocess: Option<&Bound<'_, PyAny>>,
        postprocess: Option<&Bound<'_, PyAny>>,
        batch_size: Option<usize>,
    ) -> PyResult<PyModel> {
        let spec: NetworkSpec = from_json("network spec", json_arg(spec)?)?;
        let model = PipelineModel::network(identifier, spec, seed).py()?;
        Ok(Self::wrap(pipeline(
            model,
            preprocess,
            postprocess,
            batch_size,
        )?))
    }

    /// A network whose weights come from a PyTorch `state_dict` file (`.pth`).
    #[staticmethod]
    #[pyo3(signature = (identifier, spec, path, *, preprocess=None, postprocess=None, batch_size=None))]
    fn pytorch(
        identifier: &str,
        spec: &Bound<'_, PyAny>,
        path: std::path::PathBuf,
        preprocess: Option<&Bound<'_, PyAny>>,
        postprocess: Option<&Bound<'_, PyAny>>,
        batch_size: Option<usize>,
    ) -> PyResult<PyModel> {
        let spec: NetworkSpec = from_json("network spec", json_arg(spec)?)?;
        let model = PipelineModel::network_from_pytorch(identifier, spec, &path).py()?;
        Ok(Self::wrap(pipeline(
            model,
            preprocess,
            postprocess,
            batch_size,
        )?))
    }

    /// An ONNX graph, from its bytes or a file path.
    #[staticmethod]
    #[pyo3(signature = (identifier, graph, *, preprocess=None, postprocess=None, batch_size=None))]
    fn onnx(
        identifier: &str,
        graph: &Bound<'_, PyAny>,
        preprocess: Option<&Bound<'_, PyAny>>,
        postprocess: Option<&Bound<'_, PyAny>>,
        batch_size: Option<usize>,
    ) -> PyResult<PyModel> {
        let bytes = match graph.cast::<PyBytes>() {
            Ok(b) => b.as_bytes().to_vec(),
            Err(_) => {
                let path: std::path::PathBuf = graph.extract()?;
                std::fs::read(&path).map_err(|e| {
                    PyValueError::new_err(format!("reading {}: {e}", path.display()))
                })?
            }
        };
        let model = PipelineModel::onnx(identifier, bytes).py()?;
        Ok(Self::wrap(pipeline(
            model,
            preprocess,
            postprocess,
            batch_size,
        )?))
    }

    /// A Python callable as a model of this process: `fn(list_of_inputs) -> list_of_outputs`,
    /// called with batches of at most `batch_size` inputs (PIL images, numpy arrays, …). It
    /// is stored by name: a worker runs it only where the same name is registered
    /// (`vigil.Worker(db, models={name: fn})`).
    #[staticmethod]
    #[pyo3(signature = (identifier, function, *, batch_size=256))]
    fn python(identifier: &str, function: Py<PyAny>, batch_size: usize) -> PyResult<PyModel> {
        register_python_function(identifier, function);
        let model = PipelineModel::function(identifier, identifier).py()?;
        Ok(Self::wrap(model.batch_size(batch_size)))
    }

    /// Its name.
    #[getter]
    fn identifier(&self) -> String {
        self.lock().identifier().to_string()
    }

    /// Its version in the registry (None until added or loaded).
    #[getter]
    fn version(&self) -> Option<u32> {
        self.lock().version()
    }

    /// Every value recorded by validations, by key (`my_valid/acc`): lists of floats.
    #[getter]
    fn metric_values(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        to_pyjson(py, self.lock().metric_values())
    }

    /// Its declarative record, as stored.
    #[getter]
    fn record(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        to_pyjson(py, self.lock().to_record())
    }

    /// Outputs for a list of inputs, in batches, with the GIL released.
    fn predict_many(&self, py: Python<'_>, inputs: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let mut values = Vec::new();
        for (i, item) in inputs.try_iter()?.enumerate() {
            values.push(to_value(&item?, &format!("#{i}"), 0)?);
        }
        let model = &self.inner;
        let outputs = py
            .detach(|| {
                model
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .predict(&values)
            })
            .py()?;
        Ok(values_to_list(py, &outputs)?.into_any().unbind())
    }

    fn __repr__(&self) -> String {
        let m = self.lock();
        format!(
            "<vigil.Model {} version {}>",
            m.identifier(),
            m.version().map_or("-".into(), |v| v.to_string())
        )
    }
}

/// Registers a Python callable as the model function `name` in this process, so that stored
/// models naming it (`Model.python(name, fn)`) can be loaded and run here.
#[pyfunction]
pub fn register_model_function(name: &str, function: Py<PyAny>) {
    register_python_function(name, function);
}

/// Registers a Python callable as vigil's model function `name`.
pub fn register_python_function(name: &str, function: Py<PyAny>) {
    let model = name.to_string();
    let f = Arc::new(move |inputs: &[Value]| -> vigil::Result<Vec<Value>> {
        Python::attach(|py| {
            let run = || -> PyResult<Vec<Value>> {
                let out = function.bind(py).call1((values_to_list(py, inputs)?,))?;
                let mut values = Vec::new();
                for (i, item) in out.try_iter()?.enumerate() {
                    values.push(to_value(&item?, &format!("output #{i}"), 0)?);
                }
                Ok(values)
            };
            let values = run().map_err(|e| vigil::Error::model(&model, e.to_string()))?;
            if values.len() != inputs.len() {
                return Err(vigil::Error::model(
                    &model,
                    format!(
                        "returned {} outputs for {} inputs",
                        values.len(),
                        inputs.len()
                    ),
                ));
            }
            Ok(values)
        })
    });
    register_function(name, f);
}

/// Registers a Python callable `fn(predictions, targets) -> float` as metric function `name`.
#[pyfunction]
pub fn register_metric_function(name: &str, function: Py<PyAny>) {
    let f = Arc::new(move |preds: &[Value], targets: &[Value]| -> f64 {
        Python::attach(|py| {
            let call = || -> PyResult<f64> {
                function
                    .bind(py)
                    .call1((values_to_list(py, preds)?, values_to_list(py, targets)?))?
                    .extract()
            };
            call().unwrap_or(f64::NAN)
        })
    });
    register_metric(name, f);
}

/// The declarative LeNet5 of the seed notebook, as a spec dict.
#[pyfunction]
pub fn lenet5(py: Python<'_>, classes: usize) -> PyResult<Py<PyAny>> {
    to_pyjson(py, &vigil::lenet5(classes))
}

/// MNIST's preprocess (decode, pad to 32x32, to a tensor, normalise), as a list of steps.
#[pyfunction]
pub fn mnist_preprocess(py: Python<'_>) -> PyResult<Py<PyAny>> {
    to_pyjson(py, &vigil::ml::mnist_preprocess())
}

/// Digits from MNIST IDX files in a directory, as `{"img": <image>, "class": N}` dicts.
#[pyfunction]
#[pyo3(signature = (directory, *, offset=0, limit=None))]
pub fn read_mnist(
    py: Python<'_>,
    directory: std::path::PathBuf,
    offset: usize,
    limit: Option<usize>,
) -> PyResult<Py<PyAny>> {
    let docs = py
        .detach(|| -> vigil::Result<Vec<vigil::Document>> {
            vigil_datasets::mnist::read_dir(&directory)?
                .skip(offset)
                .take(limit.unwrap_or(usize::MAX))
                .map(|d| d.and_then(|d| d.to_document()))
                .collect()
        })
        .py()?;
    Ok(
        values_to_list(py, &docs.into_iter().map(Value::Object).collect::<Vec<_>>())?
            .into_any()
            .unbind(),
    )
}

fn job_to_py(py: Python<'_>, job: &JobRecord) -> PyResult<Py<PyAny>> {
    to_pyjson(py, job)
}

fn applied_to_py(py: Python<'_>, a: &Applied) -> PyResult<Py<PyAny>> {
    let d = PyDict::new(py);
    d.set_item("written", a.written)?;
    d.set_item("removed", a.removed)?;
    d.set_item("unchanged", a.unchanged)?;
    d.set_item("retrying", a.retrying)?;
    d.set_item("parked", a.parked)?;
    d.set_item("stale", a.stale)?;
    Ok(d.into_any().unbind())
}

/// The collection and filter a `select=` names: a cursor (`collection.find({...})`), or a
/// collection (every document).
fn selection(select: &Bound<'_, PyAny>) -> PyResult<(vigil::Collection, Json)> {
    if let Ok(c) = select.cast::<PyCursor>() {
        return Ok(c.get().selection());
    }
    if let Ok(c) = select.cast::<PyCollection>() {
        return Ok((c.get().inner.clone(), serde_json::json!({})));
    }
    Err(PyTypeError::new_err(
        "select is a cursor (collection.find({...})) or a collection",
    ))
}

#[pymethods]
impl PyDatalayer {
    /// Stores a model (its weights or graph as an artifact); returns its new version.
    fn add_model(&self, py: Python<'_>, model: &PyModel) -> PyResult<u32> {
        let inner = &model.inner;
        py.detach(|| {
            let mut m = inner.lock().unwrap_or_else(|p| p.into_inner());
            self.db.add_model(&mut m)
        })
        .py()
    }

    /// A stored model (the latest version unless `version`).
    #[pyo3(signature = (identifier, version=None))]
    fn load_model(
        &self,
        py: Python<'_>,
        identifier: &str,
        version: Option<u32>,
    ) -> PyResult<PyModel> {
        let m = py.detach(|| self.db.load_model(identifier, version)).py()?;
        Ok(PyModel::wrap(m))
    }

    /// A stored component's record and its version.
    #[pyo3(signature = (kind, identifier, version=None))]
    fn load_record(
        &self,
        py: Python<'_>,
        kind: &str,
        identifier: &str,
        version: Option<u32>,
    ) -> PyResult<(u32, Py<PyAny>)> {
        let c = py
            .detach(|| self.db.show_record(kind, identifier, version))
            .py()?;
        Ok((c.version, json_to_py(py, &c.record)?))
    }

    /// Identifiers stored under a kind (`model`, `listener`, `dataset`, `metric`, `trainer`).
    fn show_kind(&self, py: Python<'_>, kind: &str) -> PyResult<Vec<String>> {
        py.detach(|| self.db.show(kind)).py()
    }

    /// The versions of one identifier.
    fn show_versions(&self, py: Python<'_>, kind: &str, identifier: &str) -> PyResult<Vec<u32>> {
        py.detach(|| self.db.show_versions(kind, identifier)).py()
    }

    /// Removes one version, or all; switching a listener off first when `kind` is
    /// `listener`. Returns how many records were removed.
    #[pyo3(signature = (kind, identifier, version=None))]
    fn remove(
        &self,
        py: Python<'_>,
        kind: &str,
        identifier: &str,
        version: Option<u32>,
    ) -> PyResult<u64> {
        py.detach(|| {
            if kind == vigil::LISTENER && version.is_none() {
                self.db.remove_listener(identifier)?;
            }
            self.db.remove(kind, identifier, version)
        })
        .py()
    }

    /// Trains `model` on field `x` to predict `y`, over `select`'s documents in the train
    /// fold; stores the best checkpoint as a new version. `progress(event)` is called with
    /// each step and validation.
    #[pyo3(signature = (model, x, y, select, configuration, metrics=None, validation_sets=None, progress=None))]
    #[allow(clippy::too_many_arguments)]
    fn fit_model(
        &self,
        py: Python<'_>,
        model: &PyModel,
        x: &str,
        y: &str,
        select: &Bound<'_, PyAny>,
        configuration: &Bound<'_, PyAny>,
        metrics: Option<Vec<Bound<'_, PyAny>>>,
        validation_sets: Option<Vec<Bound<'_, PyAny>>>,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let (collection, filter) = selection(select)?;
        let cfg = to_json(configuration)?;
        let id = cfg
            .get("identifier")
            .and_then(Json::as_str)
            .unwrap_or("trainer")
            .to_string();
        let mut base = serde_json::to_value(TrainerConfig::new(&id))
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        if let (Some(b), Json::Object(user)) = (base.as_object_mut(), cfg) {
            for (k, v) in user {
                b.insert(k, v);
            }
        }
        let trainer: TrainerConfig = from_json("trainer configuration", base)?;
        let mut options = FitOptions::new(x, y, &collection, filter, trainer);
        for m in metrics.unwrap_or_default() {
            options = options.metric(from_json::<Metric>("metric", to_json(&m)?)?);
        }
        for v in validation_sets.unwrap_or_default() {
            options = options.validation_set(from_json::<Dataset>("dataset", to_json(&v)?)?);
        }
        // Ctrl-C: the observer runs on this (the calling) thread between steps, looks for
        // pending signals, and on KeyboardInterrupt raises the stop flag; the training then
        // stops at once, and the interrupt is raised here.
        let stop = Arc::new(AtomicBool::new(false));
        let interrupt: Arc<Mutex<Option<PyErr>>> = Arc::default();
        let (flag, caught) = (Arc::clone(&stop), Arc::clone(&interrupt));
        options = options.stop_when(Arc::clone(&stop));
        {
            let cb = progress;
            options = options.on_progress(Arc::new(move |p: &FitProgress<'_>| {
                Python::attach(|py| {
                    if let Err(e) = py.check_signals() {
                        flag.store(true, Ordering::Relaxed);
                        *caught.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                        return;
                    }
                    let Some(cb) = &cb else {
                        return;
                    };
                    let event = PyDict::new(py);
                    let filled = match p {
                        FitProgress::Started { total_steps } => event
                            .set_item("event", "started")
                            .and_then(|_| event.set_item("total_steps", total_steps)),
                        FitProgress::Training(Progress::Step {
                            iteration,
                            epoch,
                            loss,
                        }) => event
                            .set_item("event", "step")
                            .and_then(|_| event.set_item("iteration", iteration))
                            .and_then(|_| event.set_item("epoch", epoch))
                            .and_then(|_| event.set_item("loss", loss)),
                        FitProgress::Training(Progress::Validated { iteration, values }) => event
                            .set_item("event", "validated")
                            .and_then(|_| event.set_item("iteration", iteration))
                            .and_then(|_| event.set_item("values", values.clone())),
                    };
                    // A progress display that fails must not stop the training.
                    if filled.is_ok() {
                        let _ = cb.bind(py).call1((event,));
                    }
                })
            }));
        }
        let inner = &model.inner;
        let report = py.detach(|| {
            let mut m = inner.lock().unwrap_or_else(|p| p.into_inner());
            self.db.fit(&mut m, options)
        });
        if let Some(e) = interrupt.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return Err(e);
        }
        let report = report.py()?;
        let d = PyDict::new(py);
        d.set_item("iterations", report.iterations)?;
        d.set_item("best", report.best)?;
        d.set_item("stopped_early", report.stopped_early)?;
        d.set_item("seconds", report.seconds)?;
        Ok(d.into_any().unbind())
    }

    /// Switches a listener on: `_outputs.<key>.<model>` kept current on every document
    /// `select` matches. Returns the listener and its backfill job.
    #[pyo3(signature = (collection, key, model, select=None, version=None))]
    fn listen(
        &self,
        py: Python<'_>,
        collection: &str,
        key: &str,
        model: &str,
        select: Option<&Bound<'_, PyAny>>,
        version: Option<u32>,
    ) -> PyResult<Py<PyAny>> {
        let select = json_or_empty(select)?;
        let on = py
            .detach(|| {
                self.db
                    .listen_version(collection, key, model, select, version)
            })
            .py()?;
        let d = PyDict::new(py);
        d.set_item("listener", to_pyjson(py, &on.listener)?)?;
        d.set_item("backfill", job_to_py(py, &on.backfill)?)?;
        Ok(d.into_any().unbind())
    }

    /// The installed listeners' records.
    fn listeners(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let ls = py.detach(|| self.db.listeners()).py()?;
        to_pyjson(py, &ls)
    }

    /// A listener's live state: outputs per model version, queue size, failures.
    fn listener_status(&self, py: Python<'_>, name: &str) -> PyResult<Py<PyAny>> {
        let s = py.detach(|| self.db.listener_status(name)).py()?;
        let d = PyDict::new(py);
        d.set_item("listener", to_pyjson(py, &s.listener)?)?;
        d.set_item("outputs", to_pyjson(py, &s.outputs)?)?;
        d.set_item("pending", s.pending)?;
        d.set_item("retrying", s.retrying)?;
        d.set_item("parked", s.parked)?;
        Ok(d.into_any().unbind())
    }

    /// Runs every listener's due work in this process until none is due (Ctrl-C stops
    /// between batches). `progress(totals)` is called after each batch.
    #[pyo3(signature = (progress=None))]
    fn process_pending(&self, py: Python<'_>, progress: Option<Py<PyAny>>) -> PyResult<Py<PyAny>> {
        let mut worker = py.detach(|| self.db.worker(WorkerOptions::new())).py()?;
        let mut total = Applied::default();
        loop {
            py.check_signals()?;
            match py.detach(|| worker.run_once()).py()? {
                Some(applied) => {
                    total.add(applied);
                    if let Some(cb) = &progress {
                        cb.bind(py).call1((applied_to_py(py, &total)?,))?;
                    }
                }
                None => break,
            }
        }
        applied_to_py(py, &total)
    }

    /// Computes listener work as it comes until Ctrl-C (or `stop_after_idle` seconds idle,
    /// when given), like `vigil worker`; database errors are retried with backoff. A batch
    /// running past `time_limit` seconds in the model, or raising a panic, is split until the
    /// documents causing it stand alone; they are recorded as failed.
    #[pyo3(signature = (*, batch_size=256, lease_seconds=30.0, idle_wait=0.25, stop_after_idle=None, time_limit=300.0, max_attempts=5))]
    #[allow(clippy::too_many_arguments)]
    fn run_worker(
        &self,
        py: Python<'_>,
        batch_size: usize,
        lease_seconds: f64,
        idle_wait: f64,
        stop_after_idle: Option<f64>,
        time_limit: f64,
        max_attempts: u32,
    ) -> PyResult<Py<PyAny>> {
        let options = WorkerOptions::new()
            .time_limit(Duration::from_secs_f64(time_limit.max(0.001)))
            .max_attempts(max_attempts)
            .batch_size(batch_size)
            .lease(Duration::from_secs_f64(lease_seconds.max(0.0)))
            .idle_wait(Duration::from_secs_f64(idle_wait.max(0.0)));
        let mut worker = py.detach(|| self.db.worker(options)).py()?;
        let mut total = Applied::default();
        let mut idle_since = std::time::Instant::now();
        let mut backoff = Duration::from_millis(100);
        loop {
            py.check_signals()?;
            let step = py.detach(|| -> vigil::Result<bool> {
                match worker.run_once()? {
                    Some(applied) => {
                        total.add(applied);
                        Ok(true)
                    }
                    None => {
                        // Short waits, so Ctrl-C is seen promptly.
                        self.db
                            .wait_for_work(Duration::from_secs_f64(idle_wait.clamp(0.0, 0.25)))?;
                        Ok(false)
                    }
                }
            });
            match step {
                Ok(true) => {
                    idle_since = std::time::Instant::now();
                    backoff = Duration::from_millis(100);
                }
                Ok(false) => {
                    if stop_after_idle.is_some_and(|s| idle_since.elapsed().as_secs_f64() >= s) {
                        break;
                    }
                }
                Err(e @ vigil::Error::Backend { .. }) => {
                    let warn = err_to_py(e);
                    let _ = py
                        .import("warnings")
                        .and_then(|w| w.call_method1("warn", (warn.to_string(),)));
                    py.detach(|| std::thread::sleep(backoff));
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
                Err(e) => return Err(err_to_py(e)),
            }
        }
        applied_to_py(py, &total)
    }

    /// The most recent jobs (backfills, fits, incremental batches).
    #[pyo3(signature = (limit=20))]
    fn jobs(&self, py: Python<'_>, limit: usize) -> PyResult<Py<PyAny>> {
        let jobs = py.detach(|| self.db.jobs(limit)).py()?;
        to_pyjson(py, &jobs)
    }

    /// Queues a listener's parked documents again (attempts reset); returns how many.
    fn retry_parked(&self, py: Python<'_>, listener: &str) -> PyResult<u64> {
        py.detach(|| self.db.retry_parked(listener)).py()
    }

    /// Documents listeners failed on, with the reason, attempts and whether parked.
    #[pyo3(signature = (listener=None))]
    fn errors(&self, py: Python<'_>, listener: Option<&str>) -> PyResult<Py<PyAny>> {
        let f = py.detach(|| self.db.failures(listener)).py()?;
        to_pyjson(py, &f)
    }
}
