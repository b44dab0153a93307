//! ClientHello parsing: any bytes a client sends first give a hello or None, never a panic.
#![no_main]
use agent_observer::decode::tls_hello;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(hello) = tls_hello::parse(data) {
        assert!(hello.alpn.iter().all(|p| p.len() <= 255));
    }
});
