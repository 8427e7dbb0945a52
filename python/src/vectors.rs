//! Vector search from Python: `db.vector_index(...)`, `collection.like(...)` and
//! `model.features(...)`, over the `vigil` crate's vector indexes.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use vigil::{LikeQuery, Measure, VectorIndex};

use crate::convert::{document_to_py, json_or_empty, to_document, to_value};
use crate::db::{PyCollection, PyDatalayer};
use crate::errors::IntoPy;
use crate::models::PyModel;

fn measure(name: &str) -> PyResult<Measure> {
    Measure::parse(name).ok_or_else(|| {
        PyValueError::new_err(format!(
            "unknown measure {name:?}: use \"cosine\", \"l2\" or \"dot\""
        ))
    })
}

#[pymethods]
impl PyDatalayer {
    /// Creates (or updates) a vector index over a listener's vector outputs; returns its
    /// registry version.
    #[pyo3(signature = (identifier, listener, measure="cosine", approximate_above=None))]
    fn vector_index(
        &self,
        py: Python<'_>,
        identifier: &str,
        listener: &str,
        measure: &str,
        approximate_above: Option<usize>,
    ) -> PyResult<u32> {
        let mut index = VectorIndex::new(identifier, listener).measure(self::measure(measure)?);
        if let Some(n) = approximate_above {
            index = index.approximate_above(n);
        }
        py.detach(|| self.db.add_vector_index(&index)).py()
    }

    /// What a vector index holds now: vectors, dimension, skipped outputs, model version.
    fn vector_index_status(&self, py: Python<'_>, identifier: &str) -> PyResult<Py<PyAny>> {
        let s = py.detach(|| self.db.vector_index_status(identifier)).py()?;
        let d = PyDict::new(py);
        d.set_item("identifier", s.identifier)?;
        d.set_item("listener", s.listener)?;
        d.set_item("measure", s.measure.name())?;
        d.set_item("model_version", s.model_version)?;
        d.set_item("vectors", s.vectors)?;
        d.set_item("dimension", s.dimension)?;
        d.set_item("skipped", s.skipped)?;
        d.set_item("skip_reason", s.skip_reason)?;
        d.set_item("approximate", s.approximate)?;
        Ok(d.into_any().unbind())
    }
}

#[pymethods]
impl PyCollection {
    /// The documents nearest a query by a vector index, nearest first, as
    /// `[{"score": …, "document": {…}}]`. The query is a dict holding the listener's input
    /// (`{"img": image}`), or the input itself (a PIL image, a numpy array), or `id=` a
    /// stored document's `_id`, or `vector=` a list or numpy array of floats.
    #[pyo3(signature = (query=None, *, id=None, vector=None, index=None, n=10, filter=None, exact=false))]
    #[allow(clippy::too_many_arguments)]
    fn like(
        &self,
        py: Python<'_>,
        query: Option<&Bound<'_, PyAny>>,
        id: Option<&Bound<'_, PyAny>>,
        vector: Option<&Bound<'_, PyAny>>,
        index: Option<&str>,
        n: usize,
        filter: Option<&Bound<'_, PyAny>>,
        exact: bool,
    ) -> PyResult<Py<PyAny>> {
        let given = [query, id, vector].iter().filter(|q| q.is_some()).count();
        if given != 1 {
            return Err(PyTypeError::new_err(
                "like() takes one query: a document or input, id=, or vector=",
            ));
        }
        let query = if let Some(id) = id {
            LikeQuery::Id(to_value(id, "id", 0)?)
        } else if let Some(v) = vector {
            let mut floats = Vec::new();
            for (i, x) in v.try_iter()?.enumerate() {
                floats.push(x?.extract::<f32>().map_err(|_| {
                    PyTypeError::new_err(format!("vector element {i} is not a number"))
                })?);
            }
            LikeQuery::Vector(floats)
        } else {
            let q = query.expect("one query was given");
            if q.is_instance_of::<PyDict>() {
                LikeQuery::Document(to_document(q)?)
            } else {
                LikeQuery::Input(to_value(q, "query", 0)?)
            }
        };
        let mut like = self
            .inner
            .like(query)
            .n(n)
            .filter(json_or_empty(filter)?)
            .exact(exact);
        if let Some(index) = index {
            like = like.index(index);
        }
        let hits = py.detach(|| like.run()).py()?;
        let list = PyList::empty(py);
        for hit in hits {
            let d = PyDict::new(py);
            d.set_item("score", hit.score)?;
            d.set_item("document", document_to_py(py, &hit.document)?)?;
            list.append(d)?;
        }
        Ok(list.into_any().unbind())
    }
}

#[pymethods]
impl PyModel {
    /// A model running this declarative network up to the layer named `layer` (and the ReLU
    /// after it), with the same weights, giving that layer's values as a vector per input.
    fn features(&self, identifier: &str, layer: &str) -> PyResult<PyModel> {
        let model = self.lock().features(identifier, layer).py()?;
        Ok(PyModel::wrap(model))
    }
}
