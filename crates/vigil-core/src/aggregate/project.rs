//! `$project` (inclusion, exclusion and computed fields) and `$addFields` / `$set`, over a
//! tree of the named paths: `{"a.b": 1, "a.c": 1}` and `{"a": {"b": 1, "c": 1}}` are one
//! tree, so dotted and nested specifications mean the same.

use serde_json::Value as Json;

use super::expr::Expr;
use crate::{Document, Error, Result, Value, ID_FIELD};

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Include,
    Exclude,
    Compute(Expr),
    Nested(Vec<(String, Node)>),
}

/// A parsed `$project`, or the fields of an `$addFields`.
#[derive(Debug, Clone, PartialEq)]
pub struct Project {
    tree: Vec<(String, Node)>,
    /// Inclusion (a new document of the named fields) or exclusion / addition (the document
    /// with changes).
    inclusion: bool,
    keep_id: bool,
}

fn invalid(at: &str, reason: impl Into<String>) -> Error {
    Error::query("pipeline", at, reason)
}

fn insert(tree: &mut Vec<(String, Node)>, segments: &[&str], node: Node, at: &str) -> Result<()> {
    let (first, rest) = segments.split_first().expect("a path has a segment");
    let existing = tree.iter().position(|(k, _)| k == first);
    if rest.is_empty() {
        if existing.is_some() {
            return Err(invalid(at, format!("`{first}` is named twice")));
        }
        tree.push((first.to_string(), node));
        return Ok(());
    }
    let i = match existing {
        Some(i) => i,
        None => {
            tree.push((first.to_string(), Node::Nested(Vec::new())));
            tree.len() - 1
        }
    };
    match &mut tree[i].1 {
        Node::Nested(sub) => insert(sub, rest, node, at),
        _ => Err(invalid(
            at,
            format!("`{first}` is named both whole and in part"),
        )),
    }
}

/// Reads a specification document into the tree; `computed_only` is `$addFields`.
fn read(
    spec: &serde_json::Map<String, Json>,
    prefix: &[&str],
    at: &str,
    computed_only: bool,
    tree: &mut Vec<(String, Node)>,
) -> Result<()> {
    for (k, v) in spec {
        let here = format!("{at}.{k}");
        if k.is_empty() || k.starts_with('$') {
            return Err(invalid(&here, format!("`{k}` is not a field name")));
        }
        let mut path: Vec<&str> = prefix.to_vec();
        for segment in k.split('.') {
            crate::names::validate_field(segment)?;
            path.push(segment);
        }
        let node = match v {
            Json::Bool(_) | Json::Number(_) if !computed_only => {
                let on = match v {
                    Json::Bool(b) => *b,
                    n => n.as_f64() != Some(0.0),
                };
                if on {
                    Node::Include
                } else {
                    Node::Exclude
                }
            }
            Json::Object(m) if !m.is_empty() && !m.keys().any(|k| k.starts_with('$')) => {
                read(m, &path, &here, computed_only, tree)?;
                continue;
            }
            other => Node::Compute(Expr::parse(other, &here)?),
        };
        insert(tree, &path, node, &here)?;
    }
    Ok(())
}

fn kinds(tree: &[(String, Node)], top: bool, out: &mut (bool, bool)) {
    for (k, node) in tree {
        match node {
            Node::Exclude if top && k == ID_FIELD => {}
            Node::Exclude => out.1 = true,
            Node::Include | Node::Compute(_) => out.0 = true,
            Node::Nested(sub) => kinds(sub, false, out),
        }
    }
}

impl Project {
    /// Parses a `$project` specification.
    pub fn parse(json: &Json, at: &str) -> Result<Project> {
        let Json::Object(spec) = json else {
            return Err(invalid(at, "`$project` takes a document"));
        };
        if spec.is_empty() {
            return Err(invalid(at, "`$project` needs at least one field"));
        }
        let mut tree = Vec::new();
        read(spec, &[], at, false, &mut tree)?;
        let mut k = (false, false);
        kinds(&tree, true, &mut k);
        if k.0 && k.1 {
            return Err(invalid(
                at,
                "a `$project` either includes or computes fields, or excludes them; not both (except `_id`)",
            ));
        }
        let keep_id = !matches!(
            tree.iter().find(|(k, _)| k == ID_FIELD),
            Some((_, Node::Exclude))
        );
        // `{"_id": 0}` alone excludes; anything included or computed makes it an inclusion.
        Ok(Project {
            tree,
            inclusion: k.0,
            keep_id,
        })
    }

