//! Bulk reads of a listener's outputs (for vector indexes), served by the index on
//! `(listener, computed_at)`.

use vigil_core::backend::{OutputsMark, StoredOutput, CHECKSUM_MODULUS};
use vigil_core::{stored, Outputs, Result, Value};

use crate::error::db_err;
use crate::tables::{listener_id, read_id};
use crate::SqliteBackend;

impl Outputs for SqliteBackend {
    fn outputs_since(&self, listener: &str, since: Option<f64>) -> Result<Vec<StoredOutput>> {
        let reader = self.pool.reader()?;
        let Some(lid) = listener_id(&reader, listener)? else {
            return Ok(Vec::new());
        };
        let mut stmt = reader
            .prepare_cached(
                "SELECT doc_id, model_version, doc, blobs, computed_at FROM vigil_outputs \
                 WHERE listener = ?1 AND (?2 IS NULL OR computed_at > ?2)",
            )
            .map_err(db_err("reading outputs"))?;
        let mut rows = stmt
            .query(rusqlite::params![lid, since])
            .map_err(db_err("reading outputs"))?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(db_err("reading outputs"))? {
            let get = |e| db_err("reading outputs")(e);
            let doc_id = read_id(r.get_ref(0).map_err(get)?)?;
            let doc: String = r.get(2).map_err(get)?;
            let blobs: Option<Vec<u8>> = r.get(3).map_err(get)?;
            let mut decoded = stored::decode(
                Value::Null,
                &doc,
                blobs.as_deref().unwrap_or(&[]),
                "vigil_outputs",
            )?;
            out.push(StoredOutput {
                doc_id,
                model_version: r.get(1).map_err(get)?,
                value: decoded.remove("v").unwrap_or(Value::Null),
                computed_at: r.get(4).map_err(get)?,
            });
        }
        Ok(out)
    }

    fn outputs_mark(&self, listener: &str) -> Result<OutputsMark> {
        let reader = self.pool.reader()?;
        let Some(lid) = listener_id(&reader, listener)? else {
            return Ok(OutputsMark::default());
        };
        // Each term is below the modulus, so the sum of 9 billion of them fits an i64.
        let (count, sum): (i64, i64) = reader
            .prepare_cached(
                "SELECT count(*), coalesce(sum(CAST(computed_at * 1000 AS INTEGER) % ?2), 0) \
                 FROM vigil_outputs WHERE listener = ?1",
            )
            .and_then(|mut s| {
                s.query_row(rusqlite::params![lid, CHECKSUM_MODULUS], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
            })
            .map_err(db_err("fingerprinting outputs"))?;
        Ok(OutputsMark {
            count: count as u64,
            checksum: sum.rem_euclid(CHECKSUM_MODULUS),
        })
    }
}
