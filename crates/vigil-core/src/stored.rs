//! The storage format shared by the SQL backends, documented so that any client can write it.
//!
//! A document is stored as three parts:
//! - `id`: its `_id`, a string or a 64-bit integer;
//! - `doc`: JSON text of the other fields, in order. Binary values are replaced by a
//!   placeholder `{"$codec": "<name>", "$blob": [offset, length]}` (raw bytes use the codec
//!   name `bytes`);
//! - `blobs`: the binary values' bytes, concatenated (NULL/empty when there are none).
//!
//! Field names never start with `$`, so a placeholder cannot be mistaken for user data, and
//! images are stored as raw bytes, never as base64 inside JSON.

use std::cell::RefCell;

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::Value as Json;

use crate::codec::{Codecs, BYTES_CODEC};
use crate::error::Location;
use crate::{names, Document, Encoded, Error, Result, Value, ID_FIELD};

/// A document's stored parts.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredDocument {
    /// The `_id` ([`Value::String`] or [`Value::Int`]).
    pub id: Value,
    /// JSON text of every other field, binaries as placeholders.
    pub json: String,
    /// Concatenated binary values.
    pub blobs: Vec<u8>,
}

/// Checks a document before it is stored, in one walk: field names valid at every depth,
/// floats finite, `_id` (when present) a non-empty string or an integer, and, given the
/// codecs, every encoded value's codec registered and its bytes passing the codec's check.
/// `index` is the document's place in its batch, for messages.
pub fn check_document(doc: &Document, index: Option<usize>, codecs: Option<&Codecs>) -> Result<()> {
    let check = Check { index, codecs };
    // Depth first, without recursing: the walk below recurses.
    let depth = crate::depth::check_document(doc, "the document");
    if let Err(Error::InvalidDocument { reason, .. }) = depth {
        return Err(Error::InvalidDocument {
            location: check.at(""),
            reason,
        });
    }
    match doc.id() {
        Some(Value::String(s)) if !s.is_empty() => {}
        Some(Value::Int(_)) | None => {}
        Some(other) => {
            return Err(Error::InvalidDocument {
                location: check.at(ID_FIELD),
                reason: format!(
                    "_id must be a non-empty string or an integer, found {}",
                    other.kind()
                ),
            })
        }
    }
    if doc.contains(crate::listen::OUTPUTS_FIELD) {
        return Err(Error::InvalidDocument {
            location: check.at(crate::listen::OUTPUTS_FIELD),
            reason: "`_outputs` is written by listeners and cannot be stored in a document".into(),
        });
    }
    let mut path = String::new();
    check.fields(doc, &mut path)
}

struct Check<'a> {
    index: Option<usize>,
    codecs: Option<&'a Codecs>,
}

impl Check<'_> {
    fn at(&self, path: &str) -> Location {
        let loc = Location::path(path);
        match self.index {
            Some(i) => loc.in_document(i),
            None => loc,
        }
    }

    fn fields(&self, doc: &Document, path: &mut String) -> Result<()> {
        for (k, v) in doc.iter() {
            let len = path.len();
            if len > 0 {
                path.push('.');
            }
            path.push_str(k);
            names::validate_field(k).map_err(|e| Error::InvalidDocument {
                location: self.at(path),
                reason: e.to_string(),
            })?;
            self.value(v, path)?;
            path.truncate(len);
        }
        Ok(())
    }

    fn value(&self, v: &Value, path: &mut String) -> Result<()> {
        match v {
            Value::Float(f) if !f.is_finite() => Err(Error::InvalidDocument {
                location: self.at(path),
                reason: format!("{f} cannot be stored (only finite floats)"),
            }),
            Value::Object(d) => self.fields(d, path),
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let len = path.len();
                    path.push('.');
                    path.push_str(&i.to_string());
                    self.value(item, path)?;
                    path.truncate(len);
                }
                Ok(())
            }
            Value::Encoded(e) => {
                if e.codec() == BYTES_CODEC {
                    return Err(Error::InvalidDocument {
                        location: self.at(path),
                        reason: "the `bytes` codec label is reserved; use Value::Bytes".into(),
                    });
                }
                let Some(codecs) = self.codecs else {
                    return Ok(());
                };
                let codec = codecs.get(e.codec()).ok_or_else(|| Error::UnknownCodec {
                    codec: e.codec().to_string(),
                    location: self.at(path),
                })?;
                codec.validate(e.bytes()).map_err(|reason| Error::Decode {
                    codec: e.codec().to_string(),
                    location: self.at(path),
                    reason,
                })
            }
            _ => Ok(()),
        }
    }
}

struct Fields<'a> {
    doc: &'a Document,
    blobs: &'a RefCell<Vec<u8>>,
    skip_id: bool,
}

struct Field<'a> {
    value: &'a Value,
    blobs: &'a RefCell<Vec<u8>>,
}

impl Serialize for Fields<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        for (k, v) in self.doc.iter() {
            if self.skip_id && k == ID_FIELD {
                continue;
            }
            map.serialize_entry(
                k,
                &Field {
                    value: v,
                    blobs: self.blobs,
                },
            )?;
        }
        map.end()
    }
}

