//! Listeners on PostgreSQL: the same queue, outputs, errors and jobs as on SQLite, with three
//! differences. Triggers are PL/pgSQL functions that also `NOTIFY vigil_work`, so idle
//! workers sleep on `LISTEN` instead of polling. Claims take rows `FOR UPDATE SKIP LOCKED`, so
//! any number of workers on any number of machines share the queue without waiting on each
//! other. A claim records the server process of the worker's session (`pg_backend_pid()`):
//! when the worker dies, its connection closes, that process leaves `pg_stat_activity`, and
//! its rows are claimable at once, lease or not.

use std::time::Duration;

use vigil_core::backend::sql::{listener_in_use, missing_upstream};
use vigil_core::backend::{OutputCount, OutputState};
use vigil_core::listen::{Claim, FailureRecord, JobRecord, JobStatus, ListenerRecord};
use vigil_core::{Filter, Queue, Result, Value};

use crate::jobs::store_job;
use crate::pool::pg_err;
use crate::sql::{self, table, Param, Scope, Sql};
use crate::tables::{create_table, id_json, listener_id, read_id};
use crate::triggers::{create_triggers, drop_triggers, enqueue_function, CHANNEL};
use crate::{claim, PostgresBackend};

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS vigil_listeners (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    collection TEXT NOT NULL,
    record TEXT NOT NULL,
    upstream BIGINT
);
CREATE TABLE IF NOT EXISTS vigil_queue (
    seq BIGSERIAL PRIMARY KEY,
    listener BIGINT NOT NULL,
    doc_id TEXT NOT NULL,
    gen BIGINT NOT NULL DEFAULT 0,
    job TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    not_before DOUBLE PRECISION NOT NULL DEFAULT 0,
    claimed_by TEXT,
    claimed_pid INTEGER,
    claimed_until DOUBLE PRECISION NOT NULL DEFAULT 0,
    UNIQUE (listener, doc_id)
);
CREATE TABLE IF NOT EXISTS vigil_outputs (
    listener BIGINT NOT NULL,
    doc_id TEXT NOT NULL,
    model_version INTEGER NOT NULL,
    input_hash TEXT NOT NULL,
    doc JSON NOT NULL,
    blobs BYTEA,
    computed_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (listener, doc_id)
);
-- Bulk reads of a listener's outputs by time (vector indexes) and their fingerprint.
CREATE INDEX IF NOT EXISTS vigil_outputs_at ON vigil_outputs (listener, computed_at);
CREATE TABLE IF NOT EXISTS vigil_errors (
    listener BIGINT NOT NULL,
    doc_id TEXT NOT NULL,
    error TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    first_failed DOUBLE PRECISION NOT NULL,
    last_failed DOUBLE PRECISION NOT NULL,
    parked BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (listener, doc_id)
);
";

/// The scope of a collection: its listeners' output paths.
pub(crate) fn scope(client: &mut impl postgres::GenericClient, collection: &str) -> Result<Scope> {
    let rows = client
        .query(
            "SELECT id, record FROM vigil_listeners WHERE collection = $1 ORDER BY id",
            &[&collection],
        )
        .map_err(pg_err("reading listeners"))?;
    let mut scope = Scope::plain(table(collection));
    for r in rows {
        let rec = ListenerRecord::from_stored(r.get(1))?;
        scope.add_listener(r.get(0), rec.key, rec.model);
    }
    Ok(scope)
}

/// Removes every listener of a collection, with its queue, outputs and errors.
pub(crate) fn drop_listeners_of(
    tx: &mut postgres::Transaction<'_>,
    collection: &str,
) -> Result<()> {
    let ids: Vec<i64> = tx
        .query(
            "SELECT id FROM vigil_listeners WHERE collection = $1",
            &[&collection],
        )
        .map_err(pg_err("finding a collection's listeners"))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    for id in ids {
        remove_by_id(tx, id, collection)?;
    }
    Ok(())
}

fn remove_by_id(tx: &mut postgres::Transaction<'_>, id: i64, collection: &str) -> Result<()> {
    drop_triggers(tx, id, collection)?;
    for sql in [
        "DELETE FROM vigil_queue WHERE listener = $1",
        "DELETE FROM vigil_outputs WHERE listener = $1",
        "DELETE FROM vigil_errors WHERE listener = $1",
        "DELETE FROM vigil_listeners WHERE id = $1",
    ] {
        tx.execute(sql, &[&id])
            .map_err(pg_err("removing a listener"))?;
    }
    Ok(())
}

