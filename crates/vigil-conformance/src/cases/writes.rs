//! Inserts, ids, folds, updates, replaces and deletes: all or nothing, exactly as asked.

use vigil::{json, Document, Encoded, Error, Options, Value};

use super::{fresh, labels, with_digits};
use crate::{data, Factory};

/// A user's `_id` (string or integer) is kept; others get distinct 24-hex ids.
pub fn ids_are_kept_or_generated(factory: &Factory) {
    let db = fresh(factory);
    let coll = db.collection("ids").unwrap();
    let mut docs = data::documents(50);
    docs[0].insert_first("_id", "digit-0");
    docs[1].insert_first("_id", 42);
    let ids = coll.insert_many(docs).unwrap();
    assert_eq!(ids[0], Value::String("digit-0".into()));
    assert_eq!(ids[1], Value::Int(42));
    let generated: std::collections::HashSet<String> = ids[2..]
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(generated.len(), 48, "generated ids are distinct");
    assert!(generated
        .iter()
        .all(|id| id.len() == 24 && id.chars().all(|c| c.is_ascii_hexdigit())));
    let found = coll.find_one(json!({"_id": 42})).unwrap().unwrap();
    assert_eq!(found.id(), Some(&Value::Int(42)));
    assert_eq!(found.get("class"), Some(&Value::Int(labels(2)[1])));
    assert!(
        coll.find_one(json!({"_id": "42"})).unwrap().is_none(),
        "42 and \"42\" are different ids"
    );
    let bad = Document::new().with("_id", 1.5f64);
    assert!(matches!(
        coll.insert_one(bad),
        Err(Error::InvalidDocument { .. })
    ));
}

/// A duplicate `_id`, against the collection or inside the batch, stores nothing.
pub fn duplicate_ids_roll_back_the_whole_batch(factory: &Factory) {
    let db = fresh(factory);
    let coll = db.collection("dups").unwrap();
    coll.insert_one(Document::new().with("_id", "a").with("v", 1))
        .unwrap();
    let batch = vec![
        Document::new().with("_id", "b"),
        Document::new().with("_id", "a").with("v", 2),
        Document::new().with("_id", "c"),
    ];
    let err = coll.insert_many(batch).unwrap_err();
    assert!(
        matches!(&err, Error::DuplicateId { collection, id } if collection == "dups" && id == "\"a\""),
        "{err}"
    );
    let batch = vec![
        Document::new().with("_id", "x"),
        Document::new().with("_id", "x"),
    ];
    assert!(matches!(
        coll.insert_many(batch),
        Err(Error::DuplicateId { .. })
    ));
    assert_eq!(coll.count(json!({})).unwrap(), 1);
    assert_eq!(
        coll.find_one(json!({"_id": "a"}))
            .unwrap()
            .unwrap()
            .get("v"),
        Some(&Value::Int(1))
    );
}

/// One malformed document in a batch — bytes that are not PNG, a NaN, a bad field name —
/// fails the call with an error naming it, and stores none of the batch.
pub fn bad_documents_roll_back_the_whole_batch(factory: &Factory) {
    let (_db, mnist) = with_digits(factory, 100);
    let cases: Vec<(Document, &str)> = vec![
        (
            Document::new().with(
                "img",
                Encoded::new("image/png", b"definitely not a png".to_vec()),
            ),
            "not decode as `image/png`",
        ),
        (
            Document::new().with(
                "img",
                Encoded::new("tensor", b"VT1\x01\x01\x05\0\0\0\0\0\0\0abc".to_vec()),
            ),
            "not decode as `tensor`",
        ),
        (
            Document::new().with("score", f64::NAN),
            "only finite floats",
        ),
        (
            Document::new().with("meta", Document::new().with("bad.key", 1)),
            "meta.bad.key",
        ),
        (Document::new().with("$where", 1), "$where"),
        (Document::new().with("_fold", 3), "_fold must be a string"),
    ];
    for (bad, expected) in cases {
        let mut batch = data::documents(5);
        batch.insert(3, bad);
        let err = mnist.insert_many(batch).unwrap_err().to_string();
        assert!(err.contains(expected), "{err} should mention {expected}");
        assert!(err.contains("document #3"), "{err} should name document #3");
        assert_eq!(
            mnist.count(json!({})).unwrap(),
            100,
            "nothing of the batch was stored"
        );
    }
}

