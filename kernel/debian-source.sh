#!/usr/bin/env bash
# Prints the path of Debian's kernel source tarball linux-source-VERSION.tar.xz, getting
# it first if need be: the installed package when the machine's apt sources have it (as
# root it is installed: 6.12 in bookworm), else the package from Debian's trixie suites,
# fetched with a private apt list folder into the cache and unpacked there (the machine's
# own apt sources and packages are not touched).
#
# Usage: kernel/debian-source.sh VERSION        (VERSION like 6.12 or 7.3)
# Cache: ${JITDIFF_KERNEL_CACHE:-$HOME/.cache/jitdiff/kernel}/debian
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${JITDIFF_KERNEL_CACHE:-$HOME/.cache/jitdiff/kernel}
say() { echo "debian-source.sh: $*" >&2; }
die() { echo "debian-source.sh: error: $*" >&2; exit 1; }

[[ $# == 1 && $1 =~ ^[0-9]+\.[0-9]+$ ]] || { echo "usage: kernel/debian-source.sh VERSION (like 6.12 or 7.3)" >&2; exit 2; }
VERSION=$1
installed=/usr/src/linux-source-$VERSION.tar.xz
if [[ ! -f $installed ]] && apt-cache show "linux-source-$VERSION" >/dev/null 2>&1; then
    JITDIFF_KERNEL_TARBALL=$installed "$HERE/../scripts/setup.sh" --kernel-source --quiet \
        || die "cannot install linux-source-$VERSION (above)"
fi
if [[ -f $installed ]]; then
    echo "$installed"
    exit 0
fi
mkdir -p "$CACHE"
exec 8>"$CACHE/.debian-lock"
flock 8 || die "cannot lock $CACHE/.debian-lock"

# Debian's linux-source-$1 from the trixie suites, with apt's lists and downloads in the
# cache; prints the tarball's path.
fetch_debian() {
    local version=$1 dir=$CACHE/debian mirror suite
    local tarball=$dir/linux-source-$version/usr/src/linux-source-$version.tar.xz
    if [[ -f $tarball ]]; then echo "$tarball"; return; fi
    mirror=$(grep -h -m1 -E '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | head -1 || true)
    [[ -n $mirror ]] || mirror=$(grep -h -m1 -E '^deb ' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' | head -1 || true)
    [[ -n $mirror ]] || die "cannot find a Debian mirror in /etc/apt to fetch linux-source-$version from"
    mkdir -p "$dir/lists/partial" "$dir/archives/partial"
    : >"$dir/sources.list"
    for suite in trixie trixie-updates trixie-backports; do
        echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $suite main" >>"$dir/sources.list"
    done
    local apt=(-q -o "Dir::State::Lists=$dir/lists" -o "Dir::Etc::SourceList=$dir/sources.list"
        -o Dir::Etc::SourceParts=/dev/null -o "Dir::Cache=$dir" -o "Dir::Cache::archives=$dir/archives"
        -o APT::Sandbox::User=root)
    say "fetching linux-source-$version from Debian's trixie suites into $dir"
    apt-get "${apt[@]}" update >"$dir/apt.log" 2>&1 || { tail -5 "$dir/apt.log" >&2; die "apt-get update of the trixie suites failed"; }
    rm -f "$dir"/linux-source-"$version"_*.deb
    (cd "$dir" && apt-get "${apt[@]}" download "linux-source-$version" >>"$dir/apt.log" 2>&1) \
        || die "Debian's trixie suites have no linux-source-$version (give a kernel source folder or tarball instead)"
    rm -rf "$dir/linux-source-$version.tmp"
    dpkg-deb -x "$dir"/linux-source-"$version"_*.deb "$dir/linux-source-$version.tmp"
    rm -f "$dir"/linux-source-"$version"_*.deb
    [[ -f $dir/linux-source-$version.tmp/usr/src/linux-source-$version.tar.xz ]] \
        || die "linux-source-$version holds no usr/src/linux-source-$version.tar.xz"
    rm -rf "$dir/linux-source-$version" && mv "$dir/linux-source-$version.tmp" "$dir/linux-source-$version"
    echo "$tarball"
}

fetch_debian "$VERSION"
