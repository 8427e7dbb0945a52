//! Listeners: a (model, key, select) kept current on a collection. Switching one on registers
//! it, installs change capture in the database and queues a backfill job; workers (in this
//! process, or `vigil worker`) compute what is queued.

use serde_json::Value as Json;
use vigil_core::backend::OutputCount;
use vigil_core::listen::{FailureRecord, JobRecord, ListenerRecord};
use vigil_core::{names, Error, FieldPath, Filter, Result, OUTPUTS_FIELD};

use crate::registry::MODEL;
use crate::Datalayer;

/// Kind name of listeners in the registry.
pub const LISTENER: &str = "listener";

/// What switching a listener on did.
#[derive(Debug, Clone, PartialEq)]
pub struct Listening {
    /// The listener as installed.
    pub listener: ListenerRecord,
    /// The backfill job (its `total` is the number of documents queued).
    pub backfill: JobRecord,
}

/// A listener's live state: what `vigil show listener` and a dashboard show.
#[derive(Debug, Clone, PartialEq)]
pub struct ListenerStatus {
    /// The listener as installed.
    pub listener: ListenerRecord,
    /// Its stored outputs, counted per model version (ascending).
    pub outputs: Vec<OutputCount>,
    /// Documents queued for it (new, changed, or failed and waiting for a retry).
    pub pending: u64,
    /// Documents it failed on that are still retried.
    pub retrying: u64,
    /// Documents it failed on for good (until they change).
    pub parked: u64,
}

impl Datalayer {
    /// Switches on a listener: from now on every document of `collection` that `select`
    /// matches gets `_outputs.<key>.<model>`, computed by the latest version of `model`, on
    /// every insert, on every update that touches what it reads, and loses it on delete or
    /// when it stops matching, whoever writes. The documents already stored are queued as a
    /// backfill job. Work runs in [`Datalayer::process_pending`] or in a `vigil worker`.
    ///
    /// `key` may be another listener's output (`_outputs.img.lenet5`): the new listener then
    /// runs after that one (a chain). Calling `listen` again for the same triple moves the
    /// listener to the model's latest version and queues every document again; outputs whose
    /// input and model version are unchanged are not recomputed.
    pub fn listen(
        &self,
        collection: &str,
        key: &str,
        model: &str,
        select: Json,
    ) -> Result<Listening> {
        self.listen_version(collection, key, model, select, None)
    }

    /// [`Datalayer::listen`] with a given model version (default: the latest).
    pub fn listen_version(
        &self,
        collection: &str,
        key: &str,
        model: &str,
        select: Json,
        version: Option<u32>,
    ) -> Result<Listening> {
        names::validate_collection(collection)?;
        let key_path = FieldPath::parse(key)?;
        Filter::parse(&select)?;
        let versions = self.show_versions(MODEL, model)?;
        let model_version = match version {
            Some(v) if versions.contains(&v) => v,
            _ => {
                let latest = versions.last().copied().filter(|_| version.is_none());
                latest.ok_or_else(|| Error::NotFound {
                    kind: MODEL.into(),
                    identifier: model.into(),
                    version,
                })?
            }
        };
        let upstream = if key_path.segments()[0] == OUTPUTS_FIELD {
            let wanted = &key_path.segments()[1..];
            let found = self
                .store()
                .listeners()?
                .into_iter()
                .find(|l| l.collection == collection && l.output_segments() == wanted);
            Some(
                found
                    .ok_or_else(|| Error::InvalidQuery {
                        part: "listener key",
                        path: key.into(),
                        reason: format!(
                            "no listener on `{collection}` writes `{key}`; switch that one on first"
                        ),
                    })?
                    .name,
            )
        } else {
            None
        };
        let listener = ListenerRecord {
            name: ListenerRecord::name_of(collection, key, model),
            collection: collection.into(),
            key: key.into(),
            model: model.into(),
            model_version,
            select,
            upstream,
        };
        self.install(listener)
    }

