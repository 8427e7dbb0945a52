//! Update documents: `$set`, `$unset`, `$inc`, applied atomically per call by the backend.

use crate::names::FieldPath;
use crate::{Document, Error, Result, Value, ID_FIELD};

/// One change to a document.
#[derive(Debug, Clone, PartialEq)]
pub enum UpdateOp {
    /// Set the field (creating intermediate objects).
    Set(FieldPath, Value),
    /// Remove the field if present.
    Unset(FieldPath),
    /// Add to a number (a missing field is set to the amount).
    Inc(FieldPath, Value),
}

/// A parsed update: a list of changes applied in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    ops: Vec<UpdateOp>,
}

impl Update {
    /// Parses `{"$set": {...}, "$unset": {...}, "$inc": {...}}`. Values may be rich (images,
    /// tensors), so the input is a [`Document`]; plain JSON converts with `Document::try_from`.
    pub fn parse(update: &Document) -> Result<Update> {
        crate::depth::check_document(update, "the update")?;
        let mut ops = Vec::new();
        for (op, arg) in update.iter() {
            if !op.starts_with('$') {
                return Err(Error::query(
                    "update",
                    op,
                    "an update holds only operators ($set, $unset, $inc); use replace_one to replace a document",
                ));
            }
            if !matches!(op, "$set" | "$unset" | "$inc") {
                return Err(Error::UnsupportedOperator {
                    operator: op.to_string(),
                    path: op.to_string(),
                    backend: None,
                });
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
                ops.push(match op {
                    "$set" => UpdateOp::Set(path, value.clone()),
                    "$unset" => UpdateOp::Unset(path),
                    "$inc" => match value {
                        Value::Int(_) | Value::Float(_) => UpdateOp::Inc(path, value.clone()),
                        other => {
                            return Err(Error::InvalidOperand {
                                operator: "$inc".into(),
                                path: at,
                                expected: "a number",
                                found: other.kind(),
                            })
                        }
                    },
                    _ => unreachable!("operators checked above"),
                });
            }
        }
        if ops.is_empty() {
            return Err(Error::query(
                "update",
                "(root)",
                "the update changes nothing",
            ));
        }
        Ok(Update { ops })
    }

    /// The changes, in order.
    pub fn ops(&self) -> &[UpdateOp] {
        &self.ops
    }

    /// Applies the changes to a document; fails (changing nothing the caller keeps) when a
    /// path runs through a non-object or `$inc` meets a non-number.
    pub fn apply(&self, doc: &Document) -> Result<Document> {
        let mut out = doc.clone();
        for op in &self.ops {
            match op {
                UpdateOp::Set(path, value) => {
                    let (parent, key) = parent_of(&mut out, path)?;
                    parent.insert(key, value.clone());
                }
                UpdateOp::Unset(path) => {
                    let (parent, last) = path.segments().split_at(path.segments().len() - 1);
                    if let Some(container) = walk_existing(&mut out, parent) {
                        container.remove(&last[0]);
                    }
                }
                UpdateOp::Inc(path, amount) => {
                    let (parent, key) = parent_of(&mut out, path)?;
                    let new = match (parent.get(key), amount) {
                        (None, a) => a.clone(),
                        (Some(Value::Int(x)), Value::Int(a)) => match x.checked_add(*a) {
                            Some(sum) => Value::Int(sum),
                            None => Value::Float(*x as f64 + *a as f64),
                        },
                        (Some(Value::Int(x)), Value::Float(a)) => Value::Float(*x as f64 + a),
                        (Some(Value::Float(x)), a) => Value::Float(x + a.as_f64().unwrap_or(0.0)),
                        (Some(other), _) => {
                            return Err(Error::InvalidOperand {
                                operator: "$inc".into(),
                                path: path.dotted(),
                                expected: "a numeric field",
                                found: other.kind(),
                            })
                        }
                    };
                    parent.insert(key, new);
                }
            }
        }
        Ok(out)
    }
}

/// The document holding the last segment of `segments`, if every step exists and is an object.
fn walk_existing<'a>(doc: &'a mut Document, segments: &[String]) -> Option<&'a mut Document> {
    let mut current = doc;
    for s in segments {
        match current.get_mut(s) {
            Some(Value::Object(d)) => current = d,
            _ => return None,
        }
    }
    Some(current)
}

/// The document that holds the last segment of `path`, creating intermediate objects, and
/// that last segment.
fn parent_of<'a, 'p>(
    doc: &'a mut Document,
    path: &'p FieldPath,
) -> Result<(&'a mut Document, &'p str)> {
    let segments = path.segments();
    let (last, parents) = segments
        .split_last()
        .expect("FieldPath::parse never yields an empty path");
    let mut current = doc;
    for (i, s) in parents.iter().enumerate() {
        if !current.contains(s) {
            current.insert(s.clone(), Document::new());
        }
        match current.get_mut(s) {
            Some(Value::Object(d)) => current = d,
            other => {
                return Err(Error::InvalidOperand {
                    operator: "update".into(),
                    path: segments[..=i].join("."),
                    expected: "an object to descend into",
                    found: other.map_or_else(|| "nothing".into(), |v| v.kind()),
                })
            }
        }
    }
    Ok((current, last))
}
