//! LLVM-syntax text assembly (being written).
