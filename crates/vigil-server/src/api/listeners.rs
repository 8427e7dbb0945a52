//! Listeners (their outputs per model version, queue, throughput, errors), jobs, and the retry
//! of parked documents.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json_;
use utoipa::ToSchema;
use vigil::{Datalayer, FailureRecord, JobRecord};

use crate::auth::{Read, Write};
use crate::error::{blocking, ApiError, ApiResult};
use crate::extract::Params;
use crate::state::AppState;

/// A job: a backfill, a fit, or a batch of incremental predictions.
#[derive(Serialize, Clone, PartialEq, ToSchema)]
pub struct JobView {
    id: String,
    kind: String,
    target: String,
    /// `pending`, `running`, `success` or `failed`.
    status: String,
    done: u64,
    failed: u64,
    total: u64,
    /// Seconds since the Unix epoch.
    started: f64,
    finished: Option<f64>,
    error: Option<String>,
    /// Items done per second since the job started (until it finished).
    throughput: f64,
}

impl From<&JobRecord> for JobView {
    fn from(j: &JobRecord) -> Self {
        let end = j.finished.unwrap_or_else(vigil::listen::now);
        let elapsed = (end - j.started).max(1e-3);
        JobView {
            id: j.id.clone(),
            kind: j.kind.clone(),
            target: j.target.clone(),
            status: serde_json::to_value(j.status)
                .ok()
                .and_then(|s| s.as_str().map(String::from))
                .unwrap_or_default(),
            done: j.done,
            failed: j.failed,
            total: j.total,
            started: j.started,
            finished: j.finished,
            error: j.error.clone(),
            throughput: j.done as f64 / elapsed,
        }
    }
}

/// A document a listener failed on.
#[derive(Serialize, Clone, PartialEq, ToSchema)]
pub struct FailureView {
    listener: String,
    #[schema(value_type = Object)]
    doc_id: Json_,
    error: String,
    attempts: u32,
    first_failed: f64,
    last_failed: f64,
    /// True when it is no longer retried (until it changes, or a retry is asked for).
    parked: bool,
}

impl From<FailureRecord> for FailureView {
    fn from(f: FailureRecord) -> Self {
        FailureView {
            listener: f.listener,
            doc_id: f.doc_id,
            error: f.error,
            attempts: f.attempts,
            first_failed: f.first_failed,
            last_failed: f.last_failed,
            parked: f.parked,
        }
    }
}

/// Outputs of one model version.
#[derive(Serialize, Clone, PartialEq, ToSchema)]
pub struct VersionCount {
    model_version: u32,
    count: u64,
}

/// A listener's live state.
#[derive(Serialize, Clone, PartialEq, ToSchema)]
pub struct ListenerView {
    name: String,
    collection: String,
    key: String,
    model: String,
    model_version: u32,
    #[schema(value_type = Object)]
    select: Json_,
    upstream: Option<String>,
    /// Stored outputs per model version.
    outputs: Vec<VersionCount>,
    /// Documents queued.
    pending: u64,
    /// Failed documents still retried.
    retrying: u64,
    /// Failed documents parked.
    parked: u64,
    /// The latest backfill (its `done` of `total` is the progress bar).
    backfill: Option<JobView>,
    /// Outputs written per second by the latest incremental batch or backfill.
    throughput: f64,
}

fn latest_by_target<'j>(jobs: &'j [JobRecord], kind: &str) -> HashMap<&'j str, &'j JobRecord> {
    let mut out: HashMap<&str, &JobRecord> = HashMap::new();
    for j in jobs.iter().filter(|j| j.kind == kind) {
        if out
            .get(j.target.as_str())
            .is_none_or(|k| k.started < j.started)
        {
            out.insert(&j.target, j);
        }
    }
    out
}

/// Every listener's view (what the dashboard and the event stream show).
pub(crate) fn listener_views(
    db: &Datalayer,
    jobs: &[JobRecord],
) -> vigil::Result<Vec<ListenerView>> {
    let backfills = latest_by_target(jobs, "backfill");
    let batches = latest_by_target(jobs, "predict");
    db.listeners()?
        .into_iter()
        .map(|l| {
            let status = db.listener_status(&l.name)?;
            let backfill = backfills.get(l.name.as_str()).map(|j| JobView::from(*j));
            let recent = [
                backfill.clone(),
                batches.get(l.name.as_str()).map(|j| JobView::from(*j)),
            ]
            .into_iter()
            .flatten()
            .max_by(|a, b| a.started.total_cmp(&b.started));
            Ok(ListenerView {
                name: l.name,
                collection: l.collection,
                key: l.key,
                model: l.model,
                model_version: l.model_version,
                select: l.select,
                upstream: l.upstream,
                outputs: status
                    .outputs
                    .iter()
                    .map(|o| VersionCount {
                        model_version: o.model_version,
                        count: o.count,
                    })
                    .collect(),
                pending: status.pending,
                retrying: status.retrying,
                parked: status.parked,
                backfill,
                throughput: recent.map(|j| j.throughput).unwrap_or(0.0),
            })
        })
        .collect()
}

