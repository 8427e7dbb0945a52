//! `vigil.Datalayer`, `vigil.Collection` and `vigil.Cursor`: documents in and out. Database
//! work runs with the GIL released; documents cross the boundary one by one as the database
//! pulls or yields them, never as a whole result.

use std::collections::VecDeque;
use std::sync::Mutex;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use serde_json::{json, Value as Json};
use vigil::{Collection, Datalayer, Document, UpdateOutcome};

use crate::convert::{document_to_py, json_or_empty, to_document, to_json, to_py};
use crate::errors::IntoPy;

/// Documents converted per visit to the interpreter while inserting.
const INSERT_CHUNK: usize = 128;

/// Documents converted per trip across the GIL boundary while reading.
const READ_BATCH: usize = 256;

/// Connects to a database by URL: `sqlite://PATH` (created if missing), `sqlite::memory:`,
/// `postgres://USER@HOST:PORT/DB[?schema=NAME]`.
#[pyfunction]
#[pyo3(signature = (url, *, seed=None, valid_probability=None))]
pub fn connect(
    py: Python<'_>,
    url: &str,
    seed: Option<u64>,
    valid_probability: Option<f64>,
) -> PyResult<PyDatalayer> {
    let mut options = vigil::Options::new();
    if let Some(s) = seed {
        options = options.seed(s);
    }
    if let Some(p) = valid_probability {
        options = options.valid_probability(p);
    }
    let url = url.to_string();
    let db = py.detach(move || options.connect(&url)).py()?;
    Ok(PyDatalayer { db })
}

/// A database: its collections, registry, listeners and jobs. `db["mnist"]` is a collection.
#[pyclass(name = "Datalayer", module = "vigil", frozen)]
pub struct PyDatalayer {
    pub db: Datalayer,
}

#[pymethods]
impl PyDatalayer {
    /// A collection (created by its first insert).
    fn collection(&self, name: &str) -> PyResult<PyCollection> {
        Ok(PyCollection {
            inner: self.db.collection(name).py()?,
        })
    }

    fn __getitem__(&self, name: &str) -> PyResult<PyCollection> {
        self.collection(name)
    }

    /// The collections' names, sorted.
    fn list_collection_names(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        py.detach(|| self.db.list_collections()).py()
    }

    /// Drops a collection with its documents, indexes and listeners; False if it did not exist.
    fn drop_collection(&self, py: Python<'_>, name: &str) -> PyResult<bool> {
        py.detach(|| self.db.drop_collection(name)).py()
    }

    fn __repr__(&self) -> String {
        format!("<vigil.Datalayer on {}>", self.db.backend().name())
    }
}

/// A collection of documents, queried with Mongo-style filters that run in the database.
#[pyclass(name = "Collection", module = "vigil", frozen)]
pub struct PyCollection {
    pub inner: Collection,
}

/// An update's result with pymongo's names: `matched_count`, `modified_count`,
/// `upserted_id` (None unless an upsert inserted).
fn outcome(py: Python<'_>, o: vigil::UpsertOutcome) -> PyResult<Py<PyAny>> {
    let d = PyDict::new(py);
    d.set_item("matched_count", o.matched)?;
    d.set_item("modified_count", o.modified)?;
    match &o.upserted_id {
        Some(id) => d.set_item("upserted_id", to_py(py, id)?)?,
        None => d.set_item("upserted_id", py.None())?,
    }
    Ok(d.into_any().unbind())
}

fn plain(o: UpdateOutcome) -> vigil::UpsertOutcome {
    vigil::UpsertOutcome {
        matched: o.matched,
        modified: o.modified,
        upserted_id: None,
    }
}

#[pymethods]
impl PyCollection {
    /// The collection's name.
    #[getter]
    fn name(&self) -> &str {
        self.inner.name()
    }

    /// Inserts one document (a dict); returns its `_id`.
    fn insert_one(&self, py: Python<'_>, document: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let doc = to_document(document)?;
        let id = py.detach(|| self.inner.insert_one(doc)).py()?;
        to_py(py, &id)
    }

