#!/usr/bin/env bash
# Build a jitdiff riscv64 guest: a tinyconfig Linux kernel (Image) plus an initramfs
# whose /init is the agent (agent/agent.c).
#
# Usage: kernel/build.sh [--kernel SPEC]
# SPEC names the kernel (default: $JITDIFF_KERNEL, else DEFAULT_KERNEL below):
#   6.12, 7.3, ...  Debian's linux-source-VERSION: the installed package when there is
#                   one (6.12 is installed by scripts/setup.sh), else fetched from
#                   Debian's trixie suites with a private apt list folder in the cache
#                   (the machine's own apt sources are not touched)
#   PATH            a kernel source folder (your own tree: built out of tree, never
#                   written; `make` runs every time, so a changed source is rebuilt) or a
#                   source tarball
#
# Everything is built under ${JITDIFF_KERNEL_CACHE:-$HOME/.cache/jitdiff/kernel}, never
# in the repository; images of several kernels live side by side, each linked as
# kernels/LABEL (the version, or `path-` and the path with its separators made dashes).
# A kernel is keyed by its source's identity and config.fragment; an output by that,
# the agent source and (for a tree) the image itself. Up-to-date runs of a Debian kernel
# take well under a second.
#
# Progress goes to stderr. The last stdout line is the directory holding `Image` and
# `initramfs.cpio`.
#
# Environment:
#   JITDIFF_KERNEL         the kernel when --kernel is not given
#   JITDIFF_KERNEL_CACHE   cache directory (default ~/.cache/jitdiff/kernel)
#   JITDIFF_KERNEL_JOBS    make -j value (default 2)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${JITDIFF_KERNEL_CACHE:-$HOME/.cache/jitdiff/kernel}
JOBS=${JITDIFF_KERNEL_JOBS:-2}
FRAGMENT=$HERE/config.fragment
AGENT_SRC=$HERE/agent/agent.c
CROSS=riscv64-linux-gnu-
# The kernel engines' default (kernel::DEFAULT_KERNEL says the same; a test checks).
DEFAULT_KERNEL=7.3
# Bump when the way the kernel is built changes (rebuilds it).
RECIPE=2
# Bump when the initramfs or build-info.txt changes (repacks only).
OUT_RECIPE=2

say() { echo "build.sh: $*" >&2; }
die() { echo "build.sh: error: $*" >&2; exit 1; }

