//! `ssl_write_internal`/`ssl_read_internal` in a stripped, statically linked OpenSSL 3 (e.g.
//! Rust's `openssl-sys` with the `vendored` feature, or any C program linked with `libssl.a`).
//!
//! OpenSSL 3's `ERR_raise()` records `OPENSSL_FUNC` (`__func__`) through `ERR_set_debug(file,
//! line, func)`, so each error site in those two functions loads the address of the string
//! `"ssl_write_internal"` / `"ssl_read_internal"`. The function holding those references is the
//! target. Both are internal: `SSL_write`, `SSL_write_ex` (through `SSL_write_ex2` from 3.2 on)
//! and `SSL_read`/`SSL_read_ex` call them directly, so probing them sees every write and read
//! exactly once (`SSL_peek` goes through `ssl_peek_internal` and is not seen).
//!
//! Signatures (OpenSSL source):
//! - `int ssl_read_internal(SSL *s, void *buf, size_t num, size_t *readbytes)`: count at arg 3.
//! - 3.0/3.1: `int ssl_write_internal(SSL *s, const void *buf, size_t num, size_t *written)`.
//! - later: `int ssl_write_internal(SSL *s, const void *buf, size_t num, uint64_t flags,
//!   size_t *written)`, added with `SSL_write_ex2`: count at arg 4. Only that version rejects
//!   unknown flags with `ERR_raise(ERR_LIB_SSL, SSL_R_UNSUPPORTED_WRITE_FLAG)` (reason 412),
//!   so the flags form is recognised by that reason among the function's own error sites
//!   (`ERR_set_debug(file, line, func)` is followed by `ERR_set_error(ERR_LIB_SSL = 20,
//!   reason, NULL)`) or by the reason's text "unsupported write flag" in the error string
//!   table; the version string, when present, is cross-checked with it.
//!
//! Guards: every function referencing a name must resolve to one function, and it must be the
//! target of a direct call (an inlined copy inside a caller, or a compiler-split `.cold` part,
//! is not); otherwise no points.

use std::collections::BTreeMap;

use super::{
    discover::{Convention, Direction, Found, Method, ProbePoint},
    functions::{Function, Functions},
    image::Image,
    markers::Markers,
    x86::{self, Code},
};

const MAX_REFS: usize = 2_000;
/// Callers are looked for this far either side of a candidate: `SSL_write` and friends are in
/// the same translation unit (`ssl/ssl_lib.c`), so they sit close by.
const CALLER_WINDOW: u64 = 8 << 20;
const ERR_LIB_SSL: u64 = 20;
const SSL_R_UNSUPPORTED_WRITE_FLAG: u32 = 412;

