//! Call- and tail-call-heavy program sets; each TCC scheme against the count semantics
//! it claims: `register`, `pointer` and `writeback` against `global`, `stack` against
//! `per-frame`.
#![no_main]

use std::cell::RefCell;

use arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use oracle::reference::TailCallSemantics;
use compare::engines::{Engines, Options};

thread_local! {
    static ENGINES: RefCell<Vec<Engines>> = RefCell::new(
        [
            (jit::Scheme::Register, TailCallSemantics::Global),
            (jit::Scheme::Pointer, TailCallSemantics::Global),
            (jit::Scheme::Writeback, TailCallSemantics::Global),
            (jit::Scheme::Stack, TailCallSemantics::PerFrame),
        ]
        .into_iter()
        .map(|(scheme, semantics)| {
            Engines::with_options(&["reference", "jit"], &Options { scheme, semantics, budget: Some(300_000), ..Options::default() })
        })
        .collect()
    );
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(mut cfg) = u.arbitrary::<generator::Config>() else { return };
    cfg.calls_enabled = true;
    cfg.tail_calls_enabled = true;
    cfg.max_progs = cfg.max_progs.max(2);
    let Ok(g) = generator::generate(&cfg, &mut u) else { return };
    ENGINES.with(|all| {
        for engines in all.borrow_mut().iter_mut() {
            let results = engines.run_set(&g.set, &g.input);
            triage::report::panic_on_mismatch(&results, &g.set, &g.input);
        }
    });
});
