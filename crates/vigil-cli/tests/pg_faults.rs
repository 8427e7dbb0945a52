//! PostgreSQL server faults under running workers, in a cluster of the test's own (`initdb` in
//! a temporary folder, `pg_ctl` on a free port), so the shared server is never disturbed.
//! While two `vigil worker` processes backfill and a writer inserts one document at a time,
//! the server is killed (SIGKILL to the postmaster) and restarted, paused (SIGSTOP to every
//! server process) for longer than the workers' lease and resumed, and has every client
//! connection terminated (`pg_terminate_backend`). The workers carry on without help; the
//! writer gets clear errors during the outage; at the end every committed document has exactly
//! one output of the current model version, and no document the writer was told was committed
//! is missing.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vigil::{json, OutputCount};

/// The directory of PostgreSQL's server programs (`initdb`, `pg_ctl`).
fn bin_dir() -> PathBuf {
    let out = Command::new("pg_config").arg("--bindir").output();
    if let Some(out) = out.ok().filter(|o| o.status.success()) {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return dir;
        }
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL's server programs are installed (/usr/lib/postgresql)")
        .map(|e| e.unwrap().path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop().expect("initdb is installed")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A throwaway PostgreSQL cluster, stopped and removed on drop.
struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
}

impl Cluster {
    /// Runs a server program, as the `postgres` user when this test runs as root (the server
    /// refuses to run as root).
    fn run(&self, program: &str, args: &[&str]) -> std::process::Output {
        let exe = self.bin.join(program);
        let mut cmd = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        cmd.args(args).output().expect("a server program runs")
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn start() -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("vigil-pg-")
            .tempdir()
            .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cluster = Cluster {
            dir,
            bin: bin_dir(),
            port,
        };
        if is_root() {
            let ok = Command::new("chown")
                .args(["-R", "postgres"])
                .arg(cluster.dir.path())
                .status()
                .unwrap();
            assert!(ok.success());
        }
        let data = cluster.data();
        let out = cluster.run(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        cluster.pg_ctl_start();
        cluster
    }

    fn pg_ctl_start(&self) {
        let data = self.data();
        let log = self.dir.path().join("server.log");
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        // After a SIGKILL, the old server processes may take a moment to notice and leave.
        for attempt in 0.. {
            let out = self.run(
                "pg_ctl",
                &[
                    "-D",
                    data.to_str().unwrap(),
                    "-l",
                    log.to_str().unwrap(),
                    "-o",
                    &options,
                    "-w",
                    "start",
                ],
            );
            if out.status.success() {
                return;
            }
            assert!(
                attempt < 30,
                "pg_ctl start: {}\n{}",
                String::from_utf8_lossy(&out.stderr),
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn postmaster(&self) -> u32 {
        let pid = std::fs::read_to_string(self.data().join("postmaster.pid")).unwrap();
        pid.lines().next().unwrap().trim().parse().unwrap()
    }

    /// The postmaster and every process it started.
    fn processes(&self) -> Vec<u32> {
        let root = self.postmaster();
        let mut pids = vec![root];
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // `pid (comm) state ppid …`: comm may hold spaces, so read after the last ')'.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if ppid == Some(root) {
                pids.push(pid);
            }
        }
        pids
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.data();
        let _ = self.run(
            "pg_ctl",
            &["-D", data.to_str().unwrap(), "-m", "immediate", "stop"],
        );
    }
}

fn signal(pids: &[u32], sig: &str) {
    for pid in pids {
        let _ = Command::new("kill").args([sig, &pid.to_string()]).status();
    }
}

fn start_worker(url: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_vigil"))
        .env_remove("VIGIL_DB")
        .args([
            "--db",
            url,
            "worker",
            "--batch",
            "64",
            "--idle-ms",
            "50",
            "--lease-ms",
            "2000",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the worker starts")
}

/// Retries a read of the test's own until the server answers again.
fn retry<T>(what: &str, f: impl Fn() -> vigil::Result<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match f() {
            Ok(v) => return v,
            Err(e) => {
                assert!(Instant::now() < deadline, "{what}: {e}");
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

fn wait_for_progress(db: &vigil::Datalayer, at_least: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while retry("counting outputs", || {
        db.listener_status("mnist/img/lenet5")
    })
    .outputs
    .iter()
    .map(|o| o.count)
    .sum::<u64>()
        < at_least
    {
        assert!(
            Instant::now() < deadline,
            "no progress past {at_least} outputs"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn workers_ride_out_a_killed_a_paused_and_a_disconnected_server() {
    let cluster = Cluster::start();
    let url = cluster.url();
    let db = vigil::connect(&url).unwrap();
    vigil_conformance::data::add_lenet5_onnx(&db, 64);
    let mnist = db.collection("mnist").unwrap();
    let docs = vigil_conformance::data::documents(4000);
    mnist.insert_many(docs[..3000].to_vec()).unwrap();
    db.listen("mnist", "img", "lenet5", json!({})).unwrap();
    let workers: Vec<Child> = (0..2).map(|_| start_worker(&url)).collect();

    // A writer inserting one document at a time throughout, keeping the ids it was told were
    // committed, and the errors it got.
    let stop = Arc::new(AtomicBool::new(false));
    let committed = Arc::new(Mutex::new(Vec::<i64>::new()));
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let writer = {
        let (stop, committed, errors) = (stop.clone(), committed.clone(), errors.clone());
        let late: Vec<vigil::Document> = docs[3000..].to_vec();
        let url = url.clone();
        std::thread::spawn(move || {
            let db = vigil::connect(&url).unwrap();
            let mnist = db.collection("mnist").unwrap();
            for (i, doc) in late.into_iter().enumerate() {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let id = 1_000_000 + i as i64;
                match mnist.insert_one(doc.with("_id", id)) {
                    Ok(_) => committed.lock().unwrap().push(id),
                    Err(e) => errors.lock().unwrap().push(e.to_string()),
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };

    // 1. The server is killed mid-backfill, then restarted.
    wait_for_progress(&db, 300);
    signal(&[cluster.postmaster()], "-KILL");
    std::thread::sleep(Duration::from_millis(1500));
    cluster.pg_ctl_start();

    // 2. The server is paused for longer than the workers' lease (2 s), then resumed.
    wait_for_progress(&db, 1200);
    let paused = cluster.processes();
    signal(&paused, "-STOP");
    std::thread::sleep(Duration::from_secs(4));
    signal(&paused, "-CONT");

    // 3. Every client connection is terminated.
    wait_for_progress(&db, 2000);
    let terminated = retry("terminating connections", || {
        let fail = |e: postgres::Error| vigil::Error::io("terminating", std::io::Error::other(e));
        let mut client = postgres::Client::connect(&url, postgres::NoTls).map_err(fail)?;
        client
            .execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'",
                &[],
            )
            .map_err(fail)
    });
    assert!(terminated >= 2, "the workers' connections were terminated");

    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let committed = committed.lock().unwrap().clone();
    let errors = errors.lock().unwrap().clone();
    let db = vigil::connect(&url).unwrap();
    // An insert whose connection broke during its commit cannot know whether it committed:
    // it returned an error, yet may be there. Every acknowledged one must be.
    let total = retry("counting documents", || {
        db.collection("mnist").unwrap().count(json!({}))
    });
    let acknowledged = 3000 + committed.len() as u64;
    assert!(
        (acknowledged..=acknowledged + errors.len() as u64).contains(&total),
        "{total} documents for {acknowledged} acknowledged inserts and {} errors",
        errors.len()
    );

    // The workers finish the work by themselves.
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let status = retry("status", || db.listener_status("mnist/img/lenet5"));
        let outputs: u64 = status.outputs.iter().map(|o| o.count).sum();
        if status.pending == 0 && outputs == total {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "workers stalled: {outputs}/{total} outputs, {} pending",
            status.pending
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    for mut w in workers {
        signal(&[w.id()], "-TERM");
        let status = w.wait().unwrap();
        let mut stderr = String::new();
        use std::io::Read;
        w.stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        assert!(status.success(), "a worker failed: {stderr}");
        assert!(
            stderr.contains("retrying"),
            "the worker saw the outage: {stderr}"
        );
    }

    let mnist = db.collection("mnist").unwrap();
    assert_eq!(mnist.count(json!({})).unwrap(), total);
    let ids: Vec<serde_json::Value> = committed.iter().map(|&i| json!(i)).collect();
    assert_eq!(
        mnist.count(json!({"_id": {"$in": ids}})).unwrap(),
        committed.len() as u64,
        "a committed document is missing"
    );
    assert_eq!(
        db.listener_status("mnist/img/lenet5").unwrap().outputs,
        [OutputCount::new(1, total)]
    );
    assert!(db.failures(None).unwrap().is_empty());
    assert!(
        errors.iter().all(|e| e.contains("postgres")),
        "writers get errors naming the server: {errors:?}"
    );
    assert!(!errors.is_empty(), "the writer saw the outage");
    assert!(committed.len() > 50, "the writer wrote throughout");
}
