#!/usr/bin/env bash
# The main command: builds jitdiff (release) and runs it. With no arguments it runs the
# example programs and tail-call shapes in corpus/ on every engine.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release -q
if [ $# -eq 0 ]; then
  set -- run corpus/examples/*.s corpus/tailcalls/*.s
fi
exec target/release/jitdiff "$@"
