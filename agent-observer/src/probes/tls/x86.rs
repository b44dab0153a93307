//! Just enough x86-64 decoding to read the few instructions around a reference.
//!
//! The heuristics for stripped binaries look at short straight-line runs of code: the argument
//! set-up before a call (`mov edi, 16; xor esi, esi; mov edx, 226; lea rcx, [rip+file]; ...`).
//! [`decode`] gives an instruction's length, its effect on the general-purpose registers and
//! its control flow for the common integer instructions; anything else is `None`, and callers
//! stop there rather than guess. [`args_at_call`] runs a window forwards to the next call and
//! reports the argument registers as constants where they are known.
//!
//! [`find_refs`] finds every instruction that materialises one of a few addresses: a
//! RIP-relative `lea` (position-independent code) or a `mov r32, imm32` / `mov r64, simm32` of
//! the absolute address (non-PIE executables, e.g. Bun's). It is one linear pass per code
//! region driven by `memchr`, so a 60 MB `.text` costs tens of milliseconds.

use memchr::memmem;

/// General-purpose register numbers (the encoding order).
pub(crate) const RAX: u8 = 0;
pub(crate) const RCX: u8 = 1;
pub(crate) const RDX: u8 = 2;
pub(crate) const RSI: u8 = 6;
pub(crate) const RDI: u8 = 7;
pub(crate) const R8: u8 = 8;
pub(crate) const R9: u8 = 9;

/// The System V AMD64 integer argument registers, in order.
pub(crate) const SYSV_ARGS: [u8; 6] = [RDI, RSI, RDX, RCX, R8, R9];

/// What an instruction does to the general-purpose registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Effect {
    /// `dst` now holds the constant (or address) `value`.
    Set { dst: u8, value: u64 },
    /// `dst` now holds what `src` held.
    Copy { dst: u8, src: u8 },
    /// These registers (a bit mask) now hold something unknown.
    Clobber(u16),
    /// No general-purpose register is written.
    None,
}

/// Where control goes after an instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flow {
    Next,
    /// A call; the target when it is direct.
    Call(Option<u64>),
    /// An unconditional jump; the target when it is direct.
    Jump(Option<u64>),
    /// A conditional jump (execution may also fall through).
    Branch(u64),
    /// `ret`, `int3`, `ud2`, `hlt`: no fall-through.
    Stop,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Insn {
    pub len: usize,
    pub effect: Effect,
    pub flow: Flow,
}

const fn bit(reg: u8) -> u16 {
    1 << (reg & 15)
}

