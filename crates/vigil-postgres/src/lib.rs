//! vigil's PostgreSQL backend, for when one machine is not enough.
//!
//! Each collection is a table `"<name>" (seq BIGSERIAL PRIMARY KEY, id TEXT UNIQUE NOT NULL,
//! doc JSON NOT NULL, blobs BYTEA)` in the storage format of [`vigil_core::stored`]: `id` is
//! the `_id` as JSON text (`7` or `"a"`), `doc` the very JSON text SQLite stores (`json`, not
//! `jsonb`, so field order survives and U+0000 fits), binary values sit in `blobs`. Filters
//! compile to SQL over `doc #> path`; indexes are expression indexes on the same expressions. Every vigil database lives in its own schema
//! (`?schema=NAME` in the URL, default `public`).

mod cursor;
mod listen;
mod pool;
mod registry;
mod sql;

use std::sync::Arc;
use std::time::Duration;

use postgres::error::SqlState;
use vigil_core::backend::content_hash;
use vigil_core::listen::{Claim, FailureRecord, JobRecord, ListenerRecord};
use vigil_core::{
    stored, Backend, Document, DocumentSource, DocumentStream, Error, FieldPath, Filter, FindQuery,
    Result, Update, UpdateOutcome, Value, ID_FIELD,
};

use pool::{pg_err, Pool};
use sql::{Param, Scope, Sql};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS vigil_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO vigil_meta (key, value) VALUES ('format', '1') ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS vigil_collections (
    name TEXT PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS vigil_indexes (
    collection TEXT NOT NULL,
    path TEXT NOT NULL,
    name TEXT NOT NULL,
    PRIMARY KEY (collection, path)
);
";

/// The PostgreSQL backend.
pub struct PostgresBackend {
    pool: Arc<Pool>,
    // The session idle workers `LISTEN` on.
    watch: std::sync::Mutex<Option<postgres::Client>>,
    // Dropped with the backend (a test's private schema).
    ephemeral: bool,
}

impl std::fmt::Debug for PostgresBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresBackend")
            .field("pool", &self.pool)
            .finish_non_exhaustive()
    }
}

fn is_missing_table(e: &postgres::Error) -> bool {
    e.code() == Some(&SqlState::UNDEFINED_TABLE)
}

/// Splits vigil's own `schema` option off a PostgreSQL URL.
fn split_url(url: &str) -> Result<(String, String)> {
    let invalid = |reason: &str| Error::InvalidUrl {
        url: pool::redact(url),
        reason: reason.into(),
    };
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, q),
        None => (url, ""),
    };
    let mut schema = "public".to_string();
    let mut rest = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("schema", s)) => schema = s.to_string(),
            _ => rest.push(pair),
        }
    }
    let valid = schema.len() <= 63
        && schema.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && schema
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(invalid(
            "the schema is a letter or `_`, then letters, digits or `_` (63 at most)",
        ));
    }
    let conninfo = if rest.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    Ok((conninfo, schema))
}

impl PostgresBackend {
    /// Connects to `postgres://user[:password]@host[:port]/database[?schema=NAME]`, creating
    /// vigil's tables in the schema (default `public`) if missing.
    pub fn connect(url: &str) -> Result<PostgresBackend> {
        let (conninfo, schema) = split_url(url)?;
        Self::open(conninfo, schema, false)
    }

    /// A private schema with a fresh random name, dropped with everything in it when this
    /// backend is dropped: for tests, so that runs never see each other's data.
    pub fn ephemeral(url: &str) -> Result<PostgresBackend> {
        let (conninfo, _) = split_url(url)?;
        let schema = format!("vigil_t_{}", vigil_core::ids::new_object_id());
        Self::open(conninfo, schema, true)
    }

