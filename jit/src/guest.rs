//! The guest memory map shared by the compiler and the runner: where code, helpers,
//! programs, maps, the context and the stack live in the emulated machine.

use bpf::helpers;

/// The page the entry program returns to; reaching it ends a run.
pub const EXIT_ADDR: u64 = 0x1000;
/// Helper trap addresses: helper `helpers::ALL[k]` is called at `HELPERS_ADDR + 4k` (the
/// kfuncs follow, see [`kfunc_addr`]), where a `ret` waits; the runner services the call
/// when execution reaches it.
pub const HELPERS_ADDR: u64 = 0x2000;
/// Where the programs' code is written, one after another on 4 KiB boundaries.
pub const CODE_ADDR: u64 = 0x4000_0000;
/// Program descriptors: program `p`'s is at `PROGS_ADDR + 16p`, its first 8 bytes the
/// address of its code (the kernel's `bpf_prog->bpf_func`, which tail calls read).
pub const PROGS_ADDR: u64 = 0x0700_0000;
/// Initial `sp`: the top of the native stack.
pub const STACK_TOP: u64 = 0x3010_0000;
/// Size of the native stack.
pub const STACK_SIZE: u64 = 0x10_0000;
/// The most prog-array maps a set may have in the JIT's memory map.
pub const MAX_MAPS: usize = 16;

/// The trap address of helper `id`, if any engine offers it.
pub fn helper_addr(id: i32) -> Option<u64> {
    helpers::ALL.iter().position(|&h| h == id).map(|k| HELPERS_ADDR + 4 * k as u64)
}

/// The helper whose trap address is `addr`.
pub fn helper_at(addr: u64) -> Option<i32> {
    let k = addr.checked_sub(HELPERS_ADDR)? / 4;
    addr.is_multiple_of(4).then(|| helpers::ALL.get(k as usize).copied()).flatten()
}

/// The trap address of jitdiff's kfunc `id`: after the helpers', `helpers::KFUNCS[k]` at
/// `HELPERS_ADDR + 4 (helpers::ALL.len() + k)`.
pub fn kfunc_addr(id: i32) -> Option<u64> {
    let k = helpers::KFUNCS.iter().position(|&f| f == id)?;
    Some(HELPERS_ADDR + 4 * (helpers::ALL.len() + k) as u64)
}

/// The kfunc whose trap address is `addr`.
pub fn kfunc_at(addr: u64) -> Option<i32> {
    let k = (addr.checked_sub(HELPERS_ADDR)? / 4).checked_sub(helpers::ALL.len() as u64)?;
    addr.is_multiple_of(4).then(|| helpers::KFUNCS.get(k as usize).copied()).flatten()
}

/// The trap address of the kernel's legacy packet load helper for `size` (B, H or W;
/// `bpf_skb_load_helper_{8,16,32}_no_cache`): after the helpers' and the kfuncs'.
pub fn packet_load_addr(size: bpf::Size) -> u64 {
    let k = match size {
        bpf::Size::B => 0,
        bpf::Size::H => 1,
        _ => 2,
    };
    HELPERS_ADDR + 4 * (helpers::ALL.len() + helpers::KFUNCS.len() + k) as u64
}

/// The size in bytes (1, 2 or 4) of the packet load helper whose trap address is `addr`.
pub fn packet_load_at(addr: u64) -> Option<usize> {
    let k = (addr.checked_sub(HELPERS_ADDR)? / 4)
        .checked_sub((helpers::ALL.len() + helpers::KFUNCS.len()) as u64)?;
    (addr.is_multiple_of(4) && k < 3).then(|| 1 << k)
}

/// Program `p`'s descriptor address.
pub fn prog_addr(p: usize) -> u64 {
    PROGS_ADDR + 16 * p as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helper_addresses_round_trip() {
        for id in helpers::ALL {
            assert_eq!(helper_at(helper_addr(id).unwrap()), Some(id));
        }
        assert_eq!(helper_addr(helpers::TAIL_CALL), None);
        assert_eq!(helper_at(HELPERS_ADDR + 2), None);
        for id in helpers::KFUNCS {
            let addr = kfunc_addr(id).unwrap();
            assert_eq!((kfunc_at(addr), helper_at(addr)), (Some(id), None));
        }
        for (size, bytes) in [(bpf::Size::B, 1), (bpf::Size::H, 2), (bpf::Size::W, 4)] {
            let addr = packet_load_addr(size);
            assert_eq!((packet_load_at(addr), helper_at(addr), kfunc_at(addr)), (Some(bytes), None, None));
        }
        assert_eq!(packet_load_at(packet_load_addr(bpf::Size::W) + 4), None);
        assert_eq!(kfunc_at(helper_addr(helpers::MIX).unwrap()), None);
        assert_eq!(kfunc_addr(helpers::MIX), None);
    }
}
