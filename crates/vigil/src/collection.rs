//! A collection handle: inserts, finds, updates, deletes, indexes.

use serde_json::Value as Json;
use vigil_core::ids::new_object_id;
use vigil_core::query::parse_sort;
use vigil_core::update::UpdateOp;
use vigil_core::{
    stored, Codecs, Document, DocumentStream, Error, FieldPath, Filter, FindQuery, Projection,
    Result, Update, UpdateOutcome, Value, FOLD_FIELD, ID_FIELD,
};

use crate::Datalayer;

/// Something that can be read as a document: a [`Document`], or a JSON object.
pub trait IntoDocument {
    /// The document, or an error if this is not an object.
    fn into_document(self) -> Result<Document>;
}

impl IntoDocument for Document {
    fn into_document(self) -> Result<Document> {
        Ok(self)
    }
}

impl IntoDocument for Json {
    fn into_document(self) -> Result<Document> {
        Document::try_from(self)
    }
}

/// Gives a document its `_id` and `_fold` when it has none, then checks it can be stored.
/// `index` is its place in its batch, for messages.
/// Parses a filter given by value, then drops it without recursing (see
/// [`vigil_core::depth::dispose_json`]).
fn parse_filter(filter: Json) -> Result<Filter> {
    let parsed = Filter::parse(&filter);
    vigil_core::depth::dispose_json(filter);
    parsed
}

fn prepare(db: &Datalayer, codecs: &Codecs, index: usize, mut doc: Document) -> Result<Document> {
    if !doc.contains(ID_FIELD) {
        doc.insert_first(ID_FIELD, new_object_id());
    }
    match doc.get(FOLD_FIELD) {
        None => {
            doc.insert(FOLD_FIELD, db.next_fold());
        }
        Some(Value::String(_)) => {}
        Some(other) => {
            return Err(Error::InvalidDocument {
                location: vigil_core::Location::path(FOLD_FIELD).in_document(index),
                reason: format!("_fold must be a string, found {}", other.kind()),
            })
        }
    }
    stored::check_document(&doc, Some(index), Some(codecs))?;
    Ok(doc)
}

/// A named set of documents. Get one with [`Datalayer::collection`].
#[derive(Debug, Clone)]
pub struct Collection {
    db: Datalayer,
    name: String,
}

impl Collection {
    pub(crate) fn new(db: Datalayer, name: String) -> Self {
        Collection { db, name }
    }

    /// The collection's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Inserts one document; returns its `_id`.
    pub fn insert_one(&self, doc: impl IntoDocument) -> Result<Value> {
        let mut ids = self.insert_many([doc.into_document()?])?;
        // insert_many returns one id per document given.
        Ok(ids.pop().expect("one id for one document"))
    }

    /// Inserts documents in one transaction: all of them, or none (a bad document or a
    /// duplicate `_id` leaves the collection as it was). Documents without `_id` get a fresh
    /// one; without `_fold`, a drawn one. Returns the ids in order.
    ///
    /// Each document is prepared (id, fold) and checked as the backend pulls it, which for
    /// large batches happens on the backend's encoding thread, beside the database's writes.
    pub fn insert_many<I>(&self, docs: I) -> Result<Vec<Value>>
    where
        I: IntoIterator,
        I::Item: IntoDocument,
    {
        let docs = docs
            .into_iter()
            .map(IntoDocument::into_document)
            .collect::<Result<Vec<_>>>()?;
        self.insert_from(docs.into_iter().map(Ok))
    }

    /// [`Collection::insert_many`] from a stream: documents are pulled one at a time as the
    /// backend writes them, all in one transaction, so a source larger than memory inserts
    /// in bounded memory. An `Err` item ends the insert and stores nothing. Returns the ids.
    pub fn insert_from<S>(&self, docs: S) -> Result<Vec<Value>>
    where
        S: Iterator<Item = Result<Document>> + Send,
    {
        let mut ids = Vec::with_capacity(docs.size_hint().0);
        let codecs = self.db.codecs();
        let db = &self.db;
        let source = docs.enumerate().map(|(i, doc)| {
            let doc = prepare(db, &codecs, i, doc?)?;
            // `prepare` gives every document an _id.
            ids.push(doc.id().cloned().expect("prepared documents have an _id"));
            Ok(doc)
        });
        self.db.store().insert(&self.name, Box::new(source))?;
        Ok(ids)
    }

    /// Starts a find; refine it with the builder, then [`Find::run`] it.
    pub fn find(&self, filter: Json) -> Find {
        Find {
            collection: self.clone(),
            filter,
            projection: None,
            sort: None,
            skip: 0,
            limit: None,
        }
    }

    /// The first document the filter matches, in insertion order.
    pub fn find_one(&self, filter: Json) -> Result<Option<Document>> {
        self.find(filter).limit(1).run()?.next().transpose()
    }

