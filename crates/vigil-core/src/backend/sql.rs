//! What the SQL backends (SQLite, PostgreSQL) share above their dialects: the decisions of an
//! update or replace over the storage format of [`crate::stored`] (read, change, check, write
//! back, in one transaction), the statement skeletons over its `seq` column, the boolean
//! structure of a compiled filter, and the checks `create_index` and listeners make. Each
//! backend supplies only its statements and its own SQL for a field's condition.

use crate::filter::{Condition, ExprOp, Operand};
use crate::names::FieldPath;
use crate::{stored, Document, Error, Filter, Result, Update, UpdateOutcome, OUTPUTS_FIELD};

/// A collection's rows, inside one write transaction, addressed by `seq`.
pub trait RowStore {
    /// The `seq`s of the matching rows, ascending (the first only unless `many`), locked
    /// for this transaction where the database locks rows.
    fn matching(&mut self, filter: &Filter, many: bool) -> Result<Vec<i64>>;
    /// The document in a row.
    fn load(&mut self, seq: i64) -> Result<Document>;
    /// Writes a document back into its row.
    fn store(&mut self, seq: i64, doc: &Document) -> Result<()>;
}

/// Applies `update` to the first (`many == false`) or every matching row: each document is
/// read, changed, checked and written back only when it changed.
pub fn update_rows(
    rows: &mut dyn RowStore,
    filter: &Filter,
    update: &Update,
    many: bool,
) -> Result<UpdateOutcome> {
    let mut outcome = UpdateOutcome::default();
    for seq in rows.matching(filter, many)? {
        let old = rows.load(seq)?;
        let new = update.apply(&old)?;
        outcome.matched += 1;
        if new != old {
            stored::check_document(&new, None, None)?;
            rows.store(seq, &new)?;
            outcome.modified += 1;
        }
    }
    Ok(outcome)
}

/// Replaces the first matching document, keeping its `_id` (see [`stored::replacement`]).
pub fn replace_row(
    rows: &mut dyn RowStore,
    filter: &Filter,
    replacement: &Document,
) -> Result<UpdateOutcome> {
    let Some(&seq) = rows.matching(filter, false)?.first() else {
        return Ok(UpdateOutcome::default());
    };
    let old = rows.load(seq)?;
    let new = stored::replacement(&old, replacement)?;
    let modified = u64::from(new != old);
    if modified == 1 {
        rows.store(seq, &new)?;
    }
    Ok(UpdateOutcome {
        matched: 1,
        modified,
    })
}

/// The start of a statement selecting matching `seq`s from `table`; the filter follows, then
/// [`match_order`].
pub fn match_statement(table: &str) -> String {
    format!("SELECT seq FROM {table} WHERE ")
}

/// What follows the filter of [`match_statement`]: insertion order, the first row unless
/// `many`.
pub fn match_order(many: bool) -> &'static str {
    if many {
        " ORDER BY seq"
    } else {
        " ORDER BY seq LIMIT 1"
    }
}

/// The start and end of a statement deleting the first (`many == false`) or every matching
/// row of `table`; the filter goes between.
pub fn delete_statement(table: &str, many: bool) -> (String, &'static str) {
    if many {
        (format!("DELETE FROM {table} WHERE "), "")
    } else {
        (
            format!("DELETE FROM {table} WHERE seq IN (SELECT seq FROM {table} WHERE "),
            " ORDER BY seq LIMIT 1)",
        )
    }
}

/// Whether `create_index(path)` has an index to build: not for `_id` (its unique constraint
/// is one); an error for outputs, which live in their own, already indexed table.
pub fn index_needed(path: &FieldPath) -> Result<bool> {
    if path.is_id() {
        return Ok(false);
    }
    if path.segments()[0] == OUTPUTS_FIELD {
        return Err(Error::InvalidQuery {
            part: "index",
            path: path.dotted(),
            reason: "outputs live in vigil_outputs, already indexed by listener and document"
                .into(),
        });
    }
    Ok(true)
}

/// Whether a filter reads listener outputs (and so must be compiled knowing the listeners).
pub fn reads_outputs(filter: &Filter) -> bool {
    filter
        .paths()
        .iter()
        .any(|p| p.segments()[0] == OUTPUTS_FIELD)
}

