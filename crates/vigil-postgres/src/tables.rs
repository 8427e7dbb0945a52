//! The tables every module touches: creating a collection's table, and the keys of vigil's
//! own tables (document ids as JSON text and back, listener ids by name).

use std::collections::HashMap;

use vigil_core::{Error, ListenerRecord, Result, Value, ID_FIELD};

use crate::pool::pg_err;
use crate::sql::table;

pub(crate) fn create_table(tx: &mut postgres::Transaction<'_>, collection: &str) -> Result<()> {
    tx.batch_execute(&format!(
        "CREATE TABLE IF NOT EXISTS {} (seq BIGSERIAL PRIMARY KEY, id TEXT NOT NULL UNIQUE, doc JSON NOT NULL, blobs BYTEA);",
        table(collection)
    ))
    .map_err(pg_err(format!("creating collection `{collection}`")))?;
    tx.execute(
        "INSERT INTO vigil_collections (name) VALUES ($1) ON CONFLICT DO NOTHING",
        &[&collection],
    )
    .map_err(pg_err("registering a collection"))?;
    Ok(())
}

/// The JSON text of an `_id` (a string or an integer).
pub(crate) fn id_json(id: &Value) -> Result<String> {
    match id {
        Value::Int(_) | Value::String(_) => Ok(id.to_json().to_string()),
        other => Err(Error::InvalidDocument {
            location: vigil_core::Location::path(ID_FIELD),
            reason: format!("_id must be a string or an integer, found {}", other.kind()),
        }),
    }
}

pub(crate) fn read_id(json: &str, collection: &str) -> Result<Value> {
    match serde_json::from_str::<serde_json::Value>(json) {
        Ok(serde_json::Value::String(s)) => Ok(Value::String(s)),
        Ok(serde_json::Value::Number(n)) if n.is_i64() => Ok(Value::Int(n.as_i64().unwrap_or(0))),
        _ => Err(Error::Corrupt {
            collection: collection.into(),
            reason: format!("an _id that is neither a string nor an integer: {json}"),
        }),
    }
}

pub(crate) fn listener_id(
    client: &mut impl postgres::GenericClient,
    name: &str,
) -> Result<Option<i64>> {
    Ok(client
        .query_opt("SELECT id FROM vigil_listeners WHERE name = $1", &[&name])
        .map_err(pg_err("finding a listener"))?
        .map(|r| r.get(0)))
}

/// Listener ids with their names and current model versions.
pub(crate) fn listener_table(
    client: &mut impl postgres::GenericClient,
) -> Result<HashMap<i64, (String, u32)>> {
    let rows = client
        .query("SELECT id, record FROM vigil_listeners", &[])
        .map_err(pg_err("reading listeners"))?;
    rows.iter()
        .map(|r| {
            let rec = ListenerRecord::from_stored(r.get(1))?;
            Ok((r.get(0), (rec.name, rec.model_version)))
        })
        .collect()
}
