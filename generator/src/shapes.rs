//! Call and tail-call shapes: the ways programs of a set call each other, read off a set
//! statically, for measuring how many of them a generator reaches.

use bpf::helpers::MAP_LOOKUP_ELEM;
use bpf::insn::{AluOp, Call, Insn, Operand, Reg, Width};
use bpf::set::PSEUDO_MAP_FD;
use bpf::set::{AttachKind, ProgramSet};

/// A call or tail-call shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Shape {
    /// A call of a shared helper.
    Helper,
    /// A kfunc call (`call kfunc:...`), jitdiff's own or the kernel's.
    Kfunc,
    /// An array-map lookup.
    MapLookup,
    /// A bpf2bpf call of a subprogram.
    Subprogram,
    /// A bpf2bpf call made by a subprogram (two frames below the main one).
    NestedCall,
    /// A chain of bpf2bpf calls eight frames deep, the kernel's limit.
    EightFrames,
    /// A tail call from a program's main function.
    TailCallFromMain,
    /// A tail call from a subprogram: the mix of bpf2bpf calls and tail calls.
    TailCallFromSubprogram,
    /// A tail call whose slot holds the calling program.
    SelfTailCall,
    /// Two or more programs that tail-call each other in a cycle.
    MutualTailCalls,
    /// A tail call through an empty slot.
    EmptySlot,
    /// A tail call with an index at or past `max_entries`.
    IndexOutOfRange,
    /// A tail call with an index whose upper 32 bits are set.
    Index64Bit,
    /// An fentry program attached to a function of the set.
    Fentry,
    /// An fexit program attached to a function of the set.
    Fexit,
    /// An attachment on a function that makes tail calls: the count must get through
    /// the trampoline.
    TracedTailCaller,
}

impl Shape {
    /// Every shape.
    pub const ALL: [Shape; 16] = [
        Shape::Helper,
        Shape::Kfunc,
        Shape::MapLookup,
        Shape::Subprogram,
        Shape::NestedCall,
        Shape::EightFrames,
        Shape::TailCallFromMain,
        Shape::TailCallFromSubprogram,
        Shape::SelfTailCall,
        Shape::MutualTailCalls,
        Shape::EmptySlot,
        Shape::IndexOutOfRange,
        Shape::Index64Bit,
        Shape::Fentry,
        Shape::Fexit,
        Shape::TracedTailCaller,
    ];

    /// A short stable name.
    pub const fn name(self) -> &'static str {
        match self {
            Shape::Helper => "helper",
            Shape::Kfunc => "kfunc",
            Shape::MapLookup => "map-lookup",
            Shape::Subprogram => "subprogram",
            Shape::NestedCall => "nested-call",
            Shape::EightFrames => "eight-frames",
            Shape::TailCallFromMain => "tail-call-from-main",
            Shape::TailCallFromSubprogram => "tail-call-from-subprogram",
            Shape::SelfTailCall => "self-tail-call",
            Shape::MutualTailCalls => "mutual-tail-calls",
            Shape::EmptySlot => "empty-slot",
            Shape::IndexOutOfRange => "index-out-of-range",
            Shape::Index64Bit => "index-64-bit",
            Shape::Fentry => "fentry",
            Shape::Fexit => "fexit",
            Shape::TracedTailCaller => "traced-tail-caller",
        }
    }
}

/// The function (index into `functions`) holding instruction `i`.
fn function_of(functions: &[std::ops::Range<usize>], i: usize) -> usize {
    functions.iter().position(|f| f.contains(&i)).unwrap_or(0)
}

