//! Collections and their documents: native BSON, filters run in the server.

use mongodb::bson::{self, doc, Bson};
use mongodb::sync::ClientSession;
use mongodb::IndexModel;
use vigil_core::backend::sql::{index_needed, replace_row, update_rows, RowStore};
use vigil_core::backend::{DocumentSource, DocumentStream, Documents, UpdateOutcome};
use vigil_core::listen::ListenerRecord;
use vigil_core::{
    Document, Error, FieldPath, Filter, FindQuery, Result, Update, Value, ID_FIELD, OUTPUTS_FIELD,
};

use crate::bson::{from_bson, from_document, id_key, shown, to_document};
use crate::error::{code, db_err, DUPLICATE_KEY};
use crate::query::{sort_document, ServerFilter};
use crate::MongoBackend;

/// Documents per `insert_many` command.
const INSERT_CHUNK: usize = 1000;

/// Whether a collection name is one of vigil's or the server's own.
pub(crate) fn is_internal(name: &str) -> bool {
    name.starts_with("vigil_") || name.starts_with("system.")
}

/// A stored document as vigil shows it, with its original `_id` (an ObjectId stays one when
/// written back) and its listener outputs set apart (they are vigil's, not the user's).
struct Loaded {
    id: Bson,
    outputs: Option<Bson>,
    doc: Document,
}

fn load(mut stored: bson::Document) -> Loaded {
    let id = stored.get(ID_FIELD).cloned().unwrap_or(Bson::Null);
    let outputs = stored.remove(OUTPUTS_FIELD);
    Loaded {
        id,
        outputs,
        doc: from_document(stored),
    }
}

/// The rows an update or replace works on, read and written inside one transaction.
struct Rows<'a> {
    backend: &'a MongoBackend,
    session: &'a mut ClientSession,
    collection: &'a str,
    listeners: Vec<ListenerRecord>,
    loaded: Vec<Loaded>,
}

impl<'a> Rows<'a> {
    fn new(
        backend: &'a MongoBackend,
        session: &'a mut ClientSession,
        collection: &'a str,
        listeners: &[ListenerRecord],
    ) -> Rows<'a> {
        Rows {
            backend,
            session,
            collection,
            listeners: listeners.to_vec(),
            loaded: Vec::new(),
        }
    }
}

impl RowStore for Rows<'_> {
    fn matching(&mut self, filter: &Filter, many: bool) -> Result<Vec<i64>> {
        let server = ServerFilter::of(filter);
        let coll = self.backend.collection(self.collection);
        let mut cursor = coll
            .find(server.query)
            .session(&mut *self.session)
            .run()
            .map_err(db_err("finding the documents to update"))?;
        self.loaded.clear();
        while let Some(stored) = cursor.next(&mut *self.session) {
            let stored = stored.map_err(db_err("reading the documents to update"))?;
            if server.recheck && !filter.matches(&shown(stored.clone(), &self.listeners)) {
                continue;
            }
            let row = load(stored);
            self.loaded.push(row);
            if !many {
                break;
            }
        }
        Ok((0..self.loaded.len() as i64).collect())
    }

    fn load(&mut self, seq: i64) -> Result<Document> {
        Ok(self.loaded[seq as usize].doc.clone())
    }

    fn store(&mut self, seq: i64, new: &Document) -> Result<()> {
        let row = &self.loaded[seq as usize];
        let coll = self.backend.collection(self.collection);
        // Only the top-level fields that changed are written, so that the change stream
        // names them and listeners that read other fields are not woken (see `capture`).
        let mut set = bson::Document::new();
        let mut unset = bson::Document::new();
        for (field, value) in new.iter() {
            if field != ID_FIELD && row.doc.get(field) != Some(value) {
                set.insert(field, crate::bson::to_bson(value));
            }
        }
        for (field, _) in row.doc.iter() {
            if !new.contains(field) {
                unset.insert(field, "");
            }
        }
        let order_kept = new
            .iter()
            .map(|(k, _)| k)
            .filter(|k| row.doc.contains(k))
            .eq(row.doc.iter().map(|(k, _)| k).filter(|k| new.contains(k)));
        let result = if order_kept {
            let mut change = bson::Document::new();
            if !set.is_empty() {
                change.insert("$set", set);
            }
            if !unset.is_empty() {
                change.insert("$unset", unset);
            }
            coll.update_one(doc! { ID_FIELD: row.id.clone() }, change)
                .session(&mut *self.session)
                .run()
                .map(|_| ())
        } else {
            // A replacement that reorders fields is written whole.
            let mut stored = to_document(new);
            stored.insert(ID_FIELD, row.id.clone());
            if let Some(outputs) = &row.outputs {
                stored.insert(OUTPUTS_FIELD, outputs.clone());
            }
            coll.replace_one(doc! { ID_FIELD: row.id.clone() }, stored)
                .session(&mut *self.session)
                .run()
                .map(|_| ())
        };
        result.map_err(db_err(format!(
            "writing a document of `{}`",
            self.collection
        )))
    }
}

