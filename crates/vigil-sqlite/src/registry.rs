//! Component records and content-addressed artifacts, in vigil's own tables.

use rusqlite::OptionalExtension;
use vigil_core::backend::{self, ComponentVersions, StoredComponent};
use vigil_core::{Registry, Result};

use crate::error::db_err;
use crate::SqliteBackend;

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS vigil_artifacts (
    hash TEXT PRIMARY KEY,
    bytes BLOB NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
);
CREATE TABLE IF NOT EXISTS vigil_components (
    kind TEXT NOT NULL,
    identifier TEXT NOT NULL,
    version INTEGER NOT NULL,
    record TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    PRIMARY KEY (kind, identifier, version)
);
";

impl Registry for SqliteBackend {
    fn put_artifact(&self, bytes: &[u8]) -> Result<String> {
        let hash = backend::content_hash(bytes);
        self.pool.write("storing an artifact", |tx| {
            tx.prepare_cached("INSERT OR IGNORE INTO vigil_artifacts (hash, bytes) VALUES (?, ?)")
                .and_then(|mut s| s.execute(rusqlite::params![hash, bytes]))
                .map_err(db_err("storing an artifact"))?;
            Ok(())
        })?;
        Ok(hash)
    }

    fn get_artifact(&self, hash: &str) -> Result<Vec<u8>> {
        let reader = self.pool.reader()?;
        let bytes: Option<Vec<u8>> = reader
            .prepare_cached("SELECT bytes FROM vigil_artifacts WHERE hash = ?")
            .and_then(|mut s| s.query_row([hash], |r| r.get(0)).optional())
            .map_err(db_err("reading an artifact"))?;
        backend::verify_artifact(hash, bytes)
    }

    fn put_component(
        &self,
        kind: &str,
        identifier: &str,
        record: &serde_json::Value,
    ) -> Result<u32> {
        self.pool.write("storing a component", |tx| {
            let next: u32 = tx
                .prepare_cached("SELECT COALESCE(MAX(version), 0) + 1 FROM vigil_components WHERE kind = ? AND identifier = ?")
                .and_then(|mut s| s.query_row([kind, identifier], |r| r.get(0)))
                .map_err(db_err("numbering a component"))?;
            tx.prepare_cached("INSERT INTO vigil_components (kind, identifier, version, record) VALUES (?, ?, ?, ?)")
                .and_then(|mut s| s.execute(rusqlite::params![kind, identifier, next, record.to_string()]))
                .map_err(db_err("storing a component"))?;
            Ok(next)
        })
    }

    fn get_component(
        &self,
        kind: &str,
        identifier: &str,
        version: Option<u32>,
    ) -> Result<Option<StoredComponent>> {
        let reader = self.pool.reader()?;
        let row: Option<(u32, String)> = match version {
            Some(v) => reader
                .prepare_cached("SELECT version, record FROM vigil_components WHERE kind = ? AND identifier = ? AND version = ?")
                .and_then(|mut s| s.query_row(rusqlite::params![kind, identifier, v], |r| Ok((r.get(0)?, r.get(1)?))).optional()),
            None => reader
                .prepare_cached("SELECT version, record FROM vigil_components WHERE kind = ? AND identifier = ? ORDER BY version DESC LIMIT 1")
                .and_then(|mut s| s.query_row([kind, identifier], |r| Ok((r.get(0)?, r.get(1)?))).optional()),
        }
        .map_err(db_err("reading a component"))?;
        row.map(|(v, text)| backend::parse_component(kind, identifier, v, &text))
            .transpose()
    }

    fn list_components(&self, kind: &str) -> Result<Vec<ComponentVersions>> {
        let reader = self.pool.reader()?;
        let rows: Vec<(String, u32)> = reader
            .prepare_cached("SELECT identifier, version FROM vigil_components WHERE kind = ? ORDER BY identifier, version")
            .and_then(|mut s| s.query_map([kind], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
            .map_err(db_err("listing components"))?;
        Ok(backend::group_versions(rows))
    }

    fn remove_component(&self, kind: &str, identifier: &str, version: Option<u32>) -> Result<u64> {
        self.pool.write("removing a component", |tx| {
            let n = match version {
                Some(v) => tx.execute("DELETE FROM vigil_components WHERE kind = ? AND identifier = ? AND version = ?", rusqlite::params![kind, identifier, v]),
                None => tx.execute("DELETE FROM vigil_components WHERE kind = ? AND identifier = ?", [kind, identifier]),
            }
            .map_err(db_err("removing a component"))?;
            Ok(n as u64)
        })
    }
}
