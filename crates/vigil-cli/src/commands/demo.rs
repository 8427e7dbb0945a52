//! `vigil demo mnist`: the seed notebook end to end, with progress bars and a closing summary.

use std::path::{Path, PathBuf};
use std::time::Instant;

use vigil::ml::{mnist_preprocess, Model, PipelineModel, Postprocess};
use vigil::{json, lenet5, Datalayer, Dataset, FitOptions, Metric, TrainerConfig, WorkerOptions};

use crate::commands::data::insert_mnist;
use crate::error::{CliError, CliResult};
use crate::{progress, render};

/// `vigil demo mnist` settings.
#[derive(clap::Args, Debug)]
pub struct MnistArgs {
    /// Directory with the MNIST IDX files (any set: the full 70,000 digits work too).
    #[arg(long, default_value = "data/mnist")]
    data: PathBuf,
    /// At most this many digits (default: all).
    #[arg(long)]
    limit: Option<usize>,
    /// Training epochs.
    #[arg(long, default_value_t = 3)]
    epochs: u64,
    /// Where to write the images and the plot.
    #[arg(long, default_value = "out")]
    out: PathBuf,
}

/// Digits per training step.
const BATCH: u64 = 64;

/// What the demo did, printed at its end (and checked by the tests).
struct Summary {
    stored: usize,
    training_seconds: f64,
    final_accuracy: f64,
    best_accuracy: f64,
    backfill_docs: u64,
    backfill_outputs: u64,
    backfill_seconds: f64,
    late: usize,
    late_predicted: u64,
    /// (the query's class, how many of its 10 nearest other digits share it)
    similar: (i64, usize),
    digit_png: PathBuf,
    plot_png: PathBuf,
}

pub fn mnist(db: &Datalayer, url: &str, args: &MnistArgs) -> CliResult {
    println!("vigil MNIST demo on {url}");
    std::fs::create_dir_all(&args.out).map_err(|e| CliError::Io {
        what: format!("creating {}", args.out.display()),
        source: e,
    })?;
    if db.drop_collection("mnist")? {
        println!("- dropped the previous `mnist` collection (and its listeners)");
    }

    // 1. All digits but the last 10% go in first; the rest arrive after the listener is on.
    let total = vigil_datasets::mnist::count_dir(&args.data)?;
    let n = total.min(args.limit.unwrap_or(usize::MAX));
    let late = n / 10;
    let early = n - late;
    let start = Instant::now();
    let stored = insert_mnist(db, &args.data, "mnist", 0, Some(early))?;
    println!(
        "- stored {stored} digits as PNG documents in {:.2} s",
        start.elapsed().as_secs_f64()
    );
    let mnist = db.collection("mnist")?;
    mnist.create_index("_fold")?;

    // 2. Documents come back as they went in; the image is written back out as a PNG.
    let first = mnist
        .find_one(json!({}))?
        .ok_or_else(|| CliError::Usage("the collection is empty: no digits were read".into()))?;
    let digit_png = args.out.join("first-digit.png");
    save_image(&first, &digit_png)?;
    println!("- find_one: {}", render::document(&first, &db.codecs()));

    // 3. LeNet5 with its preprocess (decode, pad to 32x32, normalise) and postprocess (argmax).
    let mut model = PipelineModel::network("lenet5", lenet5(10), 42)?
        .preprocess(mnist_preprocess())
        .postprocess(Postprocess::Argmax);
    let version = db.add_model(&mut model)?;
    let sample: Vec<vigil::Document> = mnist
        .find(json!({}))
        .limit(10)
        .run()?
        .collect::<vigil::Result<_>>()?;
    let images: Vec<vigil::Value> = sample
        .iter()
        .filter_map(|d| d.get("img").cloned())
        .collect();
    let guesses = model.predict(&images)?;
    println!(
        "- added model `lenet5` version {version}; untrained, it predicts {} for classes {}",
        list(guesses.iter().map(|v| v.to_json())),
        list(
            sample
                .iter()
                .filter_map(|d| d.get("class"))
                .map(|v| v.to_json())
        )
    );

    // 4. Fit on the train fold, validated on the valid fold with an accuracy metric, about a
    //    dozen times over the run so the curve has points to show.
    let steps = mnist.count(json!({"_fold": "train"}))?.div_ceil(BATCH) * args.epochs;
    let interval = (steps / 12).max(1);
    let trainer = TrainerConfig::new("my_configuration")
        .epochs(args.epochs)
        .batch_size(BATCH as usize)
        .validation_interval(interval)
        .seed(42);
    let (observer, bar) = progress::fit_bar();
    let report = db.fit(
        &mut model,
        FitOptions::new("img", "class", &mnist, json!({}), trainer)
            .metric(Metric::accuracy("acc"))
            .validation_set(Dataset::new("my_valid", "mnist", json!({"_fold": "valid"})))
            .on_progress(observer),
    );
    bar.finish();
    let report = report?;
    println!(
        "- trained {} steps in {:.1} s",
        report.iterations, report.seconds
    );

    // 5. The stored model carries its metric values: plot the validation accuracy.
    let model = db.load_model("lenet5", None)?;
    let acc = model
        .metric_values()
        .get("my_valid/acc")
        .cloned()
        .unwrap_or_default();
    let plot_png = args.out.join("my_valid-acc.png");
    vigil_datasets::plot::curves(
        "LeNet5 on MNIST: my_valid/acc",
        &format!("validation (every {interval} steps of {BATCH} digits)"),
        &[("my_valid/acc", &acc)],
        &plot_png,
        (800, 480),
    )?;

    // 6. Switch the listeners on: the classifier, and its 84 features before the last layer
    //    (for similarity search); backfill every stored digit.
    let mut features = model.features("lenet5-features", "fc2")?;
    db.add_model(&mut features)?;
    let start = Instant::now();
    let on = db.listen("mnist", "img", "lenet5", json!({}))?;
    let on_features = db.listen("mnist", "img", "lenet5-features", json!({}))?;
    db.vector_index("digits", &on_features.listener.name, vigil::Measure::Cosine)?;
    let bar = progress::bar(
        on.backfill.total + on_features.backfill.total,
        "predicting stored digits",
    );
    db.worker(WorkerOptions::new())?
        .drain_with(&mut |done| bar.set_position(done.finished()))?;
    bar.finish_and_clear();
    let backfill_seconds = start.elapsed().as_secs_f64();
    println!("- listeners: {}", db.show(vigil::LISTENER)?.join(", "));
    if let Some(doc) = mnist.find_one(json!({"_fold": "valid"}))? {
        println!(
            "- a valid document now: {}",
            render::document(&doc, &db.codecs())
        );
    }

    // 7. The remaining digits arrive, marked `update: true`; the listener predicts them.
    let late_docs: Vec<vigil::Document> = vigil_datasets::mnist::read_dir(&args.data)?
        .skip(early)
        .take(late)
        .map(|d| {
            d.and_then(|d| d.to_document())
                .map(|d| d.with("update", true))
        })
        .collect::<vigil::Result<_>>()?;
    mnist.insert_many(late_docs)?;
    db.process_pending()?;
    let late_predicted =
        mnist.count(json!({"update": true, "_outputs.img.lenet5": {"$exists": true}}))?;
    if let Some(doc) = mnist.find_one(json!({"update": true}))? {
        println!(
            "- a late insert now: {}",
            render::document(&doc, &db.codecs())
        );
    }

    let similar = similar_digits(db)?;

    print_summary(&Summary {
        stored,
        training_seconds: report.seconds,
        final_accuracy: acc.last().copied().unwrap_or(0.0),
        best_accuracy: acc.iter().copied().fold(0.0, f64::max),
        backfill_docs: on.backfill.total,
        backfill_outputs: on.backfill.total + on_features.backfill.total,
        backfill_seconds,
        late,
        late_predicted,
        similar,
        digit_png,
        plot_png,
    });
    Ok(())
}

