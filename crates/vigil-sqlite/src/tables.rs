//! The tables every module touches: creating a collection's table, and the keys of vigil's
//! own tables (document ids as bound values and back, listener ids by name).

use std::collections::HashMap;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::OptionalExtension;
use vigil_core::{Error, ListenerRecord, Result, Value, ID_FIELD};

use crate::error::db_err;
use crate::sql::table;

pub(crate) fn create_table(tx: &rusqlite::Transaction<'_>, collection: &str) -> Result<()> {
    tx.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS {} (seq INTEGER PRIMARY KEY, id NOT NULL UNIQUE, doc TEXT NOT NULL, blobs BLOB);",
        table(collection)
    ))
    .map_err(db_err(format!("creating collection `{collection}`")))?;
    tx.prepare_cached("INSERT OR IGNORE INTO vigil_collections (name) VALUES (?)")
        .and_then(|mut s| s.execute([collection]))
        .map_err(db_err("registering a collection"))?;
    Ok(())
}

pub(crate) fn listener_id(tx: &rusqlite::Connection, name: &str) -> Result<Option<i64>> {
    tx.prepare_cached("SELECT id FROM vigil_listeners WHERE name = ?")
        .and_then(|mut s| s.query_row([name], |r| r.get(0)).optional())
        .map_err(db_err("finding a listener"))
}

/// Listener names and current model versions by id.
pub(crate) fn listener_table(conn: &rusqlite::Connection) -> Result<HashMap<i64, (String, u32)>> {
    let mut stmt = conn
        .prepare_cached("SELECT id, record FROM vigil_listeners")
        .map_err(db_err("reading listeners"))?;
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
        .map_err(db_err("reading listeners"))?;
    rows.into_iter()
        .map(|(id, json)| {
            let rec = ListenerRecord::from_stored(&json)?;
            Ok((id, (rec.name, rec.model_version)))
        })
        .collect()
}

/// A document id as a bound parameter.
pub(crate) fn id_param(id: &Value) -> Result<ToSqlOutput<'_>> {
    Ok(ToSqlOutput::Borrowed(match id {
        Value::Int(i) => ValueRef::Integer(*i),
        Value::String(s) => ValueRef::Text(s.as_bytes()),
        other => {
            return Err(Error::InvalidDocument {
                location: vigil_core::Location::path(ID_FIELD),
                reason: format!("_id must be a string or an integer, found {}", other.kind()),
            })
        }
    }))
}

pub(crate) fn read_id(v: ValueRef<'_>) -> Result<Value> {
    match v {
        ValueRef::Integer(i) => Ok(Value::Int(i)),
        ValueRef::Text(t) => Ok(Value::String(String::from_utf8_lossy(t).into_owned())),
        other => Err(Error::Corrupt {
            collection: "vigil_queue".into(),
            reason: format!("a document id of type {:?}", other.data_type()),
        }),
    }
}
