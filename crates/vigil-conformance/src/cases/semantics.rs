//! MongoDB's semantics beyond plain equality: `$expr` comparisons, the order of types in
//! sorts, digit path segments, and the array and type operators. Expectations are MongoDB's
//! answers (a reference written here, or taken from a MongoDB-wire server).

use serde_json::Value as Json;
use vigil::{json, Value};

use super::fresh;
use crate::Factory;

/// MongoDB's order of types for `$expr` comparisons: missing, null, numbers, strings,
/// booleans (objects and arrays are not among these values).
fn type_rank(v: Option<&Json>) -> u8 {
    match v {
        None => 0,
        Some(Json::Null) => 1,
        Some(Json::Number(_)) => 2,
        Some(Json::String(_)) => 3,
        Some(Json::Object(_)) => 4,
        Some(Json::Array(_)) => 5,
        Some(Json::Bool(_)) => 6,
    }
}

/// The reference: MongoDB's comparison of two scalar values (or missing ones).
fn mongo_cmp(a: Option<&Json>, b: Option<&Json>) -> std::cmp::Ordering {
    let (ra, rb) = (type_rank(a), type_rank(b));
    if ra != rb {
        return ra.cmp(&rb);
    }
    match (a, b) {
        (Some(Json::Number(x)), Some(Json::Number(y))) => {
            x.as_f64().unwrap().total_cmp(&y.as_f64().unwrap())
        }
        (Some(Json::String(x)), Some(Json::String(y))) => x.as_bytes().cmp(y.as_bytes()),
        (Some(Json::Bool(x)), Some(Json::Bool(y))) => x.cmp(y),
        _ => std::cmp::Ordering::Equal,
    }
}

/// `$expr` compares two fields of a document (or a field and a constant) by MongoDB's rules:
/// types in MongoDB's order, numbers across integer and float, a missing field equal only to
/// a missing one. Every pair of 15 values is checked against a reference written here.
pub fn expr_compares_fields_by_mongodb_rules(factory: &Factory) {
    let db = fresh(factory);
    let coll = db.collection("pairs").unwrap();
    let values: Vec<Option<Json>> = vec![
        None,
        Some(json!(null)),
        Some(json!(0)),
        Some(json!(1)),
        Some(json!(1.0)),
        Some(json!(2.5)),
        Some(json!(-3)),
        Some(json!("")),
        Some(json!("1")),
        Some(json!("a")),
        Some(json!("ab")),
        Some(json!("B")),
        Some(json!("é")),
        Some(json!(false)),
        Some(json!(true)),
    ];
    let mut docs = Vec::new();
    let mut pairs = Vec::new();
    for a in &values {
        for b in &values {
            let mut d = serde_json::Map::new();
            d.insert("_id".into(), json!(pairs.len()));
            if let Some(a) = a {
                d.insert("a".into(), a.clone());
            }
            if let Some(b) = b {
                d.insert("n".into(), json!({"b": b}));
            }
            docs.push(Json::Object(d));
            pairs.push((a.clone(), b.clone()));
        }
    }
    coll.insert_many(docs).unwrap();
    let ids = |filter: Json| -> Vec<i64> {
        let mut out: Vec<i64> = coll
            .find(filter)
            .projection(json!({"_id": 1}))
            .run()
            .unwrap()
            .map(|d| d.unwrap().id().unwrap().as_i64().unwrap())
            .collect();
        out.sort();
        out
    };
    use std::cmp::Ordering::*;
    type Holds = fn(std::cmp::Ordering) -> bool;
    let ops: [(&str, Holds); 6] = [
        ("$eq", |o| o == Equal),
        ("$ne", |o| o != Equal),
        ("$gt", |o| o == Greater),
        ("$gte", |o| o != Less),
        ("$lt", |o| o == Less),
        ("$lte", |o| o != Greater),
    ];
    for (op, holds) in ops {
        let expected: Vec<i64> = (0..pairs.len() as i64)
            .filter(|&i| {
                let (a, b) = &pairs[i as usize];
                holds(mongo_cmp(a.as_ref(), b.as_ref()))
            })
            .collect();
        assert_eq!(
            ids(json!({"$expr": {op: ["$a", "$n.b"]}})),
            expected,
            "{op} of two fields"
        );
        // A constant on either side.
        for c in [json!(1), json!("ab"), json!(true), json!(null)] {
            let expected: Vec<i64> = (0..pairs.len() as i64)
                .filter(|&i| holds(mongo_cmp(pairs[i as usize].0.as_ref(), Some(&c))))
                .collect();
            assert_eq!(
                ids(json!({"$expr": {op: ["$a", c]}})),
                expected,
                "{op} of a and {c}"
            );
            let flipped: Vec<i64> = (0..pairs.len() as i64)
                .filter(|&i| holds(mongo_cmp(Some(&c), pairs[i as usize].0.as_ref())))
                .collect();
            assert_eq!(
                ids(json!({"$expr": {op: [c, "$a"]}})),
                flipped,
                "{op} of {c} and a"
            );
        }
    }
    // Logical operators inside `$expr`, and `$expr` beside ordinary conditions.
    let lt_or_eq =
        ids(json!({"$expr": {"$or": [{"$lt": ["$a", "$n.b"]}, {"$eq": ["$a", "$n.b"]}]}}));
    assert_eq!(lt_or_eq, ids(json!({"$expr": {"$lte": ["$a", "$n.b"]}})));
    let not_gt = ids(json!({"$expr": {"$not": [{"$gt": ["$a", "$n.b"]}]}}));
    assert_eq!(not_gt, lt_or_eq);
    let both = ids(
        json!({"a": {"$gt": 0}, "$expr": {"$and": [{"$gt": ["$a", "$n.b"]}, {"$ne": ["$n.b", null]}]}}),
    );
    let expected: Vec<i64> = (0..pairs.len() as i64)
        .filter(|&i| {
            let (a, b) = &pairs[i as usize];
            a.as_ref().and_then(Json::as_f64).is_some_and(|x| x > 0.0)
                && mongo_cmp(a.as_ref(), b.as_ref()) == Greater
                && mongo_cmp(b.as_ref(), Some(&Json::Null)) != Equal
        })
        .collect();
    assert_eq!(both, expected);
    // Errors name what is not supported.
    for (filter, expected) in [
        (json!({"$expr": {"$add": ["$a", 1]}}), "`$add`"),
        (json!({"$expr": {"$eq": ["$a"]}}), "two operands"),
        (json!({"$expr": {"$eq": ["$$ROOT", 1]}}), "`$$ROOT`"),
        (json!({"$expr": {"$eq": ["$a", [1]]}}), "constant"),
        (json!({"$expr": {"$eq": ["$a b", 1]}}), "invalid field name"),
        (json!({"$expr": 1}), "`$expr`"),
    ] {
        let err = coll.count(filter.clone()).unwrap_err().to_string();
        assert!(err.contains(expected), "{filter}: {err}");
    }
}

