//! Where things live in the memory of the engines that choose their own addresses (the
//! reference interpreter and our JIT), so that pointer values agree between them: the
//! context, the maps and their values. The packet of a `struct __sk_buff` program is at
//! [`crate::context::PACKET_ADDR`].

/// Guest address of the context buffer (R1 at entry) in every engine that chooses its
/// own addresses, so that pointer values agree between them where possible.
pub const CTX_ADDR: u64 = 0x1000_0000;

/// Guest address of prog-array map `index` in every engine that chooses its own
/// addresses: `lddw rN, map` loads this value. The JIT lays the map out there as the
/// kernel's `struct bpf_array` would be read by its code: `max_entries` (u32) at offset
/// 0 and the 8-byte program pointers from offset [`MAP_PTRS_OFFSET`] on.
pub fn map_addr(index: usize) -> u64 {
    MAPS_ADDR + index as u64 * MAP_STRIDE
}

/// Where the first prog-array map lives.
pub const MAPS_ADDR: u64 = 0x0800_0000;
/// Distance between consecutive maps.
pub const MAP_STRIDE: u64 = 0x1_0000;
/// Offset of the slot pointers within a map.
pub const MAP_PTRS_OFFSET: u64 = 8;
/// The largest number of slots a prog array may have (so that it fits its stride).
pub const MAX_MAP_ENTRIES: u32 = ((MAP_STRIDE - MAP_PTRS_OFFSET) / 8) as u32;
/// The most value bytes an array map may hold (so that it fits its stride).
pub const MAX_ARRAY_BYTES: usize = (MAP_STRIDE - MAP_PTRS_OFFSET) as usize;
/// Offset of the values within an array map (after `max_entries` and `value_size`).
pub const ARRAY_VALUES_OFFSET: u64 = MAP_PTRS_OFFSET;
