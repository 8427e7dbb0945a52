//! Filters and sorts compiled to PostgreSQL over the `doc` column, stored as `json` so that
//! field order survives (jsonb would sort keys) and U+0000 can be stored (jsonb and text
//! cannot hold it).
//! Paths are inlined as text-array literals (their charset is validated); every value is a
//! bound parameter, passed as text and cast in SQL.

use serde_json::Value as Json;
use vigil_core::backend::sql::{
    array_prefixes, from_clause, traversed_prefixes, write_filter, FilterWriter,
};
use vigil_core::filter::{Condition, ExprOp, ExprSql, Filter, JsonType, Operand};
use vigil_core::{Direction, FieldPath};

pub(crate) use vigil_core::backend::sql::Scope;

/// A bound parameter.
#[derive(Debug, Clone)]
pub(crate) enum Param {
    Text(String),
    Int(i64),
    TextArray(Vec<String>),
}

impl Param {
    pub fn as_sql(&self) -> &(dyn postgres::types::ToSql + Sync) {
        match self {
            Param::Text(s) => s,
            Param::Int(i) => i,
            Param::TextArray(a) => a,
        }
    }
}

/// SQL text with its parameters, in order.
#[derive(Debug, Default, Clone)]
pub(crate) struct Sql {
    pub text: String,
    pub params: Vec<Param>,
    /// Inside `$elemMatch` over documents: the `json` element paths are read from.
    base: Option<String>,
    /// Subquery aliases handed out, so nested ones never shadow each other.
    aliases: usize,
    /// A `$regex` PostgreSQL cannot say, found while compiling: where, and why.
    refused: Option<String>,
}

/// SQL for the `_outputs` column of a row: `[listener id, doc, hex(blobs)]` triples as JSON
/// text, or None without listeners.
pub(crate) fn outputs_column(scope: &Scope) -> Option<String> {
    if scope.outputs.is_empty() {
        return None;
    }
    Some(format!(
        "(SELECT json_agg(json_build_array(o.listener, o.doc::text, encode(o.blobs, 'hex'))) FROM vigil_outputs o \
         WHERE o.listener IN ({}) AND o.doc_id = {}.id)::text",
        scope.listener_ids(),
        scope.table
    ))
}

impl Sql {
    pub fn new(text: impl Into<String>) -> Sql {
        Sql {
            text: text.into(),
            ..Sql::default()
        }
    }

    /// `prefix` followed by the compiled filter.
    pub fn with_filter(prefix: String, f: &Filter, scope: &Scope) -> vigil_core::Result<Sql> {
        let mut s = Sql::new(prefix);
        filter(f, scope, &mut s)?;
        Ok(s)
    }

    pub fn push(&mut self, s: &str) {
        self.text.push_str(s);
    }

    /// Binds a parameter and appends its placeholder with `cast` (e.g. `::text::jsonb`).
    pub fn bind(&mut self, p: Param, cast: &str) {
        self.params.push(p);
        self.text.push_str(&format!("${}{cast}", self.params.len()));
    }

    pub fn params(&self) -> Vec<&(dyn postgres::types::ToSql + Sync)> {
        self.params.iter().map(Param::as_sql).collect()
    }
}

/// The text-array literal of path segments, e.g. `'{a,b}'`. Segments hold only
/// `[A-Za-z0-9_-]`, so nothing can break out of the literal or need quoting inside it.
pub(crate) fn path_literal<'a>(segments: impl IntoIterator<Item = &'a String>) -> String {
    let segs: Vec<&str> = segments.into_iter().map(String::as_str).collect();
    format!("'{{{}}}'", segs.join(","))
}

