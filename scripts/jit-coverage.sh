#!/usr/bin/env bash
# Coverage of the JIT under a fuzz corpus, from libFuzzer's own instrumentation: runs the
# `diff` target once over every input (no mutation), asks libFuzzer to print which
# functions ran and how many of their instrumented edges, and sums the edges per source
# file of jit/src. (Edge coverage of the optimised build: code inlined into a function
# counts as that function's. Line coverage with llvm-cov needs rustup's llvm-tools,
# which this machine cannot download.) Usage: scripts/jit-coverage.sh [CORPUS_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
corpus="${1:-fuzz/corpus/diff}"
[ -d "$corpus" ] || { echo "jit-coverage: no corpus at $corpus; run scripts/seed-fuzz-corpus.sh (and some fuzzing) first" >&2; exit 2; }
symbolizer="$(command -v llvm-symbolizer || ls /usr/bin/llvm-symbolizer-* 2>/dev/null | head -1 || true)"
[ -n "$symbolizer" ] || { echo "jit-coverage: needs llvm-symbolizer: run 'sudo apt-get install -y llvm' and try again" >&2; exit 2; }
# libFuzzer prints coverage only with a sanitizer runtime, which needs nightly Rust.
rustup run nightly rustc --version >/dev/null 2>&1 || { echo "jit-coverage: needs a nightly toolchain (AddressSanitizer): run 'rustup toolchain install nightly' and try again" >&2; exit 2; }
(cd fuzz && cargo +nightly fuzz build -O diff 2>/dev/null)
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
ASAN_OPTIONS=detect_leaks=0 fuzz/target/x86_64-unknown-linux-gnu/release/diff -runs=0 -print_coverage=1 \
  -external_symbolizer_path="$symbolizer" "$corpus" > "$log" 2>&1
awk '
  /^(UN)?COVERED_FUNC: / && /\/jit\/src\// {
    split($5, e, "/"); file = $NF; sub(/.*\/jit\/src\//, "", file); sub(/:[0-9]+$/, "", file)
    cov[file] += e[1]; tot[file] += e[2]; all_c += e[1]; all_t += e[2]
    funcs[file]++; if ($1 == "COVERED_FUNC:") ran[file]++
  }
  END {
    printf "JIT edge coverage under the corpus: %d of %d edges (%.1f%%)\n", all_c, all_t, 100 * all_c / (all_t ? all_t : 1)
    for (f in cov) printf "  %-22s %5d / %5d edges (%3.0f%%), %d of %d functions entered\n", f, cov[f], tot[f], 100 * cov[f] / (tot[f] ? tot[f] : 1), ran[f], funcs[f]
  }' "$log" | sort
