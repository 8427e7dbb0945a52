//! Claimed work on MongoDB: queue entries carry the worker's label and a lease. Completing a
//! claim applies it in one transaction through [`vigil_core::listen::apply_batch`]; this
//! module supplies only the operations. Entries are not locked when read; any concurrent
//! change to one (a new generation queued by the change stream, another applier) makes one
//! of the two transactions fail with a write conflict, and it is run again whole.

use std::collections::HashMap;
use std::time::Duration;

use mongodb::bson::{self, doc, Bson};
use mongodb::options::{ReplaceOneModel, UpdateOneModel, WriteModel};
use mongodb::sync::ClientSession;
use vigil_core::ids::claimer_is_dead;
use vigil_core::listen::{
    apply_batch, failed_note, now, Applied, Claim, Completion, JobRecord, Keyed, ListenerRecord,
    NewFailure, NewOutput, QueueEntry, QueueTx, Retry, RetryPolicy, WorkItem,
};
use vigil_core::{Result, Value};

use crate::bson::{from_bson, id_match, to_bson};
use crate::entries::{entry_key, output_path, read_listeners};
use crate::error::db_err;
use crate::MongoBackend;

/// Claims up to `limit` due entries for `worker`.
pub(crate) fn claim(
    backend: &MongoBackend,
    worker: &str,
    limit: usize,
    lease: Duration,
) -> Result<Option<Box<dyn Claim>>> {
    let t = now();
    let mut items = take(backend, worker, limit, t, lease)?;
    if items.is_empty() && release_dead(backend, t)? > 0 {
        items = take(backend, worker, limit, t, lease)?;
    }
    if items.is_empty() {
        return Ok(None);
    }
    Ok(Some(Box::new(MongoClaim {
        backend: backend.clone(),
        worker: worker.to_string(),
        items,
        started: t,
        completed: false,
    })))
}

fn take(
    backend: &MongoBackend,
    worker: &str,
    limit: usize,
    t: f64,
    lease: Duration,
) -> Result<Vec<WorkItem>> {
    let queue = backend.collection("vigil_queue");
    let due = doc! { "not_before": { "$lte": t }, "claimed_until": { "$lte": t } };
    let due_keys = || -> Result<Vec<Bson>> {
        Ok(queue
            .find(due.clone())
            .projection(doc! { "_id": 1 })
            .sort(doc! { "not_before": 1 })
            .limit(limit as i64)
            .run()
            .map_err(db_err("claiming work"))?
            .filter_map(|d| d.ok().and_then(|d| d.get("_id").cloned()))
            .collect())
    };
    let until = t + lease.as_secs_f64();
    let lease_to = |keys: &[Bson], retry_for: Duration| {
        // `_id` first: a planner that takes the first indexed clause (SecantusDB's) then
        // looks up these keys instead of walking every due entry against the whole `$in`.
        let mut won = doc! { "_id": { "$in": keys } };
        won.extend(due.clone());
        let set = doc! { "$set": { "claimed_by": worker, "claimed_until": until } };
        backend.transaction_for("claiming work", retry_for, |session| {
            queue
                .update_many(won.clone(), set.clone())
                .session(session)
                .run()
                .map(|r| r.modified_count)
                .map_err(db_err("claiming work"))
        })
    };
    // In a transaction, so that an entry still written by another open transaction is a
    // write conflict at once, not a write that waits for it. A conflict with a live peer (a
    // worker claiming the same entries, the change stream's reader queueing a change) is
    // over in milliseconds: the due entries are read again and the claim tried again.
    let mut keys = Vec::new();
    for attempt in 1..=5u64 {
        keys = due_keys()?;
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        match lease_to(&keys, Duration::ZERO) {
            Ok(_) => return read_back(backend, worker, &keys, until),
            Err(e) if crate::error::is_transient_error(&e) => {
                std::thread::sleep(Duration::from_millis(5 * attempt));
            }
            Err(e) => return Err(e),
        }
    }
    // Still in conflict: a worker killed mid-apply leaves its transaction open until the
    // server aborts it (60 s later, by default). Such a process of this host has its
    // sessions ended at once; for one elsewhere, the entries are leased one by one and the
    // ones it holds left for later, as `SKIP LOCKED` does, and only when it holds every one
    // does the claim wait for it.
    if crate::sessions::end_dead(&backend.db)? > 0 {
        keys = due_keys()?;
        if keys.is_empty() {
            return Ok(Vec::new());
        }
    }
    let mut leased = 0;
    for key in &keys {
        match lease_to(std::slice::from_ref(key), Duration::ZERO) {
            Ok(n) => leased += n,
            Err(e) if crate::error::is_transient_error(&e) => {}
            Err(e) => return Err(e),
        }
    }
    if leased == 0 {
        lease_to(&keys, crate::TRANSIENT_RETRY)?;
    }
    read_back(backend, worker, &keys, until)
}

