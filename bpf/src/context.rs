//! What R1 points to at a program's entry, by program type: jitdiff's context buffer, or,
//! for tc (`BPF_PROG_TYPE_SCHED_CLS`) and socket-filter programs, a `struct __sk_buff` over
//! a packet, as the kernel's `BPF_PROG_TEST_RUN` presents it (Linux 6.12 and 7.3:
//! `bpf_prog_test_run_skb` in `net/bpf/test_run.c`, the access rules and field loads in
//! `net/core/filter.c`).
//!
//! An input ([`crate::Input`]) of a `__sk_buff` program is its packet: an Ethernet frame of
//! [`MIN_PACKET`] to [`MAX_PACKET`] bytes, all of it linear data. The kernel builds the
//! socket buffer from it on its loopback device: `protocol` and `pkt_type` come from the
//! Ethernet header (`eth_type_trans`), `ifindex` is the loopback's (1), and `len` and
//! `wire_len` are the packet's length, less the 14-byte header for a socket filter (whose
//! data starts past it); every other field the program may read is 0.
//!
//! Engines that lay out their own memory ([`ProgType::presented`]) put those 192 bytes at
//! [`crate::layout::CTX_ADDR`], every readable field already holding its value, and the
//! packet at [`PACKET_ADDR`], below 4 GiB, so that a 32-bit load of `data` or `data_end`
//! yields the whole pointer, as the kernel's rewrite of those loads does. A program sees
//! the same values either way because the verifier's access rules ([`ProgType::field`],
//! which the validator enforces) allow only the fields and sizes whose kernel loads and
//! stores act as plain memory would; the writes jitdiff does not model (`tc_index`,
//! `tc_classid`, `queue_mapping`, `tstamp`, which the kernel truncates or converts) are
//! refused with a message saying so. After the run, what is compared is what the kernel
//! writes back ([`ProgType::observed`]): `ctx_out` (the fields `convert_skb_to___skb`
//! copies, every other byte 0) followed by `data_out`.

use std::borrow::Cow;

/// Where the packet of a `__sk_buff` program lives in engines that choose their own
/// addresses: below 4 GiB, so that the 32-bit `data` and `data_end` fields hold whole
/// pointers.
pub const PACKET_ADDR: u64 = 0x1800_0000;

/// Bytes of `struct __sk_buff`.
pub const SKB_SIZE: usize = 192;

/// The shortest packet the kernel's test run takes (`ETH_HLEN`).
pub const MIN_PACKET: usize = 14;

/// The longest packet kept whole in linear data by the test runs of Linux 6.12 and 7.3
/// (a page less the headroom and the shared info: 4096 - 66 - 320). 6.12 refuses a longer
/// one; 7.3 puts the rest in fragments, out of the program's direct reach.
pub const MAX_PACKET: usize = 3710;

/// Offsets of the `struct __sk_buff` fields jitdiff names.
mod off {
    pub const LEN: i64 = 0;
    pub const PKT_TYPE: i64 = 4;
    pub const MARK: i64 = 8;
    pub const QUEUE_MAPPING: i64 = 12;
    pub const PROTOCOL: i64 = 16;
    pub const PRIORITY: i64 = 32;
    pub const IFINDEX: i64 = 40;
    pub const TC_INDEX: i64 = 44;
    pub const CB: i64 = 48;
    pub const CB_END: i64 = 68;
    pub const TC_CLASSID: i64 = 72;
    pub const DATA: i64 = 76;
    pub const DATA_END: i64 = 80;
    pub const FAMILY: i64 = 88;
    pub const LOCAL_PORT_END: i64 = 140;
    pub const DATA_META: i64 = 140;
    pub const FLOW_KEYS: i64 = 144;
    pub const TSTAMP: i64 = 152;
    pub const WIRE_LEN: i64 = 160;
    pub const SK: i64 = 168;
    pub const TSTAMP_TYPE: i64 = 180;
    pub const HWTSTAMP: i64 = 184;
}

/// Names of the 4-byte fields of `struct __sk_buff` up to `napi_id`, by offset / 4.
const FIELD_NAMES: [&str; 22] = [
    "len",
    "pkt_type",
    "mark",
    "queue_mapping",
    "protocol",
    "vlan_present",
    "vlan_tci",
    "vlan_proto",
    "priority",
    "ingress_ifindex",
    "ifindex",
    "tc_index",
    "cb[0]",
    "cb[1]",
    "cb[2]",
    "cb[3]",
    "cb[4]",
    "hash",
    "tc_classid",
    "data",
    "data_end",
    "napi_id",
];

