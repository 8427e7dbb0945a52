//! Documents rendered for people: JSON-like, with binary values summarised by their codec.

use vigil::{Codecs, Document, Value};

use crate::error::CliResult;

/// Prints documents one per line: as JSON with `json`, otherwise for people.
pub fn print_documents(
    docs: impl Iterator<Item = vigil::Result<Document>>,
    json: bool,
    codecs: &Codecs,
) -> CliResult {
    for doc in docs {
        let doc = doc?;
        if json {
            println!("{}", doc.to_json());
        } else {
            println!("{}", document(&doc, codecs));
        }
    }
    Ok(())
}

/// One line per document, e.g. `{_id: "…", img: <image/png 28x28 (312 bytes)>, class: 7}`.
pub fn document(doc: &Document, codecs: &Codecs) -> String {
    let fields: Vec<String> = doc
        .iter()
        .map(|(k, v)| format!("{k}: {}", value(v, codecs)))
        .collect();
    format!("{{{}}}", fields.join(", "))
}

fn value(v: &Value, codecs: &Codecs) -> String {
    match v {
        Value::Bytes(b) => format!("<bytes ({} bytes)>", b.len()),
        Value::Encoded(e) => format!("<{}>", codecs.describe(e)),
        Value::Array(items) => format!(
            "[{}]",
            items
                .iter()
                .map(|i| value(i, codecs))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Object(d) => document(d, codecs),
        other => other.to_json().to_string(),
    }
}
