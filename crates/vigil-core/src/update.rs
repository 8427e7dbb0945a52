//! Update documents with MongoDB's operators, applied in the process to each matched document
//! inside the backend's transaction (so every backend behaves the same): `$set`, `$unset`,
//! `$inc`, `$mul`, `$min`, `$max`, `$rename`, `$push` (with `$each`, `$slice`, `$position`),
//! `$addToSet` (with `$each`), `$pull`, `$pop`, and `$setOnInsert` for upserts. Paths are
//! dotted and may step into arrays by index (`tags.0`).

use std::cmp::Ordering;

use crate::names::FieldPath;
use crate::order::{compare, equal, type_rank};
use crate::{Document, Error, Result, Value, ID_FIELD};

/// One change to a document.
#[derive(Debug, Clone, PartialEq)]
pub enum UpdateOp {
    /// Set the field (creating intermediate objects).
    Set(FieldPath, Value),
    /// Remove the field if present (an array element becomes null, as in MongoDB).
    Unset(FieldPath),
    /// Add to a number (a missing field is set to the amount).
    Inc(FieldPath, Value),
    /// Multiply a number (a missing field is set to 0 of the operand's type).
    Mul(FieldPath, Value),
    /// Set the field to the smaller (`Less`) or larger (`Greater`) of it and the value, in
    /// MongoDB's order of values; a missing field is set.
    Bound(FieldPath, Value, Ordering),
    /// Move a field to another path.
    Rename(FieldPath, FieldPath),
    /// Append to an array (a missing field becomes one).
    Push(FieldPath, Push),
    /// Append the values not already present.
    AddToSet(FieldPath, Vec<Value>),
    /// Remove every element matching the condition.
    Pull(FieldPath, Pull),
    /// Remove the first (`true`) or last element.
    Pop(FieldPath, bool),
    /// Set only when an upsert inserts.
    SetOnInsert(FieldPath, Value),
}

/// `$push`'s operand: values, where, and how many to keep.
#[derive(Debug, Clone, PartialEq)]
pub struct Push {
    /// The values appended, in order.
    pub each: Vec<Value>,
    /// Where to insert (negative: from the end). Default: at the end.
    pub position: Option<i64>,
    /// Keep the first `n` (or the last `-n`) elements afterwards.
    pub slice: Option<i64>,
}

/// `$pull`'s operand: an equal value, or comparisons every one of which must hold.
#[derive(Debug, Clone, PartialEq)]
pub enum Pull {
    /// Elements equal to this (numbers across integer and float).
    Equal(Value),
    /// Elements satisfying every `(operator, operand)`: `$eq $ne $gt $gte $lt $lte $in $nin`.
    Matching(Vec<(String, Value)>),
}

/// A parsed update: a list of changes applied in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    ops: Vec<UpdateOp>,
}

const OPERATORS: &str =
    "$set, $unset, $inc, $mul, $min, $max, $rename, $push, $addToSet, $pull, $pop, $setOnInsert";

fn operand_error(op: &str, at: String, expected: &'static str, found: &Value) -> Error {
    Error::InvalidOperand {
        operator: op.to_string(),
        path: at,
        expected,
        found: found.kind(),
    }
}

fn number(op: &str, at: &str, v: &Value) -> Result<Value> {
    match v {
        Value::Int(_) | Value::Float(_) => Ok(v.clone()),
        other => Err(operand_error(op, at.to_string(), "a number", other)),
    }
}

