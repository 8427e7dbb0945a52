//! NetworkSpec loading: any JSON as a spec is checked (shapes, names, sizes) without panicking
//! and without allocating a network.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vigil_ml::NetworkSpec;

fuzz_target!(|data: &[u8]| {
    if let Ok(spec) = serde_json::from_slice::<NetworkSpec>(data) {
        let _ = spec.check("fuzz");
    }
});
