//! Every filter operator, checked against the real labels; sorts, projections and cursors.

use serde_json::Value as Json;
use vigil::{json, Collection, Document, Error, Value};

use super::{fresh, labels, with_digits};
use crate::Factory;

const N: usize = 2000;

fn count_where(pred: impl Fn(i64) -> bool) -> u64 {
    labels(N).into_iter().filter(|&c| pred(c)).count() as u64
}

fn assert_count(coll: &Collection, filter: Json, expected: u64) {
    assert_eq!(
        coll.count(filter.clone()).unwrap(),
        expected,
        "count of {filter}"
    );
    let found = coll.find(filter.clone()).run().unwrap().count() as u64;
    assert_eq!(found, expected, "find of {filter}");
}

/// Equality, `$eq`, `$ne`, `$in` and `$nin` agree with the labels read from the IDX file.
pub fn equality_and_in_on_real_labels(factory: &Factory) {
    let (_db, mnist) = with_digits(factory, N);
    for c in 0..10 {
        assert_count(&mnist, json!({"class": c}), count_where(|l| l == c));
    }
    assert_count(
        &mnist,
        json!({"class": {"$eq": 4}}),
        count_where(|l| l == 4),
    );
    assert_count(
        &mnist,
        json!({"class": {"$ne": 4}}),
        count_where(|l| l != 4),
    );
    assert_count(
        &mnist,
        json!({"class": {"$in": [1, 3, 5.0]}}),
        count_where(|l| [1, 3, 5].contains(&l)),
    );
    assert_count(
        &mnist,
        json!({"class": {"$nin": [1, 3, 5]}}),
        count_where(|l| ![1, 3, 5].contains(&l)),
    );
    assert_count(&mnist, json!({"class": {"$in": []}}), 0);
    assert_count(&mnist, json!({"class": {"$nin": []}}), N as u64);
    assert_count(&mnist, json!({"class": {"$in": ["1", true, null]}}), 0);
    let many: Vec<i64> = (0..2000).map(|i| i % 10 + 100 * (i / 10)).collect();
    assert_count(&mnist, json!({"class": {"$in": many}}), N as u64);
}

/// `$gt`, `$gte`, `$lt`, `$lte`, with integers and floats, agree with the labels.
pub fn comparisons_on_real_labels(factory: &Factory) {
    let (_db, mnist) = with_digits(factory, N);
    assert_count(&mnist, json!({"class": {"$gt": 6}}), count_where(|l| l > 6));
    assert_count(
        &mnist,
        json!({"class": {"$gte": 6}}),
        count_where(|l| l >= 6),
    );
    assert_count(&mnist, json!({"class": {"$lt": 2}}), count_where(|l| l < 2));
    assert_count(
        &mnist,
        json!({"class": {"$lte": 2}}),
        count_where(|l| l <= 2),
    );
    assert_count(
        &mnist,
        json!({"class": {"$gt": 2.5, "$lt": 6.5}}),
        count_where(|l| l > 2 && l < 7),
    );
    assert_count(&mnist, json!({"class": {"$gt": "5"}}), 0);
    assert_count(&mnist, json!({"_fold": {"$gte": "train"}}), N as u64);
    assert_count(
        &mnist,
        json!({"_fold": {"$lt": "u"}}),
        mnist.count(json!({"_fold": "train"})).unwrap(),
    );
}

