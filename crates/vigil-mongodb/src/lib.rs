//! vigil's MongoDB backend, on the official `mongodb` driver (its blocking API).
//!
//! Each vigil collection is a MongoDB collection of native BSON documents that any client
//! reads naturally (the value format is in [`bson`](crate::bson)); listener outputs are written
//! into the documents themselves at `_outputs.<key>.<model>`, next to the data, with their
//! bookkeeping (model version, input hash, time) in `vigil_outputs`. The registry, artifacts,
//! jobs, listeners, the work queue and the errors live in `vigil_*` collections of the same
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
        };
        backend.create_schema()?;
        Ok(backend)
    }

    /// vigil's own collections and their indexes (creating them is idempotent).
    fn create_schema(&self) -> Result<()> {
        use mongodb::bson::doc;
        use mongodb::IndexModel;
        let index = |coll: &str, keys: mongodb::bson::Document| -> Result<()> {
            self.db
                .collection::<mongodb::bson::Document>(coll)
                .create_index(IndexModel::builder().keys(keys).build())
                .run()
                .map(|_| ())
                .map_err(db_err(format!("creating vigil's index on {coll}")))
        };
        let unique = mongodb::options::IndexOptions::builder()
            .unique(true)
            .build();
        self.db
            .collection::<mongodb::bson::Document>("vigil_components")
            .create_index(
                IndexModel::builder()
                    .keys(doc! {"kind": 1, "identifier": 1, "version": 1})
                    .options(unique)
                    .build(),
            )
            .run()
            .map_err(db_err("creating vigil's index on vigil_components"))?;
        index("vigil_queue", doc! {"not_before": 1})?;
        index("vigil_queue", doc! {"listener": 1})?;
        index("vigil_outputs", doc! {"listener": 1, "computed_at": 1})?;
        index("vigil_errors", doc! {"listener": 1})?;
        index("vigil_jobs", doc! {"started": -1})?;
        Ok(())
    }

    /// The database's name.
    pub fn database_name(&self) -> &str {
        self.db.name()
    }

    /// Runs `body` in one transaction on a session of its own, retrying the whole when the
    /// server says the failure was transient (a write conflict with another transaction).
    pub(crate) fn transaction<T>(
        &self,
        what: &str,
        mut body: impl FnMut(&mut ClientSession) -> Result<T>,
    ) -> Result<T> {
        let mut session = self
            .client
            .start_session()
            .run()
            .map_err(db_err(format!("starting a session for {what}")))?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            session
                .start_transaction()
                .run()
                .map_err(db_err(format!("starting a transaction for {what}")))?;
            let result = body(&mut session);
            match result {
                Ok(value) => match commit(&mut session) {
                    Ok(()) => return Ok(value),
                    Err(e) if error::is_transient(&e) && attempt < 50 => continue,
                    Err(e) => return Err(db_err(format!("committing {what}"))(e)),
                },
                Err(e) => {
                    let _ = session.abort_transaction().run();
                    if error::is_transient_error(&e) && attempt < 50 {
                        std::thread::sleep(std::time::Duration::from_millis(2 * attempt));
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
