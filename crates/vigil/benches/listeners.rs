//! Listener benchmark, run with `cargo bench -p vigil --bench listeners`.
//!
//! 1. Backfill on SQLite: a listener switched on over the 10,000 stored digits, computed by an
//!    in-process worker (claim, read, decode, forward, write outputs, dequeue), against the
//!    same model's forward pass on the same batch size over tensors already in memory, and
//!    against its whole `predict` (decode and preprocess included) on values in memory.
//! 2. PostgreSQL (when `$VIGIL_TEST_POSTGRES` or the default local server answers): insert
//!    docs/s against the plain `postgres` crate inserting the same rows, and backfill docs/s
//!    with 1, 2 and 3 separate worker processes.
//! 3. Latency on both: a separate worker process (this binary, re-run with `--worker URL`)
//!    tails the queue while documents are inserted one at a time; the time from the insert's
//!    commit to its output being readable, p50 and p99.
//!
//! Prints Markdown tables for BENCHMARKS.md.

use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use vigil::ml::{mnist_preprocess, PipelineModel, Postprocess};
use vigil::{json, lenet5, Datalayer, Document, Value, WorkerOptions};

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

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn spawn_worker(url: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--worker", url])
        .spawn()
        .unwrap()
}

fn wait_until_done(db: &Datalayer) {
    while db.pending(None).unwrap() > 0 {
        std::thread::sleep(Duration::from_millis(5));
    }
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
    let docs: Vec<Document> = vigil_datasets::mnist::read_dir(repo().join("data/mnist"))
        .unwrap()
        .map(|d| d.unwrap().to_document().unwrap())
        .collect();
    sqlite_backfill(&docs);
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("l.db").display());
    latency("SQLite", &vigil::connect(&url).unwrap(), &url, &docs);
    let server = std::env::var("VIGIL_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    match vigil::PostgresBackend::ephemeral(&server) {
        Ok(backend) => postgres(&server, Arc::new(backend), &docs),
        Err(e) => println!("PostgreSQL at {server} does not answer ({e}); its figures are skipped"),
    }
}

fn sqlite_backfill(docs: &[Document]) {
    let values: Vec<Value> = docs.iter().map(|d| d.get("img").unwrap().clone()).collect();
    let n = docs.len();
    // The limit: the same model on the same batch size, in memory; on the model's default
    // threads (every core) and on one, the default before issue 15 measured it.
    let m = model();
    let one = model().threads(1).unwrap();
    let (data, shape) = m.preprocess_batch(&values, 0).unwrap();
    let width: usize = shape.iter().product();
    let (mut forward, mut forward_one, mut predict) = (Vec::new(), Vec::new(), Vec::new());
    let (mut backfill, mut backfill_one) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        for (m, out) in [(&m, &mut forward), (&one, &mut forward_one)] {
            let t = Instant::now();
            for chunk in data.chunks(BATCH * width) {
                let rows = chunk.len() / width;
                std::hint::black_box(m.forward(chunk.to_vec(), rows, &shape).unwrap());
            }
            out.push(n as f64 / t.elapsed().as_secs_f64());
        }
        let t = Instant::now();
        std::hint::black_box(vigil::Model::predict(&m, &values).unwrap());
        predict.push(n as f64 / t.elapsed().as_secs_f64());
        for (threads, out) in [(None, &mut backfill), (Some(1), &mut backfill_one)] {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}", dir.path().join("b.db").display());
            let db = vigil::connect(&url).unwrap();
            db.collection("mnist")
                .unwrap()
                .insert_many(docs.to_vec())
                .unwrap();
            let mut model = match threads {
                Some(t) => model().threads(t).unwrap(),
                None => model(),
            };
            db.add_model(&mut model).unwrap();
            let t = Instant::now();
            db.listen("mnist", "img", "lenet5", json!({})).unwrap();
            let applied = db
                .worker(WorkerOptions::new().batch_size(BATCH))
                .unwrap()
                .drain()
                .unwrap();
            out.push(n as f64 / t.elapsed().as_secs_f64());
            assert_eq!(applied.written, n as u64);
        }
    }
    let (f, f1, p) = (
        median(&mut forward),
        median(&mut forward_one),
        median(&mut predict),
    );
    let (b, b1) = (median(&mut backfill), median(&mut backfill_one));
    let threads = vigil::ml::default_threads();
    println!("## Backfill of {n} digits on SQLite, LeNet5 (burn), batch {BATCH}, median of 3\n");
    println!("| | docs/s | the backfill (default threads) as a fraction |");
    println!("|---|---:|---:|");
    println!(
        "| forward pass on tensors in memory, {threads} thread(s) (the default) | {f:.0} | {:.2} |",
        b / f
    );
    println!(
        "| forward pass on tensors in memory, 1 thread | {f1:.0} | {:.2} |",
        b / f1
    );
    println!(
        "| predict on PNG values in memory (decode + preprocess + forward) | {p:.0} | {:.2} |",
        b / p
    );
    println!("| backfill from SQLite through the listener | {b:.0} | 1.00 |");
    println!(
        "| backfill from SQLite, the model on 1 thread | {b1:.0} | {:.2} |\n",
        b / b1
    );
}