    /// Moves a listener to another model version (default: the model's latest) and queues
    /// every document again, as a backfill job. Outputs of the old version are replaced one by
    /// one as the job runs; each output carries its version, so none is mistaken for the other.
    pub fn roll_listener(&self, name: &str, version: Option<u32>) -> Result<Listening> {
        let mut listener = self.listener(name)?;
        let versions = self.show_versions(MODEL, &listener.model)?;
        listener.model_version = match version {
            Some(v) if versions.contains(&v) => v,
            None if !versions.is_empty() => *versions.last().expect("checked non-empty"),
            _ => {
                return Err(Error::NotFound {
                    kind: MODEL.into(),
                    identifier: listener.model.clone(),
                    version,
                })
            }
        };
        self.install(listener)
    }

    fn install(&self, listener: ListenerRecord) -> Result<Listening> {
        let mut job = JobRecord::start("backfill", &listener.name, 0);
        job.total = self.store().install_listener(&listener, Some(&job))?;
        let record = serde_json::to_value(&listener).map_err(|e| Error::InvalidDocument {
            location: Default::default(),
            reason: e.to_string(),
        })?;
        // A new registry version only when the listener changed.
        let latest = self
            .store()
            .get_component(LISTENER, &listener.name, None)?
            .map(|c| c.record);
        if latest.as_ref() != Some(&record) {
            self.store()
                .put_component(LISTENER, &listener.name, &record)?;
        }
        let backfill = self.store().get_job(&job.id)?.unwrap_or(job);
        Ok(Listening { listener, backfill })
    }

    /// The installed listeners.
    pub fn listeners(&self) -> Result<Vec<ListenerRecord>> {
        self.store().listeners()
    }

    /// One installed listener.
    pub fn listener(&self, name: &str) -> Result<ListenerRecord> {
        self.store()
            .listeners()?
            .into_iter()
            .find(|l| l.name == name)
            .ok_or_else(|| Error::NotFound {
                kind: LISTENER.into(),
                identifier: name.into(),
                version: None,
            })
    }

    /// Switches a listener off: its triggers, queue, outputs and errors go; its registry
    /// records stay. False if it was not installed.
    pub fn remove_listener(&self, name: &str) -> Result<bool> {
        self.store().remove_listener(name)
    }

    /// A listener's live state: outputs per model version, queue size, failures.
    pub fn listener_status(&self, name: &str) -> Result<ListenerStatus> {
        let listener = self.listener(name)?;
        let failures = self.failures(Some(name))?;
        let parked = failures.iter().filter(|f| f.parked).count() as u64;
        Ok(ListenerStatus {
            outputs: self.store().output_versions(name)?,
            pending: self.store().pending(Some(name))?,
            retrying: failures.len() as u64 - parked,
            parked,
            listener,
        })
    }

    /// Documents listeners failed on (one listener's, or all), most recent first, with the
    /// reason, the attempts made and whether they are parked.
    pub fn failures(&self, listener: Option<&str>) -> Result<Vec<FailureRecord>> {
        self.store().failures(listener)
    }

    /// Gives the documents a listener parked after failing another chance: they are queued
    /// again as fresh work (attempts reset) for the next worker; their error records stay
    /// until the retry succeeds. Returns how many were queued. What an operator does after
    /// fixing what made them fail (a model rolled, a codec registered).
    pub fn retry_parked(&self, listener: &str) -> Result<u64> {
        self.listener(listener)?;
        self.store().retry_parked(listener)
    }

    /// Queued listener work: one listener's, or all.
    pub fn pending(&self, listener: Option<&str>) -> Result<u64> {
        self.store().pending(listener)
    }

    /// The most recent jobs (backfills, fits, incremental batches), at most `limit`.
    pub fn jobs(&self, limit: usize) -> Result<Vec<JobRecord>> {
        self.store().jobs(limit)
    }

    /// One job by id.
    pub fn job(&self, id: &str) -> Result<Option<JobRecord>> {
        self.store().get_job(id)
    }

    /// Blocks until queued work may have arrived (another connection committed) or
    /// `timeout` passed: what an idle worker loop sleeps on.
    pub fn wait_for_work(&self, timeout: std::time::Duration) -> Result<()> {
        self.store().wait_for_work(timeout)
    }
}
