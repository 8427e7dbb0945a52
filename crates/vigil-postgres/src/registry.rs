//! Component records, content-addressed artifacts and job records, in vigil's own tables.

use vigil_core::backend::content_hash;
use vigil_core::listen::{JobRecord, JobStatus};
use vigil_core::{Error, Result};

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
CREATE TABLE IF NOT EXISTS vigil_jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    target TEXT NOT NULL,
    status TEXT NOT NULL,
    done BIGINT NOT NULL DEFAULT 0,
    failed BIGINT NOT NULL DEFAULT 0,
    total BIGINT NOT NULL DEFAULT 0,
    started DOUBLE PRECISION NOT NULL,
    finished DOUBLE PRECISION,
    error TEXT
);
CREATE INDEX IF NOT EXISTS vigil_jobs_started ON vigil_jobs (started);
";

const JOB_COLUMNS: &str = "id, kind, target, status, done, failed, total, started, finished, error";

fn read_job(r: &postgres::Row) -> Result<JobRecord> {
    let status: String = r.get(3);
    let id: String = r.get(0);
    Ok(JobRecord {
        status: JobStatus::parse(&status).ok_or_else(|| Error::Corrupt {
            collection: "vigil_jobs".into(),
            reason: format!("job {id} has status {status:?}"),
        })?,
        id,
        kind: r.get(1),
        target: r.get(2),
        done: r.get::<_, i64>(4) as u64,
        failed: r.get::<_, i64>(5) as u64,
        total: r.get::<_, i64>(6) as u64,
        started: r.get(7),
        finished: r.get(8),
        error: r.get(9),
    })
}

impl PostgresBackend {
    pub(crate) fn put_artifact_impl(&self, bytes: &[u8]) -> Result<String> {
        let hash = content_hash(bytes);
        self.write("storing an artifact", |tx| {
            tx.execute(
                "INSERT INTO vigil_artifacts (hash, bytes) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&hash, &bytes],
            )
            .map_err(pg_err("storing an artifact"))?;
            Ok(())
        })?;
        Ok(hash)
    }

    pub(crate) fn get_artifact_impl(&self, hash: &str) -> Result<Vec<u8>> {
        let mut conn = self.pool.get()?;
        let row = conn
            .query_opt(
                "SELECT bytes FROM vigil_artifacts WHERE hash = $1",
                &[&hash],
            )
            .map_err(pg_err("reading an artifact"))?;
        let bytes: Vec<u8> = row.map(|r| r.get(0)).ok_or_else(|| Error::NotFound {
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

    pub(crate) fn get_component_impl(
        &self,
        kind: &str,
        identifier: &str,
        version: Option<u32>,
    ) -> Result<Option<(u32, serde_json::Value)>> {
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
        row.map(|r| {
            let v = r.get::<_, i32>(0) as u32;
            serde_json::from_str(r.get::<_, &str>(1))
                .map(|json| (v, json))
                .map_err(|e| Error::Corrupt {
                    collection: "vigil_components".into(),
                    reason: format!("{kind} `{identifier}` version {v}: {e}"),
                })
        })
        .transpose()
    }

    pub(crate) fn list_components_impl(&self, kind: &str) -> Result<Vec<(String, Vec<u32>)>> {
        let mut conn = self.pool.get()?;
        let rows = conn
            .query(
                "SELECT identifier, version FROM vigil_components WHERE kind = $1 ORDER BY identifier COLLATE \"C\", version",
                &[&kind],
            )
            .map_err(pg_err("listing components"))?;
        let mut out: Vec<(String, Vec<u32>)> = Vec::new();
        for r in rows {
            let (id, v): (String, i32) = (r.get(0), r.get(1));
            match out.last_mut() {
                Some((last, versions)) if *last == id => versions.push(v as u32),
                _ => out.push((id, vec![v as u32])),
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

    pub(crate) fn put_job_impl(&self, job: &JobRecord) -> Result<()> {
        self.write("storing a job", |tx| store_job(tx, job))
    }

    pub(crate) fn get_job_impl(&self, id: &str) -> Result<Option<JobRecord>> {
        let mut conn = self.pool.get()?;
        let row = conn
            .query_opt(
                &format!("SELECT {JOB_COLUMNS} FROM vigil_jobs WHERE id = $1"),
                &[&id],
            )
            .map_err(pg_err("reading a job"))?;
        row.as_ref().map(read_job).transpose()
    }

    pub(crate) fn jobs_impl(&self, limit: usize) -> Result<Vec<JobRecord>> {
        let mut conn = self.pool.get()?;
        let rows = conn
            .query(
                &format!(
                    "SELECT {JOB_COLUMNS} FROM vigil_jobs ORDER BY started DESC, id DESC LIMIT $1"
                ),
                &[&(limit as i64)],
            )
            .map_err(pg_err("reading jobs"))?;
        rows.iter().map(read_job).collect()
    }
}

/// Stores a job record, replacing one with the same id.
pub(crate) fn store_job(client: &mut impl postgres::GenericClient, job: &JobRecord) -> Result<()> {
    client
        .execute(
            &format!(
                "INSERT INTO vigil_jobs ({JOB_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                 ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, target = excluded.target, \
                 status = excluded.status, done = excluded.done, failed = excluded.failed, \
                 total = excluded.total, started = excluded.started, finished = excluded.finished, \
                 error = excluded.error"
            ),
            &[
                &job.id,
                &job.kind,
                &job.target,
                &job.status.as_str(),
                &(job.done as i64),
                &(job.failed as i64),
                &(job.total as i64),
                &job.started,
                &job.finished,
                &job.error,
            ],
        )
        .map_err(pg_err("storing a job"))?;
    Ok(())
}
