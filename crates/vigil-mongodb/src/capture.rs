//! Change capture: the database's change stream, read by whichever vigil process needs work
//! (a worker claiming, or waiting for work; anyone counting what is pending). Each read turns
//! the changes to listened collections into queue entries and moves the stream's stored
//! position (`vigil_capture`, its resume token) in the **same transaction**, conditional on
//! the position it started from. So a crash anywhere loses nothing (the token did not move,
//! the changes are read again) and duplicates nothing (the entries did not commit either, and
//! a second reader of the same changes finds the position moved and writes nothing).
//!
//! Writes from any client reach the listeners this way: vigil's own, pymongo's, mongosh's.
//! An update concerns a listener only when a field it reads changed (its key, its select's
//! fields; for a chain, the upstream's output), so outputs written into a document do not
//! wake its own listener. If the stored position has fallen off the server's oplog, every
//! listener's select is queued again, and a `rescan` job says so.

use std::collections::BTreeMap;
use std::time::Duration;

use mongodb::bson::{self, doc, Bson};
use mongodb::change_stream::event::{ChangeStreamEvent, OperationType, ResumeToken};
use vigil_core::listen::{now, JobRecord, JobStatus, ListenerRecord};
use vigil_core::{Result, ID_FIELD};

use crate::entries::{enqueue, read_listeners, selected_ids};
use crate::error::{code, db_err};
use crate::MongoBackend;

const STATE: &str = "vigil_capture";
const STREAM: &str = "stream";
/// Changes turned into queue entries per transaction.
const BATCH: usize = 2000;

/// Server codes for a resume point that is gone: ChangeStreamHistoryLost, and
/// ChangeStreamFatalError (older servers).
const HISTORY_LOST: [i32; 2] = [286, 280];

fn stored_token(backend: &MongoBackend) -> Result<Option<Bson>> {
    Ok(backend
        .collection(STATE)
        .find_one(doc! { "_id": STREAM })
        .run()
        .map_err(db_err("reading the change stream's position"))?
        .and_then(|d| d.get("token").cloned()))
}

fn as_token(b: &Bson) -> Option<ResumeToken> {
    bson::from_bson(b.clone()).ok()
}

fn token_bson(t: &ResumeToken) -> Result<Bson> {
    bson::to_bson(t).map_err(|e| vigil_core::Error::Corrupt {
        collection: STATE.into(),
        reason: format!("a resume token: {e}"),
    })
}

/// Whether the stored position is still `start`, read inside the transaction that will move
/// it (the condition that makes two readers of the same changes write them once).
fn still_at(
    backend: &MongoBackend,
    session: &mut mongodb::sync::ClientSession,
    start: &Bson,
) -> Result<bool> {
    let state = backend
        .collection(STATE)
        .find_one(doc! { "_id": STREAM })
        .session(session)
        .run()
        .map_err(db_err("reading the change stream's position"))?;
    Ok(state.and_then(|d| d.get("token").cloned()).as_ref() == Some(start))
}

/// The stream's position now: a stream opened and asked once.
fn position_now(backend: &MongoBackend) -> Result<Bson> {
    let mut stream = backend
        .db
        .watch()
        .max_await_time(Duration::from_millis(1))
        .run()
        .map_err(db_err("opening the change stream"))?;
    if stream.resume_token().is_none() {
        let _ = stream
            .next_if_any()
            .map_err(db_err("reading the change stream"))?;
    }
    let token = stream
        .resume_token()
        .ok_or_else(|| vigil_core::Error::Backend {
            backend: "mongodb",
            context: "opening the change stream".into(),
            source: "the server gave no resume token".into(),
        })?;
    token_bson(&token)
}

/// Makes sure the stream has a stored position before a listener is installed. With no
/// listener installed yet, the position is moved to now (older changes concern nobody).
pub(crate) fn ensure_position(backend: &MongoBackend) -> Result<()> {
    let none_listening = read_listeners(backend, None)?.is_empty();
    if stored_token(backend)?.is_some() && !none_listening {
        return Ok(());
    }
    let token = position_now(backend)?;
    // In a transaction, as every write to the position is: a plain write would wait behind
    // the capture transaction of a process killed mid-read until the server aborted it.
    backend.transaction("storing the change stream's position", |session| {
        backend
            .collection(STATE)
            .update_one(doc! { "_id": STREAM }, doc! { "$set": { "token": &token } })
            .upsert(true)
            .session(session)
            .run()
            .map(|_| ())
            .map_err(db_err("storing the change stream's position"))
    })
}

