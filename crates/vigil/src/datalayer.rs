//! The Datalayer: the entry point that owns a backend and the codec registry, and assigns ids
//! and folds on insert.

use std::sync::{Arc, Mutex, RwLock};

use vigil_core::ids::FoldAssigner;
use vigil_core::{names, Backend, Codec, Codecs, Error, Result};

use crate::Collection;

/// How to connect. Every setter states its default.
#[derive(Debug, Clone)]
pub struct Options {
    valid_probability: f64,
    seed: Option<u64>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            valid_probability: 0.05,
            seed: None,
        }
    }
}

impl Options {
    /// Default options.
    pub fn new() -> Self {
        Self::default()
    }

    /// Probability that an inserted document without `_fold` gets `"valid"` (else `"train"`).
    /// Default: 0.05. Clamped to `[0, 1]`.
    pub fn valid_probability(mut self, p: f64) -> Self {
        self.valid_probability = p;
        self
    }

    /// Seed for the fold draws, making them the same on every run for the same inserts.
    /// Default: none (seeded from the operating system).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Connects to a database by URL:
    /// - `sqlite://PATH` — a SQLite file, created if missing (`sqlite://mnist.db` is relative,
    ///   `sqlite:///var/db/mnist.db` absolute);
    /// - `sqlite::memory:` — a private database that disappears when the last handle drops;
    /// - `postgres://user[:password]@host[:port]/database[?schema=NAME]` — a PostgreSQL
    ///   server, vigil's tables in the schema (default `public`).
    pub fn connect(self, url: &str) -> Result<Datalayer> {
        let backend = open_backend(url)?;
        Ok(self.with_backend(backend))
    }

    /// A Datalayer over a backend built by hand.
    pub fn with_backend(self, backend: Arc<dyn Backend>) -> Datalayer {
        Datalayer {
            inner: Arc::new(Inner {
                backend,
                codecs: RwLock::new(Codecs::default()),
                folds: Mutex::new(FoldAssigner::new(self.valid_probability, self.seed)),
                vectors: Default::default(),
            }),
        }
    }
}

fn open_backend(url: &str) -> Result<Arc<dyn Backend>> {
    let invalid = |reason: &str| Error::InvalidUrl {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    let Some((scheme, _)) = url.split_once(':') else {
        return Err(invalid("expected a scheme, e.g. sqlite://vigil.db"));
    };
    match scheme {
        #[cfg(feature = "sqlite")]
        "sqlite" => {
            if url == "sqlite::memory:" {
                return Ok(Arc::new(vigil_sqlite::SqliteBackend::ephemeral()?));
            }
            let path = url
                .strip_prefix("sqlite://")
                .ok_or_else(|| invalid("a SQLite URL is sqlite://PATH or sqlite::memory:"))?;
            if path.is_empty() {
                return Err(invalid("the path is empty"));
            }
            Ok(Arc::new(vigil_sqlite::SqliteBackend::open(path)?))
        }
        #[cfg(not(feature = "sqlite"))]
        "sqlite" => Err(invalid(
            "this build of vigil has no SQLite backend (feature `sqlite`)",
        )),
        #[cfg(feature = "postgres")]
        "postgres" | "postgresql" => Ok(Arc::new(vigil_postgres::PostgresBackend::connect(url)?)),
        #[cfg(not(feature = "postgres"))]
        "postgres" | "postgresql" => Err(invalid(
            "this build of vigil has no PostgreSQL backend (feature `postgres`)",
        )),
        #[cfg(feature = "mongodb")]
        "mongodb" | "mongodb+srv" => Ok(Arc::new(vigil_mongodb::MongoBackend::connect(url)?)),
        #[cfg(not(feature = "mongodb"))]
        "mongodb" | "mongodb+srv" => Err(invalid(
            "this build of vigil has no MongoDB backend (feature `mongodb`)",
        )),
        _ => Err(invalid(
            "unknown scheme; vigil speaks sqlite://, postgres:// and mongodb://",
        )),
    }
}

/// Connects with default [`Options`]; see [`Options::connect`] for the URLs.
pub fn connect(url: &str) -> Result<Datalayer> {
    Options::default().connect(url)
}

/// The entry point: a database with its codecs. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Datalayer {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Arc<dyn Backend>,
    codecs: RwLock<Codecs>,
    folds: Mutex<FoldAssigner>,
    vectors: crate::vector::Caches,
}

impl std::fmt::Debug for Datalayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Datalayer")
            .field("backend", &self.inner.backend)
            .finish_non_exhaustive()
    }
}

impl Datalayer {
    /// A handle on a collection (created by its first insert). The name is validated here.
    pub fn collection(&self, name: &str) -> Result<Collection> {
        names::validate_collection(name)?;
        Ok(Collection::new(self.clone(), name.to_string()))
    }

    /// Names of the collections, sorted.
    pub fn list_collections(&self) -> Result<Vec<String>> {
        self.inner.backend.list_collections()
    }

    /// Drops a collection and everything in it; false if it did not exist.
    pub fn drop_collection(&self, name: &str) -> Result<bool> {
        names::validate_collection(name)?;
        self.inner.backend.drop_collection(name)
    }

    /// Registers a codec for values of a new kind.
    pub fn register_codec(&self, codec: Arc<dyn Codec>) -> Result<()> {
        self.inner
            .codecs
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .register(codec)
    }

    /// A snapshot of the registered codecs.
    pub fn codecs(&self) -> Codecs {
        self.inner
            .codecs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The backend itself: for a backend's own tests and for extensions. Everything a client
    /// needs is on the Datalayer (documents, registry, listeners, failures, jobs); nothing in
    /// vigil's interfaces calls this.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.inner.backend
    }

    /// The backend, for the Datalayer's own modules.
    pub(crate) fn store(&self) -> &dyn Backend {
        self.inner.backend.as_ref()
    }

    /// This process's copies of the vector indexes.
    pub(crate) fn vector_caches(&self) -> &crate::vector::Caches {
        &self.inner.vectors
    }

    pub(crate) fn with_codecs<T>(&self, f: impl FnOnce(&Codecs) -> T) -> T {
        f(&self.inner.codecs.read().unwrap_or_else(|e| e.into_inner()))
    }

    pub(crate) fn next_fold(&self) -> &'static str {
        self.inner
            .folds
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .next_fold()
    }
}
