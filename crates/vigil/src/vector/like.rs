//! `collection.like(query)`: the documents nearest a query by an index's vectors, under a
//! Mongo-style filter, nearest first.

use std::collections::{HashMap, HashSet};

use serde_json::{json, Value as Json};
use vigil_core::listen::ListenerRecord;
use vigil_core::{Document, Error, Filter, Result, Value};
use vigil_ml::Model;

use super::cache::{to_vector, vector_error, IndexCache};
use super::{VectorIndex, VECTOR_INDEX};
use crate::Collection;

/// What to search near.
#[derive(Debug, Clone, PartialEq)]
pub enum LikeQuery {
    /// A document (or part of one) holding the listener's input, e.g. `{"img": <image>}`: it
    /// goes through the listener's model, at the listener's version.
    Document(Document),
    /// The listener's input itself (an image, for a model reading `img`): it goes through
    /// the listener's model, at the listener's version.
    Input(Value),
    /// A stored document, by `_id`: its stored vector is the query.
    Id(Value),
    /// A raw vector of the index's dimension.
    Vector(Vec<f32>),
}

impl LikeQuery {
    /// The stored document with this `_id`.
    pub fn id(id: impl Into<Value>) -> LikeQuery {
        LikeQuery::Id(id.into())
    }
}

impl From<Document> for LikeQuery {
    fn from(doc: Document) -> Self {
        LikeQuery::Document(doc)
    }
}

impl From<Vec<f32>> for LikeQuery {
    fn from(v: Vec<f32>) -> Self {
        LikeQuery::Vector(v)
    }
}

/// A document found by [`Like`], with its score under the index's measure (cosine
/// similarity or dot product: larger is nearer; Euclidean distance: smaller is nearer).
#[derive(Debug, Clone, PartialEq)]
pub struct Similar {
    /// The document, as `find` returns it (outputs included).
    pub document: Document,
    /// Its score.
    pub score: f32,
}

/// A similarity search being built: `collection.like(query).n(10).filter(...).run()?`.
#[derive(Debug, Clone)]
#[must_use = "a Like does nothing until it is run"]
pub struct Like {
    collection: Collection,
    query: LikeQuery,
    index: Option<String>,
    n: usize,
    filter: Json,
    exact: bool,
}

impl Collection {
    /// Documents of this collection nearest to `query` by a vector index over one of its
    /// listeners. See [`Like`] for the settings.
    pub fn like(&self, query: impl Into<LikeQuery>) -> Like {
        Like {
            collection: self.clone(),
            query: query.into(),
            index: None,
            n: 10,
            filter: json!({}),
            exact: false,
        }
    }
}

impl Like {
    /// The vector index to search. Default: the collection's only one (an error names them
    /// when there are several).
    pub fn index(mut self, name: &str) -> Self {
        self.index = Some(name.into());
        self
    }

    /// How many documents to return (fewer only when fewer match). Default: 10.
    pub fn n(mut self, n: usize) -> Self {
        self.n = n;
        self
    }

    /// A Mongo-style filter the documents must match. Default: `{}` (all).
    pub fn filter(mut self, filter: Json) -> Self {
        self.filter = filter;
        self
    }

    /// Scan every vector even where the index is large enough for its HNSW graph. Default:
    /// false (the graph answers above the index's threshold).
    pub fn exact(mut self, exact: bool) -> Self {
        self.exact = exact;
        self
    }

    /// Runs the search.
    pub fn run(self) -> Result<Vec<Similar>> {
        Filter::parse(&self.filter)?;
        let db = self.collection.db();
        let (index, listener) = self.resolve_index()?;
        db.vector_caches().with(db, &index, &listener, |cache| {
            let Some(query) = self.query_vector(cache, &listener)? else {
                return Ok(Vec::new());
            };
            self.search(cache, &query)
        })
    }