/// Whether two dotted paths overlap: one is the other or lies inside it.
fn overlaps(a: &str, b: &str) -> bool {
    a == b
        || (a.len() > b.len() && a.starts_with(b) && a.as_bytes()[b.len()] == b'.')
        || (b.len() > a.len() && b.starts_with(a) && b.as_bytes()[a.len()] == b'.')
}

/// The fields an update changed, as dotted paths.
fn changed_paths(event: &ChangeStreamEvent<bson::Document>) -> Vec<String> {
    let Some(update) = &event.update_description else {
        return Vec::new();
    };
    let mut paths: Vec<String> = update.updated_fields.keys().cloned().collect();
    paths.extend(update.removed_fields.iter().cloned());
    for t in update.truncated_arrays.iter().flatten() {
        paths.push(t.field.clone());
    }
    paths
}

/// Whether a change concerns a listener.
fn concerns(
    listener: &ListenerRecord,
    watched: &[String],
    event: &ChangeStreamEvent<bson::Document>,
) -> bool {
    match event.operation_type {
        OperationType::Insert => !listener.is_chain(),
        OperationType::Delete | OperationType::Replace => true,
        OperationType::Update => changed_paths(event)
            .iter()
            .any(|p| watched.iter().any(|w| overlaps(p, w))),
        _ => false,
    }
}

/// The paths an update must touch to concern a listener: what it reads (for a chain, its key,
/// which is the upstream's output path).
fn watched(listener: &ListenerRecord) -> Result<Vec<String>> {
    let mut paths: Vec<String> = listener
        .watched_paths()?
        .iter()
        .map(|p| p.dotted())
        .collect();
    if listener.is_chain() {
        paths.push(listener.key.clone());
    }
    paths.push(ID_FIELD.into());
    Ok(paths)
}

/// Reads the changes after the stored position, up to the end of the stream (waiting up to
/// `wait` for the first), and queues them; returns whether anything was queued. All of them:
/// a caller that wrote and then asks for work must find its own write queued, however many of
/// vigil's own bookkeeping changes came before it.
pub(crate) fn capture(backend: &MongoBackend, wait: Duration) -> Result<bool> {
    let listeners = read_listeners(backend, None)?;
    if listeners.is_empty() {
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
        return Ok(false);
    }
    let (mut queued, mut wait) = (false, wait);
    // Each round moves the stored position (or finds another reader moved it); the bound
    // only guards against a server that keeps answering full batches from one position.
    for _ in 0..1000 {
        let (round_queued, full) = capture_batch(backend, &listeners, wait)?;
        queued |= round_queued;
        if !full {
            break;
        }
        wait = Duration::ZERO;
    }
    Ok(queued)
}