impl Serialize for Field<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let blob = |s: S, codec: &str, bytes: &[u8]| {
            let mut blobs = self.blobs.borrow_mut();
            let offset = blobs.len();
            blobs.extend_from_slice(bytes);
            drop(blobs);
            let mut map = s.serialize_map(Some(2))?;
            map.serialize_entry("$codec", codec)?;
            map.serialize_entry("$blob", &[offset, bytes.len()])?;
            map.end()
        };
        match self.value {
            Value::Null => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(i) => s.serialize_i64(*i),
            Value::Float(f) => s.serialize_f64(*f),
            Value::String(t) => s.serialize_str(t),
            Value::Bytes(b) => blob(s, BYTES_CODEC, b),
            Value::Encoded(e) => blob(s, e.codec(), e.bytes()),
            Value::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for v in items {
                    seq.serialize_element(&Field {
                        value: v,
                        blobs: self.blobs,
                    })?;
                }
                seq.end()
            }
            Value::Object(d) => Fields {
                doc: d,
                blobs: self.blobs,
                skip_id: false,
            }
            .serialize(s),
        }
    }
}

/// Splits a checked document (see [`check_document`]) into its stored parts.
pub fn encode(doc: &Document) -> Result<StoredDocument> {
    let id = doc.id().cloned().ok_or_else(|| Error::InvalidDocument {
        location: Location::path(ID_FIELD),
        reason: "missing _id".into(),
    })?;
    let blobs = RefCell::new(Vec::new());
    let json = serde_json::to_string(&Fields {
        doc,
        blobs: &blobs,
        skip_id: true,
    })
    .map_err(|e| Error::InvalidDocument {
        location: Location::default(),
        reason: e.to_string(),
    })?;
    Ok(StoredDocument {
        id,
        json,
        blobs: blobs.into_inner(),
    })
}

/// What replacing `old` with `replacement` stores: the replacement under `old`'s `_id`. A
/// replacement that names another `_id` is an error.
pub fn replacement(old: &Document, replacement: &Document) -> Result<Document> {
    let id = old.id().cloned().unwrap_or(Value::Null);
    if let Some(new_id) = replacement.id() {
        if *new_id != id {
            return Err(Error::InvalidDocument {
                location: Location::path(ID_FIELD),
                reason: format!(
                    "a replacement cannot change _id (from {} to {})",
                    id.to_json(),
                    new_id.to_json()
                ),
            });
        }
    }
    let mut new = replacement.clone();
    new.remove(ID_FIELD);
    new.insert_first(ID_FIELD, id);
    Ok(new)
}

/// Rebuilds a document from its stored parts; `collection` names it in errors.
pub fn decode(id: Value, json: &str, blobs: &[u8], collection: &str) -> Result<Document> {
    let corrupt = |reason: String| Error::Corrupt {
        collection: collection.to_string(),
        reason,
    };
    let parsed: Json = serde_json::from_str(json)
        .map_err(|e| corrupt(format!("document {}: {e}", id.to_json())))?;
    let Json::Object(map) = parsed else {
        return Err(corrupt(format!(
            "document {} is not a JSON object",
            id.to_json()
        )));
    };
    let mut doc = Document::new();
    doc.insert(ID_FIELD, id);
    for (k, v) in map {
        let value =
            from_stored(v, blobs).map_err(|reason| corrupt(format!("field `{k}`: {reason}")))?;
        doc.insert(k, value);
    }
    Ok(doc)
}

/// Decodes the outputs a SQL backend gathers for one document, a JSON array of
/// `[listener id, output doc, hex of output blobs]`, into the document's `_outputs`:
/// `{key: {model: value}}`, given each listener's (key, model). None when there are none.
pub fn decode_outputs(
    json: &str,
    names: &std::collections::HashMap<i64, (String, String)>,
    collection: &str,
) -> Result<Option<Document>> {
    let corrupt = |reason: String| Error::Corrupt {
        collection: format!("vigil_outputs of {collection}"),
        reason,
    };
    let rows: Vec<(i64, String, Option<String>)> =
        serde_json::from_str(json).map_err(|e| corrupt(e.to_string()))?;
    if rows.is_empty() {
        return Ok(None);
    }
    let mut outputs = Document::new();
    for (listener, doc, blobs) in rows {
        let Some((key, model)) = names.get(&listener) else {
            continue;
        };
        let blobs = unhex(blobs.as_deref().unwrap_or(""))
            .ok_or_else(|| corrupt("blobs are not hex".into()))?;
        let mut decoded = decode(Value::Null, &doc, &blobs, "vigil_outputs")?;
        let value = decoded.remove("v").unwrap_or(Value::Null);
        match outputs.get_mut(key) {
            Some(Value::Object(models)) => {
                models.insert(model.clone(), value);
            }
            _ => {
                outputs.insert(key.clone(), Document::new().with(model.clone(), value));
            }
        }
    }
    Ok(Some(outputs))
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn from_stored(json: Json, blobs: &[u8]) -> std::result::Result<Value, String> {
    Ok(match json {
        Json::Object(map) => {
            if let Some(Json::String(codec)) = map.get("$codec") {
                let range = map
                    .get("$blob")
                    .and_then(Json::as_array)
                    .filter(|a| a.len() == 2)
                    .and_then(|a| Some((a[0].as_u64()? as usize, a[1].as_u64()? as usize)))
                    .ok_or("binary placeholder without a valid `$blob` [offset, length]")?;
                let bytes = range
                    .0
                    .checked_add(range.1)
                    .and_then(|end| blobs.get(range.0..end))
                    .ok_or_else(|| {
                        format!(
                            "blob range {range:?} outside the {} stored bytes",
                            blobs.len()
                        )
                    })?
                    .to_vec();
                return Ok(if codec == BYTES_CODEC {
                    Value::Bytes(bytes)
                } else {
                    Value::Encoded(Encoded::new(codec.clone(), bytes))
                });
            }
            let mut doc = Document::new();
            for (k, v) in map {
                doc.insert(k, from_stored(v, blobs)?);
            }
            Value::Object(doc)
        }
        Json::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|v| from_stored(v, blobs))
                .collect::<std::result::Result<_, _>>()?,
        ),
        other => Value::from_json(&other),
    })
}
