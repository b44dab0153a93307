//! The correlator on arbitrary record streams: whatever order, duplication or nonsense the
//! kernel side could produce, it never panics, and shutdown leaves nothing open.
#![no_main]
use agent_observer::{
    catalogue::Matcher,
    config::Config,
    correlate::{Correlator, HashOutcome, Output},
    intake::{clock::BootClock, record},
    redact::Redactor,
    span::RandomIds,
};
use libfuzzer_sys::fuzz_target;

static MATCHER: std::sync::LazyLock<Matcher> =
    std::sync::LazyLock::new(|| Matcher::new(&Config::default()).unwrap());

fuzz_target!(|data: &[u8]| {
    let mut c = Correlator::new(MATCHER.clone(), Redactor::default(), Box::new(RandomIds::seeded(1)));
    let clock = BootClock::with_offset(0);
    let mut out = Vec::new();
    // Length-prefixed records: [len: u16][bytes].
    let mut rest = data;
    while rest.len() >= 2 {
        let len = u16::from_le_bytes([rest[0], rest[1]]) as usize;
        rest = &rest[2..];
        let (chunk, tail) = rest.split_at(len.min(rest.len()));
        rest = tail;
        if let Ok(event) = record::parse(chunk, &clock) {
            c.handle(event, &mut out);
        }
        c.tick(u64::MAX / 2, &mut out);
    }
    c.shutdown(u64::MAX / 2, &mut out);
    let requests: Vec<u64> = out.iter().filter_map(|o| if let Output::HashFile(r) = o { Some(r.id) } else { None }).collect();
    for id in requests {
        c.hash_done(id, HashOutcome::Gone, &mut out);
    }
    assert_eq!(c.pending_hashes(), 0);
    assert_eq!(c.live_processes(), 0);
});
