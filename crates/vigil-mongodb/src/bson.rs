//! vigil's values as BSON, and back. The format (stable, documented in ARCHITECTURE.md):
//!
//! - null, booleans, strings, arrays and documents are themselves; integers are `Int64`
//!   (an `Int32` written by another client reads as an integer too); floats are `Double`;
//! - raw bytes are BSON `Binary` (generic subtype);
//! - an encoded value (an image, a tensor, a user codec) is a sub-document
//!   `{"_codec": "image/png", "_bytes": Binary}`: the bytes as BSON Binary with their codec
//!   named beside them, so any client can read both;
//! - `_id`s are kept as they are. An `ObjectId` (the id pymongo and mongosh make) reads as its
//!   24-hex string, and a filter on such a string matches the string or the ObjectId.
//!
//! Other BSON types written by other clients (dates, decimals, timestamps, …) read as their
//! relaxed extended JSON, e.g. `{"$date": "…"}`.

use mongodb::bson::{self, oid::ObjectId, spec::BinarySubtype, Binary, Bson};
use vigil_core::listen::ListenerRecord;
use vigil_core::{Document, Encoded, Value, OUTPUTS_FIELD};

/// The field naming an encoded value's codec.
pub(crate) const CODEC_FIELD: &str = "_codec";
/// The field holding an encoded value's bytes.
pub(crate) const BYTES_FIELD: &str = "_bytes";

/// A vigil value as BSON.
pub(crate) fn to_bson(value: &Value) -> Bson {
    match value {
        Value::Null => Bson::Null,
        Value::Bool(b) => Bson::Boolean(*b),
        Value::Int(i) => Bson::Int64(*i),
        Value::Float(f) => Bson::Double(*f),
        Value::String(s) => Bson::String(s.clone()),
        Value::Bytes(b) => binary(b.clone()),
        Value::Array(items) => Bson::Array(items.iter().map(to_bson).collect()),
        Value::Object(doc) => Bson::Document(to_document(doc)),
        Value::Encoded(e) => {
            let mut d = bson::Document::new();
            d.insert(CODEC_FIELD, e.codec());
            d.insert(BYTES_FIELD, binary(e.bytes().to_vec()));
            Bson::Document(d)
        }
    }
}

fn binary(bytes: Vec<u8>) -> Bson {
    Bson::Binary(Binary {
        subtype: BinarySubtype::Generic,
        bytes,
    })
}

/// A vigil document as a BSON document, fields in order.
pub(crate) fn to_document(doc: &Document) -> bson::Document {
    doc.iter()
        .map(|(k, v)| (k.to_string(), to_bson(v)))
        .collect()
}

/// BSON as a vigil value (see the module's doc for what each type becomes).
pub(crate) fn from_bson(value: Bson) -> Value {
    match value {
        Bson::Null | Bson::Undefined => Value::Null,
        Bson::Boolean(b) => Value::Bool(b),
        Bson::Int32(i) => Value::Int(i64::from(i)),
        Bson::Int64(i) => Value::Int(i),
        Bson::Double(f) => Value::Float(f),
        Bson::String(s) | Bson::Symbol(s) => Value::String(s),
        Bson::ObjectId(oid) => Value::String(oid.to_hex()),
        Bson::Binary(b) => Value::Bytes(b.bytes),
        Bson::Array(items) => Value::Array(items.into_iter().map(from_bson).collect()),
        Bson::Document(d) => match encoded(&d) {
            Some(e) => Value::Encoded(e),
            None => Value::Object(from_document(d)),
        },
        other => Value::from_json(&other.into_relaxed_extjson()),
    }
}

/// The encoded value a `{"_codec", "_bytes"}` sub-document holds.
fn encoded(d: &bson::Document) -> Option<Encoded> {
    if d.len() != 2 {
        return None;
    }
    match (d.get(CODEC_FIELD), d.get(BYTES_FIELD)) {
        (Some(Bson::String(codec)), Some(Bson::Binary(b))) if codec != "bytes" => {
            Some(Encoded::new(codec.clone(), b.bytes.clone()))
        }
        _ => None,
    }
}

/// A BSON document as a vigil document.
pub(crate) fn from_document(d: bson::Document) -> Document {
    let mut doc = Document::new();
    for (k, v) in d {
        doc.insert(k, from_bson(v));
    }
    doc
}

/// JSON (a filter's operand, a select) as BSON, numbers kept as integers where they are.
pub(crate) fn json_to_bson(json: &serde_json::Value) -> Bson {
    match json {
        serde_json::Value::Null => Bson::Null,
        serde_json::Value::Bool(b) => Bson::Boolean(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Bson::Int64(i),
            None => Bson::Double(n.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(s) => Bson::String(s.clone()),
        serde_json::Value::Array(items) => Bson::Array(items.iter().map(json_to_bson).collect()),
        serde_json::Value::Object(map) => Bson::Document(
            map.iter()
                .map(|(k, v)| (k.clone(), json_to_bson(v)))
                .collect(),
        ),
    }
}

/// How a document is addressed by `_id` in a filter: a 24-hex string matches the string or
/// the ObjectId it spells, anything else itself.
pub(crate) fn id_match(id: &Value) -> Bson {
    let plain = to_bson(id);
    match id {
        Value::String(s) => match object_id(s) {
            Some(oid) => bson::bson!({ "$in": [plain, oid] }),
            None => plain,
        },
        _ => plain,
    }
}

/// The ObjectId a 24-hex string spells.
pub(crate) fn object_id(s: &str) -> Option<ObjectId> {
    (s.len() == 24)
        .then(|| ObjectId::parse_str(s).ok())
        .flatten()
}

/// The key a document's id has in vigil's own collections (queue, outputs, errors): its JSON
/// text, so that any id type keys them and an ObjectId keys as its hex string.
pub(crate) fn id_key(id: &Value) -> String {
    id.to_json().to_string()
}

/// A stored document as `find` returns it. Outputs are stored nested by path
/// (`_outputs.img.lenet5`, and for a chain `_outputs._outputs.img.lenet5.parity`); they are
/// shown as every backend shows them, `{key: {model: value}}` per listener of the collection.
pub(crate) fn shown(mut stored: bson::Document, listeners: &[ListenerRecord]) -> Document {
    let nested = stored.remove(OUTPUTS_FIELD);
    let mut doc = from_document(stored);
    let Some(Bson::Document(nested)) = nested else {
        return doc;
    };
    let mut outputs = Document::new();
    for listener in listeners {
        let mut at = Some(&nested);
        let mut value = None;
        let segments: Vec<&str> = listener
            .key
            .split('.')
            .chain(std::iter::once(listener.model.as_str()))
            .collect();
        for (i, segment) in segments.iter().enumerate() {
            let Some(d) = at else { break };
            match d.get(*segment) {
                Some(v) if i + 1 == segments.len() => value = Some(v.clone()),
                Some(Bson::Document(inner)) => at = Some(inner),
                _ => break,
            }
        }
        let Some(value) = value else { continue };
        match outputs.get_mut(&listener.key) {
            Some(Value::Object(models)) => {
                models.insert(listener.model.clone(), from_bson(value));
            }
            _ => {
                outputs.insert(
                    listener.key.clone(),
                    Document::new().with(listener.model.clone(), from_bson(value)),
                );
            }
        }
    }
    if !outputs.is_empty() {
        doc.insert(OUTPUTS_FIELD, outputs);
    }
    doc
}
