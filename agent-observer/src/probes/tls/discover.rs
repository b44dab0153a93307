//! The public face: [`analyze`] a file, get where to attach uprobes for TLS plaintext.
//!
//! Order of attempts, first that yields points wins:
//! 1. symbols (`.dynsym`, then `.symtab`): OpenSSL/BoringSSL, GnuTLS, NSPR — any architecture
//!    whose symbol values are entry addresses;
//! 2. stripped static BoringSSL: error sites in `ssl_lib.cc` (x86-64);
//! 3. stripped static OpenSSL 3: `__func__` strings of `ssl_write_internal`/`ssl_read_internal`
//!    (x86-64).
//!
//! Then stacks that cannot be captured at a function boundary are recognised for gap
//! reporting: rustls (with aws-lc or ring) and Go's `crypto/tls`.

use std::{
    collections::HashMap,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    sync::Arc,
};

use thiserror::Error;

use super::{
    boringssl,
    functions::Functions,
    image::{Image, ImageError},
    markers, openssl_stripped, symbols,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TlsLibrary {
    OpenSsl,
    BoringSsl,
    GnuTls,
    Nss,
    Rustls,
    GoCryptoTls,
    None,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    Send,
    Recv,
}

/// How the probed function reports how many plaintext bytes it moved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Convention {
    /// The return value is the byte count (<= 0: nothing). Buffer is arg 1 (0-based), e.g.
    /// `SSL_write(ssl, buf, num)`, `gnutls_record_send(session, data, size)`,
    /// `PR_Write(fd, buf, amount)`.
    ReturnsBytes,
    /// Returns 1 on success and stores the byte count through a `size_t *` argument at index
    /// `arg` (0-based), e.g. `SSL_write_ex(ssl, buf, num, &written)` => arg 3; OpenSSL 3.0/3.1
    /// `ssl_write_internal(s, buf, num, &written)` => arg 3; OpenSSL >= 3.2
    /// `ssl_write_internal(s, buf, num, flags, &written)` => arg 4;
    /// `ssl_read_internal(s, buf, num, &readbytes)` => arg 3.
    OutParam { arg: u8 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    Symbol,
    BoringSslErrorSites,
    OpenSslFuncStrings,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbePoint {
    /// e.g. "SSL_write", "ssl_read_internal", "gnutls_record_recv".
    pub function: String,
    /// Offset IN THE FILE of the function's first instruction (for uprobe attach), not the
    /// virtual address.
    pub file_offset: u64,
    pub direction: Direction,
    pub convention: Convention,
    pub method: Method,
}

#[derive(Clone, Debug, Default)]
pub struct Discovery {
    /// `None`: no TLS stack recognised. When a file links an uncapturable stack (rustls, Go
    /// `crypto/tls`) and a capturable one, the uncapturable one is named (and `points` is
    /// empty) so its traffic is reported as a gap; `notes` names the other stack's functions.
    pub library: Option<TlsLibrary>,
    /// e.g. "OpenSSL 3.0.19" when found.
    pub version: Option<String>,
    /// Empty when capture is unsupported (e.g. rustls, Go) or a heuristic could not validate.
    pub points: Vec<ProbePoint>,
    /// Human-readable reasons: why no points, which heuristic matched, validation failures.
    pub notes: Vec<String>,
    pub build_id: Option<Vec<u8>>,
}

#[derive(Debug, Error)]
pub enum DiscoveryError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a regular file", path.display())]
    NotAFile { path: PathBuf },
    #[error("{} is not an ELF file", path.display())]
    NotElf { path: PathBuf },
    #[error("{} is a malformed ELF file: {reason}", path.display())]
    Malformed { path: PathBuf, reason: String },
    #[error("{} is an ELF {kind}, not an executable or shared library: nothing to attach uprobes to", path.display())]
    NotLoadable { path: PathBuf, kind: &'static str },
    #[error(
        "{} is for an unsupported architecture (ELF machine {machine}): its symbol values are not \
         entry addresses that could be probed as they are",
        path.display()
    )]
    UnsupportedArch { path: PathBuf, machine: u16 },
}

