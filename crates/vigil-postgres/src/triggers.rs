//! Change capture: PL/pgSQL trigger functions on a collection's table (and, for chains, on
//! the upstream listener's outputs) that queue every change a listener must see, whoever
//! writes, and wake idle workers with `NOTIFY`.

use vigil_core::backend::sql::update_concerns;
use vigil_core::{ListenerRecord, Result};

use crate::pool::pg_err;
use crate::sql::{self, table};

/// The channel workers listen on.
pub(crate) const CHANNEL: &str = "vigil_work";

/// The function every trigger calls: a new entry, or the existing one bumped to a new
/// generation, due at once, unclaimed, failures forgotten; and a wake-up for idle workers
/// (delivered at commit, once per transaction).
pub(crate) fn enqueue_function(schema: &str) -> String {
    format!(
        "CREATE OR REPLACE FUNCTION vigil_enqueue(l BIGINT, d TEXT) RETURNS void
         LANGUAGE sql SET search_path = \"{schema}\" AS $f$
           INSERT INTO vigil_queue (listener, doc_id) VALUES (l, d)
           ON CONFLICT (listener, doc_id) DO UPDATE SET gen = vigil_queue.gen + 1,
             attempts = 0, not_before = 0, claimed_until = 0, claimed_pid = NULL;
           SELECT pg_notify('{CHANNEL}', '');
         $f$;"
    )
}

fn trigger_name(listener: i64, what: &str) -> String {
    format!("\"vigil_listener_{listener}_{what}\"")
}

pub(crate) fn drop_triggers(
    tx: &mut postgres::Transaction<'_>,
    listener: i64,
    collection: &str,
) -> Result<()> {
    let t = table(collection);
    let mut ddl = String::new();
    for what in ["insert", "update", "delete"] {
        ddl.push_str(&format!(
            "DROP TRIGGER IF EXISTS {} ON {t};",
            trigger_name(listener, what)
        ));
    }
    for what in ["up_insert", "up_update", "up_delete"] {
        ddl.push_str(&format!(
            "DROP TRIGGER IF EXISTS {} ON vigil_outputs;",
            trigger_name(listener, what)
        ));
    }
    ddl.push_str(&format!(
        "DROP FUNCTION IF EXISTS {}(); DROP FUNCTION IF EXISTS {}();",
        trigger_name(listener, "fn"),
        trigger_name(listener, "up_fn")
    ));
    tx.batch_execute(&ddl)
        .map_err(pg_err("dropping a listener's triggers"))
}

/// The trigger function of listener `id` over a table whose document id column is `column`.
fn trigger_function(schema: &str, name: &str, id: i64, column: &str) -> String {
    format!(
        "CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql
         SET search_path = \"{schema}\" AS $f$
         BEGIN
           IF TG_OP = 'DELETE' THEN
             PERFORM vigil_enqueue({id}, OLD.{column});
           ELSE
             PERFORM vigil_enqueue({id}, NEW.{column});
             IF TG_OP = 'UPDATE' AND OLD.{column} IS DISTINCT FROM NEW.{column} THEN
               PERFORM vigil_enqueue({id}, OLD.{column});
             END IF;
           END IF;
           RETURN NULL;
         END $f$;"
    )
}

pub(crate) fn create_triggers(
    tx: &mut postgres::Transaction<'_>,
    schema: &str,
    id: i64,
    listener: &ListenerRecord,
    upstream: Option<i64>,
) -> Result<()> {
    let t = table(&listener.collection);
    let is_chain = listener.is_chain();
    let changed = update_concerns(
        listener,
        &|a, b| format!("{a} IS DISTINCT FROM {b}"),
        &|path, row| {
            format!(
                "({row}.doc #> {})::text",
                sql::path_literal(path.segments())
            )
        },
    )?;
    let function = trigger_name(id, "fn");
    let mut ddl = trigger_function(schema, &function, id, "id");
    if !is_chain {
        ddl.push_str(&format!(
            "CREATE TRIGGER {} AFTER INSERT ON {t} FOR EACH ROW EXECUTE FUNCTION {function}();",
            trigger_name(id, "insert")
        ));
    }
    ddl.push_str(&format!(
        "CREATE TRIGGER {} AFTER UPDATE ON {t} FOR EACH ROW WHEN ({}) EXECUTE FUNCTION {function}();
         CREATE TRIGGER {} AFTER DELETE ON {t} FOR EACH ROW EXECUTE FUNCTION {function}();",
        trigger_name(id, "update"),
        changed,
        trigger_name(id, "delete"),
    ));
    if let Some(up) = upstream {
        let up_function = trigger_name(id, "up_fn");
        ddl.push_str(&trigger_function(schema, &up_function, id, "doc_id"));
        ddl.push_str(&format!(
            "CREATE TRIGGER {} AFTER INSERT ON vigil_outputs FOR EACH ROW WHEN (NEW.listener = {up}) EXECUTE FUNCTION {up_function}();
             CREATE TRIGGER {} AFTER UPDATE ON vigil_outputs FOR EACH ROW WHEN (NEW.listener = {up} AND
               (OLD.doc::text IS DISTINCT FROM NEW.doc::text OR OLD.blobs IS DISTINCT FROM NEW.blobs))
               EXECUTE FUNCTION {up_function}();
             CREATE TRIGGER {} AFTER DELETE ON vigil_outputs FOR EACH ROW WHEN (OLD.listener = {up}) EXECUTE FUNCTION {up_function}();",
            trigger_name(id, "up_insert"),
            trigger_name(id, "up_update"),
            trigger_name(id, "up_delete"),
        ));
    }
    tx.batch_execute(&ddl).map_err(pg_err(format!(
        "creating the triggers of `{}`",
        listener.name
    )))
}
