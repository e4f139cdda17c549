//! The validator's rules, case by case, with the verdicts the kernel's verifier gives.

use super::*;

fn check(text: &str) -> Result<(), ValidateError> {
    let file = crate::asm::parse_set(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    validate(&file.set, Some(64))
}

/// Asserts that `text` breaks `rule` at `pc`; returns the message.
fn rejects(text: &str, rule: Rule, pc: usize) -> String {
    let e = check(text).expect_err(text);
    assert_eq!((e.rule, e.pc), (rule, pc), "{e}\n{text}");
    e.to_string()
}

fn accepts(text: &str) {
    if let Err(e) = check(text) {
        panic!("{e}\n{text}");
    }
}

const LOOKUP: &str = ".array arr 16 2\n\
    *(u32 *)(r10 - 4) = 1\n\
    r1 = arr ll\n\
    r2 = r10\n\
    r2 += -4\n\
    call map_lookup_elem\n";

#[test]
fn uninitialized_registers() {
    let msg = rejects("r0 = r3\nexit\n", Rule::UninitRegister, 0);
    assert!(msg.contains("only r1 and r10"), "{msg}");
    let msg =
        rejects("r1 = 1\nr2 = 2\ncall jitdiff_counter\nr0 = 0\nr0 += r3\nexit\n", Rule::UninitRegister, 4);
    assert_eq!(
        msg,
        "program entry, pc 4: uninitialized register: r3 is read but not defined on every path \
         (R1-R5 are clobbered by the call at pc 2)"
    );
    // Defined on one path only.
    rejects("r2 = 0\nif r2 == 0 goto +1\nr0 = 1\nexit\n", Rule::UninitRegister, 3);
    // After a tail call R0 is gone too.
    let tail = ".map m 1\nr2 = m ll\nr3 = 0\ncall bpf_tail_call\nexit\n";
    let msg = rejects(tail, Rule::UninitRegister, 4);
    assert!(msg.contains("tail call at pc 3"), "{msg}");
    // A subprogram gets only what every caller passes.
    let sub = "r2 = 1\ncall f\nr2 = 7\ncall f\nexit\nf:\nr0 = r6\nexit\n";
    rejects(sub, Rule::UninitRegister, 5);
    accepts("r2 = 1\ncall f\nr2 = 7\ncall f\nexit\nf:\nr0 = r2\nexit\n");
    rejects("r2 = 1\ncall f\ncall f\nexit\nf:\nr0 = r2\nexit\n", Rule::UninitRegister, 4);
    // R0 at exit.
    rejects("exit\n", Rule::UninitRegister, 0);
}

#[test]
fn stack_rules() {
    accepts("*(u64 *)(r10 - 8) = 1\nr0 = *(u32 *)(r10 - 4)\nexit\n");
    rejects("r0 = *(u64 *)(r10 - 8)\nexit\n", Rule::UninitStack, 0);
    // Written on one path only.
    rejects(
        "r2 = 0\nif r2 == 0 goto +1\n*(u64 *)(r10 - 8) = 1\nr0 = *(u8 *)(r10 - 1)\nexit\n",
        Rule::UninitStack,
        3,
    );
    rejects(".stack 8\n*(u64 *)(r10 - 16) = 1\nr0 = 0\nexit\n", Rule::StackBounds, 0);
    rejects("*(u64 *)(r10 - 4) = 1\nr0 = 0\nexit\n", Rule::StackBounds, 0);
    rejects(
        "*(u32 *)(r10 - 6) = 1\nr1 = 1\nlock *(u32 *)(r10 - 6) += r1\nr0 = 0\nexit\n",
        Rule::MisalignedAtomic,
        2,
    );
}

#[test]
fn context_rules() {
    accepts("r0 = *(u64 *)(r1 + 56)\nr1 += 8\nr0 = *(u64 *)(r1 + 48)\nexit\n");
    rejects("r0 = *(u64 *)(r1 + 60)\nexit\n", Rule::CtxBounds, 0);
    rejects("r0 = *(u8 *)(r1 - 1)\nexit\n", Rule::CtxBounds, 0);
    rejects("r1 = 5\nr0 = *(u8 *)(r1 + 0)\nexit\n", Rule::BadMemoryBase, 1);
}

#[test]
fn map_value_rules() {
    accepts(&format!("{LOOKUP}if r0 == 0 goto +1\nr0 = *(u64 *)(r0 + 8)\nr0 = 0\nexit\n"));
    accepts(&format!("{LOOKUP}r6 = r0\nif r0 != 0 goto +2\nr0 = 0\nexit\nr0 = *(u64 *)(r6 + 8)\nexit\n"));
    let msg = rejects(&format!("{LOOKUP}r0 = *(u64 *)(r0 + 0)\nexit\n"), Rule::NullCheck, 6);
    assert!(msg.contains("r0 may be NULL"), "{msg}");
    rejects(
        &format!("{LOOKUP}if r0 == 0 goto +1\nr0 = *(u64 *)(r0 + 12)\nr0 = 0\nexit\n"),
        Rule::MapValueBounds,
        7,
    );
    // The key must be written.
    rejects(".array arr 8 1\nr1 = arr ll\nr2 = r10\nr2 += -4\ncall 1\nr0 = 0\nexit\n", Rule::UninitStack, 4);
    // R1 must be an array map, not a prog array.
    rejects(".map m 1\nr1 = m ll\nr2 = r10\ncall 1\nr0 = 0\nexit\n", Rule::HelperArgument, 3);
}

#[test]
fn global_variables() {
    // `lddw rN, &map + off`: a pointer into the value of an array of one value, never NULL.
    accepts(".array g 8 1\nr1 = &g + 4 ll\nr0 = *(u32 *)(r1 + 0)\n*(u32 *)(r1 - 4) = r0\nexit\n");
    let msg = rejects(".array g 8 1\nr1 = &g + 4 ll\nr0 = *(u64 *)(r1 + 0)\nexit\n", Rule::MapValueBounds, 2);
    assert!(msg.contains("8 bytes at offset + 4 of a 8-byte map value"), "{msg}");
}

#[test]
fn pointer_rules() {
    rejects("r2 = *(u32 *)(r1 + 0)\nr1 += r2\nr0 = 0\nexit\n", Rule::PointerArithmetic, 1);
    rejects("r1 *= 2\nr0 = 0\nexit\n", Rule::PointerArithmetic, 0);
    rejects("w2 = w10\nr0 = 0\nexit\n", Rule::PointerArithmetic, 0);
    rejects("*(u64 *)(r10 - 8) = r1\nr0 = 0\nexit\n", Rule::PointerStore, 0);
    rejects("if r1 > 3 goto +0\nr0 = 0\nexit\n", Rule::PointerComparison, 0);
    rejects("r0 = r10\nexit\n", Rule::PointerReturn, 1);
    rejects("r2 = r1\nr3 = 0\nr4 = 0\nr5 = 0\nr1 = 0\ncall jitdiff_mix\nexit\n", Rule::HelperArgument, 5);
    // Pointer kinds that disagree between paths become unusable.
    rejects("r2 = 0\nif r2 == 0 goto +1\nr2 = r1\nr0 = *(u8 *)(r2 + 0)\nexit\n", Rule::BadMemoryBase, 3);
}

#[test]
fn helper_and_tail_call_rules() {
    rejects("call 99\nexit\n", Rule::UnknownHelper, 0);
    rejects("call kfunc:1234\nexit\n", Rule::Unsupported, 0);
    accepts("r1 = 1\nr2 = 2\nr3 = 3\nr4 = 4\nr5 = 5\ncall kfunc:jitdiff_kmix\nexit\n");
    accepts("call kfunc:jitdiff_kcounter\nexit\n");
    // kfunc arguments are scalars, and R1-R5 are clobbered like after a helper.
    rejects("r2 = 2\nr3 = 3\nr4 = 4\nr5 = 5\ncall kfunc:jitdiff_kmix\nexit\n", Rule::HelperArgument, 4);
    rejects("call kfunc:jitdiff_kcounter\nr0 = r1\nexit\n", Rule::UninitRegister, 1);
    accepts(".map m 1\nr2 = m ll\nr3 = 0\ncall bpf_tail_call\nr0 = 0\nexit\n");
    rejects(".map m 1\nr2 = 1\nr3 = 0\ncall bpf_tail_call\nr0 = 0\nexit\n", Rule::TailCallArgs, 2);
    rejects(".map m 1\nr1 = 0\nr2 = m ll\nr3 = 0\ncall bpf_tail_call\nr0 = 0\nexit\n", Rule::TailCallArgs, 4);
    rejects(".map m 1\nr2 = m ll\nr3 = r10\ncall bpf_tail_call\nr0 = 0\nexit\n", Rule::TailCallArgs, 3);
}

#[test]
fn call_graph_rules() {
    rejects("call f\nexit\nf:\ncall f\nexit\n", Rule::CallGraph, 2);
    // Nine frames.
    let mut chain = String::from("call f1\nexit\n");
    for k in 1..=8 {
        chain += &format!("f{k}:\n");
        if k < 8 {
            chain += &format!("call f{}\n", k + 1);
        } else {
            chain += "r0 = 0\n";
        }
        chain += "exit\n";
    }
    let msg = rejects(&chain, Rule::CallGraph, 14);
    assert!(msg.contains("9 frames"), "{msg}");
    let stacks = |b: u32| format!(".stack 256\nr0 = 0\ncall f\nexit\n.stack {b}\nf:\nr0 = 0\nexit\n");
    accepts(&stacks(256));
    rejects(&stacks(264), Rule::CallGraph, 1);
    let tail =
        ".map m 1\n.stack 256\ncall f\nexit\nf:\nr2 = m ll\nr3 = 0\ncall bpf_tail_call\nr0 = 0\nexit\n";
    rejects(tail, Rule::CallGraph, 0);
}

#[test]
fn loops_of_any_shape_are_accepted() {
    // The generator's counted form.
    accepts("r0 = 0\nr7 = 3\nl:\nr0 += 1\nr7 -= 1\nif r7 != 0 goto l\nexit\n");
    // What compilers emit: a counter compared with a bound, JMP32, signed, `<`.
    accepts("r0 = 0\nl:\nr0 += 1\nif r0 != 10 goto l\nexit\n");
    accepts("w0 = 0\nl:\nw0 += 3\nif w0 s< 100 goto l\nexit\n");
    accepts("r0 = 0\nr2 = 0\nl:\nr0 += r2\nr2 += 1\nif r2 < 16 goto l\nexit\n");
    // A bound from the context, and an early exit out of the loop.
    accepts(
        "r2 = *(u32 *)(r1 + 0)\nr0 = 0\nl:\nif r0 > 1000 goto out\nr0 += 1\nif r0 < r2 goto l\nout:\nexit\n",
    );
    // An endless loop is safe: the engines' budgets decide (the kernel would refuse this
    // one as an infinite loop, but a program that never ends is never compared).
    accepts("r0 = 0\nl:\ngoto l\n");
    // A backward jump that closes no cycle is no loop: here both go back to an `exit`.
    accepts("goto start\nout:\nexit\nstart:\nr0 = 2\nr2 = *(u64 *)(r1 + 0)\nif r2 == 0 goto out\nr0 = 3\ngoto out\n");
    // Nested loops; the fixpoint keeps what every path writes on the stack.
    accepts(
        "r0 = 0\nr7 = 2\nl:\nr8 = 3\nm:\n*(u64 *)(r10 - 8) = r0\nr0 += 1\nr8 -= 1\nif r8 != 0 goto m\n\
         r7 -= 1\nif r7 != 0 goto l\nr0 = *(u64 *)(r10 - 8)\nexit\n",
    );
    // The body is checked on every iteration: a counter indexes the stack within bounds...
    accepts(
        "*(u64 *)(r10 - 8) = 0\n*(u64 *)(r10 - 16) = 0\nr2 = 0\nr0 = 0\nl:\nr3 = r10\nr3 += -16\nr3 += r2\n\
         r4 = *(u8 *)(r3 + 0)\nr0 += r4\nr2 += 1\nif r2 < 16 goto l\nexit\n",
    );
    // ...and out of them one step too far.
    rejects(
        "*(u64 *)(r10 - 8) = 0\n*(u64 *)(r10 - 16) = 0\nr2 = 0\nr0 = 0\nl:\nr3 = r10\nr3 += -16\nr3 += r2\n\
         r4 = *(u8 *)(r3 + 0)\nr0 += r4\nr2 += 1\nif r2 <= 16 goto l\nexit\n",
        Rule::StackBounds,
        7,
    );
    // A pointer that moves in step with the counter, as clang compiles `p++` in a loop:
    // each iteration is walked on its own, so the pointer's offset is known in each, up to
    // ctx[0] & 15 + 1 bytes into the 64-byte context...
    let walk = |mask: u8| {
        format!(
            "r2 = *(u8 *)(r1 + 0)\nr2 &= {mask}\nr0 = 0\nif r2 == 0 goto out\nr3 = r1\nr3 += 1\nr4 = 0\n\
             l:\nr5 = *(u8 *)(r3 + 0)\nr0 += r5\nr3 += 1\nr4 += 1\nif r4 < r2 goto l\nout:\nexit\n"
        )
    };
    accepts(&walk(15));
    // ...and past it when the count may reach 64.
    rejects(&walk(127), Rule::CtxBounds, 7);
    // A register defined only after the first iteration is undefined on the first.
    rejects("r7 = 3\nl:\nr0 = r6\nr6 = 1\nr7 -= 1\nif r7 != 0 goto l\nexit\n", Rule::UninitRegister, 1);
}

#[test]
fn constants_and_ranges() {
    // Pointer plus a register known to be a constant on every path.
    accepts("*(u64 *)(r10 - 8) = 7\nr2 = -8\nr3 = r10\nr3 += r2\nr0 = *(u64 *)(r3 + 0)\nexit\n");
    accepts("r2 = 8\nr1 += r2\nr0 = *(u64 *)(r1 + 0)\nexit\n");
    // A variable offset, bounded by a mask or a comparison, within the map value...
    let lookup = format!("{LOOKUP}if r0 == 0 goto out\nr2 = *(u64 *)(r1 + 0)\n");
    let lookup = lookup
        .replace("r1 = arr ll", "r6 = r1\nr1 = arr ll")
        .replace("r2 = *(u64 *)(r1 + 0)", "r2 = *(u64 *)(r6 + 0)");
    accepts(&format!("{lookup}r2 &= 7\nr0 += r2\nr0 = *(u64 *)(r0 + 0)\nout:\nr0 = 0\nexit\n"));
    accepts(&format!("{lookup}if r2 > 8 goto out\nr0 += r2\nr0 = *(u64 *)(r0 + 0)\nout:\nr0 = 0\nexit\n"));
    // ...and past it for the largest value.
    rejects(
        &format!("{lookup}if r2 > 9 goto out\nr0 += r2\nr0 = *(u64 *)(r0 + 0)\nout:\nr0 = 0\nexit\n"),
        Rule::MapValueBounds,
        11,
    );
    // Unbounded: the kernel refuses the arithmetic itself.
    rejects(&format!("{lookup}r0 += r2\nout:\nr0 = 0\nexit\n"), Rule::PointerArithmetic, 9);
    // jitdiff's context is a buffer (the kernel engines pass it as a map value): a variable
    // offset is fine within its 64 bytes, for every value the offset may take.
    accepts("r2 = *(u32 *)(r1 + 0)\nr2 &= 8\nr1 += r2\nr0 = *(u64 *)(r1 + 0)\nexit\n");
    rejects("r2 = *(u32 *)(r1 + 0)\nr2 &= 63\nr1 += r2\nr0 = *(u64 *)(r1 + 0)\nexit\n", Rule::CtxBounds, 3);
    // A branch the constants decide is the only one taken: the kernel never looks at
    // the other, so what it would do does not matter.
    accepts("r2 = 1\nif r2 == 1 goto +1\nr0 = *(u64 *)(r2 + 0)\nr0 = 0\nexit\n");
    rejects("r2 = 1\nif r2 == 2 goto +1\nr0 = *(u64 *)(r2 + 0)\nr0 = 0\nexit\n", Rule::BadMemoryBase, 2);
}

#[test]
fn caller_stack_pointers_and_subprogram_returns() {
    // A callee writes through a pointer to its caller's stack; the caller reads it back.
    accepts(
        "r1 = r10\nr1 += -8\ncall set\nr0 = *(u64 *)(r10 - 8)\nexit\n\
         set:\n*(u64 *)(r1 + 0) = 42\nr0 = 0\nexit\n",
    );
    // A callee reads what its caller wrote, two frames down.
    accepts(
        "*(u64 *)(r10 - 8) = 1\nr1 = r10\nr1 += -8\ncall f\nexit\n\
         f:\ncall g\nexit\ng:\nr0 = *(u64 *)(r1 + 0)\nexit\n",
    );
    // But not what it did not write, nor past the caller's stack.
    rejects("r1 = r10\nr1 += -8\ncall get\nexit\nget:\nr0 = *(u64 *)(r1 + 0)\nexit\n", Rule::UninitStack, 4);
    rejects(
        ".stack 8\n*(u64 *)(r10 - 8) = 1\nr1 = r10\nr1 += -8\ncall get\nexit\nget:\nr0 = *(u64 *)(r1 - 8)\nexit\n",
        Rule::StackBounds,
        5,
    );
    // A callee that writes through the pointer on one path only leaves the bytes
    // unwritten for the caller.
    rejects(
        "r1 = r10\nr1 += -8\ncall set\nr0 = *(u64 *)(r10 - 8)\nexit\n\
         set:\nr0 = 0\nif r1 == 0 goto +1\n*(u64 *)(r1 + 0) = 42\nexit\n",
        Rule::PointerComparison,
        6,
    );
    rejects(
        "r2 = *(u64 *)(r1 + 8)\nr1 = r10\nr1 += -8\ncall set\nr0 = *(u64 *)(r10 - 8)\nexit\n\
         set:\nr0 = 0\nif r2 == 0 goto +1\n*(u64 *)(r1 + 0) = 42\nexit\n",
        Rule::UninitStack,
        4,
    );
    // A subprogram may exit with R0 undefined (a void function); its caller's R0 is then
    // undefined, which matters only if the caller reads it.
    accepts("call f\nr0 = 1\nexit\nf:\nexit\n");
    let msg = rejects("call f\nexit\nf:\nexit\n", Rule::UninitRegister, 1);
    assert!(msg.contains("the subprogram called at pc 0 can exit with r0 undefined"), "{msg}");
    // A subprogram may return a pointer, but not into its own stack.
    accepts("r6 = r1\ncall f\nr0 = *(u64 *)(r0 + 0)\nexit\nf:\nr0 = r1\nexit\n");
    rejects("call f\nr0 = 0\nexit\nf:\nr0 = r10\nexit\n", Rule::PointerReturn, 4);
}

#[test]
fn stack_depths_follow_the_accesses() {
    let depths = |text: &str| {
        let set = crate::asm::parse_set(text).unwrap().set;
        stack_depths(&set, 0, Some(64)).unwrap()
    };
    // A pointer moved away from r10 is followed; the depth is the deepest byte, rounded
    // up to 8.
    assert_eq!(depths("r2 = r10\nr2 += -20\n*(u32 *)(r2 + 0) = 1\nr0 = 0\nexit\n"), [24]);
    // A callee's accesses through its caller's pointer count for the caller.
    assert_eq!(
        depths("r1 = r10\nr1 += -8\ncall f\nr0 = 0\nexit\nf:\n*(u64 *)(r1 - 8) = 1\n*(u64 *)(r10 - 8) = 2\nexit\n"),
        [16, 8]
    );
    // A variable offset counts with its lowest value.
    assert_eq!(
        depths("r2 = *(u32 *)(r1 + 0)\nr2 &= 31\nr3 = r10\nr3 += -40\nr3 += r2\n*(u8 *)(r3 + 0) = 1\nr0 = 0\nexit\n"),
        [40]
    );
}

#[test]
fn immediates() {
    rejects("r0 = 1\nr0 /= 0\nexit\n", Rule::BadImmediate, 1);
    rejects("w0 = 1\nw0 <<= 32\nexit\n", Rule::BadImmediate, 1);
    accepts("r0 = 1\nr0 <<= 63\nexit\n");
}

#[test]
fn the_corpus_validates() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus");
    let mut n = 0;
    for dir in ["tailcalls", "examples"] {
        let mut paths: Vec<_> =
            std::fs::read_dir(root.join(dir)).unwrap().map(|e| e.unwrap().path()).collect();
        paths.sort();
        for path in paths.into_iter().filter(|p| p.extension().is_some_and(|e| e == "s")) {
            let file = crate::load::load_set_file(&path).unwrap();
            let ctx = file.ctx.and_then(|i| i.ctx).map(|c| c.len());
            if let Err(e) = validate(&file.set, ctx) {
                panic!("{}: {e}", path.display());
            }
            n += 1;
        }
    }
    assert!(n >= 18, "{n} corpus files");
}

