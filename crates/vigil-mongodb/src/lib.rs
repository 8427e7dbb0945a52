//! vigil's MongoDB backend, on the official `mongodb` driver (its blocking API).
//!
//! Each vigil collection is a MongoDB collection of native BSON documents that any client
//! reads naturally (the value format is in [`bson`](crate::bson)); listener outputs are written
//! into the documents themselves at `_outputs.<key>.<model>`, next to the data, with their
//! bookkeeping (model version, input hash, time) in `vigil_outputs`. The registry, artifacts,
//! jobs, listeners, the work queue, the errors and the sessions of vigil processes (see
//! [`sessions`](crate::sessions)) live in `vigil_*` collections of the same
//! database. Filters run in the server (see [`query`](crate::query)). Writes from any client
//! reach the listeners through a change stream (see [`capture`](crate::capture)).

mod bson;
mod capture;
mod claim;
mod documents;
mod entries;
mod error;
mod jobs;
mod outputs;
mod query;
mod queue;
mod registry;
mod sessions;

use std::sync::Arc;

use mongodb::sync::{Client, ClientSession, Database};
use vigil_core::{Backend, Error, Result};

use error::db_err;

/// The MongoDB backend. Cheap to clone (the driver's client is a handle to its pool); a claim
/// holds a clone.
#[derive(Clone)]
pub struct MongoBackend {
    client: Client,
    db: Database,
    // A test's private database, dropped when the last clone goes.
    _ephemeral: Option<Arc<Ephemeral>>,
    // The session ids recorded in `vigil_sessions` (see `sessions`).
    sessions: Arc<sessions::Recorded>,
}

struct Ephemeral(Database);

impl Drop for Ephemeral {
    fn drop(&mut self) {
        let _ = self.0.drop().run();
    }
}

impl std::fmt::Debug for MongoBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MongoBackend")
            .field("database", &self.db.name())
            .finish_non_exhaustive()
    }
}

/// How long a transaction that keeps meeting write conflicts is run again: past MongoDB's
/// default `transactionLifetimeLimitSeconds` (60), after which the server aborts a dead
/// client's transaction and its writes stop conflicting.
pub(crate) const TRANSIENT_RETRY: std::time::Duration = std::time::Duration::from_secs(120);

/// The database a URL names when its path names none.
pub const DEFAULT_DATABASE: &str = "vigil";

impl MongoBackend {
    /// Connects to `mongodb://host[:port][/database][?options]` (or `mongodb+srv://`); the
    /// database defaults to `vigil`. The server must support transactions and change streams
    /// (a replica set, or a server that offers them on one node).
    pub fn connect(url: &str) -> Result<MongoBackend> {
        let (client, name) = open_client(url)?;
        Self::open(
            client,
            name.unwrap_or_else(|| DEFAULT_DATABASE.into()),
            false,
        )
    }

    /// A private database with a fresh random name, dropped with everything in it when this
    /// backend is dropped: for tests, so that runs never see each other's data.
    pub fn ephemeral(url: &str) -> Result<MongoBackend> {
        let (client, _) = open_client(url)?;
        let name = format!("vigil_t_{}", vigil_core::ids::new_object_id());
        Self::open(client, name, true)
    }

    fn open(client: Client, name: String, ephemeral: bool) -> Result<MongoBackend> {
        let db = client.database(&name);
        let backend = MongoBackend {
            client,
            _ephemeral: ephemeral.then(|| Arc::new(Ephemeral(db.clone()))),
            db,
            sessions: Arc::default(),
        };
        backend.create_schema()?;
        Ok(backend)
    }

    /// vigil's own collections and their indexes. Only missing indexes are created: every
    /// process connects, and `createIndexes` is a DDL command that takes collection locks (and
    /// needs the `createIndex` privilege) even when the index exists; a `listIndexes` read
    /// does neither. (On SecantusDB a `createIndexes` queued behind the open transaction of a
    /// SIGKILLed process could wait for good, which hung a restarting worker.)
    fn create_schema(&self) -> Result<()> {
        use mongodb::bson::{doc, Document};
        use mongodb::options::IndexOptions;
        use mongodb::IndexModel;
        let unique = IndexOptions::builder().unique(true).build();
        let wanted: [(&str, Document, Option<IndexOptions>); 6] = [
            (
                "vigil_components",
                doc! {"kind": 1, "identifier": 1, "version": 1},
                Some(unique),
            ),
            ("vigil_queue", doc! {"not_before": 1}, None),
            ("vigil_queue", doc! {"listener": 1}, None),
            (
                "vigil_outputs",
                doc! {"listener": 1, "computed_at": 1},
                None,
            ),
            ("vigil_errors", doc! {"listener": 1}, None),
            ("vigil_jobs", doc! {"started": -1}, None),
        ];
        for (coll, keys, options) in wanted {
            let collection = self.db.collection::<Document>(coll);
            if self.index_keys(coll)?.contains(&keys) {
                continue;
            }
            collection
                .create_index(IndexModel::builder().keys(keys).options(options).build())
                .run()
                .map_err(db_err(format!("creating vigil's index on {coll}")))?;
        }
        Ok(())
    }

