//! The worker loop: claim queued work, compute outputs outside any transaction, apply them in
//! one. Runs in-process ([`Datalayer::process_pending`]) or as `vigil worker`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use vigil_core::listen::{
    input_hash, Applied, Completion, ListenerRecord, Outcome, RetryPolicy, WorkItem,
};
use vigil_core::{Document, Result, Value, OUTPUTS_FIELD};
use vigil_ml::PipelineModel;

use crate::Datalayer;

/// Called with each database error a running worker rides out.
pub type ErrorHook = Arc<dyn Fn(&vigil_core::Error) + Send + Sync>;

/// How a worker runs. Every setter states its default.
#[derive(Clone)]
pub struct WorkerOptions {
    batch_size: usize,
    lease: Duration,
    retry: RetryPolicy,
    idle_wait: Duration,
    time_limit: Duration,
    on_error: Option<ErrorHook>,
}

impl std::fmt::Debug for WorkerOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerOptions")
            .field("batch_size", &self.batch_size)
            .field("lease", &self.lease)
            .field("retry", &self.retry)
            .field("idle_wait", &self.idle_wait)
            .field("time_limit", &self.time_limit)
            .finish_non_exhaustive()
    }
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            batch_size: 256,
            lease: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            idle_wait: Duration::from_millis(250),
            time_limit: Duration::from_secs(300),
            on_error: None,
        }
    }
}

impl WorkerOptions {
    /// Default options.
    pub fn new() -> Self {
        Self::default()
    }

    /// Queue entries claimed (and computed) at once. Default: 256.
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = n.max(1);
        self
    }

    /// How long a claim keeps other workers off its entries; after it, a crashed worker's
    /// entries are taken again (on SQLite, claims of dead processes on this host are taken back
    /// as soon as nothing else is due; on PostgreSQL, as soon as the dead worker's session ends).
    /// Default: 30 s.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// Attempts before a failing document is parked. Default: 5.
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.retry.max_attempts = n.max(1);
        self
    }

    /// Wait before the first retry of a failed document, doubled each time after (capped at
    /// 5 minutes). Default: 1 s.
    pub fn backoff(mut self, first: Duration) -> Self {
        self.retry.backoff = first;
        self
    }

    /// Longest one batch may run in the model. A batch past it is split in halves, each run
    /// again under the same limit, until the documents that hang stand alone; those are
    /// recorded as failed (retried with backoff, then parked) and every other document gets
    /// its output. A panic inside the model is contained the same way. Default: 300 s.
    pub fn time_limit(mut self, limit: Duration) -> Self {
        self.time_limit = limit;
        self
    }

    /// Longest a waiting worker goes without looking at the queue (retries coming due are
    /// noticed this late at worst; new writes wake it at once). Default: 250 ms.
    pub fn idle_wait(mut self, wait: Duration) -> Self {
        self.idle_wait = wait;
        self
    }

    /// Called with each database error [`Worker::run`] rides out (it retries with backoff,
    /// from 100 ms doubling to 10 s, for as long as the database is unreachable). Default:
    /// none (errors are retried silently).
    pub fn on_error(mut self, hook: ErrorHook) -> Self {
        self.on_error = Some(hook);
        self
    }
}

/// Processes listener work. Models are loaded once per version and kept.
pub struct Worker {
    db: Datalayer,
    options: WorkerOptions,
    id: String,
    models: HashMap<(String, u32), Arc<PipelineModel>>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").field("id", &self.id).finish()
    }
}

impl Datalayer {
    /// A worker over this database.
    pub fn worker(&self, options: WorkerOptions) -> Result<Worker> {
        Worker::new(self.clone(), options)
    }

    /// Runs every listener's due work in this thread until none is due; returns what was
    /// done. After an insert through this Datalayer, the caller's outputs are written when this
    /// returns. Failed documents whose retry is not due yet stay queued.
    pub fn process_pending(&self) -> Result<Applied> {
        self.worker(WorkerOptions::default())?.drain()
    }
}

