//! Listeners on MongoDB. The change stream is read by whichever vigil process needs work
//! (see `capture`): it writes one queue entry per (listener, document), bumping the entry's
//! generation on every change, in the same transaction as the stream's resume token. Workers
//! claim entries under a lease (`claim`), compute outside any transaction, and apply outputs,
//! errors, job progress and dequeueing in one transaction that skips every entry whose
//! generation moved on.
//!
//! Collections: `vigil_listeners {_id: name, seq, collection, upstream, record}`,
//! `vigil_queue`, `vigil_outputs` and `vigil_errors`, each keyed by
//! `"<listener>|<document id as JSON>"` and holding the listener's name and the document's
//! `_id` as stored. Outputs are also written into the documents at `_outputs.<key>.<model>`.

use std::time::Duration;

use mongodb::bson::{doc, Bson};
use vigil_core::backend::sql::{listener_in_use, missing_upstream};
use vigil_core::backend::{OutputCount, OutputState};
use vigil_core::listen::{now, Claim, FailureRecord, JobRecord, JobStatus, ListenerRecord};
use vigil_core::{Filter, Queue, Result, Value};

use crate::bson::from_bson;
use crate::entries::{
    enqueue, entry_key, for_each_row, output_path, read_listeners, remove, selected_ids,
};
use crate::error::db_err;
use crate::MongoBackend;

impl Queue for MongoBackend {
    fn install_listener(
        &self,
        listener: &ListenerRecord,
        backfill: Option<&JobRecord>,
    ) -> Result<u64> {
        Filter::parse(&listener.select)?;
        let record = listener.to_stored()?;
        // The stream's position is taken before anything is read, so no change committed
        // after this point can be missed (one seen twice is queued twice, harmlessly).
        crate::capture::ensure_position(self)?;
        self.transaction("installing a listener", |session| {
            let listeners = self.collection("vigil_listeners");
            if let Some(up) = &listener.upstream {
                let found = listeners
                    .find_one(doc! { "_id": up })
                    .session(&mut *session)
                    .run()
                    .map_err(db_err("reading listeners"))?;
                if found.is_none() {
                    return Err(missing_upstream(up));
                }
            }
            let existing = listeners
                .find_one(doc! { "_id": &listener.name })
                .session(&mut *session)
                .run()
                .map_err(db_err("reading listeners"))?;
            let seq = match existing.as_ref().and_then(|d| d.get_i64("seq").ok()) {
                Some(seq) => seq,
                None => {
                    let last = listeners
                        .find_one(doc! {})
                        .sort(doc! { "seq": -1 })
                        .session(&mut *session)
                        .run()
                        .map_err(db_err("reading listeners"))?;
                    last.and_then(|d| d.get_i64("seq").ok()).unwrap_or(0) + 1
                }
            };
            let row = doc! {
                "_id": &listener.name,
                "seq": seq,
                "collection": &listener.collection,
                "upstream": listener.upstream.clone().map(Bson::from).unwrap_or(Bson::Null),
                "record": &record,
            };
            listeners
                .replace_one(doc! { "_id": &listener.name }, row)
                .upsert(true)
                .session(&mut *session)
                .run()
                .map_err(db_err("registering a listener"))?;
            let Some(job) = backfill else {
                return Ok(0);
            };
            let ids = selected_ids(self, session, listener)?;
            enqueue(self, session, &listener.name, &ids, Some(&job.id))?;
            let total = self
                .collection("vigil_queue")
                .count_documents(doc! { "listener": &listener.name, "job": &job.id })
                .session(&mut *session)
                .run()
                .map_err(db_err("counting a backfill"))?;
            let mut job = job.clone();
            job.total = total;
            if total == 0 {
                job.status = JobStatus::Success;
                job.finished = Some(now());
            }
            crate::jobs::store_job(self, session, &job)?;
            Ok(total)
        })
    }

    fn listeners(&self) -> Result<Vec<ListenerRecord>> {
        read_listeners(self, None)
    }

    fn remove_listener(&self, name: &str) -> Result<bool> {
        let Some(listener) = read_listeners(self, None)?
            .into_iter()
            .find(|l| l.name == name)
        else {
            return Ok(false);
        };
        self.transaction("removing a listener", |session| {
            let downstream = self
                .collection("vigil_listeners")
                .find_one(doc! { "upstream": name })
                .session(&mut *session)
                .run()
                .map_err(db_err("checking chained listeners"))?;
            if let Some(down) = downstream {
                return Err(listener_in_use(name, down.get_str("_id").unwrap_or("?")));
            }
            remove(self, session, name)
        })?;
        // Its outputs leave the documents too (outside the transaction: it may touch every
        // document of the collection).
        let path = output_path(&listener);
        self.collection(&listener.collection)
            .update_many(
                doc! { &path: { "$exists": true } },
                doc! { "$unset": { &path: "" } },
            )
            .run()
            .map_err(db_err("removing a listener's outputs"))?;
        Ok(true)
    }

