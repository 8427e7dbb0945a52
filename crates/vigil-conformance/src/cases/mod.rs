//! The cases, grouped by concept. Each takes the backend's factory of fresh databases.

mod aggregate;
mod codecs;
mod collections;
mod listeners;
mod queries;
mod semantics;
mod writes;

pub use aggregate::*;
pub use codecs::*;
pub use collections::*;
pub use listeners::*;
pub use queries::*;
pub use semantics::*;
pub use writes::*;

use crate::Factory;

/// A fresh database with default options.
pub(crate) fn fresh(factory: &Factory) -> vigil::Datalayer {
    factory(vigil::Options::new())
}

/// A fresh database holding the first `n` MNIST digits in `mnist`, with a fixed fold seed.
pub(crate) fn with_digits(factory: &Factory, n: usize) -> (vigil::Datalayer, vigil::Collection) {
    let db = factory(vigil::Options::new().seed(7));
    let mnist = db.collection("mnist").unwrap();
    for chunk in crate::data::documents(n).chunks(2000) {
        mnist.insert_many(chunk.to_vec()).unwrap();
    }
    (db, mnist)
}

/// The labels of the first `n` digits.
pub(crate) fn labels(n: usize) -> Vec<i64> {
    crate::data::digits()[..n]
        .iter()
        .map(|d| i64::from(d.label))
        .collect()
}
