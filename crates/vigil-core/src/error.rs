//! The one error type of vigil. Every variant names what was wrong and where.

use std::fmt;

/// A `Result` whose error is vigil's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where in a document or query something went wrong: a dotted field path, possibly with the
/// index of the document inside an `insert_many` batch.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Location {
    /// Index of the document in the batch it was given in, if any.
    pub document: Option<usize>,
    /// Dotted path of the field, empty for the document itself.
    pub path: String,
}

impl Location {
    /// A location at a field path.
    pub fn path(path: impl Into<String>) -> Self {
        Location {
            document: None,
            path: path.into(),
        }
    }

    /// This location, inside document number `index` of a batch.
    pub fn in_document(mut self, index: usize) -> Self {
        self.document = Some(index);
        self
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.document, self.path.is_empty()) {
            (Some(i), true) => write!(f, "document #{i}"),
            (Some(i), false) => write!(f, "field `{}` of document #{i}", self.path),
            (None, true) => write!(f, "the document"),
            (None, false) => write!(f, "field `{}`", self.path),
        }
    }
}

/// Everything that can go wrong in vigil.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A collection or field name that vigil refuses (it could not be stored or queried safely).
    #[error("invalid {kind} name {name:?}: {reason}")]
    InvalidName {
        /// "collection" or "field".
        kind: &'static str,
        /// The name as given.
        name: String,
        /// Why it was refused.
        reason: String,
    },

    /// A document that cannot be stored as given (e.g. a NaN float, a malformed `_id`).
    #[error("invalid document: {location}: {reason}")]
    InvalidDocument {
        /// Where in the document.
        location: Location,
        /// What was wrong.
        reason: String,
    },

    /// A filter, projection, sort or update document that is malformed.
    #[error("invalid {part} at `{path}`: {reason}")]
    InvalidQuery {
        /// "filter", "projection", "sort" or "update".
        part: &'static str,
        /// Dotted path inside the query document (the operator included).
        path: String,
        /// What was wrong.
        reason: String,
    },

    /// An operator vigil (or this backend) does not run. Never answered by scanning in-process.
    #[error("unsupported operator `{operator}` at `{path}`{}", backend.map(|b| format!(" on the {b} backend")).unwrap_or_default())]
    UnsupportedOperator {
        /// The operator, e.g. `$regex`.
        operator: String,
        /// Where in the query it was found.
        path: String,
        /// The backend that cannot run it, when the operator is valid elsewhere.
        backend: Option<&'static str>,
    },

    /// An operator given an operand of the wrong type, e.g. `$in` without an array.
    #[error("operator `{operator}` at `{path}` expects {expected}, found {found}")]
    InvalidOperand {
        /// The operator.
        operator: String,
        /// Where in the query.
        path: String,
        /// What it takes.
        expected: &'static str,
        /// What it was given, as JSON.
        found: String,
    },

    /// An insert whose `_id` already exists in the collection (or twice in the batch).
    #[error("duplicate _id {id} in collection `{collection}`")]
    DuplicateId {
        /// The collection.
        collection: String,
        /// The `_id`, as JSON.
        id: String,
    },

    /// Bytes that do not decode under the codec they are labelled with.
    #[error("{location}: bytes do not decode as `{codec}`: {reason}")]
    Decode {
        /// The codec's name.
        codec: String,
        /// Where the value was.
        location: Location,
        /// The decoder's complaint.
        reason: String,
    },

    /// A value could not be encoded by its codec.
    #[error("cannot encode as `{codec}`: {reason}")]
    Encode {
        /// The codec's name.
        codec: String,
        /// The encoder's complaint.
        reason: String,
    },

    /// A value labelled with a codec nobody registered.
    #[error("{location}: unknown codec `{codec}` (register it with the Datalayer first)")]
    UnknownCodec {
        /// The codec's name.
        codec: String,
        /// Where the value was.
        location: Location,
    },

    /// A value of one kind read as another (e.g. `as_image` on an integer).
    #[error("expected {expected}, found {found}")]
    WrongType {
        /// What the caller asked for.
        expected: &'static str,
        /// What the value was.
        found: String,
    },

    /// A database URL vigil cannot use.
    #[error("invalid database url {url:?}: {reason}")]
    InvalidUrl {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },

    /// A data file (e.g. MNIST IDX) that is not in the expected format.
    #[error("{path}: {reason}")]
    InvalidData {
        /// The file.
        path: String,
        /// What was wrong.
        reason: String,
    },

    /// An I/O error, with what was being done.
    #[error("{context}: {source}")]
    Io {
        /// What vigil was doing.
        context: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// The database driver failed; its error is the source.
    #[error("{backend} error while {context}: {source}")]
    Backend {
        /// "sqlite", "postgres", ...
        backend: &'static str,
        /// What vigil was doing.
        context: String,
        /// The driver's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// A model that cannot be built, loaded, run or trained as asked.
    #[error("model `{model}`: {reason}")]
    Model {
        /// The model's identifier.
        model: String,
        /// What went wrong.
        reason: String,
    },

    /// A component (model, dataset, …) or artifact that is not in the registry.
    #[error("no {kind} `{identifier}`{}", version.map(|v| format!(" version {v}")).unwrap_or_default())]
    NotFound {
        /// "model", "dataset", "artifact", …
        kind: String,
        /// Its identifier (or hash, for artifacts).
        identifier: String,
        /// The version asked for, if any.
        version: Option<u32>,
    },

    /// Work stopped on request (a stop flag, Ctrl-C) before it finished; nothing it had not
    /// committed was kept.
    #[error("interrupted: {what} stopped on request")]
    Interrupted {
        /// What stopped, e.g. `training`.
        what: String,
    },

    /// The stored data is not what vigil wrote (edited by hand, or a newer format).
    #[error("corrupt stored data in `{collection}`: {reason}")]
    Corrupt {
        /// Collection (or internal table).
        collection: String,
        /// What was wrong.
        reason: String,
    },
}

impl Error {
    /// Shorthand for an [`Error::Model`].
    pub fn model(model: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        Error::Model {
            model: model.into(),
            reason: reason.to_string(),
        }
    }

    /// Shorthand for an [`Error::InvalidQuery`].
    pub fn query(part: &'static str, path: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidQuery {
            part,
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// Shorthand for an [`Error::Io`].
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}
