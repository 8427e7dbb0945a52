//! What every handler shares: the Datalayer, a short-lived cache of the token list, and the
//! models loaded for predictions.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vigil::{Datalayer, PipelineModel};

use crate::error::{blocking, ApiResult};
use crate::tokens::{self, TokenInfo};

/// How long the token list is trusted before it is read again: a token revoked from another
/// process (`vigil token revoke`) stops working within this time; one revoked through this
/// server's API stops at once.
const TOKENS_FRESH_FOR: Duration = Duration::from_secs(1);

/// A presented token not in the cached list makes the list be read again, at most this often.
const MISS_REFRESH: Duration = Duration::from_millis(100);

/// Loaded models kept for predictions, at most this many (the oldest loaded goes first).
const MODELS_KEPT: usize = 8;

/// The server's shared state. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

type LoadedModels = Vec<((String, u32), Arc<PipelineModel>)>;

struct Inner {
    db: Datalayer,
    tokens: Mutex<Option<(Instant, Arc<Vec<TokenInfo>>)>>,
    models: Mutex<LoadedModels>,
    stopping: AtomicBool,
}

impl AppState {
    /// State over a Datalayer.
    pub fn new(db: Datalayer) -> Self {
        AppState {
            inner: Arc::new(Inner {
                db,
                tokens: Mutex::new(None),
                models: Mutex::new(Vec::new()),
                stopping: AtomicBool::new(false),
            }),
        }
    }

    /// The Datalayer (a cheap clone, for blocking tasks).
    pub fn db(&self) -> Datalayer {
        self.inner.db.clone()
    }

    /// The stored tokens, read again when the cached list is older than a second.
    pub async fn tokens(&self) -> ApiResult<Arc<Vec<TokenInfo>>> {
        self.tokens_fresher_than(TOKENS_FRESH_FOR).await
    }

    /// The stored token `presented` belongs to. A token the cached list does not know is
    /// looked up again in the database, so a token just created by `vigil token create` works
    /// at once; the list is read at most every [`MISS_REFRESH`] (a miss waits for that), so
    /// unknown tokens cannot hammer the database, and guessing is slowed down too.
    pub async fn verify(&self, presented: &str) -> ApiResult<Option<TokenInfo>> {
        let list = self.tokens().await?;
        if let Some(found) = tokens::verify(&list, presented) {
            return Ok(Some(found.clone()));
        }
        let age = self
            .inner
            .tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|(at, _)| at.elapsed())
            .unwrap_or(MISS_REFRESH);
        if age < MISS_REFRESH {
            tokio::time::sleep(MISS_REFRESH - age).await;
        }
        let list = self.tokens_fresher_than(MISS_REFRESH).await?;
        Ok(tokens::verify(&list, presented).cloned())
    }

    async fn tokens_fresher_than(&self, age: Duration) -> ApiResult<Arc<Vec<TokenInfo>>> {
        if let Some((at, list)) = &*self.inner.tokens.lock().unwrap_or_else(|e| e.into_inner()) {
            if at.elapsed() < age {
                return Ok(list.clone());
            }
        }
        let db = self.db();
        let list = Arc::new(blocking(move || tokens::list(&db)).await?);
        *self.inner.tokens.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((Instant::now(), list.clone()));
        Ok(list)
    }

    /// Whether the server is shutting down: long-lived responses (event streams) end, so
    /// the graceful shutdown does not wait for them forever.
    pub fn stopping(&self) -> bool {
        self.inner.stopping.load(Ordering::Relaxed)
    }

    pub(crate) fn stop(&self) {
        self.inner.stopping.store(true, Ordering::Relaxed);
    }

    /// Forgets the cached token list (after a token was created or revoked here).
    pub fn tokens_changed(&self) {
        *self.inner.tokens.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// A model version (default: the latest), loaded once and kept for later predictions;
    /// returns the version with it.
    pub fn model(
        &self,
        identifier: &str,
        version: Option<u32>,
    ) -> vigil::Result<(u32, Arc<PipelineModel>)> {
        let db = &self.inner.db;
        let version = match version {
            Some(v) => v,
            None => {
                db.show_record(vigil::registry::MODEL, identifier, None)?
                    .version
            }
        };
        let key = (identifier.to_string(), version);
        if let Some((_, m)) = self
            .inner
            .models
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|(k, _)| *k == key)
        {
            return Ok((version, m.clone()));
        }
        let model = Arc::new(db.load_model(identifier, Some(version))?);
        let mut models = self.inner.models.lock().unwrap_or_else(|e| e.into_inner());
        if models.len() >= MODELS_KEPT {
            models.remove(0);
        }
        models.push((key, model.clone()));
        Ok((version, model))
    }
}