/// The ten digits most like a late insert (itself left out), by the `digits` vector index.
fn similar_digits(db: &Datalayer) -> CliResult<(i64, usize)> {
    let mnist = db.collection("mnist")?;
    let Some(query) = mnist.find_one(json!({"update": true}))? else {
        return Ok((0, 0));
    };
    let id = query.get("_id").cloned().unwrap_or(vigil::Value::Null);
    let class = query.get("class").and_then(|c| c.as_i64()).unwrap_or(-1);
    let hits = mnist
        .like(vigil::LikeQuery::Id(id.clone()))
        .index("digits")
        .n(10)
        .filter(json!({"_id": {"$ne": id.to_json()}}))
        .run()?;
    let classes: Vec<i64> = hits
        .iter()
        .filter_map(|h| h.document.get("class").and_then(|c| c.as_i64()))
        .collect();
    println!(
        "- digits like late insert {} (class {class}): classes {} (vigil like mnist --id '{}')",
        id.to_json(),
        list(classes.iter().map(|c| json!(c))),
        id.to_json()
    );
    Ok((class, classes.iter().filter(|&&c| c == class).count()))
}

fn list(items: impl Iterator<Item = serde_json::Value>) -> String {
    items.map(|v| v.to_string()).collect::<Vec<_>>().join(" ")
}

fn save_image(doc: &vigil::Document, path: &Path) -> CliResult {
    let img = doc
        .get("img")
        .ok_or_else(|| CliError::Usage("the document has no img".into()))?
        .to_image()?;
    img.save(path).map_err(|e| CliError::Other {
        what: format!("writing {}", path.display()),
        source: Box::new(e),
    })
}

fn print_summary(s: &Summary) {
    println!();
    println!("summary");
    println!("  documents stored:        {}", s.stored + s.late);
    println!("  training time:           {:.1} s", s.training_seconds);
    println!(
        "  final valid accuracy:    {:.2}% (best {:.2}%, the stored checkpoint)",
        s.final_accuracy * 100.0,
        s.best_accuracy * 100.0
    );
    println!(
        "  backfill:                {} documents, 2 listeners, in {:.2} s ({:.0} outputs/s)",
        s.backfill_docs,
        s.backfill_seconds,
        s.backfill_outputs as f64 / s.backfill_seconds.max(1e-9)
    );
    println!("  late inserts predicted:  {}/{}", s.late_predicted, s.late);
    println!(
        "  similar digits:          {}/10 of the nearest share the query's class {}",
        s.similar.1, s.similar.0
    );
    println!("  first digit written to:  {}", s.digit_png.display());
    println!("  accuracy plot:           {}", s.plot_png.display());
}
