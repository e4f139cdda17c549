#!/usr/bin/env python3
"""Where the kernel engines' guests spend their time: samples each guest's program counter
through qemu's human monitor and prints the share of samples per kernel function and per
kind of work (verifier, JIT, memory, test runs, idle: waiting for the host, ...).

Run jitdiff with JITDIFF_GUEST_MONITOR=DIR (every guest it boots then listens on
DIR/guest-PID-N.sock), then, while it runs:

    scripts/guest-profile.py --map ~/.cache/jitdiff/kernel/obj/7.3-*/System.map \\
        --seconds 30 DIR/*.sock

Samples are taken every --interval milliseconds from each socket in turn. qemu answers
between translation blocks, so a sample is where the guest was, not where qemu's own
translation of guest code was; qemu's translation shows as the host's time instead.
"""

import argparse
import bisect
import collections
import os
import re
import socket
import sys
import time

# Kinds of work, by the first pattern a function's name matches.
KINDS = [
    ("idle: waiting for the host", r"^(default_idle_call|arch_cpu_idle|do_idle|cpu_idle|cpuidle|wfi|riscv_cpuidle)"),
    ("verifier", r"(^|_)(arg_track|compute_subprog|bpf_compute_const|do_check|check_|bpf_check|verifier|mark_|regsafe|states_equal|is_state_visited|"
                 r"adjust_|__reg|reg_bounds|tnum_|convert_ctx|do_misc_fixups|opt_|bpf_patch|bpf_adj|"
                 r"push_stack|copy_verifier|clean_|propagate_|__mark|backtrack|bt_|func_states|"
                 r"visit_insn|push_insn|compute_|verbose|bpf_verifier|find_good_pkt|sanitize|"
                 r"widen_|range_within|stacksafe|refsafe|jit_subprogs|add_subprog|fixup_)"),
    ("JIT", r"(^|_)(bpf_int_jit_compile|build_body|bpf_jit_|emit_|rv_|build_prologue|build_epilogue|"
            r"bpf_arch_|bpf_fill_ill|arch_prepare_bpf|invoke_bpf|__arch_prepare)"),
    ("interpreter and JITed code", r"^(___bpf_prog_run|__bpf_prog_run|bpf_prog_run|\[bpf)"),
    ("test run", r"^(bpf_prog_test_run|bpf_test_|bpf_ctx_|convert___skb|convert_skb|eth_type_trans|"
                 r"slab_build_skb|build_skb|kfree_skb|skb_|sk_alloc|sk_free|__sk_free)"),
    ("memory: allocation, page tables, TLB", r"(alloc|free|vmap|vunmap|set_memory|__set_memory|flush_tlb|"
                                              r"tlb|page|pte|pmd|pgd|kmem|slab|memcg|bpf_prog_pack|"
                                              r"execmem|text_poke|patch_text|__memcpy|memcpy|memset|memmove|"
                                              r"direct_map|split_linear)"),
    ("BTF and kallsyms", r"(btf|kallsyms|ksym|bpf_prog_kallsyms|lookup_symbol)"),
    ("program tag (sha)", r"^(sha|bpf_prog_calc_tag)"),
    ("syscalls, traps, user copies", r"(handle_exception|usercopy|copy_to_user|copy_from_user|do_trap|"
                                     r"ret_from_exception|do_syscall|__sys_bpf|sys_bpf|strncpy_from_user)"),
    ("virtio channel and timer", r"^(vm_notify|vm_interrupt|virtio|vring|riscv_clock|hvc|handle_irq|"
                                 r"generic_handle|irq_|plic_|clockevents|tick_|hrtimer)"),
    ("user space: the agent", r"^\[user\]"),
]


def load_map(path):
    """Sorted (address, name) of the text symbols of a System.map."""
    syms = []
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3 and parts[1] in "tTwW":
                syms.append((int(parts[0], 16), parts[2]))
    syms.sort()
    return syms


USER = []  # (address, name) of the agent's functions, when --agent is given


def symbol(syms, addrs, pc):
    if pc < 0x8000_0000_0000_0000:
        i = bisect.bisect_right([a for a, _ in USER], pc) - 1
        return f"[user] {USER[i][1]}" if USER and i >= 0 else "[user]"
    i = bisect.bisect_right(addrs, pc) - 1
    if i < 0 or i + 1 >= len(syms):
        return "[bpf program or module]"
    return syms[i][1]


def kind(name):
    for k, pattern in KINDS:
        if re.search(pattern, name):
            return k
    return "other kernel"


class Monitor:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.sock.settimeout(2.0)
        self.read_prompt()

    def read_prompt(self):
        buf = b""
        while not buf.endswith(b"(qemu) "):
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("monitor closed")
            buf += chunk
        return buf.decode(errors="replace")

    def pc(self):
        """The program counter and the return address register (the caller of a leaf)."""
        self.sock.sendall(b"info registers\n")
        out = self.read_prompt()
        m = re.search(r"\bpc\s+([0-9a-fA-F]+)", out)
        r = re.search(r"\bx1/ra\s+([0-9a-fA-F]+)", out) or re.search(r"\bra\s+([0-9a-fA-F]+)", out)
        if not m:
            return None
        return int(m.group(1), 16), (int(r.group(1), 16) if r else None)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--map", required=True, help="the guest kernel's System.map")
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--interval", type=float, default=5, help="milliseconds between samples")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--agent", help="an unstripped build of the agent (same compiler and flags as kernel/build.sh's), "
                                    "to name its functions")
    ap.add_argument("sockets", nargs="+")
    a = ap.parse_args()
    syms = load_map(a.map)
    if a.agent:
        import subprocess
        out = subprocess.run(["riscv64-linux-gnu-nm", "-n", a.agent], capture_output=True, text=True).stdout
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[1] in "tTwW":
                USER.append((int(parts[0], 16), parts[2]))
    addrs = [s[0] for s in syms]
    monitors = []
    for path in a.sockets:
        try:
            monitors.append((os.path.basename(path), Monitor(path)))
        except OSError as e:
            print(f"guest-profile: {path}: {e}", file=sys.stderr)
    if not monitors:
        print("guest-profile: no monitor to sample", file=sys.stderr)
        return 2
    funcs = collections.Counter()
    kinds = collections.Counter()
    callers = collections.defaultdict(collections.Counter)
    end = time.monotonic() + a.seconds
    n = 0
    while time.monotonic() < end and monitors:
        for name, mon in list(monitors):
            try:
                regs = mon.pc()
            except (OSError, EOFError):
                monitors.remove((name, mon))
                continue
            if regs is None:
                continue
            pc, ra = regs
            f = symbol(syms, addrs, pc)
            funcs[f] += 1
            if ra is not None:
                callers[f][symbol(syms, addrs, ra)] += 1
            kinds[kind(f)] += 1
            n += 1
        time.sleep(a.interval / 1000)
    if n == 0:
        print("guest-profile: no samples", file=sys.stderr)
        return 1
    print(f"{n} samples from {len(a.sockets)} guest(s) over {a.seconds:.0f} s")
    print("\nby kind of work:")
    for k, c in kinds.most_common():
        print(f"  {100 * c / n:5.1f}%  {k}")
    print(f"\ntop {a.top} functions:")
    for f, c in funcs.most_common(a.top):
        print(f"  {100 * c / n:5.1f}%  {f}  ({kind(f)})")
    print("\ntheir callers (the return address register: exact for a leaf function):")
    for f, _ in funcs.most_common(8):
        top = ", ".join(f"{g} {100 * k / sum(callers[f].values()):.0f}%" for g, k in callers[f].most_common(3))
        print(f"  {f}: {top}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
