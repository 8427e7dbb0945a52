//! One module per group of commands, each a function from parsed arguments to output.

pub mod data;
pub mod demo;
pub mod listen;
pub mod registry;
pub mod server;
pub mod vector;
pub mod write;