/// `$and`, `$or`, `$nor` and `$not` (field-level and over a whole filter) compose.
pub fn logical_operators_on_real_labels(factory: &Factory) {
    let (_db, mnist) = with_digits(factory, N);
    let valid = mnist.count(json!({"_fold": "valid"})).unwrap();
    assert!(valid > 0 && valid < N as u64);
    assert_count(
        &mnist,
        json!({"$and": [{"class": {"$gte": 3}}, {"class": {"$lte": 5}}]}),
        count_where(|l| (3..=5).contains(&l)),
    );
    assert_count(
        &mnist,
        json!({"$or": [{"class": 0}, {"class": 9}]}),
        count_where(|l| l == 0 || l == 9),
    );
    assert_count(
        &mnist,
        json!({"$nor": [{"class": 0}, {"class": 9}]}),
        count_where(|l| l != 0 && l != 9),
    );
    assert_count(
        &mnist,
        json!({"class": {"$not": {"$gt": 6}}}),
        count_where(|l| l <= 6),
    );
    assert_count(
        &mnist,
        json!({"$not": {"class": {"$in": [0, 1]}}}),
        count_where(|l| l > 1),
    );
    assert_count(
        &mnist,
        json!({"$or": [{"class": 0}, {"$and": [{"class": {"$gt": 7}}, {"$nor": [{"class": 9}]}]}]}),
        count_where(|l| l == 0 || l == 8),
    );
    // The implicit AND of several fields.
    let sevens_valid = mnist
        .find(json!({"class": 7, "_fold": "valid"}))
        .run()
        .unwrap()
        .count() as u64;
    assert_count(
        &mnist,
        json!({"$and": [{"class": 7}, {"_fold": "valid"}]}),
        sevens_valid,
    );
    assert_eq!(
        sevens_valid
            + mnist
                .count(json!({"class": 7, "_fold": {"$ne": "valid"}}))
                .unwrap(),
        count_where(|l| l == 7)
    );
}

fn with_meta(factory: &Factory) -> (vigil::Datalayer, Collection) {
    let db = fresh(factory);
    let coll = db.collection("meta").unwrap();
    let docs: Vec<Document> = labels(N)
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let mut d = Document::new().with("class", c);
            if i % 2 == 0 {
                d.insert(
                    "meta",
                    Document::new()
                        .with("label", Document::new().with("value", c))
                        .with("even", true),
                );
            }
            if i % 3 == 0 {
                d.insert("note", Value::Null);
            }
            d
        })
        .collect();
    coll.insert_many(docs).unwrap();
    (db, coll)
}

/// `$exists` and dotted paths into nested objects, indexed or not.
pub fn exists_and_dotted_paths(factory: &Factory) {
    let (_db, coll) = with_meta(factory);
    let l = labels(N);
    let even = |pred: &dyn Fn(i64) -> bool| {
        l.iter()
            .enumerate()
            .filter(|(i, c)| i % 2 == 0 && pred(**c))
            .count() as u64
    };
    assert_count(
        &coll,
        json!({"meta": {"$exists": true}}),
        (N as u64).div_ceil(2),
    );
    assert_count(&coll, json!({"meta": {"$exists": false}}), N as u64 / 2);
    assert_count(
        &coll,
        json!({"meta.label.value": {"$exists": true}}),
        (N as u64).div_ceil(2),
    );
    assert_count(
        &coll,
        json!({"note": {"$exists": true}}),
        (N as u64).div_ceil(3),
    );
    assert_count(&coll, json!({"meta.label.value": 3}), even(&|c| c == 3));
    assert_count(
        &coll,
        json!({"meta.label.value": {"$gte": 5}, "meta.even": true}),
        even(&|c| c >= 5),
    );
    assert_count(
        &coll,
        json!({"meta.label": {"value": 4}}),
        even(&|c| c == 4),
    );
    assert_count(&coll, json!({"meta.label.missing": {"$exists": true}}), 0);
    coll.create_index("meta.label.value").unwrap();
    assert_count(&coll, json!({"meta.label.value": 3}), even(&|c| c == 3));
}

