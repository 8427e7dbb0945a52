//! The component registry: models, datasets, metrics and trainer configurations stored as
//! declarative JSON records (plus content-addressed artifacts), versioned by identifier.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use vigil_core::backend::{ComponentVersions, StoredComponent};
use vigil_core::{Error, Result};
use vigil_ml::{Metric, ModelKind, ModelRecord, PipelineModel, TrainerConfig};

use crate::Datalayer;

/// Kind name of models in the registry.
pub const MODEL: &str = "model";
/// Kind name of datasets.
pub const DATASET: &str = "dataset";
/// Kind name of metrics.
pub const METRIC: &str = "metric";
/// Kind name of trainer configurations.
pub const TRAINER: &str = "trainer";

/// A named selection of documents, e.g. a validation set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dataset {
    /// Its name (the prefix of its metric keys).
    pub identifier: String,
    /// The collection it reads.
    pub collection: String,
    /// The Mongo-style filter selecting its documents.
    pub filter: serde_json::Value,
}

impl Dataset {
    /// The documents of `collection` that `filter` matches.
    pub fn new(identifier: &str, collection: &str, filter: serde_json::Value) -> Self {
        Dataset {
            identifier: identifier.into(),
            collection: collection.into(),
            filter,
        }
    }
}

/// Something stored in the registry as a plain record.
pub trait Component: Serialize + DeserializeOwned {
    /// Its kind (`dataset`, `metric`, `trainer`).
    const KIND: &'static str;
    /// Its identifier.
    fn identifier(&self) -> &str;
}

impl Component for Dataset {
    const KIND: &'static str = DATASET;
    fn identifier(&self) -> &str {
        &self.identifier
    }
}

impl Component for Metric {
    const KIND: &'static str = METRIC;
    fn identifier(&self) -> &str {
        &self.identifier
    }
}

impl Component for TrainerConfig {
    const KIND: &'static str = TRAINER;
    fn identifier(&self) -> &str {
        &self.identifier
    }
}

fn check_identifier(kind: &str, identifier: &str) -> Result<()> {
    vigil_core::names::validate_identifier(identifier).map_err(|e| match e {
        Error::InvalidName { name, reason, .. } => Error::InvalidName {
            kind: if kind == MODEL { "model" } else { "component" },
            name,
            reason,
        },
        other => other,
    })
}

impl Datalayer {
    /// Stores a component as a new version of its identifier; returns the version.
    pub fn add<C: Component>(&self, component: &C) -> Result<u32> {
        check_identifier(C::KIND, component.identifier())?;
        let record = serde_json::to_value(component).map_err(|e| Error::InvalidDocument {
            location: Default::default(),
            reason: format!(
                "{} `{}` does not serialise: {e}",
                C::KIND,
                component.identifier()
            ),
        })?;
        self.store()
            .put_component(C::KIND, component.identifier(), &record)
    }

    /// A component: the given version, or the latest.
    pub fn load<C: Component>(&self, identifier: &str, version: Option<u32>) -> Result<C> {
        let StoredComponent {
            version: v,
            record: json,
        } = self.record(C::KIND, identifier, version)?;
        serde_json::from_value(json).map_err(|e| Error::Corrupt {
            collection: "vigil_components".into(),
            reason: format!("{} `{identifier}` version {v}: {e}", C::KIND),
        })
    }

    fn record(
        &self,
        kind: &str,
        identifier: &str,
        version: Option<u32>,
    ) -> Result<StoredComponent> {
        self.store()
            .get_component(kind, identifier, version)?
            .ok_or_else(|| Error::NotFound {
                kind: kind.into(),
                identifier: identifier.into(),
                version,
            })
    }

    /// Stores a model: its parameters as an artifact (safetensors weights or ONNX bytes),
    /// its record referencing it. Adding an identifier that exists makes a new version, which
    /// is set on the model and returned.
    pub fn add_model(&self, model: &mut PipelineModel) -> Result<u32> {
        let mut record: ModelRecord = model.to_record().clone();
        if let Some(bytes) = model.artifact()? {
            let hash = self.store().put_artifact(&bytes)?;
            match &mut record.kind {
                ModelKind::Network { weights, .. } => *weights = Some(hash),
                ModelKind::Onnx { graph } => *graph = Some(hash),
                ModelKind::Function { .. } => {}
            }
        }
        let json =
            serde_json::to_value(&record).map_err(|e| Error::model(&record.identifier, e))?;
        let version = self
            .store()
            .put_component(MODEL, &record.identifier, &json)?;
        model.set_version(version);
        Ok(version)
    }

    /// Loads a model (the given version, or the latest). Runs no stored code: the record is
    /// JSON, weights are safetensors, graphs are ONNX; a missing or corrupt artifact is an
    /// error.
    pub fn load_model(&self, identifier: &str, version: Option<u32>) -> Result<PipelineModel> {
        let StoredComponent {
            version: v,
            record: json,
        } = self.record(MODEL, identifier, version)?;
        let record: ModelRecord = serde_json::from_value(json).map_err(|e| Error::Corrupt {
            collection: "vigil_components".into(),
            reason: format!("model `{identifier}` version {v}: {e}"),
        })?;
        let hash = match &record.kind {
            ModelKind::Network { weights, .. } => weights.clone(),
            ModelKind::Onnx { graph } => graph.clone(),
            ModelKind::Function { .. } => None,
        };
        let artifact = hash.map(|h| self.store().get_artifact(&h)).transpose()?;
        PipelineModel::from_record(record, artifact, Some(v))
    }

    /// The identifiers stored under a kind (`model`, `dataset`, `metric`, `trainer`, …).
    pub fn show(&self, kind: &str) -> Result<Vec<String>> {
        Ok(self
            .show_all(kind)?
            .into_iter()
            .map(|c| c.identifier)
            .collect())
    }

    /// The identifiers stored under a kind, each with its versions.
    pub fn show_all(&self, kind: &str) -> Result<Vec<ComponentVersions>> {
        self.store().list_components(kind)
    }

    /// The versions of one identifier.
    pub fn show_versions(&self, kind: &str, identifier: &str) -> Result<Vec<u32>> {
        Ok(self
            .show_all(kind)?
            .into_iter()
            .find(|c| c.identifier == identifier)
            .map(|c| c.versions)
            .unwrap_or_default())
    }

    /// The stored record of a component, as JSON (for `vigil show`).
    pub fn show_record(
        &self,
        kind: &str,
        identifier: &str,
        version: Option<u32>,
    ) -> Result<StoredComponent> {
        self.record(kind, identifier, version)
    }

    /// Removes one version, or all versions; returns how many were removed. Artifacts stay
    /// (they are shared by content and cheap to keep).
    pub fn remove(&self, kind: &str, identifier: &str, version: Option<u32>) -> Result<u64> {
        self.store().remove_component(kind, identifier, version)
    }
}
