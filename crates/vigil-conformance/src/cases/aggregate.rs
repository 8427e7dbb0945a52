//! `$regex`, `$elemMatch` over documents, filters judged in the process (an aggregation's
//! `$match` after a reshaping stage) against the same filters run in the database, and
//! aggregation pipelines on real digits.

use serde_json::Value as Json;
use vigil::{json, Filter};

use super::{fresh, labels, with_digits};
use crate::Factory;

fn sorted_ids(docs: impl Iterator<Item = vigil::Result<vigil::Document>>) -> Vec<i64> {
    let mut out: Vec<i64> = docs
        .map(|d| d.unwrap().id().unwrap().as_i64().unwrap())
        .collect();
    out.sort();
    out
}

/// Documents with every shape the corpus of filters below reaches into.
fn corpus() -> Vec<Json> {
    vec![
        json!({"_id": 1, "name": "Alice", "tags": ["red", "blue"], "n": [{"b": 1, "c": "x"}, {"b": 5, "c": "y"}]}),
        json!({"_id": 2, "name": "bob", "tags": "red", "n": {"b": 1, "c": "y"}}),
        json!({"_id": 3, "name": "ALBERT\nSMITH", "tags": [], "n": [{"b": [7, 8]}, {"c": "x"}]}),
        json!({"_id": 4, "name": null, "tags": ["green", ["red"]], "n": [1, 2]}),
        json!({"_id": 5, "tags": [1, "2", 3.5], "n": [{"m": [{"b": 2, "c": "z"}]}]}),
        json!({"_id": 6, "name": "élan 42", "n": [{"b": 5, "c": "x"}, {"b": 1, "c": "y"}]}),
        json!({"_id": 7, "name": 17, "tags": ["a1", "b22", "c333"], "n": {"m": [{"b": 9}, {"b": 2}]}}),
        json!({"_id": 8, "name": ["ann", "Zed"], "tags": [null], "n": [{"b": null}, {}]}),
    ]
}