/// Sorting follows MongoDB's order across types, with arrays sorted by their smallest element
/// ascending and their largest descending, computed in the database. Checked against a
/// reference sort written here with `vigil::order::compare`.
pub fn sort_follows_mongodbs_order_of_types_and_arrays(factory: &Factory) {
    let db = fresh(factory);
    let coll = db.collection("mixed").unwrap();
    let values = [
        json!(3),
        json!("b"),
        json!(null),
        json!(true),
        json!([]),
        json!(-1.5),
        json!({"a": 1}),
        json!([2, "z"]),
        json!("A"),
        json!(false),
        json!([true, 0.5]),
        json!(10),
        json!([[1], "a"]),
        json!({"b": 1}),
        json!(""),
        json!([null, 7]),
        json!(2),
    ];
    let mut docs: Vec<Json> = values
        .iter()
        .enumerate()
        .map(|(i, v)| json!({"_id": i, "v": v}))
        .collect();
    docs.push(json!({"_id": values.len()})); // missing sorts as null
    coll.insert_many(docs).unwrap();
    let value_of = |i: usize| values.get(i).map(Value::from_json).unwrap_or(Value::Null);
    // The value an array sorts by in a direction; an empty array sorts before everything.
    let key = |i: usize, ascending: bool| -> Option<Value> {
        match value_of(i) {
            Value::Array(items) if items.is_empty() => None,
            Value::Array(items) => items.into_iter().reduce(|a, b| {
                let o = vigil::order::compare(&a, &b);
                if (o == std::cmp::Ordering::Greater) == ascending {
                    b
                } else {
                    a
                }
            }),
            v => Some(v),
        }
    };
    for ascending in [true, false] {
        let mut expected: Vec<usize> = (0..=values.len()).collect();
        expected.sort_by(|&a, &b| {
            let o = match (key(a, ascending), key(b, ascending)) {
                (None, None) => std::cmp::Ordering::Equal,
                (None, Some(_)) => std::cmp::Ordering::Less,
                (Some(_), None) => std::cmp::Ordering::Greater,
                (Some(x), Some(y)) => vigil::order::compare(&x, &y),
            };
            if ascending {
                o
            } else {
                o.reverse()
            }
        });
        let got: Vec<usize> = coll
            .find(json!({}))
            .sort(json!({"v": if ascending { 1 } else { -1 }}))
            .run()
            .unwrap()
            .map(|d| d.unwrap().id().unwrap().as_i64().unwrap() as usize)
            .collect();
        assert_eq!(got, expected, "ascending: {ascending}");
    }
}

