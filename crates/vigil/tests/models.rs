//! Models on real MNIST digits: PyTorch's LeNet5 through ONNX (tract) and through its `.pth`
//! weights (burn) reproduce PyTorch's 1,000 reference predictions; the registry versions and
//! reloads models; a corrupt artifact is an error.

use std::path::PathBuf;

use vigil::ml::{mnist_preprocess, Model, PipelineModel, Postprocess};
use vigil::{json, lenet5, Error, Value};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn first_digits(n: usize) -> Vec<Value> {
    vigil_datasets::mnist::read_dir(repo().join("data/mnist"))
        .unwrap()
        .take(n)
        .map(|d| {
            d.unwrap()
                .to_document()
                .unwrap()
                .get("img")
                .unwrap()
                .clone()
        })
        .collect()
}

fn reference() -> (Vec<i64>, Vec<f32>) {
    let preds =
        std::fs::read(repo().join("data/lenet5/reference-predictions-u8-1000.bin")).unwrap();
    let logits =
        std::fs::read(repo().join("data/lenet5/reference-logits-f32le-1000x10.bin")).unwrap();
    (
        preds.into_iter().map(i64::from).collect(),
        logits
            .chunks(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
    )
}

fn check_against_pytorch(model: PipelineModel) {
    let inputs = first_digits(1000);
    let (want_preds, want_logits) = reference();
    let preds: Vec<i64> = model
        .predict(&inputs)
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    let same = preds
        .iter()
        .zip(&want_preds)
        .filter(|(a, b)| a == b)
        .count();
    assert_eq!(same, 1000, "predictions equal to PyTorch's");
    let raw = model.postprocess(Postprocess::Identity);
    let logits: Vec<f32> = raw
        .predict(&inputs)
        .unwrap()
        .iter()
        .flat_map(|v| v.to_tensor().unwrap().to_f32().unwrap())
        .collect();
    let max_diff = logits
        .iter()
        .zip(&want_logits)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(max_diff < 1e-3, "max logit difference {max_diff}");
}

#[test]
fn onnx_through_tract_gives_pytorchs_1000_predictions() {
    let bytes = std::fs::read(repo().join("data/lenet5/lenet5.onnx")).unwrap();
    let model = PipelineModel::onnx("lenet5_onnx", bytes)
        .unwrap()
        .preprocess(mnist_preprocess())
        .batch_size(100);
    check_against_pytorch(model);
}

#[test]
fn pth_weights_through_burn_give_pytorchs_1000_predictions() {
    let model = PipelineModel::network_from_pytorch(
        "lenet5",
        lenet5(10),
        &repo().join("data/lenet5/torch_lenet5.pth"),
    )
    .unwrap()
    .preprocess(mnist_preprocess());
    check_against_pytorch(model);
}

#[test]
fn models_are_versioned_reloaded_and_checked() {
    let db = vigil::connect("sqlite::memory:").unwrap();
    let mut model = PipelineModel::network_from_pytorch(
        "lenet5",
        lenet5(10),
        &repo().join("data/lenet5/torch_lenet5.pth"),
    )
    .unwrap()
    .preprocess(mnist_preprocess());
    assert_eq!(db.add_model(&mut model).unwrap(), 1);
    let onnx = std::fs::read(repo().join("data/lenet5/lenet5.onnx")).unwrap();
    let mut other = PipelineModel::onnx("lenet5_onnx", onnx)
        .unwrap()
        .preprocess(mnist_preprocess());
    db.add_model(&mut other).unwrap();
    let mut fresh = PipelineModel::network("lenet5", lenet5(10), 1)
        .unwrap()
        .preprocess(mnist_preprocess());
    assert_eq!(db.add_model(&mut fresh).unwrap(), 2);
    assert_eq!(db.show("model").unwrap(), ["lenet5", "lenet5_onnx"]);
    assert_eq!(db.show_versions("model", "lenet5").unwrap(), [1, 2]);

    let inputs = first_digits(200);
    let v1 = db.load_model("lenet5", Some(1)).unwrap();
    assert_eq!(v1.version(), Some(1));
    assert_eq!(
        v1.predict(&inputs).unwrap(),
        model.predict(&inputs).unwrap(),
        "version 1 is the PyTorch-trained one"
    );
    let latest = db.load_model("lenet5", None).unwrap();
    assert_eq!(latest.version(), Some(2));
    assert_eq!(
        latest.predict(&inputs).unwrap(),
        fresh.predict(&inputs).unwrap()
    );
    let onnx = db.load_model("lenet5_onnx", None).unwrap();
    assert_eq!(
        onnx.predict(&inputs).unwrap(),
        model.predict(&inputs).unwrap()
    );

    assert!(matches!(
        db.load_model("lenet5", Some(9)),
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        db.load_model("nope", None),
        Err(Error::NotFound { .. })
    ));
    assert_eq!(db.remove("model", "lenet5", Some(2)).unwrap(), 1);
    assert_eq!(db.load_model("lenet5", None).unwrap().version(), Some(1));
    assert!(PipelineModel::network("bad name!", lenet5(10), 0).is_err());
}

#[test]
fn a_corrupt_or_missing_artifact_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("models.db");
    let db = vigil::connect(&format!("sqlite://{}", path.display())).unwrap();
    let mut model = PipelineModel::network("net", lenet5(10), 3)
        .unwrap()
        .preprocess(mnist_preprocess());
    db.add_model(&mut model).unwrap();
    let raw = rusqlite::Connection::open(&path).unwrap();
    raw.execute(
        "UPDATE vigil_artifacts SET bytes = substr(bytes, 1, 100)",
        [],
    )
    .unwrap();
    let err = db.load_model("net", None).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    raw.execute("DELETE FROM vigil_artifacts", []).unwrap();
    let err = db.load_model("net", None).unwrap_err();
    assert!(
        matches!(err, Error::NotFound { ref kind, .. } if kind == "artifact"),
        "{err}"
    );
    raw.execute(
        "UPDATE vigil_components SET record = '{\"identifier\": 5}'",
        [],
    )
    .unwrap();
    assert!(matches!(
        db.load_model("net", None),
        Err(Error::Corrupt { .. })
    ));
    let _ = json!({});
}

#[test]
fn bad_inputs_are_errors_naming_the_input() {
    let model = PipelineModel::network("net", lenet5(10), 3)
        .unwrap()
        .preprocess(mnist_preprocess());
    let mut inputs = first_digits(5);
    inputs[3] = Value::Encoded(vigil::Encoded::new(
        "image/png",
        b"\x89PNG\r\n\x1a\n-truncated".to_vec(),
    ));
    let err = model.predict(&inputs).unwrap_err().to_string();
    assert!(err.contains("input #3") && err.contains("decode"), "{err}");
    inputs[3] = Value::Int(7);
    let err = model.predict(&inputs).unwrap_err().to_string();
    assert!(err.contains("input #3"), "{err}");
}
