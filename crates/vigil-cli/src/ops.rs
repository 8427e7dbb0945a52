//! Operating listeners from the command line: `listen`, `worker`, `errors`, `jobs`.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use vigil::listen::format_time;
use vigil::{Datalayer, WorkerOptions};

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
    /// Process what is due, then exit (instead of waiting for more).
    #[arg(long)]
    once: bool,
}

pub fn worker(db: &Datalayer, url: &str, args: &WorkerArgs) -> Result<(), String> {
    let options = WorkerOptions::new()
        .batch_size(args.batch)
        .lease(Duration::from_millis(args.lease_ms))
        .max_attempts(args.max_attempts)
        .backoff(Duration::from_millis(args.backoff_ms))
        .idle_wait(Duration::from_millis(args.idle_ms))
        .on_error(Arc::new(|e| eprintln!("worker: {e}; retrying")));
    let mut worker = db.worker(options).map_err(|e| e.to_string())?;
    let start = Instant::now();
    let applied = if args.once {
        worker.drain()
    } else {
        let stop = Arc::new(AtomicBool::new(false));
        for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(signal, Arc::clone(&stop))
                .map_err(|e| format!("installing a signal handler: {e}"))?;
        }
        eprintln!(
            "worker {} on {url}: waiting for work (Ctrl-C stops)",
            worker.id()
        );
        worker.run(&stop)
    }
    .map_err(|e| e.to_string())?;
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
) -> Result<(), String> {
    let on = db
        .listen_version(collection, key, model, select, version)
        .map_err(|e| e.to_string())?;
    println!(
        "listener `{}` on model version {}: {} documents queued (job {}); run `vigil worker` to compute them",
        on.listener.name, on.listener.model_version, on.backfill.total, on.backfill.id
    );
    Ok(())
}

pub fn errors(db: &Datalayer, listener: Option<&str>, limit: usize) -> Result<(), String> {
    let failures = db.backend().failures(listener).map_err(|e| e.to_string())?;
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

pub fn jobs(db: &Datalayer, limit: usize) -> Result<(), String> {
    let jobs = db.backend().jobs(limit).map_err(|e| e.to_string())?;
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
pub fn listener_state(db: &Datalayer, name: &str) -> Result<(), String> {
    let e = |e: vigil::Error| e.to_string();
    let Ok(listener) = db.listener(name) else {
        println!("not installed (switched off)");
        return Ok(());
    };
    let versions = db.backend().output_versions(name).map_err(e)?;
    let outputs: Vec<String> = versions
        .iter()
        .map(|(v, n)| format!("{n} of version {v}"))
        .collect();
    println!(
        "installed on model version {}; outputs: {}; queued: {}; errors: {}",
        listener.model_version,
        if outputs.is_empty() {
            "none".into()
        } else {
            outputs.join(", ")
        },
        db.backend().pending(Some(name)).map_err(e)?,
        db.backend().failures(Some(name)).map_err(e)?.len()
    );
    Ok(())
}
