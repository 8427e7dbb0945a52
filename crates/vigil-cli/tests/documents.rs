//! `vigil insert`, `update`, `delete` and `aggregate` as a user runs them: arguments and
//! standard input, on a real SQLite file holding real MNIST digits.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn data() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist")
}

fn vigil_with_input(db: &Path, args: &[&str], input: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .env_remove("VIGIL_DB")
        .arg("--db")
        .arg(format!("sqlite://{}", db.display()))
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the vigil binary runs");
    if let Some(bytes) = input {
        child.stdin.take().unwrap().write_all(bytes).unwrap();
    }
    child.wait_with_output().unwrap()
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn aggregate_counts_digits_per_class_and_writes_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("docs.db");
    let data = data();
    let run = |args: &[&str]| ok(vigil_with_input(&db, args, None));
    run(&[
        "insert-mnist",
        "--data",
        data.to_str().unwrap(),
        "--limit",
        "500",
    ]);
    let labels: Vec<i64> = vigil_datasets::mnist::read_dir(&data)
        .unwrap()
        .take(500)
        .map(|d| i64::from(d.unwrap().label))
        .collect();

    // Per-class counts from the pipeline equal the labels'.
    let out = run(&[
        "aggregate",
        "mnist",
        r#"[{"$group": {"_id": "$class", "n": {"$sum": 1}}}, {"$sort": {"_id": 1}}]"#,
        "--json",
    ]);
    let expected: Vec<serde_json::Value> = (0..10)
        .map(|c| serde_json::json!({"_id": c, "n": labels.iter().filter(|&&l| l == c).count()}))
        .collect();
    assert_eq!(lines(&out), expected);

    // The pipeline from standard input; a head that runs in the database.
    let out = ok(vigil_with_input(
        &db,
        &["aggregate", "mnist", "--json"],
        Some(br#"[{"$match": {"class": 3}}, {"$count": "threes"}]"#),
    ));
    let threes = labels.iter().filter(|&&l| l == 3).count();
    assert_eq!(lines(&out), vec![serde_json::json!({"threes": threes})]);

    // Documents copied through a pipe keep their images: find --json | insert.
    let found = run(&[
        "find",
        "mnist",
        r#"{"class": 3}"#,
        "--json",
        "--limit",
        "1000",
        "--projection",
        r#"{"_outputs": 0}"#,
    ]);
    let out = ok(vigil_with_input(
        &db,
        &["insert", "threes"],
        Some(found.as_bytes()),
    ));
    assert_eq!(out, format!("inserted {threes} documents into `threes`\n"));
    let copied = run(&["find", "threes", "--json", "--limit", "1000"]);
    assert_eq!(
        copied, found,
        "the copy is the original, images and ids included"
    );

    // insert from an argument (one or an array), with ids printed.
    let out = run(&[
        "insert",
        "notes",
        r#"[{"_id": "a", "tags": ["x"]}, {"_id": "b", "n": 1}]"#,
        "--ids",
    ]);
    assert_eq!(out, "\"a\"\n\"b\"\n");
    let out = run(&[
        "update",
        "notes",
        r#"{"_id": "a"}"#,
        r#"{"$push": {"tags": "y"}, "$inc": {"n": 2}}"#,
    ]);
    assert_eq!(out, "matched 1, modified 1\n");
    let out = run(&[
        "update",
        "notes",
        r#"{"_id": "c"}"#,
        r#"{"$set": {"n": 5}}"#,
        "--upsert",
    ]);
    assert_eq!(out, "matched 0, modified 0, upserted \"c\"\n");
    let out = run(&["update", "notes", "{}", r#"{"$inc": {"n": 1}}"#, "--many"]);
    assert_eq!(out, "matched 3, modified 3\n");
    let docs = lines(&run(&[
        "find",
        "notes",
        "--json",
        "--projection",
        r#"{"_fold": 0}"#,
    ]));
    assert_eq!(
        docs,
        vec![
            serde_json::json!({"_id": "a", "tags": ["x", "y"], "n": 3}),
            serde_json::json!({"_id": "b", "n": 2}),
            serde_json::json!({"_id": "c", "n": 6}),
        ]
    );
    let out = run(&[
        "delete",
        "notes",
        r#"{"tags": {"$regex": "^Y", "$options": "i"}}"#,
    ]);
    assert_eq!(out, "deleted 1\n");
    let out = run(&["delete", "notes", r#"{"n": {"$gte": 2}}"#, "--many"]);
    assert_eq!(out, "deleted 2\n");
    assert_eq!(run(&["count", "notes"]), "0\n");

    // Bad input: exit 2 for JSON that does not parse, 1 for a query vigil refuses; nothing
    // stored is touched.
    let bad = vigil_with_input(&db, &["insert", "notes", "{nope"], None);
    assert_eq!(bad.status.code(), Some(2));
    let bad = vigil_with_input(&db, &["insert", "notes", r#"[{"a": 1}, 5]"#], None);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("document 1 is not a JSON object"));
    let bad = vigil_with_input(&db, &["aggregate", "mnist", r#"[{"$lookup": {}}]"#], None);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("$lookup"));
    assert_eq!(run(&["count", "notes"]), "0\n");
    assert_eq!(run(&["count", "mnist"]), "500\n");
}
