//! The real MNIST digits shipped in the repository.

use std::path::PathBuf;
use std::sync::OnceLock;

use vigil_datasets::mnist::Digit;

/// `data/mnist` of the repository.
pub fn mnist_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist")
}

/// All 10,000 digits, read once per test process.
pub fn digits() -> &'static [Digit] {
    static DIGITS: OnceLock<Vec<Digit>> = OnceLock::new();
    DIGITS.get_or_init(|| {
        vigil_datasets::mnist::read_dir(mnist_dir())
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

/// PyTorch's predictions for the first 1,000 digits (`data/lenet5`).
pub fn pytorch_predictions() -> Vec<i64> {
    std::fs::read(mnist_dir().join("../lenet5/reference-predictions-u8-1000.bin"))
        .expect("reference predictions in data/lenet5")
        .into_iter()
        .map(i64::from)
        .collect()
}

/// Registers PyTorch's LeNet5 (exported to ONNX, `data/lenet5`) as `lenet5`, with the MNIST
/// preprocess and an argmax; returns its version.
pub fn add_lenet5_onnx(db: &vigil::Datalayer, batch_size: usize) -> u32 {
    let bytes = std::fs::read(mnist_dir().join("../lenet5/lenet5.onnx")).expect("lenet5.onnx");
    let mut model = vigil::ml::PipelineModel::onnx("lenet5", bytes)
        .expect("the ONNX graph loads")
        .preprocess(vigil::ml::mnist_preprocess())
        .postprocess(vigil::ml::Postprocess::Argmax)
        .batch_size(batch_size);
    db.add_model(&mut model).expect("the model is stored")
}

/// `_outputs.img.lenet5` of every document of a collection, in insertion order.
pub fn predictions(collection: &vigil::Collection) -> Vec<Option<i64>> {
    collection
        .find(serde_json::json!({}))
        .projection(serde_json::json!({"img": 0}))
        .run()
        .expect("a find runs")
        .map(|d| {
            d.expect("documents decode")
                .get_path("_outputs.img.lenet5")
                .and_then(vigil::Value::as_i64)
        })
        .collect()
}
