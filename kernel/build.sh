#!/usr/bin/env bash
# Build the jitdiff riscv64 guest: a tinyconfig Linux kernel (Image) plus an
# initramfs whose /init is the agent (agent/agent.c).
#
# Everything is built under ${JITDIFF_KERNEL_CACHE:-$HOME/.cache/jitdiff/kernel},
# never in the repository. The kernel is keyed by a hash of config.fragment and
# the kernel source version; the output directory by that plus the agent source,
# so editing the agent only repacks the initramfs. Up-to-date runs take well
# under a second.
#
# Progress goes to stderr. The last stdout line is the directory holding
# `Image` and `initramfs.cpio` (also reachable as $CACHE/current).
#
# Environment:
#   JITDIFF_KERNEL_CACHE   cache directory (default ~/.cache/jitdiff/kernel)
#   JITDIFF_KERNEL_TARBALL kernel source tarball (default /usr/src/linux-source-6.12.tar.xz)
#   JITDIFF_KERNEL_JOBS    make -j value (default 2)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${JITDIFF_KERNEL_CACHE:-$HOME/.cache/jitdiff/kernel}
TARBALL=${JITDIFF_KERNEL_TARBALL:-/usr/src/linux-source-6.12.tar.xz}
JOBS=${JITDIFF_KERNEL_JOBS:-2}
FRAGMENT=$HERE/config.fragment
AGENT_SRC=$HERE/agent/agent.c
CROSS=riscv64-linux-gnu-
# Bump when the way the kernel or the initramfs is built changes.
RECIPE=1

say() { echo "build.sh: $*" >&2; }
die() { echo "build.sh: error: $*" >&2; exit 1; }

# --- 1. what the build uses: probed, installed when missing (scripts/setup.sh) ---
"$HERE/../scripts/setup.sh" --kernel --quiet || die "the kernel build's tools are missing (above)"
[[ -f $TARBALL ]] || die "no kernel source tarball at $TARBALL"
[[ -f $AGENT_SRC ]] || die "no agent source at $AGENT_SRC"

mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9 || die "cannot lock $CACHE/.lock"

sha() { sha256sum | cut -c1-16; }
KVER_ID="$(basename "$TARBALL") $(stat -c '%s %Y' "$TARBALL")"
KKEY=$( { echo "recipe $RECIPE"; echo "$KVER_ID"; cat "$FRAGMENT"; } | sha)
AKEY=$( { echo "recipe $RECIPE"; echo "kernel $KKEY"; cat "$AGENT_SRC"; } | sha)
SRC=$CACHE/src/$(echo "$KVER_ID" | sha)
OBJ=$CACHE/obj-$KKEY
OUT=$CACHE/out-$AKEY
KMAKE=(make -s -C "$SRC" O="$OBJ" ARCH=riscv CROSS_COMPILE="$CROSS")

finish() {
    ln -sfn "$(basename "$OUT")" "$CACHE/current.tmp"
    mv -T "$CACHE/current.tmp" "$CACHE/current"
    sed 's/^/build.sh: /' "$OUT/build-info.txt" >&2
    echo "$OUT"
}

if [[ -f $OUT/Image && -f $OUT/initramfs.cpio && -f $OUT/build-info.txt ]]; then
    say "up to date ($OUT)"
    finish
    exit 0
fi

# --- 2. kernel source ----------------------------------------------------------
if [[ ! -f $SRC/.extracted ]]; then
    say "extracting $TARBALL into $SRC"
    rm -rf "$SRC" && mkdir -p "$SRC"
    tar -xJf "$TARBALL" -C "$SRC" --strip-components=1
    touch "$SRC/.extracted"
fi
KVERSION=$(make -s -C "$SRC" kernelversion 2>/dev/null)

# --- 3. configure and build the kernel -----------------------------------------
if [[ ! -f $OBJ/.jitdiff-built || ! -f $OBJ/arch/riscv/boot/Image ]]; then
    mkdir -p "$OBJ"
    say "configuring linux $KVERSION (tinyconfig + config.fragment) in $OBJ"
    "${KMAKE[@]}" tinyconfig >&2
    (cd "$OBJ" && ARCH=riscv CROSS_COMPILE=$CROSS "$SRC/scripts/kconfig/merge_config.sh" -m -O "$OBJ" \
        "$OBJ/.config" "$FRAGMENT" >/dev/null)
    "${KMAKE[@]}" olddefconfig >&2
    bad=0
    while IFS= read -r line; do
        if [[ $line =~ ^(CONFIG_[A-Za-z0-9_]+)=(.*)$ ]]; then
            want="${BASH_REMATCH[1]}=${BASH_REMATCH[2]}"
            grep -qxF "$want" "$OBJ/.config" || { say "config: wanted $want, got: $(grep -E "(^|# )${BASH_REMATCH[1]}[= ]" "$OBJ/.config" || echo unset)"; bad=1; }
        elif [[ $line =~ ^#\ (CONFIG_[A-Za-z0-9_]+)\ is\ not\ set$ ]]; then
            if grep -qE "^${BASH_REMATCH[1]}=[ym]" "$OBJ/.config"; then
                say "config: wanted ${BASH_REMATCH[1]} off, but it is on"; bad=1
            fi
        fi
    done <"$FRAGMENT"
    ((bad == 0)) || die "config.fragment did not apply (dependencies missing?); see $OBJ/.config"
    say "config verified: all $(grep -cE '^(CONFIG_|# CONFIG_)' "$FRAGMENT") fragment options applied"
    say "building Image with make -j$JOBS (a clean build takes several minutes)"
    t0=$(date +%s)
    "${KMAKE[@]}" -j"$JOBS" Image >&2
    t1=$(date +%s)
    echo "$((t1 - t0))" >"$OBJ/.jitdiff-build-seconds"
    touch "$OBJ/.jitdiff-built"
    say "kernel built in $((t1 - t0)) s"
    # keep the cache small: drop the objects of other configurations
    find "$CACHE" -maxdepth 1 -name 'obj-*' ! -name "$(basename "$OBJ")" -exec rm -rf {} +
fi
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
{
    echo "kernel_version=$KVERSION"
    echo "kernel_key=$KKEY"
    echo "agent_key=$AKEY"
    echo "kernel_build_seconds=$(cat "$OBJ/.jitdiff-build-seconds" 2>/dev/null || echo unknown)"
    echo "image_bytes=$(stat -c %s "$TMP/Image")"
    echo "initramfs_bytes=$(stat -c %s "$TMP/initramfs.cpio")"
} >"$TMP/build-info.txt"
rm -rf "$OUT.new" && mkdir -p "$OUT.new"
mv "$TMP/Image" "$TMP/initramfs.cpio" "$TMP/build-info.txt" "$OUT.new/"
rm -rf "$OUT" && mv "$OUT.new" "$OUT"
# keep the cache small: drop output directories of other agent versions
find "$CACHE" -maxdepth 1 -name 'out-*' ! -name "$(basename "$OUT")" -exec rm -rf {} +
finish
