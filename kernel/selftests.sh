#!/usr/bin/env bash
# Builds the kernel's own tail-call selftest programs (tools/testing/selftests/bpf/progs/
# tailcall*.c) as the selftests' Makefile does: BPF objects compiled by clang with the
# libbpf headers Debian installs (libbpf-dev), from the kernel source read where it lies:
# Debian's linux-source tarball of a version (--kernel VERSION, default 7.3;
# kernel/debian-source.sh gets it), another tarball (--tarball FILE), or a kernel source
# tree (--source DIR, a developer's tree; never written). From a tarball only the
# selftests' programs and headers and the uapi headers are unpacked, into the cache.
# Objects are cached under ${JITDIFF_SELFTESTS_CACHE:-~/.cache/jitdiff/selftests}, keyed
# by the contents of every input and the compiler's version; an up-to-date run takes well
# under a second. Nothing is copied into the repository.
#
# Usage: kernel/selftests.sh [--kernel VERSION | --tarball FILE | --source DIR]
# The last stdout line is the folder holding the objects (NAME.o for each program below,
# and source.txt naming the kernel).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${JITDIFF_SELFTESTS_CACHE:-$HOME/.cache/jitdiff/selftests}
KERNEL=7.3
TARBALL=
SOURCE=
# Bump when the way the objects are made changes.
RECIPE=1
# The programs of prog_tests/tailcalls.c that run a packet through BPF_PROG_TEST_RUN.
PROGRAMS=(tailcall1 tailcall2 tailcall3 tailcall6 tailcall_bpf2bpf1 tailcall_bpf2bpf2
    tailcall_bpf2bpf3 tailcall_bpf2bpf4 tailcall_bpf2bpf6 tailcall_bpf2bpf_hierarchy1
    tailcall_bpf2bpf_hierarchy2 tailcall_bpf2bpf_hierarchy3)

say() { echo "selftests.sh: $*" >&2; }
die() { echo "selftests.sh: error: $*" >&2; exit 2; }

while (($#)); do
    case $1 in
        --kernel) [[ $# -ge 2 && $2 =~ ^[0-9]+\.[0-9]+$ ]] || die "--kernel needs a Debian kernel version (6.12, 7.3)"; KERNEL=$2; shift 2 ;;
        --source) [[ $# -ge 2 ]] || die "--source needs a kernel source folder"; SOURCE=$2; shift 2 ;;
        --tarball) [[ $# -ge 2 ]] || die "--tarball needs a kernel source tarball"; TARBALL=$2; shift 2 ;;
        -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument '$1' (usage: kernel/selftests.sh [--kernel VERSION | --tarball FILE | --source DIR])" ;;
    esac
done

CLANG=
for c in clang-14 clang; do
    if command -v "$c" >/dev/null 2>&1; then CLANG=$c; break; fi
done
[[ -n $CLANG ]] || die "needs clang: run scripts/setup.sh --kernel-source"
[[ -f /usr/include/bpf/bpf_helpers.h ]] || die "needs the libbpf headers (/usr/include/bpf/bpf_helpers.h): run scripts/setup.sh --kernel-source"
if [[ -z $SOURCE && -z $TARBALL ]]; then
    TARBALL=$("$HERE/debian-source.sh" "$KERNEL") || die "no Debian kernel source $KERNEL (above)"
fi

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
        say "unpacking the BPF selftests' programs and the uapi headers from $TARBALL"
        rm -rf "$TREE" && mkdir -p "$TREE"
        tar -xJf "$TARBALL" -C "$TREE" --strip-components=1 --wildcards '*/Makefile' \
            '*/tools/testing/selftests/bpf/progs/*' '*/tools/testing/selftests/bpf/*.h' \
            '*/tools/include/uapi/*' 2>/dev/null \
            || { rm -rf "$TREE"; die "$TARBALL: not a kernel source tarball with the BPF selftests"; }
        touch "$TREE/.extracted"
    fi
    ORIGIN="$(basename "$TARBALL")"
fi
SELFTESTS=$TREE/tools/testing/selftests/bpf
UAPI=$TREE/tools/include/uapi
for p in "${PROGRAMS[@]}"; do
    [[ -f $SELFTESTS/progs/$p.c ]] || die "$TREE: no tools/testing/selftests/bpf/progs/$p.c (not a kernel source tree, or one without these selftests)"
done
[[ -f $UAPI/linux/bpf.h ]] || die "$TREE: no tools/include/uapi/linux/bpf.h"
KVERSION=$(awk -F' = ' '$1=="VERSION"{v=$2} $1=="PATCHLEVEL"{p=$2} $1=="SUBLEVEL"{s=$2} END{if (v!="") print v "." p "." s}' "$TREE/Makefile" 2>/dev/null || true)
MULTIARCH=$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
# The selftests' Makefile's default flavour: -g -O2 for the bpf target, BPF ISA v3.
FLAGS=(-g -O2 -target bpf -mcpu=v3 -I "$SELFTESTS" -I "$UAPI" -I "/usr/include/$MULTIARCH" -Wno-compare-distinct-pointer-types)

KEY=$( { echo "recipe $RECIPE ${PROGRAMS[*]} ${FLAGS[*]}"; "$CLANG" --version | head -1;
    # the headers that are files (some are links into the kernel's tree, not unpacked)
    find "$SELFTESTS/progs" "$SELFTESTS" -maxdepth 1 -type f \( -name 'tailcall*.c' -o -name '*.h' \) \
        | LC_ALL=C sort | xargs cat
    cat "$UAPI/linux/bpf.h" /usr/include/bpf/*.h "$0"; } | sha)
OUT=$CACHE/$KEY
if [[ ! -f $OUT/source.txt ]]; then
    TMP=$(mktemp -d "$CACHE/tmp.XXXXXX")
    trap 'rm -rf "$TMP"' EXIT
    say "compiling ${#PROGRAMS[@]} tail-call selftests of Linux ${KVERSION:-?} with $CLANG"
    for p in "${PROGRAMS[@]}"; do
        (cd "$SELFTESTS" && "$CLANG" "${FLAGS[@]}" -c "progs/$p.c" -o "$TMP/$p.o") 2>"$TMP/$p.log" || {
            sed 's/^/    /' "$TMP/$p.log" | head -30 >&2
            die "$SELFTESTS/progs/$p.c did not compile (above)"
        }
    done
    echo "tools/testing/selftests/bpf/progs of Linux ${KVERSION:-unknown version} ($ORIGIN), $("$CLANG" --version | head -1)" >"$TMP/source.txt"
    rm -f "$TMP"/*.log
    rm -rf "$OUT" && mv "$TMP" "$OUT"
fi
say "$(cat "$OUT/source.txt")"
echo "$OUT"
