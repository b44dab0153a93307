//! The process table: every live process of every session, keyed by tgid.
//!
//! A tgid alone is not an identity (pids are reused), so each entry also keeps its start time;
//! events are applied in kernel order, so an exit always reaches the table before the fork that
//! reuses its pid.

use std::collections::HashMap;

use crate::span::{SpanId, UnixNanos};

use super::session::SessionId;

#[derive(Clone, Debug)]
pub struct Process {
    pub tgid: u32,
    /// Fork, exec or /proc start time: with `tgid`, a stable identity.
    pub start: UnixNanos,
    pub parent: u32,
    pub session: SessionId,
    /// The span this process's activity is attributed to: its own exec span, or, after a fork
    /// without exec, the span of the image that forked it.
    pub span: SpanId,
    /// The span of this process's current image, when it exec'd while tracked.
    pub own_span: Option<SpanId>,
    /// Nesting depth of `span` below the session root, for display.
    pub depth: u32,
}

#[derive(Default)]
pub struct ProcessTable {
    by_tgid: HashMap<u32, Process>,
}

impl ProcessTable {
    pub fn get(&self, tgid: u32) -> Option<&Process> {
        self.by_tgid.get(&tgid)
    }

    pub fn get_mut(&mut self, tgid: u32) -> Option<&mut Process> {
        self.by_tgid.get_mut(&tgid)
    }

    pub fn contains(&self, tgid: u32) -> bool {
        self.by_tgid.contains_key(&tgid)
    }

    /// Inserts, returning a stale entry with the same tgid if the kernel reused it unseen.
    pub fn insert(&mut self, process: Process) -> Option<Process> {
        self.by_tgid.insert(process.tgid, process)
    }

    pub fn remove(&mut self, tgid: u32) -> Option<Process> {
        self.by_tgid.remove(&tgid)
    }

    pub fn len(&self) -> usize {
        self.by_tgid.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_tgid.is_empty()
    }

    pub fn tgids(&self) -> impl Iterator<Item = u32> + '_ {
        self.by_tgid.keys().copied()
    }

    pub fn drain(&mut self) -> impl Iterator<Item = Process> + '_ {
        self.by_tgid.drain().map(|(_, p)| p)
    }
}