/// What one heuristic produced: points (maybe none) and the notes explaining them.
#[derive(Debug, Default)]
pub(crate) struct Found {
    pub points: Vec<ProbePoint>,
    pub notes: Vec<String>,
}

const EM_386: u16 = 3;
const EM_S390: u16 = 22;
const EM_X86_64: u16 = 62;
const EM_AARCH64: u16 = 183;
const EM_RISCV: u16 = 243;
const EM_LOONGARCH: u16 = 258;
const ET_EXEC: u16 = 2;
const ET_DYN: u16 = 3;

/// Analyses the ELF file at `path` (memory-mapped; nothing is copied).
pub fn analyze(path: &Path) -> Result<Discovery, DiscoveryError> {
    let file = std::fs::File::open(path).map_err(|source| DiscoveryError::Io { path: path.into(), source })?;
    let meta = file.metadata().map_err(|source| DiscoveryError::Io { path: path.into(), source })?;
    if !meta.is_file() {
        return Err(DiscoveryError::NotAFile { path: path.into() });
    }
    if meta.len() == 0 {
        return Err(DiscoveryError::NotElf { path: path.into() });
    }
    let map = map_file(&file, path)?;
    analyze_at(&map, path)
}

fn map_file(file: &std::fs::File, path: &Path) -> Result<memmap2::Mmap, DiscoveryError> {
    // SAFETY: the mapping is private and read-only. Executables and libraries are replaced by
    // rename (a new inode) rather than rewritten in place; a file truncated while it is being
    // read would fault, which is the accepted risk of reading binaries by mapping them.
    unsafe { memmap2::MmapOptions::new().map(file) }.map_err(|source| DiscoveryError::Io { path: path.into(), source })
}

/// Analyses an ELF image held in memory. Pure: no I/O.
pub fn analyze_bytes(data: &[u8]) -> Result<Discovery, DiscoveryError> {
    analyze_at(data, Path::new("<memory>"))
}

fn analyze_at(data: &[u8], path: &Path) -> Result<Discovery, DiscoveryError> {
    let img = Image::parse(data, symbols::WANTED).map_err(|e| match e {
        ImageError::NotElf => DiscoveryError::NotElf { path: path.into() },
        ImageError::Malformed(reason) => DiscoveryError::Malformed { path: path.into(), reason },
    })?;
    match img.e_type {
        ET_EXEC | ET_DYN => {}
        1 => return Err(DiscoveryError::NotLoadable { path: path.into(), kind: "relocatable object" }),
        4 => return Err(DiscoveryError::NotLoadable { path: path.into(), kind: "core dump" }),
        _ => return Err(DiscoveryError::NotLoadable { path: path.into(), kind: "file of unknown type" }),
    }
    if !matches!(img.machine, EM_X86_64 | EM_AARCH64 | EM_386 | EM_RISCV | EM_LOONGARCH | EM_S390) {
        return Err(DiscoveryError::UnsupportedArch { path: path.into(), machine: img.machine });
    }
    Ok(discover(&img))
}

