//! vigil's PostgreSQL backend, for when one machine is not enough.
//!
//! Each collection is a table `"<name>" (seq BIGSERIAL PRIMARY KEY, id TEXT UNIQUE NOT NULL,
//! doc JSON NOT NULL, blobs BYTEA)` in the storage format of [`vigil_core::stored`]: `id` is
//! the `_id` as JSON text (`7` or `"a"`), `doc` the very JSON text SQLite stores (`json`, not
//! `jsonb`, so field order survives and U+0000 fits), binary values sit in `blobs`. Filters
//! compile to SQL over `doc #> path`; indexes are expression indexes on the same expressions. Every vigil database lives in its own schema
//! (`?schema=NAME` in the URL, default `public`).

mod claim;
mod cursor;
mod documents;
mod jobs;
mod outputs;
mod pool;
mod queue;
mod regex;
mod registry;
mod sql;
mod tables;
mod triggers;

use std::sync::Arc;

use vigil_core::{Backend, Result};

use pool::{pg_err, split_url, Pool};

/// The PostgreSQL backend.
pub struct PostgresBackend {
    pool: Arc<Pool>,
    // The session idle workers `LISTEN` on.
    watch: std::sync::Mutex<Option<postgres::Client>>,
    // Dropped with the backend (a test's private schema).
    ephemeral: bool,
}

impl std::fmt::Debug for PostgresBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresBackend")
            .field("pool", &self.pool)
            .finish_non_exhaustive()
    }
}

impl PostgresBackend {
    /// Connects to `postgres://user[:password]@host[:port]/database[?schema=NAME]`, creating
    /// vigil's tables in the schema (default `public`) if missing.
    pub fn connect(url: &str) -> Result<PostgresBackend> {
        let (conninfo, schema) = split_url(url)?;
        Self::open(conninfo, schema, false)
    }

    /// A private schema with a fresh random name, dropped with everything in it when this
    /// backend is dropped: for tests, so that runs never see each other's data.
    pub fn ephemeral(url: &str) -> Result<PostgresBackend> {
        let (conninfo, _) = split_url(url)?;
        let schema = format!("vigil_t_{}", vigil_core::ids::new_object_id());
        Self::open(conninfo, schema, true)
    }

    fn open(conninfo: String, schema: String, ephemeral: bool) -> Result<PostgresBackend> {
        let pool = Arc::new(Pool::new(conninfo, schema));
        let mut conn = pool.get()?;
        // One implicit transaction (a multi-statement query), serialised by a lock held until
        // it commits: a session-level lock released by the last statement would free the next
        // process before this one's catalog changes commit, and two `CREATE OR REPLACE
        // FUNCTION`s at once fail with "tuple concurrently updated".
        conn.batch_execute(&format!(
            "SELECT pg_advisory_xact_lock(hashtext('vigil_schema')); \
             CREATE SCHEMA IF NOT EXISTS \"{}\"; SET search_path TO \"{}\";{}{}{}{}",
            pool.schema,
            pool.schema,
            documents::SCHEMA,
            registry::SCHEMA,
            queue::SCHEMA,
            jobs::SCHEMA
        ))
        .map_err(pg_err("creating vigil's tables"))?;
        drop(conn);
        Ok(PostgresBackend {
            pool,
            watch: Default::default(),
            ephemeral,
        })
    }

    /// The schema this database lives in.
    pub fn schema(&self) -> &str {
        &self.pool.schema
    }
}

impl Drop for PostgresBackend {
    fn drop(&mut self) {
        if self.ephemeral {
            if let Ok(mut conn) = self.pool.get() {
                let _ = conn.batch_execute(&format!(
                    "DROP SCHEMA IF EXISTS \"{}\" CASCADE",
                    self.pool.schema
                ));
            }
        }
    }
}

impl Backend for PostgresBackend {
    fn name(&self) -> &'static str {
        "postgres"
    }
}
