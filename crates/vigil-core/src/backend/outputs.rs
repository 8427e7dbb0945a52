//! Reading a listener's outputs in bulk, for what is built over them (vector indexes): all of
//! them, or those computed since a time, and a cheap fingerprint that tells whether anything
//! changed since they were read.

use crate::{Result, Value};

/// One stored output of a listener.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredOutput {
    /// The document it belongs to.
    pub doc_id: Value,
    /// The model version that computed it.
    pub model_version: u32,
    /// The output.
    pub value: Value,
    /// When it was written, seconds since the Unix epoch.
    pub computed_at: f64,
}

/// A fingerprint of a listener's outputs: how many there are, and a checksum of the times
/// they were written ([`time_checksum`] summed modulo [`CHECKSUM_MODULUS`]). Any output
/// written, rewritten or removed changes it (but for a collision of the checksum), so a
/// reader that knows the times of the outputs it holds can tell whether it missed a change,
/// even one committed late with an earlier time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutputsMark {
    /// Outputs stored.
    pub count: u64,
    /// The sum of their [`time_checksum`]s, modulo [`CHECKSUM_MODULUS`].
    pub checksum: i64,
}

/// The modulus of [`OutputsMark::checksum`]: a prime, so sums of a billion terms stay
/// within an `i64`.
pub const CHECKSUM_MODULUS: i64 = 1_000_000_007;

/// One output's share of the checksum: its time in whole milliseconds (truncated, as SQL's
/// casts do), modulo [`CHECKSUM_MODULUS`].
pub fn time_checksum(computed_at: f64) -> i64 {
    ((computed_at * 1000.0) as i64).rem_euclid(CHECKSUM_MODULUS)
}

impl OutputsMark {
    /// The mark of outputs written at `times`.
    pub fn of(times: impl IntoIterator<Item = f64>) -> OutputsMark {
        let mut mark = OutputsMark::default();
        for t in times {
            mark.count += 1;
            mark.checksum = (mark.checksum + time_checksum(t)) % CHECKSUM_MODULUS;
        }
        mark
    }
}

/// Bulk reads of listeners' outputs.
pub trait Outputs {
    /// The outputs of `listener` written after `since` (all when `None`). Unknown listeners
    /// have none.
    fn outputs_since(&self, listener: &str, since: Option<f64>) -> Result<Vec<StoredOutput>>;

    /// The fingerprint of `listener`'s outputs.
    fn outputs_mark(&self, listener: &str) -> Result<OutputsMark>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_change_with_any_time() {
        let a = OutputsMark::of([1.0, 2.5, 1_795_876_245.123]);
        assert_eq!(a.count, 3);
        assert_ne!(a, OutputsMark::of([1.0, 2.5, 1_795_876_245.124]));
        assert_eq!(a, OutputsMark::of([2.5, 1_795_876_245.123, 1.0]));
    }
}
