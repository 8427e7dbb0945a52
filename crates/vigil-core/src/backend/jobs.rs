//! Job records: backfills, fits and incremental batches with their progress.

use crate::listen::{JobRecord, JobStatus};
use crate::{Error, Result};

/// Where jobs are recorded.
pub trait Jobs {
    /// Stores a job record, replacing one with the same id.
    fn put_job(&self, job: &JobRecord) -> Result<()>;

    /// One job.
    fn get_job(&self, id: &str) -> Result<Option<JobRecord>>;

    /// The most recent jobs first, at most `limit`.
    fn jobs(&self, limit: usize) -> Result<Vec<JobRecord>>;
}

/// A stored status name, or `Corrupt` naming the job.
pub fn parse_job_status(job: &str, status: &str) -> Result<JobStatus> {
    JobStatus::parse(status).ok_or_else(|| Error::Corrupt {
        collection: "vigil_jobs".into(),
        reason: format!("job {job} has status {status:?}"),
    })
}
