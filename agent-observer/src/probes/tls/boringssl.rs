//! `SSL_write`/`SSL_read` in a stripped, statically linked BoringSSL (Bun and everything
//! `bun build --compile` makes: Claude Code's native binary, OpenCode).
//!
//! BoringSSL's `OPENSSL_PUT_ERROR(SSL, reason)` expands to
//! `ERR_put_error(ERR_LIB_SSL /* 16 */, 0, reason, __FILE__, __LINE__)`, so every error site
//! in `ssl/ssl_lib.cc` loads the address of that file's path string next to the constants 16,
//! the reason and the line. When link-time optimisation drops the unused second parameter
//! (Claude Code's build does) the arguments shift by one register
//! (`ERR_put_error(16, reason, file, line)`), so the decoder locates the file argument and
//! reads the reason and line from the registers on either side of it.
//!
//! In `ssl_lib.cc` exactly two functions raise both `SSL_R_UNINITIALIZED` (226) and
//! `SSL_R_SSL_HANDSHAKE_FAILURE` (215): the static `ssl_read_impl` and, later in the file,
//! `SSL_write` (values from BoringSSL's `include/openssl/ssl.h`). `SSL_read` is the other
//! function that calls `ssl_read_impl` and raises `ERR_R_SHOULD_NOT_HAVE_BEEN_CALLED` (66) —
//! from `SSL_peek`, inlined into it — at a line between the two. Everything is cross-checked
//! and nothing is returned unless it all agrees.

use std::collections::BTreeMap;

use super::{
    discover::{Convention, Direction, Found, Method, ProbePoint},
    functions::{Bounds, Function, Functions},
    image::Image,
    markers::Markers,
    x86::{self, Code, Ref, SYSV_ARGS},
};

const ERR_LIB_SSL: u64 = 16;
const SSL_R_UNINITIALIZED: u32 = 226;
const SSL_R_SSL_HANDSHAKE_FAILURE: u32 = 215;
const ERR_R_SHOULD_NOT_HAVE_BEEN_CALLED: u32 = 66;
/// A bound on references followed (a real `ssl_lib.cc` has a few hundred error sites).
const MAX_REFS: usize = 2_000;

/// One `OPENSSL_PUT_ERROR(SSL, reason)` in `ssl_lib.cc`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Site {
    pub va: u64,
    pub reason: u32,
    pub line: u32,
}

/// Decodes the call a reference to the file string feeds. The file argument is the 3rd or 4th
/// (with or without the unused parameter); the library code is the 1st, the reason just before
/// the file and the line just after it.
pub(crate) fn error_site(code: &[Code<'_>], r: &Ref) -> Option<Site> {
    let (regs, _) = x86::args_at_call(code, r.va)?;
    let args = SYSV_ARGS.map(|reg| regs[reg as usize]);
    let k = (2..=3).find(|&k| args[k] == Some(r.target))?;
    if args[0] != Some(ERR_LIB_SSL) {
        return None;
    }
    let reason = u32::try_from(args[k - 1]?).ok().filter(|r| *r < 4096)?;
    let line = u32::try_from(args[k + 1]?).ok().filter(|l| (1..1_000_000).contains(l))?;
    Some(Site { va: r.va, reason, line })
}

struct FnSites {
    func: Function,
    sites: Vec<Site>,
}

impl FnSites {
    fn line_of(&self, reason: u32) -> Option<u32> {
        self.sites.iter().filter(|s| s.reason == reason).map(|s| s.line).min()
    }
}

/// `None` when the file has no BoringSSL `ssl_lib.cc` path string at all.
pub(crate) fn find(img: &Image<'_>, code: &[Code<'_>], funcs: &Functions<'_, '_>, m: &Markers) -> Option<Found> {
    let files = &m.ssl_lib_cc;
    if files.is_empty() {
        return None;
    }
    let mut found = Found::default();
    let fail = |mut found: Found, why: String| {
        found.notes.push(format!("BoringSSL error-site heuristic: {why}; no probe points"));
        Some(found)
    };
    let refs = x86::find_refs(code, files, img.is_position_dependent(), MAX_REFS);
    let sites: Vec<Site> = refs.iter().filter_map(|r| error_site(code, r)).collect();
    let mut by_fn: BTreeMap<u64, FnSites> = BTreeMap::new();
    let mut orphans = 0usize;
    for site in &sites {
        match funcs.containing(site.va) {
            Some(func) => by_fn.entry(func.start).or_insert(FnSites { func, sites: Vec::new() }).sites.push(*site),
            None => orphans += 1,
        }
    }
    let bounds = if funcs.has_unwind_tables() { ".eh_frame" } else { "prologue scan (no .eh_frame)" };
    found.notes.push(format!(
        "BoringSSL error-site heuristic: {} references to ssl_lib.cc, {} decoded error sites in {} functions \
         (bounds from {bounds}){}",
        refs.len(),
        sites.len(),
        by_fn.len(),
        if orphans > 0 { format!(", {orphans} outside any function") } else { String::new() }
    ));

    let both: Vec<&FnSites> = by_fn
        .values()
        .filter(|f| f.line_of(SSL_R_UNINITIALIZED).is_some() && f.line_of(SSL_R_SSL_HANDSHAKE_FAILURE).is_some())
        .collect();
    if both.len() != 2 {
        return fail(
            found,
            format!(
                "expected 2 functions raising reasons 226 and 215 (ssl_read_impl, SSL_write), found {}",
                both.len()
            ),
        );
    }
    let (mut read_impl, mut write) = (both[0], both[1]);
    let line = |f: &FnSites| f.line_of(SSL_R_UNINITIALIZED).unwrap_or(0);
    if line(read_impl) > line(write) {
        std::mem::swap(&mut read_impl, &mut write);
    }
    if line(read_impl) == line(write) {
        return fail(found, format!("both candidates raise reason 226 at line {}", line(write)));
    }
    let calls_read_impl = |f: &FnSites| {
        funcs
            .code_of(&f.func)
            .is_some_and(|c| x86::has_direct_transfer(c, f.func.start, f.func.end, read_impl.func.start))
    };
    let readers: Vec<&FnSites> = by_fn
        .values()
        .filter(|f| f.func.start != read_impl.func.start && f.func.start != write.func.start)
        .filter(|f| f.line_of(ERR_R_SHOULD_NOT_HAVE_BEEN_CALLED).is_some())
        .filter(|f| calls_read_impl(f))
        .collect();
    if readers.len() != 1 {
        return fail(
            found,
            format!("expected 1 caller of ssl_read_impl raising reason 66 (SSL_read), found {}", readers.len()),
        );
    }
    let read = readers[0];
    let read_line = read.line_of(ERR_R_SHOULD_NOT_HAVE_BEEN_CALLED).unwrap_or(0);
    if !(line(read_impl) < read_line && read_line < line(write)) {
        return fail(
            found,
            format!(
                "source order does not match: ssl_read_impl line {}, SSL_read line {read_line}, SSL_write line {}",
                line(read_impl),
                line(write)
            ),
        );
    }
    for (name, f) in [("SSL_write", write), ("SSL_read", read)] {
        if f.func.bounds == Bounds::Fde && !starts_like_a_function(code, f.func.start) {
            found
                .notes
                .push(format!("{name} at {:#x}: its FDE start is not a push-rbp/endbr64 prologue", f.func.start));
        }
    }
    let mut points = Vec::new();
    for (name, f, direction) in [("SSL_write", write, Direction::Send), ("SSL_read", read, Direction::Recv)] {
        let Some(file_offset) = img.code_offset(f.func.start) else {
            return fail(found, format!("{name} at {:#x} has no file offset", f.func.start));
        };
        points.push(ProbePoint {
            function: name.into(),
            file_offset,
            direction,
            convention: Convention::ReturnsBytes,
            method: Method::BoringSslErrorSites,
        });
    }
    found.notes.push(format!(
        "BoringSSL error-site heuristic: SSL_write at {:#x} (ssl_lib.cc:{}), ssl_read_impl at {:#x} (:{}), \
         SSL_read at {:#x} (:{read_line}, calls ssl_read_impl)",
        write.func.start,
        line(write),
        read_impl.func.start,
        line(read_impl),
        read.func.start
    ));
    found.points = points;
    Some(found)
}