#[test]
fn context_in_r1_follows_the_context_through_moves_and_calls() {
    let text = "r6 = r1\ncall with_ctx\nr1 = 5\ncall with_ctx\nr1 = r6\nr1 += 8\nexit\n\
                with_ctx:\nr0 = 0\nexit\n";
    let file = crate::asm::parse_set(text).unwrap();
    let ctx = context_in_r1(&file.set, 0, Some(64)).unwrap();
    // r6 = r1 | call (r1 the context) | r1 = 5 | call (a scalar) | r1 = r6 | r1 += 8 |
    // exit (the context + 8) | the callee's two instructions (one caller passes a scalar).
    assert_eq!(ctx, [true, true, false, false, false, true, false, false, false]);
    // A call the constants never reach passes nothing: it counts as passing the context.
    let dead = "r0 = 0\nr2 = 1\nif r2 == 1 goto +2\nr1 = 5\ncall with_ctx\nexit\nwith_ctx:\nr0 = r1\nexit\n";
    let file = crate::asm::parse_set(dead).unwrap();
    let ctx = context_in_r1(&file.set, 0, Some(64)).unwrap();
    assert!(ctx[3] && ctx[4], "{ctx:?}");
    let bad = crate::asm::parse_set("r0 = *(u64 *)(r1 + 64)\nexit\n").unwrap();
    assert_eq!(context_in_r1(&bad.set, 0, Some(64)).unwrap_err().rule, Rule::CtxBounds);
}

