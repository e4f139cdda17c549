#!/bin/bash -eu
# ClusterFuzzLite build: the same as OSS-Fuzz's, from the checkout.
exec "$SRC/jitdiff/scripts/fuzz-build.sh"
