//! vigil's embedded backend: one SQLite file (bundled SQLite, WAL mode).
//!
//! Each collection is a table `"<name>" (seq INTEGER PRIMARY KEY, id UNIQUE NOT NULL,
//! doc TEXT NOT NULL, blobs BLOB)` in the storage format of [`vigil_core::stored`]. Filters
//! compile to SQL over `json_extract(doc, …)`; indexes are expression indexes on the same
//! expressions, so SQLite's planner uses them.

mod cursor;
mod listen;
mod pool;
mod registry;
mod sql;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, Value as SqlValue, ValueRef};
use rusqlite::TransactionBehavior;
use vigil_core::listen::{Claim, FailureRecord, JobRecord};
use vigil_core::{
    stored, Backend, Document, DocumentSource, DocumentStream, Error, FieldPath, Filter, FindQuery,
    ListenerRecord, Result, Update, UpdateOutcome, Value, ID_FIELD,
};

use pool::Pool;
use sql::{Scope, Sql};

/// Turns a driver error into vigil's, with what was being done.
pub(crate) fn db_err(context: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> Error {
    let context = context.into();
    move |e| Error::Backend {
        backend: "sqlite",
        context,
        source: Box::new(e),
    }
}

pub(crate) fn is_missing_table(e: &rusqlite::Error) -> bool {
    e.to_string().contains("no such table")
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS vigil_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT OR IGNORE INTO vigil_meta (key, value) VALUES ('format', '1');
CREATE TABLE IF NOT EXISTS vigil_collections (
    name TEXT PRIMARY KEY,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
);
";

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
            .execute_batch(&format!("{SCHEMA}{}{}", registry::SCHEMA, listen::SCHEMA))
            .map_err(db_err("creating vigil's tables"))?;
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

pub(crate) fn table(collection: &str) -> String {
    // Collection names are validated to [A-Za-z][A-Za-z0-9_]*, so quoting is enough.
    format!("\"{collection}\"")
}

fn index_name(collection: &str, path: &FieldPath) -> String {
    format!("\"{collection}${}\"", path.dotted())
}

fn blobs_param(blobs: Vec<u8>) -> SqlValue {
    if blobs.is_empty() {
        SqlValue::Null
    } else {
        SqlValue::Blob(blobs)
    }
}

fn select(collection: &str, filter: &Filter, scope: &Scope) -> Sql {
    let outputs = scope
        .outputs_column()
        .map(|c| format!(", {c}"))
        .unwrap_or_default();
    Sql::with_filter(
        format!(
            "SELECT id, doc, blobs{outputs} FROM {} WHERE ",
            table(collection)
        ),
        filter,
        scope,
    )
}

/// The scope a filter on `collection` compiles in: listeners are looked up only when the
/// filter reads `_outputs` or the caller wants outputs attached.
fn scope_for(
    conn: &rusqlite::Connection,
    collection: &str,
    filter: &Filter,
    attach_outputs: bool,
) -> Result<Scope> {
    let reads_outputs = filter
        .paths()
        .iter()
        .any(|p| p.segments()[0] == vigil_core::OUTPUTS_FIELD);
    if attach_outputs || reads_outputs {
        Scope::load(conn, collection)
    } else {
        Ok(Scope {
            table: table(collection),
            outputs: Vec::new(),
        })
    }
}

pub(crate) fn create_table(tx: &rusqlite::Transaction<'_>, collection: &str) -> Result<()> {
    tx.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS {} (seq INTEGER PRIMARY KEY, id NOT NULL UNIQUE, doc TEXT NOT NULL, blobs BLOB);",
        table(collection)
    ))
    .map_err(db_err(format!("creating collection `{collection}`")))?;
    tx.prepare_cached("INSERT OR IGNORE INTO vigil_collections (name) VALUES (?)")
        .and_then(|mut s| s.execute([collection]))
        .map_err(db_err("registering a collection"))?;
    Ok(())
}

/// Batches below this size are encoded on the calling thread.
const PIPELINE_MIN: usize = 256;
/// Documents per chunk handed from the encoding thread to the writer.
const PIPELINE_CHUNK: usize = 128;