/// The listeners of a collection, whose outputs its documents show.
fn listeners_of(backend: &MongoBackend, collection: &str) -> Result<Vec<ListenerRecord>> {
    Ok(crate::entries::read_listeners(backend, None)?
        .into_iter()
        .filter(|l| l.collection == collection)
        .collect())
}

impl Documents for MongoBackend {
    fn list_collections(&self) -> Result<Vec<String>> {
        let mut names: Vec<String> = self
            .db
            .list_collection_names()
            .run()
            .map_err(db_err("listing collections"))?
            .into_iter()
            .filter(|n| !is_internal(n))
            .collect();
        names.sort();
        Ok(names)
    }

    fn drop_collection(&self, collection: &str) -> Result<bool> {
        let existed = self.list_collections()?.iter().any(|n| n == collection);
        crate::entries::drop_listeners_of(self, collection)?;
        self.collection(collection)
            .drop()
            .run()
            .map_err(db_err(format!("dropping `{collection}`")))?;
        Ok(existed)
    }

    fn insert(&self, collection: &str, docs: DocumentSource<'_>) -> Result<()> {
        // Converted up front: a transaction the server asks to run again is replayed from
        // these chunks.
        let mut chunks: Vec<Vec<bson::Document>> = Vec::new();
        let mut chunk = Vec::with_capacity(INSERT_CHUNK);
        for doc in docs {
            chunk.push(to_document(&doc?));
            if chunk.len() == INSERT_CHUNK {
                chunks.push(std::mem::replace(
                    &mut chunk,
                    Vec::with_capacity(INSERT_CHUNK),
                ));
            }
        }
        if !chunk.is_empty() {
            chunks.push(chunk);
        }
        if chunks.is_empty() {
            return Ok(());
        }
        let coll = self.collection(collection);
        self.transaction("an insert", |session| {
            for chunk in &chunks {
                if let Err(e) = coll.insert_many(chunk).session(&mut *session).run() {
                    return Err(duplicate_or(collection, chunk, e));
                }
            }
            Ok(())
        })
    }

    fn find(&self, collection: &str, query: &FindQuery) -> Result<DocumentStream> {
        let server = ServerFilter::of(&query.filter);
        let limit = query.limit.filter(|&l| l > 0);
        let coll = self.collection(collection);
        let mut find = coll.find(server.query);
        if let Some(sort) = sort_document(&query.sort) {
            find = find.sort(sort);
        }
        // Skip and limit go to the server unless the process judges part of the filter.
        if !server.recheck {
            if query.skip > 0 {
                find = find.skip(query.skip);
            }
            if let Some(l) = limit {
                find = find.limit(l.min(i64::MAX as u64) as i64);
            }
        }
        let listeners = listeners_of(self, collection)?;
        let cursor = find
            .run()
            .map_err(db_err(format!("finding in `{collection}`")))?;
        let docs = cursor.map(move |d| {
            d.map(|d| shown(d, &listeners))
                .map_err(db_err("reading documents"))
        });
        let filter = query.filter.clone();
        let docs: DocumentStream = if server.recheck {
            let kept = docs.filter(move |d| d.as_ref().map_or(true, |d| filter.matches(d)));
            let kept = kept.skip(query.skip.min(usize::MAX as u64) as usize);
            match limit {
                Some(l) => Box::new(kept.take(l.min(usize::MAX as u64) as usize)),
                None => Box::new(kept),
            }
        } else {
            Box::new(docs)
        };
        match query.projection.clone() {
            Some(p) => Ok(Box::new(docs.map(move |d| d.map(|d| p.apply(d))))),
            None => Ok(docs),
        }
    }