/// The constant `reg` holds at instruction `i` (with its `lddw` pseudo source), when the
/// last of the three instructions before it that writes `reg` loads one, as the
/// generator and hand-written tail calls set R2 and R3.
fn constant_before(insns: &[Insn], i: usize, reg: Reg) -> Option<(u8, u64)> {
    let last = insns[i.saturating_sub(3)..i].iter().rev().find(|insn| match insn {
        Insn::Alu { dst, .. }
        | Insn::LdImm64 { dst, .. }
        | Insn::Load { dst, .. }
        | Insn::MovSx { dst, .. }
        | Insn::Neg { dst, .. }
        | Insn::End { dst, .. } => *dst == reg,
        _ => false,
    })?;
    match *last {
        Insn::LdImm64 { pseudo, imm, .. } => Some((pseudo, imm)),
        Insn::Alu { width: Width::W64, op: AluOp::Mov, src: Operand::Imm(k), .. } => {
            Some((0, k as i64 as u64))
        }
        Insn::Alu { width: Width::W32, op: AluOp::Mov, src: Operand::Imm(k), .. } => {
            Some((0, k as u32 as u64))
        }
        _ => None,
    }
}

/// The shapes `set` contains, each once, in [`Shape::ALL`]'s order.
pub fn shapes_of(set: &ProgramSet) -> Vec<Shape> {
    let mut seen = [false; Shape::ALL.len()];
    let mut mark = |s: Shape| seen[s as usize] = true;
    // Which programs each program can tail-call (through slots of the maps it names).
    let n = set.progs().len();
    let mut edges = vec![vec![false; n]; n];
    for (p, sp) in set.progs().iter().enumerate() {
        let insns = sp.prog.insns();
        let functions = sp.prog.functions();
        // Call depth of each function: 1 for main, callers' depth + 1 for callees; the
        // generator's call graph is acyclic with callees after callers.
        let mut depth = vec![0usize; functions.len()];
        if let Some(d) = depth.first_mut() {
            *d = 1;
        }
        for (i, insn) in insns.iter().enumerate() {
            let f = function_of(&functions, i);
            match insn {
                Insn::Call(Call::Local(_)) => {
                    mark(Shape::Subprogram);
                    if f > 0 {
                        mark(Shape::NestedCall);
                    }
                    if let Some(callee) = sp.prog.target_of(i).map(|t| function_of(&functions, t)) {
                        depth[callee] = depth[callee].max(depth[f] + 1);
                        if depth[callee] >= 8 {
                            mark(Shape::EightFrames);
                        }
                    }
                }
                Insn::Call(Call::Helper(MAP_LOOKUP_ELEM)) => mark(Shape::MapLookup),
                _ if insn.is_tail_call() => {
                    mark(if f == 0 { Shape::TailCallFromMain } else { Shape::TailCallFromSubprogram });
                    let map = match constant_before(insns, i, Reg::R2) {
                        Some((PSEUDO_MAP_FD, k)) => set.maps().get(k as usize),
                        _ => None,
                    };
                    let index = constant_before(insns, i, Reg::R3).map(|(_, v)| v);
                    if let (Some(map), Some(index)) = (map, index) {
                        if index >> 32 != 0 {
                            mark(Shape::Index64Bit);
                        }
                        match map.slots.get(index as u32 as usize) {
                            None => mark(Shape::IndexOutOfRange),
                            Some(None) => mark(Shape::EmptySlot),
                            Some(Some(target)) => {
                                edges[p][*target] = true;
                                if *target == p {
                                    mark(Shape::SelfTailCall);
                                }
                            }
                        }
                    }
                }
                Insn::Call(Call::Helper(_)) => mark(Shape::Helper),
                Insn::Call(Call::Kfunc(_)) => mark(Shape::Kfunc),
                _ => {}
            }
        }
    }
    for a in set.attachments() {
        mark(match a.kind {
            AttachKind::Fentry => Shape::Fentry,
            AttachKind::Fexit => Shape::Fexit,
        });
        let code = &set.progs()[a.target.prog].prog;
        if code.functions()[a.target.func].clone().any(|i| code.insns()[i].is_tail_call()) {
            mark(Shape::TracedTailCaller);
        }
    }
    // A cycle through two or more programs.
    for a in 0..n {
        for b in 0..n {
            if a != b && edges[a][b] && reaches(&edges, b, a) {
                mark(Shape::MutualTailCalls);
            }
        }
    }
    Shape::ALL.iter().copied().filter(|s| seen[*s as usize]).collect()
}

