#!/usr/bin/env bash
# The main command: builds jitdiff (release) and runs it. With no arguments it fuzzes for
# 60 seconds on one core (`jitdiff fuzz --time 60`), saving any finding in artifacts/.
# With arguments it runs `jitdiff ARGS...` (e.g. `scripts/run.sh run corpus/tailcalls/*.s`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release -q
if [ $# -eq 0 ]; then
  set -- fuzz --time 60
fi
exec target/release/jitdiff "$@"