/// The `json` value at a path (NULL when missing). Values are compared through `json`, never
/// `jsonb` or text: PostgreSQL text cannot hold U+0000, which JSON strings may, and a `json`
/// value's text is its JSON text with escapes intact.
pub(crate) fn accessor(path: &FieldPath, scope: &Scope) -> String {
    let segs = path.segments();
    if segs[0] == vigil_core::OUTPUTS_FIELD {
        let Some((listener, rest)) = scope.output(&segs[1..]) else {
            return "NULL::json".into();
        };
        let v = String::from("v");
        return format!(
            "(SELECT o.doc #> {} FROM vigil_outputs o WHERE o.listener = {listener} AND o.doc_id = {}.id)",
            path_literal(std::iter::once(&v).chain(rest)),
            scope.table
        );
    }
    if path.is_id() {
        return format!("({}::json)", without_nul("id"));
    }
    format!(
        "({}::json #> {})",
        without_nul("doc::text"),
        path_literal(segs)
    )
}

/// JSON text with `\u0000` escapes turned into `\u0001`: PostgreSQL refuses to take apart a
/// JSON value holding U+0000, so for comparisons U+0000 counts as U+0001 (operands get the
/// same change). What is stored, and read back, is untouched.
fn without_nul(text: &str) -> String {
    format!("replace({text}, '\\u0000', '\\u0001')")
}

/// An operand's JSON text with the same change as [`without_nul`].
fn operand_text(operand: &Json) -> String {
    operand.to_string().replace("\\u0000", "\\u0001")
}

/// A JSON number as `numeric` (NULL for other types).
pub(crate) fn number(v: &str) -> String {
    format!("(CASE WHEN json_typeof({v}) = 'number' THEN ({v})::text::numeric END)")
}

/// A JSON string as text, for ordering (NULL for other types).
fn string(v: &str) -> String {
    format!("(CASE WHEN json_typeof({v}) = 'string' THEN {v} #>> '{{}}' END)")
}

/// The expressions indexes on `path` are built over: numbers, the JSON text (for strings,
/// booleans, arrays and objects), and the JSON type (so that a filter's array-element term is
/// an index scan too). They must be the very text filters use.
pub(crate) fn index_expressions(path: &FieldPath) -> [String; 3] {
    let v = accessor(path, &Scope::default());
    [
        number(&v),
        format!("({v})::text"),
        format!("json_typeof({v})"),
    ]
}

fn equals(v: &str, operand: &Json, out: &mut Sql) {
    match operand {
        Json::Null => out.push(&format!("({v} IS NULL OR json_typeof({v}) = 'null')")),
        Json::Number(_) => {
            out.push(&format!("({} = ", number(v)));
            out.bind(Param::Text(operand.to_string()), "::text::numeric");
            out.push(")");
        }
        _ => {
            // Strings, booleans, arrays and objects compare as their compact JSON text, which
            // is how vigil stores them (arrays and objects as a whole, fields in order).
            let t = match operand {
                Json::Bool(_) => "boolean",
                Json::String(_) => "string",
                Json::Array(_) => "array",
                _ => "object",
            };
            out.push(&format!("(json_typeof({v}) = '{t}' AND ({v})::text = "));
            out.bind(Param::Text(operand_text(operand)), "::text");
            out.push(")");
        }
    }
}

/// `_id` equal to strings or integers compares the stored id text itself, so the id's unique
/// index answers (a worker's batch is `{"_id": {"$in": [...]}}`). False if the condition is
/// of another kind.
fn id_lookup(condition: &Condition, out: &mut Sql) -> bool {
    let plain = |v: &Json| v.is_string() || v.is_i64();
    match condition {
        Condition::Eq(v) if plain(v) => {
            out.push("(id = ");
            out.bind(Param::Text(v.to_string()), "::text");
            out.push(")");
            true
        }
        Condition::In(items) if !items.is_empty() && items.iter().all(plain) => {
            out.push("(id IN (");
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(", ");
                }
                out.bind(Param::Text(v.to_string()), "::text");
            }
            out.push("))");
            true
        }
        _ => false,
    }
}

/// A filter's SQL, written into `out` with the paths resolved against `scope`.
pub(crate) fn filter(f: &Filter, scope: &Scope, out: &mut Sql) -> vigil_core::Result<()> {
    write_filter(f, scope, out);
    match out.refused.take() {
        Some(path) => Err(vigil_core::Error::UnsupportedOperator {
            operator: "$regex".into(),
            path,
            backend: Some("postgres"),
        }),
        None => Ok(()),
    }
}

