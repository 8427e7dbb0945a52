//! Listeners and their queue entries as stored, shared by change capture, claims, the
//! `Queue` methods and dropping a collection: the keys of vigil's own collections, the
//! listener records, and queueing documents as fresh work.

use mongodb::bson::{self, doc, Bson};
use mongodb::sync::ClientSession;
use vigil_core::listen::ListenerRecord;
use vigil_core::{Filter, Result, Value, ID_FIELD, OUTPUTS_FIELD};

use crate::bson::{from_bson, id_key, shown};
use crate::error::db_err;
use crate::query::ServerFilter;
use crate::MongoBackend;

/// The key of a (listener, document) pair in vigil's own collections.
pub(crate) fn entry_key(listener: &str, doc_id: &Value) -> String {
    format!("{listener}|{}", id_key(doc_id))
}

/// Where a listener's outputs sit inside a document: `_outputs.<key>.<model>`.
pub(crate) fn output_path(listener: &ListenerRecord) -> String {
    format!("{OUTPUTS_FIELD}.{}.{}", listener.key, listener.model)
}

/// Runs `each` on every row `filter` finds in `coll` (with `projection`) inside `session`,
/// as the rows come: a session's cursor must be advanced with that session.
pub(crate) fn for_each_row(
    coll: &mongodb::sync::Collection<bson::Document>,
    filter: bson::Document,
    projection: bson::Document,
    session: &mut ClientSession,
    what: &str,
    mut each: impl FnMut(bson::Document) -> Result<()>,
) -> Result<()> {
    let mut cursor = coll
        .find(filter)
        .projection(projection)
        .session(&mut *session)
        .run()
        .map_err(db_err(what))?;
    while let Some(row) = cursor.next(&mut *session) {
        each(row.map_err(db_err(what))?)?;
    }
    Ok(())
}

/// The installed listeners, in installation order, read inside a session or not.
pub(crate) fn read_listeners(
    backend: &MongoBackend,
    session: Option<&mut ClientSession>,
) -> Result<Vec<ListenerRecord>> {
    let coll = backend.collection("vigil_listeners");
    let find = coll.find(doc! {}).sort(doc! { "seq": 1 });
    let rows: Vec<bson::Document> = match session {
        Some(s) => {
            let mut cursor = find
                .session(&mut *s)
                .run()
                .map_err(db_err("reading listeners"))?;
            let mut rows = Vec::new();
            while let Some(row) = cursor.next(&mut *s) {
                rows.push(row.map_err(db_err("reading listeners"))?);
            }
            rows
        }
        None => find
            .run()
            .map_err(db_err("reading listeners"))?
            .collect::<mongodb::error::Result<Vec<_>>>()
            .map_err(db_err("reading listeners"))?,
    };
    rows.iter()
        .map(|r| ListenerRecord::from_stored(r.get_str("record").unwrap_or("")))
        .collect()
}

/// The new queue entry of a (listener, document) pair: fresh work, due at once.
pub(crate) fn new_entry(listener: &str, doc_id: &Bson, job: Option<&str>) -> bson::Document {
    let key = entry_key(listener, &from_bson(doc_id.clone()));
    doc! {
        "_id": key,
        "listener": listener,
        "doc_id": doc_id.clone(),
        "gen": 0_i64,
        "job": job.map(Bson::from).unwrap_or(Bson::Null),
        "attempts": 0_i64,
        "not_before": 0.0,
        "claimed_by": Bson::Null,
        "claimed_until": 0.0,
    }
}

