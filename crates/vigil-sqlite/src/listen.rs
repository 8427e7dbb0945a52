//! Listeners in SQLite: triggers on the collection's table queue every change into
//! `vigil_queue`, one entry per (listener, document) whose generation each change bumps;
//! workers claim entries under a lease, compute outside any transaction, then apply outputs,
//! errors, job progress and dequeueing in one write transaction that skips every entry whose
//! generation moved on. A crash at any instant leaves either the old state or the new.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, Value as SqlValue, ValueRef};
use rusqlite::{OptionalExtension, Transaction};
use vigil_core::listen::{
    now, Applied, Claim, Completion, FailureRecord, JobRecord, ListenerRecord, Outcome,
    RetryPolicy, WorkItem,
};
use vigil_core::{stored, Document, Error, Filter, Result, Value, ID_FIELD, OUTPUTS_FIELD};

use crate::pool::Pool;
use crate::sql::{self, Scope, Sql};
use crate::{create_table, db_err, table, SqliteBackend};

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS vigil_listeners (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    collection TEXT NOT NULL,
    record TEXT NOT NULL,
    upstream INTEGER
);
CREATE TABLE IF NOT EXISTS vigil_queue (
    seq INTEGER PRIMARY KEY,
    listener INTEGER NOT NULL,
    doc_id NOT NULL,
    gen INTEGER NOT NULL DEFAULT 0,
    job TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    not_before REAL NOT NULL DEFAULT 0,
    claimed_by TEXT,
    claimed_until REAL NOT NULL DEFAULT 0,
    UNIQUE (listener, doc_id)
);
CREATE TABLE IF NOT EXISTS vigil_outputs (
    listener INTEGER NOT NULL,
    doc_id NOT NULL,
    model_version INTEGER NOT NULL,
    input_hash TEXT NOT NULL,
    doc TEXT NOT NULL,
    blobs BLOB,
    computed_at REAL NOT NULL,
    PRIMARY KEY (listener, doc_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS vigil_errors (
    listener INTEGER NOT NULL,
    doc_id NOT NULL,
    error TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    first_failed REAL NOT NULL,
    last_failed REAL NOT NULL,
    parked INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (listener, doc_id)
);
CREATE TABLE IF NOT EXISTS vigil_jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    target TEXT NOT NULL,
    status TEXT NOT NULL,
    done INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    total INTEGER NOT NULL DEFAULT 0,
    started REAL NOT NULL,
    finished REAL,
    error TEXT
);
CREATE INDEX IF NOT EXISTS vigil_jobs_started ON vigil_jobs (started);
";

/// The upsert every trigger runs: a new entry, or the existing one bumped to a new generation,
/// due at once, unclaimed and with its failures forgotten (the document changed).
fn enqueue_sql(listener: i64, doc_id: &str, guard: &str) -> String {
    format!(
        "INSERT INTO vigil_queue (listener, doc_id) SELECT {listener}, {doc_id} WHERE {guard} \
         ON CONFLICT (listener, doc_id) DO UPDATE SET gen = gen + 1, attempts = 0, \
         not_before = 0, claimed_until = 0;"
    )
}

fn trigger_name(listener: i64, what: &str) -> String {
    format!("\"vigil_listener_{listener}_{what}\"")
}

const TRIGGER_KINDS: [&str; 6] = [
    "insert",
    "update",
    "delete",
    "up_insert",
    "up_update",
    "up_delete",
];

fn drop_triggers(tx: &Transaction<'_>, listener: i64) -> Result<()> {
    for kind in TRIGGER_KINDS {
        tx.execute_batch(&format!(
            "DROP TRIGGER IF EXISTS {};",
            trigger_name(listener, kind)
        ))
        .map_err(db_err("dropping a listener's trigger"))?;
    }
    Ok(())
}

/// Creates the triggers of listener `id`. An update queues work only when something the
/// listener reads changed: the id, the key, a field the select reads, or the binary values.
fn create_triggers(
    tx: &Transaction<'_>,
    id: i64,
    listener: &ListenerRecord,
    upstream: Option<i64>,
) -> Result<()> {
    let t = table(&listener.collection);
    let select = Filter::parse(&listener.select)?;
    let mut watched: Vec<String> = Vec::new();
    let key = listener.key_path()?;
    let is_chain = key.segments()[0] == OUTPUTS_FIELD;
    if !is_chain {
        watched.push(sql::json_path(&key));
    }
    for p in select.paths() {
        if p.segments()[0] != OUTPUTS_FIELD && !p.is_id() {
            watched.push(sql::json_path(p));
        }
    }
    watched.sort();
    watched.dedup();
    let mut changed = vec!["OLD.id IS NOT NEW.id".to_string()];
    if !is_chain {
        changed.push("OLD.blobs IS NOT NEW.blobs".into());
    }
    changed.extend(
        watched
            .iter()
            .map(|p| format!("json_extract(OLD.doc,{p}) IS NOT json_extract(NEW.doc,{p})")),
    );
    let mut ddl = String::new();
    if !is_chain {
        ddl.push_str(&format!(
            "CREATE TRIGGER {} AFTER INSERT ON {t} BEGIN {} END;",
            trigger_name(id, "insert"),
            enqueue_sql(id, "NEW.id", "1")
        ));
    }
    ddl.push_str(&format!(
        "CREATE TRIGGER {} AFTER UPDATE ON {t} WHEN {} BEGIN {} {} END;",
        trigger_name(id, "update"),
        changed.join(" OR "),
        enqueue_sql(id, "NEW.id", "1"),
        enqueue_sql(id, "OLD.id", "OLD.id IS NOT NEW.id"),
    ));
    ddl.push_str(&format!(
        "CREATE TRIGGER {} AFTER DELETE ON {t} BEGIN {} END;",
        trigger_name(id, "delete"),
        enqueue_sql(id, "OLD.id", "1")
    ));
    if let Some(up) = upstream {
        ddl.push_str(&format!(
            "CREATE TRIGGER {} AFTER INSERT ON vigil_outputs WHEN NEW.listener = {up} BEGIN {} END;\
             CREATE TRIGGER {} AFTER UPDATE ON vigil_outputs WHEN NEW.listener = {up} AND \
               (OLD.doc IS NOT NEW.doc OR OLD.blobs IS NOT NEW.blobs) BEGIN {} END;\
             CREATE TRIGGER {} AFTER DELETE ON vigil_outputs WHEN OLD.listener = {up} BEGIN {} END;",
            trigger_name(id, "up_insert"),
            enqueue_sql(id, "NEW.doc_id", "1"),
            trigger_name(id, "up_update"),
            enqueue_sql(id, "NEW.doc_id", "1"),
            trigger_name(id, "up_delete"),
            enqueue_sql(id, "OLD.doc_id", "1"),
        ));
    }
    tx.execute_batch(&ddl).map_err(db_err(format!(
        "creating the triggers of `{}`",
        listener.name
    )))
}

fn listener_id(tx: &rusqlite::Connection, name: &str) -> Result<Option<i64>> {
    tx.prepare_cached("SELECT id FROM vigil_listeners WHERE name = ?")
        .and_then(|mut s| s.query_row([name], |r| r.get(0)).optional())
        .map_err(db_err("finding a listener"))
}

/// Listener names and current model versions by id.
fn listener_table(conn: &rusqlite::Connection) -> Result<HashMap<i64, (String, u32)>> {
    let mut stmt = conn
        .prepare_cached("SELECT id, record FROM vigil_listeners")
        .map_err(db_err("reading listeners"))?;
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
        .map_err(db_err("reading listeners"))?;
    rows.into_iter()
        .map(|(id, json)| {
            let rec = parse_record(&json)?;
            Ok((id, (rec.name, rec.model_version)))
        })
        .collect()
}

fn parse_record(json: &str) -> Result<ListenerRecord> {
    serde_json::from_str(json).map_err(|e| Error::Corrupt {
        collection: "vigil_listeners".into(),
        reason: e.to_string(),
    })
}

/// A document id as a bound parameter.
fn id_param(id: &Value) -> Result<ToSqlOutput<'_>> {
    Ok(ToSqlOutput::Borrowed(match id {
        Value::Int(i) => ValueRef::Integer(*i),
        Value::String(s) => ValueRef::Text(s.as_bytes()),
        other => {
            return Err(Error::InvalidDocument {
                location: vigil_core::Location::path(ID_FIELD),
                reason: format!("_id must be a string or an integer, found {}", other.kind()),
            })
        }
    }))
}

