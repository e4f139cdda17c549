#!/usr/bin/env bash
# Makes cargo-fuzz seed corpora from the program sets in corpus/: every `.s` file becomes
# one input per target, the set text after the line `; jitdiff program set` (which the
# targets read as text instead of generator bytes), so a change of generator leaves the
# seeds useful. Existing files in fuzz/corpus are kept.
set -euo pipefail
cd "$(dirname "$0")/.."
for target in diff tailcalls generate; do
  mkdir -p "fuzz/corpus/$target"
  find corpus -name '*.s' | sort | while read -r f; do
    out="fuzz/corpus/$target/seed-$(echo "$f" | tr '/' '_')"
    [ -e "$out" ] || { printf '; jitdiff program set\n'; cat "$f"; } > "$out"
  done
done
mkdir -p fuzz/corpus/parse
find corpus -name '*.s' | sort | while read -r f; do
  out="fuzz/corpus/parse/seed-$(echo "$f" | tr '/' '_')"
  [ -e "$out" ] || cp "$f" "$out"
done
echo "seeded fuzz/corpus/{diff,tailcalls,generate,parse} from corpus/"
