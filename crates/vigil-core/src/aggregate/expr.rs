//! Aggregation expressions: `"$a.b"`, constants, and the operators people use in `$group`,
//! `$project` and `$addFields` (arithmetic, comparison, logic, `$cond`, `$ifNull`, `$size`,
//! `$concat`). Evaluated per document, in the process; a missing value stays missing (`None`)
//! so that `$project` leaves the field out, as MongoDB does.

use std::cmp::Ordering;

use serde_json::Value as Json;

use crate::order::compare_missing;
use crate::{Document, Error, FieldPath, Result, Value};

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// `"$a.b"`: the value at a path; through an array of documents, the array of their values.
    Path(FieldPath),
    /// A constant.
    Literal(Value),
    /// `{"a": <expr>, …}`: a document of expressions.
    Object(Vec<(String, Expr)>),
    /// `[<expr>, …]`: an array of expressions.
    Array(Vec<Expr>),
    /// `{"$op": [<expr>, …]}`.
    Op(Op, Vec<Expr>),
}

/// The operators an [`Expr::Op`] applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `$add`
    Add,
    /// `$subtract`
    Subtract,
    /// `$multiply`
    Multiply,
    /// `$divide`
    Divide,
    /// `$mod`
    Mod,
    /// `$abs`
    Abs,
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
    /// `$cmp`
    Cmp,
    /// `$and`
    And,
    /// `$or`
    Or,
    /// `$not`
    Not,
    /// `$cond`: if, then, else.
    Cond,
    /// `$ifNull`: the first operand neither null nor missing, else the last.
    IfNull,
    /// `$size`
    Size,
    /// `$concat`
    Concat,
}

impl Op {
    fn parse(name: &str) -> Option<(Op, usize, Option<usize>)> {
        // (operator, fewest operands, most operands)
        Some(match name {
            "$add" => (Op::Add, 0, None),
            "$subtract" => (Op::Subtract, 2, Some(2)),
            "$multiply" => (Op::Multiply, 0, None),
            "$divide" => (Op::Divide, 2, Some(2)),
            "$mod" => (Op::Mod, 2, Some(2)),
            "$abs" => (Op::Abs, 1, Some(1)),
            "$eq" => (Op::Eq, 2, Some(2)),
            "$ne" => (Op::Ne, 2, Some(2)),
            "$gt" => (Op::Gt, 2, Some(2)),
            "$gte" => (Op::Gte, 2, Some(2)),
            "$lt" => (Op::Lt, 2, Some(2)),
            "$lte" => (Op::Lte, 2, Some(2)),
            "$cmp" => (Op::Cmp, 2, Some(2)),
            "$and" => (Op::And, 0, None),
            "$or" => (Op::Or, 0, None),
            "$not" => (Op::Not, 1, Some(1)),
            "$cond" => (Op::Cond, 3, Some(3)),
            "$ifNull" => (Op::IfNull, 2, None),
            "$size" => (Op::Size, 1, Some(1)),
            "$concat" => (Op::Concat, 0, None),
            _ => return None,
        })
    }
}

fn invalid(at: &str, reason: impl Into<String>) -> Error {
    Error::query("pipeline", at, reason)
}