/// One batch of changes after the stored position: whether anything was queued, and whether
/// the batch was full (more may follow).
fn capture_batch(
    backend: &MongoBackend,
    listeners: &[ListenerRecord],
    wait: Duration,
) -> Result<(bool, bool)> {
    let Some(start) = stored_token(backend)? else {
        ensure_position(backend)?;
        return Ok((false, false));
    };
    // Every change of the database is read and sorted here, not by a `$match` stage in the
    // server: SecantusDB's change stream with a `$match` moved its resume token past a change
    // committed just before (ARCHITECTURE.md, MongoDB backend), and the stream carries only
    // small descriptions of changes, not the documents.
    let mut watch = backend
        .db
        .watch()
        .resume_after(as_token(&start))
        .batch_size(BATCH as u32);
    // The server waits this long for a change before answering "none" (its default is a
    // second, which every claim would pay).
    watch = watch.max_await_time(wait.max(Duration::from_millis(1)));
    let mut stream = match watch.run() {
        Ok(s) => s,
        Err(e) if code(&e).is_some_and(|c| HISTORY_LOST.contains(&c)) => {
            return rescan(backend, listeners, &start).map(|q| (q, false))
        }
        Err(e) => return Err(db_err("opening the change stream")(e)),
    };
    let mut events = Vec::new();
    loop {
        match stream.next_if_any() {
            Ok(Some(event)) => {
                events.push(event);
                if events.len() >= BATCH {
                    break;
                }
            }
            Ok(None) => break,
            Err(e) if code(&e).is_some_and(|c| HISTORY_LOST.contains(&c)) => {
                return rescan(backend, listeners, &start).map(|q| (q, false))
            }
            Err(e) => return Err(db_err("reading the change stream")(e)),
        }
    }
    let end = match events.last() {
        Some(event) => token_bson(&event.id)?,
        None => match stream.resume_token() {
            Some(t) => token_bson(&t)?,
            None => return Ok((false, false)),
        },
    };
    drop(stream);
    let full = events.len() >= BATCH;
    let listened: Vec<&ChangeStreamEvent<bson::Document>> = events
        .iter()
        .filter(|e| {
            e.ns.as_ref()
                .and_then(|ns| ns.coll.as_deref())
                .is_some_and(|coll| listeners.iter().any(|l| l.collection == coll))
        })
        .collect();
    if listened.is_empty() {
        // Nothing for the listeners. The position moves on once a stretch is worth skipping
        // (moving it is itself a change, which the next read would see).
        if end != start && events.len() >= 100 {
            // Best effort (tried once): another process holding the position moves it on.
            let moved = backend.transaction_once("storing the change stream's position", |s| {
                backend
                    .collection(STATE)
                    .update_one(
                        doc! { "_id": STREAM, "token": &start },
                        doc! { "$set": { "token": &end } },
                    )
                    .session(s)
                    .run()
                    .map(|_| ())
                    .map_err(db_err("storing the change stream's position"))
            });
            match moved {
                Err(e) if !crate::error::is_transient_error(&e) => return Err(e),
                _ => {}
            }
        }
        return Ok((false, full));
    }
    // Per listener, the ids of the documents its changes concern, in order of the changes.
    let mut work: BTreeMap<usize, Vec<Bson>> = BTreeMap::new();
    let watched: Vec<Vec<String>> = listeners.iter().map(watched).collect::<Result<_>>()?;
    for event in listened {
        let (Some(ns), Some(key)) = (&event.ns, &event.document_key) else {
            continue;
        };
        let Some(id) = key.get(ID_FIELD) else {
            continue;
        };
        for (i, listener) in listeners.iter().enumerate() {
            if ns.coll.as_deref() == Some(listener.collection.as_str())
                && concerns(listener, &watched[i], event)
            {
                work.entry(i).or_default().push(id.clone());
            }
        }
    }
    backend.transaction("queueing changes", |session| {
        if !still_at(backend, session, &start)? {
            // Another process queued these changes first.
            return Ok((false, full));
        }
        for (i, ids) in &work {
            enqueue(backend, session, &listeners[*i].name, ids, None)?;
        }
        backend
            .collection(STATE)
            .update_one(doc! { "_id": STREAM }, doc! { "$set": { "token": &end } })
            .session(&mut *session)
            .run()
            .map_err(db_err("storing the change stream's position"))?;
        Ok((!work.is_empty(), full))
    })
}

/// The stored position is no longer in the oplog: changes since may be lost, so every
/// listener's select (and every document holding its output) is queued again, and a job
/// records why.
fn rescan(backend: &MongoBackend, listeners: &[ListenerRecord], start: &Bson) -> Result<bool> {
    let fresh = position_now(backend)?;
    let mut job = JobRecord::start("rescan", "change stream", 0);
    backend.transaction(
        "re-scanning after a lost change stream position",
        |session| {
            if !still_at(backend, session, start)? {
                return Ok(false);
            }
            let mut total = 0;
            for listener in listeners {
                let ids = selected_ids(backend, session, listener)?;
                total += ids.len() as u64;
                enqueue(backend, session, &listener.name, &ids, None)?;
            }
            job.total = total;
            job.done = total;
            job.status = JobStatus::Success;
            job.finished = Some(now());
            job.error = Some(format!(
                "the change stream's stored position is no longer in the server's oplog; \
             {total} documents of {} listeners were queued again",
                listeners.len()
            ));
            crate::jobs::store_job(backend, session, &job)?;
            backend
                .collection(STATE)
                .update_one(doc! { "_id": STREAM }, doc! { "$set": { "token": &fresh } })
                .session(&mut *session)
                .run()
                .map_err(db_err("storing the change stream's position"))?;
            Ok(true)
        },
    )
}

/// Blocks until a change was queued or `timeout` passed (the stream itself waits in the
/// server; nothing polls).
pub(crate) fn wait(backend: &MongoBackend, timeout: Duration) -> Result<()> {
    capture(backend, timeout.max(Duration::from_millis(1))).map(|_| ())
}
