//! The real MNIST digits shipped in the repository.

use std::path::PathBuf;
use std::sync::OnceLock;

use vigil::mnist::Digit;

/// `data/mnist` of the repository.
pub fn mnist_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist")
}

/// All 10,000 digits, read once per test process.
pub fn digits() -> &'static [Digit] {
    static DIGITS: OnceLock<Vec<Digit>> = OnceLock::new();
    DIGITS.get_or_init(|| {
        vigil::mnist::read_dir(mnist_dir())
            .and_then(|d| d.collect())
            .expect("the repository's MNIST files read")
    })
}

/// The first `n` digits as `{"img", "class"}` documents.
pub fn documents(n: usize) -> Vec<vigil::Document> {
    digits()[..n]
        .iter()
        .map(|d| d.to_document().expect("a digit encodes as PNG"))
        .collect()
}
