//! The IDX reader on the repository's real MNIST files, gzip and plain, and on broken files.

use std::io::{Read, Write};
use std::path::PathBuf;

use vigil::Error;
use vigil_datasets::mnist::{count_dir, read_dir, Digits};

fn data() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist")
}

fn gunzip(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(data().join(name)).unwrap())
        .read_to_end(&mut out)
        .unwrap();
    out
}

#[test]
fn reads_the_10000_digits_with_the_documented_class_counts() {
    assert_eq!(count_dir(data()).unwrap(), 10_000);
    let mut counts = [0usize; 10];
    let mut ink = 0u64;
    for digit in read_dir(data()).unwrap() {
        let digit = digit.unwrap();
        assert_eq!(digit.image.dimensions(), (28, 28));
        counts[digit.label as usize] += 1;
        ink += digit
            .image
            .as_raw()
            .iter()
            .map(|&p| u64::from(p))
            .sum::<u64>();
    }
    // From data/mnist/README.md.
    assert_eq!(
        counts,
        [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]
    );
    let mean = ink as f64 / (10_000.0 * 784.0) / 255.0;
    assert!(
        (0.11..0.15).contains(&mean),
        "mean pixel {mean}, MNIST's is about 0.13"
    );
}

#[test]
fn plain_and_gzipped_files_give_the_same_digits() {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("digits-images-idx3-ubyte");
    let labels = dir.path().join("digits-labels-idx1-ubyte");
    std::fs::write(&images, gunzip("digits-images-idx3-ubyte.gz")).unwrap();
    std::fs::write(&labels, gunzip("digits-labels-idx1-ubyte.gz")).unwrap();
    let plain: Vec<_> = Digits::open(&images, &labels)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let gz: Vec<_> = read_dir(data()).unwrap().map(Result::unwrap).collect();
    assert_eq!(plain, gz);
    assert_eq!(
        read_dir(dir.path()).unwrap().count(),
        10_000,
        "plain files are found by name too"
    );
}

#[test]
fn broken_files_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let images = gunzip("digits-images-idx3-ubyte.gz");
    let labels = gunzip("digits-labels-idx1-ubyte.gz");
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.path().join(name);
        std::fs::File::create(&p).unwrap().write_all(bytes).unwrap();
        p
    };
    let good_labels = write("ok-labels-idx1-ubyte", &labels);
    // Truncated in the middle of digit #10.
    let cut = write("cut-images-idx3-ubyte", &images[..16 + 784 * 10 + 100]);
    let results: Vec<_> = Digits::open(&cut, &good_labels).unwrap().collect();
    assert_eq!(
        results.len(),
        11,
        "ten digits, then the error, then nothing"
    );
    let err = results[10].as_ref().unwrap_err().to_string();
    assert!(
        err.contains("cut-images-idx3-ubyte") && err.contains("digit #10"),
        "{err}"
    );
    // Labels given as images.
    let err = Digits::open(&good_labels, &good_labels)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("IDX magic 0x00000801, expected 0x00000803"),
        "{err}"
    );
    // Counts that disagree.
    let mut fewer = labels.clone();
    fewer[4..8].copy_from_slice(&5u32.to_be_bytes());
    let fewer = write("few-labels-idx1-ubyte", &fewer);
    let full = write("full-images-idx3-ubyte", &images);
    let err = Digits::open(&full, &fewer).unwrap_err().to_string();
    assert!(err.contains("10000 images but 5 labels"), "{err}");
    let err = Digits::open(dir.path().join("absent"), &fewer).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
    let empty = tempfile::tempdir().unwrap();
    let err = count_dir(empty.path()).unwrap_err().to_string();
    assert!(err.contains("no *-images-idx3-ubyte"), "{err}");
}
