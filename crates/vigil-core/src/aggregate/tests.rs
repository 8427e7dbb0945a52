use serde_json::json;

use super::*;

fn docs(items: serde_json::Value) -> Documents {
    let list: Vec<Result<Document>> = items
        .as_array()
        .unwrap()
        .iter()
        .map(|d| Document::try_from(d.clone()))
        .collect();
    Box::new(list.into_iter())
}

/// Runs the whole pipeline in the process (the head as stages too).
fn run_all(pipeline: serde_json::Value, input: serde_json::Value) -> Vec<serde_json::Value> {
    let p = Pipeline::parse(&pipeline).unwrap();
    let stages = p.stages().iter().cloned().enumerate().collect();
    run(docs(input), stages)
        .map(|d| d.unwrap().to_json())
        .collect()
}

#[test]
fn group_counts_and_averages_per_key() {
    let input = json!([
        {"class": 1, "pred": 1, "x": 2},
        {"class": 1, "pred": 7, "x": 4.5},
        {"class": 2, "pred": 2, "x": "a"},
        {"pred": 3}
    ]);
    let out = run_all(
        json!([
            {"$group": {
                "_id": "$class",
                "n": {"$count": {}},
                "correct": {"$sum": {"$cond": [{"$eq": ["$pred", "$class"]}, 1, 0]}},
                "mean": {"$avg": "$x"},
                "low": {"$min": "$x"},
                "high": {"$max": "$x"},
                "preds": {"$push": "$pred"}
            }},
            {"$project": {"_id": 0, "class": "$_id", "n": 1, "accuracy": {"$divide": ["$correct", "$n"]}, "mean": 1, "low": 1, "high": 1, "preds": 1}},
            {"$sort": {"class": 1}}
        ]),
        input,
    );
    assert_eq!(
        out,
        vec![
            json!({"n": 1, "mean": null, "low": null, "high": null, "preds": [3], "class": null, "accuracy": 0.0}),
            json!({"n": 2, "mean": 3.25, "low": 2, "high": 4.5, "preds": [1, 7], "class": 1, "accuracy": 0.5}),
            json!({"n": 1, "mean": null, "low": "a", "high": "a", "preds": [2], "class": 2, "accuracy": 1.0}),
        ]
    );
}

#[test]
fn unwind_match_and_count_stream_documents() {
    let input = json!([
        {"_id": 1, "tags": ["a", "b"]},
        {"_id": 2, "tags": []},
        {"_id": 3, "tags": "c"},
        {"_id": 4}
    ]);
    let out = run_all(
        json!([{"$unwind": {"path": "$tags", "includeArrayIndex": "i"}}]),
        input.clone(),
    );
    assert_eq!(
        out,
        vec![
            json!({"_id": 1, "tags": "a", "i": 0}),
            json!({"_id": 1, "tags": "b", "i": 1}),
            json!({"_id": 3, "tags": "c", "i": null}),
        ]
    );
    let out = run_all(
        json!([{"$unwind": {"path": "$tags", "preserveNullAndEmptyArrays": true}}, {"$count": "n"}]),
        input.clone(),
    );
    assert_eq!(out, vec![json!({"n": 5})]);
    // Preserved, an empty array's field goes and a null stays, as in MongoDB.
    let out = run_all(
        json!([{"$unwind": {"path": "$tags", "preserveNullAndEmptyArrays": true}}]),
        json!([{"_id": 2, "tags": []}, {"_id": 5, "tags": null}]),
    );
    assert_eq!(
        out,
        vec![json!({"_id": 2}), json!({"_id": 5, "tags": null})]
    );
    let out = run_all(
        json!([{"$unwind": "$tags"}, {"$match": {"tags": {"$in": ["b", "c"]}}}, {"$skip": 1}, {"$limit": 5}]),
        input.clone(),
    );
    assert_eq!(out, vec![json!({"_id": 3, "tags": "c"})]);
    // A $count over nothing produces no document, as in MongoDB.
    let out = run_all(json!([{"$match": {"nope": 1}}, {"$count": "n"}]), input);
    assert!(out.is_empty());
}

#[test]
fn sort_orders_types_and_arrays_like_the_database_and_keeps_ties_in_order() {
    let input = json!([
        {"_id": 1, "v": "b"},
        {"_id": 2, "v": [5, 0]},
        {"_id": 3, "v": true},
        {"_id": 4},
        {"_id": 5, "v": 2.5},
        {"_id": 6, "v": []},
        {"_id": 7, "v": 2.5}
    ]);
    let ids = |out: Vec<serde_json::Value>| -> Vec<i64> {
        out.iter().map(|d| d["_id"].as_i64().unwrap()).collect()
    };
    assert_eq!(
        ids(run_all(json!([{"$sort": {"v": 1}}]), input.clone())),
        vec![6, 4, 2, 5, 7, 1, 3]
    );
    assert_eq!(
        ids(run_all(json!([{"$sort": {"v": -1}}, {"$limit": 3}]), input)),
        vec![3, 1, 2]
    );
}

