//! jitdiff's triage side: comparing engine outcomes, presenting them, and the `jitdiff`
//! command line.
#![deny(missing_docs)]

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
pub mod pages;
pub mod present;
pub mod report;