    fn retry_parked(&self, listener: &str) -> Result<u64> {
        self.transaction("retrying parked documents", |session| {
            let errors = self.collection("vigil_errors");
            let mut ids = Vec::new();
            for_each_row(
                &errors,
                doc! { "listener": listener, "parked": true },
                doc! { "doc_id": 1 },
                session,
                "reading errors",
                |row| {
                    ids.push(row.get("doc_id").cloned().unwrap_or(Bson::Null));
                    Ok(())
                },
            )?;
            enqueue(self, session, listener, &ids, None)?;
            let n = errors
                .update_many(
                    doc! { "listener": listener, "parked": true },
                    doc! { "$set": { "parked": false } },
                )
                .session(&mut *session)
                .run()
                .map_err(db_err("un-parking documents"))?
                .modified_count;
            Ok(n)
        })
    }

    fn claim(&self, worker: &str, limit: usize, lease: Duration) -> Result<Option<Box<dyn Claim>>> {
        crate::capture::capture(self, Duration::ZERO)?;
        crate::claim::claim(self, worker, limit, lease)
    }

    fn wait_for_work(&self, timeout: Duration) -> Result<()> {
        crate::capture::wait(self, timeout)
    }

    fn pending(&self, listener: Option<&str>) -> Result<u64> {
        crate::capture::capture(self, Duration::ZERO)?;
        let filter = match listener {
            Some(name) => doc! { "listener": name },
            None => doc! {},
        };
        self.collection("vigil_queue")
            .count_documents(filter)
            .run()
            .map_err(db_err("counting queued work"))
    }

    fn output_states(&self, listener: &str, ids: &[Value]) -> Result<Vec<OutputState>> {
        let mut out = Vec::new();
        for chunk in ids.chunks(1000) {
            let keys: Vec<String> = chunk.iter().map(|id| entry_key(listener, id)).collect();
            let cursor = self
                .collection("vigil_outputs")
                .find(doc! { "_id": { "$in": keys } })
                .projection(doc! { "doc_id": 1, "model_version": 1, "input_hash": 1 })
                .run()
                .map_err(db_err("reading outputs"))?;
            for row in cursor {
                let row = row.map_err(db_err("reading outputs"))?;
                out.push(OutputState {
                    doc_id: from_bson(row.get("doc_id").cloned().unwrap_or(Bson::Null)),
                    model_version: row.get_i64("model_version").unwrap_or(0) as u32,
                    input_hash: row.get_str("input_hash").unwrap_or("").to_string(),
                });
            }
        }
        Ok(out)
    }

    fn output_versions(&self, listener: &str) -> Result<Vec<OutputCount>> {
        let cursor = self
            .collection("vigil_outputs")
            .aggregate([
                doc! { "$match": { "listener": listener } },
                doc! { "$group": { "_id": "$model_version", "n": { "$sum": 1 } } },
                doc! { "$sort": { "_id": 1 } },
            ])
            .run()
            .map_err(db_err("counting outputs"))?;
        let mut out = Vec::new();
        for row in cursor {
            let row = row.map_err(db_err("counting outputs"))?;
            let version = match row.get("_id") {
                Some(Bson::Int64(v)) => *v,
                Some(Bson::Int32(v)) => i64::from(*v),
                _ => 0,
            };
            let n = match row.get("n") {
                Some(Bson::Int64(v)) => *v,
                Some(Bson::Int32(v)) => i64::from(*v),
                _ => 0,
            };
            out.push(OutputCount::new(version as u32, n as u64));
        }
        Ok(out)
    }

    fn failures(&self, listener: Option<&str>) -> Result<Vec<FailureRecord>> {
        let filter = match listener {
            Some(name) => doc! { "listener": name },
            None => doc! {},
        };
        let cursor = self
            .collection("vigil_errors")
            .find(filter)
            .sort(doc! { "last_failed": -1 })
            .run()
            .map_err(db_err("reading errors"))?;
        let mut out = Vec::new();
        for row in cursor {
            let row = row.map_err(db_err("reading errors"))?;
            out.push(FailureRecord {
                listener: row.get_str("listener").unwrap_or("").to_string(),
                doc_id: from_bson(row.get("doc_id").cloned().unwrap_or(Bson::Null)).to_json(),
                error: row.get_str("error").unwrap_or("").to_string(),
                attempts: row.get_i64("attempts").unwrap_or(0) as u32,
                first_failed: row.get_f64("first_failed").unwrap_or(0.0),
                last_failed: row.get_f64("last_failed").unwrap_or(0.0),
                parked: row.get_bool("parked").unwrap_or(false),
            });
        }
        Ok(out)
    }
}