/// Each condition's SQL; [`write_filter`] writes the boolean structure around them.
impl FilterWriter for Sql {
    const TRUE: &'static str = "TRUE";
    const FALSE: &'static str = "FALSE";
    const NOT_CLOSE: &'static str = ", FALSE))";

    fn push(&mut self, text: &str) {
        self.text.push_str(text);
    }

    fn condition(&mut self, scope: &Scope, path: &FieldPath, condition: &Condition) {
        let out = self;
        if let Some(base) = out.base.clone() {
            return through_arrays(out, &base, path, condition, 0);
        }
        if path.is_id() && id_lookup(condition, out) {
            return;
        }
        let segments = path.segments();
        if segments.len() == 1 || path.is_id() || segments[0] == vigil_core::OUTPUTS_FIELD {
            return field(out, &accessor(path, scope), condition);
        }
        through_arrays(out, &doc_root(), path, condition, 0);
    }

    fn compare(&mut self, scope: &Scope, op: ExprOp, left: &Operand, right: &Operand) {
        fn side<'a>(o: &'a Operand, scope: &Scope) -> Side<'a> {
            match o {
                // `_id` as its JSON value, so it ranks and compares like any field.
                Operand::Path(p) => Side::Field(expr_accessor(p, scope)),
                Operand::Literal(v) => Side::Const(v),
            }
        }
        let (l, r) = (side(left, scope), side(right, scope));
        compare(self, op, &l, &r);
    }
}

/// A field as an `$expr` operand reads it. A dotted path is MongoDB's aggregation reading,
/// not the query one: through arrays it collects what the elements hold, and a number is a
/// field name, not an index (`$tags.0` is not the first tag).
fn expr_accessor(path: &FieldPath, scope: &Scope) -> String {
    let segs = path.segments();
    if segs.len() == 1 || path.is_id() || segs[0] == vigil_core::OUTPUTS_FIELD {
        return accessor(path, scope);
    }
    format!("vigil_expr_path({}, {})", doc_root(), path_literal(segs))
}

/// The document as `json`, as every document path reads it.
fn doc_root() -> String {
    format!("{}::json", without_nul("doc::text"))
}

/// The `json` value at `path` under `base` (the very text of [`accessor`] for the document).
fn at(base: &str, path: &FieldPath) -> String {
    format!("({base} #> {})", path_literal(path.segments()))
}

/// The document's value at `path`, as filters read it (for indexes).
pub(crate) fn at_document(path: &FieldPath) -> String {
    at(&doc_root(), path)
}

/// A condition on the value `v`, as MongoDB reads it: the value satisfies it, or it is an
/// array and one of its elements does (`$exists`, `$size` and `$elemMatch` are about the value
/// itself). `json_typeof` is indexed, so indexed filters stay index scans (a BitmapOr of the
/// value's index and the type's).
fn field(out: &mut Sql, v: &str, condition: &Condition) {
    if !condition.reaches_elements() {
        return value_condition(v, condition, out);
    }
    out.push("(");
    value_condition(v, condition, out);
    out.push(&format!(
        " OR (json_typeof({v}) = 'array' AND EXISTS (SELECT 1 FROM json_array_elements({v}) e WHERE "
    ));
    value_condition("e", condition, out);
    out.push(")))");
}

/// A condition on a dotted path under `base`, as MongoDB reads it: on the value at the path,
/// or, where a prefix is an array, on the rest of the path in one of its documents,
/// recursively; a null match at the end counts only where no prefix is an array. As in the
/// SQLite backend.
fn through_arrays(
    out: &mut Sql,
    base: &str,
    path: &FieldPath,
    condition: &Condition,
    depth: usize,
) {
    let n = path.segments().len();
    let direct = at(base, path);
    let prefixes = array_prefixes(path);
    out.push("(");
    if condition.matches_missing() && !prefixes.is_empty() {
        out.push("(");
        for (_, p) in &prefixes {
            out.push(&format!(
                "COALESCE(json_typeof({}) <> 'array', TRUE) AND ",
                at(base, p)
            ));
        }
        field(out, &direct, condition);
        out.push(")");
    } else {
        field(out, &direct, condition);
    }
    for (k, prefix) in &traversed_prefixes(path) {
        let alias = format!("t{depth}_{k}");
        let array = at(base, prefix);
        let rest = path.sub(*k..n).expect("k < n");
        out.push(&format!(
            " OR (json_typeof({array}) = 'array' AND EXISTS (SELECT 1 FROM json_array_elements({array}) {alias} \
             WHERE json_typeof({alias}) = 'object' AND "
        ));
        through_arrays(out, &alias, &rest, condition, depth + 1);
        out.push("))");
    }
    out.push(")");
}