/// Queues `(listener, document)` pairs as fresh work inside a transaction: new entries are
/// inserted, existing ones get a new generation, due at once, unclaimed, failures forgotten
/// (and moved to `job` when one is given).
pub(crate) fn enqueue(
    backend: &MongoBackend,
    session: &mut ClientSession,
    listener: &str,
    doc_ids: &[Bson],
    job: Option<&str>,
) -> Result<()> {
    let queue = backend.collection("vigil_queue");
    for chunk in doc_ids.chunks(1000) {
        let keys: Vec<Bson> = chunk
            .iter()
            .map(|id| Bson::String(entry_key(listener, &from_bson(id.clone()))))
            .collect();
        let mut existing = std::collections::HashSet::new();
        for_each_row(
            &queue,
            doc! { "_id": { "$in": &keys } },
            doc! { "_id": 1 },
            session,
            "reading the queue",
            |row| {
                if let Ok(k) = row.get_str("_id") {
                    existing.insert(k.to_string());
                }
                Ok(())
            },
        )?;
        if !existing.is_empty() {
            let mut set = doc! { "attempts": 0_i64, "not_before": 0.0, "claimed_until": 0.0 };
            if let Some(job) = job {
                set.insert("job", job);
            }
            let ids: Vec<&String> = existing.iter().collect();
            queue
                .update_many(
                    doc! { "_id": { "$in": ids } },
                    doc! { "$inc": { "gen": 1_i64 }, "$set": set },
                )
                .session(&mut *session)
                .run()
                .map_err(db_err("queueing work"))?;
        }
        let fresh: Vec<bson::Document> = chunk
            .iter()
            .zip(&keys)
            .filter(|(_, k)| !existing.contains(k.as_str().unwrap_or("")))
            .map(|(id, _)| new_entry(listener, id, job))
            .collect();
        // The same document twice in one batch of changes is one entry.
        let mut seen = std::collections::HashSet::new();
        let fresh: Vec<bson::Document> = fresh
            .into_iter()
            .filter(|d| seen.insert(d.get_str("_id").unwrap_or("").to_string()))
            .collect();
        if !fresh.is_empty() {
            queue
                .insert_many(fresh)
                .session(&mut *session)
                .run()
                .map_err(db_err("queueing work"))?;
        }
    }
    Ok(())
}

/// The `_id`s a listener's select matches, plus those of documents holding its output, each
/// once.
pub(crate) fn selected_ids(
    backend: &MongoBackend,
    session: &mut ClientSession,
    listener: &ListenerRecord,
) -> Result<Vec<Bson>> {
    let select = Filter::parse(&listener.select)?;
    let server = ServerFilter::of(&select);
    let coll = backend.collection(&listener.collection);
    let mut ids = Vec::new();
    let projection = if server.recheck {
        doc! {}
    } else {
        doc! { "_id": 1 }
    };
    for_each_row(
        &coll,
        server.query,
        projection,
        session,
        "reading a listener's select",
        |row| {
            if server.recheck && !select.matches(&shown(row.clone(), &[])) {
                return Ok(());
            }
            ids.push(row.get(ID_FIELD).cloned().unwrap_or(Bson::Null));
            Ok(())
        },
    )?;
    for_each_row(
        &backend.collection("vigil_outputs"),
        doc! { "listener": &listener.name },
        doc! { "doc_id": 1 },
        session,
        "reading a listener's outputs",
        |row| {
            ids.push(row.get("doc_id").cloned().unwrap_or(Bson::Null));
            Ok(())
        },
    )?;
    // A document both selected and holding an output is one piece of work.
    let mut seen = std::collections::HashSet::new();
    ids.retain(|id| seen.insert(id_key(&from_bson(id.clone()))));
    Ok(ids)
}

/// Removes every listener of a collection, with its queue, outputs and errors.
pub(crate) fn drop_listeners_of(backend: &MongoBackend, collection: &str) -> Result<()> {
    let names: Vec<String> = read_listeners(backend, None)?
        .into_iter()
        .filter(|l| l.collection == collection)
        .map(|l| l.name)
        .collect();
    backend.transaction("removing a collection's listeners", |session| {
        for name in &names {
            remove(backend, session, name)?;
        }
        Ok(())
    })
}

pub(crate) fn remove(
    backend: &MongoBackend,
    session: &mut ClientSession,
    name: &str,
) -> Result<()> {
    for coll in ["vigil_queue", "vigil_outputs", "vigil_errors"] {
        backend
            .collection(coll)
            .delete_many(doc! { "listener": name })
            .session(&mut *session)
            .run()
            .map_err(db_err("removing a listener"))?;
    }
    backend
        .collection("vigil_listeners")
        .delete_one(doc! { "_id": name })
        .session(&mut *session)
        .run()
        .map_err(db_err("removing a listener"))?;
    Ok(())
}
