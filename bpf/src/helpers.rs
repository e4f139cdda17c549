//! The helper functions every engine offers, with one implementation shared by all of
//! them, so that helper behaviour can never be the source of a difference.
//!
//! Helpers are deterministic: a run's results depend only on the program set and the
//! input. Each helper has a prototype: the number of scalar arguments it reads (R1 up to
//! R5). Like the kernel's verifier, the reference interpreter rejects a program that
//! passes an address where a scalar is expected or calls an unknown helper.
//!
//! `bpf_tail_call` (id 12) is not a function here: engines treat `call 12` exactly like
//! the kernel-internal tail-call instruction the verifier rewrites it into.
//!
//! jitdiff also offers kfuncs of its own (`call kfunc:N`, BPF_PSEUDO_KFUNC_CALL), with ids
//! no kernel BTF id and no helper id reaches: they take scalars like the helpers, and the
//! engines call them the way the kernel's JITs call kfuncs, so that how a JIT keeps the
//! tail-call count across them is tested as it is across helpers.

use std::fmt;

/// `bpf_map_lookup_elem(map, key)`: for an array map, a pointer to the value of the u32
/// key that R2 points to, or NULL when the key is out of range. It needs the engines'
/// memory, so each engine performs it and records it with [`Helpers::record_lookup`];
/// the trace holds the map's index among the array maps and the key as arguments, and
/// 1 (found) or 0 (NULL) as the result, so traces compare across engines whose
/// addresses differ.
pub const MAP_LOOKUP_ELEM: i32 = 1;
/// `bpf_strtoul(buf, buf_len, flags, res)`: parses the unsigned number in the `buf_len`
/// bytes R1 points to into the 8 bytes R4 points to (see [`strtoul`]). It needs the
/// engines' memory, so each engine performs it and records it with
/// [`Helpers::record_strtoul`] (the length, the flags and the result as arguments, so that
/// traces compare across engines whose addresses differ).
pub const STRTOUL: i32 = 106;
/// The helper id of `bpf_tail_call`.
pub const TAIL_CALL: i32 = 12;
/// `ktime_get_ns`: here a per-run clock that advances by 1000 on every clock read.
pub const KTIME_GET_NS: i32 = 5;
/// `get_numa_node_id`: 0 (one node).
pub const GET_NUMA_NODE_ID: i32 = 42;
/// `jiffies64`: the per-run clock.
pub const JIFFIES64: i32 = 118;
/// `ktime_get_boot_ns`: the per-run clock.
pub const KTIME_GET_BOOT_NS: i32 = 125;
/// `ktime_get_coarse_ns`: the per-run clock.
pub const KTIME_GET_COARSE_NS: i32 = 160;
/// lib/test_bpf.c's own `bpf_test_func` (`__BPF_FUNC_MAX_ID` in 6.12): returns 0.
pub const TEST_FUNC: i32 = 212;
/// jitdiff's pure mixing function of R1 to R5.
pub const MIX: i32 = 0x10000;
/// jitdiff's per-run counter: 1, 2, 3, ... on successive calls within one run.
pub const COUNTER: i32 = 0x10001;

/// jitdiff's kfunc `jitdiff_kmix`: a pure function of R1 to R5, another than the helper
/// `jitdiff_mix`.
pub const KFUNC_MIX: i32 = 0x20000;
/// jitdiff's kfunc `jitdiff_kcounter`: 1, 2, 3, ... on successive calls within one run,
/// counted apart from the helper `jitdiff_counter`.
pub const KFUNC_COUNTER: i32 = 0x20001;

/// The kernel's `bpf_rcu_read_lock()`: enters an RCU read-side section; returns nothing.
pub const KFUNC_RCU_READ_LOCK: i32 = 0x20002;
/// The kernel's `bpf_rcu_read_unlock()`: leaves it; returns nothing.
pub const KFUNC_RCU_READ_UNLOCK: i32 = 0x20003;
/// The kernel's `bpf_preempt_disable()`; returns nothing.
pub const KFUNC_PREEMPT_DISABLE: i32 = 0x20004;
/// The kernel's `bpf_preempt_enable()`; returns nothing.
pub const KFUNC_PREEMPT_ENABLE: i32 = 0x20005;

