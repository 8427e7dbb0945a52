//! A process's copy of each vector index: the listener's current-version outputs as one
//! contiguous array (and an HNSW graph once the index is large), refreshed from the
//! database. The database is the truth: the copy compares the outputs' fingerprint
//! ([`OutputsMark`]) before each search, reads what was written since it last looked, and
//! reloads everything when the fingerprints still differ (a removal, or a write committed
//! late).

use std::collections::HashMap;
use std::sync::mpsc::{channel, Receiver, TryRecvError};
use std::sync::{Arc, Mutex};

use vigil_core::backend::{time_checksum, OutputsMark, StoredOutput, CHECKSUM_MODULUS};
use vigil_core::listen::ListenerRecord;
use vigil_core::{DType, Error, Result, Value};
use vigil_vector::{Graph, GraphOptions, Hit, Measure, Vectors};

use super::VectorIndex;
use crate::Datalayer;

/// How far back, in seconds, an incremental refresh rereads, for writes committed after a
/// later one (their times come from the writing worker's clock). Misses beyond it are caught
/// by the fingerprint and cost a full reload.
const REREAD_WINDOW: f64 = 10.0;

/// What an index holds: `vigil show`, the dashboard and tests read it.
#[derive(Debug, Clone, PartialEq)]
pub struct VectorIndexStatus {
    /// The index's name.
    pub identifier: String,
    /// Its listener.
    pub listener: String,
    /// Its measure.
    pub measure: Measure,
    /// The listener's model version the vectors come from.
    pub model_version: u32,
    /// Searchable vectors.
    pub vectors: usize,
    /// Their dimension (0 while there are none).
    pub dimension: usize,
    /// Outputs of the current model version that are not vectors of the index's dimension
    /// (left out of searches), and the latest reason.
    pub skipped: usize,
    /// Why the last one was skipped.
    pub skip_reason: Option<String>,
    /// True when searches go through the HNSW graph.
    pub approximate: bool,
}

/// Each index's copy, by name.
#[derive(Default)]
pub(crate) struct Caches {
    by_name: Mutex<HashMap<String, Arc<Mutex<IndexCache>>>>,
}

impl Caches {
    /// The copy of `index` (over `listener`, as the caller read it), refreshed, locked for
    /// the caller.
    pub(crate) fn with<T>(
        &self,
        db: &Datalayer,
        index: &VectorIndex,
        listener: &ListenerRecord,
        f: impl FnOnce(&mut IndexCache) -> Result<T>,
    ) -> Result<T> {
        let cache = self
            .by_name
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(index.identifier.clone())
            .or_default()
            .clone();
        let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.refresh(db, index, listener)?;
        f(&mut cache)
    }

    pub(crate) fn status(&self, db: &Datalayer, index: &VectorIndex) -> Result<VectorIndexStatus> {
        self.status_after(db, index, false)
    }

    /// The status, after waiting for a graph being built when `wait`.
    pub(crate) fn status_after(
        &self,
        db: &Datalayer,
        index: &VectorIndex,
        wait: bool,
    ) -> Result<VectorIndexStatus> {
        let listener = db.listener(&index.listener)?;
        self.with(db, index, &listener, |c| {
            if wait {
                c.wait_for_graph(index)?;
            }
            Ok(VectorIndexStatus {
                identifier: index.identifier.clone(),
                listener: index.listener.clone(),
                measure: index.measure,
                model_version: c.model_version,
                vectors: c.vectors.as_ref().map_or(0, Vectors::len),
                dimension: c.vectors.as_ref().map_or(0, Vectors::dim),
                skipped: c.skipped,
                skip_reason: c.skip_reason.clone(),
                approximate: c.graph.is_some(),
            })
        })
    }
}

/// One output as the copy knows it.
struct Entry {
    computed_at: f64,
    slot: Option<usize>,
    skipped: bool,
}

/// The copy of one index.
#[derive(Default)]
pub(crate) struct IndexCache {
    /// The index record it was built for (a new version starts afresh).
    record: Option<VectorIndex>,
    /// The listener's model version its vectors come from.
    pub(crate) model_version: u32,
    pub(crate) vectors: Option<Vectors>,
    /// The document id of each slot.
    ids: Vec<Value>,
    /// Every output of the listener, by document id (its JSON text).
    entries: HashMap<String, Entry>,
    /// The fingerprint of `entries`.
    mark: OutputsMark,
    latest: f64,
    pub(crate) graph: Option<Graph>,
    /// A graph being built on its own thread from a snapshot of the first `.0` slots.
    building: Option<(usize, Receiver<Option<Graph>>)>,
    skipped: usize,
    skip_reason: Option<String>,
    /// The model that turns a document into a query vector, by version.
    model: Option<(u32, Arc<vigil_ml::PipelineModel>)>,
}

