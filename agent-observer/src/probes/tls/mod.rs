//! Where to attach uprobes to see TLS plaintext, found by reading an ELF file.
//!
//! Pure: no eBPF, no kernel. [`analyze`] takes an executable or shared library and returns
//! the TLS stack it carries and, when capture is possible, the file offsets of the functions
//! that move plaintext (for `uprobe`/`uretprobe` attach by offset), with how each reports its
//! byte count. Stacks that cannot be captured at a function boundary (rustls, Go's
//! `crypto/tls`) are still named, so their traffic can be reported as a gap.
//!
//! One concern per file:
//! - `discover`: the public types, the order of attempts, the cache;
//! - `image`: the ELF file as plain values (segments, sections, symbols, build-id);
//! - `symbols`: points from symbol tables (OpenSSL, BoringSSL, GnuTLS, NSPR);
//! - `boringssl`: stripped static BoringSSL (Bun, Claude Code, OpenCode);
//! - `openssl_stripped`: stripped static OpenSSL 3 (vendored in Rust crates, `libssl.a`);
//! - `markers`: version strings and stack markers in read-only data;
//! - `functions`, `eh_frame`: function boundaries from unwind tables or prologues;
//! - `x86`: the small x86-64 decoder the heuristics share.

mod boringssl;
pub mod discover;
mod eh_frame;
mod functions;
mod image;
mod markers;
mod openssl_stripped;
mod symbols;
mod x86;

pub use discover::{
    Convention, Direction, Discovery, DiscoveryCache, DiscoveryError, Method, ProbePoint, TlsLibrary, analyze,
    analyze_bytes,
};
