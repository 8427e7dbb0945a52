//! The HTTP API end to end: a real server on a free port over a real SQLite file, real MNIST
//! digits, PyTorch's LeNet5, and an HTTP client speaking to it over TCP.

use std::io::{BufRead, BufReader};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value as Json};
use ureq::Agent;
use vigil::{Datalayer, Value};
use vigil_conformance::data::{add_lenet5_onnx, documents, pytorch_predictions};
use vigil_server::tokens::{self, Scope};

struct Server {
    base: String,
    db: Datalayer,
    agent: Agent,
    _dir: tempfile::TempDir,
}

fn start() -> Server {
    start_with(vigil_server::ServerOptions::new())
}

fn start_with(options: vigil_server::ServerOptions) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("api.db").display());
    let db = vigil::connect(&url).unwrap();
    // The server has its own connection to the file, as a separate process would.
    let server = options
        .listen("127.0.0.1:0".parse().unwrap())
        .bind(vigil::connect(&url).unwrap())
        .unwrap();
    let base = format!("http://{}", server.local_addr().unwrap());
    std::thread::spawn(move || server.run_until(std::future::pending()));
    let agent: Agent = Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    Server {
        base,
        db,
        agent,
        _dir: dir,
    }
}

impl Server {
    fn token(&self, name: &str, scope: Scope) -> String {
        tokens::create(&self.db, name, scope).unwrap()
    }

    fn get(&self, token: &str, path: &str) -> (u16, Json) {
        let mut r = self
            .agent
            .get(format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {token}"))
            .call()
            .unwrap();
        let status = r.status().as_u16();
        let text = r.body_mut().read_to_string().unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Json::String(text)),
        )
    }

    fn post(&self, token: &str, path: &str, body: Json) -> (u16, Json) {
        let mut r = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {token}"))
            .send_json(&body)
            .unwrap();
        let status = r.status().as_u16();
        let text = r.body_mut().read_to_string().unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Json::String(text)),
        )
    }

    fn ndjson(&self, token: &str, path: &str) -> Vec<Json> {
        let mut r = self
            .agent
            .get(format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {token}"))
            .call()
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{path}");
        assert_eq!(
            r.headers().get("content-type").unwrap(),
            "application/x-ndjson"
        );
        // Streamed: no length known in advance.
        assert!(r.headers().get("content-length").is_none());
        let text = r.body_mut().read_to_string().unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

fn error_kind(body: &Json) -> &str {
    body["error"]["kind"]
        .as_str()
        .unwrap_or_else(|| panic!("an error body: {body}"))
}

fn digits_json(n: usize) -> Vec<Json> {
    documents(n).iter().map(|d| d.to_json()).collect()
}

#[test]
fn no_anonymous_access_and_scopes_are_enforced() {
    let s = start();
    // Health is open; nothing else is.
    let mut r = s.agent.get(format!("{}/health", s.base)).call().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        r.body_mut().read_json::<Json>().unwrap(),
        json!({"status": "ok"})
    );
    for path in [
        "/api/collections",
        "/openapi.json",
        "/api/events",
        "/api/tokens",
    ] {
        let mut r = s.agent.get(format!("{}{path}", s.base)).call().unwrap();
        assert_eq!(r.status().as_u16(), 401, "{path}");
        let body: Json = r.body_mut().read_json().unwrap();
        assert_eq!(error_kind(&body), "unauthorized");
    }
    assert_eq!(s.get("vgl_not-a-token", "/api/collections").0, 401);

    let read = s.token("reader", Scope::Read);
    let write = s.token("writer", Scope::Write);
    let admin = s.token("admin", Scope::Admin);
    assert_eq!(s.get(&read, "/api/collections"), (200, json!([])));

    // Read tokens cannot write; write tokens cannot manage tokens.
    let (status, body) = s.post(&read, "/api/collections/mnist/documents", json!({"a": 1}));
    assert_eq!((status, error_kind(&body)), (403, "forbidden"));
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("needs write"));
    assert_eq!(
        s.post(&write, "/api/collections/mnist/documents", json!({"a": 1}))
            .0,
        201
    );
    assert_eq!(s.get(&write, "/api/tokens").0, 403);
    let (status, body) = s.post(
        &write,
        "/api/tokens",
        json!({"name": "x", "scope": "admin"}),
    );
    assert_eq!((status, error_kind(&body)), (403, "forbidden"));

    // Admins create tokens (shown once) and revoke them; revocation applies at once.
    let (status, created) = s.post(
        &admin,
        "/api/tokens",
        json!({"name": "ci", "scope": "read"}),
    );
    assert_eq!(status, 201);
    let ci = created["token"].as_str().unwrap().to_string();
    assert_eq!(s.get(&ci, "/api/collections").0, 200);
    let (_, listed) = s.get(&admin, "/api/tokens");
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["admin", "ci", "reader", "writer"]);
    // Neither secrets nor hashes leave the server.
    assert!(!listed.to_string().contains(&ci) && !listed.to_string().contains("hash"));
    let mut r = s
        .agent
        .delete(format!("{}/api/tokens/ci", s.base))
        .header("Authorization", format!("Bearer {admin}"))
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    let _ = r.body_mut().read_to_string();
    assert_eq!(s.get(&ci, "/api/collections").0, 401);
    // Only hashes are in the database.
    let stored = tokens::list(&s.db).unwrap();
    assert!(stored
        .iter()
        .all(|t| t.hash.len() == 64 && !t.hash.contains("vgl_")));
    assert!(!format!("{stored:?}").contains(&read));

    // A revoked token from another process stops working within a second.
    tokens::revoke(&s.db, "reader").unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(s.get(&read, "/api/collections").0, 401);

    // The OpenAPI document is generated from the handlers.
    let (status, doc) = s.get(&write, "/openapi.json");
    assert_eq!(status, 200);
    for path in [
        "/api/collections/{name}/documents",
        "/api/collections/{name}/documents/{id}/{path}",
        "/api/models/{identifier}/predict",
        "/api/listeners/{name}/retry",
        "/api/events",
        "/api/tokens",
        "/health",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} missing from the OpenAPI document"
        );
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