/// Every kfunc id engines offer: jitdiff's own, then the kernel's ([`KERNEL_KFUNCS`]).
pub const KFUNCS: [i32; 6] = [
    KFUNC_MIX,
    KFUNC_COUNTER,
    KFUNC_RCU_READ_LOCK,
    KFUNC_RCU_READ_UNLOCK,
    KFUNC_PREEMPT_DISABLE,
    KFUNC_PREEMPT_ENABLE,
];

/// The kfuncs a real kernel has too, by the kernel's name: Linux 6.12 and 7.3 let every
/// program type call them (the `common_btf_ids` set), they take nothing and return
/// nothing, and what they do (an RCU read-side section, preemption off) changes no value a
/// program sees, so every engine agrees on them. Each comes in pairs: the verifier refuses
/// a program that exits inside the section.
pub const KERNEL_KFUNCS: [i32; 4] =
    [KFUNC_RCU_READ_LOCK, KFUNC_RCU_READ_UNLOCK, KFUNC_PREEMPT_DISABLE, KFUNC_PREEMPT_ENABLE];

/// The prototype of kfunc `id`, or `None` for an id no engine offers.
pub fn kfunc_prototype(id: i32) -> Option<Prototype> {
    let void = |name| Some(Prototype { name, scalar_args: 0, returns: false });
    match id {
        KFUNC_MIX => Some(Prototype { name: "jitdiff_kmix", scalar_args: 5, returns: true }),
        KFUNC_COUNTER => Some(Prototype { name: "jitdiff_kcounter", scalar_args: 0, returns: true }),
        KFUNC_RCU_READ_LOCK => void("bpf_rcu_read_lock"),
        KFUNC_RCU_READ_UNLOCK => void("bpf_rcu_read_unlock"),
        KFUNC_PREEMPT_DISABLE => void("bpf_preempt_disable"),
        KFUNC_PREEMPT_ENABLE => void("bpf_preempt_enable"),
        _ => None,
    }
}

/// The id of jitdiff's kfunc called `name`.
pub fn kfunc_named(name: &str) -> Option<i32> {
    KFUNCS.into_iter().find(|&id| kfunc_prototype(id).is_some_and(|p| p.name == name))
}

/// What a helper or a kfunc takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prototype {
    /// Its name.
    pub name: &'static str,
    /// How many of R1..R5 it reads; each must be a scalar.
    pub scalar_args: usize,
    /// Whether it returns a value in R0 (a kernel function returning `void` leaves R0
    /// undefined, as the verifier sees it).
    pub returns: bool,
}

/// The prototype of helper `id`, or `None` for an id no engine offers (tail calls
/// included: they are not helpers).
pub fn prototype(id: i32) -> Option<Prototype> {
    let p = |name, scalar_args| Some(Prototype { name, scalar_args, returns: true });
    match id {
        KTIME_GET_NS => p("ktime_get_ns", 0),
        GET_NUMA_NODE_ID => p("get_numa_node_id", 0),
        JIFFIES64 => p("jiffies64", 0),
        KTIME_GET_BOOT_NS => p("ktime_get_boot_ns", 0),
        KTIME_GET_COARSE_NS => p("ktime_get_coarse_ns", 0),
        TEST_FUNC => p("bpf_test_func", 0),
        MIX => p("jitdiff_mix", 5),
        MAP_LOOKUP_ELEM => p("map_lookup_elem", 0),
        STRTOUL => p("strtoul", 0),
        COUNTER => p("jitdiff_counter", 0),
        _ => None,
    }
}

/// Every helper id, for engines that register helpers up front.
pub const ALL: [i32; 10] = [
    MAP_LOOKUP_ELEM,
    STRTOUL,
    KTIME_GET_NS,
    GET_NUMA_NODE_ID,
    JIFFIES64,
    KTIME_GET_BOOT_NS,
    KTIME_GET_COARSE_NS,
    TEST_FUNC,
    MIX,
    COUNTER,
];