/// The program type, which decides what R1 points to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ProgType {
    /// jitdiff's own: R1 points to a buffer of the input's bytes, read and written as plain
    /// memory (the kernel engines run such programs as XDP, the buffer a map value).
    #[default]
    Buffer,
    /// `BPF_PROG_TYPE_SCHED_CLS` (libbpf's `SEC("tc")`, `"classifier"`, `"tc/ingress"`,
    /// ...): a `__sk_buff` whose data starts at the Ethernet header, with direct packet
    /// access through `data` and `data_end`.
    Tc,
    /// `BPF_PROG_TYPE_SOCKET_FILTER` (`SEC("socket")`): a `__sk_buff` whose data starts past
    /// the Ethernet header, without direct packet access; only `cb` may be written.
    Socket,
}

/// What a permitted access to a `__sk_buff` field reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    /// A scalar (or nothing, for a write).
    Scalar,
    /// `data`: a pointer to the packet's first byte.
    PacketStart,
    /// `data_end`: a pointer just past the packet's last byte.
    PacketEnd,
}

impl ProgType {
    /// Every program type.
    pub const ALL: [ProgType; 3] = [ProgType::Buffer, ProgType::Tc, ProgType::Socket];

    /// The type's name in text (`.progtype tc`): `buffer`, `tc`, `socket`.
    pub const fn name(self) -> &'static str {
        match self {
            ProgType::Buffer => "buffer",
            ProgType::Tc => "tc",
            ProgType::Socket => "socket",
        }
    }

    /// The type named `name` (see [`ProgType::name`]).
    pub fn from_name(name: &str) -> Option<ProgType> {
        ProgType::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The type libbpf gives a program in ELF section `section`, for the types jitdiff
    /// models: `tc`, `classifier`, `tc/ingress`, `tc/egress`, `tcx/ingress`, `tcx/egress`
    /// are [`ProgType::Tc`], `socket` is [`ProgType::Socket`] (a leading `?`, libbpf's "do
    /// not load automatically", is ignored). `None` for every other section.
    pub fn from_section(section: &str) -> Option<ProgType> {
        match section.strip_prefix('?').unwrap_or(section) {
            "tc" | "classifier" | "tc/ingress" | "tc/egress" | "tcx/ingress" | "tcx/egress" => {
                Some(ProgType::Tc)
            }
            "socket" => Some(ProgType::Socket),
            _ => None,
        }
    }

    /// Whether R1 points to a `struct __sk_buff`.
    pub const fn is_skb(self) -> bool {
        !matches!(self, ProgType::Buffer)
    }

    /// The input a run gets when none is given: 64 zero bytes for a buffer; for a
    /// `__sk_buff`, a 64-byte IPv4/TCP frame (to MAC 00:00:00:00:00:00, the loopback's, from
    /// 10.0.0.1 port 1234 to 10.0.0.2 port 80, no payload, zero padding).
    pub fn default_input(self) -> Vec<u8> {
        if !self.is_skb() {
            return vec![0; 64];
        }
        let mut p = vec![0u8; 64];
        p[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 1]); // source MAC
        p[12..14].copy_from_slice(&[0x08, 0x00]); // IPv4
                                                  // IPv4 header: version 4, 5 words, total length 40, TTL 64, TCP.
        p[14..24].copy_from_slice(&[0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6]);
        p[26..34].copy_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
        // TCP header: ports 1234 -> 80, data offset 5 words, SYN.
        p[34..38].copy_from_slice(&[0x04, 0xd2, 0, 80]);
        p[46..48].copy_from_slice(&[0x50, 0x02]);
        p
    }

    /// Checks an input of this type: for a `__sk_buff`, a packet the kernel's test run
    /// takes whole into linear data (also long enough for the IPv4 or IPv6 header its
    /// ethertype announces, which the test run insists on). The error says what is wrong.
    pub fn check_input(self, input: &[u8]) -> Result<(), String> {
        if !self.is_skb() {
            return Ok(());
        }
        let n = input.len();
        if !(MIN_PACKET..=MAX_PACKET).contains(&n) {
            return Err(format!(
                "a {} program's input is a packet of {MIN_PACKET} to {MAX_PACKET} bytes (an Ethernet frame the \
                 kernel's test run keeps whole), not {n} bytes",
                self.name()
            ));
        }
        let (ethertype, header, need) = match (input[12], input[13]) {
            (0x08, 0x00) => ("0x0800", "IPv4", 20),
            (0x86, 0xdd) => ("0x86dd", "IPv6", 40),
            _ => return Ok(()),
        };
        if n < MIN_PACKET + need {
            return Err(format!(
                "a packet with ethertype {ethertype} needs the {need}-byte {header} header after the Ethernet \
                 header ({} bytes at least, not {n}): the kernel's test run refuses it",
                MIN_PACKET + need
            ));
        }
        Ok(())
    }

    /// [`ProgType::check_input`] for a run's input (no context passes).
    pub fn check(self, input: &crate::Input) -> Result<(), String> {
        input.ctx.as_deref().map_or(Ok(()), |c| self.check_input(c))
    }

    /// What an access of `size` bytes at offset `off` of the `__sk_buff` does, by the
    /// verifier's rules for this type (`tc_cls_act_is_valid_access`,
    /// `sk_filter_is_valid_access` and `bpf_skb_is_valid_access`); `signed` for a
    /// sign-extending load. `Err((rule_is_the_kernels, why))`: `true` when the kernel
    /// refuses the access too, `false` when it allows it but jitdiff does not model it.
    /// Only for [`ProgType::is_skb`] types.
    pub fn field(self, off: i64, size: u32, write: bool, signed: bool) -> Result<Field, (bool, String)> {
        let size_i = size as i64;
        let refused =
            |why: &str| Err((true, format!("{size} bytes at offset {off} of struct __sk_buff: {why}")));
        if !(0..SKB_SIZE as i64).contains(&off) {
            return refused("outside the 192-byte struct");
        }
        if off % size_i != 0 {
            return refused("not aligned to the access size");
        }
        let name = field_name(off);
        let in_range = |lo: i64, hi: i64| (lo..hi).contains(&off);
        // Fields the type may not touch at all.
        let hidden = match self {
            ProgType::Socket => {
                off / 4 == off::TC_CLASSID / 4
                    || in_range(off::DATA, off::DATA_END + 4)
                    || in_range(off::FAMILY, off::LOCAL_PORT_END + 4)
                    || in_range(off::TSTAMP, off::TSTAMP + 8)
                    || in_range(off::WIRE_LEN, off::WIRE_LEN + 4)
                    || in_range(off::HWTSTAMP, off::HWTSTAMP + 8)
            }
            _ => in_range(off::FAMILY, off::LOCAL_PORT_END),
        };
        if hidden {
            return refused(&format!("{name} is not accessible to {} programs", self.name()));
        }
        if write {
            let tc_writable = [off::MARK, off::TC_INDEX, off::PRIORITY, off::TC_CLASSID, off::QUEUE_MAPPING]
                .iter()
                .any(|&f| in_range(f, f + 4))
                || in_range(off::TSTAMP, off::TSTAMP + 8);
            if !(in_range(off::CB, off::CB_END) || (self == ProgType::Tc && tc_writable)) {
                return refused(&format!("{name} is read-only for {} programs", self.name()));
            }
        }
        // Fields with their own rules (bpf_skb_is_valid_access), then the default.
        if in_range(off::CB, off::CB_END) {
            if off + size_i > off::CB_END {
                return refused("the access runs past cb[4]");
            }
            return Ok(Field::Scalar);
        }
        if in_range(off::DATA, off::DATA_END + 4) || in_range(off::DATA_META, off::DATA_META + 4) {
            if size != 4 || signed {
                return refused(&format!("{name} is read as a whole 32-bit field"));
            }
            return match off {
                off::DATA => Ok(Field::PacketStart),
                off::DATA_END => Ok(Field::PacketEnd),
                _ => Err((false, "data_meta (a pointer to the packet's metadata) is not modelled".into())),
            };
        }
        if in_range(off::FLOW_KEYS, off::FLOW_KEYS + 8) {
            return refused("flow_keys is only for flow dissector programs");
        }
        if in_range(off::HWTSTAMP, off::HWTSTAMP + 8) {
            if write || size != 8 {
                return refused("hwtstamp is read-only, 8 bytes at a time");
            }
            return Ok(Field::Scalar);
        }
        if in_range(off::TSTAMP, off::TSTAMP + 8) {
            if size != 8 {
                return refused("tstamp is accessed 8 bytes at a time");
            }
            return self.unmodelled_write(write, name);
        }
        if in_range(off::SK, off::SK + 8) {
            if write || size != 8 {
                return refused("sk is a read-only 8-byte pointer");
            }
            return Err((false, "sk (a pointer to the socket, or NULL) is not modelled".into()));
        }
        if off == off::TSTAMP_TYPE {
            if self != ProgType::Tc || size != 1 || write {
                return refused("tstamp_type is a 1-byte field only tc programs read");
            }
            return Ok(Field::Scalar);
        }
        if in_range(off::TSTAMP_TYPE, off::HWTSTAMP) {
            return refused("padding");
        }
        // Every other field is 4 bytes: written whole, read whole or narrower.
        if write && size != 4 {
            return refused(&format!("{name} is written 4 bytes at a time"));
        }
        if !write && size > 4 {
            return refused(&format!("{name} is a 4-byte field"));
        }
        if write && [off::TC_INDEX, off::TC_CLASSID, off::QUEUE_MAPPING].contains(&off) {
            return self.unmodelled_write(write, name);
        }
        Ok(Field::Scalar)
    }

    /// A read of a field whose writes jitdiff does not model, or such a write.
    fn unmodelled_write(self, write: bool, name: &str) -> Result<Field, (bool, String)> {
        if write {
            Err((
                false,
                format!(
                    "a write of {name} (the kernel keeps only part of it, or converts it) is not modelled"
                ),
            ))
        } else {
            Ok(Field::Scalar)
        }
    }

    /// What an engine that lays out its own memory puts at [`crate::layout::CTX_ADDR`] for a run on
    /// `input` (`None`: no context, R1 = 0), and at [`PACKET_ADDR`] (empty but for a
    /// `__sk_buff`). For a buffer, the input itself; for a `__sk_buff`, the struct with
    /// every readable field set as the kernel's test run sets it (module doc), and the
    /// packet. The input must pass [`ProgType::check_input`].
    pub fn presented(self, input: Option<&[u8]>) -> (Option<Cow<'_, [u8]>>, Cow<'_, [u8]>) {
        let Some(packet) = input else { return (None, Cow::Borrowed(&[])) };
        if !self.is_skb() {
            return (Some(Cow::Borrowed(packet)), Cow::Borrowed(&[]));
        }
        let mut skb = vec![0u8; SKB_SIZE];
        let put = |skb: &mut Vec<u8>, off: i64, v: u32| {
            skb[off as usize..off as usize + 4].copy_from_slice(&v.to_le_bytes())
        };
        let n = packet.len();
        let len = if self == ProgType::Socket { n - MIN_PACKET } else { n } as u32;
        put(&mut skb, off::LEN, len);
        put(&mut skb, off::PKT_TYPE, pkt_type(&packet[..6]));
        put(&mut skb, off::PROTOCOL, protocol(packet));
        put(&mut skb, off::IFINDEX, 1);
        put(&mut skb, off::WIRE_LEN, len);
        if self == ProgType::Tc {
            put(&mut skb, off::DATA, PACKET_ADDR as u32);
            put(&mut skb, off::DATA_END, (PACKET_ADDR + n as u64) as u32);
        }
        (Some(Cow::Owned(skb)), Cow::Borrowed(packet))
    }

    /// A legacy packet load (`LD_ABS`/`LD_IND`) of `size` bytes (1, 2 or 4) at `offset` (the
    /// low 32 bits of the instruction's offset plus its index, as the signed `int` the
    /// kernel's `bpf_skb_load_helper_*_no_cache` takes) from `packet`, the whole frame as it
    /// is now: the value, read big-endian, or `None` when the offset is outside the packet
    /// (the kernel then returns 0 from the program's current function). As Linux 6.12's
    /// and 7.3's helpers read it: offsets count from the socket buffer's data (the Ethernet
    /// header for tc programs, the network header for socket filters, after the test run's
    /// `eth_type_trans`); from -0x100000 (`SKF_NET_OFF`) they count from the network
    /// header and from -0x200000 (`SKF_LL_OFF`) from the Ethernet header; any other
    /// negative offset is outside.
    pub fn legacy_packet_load(self, packet: &[u8], offset: i32, size: usize) -> Option<u32> {
        const SKF_NET_OFF: i32 = -0x10_0000;
        const SKF_LL_OFF: i32 = -0x20_0000;
        // Where the socket buffer's data starts in the frame, and its network and
        // Ethernet headers relative to that.
        let data = if self == ProgType::Socket { MIN_PACKET as i64 } else { 0 };
        let (network, mac) = (MIN_PACKET as i64 - data, -data);
        let offset = match offset {
            o if o >= 0 => i64::from(o),
            o if o >= SKF_NET_OFF => i64::from(o - SKF_NET_OFF) + network,
            o if o >= SKF_LL_OFF => i64::from(o - SKF_LL_OFF) + mac,
            _ => return None,
        };
        let start = usize::try_from(data + offset).ok()?;
        let bytes = packet.get(start..start.checked_add(size)?)?;
        Some(bytes.iter().fold(0u32, |v, &b| v << 8 | u32::from(b)))
    }

    /// What is compared after a run: for a buffer, the buffer `ctx`; for a `__sk_buff`,
    /// `ctx_out` as the kernel writes it back (`mark`, `priority`, `ingress_ifindex`,
    /// `ifindex`, `cb`, `tstamp`, `wire_len`, `gso_segs`, `hwtstamp` from `ctx`, the
    /// struct after the run; every other byte 0), followed by `data_out`: the `packet`
    /// after the run, with a socket filter's Ethernet header zeroed (the test run pushes it
    /// back as zeros).
    pub fn observed(self, ctx: &[u8], packet: &[u8]) -> Vec<u8> {
        if !self.is_skb() {
            return ctx.to_vec();
        }
        let mut out = vec![0u8; SKB_SIZE + packet.len()];
        let kept =
            [(off::MARK, 4), (off::PRIORITY, 12), (off::CB, 20), (off::TSTAMP, 16), (off::HWTSTAMP, 8)];
        for (at, n) in kept {
            let r = at as usize..at as usize + n;
            if let Some(b) = ctx.get(r.clone()) {
                out[r].copy_from_slice(b);
            }
        }
        out[SKB_SIZE..].copy_from_slice(packet);
        if self == ProgType::Socket {
            let header = SKB_SIZE..SKB_SIZE + MIN_PACKET.min(packet.len());
            out[header].fill(0);
        }
        out
    }
}

