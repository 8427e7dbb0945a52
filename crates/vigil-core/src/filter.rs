//! Mongo-style filters: parsed and validated here, compiled to SQL (or to a driver's query
//! language) by each backend, and run inside the database.

use serde_json::Value as Json;

use crate::names::FieldPath;
use crate::{Error, Result};

pub use crate::regex::Regex;

/// A parsed filter. `Filter::all()` matches every document.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// Every sub-filter matches (an empty list matches everything).
    And(Vec<Filter>),
    /// At least one sub-filter matches (an empty list matches nothing).
    Or(Vec<Filter>),
    /// The sub-filter does not match. A missing field never matches a condition, so its
    /// negation does: `{"x": {"$ne": 1}}` matches documents without `x`, as in MongoDB.
    Not(Box<Filter>),
    /// A condition on the value at a path.
    Field {
        /// Where the value is.
        path: FieldPath,
        /// What it must satisfy.
        condition: Condition,
    },
    /// `{"$expr": {"$ne": ["$a", "$b"]}}`: two operands (fields of the same document, or
    /// constants) compared with MongoDB's aggregation rules: values of different types
    /// order by type (missing, null, numbers, strings, objects, arrays, booleans), numbers
    /// compare across integer and float, and a missing field equals only a missing field.
    Compare {
        /// The comparison.
        op: ExprOp,
        /// The left operand.
        left: Operand,
        /// The right operand.
        right: Operand,
    },
}

/// The comparison of a [`Filter::Compare`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExprOp {
    /// `$eq`
    Eq,
    /// `$ne`
    Ne,
    /// `$gt`
    Gt,
    /// `$gte`
    Gte,
    /// `$lt`
    Lt,
    /// `$lte`
    Lte,
}

/// How a backend writes an `$expr` comparison by MongoDB's rules: `l op r` holds when the
/// operands' type ranks compare `strict`ly (if the op has a strict part), or when the ranks
/// are equal and either the rank has a single value (missing, null) and `with_equal` holds,
/// or the values compare by `value_op`. `negate` wraps the whole in `NOT` (`$ne`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExprSql {
    /// The operator between ranks that decides alone (`<` for `$lt` and `$lte`), if any.
    pub strict: Option<&'static str>,
    /// Whether equal single-valued ranks (missing, null) satisfy the comparison.
    pub with_equal: bool,
    /// The operator between values of the same rank.
    pub value_op: &'static str,
    /// Whether the result is negated.
    pub negate: bool,
}

impl ExprOp {
    /// The parts of this comparison, for the SQL backends.
    pub fn sql(self) -> ExprSql {
        let (strict, with_equal, value_op) = match self {
            ExprOp::Eq | ExprOp::Ne => (None, true, "="),
            ExprOp::Lt => (Some("<"), false, "<"),
            ExprOp::Lte => (Some("<"), true, "<="),
            ExprOp::Gt => (Some(">"), false, ">"),
            ExprOp::Gte => (Some(">"), true, ">="),
        };
        ExprSql {
            strict,
            with_equal,
            value_op,
            negate: self == ExprOp::Ne,
        }
    }
}

/// One side of a [`Filter::Compare`].
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// The value at a path of the document (`"$a.b"` in the query).
    Path(FieldPath),
    /// A constant: null, a boolean, a number or a string.
    Literal(Json),
}

/// A condition on one field's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// Equal to the operand. `null` also matches a missing field. Arrays and objects compare
    /// as a whole, fields in order.
    Eq(Json),
    /// Ordered comparison against a number or a string; values of another type never match.
    Cmp(Ordering, Json),
    /// Equal to one of the operands.
    In(Vec<Json>),
    /// The field is present (true) or absent (false).
    Exists(bool),
    /// The field is an array of this many elements (`$size`).
    Size(u64),
    /// The value (or an element of an array value) has one of these JSON types (`$type`).
    Type(Vec<JsonType>),
    /// A number whose integer part divided by the divisor leaves the remainder (`$mod`,
    /// truncating as MongoDB does).
    Mod(i64, i64),
    /// The field is an array and one element satisfies every condition (`$elemMatch` with
    /// operators: `{"$gte": 3, "$lt": 5}`).
    ElemMatch(Vec<Condition>),
    /// The field is an array and one of its elements is a document the filter matches
    /// (`$elemMatch` over documents: `{"b": 1, "c": {"$gt": 2}}`, paths relative to the element).
    ElemMatchDocument(Box<Filter>),
    /// A string matching the regular expression (`$regex` with `$options`).
    Regex(Regex),
}