/// One helper or kfunc call as every engine records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HelperCall {
    /// The helper id, or the kfunc id when [`HelperCall::kfunc`].
    pub id: i32,
    /// A kfunc call (`call kfunc:N`), not a helper call.
    pub kfunc: bool,
    /// The scalar arguments it read (as many as its prototype says).
    pub args: Vec<u64>,
    /// What it returned in R0.
    pub ret: u64,
}

impl fmt::Display for HelperCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (kind, proto) =
            if self.kfunc { ("kfunc ", kfunc_prototype(self.id)) } else { ("", prototype(self.id)) };
        let name = proto.map_or("?", |p| p.name);
        let args: Vec<String> = self.args.iter().map(|a| format!("{a:#x}")).collect();
        write!(f, "{kind}{name}({}) = {:#x}", args.join(", "), self.ret)
    }
}

/// The helpers' per-run state. Create one per run.
#[derive(Clone, Debug, Default)]
pub struct Helpers {
    clock: u64,
    counter: u64,
    kfunc_counter: u64,
    trace: Vec<HelperCall>,
}

/// `bpf_strtoul` on the bytes `buf` with `flags`, as Linux 6.12's and 7.3's
/// `kernel/bpf/helpers.c` computes it: (R0, the number stored through R4). Leading white
/// space is skipped (the kernel's `isspace`, which counts 0xa0 too); a '-' sign is
/// -EINVAL; the base is 10, 8 or 16 (flags 0 choose by prefix: `0x` with a hex digit after
/// it is 16, another leading `0` 8); at most 63 characters after the white space and sign
/// are read, and the number ends at the first byte that is not one of its digits. R0 is
/// how many bytes were used, or -EINVAL (no digits, other flags) or -ERANGE (more than 64
/// bits); the number stored is 0 unless R0 is a count.
pub fn strtoul(buf: &[u8], flags: u64) -> (u64, u64) {
    const EINVAL: i64 = 22;
    const ERANGE: i64 = 34;
    let fail = |e: i64| ((-e) as u64, 0);
    let base_mask = 0x1f;
    let mut base = (flags & base_mask) as u32;
    if buf.is_empty() || ![0, 8, 10, 16].contains(&base) || flags & !base_mask != 0 {
        return fail(EINVAL);
    }
    let space = |b: u8| matches!(b, b' ' | b'\t'..=b'\r' | 0xa0);
    let mut at = buf.iter().take_while(|&&b| space(b)).count();
    let negative = buf.get(at) == Some(&b'-');
    at += usize::from(negative);
    if at == buf.len() {
        return fail(EINVAL);
    }
    let consumed = at;
    // The rest, as the kernel copies it: at most 63 bytes, then a 0 that ends any number.
    let rest: Vec<u8> = buf[at..].iter().take(63).copied().chain([0, 0, 0]).collect();
    let mut s = 0;
    if base == 0 {
        base = match (rest[0], rest[1].to_ascii_lowercase(), rest[2]) {
            (b'0', b'x', c) if c.is_ascii_hexdigit() => 16,
            (b'0', _, _) => 8,
            _ => 10,
        };
    }
    if base == 16 && rest[0] == b'0' && rest[1].eq_ignore_ascii_case(&b'x') {
        s = 2;
    }
    let (mut value, mut digits, mut overflow) = (0u64, 0usize, false);
    while let Some(d) = (rest[s + digits] as char).to_digit(16).filter(|&d| d < base) {
        match value.checked_mul(u64::from(base)).and_then(|v| v.checked_add(u64::from(d))) {
            Some(v) => value = v,
            None => {
                value = u64::MAX;
                overflow = true;
            }
        }
        digits += 1;
    }
    if overflow {
        return fail(ERANGE);
    }
    if digits == 0 {
        return fail(EINVAL);
    }
    if negative {
        return fail(EINVAL);
    }
    ((consumed + s + digits) as u64, value)
}

