//! The conformance suite on SQLite: each case gets its own ephemeral database file.

#[cfg(feature = "sqlite")]
mod sqlite {
    vigil_conformance::conformance_suite!(|options: vigil::Options| options
        .connect("sqlite::memory:")
        .expect("an ephemeral SQLite database opens"));
}
