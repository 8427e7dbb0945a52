//! The stored-document decoder on any row: JSON text and blobs as read back from a database.
#![no_main]
use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use vigil_core::{stored, Value};

fuzz_target!(|data: &[u8]| {
    // The first byte splits the input into the `doc` column and the `blobs` column.
    let Some((&cut, rest)) = data.split_first() else {
        return;
    };
    let cut = (cut as usize).min(rest.len());
    let (json, blobs) = rest.split_at(cut);
    let Ok(json) = std::str::from_utf8(json) else {
        return;
    };
    if let Ok(doc) = stored::decode(Value::Int(1), json, blobs, "fuzz") {
        // What decodes must encode again.
        let _ = stored::encode(&doc);
    }
    let names: HashMap<i64, (String, String)> = [(1, ("img".to_string(), "m".to_string()))]
        .into_iter()
        .collect();
    let _ = stored::decode_outputs(json, &names, "fuzz");
});
