//! Connections to one server, each with its `search_path` set to the database's schema.

use std::sync::{Arc, Mutex};

use postgres::error::SqlState;
use postgres::{Client, NoTls};
use vigil_core::{Error, Result};

/// Idle connections kept for reuse.
const MAX_IDLE: usize = 8;

pub(crate) fn pg_err(context: impl Into<String>) -> impl FnOnce(postgres::Error) -> Error {
    let context = context.into();
    move |e| Error::Backend {
        backend: "postgres",
        context,
        source: Box::new(e),
    }
}

pub(crate) struct Pool {
    /// The connection string as the driver takes it (no vigil options).
    pub conninfo: String,
    pub schema: String,
    idle: Mutex<Vec<Client>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("server", &redact(&self.conninfo))
            .field("schema", &self.schema)
            .finish()
    }
}

impl Pool {
    pub fn new(conninfo: String, schema: String) -> Pool {
        Pool {
            conninfo,
            schema,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// A new connection on the schema.
    pub fn connect(&self) -> Result<Client> {
        let mut client = Client::connect(&self.conninfo, NoTls)
            .map_err(pg_err(format!("connecting to {}", redact(&self.conninfo))))?;
        client
            .batch_execute(&format!(
                "SET search_path TO \"{}\"; SET client_min_messages TO warning;",
                self.schema
            ))
            .map_err(pg_err("selecting the schema"))?;
        Ok(client)
    }

    /// Runs `f` in a transaction and commits it.
    pub(crate) fn write<T>(
        self: &Arc<Self>,
        what: &str,
        f: impl FnOnce(&mut postgres::Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        let mut conn = self.get()?;
        let mut tx = conn
            .transaction()
            .map_err(pg_err(format!("starting a transaction for {what}")))?;
        let out = f(&mut tx)?;
        tx.commit().map_err(pg_err(format!("committing {what}")))?;
        Ok(out)
    }

    pub fn get(self: &Arc<Self>) -> Result<Conn> {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let client = match idle {
            Some(c) if !c.is_closed() => c,
            _ => self.connect()?,
        };
        Ok(Conn {
            client: Some(client),
            pool: Arc::clone(self),
        })
    }
}

/// The URL without its password, for messages.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// A pooled connection, returned to the pool when dropped (unless broken or mid-transaction).
pub(crate) struct Conn {
    client: Option<Client>,
    pool: Arc<Pool>,
}

impl std::ops::Deref for Conn {
    type Target = Client;
    fn deref(&self) -> &Client {
        // Only `Drop` takes the client out.
        self.client.as_ref().expect("connection used after drop")
    }
}

impl std::ops::DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut Client {
        // Only `Drop` takes the client out.
        self.client.as_mut().expect("connection used after drop")
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            if client.is_closed() {
                return;
            }
            let mut idle = self.pool.idle.lock().unwrap_or_else(|e| e.into_inner());
            if idle.len() < MAX_IDLE {
                idle.push(client);
            }
        }
    }
}

/// Splits vigil's own `schema` option off a PostgreSQL URL.
pub(crate) fn split_url(url: &str) -> Result<(String, String)> {
    let invalid = |reason: &str| Error::InvalidUrl {
        url: redact(url),
        reason: reason.into(),
    };
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, q),
        None => (url, ""),
    };
    let mut schema = "public".to_string();
    let mut rest = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("schema", s)) => schema = s.to_string(),
            _ => rest.push(pair),
        }
    }
    let valid = schema.len() <= 63
        && schema.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && schema
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(invalid(
            "the schema is a letter or `_`, then letters, digits or `_` (63 at most)",
        ));
    }
    let conninfo = if rest.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    Ok((conninfo, schema))
}

/// Whether a statement failed because a collection's table does not exist yet (it reads as
/// empty).
pub(crate) fn is_missing_table(e: &postgres::Error) -> bool {
    e.code() == Some(&SqlState::UNDEFINED_TABLE)
}
