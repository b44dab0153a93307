//! Event intake: raw ring-buffer records in, typed [`Event`]s out.
//!
//! [`record::parse`] is pure and checks every length the kernel wrote, so a corrupt or
//! truncated record is an error, never a panic. [`ring`] owns the ring buffer and the loss
//! counters.

pub mod clock;
pub mod record;
pub mod ring;
pub mod writes;

use crate::span::UnixNanos;

/// Something a tracked (or candidate) process did, as the kernel reported it.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    Fork(Fork),
    Exec(Exec),
    Exit(Exit),
    FileOpen(FileOpen),
    FileWriteStart(FileWriteStart),
    FileClose(FileClose),
    FileOp(FileOp),
}

impl Event {
    pub fn ts(&self) -> UnixNanos {
        match self {
            Event::Fork(e) => e.ts,
            Event::Exec(e) => e.ts,
            Event::Exit(e) => e.ts,
            Event::FileOpen(e) => e.ts,
            Event::FileWriteStart(e) => e.ts,
            Event::FileClose(e) => e.ts,
            Event::FileOp(e) => e.ts,
        }
    }

    /// The process the event is about.
    pub fn tgid(&self) -> u32 {
        match self {
            Event::Fork(e) => e.parent,
            Event::Exec(e) => e.tgid,
            Event::Exit(e) => e.tgid,
            Event::FileOpen(e) => e.tgid,
            Event::FileWriteStart(e) => e.tgid,
            Event::FileClose(e) => e.tgid,
            Event::FileOp(e) => e.tgid,
        }
    }
}

/// An open file: the kernel's `struct file *` (shared by dup'd and inherited fds) and its inode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FileHandle {
    pub file: u64,
    pub ino: u64,
    /// As stat(2) reports st_dev.
    pub dev: u64,
    pub fd: i32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct FileOpen {
    pub ts: UnixNanos,
    pub tgid: u32,
    pub handle: FileHandle,
    /// open(2) flags.
    pub flags: u32,
    /// The open created the file.
    pub created: bool,
    pub size: i64,
    pub path: KernelPath,
}

/// The first write of a process to an open file it may not have opened itself.
#[derive(Clone, Debug, PartialEq)]
pub struct FileWriteStart {
    pub ts: UnixNanos,
    pub tgid: u32,
    pub handle: FileHandle,
    pub path: KernelPath,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseHow {
    Close,
    /// dup2/dup3 over the fd.
    DupOver,
    /// The process exited (or exec'd, for close-on-exec fds) with the file open.
    Exit,
    /// One write reported on its own because the kernel's aggregation map was full; the
    /// episode goes on.
    Unaggregated,
    /// An fd was closed but the open file has other references; the episode goes on.
    NotLast,
}

#[derive(Clone, Debug, PartialEq)]
pub struct FileClose {
    pub ts: UnixNanos,
    pub tgid: u32,
    pub handle: FileHandle,
    pub bytes: u64,
    pub writes: u64,
    pub first_write: UnixNanos,
    pub last_write: UnixNanos,
    /// Size when closed, or -1 when unknown.
    pub size: i64,
    pub how: CloseHow,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileOpKind {
    Rename,
    Unlink,
    Mkdir,
    Rmdir,
    Chmod,
    Symlink,
    Link,
    Truncate,
    Mmap,
}

/// One path argument of a file operation.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OpPath {
    /// The directory the name is relative to (cwd or dirfd); empty when the name is absolute.
    /// For fd-based operations, the file's own path.
    pub base: KernelPath,
    /// As the process passed it.
    pub name: Vec<u8>,
    pub name_truncated: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct FileOp {
    pub ts: UnixNanos,
    pub tgid: u32,
    pub kind: FileOpKind,
    pub a: OpPath,
    pub b: Option<OpPath>,
    /// The syscall's flags argument (AT_REMOVEDIR, RENAME_EXCHANGE, MAP_* …).
    pub flags: u64,
    /// Mode, length or size argument.
    pub value: u64,
    /// Set for fd-based operations.
    pub handle: Option<FileHandle>,
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
