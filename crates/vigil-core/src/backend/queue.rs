//! Listeners as the database keeps them: change capture, the work queue, outputs, failures.

use std::time::Duration;

use crate::listen::{Claim, FailureRecord, JobRecord, ListenerRecord};
use crate::{Result, Value};

/// The model version and input hash of one stored output.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputState {
    /// The document's `_id`.
    pub doc_id: Value,
    /// The model version that computed it.
    pub model_version: u32,
    /// [`crate::listen::input_hash`] of the input it was computed from.
    pub input_hash: String,
}

/// How many outputs of a listener one model version computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct OutputCount {
    /// The model version.
    pub model_version: u32,
    /// Outputs it computed that are stored now.
    pub count: u64,
}

impl OutputCount {
    /// `count` outputs of `model_version`.
    pub fn new(model_version: u32, count: u64) -> Self {
        OutputCount {
            model_version,
            count,
        }
    }
}

/// Change capture and the work queue behind listeners. Claims are tied to the claiming
/// worker: by its database session where the database has them, else by a lease; the
/// decisions about a claimed batch are made once, in [`crate::listen::apply_batch`].
pub trait Queue {
    /// Installs a listener (or moves an existing one to `listener.model_version`): from the
    /// commit on, every insert, update and delete of its collection, by any client, queues
    /// work for it inside the database. With `backfill`, every document its select matches
    /// is queued too, tagged with that job (whose `total` is set to their number), in the
    /// same transaction. Returns how many documents were queued.
    fn install_listener(
        &self,
        listener: &ListenerRecord,
        backfill: Option<&JobRecord>,
    ) -> Result<u64>;

    /// The installed listeners, in installation order.
    fn listeners(&self) -> Result<Vec<ListenerRecord>>;

    /// Removes a listener with its queue, outputs and errors; false if it did not exist.
    fn remove_listener(&self, name: &str) -> Result<bool>;

    /// Claims up to `limit` queued items that are due, for `worker` (a `host:pid:nonce`
    /// label), for at most `lease` (after which another worker may take them; a backend may
    /// free them sooner when it can tell the worker died). None when nothing is due.
    fn claim(&self, worker: &str, limit: usize, lease: Duration) -> Result<Option<Box<dyn Claim>>>;

    /// Blocks until the queue may have changed (another connection committed) or `timeout`
    /// passed; never busy-polls the queue table itself.
    fn wait_for_work(&self, timeout: Duration) -> Result<()>;

    /// Queued items: for one listener, or all.
    fn pending(&self, listener: Option<&str>) -> Result<u64>;

    /// The stored outputs of `listener` for those of `ids` that have one.
    fn output_states(&self, listener: &str, ids: &[Value]) -> Result<Vec<OutputState>>;

    /// Outputs of a listener: how many per model version, ascending by version.
    fn output_versions(&self, listener: &str) -> Result<Vec<OutputCount>>;

    /// Documents listeners failed on, most recent first.
    fn failures(&self, listener: Option<&str>) -> Result<Vec<FailureRecord>>;

    /// Queues again, as fresh work (attempts reset), every document `listener` parked after
    /// failing; their error records stay, no longer parked, until the retry succeeds or fails
    /// again. Returns how many were queued (0 for an unknown listener).
    fn retry_parked(&self, listener: &str) -> Result<u64>;
}
