//! A generator of program sets that are valid by construction, in the manner of
//! wasm-smith: every instruction is chosen among candidates whose preconditions hold in
//! the current abstract state, never generated and then filtered.
//!
//! The abstract state tracks, per register, whether it holds a scalar, the context
//! pointer or nothing the verifier would let a program read, and per stack byte whether
//! it was written. From it follow the rules the kernel's verifier enforces and the
//! reference interpreter checks: every register read is defined; R1-R5 are dead after a
//! call; pointers are never used in arithmetic, compared, stored or returned; memory
//! accesses stay inside the stack, the context or a looked-up map value, aligned, and
//! stack reads only read written bytes; calls form an acyclic graph; each function's
//! stack is at most 64 bytes. Termination holds by construction: jumps go forward, loops
//! count down a register nothing else writes, calls are acyclic, and tail calls stop
//! after 33.
//!
//! # Usage
//! ```
//! use arbitrary::Unstructured;
//! let bytes = [7u8; 512];
//! let mut u = Unstructured::new(&bytes);
//! let g = generator::generate(&generator::Config::default(), &mut u).unwrap();
//! assert!(!g.set.progs().is_empty());
//! ```

mod attach;
mod config;
pub mod forms;
mod func;
pub mod input;
pub mod loops;
pub mod shapes;

use arbitrary::Unstructured;

pub use config::Config;

use bpf::exec::Input;
use bpf::set::{ArrayMap, ProgArray, ProgramSet, SetProgram};

/// A generated program set and the input to run it on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Generated {
    /// The program set.
    pub set: ProgramSet,
    /// Its input (a context of `Config::ctx_size` bytes).
    pub input: Input,
}

/// Edge values for 32-bit immediates.
pub const EDGE_I32: [i32; 16] = [
    0,
    1,
    -1,
    2,
    i32::MAX,
    i32::MIN,
    0x800,
    0x7ff,
    -2048,
    0x7fff_f800,
    0xffff,
    31,
    32,
    63,
    -0x8000_0000 + 1,
    0x1000,
];

/// Edge values for 64-bit immediates.
pub const EDGE_U64: [u64; 14] = [
    0,
    1,
    u64::MAX,
    i64::MAX as u64,
    i64::MIN as u64,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    0x1_0000_0000,
    0xffff_ffff_8000_0000,
    0x7fff_f800,
    0x800,
    0xffff_ffff_ffff_f800,
    0x8000_0000_0000_0800,
];

/// True with probability `num / den`; never consumes bytes when the answer is certain.
fn chance(u: &mut Unstructured<'_>, num: u32, den: u32) -> arbitrary::Result<bool> {
    match num {
        0 => Ok(false),
        n if n >= den => Ok(true),
        n => u.ratio(n, den),
    }
}

/// Generates a program set and its input from fuzzer bytes. Always succeeds while the
/// bytes last; when they run out, open blocks are closed and the set is still valid.
pub fn generate(config: &Config, u: &mut Unstructured<'_>) -> arbitrary::Result<Generated> {
    let cfg = config.clone().sanitize();
    let n_progs = u.int_in_range(1..=cfg.max_progs)?;
    let n_prog_arrays = if cfg.tail_calls_enabled { u.int_in_range(1..=2usize)? } else { 0 };
    let mut maps = Vec::with_capacity(n_prog_arrays);
    for m in 0..n_prog_arrays {
        let entries = u.int_in_range(1..=4usize)?;
        let mut slots = Vec::with_capacity(entries);
        for _ in 0..entries {
            slots.push(if u.ratio(3, 4)? { Some(u.int_in_range(0..=n_progs - 1)?) } else { None });
        }
        maps.push(ProgArray { name: format!("jmp{m}"), slots });
    }
    // Arrays for lookups (a helper) and for global variables (memory).
    let n_arrays = if cfg.arrays_enabled && (cfg.helpers_enabled || cfg.mem_enabled) {
        u.int_in_range(0..=2usize)?
    } else {
        0
    };
    let mut arrays = Vec::with_capacity(n_arrays);
    for a in 0..n_arrays {
        let value_size = 8 << u.int_in_range(0..=2u32)?;
        // Half of them of one value: the kind that holds global variables.
        let entries = if u.ratio(1, 2)? { 1 } else { u.int_in_range(2..=4u32)? };
        let mut map = ArrayMap::zeroed(&format!("arr{a}"), value_size, entries);
        for b in map.values.iter_mut() {
            *b = u.arbitrary()?;
        }
        arrays.push(map);
    }
    let shape = func::Shape {
        prog_arrays: maps.iter().map(|m| m.max_entries()).collect(),
        arrays: arrays.iter().map(|a| (a.value_size, a.max_entries())).collect(),
    };
    let mut progs = Vec::with_capacity(n_progs);
    for p in 0..n_progs {
        let prog = func::program(&cfg, &shape, u)?;
        progs.push(SetProgram { name: if p == 0 { "entry".into() } else { format!("prog{p}") }, prog });
    }
    let set = ProgramSet::with_arrays(progs, maps, arrays)
        .and_then(|s| s.with_prog_type(cfg.prog_type))
        .map_err(|_| arbitrary::Error::IncorrectFormat)?;
    let ctx = if cfg.prog_type.is_skb() {
        packet(cfg.prog_type, u)?
    } else {
        let mut ctx = vec![0u8; cfg.ctx_size as usize];
        for chunk in ctx.chunks_mut(8) {
            let v: u64 =
                if chance(u, cfg.edge_bias as u32, 100)? { *u.choose(&EDGE_U64)? } else { u.arbitrary()? };
            chunk.copy_from_slice(&v.to_le_bytes()[..chunk.len()]);
        }
        ctx
    };
    let set = attach::attach(&cfg, set, u)?;
    Ok(Generated { set, input: Input::with_ctx(ctx) })
}