/// The reasons raised at the error sites whose `__func__` reference is at `refs`: each feeds
/// `ERR_set_debug`, and the call after it is `ERR_set_error(ERR_LIB_SSL, reason, ...)`.
fn error_reasons(code: &[Code<'_>], refs: &[u64]) -> Vec<u32> {
    let mut out = Vec::new();
    for &va in refs {
        let Some((_, call)) = x86::args_at_call(code, va) else { continue };
        let Some(len) =
            x86::region_of(code, call).and_then(|c| c.from(call)).and_then(|b| x86::decode(b, call)).map(|i| i.len)
        else {
            continue;
        };
        let Some((regs, _)) = x86::args_at_call(code, call + len as u64) else { continue };
        if regs[x86::SYSV_ARGS[0] as usize] == Some(ERR_LIB_SSL)
            && let Some(reason) = regs[x86::SYSV_ARGS[1] as usize].and_then(|r| u32::try_from(r).ok())
            && !out.contains(&reason)
        {
            out.push(reason);
        }
    }
    out
}

/// `None` when the file has no `ssl_write_internal`/`ssl_read_internal` name strings.
pub(crate) fn find(img: &Image<'_>, code: &[Code<'_>], funcs: &Functions<'_, '_>, m: &Markers) -> Option<Found> {
    let (write_names, read_names) = (&m.ssl_write_internal, &m.ssl_read_internal);
    if write_names.is_empty() && read_names.is_empty() {
        return None;
    }
    let mut found = Found::default();
    let fail = |mut found: Found, why: String| {
        found.notes.push(format!("OpenSSL __func__ heuristic: {why}; no probe points"));
        Some(found)
    };

    let targets: Vec<u64> = write_names.iter().chain(read_names).copied().collect();
    let refs = x86::find_refs(code, &targets, img.is_position_dependent(), MAX_REFS);
    let mut entries = Vec::new();
    for (name, names) in [("ssl_write_internal", write_names), ("ssl_read_internal", read_names)] {
        let mut holders: BTreeMap<u64, Function> = BTreeMap::new();
        let mut orphans = 0;
        for r in refs.iter().filter(|r| names.contains(&r.target)) {
            match funcs.containing(r.va) {
                Some(f) => {
                    holders.insert(f.start, f);
                }
                None => orphans += 1,
            }
        }
        if holders.is_empty() {
            return fail(
                found,
                format!("no function references the name {name} ({orphans} references outside functions)"),
            );
        }
        entries.push((name, holders));
    }

    // Keep the functions that something calls directly.
    let all: Vec<u64> = entries.iter().flat_map(|(_, h)| h.keys().copied()).collect();
    let called = x86::direct_call_targets(code, &all, CALLER_WINDOW);
    let is_called = |start: u64| all.iter().position(|&a| a == start).is_some_and(|i| called[i]);
    let mut chosen = Vec::new();
    for (name, holders) in &entries {
        let callable: Vec<&Function> = holders.values().filter(|f| is_called(f.start)).collect();
        if callable.len() != 1 {
            return fail(
                found,
                format!(
                    "{name}: {} functions reference its name, {} of them are called directly (need exactly 1)",
                    holders.len(),
                    callable.len()
                ),
            );
        }
        chosen.push((*name, *callable[0]));
    }

    // Which ssl_write_internal: with or without the flags argument.
    let write_fn = chosen[0].1;
    let write_refs: Vec<u64> = refs
        .iter()
        .filter(|r| write_names.contains(&r.target) && r.va >= write_fn.start && r.va < write_fn.end)
        .map(|r| r.va)
        .collect();
    let reasons = error_reasons(code, &write_refs);
    let flags = reasons.contains(&SSL_R_UNSUPPORTED_WRITE_FLAG) || m.openssl_write_flags;
    let version = m.openssl_version.as_deref().unwrap_or("version string not found");
    match m.openssl_release {
        Some((major, minor)) if flags && (major < 3 || (major == 3 && minor < 2)) => {
            return fail(found, format!("{version}, but ssl_write_internal takes a flags argument"));
        }
        Some((major, minor)) if !flags && (major > 3 || (major == 3 && minor >= 5)) => {
            return fail(found, format!("{version}, but no evidence of ssl_write_internal's flags argument"));
        }
        _ => {}
    }
    let write_arg = if flags { 4 } else { 3 };

    for (name, f) in &chosen {
        let Some(file_offset) = img.code_offset(f.start) else {
            return fail(found, format!("{name} at {:#x} has no file offset", f.start));
        };
        let (direction, arg) =
            if *name == "ssl_write_internal" { (Direction::Send, write_arg) } else { (Direction::Recv, 3) };
        found.points.push(ProbePoint {
            function: (*name).into(),
            file_offset,
            direction,
            convention: Convention::OutParam { arg },
            method: Method::OpenSslFuncStrings,
        });
    }
    found.notes.push(format!(
        "OpenSSL __func__ heuristic: ssl_write_internal at {:#x}, ssl_read_internal at {:#x} ({version}; \
         ssl_write_internal raises reasons {reasons:?}{}; written count at arg {write_arg})",
        chosen[0].1.start,
        chosen[1].1.start,
        if m.openssl_write_flags { ", \"unsupported write flag\" string present" } else { "" },
    ));
    Some(found)
}