impl IndexCache {
    fn refresh(
        &mut self,
        db: &Datalayer,
        index: &VectorIndex,
        listener: &ListenerRecord,
    ) -> Result<()> {
        // Dead slots are not reused: once they outnumber the live ones, start afresh.
        let sparse = self
            .vectors
            .as_ref()
            .is_some_and(|v| v.slots() > 1024 && v.slots() > 2 * v.len());
        if self.record.as_ref() != Some(index)
            || self.model_version != listener.model_version
            || sparse
        {
            *self = IndexCache {
                record: Some(index.clone()),
                model_version: listener.model_version,
                model: self.model.take(),
                ..IndexCache::default()
            };
        }
        let store = db.store();
        let mark = store.outputs_mark(&index.listener)?;
        if mark == self.mark {
            return self.keep_graph(index);
        }
        let since = (self.latest > 0.0).then_some(self.latest - REREAD_WINDOW);
        for row in store.outputs_since(&index.listener, since)? {
            self.apply(row, index.measure);
        }
        if self.mark != mark {
            // Something was removed, or written late: compare with everything stored. What
            // is gone is dropped (its slot goes dead, the graph skips it), what changed is
            // replaced; the rest, and the graph, stay.
            let rows = store.outputs_since(&index.listener, None)?;
            let present: std::collections::HashSet<String> = rows
                .iter()
                .map(|r| r.doc_id.to_json().to_string())
                .collect();
            let gone: Vec<String> = self
                .entries
                .keys()
                .filter(|k| !present.contains(*k))
                .cloned()
                .collect();
            for key in gone {
                if let Some(old) = self.entries.remove(&key) {
                    self.forget(&old);
                }
            }
            for row in rows {
                self.apply(row, index.measure);
            }
        }
        self.keep_graph(index)
    }

    /// Takes one stored output into the copy (replacing what it held for the document).
    fn apply(&mut self, row: StoredOutput, measure: Measure) {
        let key = row.doc_id.to_json().to_string();
        if let Some(old) = self.entries.get(&key) {
            if old.computed_at == row.computed_at {
                return;
            }
            let old = self.entries.remove(&key).expect("present");
            self.forget(&old);
        }
        self.latest = self.latest.max(row.computed_at);
        self.mark.count += 1;
        self.mark.checksum =
            (self.mark.checksum + time_checksum(row.computed_at)) % CHECKSUM_MODULUS;
        let (mut slot, mut skipped) = (None, false);
        if row.model_version == self.model_version {
            match self.push(&row.value, measure) {
                Ok(s) => {
                    // Slots are handed out in order, so `ids` stays parallel to them.
                    self.ids.push(row.doc_id);
                    slot = Some(s);
                }
                Err(reason) => {
                    self.skipped += 1;
                    self.skip_reason = Some(format!("{}: {reason}", row.doc_id.to_json()));
                    skipped = true;
                }
            }
        }
        self.entries.insert(
            key,
            Entry {
                computed_at: row.computed_at,
                slot,
                skipped,
            },
        );
    }

    fn forget(&mut self, old: &Entry) {
        self.mark.count -= 1;
        self.mark.checksum =
            (self.mark.checksum - time_checksum(old.computed_at)).rem_euclid(CHECKSUM_MODULUS);
        if let (Some(slot), Some(v)) = (old.slot, self.vectors.as_mut()) {
            v.remove(slot);
        }
        if old.skipped {
            self.skipped -= 1;
        }
    }

    fn push(&mut self, value: &Value, measure: Measure) -> std::result::Result<usize, String> {
        let v = to_vector(value)?;
        let vectors = self
            .vectors
            .get_or_insert_with(|| Vectors::new(v.len(), measure));
        let slot = vectors.push(&v).map_err(|e| e.to_string())?;
        if let Some(g) = self.graph.as_mut() {
            g.insert(vectors, slot);
        }
        Ok(slot)
    }