/// One condition on one `json` value `v`.
fn value_condition(v: &str, condition: &Condition, out: &mut Sql) {
    {
        match condition {
            Condition::Eq(operand) => equals(v, operand, out),
            Condition::Cmp(ord, operand) => {
                if operand.is_number() {
                    out.push(&format!("({} {} ", number(v), ord.sql()));
                    out.bind(Param::Text(operand.to_string()), "::text::numeric");
                } else {
                    out.push(&format!("({} COLLATE \"C\" {} ", string(v), ord.sql()));
                    let text = operand.as_str().unwrap_or_default().replace('\0', "\u{1}");
                    out.bind(Param::Text(text), "::text");
                }
                out.push(")");
            }
            Condition::In(items) => {
                // One membership test per type, each reading the value once: a long `$in`
                // stays one hashed array lookup per row.
                let numbers: Vec<String> = items
                    .iter()
                    .filter(|v| v.is_number())
                    .map(Json::to_string)
                    .collect();
                let strings: Vec<String> = items
                    .iter()
                    .filter(|v| v.is_string())
                    .map(operand_text)
                    .collect();
                let mut terms = 0;
                out.push("(");
                if !numbers.is_empty() {
                    out.push(&format!("{} = ANY(", number(v)));
                    out.bind(Param::TextArray(numbers), "::text[]::numeric[]");
                    out.push(")");
                    terms += 1;
                }
                if !strings.is_empty() {
                    if terms > 0 {
                        out.push(" OR ");
                    }
                    out.push(&format!(
                        "(json_typeof({v}) = 'string' AND ({v})::text = ANY("
                    ));
                    out.bind(Param::TextArray(strings), "::text[]");
                    out.push("))");
                    terms += 1;
                }
                for item in items.iter().filter(|v| !(v.is_number() || v.is_string())) {
                    if terms > 0 {
                        out.push(" OR ");
                    }
                    equals(v, item, out);
                    terms += 1;
                }
                if terms == 0 {
                    out.push("FALSE");
                }
                out.push(")");
            }
            Condition::Exists(true) => out.push(&format!("({v} IS NOT NULL)")),
            Condition::Exists(false) => out.push(&format!("({v} IS NULL)")),
            Condition::Size(n) => out.push(&format!(
                "(json_typeof({v}) = 'array' AND json_array_length({v}) = {n})"
            )),
            Condition::Type(types) => {
                // json has one number type: a double is stored with a fraction or exponent.
                let tests: Vec<String> = types
                    .iter()
                    .map(|t| match t {
                        JsonType::Double => {
                            format!("(json_typeof({v}) = 'number' AND ({v})::text ~ '[.eE]')")
                        }
                        JsonType::Int => {
                            format!("(json_typeof({v}) = 'number' AND ({v})::text !~ '[.eE]')")
                        }
                        JsonType::String => format!("json_typeof({v}) = 'string'"),
                        JsonType::Object => format!("json_typeof({v}) = 'object'"),
                        JsonType::Array => format!("json_typeof({v}) = 'array'"),
                        JsonType::Bool => format!("json_typeof({v}) = 'boolean'"),
                        JsonType::Null => format!("json_typeof({v}) = 'null'"),
                    })
                    .collect();
                out.push(&format!("({})", tests.join(" OR ")));
            }
            Condition::ElemMatch(conditions) => {
                out.push(&format!(
                    "(json_typeof({v}) = 'array' AND EXISTS (SELECT 1 FROM json_array_elements({v}) em WHERE "
                ));
                for (i, c) in conditions.iter().enumerate() {
                    if i > 0 {
                        out.push(" AND ");
                    }
                    value_condition("em", c, out);
                }
                out.push("))");
            }
            Condition::ElemMatchDocument(f) => {
                out.aliases += 1;
                let alias = format!("emd{}", out.aliases);
                out.push(&format!(
                    "(json_typeof({v}) = 'array' AND EXISTS (SELECT 1 FROM json_array_elements({v}) {alias} \
                     WHERE json_typeof({alias}) = 'object' AND "
                ));
                let outer = out.base.replace(alias);
                write_filter(f, &Scope::default(), out);
                out.base = outer;
                out.push("))");
            }
            Condition::Regex(r) => match crate::regex::translate(r.engine_pattern()) {
                Ok(pattern) => {
                    out.push(&format!("({} ~ ", string(v)));
                    out.bind(Param::Text(pattern), "::text");
                    out.push(")");
                }
                Err(why) => {
                    out.push("FALSE");
                    out.refused.get_or_insert(format!(
                        "/{}/{} ({why} has no PostgreSQL equivalent)",
                        r.pattern(),
                        r.options()
                    ));
                }
            },
            // Divisor and remainder are integers, written as such; `mod` truncates as MongoDB.
            Condition::Mod(d, r) => out.push(&format!("(mod(trunc({}), {d}) = {r})", number(v))),
        }
    }
}

