//! # vigil
//!
//! vigil brings machine-learning models to the data: documents with images or tensors live in
//! your database, and models are trained on queries and kept predicting on every change.
//!
//! This crate is the one a user depends on. Connect by URL, then work with collections of
//! documents, queried with Mongo-style filters that run inside the database:
//!
//! ```
//! use vigil::{json, Document, Value};
//!
//! # fn main() -> vigil::Result<()> {
//! let db = vigil::connect("sqlite::memory:")?; // or "sqlite://mnist.db"
//! let mnist = db.collection("mnist")?;
//!
//! let img = image::GrayImage::from_fn(28, 28, |x, y| image::Luma([(x * y) as u8]));
//! mnist.insert_one(
//!     Document::new()
//!         .with("img", Value::image(&image::DynamicImage::ImageLuma8(img.clone()))?)
//!         .with("class", 7),
//! )?;
//!
//! let doc = mnist.find_one(json!({"class": {"$in": [7, 9]}}))?.expect("inserted above");
//! assert_eq!(doc.get("img").unwrap().to_image()?.to_luma8(), img);
//! assert_eq!(mnist.count(json!({"_fold": {"$in": ["train", "valid"]}}))?, 1);
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

mod collection;
mod datalayer;
mod fit;
mod guard;
mod listener;
pub mod registry;
pub mod vector;
mod worker;

pub use collection::{Collection, Cursor, Find, IntoDocument, UpsertOutcome};
pub use datalayer::{connect, Datalayer, Options};
pub use fit::{FitObserver, FitOptions, FitProgress};
pub use image;
pub use listener::{ListenerStatus, Listening, LISTENER};
pub use registry::{Component, Dataset};
pub use serde_json::json;
pub use vector::{Like, LikeQuery, Measure, Similar, VectorIndex, VectorIndexStatus};
pub use vigil_core::backend::{ComponentVersions, OutputCount, StoredComponent};
pub use vigil_core::listen::{Applied, FailureRecord, JobRecord, JobStatus, ListenerRecord};
pub use vigil_core::{
    aggregate, codec, filter, ids, listen, names, order, query, stored, update, Backend, Codec,
    Codecs, DType, Direction, Document, Encoded, Error, FieldPath, Filter, Location, PngCodec,
    Result, Tensor, TensorCodec, UpdateOutcome, Value, FOLD_FIELD, ID_FIELD, OUTPUTS_FIELD,
};
pub use vigil_ml as ml;
pub use vigil_ml::{
    lenet5, FitReport, Metric, Model, PipelineModel, Postprocess, Preprocess, Progress,
    TrainerConfig,
};
#[cfg(feature = "mongodb")]
pub use vigil_mongodb::MongoBackend;
#[cfg(feature = "postgres")]
pub use vigil_postgres::PostgresBackend;
#[cfg(feature = "sqlite")]
pub use vigil_sqlite::SqliteBackend;
pub use worker::{ErrorHook, Worker, WorkerOptions};
