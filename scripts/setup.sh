#!/usr/bin/env bash
# Makes sure this machine can do what jitdiff's build and tests do, by trying each thing
# the way the build uses it (not by package names), and installs what is missing:
# Debian packages with apt-get when run as root, cargo-fuzz with cargo install. Without
# root it stops with one sentence naming the command to run.
#
# Usage: scripts/setup.sh [--fuzz] [--kernel-source] [--kernel-tools] [--kernel] [--quiet]
#   always           cargo; a C compiler; cmake; pkg-config; a libclang that finds its own resource
#                    headers (bindgen parses unicorn's headers with it)
#   --fuzz           cargo-fuzz, zip and unzip (the OSS-Fuzz build and its seed corpora)
#   --kernel-source  Debian's kernel source, linux-source-6.12 or the tarball
#                    $JITDIFF_KERNEL_TARBALL names (kernel/test-vectors.sh reads it), and
#                    clang with libbpf's headers, which compile the kernel's BPF
#                    selftests (kernel/selftests.sh)
#   --kernel-tools   what kernel/build.sh uses: a riscv64 cross compiler that links
#                    static programs, qemu-system-riscv64 with its firmware, make, flex,
#                    bison, bc, xz, the OpenSSL headers and pahole (the guest kernels'
#                    BTF, which kfunc calls need)
#   --kernel         both of the above
#   --quiet          say nothing when nothing was missing
# Prints what it found and what it installed in one short block on stderr.
set -euo pipefail

want_fuzz=0 want_source=0 want_kernel=0 quiet=0
for arg in "$@"; do
    case $arg in
        --fuzz) want_fuzz=1 ;;
        --kernel-source) want_source=1 ;;
        --kernel-tools) want_kernel=1 ;;
        --kernel) want_kernel=1 want_source=1 ;;
        --quiet) quiet=1 ;;
        *) echo "setup: unknown option '$arg' (usage: scripts/setup.sh [--fuzz] [--kernel-source] [--kernel-tools] [--kernel] [--quiet])" >&2; exit 2 ;;
    esac
done
TARBALL=${JITDIFF_KERNEL_TARBALL:-/usr/src/linux-source-6.12.tar.xz}

