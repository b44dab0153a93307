//! Strings in read-only data that identify a TLS stack and its version.
//!
//! Only read-only data is searched (allocated sections that are neither writable nor code), so
//! a script bundle carried in a writable section (Bun's `.bun`) or in a note cannot be
//! mistaken for the binary's own strings.

use memchr::memmem::Finder;

use super::image::Image;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Markers {
    /// `OpenSSL X.Y.Z[suffix]`, from `OpenSSL_version()`'s text (it lives in libcrypto).
    pub openssl_version: Option<String>,
    /// (major, minor) of `openssl_version`.
    pub openssl_release: Option<(u32, u32)>,
    /// The reason string of `SSL_R_UNSUPPORTED_WRITE_FLAG`, which exists only where
    /// `ssl_write_internal` takes a `flags` argument (OpenSSL >= 3.2).
    pub openssl_write_flags: bool,
    /// `"BoringSSL"` as a C string (`OpenSSL_version()` in BoringSSL) or a `boringssl/` path.
    pub boringssl: bool,
    /// e.g. `rustls-0.23.46`, from a crate path in panic locations.
    pub rustls: Option<String>,
    pub aws_lc: bool,
    pub ring: bool,
    /// Go build info (`\xff Go buildinf:`).
    pub go: bool,
    /// Go's `crypto/tls` package (function names in the pcln table survive `-s -w`).
    pub go_crypto_tls: bool,
}

pub(crate) fn scan(img: &Image<'_>) -> Markers {
    let regions = img.rodata();
    let mut m = Markers::default();
    let any = |needle: &[u8]| {
        let f = Finder::new(needle);
        regions.iter().any(|(_, bytes)| f.find(bytes).is_some())
    };

    let openssl = Finder::new(b"OpenSSL ");
    'version: for (_, bytes) in &regions {
        for at in openssl.find_iter(bytes) {
            let tail = &bytes[at + 8..bytes.len().min(at + 8 + 48)];
            if let Some((text, release)) = parse_openssl_version(tail) {
                m.openssl_version = Some(format!("OpenSSL {text}"));
                m.openssl_release = Some(release);
                break 'version;
            }
        }
    }
    m.openssl_write_flags = any(b"unsupported write flag\0");
    m.boringssl = any(b"\0BoringSSL\0") || any(b"boringssl/");

    let rustls = Finder::new(b"/rustls-");
    'rustls: for (_, bytes) in &regions {
        for at in rustls.find_iter(bytes) {
            let tail = &bytes[at + 8..bytes.len().min(at + 8 + 24)];
            if tail.first().is_some_and(u8::is_ascii_digit) {
                let n = tail.iter().take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-')).count();
                m.rustls = Some(format!("rustls-{}", String::from_utf8_lossy(&tail[..n])));
                break 'rustls;
            }
        }
    }
    m.aws_lc = any(b"aws-lc-rs-") || any(b"aws-lc-sys-") || any(b"AWS-LC");
    m.ring = any(b"/ring-0.");
    m.go = any(b"\xff Go buildinf:") || img.section(".go.buildinfo").is_some_and(|(_, b)| b.starts_with(b"\xff Go buildinf:"));
    m.go_crypto_tls = m.go && any(b"crypto/tls.");
    m
}

/// Virtual addresses of the C strings in read-only data that end with `suffix` (which ends
/// with its NUL): the whole string's start when `whole`, else where `suffix` itself starts
/// (a name the linker may have merged into the tail of a longer string). At most `limit`.
pub(crate) fn string_addresses(img: &Image<'_>, suffix: &[u8], whole: bool, limit: usize) -> Vec<u64> {
    let finder = Finder::new(suffix);
    let mut out = Vec::new();
    for (offset, bytes) in img.rodata() {
        for at in finder.find_iter(bytes) {
            let start = if whole {
                let floor = at.saturating_sub(4096);
                match memchr::memrchr(0, &bytes[floor..at]) {
                    Some(nul) => floor + nul + 1,
                    None if floor == 0 => 0,
                    None => continue,
                }
            } else {
                at
            };
            if let Some(va) = img.vaddr_of_offset(offset + start as u64)
                && !out.contains(&va)
            {
                out.push(va);
                if out.len() >= limit {
                    return out;
                }
            }
        }
    }
    out
}

/// `3.0.19 27 Jan 2026` → (`3.0.19`, (3, 0)); keeps a suffix glued to the number (`+quic`).
fn parse_openssl_version(tail: &[u8]) -> Option<(String, (u32, u32))> {
    let end = tail.iter().position(|b| *b == b' ' || *b == 0 || !b.is_ascii_graphic()).unwrap_or(tail.len());
    let word = std::str::from_utf8(&tail[..end]).ok()?;
    let numeric = word.split(|c: char| !(c.is_ascii_digit() || c == '.')).next()?;
    let mut parts = numeric.split('.');
    let major: u32 = parts.next()?.parse().ok()?;
    let minor: u32 = parts.next()?.parse().ok()?;
    let _patch: u32 = parts.next()?.parse().ok()?;
    if major == 0 || major > 9 {
        return None;
    }
    Some((word.to_string(), (major, minor)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openssl_versions() {
        assert_eq!(parse_openssl_version(b"3.0.19 27 Jan 2026\0"), Some(("3.0.19".into(), (3, 0))));
        assert_eq!(parse_openssl_version(b"3.0.15+quic 3 Sep 2024"), Some(("3.0.15+quic".into(), (3, 0))));
        assert_eq!(parse_openssl_version(b"1.1.1w  11 Sep 2023"), Some(("1.1.1w".into(), (1, 1))));
        assert_eq!(parse_openssl_version(b"3.5.7\0"), Some(("3.5.7".into(), (3, 5))));
        assert_eq!(parse_openssl_version(b"3.0 legacy provider"), None);
        assert_eq!(parse_openssl_version(b"Project"), None);
        assert_eq!(parse_openssl_version(b""), None);
    }
}
