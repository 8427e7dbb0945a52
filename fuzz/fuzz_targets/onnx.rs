//! ONNX loading on any bytes, then one prediction on a LeNet5-sized input (1x32x32): a malformed graph is
//! an error, never a panic that reaches the caller.
#![no_main]
use std::sync::Once;

use libfuzzer_sys::fuzz_target;
use vigil_core::{Tensor, Value};
use vigil_ml::{Model, PipelineModel};

static HOOK: Once = Once::new();

fuzz_target!(|data: &[u8]| {
    // libFuzzer's hook aborts on every panic, even one vigil contains (tract panics on some
    // graphs; vigil turns those into errors). The default hook only prints, so what counts as
    // a crash is a panic that escapes vigil: libfuzzer-sys aborts on those itself.
    HOOK.call_once(|| drop(std::panic::take_hook()));
    let Ok(model) = PipelineModel::onnx("fuzz", data.to_vec()) else {
        return;
    };
    let digit = Tensor::from_f32(&[1, 32, 32], &[0.5; 1024]).expect("a valid tensor");
    let _ = model.predict(&[Value::tensor(&digit)]);
});
