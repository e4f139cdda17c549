//! jitdiff's triage side: comparing engine outcomes, presenting them, and the `jitdiff`
//! command line.
#![deny(missing_docs)]
// The fuzz report's JSON object is one `json!` call deeper than the default allows.
#![recursion_limit = "256"]

pub mod bench;
pub mod cli;
pub mod compare;
pub mod config;
pub mod dedup;
pub mod diverge;
pub mod engines;
pub mod fuzz;
pub mod known;
pub mod minimize;
pub mod options;
pub mod pages;
pub mod present;
pub mod report;
