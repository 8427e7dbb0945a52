//! Model benchmark, run with `cargo bench -p vigil --bench models`.
//!
//! 1. One training epoch of LeNet5 read from the database (documents streamed, PNGs decoded
//!    and preprocessed on the way) against the same burn training loop fed tensors already in
//!    memory, in the same run.
//! 2. Inference throughput at batch 1, 64 and 1,000 for the burn network (PyTorch's weights
//!    loaded from `.pth`) and the tract ONNX graph, on preprocessed tensors in memory.
//!
//! Prints Markdown tables for BENCHMARKS.md.

use std::path::PathBuf;
use std::time::Instant;

use vigil::ml::{fit, mnist_preprocess, InMemory, PipelineModel, Preprocess, TrainerConfig};
use vigil::{json, lenet5, Document, FitOptions, Value};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let db = vigil::Options::new()
        .seed(42)
        .connect(&format!("sqlite://{}", dir.path().join("b.db").display()))
        .unwrap();
    let mnist = db.collection("mnist").unwrap();
    let docs: Vec<Document> = vigil_datasets::mnist::read_dir(repo().join("data/mnist"))
        .unwrap()
        .map(|d| d.unwrap().to_document().unwrap())
        .collect();
    mnist.insert_many(docs).unwrap();
    mnist.create_index("_fold").unwrap();
    let train: Vec<Document> = mnist
        .find(json!({"_fold": "train"}))
        .run()
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let n = train.len();

    // The same documents, preprocessed once into tensors held in memory.
    let model = PipelineModel::network("lenet5", lenet5(10), 42)
        .unwrap()
        .preprocess(mnist_preprocess());
    let inputs: Vec<Value> = train
        .iter()
        .map(|d| d.get("img").unwrap().clone())
        .collect();
    let (data, _) = model.preprocess_batch(&inputs, 0).unwrap();
    let tensors: Vec<Value> = data
        .chunks(1024)
        .map(|c| Value::tensor(&vigil::Tensor::from_f32(&[1, 32, 32], c).unwrap()))
        .collect();
    let targets: Vec<Value> = train
        .iter()
        .map(|d| d.get("class").unwrap().clone())
        .collect();
    drop(train);

    let trainer = TrainerConfig::new("bench")
        .epochs(1)
        .batch_size(64)
        .validation_interval(u64::MAX)
        .seed(42);
    let mut in_memory = InMemory {
        inputs: tensors,
        targets,
    };
    let mut times = (Vec::new(), Vec::new());
    for _ in 0..3 {
        let mut m = PipelineModel::network("lenet5", lenet5(10), 42)
            .unwrap()
            .preprocess(vec![Preprocess::ToTensor]);
        let t = Instant::now();
        fit(&mut m, &trainer, &mut in_memory, &mut [], &[], &mut |_| {
            std::ops::ControlFlow::Continue(())
        })
        .unwrap();
        times.0.push(t.elapsed().as_secs_f64());
        let mut m = PipelineModel::network("lenet5", lenet5(10), 42)
            .unwrap()
            .preprocess(mnist_preprocess());
        let t = Instant::now();
        db.fit(
            &mut m,
            FitOptions::new("img", "class", &mnist, json!({}), trainer.clone()),
        )
        .unwrap();
        times.1.push(t.elapsed().as_secs_f64());
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (memory, database) = (median(&mut times.0), median(&mut times.1));
    println!("## Training: one epoch of LeNet5, {n} digits, batch 64, Adam (median of 3)\n");
    println!("| path | seconds | images/s | ratio to in-memory |");
    println!("| --- | ---: | ---: | ---: |");
    println!(
        "| burn loop on tensors already in memory | {memory:.2} | {:.0} | 1.00 |",
        n as f64 / memory
    );
    println!("| `db.fit`: streamed from SQLite, PNG decoded and preprocessed | {database:.2} | {:.0} | {:.2} |", n as f64 / database, database / memory);

    // Inference on preprocessed tensors.
    let all: Vec<Value> = vigil_datasets::mnist::read_dir(repo().join("data/mnist"))
        .unwrap()
        .take(1000)
        .map(|d| {
            d.unwrap()
                .to_document()
                .unwrap()
                .get("img")
                .unwrap()
                .clone()
        })
        .collect();
    let (x, shape) = model.preprocess_batch(&all, 0).unwrap();
    let burn = PipelineModel::network_from_pytorch(
        "lenet5",
        lenet5(10),
        &repo().join("data/lenet5/torch_lenet5.pth"),
    )
    .unwrap();
    let tract = PipelineModel::onnx(
        "lenet5_onnx",
        std::fs::read(repo().join("data/lenet5/lenet5.onnx")).unwrap(),
    )
    .unwrap();
    println!("\n## Inference on 1,000 preprocessed digits in memory (images/s, best of 3)\n");
    println!("| engine | batch 1 | batch 64 | batch 1000 |");
    println!("| --- | ---: | ---: | ---: |");
    for (name, m) in [
        ("burn (flex), PyTorch weights from .pth", &burn),
        ("tract, PyTorch's ONNX export", &tract),
    ] {
        let mut row = Vec::new();
        for bs in [1usize, 64, 1000] {
            let mut best = f64::MAX;
            for _ in 0..3 {
                let t = Instant::now();
                for chunk in x.chunks(bs * 1024) {
                    m.forward(chunk.to_vec(), chunk.len() / 1024, &shape)
                        .unwrap();
                }
                best = best.min(t.elapsed().as_secs_f64());
            }
            row.push(format!("{:.0}", 1000.0 / best));
        }
        println!("| {name} | {} |", row.join(" | "));
    }
    println!("\n(threads per model: {})", vigil::ml::default_threads());
}
