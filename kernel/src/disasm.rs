//! The kernel JIT's machine code as text: Capstone's disassembly of an RV64GC image, so that
//! a report shows the kernel's code through a disassembler that is not jitdiff's. The
//! bit-manipulation instructions the kernel's JIT emits when the core has Zba and Zbb (qemu's
//! default `rv64` core does), which this Capstone does not know, are named from their
//! fields (the RISC-V bit-manipulation specification's encodings).

use capstone::arch::riscv::{ArchExtraMode, ArchMode};
use capstone::prelude::*;

/// One line per instruction of `code` (RV64 with the compressed extension, as the kernel's
/// JIT emits on cores that have it): byte offset, the instruction's bytes as one
/// little-endian number (4 hex digits for a 16-bit instruction, 8 for a 32-bit one), and
/// Capstone's text. A Zba or Zbb instruction Capstone cannot decode is named by
/// [`bitmanip_text`]; any other is shown as `.4byte` (its low
/// two bits say 32 bits long) or `.2byte` and skipped, so the listing always covers the
/// whole image. `Err` only when Capstone cannot
/// be set up.
pub fn rv64_listing(code: &[u8]) -> Result<String, String> {
    let cs = Capstone::new()
        .riscv()
        .mode(ArchMode::RiscV64)
        .extra_mode([ArchExtraMode::RiscVC].into_iter())
        .build()
        .map_err(|e| format!("Capstone: {e}"))?;
    let mut out = String::new();
    let mut at = 0;
    while at + 2 <= code.len() {
        let decoded = cs.disasm_count(&code[at..], at as u64, 1).ok();
        match decoded.as_ref().and_then(|d| d.as_ref().first()) {
            Some(i) if at + i.len() <= code.len() => {
                let bytes = &code[at..at + i.len()];
                let word = bytes.iter().rev().fold(0u32, |w, &b| (w << 8) | u32::from(b));
                let text = format!("{} {}", i.mnemonic().unwrap_or("?"), i.op_str().unwrap_or(""));
                let digits = 2 * i.len();
                out += &format!("  {at:5x}:  {word:0digits$x}  {}\n", text.trim_end());
                at += i.len();
            }
            _ if code[at] & 0b11 == 0b11 && at + 4 <= code.len() => {
                let word = u32::from_le_bytes([code[at], code[at + 1], code[at + 2], code[at + 3]]);
                let text = bitmanip_text(word).unwrap_or_else(|| format!(".4byte {word:#010x}"));
                out += &format!("  {at:5x}:  {word:08x}  {text}\n");
                at += 4;
            }
            _ => {
                let half = u16::from_le_bytes([code[at], code[at + 1]]);
                out += &format!("  {at:5x}:  {half:04x}  .2byte {half:#06x}\n");
                at += 2;
            }
        }
    }
    if at < code.len() {
        out += &format!("  {at:5x}:  {:02x}  .byte {:#04x}\n", code[at], code[at]);
    }
    Ok(out)
}

/// The ABI names of x0..x31.
const ABI: [&str; 32] = [
    "zero", "ra", "sp", "gp", "tp", "t0", "t1", "t2", "s0", "s1", "a0", "a1", "a2", "a3", "a4", "a5", "a6",
    "a7", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11", "t3", "t4", "t5", "t6",
];

