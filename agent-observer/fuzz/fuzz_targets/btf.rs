//! Kernel BTF: malformed type data is an error, never a panic or a hang.
#![no_main]
use agent_observer::probes::btf::Btf;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(btf) = Btf::parse(data) {
        let _ = btf.offset_of("task_struct", "pid");
        let _ = btf.offset_of("sock", "__sk_common.skc_family");
    }
});
