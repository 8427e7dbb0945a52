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

use crate::jobs::store_job;
use crate::pool::{pg_err, Conn, Pool};
use crate::tables::{id_json, listener_table, read_id};

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

/// The applying transaction, with listener ids by name. Every primitive is one statement over
/// `unnest`ed arrays, whatever the batch's size: a few round trips per batch, not per item.
struct PgApply<'a, 't> {
    tx: &'a mut postgres::Transaction<'t>,
    ids: HashMap<String, (i64, u32)>,
}

/// The keys of a batch's items as parallel arrays: listener ids, document ids (JSON text).
#[derive(Default)]
struct Keys {
    listeners: Vec<i64>,
    docs: Vec<String>,
}

/// The join of a keyed table with a batch's keys (`$1` listener ids, `$2` document ids).
const KEYS: &str = "unnest($1::bigint[], $2::text[]) AS k(l, d)";

impl<'a, 't> PgApply<'a, 't> {
    fn new(tx: &'a mut postgres::Transaction<'t>) -> Result<Self> {
        let ids = listener_table(tx)?
            .into_iter()
            .map(|(id, (name, version))| (name, (id, version)))
            .collect();
        Ok(PgApply { tx, ids })
    }

    /// The keys of `items`, and for each item kept its index (items of removed listeners
    /// are left out).
    fn keys<'i>(
        &self,
        items: impl IntoIterator<Item = &'i WorkItem>,
    ) -> Result<(Keys, Vec<usize>)> {
        let mut keys = Keys::default();
        let mut kept = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            if let Some(&(lid, _)) = self.ids.get(&item.listener) {
                keys.listeners.push(lid);
                keys.docs.push(id_json(&item.doc_id)?);
                kept.push(i);
            }
        }
        Ok((keys, kept))
    }

    /// Runs `sql` once with the keys as `$1`, `$2` and `extra` after them.
    fn run(&mut self, sql: &str, keys: &Keys, extra: &[&(dyn ToSql + Sync)]) -> Result<()> {
        if keys.listeners.is_empty() {
            return Ok(());
        }
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&keys.listeners, &keys.docs];
        params.extend_from_slice(extra);
        self.tx
            .execute(sql, &params)
            .map_err(pg_err("applying outputs"))?;
        Ok(())
    }

    /// Picks the values of the kept items.
    fn kept<T: Clone>(values: &[T], kept: &[usize]) -> Vec<T> {
        kept.iter().map(|&i| values[i].clone()).collect()
    }
}

impl QueueTx for PgApply<'_, '_> {
    fn listener_versions(&mut self) -> Result<HashMap<String, u32>> {
        Ok(self.ids.iter().map(|(n, &(_, v))| (n.clone(), v)).collect())
    }

    fn entries(&mut self, items: &[&WorkItem]) -> Result<Vec<Option<QueueEntry>>> {
        let (keys, kept) = self.keys(items.iter().copied())?;
        let mut out: Vec<Option<QueueEntry>> = vec![None; items.len()];
        if kept.is_empty() {
            return Ok(out);
        }
        // Locked in the queue's order, as claims take them, so appliers never deadlock.
        let rows = self
            .tx
            .query(
                &format!(
                    "SELECT q.listener, q.doc_id, q.gen, q.attempts, q.job FROM vigil_queue q \
                     JOIN {KEYS} ON q.listener = k.l AND q.doc_id = k.d \
                     ORDER BY q.seq FOR UPDATE OF q"
                ),
                &[&keys.listeners, &keys.docs],
            )
            .map_err(pg_err("checking queue entries"))?;
        let index: HashMap<(i64, &str), usize> = kept
            .iter()
            .enumerate()
            .map(|(k, &i)| ((keys.listeners[k], keys.docs[k].as_str()), i))
            .collect();
        for r in rows {
            let (lid, doc): (i64, String) = (r.get(0), r.get(1));
            if let Some(&i) = index.get(&(lid, doc.as_str())) {
                out[i] = Some(QueueEntry {
                    generation: r.get(2),
                    attempts: r.get::<_, i32>(3) as u32,
                    job: r.get(4),
                });
            }
        }
        Ok(out)
    }

