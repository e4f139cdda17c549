#!/usr/bin/env bash
# The test command: installs what the build and the tests use if it is missing
# (scripts/setup.sh), makes the kernel's test vectors from the sources of Linux 6.12 and
# 7.3 (kernel/test-vectors.sh, cached) and its tail-call selftest objects (kernel/selftests.sh,
# cached), builds the riscv64 kernels and guests the kernel
# engines need (kernel/build.sh, cached; JITDIFF_NO_KERNEL=1 skips them), checks formatting and
# lints, then runs every test in release mode (the kernel's generated test programs are
# 14 million instructions; debug builds of the emulator would take far longer).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${JITDIFF_NO_KERNEL:-}" != 1 ]; then
  scripts/setup.sh --fuzz --kernel
else
  scripts/setup.sh --fuzz --kernel-source
fi
echo "== the kernel's test vectors of Linux 6.12 and 7.3 (kernel/test-vectors.sh)" >&2
JITDIFF_TEST_VECTORS="$(kernel/test-vectors.sh --kernel 6.12 | tail -1):$(kernel/test-vectors.sh --kernel 7.3 | tail -1)"
export JITDIFF_TEST_VECTORS
echo "== the kernel's tail-call selftest programs of Linux 7.3 (kernel/selftests.sh)" >&2
JITDIFF_SELFTESTS=$(kernel/selftests.sh --kernel 7.3 | tail -1)
export JITDIFF_SELFTESTS
if [ "${JITDIFF_NO_KERNEL:-}" != 1 ]; then
  echo "== kernel images and guests of Linux 6.12 and 7.3 (kernel/build.sh)" >&2
  kernel/build.sh --kernel 6.12 >/dev/null
  kernel/build.sh --kernel 7.3 >/dev/null
fi
echo "== cargo fmt --check" >&2
cargo fmt --all -- --check
echo "== cargo clippy" >&2
cargo clippy --release --workspace --all-targets -- -D warnings
echo "== cargo test" >&2
# In a temporary folder of its own, which must be empty afterwards: the suite (its guests,
# the fuzzers it starts and kills, its scratch folders) leaves nothing behind.
suite_tmp=$(mktemp -d "${TMPDIR:-/tmp}/jitdiff-suite-XXXXXX")
TMPDIR="$suite_tmp" cargo test --release --workspace
if [ -n "$(ls -A "$suite_tmp")" ]; then
  echo "scripts/test.sh: the tests left files in their temporary folder $suite_tmp:" >&2
  ls -lA "$suite_tmp" >&2
  exit 1
fi
rmdir "$suite_tmp"
# Tests that need the kernel image say "skipped: no kernel image" when there is none;
# cargo hides a passing test's output, so without an image count them here (they
# return at once).
if [ "${JITDIFF_NO_KERNEL:-}" = 1 ]; then
  skipped=$(cargo test --release -p kernel -p jitdiff --test guest --test prog_type --test robust --test kernel \
    -- --nocapture 2>&1 | grep -c "skipped: no kernel image" || true)
  echo "== kernel engine tests: $skipped skipped: no kernel image (run kernel/build.sh)" >&2
fi
echo "== OSS-Fuzz build, simulated: every target built, packaged and run on its seeds" >&2
scripts/oss-fuzz-check.sh
