//! The parts of an ELF file the TLS heuristics need, read once with `object` and kept as plain
//! values: loadable segments (for address ↔ file offset), section headers (to tell read-only
//! data from code), the symbols of interest, the build-id and the `PT_GNU_EH_FRAME` address.
//!
//! Everything is bounds-checked against the file: segments and sections that point past its
//! end are clamped or dropped, so a truncated or hostile file cannot make a later lookup read
//! out of range.

use object::{
    Endianness, FileKind, Object,
    elf::{
        PF_W, PF_X, PT_GNU_EH_FRAME, PT_LOAD, SHF_ALLOC, SHF_EXECINSTR, SHF_WRITE, SHN_UNDEF, SHT_NOBITS, SHT_PROGBITS,
    },
    read::elf::{ElfFile, FileHeader, ProgramHeader, SectionHeader, Sym},
};

use super::x86::Code;

/// Why a file could not be read as an ELF image.
#[derive(Debug)]
pub(crate) enum ImageError {
    NotElf,
    Malformed(String),
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Segment {
    pub vaddr: u64,
    pub offset: u64,
    /// File bytes (clamped to the file).
    pub filesz: u64,
    pub flags: u32,
}

#[derive(Clone, Debug)]
pub(crate) struct Section<'d> {
    pub name: &'d [u8],
    pub addr: u64,
    pub offset: u64,
    /// Bytes present in the file (clamped; 0 for NOBITS).
    pub size: u64,
    pub flags: u64,
    pub kind: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SymTable {
    Dynamic,
    Static,
}

/// A symbol whose name was asked for.
#[derive(Clone, Debug)]
pub(crate) struct Symbol {
    pub name: &'static str,
    pub value: u64,
    pub size: u64,
    /// `STT_*`.
    pub kind: u8,
    pub defined: bool,
    pub table: SymTable,
}

pub(crate) struct Image<'d> {
    pub data: &'d [u8],
    pub machine: u16,
    pub e_type: u16,
    pub class64: bool,
    pub segments: Vec<Segment>,
    pub sections: Vec<Section<'d>>,
    pub symbols: Vec<Symbol>,
    pub build_id: Option<&'d [u8]>,
    /// Virtual address of `.eh_frame_hdr`, from `PT_GNU_EH_FRAME` (survives `strip`).
    pub eh_frame_hdr: Option<u64>,
}

/// A bound on how many section headers are looked at: real files have a few dozen.
const MAX_SECTIONS: usize = 1 << 16;