#[test]
fn documents_round_trip_through_the_api() {
    let s = start();
    let token = s.token("w", Scope::Write);
    let (status, body) = s.post(
        &token,
        "/api/collections/mnist/documents",
        Json::Array(digits_json(300)),
    );
    assert_eq!(status, 201, "{body}");
    let ids = body["inserted_ids"].as_array().unwrap();
    assert_eq!(ids.len(), 300);
    let (_, listed) = s.get(&token, "/api/collections");
    assert_eq!(listed, json!([{"name": "mnist", "count": 300}]));

    // Count and find with a filter, sort, skip, limit and projection.
    let sevens = documents(300)
        .iter()
        .filter(|d| d.get("class") == Some(&Value::Int(7)))
        .count();
    let filter = "%7B%22class%22%3A7%7D"; // {"class":7}
    assert_eq!(
        s.get(
            &token,
            &format!("/api/collections/mnist/count?filter={filter}")
        )
        .1,
        json!({"count": sevens})
    );
    let found = s.ndjson(&token, &format!("/api/collections/mnist/documents?filter={filter}&projection=%7B%22img%22%3A0%7D&skip=1&limit=3"));
    assert_eq!(found.len(), 3.min(sevens - 1));
    assert!(found
        .iter()
        .all(|d| d["class"] == 7 && d.get("img").is_none()));
    let sorted = s.ndjson(&token, "/api/collections/mnist/documents?sort=%7B%22class%22%3A-1%7D&limit=5&projection=%7B%22class%22%3A1%7D");
    assert!(sorted.iter().all(|d| d["class"] == 9));

    // Every document streams back, byte-identical images included.
    let all = s.ndjson(&token, "/api/collections/mnist/documents");
    assert_eq!(all.len(), 300);
    assert_eq!(all[5]["img"], digits_json(6)[5]["img"]);

    // Binary values at their own URLs, served as images.
    // One line of NDJSON is one JSON document.
    let (_, linked) = s.post(
        &token,
        "/api/collections/mnist/find",
        json!({"limit": 1, "binary": "url"}),
    );
    let url = linked["img"]["$url"].as_str().unwrap();
    assert_eq!(linked["img"]["$codec"], "image/png");
    let mut r = s
        .agent
        .get(format!("{}{url}", s.base))
        .header("Authorization", format!("Bearer {token}"))
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers().get("content-type").unwrap(), "image/png");
    let png = r.body_mut().read_to_vec().unwrap();
    let expected = base64::engine::general_purpose::STANDARD
        .decode(digits_json(1)[0]["img"]["$base64"].as_str().unwrap())
        .unwrap();
    assert_eq!(png, expected);
    assert_eq!(linked["img"]["$bytes"], expected.len());

    // One document by id; updates, replaces, deletes.
    let id = ids[0].as_str().unwrap();
    let (status, one) = s.get(&token, &format!("/api/collections/mnist/documents/{id}"));
    assert_eq!((status, &one["_id"]), (200, &ids[0]));
    let (_, updated) = s.post(
        &token,
        "/api/collections/mnist/update",
        json!({"filter": {"class": 7}, "update": {"$set": {"seven": true}}, "many": true}),
    );
    assert_eq!(updated, json!({"matched": sevens, "modified": sevens}));
    assert_eq!(
        s.db.collection("mnist")
            .unwrap()
            .count(json!({"seven": true}))
            .unwrap(),
        sevens as u64
    );
    let (_, replaced) = s.post(
        &token,
        "/api/collections/mnist/replace",
        json!({"filter": {"_id": id}, "document": {"class": 11}}),
    );
    assert_eq!(replaced, json!({"matched": 1, "modified": 1}));
    assert_eq!(
        s.get(&token, &format!("/api/collections/mnist/documents/{id}"))
            .1["class"],
        11
    );
    let (_, deleted) = s.post(
        &token,
        "/api/collections/mnist/delete",
        json!({"filter": {"class": {"$in": [0, 1]}}, "many": true}),
    );
    let gone = deleted["deleted"].as_u64().unwrap();
    assert!(gone > 0);
    assert_eq!(
        s.db.collection("mnist").unwrap().count(json!({})).unwrap(),
        300 - gone
    );
    let (_, upserted) = s.post(
        &token,
        "/api/collections/mnist/update",
        json!({"filter": {"_id": "u1"}, "update": {"$push": {"seen": 1}}, "upsert": true}),
    );
    assert_eq!(
        upserted,
        json!({"matched": 0, "modified": 0, "upserted_id": "u1"})
    );
    let (_, again) = s.post(
        &token,
        "/api/collections/mnist/update",
        json!({"filter": {"_id": "u1"}, "update": {"$push": {"seen": 2}}, "upsert": true}),
    );
    assert_eq!(again, json!({"matched": 1, "modified": 1}));
    assert_eq!(
        s.get(&token, "/api/collections/mnist/documents/u1").1["seen"],
        json!([1, 2])
    );
    // Integer ids are found from their digits.
    s.post(
        &token,
        "/api/collections/mnist/documents",
        json!({"_id": 42, "x": 1}),
    );
    assert_eq!(
        s.get(&token, "/api/collections/mnist/documents/42").1["x"],
        1
    );
}

