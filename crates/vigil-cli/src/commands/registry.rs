//! The registry: `show`.

use vigil::{Datalayer, StoredComponent};

use crate::commands::listen;
use crate::error::{CliError, CliResult};

/// Lists the components of a kind, or prints one record (and, for a listener, its state).
pub fn show(
    db: &Datalayer,
    kind: &str,
    identifier: Option<&str>,
    version: Option<u32>,
) -> CliResult {
    let Some(id) = identifier else {
        for c in db.show_all(kind)? {
            let versions: Vec<String> = c.versions.iter().map(u32::to_string).collect();
            println!("{}\tversions {}", c.identifier, versions.join(", "));
        }
        return Ok(());
    };
    let StoredComponent { version, record } = db.show_record(kind, id, version)?;
    println!("{kind} `{id}` version {version}");
    let text = serde_json::to_string_pretty(&record).map_err(|e| CliError::Other {
        what: format!("printing {kind} `{id}`"),
        source: Box::new(e),
    })?;
    println!("{text}");
    if kind == vigil::LISTENER {
        listen::listener_state(db, id)?;
    }
    Ok(())
}
