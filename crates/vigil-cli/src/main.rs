//! `vigil`: the command line, a thin layer over the `vigil` library. Arguments are parsed once
//! into [`Cli`]; each command lives in a module of [`commands`]; errors are printed with their
//! causes (see [`error`] for the exit codes).

mod commands;
mod error;
mod progress;
mod render;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use commands::{data, demo, listen, registry, server, vector, write};
use error::{parse_json, CliResult};

/// vigil: machine-learning models kept next to your data.
#[derive(Parser, Debug)]
#[command(name = "vigil", version, about)]
struct Cli {
    /// Database URL: sqlite://PATH (a file, created if missing), sqlite::memory:,
    /// postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?schema=NAME], or
    /// mongodb://HOST[:PORT][/DATABASE] (database `vigil` by default; mongodb+srv:// too).
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
    InsertMnist(commands::data::InsertMnistArgs),
    /// Print the documents a Mongo-style filter matches.
    Find(commands::data::FindArgs),
    /// Print how many documents a filter matches (the number alone).
    Count {
        /// Collection to count in.
        collection: String,
        /// Filter as JSON (default: every document).
        filter: Option<String>,
    },
    /// Insert JSON documents (from the argument or standard input).
    Insert(commands::write::InsertArgs),
    /// Apply a Mongo-style update to the first (or every) document a filter matches.
    Update(commands::write::UpdateArgs),
    /// Delete the first (or every) document a filter matches.
    Delete(commands::write::DeleteArgs),
    /// Run an aggregation pipeline ($match, $group, $sort, $project, $unwind, $count, …).
    Aggregate(commands::write::AggregateArgs),
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
    Worker(commands::listen::WorkerArgs),
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
    /// Create (or update) a vector index over a listener's outputs.
    VectorIndex(commands::vector::VectorIndexArgs),
    /// Find the documents nearest a stored document, an image or a vector, by a vector index.
    Like(commands::vector::LikeArgs),
    /// Serve the HTTP API and the dashboard (tokens required; see `vigil token`).
    Serve(commands::server::ServeArgs),
    /// Manage the tokens that open the API and the dashboard.
    Token {
        #[command(subcommand)]
        command: commands::server::TokenCommand,
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
    Mnist(commands::demo::MnistArgs),
}

fn run(cli: Cli) -> CliResult {
    let db = vigil::connect(&cli.db)?;
    match cli.command {
        Command::InsertMnist(args) => data::insert_mnist_command(&db, &cli.db, &args),
        Command::Find(args) => data::find(&db, &args),
        Command::Count { collection, filter } => data::count(&db, &collection, filter.as_deref()),
        Command::Insert(args) => write::insert(&db, &args),
        Command::Update(args) => write::update(&db, &args),
        Command::Delete(args) => write::delete(&db, &args),
        Command::Aggregate(args) => write::aggregate(&db, &args),
        Command::Collections => data::collections(&db),
        Command::Show {
            kind,
            identifier,
            version,
        } => registry::show(&db, &kind, identifier.as_deref(), version),
        Command::Listen {
            collection,
            key,
            model,
            select,
            version,
        } => listen::listen(
            &db,
            &collection,
            &key,
            &model,
            parse_json("select", select.as_deref())?,
            version,
        ),
        Command::Worker(args) => listen::worker(&db, &cli.db, &args),
        Command::Errors { listener, limit } => listen::errors(&db, listener.as_deref(), limit),
        Command::Jobs { limit } => listen::jobs(&db, limit),
        Command::VectorIndex(args) => vector::vector_index(&db, &args),
        Command::Like(args) => vector::like(&db, &args),
        Command::Serve(args) => server::serve(&db, &cli.db, &args),
        Command::Token { command } => server::token(&db, &command),
        Command::Demo {
            which: Demo::Mnist(args),
        } => demo::mnist(&db, &cli.db, &args),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}", e.report());
            e.exit_code()
        }
    }
}
