//! Reading the daemon's `--dump-streams` directory: one file per stream and direction, and an
//! index describing each.

use std::path::Path;

use serde_json::Value;

#[derive(Clone, Debug)]
pub struct Stream {
    pub file: String,
    pub pid: u32,
    /// `tls` or `sock`.
    pub kind: String,
    /// `send` or `recv`.
    pub direction: String,
    pub library: u64,
    pub server_name: Option<String>,
    pub agent: Option<String>,
    pub bytes: Vec<u8>,
    pub lost_bytes: u64,
}

/// Every stream in a dump directory (empty if there is none yet).
pub fn read(dir: &Path) -> Vec<Stream> {
    let index = std::fs::read_to_string(dir.join("index.jsonl")).unwrap_or_default();
    let mut streams: Vec<Stream> = Vec::new();
    let mut lost: Vec<(String, u64)> = Vec::new();
    for line in index.lines() {
        let v: Value = serde_json::from_str(line).expect("index.jsonl line is JSON");
        let file = v["file"].as_str().unwrap_or_default().to_owned();
        if let Some(n) = v["lost_bytes"].as_u64() {
            lost.push((file, n));
            continue;
        }
        streams.push(Stream {
            bytes: std::fs::read(dir.join(&file)).unwrap_or_default(),
            file,
            pid: v["pid"].as_u64().unwrap_or(0) as u32,
            kind: v["kind"].as_str().unwrap_or_default().to_owned(),
            direction: v["direction"].as_str().unwrap_or_default().to_owned(),
            library: v["library"].as_u64().unwrap_or(0),
            server_name: v["server_name"].as_str().map(str::to_owned),
            agent: v["agent"].as_str().map(str::to_owned),
            lost_bytes: 0,
        });
    }
    for (file, n) in lost {
        if let Some(s) = streams.iter_mut().find(|s| s.file == file) {
            s.lost_bytes += n;
        }
    }
    streams
}

/// The body of an HTTP/1.1 message whose head ends at `at`, de-chunked when chunked.
pub fn http1_body(message: &[u8]) -> Option<Vec<u8>> {
    let at = message.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&message[..at]).to_ascii_lowercase();
    let body = &message[at..];
    if !head.contains("transfer-encoding: chunked") {
        return Some(body.to_vec());
    }
    let mut out = Vec::new();
    let mut rest = body;
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
        let size = usize::from_str_radix(String::from_utf8_lossy(&rest[..line_end]).split(';').next()?.trim(), 16).ok()?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size + 2..)?;
    }
}

/// Splits a captured HTTP/1.1 stream (keep-alive) into messages: head + body by
/// content-length or chunked framing.
pub fn http1_messages(stream: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = stream;
    while let Some(at) = rest.windows(4).position(|w| w == b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&rest[..at + 4]).to_ascii_lowercase();
        let len = if head.contains("transfer-encoding: chunked") {
            // Find the terminating 0-chunk.
            let body = &rest[at + 4..];
            body.windows(5).position(|w| w == b"0\r\n\r\n").map(|p| p + 5).unwrap_or(body.len())
        } else {
            head.lines()
                .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap_or(0)))
                .unwrap_or(0)
        };
        let end = (at + 4 + len).min(rest.len());
        out.push(rest[..end].to_vec());
        rest = &rest[end..];
    }
    out
}