/// The RV64 Zba / Zbb instruction `word` encodes, as text (`zext.w` for `add.uw rd, rs,
/// zero`, as assemblers print it), or `None` when it is none of them.
pub fn bitmanip_text(word: u32) -> Option<String> {
    let opcode = word & 0x7f;
    let (rd, f3, rs1, rs2, f7) = (
        ABI[(word >> 7 & 31) as usize],
        word >> 12 & 7,
        ABI[(word >> 15 & 31) as usize],
        word >> 20 & 31,
        word >> 25,
    );
    let rs2n = ABI[rs2 as usize];
    let imm12 = word >> 20;
    let r = |name: &str| Some(format!("{name} {rd}, {rs1}, {rs2n}"));
    let unary = |name: &str| Some(format!("{name} {rd}, {rs1}"));
    match (opcode, f3, f7) {
        // OP: Zba shift-and-add, Zbb logic with negate, min/max, rotates
        (0x33, 2, 0x10) => r("sh1add"),
        (0x33, 4, 0x10) => r("sh2add"),
        (0x33, 6, 0x10) => r("sh3add"),
        (0x33, 7, 0x20) => r("andn"),
        (0x33, 6, 0x20) => r("orn"),
        (0x33, 4, 0x20) => r("xnor"),
        (0x33, 4, 0x05) => r("min"),
        (0x33, 5, 0x05) => r("minu"),
        (0x33, 6, 0x05) => r("max"),
        (0x33, 7, 0x05) => r("maxu"),
        (0x33, 1, 0x30) => r("rol"),
        (0x33, 5, 0x30) => r("ror"),
        // OP-32: the .uw forms, zext.h, 32-bit rotates
        (0x3b, 0, 0x04) if rs2 == 0 => unary("zext.w"),
        (0x3b, 0, 0x04) => r("add.uw"),
        (0x3b, 2, 0x10) => r("sh1add.uw"),
        (0x3b, 4, 0x10) => r("sh2add.uw"),
        (0x3b, 6, 0x10) => r("sh3add.uw"),
        (0x3b, 4, 0x04) if rs2 == 0 => unary("zext.h"),
        (0x3b, 1, 0x30) => r("rolw"),
        (0x3b, 5, 0x30) => r("rorw"),
        // OP-IMM: counts, sign extensions, byte reversal, rotate by immediate
        (0x13, 1, 0x30) => match rs2 {
            0 => unary("clz"),
            1 => unary("ctz"),
            2 => unary("cpop"),
            4 => unary("sext.b"),
            5 => unary("sext.h"),
            _ => None,
        },
        (0x13, 5, _) if imm12 == 0x6b8 => unary("rev8"),
        (0x13, 5, _) if imm12 >> 6 == 0b011000 => Some(format!("rori {rd}, {rs1}, {}", imm12 & 63)),
        // OP-IMM-32
        (0x1b, 1, _) if imm12 >> 6 == 0b000010 => Some(format!("slli.uw {rd}, {rs1}, {}", imm12 & 63)),
        (0x1b, 5, 0x30) => Some(format!("roriw {rd}, {rs1}, {rs2}")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `words` as a little-endian image: each item is (value, bytes).
    fn image(words: &[(u32, usize)]) -> Vec<u8> {
        words.iter().flat_map(|&(w, n)| w.to_le_bytes()[..n].to_vec()).collect()
    }

    #[test]
    fn mixes_32_and_16_bit_instructions_at_their_offsets() {
        // Encodings from the RISC-V unprivileged specification's tables:
        // addi sp, sp, -16 (I-type: imm 0xff0, rs1 2, funct3 0, rd 2, opcode 0x13);
        // c.addi a0, 1 (quadrant 1, funct3 000: 0x0505); c.jr ra (quadrant 2, 0x8082);
        // add a0, a1, a2 (R-type: 0x00c58533).
        let code = image(&[(0xff01_0113, 4), (0x0505, 2), (0x00c5_8533, 4), (0x8082, 2)]);
        let text = rv64_listing(&code).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(lines[0].starts_with("      0:  ff010113  addi sp, sp, -"), "{text}");
        assert!(lines[1].starts_with("      4:  0505  c.addi a0, 1"), "{text}");
        assert!(lines[2].starts_with("      6:  00c58533  add a0, a1, a2"), "{text}");
        assert!(lines[3].starts_with("      a:  8082  c.jr ra"), "{text}");
    }

    #[test]
    fn undecodable_bytes_and_a_trailing_byte_are_shown_not_dropped() {
        // 0x0000000b is in the custom-0 opcode space (no standard instruction); then
        // addi zero, zero, 0 (0x00000013) and a lone byte.
        let text = rv64_listing(&[0x0b, 0x00, 0x00, 0x00, 0x13, 0x00, 0x00, 0x00, 0x7f]).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "      0:  0000000b  .4byte 0x0000000b", "{text}");
        assert!(lines[1].starts_with("      4:  00000013  "), "{text}");
        assert_eq!(lines[2], "      8:  7f  .byte 0x7f", "{text}");
    }

    /// An R-type word from its fields (the specification's layout).
    fn r_type(f7: u32, rs2: u32, rs1: u32, f3: u32, rd: u32, opcode: u32) -> u32 {
        f7 << 25 | rs2 << 20 | rs1 << 15 | f3 << 12 | rd << 7 | opcode
    }

    #[test]
    fn zba_and_zbb_instructions_are_named_from_their_fields() {
        // a2 = x12, a1 = x11, t2 = x7, a0 = x10
        assert_eq!(bitmanip_text(r_type(0x04, 0, 12, 0, 12, 0x3b)).as_deref(), Some("zext.w a2, a2"));
        assert_eq!(bitmanip_text(r_type(0x04, 11, 12, 0, 7, 0x3b)).as_deref(), Some("add.uw t2, a2, a1"));
        assert_eq!(bitmanip_text(r_type(0x10, 11, 12, 6, 7, 0x33)).as_deref(), Some("sh3add t2, a2, a1"));
        assert_eq!(bitmanip_text(r_type(0x04, 0, 10, 4, 10, 0x3b)).as_deref(), Some("zext.h a0, a0"));
        assert_eq!(bitmanip_text(r_type(0x30, 4, 10, 1, 10, 0x13)).as_deref(), Some("sext.b a0, a0"));
        assert_eq!(bitmanip_text(r_type(0x30, 5, 10, 1, 10, 0x13)).as_deref(), Some("sext.h a0, a0"));
        // rev8 (RV64): imm 0x6b8 in OP-IMM, funct3 101
        assert_eq!(
            bitmanip_text(0x6b8 << 20 | 10 << 15 | 5 << 12 | 10 << 7 | 0x13).as_deref(),
            Some("rev8 a0, a0")
        );
        // plain add and sub are not bit-manipulation instructions
        assert_eq!(bitmanip_text(0x00c5_8533), None);
        assert_eq!(bitmanip_text(r_type(0x20, 11, 12, 0, 10, 0x33)), None);
    }

    #[test]
    fn a_listing_names_the_bitmanip_instructions_capstone_does_not_know() {
        // 0x0806063b and 0x20b663b3 are in the kernel JIT's tail-call code on qemu's rv64 core.
        let text = rv64_listing(&image(&[(0x0806_063b, 4), (0x20b6_63b3, 4)])).unwrap();
        assert_eq!(text, "      0:  0806063b  zext.w a2, a2\n      4:  20b663b3  sh3add t2, a2, a1\n");
    }
}