/// Jobs looked at to find each listener's latest backfill and batch.
pub(crate) const RECENT_JOBS: usize = 500;

/// Every listener, with its outputs per model version, queue, errors and throughput.
#[utoipa::path(get, path = "/api/listeners", tag = "listeners",
    responses((status = 200, body = [ListenerView])))]
pub async fn list(_: Read, State(state): State<AppState>) -> ApiResult<Json<Vec<ListenerView>>> {
    let db = state.db();
    let views = blocking(move || {
        let jobs = db.jobs(RECENT_JOBS)?;
        listener_views(&db, &jobs)
    })
    .await?;
    Ok(Json(views))
}

/// One listener by name (percent-encode its slashes: `mnist%2Fimg%2Flenet5`).
#[utoipa::path(get, path = "/api/listeners/{name}", tag = "listeners",
    responses((status = 200, body = ListenerView), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get(
    _: Read,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<ListenerView>> {
    let db = state.db();
    let views = blocking(move || {
        db.listener(&name)?;
        let jobs = db.jobs(RECENT_JOBS)?;
        Ok((listener_views(&db, &jobs)?, name))
    })
    .await?;
    let (views, name) = views;
    views
        .into_iter()
        .find(|v| v.name == name)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no listener `{name}`")))
}

/// How many documents a retry queued.
#[derive(Serialize, ToSchema)]
pub struct Retried {
    queued: u64,
}

/// Queues the listener's parked documents again, for the next worker.
#[utoipa::path(post, path = "/api/listeners/{name}/retry", tag = "listeners",
    responses((status = 200, body = Retried), (status = 404, body = crate::error::ErrorBody)))]
pub async fn retry(
    _: Write,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Retried>> {
    let db = state.db();
    let queued = blocking(move || db.retry_parked(&name)).await?;
    Ok(Json(Retried { queued }))
}

/// Which errors.
#[derive(Deserialize, utoipa::IntoParams)]
pub struct ErrorParams {
    /// Only this listener's. Default: every listener's.
    listener: Option<String>,
    /// At most this many, most recent first. Default: 100.
    limit: Option<usize>,
}

/// Documents listeners failed on, most recent first, with the reason.
#[utoipa::path(get, path = "/api/errors", tag = "listeners", params(ErrorParams),
    responses((status = 200, body = [FailureView])))]
pub async fn errors(
    _: Read,
    State(state): State<AppState>,
    Params(p): Params<ErrorParams>,
) -> ApiResult<Json<Vec<FailureView>>> {
    let db = state.db();
    let failures = blocking(move || {
        if let Some(l) = &p.listener {
            db.listener(l)?;
        }
        db.failures(p.listener.as_deref())
    })
    .await?;
    Ok(Json(
        failures
            .into_iter()
            .take(p.limit.unwrap_or(100))
            .map(FailureView::from)
            .collect(),
    ))
}

/// How many jobs.
#[derive(Deserialize, utoipa::IntoParams)]
pub struct JobParams {
    /// At most this many, most recent first. Default: 50.
    limit: Option<usize>,
}

/// Recent jobs: backfills, fits, incremental batches.
#[utoipa::path(get, path = "/api/jobs", tag = "listeners", params(JobParams),
    responses((status = 200, body = [JobView])))]
pub async fn jobs(
    _: Read,
    State(state): State<AppState>,
    Params(p): Params<JobParams>,
) -> ApiResult<Json<Vec<JobView>>> {
    let db = state.db();
    let jobs = blocking(move || db.jobs(p.limit.unwrap_or(50))).await?;
    Ok(Json(jobs.iter().map(JobView::from).collect()))
}

/// One job by id.
#[utoipa::path(get, path = "/api/jobs/{id}", tag = "listeners",
    responses((status = 200, body = JobView), (status = 404, body = crate::error::ErrorBody)))]
pub async fn job(
    _: Read,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<JobView>> {
    let db = state.db();
    let key = id.clone();
    let job = blocking(move || db.job(&key)).await?;
    job.map(|j| Json(JobView::from(&j)))
        .ok_or_else(|| ApiError::not_found(format!("no job `{id}`")))
}
