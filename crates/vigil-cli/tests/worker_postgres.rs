//! Workers that scale out on PostgreSQL: four writers insert the 10,000 digits concurrently
//! while three `vigil worker` processes share the queue; one is SIGKILLed mid-way and
//! restarted. Every committed document ends with exactly one output, of the current model
//! version. The server is `$VIGIL_TEST_POSTGRES`, by default
//! `postgres://postgres@127.0.0.1:5432/test`; each run has its own schema.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use vigil::{json, OutputCount, Value};

fn server() -> String {
    std::env::var("VIGIL_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

fn start_worker(url: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_vigil"))
        .env_remove("VIGIL_DB")
        .args(["--db", url, "worker", "--batch", "64", "--idle-ms", "50"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the worker starts")
}

fn stop(mut worker: Child) -> String {
    Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while worker.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "a worker ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = worker.wait_with_output().unwrap();
    assert!(out.status.success(), "worker exit {:?}", out.status);
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn four_writers_and_three_workers_one_killed_lose_nothing() {
    let backend = Arc::new(
        vigil::PostgresBackend::ephemeral(&server())
            .unwrap_or_else(|e| panic!("PostgreSQL at {} must answer: {e}", server())),
    );
    let url = format!("{}?schema={}", server(), backend.schema());
    let db = vigil::Options::new().with_backend(backend.clone());
    vigil_conformance::data::add_lenet5_onnx(&db, 64);
    db.listen("mnist", "img", "lenet5", json!({})).unwrap();

    let mut workers: Vec<Child> = (0..3).map(|_| start_worker(&url)).collect();
    let digits = vigil_conformance::data::documents(10_000);
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let db = db.clone();
            let mine: Vec<vigil::Document> = digits
                .iter()
                .enumerate()
                .filter(|(i, _)| i % 4 == w)
                .map(|(i, d)| d.clone().with("_id", i as i64))
                .collect();
            std::thread::spawn(move || {
                let mnist = db.collection("mnist").unwrap();
                for batch in mine.chunks(50) {
                    mnist.insert_many(batch.to_vec()).unwrap();
                }
            })
        })
        .collect();
    // Mid-way, one worker dies without a word and another takes its place.
    std::thread::sleep(Duration::from_millis(1500));
    let mut victim = workers.remove(0);
    victim.kill().unwrap();
    victim.wait().unwrap();
    workers.push(start_worker(&url));
    for w in writers {
        w.join().unwrap();
    }

    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let done: u64 = db
            .listener_status("mnist/img/lenet5")
            .unwrap()
            .outputs
            .iter()
            .map(|o| o.count)
            .sum();
        if done == 10_000 && db.pending(None).unwrap() == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "workers did not finish: {done} outputs"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let summaries: Vec<String> = workers.into_iter().map(stop).collect();
    let busy = summaries
        .iter()
        .filter(|s| !s.contains(" 0 outputs written"))
        .count();
    assert!(busy >= 2, "the work was shared: {summaries:?}");

    assert_eq!(
        db.listener_status("mnist/img/lenet5").unwrap().outputs,
        [OutputCount::new(1, 10_000)]
    );
    assert!(db.failures(None).unwrap().is_empty());
    let want = vigil_conformance::data::pytorch_predictions();
    let mnist = db.collection("mnist").unwrap();
    for doc in mnist
        .find(json!({"_id": {"$lt": 1000}}))
        .projection(json!({"img": 0}))
        .run()
        .unwrap()
    {
        let doc = doc.unwrap();
        let i = doc.id().and_then(Value::as_i64).unwrap() as usize;
        assert_eq!(
            doc.get_path("_outputs.img.lenet5"),
            Some(&Value::Int(want[i])),
            "digit {i}"
        );
    }
}
