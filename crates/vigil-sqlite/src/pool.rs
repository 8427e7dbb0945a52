//! Connections: one writer guarded by a mutex (SQLite has one writer at a time anyway; other
//! processes wait on the busy timeout), and a small pool of readers, each of which may be moved
//! to a cursor's thread. WAL mode lets readers run while a write is in progress.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, Transaction, TransactionBehavior};
use vigil_core::Result;

use crate::error::db_err;

/// How long a statement waits for another process's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Readers kept open for reuse.
const MAX_IDLE_READERS: usize = 4;

#[derive(Debug)]
pub(crate) struct Pool {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
}

pub(crate) fn open_connection(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path).map_err(db_err(format!("opening {}", path.display())))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(db_err("setting the busy timeout"))?;
    // WAL: readers never block the writer nor each other; NORMAL sync is durable across
    // process crashes (the promise vigil makes) and loses at most the last commits on power loss.
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
    )
    .map_err(db_err("configuring the connection"))?;
    register_functions(&conn)?;
    Ok(conn)
}

/// vigil's SQL functions. `vigil_regex(pattern, text)`: `$regex` in SQL, with the pattern
/// compiled once per statement (SQLite keeps it as the argument's auxiliary data). Only
/// vigil's queries call them; triggers never do, so plain SQLite clients that write to the
/// file need nothing.
fn register_functions(conn: &Connection) -> Result<()> {
    use rusqlite::functions::FunctionFlags;
    use rusqlite::types::ValueRef;
    conn.create_scalar_function(
        "vigil_regex",
        2,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let regex = ctx.get_or_create_aux(
                0,
                |pattern| -> std::result::Result<_, Box<dyn std::error::Error + Send + Sync>> {
                    Ok(regex::Regex::new(pattern.as_str()?)?)
                },
            )?;
            Ok(match ctx.get_raw(1) {
                ValueRef::Text(t) => std::str::from_utf8(t).is_ok_and(|t| regex.is_match(t)),
                _ => false,
            })
        },
    )
    .map_err(db_err("registering vigil_regex"))?;
    // `vigil_expr_path(doc, 'a.b')`: an `$expr` operand's value as MongoDB's aggregation reads
    // a dotted path (through an array, the array of what its elements hold; a number is a
    // field name, never an index), as JSON text, NULL when missing.
    conn.create_scalar_function(
        "vigil_expr_path",
        2,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let (ValueRef::Text(doc), ValueRef::Text(path)) = (ctx.get_raw(0), ctx.get_raw(1))
            else {
                return Ok(None);
            };
            let doc: serde_json::Value = serde_json::from_slice(doc)
                .map_err(|e| rusqlite::Error::UserFunctionError(e.into()))?;
            let segments: Vec<String> = std::str::from_utf8(path)
                .map_err(|e| rusqlite::Error::UserFunctionError(e.into()))?
                .split('.')
                .map(String::from)
                .collect();
            Ok(
                vigil_core::aggregate::expr::json_field_value(&doc, &segments)
                    .map(|v| v.to_string()),
            )
        },
    )
    .map_err(db_err("registering vigil_expr_path"))?;
    // `vigil_sort_key(json)`: a blob ordered as MongoDB orders values, for objects and arrays,
    // which SQLite would otherwise compare by their JSON text.
    conn.create_scalar_function(
        "vigil_sort_key",
        1,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let ValueRef::Text(json) = ctx.get_raw(0) else {
                return Ok(None);
            };
            let json: serde_json::Value = serde_json::from_slice(json)
                .map_err(|e| rusqlite::Error::UserFunctionError(e.into()))?;
            Ok(Some(vigil_core::order::sort_key(
                &vigil_core::Value::from_json(&json),
            )))
        },
    )
    .map_err(db_err("registering vigil_sort_key"))
}

impl Pool {
    pub(crate) fn open(path: &Path) -> Result<Pool> {
        let writer = open_connection(path)?;
        Ok(Pool {
            path: path.to_path_buf(),
            writer: Mutex::new(writer),
            readers: Mutex::new(Vec::new()),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn writer(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves the connection usable (SQLite rolls back an
        // unfinished transaction when the Transaction is dropped), so poisoning is ignored.
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` in an immediate (write-locking) transaction and commits it.
    pub(crate) fn write<T>(
        &self,
        what: &str,
        f: impl FnOnce(&Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        let mut conn = self.writer();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db_err(format!("starting a transaction for {what}")))?;
        let out = f(&tx)?;
        tx.commit().map_err(db_err(format!("committing {what}")))?;
        Ok(out)
    }

    pub(crate) fn reader(self: &Arc<Self>) -> Result<Reader> {
        let idle = self.readers.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match idle {
            Some(c) => c,
            None => open_connection(&self.path)?,
        };
        Ok(Reader {
            conn: Some(conn),
            pool: Arc::clone(self),
        })
    }
}

/// A reader connection that goes back to its pool when dropped.
pub(crate) struct Reader {
    conn: Option<Connection>,
    pool: Arc<Pool>,
}

impl std::ops::Deref for Reader {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        // Only `Drop` takes the connection out.
        self.conn.as_ref().expect("reader used after drop")
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            let mut idle = self.pool.readers.lock().unwrap_or_else(|e| e.into_inner());
            if idle.len() < MAX_IDLE_READERS && conn.is_autocommit() {
                idle.push(conn);
            }
        }
    }
}
