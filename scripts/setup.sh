#!/usr/bin/env bash
# Makes sure what jitdiff's build needs is on this machine: cmake and libclang (for the
# bundled unicorn build), and with --fuzz cargo-fuzz, zip and unzip. Installs them (apt-get
# when run as root, cargo install) or stops with one sentence saying what to run.
set -euo pipefail

missing=()
command -v cmake >/dev/null 2>&1 || missing+=(cmake)
if ! ls /usr/lib/llvm-*/lib/libclang.so* /usr/lib/x86_64-linux-gnu/libclang*.so* >/dev/null 2>&1; then
  missing+=(libclang1-14)
fi
command -v cargo >/dev/null 2>&1 || { echo "jitdiff needs a Rust toolchain: install it with rustup (https://rustup.rs), then run this again." >&2; exit 1; }

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing ${missing[*]} (needed to build the bundled unicorn emulator)" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "jitdiff needs ${missing[*]} to build unicorn: run 'sudo apt-get install -y ${missing[*]}' and try again." >&2
    exit 1
  fi
fi

# With --fuzz: cargo-fuzz too (from crates.io), and zip for the OSS-Fuzz seed corpora.
if [ "${1:-}" = --fuzz ]; then
  if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "setup: installing cargo-fuzz (cargo install cargo-fuzz --locked)" >&2
    cargo install cargo-fuzz --locked --quiet
  fi
  if ! command -v zip >/dev/null 2>&1 || ! command -v unzip >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq zip unzip >/dev/null
    else
      echo "the OSS-Fuzz check needs zip and unzip: run 'sudo apt-get install -y zip unzip' and try again." >&2
      exit 1
    fi
  fi
fi
