//! jitdiff's triage: findings minimised to small reproducers, grouped by signature, and
//! reported (text, JSON, HTML and Markdown pages).
#![deny(missing_docs)]

pub mod dedup;
pub mod files;
pub mod minimize;
pub mod pages;
pub mod present;
pub mod report;
