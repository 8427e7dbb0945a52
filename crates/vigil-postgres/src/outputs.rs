//! Bulk reads of a listener's outputs (for vector indexes), served by the index on
//! `(listener, computed_at)`.

use vigil_core::backend::{OutputsMark, StoredOutput, CHECKSUM_MODULUS};
use vigil_core::{stored, Outputs, Result, Value};

use crate::pool::pg_err;
use crate::tables::{listener_id, read_id};
use crate::PostgresBackend;

impl Outputs for PostgresBackend {
    fn outputs_since(&self, listener: &str, since: Option<f64>) -> Result<Vec<StoredOutput>> {
        let mut conn = self.pool.get()?;
        let Some(lid) = listener_id(&mut *conn, listener)? else {
            return Ok(Vec::new());
        };
        let rows = conn
            .query(
                "SELECT doc_id::text, model_version, doc::text, blobs, computed_at FROM vigil_outputs \
                 WHERE listener = $1 AND ($2::float8 IS NULL OR computed_at > $2::float8)",
                &[&lid, &since],
            )
            .map_err(pg_err("reading outputs"))?;
        rows.iter()
            .map(|r| {
                let blobs: Option<Vec<u8>> = r.get(3);
                let mut decoded = stored::decode(
                    Value::Null,
                    r.get(2),
                    blobs.as_deref().unwrap_or(&[]),
                    "vigil_outputs",
                )?;
                Ok(StoredOutput {
                    doc_id: read_id(r.get(0), "vigil_outputs")?,
                    model_version: r.get::<_, i32>(1) as u32,
                    value: decoded.remove("v").unwrap_or(Value::Null),
                    computed_at: r.get(4),
                })
            })
            .collect()
    }

    fn outputs_mark(&self, listener: &str) -> Result<OutputsMark> {
        let mut conn = self.pool.get()?;
        let Some(lid) = listener_id(&mut *conn, listener)? else {
            return Ok(OutputsMark::default());
        };
        // trunc, not a cast: PostgreSQL's cast to bigint rounds, SQLite's and Rust's truncate.
        let row = conn
            .query_one(
                "SELECT count(*), coalesce(sum(trunc(computed_at * 1000)::bigint % $2), 0)::bigint \
                 FROM vigil_outputs WHERE listener = $1",
                &[&lid, &CHECKSUM_MODULUS],
            )
            .map_err(pg_err("fingerprinting outputs"))?;
        Ok(OutputsMark {
            count: row.get::<_, i64>(0) as u64,
            checksum: row.get::<_, i64>(1).rem_euclid(CHECKSUM_MODULUS),
        })
    }
}