fn latency(name: &str, db: &Datalayer, url: &str, docs: &[Document]) {
    db.add_model(&mut model()).unwrap();
    db.listen("late", "img", "lenet5", json!({})).unwrap();
    let mut worker = spawn_worker(url);
    std::thread::sleep(Duration::from_millis(500)); // let it load
    let late = db.collection("late").unwrap();
    let mut latencies = Vec::new();
    for (i, doc) in docs.iter().take(500).enumerate() {
        let id = format!("late-{i}");
        let t = Instant::now();
        late.insert_one(doc.clone().with("_id", id.as_str()))
            .unwrap();
        let committed = t.elapsed();
        loop {
            let found = late
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
        "## Insert-to-output latency on {name}, separate worker process, {} single inserts\n",
        latencies.len()
    );
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

fn postgres(server: &str, backend: Arc<vigil::PostgresBackend>, docs: &[Document]) {
    let url = format!("{server}?schema={}", backend.schema());
    let db = vigil::Options::new().with_backend(backend.clone());
    let n = docs.len();
    // Insert: vigil against the plain driver writing the same rows in one transaction.
    let rows: Vec<vigil::stored::StoredDocument> = docs
        .iter()
        .enumerate()
        .map(|(i, d)| vigil::stored::encode(&d.clone().with("_id", i as i64)).unwrap())
        .collect();
    let mut raw = postgres::Client::connect(server, postgres::NoTls).unwrap();
    raw.batch_execute(&format!(
        "SET search_path TO \"{}\"; CREATE TABLE plain (seq BIGSERIAL PRIMARY KEY, id JSONB UNIQUE, doc JSON, blobs BYTEA)",
        backend.schema()
    ))
    .unwrap();
    let (mut ours, mut plain) = (Vec::new(), Vec::new());
    for run in 0..3 {
        let coll = format!("mnist{run}");
        let t = Instant::now();
        db.collection(&coll)
            .unwrap()
            .insert_many(docs.to_vec())
            .unwrap();
        ours.push(n as f64 / t.elapsed().as_secs_f64());
        raw.batch_execute("TRUNCATE plain").unwrap();
        let t = Instant::now();
        let mut tx = raw.transaction().unwrap();
        let stmt = tx
            .prepare(
                "INSERT INTO plain (id, doc, blobs) VALUES ($1::text::jsonb, $2::text::json, $3)",
            )
            .unwrap();
        for r in &rows {
            tx.execute(&stmt, &[&r.id.to_json().to_string(), &r.json, &r.blobs])
                .unwrap();
        }
        tx.commit().unwrap();
        plain.push(n as f64 / t.elapsed().as_secs_f64());
    }
    let (o, p) = (median(&mut ours), median(&mut plain));
    println!("## PostgreSQL: insert of the {n} digits in one transaction, median of 3\n");
    println!("| | docs/s | ratio |");
    println!("|---|---:|---:|");
    println!("| plain `postgres` crate, prepared INSERT | {p:.0} | 1.00 |");
    println!("| vigil `insert_many` | {o:.0} | {:.2} |\n", o / p);

    db.add_model(&mut model()).unwrap();
    println!("## PostgreSQL: backfill of the {n} digits by separate worker processes\n");
    println!("| workers | docs/s |");
    println!("|---:|---:|");
    for (run, workers) in [1, 2, 3].into_iter().enumerate() {
        let coll = format!("mnist{run}");
        let mut procs: Vec<Child> = (0..workers).map(|_| spawn_worker(&url)).collect();
        std::thread::sleep(Duration::from_millis(800)); // let them load
        let t = Instant::now();
        db.listen(&coll, "img", "lenet5", json!({})).unwrap();
        wait_until_done(&db);
        let rate = n as f64 / t.elapsed().as_secs_f64();
        for p in &mut procs {
            p.kill().unwrap();
            p.wait().unwrap();
        }
        println!("| {workers} | {rate:.0} |");
    }
    println!();
    latency("PostgreSQL", &db, &url, docs);
}
