//! # The notebook's three heavy stages, timed through the Rust API
//!
//! Inserts the 10,000 digits (PNG encoding included), backfills a LeNet5 listener over them,
//! and trains one epoch, printing the seconds of each as one JSON line. The Python benchmark
//! (`python/bench/python_vs_rust.py`) runs this beside the same work through `import vigil`
//! and reports the ratios:
//!
//! ```text
//! cargo run --release -p vigil --example stages -- data/mnist /tmp/stages.db
//! ```

use std::time::Instant;

use vigil::ml::{mnist_preprocess, PipelineModel, Postprocess};
use vigil::{json, lenet5, Document, FitOptions, TrainerConfig};

fn main() -> vigil::Result<()> {
    let mut args = std::env::args().skip(1);
    let data = args.next().unwrap_or_else(|| "data/mnist".into());
    let path = args.next().unwrap_or_else(|| "stages.db".into());
    let _ = std::fs::remove_file(&path);
    let db = vigil::Options::new()
        .seed(1)
        .connect(&format!("sqlite://{path}"))?;
    let mnist = db.collection("mnist")?;
    // The digits as images in memory, as Python holds them as PIL images before inserting.
    let digits: Vec<vigil_datasets::mnist::Digit> =
        vigil_datasets::mnist::read_dir(&data)?.collect::<vigil::Result<_>>()?;

    let start = Instant::now();
    let docs = digits
        .iter()
        .map(|d| d.to_document())
        .collect::<vigil::Result<Vec<Document>>>()?;
    mnist.insert_many(docs)?;
    let insert = start.elapsed().as_secs_f64();

    let mut model = PipelineModel::network("lenet5", lenet5(10), 42)?
        .preprocess(mnist_preprocess())
        .postprocess(Postprocess::Argmax);
    db.add_model(&mut model)?;
    let start = Instant::now();
    db.listen("mnist", "img", "lenet5", json!({}))?;
    db.process_pending()?;
    let backfill = start.elapsed().as_secs_f64();

    let trainer = TrainerConfig::new("epoch")
        .epochs(1)
        .batch_size(64)
        .validation_interval(1_000_000);
    let start = Instant::now();
    db.fit(
        &mut model,
        FitOptions::new("img", "class", &mnist, json!({}), trainer),
    )?;
    let fit = start.elapsed().as_secs_f64();

    println!(
        "{}",
        json!({"documents": digits.len(), "insert": insert, "backfill": backfill, "fit_epoch": fit})
    );
    Ok(())
}
