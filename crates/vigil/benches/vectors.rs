//! Vector search benchmark, run with `cargo bench -p vigil --bench vectors`
//! (`VIGIL_BENCH_VECTORS=100000` for a shorter run).
//!
//! The vectors are real: LeNet5's 84 features (PyTorch's trained weights, cut after `fc2`)
//! of the first 9,800 MNIST digits, each shifted by up to two pixels in each direction and
//! lightly noised, as many times as needed for 1,000,000 vectors. The queries are the other
//! 200 digits, jittered the same way: digits the index has never seen, so no query has a
//! near-copy of itself in the index. For 10,000, 100,000 and 1,000,000 vectors it measures, in one run:
//!
//! 1. exact search (`Vectors::exact`, cosine, k = 10) against the plain brute-force loop
//!    over the same contiguous array with the same dot-product kernel and a 10-slot
//!    insertion top-k: the memory-bandwidth limit;
//! 2. the HNSW graph: build time (all cores) and, per search width, queries/s and
//!    recall@10 against the exact results.
//!
//! 3. The whole path on a SQLite file with the 10,000 digits: the first `like` in a process
//!    (reads every output), a warm `like` by id (fingerprint check, scan, documents read
//!    through the filter), and the first `like` after a delete (rereads every output).
//!
//! Searches run one query at a time on one thread. Prints Markdown for BENCHMARKS.md.

use std::path::PathBuf;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use vigil::ml::{mnist_preprocess, PipelineModel};
use vigil::{lenet5, Value};
use vigil_vector::{dot, Graph, GraphOptions, Measure, Vectors};

const DIM: usize = 84;
const QUERIES: usize = 200;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// PyTorch's trained LeNet5, cut after `fc2`: 84 features per digit.
fn lenet5_features() -> PipelineModel {
    PipelineModel::network_from_pytorch(
        "lenet5",
        lenet5(10),
        &repo().join("data/lenet5/torch_lenet5.pth"),
    )
    .unwrap()
    .preprocess(mnist_preprocess())
    .features("lenet5-features", "fc2")
    .unwrap()
}

/// Digits the indexed vectors come from; the rest are the queries.
const INDEXED_DIGITS: usize = 9_800;

/// `count` feature vectors of jittered digits `digits` (a range of the 10,000), computed in
/// batches of 1,000.
fn features(count: usize, digits: std::ops::Range<usize>, seed: u64) -> Vec<f32> {
    let model = lenet5_features()
        .threads(std::thread::available_parallelism().map_or(1, |n| n.get()))
        .unwrap();
    let images: Vec<Value> = vigil_datasets::mnist::read_dir(repo().join("data/mnist"))
        .unwrap()
        .map(|d| {
            d.unwrap()
                .to_document()
                .unwrap()
                .get("img")
                .unwrap()
                .clone()
        })
        .collect();
    // Preprocessed once: 32x32 normalised planes; jitter shifts and noises those.
    let (planes, shape) = model.preprocess_batch(&images, 0).unwrap();
    let background = planes[0];
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(count * DIM);
    let mut batch = Vec::with_capacity(1000 * 1024);
    let mut i = 0;
    while out.len() < count * DIM {
        batch.clear();
        let n = (count - out.len() / DIM).min(1000);
        for _ in 0..n {
            let digit = digits.start + i % digits.len();
            let plane = &planes[digit * 1024..][..1024];
            let (dx, dy): (i32, i32) = (rng.random_range(-2..=2), rng.random_range(-2..=2));
            for y in 0..32i32 {
                for x in 0..32i32 {
                    let (sx, sy) = (x - dx, y - dy);
                    let v = if (0..32).contains(&sx) && (0..32).contains(&sy) {
                        plane[(sy * 32 + sx) as usize]
                    } else {
                        background
                    };
                    batch.push(v + rng.random_range(-0.1..0.1));
                }
            }
            i += 1;
        }
        out.extend(model.forward(batch.clone(), n, &shape).unwrap());
    }
    out
}

/// The limit: one pass over the contiguous array, the same kernel, a plain top-10.
fn brute_force(data: &[f32], query: &[f32]) -> [usize; 10] {
    let mut best = [(f32::NEG_INFINITY, usize::MAX); 10];
    for (i, row) in data.chunks_exact(DIM).enumerate() {
        let s = dot(query, row);
        if s > best[9].0 {
            let mut j = 9;
            while j > 0 && best[j - 1].0 < s {
                best[j] = best[j - 1];
                j -= 1;
            }
            best[j] = (s, i);
        }
    }
    best.map(|b| b.1)
}

fn per_second(n: usize, seconds: f64) -> f64 {
    n as f64 / seconds.max(1e-9)
}

