//! The native module behind `import vigil`: a thin layer over the `vigil` crate. Python names
//! and habits live in `pysrc/vigil/__init__.py`; this module converts values, releases the
//! GIL around every database, model and training call, and turns errors into exceptions.

mod convert;
mod db;
mod errors;
mod models;
mod vectors;

use pyo3::prelude::*;

#[pymodule]
fn _vigil(m: &Bound<'_, PyModule>) -> PyResult<()> {
    errors::register(m)?;
    m.add_function(wrap_pyfunction!(db::connect, m)?)?;
    m.add_function(wrap_pyfunction!(models::lenet5, m)?)?;
    m.add_function(wrap_pyfunction!(models::mnist_preprocess, m)?)?;
    m.add_function(wrap_pyfunction!(models::read_mnist, m)?)?;
    m.add_function(wrap_pyfunction!(models::register_metric_function, m)?)?;
    m.add_function(wrap_pyfunction!(models::register_model_function, m)?)?;
    m.add_class::<db::PyDatalayer>()?;
    m.add_class::<db::PyCollection>()?;
    m.add_class::<db::PyCursor>()?;
    m.add_class::<db::PyCommandCursor>()?;
    m.add_class::<models::PyModel>()?;
    m.add_class::<convert::Encoded>()?;
    Ok(())
}
