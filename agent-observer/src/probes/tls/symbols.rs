//! Probe points from symbol tables: exported (`.dynsym`) or, in unstripped files, `.symtab`.
//!
//! OpenSSL and BoringSSL export `SSL_write`/`SSL_read` (and OpenSSL `SSL_write_ex`/
//! `SSL_read_ex`); GnuTLS `gnutls_record_send`/`gnutls_record_recv`; NSPR (under NSS)
//! `PR_Write`/`PR_Send`/`PR_Read`/`PR_Recv`. Node exports OpenSSL's from its executable.
//!
//! Nesting: all four OpenSSL points are returned. In OpenSSL 3.0 (3.0.22 checked by
//! disassembling Debian's `libssl.a`) `SSL_write` calls `ssl_write_internal` directly and
//! `SSL_write_ex` does too, so neither runs inside the other; the same holds for `SSL_read`,
//! `SSL_read_ex` and `ssl_read_internal`. In current OpenSSL source (master) `SSL_write` still
//! calls `ssl_write_internal` directly while `SSL_write_ex` goes through `SSL_write_ex2` (not
//! probed), so again no probed function runs inside another.

use super::{
    discover::{Convention, Direction, Method, ProbePoint, TlsLibrary},
    image::{Image, SymTable},
};

const STT_FUNC: u8 = 2;
const STT_GNU_IFUNC: u8 = 10;

struct Spec {
    name: &'static str,
    family: TlsLibrary,
    direction: Direction,
    convention: Convention,
}

const SPECS: &[Spec] = &[
    Spec {
        name: "SSL_write",
        family: TlsLibrary::OpenSsl,
        direction: Direction::Send,
        convention: Convention::ReturnsBytes,
    },
    Spec {
        name: "SSL_read",
        family: TlsLibrary::OpenSsl,
        direction: Direction::Recv,
        convention: Convention::ReturnsBytes,
    },
    Spec {
        name: "SSL_write_ex",
        family: TlsLibrary::OpenSsl,
        direction: Direction::Send,
        convention: Convention::OutParam { arg: 3 },
    },
    Spec {
        name: "SSL_read_ex",
        family: TlsLibrary::OpenSsl,
        direction: Direction::Recv,
        convention: Convention::OutParam { arg: 3 },
    },
    Spec {
        name: "gnutls_record_send",
        family: TlsLibrary::GnuTls,
        direction: Direction::Send,
        convention: Convention::ReturnsBytes,
    },
    Spec {
        name: "gnutls_record_recv",
        family: TlsLibrary::GnuTls,
        direction: Direction::Recv,
        convention: Convention::ReturnsBytes,
    },
    Spec {
        name: "PR_Write",
        family: TlsLibrary::Nss,
        direction: Direction::Send,
        convention: Convention::ReturnsBytes,
    },
    Spec { name: "PR_Send", family: TlsLibrary::Nss, direction: Direction::Send, convention: Convention::ReturnsBytes },
    Spec { name: "PR_Read", family: TlsLibrary::Nss, direction: Direction::Recv, convention: Convention::ReturnsBytes },
    Spec { name: "PR_Recv", family: TlsLibrary::Nss, direction: Direction::Recv, convention: Convention::ReturnsBytes },
];

/// Every symbol name the image parser keeps.
pub(crate) const WANTED: &[&str] = &[
    "SSL_write",
    "SSL_read",
    "SSL_write_ex",
    "SSL_read_ex",
    "gnutls_record_send",
    "gnutls_record_recv",
    "PR_Write",
    "PR_Send",
    "PR_Read",
    "PR_Recv",
];

#[derive(Debug, Default)]
pub(crate) struct SymbolPoints {
    /// Libraries with at least one point, in `SPECS` order (OpenSSL-like first).
    pub families: Vec<TlsLibrary>,
    pub points: Vec<ProbePoint>,
    pub notes: Vec<String>,
    /// Wanted functions this file imports (undefined here: the TLS code is in a library).
    pub imports: Vec<&'static str>,
}

