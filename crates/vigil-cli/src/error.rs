//! The command line's one error type, and how it is printed: the message, then each cause on
//! its own line, so nothing of a database driver's or a decoder's explanation is lost.
//!
//! Exit codes: 0 success; 1 the command failed (a database, model, file or document error);
//! 2 the command line itself was wrong (clap's own errors, and JSON arguments that do not
//! parse).

use std::process::ExitCode;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// An argument was not what the command takes.
    #[error("{0}")]
    Usage(String),
    /// vigil failed, with its cause.
    #[error(transparent)]
    Vigil(#[from] vigil::Error),
    /// A file could not be written or read.
    #[error("{what}")]
    Io {
        /// What was being done.
        what: String,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
    /// Something else the command could not do, with its cause.
    #[error("{what}")]
    Other {
        /// What was being done.
        what: String,
        /// Why it failed.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl CliError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            CliError::Usage(_) => ExitCode::from(2),
            _ => ExitCode::from(1),
        }
    }

    /// `error: …` then `  caused by: …` for each cause in the chain that the lines above do
    /// not already say (vigil's messages quote their driver's, so that `to_string()` alone
    /// explains them; deeper causes still get their line).
    pub fn report(&self) -> String {
        let mut out = format!("error: {self}");
        let mut source = std::error::Error::source(self);
        // `Vigil` is transparent: its own message is already printed above.
        if let CliError::Vigil(e) = self {
            source = std::error::Error::source(e);
        }
        while let Some(cause) = source {
            let text = cause.to_string();
            if !out.contains(&text) {
                out.push_str(&format!("\n  caused by: {text}"));
            }
            source = cause.source();
        }
        out
    }
}

/// What every command returns.
pub type CliResult<T = ()> = std::result::Result<T, CliError>;

/// Parses a JSON argument (a filter, sort, projection or select); absent means `{}`.
pub fn parse_json(what: &str, text: Option<&str>) -> CliResult<serde_json::Value> {
    match text {
        None => Ok(serde_json::json!({})),
        Some(t) => serde_json::from_str(t)
            .map_err(|e| CliError::Usage(format!("the {what} is not valid JSON: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error whose message does not repeat its cause's.
    #[derive(Debug, thiserror::Error)]
    #[error("reading the digits")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn reports_print_each_new_cause_once() {
        let e = CliError::Other {
            what: "loading MNIST".into(),
            source: Box::new(Outer(std::io::Error::other("disk on fire"))),
        };
        assert_eq!(
            e.report(),
            "error: loading MNIST\n  caused by: reading the digits\n  caused by: disk on fire"
        );
        assert_eq!(e.exit_code(), ExitCode::from(1));
        // vigil's own messages quote their source: it is not printed twice.
        let io = vigil::Error::io("opening x", std::io::Error::other("no such file"));
        assert_eq!(
            CliError::from(io).report(),
            "error: opening x: no such file"
        );
        let usage = parse_json("filter", Some("{nope")).unwrap_err();
        assert!(usage
            .report()
            .starts_with("error: the filter is not valid JSON"));
        assert_eq!(usage.exit_code(), ExitCode::from(2));
    }
}
