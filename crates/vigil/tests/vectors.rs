//! Vector search over listener outputs, on the 10,000 real MNIST digits with PyTorch's
//! trained LeNet5 (its `.pth` weights) cut after `fc2`: 84 features per digit, kept current
//! by a listener, searched through `collection.like`. The same scenario runs on a SQLite
//! file and on the machine's PostgreSQL server.

use std::collections::HashSet;
use std::path::PathBuf;

use vigil::ml::{mnist_preprocess, PipelineModel};
use vigil::{json, lenet5, Datalayer, Document, Error, LikeQuery, Measure, Value, VectorIndex};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn digits() -> Vec<Document> {
    vigil_datasets::mnist::read_dir(repo().join("data/mnist"))
        .unwrap()
        .map(|d| d.unwrap().to_document().unwrap())
        .collect()
}

const LISTENER: &str = "mnist/img/lenet5-features";

/// Stores the digits, adds the features model, switches its listener on, runs the backfill
/// and creates the `digits` index.
fn set_up(db: &Datalayer) {
    let mnist = db.collection("mnist").unwrap();
    mnist.insert_many(digits()).unwrap();
    let lenet = PipelineModel::network_from_pytorch(
        "lenet5",
        lenet5(10),
        &repo().join("data/lenet5/torch_lenet5.pth"),
    )
    .unwrap()
    .preprocess(mnist_preprocess());
    let mut features = lenet.features("lenet5-features", "fc2").unwrap();
    db.add_model(&mut features).unwrap();
    let on = db
        .listen("mnist", "img", "lenet5-features", json!({}))
        .unwrap();
    assert_eq!(on.listener.name, LISTENER);
    db.process_pending().unwrap();
    db.vector_index("digits", LISTENER, Measure::Cosine)
        .unwrap();
}

fn id_of(doc: &Document) -> Value {
    doc.get("_id").unwrap().clone()
}

fn class_of(doc: &Document) -> i64 {
    doc.get("class").unwrap().as_i64().unwrap()
}

