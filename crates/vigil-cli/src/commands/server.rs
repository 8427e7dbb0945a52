//! `vigil serve` and `vigil token …`: the HTTP API and dashboard, and the tokens that open it.

use std::net::SocketAddr;

use clap::{Args, Subcommand};
use vigil::Datalayer;
use vigil_server::tokens::{self, Scope};

use crate::error::{CliError, CliResult};

/// Arguments of `vigil serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on (loopback by default; put TLS in front before opening it wider).
    #[arg(long, default_value = "127.0.0.1:8000")]
    listen: SocketAddr,
    /// Largest request body accepted, in MiB.
    #[arg(long, default_value_t = 32)]
    max_body_mib: usize,
}

/// `vigil token …`.
#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Create a token and print it: the only time it is shown (only its hash is stored).
    Create {
        /// Its name (letters, digits, `_`, `-`, `.`).
        #[arg(long)]
        name: String,
        /// read (see everything, predict), write (also change documents, retry), or admin
        /// (also manage tokens).
        #[arg(long, default_value = "read")]
        scope: String,
    },
    /// List the tokens: names, scopes, creation times.
    List,
    /// Revoke a token by name.
    Revoke {
        /// The token's name.
        name: String,
    },
}

/// Serves the API and the dashboard until SIGINT or SIGTERM.
pub fn serve(db: &Datalayer, url: &str, args: &ServeArgs) -> CliResult {
    let server = vigil_server::ServerOptions::new()
        .listen(args.listen)
        .max_body(args.max_body_mib.saturating_mul(1024 * 1024))
        .bind(db.clone())
        .map_err(|source| CliError::Io {
            what: format!("listening on {}", args.listen),
            source,
        })?;
    let addr = server.local_addr().map_err(|source| CliError::Io {
        what: "reading the bound address".into(),
        source,
    })?;
    if tokens::list(db)?.is_empty() {
        eprintln!(
            "note: no tokens yet; create one with `vigil --db {url} token create --name NAME --scope admin`"
        );
    }
    eprintln!("vigil serving {url} on http://{addr} (dashboard at /, API at /api, OpenAPI at /openapi.json)");
    server.run().map_err(|source| CliError::Io {
        what: "serving".into(),
        source,
    })
}

/// Runs a token command.
pub fn token(db: &Datalayer, command: &TokenCommand) -> CliResult {
    match command {
        TokenCommand::Create { name, scope } => {
            let scope: Scope = scope
                .parse()
                .map_err(|e: vigil::Error| CliError::Usage(e.to_string()))?;
            let secret = tokens::create(db, name, scope)?;
            eprintln!("token `{name}` ({scope}) created; it is shown only now:");
            println!("{secret}");
        }
        TokenCommand::List => {
            for t in tokens::list(db)? {
                println!("{}\t{}\tcreated {:.0}", t.name, t.scope, t.created);
            }
        }
        TokenCommand::Revoke { name } => {
            if !tokens::revoke(db, name)? {
                return Err(CliError::Vigil(vigil::Error::NotFound {
                    kind: "token".into(),
                    identifier: name.clone(),
                    version: None,
                }));
            }
            eprintln!("token `{name}` revoked");
        }
    }
    Ok(())
}