fn end_to_end() {
    use vigil::{json, LikeQuery, Measure};
    let dir = tempfile::tempdir().unwrap();
    let db = vigil::connect(&format!("sqlite://{}", dir.path().join("v.db").display())).unwrap();
    let mnist = db.collection("mnist").unwrap();
    let docs: Vec<vigil::Document> = vigil_datasets::mnist::read_dir(repo().join("data/mnist"))
        .unwrap()
        .map(|d| d.unwrap().to_document().unwrap())
        .collect();
    mnist.insert_many(docs).unwrap();
    let mut features = lenet5_features();
    db.add_model(&mut features).unwrap();
    let on = db
        .listen("mnist", "img", "lenet5-features", json!({}))
        .unwrap();
    db.process_pending().unwrap();
    db.vector_index("digits", &on.listener.name, Measure::Cosine)
        .unwrap();
    let ids: Vec<Value> = mnist
        .find(json!({}))
        .projection(json!({"_id": 1}))
        .run()
        .unwrap()
        .map(|d| d.unwrap().get("_id").unwrap().clone())
        .collect();
    let t = Instant::now();
    mnist.like(LikeQuery::Id(ids[0].clone())).run().unwrap();
    let first = t.elapsed().as_secs_f64();
    let t = Instant::now();
    for id in ids.iter().step_by(50) {
        assert_eq!(
            mnist.like(LikeQuery::Id(id.clone())).run().unwrap().len(),
            10
        );
    }
    let warm = per_second(ids.len().div_ceil(50), t.elapsed().as_secs_f64());
    let t = Instant::now();
    for id in ids.iter().step_by(50) {
        mnist
            .like(LikeQuery::Id(id.clone()))
            .filter(json!({"class": 3, "_fold": "valid"}))
            .run()
            .unwrap();
    }
    let filtered = per_second(ids.len().div_ceil(50), t.elapsed().as_secs_f64());
    mnist.delete_one(json!({"_id": ids[1].to_json()})).unwrap();
    db.process_pending().unwrap();
    let t = Instant::now();
    mnist.like(LikeQuery::Id(ids[0].clone())).run().unwrap();
    let after_delete = t.elapsed().as_secs_f64();
    println!("| SQLite, 10,000 digits | first `like` in a process | warm `like` by id (q/s) | warm, filter keeping 1% (q/s) | first `like` after a delete |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    println!(
        "| | {:.0} ms | {warm:.0} | {filtered:.0} | {:.0} ms |\n",
        first * 1000.0,
        after_delete * 1000.0
    );
}

fn main() {
    end_to_end();
    let largest: usize = std::env::var("VIGIL_BENCH_VECTORS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let start = Instant::now();
    let all = features(largest, 0..INDEXED_DIGITS, 1);
    let queries_raw = features(QUERIES, INDEXED_DIGITS..10_000, 2);
    println!(
        "{largest} feature vectors of jittered digits (+{QUERIES} queries of unseen digits) in {:.1} s\n",
        start.elapsed().as_secs_f64()
    );

    println!("| vectors | brute-force loop (q/s) | vigil exact (q/s) | ratio | scanned (GB/s) | HNSW build (s) | ef | HNSW (q/s) | speed-up over exact | recall@10 |");
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for n in [10_000, 100_000, 1_000_000]
        .into_iter()
        .filter(|&n| n <= largest)
    {
        let mut vectors = Vectors::new(DIM, Measure::Cosine);
        for v in all[..n * DIM].chunks_exact(DIM) {
            vectors.push(v).unwrap();
        }
        let normalised: Vec<f32> = (0..n).flat_map(|s| vectors.get(s).to_vec()).collect();
        let queries: Vec<Vec<f32>> = queries_raw
            .chunks_exact(DIM)
            .map(|q| vectors.prepare(q).unwrap())
            .collect();

        let t = Instant::now();
        let mut checksum = 0;
        for q in &queries {
            checksum += brute_force(&normalised, q)[0];
        }
        let brute_qps = per_second(QUERIES, t.elapsed().as_secs_f64());

        let t = Instant::now();
        let exact: Vec<Vec<usize>> = queries
            .iter()
            .map(|q| {
                vectors
                    .exact(q, 10, |_| true)
                    .iter()
                    .map(|h| h.slot)
                    .collect()
            })
            .collect();
        let exact_qps = per_second(QUERIES, t.elapsed().as_secs_f64());
        assert_eq!(
            checksum,
            exact.iter().map(|e| e[0]).sum::<usize>(),
            "both find the same nearest vectors"
        );
        let gbps = exact_qps * (n * DIM * 4) as f64 / 1e9;

        let t = Instant::now();
        let mut graph = Graph::build(&vectors, GraphOptions::default()).unwrap();
        let build = t.elapsed().as_secs_f64();
        let mut first = true;
        for ef in [32, 64, 96, 200] {
            graph.set_search_width(ef);
            let t = Instant::now();
            let approx: Vec<Vec<usize>> = queries
                .iter()
                .map(|q| {
                    graph
                        .search(&vectors, q, 10, |_| true)
                        .iter()
                        .map(|h| h.slot)
                        .collect()
                })
                .collect();
            let qps = per_second(QUERIES, t.elapsed().as_secs_f64());
            let found: usize = approx
                .iter()
                .zip(&exact)
                .map(|(a, e)| a.iter().filter(|s| e.contains(s)).count())
                .sum();
            let recall = found as f64 / (QUERIES * 10) as f64;
            if first {
                println!(
                    "| {n} | {brute_qps:.0} | {exact_qps:.0} | {:.2} | {gbps:.1} | {build:.1} | {ef} | {qps:.0} | {:.1}x | {recall:.3} |",
                    exact_qps / brute_qps,
                    qps / exact_qps
                );
                first = false;
            } else {
                println!(
                    "| | | | | | | {ef} | {qps:.0} | {:.1}x | {recall:.3} |",
                    qps / exact_qps
                );
            }
        }
    }
}
