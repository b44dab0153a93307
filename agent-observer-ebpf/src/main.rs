//! agent-observer's kernel programs.
//!
//! Sensors are grouped by hook family, one module each. All of them report into the single
//! `EVENTS` ring buffer and share the `TRACKED` set of tgids: a process that is not tracked costs
//! one map lookup and emits nothing.
#![no_std]
#![no_main]
#![feature(core_intrinsics)]
#![allow(internal_features)]

mod data;
mod files;
mod kernel;
mod maps;
mod net;
mod process;
mod tls;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // The verifier rejects any path that could reach here, so a panic is a build-time error.
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
