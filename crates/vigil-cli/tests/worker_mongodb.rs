//! `vigil worker` as a separate process on a MongoDB-wire server, with the real MNIST digits:
//! a worker SIGKILLed at random moments, again and again, loses and duplicates nothing; a
//! server killed and restarted mid-backfill loses nothing either; documents written by
//! pymongo in another process get their predictions; a change stream position fallen off the
//! oplog re-scans; a transaction left open by a dead process holds nothing up for good;
//! `vigil demo mnist` runs to its summary.
//!
//! The shared server is `$VIGIL_TEST_MONGODB` (by default `mongodb://127.0.0.1:27017`); each
//! test has a database of its own. The restart test starts a server of its own with
//! SecantusDB's `secantusd-py` (`$VIGIL_SECANTUSD`, else the CI virtualenv's), and the pymongo
//! test runs `$VIGIL_PYTHON` (else the CI virtualenv's python). What is missing fails the test.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use vigil::{json, Datalayer, MongoBackend, OutputCount};

fn server() -> String {
    std::env::var("VIGIL_TEST_MONGODB").unwrap_or_else(|_| "mongodb://127.0.0.1:27017".into())
}

/// How long any one of these tests may run (the kill test takes about 3 minutes on 2 cores).
const LIMIT_S: u64 = 15 * 60;

/// Ends the whole test process, with a message, if the test holding the returned guard is
/// still running after `limit`. A MongoDB-wire server that stops answering would otherwise
/// hang the driver's calls, the test, and the CI run behind it, for good; a test that fails
/// in minutes says what hung.
#[must_use]
fn watchdog(test: &'static str, limit: Duration) -> std::sync::mpsc::Sender<()> {
    let (guard, done) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = done.recv_timeout(limit) {
            eprintln!(
                "{test} still running after {} s: the MongoDB server at {} may have stopped \
                 answering; ending the test process",
                limit.as_secs(),
                server()
            );
            std::process::exit(3);
        }
    });
    guard
}

fn venv_bin(name: &str, var: &str) -> PathBuf {
    std::env::var(var).map(PathBuf::from).unwrap_or_else(|_| {
        PathBuf::from(std::env::var("HOME").unwrap()).join(format!(".cache/vigil-venv/bin/{name}"))
    })
}

/// A database of its own on `server`, dropped when the backend is; with its URL.
fn fresh(server: &str) -> (Datalayer, String) {
    let backend = MongoBackend::ephemeral(server)
        .unwrap_or_else(|e| panic!("a MongoDB server at {server} must answer: {e}"));
    let url = format!("{server}/{}", backend.database_name());
    (vigil::Options::new().with_backend(Arc::new(backend)), url)
}

