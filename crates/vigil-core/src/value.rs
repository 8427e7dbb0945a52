//! [`Value`]: what a document field holds.

use crate::codec::{PngCodec, Tensor, TensorCodec};
use crate::{Document, Error, Result};

/// A field's value. Rich values (images, tensors, user types) are [`Value::Encoded`]: bytes plus
/// the name of the codec that reads them, so reading needs no schema.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// JSON null.
    Null,
    /// true / false.
    Bool(bool),
    /// A 64-bit signed integer.
    Int(i64),
    /// A finite 64-bit float (NaN and infinities are refused on insert).
    Float(f64),
    /// UTF-8 text.
    String(String),
    /// Raw bytes (stored under the `bytes` codec).
    Bytes(Vec<u8>),
    /// An ordered list.
    Array(Vec<Value>),
    /// A nested document.
    Object(Document),
    /// Bytes under a named codec (`image/png`, `tensor`, or one the user registered).
    Encoded(Encoded),
}

/// Bytes labelled with the codec that decodes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    codec: String,
    bytes: Vec<u8>,
}

impl Encoded {
    /// Labels `bytes` with `codec`. The label `bytes` is reserved for [`Value::Bytes`].
    pub fn new(codec: impl Into<String>, bytes: Vec<u8>) -> Self {
        Encoded {
            codec: codec.into(),
            bytes,
        }
    }

    /// The codec's name.
    pub fn codec(&self) -> &str {
        &self.codec
    }

    /// The encoded bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The encoded bytes, by value.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

impl Value {
    /// Encodes an image as PNG (grayscale, RGB and the other PNG colour types keep their type).
    pub fn image(image: &image::DynamicImage) -> Result<Value> {
        Ok(Value::Encoded(PngCodec::encode(image)?))
    }

    /// Encodes a tensor under the `tensor` codec.
    pub fn tensor(tensor: &Tensor) -> Value {
        Value::Encoded(TensorCodec::encode(tensor))
    }

    /// Decodes an `image/png` value.
    pub fn to_image(&self) -> Result<image::DynamicImage> {
        match self {
            Value::Encoded(e) if e.codec == PngCodec::NAME => PngCodec::decode(&e.bytes),
            other => Err(other.wrong_type("an image/png value")),
        }
    }

    /// Decodes a `tensor` value.
    pub fn to_tensor(&self) -> Result<Tensor> {
        match self {
            Value::Encoded(e) if e.codec == TensorCodec::NAME => TensorCodec::decode(&e.bytes),
            other => Err(other.wrong_type("a tensor value")),
        }
    }

    /// The integer, if this is one.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The number as a float, if this is an integer or a float.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// The text, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The nested document, if this is one.
    pub fn as_document(&self) -> Option<&Document> {
        match self {
            Value::Object(d) => Some(d),
            _ => None,
        }
    }

    /// A short name of the value's kind, for messages.
    pub fn kind(&self) -> String {
        match self {
            Value::Null => "null".into(),
            Value::Bool(_) => "a boolean".into(),
            Value::Int(_) => "an integer".into(),
            Value::Float(_) => "a float".into(),
            Value::String(_) => "a string".into(),
            Value::Bytes(_) => "bytes".into(),
            Value::Array(_) => "an array".into(),
            Value::Object(_) => "an object".into(),
            Value::Encoded(e) => format!("a `{}` value", e.codec),
        }
    }

    fn wrong_type(&self, expected: &'static str) -> Error {
        Error::WrongType {
            expected,
            found: self.kind(),
        }
    }

    /// Converts plain JSON into a value (numbers that fit i64 become `Int`).
    pub fn from_json(json: &serde_json::Value) -> Value {
        match json {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                // serde_json numbers are always representable as f64 (lossy for huge u64).
                None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            serde_json::Value::String(s) => Value::String(s.clone()),
            serde_json::Value::Array(a) => Value::Array(a.iter().map(Value::from_json).collect()),
            serde_json::Value::Object(o) => Value::Object(
                o.iter()
                    .map(|(k, v)| (k.clone(), Value::from_json(v)))
                    .collect(),
            ),
        }
    }

