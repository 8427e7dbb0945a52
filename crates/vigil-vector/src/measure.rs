//! Measures of nearness, and the kernels they run on.

use serde::{Deserialize, Serialize};

/// How nearness is measured. Scores are reported as users know them: cosine similarity and
/// dot product (larger is nearer), Euclidean distance (smaller is nearer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Measure {
    /// Cosine similarity. Vectors are normalised once, when stored, so a search is a dot
    /// product. A zero vector has no direction and is refused.
    Cosine,
    /// Euclidean (L2) distance.
    L2,
    /// Dot product (inner product), unnormalised.
    Dot,
}

impl Measure {
    /// Parses `cosine`, `l2` or `dot`.
    pub fn parse(name: &str) -> Option<Measure> {
        match name {
            "cosine" => Some(Measure::Cosine),
            "l2" => Some(Measure::L2),
            "dot" => Some(Measure::Dot),
            _ => None,
        }
    }

    /// Its name, as [`Measure::parse`] reads it.
    pub fn name(self) -> &'static str {
        match self {
            Measure::Cosine => "cosine",
            Measure::L2 => "l2",
            Measure::Dot => "dot",
        }
    }

    /// The internal distance between a prepared query and a stored vector: smaller is
    /// nearer for every measure, so one top-k serves all three.
    #[inline]
    pub(crate) fn distance(self, query: &[f32], stored: &[f32]) -> f32 {
        match self {
            Measure::Cosine => 1.0 - dot(query, stored),
            Measure::L2 => squared_l2(query, stored),
            Measure::Dot => -dot(query, stored),
        }
    }

    /// The score users see for an internal distance.
    pub(crate) fn score(self, distance: f32) -> f32 {
        match self {
            Measure::Cosine => 1.0 - distance,
            Measure::L2 => distance.max(0.0).sqrt(),
            Measure::Dot => -distance,
        }
    }
}

/// The dot product, summed in eight lanes so the compiler vectorises it (a single running
/// sum cannot be reordered under IEEE rules, and would run one multiply-add at a time).
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        sum += x * y;
    }
    sum
}

/// The squared Euclidean distance, in eight lanes like [`dot`].
#[inline]
pub fn squared_l2(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            let d = x[i] - y[i];
            acc[i] += d * d;
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        let d = x - y;
        sum += d * d;
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_match_plain_sums() {
        let a: Vec<f32> = (0..19).map(|i| i as f32 * 0.5 - 3.0).collect();
        let b: Vec<f32> = (0..19).map(|i| 2.0 - i as f32 * 0.25).collect();
        let plain_dot: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        let plain_l2: f32 = a.iter().zip(&b).map(|(x, y)| (x - y) * (x - y)).sum();
        assert!((dot(&a, &b) - plain_dot).abs() < 1e-3);
        assert!((squared_l2(&a, &b) - plain_l2).abs() < 1e-3);
    }

    #[test]
    fn names_round_trip() {
        for m in [Measure::Cosine, Measure::L2, Measure::Dot] {
            assert_eq!(Measure::parse(m.name()), Some(m));
        }
        assert_eq!(Measure::parse("manhattan"), None);
    }
}