impl Expr {
    /// Parses an expression; `at` is its place in the pipeline, for errors.
    pub fn parse(json: &Json, at: &str) -> Result<Expr> {
        match json {
            Json::String(s) if s.starts_with("$$") => Err(Error::UnsupportedOperator {
                operator: s.clone(),
                path: at.to_string(),
                backend: None,
            }),
            Json::String(s) if s.starts_with('$') => Ok(Expr::Path(FieldPath::parse(&s[1..])?)),
            Json::Array(items) => Ok(Expr::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, e)| Expr::parse(e, &format!("{at}.{i}")))
                    .collect::<Result<_>>()?,
            )),
            Json::Object(map) => {
                let Some(first) = map.keys().next() else {
                    return Ok(Expr::Literal(Value::Object(Document::new())));
                };
                if !first.starts_with('$') {
                    let mut fields = Vec::with_capacity(map.len());
                    for (k, v) in map {
                        if k.starts_with('$') || k.contains('.') {
                            return Err(invalid(
                                at,
                                format!("`{k}`: a document of expressions names plain fields"),
                            ));
                        }
                        fields.push((k.clone(), Expr::parse(v, &format!("{at}.{k}"))?));
                    }
                    return Ok(Expr::Object(fields));
                }
                if map.len() != 1 {
                    return Err(invalid(
                        at,
                        "an operator expression holds exactly one operator",
                    ));
                }
                let (name, args) = map.iter().next().expect("one entry");
                let here = format!("{at}.{name}");
                if name == "$literal" {
                    return Ok(Expr::Literal(Value::from_json(args)));
                }
                let Some((op, least, most)) = Op::parse(name) else {
                    return Err(Error::UnsupportedOperator {
                        operator: name.clone(),
                        path: here,
                        backend: None,
                    });
                };
                let operands: Vec<Expr> = match (op, args) {
                    // `$cond` also takes {if, then, else}.
                    (Op::Cond, Json::Object(m)) => ["if", "then", "else"]
                        .iter()
                        .map(|k| {
                            let v = m
                                .get(*k)
                                .ok_or_else(|| invalid(&here, format!("`$cond` needs `{k}`")))?;
                            Expr::parse(v, &format!("{here}.{k}"))
                        })
                        .collect::<Result<_>>()?,
                    (_, Json::Array(items)) => items
                        .iter()
                        .enumerate()
                        .map(|(i, e)| Expr::parse(e, &format!("{here}.{i}")))
                        .collect::<Result<_>>()?,
                    (_, one) => vec![Expr::parse(one, &here)?],
                };
                if operands.len() < least || most.is_some_and(|m| operands.len() > m) {
                    let expected = match most {
                        Some(m) if m == least => format!("{least}"),
                        Some(m) => format!("{least} to {m}"),
                        None => format!("at least {least}"),
                    };
                    return Err(invalid(
                        &here,
                        format!(
                            "`{name}` takes {expected} operands, found {}",
                            operands.len()
                        ),
                    ));
                }
                Ok(Expr::Op(op, operands))
            }
            other => Ok(Expr::Literal(Value::from_json(other))),
        }
    }

    /// The expression's value for `doc`; `None` when missing. Errors are type errors
    /// (`$add` of a string) and division by zero, named with `at`.
    pub fn eval(&self, doc: &Document, at: &str) -> Result<Option<Value>> {
        Ok(match self {
            Expr::Path(p) => field_value(doc, p.segments()),
            Expr::Literal(v) => Some(v.clone()),
            Expr::Object(fields) => {
                let mut out = Document::new();
                for (k, e) in fields {
                    if let Some(v) = e.eval(doc, at)? {
                        out.insert(k.clone(), v);
                    }
                }
                Some(Value::Object(out))
            }
            Expr::Array(items) => Some(Value::Array(
                items
                    .iter()
                    .map(|e| Ok(e.eval(doc, at)?.unwrap_or(Value::Null)))
                    .collect::<Result<_>>()?,
            )),
            Expr::Op(op, args) => apply(*op, args, doc, at)?,
        })
    }
}

/// The value at a path as an aggregation reads it: through an array, the array of the values
/// found in its elements (documents missing the field contribute nothing).
pub(crate) fn field_value(doc: &Document, segments: &[String]) -> Option<Value> {
    let first = doc.get(&segments[0])?;
    descend(first, &segments[1..])
}

fn descend(value: &Value, rest: &[String]) -> Option<Value> {
    if rest.is_empty() {
        return Some(value.clone());
    }
    match value {
        Value::Object(d) => descend(d.get(&rest[0])?, &rest[1..]),
        Value::Array(items) => Some(Value::Array(
            items.iter().filter_map(|v| descend(v, rest)).collect(),
        )),
        _ => None,
    }
}

/// [`field_value`] on a document's JSON text form, for backends that evaluate `$expr` paths
/// in SQL: SQLite calls it from a registered function, so the two readings cannot drift.
pub fn json_field_value(json: &Json, segments: &[String]) -> Option<Json> {
    fn descend(value: &Json, rest: &[String]) -> Option<Json> {
        let Some((first, rest_after)) = rest.split_first() else {
            return Some(value.clone());
        };
        match value {
            Json::Object(map) => descend(map.get(first)?, rest_after),
            Json::Array(items) => Some(Json::Array(
                items.iter().filter_map(|v| descend(v, rest)).collect(),
            )),
            _ => None,
        }
    }
    descend(json, segments)
}

/// MongoDB's truthiness: false, null, missing and zero are false; everything else is true.
pub(crate) fn truthy(v: &Option<Value>) -> bool {
    match v {
        None | Some(Value::Null) | Some(Value::Bool(false)) => false,
        Some(Value::Int(0)) => false,
        Some(Value::Float(f)) => *f != 0.0,
        _ => true,
    }
}

fn type_name(v: &Option<Value>) -> String {
    match v {
        None => "missing".into(),
        Some(v) => v.kind(),
    }
}

fn is_nullish(v: &Option<Value>) -> bool {
    matches!(v, None | Some(Value::Null))
}