impl Condition {
    /// Whether an array satisfies the condition when one of its elements does, as MongoDB
    /// reads it; `$exists`, `$size` and `$elemMatch` are about the value itself.
    pub fn reaches_elements(&self) -> bool {
        !matches!(
            self,
            Condition::Exists(_)
                | Condition::Size(_)
                | Condition::ElemMatch(_)
                | Condition::ElemMatchDocument(_)
        )
    }

    /// Whether a missing value satisfies it (`null` equality, or `$in` holding null): through
    /// an array of documents, that is judged per document, not at the end of the path.
    pub fn matches_missing(&self) -> bool {
        match self {
            Condition::Eq(Json::Null) => true,
            Condition::In(items) => items.iter().any(Json::is_null),
            _ => false,
        }
    }
}

/// A type `$type` asks for, by MongoDB's name or number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonType {
    /// `"double"` (1): a number with a fraction or exponent as stored.
    Double,
    /// `"int"` (16) or `"long"` (18): an integer.
    Int,
    /// `"string"` (2).
    String,
    /// `"object"` (3).
    Object,
    /// `"array"` (4).
    Array,
    /// `"bool"` (8).
    Bool,
    /// `"null"` (10).
    Null,
}

impl JsonType {
    fn parse(v: &Json, at: &str) -> Result<Vec<JsonType>> {
        let one = |name: &str| -> Option<Vec<JsonType>> {
            Some(match name {
                "double" | "1" => vec![JsonType::Double],
                "int" | "long" | "16" | "18" => vec![JsonType::Int],
                "number" => vec![JsonType::Double, JsonType::Int],
                "string" | "2" => vec![JsonType::String],
                "object" | "3" => vec![JsonType::Object],
                "array" | "4" => vec![JsonType::Array],
                "bool" | "8" => vec![JsonType::Bool],
                "null" | "10" => vec![JsonType::Null],
                _ => return None,
            })
        };
        let name = |v: &Json| match v {
            Json::String(s) => one(s),
            Json::Number(n) => n.as_i64().and_then(|n| one(&n.to_string())),
            _ => None,
        };
        let items: Vec<&Json> = match v {
            Json::Array(items) if !items.is_empty() => items.iter().collect(),
            other => vec![other],
        };
        let mut out = Vec::new();
        for item in items {
            out.extend(name(item).ok_or_else(|| {
                operand(
                    "$type",
                    at,
                    "a type vigil stores: double, int, long, number, string, object, array, bool, null (or their numbers)",
                    item,
                )
            })?);
        }
        Ok(out)
    }
}

/// The comparison of a [`Condition::Cmp`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ordering {
    /// `$gt`
    Gt,
    /// `$gte`
    Gte,
    /// `$lt`
    Lt,
    /// `$lte`
    Lte,
}

impl Ordering {
    /// The SQL operator.
    pub fn sql(self) -> &'static str {
        match self {
            Ordering::Gt => ">",
            Ordering::Gte => ">=",
            Ordering::Lt => "<",
            Ordering::Lte => "<=",
        }
    }
}

/// Operators known to MongoDB that vigil does not run; named in the error so the user knows
/// it was understood, not mistyped.
const KNOWN_UNSUPPORTED: &[&str] = &[
    "$where",
    "$text",
    "$jsonSchema",
    "$near",
    "$geoWithin",
    "$bitsAllSet",
    "$comment",
];

impl Filter {
    /// The filter that matches every document.
    pub fn all() -> Filter {
        Filter::And(Vec::new())
    }

