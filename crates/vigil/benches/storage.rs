//! Storage benchmark, run with `cargo bench -p vigil --bench storage`.
//!
//! 1. Inserts the 10,000 MNIST digits as PNG-encoded documents through vigil, and the same
//!    bytes through a plain rusqlite insert, in the same run and the same settings (WAL,
//!    synchronous=NORMAL, transactions of 1,000 rows): the ratio is vigil's overhead.
//! 2. Times pushed-down filters over 100,000 documents, without and with an index.
//!
//! Each figure is the median of several runs. Prints a Markdown table for BENCHMARKS.md.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use vigil::{json, Document, Value};

const BATCH: usize = 1000;

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist")
}

fn vigil_insert(docs: &[Document]) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let db = vigil::connect(&format!("sqlite://{}", dir.path().join("v.db").display())).unwrap();
    let coll = db.collection("mnist").unwrap();
    // The table is created before the clock starts, as it is for the plain path.
    coll.insert_many(Vec::<Document>::new()).unwrap();
    // insert_many takes its documents by value, as a caller building them would hand them
    // over; the copies are made before the clock starts.
    let batches: Vec<Vec<Document>> = docs.chunks(BATCH).map(<[Document]>::to_vec).collect();
    let start = Instant::now();
    for batch in batches {
        coll.insert_many(batch).unwrap();
    }
    start.elapsed()
}

fn rusqlite_insert(rows: &[(Vec<u8>, i64)]) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let mut conn = rusqlite::Connection::open(dir.path().join("r.db")).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;
         CREATE TABLE mnist (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, img BLOB NOT NULL, class INTEGER NOT NULL, fold TEXT NOT NULL);",
    )
    .unwrap();
    let start = Instant::now();
    for (n, chunk) in rows.chunks(BATCH).enumerate() {
        let tx = conn.transaction().unwrap();
        {
            let mut stmt = tx
                .prepare_cached("INSERT INTO mnist (id, img, class, fold) VALUES (?, ?, ?, ?)")
                .unwrap();
            for (i, (png, class)) in chunk.iter().enumerate() {
                let id = format!("{:024x}", n * BATCH + i);
                stmt.execute(rusqlite::params![id, png, class, "train"])
                    .unwrap();
            }
        }
        tx.commit().unwrap();
    }
    start.elapsed()
}

fn time<T>(f: impl Fn() -> T) -> (Duration, T) {
    let mut times = Vec::new();
    let mut out = f();
    for _ in 0..5 {
        let start = Instant::now();
        out = f();
        times.push(start.elapsed());
    }
    (median(times), out)
}

fn main() {
    let digits: Vec<_> = vigil_datasets::mnist::read_dir(data_dir())
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let start = Instant::now();
    let docs: Vec<Document> = digits.iter().map(|d| d.to_document().unwrap()).collect();
    let encode = start.elapsed();
    let rows: Vec<(Vec<u8>, i64)> = docs
        .iter()
        .map(|d| match (d.get("img"), d.get("class")) {
            (Some(Value::Encoded(e)), Some(Value::Int(c))) => (e.bytes().to_vec(), *c),
            _ => unreachable!("to_document builds img and class"),
        })
        .collect();
    let n = docs.len() as f64;

    let mut ours = Vec::new();
    let mut plain = Vec::new();
    for _ in 0..5 {
        // Interleaved, so both see the same machine state.
        ours.push(vigil_insert(&docs));
        plain.push(rusqlite_insert(&rows));
    }
    let (ours, plain) = (median(ours), median(plain));
    let rate = |d: Duration| n / d.as_secs_f64();

    println!("## Insert: 10,000 MNIST digits as PNG documents (SQLite file, WAL)\n");
    println!("| path | docs/s | ratio to plain rusqlite |");
    println!("| --- | ---: | ---: |");
    println!(
        "| PNG encoding alone (image crate, once, before inserting) | {:.0} | |",
        rate(encode)
    );
    println!(
        "| plain rusqlite: prepared INSERT of the same PNG bytes, class, id, fold | {:.0} | 1.00 |",
        rate(plain)
    );
    println!(
        "| vigil `insert_many` (ids, folds, validation, JSON + blob) | {:.0} | {:.2} |",
        rate(ours),
        plain.as_secs_f64() / ours.as_secs_f64()
    );

    // Filters over 100,000 documents: the digits ten times over.
    let dir = tempfile::tempdir().unwrap();
    let db = vigil::Options::new()
        .seed(1)
        .connect(&format!("sqlite://{}", dir.path().join("big.db").display()))
        .unwrap();
    let big = db.collection("big").unwrap();
    for copy in 0..10 {
        for chunk in docs.chunks(5000) {
            big.insert_many(chunk.iter().map(|d| d.clone().with("copy", copy)))
                .unwrap();
        }
    }
    let total = big.count(json!({})).unwrap();
    assert_eq!(total, 100_000);
    let queries = [
        ("count {\"class\": 7}", json!({"class": 7}), false),
        (
            "count {\"class\": {\"$in\": [1, 4]}, \"_fold\": \"valid\"}",
            json!({"class": {"$in": [1, 4]}, "_fold": "valid"}),
            false,
        ),
        (
            "find {\"class\": 7, \"copy\": 3} (documents decoded)",
            json!({"class": 7, "copy": 3}),
            true,
        ),
    ];
    let run = |filter: &serde_json::Value, find: bool| -> u64 {
        if find {
            big.find(filter.clone())
                .run()
                .unwrap()
                .fold(0, |n, d| n + u64::from(d.unwrap().id().is_some()))
        } else {
            big.count(filter.clone()).unwrap()
        }
    };
    let without: Vec<(Duration, u64)> = queries
        .iter()
        .map(|(_, f, find)| time(|| run(f, *find)))
        .collect();
    let start = Instant::now();
    big.create_index("class").unwrap();
    let index_time = start.elapsed();
    let with: Vec<(Duration, u64)> = queries
        .iter()
        .map(|(_, f, find)| time(|| run(f, *find)))
        .collect();
    println!("\n## Filters pushed down to SQLite, 100,000 documents\n");
    println!(
        "Index on `class` built in {:.0} ms.\n",
        index_time.as_secs_f64() * 1e3
    );
    println!("| query | matches | no index (ms) | index on `class` (ms) | speed-up |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for (i, (name, ..)) in queries.iter().enumerate() {
        assert_eq!(without[i].1, with[i].1, "an index never changes an answer");
        println!(
            "| {name} | {} | {:.2} | {:.2} | {:.0}x |",
            with[i].1,
            without[i].0.as_secs_f64() * 1e3,
            with[i].0.as_secs_f64() * 1e3,
            without[i].0.as_secs_f64() / with[i].0.as_secs_f64()
        );
    }
}
