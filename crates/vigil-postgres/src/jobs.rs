//! Job records in `vigil_jobs`.

use vigil_core::backend::parse_job_status;
use vigil_core::listen::JobRecord;
use vigil_core::{Jobs, Result};

use crate::pool::pg_err;
use crate::PostgresBackend;

pub(crate) const SCHEMA: &str = "
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
        status: parse_job_status(&id, &status)?,
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

impl Jobs for PostgresBackend {
    fn put_job(&self, job: &JobRecord) -> Result<()> {
        self.pool.write("storing a job", |tx| store_job(tx, job))
    }

    fn get_job(&self, id: &str) -> Result<Option<JobRecord>> {
        let mut conn = self.pool.get()?;
        let row = conn
            .query_opt(
                &format!("SELECT {JOB_COLUMNS} FROM vigil_jobs WHERE id = $1"),
                &[&id],
            )
            .map_err(pg_err("reading a job"))?;
        row.as_ref().map(read_job).transpose()
    }

    fn jobs(&self, limit: usize) -> Result<Vec<JobRecord>> {
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
