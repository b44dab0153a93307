//! agent-observer: an eBPF observer for AI coding agents.
//!
//! The data flows one way, and the modules follow it:
//!
//! ```text
//! probes (kernel programs, attach) → intake (ring buffer → Event)
//!   → correlate (sessions, process tree → spans) → sinks (OTLP, OTLP/JSON file, console)
//! ```
//!
//! `intake::record` and `correlate` are pure: no I/O and no clock of their own, so they are
//! unit-tested and fuzzed without a kernel. `daemon` wires the stages and does the I/O.

pub mod catalogue;
pub mod config;
pub mod correlate;
pub mod daemon;
pub mod decode;
pub mod hasher;
pub mod intake;
pub mod notify;
pub mod probes;
pub mod procscan;
pub mod redact;
pub mod semconv;
pub mod sinks;
pub mod span;
pub mod text;
pub mod watch;