/// Filters over [`corpus`] with MongoDB's answers.
fn filters() -> Vec<(Json, Vec<i64>)> {
    vec![
        (json!({"name": {"$regex": "^a"}}), vec![8]),
        (
            json!({"name": {"$regex": "^a", "$options": "i"}}),
            vec![1, 3, 8],
        ),
        (
            json!({"name": {"$regex": "smith$", "$options": "i"}}),
            vec![3],
        ),
        (
            json!({"name": {"$regex": "^smith", "$options": "im"}}),
            vec![3],
        ),
        (
            json!({"name": {"$regex": "^smith", "$options": "i"}}),
            vec![],
        ),
        (json!({"name": {"$regex": "T.S"}}), vec![]),
        (json!({"name": {"$regex": "T.S", "$options": "s"}}), vec![3]),
        (
            json!({"name": {"$regex": "b o b", "$options": "x"}}),
            vec![2],
        ),
        (json!({"name": {"$regex": r"\d+"}}), vec![6]),
        (json!({"name": {"$regex": r"^\w+ \d"}}), vec![]),
        (json!({"name": {"$regex": r"^.lan"}}), vec![6]),
        (json!({"name": {"$regex": r"\bZed\b"}}), vec![8]),
        (
            json!({"name": {"$not": {"$regex": "^a", "$options": "i"}}}),
            vec![2, 4, 5, 6, 7],
        ),
        (json!({"tags": {"$regex": "^r"}}), vec![1, 2]),
        (json!({"tags": {"$regex": r"^[a-c]\d{2,}$"}}), vec![7]),
        (json!({"tags": {"$regex": "2"}}), vec![5, 7]),
        (json!({"n.c": {"$regex": "[xz]"}}), vec![1, 3, 6]),
        (json!({"n.m.c": {"$regex": "z"}}), vec![5]),
        (
            json!({"tags": {"$elemMatch": {"$regex": "^b"}}}),
            vec![1, 7],
        ),
        (json!({"n": {"$elemMatch": {"b": 1, "c": "y"}}}), vec![6]),
        (
            json!({"n": {"$elemMatch": {"b": {"$gte": 5}, "c": "x"}}}),
            vec![6],
        ),
        (json!({"n": {"$elemMatch": {"b": 7}}}), vec![3]),
        (json!({"n": {"$elemMatch": {"b": null}}}), vec![3, 5, 8]),
        (
            json!({"n": {"$elemMatch": {"$or": [{"b": 5}, {"c": "x"}]}}}),
            vec![1, 3, 6],
        ),
        (json!({"n": {"$elemMatch": {"m.b": 2}}}), vec![5]),
        (
            json!({"n": {"$elemMatch": {"m": {"$elemMatch": {"b": 2, "c": "z"}}}}}),
            vec![5],
        ),
        (
            json!({"n": {"$not": {"$elemMatch": {"b": 1}}}}),
            vec![2, 3, 4, 5, 7, 8],
        ),
        (json!({"n.b": 1}), vec![1, 2, 6]),
        (json!({"n.b": null}), vec![3, 5, 7, 8]),
        (json!({"n.b": {"$gt": 4}}), vec![1, 3, 6]),
        (json!({"n.m.b": 2}), vec![5, 7]),
        (json!({"n.0.b": 1}), vec![1]),
        // A digit after an array indexes it and names a field of each of its documents: a
        // document without field `1` holds null there.
        (json!({"n.1": null}), vec![1, 2, 3, 5, 6, 7, 8]),
        (json!({"n.1": {"$exists": true}}), vec![1, 3, 4, 6, 8]),
        (json!({"tags": "red"}), vec![1, 2]),
        (json!({"tags": ["red"]}), vec![4]),
        (json!({"tags": null}), vec![6, 8]),
        (json!({"tags": {"$size": 0}}), vec![3]),
        (json!({"tags": {"$all": ["red", "blue"]}}), vec![1]),
        (json!({"tags": {"$type": "string"}}), vec![1, 2, 4, 5, 7]),
        (json!({"tags": {"$gte": 2}}), vec![5]),
        (json!({"tags": {"$ne": "red"}}), vec![3, 4, 5, 6, 7, 8]),
        (json!({"tags": {"$nin": ["red", 1]}}), vec![3, 4, 6, 7, 8]),
        (json!({"name": {"$in": ["bob", "ann"]}}), vec![2, 8]),
        (json!({"name": {"$exists": false}}), vec![5]),
        (json!({"name": {"$mod": [5, 2]}}), vec![7]),
        (
            json!({"$nor": [{"name": {"$type": "string"}}, {"tags": "red"}]}),
            vec![4, 5, 7],
        ),
        (json!({"$expr": {"$lt": ["$name", 17]}}), vec![4, 5]),
        (json!({"$expr": {"$gte": ["$name", "b"]}}), vec![2, 6, 8]),
        // `$expr` reads dotted paths as an aggregation does: through an array, the array of
        // what its elements hold; a number is a field name, not an index.
        (json!({"$expr": {"$eq": ["$tags.0", "red"]}}), vec![]),
        (
            json!({"$expr": {"$gt": ["$n.b", "zzz"]}}),
            vec![1, 3, 4, 5, 6, 8],
        ),
        (json!({"$expr": {"$lt": ["$n.m.b", null]}}), vec![2]),
    ]
}