fn vector_of(doc: &Document) -> Vec<f32> {
    doc.get_path("_outputs.img.lenet5-features")
        .unwrap()
        .to_tensor()
        .unwrap()
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

fn scenario(db: &Datalayer) {
    set_up(db);
    let mnist = db.collection("mnist").unwrap();
    let status = db.vector_index_status("digits").unwrap();
    assert_eq!(
        (status.vectors, status.dimension),
        (10_000, 84),
        "{status:?}"
    );
    assert_eq!((status.skipped, status.approximate), (0, false));

    // Neighbours by LeNet5 features share the query's class: every valid digit's 10 nearest
    // other digits.
    let valid: Vec<Document> = mnist
        .find(json!({"_fold": "valid"}))
        .run()
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(valid.len() > 300, "{} valid digits", valid.len());
    let (mut same, mut total) = (0usize, 0usize);
    for doc in &valid {
        let hits = mnist.like(LikeQuery::Id(id_of(doc))).n(11).run().unwrap();
        assert_eq!(hits.len(), 11);
        assert!(
            hits[0].score > 0.9999,
            "a digit is its own nearest (or ties with a copy)"
        );
        assert!(
            hits.windows(2).all(|w| w[0].score >= w[1].score),
            "nearest first"
        );
        let others = hits
            .iter()
            .filter(|h| id_of(&h.document) != id_of(doc))
            .take(10);
        same += others
            .filter(|h| class_of(&h.document) == class_of(doc))
            .count();
        total += 10;
    }
    let share = same as f64 / total as f64;
    assert!(
        share >= 0.95,
        "{share:.4} of the top-10 share the query's class"
    );
    println!(
        "top-10 class agreement on {} valid digits: {share:.4}",
        valid.len()
    );

    // Exact results equal a brute-force computation here, for every measure.
    let all: Vec<(Value, Vec<f32>, i64)> = mnist
        .find(json!({}))
        .projection(json!({"img": 0}))
        .run()
        .unwrap()
        .map(|d| {
            let d = d.unwrap();
            (id_of(&d), vector_of(&d), class_of(&d))
        })
        .collect();
    for (name, measure) in [("by_l2", Measure::L2), ("by_dot", Measure::Dot)] {
        db.vector_index(name, LISTENER, measure).unwrap();
    }
    let by_id: std::collections::HashMap<String, &[f32]> = all
        .iter()
        .map(|(id, v, _)| (id.to_json().to_string(), v.as_slice()))
        .collect();
    for q in (0..all.len()).step_by(997) {
        let query = &all[q].1;
        for (index, measure) in [
            ("digits", Measure::Cosine),
            ("by_l2", Measure::L2),
            ("by_dot", Measure::Dot),
        ] {
            let score = |v: &[f32]| -> f64 {
                match measure {
                    Measure::Cosine => cosine(query, v),
                    Measure::L2 => -query
                        .iter()
                        .zip(v)
                        .map(|(a, b)| f64::from(a - b).powi(2))
                        .sum::<f64>(),
                    Measure::Dot => query
                        .iter()
                        .zip(v)
                        .map(|(a, b)| f64::from(*a) * f64::from(*b))
                        .sum(),
                }
            };
            let mut brute: Vec<(f64, &Value)> =
                all.iter().map(|(id, v, _)| (score(v), id)).collect();
            brute.sort_by(|a, b| b.0.total_cmp(&a.0));
            let hits = mnist
                .like(LikeQuery::Vector(query.clone()))
                .index(index)
                .n(10)
                .exact(true)
                .run()
                .unwrap();
            // The same scores in the same order; the same documents wherever no two scores
            // tie within rounding (vigil computes in f32, this test in f64).
            let tolerance = |x: f64| 1e-4 * x.abs().max(1.0);
            for (i, hit) in hits.iter().enumerate() {
                let got = by_id[&id_of(&hit.document).to_json().to_string()];
                let want = brute[i].0;
                assert!(
                    (score(got) - want).abs() <= tolerance(want),
                    "{index}: query {q}, rank {i}"
                );
                let tied = |j: usize| {
                    brute
                        .get(j)
                        .is_some_and(|b| (b.0 - want).abs() <= tolerance(want))
                };
                if !tied(i + 1) && (i == 0 || !tied(i - 1)) {
                    assert_eq!(
                        &id_of(&hit.document),
                        brute[i].1,
                        "{index}: query {q}, rank {i}"
                    );
                }
            }
        }
    }

    // Several indexes now: searches name theirs.
    let search = |q: LikeQuery| mnist.like(q).index("digits");
    // Filters combine: n matches whenever n exist, all of them matching.
    let q = LikeQuery::Id(all[0].0.clone());
    let threes = search(q.clone())
        .filter(json!({"class": 3}))
        .n(10)
        .run()
        .unwrap();
    assert_eq!(threes.len(), 10);
    assert!(threes.iter().all(|h| class_of(&h.document) == 3));
    let narrow = search(q.clone())
        .filter(json!({"class": 3, "_fold": "valid"}))
        .n(25)
        .run()
        .unwrap();
    assert_eq!(narrow.len(), 25);
    assert!(narrow
        .iter()
        .all(|h| class_of(&h.document) == 3
            && h.document.get("_fold") == Some(&Value::from("valid"))));
    let four: Vec<serde_json::Value> = all[100..104]
        .iter()
        .map(|(id, _, _)| id.to_json())
        .collect();
    let few = search(q.clone())
        .filter(json!({"_id": {"$in": four}}))
        .n(10)
        .run()
        .unwrap();
    assert_eq!(few.len(), 4, "only four documents match");

    // An inserted document is findable after one worker cycle; a deleted one never comes back.
    let original = mnist
        .find_one(json!({"_id": all[5].0.to_json()}))
        .unwrap()
        .unwrap();
    let mut pixels = original.get("img").unwrap().to_image().unwrap().to_luma8();
    vigil::image::imageops::flip_horizontal_in_place(&mut pixels);
    let flipped = Value::image(&vigil::image::DynamicImage::ImageLuma8(pixels)).unwrap();
    let new_id = mnist
        .insert_one(
            Document::new()
                .with("img", flipped.clone())
                .with("class", class_of(&original)),
        )
        .unwrap();
    match search(LikeQuery::Id(new_id.clone())).run() {
        Err(Error::NotFound { .. }) => {}
        other => panic!("no vector before the worker ran: {other:?}"),
    }
    db.process_pending().unwrap();
    let found = search(LikeQuery::Input(flipped.clone()))
        .n(1)
        .run()
        .unwrap();
    assert_eq!(id_of(&found[0].document), new_id);
    let by_doc = search(Document::new().with("img", flipped).into())
        .n(1)
        .run()
        .unwrap();
    assert_eq!(id_of(&by_doc[0].document), new_id);

    let before = search(q.clone()).n(10).run().unwrap();
    let gone = id_of(&before[1].document);
    mnist.delete_one(json!({"_id": gone.to_json()})).unwrap();
    for _ in 0..2 {
        // Before the worker removes its output, and after.
        let after = search(q.clone()).n(10).run().unwrap();
        assert_eq!(after.len(), 10);
        assert!(after.iter().all(|h| id_of(&h.document) != gone));
        db.process_pending().unwrap();
    }
    // An update that changes the input moves the vector.
    let other = mnist
        .find_one(json!({"_id": all[7].0.to_json()}))
        .unwrap()
        .unwrap();
    let set = Document::new().with(
        "$set",
        Document::new().with("img", other.get("img").unwrap().clone()),
    );
    assert_eq!(
        mnist
            .update_one(json!({"_id": new_id.to_json()}), set)
            .unwrap()
            .modified,
        1
    );
    db.process_pending().unwrap();
    let moved = search(LikeQuery::Id(all[7].0.clone())).n(2).run().unwrap();
    let ids: HashSet<String> = moved
        .iter()
        .map(|h| id_of(&h.document).to_json().to_string())
        .collect();
    assert!(
        ids.contains(&new_id.to_json().to_string()),
        "the updated document has its new vector"
    );
    assert!(
        moved[1].score > 0.9999,
        "identical images, identical vectors"
    );

    // Approximate search through the HNSW graph recalls the exact neighbours.
    db.add_vector_index(&VectorIndex::new("digits_hnsw", LISTENER).approximate_above(1000))
        .unwrap();
    // The graph is built on a thread of its own; searches scan until it is ready.
    assert!(db.prepare_vector_index("digits_hnsw").unwrap().approximate);
    let (mut found, mut asked) = (0, 0);
    for (id, _, _) in all.iter().step_by(50) {
        if *id == gone {
            continue;
        }
        let exact: HashSet<String> = mnist
            .like(LikeQuery::Id(id.clone()))
            .index("digits_hnsw")
            .exact(true)
            .run()
            .unwrap()
            .iter()
            .map(|h| id_of(&h.document).to_json().to_string())
            .collect();
        let approx = mnist
            .like(LikeQuery::Id(id.clone()))
            .index("digits_hnsw")
            .run()
            .unwrap();
        assert_eq!(approx.len(), 10);
        found += approx
            .iter()
            .filter(|h| exact.contains(&id_of(&h.document).to_json().to_string()))
            .count();
        asked += exact.len();
    }
    let recall = found as f64 / asked as f64;
    println!("recall@10 of the HNSW graph over 10,000 digits: {recall:.4}");
    assert!(recall >= 0.9, "recall@10 {recall}");

    // Errors name what was wrong.
    let err = mnist
        .like(LikeQuery::Vector(vec![1.0; 3]))
        .index("digits")
        .run()
        .unwrap_err();
    assert!(
        err.to_string().contains("3 dimensions, the index holds 84"),
        "{err}"
    );
    let err = mnist
        .like(Document::new().with("image", 1))
        .index("digits")
        .run()
        .unwrap_err();
    assert!(err.to_string().contains("no `img`"), "{err}");
    let err = mnist.like(q.clone()).run().unwrap_err();
    assert!(err.to_string().contains("several vector indexes"), "{err}");
    let err = db
        .collection("other")
        .unwrap()
        .like(q.clone())
        .run()
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    assert!(db
        .vector_index("x", "no/such/listener", Measure::L2)
        .is_err());

    // A new model version: the index follows the listener, old vectors are not mixed in.
    let mut fresh = PipelineModel::network("lenet5-features", lenet5(10), 7)
        .unwrap()
        .preprocess(mnist_preprocess())
        .features("lenet5-features", "fc2")
        .unwrap();
    assert_eq!(db.add_model(&mut fresh).unwrap(), 2);
    db.roll_listener(LISTENER, None).unwrap();
    let rolled = db.vector_index_status("digits").unwrap();
    assert_eq!((rolled.model_version, rolled.vectors), (2, 0));
    db.process_pending().unwrap();
    let rolled = db.vector_index_status("digits").unwrap();
    assert_eq!((rolled.model_version, rolled.vectors), (2, 10_000));
}

#[test]
fn similarity_search_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("v.db").display());
    scenario(&vigil::connect(&url).unwrap());
    // The index lives with the data: a new connection searches it without a rebuild step.
    let again = vigil::connect(&url).unwrap();
    let mnist = again.collection("mnist").unwrap();
    let some = mnist.find_one(json!({})).unwrap().unwrap();
    let hits = mnist
        .like(LikeQuery::Id(id_of(&some)))
        .index("digits")
        .run()
        .unwrap();
    assert_eq!(hits.len(), 10);
    assert_eq!(id_of(&hits[0].document), id_of(&some));
}

#[cfg(feature = "postgres")]
#[test]
fn similarity_search_on_postgres() {
    let url = std::env::var("VIGIL_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let backend = vigil::PostgresBackend::ephemeral(&url)
        .unwrap_or_else(|e| panic!("PostgreSQL at {url} must answer for these tests: {e}"));
    scenario(&vigil::Options::default().with_backend(std::sync::Arc::new(backend)));
}
