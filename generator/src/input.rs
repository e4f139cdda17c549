//! Fuzz inputs: the bytes a fuzz target gets (or a stored set in text form) turned into a
//! program set and its input, as every fuzz target and the standalone driver do, and more
//! inputs for the same set.

use arbitrary::Unstructured;

use crate::{generate, Config, Generated};

/// A small deterministic random source (xorshift64*), so that a seed names its runs.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A source for `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0xd1b5_4a32_d192_ed03 | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Fills `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// The first line of a fuzz input that holds a program set as text instead of generator
/// bytes: seed corpora are stored as text, so a change of generator leaves them useful.
pub const TEXT_MAGIC: &[u8] = b"; jitdiff program set\n";

/// Turns fuzzer bytes into a program set and input, as every fuzz target does: a swarm
/// configuration first, then the set; or, after [`TEXT_MAGIC`], a set in text form
/// (with a 64-byte zero context unless it declares one). Text the static validator
/// rejects gives `None`: libFuzzer's mutations of stored sets are mostly invalid
/// programs, which say nothing about the JIT.
pub fn generate_from(bytes: &[u8]) -> Option<Generated> {
    generate_for(bytes, KernelTarget::None)
}

/// Which kernel engines a session runs, as far as the generator cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelTarget {
    /// No kernel engine: every shape, every helper.
    None,
    /// Kernel engines, one of them a JIT that runs programs mixing bpf2bpf calls and tail
    /// calls (7.x's RV64 JIT): only the kernel's helpers, every shape.
    Mixing,
    /// Kernel engines none of which runs that mix (6.12, or interpreters only): only the
    /// kernel's helpers, and in three sets of four not both bpf2bpf calls and tail calls
    /// (the fourth keeps the shape for our own engines).
    NotMixing,
}

/// [`generate_from`] for a session with `kernel` engines (see [`KernelTarget`]).
pub fn generate_for(bytes: &[u8], kernel: KernelTarget) -> Option<Generated> {
    if let Some(text) = bytes.strip_prefix(TEXT_MAGIC) {
        let f = bpf::asm::parse_set(std::str::from_utf8(text).ok()?).ok()?;
        let input = ctx_or_default(f.ctx, f.set.prog_type());
        bpf::validate::validate(&f.set, Some(input.ctx.as_ref().map_or(0, Vec::len))).ok()?;
        return Some(Generated { set: f.set, input });
    }
    let mut u = Unstructured::new(bytes);
    let mut cfg: Config = u.arbitrary().ok()?;
    if kernel != KernelTarget::None {
        cfg.kernel_helpers = true;
        cfg.count_entries = true;
        cfg = cfg.sanitize();
        let mix = kernel == KernelTarget::Mixing || u.ratio(1, 4).ok()?;
        if cfg.calls_enabled && cfg.tail_calls_enabled && !mix {
            if u.arbitrary().ok()? {
                cfg.calls_enabled = false;
            } else {
                cfg.tail_calls_enabled = false;
            }
        }
    }
    generate(&cfg, &mut u).ok()
}

/// Another input for the same set of programs of `prog_type`: `input`'s context with
/// about half of its 8-byte words replaced, by an edge value ([`crate::EDGE_U64`]) or
/// random bits, so that one compiled set also meets the values that take its other paths.
/// A `__sk_buff` program's packet keeps its Ethernet header (the kind and length of
/// packet the test run takes stay as they are).
pub fn vary(input: &bpf::Input, prog_type: bpf::ProgType, rng: &mut Rng) -> bpf::Input {
    let Some(ctx) = &input.ctx else { return input.clone() };
    let mut ctx = ctx.clone();
    let kept = if prog_type.is_skb() { bpf::context::MIN_PACKET.min(ctx.len()) } else { 0 };
    for chunk in ctx[kept..].chunks_mut(8) {
        let r = rng.next_u64();
        let v = match r % 4 {
            0 | 1 => continue,
            2 => crate::EDGE_U64[(r >> 8) as usize % crate::EDGE_U64.len()],
            _ => rng.next_u64(),
        };
        chunk.copy_from_slice(&v.to_le_bytes()[..chunk.len()]);
    }
    bpf::Input::with_ctx(ctx)
}

/// A fuzz input holding `case` as text (see [`TEXT_MAGIC`]).
pub fn text_input(case: &Generated) -> Vec<u8> {
    let mut bytes = TEXT_MAGIC.to_vec();
    bytes.extend_from_slice(bpf::asm::print_set(&case.set, Some(&case.input)).as_bytes());
    bytes
}

/// The input a set of programs of `prog_type` runs on when it declares none: 64 zero
/// bytes of context buffer, or a `__sk_buff` program's default packet
/// ([`bpf::ProgType::default_input`]).
pub fn ctx_or_default(ctx: Option<bpf::Input>, prog_type: bpf::ProgType) -> bpf::Input {
    ctx.unwrap_or_else(|| bpf::Input::with_ctx(prog_type.default_input()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_name_their_inputs() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        let (mut x, mut y) = ([0u8; 64], [0u8; 64]);
        a.fill(&mut x);
        b.fill(&mut y);
        assert_eq!(x, y);
        Rng::new(8).fill(&mut y);
        assert_ne!(x, y);
    }

    #[test]
    fn variations_keep_the_size_and_change_some_words() {
        let input = bpf::Input::with_ctx(vec![0x11; 64]);
        let mut rng = Rng::new(3);
        let (mut kept, mut changed) = (0, 0);
        for _ in 0..100 {
            let v = vary(&input, bpf::ProgType::Buffer, &mut rng);
            let ctx = v.ctx.unwrap();
            assert_eq!(ctx.len(), 64);
            for w in ctx.chunks(8) {
                if w == [0x11; 8] {
                    kept += 1;
                } else {
                    changed += 1;
                }
            }
        }
        // Half of the words are kept, a quarter get edge values, a quarter random bits.
        assert!(
            (300..500).contains(&kept) && (300..500).contains(&changed),
            "{kept} kept, {changed} changed"
        );
        assert_eq!(vary(&bpf::Input::none(), bpf::ProgType::Buffer, &mut rng), bpf::Input::none());
    }

    #[test]
    fn text_inputs_hold_program_sets() {
        let mut bytes = TEXT_MAGIC.to_vec();
        bytes.extend_from_slice(b".ctx 8\nr0 = 1\nexit\n");
        let g = generate_from(&bytes).unwrap();
        assert_eq!(g.input, bpf::Input::with_ctx(vec![0; 8]));
        assert_eq!(g.set.entry().prog.insns().len(), 2);
        // A mutation that compares the context pointer is not a program to run.
        let mut bad = TEXT_MAGIC.to_vec();
        bad.extend_from_slice(b"r0 = 0\nif w1 & w2 goto +1\nexit\n");
        assert!(generate_from(&bad).is_none());
    }
}