/// A number never equals a boolean or a string; `null` matches missing fields; negations
/// match documents without the field.
pub fn types_are_strict_and_missing_fields_negate(factory: &Factory) {
    let db = fresh(factory);
    let coll = db.collection("types").unwrap();
    let docs = vec![
        json!({"_id": 1, "x": 1}),
        json!({"_id": 2, "x": true}),
        json!({"_id": 3, "x": "1"}),
        json!({"_id": 4, "x": 1.0}),
        json!({"_id": 5, "x": null}),
        json!({"_id": 6}),
        json!({"_id": 7, "x": [1]}),
        json!({"_id": 8, "x": {"y": 1}}),
        json!({"_id": 9, "x": false}),
        json!({"_id": 10, "x": 0}),
    ];
    coll.insert_many(docs).unwrap();
    let ids = |filter: Json| -> Vec<i64> {
        coll.find(filter)
            .sort(json!({"_id": 1}))
            .run()
            .unwrap()
            .map(|d| d.unwrap().id().unwrap().as_i64().unwrap())
            .collect()
    };
    // An array matches when one of its elements does, as in MongoDB (checked against a
    // MongoDB-wire server).
    assert_eq!(ids(json!({"x": 1})), [1, 4, 7]);
    assert_eq!(ids(json!({"x": true})), [2]);
    assert_eq!(ids(json!({"x": false})), [9]);
    assert_eq!(ids(json!({"x": "1"})), [3]);
    assert_eq!(ids(json!({"x": null})), [5, 6]);
    assert_eq!(ids(json!({"x": {"$ne": null}})), [1, 2, 3, 4, 7, 8, 9, 10]);
    assert_eq!(ids(json!({"x": [1]})), [7]);
    assert_eq!(ids(json!({"x": {"y": 1}})), [8]);
    assert_eq!(ids(json!({"x": {"$ne": 1}})), [2, 3, 5, 6, 8, 9, 10]);
    assert_eq!(ids(json!({"x": {"$gte": 0}})), [1, 4, 7, 10]);
    assert_eq!(ids(json!({"x": {"$lt": 1}})), [10]);
    assert_eq!(
        ids(json!({"x": {"$not": {"$gte": 1}}})),
        [2, 3, 5, 6, 8, 9, 10]
    );
    assert_eq!(ids(json!({"x": {"$in": [true, "1", null]}})), [2, 3, 5, 6]);
    assert_eq!(
        ids(json!({"x": {"$exists": true}})),
        [1, 2, 3, 4, 5, 7, 8, 9, 10]
    );
}

/// Filters on `_id` use its own type too, and `$in` on ids.
pub fn filters_on_ids(factory: &Factory) {
    let db = fresh(factory);
    let coll = db.collection("ids").unwrap();
    coll.insert_many(vec![
        json!({"_id": "a"}),
        json!({"_id": "b"}),
        json!({"_id": 3}),
        json!({"_id": 10}),
    ])
    .unwrap();
    assert_eq!(
        coll.count(json!({"_id": {"$in": ["a", 3, "c"]}})).unwrap(),
        2
    );
    assert_eq!(coll.count(json!({"_id": {"$gt": 2}})).unwrap(), 2);
    assert_eq!(coll.count(json!({"_id": {"$gt": "a"}})).unwrap(), 1);
    assert_eq!(coll.count(json!({"_id": {"$ne": "a"}})).unwrap(), 3);
    assert_eq!(coll.count(json!({"_id": {"$exists": true}})).unwrap(), 4);
    assert_eq!(coll.delete_one(json!({"_id": 10})).unwrap(), 1);
}

/// A filter the backend cannot run is an error naming the operator and where it was.
pub fn bad_filters_are_errors_naming_the_operator(factory: &Factory) {
    let (_db, mnist) = with_digits(factory, 10);
    let cases = [
        (
            json!({"class": {"$regex": "7", "$options": "q"}}),
            "unknown regex option `q`",
        ),
        (json!({"$where": "this.class == 7"}), "`$where`"),
        (
            json!({"class": {"$in": 7}}),
            "`$in` at `class.$in` expects an array",
        ),
        (json!({"class": {"$nin": {"a": 1}}}), "`$nin`"),
        (
            json!({"class": {"$exists": 1}}),
            "`$exists` at `class.$exists` expects true or false",
        ),
        (json!({"class": {"$gt": null}}), "`$gt`"),
        (json!({"$and": {"class": 1}}), "`$and`"),
        (json!({"$or": []}), "non-empty"),
        (json!({"class": {"$foo": 1}}), "unknown operator `$foo`"),
        (json!({"class": {"$gt": 1, "x": 2}}), "cannot also hold"),
        (json!({"cl ass": 1}), "invalid field name"),
        (json!({"a..b": 1}), "invalid field name"),
        (json!([{"class": 1}]), "a filter is a JSON object"),
    ];
    for (filter, expected) in cases {
        let err = mnist.count(filter.clone()).unwrap_err().to_string();
        assert!(
            err.contains(expected),
            "count({filter}): {err} should contain {expected}"
        );
        let err = mnist.find(filter.clone()).run().err().unwrap().to_string();
        assert!(err.contains(expected), "find({filter}): {err}");
        let err = mnist.delete_many(filter.clone()).unwrap_err().to_string();
        assert!(err.contains(expected), "delete_many({filter}): {err}");
    }
    assert!(matches!(
        mnist.count(json!({"a": {"$elemMatch": {"$expr": {"$eq": ["$b", 1]}}}})),
        Err(Error::UnsupportedOperator { .. })
    ));
    assert_eq!(
        mnist.count(json!({})).unwrap(),
        10,
        "nothing was deleted by a bad filter"
    );
}

