//! Arbitrary bytes into every input parser: text assembly (programs and sets), raw
//! bytecode and ELF, and what loads into the validator. Errors are fine; panics are bugs.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = bpf::decode_bytes(data);
    let _ = bpf::elf::load_elf(data);
    let _ = bpf::elf::load_elf_set(data);
    for name in ["input", "input.bin"] {
        if let Ok(f) = bpf::load::load_set_bytes(name, data) {
            let _ = bpf::validate::validate(&f.set, Some(64));
            let _ = bpf::validate::validate(&f.set, None);
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = bpf::asm::parse(text);
        let _ = bpf::asm::parse_set(text);
    }
});
