//! The `jitdiff` command: its command line, the standalone fuzz driver, and the
//! benchmarks of engines and of the injected-bug search.
#![deny(missing_docs)]
// The fuzz report's JSON object is one `json!` call deeper than the default allows.
#![recursion_limit = "256"]

pub mod bench;
pub mod cli;
pub mod fuzz;
pub mod progress;