impl Worker {
    fn new(db: Datalayer, options: WorkerOptions) -> Result<Worker> {
        Ok(Worker {
            db,
            options,
            id: vigil_core::ids::worker_label(),
            models: HashMap::new(),
        })
    }

    /// This worker's claim holder name (`host:pid:nonce`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Claims and processes one batch; None when nothing was due.
    pub fn run_once(&mut self) -> Result<Option<Applied>> {
        let db = self.db.clone();
        let backend = db.store();
        let Some(claim) = backend.claim(&self.id, self.options.batch_size, self.options.lease)?
        else {
            return Ok(None);
        };
        let listeners: HashMap<String, ListenerRecord> = backend
            .listeners()?
            .into_iter()
            .map(|l| (l.name.clone(), l))
            .collect();
        let mut groups: Vec<(String, Vec<WorkItem>)> = Vec::new();
        for item in claim.items() {
            match groups.iter_mut().find(|(name, _)| *name == item.listener) {
                Some((_, items)) => items.push(item.clone()),
                None => groups.push((item.listener.clone(), vec![item.clone()])),
            }
        }
        let mut completions = Vec::with_capacity(claim.items().len());
        let mut versions: HashMap<String, u32> = HashMap::new();
        for (name, items) in groups {
            let Some(listener) = listeners.get(&name) else {
                continue; // removed since the claim; its entries went with it
            };
            versions.insert(name.clone(), listener.model_version);
            let outcomes = match self.outcomes(listener, &listeners, &items) {
                Ok(outcomes) => outcomes,
                // Reading the documents or loading the model failed: every item of the group
                // is retried with backoff, and the reason is on record.
                Err(e) => items
                    .iter()
                    .map(|_| Outcome::Failed(e.to_string()))
                    .collect(),
            };
            completions.extend(
                items
                    .into_iter()
                    .zip(outcomes)
                    .map(|(item, outcome)| Completion { item, outcome }),
            );
        }
        let applied = claim.complete(
            completions,
            &|name: &str| versions.get(name).copied(),
            &self.options.retry,
        )?;
        Ok(Some(applied))
    }

    /// Processes batches until nothing is due.
    pub fn drain(&mut self) -> Result<Applied> {
        self.drain_with(&mut |_| {})
    }

    /// [`Worker::drain`], calling `progress` with the running total after every batch (for a
    /// backfill's progress bar: compare `finished()` with the job's `total`).
    pub fn drain_with(&mut self, progress: &mut dyn FnMut(&Applied)) -> Result<Applied> {
        let mut total = Applied::default();
        while let Some(applied) = self.run_once()? {
            total.add(applied);
            progress(&total);
        }
        Ok(total)
    }

