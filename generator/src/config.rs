//! The generator's knobs. `Config: Arbitrary` is swarm testing: every fuzz input first
//! picks which instruction kinds and call shapes it may use and how large it may grow,
//! so rare combinations get whole runs to themselves.

use arbitrary::{Arbitrary, Unstructured};

/// What the generator may produce. Every field has a default ([`Config::default`]
/// enables everything at the default sizes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Programs in a set (the entry and tail-call targets), 1 to 4. Defaults to 3.
    pub max_progs: usize,
    /// Functions per program (main and subprograms), 1 to 8 (the kernel's frame limit).
    /// Defaults to 3.
    pub max_funcs: usize,
    /// bpf2bpf calls always go to the next function, and are frequent, so that call
    /// chains grow as deep as the functions allow. Defaults to false.
    pub chain_calls: bool,
    /// Instructions the generator aims for per function before closing it, 4 to 256.
    /// Defaults to 24.
    pub max_insns: usize,
    /// Nesting of conditional blocks and loops, 0 to 4. Defaults to 2.
    pub max_depth: usize,
    /// Bytes of context, a multiple of 8 from 8 to 4096 (past 2048, context offsets no
    /// longer fit a 12-bit immediate). Defaults to 64.
    pub ctx_size: u32,
    /// Some conditional blocks end with a long run of 64-bit constants, so that their
    /// jumps span more than a conditional branch reaches (4 KiB of RV64 code) and must
    /// be relaxed. Defaults to false.
    pub long_jumps: bool,
    /// 32-bit ALU operations. Defaults to true.
    pub alu32_enabled: bool,
    /// 64-bit ALU operations. Defaults to true.
    pub alu64_enabled: bool,
    /// Conditional blocks over 64-bit compares. Defaults to true.
    pub jmp_enabled: bool,
    /// Conditional blocks over 32-bit compares. Defaults to true.
    pub jmp32_enabled: bool,
    /// Loads and stores on the stack and the context. Defaults to true.
    pub mem_enabled: bool,
    /// Atomic operations. Defaults to true.
    pub atomics_enabled: bool,
    /// cpu v4 instructions: sdiv, smod, movsx, bswap, sign-extending loads, gotol.
    /// Defaults to true.
    pub v4_enabled: bool,
    /// Loops: counted down, compared under any condition and width, bounded by the
    /// context, with early exits. Defaults to true.
    pub loops_enabled: bool,
    /// bpf2bpf calls to subprograms. Defaults to true.
    pub calls_enabled: bool,
    /// Helper calls. Defaults to true.
    pub helpers_enabled: bool,
    /// kfunc calls ([`bpf::helpers::KFUNCS`]): jitdiff's own, and pairs of the kernel's
    /// ([`bpf::helpers::KERNEL_KFUNCS`]), only those with [`Config::kernel_helpers`].
    /// Defaults to true.
    pub kfuncs_enabled: bool,
    /// Tail calls through prog arrays. Defaults to true.
    pub tail_calls_enabled: bool,
    /// Array maps: lookups (with helpers), and global variables in those of one value
    /// (with memory accesses). Defaults to true.
    pub arrays_enabled: bool,
    /// fentry and fexit programs attached to functions of the set (half of the sets get
    /// one to three). Defaults to true.
    pub attachments_enabled: bool,
    /// The programs' type: a buffer (the default), or a tc or socket-filter program whose
    /// context is a `struct __sk_buff` over a packet. Those never touch the context's
    /// memory (its fields are the fixtures' and the text corpus's) but read the packet with
    /// legacy packet loads (`LD_ABS`/`LD_IND`, the context kept in R6), and get no
    /// attachments and no entry counter (both need a buffer). [`Arbitrary`] makes one set
    /// in 8 a tc program and one in 16 a socket filter.
    pub prog_type: bpf::ProgType,
    /// Percent of immediates drawn from the edge-value list. Defaults to 60.
    pub edge_bias: u8,
    /// Helper calls use only helpers a real kernel has and answers deterministically
    /// (`get_numa_node_id`, besides map lookups and tail calls), for runs on the kernel
    /// engines. Not chosen by [`Arbitrary`]: the driver sets it. Defaults to false.
    pub kernel_helpers: bool,
    /// Every program's main function starts by adding 1 to the context's first 8 bytes,
    /// which no other instruction touches, so that an engine that cannot watch tail
    /// calls (a real kernel) still reports how many there were: the entries minus one.
    /// Not chosen by [`Arbitrary`]: the driver sets it. Defaults to false.
    pub count_entries: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            max_progs: 3,
            max_funcs: 3,
            chain_calls: false,
            max_insns: 24,
            max_depth: 2,
            ctx_size: 64,
            long_jumps: false,
            alu32_enabled: true,
            alu64_enabled: true,
            jmp_enabled: true,
            jmp32_enabled: true,
            mem_enabled: true,
            atomics_enabled: true,
            v4_enabled: true,
            loops_enabled: true,
            calls_enabled: true,
            helpers_enabled: true,
            kfuncs_enabled: true,
            tail_calls_enabled: true,
            arrays_enabled: true,
            attachments_enabled: true,
            prog_type: bpf::ProgType::Buffer,
            edge_bias: 60,
            kernel_helpers: false,
            count_entries: false,
        }
    }
}

