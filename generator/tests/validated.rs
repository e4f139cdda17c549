//! Every set the generator makes passes the validator (the kernel verifier's rules), and
//! the shapes it is for turn up: loops, map lookups, tail calls, bpf2bpf calls.

use arbitrary::{Arbitrary, Unstructured};
use bpf::helpers::{MAP_LOOKUP_ELEM, TAIL_CALL};
use bpf::validate::validate;
use bpf::{Call, Insn};
use generator::{generate, Config};

#[test]
fn generated_sets_validate() {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut generated = 0;
    // Sets with loops, lookups, tail calls, bpf2bpf calls.
    let mut seen = [0usize; 4];
    for k in 0..500 {
        let bytes: Vec<u8> = (0..8192)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let mut u = Unstructured::new(&bytes);
        let Ok(cfg) = Config::arbitrary(&mut u) else { continue };
        let Ok(g) = generate(&cfg, &mut u) else { continue };
        generated += 1;
        let insns = || g.set.progs().iter().flat_map(|p| p.prog.insns().iter());
        for (k, f) in [
            |i: &Insn| i.jump_offset().is_some_and(|o| o < 0),
            |i: &Insn| *i == Insn::Call(Call::Helper(MAP_LOOKUP_ELEM)),
            |i: &Insn| *i == Insn::Call(Call::Helper(TAIL_CALL)),
            |i: &Insn| matches!(i, Insn::Call(Call::Local(_))),
        ]
        .into_iter()
        .enumerate()
        {
            seen[k] += insns().any(f) as usize;
        }
        let ctx = g.input.ctx.as_ref().map(Vec::len);
        if let Err(e) = validate(&g.set, ctx) {
            panic!("set {k}: {e}\n{}", bpf::asm::print_set(&g.set, Some(&g.input)));
        }
    }
    assert!(generated >= 450, "only {generated} of 500 inputs generated a set");
    assert!(seen.iter().all(|&n| n >= 20), "sets with loops, lookups, tail calls, calls: {seen:?}");
}
