//! Models that misbehave on one document: one that panics, one that never returns, one that
//! returns the wrong number of outputs. Behind a listener, with a worker running in its own
//! thread beside the writer, each culprit is recorded as failed with its reason and parked,
//! the worker stays up, and every other document gets its output.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use vigil::ml::{register_function, PipelineModel};
use vigil::{json, Document, Value, WorkerOptions};

/// Documents `{"n": 0..N}`; the culprits are n = 33 (panic), 55 (hang) and 77 (miscount).
const N: i64 = 150;

fn register() {
    register_function(
        "fault_panics",
        Arc::new(|xs: &[Value]| {
            if xs.iter().any(|x| x.as_i64() == Some(33)) {
                panic!("thirty-three is not allowed");
            }
            Ok(xs.to_vec())
        }),
    );
    register_function(
        "fault_hangs",
        Arc::new(|xs: &[Value]| {
            if xs.iter().any(|x| x.as_i64() == Some(55)) {
                std::thread::sleep(Duration::from_secs(3600));
            }
            Ok(xs.to_vec())
        }),
    );
    register_function(
        "fault_miscounts",
        Arc::new(|xs: &[Value]| {
            Ok(xs
                .iter()
                .filter(|x| x.as_i64() != Some(77))
                .cloned()
                .collect())
        }),
    );
}

#[test]
fn a_model_that_panics_hangs_or_miscounts_fails_only_its_document() {
    register();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("faults.db").display());
    let db = vigil::connect(&url).unwrap();
    let coll = db.collection("numbers").unwrap();
    for name in ["fault_panics", "fault_hangs", "fault_miscounts"] {
        let mut model = PipelineModel::function(name, name).unwrap().batch_size(64);
        db.add_model(&mut model).unwrap();
        db.listen("numbers", "n", name, json!({})).unwrap();
    }
    // A worker in its own thread, as `vigil worker` would run, while documents arrive.
    let stop = Arc::new(AtomicBool::new(false));
    let worker = {
        let db = vigil::connect(&url).unwrap();
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let options = WorkerOptions::new()
                .batch_size(64)
                .time_limit(Duration::from_millis(400))
                .max_attempts(1)
                .idle_wait(Duration::from_millis(20));
            db.worker(options).unwrap().run(&stop)
        })
    };
    let docs: Vec<Document> = (0..N).map(|n| Document::new().with("n", n)).collect();
    for chunk in docs.chunks(50) {
        coll.insert_many(chunk.to_vec()).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while db.pending(None).unwrap() > 0 {
        assert!(Instant::now() < deadline, "the worker did not finish");
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    let applied = worker.join().expect("the worker thread survived").unwrap();
    assert_eq!(applied.parked, 3);

    for (model, culprit, reason) in [
        (
            "fault_panics",
            33,
            "the model panicked: thirty-three is not allowed",
        ),
        ("fault_hangs", 55, "did not finish within"),
        ("fault_miscounts", 77, "wrong number of outputs"),
    ] {
        let name = format!("numbers/n/{model}");
        let failures = db.failures(Some(&name)).unwrap();
        assert_eq!(failures.len(), 1, "{name}: {failures:?}");
        assert!(failures[0].parked);
        assert!(failures[0].error.contains(reason), "{}", failures[0].error);
        let culprit_doc = coll.find_one(json!({"n": culprit})).unwrap().unwrap();
        assert_eq!(culprit_doc.get_path(&format!("_outputs.n.{model}")), None);
        // Every other document got its output.
        assert_eq!(
            coll.count(json!({ format!("_outputs.n.{model}"): {"$exists": true} }))
                .unwrap(),
            (N - 1) as u64,
            "{name}"
        );
        let status = db.listener_status(&name).unwrap();
        assert_eq!((status.pending, status.parked), (0, 1));
    }
}
