//! Models that misbehave on one document: one that panics, one that never returns, one that
//! returns the wrong number of outputs. Behind a listener, with a worker running as a process
//! of its own (this test binary run again, as `vigil worker` would be run with these functions
//! built in) while a writer inserts, each culprit is recorded as failed with its reason and
//! parked, the worker process stays up, and every other document gets its output.

use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use vigil::ml::{register_function, PipelineModel};
use vigil::{json, Document, Value, WorkerOptions};

/// Set for the child process that plays the worker: the database's URL.
const WORKER_DB: &str = "VIGIL_FAULTS_WORKER_DB";

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
    // The worker: this binary again, running only `worker_process`.
    let log = dir.path().join("worker.log");
    let mut worker = Command::new(std::env::current_exe().unwrap())
        .args(["worker_process", "--exact", "--ignored", "--nocapture"])
        .env(WORKER_DB, &url)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let worker_log = || std::fs::read_to_string(&log).unwrap_or_default();
    let docs: Vec<Document> = (0..N).map(|n| Document::new().with("n", n)).collect();
    for chunk in docs.chunks(50) {
        coll.insert_many(chunk.to_vec()).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while db.pending(None).unwrap() > 0 {
        if Instant::now() > deadline {
            let _ = worker.kill();
            panic!("the worker did not finish; its log:\n{}", worker_log());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // The worker process is still up after its models panicked and hung.
    let alive = worker.try_wait().unwrap().is_none();
    let _ = worker.kill();
    let _ = worker.wait();
    assert!(
        alive,
        "the worker process ended; its log:\n{}",
        worker_log()
    );

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

/// The worker process of the test above: with the functions registered, a worker on the
/// database named by `VIGIL_FAULTS_WORKER_DB`, until the test kills it. Ignored: it runs only
/// when the test starts it.
#[test]
#[ignore = "the worker process of a_model_that_panics_hangs_or_miscounts_fails_only_its_document"]
fn worker_process() {
    let url = std::env::var(WORKER_DB).expect("started by the fault test");
    register();
    let db = vigil::connect(&url).unwrap();
    let options = WorkerOptions::new()
        .batch_size(64)
        .time_limit(Duration::from_millis(400))
        .max_attempts(1)
        .idle_wait(Duration::from_millis(20));
    db.worker(options)
        .unwrap()
        .run(&AtomicBool::new(false))
        .unwrap();
}