/// A packet for a `__sk_buff` program: the default IPv4/TCP frame
/// ([`bpf::ProgType::default_input`]) with its bytes after the Ethernet header drawn
/// from the input, and 34 to [`func::MAX_GENERATED_PACKET`] bytes long (the IPv4 header
/// the test run insists on, at least).
fn packet(prog_type: bpf::ProgType, u: &mut Unstructured<'_>) -> arbitrary::Result<Vec<u8>> {
    let mut p = prog_type.default_input();
    p.resize(u.int_in_range(34..=func::MAX_GENERATED_PACKET)?, 0);
    for b in &mut p[14..] {
        if u.ratio(1, 2)? {
            *b = u.arbitrary()?;
        }
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(seed: u64, cfg: &Config) -> Generated {
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let bytes: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        generate(cfg, &mut Unstructured::new(&bytes)).unwrap()
    }

    #[test]
    fn generates_sets_with_calls_tail_calls_and_maps() {
        let cfg = Config::default();
        let sets: Vec<Generated> = (0..200).map(|s| sample(s, &cfg)).collect();
        let calls = |g: &Generated, f: &dyn Fn(&bpf::Insn) -> bool| {
            g.set.progs().iter().any(|p| p.prog.insns().iter().any(f))
        };
        use bpf::{Call, Insn};
        assert!(sets.iter().any(|g| calls(g, &|i| matches!(i, Insn::Call(Call::Local(_))))));
        assert!(sets.iter().any(|g| calls(g, &|i| matches!(i, Insn::Call(Call::Helper(12))))));
        assert!(sets.iter().any(|g| calls(g, &|i| matches!(i, Insn::Call(Call::Helper(1))))));
        assert!(sets.iter().any(|g| g.set.progs().len() > 1));
        let mean: f64 = sets.iter().map(|g| g.set.insn_count() as f64).sum::<f64>() / sets.len() as f64;
        assert!(mean >= 50.0, "mean set size {mean}");
    }

    #[test]
    fn chains_reach_the_frame_limit_within_the_stack_rules() {
        use super::shapes::{shapes_of, Shape};
        let cfg = Config { max_funcs: 8, chain_calls: true, ..Config::default() };
        let sets: Vec<Generated> = (0..100).map(|s| sample(s, &cfg)).collect();
        assert!(sets.iter().any(|g| shapes_of(&g.set).contains(&Shape::EightFrames)));
        for g in &sets {
            let ctx = g.input.ctx.as_ref().map(Vec::len);
            if let Err(e) = bpf::validate::validate(&g.set, ctx) {
                panic!("{e}\n{}", bpf::asm::print_set(&g.set, Some(&g.input)));
            }
        }
    }

    #[test]
    fn the_entry_counter_starts_every_program_and_its_word_is_left_alone() {
        use bpf::{Insn, Reg, Size};
        let cfg = Config { count_entries: true, kernel_helpers: true, ..Config::default() }.sanitize();
        for seed in 0..200 {
            let g = sample(seed, &cfg);
            let ctx = g.input.ctx.as_ref().map_or(0, Vec::len);
            assert!(ctx >= 16, "seed {seed}: a context of {ctx} bytes");
            bpf::validate::validate(&g.set, Some(ctx)).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
            for p in g.set.progs() {
                let insns = p.prog.insns();
                assert_eq!(
                    insns[0],
                    Insn::Load { size: Size::DW, signed: false, dst: Reg::R0, src: Reg::R1, off: 0 }
                );
                assert_eq!(insns[2], Insn::Store { size: Size::DW, dst: Reg::R1, src: Reg::R0, off: 0 });
                // (That nothing else touches the counter's word is checked where it matters:
                // jitdiff/tests/kernel.rs compares the counted tail calls with the reference's.)
                // Only the helpers and kfuncs a kernel has.
                assert!(insns.iter().all(|i| !matches!(i, Insn::Call(bpf::Call::Helper(h))
                    if *h == bpf::helpers::MIX || *h == bpf::helpers::COUNTER)));
                assert!(insns.iter().all(|i| !matches!(i, Insn::Call(bpf::Call::Kfunc(k))
                    if !bpf::helpers::KERNEL_KFUNCS.contains(k))));
            }
            for a in g.set.attachments() {
                assert!(a.program.prog.insns().iter().all(|i| match i {
                    Insn::Call(bpf::Call::Helper(h)) => *h == bpf::helpers::MAP_LOOKUP_ELEM,
                    Insn::Call(bpf::Call::Kfunc(k)) => bpf::helpers::KERNEL_KFUNCS.contains(k),
                    _ => true,
                }));
            }
        }
    }

    #[test]
    fn loops_of_every_shape_and_jumps_at_every_boundary_stay_valid() {
        use super::loops::{all_loop_tests, loop_facts};
        use bpf::Insn;
        let cfg = Config { long_jumps: true, max_insns: 64, ..Config::default() };
        let (mut tests, mut other, mut exits, mut caller_stack, mut globals, mut padded, mut jal) =
            (Vec::new(), 0, 0, 0, 0, 0, 0);
        for seed in 0..400 {
            let g = sample(seed, &cfg);
            let ctx = g.input.ctx.as_ref().map(Vec::len);
            if let Err(e) = bpf::validate::validate(&g.set, ctx) {
                panic!("seed {seed}: {e}");
            }
            let f = loop_facts(&g.set);
            tests.extend(f.tests);
            other += f.other_than_counted as usize;
            exits += f.early_exit as usize;
            caller_stack += f.caller_stack_pointer as usize;
            globals += f.global_variable as usize;
            let insns = || g.set.progs().iter().flat_map(|p| p.prog.insns());
            // A padded loop's or jump's offset spans a thousand instructions.
            padded += insns().any(|i| i.jump_offset().is_some_and(|o| o.abs() > 1000)) as usize;
            jal += insns().any(|i| matches!(i, Insn::JaLong { off } if *off > 200_000)) as usize;
        }
        tests.sort_unstable_by_key(|&(w, c, r)| (w as u8, c as u8, r));
        tests.dedup();
        assert_eq!(tests.len(), all_loop_tests().len(), "loop tests seen: {tests:?}");
        assert!(
            other >= 40 && exits >= 20 && caller_stack >= 20 && globals >= 20,
            "{other} {exits} {caller_stack} {globals}"
        );
        assert!(padded >= 40 && jal >= 1, "{padded} padded, {jal} over 1 MiB");
    }

    #[test]
    fn tc_and_socket_sets_read_their_packet_with_legacy_loads() {
        use bpf::{Insn, ProgType};
        for prog_type in [ProgType::Tc, ProgType::Socket] {
            let cfg = Config { prog_type, ..Config::default() };
            let (mut abs, mut ind, mut special) = (0, 0, 0);
            for seed in 0..200 {
                let g = sample(seed, &cfg);
                assert_eq!(g.set.prog_type(), prog_type);
                assert!(g.set.attachments().is_empty());
                let packet = g.input.ctx.as_deref().unwrap();
                prog_type.check_input(packet).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
                // (which also holds the context's fields to the verifier's rules)
                bpf::validate::validate(&g.set, Some(packet.len())).unwrap_or_else(|e| {
                    panic!("seed {seed}: {e}\n{}", bpf::asm::print_set(&g.set, Some(&g.input)))
                });
                for i in g.set.progs().iter().flat_map(|p| p.prog.insns()) {
                    match i {
                        Insn::LoadPacket { index: None, imm, .. } => {
                            abs += 1;
                            special += usize::from(*imm < 0);
                        }
                        Insn::LoadPacket { index: Some(_), .. } => ind += 1,
                        _ => {}
                    }
                }
            }
            assert!(abs >= 50 && ind >= 20 && special >= 10, "{prog_type:?}: {abs} {ind} {special}");
        }
    }

    #[test]
    fn runs_out_of_bytes_gracefully() {
        for n in 0..64 {
            let bytes = vec![0xa5u8; n];
            assert!(generate(&Config::default(), &mut Unstructured::new(&bytes)).is_ok(), "{n} bytes");
        }
    }
}
