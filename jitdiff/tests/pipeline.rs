//! Sets announced to the kernel engines ahead of their turn (the fuzz driver's pipeline)
//! get the same results as sets run one at a time: in order, with a set announced and
//! never run, and with a set run that was never announced.

use bpf::{Input, ProgramSet};
use compare::engines::Engines;
use generator::input::{generate_for, KernelTarget, Rng};

mod common;

/// `n` generated sets for a Linux 7.3 session, each with two inputs.
fn sets(n: usize) -> Vec<(ProgramSet, Vec<Input>)> {
    let mut rng = Rng::new(77);
    let mut bytes = vec![0u8; 4096];
    let mut out = Vec::new();
    while out.len() < n {
        rng.fill(&mut bytes);
        let Some(g) = generate_for(&bytes, KernelTarget::Mixing) else { continue };
        let other = generator::input::vary(&g.input, g.set.prog_type(), &mut rng);
        out.push((g.set, vec![g.input, other]));
    }
    out
}

/// Every result of `set` on `inputs`, after `prepare`.
fn results(engines: &mut Engines, set: &ProgramSet, inputs: &[Input]) -> Vec<Vec<bpf::RunResult>> {
    engines.prepare(set, inputs);
    inputs.iter().map(|i| engines.run_set(set, i).into_iter().map(|r| r.result).collect()).collect()
}

#[test]
fn announced_sets_get_the_results_of_sets_run_one_at_a_time() {
    let names = ["reference", "kernel-jit", "kernel-interp"];
    let Some(mut alone) = common::kernel_engines("7.3", &names) else { return };
    let Some(mut piped) = common::kernel_engines("7.3", &names) else { return };
    let sets = sets(6);
    let want: Vec<_> = sets.iter().map(|(s, i)| results(&mut alone, s, i)).collect();
    // 0 and 1 announced, 0 run; 2 announced; 1 run; 2 never run; 3 run unannounced while
    // 4 is announced; 4 and 5 (announced late) run.
    piped.announce(&sets[0].0, &sets[0].1);
    piped.announce(&sets[1].0, &sets[1].1);
    assert_eq!(results(&mut piped, &sets[0].0, &sets[0].1), want[0]);
    piped.announce(&sets[2].0, &sets[2].1);
    assert_eq!(results(&mut piped, &sets[1].0, &sets[1].1), want[1]);
    piped.announce(&sets[4].0, &sets[4].1);
    assert_eq!(results(&mut piped, &sets[3].0, &sets[3].1), want[3]);
    assert_eq!(results(&mut piped, &sets[4].0, &sets[4].1), want[4]);
    piped.announce(&sets[5].0, &sets[5].1);
    assert_eq!(results(&mut piped, &sets[5].0, &sets[5].1), want[5]);
    // The kernel engines ran them all (the sets are valid and most load).
    let ran = want.iter().flatten().flatten().filter(|r| matches!(r, bpf::RunResult::Ran(_))).count();
    assert!(ran >= 12, "{ran} runs");
}
