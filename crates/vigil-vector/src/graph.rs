//! Approximate search: an HNSW graph (the `hnsw_rs` crate) over a [`Vectors`] store's slots.
//! The graph is a cache: it is built from the store and follows it (inserts go into both;
//! removed slots stay in the graph and are skipped), and it is rebuilt when too many of its
//! points are dead.

use hnsw_rs::hnsw::Hnsw;
use hnsw_rs::prelude::DistL2;

use crate::{Hit, Measure, Vectors};

/// The graph's settings. Each setter states its default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GraphOptions {
    connections: usize,
    ef_construction: usize,
    ef_search: usize,
}

impl Default for GraphOptions {
    fn default() -> Self {
        GraphOptions {
            connections: 16,
            ef_construction: 200,
            ef_search: 96,
        }
    }
}

impl GraphOptions {
    /// Links per point and layer (HNSW's `M`). Default 16; at most 255.
    pub fn connections(mut self, m: usize) -> Self {
        self.connections = m.clamp(2, 255);
        self
    }

    /// Candidates explored while inserting. Default 200.
    pub fn ef_construction(mut self, ef: usize) -> Self {
        self.ef_construction = ef.max(8);
        self
    }

    /// Candidates explored per search (at least the number of results asked). Default 96.
    pub fn ef_search(mut self, ef: usize) -> Self {
        self.ef_search = ef.max(1);
        self
    }

    /// The search width in use.
    pub fn search_width(&self) -> usize {
        self.ef_search
    }
}

/// An HNSW graph over the slots of a [`Vectors`] store. Cosine vectors are stored
/// normalised, where Euclidean order is cosine order, so one L2 graph serves cosine and L2.
/// The dot product is no metric (a vector need not be its own nearest), so stores under
/// [`Measure::Dot`] get no graph and are always searched exactly.
pub struct Graph {
    hnsw: Hnsw<'static, f32, DistL2>,
    options: GraphOptions,
    points: usize,
}

impl std::fmt::Debug for Graph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Graph")
            .field("options", &self.options)
            .field("points", &self.points)
            .finish()
    }
}

impl Graph {
    /// Builds a graph over every live slot of `vectors` (in parallel, on rayon's pool);
    /// `None` under [`Measure::Dot`].
    pub fn build(vectors: &Vectors, options: GraphOptions) -> Option<Graph> {
        if vectors.measure() == Measure::Dot {
            return None;
        }
        let capacity = vectors.len().max(1);
        // Layers grow as log(n); 16 is HNSW's customary cap and ample for billions.
        let hnsw = Hnsw::new(
            options.connections,
            capacity,
            16,
            options.ef_construction,
            DistL2 {},
        );
        let live: Vec<(&[f32], usize)> = (0..vectors.slots())
            .filter(|&s| vectors.is_live(s))
            .map(|s| (vectors.get(s), s))
            .collect();
        hnsw.parallel_insert_slice(&live);
        Some(Graph {
            hnsw,
            options,
            points: live.len(),
        })
    }

    /// Adds a slot that was pushed to the store after the build.
    pub fn insert(&mut self, vectors: &Vectors, slot: usize) {
        self.hnsw.insert_slice((vectors.get(slot), slot));
        self.points += 1;
    }

    /// Changes the search width (see [`GraphOptions::ef_search`]).
    pub fn set_search_width(&mut self, ef: usize) {
        self.options = self.options.ef_search(ef);
    }

    /// Points in the graph, dead ones included.
    pub fn points(&self) -> usize {
        self.points
    }

    /// True when so many of the graph's points are dead (a quarter) that it should be rebuilt.
    pub fn stale(&self, vectors: &Vectors) -> bool {
        let dead = self.points.saturating_sub(vectors.len());
        dead * 4 > self.points
    }

    /// Up to `k` live, `allowed` slots near a prepared query, nearest first, with exact
    /// scores. Fewer than `k` come back when the graph's candidates run out; the caller
    /// then widens or searches exactly.
    pub fn search(
        &self,
        vectors: &Vectors,
        query: &[f32],
        k: usize,
        allowed: impl Fn(usize) -> bool,
    ) -> Vec<Hit> {
        if k == 0 || query.len() != vectors.dim() {
            return Vec::new();
        }
        let ef = self.options.ef_search.max(k);
        let measure = vectors.measure();
        let mut hits: Vec<Hit> = self
            .hnsw
            .search(query, k, ef)
            .into_iter()
            .map(|n| n.d_id)
            .filter(|&s| vectors.is_live(s) && allowed(s))
            .map(|slot| {
                let distance = measure.distance(query, vectors.get(slot));
                Hit {
                    slot,
                    score: measure.score(distance),
                    distance,
                }
            })
            .collect();
        hits.sort_by(|a, b| a.distance.total_cmp(&b.distance).then(a.slot.cmp(&b.slot)));
        hits
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Points in 20 clusters, as real embeddings are, not uniform noise.
    fn clustered(n: usize, dim: usize, measure: Measure) -> Vectors {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let centres: Vec<Vec<f32>> = (0..20)
            .map(|_| (0..dim).map(|_| rng.random_range(-1.0..1.0)).collect())
            .collect();
        let mut v = Vectors::new(dim, measure);
        for i in 0..n {
            let c = &centres[i % 20];
            let x: Vec<f32> = c.iter().map(|x| x + rng.random_range(-0.3..0.3)).collect();
            v.push(&x).unwrap();
        }
        v
    }

    #[test]
    fn graph_search_recalls_the_exact_neighbours() {
        for measure in [Measure::Cosine, Measure::L2] {
            let mut v = clustered(3000, 24, measure);
            let mut g = Graph::build(&v, GraphOptions::default()).unwrap();
            for s in (0..3000).step_by(11) {
                v.remove(s);
            }
            let extra = v.push(&[0.5; 24]).unwrap();
            g.insert(&v, extra);
            let (mut found, mut total) = (0, 0);
            for q in (0..3000).step_by(37) {
                let query = v.get(q).to_vec();
                let exact: Vec<usize> = v
                    .exact(&query, 10, |_| true)
                    .iter()
                    .map(|h| h.slot)
                    .collect();
                let approx = g.search(&v, &query, 10, |_| true);
                assert!(approx.iter().all(|h| v.is_live(h.slot)));
                found += approx.iter().filter(|h| exact.contains(&h.slot)).count();
                total += exact.len();
            }
            let recall = found as f64 / total as f64;
            assert!(recall >= 0.9, "{measure:?}: recall@10 {recall}");
            let near = g.search(&v, &v.prepare(&[0.5; 24]).unwrap(), 1, |_| true);
            assert_eq!(near[0].slot, extra, "{measure:?}");
        }
        assert!(Graph::build(&clustered(10, 4, Measure::Dot), GraphOptions::default()).is_none());
    }
}
