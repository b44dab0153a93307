//! Kernel records: any bytes decode to an event or an error, never a panic.
#![no_main]
use agent_observer::intake::{clock::BootClock, record};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = record::parse(data, &BootClock::with_offset(0));
});
