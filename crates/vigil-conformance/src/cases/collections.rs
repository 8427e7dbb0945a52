//! Collections and indexes; names and values that try to break out of SQL.

use vigil::{json, Document, Error, Value};

use super::{fresh, labels, with_digits};
use crate::Factory;

/// Indexes are created once, listed, and leave every answer unchanged.
pub fn indexes_are_listed_and_queries_stay_correct(factory: &Factory) {
    let (_db, mnist) = with_digits(factory, 3000);
    let before: Vec<u64> = (0..10)
        .map(|c| mnist.count(json!({"class": c})).unwrap())
        .collect();
    let before_range = mnist
        .count(json!({"class": {"$gte": 3, "$lt": 8}, "_fold": "train"}))
        .unwrap();
    mnist.create_index("class").unwrap();
    mnist.create_index("class").unwrap();
    mnist.create_index("_fold").unwrap();
    mnist.create_index("_id").unwrap();
    let listed: Vec<String> = mnist
        .list_indexes()
        .unwrap()
        .iter()
        .map(|p| p.dotted())
        .collect();
    assert_eq!(listed, ["_fold", "class"]);
    let after: Vec<u64> = (0..10)
        .map(|c| mnist.count(json!({"class": c})).unwrap())
        .collect();
    assert_eq!(after, before);
    let expected: Vec<u64> = (0..10)
        .map(|c| labels(3000).iter().filter(|&&l| l == c).count() as u64)
        .collect();
    assert_eq!(after, expected);
    assert_eq!(
        mnist
            .count(json!({"class": {"$gte": 3, "$lt": 8}, "_fold": "train"}))
            .unwrap(),
        before_range
    );
    assert!(matches!(
        mnist.create_index("bad path!"),
        Err(Error::InvalidName { .. })
    ));
}

/// Collections appear on first insert, are listed sorted, and drop with their documents.
pub fn collections_are_listed_dropped_and_validated(factory: &Factory) {
    let db = fresh(factory);
    assert!(db.list_collections().unwrap().is_empty());
    db.collection("zeta")
        .unwrap()
        .insert_one(json!({"a": 1}))
        .unwrap();
    db.collection("alpha")
        .unwrap()
        .insert_one(json!({"a": 1}))
        .unwrap();
    db.collection("Mixed_Case9")
        .unwrap()
        .insert_one(json!({"a": 1}))
        .unwrap();
    assert_eq!(
        db.list_collections().unwrap(),
        ["Mixed_Case9", "alpha", "zeta"]
    );
    assert!(db.drop_collection("zeta").unwrap());
    assert!(!db.drop_collection("zeta").unwrap());
    assert_eq!(db.list_collections().unwrap(), ["Mixed_Case9", "alpha"]);
    assert_eq!(db.collection("zeta").unwrap().count(json!({})).unwrap(), 0);
    db.collection("zeta")
        .unwrap()
        .insert_one(json!({"a": 2}))
        .unwrap();
    assert_eq!(
        db.collection("zeta")
            .unwrap()
            .count(json!({"a": 2}))
            .unwrap(),
        1
    );
    for bad in [
        "",
        "1abc",
        "a-b",
        "a b",
        "vigil_jobs",
        "sqlite_master",
        "pg_class",
        "a\"b",
        &"x".repeat(49),
    ] {
        let err = db.collection(bad).unwrap_err();
        assert!(
            matches!(
                &err,
                Error::InvalidName {
                    kind: "collection",
                    ..
                }
            ),
            "{bad:?}: {err}"
        );
        assert!(db.drop_collection(bad).is_err());
    }
}

/// Hostile collection names, field names and values: names are refused, values are stored and
/// matched exactly, and nothing else in the database is touched.
pub fn hostile_names_and_values_are_safe(factory: &Factory) {
    let (db, mnist) = with_digits(factory, 50);
    let hostile_names = [
        "mnist; DROP TABLE mnist; --",
        "mnist\" WHERE 1=1 --",
        "x') OR ('1'='1",
        "mnist/*",
        "ünï",
    ];
    for name in hostile_names {
        assert!(db.collection(name).is_err(), "{name:?} accepted");
    }
    let hostile_fields = [
        "a'b",
        "a\"b",
        "a]b",
        "$gt",
        "a b",
        "a;b",
        "a.b.",
        "' OR 1=1 --",
    ];
    for field in hostile_fields {
        let err = mnist
            .insert_one(Document::new().with(field, 1))
            .unwrap_err();
        assert!(
            matches!(err, Error::InvalidDocument { .. }),
            "{field:?}: {err}"
        );
        assert!(
            mnist.count(json!({ field: 1 })).is_err(),
            "filter on {field:?} accepted"
        );
        assert!(mnist
            .find(json!({}))
            .sort(json!({ field: 1 }))
            .run()
            .is_err());
        assert!(mnist.create_index(field).is_err());
    }
    let hostile_values = [
        "'; DROP TABLE mnist; --",
        "\" OR \"1\"=\"1",
        "') OR 1=1 --",
        "$.class",
        "\\\u{0}\u{1f}",
        "%_*",
    ];
    let hostile = db.collection("hostile").unwrap();
    for (i, v) in hostile_values.iter().enumerate() {
        hostile
            .insert_one(
                Document::new()
                    .with("_id", *v)
                    .with("v", *v)
                    .with("i", i as i64),
            )
            .unwrap();
    }
    for (i, v) in hostile_values.iter().enumerate() {
        let found = hostile.find_one(json!({"v": v})).unwrap().unwrap();
        assert_eq!(found.get("i"), Some(&Value::Int(i as i64)), "{v:?}");
        assert_eq!(found.id(), Some(&Value::String(v.to_string())));
        assert_eq!(hostile.count(json!({"v": {"$in": [v]}})).unwrap(), 1);
        assert_eq!(hostile.count(json!({"_id": v})).unwrap(), 1);
    }
    assert_eq!(
        hostile.count(json!({"v": {"$gt": "'"}})).unwrap(),
        hostile_values.iter().filter(|v| **v > "'").count() as u64
    );
    assert_eq!(
        mnist.count(json!({})).unwrap(),
        50,
        "the other collection is intact"
    );
    assert_eq!(db.list_collections().unwrap(), ["hostile", "mnist"]);
}