/// About 5% of the digits land in `valid`; the same seed draws the same folds; the
/// probability is configurable; a document's own `_fold` is kept.
pub fn folds_follow_the_probability_and_the_seed(factory: &Factory) {
    let folds = |options: Options, n: usize| -> Vec<String> {
        let db = factory(options);
        let coll = db.collection("folds").unwrap();
        let docs: Vec<Document> = labels(n)
            .into_iter()
            .map(|c| Document::new().with("class", c))
            .collect();
        coll.insert_many(docs).unwrap();
        coll.find(json!({}))
            .run()
            .unwrap()
            .map(|d| {
                d.unwrap()
                    .get("_fold")
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    };
    let a = folds(Options::new().seed(1), 10_000);
    let valid = a.iter().filter(|f| *f == "valid").count();
    assert!(
        (350..=650).contains(&valid),
        "{valid} of 10,000 valid, expected about 500"
    );
    assert!(a.iter().all(|f| f == "valid" || f == "train"));
    assert_eq!(
        a,
        folds(Options::new().seed(1), 10_000),
        "same seed, same folds"
    );
    assert_ne!(
        a,
        folds(Options::new().seed(2), 10_000),
        "another seed, other folds"
    );
    let half = folds(Options::new().seed(1).valid_probability(0.5), 2000);
    let valid = half.iter().filter(|f| *f == "valid").count();
    assert!(
        (850..=1150).contains(&valid),
        "{valid} of 2,000 valid at p=0.5"
    );
    let db = fresh(factory);
    let coll = db.collection("own").unwrap();
    coll.insert_one(Document::new().with("_fold", "test"))
        .unwrap();
    assert_eq!(coll.count(json!({"_fold": "test"})).unwrap(), 1);
}

/// `$set` (an image included), `$unset` and `$inc` on one or many documents.
pub fn updates_set_unset_inc(factory: &Factory) {
    let (_db, mnist) = with_digits(factory, 300);
    let sevens = labels(300).iter().filter(|&&c| c == 7).count() as u64;
    let out = mnist
        .update_many(
            json!({"class": 7}),
            json!({"$set": {"checked": true, "meta.by": "test"}, "$inc": {"views": 2}}),
        )
        .unwrap();
    assert_eq!((out.matched, out.modified), (sevens, sevens));
    assert_eq!(
        mnist
            .count(json!({"checked": true, "meta.by": "test", "views": 2}))
            .unwrap(),
        sevens
    );
    let out = mnist
        .update_many(json!({"class": 7}), json!({"$inc": {"views": 0.5}}))
        .unwrap();
    assert_eq!(out.modified, sevens);
    assert_eq!(mnist.count(json!({"views": 2.5})).unwrap(), sevens);
    let out = mnist
        .update_one(
            json!({"class": 7}),
            json!({"$unset": {"checked": 1, "absent": 1}}),
        )
        .unwrap();
    assert_eq!((out.matched, out.modified), (1, 1));
    assert_eq!(mnist.count(json!({"checked": true})).unwrap(), sevens - 1);
    let out = mnist
        .update_one(
            json!({"class": 7, "checked": {"$exists": false}}),
            json!({"$unset": {"checked": 1}}),
        )
        .unwrap();
    assert_eq!(
        (out.matched, out.modified),
        (1, 0),
        "matched but nothing to change"
    );
    let out = mnist
        .update_many(json!({"class": 99}), json!({"$set": {"x": 1}}))
        .unwrap();
    assert_eq!((out.matched, out.modified), (0, 0));
    // Replace the first digit's image with the second's.
    let second = data::digits()[1].to_document().unwrap();
    let mut set = Document::new();
    set.insert(
        "$set",
        Document::new().with("img", second.get("img").unwrap().clone()),
    );
    let first_id = mnist
        .find_one(json!({}))
        .unwrap()
        .unwrap()
        .id()
        .unwrap()
        .clone();
    mnist
        .update_one(json!({"_id": first_id.to_json()}), set)
        .unwrap();
    let back = mnist
        .find_one(json!({"_id": first_id.to_json()}))
        .unwrap()
        .unwrap();
    assert_eq!(
        back.get("img").unwrap().to_image().unwrap().to_luma8(),
        data::digits()[1].image
    );
}

/// An update that fails on one document changes none; malformed updates are refused.
pub fn failed_updates_change_nothing(factory: &Factory) {
    let (_db, mnist) = with_digits(factory, 200);
    mnist
        .update_one(json!({"class": 3}), json!({"$set": {"views": "many"}}))
        .unwrap();
    mnist
        .update_many(json!({"class": {"$ne": 3}}), json!({"$set": {"views": 1}}))
        .unwrap();
    let before = mnist.count(json!({"views": 1})).unwrap();
    let err = mnist
        .update_many(json!({}), json!({"$inc": {"views": 1}}))
        .unwrap_err();
    assert!(
        err.to_string().contains("$inc") && err.to_string().contains("views"),
        "{err}"
    );
    assert_eq!(
        mnist.count(json!({"views": 1})).unwrap(),
        before,
        "no document was incremented"
    );
    assert_eq!(mnist.count(json!({"views": 2})).unwrap(), 0);
    for (bad, expected) in [
        (json!({"class": 1}), "only operators"),
        (json!({"$set": {"_id": 1}}), "_id cannot be changed"),
        (json!({"$inc": {"views": "1"}}), "a number"),
        (json!({"$currentDate": {"tags": true}}), "$currentDate"),
        (json!({"$push": {"views": 1}}), "an array field"),
        (json!({}), "changes nothing"),
        (
            json!({"$set": {"x": f64::MAX}, "$unset": {"bad name": 1}}),
            "bad name",
        ),
    ] {
        let err = mnist.update_many(json!({}), bad).unwrap_err().to_string();
        assert!(err.contains(expected), "{err} should mention {expected}");
    }
}

/// MongoDB's update operators on arrays, numbers and nested paths, and upserts, through the
/// backend (each matched document changed inside its transaction).
pub fn update_operators_and_upserts(factory: &Factory) {
    let db = fresh(factory);
    let c = db.collection("ops").unwrap();
    c.insert_many(vec![
        json!({"_id": 1, "tags": ["a", "b"], "n": {"k": [1, 2, 3]}, "score": 10}),
        json!({"_id": 2, "tags": ["b"], "score": 5.5}),
    ])
    .unwrap();
    let doc = |id: i64| c.find_one(json!({"_id": id})).unwrap().unwrap().to_json();
    let out = c
        .update_many(
            json!({}),
            json!({"$addToSet": {"tags": {"$each": ["b", "c"]}}, "$mul": {"score": 2}, "$max": {"best": 7}}),
        )
        .unwrap();
    assert_eq!((out.matched, out.modified), (2, 2));
    assert_eq!(doc(1)["tags"], json!(["a", "b", "c"]));
    assert_eq!(doc(2)["tags"], json!(["b", "c"]));
    assert_eq!(
        (doc(1)["score"].clone(), doc(2)["score"].clone()),
        (json!(20), json!(11.0))
    );
    c.update_one(
        json!({"_id": 1}),
        json!({"$push": {"n.k": {"$each": [4, 5], "$slice": -3}}, "$pull": {"tags": {"$in": ["a", "c"]}},
               "$rename": {"best": "top"}, "$set": {"n.k2.0": "x"}}),
    )
    .unwrap();
    assert_eq!(
        doc(1),
        json!({"_id": 1, "tags": ["b"], "n": {"k": [3, 4, 5], "k2": {"0": "x"}}, "score": 20, "_fold": doc(1)["_fold"], "top": 7})
    );
    c.update_one(
        json!({"_id": 2}),
        json!({"$pop": {"tags": -1}, "$min": {"best": 3}, "$unset": {"score": ""}}),
    )
    .unwrap();
    assert_eq!(doc(2)["tags"], json!(["c"]));
    assert_eq!(doc(2)["best"], json!(3));
    assert!(doc(2).get("score").is_none());
    // Filters see the new values, in SQL.
    assert_eq!(c.count(json!({"n.k": [3, 4, 5]})).unwrap(), 1);

    // Upserts: an update that matches nothing inserts the filter's equalities, changed.
    let up = c
        .upsert_one(
            json!({"_id": 9, "kind": "new", "score": {"$gt": 3}}),
            json!({"$inc": {"hits": 1}, "$setOnInsert": {"made": true}}),
        )
        .unwrap();
    assert_eq!(
        (up.matched, up.upserted_id.clone()),
        (0, Some(Value::Int(9)))
    );
    assert_eq!(
        doc(9),
        json!({"_id": 9, "kind": "new", "hits": 1, "made": true, "_fold": doc(9)["_fold"]})
    );
    let again = c
        .upsert_one(
            json!({"_id": 9, "kind": "new"}),
            json!({"$inc": {"hits": 1}, "$setOnInsert": {"made": false}}),
        )
        .unwrap();
    assert_eq!(
        (again.matched, again.modified, again.upserted_id),
        (1, 1, None)
    );
    assert_eq!(
        (doc(9)["hits"].clone(), doc(9)["made"].clone()),
        (json!(2), json!(true))
    );
    let fresh_id = c
        .upsert_one(json!({"n.deep": 1}), json!({"$set": {"x": 1}}))
        .unwrap()
        .upserted_id
        .unwrap();
    let made = c
        .find_one(json!({"_id": fresh_id.to_json()}))
        .unwrap()
        .unwrap()
        .to_json();
    assert_eq!(
        (made["n"].clone(), made["x"].clone()),
        (json!({"deep": 1}), json!(1))
    );
    // Replace with upsert.
    let r = c
        .replace_or_insert(json!({"_id": "r"}), json!({"v": 1}))
        .unwrap();
    assert_eq!(r.upserted_id, Some(Value::String("r".into())));
    let r = c
        .replace_or_insert(json!({"_id": "r"}), json!({"v": 2}))
        .unwrap();
    assert_eq!((r.matched, r.modified), (1, 1));
    assert_eq!(
        c.find_one(json!({"_id": "r"})).unwrap().unwrap().get("v"),
        Some(&Value::Int(2))
    );
    assert_eq!(c.count(json!({})).unwrap(), 5);
    // A failing upsert stores nothing.
    assert!(c
        .upsert_one(json!({"_id": 10}), json!({"$inc": {"x": "1"}}))
        .is_err());
    assert_eq!(c.count(json!({"_id": 10})).unwrap(), 0);
}

/// `replace_one` swaps the content and keeps the `_id`; it cannot change the `_id`.
pub fn replace_keeps_the_id(factory: &Factory) {
    let (_db, mnist) = with_digits(factory, 20);
    let first = mnist.find_one(json!({})).unwrap().unwrap();
    let id = first.id().unwrap().clone();
    let replacement = data::digits()[19]
        .to_document()
        .unwrap()
        .with("replaced", true);
    let out = mnist
        .replace_one(json!({"_id": id.to_json()}), replacement)
        .unwrap();
    assert_eq!((out.matched, out.modified), (1, 1));
    let back = mnist.find_one(json!({"replaced": true})).unwrap().unwrap();
    assert_eq!(back.id(), Some(&id));
    assert_eq!(back.get("class"), Some(&Value::Int(labels(20)[19])));
    assert!(
        back.get("_fold").is_none(),
        "a replacement is the whole new document"
    );
    let err = mnist
        .replace_one(json!({"_id": id.to_json()}), json!({"_id": "other"}))
        .unwrap_err();
    assert!(err.to_string().contains("cannot change _id"), "{err}");
    assert_eq!(
        mnist
            .replace_one(json!({"class": 99}), json!({"a": 1}))
            .unwrap()
            .matched,
        0
    );
    assert_eq!(mnist.count(json!({})).unwrap(), 20);
}

/// `delete_one` removes the first match only; `delete_many` every match.
pub fn deletes(factory: &Factory) {
    let (_db, mnist) = with_digits(factory, 500);
    let l = labels(500);
    let ones = l.iter().filter(|&&c| c == 1).count() as u64;
    assert_eq!(mnist.delete_one(json!({"class": 1})).unwrap(), 1);
    assert_eq!(mnist.count(json!({"class": 1})).unwrap(), ones - 1);
    assert_eq!(
        mnist
            .delete_many(json!({"class": {"$in": [1, 2]}}))
            .unwrap(),
        ones - 1 + l.iter().filter(|&&c| c == 2).count() as u64
    );
    assert_eq!(mnist.delete_one(json!({"class": 1})).unwrap(), 0);
    let left = l.iter().filter(|&&c| c != 1 && c != 2).count() as u64;
    assert_eq!(mnist.count(json!({})).unwrap(), left);
    assert_eq!(mnist.delete_many(json!({})).unwrap(), left);
    assert_eq!(mnist.count(json!({})).unwrap(), 0);
}
