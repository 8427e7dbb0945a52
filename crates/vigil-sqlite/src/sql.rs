//! Filters and sorts compiled to SQLite SQL over the JSON `doc` column. Paths are inlined as
//! quoted JSON-path literals (their charset is validated, and inlining lets SQLite match
//! expression indexes); every value is a bound parameter.

use rusqlite::types::Value as SqlValue;
use serde_json::Value as Json;
use vigil_core::backend::sql::{
    array_prefixes, from_clause, traversed_prefixes, write_filter, FilterWriter,
};
use vigil_core::filter::{Condition, ExprOp, ExprSql, Filter, JsonType, Operand};
use vigil_core::{Direction, FieldPath};

pub(crate) use vigil_core::backend::sql::Scope;

/// SQL text with its parameters, in order.
#[derive(Debug, Default)]
pub(crate) struct Sql {
    pub text: String,
    pub params: Vec<SqlValue>,
    /// Inside `$elemMatch` over documents: the JSON element paths are read from.
    base: Option<String>,
    /// Subquery aliases handed out, so nested ones never shadow each other.
    aliases: usize,
}

/// The scope of `collection`, listing its listeners.
pub(crate) fn load_scope(
    conn: &rusqlite::Connection,
    collection: &str,
) -> vigil_core::Result<Scope> {
    let mut stmt = conn
        .prepare_cached("SELECT id, json_extract(record, '$.key'), json_extract(record, '$.model') FROM vigil_listeners WHERE collection = ? ORDER BY id")
        .map_err(crate::error::db_err("reading listeners"))?;
    let rows = stmt
        .query_map([collection], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<(i64, String, String)>>>())
        .map_err(crate::error::db_err("reading listeners"))?;
    let mut scope = Scope::plain(table(collection));
    for (id, key, model) in rows {
        scope.add_listener(id, key, model);
    }
    Ok(scope)
}

/// SQL for the `_outputs` column of a row: `[listener id, doc, hex(blobs)]` triples as a
/// JSON array, or None without listeners.
pub(crate) fn outputs_column(scope: &Scope) -> Option<String> {
    if scope.outputs.is_empty() {
        return None;
    }
    Some(format!(
        "(SELECT json_group_array(json_array(o.listener, o.doc, hex(o.blobs))) FROM vigil_outputs o \
         WHERE o.listener IN ({}) AND o.doc_id = {}.id)",
        scope.listener_ids(),
        scope.table
    ))
}

impl Sql {
    /// `prefix` (e.g. `SELECT … WHERE `) followed by the compiled filter.
    pub fn with_filter(prefix: String, f: &Filter, scope: &Scope) -> Sql {
        let mut s = Sql {
            text: prefix,
            ..Sql::default()
        };
        filter(f, scope, &mut s);
        s
    }

    fn push(&mut self, s: &str) {
        self.text.push_str(s);
    }

    fn bind(&mut self, v: SqlValue) {
        self.params.push(v);
        self.text.push('?');
    }
}

/// The SQL expressions that read a path's value and its JSON type.
pub(crate) struct Accessor {
    value: String,
    kind: String,
}

/// The JSON path literals a field path may mean (quoted segments: names are validated, and no
/// quote can break out of the literal): a segment of digits names a field of an
/// object or an element of an array (`tags.0`), as in MongoDB (and as PostgreSQL's `#>` reads
/// it). At one level a value is either an object or an array, so at most one of them exists.
fn json_paths(path: &FieldPath) -> Vec<String> {
    let mut out = vec![String::from("'$")];
    for seg in path.segments() {
        let index = seg.parse::<u32>().is_ok() && !(seg.len() > 1 && seg.starts_with('0'));
        let mut next = Vec::with_capacity(out.len() * 2);
        for p in &out {
            next.push(format!("{p}.\"{seg}\""));
            if index {
                next.push(format!("{p}[{seg}]"));
            }
        }
        out = next;
    }
    out.into_iter().map(|p| p + "'").collect()
}

/// `f(doc, path)` over every meaning of `path`, the first that exists.
pub(crate) fn doc_function(f: &str, doc: &str, path: &FieldPath) -> String {
    let paths = json_paths(path);
    if paths.len() == 1 {
        return format!("{f}({doc},{})", paths[0]);
    }
    let calls: Vec<String> = paths.iter().map(|p| format!("{f}({doc},{p})")).collect();
    format!("COALESCE({})", calls.join(","))
}

