//! Reassembling chunks into per-call segments.
//!
//! The kernel splits each call into chunks in order, with the call's length and each chunk's
//! offset, so holes (a chunk lost to a full ring buffer, memory it could not read, a call
//! longer than the copy limit) are found exactly. A call's chunks are consecutive in the ring
//! buffer for a given thread; calls on one connection by different threads may interleave,
//! which is why the key includes the thread.

use std::collections::HashMap;

use super::Segment;
use crate::intake::{Conn, DataChunk, Direction};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key {
    tgid: u32,
    tid: u32,
    conn: Conn,
    dir: Direction,
}

#[derive(Debug)]
struct Partial {
    ts: u64,
    library: u32,
    call_len: u64,
    bytes: Vec<u8>,
    /// Where the next chunk should start; a later offset means a hole.
    next: u64,
    lost: u64,
}

/// Largest call kept in memory while its chunks arrive; beyond this, bytes are counted as lost.
pub const MAX_CALL_BYTES: u64 = 16 << 20;

#[derive(Default)]
pub struct Reassembler {
    partial: HashMap<Key, Partial>,
    /// Bytes lost across all streams.
    pub lost_bytes: u64,
}

impl Reassembler {
    /// Adds a chunk; returns the segment when its call is complete (or abandoned).
    pub fn push(&mut self, c: DataChunk) -> Vec<Segment> {
        let key = Key { tgid: c.tgid, tid: c.tid, conn: c.conn, dir: c.dir };
        let mut out = Vec::new();
        if c.offset == 0 {
            // A new call: whatever was pending on this key will not be completed.
            if let Some(p) = self.partial.remove(&key) {
                out.push(self.finish(key, p));
            }
        }
        let p = self.partial.entry(key).or_insert_with(|| Partial {
            ts: c.ts,
            library: c.library,
            call_len: c.call_len,
            bytes: Vec::new(),
            next: c.offset,
            lost: c.offset,
        });
        if c.offset > p.next {
            p.lost += c.offset - p.next;
        }
        if (p.bytes.len() as u64) + (c.bytes.len() as u64) <= MAX_CALL_BYTES {
            p.bytes.extend_from_slice(&c.bytes);
        } else {
            p.lost += c.bytes.len() as u64;
        }
        p.next = c.offset + c.bytes.len() as u64;
        if c.last || c.truncated || p.next >= p.call_len {
            let p = self.partial.remove(&key).expect("present");
            out.push(self.finish(key, p));
        }
        out
    }

    fn finish(&mut self, key: Key, mut p: Partial) -> Segment {
        if p.next < p.call_len {
            p.lost += p.call_len - p.next;
        }
        self.lost_bytes += p.lost;
        Segment { ts: p.ts, tgid: key.tgid, conn: key.conn, dir: key.dir, library: p.library, bytes: p.bytes, lost: p.lost }
    }

    /// Finishes every pending call (at shutdown, or when a process exits).
    pub fn flush(&mut self, tgid: Option<u32>) -> Vec<Segment> {
        let keys: Vec<Key> = self.partial.keys().copied().filter(|k| tgid.is_none_or(|t| t == k.tgid)).collect();
        let mut out: Vec<Segment> = keys
            .into_iter()
            .map(|k| {
                let p = self.partial.remove(&k).expect("present");
                self.finish(k, p)
            })
            .collect();
        out.sort_by_key(|s| s.ts);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(offset: u64, bytes: &[u8], call_len: u64, last: bool) -> DataChunk {
        DataChunk {
            ts: 10 + offset,
            tgid: 1,
            tid: 1,
            conn: Conn::Tls(0xabc),
            dir: Direction::Send,
            library: 1,
            call_len,
            offset,
            bytes: bytes.to_vec(),
            last,
            truncated: false,
        }
    }

    #[test]
    fn chunks_become_one_segment_per_call() {
        let mut r = Reassembler::default();
        assert!(r.push(chunk(0, b"GET / HT", 14, false)).is_empty());
        let out = r.push(chunk(8, b"TP/1.1", 14, true));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].bytes, b"GET / HTTP/1.1");
        assert_eq!((out[0].lost, out[0].ts), (0, 10));
    }

    #[test]
    fn holes_and_cut_calls_are_counted_exactly() {
        let mut r = Reassembler::default();
        r.push(chunk(0, b"aaaa", 12, false));
        // The chunk at 4..8 was lost (ring buffer full).
        let out = r.push(chunk(8, b"cccc", 12, true));
        assert_eq!(out[0].lost, 4);
        // A call cut after its first chunk (copy limit): the next call reveals it.
        r.push(chunk(0, b"dddd", 100, false));
        let out = r.push(chunk(0, b"e", 1, true));
        assert_eq!(out.len(), 2);
        assert_eq!((out[0].bytes.as_slice(), out[0].lost), (&b"dddd"[..], 96));
        assert_eq!(r.lost_bytes, 100);
    }

    #[test]
    fn flush_finishes_pending_calls() {
        let mut r = Reassembler::default();
        r.push(chunk(0, b"xy", 5, false));
        let out = r.flush(Some(1));
        assert_eq!((out[0].bytes.as_slice(), out[0].lost), (&b"xy"[..], 3));
        assert!(r.flush(None).is_empty());
    }
}