/// Decodes the instruction at the start of `code`, which sits at virtual address `va`.
/// `None` for encodings this decoder does not model (and for truncated input).
pub(crate) fn decode(code: &[u8], va: u64) -> Option<Insn> {
    let mut p = 0usize;
    let mut opsize16 = false;
    let mut rep = false;
    // Legacy prefixes (at most four are meaningful; more is not an instruction we model).
    loop {
        let b = *code.get(p)?;
        match b {
            0x66 => opsize16 = true,
            0xF2 | 0xF3 => rep = true,
            0x2E | 0x3E | 0x26 | 0x36 | 0x64 | 0x65 | 0x67 | 0xF0 => {}
            _ => break,
        }
        p += 1;
        if p > 4 {
            return None;
        }
    }
    let mut rex = 0u8;
    if (0x40..=0x4F).contains(code.get(p)?) {
        rex = code[p];
        p += 1;
    }
    let w = rex & 8 != 0;
    let r_ext = (rex & 4) << 1;
    let b_ext = (rex & 1) << 3;
    let imm_z = if opsize16 { 2 } else { 4 };
    let op = *code.get(p)?;
    p += 1;

    // Helpers over the ModRM byte that follows the opcode at `p`.
    let modrm_at = |p: usize| -> Option<ModRm> { ModRm::parse(code, p, r_ext, b_ext) };
    let done = |len: usize, effect: Effect, flow: Flow| -> Option<Insn> {
        if len > 15 || len > code.len() { None } else { Some(Insn { len, effect, flow }) }
    };
    let rel_target = |end: usize, rel: i64| -> u64 { va.wrapping_add(end as u64).wrapping_add(rel as u64) };

    match op {
        // ALU r/m, reg and reg, r/m: add, or, adc, sbb, and, sub, xor, cmp.
        0x00..=0x3F if op & 7 <= 3 => {
            let m = modrm_at(p)?;
            let len = m.end;
            let alu = op >> 3; // 0 add 1 or 2 adc 3 sbb 4 and 5 sub 6 xor 7 cmp
            let to_reg = op & 2 != 0;
            let effect = if alu == 7 {
                Effect::None
            } else if m.is_reg() && m.reg == m.rm && (alu == 6 || alu == 5) {
                // xor r, r / sub r, r: the idiom for zero (a 32-bit write also zeroes the top).
                if op & 1 == 1 { Effect::Set { dst: m.reg, value: 0 } } else { Effect::Clobber(bit(m.reg)) }
            } else if to_reg {
                Effect::Clobber(bit(m.reg))
            } else if m.is_reg() {
                Effect::Clobber(bit(m.rm))
            } else {
                Effect::None
            };
            done(len, effect, Flow::Next)
        }
        // ALU al/eax, imm.
        0x04 | 0x0C | 0x14 | 0x1C | 0x24 | 0x2C | 0x34 | 0x3C => {
            done(p + 1, if op == 0x3C { Effect::None } else { Effect::Clobber(bit(RAX)) }, Flow::Next)
        }
        0x05 | 0x0D | 0x15 | 0x1D | 0x25 | 0x2D | 0x35 | 0x3D => {
            done(p + imm_z, if op == 0x3D { Effect::None } else { Effect::Clobber(bit(RAX)) }, Flow::Next)
        }
        0x50..=0x57 => done(p, Effect::None, Flow::Next),
        0x58..=0x5F => done(p, Effect::Clobber(bit((op - 0x58) | b_ext)), Flow::Next),
        0x63 => {
            let m = modrm_at(p)?;
            done(m.end, Effect::Clobber(bit(m.reg)), Flow::Next)
        }
        0x68 => done(p + 4, Effect::None, Flow::Next),
        0x6A => done(p + 1, Effect::None, Flow::Next),
        0x69 => {
            let m = modrm_at(p)?;
            done(m.end + imm_z, Effect::Clobber(bit(m.reg)), Flow::Next)
        }
        0x6B => {
            let m = modrm_at(p)?;
            done(m.end + 1, Effect::Clobber(bit(m.reg)), Flow::Next)
        }
        0x70..=0x7F => {
            let rel = *code.get(p)? as i8 as i64;
            done(p + 1, Effect::None, Flow::Branch(rel_target(p + 1, rel)))
        }
        0x80 | 0x81 | 0x83 => {
            let m = modrm_at(p)?;
            let imm = if op == 0x81 { imm_z } else { 1 };
            let effect = if m.reg_field == 7 || !m.is_reg() { Effect::None } else { Effect::Clobber(bit(m.rm)) };
            done(m.end + imm, effect, Flow::Next)
        }
        0x84 | 0x85 => done(modrm_at(p)?.end, Effect::None, Flow::Next),
        0x86 | 0x87 => {
            let m = modrm_at(p)?;
            let rm = if m.is_reg() { bit(m.rm) } else { 0 };
            done(m.end, Effect::Clobber(bit(m.reg) | rm), Flow::Next)
        }
        0x88 | 0x89 => {
            let m = modrm_at(p)?;
            let effect = match (m.is_reg(), op) {
                (true, 0x89) if !opsize16 => Effect::Copy { dst: m.rm, src: m.reg },
                (true, _) => Effect::Clobber(bit(m.rm)),
                (false, _) => Effect::None,
            };
            done(m.end, effect, Flow::Next)
        }
        0x8A | 0x8B => {
            let m = modrm_at(p)?;
            let effect = if m.is_reg() && op == 0x8B && !opsize16 {
                Effect::Copy { dst: m.reg, src: m.rm }
            } else {
                Effect::Clobber(bit(m.reg))
            };
            done(m.end, effect, Flow::Next)
        }
        0x8D => {
            let m = modrm_at(p)?;
            let effect = match m.rip_disp {
                Some(disp) if !opsize16 => {
                    let target = rel_target(m.end, disp as i64);
                    Effect::Set { dst: m.reg, value: if w { target } else { target & 0xFFFF_FFFF } }
                }
                _ => Effect::Clobber(bit(m.reg)),
            };
            done(m.end, effect, Flow::Next)
        }
        0x8F => {
            let m = modrm_at(p)?;
            done(m.end, if m.is_reg() { Effect::Clobber(bit(m.rm)) } else { Effect::None }, Flow::Next)
        }
        0x90 => done(p, Effect::None, Flow::Next),
        0x91..=0x97 => done(p, Effect::Clobber(bit(RAX) | bit((op - 0x90) | b_ext)), Flow::Next),
        0x98 => done(p, Effect::Clobber(bit(RAX)), Flow::Next),
        0x99 => done(p, Effect::Clobber(bit(RDX)), Flow::Next),
        0xA8 => done(p + 1, Effect::None, Flow::Next),
        0xA9 => done(p + imm_z, Effect::None, Flow::Next),
        0xB0..=0xB7 => done(p + 1, Effect::Clobber(bit((op - 0xB0) | b_ext)), Flow::Next),
        0xB8..=0xBF => {
            let dst = (op - 0xB8) | b_ext;
            if w {
                let imm = read_u64(code, p)?;
                done(p + 8, Effect::Set { dst, value: imm }, Flow::Next)
            } else if opsize16 {
                done(p + 2, Effect::Clobber(bit(dst)), Flow::Next)
            } else {
                let imm = read_u32(code, p)? as u64;
                done(p + 4, Effect::Set { dst, value: imm }, Flow::Next)
            }
        }
        0xC0 | 0xC1 => {
            let m = modrm_at(p)?;
            done(m.end + 1, if m.is_reg() { Effect::Clobber(bit(m.rm)) } else { Effect::None }, Flow::Next)
        }
        0xD0..=0xD3 => {
            let m = modrm_at(p)?;
            done(m.end, if m.is_reg() { Effect::Clobber(bit(m.rm)) } else { Effect::None }, Flow::Next)
        }
        0xC2 => done(p + 2, Effect::None, Flow::Stop),
        0xC3 | 0xCC | 0xF4 => done(p, Effect::None, Flow::Stop),
        0xC6 => {
            let m = modrm_at(p)?;
            if m.reg_field != 0 {
                return None;
            }
            done(m.end + 1, if m.is_reg() { Effect::Clobber(bit(m.rm)) } else { Effect::None }, Flow::Next)
        }
        0xC7 => {
            let m = modrm_at(p)?;
            if m.reg_field != 0 {
                return None;
            }
            if opsize16 {
                return done(m.end + 2, if m.is_reg() { Effect::Clobber(bit(m.rm)) } else { Effect::None }, Flow::Next);
            }
            let imm = read_u32(code, m.end)?;
            let value = if w { imm as i32 as i64 as u64 } else { imm as u64 };
            done(m.end + 4, if m.is_reg() { Effect::Set { dst: m.rm, value } } else { Effect::None }, Flow::Next)
        }
        0xE8 => {
            let rel = read_u32(code, p)? as i32 as i64;
            done(p + 4, Effect::Clobber(CALLER_SAVED), Flow::Call(Some(rel_target(p + 4, rel))))
        }
        0xE9 => {
            let rel = read_u32(code, p)? as i32 as i64;
            done(p + 4, Effect::None, Flow::Jump(Some(rel_target(p + 4, rel))))
        }
        0xEB => {
            let rel = *code.get(p)? as i8 as i64;
            done(p + 1, Effect::None, Flow::Jump(Some(rel_target(p + 1, rel))))
        }
        0xF6 | 0xF7 => {
            let m = modrm_at(p)?;
            let imm = match (m.reg_field, op) {
                (0 | 1, 0xF6) => 1,
                (0 | 1, _) => imm_z,
                _ => 0,
            };
            let effect = match m.reg_field {
                0 | 1 => Effect::None,
                2 | 3 => {
                    if m.is_reg() {
                        Effect::Clobber(bit(m.rm))
                    } else {
                        Effect::None
                    }
                }
                _ => Effect::Clobber(bit(RAX) | bit(RDX)),
            };
            done(m.end + imm, effect, Flow::Next)
        }
        0xFE => {
            let m = modrm_at(p)?;
            done(m.end, if m.is_reg() { Effect::Clobber(bit(m.rm)) } else { Effect::None }, Flow::Next)
        }
        0xFF => {
            let m = modrm_at(p)?;
            match m.reg_field {
                0 | 1 => done(m.end, if m.is_reg() { Effect::Clobber(bit(m.rm)) } else { Effect::None }, Flow::Next),
                2 => done(m.end, Effect::Clobber(CALLER_SAVED), Flow::Call(None)),
                4 => done(m.end, Effect::None, Flow::Jump(None)),
                6 => done(m.end, Effect::None, Flow::Next),
                _ => None,
            }
        }
        0x0F => decode_0f(code, p, va, rep, r_ext, b_ext, imm_z),
        // VEX-encoded (AVX, BMI): lengths only; a GPR destination is treated as clobbered.
        0xC4 | 0xC5 if rex == 0 => decode_vex(code, p - 1),
        _ => None,
    }
}