    fn release(&mut self, items: &[&WorkItem]) -> Result<()> {
        let (keys, _) = self.keys(items.iter().copied())?;
        self.run(
            &format!(
                "UPDATE vigil_queue SET claimed_until = 0, claimed_pid = NULL FROM {KEYS} \
                 WHERE listener = k.l AND doc_id = k.d"
            ),
            &keys,
            &[],
        )
    }

    fn write_outputs(&mut self, outputs: &[NewOutput<'_>], at: f64) -> Result<()> {
        let (keys, kept) = self.keys(outputs.iter().map(|o| o.item))?;
        let mut versions = Vec::new();
        let mut hashes = Vec::new();
        let mut docs = Vec::new();
        let mut blobs: Vec<Option<Vec<u8>>> = Vec::new();
        for &i in &kept {
            let o = &outputs[i];
            let stored = encode_output(&o.item.doc_id, o.value)?;
            versions.push(o.model_version as i32);
            hashes.push(o.input_hash.to_string());
            docs.push(stored.json);
            blobs.push((!stored.blobs.is_empty()).then_some(stored.blobs));
        }
        self.run(
            "INSERT INTO vigil_outputs (listener, doc_id, model_version, input_hash, doc, blobs, computed_at) \
             SELECT l, d, v, h, j::json, b, $7 FROM \
               unnest($1::bigint[], $2::text[], $3::int[], $4::text[], $5::text[], $6::bytea[]) \
               AS u(l, d, v, h, j, b) \
             ON CONFLICT (listener, doc_id) DO UPDATE SET \
             model_version = excluded.model_version, input_hash = excluded.input_hash, \
             doc = excluded.doc, blobs = excluded.blobs, computed_at = excluded.computed_at",
            &keys,
            &[&versions, &hashes, &docs, &blobs, &at],
        )
    }

    fn delete(&mut self, rows: Keyed, items: &[&WorkItem]) -> Result<()> {
        let (keys, _) = self.keys(items.iter().copied())?;
        let sql = format!(
            "DELETE FROM {} USING {KEYS} WHERE listener = k.l AND doc_id = k.d",
            rows.table()
        );
        self.run(&sql, &keys, &[])
    }

    fn record_failures(&mut self, failures: &[NewFailure<'_>], at: f64) -> Result<()> {
        let (keys, kept) = self.keys(failures.iter().map(|f| f.item))?;
        let errors: Vec<String> = failures.iter().map(|f| f.error.to_string()).collect();
        let attempts: Vec<i32> = failures.iter().map(|f| f.attempts as i32).collect();
        let parked: Vec<bool> = failures.iter().map(|f| f.parked).collect();
        self.run(
            "INSERT INTO vigil_errors (listener, doc_id, error, attempts, first_failed, last_failed, parked) \
             SELECT l, d, e, a, $6, $6, p FROM \
               unnest($1::bigint[], $2::text[], $3::text[], $4::int[], $5::bool[]) AS u(l, d, e, a, p) \
             ON CONFLICT (listener, doc_id) DO UPDATE SET \
             error = excluded.error, attempts = excluded.attempts, \
             last_failed = excluded.last_failed, parked = excluded.parked",
            &keys,
            &[
                &Self::kept(&errors, &kept),
                &Self::kept(&attempts, &kept),
                &Self::kept(&parked, &kept),
                &at,
            ],
        )
    }

    fn reschedule(&mut self, retries: &[Retry<'_>]) -> Result<()> {
        let (keys, kept) = self.keys(retries.iter().map(|r| r.item))?;
        let attempts: Vec<i32> = retries.iter().map(|r| r.attempts as i32).collect();
        let due: Vec<f64> = retries.iter().map(|r| r.due).collect();
        self.run(
            "UPDATE vigil_queue SET attempts = u.a, not_before = u.t, claimed_until = 0, claimed_pid = NULL \
             FROM unnest($1::bigint[], $2::text[], $3::int[], $4::float8[]) AS u(l, d, a, t) \
             WHERE listener = u.l AND doc_id = u.d",
            &keys,
            &[&Self::kept(&attempts, &kept), &Self::kept(&due, &kept)],
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
