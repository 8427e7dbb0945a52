//! # vigil-server
//!
//! `vigil serve`: vigil's JSON API and dashboard over one database, for a team to put in front
//! of it. Every route but `/health` (and the dashboard's static files, which hold no data)
//! needs a token; tokens are stored as hashes in the database ([`tokens`]).
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let db = vigil::connect("sqlite://mnist.db")?;
//! let admin = vigil_server::tokens::create(&db, "ops", vigil_server::tokens::Scope::Admin)?;
//! println!("sign in with {admin}");
//! let server = vigil_server::ServerOptions::new().bind(db)?; // 127.0.0.1:8000
//! server.run()?; // until Ctrl-C or SIGTERM
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

pub mod api;
mod auth;
mod dashboard;
mod docs;
pub mod error;
mod extract;
mod state;
pub mod tokens;

use std::future::Future;
use std::net::SocketAddr;

use axum::extract::DefaultBodyLimit;
use axum::routing::get;

pub use auth::{COOKIE_NAME, CSRF_HEADER};
pub use state::AppState;

/// How to serve. Every setter states its default.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    listen: SocketAddr,
    max_body: usize,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 8000)),
            max_body: 32 * 1024 * 1024,
        }
    }
}

impl ServerOptions {
    /// Default options.
    pub fn new() -> Self {
        Self::default()
    }

    /// The address to listen on. Default: `127.0.0.1:8000` (loopback only: listening on
    /// other interfaces is a choice the operator makes, behind TLS).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// The largest request body accepted, in bytes; larger ones get 413. Default: 32 MiB.
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// Binds the address (port 0 picks a free one) and prepares the routes.
    pub fn bind(self, db: vigil::Datalayer) -> std::io::Result<Server> {
        let listener = std::net::TcpListener::bind(self.listen)?;
        listener.set_nonblocking(true)?;
        let state = AppState::new(db);
        Ok(Server {
            listener,
            router: router(state.clone(), &self),
            state,
        })
    }
}

/// Every route: the API, `/openapi.json`, `/health` and the dashboard.
pub fn router(state: AppState, options: &ServerOptions) -> axum::Router {
    let (api, doc) = api::routes();
    let doc = std::sync::Arc::new(doc.to_pretty_json().unwrap_or_default());
    api.route(
        "/openapi.json",
        get(move |_: auth::Read| {
            let doc = doc.clone();
            async move {
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    doc.as_str().to_string(),
                )
            }
        }),
    )
    .merge(dashboard::routes())
    .fallback(|| async { error::ApiError::not_found("no such route") })
    .layer(DefaultBodyLimit::max(options.max_body))
    .with_state(state)
}

/// A bound server, ready to run.
pub struct Server {
    listener: std::net::TcpListener,
    router: axum::Router,
    state: AppState,
}

impl Server {
    /// The address it listens on.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until Ctrl-C or SIGTERM, on a runtime of its own; requests in flight finish.
    pub fn run(self) -> std::io::Result<()> {
        self.run_until(shutdown_signal())
    }

    /// Serves until `stop` completes.
    pub fn run_until(self, stop: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("vigil-serve")
            .build()?;
        let state = self.state;
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(self.listener)?;
            axum::serve(listener, self.router)
                .with_graceful_shutdown(async move {
                    stop.await;
                    state.stop();
                })
                .await
        })
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
