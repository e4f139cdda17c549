#!/bin/bash -eu
# OSS-Fuzz build: every cargo-fuzz target, its seed corpus, options and dictionary.
exec "$SRC/jitdiff/scripts/fuzz-build.sh"
