//! Filters judged in the process, for what cannot run in the database: an aggregation's
//! `$match` after a stage that reshaped the documents (`$unwind`, `$group`, `$project`).
//!
//! The rules are the ones the SQL backends compile (`vigil_core::backend::sql` and each
//! backend's `sql.rs`), written once more over [`Value`]s, so that a `$match` answers the same
//! wherever it runs; the conformance suite runs every filter case both ways.

use std::cmp::Ordering;

use serde_json::Value as Json;

use crate::aggregate::expr::field_value;
use crate::backend::sql::array_prefix_lengths;
use crate::filter::{Condition, ExprOp, JsonType, Operand, Ordering as Cmp};
use crate::order::{compare, compare_missing, equal};
use crate::{Document, Filter, Value, OUTPUTS_FIELD};

impl Filter {
    /// Whether `doc` matches, by MongoDB's rules: an array matches a condition when one of its
    /// elements does, a dotted path reaches into arrays of documents, digit segments index
    /// arrays, null matches a missing field, and comparisons never cross types.
    pub fn matches(&self, doc: &Document) -> bool {
        match self {
            Filter::And(parts) => parts.iter().all(|p| p.matches(doc)),
            Filter::Or(parts) => parts.iter().any(|p| p.matches(doc)),
            Filter::Not(inner) => !inner.matches(doc),
            Filter::Field { path, condition } => {
                let segments = path.segments();
                if segments.len() == 1 || segments[0] == OUTPUTS_FIELD {
                    field(lookup_document(doc, segments), condition)
                } else {
                    through_arrays(doc, segments, condition)
                }
            }
            Filter::Compare { op, left, right } => {
                let side = |o: &Operand| match o {
                    Operand::Path(p) => field_value(doc, p.segments()),
                    Operand::Literal(v) => Some(Value::from_json(v)),
                };
                let o = compare_missing(side(left).as_ref(), side(right).as_ref());
                match op {
                    ExprOp::Eq => o == Ordering::Equal,
                    ExprOp::Ne => o != Ordering::Equal,
                    ExprOp::Gt => o == Ordering::Greater,
                    ExprOp::Gte => o != Ordering::Less,
                    ExprOp::Lt => o == Ordering::Less,
                    ExprOp::Lte => o != Ordering::Greater,
                }
            }
        }
    }
}

/// Whether a segment indexes an array: digits without a leading zero.
fn is_index(segment: &str) -> Option<usize> {
    if segment.len() > 1 && segment.starts_with('0') {
        return None;
    }
    segment.parse::<u32>().ok().map(|i| i as usize)
}

/// The value at a path of a document without reaching through arrays: a digit segment indexes
/// an array.
pub(crate) fn lookup_document<'v>(doc: &'v Document, segments: &[String]) -> Option<&'v Value> {
    let (first, rest) = segments.split_first()?;
    lookup(doc.get(first)?, rest)
}

fn lookup<'v>(mut value: &'v Value, segments: &[String]) -> Option<&'v Value> {
    for segment in segments {
        value = match value {
            Value::Object(d) => d.get(segment)?,
            Value::Array(items) => items.get(is_index(segment)?)?,
            _ => return None,
        };
    }
    Some(value)
}

/// The condition on a dotted path: on the value at the path (and its elements), or, where a
/// prefix is an array, on the rest of the path in one of its documents. A missing value
/// matches (`null`) at the end of the path only where no prefix is an array.
fn through_arrays(base: &Document, segments: &[String], condition: &Condition) -> bool {
    let blocking = array_prefix_lengths(segments);
    let is_array =
        |k: usize| matches!(lookup_document(base, &segments[..k]), Some(Value::Array(_)));
    let direct = lookup_document(base, segments);
    let direct_counts = !condition.matches_missing() || !blocking.iter().any(|&k| is_array(k));
    if direct_counts && field(direct, condition) {
        return true;
    }
    // Every prefix, a digit one too: see `traversed_prefixes`.
    (1..segments.len()).any(|k| {
        let Some(Value::Array(items)) = lookup_document(base, &segments[..k]) else {
            return false;
        };
        items.iter().any(|item| match item {
            Value::Object(d) => through_arrays(d, &segments[k..], condition),
            _ => false,
        })
    })
}

