//! The flat store: every vector in one contiguous array, slots never reused until compaction,
//! and the exact search over it.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use crate::Measure;

/// Why a vector was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VectorError {
    /// Its length is not the store's dimension.
    #[error("a vector of {got} dimensions, the index holds {expected}")]
    Dimension {
        /// The store's dimension.
        expected: usize,
        /// The vector's length.
        got: usize,
    },
    /// One of its elements is NaN or infinite.
    #[error("element {index} of the vector is not a finite number")]
    NotFinite {
        /// Where.
        index: usize,
    },
    /// A zero vector under the cosine measure, which has no direction.
    #[error("a zero vector has no direction, so no cosine similarity")]
    Zero,
}

/// A search result: the slot of a stored vector, and its score (cosine similarity, dot
/// product, or Euclidean distance, as the measure reports it).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    /// The stored vector's slot.
    pub slot: usize,
    /// Its score under the store's measure.
    pub score: f32,
    /// The internal distance (smaller is nearer under every measure), for merging results.
    pub distance: f32,
}

/// Fixed-dimension `f32` vectors in one contiguous array. Removed vectors leave a dead slot;
/// slots are stable, so callers can key them.
#[derive(Debug, Clone)]
pub struct Vectors {
    dim: usize,
    measure: Measure,
    data: Vec<f32>,
    live: Vec<bool>,
    live_count: usize,
}

impl Vectors {
    /// An empty store of `dim`-dimensional vectors under `measure`.
    pub fn new(dim: usize, measure: Measure) -> Vectors {
        Vectors {
            dim,
            measure,
            data: Vec::new(),
            live: Vec::new(),
            live_count: 0,
        }
    }

    /// The dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The measure.
    pub fn measure(&self) -> Measure {
        self.measure
    }

    /// Live vectors.
    pub fn len(&self) -> usize {
        self.live_count
    }

    /// True when no vector is live.
    pub fn is_empty(&self) -> bool {
        self.live_count == 0
    }

    /// Slots ever used (live and dead).
    pub fn slots(&self) -> usize {
        self.live.len()
    }

    /// True when `slot` holds a live vector.
    pub fn is_live(&self, slot: usize) -> bool {
        self.live.get(slot).copied().unwrap_or(false)
    }

    /// A vector checked and put in the form the store searches: the right length, finite, and
    /// for cosine normalised to unit length. Queries go through it too.
    pub fn prepare(&self, v: &[f32]) -> Result<Vec<f32>, VectorError> {
        if v.len() != self.dim {
            return Err(VectorError::Dimension {
                expected: self.dim,
                got: v.len(),
            });
        }
        if let Some(index) = v.iter().position(|x| !x.is_finite()) {
            return Err(VectorError::NotFinite { index });
        }
        let mut out = v.to_vec();
        if self.measure == Measure::Cosine {
            let norm = crate::dot(v, v).sqrt();
            if norm == 0.0 || !norm.is_finite() {
                return Err(VectorError::Zero);
            }
            out.iter_mut().for_each(|x| *x /= norm);
        }
        Ok(out)
    }

    /// Stores a vector (checked as [`Vectors::prepare`] does); returns its slot.
    pub fn push(&mut self, v: &[f32]) -> Result<usize, VectorError> {
        let prepared = self.prepare(v)?;
        self.data.extend_from_slice(&prepared);
        self.live.push(true);
        self.live_count += 1;
        Ok(self.live.len() - 1)
    }

    /// Marks a slot dead; it is no longer returned.
    pub fn remove(&mut self, slot: usize) {
        if let Some(l) = self.live.get_mut(slot) {
            if *l {
                *l = false;
                self.live_count -= 1;
            }
        }
    }

    /// The stored (prepared) vector of a slot, live or dead.
    pub fn get(&self, slot: usize) -> &[f32] {
        &self.data[slot * self.dim..(slot + 1) * self.dim]
    }

