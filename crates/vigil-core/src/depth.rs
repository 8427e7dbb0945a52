//! How deep documents, filters and updates may nest. Everything vigil does with a value walks
//! it; a limit checked up front, without recursion, keeps a value built in code nested
//! 100,000 levels deep from exhausting the stack. The limit is MongoDB's.

use serde_json::Value as Json;

use crate::{Error, Location, Result, Value};

/// The deepest nesting accepted (a top-level field's value is at depth 1).
pub const MAX_DEPTH: usize = 100;

fn too_deep(what: &str) -> Error {
    Error::InvalidDocument {
        location: Location::default(),
        reason: format!("{what} nests more than {MAX_DEPTH} levels deep"),
    }
}

/// Checks a value's depth without recursing.
pub fn check_value(value: &Value, what: &str) -> Result<()> {
    walk(vec![(value, 0)], what)
}

/// Checks a document's depth (its fields' values are at depth 1) without recursing.
pub fn check_document(doc: &crate::Document, what: &str) -> Result<()> {
    walk(doc.iter().map(|(_, v)| (v, 1)).collect(), what)
}

fn walk(mut stack: Vec<(&Value, usize)>, what: &str) -> Result<()> {
    while let Some((v, depth)) = stack.pop() {
        if depth > MAX_DEPTH {
            return Err(too_deep(what));
        }
        match v {
            Value::Object(d) => stack.extend(d.iter().map(|(_, v)| (v, depth + 1))),
            Value::Array(items) => stack.extend(items.iter().map(|v| (v, depth + 1))),
            _ => {}
        }
    }
    Ok(())
}

/// Checks plain JSON's depth without recursing.
pub fn check_json(json: &Json, what: &str) -> Result<()> {
    let mut stack: Vec<(&Json, usize)> = vec![(json, 0)];
    while let Some((v, depth)) = stack.pop() {
        if depth > MAX_DEPTH {
            return Err(too_deep(what));
        }
        match v {
            Json::Object(m) => stack.extend(m.values().map(|v| (v, depth + 1))),
            Json::Array(items) => stack.extend(items.iter().map(|v| (v, depth + 1))),
            _ => {}
        }
    }
    Ok(())
}

/// Drops JSON without recursing. serde_json's own drop recurses, so JSON built in code nested
/// deep enough would exhaust the stack of whoever drops it; vigil drops the filters it is
/// given through this.
pub fn dispose_json(json: Json) {
    let mut stack = vec![json];
    while let Some(v) = stack.pop() {
        match v {
            Json::Object(m) => stack.extend(m.into_iter().map(|(_, v)| v)),
            Json::Array(a) => stack.extend(a),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Document;

    #[test]
    fn values_nested_100_000_deep_are_refused_and_dropped_without_recursing() {
        let mut doc = Document::new().with("leaf", 1);
        for _ in 0..100_000 {
            doc = Document::new().with("a", Value::Array(vec![Value::Object(doc)]));
        }
        let v = Value::Object(doc);
        assert!(check_value(&v, "the document")
            .unwrap_err()
            .to_string()
            .contains("more than 100 levels"));
        drop(v); // iterative: no stack overflow on this test thread's small stack
        let mut json = Json::from(1);
        for _ in 0..100_000 {
            let mut map = serde_json::Map::new();
            map.insert("a".into(), json);
            json = Json::Object(map);
        }
        assert!(check_json(&json, "the filter").is_err());
        // serde_json's own drop recurses: give it room, as a caller building such JSON must.
        std::thread::Builder::new()
            .stack_size(256 << 20)
            .spawn(move || drop(json))
            .unwrap()
            .join()
            .unwrap();
        let mut ok = Document::new().with("x", 1);
        for _ in 0..MAX_DEPTH - 1 {
            ok = Document::new().with("a", ok);
        }
        check_value(&Value::Object(ok), "the document").unwrap();
    }
}