    fn open(conninfo: String, schema: String, ephemeral: bool) -> Result<PostgresBackend> {
        let pool = Arc::new(Pool::new(conninfo, schema));
        let mut conn = pool.get()?;
        conn.batch_execute(&format!(
            "SELECT pg_advisory_lock(hashtext('vigil_schema')); \
             CREATE SCHEMA IF NOT EXISTS \"{}\"; SET search_path TO \"{}\";{SCHEMA}{}{} \
             SELECT pg_advisory_unlock(hashtext('vigil_schema'));",
            pool.schema,
            pool.schema,
            registry::SCHEMA,
            listen::SCHEMA
        ))
        .map_err(pg_err("creating vigil's tables"))?;
        drop(conn);
        Ok(PostgresBackend {
            pool,
            watch: Default::default(),
            ephemeral,
        })
    }

    /// The schema this database lives in.
    pub fn schema(&self) -> &str {
        &self.pool.schema
    }

    /// Runs `f` in a transaction and commits it.
    fn write<T>(
        &self,
        what: &str,
        f: impl FnOnce(&mut postgres::Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        let mut conn = self.pool.get()?;
        let mut tx = conn
            .transaction()
            .map_err(pg_err(format!("starting a transaction for {what}")))?;
        let out = f(&mut tx)?;
        tx.commit().map_err(pg_err(format!("committing {what}")))?;
        Ok(out)
    }
}

impl Drop for PostgresBackend {
    fn drop(&mut self) {
        if self.ephemeral {
            if let Ok(mut conn) = self.pool.get() {
                let _ = conn.batch_execute(&format!(
                    "DROP SCHEMA IF EXISTS \"{}\" CASCADE",
                    self.pool.schema
                ));
            }
        }
    }
}

pub(crate) fn table(collection: &str) -> String {
    // Collection names are validated to [A-Za-z][A-Za-z0-9_]*, so quoting is enough.
    format!("\"{collection}\"")
}

/// The scope a filter on `collection` compiles in: listeners are looked up only when the
/// filter reads `_outputs` or the caller wants outputs attached.
fn scope_for(
    client: &mut impl postgres::GenericClient,
    collection: &str,
    filter: &Filter,
    attach_outputs: bool,
) -> Result<Scope> {
    let reads_outputs = filter
        .paths()
        .iter()
        .any(|p| p.segments()[0] == vigil_core::OUTPUTS_FIELD);
    if attach_outputs || reads_outputs {
        listen::scope(client, collection)
    } else {
        Ok(Scope {
            table: table(collection),
            outputs: Vec::new(),
        })
    }
}

fn create_table(tx: &mut postgres::Transaction<'_>, collection: &str) -> Result<()> {
    tx.batch_execute(&format!(
        "CREATE TABLE IF NOT EXISTS {} (seq BIGSERIAL PRIMARY KEY, id TEXT NOT NULL UNIQUE, doc JSON NOT NULL, blobs BYTEA);",
        table(collection)
    ))
    .map_err(pg_err(format!("creating collection `{collection}`")))?;
    tx.execute(
        "INSERT INTO vigil_collections (name) VALUES ($1) ON CONFLICT DO NOTHING",
        &[&collection],
    )
    .map_err(pg_err("registering a collection"))?;
    Ok(())
}

/// The JSON text of an `_id` (a string or an integer).
fn id_json(id: &Value) -> Result<String> {
    match id {
        Value::Int(_) | Value::String(_) => Ok(id.to_json().to_string()),
        other => Err(Error::InvalidDocument {
            location: vigil_core::Location::path(ID_FIELD),
            reason: format!("_id must be a string or an integer, found {}", other.kind()),
        }),
    }
}

fn read_id(json: &str, collection: &str) -> Result<Value> {
    match serde_json::from_str::<serde_json::Value>(json) {
        Ok(serde_json::Value::String(s)) => Ok(Value::String(s)),
        Ok(serde_json::Value::Number(n)) if n.is_i64() => Ok(Value::Int(n.as_i64().unwrap_or(0))),
        _ => Err(Error::Corrupt {
            collection: collection.into(),
            reason: format!("an _id that is neither a string nor an integer: {json}"),
        }),
    }
}

impl PostgresBackend {
    fn matching(
        tx: &mut postgres::Transaction<'_>,
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
        s.push(if many {
            " ORDER BY seq FOR UPDATE"
        } else {
            " ORDER BY seq LIMIT 1 FOR UPDATE"
        });
        if !Self::table_exists(tx, collection)? {
            return Ok(Vec::new());
        }
        let rows = tx
            .query(&s.text, &s.params())
            .map_err(pg_err("matching documents"))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    fn table_exists(tx: &mut postgres::Transaction<'_>, collection: &str) -> Result<bool> {
        let row = tx
            .query_opt(
                "SELECT 1 FROM vigil_collections WHERE name = $1",
                &[&collection],
            )
            .map_err(pg_err("looking up a collection"))?;
        Ok(row.is_some())
    }

    fn load(tx: &mut postgres::Transaction<'_>, collection: &str, seq: i64) -> Result<Document> {
        let row = tx
            .query_one(
                &format!(
                    "SELECT id::text, doc::text, blobs FROM {} WHERE seq = $1",
                    table(collection)
                ),
                &[&seq],
            )
            .map_err(pg_err("loading a document"))?;
        cursor::read_row(&row, collection, None)
    }

    fn store(
        tx: &mut postgres::Transaction<'_>,
        collection: &str,
        seq: i64,
        doc: &Document,
    ) -> Result<()> {
        let stored = stored::encode(doc)?;
        let blobs = (!stored.blobs.is_empty()).then_some(stored.blobs);
        tx.execute(
            &format!(
                "UPDATE {} SET doc = $1::text::json, blobs = $2 WHERE seq = $3",
                table(collection)
            ),
            &[&stored.json, &blobs, &seq],
        )
        .map_err(pg_err("writing a document"))?;
        Ok(())
    }
}

impl Backend for PostgresBackend {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn list_collections(&self) -> Result<Vec<String>> {
        let mut conn = self.pool.get()?;
        let rows = conn
            .query(
                "SELECT name FROM vigil_collections ORDER BY name COLLATE \"C\"",
                &[],
            )
            .map_err(pg_err("listing collections"))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    fn drop_collection(&self, collection: &str) -> Result<bool> {
        self.write("dropping a collection", |tx| {
            let existed = tx
                .execute(
                    "DELETE FROM vigil_collections WHERE name = $1",
                    &[&collection],
                )
                .map_err(pg_err("unregistering a collection"))?
                > 0;
            tx.execute(
                "DELETE FROM vigil_indexes WHERE collection = $1",
                &[&collection],
            )
            .map_err(pg_err("unregistering indexes"))?;
            listen::drop_listeners_of(tx, collection)?;
            tx.batch_execute(&format!("DROP TABLE IF EXISTS {}", table(collection)))
                .map_err(pg_err(format!("dropping `{collection}`")))?;
            Ok(existed)
        })
    }

