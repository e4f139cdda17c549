#!/usr/bin/env bash
# Makes the conformance vectors the tests read: the eBPF tests of the kernel's own
# lib/test_bpf.c (its `tests[]` table, every generator run as the kernel runs it, and
# `tail_call_tests[]`), as JSON (kernel/vectors/README.md says what each field means).
#
# The kernel's files are read where they lie: in Debian's linux-source tarball of a
# version (--kernel VERSION, default 6.12; kernel/debian-source.sh gets it, as for
# kernel/build.sh), another tarball (--tarball FILE), or a kernel source tree (--source
# DIR, a developer's tree; never written). From a tarball, the few files needed are
# unpacked into the cache. The
# table part of lib/test_bpf.c is compiled in userspace with kernel/vectors/shim.h (our
# stand-ins for the kernel facilities it uses) and kernel/vectors/dump.c, which writes
# the JSON. Results are cached under ${JITDIFF_VECTORS_CACHE:-~/.cache/jitdiff/test-vectors},
# keyed by the contents of every input; an up-to-date run takes well under a second.
#
# Usage: kernel/test-vectors.sh [--kernel VERSION | --tarball FILE | --source DIR]
# The last stdout line is the folder holding the vectors (also $CACHE/current).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${JITDIFF_VECTORS_CACHE:-$HOME/.cache/jitdiff/test-vectors}
KERNEL=6.12
TARBALL=
SOURCE=
# Bump when the way the vectors are made changes.
RECIPE=1

say() { echo "test-vectors.sh: $*" >&2; }
die() { echo "test-vectors.sh: error: $*" >&2; exit 2; }