fn discover(img: &Image<'_>) -> Discovery {
    let mut d = Discovery { build_id: img.build_id.map(<[u8]>::to_vec), ..Discovery::default() };
    let m = markers::scan(img);
    d.version = m.openssl_version.clone();

    let sym = symbols::find(img);
    d.notes.extend(sym.notes);
    if let Some(&family) = sym.families.first() {
        d.library = Some(if family == TlsLibrary::OpenSsl && m.boringssl && m.openssl_version.is_none() {
            d.version = Some("BoringSSL".into());
            TlsLibrary::BoringSsl
        } else {
            family
        });
        if sym.families.len() > 1 {
            d.notes.push(format!(
                "symbols of several TLS libraries: {:?}; points for all of them are returned",
                sym.families
            ));
        }
        d.points = sym.points;
        d.notes.push(format!("found by exported/static symbols: {}", names(&d.points)));
    } else if img.machine != EM_X86_64 {
        d.notes.push(format!(
            "no TLS symbols; the stripped-binary heuristics are implemented for x86-64 only (ELF machine {})",
            img.machine
        ));
    } else {
        let code = img.code();
        let funcs = Functions::new(img, &code);
        if let Some(found) = boringssl::find(img, &code, &funcs, &m) {
            d.library = Some(TlsLibrary::BoringSsl);
            d.version = Some("BoringSSL".into());
            d.notes.extend(found.notes);
            d.points = found.points;
        }
        if d.points.is_empty()
            && let Some(found) = openssl_stripped::find(img, &code, &funcs, &m)
        {
            if d.library.is_none() || !found.points.is_empty() {
                d.library = Some(TlsLibrary::OpenSsl);
                d.version = m.openssl_version.clone();
            }
            d.notes.extend(found.notes);
            d.points = found.points;
        }
    }
    if d.library.is_none() && !sym.imports.is_empty() {
        d.notes.push(format!("imports {} from a shared library: analyse that library instead", sym.imports.join(", ")));
    }

    // Stacks with no function-boundary capture: recognised, never probed. A file reports one
    // stack; when it links a capturable one too (Codex links rustls, which carries its API
    // traffic, and a vendored OpenSSL), the uncapturable one is reported, so the gap is not
    // hidden behind probes that would see none of that traffic, and the other stack's points
    // are named in a note instead of returned.
    let uncapturable = if m.go_crypto_tls {
        Some((
            TlsLibrary::GoCryptoTls,
            None,
            "Go crypto/tls (plaintext capture needs Go-specific probes, not supported)".to_string(),
        ))
    } else if let Some(rustls) = &m.rustls {
        let provider = match (m.aws_lc, m.ring) {
            (true, true) => "aws-lc-rs and ring",
            (true, false) => "aws-lc-rs",
            (false, true) => "ring",
            (false, false) => "unknown crypto provider",
        };
        Some((
            TlsLibrary::Rustls,
            Some(rustls.clone()),
            format!("{rustls} on {provider} (statically linked, no stable symbols: not capturable)"),
        ))
    } else {
        None
    };
    if let Some((library, version, what)) = uncapturable {
        if !d.points.is_empty() {
            d.notes.push(format!(
                "{:?}{} is linked too, with probe points {}: not returned, because {what} is the stack reported",
                d.library.unwrap_or(TlsLibrary::None),
                d.version.as_deref().map(|v| format!(" ({v})")).unwrap_or_default(),
                d.points
                    .iter()
                    .map(|p| format!("{} at file offset {:#x}", p.function, p.file_offset))
                    .collect::<Vec<_>>()
                    .join(", "),
            ));
            d.points.clear();
        }
        d.notes.push(format!("TLS stack: {what}"));
        d.library = Some(library);
        d.version = version;
    }
    if d.library.is_none() {
        d.notes.push(
            "no TLS library recognised (no TLS symbols, BoringSSL/OpenSSL internals, rustls or Go markers)".into(),
        );
    } else if d.points.is_empty() && !d.notes.iter().any(|n| n.contains("no probe points") || n.contains("TLS stack:"))
    {
        d.notes.push("no probe points".into());
    }
    d
}

fn names(points: &[ProbePoint]) -> String {
    points.iter().map(|p| p.function.as_str()).collect::<Vec<_>>().join(", ")
}

