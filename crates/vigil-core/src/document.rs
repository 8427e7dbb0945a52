//! [`Document`]: an ordered map of field to [`Value`].

use indexmap::IndexMap;

use crate::Value;

/// The field every document is identified by.
pub const ID_FIELD: &str = "_id";
/// The field that splits training from validation data (`"train"` or `"valid"`).
pub const FOLD_FIELD: &str = "_fold";

/// An ordered map of field name to value. Field order is kept through storage.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Document {
    fields: IndexMap<String, Value>,
}

impl Document {
    /// An empty document.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builder form of [`Document::insert`].
    pub fn with(mut self, field: impl Into<String>, value: impl Into<Value>) -> Self {
        self.insert(field, value);
        self
    }

    /// Sets `field` (keeping its position if it exists), returning the old value.
    pub fn insert(&mut self, field: impl Into<String>, value: impl Into<Value>) -> Option<Value> {
        self.fields.insert(field.into(), value.into())
    }

    /// Sets `field` at the front (used for `_id`).
    pub fn insert_first(&mut self, field: impl Into<String>, value: impl Into<Value>) {
        self.fields.shift_insert(0, field.into(), value.into());
    }

    /// The value of a top-level field.
    pub fn get(&self, field: &str) -> Option<&Value> {
        self.fields.get(field)
    }

    /// The value at a dotted path (`"a.b.c"`) through nested documents.
    pub fn get_path(&self, path: &str) -> Option<&Value> {
        let mut parts = path.split('.');
        let mut current = self.fields.get(parts.next()?)?;
        for part in parts {
            current = current.as_document()?.fields.get(part)?;
        }
        Some(current)
    }

    /// A mutable reference to a top-level field.
    pub fn get_mut(&mut self, field: &str) -> Option<&mut Value> {
        self.fields.get_mut(field)
    }

    /// Removes a top-level field, keeping the order of the others.
    pub fn remove(&mut self, field: &str) -> Option<Value> {
        self.fields.shift_remove(field)
    }

    /// Whether the top-level field is present.
    pub fn contains(&self, field: &str) -> bool {
        self.fields.contains_key(field)
    }

    /// The document's `_id`, if it has one.
    pub fn id(&self) -> Option<&Value> {
        self.get(ID_FIELD)
    }

    /// Number of top-level fields.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Fields in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.fields.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Plain JSON (binary values as `{"$codec", "$base64"}`), for display and export.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Object(
            self.fields
                .iter()
                .map(|(k, v)| (k.clone(), v.to_json()))
                .collect(),
        )
    }
}

impl FromIterator<(String, Value)> for Document {
    fn from_iter<I: IntoIterator<Item = (String, Value)>>(iter: I) -> Self {
        Document {
            fields: iter.into_iter().collect(),
        }
    }
}

impl IntoIterator for Document {
    type Item = (String, Value);
    type IntoIter = indexmap::map::IntoIter<String, Value>;
    fn into_iter(mut self) -> Self::IntoIter {
        std::mem::take(&mut self.fields).into_iter()
    }
}

impl TryFrom<serde_json::Value> for Document {
    type Error = crate::Error;
    /// A JSON object becomes a document; anything else is an error.
    fn try_from(json: serde_json::Value) -> crate::Result<Self> {
        crate::depth::check_json(&json, "the document")?;
        match Value::from_json(&json) {
            Value::Object(d) => Ok(d),
            other => Err(crate::Error::WrongType {
                expected: "a JSON object",
                found: other.kind(),
            }),
        }
    }
}

/// Nested documents and arrays are taken apart level by level, so dropping a document nested
/// arbitrarily deep (built in code: parsers stop at [`crate::depth::MAX_DEPTH`]) never
/// exhausts the stack.
impl Drop for Document {
    fn drop(&mut self) {
        fn nested(v: &Value) -> bool {
            matches!(v, Value::Object(d) if !d.is_empty())
                || matches!(v, Value::Array(a) if !a.is_empty())
        }
        if !self.fields.values().any(nested) {
            return;
        }
        let mut stack: Vec<Value> = self
            .fields
            .drain(..)
            .map(|(_, v)| v)
            .filter(nested)
            .collect();
        while let Some(v) = stack.pop() {
            match v {
                Value::Object(mut d) => {
                    stack.extend(d.fields.drain(..).map(|(_, v)| v).filter(nested))
                }
                Value::Array(mut a) => stack.extend(a.drain(..).filter(nested)),
                _ => {}
            }
        }
    }
}

/// Readable JSON-like text, fields in their order; see [`Value`]'s `Display`.
impl std::fmt::Display for Document {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("{")?;
        for (i, (k, v)) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}: {v}", serde_json::Value::String(k.to_string()))?;
        }
        f.write_str("}")
    }
}

#[cfg(test)]
mod display_tests {
    use crate::{Document, Encoded, Value};

    #[test]
    fn documents_print_as_readable_json() {
        let doc = Document::new()
            .with(
                "img",
                Value::Encoded(Encoded::new("image/png", vec![0; 312])),
            )
            .with("class", 7)
            .with("p", 0.5)
            .with("tags", Value::Array(vec!["a\"b".into(), Value::Null]))
            .with(
                "_outputs",
                Document::new().with("img", Document::new().with("lenet5", 6)),
            );
        assert_eq!(
            doc.to_string(),
            r#"{"img": <image/png, 312 bytes>, "class": 7, "p": 0.5, "tags": ["a\"b", null], "_outputs": {"img": {"lenet5": 6}}}"#
        );
    }
}
