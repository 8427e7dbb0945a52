//! The sessions this process runs transactions on, recorded in `vigil_sessions`, so that a
//! process finding another one dead on its host can end that one's open transactions at once
//! (`killSessions`) instead of waiting for the server to abort them.
//!
//! A process killed mid-transaction leaves the transaction open, holding what it wrote, until
//! the server aborts it after `transactionLifetimeLimitSeconds` (60 s by default): every
//! claim, apply or capture that touches the same entries meets a write conflict until then.
//! The driver reuses its server sessions, so a process records only a handful, once each.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

use mongodb::bson::{doc, Bson, Document};
use mongodb::sync::{ClientSession, Database};
use vigil_core::ids::{claimer_is_dead, worker_label};
use vigil_core::Result;

use crate::error::db_err;

const SESSIONS: &str = "vigil_sessions";

/// The session ids this backend has recorded.
#[derive(Default)]
pub(crate) struct Recorded(Mutex<HashSet<Vec<u8>>>);

/// This process, as [`claimer_is_dead`] reads it (`host:pid:…`).
fn owner() -> &'static str {
    static OWNER: OnceLock<String> = OnceLock::new();
    OWNER.get_or_init(worker_label)
}

fn key(lsid: &Document) -> Vec<u8> {
    match lsid.get("id") {
        Some(Bson::Binary(b)) => b.bytes.clone(),
        _ => lsid.to_string().into_bytes(),
    }
}

/// Records `session`'s id under this process before its first transaction (a plain write of
/// a new document: it cannot wait on anyone's transaction).
pub(crate) fn record(db: &Database, recorded: &Recorded, session: &ClientSession) -> Result<()> {
    let lsid = session.id();
    let key = key(lsid);
    let recorded = &recorded.0;
    if recorded
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .contains(&key)
    {
        return Ok(());
    }
    db.collection::<Document>(SESSIONS)
        .update_one(
            doc! { "_id": Bson::Binary(mongodb::bson::Binary {
                subtype: mongodb::bson::spec::BinarySubtype::Generic,
                bytes: key.clone(),
            }) },
            doc! { "$set": { "owner": owner(), "lsid": lsid.clone() } },
        )
        .upsert(true)
        .run()
        .map_err(db_err("recording a session"))?;
    recorded
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(key);
    Ok(())
}

/// Ends the sessions of processes of this host that are gone, aborting their open
/// transactions, and forgets them; returns how many. Processes on other hosts cannot be told
/// dead from here: their transactions end when the server's lifetime limit does.
pub(crate) fn end_dead(db: &Database) -> Result<usize> {
    let sessions = db.collection::<Document>(SESSIONS);
    let mut ids = Vec::new();
    let mut lsids = Vec::new();
    for row in sessions
        .find(doc! {})
        .run()
        .map_err(db_err("reading sessions"))?
    {
        let row = row.map_err(db_err("reading sessions"))?;
        if !claimer_is_dead(row.get_str("owner").unwrap_or("")) {
            continue;
        }
        if let (Some(id), Ok(lsid)) = (row.get("_id"), row.get_document("lsid")) {
            ids.push(id.clone());
            lsids.push(lsid.clone());
        }
    }
    if ids.is_empty() {
        return Ok(0);
    }
    db.run_command(doc! { "killSessions": lsids })
        .run()
        .map_err(db_err("ending a dead process's sessions"))?;
    sessions
        .delete_many(doc! { "_id": { "$in": &ids } })
        .run()
        .map_err(db_err("forgetting a dead process's sessions"))?;
    Ok(ids.len())
}