impl Queue for PostgresBackend {
    fn install_listener(
        &self,
        listener: &ListenerRecord,
        backfill: Option<&JobRecord>,
    ) -> Result<u64> {
        let select = Filter::parse(&listener.select)?;
        let record = listener.to_stored()?;
        let schema = self.pool.schema.clone();
        self.pool.write("installing a listener", |tx| {
            // Listeners are installed one at a time per database.
            tx.execute("SELECT pg_advisory_xact_lock(hashtext('vigil_listeners'))", &[])
                .map_err(pg_err("locking the listeners"))?;
            create_table(tx, &listener.collection)?;
            tx.batch_execute(&enqueue_function(&schema))
                .map_err(pg_err("creating the queue function"))?;
            let upstream = match &listener.upstream {
                Some(up) => Some(listener_id(tx, up)?.ok_or_else(|| missing_upstream(up))?),
                None => None,
            };
            let id = match listener_id(tx, &listener.name)? {
                Some(id) => {
                    drop_triggers(tx, id, &listener.collection)?;
                    tx.execute(
                        "UPDATE vigil_listeners SET record = $1, upstream = $2 WHERE id = $3",
                        &[&record, &upstream, &id],
                    )
                    .map_err(pg_err("updating a listener"))?;
                    id
                }
                None => tx
                    .query_one(
                        "INSERT INTO vigil_listeners (name, collection, record, upstream) VALUES ($1, $2, $3, $4) RETURNING id",
                        &[&listener.name, &listener.collection, &record, &upstream],
                    )
                    .map_err(pg_err("registering a listener"))?
                    .get(0),
            };
            create_triggers(tx, &schema, id, listener, upstream)?;
            let Some(job) = backfill else {
                return Ok(0);
            };
            let upsert = " ON CONFLICT (listener, doc_id) DO UPDATE SET gen = vigil_queue.gen + 1, \
                          job = excluded.job, attempts = 0, not_before = 0, claimed_until = 0, claimed_pid = NULL";
            let scope = scope(tx, &listener.collection)?;
            let mut s = Sql::new(String::new());
            s.bind(Param::Text(job.id.clone()), "::text");
            s.text = format!(
                "INSERT INTO vigil_queue (listener, doc_id, job) SELECT {id}, id, $1::text FROM {} WHERE ",
                table(&listener.collection)
            );
            sql::filter(&select, &scope, &mut s)?;
            s.push(" ORDER BY seq");
            s.push(upsert);
            tx.execute(&s.text, &s.params())
                .map_err(pg_err("queueing a backfill"))?;
            tx.execute(
                &format!(
                    "INSERT INTO vigil_queue (listener, doc_id, job) SELECT {id}, doc_id, $1::text FROM vigil_outputs WHERE listener = {id} {upsert}"
                ),
                &[&job.id],
            )
            .map_err(pg_err("queueing a backfill"))?;
            let total: i64 = tx
                .query_one(
                    "SELECT count(*) FROM vigil_queue WHERE listener = $1 AND job = $2",
                    &[&id, &job.id],
                )
                .map_err(pg_err("counting a backfill"))?
                .get(0);
            tx.execute("SELECT pg_notify($1, '')", &[&CHANNEL])
                .map_err(pg_err("waking workers"))?;
            let mut job = job.clone();
            job.total = total as u64;
            if total == 0 {
                job.status = JobStatus::Success;
                job.finished = Some(vigil_core::listen::now());
            }
            store_job(tx, &job)?;
            Ok(total as u64)
        })
    }

    fn listeners(&self) -> Result<Vec<ListenerRecord>> {
        let mut conn = self.pool.get()?;
        let rows = conn
            .query("SELECT record FROM vigil_listeners ORDER BY id", &[])
            .map_err(pg_err("reading listeners"))?;
        rows.iter()
            .map(|r| ListenerRecord::from_stored(r.get(0)))
            .collect()
    }

