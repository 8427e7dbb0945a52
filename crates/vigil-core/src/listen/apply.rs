//! What becomes of a claimed batch, decided once for every backend. A backend opens one
//! transaction, hands it to [`apply_batch`] as a [`QueueTx`] (its statements), and commits.
//! The decisions live here: which items are stale (their document changed, or their listener
//! moved to another model version, since the claim), which outputs are written or removed,
//! which failures are retried with backoff and which are parked, and how jobs progress.
//!
//! The primitives take whole slices, so a backend may run each as one statement (multi-row
//! upserts, `unnest` arrays, bulk writes) or loop over prepared ones.

use std::collections::HashMap;

use super::{now, Applied, Completion, JobRecord, JobStatus, Outcome, RetryPolicy, WorkItem};
use crate::{Result, Value};

/// A queue entry as it stands inside the applying transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueEntry {
    /// Bumped by every change to the document since it was queued.
    pub generation: i64,
    /// Failed attempts so far.
    pub attempts: u32,
    /// The backfill job it belongs to, if any.
    pub job: Option<String>,
}

/// An output to upsert, keyed by (listener, document).
#[derive(Debug)]
pub struct NewOutput<'a> {
    /// The item it completes.
    pub item: &'a WorkItem,
    /// The model version that computed it.
    pub model_version: u32,
    /// The output.
    pub value: &'a Value,
    /// The hash of the input it was computed from.
    pub input_hash: &'a str,
}

/// A failure to record (insert, or update keeping `first_failed`).
#[derive(Debug)]
pub struct NewFailure<'a> {
    /// The item that failed.
    pub item: &'a WorkItem,
    /// Why.
    pub error: &'a str,
    /// Failed attempts, this one included.
    pub attempts: u32,
    /// True once it is no longer retried.
    pub parked: bool,
}

/// A failed item kept queued, due again at `due`, its claim released.
#[derive(Debug)]
pub struct Retry<'a> {
    /// The item.
    pub item: &'a WorkItem,
    /// Failed attempts so far.
    pub attempts: u32,
    /// When it may be claimed again, seconds since the Unix epoch.
    pub due: f64,
}

/// The statements a backend runs, inside one transaction, to apply a batch. Items name their
/// listener by name; the backend maps names to its own keys.
pub trait QueueTx {
    /// Each installed listener's current model version, by name.
    fn listener_versions(&mut self) -> Result<HashMap<String, u32>>;

    /// The queue entries of `items` as they are now (locked against other appliers where the
    /// database can lock rows), `None` where an entry is gone; in the order of `items`.
    fn entries(&mut self, items: &[&WorkItem]) -> Result<Vec<Option<QueueEntry>>>;

    /// Releases the claim on entries that stay queued (they are computed again).
    fn release(&mut self, items: &[&WorkItem]) -> Result<()>;

