//! Listeners: backfill, incremental outputs on insert, update and delete, outputs in find
//! results and filters, failure isolation, chains, model versions, lost updates and jobs.
//! The model is PyTorch's LeNet5 exported to ONNX, so outputs are checked against PyTorch's
//! own predictions on the same digits.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use vigil::listen::{Applied, Completion, JobStatus, Outcome, RetryPolicy};
use vigil::ml::PipelineModel;
use vigil::{Datalayer, Document, OutputCount, Value, WorkerOptions};

use super::with_digits;
use crate::data::{predictions, pytorch_predictions};
use crate::Factory;

const LISTENER: &str = "mnist/img/lenet5";

fn add_lenet5(db: &Datalayer) {
    crate::data::add_lenet5_onnx(db, 256);
}

/// Processes until nothing is queued, waiting out retry backoffs (bounded).
fn settle(db: &Datalayer, options: WorkerOptions) {
    let mut worker = db.worker(options).unwrap();
    for _ in 0..2000 {
        worker.drain().unwrap();
        if db.pending(None).unwrap() == 0 {
            return;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    panic!("work still queued: {}", db.pending(None).unwrap());
}

pub fn listener_backfills_every_digit_with_pytorchs_predictions(factory: &Factory) {
    let (db, mnist) = with_digits(factory, 10_000);
    add_lenet5(&db);
    let on = db.listen("mnist", "img", "lenet5", json!({})).unwrap();
    assert_eq!(on.listener.name, LISTENER);
    assert_eq!(on.backfill.total, 10_000);
    assert_eq!(on.backfill.status, JobStatus::Running);
    assert_eq!(db.pending(Some(LISTENER)).unwrap(), 10_000);

    let applied = db.process_pending().unwrap();
    assert_eq!(applied.written, 10_000);
    assert_eq!(db.pending(None).unwrap(), 0);

    let preds = predictions(&mnist);
    assert_eq!(preds.len(), 10_000);
    assert!(
        preds.iter().all(Option::is_some),
        "every digit has an output"
    );
    let preds: Vec<i64> = preds.into_iter().map(Option::unwrap).collect();
    assert_eq!(
        preds[..1000],
        pytorch_predictions()[..],
        "PyTorch's predictions"
    );
    let labels = super::labels(10_000);
    let right = preds.iter().zip(&labels).filter(|(p, l)| p == l).count();
    assert!(right > 9_500, "a trained LeNet5 is right on {right}/10000");

    // Filters on outputs run in the database and agree with what find returns.
    let sevens = preds.iter().filter(|&&p| p == 7).count() as u64;
    assert_eq!(
        mnist.count(json!({"_outputs.img.lenet5": 7})).unwrap(),
        sevens
    );
    let wrong = preds.iter().zip(&labels).filter(|(p, l)| p != l).count() as u64;
    let disagree = (0..10)
        .map(|c| {
            mnist
                .count(json!({"class": c, "_outputs.img.lenet5": {"$ne": c}}))
                .unwrap()
        })
        .sum::<u64>();
    assert_eq!(disagree, wrong);
    assert_eq!(
        mnist
            .count(json!({"_outputs.img.lenet5": {"$exists": false}}))
            .unwrap(),
        0
    );
    let first_seven = mnist
        .find(json!({"_outputs.img.lenet5": 7}))
        .sort(json!({"_outputs.img.lenet5": 1}))
        .limit(1)
        .run()
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(
        first_seven.get_path("_outputs.img.lenet5"),
        Some(&Value::Int(7))
    );

    let job = db.job(&on.backfill.id).unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Success);
    assert_eq!((job.done, job.failed, job.total), (10_000, 0, 10_000));
    assert!(job.finished.is_some());
    assert_eq!(
        db.listener_status(LISTENER).unwrap().outputs,
        [OutputCount::new(1, 10_000)]
    );
    assert_eq!(db.show(vigil::LISTENER).unwrap(), [LISTENER]);
}

pub fn inserts_updates_and_deletes_keep_outputs_current(factory: &Factory) {
    let (db, mnist) = with_digits(factory, 100);
    add_lenet5(&db);
    // Only digits labelled below 5 are selected.
    db.listen("mnist", "img", "lenet5", json!({"class": {"$lt": 5}}))
        .unwrap();
    db.process_pending().unwrap();
    let labels = super::labels(100);
    let selected = labels.iter().filter(|&&l| l < 5).count() as u64;
    assert_eq!(
        mnist
            .count(json!({"_outputs.img.lenet5": {"$exists": true}}))
            .unwrap(),
        selected
    );

    // Inserts through the API: outputs once processed.
    let docs = crate::data::digits()[100..200]
        .iter()
        .map(|d| d.to_document().unwrap())
        .collect::<Vec<_>>();
    let ids = mnist.insert_many(docs).unwrap();
    db.process_pending().unwrap();
    let expected = pytorch_predictions();
    for (i, id) in ids.iter().enumerate() {
        let doc = mnist
            .find_one(json!({"_id": id.to_json()}))
            .unwrap()
            .unwrap();
        let label = i64::from(crate::data::digits()[100 + i].label);
        let out = doc.get_path("_outputs.img.lenet5").and_then(Value::as_i64);
        if label < 5 {
            assert_eq!(out, Some(expected[100 + i]), "inserted digit {}", 100 + i);
        } else {
            assert_eq!(out, None, "digit {} is not selected", 100 + i);
        }
    }

    // An update of the image recomputes: the first selected digit takes the image of an
    // unselected one that PyTorch reads as another digit.
    let first = mnist
        .find_one(json!({"class": {"$lt": 5}}))
        .unwrap()
        .unwrap();
    let id = first.id().unwrap().to_json();
    let before = first
        .get_path("_outputs.img.lenet5")
        .and_then(Value::as_i64)
        .unwrap();
    let donor = (0..100)
        .find(|&i| labels[i] >= 5 && expected[i] != before)
        .expect("a donor digit");
    let mut doc = first.clone();
    doc.insert(
        "img",
        crate::data::documents(donor + 1)[donor]
            .get("img")
            .unwrap()
            .clone(),
    );
    mnist.replace_one(json!({"_id": id}), doc).unwrap();
    db.process_pending().unwrap();
    let after = mnist.find_one(json!({"_id": id})).unwrap().unwrap();
    assert_eq!(
        after.get_path("_outputs.img.lenet5"),
        Some(&Value::Int(expected[donor])),
        "the new image's prediction"
    );
    let now = Value::Int(expected[donor]);

    // An update that touches neither the key nor the select queues nothing.
    mnist
        .update_one(json!({"_id": id}), json!({"$set": {"note": "seen"}}))
        .unwrap();
    assert_eq!(db.pending(None).unwrap(), 0);

    // Leaving the select removes the output; coming back computes it again.
    mnist
        .update_one(json!({"_id": id}), json!({"$set": {"class": 9}}))
        .unwrap();
    db.process_pending().unwrap();
    let doc = mnist.find_one(json!({"_id": id})).unwrap().unwrap();
    assert_eq!(doc.get("_outputs"), None);
    mnist
        .update_one(json!({"_id": id}), json!({"$set": {"class": 3}}))
        .unwrap();
    db.process_pending().unwrap();
    let doc = mnist.find_one(json!({"_id": id})).unwrap().unwrap();
    assert_eq!(doc.get_path("_outputs.img.lenet5"), Some(&now));

    // Deletes remove outputs.
    let with_outputs = |db: &Datalayer| -> u64 {
        db.listener_status(LISTENER)
            .unwrap()
            .outputs
            .iter()
            .map(|o| o.count)
            .sum()
    };
    let n = with_outputs(&db);
    let deleted = mnist
        .delete_many(json!({"class": {"$in": [0, 1]}}))
        .unwrap();
    assert!(deleted > 0);
    db.process_pending().unwrap();
    assert_eq!(
        with_outputs(&db),
        mnist.count(json!({"class": {"$lt": 5}})).unwrap(),
        "outputs only for documents still selected"
    );
    assert!(with_outputs(&db) < n);

    // A found document carries `_outputs`; replacing with it stores no `_outputs`.
    let doc = mnist.find_one(json!({"class": 3})).unwrap().unwrap();
    assert!(doc.get("_outputs").is_some());
    mnist
        .replace_one(json!({"_id": doc.id().unwrap().to_json()}), doc.clone())
        .unwrap();
    assert!(mnist
        .insert_one(doc.clone().with("_id", "copy"))
        .unwrap_err()
        .to_string()
        .contains("_outputs"));

    // Every incremental batch is a job on record.
    let jobs = db.jobs(1000).unwrap();
    assert!(jobs
        .iter()
        .any(|j| j.kind == "predict" && j.status == JobStatus::Success));
    assert!(jobs
        .iter()
        .any(|j| j.kind == "backfill" && j.status == JobStatus::Success));
}

pub fn undecodable_images_are_parked_and_the_rest_predicted(factory: &Factory) {
    let (db, mnist) = with_digits(factory, 0);
    add_lenet5(&db);
    db.listen("mnist", "img", "lenet5", json!({})).unwrap();
    // 1% of the digits carry PNG bytes cut in half: the header (and so the insert check)
    // passes, decoding fails.
    let mut docs = crate::data::documents(1000);
    let mut corrupt = Vec::new();
    for (i, doc) in docs.iter_mut().enumerate().filter(|(i, _)| i % 100 == 42) {
        let Some(Value::Encoded(e)) = doc.get("img") else {
            unreachable!("digits are PNG images")
        };
        let half = e.bytes()[..e.bytes().len() / 2].to_vec();
        doc.insert(
            "img",
            Value::Encoded(vigil::Encoded::new("image/png", half)),
        );
        doc.insert("_id", i as i64);
        corrupt.push(i as i64);
    }
    mnist.insert_many(docs).unwrap();
    settle(
        &db,
        WorkerOptions::new()
            .max_attempts(3)
            .backoff(Duration::from_millis(5)),
    );
    let failures = db.failures(None).unwrap();
    let mut failed: Vec<i64> = failures
        .iter()
        .map(|f| f.doc_id.as_i64().unwrap())
        .collect();
    failed.sort();
    assert_eq!(failed, corrupt);
    for f in &failures {
        assert!(f.parked && f.attempts == 3, "{f:?}");
        assert_eq!(f.listener, LISTENER);
        assert!(f.error.contains("preprocess"), "{}", f.error);
    }
    let preds = predictions(&mnist);
    assert_eq!(preds.iter().filter(|p| p.is_some()).count(), 990);
    let reference = pytorch_predictions();
    for (i, p) in preds.iter().enumerate() {
        if corrupt.contains(&(i as i64)) {
            assert_eq!(*p, None);
        } else {
            assert_eq!(*p, Some(reference[i]), "digit {i}");
        }
    }
    // Fixing a parked document computes it and clears its error.
    let good = crate::data::documents(43).pop().unwrap();
    mnist
        .replace_one(json!({"_id": 42}), good.with("_id", 42))
        .unwrap();
    db.process_pending().unwrap();
    assert_eq!(db.failures(None).unwrap().len(), corrupt.len() - 1);
    let fixed = mnist.find_one(json!({"_id": 42})).unwrap().unwrap();
    assert_eq!(
        fixed.get_path("_outputs.img.lenet5"),
        Some(&Value::Int(reference[42]))
    );
}

pub fn parked_documents_are_retried_on_request(factory: &Factory) {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    // A model that fails on odd classes until it is "fixed": each run registers its own
    // function, so suites of several backends in one process do not share the switch.
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let name = format!("odd_fails_{}", NEXT.fetch_add(1, Ordering::Relaxed));
    let broken = Arc::new(AtomicBool::new(true));
    let switch = broken.clone();
    vigil::ml::register_function(
        &name,
        Arc::new(move |xs: &[Value]| {
            xs.iter()
                .map(|x| match x.as_i64() {
                    Some(n) if n % 2 == 1 && switch.load(Ordering::SeqCst) => {
                        Err(vigil::Error::model("odd", "odd classes are broken"))
                    }
                    Some(n) => Ok(Value::Int(n * 10)),
                    None => Err(vigil::Error::model("odd", "not an integer")),
                })
                .collect()
        }),
    );
    let (db, mnist) = with_digits(factory, 200);
    let mut m = PipelineModel::function("tens", &name).unwrap();
    db.add_model(&mut m).unwrap();
    let listener = db
        .listen("mnist", "class", "tens", json!({}))
        .unwrap()
        .listener
        .name;
    let options = || {
        WorkerOptions::new()
            .max_attempts(2)
            .backoff(Duration::from_millis(1))
    };
    settle(&db, options());
    let odd = mnist
        .count(json!({"class": {"$in": [1, 3, 5, 7, 9]}}))
        .unwrap();
    assert!(odd > 0);
    let status = db.listener_status(&listener).unwrap();
    assert_eq!((status.parked, status.pending), (odd, 0));
    assert_eq!(
        mnist
            .count(json!({"_outputs.class.tens": {"$exists": true}}))
            .unwrap(),
        200 - odd
    );

    // Nothing is retried until asked; an unknown listener is an error, not a silent zero.
    assert!(db.retry_parked("mnist/class/nope").is_err());
    broken.store(false, Ordering::SeqCst);
    assert_eq!(db.retry_parked(&listener).unwrap(), odd);
    let status = db.listener_status(&listener).unwrap();
    assert_eq!(
        (status.parked, status.retrying, status.pending),
        (0, odd, odd)
    );
    settle(&db, options());
    assert!(db.failures(Some(&listener)).unwrap().is_empty());
    for doc in mnist.find(json!({})).run().unwrap() {
        let doc = doc.unwrap();
        let class = doc.get("class").and_then(Value::as_i64).unwrap();
        assert_eq!(
            doc.get_path("_outputs.class.tens"),
            Some(&Value::Int(class * 10))
        );
    }
    // Outputs compared with the field they were computed from: only class 0 maps to itself.
    assert_eq!(
        mnist
            .count(json!({"$expr": {"$eq": ["$_outputs.class.tens", "$class"]}}))
            .unwrap(),
        mnist.count(json!({"class": 0})).unwrap()
    );
    // Retrying with nothing parked queues nothing.
    assert_eq!(db.retry_parked(&listener).unwrap(), 0);
}

fn register_functions() {
    vigil::ml::register_function(
        "parity",
        Arc::new(|xs: &[Value]| {
            xs.iter()
                .map(|x| {
                    x.as_i64()
                        .map(|n| Value::Int(n % 2))
                        .ok_or_else(|| vigil::Error::model("parity", "not an integer"))
                })
                .collect()
        }),
    );
    vigil::ml::register_function(
        "one",
        Arc::new(|xs: &[Value]| Ok(vec![Value::Int(1); xs.len()])),
    );
    vigil::ml::register_function(
        "two",
        Arc::new(|xs: &[Value]| Ok(vec![Value::Int(2); xs.len()])),
    );
}

pub fn chains_run_after_their_upstream(factory: &Factory) {
    register_functions();
    let (db, mnist) = with_digits(factory, 300);
    add_lenet5(&db);
    let mut parity = PipelineModel::function("parity", "parity").unwrap();
    db.add_model(&mut parity).unwrap();
    assert!(db
        .listen("mnist", "_outputs.img.lenet5", "parity", json!({}))
        .unwrap_err()
        .to_string()
        .contains("no listener"));
    db.listen("mnist", "img", "lenet5", json!({})).unwrap();
    let chain = db
        .listen("mnist", "_outputs.img.lenet5", "parity", json!({}))
        .unwrap();
    assert_eq!(chain.listener.upstream.as_deref(), Some(LISTENER));
    db.process_pending().unwrap();
    let check = |n: usize| {
        let docs: Vec<Document> = mnist
            .find(json!({}))
            .run()
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(docs.len(), n);
        for d in &docs {
            let digit = d
                .get_path("_outputs.img.lenet5")
                .and_then(Value::as_i64)
                .unwrap();
            let outputs = d.get("_outputs").and_then(Value::as_document).unwrap();
            let parity = outputs
                .get("_outputs.img.lenet5")
                .and_then(Value::as_document)
                .and_then(|m| m.get("parity"))
                .and_then(Value::as_i64);
            assert_eq!(parity, Some(digit % 2));
        }
        let odd = docs
            .iter()
            .filter(|d| {
                d.get_path("_outputs.img.lenet5")
                    .and_then(Value::as_i64)
                    .unwrap()
                    % 2
                    == 1
            })
            .count() as u64;
        assert_eq!(
            mnist
                .count(json!({"_outputs._outputs.img.lenet5.parity": 1}))
                .unwrap(),
            odd
        );
    };
    check(300);
    // Incremental: new digits flow through both listeners.
    mnist
        .insert_many(
            crate::data::digits()[300..350]
                .iter()
                .map(|d| d.to_document().unwrap()),
        )
        .unwrap();
    db.process_pending().unwrap();
    check(350);
    // The upstream cannot go while the chain reads it.
    assert!(db.remove_listener(LISTENER).is_err());
    assert!(db.remove_listener(&chain.listener.name).unwrap());
    assert!(db.remove_listener(LISTENER).unwrap());
    assert!(mnist
        .find_one(json!({}))
        .unwrap()
        .unwrap()
        .get("_outputs")
        .is_none());
}

pub fn a_new_model_version_replaces_every_output(factory: &Factory) {
    register_functions();
    let (db, mnist) = with_digits(factory, 200);
    let mut m = PipelineModel::function("m", "one").unwrap();
    assert_eq!(db.add_model(&mut m).unwrap(), 1);
    db.listen("mnist", "class", "m", json!({})).unwrap();
    db.process_pending().unwrap();
    assert_eq!(mnist.count(json!({"_outputs.class.m": 1})).unwrap(), 200);
    let mut m2 = PipelineModel::function("m", "two").unwrap();
    assert_eq!(db.add_model(&mut m2).unwrap(), 2);
    let rolled = db.roll_listener("mnist/class/m", None).unwrap();
    assert_eq!(rolled.listener.model_version, 2);
    assert_eq!(rolled.backfill.total, 200);
    // Until the job runs, the outputs say which version they are.
    assert_eq!(
        db.listener_status("mnist/class/m").unwrap().outputs,
        [OutputCount::new(1, 200)]
    );
    db.process_pending().unwrap();
    assert_eq!(
        db.listener_status("mnist/class/m").unwrap().outputs,
        [OutputCount::new(2, 200)]
    );
    assert_eq!(mnist.count(json!({"_outputs.class.m": 2})).unwrap(), 200);
    // Back to version 1 on purpose.
    db.roll_listener("mnist/class/m", Some(1)).unwrap();
    db.process_pending().unwrap();
    assert_eq!(
        db.listener_status("mnist/class/m").unwrap().outputs,
        [OutputCount::new(1, 200)]
    );
    assert!(db.roll_listener("mnist/class/m", Some(9)).is_err());
}

/// Completes every claimed item with `value`, as if computed by model version `version`.
fn complete_with(claim: Box<dyn vigil::listen::Claim>, value: i64, version: u32) -> Applied {
    let completions = claim
        .items()
        .iter()
        .map(|i| Completion {
            item: i.clone(),
            outcome: Outcome::Output {
                value: Value::Int(value),
                input_hash: "stale".into(),
            },
        })
        .collect();
    claim
        .complete(completions, &|_| Some(version), &RetryPolicy::default())
        .unwrap()
}

pub fn a_document_written_during_its_computation_is_computed_again(factory: &Factory) {
    register_functions();
    let (db, mnist) = with_digits(factory, 10);
    let mut parity = PipelineModel::function("parity", "parity").unwrap();
    db.add_model(&mut parity).unwrap();
    db.listen("mnist", "class", "parity", json!({})).unwrap();
    let listener = "mnist/class/parity";
    // A worker claims the work and computes from what it read...
    let claim = db
        .backend()
        .claim("slow-worker", 100, Duration::from_secs(60))
        .unwrap()
        .unwrap();
    assert_eq!(claim.items().len(), 10);
    let target = claim.items()[3].doc_id.clone();
    // ...while another client writes one of the documents.
    mnist
        .update_one(
            json!({"_id": target.to_json()}),
            json!({"$set": {"class": 5}}),
        )
        .unwrap();
    let applied = complete_with(claim, -1, 1);
    assert_eq!((applied.written, applied.stale), (9, 1));
    assert_eq!(db.pending(Some(listener)).unwrap(), 1);
    db.process_pending().unwrap();
    let doc = mnist
        .find_one(json!({"_id": target.to_json()}))
        .unwrap()
        .unwrap();
    assert_eq!(doc.get_path("_outputs.class.parity"), Some(&Value::Int(1)));
    // A claim computed for an older model version is not applied either.
    mnist
        .update_one(
            json!({"_id": target.to_json()}),
            json!({"$set": {"class": 6}}),
        )
        .unwrap();
    let claim = db
        .backend()
        .claim("old-worker", 100, Duration::from_secs(60))
        .unwrap()
        .unwrap();
    let applied = complete_with(claim, -1, 7);
    assert_eq!((applied.written, applied.stale), (0, 1));
    db.process_pending().unwrap();
    let doc = mnist
        .find_one(json!({"_id": target.to_json()}))
        .unwrap()
        .unwrap();
    assert_eq!(doc.get_path("_outputs.class.parity"), Some(&Value::Int(0)));
}

/// Training from a select: a short fit on the stored digits learns (valid accuracy well above
/// chance), stores its best checkpoint as a new version with its metric values, and leaves a
/// `fit` job on record; the trained model then serves a listener.
pub fn a_fit_from_a_select_is_stored_recorded_and_served(factory: &Factory) {
    let (db, mnist) = with_digits(factory, 2000);
    let mut model = PipelineModel::network("lenet5", vigil::lenet5(10), 42)
        .unwrap()
        .preprocess(vigil::ml::mnist_preprocess());
    let trainer = vigil::TrainerConfig::new("short")
        .epochs(2)
        .batch_size(64)
        .validation_interval(20)
        .seed(42);
    let report = db
        .fit(
            &mut model,
            vigil::FitOptions::new("img", "class", &mnist, json!({}), trainer)
                .metric(vigil::Metric::accuracy("acc"))
                .validation_set(vigil::Dataset::new(
                    "my_valid",
                    "mnist",
                    json!({"_fold": "valid"}),
                )),
        )
        .unwrap();
    let train = mnist.count(json!({"_fold": "train"})).unwrap();
    assert_eq!(report.iterations, 2 * train.div_ceil(64));
    let reloaded = db.load_model("lenet5", None).unwrap();
    let acc = &reloaded.metric_values()["my_valid/acc"];
    let best = acc.iter().copied().fold(0.0, f64::max);
    assert!(best > 0.6, "valid accuracy {acc:?}");
    let jobs = db.jobs(10).unwrap();
    let fit = jobs.iter().find(|j| j.kind == "fit").expect("a fit job");
    assert_eq!(
        (fit.status, fit.target.as_str()),
        (JobStatus::Success, "lenet5")
    );
    assert_eq!(fit.done, report.iterations);

    db.listen("mnist", "img", "lenet5", json!({"_fold": "valid"}))
        .unwrap();
    db.process_pending().unwrap();
    let valid = mnist.count(json!({"_fold": "valid"})).unwrap();
    assert_eq!(
        mnist
            .count(json!({"_outputs.img.lenet5": {"$exists": true}}))
            .unwrap(),
        valid
    );
    let labels: Vec<(i64, i64)> = mnist
        .find(json!({"_fold": "valid"}))
        .projection(json!({"img": 0}))
        .run()
        .unwrap()
        .map(|d| {
            let d = d.unwrap();
            (
                d.get("class").and_then(Value::as_i64).unwrap(),
                d.get_path("_outputs.img.lenet5")
                    .and_then(Value::as_i64)
                    .unwrap(),
            )
        })
        .collect();
    let right = labels.iter().filter(|(l, p)| l == p).count() as f64;
    // The listener's outputs are the stored checkpoint's predictions.
    assert!(
        (right / valid as f64 - best).abs() < 1e-9,
        "{right}/{valid} vs {best}"
    );
}
