//! Bulk reads of a listener's outputs (for vector indexes), from `vigil_outputs`.

use mongodb::bson::{doc, Bson};
use vigil_core::backend::{Outputs, OutputsMark, StoredOutput, CHECKSUM_MODULUS};
use vigil_core::Result;

use crate::bson::from_bson;
use crate::error::db_err;
use crate::MongoBackend;

impl Outputs for MongoBackend {
    fn outputs_since(&self, listener: &str, since: Option<f64>) -> Result<Vec<StoredOutput>> {
        let mut filter = doc! { "listener": listener };
        if let Some(t) = since {
            filter.insert("computed_at", doc! { "$gt": t });
        }
        let cursor = self
            .collection("vigil_outputs")
            .find(filter)
            .run()
            .map_err(db_err("reading outputs"))?;
        let mut out = Vec::new();
        for row in cursor {
            let row = row.map_err(db_err("reading outputs"))?;
            out.push(StoredOutput {
                doc_id: from_bson(row.get("doc_id").cloned().unwrap_or(Bson::Null)),
                model_version: row.get_i64("model_version").unwrap_or(0) as u32,
                value: from_bson(row.get("value").cloned().unwrap_or(Bson::Null)),
                computed_at: row.get_f64("computed_at").unwrap_or(0.0),
            });
        }
        Ok(out)
    }

    fn outputs_mark(&self, listener: &str) -> Result<OutputsMark> {
        // Counted and summed in the server: only two numbers travel.
        let cursor = self
            .collection("vigil_outputs")
            .aggregate([
                doc! { "$match": { "listener": listener } },
                doc! { "$group": {
                    "_id": Bson::Null,
                    "n": { "$sum": 1 },
                    "s": { "$sum": { "$mod": [
                        { "$toLong": { "$trunc": [{ "$multiply": ["$computed_at", 1000] }] } },
                        CHECKSUM_MODULUS,
                    ] } },
                } },
            ])
            .run()
            .map_err(db_err("fingerprinting outputs"))?;
        let mut mark = OutputsMark::default();
        for row in cursor {
            let row = row.map_err(db_err("fingerprinting outputs"))?;
            let int = |f: &str| match row.get(f) {
                Some(Bson::Int64(v)) => *v,
                Some(Bson::Int32(v)) => i64::from(*v),
                Some(Bson::Double(v)) => *v as i64,
                _ => 0,
            };
            mark.count = int("n") as u64;
            mark.checksum = int("s").rem_euclid(CHECKSUM_MODULUS);
        }
        Ok(mark)
    }
}
