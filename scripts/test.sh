#!/usr/bin/env bash
# The test command: installs build dependencies if missing, checks formatting and lints,
# then runs every test in release mode (the kernel's generated test programs are 14
# million instructions; debug builds of the emulator would take far longer).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --fuzz
echo "== cargo fmt --check" >&2
cargo fmt --all -- --check
echo "== cargo clippy" >&2
cargo clippy --release --workspace --all-targets -- -D warnings
echo "== cargo test" >&2
cargo test --release --workspace
echo "== OSS-Fuzz build, simulated: every target built, packaged and run on its seeds" >&2
scripts/oss-fuzz-check.sh