fn mix(args: [u64; 5]) -> u64 {
    let mut h = 0x9e37_79b9_7f4a_7c15u64;
    for (k, a) in args.into_iter().enumerate() {
        h ^= a.rotate_left(13 * k as u32);
        h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        h ^= h >> 31;
    }
    h
}

impl Helpers {
    /// Fresh state for a new run.
    pub fn new() -> Helpers {
        Helpers::default()
    }

    /// Calls helper `id` with R1..R5 = `regs`, records the call, and returns R0. `None`
    /// for an unknown id and for [`MAP_LOOKUP_ELEM`] and [`STRTOUL`], which engines
    /// perform themselves (the caller decides what that means).
    pub fn call(&mut self, id: i32, regs: [u64; 5]) -> Option<u64> {
        let proto = prototype(id).filter(|_| id != MAP_LOOKUP_ELEM && id != STRTOUL)?;
        let ret = match id {
            MIX => mix(regs),
            COUNTER => {
                self.counter += 1;
                self.counter
            }
            GET_NUMA_NODE_ID | TEST_FUNC => 0,
            _ => {
                self.clock += 1000;
                self.clock
            }
        };
        self.trace.push(HelperCall { id, kfunc: false, args: regs[..proto.scalar_args].to_vec(), ret });
        Some(ret)
    }

    /// Calls jitdiff's kfunc `id` with R1..R5 = `regs`, records the call, and returns R0;
    /// `None` for an id no engine offers.
    pub fn call_kfunc(&mut self, id: i32, regs: [u64; 5]) -> Option<u64> {
        let proto = kfunc_prototype(id)?;
        let ret = match id {
            KFUNC_MIX => mix(regs).rotate_left(17) ^ 0x6a09_e667_f3bc_c908,
            KFUNC_COUNTER => {
                self.kfunc_counter += 1;
                self.kfunc_counter
            }
            _ => 0,
        };
        self.trace.push(HelperCall { id, kfunc: true, args: regs[..proto.scalar_args].to_vec(), ret });
        Some(ret)
    }

    /// Records a `bpf_map_lookup_elem` the engine performed: array map `array` (its
    /// index among the set's array maps), `key`, and whether a value was found.
    pub fn record_lookup(&mut self, array: usize, key: u32, found: bool) {
        self.trace.push(HelperCall {
            id: MAP_LOOKUP_ELEM,
            kfunc: false,
            args: vec![array as u64, key as u64],
            ret: found as u64,
        });
    }

    /// Records a `bpf_strtoul` the engine performed with [`strtoul`]: the buffer's length,
    /// the flags, what it returned and the number it stored.
    pub fn record_strtoul(&mut self, buf_len: u64, flags: u64, ret: u64, res: u64) {
        self.trace.push(HelperCall { id: STRTOUL, kfunc: false, args: vec![buf_len, flags, res], ret });
    }

    /// The calls made so far, in order.
    pub fn trace(&self) -> &[HelperCall] {
        &self.trace
    }