/// Sort (ascending, descending, compound), skip, limit and projections.
pub fn sort_skip_limit_and_projection(factory: &Factory) {
    let (_db, mnist) = with_digits(factory, 500);
    let l = labels(500);
    let classes = |find: vigil::Find| -> Vec<i64> {
        find.run()
            .unwrap()
            .map(|d| d.unwrap().get("class").unwrap().as_i64().unwrap())
            .collect()
    };
    let mut sorted = l.clone();
    sorted.sort();
    assert_eq!(
        classes(mnist.find(json!({})).sort(json!({"class": 1}))),
        sorted
    );
    sorted.reverse();
    assert_eq!(
        classes(mnist.find(json!({})).sort(json!({"class": -1}))),
        sorted
    );
    assert_eq!(
        classes(
            mnist
                .find(json!({}))
                .sort(json!({"class": -1}))
                .skip(10)
                .limit(5)
        ),
        sorted[10..15]
    );
    assert_eq!(classes(mnist.find(json!({})).skip(495)), l[495..]);
    assert_eq!(
        classes(mnist.find(json!({})).limit(0)).len(),
        500,
        "limit 0 means no limit, as in MongoDB"
    );
    assert_eq!(classes(mnist.find(json!({})).skip(1000)).len(), 0);
    // Compound: by fold, then class descending; ties stay in insertion order.
    let docs: Vec<Document> = mnist
        .find(json!({}))
        .sort(json!({"_fold": 1, "class": -1}))
        .run()
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let keys: Vec<(String, i64)> = docs
        .iter()
        .map(|d| {
            (
                d.get("_fold").unwrap().as_str().unwrap().into(),
                -d.get("class").unwrap().as_i64().unwrap(),
            )
        })
        .collect();
    let mut expected = keys.clone();
    expected.sort();
    assert_eq!(keys, expected);
    // Projections.
    let projected_keys = |projection: Json| -> Vec<String> {
        let doc = mnist
            .find(json!({}))
            .projection(projection)
            .run()
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        doc.iter().map(|(k, _)| k.to_string()).collect()
    };
    assert_eq!(projected_keys(json!({"class": 1})), ["_id", "class"]);
    assert_eq!(
        projected_keys(json!({"img": 0, "_id": 0})),
        ["class", "_fold"]
    );
    assert_eq!(
        projected_keys(json!({"class": true, "_id": false})),
        ["class"]
    );
    assert!(mnist
        .find(json!({}))
        .projection(json!({"class": 1, "img": 0}))
        .run()
        .is_err());
    assert!(mnist
        .find(json!({}))
        .sort(json!({"class": 2}))
        .run()
        .is_err());
}

/// A cursor over 10,000 documents streams; it can be dropped early, and the collection can be
/// written while a cursor is open.
pub fn cursors_stream_and_allow_writes_while_iterating(factory: &Factory) {
    let (_db, mnist) = with_digits(factory, 10_000);
    let mut cursor = mnist.find(json!({})).run().unwrap();
    let first: Vec<Document> = cursor.by_ref().take(10).map(Result::unwrap).collect();
    assert_eq!(first.len(), 10);
    drop(cursor);
    let mut seen = 0u64;
    for doc in mnist.find(json!({"class": 5})).run().unwrap() {
        let doc = doc.unwrap();
        mnist
            .update_one(
                json!({"_id": doc.id().unwrap().to_json()}),
                json!({"$set": {"seen": true}}),
            )
            .unwrap();
        seen += 1;
    }
    assert_eq!(
        seen,
        labels(10_000).iter().filter(|&&c| c == 5).count() as u64
    );
    assert_eq!(mnist.count(json!({"seen": true})).unwrap(), seen);
    assert_eq!(mnist.find(json!({})).run().unwrap().count(), 10_000);
}
