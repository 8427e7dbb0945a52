//! Claimed work on SQLite: queue entries carry the worker's label and a lease. Completing a
//! claim applies it in one write transaction through [`vigil_core::listen::apply_batch`];
//! this module supplies only the statements.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{OptionalExtension, Transaction, TransactionBehavior};
use vigil_core::backend::sql::encode_output;
use vigil_core::ids::claimer_is_dead;
use vigil_core::listen::{
    apply_batch, now, Applied, Claim, Completion, JobRecord, Keyed, NewFailure, NewOutput,
    QueueEntry, QueueTx, Retry, RetryPolicy, WorkItem,
};
use vigil_core::Result;

use crate::error::db_err;
use crate::jobs::store_job;
use crate::pool::Pool;
use crate::tables::{id_param, listener_table, read_id};

/// Claims up to `limit` due entries for `worker`. When none is free, entries leased by dead
/// workers of this host are given back first (they would otherwise wait out their lease).
pub(crate) fn claim(
    pool: &Arc<Pool>,
    worker: &str,
    limit: usize,
    lease: Duration,
) -> Result<Option<Box<dyn Claim>>> {
    let t = now();
    let items = pool.write("claiming work", |tx| {
        let mut items = take(tx, worker, limit, t, lease)?;
        if items.is_empty() && release_dead(tx, t)? > 0 {
            items = take(tx, worker, limit, t, lease)?;
        }
        Ok(items)
    })?;
    if items.is_empty() {
        return Ok(None);
    }
    Ok(Some(Box::new(SqliteClaim {
        pool: Arc::clone(pool),
        worker: worker.to_string(),
        items,
        started: t,
        completed: false,
    })))
}

fn take(
    tx: &Transaction<'_>,
    worker: &str,
    limit: usize,
    t: f64,
    lease: Duration,
) -> Result<Vec<WorkItem>> {
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
}

/// Gives back the live leases of workers of this host whose process is gone.
fn release_dead(tx: &Transaction<'_>, t: f64) -> Result<u64> {
    let holders: Vec<String> = tx
        .prepare_cached(
            "SELECT DISTINCT claimed_by FROM vigil_queue WHERE claimed_by IS NOT NULL AND claimed_until > ?",
        )
        .and_then(|mut s| s.query_map([t], |r| r.get(0))?.collect())
        .map_err(db_err("listing claims"))?;
    let mut released = 0;
    for holder in holders.iter().filter(|h| claimer_is_dead(h)) {
        released += tx
            .prepare_cached("UPDATE vigil_queue SET claimed_until = 0 WHERE claimed_by = ? AND claimed_until > 0")
            .and_then(|mut s| s.execute([holder]))
            .map_err(db_err("releasing a dead worker's claims"))? as u64;
    }
    Ok(released)
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
        if let Ok(tx) = conn.transaction_with_behavior(TransactionBehavior::Immediate) {
            if let Ok(mut apply) = SqliteApply::new(&tx) {
                let items: Vec<&WorkItem> = self.items.iter().collect();
                let _ = apply.release_for(&items, Some(&self.worker));
            }
            let _ = tx.commit();
        };
    }
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
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db_err("starting to apply outputs"))?;
        let applied = apply_batch(
            &mut SqliteApply::new(&tx)?,
            &completions,
            model_versions,
            retry,
            self.started,
        )?;
        tx.commit().map_err(db_err("committing outputs"))?;
        self.completed = true;
        Ok(applied)
    }
}

/// The applying transaction, with listener ids by name.
struct SqliteApply<'t> {
    tx: &'t Transaction<'t>,
    ids: HashMap<String, (i64, u32)>,
}

impl<'t> SqliteApply<'t> {
    fn new(tx: &'t Transaction<'t>) -> Result<Self> {
        let ids = listener_table(tx)?
            .into_iter()
            .map(|(id, (name, version))| (name, (id, version)))
            .collect();
        Ok(SqliteApply { tx, ids })
    }

    /// Runs `sql` once per item, bound to (listener id, document id) then `extra`'s values.
    fn each<'i, P: rusqlite::ToSql + 'i>(
        &self,
        sql: &str,
        rows: impl IntoIterator<Item = (&'i WorkItem, Vec<P>)>,
    ) -> Result<()> {
        let mut stmt = self
            .tx
            .prepare_cached(sql)
            .map_err(db_err("applying outputs"))?;
        for (item, extra) in rows {
            let Some(&(lid, _)) = self.ids.get(&item.listener) else {
                continue;
            };
            let doc_id = id_param(&item.doc_id)?;
            let mut params: Vec<&dyn rusqlite::ToSql> = vec![&lid, &doc_id];
            params.extend(extra.iter().map(|p| p as &dyn rusqlite::ToSql));
            stmt.execute(params.as_slice())
                .map_err(db_err("applying outputs"))?;
        }
        Ok(())
    }

    fn keys(&self, sql: &str, items: &[&WorkItem]) -> Result<()> {
        self.each::<i64>(sql, items.iter().map(|i| (*i, Vec::new())))
    }

    fn release_for(&mut self, items: &[&WorkItem], worker: Option<&str>) -> Result<()> {
        match worker {
            Some(w) => self.each(
                "UPDATE vigil_queue SET claimed_until = 0 WHERE listener = ? AND doc_id = ? AND claimed_by = ?",
                items.iter().map(|i| (*i, vec![w])),
            ),
            None => self.keys(
                "UPDATE vigil_queue SET claimed_until = 0 WHERE listener = ? AND doc_id = ?",
                items,
            ),
        }
    }
}

impl QueueTx for SqliteApply<'_> {
    fn listener_versions(&mut self) -> Result<HashMap<String, u32>> {
        Ok(self.ids.iter().map(|(n, &(_, v))| (n.clone(), v)).collect())
    }