/// The JSON path literal of segments under a prefix segment list.
fn json_path_of<'a>(segments: impl IntoIterator<Item = &'a String>) -> String {
    let mut s = String::from("'$");
    for seg in segments {
        s.push_str(".\"");
        s.push_str(seg);
        s.push('"');
    }
    s.push('\'');
    s
}

pub(crate) fn accessor(path: &FieldPath, scope: &Scope) -> Accessor {
    let segs = path.segments();
    if segs[0] == vigil_core::OUTPUTS_FIELD {
        // Outputs live in vigil_outputs, one row per (listener, document), the value under
        // `v`; a path no listener produces is a missing field.
        let Some((listener, rest)) = scope.output(&segs[1..]) else {
            return Accessor {
                value: "NULL".into(),
                kind: "NULL".into(),
            };
        };
        let v = String::from("v");
        let p = json_path_of(std::iter::once(&v).chain(rest));
        let sub = |f: &str| {
            format!(
                "(SELECT {f}(o.doc,{p}) FROM vigil_outputs o WHERE o.listener = {listener} AND o.doc_id = {}.id)",
                scope.table
            )
        };
        return Accessor {
            value: sub("json_extract"),
            kind: sub("json_type"),
        };
    }
    if path.is_id() {
        Accessor {
            value: "id".into(),
            kind: "typeof(id)".into(),
        }
    } else {
        Accessor {
            value: doc_function("json_extract", "doc", path),
            kind: doc_function("json_type", "doc", path),
        }
    }
}

/// The expressions an index on `path` is built over (JSON type, value); they must be the very
/// text filters use, or SQLite will not match them. The type comes first so that a filter's
/// element term (`json_type = 'array'`) is an index search too.
pub(crate) fn index_expressions(path: &FieldPath) -> (String, String) {
    let a = accessor(path, &Scope::default());
    (a.kind, a.value)
}

fn scalar(v: &Json) -> Option<SqlValue> {
    match v {
        Json::Number(n) => Some(match n.as_i64() {
            Some(i) => SqlValue::Integer(i),
            None => SqlValue::Real(n.as_f64().unwrap_or(0.0)),
        }),
        Json::String(s) => Some(SqlValue::Text(s.clone())),
        _ => None,
    }
}

const NUMBER_TYPES: &str = "('integer','real')";

/// A filter's SQL, written into `out` with the paths resolved against `scope`.
pub(crate) fn filter(f: &Filter, scope: &Scope, out: &mut Sql) {
    write_filter(f, scope, out);
}

/// Each condition's SQL; [`write_filter`] writes the boolean structure around them.
impl FilterWriter for Sql {
    const TRUE: &'static str = "1";
    const FALSE: &'static str = "0";
    const NOT_CLOSE: &'static str = ",0))";

    fn push(&mut self, text: &str) {
        self.text.push_str(text);
    }

    fn condition(&mut self, scope: &Scope, path: &FieldPath, condition: &Condition) {
        let out = self;
        if let Some(base) = out.base.clone() {
            return through_arrays(out, &base, path, condition, 0);
        }
        if path.segments().len() == 1
            || path.is_id()
            || path.segments()[0] == vigil_core::OUTPUTS_FIELD
        {
            return field(&accessor(path, scope), condition, out);
        }
        through_arrays(out, "doc", path, condition, 0);
    }

    fn compare(&mut self, scope: &Scope, op: ExprOp, left: &Operand, right: &Operand) {
        let (l, r) = (side(left, scope), side(right, scope));
        compare(self, op, &l, &r);
    }
}

/// A field as an `$expr` operand reads it. A dotted path is MongoDB's aggregation reading,
/// not the query one: through arrays it collects what the elements hold, and a number is a
/// field name, not an index (`$tags.0` is not the first tag).
fn expr_accessor(path: &FieldPath, scope: &Scope) -> Accessor {
    let segs = path.segments();
    if segs.len() == 1 || path.is_id() || segs[0] == vigil_core::OUTPUTS_FIELD {
        return accessor(path, scope);
    }
    // Segments are validated field names (no quotes), so the literal needs no escaping.
    let at = format!("vigil_expr_path(doc,'{}')", segs.join("."));
    Accessor {
        value: format!("json_extract({at},'$')"),
        kind: format!("json_type({at})"),
    }
}