/// Analyses each distinct file once.
///
/// Keyed by build-id (together with the file size) when the file has one, else by (device,
/// inode, size, mtime). The size is part of the build-id key because `bun build --compile`
/// output carries the Bun runtime's build-id whatever script it embeds, and such files differ
/// in layout; copies of one library in different places (containers, bind mounts) still share
/// one entry. A path is first looked up by its stat key, so a file already seen is not even
/// opened again.
#[derive(Default)]
pub struct DiscoveryCache {
    by_build_id: HashMap<(Vec<u8>, u64), Arc<Discovery>>,
    by_stat: HashMap<StatKey, Arc<Discovery>>,
    distinct: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct StatKey {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: i64,
    mtime_nsec: i64,
}

impl DiscoveryCache {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn analyze(&mut self, path: &Path) -> Result<Arc<Discovery>, DiscoveryError> {
        let file = std::fs::File::open(path).map_err(|source| DiscoveryError::Io { path: path.into(), source })?;
        let meta = file.metadata().map_err(|source| DiscoveryError::Io { path: path.into(), source })?;
        if !meta.is_file() {
            return Err(DiscoveryError::NotAFile { path: path.into() });
        }
        let key = StatKey {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.len(),
            mtime: meta.mtime(),
            mtime_nsec: meta.mtime_nsec(),
        };
        if let Some(hit) = self.by_stat.get(&key) {
            return Ok(hit.clone());
        }
        if meta.len() == 0 {
            return Err(DiscoveryError::NotElf { path: path.into() });
        }
        let map = map_file(&file, path)?;
        // The build-id alone is cheap to read (headers and notes); a known one skips the work.
        let build_id = Image::parse(&map, &[]).ok().and_then(|img| img.build_id.map(<[u8]>::to_vec));
        if let Some(id) = &build_id
            && let Some(hit) = self.by_build_id.get(&(id.clone(), meta.len()))
        {
            let hit = hit.clone();
            self.by_stat.insert(key, hit.clone());
            return Ok(hit);
        }
        let discovery = Arc::new(analyze_at(&map, path)?);
        self.distinct += 1;
        if let Some(id) = build_id {
            self.by_build_id.insert((id, meta.len()), discovery.clone());
        }
        self.by_stat.insert(key, discovery.clone());
        Ok(discovery)
    }

    /// How many distinct files have been analysed.
    pub fn len(&self) -> usize {
        self.distinct
    }