/// Whether program `to` can be reached from `from` along tail-call edges.
fn reaches(edges: &[Vec<bool>], from: usize, to: usize) -> bool {
    let mut seen = vec![false; edges.len()];
    let mut todo = vec![from];
    while let Some(p) = todo.pop() {
        if p == to {
            return true;
        }
        if !std::mem::replace(&mut seen[p], true) {
            todo.extend((0..edges.len()).filter(|&q| edges[p][q]));
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use bpf::asm::parse_set;

    fn shapes(text: &str) -> Vec<Shape> {
        shapes_of(&parse_set(text).unwrap().set)
    }

    #[test]
    fn calls_and_tail_calls_are_told_apart() {
        // Main calls a subprogram that tail-calls through slot 0 (itself: program 0).
        let text = "\
.map jmp 2
.slot jmp 0 entry
.prog entry
r6 = r1
call pc+2
r0 = 0
exit
r1 = r6
r2 = jmp ll
r3 = 0
call bpf_tail_call
r0 = 0
exit
";
        assert_eq!(shapes(text), vec![Shape::Subprogram, Shape::TailCallFromSubprogram, Shape::SelfTailCall]);
    }

    #[test]
    fn indexes_and_slots() {
        let text = "\
.map jmp 2
.slot jmp 0 other
.prog entry
r2 = jmp ll
r3 = 1
call bpf_tail_call
r2 = jmp ll
r3 = 2
call bpf_tail_call
r2 = jmp ll
r3 = 0x100000000 ll
call bpf_tail_call
r0 = 0
exit
.prog other
r0 = 1
exit
";
        assert_eq!(
            shapes(text),
            vec![Shape::TailCallFromMain, Shape::EmptySlot, Shape::IndexOutOfRange, Shape::Index64Bit]
        );
    }

    #[test]
    fn mutual_tail_calls_form_a_cycle() {
        let text = "\
.map jmp 2
.slot jmp 0 entry
.slot jmp 1 other
.prog entry
r2 = jmp ll
r3 = 1
call bpf_tail_call
r0 = 0
exit
.prog other
r2 = jmp ll
r3 = 0
call bpf_tail_call
r0 = 1
exit
";
        assert_eq!(shapes(text), vec![Shape::TailCallFromMain, Shape::MutualTailCalls]);
    }

    #[test]
    fn attachments_and_what_they_trace() {
        let text = "\
.map jmp 1
.prog entry
call pc+2
r0 = 0
exit
r2 = jmp ll
r3 = 0
call bpf_tail_call
r0 = 0
exit
.fentry before entry
r0 = 0
exit
";
        let on_main = shapes(text);
        assert!(
            on_main.contains(&Shape::Fentry) && !on_main.contains(&Shape::TracedTailCaller),
            "{on_main:?}"
        );
        let on_sub = shapes(&text.replace(".fentry before entry", ".fexit after entry:1"));
        assert!(on_sub.contains(&Shape::Fexit) && on_sub.contains(&Shape::TracedTailCaller), "{on_sub:?}");
        assert!(!on_sub.contains(&Shape::Fentry));
    }

    #[test]
    fn eight_frames_deep() {
        let mut text = String::from(".prog entry\n");
        for _ in 0..7 {
            text += "call pc+2\nr0 = 0\nexit\n";
        }
        text += "r0 = 0\nexit\n";
        let s = shapes(&text);
        assert!(s.contains(&Shape::EightFrames) && s.contains(&Shape::NestedCall), "{s:?}");
        // Seven frames are not eight.
        let mut text = String::from(".prog entry\n");
        for _ in 0..6 {
            text += "call pc+2\nr0 = 0\nexit\n";
        }
        text += "r0 = 0\nexit\n";
        assert!(!shapes(&text).contains(&Shape::EightFrames));
    }
}