    /// Takes the trace, leaving the state otherwise as it is.
    pub fn take_trace(&mut self) -> Vec<HelperCall> {
        std::mem::take(&mut self.trace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strtoul_parses_as_the_kernel_does() {
        let e = |n: i64| (-n) as u64;
        // clobber_regs_stack() of the selftests: "123456789\0", flags 0
        assert_eq!(strtoul(b"123456789\0", 0), (9, 123_456_789));
        assert_eq!(strtoul(b"42", 10), (2, 42));
        // white space (0xa0 too) is skipped and counted; a sign is refused
        assert_eq!(strtoul(b"\xa0 \t7x", 0), (4, 7));
        assert_eq!(strtoul(b"  -5", 10), (e(22), 0));
        // prefixes: 0x with a hex digit is 16, another leading 0 is 8
        assert_eq!(strtoul(b"0x1fg", 0), (4, 31));
        assert_eq!(strtoul(b"0X1F", 16), (4, 31));
        assert_eq!(strtoul(b"0xg", 0), (1, 0));
        assert_eq!(strtoul(b"0x", 16), (e(22), 0));
        assert_eq!(strtoul(b"017", 0), (3, 15));
        assert_eq!(strtoul(b"019", 8), (2, 1));
        // 64 bits and no more
        assert_eq!(strtoul(b"18446744073709551615", 10), (20, u64::MAX));
        assert_eq!(strtoul(b"18446744073709551616", 10), (e(34), 0));
        // at most 63 bytes after the white space are read
        let mut long = vec![b'0'; 70];
        long.push(b'5');
        assert_eq!(strtoul(&long, 10), (63, 0));
        // nothing to parse, or flags other than a base
        assert_eq!(strtoul(b"", 10), (e(22), 0));
        assert_eq!(strtoul(b"   ", 10), (e(22), 0));
        assert_eq!(strtoul(b"x1", 10), (e(22), 0));
        assert_eq!(strtoul(b"1", 2), (e(22), 0));
        assert_eq!(strtoul(b"1", 32 | 10), (e(22), 0));
    }

    #[test]
    fn deterministic_and_recorded() {
        let mut h = Helpers::new();
        assert_eq!(h.call(COUNTER, [9; 5]), Some(1));
        assert_eq!(h.call(COUNTER, [0; 5]), Some(2));
        assert_eq!(h.call(KTIME_GET_NS, [0; 5]), Some(1000));
        assert_eq!(h.call(JIFFIES64, [0; 5]), Some(2000));
        assert_eq!(h.call(GET_NUMA_NODE_ID, [0; 5]), Some(0));
        let m = h.call(MIX, [1, 2, 3, 4, 5]).unwrap();
        assert_eq!(Helpers::new().call(MIX, [1, 2, 3, 4, 5]), Some(m), "mix is a pure function");
        assert_ne!(Helpers::new().call(MIX, [1, 2, 3, 4, 6]), Some(m), "mix reads R5");
        assert_ne!(Helpers::new().call(MIX, [2, 1, 3, 4, 5]), Some(m), "mix is not symmetric");
        assert_eq!(h.call(TAIL_CALL, [0; 5]), None);
        assert_eq!(h.call(MAP_LOOKUP_ELEM, [0; 5]), None, "engines perform lookups themselves");
        assert_eq!(h.call(99, [0; 5]), None);
        assert_eq!(h.trace().len(), 6);
        assert_eq!(h.trace()[5], HelperCall { id: MIX, kfunc: false, args: vec![1, 2, 3, 4, 5], ret: m });
        h.record_lookup(0, 7, false);
        assert_eq!(h.trace()[6].to_string(), "map_lookup_elem(0x0, 0x7) = 0x0");
        assert_eq!(h.trace()[0].to_string(), "jitdiff_counter() = 0x1");
    }

    #[test]
    fn kfuncs_are_apart_from_helpers() {
        let mut h = Helpers::new();
        assert_eq!(h.call(COUNTER, [0; 5]), Some(1));
        // The kfunc counter counts on its own.
        assert_eq!(h.call_kfunc(KFUNC_COUNTER, [0; 5]), Some(1));
        assert_eq!(h.call_kfunc(KFUNC_COUNTER, [0; 5]), Some(2));
        let k = h.call_kfunc(KFUNC_MIX, [1, 2, 3, 4, 5]).unwrap();
        assert_eq!(Helpers::new().call_kfunc(KFUNC_MIX, [1, 2, 3, 4, 5]), Some(k), "a pure function");
        assert_ne!(Helpers::new().call(MIX, [1, 2, 3, 4, 5]), Some(k), "not the helper's mix");
        assert_ne!(Helpers::new().call_kfunc(KFUNC_MIX, [1, 2, 3, 4, 0]), Some(k), "it reads R5");
        // Ids are looked up by kind: no kfunc has a helper's id, and the other way round.
        assert_eq!(h.call_kfunc(MIX, [0; 5]), None);
        assert_eq!(h.call(KFUNC_MIX, [0; 5]), None);
        assert_eq!(h.trace()[1].to_string(), "kfunc jitdiff_kcounter() = 0x1");
        assert!(h.trace()[3].kfunc && !h.trace()[0].kfunc);
    }
}
