//! A model run under guard: a panic inside the model, or a batch that does not finish within
//! the time limit, fails only the documents that cause it. The batch is split in halves until
//! the culprits stand alone (a panicking or hanging document costs about log2(batch) extra
//! runs); every other document still gets its output.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use vigil_core::{Error, Result, Value};
use vigil_ml::{panic_message, PipelineModel};

/// How one guarded run ended.
enum Run {
    Done(Vec<Result<Value>>),
    Panicked(String),
    TimedOut,
}

/// Runs the model on `inputs` on a thread of its own. A run past `limit` is abandoned: the
/// thread cannot be stopped, so it is left to finish (or hang) on its own, holding only its
/// inputs and the model.
fn run(model: &Arc<PipelineModel>, inputs: Vec<Value>, limit: Duration) -> Run {
    let (send, receive) = mpsc::channel();
    let model = Arc::clone(model);
    let spawned = std::thread::Builder::new()
        .name("vigil-model".into())
        .spawn(move || {
            let result = catch_unwind(AssertUnwindSafe(|| model.predict_each(&inputs)));
            let _ = send.send(result);
        });
    if let Err(e) = spawned {
        return Run::Panicked(format!("could not start a model thread: {e}"));
    }
    match receive.recv_timeout(limit) {
        Ok(Ok(results)) => Run::Done(results),
        Ok(Err(panic)) => Run::Panicked(panic_message(panic.as_ref())),
        Err(mpsc::RecvTimeoutError::Timeout) => Run::TimedOut,
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            Run::Panicked("the model thread ended without a result".into())
        }
    }
}

/// One result per input, as `predict_each`, with panics and hangs contained.
pub(crate) fn predict_guarded(
    model: &Arc<PipelineModel>,
    inputs: &[Value],
    limit: Duration,
) -> Vec<Result<Value>> {
    if inputs.is_empty() {
        return Vec::new();
    }
    let id = model.to_record().identifier.clone();
    match run(model, inputs.to_vec(), limit) {
        Run::Done(results) if results.len() == inputs.len() => results,
        Run::Done(results) => {
            let reason = format!(
                "returned {} results for {} inputs",
                results.len(),
                inputs.len()
            );
            inputs
                .iter()
                .map(|_| Err(Error::model(&id, &reason)))
                .collect()
        }
        Run::Panicked(message) if inputs.len() == 1 => {
            vec![Err(Error::model(
                &id,
                format!("the model panicked: {message}"),
            ))]
        }
        Run::TimedOut if inputs.len() == 1 => vec![Err(Error::model(
            &id,
            format!("the model did not finish within {limit:?}"),
        ))],
        Run::Panicked(_) | Run::TimedOut => {
            let (left, right) = inputs.split_at(inputs.len() / 2);
            let mut results = predict_guarded(model, left, limit);
            results.extend(predict_guarded(model, right, limit));
            results
        }
    }
}
