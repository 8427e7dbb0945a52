//! Claimed work on PostgreSQL: rows are taken `FOR UPDATE SKIP LOCKED` and stamped with the
//! claiming session's server process (`pg_backend_pid()`), so a dead worker's rows are free as
//! soon as its session ends. Completing a claim applies it in one transaction on that same
//! session through [`vigil_core::listen::apply_batch`]; this module supplies the statements.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use postgres::types::ToSql;
use vigil_core::backend::sql::encode_output;
use vigil_core::listen::{
    apply_batch, now, Applied, Claim, Completion, JobRecord, Keyed, NewFailure, NewOutput,
    QueueEntry, QueueTx, Retry, RetryPolicy, WorkItem,
};
use vigil_core::{Error, Result};

use crate::documents::{id_json, read_id};
use crate::jobs::store_job;
use crate::pool::{pg_err, Conn, Pool};
use crate::queue::listener_table;

/// Claims up to `limit` due entries for `worker` on a session of its own, kept by the claim.
pub(crate) fn claim(
    pool: &Arc<Pool>,
    worker: &str,
    limit: usize,
    lease: Duration,
) -> Result<Option<Box<dyn Claim>>> {
    let t = now();
    let mut conn = pool.get()?;
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
        let mut apply = PgApply::new(&mut tx)?;
        let applied = apply_batch(
            &mut apply,
            &completions,
            model_versions,
            retry,
            self.started,
        )?;
        tx.commit().map_err(pg_err("committing outputs"))?;
        Ok(applied)
    }
}

/// The applying transaction, with listener ids by name.
struct PgApply<'a, 't> {
    tx: &'a mut postgres::Transaction<'t>,
    ids: HashMap<String, (i64, u32)>,
}

impl<'a, 't> PgApply<'a, 't> {
    fn new(tx: &'a mut postgres::Transaction<'t>) -> Result<Self> {
        let ids = listener_table(tx)?
            .into_iter()
            .map(|(id, (name, version))| (name, (id, version)))
            .collect();
        Ok(PgApply { tx, ids })
    }

    /// Runs `sql` once per item, bound to (listener id, document id as JSON text) then the
    /// item's other values.
    fn each<'i>(
        &mut self,
        sql: &str,
        rows: impl IntoIterator<Item = (&'i WorkItem, Vec<Box<dyn ToSql + Sync>>)>,
    ) -> Result<()> {
        let stmt = self.tx.prepare(sql).map_err(pg_err("applying outputs"))?;
        for (item, extra) in rows {
            let Some(&(lid, _)) = self.ids.get(&item.listener) else {
                continue;
            };
            let doc_id = id_json(&item.doc_id)?;
            let mut params: Vec<&(dyn ToSql + Sync)> = vec![&lid, &doc_id];
            params.extend(extra.iter().map(|p| p.as_ref()));
            self.tx
                .execute(&stmt, &params)
                .map_err(pg_err("applying outputs"))?;
        }
        Ok(())
    }

    fn keys(&mut self, sql: &str, items: &[&WorkItem]) -> Result<()> {
        self.each(sql, items.iter().map(|i| (*i, Vec::new())))
    }
}

impl QueueTx for PgApply<'_, '_> {
    fn listener_versions(&mut self) -> Result<HashMap<String, u32>> {
        Ok(self.ids.iter().map(|(n, &(_, v))| (n.clone(), v)).collect())
    }