/// The name of the field at `off` of `struct __sk_buff`, for messages.
fn field_name(off: i64) -> &'static str {
    match off {
        0..=87 => FIELD_NAMES[(off / 4) as usize],
        88..=139 => "the socket fields (family to local_port)",
        140..=143 => "data_meta",
        144..=151 => "flow_keys",
        152..=159 => "tstamp",
        160..=163 => "wire_len",
        164..=167 => "gso_segs",
        168..=175 => "sk",
        176..=179 => "gso_size",
        180 => "tstamp_type",
        181..=183 => "padding",
        _ => "hwtstamp",
    }
}

/// `pkt_type` after `eth_type_trans` on the loopback device, whose address (and, as it
/// sets none, broadcast address) is all zeros: `PACKET_HOST` (0) for a frame to it,
/// `PACKET_MULTICAST` (2) for any group address (ff:ff:ff:ff:ff:ff included, as it is not
/// the device's broadcast address), `PACKET_OTHERHOST` (3) otherwise.
fn pkt_type(dest: &[u8]) -> u32 {
    if dest.iter().all(|&b| b == 0) {
        0
    } else if dest[0] & 1 == 1 {
        2
    } else {
        3
    }
}

/// `protocol` after `eth_type_trans` (network byte order, read as a little-endian 16-bit
/// value): the ethertype when its first byte is at least 0x06 (a type, not an 802.3
/// length); otherwise `ETH_P_802_3` when the payload starts with 0xffff (raw IPX) and
/// `ETH_P_802_2` else (no payload included).
fn protocol(packet: &[u8]) -> u32 {
    if packet[12] >= 0x06 {
        u16::from_le_bytes([packet[12], packet[13]]) as u32
    } else if packet.get(14..16) == Some(&[0xff, 0xff]) {
        0x0100 // htons(ETH_P_802_3)
    } else {
        0x0400 // htons(ETH_P_802_2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_packet_loads_read_big_endian_from_the_socket_buffers_data() {
        const NET: i32 = -0x10_0000;
        const LL: i32 = -0x20_0000;
        let frame: Vec<u8> = (0..60).collect();
        let tc = |off, size| ProgType::Tc.legacy_packet_load(&frame, off, size);
        // a tc program's data is the whole frame
        assert_eq!(tc(0, 4), Some(0x0001_0203));
        assert_eq!(tc(12, 2), Some(0x0c0d));
        assert_eq!(tc(58, 2), Some(0x3a3b));
        assert_eq!(tc(59, 2), None);
        assert_eq!(tc(60, 1), None);
        // SKF_NET_OFF counts from the network header (14), SKF_LL_OFF from the Ethernet header
        assert_eq!(tc(NET, 1), Some(14));
        assert_eq!(tc(LL + 2, 1), Some(2));
        // other negative offsets: -1 is SKF_NET_OFF + 0xfffff, far past the end
        assert_eq!(tc(-1, 1), None);
        assert_eq!(tc(LL - 1, 1), None);
        assert_eq!(tc(i32::MIN, 1), None);
        // a socket filter's data starts at the network header
        let socket = |off, size| ProgType::Socket.legacy_packet_load(&frame, off, size);
        assert_eq!(socket(0, 1), Some(14));
        assert_eq!(socket(NET, 1), Some(14));
        assert_eq!(socket(45, 1), Some(59));
        assert_eq!(socket(46, 1), None);
        // and its Ethernet header lies before it
        assert_eq!(socket(LL, 1), Some(0));
        assert_eq!(socket(LL + 12, 4), Some(0x0c0d_0e0f));
    }

    fn word(skb: &[u8], off: i64) -> u32 {
        u32::from_le_bytes(skb[off as usize..off as usize + 4].try_into().unwrap())
    }

    /// A frame to `dest` with ethertype bytes `ty`, `n` bytes long.
    fn frame(dest: [u8; 6], ty: [u8; 2], n: usize) -> Vec<u8> {
        let mut p = vec![0u8; n];
        p[..6].copy_from_slice(&dest);
        p[12..14].copy_from_slice(&ty);
        p
    }

    #[test]
    fn section_names_pick_libbpfs_types() {
        for s in ["tc", "?tc", "classifier", "tc/ingress", "tcx/egress"] {
            assert_eq!(ProgType::from_section(s), Some(ProgType::Tc), "{s}");
        }
        assert_eq!(ProgType::from_section("socket"), Some(ProgType::Socket));
        for s in ["xdp", ".text", "tc_foo", "socket1", "fentry/f"] {
            assert_eq!(ProgType::from_section(s), None, "{s}");
        }
        for t in ProgType::ALL {
            assert_eq!(ProgType::from_name(t.name()), Some(t));
        }
    }

    /// The test run's `__sk_buff` for a 60-byte IPv4 frame to the loopback's address.
    #[test]
    fn fields_as_the_test_run_sets_them() {
        let p = frame([0; 6], [0x08, 0x00], 60);
        let (tc, packet) = ProgType::Tc.presented(Some(&p));
        let tc = tc.unwrap();
        assert_eq!(packet[..], p[..]);
        assert_eq!(word(&tc, off::LEN), 60);
        assert_eq!(word(&tc, off::PKT_TYPE), 0); // PACKET_HOST
        assert_eq!(word(&tc, off::PROTOCOL), 0x0008); // htons(ETH_P_IP)
        assert_eq!(word(&tc, off::IFINDEX), 1); // the loopback
        assert_eq!(word(&tc, off::WIRE_LEN), 60);
        assert_eq!(word(&tc, off::DATA) as u64, PACKET_ADDR);
        assert_eq!(word(&tc, off::DATA_END) as u64, PACKET_ADDR + 60);
        let set: Vec<i64> =
            [off::LEN, off::PROTOCOL, off::IFINDEX, off::WIRE_LEN, off::DATA, off::DATA_END].into();
        for at in (0..SKB_SIZE as i64).step_by(4).filter(|a| !set.contains(a)) {
            assert_eq!(word(&tc, at), 0, "offset {at}");
        }
        // A socket filter's data starts past the Ethernet header.
        let (socket, _) = ProgType::Socket.presented(Some(&p));
        let socket = socket.unwrap();
        assert_eq!((word(&socket, off::LEN), word(&socket, off::WIRE_LEN)), (46, 46));
        assert_eq!((word(&socket, off::DATA), word(&socket, off::DATA_END)), (0, 0));
        // A buffer is the input itself; no input, no context.
        let (ctx, packet) = ProgType::Buffer.presented(Some(&[1, 2]));
        assert_eq!((ctx.as_deref(), &packet[..]), (Some(&[1u8, 2][..]), &[][..]));
        let (ctx, packet) = ProgType::Tc.presented(None);
        assert_eq!((ctx, packet.len()), (None, 0));
    }

    #[test]
    fn pkt_type_and_protocol_from_the_ethernet_header() {
        let field = |p: Vec<u8>, at| word(&ProgType::Tc.presented(Some(&p)).0.unwrap(), at);
        let ipv6 = [0x86, 0xdd];
        assert_eq!(field(frame([0x02, 0, 0, 0, 0, 9], ipv6, 64), off::PKT_TYPE), 3); // OTHERHOST
        assert_eq!(field(frame([0x01, 0, 0x5e, 0, 0, 1], ipv6, 64), off::PKT_TYPE), 2); // MULTICAST
                                                                                        // The loopback's broadcast address is all zeros, so ff:ff:... is a group address.
        assert_eq!(field(frame([0xff; 6], ipv6, 64), off::PKT_TYPE), 2);
        assert_eq!(field(frame([0; 6], ipv6, 64), off::PROTOCOL), 0xdd86);
        // An 802.3 length (first byte below 0x06): raw IPX (payload ffff), else 802.2.
        let mut ipx = frame([0; 6], [0x00, 0x40], 64);
        ipx[14..16].copy_from_slice(&[0xff, 0xff]);
        assert_eq!(field(ipx, off::PROTOCOL), 0x0100);
        assert_eq!(field(frame([0; 6], [0x05, 0xff], 64), off::PROTOCOL), 0x0400);
        assert_eq!(field(frame([0; 6], [0x05, 0xff], 14), off::PROTOCOL), 0x0400);
        assert_eq!(field(frame([0; 6], [0x06, 0x00], 14), off::PROTOCOL), 0x0006);
    }

    #[test]
    fn packets_the_test_run_refuses() {
        let t = ProgType::Tc;
        assert!(t.check_input(&[0; 13]).unwrap_err().contains("not 13 bytes"));
        assert!(t.check_input(&[0; 3711]).is_err());
        t.check_input(&[0; 3710]).unwrap();
        t.check_input(&[0; 14]).unwrap();
        assert!(t.check_input(&frame([0; 6], [0x08, 0x00], 33)).unwrap_err().contains("IPv4"));
        t.check_input(&frame([0; 6], [0x08, 0x00], 34)).unwrap();
        assert!(ProgType::Socket.check_input(&frame([0; 6], [0x86, 0xdd], 53)).is_err());
        ProgType::Buffer.check_input(&[]).unwrap();
        t.check_input(&t.default_input()).unwrap();
    }

    /// `ctx_out` keeps what `convert_skb_to___skb` copies back; a socket filter's packet
    /// comes back with its Ethernet header zeroed.
    #[test]
    fn observed_as_the_kernel_writes_back() {
        let ctx: Vec<u8> = (0..SKB_SIZE as u8).collect();
        let packet: Vec<u8> = vec![0xaa; 20];
        let out = ProgType::Tc.observed(&ctx, &packet);
        assert_eq!(out.len(), SKB_SIZE + 20);
        let kept = |at: usize| {
            [(8, 12), (32, 44), (48, 68), (152, 168), (184, 192)]
                .iter()
                .any(|&(lo, hi)| (lo..hi).contains(&at))
        };
        for (at, &b) in out[..SKB_SIZE].iter().enumerate() {
            assert_eq!(b, if kept(at) { at as u8 } else { 0 }, "byte {at}");
        }
        assert_eq!(&out[SKB_SIZE..], &packet[..]);
        let out = ProgType::Socket.observed(&ctx, &packet);
        assert_eq!(&out[SKB_SIZE..SKB_SIZE + 14], &[0; 14]);
        assert_eq!(&out[SKB_SIZE + 14..], &[0xaa; 6]);
        assert_eq!(ProgType::Buffer.observed(&[1, 2, 3], &[]), vec![1, 2, 3]);
    }
}
