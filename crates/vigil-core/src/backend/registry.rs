//! Component records (versioned JSON) and content-addressed artifacts (weights, graphs).

use crate::{Error, Result};

/// One stored version of a component.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredComponent {
    /// Its version (1 for the first).
    pub version: u32,
    /// The declarative record.
    pub record: serde_json::Value,
}

/// A component identifier with its stored versions, ascending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentVersions {
    /// The identifier, e.g. `lenet5`.
    pub identifier: String,
    /// Its versions, ascending.
    pub versions: Vec<u32>,
}

/// Versioned component records and the blobs they refer to.
pub trait Registry {
    /// Stores a blob under its content hash ([`content_hash`]) and returns the hash; storing
    /// the same bytes again stores nothing new.
    fn put_artifact(&self, bytes: &[u8]) -> Result<String>;

    /// The blob stored under `hash`: [`Error::NotFound`] if absent, [`Error::Corrupt`] if its
    /// bytes no longer match the hash (see [`verify_artifact`]).
    fn get_artifact(&self, hash: &str) -> Result<Vec<u8>>;

    /// Stores a component record as the next version of `(kind, identifier)`; returns it
    /// (1 for the first).
    fn put_component(
        &self,
        kind: &str,
        identifier: &str,
        record: &serde_json::Value,
    ) -> Result<u32>;

    /// A component's record: the given version, or the latest.
    fn get_component(
        &self,
        kind: &str,
        identifier: &str,
        version: Option<u32>,
    ) -> Result<Option<StoredComponent>>;

    /// The identifiers of a kind with their versions, sorted by identifier.
    fn list_components(&self, kind: &str) -> Result<Vec<ComponentVersions>>;

    /// Removes one version, or every version; returns how many were removed.
    fn remove_component(&self, kind: &str, identifier: &str, version: Option<u32>) -> Result<u64>;
}

/// The hash artifacts are stored under: SHA-256, lower-case hex.
pub fn content_hash(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What a backend returns for `get_artifact(hash)` given the row it read: the bytes, or
/// `NotFound` when there was none, or `Corrupt` when they no longer hash to `hash`.
pub fn verify_artifact(hash: &str, bytes: Option<Vec<u8>>) -> Result<Vec<u8>> {
    let bytes = bytes.ok_or_else(|| Error::NotFound {
        kind: "artifact".into(),
        identifier: hash.into(),
        version: None,
    })?;
    if content_hash(&bytes) != hash {
        return Err(Error::Corrupt {
            collection: "vigil_artifacts".into(),
            reason: format!("artifact {hash} no longer matches its hash"),
        });
    }
    Ok(bytes)
}

/// A stored component row (`version`, record text) as a [`StoredComponent`].
pub fn parse_component(
    kind: &str,
    identifier: &str,
    version: u32,
    text: &str,
) -> Result<StoredComponent> {
    serde_json::from_str(text)
        .map(|record| StoredComponent { version, record })
        .map_err(|e| Error::Corrupt {
            collection: "vigil_components".into(),
            reason: format!("{kind} `{identifier}` version {version}: {e}"),
        })
}

/// `(identifier, version)` rows sorted by identifier then version, grouped per identifier.
pub fn group_versions(rows: impl IntoIterator<Item = (String, u32)>) -> Vec<ComponentVersions> {
    let mut out: Vec<ComponentVersions> = Vec::new();
    for (identifier, version) in rows {
        match out.last_mut() {
            Some(last) if last.identifier == identifier => last.versions.push(version),
            _ => out.push(ComponentVersions {
                identifier,
                versions: vec![version],
            }),
        }
    }
    out
}