/// An `$expr` operand: a field's value and type-order rank, or a constant.
enum Side {
    Field { value: String, rank: String },
    Const { value: Option<SqlValue>, rank: u8 },
}

/// MongoDB's order of types, for the `$expr` comparisons: missing 0, null 1, numbers 2,
/// strings 3, objects 4, arrays 5, booleans 6.
fn side(operand: &Operand, scope: &Scope) -> Side {
    match operand {
        Operand::Path(path) => {
            let Accessor { value, kind } = expr_accessor(path, scope);
            let rank = format!(
                "(CASE WHEN {kind} IS NULL THEN 0 WHEN {kind} = 'null' THEN 1 \
                 WHEN {kind} IN ('integer','real') THEN 2 WHEN {kind} = 'text' THEN 3 \
                 WHEN {kind} = 'object' THEN 4 WHEN {kind} = 'array' THEN 5 ELSE 6 END)"
            );
            // Objects and arrays compare by MongoDB's order, not their JSON text.
            let value = format!(
                "(CASE WHEN {kind} IN ('object','array') THEN vigil_sort_key({value}) ELSE {value} END)"
            );
            Side::Field { value, rank }
        }
        Operand::Literal(v) => match v {
            Json::Bool(b) => Side::Const {
                value: Some(SqlValue::Integer(i64::from(*b))),
                rank: 6,
            },
            Json::Number(_) => Side::Const {
                value: scalar(v),
                rank: 2,
            },
            Json::String(_) => Side::Const {
                value: scalar(v),
                rank: 3,
            },
            _ => Side::Const {
                value: None,
                rank: 1,
            },
        },
    }
}

fn rank(out: &mut Sql, s: &Side) {
    match s {
        Side::Field { rank, .. } => out.push(rank),
        Side::Const { rank, .. } => out.push(&rank.to_string()),
    }
}

fn value(out: &mut Sql, s: &Side) {
    match s {
        Side::Field { value, .. } => out.push(value),
        Side::Const { value: Some(v), .. } => out.bind(v.clone()),
        Side::Const { value: None, .. } => out.push("NULL"),
    }
}

/// `l op r` by type order, then by value within a type (numbers across integer and real;
/// strings bytewise; booleans false < true; objects and arrays by MongoDB's order, as keys). Missing
/// and null have one value each. Never NULL, so negations need no care.
fn compare(out: &mut Sql, op: ExprOp, l: &Side, r: &Side) {
    let ExprSql {
        strict,
        with_equal,
        value_op: sql_op,
        negate,
    } = op.sql();
    out.push(if negate { "(NOT (" } else { "((" });
    if let Some(s) = strict {
        rank(out, l);
        out.push(&format!(" {s} "));
        rank(out, r);
        out.push(") OR (");
    }
    rank(out, l);
    out.push(" = ");
    rank(out, r);
    out.push(" AND (");
    rank(out, l);
    out.push(if with_equal { " <= 1 OR " } else { " > 1 AND " });
    out.push("COALESCE(");
    value(out, l);
    out.push(&format!(" {sql_op} "));
    value(out, r);
    out.push(", 0))))");
}

fn equals(a: &Accessor, v: &Json, out: &mut Sql) {
    let Accessor { value, kind } = a;
    match v {
        Json::Null => out.push(&format!("({kind} IS NULL OR {kind}='null')")),
        Json::Bool(b) => out.push(&format!("({kind}='{b}')")),
        Json::Number(_) | Json::String(_) => {
            out.push(&format!("({value}="));
            out.bind(scalar(v).expect("number or string"));
            let types = if v.is_number() {
                NUMBER_TYPES
            } else {
                "('text')"
            };
            out.push(&format!(" AND {kind} IN {types})"));
        }
        Json::Array(_) | Json::Object(_) => {
            let t = if v.is_array() { "array" } else { "object" };
            out.push(&format!("({kind}='{t}' AND {value}=json("));
            out.bind(SqlValue::Text(v.to_string()));
            out.push("))");
        }
    }
}