#[test]
fn random_programs_never_panic_the_validator() {
    // Programs of random instructions (any registers, offsets, immediates at the edges,
    // backward and forward jumps, calls, map and map-value references): the validator
    // accepts or refuses each, and never panics.
    use crate::insn::{AluOp, AtomicOp, ByteOrder, Cond, Operand, Reg, Size, SxBits, Width};
    use crate::set::{map_value_imm, ArrayMap, ProgArray, PSEUDO_MAP_VALUE};
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n.max(1)
    };
    let edges =
        [0i64, 1, -1, 7, 8, -8, 63, 64, 511, -512, i32::MAX as i64, i32::MIN as i64, i64::MAX, i64::MIN];
    let (mut accepted, mut refused) = (0, 0);
    for _ in 0..3000 {
        let len = 2 + next(40) as usize;
        let mut insns = Vec::with_capacity(len);
        for i in 0..len {
            let reg = |v: u64| Reg::ALL[v as usize % 11];
            let (d, s) = (reg(next(11)), reg(next(11)));
            let imm = edges[next(edges.len() as u64) as usize] as i32;
            let off = edges[next(edges.len() as u64) as usize] as i16;
            let jump = next(len as u64) as i64 - i as i64 - 1;
            let width = if next(2) == 0 { Width::W32 } else { Width::W64 };
            insns.push(match next(16) {
                0 => Insn::Alu { width, op: AluOp::ALL[next(14) as usize], dst: d, src: Operand::Imm(imm) },
                1 => Insn::Alu { width, op: AluOp::ALL[next(14) as usize], dst: d, src: Operand::Reg(s) },
                2 => Insn::Jmp {
                    width,
                    cond: Cond::ALL[next(11) as usize],
                    dst: d,
                    src: Operand::Imm(imm),
                    off: jump as i16,
                },
                3 => Insn::Jmp {
                    width,
                    cond: Cond::ALL[next(11) as usize],
                    dst: d,
                    src: Operand::Reg(s),
                    off: jump as i16,
                },
                4 => Insn::Load {
                    size: Size::ALL[next(4) as usize],
                    signed: next(3) == 0,
                    dst: d,
                    src: s,
                    off,
                },
                5 => Insn::Store { size: Size::ALL[next(4) as usize], dst: d, src: s, off },
                6 => Insn::StoreImm { size: Size::ALL[next(4) as usize], dst: d, off, imm },
                7 => {
                    Insn::Atomic { size: Size::DW, op: AtomicOp::ALL[next(10) as usize], dst: d, src: s, off }
                }
                8 => Insn::Call(Call::Local(jump as i32)),
                9 => Insn::Call(Call::Helper(next(14) as i32)),
                10 => Insn::LdImm64 { dst: d, pseudo: 1, imm: next(2) },
                11 => {
                    Insn::LdImm64 { dst: d, pseudo: PSEUDO_MAP_VALUE, imm: map_value_imm(1, next(16) as u32) }
                }
                12 => Insn::Neg { width, dst: d },
                13 => Insn::End { order: ByteOrder::Be, bits: [16, 32, 64][next(3) as usize], dst: d },
                14 => Insn::MovSx { width: Width::W64, from: SxBits::S16, dst: d, src: s },
                _ => Insn::Exit,
            });
        }
        insns.push(Insn::Exit);
        let Ok(prog) = Program::new(insns) else { continue };
        let progs = vec![crate::set::SetProgram { name: "p".into(), prog }];
        let maps = vec![ProgArray { name: "m".into(), slots: vec![Some(0)] }];
        let arrays = vec![ArrayMap::zeroed("a", 16, 1)];
        let Ok(set) = ProgramSet::with_arrays(progs, maps, arrays) else { continue };
        for ctx in [Some(64), None] {
            match validate(&set, ctx) {
                Ok(()) => accepted += 1,
                Err(_) => refused += 1,
            }
            let _ = stack_depths(&set, 0, ctx);
            let _ = context_in_r1(&set, 0, ctx);
        }
    }
    assert!(accepted > 0 && refused > 1000, "{accepted} accepted, {refused} refused");
}

