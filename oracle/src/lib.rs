//! The oracles of jitdiff: engines whose results the JIT's are judged against.
//!
//! - [`reference`]: our own interpreter with the kernel's exact semantics;
//! - [`rbpf`]: the `rbpf` crate's interpreter, an independent second opinion, with the
//!   program lowered where rbpf is known to diverge and "cannot judge" where it cannot be.
#![deny(missing_docs)]

pub mod rbpf;
pub mod reference;