    /// Upserts outputs, keyed by (listener, document), stamped `at`.
    fn write_outputs(&mut self, outputs: &[NewOutput<'_>], at: f64) -> Result<()>;

    /// Deletes the items' rows of one of the keyed tables: their outputs, their recorded
    /// failures (the item succeeded, or no longer needs an output), or their queue entries
    /// (they are finished).
    fn delete(&mut self, rows: Keyed, items: &[&WorkItem]) -> Result<()>;

    /// Records failures at `at`, keeping each one's first failure time.
    fn record_failures(&mut self, failures: &[NewFailure<'_>], at: f64) -> Result<()>;

    /// Keeps failed entries queued until their retry is due.
    fn reschedule(&mut self, retries: &[Retry<'_>]) -> Result<()>;

    /// Adds progress to a backfill job and marks it successful (noting failed documents)
    /// once `done + failed` reaches its total.
    fn count_job(&mut self, job: &str, done: u64, failed: u64, at: f64) -> Result<()>;

    /// Stores a job record, replacing one with the same id.
    fn put_job(&mut self, job: &JobRecord) -> Result<()>;
}

/// The tables keyed by (listener, document) that applying a batch deletes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keyed {
    /// Outputs (`vigil_outputs`).
    Outputs,
    /// Recorded failures (`vigil_errors`).
    Failures,
    /// Queue entries (`vigil_queue`).
    Queue,
}

impl Keyed {
    /// The table's name in the SQL backends (the MongoDB backend's collections share it).
    pub fn table(self) -> &'static str {
        match self {
            Keyed::Outputs => "vigil_outputs",
            Keyed::Failures => "vigil_errors",
            Keyed::Queue => "vigil_queue",
        }
    }
}

/// Per-job counts gathered while applying a batch.
#[derive(Debug, Default)]
struct JobCounts {
    done: u64,
    failed: u64,
}

/// The plan for one batch, built before any statement runs.
#[derive(Default)]
struct Plan<'a> {
    release: Vec<&'a WorkItem>,
    outputs: Vec<NewOutput<'a>>,
    removals: Vec<&'a WorkItem>,
    cleared: Vec<&'a WorkItem>,
    failures: Vec<NewFailure<'a>>,
    dequeued: Vec<&'a WorkItem>,
    retries: Vec<Retry<'a>>,
    jobs: HashMap<String, JobCounts>,
    incremental: HashMap<String, JobCounts>,
    applied: Applied,
}

impl<'a> Plan<'a> {
    /// Decides one item whose entry is current.
    fn decide(
        &mut self,
        item: &'a WorkItem,
        outcome: &'a Outcome,
        entry: QueueEntry,
        version: u32,
        retry: &RetryPolicy,
        t: f64,
    ) {
        let finished_ok = match outcome {
            Outcome::Output { value, input_hash } => {
                self.outputs.push(NewOutput {
                    item,
                    model_version: version,
                    value,
                    input_hash,
                });
                self.applied.written += 1;
                true
            }
            Outcome::Remove => {
                self.removals.push(item);
                self.applied.removed += 1;
                true
            }
            Outcome::Unchanged => {
                self.applied.unchanged += 1;
                true
            }
            Outcome::Failed(error) => {
                let attempts = entry.attempts + 1;
                let parked = attempts >= retry.max_attempts;
                self.failures.push(NewFailure {
                    item,
                    error,
                    attempts,
                    parked,
                });
                if !parked {
                    self.retries.push(Retry {
                        item,
                        attempts,
                        due: t + retry.delay(attempts).as_secs_f64(),
                    });
                    self.applied.retrying += 1;
                    return; // still queued: no job progress
                }
                self.applied.parked += 1;
                false
            }
        };
        if finished_ok {
            self.cleared.push(item);
        }
        self.dequeued.push(item);
        let counts = match entry.job {
            Some(job) => self.jobs.entry(job).or_default(),
            None => self.incremental.entry(item.listener.clone()).or_default(),
        };
        if finished_ok {
            counts.done += 1;
        } else {
            counts.failed += 1;
        }
    }
}

/// Applies a claimed batch through `tx`: outputs written or removed, failures recorded and
/// retried with backoff or parked, finished items dequeued, backfill jobs counted and one
/// `predict` job recorded per listener for incremental work (started at `started`). An item
/// whose queue entry changed since the claim, or whose listener now runs another model
/// version than `model_versions` says it was computed with, is left queued and counted stale.
pub fn apply_batch(
    tx: &mut dyn QueueTx,
    completions: &[Completion],
    model_versions: &dyn Fn(&str) -> Option<u32>,
    retry: &RetryPolicy,
    started: f64,
) -> Result<Applied> {
    let t = now();
    let current = tx.listener_versions()?;
    let live: Vec<&Completion> = completions
        .iter()
        .filter(|c| current.contains_key(&c.item.listener))
        .collect();
    let mut plan = Plan::default();
    // Items of a listener removed meanwhile went with it.
    plan.applied.stale += (completions.len() - live.len()) as u64;
    let items: Vec<&WorkItem> = live.iter().map(|c| &c.item).collect();
    let entries = tx.entries(&items)?;
    for (c, entry) in live.into_iter().zip(entries) {
        let Some(entry) = entry else {
            plan.applied.stale += 1; // another worker finished it
            continue;
        };
        let version = current[&c.item.listener];
        if entry.generation != c.item.generation
            || model_versions(&c.item.listener) != Some(version)
        {
            plan.applied.stale += 1;
            plan.release.push(&c.item);
            continue;
        }
        plan.decide(&c.item, &c.outcome, entry, version, retry, t);
    }
    run(tx, plan, started, t)
}

/// Runs a plan's statements, in an order that never depends on the database's.
fn run(tx: &mut dyn QueueTx, plan: Plan<'_>, started: f64, t: f64) -> Result<Applied> {
    if !plan.release.is_empty() {
        tx.release(&plan.release)?;
    }
    if !plan.outputs.is_empty() {
        tx.write_outputs(&plan.outputs, t)?;
    }
    if !plan.removals.is_empty() {
        tx.delete(Keyed::Outputs, &plan.removals)?;
    }
    if !plan.cleared.is_empty() {
        tx.delete(Keyed::Failures, &plan.cleared)?;
    }
    if !plan.failures.is_empty() {
        tx.record_failures(&plan.failures, t)?;
    }
    if !plan.dequeued.is_empty() {
        tx.delete(Keyed::Queue, &plan.dequeued)?;
    }
    if !plan.retries.is_empty() {
        tx.reschedule(&plan.retries)?;
    }
    let mut jobs: Vec<_> = plan.jobs.into_iter().collect();
    jobs.sort_by(|a, b| a.0.cmp(&b.0)); // a fixed lock order between concurrent appliers
    for (job, counts) in jobs {
        tx.count_job(&job, counts.done, counts.failed, t)?;
    }
    for (listener, counts) in plan.incremental {
        let mut job = JobRecord::start("predict", &listener, counts.done + counts.failed);
        job.status = JobStatus::Success;
        job.done = counts.done;
        job.failed = counts.failed;
        job.started = started;
        job.finished = Some(t);
        if counts.failed > 0 {
            job.error = Some(failed_note(counts.failed));
        }
        tx.put_job(&job)?;
    }
    Ok(plan.applied)
}

/// The note a job carries when some of its documents failed for good.
pub fn failed_note(failed: u64) -> String {
    format!("{failed} documents failed; see vigil errors")
}