fn start_worker(url: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_vigil"))
        .env_remove("VIGIL_DB")
        .args(["--db", url, "worker", "--batch", "64", "--idle-ms", "20"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the worker starts")
}

fn total_outputs(db: &Datalayer) -> u64 {
    db.listener_status("mnist/img/lenet5")
        .unwrap()
        .outputs
        .iter()
        .map(|o| o.count)
        .sum()
}

/// Every document has exactly one output, of `version`, equal to PyTorch's for the first
/// 1,000; nothing is queued or failed.
fn check_all(db: &Datalayer, n: usize, version: u32) {
    assert_eq!(db.pending(None).unwrap(), 0);
    assert_eq!(
        db.listener_status("mnist/img/lenet5").unwrap().outputs,
        [OutputCount::new(version, n as u64)],
        "exactly one output per document, all of version {version}"
    );
    assert!(db.failures(None).unwrap().is_empty());
    let mnist = db.collection("mnist").unwrap();
    let want = vigil_conformance::data::pytorch_predictions();
    for (i, want) in want.iter().enumerate().take(n) {
        let doc = mnist.find_one(json!({"_id": i as i64})).unwrap().unwrap();
        let got = doc
            .get_path("_outputs.img.lenet5")
            .and_then(vigil::Value::as_i64);
        assert_eq!(got, Some(*want), "digit {i}");
    }
}

fn insert_digits(db: &Datalayer, n: usize) {
    let docs: Vec<vigil::Document> = vigil_conformance::data::documents(n)
        .into_iter()
        .enumerate()
        .map(|(i, d)| d.with("_id", i as i64))
        .collect();
    let mnist = db.collection("mnist").unwrap();
    for chunk in docs.chunks(1000) {
        mnist.insert_many(chunk.to_vec()).unwrap();
    }
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

#[test]
fn a_worker_killed_at_random_moments_loses_nothing_on_mongodb() {
    let _watch = watchdog(
        "a_worker_killed_at_random_moments_loses_nothing_on_mongodb",
        Duration::from_secs(LIMIT_S),
    );
    const N: usize = 5000;
    let (db, url) = fresh(&server());
    insert_digits(&db, N);
    vigil_conformance::data::add_lenet5_onnx(&db, 64);
    let on = db.listen("mnist", "img", "lenet5", json!({})).unwrap();
    assert_eq!(on.backfill.total, N as u64);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("kill schedule seed {seed}");
    let mut rng = Lcg(seed);
    let (mut kills_mid_work, mut rolled, mut progress) = (0, false, Vec::new());
    let mut written_before = 0;
    let started = Instant::now();
    while kills_mid_work < 20 || !rolled {
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "the kill loop takes too long: {}",
            progress.join(" ")
        );
        let before = total_outputs(&db);
        let mut worker = start_worker(&url);
        if progress.len() % 2 == 0 {
            // Every other worker is killed soon after it applied a batch (however slow the
            // machine), so kills land mid-backfill with progress between them...
            let deadline = Instant::now() + Duration::from_secs(120);
            while total_outputs(&db) == before && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            std::thread::sleep(Duration::from_millis(rng.below(300)));
        } else {
            // ...and the others at a random moment, often before their first batch applies.
            std::thread::sleep(Duration::from_millis(300 + rng.below(1500)));
        }
        worker.kill().unwrap(); // SIGKILL
        worker.wait().unwrap();
        let pending = db.pending(None).unwrap();
        if pending > 0 {
            kills_mid_work += 1;
        }
        // Half way, a new model version is rolled on: every output must end up of it.
        if !rolled && (kills_mid_work == 10 || pending == 0) {
            assert_eq!(vigil_conformance::data::add_lenet5_onnx(&db, 64), 2);
            db.roll_listener("mnist/img/lenet5", None).unwrap();
            rolled = true;
        } else if pending == 0 {
            break;
        }
        let written = total_outputs(&db);
        written_before = written_before.max(written);
        progress.push(format!("{written}/{pending}"));
    }
    eprintln!("outputs/queued after each kill: {}", progress.join(" "));
    assert!(
        kills_mid_work >= 20,
        "only {kills_mid_work} kills hit a worker with work left"
    );
    assert!(written_before > 0, "killed workers made progress");
    // A last worker finishes; claims of the killed ones are released at its start.
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .env_remove("VIGIL_DB")
        .args(["--db", &url, "worker", "--once"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    check_all(&db, N, 2);
}

/// A SecantusDB server of the test's own, on a free port, killable and restartable.
struct OwnServer {
    port: u16,
    dir: tempfile::TempDir,
    args: Vec<String>,
    child: Option<Child>,
}

impl OwnServer {
    fn start() -> OwnServer {
        OwnServer::start_with(&[])
    }

    /// A server started with extra command-line arguments.
    fn start_with(args: &[&str]) -> OwnServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut server = OwnServer {
            port,
            dir: tempfile::tempdir().unwrap(),
            args: args.iter().map(|a| a.to_string()).collect(),
            child: None,
        };
        server.run();
        server
    }

    fn run(&mut self) {
        let bin = venv_bin("secantusd-py", "VIGIL_SECANTUSD");
        let child = Command::new(&bin)
            .args(["--port", &self.port.to_string(), "--storage-path"])
            .arg(self.dir.path())
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{} must run: {e}", bin.display()));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "the server did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap(); // SIGKILL
            c.wait().unwrap();
        }
    }

    fn url(&self) -> String {
        format!("mongodb://127.0.0.1:{}", self.port)
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        self.kill();
    }
}

#[test]
fn a_server_killed_and_restarted_mid_backfill_loses_nothing() {
    let _watch = watchdog(
        "a_server_killed_and_restarted_mid_backfill_loses_nothing",
        Duration::from_secs(LIMIT_S),
    );
    const N: usize = 2000;
    let mut own = OwnServer::start();
    let url = format!("{}/vigil_restart", own.url());
    let db = vigil::connect(&url).unwrap();
    insert_digits(&db, N);
    vigil_conformance::data::add_lenet5_onnx(&db, 64);
    db.listen("mnist", "img", "lenet5", json!({})).unwrap();
    let mut workers: Vec<Child> = (0..2).map(|_| start_worker(&url)).collect();
    // Mid-backfill, the server dies without a word and comes back on the same storage.
    let deadline = Instant::now() + Duration::from_secs(120);
    while total_outputs(&db) < 200 {
        assert!(Instant::now() < deadline, "the workers made no progress");
        std::thread::sleep(Duration::from_millis(50));
    }
    own.kill();
    std::thread::sleep(Duration::from_millis(1500));
    own.run();
    // The workers carry on by themselves.
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let pending = db.pending(None);
        if matches!(pending, Ok(0)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the workers did not finish: {pending:?}"
        );
        for w in &mut workers {
            assert!(
                w.try_wait().unwrap().is_none(),
                "a worker died with the server"
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    for mut w in workers {
        w.kill().unwrap();
        w.wait().unwrap();
    }
    check_all(&db, N, 1);
}

#[test]
fn a_change_stream_position_fallen_off_the_oplog_rescans_and_says_so() {
    let _watch = watchdog(
        "a_change_stream_position_fallen_off_the_oplog_rescans_and_says_so",
        Duration::from_secs(LIMIT_S),
    );
    // A server keeping only the last 5,000 changes (room for a batch's own writes, which a
    // far smaller oplog would push out between two reads): the stored position falls off
    // while no vigil process reads the stream.
    let own = OwnServer::start_with(&["--oplog-max-entries", "5000"]);
    let url = format!("{}/vigil_rescan", own.url());
    let db = vigil::connect(&url).unwrap();
    insert_digits(&db, 200);
    vigil_conformance::data::add_lenet5_onnx(&db, 64);
    db.listen("mnist", "img", "lenet5", json!({})).unwrap();
    db.process_pending().unwrap();
    assert_eq!(total_outputs(&db), 200);
    // Meanwhile, unread: ten digits deleted, 100 inserted, and 8,000 writes elsewhere.
    let mnist = db.collection("mnist").unwrap();
    assert_eq!(mnist.delete_many(json!({"_id": {"$lt": 10}})).unwrap(), 10);
    let more: Vec<vigil::Document> = vigil_conformance::data::documents(300)
        .into_iter()
        .enumerate()
        .skip(200)
        .map(|(i, d)| d.with("_id", i as i64))
        .collect();
    mnist.insert_many(more).unwrap();
    let noise: Vec<vigil::Document> = (0..8000)
        .map(|i| vigil::Document::new().with("i", i as i64))
        .collect();
    db.collection("noise").unwrap().insert_many(noise).unwrap();
    // The next read of the stream finds its position gone: every document the select
    // matches, and every one holding an output, is queued again, and a job says why.
    db.process_pending().unwrap();
    let rescans: Vec<_> = db
        .jobs(50)
        .unwrap()
        .into_iter()
        .filter(|j| j.kind == "rescan")
        .collect();
    assert_eq!(rescans.len(), 1, "one rescan job");
    let why = rescans[0].error.clone().unwrap_or_default();
    assert!(why.contains("no longer in the server's oplog"), "{why}");
    assert_eq!(
        rescans[0].total,
        290 + 10,
        "the selected, and the deleted holding outputs"
    );
    assert_eq!(db.pending(None).unwrap(), 0);
    assert_eq!(
        db.listener_status("mnist/img/lenet5").unwrap().outputs,
        [OutputCount::new(1, 290)],
        "the deleted documents' outputs went, the unread inserts got theirs"
    );
    let want = vigil_conformance::data::pytorch_predictions();
    for (i, want) in want.iter().enumerate().take(300) {
        let doc = mnist.find_one(json!({"_id": i as i64})).unwrap();
        let got = doc.and_then(|d| {
            d.get_path("_outputs.img.lenet5")
                .and_then(vigil::Value::as_i64)
        });
        assert_eq!(got, (i >= 10).then_some(*want), "digit {i}");
    }
}

/// A process that died inside a transaction holding every queue entry and the change
/// stream's position: pymongo in another process opens the transaction, and is SIGKILLed. With
/// `record`, it had recorded its session as a vigil process does (`vigil_sessions`), so a
/// process of the same host can end it; without, only the server can, when the transaction's
/// lifetime (60 s by default) runs out. Returns how long `vigil worker --once` took to finish
/// the backfill after it; every case ends with exactly one output per digit.
fn worker_after_a_dead_transaction(record: bool) -> Duration {
    const N: usize = 300;
    let (db, url) = fresh(&server());
    insert_digits(&db, N);
    vigil_conformance::data::add_lenet5_onnx(&db, 64);
    db.listen("mnist", "img", "lenet5", json!({})).unwrap();
    let script = r#"
import os, socket, sys, time, pymongo
url, name, record = sys.argv[1], sys.argv[2], sys.argv[3] == "record"
client = pymongo.MongoClient(url)
db = client[name]
s = client.start_session()
if record:
    owner = f"{socket.gethostname()}:{os.getpid()}:0"
    db.vigil_sessions.insert_one({"_id": s.session_id["id"], "owner": owner, "lsid": s.session_id})
s.start_transaction()
held = db.vigil_queue.update_many({}, {"$set": {"held": True}}, session=s).modified_count
db.vigil_capture.update_many({}, {"$set": {"held": True}}, session=s)
print(held, flush=True)
time.sleep(3600)
"#;
    let python = venv_bin("python", "VIGIL_PYTHON");
    let name = url.rsplit('/').next().unwrap();
    let mut holder = Command::new(&python)
        .args(["-c", script, &server(), name])
        .arg(if record { "record" } else { "no" })
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{} must run: {e}", python.display()));
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(
        line.trim(),
        N.to_string(),
        "the transaction holds every entry"
    );
    holder.kill().unwrap(); // SIGKILL: the transaction stays open in the server
    holder.wait().unwrap();
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .env_remove("VIGIL_DB")
        .args(["--db", &url, "worker", "--once"])
        .output()
        .unwrap();
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    check_all(&db, N, 1);
    took
}

#[test]
fn a_transaction_left_open_by_a_dead_process_of_this_host_is_ended() {
    let _watch = watchdog(
        "a_transaction_left_open_by_a_dead_process_of_this_host_is_ended",
        Duration::from_secs(LIMIT_S),
    );
    let took = worker_after_a_dead_transaction(true);
    // Ended by the worker, not by the server's lifetime limit (60 s): it did not wait that.
    assert!(
        took < Duration::from_secs(45),
        "the worker waited {took:?} for the dead transaction"
    );
}

#[test]
fn a_transaction_left_open_by_an_unknown_process_is_waited_out() {
    let _watch = watchdog(
        "a_transaction_left_open_by_an_unknown_process_is_waited_out",
        Duration::from_secs(LIMIT_S),
    );
    // Before, a plain write behind it waited for good on SecantusDB, and `vigil worker
    // --once` with it: the server aborts such a transaction only when another one's statement
    // arrives, and nothing else was running.
    worker_after_a_dead_transaction(false);
}

#[test]
fn the_demo_runs_to_its_summary_on_mongodb() {
    let _watch = watchdog(
        "the_demo_runs_to_its_summary_on_mongodb",
        Duration::from_secs(LIMIT_S),
    );
    let (db, url) = fresh(&server());
    let out_dir = tempfile::tempdir().unwrap();
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist");
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .env_remove("VIGIL_DB")
        .args([
            "--db", &url, "demo", "mnist", "--limit", "1000", "--epochs", "1",
        ])
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(out_dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("stored 900 digits"), "{text}");
    assert!(
        text.contains("backfill:                900 documents, 2 listeners"),
        "{text}"
    );
    assert!(text.contains("late inserts predicted:  100/100"), "{text}");
    assert!(text.contains("digits like late insert"), "{text}");
    // What the summary says is what the database holds: every digit predicted, once.
    assert_eq!(db.pending(None).unwrap(), 0);
    for listener in ["mnist/img/lenet5", "mnist/img/lenet5-features"] {
        let outputs = db.listener_status(listener).unwrap().outputs;
        assert_eq!(outputs.len(), 1, "{listener}: one model version");
        assert_eq!(outputs[0].count, 1000, "{listener}: one output per digit");
    }
    let mnist = db.collection("mnist").unwrap();
    assert_eq!(
        mnist
            .count(json!({"_outputs.img.lenet5": {"$exists": true}}))
            .unwrap(),
        1000
    );
}

#[test]
fn documents_written_by_pymongo_get_predictions_from_a_running_worker() {
    let _watch = watchdog(
        "documents_written_by_pymongo_get_predictions_from_a_running_worker",
        Duration::from_secs(LIMIT_S),
    );
    let (db, url) = fresh(&server());
    vigil_conformance::data::add_lenet5_onnx(&db, 64);
    db.listen("mnist", "img", "lenet5", json!({})).unwrap();
    let mut worker = start_worker(&url);
    // Another process, another client: pymongo inserts digits as any MongoDB user would,
    // in vigil's format (PNG bytes as Binary with their codec beside them), then updates one.
    let dir = tempfile::tempdir().unwrap();
    let digits = vigil_conformance::data::documents(50);
    for (i, d) in digits.iter().enumerate() {
        let vigil::Value::Encoded(png) = d.get("img").unwrap() else {
            panic!("a digit is an encoded image")
        };
        std::fs::write(dir.path().join(format!("{i}.png")), png.bytes()).unwrap();
    }
    let script = r#"
import sys, pymongo, bson
url, db_name, folder = sys.argv[1], sys.argv[2], sys.argv[3]
coll = pymongo.MongoClient(url)[db_name]["mnist"]
docs = []
for i in range(50):
    data = open(f"{folder}/{i}.png", "rb").read()
    docs.append({"_id": i, "img": {"_codec": "image/png", "_bytes": bson.Binary(data)}})
coll.insert_many(docs)
# Digit 49 gets digit 0's image: its prediction must follow.
first = coll.find_one({"_id": 0})
coll.update_one({"_id": 49}, {"$set": {"img": first["img"]}})
"#;
    let python = venv_bin("python", "VIGIL_PYTHON");
    let name = url.rsplit('/').next().unwrap();
    let status = Command::new(&python)
        .args(["-c", script, &server(), name])
        .arg(dir.path())
        .status()
        .unwrap_or_else(|e| panic!("{} must run: {e}", python.display()));
    assert!(status.success());
    let want = vigil_conformance::data::pytorch_predictions();
    let mnist = db.collection("mnist").unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let done = (0..50).all(|i| {
            let doc = mnist.find_one(json!({"_id": i})).unwrap().unwrap();
            let want = if i == 49 { want[0] } else { want[i as usize] };
            doc.get_path("_outputs.img.lenet5")
                .and_then(vigil::Value::as_i64)
                == Some(want)
        });
        if done {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "pymongo's documents got no predictions"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    worker.kill().unwrap();
    worker.wait().unwrap();
    assert_eq!(
        db.listener_status("mnist/img/lenet5").unwrap().outputs,
        [OutputCount::new(1, 50)]
    );
}