    /// Inserts documents from any iterable, in one transaction: all or none. The iterable is
    /// read one document at a time as the database writes them, so a generator larger than
    /// memory inserts in bounded memory. Returns the `_id`s.
    fn insert_many(&self, py: Python<'_>, documents: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        // A sized iterable (a list) says how many documents come, so the backend can pull
        // and encode them on its second thread while this one writes.
        let hint = documents.len().unwrap_or(0);
        let iter = documents.try_iter()?.unbind();
        let failure: Mutex<Option<PyErr>> = Mutex::new(None);
        // Documents are converted a chunk at a time, each chunk in one visit to the
        // interpreter: attaching a thread to it costs more than converting a digit.
        let mut chunk: VecDeque<vigil::Result<Document>> = VecDeque::new();
        let mut exhausted = false;
        let pull = std::iter::from_fn(|| {
            if chunk.is_empty() && !exhausted {
                Python::attach(|py| {
                    let it = iter.bind(py);
                    while chunk.len() < INSERT_CHUNK {
                        let Some(next) = it.clone().next() else {
                            exhausted = true;
                            break;
                        };
                        match next.and_then(|obj| to_document(&obj)) {
                            Ok(doc) => chunk.push_back(Ok(doc)),
                            Err(e) => {
                                let text = e.to_string();
                                *failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                                chunk.push_back(Err(vigil::Error::InvalidDocument {
                                    location: Default::default(),
                                    reason: text,
                                }));
                                exhausted = true;
                                break;
                            }
                        }
                    }
                });
            }
            chunk.pop_front()
        });
        let source = Hinted { inner: pull, hint };
        let result = py.detach(|| self.inner.insert_from(source));
        if let Some(e) = failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
            return Err(e); // the Python error (a bad value, or the iterable's own) as raised
        }
        let ids = result.py()?;
        let list = PyList::empty(py);
        for id in &ids {
            list.append(to_py(py, id)?)?;
        }
        Ok(list.into_any().unbind())
    }

    /// A lazy cursor over the documents `filter` matches; refine it with `.sort()`,
    /// `.skip()`, `.limit()`, then iterate.
    #[pyo3(signature = (filter=None, projection=None))]
    fn find(
        &self,
        filter: Option<&Bound<'_, PyAny>>,
        projection: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyCursor> {
        Ok(PyCursor {
            collection: self.inner.clone(),
            query: Mutex::new(Query {
                filter: json_or_empty(filter)?,
                projection: projection
                    .filter(|p| !p.is_none())
                    .map(to_json)
                    .transpose()?,
                sort: None,
                skip: 0,
                limit: None,
            }),
            running: Mutex::new(None),
        })
    }

    /// The first matching document, or None.
    #[pyo3(signature = (filter=None, projection=None))]
    fn find_one(
        &self,
        py: Python<'_>,
        filter: Option<&Bound<'_, PyAny>>,
        projection: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let filter = json_or_empty(filter)?;
        let projection = projection
            .filter(|p| !p.is_none())
            .map(to_json)
            .transpose()?;
        let doc = py
            .detach(|| {
                let mut find = self.inner.find(filter).limit(1);
                if let Some(p) = projection {
                    find = find.projection(p);
                }
                find.run()?.next().transpose()
            })
            .py()?;
        match doc {
            Some(d) => Ok(document_to_py(py, &d)?.into_any().unbind()),
            None => Ok(py.None()),
        }
    }

    /// Runs an aggregation pipeline (a list of stages: `$match`, `$group`, `$sort`, `$skip`,
    /// `$limit`, `$project`, `$addFields`, `$unwind`, `$count`), as pymongo's `aggregate`;
    /// iterate the result for dicts.
    fn aggregate(&self, py: Python<'_>, pipeline: &Bound<'_, PyAny>) -> PyResult<PyCommandCursor> {
        let pipeline = to_json(pipeline)?;
        let cursor = py.detach(|| self.inner.aggregate(pipeline)).py()?;
        Ok(PyCommandCursor {
            running: Mutex::new(Running::new(cursor)),
        })
    }

    /// How many documents `filter` matches (counted in the database).
    #[pyo3(signature = (filter=None))]
    fn count_documents(&self, py: Python<'_>, filter: Option<&Bound<'_, PyAny>>) -> PyResult<u64> {
        let filter = json_or_empty(filter)?;
        py.detach(|| self.inner.count(filter)).py()
    }

    /// Applies `update` (`$set`, `$unset`, `$inc`, …) to the first matching document.
    /// With `upsert=True`, inserts a document when none matches: the filter's equalities
    /// with the update applied (`$setOnInsert` included).
    #[pyo3(signature = (filter, update, upsert=false))]
    fn update_one(
        &self,
        py: Python<'_>,
        filter: &Bound<'_, PyAny>,
        update: &Bound<'_, PyAny>,
        upsert: bool,
    ) -> PyResult<Py<PyAny>> {
        if upsert {
            self.change(py, filter, update, Collection::upsert_one)
        } else {
            self.change(py, filter, update, |c, f, d| c.update_one(f, d).map(plain))
        }
    }

    /// Applies `update` to every matching document, in one transaction.
    fn update_many(
        &self,
        py: Python<'_>,
        filter: &Bound<'_, PyAny>,
        update: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        self.change(py, filter, update, |c, f, d| c.update_many(f, d).map(plain))
    }

    /// Replaces the first matching document, keeping its `_id`; with `upsert=True`,
    /// inserts `replacement` when none matches.
    #[pyo3(signature = (filter, replacement, upsert=false))]
    fn replace_one(
        &self,
        py: Python<'_>,
        filter: &Bound<'_, PyAny>,
        replacement: &Bound<'_, PyAny>,
        upsert: bool,
    ) -> PyResult<Py<PyAny>> {
        if upsert {
            self.change(py, filter, replacement, Collection::replace_or_insert)
        } else {
            self.change(py, filter, replacement, |c, f, d| {
                c.replace_one(f, d).map(plain)
            })
        }
    }

    /// Deletes the first matching document; returns how many (0 or 1).
    fn delete_one(&self, py: Python<'_>, filter: &Bound<'_, PyAny>) -> PyResult<u64> {
        let f = to_json(filter)?;
        py.detach(|| self.inner.delete_one(f)).py()
    }

    /// Deletes every matching document; returns how many.
    fn delete_many(&self, py: Python<'_>, filter: &Bound<'_, PyAny>) -> PyResult<u64> {
        let f = to_json(filter)?;
        py.detach(|| self.inner.delete_many(f)).py()
    }

    /// Indexes a field path, so filters and sorts on it need no full scan.
    fn create_index(&self, py: Python<'_>, path: &str) -> PyResult<()> {
        py.detach(|| self.inner.create_index(path)).py()
    }

    fn __repr__(&self) -> String {
        format!("<vigil.Collection {}>", self.inner.name())
    }
}