/// `$regex` (with each option) and `$elemMatch` over documents, in the database, give
/// MongoDB's answers; the same filters judged in the process (after a reshaping stage) give
/// the same answers, so a `$match` means one thing wherever it runs.
pub fn regex_elem_match_and_in_process_matching(factory: &Factory) {
    let db = fresh(factory);
    let c = db.collection("shapes").unwrap();
    c.insert_many(corpus()).unwrap();
    let all: Vec<vigil::Document> = c
        .find(json!({}))
        .run()
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for (f, expected) in filters() {
        assert_eq!(
            sorted_ids(c.find(f.clone()).run().unwrap()),
            expected,
            "find {f}"
        );
        assert_eq!(
            c.count(f.clone()).unwrap(),
            expected.len() as u64,
            "count {f}"
        );
        let parsed = Filter::parse(&f).unwrap();
        let in_process: Vec<i64> = all
            .iter()
            .filter(|d| parsed.matches(d))
            .map(|d| d.id().unwrap().as_i64().unwrap())
            .collect();
        assert_eq!(in_process, expected, "in process {f}");
        let pipeline = json!([{"$addFields": {"seen": true}}, {"$match": f}]);
        assert_eq!(
            sorted_ids(c.aggregate(pipeline).unwrap()),
            expected,
            "$match after $addFields {f}"
        );
    }
    // Indexed paths answer the same.
    c.create_index("name").unwrap();
    c.create_index("n.b").unwrap();
    for (f, expected) in filters() {
        assert_eq!(
            sorted_ids(c.find(f.clone()).run().unwrap()),
            expected,
            "indexed {f}"
        );
    }
    // Updates and deletes select with regexes too.
    let out = c
        .update_many(
            json!({"name": {"$regex": "^a", "$options": "i"}}),
            json!({"$set": {"a": true}}),
        )
        .unwrap();
    assert_eq!(out.matched, 3);
    assert_eq!(
        c.delete_many(json!({"tags": {"$regex": "^gr"}})).unwrap(),
        1
    );
    // What the engine lacks is an error naming it, never a wrong answer.
    for (f, what) in [
        (json!({"name": {"$regex": "a(?=b)"}}), "look-ahead"),
        (json!({"name": {"$regex": "(a)\\1"}}), "backreferences"),
        (
            json!({"name": {"$regex": "a", "$options": "g"}}),
            "option `g`",
        ),
        (json!({"name": {"$regex": 5}}), "pattern string"),
        (
            json!({"n": {"$elemMatch": {"$expr": {"$eq": ["$b", 1]}}}}),
            "$expr",
        ),
    ] {
        let e = c.find(f.clone()).run().err().unwrap().to_string();
        assert!(e.contains(what), "{f}: {e}");
    }
}

