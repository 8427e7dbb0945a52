//! vigil's embedded backend: one SQLite file (bundled SQLite, WAL mode).
//!
//! Each collection is a table `"<name>" (seq INTEGER PRIMARY KEY, id UNIQUE NOT NULL,
//! doc TEXT NOT NULL, blobs BLOB)` in the storage format of [`vigil_core::stored`]. Filters
//! compile to SQL over `json_extract(doc, …)`; indexes are expression indexes on the same
//! expressions, so SQLite's planner uses them.

mod claim;
mod cursor;
mod documents;
mod error;
mod jobs;
mod outputs;
mod pool;
mod queue;
mod registry;
mod sql;
mod tables;
mod triggers;

use std::path::Path;
use std::sync::Arc;

use vigil_core::{Backend, Error, Result};

use pool::Pool;

/// The SQLite backend.
#[derive(Debug)]
pub struct SqliteBackend {
    pool: Arc<Pool>,
    // The connection `wait_for_work` polls, with the data version it last saw.
    watch: std::sync::Mutex<Option<(rusqlite::Connection, i64)>>,
    // Keeps an ephemeral database's directory alive; removed on drop.
    _ephemeral: Option<tempfile::TempDir>,
}

impl SqliteBackend {
    /// Opens (creating if missing) the database file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteBackend> {
        let pool = Pool::open(path.as_ref())?;
        pool.writer()
            .execute_batch(
                &[
                    documents::SCHEMA,
                    registry::SCHEMA,
                    queue::SCHEMA,
                    jobs::SCHEMA,
                ]
                .concat(),
            )
            .map_err(error::db_err("creating vigil's tables"))?;
        Ok(SqliteBackend {
            pool: Arc::new(pool),
            watch: Default::default(),
            _ephemeral: None,
        })
    }

    /// A private database that disappears when this backend is dropped. It is a file in a
    /// temporary directory rather than `:memory:`, so that cursors on their own connections
    /// see the same data and it behaves exactly as a file database does.
    pub fn ephemeral() -> Result<SqliteBackend> {
        let dir = tempfile::Builder::new()
            .prefix("vigil-")
            .tempdir()
            .map_err(|e| Error::io("creating a temporary directory", e))?;
        let mut backend = Self::open(dir.path().join("vigil.db"))?;
        backend._ephemeral = Some(dir);
        Ok(backend)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        self.pool.path()
    }
}

impl Backend for SqliteBackend {
    fn name(&self) -> &'static str {
        "sqlite"
    }
}