/// The entries among `keys` that `worker` holds with the lease `until`.
fn read_back(
    backend: &MongoBackend,
    worker: &str,
    keys: &[Bson],
    until: f64,
) -> Result<Vec<WorkItem>> {
    let queue = backend.collection("vigil_queue");
    // Those this worker won: others may have taken some between the read and the update.
    let cursor = queue
        .find(doc! { "_id": { "$in": &keys }, "claimed_by": worker, "claimed_until": until })
        .run()
        .map_err(db_err("claiming work"))?;
    let mut items = Vec::new();
    for row in cursor {
        let row = row.map_err(db_err("reading a claim"))?;
        items.push(WorkItem {
            listener: row.get_str("listener").unwrap_or("").to_string(),
            doc_id: from_bson(row.get("doc_id").cloned().unwrap_or(Bson::Null)),
            generation: row.get_i64("gen").unwrap_or(0),
            attempts: row.get_i64("attempts").unwrap_or(0) as u32,
            job: row.get_str("job").ok().map(str::to_string),
        });
    }
    Ok(items)
}

/// Frees the leases of workers of this host that are gone, so their work need not wait for
/// the lease to end.
fn release_dead(backend: &MongoBackend, t: f64) -> Result<u64> {
    let queue = backend.collection("vigil_queue");
    let holders = queue
        .distinct("claimed_by", doc! { "claimed_until": { "$gt": t } })
        .run()
        .map_err(db_err("listing claims"))?;
    let dead: Vec<&str> = holders
        .iter()
        .filter_map(Bson::as_str)
        .filter(|h| claimer_is_dead(h))
        .collect();
    if dead.is_empty() {
        return Ok(0);
    }
    // Their open transactions first (one killed mid-apply holds its entries), so that the
    // entries are free to release.
    crate::sessions::end_dead(&backend.db)?;
    let mut released = 0;
    for holder in dead {
        // Should a transaction of it still hold these entries, the release waits for the
        // server to abort it.
        released += backend
            .transaction("releasing a dead worker's claims", |session| {
                queue
                    .update_many(
                        doc! { "claimed_by": holder, "claimed_until": { "$gt": 0.0 } },
                        doc! { "$set": { "claimed_until": 0.0 } },
                    )
                    .session(session)
                    .run()
                    .map_err(db_err("releasing a dead worker's claims"))
            })?
            .modified_count;
    }
    Ok(released)
}

struct MongoClaim {
    backend: MongoBackend,
    worker: String,
    items: Vec<WorkItem>,
    started: f64,
    completed: bool,
}

impl Drop for MongoClaim {
    fn drop(&mut self) {
        if self.completed {
            return;
        }
        // Best effort: an unreleased lease only delays these items until it ends.
        let keys: Vec<String> = self
            .items
            .iter()
            .map(|i| entry_key(&i.listener, &i.doc_id))
            .collect();
        // In a transaction tried once: a plain write would wait on (and, on SecantusDB, for
        // ever behind) an entry another dead process's transaction holds.
        let queue = self.backend.collection("vigil_queue");
        let _ = self
            .backend
            .transaction_once("releasing a claim", |session| {
                queue
                    .update_many(
                        doc! { "_id": { "$in": &keys }, "claimed_by": &self.worker },
                        doc! { "$set": { "claimed_until": 0.0 } },
                    )
                    .session(session)
                    .run()
                    .map(|_| ())
                    .map_err(db_err("releasing a claim"))
            });
    }
}

impl Claim for MongoClaim {
    fn items(&self) -> &[WorkItem] {
        &self.items
    }