/// Registers a call may change (System V caller-saved).
const CALLER_SAVED: u16 = bit(RAX) | bit(RCX) | bit(RDX) | bit(RSI) | bit(RDI) | bit(R8) | bit(R9) | bit(10) | bit(11);

#[allow(clippy::too_many_arguments)]
fn decode_0f(code: &[u8], p: usize, va: u64, rep: bool, r_ext: u8, b_ext: u8, imm_z: usize) -> Option<Insn> {
    let op = *code.get(p)?;
    let p = p + 1;
    let modrm_at = |p: usize| -> Option<ModRm> { ModRm::parse(code, p, r_ext, b_ext) };
    let done = |len: usize, effect: Effect, flow: Flow| -> Option<Insn> {
        if len > 15 || len > code.len() { None } else { Some(Insn { len, effect, flow }) }
    };
    let _ = imm_z;
    match op {
        0x05 => done(p, Effect::Clobber(bit(RAX) | bit(RCX) | bit(11)), Flow::Next),
        0x0B => done(p, Effect::None, Flow::Stop),
        // nop r/m, endbr64 (F3 0F 1E FA), prefetch, hint nops.
        0x0D | 0x18..=0x1F => done(modrm_at(p)?.end, Effect::None, Flow::Next),
        0x77 => done(p, Effect::None, Flow::Next),
        // SSE moves and arithmetic: XMM destinations, or memory.
        0x10..=0x17 | 0x28..=0x2B | 0x2E | 0x2F | 0x51..=0x7F if op != 0x7E => {
            let m = modrm_at(p)?;
            let imm = if matches!(op, 0x70..=0x73) { 1 } else { 0 };
            done(m.end + imm, Effect::None, Flow::Next)
        }
        // cvt*2si, movmskps, movd/movq to a GPR.
        0x2C | 0x2D | 0x50 => {
            let m = modrm_at(p)?;
            done(m.end, Effect::Clobber(bit(m.reg)), Flow::Next)
        }
        0x7E => {
            let m = modrm_at(p)?;
            done(m.end, if m.is_reg() { Effect::Clobber(bit(m.rm)) } else { Effect::None }, Flow::Next)
        }
        0x40..=0x4F | 0xAF | 0xB6 | 0xB7 | 0xBC | 0xBD | 0xBE | 0xBF | 0xB8 => {
            let m = modrm_at(p)?;
            done(m.end, Effect::Clobber(bit(m.reg)), Flow::Next)
        }
        0x80..=0x8F => {
            let rel = read_u32(code, p)? as i32 as i64;
            done(p + 4, Effect::None, Flow::Branch(va.wrapping_add((p + 4) as u64).wrapping_add(rel as u64)))
        }
        0x90..=0x9F => {
            let m = modrm_at(p)?;
            done(m.end, if m.is_reg() { Effect::Clobber(bit(m.rm)) } else { Effect::None }, Flow::Next)
        }
        0xA2 => done(p, Effect::Clobber(bit(RAX) | bit(RCX) | bit(RDX) | bit(3)), Flow::Next),
        0xA3 => done(modrm_at(p)?.end, Effect::None, Flow::Next),
        0xA4 | 0xAC | 0xBA => {
            let m = modrm_at(p)?;
            let effect =
                if m.is_reg() && !(op == 0xBA && m.reg_field == 4) { Effect::Clobber(bit(m.rm)) } else { Effect::None };
            done(m.end + 1, effect, Flow::Next)
        }
        0xA5 | 0xAD | 0xAB | 0xB3 | 0xBB => {
            let m = modrm_at(p)?;
            done(m.end, if m.is_reg() { Effect::Clobber(bit(m.rm)) } else { Effect::None }, Flow::Next)
        }
        0xB0 | 0xB1 | 0xC0 | 0xC1 => {
            let m = modrm_at(p)?;
            let rm = if m.is_reg() { bit(m.rm) } else { 0 };
            done(m.end, Effect::Clobber(bit(RAX) | bit(m.reg) | rm), Flow::Next)
        }
        0xC8..=0xCF => done(p, Effect::Clobber(bit((op - 0xC8) | b_ext)), Flow::Next),
        0x38 => {
            let op3 = *code.get(p)?;
            let m = modrm_at(p + 1)?;
            // movbe / crc32 write a GPR; the rest are SSE/AES with XMM destinations.
            let effect = if matches!(op3, 0xF0 | 0xF1) && (rep || m.is_reg()) {
                Effect::Clobber(bit(m.reg))
            } else {
                Effect::None
            };
            done(m.end, effect, Flow::Next)
        }
        0x3A => {
            let m = modrm_at(p + 1)?;
            let op3 = code[p];
            // pextr* write a GPR (or memory) through r/m.
            let effect =
                if matches!(op3, 0x14..=0x17) && m.is_reg() { Effect::Clobber(bit(m.rm)) } else { Effect::None };
            done(m.end + 1, effect, Flow::Next)
        }
        _ => None,
    }
}

