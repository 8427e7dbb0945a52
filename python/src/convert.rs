//! Python objects to vigil values and back. Dicts, lists, tuples, strings, numbers, booleans,
//! `None` and bytes map to their JSON-like counterparts; a `PIL.Image` crosses as raw pixels
//! and is PNG-encoded here (not by PIL); a numpy array crosses as its raw data, dtype and shape
//! and is stored under the `tensor` codec. Back, images become `PIL.Image`s and tensors numpy
//! arrays when those libraries import, else [`Encoded`] objects.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple,
};
use serde_json::Value as Json;
use vigil::{DType, Document, Encoded as RustEncoded, Tensor, Value};

use crate::errors::IntoPy;

/// Deepest nesting accepted from Python (deeper documents would exhaust the stack).
const MAX_DEPTH: usize = 200;

/// Bytes under a codec, as returned when the library that reads them is not installed.
#[pyclass(module = "vigil", frozen)]
pub struct Encoded {
    /// The codec's name, e.g. `image/png`.
    #[pyo3(get)]
    codec: String,
    value: RustEncoded,
}

#[pymethods]
impl Encoded {
    #[new]
    fn new(codec: String, data: Vec<u8>) -> Self {
        Encoded {
            value: RustEncoded::new(codec.clone(), data),
            codec,
        }
    }

    /// The encoded bytes.
    #[getter]
    fn bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.value.bytes())
    }

    /// The image as a `PIL.Image` (Pillow must be installed).
    fn to_pil(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let img = Value::Encoded(self.value.clone()).to_image().py()?;
        image_to_pil(py, &img)
    }

    /// The tensor as a numpy array (numpy must be installed).
    fn to_numpy(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let t = Value::Encoded(self.value.clone()).to_tensor().py()?;
        tensor_to_numpy(py, &t)
    }

    fn __repr__(&self) -> String {
        format!(
            "<vigil.Encoded {} ({} bytes)>",
            self.codec,
            self.value.bytes().len()
        )
    }
}

fn at(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// A Python object as a document (it must be a dict with string keys).
pub fn to_document(obj: &Bound<'_, PyAny>) -> PyResult<Document> {
    match to_value(obj, "", 0)? {
        Value::Object(d) => Ok(d),
        _ => Err(PyTypeError::new_err(format!(
            "a document is a dict, not {}",
            type_name(obj)
        ))),
    }
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

/// A Python object as a value; `path` names where it sits, for errors.
pub fn to_value(obj: &Bound<'_, PyAny>, path: &str, depth: usize) -> PyResult<Value> {
    if depth > MAX_DEPTH {
        return Err(PyValueError::new_err(format!(
            "`{path}` is nested more than {MAX_DEPTH} levels deep"
        )));
    }
    if obj.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if obj.is_instance_of::<PyInt>() {
        return obj.extract::<i64>().map(Value::Int).map_err(|_| {
            PyValueError::new_err(format!("`{path}`: integer out of the 64-bit range"))
        });
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        return Ok(Value::Float(f.value()));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Value::String(s.extract::<String>()?));
    }
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(Value::Bytes(b.as_bytes().to_vec()));
    }
    if let Ok(b) = obj.cast::<PyByteArray>() {
        return Ok(Value::Bytes(b.to_vec()));
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        let mut doc = Document::new();
        for (k, v) in d.iter() {
            let key: String = k.extract().map_err(|_| {
                PyTypeError::new_err(format!(
                    "`{path}`: field names are strings, not {}",
                    type_name(&k)
                ))
            })?;
            let value = to_value(&v, &at(path, &key), depth + 1)?;
            doc.insert(key, value);
        }
        return Ok(Value::Object(doc));
    }
    if obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>() {
        let mut items = Vec::new();
        for (i, v) in obj.try_iter()?.enumerate() {
            items.push(to_value(&v?, &at(path, &i.to_string()), depth + 1)?);
        }
        return Ok(Value::Array(items));
    }
    if let Ok(e) = obj.cast::<Encoded>() {
        return Ok(Value::Encoded(e.get().value.clone()));
    }
    // PIL images also offer `__array_interface__`: they are recognised first.
    if obj.hasattr("tobytes")? && obj.hasattr("mode")? && obj.hasattr("getbands")? {
        return pil_to_value(obj, path);
    }
    if obj.hasattr("__array_interface__")? && obj.hasattr("dtype")? {
        return numpy_to_value(obj, path);
    }
    Err(PyTypeError::new_err(format!(
        "`{path}`: cannot store a {} (vigil stores None, bool, int, float, str, bytes, dict, list, \
         tuple, PIL images and numpy arrays)",
        type_name(obj)
    )))
}

