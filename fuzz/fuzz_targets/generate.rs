//! The generator's own guarantees: the static validator accepts every generated set, it
//! prints as text that parses back to the same set, and the reference interpreter
//! accepts it.
#![no_main]

use std::cell::RefCell;

use libfuzzer_sys::fuzz_target;
use oracle::reference::Reference;

thread_local! {
    static REFERENCE: RefCell<Reference> = RefCell::new(Reference::new());
}

fuzz_target!(|data: &[u8]| {
    let Some(g) = generator::input::generate_from(data) else { return };
    let text = bpf::asm::print_set(&g.set, Some(&g.input));
    let ctx_size = g.input.ctx.as_ref().map_or(0, Vec::len);
    if let Err(e) = bpf::validate::validate(&g.set, Some(ctx_size)) {
        triage::report::generator_invalid(&format!("the validator rejects a generated set: {e}\n{text}"));
    }
    let back = bpf::asm::parse_set(&text).unwrap_or_else(|e| panic!("printed set does not parse: {e}\n{text}"));
    assert_eq!(back.set, g.set, "printing then parsing changed the set:\n{text}");
    assert_eq!(back.ctx.as_ref(), Some(&g.input), "printing then parsing changed the context");
    REFERENCE.with(|r| {
        let res = bpf::Engine::run_set(&mut *r.borrow_mut(), &g.set, &g.input);
        if let bpf::RunResult::Ran(o) = &res {
            if let Err(f) = &o.result {
                if f.kind != bpf::FaultKind::Budget {
                    triage::report::generator_invalid(&format!("{f}\n{text}"));
                }
            }
        }
    });
});