command -v cargo >/dev/null 2>&1 || {
    echo "setup: jitdiff needs a Rust toolchain: install it with rustup (https://rustup.rs), then run this again." >&2
    exit 1
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

found=()    # what was there, with where or which version
packages=() # Debian packages that would provide what was not
needs=()    # what was not there, in words

# Compiles a one-line C program that includes $2 with compiler $1 (extra flags after).
compiles() {
    local cc=$1 header=$2
    shift 2
    printf '#include <%s>\nint main(void) { return 0; }\n' "$header" >"$tmp/probe.c"
    "$cc" "$@" -o "$tmp/probe" "$tmp/probe.c" >/dev/null 2>&1
}

version_of() { "$@" 2>/dev/null | head -1 | grep -oE '[0-9]+\.[0-9]+(\.[0-9]+)?' | head -1; }

# The libclang files bindgen (clang-sys) may load: LIBCLANG_PATH, else llvm-config's
# library folder, else the usual system folders; one path per library file.
libclang_candidates() {
    local dirs=()
    if [[ -n ${LIBCLANG_PATH:-} ]]; then
        dirs=("$LIBCLANG_PATH")
    else
        command -v llvm-config >/dev/null 2>&1 && dirs+=("$(llvm-config --libdir 2>/dev/null)")
        dirs+=(/usr/lib/llvm-*/lib /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/lib /usr/local/lib)
    fi
    local d f
    declare -A seen=()
    for d in "${dirs[@]}"; do
        for f in "$d"/libclang.so "$d"/libclang-*.so* "$d"/libclang.so.*; do
            # libclang-cpp is clang's C++ library, not the C API bindgen loads
            [[ -e $f && $f != *libclang-cpp* ]] || continue
            local real
            real=$(readlink -f "$f")
            [[ -z ${seen[$real]:-} ]] && { seen[$real]=1; echo "$f"; }
        done
    done
}

# Parses a file that includes <stdbool.h> through the libclang at $1, as bindgen parses
# unicorn's headers: libclang looks for the compiler's own headers in its resource folder
# (lib/clang/VERSION/include), which Debian ships apart from the library.
libclang_parses_stdbool() {
    if [[ ! -x $tmp/libclang-probe ]]; then
        cat >"$tmp/libclang-probe.c" <<'EOF'
#include <dlfcn.h>
typedef void *(*create_index)(int, int);
typedef void *(*parse_unit)(void *, const char *, const char *const *, int, void *, unsigned, unsigned);
typedef unsigned (*count_diagnostics)(void *);
int main(int argc, char **argv)
{
	void *lib = argc == 3 ? dlopen(argv[1], RTLD_NOW) : 0;
	if (!lib)
		return 2;
	create_index create = (create_index)dlsym(lib, "clang_createIndex");
	parse_unit parse = (parse_unit)dlsym(lib, "clang_parseTranslationUnit");
	count_diagnostics count = (count_diagnostics)dlsym(lib, "clang_getNumDiagnostics");
	if (!create || !parse || !count)
		return 2;
	const char *args[] = { "-fsyntax-only" };
	void *unit = parse(create(0, 0), argv[2], args, 1, 0, 0, 0);
	return unit && count(unit) == 0 ? 0 : 1;
}
EOF
        cc -o "$tmp/libclang-probe" "$tmp/libclang-probe.c" -ldl >/dev/null 2>&1 || return 1
        echo '#include <stdbool.h>' >"$tmp/stdbool.c"
    fi
    "$tmp/libclang-probe" "$1" "$tmp/stdbool.c"
}

probe_build() {
    if compiles cc stdio.h; then
        found+=("cc $(version_of cc --version)")
    else
        packages+=(build-essential) needs+=("a C compiler")
    fi
    if command -v cmake >/dev/null 2>&1; then
        found+=("cmake $(version_of cmake --version)")
    else
        packages+=(cmake) needs+=(cmake)
    fi
    # unicorn's bundled qemu configure step stops without pkg-config ("config-host.h: No
    # such file" later in the build).
    if pkg-config --version >/dev/null 2>&1; then
        found+=("pkg-config $(pkg-config --version)")
    else
        packages+=(pkg-config) needs+=(pkg-config)
    fi
    local libs lib major
    mapfile -t libs < <(libclang_candidates)
    if ((${#libs[@]} == 0)); then
        packages+=(libclang-dev) needs+=("libclang (bindgen)")
        return
    fi
    for lib in "${libs[@]}"; do
        if libclang_parses_stdbool "$lib"; then
            found+=("libclang $lib (parses <stdbool.h>)")
        else
            major=$(basename "$(readlink -f "$lib")" | grep -oE '[0-9]+' | head -1 || true)
            packages+=("libclang-common-${major:-14}-dev")
            needs+=("the resource headers (stdbool.h) of $lib")
        fi
    done
}

probe_fuzz() {
    if command -v cargo-fuzz >/dev/null 2>&1; then
        found+=("cargo-fuzz $(version_of cargo fuzz --version)")
    fi
    for tool in zip unzip; do
        if command -v "$tool" >/dev/null 2>&1; then found+=("$tool"); else packages+=("$tool") needs+=("$tool"); fi
    done
}

probe_source() {
    if [[ -f $TARBALL ]]; then
        found+=("kernel source $TARBALL")
    elif [[ $TARBALL == /usr/src/linux-source-*.tar.xz ]]; then
        local pkg
        pkg=$(basename "$TARBALL" .tar.xz)
        packages+=("$pkg") needs+=("the kernel source ($TARBALL)")
    else
        echo "setup: JITDIFF_KERNEL_TARBALL names $TARBALL, which does not exist." >&2
        exit 2
    fi
    command -v xz >/dev/null 2>&1 || { packages+=(xz-utils) needs+=(xz); }
    # kernel/selftests.sh: clang for the bpf target, with libbpf's bpf_helpers.h
    local clang=clang-14
    command -v $clang >/dev/null 2>&1 || clang=clang
    printf '#include <linux/types.h>\n#include <bpf/bpf_helpers.h>\nSEC("tc") int f(void *c) { return 0; }\n' >"$tmp/bpf.c"
    if command -v $clang >/dev/null 2>&1 \
        && $clang -O2 -target bpf -I "/usr/include/$(gcc -print-multiarch 2>/dev/null)" -c -o "$tmp/bpf.o" "$tmp/bpf.c" >/dev/null 2>&1; then
        found+=("$clang $(version_of $clang --version) for BPF with libbpf's headers")
    else
        command -v $clang >/dev/null 2>&1 || { packages+=(clang-14) needs+=("clang"); }
        [[ -f /usr/include/bpf/bpf_helpers.h ]] || { packages+=(libbpf-dev) needs+=("libbpf's headers"); }
    fi
}

probe_kernel() {
    local cross=riscv64-linux-gnu-gcc
    if command -v $cross >/dev/null 2>&1 && compiles $cross stdio.h -static; then
        found+=("$cross $(version_of $cross --version) linking static programs")
    else
        packages+=(gcc-riscv64-linux-gnu libc6-dev-riscv64-cross)
        needs+=("a riscv64 cross compiler with a static C library")
    fi
    # `-bios default` boots qemu's own OpenSBI build (qemu-system-data ships it).
    if qemu-system-riscv64 --version >/dev/null 2>&1 && ls /usr/share/qemu/opensbi-riscv64-generic-fw_dynamic.* >/dev/null 2>&1; then
        found+=("qemu-system-riscv64 $(version_of qemu-system-riscv64 --version) with OpenSBI")
    else
        packages+=(qemu-system-misc qemu-system-data) needs+=("qemu-system-riscv64 and its OpenSBI firmware")
    fi
    command -v xz >/dev/null 2>&1 || { packages+=(xz-utils) needs+=(xz); }
    local tool pkg
    for tool in make:make flex:flex bison:bison bc:bc; do
        pkg=${tool#*:} tool=${tool%%:*}
        if command -v "$tool" >/dev/null 2>&1; then found+=("$tool"); else packages+=("$pkg") needs+=("$tool"); fi
    done
    if compiles cc openssl/ssl.h -c; then
        found+=("OpenSSL headers")
    else
        packages+=(libssl-dev) needs+=("the OpenSSL headers")
    fi
    # CONFIG_DEBUG_INFO_BTF wants pahole 1.22 or later (Debian 12 has 1.24).
    if command -v pahole >/dev/null 2>&1; then
        found+=("pahole $(version_of pahole --version)")
    else
        packages+=(dwarves) needs+=("pahole")
    fi
}

probe_all() {
    found=() packages=() needs=()
    probe_build
    ((want_fuzz)) && probe_fuzz
    ((want_source)) && probe_source
    ((want_kernel)) && probe_kernel
    return 0
}

installed=()
probe_all
if ((${#packages[@]})); then
    mapfile -t packages < <(printf '%s\n' "${packages[@]}" | sort -u)
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "setup: installing ${packages[*]} (for: $(IFS=,; echo "${needs[*]}" | sed 's/,/, /g'))" >&2
        apt-get update -qq >&2 || { echo "setup: 'apt-get update' failed; the packages above are still missing." >&2; exit 1; }
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >"$tmp/apt.log" 2>&1 || {
            tail -20 "$tmp/apt.log" >&2
            echo "setup: 'apt-get install ${packages[*]}' failed (above)." >&2
            exit 1
        }
        installed+=("${packages[@]}")
        probe_all
        if ((${#needs[@]})); then
            echo "setup: still missing after installing ${installed[*]}: $(IFS=,; echo "${needs[*]}" | sed 's/,/, /g')." >&2
            exit 1
        fi
    else
        echo "setup: jitdiff needs $(IFS=,; echo "${needs[*]}" | sed 's/,/, /g'): run 'sudo apt-get install -y ${packages[*]}' and try again." >&2
        exit 1
    fi
fi
if ((want_fuzz)) && ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "setup: installing cargo-fuzz (cargo install cargo-fuzz --locked; about two minutes)" >&2
    cargo install cargo-fuzz --locked --quiet || { echo "setup: 'cargo install cargo-fuzz --locked' failed (above)." >&2; exit 1; }
    command -v cargo-fuzz >/dev/null 2>&1 || {
        echo "setup: cargo-fuzz was installed but is not on PATH: add $(dirname "$(command -v cargo)") or ~/.cargo/bin to PATH." >&2
        exit 1
    }
    installed+=(cargo-fuzz)
    found+=("cargo-fuzz $(version_of cargo fuzz --version)")
fi

if ((quiet == 0 || ${#installed[@]})); then
    {
        echo "setup: found: $(IFS=';'; echo "${found[*]}" | sed 's/;/; /g')"
        ((${#installed[@]})) && echo "setup: installed: ${installed[*]}"
    } >&2
fi
exit 0
