//! vigil's errors as Python exceptions: one class per kind under `vigil.Error`, each carrying
//! the Rust message with its causes.

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

create_exception!(vigil, Error, PyException, "Every error vigil raises.");
create_exception!(
    vigil,
    NotFoundError,
    Error,
    "A component, listener or artifact that does not exist."
);
create_exception!(
    vigil,
    InvalidQueryError,
    Error,
    "A filter, update, sort, projection or name that is not valid."
);
create_exception!(
    vigil,
    InvalidDocumentError,
    Error,
    "A document (or value) that cannot be stored."
);
create_exception!(
    vigil,
    DecodeError,
    Error,
    "Bytes that do not decode under their codec, or corrupt stored data."
);
create_exception!(
    vigil,
    ModelError,
    Error,
    "A model that cannot be built, loaded, trained or run on its input."
);
create_exception!(
    vigil,
    BackendError,
    Error,
    "The database failed (unreachable, locked, ...)."
);

/// The Python exception for a vigil error: the class by kind, the message with its causes.
pub fn to_py(e: vigil::Error) -> PyErr {
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(&format!("\n  caused by: {text}"));
        }
        source = cause.source();
    }
    use vigil::Error as E;
    match e {
        E::NotFound { .. } => NotFoundError::new_err(message),
        E::InvalidName { .. }
        | E::InvalidQuery { .. }
        | E::UnsupportedOperator { .. }
        | E::InvalidOperand { .. }
        | E::InvalidUrl { .. } => InvalidQueryError::new_err(message),
        E::InvalidDocument { .. }
        | E::DuplicateId { .. }
        | E::Encode { .. }
        | E::UnknownCodec { .. }
        | E::WrongType { .. } => InvalidDocumentError::new_err(message),
        E::Decode { .. } | E::Corrupt { .. } | E::InvalidData { .. } => {
            DecodeError::new_err(message)
        }
        E::Model { .. } => ModelError::new_err(message),
        E::Interrupted { .. } => pyo3::exceptions::PyKeyboardInterrupt::new_err(message),
        _ => BackendError::new_err(message),
    }
}

/// `?` on a vigil result inside a Python method.
pub trait IntoPy<T> {
    /// The result with its error as a Python exception.
    fn py(self) -> PyResult<T>;
}

impl<T> IntoPy<T> for vigil::Result<T> {
    fn py(self) -> PyResult<T> {
        self.map_err(to_py)
    }
}

/// Adds the exception classes to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("Error", py.get_type::<Error>())?;
    m.add("NotFoundError", py.get_type::<NotFoundError>())?;
    m.add("InvalidQueryError", py.get_type::<InvalidQueryError>())?;
    m.add(
        "InvalidDocumentError",
        py.get_type::<InvalidDocumentError>(),
    )?;
    m.add("DecodeError", py.get_type::<DecodeError>())?;
    m.add("ModelError", py.get_type::<ModelError>())?;
    m.add("BackendError", py.get_type::<BackendError>())?;
    Ok(())
}
