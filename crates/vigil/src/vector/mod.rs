//! Vector search over listener outputs: a vector index names a listener whose model outputs
//! vectors (a network's inner layer, an ONNX graph's output tensor, a function's array) and a
//! measure. The vectors are the listener's stored outputs, kept current by the listener on
//! every insert, update and delete, so the index lives with the data and a restart loses
//! nothing. Each process keeps an in-memory copy (a contiguous array, plus an HNSW graph for
//! large indexes), refreshed from the database before each search.

mod cache;
mod like;

use serde::{Deserialize, Serialize};
use vigil_core::{Error, Result};
pub use vigil_vector::Measure;

pub(crate) use cache::Caches;
pub use cache::VectorIndexStatus;
pub use like::{Like, LikeQuery, Similar};

use crate::registry::Component;
use crate::Datalayer;

/// Kind name of vector indexes in the registry.
pub const VECTOR_INDEX: &str = "vector_index";

/// Live vectors above which search goes through the HNSW graph (approximate) unless a
/// search asks for exact results. Below it a scan is both exact and fast.
pub const DEFAULT_APPROXIMATE_ABOVE: usize = 100_000;

/// A vector index as stored in the registry. Settings are builder methods that state their
/// default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VectorIndex {
    /// Its name.
    pub identifier: String,
    /// The listener whose outputs are the vectors.
    pub listener: String,
    /// How nearness is measured.
    pub measure: Measure,
    /// Live vectors above which searches are approximate.
    #[serde(default = "default_approximate_above")]
    pub approximate_above: usize,
}

fn default_approximate_above() -> usize {
    DEFAULT_APPROXIMATE_ABOVE
}

impl VectorIndex {
    /// An index over `listener`'s outputs. Default measure: cosine.
    pub fn new(identifier: &str, listener: &str) -> VectorIndex {
        VectorIndex {
            identifier: identifier.into(),
            listener: listener.into(),
            measure: Measure::Cosine,
            approximate_above: DEFAULT_APPROXIMATE_ABOVE,
        }
    }

    /// How nearness is measured. Default: [`Measure::Cosine`].
    pub fn measure(mut self, measure: Measure) -> Self {
        self.measure = measure;
        self
    }

    /// Live vectors above which searches go through the HNSW graph. Default:
    /// [`DEFAULT_APPROXIMATE_ABOVE`] (100,000). `usize::MAX` keeps every search exact.
    pub fn approximate_above(mut self, n: usize) -> Self {
        self.approximate_above = n;
        self
    }
}

impl Component for VectorIndex {
    const KIND: &'static str = VECTOR_INDEX;
    fn identifier(&self) -> &str {
        &self.identifier
    }
}

impl Datalayer {
    /// Creates (or updates) a vector index over a listener's outputs, measured by
    /// `measure`; returns its registry version. The listener must be installed. Updating an
    /// index whose record is unchanged stores no new version.
    pub fn vector_index(&self, identifier: &str, listener: &str, measure: Measure) -> Result<u32> {
        self.add_vector_index(&VectorIndex::new(identifier, listener).measure(measure))
    }

    /// [`Datalayer::vector_index`] with every setting.
    pub fn add_vector_index(&self, index: &VectorIndex) -> Result<u32> {
        self.listener(&index.listener)?;
        match self.load::<VectorIndex>(&index.identifier, None) {
            Ok(stored) if &stored == index => {
                let versions = self.show_versions(VECTOR_INDEX, &index.identifier)?;
                Ok(versions.last().copied().unwrap_or(1))
            }
            Ok(_) | Err(Error::NotFound { .. }) => self.add(index),
            Err(e) => Err(e),
        }
    }

    /// The vector indexes, latest version of each.
    pub fn vector_indexes(&self) -> Result<Vec<VectorIndex>> {
        self.show(VECTOR_INDEX)?
            .iter()
            .map(|name| self.load::<VectorIndex>(name, None))
            .collect()
    }

    /// What an index holds now (refreshed from the database first).
    pub fn vector_index_status(&self, identifier: &str) -> Result<VectorIndexStatus> {
        let index = self.load::<VectorIndex>(identifier, None)?;
        self.vector_caches().status(self, &index)
    }

    /// Refreshes this process's copy of an index and, when the index is large enough for an
    /// HNSW graph, waits until the graph is built (it is built on a thread of its own, and
    /// searches scan until it is ready): a server can call this before taking queries.
    pub fn prepare_vector_index(&self, identifier: &str) -> Result<VectorIndexStatus> {
        let index = self.load::<VectorIndex>(identifier, None)?;
        self.vector_caches().status_after(self, &index, true)
    }
}
