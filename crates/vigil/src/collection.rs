//! A collection handle: inserts, finds, updates, deletes, indexes.

use serde_json::Value as Json;
use vigil_core::aggregate::{self, count_document, Head, Pipeline};
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

    /// The Datalayer it belongs to.
    pub(crate) fn db(&self) -> &Datalayer {
        &self.db
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

    /// Runs an aggregation pipeline (`[{"$match": …}, {"$group": …}, …]`: the stages of
    /// [`vigil_core::aggregate`]) and streams its results. The leading `$match`, `$sort`,
    /// `$skip` and `$limit` run in the database (with its indexes), as does a `$count` right
    /// after them; later stages run as the documents stream by.
    ///
    /// ```
    /// # fn main() -> vigil::Result<()> {
    /// let db = vigil::connect("sqlite::memory:")?;
    /// let digits = db.collection("digits")?;
    /// digits.insert_many([
    ///     vigil::json!({"class": 7, "pred": 7}),
    ///     vigil::json!({"class": 7, "pred": 1}),
    ///     vigil::json!({"class": 3, "pred": 3}),
    /// ])?;
    /// let per_class: Vec<_> = digits
    ///     .aggregate(vigil::json!([
    ///         {"$group": {
    ///             "_id": "$class",
    ///             "n": {"$sum": 1},
    ///             "correct": {"$sum": {"$cond": [{"$eq": ["$pred", "$class"]}, 1, 0]}},
    ///         }},
    ///         {"$project": {"accuracy": {"$divide": ["$correct", "$n"]}}},
    ///         {"$sort": {"_id": 1}},
    ///     ]))?
    ///     .map(|d| d.map(|d| d.to_json()))
    ///     .collect::<vigil::Result<_>>()?;
    /// assert_eq!(per_class, vec![
    ///     vigil::json!({"_id": 3, "accuracy": 1.0}),
    ///     vigil::json!({"_id": 7, "accuracy": 0.5}),
    /// ]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn aggregate(&self, pipeline: Json) -> Result<Cursor> {
        let pipeline = Pipeline::parse(&pipeline)?;
        let (head, rest) = pipeline.split();
        let store = self.db.store();
        let input: DocumentStream = match head {
            // `$limit` then a larger `$skip`: nothing is left.
            Head::Find(query) if query.limit == Some(0) => Box::new(std::iter::empty()),
            Head::Find(query) => store.find(&self.name, &query)?,
            Head::Count { query, name } => {
                let matched = if query.limit == Some(0) {
                    0
                } else {
                    store.count(&self.name, &query.filter)?
                };
                Box::new(count_document(&name, matched, &query).map(Ok).into_iter())
            }
        };
        Ok(Cursor {
            stream: aggregate::run(input, rest),
        })
    }

    /// Applies an update (`{"$set": …, "$inc": …, "$push": …}`: MongoDB's operators, see
    /// [`vigil_core::update`]) to the first matching document.
    pub fn update_one(&self, filter: Json, update: impl IntoDocument) -> Result<UpdateOutcome> {
        self.update(filter, update, false)
    }

    /// Applies an update to every matching document, in one transaction.
    pub fn update_many(&self, filter: Json, update: impl IntoDocument) -> Result<UpdateOutcome> {
        self.update(filter, update, true)
    }

    fn update(&self, filter: Json, update: impl IntoDocument, many: bool) -> Result<UpdateOutcome> {
        let (filter, update) = self.parse_update(filter, update)?;
        self.db.store().update(&self.name, &filter, &update, many)
    }

    fn parse_update(&self, filter: Json, update: impl IntoDocument) -> Result<(Filter, Update)> {
        let filter = parse_filter(filter)?;
        let update = Update::parse(&update.into_document()?)?;
        // Values being written must be storable, as if inserted; one distinct key each, so
        // no value shadows another (the paths themselves were validated by `Update::parse`).
        let mut written = Document::new();
        for (i, op) in update.ops().iter().enumerate() {
            let values: Vec<&Value> = match op {
                UpdateOp::Set(_, v) | UpdateOp::SetOnInsert(_, v) | UpdateOp::Bound(_, v, _) => {
                    vec![v]
                }
                UpdateOp::Push(_, push) => push.each.iter().collect(),
                UpdateOp::AddToSet(_, values) => values.iter().collect(),
                _ => Vec::new(),
            };
            for (j, v) in values.into_iter().enumerate() {
                written.insert(format!("v{i}_{j}"), v.clone());
            }
        }
        self.db
            .with_codecs(|c| stored::check_document(&written, None, Some(c)))?;
        Ok((filter, update))
    }

    /// [`Collection::update_one`], inserting a document when none matches, as MongoDB's
    /// `upsert`: the new document is the filter's equality conditions (`{"a": 1}`,
    /// `{"n.b": 2}`) with the update applied, `$setOnInsert` included, and `_id` from the
    /// filter when it names one. The update and the insert are two transactions: when two
    /// upserts race and the filter names the `_id`, the loser's insert meets the winner's
    /// document and is applied to it as an update instead; without an `_id` both may insert,
    /// as in MongoDB without a unique index.
    pub fn upsert_one(&self, filter: Json, update: impl IntoDocument) -> Result<UpsertOutcome> {
        let (filter, update) = self.parse_update(filter, update)?;
        let out = self
            .db
            .store()
            .update(&self.name, &filter, &update, false)?;
        if out.matched > 0 {
            return Ok(UpsertOutcome::updated(out));
        }
        let doc = update.apply_for_insert(&vigil_core::update::upsert_base(&filter)?)?;
        match self.insert_one(doc) {
            Ok(id) => Ok(UpsertOutcome::inserted(id)),
            Err(Error::DuplicateId { .. }) => {
                let out = self
                    .db
                    .store()
                    .update(&self.name, &filter, &update, false)?;
                Ok(UpsertOutcome::updated(out))
            }
            Err(e) => Err(e),
        }
    }

    /// [`Collection::replace_one`], inserting `doc` when nothing matches (with the filter's
    /// `_id` when it names one and `doc` has none).
    pub fn replace_or_insert(&self, filter: Json, doc: impl IntoDocument) -> Result<UpsertOutcome> {
        let mut doc = doc.into_document()?;
        let base = vigil_core::update::upsert_base(&Filter::parse(&filter)?)?;
        let out = self.replace_one(filter.clone(), doc.clone())?;
        if out.matched > 0 {
            return Ok(UpsertOutcome::updated(out));
        }
        if let (None, Some(id)) = (doc.get(ID_FIELD), base.get(ID_FIELD)) {
            doc.insert_first(ID_FIELD, id.clone());
        }
        doc.remove(vigil_core::OUTPUTS_FIELD);
        match self.insert_one(doc.clone()) {
            Ok(id) => Ok(UpsertOutcome::inserted(id)),
            Err(Error::DuplicateId { .. }) => {
                Ok(UpsertOutcome::updated(self.replace_one(filter, doc)?))
            }
            Err(e) => Err(e),
        }
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

/// What an upsert did: updated (or replaced) a matching document, or inserted one.
#[derive(Debug, Clone, PartialEq)]
pub struct UpsertOutcome {
    /// Documents the filter matched (0 when one was inserted).
    pub matched: u64,
    /// Documents whose stored content changed.
    pub modified: u64,
    /// The inserted document's `_id`, when one was inserted.
    pub upserted_id: Option<Value>,
}

impl UpsertOutcome {
    fn updated(out: UpdateOutcome) -> Self {
        UpsertOutcome {
            matched: out.matched,
            modified: out.modified,
            upserted_id: None,
        }
    }

    fn inserted(id: Value) -> Self {
        UpsertOutcome {
            matched: 0,
            modified: 0,
            upserted_id: Some(id),
        }
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