/// VEX prefix at `start` (`C4`/`C5`). Only lengths are modelled; BMI-style GPR destinations
/// (maps 0F38/0F3A with opcodes F0–F7) are treated as clobbered.
fn decode_vex(code: &[u8], start: usize) -> Option<Insn> {
    let c = *code.get(start)?;
    let (map, r_ext, b_ext, vvvv, p) = if c == 0xC5 {
        let b1 = *code.get(start + 1)?;
        (1u8, if b1 & 0x80 == 0 { 8 } else { 0 }, 0u8, (!b1 >> 3) & 15, start + 2)
    } else {
        let b1 = *code.get(start + 1)?;
        let b2 = *code.get(start + 2)?;
        (b1 & 0x1F, if b1 & 0x80 == 0 { 8 } else { 0 }, if b1 & 0x20 == 0 { 8 } else { 0 }, (!b2 >> 3) & 15, start + 3)
    };
    if !(1..=3).contains(&map) {
        return None;
    }
    let op = *code.get(p)?;
    let m = ModRm::parse(code, p + 1, r_ext, b_ext)?;
    let imm = if map == 3 { 1 } else { 0 };
    let effect = if map >= 2 && (0xF0..=0xF7).contains(&op) {
        Effect::Clobber(bit(m.reg) | bit(vvvv) | bit(RDX))
    } else {
        Effect::None
    };
    let len = m.end + imm;
    if len > 15 || len > code.len() {
        return None;
    }
    Some(Insn { len, effect, flow: Flow::Next })
}

struct ModRm {
    /// Register operand (ModRM.reg with REX.R).
    reg: u8,
    /// The raw 3-bit reg field (the opcode extension for group opcodes).
    reg_field: u8,
    /// Register number of the r/m operand when `mode == 3`.
    rm: u8,
    mode: u8,
    /// `[rip + disp32]` operand.
    rip_disp: Option<i32>,
    /// Offset just past ModRM, SIB and displacement.
    end: usize,
}

impl ModRm {
    fn parse(code: &[u8], p: usize, r_ext: u8, b_ext: u8) -> Option<ModRm> {
        let b = *code.get(p)?;
        let mode = b >> 6;
        let reg_field = (b >> 3) & 7;
        let rm_low = b & 7;
        let mut end = p + 1;
        let mut rip_disp = None;
        if mode != 3 {
            if rm_low == 4 {
                let sib = *code.get(end)?;
                end += 1;
                if mode == 0 && sib & 7 == 5 {
                    end += 4;
                }
            } else if mode == 0 && rm_low == 5 {
                rip_disp = Some(read_u32(code, end)? as i32);
                end += 4;
            }
            match mode {
                1 => end += 1,
                2 => end += 4,
                _ => {}
            }
        }
        if end > code.len() {
            return None;
        }
        Some(ModRm { reg: reg_field | r_ext, reg_field, rm: rm_low | b_ext, mode, rip_disp, end })
    }

    fn is_reg(&self) -> bool {
        self.mode == 3
    }
}

fn read_u32(code: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(code.get(at..at.checked_add(4)?)?.try_into().ok()?))
}

