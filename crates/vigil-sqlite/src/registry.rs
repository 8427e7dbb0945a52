//! Component records and content-addressed artifacts, in vigil's own tables.

use rusqlite::OptionalExtension;
use vigil_core::backend::content_hash;
use vigil_core::{Error, Result};

use crate::{db_err, SqliteBackend};

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

impl SqliteBackend {
    pub(crate) fn put_artifact_impl(&self, bytes: &[u8]) -> Result<String> {
        let hash = content_hash(bytes);
        self.write("storing an artifact", |tx| {
            tx.prepare_cached("INSERT OR IGNORE INTO vigil_artifacts (hash, bytes) VALUES (?, ?)")
                .and_then(|mut s| s.execute(rusqlite::params![hash, bytes]))
                .map_err(db_err("storing an artifact"))?;
            Ok(())
        })?;
        Ok(hash)
    }

    pub(crate) fn get_artifact_impl(&self, hash: &str) -> Result<Vec<u8>> {
        let reader = self.pool.reader()?;
        let bytes: Option<Vec<u8>> = reader
            .prepare_cached("SELECT bytes FROM vigil_artifacts WHERE hash = ?")
            .and_then(|mut s| s.query_row([hash], |r| r.get(0)).optional())
            .map_err(db_err("reading an artifact"))?;
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

    pub(crate) fn put_component_impl(
        &self,
        kind: &str,
        identifier: &str,
        record: &serde_json::Value,
    ) -> Result<u32> {
        self.write("storing a component", |tx| {
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

    pub(crate) fn get_component_impl(
        &self,
        kind: &str,
        identifier: &str,
        version: Option<u32>,
    ) -> Result<Option<(u32, serde_json::Value)>> {
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
        row.map(|(v, text)| {
            serde_json::from_str(&text)
                .map(|json| (v, json))
                .map_err(|e| Error::Corrupt {
                    collection: "vigil_components".into(),
                    reason: format!("{kind} `{identifier}` version {v}: {e}"),
                })
        })
        .transpose()
    }

    pub(crate) fn list_components_impl(&self, kind: &str) -> Result<Vec<(String, Vec<u32>)>> {
        let reader = self.pool.reader()?;
        let rows: Vec<(String, u32)> = reader
            .prepare_cached("SELECT identifier, version FROM vigil_components WHERE kind = ? ORDER BY identifier, version")
            .and_then(|mut s| s.query_map([kind], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
            .map_err(db_err("listing components"))?;
        let mut out: Vec<(String, Vec<u32>)> = Vec::new();
        for (id, v) in rows {
            match out.last_mut() {
                Some((last, versions)) if *last == id => versions.push(v),
                _ => out.push((id, vec![v])),
            }
        }
        Ok(out)
    }

    pub(crate) fn remove_component_impl(
        &self,
        kind: &str,
        identifier: &str,
        version: Option<u32>,
    ) -> Result<u64> {
        self.write("removing a component", |tx| {
            let n = match version {
                Some(v) => tx.execute("DELETE FROM vigil_components WHERE kind = ? AND identifier = ? AND version = ?", rusqlite::params![kind, identifier, v]),
                None => tx.execute("DELETE FROM vigil_components WHERE kind = ? AND identifier = ?", [kind, identifier]),
            }
            .map_err(db_err("removing a component"))?;
            Ok(n as u64)
        })
    }
}
