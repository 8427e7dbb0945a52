//! The one trait every database implements. The Datalayer (in the `vigil` crate) assigns ids and
//! folds and validates documents; a backend stores, finds and changes them, running filters
//! inside the database.

use std::time::Duration;

use crate::listen::{Claim, FailureRecord, JobRecord, ListenerRecord};
use crate::names::FieldPath;
use crate::{Document, Filter, FindQuery, Result, Update, Value};

/// Documents streamed out of a backend, batch by batch; never the whole result at once.
pub type DocumentStream = Box<dyn Iterator<Item = Result<Document>> + Send>;

/// Documents handed to [`Backend::insert`], pulled one at a time (possibly on another thread);
/// an `Err` item ends the insert and rolls it back.
pub type DocumentSource<'a> = Box<dyn Iterator<Item = Result<Document>> + Send + 'a>;

/// A [`DocumentSource`] over documents already in hand.
pub fn source(docs: Vec<Document>) -> DocumentSource<'static> {
    Box::new(docs.into_iter().map(Ok))
}

/// How many documents an update or replace matched and changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpdateOutcome {
    /// Documents the filter matched (at most 1 for `_one` calls).
    pub matched: u64,
    /// Documents whose stored content changed.
    pub modified: u64,
}

/// What a database must do for vigil. Every method is one transaction: it takes effect whole
/// or not at all. A collection that does not exist reads as empty.
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// Short name, e.g. `sqlite`.
    fn name(&self) -> &'static str;

    /// Names of the collections, sorted.
    fn list_collections(&self) -> Result<Vec<String>>;

    /// Drops a collection with its documents and indexes; false if it did not exist.
    fn drop_collection(&self, collection: &str) -> Result<bool>;

    /// Stores documents that already carry `_id` (and were checked), creating the collection
    /// on first use. All or nothing: a duplicate `_id`, or an `Err` from the source, stores
    /// none of them. A backend may pull the source on another thread, so that preparing and
    /// encoding documents overlaps with the database's own work.
    fn insert(&self, collection: &str, docs: DocumentSource<'_>) -> Result<()>;

    /// Streams the documents a query selects.
    fn find(&self, collection: &str, query: &FindQuery) -> Result<DocumentStream>;

    /// Counts the documents a filter selects.
    fn count(&self, collection: &str, filter: &Filter) -> Result<u64>;

    /// Applies an update to the first (`many == false`) or every matching document.
    fn update(
        &self,
        collection: &str,
        filter: &Filter,
        update: &Update,
        many: bool,
    ) -> Result<UpdateOutcome>;

    /// Replaces the first matching document, keeping its `_id`.
    fn replace_one(
        &self,
        collection: &str,
        filter: &Filter,
        replacement: &Document,
    ) -> Result<UpdateOutcome>;

    /// Deletes the first (`many == false`) or every matching document; returns how many.
    fn delete(&self, collection: &str, filter: &Filter, many: bool) -> Result<u64>;

    /// Creates an index on a field path, so filters and sorts on it need no full scan.
    /// Creating an index that exists is not an error.
    fn create_index(&self, collection: &str, path: &FieldPath) -> Result<()>;

    /// The field paths indexed in a collection (`_id` always is, and is not listed).
    fn list_indexes(&self, collection: &str) -> Result<Vec<FieldPath>>;

    /// Stores a blob under its content hash ([`content_hash`]) and returns the hash; storing
    /// the same bytes again stores nothing new.
    fn put_artifact(&self, bytes: &[u8]) -> Result<String>;

    /// The blob stored under `hash`: [`crate::Error::NotFound`] if absent,
    /// [`crate::Error::Corrupt`] if its bytes no longer match the hash.
    fn get_artifact(&self, hash: &str) -> Result<Vec<u8>>;

    /// Stores a component record as the next version of `(kind, identifier)`; returns it
    /// (1 for the first).
    fn put_component(
        &self,
        kind: &str,
        identifier: &str,
        record: &serde_json::Value,
    ) -> Result<u32>;

    /// A component's record: the given version, or the latest.
    fn get_component(
        &self,
        kind: &str,
        identifier: &str,
        version: Option<u32>,
    ) -> Result<Option<(u32, serde_json::Value)>>;

    /// The identifiers of a kind with their versions, sorted.
    fn list_components(&self, kind: &str) -> Result<Vec<(String, Vec<u32>)>>;

    /// Removes one version, or every version; returns how many were removed.
    fn remove_component(&self, kind: &str, identifier: &str, version: Option<u32>) -> Result<u64>;

    // --- Listeners: change capture, work queue, outputs -------------------------------------

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

    /// Claims up to `limit` queued items that are due, for `worker`, for at most `lease`
    /// (after which another worker may take them). None when nothing is due.
    fn claim(&self, worker: &str, limit: usize, lease: Duration) -> Result<Option<Box<dyn Claim>>>;

    /// Blocks until the queue may have changed (another connection committed) or `timeout`
    /// passed; never busy-polls the queue table itself.
    fn wait_for_work(&self, timeout: Duration) -> Result<()>;

    /// Queued items: for one listener, or all.
    fn pending(&self, listener: Option<&str>) -> Result<u64>;

    /// The model version and input hash of stored outputs of `listener`, for those of `ids`
    /// that have one.
    fn output_states(&self, listener: &str, ids: &[Value]) -> Result<Vec<(Value, u32, String)>>;

    /// Outputs of a listener: how many per model version.
    fn output_versions(&self, listener: &str) -> Result<Vec<(u32, u64)>>;

    /// The holders of live claims (`host:pid:…` strings chosen by workers).
    fn claim_holders(&self) -> Result<Vec<String>>;

    /// Gives back the claims of a holder known to be dead; returns how many.
    fn release_claims(&self, holder: &str) -> Result<u64>;

    /// Documents listeners failed on, most recent first.
    fn failures(&self, listener: Option<&str>) -> Result<Vec<FailureRecord>>;

    // --- Jobs ----------------------------------------------------------------------------

    /// Stores a job record, replacing one with the same id.
    fn put_job(&self, job: &JobRecord) -> Result<()>;

    /// One job.
    fn get_job(&self, id: &str) -> Result<Option<JobRecord>>;

    /// The most recent jobs first, at most `limit`.
    fn jobs(&self, limit: usize) -> Result<Vec<JobRecord>>;
}

/// The hash artifacts are stored under: SHA-256, lower-case hex.
pub fn content_hash(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
