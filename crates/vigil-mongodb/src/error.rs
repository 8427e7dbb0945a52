//! Driver errors as vigil's, with what was being done.

use vigil_core::Error;

/// Turns a driver error into vigil's, with what was being done.
pub(crate) fn db_err(context: impl Into<String>) -> impl FnOnce(mongodb::error::Error) -> Error {
    let context = context.into();
    move |e| Error::Backend {
        backend: "mongodb",
        context,
        source: Box::new(e),
    }
}

/// Whether the server labelled a failure transient: the transaction may be run again whole.
pub(crate) fn is_transient(e: &mongodb::error::Error) -> bool {
    e.contains_label(mongodb::error::TRANSIENT_TRANSACTION_ERROR)
}

/// [`is_transient`] for a driver error already wrapped as vigil's.
pub(crate) fn is_transient_error(e: &Error) -> bool {
    match e {
        Error::Backend { source, .. } => source
            .downcast_ref::<mongodb::error::Error>()
            .is_some_and(is_transient),
        _ => false,
    }
}

/// The server's error code, if the error carries one.
pub(crate) fn code(e: &mongodb::error::Error) -> Option<i32> {
    use mongodb::error::{ErrorKind, WriteFailure};
    match e.kind.as_ref() {
        ErrorKind::Command(c) => Some(c.code),
        ErrorKind::Write(WriteFailure::WriteError(w)) => Some(w.code),
        ErrorKind::InsertMany(m) => m
            .write_errors
            .as_ref()
            .and_then(|w| w.first())
            .map(|w| w.code),
        _ => None,
    }
}

/// MongoDB's duplicate-key error.
pub(crate) const DUPLICATE_KEY: i32 = 11000;
