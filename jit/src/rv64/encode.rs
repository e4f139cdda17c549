//! Bit-level encoders, one per RV64 base instruction format.
//!
//! Callers pass immediates already range-checked by the types in [`super::imm`]; each
//! encoder places bits exactly as the RISC-V unprivileged specification's format
//! diagrams show (bit 31 on the left).

use super::reg::XReg;

/// R-type:
/// ```text
/// 31     25 24  20 19  15 14  12 11   7 6      0
/// | funct7 |  rs2 |  rs1 |funct3|  rd  | opcode |
/// ```
pub fn encode_r(opcode: u32, rd: XReg, funct3: u32, rs1: XReg, rs2: XReg, funct7: u32) -> u32 {
    (funct7 << 25) | (rs2.num() << 20) | (rs1.num() << 15) | (funct3 << 12) | (rd.num() << 7) | opcode
}

/// I-type (`imm` is a signed 12-bit value; shifts pass funct6/7 and shamt packed in it):
/// ```text
/// 31          20 19  15 14  12 11   7 6      0
/// |  imm[11:0]  |  rs1 |funct3|  rd  | opcode |
/// ```
pub fn encode_i(opcode: u32, rd: XReg, funct3: u32, rs1: XReg, imm: i32) -> u32 {
    (((imm as u32) & 0xfff) << 20) | (rs1.num() << 15) | (funct3 << 12) | (rd.num() << 7) | opcode
}

/// S-type:
/// ```text
/// 31      25 24  20 19  15 14  12 11      7 6      0
/// |imm[11:5]|  rs2 |  rs1 |funct3|imm[4:0] | opcode |
/// ```
pub fn encode_s(opcode: u32, funct3: u32, rs1: XReg, rs2: XReg, imm: i32) -> u32 {
    let imm = imm as u32;
    (((imm >> 5) & 0x7f) << 25)
        | (rs2.num() << 20)
        | (rs1.num() << 15)
        | (funct3 << 12)
        | ((imm & 0x1f) << 7)
        | opcode
}

/// B-type (`off` is even; bit 0 is implicit):
/// ```text
/// 31        30      25 24  20 19  15 14  12 11      8 7         6      0
/// |imm[12]|imm[10:5]|  rs2 |  rs1 |funct3|imm[4:1] |imm[11] | opcode |
/// ```
pub fn encode_b(opcode: u32, funct3: u32, rs1: XReg, rs2: XReg, off: i32) -> u32 {
    let o = off as u32;
    (((o >> 12) & 1) << 31)
        | (((o >> 5) & 0x3f) << 25)
        | (rs2.num() << 20)
        | (rs1.num() << 15)
        | (funct3 << 12)
        | (((o >> 1) & 0xf) << 8)
        | (((o >> 11) & 1) << 7)
        | opcode
}

/// U-type (`imm` is the signed value of bits 31..12):
/// ```text
/// 31                  12 11   7 6      0
/// |      imm[31:12]     |  rd  | opcode |
/// ```
pub fn encode_u(opcode: u32, rd: XReg, imm: i32) -> u32 {
    (((imm as u32) & 0xf_ffff) << 12) | (rd.num() << 7) | opcode
}

/// J-type (`off` is even):
/// ```text
/// 31        30       21 20        19        12 11   7 6      0
/// |imm[20]|imm[10:1] |imm[11] | imm[19:12] |  rd  | opcode |
/// ```
pub fn encode_j(opcode: u32, rd: XReg, off: i32) -> u32 {
    let o = off as u32;
    (((o >> 20) & 1) << 31)
        | (((o >> 1) & 0x3ff) << 21)
        | (((o >> 11) & 1) << 20)
        | (((o >> 12) & 0xff) << 12)
        | (rd.num() << 7)
        | opcode
}
