//! Progress bars for people at a terminal: the library reports progress through observers
//! ([`vigil::FitOptions::on_progress`], [`vigil::Worker::drain_with`]); these draw it.

use std::sync::{Arc, Mutex};

use indicatif::{ProgressBar, ProgressStyle};
use vigil::{FitObserver, FitProgress, Progress};

/// A bar of `len` steps labelled `what`.
pub fn bar(len: u64, what: &str) -> ProgressBar {
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

/// A fit observer drawing a training bar: steps, the last loss and the last validation.
/// The bar is cleared when the returned handle's [`FitBar::finish`] is called.
pub fn fit_bar() -> (FitObserver, FitBar) {
    let bar = ProgressBar::hidden();
    let shared = Arc::new(Mutex::new((bar.clone(), String::new())));
    let state = Arc::clone(&shared);
    let observer: FitObserver = Arc::new(move |p: &FitProgress<'_>| {
        let mut guard = state.lock().unwrap_or_else(|e| e.into_inner());
        let (bar, last) = &mut *guard;
        match p {
            FitProgress::Started { total_steps } => {
                let drawn = ProgressBar::new(*total_steps);
                drawn.set_style(
                    ProgressStyle::with_template(
                        "training {wide_bar} {pos}/{len} steps ({eta} left) {msg}",
                    )
                    // A literal template.
                    .expect("valid progress template"),
                );
                *bar = drawn;
            }
            FitProgress::Training(Progress::Step {
                iteration, loss, ..
            }) => {
                bar.set_position(*iteration);
                bar.set_message(format!("loss {loss:.4} {last}"));
            }
            FitProgress::Training(Progress::Validated { values, .. }) => {
                *last = values
                    .iter()
                    .map(|(k, v)| format!("{k} {v:.4}"))
                    .collect::<Vec<_>>()
                    .join(" ");
            }
        }
    });
    (observer, FitBar(shared))
}

/// The bar a [`fit_bar`] observer draws.
pub struct FitBar(Arc<Mutex<(ProgressBar, String)>>);

impl FitBar {
    /// Clears the bar from the terminal.
    pub fn finish(self) {
        let guard = self.0.lock().unwrap_or_else(|e| e.into_inner());
        guard.0.finish_and_clear();
    }
}
