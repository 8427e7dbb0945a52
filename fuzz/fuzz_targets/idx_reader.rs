//! The MNIST IDX reader on any pair of files.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, rest)) = data.split_first() else {
        return;
    };
    let cut = (cut as usize * 4).min(rest.len());
    let (images, labels) = rest.split_at(cut);
    let dir = std::env::temp_dir().join(format!("vigil-fuzz-idx-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let (i, l) = (dir.join("images"), dir.join("labels"));
    if std::fs::write(&i, images).is_err() || std::fs::write(&l, labels).is_err() {
        return;
    }
    if let Ok(digits) = vigil_datasets::mnist::Digits::open(&i, &l) {
        for d in digits.take(64) {
            if let Ok(d) = d {
                let _ = d.to_document();
            }
        }
    }
});
