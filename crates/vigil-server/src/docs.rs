//! Documents as the API writes them, and document ids as URLs carry them.

use serde::Deserialize;
use serde_json::{json, Map, Value as Json};
use vigil::{Document, Value};

/// How binary values (images, tensors, bytes) appear in documents the API returns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Binary {
    /// `{"$codec": "image/png", "$base64": "…"}`: lossless, and insertable as it is.
    #[default]
    Base64,
    /// `{"$codec": "image/png", "$bytes": 312, "$url": "/api/collections/…"}`: the bytes are
    /// fetched from their own URL (served with the codec as content type when it is one).
    Url,
}

/// Characters kept as they are in a URL path segment (RFC 3986 unreserved).
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The URL segment of a document id: its text, percent-encoded.
pub fn id_segment(id: &Value) -> String {
    match id {
        Value::Int(i) => i.to_string(),
        Value::String(s) => encode_segment(s),
        other => encode_segment(&other.to_string()),
    }
}

/// The filter finding a document from the id in a URL. Ids are strings or integers and a URL
/// cannot tell which, so a segment that reads as an integer matches either form.
pub fn id_filter(segment: &str) -> Json {
    match segment.parse::<i64>() {
        Ok(n) => json!({"_id": {"$in": [n, segment]}}),
        Err(_) => json!({"_id": segment}),
    }
}

/// A document as JSON, binary values written as `binary` says.
pub fn document_json(doc: &Document, binary: Binary, collection: &str) -> Json {
    match binary {
        Binary::Base64 => doc.to_json(),
        Binary::Url => {
            let base = doc
                .id()
                .map(|id| {
                    format!(
                        "/api/collections/{}/documents/{}",
                        encode_segment(collection),
                        id_segment(id)
                    )
                })
                .unwrap_or_default();
            let mut path = Vec::new();
            Json::Object(object_with_urls(doc, &base, &mut path))
        }
    }
}

fn object_with_urls(doc: &Document, base: &str, path: &mut Vec<String>) -> Map<String, Json> {
    doc.iter()
        .map(|(k, v)| {
            path.push(k.to_string());
            let out = with_urls(v, base, path);
            path.pop();
            (k.to_string(), out)
        })
        .collect()
}

fn with_urls(v: &Value, base: &str, path: &mut Vec<String>) -> Json {
    let link = |codec: &str, len: usize, path: &[String]| {
        let segments: Vec<String> = path.iter().map(|p| encode_segment(p)).collect();
        json!({"$codec": codec, "$bytes": len, "$url": format!("{base}/{}", segments.join("/"))})
    };
    match v {
        Value::Encoded(e) => link(e.codec(), e.bytes().len(), path),
        Value::Bytes(b) => link(vigil::codec::BYTES_CODEC, b.len(), path),
        Value::Object(d) => Json::Object(object_with_urls(d, base, path)),
        Value::Array(items) => Json::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    path.push(i.to_string());
                    let out = with_urls(item, base, path);
                    path.pop();
                    out
                })
                .collect(),
        ),
        other => other.to_json(),
    }
}

/// The value at a path of segments (field names and array indexes).
pub fn value_at<'d>(doc: &'d Document, segments: &[&str]) -> Option<&'d Value> {
    let (first, rest) = segments.split_first()?;
    let mut v = doc.get(first)?;
    for s in rest {
        v = match v {
            Value::Object(d) => d.get(s)?,
            Value::Array(items) => items.get(s.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_values_link_to_their_own_urls() {
        let doc = Document::new()
            .with("_id", "a b/c")
            .with(
                "img",
                Value::Encoded(vigil::Encoded::new("image/png", vec![1, 2, 3])),
            )
            .with("more", vec![Value::Bytes(vec![9])]);
        let j = document_json(&doc, Binary::Url, "mnist");
        assert_eq!(
            j["img"],
            json!({"$codec": "image/png", "$bytes": 3,
                   "$url": "/api/collections/mnist/documents/a%20b%2Fc/img"})
        );
        assert_eq!(
            j["more"][0]["$url"],
            "/api/collections/mnist/documents/a%20b%2Fc/more/0"
        );
        assert_eq!(value_at(&doc, &["more", "0"]), Some(&Value::Bytes(vec![9])));
        assert_eq!(value_at(&doc, &["more", "x"]), None);
        assert_eq!(document_json(&doc, Binary::Base64, "mnist"), doc.to_json());
        assert_eq!(id_filter("42"), json!({"_id": {"$in": [42, "42"]}}));
    }
}
