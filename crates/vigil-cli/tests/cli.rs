//! The `vigil` binary as a user runs it, on real SQLite files and the real MNIST digits.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn data() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist")
}

fn vigil(db: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vigil"))
        .env_remove("VIGIL_DB")
        .arg("--db")
        .arg(format!("sqlite://{}", db.display()))
        .args(args)
        .output()
        .expect("the vigil binary runs")
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn labels() -> Vec<u8> {
    vigil_datasets::mnist::read_dir(data())
        .unwrap()
        .map(|d| d.unwrap().label)
        .collect()
}

#[test]
fn insert_count_and_find_on_real_digits() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cli.db");
    let data = data();
    let data = data.to_str().unwrap();
    let out = stdout(&vigil(
        &db,
        &["insert-mnist", "--data", data, "--limit", "600"],
    ));
    assert!(out.contains("inserted 600 digits into `mnist`"), "{out}");
    let out = stdout(&vigil(
        &db,
        &[
            "insert-mnist",
            "--data",
            data,
            "--offset",
            "9900",
            "--collection",
            "late",
        ],
    ));
    assert!(out.contains("inserted 100 digits into `late`"), "{out}");
    assert_eq!(stdout(&vigil(&db, &["count", "mnist"])), "600\n");
    let sevens = labels()[..600].iter().filter(|&&l| l == 7).count();
    assert_eq!(
        stdout(&vigil(&db, &["count", "mnist", r#"{"class": 7}"#])),
        format!("{sevens}\n")
    );
    let late_sevens = labels()[9900..].iter().filter(|&&l| l == 7).count();
    assert_eq!(
        stdout(&vigil(
            &db,
            &["count", "late", r#"{"class": {"$in": [7]}}"#]
        )),
        format!("{late_sevens}\n")
    );
    assert_eq!(stdout(&vigil(&db, &["collections"])), "late\nmnist\n");

    let human = stdout(&vigil(
        &db,
        &["find", "mnist", r#"{"class": 3}"#, "--limit", "2"],
    ));
    let lines: Vec<&str> = human.lines().collect();
    assert_eq!(lines.len(), 2);
    assert!(
        lines[0].contains("img: <image/png 28x28") && lines[0].contains("class: 3"),
        "{}",
        lines[0]
    );

    let json = stdout(&vigil(
        &db,
        &[
            "find",
            "mnist",
            r#"{"class": {"$gte": 8}}"#,
            "--limit",
            "1000",
            "--json",
        ],
    ));
    let docs: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        docs.len(),
        labels()[..600].iter().filter(|&&l| l >= 8).count()
    );
    assert!(docs.iter().all(|d| d["class"].as_i64().unwrap() >= 8));
    assert_eq!(docs[0]["img"]["$codec"], "image/png");
    use base64::Engine as _;
    let png = base64::engine::general_purpose::STANDARD
        .decode(docs[0]["img"]["$base64"].as_str().unwrap())
        .unwrap();
    assert_eq!(&png[1..4], b"PNG");

    let sorted = stdout(&vigil(
        &db,
        &[
            "find",
            "mnist",
            "--sort",
            r#"{"class": -1}"#,
            "--projection",
            r#"{"class": 1, "_id": 0}"#,
            "--limit",
            "1",
            "--json",
        ],
    ));
    assert_eq!(sorted.trim(), r#"{"class":9}"#);
}

#[test]
fn errors_go_to_stderr_with_a_failing_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("errors.db");
    for (args, expected) in [
        (
            vec!["count", "mnist", "{not json"],
            "the filter is not valid JSON",
        ),
        (
            vec!["count", "mnist", r#"{"class": {"$where": "7"}}"#],
            "unsupported operator `$where`",
        ),
        (
            vec!["find", "mnist", r#"{"class": {"$in": 7}}"#],
            "expects an array",
        ),
        (vec!["count", "drop table;"], "invalid collection name"),
        (
            vec!["insert-mnist", "--data", "/nonexistent"],
            "/nonexistent",
        ),
    ] {
        let out = vigil(&db, &args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.starts_with("error: ") && err.contains(expected),
            "{args:?}: {err}"
        );
        assert!(out.stdout.is_empty());
    }
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["--db", "mysql://x", "count", "m"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown scheme"));
}

#[test]
fn exit_codes_tell_usage_from_failure() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("codes.db");
    // A JSON argument that does not parse is a usage error, as clap's own are.
    assert_eq!(
        vigil(&db, &["count", "mnist", "{not json"]).status.code(),
        Some(2)
    );
    assert_eq!(vigil(&db, &["count"]).status.code(), Some(2));
    // A command that ran and failed exits 1.
    assert_eq!(
        vigil(&db, &["insert-mnist", "--data", "/nonexistent"])
            .status
            .code(),
        Some(1)
    );
    assert_eq!(vigil(&db, &["count", "mnist"]).status.code(), Some(0));
}

#[test]
fn the_database_comes_from_vigil_db_when_not_given() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("env.db").display());
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .env("VIGIL_DB", &url)
        .args([
            "insert-mnist",
            "--data",
            data().to_str().unwrap(),
            "--limit",
            "5",
        ])
        .output()
        .unwrap();
    assert!(stdout(&out).contains(&url));
    assert!(dir.path().join("env.db").exists());
}

#[test]
fn the_demo_runs_the_notebook_and_sums_it_up() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("demo.db");
    let out_dir = dir.path().join("out");
    let run_demo = || {
        let (data, out) = (data(), out_dir.to_str().unwrap().to_string());
        stdout(&vigil(
            &db,
            &[
                "demo",
                "mnist",
                "--data",
                data.to_str().unwrap(),
                "--limit",
                "1000",
                "--epochs",
                "1",
                "--out",
                &out,
            ],
        ))
    };
    let out = run_demo();
    assert!(out.contains("stored 900 digits"), "{out}");
    assert!(out.contains("documents stored:        1000"), "{out}");
    assert!(out.contains("late inserts predicted:  100/100"), "{out}");
    assert!(
        out.contains("backfill:                900 documents"),
        "{out}"
    );
    assert!(out.contains("listeners: mnist/img/lenet5"), "{out}");
    let accuracy = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("final valid accuracy:"))
        .and_then(|l| l.trim().split('%').next())
        .and_then(|v| v.parse::<f64>().ok())
        .expect("a final accuracy in the summary");
    assert!((0.0..=100.0).contains(&accuracy), "{out}");
    let png = image::open(out_dir.join("first-digit.png"))
        .unwrap()
        .to_luma8();
    let first = vigil_datasets::mnist::read_dir(data())
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(
        png, first.image,
        "the saved image is the first digit, read back"
    );
    let plot = image::open(out_dir.join("my_valid-acc.png"))
        .unwrap()
        .to_rgb8();
    assert_eq!(plot.dimensions(), (800, 480));
    assert!(
        plot.pixels().filter(|p| p.0 == [0, 0, 255]).count() > 100,
        "a blue curve"
    );

    let again = run_demo();
    assert!(
        again.contains("dropped the previous `mnist` collection"),
        "{again}"
    );
    assert!(
        again.contains("late inserts predicted:  100/100"),
        "{again}"
    );
    assert_eq!(stdout(&vigil(&db, &["count", "mnist"])), "1000\n");
    let predicted = stdout(&vigil(
        &db,
        &[
            "count",
            "mnist",
            r#"{"_outputs.img.lenet5": {"$exists": true}}"#,
        ],
    ));
    assert_eq!(predicted, "1000\n");

    // The demo leaves a vector index over LeNet5's features: `vigil like` searches it.
    assert!(again.contains("similar digits:"), "{again}");
    let id = again
        .lines()
        .find_map(|l| l.split("vigil like mnist --id '").nth(1))
        .and_then(|rest| rest.split('\'').next())
        .expect("the demo prints a like command")
        .to_string();
    let found = stdout(&vigil(
        &db,
        &["like", "mnist", "--id", &id, "-n", "5", "--json"],
    ));
    let hits: Vec<serde_json::Value> = found
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(hits.len(), 5, "{found}");
    assert_eq!(
        hits[0]["document"]["_id"].to_string(),
        id,
        "the digit itself first"
    );
    let scores: Vec<f64> = hits.iter().map(|h| h["score"].as_f64().unwrap()).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
    let threes = stdout(&vigil(
        &db,
        &[
            "like",
            "mnist",
            "--id",
            &id,
            "-n",
            "3",
            "--filter",
            r#"{"class": 3}"#,
        ],
    ));
    assert_eq!(threes.lines().count(), 3, "{threes}");
    assert!(threes.lines().all(|l| l.contains("class: 3")), "{threes}");
    let made = stdout(&vigil(
        &db,
        &[
            "vector-index",
            "by_l2",
            "mnist/img/lenet5-features",
            "--measure",
            "l2",
        ],
    ));
    assert!(made.contains("1000 vectors of 84 dimensions"), "{made}");
    let bad = vigil(
        &db,
        &["like", "mnist", "--vector", "[1, 2]", "--index", "by_l2"],
    );
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("2 dimensions, the index holds 84"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    let usage = vigil(
        &db,
        &[
            "vector-index",
            "x",
            "mnist/img/lenet5-features",
            "--measure",
            "manhattan",
        ],
    );
    assert_eq!(usage.status.code(), Some(2));
}

#[test]
fn show_lists_components_and_prints_records() {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("show.db");
    {
        let db = vigil::connect(&format!("sqlite://{}", db_path.display())).unwrap();
        db.add(&vigil::Dataset::new(
            "my_valid",
            "mnist",
            serde_json::json!({"_fold": "valid"}),
        ))
        .unwrap();
        db.add(&vigil::Dataset::new(
            "my_valid",
            "mnist",
            serde_json::json!({"_fold": "valid", "class": 3}),
        ))
        .unwrap();
        db.add(&vigil::TrainerConfig::new("adam")).unwrap();
    }
    assert_eq!(
        stdout(&vigil(&db_path, &["show", "dataset"])),
        "my_valid\tversions 1, 2\n"
    );
    let out = stdout(&vigil(
        &db_path,
        &["show", "dataset", "my_valid", "--version", "1"],
    ));
    assert!(
        out.starts_with("dataset `my_valid` version 1\n") && !out.contains("\"class\""),
        "{out}"
    );
    let out = stdout(&vigil(&db_path, &["show", "trainer", "adam"]));
    assert!(out.contains("\"objective\": \"cross_entropy\""), "{out}");
    let out = vigil(&db_path, &["show", "model", "nope"]);
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("no model `nope`")
    );
}

#[test]
fn tokens_are_created_once_listed_and_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tokens.db");
    let secret = stdout(&vigil(
        &db,
        &["token", "create", "--name", "ops", "--scope", "admin"],
    ));
    let secret = secret.trim();
    assert!(secret.starts_with("vgl_") && secret.len() > 40, "{secret}");
    let listed = stdout(&vigil(&db, &["token", "list"]));
    assert!(listed.starts_with("ops\tadmin\tcreated "), "{listed}");
    assert!(!listed.contains(secret));
    // Only the hash is in the file.
    let bytes = std::fs::read(&db).unwrap();
    assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()));
    // A second token of the same name, a bad scope and a bad name are refused.
    let again = vigil(&db, &["token", "create", "--name", "ops"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("revoke it first"));
    let bad = vigil(&db, &["token", "create", "--name", "x", "--scope", "root"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("read, write or admin"));
    assert_eq!(
        vigil(&db, &["token", "create", "--name", "a b"])
            .status
            .code(),
        Some(1)
    );
    stdout(&vigil(&db, &["token", "revoke", "ops"]));
    assert_eq!(stdout(&vigil(&db, &["token", "list"])), "");
    assert_eq!(
        vigil(&db, &["token", "revoke", "ops"]).status.code(),
        Some(1)
    );
}

#[test]
fn serve_reports_an_address_it_cannot_take() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("serve.db");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = vigil(&db, &["serve", "--listen", &addr]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("listening on {addr}")), "{err}");
}