impl<'d> Image<'d> {
    /// Reads `data`, keeping the symbols named in `wanted` (defined or not).
    pub fn parse(data: &'d [u8], wanted: &[&'static str]) -> Result<Image<'d>, ImageError> {
        match FileKind::parse(data) {
            Ok(FileKind::Elf32) => {
                let file = ElfFile::<object::elf::FileHeader32<Endianness>>::parse(data).map_err(malformed)?;
                Self::extract(data, &file, wanted)
            }
            Ok(FileKind::Elf64) => {
                let file = ElfFile::<object::elf::FileHeader64<Endianness>>::parse(data).map_err(malformed)?;
                Self::extract(data, &file, wanted)
            }
            _ if data.starts_with(b"\x7fELF") => Err(ImageError::Malformed("unrecognised ELF header".into())),
            _ => Err(ImageError::NotElf),
        }
    }

    fn extract<Elf: FileHeader<Endian = Endianness>>(
        data: &'d [u8],
        file: &ElfFile<'d, Elf>,
        wanted: &[&'static str],
    ) -> Result<Image<'d>, ImageError> {
        let endian = file.endian();
        let header = file.elf_header();
        let len = data.len() as u64;
        let mut segments = Vec::new();
        let mut eh_frame_hdr = None;
        for ph in file.elf_program_headers() {
            let p_type = ph.p_type(endian);
            if p_type == PT_GNU_EH_FRAME {
                eh_frame_hdr = Some(ph.p_vaddr(endian).into());
            }
            if p_type != PT_LOAD {
                continue;
            }
            let offset: u64 = ph.p_offset(endian).into();
            let filesz: u64 = ph.p_filesz(endian).into();
            let vaddr: u64 = ph.p_vaddr(endian).into();
            let filesz = filesz.min(len.saturating_sub(offset));
            // Nothing in the file, or addresses that would wrap: not a segment to look into.
            // (This keeps every `vaddr + n` below in range.)
            if filesz == 0 || vaddr.checked_add(filesz).is_none() {
                continue;
            }
            segments.push(Segment { vaddr, offset, filesz, flags: ph.p_flags(endian) });
        }

        let table = file.elf_section_table();
        let mut sections = Vec::new();
        for sh in table.iter().take(MAX_SECTIONS) {
            let offset: u64 = sh.sh_offset(endian).into();
            let size: u64 = sh.sh_size(endian).into();
            let present = if sh.sh_type(endian) == SHT_NOBITS || offset >= len { 0 } else { size.min(len - offset) };
            sections.push(Section {
                name: table.section_name(endian, sh).unwrap_or(&[]),
                addr: sh.sh_addr(endian).into(),
                offset,
                size: present,
                flags: sh.sh_flags(endian).into(),
                kind: sh.sh_type(endian),
            });
        }

        let mut symbols = Vec::new();
        for (table, which) in
            [(file.elf_dynamic_symbol_table(), SymTable::Dynamic), (file.elf_symbol_table(), SymTable::Static)]
        {
            for sym in table.iter() {
                let Ok(raw) = table.symbol_name(endian, sym) else { continue };
                let Some(&name) = wanted.iter().find(|w| w.as_bytes() == raw) else { continue };
                symbols.push(Symbol {
                    name,
                    value: sym.st_value(endian).into(),
                    size: sym.st_size(endian).into(),
                    kind: sym.st_type(),
                    defined: sym.st_shndx(endian) != SHN_UNDEF,
                    table: which,
                });
            }
        }

        Ok(Image {
            data,
            machine: header.e_machine(endian),
            e_type: header.e_type(endian),
            class64: header.is_class_64(),
            segments,
            sections,
            symbols,
            build_id: file.build_id().ok().flatten(),
            eh_frame_hdr,
        })
    }

    /// The file offset of code at `vaddr`: only executable segments count.
    pub fn code_offset(&self, vaddr: u64) -> Option<u64> {
        self.segment_of(vaddr, PF_X).map(|s| vaddr - s.vaddr + s.offset)
    }

    fn segment_of(&self, vaddr: u64, need: u32) -> Option<&Segment> {
        self.segments.iter().find(|s| s.flags & need == need && vaddr >= s.vaddr && vaddr - s.vaddr < s.filesz)
    }

    /// The file bytes from `vaddr` to the end of its segment.
    pub fn bytes_at(&self, vaddr: u64) -> Option<&'d [u8]> {
        let s = self.segment_of(vaddr, 0)?;
        let start = (vaddr - s.vaddr + s.offset) as usize;
        let end = (s.offset + s.filesz) as usize;
        self.data.get(start..end)
    }

    /// Whether code may hold absolute addresses as 32-bit immediates (`ET_EXEC`: not PIE).
    pub fn is_position_dependent(&self) -> bool {
        self.e_type == object::elf::ET_EXEC
    }

    /// The virtual address of file offset `offset`, if a loadable segment maps it.
    pub fn vaddr_of_offset(&self, offset: u64) -> Option<u64> {
        self.segments
            .iter()
            .find(|s| offset >= s.offset && offset - s.offset < s.filesz)
            .map(|s| offset - s.offset + s.vaddr)
    }

    /// Executable segments, as code.
    pub fn code(&self) -> Vec<Code<'d>> {
        self.segments
            .iter()
            .filter(|s| s.flags & PF_X != 0)
            .filter_map(|s| {
                let bytes = self.data.get(s.offset as usize..(s.offset + s.filesz) as usize)?;
                Some(Code { vaddr: s.vaddr, bytes })
            })
            .collect()
    }

    /// Read-only data: allocated, non-writable, non-executable `PROGBITS` sections. Without
    /// section headers, the non-writable non-executable segments (or, failing those, every
    /// non-writable one). Each region is its file offset and bytes.
    pub fn rodata(&self) -> Vec<(u64, &'d [u8])> {
        let from_sections: Vec<_> = self
            .sections
            .iter()
            .filter(|s| s.kind == SHT_PROGBITS && s.size > 0)
            .filter(|s| s.flags & u64::from(SHF_ALLOC) != 0 && s.flags & u64::from(SHF_WRITE | SHF_EXECINSTR) == 0)
            .filter_map(|s| Some((s.offset, self.data.get(s.offset as usize..(s.offset + s.size) as usize)?)))
            .collect();
        if !from_sections.is_empty() {
            return from_sections;
        }
        let pick = |exclude: u32| -> Vec<(u64, &'d [u8])> {
            self.segments
                .iter()
                .filter(|s| s.flags & exclude == 0)
                .filter_map(|s| Some((s.offset, self.data.get(s.offset as usize..(s.offset + s.filesz) as usize)?)))
                .collect()
        };
        let plain = pick(PF_W | PF_X);
        if plain.is_empty() { pick(PF_W) } else { plain }
    }

    /// A section's bytes by name.
    pub fn section(&self, name: &str) -> Option<(&Section<'d>, &'d [u8])> {
        let s = self.sections.iter().find(|s| s.name == name.as_bytes())?;
        Some((s, self.data.get(s.offset as usize..(s.offset + s.size) as usize)?))
    }
}