    fn insert(&self, collection: &str, docs: DocumentSource<'_>) -> Result<()> {
        self.write("an insert", |tx| {
            create_table(tx, collection)?;
            let stmt = tx
                .prepare(&format!(
                    "INSERT INTO {} (id, doc, blobs) VALUES ($1::text, $2::text::json, $3)",
                    table(collection)
                ))
                .map_err(pg_err("preparing an insert"))?;
            for doc in docs {
                let row = stored::encode(&doc?)?;
                let id = id_json(&row.id)?;
                let blobs = (!row.blobs.is_empty()).then_some(row.blobs);
                match tx.execute(&stmt, &[&id, &row.json, &blobs]) {
                    Ok(_) => {}
                    Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                        return Err(Error::DuplicateId {
                            collection: collection.into(),
                            id,
                        })
                    }
                    Err(e) => return Err(pg_err("inserting a document")(e)),
                }
            }
            Ok(())
        })
    }

    fn find(&self, collection: &str, query: &FindQuery) -> Result<DocumentStream> {
        let mut conn = self.pool.get()?;
        let scope = scope_for(&mut *conn, collection, &query.filter, true)?;
        let outputs = scope
            .outputs_column()
            .map(|c| format!(", {c}"))
            .unwrap_or_default();
        let names = (!scope.outputs.is_empty()).then(|| scope.names());
        let mut s = Sql::with_filter(
            format!(
                "SELECT id::text, doc::text, blobs{outputs} FROM {} WHERE ",
                table(collection)
            ),
            &query.filter,
            &scope,
        );
        sql::order_by(&query.sort, &scope, &mut s);
        if let Some(limit) = query.limit {
            s.push(" LIMIT ");
            s.bind(Param::Int(limit.min(i64::MAX as u64) as i64), "::bigint");
        }
        s.push(" OFFSET ");
        s.bind(
            Param::Int(query.skip.min(i64::MAX as u64) as i64),
            "::bigint",
        );
        Ok(cursor::stream(
            conn,
            s,
            collection.to_string(),
            query.projection.clone(),
            names,
        ))
    }