impl Update {
    /// Parses an update document such as `{"$set": {...}, "$push": {...}}`. Values may be
    /// rich (images, tensors), so the input is a [`Document`]; plain JSON converts with
    /// `Document::try_from`.
    pub fn parse(update: &Document) -> Result<Update> {
        crate::depth::check_document(update, "the update")?;
        let mut ops = Vec::new();
        let mut touched: Vec<FieldPath> = Vec::new();
        for (op, arg) in update.iter() {
            if !op.starts_with('$') {
                return Err(Error::query(
                    "update",
                    op,
                    format!("an update holds only operators ({OPERATORS}); use replace_one to replace a document"),
                ));
            }
            let Value::Object(fields) = arg else {
                return Err(Error::query(
                    "update",
                    op,
                    format!("expects a document of fields, found {}", arg.kind()),
                ));
            };
            for (key, value) in fields.iter() {
                let at = format!("{op}.{key}");
                let path = FieldPath::parse(key)?;
                if path.segments()[0] == ID_FIELD {
                    return Err(Error::query("update", at, "_id cannot be changed"));
                }
                let parsed = match op {
                    "$set" => UpdateOp::Set(path.clone(), value.clone()),
                    "$setOnInsert" => UpdateOp::SetOnInsert(path.clone(), value.clone()),
                    "$unset" => UpdateOp::Unset(path.clone()),
                    "$inc" => UpdateOp::Inc(path.clone(), number(op, &at, value)?),
                    "$mul" => UpdateOp::Mul(path.clone(), number(op, &at, value)?),
                    "$min" => UpdateOp::Bound(path.clone(), value.clone(), Ordering::Less),
                    "$max" => UpdateOp::Bound(path.clone(), value.clone(), Ordering::Greater),
                    "$rename" => {
                        let Value::String(to) = value else {
                            return Err(operand_error(op, at, "a new field name", value));
                        };
                        let to = FieldPath::parse(to)?;
                        if to.segments()[0] == ID_FIELD || to == path {
                            return Err(Error::query(
                                "update",
                                at,
                                "cannot rename to _id or to itself",
                            ));
                        }
                        touched.push(to.clone());
                        UpdateOp::Rename(path.clone(), to)
                    }
                    "$push" => UpdateOp::Push(path.clone(), parse_push(value, &at)?),
                    "$addToSet" => {
                        UpdateOp::AddToSet(path.clone(), parse_each(value, &at, &["$each"])?.0)
                    }
                    "$pull" => UpdateOp::Pull(path.clone(), parse_pull(value, &at)?),
                    "$pop" => match value.as_i64() {
                        Some(1) => UpdateOp::Pop(path.clone(), false),
                        Some(-1) => UpdateOp::Pop(path.clone(), true),
                        _ => return Err(operand_error(op, at, "1 (last) or -1 (first)", value)),
                    },
                    other => {
                        return Err(Error::UnsupportedOperator {
                            operator: other.to_string(),
                            path: other.to_string(),
                            backend: None,
                        })
                    }
                };
                touched.push(path);
                ops.push(parsed);
            }
        }
        if ops.is_empty() {
            return Err(Error::query(
                "update",
                "(root)",
                "the update changes nothing",
            ));
        }
        // As in MongoDB, two operators may not touch the same path or one inside the other:
        // the result would depend on their order.
        for (i, a) in touched.iter().enumerate() {
            for b in &touched[i + 1..] {
                let (a, b) = (a.segments(), b.segments());
                let n = a.len().min(b.len());
                if a[..n] == b[..n] {
                    return Err(Error::query(
                        "update",
                        a.join("."),
                        format!("conflicts with `{}`: two changes to one path", b.join(".")),
                    ));
                }
            }
        }
        Ok(Update { ops })
    }

    /// The changes, in order.
    pub fn ops(&self) -> &[UpdateOp] {
        &self.ops
    }

    /// Applies the changes to a document; fails (changing nothing the caller keeps) when a
    /// path runs through a value it cannot descend into or an operator meets the wrong type.
    /// `$setOnInsert` is skipped: it applies only to an upsert's new document.
    pub fn apply(&self, doc: &Document) -> Result<Document> {
        self.apply_with(doc, false)
    }

    /// The document an upsert inserts: `base` (the filter's equalities) with every change
    /// applied, `$setOnInsert` included.
    pub fn apply_for_insert(&self, base: &Document) -> Result<Document> {
        self.apply_with(base, true)
    }

    fn apply_with(&self, doc: &Document, inserting: bool) -> Result<Document> {
        let mut out = doc.clone();
        for op in &self.ops {
            apply_op(&mut out, op, inserting)?;
        }
        Ok(out)
    }
}

