//! Driver errors as vigil's, with what was being done.

use vigil_core::Error;

/// Turns a driver error into vigil's, with what was being done.
pub(crate) fn db_err(context: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> Error {
    let context = context.into();
    move |e| Error::Backend {
        backend: "sqlite",
        context,
        source: Box::new(e),
    }
}

/// Whether a statement failed because a collection's table does not exist yet (it reads as
/// empty).
pub(crate) fn is_missing_table(e: &rusqlite::Error) -> bool {
    e.to_string().contains("no such table")
}