/// The `struct __sk_buff` rules of Linux 6.12 and 7.3 (`tc_cls_act_is_valid_access`,
/// `sk_filter_is_valid_access`, `bpf_skb_is_valid_access`): which fields each type may
/// read and write, at which sizes.
#[test]
fn sk_buff_fields() {
    let tc = |body: &str| format!(".progtype tc\n{body}");
    let socket = |body: &str| format!(".progtype socket\n{body}");
    // len, whole and narrow (a byte of it, a half at offset 2); napi_id; gso_size.
    accepts(&tc("r0 = *(u32 *)(r1 + 0)\nr0 = *(u8 *)(r1 + 1)\nr0 = *(u16 *)(r1 + 2)\nexit\n"));
    accepts(&socket("r0 = *(u32 *)(r1 + 84)\nr0 = *(u32 *)(r1 + 176)\nexit\n"));
    // 8 bytes of a 4-byte field; a misaligned half.
    rejects(&tc("r0 = *(u64 *)(r1 + 0)\nexit\n"), Rule::CtxBounds, 0);
    rejects(&tc("r0 = *(u16 *)(r1 + 1)\nexit\n"), Rule::CtxBounds, 0);
    // Past the struct, and through a moved context pointer.
    rejects(&tc("r0 = *(u32 *)(r1 + 192)\nexit\n"), Rule::CtxBounds, 0);
    let msg = rejects(&tc("r1 += 4\nr0 = *(u32 *)(r1 + 0)\nexit\n"), Rule::CtxBounds, 1);
    assert!(msg.contains("dereference of modified ctx ptr"), "{msg}");
    // Writes: tc may write mark, priority and cb; nobody writes len; cb at any size.
    accepts(&tc(
        "*(u32 *)(r1 + 8) = 7\nr2 = 1\n*(u32 *)(r1 + 32) = r2\n*(u8 *)(r1 + 67) = 1\nr0 = 0\nexit\n",
    ));
    rejects(&tc("*(u32 *)(r1 + 0) = 1\nr0 = 0\nexit\n"), Rule::CtxBounds, 0);
    rejects(&tc("*(u16 *)(r1 + 8) = 1\nr0 = 0\nexit\n"), Rule::CtxBounds, 0);
    // cb[4]'s last byte, then past it.
    accepts(&socket("*(u32 *)(r1 + 64) = 1\nr0 = 0\nexit\n"));
    rejects(&socket("*(u64 *)(r1 + 64) = 1\nr0 = 0\nexit\n"), Rule::CtxBounds, 0);
    // A socket filter writes only cb, and reads neither tc_classid nor data.
    rejects(&socket("*(u32 *)(r1 + 8) = 1\nr0 = 0\nexit\n"), Rule::CtxBounds, 0);
    rejects(&socket("r0 = *(u32 *)(r1 + 72)\nexit\n"), Rule::CtxBounds, 0);
    rejects(&socket("r0 = *(u32 *)(r1 + 76)\nexit\n"), Rule::CtxBounds, 0);
    // The socket fields (family to local_port) are sk_skb's.
    rejects(&tc("r0 = *(u32 *)(r1 + 88)\nexit\n"), Rule::CtxBounds, 0);
    // data and data_end whole only; atomics on the context never.
    rejects(&tc("r0 = *(u16 *)(r1 + 76)\nexit\n"), Rule::CtxBounds, 0);
    rejects(&tc("r2 = 1\nlock *(u32 *)(r1 + 8) += r2\nr0 = 0\nexit\n"), Rule::BadMemoryBase, 1);
    // What the kernel allows and jitdiff does not model is named as such.
    let msg = rejects(&tc("*(u32 *)(r1 + 44) = 1\nr0 = 0\nexit\n"), Rule::Unsupported, 0);
    assert!(msg.contains("tc_index"), "{msg}");
    rejects(&tc("r0 = *(u64 *)(r1 + 168)\nexit\n"), Rule::Unsupported, 0);
    rejects(&tc("r0 = *(u32 *)(r1 + 140)\nexit\n"), Rule::Unsupported, 0);
}