/// Pipelines on real digits: the per-class counts equal the labels', `$match`/`$sort`/
/// `$skip`/`$limit` heads agree with the same find, and `$unwind`, `$project`, `$count` and
/// errors behave as in MongoDB.
pub fn aggregate_pipelines_on_real_digits(factory: &Factory) {
    let n = 300;
    let (_db, mnist) = with_digits(factory, n);
    let labels = labels(n);
    // Per-class counts, computed by the pipeline and from the labels.
    let out: Vec<Json> = mnist
        .aggregate(json!([
            {"$group": {"_id": "$class", "n": {"$sum": 1}, "same": {"$first": "$class"}}},
            {"$sort": {"_id": 1}},
            {"$project": {"n": 1, "ok": {"$eq": ["$same", "$_id"]}}}
        ]))
        .unwrap()
        .map(|d| d.unwrap().to_json())
        .collect();
    let expected: Vec<Json> = (0..10)
        .filter_map(|class| {
            let count = labels.iter().filter(|&&l| l == class).count();
            (count > 0).then(|| json!({"_id": class, "n": count, "ok": true}))
        })
        .collect();
    assert_eq!(out, expected);

    // The head runs in the database and equals the same find.
    let head = json!([{"$match": {"class": {"$gte": 5}}}, {"$sort": {"class": -1}}, {"$skip": 7}, {"$limit": 20}, {"$project": {"img": 0}}]);
    let from_pipeline: Vec<Json> = mnist
        .aggregate(head)
        .unwrap()
        .map(|d| d.unwrap().to_json())
        .collect();
    let from_find: Vec<Json> = mnist
        .find(json!({"class": {"$gte": 5}}))
        .sort(json!({"class": -1}))
        .skip(7)
        .limit(20)
        .projection(json!({"img": 0}))
        .run()
        .unwrap()
        .map(|d| d.unwrap().to_json())
        .collect();
    assert_eq!(from_pipeline.len(), 20);
    assert_eq!(from_pipeline, from_find);

    // $count, in the database and after a stage.
    let sevens = labels.iter().filter(|&&l| l == 7).count() as i64;
    for pipeline in [
        json!([{"$match": {"class": 7}}, {"$count": "sevens"}]),
        json!([{"$project": {"class": 1}}, {"$match": {"class": 7}}, {"$count": "sevens"}]),
    ] {
        let out: Vec<Json> = mnist
            .aggregate(pipeline.clone())
            .unwrap()
            .map(|d| d.unwrap().to_json())
            .collect();
        assert_eq!(out, vec![json!({"sevens": sevens})], "{pipeline}");
    }
    let none: Vec<_> = mnist
        .aggregate(json!([{"$match": {"class": 42}}, {"$count": "n"}]))
        .unwrap()
        .collect();
    assert!(none.is_empty());
    let window: Vec<_> = mnist
        .aggregate(json!([{"$limit": 3}, {"$skip": 5}]))
        .unwrap()
        .collect();
    assert!(window.is_empty());

    // $unwind of a computed array, then a group over it: every digit counted twice.
    let out: Vec<Json> = mnist
        .aggregate(json!([
            {"$project": {"pair": ["$class", {"$add": ["$class", 10]}]}},
            {"$unwind": "$pair"},
            {"$group": {"_id": null, "n": {"$count": {}}, "total": {"$sum": "$pair"}, "low": {"$min": "$pair"}, "high": {"$max": "$pair"}, "mean": {"$avg": "$pair"}}}
        ]))
        .unwrap()
        .map(|d| d.unwrap().to_json())
        .collect();
    let sum: i64 = labels.iter().sum();
    let total = 2 * sum + 10 * n as i64;
    assert_eq!(
        out,
        vec![json!({
            "_id": null,
            "n": 2 * n,
            "total": total,
            "low": labels.iter().min(),
            "high": labels.iter().max().map(|m| m + 10),
            "mean": total as f64 / (2 * n) as f64
        })]
    );

    // Errors name the stage; nothing is read before the pipeline is valid.
    for (p, what) in [
        (
            json!([{"$group": {"_id": "$class", "n": {"$sum": 1}}}, {"$lookup": {}}]),
            "$lookup",
        ),
        (json!([{"$sort": {"class": 2}}]), "direction"),
        (json!({"$match": {}}), "array of stages"),
    ] {
        let e = mnist.aggregate(p.clone()).err().unwrap().to_string();
        assert!(e.contains(what), "{p}: {e}");
    }
    let e = mnist
        .aggregate(json!([{"$project": {"x": {"$add": ["$class", "$_fold"]}}}]))
        .unwrap()
        .next()
        .unwrap()
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`$add` takes numbers") && e.contains("0.$project"),
        "{e}"
    );
}