SPEC=${JITDIFF_KERNEL:-$DEFAULT_KERNEL}
while (($#)); do
    case $1 in
        --kernel) [[ $# -ge 2 && -n $2 ]] || { echo "build.sh: --kernel needs a Debian version (6.12, 7.3) or a path" >&2; exit 2; }
                  SPEC=$2; shift 2 ;;
        -h|--help) sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "build.sh: unknown argument '$1' (usage: kernel/build.sh [--kernel SPEC])" >&2; exit 2 ;;
    esac
done

# --- 1. what the build uses: probed, installed when missing (scripts/setup.sh) ---
"$HERE/../scripts/setup.sh" --kernel-tools --quiet || die "the kernel build's tools are missing (above)"
[[ -f $AGENT_SRC ]] || die "no agent source at $AGENT_SRC"

mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9 || die "cannot lock $CACHE/.lock"
sha() { sha256sum | cut -c1-16; }
path_label() { echo "path$(echo "$1" | sed 's/[^A-Za-z0-9._]/-/g')"; }

TARBALL= TREE=
if [[ $SPEC =~ ^[0-9]+\.[0-9]+$ ]]; then
    LABEL=$SPEC
    TARBALL=$("$HERE/debian-source.sh" "$SPEC") || die "no Debian kernel source $SPEC (above)"
elif [[ -f $SPEC ]]; then
    TARBALL=$(cd "$(dirname "$SPEC")" && pwd)/$(basename "$SPEC")
    LABEL=$(path_label "$TARBALL")
elif [[ -d $SPEC ]]; then
    TREE=$(cd "$SPEC" && pwd)
    LABEL=$(path_label "$TREE")
    [[ -f $TREE/Makefile && -f $TREE/arch/riscv/net/bpf_jit_comp64.c ]] \
        || die "$TREE: not a kernel source tree (no Makefile and arch/riscv/net/bpf_jit_comp64.c)"
    # kbuild refuses to build out of tree from a tree configured in place
    [[ ! -f $TREE/.config ]] || die "$TREE has a .config (built in place): kbuild cannot build it out of tree; run 'make mrproper' in it or give a clean worktree (git worktree add)"
else
    echo "build.sh: --kernel $SPEC: not a Debian kernel version (6.12, 7.3), a kernel source folder or a tarball" >&2
    exit 2
fi

if [[ -n $TARBALL ]]; then
    KVER_ID="$(basename "$TARBALL") $(stat -c '%s %Y' "$TARBALL")"
    SRC=$CACHE/src/$(echo "$KVER_ID" | sha)
else
    KVER_ID="tree $TREE"
    SRC=$TREE
fi
KKEY=$( { echo "recipe $RECIPE"; echo "$KVER_ID"; cat "$FRAGMENT"; } | sha)
OBJ=$CACHE/obj/$LABEL-$KKEY
KMAKE=(make -s -C "$SRC" O="$OBJ" ARCH=riscv CROSS_COMPILE="$CROSS")
mkdir -p "$CACHE/obj" "$CACHE/out" "$CACHE/kernels"
# the layout before several kernels: one obj-*, out-* and current
rm -rf "$CACHE"/obj-* "$CACHE"/out-* "$CACHE/current"

out_key() { { echo "out recipe $OUT_RECIPE"; echo "kernel $KKEY"; cat "$AGENT_SRC"; [[ -z $TREE ]] || sha256sum <"$OBJ/arch/riscv/boot/Image"; } | sha; }
finish() {
    ln -sfn "../out/$(basename "$OUT")" "$CACHE/kernels/$LABEL.tmp"
    mv -T "$CACHE/kernels/$LABEL.tmp" "$CACHE/kernels/$LABEL"
    sed 's/^/build.sh: /' "$OUT/build-info.txt" >&2
    echo "$OUT"
}
# Sets OUT; when that output is complete, says so and ends the script.
finish_if_up_to_date() {
    OUT=$CACHE/out/$LABEL-$(out_key)
    if [[ -f $OUT/Image && -f $OUT/initramfs.cpio && -f $OUT/build-info.txt ]]; then
        say "up to date ($OUT)"
        finish
        exit 0
    fi
}

# a tarball's output is known before the kernel is built; a tree's only after make
[[ -n $TREE ]] || finish_if_up_to_date

# --- 2. kernel source ----------------------------------------------------------
if [[ -n $TARBALL && ! -f $SRC/.extracted ]]; then
    say "extracting $TARBALL into $SRC"
    rm -rf "$SRC" && mkdir -p "$SRC"
    tar -xJf "$TARBALL" -C "$SRC" --strip-components=1
    touch "$SRC/.extracted"
fi
KVERSION=$(awk -F' = ' '$1=="VERSION"{v=$2} $1=="PATCHLEVEL"{p=$2} $1=="SUBLEVEL"{s=$2} $1=="EXTRAVERSION"{e=$2} END{print v "." p "." s e}' "$SRC/Makefile")

# --- 3. configure and build the kernel -----------------------------------------
if [[ ! -f $OBJ/.jitdiff-configured ]]; then
    mkdir -p "$OBJ"
    say "configuring linux $KVERSION (tinyconfig + config.fragment) in $OBJ"
    "${KMAKE[@]}" tinyconfig >&2
    (cd "$OBJ" && ARCH=riscv CROSS_COMPILE=$CROSS "$SRC/scripts/kconfig/merge_config.sh" -m -O "$OBJ" \
        "$OBJ/.config" "$FRAGMENT" >/dev/null)
    "${KMAKE[@]}" olddefconfig >&2
    bad=0 absent=()
    # options this kernel no longer has (7.x folded PROC_SYSCTL into SYSCTL) are skipped
    mapfile -t defined < <(grep -rhoE '^[[:space:]]*(menu)?config [A-Z0-9_]+' --include='Kconfig*' "$SRC" | awk '{print "CONFIG_" $2}' | sort -u)
    declare -A known=()
    for o in "${defined[@]}"; do known[$o]=1; done
    while IFS= read -r line; do
        if [[ $line =~ ^(#\ )?(CONFIG_[A-Za-z0-9_]+)[=\ ] && -z ${known[${BASH_REMATCH[2]}]:-} ]]; then
            absent+=("${BASH_REMATCH[2]}")
        elif [[ $line =~ ^(CONFIG_[A-Za-z0-9_]+)=(.*)$ ]]; then
            want="${BASH_REMATCH[1]}=${BASH_REMATCH[2]}"
            grep -qxF "$want" "$OBJ/.config" || { say "config: wanted $want, got: $(grep -E "(^|# )${BASH_REMATCH[1]}[= ]" "$OBJ/.config" || echo unset)"; bad=1; }
        elif [[ $line =~ ^#\ (CONFIG_[A-Za-z0-9_]+)\ is\ not\ set$ ]]; then
            if grep -qE "^${BASH_REMATCH[1]}=[ym]" "$OBJ/.config"; then
                say "config: wanted ${BASH_REMATCH[1]} off, but it is on"; bad=1
            fi
        fi
    done <"$FRAGMENT"
    ((bad == 0)) || die "config.fragment did not apply (dependencies missing?); see $OBJ/.config"
    options=$(grep -cE '^(CONFIG_|# CONFIG_)' "$FRAGMENT")
    if ((${#absent[@]} == 0)); then
        say "config verified: all $options fragment options applied"
    else
        say "config verified: $((options - ${#absent[@]})) of $options fragment options applied; not options of linux $KVERSION: ${absent[*]}"
    fi
    touch "$OBJ/.jitdiff-configured"
fi
if [[ -n $TREE || ! -f $OBJ/.jitdiff-built || ! -f $OBJ/arch/riscv/boot/Image ]]; then
    say "building Image of linux $KVERSION with make -j$JOBS (a clean build takes several minutes)"
    t0=$(date +%s)
    "${KMAKE[@]}" -j"$JOBS" Image >&2
    t1=$(date +%s)
    echo "$((t1 - t0))" >"$OBJ/.jitdiff-build-seconds"
    touch "$OBJ/.jitdiff-built"
    say "kernel built in $((t1 - t0)) s"
    # keep the cache small: drop this kernel's objects of other configurations
    find "$CACHE/obj" -maxdepth 1 -name "$LABEL-*" ! -name "$(basename "$OBJ")" -exec rm -rf {} +
fi
[[ -z $TREE ]] || finish_if_up_to_date
# the kernel's own cpio writer (a standalone host tool) can create /dev/console without root
[[ -x $OBJ/jitdiff-gen_init_cpio ]] || gcc -O2 -o "$OBJ/jitdiff-gen_init_cpio" "$SRC/usr/gen_init_cpio.c"

# --- 4. agent and initramfs ------------------------------------------------------
TMP=$(mktemp -d "$CACHE/tmp.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
say "compiling agent (static riscv64)"
"${CROSS}gcc" -static -O2 -Wall -Wextra -Werror -std=gnu11 -o "$TMP/agent" "$AGENT_SRC"
"${CROSS}strip" "$TMP/agent"
cat >"$TMP/initramfs.list" <<EOF
dir /dev 0755 0 0
nod /dev/console 0600 0 0 c 5 1
dir /proc 0755 0 0
file /init $TMP/agent 0755 0 0
EOF
"$OBJ/jitdiff-gen_init_cpio" -t 0 "$TMP/initramfs.list" >"$TMP/initramfs.cpio"
cp "$OBJ/arch/riscv/boot/Image" "$TMP/Image"
# Whether the interpreter counts a tail call through an empty slot (6.12) or not (7.x,
# "bpf: Do not increment tailcall count when prog is NULL"): the order, in its tail-call
# case, of the count's increment and the test of the slot.
EMPTY_SLOT=$(awk '/JMP_TAIL_CALL: *\{/ {on = 1} on && /tail_call_cnt\+\+/ && !inc {inc = NR} on && /if \(!prog\)/ && !slot {slot = NR}
    on && /^[[:space:]]*}$/ && inc && slot {exit} END {if (inc && slot) print (inc < slot ? "counted" : "free")}' "$SRC/kernel/bpf/core.c")
{
    echo "kernel=$SPEC"
    echo "kernel_version=$KVERSION"
    echo "empty_slot=${EMPTY_SLOT:-unknown}"
    echo "kernel_key=$KKEY"
    echo "output_key=${OUT##*-}"
    echo "kernel_build_seconds=$(cat "$OBJ/.jitdiff-build-seconds" 2>/dev/null || echo unknown)"
    echo "image_bytes=$(stat -c %s "$TMP/Image")"
    echo "initramfs_bytes=$(stat -c %s "$TMP/initramfs.cpio")"
} >"$TMP/build-info.txt"
rm -rf "$OUT.new" && mkdir -p "$OUT.new"
mv "$TMP/Image" "$TMP/initramfs.cpio" "$TMP/build-info.txt" "$OUT.new/"
rm -rf "$OUT" && mv "$OUT.new" "$OUT"
# keep the cache small: drop this kernel's output directories of other agent versions
find "$CACHE/out" -maxdepth 1 -name "$LABEL-*" ! -name "$(basename "$OUT")" -exec rm -rf {} +
finish
