//! Listeners on PostgreSQL: the same queue, outputs, errors and jobs as on SQLite, with three
//! differences. Triggers are PL/pgSQL functions that also `NOTIFY vigil_work`, so idle
//! workers sleep on `LISTEN` instead of polling. Claims take rows `FOR UPDATE SKIP LOCKED`, so
//! any number of workers on any number of machines share the queue without waiting on each
//! other. A claim records the server process of the worker's session (`pg_backend_pid()`):
//! when the worker dies, its connection closes, that process leaves `pg_stat_activity`, and
//! its rows are claimable at once, lease or not.

use std::collections::HashMap;
use std::time::Duration;

use vigil_core::listen::{
    now, Applied, Claim, Completion, FailureRecord, JobRecord, JobStatus, ListenerRecord, Outcome,
    RetryPolicy, WorkItem,
};
use vigil_core::{stored, Document, Error, Filter, Result, Value, ID_FIELD, OUTPUTS_FIELD};

use crate::pool::{pg_err, Conn};
use crate::sql::{self, Param, Scope, Sql};
use crate::{create_table, id_json, read_id, table, PostgresBackend};

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

/// The channel workers listen on.
const CHANNEL: &str = "vigil_work";

/// The function every trigger calls: a new entry, or the existing one bumped to a new
/// generation, due at once, unclaimed, failures forgotten; and a wake-up for idle workers
/// (delivered at commit, once per transaction).
fn enqueue_function(schema: &str) -> String {
    format!(
        "CREATE OR REPLACE FUNCTION vigil_enqueue(l BIGINT, d TEXT) RETURNS void
         LANGUAGE sql SET search_path = \"{schema}\" AS $f$
           INSERT INTO vigil_queue (listener, doc_id) VALUES (l, d)
           ON CONFLICT (listener, doc_id) DO UPDATE SET gen = vigil_queue.gen + 1,
             attempts = 0, not_before = 0, claimed_until = 0, claimed_pid = NULL;
           SELECT pg_notify('{CHANNEL}', '');
         $f$;"
    )
}

fn trigger_name(listener: i64, what: &str) -> String {
    format!("\"vigil_listener_{listener}_{what}\"")
}

fn drop_triggers(
    tx: &mut postgres::Transaction<'_>,
    listener: i64,
    collection: &str,
) -> Result<()> {
    let t = table(collection);
    let mut ddl = String::new();
    for what in ["insert", "update", "delete"] {
        ddl.push_str(&format!(
            "DROP TRIGGER IF EXISTS {} ON {t};",
            trigger_name(listener, what)
        ));
    }
    for what in ["up_insert", "up_update", "up_delete"] {
        ddl.push_str(&format!(
            "DROP TRIGGER IF EXISTS {} ON vigil_outputs;",
            trigger_name(listener, what)
        ));
    }
    ddl.push_str(&format!(
        "DROP FUNCTION IF EXISTS {}(); DROP FUNCTION IF EXISTS {}();",
        trigger_name(listener, "fn"),
        trigger_name(listener, "up_fn")
    ));
    tx.batch_execute(&ddl)
        .map_err(pg_err("dropping a listener's triggers"))
}

/// The trigger function of listener `id` over a table whose document id column is `column`.
fn trigger_function(schema: &str, name: &str, id: i64, column: &str) -> String {
    format!(
        "CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql
         SET search_path = \"{schema}\" AS $f$
         BEGIN
           IF TG_OP = 'DELETE' THEN
             PERFORM vigil_enqueue({id}, OLD.{column});
           ELSE
             PERFORM vigil_enqueue({id}, NEW.{column});
             IF TG_OP = 'UPDATE' AND OLD.{column} IS DISTINCT FROM NEW.{column} THEN
               PERFORM vigil_enqueue({id}, OLD.{column});
             END IF;
           END IF;
           RETURN NULL;
         END $f$;"
    )
}