/// Inserts encoded rows as they arrive; the first error (encoding or SQL) ends the insert.
/// Written rows go to `spent`, when given, to be freed by the thread that allocated them.
fn insert_rows(
    tx: &rusqlite::Transaction<'_>,
    collection: &str,
    chunks: impl IntoIterator<Item = Result<Vec<stored::StoredDocument>>>,
    spent: Option<&std::sync::mpsc::Sender<Vec<stored::StoredDocument>>>,
) -> Result<()> {
    create_table(tx, collection)?;
    let sql = format!(
        "INSERT INTO {} (id, doc, blobs) VALUES (?, ?, ?)",
        table(collection)
    );
    let mut stmt = tx
        .prepare_cached(&sql)
        .map_err(db_err("preparing an insert"))?;
    for rows in chunks {
        let rows = rows?;
        for row in &rows {
            // Bound by reference: SQLite copies what it keeps, so no extra copy is made here.
            let id = match &row.id {
                Value::Int(i) => ValueRef::Integer(*i),
                Value::String(s) => ValueRef::Text(s.as_bytes()),
                // `stored::check_document` admits only strings and integers.
                other => {
                    return Err(Error::InvalidDocument {
                        location: vigil_core::Location::path(ID_FIELD),
                        reason: format!(
                            "_id must be a string or an integer, found {}",
                            other.kind()
                        ),
                    })
                }
            };
            let blobs = if row.blobs.is_empty() {
                ValueRef::Null
            } else {
                ValueRef::Blob(&row.blobs)
            };
            match stmt.execute(rusqlite::params![
                ToSqlOutput::Borrowed(id),
                row.json.as_str(),
                ToSqlOutput::Borrowed(blobs)
            ]) {
                Ok(_) => {}
                Err(rusqlite::Error::SqliteFailure(f, _))
                    if f.code == rusqlite::ErrorCode::ConstraintViolation =>
                {
                    return Err(Error::DuplicateId {
                        collection: collection.into(),
                        id: row.id.to_json().to_string(),
                    })
                }
                Err(e) => return Err(db_err("inserting a document")(e)),
            }
        }
        if let Some(spent) = spent {
            let _ = spent.send(rows);
        }
    }
    Ok(())
}

impl SqliteBackend {
    /// Runs `f` in an immediate (write-locking) transaction and commits it.
    fn write<T>(
        &self,
        what: &str,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        let mut conn = self.pool.writer();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db_err(format!("starting a transaction for {what}")))?;
        let out = f(&tx)?;
        tx.commit().map_err(db_err(format!("committing {what}")))?;
        Ok(out)
    }

    /// `seq`s of the matching documents (bounded memory: 8 bytes a match).
    fn matching(
        tx: &rusqlite::Transaction<'_>,
        collection: &str,
        filter: &Filter,
        many: bool,
    ) -> Result<Vec<i64>> {
        let scope = scope_for(tx, collection, filter, false)?;
        let mut s = Sql::with_filter(
            format!("SELECT seq FROM {} WHERE ", table(collection)),
            filter,
            &scope,
        );
        s.text.push_str(if many {
            " ORDER BY seq"
        } else {
            " ORDER BY seq LIMIT 1"
        });
        let mut stmt = match tx.prepare(&s.text) {
            Ok(stmt) => stmt,
            Err(e) if is_missing_table(&e) => return Ok(Vec::new()),
            Err(e) => return Err(db_err("preparing a match")(e)),
        };
        let seqs = stmt
            .query_map(rusqlite::params_from_iter(s.params.iter()), |r| r.get(0))
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<i64>>>())
            .map_err(db_err("matching documents"))?;
        Ok(seqs)
    }

    fn load(tx: &rusqlite::Transaction<'_>, collection: &str, seq: i64) -> Result<Document> {
        let sql = format!(
            "SELECT id, doc, blobs FROM {} WHERE seq = ?",
            table(collection)
        );
        let mut stmt = tx
            .prepare_cached(&sql)
            .map_err(db_err("preparing a load"))?;
        let mut rows = stmt.query([seq]).map_err(db_err("loading a document"))?;
        let row = rows
            .next()
            .map_err(db_err("loading a document"))?
            .ok_or_else(|| Error::Corrupt {
                collection: collection.into(),
                reason: format!("row {seq} vanished inside a transaction"),
            })?;
        cursor::read_row(row, collection, None)
    }

    fn store(
        tx: &rusqlite::Transaction<'_>,
        collection: &str,
        seq: i64,
        doc: &Document,
    ) -> Result<()> {
        let stored = stored::encode(doc)?;
        let sql = format!(
            "UPDATE {} SET doc = ?, blobs = ? WHERE seq = ?",
            table(collection)
        );
        tx.prepare_cached(&sql)
            .and_then(|mut s| {
                s.execute(rusqlite::params![
                    stored.json,
                    blobs_param(stored.blobs),
                    seq
                ])
            })
            .map_err(db_err("writing a document"))?;
        Ok(())
    }
}

