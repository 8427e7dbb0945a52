//! Data sets and plots for vigil's demos, examples, tests and benchmarks: the MNIST IDX reader
//! (digits as `{"img": <image/png>, "class": N}` documents) and metric curves drawn to PNG.
//! Nothing here is needed to use vigil itself; it lives apart so the library stays free of
//! demo-only code, and so the Python package and the server can reuse it.
//!
//! ```no_run
//! let digits = vigil_datasets::mnist::read_dir("data/mnist")?
//!     .take(10)
//!     .map(|d| d.and_then(|d| d.to_document()))
//!     .collect::<vigil_core::Result<Vec<_>>>()?;
//! println!("{}", digits[0]);
//! # Ok::<(), vigil_core::Error>(())
//! ```
#![warn(missing_docs)]

pub mod mnist;
#[cfg(feature = "plot")]
pub mod plot;
