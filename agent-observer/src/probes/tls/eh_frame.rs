//! Function boundaries from unwind tables (`.eh_frame` FDEs), which `strip` leaves in place.
//!
//! With `.eh_frame_hdr` (found through `PT_GNU_EH_FRAME`, so it works without section headers)
//! a lookup is a binary search of its sorted table plus one FDE parse. Without it, `.eh_frame`
//! is walked once and its FDE ranges sorted. Only what locating a function needs is parsed: the
//! CIE augmentation (for the FDE pointer encoding) and each FDE's `pc_begin`/`pc_range`.
//!
//! References: the LSB's "Exception Frames" chapter (CIE/FDE layout, `z`/`R`/`P`/`L`
//! augmentations) and the `.eh_frame_hdr` layout in the same document.

use std::ops::Range;

use super::image::Image;

// DW_EH_PE_* pointer encodings.
const PE_OMIT: u8 = 0xFF;
const PE_ABSPTR: u8 = 0x00;
const PE_ULEB128: u8 = 0x01;
const PE_UDATA2: u8 = 0x02;
const PE_UDATA4: u8 = 0x03;
const PE_UDATA8: u8 = 0x04;
const PE_SLEB128: u8 = 0x09;
const PE_SDATA2: u8 = 0x0A;
const PE_SDATA4: u8 = 0x0B;
const PE_SDATA8: u8 = 0x0C;
const PE_PCREL: u8 = 0x10;
const PE_DATAREL: u8 = 0x30;
const PE_INDIRECT: u8 = 0x80;

/// A bounds-checked little cursor over bytes that sit at virtual address `base`.
struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    base: u64,
    class64: bool,
}

impl<'a> Reader<'a> {
    fn new(data: &'a [u8], base: u64, class64: bool) -> Self {
        Reader { data, pos: 0, base, class64 }
    }

    fn va(&self) -> u64 {
        self.base.wrapping_add(self.pos as u64)
    }

    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let out = self.data.get(self.pos..end)?;
        self.pos = end;
        Some(out)
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.bytes(1)?[0])
    }

    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.bytes(2)?.try_into().ok()?))
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.bytes(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.bytes(8)?.try_into().ok()?))
    }

    fn uleb(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            value |= ((b & 0x7F) as u64) << shift;
            if b & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    fn sleb(&mut self) -> Option<i64> {
        let mut value = 0i64;
        let mut shift = 0;
        loop {
            let b = self.u8()?;
            value |= ((b & 0x7F) as i64) << shift;
            shift += 7;
            if b & 0x80 == 0 {
                if shift < 64 && b & 0x40 != 0 {
                    value |= -1i64 << shift;
                }
                return Some(value);
            }
            if shift >= 64 {
                return None;
            }
        }
    }

    fn cstr(&mut self) -> Option<&'a [u8]> {
        let rest = self.data.get(self.pos..)?;
        let n = memchr::memchr(0, rest)?;
        self.pos += n + 1;
        Some(&rest[..n])
    }

    fn skip_pointer(&mut self, enc: u8) -> Option<()> {
        match enc & 0x0F {
            PE_ABSPTR => self.bytes(if self.class64 { 8 } else { 4 }).map(drop),
            PE_ULEB128 => self.uleb().map(drop),
            PE_SLEB128 => self.sleb().map(drop),
            PE_UDATA2 | PE_SDATA2 => self.bytes(2).map(drop),
            PE_UDATA4 | PE_SDATA4 => self.bytes(4).map(drop),
            PE_UDATA8 | PE_SDATA8 => self.bytes(8).map(drop),
            _ => None,
        }
    }

    /// A pointer in encoding `enc`. `datarel` is the base for `DW_EH_PE_datarel`.
    fn pointer(&mut self, enc: u8, datarel: Option<u64>) -> Option<u64> {
        if enc == PE_OMIT || enc & PE_INDIRECT != 0 {
            return None;
        }
        let at = self.va();
        let raw = match enc & 0x0F {
            PE_ABSPTR => {
                if self.class64 {
                    self.u64()?
                } else {
                    self.u32()? as u64
                }
            }
            PE_ULEB128 => self.uleb()?,
            PE_UDATA2 => self.u16()? as u64,
            PE_UDATA4 => self.u32()? as u64,
            PE_UDATA8 => self.u64()?,
            PE_SLEB128 => self.sleb()? as u64,
            PE_SDATA2 => self.u16()? as i16 as i64 as u64,
            PE_SDATA4 => self.u32()? as i32 as i64 as u64,
            PE_SDATA8 => self.u64()?,
            _ => return None,
        };
        let value = match enc & 0x70 {
            0 => raw,
            PE_PCREL => at.wrapping_add(raw),
            PE_DATAREL => datarel?.wrapping_add(raw),
            _ => return None,
        };
        Some(if self.class64 { value } else { value & 0xFFFF_FFFF })
    }
}