/// A dialect's writer of compiled filters. [`write_filter`] writes the boolean structure;
/// the writer writes each field's condition.
pub trait FilterWriter {
    /// SQL that is always true.
    const TRUE: &'static str;
    /// SQL that is always false.
    const FALSE: &'static str;
    /// Closes a negation opened with `(NOT COALESCE(`: a NULL operand counts as no match.
    const NOT_CLOSE: &'static str;
    /// Appends text.
    fn push(&mut self, text: &str);
    /// Appends the SQL of one condition on one path, resolved against `scope`.
    fn condition(&mut self, scope: &Scope, path: &FieldPath, condition: &Condition);
    /// Appends the SQL of an `$expr` comparison of two operands.
    fn compare(&mut self, scope: &Scope, op: ExprOp, left: &Operand, right: &Operand);
}

/// Appends a filter's SQL. Its truth value is true, or false/NULL for "no match": NULL only
/// arises from a missing field inside a positive condition, and every negation wraps its
/// operand in `COALESCE(…, false)` first, so NULL always means "no match".
pub fn write_filter<W: FilterWriter>(f: &Filter, scope: &Scope, out: &mut W) {
    match f {
        Filter::And(parts) if parts.is_empty() => out.push(W::TRUE),
        Filter::Or(parts) if parts.is_empty() => out.push(W::FALSE),
        Filter::And(parts) | Filter::Or(parts) => {
            let joiner = if matches!(f, Filter::And(_)) {
                " AND "
            } else {
                " OR "
            };
            out.push("(");
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    out.push(joiner);
                }
                write_filter(p, scope, out);
            }
            out.push(")");
        }
        Filter::Not(inner) => {
            out.push("(NOT COALESCE(");
            write_filter(inner, scope, out);
            out.push(W::NOT_CLOSE);
        }
        Filter::Field { path, condition } => out.condition(scope, path, condition),
        Filter::Compare { op, left, right } => out.compare(scope, *op, left, right),
    }
}

/// The prefixes of `path` that, when they are arrays, keep a missing value at the end of the
/// path from matching null (the match must come from the array's documents): those followed
/// by a field name. A digit segment indexes the array, and a missing element matches null.
/// Sorts reach through these only.
pub fn array_prefixes(path: &FieldPath) -> Vec<(usize, FieldPath)> {
    array_prefix_lengths(path.segments())
        .into_iter()
        .filter_map(|k| path.sub(0..k).map(|p| (k, p)))
        .collect()
}

/// The prefixes of `path` a filter steps into when they are arrays of documents, with their
/// length: every proper prefix. A digit segment after an array indexes it (the direct value)
/// and also names a field of each of its documents, as MongoDB's matcher reads it
/// (`{"n.1": null}` matches `{"n": [{"b": 1}]}`: that document has no field `1`).
pub fn traversed_prefixes(path: &FieldPath) -> Vec<(usize, FieldPath)> {
    (1..path.segments().len())
        .filter_map(|k| path.sub(0..k).map(|p| (k, p)))
        .collect()
}

/// Every choice of [`array_prefix_lengths`] a sort path steps into (all subsets, in order),
/// for the backends' "values a path reaches" unions: one `SELECT` per choice.
pub fn array_prefix_choices(segments: &[String]) -> Vec<Vec<usize>> {
    let positions = array_prefix_lengths(segments);
    (0u32..(1 << positions.len()))
        .map(|mask| {
            positions
                .iter()
                .enumerate()
                .filter(|(i, _)| mask >> i & 1 == 1)
                .map(|(_, k)| *k)
                .collect()
        })
        .collect()
}

/// The lengths of [`array_prefixes`], from the segments alone.
pub fn array_prefix_lengths(segments: &[String]) -> Vec<usize> {
    (1..segments.len())
        .filter(|&k| segments[k].parse::<u32>().is_err())
        .collect()
}

/// The error for a chained listener whose upstream is not installed.
pub fn missing_upstream(upstream: &str) -> Error {
    Error::NotFound {
        kind: "listener".into(),
        identifier: upstream.into(),
        version: None,
    }
}

/// The error for removing a listener another one reads.
pub fn listener_in_use(name: &str, downstream: &str) -> Error {
    Error::InvalidQuery {
        part: "listener",
        path: name.into(),
        reason: format!("listener `{downstream}` reads its outputs; remove that one first"),
    }
}