/// The document an upsert starts from: the filter's equality conditions on fields
/// (`{"a": 1}`, `{"a": {"$eq": 1}}`, `{"n.b": 1}` as `{"n": {"b": 1}}`, also inside `$and`),
/// as MongoDB does; other conditions add nothing.
pub fn upsert_base(filter: &crate::Filter) -> Result<Document> {
    use crate::filter::{Condition, Filter};
    fn collect<'f>(f: &'f Filter, out: &mut Vec<(&'f FieldPath, &'f serde_json::Value)>) {
        match f {
            Filter::And(parts) => parts.iter().for_each(|p| collect(p, out)),
            Filter::Field {
                path,
                condition: Condition::Eq(v),
            } => out.push((path, v)),
            _ => {}
        }
    }
    let mut pairs = Vec::new();
    collect(filter, &mut pairs);
    let mut doc = Document::new();
    for (path, v) in pairs {
        *slot(&mut doc, path, "upsert")? = Some(Value::from_json(v));
    }
    Ok(doc)
}

fn parse_each(value: &Value, at: &str, allowed: &[&str]) -> Result<(Vec<Value>, Option<Document>)> {
    match value {
        Value::Object(d) if d.get("$each").is_some() => {
            for (k, _) in d.iter() {
                if !allowed.contains(&k) {
                    return Err(Error::UnsupportedOperator {
                        operator: k.to_string(),
                        path: format!("{at}.{k}"),
                        backend: None,
                    });
                }
            }
            match d.get("$each") {
                Some(Value::Array(items)) => Ok((items.clone(), Some(d.clone()))),
                Some(other) => Err(operand_error(
                    "$each",
                    format!("{at}.$each"),
                    "an array",
                    other,
                )),
                None => unreachable!("checked above"),
            }
        }
        other => Ok((vec![other.clone()], None)),
    }
}

fn parse_push(value: &Value, at: &str) -> Result<Push> {
    let (each, modifiers) = parse_each(value, at, &["$each", "$slice", "$position"])?;
    let int = |name: &str| -> Result<Option<i64>> {
        match modifiers.as_ref().and_then(|m| m.get(name)) {
            None => Ok(None),
            Some(Value::Int(n)) => Ok(Some(*n)),
            Some(other) => Err(operand_error(
                name,
                format!("{at}.{name}"),
                "an integer",
                other,
            )),
        }
    };
    Ok(Push {
        each,
        position: int("$position")?,
        slice: int("$slice")?,
    })
}

fn parse_pull(value: &Value, at: &str) -> Result<Pull> {
    match value {
        Value::Object(d) if d.iter().next().is_some_and(|(k, _)| k.starts_with('$')) => {
            let mut conditions = Vec::new();
            for (k, v) in d.iter() {
                match k {
                    "$eq" | "$ne" | "$gt" | "$gte" | "$lt" | "$lte" => {}
                    "$in" | "$nin" if matches!(v, Value::Array(_)) => {}
                    "$in" | "$nin" => {
                        return Err(operand_error(k, format!("{at}.{k}"), "an array", v))
                    }
                    other => {
                        return Err(Error::UnsupportedOperator {
                            operator: other.to_string(),
                            path: format!("{at}.{other}"),
                            backend: None,
                        })
                    }
                }
                conditions.push((k.to_string(), v.clone()));
            }
            Ok(Pull::Matching(conditions))
        }
        other => Ok(Pull::Equal(other.clone())),
    }
}

/// Whether an array element satisfies `$pull`'s condition. Ordered comparisons hold only
/// within one type (numbers together), as in MongoDB's queries.
fn pulls(pull: &Pull, v: &Value) -> bool {
    let ordered = |op: &str, x: &Value| {
        type_rank(v) == type_rank(x)
            && match op {
                "$gt" => compare(v, x) == Ordering::Greater,
                "$gte" => compare(v, x) != Ordering::Less,
                "$lt" => compare(v, x) == Ordering::Less,
                _ => compare(v, x) != Ordering::Greater,
            }
    };
    match pull {
        Pull::Equal(x) => equal(v, x),
        Pull::Matching(conditions) => conditions.iter().all(|(op, x)| match op.as_str() {
            "$eq" => equal(v, x),
            "$ne" => !equal(v, x),
            "$in" | "$nin" => {
                let found = matches!(x, Value::Array(items) if items.iter().any(|i| equal(v, i)));
                found == (op == "$in")
            }
            other => ordered(other, x),
        }),
    }
}

