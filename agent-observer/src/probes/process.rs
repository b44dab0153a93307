//! The process sensor: fork, exec and exit.
//!
//! Costs one `TRACKED` lookup per fork, exec and process exit system-wide; only tracked or
//! candidate processes emit records.

use std::borrow::Cow;

use super::Hook;

pub const PROGRAMS: &[(&str, Hook)] = &[
    ("sched_process_fork", Hook::Raw("sched_process_fork")),
    ("sched_process_exec", Hook::Tracepoint("sched", Cow::Borrowed("sched_process_exec"))),
    ("sched_process_exit", Hook::Tracepoint("sched", Cow::Borrowed("sched_process_exit"))),
];