    fn count(&self, collection: &str, filter: &Filter) -> Result<u64> {
        let mut conn = self.pool.get()?;
        let scope = scope_for(&mut *conn, collection, filter, false)?;
        let s = Sql::with_filter(
            format!("SELECT count(*) FROM {} WHERE ", table(collection)),
            filter,
            &scope,
        );
        match conn.query_one(&s.text, &s.params()) {
            Ok(row) => Ok(row.get::<_, i64>(0) as u64),
            Err(e) if is_missing_table(&e) => Ok(0),
            Err(e) => Err(pg_err("counting")(e)),
        }
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
            if !Self::table_exists(tx, collection)? {
                return Ok(0);
            }
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
                s.push(" ORDER BY seq LIMIT 1)");
                s
            };
            tx.execute(&s.text, &s.params()).map_err(pg_err("deleting"))
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
        // PostgreSQL truncates names past 63 bytes, so an index is named by a hash and the
        // (collection, path) it serves is recorded beside it.
        let name = format!(
            "vigil_ix_{}",
            &content_hash(format!("{}\u{0}{collection}\u{0}{path}", self.pool.schema).as_bytes())
                [..24]
        );
        self.write("creating an index", |tx| {
            create_table(tx, collection)?;
            let [numbers, text] = sql::index_expressions(path);
            tx.batch_execute(&format!(
                "CREATE INDEX IF NOT EXISTS \"{name}_n\" ON {t} (({numbers})); \
                 CREATE INDEX IF NOT EXISTS \"{name}_t\" ON {t} (({text}));",
                t = table(collection),
            ))
            .map_err(pg_err(format!("indexing `{path}` of `{collection}`")))?;
            tx.execute(
                "INSERT INTO vigil_indexes (collection, path, name) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                &[&collection, &path.dotted(), &name],
            )
            .map_err(pg_err("recording an index"))?;
            Ok(())
        })
    }

    fn list_indexes(&self, collection: &str) -> Result<Vec<FieldPath>> {
        let mut conn = self.pool.get()?;
        let rows = conn
            .query(
                "SELECT path FROM vigil_indexes WHERE collection = $1 ORDER BY path COLLATE \"C\"",
                &[&collection],
            )
            .map_err(pg_err("listing indexes"))?;
        rows.iter()
            .map(|r| FieldPath::parse(r.get::<_, &str>(0)))
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

    /// Claims on PostgreSQL belong to the worker's session and end with it, so there is
    /// nothing to list.
    fn claim_holders(&self) -> Result<Vec<String>> {
        Ok(Vec::new())
    }

    /// See [`PostgresBackend::claim_holders`]: a dead worker's claims end with its session.
    fn release_claims(&self, _holder: &str) -> Result<u64> {
        Ok(0)
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
