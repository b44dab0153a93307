//! Sessions: one agent run, one trace.

use std::collections::HashSet;

use crate::span::{SpanId, TraceId, UnixNanos};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u64);

/// How a session was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Discovery {
    /// A catalogue or user rule matched an exec.
    Exec,
    /// Already running when the daemon started.
    Procfs,
    /// Started by `agent-observer watch`.
    Watch,
}

impl Discovery {
    pub fn as_str(self) -> &'static str {
        match self {
            Discovery::Exec => "exec",
            Discovery::Procfs => "procfs",
            Discovery::Watch => "watch",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Session {
    pub id: SessionId,
    pub agent: String,
    pub trace_id: TraceId,
    pub root_span: SpanId,
    pub root_tgid: u32,
    pub started: UnixNanos,
    /// Processes of this session still alive.
    pub live: usize,
    /// Set when the root process exits: its wait status.
    pub root_status: Option<u32>,
    /// uid of the root process, whose home `~` noise prefixes refer to.
    pub uid: u32,
    pub files: FilesSummary,
    /// Started while syscall capture was detached; cleared once it is attached.
    pub capture_gap: bool,
}

/// What the session did to files, for its root span. Paths are counted once each.
#[derive(Clone, Debug, Default)]
pub struct FilesSummary {
    pub created: HashSet<Vec<u8>>,
    pub modified: HashSet<Vec<u8>>,
    pub deleted: HashSet<Vec<u8>>,
    pub bytes_written: u64,
    /// Changes under noise prefixes: counted here, never spanned.
    pub noise_changes: u64,
}