impl Config {
    /// Brings every field into its documented range; it only ever lowers limits.
    pub fn sanitize(mut self) -> Config {
        self.max_progs = self.max_progs.clamp(1, 4);
        self.max_funcs = self.max_funcs.clamp(1, 8);
        self.max_insns = self.max_insns.clamp(4, 256);
        self.max_depth = self.max_depth.min(4);
        self.ctx_size = (self.ctx_size.clamp(if self.count_entries { 16 } else { 8 }, 4096) / 8) * 8;
        self.edge_bias = self.edge_bias.min(100);
        if !self.alu32_enabled && !self.alu64_enabled {
            self.alu64_enabled = true;
        }
        if self.prog_type.is_skb() {
            self.attachments_enabled = false;
            self.count_entries = false;
        }
        self
    }
}

impl<'a> Arbitrary<'a> for Config {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Config> {
        let d = Config::default();
        Ok(Config {
            max_progs: u.int_in_range(1..=d.max_progs + 1)?,
            // Mostly a few functions; a quarter of the inputs up to the frame limit.
            max_funcs: if u.ratio(1, 4)? {
                u.int_in_range(5..=8)?
            } else {
                u.int_in_range(1..=d.max_funcs + 1)?
            },
            chain_calls: u.ratio(1, 4)?,
            max_insns: u.int_in_range(8..=d.max_insns + 8)?,
            max_depth: u.int_in_range(0..=d.max_depth + 1)?,
            // Mostly small contexts; one input in 32 a context past 2 KiB.
            ctx_size: if u.ratio(1, 32)? {
                u.int_in_range(257..=512u32)? * 8
            } else {
                u.int_in_range(1..=16u32)? * 8
            },
            long_jumps: u.ratio(1, 32)?,
            alu32_enabled: u.arbitrary()?,
            alu64_enabled: u.arbitrary()?,
            jmp_enabled: u.arbitrary()?,
            jmp32_enabled: u.arbitrary()?,
            mem_enabled: u.arbitrary()?,
            atomics_enabled: u.arbitrary()?,
            v4_enabled: u.arbitrary()?,
            // Loops of every shape are what compilers emit: most inputs have them.
            loops_enabled: u.ratio(3, 4)?,
            // Calls and tail calls are what jitdiff is about: most inputs have both.
            calls_enabled: u.ratio(7, 8)?,
            helpers_enabled: u.arbitrary()?,
            tail_calls_enabled: u.ratio(7, 8)?,
            arrays_enabled: u.arbitrary()?,
            edge_bias: u.int_in_range(0..=100)?,
            kfuncs_enabled: u.arbitrary()?,
            attachments_enabled: u.arbitrary()?,
            prog_type: match u.int_in_range(0..=15u8)? {
                0 | 1 => bpf::ProgType::Tc,
                2 => bpf::ProgType::Socket,
                _ => bpf::ProgType::Buffer,
            },
            kernel_helpers: false,
            count_entries: false,
        }
        .sanitize())
    }
}