/// An `$expr` operand: a field's `json` value, or a constant of a known type.
enum Side<'a> {
    Field(String),
    Const(&'a Json),
}

/// MongoDB's order of types: missing 0, null 1, numbers 2, strings 3, objects 4, arrays 5,
/// booleans 6.
fn rank(side: &Side) -> String {
    match side {
        Side::Field(v) => format!(
            "(CASE WHEN {v} IS NULL THEN 0 ELSE (CASE json_typeof({v}) WHEN 'null' THEN 1 \
             WHEN 'number' THEN 2 WHEN 'string' THEN 3 WHEN 'object' THEN 4 WHEN 'array' THEN 5 \
             ELSE 6 END) END)"
        ),
        Side::Const(Json::Null) => "1".into(),
        Side::Const(Json::Number(_)) => "2".into(),
        Side::Const(Json::String(_)) => "3".into(),
        Side::Const(_) => "6".into(),
    }
}

/// `l op r` for two values of the same rank: numbers as numeric, strings bytewise, booleans
/// false < true (as their text), objects and arrays by their JSON text.
fn same_rank_compare(out: &mut Sql, l: &Side, r: &Side, op: &str) {
    match (l, r) {
        (Side::Field(a), Side::Field(b)) => out.push(&format!(
            "(CASE json_typeof({a}) WHEN 'number' THEN {} {op} {} \
             WHEN 'string' THEN {} COLLATE \"C\" {op} {} COLLATE \"C\" \
             WHEN 'boolean' THEN ({a})::text COLLATE \"C\" {op} ({b})::text COLLATE \"C\" \
             ELSE vigil_sort_key({a}) {op} vigil_sort_key({b}) END)",
            number(a),
            number(b),
            string(a),
            string(b)
        )),
        (Side::Field(v), Side::Const(c)) | (Side::Const(c), Side::Field(v)) => {
            let field_first = matches!(l, Side::Field(_));
            let (field, constant): (String, (Param, &str)) = match c {
                Json::Number(_) => (number(v), (Param::Text(c.to_string()), "::text::numeric")),
                Json::String(text) => (
                    format!("{} COLLATE \"C\"", string(v)),
                    (
                        Param::Text(text.replace('\0', "\u{1}")),
                        "::text COLLATE \"C\"",
                    ),
                ),
                Json::Null => {
                    out.push("NULL::boolean");
                    return;
                }
                _ => (
                    format!("({v})::text"),
                    (Param::Text(c.to_string()), "::text"),
                ),
            };
            if field_first {
                out.push(&format!("{field} {op} "));
                out.bind(constant.0, constant.1);
            } else {
                out.bind(constant.0, constant.1);
                out.push(&format!(" {op} {field}"));
            }
        }
        (Side::Const(_), Side::Const(_)) => {
            // Two constants: compared here, where their types are known.
            out.push(&format!("({})", const_compare(l, r, op)));
        }
    }
}