fn read_u64(code: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(code.get(at..at.checked_add(8)?)?.try_into().ok()?))
}

/// A contiguous run of machine code and the virtual address of its first byte.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Code<'d> {
    pub vaddr: u64,
    pub bytes: &'d [u8],
}

impl<'d> Code<'d> {
    pub fn contains(&self, va: u64) -> bool {
        va >= self.vaddr && va - self.vaddr < self.bytes.len() as u64
    }

    /// The bytes from `va` to the end of the run.
    pub fn from(&self, va: u64) -> Option<&'d [u8]> {
        if !self.contains(va) {
            return None;
        }
        Some(&self.bytes[(va - self.vaddr) as usize..])
    }
}

/// The code regions of a file, for lookups by address.
pub(crate) fn region_of<'a, 'd>(regions: &'a [Code<'d>], va: u64) -> Option<&'a Code<'d>> {
    regions.iter().find(|r| r.contains(va))
}

/// A constant known to be in a register.
pub(crate) type Regs = [Option<u64>; 16];

fn apply(regs: &mut Regs, effect: Effect) {
    match effect {
        Effect::Set { dst, value } => regs[(dst & 15) as usize] = Some(value),
        Effect::Copy { dst, src } => regs[(dst & 15) as usize] = regs[(src & 15) as usize],
        Effect::Clobber(mask) => {
            for (i, r) in regs.iter_mut().enumerate() {
                if mask & (1 << i) != 0 {
                    *r = None;
                }
            }
        }
        Effect::None => {}
    }
}

/// The most instructions followed forwards from a reference to the call it feeds.
const FORWARD_LIMIT: usize = 16;
/// The most instructions collected backwards from a reference.
const BACKWARD_LIMIT: usize = 4;

/// Registers holding constants at the first call reached from the instruction at `start`,
/// counting the straight-line register set-up just before `start` too. Follows at most one
/// unconditional direct jump (compilers share one call between error sites that way) and
/// falls through conditional branches. `None` if no call is reached within the window.
pub(crate) fn args_at_call(regions: &[Code<'_>], start: u64) -> Option<(Regs, u64)> {
    let region = region_of(regions, start)?;
    let mut regs: Regs = [None; 16];
    for effect in backward_chain(region, start) {
        apply(&mut regs, effect);
    }
    let mut va = start;
    let mut jumped = false;
    let mut code = *region;
    for _ in 0..FORWARD_LIMIT {
        let insn = decode(code.from(va)?, va)?;
        match insn.flow {
            Flow::Call(_) => return Some((regs, va)),
            _ => apply(&mut regs, insn.effect),
        }
        match insn.flow {
            Flow::Next | Flow::Branch(_) => va += insn.len as u64,
            Flow::Jump(Some(target)) if !jumped => {
                jumped = true;
                code = *region_of(regions, target)?;
                va = target;
            }
            _ => return None,
        }
    }
    None
}

/// Register writes (constants, copies) immediately before `end`, oldest first. Decoding
/// backwards is ambiguous, so only the few instruction shapes that set up arguments are
/// accepted, and each must end exactly where the next one starts.
fn backward_chain(region: &Code<'_>, end: u64) -> Vec<Effect> {
    let mut out = Vec::new();
    let mut p = end;
    'outer: for _ in 0..BACKWARD_LIMIT {
        for len in [10usize, 7, 6, 5, 3, 2] {
            let Some(s) = p.checked_sub(len as u64) else { continue };
            let Some(bytes) = region.from(s) else { continue };
            let Some(insn) = decode(bytes, s) else { continue };
            if insn.len == len
                && insn.flow == Flow::Next
                && matches!(insn.effect, Effect::Set { .. } | Effect::Copy { .. })
            {
                out.push(insn.effect);
                p = s;
                continue 'outer;
            }
        }
        break;
    }
    out.reverse();
    out
}

/// One instruction that puts an address of interest into a register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ref {
    /// Address of the instruction.
    pub va: u64,
    /// The address it materialises (one of the targets asked for).
    pub target: u64,
}

