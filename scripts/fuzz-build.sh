#!/usr/bin/env bash
# Builds every cargo-fuzz target into $OUT the way OSS-Fuzz and ClusterFuzzLite expect:
# the binaries, a seed corpus zip per target made from corpus/*.s, an .options file per
# target and a dictionary for the text parser. Called by oss-fuzz/build.sh and
# .clusterfuzzlite/build.sh with $SRC/jitdiff as the checkout; CARGO_FUZZ_FLAGS adds
# flags (the local simulation passes `--sanitizer none` on stable Rust) and
# FUZZ_TARGET_DIR names cargo's target directory (default fuzz/target).
set -euo pipefail
: "${OUT:?OUT must name the output directory}"
cd "$(dirname "$0")/.."
TARGETS="diff tailcalls generate parse"
# shellcheck disable=SC2086 # CARGO_FUZZ_FLAGS is a list of flags
target_dir="${FUZZ_TARGET_DIR:-$PWD/fuzz/target}"
cargo fuzz build -O --target-dir "$target_dir" ${CARGO_FUZZ_FLAGS:-}
scripts/seed-fuzz-corpus.sh >/dev/null
for t in $TARGETS; do
  cp "$target_dir/x86_64-unknown-linux-gnu/release/$t" "$OUT/$t"
  rm -f "$OUT/${t}_seed_corpus.zip"
  (cd "fuzz/corpus/$t" && zip -q -j "$OUT/${t}_seed_corpus.zip" seed-*)
  # Generated sets need a few KiB of generator bytes; runs are bounded by the budget.
  printf '[libfuzzer]\nmax_len = 4096\ntimeout = 20\n' > "$OUT/$t.options"
done
cp fuzz/parse.dict "$OUT/parse.dict"
printf 'dict = parse.dict\n' >> "$OUT/parse.options"
