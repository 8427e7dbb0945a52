//! The PNG and tensor codecs on any bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vigil_core::{PngCodec, TensorCodec};

fuzz_target!(|data: &[u8]| {
    let _ = PngCodec::decode(data);
    if let Ok(t) = TensorCodec::decode(data) {
        let again = TensorCodec::decode(TensorCodec::encode(&t).bytes()).expect("re-encoded");
        assert_eq!(again, t);
    }
});
