//! What is on disk: the documented storage format, readable and writable by any SQLite client;
//! filters that use indexes; stored data that is corrupt gives errors, not panics.

use rusqlite::Connection;
use serde_json::json;
use vigil_core::backend::source;
use vigil_core::{Document, Documents, Error, FieldPath, Filter, FindQuery, Value};
use vigil_sqlite::SqliteBackend;

fn digit_png(seed: u8) -> Value {
    let img = image::GrayImage::from_fn(28, 28, |x, y| {
        image::Luma([(x as u8).wrapping_mul(seed) ^ y as u8])
    });
    Value::image(&image::DynamicImage::ImageLuma8(img)).unwrap()
}

fn doc(i: i64) -> Document {
    Document::new()
        .with("_id", format!("d{i}"))
        .with("img", digit_png(i as u8))
        .with("class", i % 10)
        .with("_fold", "train")
}

fn find_all(b: &SqliteBackend, filter: serde_json::Value) -> Vec<Document> {
    b.find("mnist", &FindQuery::new(Filter::parse(&filter).unwrap()))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn images_are_raw_blobs_next_to_json_and_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    {
        let b = SqliteBackend::open(&path).unwrap();
        b.insert("mnist", source((0..20).map(doc).collect()))
            .unwrap();
    }
    let raw = Connection::open(&path).unwrap();
    let (kind, json, blob): (String, String, Vec<u8>) = raw
        .query_row(
            "SELECT typeof(blobs), doc, blobs FROM mnist WHERE id = 'd3'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(kind, "blob");
    let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
    let len = match &digit_png(3) {
        Value::Encoded(e) => e.bytes().len(),
        _ => unreachable!(),
    };
    assert_eq!(
        parsed,
        json!({"img": {"$codec": "image/png", "$blob": [0, len]}, "class": 3, "_fold": "train"})
    );
    assert!(!json.contains("iVBOR"), "no base64 PNG inside the JSON");
    assert_eq!(&blob[..8], b"\x89PNG\r\n\x1a\n");
    let b = SqliteBackend::open(&path).unwrap();
    let back = find_all(&b, json!({"_id": "d3"}));
    assert_eq!(back, vec![doc(3)]);
}

#[test]
fn a_plain_sqlite_client_can_write_the_documented_format() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let b = SqliteBackend::open(&path).unwrap();
    b.insert("mnist", source(vec![doc(1)])).unwrap();
    let Value::Encoded(png) = digit_png(9) else {
        unreachable!()
    };
    let raw = Connection::open(&path).unwrap();
    let doc_json = format!(
        r#"{{"img":{{"$codec":"image/png","$blob":[4,{}]}},"class":9,"raw":{{"$codec":"bytes","$blob":[0,4]}}}}"#,
        png.bytes().len()
    );
    let mut blobs = b"RAW!".to_vec();
    blobs.extend_from_slice(png.bytes());
    raw.execute(
        "INSERT INTO mnist (id, doc, blobs) VALUES ('from-sql', ?1, ?2)",
        rusqlite::params![doc_json, blobs],
    )
    .unwrap();
    let found = find_all(&b, json!({"class": 9}));
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id(), Some(&Value::String("from-sql".into())));
    assert_eq!(found[0].get("img"), Some(&digit_png(9)));
    assert_eq!(found[0].get("raw"), Some(&Value::Bytes(b"RAW!".to_vec())));
}

#[test]
fn filters_use_indexes_once_created() {
    let b = SqliteBackend::ephemeral().unwrap();
    b.insert("mnist", source((0..200).map(doc).collect()))
        .unwrap();
    let filter = Filter::parse(&json!({"class": 3})).unwrap();
    let before = b.explain("mnist", &filter).unwrap().join("\n");
    assert!(before.contains("SCAN"), "{before}");
    b.create_index("mnist", &FieldPath::parse("class").unwrap())
        .unwrap();
    let after = b.explain("mnist", &filter).unwrap().join("\n");
    // Index searches for the value and for arrays (whose elements may match), no table scan.
    assert!(
        after.contains("SEARCH mnist USING INDEX mnist$class") && !after.contains("SCAN mnist"),
        "{after}"
    );
    let range = Filter::parse(&json!({"class": {"$gte": 3, "$lt": 5}})).unwrap();
    let plan = b.explain("mnist", &range).unwrap().join("\n");
    assert!(
        plan.contains("SEARCH mnist USING INDEX mnist$class") && !plan.contains("SCAN mnist"),
        "{plan}"
    );
    let by_id = Filter::parse(&json!({"_id": "d7"})).unwrap();
    assert!(
        b.explain("mnist", &by_id)
            .unwrap()
            .join("\n")
            .contains("USING"),
        "lookups by _id use its unique index"
    );
    assert_eq!(b.count("mnist", &filter).unwrap(), 20);
}

