//! Change capture: triggers on a collection's table (and, for chains, on the upstream
//! listener's outputs) that queue every change a listener must see, whoever writes.

use rusqlite::Transaction;
use vigil_core::backend::sql::update_concerns;
use vigil_core::{ListenerRecord, Result};

use crate::error::db_err;
use crate::sql::{self, table};

/// The upsert every trigger runs: a new entry, or the existing one bumped to a new generation,
/// due at once, unclaimed and with its failures forgotten (the document changed).
fn enqueue_sql(listener: i64, doc_id: &str, guard: &str) -> String {
    format!(
        "INSERT INTO vigil_queue (listener, doc_id) SELECT {listener}, {doc_id} WHERE {guard} \
         ON CONFLICT (listener, doc_id) DO UPDATE SET gen = gen + 1, attempts = 0, \
         not_before = 0, claimed_until = 0;"
    )
}

fn trigger_name(listener: i64, what: &str) -> String {
    format!("\"vigil_listener_{listener}_{what}\"")
}

const TRIGGER_KINDS: [&str; 6] = [
    "insert",
    "update",
    "delete",
    "up_insert",
    "up_update",
    "up_delete",
];

pub(crate) fn drop_triggers(tx: &Transaction<'_>, listener: i64) -> Result<()> {
    for kind in TRIGGER_KINDS {
        tx.execute_batch(&format!(
            "DROP TRIGGER IF EXISTS {};",
            trigger_name(listener, kind)
        ))
        .map_err(db_err("dropping a listener's trigger"))?;
    }
    Ok(())
}

/// Creates the triggers of listener `id`. An update queues work only when something the
/// listener reads changed: the id, the key, a field the select reads, or the binary values.
pub(crate) fn create_triggers(
    tx: &Transaction<'_>,
    id: i64,
    listener: &ListenerRecord,
    upstream: Option<i64>,
) -> Result<()> {
    let t = table(&listener.collection);
    let is_chain = listener.is_chain();
    let changed = update_concerns(listener, &|a, b| format!("{a} IS NOT {b}"), &|path, row| {
        sql::doc_function("json_extract", &format!("{row}.doc"), path)
    })?;
    let mut ddl = String::new();
    if !is_chain {
        ddl.push_str(&format!(
            "CREATE TRIGGER {} AFTER INSERT ON {t} BEGIN {} END;",
            trigger_name(id, "insert"),
            enqueue_sql(id, "NEW.id", "1")
        ));
    }
    ddl.push_str(&format!(
        "CREATE TRIGGER {} AFTER UPDATE ON {t} WHEN {} BEGIN {} {} END;",
        trigger_name(id, "update"),
        changed,
        enqueue_sql(id, "NEW.id", "1"),
        enqueue_sql(id, "OLD.id", "OLD.id IS NOT NEW.id"),
    ));
    ddl.push_str(&format!(
        "CREATE TRIGGER {} AFTER DELETE ON {t} BEGIN {} END;",
        trigger_name(id, "delete"),
        enqueue_sql(id, "OLD.id", "1")
    ));
    if let Some(up) = upstream {
        ddl.push_str(&format!(
            "CREATE TRIGGER {} AFTER INSERT ON vigil_outputs WHEN NEW.listener = {up} BEGIN {} END;\
             CREATE TRIGGER {} AFTER UPDATE ON vigil_outputs WHEN NEW.listener = {up} AND \
               (OLD.doc IS NOT NEW.doc OR OLD.blobs IS NOT NEW.blobs) BEGIN {} END;\
             CREATE TRIGGER {} AFTER DELETE ON vigil_outputs WHEN OLD.listener = {up} BEGIN {} END;",
            trigger_name(id, "up_insert"),
            enqueue_sql(id, "NEW.doc_id", "1"),
            trigger_name(id, "up_update"),
            enqueue_sql(id, "NEW.doc_id", "1"),
            trigger_name(id, "up_delete"),
            enqueue_sql(id, "OLD.doc_id", "1"),
        ));
    }
    tx.execute_batch(&ddl).map_err(db_err(format!(
        "creating the triggers of `{}`",
        listener.name
    )))
}
