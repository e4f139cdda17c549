//! The rbpf backend (being written).