/// The stored form of a listener's output for a document: `{"_id": id, "v": value}` in the
/// storage format, so outputs hold images and tensors as documents do.
pub fn encode_output(
    doc_id: &crate::Value,
    value: &crate::Value,
) -> Result<stored::StoredDocument> {
    stored::encode(
        &Document::new()
            .with(crate::ID_FIELD, doc_id.clone())
            .with("v", value.clone()),
    )
}

/// What a filter's paths resolve against: the collection's (quoted) table, and the
/// listeners whose outputs appear under `_outputs.<key>.<model>`.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// The quoted table name, for correlated subqueries.
    pub table: String,
    /// The collection's listeners, in installation order.
    pub outputs: Vec<ScopeOutput>,
}

/// A listener as a filter path sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeOutput {
    /// The backend's id of the listener.
    pub listener: i64,
    /// The segments under `_outputs`: the key's, then the model.
    pub segments: Vec<String>,
    /// The key it reads.
    pub key: String,
    /// The model it runs.
    pub model: String,
}

impl Scope {
    /// A scope without listeners.
    pub fn plain(table: String) -> Scope {
        Scope {
            table,
            outputs: Vec::new(),
        }
    }

    /// Adds a listener (`key`, `model`) known to the backend as `listener`.
    pub fn add_listener(&mut self, listener: i64, key: String, model: String) {
        let mut segments: Vec<String> = key.split('.').map(str::to_string).collect();
        segments.push(model.clone());
        self.outputs.push(ScopeOutput {
            listener,
            segments,
            key,
            model,
        });
    }

    /// The listener and remaining segments of an `_outputs.<key>.<model>…` path (without
    /// `_outputs`): the listener with the longest matching key wins.
    pub fn output<'p>(&self, path: &'p [String]) -> Option<(i64, &'p [String])> {
        self.outputs
            .iter()
            .filter(|o| {
                path.len() >= o.segments.len() && path[..o.segments.len()] == o.segments[..]
            })
            .max_by_key(|o| o.segments.len())
            .map(|o| (o.listener, &path[o.segments.len()..]))
    }

    /// Listener ids with the (key, model) their outputs appear under.
    pub fn names(&self) -> std::collections::HashMap<i64, (String, String)> {
        self.outputs
            .iter()
            .map(|o| (o.listener, (o.key.clone(), o.model.clone())))
            .collect()
    }

    /// The listener ids, comma-separated, for an `IN (…)` list.
    pub fn listener_ids(&self) -> String {
        let ids: Vec<String> = self
            .outputs
            .iter()
            .map(|o| o.listener.to_string())
            .collect();
        ids.join(",")
    }
}

/// The condition under which an update concerns a listener, for its `AFTER UPDATE` trigger:
/// the id changed, the binary values changed (unless it reads another listener's outputs),
/// or a field it watches ([`crate::ListenerRecord::watched_paths`]) changed. `differ(a, b)`
/// is the dialect's null-safe "a differs from b"; `field(path, row)` the dialect's value of
/// a path in row `OLD` or `NEW`.
pub fn update_concerns(
    listener: &crate::ListenerRecord,
    differ: &dyn Fn(&str, &str) -> String,
    field: &dyn Fn(&FieldPath, &str) -> String,
) -> Result<String> {
    let mut changed = vec![differ("OLD.id", "NEW.id")];
    if !listener.is_chain() {
        changed.push(differ("OLD.blobs", "NEW.blobs"));
    }
    for path in listener.watched_paths()? {
        changed.push(differ(&field(&path, "OLD"), &field(&path, "NEW")));
    }
    Ok(changed.join(" OR "))
}

/// ` FROM a, b, …` over the tables a path's array steps joined, plus `extra`; empty when
/// there are none. Both SQL dialects build "the values a path reaches" this way.
pub fn from_clause(tables: &[String], extra: Option<String>) -> String {
    let all: Vec<&str> = tables
        .iter()
        .map(String::as_str)
        .chain(extra.as_deref())
        .collect();
    if all.is_empty() {
        String::new()
    } else {
        format!(" FROM {}", all.join(", "))
    }
}
