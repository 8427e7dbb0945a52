//! Streaming results: a find runs on a reader connection in its own thread and sends decoded
//! documents in batches through a bounded channel, so neither side ever holds the whole result
//! and the caller may write to the database while it iterates.

use std::collections::HashMap;
use std::sync::mpsc::sync_channel;
use std::sync::Arc;

use rusqlite::types::ValueRef;
use vigil_core::{
    stored, Document, DocumentStream, Error, Projection, Result, Value, OUTPUTS_FIELD,
};

use crate::error::{db_err, is_missing_table};
use crate::pool::Reader;
use crate::sql::{Scope, Sql};

/// Documents per message between the query thread and the caller.
const BATCH: usize = 256;
/// Batches the query thread may run ahead.
const AHEAD: usize = 2;

/// Which listener writes which `_outputs.<key>.<model>` entry, by listener id.
#[derive(Debug, Default)]
pub(crate) struct OutputNames(HashMap<i64, (String, String)>);

impl OutputNames {
    pub(crate) fn of(scope: &Scope) -> Option<Arc<OutputNames>> {
        if scope.outputs.is_empty() {
            return None;
        }
        Some(Arc::new(OutputNames(scope.names())))
    }
}

/// Decodes one `SELECT id, doc, blobs[, outputs]` row; with `names`, the fourth column
/// becomes the document's `_outputs`.
pub(crate) fn read_row(
    row: &rusqlite::Row<'_>,
    collection: &str,
    names: Option<&OutputNames>,
) -> Result<Document> {
    let corrupt = |reason: String| Error::Corrupt {
        collection: collection.to_string(),
        reason,
    };
    let id = match row.get_ref(0).map_err(db_err("reading _id"))? {
        ValueRef::Integer(i) => Value::Int(i),
        ValueRef::Text(t) => Value::String(String::from_utf8_lossy(t).into_owned()),
        other => return Err(corrupt(format!("_id of type {:?}", other.data_type()))),
    };
    let json = match row.get_ref(1).map_err(db_err("reading doc"))? {
        ValueRef::Text(t) => {
            std::str::from_utf8(t).map_err(|e| corrupt(format!("doc is not UTF-8: {e}")))?
        }
        other => return Err(corrupt(format!("doc of type {:?}", other.data_type()))),
    };
    let blobs = match row.get_ref(2).map_err(db_err("reading blobs"))? {
        ValueRef::Blob(b) => b,
        ValueRef::Null => &[],
        other => return Err(corrupt(format!("blobs of type {:?}", other.data_type()))),
    };
    let mut doc = stored::decode(id, json, blobs, collection)?;
    if let Some(names) = names {
        if let ValueRef::Text(t) = row.get_ref(3).map_err(db_err("reading outputs"))? {
            let json = std::str::from_utf8(t).map_err(|e| Error::Corrupt {
                collection: collection.to_string(),
                reason: format!("outputs are not UTF-8: {e}"),
            })?;
            if let Some(outputs) = stored::decode_outputs(json, &names.0, collection)? {
                doc.insert(OUTPUTS_FIELD, outputs);
            }
        }
    }
    Ok(doc)
}

/// Runs `sql` (selecting `id, doc, blobs`) and collects every row; for small, bounded results.
/// A corrupt row is an error in its place.
pub(crate) fn collect(
    conn: &rusqlite::Connection,
    sql: &Sql,
    collection: &str,
    names: Option<&OutputNames>,
) -> Result<Vec<Result<Document>>> {
    let mut stmt = match conn.prepare_cached(&sql.text) {
        Ok(s) => s,
        Err(e) if is_missing_table(&e) => return Ok(Vec::new()),
        Err(e) => return Err(db_err("preparing a find")(e)),
    };
    let mut rows = stmt
        .query(rusqlite::params_from_iter(sql.params.iter()))
        .map_err(db_err("running a find"))?;
    let mut docs: Vec<Result<Document>> = Vec::new();
    while let Some(row) = rows.next().map_err(db_err("reading a row"))? {
        docs.push(read_row(row, collection, names));
    }
    Ok(docs)
}

/// Streams the rows of `sql` from a thread that owns the reader connection.
pub(crate) fn stream(
    reader: Reader,
    sql: Sql,
    collection: String,
    projection: Option<Projection>,
    names: Option<Arc<OutputNames>>,
) -> DocumentStream {
    let (tx, rx) = sync_channel::<Vec<Result<Document>>>(AHEAD);
    std::thread::spawn(move || {
        let mut batch = Vec::with_capacity(BATCH);
        let run = |batch: &mut Vec<Result<Document>>| -> Result<()> {
            let mut stmt = match reader.prepare(&sql.text) {
                Ok(s) => s,
                Err(e) if is_missing_table(&e) => return Ok(()),
                Err(e) => return Err(db_err("preparing a find")(e)),
            };
            let mut rows = stmt
                .query(rusqlite::params_from_iter(sql.params.iter()))
                .map_err(db_err("running a find"))?;
            while let Some(row) = rows.next().map_err(db_err("reading a row"))? {
                // A corrupt row is an error in its place; the rows after it still come.
                let doc = read_row(row, &collection, names.as_deref());
                batch.push(match (&projection, doc) {
                    (Some(p), Ok(doc)) => Ok(p.apply(doc)),
                    (_, doc) => doc,
                });
                if batch.len() == BATCH {
                    let full = std::mem::replace(batch, Vec::with_capacity(BATCH));
                    if tx.send(full).is_err() {
                        return Ok(()); // the caller dropped the cursor
                    }
                }
            }
            Ok(())
        };
        if let Err(e) = run(&mut batch) {
            batch.push(Err(e));
        }
        if !batch.is_empty() {
            let _ = tx.send(batch);
        }
    });
    Box::new(rx.into_iter().flatten())
}