fn create_triggers(
    tx: &mut postgres::Transaction<'_>,
    schema: &str,
    id: i64,
    listener: &ListenerRecord,
    upstream: Option<i64>,
) -> Result<()> {
    let t = table(&listener.collection);
    let select = Filter::parse(&listener.select)?;
    let key = listener.key_path()?;
    let is_chain = key.segments()[0] == OUTPUTS_FIELD;
    let mut watched: Vec<String> = Vec::new();
    if !is_chain {
        watched.push(sql::path_literal(key.segments()));
    }
    for p in select.paths() {
        if p.segments()[0] != OUTPUTS_FIELD && !p.is_id() {
            watched.push(sql::path_literal(p.segments()));
        }
    }
    watched.sort();
    watched.dedup();
    let mut changed = vec!["OLD.id IS DISTINCT FROM NEW.id".to_string()];
    if !is_chain {
        changed.push("OLD.blobs IS DISTINCT FROM NEW.blobs".into());
    }
    changed.extend(
        watched
            .iter()
            .map(|p| format!("(OLD.doc #> {p})::text IS DISTINCT FROM (NEW.doc #> {p})::text")),
    );
    let function = trigger_name(id, "fn");
    let mut ddl = trigger_function(schema, &function, id, "id");
    if !is_chain {
        ddl.push_str(&format!(
            "CREATE TRIGGER {} AFTER INSERT ON {t} FOR EACH ROW EXECUTE FUNCTION {function}();",
            trigger_name(id, "insert")
        ));
    }
    ddl.push_str(&format!(
        "CREATE TRIGGER {} AFTER UPDATE ON {t} FOR EACH ROW WHEN ({}) EXECUTE FUNCTION {function}();
         CREATE TRIGGER {} AFTER DELETE ON {t} FOR EACH ROW EXECUTE FUNCTION {function}();",
        trigger_name(id, "update"),
        changed.join(" OR "),
        trigger_name(id, "delete"),
    ));
    if let Some(up) = upstream {
        let up_function = trigger_name(id, "up_fn");
        ddl.push_str(&trigger_function(schema, &up_function, id, "doc_id"));
        ddl.push_str(&format!(
            "CREATE TRIGGER {} AFTER INSERT ON vigil_outputs FOR EACH ROW WHEN (NEW.listener = {up}) EXECUTE FUNCTION {up_function}();
             CREATE TRIGGER {} AFTER UPDATE ON vigil_outputs FOR EACH ROW WHEN (NEW.listener = {up} AND
               (OLD.doc::text IS DISTINCT FROM NEW.doc::text OR OLD.blobs IS DISTINCT FROM NEW.blobs))
               EXECUTE FUNCTION {up_function}();
             CREATE TRIGGER {} AFTER DELETE ON vigil_outputs FOR EACH ROW WHEN (OLD.listener = {up}) EXECUTE FUNCTION {up_function}();",
            trigger_name(id, "up_insert"),
            trigger_name(id, "up_update"),
            trigger_name(id, "up_delete"),
        ));
    }
    tx.batch_execute(&ddl).map_err(pg_err(format!(
        "creating the triggers of `{}`",
        listener.name
    )))
}

fn parse_record(json: &str) -> Result<ListenerRecord> {
    serde_json::from_str(json).map_err(|e| Error::Corrupt {
        collection: "vigil_listeners".into(),
        reason: e.to_string(),
    })
}

fn listener_id(client: &mut impl postgres::GenericClient, name: &str) -> Result<Option<i64>> {
    Ok(client
        .query_opt("SELECT id FROM vigil_listeners WHERE name = $1", &[&name])
        .map_err(pg_err("finding a listener"))?
        .map(|r| r.get(0)))
}

/// Listener ids with their names and current model versions.
fn listener_table(
    client: &mut impl postgres::GenericClient,
) -> Result<HashMap<i64, (String, u32)>> {
    let rows = client
        .query("SELECT id, record FROM vigil_listeners", &[])
        .map_err(pg_err("reading listeners"))?;
    rows.iter()
        .map(|r| {
            let rec = parse_record(r.get(1))?;
            Ok((r.get(0), (rec.name, rec.model_version)))
        })
        .collect()
}

