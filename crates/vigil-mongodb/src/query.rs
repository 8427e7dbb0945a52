//! vigil's filters and sorts as MongoDB queries. A filter is parsed and checked by vigil's
//! language first, then written back as the MongoDB query it stands for, so it runs in the
//! server and uses its indexes.
//!
//! Four constructs are judged in the process instead, by vigil's own matcher (the one
//! aggregation's `$match` uses, checked against the SQL backends on every conformance case):
//! `$expr`; `$elemMatch` over documents with a `$or`/`$and`/`$nor` inside; null equality on a
//! dotted path (it may run through an array of documents); and `$regex` with a character-class
//! escape. SecantusDB departs from MongoDB's manual on each (ARCHITECTURE.md, MongoDB), and
//! vigil keeps the manual's answer everywhere. The server still gets every other top-level part
//! of the filter, so it narrows the candidates with its indexes; the process then checks the
//! whole filter on what comes back.

use mongodb::bson::{self, doc, Bson};
use vigil_core::filter::{Condition, JsonType, Ordering};
use vigil_core::{Direction, FieldPath, Filter, ID_FIELD};

use crate::bson::{json_to_bson, object_id};

/// A filter as the server runs it.
pub(crate) struct ServerFilter {
    /// What the server is sent: the whole filter, or the parts it can judge exactly.
    pub query: bson::Document,
    /// Whether the process must check the whole filter again on what the server returns.
    pub recheck: bool,
}

impl ServerFilter {
    /// The server's part of `filter`.
    pub(crate) fn of(filter: &Filter) -> ServerFilter {
        if exact(filter) {
            return ServerFilter {
                query: to_query(filter),
                recheck: false,
            };
        }
        // The top-level conjuncts the server judges exactly narrow the candidates.
        let parts: Vec<Bson> = match filter {
            Filter::And(parts) => parts
                .iter()
                .filter(|p| exact(p))
                .map(|p| Bson::Document(to_query(p)))
                .collect(),
            _ => Vec::new(),
        };
        let query = conjunction(
            parts
                .into_iter()
                .filter_map(|p| match p {
                    Bson::Document(d) => Some(d),
                    _ => None,
                })
                .collect(),
        );
        ServerFilter {
            query,
            recheck: true,
        }
    }
}

/// Whether the server can judge a filter exactly as MongoDB's manual says.
fn exact(filter: &Filter) -> bool {
    match filter {
        Filter::And(parts) | Filter::Or(parts) => parts.iter().all(exact),
        Filter::Not(inner) => exact(inner),
        Filter::Compare { .. } => false,
        Filter::Field { path, condition } => exact_condition(path, condition),
    }
}

fn exact_condition(path: &FieldPath, condition: &Condition) -> bool {
    match condition {
        // Null equality through an array of documents (`{"n.b": null}` where one element of
        // `n` lacks `b`): SecantusDB misses the document MongoDB matches.
        Condition::Eq(serde_json::Value::Null) | Condition::In(_)
            if path.segments().len() > 1 && condition.matches_missing() =>
        {
            false
        }
        // `\d \w \s \b` are ASCII in MongoDB's PCRE (and in vigil); some servers read them
        // as Unicode classes.
        Condition::Regex(regex) => !has_class_escape(regex.pattern()),
        Condition::ElemMatch(conditions) => conditions.iter().all(|c| exact_condition(path, c)),
        Condition::ElemMatchDocument(inner) => {
            !matches!(**inner, Filter::Or(_) | Filter::Not(_)) && exact(inner) && !has_logic(inner)
        }
        _ => true,
    }
}

/// Whether a pattern uses a character-class escape whose meaning servers differ on.
fn has_class_escape(pattern: &str) -> bool {
    let mut escaped = false;
    for c in pattern.chars() {
        if escaped && "dwsbDWSB".contains(c) {
            return true;
        }
        escaped = !escaped && c == '\\';
    }
    false
}

/// Whether a filter inside `$elemMatch` holds a logical operator of its own.
fn has_logic(filter: &Filter) -> bool {
    match filter {
        Filter::And(parts) => parts
            .iter()
            .any(|p| !matches!(p, Filter::Field { .. }) || has_logic(p)),
        Filter::Field { .. } => false,
        _ => true,
    }
}

/// The MongoDB query a filter stands for (`$expr` is never sent: see the module's doc).
fn to_query(filter: &Filter) -> bson::Document {
    match filter {
        Filter::And(parts) => conjunction(parts.iter().map(to_query).collect()),
        // An empty `$or` matches nothing; MongoDB refuses an empty array, so say it otherwise.
        Filter::Or(parts) if parts.is_empty() => doc! { "_id": { "$exists": false } },
        Filter::Or(parts) => {
            doc! { "$or": parts.iter().map(|p| Bson::Document(to_query(p))).collect::<Vec<_>>() }
        }
        Filter::Not(inner) => doc! { "$nor": [to_query(inner)] },
        Filter::Field { path, condition } => {
            let mut d = bson::Document::new();
            d.insert(path.dotted(), condition_bson(path, condition));
            d
        }
        Filter::Compare { .. } => bson::Document::new(),
    }
}