/// A `PIL.Image` as an `image/png` value: its pixels cross as raw bytes and are encoded here.
fn pil_to_value(obj: &Bound<'_, PyAny>, path: &str) -> PyResult<Value> {
    let mut img = obj.clone();
    let mut mode: String = img.getattr("mode")?.extract()?;
    if !matches!(mode.as_str(), "L" | "LA" | "RGB" | "RGBA") {
        let target = if mode == "1" { "L" } else { "RGBA" };
        img = img.call_method1("convert", (target,))?;
        mode = target.to_string();
    }
    let (w, h): (u32, u32) = img.getattr("size")?.extract()?;
    let raw: Vec<u8> = img.call_method0("tobytes")?.extract()?;
    let bad = || {
        PyValueError::new_err(format!(
            "`{path}`: the image's pixels do not match its size"
        ))
    };
    let dynamic = match mode.as_str() {
        "L" => {
            image::DynamicImage::ImageLuma8(image::GrayImage::from_raw(w, h, raw).ok_or_else(bad)?)
        }
        "LA" => image::DynamicImage::ImageLumaA8(
            image::GrayAlphaImage::from_raw(w, h, raw).ok_or_else(bad)?,
        ),
        "RGB" => {
            image::DynamicImage::ImageRgb8(image::RgbImage::from_raw(w, h, raw).ok_or_else(bad)?)
        }
        _ => {
            image::DynamicImage::ImageRgba8(image::RgbaImage::from_raw(w, h, raw).ok_or_else(bad)?)
        }
    };
    Value::image(&dynamic).py()
}

/// A numpy array as a `tensor` value (f32, f64, i64 or u8; other integer and boolean arrays
/// are widened to i64, float16 to f32).
fn numpy_to_value(obj: &Bound<'_, PyAny>, path: &str) -> PyResult<Value> {
    let py = obj.py();
    let np = py.import("numpy")?;
    let dtype = obj.getattr("dtype")?;
    let kind: String = dtype.getattr("kind")?.extract()?;
    let size: usize = dtype.getattr("itemsize")?.extract()?;
    let (target, dt) = match (kind.as_str(), size) {
        ("f", 8) => ("<f8", DType::F64),
        ("f", _) => ("<f4", DType::F32),
        ("u", 1) => ("|u1", DType::U8),
        ("i" | "u" | "b", _) => ("<i8", DType::I64),
        _ => {
            return Err(PyTypeError::new_err(format!(
                "`{path}`: numpy arrays of dtype kind {kind:?} cannot be stored as tensors"
            )))
        }
    };
    let arr = np.call_method1("ascontiguousarray", (obj, target))?;
    let shape: Vec<usize> = arr.getattr("shape")?.extract()?;
    let data: Vec<u8> = arr.call_method0("tobytes")?.extract()?;
    Ok(Value::tensor(&Tensor::new(dt, &shape, data).py()?))
}

/// A value as a Python object.
pub fn to_py(py: Python<'_>, value: &Value) -> PyResult<Py<PyAny>> {
    Ok(match value {
        Value::Null => py.None(),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any().unbind(),
        Value::Int(i) => i.into_pyobject(py)?.into_any().unbind(),
        Value::Float(f) => f.into_pyobject(py)?.into_any().unbind(),
        Value::String(s) => PyString::new(py, s).into_any().unbind(),
        Value::Bytes(b) => PyBytes::new(py, b).into_any().unbind(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for v in items {
                list.append(to_py(py, v)?)?;
            }
            list.into_any().unbind()
        }
        Value::Object(d) => document_to_py(py, d)?.into_any().unbind(),
        Value::Encoded(e) => encoded_to_py(py, e)?,
    })
}

/// A document as a dict, fields in order.
pub fn document_to_py<'py>(py: Python<'py>, doc: &Document) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    for (k, v) in doc.iter() {
        dict.set_item(k, to_py(py, v)?)?;
    }
    Ok(dict)
}

