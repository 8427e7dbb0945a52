//! Live progress as server-sent events: every half second the listeners' views and the recent
//! jobs are read again, and an event is sent when they changed. Reading the database (rather
//! than watching this process) sees work done by `vigil worker` processes anywhere.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use serde::Serialize;
use tokio_stream::Stream;
use utoipa::ToSchema;

use super::listeners::{listener_views, JobView, ListenerView, RECENT_JOBS};
use crate::auth::Read;
use crate::error::blocking;
use crate::state::AppState;

const EVERY: Duration = Duration::from_millis(500);
/// Jobs an event carries.
const JOBS_SHOWN: usize = 20;

/// One `state` event's data.
#[derive(Serialize, PartialEq, ToSchema)]
pub struct Snapshot {
    listeners: Vec<ListenerView>,
    jobs: Vec<JobView>,
}

/// A stream of `state` events (a [`Snapshot`] as JSON) whenever listeners or jobs change, and
/// `error` events when the database cannot be read (the stream carries on).
#[utoipa::path(get, path = "/api/events", tag = "listeners",
    responses((status = 200, content_type = "text/event-stream", body = Snapshot)))]
pub async fn events(
    _: Read,
    State(state): State<AppState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream = async_stream(state);
    Sse::new(stream).keep_alive(KeepAlive::default())
}

fn async_stream(state: AppState) -> impl Stream<Item = Result<Event, Infallible>> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Event>(1);
    tokio::spawn(async move {
        let mut last: Option<Snapshot> = None;
        let mut ticks = tokio::time::interval(EVERY);
        // Ends when the server stops or the client goes away (checked on every tick, as an
        // unchanged state sends nothing that would notice).
        while !state.stopping() && !tx.is_closed() {
            ticks.tick().await;
            let db = state.db();
            let read = blocking(move || {
                let jobs = db.jobs(RECENT_JOBS)?;
                let listeners = listener_views(&db, &jobs)?;
                Ok(Snapshot {
                    listeners,
                    jobs: jobs.iter().take(JOBS_SHOWN).map(JobView::from).collect(),
                })
            })
            .await;
            let event = match read {
                Ok(snapshot) if last.as_ref() == Some(&snapshot) => continue,
                Ok(snapshot) => {
                    let data = serde_json::to_string(&snapshot).unwrap_or_default();
                    last = Some(snapshot);
                    Event::default().event("state").data(data)
                }
                Err(e) => Event::default().event("error").data(e.message),
            };
            if tx.send(event).await.is_err() {
                return; // the client went away
            }
        }
    });
    tokio_stream::StreamExt::map(tokio_stream::wrappers::ReceiverStream::new(rx), Ok)
}