#[test]
fn dotted_paths_through_arrays_keep_their_index() {
    let b = SqliteBackend::ephemeral().unwrap();
    let docs = (0..100)
        .map(|i| {
            let n = if i % 2 == 0 {
                json!({"b": i % 7})
            } else {
                json!([{"b": i % 7}, {"b": 100}])
            };
            Document::try_from(json!({"_id": i, "n": n})).unwrap()
        })
        .collect();
    b.insert("docs", source(docs)).unwrap();
    let filter = Filter::parse(&json!({"n.b": 3})).unwrap();
    let expected = (0..100).filter(|i| i % 7 == 3).count() as u64;
    assert_eq!(b.count("docs", &filter).unwrap(), expected);
    assert!(b
        .explain("docs", &filter)
        .unwrap()
        .join("\n")
        .contains("SCAN docs"));
    b.create_index("docs", &FieldPath::parse("n.b").unwrap())
        .unwrap();
    let plan = b.explain("docs", &filter).unwrap().join("\n");
    assert!(!plan.contains("SCAN docs"), "{plan}");
    assert_eq!(b.count("docs", &filter).unwrap(), expected);
    assert_eq!(
        b.list_indexes("docs").unwrap(),
        vec![FieldPath::parse("n.b").unwrap()]
    );
}

#[test]
fn an_index_of_the_earlier_layout_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    let b = SqliteBackend::open(&path).unwrap();
    b.insert("mnist", source((0..50).map(doc).collect()))
        .unwrap();
    // The layout of earlier versions: value first.
    Connection::open(&path)
        .unwrap()
        .execute_batch(
            r#"CREATE INDEX "mnist$class" ON mnist (json_extract(doc,'$."class"'), json_type(doc,'$."class"'))"#,
        )
        .unwrap();
    let filter = Filter::parse(&json!({"class": 3})).unwrap();
    assert!(b
        .explain("mnist", &filter)
        .unwrap()
        .join("\n")
        .contains("SCAN mnist"));
    b.create_index("mnist", &FieldPath::parse("class").unwrap())
        .unwrap();
    let plan = b.explain("mnist", &filter).unwrap().join("\n");
    assert!(!plan.contains("SCAN mnist"), "{plan}");
    assert_eq!(b.count("mnist", &filter).unwrap(), 5);
}

#[test]
fn corrupt_rows_are_errors_naming_the_collection() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let b = SqliteBackend::open(&path).unwrap();
    b.insert("mnist", source(vec![doc(1), doc(2)])).unwrap();
    let raw = Connection::open(&path).unwrap();
    raw.execute("UPDATE mnist SET doc = '{\"img\":{\"$codec\":\"image/png\",\"$blob\":[0,999999]}}' WHERE id = 'd2'", []).unwrap();
    let results: Vec<_> = b
        .find("mnist", &FindQuery::new(Filter::all()))
        .unwrap()
        .collect();
    assert!(results[0].is_ok());
    let err = results[1].as_ref().unwrap_err();
    assert!(
        matches!(err, Error::Corrupt { collection, .. } if collection == "mnist"),
        "{err}"
    );
    assert!(err.to_string().contains("blob range"), "{err}");
    raw.execute("UPDATE mnist SET doc = 'not json' WHERE id = 'd2'", [])
        .unwrap();
    let err = b
        .find("mnist", &FindQuery::new(Filter::all()))
        .unwrap()
        .nth(1)
        .unwrap()
        .unwrap_err();
    assert!(err.to_string().contains("\"d2\""), "{err}");
}

#[test]
fn two_handles_on_one_file_see_each_others_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let a = SqliteBackend::open(&path).unwrap();
    let b = SqliteBackend::open(&path).unwrap();
    a.insert("mnist", source((0..10).map(doc).collect()))
        .unwrap();
    b.insert("mnist", source((10..20).map(doc).collect()))
        .unwrap();
    assert_eq!(a.count("mnist", &Filter::all()).unwrap(), 20);
    assert_eq!(b.list_collections().unwrap(), ["mnist"]);
    let dup = b.insert("mnist", source(vec![doc(5)])).unwrap_err();
    assert!(matches!(dup, Error::DuplicateId { .. }));
}
