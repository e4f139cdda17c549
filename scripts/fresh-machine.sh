#!/usr/bin/env bash
# The fresh-machine check: runs the README's two commands, exactly as written, in a
# minimal Debian root where nothing was installed by hand, as a new user's machine.
#
# The root is Debian bookworm's `buildd` variant plus git and ca-certificates, made with
# Debian's mmdebstrap from the mirror this machine's apt sources name. The host's Rust
# toolchain is bind-mounted into it read-only (rustup cannot download here); HOME is the
# root's own, so cargo's registry, cargo-fuzz and the kernel and vector caches start
# empty. The repository's committed HEAD (or --ref) is cloned into it; uncommitted
# changes are not part of the check. Not part of .ci/run: it rebuilds everything
# (about half an hour on 2 cores).
#
# Usage (as root): scripts/fresh-machine.sh [--ref REF] [--keep] [--root DIR]
# Prints each command with its exit status and minutes; full logs are in DIR/logs.
# Exit status 0 when both commands exit 0.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
ref=HEAD keep=0 root=
while (($#)); do
    case $1 in
        --ref) ref=$2; shift 2 ;;
        --keep) keep=1; shift ;;
        --root) root=$2; shift 2 ;;
        *) echo "fresh-machine: unknown argument '$1' (usage: scripts/fresh-machine.sh [--ref REF] [--keep] [--root DIR])" >&2; exit 2 ;;
    esac
done
[[ $(id -u) == 0 ]] || { echo "fresh-machine: needs root (chroot and mounts): run it with sudo." >&2; exit 2; }
rev=$(git -C "$repo" rev-parse --verify "$ref^{commit}") || { echo "fresh-machine: $ref is not a commit of $repo" >&2; exit 2; }
toolchain=$(rustc --print sysroot 2>/dev/null) || { echo "fresh-machine: no Rust toolchain on this machine to lend the root" >&2; exit 2; }
if ! command -v mmdebstrap >/dev/null 2>&1; then
    echo "fresh-machine: installing mmdebstrap" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap >/dev/null
fi
# The mirror this machine's own apt sources use.
mirror=$(grep -h -m1 -E '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | head -1 || true)
[[ -n $mirror ]] || mirror=$(grep -h -m1 -E '^deb ' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' | head -1 || true)
[[ -n $mirror ]] || { echo "fresh-machine: cannot find a Debian mirror in /etc/apt" >&2; exit 2; }

[[ -n $root ]] || root=$(mktemp -d /var/tmp/jitdiff-fresh.XXXXXX)
mkdir -p "$root"
[[ -z $(ls -A "$root") ]] || { echo "fresh-machine: $root is not empty" >&2; exit 2; }
logs=$root.logs
mkdir -p "$logs"
mounted=()
cleanup() {
    local i
    for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[i]}" 2>/dev/null || true; done
    if ((keep == 0)); then rm -rf --one-file-system "$root"; fi
}
trap cleanup EXIT

minutes() { awk -v s="$1" 'BEGIN { printf "%.1f", s / 60 }'; }
t0=$(date +%s)
echo "fresh-machine: mmdebstrap --variant=buildd --include=git,ca-certificates bookworm into $root" >&2
mmdebstrap --quiet --variant=buildd --include=git,ca-certificates bookworm "$root" "$mirror" >"$logs/mmdebstrap.log" 2>&1 \
    || { tail -20 "$logs/mmdebstrap.log" >&2; echo "fresh-machine: mmdebstrap failed" >&2; exit 1; }
echo "fresh-machine: root made in $(minutes $(($(date +%s) - t0))) min ($(du -sh --one-file-system "$root" | cut -f1))" >&2

# How this machine reaches the registries (not something the project installs): its
# extra certificate authorities, its apt sources and settings, its resolver.
cp /etc/resolv.conf "$root/etc/resolv.conf"
rm -f "$root/etc/apt/sources.list"
[[ -f /etc/apt/sources.list ]] && cp /etc/apt/sources.list "$root/etc/apt/sources.list"
for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [[ -f $f ]] && cp "$f" "$root/etc/apt/sources.list.d/"
done
if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
    mkdir -p "$root/usr/local/share/ca-certificates"
    cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
fi
for f in /etc/apt/apt.conf.d/*; do
    [[ -e $root/etc/apt/apt.conf.d/$(basename "$f") ]] || cp "$f" "$root/etc/apt/apt.conf.d/"
done
mount -t proc proc "$root/proc" && mounted+=("$root/proc")
mount --rbind /dev "$root/dev" && mounted+=("$root/dev")
mkdir -p "$root/opt/rust"
mount --bind "$toolchain" "$root/opt/rust" && mount -o remount,bind,ro "$root/opt/rust" && mounted+=("$root/opt/rust")
chroot "$root" update-ca-certificates >/dev/null 2>&1

git clone --quiet --no-hardlinks "$repo" "$root/root/jitdiff"
git -C "$root/root/jitdiff" checkout --quiet "$rev"
echo "fresh-machine: cloned $(git -C "$repo" log -1 --format='%h %s' "$rev" | cut -c1-70)" >&2

run() {
    local name=$1 start rc
    shift
    start=$(date +%s)
    set +e
    chroot "$root" env -i HOME=/root TERM=dumb \
        PATH=/root/.cargo/bin:/opt/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        bash -c "cd /root/jitdiff && $*" >"$logs/$name.log" 2>&1
    rc=$?
    set -e
    echo "fresh-machine: \`$*\` exit $rc in $(minutes $(($(date +%s) - start))) min (log: $logs/$name.log)" >&2
    if ((rc != 0)); then tail -15 "$logs/$name.log" | sed 's/^/    /' >&2; fi
    return $rc
}
status=0
run run scripts/run.sh || status=1
run test scripts/test.sh || status=1
echo "fresh-machine: $([[ $status == 0 ]] && echo PASSED || echo FAILED) in $(minutes $(($(date +%s) - t0))) min in all" >&2
exit $status
