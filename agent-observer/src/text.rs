//! Turning kernel bytes (paths, argv) into span strings without losing information.

/// UTF-8 passes through; each byte of an invalid sequence becomes `\xNN`. Such strings are
/// also flagged by [`is_lossless`] so a sink can add the raw bytes.
pub fn display_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// Whether `bytes` is valid UTF-8 (so [`display_bytes`] is exact).
pub fn is_lossless(bytes: &[u8]) -> bool {
    std::str::from_utf8(bytes).is_ok()
}

/// Splits NUL-separated strings (argv as the kernel stores it).
pub fn split_nul(bytes: &[u8]) -> Vec<Vec<u8>> {
    let bytes = bytes.strip_suffix(&[0]).unwrap_or(bytes);
    if bytes.is_empty() {
        return Vec::new();
    }
    bytes.split(|&b| b == 0).map(<[u8]>::to_vec).collect()
}

/// The last path component.
pub fn file_name(path: &[u8]) -> &[u8] {
    path.rsplit(|&b| b == b'/').next().unwrap_or(path)
}

/// Joins `rel` onto `base` the way the kernel resolves a relative path, lexically.
pub fn join_path(base: &[u8], rel: &[u8]) -> Vec<u8> {
    if rel.first() == Some(&b'/') {
        return rel.to_vec();
    }
    let mut out = base.to_vec();
    if out.last() != Some(&b'/') {
        out.push(b'/');
    }
    out.extend_from_slice(rel);
    normalize(&out)
}

/// Removes `.` and `..` components and repeated slashes.
pub fn normalize(path: &[u8]) -> Vec<u8> {
    let mut parts: Vec<&[u8]> = Vec::new();
    for part in path.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    let mut out = Vec::with_capacity(path.len());
    for p in parts {
        out.push(b'/');
        out.extend_from_slice(p);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
}

/// Shell-style matching of `text` against `pattern` with `*` (any run) and `?` (any byte).
/// Iterative, with single-star backtracking: linear in practice, no recursion.
pub fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match(b"*", b""));
        assert!(glob_match(b"a*c", b"abbbc"));
        assert!(glob_match(b"a?c", b"abc"));
        assert!(!glob_match(b"a?c", b"ac"));
        assert!(glob_match(b"*.js", b"x/y.js"));
        assert!(!glob_match(b"*.js", b"x/y.jsx"));
        assert!(glob_match(b"**a*b*", b"xxaxxbxx"));
    }

    #[test]
    fn invalid_utf8_is_escaped_not_dropped() {
        assert_eq!(display_bytes(b"/tmp/a\xffb"), "/tmp/a\\xffb");
        assert_eq!(display_bytes("/tmp/é".as_bytes()), "/tmp/é");
        assert!(!is_lossless(b"\xff"));
    }

    #[test]
    fn argv_splitting() {
        assert_eq!(split_nul(b"sh\0-c\0echo hi\0"), vec![b"sh".to_vec(), b"-c".to_vec(), b"echo hi".to_vec()]);
        assert_eq!(split_nul(b"a\0\0b\0"), vec![b"a".to_vec(), b"".to_vec(), b"b".to_vec()]);
        assert!(split_nul(b"").is_empty());
    }

    #[test]
    fn path_joining() {
        assert_eq!(join_path(b"/home/u", b"./x/../y"), b"/home/u/y");
        assert_eq!(join_path(b"/", b"a"), b"/a");
        assert_eq!(join_path(b"/a", b"/abs"), b"/abs");
        assert_eq!(normalize(b"/../.."), b"/");
        assert_eq!(file_name(b"/a/b c"), b"b c");
    }
}