    fn remove_listener(&self, name: &str) -> Result<bool> {
        self.pool.write("removing a listener", |tx| {
            let Some(row) = tx
                .query_opt(
                    "SELECT id, collection FROM vigil_listeners WHERE name = $1",
                    &[&name],
                )
                .map_err(pg_err("finding a listener"))?
            else {
                return Ok(false);
            };
            let (id, collection): (i64, String) = (row.get(0), row.get(1));
            let downstream = tx
                .query_opt(
                    "SELECT name FROM vigil_listeners WHERE upstream = $1 LIMIT 1",
                    &[&id],
                )
                .map_err(pg_err("checking chained listeners"))?;
            if let Some(down) = downstream {
                let down: String = down.get(0);
                return Err(listener_in_use(name, &down));
            }
            remove_by_id(tx, id, &collection)?;
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
                 SELECT listener, doc_id FROM vigil_errors WHERE listener = $1 AND parked \
                 ON CONFLICT (listener, doc_id) DO UPDATE SET gen = vigil_queue.gen + 1, \
                 attempts = 0, not_before = 0, claimed_until = 0, claimed_pid = NULL",
                &[&id],
            )
            .map_err(pg_err("queueing parked documents"))?;
            let n = tx
                .execute(
                    "UPDATE vigil_errors SET parked = FALSE WHERE listener = $1 AND parked",
                    &[&id],
                )
                .map_err(pg_err("un-parking documents"))?;
            tx.execute("SELECT pg_notify($1, '')", &[&CHANNEL])
                .map_err(pg_err("waking workers"))?;
            Ok(n)
        })
    }

    fn claim(&self, worker: &str, limit: usize, lease: Duration) -> Result<Option<Box<dyn Claim>>> {
        claim::claim(&self.pool, worker, limit, lease)
    }

    fn wait_for_work(&self, timeout: Duration) -> Result<()> {
        let mut watch = self.watch.lock().unwrap_or_else(|e| e.into_inner());
        if watch.is_none() {
            let mut client = self.pool.connect()?;
            client
                .batch_execute(&format!("LISTEN {CHANNEL}"))
                .map_err(pg_err("listening for work"))?;
            *watch = Some(client);
        }
        let result = {
            let client = watch.as_mut().expect("opened above");
            let mut notifications = client.notifications();
            let mut it = notifications.timeout_iter(timeout);
            fallible_next(&mut it)
        };
        if result.is_err() {
            // A broken session is opened again on the next wait.
            *watch = None;
        }
        result
    }

    fn pending(&self, listener: Option<&str>) -> Result<u64> {
        let mut conn = self.pool.get()?;
        let n: i64 = match listener {
            Some(name) => conn.query_one(
                "SELECT count(*) FROM vigil_queue q JOIN vigil_listeners l ON l.id = q.listener WHERE l.name = $1",
                &[&name],
            ),
            None => conn.query_one("SELECT count(*) FROM vigil_queue", &[]),
        }
        .map_err(pg_err("counting queued work"))?
        .get(0);
        Ok(n as u64)
    }

    fn output_states(&self, listener: &str, ids: &[Value]) -> Result<Vec<OutputState>> {
        let mut conn = self.pool.get()?;
        let Some(lid) = listener_id(&mut *conn, listener)? else {
            return Ok(Vec::new());
        };
        let ids: Vec<String> = ids.iter().map(id_json).collect::<Result<_>>()?;
        let rows = conn
            .query(
                "SELECT doc_id::text, model_version, input_hash FROM vigil_outputs \
                 WHERE listener = $1 AND doc_id = ANY($2::text[])",
                &[&lid, &ids],
            )
            .map_err(pg_err("reading outputs"))?;
        rows.iter()
            .map(|r| {
                Ok(OutputState {
                    doc_id: read_id(r.get(0), "vigil_outputs")?,
                    model_version: r.get::<_, i32>(1) as u32,
                    input_hash: r.get(2),
                })
            })
            .collect()
    }

    fn output_versions(&self, listener: &str) -> Result<Vec<OutputCount>> {
        let mut conn = self.pool.get()?;
        let rows = conn
            .query(
                "SELECT o.model_version, count(*) FROM vigil_outputs o JOIN vigil_listeners l \
                 ON l.id = o.listener WHERE l.name = $1 GROUP BY o.model_version ORDER BY 1",
                &[&listener],
            )
            .map_err(pg_err("counting outputs"))?;
        Ok(rows
            .iter()
            .map(|r| OutputCount {
                model_version: r.get::<_, i32>(0) as u32,
                count: r.get::<_, i64>(1) as u64,
            })
            .collect())
    }

    fn failures(&self, listener: Option<&str>) -> Result<Vec<FailureRecord>> {
        let mut conn = self.pool.get()?;
        let rows = conn
            .query(
                "SELECT l.name, e.doc_id::text, e.error, e.attempts, e.first_failed, e.last_failed, e.parked \
                 FROM vigil_errors e JOIN vigil_listeners l ON l.id = e.listener \
                 WHERE $1::text IS NULL OR l.name = $1 ORDER BY e.last_failed DESC",
                &[&listener],
            )
            .map_err(pg_err("reading errors"))?;
        rows.iter()
            .map(|r| {
                Ok(FailureRecord {
                    listener: r.get(0),
                    doc_id: read_id(r.get(1), "vigil_errors")?.to_json(),
                    error: r.get(2),
                    attempts: r.get::<_, i32>(3) as u32,
                    first_failed: r.get(4),
                    last_failed: r.get(5),
                    parked: r.get(6),
                })
            })
            .collect()
    }
}

fn fallible_next(
    it: &mut impl postgres::fallible_iterator::FallibleIterator<
        Item = postgres::Notification,
        Error = postgres::Error,
    >,
) -> Result<()> {
    it.next().map(|_| ()).map_err(pg_err("waiting for work"))
}
