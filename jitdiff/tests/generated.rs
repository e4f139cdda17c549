//! Generated program sets on every engine: the generator must only produce programs the
//! static validator and the reference accept, and with a correct JIT the engines must
//! agree on every one.

use arbitrary::Unstructured;
use compare::engines::{Engines, ALL};
use compare::{compare, Verdict};
use generator::{generate, Config};

fn bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[test]
fn generated_sets_are_valid_and_agree() {
    let mut engines = Engines::new(&ALL);
    let mut failures = Vec::new();
    let (mut agree, mut inconclusive) = (0, 0);
    for seed in 0..1500u64 {
        let data = bytes(seed, 8192);
        let mut u = Unstructured::new(&data);
        let Ok(cfg) = u.arbitrary::<Config>() else { continue };
        let Ok(g) = generate(&cfg, &mut u) else { continue };
        let ctx_size = g.input.ctx.as_ref().map_or(0, Vec::len);
        if let Err(e) = bpf::validate::validate(&g.set, Some(ctx_size)) {
            failures.push(format!("seed {seed}: the validator rejects it: {e}"));
            continue;
        }
        let results = engines.run_set(&g.set, &g.input);
        match compare(&results) {
            Verdict::Agree => agree += 1,
            Verdict::Inconclusive(_) => inconclusive += 1,
            v => {
                failures.push(format!("seed {seed}: {v:?}\n{}", bpf::asm::print_set(&g.set, Some(&g.input))))
            }
        }
    }
    eprintln!("agree {agree}, inconclusive {inconclusive}, failures {}", failures.len());
    assert!(failures.is_empty(), "{}", failures.iter().take(3).cloned().collect::<Vec<_>>().join("\n\n"));
    assert!(agree > 1000, "only {agree} sets ran to agreement");
}

#[test]
fn fuzzing_reaches_every_call_shape() {
    // What `jitdiff fuzz` prints as its reach, from the swarm configurations fuzzer bytes
    // give, with and without the kernel engines' restrictions (7.x's JIT runs every shape).
    // Chains of eight frames need every function to pass the context on to the next.
    use generator::input::{generate_for, KernelTarget};
    use generator::shapes::{shapes_of, Shape};
    for target in [KernelTarget::None, KernelTarget::Mixing] {
        let mut seen = [0usize; Shape::ALL.len()];
        for seed in 0..20_000u64 {
            let Some(g) = generate_for(&bytes(seed, 4096), target) else { continue };
            for s in shapes_of(&g.set) {
                seen[s as usize] += 1;
            }
        }
        // At least one set in 2,000 has each shape (eight frames, the rarest, about 1 in 600).
        // With kernel engines the generator calls only the kernel's kfuncs (checked in
        // generator); every shape is reached either way.
        let rare: Vec<(&str, usize)> =
            Shape::ALL.iter().map(|s| (s.name(), seen[*s as usize])).filter(|(_, n)| *n < 10).collect();
        assert!(rare.is_empty(), "{target:?}: shapes in fewer than 10 of 20,000 sets: {rare:?}");
    }
}

#[test]
fn traces_of_a_correct_jit_never_diverge() {
    use compare::diverge::{Tracer, What};
    // The first-divergence finder must not invent a divergence: with a correct JIT the
    // reference's and the JIT's traces agree on control flow and every comparable
    // register, to the end of every run.
    let mut tracer = Tracer::new(&compare::engines::Options::default());
    let mut failures = Vec::new();
    let mut traced = 0;
    for seed in 0..1000u64 {
        let data = bytes(seed, 8192);
        let mut u = Unstructured::new(&data);
        let Ok(cfg) = u.arbitrary::<Config>() else { continue };
        let Ok(g) = generate(&cfg, &mut u) else { continue };
        let Some(d) = tracer.first_divergence(&g.set, &g.input) else { continue };
        traced += 1;
        if d.what != What::AtEnd {
            failures.push(format!(
                "seed {seed}: {}\n{}",
                d.describe(&g.set),
                bpf::asm::print_set(&g.set, Some(&g.input))
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.iter().take(3).cloned().collect::<Vec<_>>().join("\n\n"));
    assert!(traced > 800, "only {traced} sets traced");
}