/// What an FDE needs from its CIE.
#[derive(Clone, Copy)]
struct Cie {
    fde_encoding: u8,
    /// Whether FDEs carry an augmentation-data length (the CIE's string starts with `z`).
    has_aug_data: bool,
}

fn parse_cie(r: &mut Reader<'_>) -> Option<Cie> {
    let version = r.u8()?;
    let aug = r.cstr()?;
    if aug.starts_with(b"eh") {
        // GCC 2 era: an eh_ptr word follows.
        r.bytes(if r.class64 { 8 } else { 4 })?;
    }
    if version >= 4 {
        r.u8()?; // address size
        r.u8()?; // segment selector size
    }
    r.uleb()?; // code alignment
    r.sleb()?; // data alignment
    if version == 1 {
        r.u8().map(u64::from)?
    } else {
        r.uleb()?
    }; // return address register
    let mut cie = Cie { fde_encoding: PE_ABSPTR, has_aug_data: false };
    if aug.first() != Some(&b'z') {
        return Some(cie);
    }
    cie.has_aug_data = true;
    let len = r.uleb()? as usize;
    let data = r.bytes(len)?;
    let mut a = Reader { data, pos: 0, base: r.va().wrapping_sub(len as u64), class64: r.class64 };
    for &c in &aug[1..] {
        match c {
            b'R' => cie.fde_encoding = a.u8()?,
            b'L' => {
                a.u8()?;
            }
            b'P' => {
                // The personality pointer: only its size matters here.
                let enc = a.u8()?;
                a.skip_pointer(enc)?;
            }
            b'S' | b'B' | b'G' => {}
            _ => break,
        }
    }
    Some(cie)
}

/// One `.eh_frame` entry at `r`'s position: its total length, and the CIE pointer field's
/// value and address (0 for a CIE). `None` at the zero terminator or on malformed input.
fn entry_header(r: &mut Reader<'_>) -> Option<(usize, u64, u64)> {
    let start = r.pos;
    let len32 = r.u32()?;
    if len32 == 0 {
        return None;
    }
    let len = if len32 == 0xFFFF_FFFF { usize::try_from(r.u64()?).ok()? } else { len32 as usize };
    let body = r.pos;
    let end = body.checked_add(len)?;
    if end > r.data.len() {
        return None;
    }
    let id_at = r.va();
    let id = r.u32()? as u64;
    Some((end - start, id, id_at))
}

/// The `[pc_begin, pc_begin + pc_range)` of the FDE at virtual address `fde_va`.
fn fde_range(img: &Image<'_>, fde_va: u64) -> Option<Range<u64>> {
    let mut r = Reader::new(img.bytes_at(fde_va)?, fde_va, img.class64);
    let (_, id, id_at) = entry_header(&mut r)?;
    if id == 0 {
        return None; // a CIE
    }
    let cie_va = id_at.wrapping_sub(id);
    let mut c = Reader::new(img.bytes_at(cie_va)?, cie_va, img.class64);
    let (_, cie_id, _) = entry_header(&mut c)?;
    if cie_id != 0 {
        return None;
    }
    let cie = parse_cie(&mut c)?;
    let begin = r.pointer(cie.fde_encoding, None)?;
    let range = r.pointer(cie.fde_encoding & 0x0F, None)?;
    let end = begin.checked_add(range)?;
    (range > 0).then_some(begin..end)
}

