//! jitdiff's RV64 JIT.
#![deny(missing_docs)]

pub mod rv64;
