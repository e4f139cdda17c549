//! Loading programs from files (being written).
