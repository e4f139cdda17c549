//! BPF ELF loading (being written).
