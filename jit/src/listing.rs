//! Our JIT's machine code as text: each BPF instruction above the RV64 instructions it
//! became, prologues and epilogues marked (for `jitdiff jit` and the finding reports).

/// The RV64 code of every program of a set, each BPF instruction above the machine code
/// it became, with function prologues and epilogues marked.
pub fn listing(set: &bpf::ProgramSet, compiled: &crate::compile::CompiledSet) -> String {
    let mut s = String::new();
    for (sp, c) in set.progs().iter().zip(&compiled.progs) {
        s += &format!("; program {} at {:#x} ({} scheme)\n", sp.name, c.base, compiled.scheme);
        s += &program_listing(sp, c, 0..c.len(), None);
    }
    for (a, c) in set.attachments().iter().zip(&compiled.attachments) {
        s += &format!("; {} program {} at {:#x}\n", a.kind.name(), a.program.name, c.base);
        s += &program_listing(&a.program, c, 0..c.len(), None);
    }
    for t in &compiled.trampolines {
        let target = set.progs().get(t.target.prog).map_or("?", |p| p.name.as_str());
        s += &format!("; trampoline of function {} of program {target} at {:#x}\n", t.target.func, t.base);
        for (k, inst) in t.insts.iter().enumerate() {
            s += &format!("  {:#x}: {inst}\n", t.base + 4 * k as u64);
        }
    }
    s
}

/// The RV64 code of BPF instructions `index - context ..= index + context` of program
/// `prog`, interleaved with those instructions; instruction `index` is marked `>>`.
/// Empty when the program or instruction does not exist.
pub fn listing_around(
    set: &bpf::ProgramSet,
    compiled: &crate::compile::CompiledSet,
    prog: usize,
    index: usize,
    context: usize,
) -> String {
    let (Some(sp), Some(c)) = (set.progs().get(prog), compiled.progs.get(prog)) else { return String::new() };
    let n = c.insn_ranges.len();
    if index >= n {
        return String::new();
    }
    let (lo, hi) = (index.saturating_sub(context), (index + context).min(n - 1));
    let bytes = c.insn_ranges[lo].start..c.insn_ranges[hi].end.max(c.insn_ranges[lo].start);
    format!("; program {} at {:#x}\n", sp.name, c.base) + &program_listing(sp, c, bytes, Some(index))
}

/// The listing of the machine instructions of `c` within `bytes`, each BPF
/// instruction, prologue and epilogue named where its code starts.
fn program_listing(
    sp: &bpf::SetProgram,
    c: &crate::compile::Compiled,
    bytes: std::ops::Range<usize>,
    mark: Option<usize>,
) -> String {
    let mut events: Vec<(usize, u8, usize, String)> = Vec::new();
    for (f, &e) in c.entries.iter().enumerate() {
        events.push((e, 0, f, format!("; function {f}: prologue")));
    }
    for (i, r) in c.insn_ranges.iter().enumerate() {
        let arrow = if mark == Some(i) { ">>" } else { "; " };
        events.push((r.start, 1, i, format!("{arrow}{:4}: {}", sp.prog.pc_of(i), sp.prog.insns()[i])));
    }
    for (f, &e) in c.epilogues.iter().enumerate() {
        events.push((e, 2, f, format!("; function {f}: epilogue")));
    }
    events.sort();
    let mut s = String::new();
    let mut next = 0;
    for k in 0..c.insts.len() {
        while next < events.len() && events[next].0 <= k * 4 {
            if bytes.contains(&events[next].0) || (bytes.is_empty() && events[next].0 == bytes.start) {
                s += &events[next].3;
                s.push('\n');
            }
            next += 1;
        }
        if bytes.contains(&(k * 4)) {
            let inst = c.insts[k];
            s += &format!("  {:5x}:  {:08x}  {inst}\n", k * 4, inst.encode());
        }
    }
    s
}