/// A condition on a dotted path under the JSON `base`, as MongoDB reads it: on the value at the
/// path (and its elements), or, where a prefix of the path is an array, on the rest of the path
/// in one of its documents (`n.b` reaches `{"n": [{"b": 1}]}`), recursively. A null match
/// (the value missing) counts at the end of the path only where no prefix is an array: in
/// an array, each document stands alone. Each array term tests the prefix's type first,
/// which an index on the prefix's type answers.
fn through_arrays(
    out: &mut Sql,
    base: &str,
    path: &FieldPath,
    condition: &Condition,
    depth: usize,
) {
    let n = path.segments().len();
    let direct = Accessor {
        value: doc_function("json_extract", base, path),
        kind: doc_function("json_type", base, path),
    };
    let prefixes = array_prefixes(path);
    out.push("(");
    if condition.matches_missing() && !prefixes.is_empty() {
        out.push("(");
        for (_, p) in &prefixes {
            out.push(&format!(
                "COALESCE({} != 'array', 1) AND ",
                doc_function("json_type", base, p)
            ));
        }
        field(&direct, condition, out);
        out.push(")");
    } else {
        field(&direct, condition, out);
    }
    for (k, prefix) in &traversed_prefixes(path) {
        let alias = format!("t{depth}_{k}");
        let rest = path.sub(*k..n).expect("k < n");
        out.push(&format!(
            " OR ({} = 'array' AND EXISTS (SELECT 1 FROM json_each({}) {alias} WHERE {alias}.type = 'object' AND ",
            doc_function("json_type", base, prefix),
            doc_function("json_extract", base, prefix),
        ));
        through_arrays(out, &format!("{alias}.value"), &rest, condition, depth + 1);
        out.push("))");
    }
    out.push(")");
}

/// A condition on a field, as MongoDB reads it: the value satisfies it, or the value is an
/// array and one of its elements does (`{"tags": "x"}` matches `["x", "y"]`). The element
/// test is its own `OR` term on `json_type = 'array'`, which the index (type first) answers,
/// so indexed filters stay index searches.
fn field(a: &Accessor, condition: &Condition, out: &mut Sql) {
    // `$exists` and `$size` are about the field itself, never its elements.
    if !condition.reaches_elements() {
        return value_condition(a, condition, out);
    }
    out.push("(");
    value_condition(a, condition, out);
    out.push(&format!(
        " OR ({} = 'array' AND EXISTS (SELECT 1 FROM json_each({}) e WHERE ",
        a.kind, a.value
    ));
    let element = Accessor {
        value: "e.value".into(),
        kind: "e.type".into(),
    };
    value_condition(&element, condition, out);
    out.push(")))");
}