    /// How many documents the filter matches.
    pub fn count(&self, filter: Json) -> Result<u64> {
        self.db.store().count(&self.name, &parse_filter(filter)?)
    }

    /// Applies `{"$set": …, "$unset": …, "$inc": …}` to the first matching document.
    pub fn update_one(&self, filter: Json, update: impl IntoDocument) -> Result<UpdateOutcome> {
        self.update(filter, update, false)
    }

    /// Applies an update to every matching document, in one transaction.
    pub fn update_many(&self, filter: Json, update: impl IntoDocument) -> Result<UpdateOutcome> {
        self.update(filter, update, true)
    }

    fn update(&self, filter: Json, update: impl IntoDocument, many: bool) -> Result<UpdateOutcome> {
        let filter = parse_filter(filter)?;
        let update = Update::parse(&update.into_document()?)?;
        // Values being set must be storable, as if inserted; one distinct key each, so no
        // value shadows another (the paths themselves were validated by `Update::parse`).
        let mut set = Document::new();
        for (i, op) in update.ops().iter().enumerate() {
            if let UpdateOp::Set(_, value) = op {
                set.insert(format!("set{i}"), value.clone());
            }
        }
        self.db
            .with_codecs(|c| stored::check_document(&set, None, Some(c)))?;
        self.db.store().update(&self.name, &filter, &update, many)
    }

    /// Replaces the first matching document with `doc`, keeping its `_id`. An `_outputs` field
    /// (as found documents carry) is ignored: outputs belong to listeners.
    pub fn replace_one(&self, filter: Json, doc: impl IntoDocument) -> Result<UpdateOutcome> {
        let filter = parse_filter(filter)?;
        let mut doc = doc.into_document()?;
        // A document read back carries its listeners' outputs; they are not part of it.
        doc.remove(vigil_core::OUTPUTS_FIELD);
        self.db
            .with_codecs(|c| stored::check_document(&doc, None, Some(c)))?;
        self.db.store().replace_one(&self.name, &filter, &doc)
    }

    /// Deletes the first matching document; returns 0 or 1.
    pub fn delete_one(&self, filter: Json) -> Result<u64> {
        self.db
            .store()
            .delete(&self.name, &parse_filter(filter)?, false)
    }

    /// Deletes every matching document; returns how many.
    pub fn delete_many(&self, filter: Json) -> Result<u64> {
        self.db
            .store()
            .delete(&self.name, &parse_filter(filter)?, true)
    }

    /// Indexes a field path (dotted), for filters and sorts on it.
    pub fn create_index(&self, path: &str) -> Result<()> {
        self.db
            .store()
            .create_index(&self.name, &FieldPath::parse(path)?)
    }

    /// The indexed field paths.
    pub fn list_indexes(&self) -> Result<Vec<FieldPath>> {
        self.db.store().list_indexes(&self.name)
    }
}

/// A find being built: `collection.find(filter).sort(...).limit(10).run()?`.
#[derive(Debug, Clone)]
#[must_use = "a Find does nothing until it is run"]
pub struct Find {
    collection: Collection,
    filter: Json,
    projection: Option<Json>,
    sort: Option<Json>,
    skip: u64,
    limit: Option<u64>,
}

impl Find {
    /// Mongo-style projection, e.g. `{"img": 0}` or `{"class": 1}`. Default: every field.
    pub fn projection(mut self, projection: Json) -> Self {
        self.projection = Some(projection);
        self
    }

    /// Mongo-style sort, e.g. `{"class": 1, "_id": -1}`. Default: insertion order.
    pub fn sort(mut self, sort: Json) -> Self {
        self.sort = Some(sort);
        self
    }

    /// Documents to pass over first. Default: 0.
    pub fn skip(mut self, n: u64) -> Self {
        self.skip = n;
        self
    }

    /// At most this many documents; 0 means no limit, as in MongoDB. Default: no limit.
    pub fn limit(mut self, n: u64) -> Self {
        self.limit = Some(n);
        self
    }

    /// Validates the query and starts streaming its documents.
    pub fn run(mut self) -> Result<Cursor> {
        let filter = parse_filter(std::mem::take(&mut self.filter))?;
        let query = FindQuery {
            filter,
            projection: self
                .projection
                .as_ref()
                .map(Projection::parse)
                .transpose()?,
            sort: self
                .sort
                .as_ref()
                .map(parse_sort)
                .transpose()?
                .unwrap_or_default(),
            skip: self.skip,
            limit: self.limit.filter(|&n| n > 0),
        };
        let stream = self
            .collection
            .db
            .store()
            .find(&self.collection.name, &query)?;
        Ok(Cursor { stream })
    }
}

/// Documents streamed from the database, a batch at a time.
pub struct Cursor {
    stream: DocumentStream,
}

impl Iterator for Cursor {
    type Item = Result<Document>;
    fn next(&mut self) -> Option<Self::Item> {
        self.stream.next()
    }
}
