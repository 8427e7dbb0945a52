//! Job records in `vigil_jobs`.

use rusqlite::OptionalExtension;
use vigil_core::backend::parse_job_status;
use vigil_core::listen::{JobRecord, JobStatus};
use vigil_core::{Jobs, Result};

use crate::error::db_err;
use crate::SqliteBackend;

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS vigil_jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    target TEXT NOT NULL,
    status TEXT NOT NULL,
    done INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    total INTEGER NOT NULL DEFAULT 0,
    started REAL NOT NULL,
    finished REAL,
    error TEXT
);
CREATE INDEX IF NOT EXISTS vigil_jobs_started ON vigil_jobs (started);
";

pub(crate) fn store_job(conn: &rusqlite::Connection, job: &JobRecord) -> Result<()> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO vigil_jobs (id, kind, target, status, done, failed, total, started, finished, error) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .and_then(|mut s| {
        s.execute(rusqlite::params![
            job.id,
            job.kind,
            job.target,
            job.status.as_str(),
            job.done as i64,
            job.failed as i64,
            job.total as i64,
            job.started,
            job.finished,
            job.error
        ])
    })
    .map_err(db_err("storing a job"))?;
    Ok(())
}

fn read_job(r: &rusqlite::Row<'_>) -> rusqlite::Result<(JobRecord, String)> {
    Ok((
        JobRecord {
            id: r.get(0)?,
            kind: r.get(1)?,
            target: r.get(2)?,
            status: JobStatus::Failed,
            done: r.get::<_, i64>(4)? as u64,
            failed: r.get::<_, i64>(5)? as u64,
            total: r.get::<_, i64>(6)? as u64,
            started: r.get(7)?,
            finished: r.get(8)?,
            error: r.get(9)?,
        },
        r.get(3)?,
    ))
}

const JOB_COLUMNS: &str = "id, kind, target, status, done, failed, total, started, finished, error";

fn with_status((mut job, status): (JobRecord, String)) -> Result<JobRecord> {
    job.status = parse_job_status(&job.id, &status)?;
    Ok(job)
}

impl Jobs for SqliteBackend {
    fn put_job(&self, job: &JobRecord) -> Result<()> {
        self.pool.write("storing a job", |tx| store_job(tx, job))
    }

    fn get_job(&self, id: &str) -> Result<Option<JobRecord>> {
        let reader = self.pool.reader()?;
        let row = reader
            .prepare_cached(&format!(
                "SELECT {JOB_COLUMNS} FROM vigil_jobs WHERE id = ?"
            ))
            .and_then(|mut s| s.query_row([id], read_job).optional())
            .map_err(db_err("reading a job"))?;
        row.map(with_status).transpose()
    }

    fn jobs(&self, limit: usize) -> Result<Vec<JobRecord>> {
        let reader = self.pool.reader()?;
        let mut stmt = reader
            .prepare_cached(&format!(
                "SELECT {JOB_COLUMNS} FROM vigil_jobs ORDER BY started DESC, rowid DESC LIMIT ?"
            ))
            .map_err(db_err("reading jobs"))?;
        let rows = stmt
            .query_map([limit as i64], read_job)
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(db_err("reading jobs"))?;
        rows.into_iter().map(with_status).collect()
    }
}
