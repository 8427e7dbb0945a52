//! Listeners in SQLite: triggers on the collection's table queue every change into
//! `vigil_queue`, one entry per (listener, document) whose generation each change bumps;
//! workers claim entries under a lease, compute outside any transaction, then apply outputs,
//! errors, job progress and dequeueing in one write transaction that skips every entry whose
//! generation moved on. A crash at any instant leaves either the old state or the new.

use std::time::Duration;

use rusqlite::types::Value as SqlValue;
use rusqlite::{OptionalExtension, Transaction};
use vigil_core::backend::sql::{listener_in_use, missing_upstream};
use vigil_core::backend::{OutputCount, OutputState};
use vigil_core::listen::{now, Claim, FailureRecord, JobRecord, JobStatus, ListenerRecord};
use vigil_core::{Filter, Queue, Result, Value};

use crate::error::db_err;
use crate::jobs::store_job;
use crate::sql::{load_scope, table, Sql};
use crate::tables::{create_table, id_param, listener_id, read_id};
use crate::triggers::{create_triggers, drop_triggers};
use crate::{claim, pool, SqliteBackend};

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
-- Bulk reads of a listener's outputs by time (vector indexes) and their fingerprint.
CREATE INDEX IF NOT EXISTS vigil_outputs_at ON vigil_outputs (listener, computed_at);
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
";

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

impl Queue for SqliteBackend {
    fn install_listener(
        &self,
        listener: &ListenerRecord,
        backfill: Option<&JobRecord>,
    ) -> Result<u64> {
        let select = Filter::parse(&listener.select)?;
        let record = listener.to_stored()?;
        self.pool.write("installing a listener", |tx| {
            create_table(tx, &listener.collection)?;
            let upstream = match &listener.upstream {
                Some(up) => Some(listener_id(tx, up)?.ok_or_else(|| missing_upstream(up))?),
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
            let scope = load_scope(tx, &listener.collection)?;
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
                job.status = JobStatus::Success;
                job.finished = Some(now());
            }
            store_job(tx, &job)?;
            Ok(total as u64)
        })
    }

    fn listeners(&self) -> Result<Vec<ListenerRecord>> {
        let reader = self.pool.reader()?;
        let mut stmt = reader
            .prepare_cached("SELECT record FROM vigil_listeners ORDER BY id")
            .map_err(db_err("reading listeners"))?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(db_err("reading listeners"))?;
        rows.iter()
            .map(|j| ListenerRecord::from_stored(j))
            .collect()
    }

    fn remove_listener(&self, name: &str) -> Result<bool> {
        self.pool.write("removing a listener", |tx| {
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
                return Err(listener_in_use(name, &down));
            }
            remove_by_id(tx, id)?;
            Ok(true)
        })
    }

    fn retry_parked(&self, listener: &str) -> Result<u64> {
        self.pool.write("retrying parked documents", |tx| {
            let Some(id) = listener_id(tx, listener)? else {
                return Ok(0);
            };
            tx.execute(
                "INSERT INTO vigil_queue (listener, doc_id) \
                 SELECT listener, doc_id FROM vigil_errors WHERE listener = ?1 AND parked = 1 \
                 ON CONFLICT (listener, doc_id) DO UPDATE SET gen = gen + 1, attempts = 0, \
                 not_before = 0, claimed_until = 0",
                [id],
            )
            .map_err(db_err("queueing parked documents"))?;
            let n = tx
                .execute(
                    "UPDATE vigil_errors SET parked = 0 WHERE listener = ?1 AND parked = 1",
                    [id],
                )
                .map_err(db_err("un-parking documents"))?;
            Ok(n as u64)
        })
    }

    fn claim(&self, worker: &str, limit: usize, lease: Duration) -> Result<Option<Box<dyn Claim>>> {
        claim::claim(&self.pool, worker, limit, lease)
    }

    fn wait_for_work(&self, timeout: Duration) -> Result<()> {
        // `PRAGMA data_version` changes when another connection commits; reading it touches
        // only shared memory, so polling it every millisecond costs next to nothing.
        let mut watch = self.watch.lock().unwrap_or_else(|e| e.into_inner());
        if watch.is_none() {
            *watch = Some((pool::open_connection(self.pool.path())?, -1));
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

    fn pending(&self, listener: Option<&str>) -> Result<u64> {
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

    fn output_states(&self, listener: &str, ids: &[Value]) -> Result<Vec<OutputState>> {
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
                out.push(OutputState {
                    doc_id: read_id(r.get_ref(0).map_err(db_err("reading outputs"))?)?,
                    model_version: r.get(1).map_err(db_err("reading outputs"))?,
                    input_hash: r.get(2).map_err(db_err("reading outputs"))?,
                });
            }
        }
        Ok(out)
    }

    fn output_versions(&self, listener: &str) -> Result<Vec<OutputCount>> {
        let reader = self.pool.reader()?;
        let mut stmt = reader
            .prepare_cached(
                "SELECT o.model_version, count(*) FROM vigil_outputs o JOIN vigil_listeners l \
                 ON l.id = o.listener WHERE l.name = ? GROUP BY o.model_version ORDER BY 1",
            )
            .map_err(db_err("counting outputs"))?;
        let rows = stmt
            .query_map([listener], |r| {
                Ok(OutputCount {
                    model_version: r.get(0)?,
                    count: r.get::<_, i64>(1)? as u64,
                })
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(db_err("counting outputs"))?;
        Ok(rows)
    }

    fn failures(&self, listener: Option<&str>) -> Result<Vec<FailureRecord>> {
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
}