fn value_condition(a: &Accessor, condition: &Condition, out: &mut Sql) {
    match condition {
        Condition::Eq(v) => equals(a, v, out),
        Condition::Cmp(ord, v) => {
            out.push(&format!("({} {} ", a.value, ord.sql()));
            out.bind(scalar(v).expect("parser allows only numbers and strings"));
            let types = if v.is_number() {
                NUMBER_TYPES
            } else {
                "('text')"
            };
            out.push(&format!(" AND {} IN {types})", a.kind));
        }
        Condition::In(items) => {
            // Scalars of one type share one `IN (…)` list, so a long $in stays one expression
            // (SQLite limits expression depth, not list length).
            let numbers: Vec<&Json> = items.iter().filter(|v| v.is_number()).collect();
            let strings: Vec<&Json> = items.iter().filter(|v| v.is_string()).collect();
            let mut first = true;
            out.push("(");
            let mut sep = |out: &mut Sql| {
                if !std::mem::take(&mut first) {
                    out.push(" OR ");
                }
            };
            for (group, types) in [(&numbers, NUMBER_TYPES), (&strings, "('text')")] {
                if group.is_empty() {
                    continue;
                }
                sep(out);
                out.push(&format!("({} IN (", a.value));
                for (i, v) in group.iter().enumerate() {
                    if i > 0 {
                        out.push(",");
                    }
                    out.bind(scalar(v).expect("grouped by type"));
                }
                out.push(&format!(") AND {} IN {types})", a.kind));
            }
            for v in items.iter().filter(|v| !(v.is_number() || v.is_string())) {
                sep(out);
                equals(a, v, out);
            }
            if first {
                out.push("0");
            }
            out.push(")");
        }
        Condition::Exists(true) => out.push(&format!("({} IS NOT NULL)", a.kind)),
        Condition::Exists(false) => out.push(&format!("({} IS NULL)", a.kind)),
        // CASE, not AND: SQLite may evaluate either side of an AND first (it does under
        // NOT), and json_array_length on a string is an error.
        Condition::Size(n) => out.push(&format!(
            "(CASE WHEN {} = 'array' THEN json_array_length({}) = {n} ELSE 0 END)",
            a.kind, a.value
        )),
        Condition::Type(types) => {
            let names: Vec<&str> = types
                .iter()
                .flat_map(|t| match t {
                    JsonType::Double => &["'real'"][..],
                    JsonType::Int => &["'integer'"],
                    JsonType::String => &["'text'"],
                    JsonType::Object => &["'object'"],
                    JsonType::Array => &["'array'"],
                    JsonType::Bool => &["'true'", "'false'"],
                    JsonType::Null => &["'null'"],
                })
                .copied()
                .collect();
            out.push(&format!("({} IN ({}))", a.kind, names.join(",")));
        }
        Condition::ElemMatch(conditions) => {
            out.push(&format!(
                "({} = 'array' AND EXISTS (SELECT 1 FROM json_each({}) em WHERE ",
                a.kind, a.value
            ));
            let element = Accessor {
                value: "em.value".into(),
                kind: "em.type".into(),
            };
            for (i, c) in conditions.iter().enumerate() {
                if i > 0 {
                    out.push(" AND ");
                }
                value_condition(&element, c, out);
            }
            out.push("))");
        }
        Condition::ElemMatchDocument(f) => {
            out.aliases += 1;
            let alias = format!("emd{}", out.aliases);
            out.push(&format!(
                "({} = 'array' AND EXISTS (SELECT 1 FROM json_each({}) {alias} WHERE {alias}.type = 'object' AND ",
                a.kind, a.value
            ));
            let outer = out.base.replace(format!("{alias}.value"));
            write_filter(f, &Scope::default(), out);
            out.base = outer;
            out.push("))");
        }
        // The `regex` crate, through the function every connection registers.
        Condition::Regex(r) => {
            out.push(&format!("({} = 'text' AND vigil_regex(", a.kind));
            out.bind(SqlValue::Text(r.engine_pattern().to_string()));
            out.push(&format!(", {}))", a.value));
        }
        // Divisor and remainder are integers, written as such.
        Condition::Mod(d, r) => out.push(&format!(
            "({} IN {NUMBER_TYPES} AND (CAST({} AS INTEGER) % {d}) = {r})",
            a.kind, a.value
        )),
    }
}

/// MongoDB's rank of a JSON type name (as `json_type` and `json_each` write them): null and
/// missing 1, numbers 2, strings 3, objects 4, arrays `array` (5 for an array element),
/// booleans 8; `empty`, the marker [`reached`] writes for an empty array, 0. A simple `CASE`,
/// so the type is computed once per row.
fn sort_rank(kind: &str, array: &str) -> String {
    format!(
        "(CASE {kind} WHEN 'integer' THEN 2 WHEN 'real' THEN 2 WHEN 'text' THEN 3 \
         WHEN 'object' THEN 4 WHEN 'true' THEN 8 WHEN 'false' THEN 8 WHEN 'array' THEN {array} \
         WHEN 'empty' THEN 0 ELSE 1 END)"
    )
}

/// The key objects and arrays sort by within their rank (NULL for other types): MongoDB's
/// field-by-field and element-by-element order, which their JSON text does not follow.
fn composite_key(kind: &str, value: &str) -> String {
    format!("(CASE WHEN {kind} IN ('object','array') THEN vigil_sort_key({value}) END)")
}