/// Direct packet access: the bytes a comparison with `data_end` proves to be in the packet
/// (Linux 7.3's `find_good_pkt_pointers`), shared by the pointers moved from `data` by
/// constants.
#[test]
fn packet_access() {
    let checked = |cond: &str, access: &str| {
        format!(
            ".progtype tc\nr2 = *(u32 *)(r1 + 76)\nr3 = *(u32 *)(r1 + 80)\nr4 = r2\nr4 += 14\n{cond}\n\
             {access}\nexit\nr0 = 0\nexit\n"
        )
    };
    // data + 14 > data_end goes out: 14 bytes are known (pc 4 is the jump).
    accepts(&checked("if r4 > r3 goto +2", "r0 = *(u8 *)(r2 + 13)"));
    accepts(&checked("if r4 > r3 goto +2", "r0 = *(u32 *)(r4 - 4)"));
    let msg = rejects(&checked("if r4 > r3 goto +2", "r0 = *(u8 *)(r2 + 14)"), Rule::PacketBounds, 5);
    assert!(msg.contains("invalid access to packet"), "{msg}");
    // data_end < data + 14 goes out: the same.
    accepts(&checked("if r3 < r4 goto +2", "r0 = *(u16 *)(r2 + 12)"));
    // data + 14 >= data_end goes out: data + 14 is below the end, so 15 bytes are known.
    accepts(&checked("if r4 >= r3 goto +2", "r0 = *(u8 *)(r2 + 14)"));
    rejects(&checked("if r4 >= r3 goto +2", "r0 = *(u8 *)(r2 + 15)"), Rule::PacketBounds, 5);
    // The way in: data + 14 <= data_end is taken to the access.
    let taken = ".progtype tc\nr2 = *(u32 *)(r1 + 76)\nr3 = *(u32 *)(r1 + 80)\nr4 = r2\nr4 += 14\n\
                 if r4 <= r3 goto +2\nr0 = 0\nexit\nr0 = *(u32 *)(r2 + 10)\nexit\n";
    accepts(taken);
    // Unchecked; the wrong way; the end moved.
    rejects(&checked("r5 = 0", "r0 = *(u8 *)(r2 + 0)"), Rule::PacketBounds, 5);
    rejects(&checked("if r4 <= r3 goto +2", "r0 = *(u8 *)(r2 + 0)"), Rule::PacketBounds, 5);
    rejects(&checked("r3 += 1", "r0 = 0"), Rule::PointerArithmetic, 4);
    // A variable offset: the pointer moved by it gets its own id, and its own check.
    let var = |access: &str| {
        format!(
            ".progtype tc\nr2 = *(u32 *)(r1 + 76)\nr3 = *(u32 *)(r1 + 80)\nr4 = r2\nr4 += 14\n\
             if r4 > r3 goto +9\nr5 = *(u8 *)(r2 + 0)\nr5 &= 7\nr6 = r2\nr6 += r5\nr7 = r6\nr7 += 4\n\
             if r7 > r3 goto +2\n{access}\nexit\nr0 = 0\nexit\n"
        )
    };
    accepts(&var("r0 = *(u32 *)(r6 + 0)"));
    rejects(&var("r0 = *(u32 *)(r6 + 1)"), Rule::PacketBounds, 12);
    // r2's id learned nothing from r7's check: only 14 bytes from data.
    accepts(&var("r0 = *(u8 *)(r2 + 13)"));
    rejects(&var("r0 = *(u8 *)(r2 + 14)"), Rule::PacketBounds, 12);
    // Writes through a checked pointer; never atomics, pointers, or a returned pointer.
    accepts(&checked("if r4 > r3 goto +3", "*(u8 *)(r2 + 0) = 1\nr0 = 0"));
    rejects(&checked("if r4 > r3 goto +3", "r5 = 1\nlock *(u32 *)(r2 + 0) += r5"), Rule::BadMemoryBase, 6);
    rejects(&checked("if r4 > r3 goto +2", "*(u64 *)(r10 - 8) = r2"), Rule::PointerStore, 5);
    rejects(&checked("if r4 > r3 goto +2", "r0 = r2"), Rule::PointerReturn, 6);
    // A packet pointer compared with a scalar: its value is an engine's own address.
    rejects(&checked("if r4 > 1000 goto +2", "r0 = 0"), Rule::PointerComparison, 4);
}

