//! The conformance suite on SQLite: each case gets its own ephemeral database file.

#[cfg(feature = "sqlite")]
mod sqlite {
    fn fresh(options: vigil::Options) -> vigil::Datalayer {
        options
            .connect("sqlite::memory:")
            .expect("an ephemeral SQLite database opens")
    }

    vigil_conformance::conformance_suite!(fresh);
    vigil_conformance::listener_suite!(fresh);
}
