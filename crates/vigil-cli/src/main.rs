//! `vigil`: the command line, a thin layer over the `vigil` library.

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
    /// List the components of a kind (model, dataset, metric, trainer), or print one's record.
    Show {
        /// The kind: model, dataset, metric or trainer.
        kind: String,
        /// An identifier: print its record (latest version unless --version).
        identifier: Option<String>,
        /// The version to print.
        #[arg(long)]
        version: Option<u32>,
    },
    /// Run a demonstration end to end.
    Demo {
        #[command(subcommand)]
        which: Demo,
    },
}

#[derive(Subcommand, Debug)]
enum Demo {
    /// The MNIST flow on the embedded database: load the digits, then query them.
    Mnist {
        /// Directory with the MNIST IDX files.
        #[arg(long, default_value = "data/mnist")]
        data: PathBuf,
        /// At most this many digits (default: all).
        #[arg(long)]
        limit: Option<usize>,
        /// Where to write the images the demo saves.
        #[arg(long, default_value = "out")]
        out: PathBuf,
    },
}

fn parse_json(what: &str, text: Option<&str>) -> Result<serde_json::Value, String> {
    match text {
        None => Ok(json!({})),
        Some(t) => {
            serde_json::from_str(t).map_err(|e| format!("the {what} is not valid JSON: {e}"))
        }
    }
}

fn progress(len: u64, what: &str) -> ProgressBar {
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

fn insert_mnist(
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
            }
        },
        Command::Demo {
            which: Demo::Mnist { data, limit, out },
        } => demo_mnist(&db, &cli.db, &data, limit, &out)?,
    }
    Ok(())
}

fn demo_mnist(
    db: &Datalayer,
    url: &str,
    data: &PathBuf,
    limit: Option<usize>,
    out: &PathBuf,
) -> Result<(), String> {
    let e = |e: vigil::Error| e.to_string();
    println!("vigil MNIST demo on {url}");
    if db.drop_collection("mnist").map_err(e)? {
        println!("- dropped the previous `mnist` collection");
    }
    let start = Instant::now();
    let n = insert_mnist(db, data, "mnist", 0, limit)?;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "- stored {n} digits as PNG documents in {secs:.2} s ({:.0} docs/s)",
        n as f64 / secs.max(1e-9)
    );
    let mnist = db.collection("mnist").map_err(e)?;
    mnist.create_index("class").map_err(e)?;
    mnist.create_index("_fold").map_err(e)?;
    let valid = mnist.count(json!({"_fold": "valid"})).map_err(e)?;
    println!(
        "- folds: {} train, {valid} valid",
        mnist.count(json!({"_fold": "train"})).map_err(e)?
    );
    let per_class: Vec<String> = (0..10)
        .map(|c| mnist.count(json!({"class": c})).map(|n| format!("{c}:{n}")))
        .collect::<vigil::Result<_>>()
        .map_err(e)?;
    println!(
        "- digits per class (indexed filter in SQLite): {}",
        per_class.join(" ")
    );
    let sevens = mnist
        .count(json!({"class": 7, "_fold": "valid"}))
        .map_err(e)?;
    println!("- {{\"class\": 7, \"_fold\": \"valid\"}} matches {sevens} documents");
    if let Some(doc) = mnist.find_one(json!({"class": 3})).map_err(e)? {
        std::fs::create_dir_all(out).map_err(|err| format!("creating {}: {err}", out.display()))?;
        let path = out.join("first-3.png");
        let img = doc
            .get("img")
            .ok_or("document without img")?
            .to_image()
            .map_err(e)?;
        img.save(&path)
            .map_err(|err| format!("writing {}: {err}", path.display()))?;
        println!(
            "- first document of class 3: {}",
            render::document(&doc, &db.codecs())
        );
        println!(
            "- its image, read back from the database, is at {}",
            path.display()
        );
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