    fn entries(&mut self, items: &[&WorkItem]) -> Result<Vec<Option<QueueEntry>>> {
        let mut stmt = self
            .tx
            .prepare_cached(
                "SELECT gen, attempts, job FROM vigil_queue WHERE listener = ? AND doc_id = ?",
            )
            .map_err(db_err("checking a queue entry"))?;
        items
            .iter()
            .map(|item| {
                let Some(&(lid, _)) = self.ids.get(&item.listener) else {
                    return Ok(None);
                };
                stmt.query_row(rusqlite::params![lid, id_param(&item.doc_id)?], |r| {
                    Ok(QueueEntry {
                        generation: r.get(0)?,
                        attempts: r.get(1)?,
                        job: r.get(2)?,
                    })
                })
                .optional()
                .map_err(db_err("checking a queue entry"))
            })
            .collect()
    }

    fn release(&mut self, items: &[&WorkItem]) -> Result<()> {
        self.release_for(items, None)
    }

    fn write_outputs(&mut self, outputs: &[NewOutput<'_>], at: f64) -> Result<()> {
        let rows = outputs
            .iter()
            .map(|o| {
                let stored = encode_output(&o.item.doc_id, o.value)?;
                let blobs = (!stored.blobs.is_empty()).then_some(stored.blobs);
                let extra: Vec<rusqlite::types::Value> = vec![
                    i64::from(o.model_version).into(),
                    o.input_hash.to_string().into(),
                    stored.json.into(),
                    blobs.into(),
                    at.into(),
                ];
                Ok((o.item, extra))
            })
            .collect::<Result<Vec<_>>>()?;
        self.each(
            "INSERT INTO vigil_outputs (listener, doc_id, model_version, input_hash, doc, blobs, computed_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (listener, doc_id) DO UPDATE SET \
             model_version = excluded.model_version, input_hash = excluded.input_hash, \
             doc = excluded.doc, blobs = excluded.blobs, computed_at = excluded.computed_at",
            rows,
        )
    }

    fn delete(&mut self, rows: Keyed, items: &[&WorkItem]) -> Result<()> {
        let sql = format!(
            "DELETE FROM {} WHERE listener = ? AND doc_id = ?",
            rows.table()
        );
        self.keys(&sql, items)
    }

    fn record_failures(&mut self, failures: &[NewFailure<'_>], at: f64) -> Result<()> {
        self.each(
            "INSERT INTO vigil_errors (listener, doc_id, error, attempts, first_failed, last_failed, parked) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6) ON CONFLICT (listener, doc_id) DO UPDATE SET \
             error = excluded.error, attempts = excluded.attempts, \
             last_failed = excluded.last_failed, parked = excluded.parked",
            failures.iter().map(|f| {
                let extra: Vec<rusqlite::types::Value> = vec![
                    f.error.to_string().into(),
                    i64::from(f.attempts).into(),
                    at.into(),
                    f.parked.into(),
                ];
                (f.item, extra)
            }),
        )
    }

    fn reschedule(&mut self, retries: &[Retry<'_>]) -> Result<()> {
        self.each(
            "UPDATE vigil_queue SET attempts = ?3, not_before = ?4, claimed_until = 0 WHERE listener = ?1 AND doc_id = ?2",
            retries.iter().map(|r| {
                let extra: Vec<rusqlite::types::Value> =
                    vec![i64::from(r.attempts).into(), r.due.into()];
                (r.item, extra)
            }),
        )
    }

    fn count_job(&mut self, job: &str, done: u64, failed: u64, at: f64) -> Result<()> {
        let exec = |sql: &str, params: &[&dyn rusqlite::ToSql]| {
            self.tx
                .prepare_cached(sql)
                .and_then(|mut s| s.execute(params))
                .map_err(db_err("counting job progress"))
        };
        exec(
            "UPDATE vigil_jobs SET done = done + ?, failed = failed + ? WHERE id = ?",
            &[&(done as i64), &(failed as i64), &job],
        )?;
        exec(
            "UPDATE vigil_jobs SET status = 'success', finished = ?, \
             error = CASE WHEN failed > 0 THEN failed || ' documents failed; see vigil errors' END \
             WHERE id = ? AND status = 'running' AND done + failed >= total",
            &[&at, &job],
        )?;
        Ok(())
    }

    fn put_job(&mut self, job: &JobRecord) -> Result<()> {
        store_job(self.tx, job)
    }
}
