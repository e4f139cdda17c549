//! Everything on every engine: a generated program set on the reference interpreter,
//! rbpf and the JIT (register scheme); any disagreement panics with its class.
#![no_main]

use std::cell::RefCell;

use libfuzzer_sys::fuzz_target;
use compare::engines::{Engines, ALL};

thread_local! {
    static ENGINES: RefCell<Engines> = RefCell::new(Engines::new(&ALL));
}

fuzz_target!(|data: &[u8]| {
    let Some(g) = generator::input::generate_from(data) else { return };
    ENGINES.with(|e| {
        let results = e.borrow_mut().run_set(&g.set, &g.input);
        triage::report::panic_on_mismatch(&results, &g.set, &g.input);
    });
});
