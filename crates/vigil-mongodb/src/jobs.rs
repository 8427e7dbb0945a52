//! Job records, one document each in `vigil_jobs`.

use mongodb::bson::{self, doc};
use mongodb::sync::ClientSession;
use vigil_core::listen::JobRecord;
use vigil_core::{Error, Jobs, Result};

use crate::error::db_err;
use crate::MongoBackend;

fn to_row(job: &JobRecord) -> Result<bson::Document> {
    let mut row = bson::to_document(job).map_err(|e| Error::InvalidDocument {
        location: Default::default(),
        reason: format!("job {}: {e}", job.id),
    })?;
    row.insert("_id", job.id.clone());
    Ok(row)
}

fn from_row(mut row: bson::Document) -> Result<JobRecord> {
    row.remove("_id");
    bson::from_document(row.clone()).map_err(|e| Error::Corrupt {
        collection: "vigil_jobs".into(),
        reason: format!("{row}: {e}"),
    })
}

/// Stores a job inside a transaction.
pub(crate) fn store_job(
    backend: &MongoBackend,
    session: &mut ClientSession,
    job: &JobRecord,
) -> Result<()> {
    backend
        .collection("vigil_jobs")
        .replace_one(doc! { "_id": &job.id }, to_row(job)?)
        .upsert(true)
        .session(session)
        .run()
        .map(|_| ())
        .map_err(db_err("storing a job"))
}

impl Jobs for MongoBackend {
    fn put_job(&self, job: &JobRecord) -> Result<()> {
        // In a transaction: a batch's apply counts its job's progress in its own, and a
        // plain write would wait behind that of a worker killed mid-apply.
        self.transaction("storing a job", |session| store_job(self, session, job))
    }

    fn get_job(&self, id: &str) -> Result<Option<JobRecord>> {
        self.collection("vigil_jobs")
            .find_one(doc! { "_id": id })
            .run()
            .map_err(db_err("reading a job"))?
            .map(from_row)
            .transpose()
    }

    fn jobs(&self, limit: usize) -> Result<Vec<JobRecord>> {
        let cursor = self
            .collection("vigil_jobs")
            .find(doc! {})
            .sort(doc! { "started": -1, "_id": -1 })
            .limit(limit.min(i64::MAX as usize) as i64)
            .run()
            .map_err(db_err("reading jobs"))?;
        cursor
            .map(|row| row.map_err(db_err("reading jobs")).and_then(from_row))
            .collect()
    }
}
