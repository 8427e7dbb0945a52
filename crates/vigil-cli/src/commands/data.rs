//! Documents: `insert-mnist`, `find`, `count`, `collections`.

use std::path::Path;
use std::time::Instant;

use vigil::{Datalayer, Document};

use crate::error::{parse_json, CliResult};
use crate::{progress, render};

/// `vigil find` arguments.
#[derive(clap::Args, Debug)]
pub struct FindArgs {
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
}

/// `vigil insert-mnist` arguments.
#[derive(clap::Args, Debug)]
pub struct InsertMnistArgs {
    /// Directory with *-images-idx3-ubyte[.gz] and *-labels-idx1-ubyte[.gz].
    #[arg(long, default_value = "data/mnist")]
    data: std::path::PathBuf,
    /// Collection to insert into.
    #[arg(long, default_value = "mnist")]
    collection: String,
    /// Digits to pass over first.
    #[arg(long, default_value_t = 0)]
    offset: usize,
    /// At most this many digits (default: all).
    #[arg(long)]
    limit: Option<usize>,
}

pub fn insert_mnist_command(db: &Datalayer, url: &str, args: &InsertMnistArgs) -> CliResult {
    let start = Instant::now();
    let n = insert_mnist(db, &args.data, &args.collection, args.offset, args.limit)?;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "inserted {n} digits into `{}` of {url} in {secs:.2} s ({:.0} docs/s)",
        args.collection,
        n as f64 / secs.max(1e-9)
    );
    Ok(())
}

/// Inserts digits in transactions of this many documents.
const INSERT_BATCH: usize = 1000;

/// Inserts MNIST digits from IDX files, with a progress bar; returns how many.
pub fn insert_mnist(
    db: &Datalayer,
    data: &Path,
    collection: &str,
    offset: usize,
    limit: Option<usize>,
) -> CliResult<usize> {
    let coll = db.collection(collection)?;
    let total = vigil_datasets::mnist::count_dir(data)?;
    let n = total
        .saturating_sub(offset)
        .min(limit.unwrap_or(usize::MAX));
    let bar = progress::bar(n as u64, "inserting digits");
    let mut digits = vigil_datasets::mnist::read_dir(data)?.skip(offset).take(n);
    let mut inserted = 0;
    loop {
        let batch: Vec<Document> = digits
            .by_ref()
            .take(INSERT_BATCH)
            .map(|d| d.and_then(|d| d.to_document()))
            .collect::<vigil::Result<_>>()?;
        if batch.is_empty() {
            break;
        }
        inserted += batch.len();
        bar.inc(batch.len() as u64);
        coll.insert_many(batch)?;
    }
    bar.finish_and_clear();
    Ok(inserted)
}

pub fn find(db: &Datalayer, args: &FindArgs) -> CliResult {
    let coll = db.collection(&args.collection)?;
    let mut find = coll
        .find(parse_json("filter", args.filter.as_deref())?)
        .limit(args.limit)
        .skip(args.skip);
    if let Some(s) = &args.sort {
        find = find.sort(parse_json("sort", Some(s))?);
    }
    if let Some(p) = &args.projection {
        find = find.projection(parse_json("projection", Some(p))?);
    }
    render::print_documents(find.run()?, args.json, &db.codecs())
}

pub fn count(db: &Datalayer, collection: &str, filter: Option<&str>) -> CliResult {
    let n = db
        .collection(collection)?
        .count(parse_json("filter", filter)?)?;
    println!("{n}");
    Ok(())
}

pub fn collections(db: &Datalayer) -> CliResult {
    for name in db.list_collections()? {
        println!("{name}");
    }
    Ok(())
}
