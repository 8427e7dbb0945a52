//! Collections and their documents.

use crate::names::FieldPath;
use crate::{Document, Filter, FindQuery, Result, Update};

/// Documents streamed out of a backend, batch by batch; never the whole result at once.
pub type DocumentStream = Box<dyn Iterator<Item = Result<Document>> + Send>;

/// Documents handed to [`Documents::insert`], pulled one at a time (possibly on another
/// thread); an `Err` item ends the insert and rolls it back.
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

/// Collections of documents, queried with filters that run inside the database.
pub trait Documents {
    /// Names of the collections, sorted.
    fn list_collections(&self) -> Result<Vec<String>>;

    /// Drops a collection with its documents, indexes and listeners; false if it did not exist.
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
}