/// The scope of a collection: its listeners' output paths.
pub(crate) fn scope(client: &mut impl postgres::GenericClient, collection: &str) -> Result<Scope> {
    let rows = client
        .query(
            "SELECT id, record FROM vigil_listeners WHERE collection = $1 ORDER BY id",
            &[&collection],
        )
        .map_err(pg_err("reading listeners"))?;
    let mut outputs = Vec::new();
    for r in rows {
        let rec = parse_record(r.get(1))?;
        outputs.push((
            r.get::<_, i64>(0),
            rec.output_segments(),
            rec.key,
            rec.model,
        ));
    }
    Ok(Scope {
        table: table(collection),
        outputs,
    })
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

impl PostgresBackend {
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
        let schema = self.pool.schema.clone();
        self.write("installing a listener", |tx| {
            // Listeners are installed one at a time per database.
            tx.execute("SELECT pg_advisory_xact_lock(hashtext('vigil_listeners'))", &[])
                .map_err(pg_err("locking the listeners"))?;
            create_table(tx, &listener.collection)?;
            tx.batch_execute(&enqueue_function(&schema))
                .map_err(pg_err("creating the queue function"))?;
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
            sql::filter(&select, &scope, &mut s);
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
                job.finished = Some(now());
            }
            crate::registry::store_job(tx, &job)?;
            Ok(total as u64)
        })
    }

    pub(crate) fn listeners_impl(&self) -> Result<Vec<ListenerRecord>> {
        let mut conn = self.pool.get()?;
        let rows = conn
            .query("SELECT record FROM vigil_listeners ORDER BY id", &[])
            .map_err(pg_err("reading listeners"))?;
        rows.iter().map(|r| parse_record(r.get(0))).collect()
    }

    pub(crate) fn remove_listener_impl(&self, name: &str) -> Result<bool> {
        self.write("removing a listener", |tx| {
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
                return Err(Error::InvalidQuery {
                    part: "listener",
                    path: name.into(),
                    reason: format!("listener `{down}` reads its outputs; remove that one first"),
                });
            }
            remove_by_id(tx, id, &collection)?;
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
        let mut conn = self.pool.get()?;
        let names = listener_table(&mut *conn)?;
        // Free rows: due, and either never claimed, past their lease, or claimed by a session
        // that no longer exists (its worker died and its connection closed).
        let rows = conn
            .query(
                "UPDATE vigil_queue SET claimed_by = $1, claimed_pid = pg_backend_pid(), claimed_until = $2 \
                 WHERE seq IN (SELECT seq FROM vigil_queue WHERE not_before <= $3 \
                   AND (claimed_until <= $3 OR claimed_pid IS NULL \
                        OR claimed_pid NOT IN (SELECT pid FROM pg_stat_activity)) \
                   ORDER BY seq LIMIT $4 FOR UPDATE SKIP LOCKED) \
                 RETURNING listener, doc_id::text, gen, attempts, job",
                &[&worker, &(t + lease.as_secs_f64()), &t, &(limit as i64)],
            )
            .map_err(pg_err("claiming work"))?;
        let mut items = Vec::new();
        for r in rows {
            let listener: i64 = r.get(0);
            let Some((name, _)) = names.get(&listener) else {
                continue;
            };
            items.push(WorkItem {
                listener: name.clone(),
                doc_id: read_id(r.get(1), "vigil_queue")?,
                generation: r.get(2),
                attempts: r.get::<_, i32>(3) as u32,
                job: r.get(4),
            });
        }
        if items.is_empty() {
            return Ok(None);
        }
        // The claim keeps this session open: while it lives, so does the claim.
        Ok(Some(Box::new(PgClaim {
            conn: Some(conn),
            items,
            started: t,
        })))
    }

    pub(crate) fn wait_for_work_impl(&self, timeout: Duration) -> Result<()> {
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

    pub(crate) fn pending_impl(&self, listener: Option<&str>) -> Result<u64> {
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

    pub(crate) fn output_states_impl(
        &self,
        listener: &str,
        ids: &[Value],
    ) -> Result<Vec<(Value, u32, String)>> {
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
                Ok((
                    read_id(r.get(0), "vigil_outputs")?,
                    r.get::<_, i32>(1) as u32,
                    r.get(2),
                ))
            })
            .collect()
    }

    pub(crate) fn output_versions_impl(&self, listener: &str) -> Result<Vec<(u32, u64)>> {
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
            .map(|r| (r.get::<_, i32>(0) as u32, r.get::<_, i64>(1) as u64))
            .collect())
    }

    pub(crate) fn failures_impl(&self, listener: Option<&str>) -> Result<Vec<FailureRecord>> {
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

/// A claim on PostgreSQL: its rows carry this session's server process id.
struct PgClaim {
    conn: Option<Conn>,
    items: Vec<WorkItem>,
    started: f64,
}

impl Drop for PgClaim {
    fn drop(&mut self) {
        // Not completed: give the rows back (best effort; the session's end would too).
        if let Some(mut conn) = self.conn.take() {
            let _ = conn.execute(
                "UPDATE vigil_queue SET claimed_until = 0, claimed_pid = NULL WHERE claimed_pid = pg_backend_pid()",
                &[],
            );
        }
    }
}

#[derive(Default)]
struct JobCounts {
    done: u64,
    failed: u64,
}

impl Claim for PgClaim {
    fn items(&self) -> &[WorkItem] {
        &self.items
    }

    fn complete(
        mut self: Box<Self>,
        completions: Vec<Completion>,
        model_versions: &dyn Fn(&str) -> Option<u32>,
        retry: &RetryPolicy,
    ) -> Result<Applied> {
        let mut conn = self.conn.take().ok_or_else(|| Error::Backend {
            backend: "postgres",
            context: "applying outputs".into(),
            source: Box::new(std::io::Error::other("the claim was already completed")),
        })?;
        let mut tx = conn
            .transaction()
            .map_err(pg_err("starting to apply outputs"))?;
        let applied = apply(&mut tx, &completions, model_versions, retry, self.started)?;
        tx.commit().map_err(pg_err("committing outputs"))?;
        Ok(applied)
    }
}

fn apply(
    tx: &mut postgres::Transaction<'_>,
    completions: &[Completion],
    model_versions: &dyn Fn(&str) -> Option<u32>,
    retry: &RetryPolicy,
    started: f64,
) -> Result<Applied> {
    let t = now();
    let by_name: HashMap<String, (i64, u32)> = listener_table(tx)?
        .into_iter()
        .map(|(id, (name, version))| (name, (id, version)))
        .collect();
    let mut applied = Applied::default();
    let mut jobs: HashMap<String, JobCounts> = HashMap::new();
    let mut incremental: HashMap<String, JobCounts> = HashMap::new();
    let dequeue = "DELETE FROM vigil_queue WHERE listener = $1 AND doc_id = $2::text";
    let forget_error = "DELETE FROM vigil_errors WHERE listener = $1 AND doc_id = $2::text";
    for Completion { item, outcome } in completions {
        let Some(&(lid, current)) = by_name.get(&item.listener) else {
            applied.stale += 1;
            continue;
        };
        let doc_id = id_json(&item.doc_id)?;
        let entry = tx
            .query_opt(
                "SELECT gen, attempts, job FROM vigil_queue WHERE listener = $1 AND doc_id = $2::text FOR UPDATE",
                &[&lid, &doc_id],
            )
            .map_err(pg_err("checking a queue entry"))?;
        let Some(entry) = entry else {
            applied.stale += 1;
            continue;
        };
        let (generation, attempts, job): (i64, i32, Option<String>) =
            (entry.get(0), entry.get(1), entry.get(2));
        let exec = |tx: &mut postgres::Transaction<'_>,
                    sql: &str,
                    params: &[&(dyn postgres::types::ToSql + Sync)]|
         -> Result<u64> {
            tx.execute(sql, params).map_err(pg_err("applying outputs"))
        };
        if generation != item.generation || model_versions(&item.listener) != Some(current) {
            applied.stale += 1;
            exec(
                tx,
                "UPDATE vigil_queue SET claimed_until = 0, claimed_pid = NULL WHERE listener = $1 AND doc_id = $2::text",
                &[&lid, &doc_id],
            )?;
            continue;
        }
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
                    tx,
                    "INSERT INTO vigil_outputs (listener, doc_id, model_version, input_hash, doc, blobs, computed_at) \
                     VALUES ($1, $2::text, $3, $4, $5::text::json, $6, $7) ON CONFLICT (listener, doc_id) DO UPDATE SET \
                     model_version = excluded.model_version, input_hash = excluded.input_hash, \
                     doc = excluded.doc, blobs = excluded.blobs, computed_at = excluded.computed_at",
                    &[&lid, &doc_id, &(current as i32), input_hash, &stored.json, &blobs, &t],
                )?;
                exec(tx, forget_error, &[&lid, &doc_id])?;
                exec(tx, dequeue, &[&lid, &doc_id])?;
                applied.written += 1;
            }
            Outcome::Remove => {
                exec(
                    tx,
                    "DELETE FROM vigil_outputs WHERE listener = $1 AND doc_id = $2::text",
                    &[&lid, &doc_id],
                )?;
                exec(tx, forget_error, &[&lid, &doc_id])?;
                exec(tx, dequeue, &[&lid, &doc_id])?;
                applied.removed += 1;
            }
            Outcome::Unchanged => {
                exec(tx, forget_error, &[&lid, &doc_id])?;
                exec(tx, dequeue, &[&lid, &doc_id])?;
                applied.unchanged += 1;
            }
            Outcome::Failed(error) => {
                let attempts = attempts + 1;
                let parked = attempts as u32 >= retry.max_attempts;
                exec(
                    tx,
                    "INSERT INTO vigil_errors (listener, doc_id, error, attempts, first_failed, last_failed, parked) \
                     VALUES ($1, $2::text, $3, $4, $5, $5, $6) ON CONFLICT (listener, doc_id) DO UPDATE SET \
                     error = excluded.error, attempts = excluded.attempts, \
                     last_failed = excluded.last_failed, parked = excluded.parked",
                    &[&lid, &doc_id, error, &attempts, &t, &parked],
                )?;
                if parked {
                    exec(tx, dequeue, &[&lid, &doc_id])?;
                    applied.parked += 1;
                    finished_ok = false;
                } else {
                    let due = t + retry.delay(attempts as u32).as_secs_f64();
                    exec(
                        tx,
                        "UPDATE vigil_queue SET attempts = $1, not_before = $2, claimed_until = 0, claimed_pid = NULL \
                         WHERE listener = $3 AND doc_id = $4::text",
                        &[&attempts, &due, &lid, &doc_id],
                    )?;
                    applied.retrying += 1;
                    continue;
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
        tx.execute(
            "UPDATE vigil_jobs SET done = done + $1, failed = failed + $2 WHERE id = $3",
            &[&(counts.done as i64), &(counts.failed as i64), &job],
        )
        .map_err(pg_err("counting job progress"))?;
        tx.execute(
            "UPDATE vigil_jobs SET status = 'success', finished = $1, \
             error = CASE WHEN failed > 0 THEN failed || ' documents failed; see vigil errors' END \
             WHERE id = $2 AND status = 'running' AND done + failed >= total",
            &[&t, &job],
        )
        .map_err(pg_err("finishing a job"))?;
    }
    for (listener, counts) in incremental {
        let mut job = JobRecord::start("predict", &listener, counts.done + counts.failed);
        job.status = JobStatus::Success;
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
        crate::registry::store_job(tx, &job)?;
    }
    Ok(applied)
}