pub(crate) fn find(img: &Image<'_>) -> SymbolPoints {
    let mut out = SymbolPoints::default();
    for spec in SPECS {
        let named = || img.symbols.iter().filter(|s| s.name == spec.name);
        let defined: Vec<_> = named().filter(|s| s.defined && s.value != 0).collect();
        if defined.is_empty() {
            if named().any(|s| !s.defined && s.table == SymTable::Dynamic) && !out.imports.contains(&spec.name) {
                out.imports.push(spec.name);
            }
            continue;
        }
        if defined.iter().any(|s| s.kind == STT_GNU_IFUNC) {
            out.notes.push(format!("{} is an IFUNC resolver, not the function itself; not probed", spec.name));
            continue;
        }
        // Functions only (STT_NOTYPE is accepted for hand-written assembly entry points).
        let mut candidates: Vec<_> = defined.iter().filter(|s| s.kind == STT_FUNC || s.kind == 0).collect();
        // The exported definition first, then .symtab's.
        candidates.sort_by_key(|s| (s.table != SymTable::Dynamic, s.value));
        let Some(chosen) = candidates.first() else { continue };
        let mut addresses: Vec<u64> = candidates.iter().map(|s| s.value).collect();
        addresses.dedup();
        if addresses.len() > 1 {
            out.notes.push(format!(
                "{} has {} definitions at different addresses; using the {} one at {:#x}",
                spec.name,
                addresses.len(),
                if chosen.table == SymTable::Dynamic { "exported" } else { ".symtab" },
                chosen.value
            ));
        }
        let Some(file_offset) = img.code_offset(chosen.value) else {
            out.notes.push(format!(
                "{} at {:#x} is not inside an executable segment's file bytes; not probed",
                spec.name, chosen.value
            ));
            continue;
        };
        if chosen.size == 0 {
            out.notes.push(format!("{} has size 0 in the symbol table (kept: it is a defined function)", spec.name));
        }
        out.points.push(ProbePoint {
            function: spec.name.to_string(),
            file_offset,
            direction: spec.direction,
            convention: spec.convention,
            method: Method::Symbol,
        });
        if !out.families.contains(&spec.family) {
            out.families.push(spec.family);
        }
    }
    if out.families.contains(&TlsLibrary::Nss) {
        out.notes.push(
            "PR_Write/PR_Send/PR_Read/PR_Recv carry every NSPR I/O (files, pipes, plain sockets), not only TLS: \
             the caller must filter by file descriptor"
                .into(),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probes::tls::image::tests::synthetic_elf;

    #[test]
    fn symbols_become_file_offsets() {
        let code = vec![0xC3u8; 0x100];
        let elf = synthetic_elf(
            2,
            0x40_1000,
            &code,
            b"\0",
            &[("SSL_write", 0x40_1010), ("SSL_read_ex", 0x40_1020), ("PR_Write", 0x40_1030), ("SSL_read", 0x50_0000)],
        );
        let img = Image::parse(&elf, WANTED).unwrap();
        let found = find(&img);
        let points: Vec<_> = found.points.iter().map(|p| (p.function.as_str(), p.file_offset, p.convention)).collect();
        assert_eq!(
            points,
            vec![
                ("SSL_write", 0x1010, Convention::ReturnsBytes),
                ("SSL_read_ex", 0x1020, Convention::OutParam { arg: 3 }),
                ("PR_Write", 0x1030, Convention::ReturnsBytes),
            ]
        );
        assert_eq!(found.families, vec![TlsLibrary::OpenSsl, TlsLibrary::Nss]);
        assert!(found.notes.iter().any(|n| n.contains("SSL_read at 0x500000")), "{:?}", found.notes);
        assert!(found.notes.iter().any(|n| n.contains("not only TLS")));
    }
}