    /// The key documents of `coll`'s indexes; none when the collection does not exist yet.
    fn index_keys(&self, coll: &str) -> Result<Vec<mongodb::bson::Document>> {
        let listed = match self
            .db
            .collection::<mongodb::bson::Document>(coll)
            .list_indexes()
            .run()
        {
            Ok(cursor) => cursor,
            Err(e) if error::code(&e) == Some(26) => return Ok(Vec::new()), // NamespaceNotFound
            Err(e) => return Err(db_err(format!("listing the indexes of {coll}"))(e)),
        };
        listed
            .map(|index| index.map(|index| index.keys))
            .collect::<mongodb::error::Result<Vec<_>>>()
            .map_err(db_err(format!("listing the indexes of {coll}")))
    }

    /// The database's name.
    pub fn database_name(&self) -> &str {
        self.db.name()
    }

    /// Runs `body` in one transaction on a session of its own, retrying the whole when the
    /// server says the failure was transient (a write conflict with another transaction) for
    /// up to [`TRANSIENT_RETRY`]: long enough to outlast the open transaction of a process
    /// killed mid-write, which the server aborts after `transactionLifetimeLimitSeconds`
    /// (60 s by default).
    pub(crate) fn transaction<T>(
        &self,
        what: &str,
        body: impl FnMut(&mut ClientSession) -> Result<T>,
    ) -> Result<T> {
        self.transaction_for(what, TRANSIENT_RETRY, body)
    }

    /// [`transaction`](Self::transaction) tried once: a write conflict comes back as the
    /// error (see [`error::is_transient_error`]), for callers that would rather do something
    /// else than wait.
    pub(crate) fn transaction_once<T>(
        &self,
        what: &str,
        body: impl FnMut(&mut ClientSession) -> Result<T>,
    ) -> Result<T> {
        self.transaction_for(what, std::time::Duration::ZERO, body)
    }

    /// [`transaction`](Self::transaction), run again on write conflicts for `retry_for`.
    pub(crate) fn transaction_for<T>(
        &self,
        what: &str,
        retry_for: std::time::Duration,
        mut body: impl FnMut(&mut ClientSession) -> Result<T>,
    ) -> Result<T> {
        let started = std::time::Instant::now();
        let mut session = self
            .client
            .start_session()
            .run()
            .map_err(db_err(format!("starting a session for {what}")))?;
        sessions::record(&self.db, &self.sessions, &session)?;
        let mut attempt: u64 = 0;
        let mut ended_dead = None;
        loop {
            attempt += 1;
            let again = started.elapsed() < retry_for;
            // Conflicts that outlast a live peer's transaction may be a dead process's: its
            // sessions are ended (on this host), now and every few seconds while they last.
            if attempt >= 3
                && ended_dead.is_none_or(|at: std::time::Instant| at.elapsed().as_secs() >= 5)
            {
                let _ = sessions::end_dead(&self.db);
                ended_dead = Some(std::time::Instant::now());
            }
            session
                .start_transaction()
                .run()
                .map_err(db_err(format!("starting a transaction for {what}")))?;
            let result = body(&mut session);
            match result {
                Ok(value) => match commit(&mut session) {
                    Ok(()) => return Ok(value),
                    Err(e) if error::is_transient(&e) && again => continue,
                    Err(e) => return Err(db_err(format!("committing {what}"))(e)),
                },
                Err(e) => {
                    let _ = session.abort_transaction().run();
                    if error::is_transient_error(&e) && again {
                        // Short waits first (a live peer's transaction ends in milliseconds),
                        // then a steady poll for a dead one's to be aborted.
                        std::thread::sleep(std::time::Duration::from_millis(
                            (2 * attempt).min(250),
                        ));
                        continue;
                    }
                    return Err(e);
                }
            }
        }
    }

    pub(crate) fn collection(
        &self,
        name: &str,
    ) -> mongodb::sync::Collection<mongodb::bson::Document> {
        self.db.collection(name)
    }
}

/// Commits, retrying a commit whose result is unknown (the driver's documented loop).
fn commit(session: &mut ClientSession) -> mongodb::error::Result<()> {
    loop {
        match session.commit_transaction().run() {
            Err(e) if e.contains_label(mongodb::error::UNKNOWN_TRANSACTION_COMMIT_RESULT) => {
                continue
            }
            other => return other,
        }
    }
}

fn open_client(url: &str) -> Result<(Client, Option<String>)> {
    let invalid = |reason: String| Error::InvalidUrl {
        url: url.to_string(),
        reason,
    };
    let options = mongodb::options::ClientOptions::parse(url)
        .run()
        .map_err(|e| invalid(e.to_string()))?;
    let name = options.default_database.clone();
    if let Some(name) = &name {
        vigil_core::names::validate_identifier(name).map_err(|_| {
            invalid(format!(
                "database name `{name}`: ASCII letters, digits, `_` and `-`"
            ))
        })?;
    }
    let client = Client::with_options(options).map_err(|e| invalid(e.to_string()))?;
    Ok((client, name))
}

impl Backend for MongoBackend {
    fn name(&self) -> &'static str {
        "mongodb"
    }
}