    /// The `k` live vectors nearest to a prepared query among the slots `allowed` accepts,
    /// nearest first (ties broken by slot, so results are deterministic).
    pub fn exact(&self, query: &[f32], k: usize, allowed: impl Fn(usize) -> bool) -> Vec<Hit> {
        if k == 0 || query.len() != self.dim || self.dim == 0 {
            return Vec::new();
        }
        let mut heap: BinaryHeap<Near> = BinaryHeap::with_capacity(k + 1);
        for (slot, v) in self.data.chunks_exact(self.dim).enumerate() {
            if !self.live[slot] {
                continue;
            }
            let distance = self.measure.distance(query, v);
            if heap.len() == k {
                let worst = heap.peek().expect("k > 0");
                if (distance, slot) >= (worst.distance, worst.slot) || !allowed(slot) {
                    continue;
                }
                heap.pop();
            } else if !allowed(slot) {
                continue;
            }
            heap.push(Near { distance, slot });
        }
        let mut out: Vec<Hit> = heap
            .into_iter()
            .map(|n| Hit {
                slot: n.slot,
                score: self.measure.score(n.distance),
                distance: n.distance,
            })
            .collect();
        out.sort_by(|a, b| a.distance.total_cmp(&b.distance).then(a.slot.cmp(&b.slot)));
        out
    }
}

/// A heap entry ordered by (distance, slot): the heap's top is the worst kept so far.
#[derive(Debug, Clone, Copy)]
struct Near {
    distance: f32,
    slot: usize,
}

impl PartialEq for Near {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Near {}
impl PartialOrd for Near {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Near {
    fn cmp(&self, other: &Self) -> Ordering {
        self.distance
            .total_cmp(&other.distance)
            .then(self.slot.cmp(&other.slot))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn brute(v: &Vectors, q: &[f32], k: usize) -> Vec<usize> {
        let mut all: Vec<(f32, usize)> = (0..v.slots())
            .filter(|&s| v.is_live(s))
            .map(|s| (v.measure.distance(q, v.get(s)), s))
            .collect();
        all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        all.into_iter().take(k).map(|(_, s)| s).collect()
    }

    #[test]
    fn exact_search_equals_sorting_everything() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(17);
        for measure in [Measure::Cosine, Measure::L2, Measure::Dot] {
            let mut v = Vectors::new(13, measure);
            for _ in 0..500 {
                let x: Vec<f32> = (0..13).map(|_| rng.random_range(-1.0..1.0)).collect();
                v.push(&x).unwrap();
            }
            for s in (0..500).step_by(7) {
                v.remove(s);
            }
            for _ in 0..20 {
                let q: Vec<f32> = (0..13).map(|_| rng.random_range(-1.0..1.0)).collect();
                let q = v.prepare(&q).unwrap();
                let got: Vec<usize> = v.exact(&q, 10, |_| true).iter().map(|h| h.slot).collect();
                assert_eq!(got, brute(&v, &q, 10), "{measure:?}");
                let even: Vec<usize> = v
                    .exact(&q, 10, |s| s % 2 == 0)
                    .iter()
                    .map(|h| h.slot)
                    .collect();
                assert!(even.iter().all(|s| s % 2 == 0 && v.is_live(*s)));
                assert_eq!(even.len(), 10);
            }
        }
    }

    #[test]
    fn bad_vectors_are_refused_with_the_reason() {
        let v = Vectors::new(3, Measure::Cosine);
        assert_eq!(
            v.prepare(&[1.0, 2.0]),
            Err(VectorError::Dimension {
                expected: 3,
                got: 2
            })
        );
        assert_eq!(
            v.prepare(&[1.0, f32::NAN, 0.0]),
            Err(VectorError::NotFinite { index: 1 })
        );
        assert_eq!(v.prepare(&[0.0, 0.0, 0.0]), Err(VectorError::Zero));
        let s = v.prepare(&[3.0, 0.0, 4.0]).unwrap();
        assert!((s[0] - 0.6).abs() < 1e-6 && (s[2] - 0.8).abs() < 1e-6);
    }

    #[test]
    fn scores_are_what_users_know() {
        let mut v = Vectors::new(2, Measure::L2);
        v.push(&[3.0, 4.0]).unwrap();
        let hit = v.exact(&[0.0, 0.0], 1, |_| true)[0];
        assert!((hit.score - 5.0).abs() < 1e-6);
        let mut d = Vectors::new(2, Measure::Dot);
        d.push(&[3.0, 4.0]).unwrap();
        assert!((d.exact(&[1.0, 1.0], 1, |_| true)[0].score - 7.0).abs() < 1e-6);
    }
}
