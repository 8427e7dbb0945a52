//! MongoDB benchmark, run with `cargo bench -p vigil --bench mongodb` against the server at
//! `$VIGIL_TEST_MONGODB` (default `mongodb://127.0.0.1:27017`), all in one run:
//!
//! 1. Insert: the 10,000 digits through vigil's `insert_many` against the plain `mongodb`
//!    driver's `insert_many` of the same BSON documents (the same `_id`s, images as
//!    `{"_codec", "_bytes"}`), each into a fresh collection; median of 3.
//! 2. Backfill: a listener switched on over 2,000 stored digits, drained by an in-process
//!    worker, on MongoDB and on SQLite (a temporary file), the same LeNet5 and batch; median of 3.
//! 3. Insert-to-output latency: a separate worker process (this binary, re-run with
//!    `--worker URL`) while documents are inserted one at a time; p50 and p99.
//!
//! Prints Markdown tables for BENCHMARKS.md.

use std::process::{Child, Command};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mongodb::bson::{doc, spec::BinarySubtype, Binary, Bson};
use vigil::ml::{mnist_preprocess, PipelineModel, Postprocess};
use vigil::{json, lenet5, Datalayer, Document, Value, WorkerOptions};

const BATCH: usize = 256;

fn model() -> PipelineModel {
    PipelineModel::network("lenet5", lenet5(10), 42)
        .unwrap()
        .preprocess(mnist_preprocess())
        .postprocess(Postprocess::Argmax)
        .batch_size(BATCH)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn server() -> String {
    std::env::var("VIGIL_TEST_MONGODB").unwrap_or_else(|_| "mongodb://127.0.0.1:27017".into())
}

fn fresh() -> (Datalayer, String) {
    let backend = vigil::MongoBackend::ephemeral(&server()).unwrap();
    let url = format!("{}/{}", server(), backend.database_name());
    (vigil::Options::new().with_backend(Arc::new(backend)), url)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--worker") {
        let db = vigil::connect(&args[i + 1]).unwrap();
        db.worker(
            WorkerOptions::new()
                .batch_size(BATCH)
                .idle_wait(Duration::from_millis(50)),
        )
        .unwrap()
        .run(&AtomicBool::new(false))
        .unwrap();
        return;
    }
    let docs: Vec<Document> = vigil_conformance::data::documents(10_000)
        .into_iter()
        .enumerate()
        .map(|(i, d)| d.with("_id", i as i64))
        .collect();
    insert(&docs);
    // The backfill runs on the first 2,000 (MongoDB's apply is a round trip per write).
    backfill(&docs[..2000]);
    latency(&docs);
}

fn insert(docs: &[Document]) {
    let plain_docs: Vec<mongodb::bson::Document> = docs
        .iter()
        .map(|d| {
            let Some(Value::Encoded(img)) = d.get("img") else {
                unreachable!()
            };
            doc! {
                "_id": d.get("_id").and_then(Value::as_i64).unwrap(),
                "img": { "_codec": img.codec(), "_bytes": Bson::Binary(Binary {
                    subtype: BinarySubtype::Generic, bytes: img.bytes().to_vec() }) },
                "class": d.get("class").and_then(Value::as_i64).unwrap(),
            }
        })
        .collect();
    let client = mongodb::sync::Client::with_uri_str(server()).unwrap();
    let (mut vigil_rates, mut plain_rates) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        let (db, _) = fresh();
        let t = Instant::now();
        db.collection("mnist")
            .unwrap()
            .insert_many(docs.to_vec())
            .unwrap();
        vigil_rates.push(docs.len() as f64 / t.elapsed().as_secs_f64());
        let plain = client.database(&format!("vigil_plain_{}", std::process::id()));
        let coll = plain.collection::<mongodb::bson::Document>("mnist");
        let t = Instant::now();
        coll.insert_many(plain_docs.clone()).run().unwrap();
        plain_rates.push(docs.len() as f64 / t.elapsed().as_secs_f64());
        plain.drop().run().unwrap();
    }
    let (v, p) = (median(&mut vigil_rates), median(&mut plain_rates));
    println!(
        "## Insert of {} digits on MongoDB (SecantusDB), median of 3\n",
        docs.len()
    );
    println!("| | docs/s | vigil / plain driver |");
    println!("|---|---:|---:|");
    println!("| plain `mongodb` driver, `insert_many` | {p:.0} | |");
    println!(
        "| vigil `insert_many` (one transaction) | {v:.0} | {:.2} |\n",
        v / p
    );
}

fn backfill(docs: &[Document]) {
    let run = |db: &Datalayer| -> f64 {
        db.collection("mnist")
            .unwrap()
            .insert_many(docs.to_vec())
            .unwrap();
        db.add_model(&mut model()).unwrap();
        let t = Instant::now();
        db.listen("mnist", "img", "lenet5", json!({})).unwrap();
        let applied = db
            .worker(WorkerOptions::new().batch_size(BATCH))
            .unwrap()
            .drain()
            .unwrap();
        assert_eq!(applied.written, docs.len() as u64);
        docs.len() as f64 / t.elapsed().as_secs_f64()
    };
    let (mut mongo, mut sqlite) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        mongo.push(run(&fresh().0));
        let dir = tempfile::tempdir().unwrap();
        sqlite.push(run(&vigil::connect(&format!(
            "sqlite://{}",
            dir.path().join("b.db").display()
        ))
        .unwrap()));
    }
    let (m, s) = (median(&mut mongo), median(&mut sqlite));
    println!(
        "## Backfill of {} digits, LeNet5 (burn), batch {BATCH}, in-process worker, median of 3\n",
        docs.len()
    );
    println!("| backend | docs/s | against SQLite |");
    println!("|---|---:|---:|");
    println!("| SQLite (file) | {s:.0} | 1.00 |");
    println!("| MongoDB (SecantusDB) | {m:.0} | {:.2} |\n", m / s);
}

fn latency(docs: &[Document]) {
    let (db, url) = fresh();
    db.add_model(&mut model()).unwrap();
    db.listen("late", "img", "lenet5", json!({})).unwrap();
    let mut worker: Child = Command::new(std::env::current_exe().unwrap())
        .args(["--worker", &url])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1000)); // let it load
    let late = db.collection("late").unwrap();
    let mut latencies = Vec::new();
    for (i, doc) in docs.iter().take(200).enumerate() {
        let t = Instant::now();
        late.insert_one(doc.clone().with("_id", i as i64)).unwrap();
        let committed = t.elapsed();
        while late
            .count(json!({"_id": i, "_outputs.img.lenet5": {"$exists": true}}))
            .unwrap()
            == 0
        {
            std::thread::sleep(Duration::from_micros(500));
        }
        latencies.push((t.elapsed() - committed).as_secs_f64() * 1e3);
        std::thread::sleep(Duration::from_millis(10));
    }
    worker.kill().unwrap();
    worker.wait().unwrap();
    latencies.sort_by(f64::total_cmp);
    let q = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    println!("## Insert-to-output latency on MongoDB (SecantusDB), separate worker process, {} single inserts\n", latencies.len());
    println!("| p50 | p90 | p99 | max |");
    println!("|---:|---:|---:|---:|");
    println!(
        "| {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms |\n",
        q(0.5),
        q(0.9),
        q(0.99),
        latencies[latencies.len() - 1]
    );
}