#[test]
fn bad_requests_get_clear_4xx_errors() {
    let s = start_with(vigil_server::ServerOptions::new().max_body(64 * 1024));
    let token = s.token("w", Scope::Write);
    s.post(
        &token,
        "/api/collections/mnist/documents",
        json!({"_id": "a", "class": 1}),
    );
    let cases: Vec<(u16, &str, (u16, Json))> = vec![
        (
            404,
            "not_found",
            s.get(&token, "/api/collections/nope/count"),
        ),
        (
            404,
            "not_found",
            s.post(&token, "/api/collections/nope/find", json!({})),
        ),
        (
            400,
            "invalid_name",
            s.get(&token, "/api/collections/bad%20name/count"),
        ),
        (
            400,
            "bad_request",
            s.get(&token, "/api/collections/mnist/count?filter=%7Bnot-json"),
        ),
        (
            400,
            "unsupported_operator",
            s.get(
                &token,
                "/api/collections/mnist/documents?filter=%7B%22a%22%3A%7B%22%24where%22%3A1%7D%7D",
            ),
        ),
        (
            400,
            "invalid_operand",
            s.post(
                &token,
                "/api/collections/mnist/find",
                json!({"filter": {"a": {"$in": 3}}}),
            ),
        ),
        (
            409,
            "duplicate_id",
            s.post(
                &token,
                "/api/collections/mnist/documents",
                json!({"_id": "a"}),
            ),
        ),
        (
            400,
            "invalid_document",
            s.post(
                &token,
                "/api/collections/mnist/documents",
                json!([{"a": 1}, 7]),
            ),
        ),
        (
            400,
            "invalid_document",
            s.post(
                &token,
                "/api/collections/mnist/documents",
                json!({"img": {"$codec": "image/png", "$base64": "%%%"}}),
            ),
        ),
        (
            400,
            "unsupported_operator",
            s.post(
                &token,
                "/api/collections/mnist/update",
                json!({"filter": {}, "update": {"$currentDate": {"a": true}}}),
            ),
        ),
        (
            400,
            "invalid_name",
            s.post(
                &token,
                "/api/collections/mnist/update",
                json!({"filter": {}, "update": {"$set": {"a..b": 1}}}),
            ),
        ),
        (
            400,
            "bad_request",
            s.post(
                &token,
                "/api/collections/mnist/find",
                json!({"filter": {}, "limt": 3}),
            ),
        ),
        (
            404,
            "not_found",
            s.get(&token, "/api/collections/mnist/documents/zzz"),
        ),
        (404, "not_found", s.get(&token, "/api/models/nope")),
        (404, "not_found", s.get(&token, "/api/listeners/nope")),
        (404, "not_found", s.get(&token, "/api/jobs/nope")),
        (404, "not_found", s.get(&token, "/api/no/such/route")),
    ];
    for (status, kind, (got_status, body)) in &cases {
        assert_eq!((got_status, error_kind(body)), (status, *kind), "{body}");
        assert!(!body["error"]["message"].as_str().unwrap().is_empty());
    }
    // The stored document is untouched by all of the above.
    assert_eq!(
        s.db.collection("mnist").unwrap().count(json!({})).unwrap(),
        1
    );

    // Malformed JSON bodies and oversized bodies are refused before any handler runs.
    let mut r = s
        .agent
        .post(format!("{}/api/collections/mnist/documents", s.base))
        .header("Authorization", format!("Bearer {token}"))
        .content_type("application/json")
        .send("{\"a\": ")
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let body: Json = r.body_mut().read_json().unwrap();
    assert_eq!(error_kind(&body), "bad_request");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("EOF"),
        "{body}"
    );
    let big = json!({"blob": "x".repeat(100 * 1024)});
    let mut r = s
        .agent
        .post(format!("{}/api/collections/mnist/documents", s.base))
        .header("Authorization", format!("Bearer {token}"))
        .send_json(&big)
        .unwrap();
    assert_eq!(r.status().as_u16(), 413);
    let body: Json = r.body_mut().read_json().unwrap();
    assert_eq!(error_kind(&body), "payload_too_large");
    assert_eq!(
        s.db.collection("mnist").unwrap().count(json!({})).unwrap(),
        1
    );
}