    /// Converts to plain JSON, for filters and display. Binary values become
    /// `{"$codec": name, "$base64": data}`; non-finite floats become null.
    pub fn to_json(&self) -> serde_json::Value {
        use base64::Engine as _;
        let b64 = |codec: &str, bytes: &[u8]| {
            serde_json::json!({
                "$codec": codec,
                "$base64": base64::engine::general_purpose::STANDARD.encode(bytes)
            })
        };
        match self {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Int(i) => serde_json::Value::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            Value::String(s) => serde_json::Value::String(s.clone()),
            Value::Bytes(b) => b64(crate::codec::BYTES_CODEC, b),
            Value::Array(a) => serde_json::Value::Array(a.iter().map(Value::to_json).collect()),
            Value::Object(d) => d.to_json(),
            Value::Encoded(e) => b64(&e.codec, &e.bytes),
        }
    }
}

/// The inverse of [`Value::to_json`], for values that arrive as JSON text (the HTTP API, the
/// CLI): an object whose only keys are `$codec` and `$base64` is a binary value (`bytes`
/// becomes [`Value::Bytes`], any other codec an [`Encoded`] value for that codec, checked
/// against the registered codecs when stored); everything else is read as by
/// [`Value::from_json`]. Nesting is limited as for documents; bad base64 is an error naming the
/// field.
impl Value {
    /// See above: JSON with `{"$codec", "$base64"}` binary values, as [`Value::to_json`] writes.
    pub fn from_extended_json(json: &serde_json::Value) -> Result<Value> {
        crate::depth::check_json(json, "the value")?;
        extended(json, &mut String::new())
    }
}

fn extended(json: &serde_json::Value, path: &mut String) -> Result<Value> {
    use base64::Engine as _;
    use serde_json::Value as Json;
    Ok(match json {
        Json::Object(o)
            if o.len() == 2 && o.contains_key("$codec") && o.contains_key("$base64") =>
        {
            let bad = |reason: String| Error::InvalidDocument {
                location: crate::Location::path(path.clone()),
                reason,
            };
            let (Some(codec), Some(data)) = (o["$codec"].as_str(), o["$base64"].as_str()) else {
                return Err(bad("`$codec` and `$base64` must be strings".into()));
            };
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(data)
                .map_err(|e| bad(format!("`$base64` is not base64: {e}")))?;
            if codec == crate::codec::BYTES_CODEC {
                Value::Bytes(bytes)
            } else {
                Value::Encoded(Encoded::new(codec, bytes))
            }
        }
        Json::Object(o) => {
            let mut doc = Document::new();
            for (k, v) in o {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                let value = extended(v, path)?;
                path.truncate(len);
                doc.insert(k.clone(), value);
            }
            Value::Object(doc)
        }
        Json::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, v) in items.iter().enumerate() {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(&i.to_string());
                out.push(extended(v, path)?);
                path.truncate(len);
            }
            Value::Array(out)
        }
        other => Value::from_json(other),
    })
}

macro_rules! from_impls {
    ($($t:ty => $variant:ident via $conv:expr),* $(,)?) => {
        $(impl From<$t> for Value {
            fn from(v: $t) -> Value {
                Value::$variant($conv(v))
            }
        })*
    };
}

from_impls! {
    bool => Bool via std::convert::identity,
    i32 => Int via i64::from,
    i64 => Int via std::convert::identity,
    u8 => Int via i64::from,
    u32 => Int via i64::from,
    f32 => Float via f64::from,
    f64 => Float via std::convert::identity,
    String => String via std::convert::identity,
    &str => String via str::to_string,
    Vec<u8> => Bytes via std::convert::identity,
    Document => Object via std::convert::identity,
    Encoded => Encoded via std::convert::identity,
    Vec<Value> => Array via std::convert::identity,
}

impl From<serde_json::Value> for Value {
    fn from(v: serde_json::Value) -> Value {
        Value::from_json(&v)
    }
}

/// Readable JSON-like text: `{"img": <image/png, 312 bytes>, "class": 7}`. Binary values show
/// their codec and size rather than their bytes, so a document prints on one line; use
/// [`Value::to_json`] for text another program parses.
impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) if x.is_finite() => write!(f, "{x:?}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::String(s) => write!(f, "{}", serde_json::Value::String(s.clone())),
            Value::Bytes(b) => write!(f, "<bytes, {} bytes>", b.len()),
            Value::Array(items) => {
                f.write_str("[")?;
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("]")
            }
            Value::Object(d) => write!(f, "{d}"),
            Value::Encoded(e) => write!(f, "<{}, {} bytes>", e.codec, e.bytes.len()),
        }
    }
}
