#!/usr/bin/env bash
# A long fuzzing session watched from outside, as issue 20 asks: runs
#   target/release/jitdiff fuzz --json ARGS...
# and every INTERVAL seconds (default 60; SOAK_INTERVAL) prints one line: minutes since the
# start, jitdiff's resident memory (VmRSS) and open file descriptors, and each qemu it
# started with its resident memory. After the session it checks that nothing is left: no
# qemu whose parent was jitdiff still running, no `jitdiff-PID` folder in the temporary
# folder; prints the session's JSON summary (guest restarts by cause among it) and exits
# with the session's status, or 1 if something was left.
#
# Example (the run BENCHMARKS.md records):
#   scripts/soak.sh --engines reference,jit,kernel-jit,kernel-interp --kernel 7.3 --jobs 2 --time 3600
set -euo pipefail
cd "$(dirname "$0")/.."
interval=${SOAK_INTERVAL:-60}
bin=target/release/jitdiff
if [ ! -x "$bin" ]; then
  echo "soak.sh: $bin is missing; run: cargo build --release" >&2
  exit 2
fi
if [ $# -eq 0 ]; then
  echo "soak.sh: give the fuzz options, e.g. --engines reference,jit,kernel-jit --kernel 7.3 --time 3600" >&2
  exit 2
fi
out=$(mktemp "${TMPDIR:-/tmp}/soak-summary-XXXXXX")
trap 'rm -f "$out"' EXIT
"$bin" fuzz -q --json "$@" >"$out" &
pid=$!
start=$(date +%s)

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
qemus_of() {
  local p
  for p in /proc/[0-9]*; do
    p=${p#/proc/}
    [ "$(awk '{ print $4 }' "/proc/$p/stat" 2>/dev/null)" = "$1" ] || continue
    case "$(cat "/proc/$p/comm" 2>/dev/null)" in qemu*) echo "$p" ;; esac
  done
}

printf '%-7s %-14s %-5s %s\n' minute "jitdiff MiB" fds "qemu pid:MiB ..."
all_qemus=""
while kill -0 "$pid" 2>/dev/null; do
  now=$(date +%s)
  line=""
  for q in $(qemus_of "$pid"); do
    line="$line $q:$(($(rss_kib "$q") / 1024))"
    case " $all_qemus " in *" $q "*) ;; *) all_qemus="$all_qemus $q" ;; esac
  done
  fds=$(ls "/proc/$pid/fd" 2>/dev/null | wc -l)
  if kill -0 "$pid" 2>/dev/null; then
    printf '%-7s %-14s %-5s %s\n' "$(((now - start) / 60))" "$(($(rss_kib "$pid") / 1024))" "$fds" "${line# }"
  fi
  # sleep in short steps so that the end of the session is noticed at once
  for _ in $(seq "$interval"); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 1
  done
done
set +e
wait "$pid"
status=$?
set -e
sleep 1
left=0
for q in $all_qemus; do
  if [ -e "/proc/$q" ] && [ "$(awk '{ print $3 }' "/proc/$q/stat")" != Z ]; then
    echo "soak.sh: qemu $q outlived jitdiff $pid" >&2
    left=1
  fi
done
if [ -e "${TMPDIR:-/tmp}/jitdiff-$pid" ]; then
  echo "soak.sh: ${TMPDIR:-/tmp}/jitdiff-$pid is left behind" >&2
  left=1
fi
echo "session: exit status $status after $((($(date +%s) - start) / 60)) min; qemu processes seen:$all_qemus; left behind: $([ $left = 0 ] && echo nothing || echo see above)"
cat "$out"
[ $left = 0 ] || exit 1
exit "$status"
