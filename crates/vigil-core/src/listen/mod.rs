//! What the listener runtime and a backend exchange: listeners as the database knows them,
//! claimed work, its outcomes, failures and job records. The engine (in `vigil`) decides what
//! to compute; a backend stores the queue, outputs, errors and jobs and applies outcomes
//! atomically.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::{FieldPath, Result, Value};

mod apply;

pub use apply::{
    apply_batch, failed_note, Keyed, NewFailure, NewOutput, QueueEntry, QueueTx, Retry,
};

/// The top-level field under which find results carry listener outputs:
/// `_outputs.<key>.<model>`.
pub const OUTPUTS_FIELD: &str = "_outputs";

/// A listener as stored by the backend: keeps `_outputs.<key>.<model>` current for every
/// document of `collection` that `select` matches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListenerRecord {
    /// `<collection>/<key>/<model>`.
    pub name: String,
    /// The collection it watches.
    pub collection: String,
    /// The field it reads, e.g. `img`, or another listener's output `_outputs.img.lenet5`.
    pub key: String,
    /// The model's identifier.
    pub model: String,
    /// The model version whose outputs are current.
    pub model_version: u32,
    /// The Mongo-style filter selecting the documents it keeps outputs for.
    pub select: serde_json::Value,
    /// The listener whose outputs it reads, for chains.
    pub upstream: Option<String>,
}

impl ListenerRecord {
    /// The listener name of a (collection, key, model) triple.
    pub fn name_of(collection: &str, key: &str, model: &str) -> String {
        format!("{collection}/{key}/{model}")
    }

    /// The key as a path.
    pub fn key_path(&self) -> Result<FieldPath> {
        FieldPath::parse(&self.key)
    }

    /// Whether it reads another listener's outputs (a chain) rather than a document field.
    pub fn is_chain(&self) -> bool {
        self.key.split('.').next() == Some(OUTPUTS_FIELD)
    }

    /// The document paths an update must change to concern this listener: its key (unless a
    /// chain) and the fields its select reads, `_id` and outputs aside; sorted, no repeats.
    pub fn watched_paths(&self) -> Result<Vec<FieldPath>> {
        let select = crate::Filter::parse(&self.select)?;
        let mut watched: Vec<FieldPath> = Vec::new();
        if !self.is_chain() {
            watched.push(self.key_path()?);
        }
        for p in select.paths() {
            if p.segments()[0] != OUTPUTS_FIELD && !p.is_id() {
                watched.push(p.clone());
            }
        }
        watched.sort_by(|a, b| a.segments().cmp(b.segments()));
        watched.dedup_by(|a, b| a.segments() == b.segments());
        Ok(watched)
    }

    /// The record as stored in a backend's listener table.
    pub fn to_stored(&self) -> Result<String> {
        serde_json::to_string(self).map_err(|e| crate::Error::InvalidDocument {
            location: Default::default(),
            reason: e.to_string(),
        })
    }

    /// A record read back from a backend's listener table.
    pub fn from_stored(json: &str) -> Result<ListenerRecord> {
        serde_json::from_str(json).map_err(|e| crate::Error::Corrupt {
            collection: "vigil_listeners".into(),
            reason: e.to_string(),
        })
    }

    /// The segments under `_outputs` where this listener's outputs appear: the key's segments
    /// then the model's identifier.
    pub fn output_segments(&self) -> Vec<String> {
        let mut s: Vec<String> = self.key.split('.').map(str::to_string).collect();
        s.push(self.model.clone());
        s
    }
}

/// One unit of claimed work: make the output of `listener` for document `doc_id` current.
/// The queue holds one entry per (listener, document); every change to the document bumps
/// `generation`, so an outcome computed from an older generation is not applied.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkItem {
    /// The listener's name.
    pub listener: String,
    /// The document's `_id`.
    pub doc_id: Value,
    /// The entry's generation when claimed.
    pub generation: i64,
    /// Failed attempts so far.
    pub attempts: u32,
    /// The backfill job this entry belongs to, if any.
    pub job: Option<String>,
}

/// What became of a work item.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The model's output, with the hash of the input it was computed from.
    Output {
        /// The output value.
        value: Value,
        /// [`input_hash`] of the input.
        input_hash: String,
    },
    /// The document is gone or no longer selected: its output is removed.
    Remove,
    /// The stored output is already of this input and model version.
    Unchanged,
    /// The document could not be processed; retried with backoff, then parked.
    Failed(String),
}

/// An item with its outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// The claimed item.
    pub item: WorkItem,
    /// What became of it.
    pub outcome: Outcome,
}

/// How failures are retried.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts before a document is parked (kept in the errors table, no longer retried
    /// until it changes).
    pub max_attempts: u32,
    /// Wait before the first retry; doubled after each further failure.
    pub backoff: Duration,
    /// Longest wait between retries.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// The wait after the `attempts`-th failure.
    pub fn delay(&self, attempts: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempts.saturating_sub(1).min(30));
        self.backoff.saturating_mul(factor).min(self.max_backoff)
    }
}

/// What applying a batch of completions did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    /// Outputs written.
    pub written: u64,
    /// Outputs removed.
    pub removed: u64,
    /// Items whose output was already current.
    pub unchanged: u64,
    /// Failures that will be retried.
    pub retrying: u64,
    /// Failures parked for good.
    pub parked: u64,
    /// Items not applied because the document changed (or the listener moved to another
    /// model version) since they were claimed; they stay queued and are computed again.
    pub stale: u64,
}