    fn complete(
        mut self: Box<Self>,
        completions: Vec<Completion>,
        model_versions: &dyn Fn(&str) -> Option<u32>,
        retry: &RetryPolicy,
    ) -> Result<Applied> {
        let backend = self.backend.clone();
        let backend = &backend;
        // Changes committed while the batch was computed get their new generation first, so
        // the apply below sees them and leaves those items queued (as triggers do in SQL).
        crate::capture::capture(backend, Duration::ZERO)?;
        let started = self.started;
        let applied = backend.transaction("applying outputs", |session| {
            let listeners = read_listeners(backend, Some(&mut *session))?
                .into_iter()
                .map(|l| (l.name.clone(), l))
                .collect();
            let mut apply = MongoApply {
                backend,
                session,
                listeners,
            };
            apply_batch(&mut apply, &completions, model_versions, retry, started)
        })?;
        self.completed = true;
        Ok(applied)
    }
}

struct MongoApply<'a> {
    backend: &'a MongoBackend,
    session: &'a mut ClientSession,
    listeners: HashMap<String, ListenerRecord>,
}

fn keys(items: &[&WorkItem]) -> Vec<String> {
    items
        .iter()
        .map(|i| entry_key(&i.listener, &i.doc_id))
        .collect()
}

impl MongoApply<'_> {
    fn update_keys(
        &mut self,
        coll: &str,
        items: &[&WorkItem],
        change: bson::Document,
    ) -> Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        self.backend
            .collection(coll)
            .update_many(doc! { "_id": { "$in": keys(items) } }, change)
            .session(&mut *self.session)
            .run()
            .map(|_| ())
            .map_err(db_err("applying outputs"))
    }

    /// Writes (`Some`) or removes (`None`) a listener's output inside its document.
    fn write_into_document(&mut self, item: &WorkItem, value: Option<&Value>) -> Result<()> {
        let Some(listener) = self.listeners.get(&item.listener) else {
            return Ok(());
        };
        let path = output_path(listener);
        let change = match value {
            Some(v) => doc! { "$set": { &path: to_bson(v) } },
            None => doc! { "$unset": { &path: "" } },
        };
        self.backend
            .collection(&listener.collection)
            .update_one(doc! { "_id": id_match(&item.doc_id) }, change)
            .session(&mut *self.session)
            .run()
            .map(|_| ())
            .map_err(db_err(format!(
                "writing an output into `{}`",
                listener.collection
            )))
    }
}

