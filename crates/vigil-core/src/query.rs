//! What a `find` asks of a backend: filter, projection, sort, skip and limit.

use serde_json::Value as Json;

use crate::names::FieldPath;
use crate::{Document, Error, Filter, Result, Value, ID_FIELD};

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Smallest first (`1`).
    Ascending,
    /// Largest first (`-1`).
    Descending,
}

/// A complete find request.
#[derive(Debug, Clone, PartialEq)]
pub struct FindQuery {
    /// Which documents.
    pub filter: Filter,
    /// Which fields of them (all when `None`).
    pub projection: Option<Projection>,
    /// Order; documents tie-break in insertion order.
    pub sort: Vec<(FieldPath, Direction)>,
    /// Documents to pass over first.
    pub skip: u64,
    /// At most this many documents.
    pub limit: Option<u64>,
}

impl FindQuery {
    /// All documents, in insertion order.
    pub fn new(filter: Filter) -> Self {
        FindQuery {
            filter,
            projection: None,
            sort: Vec::new(),
            skip: 0,
            limit: None,
        }
    }
}

/// Parses a Mongo-style sort document, e.g. `{"class": 1, "_id": -1}`.
pub fn parse_sort(json: &Json) -> Result<Vec<(FieldPath, Direction)>> {
    let Json::Object(map) = json else {
        return Err(Error::query(
            "sort",
            "(root)",
            format!("a sort is a JSON object, found {json}"),
        ));
    };
    map.iter()
        .map(|(k, v)| {
            let dir = match v.as_i64() {
                Some(1) => Direction::Ascending,
                Some(-1) => Direction::Descending,
                _ => {
                    return Err(Error::query(
                        "sort",
                        k,
                        format!("direction is 1 or -1, found {v}"),
                    ))
                }
            };
            Ok((FieldPath::parse(k)?, dir))
        })
        .collect()
}

/// Which fields a find returns: Mongo-style inclusion (`{"class": 1}`) or exclusion
/// (`{"img": 0}`); `_id` is included unless excluded by name. Applied to each document as it
/// streams out of the backend.
#[derive(Debug, Clone, PartialEq)]
pub struct Projection {
    include: bool,
    paths: Vec<FieldPath>,
    keep_id: bool,
}

impl Projection {
    /// Parses a projection document.
    pub fn parse(json: &Json) -> Result<Projection> {
        let Json::Object(map) = json else {
            return Err(Error::query(
                "projection",
                "(root)",
                format!("a projection is a JSON object, found {json}"),
            ));
        };
        let mut include = None;
        let mut keep_id = true;
        let mut id_given = false;
        let mut paths = Vec::new();
        for (k, v) in map {
            let flag = match v {
                Json::Bool(b) => *b,
                Json::Number(n) if n.as_i64() == Some(0) || n.as_i64() == Some(1) => {
                    n.as_i64() == Some(1)
                }
                _ => {
                    return Err(Error::query(
                        "projection",
                        k,
                        format!("expects 1, 0, true or false, found {v}"),
                    ))
                }
            };
            if k == ID_FIELD {
                keep_id = flag;
                id_given = true;
                continue;
            }
            if *include.get_or_insert(flag) != flag {
                return Err(Error::query(
                    "projection",
                    k,
                    "a projection either includes or excludes fields, not both (except `_id`)",
                ));
            }
            paths.push(FieldPath::parse(k)?);
        }
        Ok(Projection {
            // `{"_id": 1}` alone keeps only the id, as in MongoDB; `{"_id": 0}` drops it.
            include: include.unwrap_or(id_given && keep_id),
            paths,
            keep_id,
        })
    }

    /// The projected document.
    pub fn apply(&self, mut doc: Document) -> Document {
        if !self.include {
            for p in &self.paths {
                remove_path(&mut doc, p.segments());
            }
            if !self.keep_id {
                doc.remove(ID_FIELD);
            }
            return doc;
        }
        let mut out = Document::new();
        if self.keep_id {
            if let Some(id) = doc.id() {
                out.insert(ID_FIELD, id.clone());
            }
        }
        for p in &self.paths {
            copy_path(&doc, &mut out, p.segments());
        }
        out
    }
}

fn copy_path(from: &Document, to: &mut Document, segments: &[String]) {
    let Some(value) = from.get(&segments[0]) else {
        return;
    };
    if segments.len() == 1 {
        to.insert(segments[0].clone(), value.clone());
        return;
    }
    if let Value::Object(inner) = value {
        if !matches!(to.get(&segments[0]), Some(Value::Object(_))) {
            to.insert(segments[0].clone(), Document::new());
        }
        if let Some(Value::Object(target)) = to.get_mut(&segments[0]) {
            copy_path(inner, target, &segments[1..]);
        }
    }
}

fn remove_path(doc: &mut Document, segments: &[String]) {
    if segments.len() == 1 {
        doc.remove(&segments[0]);
    } else if let Some(Value::Object(inner)) = doc.get_mut(&segments[0]) {
        remove_path(inner, &segments[1..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn projections_as_mongodb_reads_them() {
        let doc = Document::try_from(json!({"_id": 1, "a": 1, "b": {"c": 2, "d": 3}})).unwrap();
        let project = |p: Json| Projection::parse(&p).unwrap().apply(doc.clone()).to_json();
        assert_eq!(project(json!({"_id": 1})), json!({"_id": 1}));
        assert_eq!(
            project(json!({"_id": 0})),
            json!({"a": 1, "b": {"c": 2, "d": 3}})
        );
        assert_eq!(project(json!({"a": 1})), json!({"_id": 1, "a": 1}));
        assert_eq!(project(json!({"b.c": 1, "_id": 0})), json!({"b": {"c": 2}}));
        assert_eq!(
            project(json!({"b.c": 0})),
            json!({"_id": 1, "a": 1, "b": {"d": 3}})
        );
        assert_eq!(project(json!({})), doc.to_json());
    }
}