fn read_id(v: ValueRef<'_>) -> Result<Value> {
    match v {
        ValueRef::Integer(i) => Ok(Value::Int(i)),
        ValueRef::Text(t) => Ok(Value::String(String::from_utf8_lossy(t).into_owned())),
        other => Err(Error::Corrupt {
            collection: "vigil_queue".into(),
            reason: format!("a document id of type {:?}", other.data_type()),
        }),
    }
}

fn store_job(conn: &rusqlite::Connection, job: &JobRecord) -> Result<()> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO vigil_jobs (id, kind, target, status, done, failed, total, started, finished, error) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .and_then(|mut s| {
        s.execute(rusqlite::params![
            job.id,
            job.kind,
            job.target,
            job.status.as_str(),
            job.done as i64,
            job.failed as i64,
            job.total as i64,
            job.started,
            job.finished,
            job.error
        ])
    })
    .map_err(db_err("storing a job"))?;
    Ok(())
}

fn read_job(r: &rusqlite::Row<'_>) -> rusqlite::Result<(JobRecord, String)> {
    Ok((
        JobRecord {
            id: r.get(0)?,
            kind: r.get(1)?,
            target: r.get(2)?,
            status: vigil_core::listen::JobStatus::Failed,
            done: r.get::<_, i64>(4)? as u64,
            failed: r.get::<_, i64>(5)? as u64,
            total: r.get::<_, i64>(6)? as u64,
            started: r.get(7)?,
            finished: r.get(8)?,
            error: r.get(9)?,
        },
        r.get(3)?,
    ))
}

