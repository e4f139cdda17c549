//! Branches at the edge of their encodings' reach: a loop's backward branch and a forward
//! jump placed in 4-byte steps around the B-type format's -4096/+4094 bytes, measured as
//! branch relaxation sees them and run. Expected values follow from the program text.

use bpf::{Engine, Input, ProgramSet, RunResult};
use jit::compile::compile_set;
use jit::{Bug, Bugs, Jit, Scheme};

/// `r0 = 0; r7 = 2; loop: pad x (r0 += 1); r7 -= 1; if r7 != 0 goto loop; exit`: two
/// iterations, R0 = 2 * pad.
fn padded_loop(pad: usize) -> ProgramSet {
    let text = format!("r0 = 0\nr7 = 2\nl:\n{}r7 -= 1\nif r7 != 0 goto l\nexit\n", "r0 += 1\n".repeat(pad));
    bpf::asm::parse_set(&text).unwrap().set
}

/// `r0 = 5; if r1 != 0 goto +pad; pad x (r0 += 1); exit` with R1 the context pointer
/// (never 0): R0 = 5.
fn padded_skip(pad: usize) -> ProgramSet {
    let text = format!("r0 = 5\nif r1 != 0 goto +{pad}\n{}exit\n", "r0 += 1\n".repeat(pad));
    bpf::asm::parse_set(&text).unwrap().set
}

fn r0(jit: &mut Jit, set: &ProgramSet) -> Result<u64, bpf::Fault> {
    match jit.run_set(set, &Input::with_ctx(vec![0; 8])) {
        RunResult::Ran(o) => o.result,
        other => panic!("the JIT did not run it: {other:?}"),
    }
}

#[test]
fn backward_branches_around_the_btype_reach() {
    let mut jit = Jit::new();
    let mut slipped = Jit::new().with_bugs(Bugs::NONE.with(Bug::BranchRelaxThreshold));
    for pad in 1015..=1031 {
        let set = padded_loop(pad);
        let compiled = compile_set(&set, Scheme::Register).unwrap();
        // Each padding instruction is one `addi`, and so is `r7 -= 1`.
        let want = -4 * (pad as i64 + 1);
        assert_eq!(compiled.progs[0].jump_distances(&set.progs()[0].prog), [(true, want)]);
        assert_eq!(r0(&mut jit, &set), Ok(2 * pad as u64), "pad {pad}");
        // The slip keeps the branch one step past the reach short, and only that one.
        if want == -4100 {
            assert_ne!(r0(&mut slipped, &set), Ok(2 * pad as u64), "pad {pad}");
        } else {
            assert_eq!(r0(&mut slipped, &set), Ok(2 * pad as u64), "pad {pad}");
        }
    }
}

#[test]
fn forward_jumps_around_the_btype_reach() {
    let mut jit = Jit::new();
    for pad in 1014..=1030 {
        let set = padded_skip(pad);
        let compiled = compile_set(&set, Scheme::Register).unwrap();
        // The branch and the padding (past +4094 bytes the jump is an inverted branch over
        // a `jal`, 4 bytes longer, which the distance does not count).
        assert_eq!(compiled.progs[0].jump_distances(&set.progs()[0].prog), [(true, 4 * (pad as i64 + 1))]);
        assert_eq!(r0(&mut jit, &set), Ok(5), "pad {pad}");
    }
}
