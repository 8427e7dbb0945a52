//! Training from the database (the notebook's `fit`) on the 10,000 real MNIST digits.

use std::path::PathBuf;
use std::sync::Arc;

use vigil::ml::{accuracy_of, mnist_preprocess, register_function, Model, PipelineModel};
use vigil::{json, lenet5, Dataset, Document, FitOptions, Metric, TrainerConfig, Value};

fn data() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist")
}

fn load(db: &vigil::Datalayer, n: usize) -> vigil::Collection {
    let mnist = db.collection("mnist").unwrap();
    let docs: Vec<Document> = vigil_datasets::mnist::read_dir(data())
        .unwrap()
        .take(n)
        .map(|d| d.unwrap().to_document().unwrap())
        .collect();
    for chunk in docs.chunks(2500) {
        mnist.insert_many(chunk.to_vec()).unwrap();
    }
    mnist.create_index("_fold").unwrap();
    mnist
}

fn valid_set() -> Dataset {
    Dataset::new("my_valid", "mnist", json!({"_fold": "valid"}))
}

#[test]
fn lenet5_trained_from_the_database_reaches_96_percent_on_the_valid_fold() {
    let dir = tempfile::tempdir().unwrap();
    let db = vigil::Options::new()
        .seed(42)
        .connect(&format!(
            "sqlite://{}",
            dir.path().join("mnist.db").display()
        ))
        .unwrap();
    let mnist = load(&db, 10_000);
    let mut model = PipelineModel::network("lenet5", lenet5(10), 42)
        .unwrap()
        .preprocess(mnist_preprocess());
    let trainer = TrainerConfig::new("lenet5_adam")
        .epochs(3)
        .batch_size(64)
        .validation_interval(50)
        .seed(42);
    let report = db
        .fit(
            &mut model,
            FitOptions::new("img", "class", &mnist, json!({}), trainer)
                .metric(Metric::accuracy("acc"))
                .validation_set(valid_set()),
        )
        .unwrap();
    let acc = &model.metric_values()["my_valid/acc"];
    let best = acc.iter().copied().fold(0.0, f64::max);
    assert!(best >= 0.96, "best valid accuracy {best}, values {acc:?}");
    assert_eq!(report.best, Some(("my_valid/acc".to_string(), best)));
    assert!(model.metric_values()["objective"].len() >= 2);
    assert!(model.metric_values().contains_key("my_valid/objective"));
    let train_docs = mnist.count(json!({"_fold": "train"})).unwrap();
    assert_eq!(report.iterations, 3 * train_docs.div_ceil(64));

    // The stored model is the best checkpoint and carries its metric values.
    let reloaded = db.load_model("lenet5", None).unwrap();
    assert_eq!(reloaded.metric_values(), model.metric_values());
    let valid: Vec<Document> = mnist
        .find(json!({"_fold": "valid"}))
        .run()
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let inputs: Vec<Value> = valid
        .iter()
        .map(|d| d.get("img").unwrap().clone())
        .collect();
    let labels: Vec<Value> = valid
        .iter()
        .map(|d| d.get("class").unwrap().clone())
        .collect();
    let predictions = reloaded.predict(&inputs).unwrap();
    assert_eq!(predictions, model.predict(&inputs).unwrap());
    let recomputed = accuracy_of(&predictions, &labels);
    assert!(
        (recomputed - best).abs() < 1e-9,
        "reloaded model scores {recomputed}, recorded best {best}"
    );
    assert_eq!(db.show("trainer").unwrap(), ["lenet5_adam"]);
    assert_eq!(db.show("dataset").unwrap(), ["my_valid"]);
}

#[test]
fn accuracy_is_measured_against_the_labels() {
    let db = vigil::Options::new()
        .seed(1)
        .connect("sqlite::memory:")
        .unwrap();
    let mnist = load(&db, 3000);
    register_function(
        "always_one",
        Arc::new(|inputs: &[Value]| Ok(vec![Value::Int(1); inputs.len()])),
    );
    let constant = PipelineModel::function("constant", "always_one").unwrap();
    let docs: Vec<Document> = mnist
        .find(json!({}))
        .run()
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let inputs: Vec<Value> = docs.iter().map(|d| d.get("img").unwrap().clone()).collect();
    let labels: Vec<Value> = docs
        .iter()
        .map(|d| d.get("class").unwrap().clone())
        .collect();
    let predictions = constant.predict(&inputs).unwrap();
    let acc = accuracy_of(&predictions, &labels);
    let ones = labels.iter().filter(|l| l.as_i64() == Some(1)).count() as f64 / labels.len() as f64;
    assert!(
        (acc - ones).abs() < 1e-12 && (0.05..0.16).contains(&acc),
        "constant model scores {acc}"
    );
    assert!(
        (accuracy_of(&predictions, &predictions) - 1.0).abs() < 1e-12,
        "the seed's mistake would read 1.0"
    );
}

#[test]
fn training_is_deterministic_given_the_seed() {
    let db = vigil::Options::new()
        .seed(5)
        .connect("sqlite::memory:")
        .unwrap();
    let mnist = load(&db, 1500);
    let run = |seed: u64| {
        let mut model = PipelineModel::network("small", lenet5(10), seed)
            .unwrap()
            .preprocess(mnist_preprocess());
        let trainer = TrainerConfig::new("short")
            .max_iterations(12)
            .epochs(5)
            .batch_size(32)
            .validation_interval(4)
            .seed(seed);
        db.fit(
            &mut model,
            FitOptions::new(
                "img",
                "class",
                &mnist,
                json!({"class": {"$lt": 5}}),
                trainer,
            )
            .metric(Metric::accuracy("acc"))
            .validation_set(valid_set()),
        )
        .unwrap();
        model.metric_values().clone()
    };
    let a = run(3);
    assert_eq!(a["my_valid/acc"].len(), 3);
    assert_eq!(a, run(3));
    assert_ne!(a, run(4));
}

#[test]
fn bad_training_requests_are_errors() {
    let db = vigil::connect("sqlite::memory:").unwrap();
    let mnist = load(&db, 100);
    let mut model = PipelineModel::network("net", lenet5(10), 0)
        .unwrap()
        .preprocess(mnist_preprocess());
    let trainer = TrainerConfig::new("t").max_iterations(2);
    let err = db
        .fit(
            &mut model,
            FitOptions::new("img", "nothing", &mnist, json!({}), trainer.clone()),
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("no `nothing`"), "{err}");
    let err = db
        .fit(
            &mut model,
            FitOptions::new("img", "_fold", &mnist, json!({}), trainer.clone()),
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a class"), "{err}");
    let err = db
        .fit(
            &mut model,
            FitOptions::new(
                "img",
                "class",
                &mnist,
                json!({"class": {"$regex": 1}}),
                trainer,
            ),
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("$regex"), "{err}");
    let bytes = std::fs::read(data().join("../lenet5/lenet5.onnx")).unwrap();
    let mut onnx = PipelineModel::onnx("onnx", bytes).unwrap();
    let err = db
        .fit(
            &mut onnx,
            FitOptions::new("img", "class", &mnist, json!({}), TrainerConfig::new("t")),
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("only declarative networks"), "{err}");
}