fn apply(op: Op, args: &[Expr], doc: &Document, at: &str) -> Result<Option<Value>> {
    let values =
        || -> Result<Vec<Option<Value>>> { args.iter().map(|e| e.eval(doc, at)).collect() };
    let compare = |o: fn(Ordering) -> bool| -> Result<Option<Value>> {
        let v = values()?;
        Ok(Some(Value::Bool(o(compare_missing(
            v[0].as_ref(),
            v[1].as_ref(),
        )))))
    };
    match op {
        Op::Add | Op::Multiply => {
            let v = values()?;
            if v.iter().any(is_nullish) {
                return Ok(Some(Value::Null));
            }
            let mut acc = Value::Int(if op == Op::Add { 0 } else { 1 });
            for x in &v {
                acc = arithmetic(op, &acc, x, at)?;
            }
            Ok(Some(acc))
        }
        Op::Subtract | Op::Divide | Op::Mod => {
            let v = values()?;
            if v.iter().any(is_nullish) {
                return Ok(Some(Value::Null));
            }
            Ok(Some(arithmetic(
                op,
                v[0].as_ref().expect("present"),
                &v[1],
                at,
            )?))
        }
        Op::Abs => {
            let v = values()?.remove(0);
            Ok(match v {
                None | Some(Value::Null) => Some(Value::Null),
                Some(Value::Int(i)) => Some(match i.checked_abs() {
                    Some(a) => Value::Int(a),
                    None => Value::Float((i as f64).abs()),
                }),
                Some(Value::Float(f)) => Some(Value::Float(f.abs())),
                other => {
                    return Err(invalid(
                        at,
                        format!("`$abs` takes a number, found {}", type_name(&other)),
                    ))
                }
            })
        }
        Op::Eq => compare(|o| o == Ordering::Equal),
        Op::Ne => compare(|o| o != Ordering::Equal),
        Op::Gt => compare(|o| o == Ordering::Greater),
        Op::Gte => compare(|o| o != Ordering::Less),
        Op::Lt => compare(|o| o == Ordering::Less),
        Op::Lte => compare(|o| o != Ordering::Greater),
        Op::Cmp => {
            let v = values()?;
            Ok(Some(Value::Int(
                match compare_missing(v[0].as_ref(), v[1].as_ref()) {
                    Ordering::Less => -1,
                    Ordering::Equal => 0,
                    Ordering::Greater => 1,
                },
            )))
        }
        Op::And => {
            for e in args {
                if !truthy(&e.eval(doc, at)?) {
                    return Ok(Some(Value::Bool(false)));
                }
            }
            Ok(Some(Value::Bool(true)))
        }
        Op::Or => {
            for e in args {
                if truthy(&e.eval(doc, at)?) {
                    return Ok(Some(Value::Bool(true)));
                }
            }
            Ok(Some(Value::Bool(false)))
        }
        Op::Not => Ok(Some(Value::Bool(!truthy(&args[0].eval(doc, at)?)))),
        Op::Cond => {
            let branch = if truthy(&args[0].eval(doc, at)?) {
                1
            } else {
                2
            };
            args[branch].eval(doc, at)
        }
        Op::IfNull => {
            let (last, rest) = args.split_last().expect("at least two");
            for e in rest {
                let v = e.eval(doc, at)?;
                if !is_nullish(&v) {
                    return Ok(v);
                }
            }
            last.eval(doc, at)
        }
        Op::Size => match args[0].eval(doc, at)? {
            Some(Value::Array(items)) => Ok(Some(Value::Int(items.len() as i64))),
            other => Err(invalid(
                at,
                format!("`$size` takes an array, found {}", type_name(&other)),
            )),
        },
        Op::Concat => {
            let mut out = String::new();
            for v in values()? {
                match v {
                    None | Some(Value::Null) => return Ok(Some(Value::Null)),
                    Some(Value::String(s)) => out.push_str(&s),
                    other => {
                        return Err(invalid(
                            at,
                            format!("`$concat` takes strings, found {}", type_name(&other)),
                        ))
                    }
                }
            }
            Ok(Some(Value::String(out)))
        }
    }
}

/// Integer arithmetic stays integer while it fits (as MongoDB's ints widen to longs, then to
/// doubles); `$divide` always gives a double.
fn arithmetic(op: Op, a: &Value, b: &Option<Value>, at: &str) -> Result<Value> {
    let name = match op {
        Op::Add => "$add",
        Op::Subtract => "$subtract",
        Op::Multiply => "$multiply",
        Op::Divide => "$divide",
        _ => "$mod",
    };
    let (x, y) = match (a, b) {
        (Value::Int(_) | Value::Float(_), Some(b @ (Value::Int(_) | Value::Float(_)))) => (a, b),
        _ => {
            let bad = if matches!(a, Value::Int(_) | Value::Float(_)) {
                type_name(b)
            } else {
                a.kind()
            };
            return Err(invalid(at, format!("`{name}` takes numbers, found {bad}")));
        }
    };
    if matches!(op, Op::Divide | Op::Mod) && y.as_f64() == Some(0.0) {
        return Err(invalid(at, format!("`{name}` by zero")));
    }
    if let (Value::Int(i), Value::Int(j)) = (x, y) {
        let exact = match op {
            Op::Add => i.checked_add(*j),
            Op::Subtract => i.checked_sub(*j),
            Op::Multiply => i.checked_mul(*j),
            Op::Mod => i.checked_rem(*j),
            _ => None,
        };
        if let Some(v) = exact {
            return Ok(Value::Int(v));
        }
    }
    let (f, g) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
    Ok(Value::Float(match op {
        Op::Add => f + g,
        Op::Subtract => f - g,
        Op::Multiply => f * g,
        Op::Divide => f / g,
        _ => f % g,
    }))
}