impl QueueTx for MongoApply<'_> {
    fn listener_versions(&mut self) -> Result<HashMap<String, u32>> {
        Ok(self
            .listeners
            .iter()
            .map(|(n, l)| (n.clone(), l.model_version))
            .collect())
    }

    fn entries(&mut self, items: &[&WorkItem]) -> Result<Vec<Option<QueueEntry>>> {
        let mut found: HashMap<String, QueueEntry> = HashMap::new();
        let mut cursor = self
            .backend
            .collection("vigil_queue")
            .find(doc! { "_id": { "$in": keys(items) } })
            .session(&mut *self.session)
            .run()
            .map_err(db_err("checking queue entries"))?;
        while let Some(row) = cursor.next(&mut *self.session) {
            let row = row.map_err(db_err("checking queue entries"))?;
            found.insert(
                row.get_str("_id").unwrap_or("").to_string(),
                QueueEntry {
                    generation: row.get_i64("gen").unwrap_or(0),
                    attempts: row.get_i64("attempts").unwrap_or(0) as u32,
                    job: row.get_str("job").ok().map(str::to_string),
                },
            );
        }
        Ok(keys(items).into_iter().map(|k| found.remove(&k)).collect())
    }

    fn release(&mut self, items: &[&WorkItem]) -> Result<()> {
        self.update_keys(
            "vigil_queue",
            items,
            doc! { "$set": { "claimed_until": 0.0 } },
        )
    }

    fn write_outputs(&mut self, outputs: &[NewOutput<'_>], at: f64) -> Result<()> {
        // One `bulkWrite` command for the whole batch (MongoDB 8): each output's bookkeeping
        // row and its value inside its document.
        let rows_ns = self.backend.collection("vigil_outputs").namespace();
        let mut models: Vec<WriteModel> = Vec::with_capacity(2 * outputs.len());
        for o in outputs {
            let key = entry_key(&o.item.listener, &o.item.doc_id);
            let value = to_bson(o.value);
            let row = doc! {
                "_id": &key,
                "listener": &o.item.listener,
                "doc_id": to_bson(&o.item.doc_id),
                "model_version": i64::from(o.model_version),
                "input_hash": o.input_hash,
                "value": value.clone(),
                "computed_at": at,
            };
            models.push(
                ReplaceOneModel::builder()
                    .namespace(rows_ns.clone())
                    .filter(doc! { "_id": &key })
                    .replacement(row)
                    .upsert(true)
                    .build()
                    .into(),
            );
            if let Some(listener) = self.listeners.get(&o.item.listener) {
                models.push(
                    UpdateOneModel::builder()
                        .namespace(self.backend.collection(&listener.collection).namespace())
                        .filter(doc! { "_id": id_match(&o.item.doc_id) })
                        .update(doc! { "$set": { output_path(listener): value } })
                        .build()
                        .into(),
                );
            }
        }
        if models.is_empty() {
            return Ok(());
        }
        self.backend
            .client
            .bulk_write(models)
            .session(&mut *self.session)
            .run()
            .map(|_| ())
            .map_err(db_err("writing outputs"))
    }

    fn delete(&mut self, rows: Keyed, items: &[&WorkItem]) -> Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        if rows == Keyed::Outputs {
            for item in items {
                self.write_into_document(item, None)?;
            }
        }
        self.backend
            .collection(rows.table())
            .delete_many(doc! { "_id": { "$in": keys(items) } })
            .session(&mut *self.session)
            .run()
            .map(|_| ())
            .map_err(db_err("applying outputs"))
    }

    fn record_failures(&mut self, failures: &[NewFailure<'_>], at: f64) -> Result<()> {
        for f in failures {
            let key = entry_key(&f.item.listener, &f.item.doc_id);
            self.backend
                .collection("vigil_errors")
                .update_one(
                    doc! { "_id": &key },
                    doc! {
                        "$set": {
                            "listener": &f.item.listener,
                            "doc_id": to_bson(&f.item.doc_id),
                            "error": f.error,
                            "attempts": i64::from(f.attempts),
                            "last_failed": at,
                            "parked": f.parked,
                        },
                        "$setOnInsert": { "first_failed": at },
                    },
                )
                .upsert(true)
                .session(&mut *self.session)
                .run()
                .map_err(db_err("recording failures"))?;
        }
        Ok(())
    }

    fn reschedule(&mut self, retries: &[Retry<'_>]) -> Result<()> {
        for r in retries {
            let key = entry_key(&r.item.listener, &r.item.doc_id);
            self.backend
                .collection("vigil_queue")
                .update_one(
                    doc! { "_id": &key },
                    doc! { "$set": {
                        "attempts": i64::from(r.attempts),
                        "not_before": r.due,
                        "claimed_until": 0.0,
                    } },
                )
                .session(&mut *self.session)
                .run()
                .map_err(db_err("rescheduling failures"))?;
        }
        Ok(())
    }

    fn count_job(&mut self, job: &str, done: u64, failed: u64, at: f64) -> Result<()> {
        let jobs = self.backend.collection("vigil_jobs");
        jobs.update_one(
            doc! { "_id": job },
            doc! { "$inc": { "done": done as i64, "failed": failed as i64 } },
        )
        .session(&mut *self.session)
        .run()
        .map_err(db_err("counting job progress"))?;
        let row = jobs
            .find_one(doc! { "_id": job })
            .session(&mut *self.session)
            .run()
            .map_err(db_err("counting job progress"))?;
        let Some(row) = row else { return Ok(()) };
        let get = |f: &str| match row.get(f) {
            Some(Bson::Int64(v)) => *v,
            Some(Bson::Int32(v)) => i64::from(*v),
            _ => 0,
        };
        let (done, failed, total) = (get("done"), get("failed"), get("total"));
        if row.get_str("status").ok() == Some("running") && done + failed >= total {
            let error = if failed > 0 {
                Bson::String(failed_note(failed as u64))
            } else {
                Bson::Null
            };
            jobs.update_one(
                doc! { "_id": job },
                doc! { "$set": { "status": "success", "finished": at, "error": error } },
            )
            .session(&mut *self.session)
            .run()
            .map_err(db_err("finishing a job"))?;
        }
        Ok(())
    }

    fn put_job(&mut self, job: &JobRecord) -> Result<()> {
        crate::jobs::store_job(self.backend, self.session, job)
    }
}