    fn entries(&mut self, items: &[&WorkItem]) -> Result<Vec<Option<QueueEntry>>> {
        let stmt = self
            .tx
            .prepare(
                "SELECT gen, attempts, job FROM vigil_queue WHERE listener = $1 AND doc_id = $2::text FOR UPDATE",
            )
            .map_err(pg_err("checking a queue entry"))?;
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let Some(&(lid, _)) = self.ids.get(&item.listener) else {
                out.push(None);
                continue;
            };
            let row = self
                .tx
                .query_opt(&stmt, &[&lid, &id_json(&item.doc_id)?])
                .map_err(pg_err("checking a queue entry"))?;
            out.push(row.map(|r| QueueEntry {
                generation: r.get(0),
                attempts: r.get::<_, i32>(1) as u32,
                job: r.get(2),
            }));
        }
        Ok(out)
    }

    fn release(&mut self, items: &[&WorkItem]) -> Result<()> {
        self.keys(
            "UPDATE vigil_queue SET claimed_until = 0, claimed_pid = NULL WHERE listener = $1 AND doc_id = $2::text",
            items,
        )
    }

    fn write_outputs(&mut self, outputs: &[NewOutput<'_>], at: f64) -> Result<()> {
        let rows = outputs
            .iter()
            .map(|o| {
                let stored = encode_output(&o.item.doc_id, o.value)?;
                let blobs = (!stored.blobs.is_empty()).then_some(stored.blobs);
                let extra: Vec<Box<dyn ToSql + Sync>> = vec![
                    Box::new(o.model_version as i32),
                    Box::new(o.input_hash.to_string()),
                    Box::new(stored.json),
                    Box::new(blobs),
                    Box::new(at),
                ];
                Ok((o.item, extra))
            })
            .collect::<Result<Vec<_>>>()?;
        self.each(
            "INSERT INTO vigil_outputs (listener, doc_id, model_version, input_hash, doc, blobs, computed_at) \
             VALUES ($1, $2::text, $3, $4, $5::text::json, $6, $7) ON CONFLICT (listener, doc_id) DO UPDATE SET \
             model_version = excluded.model_version, input_hash = excluded.input_hash, \
             doc = excluded.doc, blobs = excluded.blobs, computed_at = excluded.computed_at",
            rows,
        )
    }

    fn delete(&mut self, rows: Keyed, items: &[&WorkItem]) -> Result<()> {
        let sql = format!(
            "DELETE FROM {} WHERE listener = $1 AND doc_id = $2::text",
            rows.table()
        );
        self.keys(&sql, items)
    }

    fn record_failures(&mut self, failures: &[NewFailure<'_>], at: f64) -> Result<()> {
        self.each(
            "INSERT INTO vigil_errors (listener, doc_id, error, attempts, first_failed, last_failed, parked) \
             VALUES ($1, $2::text, $3, $4, $5, $5, $6) ON CONFLICT (listener, doc_id) DO UPDATE SET \
             error = excluded.error, attempts = excluded.attempts, \
             last_failed = excluded.last_failed, parked = excluded.parked",
            failures.iter().map(|f| {
                let extra: Vec<Box<dyn ToSql + Sync>> = vec![
                    Box::new(f.error.to_string()),
                    Box::new(f.attempts as i32),
                    Box::new(at),
                    Box::new(f.parked),
                ];
                (f.item, extra)
            }),
        )
    }

    fn reschedule(&mut self, retries: &[Retry<'_>]) -> Result<()> {
        self.each(
            "UPDATE vigil_queue SET attempts = $3, not_before = $4, claimed_until = 0, claimed_pid = NULL \
             WHERE listener = $1 AND doc_id = $2::text",
            retries.iter().map(|r| {
                let extra: Vec<Box<dyn ToSql + Sync>> =
                    vec![Box::new(r.attempts as i32), Box::new(r.due)];
                (r.item, extra)
            }),
        )
    }

    fn count_job(&mut self, job: &str, done: u64, failed: u64, at: f64) -> Result<()> {
        self.tx
            .execute(
                "UPDATE vigil_jobs SET done = done + $1, failed = failed + $2 WHERE id = $3",
                &[&(done as i64), &(failed as i64), &job],
            )
            .map_err(pg_err("counting job progress"))?;
        self.tx
            .execute(
                "UPDATE vigil_jobs SET status = 'success', finished = $1, \
                 error = CASE WHEN failed > 0 THEN failed || ' documents failed; see vigil errors' END \
                 WHERE id = $2 AND status = 'running' AND done + failed >= total",
                &[&at, &job],
            )
            .map_err(pg_err("finishing a job"))?;
        Ok(())
    }

    fn put_job(&mut self, job: &JobRecord) -> Result<()> {
        store_job(self.tx, job)
    }
}