#[test]
fn strtoul_reads_written_bytes_of_a_constant_length_and_writes_eight() {
    // "12" on the stack, the result 8 bytes below: R0 and the result readable after
    let ok = "*(u16 *)(r10 - 8) = 12849\nr1 = r10\nr1 += -8\nr2 = 2\nr3 = 0\nr4 = r10\nr4 += -16\n\
              call 106\nr0 = *(u64 *)(r10 - 16)\nexit\n";
    accepts(ok);
    // a length the text's written bytes do not cover
    let unwritten = ok.replace("r2 = 2", "r2 = 4");
    rejects(&unwritten, Rule::UninitStack, 7);
    // a length that is not a constant, or is 0
    rejects(&ok.replace("r2 = 2", "r2 = *(u8 *)(r10 - 8)"), Rule::HelperArgument, 7);
    rejects(&ok.replace("r2 = 2", "r2 = 0"), Rule::HelperArgument, 7);
    // the result must go to 8 aligned bytes through a pointer
    rejects(&ok.replace("r4 += -16", "r4 += -12"), Rule::MisalignedAtomic, 7);
    rejects(&ok.replace("r4 = r10\nr4 += -16", "r4 = 16"), Rule::HelperArgument, 6);
    // R1-R5 are gone after the call
    rejects(&ok.replace("r0 = *(u64 *)(r10 - 16)", "r0 = r4"), Rule::UninitRegister, 8);
}