fn type_error(op: &str, path: &FieldPath, expected: &'static str, found: &Value) -> Error {
    operand_error(op, path.dotted(), expected, found)
}

fn apply_op(doc: &mut Document, op: &UpdateOp, inserting: bool) -> Result<()> {
    match op {
        UpdateOp::Set(path, value) => *slot(doc, path, "$set")? = Some(value.clone()),
        UpdateOp::SetOnInsert(path, value) if inserting => {
            *slot(doc, path, "$setOnInsert")? = Some(value.clone())
        }
        UpdateOp::SetOnInsert(..) => {}
        UpdateOp::Unset(path) => unset(doc, path),
        UpdateOp::Inc(path, amount) | UpdateOp::Mul(path, amount) => {
            let name = if matches!(op, UpdateOp::Inc(..)) {
                "$inc"
            } else {
                "$mul"
            };
            let mut place = slot(doc, path, name)?;
            let current = match place.take() {
                None if name == "$inc" => amount.clone(),
                None => match amount {
                    Value::Int(_) => Value::Int(0),
                    _ => Value::Float(0.0),
                },
                Some(v) => arithmetic(name, &v, amount)
                    .ok_or_else(|| type_error(name, path, "a numeric field", &v))?,
            };
            *place = Some(current);
        }
        UpdateOp::Bound(path, value, keep) => {
            let name = if *keep == Ordering::Less {
                "$min"
            } else {
                "$max"
            };
            let mut place = slot(doc, path, name)?;
            let replace = match place.as_ref() {
                None => true,
                Some(current) => compare(value, current) == *keep,
            };
            if replace {
                *place = Some(value.clone());
            }
        }
        UpdateOp::Rename(from, to) => {
            // A rename reads and writes through objects only, never array elements.
            let segments = from.segments();
            if segments.iter().any(|s| s.parse::<usize>().is_ok()) {
                return Err(Error::query(
                    "update",
                    from.dotted(),
                    "$rename cannot go through array indexes",
                ));
            }
            if let Some(v) = take_field(doc, segments) {
                *slot(doc, to, "$rename")? = Some(v);
            }
        }
        UpdateOp::Push(path, push) => with_array(doc, path, "$push", |items| {
            let at = match push.position {
                None => items.len(),
                Some(p) if p < 0 => items.len().saturating_sub(p.unsigned_abs() as usize),
                Some(p) => (p as usize).min(items.len()),
            };
            items.splice(at..at, push.each.iter().cloned());
            match push.slice {
                Some(n) if n >= 0 => items.truncate(n as usize),
                Some(n) => {
                    let keep = n.unsigned_abs() as usize;
                    if items.len() > keep {
                        items.drain(..items.len() - keep);
                    }
                }
                None => {}
            }
        })?,
        UpdateOp::AddToSet(path, values) => with_array(doc, path, "$addToSet", |items| {
            for v in values {
                if !items.iter().any(|i| equal(i, v)) {
                    items.push(v.clone());
                }
            }
        })?,
        UpdateOp::Pull(path, pull) => {
            if let Some(place) = existing(doc, path.segments()) {
                match place {
                    Value::Array(items) => items.retain(|v| !pulls(pull, v)),
                    other => return Err(type_error("$pull", path, "an array", other)),
                }
            }
        }
        UpdateOp::Pop(path, first) => {
            if let Some(place) = existing(doc, path.segments()) {
                match place {
                    Value::Array(items) if items.is_empty() => {}
                    Value::Array(items) if *first => {
                        items.remove(0);
                    }
                    Value::Array(items) => {
                        items.pop();
                    }
                    other => return Err(type_error("$pop", path, "an array", other)),
                }
            }
        }
    }
    Ok(())
}

