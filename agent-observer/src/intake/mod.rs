//! Event intake: raw ring-buffer records in, typed [`Event`]s out.
//!
//! [`record::parse`] is pure and checks every length the kernel wrote, so a corrupt or
//! truncated record is an error, never a panic. [`ring`] owns the ring buffer and the loss
//! counters.

pub mod clock;
pub mod record;
pub mod ring;

use crate::span::UnixNanos;

/// Something a tracked (or candidate) process did, as the kernel reported it.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    Fork(Fork),
    Exec(Exec),
    Exit(Exit),
}

impl Event {
    pub fn ts(&self) -> UnixNanos {
        match self {
            Event::Fork(e) => e.ts,
            Event::Exec(e) => e.ts,
            Event::Exit(e) => e.ts,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Fork {
    pub ts: UnixNanos,
    pub parent: u32,
    pub child: u32,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Exec {
    pub ts: UnixNanos,
    pub tgid: u32,
    pub old_tid: u32,
    pub uid: u32,
    pub gid: u32,
    /// The process was not tracked: the kernel flagged it because of its comm.
    pub candidate: bool,
    /// As passed to execve; may be relative.
    pub filename: Vec<u8>,
    pub argv: Vec<Vec<u8>>,
    pub argv_truncated: bool,
    pub cwd: KernelPath,
    pub comm: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Exit {
    pub ts: UnixNanos,
    pub tgid: u32,
    /// A wait(2) status.
    pub status: u32,
}

/// An absolute path as the kernel walked it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelPath {
    pub bytes: Vec<u8>,
    /// The walk stopped early (too deep or too long); `bytes` is the tail of the real path.
    pub truncated: bool,
    /// A kernel read failed during the walk.
    pub fault: bool,
}

impl KernelPath {
    pub fn known(&self) -> bool {
        !self.bytes.is_empty() && !self.fault
    }
}
