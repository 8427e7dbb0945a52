//! `vigil`: the command line, a thin layer over the `vigil` library.

mod demo;
mod ops;
mod render;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use vigil::{json, Datalayer, Document};

/// vigil: machine-learning models kept next to your data.
#[derive(Parser, Debug)]
#[command(name = "vigil", version, about)]
struct Cli {
    /// Database URL: sqlite://PATH or sqlite::memory:.
    #[arg(
        long,
        global = true,
        env = "VIGIL_DB",
        default_value = "sqlite://vigil.db"
    )]
    db: String,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Load MNIST digits from IDX files as documents {"img": <image/png>, "class": <label>}.
    InsertMnist {
        /// Directory with *-images-idx3-ubyte[.gz] and *-labels-idx1-ubyte[.gz].
        #[arg(long, default_value = "data/mnist")]
        data: PathBuf,
        /// Collection to insert into.
        #[arg(long, default_value = "mnist")]
        collection: String,
        /// Digits to pass over first.
        #[arg(long, default_value_t = 0)]
        offset: usize,
        /// At most this many digits (default: all).
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Print the documents a Mongo-style filter matches.
    Find {
        /// Collection to read.
        collection: String,
        /// Filter as JSON, e.g. '{"class": 7}' (default: every document).
        filter: Option<String>,
        /// At most this many documents.
        #[arg(long, default_value_t = 20)]
        limit: u64,
        /// Documents to pass over first.
        #[arg(long, default_value_t = 0)]
        skip: u64,
        /// Sort as JSON, e.g. '{"class": -1}'.
        #[arg(long)]
        sort: Option<String>,
        /// Projection as JSON, e.g. '{"img": 0}'.
        #[arg(long)]
        projection: Option<String>,
        /// One JSON object per line (binary values as {"$codec", "$base64"}), for jq.
        #[arg(long)]
        json: bool,
    },
    /// Print how many documents a filter matches (the number alone).
    Count {
        /// Collection to count in.
        collection: String,
        /// Filter as JSON (default: every document).
        filter: Option<String>,
    },
    /// List the collections.
    Collections,
    /// List the components of a kind (model, listener, dataset, metric, trainer), or print one.
    Show {
        /// The kind: model, listener, dataset, metric or trainer.
        kind: String,
        /// An identifier: print its record (latest version unless --version).
        identifier: Option<String>,
        /// The version to print.
        #[arg(long)]
        version: Option<u32>,
    },
    /// Switch on a listener: keep `_outputs.<key>.<model>` current on a collection.
    Listen {
        /// The collection to watch.
        collection: String,
        /// The field the model reads, e.g. img (or another listener's output).
        key: String,
        /// The model's identifier.
        model: String,
        /// Which documents, as a JSON filter (default: all).
        #[arg(long)]
        select: Option<String>,
        /// The model version (default: the latest).
        #[arg(long)]
        version: Option<u32>,
    },
    /// Compute what listeners have queued, until SIGINT or SIGTERM.
    Worker(ops::WorkerArgs),
    /// Documents listeners failed on.
    Errors {
        /// Only this listener's.
        #[arg(long)]
        listener: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Recent jobs: backfills, fits and incremental batches.
    Jobs {
        /// At most this many, most recent first.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Run a demonstration end to end.
    Demo {
        #[command(subcommand)]
        which: Demo,
    },
}

#[derive(Subcommand, Debug)]
enum Demo {
    /// The seed notebook on MNIST: store digits, train LeNet5, switch on a listener, insert
    /// more digits and see them predicted.
    Mnist(demo::MnistArgs),
}

fn parse_json(what: &str, text: Option<&str>) -> Result<serde_json::Value, String> {
    match text {
        None => Ok(json!({})),
        Some(t) => {
            serde_json::from_str(t).map_err(|e| format!("the {what} is not valid JSON: {e}"))
        }
    }
}

pub(crate) fn progress(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({per_sec}, {eta} left)")
            // The template is a literal checked by the tests.
            .expect("valid progress template")
            .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

/// Inserts digits in transactions of this many documents.
const INSERT_BATCH: usize = 1000;

pub(crate) fn insert_mnist(
    db: &Datalayer,
    data: &PathBuf,
    collection: &str,
    offset: usize,
    limit: Option<usize>,
) -> Result<usize, String> {
    let coll = db.collection(collection).map_err(|e| e.to_string())?;
    let total = vigil::mnist::count_dir(data).map_err(|e| e.to_string())?;
    let n = total
        .saturating_sub(offset)
        .min(limit.unwrap_or(usize::MAX));
    let bar = progress(n as u64, "inserting digits");
    let mut digits = vigil::mnist::read_dir(data)
        .map_err(|e| e.to_string())?
        .skip(offset)
        .take(n);
    let mut inserted = 0;
    loop {
        let batch: Vec<Document> = digits
            .by_ref()
            .take(INSERT_BATCH)
            .map(|d| d.and_then(|d| d.to_document()))
            .collect::<vigil::Result<_>>()
            .map_err(|e| e.to_string())?;
        if batch.is_empty() {
            break;
        }
        inserted += batch.len();
        bar.inc(batch.len() as u64);
        coll.insert_many(batch).map_err(|e| e.to_string())?;
    }
    bar.finish_and_clear();
    Ok(inserted)
}

fn run(cli: Cli) -> Result<(), String> {
    let db = vigil::connect(&cli.db).map_err(|e| e.to_string())?;
    match cli.command {
        Command::InsertMnist {
            data,
            collection,
            offset,
            limit,
        } => {
            let start = Instant::now();
            let n = insert_mnist(&db, &data, &collection, offset, limit)?;
            let secs = start.elapsed().as_secs_f64();
            println!(
                "inserted {n} digits into `{collection}` of {} in {secs:.2} s ({:.0} docs/s)",
                cli.db,
                n as f64 / secs.max(1e-9)
            );
        }
        Command::Find {
            collection,
            filter,
            limit,
            skip,
            sort,
            projection,
            json,
        } => {
            let coll = db.collection(&collection).map_err(|e| e.to_string())?;
            let mut find = coll
                .find(parse_json("filter", filter.as_deref())?)
                .limit(limit)
                .skip(skip);
            if let Some(s) = sort {
                find = find.sort(parse_json("sort", Some(&s))?);
            }
            if let Some(p) = projection {
                find = find.projection(parse_json("projection", Some(&p))?);
            }
            let codecs = db.codecs();
            for doc in find.run().map_err(|e| e.to_string())? {
                let doc = doc.map_err(|e| e.to_string())?;
                if json {
                    println!("{}", doc.to_json());
                } else {
                    println!("{}", render::document(&doc, &codecs));
                }
            }
        }
        Command::Count { collection, filter } => {
            let coll = db.collection(&collection).map_err(|e| e.to_string())?;
            let n = coll
                .count(parse_json("filter", filter.as_deref())?)
                .map_err(|e| e.to_string())?;
            println!("{n}");
        }
        Command::Collections => {
            for name in db.list_collections().map_err(|e| e.to_string())? {
                println!("{name}");
            }
        }
        Command::Show {
            kind,
            identifier,
            version,
        } => match identifier {
            None => {
                for (id, versions) in db
                    .backend()
                    .list_components(&kind)
                    .map_err(|e| e.to_string())?
                {
                    let versions: Vec<String> = versions.iter().map(u32::to_string).collect();
                    println!("{id}\tversions {}", versions.join(", "));
                }
            }
            Some(id) => {
                let (v, record) = db
                    .show_record(&kind, &id, version)
                    .map_err(|e| e.to_string())?;
                println!("{kind} `{id}` version {v}");
                println!(
                    "{}",
                    serde_json::to_string_pretty(&record).map_err(|e| e.to_string())?
                );
                if kind == vigil::LISTENER {
                    ops::listener_state(&db, &id)?;
                }
            }
        },
        Command::Listen {
            collection,
            key,
            model,
            select,
            version,
        } => ops::listen(
            &db,
            &collection,
            &key,
            &model,
            parse_json("select", select.as_deref())?,
            version,
        )?,
        Command::Worker(args) => ops::worker(&db, &cli.db, &args)?,
        Command::Errors { listener, limit } => ops::errors(&db, listener.as_deref(), limit)?,
        Command::Jobs { limit } => ops::jobs(&db, limit)?,
        Command::Demo {
            which: Demo::Mnist(args),
        } => demo::mnist(&db, &cli.db, &args)?,
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