    /// Processes work as it comes until `stop` is set, sleeping on the database's change
    /// signal when idle. Database errors (a server restarting, a network cut) are retried
    /// with backoff; nothing is lost meanwhile, since unapplied work stays queued. Other
    /// errors end the run.
    pub fn run(&mut self, stop: &AtomicBool) -> Result<Applied> {
        let mut total = Applied::default();
        let mut backoff = Duration::from_millis(100);
        while !stop.load(Ordering::Relaxed) {
            let step = self.run_once().and_then(|applied| match applied {
                Some(applied) => {
                    total.add(applied);
                    Ok(())
                }
                None => self.db.store().wait_for_work(self.options.idle_wait),
            });
            match step {
                Ok(()) => backoff = Duration::from_millis(100),
                Err(e @ vigil_core::Error::Backend { .. }) => {
                    if let Some(hook) = &self.options.on_error {
                        hook(&e);
                    }
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(total)
    }

    fn model(&mut self, name: &str, version: u32) -> Result<Arc<PipelineModel>> {
        let key = (name.to_string(), version);
        if let Some(m) = self.models.get(&key) {
            return Ok(Arc::clone(m));
        }
        let model = Arc::new(self.db.load_model(name, Some(version))?);
        self.models.insert(key, Arc::clone(&model));
        Ok(model)
    }

    /// What becomes of each item of one listener's group.
    fn outcomes(
        &mut self,
        listener: &ListenerRecord,
        listeners: &HashMap<String, ListenerRecord>,
        items: &[WorkItem],
    ) -> Result<Vec<Outcome>> {
        let ids: Vec<Value> = items.iter().map(|i| i.doc_id.clone()).collect();
        let id_json: Vec<serde_json::Value> = ids.iter().map(Value::to_json).collect();
        let filter = json!({"$and": [{"_id": {"$in": id_json}}, listener.select.clone()]});
        let mut docs: HashMap<String, Document> = HashMap::new();
        let mut read_error = None;
        // Only the field the key lives in is read and decoded (for a chain: the outputs).
        let top = listener.key.split('.').next().unwrap_or(&listener.key);
        for doc in self
            .db
            .collection(&listener.collection)?
            .find(filter)
            .projection(json!({ top: 1 }))
            .run()?
        {
            match doc {
                Ok(d) => {
                    let key = d.id().map(|v| v.to_json().to_string()).unwrap_or_default();
                    docs.insert(key, d);
                }
                Err(e) => read_error = Some(e.to_string()),
            }
        }
        let states: HashMap<String, (u32, String)> = self
            .db
            .store()
            .output_states(&listener.name, &ids)?
            .into_iter()
            .map(|s| {
                (
                    s.doc_id.to_json().to_string(),
                    (s.model_version, s.input_hash),
                )
            })
            .collect();
        let upstream = listener.upstream.as_ref().and_then(|u| listeners.get(u));
        let mut outcomes: Vec<Option<Outcome>> = vec![None; items.len()];
        // Documents to compute: their place in `items` with their input's hash, and the inputs.
        let mut slots: Vec<(usize, String)> = Vec::new();
        let mut inputs: Vec<Value> = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            let key = id.to_json().to_string();
            let Some(doc) = docs.get(&key) else {
                // Gone or no longer selected; unless the read failed, in which case the row
                // may be the one that failed to decode.
                outcomes[i] = Some(match &read_error {
                    Some(e) => Outcome::Failed(e.clone()),
                    None => Outcome::Remove,
                });
                continue;
            };
            let value = match upstream {
                Some(up) => doc
                    .get(OUTPUTS_FIELD)
                    .and_then(Value::as_document)
                    .and_then(|o| o.get(&up.key))
                    .and_then(Value::as_document)
                    .and_then(|m| m.get(&up.model)),
                None => doc.get_path(&listener.key),
            };
            let Some(value) = value else {
                outcomes[i] = Some(match upstream {
                    // The upstream output is not there yet; its arrival queues this again.
                    Some(_) => Outcome::Remove,
                    None => Outcome::Failed(format!("field `{}` is missing", listener.key)),
                });
                continue;
            };
            let hash = input_hash(value);
            if states.get(&key) == Some(&(listener.model_version, hash.clone())) {
                outcomes[i] = Some(Outcome::Unchanged);
                continue;
            }
            slots.push((i, hash));
            inputs.push(value.clone());
        }
        if !inputs.is_empty() {
            let model = self.model(&listener.model, listener.model_version)?;
            let results = crate::guard::predict_guarded(&model, &inputs, self.options.time_limit);
            for ((i, hash), result) in slots.into_iter().zip(results) {
                outcomes[i] = Some(match result {
                    Ok(value) => Outcome::Output {
                        value,
                        input_hash: hash,
                    },
                    Err(e) => Outcome::Failed(e.to_string()),
                });
            }
        }
        Ok(outcomes
            .into_iter()
            .map(|o| o.unwrap_or(Outcome::Failed("not processed".into())))
            .collect())
    }
}
