//! Document ids and training folds, assigned on insert.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

/// A fresh 24-hex-digit id in the layout of a MongoDB ObjectId: seconds since the epoch,
/// 5 random bytes fixed per process, and a counter, so ids sort roughly by creation time.
pub fn new_object_id() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    static PROCESS: std::sync::OnceLock<[u8; 5]> = std::sync::OnceLock::new();
    let process = PROCESS.get_or_init(|| {
        let mut b = [0u8; 5];
        rand::rng().fill_bytes(&mut b);
        b
    });
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut bytes = [0u8; 12];
    bytes[..4].copy_from_slice(&secs.to_be_bytes());
    bytes[4..9].copy_from_slice(process);
    bytes[9..].copy_from_slice(&count.to_be_bytes()[1..]);
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(24);
    for b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 15)]));
    }
    out
}

/// The fold of a document that does not name one.
pub const TRAIN: &str = "train";
/// The fold held out for validation.
pub const VALID: &str = "valid";

/// Draws `_fold` for new documents: `valid` with a probability, `train` otherwise.
/// With a seed, the sequence of folds is the same on every run.
#[derive(Debug)]
pub struct FoldAssigner {
    valid_probability: f64,
    rng: StdRng,
}

impl FoldAssigner {
    /// `valid_probability` in `[0, 1]`; a `seed` makes the draws reproducible.
    pub fn new(valid_probability: f64, seed: Option<u64>) -> Self {
        FoldAssigner {
            valid_probability: valid_probability.clamp(0.0, 1.0),
            rng: match seed {
                Some(s) => StdRng::seed_from_u64(s),
                None => StdRng::from_rng(&mut rand::rng()),
            },
        }
    }

    /// The next fold.
    pub fn next_fold(&mut self) -> &'static str {
        if self.rng.random::<f64>() < self.valid_probability {
            VALID
        } else {
            TRAIN
        }
    }
}

/// A label for a worker process, `host:pid:nonce`, under which it claims queued work. The
/// host and pid let a backend without sessions tell a dead claimer on the same host
/// ([`claimer_is_dead`]). Reads the host name (the one place this crate looks outside itself).
pub fn worker_label() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{}:{}:{nanos}", hostname(), std::process::id())
}

/// Whether the worker behind a [`worker_label`] is known to be dead: it ran on this host and
/// its process is gone. False when that cannot be told (another host, another system).
pub fn claimer_is_dead(label: &str) -> bool {
    let mut parts = label.split(':');
    let (Some(host), Some(Ok(pid))) = (parts.next(), parts.next().map(str::parse::<u32>)) else {
        return false;
    };
    cfg!(target_os = "linux")
        && host == hostname()
        && pid != std::process::id()
        && !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

fn hostname() -> String {
    static HOST: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HOST.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .or_else(|_| std::env::var("HOSTNAME"))
            .unwrap_or_else(|_| "localhost".into())
    })
    .clone()
}