/// Queries that must all hold, as one query. Parts on different fields merge into one
/// document (`{a: …, b: …}`, which MongoDB reads as their conjunction); `$and` is kept only
/// where two parts share a key. A planner sees the fields then: SecantusDB's gives up on any
/// top-level operator and scans the collection, so `{$and: [{_id: {$in: …}}]}` cost a scan
/// where `{_id: {$in: …}}` is a key lookup. `_id` goes first, for planners that take the
/// first indexed field.
fn conjunction(parts: Vec<bson::Document>) -> bson::Document {
    let mut merged = bson::Document::new();
    let mut keys = std::collections::HashSet::new();
    let disjoint = parts
        .iter()
        .flat_map(|p| p.keys())
        .all(|k| keys.insert(k.as_str()));
    if !disjoint {
        return doc! { "$and": parts.into_iter().map(Bson::Document).collect::<Vec<_>>() };
    }
    let mut rest = Vec::new();
    for (k, v) in parts.into_iter().flatten() {
        if k == ID_FIELD {
            merged.insert(k, v);
        } else {
            rest.push((k, v));
        }
    }
    merged.extend(rest);
    merged
}

/// One condition as its operator document.
fn condition_bson(path: &FieldPath, condition: &Condition) -> Bson {
    let mut d = bson::Document::new();
    add_operator(&mut d, path, condition);
    Bson::Document(d)
}

fn add_operator(d: &mut bson::Document, path: &FieldPath, condition: &Condition) {
    match condition {
        // On `_id`, a 24-hex string also matches the ObjectId it spells (see `crate::bson`).
        Condition::Eq(v) => match id_twin(path, v) {
            Some(oid) => {
                d.insert("$in", vec![json_to_bson(v), oid]);
            }
            None => {
                d.insert("$eq", json_to_bson(v));
            }
        },
        Condition::Cmp(op, v) => {
            let name = match op {
                Ordering::Gt => "$gt",
                Ordering::Gte => "$gte",
                Ordering::Lt => "$lt",
                Ordering::Lte => "$lte",
            };
            d.insert(name, json_to_bson(v));
        }
        Condition::In(items) => {
            let mut all: Vec<Bson> = Vec::with_capacity(items.len());
            for v in items {
                all.push(json_to_bson(v));
                if let Some(oid) = id_twin(path, v) {
                    all.push(oid);
                }
            }
            d.insert("$in", all);
        }
        Condition::Exists(b) => {
            d.insert("$exists", *b);
        }
        Condition::Size(n) => {
            d.insert("$size", *n as i64);
        }
        Condition::Type(types) => {
            let names: Vec<Bson> = types
                .iter()
                .flat_map(|t| match t {
                    JsonType::Double => vec!["double"],
                    JsonType::Int => vec!["int", "long"],
                    JsonType::String => vec!["string"],
                    JsonType::Object => vec!["object"],
                    JsonType::Array => vec!["array"],
                    JsonType::Bool => vec!["bool"],
                    JsonType::Null => vec!["null"],
                })
                .map(Bson::from)
                .collect();
            d.insert("$type", names);
        }
        Condition::Mod(divisor, remainder) => {
            d.insert("$mod", vec![Bson::Int64(*divisor), Bson::Int64(*remainder)]);
        }
        Condition::ElemMatch(conditions) => {
            let mut inner = bson::Document::new();
            for c in conditions {
                add_operator(&mut inner, path, c);
            }
            d.insert("$elemMatch", inner);
        }
        Condition::ElemMatchDocument(filter) => {
            d.insert("$elemMatch", flatten_and(filter));
        }
        Condition::Regex(regex) => {
            d.insert("$regex", regex.pattern());
            if !regex.options().is_empty() {
                d.insert("$options", regex.options());
            }
        }
    }
}

/// An `$elemMatch` over documents as the plain field conditions MongoDB expects inside it.
fn flatten_and(filter: &Filter) -> bson::Document {
    match filter {
        Filter::And(parts) => {
            let mut d = bson::Document::new();
            for p in parts {
                for (k, v) in flatten_and(p) {
                    match d.get_mut(&k) {
                        // Two conditions on one field: both must hold.
                        Some(Bson::Document(existing)) => {
                            if let Bson::Document(more) = v {
                                existing.extend(more);
                            }
                        }
                        _ => {
                            d.insert(k, v);
                        }
                    }
                }
            }
            d
        }
        other => to_query(other),
    }
}

/// The ObjectId twin of a 24-hex string operand on `_id`.
fn id_twin(path: &FieldPath, v: &serde_json::Value) -> Option<Bson> {
    if path.dotted() != ID_FIELD {
        return None;
    }
    v.as_str().and_then(object_id).map(Bson::ObjectId)
}

/// A sort as MongoDB's sort document.
pub(crate) fn sort_document(sort: &[(FieldPath, Direction)]) -> Option<bson::Document> {
    if sort.is_empty() {
        return None;
    }
    let mut d = bson::Document::new();
    for (path, direction) in sort {
        let n = match direction {
            Direction::Ascending => 1,
            Direction::Descending => -1,
        };
        d.insert(path.dotted(), n);
    }
    Some(d)
}