    /// Whether this is the match-everything filter.
    pub fn is_all(&self) -> bool {
        matches!(self, Filter::And(v) if v.is_empty())
    }

    /// Every field path the filter reads, in order of appearance (repeats included).
    pub fn paths(&self) -> Vec<&FieldPath> {
        let mut out = Vec::new();
        fn walk<'a>(f: &'a Filter, out: &mut Vec<&'a FieldPath>) {
            match f {
                Filter::And(parts) | Filter::Or(parts) => parts.iter().for_each(|p| walk(p, out)),
                Filter::Not(inner) => walk(inner, out),
                Filter::Field { path, .. } => out.push(path),
                Filter::Compare { left, right, .. } => {
                    for side in [left, right] {
                        if let Operand::Path(p) = side {
                            out.push(p);
                        }
                    }
                }
            }
        }
        walk(self, &mut out);
        out
    }

    /// Parses a Mongo-style filter document.
    pub fn parse(json: &Json) -> Result<Filter> {
        crate::depth::check_json(json, "the filter")?;
        parse_document(json, "")
    }
}

fn unsupported(operator: &str, path: &str) -> Error {
    Error::UnsupportedOperator {
        operator: operator.to_string(),
        path: path.to_string(),
        backend: None,
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

fn parse_document(json: &Json, at: &str) -> Result<Filter> {
    let Json::Object(map) = json else {
        return Err(Error::query(
            "filter",
            if at.is_empty() { "(root)" } else { at },
            format!("a filter is a JSON object, found {json}"),
        ));
    };
    let mut parts = Vec::with_capacity(map.len());
    for (key, value) in map {
        let here = join(at, key);
        match key.as_str() {
            "$and" | "$or" | "$nor" => {
                let Json::Array(items) = value else {
                    return Err(operand(key, &here, "an array of filters", value));
                };
                if items.is_empty() {
                    return Err(operand(key, &here, "a non-empty array of filters", value));
                }
                let subs = items
                    .iter()
                    .enumerate()
                    .map(|(i, f)| parse_document(f, &format!("{here}.{i}")))
                    .collect::<Result<Vec<_>>>()?;
                parts.push(match key.as_str() {
                    "$and" => Filter::And(subs),
                    "$or" => Filter::Or(subs),
                    _ => Filter::Not(Box::new(Filter::Or(subs))),
                });
            }
            "$not" => parts.push(Filter::Not(Box::new(parse_document(value, &here)?))),
            "$expr" => parts.push(parse_expr(value, &here)?),
            k if k.starts_with('$') => return Err(unsupported(k, &here)),
            _ => {
                let path = FieldPath::parse(key)?;
                parts.push(parse_field(path, value, &here)?);
            }
        }
    }
    Ok(if parts.len() == 1 {
        parts.pop().expect("one element")
    } else {
        Filter::And(parts)
    })
}

/// An `$expr`: a comparison of two operands, or `$and`/`$or`/`$not` of such.
fn parse_expr(value: &Json, at: &str) -> Result<Filter> {
    let Json::Object(map) = value else {
        return Err(operand(
            "$expr",
            at,
            "an expression object such as {\"$ne\": [\"$a\", \"$b\"]}",
            value,
        ));
    };
    if map.len() != 1 {
        return Err(operand(
            "$expr",
            at,
            "an object with exactly one operator",
            value,
        ));
    }
    let (op, args) = map.iter().next().expect("one entry");
    let here = join(at, op);
    let items = match args {
        Json::Array(items) => items.as_slice(),
        // `$not` takes one expression, as an array of one or on its own.
        other if op == "$not" => std::slice::from_ref(other),
        other => return Err(operand(op, &here, "an array of operands", other)),
    };
    let nested = |items: &[Json]| {
        items
            .iter()
            .enumerate()
            .map(|(i, e)| parse_expr(e, &format!("{here}.{i}")))
            .collect::<Result<Vec<_>>>()
    };
    let compare = |op| -> Result<Filter> {
        let [l, r] = items else {
            return Err(operand(
                map.keys().next().map(String::as_str).unwrap_or(""),
                &here,
                "an array of two operands",
                args,
            ));
        };
        Ok(Filter::Compare {
            op,
            left: expr_operand(l, &format!("{here}.0"))?,
            right: expr_operand(r, &format!("{here}.1"))?,
        })
    };
    match op.as_str() {
        "$eq" => compare(ExprOp::Eq),
        "$ne" => compare(ExprOp::Ne),
        "$gt" => compare(ExprOp::Gt),
        "$gte" => compare(ExprOp::Gte),
        "$lt" => compare(ExprOp::Lt),
        "$lte" => compare(ExprOp::Lte),
        "$and" if !items.is_empty() => Ok(Filter::And(nested(items)?)),
        "$or" if !items.is_empty() => Ok(Filter::Or(nested(items)?)),
        "$not" if items.len() == 1 => Ok(Filter::Not(Box::new(
            nested(items)?.pop().expect("one expression"),
        ))),
        "$and" | "$or" | "$not" => {
            Err(operand(op, &here, "a non-empty array of expressions", args))
        }
        other => Err(unsupported(other, &here)),
    }
}

/// `"$a.b"` is a field path; null, booleans, numbers and other strings are constants.
fn expr_operand(value: &Json, at: &str) -> Result<Operand> {
    match value {
        Json::String(s) if s.starts_with("$$") => Err(unsupported(s, at)),
        Json::String(s) if s.starts_with('$') => Ok(Operand::Path(FieldPath::parse(&s[1..])?)),
        Json::Null | Json::Bool(_) | Json::Number(_) | Json::String(_) => {
            Ok(Operand::Literal(value.clone()))
        }
        // A nested expression (`{"$add": …}`) or an array or object constant.
        Json::Object(m) if m.keys().next().is_some_and(|k| k.starts_with('$')) => Err(unsupported(
            m.keys().next().map(String::as_str).unwrap_or("$"),
            at,
        )),
        other => Err(operand(
            "$expr",
            at,
            "a field path (\"$a.b\") or a null, boolean, number or string constant",
            other,
        )),
    }
}

/// `$elemMatch`: conditions on one element (`{"$gte": 3, "$lt": 5}`), or, when the document
/// names fields or uses `$and`/`$or`/`$nor`, a filter over element documents.
fn parse_elem_match(arg: &Json, at: &str) -> Result<Condition> {
    let Json::Object(ops) = arg else {
        return Err(operand(
            "$elemMatch",
            at,
            "a document of operators ({\"$gte\": 3}) or of fields ({\"b\": 1})",
            arg,
        ));
    };
    if ops.is_empty() {
        return Err(operand("$elemMatch", at, "a non-empty document", arg));
    }
    let over_documents = ops
        .keys()
        .any(|k| !k.starts_with('$') || matches!(k.as_str(), "$and" | "$or" | "$nor" | "$expr"));
    if over_documents {
        let filter = parse_document(arg, at)?;
        // `$expr` reads the top-level document, never an element, as in MongoDB.
        fn has_expr(f: &Filter) -> bool {
            match f {
                Filter::And(p) | Filter::Or(p) => p.iter().any(has_expr),
                Filter::Not(inner) => has_expr(inner),
                Filter::Field { .. } => false,
                Filter::Compare { .. } => true,
            }
        }
        if has_expr(&filter) {
            return Err(Error::UnsupportedOperator {
                operator: "$expr".into(),
                path: format!("{at} (inside $elemMatch)"),
                backend: None,
            });
        }
        return Ok(Condition::ElemMatchDocument(Box::new(filter)));
    }
    let mut out = Vec::new();
    let path = FieldPath::parse("e")?;
    flatten_conditions(parse_field(path, arg, at)?, at, &mut out)?;
    Ok(Condition::ElemMatch(out))
}

/// The conditions of an operator document on one value, all of which must hold.
fn flatten_conditions(f: Filter, at: &str, out: &mut Vec<Condition>) -> Result<()> {
    match f {
        Filter::And(parts) => parts
            .into_iter()
            .try_for_each(|p| flatten_conditions(p, at, out)),
        Filter::Field { condition, .. } if !matches!(condition, Condition::ElemMatch(_)) => {
            out.push(condition);
            Ok(())
        }
        _ => Err(Error::UnsupportedOperator {
            operator: "$elemMatch".into(),
            path: format!("{at} (inside $elemMatch, only plain conditions such as $eq, $gt, $in and $regex run on each element, not $ne, $nin, $not or a nested $elemMatch)"),
            backend: None,
        }),
    }
}

fn operand(op: &str, at: &str, expected: &'static str, found: &Json) -> Error {
    Error::InvalidOperand {
        operator: op.to_string(),
        path: at.to_string(),
        expected,
        found: found.to_string(),
    }
}

fn is_operator_doc(value: &Json) -> bool {
    matches!(value, Json::Object(m) if m.keys().next().is_some_and(|k| k.starts_with('$')))
}

fn parse_field(path: FieldPath, value: &Json, at: &str) -> Result<Filter> {
    if !is_operator_doc(value) {
        check_plain(value, at)?;
        return Ok(Filter::Field {
            path,
            condition: Condition::Eq(value.clone()),
        });
    }
    let Json::Object(ops) = value else {
        unreachable!("is_operator_doc checked it is an object")
    };
    let mut parts = Vec::with_capacity(ops.len());
    for (op, arg) in ops {
        let here = format!("{at}.{op}");
        let field = |condition| Filter::Field {
            path: path.clone(),
            condition,
        };
        let part = match op.as_str() {
            "$eq" => {
                check_plain(arg, &here)?;
                field(Condition::Eq(arg.clone()))
            }
            "$ne" => {
                check_plain(arg, &here)?;
                Filter::Not(Box::new(field(Condition::Eq(arg.clone()))))
            }
            "$gt" | "$gte" | "$lt" | "$lte" => {
                if !(arg.is_number() || arg.is_string()) {
                    return Err(operand(op, &here, "a number or a string", arg));
                }
                let ord = match op.as_str() {
                    "$gt" => Ordering::Gt,
                    "$gte" => Ordering::Gte,
                    "$lt" => Ordering::Lt,
                    _ => Ordering::Lte,
                };
                field(Condition::Cmp(ord, arg.clone()))
            }
            "$in" | "$nin" => {
                let Json::Array(items) = arg else {
                    return Err(operand(op, &here, "an array", arg));
                };
                for (i, item) in items.iter().enumerate() {
                    check_plain(item, &format!("{here}.{i}"))?;
                }
                let cond = field(Condition::In(items.clone()));
                if op == "$in" {
                    cond
                } else {
                    Filter::Not(Box::new(cond))
                }
            }
            "$exists" => {
                let Json::Bool(b) = arg else {
                    return Err(operand(op, &here, "true or false", arg));
                };
                // `false` is the negation of `true`: through an array of documents, a field
                // is absent only when no element has it, as in MongoDB.
                if *b {
                    field(Condition::Exists(true))
                } else {
                    Filter::Not(Box::new(field(Condition::Exists(true))))
                }
            }
            // `{"$all": [a, b]}` is `a` and `b` each matched (as elements); an empty list
            // matches nothing, as in MongoDB.
            "$all" => {
                let Json::Array(items) = arg else {
                    return Err(operand(op, &here, "an array", arg));
                };
                for (i, item) in items.iter().enumerate() {
                    check_plain(item, &format!("{here}.{i}"))?;
                }
                if items.is_empty() {
                    Filter::Or(Vec::new())
                } else {
                    Filter::And(
                        items
                            .iter()
                            .map(|v| field(Condition::Eq(v.clone())))
                            .collect(),
                    )
                }
            }
            "$size" => match arg.as_u64() {
                Some(n) => field(Condition::Size(n)),
                None => return Err(operand(op, &here, "a non-negative integer", arg)),
            },
            "$type" => field(Condition::Type(JsonType::parse(arg, &here)?)),
            "$elemMatch" => field(parse_elem_match(arg, &here)?),
            "$regex" => {
                let Json::String(pattern) = arg else {
                    return Err(operand(op, &here, "a pattern string", arg));
                };
                let options = match ops.get("$options") {
                    None => "",
                    Some(Json::String(o)) => o.as_str(),
                    Some(other) => {
                        return Err(operand(
                            "$options",
                            &format!("{at}.$options"),
                            "a string of flags among i, m, s, x",
                            other,
                        ))
                    }
                };
                field(Condition::Regex(Regex::new(pattern, options, &here)?))
            }
            "$options" => {
                if !ops.contains_key("$regex") {
                    return Err(Error::query(
                        "filter",
                        &here,
                        "`$options` needs a `$regex` beside it",
                    ));
                }
                continue;
            }
            "$mod" => match arg.as_array().map(Vec::as_slice) {
                Some([d, r]) if d.as_i64().is_some_and(|d| d != 0) && r.as_i64().is_some() => {
                    field(Condition::Mod(
                        d.as_i64().unwrap_or(1),
                        r.as_i64().unwrap_or(0),
                    ))
                }
                _ => {
                    return Err(operand(
                        op,
                        &here,
                        "[divisor, remainder]: two integers, the divisor not 0",
                        arg,
                    ))
                }
            },
            "$not" => {
                if !is_operator_doc(arg) {
                    return Err(operand(
                        op,
                        &here,
                        "an operator document like {\"$gt\": 5}",
                        arg,
                    ));
                }
                Filter::Not(Box::new(parse_field(path.clone(), arg, &here)?))
            }
            o if o.starts_with('$') => {
                return Err(if KNOWN_UNSUPPORTED.contains(&o) {
                    unsupported(o, &here)
                } else {
                    Error::query("filter", &here, format!("unknown operator `{o}`"))
                })
            }
            other => {
                return Err(Error::query(
                    "filter",
                    at,
                    format!("an operator document cannot also hold the field `{other}`"),
                ))
            }
        };
        parts.push(part);
    }
    Ok(if parts.len() == 1 {
        parts.pop().expect("one element")
    } else {
        Filter::And(parts)
    })
}

/// An equality operand must be plain data: no `$`-keys anywhere inside it.
fn check_plain(value: &Json, at: &str) -> Result<()> {
    match value {
        Json::Object(m) => {
            for (k, v) in m {
                if k.starts_with('$') {
                    return Err(Error::query(
                        "filter",
                        at,
                        format!("`{k}` inside a value: operators belong at the top of a field's condition"),
                    ));
                }
                check_plain(v, &join(at, k))?;
            }
            Ok(())
        }
        Json::Array(items) => items.iter().try_for_each(|v| check_plain(v, at)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_operators_parse_into_a_tree() {
        let f = Filter::parse(
            &json!({"a.b": {"$gt": 1, "$lte": 5}, "$or": [{"c": 1}, {"d": {"$exists": false}}]}),
        )
        .unwrap();
        let Filter::And(parts) = f else {
            panic!("expected And, got {f:?}")
        };
        assert_eq!(parts.len(), 2);
        assert!(matches!(&parts[0], Filter::And(v) if v.len() == 2));
        assert!(matches!(&parts[1], Filter::Or(v) if v.len() == 2));
    }

    #[test]
    fn errors_name_the_operator_and_the_place() {
        let e = Filter::parse(&json!({"x": {"$in": 3}}))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("$in") && e.contains("x.$in") && e.contains("an array"),
            "{e}"
        );
        let e = Filter::parse(&json!({"name": {"$where": "1"}}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("unsupported operator `$where`"), "{e}");
        let e = Filter::parse(&json!({"name": {"$options": "i"}}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("needs a `$regex`"), "{e}");
        let e = Filter::parse(&json!({"a\"; DROP TABLE x; --": 1})).unwrap_err();
        assert!(matches!(e, Error::InvalidName { .. }), "{e}");
        let e = Filter::parse(&json!({"x": {"$gt": [1]}}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("a number or a string"), "{e}");
        let e = Filter::parse(&json!([1])).unwrap_err().to_string();
        assert!(e.contains("a filter is a JSON object"), "{e}");
    }
}