/// A path segment of digits indexes an array (`tags.1`) or names an object's field, as in
/// MongoDB, in filters, sorts and updates alike; in `$expr` it names a field only.
pub fn digit_segments_index_arrays(factory: &Factory) {
    let db = fresh(factory);
    let c = db.collection("idx").unwrap();
    c.insert_many(vec![
        json!({"_id": 1, "t": ["a", "b"]}),
        json!({"_id": 2, "t": {"0": "a", "1": "c"}}),
        json!({"_id": 3, "t": ["b"]}),
        json!({"_id": 4}),
    ])
    .unwrap();
    let ids = |f: Json| -> Vec<i64> {
        c.find(f)
            .sort(json!({"_id": 1}))
            .run()
            .unwrap()
            .map(|d| d.unwrap().id().unwrap().as_i64().unwrap())
            .collect()
    };
    assert_eq!(ids(json!({"t.0": "a"})), [1, 2]);
    assert_eq!(ids(json!({"t.1": {"$gt": "a"}})), [1, 2]);
    assert_eq!(ids(json!({"t.1": null})), [3, 4]);
    // In `$expr`, as in MongoDB's aggregation, digits are only ever a field's name.
    assert_eq!(ids(json!({"$expr": {"$eq": ["$t.0", "a"]}})), [2]);
    assert_eq!(
        ids(json!({"$expr": {"$eq": ["$t.0", "b"]}})),
        Vec::<i64>::new()
    );
    let sorted: Vec<i64> = c
        .find(json!({}))
        .sort(json!({"t.1": -1, "_id": 1}))
        .run()
        .unwrap()
        .map(|d| d.unwrap().id().unwrap().as_i64().unwrap())
        .collect();
    assert_eq!(sorted, [2, 1, 3, 4]);
    c.update_one(json!({"_id": 3}), json!({"$set": {"t.0": "z"}}))
        .unwrap();
    assert_eq!(ids(json!({"t.0": "z"})), [3]);
}

