//! The filter, update, projection and sort parsers on any JSON: errors, never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vigil_core::query::parse_sort;
use vigil_core::{Document, Filter, Projection, Update};

fuzz_target!(|data: &[u8]| {
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let _ = Filter::parse(&json);
    let _ = Projection::parse(&json);
    let _ = parse_sort(&json);
    if let Ok(doc) = Document::try_from(json) {
        if let Ok(update) = Update::parse(&doc) {
            let _ = update.apply(&doc);
        }
    }
});