    /// The index to search, and its listener (which must be on this collection), read once
    /// per search.
    fn resolve_index(&self) -> Result<(VectorIndex, ListenerRecord)> {
        let db = self.collection.db();
        let name = self.collection.name();
        let listeners = db.listeners()?;
        let ours = |index: &VectorIndex| {
            listeners
                .iter()
                .find(|l| l.name == index.listener && l.collection == name)
                .cloned()
        };
        let wrong = |reason: String| Error::InvalidQuery {
            part: "vector search",
            path: "index".into(),
            reason,
        };
        if let Some(wanted) = &self.index {
            let index = db.load::<VectorIndex>(wanted, None)?;
            return match ours(&index) {
                Some(listener) => Ok((index, listener)),
                None => Err(wrong(format!(
                    "vector index `{wanted}` is over listener `{}`, not over a listener of `{name}`",
                    index.listener
                ))),
            };
        }
        let mut found: Vec<(VectorIndex, ListenerRecord)> = db
            .vector_indexes()?
            .into_iter()
            .filter_map(|i| ours(&i).map(|l| (i, l)))
            .collect();
        match found.len() {
            1 => Ok(found.remove(0)),
            0 => Err(Error::NotFound {
                kind: VECTOR_INDEX.into(),
                identifier: format!("over a listener of `{name}`"),
                version: None,
            }),
            _ => Err(wrong(format!(
                "`{name}` has several vector indexes ({}); name one",
                found
                    .iter()
                    .map(|(i, _)| i.identifier.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// The query as a prepared vector; `None` when the index holds no vectors yet.
    fn query_vector(
        &self,
        cache: &mut IndexCache,
        listener: &ListenerRecord,
    ) -> Result<Option<Vec<f32>>> {
        let raw = match &self.query {
            LikeQuery::Vector(v) => v.clone(),
            LikeQuery::Id(id) => cache.vector_of(id).ok_or_else(|| Error::NotFound {
                kind: "vector".into(),
                identifier: format!(
                    "of document {} in listener `{}` (no output of its current model version yet)",
                    id.to_json(),
                    listener.name
                ),
                version: None,
            })?,
            LikeQuery::Document(_) | LikeQuery::Input(_) => {
                let input = match &self.query {
                    LikeQuery::Document(doc) => {
                        doc.get_path(&listener.key)
                            .ok_or_else(|| Error::InvalidQuery {
                                part: "vector search",
                                path: listener.key.clone(),
                                reason: format!(
                                    "the query document has no `{}`, the input of listener `{}`",
                                    listener.key, listener.name
                                ),
                            })?
                    }
                    LikeQuery::Input(value) => value,
                    _ => unreachable!("matched above"),
                };
                let model = cache.model(self.collection.db(), &listener.model)?;
                let mut out = model.predict(std::slice::from_ref(input))?;
                let value = out.pop().ok_or_else(|| {
                    Error::model(&listener.model, "returned no output for the query")
                })?;
                to_vector(&value).map_err(|reason| {
                    Error::model(
                        &listener.model,
                        format!("its output is no vector: {reason}"),
                    )
                })?
            }
        };
        match cache.vectors.as_ref() {
            None => Ok(None),
            Some(v) => v.prepare(&raw).map(Some).map_err(vector_error),
        }
    }

    /// Asks the index for more candidates until `n` of them are documents that exist and
    /// match the filter, or the candidates run out. When the filter keeps few documents, the
    /// matching ids are read once and the search is confined to them.
    fn search(&self, cache: &IndexCache, query: &[f32]) -> Result<Vec<Similar>> {
        let live = cache.vectors.as_ref().map_or(0, |v| v.len());
        if self.n == 0 || live == 0 {
            return Ok(Vec::new());
        }
        let mut k = self.n;
        let mut allowed: Option<HashSet<usize>> = None;
        let mut widened = 0;
        loop {
            let hits = cache.nearest(query, k, self.exact, &|s| {
                allowed.as_ref().is_none_or(|a| a.contains(&s))
            });
            let ids: Vec<Json> = hits.iter().map(|h| cache.id(h.slot).to_json()).collect();
            let mut docs = self.matching(json!({"$in": ids}))?;
            let found: Vec<Similar> = hits
                .iter()
                .filter_map(|h| {
                    docs.remove(&cache.id(h.slot).to_json().to_string())
                        .map(|document| Similar {
                            document,
                            score: h.score,
                        })
                })
                .take(self.n)
                .collect();
            if found.len() == self.n || hits.len() < k {
                return Ok(found);
            }
            if allowed.is_none() && (widened >= 2 || k.saturating_mul(4) >= live) {
                allowed = Some(cache.slots_of(&self.matching_ids()?));
                k = self.n;
            } else {
                k = k.saturating_mul(4);
                widened += 1;
            }
        }
    }

    /// The ids (JSON text) of every document matching the filter.
    fn matching_ids(&self) -> Result<HashSet<String>> {
        let mut out = HashSet::new();
        let cursor = self
            .collection
            .find(self.filter.clone())
            .projection(json!({"_id": 1}))
            .run()?;
        for doc in cursor {
            if let Some(id) = doc?.get(vigil_core::ID_FIELD) {
                out.insert(id.to_json().to_string());
            }
        }
        Ok(out)
    }

    /// The documents matching the filter and `id_condition` on `_id`, by id (JSON text).
    fn matching(&self, id_condition: Json) -> Result<HashMap<String, Document>> {
        let filter = json!({"$and": [self.filter.clone(), {"_id": id_condition}]});
        let mut out = HashMap::new();
        for doc in self.collection.find(filter).run()? {
            let doc = doc?;
            let key = doc
                .get(vigil_core::ID_FIELD)
                .map(|id| id.to_json().to_string())
                .unwrap_or_default();
            out.insert(key, doc);
        }
        Ok(out)
    }
}