#[test]
fn split_sends_the_head_to_the_database() {
    let p = Pipeline::parse(&json!([
        {"$match": {"a": 1}},
        {"$sort": {"b": -1}},
        {"$match": {"c": 2}},
        {"$skip": 2},
        {"$limit": 5},
        {"$group": {"_id": null, "n": {"$sum": 1}}}
    ]))
    .unwrap();
    let (head, rest) = p.split();
    let Head::Find(q) = head else {
        panic!("{head:?}")
    };
    assert_eq!(q.filter, Filter::parse(&json!({"a": 1, "c": 2})).unwrap());
    assert_eq!((q.skip, q.limit, q.sort.len()), (2, Some(5), 1));
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].0, 5);

    let p = Pipeline::parse(
        &json!([{"$match": {"a": 1}}, {"$skip": 1}, {"$count": "n"}, {"$project": {"n": 1}}]),
    )
    .unwrap();
    let (head, rest) = p.split();
    assert!(
        matches!(head, Head::Count { ref name, .. } if name == "n"),
        "{head:?}"
    );
    assert_eq!(rest.len(), 1);
    // A $match after a window stays in the process: it filters the window's documents.
    let p = Pipeline::parse(&json!([{"$limit": 3}, {"$match": {"a": 1}}])).unwrap();
    let (_, rest) = p.split();
    assert!(matches!(rest[0].1, Stage::Match(_)));
}

#[test]
fn errors_name_the_stage_and_what_was_wrong() {
    let cases = [
        (json!({"$match": {}}), "pipeline is an array"),
        (json!([{"$lookup": {}}]), "$lookup"),
        (json!([{"$limit": 0}]), "positive integer"),
        (json!([{"$group": {"n": {"$sum": 1}}}]), "needs an `_id`"),
        (
            json!([{"$group": {"_id": null, "n": {"$median": 1}}}]),
            "$median",
        ),
        (json!([{"$project": {"a": 1, "b": 0}}]), "not both"),
        (json!([{"$unwind": "tags"}]), "path such as"),
        (
            json!([{"$match": {"a": 1}, "$limit": 1}]),
            "exactly one operator",
        ),
        (
            json!([{"$project": {"x": {"$add": [1]}}}, {"$project": {"y": {"$divide": [1, 2, 3]}}}]),
            "takes 2 operands",
        ),
    ];
    for (p, expected) in cases {
        let e = Pipeline::parse(&p).unwrap_err().to_string();
        assert!(e.contains(expected), "{p}: {e}");
    }
    // Runtime errors name the stage too.
    let p = Pipeline::parse(&json!([{"$project": {"x": {"$divide": ["$a", 0]}}}])).unwrap();
    let stages = p.stages().iter().cloned().enumerate().collect();
    let e = run(docs(json!([{"a": 1}])), stages)
        .next()
        .unwrap()
        .unwrap_err()
        .to_string();
    assert!(e.contains("by zero") && e.contains("0.$project"), "{e}");
}

#[test]
fn projections_include_exclude_and_compute_nested_fields() {
    let input = json!([{"_id": 1, "a": {"b": 1, "c": 2}, "l": [{"b": 3, "c": 4}, 5], "z": 9}]);
    assert_eq!(
        run_all(
            json!([{"$project": {"a.b": 1, "l": {"c": 1}, "s": {"$add": ["$z", 1]}}}]),
            input.clone()
        ),
        vec![json!({"_id": 1, "a": {"b": 1}, "l": [{"c": 4}], "s": 10})]
    );
    assert_eq!(
        run_all(
            json!([{"$project": {"a.c": 0, "l": 0, "_id": 0}}]),
            input.clone()
        ),
        vec![json!({"a": {"b": 1}, "z": 9})]
    );
    assert_eq!(
        run_all(
            json!([{"$addFields": {"a.d": "$z", "n": {"$size": "$l"}}}]),
            input
        ),
        vec![
            json!({"_id": 1, "a": {"b": 1, "c": 2, "d": 9}, "l": [{"b": 3, "c": 4}, 5], "z": 9, "n": 2})
        ]
    );
}