/// Reading a collection that was never written is empty, not an error.
pub fn missing_collections_read_as_empty(factory: &Factory) {
    let db = fresh(factory);
    let ghost = db.collection("ghost").unwrap();
    assert_eq!(ghost.count(json!({"a": 1})).unwrap(), 0);
    assert!(ghost.find_one(json!({})).unwrap().is_none());
    assert_eq!(ghost.find(json!({})).run().unwrap().count(), 0);
    assert_eq!(ghost.delete_many(json!({})).unwrap(), 0);
    assert_eq!(
        ghost
            .update_many(json!({}), json!({"$set": {"a": 1}}))
            .unwrap()
            .matched,
        0
    );
    assert!(ghost.list_indexes().unwrap().is_empty());
    assert!(
        db.list_collections().unwrap().is_empty(),
        "reads create nothing"
    );
}

/// Field names in every script work everywhere a name goes (documents, filters, sorts,
/// projections, updates, indexes); names with control characters or
/// white space are refused with an error naming the character.
pub fn field_names_in_every_script(factory: &Factory) {
    let db = fresh(factory);
    let coll = db.collection("scripts").unwrap();
    let names = [
        "größe",
        "名前",
        "ключ",
        "اسم",
        "हिन्दी",
        "Ελληνικά",
        "שם",
        "ชื่อ",
        "이름",
        "日本語_1",
        "😀",
    ];
    for (i, name) in names.iter().enumerate() {
        let doc = Document::new()
            .with("_id", i as i64)
            .with(*name, i as i64)
            .with("nested", Document::new().with(*name, format!("v{i}")));
        coll.insert_one(doc).unwrap();
    }
    for (i, name) in names.iter().enumerate() {
        let nested = format!("nested.{name}");
        assert_eq!(coll.count(json!({ *name: i as i64 })).unwrap(), 1, "{name}");
        assert_eq!(
            coll.count(json!({ nested.clone(): format!("v{i}") }))
                .unwrap(),
            1
        );
        assert_eq!(coll.count(json!({ *name: {"$exists": true} })).unwrap(), 1);
        let found = coll
            .find(json!({ *name: {"$gte": 0} }))
            .projection(json!({ *name: 1, "_id": 0 }))
            .run()
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        assert_eq!(found.get(name), Some(&Value::Int(i as i64)));
        coll.update_one(json!({"_id": i as i64}), json!({"$inc": { *name: 100 }}))
            .unwrap();
        coll.create_index(name).unwrap();
        assert_eq!(coll.count(json!({ *name: i as i64 + 100 })).unwrap(), 1);
    }
    let sorted: Vec<Value> = coll
        .find(json!({}))
        .sort(json!({"größe": -1, "_id": 1}))
        .run()
        .unwrap()
        .map(|d| d.unwrap().id().cloned().unwrap())
        .collect();
    assert_eq!(
        sorted[0],
        Value::Int(0),
        "the one document with größe sorts first"
    );
    for bad in [
        "a\u{0}b",
        "a\nb",
        "tab\there",
        "\u{7f}",
        "a\u{a0}b",
        "a\u{2028}b",
        "a b",
    ] {
        let err = coll.insert_one(Document::new().with(bad, 1)).unwrap_err();
        assert!(
            matches!(err, Error::InvalidDocument { .. }),
            "{bad:?}: {err}"
        );
        assert!(err.to_string().contains("U+"), "{bad:?}: {err}");
        assert!(coll.count(json!({ bad: 1 })).is_err(), "filter on {bad:?}");
    }
    assert_eq!(coll.count(json!({})).unwrap(), names.len() as u64);
}