/// Every `lea r64, [rip+disp32]` in `regions` whose value is one of `targets`, and with
/// `absolute` (position-dependent code, where addresses fit in 32 bits) every `mov r32, imm32`
/// / `mov r64, simm32` of one. Stops after `limit` hits (a guard against pathological input).
pub(crate) fn find_refs(regions: &[Code<'_>], targets: &[u64], absolute: bool, limit: usize) -> Vec<Ref> {
    let mut out = Vec::new();
    if targets.is_empty() {
        return out;
    }
    for region in regions {
        let bytes = region.bytes;
        // RIP-relative lea: REX.W (48/4C) 8D ModRM(mod=00, rm=101) disp32.
        for p in memchr::memchr_iter(0x8D, bytes) {
            if p == 0 || p + 6 > bytes.len() {
                continue;
            }
            let rex = bytes[p - 1];
            if rex != 0x48 && rex != 0x4C {
                continue;
            }
            if bytes[p + 1] & 0xC7 != 0x05 {
                continue;
            }
            let disp = i32::from_le_bytes([bytes[p + 2], bytes[p + 3], bytes[p + 4], bytes[p + 5]]);
            let next = region.vaddr.wrapping_add(p as u64 + 6);
            let target = next.wrapping_add(disp as i64 as u64);
            if targets.contains(&target) {
                out.push(Ref { va: region.vaddr + p as u64 - 1, target });
                if out.len() >= limit {
                    return out;
                }
            }
        }
        // Absolute 32-bit immediates (non-PIE code).
        for &target in targets.iter().filter(|_| absolute) {
            let Ok(imm) = u32::try_from(target) else { continue };
            let needle = imm.to_le_bytes();
            for p in memmem::find_iter(bytes, &needle) {
                let start = if p >= 1 && (0xB8..=0xBF).contains(&bytes[p - 1]) {
                    // mov r32, imm32, possibly with REX.B (41) for r8d–r15d.
                    if p >= 2 && bytes[p - 2] == 0x41 { p - 2 } else { p - 1 }
                } else if p >= 3
                    && matches!(bytes[p - 3], 0x48 | 0x49)
                    && bytes[p - 2] == 0xC7
                    && bytes[p - 1] & 0xF8 == 0xC0
                {
                    p - 3
                } else {
                    continue;
                };
                out.push(Ref { va: region.vaddr + start as u64, target });
                if out.len() >= limit {
                    return out;
                }
            }
        }
    }
    out.sort_by_key(|r| r.va);
    out.dedup();
    out
}

/// Whether `code[from..to)` holds a direct `call rel32`, `jmp rel32` or `jmp rel8` (a tail
/// call) to `target`. Byte-level, not instruction-aligned: a false match needs the exact
/// displacement, which is as unlikely as it sounds.
pub(crate) fn has_direct_transfer(code: &Code<'_>, from: u64, to: u64, target: u64) -> bool {
    let Some(bytes) = code.from(from) else { return false };
    let len = (to.saturating_sub(from) as usize).min(bytes.len());
    let bytes = &bytes[..len];
    memchr::memchr3_iter(0xE8, 0xE9, 0xEB, bytes).any(|p| {
        let (rel, end) = if bytes[p] == 0xEB {
            match bytes.get(p + 1) {
                Some(&b) => (b as i8 as i64, p + 2),
                None => return false,
            }
        } else {
            match bytes.get(p + 1..p + 5) {
                Some(b) => (i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64, p + 5),
                None => return false,
            }
        };
        from.wrapping_add(end as u64).wrapping_add(rel as u64) == target
    })
}

/// For each of `targets`, whether a direct `call rel32` within `window` bytes of it (in its
/// code region) lands on it.
pub(crate) fn direct_call_targets(regions: &[Code<'_>], targets: &[u64], window: u64) -> Vec<bool> {
    targets
        .iter()
        .map(|&target| {
            let Some(code) = region_of(regions, target) else { return false };
            let from = target.saturating_sub(window).max(code.vaddr);
            let to = target.saturating_add(window);
            has_call_to(code, from, to, target)
        })
        .collect()
}

fn has_call_to(code: &Code<'_>, from: u64, to: u64, target: u64) -> bool {
    let Some(bytes) = code.from(from) else { return false };
    let bytes = &bytes[..(to.saturating_sub(from) as usize).min(bytes.len())];
    memchr::memchr_iter(0xE8, bytes).any(|p| {
        p + 5 <= bytes.len() && {
            let rel = i32::from_le_bytes([bytes[p + 1], bytes[p + 2], bytes[p + 3], bytes[p + 4]]);
            from.wrapping_add(p as u64 + 5).wrapping_add(rel as i64 as u64) == target
        }
    })
}

/// `push rbp; mov rbp, rsp`.
pub(crate) const FRAME_PROLOGUE: [u8; 4] = [0x55, 0x48, 0x89, 0xE5];
const ENDBR64: [u8; 4] = [0xF3, 0x0F, 0x1E, 0xFA];
/// How far back from an address a function entry is looked for.
const PROLOGUE_SCAN: u64 = 128 * 1024;

/// The entry of the function containing `va`, found by scanning backwards for a frame-pointer
/// prologue (with an optional `endbr64` before it). Only for code built with frame pointers.
/// The entry must look like one: 16-byte aligned or right after padding or a `ret`.
pub(crate) fn prologue_entry(code: &Code<'_>, va: u64) -> Option<u64> {
    if !code.contains(va) {
        return None;
    }
    let lo = va.saturating_sub(PROLOGUE_SCAN).max(code.vaddr);
    let hi = ((va - code.vaddr) as usize + FRAME_PROLOGUE.len()).min(code.bytes.len());
    let window = &code.bytes[(lo - code.vaddr) as usize..hi];
    let at = memmem::rfind(window, &FRAME_PROLOGUE)?;
    let mut entry = lo + at as u64;
    let idx = (entry - code.vaddr) as usize;
    if idx >= 4 && code.bytes[idx - 4..idx] == ENDBR64 {
        entry -= 4;
    }
    let idx = (entry - code.vaddr) as usize;
    let after_padding = idx > 0 && matches!(code.bytes[idx - 1], 0xCC | 0xC3 | 0x90);
    (entry.is_multiple_of(16) || after_padding).then_some(entry)
}

/// A rough end for a function found by [`prologue_entry`]: the next prologue, or 64 KiB.
pub(crate) fn prologue_function_end(code: &Code<'_>, entry: u64) -> u64 {
    let Some(bytes) = code.from(entry + 1) else { return entry };
    let window = &bytes[..bytes.len().min(64 * 1024)];
    match memmem::find(window, &FRAME_PROLOGUE) {
        Some(at) => entry + 1 + at as u64,
        None => entry + 1 + window.len() as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(bytes: &[u8]) -> Insn {
        decode(bytes, 0x1000).expect("decodes")
    }

    #[test]
    fn decodes_argument_setup_instructions() {
        // mov ecx, 0x29e59d
        assert_eq!(
            one(&[0xB9, 0x9D, 0xE5, 0x29, 0x00]),
            Insn { len: 5, effect: Effect::Set { dst: RCX, value: 0x29e59d }, flow: Flow::Next }
        );
        // mov r8d, 0x345
        assert_eq!(one(&[0x41, 0xB8, 0x45, 0x03, 0, 0]).effect, Effect::Set { dst: R8, value: 0x345 });
        // xor esi, esi
        assert_eq!(one(&[0x31, 0xF6]), Insn { len: 2, effect: Effect::Set { dst: RSI, value: 0 }, flow: Flow::Next });
        // mov r14, rdi
        assert_eq!(one(&[0x49, 0x89, 0xFE]).effect, Effect::Copy { dst: 14, src: RDI });
        // mov rdi, r14
        assert_eq!(one(&[0x4C, 0x89, 0xF7]).effect, Effect::Copy { dst: RDI, src: 14 });
        // lea rdx, [rip+0x10] at 0x1000 -> 0x1017
        assert_eq!(one(&[0x48, 0x8D, 0x15, 0x10, 0, 0, 0]).effect, Effect::Set { dst: RDX, value: 0x1017 });
        // lea rdi, [rip-0x20]
        assert_eq!(
            one(&[0x48, 0x8D, 0x3D, 0xE0, 0xFF, 0xFF, 0xFF]).effect,
            Effect::Set { dst: RDI, value: 0x1007 - 0x20 }
        );
        // mov rcx, -1 (48 C7 C1 imm32, sign-extended)
        assert_eq!(one(&[0x48, 0xC7, 0xC1, 0xFF, 0xFF, 0xFF, 0xFF]).effect, Effect::Set { dst: RCX, value: u64::MAX });
        // movabs rax, imm64
        assert_eq!(one(&[0x48, 0xB8, 1, 2, 3, 4, 5, 6, 7, 8]).len, 10);
        // call rel32
        assert_eq!(one(&[0xE8, 0x00, 0x01, 0, 0]).flow, Flow::Call(Some(0x1105)));
        // jmp rel8 backwards
        assert_eq!(one(&[0xEB, 0xFE]).flow, Flow::Jump(Some(0x1000)));
        // mov dword [rsp+8], 0xBF (C7 44 24 08 imm32)
        assert_eq!(
            one(&[0xC7, 0x44, 0x24, 0x08, 0xBF, 0, 0, 0]),
            Insn { len: 8, effect: Effect::None, flow: Flow::Next }
        );
        // mov rax, [rip+disp] is a load, not an address
        assert_eq!(one(&[0x48, 0x8B, 0x05, 0, 0, 0, 0]).effect, Effect::Clobber(1 << RAX));
        // endbr64
        assert_eq!(one(&[0xF3, 0x0F, 0x1E, 0xFA]).len, 4);
        // cmp qword [rdi+0x98], 0
        assert_eq!(one(&[0x48, 0x83, 0xBF, 0x98, 0, 0, 0, 0]), Insn { len: 8, effect: Effect::None, flow: Flow::Next });
        // unknown / truncated
        assert!(decode(&[0x0F, 0xFF], 0).is_none());
        assert!(decode(&[0xB9, 0x01], 0).is_none());
        assert!(decode(&[], 0).is_none());
        assert!(decode(&[0x66; 20], 0).is_none());
    }

    /// The shape of a BoringSSL error site in a non-PIE Bun build (bytes from bun 1.4.5).
    #[test]
    fn arguments_at_the_call_whatever_the_order() {
        let site: Vec<u8> = [
            &[0xB9, 0x9D, 0xE5, 0x29, 0x00][..], // mov ecx, file
            &[0x49, 0x89, 0xFE],                 // mov r14, rdi
            &[0xBF, 0x10, 0, 0, 0],              // mov edi, 16
            &[0x31, 0xF6],                       // xor esi, esi
            &[0xBA, 0xE2, 0, 0, 0],              // mov edx, 226
            &[0x41, 0xB8, 0x45, 0x03, 0, 0],     // mov r8d, 837
            &[0xE8, 0, 0, 0, 0],                 // call
        ]
        .concat();
        let code = [Code { vaddr: 0x2000, bytes: &site }];
        let (regs, call) = args_at_call(&code, 0x2000).expect("reaches the call");
        assert_eq!(call, 0x2000 + site.len() as u64 - 5);
        assert_eq!(regs[RCX as usize], Some(0x29e59d));
        assert_eq!(regs[RDI as usize], Some(16));
        assert_eq!(regs[RSI as usize], Some(0));
        assert_eq!(regs[RDX as usize], Some(226));
        assert_eq!(regs[R8 as usize], Some(837));

        // The same with the argument set-up before the reference and the file address moved
        // through another register (lea rax, [rip+...]; mov rcx, rax).
        let site: Vec<u8> = [
            &[0xBF, 0x10, 0, 0, 0][..],            // mov edi, 16
            &[0xBA, 0xE2, 0, 0, 0],                // mov edx, 226
            &[0x48, 0x8D, 0x05, 0x00, 0x10, 0, 0], // lea rax, [rip+0x1000]
            &[0x48, 0x89, 0xC1],                   // mov rcx, rax
            &[0x41, 0xB8, 0x45, 0x03, 0, 0],       // mov r8d, 837
            &[0xEB, 0x02],                         // jmp +2
            &[0xCC, 0xCC],
            &[0xE8, 0, 0, 0, 0], // call
        ]
        .concat();
        let code = [Code { vaddr: 0x4000, bytes: &site }];
        let (regs, _) = args_at_call(&code, 0x400A).expect("reaches the call");
        assert_eq!(regs[RDI as usize], Some(16));
        assert_eq!(regs[RDX as usize], Some(226));
        assert_eq!(regs[RCX as usize], Some(0x4011 + 0x1000));
        assert_eq!(regs[R8 as usize], Some(837));

        // A clobber after the set-up wins.
        let site: Vec<u8> = [&[0xBA, 0xE2, 0, 0, 0][..], &[0x8B, 0x17], &[0xE8, 0, 0, 0, 0]].concat();
        let code = [Code { vaddr: 0, bytes: &site }];
        let (regs, _) = args_at_call(&code, 0).unwrap();
        assert_eq!(regs[RDX as usize], None);

        // No call: nothing.
        let site = [0xBA, 0xE2, 0, 0, 0, 0xC3];
        assert!(args_at_call(&[Code { vaddr: 0, bytes: &site }], 0).is_none());
    }

    #[test]
    fn finds_rip_relative_and_absolute_references() {
        let mut bytes = vec![0x90u8; 64];
        // lea rcx, [rip+X] at 0x10 -> next 0x17 + 0x100 = 0x117 (+ vaddr 0x1000)
        bytes[0x10..0x17].copy_from_slice(&[0x48, 0x8D, 0x0D, 0x00, 0x01, 0x00, 0x00]);
        // mov edx, 0x1117 at 0x20
        bytes[0x20..0x25].copy_from_slice(&[0xBA, 0x17, 0x11, 0x00, 0x00]);
        // mov r9d, 0x1117 at 0x30
        bytes[0x30..0x36].copy_from_slice(&[0x41, 0xB9, 0x17, 0x11, 0x00, 0x00]);
        // the same value as a plain data word (not an instruction): ignored
        bytes[0x38..0x3C].copy_from_slice(&[0x17, 0x11, 0x00, 0x00]);
        let code = [Code { vaddr: 0x1000, bytes: &bytes }];
        let refs = find_refs(&code, &[0x1117], true, 100);
        assert_eq!(refs.iter().map(|r| r.va).collect::<Vec<_>>(), vec![0x1010, 0x1020, 0x1030]);
        assert!(find_refs(&code, &[0x2222], true, 100).is_empty());
        assert_eq!(find_refs(&code, &[0x1117], false, 100).len(), 1, "position-independent: lea only");
        assert_eq!(find_refs(&code, &[0x1117], true, 1).len(), 1);
    }

    #[test]
    fn prologue_scan_finds_the_entry() {
        let mut bytes = vec![0xCCu8; 0x100];
        bytes[0x40..0x44].copy_from_slice(&FRAME_PROLOGUE);
        bytes[0x80..0x84].copy_from_slice(&ENDBR64);
        bytes[0x84..0x88].copy_from_slice(&FRAME_PROLOGUE);
        let code = Code { vaddr: 0x10_0000, bytes: &bytes };
        assert_eq!(prologue_entry(&code, 0x10_0050), Some(0x10_0040));
        assert_eq!(prologue_entry(&code, 0x10_0040), Some(0x10_0040));
        assert_eq!(prologue_entry(&code, 0x10_0090), Some(0x10_0080));
        assert_eq!(prologue_entry(&code, 0x10_0030), None);
        assert_eq!(prologue_function_end(&code, 0x10_0040), 0x10_0084);
        // Not aligned and not after padding: rejected.
        let mut bytes = vec![0x11u8; 0x40];
        bytes[0x13..0x17].copy_from_slice(&FRAME_PROLOGUE);
        let code = Code { vaddr: 0, bytes: &bytes };
        assert_eq!(prologue_entry(&code, 0x30), None);
    }

    #[test]
    fn direct_transfers() {
        let mut bytes = vec![0x90u8; 0x200];
        // call 0x1100 at 0x1004: rel = 0x1100 - 0x1009
        let rel = (0x1100i64 - 0x1009) as i32;
        bytes[4] = 0xE8;
        bytes[5..9].copy_from_slice(&rel.to_le_bytes());
        let code = Code { vaddr: 0x1000, bytes: &bytes };
        assert!(has_direct_transfer(&code, 0x1000, 0x1020, 0x1100));
        assert!(!has_direct_transfer(&code, 0x1000, 0x1008, 0x1100));
        // jmp rel8 (a tail call) back to 0x1000 from 0x1010
        let mut bytes = bytes.clone();
        bytes[0x10] = 0xEB;
        bytes[0x11] = (0x1000i64 - 0x1012) as i8 as u8;
        let code = Code { vaddr: 0x1000, bytes: &bytes };
        assert!(has_direct_transfer(&code, 0x1008, 0x1020, 0x1000));
        assert_eq!(direct_call_targets(&[code], &[0x1100, 0x1200], 1 << 20), vec![true, false]);
        assert_eq!(direct_call_targets(&[code], &[0x1100], 0x10), vec![false], "caller outside the window");
    }
}
