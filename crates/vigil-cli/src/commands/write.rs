//! Writes and pipelines from the command line: `insert`, `update`, `delete`, `aggregate`.
//! Documents and pipelines come from an argument or, when it is absent or `-`, from standard
//! input, so `vigil find --json … | vigil insert other` copies documents, binary values
//! included (they travel as `{"$codec", "$base64"}`).

use std::io::Read;

use serde_json::Value as Json;
use vigil::{Datalayer, Document, Value};

use crate::error::{parse_json, CliError, CliResult};
use crate::render;

/// Documents are inserted in transactions of this many.
const INSERT_BATCH: usize = 1000;

/// `vigil insert` arguments.
#[derive(clap::Args, Debug)]
pub struct InsertArgs {
    /// Collection to insert into (created if missing).
    collection: String,
    /// A JSON document or an array of them; absent or `-`: read JSON values (one document or
    /// array after another, e.g. one per line) from standard input.
    documents: Option<String>,
    /// Print each inserted document's `_id` (as JSON, one per line) instead of a summary.
    #[arg(long)]
    ids: bool,
}

/// `vigil update` arguments.
#[derive(clap::Args, Debug)]
pub struct UpdateArgs {
    /// Collection to update.
    collection: String,
    /// Filter as JSON, e.g. '{"class": 7}'.
    filter: String,
    /// Update as JSON, e.g. '{"$set": {"checked": true}}'; absent or `-`: read it from
    /// standard input.
    update: Option<String>,
    /// Update every matching document (default: the first only).
    #[arg(long)]
    many: bool,
    /// Insert a document built from the filter and the update when none matches.
    #[arg(long, conflicts_with = "many")]
    upsert: bool,
}

/// `vigil delete` arguments.
#[derive(clap::Args, Debug)]
pub struct DeleteArgs {
    /// Collection to delete from.
    collection: String,
    /// Filter as JSON.
    filter: String,
    /// Delete every matching document (default: the first only).
    #[arg(long)]
    many: bool,
}

/// `vigil aggregate` arguments.
#[derive(clap::Args, Debug)]
pub struct AggregateArgs {
    /// Collection to read.
    collection: String,
    /// The pipeline as a JSON array of stages, e.g.
    /// '[{"$group": {"_id": "$class", "n": {"$sum": 1}}}]'; absent or `-`: standard input.
    pipeline: Option<String>,
    /// One JSON object per line (binary values as {"$codec", "$base64"}), for jq.
    #[arg(long)]
    json: bool,
}

/// The argument, or standard input when it is absent or `-`.
fn argument_or_stdin(arg: Option<&str>) -> CliResult<String> {
    match arg {
        Some(t) if t != "-" => Ok(t.to_string()),
        _ => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| CliError::Other {
                    what: "reading standard input".into(),
                    source: Box::new(e),
                })?;
            Ok(text)
        }
    }
}

/// A document from JSON, binary values in their extended form.
fn document(json: &Json, index: usize) -> CliResult<Document> {
    match Value::from_extended_json(json)? {
        Value::Object(d) => Ok(d),
        other => Err(CliError::Usage(format!(
            "document {index} is not a JSON object: {}",
            other.kind()
        ))),
    }
}

pub fn insert(db: &Datalayer, args: &InsertArgs) -> CliResult {
    let coll = db.collection(&args.collection)?;
    let text = argument_or_stdin(args.documents.as_deref())?;
    let mut batch = Vec::with_capacity(INSERT_BATCH);
    let mut inserted = 0usize;
    let mut flush = |batch: &mut Vec<Document>| -> CliResult {
        if batch.is_empty() {
            return Ok(());
        }
        let ids = coll.insert_many(std::mem::take(batch))?;
        inserted += ids.len();
        if args.ids {
            for id in ids {
                println!("{}", id.to_json());
            }
        }
        Ok(())
    };
    let mut index = 0;
    for value in serde_json::Deserializer::from_str(&text).into_iter::<Json>() {
        let value =
            value.map_err(|e| CliError::Usage(format!("the documents are not valid JSON: {e}")))?;
        let items = match value {
            Json::Array(items) => items,
            one => vec![one],
        };
        for item in &items {
            batch.push(document(item, index)?);
            index += 1;
            if batch.len() == INSERT_BATCH {
                flush(&mut batch)?;
            }
        }
    }
    flush(&mut batch)?;
    if !args.ids {
        println!(
            "inserted {inserted} document{} into `{}`",
            if inserted == 1 { "" } else { "s" },
            args.collection
        );
    }
    Ok(())
}

pub fn update(db: &Datalayer, args: &UpdateArgs) -> CliResult {
    let coll = db.collection(&args.collection)?;
    let filter = parse_json("filter", Some(&args.filter))?;
    let text = argument_or_stdin(args.update.as_deref())?;
    let update = parse_json("update", Some(&text))?;
    if args.upsert {
        let out = coll.upsert_one(filter, update)?;
        match out.upserted_id {
            Some(id) => println!("matched 0, modified 0, upserted {}", id.to_json()),
            None => println!("matched {}, modified {}", out.matched, out.modified),
        }
        return Ok(());
    }
    let out = if args.many {
        coll.update_many(filter, update)?
    } else {
        coll.update_one(filter, update)?
    };
    println!("matched {}, modified {}", out.matched, out.modified);
    Ok(())
}

pub fn delete(db: &Datalayer, args: &DeleteArgs) -> CliResult {
    let coll = db.collection(&args.collection)?;
    let filter = parse_json("filter", Some(&args.filter))?;
    let n = if args.many {
        coll.delete_many(filter)?
    } else {
        coll.delete_one(filter)?
    };
    println!("deleted {n}");
    Ok(())
}

pub fn aggregate(db: &Datalayer, args: &AggregateArgs) -> CliResult {
    let coll = db.collection(&args.collection)?;
    let text = argument_or_stdin(args.pipeline.as_deref())?;
    let pipeline = parse_json("pipeline", Some(&text))?;
    render::print_documents(coll.aggregate(pipeline)?, args.json, &db.codecs())
}