impl SqliteBackend {
    /// SQLite's query plan for counting what `filter` matches: shows whether an index is used.
    pub fn explain(&self, collection: &str, filter: &Filter) -> Result<Vec<String>> {
        // A fresh connection: EXPLAIN plans at prepare time, against the schema the connection
        // last loaded, and a pooled one may not have seen a new index yet.
        let conn = pool::open_connection(self.pool.path())?;
        let scope = scope_for(&conn, collection, filter, false)?;
        let s = Sql::with_filter(
            format!(
                "EXPLAIN QUERY PLAN SELECT count(*) FROM {} WHERE ",
                table(collection)
            ),
            filter,
            &scope,
        );
        let mut stmt = conn
            .prepare(&s.text)
            .map_err(db_err("explaining a filter"))?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(s.params.iter()), |r| {
                r.get::<_, String>(3)
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(db_err("explaining a filter"))?;
        Ok(rows)
    }
}

impl Backend for SqliteBackend {
    fn name(&self) -> &'static str {
        "sqlite"
    }

    fn list_collections(&self) -> Result<Vec<String>> {
        let reader = self.pool.reader()?;
        let mut stmt = reader
            .prepare_cached("SELECT name FROM vigil_collections ORDER BY name")
            .map_err(db_err("listing collections"))?;
        let names = stmt
            .query_map([], |r| r.get(0))
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<String>>>())
            .map_err(db_err("listing collections"))?;
        Ok(names)
    }

    fn drop_collection(&self, collection: &str) -> Result<bool> {
        self.write("dropping a collection", |tx| {
            let existed = tx
                .execute("DELETE FROM vigil_collections WHERE name = ?", [collection])
                .map_err(db_err("unregistering a collection"))?
                > 0;
            listen::drop_listeners_of(tx, collection)?;
            tx.execute_batch(&format!("DROP TABLE IF EXISTS {}", table(collection)))
                .map_err(db_err(format!("dropping `{collection}`")))?;
            Ok(existed)
        })
    }

    fn insert(&self, collection: &str, docs: DocumentSource<'_>) -> Result<()> {
        let encode = |doc: Result<Document>| doc.and_then(|d| stored::encode(&d));
        if docs.size_hint().0 < PIPELINE_MIN {
            let rows = docs.map(encode).collect::<Result<Vec<_>>>();
            return self.write("an insert", |tx| insert_rows(tx, collection, [rows], None));
        }
        // Large batches: a second thread pulls, encodes and frees the documents chunk by
        // chunk while this one writes, so that work hides behind SQLite's own. Written rows go
        // back to that thread to be freed there: memory freed by the thread that allocated it
        // stays off the allocator's slow cross-thread path. An error on either side ends both,
        // and the transaction rolls back.
        std::thread::scope(|s| {
            let (send, receive) = std::sync::mpsc::sync_channel(4);
            let (spent, written) = std::sync::mpsc::channel::<Vec<stored::StoredDocument>>();
            s.spawn(move || {
                let mut docs = docs.map(encode).peekable();
                while docs.peek().is_some() {
                    let rows = docs
                        .by_ref()
                        .take(PIPELINE_CHUNK)
                        .collect::<Result<Vec<_>>>();
                    let failed = rows.is_err();
                    if send.send(rows).is_err() || failed {
                        break;
                    }
                    written.try_iter().for_each(drop);
                }
                drop(send);
                written.iter().for_each(drop);
            });
            let result = self.write("an insert", |tx| {
                insert_rows(tx, collection, receive, Some(&spent))
            });
            drop(spent);
            result
        })
    }

    fn find(&self, collection: &str, query: &FindQuery) -> Result<DocumentStream> {
        let reader = self.pool.reader()?;
        let scope = scope_for(&reader, collection, &query.filter, true)?;
        let names = cursor::OutputNames::of(&scope);
        let mut s = select(collection, &query.filter, &scope);
        sql::order_by(&query.sort, &scope, &mut s);
        s.text.push_str(" LIMIT ? OFFSET ?");
        let limit = query.limit.map_or(-1, |l| l.min(i64::MAX as u64) as i64);
        s.params.push(SqlValue::Integer(limit));
        s.params
            .push(SqlValue::Integer(query.skip.min(i64::MAX as u64) as i64));
        // A small bounded result is cheaper to read right here than through a thread.
        if query.limit.is_some_and(|l| l <= 64) {
            let docs = cursor::collect(&reader, &s, collection, names.as_deref())?;
            let projection = query.projection.clone();
            return Ok(Box::new(docs.into_iter().map(move |d| {
                match (&projection, d) {
                    (Some(p), Ok(d)) => Ok(p.apply(d)),
                    (_, d) => d,
                }
            })));
        }
        Ok(cursor::stream(
            reader,
            s,
            collection.to_string(),
            query.projection.clone(),
            names,
        ))
    }

    fn count(&self, collection: &str, filter: &Filter) -> Result<u64> {
        let reader = self.pool.reader()?;
        let scope = scope_for(&reader, collection, filter, false)?;
        let s = Sql::with_filter(
            format!("SELECT count(*) FROM {} WHERE ", table(collection)),
            filter,
            &scope,
        );
        let mut stmt = match reader.prepare_cached(&s.text) {
            Ok(stmt) => stmt,
            Err(e) if is_missing_table(&e) => return Ok(0),
            Err(e) => return Err(db_err("preparing a count")(e)),
        };
        let n: i64 = stmt
            .query_row(rusqlite::params_from_iter(s.params.iter()), |r| r.get(0))
            .map_err(db_err("counting"))?;
        Ok(n as u64)
    }

    fn update(
        &self,
        collection: &str,
        filter: &Filter,
        update: &Update,
        many: bool,
    ) -> Result<UpdateOutcome> {
        self.write("an update", |tx| {
            let seqs = Self::matching(tx, collection, filter, many)?;
            let mut outcome = UpdateOutcome::default();
            for seq in seqs {
                let old = Self::load(tx, collection, seq)?;
                let new = update.apply(&old)?;
                outcome.matched += 1;
                if new != old {
                    stored::check_document(&new, None, None)?;
                    Self::store(tx, collection, seq, &new)?;
                    outcome.modified += 1;
                }
            }
            Ok(outcome)
        })
    }

    fn replace_one(
        &self,
        collection: &str,
        filter: &Filter,
        replacement: &Document,
    ) -> Result<UpdateOutcome> {
        self.write("a replace", |tx| {
            let Some(&seq) = Self::matching(tx, collection, filter, false)?.first() else {
                return Ok(UpdateOutcome::default());
            };
            let old = Self::load(tx, collection, seq)?;
            let new = stored::replacement(&old, replacement)?;
            let modified = u64::from(new != old);
            if modified == 1 {
                Self::store(tx, collection, seq, &new)?;
            }
            Ok(UpdateOutcome {
                matched: 1,
                modified,
            })
        })
    }

    fn delete(&self, collection: &str, filter: &Filter, many: bool) -> Result<u64> {
        self.write("a delete", |tx| {
            let t = table(collection);
            let scope = scope_for(tx, collection, filter, false)?;
            let s = if many {
                Sql::with_filter(format!("DELETE FROM {t} WHERE "), filter, &scope)
            } else {
                let mut s = Sql::with_filter(
                    format!("DELETE FROM {t} WHERE seq IN (SELECT seq FROM {t} WHERE "),
                    filter,
                    &scope,
                );
                s.text.push_str(" ORDER BY seq LIMIT 1)");
                s
            };
            match tx.execute(&s.text, rusqlite::params_from_iter(s.params.iter())) {
                Ok(n) => Ok(n as u64),
                Err(e) if is_missing_table(&e) => Ok(0),
                Err(e) => Err(db_err("deleting")(e)),
            }
        })
    }

    fn create_index(&self, collection: &str, path: &FieldPath) -> Result<()> {
        if path.is_id() {
            return Ok(()); // the UNIQUE constraint already indexes it
        }
        if path.segments()[0] == vigil_core::OUTPUTS_FIELD {
            return Err(Error::InvalidQuery {
                part: "index",
                path: path.dotted(),
                reason: "outputs live in vigil_outputs, already indexed by listener and document"
                    .into(),
            });
        }
        self.write("creating an index", |tx| {
            create_table(tx, collection)?;
            // The JSON type is the second key, so type-checked filters (and counts) are
            // answered from the index alone.
            let (value, kind) = sql::index_expressions(path);
            tx.execute_batch(&format!(
                "CREATE INDEX IF NOT EXISTS {} ON {} ({value}, {kind})",
                index_name(collection, path),
                table(collection),
            ))
            .map_err(db_err(format!("indexing `{path}` of `{collection}`")))
        })
    }

    fn list_indexes(&self, collection: &str) -> Result<Vec<FieldPath>> {
        let reader = self.pool.reader()?;
        let prefix = format!("{collection}$");
        let names: Vec<String> = reader
            .prepare_cached("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ? ORDER BY name")
            .and_then(|mut s| {
                s.query_map([collection], |r| r.get(0))?
                    .collect::<rusqlite::Result<Vec<String>>>()
            })
            .map_err(db_err("listing indexes"))?;
        names
            .iter()
            .filter_map(|n| n.strip_prefix(&prefix))
            .map(FieldPath::parse)
            .collect()
    }

    fn put_artifact(&self, bytes: &[u8]) -> Result<String> {
        self.put_artifact_impl(bytes)
    }

    fn get_artifact(&self, hash: &str) -> Result<Vec<u8>> {
        self.get_artifact_impl(hash)
    }

    fn put_component(
        &self,
        kind: &str,
        identifier: &str,
        record: &serde_json::Value,
    ) -> Result<u32> {
        self.put_component_impl(kind, identifier, record)
    }

    fn get_component(
        &self,
        kind: &str,
        identifier: &str,
        version: Option<u32>,
    ) -> Result<Option<(u32, serde_json::Value)>> {
        self.get_component_impl(kind, identifier, version)
    }

    fn list_components(&self, kind: &str) -> Result<Vec<(String, Vec<u32>)>> {
        self.list_components_impl(kind)
    }

    fn remove_component(&self, kind: &str, identifier: &str, version: Option<u32>) -> Result<u64> {
        self.remove_component_impl(kind, identifier, version)
    }

    fn install_listener(
        &self,
        listener: &ListenerRecord,
        backfill: Option<&JobRecord>,
    ) -> Result<u64> {
        self.install_listener_impl(listener, backfill)
    }

    fn listeners(&self) -> Result<Vec<ListenerRecord>> {
        self.listeners_impl()
    }

    fn remove_listener(&self, name: &str) -> Result<bool> {
        self.remove_listener_impl(name)
    }

    fn claim(&self, worker: &str, limit: usize, lease: Duration) -> Result<Option<Box<dyn Claim>>> {
        self.claim_impl(worker, limit, lease)
    }

    fn wait_for_work(&self, timeout: Duration) -> Result<()> {
        self.wait_for_work_impl(timeout)
    }

    fn pending(&self, listener: Option<&str>) -> Result<u64> {
        self.pending_impl(listener)
    }

    fn output_states(&self, listener: &str, ids: &[Value]) -> Result<Vec<(Value, u32, String)>> {
        self.output_states_impl(listener, ids)
    }

    fn output_versions(&self, listener: &str) -> Result<Vec<(u32, u64)>> {
        self.output_versions_impl(listener)
    }

    fn claim_holders(&self) -> Result<Vec<String>> {
        self.claim_holders_impl()
    }

    fn release_claims(&self, holder: &str) -> Result<u64> {
        self.release_claims_impl(holder)
    }

    fn failures(&self, listener: Option<&str>) -> Result<Vec<FailureRecord>> {
        self.failures_impl(listener)
    }

    fn put_job(&self, job: &JobRecord) -> Result<()> {
        self.put_job_impl(job)
    }

    fn get_job(&self, id: &str) -> Result<Option<JobRecord>> {
        self.get_job_impl(id)
    }

    fn jobs(&self, limit: usize) -> Result<Vec<JobRecord>> {
        self.jobs_impl(limit)
    }
}
