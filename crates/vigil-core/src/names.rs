//! Collection and field names. They end up inside SQL text (as quoted identifiers and JSON
//! paths), so they are restricted to a charset that needs no escaping anywhere; values are
//! always bound parameters.

use crate::{Error, Result};

/// Longest collection name (PostgreSQL's identifier limit minus room for suffixes).
pub const MAX_COLLECTION_NAME: usize = 48;
/// Longest field name.
pub const MAX_FIELD_NAME: usize = 128;

/// Checks a collection name: an ASCII letter, then letters, digits or `_`, at most
/// [`MAX_COLLECTION_NAME`] characters. Names starting with `vigil_` (vigil's own tables),
/// `sqlite_` or `pg_` (the databases' own) are reserved.
pub fn validate_collection(name: &str) -> Result<()> {
    let fail = |reason: &str| {
        Err(Error::InvalidName {
            kind: "collection",
            name: name.to_string(),
            reason: reason.to_string(),
        })
    };
    if name.is_empty() || name.len() > MAX_COLLECTION_NAME {
        return fail("a collection name has 1 to 48 characters");
    }
    if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return fail("a collection name starts with an ASCII letter");
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return fail("a collection name has only ASCII letters, digits and `_`");
    }
    let lower = name.to_ascii_lowercase();
    if ["vigil_", "sqlite_", "pg_"]
        .iter()
        .any(|p| lower.starts_with(p))
    {
        return fail("names starting with `vigil_`, `sqlite_` or `pg_` are reserved");
    }
    Ok(())
}

/// Checks one field name (one segment of a path), in any script: ASCII letters, digits, `_`
/// and `-`, and any character beyond ASCII that is neither a control character nor white
/// space; at most [`MAX_FIELD_NAME`] bytes. So `名前`, `ключ`, `اسم`, `हिन्दी` and `größe` are
/// field names, and `$gt`, `a.b`, `a b`, `a'b`, `a"b` and names holding control characters
/// are not. Field names are inlined into SQL (as JSON-path and text-array literals, which lets
/// the databases match expression indexes): no ASCII punctuation but `_` and `-` can appear,
/// and no character beyond ASCII is special inside those literals.
pub fn validate_field(name: &str) -> Result<()> {
    let fail = |reason: &str| {
        Err(Error::InvalidName {
            kind: "field",
            name: name.to_string(),
            reason: reason.to_string(),
        })
    };
    if name.is_empty() || name.len() > MAX_FIELD_NAME {
        return fail("a field name has 1 to 128 bytes");
    }
    for c in name.chars() {
        let fine = if c.is_ascii() {
            c.is_ascii_alphanumeric() || c == '_' || c == '-'
        } else {
            !c.is_control() && !c.is_whitespace()
        };
        if !fine {
            return fail(&format!(
                "{} cannot appear in a field name (letters and digits of any script, `_` and `-` can)",
                describe(c)
            ));
        }
    }
    Ok(())
}

/// Checks an identifier (a model's, a component's): ASCII letters, digits, `_` and `-`, at
/// most [`MAX_FIELD_NAME`] characters. Identifiers name things across processes and tools
/// (`vigil show model NAME`, `_outputs.<key>.<model>`), so they keep to ASCII.
pub fn validate_identifier(name: &str) -> Result<()> {
    let fail = |reason: &str| {
        Err(Error::InvalidName {
            kind: "identifier",
            name: name.to_string(),
            reason: reason.to_string(),
        })
    };
    if name.is_empty() || name.len() > MAX_FIELD_NAME {
        return fail("an identifier has 1 to 128 characters");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return fail("an identifier has only ASCII letters, digits, `_` and `-`");
    }
    Ok(())
}

fn describe(c: char) -> String {
    if c.is_control() || c.is_whitespace() {
        format!("U+{:04X}", c as u32)
    } else {
        format!("`{c}`")
    }
}

/// A validated dotted path into nested documents, e.g. `_outputs.img.lenet5`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FieldPath {
    segments: Vec<String>,
}

impl FieldPath {
    /// The path of a run of another path's segments (already valid). `None` when empty.
    pub fn sub(&self, range: std::ops::Range<usize>) -> Option<FieldPath> {
        let segments = self.segments.get(range)?.to_vec();
        (!segments.is_empty()).then_some(FieldPath { segments })
    }

    /// Parses and validates a dotted path.
    pub fn parse(path: &str) -> Result<FieldPath> {
        let segments: Vec<String> = path.split('.').map(str::to_string).collect();
        for s in &segments {
            validate_field(s).map_err(|e| match e {
                Error::InvalidName { reason, .. } => Error::InvalidName {
                    kind: "field",
                    name: path.to_string(),
                    reason: format!("segment {s:?}: {reason}"),
                },
                other => other,
            })?;
        }
        Ok(FieldPath { segments })
    }

    /// The segments.
    pub fn segments(&self) -> &[String] {
        &self.segments
    }

    /// Whether this is the top-level `_id`.
    pub fn is_id(&self) -> bool {
        self.segments.len() == 1 && self.segments[0] == crate::ID_FIELD
    }

    /// The dotted form.
    pub fn dotted(&self) -> String {
        self.segments.join(".")
    }
}

impl std::fmt::Display for FieldPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.dotted())
    }
}
