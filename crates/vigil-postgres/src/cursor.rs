//! Streaming results: a find runs in its own thread on a pooled connection, through a
//! server-side cursor fetched in batches, and sends decoded documents through a bounded
//! channel; neither side ever holds the whole result.

use std::collections::HashMap;
use std::sync::mpsc::sync_channel;

use vigil_core::{stored, Document, DocumentStream, Error, Projection, Result, OUTPUTS_FIELD};

use crate::pool::is_missing_table;
use crate::pool::{pg_err, Conn};
use crate::sql::Sql;
use crate::tables::read_id;

/// Rows per fetch and per message.
const BATCH: usize = 256;
/// Batches the query thread may run ahead.
const AHEAD: usize = 2;

/// Decodes one `SELECT id::text, doc::text, blobs[, outputs]` row; with `names`, the fourth
/// column becomes the document's `_outputs`.
pub(crate) fn read_row(
    row: &postgres::Row,
    collection: &str,
    names: Option<&HashMap<i64, (String, String)>>,
) -> Result<Document> {
    let corrupt = |reason: String| Error::Corrupt {
        collection: collection.to_string(),
        reason,
    };
    let id: &str = row
        .try_get(0)
        .map_err(|e| corrupt(format!("reading _id: {e}")))?;
    let json: &str = row
        .try_get(1)
        .map_err(|e| corrupt(format!("reading doc: {e}")))?;
    let blobs: Option<&[u8]> = row
        .try_get(2)
        .map_err(|e| corrupt(format!("reading blobs: {e}")))?;
    let mut doc = stored::decode(
        read_id(id, collection)?,
        json,
        blobs.unwrap_or(&[]),
        collection,
    )?;
    if let Some(names) = names {
        let outputs: Option<&str> = row
            .try_get(3)
            .map_err(|e| corrupt(format!("reading outputs: {e}")))?;
        if let Some(outputs) = outputs.map(|o| stored::decode_outputs(o, names, collection)) {
            if let Some(outputs) = outputs? {
                doc.insert(OUTPUTS_FIELD, outputs);
            }
        }
    }
    Ok(doc)
}

/// Streams the rows of `sql` from a thread that owns the connection.
pub(crate) fn stream(
    mut conn: Conn,
    sql: Sql,
    collection: String,
    projection: Option<Projection>,
    names: Option<HashMap<i64, (String, String)>>,
) -> DocumentStream {
    let (tx, rx) = sync_channel::<Vec<Result<Document>>>(AHEAD);
    std::thread::spawn(move || {
        let run = |conn: &mut Conn| -> Result<()> {
            let mut t = conn.transaction().map_err(pg_err("starting a find"))?;
            let portal = match t.bind(sql.text.as_str(), &sql.params()) {
                Ok(p) => p,
                Err(e) if is_missing_table(&e) => return Ok(()),
                Err(e) => return Err(pg_err("running a find")(e)),
            };
            loop {
                let rows = t
                    .query_portal(&portal, BATCH as i32)
                    .map_err(pg_err("reading a find"))?;
                let done = rows.len() < BATCH;
                // A corrupt row is an error in its place; the rows after it still come.
                let batch: Vec<Result<Document>> = rows
                    .iter()
                    .map(|r| {
                        let doc = read_row(r, &collection, names.as_ref());
                        match (&projection, doc) {
                            (Some(p), Ok(d)) => Ok(p.apply(d)),
                            (_, d) => d,
                        }
                    })
                    .collect();
                if !batch.is_empty() && tx.send(batch).is_err() {
                    return Ok(()); // the caller dropped the cursor
                }
                if done {
                    return Ok(());
                }
            }
        };
        if let Err(e) = run(&mut conn) {
            let _ = tx.send(vec![Err(e)]);
        }
    });
    Box::new(rx.into_iter().flatten())
}
