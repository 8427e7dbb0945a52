//! Extreme input through the library, on SQLite and PostgreSQL: documents and filters built in
//! code nested 100,000 levels deep are refused without exhausting the stack; a 10,000-element
//! `$in` runs in the database; NaN and infinities are refused from every entry point, and what
//! was stored stays as it was.

use std::sync::Arc;

use serde_json::Value as Json;
use vigil::{json, Datalayer, Document, Value};

fn deep_document(levels: usize) -> Document {
    let mut doc = Document::new().with("leaf", 1);
    for _ in 0..levels {
        doc = Document::new().with("a", Value::Array(vec![Value::Object(doc)]));
    }
    doc
}

fn deep_filter(levels: usize) -> Json {
    let mut json = Json::from(1);
    for _ in 0..levels {
        let mut map = serde_json::Map::new();
        map.insert("$and".into(), Json::Array(vec![json]));
        json = Json::Object(map);
    }
    json
}

fn exercise(db: &Datalayer) {
    let coll = db.collection("extreme").unwrap();
    let docs: Vec<Document> = (0..10_000i64)
        .map(|n| Document::new().with("n", n))
        .collect();
    coll.insert_many(docs).unwrap();

    // 100,000 levels, built in code.
    let err = coll.insert_one(deep_document(100_000)).unwrap_err();
    assert!(err.to_string().contains("more than 100 levels"), "{err}");
    let err = coll.count(deep_filter(100_000)).unwrap_err();
    assert!(err.to_string().contains("more than 100 levels"), "{err}");
    // serde_json drops its values recursively: give the filter room to go.
    let filter = deep_filter(100_000);
    std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(move || drop(filter))
        .unwrap()
        .join()
        .unwrap();
    // 100 levels are fine.
    coll.insert_one(deep_document(49).with("_id", "deep"))
        .unwrap();
    assert_eq!(coll.count(json!({"_id": "deep"})).unwrap(), 1);

    // A 10,000-element $in, answered in the database.
    let odd: Vec<i64> = (0..20_000).filter(|n| n % 2 == 1).collect();
    assert_eq!(coll.count(json!({"n": {"$in": odd}})).unwrap(), 5_000);

    // NaN and infinities, from every entry point: nothing is stored or changed.
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        assert!(coll.insert_one(Document::new().with("x", bad)).is_err());
        assert!(coll
            .insert_one(Document::new().with("nested", Document::new().with("x", bad)))
            .is_err());
        let set = Document::new().with("$set", Document::new().with("x", bad));
        assert!(coll.update_many(json!({}), set).is_err());
        let replacement = Document::new().with("n", bad);
        assert!(coll.replace_one(json!({"n": 3}), replacement).is_err());
    }
    assert_eq!(coll.count(json!({"x": {"$exists": true}})).unwrap(), 0);
    assert_eq!(coll.count(json!({"n": 3})).unwrap(), 1);
    assert_eq!(coll.count(json!({})).unwrap(), 10_001);
}

#[test]
fn extreme_input_on_sqlite() {
    exercise(&vigil::connect("sqlite::memory:").unwrap());
}

#[test]
fn extreme_input_on_postgres() {
    let server = std::env::var("VIGIL_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let backend = vigil::PostgresBackend::ephemeral(&server).expect("PostgreSQL answers");
    exercise(&vigil::Options::new().with_backend(Arc::new(backend)));
}
