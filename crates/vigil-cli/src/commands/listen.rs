//! Operating listeners from the command line: `listen`, `worker`, `errors`, `jobs`.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use vigil::listen::format_time;
use vigil::{Datalayer, WorkerOptions};

use crate::error::{CliError, CliResult};

/// `vigil worker` settings.
#[derive(clap::Args, Debug)]
pub struct WorkerArgs {
    /// Queue entries claimed and computed at once.
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Milliseconds a claim keeps other workers off its entries.
    #[arg(long, default_value_t = 30_000)]
    lease_ms: u64,
    /// Attempts before a failing document is parked.
    #[arg(long, default_value_t = 5)]
    max_attempts: u32,
    /// Milliseconds before the first retry of a failed document (doubled after each).
    #[arg(long, default_value_t = 1_000)]
    backoff_ms: u64,
    /// Longest idle wait, in milliseconds, before looking for retries that came due.
    #[arg(long, default_value_t = 250)]
    idle_ms: u64,
    /// Longest one batch may run in the model, in milliseconds; a batch past it (or one that
    /// panics) is split until the documents causing it stand alone and are recorded as failed.
    #[arg(long, default_value_t = 300_000)]
    time_limit_ms: u64,
    /// Process what is due, then exit (instead of waiting for more).
    #[arg(long)]
    once: bool,
}

pub fn worker(db: &Datalayer, url: &str, args: &WorkerArgs) -> CliResult {
    let options = WorkerOptions::new()
        .batch_size(args.batch)
        .lease(Duration::from_millis(args.lease_ms))
        .max_attempts(args.max_attempts)
        .backoff(Duration::from_millis(args.backoff_ms))
        .idle_wait(Duration::from_millis(args.idle_ms))
        .time_limit(Duration::from_millis(args.time_limit_ms))
        .on_error(Arc::new(|e| eprintln!("worker: {e}; retrying")));
    let mut worker = db.worker(options)?;
    let start = Instant::now();
    let applied = if args.once {
        worker.drain()
    } else {
        let stop = Arc::new(AtomicBool::new(false));
        for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(signal, Arc::clone(&stop)).map_err(|e| CliError::Io {
                what: "installing a signal handler".into(),
                source: e,
            })?;
        }
        eprintln!(
            "worker {} on {url}: waiting for work (Ctrl-C stops)",
            worker.id()
        );
        worker.run(&stop)
    }?;
    eprintln!(
        "worker stopped after {:.1} s: {} outputs written, {} removed, {} unchanged, {} retrying, {} parked",
        start.elapsed().as_secs_f64(),
        applied.written,
        applied.removed,
        applied.unchanged,
        applied.retrying,
        applied.parked
    );
    Ok(())
}

pub fn listen(
    db: &Datalayer,
    collection: &str,
    key: &str,
    model: &str,
    select: serde_json::Value,
    version: Option<u32>,
) -> CliResult {
    let on = db.listen_version(collection, key, model, select, version)?;
    println!(
        "listener `{}` on model version {}: {} documents queued (job {}); run `vigil worker` to compute them",
        on.listener.name, on.listener.model_version, on.backfill.total, on.backfill.id
    );
    Ok(())
}

pub fn errors(db: &Datalayer, listener: Option<&str>, limit: usize) -> CliResult {
    let failures = db.failures(listener)?;
    if failures.is_empty() {
        println!("no errors");
        return Ok(());
    }
    println!("listener\tdocument\tattempts\tstate\tlast failed\terror");
    for f in failures.iter().take(limit) {
        println!(
            "{}\t{}\t{}\t{}\t{}\t{}",
            f.listener,
            f.doc_id,
            f.attempts,
            if f.parked { "parked" } else { "retrying" },
            format_time(f.last_failed),
            f.error
        );
    }
    if failures.len() > limit {
        println!("… and {} more", failures.len() - limit);
    }
    Ok(())
}

pub fn jobs(db: &Datalayer, limit: usize) -> CliResult {
    let jobs = db.jobs(limit)?;
    if jobs.is_empty() {
        println!("no jobs");
        return Ok(());
    }
    println!("id\tkind\ttarget\tstatus\tprogress\tstarted\tfinished\tnote");
    for j in jobs {
        println!(
            "{}\t{}\t{}\t{}\t{}/{}{}\t{}\t{}\t{}",
            j.id,
            j.kind,
            j.target,
            j.status.as_str(),
            j.done,
            j.total,
            if j.failed > 0 {
                format!(" ({} failed)", j.failed)
            } else {
                String::new()
            },
            format_time(j.started),
            j.finished.map(format_time).unwrap_or_else(|| "-".into()),
            j.error.unwrap_or_default()
        );
    }
    Ok(())
}

/// What `vigil show listener NAME` adds to the record: its live state.
pub fn listener_state(db: &Datalayer, name: &str) -> CliResult {
    let status = match db.listener_status(name) {
        Ok(status) => status,
        Err(vigil::Error::NotFound { .. }) => {
            println!("not installed (switched off)");
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    let outputs: Vec<String> = status
        .outputs
        .iter()
        .map(|o| format!("{} of version {}", o.count, o.model_version))
        .collect();
    println!(
        "installed on model version {}; outputs: {}; queued: {}; errors: {}",
        status.listener.model_version,
        if outputs.is_empty() {
            "none".into()
        } else {
            outputs.join(", ")
        },
        status.pending,
        status.retrying + status.parked
    );
    Ok(())
}
