#!/usr/bin/env bash
# A local OSS-Fuzz build, simulated (no Docker engine runs here): a temporary $SRC with
# the checkout as $SRC/jitdiff, empty $OUT and $WORK, the environment the base image
# sets for a libFuzzer build, then oss-fuzz/build.sh. Every target must land in $OUT
# with a non-empty seed corpus zip and an .options file, and must run a few thousand
# inputs from its seeds without a crash. On stable Rust the build has no sanitizer
# (CARGO_FUZZ_FLAGS=--sanitizer none); OSS-Fuzz builds with AddressSanitizer on nightly.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
export SRC="$tmp/src" OUT="$tmp/out" WORK="$tmp/work"
mkdir -p "$SRC" "$OUT" "$WORK"
ln -s "$root" "$SRC/jitdiff"
export FUZZING_ENGINE=libfuzzer SANITIZER=address ARCHITECTURE=x86_64 FUZZING_LANGUAGE=rust
# The base image compiles C and C++ with clang and these flags; gcc has no
# -gline-tables-only, so without clang the simulation asks for plain -g.
for v in "" -14 -15 -16; do
  if command -v "clang$v" >/dev/null && command -v "clang++$v" >/dev/null; then
    export CC="clang$v" CXX="clang++$v"
    break
  fi
done
debug=-g
case "${CC:-}" in clang*) debug=-gline-tables-only ;; esac
export CFLAGS="-O1 -fno-omit-frame-pointer $debug" CXXFLAGS="-O1 -fno-omit-frame-pointer $debug"
export CARGO_FUZZ_FLAGS="${CARGO_FUZZ_FLAGS---sanitizer none}"
# A target directory of its own: cmake refuses a build directory configured with
# another compiler, and the developer's fuzz/target may have been built with gcc.
export FUZZ_TARGET_DIR="$root/fuzz/target/oss-fuzz-sim"
command -v cargo-fuzz >/dev/null || { echo "oss-fuzz-check: cargo-fuzz is missing; run: cargo install cargo-fuzz --locked" >&2; exit 2; }
"$root/oss-fuzz/build.sh"
fail=0
for t in diff tailcalls generate parse; do
  [ -x "$OUT/$t" ] || { echo "oss-fuzz-check: $t is missing from \$OUT" >&2; fail=1; continue; }
  [ -s "$OUT/$t.options" ] || { echo "oss-fuzz-check: $t.options is missing" >&2; fail=1; }
  n=$(unzip -Z1 "$OUT/${t}_seed_corpus.zip" 2>/dev/null | wc -l)
  [ "$n" -gt 0 ] || { echo "oss-fuzz-check: ${t}_seed_corpus.zip is empty" >&2; fail=1; continue; }
  mkdir -p "$WORK/$t/seeds" "$WORK/$t/corpus"
  unzip -q "$OUT/${t}_seed_corpus.zip" -d "$WORK/$t/seeds"
  dict=()
  [ -f "$OUT/$t.dict" ] && dict=("-dict=$OUT/$t.dict")
  [ "$t" = parse ] && dict=("-dict=$OUT/parse.dict")
  if ! (cd "$WORK/$t" && "$OUT/$t" -runs=3000 -max_len=4096 -timeout=20 "${dict[@]}" corpus seeds > log 2>&1); then
    echo "oss-fuzz-check: $t failed on its seeds:" >&2
    tail -30 "$WORK/$t/log" >&2
    fail=1
  else
    echo "oss-fuzz-check: $t: $n seeds, $(grep -o 'Done [0-9]* runs' "$WORK/$t/log")" >&2
  fi
done
exit $fail