fn starts_like_a_function(code: &[Code<'_>], va: u64) -> bool {
    let Some(bytes) = x86::region_of(code, va).and_then(|c| c.from(va)) else { return false };
    bytes.starts_with(&x86::FRAME_PROLOGUE)
        || bytes.starts_with(&[0xF3, 0x0F, 0x1E, 0xFA])
        || bytes.first() == Some(&0x55)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site_bytes(file_reg_imm: &[u8], order_lib_first: bool, reason: u32, line: u32) -> Vec<u8> {
        let lib = [0xBFu8, 0x10, 0, 0, 0];
        let mut v = Vec::new();
        if order_lib_first {
            v.extend_from_slice(&lib);
        }
        v.extend_from_slice(file_reg_imm);
        if !order_lib_first {
            v.extend_from_slice(&lib);
        }
        v.extend_from_slice(&[0x31, 0xF6]); // xor esi, esi
        v.push(0xBA);
        v.extend_from_slice(&reason.to_le_bytes());
        v.extend_from_slice(&[0x41, 0xB8]);
        v.extend_from_slice(&line.to_le_bytes());
        v.extend_from_slice(&[0xE8, 0, 0, 0, 0]);
        v
    }

    #[test]
    fn decodes_both_error_put_error_shapes() {
        // Five-argument form, absolute file address in ecx (non-PIE).
        let bytes = site_bytes(&[0xB9, 0x9D, 0xE5, 0x29, 0x00], false, 226, 837);
        let code = [Code { vaddr: 0x1000, bytes: &bytes }];
        let site = error_site(&code, &Ref { va: 0x1000, target: 0x29e59d });
        assert_eq!(site, Some(Site { va: 0x1000, reason: 226, line: 837 }));

        // Four-argument form (unused parameter dropped): file in edx, reason in esi, line in ecx.
        let bytes: Vec<u8> = [
            &[0xBA, 0x6A, 0x46, 0x29, 0x00][..], // mov edx, file
            &[0xBF, 0x10, 0, 0, 0],              // mov edi, 16
            &[0xBE, 0xE2, 0, 0, 0],              // mov esi, 226
            &[0xB9, 0x4A, 0x03, 0, 0],           // mov ecx, 842
            &[0xE8, 0, 0, 0, 0],
        ]
        .concat();
        let code = [Code { vaddr: 0x2000, bytes: &bytes }];
        assert_eq!(
            error_site(&code, &Ref { va: 0x2000, target: 0x29466a }),
            Some(Site { va: 0x2000, reason: 226, line: 842 })
        );

        // Another library's error (ERR_LIB_X509 = 11): not an SSL site.
        let mut bytes = site_bytes(&[0xB9, 0x9D, 0xE5, 0x29, 0x00], true, 226, 837);
        bytes[1] = 11;
        let code = [Code { vaddr: 0x1000, bytes: &bytes }];
        assert_eq!(error_site(&code, &Ref { va: 0x1005, target: 0x29e59d }), None);
    }
}
