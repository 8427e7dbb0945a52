//! # Training and maintaining MNIST predictions, in Rust
//!
//! The seed notebook (a classic: LeNet5 on handwritten digits, trained and kept predicting
//! *in the database*), step by step. Run it from the repository root:
//!
//! ```text
//! cargo run --release -p vigil --example mnist            # the digits in data/mnist
//! cargo run --release -p vigil --example mnist -- DIR     # any MNIST IDX files
//! ```
//!
//! It writes `out/example-digit.png` and `out/example-acc.png`, and a database `mnist.db`.

use std::path::PathBuf;
use std::sync::Arc;

use vigil::ml::{mnist_preprocess, Model, PipelineModel, Postprocess};
use vigil::{
    json, lenet5, Dataset, Document, FitOptions, FitProgress, Metric, Progress, TrainerConfig,
    Value,
};

fn main() -> vigil::Result<()> {
    let data = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("data/mnist"));
    std::fs::create_dir_all("out").map_err(|e| vigil::Error::io("creating out/", e))?;

    // Connect. The default backend is an embedded SQLite file; `postgres://…` URLs select
    // a server where one is built in.
    let db = vigil::connect("sqlite://mnist.db")?;
    db.drop_collection("mnist")?;
    let mnist = db.collection("mnist")?;

    // Add data: each digit is a document `{"img": <image/png>, "class": <label>}`. Images
    // are stored as PNG bytes beside the JSON, never as base64. We keep the last 10% back.
    let digits: Vec<Document> = vigil_datasets::mnist::read_dir(&data)?
        .map(|d| d.and_then(|d| d.to_document()))
        .collect::<vigil::Result<_>>()?;
    let late = digits.len() / 10;
    let (early, rest) = digits.split_at(digits.len() - late);
    mnist.insert_many(early.to_vec())?;
    println!("stored {} digits", mnist.count(json!({}))?);

    // Query: documents come back as they went in, images included.
    let r = mnist.find_one(json!({}))?.expect("just inserted");
    r.get("img")
        .expect("every digit has an image")
        .to_image()?
        .save("out/example-digit.png")
        .map_err(|e| vigil::Error::io("writing a PNG", std::io::Error::other(e)))?;
    println!("find_one: {r} (image in out/example-digit.png)");

    // The model: LeNet5 as data (layers, not code), with its preprocess (decode, pad to
    // 32x32, to a tensor, normalise with MNIST's mean and deviation) and its postprocess
    // (the most likely class).
    let mut model = PipelineModel::network("lenet5", lenet5(10), 42)?
        .preprocess(mnist_preprocess())
        .postprocess(Postprocess::Argmax);
    db.add_model(&mut model)?;

    // Every model predicts on values in memory, in batches.
    let ten: Vec<Value> = early[..10]
        .iter()
        .map(|d| d.get("img").cloned().expect("an image"))
        .collect();
    println!(
        "untrained predictions: {}",
        Value::Array(model.predict(&ten)?)
    );

    // Fit on the documents a query selects (the train fold), validated on the valid fold
    // with an accuracy metric. Data streams from the database in shuffled batches.
    let configuration = TrainerConfig::new("my_configuration")
        .epochs(3)
        .batch_size(64)
        .validation_interval(50)
        .seed(42);
    let report = db.fit(
        &mut model,
        FitOptions::new("img", "class", &mnist, json!({}), configuration)
            .metric(Metric::accuracy("acc"))
            .validation_set(Dataset::new("my_valid", "mnist", json!({"_fold": "valid"})))
            // Progress goes to an observer; the CLI draws a bar, here each validation prints.
            .on_progress(Arc::new(|p: &FitProgress<'_>| {
                if let FitProgress::Training(Progress::Validated { iteration, values }) = p {
                    println!("  step {iteration}: {values:?}");
                }
            })),
    )?;
    println!(
        "trained {} steps in {:.1} s",
        report.iterations, report.seconds
    );

    // Reload the model: its best checkpoint carries its metric values. Plot them.
    let model = db.load_model("lenet5", None)?;
    let acc = &model.metric_values()["my_valid/acc"];
    vigil_datasets::plot::curves(
        "my_valid/acc",
        "validation",
        &[("my_valid/acc", acc)],
        "out/example-acc.png".as_ref(),
        (800, 480),
    )?;
    println!(
        "valid accuracy {:.3} (plot in out/example-acc.png)",
        acc.last().unwrap_or(&0.0)
    );

    // Listen: from now on every document gets `_outputs.img.lenet5`. The digits already
    // stored are a backfill job; here this process does the work (a `vigil worker` would too).
    db.listen("mnist", "img", "lenet5", json!({}))?;
    db.process_pending()?;
    let doc = mnist
        .find_one(json!({"_fold": "valid"}))?
        .expect("a valid digit");
    println!(
        "a valid digit: class {}, predicted {}",
        doc.get("class").unwrap_or(&Value::Null),
        doc.get("_outputs").unwrap_or(&Value::Null)
    );

    // The listeners switched on.
    println!("listeners: {:?}", db.show(vigil::LISTENER)?);

    // Insert the remaining digits; the listener predicts them.
    let marked: Vec<Document> = rest
        .iter()
        .map(|d| d.clone().with("update", true))
        .collect();
    mnist.insert_many(marked)?;
    db.process_pending()?;
    let predicted =
        mnist.count(json!({"update": true, "_outputs.img.lenet5": {"$exists": true}}))?;
    println!("late inserts predicted: {predicted}/{late}");
    let one = mnist
        .find_one(json!({"update": true}))?
        .expect("a late digit");
    println!(
        "its _outputs: {}",
        one.get("_outputs").unwrap_or(&Value::Null)
    );
    Ok(())
}