/// An iterator with a size hint from the Python side.
struct Hinted<I> {
    inner: I,
    hint: usize,
}

impl<I: Iterator> Iterator for Hinted<I> {
    type Item = I::Item;
    fn next(&mut self) -> Option<I::Item> {
        self.hint = self.hint.saturating_sub(1);
        self.inner.next()
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.hint, None)
    }
}

impl PyCollection {
    /// An update or replace: converted here, run without the GIL, counted as pymongo does.
    fn change(
        &self,
        py: Python<'_>,
        filter: &Bound<'_, PyAny>,
        doc: &Bound<'_, PyAny>,
        op: fn(&Collection, Json, Document) -> vigil::Result<vigil::UpsertOutcome>,
    ) -> PyResult<Py<PyAny>> {
        let (f, d) = (to_json(filter)?, to_document(doc)?);
        let o = py.detach(|| op(&self.inner, f, d)).py()?;
        outcome(py, o)
    }
}

struct Query {
    filter: Json,
    projection: Option<Json>,
    sort: Option<Json>,
    skip: u64,
    limit: Option<u64>,
}

struct Running {
    cursor: vigil::Cursor,
    buffer: VecDeque<Document>,
    done: bool,
}

/// A lazy query: nothing runs until it is iterated.
#[pyclass(name = "Cursor", module = "vigil", frozen)]
pub struct PyCursor {
    collection: Collection,
    query: Mutex<Query>,
    running: Mutex<Option<Running>>,
}

impl PyCursor {
    fn refine(slf: &Bound<'_, Self>, f: impl FnOnce(&mut Query)) -> PyResult<Py<Self>> {
        if slf
            .get()
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
        {
            return Err(PyValueError::new_err(
                "the cursor is already being iterated",
            ));
        }
        f(&mut slf.get().query.lock().unwrap_or_else(|p| p.into_inner()));
        Ok(slf.clone().unbind())
    }