fn encoded_to_py(py: Python<'_>, e: &RustEncoded) -> PyResult<Py<PyAny>> {
    let fallback = || -> PyResult<Py<PyAny>> {
        Ok(Py::new(
            py,
            Encoded {
                codec: e.codec().to_string(),
                value: e.clone(),
            },
        )?
        .into_any())
    };
    match e.codec() {
        "image/png" if py.import("PIL.Image").is_ok() => {
            match Value::Encoded(e.clone()).to_image() {
                Ok(img) => image_to_pil(py, &img),
                // Bytes that do not decode come back as they are stored.
                Err(_) => fallback(),
            }
        }
        "tensor" if py.import("numpy").is_ok() => match Value::Encoded(e.clone()).to_tensor() {
            Ok(t) => tensor_to_numpy(py, &t),
            Err(_) => fallback(),
        },
        _ => fallback(),
    }
}

fn image_to_pil(py: Python<'_>, img: &image::DynamicImage) -> PyResult<Py<PyAny>> {
    let (mode, raw, w, h) = match img {
        image::DynamicImage::ImageLuma8(i) => ("L", i.as_raw().clone(), i.width(), i.height()),
        image::DynamicImage::ImageLumaA8(i) => ("LA", i.as_raw().clone(), i.width(), i.height()),
        image::DynamicImage::ImageRgb8(i) => ("RGB", i.as_raw().clone(), i.width(), i.height()),
        other => {
            let i = other.to_rgba8();
            ("RGBA", i.as_raw().clone(), i.width(), i.height())
        }
    };
    let pil = py.import("PIL.Image")?;
    Ok(pil
        .call_method1("frombytes", (mode, (w, h), PyBytes::new(py, &raw)))?
        .unbind())
}

fn tensor_to_numpy(py: Python<'_>, t: &Tensor) -> PyResult<Py<PyAny>> {
    let np = py.import("numpy")?;
    let dtype = match t.dtype() {
        DType::F32 => "<f4",
        DType::F64 => "<f8",
        DType::I64 => "<i8",
        DType::U8 => "|u1",
    };
    // A bytearray, so the array is writable like any other.
    let buf = PyByteArray::new(py, t.data());
    let flat = np.call_method1("frombuffer", (buf, dtype))?;
    Ok(flat
        .call_method1("reshape", (PyTuple::new(py, t.shape())?,))?
        .unbind())
}

/// A Python object as plain JSON (filters, updates, specs, configurations).
pub fn to_json(obj: &Bound<'_, PyAny>) -> PyResult<Json> {
    json_at(obj, "", 0)
}

fn json_at(obj: &Bound<'_, PyAny>, path: &str, depth: usize) -> PyResult<Json> {
    if depth > MAX_DEPTH {
        return Err(PyValueError::new_err(format!(
            "`{path}` is nested more than {MAX_DEPTH} levels deep"
        )));
    }
    if obj.is_none() {
        return Ok(Json::Null);
    }
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(Json::Bool(b.is_true()));
    }
    if obj.is_instance_of::<PyInt>() {
        return obj.extract::<i64>().map(Json::from).map_err(|_| {
            PyValueError::new_err(format!("`{path}`: integer out of the 64-bit range"))
        });
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        return serde_json::Number::from_f64(f.value())
            .map(Json::Number)
            .ok_or_else(|| {
                PyValueError::new_err(format!("`{path}`: {} is not a finite number", f.value()))
            });
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Json::String(s.extract::<String>()?));
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        let mut map = serde_json::Map::new();
        for (k, v) in d.iter() {
            let key: String = k.extract().map_err(|_| {
                PyTypeError::new_err(format!("`{path}`: keys are strings, not {}", type_name(&k)))
            })?;
            let value = json_at(&v, &at(path, &key), depth + 1)?;
            map.insert(key, value);
        }
        return Ok(Json::Object(map));
    }
    if obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>() {
        let mut items = Vec::new();
        for (i, v) in obj.try_iter()?.enumerate() {
            items.push(json_at(&v?, &at(path, &i.to_string()), depth + 1)?);
        }
        return Ok(Json::Array(items));
    }
    Err(PyTypeError::new_err(format!(
        "`{path}`: a {} is not JSON (use dicts, lists, str, int, float, bool, None)",
        type_name(obj)
    )))
}

/// Plain JSON as a Python object.
pub fn json_to_py(py: Python<'_>, json: &Json) -> PyResult<Py<PyAny>> {
    to_py(py, &Value::from_json(json))
}

/// An optional JSON argument (`None` means `{}`).
pub fn json_or_empty(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Json> {
    match obj {
        Some(o) if !o.is_none() => to_json(o),
        _ => Ok(Json::Object(Default::default())),
    }
}