/// A sort by a path through arrays of documents sorts by the values the path reaches (the
/// smallest ascending, the largest descending; an element document lacking the field reaches
/// null), in the database and in a pipeline's in-process `$sort` alike.
pub fn sort_by_paths_through_arrays(factory: &Factory) {
    let db = fresh(factory);
    let c = db.collection("reach").unwrap();
    c.insert_many(vec![
        json!({"_id": 1, "n": [{"b": 1}, {"b": 5}]}),
        json!({"_id": 2, "n": {"b": 3}}),
        json!({"_id": 3, "n": [{"c": 1}]}),
        // `n.b` reaches nothing in an empty array: null, not the empty array's place.
        json!({"_id": 4, "n": []}),
        json!({"_id": 5, "n": [{"b": [7, 0]}]}),
        json!({"_id": 6}),
        json!({"_id": 7, "n": [{"b": "x"}, {"b": 2}]}),
        // A document without `b` adds nothing where another one has it: 8 sorts by 4.
        json!({"_id": 8, "n": [{"b": 4}, {"c": 1}]}),
        // An empty array reached sorts below null (MongoDB's undefined key) ascending.
        json!({"_id": 9, "n": [{"b": []}, {"b": 3}]}),
    ])
    .unwrap();
    let ids = |docs: vigil::Cursor| -> Vec<i64> {
        docs.map(|d| d.unwrap().id().unwrap().as_i64().unwrap())
            .collect()
    };
    for (dir, expected) in [
        (1, [9, 3, 4, 6, 5, 1, 7, 2, 8]),
        (-1, [7, 5, 1, 8, 2, 9, 3, 4, 6]),
    ] {
        let sort = json!({"n.b": dir});
        assert_eq!(
            ids(c.find(json!({})).sort(sort.clone()).run().unwrap()),
            expected,
            "find {sort}"
        );
        let pipeline = json!([{"$addFields": {"z": 1}}, {"$sort": sort}]);
        assert_eq!(
            ids(c.aggregate(pipeline).unwrap()),
            expected,
            "in process {sort}"
        );
    }
}

/// Objects compare field by field (the value's type, then the name, then the value) and
/// arrays element by element, in sorts and in `$expr`, where their JSON text would order them
/// otherwise (`{"a": "x"}` before `{"a": 1}`, `[10]` before `[9]`).
pub fn objects_and_arrays_order_as_mongodb_does(factory: &Factory) {
    let db = fresh(factory);
    let c = db.collection("composite").unwrap();
    // In MongoDB's order; inserted shuffled.
    let ordered = [
        json!({}),
        json!({"a": 1}),
        json!({"a": 1, "b": 1}),
        json!({"b": 0}),
        json!({"a": "x"}),
        json!({"a": {}}),
        json!({"a": [9]}),
        json!({"a": [10]}),
        json!({"a": [[]]}),
        json!({"a": true}),
    ];
    let shuffle = [4, 9, 0, 7, 2, 5, 8, 1, 6, 3];
    c.insert_many(
        shuffle
            .iter()
            .map(|&i| json!({"_id": i, "v": ordered[i], "w": {"a": "x"}}))
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let sorted = |dir: i64| -> Vec<i64> {
        c.find(json!({}))
            .sort(json!({"v": dir}))
            .run()
            .unwrap()
            .map(|d| d.unwrap().id().unwrap().as_i64().unwrap())
            .collect()
    };
    let ascending: Vec<i64> = (0..ordered.len() as i64).collect();
    assert_eq!(sorted(1), ascending);
    assert_eq!(
        sorted(-1),
        ascending.iter().rev().copied().collect::<Vec<_>>()
    );
    let below_w = sorted_ids(
        c.find(json!({"$expr": {"$lt": ["$v", "$w"]}}))
            .run()
            .unwrap(),
    );
    assert_eq!(below_w, vec![0, 1, 2, 3]);
    // An array sorts by its smallest element ascending, here an array itself.
    let t = db.collection("nested").unwrap();
    t.insert_many(vec![
        json!({"_id": 1, "t": [[10], [12]]}),
        json!({"_id": 2, "t": [[9], "s"]}),
        json!({"_id": 3, "t": [[9, 1]]}),
    ])
    .unwrap();
    let order: Vec<i64> = t
        .find(json!({}))
        .sort(json!({"t": 1}))
        .run()
        .unwrap()
        .map(|d| d.unwrap().id().unwrap().as_i64().unwrap())
        .collect();
    // Smallest elements: "s" (strings before arrays) for 2, [9, 1] for 3, [10] for 1.
    assert_eq!(order, vec![2, 3, 1]);
}