/// A function-boundary index over one file.
pub(crate) enum FdeIndex<'d> {
    /// `.eh_frame_hdr`'s binary search table: `count` pairs of `entry`-byte values.
    Table {
        table: &'d [u8],
        count: usize,
        encoding: u8,
        entry: usize,
        hdr_va: u64,
        table_va: u64,
    },
    /// FDE ranges from walking `.eh_frame`, sorted by start.
    Sorted(Vec<Range<u64>>),
    None,
}

impl<'d> FdeIndex<'d> {
    pub fn new(img: &Image<'d>) -> FdeIndex<'d> {
        let hdr_va = img.eh_frame_hdr.or_else(|| img.section(".eh_frame_hdr").map(|(s, _)| s.addr));
        if let Some(index) = hdr_va.and_then(|va| Self::from_hdr(img, va)) {
            return index;
        }
        match img.section(".eh_frame") {
            Some((s, bytes)) => Self::walk(img, s.addr, bytes),
            None => FdeIndex::None,
        }
    }

    fn from_hdr(img: &Image<'d>, hdr_va: u64) -> Option<FdeIndex<'d>> {
        let bytes = img.bytes_at(hdr_va)?;
        let mut r = Reader::new(bytes, hdr_va, img.class64);
        if r.u8()? != 1 {
            return None;
        }
        let ptr_enc = r.u8()?;
        let count_enc = r.u8()?;
        let encoding = r.u8()?;
        r.pointer(ptr_enc, Some(hdr_va))?;
        let count = usize::try_from(r.pointer(count_enc, Some(hdr_va))?).ok()?;
        let entry = match encoding & 0x0F {
            PE_UDATA4 | PE_SDATA4 => 8,
            PE_UDATA8 | PE_SDATA8 => 16,
            _ => return None,
        };
        let table_va = r.va();
        let table = bytes.get(r.pos..r.pos.checked_add(count.checked_mul(entry)?)?)?;
        Some(FdeIndex::Table { table, count, encoding, entry, hdr_va, table_va })
    }

    /// Walks `.eh_frame` (at `va`) once; bounded by its size.
    fn walk(img: &Image<'d>, va: u64, bytes: &'d [u8]) -> FdeIndex<'d> {
        let mut ranges = Vec::new();
        let mut pos = 0usize;
        let mut cies: Vec<(u64, Option<Cie>)> = Vec::new();
        while pos + 8 <= bytes.len() {
            let mut r = Reader::new(&bytes[pos..], va.wrapping_add(pos as u64), img.class64);
            let Some((len, id, id_at)) = entry_header(&mut r) else { break };
            if id != 0 {
                let cie_va = id_at.wrapping_sub(id);
                let cie = match cies.iter().find(|(at, _)| *at == cie_va) {
                    Some((_, cie)) => *cie,
                    None => {
                        let cie = img.bytes_at(cie_va).and_then(|b| {
                            let mut c = Reader::new(b, cie_va, img.class64);
                            let (_, cie_id, _) = entry_header(&mut c)?;
                            if cie_id != 0 {
                                return None;
                            }
                            parse_cie(&mut c)
                        });
                        if cies.len() < 4096 {
                            cies.push((cie_va, cie));
                        }
                        cie
                    }
                };
                if let Some(cie) = cie {
                    let begin = r.pointer(cie.fde_encoding, None);
                    let range = r.pointer(cie.fde_encoding & 0x0F, None);
                    if let (Some(b), Some(n)) = (begin, range)
                        && n > 0
                        && let Some(e) = b.checked_add(n)
                    {
                        ranges.push(b..e);
                    }
                }
            }
            pos += len;
        }
        ranges.sort_by_key(|r| r.start);
        FdeIndex::Sorted(ranges)
    }

    pub fn is_none(&self) -> bool {
        matches!(self, FdeIndex::None)
    }

    /// The range of the function (FDE) containing `va`.
    pub fn lookup(&self, img: &Image<'_>, va: u64) -> Option<Range<u64>> {
        match self {
            FdeIndex::None => None,
            FdeIndex::Sorted(ranges) => {
                let i = ranges.partition_point(|r| r.start <= va);
                let r = ranges.get(i.checked_sub(1)?)?;
                r.contains(&va).then(|| r.clone())
            }
            FdeIndex::Table { table, count, encoding, entry, hdr_va, table_va } => {
                let read = |i: usize, second: bool| -> Option<u64> {
                    let off = i * entry + if second { entry / 2 } else { 0 };
                    let mut r = Reader::new(table.get(off..off + entry / 2)?, table_va + off as u64, img.class64);
                    r.pointer(*encoding, Some(*hdr_va))
                };
                // The last entry whose initial location is <= va.
                let (mut lo, mut hi) = (0usize, *count);
                while lo < hi {
                    let mid = lo + (hi - lo) / 2;
                    if read(mid, false)? <= va { lo = mid + 1 } else { hi = mid }
                }
                let i = lo.checked_sub(1)?;
                let start = read(i, false)?;
                let range = fde_range(img, read(i, true)?)?;
                (range.start == start && range.contains(&va)).then_some(range)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probes::tls::image::tests::synthetic_elf;

    /// A CIE ("zR", pcrel|sdata4 FDE pointers) and FDEs for the given (start, len) functions,
    /// laid out at `va`.
    fn eh_frame(va: u64, funcs: &[(u64, u32)]) -> Vec<u8> {
        let mut out = Vec::new();
        // CIE: length, id 0, version 1, "zR\0", code align 1, data align -8, RA 16,
        // aug len 1, encoding 0x1B, then padding to its length.
        let cie_body = [0u32.to_le_bytes().to_vec(), vec![1, b'z', b'R', 0, 1, 0x78, 16, 1, 0x1B, 0, 0, 0]].concat();
        out.extend_from_slice(&(cie_body.len() as u32).to_le_bytes());
        out.extend_from_slice(&cie_body);
        for &(start, len) in funcs {
            let fde_at = out.len();
            let body_len = 4 + 4 + 4 + 1 + 3; // id, begin, range, aug len, padding
            out.extend_from_slice(&(body_len as u32).to_le_bytes());
            let id_at = out.len();
            out.extend_from_slice(&(id_at as u32).to_le_bytes()); // back to the CIE at 0
            let field_va = va + out.len() as u64;
            out.extend_from_slice(&((start.wrapping_sub(field_va)) as u32).to_le_bytes());
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&[0, 0, 0, 0]);
            assert_eq!(out.len() - fde_at, 4 + body_len);
        }
        out.extend_from_slice(&[0, 0, 0, 0]);
        out
    }

    #[test]
    fn walks_eh_frame_and_finds_the_containing_function() {
        // The synthetic ELF places .rodata (here: .eh_frame's bytes) at a known address; use a
        // section named .rodata, then look the FDEs up through the walker directly.
        let text_va = 0x40_1000;
        let code = vec![0xC3u8; 0x300];
        let probe = synthetic_elf(2, text_va, &code, &[0; 16], &[]);
        let img = Image::parse(&probe, &[]).unwrap();
        let (ro, _) = img.section(".rodata").unwrap();
        let ro_va = ro.addr;
        let frame = eh_frame(ro_va, &[(0x40_1100, 0x40), (0x40_1000, 0x80), (0x40_1200, 0x10)]);
        let elf = synthetic_elf(2, text_va, &code, &frame, &[]);
        let img = Image::parse(&elf, &[]).unwrap();
        let (ro, bytes) = img.section(".rodata").unwrap();
        let index = FdeIndex::walk(&img, ro.addr, bytes);
        assert_eq!(index.lookup(&img, 0x40_1010), Some(0x40_1000..0x40_1080));
        assert_eq!(index.lookup(&img, 0x40_1100), Some(0x40_1100..0x40_1140));
        assert_eq!(index.lookup(&img, 0x40_1090), None, "between functions");
        assert_eq!(index.lookup(&img, 0x40_120f), Some(0x40_1200..0x40_1210));
        assert_eq!(index.lookup(&img, 0x40_1210), None);
        assert_eq!(fde_range(&img, ro.addr + 0x14), Some(0x40_1100..0x40_1140));
        assert_eq!(fde_range(&img, ro.addr), None, "a CIE is not an FDE");
    }

    #[test]
    fn reads_eh_frame_hdr_tables() {
        let text_va = 0x40_1000;
        let code = vec![0xC3u8; 0x300];
        let probe = synthetic_elf(2, text_va, &code, &[0; 16], &[]);
        let ro_va = Image::parse(&probe, &[]).unwrap().section(".rodata").unwrap().0.addr;
        // .rodata = hdr (at ro_va) followed by .eh_frame.
        let funcs = [(0x40_1000u64, 0x80u32), (0x40_1100, 0x40)];
        let hdr_len = 12 + 8 * funcs.len();
        let frame_va = ro_va + hdr_len as u64;
        let frame = eh_frame(frame_va, &funcs);
        let mut hdr = vec![1u8, 0x1B, 0x03, 0x3B];
        hdr.extend_from_slice(&((frame_va - (ro_va + 4)) as u32).to_le_bytes());
        hdr.extend_from_slice(&(funcs.len() as u32).to_le_bytes());
        let cie_len = 4 + u32::from_le_bytes(frame[0..4].try_into().unwrap()) as u64;
        for (i, &(start, _)) in funcs.iter().enumerate() {
            let fde_va = frame_va + cie_len + i as u64 * 20;
            hdr.extend_from_slice(&(start.wrapping_sub(ro_va) as u32).to_le_bytes());
            hdr.extend_from_slice(&((fde_va - ro_va) as u32).to_le_bytes());
        }
        let rodata = [hdr, frame].concat();
        let elf = synthetic_elf(2, text_va, &code, &rodata, &[]);
        let img = Image::parse(&elf, &[]).unwrap();
        let index = FdeIndex::from_hdr(&img, ro_va).expect("a table");
        assert!(matches!(index, FdeIndex::Table { count: 2, .. }));
        assert_eq!(index.lookup(&img, 0x40_1000), Some(0x40_1000..0x40_1080));
        assert_eq!(index.lookup(&img, 0x40_113f), Some(0x40_1100..0x40_1140));
        assert_eq!(index.lookup(&img, 0x40_0fff), None);
        assert_eq!(index.lookup(&img, 0x40_1080), None);
    }

    #[test]
    fn malformed_tables_are_not_indexes() {
        let img_bytes = synthetic_elf(
            2,
            0x1000,
            &[0xC3],
            &[1, 0x1B, 0x03, 0x3B, 0xFF, 0xFF, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0x7F],
            &[],
        );
        let img = Image::parse(&img_bytes, &[]).unwrap();
        let ro_va = img.section(".rodata").unwrap().0.addr;
        assert!(FdeIndex::from_hdr(&img, ro_va).is_none(), "a count past the end");
        let (s, b) = img.section(".rodata").unwrap();
        let walked = FdeIndex::walk(&img, s.addr, b);
        assert!(walked.lookup(&img, 0x1000).is_none());
    }

    #[test]
    fn leb128() {
        let mut r = Reader::new(&[0xE5, 0x8E, 0x26, 0x7F, 0x80, 0x7F], 0, true);
        assert_eq!(r.uleb(), Some(624485));
        assert_eq!(r.sleb(), Some(-1));
        assert_eq!(r.sleb(), Some(-128));
        let mut r = Reader::new(&[0xFF; 12], 0, true);
        assert_eq!(r.uleb(), None);
    }
}