fn arithmetic(op: &str, current: &Value, amount: &Value) -> Option<Value> {
    Some(match (current, amount) {
        (Value::Int(x), Value::Int(a)) => {
            let exact = if op == "$inc" {
                x.checked_add(*a)
            } else {
                x.checked_mul(*a)
            };
            match exact {
                Some(n) => Value::Int(n),
                None if op == "$inc" => Value::Float(*x as f64 + *a as f64),
                None => Value::Float(*x as f64 * *a as f64),
            }
        }
        (Value::Int(_) | Value::Float(_), Value::Int(_) | Value::Float(_)) => {
            let (x, a) = (current.as_f64()?, amount.as_f64()?);
            Value::Float(if op == "$inc" { x + a } else { x * a })
        }
        _ => return None,
    })
}

/// Runs `f` on the array at `path` (created empty when missing).
fn with_array(
    doc: &mut Document,
    path: &FieldPath,
    op: &str,
    f: impl FnOnce(&mut Vec<Value>),
) -> Result<()> {
    let mut place = slot(doc, path, op)?;
    let mut items = match place.take() {
        None => Vec::new(),
        Some(Value::Array(items)) => items,
        Some(other) => {
            let err = type_error(op, path, "an array field", &other);
            *place = Some(other);
            return Err(err);
        }
    };
    f(&mut items);
    *place = Some(Value::Array(items));
    Ok(())
}

/// The value at `segments` if every step exists (objects by name, arrays by index).
fn existing<'a>(doc: &'a mut Document, segments: &[String]) -> Option<&'a mut Value> {
    let (first, rest) = segments.split_first()?;
    let mut current = doc.get_mut(first)?;
    for s in rest {
        current = match current {
            Value::Object(d) => d.get_mut(s)?,
            Value::Array(items) => items.get_mut(s.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(current)
}

fn unset(doc: &mut Document, path: &FieldPath) {
    let segments = path.segments();
    let (last, parents) = segments.split_last().expect("paths are never empty");
    if parents.is_empty() {
        doc.remove(last);
        return;
    }
    match existing(doc, parents) {
        Some(Value::Object(d)) => {
            d.remove(last);
        }
        // MongoDB keeps array positions: an unset element becomes null.
        Some(Value::Array(items)) => {
            if let Some(v) = last.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                *v = Value::Null;
            }
        }
        _ => {}
    }
}

fn take_field(doc: &mut Document, segments: &[String]) -> Option<Value> {
    let (last, parents) = segments.split_last()?;
    if parents.is_empty() {
        return doc.remove(last);
    }
    match existing(doc, parents) {
        Some(Value::Object(d)) => d.remove(last),
        _ => None,
    }
}

/// A place to read and write the value at `path`: `None` inside when the field is missing.
/// Intermediate objects are created; an array is entered by index, padded with nulls when
/// the index is past its end (as MongoDB does).
struct Slot<'a> {
    parent: Parent<'a>,
    key: String,
    value: Option<Value>,
}

enum Parent<'a> {
    Object(&'a mut Document),
    Array(&'a mut Vec<Value>, usize),
}

impl std::ops::Deref for Slot<'_> {
    type Target = Option<Value>;
    fn deref(&self) -> &Option<Value> {
        &self.value
    }
}

impl std::ops::DerefMut for Slot<'_> {
    fn deref_mut(&mut self) -> &mut Option<Value> {
        &mut self.value
    }
}

impl Drop for Slot<'_> {
    /// Writes the value back into its parent (or removes the field when it was taken).
    fn drop(&mut self) {
        match (&mut self.parent, self.value.take()) {
            (Parent::Object(d), Some(v)) => {
                d.insert(std::mem::take(&mut self.key), v);
            }
            (Parent::Object(d), None) => {
                d.remove(&self.key);
            }
            (Parent::Array(items, i), v) => {
                if items.len() <= *i {
                    items.resize(*i + 1, Value::Null);
                }
                items[*i] = v.unwrap_or(Value::Null);
            }
        }
    }
}

