//! The conformance and listener suites on a MongoDB-wire server: each case gets a database of
//! its own, dropped when the case ends. The server is `$VIGIL_TEST_MONGODB`, by default
//! `mongodb://127.0.0.1:27017` (`.ci/run` starts SecantusDB, the one obtainable here, and sets
//! it). A server that does not answer fails these tests rather than skipping them.

#[cfg(feature = "mongodb")]
mod mongodb {
    use std::sync::Arc;

    pub(crate) fn server() -> String {
        std::env::var("VIGIL_TEST_MONGODB").unwrap_or_else(|_| "mongodb://127.0.0.1:27017".into())
    }

    fn fresh(options: vigil::Options) -> vigil::Datalayer {
        let url = server();
        let backend = vigil::MongoBackend::ephemeral(&url).unwrap_or_else(|e| {
            panic!("a MongoDB server at {url} must answer for these tests: {e}")
        });
        options.with_backend(Arc::new(backend))
    }

    vigil_conformance::conformance_suite!(fresh);
    vigil_conformance::listener_suite!(fresh);
}
