//! vigil's core: the pure layer. Values and documents, codecs, the Mongo-style query language
//! (parsed and validated here, compiled by each backend), ids and folds, the storage format of
//! the SQL backends, the [`Backend`] trait and the [`Error`] type. No I/O happens here.
#![warn(missing_docs)]

pub mod aggregate;
pub mod backend;
pub mod codec;
pub mod depth;
mod document;
mod error;
pub mod filter;
pub mod ids;
pub mod listen;
mod matching;
pub mod names;
pub mod order;
pub mod query;
pub mod regex;
pub mod stored;
pub mod update;
mod value;

pub use backend::{
    Backend, DocumentSource, DocumentStream, Documents, Jobs, Outputs, Queue, Registry,
    UpdateOutcome,
};
pub use codec::{Codec, Codecs, DType, PngCodec, Tensor, TensorCodec};
pub use document::{Document, FOLD_FIELD, ID_FIELD};
pub use error::{Error, Location, Result};
pub use filter::Filter;
pub use listen::{ListenerRecord, OUTPUTS_FIELD};
pub use names::FieldPath;
pub use query::{Direction, FindQuery, Projection};
pub use update::Update;
pub use value::{Encoded, Value};