fn const_compare(l: &Side, r: &Side, op: &str) -> &'static str {
    use std::cmp::Ordering as O;
    let (Side::Const(a), Side::Const(b)) = (l, r) else {
        return "FALSE";
    };
    let ord = match (a, b) {
        (Json::Number(x), Json::Number(y)) => x
            .as_f64()
            .zip(y.as_f64())
            .and_then(|(x, y)| x.partial_cmp(&y)),
        (Json::String(x), Json::String(y)) => Some(x.as_bytes().cmp(y.as_bytes())),
        (Json::Bool(x), Json::Bool(y)) => Some(x.cmp(y)),
        _ => Some(O::Equal),
    };
    let holds = match (ord, op) {
        (Some(o), "=") => o == O::Equal,
        (Some(o), "<") => o == O::Less,
        (Some(o), "<=") => o != O::Greater,
        (Some(o), ">") => o == O::Greater,
        (Some(o), ">=") => o != O::Less,
        _ => false,
    };
    if holds {
        "TRUE"
    } else {
        "FALSE"
    }
}

/// `l op r` by MongoDB's type order, then by value within a type. Never NULL.
fn compare(out: &mut Sql, op: ExprOp, l: &Side, r: &Side) {
    let ExprSql {
        strict,
        with_equal,
        value_op: sql_op,
        negate,
    } = op.sql();
    let (rl, rr) = (rank(l), rank(r));
    out.push(if negate { "(NOT (" } else { "((" });
    if let Some(s) = strict {
        out.push(&format!("{rl} {s} {rr}) OR ("));
    }
    out.push(&format!("{rl} = {rr} AND ({rl}"));
    out.push(if with_equal { " <= 1 OR " } else { " > 1 AND " });
    out.push("COALESCE(");
    same_rank_compare(out, l, r, sql_op);
    out.push(", FALSE))))");
}

/// MongoDB's rank of a `json` value's type: missing and null 1, numbers 2, strings 3,
/// objects 4, arrays 5, booleans 8.
fn sort_rank(v: &str) -> String {
    format!(
        "(CASE WHEN {v} IS NULL THEN 1 ELSE (CASE json_typeof({v}) WHEN 'null' THEN 1 \
         WHEN 'number' THEN 2 WHEN 'string' THEN 3 WHEN 'object' THEN 4 WHEN 'array' THEN 5 \
         ELSE 8 END) END)"
    )
}

/// The keys a `json` value sorts by within its rank: numbers, strings bytewise, booleans by
/// their text (`false` before `true`), objects and arrays by `vigil_sort_key` (MongoDB's
/// field-by-field and element-by-element order).
fn sort_keys(v: &str, dir: &str) -> String {
    format!(
        "{} {dir}, {} COLLATE \"C\" {dir}, \
         (CASE WHEN json_typeof({v}) = 'boolean' THEN ({v})::text END) COLLATE \"C\" {dir}, \
         (CASE WHEN json_typeof({v}) IN ('object', 'array') THEN vigil_sort_key({v}) END) {dir}",
        number(v),
        string(v)
    )
}