fn malformed(e: object::Error) -> ImageError {
    ImageError::Malformed(e.to_string())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal little-endian ELF64 executable: one R+X PT_LOAD mapping `code` at file offset
    /// 0x1000 to `vaddr`, one R PT_LOAD mapping `rodata` after it, section headers for
    /// `.text`, `.rodata` and `.dynsym`/`.dynstr` holding `syms` (name, vaddr) as functions.
    pub(crate) fn synthetic_elf(e_type: u16, vaddr: u64, code: &[u8], rodata: &[u8], syms: &[(&str, u64)]) -> Vec<u8> {
        let mut out = vec![0u8; 0x1000];
        let text_off = 0x1000u64;
        out.extend_from_slice(code);
        while !out.len().is_multiple_of(0x1000) {
            out.push(0);
        }
        let ro_off = out.len() as u64;
        let ro_vaddr = vaddr + (ro_off - text_off) + 0x10_0000;
        out.extend_from_slice(rodata);
        // .dynstr and .dynsym
        let mut dynstr = vec![0u8];
        let mut dynsym = vec![0u8; 24];
        for (name, value) in syms {
            let name_off = dynstr.len() as u32;
            dynstr.extend_from_slice(name.as_bytes());
            dynstr.push(0);
            let mut s = [0u8; 24];
            s[0..4].copy_from_slice(&name_off.to_le_bytes());
            s[4] = 0x12; // GLOBAL FUNC
            s[6..8].copy_from_slice(&1u16.to_le_bytes()); // section 1 (.text)
            s[8..16].copy_from_slice(&value.to_le_bytes());
            s[16..24].copy_from_slice(&16u64.to_le_bytes());
            dynsym.extend_from_slice(&s);
        }
        while !out.len().is_multiple_of(8) {
            out.push(0);
        }
        let dynsym_off = out.len() as u64;
        out.extend_from_slice(&dynsym);
        let dynstr_off = out.len() as u64;
        out.extend_from_slice(&dynstr);
        let shstr = b"\0.text\0.rodata\0.dynsym\0.dynstr\0.shstrtab\0";
        let shstr_off = out.len() as u64;
        out.extend_from_slice(shstr);
        while !out.len().is_multiple_of(8) {
            out.push(0);
        }
        let shoff = out.len() as u64;
        let mut sh = |name: u32, ty: u32, flags: u64, addr: u64, off: u64, size: u64, link: u32, entsize: u64| {
            let mut h = [0u8; 64];
            h[0..4].copy_from_slice(&name.to_le_bytes());
            h[4..8].copy_from_slice(&ty.to_le_bytes());
            h[8..16].copy_from_slice(&flags.to_le_bytes());
            h[16..24].copy_from_slice(&addr.to_le_bytes());
            h[24..32].copy_from_slice(&off.to_le_bytes());
            h[32..40].copy_from_slice(&size.to_le_bytes());
            h[40..44].copy_from_slice(&link.to_le_bytes());
            h[44..48].copy_from_slice(&if ty == 11 { 1u32 } else { 0 }.to_le_bytes());
            h[56..64].copy_from_slice(&entsize.to_le_bytes());
            out.extend_from_slice(&h);
        };
        sh(0, 0, 0, 0, 0, 0, 0, 0);
        sh(1, 1, 6, vaddr, text_off, code.len() as u64, 0, 0); // .text AX
        sh(7, 1, 2, ro_vaddr, ro_off, rodata.len() as u64, 0, 0); // .rodata A
        sh(15, 11, 2, 0, dynsym_off, dynsym.len() as u64, 4, 24); // .dynsym -> .dynstr (4)
        sh(23, 3, 2, 0, dynstr_off, dynstr.len() as u64, 0, 0); // .dynstr
        sh(31, 3, 0, 0, shstr_off, shstr.len() as u64, 0, 0); // .shstrtab
        // ELF header
        let mut h = [0u8; 64];
        h[0..4].copy_from_slice(b"\x7fELF");
        h[4] = 2;
        h[5] = 1;
        h[6] = 1;
        h[16..18].copy_from_slice(&e_type.to_le_bytes());
        h[18..20].copy_from_slice(&62u16.to_le_bytes());
        h[20..24].copy_from_slice(&1u32.to_le_bytes());
        h[24..32].copy_from_slice(&vaddr.to_le_bytes());
        h[32..40].copy_from_slice(&64u64.to_le_bytes()); // phoff
        h[40..48].copy_from_slice(&shoff.to_le_bytes());
        h[52..54].copy_from_slice(&64u16.to_le_bytes());
        h[54..56].copy_from_slice(&56u16.to_le_bytes());
        h[56..58].copy_from_slice(&2u16.to_le_bytes()); // phnum
        h[58..60].copy_from_slice(&64u16.to_le_bytes());
        h[60..62].copy_from_slice(&6u16.to_le_bytes()); // shnum
        h[62..64].copy_from_slice(&5u16.to_le_bytes()); // shstrndx
        out[0..64].copy_from_slice(&h);
        let mut ph = |i: usize, flags: u32, off: u64, va: u64, size: u64| {
            let mut p = [0u8; 56];
            p[0..4].copy_from_slice(&1u32.to_le_bytes());
            p[4..8].copy_from_slice(&flags.to_le_bytes());
            p[8..16].copy_from_slice(&off.to_le_bytes());
            p[16..24].copy_from_slice(&va.to_le_bytes());
            p[24..32].copy_from_slice(&va.to_le_bytes());
            p[32..40].copy_from_slice(&size.to_le_bytes());
            p[40..48].copy_from_slice(&size.to_le_bytes());
            p[48..56].copy_from_slice(&0x1000u64.to_le_bytes());
            out[64 + i * 56..64 + (i + 1) * 56].copy_from_slice(&p);
        };
        ph(0, 5, text_off, vaddr, code.len() as u64);
        ph(1, 4, ro_off, ro_vaddr, rodata.len() as u64);
        out
    }

    #[test]
    fn maps_addresses_to_file_offsets() {
        let code = vec![0x90u8; 0x200];
        let elf = synthetic_elf(3, 0x40_1000, &code, b"hello\0", &[("SSL_write", 0x40_1010)]);
        let img = Image::parse(&elf, &["SSL_write"]).expect("parses");
        assert_eq!(img.machine, 62);
        assert_eq!(img.code_offset(0x40_1010), Some(0x1010));
        assert_eq!(img.code_offset(0x40_1200), None, "past the segment's file bytes");
        assert_eq!(img.code_offset(0x40_0fff), None);
        assert_eq!(img.vaddr_of_offset(0x1010), Some(0x40_1010));
        let sym = &img.symbols[0];
        assert_eq!((sym.name, sym.value, sym.defined, sym.table), ("SSL_write", 0x40_1010, true, SymTable::Dynamic));
        let ro = img.rodata();
        assert_eq!(ro.len(), 1);
        assert_eq!(ro[0].1, b"hello\0");
        assert_eq!(img.code().len(), 1);
    }

    #[test]
    fn rejects_what_is_not_elf() {
        assert!(matches!(Image::parse(b"", &[]), Err(ImageError::NotElf)));
        assert!(matches!(Image::parse(b"#!/bin/sh\n", &[]), Err(ImageError::NotElf)));
        assert!(matches!(Image::parse(b"\x7fELF", &[]), Err(ImageError::Malformed(_))));
        let elf = synthetic_elf(3, 0x1000, &[0xC3], b"x", &[]);
        assert!(Image::parse(&elf[..100], &[]).is_err());
    }
}