    fn count(&self, collection: &str, filter: &Filter) -> Result<u64> {
        let server = ServerFilter::of(filter);
        if !server.recheck {
            return self
                .collection(collection)
                .count_documents(server.query)
                .run()
                .map_err(db_err(format!("counting in `{collection}`")));
        }
        let mut n = 0;
        for d in self.find(collection, &FindQuery::new(filter.clone()))? {
            d?;
            n += 1;
        }
        Ok(n)
    }

    fn update(
        &self,
        collection: &str,
        filter: &Filter,
        update: &Update,
        many: bool,
    ) -> Result<UpdateOutcome> {
        let listeners = listeners_of(self, collection)?;
        self.transaction("an update", |session| {
            let mut rows = Rows::new(self, session, collection, &listeners);
            update_rows(&mut rows, filter, update, many)
        })
    }

    fn replace_one(
        &self,
        collection: &str,
        filter: &Filter,
        replacement: &Document,
    ) -> Result<UpdateOutcome> {
        let listeners = listeners_of(self, collection)?;
        self.transaction("a replace", |session| {
            let mut rows = Rows::new(self, session, collection, &listeners);
            replace_row(&mut rows, filter, replacement)
        })
    }

    fn delete(&self, collection: &str, filter: &Filter, many: bool) -> Result<u64> {
        let coll = self.collection(collection);
        let server = ServerFilter::of(filter);
        if !server.recheck {
            let deleted = if many {
                coll.delete_many(server.query).run()
            } else {
                coll.delete_one(server.query).run()
            };
            return deleted
                .map(|r| r.deleted_count)
                .map_err(db_err(format!("deleting from `{collection}`")));
        }
        let listeners = listeners_of(self, collection)?;
        self.transaction("a delete", |session| {
            let mut rows = Rows::new(self, session, collection, &listeners);
            rows.matching(filter, many)?;
            let ids: Vec<Bson> = rows.loaded.iter().map(|r| r.id.clone()).collect();
            if ids.is_empty() {
                return Ok(0);
            }
            coll.delete_many(doc! { ID_FIELD: { "$in": ids } })
                .session(&mut *session)
                .run()
                .map(|r| r.deleted_count)
                .map_err(db_err(format!("deleting from `{collection}`")))
        })
    }

    fn create_index(&self, collection: &str, path: &FieldPath) -> Result<()> {
        if !index_needed(path)? {
            return Ok(());
        }
        let mut keys = bson::Document::new();
        keys.insert(path.dotted(), 1);
        self.collection(collection)
            .create_index(IndexModel::builder().keys(keys).build())
            .run()
            .map(|_| ())
            .map_err(db_err(format!("creating an index on `{collection}`")))
    }

    fn list_indexes(&self, collection: &str) -> Result<Vec<FieldPath>> {
        let indexes = match self.collection(collection).list_indexes().run() {
            Ok(cursor) => cursor
                .collect::<mongodb::error::Result<Vec<IndexModel>>>()
                .map_err(db_err("listing indexes"))?,
            // A collection that does not exist has none.
            Err(e) if code(&e) == Some(26) => return Ok(Vec::new()),
            Err(e) => return Err(db_err("listing indexes")(e)),
        };
        let mut paths: Vec<FieldPath> = Vec::new();
        for index in indexes {
            if index.keys.len() != 1 {
                continue;
            }
            if let Some((key, _)) = index.keys.iter().next() {
                if key != ID_FIELD {
                    paths.push(FieldPath::parse(key)?);
                }
            }
        }
        paths.sort_by_key(FieldPath::dotted);
        Ok(paths)
    }
}

/// An insert's failure: a duplicate `_id` named as vigil names it, or the driver's error.
fn duplicate_or(collection: &str, chunk: &[bson::Document], e: mongodb::error::Error) -> Error {
    if let mongodb::error::ErrorKind::InsertMany(m) = e.kind.as_ref() {
        if let Some(w) = m.write_errors.as_ref().and_then(|w| w.first()) {
            if w.code == DUPLICATE_KEY {
                let id = chunk
                    .get(w.index)
                    .and_then(|d| d.get(ID_FIELD))
                    .cloned()
                    .map_or(Value::Null, from_bson);
                return Error::DuplicateId {
                    collection: collection.to_string(),
                    id: id_key(&id),
                };
            }
        }
    }
    if code(&e) == Some(DUPLICATE_KEY) {
        return Error::DuplicateId {
            collection: collection.to_string(),
            id: "(unknown)".into(),
        };
    }
    db_err(format!("inserting into `{collection}`"))(e)
}
