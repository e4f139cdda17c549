//! jitdiff's comparison: the engines by name and how they are configured, every engine's
//! outcome compared field by field with the odd one out named, the first instruction
//! where two engines part, and the divergences known to be the kernel's own.
#![deny(missing_docs)]

pub mod config;
pub mod diverge;
pub mod engines;
pub mod known;
pub mod options;
pub mod verdict;

pub use verdict::{attachments_seen, compare, helper_trace, hex, Difference, EngineResult, Field, Verdict};