    pub fn is_empty(&self) -> bool {
        self.distinct == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probes::tls::image::tests::synthetic_elf;

    #[test]
    fn symbols_in_a_synthetic_executable() {
        let elf = synthetic_elf(
            2,
            0x40_1000,
            &[0xC3; 0x40],
            b"OpenSSL 3.0.19 27 Jan 2026\0",
            &[("SSL_write", 0x40_1000), ("SSL_read", 0x40_1020)],
        );
        let d = analyze_bytes(&elf).unwrap();
        assert_eq!(d.library, Some(TlsLibrary::OpenSsl));
        assert_eq!(d.version.as_deref(), Some("OpenSSL 3.0.19"));
        assert_eq!(
            d.points,
            vec![
                ProbePoint {
                    function: "SSL_write".into(),
                    file_offset: 0x1000,
                    direction: Direction::Send,
                    convention: Convention::ReturnsBytes,
                    method: Method::Symbol
                },
                ProbePoint {
                    function: "SSL_read".into(),
                    file_offset: 0x1020,
                    direction: Direction::Recv,
                    convention: Convention::ReturnsBytes,
                    method: Method::Symbol
                },
            ]
        );
    }

    #[test]
    fn boringssl_with_openssl_names() {
        let rodata = b"OpenSSL 1.1.1 (compatible; BoringSSL)\0";
        let d = analyze_bytes(&synthetic_elf(3, 0x1000, &[0xC3; 0x20], rodata, &[("SSL_write", 0x1000)])).unwrap();
        assert_eq!(d.library, Some(TlsLibrary::BoringSsl));
        assert_eq!(d.version.as_deref(), Some("BoringSSL"));
    }

    #[test]
    fn recognises_rustls_and_go_without_points() {
        let rodata = b"\0/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/rustls-0.23.27/src/conn.rs\0aws-lc-rs-1.13.0\0";
        let d = analyze_bytes(&synthetic_elf(3, 0x1000, &[0xC3], rodata, &[])).unwrap();
        assert_eq!(d.library, Some(TlsLibrary::Rustls));
        assert!(d.points.is_empty());
        assert!(d.notes.iter().any(|n| n.contains("rustls-0.23.27 on aws-lc-rs")), "{:?}", d.notes);

        let rodata = b"\xff Go buildinf:\x08\x02\0crypto/tls.(*Conn).Write\0";
        let d = analyze_bytes(&synthetic_elf(2, 0x1000, &[0xC3], rodata, &[])).unwrap();
        assert_eq!(d.library, Some(TlsLibrary::GoCryptoTls));
        assert!(d.points.is_empty());

        let d = analyze_bytes(&synthetic_elf(2, 0x1000, &[0xC3], b"nothing here\0", &[])).unwrap();
        assert_eq!(d.library, None);
        assert!(!d.notes.is_empty());
    }

    #[test]
    fn errors_are_clear() {
        let e = analyze_bytes(b"not an elf").unwrap_err();
        assert_eq!(e.to_string(), "<memory> is not an ELF file");
        let mut elf = synthetic_elf(1, 0, &[0xC3], b"", &[]);
        assert!(matches!(analyze_bytes(&elf), Err(DiscoveryError::NotLoadable { .. })));
        elf[16] = 2;
        elf[18] = 40; // EM_ARM: Thumb entry addresses carry bit 0
        assert!(matches!(analyze_bytes(&elf), Err(DiscoveryError::UnsupportedArch { machine: 40, .. })));
        let e = analyze(Path::new("/nonexistent/file")).unwrap_err();
        assert!(e.to_string().starts_with("cannot read /nonexistent/file"), "{e}");
        assert!(matches!(analyze(Path::new("/")), Err(DiscoveryError::NotAFile { .. })));
    }

    #[test]
    fn aarch64_symbols_work_heuristics_do_not() {
        let mut elf = synthetic_elf(3, 0x1000, &[0; 0x40], b"", &[("gnutls_record_send", 0x1010)]);
        elf[18..20].copy_from_slice(&EM_AARCH64.to_le_bytes());
        let d = analyze_bytes(&elf).unwrap();
        assert_eq!(d.library, Some(TlsLibrary::GnuTls));
        assert_eq!(d.points.len(), 1);
        let mut elf = synthetic_elf(3, 0x1000, &[0; 0x40], b"ssl_write_internal\0", &[]);
        elf[18..20].copy_from_slice(&EM_AARCH64.to_le_bytes());
        let d = analyze_bytes(&elf).unwrap();
        assert!(d.points.is_empty());
        assert!(d.notes.iter().any(|n| n.contains("x86-64 only")), "{:?}", d.notes);
    }

    #[test]
    fn cache_analyses_each_file_once() {
        let dir = tempfile::tempdir().unwrap();
        let elf = synthetic_elf(3, 0x1000, &[0xC3; 0x40], b"", &[("SSL_write", 0x1000)]);
        let a = dir.path().join("a.so");
        let b = dir.path().join("b.so");
        std::fs::write(&a, &elf).unwrap();
        std::fs::write(&b, &elf).unwrap();
        let mut cache = DiscoveryCache::new();
        let first = cache.analyze(&a).unwrap();
        let again = cache.analyze(&a).unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        // No build-id: a copy elsewhere is another file.
        cache.analyze(&b).unwrap();
        assert_eq!(cache.len(), 2);
        std::fs::write(dir.path().join("junk"), b"junk").unwrap();
        assert!(cache.analyze(&dir.path().join("junk")).is_err());
        assert_eq!(cache.len(), 2);
    }
}