    /// Parses `$addFields` (or `$set`): computed fields added to, or replacing those of,
    /// each document.
    pub fn parse_add_fields(json: &Json, at: &str) -> Result<Project> {
        let Json::Object(spec) = json else {
            return Err(invalid(at, "`$addFields` takes a document"));
        };
        let mut tree = Vec::new();
        read(spec, &[], at, true, &mut tree)?;
        Ok(Project {
            tree,
            inclusion: false,
            keep_id: true,
        })
    }

    /// The projected document.
    pub fn apply(&self, doc: Document, at: &str) -> Result<Document> {
        if self.inclusion {
            let mut out = Document::new();
            if self.keep_id && !self.tree.iter().any(|(k, _)| k == ID_FIELD) {
                if let Some(id) = doc.id() {
                    out.insert(ID_FIELD, id.clone());
                }
            }
            include(&self.tree, &doc, &doc, &mut out, at)?;
            Ok(out)
        } else {
            let root = doc.clone();
            let mut out = doc;
            change(&self.tree, &root, &mut out, at)?;
            Ok(out)
        }
    }
}

fn include(
    tree: &[(String, Node)],
    root: &Document,
    here: &Document,
    out: &mut Document,
    at: &str,
) -> Result<()> {
    for (k, node) in tree {
        match node {
            Node::Include => {
                if let Some(v) = here.get(k) {
                    out.insert(k.clone(), v.clone());
                }
            }
            Node::Exclude => {}
            Node::Compute(e) => {
                if let Some(v) = e.eval(root, at)? {
                    out.insert(k.clone(), v);
                }
            }
            Node::Nested(sub) => match here.get(k) {
                Some(v) => {
                    if let Some(v) = include_value(sub, root, v, at)? {
                        out.insert(k.clone(), v);
                    }
                }
                None if computes(sub) => {
                    let mut inner = Document::new();
                    include(sub, root, &Document::new(), &mut inner, at)?;
                    out.insert(k.clone(), Value::Object(inner));
                }
                None => {}
            },
        }
    }
    Ok(())
}

fn computes(tree: &[(String, Node)]) -> bool {
    tree.iter().any(|(_, n)| match n {
        Node::Compute(_) => true,
        Node::Nested(sub) => computes(sub),
        _ => false,
    })
}

/// A sub-projection of a value: documents keep the named fields, arrays are projected
/// element by element, and other values are dropped, as MongoDB does.
fn include_value(
    tree: &[(String, Node)],
    root: &Document,
    v: &Value,
    at: &str,
) -> Result<Option<Value>> {
    Ok(match v {
        Value::Object(d) => {
            let mut inner = Document::new();
            include(tree, root, d, &mut inner, at)?;
            Some(Value::Object(inner))
        }
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                if let Some(x) = include_value(tree, root, item, at)? {
                    out.push(x);
                }
            }
            Some(Value::Array(out))
        }
        _ => None,
    })
}

/// Exclusion and addition: fields removed or set in place.
fn change(tree: &[(String, Node)], root: &Document, here: &mut Document, at: &str) -> Result<()> {
    for (k, node) in tree {
        match node {
            Node::Exclude => {
                here.remove(k);
            }
            Node::Include => {}
            Node::Compute(e) => match e.eval(root, at)? {
                Some(v) => {
                    here.insert(k.clone(), v);
                }
                None => {
                    here.remove(k);
                }
            },
            Node::Nested(sub) => match here.get_mut(k) {
                Some(Value::Object(d)) => change(sub, root, d, at)?,
                Some(Value::Array(items)) => {
                    for item in items.iter_mut() {
                        if let Value::Object(d) = item {
                            change(sub, root, d, at)?;
                        }
                    }
                }
                // `$addFields` of `a.b` where `a` is not a document makes it one.
                _ if computes(sub) => {
                    let mut inner = Document::new();
                    change(sub, root, &mut inner, at)?;
                    here.insert(k.clone(), Value::Object(inner));
                }
                _ => {}
            },
        }
    }
    Ok(())
}