#[test]
fn predictions_listeners_errors_and_live_events() {
    let s = start();
    let token = s.token("w", Scope::Write);
    add_lenet5_onnx(&s.db, 256);
    let reference = pytorch_predictions();

    // Models and their records.
    let (_, models) = s.get(&token, "/api/models");
    assert_eq!(models, json!([{"identifier": "lenet5", "versions": [1]}]));
    let (_, model) = s.get(&token, "/api/models/lenet5");
    assert_eq!(model["version"], 1);
    assert!(model["record"]["metric_values"].is_object());

    // Predict: PNG bytes, and the same image as JSON.
    let digit = &digits_json(3)[2]["img"];
    let png = base64::engine::general_purpose::STANDARD
        .decode(digit["$base64"].as_str().unwrap())
        .unwrap();
    let mut r = s
        .agent
        .post(format!("{}/api/models/lenet5/predict", s.base))
        .header("Authorization", format!("Bearer {token}"))
        .content_type("image/png")
        .send(&png[..])
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let out: Json = r.body_mut().read_json().unwrap();
    assert_eq!(
        out,
        json!({"model": "lenet5", "version": 1, "output": reference[2]})
    );
    let (_, out) = s.post(
        &token,
        "/api/models/lenet5/predict?version=1",
        digit.clone(),
    );
    assert_eq!(out["output"], reference[2]);
    let (status, body) = s.post(
        &token,
        "/api/models/lenet5/predict",
        json!({"$codec": "image/png", "$base64": "AAAA"}),
    );
    assert_eq!((status, error_kind(&body)), (422, "model_failed"));
    let mut r = s
        .agent
        .post(format!("{}/api/models/lenet5/predict", s.base))
        .header("Authorization", format!("Bearer {token}"))
        .content_type("text/plain")
        .send("7")
        .unwrap();
    assert_eq!(r.status().as_u16(), 415);
    let _ = r.body_mut().read_to_string();

    // A listener over documents inserted through the API; one PNG is cut in half.
    let mut docs = digits_json(200);
    let img = docs[7]["img"]["$base64"].as_str().unwrap().to_string();
    docs[7]["img"]["$base64"] = json!(base64::engine::general_purpose::STANDARD.encode(
        &base64::engine::general_purpose::STANDARD
            .decode(img)
            .unwrap()[..100]
    ));
    docs[7]["_id"] = json!("broken");
    s.post(
        &token,
        "/api/collections/mnist/documents",
        Json::Array(docs),
    );
    s.db.listen("mnist", "img", "lenet5", json!({})).unwrap();

    // The event stream shows the backfill as it is, then as it ends.
    let mut events = s
        .agent
        .get(format!("{}/api/events", s.base))
        .header("Authorization", format!("Bearer {token}"))
        .call()
        .unwrap();
    assert_eq!(
        events.headers().get("content-type").unwrap(),
        "text/event-stream"
    );
    let mut lines = BufReader::new(events.body_mut().as_reader()).lines();
    let mut next_state = move || -> Json {
        loop {
            let line = lines.next().unwrap().unwrap();
            if let Some(data) = line.strip_prefix("data: ") {
                return serde_json::from_str(data).unwrap();
            }
        }
    };
    let first = next_state();
    assert_eq!(first["listeners"][0]["name"], "mnist/img/lenet5");
    assert_eq!(first["listeners"][0]["backfill"]["total"], 200);
    assert_eq!(first["listeners"][0]["pending"], 200);

    let mut worker =
        s.db.worker(
            vigil::WorkerOptions::new()
                .max_attempts(2)
                .backoff(Duration::from_millis(1)),
        )
        .unwrap();
    for _ in 0..100 {
        worker.drain().unwrap();
        if s.db.pending(None).unwrap() == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let last = loop {
        let state = next_state();
        if state["listeners"][0]["pending"] == 0 {
            break state;
        }
    };
    let l = &last["listeners"][0];
    assert_eq!(l["outputs"], json!([{"model_version": 1, "count": 199}]));
    assert_eq!(
        (l["parked"].as_u64(), l["retrying"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(
        l["backfill"]["done"].as_u64().unwrap() + l["backfill"]["failed"].as_u64().unwrap(),
        200
    );
    assert!(l["throughput"].as_f64().unwrap() > 0.0);
    assert!(last["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .any(|j| j["kind"] == "backfill"));

    // Listener, errors and jobs as plain JSON too.
    let (_, one) = s.get(&token, "/api/listeners/mnist%2Fimg%2Flenet5");
    assert_eq!(one["outputs"], l["outputs"]);
    let (_, errors) = s.get(&token, "/api/errors?listener=mnist%2Fimg%2Flenet5");
    assert_eq!(errors.as_array().unwrap().len(), 1);
    assert_eq!(errors[0]["doc_id"], "broken");
    assert!(errors[0]["error"].as_str().unwrap().contains("preprocess"));
    let (_, jobs) = s.get(&token, "/api/jobs?limit=5");
    let backfill = jobs
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["kind"] == "backfill")
        .unwrap();
    assert_eq!(
        s.get(
            &token,
            &format!("/api/jobs/{}", backfill["id"].as_str().unwrap())
        )
        .1["id"],
        backfill["id"]
    );

    // Predictions match PyTorch's for every digit but the broken one.
    let found = s.ndjson(
        &token,
        "/api/collections/mnist/documents?projection=%7B%22img%22%3A0%7D",
    );
    for (i, d) in found.iter().enumerate() {
        if i == 7 {
            assert!(d.get("_outputs").is_none());
        } else {
            assert_eq!(d["_outputs"]["img"]["lenet5"], reference[i], "digit {i}");
        }
    }
    // The model's mistakes, by a filter comparing two fields.
    let mistakes = s.ndjson(&token, "/api/collections/mnist/documents?filter=%7B%22%24expr%22%3A%7B%22%24ne%22%3A%5B%22%24_outputs.img.lenet5%22%2C%22%24class%22%5D%7D%7D&projection=%7B%22img%22%3A0%7D");
    let labels: Vec<i64> = documents(200)
        .iter()
        .map(|d| d.get("class").and_then(Value::as_i64).unwrap())
        .collect();
    let expected: Vec<usize> = (0..200)
        .filter(|&i| i == 7 || reference[i] != labels[i])
        .collect();
    assert_eq!(mistakes.len(), expected.len());

    // Fix the broken document's cause and retry it: a read token may not, a write token may.
    let read = s.token("r", Scope::Read);
    assert_eq!(
        s.post(
            &read,
            "/api/listeners/mnist%2Fimg%2Flenet5/retry",
            json!({})
        )
        .0,
        403
    );
    let (_, retried) = s.post(
        &token,
        "/api/listeners/mnist%2Fimg%2Flenet5/retry",
        json!({}),
    );
    assert_eq!(retried, json!({"queued": 1}));
    assert_eq!(s.db.pending(None).unwrap(), 1);
}

#[test]
fn similarity_search_over_http() {
    let s = start();
    let reader = s.token("reader", Scope::Read);
    s.db.collection("mnist")
        .unwrap()
        .insert_many(documents(300))
        .unwrap();
    // PyTorch's LeNet5 through ONNX, its 10 output values kept as the vector.
    let bytes = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/lenet5/lenet5.onnx"),
    )
    .unwrap();
    let mut logits = vigil::ml::PipelineModel::onnx("logits", bytes)
        .unwrap()
        .preprocess(vigil::ml::mnist_preprocess())
        .postprocess(vigil::ml::Postprocess::Identity);
    s.db.add_model(&mut logits).unwrap();
    s.db.listen("mnist", "img", "logits", json!({})).unwrap();
    s.db.process_pending().unwrap();
    s.db.vector_index("logits", "mnist/img/logits", vigil::Measure::L2)
        .unwrap();

    let first =
        s.db.collection("mnist")
            .unwrap()
            .find_one(json!({}))
            .unwrap()
            .unwrap();
    let id = first.get("_id").unwrap().to_json();
    let (status, hits) = s.post(
        &reader,
        "/api/collections/mnist/like",
        json!({"id": id, "n": 5, "binary": "url"}),
    );
    assert_eq!(status, 200, "{hits}");
    let hits = hits.as_array().unwrap();
    assert_eq!(hits.len(), 5);
    assert_eq!(hits[0]["document"]["_id"], id, "the document itself first");
    assert!(
        hits[0]["score"].as_f64().unwrap() < 1e-4,
        "L2 distance to itself"
    );
    assert!(hits[0]["document"]["img"]["$url"].is_string());
    let scores: Vec<f64> = hits.iter().map(|h| h["score"].as_f64().unwrap()).collect();
    assert!(
        scores.windows(2).all(|w| w[0] <= w[1]),
        "nearest first: {scores:?}"
    );

    // By image, under a filter: n documents, all matching.
    let img = first.get("img").unwrap().to_json();
    let (status, hits) = s.post(
        &reader,
        "/api/collections/mnist/like",
        json!({"input": img, "n": 3, "filter": {"class": {"$ne": first.get("class").unwrap().to_json()}}}),
    );
    assert_eq!(status, 200, "{hits}");
    assert_eq!(hits.as_array().unwrap().len(), 3);
    assert!(hits
        .as_array()
        .unwrap()
        .iter()
        .all(|h| h["document"]["class"] != first.get("class").unwrap().to_json()));

    // Clear errors, and no anonymous access.
    let (status, body) = s.post(
        &reader,
        "/api/collections/mnist/like",
        json!({"vector": [1.0, 2.0]}),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("2 dimensions"),
        "{body}"
    );
    let (status, _) = s.post(
        &reader,
        "/api/collections/mnist/like",
        json!({"id": id, "vector": [1.0]}),
    );
    assert_eq!(status, 400);
    let (status, _) = s.post(
        "not-a-token",
        "/api/collections/mnist/like",
        json!({"id": id}),
    );
    assert_eq!(status, 401);
}
