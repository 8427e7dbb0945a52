//! Vector search from the command line: `vigil vector-index` creates an index over a
//! listener's outputs, `vigil like` finds the documents nearest a query.

use vigil::{Datalayer, LikeQuery, Measure, Value, VectorIndex};

use crate::error::{parse_json, CliError, CliResult};
use crate::render;

/// `vigil vector-index` arguments.
#[derive(clap::Args, Debug)]
pub struct VectorIndexArgs {
    /// The index's name.
    name: String,
    /// The listener whose outputs are the vectors (see `vigil show listener`).
    listener: String,
    /// cosine, l2 or dot.
    #[arg(long, default_value = "cosine")]
    measure: String,
    /// Vectors above which searches use the HNSW graph (approximate).
    #[arg(long, default_value_t = vigil::vector::DEFAULT_APPROXIMATE_ABOVE)]
    approximate_above: usize,
}

/// `vigil like` arguments.
#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("query").required(true).args(["id", "image", "vector", "document"])))]
pub struct LikeArgs {
    /// Collection to search.
    collection: String,
    /// Search near a stored document: its `_id` as JSON, e.g. '"6741…"' or 42.
    #[arg(long)]
    id: Option<String>,
    /// Search near an image file (PNG or any format the `image` crate reads), put through
    /// the index's model.
    #[arg(long)]
    image: Option<std::path::PathBuf>,
    /// Search near a raw vector, as a JSON array of numbers.
    #[arg(long)]
    vector: Option<String>,
    /// Search near a document holding the listener's input, as JSON (binary values as
    /// {"$codec", "$base64"}).
    #[arg(long)]
    document: Option<String>,
    /// The vector index (default: the collection's only one).
    #[arg(long)]
    index: Option<String>,
    /// How many documents.
    #[arg(short, long, default_value_t = 10)]
    n: usize,
    /// Only documents matching this JSON filter.
    #[arg(long)]
    filter: Option<String>,
    /// Scan every vector even where the index would use its HNSW graph.
    #[arg(long)]
    exact: bool,
    /// One JSON object per line, {"score": …, "document": …}, for jq.
    #[arg(long)]
    json: bool,
}

pub fn vector_index(db: &Datalayer, args: &VectorIndexArgs) -> CliResult {
    let measure = Measure::parse(&args.measure).ok_or_else(|| {
        CliError::Usage(format!(
            "unknown measure `{}`: use cosine, l2 or dot",
            args.measure
        ))
    })?;
    let index = VectorIndex::new(&args.name, &args.listener)
        .measure(measure)
        .approximate_above(args.approximate_above);
    let version = db.add_vector_index(&index)?;
    let status = db.vector_index_status(&args.name)?;
    println!(
        "vector index `{}` version {version} over `{}` ({}): {} vectors of {} dimensions{}",
        args.name,
        args.listener,
        measure.name(),
        status.vectors,
        status.dimension,
        if status.skipped > 0 {
            format!(", {} outputs skipped", status.skipped)
        } else {
            String::new()
        }
    );
    Ok(())
}

pub fn like(db: &Datalayer, args: &LikeArgs) -> CliResult {
    let coll = db.collection(&args.collection)?;
    let query = if let Some(id) = &args.id {
        let json = serde_json::from_str(id)
            .map_err(|e| CliError::Usage(format!("--id is not JSON (quote strings): {e}")))?;
        LikeQuery::Id(Value::from_extended_json(&json)?)
    } else if let Some(path) = &args.image {
        let img = vigil::image::open(path).map_err(|e| CliError::Other {
            what: format!("reading {}", path.display()),
            source: Box::new(e),
        })?;
        LikeQuery::Input(Value::image(&img)?)
    } else if let Some(v) = &args.vector {
        let v: Vec<f32> = serde_json::from_str(v).map_err(|e| {
            CliError::Usage(format!("--vector is not a JSON array of numbers: {e}"))
        })?;
        LikeQuery::Vector(v)
    } else {
        let json = parse_json("document", args.document.as_deref())?;
        match Value::from_extended_json(&json)? {
            Value::Object(d) => LikeQuery::Document(d),
            other => {
                return Err(CliError::Usage(format!(
                    "--document is {}, not a JSON object",
                    other.kind()
                )))
            }
        }
    };
    let mut like = coll
        .like(query)
        .n(args.n)
        .filter(parse_json("filter", args.filter.as_deref())?)
        .exact(args.exact);
    if let Some(index) = &args.index {
        like = like.index(index);
    }
    let codecs = db.codecs();
    for hit in like.run()? {
        if args.json {
            println!(
                "{}",
                serde_json::json!({"score": hit.score, "document": hit.document.to_json()})
            );
        } else {
            println!(
                "{:.4}  {}",
                hit.score,
                render::document(&hit.document, &codecs)
            );
        }
    }
    Ok(())
}
