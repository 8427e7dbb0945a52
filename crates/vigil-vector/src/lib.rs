//! vigil's vector search, with no I/O: a flat store of fixed-dimension `f32` vectors
//! ([`Vectors`]) searched exactly (a scan keeping the top k), and an HNSW graph
//! ([`Graph`], from the `hnsw_rs` crate) for approximate search over large sets. The facade
//! (`vigil::VectorIndex`) keeps both current from a listener's stored outputs.
//!
//! ```
//! use vigil_vector::{Measure, Vectors};
//!
//! let mut v = Vectors::new(2, Measure::Cosine);
//! let a = v.push(&[1.0, 0.0]).unwrap();
//! let b = v.push(&[0.0, 1.0]).unwrap();
//! let hits = v.exact(&v.prepare(&[0.9, 0.1]).unwrap(), 2, |_| true);
//! assert_eq!(hits.iter().map(|h| h.slot).collect::<Vec<_>>(), [a, b]);
//! assert!(hits[0].score > 0.99);
//! ```
#![warn(missing_docs)]

mod graph;
mod measure;
mod store;

pub use graph::{Graph, GraphOptions};
pub use measure::{dot, squared_l2, Measure};
pub use store::{Hit, VectorError, Vectors};