    /// Keeps the graph of an index above its threshold: built (again when a quarter of its
    /// points are dead) on a thread of its own from a snapshot of the vectors, so searches
    /// never wait for it; until it is ready they scan (or use the previous graph). A finished
    /// graph takes in the slots pushed since its snapshot. Dropped when the index shrinks
    /// below the threshold.
    fn keep_graph(&mut self, index: &VectorIndex) -> Result<()> {
        let Some(vectors) = self.vectors.as_ref() else {
            return Ok(());
        };
        if vectors.len() <= index.approximate_above {
            self.graph = None;
            self.building = None;
            return Ok(());
        }
        if let Some((upto, rx)) = &self.building {
            match rx.try_recv() {
                Ok(graph) => {
                    let upto = *upto;
                    self.graph = graph.map(|mut g| {
                        for slot in (upto..vectors.slots()).filter(|&s| vectors.is_live(s)) {
                            g.insert(vectors, slot);
                        }
                        g
                    });
                    self.building = None;
                }
                Err(TryRecvError::Empty) => return Ok(()),
                Err(TryRecvError::Disconnected) => self.building = None,
            }
        }
        let needed = self.graph.as_ref().is_none_or(|g| g.stale(vectors));
        if needed && vectors.measure() != Measure::Dot {
            let snapshot = vectors.clone();
            let (tx, rx) = channel();
            std::thread::Builder::new()
                .name("vigil-hnsw-build".into())
                .spawn(move || {
                    let _ = tx.send(Graph::build(&snapshot, GraphOptions::default()));
                })
                .map_err(|e| Error::Io {
                    context: "starting the thread that builds a vector graph".into(),
                    source: e,
                })?;
            self.building = Some((vectors.slots(), rx));
        }
        Ok(())
    }

    /// Waits until a graph being built is ready (tests and benchmarks).
    pub(crate) fn wait_for_graph(&mut self, index: &VectorIndex) -> Result<()> {
        while self.building.is_some() {
            std::thread::sleep(std::time::Duration::from_millis(20));
            self.keep_graph(index)?;
        }
        Ok(())
    }

    /// The document id of a slot.
    pub(crate) fn id(&self, slot: usize) -> &Value {
        &self.ids[slot]
    }

    /// The slots of the documents whose ids (JSON text) are in `keys`.
    pub(crate) fn slots_of(
        &self,
        keys: &std::collections::HashSet<String>,
    ) -> std::collections::HashSet<usize> {
        keys.iter()
            .filter_map(|k| self.entries.get(k).and_then(|e| e.slot))
            .collect()
    }

    /// The stored vector of a document, if it has a searchable one.
    pub(crate) fn vector_of(&self, id: &Value) -> Option<Vec<f32>> {
        let entry = self.entries.get(&id.to_json().to_string())?;
        Some(self.vectors.as_ref()?.get(entry.slot?).to_vec())
    }

    /// Up to `k` slots near `query` (prepared) that `allowed` accepts, nearest first:
    /// through the graph when there is one and `exact` is false (falling back to the scan when
    /// the graph runs out of candidates), else by scanning.
    pub(crate) fn nearest(
        &self,
        query: &[f32],
        k: usize,
        exact: bool,
        allowed: &dyn Fn(usize) -> bool,
    ) -> Vec<Hit> {
        let Some(vectors) = self.vectors.as_ref() else {
            return Vec::new();
        };
        if let (Some(graph), false) = (self.graph.as_ref(), exact) {
            let hits = graph.search(vectors, query, k, allowed);
            if hits.len() == k {
                return hits;
            }
        }
        vectors.exact(query, k, allowed)
    }

    /// The model that computes the listener's outputs, at the listener's version.
    pub(crate) fn model(
        &mut self,
        db: &Datalayer,
        model: &str,
    ) -> Result<Arc<vigil_ml::PipelineModel>> {
        match &self.model {
            Some((v, m)) if *v == self.model_version => Ok(m.clone()),
            _ => {
                let m = Arc::new(db.load_model(model, Some(self.model_version))?);
                self.model = Some((self.model_version, m.clone()));
                Ok(m)
            }
        }
    }
}

/// A stored output as a vector: a tensor of any shape and numeric dtype (flattened), or an
/// array of numbers.
pub(crate) fn to_vector(value: &Value) -> std::result::Result<Vec<f32>, String> {
    let v = numbers(value)?;
    if v.is_empty() {
        return Err("an empty vector".into());
    }
    Ok(v)
}

fn numbers(value: &Value) -> std::result::Result<Vec<f32>, String> {
    match value {
        Value::Encoded(_) => {
            let t = value.to_tensor().map_err(|e| e.to_string())?;
            let data = t.data();
            Ok(match t.dtype() {
                DType::F32 => data
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
                DType::F64 => data
                    .chunks_exact(8)
                    .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32)
                    .collect(),
                DType::I64 => data
                    .chunks_exact(8)
                    .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")) as f32)
                    .collect(),
                DType::U8 => data.iter().map(|&b| f32::from(b)).collect(),
            })
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::Int(n) => Ok(*n as f32),
                Value::Float(x) => Ok(*x as f32),
                other => Err(format!("element {i} is {}, not a number", other.kind())),
            })
            .collect(),
        other => Err(format!("{} is not a vector", other.kind())),
    }
}

/// A refused query vector as vigil's error.
pub(crate) fn vector_error(e: vigil_vector::VectorError) -> Error {
    Error::InvalidQuery {
        part: "vector search",
        path: "vector".into(),
        reason: e.to_string(),
    }
}
