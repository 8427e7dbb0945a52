//! What a database must do for vigil, split by concern into four small traits: [`Documents`]
//! (collections and their documents), [`Registry`] (component records and artifacts),
//! [`Queue`] (listeners: change capture, claimed work, outputs, failures) and [`Jobs`]. A
//! backend implements all four and [`Backend`] on top; the Datalayer (in the `vigil` crate)
//! assigns ids and folds and validates documents, a backend stores, finds and changes them,
//! running filters inside the database.
//!
//! Every method is one transaction: it takes effect whole or not at all. A collection that
//! does not exist reads as empty.

mod documents;
mod jobs;
mod outputs;
mod queue;
mod registry;
pub mod sql;

pub use documents::{source, DocumentSource, DocumentStream, Documents, UpdateOutcome};
pub use jobs::{parse_job_status, Jobs};
pub use outputs::{time_checksum, Outputs, OutputsMark, StoredOutput, CHECKSUM_MODULUS};
pub use queue::{OutputCount, OutputState, Queue};
pub use registry::{
    content_hash, group_versions, parse_component, verify_artifact, ComponentVersions, Registry,
    StoredComponent,
};

/// A database vigil runs on: all five concerns, behind one `Arc<dyn Backend>`.
pub trait Backend:
    Documents + Registry + Queue + Jobs + Outputs + Send + Sync + std::fmt::Debug
{
    /// Short name, e.g. `sqlite`.
    fn name(&self) -> &'static str;
}
