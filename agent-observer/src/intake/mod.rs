//! Event intake: raw ring-buffer records in, typed [`Event`]s out.
//!
//! [`record::parse`] is pure and checks every length the kernel wrote, so a corrupt or
//! truncated record is an error, never a panic. [`ring`] owns the ring buffer and the loss
//! counters.

pub mod clock;
pub mod record;
pub mod ring;
pub mod socks;
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
    ExecMap(ExecMap),
    SockOpen(SockOpen),
    SockClose(SockClose),
    Data(DataChunk),
    TlsAssoc(TlsAssoc),
    /// Decoded from `Data` by the decode stage: one whole call's bytes.
    Segment(crate::decode::Segment),
    /// What the daemon found about a process's TLS libraries (for gap reporting).
    TlsCoverage(TlsCoverage),
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
            Event::ExecMap(e) => e.ts,
            Event::SockOpen(e) => e.ts,
            Event::SockClose(e) => e.ts,
            Event::Data(e) => e.ts,
            Event::TlsAssoc(e) => e.ts,
            Event::Segment(e) => e.ts,
            Event::TlsCoverage(e) => e.ts,
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
            Event::ExecMap(e) => e.tgid,
            Event::SockOpen(e) => e.tgid,
            Event::SockClose(e) => e.tgid,
            Event::Data(e) => e.tgid,
            Event::TlsAssoc(e) => e.tgid,
            Event::Segment(e) => e.tgid,
            Event::TlsCoverage(e) => e.tgid,
        }
    }
}

/// A file mapped executable by a tracked process.
#[derive(Clone, Debug, PartialEq)]
pub struct ExecMap {
    pub ts: UnixNanos,
    pub tgid: u32,
    pub handle: FileHandle,
    pub path: KernelPath,
}

/// A TCP connection of a tracked process.
#[derive(Clone, Debug, PartialEq)]
pub struct SockOpen {
    pub ts: UnixNanos,
    pub tgid: u32,
    /// `struct sock *`.
    pub sk: u64,
    pub fd: i32,
    /// Found at connect(2); false when first seen carrying data.
    pub connected: bool,
    pub local: std::net::SocketAddr,
    pub remote: std::net::SocketAddr,
}

/// Totals of a connection over its life.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SockCounters {
    pub bytes_sent: u64,
    pub bytes_recv: u64,
    pub sends: u64,
    pub recvs: u64,
    pub first: UnixNanos,
    pub last: UnixNanos,
    pub tls: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SockClose {
    pub ts: UnixNanos,
    pub tgid: u32,
    pub sk: u64,
    pub counters: SockCounters,
    /// Synthesised when the owning process exited with the socket open.
    pub at_exit: bool,
}

/// What a chunk of bytes travelled through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Conn {
    /// A TLS object (SSL *, gnutls session...), in the process's address space.
    Tls(u64),
    /// A socket (`struct sock *`).
    Socket(u64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    Send,
    Recv,
}

/// One chunk of one call's bytes, as the kernel sent it.
#[derive(Clone, Debug, PartialEq)]
pub struct DataChunk {
    pub ts: UnixNanos,
    pub tgid: u32,
    pub tid: u32,
    pub conn: Conn,
    pub dir: Direction,
    /// `tls::LIB_*`, 0 for sockets.
    pub library: u32,
    /// Bytes the call moved in all.
    pub call_len: u64,
    /// Where this chunk starts within the call.
    pub offset: u64,
    pub bytes: Vec<u8>,
    pub last: bool,
    /// The rest of the call could not be read.
    pub truncated: bool,
}

/// A TLS object seen on a socket.
#[derive(Clone, Debug, PartialEq)]
pub struct TlsAssoc {
    pub ts: UnixNanos,
    pub tgid: u32,
    pub tls: u64,
    pub sk: u64,
    /// The socket I/O happened inside the TLS call (certain), not just after one.
    pub inside_call: bool,
}

/// TLS libraries found in a process, and whether their plaintext can be captured.
#[derive(Clone, Debug, PartialEq)]
pub struct TlsCoverage {
    pub ts: UnixNanos,
    pub tgid: u32,
    pub libraries: Vec<TlsLibraryState>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TlsLibraryState {
    /// `openssl`, `boringssl`, `gnutls`, `nss`, `rustls`, `go-crypto-tls`.
    pub library: String,
    pub path: String,
    pub status: TlsProbeStatus,
}

#[derive(Clone, Debug, PartialEq)]
pub enum TlsProbeStatus {
    /// Probes attached at this time.
    Attached(UnixNanos),
    /// Found, but attaching failed.
    Failed(String),
    /// Recognised, but no way to capture its plaintext.
    Unsupported,
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
