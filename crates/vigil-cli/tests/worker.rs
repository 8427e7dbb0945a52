//! `vigil worker` as a separate process, on real SQLite files and the real MNIST digits:
//! writes from other processes and raw SQL clients get outputs; a worker SIGKILLed at random
//! moments, again and again, loses nothing; SIGTERM stops it cleanly.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use vigil::{json, Datalayer, OutputCount, Value};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn url(db: &Path) -> String {
    format!("sqlite://{}", db.display())
}

fn vigil_cmd(db: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vigil"));
    cmd.env_remove("VIGIL_DB")
        .arg("--db")
        .arg(url(db))
        .args(args);
    cmd
}

fn run(db: &Path, args: &[&str]) -> Output {
    let out = vigil_cmd(db, args).output().expect("the vigil binary runs");
    assert!(
        out.status.success(),
        "vigil {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn add_lenet5(db: &Datalayer) -> u32 {
    vigil_conformance::data::add_lenet5_onnx(db, 64)
}

fn outputs(db: &Datalayer) -> Vec<Option<i64>> {
    vigil_conformance::data::predictions(&db.collection("mnist").unwrap())
}

/// A small deterministic generator, so a failing run can be replayed from its seed.
struct Lcg(u64);
impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

fn start_worker(db: &Path) -> Child {
    vigil_cmd(db, &["worker", "--batch", "64", "--idle-ms", "20"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the worker starts")
}

#[test]
fn a_worker_killed_at_random_moments_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kill.db");
    let db = vigil::connect(&url(&path)).unwrap();
    let data = repo().join("data/mnist");
    run(&path, &["insert-mnist", "--data", data.to_str().unwrap()]);
    add_lenet5(&db);
    let on = db.listen("mnist", "img", "lenet5", json!({})).unwrap();
    assert_eq!(on.backfill.total, 10_000);

    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("kill schedule seed {seed}");
    let mut rng = Lcg(seed);
    let mut kills_mid_work = 0;
    let mut rolled = false;
    let mut written_before = 0;
    let mut progress = Vec::new();
    let started = Instant::now();
    while kills_mid_work < 20 || !rolled {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "the kill loop takes too long"
        );
        let mut worker = start_worker(&path);
        std::thread::sleep(Duration::from_millis(20 + rng.below(230)));
        worker.kill().unwrap(); // SIGKILL
        worker.wait().unwrap();
        let pending = db.pending(None).unwrap();
        let written: u64 = db
            .listener_status("mnist/img/lenet5")
            .unwrap()
            .outputs
            .iter()
            .map(|o| o.count)
            .sum();
        if pending > 0 {
            kills_mid_work += 1;
        }
        // Half way (or when the first version is done), a new model version is rolled on:
        // every output must end up of it.
        if !rolled && (kills_mid_work == 10 || pending == 0) {
            assert_eq!(add_lenet5(&db), 2);
            db.roll_listener("mnist/img/lenet5", None).unwrap();
            rolled = true;
        } else if pending == 0 {
            break;
        }
        written_before = written_before.max(written);
        progress.push(format!("{written}/{pending}"));
    }
    eprintln!("outputs/queued after each kill: {}", progress.join(" "));
    assert!(rolled, "the roll happened");
    assert!(
        kills_mid_work >= 20,
        "only {kills_mid_work} kills hit a worker with work left"
    );
    assert!(written_before > 0, "killed workers made progress");

    // A last worker finishes; claims of the killed ones are released at its start.
    let out = run(&path, &["worker", "--once"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("worker stopped"), "{stderr}");
    assert_eq!(db.pending(None).unwrap(), 0);
    assert_eq!(
        db.listener_status("mnist/img/lenet5").unwrap().outputs,
        [OutputCount::new(2, 10_000)],
        "exactly one output per document, all of the current version"
    );
    assert!(db.failures(None).unwrap().is_empty());
    let outs = outputs(&db);
    assert_eq!(outs.len(), 10_000);
    assert!(outs.iter().all(Option::is_some));
    let want = vigil_conformance::data::pytorch_predictions();
    for (i, (got, want)) in outs.iter().zip(&want).enumerate() {
        assert_eq!(got, &Some(*want), "digit {i}");
    }
}

#[test]
fn writes_from_other_processes_and_raw_sql_get_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clients.db");
    let db = vigil::connect(&url(&path)).unwrap();
    add_lenet5(&db);
    db.listen("mnist", "img", "lenet5", json!({})).unwrap();
    let worker = vigil_cmd(&path, &["worker", "--idle-ms", "10"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // A second process inserts 300 digits.
    let data = repo().join("data/mnist");
    run(
        &path,
        &[
            "insert-mnist",
            "--data",
            data.to_str().unwrap(),
            "--limit",
            "300",
        ],
    );
    // A plain SQLite client inserts one more in the documented storage format: a digit's PNG
    // bytes in `blobs`, a placeholder in `doc`.
    let digit = &vigil_datasets::mnist::read_dir(&data)
        .unwrap()
        .take(301)
        .last()
        .unwrap()
        .unwrap();
    let png = digit.to_document().unwrap().get("img").unwrap().clone();
    let Value::Encoded(png) = png else {
        unreachable!("digits are PNG")
    };
    let raw = rusqlite::Connection::open(&path).unwrap();
    raw.busy_timeout(Duration::from_secs(10)).unwrap();
    raw.execute(
        "INSERT INTO mnist (id, doc, blobs) VALUES ('raw-1', ?, ?)",
        rusqlite::params![
            format!(
                r#"{{"img": {{"$codec": "image/png", "$blob": [0, {}]}}, "class": {}, "_fold": "train"}}"#,
                png.bytes().len(),
                digit.label
            ),
            png.bytes()
        ],
    )
    .unwrap();

    // The worker catches up on its own.
    let deadline = Instant::now() + Duration::from_secs(60);
    while db.pending(None).unwrap() > 0
        || db.collection("mnist").unwrap().count(json!({})).unwrap() != 301
    {
        assert!(Instant::now() < deadline, "the worker did not catch up");
        std::thread::sleep(Duration::from_millis(20));
    }
    let outs = outputs(&db);
    assert_eq!(outs.len(), 301);
    let want = vigil_conformance::data::pytorch_predictions();
    for (i, got) in outs.iter().enumerate() {
        assert_eq!(got, &Some(want[i]), "digit {i}");
    }
    let raw_doc = db
        .collection("mnist")
        .unwrap()
        .find_one(json!({"_id": "raw-1"}))
        .unwrap()
        .unwrap();
    assert_eq!(
        raw_doc.get_path("_outputs.img.lenet5"),
        Some(&Value::Int(want[300]))
    );

    // SIGTERM: the worker finishes its batch and exits cleanly with a summary.
    let status = Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = worker.wait_with_output().unwrap();
    assert!(out.status.success(), "exit status {:?}", out.status);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("worker stopped"), "{stderr}");
    assert!(stderr.contains("301 outputs written"), "{stderr}");

    // The CLI shows the listener, its jobs and (no) errors.
    let show =
        String::from_utf8(run(&path, &["show", "listener", "mnist/img/lenet5"]).stdout).unwrap();
    assert!(show.contains("outputs: 301 of version 1"), "{show}");
    let jobs = String::from_utf8(run(&path, &["jobs"]).stdout).unwrap();
    assert!(
        jobs.contains("backfill\tmnist/img/lenet5\tsuccess\t0/0"),
        "{jobs}"
    );
    assert!(
        jobs.contains("predict\tmnist/img/lenet5\tsuccess"),
        "{jobs}"
    );
    let errors = String::from_utf8(run(&path, &["errors"]).stdout).unwrap();
    assert_eq!(errors, "no errors\n");
}

#[test]
fn errors_are_listed_with_their_reason() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("errors.db");
    let db = vigil::connect(&url(&path)).unwrap();
    add_lenet5(&db);
    let mnist = db.collection("mnist").unwrap();
    mnist
        .insert_one(json!({"_id": "no-image", "class": 3}))
        .unwrap();
    run(
        &path,
        &[
            "listen",
            "mnist",
            "img",
            "lenet5",
            "--select",
            r#"{"class": 3}"#,
        ],
    );
    run(
        &path,
        &[
            "worker",
            "--once",
            "--max-attempts",
            "1",
            "--backoff-ms",
            "1",
        ],
    );
    let errors = String::from_utf8(run(&path, &["errors"]).stdout).unwrap();
    assert!(
        errors.contains("mnist/img/lenet5\t\"no-image\"\t1\tparked"),
        "{errors}"
    );
    assert!(errors.contains("field `img` is missing"), "{errors}");
}