/// `$size`, `$all`, `$type` and `$mod`, with MongoDB's answers (taken from a MongoDB-wire
/// server on these documents): arrays match by their elements, `$size` and `$type: "array"`
/// by the field itself.
pub fn array_and_type_operators(factory: &Factory) {
    let db = fresh(factory);
    let c = db.collection("ops").unwrap();
    c.insert_many(vec![
        json!({"_id": 1, "x": 1}),
        json!({"_id": 2, "x": true}),
        json!({"_id": 3, "x": "1"}),
        json!({"_id": 4, "x": 1.5}),
        json!({"_id": 5, "x": null}),
        json!({"_id": 6}),
        json!({"_id": 7, "x": [1, "a"]}),
        json!({"_id": 8, "x": {"y": 1}}),
        json!({"_id": 9, "x": [[1], 7]}),
        json!({"_id": 10, "x": -7}),
    ])
    .unwrap();
    let ids = |f: Json| -> Vec<i64> {
        let mut out: Vec<i64> = c
            .find(f)
            .run()
            .unwrap()
            .map(|d| d.unwrap().id().unwrap().as_i64().unwrap())
            .collect();
        out.sort();
        out
    };
    let cases: [(Json, &[i64]); 14] = [
        (json!({"x": {"$size": 2}}), &[7, 9]),
        (json!({"x": {"$size": 0}}), &[]),
        (json!({"x": {"$all": [1, "a"]}}), &[7]),
        (json!({"x": {"$all": [7]}}), &[9]),
        (json!({"x": {"$all": []}}), &[]),
        (json!({"x": {"$type": "string"}}), &[3, 7]),
        (json!({"x": {"$type": "array"}}), &[7, 9]),
        (json!({"x": {"$type": ["double", "bool"]}}), &[2, 4]),
        (json!({"x": {"$type": "int"}}), &[1, 7, 9, 10]),
        (json!({"x": {"$type": "number"}}), &[1, 4, 7, 9, 10]),
        (json!({"x": {"$type": 10}}), &[5]),
        (json!({"x": {"$mod": [2, 1]}}), &[1, 4, 7, 9]),
        (json!({"x": {"$mod": [2, -1]}}), &[10]),
        (
            json!({"x": {"$not": {"$mod": [2, 1]}}}),
            &[2, 3, 5, 6, 8, 10],
        ),
    ];
    for (f, expected) in cases {
        assert_eq!(ids(f.clone()), expected, "{f}");
    }
    // `$elemMatch`: one element satisfies every condition (unlike conditions side by side).
    c.insert_one(json!({"_id": 11, "x": [2, 9]})).unwrap();
    for (f, expected) in [
        (
            json!({"x": {"$elemMatch": {"$gte": 1, "$lt": 3}}}),
            &[7, 11][..],
        ),
        (json!({"x": {"$elemMatch": {"$eq": "a"}}}), &[7]),
        (json!({"x": {"$elemMatch": {"$in": [7, 9]}}}), &[9, 11]),
        (json!({"x": {"$elemMatch": {"$gt": 1, "$lt": 9}}}), &[9, 11]),
        (json!({"x": {"$gt": 1, "$lt": 9}}), &[4, 9, 11]),
        (json!({"x": {"$elemMatch": {"$type": "array"}}}), &[9]),
    ] {
        assert_eq!(ids(f.clone()), expected, "{f}");
    }
    for (f, expected) in [
        (
            json!({"x": {"$elemMatch": {"y": {"$regex": "("}}}}),
            "not a regular expression",
        ),
        (
            json!({"x": {"$elemMatch": {"$ne": 1}}}),
            "inside $elemMatch",
        ),
        (json!({"x": {"$size": -1}}), "non-negative integer"),
        (json!({"x": {"$mod": [0, 1]}}), "the divisor not 0"),
        (json!({"x": {"$type": "binData"}}), "a type vigil stores"),
        (json!({"x": {"$all": 1}}), "an array"),
    ] {
        let err = c.count(f.clone()).unwrap_err().to_string();
        assert!(err.contains(expected), "{f}: {err}");
    }
}

/// A dotted path reaches into arrays of documents, at any depth, as in MongoDB (answers taken
/// from a MongoDB-wire server on these documents): `n.b` over `{"n": [{"b": 1}]}`.
pub fn dotted_paths_reach_into_arrays_of_documents(factory: &Factory) {
    let db = fresh(factory);
    let c = db.collection("paths").unwrap();
    c.insert_many(vec![
        json!({"_id": 1, "n": {"b": 1}}),
        json!({"_id": 2, "n": [{"b": 1}, {"b": 5}]}),
        json!({"_id": 3, "n": [{"c": 1}, {"b": [7, 8]}]}),
        json!({"_id": 4, "n": [{"m": [{"b": 2}]}]}),
        json!({"_id": 5, "n": [1, 2]}),
        json!({"_id": 6}),
        json!({"_id": 7, "n": {"m": [{"b": 9}, {"b": 2}]}}),
    ])
    .unwrap();
    let ids = |f: Json| -> Vec<i64> {
        let mut out: Vec<i64> = c
            .find(f)
            .run()
            .unwrap()
            .map(|d| d.unwrap().id().unwrap().as_i64().unwrap())
            .collect();
        out.sort();
        out
    };
    for (f, expected) in [
        (json!({"n.b": 1}), &[1, 2][..]),
        (json!({"n.b": 7}), &[3]),
        (json!({"n.b": null}), &[3, 4, 6, 7]),
        (json!({"n.b": {"$exists": false}}), &[4, 5, 6, 7]),
        (json!({"n.b": {"$gt": 4}}), &[2, 3]),
        (json!({"n.m.b": 2}), &[4, 7]),
        (json!({"n.b": {"$ne": 1}}), &[3, 4, 5, 6, 7]),
        (json!({"n.b": {"$size": 2}}), &[3]),
        (json!({"n.0.b": 1}), &[2]),
    ] {
        assert_eq!(ids(f.clone()), expected, "{f}");
        assert_eq!(c.count(f.clone()).unwrap(), expected.len() as u64, "{f}");
    }
    // The same with the path indexed.
    c.create_index("n.b").unwrap();
    assert_eq!(ids(json!({"n.b": 1})), [1, 2]);
    assert_eq!(ids(json!({"n.b": null})), [3, 4, 6, 7]);
}