/// The values a path reaches, as sorts read them: the value at the path (an array's
/// elements), and through each array of documents on the way, the values its documents
/// reach; an empty array reaches `None` (MongoDB's undefined key, below null). A document
/// lacking the rest of the path adds nothing: a path that reaches nothing sorts as null.
pub(crate) fn reached<'v>(
    base: &'v Document,
    segments: &[String],
    out: &mut Vec<Option<&'v Value>>,
) {
    let prefixes = array_prefix_lengths(segments);
    match lookup_document(base, segments) {
        // An empty array reaches MongoDB's undefined key, below null: `None` says so.
        Some(Value::Array(items)) if items.is_empty() => out.push(None),
        Some(Value::Array(items)) => out.extend(items.iter().map(Some)),
        Some(v) => out.push(Some(v)),
        None => {}
    }
    for &k in &prefixes {
        if let Some(Value::Array(items)) = lookup_document(base, &segments[..k]) {
            for item in items {
                if let Value::Object(d) = item {
                    reached(d, &segments[k..], out);
                }
            }
        }
    }
}

/// The value satisfies the condition, or it is an array and one of its elements does.
fn field(value: Option<&Value>, condition: &Condition) -> bool {
    if value_condition(value, condition) {
        return true;
    }
    condition.reaches_elements()
        && matches!(value, Some(Value::Array(items)) if items.iter().any(|e| value_condition(Some(e), condition)))
}

fn value_condition(value: Option<&Value>, condition: &Condition) -> bool {
    match condition {
        Condition::Eq(v) => equals(value, v),
        Condition::Cmp(ord, v) => {
            let Some(value) = value else { return false };
            let operand = Value::from_json(v);
            let same_type = matches!(
                (value, &operand),
                (
                    Value::Int(_) | Value::Float(_),
                    Value::Int(_) | Value::Float(_)
                ) | (Value::String(_), Value::String(_))
            );
            if !same_type {
                return false;
            }
            let o = compare(value, &operand);
            match ord {
                Cmp::Gt => o == Ordering::Greater,
                Cmp::Gte => o != Ordering::Less,
                Cmp::Lt => o == Ordering::Less,
                Cmp::Lte => o != Ordering::Greater,
            }
        }
        Condition::In(items) => items.iter().any(|v| equals(value, v)),
        Condition::Exists(present) => value.is_some() == *present,
        Condition::Size(n) => {
            matches!(value, Some(Value::Array(items)) if items.len() as u64 == *n)
        }
        Condition::Type(types) => value.is_some_and(|v| types.iter().any(|t| has_type(v, *t))),
        Condition::Mod(d, r) => match value {
            Some(Value::Int(i)) => i.wrapping_rem(*d) == *r,
            Some(Value::Float(f)) if f.is_finite() => (f.trunc() as i64).wrapping_rem(*d) == *r,
            _ => false,
        },
        Condition::ElemMatch(conditions) => match value {
            Some(Value::Array(items)) => items
                .iter()
                .any(|e| conditions.iter().all(|c| value_condition(Some(e), c))),
            _ => false,
        },
        Condition::Regex(regex) => match value {
            Some(Value::String(s)) => regex.is_match(s),
            _ => false,
        },
        Condition::ElemMatchDocument(filter) => match value {
            Some(Value::Array(items)) => items.iter().any(|e| match e {
                Value::Object(d) => filter.matches(d),
                _ => false,
            }),
            _ => false,
        },
    }
}

fn equals(value: Option<&Value>, v: &Json) -> bool {
    match (value, v) {
        (None, Json::Null) => true,
        (None, _) => false,
        (Some(value), Json::Null) => matches!(value, Value::Null),
        (Some(value), _) => {
            let operand = Value::from_json(v);
            match (value, &operand) {
                // A stored binary value never equals a JSON operand.
                (Value::Bytes(_) | Value::Encoded(_), _) => false,
                _ => equal(value, &operand),
            }
        }
    }
}

fn has_type(v: &Value, t: JsonType) -> bool {
    matches!(
        (v, t),
        (Value::Float(_), JsonType::Double)
            | (Value::Int(_), JsonType::Int)
            | (Value::String(_), JsonType::String)
            | (Value::Object(_), JsonType::Object)
            | (Value::Array(_), JsonType::Array)
            | (Value::Bool(_), JsonType::Bool)
            | (Value::Null, JsonType::Null)
    )
}