/// `ORDER BY …` in MongoDB's order, ending with insertion order: types first (missing and
/// null, numbers, strings, objects, arrays, booleans), then values within a type. An array
/// sorts by its smallest element ascending and its largest descending; an empty array before
/// null. As in the SQLite backend.
pub(crate) fn order_by(sort: &[(FieldPath, Direction)], scope: &Scope, out: &mut Sql) {
    out.push(" ORDER BY ");
    for (path, dir) in sort {
        let v = accessor(path, scope);
        let dir = match dir {
            Direction::Ascending => "ASC",
            Direction::Descending => "DESC",
        };
        let segments = path.segments();
        if !path.is_id()
            && segments[0] != vigil_core::OUTPUTS_FIELD
            && !array_prefixes(path).is_empty()
        {
            // A path through arrays of documents sorts by the values it reaches.
            let rank = format!("COALESCE(r.z, {})", sort_rank("r.e"));
            let pick = |column: &str| {
                format!(
                    "(SELECT {column} FROM ({}) r ORDER BY {rank} {dir}, {} LIMIT 1)",
                    reached(path),
                    sort_keys("r.e", dir)
                )
            };
            out.push(&format!(
                "(CASE WHEN json_typeof({v}) = 'array' AND json_array_length({v}) = 0 THEN 0 \
                 ELSE COALESCE({}, 1) END) {dir}, {}, ",
                pick(&rank),
                sort_keys(&pick("r.e"), dir)
            ));
            continue;
        }
        let element = format!(
            "(SELECT e FROM json_array_elements({v}) e ORDER BY {} {dir}, {} LIMIT 1)",
            sort_rank("e"),
            sort_keys("e", dir)
        );
        let key = format!("(CASE WHEN json_typeof({v}) = 'array' THEN {element} ELSE {v} END)");
        out.push(&format!(
            "(CASE WHEN json_typeof({v}) = 'array' AND json_array_length({v}) = 0 THEN 0 \
             WHEN json_typeof({v}) = 'array' THEN {} ELSE {} END) {dir}, {}, ",
            sort_rank(&element),
            sort_rank(&v),
            sort_keys(&key, dir)
        ));
    }
    out.push("seq");
}

/// The elements of `v` when it is an array, none otherwise (never an error on other types).
fn elements(v: &str) -> String {
    format!(
        "json_array_elements(CASE WHEN json_typeof({v}) = 'array' THEN {v} ELSE '[]'::json END)"
    )
}

/// The values a path reaches through arrays of documents, as rows `(e json, z int)`: one
/// `SELECT` per choice of the array prefixes it steps into, an array at the end giving its
/// elements (an empty one a row ranked `z` 0, below null); a document lacking the rest of
/// the path adds nothing, and a path that reaches nothing sorts as null. As in the SQLite
/// backend.
fn reached(path: &FieldPath) -> String {
    let segments = path.segments();
    let n = segments.len();
    let mut selects = Vec::new();
    for steps in vigil_core::backend::sql::array_prefix_choices(segments) {
        let mut from = Vec::new();
        let mut conditions = vec![String::from("TRUE")];
        let mut base = doc_root();
        let mut start = 0;
        for (j, &k) in steps.iter().enumerate() {
            let prefix = path.sub(start..k).expect("start < k");
            let alias = format!("r{j}");
            from.push(format!("{} {alias}", elements(&at(&base, &prefix))));
            conditions.push(format!("json_typeof({alias}) = 'object'"));
            base = alias;
            start = k;
        }
        let rest = path.sub(start..n).expect("start < n");
        let leaf = at(&base, &rest);
        let from_clause = |extra: Option<String>| from_clause(&from, extra);
        let conditions = conditions.join(" AND ");
        selects.push(format!(
            "SELECT {leaf} AS e, NULL::int AS z{} WHERE {conditions} \
             AND {leaf} IS NOT NULL AND json_typeof({leaf}) <> 'array'",
            from_clause(None)
        ));
        selects.push(format!(
            "SELECT l AS e, NULL::int AS z{} WHERE {conditions}",
            from_clause(Some(format!("{} l", elements(&leaf))))
        ));
        // An empty array reached sorts below null (rank `z` 0), as MongoDB's undefined key.
        selects.push(format!(
            "SELECT '[]'::json AS e, 0 AS z{} WHERE {conditions} AND (CASE WHEN \
             json_typeof({leaf}) = 'array' THEN json_array_length({leaf}) = 0 ELSE FALSE END)",
            from_clause(None)
        ));
    }
    selects.join(" UNION ALL ")
}

/// A collection's table, quoted. Collection names are validated to `[A-Za-z][A-Za-z0-9_]*`, so
/// quoting is enough.
pub(crate) fn table(collection: &str) -> String {
    format!("\"{collection}\"")
}
