//! TLS discovery on arbitrary bytes: a Discovery or an error, never a panic, an out-of-bounds
//! read or an unbounded allocation.
#![no_main]
use agent_observer::probes::tls::analyze_bytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(d) = analyze_bytes(data) {
        for p in &d.points {
            assert!(p.file_offset < data.len() as u64, "a probe point outside the file");
        }
    }
});