impl Applied {
    /// Sums two summaries.
    pub fn add(&mut self, other: Applied) {
        self.written += other.written;
        self.removed += other.removed;
        self.unchanged += other.unchanged;
        self.retrying += other.retrying;
        self.parked += other.parked;
        self.stale += other.stale;
    }

    /// Items taken off the queue.
    pub fn finished(&self) -> u64 {
        self.written + self.removed + self.unchanged + self.parked
    }
}

/// A document a listener failed on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailureRecord {
    /// The listener.
    pub listener: String,
    /// The document's `_id`.
    pub doc_id: serde_json::Value,
    /// The last error.
    pub error: String,
    /// Failed attempts.
    pub attempts: u32,
    /// First failure, seconds since the Unix epoch.
    pub first_failed: f64,
    /// Last failure, seconds since the Unix epoch.
    pub last_failed: f64,
    /// True once no longer retried.
    pub parked: bool,
}

/// Status of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    /// Recorded, not started.
    Pending,
    /// In progress.
    Running,
    /// Done (failed documents, if any, are in the errors table).
    Success,
    /// Stopped by an error.
    Failed,
}

impl JobStatus {
    /// Its name as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::Running => "running",
            JobStatus::Success => "success",
            JobStatus::Failed => "failed",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<JobStatus> {
        Some(match s {
            "pending" => JobStatus::Pending,
            "running" => JobStatus::Running,
            "success" => JobStatus::Success,
            "failed" => JobStatus::Failed,
            _ => return None,
        })
    }
}

/// A unit of work with its progress: a backfill, a fit, an incremental batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// Unique id.
    pub id: String,
    /// `backfill`, `fit` or `predict`.
    pub kind: String,
    /// What it works on (a listener or model name).
    pub target: String,
    /// Where it is.
    pub status: JobStatus,
    /// Items done.
    pub done: u64,
    /// Items that failed for good.
    pub failed: u64,
    /// Items in all (0 when unknown).
    pub total: u64,
    /// Start, seconds since the Unix epoch.
    pub started: f64,
    /// End, seconds since the Unix epoch.
    pub finished: Option<f64>,
    /// Why it failed, or a note on failed items.
    pub error: Option<String>,
}

impl JobRecord {
    /// A job that starts now.
    pub fn start(kind: &str, target: &str, total: u64) -> JobRecord {
        JobRecord {
            id: crate::ids::new_object_id(),
            kind: kind.into(),
            target: target.into(),
            status: JobStatus::Running,
            done: 0,
            failed: 0,
            total,
            started: now(),
            finished: None,
            error: None,
        }
    }
}

/// Seconds since the Unix epoch: the clock of queues, errors and jobs.
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// A hash of a listener's input value: an output computed from the same input by the same
/// model version need not be computed again.
pub fn input_hash(value: &Value) -> String {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    hash_value(value, &mut h);
    h.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn hash_value(value: &Value, h: &mut sha2::Sha256) {
    use sha2::Digest as _;
    match value {
        Value::Encoded(e) => {
            h.update(b"E");
            h.update(e.codec().as_bytes());
            h.update((e.bytes().len() as u64).to_le_bytes());
            h.update(e.bytes());
        }
        Value::Bytes(b) => {
            h.update(b"B");
            h.update((b.len() as u64).to_le_bytes());
            h.update(b);
        }
        other => {
            h.update(b"J");
            h.update(other.to_json().to_string().as_bytes());
        }
    }
}

/// A claimed batch of work. Dropping it without [`Claim::complete`] gives its items back to
/// the queue (at once, or when the claim's lease ends).
pub trait Claim: Send {
    /// The claimed items.
    fn items(&self) -> &[WorkItem];

    /// Applies outcomes in one transaction: outputs written or removed, errors recorded,
    /// finished items dequeued, job progress counted. An item whose queue entry changed
    /// since the claim, or whose listener now runs another model version than
    /// `model_versions` gives for it, is left queued (counted as stale).
    fn complete(
        self: Box<Self>,
        completions: Vec<Completion>,
        model_versions: &dyn Fn(&str) -> Option<u32>,
        retry: &RetryPolicy,
    ) -> Result<Applied>;
}

/// Formats seconds since the Unix epoch as `YYYY-MM-DDTHH:MM:SSZ` (UTC).
pub fn format_time(epoch: f64) -> String {
    let secs = epoch.floor() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_times_in_utc() {
        assert_eq!(format_time(0.0), "1970-01-01T00:00:00Z");
        assert_eq!(format_time(951_782_400.5), "2000-02-29T00:00:00Z");
        assert_eq!(format_time(1_795_876_245.0), "2026-11-28T14:30:45Z");
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let p = RetryPolicy {
            max_attempts: 9,
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(500),
        };
        assert_eq!(p.delay(1), Duration::from_millis(100));
        assert_eq!(p.delay(2), Duration::from_millis(200));
        assert_eq!(p.delay(3), Duration::from_millis(400));
        assert_eq!(p.delay(4), Duration::from_millis(500));
        assert_eq!(p.delay(40), Duration::from_millis(500));
    }

    #[test]
    fn input_hashes_tell_values_apart() {
        let png = Value::Encoded(crate::Encoded::new("image/png", vec![1, 2, 3]));
        let other = Value::Encoded(crate::Encoded::new("image/png", vec![1, 2, 4]));
        assert_eq!(input_hash(&png), input_hash(&png.clone()));
        assert_ne!(input_hash(&png), input_hash(&other));
        assert_ne!(
            input_hash(&Value::Int(1)),
            input_hash(&Value::String("1".into()))
        );
    }
}