/// `ORDER BY …` in MongoDB's order, ending with insertion order so results are deterministic:
/// types first (missing and null, numbers, strings, objects, arrays, booleans), then values
/// within a type (numbers across integer and real, strings bytewise, false before true). An
/// array sorts by its smallest element ascending and its largest descending; an empty array
/// before null. Objects and arrays compare by [`vigil_core::order::sort_key`].
pub(crate) fn order_by(sort: &[(FieldPath, Direction)], scope: &Scope, out: &mut Sql) {
    out.push(" ORDER BY ");
    for (path, dir) in sort {
        let Accessor { value, kind } = accessor(path, scope);
        let dir = match dir {
            Direction::Ascending => "ASC",
            Direction::Descending => "DESC",
        };
        // The element an array sorts by: the first in this direction, by rank then value.
        let element_rank = sort_rank("e.type", "5");
        let element_composite = composite_key("e.type", "e.value");
        let through = !path.is_id()
            && path.segments()[0] != vigil_core::OUTPUTS_FIELD
            && !array_prefixes(path).is_empty();
        if through {
            // A path through arrays of documents sorts by the values it reaches.
            let union = reached(path);
            let pick = |column: &str| {
                format!(
                    "(SELECT {column} FROM ({union}) e ORDER BY {element_rank} {dir}, {element_composite} {dir}, e.value {dir} LIMIT 1)"
                )
            };
            out.push(&format!(
                "(CASE WHEN {kind} = 'array' AND json_array_length({value}) = 0 THEN 0 \
                 ELSE COALESCE({}, 1) END) {dir}, {} {dir}, {} {dir}, ",
                pick(&element_rank),
                pick(&element_composite),
                pick("e.value")
            ));
            continue;
        }
        let pick = |column: &str| {
            format!(
                "(SELECT {column} FROM json_each({value}) e ORDER BY {element_rank} {dir}, {element_composite} {dir}, e.value {dir} LIMIT 1)"
            )
        };
        let rank = sort_rank(&kind, &format!("COALESCE({}, 0)", pick(&element_rank)));
        let composite = format!(
            "(CASE {kind} WHEN 'array' THEN {} WHEN 'object' THEN vigil_sort_key({value}) END)",
            pick(&element_composite)
        );
        let key = format!(
            "(CASE {kind} WHEN 'array' THEN {} ELSE {value} END)",
            pick("e.value")
        );
        out.push(&format!("{rank} {dir}, {composite} {dir}, {key} {dir}, "));
    }
    out.push("seq");
}

/// The values a path reaches through arrays of documents, as rows `(type, value)`: one
/// `SELECT` per choice of the array prefixes it steps into (`json_each` joins), an array at
/// the end giving its elements (an empty one the `empty` marker). A document lacking the rest
/// of the path adds nothing; a path that reaches nothing sorts as null, as MongoDB's sort
/// keys have it.
fn reached(path: &FieldPath) -> String {
    let segments = path.segments();
    let n = segments.len();
    let mut selects = Vec::new();
    for steps in vigil_core::backend::sql::array_prefix_choices(segments) {
        let mut from = Vec::new();
        let mut conditions = Vec::new();
        let mut base = String::from("doc");
        let mut start = 0;
        for (j, &k) in steps.iter().enumerate() {
            let prefix = path.sub(start..k).expect("start < k");
            let alias = format!("r{j}");
            from.push(format!(
                "json_each({}) {alias}",
                doc_function("json_extract", &base, &prefix)
            ));
            conditions.push(format!(
                "{} = 'array' AND {alias}.type = 'object'",
                doc_function("json_type", &base, &prefix)
            ));
            base = format!("{alias}.value");
            start = k;
        }
        let rest = path.sub(start..n).expect("start < n");
        let (t, v) = (
            doc_function("json_type", &base, &rest),
            doc_function("json_extract", &base, &rest),
        );
        let conditions = |extra: String| {
            let mut all = conditions.clone();
            all.push(extra);
            all.join(" AND ")
        };
        let from_clause = |extra: Option<String>| from_clause(&from, extra);
        selects.push(format!(
            "SELECT {t} AS type, {v} AS value{} WHERE {}",
            from_clause(None),
            conditions(format!("{t} IS NOT NULL AND {t} != 'array'"))
        ));
        selects.push(format!(
            "SELECT l.type AS type, l.value AS value{} WHERE {}",
            from_clause(Some(format!("json_each({v}) l"))),
            conditions(format!("{t} = 'array'"))
        ));
        // An empty array reached sorts below null, as MongoDB's undefined key does.
        selects.push(format!(
            "SELECT 'empty' AS type, NULL AS value{} WHERE {}",
            from_clause(None),
            conditions(format!(
                "(CASE WHEN {t} = 'array' THEN json_array_length({v}) = 0 ELSE 0 END)"
            ))
        ));
    }
    selects.join(" UNION ALL ")
}

/// A collection's table, quoted. Collection names are validated to `[A-Za-z][A-Za-z0-9_]*`, so
/// quoting is enough.
pub(crate) fn table(collection: &str) -> String {
    format!("\"{collection}\"")
}
