//! The conformance suite on the machine's PostgreSQL server: each case gets its own schema,
//! dropped when the case ends. The server is `$VIGIL_TEST_POSTGRES`, by default
//! `postgres://postgres@127.0.0.1:5432/test` (`.ci/run` starts it when it is down). A server
//! that does not answer fails these tests rather than skipping them.

#[cfg(feature = "postgres")]
mod postgres {
    use std::sync::Arc;

    fn fresh(options: vigil::Options) -> vigil::Datalayer {
        let url = std::env::var("VIGIL_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let backend = vigil::PostgresBackend::ephemeral(&url)
            .unwrap_or_else(|e| panic!("PostgreSQL at {url} must answer for these tests: {e}"));
        options.with_backend(Arc::new(backend))
    }

    vigil_conformance::conformance_suite!(fresh);
    vigil_conformance::listener_suite!(fresh);

    #[test]
    fn connect_selects_postgres_by_scheme_and_schema() {
        let url = std::env::var("VIGIL_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let schema = format!("vigil_connect_{}", std::process::id());
        let db = vigil::connect(&format!("{url}?schema={schema}")).unwrap();
        assert_eq!(db.backend().name(), "postgres");
        db.collection("c")
            .unwrap()
            .insert_one(vigil::json!({"a": 1}))
            .unwrap();
        assert_eq!(db.list_collections().unwrap(), ["c"]);
        // A second connection to the same schema sees the data; another schema does not.
        let again = vigil::connect(&format!("{url}?schema={schema}")).unwrap();
        assert_eq!(
            again
                .collection("c")
                .unwrap()
                .count(vigil::json!({}))
                .unwrap(),
            1
        );
        drop(again);
        db.drop_collection("c").unwrap();
        let mut raw = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        raw.batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
            .unwrap();
        // An unreachable server is a clear error, not a hang or a panic.
        let err = vigil::connect("postgres://postgres@127.0.0.1:1/test").unwrap_err();
        assert!(err.to_string().contains("connecting to"), "{err}");
    }
}