    /// The collection and filter of this query (for `select=` arguments).
    pub fn selection(&self) -> (Collection, Json) {
        let q = self.query.lock().unwrap_or_else(|p| p.into_inner());
        (self.collection.clone(), q.filter.clone())
    }
}

#[pymethods]
impl PyCursor {
    /// Sorts by `key` (`1` ascending, `-1` descending), or by a dict or list of pairs.
    #[pyo3(signature = (key, direction=None))]
    fn sort(
        slf: &Bound<'_, Self>,
        key: &Bound<'_, PyAny>,
        direction: Option<i64>,
    ) -> PyResult<Py<Self>> {
        let spec = match key.extract::<String>() {
            Ok(k) => json!({ k: direction.unwrap_or(1) }),
            Err(_) => {
                let j = to_json(key)?;
                match j {
                    Json::Array(pairs) => {
                        let mut map = serde_json::Map::new();
                        for p in pairs {
                            if let Some([k, d]) = p.as_array().map(|a| a.as_slice()) {
                                if let Some(k) = k.as_str() {
                                    map.insert(k.to_string(), d.clone());
                                    continue;
                                }
                            }
                            return Err(PyValueError::new_err("sort pairs are (key, direction)"));
                        }
                        Json::Object(map)
                    }
                    other => other,
                }
            }
        };
        Self::refine(slf, |q| q.sort = Some(spec))
    }

    /// Passes over the first `n` documents.
    fn skip(slf: &Bound<'_, Self>, n: u64) -> PyResult<Py<Self>> {
        Self::refine(slf, |q| q.skip = n)
    }

    /// At most `n` documents (0: no limit, as in MongoDB).
    fn limit(slf: &Bound<'_, Self>, n: u64) -> PyResult<Py<Self>> {
        Self::refine(slf, |q| q.limit = Some(n))
    }

    /// The name of the collection queried.
    #[getter]
    fn collection_name(&self) -> String {
        self.collection.name().to_string()
    }

    /// The filter, as given.
    #[getter]
    fn filter(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        crate::convert::json_to_py(py, &self.selection().1)
    }

    fn __iter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if running.is_none() {
            let (filter, projection, sort, skip, limit) = {
                let q = self.query.lock().unwrap_or_else(|p| p.into_inner());
                (
                    q.filter.clone(),
                    q.projection.clone(),
                    q.sort.clone(),
                    q.skip,
                    q.limit,
                )
            };
            let cursor = py
                .detach(|| {
                    let mut find = self.collection.find(filter).skip(skip);
                    if let Some(p) = projection {
                        find = find.projection(p);
                    }
                    if let Some(s) = sort {
                        find = find.sort(s);
                    }
                    if let Some(l) = limit {
                        find = find.limit(l);
                    }
                    find.run()
                })
                .py()?;
            *running = Some(Running::new(cursor));
        }
        running.as_mut().expect("started above").next(py)
    }
}

impl Running {
    fn new(cursor: vigil::Cursor) -> Running {
        Running {
            cursor,
            buffer: VecDeque::new(),
            done: false,
        }
    }

    /// The next document as a dict, reading a batch with the GIL released when the buffer
    /// is empty.
    fn next(&mut self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        if self.buffer.is_empty() && !self.done {
            let (cursor, buffer) = (&mut self.cursor, &mut self.buffer);
            let finished = py
                .detach(|| -> vigil::Result<bool> {
                    while buffer.len() < READ_BATCH {
                        match cursor.next() {
                            Some(doc) => buffer.push_back(doc?),
                            None => return Ok(true),
                        }
                    }
                    Ok(false)
                })
                .py()?;
            self.done = finished;
        }
        match self.buffer.pop_front() {
            Some(doc) => Ok(Some(document_to_py(py, &doc)?.into_any().unbind())),
            None => Ok(None),
        }
    }
}

/// The results of `Collection.aggregate`, streamed as they are computed.
#[pyclass(name = "CommandCursor", module = "vigil", frozen)]
pub struct PyCommandCursor {
    running: Mutex<Running>,
}

#[pymethods]
impl PyCommandCursor {
    fn __iter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .next(py)
    }
}
