//! ONNX loading on any bytes: a malformed graph is an error.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vigil_ml::PipelineModel;

fuzz_target!(|data: &[u8]| {
    let _ = PipelineModel::onnx("fuzz", data.to_vec());
});
