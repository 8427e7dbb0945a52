//! Component records and content-addressed artifacts, in vigil's own tables.

use vigil_core::backend::{self, ComponentVersions, StoredComponent};
use vigil_core::{Registry, Result};

use crate::pool::pg_err;
use crate::PostgresBackend;

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS vigil_artifacts (
    hash TEXT PRIMARY KEY,
    bytes BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS vigil_components (
    kind TEXT NOT NULL,
    identifier TEXT NOT NULL,
    version INTEGER NOT NULL,
    record TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, identifier, version)
);
";

impl Registry for PostgresBackend {
    fn put_artifact(&self, bytes: &[u8]) -> Result<String> {
        let hash = backend::content_hash(bytes);
        self.pool.write("storing an artifact", |tx| {
            tx.execute(
                "INSERT INTO vigil_artifacts (hash, bytes) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&hash, &bytes],
            )
            .map_err(pg_err("storing an artifact"))?;
            Ok(())
        })?;
        Ok(hash)
    }

    fn get_artifact(&self, hash: &str) -> Result<Vec<u8>> {
        let mut conn = self.pool.get()?;
        let row = conn
            .query_opt(
                "SELECT bytes FROM vigil_artifacts WHERE hash = $1",
                &[&hash],
            )
            .map_err(pg_err("reading an artifact"))?;
        backend::verify_artifact(hash, row.map(|r| r.get(0)))
    }

    fn put_component(
        &self,
        kind: &str,
        identifier: &str,
        record: &serde_json::Value,
    ) -> Result<u32> {
        self.pool.write("storing a component", |tx| {
            // Versions of one identifier are numbered one at a time.
            tx.execute(
                "SELECT pg_advisory_xact_lock(hashtext($1 || '/' || $2))",
                &[&kind, &identifier],
            )
            .map_err(pg_err("numbering a component"))?;
            let next: i32 = tx
                .query_one(
                    "SELECT COALESCE(MAX(version), 0) + 1 FROM vigil_components WHERE kind = $1 AND identifier = $2",
                    &[&kind, &identifier],
                )
                .map_err(pg_err("numbering a component"))?
                .get(0);
            tx.execute(
                "INSERT INTO vigil_components (kind, identifier, version, record) VALUES ($1, $2, $3, $4)",
                &[&kind, &identifier, &next, &record.to_string()],
            )
            .map_err(pg_err("storing a component"))?;
            Ok(next as u32)
        })
    }

    fn get_component(
        &self,
        kind: &str,
        identifier: &str,
        version: Option<u32>,
    ) -> Result<Option<StoredComponent>> {
        let mut conn = self.pool.get()?;
        let row = match version {
            Some(v) => conn.query_opt(
                "SELECT version, record FROM vigil_components WHERE kind = $1 AND identifier = $2 AND version = $3",
                &[&kind, &identifier, &(v as i32)],
            ),
            None => conn.query_opt(
                "SELECT version, record FROM vigil_components WHERE kind = $1 AND identifier = $2 ORDER BY version DESC LIMIT 1",
                &[&kind, &identifier],
            ),
        }
        .map_err(pg_err("reading a component"))?;
        row.map(|r| backend::parse_component(kind, identifier, r.get::<_, i32>(0) as u32, r.get(1)))
            .transpose()
    }

    fn list_components(&self, kind: &str) -> Result<Vec<ComponentVersions>> {
        let mut conn = self.pool.get()?;
        let rows = conn
            .query(
                "SELECT identifier, version FROM vigil_components WHERE kind = $1 ORDER BY identifier COLLATE \"C\", version",
                &[&kind],
            )
            .map_err(pg_err("listing components"))?;
        Ok(backend::group_versions(
            rows.iter().map(|r| (r.get(0), r.get::<_, i32>(1) as u32)),
        ))
    }

    fn remove_component(&self, kind: &str, identifier: &str, version: Option<u32>) -> Result<u64> {
        self.pool.write("removing a component", |tx| {
            match version {
                Some(v) => tx.execute(
                    "DELETE FROM vigil_components WHERE kind = $1 AND identifier = $2 AND version = $3",
                    &[&kind, &identifier, &(v as i32)],
                ),
                None => tx.execute(
                    "DELETE FROM vigil_components WHERE kind = $1 AND identifier = $2",
                    &[&kind, &identifier],
                ),
            }
            .map_err(pg_err("removing a component"))
        })
    }
}