fn slot<'a>(doc: &'a mut Document, path: &FieldPath, op: &str) -> Result<Slot<'a>> {
    let segments = path.segments();
    let (last, parents) = segments.split_last().expect("paths are never empty");
    let stuck = |i: usize, found: &Value| {
        operand_error(
            op,
            segments[..=i].join("."),
            "an object or array to descend into",
            found,
        )
    };
    // Descends into `current` by segment `i`, creating what is missing.
    fn child<'v>(current: &'v mut Value, s: &str) -> Option<&'v mut Value> {
        match current {
            Value::Object(d) => {
                if !d.contains(s) {
                    d.insert(s.to_string(), Document::new());
                }
                d.get_mut(s)
            }
            Value::Array(items) => {
                let idx = s.parse::<usize>().ok()?;
                if items.len() <= idx {
                    items.resize(idx + 1, Value::Null);
                }
                if items[idx] == Value::Null {
                    items[idx] = Value::Object(Document::new());
                }
                items.get_mut(idx)
            }
            _ => None,
        }
    }
    let parent = match parents.split_first() {
        None => Parent::Object(doc),
        Some((first, rest)) => {
            if !doc.contains(first) {
                doc.insert(first.clone(), Document::new());
            }
            let mut current = doc.get_mut(first).expect("inserted above");
            for (i, s) in rest.iter().enumerate() {
                if !matches!(current, Value::Object(_) | Value::Array(_)) {
                    return Err(stuck(i, current));
                }
                let found = current.kind();
                current = child(current, s).ok_or_else(|| Error::InvalidOperand {
                    operator: op.to_string(),
                    path: segments[..=i + 1].join("."),
                    expected: "an array index",
                    found,
                })?;
            }
            match current {
                Value::Object(d) => Parent::Object(d),
                Value::Array(items) => match last.parse::<usize>() {
                    Ok(idx) => Parent::Array(items, idx),
                    Err(_) => {
                        return Err(operand_error(
                            op,
                            path.dotted(),
                            "an array index",
                            &Value::String(last.clone()),
                        ))
                    }
                },
                other => return Err(stuck(parents.len() - 1, other)),
            }
        }
    };
    let value = match &parent {
        Parent::Object(d) => d.get(last).cloned(),
        Parent::Array(items, i) => items.get(*i).cloned(),
    };
    Ok(Slot {
        parent,
        key: last.clone(),
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(doc: serde_json::Value, update: serde_json::Value) -> Result<serde_json::Value> {
        let doc = Document::try_from(doc)?;
        let update = Update::parse(&Document::try_from(update)?)?;
        Ok(update.apply(&doc)?.to_json())
    }

    #[test]
    fn every_operator_as_mongodb_applies_it() {
        let doc = json!({"a": 1, "n": {"b": 2}, "tags": ["x", "y"], "k": [1, 2, 3, 4, 5]});
        let cases = [
            (
                json!({"$set": {"n.c": 3, "tags.1": "z"}}),
                json!({"a": 1, "n": {"b": 2, "c": 3}, "tags": ["x", "z"], "k": [1, 2, 3, 4, 5]}),
            ),
            (
                json!({"$set": {"tags.3": "w"}}),
                json!({"a": 1, "n": {"b": 2}, "tags": ["x", "y", null, "w"], "k": [1, 2, 3, 4, 5]}),
            ),
            (
                json!({"$unset": {"n.b": "", "tags.0": "", "zz": ""}}),
                json!({"a": 1, "n": {}, "tags": [null, "y"], "k": [1, 2, 3, 4, 5]}),
            ),
            (
                json!({"$inc": {"a": 2, "new": 5}, "$mul": {"n.b": 2.5, "m": 3}}),
                json!({"a": 3, "n": {"b": 5.0}, "tags": ["x", "y"], "k": [1, 2, 3, 4, 5], "new": 5, "m": 0}),
            ),
            (
                json!({"$min": {"a": 0, "lo": 7}, "$max": {"n.b": 1}}),
                json!({"a": 0, "n": {"b": 2}, "tags": ["x", "y"], "k": [1, 2, 3, 4, 5], "lo": 7}),
            ),
            (
                json!({"$max": {"a": "s"}}),
                json!({"a": "s", "n": {"b": 2}, "tags": ["x", "y"], "k": [1, 2, 3, 4, 5]}),
            ),
            (
                json!({"$rename": {"n.b": "c", "nope": "x"}}),
                json!({"a": 1, "n": {}, "tags": ["x", "y"], "k": [1, 2, 3, 4, 5], "c": 2}),
            ),
            (
                json!({"$push": {"tags": "z", "fresh": 1}}),
                json!({"a": 1, "n": {"b": 2}, "tags": ["x", "y", "z"], "k": [1, 2, 3, 4, 5], "fresh": [1]}),
            ),
            (
                json!({"$push": {"k": {"$each": [6, 7], "$slice": -3}}}),
                json!({"a": 1, "n": {"b": 2}, "tags": ["x", "y"], "k": [5, 6, 7]}),
            ),
            (
                json!({"$push": {"tags": {"$each": ["w"], "$position": 0, "$slice": 2}}}),
                json!({"a": 1, "n": {"b": 2}, "tags": ["w", "x"], "k": [1, 2, 3, 4, 5]}),
            ),
            (
                json!({"$addToSet": {"tags": {"$each": ["y", "q", "q"]}, "k": 1.0}}),
                json!({"a": 1, "n": {"b": 2}, "tags": ["x", "y", "q"], "k": [1, 2, 3, 4, 5]}),
            ),
            (
                json!({"$pull": {"k": {"$gte": 2, "$lt": 5}, "tags": "x"}}),
                json!({"a": 1, "n": {"b": 2}, "tags": ["y"], "k": [1, 5]}),
            ),
            (
                json!({"$pull": {"k": {"$in": [1, 5.0]}}}),
                json!({"a": 1, "n": {"b": 2}, "tags": ["x", "y"], "k": [2, 3, 4]}),
            ),
            (
                json!({"$pop": {"k": -1, "tags": 1}}),
                json!({"a": 1, "n": {"b": 2}, "tags": ["x"], "k": [2, 3, 4, 5]}),
            ),
            (json!({"$setOnInsert": {"only": 1}}), doc.clone()),
        ];
        for (update, expected) in cases {
            assert_eq!(
                run(doc.clone(), update.clone()).unwrap(),
                expected,
                "{update}"
            );
        }
        let upsert = Update::parse(
            &Document::try_from(json!({"$set": {"a": 1}, "$setOnInsert": {"b": 2}})).unwrap(),
        )
        .unwrap();
        assert_eq!(
            upsert.apply_for_insert(&Document::new()).unwrap().to_json(),
            json!({"a": 1, "b": 2})
        );
    }

    #[test]
    fn wrong_types_and_conflicts_are_errors() {
        let doc = json!({"a": 1, "s": "x", "arr": [1]});
        for (update, expected) in [
            (json!({"$inc": {"s": 1}}), "a numeric field"),
            (json!({"$mul": {"a": "2"}}), "a number"),
            (json!({"$push": {"a": 1}}), "an array field"),
            (json!({"$pull": {"s": 1}}), "an array"),
            (json!({"$pop": {"arr": 2}}), "1 (last) or -1 (first)"),
            (json!({"$set": {"a.b": 1}}), "descend into"),
            (json!({"$set": {"arr.x": 1}}), "an array index"),
            (
                json!({"$set": {"a": 1}, "$inc": {"a": 1}}),
                "two changes to one path",
            ),
            (
                json!({"$set": {"n.b": 1}, "$unset": {"n": ""}}),
                "two changes to one path",
            ),
            (json!({"$rename": {"a": "_id"}}), "_id"),
            (
                json!({"$push": {"arr": {"$each": [1], "$sort": 1}}}),
                "$sort",
            ),
            (json!({"$pull": {"arr": {"$regex": "x"}}}), "$regex"),
            (json!({"$currentDate": {"a": true}}), "$currentDate"),
        ] {
            let err = run(doc.clone(), update.clone()).unwrap_err().to_string();
            assert!(err.contains(expected), "{update}: {err}");
        }
    }
}
