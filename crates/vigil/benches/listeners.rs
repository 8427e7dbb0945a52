//! Listener benchmark, run with `cargo bench -p vigil --bench listeners`.
//!
//! 1. Backfill: a listener switched on over the 10,000 stored digits, computed by an
//!    in-process worker (claim, read, decode, forward, write outputs, dequeue), against the
//!    same model's forward pass on the same batch size over tensors already in memory, and
//!    against its whole `predict` (decode and preprocess included) on values in memory.
//! 2. Latency: a separate worker process (this binary, re-run with `--worker`) tails the
//!    queue while documents are inserted one at a time; the time from the insert's commit to
//!    its output being readable, p50 and p99.
//!
//! Prints Markdown tables for BENCHMARKS.md.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use vigil::ml::{mnist_preprocess, PipelineModel, Postprocess};
use vigil::{json, lenet5, Document, Value, WorkerOptions};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

const BATCH: usize = 256;

fn model() -> PipelineModel {
    PipelineModel::network("lenet5", lenet5(10), 42)
        .unwrap()
        .preprocess(mnist_preprocess())
        .postprocess(Postprocess::Argmax)
        .batch_size(BATCH)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--worker") {
        let db = vigil::connect(&args[i + 1]).unwrap();
        let stop = AtomicBool::new(false);
        db.worker(
            WorkerOptions::new()
                .batch_size(BATCH)
                .idle_wait(Duration::from_millis(50)),
        )
        .unwrap()
        .run(&stop)
        .unwrap();
        return;
    }
    let docs: Vec<Document> = vigil::mnist::read_dir(repo().join("data/mnist"))
        .unwrap()
        .map(|d| d.unwrap().to_document().unwrap())
        .collect();
    let values: Vec<Value> = docs.iter().map(|d| d.get("img").unwrap().clone()).collect();
    let n = docs.len();

    // The limit: the same model on the same batch size, in memory.
    let m = model();
    let (data, shape) = m.preprocess_batch(&values, 0).unwrap();
    let width: usize = shape.iter().product();
    let mut forward = Vec::new();
    let mut predict = Vec::new();
    let mut backfill = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        for chunk in data.chunks(BATCH * width) {
            let rows = chunk.len() / width;
            std::hint::black_box(m.forward(chunk.to_vec(), rows, &shape).unwrap());
        }
        forward.push(n as f64 / t.elapsed().as_secs_f64());
        let t = Instant::now();
        std::hint::black_box(vigil::Model::predict(&m, &values).unwrap());
        predict.push(n as f64 / t.elapsed().as_secs_f64());

        let dir = tempfile::tempdir().unwrap();
        let db =
            vigil::connect(&format!("sqlite://{}", dir.path().join("b.db").display())).unwrap();
        db.collection("mnist")
            .unwrap()
            .insert_many(docs.clone())
            .unwrap();
        db.add_model(&mut model()).unwrap();
        let t = Instant::now();
        db.listen("mnist", "img", "lenet5", json!({})).unwrap();
        let applied = db
            .worker(WorkerOptions::new().batch_size(BATCH))
            .unwrap()
            .drain()
            .unwrap();
        backfill.push(n as f64 / t.elapsed().as_secs_f64());
        assert_eq!(applied.written, n as u64);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (f, p, b) = (
        median(&mut forward),
        median(&mut predict),
        median(&mut backfill),
    );
    println!("## Backfill of {n} digits, LeNet5 (burn), batch {BATCH}, median of 3\n");
    println!("| | docs/s | backfill as a fraction |");
    println!("|---|---:|---:|");
    println!(
        "| forward pass on tensors in memory | {f:.0} | {:.2} |",
        b / f
    );
    println!(
        "| predict on PNG values in memory (decode + preprocess + forward) | {p:.0} | {:.2} |",
        b / p
    );
    println!("| backfill from SQLite through the listener | {b:.0} | 1.00 |\n");

    // Latency with a separate worker process.
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("l.db").display());
    let db = vigil::connect(&url).unwrap();
    db.add_model(&mut model()).unwrap();
    db.listen("mnist", "img", "lenet5", json!({})).unwrap();
    let mut worker = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--worker", &url])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500)); // let it load
    let mnist = db.collection("mnist").unwrap();
    let mut latencies = Vec::new();
    for (i, doc) in docs.iter().take(500).enumerate() {
        let id = format!("late-{i}");
        let t = Instant::now();
        mnist
            .insert_one(doc.clone().with("_id", id.as_str()))
            .unwrap();
        let committed = t.elapsed();
        loop {
            let found = mnist
                .count(json!({"_id": id, "_outputs.img.lenet5": {"$exists": true}}))
                .unwrap();
            if found == 1 {
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        latencies.push((t.elapsed() - committed).as_secs_f64() * 1e3);
        std::thread::sleep(Duration::from_millis(10));
    }
    worker.kill().unwrap();
    worker.wait().unwrap();
    latencies.sort_by(f64::total_cmp);
    let q = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    println!(
        "## Insert-to-output latency, separate worker process, {} single inserts\n",
        latencies.len()
    );
    println!("| p50 | p90 | p99 | max |");
    println!("|---:|---:|---:|---:|");
    println!(
        "| {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms |",
        q(0.5),
        q(0.9),
        q(0.99),
        latencies[latencies.len() - 1]
    );
}