const JOB_COLUMNS: &str = "id, kind, target, status, done, failed, total, started, finished, error";

fn with_status((mut job, status): (JobRecord, String)) -> Result<JobRecord> {
    job.status = vigil_core::listen::JobStatus::parse(&status).ok_or_else(|| Error::Corrupt {
        collection: "vigil_jobs".into(),
        reason: format!("job {} has status {status:?}", job.id),
    })?;
    Ok(job)
}

/// Removes every listener of a collection, with its queue, outputs and errors (the
/// collection's table, and so its triggers, is being dropped).
pub(crate) fn drop_listeners_of(tx: &Transaction<'_>, collection: &str) -> Result<()> {
    let ids: Vec<i64> = tx
        .prepare("SELECT id FROM vigil_listeners WHERE collection = ?")
        .and_then(|mut s| {
            s.query_map([collection], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<i64>>>()
        })
        .map_err(db_err("finding a collection's listeners"))?;
    for id in ids {
        remove_by_id(tx, id)?;
    }
    Ok(())
}

fn remove_by_id(tx: &Transaction<'_>, id: i64) -> Result<()> {
    drop_triggers(tx, id)?;
    for sql in [
        "DELETE FROM vigil_queue WHERE listener = ?",
        "DELETE FROM vigil_outputs WHERE listener = ?",
        "DELETE FROM vigil_errors WHERE listener = ?",
        "DELETE FROM vigil_listeners WHERE id = ?",
    ] {
        tx.execute(sql, [id])
            .map_err(db_err("removing a listener"))?;
    }
    Ok(())
}

impl SqliteBackend {
    pub(crate) fn install_listener_impl(
        &self,
        listener: &ListenerRecord,
        backfill: Option<&JobRecord>,
    ) -> Result<u64> {
        let select = Filter::parse(&listener.select)?;
        let record = serde_json::to_string(listener).map_err(|e| Error::InvalidDocument {
            location: Default::default(),
            reason: e.to_string(),
        })?;
        self.write("installing a listener", |tx| {
            create_table(tx, &listener.collection)?;
            let upstream = match &listener.upstream {
                Some(up) => Some(listener_id(tx, up)?.ok_or_else(|| Error::NotFound {
                    kind: "listener".into(),
                    identifier: up.clone(),
                    version: None,
                })?),
                None => None,
            };
            let id = match listener_id(tx, &listener.name)? {
                Some(id) => {
                    drop_triggers(tx, id)?;
                    tx.execute(
                        "UPDATE vigil_listeners SET record = ?, upstream = ? WHERE id = ?",
                        rusqlite::params![record, upstream, id],
                    )
                    .map_err(db_err("updating a listener"))?;
                    id
                }
                None => {
                    tx.execute(
                        "INSERT INTO vigil_listeners (name, collection, record, upstream) VALUES (?, ?, ?, ?)",
                        rusqlite::params![listener.name, listener.collection, record, upstream],
                    )
                    .map_err(db_err("registering a listener"))?;
                    tx.last_insert_rowid()
                }
            };
            create_triggers(tx, id, listener, upstream)?;
            let Some(job) = backfill else {
                return Ok(0);
            };
            // Every selected document, and every document holding an output (it may no longer
            // be selected), is queued under the job.
            let upsert = " ON CONFLICT (listener, doc_id) DO UPDATE SET gen = gen + 1, \
                          job = excluded.job, attempts = 0, not_before = 0, claimed_until = 0";
            let scope = Scope::load(tx, &listener.collection)?;
            let mut s = Sql::with_filter(
                format!(
                    "INSERT INTO vigil_queue (listener, doc_id, job) SELECT {id}, id, ? FROM {} WHERE ",
                    table(&listener.collection)
                ),
                &select,
                &scope,
            );
            s.params.insert(0, SqlValue::Text(job.id.clone()));
            s.text.push_str(" ORDER BY seq");
            s.text.push_str(upsert);
            tx.execute(&s.text, rusqlite::params_from_iter(s.params.iter()))
                .map_err(db_err("queueing a backfill"))?;
            tx.execute(
                &format!(
                    "INSERT INTO vigil_queue (listener, doc_id, job) SELECT {id}, doc_id, ? FROM vigil_outputs WHERE listener = {id} {upsert}"
                ),
                [&job.id],
            )
            .map_err(db_err("queueing a backfill"))?;
            let total: i64 = tx
                .query_row(
                    "SELECT count(*) FROM vigil_queue WHERE listener = ? AND job = ?",
                    rusqlite::params![id, job.id],
                    |r| r.get(0),
                )
                .map_err(db_err("counting a backfill"))?;
            let mut job = job.clone();
            job.total = total as u64;
            if total == 0 {
                job.status = vigil_core::listen::JobStatus::Success;
                job.finished = Some(now());
            }
            store_job(tx, &job)?;
            Ok(total as u64)
        })
    }

    pub(crate) fn listeners_impl(&self) -> Result<Vec<ListenerRecord>> {
        let reader = self.pool.reader()?;
        let mut stmt = reader
            .prepare_cached("SELECT record FROM vigil_listeners ORDER BY id")
            .map_err(db_err("reading listeners"))?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(db_err("reading listeners"))?;
        rows.iter().map(|j| parse_record(j)).collect()
    }

    pub(crate) fn remove_listener_impl(&self, name: &str) -> Result<bool> {
        self.write("removing a listener", |tx| {
            let Some(id) = listener_id(tx, name)? else {
                return Ok(false);
            };
            let downstream: Option<String> = tx
                .query_row(
                    "SELECT name FROM vigil_listeners WHERE upstream = ? LIMIT 1",
                    [id],
                    |r| r.get(0),
                )
                .optional()
                .map_err(db_err("checking chained listeners"))?;
            if let Some(down) = downstream {
                return Err(Error::InvalidQuery {
                    part: "listener",
                    path: name.into(),
                    reason: format!("listener `{down}` reads its outputs; remove that one first"),
                });
            }
            remove_by_id(tx, id)?;
            Ok(true)
        })
    }

    pub(crate) fn claim_impl(
        &self,
        worker: &str,
        limit: usize,
        lease: Duration,
    ) -> Result<Option<Box<dyn Claim>>> {
        let t = now();
        let items = self.write("claiming work", |tx| {
            let names = listener_table(tx)?;
            let mut stmt = tx
                .prepare_cached(
                    "UPDATE vigil_queue SET claimed_by = ?1, claimed_until = ?2 WHERE seq IN \
                     (SELECT seq FROM vigil_queue WHERE not_before <= ?3 AND claimed_until <= ?3 \
                      ORDER BY seq LIMIT ?4) \
                     RETURNING listener, doc_id, gen, attempts, job",
                )
                .map_err(db_err("claiming work"))?;
            let mut rows = stmt
                .query(rusqlite::params![
                    worker,
                    t + lease.as_secs_f64(),
                    t,
                    limit as i64
                ])
                .map_err(db_err("claiming work"))?;
            let mut items = Vec::new();
            while let Some(r) = rows.next().map_err(db_err("claiming work"))? {
                let listener: i64 = r.get(0).map_err(db_err("reading a claim"))?;
                let Some((name, _)) = names.get(&listener) else {
                    continue;
                };
                items.push(WorkItem {
                    listener: name.clone(),
                    doc_id: read_id(r.get_ref(1).map_err(db_err("reading a claim"))?)?,
                    generation: r.get(2).map_err(db_err("reading a claim"))?,
                    attempts: r.get(3).map_err(db_err("reading a claim"))?,
                    job: r.get(4).map_err(db_err("reading a claim"))?,
                });
            }
            Ok(items)
        })?;
        if items.is_empty() {
            return Ok(None);
        }
        Ok(Some(Box::new(SqliteClaim {
            pool: Arc::clone(&self.pool),
            worker: worker.to_string(),
            items,
            started: t,
            completed: false,
        })))
    }

    pub(crate) fn wait_for_work_impl(&self, timeout: Duration) -> Result<()> {
        // `PRAGMA data_version` changes when another connection commits; reading it touches
        // only shared memory, so polling it every millisecond costs next to nothing.
        let mut watch = self.watch.lock().unwrap_or_else(|e| e.into_inner());
        if watch.is_none() {
            *watch = Some((crate::pool::open_connection(self.pool.path())?, -1));
        }
        // Set just above.
        let (conn, last) = watch.as_mut().expect("watch connection opened above");
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let v: i64 = conn
                .query_row("PRAGMA data_version", [], |r| r.get(0))
                .map_err(db_err("watching for changes"))?;
            if v != *last {
                let first = *last == -1;
                *last = v;
                if !first {
                    return Ok(());
                }
            }
            if std::time::Instant::now() >= deadline {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    pub(crate) fn pending_impl(&self, listener: Option<&str>) -> Result<u64> {
        let reader = self.pool.reader()?;
        let n: i64 = match listener {
            Some(name) => reader.query_row(
                "SELECT count(*) FROM vigil_queue q JOIN vigil_listeners l ON l.id = q.listener WHERE l.name = ?",
                [name],
                |r| r.get(0),
            ),
            None => reader.query_row("SELECT count(*) FROM vigil_queue", [], |r| r.get(0)),
        }
        .map_err(db_err("counting queued work"))?;
        Ok(n as u64)
    }

    pub(crate) fn output_states_impl(
        &self,
        listener: &str,
        ids: &[Value],
    ) -> Result<Vec<(Value, u32, String)>> {
        let reader = self.pool.reader()?;
        let Some(lid) = listener_id(&reader, listener)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for chunk in ids.chunks(500) {
            let marks = vec!["?"; chunk.len()].join(",");
            let sql = format!(
                "SELECT doc_id, model_version, input_hash FROM vigil_outputs WHERE listener = {lid} AND doc_id IN ({marks})"
            );
            let params = chunk.iter().map(id_param).collect::<Result<Vec<_>>>()?;
            let mut stmt = reader.prepare(&sql).map_err(db_err("reading outputs"))?;
            let mut rows = stmt
                .query(rusqlite::params_from_iter(params.iter()))
                .map_err(db_err("reading outputs"))?;
            while let Some(r) = rows.next().map_err(db_err("reading outputs"))? {
                out.push((
                    read_id(r.get_ref(0).map_err(db_err("reading outputs"))?)?,
                    r.get(1).map_err(db_err("reading outputs"))?,
                    r.get(2).map_err(db_err("reading outputs"))?,
                ));
            }
        }
        Ok(out)
    }

    pub(crate) fn output_versions_impl(&self, listener: &str) -> Result<Vec<(u32, u64)>> {
        let reader = self.pool.reader()?;
        let mut stmt = reader
            .prepare_cached(
                "SELECT o.model_version, count(*) FROM vigil_outputs o JOIN vigil_listeners l \
                 ON l.id = o.listener WHERE l.name = ? GROUP BY o.model_version ORDER BY 1",
            )
            .map_err(db_err("counting outputs"))?;
        let rows = stmt
            .query_map([listener], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(db_err("counting outputs"))?;
        Ok(rows)
    }

    pub(crate) fn claim_holders_impl(&self) -> Result<Vec<String>> {
        let reader = self.pool.reader()?;
        let mut stmt = reader
            .prepare_cached(
                "SELECT DISTINCT claimed_by FROM vigil_queue WHERE claimed_by IS NOT NULL AND claimed_until > ?",
            )
            .map_err(db_err("listing claims"))?;
        let rows = stmt
            .query_map([now()], |r| r.get(0))
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<String>>>())
            .map_err(db_err("listing claims"))?;
        Ok(rows)
    }

    pub(crate) fn release_claims_impl(&self, holder: &str) -> Result<u64> {
        self.write("releasing claims", |tx| {
            tx.execute(
                "UPDATE vigil_queue SET claimed_until = 0 WHERE claimed_by = ? AND claimed_until > 0",
                [holder],
            )
            .map(|n| n as u64)
            .map_err(db_err("releasing claims"))
        })
    }

    pub(crate) fn failures_impl(&self, listener: Option<&str>) -> Result<Vec<FailureRecord>> {
        let reader = self.pool.reader()?;
        let mut stmt = reader
            .prepare_cached(
                "SELECT l.name, e.doc_id, e.error, e.attempts, e.first_failed, e.last_failed, e.parked \
                 FROM vigil_errors e JOIN vigil_listeners l ON l.id = e.listener \
                 WHERE ?1 IS NULL OR l.name = ?1 ORDER BY e.last_failed DESC",
            )
            .map_err(db_err("reading errors"))?;
        let mut rows = stmt.query([listener]).map_err(db_err("reading errors"))?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(db_err("reading errors"))? {
            out.push(FailureRecord {
                listener: r.get(0).map_err(db_err("reading errors"))?,
                doc_id: read_id(r.get_ref(1).map_err(db_err("reading errors"))?)?.to_json(),
                error: r.get(2).map_err(db_err("reading errors"))?,
                attempts: r.get(3).map_err(db_err("reading errors"))?,
                first_failed: r.get(4).map_err(db_err("reading errors"))?,
                last_failed: r.get(5).map_err(db_err("reading errors"))?,
                parked: r.get::<_, i64>(6).map_err(db_err("reading errors"))? != 0,
            });
        }
        Ok(out)
    }

    pub(crate) fn put_job_impl(&self, job: &JobRecord) -> Result<()> {
        self.write("storing a job", |tx| store_job(tx, job))
    }

    pub(crate) fn get_job_impl(&self, id: &str) -> Result<Option<JobRecord>> {
        let reader = self.pool.reader()?;
        let row = reader
            .prepare_cached(&format!(
                "SELECT {JOB_COLUMNS} FROM vigil_jobs WHERE id = ?"
            ))
            .and_then(|mut s| s.query_row([id], read_job).optional())
            .map_err(db_err("reading a job"))?;
        row.map(with_status).transpose()
    }

    pub(crate) fn jobs_impl(&self, limit: usize) -> Result<Vec<JobRecord>> {
        let reader = self.pool.reader()?;
        let mut stmt = reader
            .prepare_cached(&format!(
                "SELECT {JOB_COLUMNS} FROM vigil_jobs ORDER BY started DESC, rowid DESC LIMIT ?"
            ))
            .map_err(db_err("reading jobs"))?;
        let rows = stmt
            .query_map([limit as i64], read_job)
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(db_err("reading jobs"))?;
        rows.into_iter().map(with_status).collect()
    }
}

/// A claim on SQLite: the items' queue entries carry this worker's lease.
struct SqliteClaim {
    pool: Arc<Pool>,
    worker: String,
    items: Vec<WorkItem>,
    started: f64,
    completed: bool,
}

impl Drop for SqliteClaim {
    fn drop(&mut self) {
        if self.completed {
            return;
        }
        // Best effort: an unreleased lease only delays these items until it ends.
        let mut conn = self.pool.writer();
        if let Ok(tx) = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate) {
            for item in &self.items {
                if let (Ok(id), Some(lid)) = (
                    id_param(&item.doc_id),
                    listener_id(&tx, &item.listener).ok().flatten(),
                ) {
                    let _ = tx.execute(
                        "UPDATE vigil_queue SET claimed_until = 0 WHERE listener = ? AND doc_id = ? AND claimed_by = ?",
                        rusqlite::params![lid, id, self.worker],
                    );
                }
            }
            let _ = tx.commit();
        };
    }
}

/// Per-job counts gathered while applying a batch.
#[derive(Default)]
struct JobCounts {
    done: u64,
    failed: u64,
}

impl Claim for SqliteClaim {
    fn items(&self) -> &[WorkItem] {
        &self.items
    }

    fn complete(
        mut self: Box<Self>,
        completions: Vec<Completion>,
        model_versions: &dyn Fn(&str) -> Option<u32>,
        retry: &RetryPolicy,
    ) -> Result<Applied> {
        let pool = Arc::clone(&self.pool);
        let mut conn = pool.writer();
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(db_err("starting to apply outputs"))?;
        let applied = apply(&tx, &completions, model_versions, retry, self.started)?;
        tx.commit().map_err(db_err("committing outputs"))?;
        self.completed = true;
        Ok(applied)
    }
}

fn apply(
    tx: &Transaction<'_>,
    completions: &[Completion],
    model_versions: &dyn Fn(&str) -> Option<u32>,
    retry: &RetryPolicy,
    started: f64,
) -> Result<Applied> {
    let t = now();
    let mut by_name: HashMap<String, (i64, u32)> = HashMap::new();
    for (id, (name, version)) in listener_table(tx)? {
        by_name.insert(name, (id, version));
    }
    let mut applied = Applied::default();
    let mut jobs: HashMap<String, JobCounts> = HashMap::new();
    let mut incremental: HashMap<String, JobCounts> = HashMap::new();
    let exec = |sql: &str, params: &[&dyn rusqlite::ToSql]| -> Result<usize> {
        tx.prepare_cached(sql)
            .and_then(|mut s| s.execute(params))
            .map_err(db_err("applying outputs"))
    };
    for Completion { item, outcome } in completions {
        let Some(&(lid, current)) = by_name.get(&item.listener) else {
            applied.stale += 1; // the listener was removed meanwhile
            continue;
        };
        let doc_id = id_param(&item.doc_id)?;
        let entry: Option<(i64, u32, Option<String>)> = tx
            .prepare_cached(
                "SELECT gen, attempts, job FROM vigil_queue WHERE listener = ? AND doc_id = ?",
            )
            .and_then(|mut s| {
                s.query_row(rusqlite::params![lid, doc_id], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .optional()
            })
            .map_err(db_err("checking a queue entry"))?;
        let Some((generation, attempts, job)) = entry else {
            applied.stale += 1; // another worker finished it
            continue;
        };
        if generation != item.generation || model_versions(&item.listener) != Some(current) {
            applied.stale += 1;
            exec(
                "UPDATE vigil_queue SET claimed_until = 0 WHERE listener = ? AND doc_id = ?",
                &[&lid, &doc_id],
            )?;
            continue;
        }
        let dequeue = "DELETE FROM vigil_queue WHERE listener = ? AND doc_id = ?";
        let forget_error = "DELETE FROM vigil_errors WHERE listener = ? AND doc_id = ?";
        let mut finished_ok = true;
        match outcome {
            Outcome::Output { value, input_hash } => {
                let stored = stored::encode(
                    &Document::new()
                        .with(ID_FIELD, item.doc_id.clone())
                        .with("v", value.clone()),
                )?;
                let blobs = (!stored.blobs.is_empty()).then_some(stored.blobs);
                exec(
                    "INSERT INTO vigil_outputs (listener, doc_id, model_version, input_hash, doc, blobs, computed_at) \
                     VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (listener, doc_id) DO UPDATE SET \
                     model_version = excluded.model_version, input_hash = excluded.input_hash, \
                     doc = excluded.doc, blobs = excluded.blobs, computed_at = excluded.computed_at",
                    &[&lid, &doc_id, &current, input_hash, &stored.json, &blobs, &t],
                )?;
                exec(forget_error, &[&lid, &doc_id])?;
                exec(dequeue, &[&lid, &doc_id])?;
                applied.written += 1;
            }
            Outcome::Remove => {
                exec(
                    "DELETE FROM vigil_outputs WHERE listener = ? AND doc_id = ?",
                    &[&lid, &doc_id],
                )?;
                exec(forget_error, &[&lid, &doc_id])?;
                exec(dequeue, &[&lid, &doc_id])?;
                applied.removed += 1;
            }
            Outcome::Unchanged => {
                exec(forget_error, &[&lid, &doc_id])?;
                exec(dequeue, &[&lid, &doc_id])?;
                applied.unchanged += 1;
            }
            Outcome::Failed(error) => {
                let attempts = attempts + 1;
                let parked = attempts >= retry.max_attempts;
                exec(
                    "INSERT INTO vigil_errors (listener, doc_id, error, attempts, first_failed, last_failed, parked) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6) ON CONFLICT (listener, doc_id) DO UPDATE SET \
                     error = excluded.error, attempts = excluded.attempts, \
                     last_failed = excluded.last_failed, parked = excluded.parked",
                    &[&lid, &doc_id, error, &attempts, &t, &parked],
                )?;
                if parked {
                    exec(dequeue, &[&lid, &doc_id])?;
                    applied.parked += 1;
                    finished_ok = false;
                } else {
                    let due = t + retry.delay(attempts).as_secs_f64();
                    exec(
                        "UPDATE vigil_queue SET attempts = ?, not_before = ?, claimed_until = 0 WHERE listener = ? AND doc_id = ?",
                        &[&attempts, &due, &lid, &doc_id],
                    )?;
                    applied.retrying += 1;
                    continue; // still queued: no job progress
                }
            }
        }
        let counts = match job {
            Some(job) => jobs.entry(job).or_default(),
            None => incremental.entry(item.listener.clone()).or_default(),
        };
        if finished_ok {
            counts.done += 1;
        } else {
            counts.failed += 1;
        }
    }
    for (job, counts) in jobs {
        exec(
            "UPDATE vigil_jobs SET done = done + ?, failed = failed + ? WHERE id = ?",
            &[&(counts.done as i64), &(counts.failed as i64), &job],
        )?;
        exec(
            "UPDATE vigil_jobs SET status = 'success', finished = ?, \
             error = CASE WHEN failed > 0 THEN failed || ' documents failed; see vigil errors' END \
             WHERE id = ? AND status = 'running' AND done + failed >= total",
            &[&t, &job],
        )?;
    }
    for (listener, counts) in incremental {
        let mut job = JobRecord::start("predict", &listener, counts.done + counts.failed);
        job.status = vigil_core::listen::JobStatus::Success;
        job.done = counts.done;
        job.failed = counts.failed;
        job.started = started;
        job.finished = Some(t);
        if counts.failed > 0 {
            job.error = Some(format!(
                "{} documents failed; see vigil errors",
                counts.failed
            ));
        }
        store_job(tx, &job)?;
    }
    Ok(applied)
}