while (($#)); do
    case $1 in
        --kernel) [[ $# -ge 2 && $2 =~ ^[0-9]+\.[0-9]+$ ]] || die "--kernel needs a Debian kernel version (6.12, 7.3)"; KERNEL=$2; shift 2 ;;
        --source) [[ $# -ge 2 ]] || die "--source needs a kernel source folder"; SOURCE=$2; shift 2 ;;
        --tarball) [[ $# -ge 2 ]] || die "--tarball needs a kernel source tarball"; TARBALL=$2; shift 2 ;;
        -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument '$1' (usage: kernel/test-vectors.sh [--kernel VERSION | --tarball FILE | --source DIR])" ;;
    esac
done

if [[ -z $SOURCE && -z $TARBALL ]]; then
    TARBALL=$("$HERE/debian-source.sh" "$KERNEL") || die "no Debian kernel source $KERNEL (above)"
fi
command -v gcc >/dev/null 2>&1 || die "needs gcc: run scripts/setup.sh"

mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9 || die "cannot lock $CACHE/.lock"
sha() { sha256sum | cut -c1-16; }

# --- 1. the kernel files: in the developer's tree, or unpacked from the tarball -------
if [[ -n $SOURCE ]]; then
    [[ -d $SOURCE ]] || die "$SOURCE: not a folder"
    TREE=$(cd "$SOURCE" && pwd)
    ORIGIN="kernel source $TREE"
else
    [[ -f $TARBALL ]] || die "$TARBALL: no such kernel source tarball"
    TREE=$CACHE/src-$( { basename "$TARBALL"; stat -c '%s %Y' "$TARBALL"; } | sha)
    if [[ ! -f $TREE/.extracted ]]; then
        say "unpacking lib/test_bpf.c and the uapi headers from $TARBALL"
        rm -rf "$TREE" && mkdir -p "$TREE"
        tar -xJf "$TARBALL" -C "$TREE" --strip-components=1 --wildcards \
            '*/Makefile' '*/lib/test_bpf.c' '*/include/uapi/*' 2>/dev/null \
            || { rm -rf "$TREE"; die "$TARBALL: not a kernel source tarball (cannot unpack lib/test_bpf.c and include/uapi)"; }
        touch "$TREE/.extracted"
    fi
    ORIGIN="$(basename "$TARBALL")"
fi
TEST_BPF=$TREE/lib/test_bpf.c
UAPI=$TREE/include/uapi
[[ -f $TEST_BPF ]] || die "$TREE: no lib/test_bpf.c (not a kernel source tree?)"
[[ -f $UAPI/linux/bpf.h && -f $UAPI/linux/filter.h ]] || die "$TREE: no include/uapi/linux/bpf.h and filter.h"
KVERSION=$(awk -F' = ' '$1=="VERSION"{v=$2} $1=="PATCHLEVEL"{p=$2} $1=="SUBLEVEL"{s=$2} END{if (v!="") print v "." p "." s}' "$TREE/Makefile" 2>/dev/null || true)
SOURCE_NAME="lib/test_bpf.c of Linux ${KVERSION:-unknown version} ($ORIGIN)"

KEY=$( { echo "recipe $RECIPE"; cat "$TEST_BPF" "$UAPI/linux/bpf.h" "$UAPI/linux/bpf_common.h" "$UAPI/linux/filter.h" \
    "$HERE/vectors/shim.h" "$HERE/vectors/dump.c" "$0"; } | sha)
OUT=$CACHE/$KEY
finish() {
    ln -sfn "$KEY" "$CACHE/current.tmp" && mv -T "$CACHE/current.tmp" "$CACHE/current"
    say "$(cat "$OUT/summary.txt")"
    echo "$OUT"
}
if [[ -f $OUT/summary.txt ]]; then
    finish
    exit 0
fi

# --- 2. the table part of test_bpf.c: from the top to the first function that builds a
# socket buffer (tests[] and its generators), and tail_call_tests[] with its types. The
# rest is the module's runner, which needs the kernel itself.
TMP=$(mktemp -d "$CACHE/tmp.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
table_end=$(grep -n -m1 -E '^static .*\*populate_skb\(' "$TEST_BPF" | cut -d: -f1 || true)
tail_start=$(grep -n -m1 -E '^struct tail_call_test \{' "$TEST_BPF" | cut -d: -f1 || true)
tail_end=$(grep -n -m1 -E '^static .*destroy_tail_call_tests\(' "$TEST_BPF" | cut -d: -f1 || true)
[[ -n $table_end && -n $tail_start && -n $tail_end ]] \
    || die "$TEST_BPF: layout not recognised (looked for populate_skb, struct tail_call_test and destroy_tail_call_tests)"
{
    echo '#include "shim.h"'
    echo "#line 1 \"$TEST_BPF\""
    # The module's own #include lines name kernel headers; shim.h stands in for them.
    awk -v end="$table_end" 'NR < end { print (/^#include </ ? "" : $0) }' "$TEST_BPF"
    echo "#line $tail_start \"$TEST_BPF\""
    awk -v s="$tail_start" -v e="$tail_end" 'NR >= s && NR < e' "$TEST_BPF"
    echo '#line 1 "generator-names"'
    echo 'static const struct { int (*fn)(struct bpf_test *); const char *name; } jitdiff_fill_names[] = {'
    head -n "$((table_end - 1))" "$TEST_BPF" \
        | sed -n 's/^static int \(bpf_fill_[A-Za-z0-9_]*\)(struct bpf_test \*self).*/\t{ \1, "\1" },/p'
    echo '};'
    echo "#line 1 \"$HERE/vectors/dump.c\""
    cat "$HERE/vectors/dump.c"
} >"$TMP/unit.c"
# Only the BPF uapi headers come from the kernel under test (through links); the general
# ones (linux/types.h) are the host's installed headers, as for any userspace program.
mkdir -p "$TMP/include/linux"
for h in bpf.h bpf_common.h filter.h; do ln -s "$UAPI/linux/$h" "$TMP/include/linux/$h"; done
# The source tree's uapi filter.h includes linux/compiler.h, which headers_install drops
# when it installs the uapi headers; of it, filter.h uses the __user annotation.
echo '#define __user' >"$TMP/include/linux/compiler.h"
say "compiling lib/test_bpf.c's tables (Linux ${KVERSION:-?}) with kernel/vectors/shim.h"
gcc -std=gnu11 -O1 -w -I "$HERE/vectors" -I "$TMP/include" -o "$TMP/dump" "$TMP/unit.c" 2>"$TMP/cc.log" || {
    sed 's/^/    /' "$TMP/cc.log" | head -40 >&2
    die "$TEST_BPF did not compile against kernel/vectors/shim.h (a kernel facility the shim lacks?)"
}

# --- 3. run every generator and write the vectors --------------------------------------
mkdir -p "$TMP/out"
"$TMP/dump" "$TMP/out" "$SOURCE_NAME" 2>"$TMP/dump.log" || { cat "$TMP/dump.log" >&2; die "the dumper failed"; }
gzip -n -6 "$TMP/out/tests_generated.jsonl"
sed 's/^test-vectors: //' "$TMP/dump.log" | tr '\n' ';' | sed 's/;$//; s/;/; /g' >"$TMP/out/summary.txt"
echo "$SOURCE_NAME" >"$TMP/out/source.txt"
rm -rf "$OUT" && mv "$TMP/out" "$OUT"
finish
