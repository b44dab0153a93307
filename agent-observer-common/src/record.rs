//! Ring-buffer record layouts.

/// Starts every record. `len` is the whole record, header included.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Header {
    pub kind: u16,
    pub flags: u16,
    pub len: u32,
    pub tgid: u32,
    pub tid: u32,
    /// CLOCK_BOOTTIME nanoseconds.
    pub ts_ns: u64,
}

/// Record kinds (`Header::kind`).
pub mod kind {
    pub const FORK: u16 = 1;
    pub const EXEC: u16 = 2;
    pub const EXIT: u16 = 3;
    /// A regular file opened for writing (or creation, or truncation).
    pub const FILE_OPEN: u16 = 10;
    /// The first write of a process to an open file.
    pub const FILE_WRITE_START: u16 = 11;
    /// A process closed an fd of a regular file open for writing.
    pub const FILE_CLOSE: u16 = 12;
    /// A namespace or metadata change: rename, unlink, mkdir, chmod, link, truncate, mmap.
    pub const FILE_OP: u16 = 13;
    /// A tracked process mapped a file executable (a library loaded at run time).
    pub const EXEC_MAP: u16 = 14;
    /// A TCP connection: connected by a tracked process, or first seen carrying its data.
    pub const SOCK_OPEN: u16 = 20;
    /// Its last fd closed (or its process exited): final counters.
    pub const SOCK_CLOSE: u16 = 21;
    /// A chunk of bytes: plaintext through a TLS library, or bytes on a plain socket.
    pub const DATA: u16 = 22;
    /// A TLS object (SSL *) used over a socket.
    pub const TLS_ASSOC: u16 = 23;
}

/// Maximum bytes of a path (leaf-first components) carried in one record.
pub const PATH_MAX: usize = 4096;
/// Maximum dentry levels walked for one path.
pub const PATH_DEPTH: usize = 48;
/// Maximum bytes of an exec'd filename.
pub const FILENAME_MAX: usize = 512;
/// Maximum bytes of argv (NUL-separated) carried in an exec record.
pub const ARGV_MAX: usize = 4096;
/// Size of the per-CPU scratch buffer variable-size records are built in.
pub const SCRATCH_SIZE: usize = 16384;

/// The path walk stopped before reaching the root: too deep or too long.
pub const PATH_TRUNCATED: u16 = 1 << 0;
/// A kernel read failed during the walk.
pub const PATH_FAULT: u16 = 1 << 1;

/// A new process (not a thread) forked by a tracked process.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ForkRecord {
    pub header: Header,
    pub parent_tgid: u32,
    pub child_tgid: u32,
}

/// argv was longer than [`ARGV_MAX`].
pub const EXEC_ARGV_TRUNCATED: u32 = 1 << 0;
/// The process was not tracked; it execs a candidate comm and is now provisionally tracked.
pub const EXEC_CANDIDATE: u32 = 1 << 1;

/// An exec by a tracked or candidate process. Followed by `filename_len` bytes of filename,
/// `argv_len` bytes of NUL-separated argv, and `cwd_len` bytes of leaf-first cwd components.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ExecRecord {
    pub header: Header,
    /// The tid that called exec; differs from the tgid when a non-leader thread exec'd.
    pub old_tid: u32,
    pub uid: u32,
    pub gid: u32,
    /// `EXEC_*` bits.
    pub flags: u32,
    pub filename_len: u16,
    pub argv_len: u16,
    pub cwd_len: u16,
    /// `PATH_*` bits of the cwd walk.
    pub cwd_flags: u16,
    pub comm: [u8; 16],
}

/// The last thread of a tracked process exited.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ExitRecord {
    pub header: Header,
    /// `task_struct::exit_code`: a wait(2) status (exit code << 8, or the signal number).
    pub exit_code: u32,
    pub _pad: u32,
}

/// Identity of an open file.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileRef {
    /// `struct file *`.
    pub file: u64,
    pub ino: u64,
    pub dev: u32,
    pub fd: i32,
}

/// `FILE_OPEN` and `FILE_WRITE_START`. Followed by `path_len` bytes of leaf-first path.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct FileRecord {
    pub header: Header,
    pub file: FileRef,
    /// open(2) flags (`FILE_OPEN`) or 0.
    pub flags: u32,
    /// `file->f_mode`; FMODE_CREATED is set when the open created the file.
    pub fmode: u32,
    pub size: i64,
    pub path_len: u16,
    pub path_flags: u16,
    pub _pad: u32,
}

/// `FILE_CLOSE`: the final counters of the process's write episode on this file, if any.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct CloseRecord {
    pub header: Header,
    pub file: FileRef,
    pub bytes: u64,
    pub writes: u64,
    pub first_ns: u64,
    pub last_ns: u64,
    /// `i_size` at close.
    pub size: i64,
    /// The `op::*` that closed it (close, or dup2/dup3 over the fd).
    pub op: u32,
    /// `CLOSE_*` bits.
    pub flags: u32,
}

/// Other references to the open file remain (another fd, a fork, a mapping): the episode
/// goes on and the counters in this record are not final.
pub const CLOSE_NOT_LAST: u32 = 1 << 0;

/// Longest path argument (as passed by the process) carried in a `FILE_OP` record.
pub const NAME_MAX_ARG: usize = 2048;

/// `FILE_OP`: one successful namespace or metadata change. Followed by `base_a`, `name_a`,
/// `base_b`, `name_b`: each path argument as the directory it is relative to (leaf-first, as
/// walked; empty when the name is absolute) and the name the process passed. For fd-based ops
/// (fchmod, ftruncate, mmap) `base_a` is the file's own path and `name_a` is empty.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct FileOpRecord {
    pub header: Header,
    pub file: FileRef,
    /// `op::*`.
    pub op: u16,
    pub base_a_flags: u16,
    pub base_b_flags: u16,
    /// `OP_NAME_TRUNCATED` bits.
    pub name_flags: u16,
    pub base_a_len: u16,
    pub name_a_len: u16,
    pub base_b_len: u16,
    pub name_b_len: u16,
    /// The flags argument (e.g. AT_REMOVEDIR, RENAME_EXCHANGE) or 0.
    pub flags: u64,
    /// Mode, length or size argument, or 0.
    pub value: u64,
    /// When the syscall was entered, if known; else 0.
    pub start_ns: u64,
}

pub const OP_NAME_A_TRUNCATED: u16 = 1 << 0;
pub const OP_NAME_B_TRUNCATED: u16 = 1 << 1;

/// `SOCK_OPEN`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SockRecord {
    pub header: Header,
    /// `struct sock *`: the connection's identity while it lives.
    pub sk: u64,
    pub fd: i32,
    /// AF_INET or AF_INET6.
    pub family: u16,
    /// `SOCK_*` bits.
    pub flags: u16,
    pub sport: u16,
    pub dport: u16,
    pub _pad: u32,
    /// IPv4 addresses in the first 4 bytes, network order.
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
}

/// Found via connect(2); without it the socket was first seen carrying data.
pub const SOCK_CONNECTED: u16 = 1 << 0;

/// `SOCK_CLOSE`: totals over the connection's life.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SockCloseRecord {
    pub header: Header,
    pub sk: u64,
    pub stats: SockStats,
}

/// Value of the `SOCKS` map.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SockStats {
    pub bytes_sent: u64,
    pub bytes_recv: u64,
    pub sends: u64,
    pub recvs: u64,
    pub first_ns: u64,
    pub last_ns: u64,
    /// tgid that connected (or was first seen using it).
    pub tgid: u32,
    /// `STREAM_*` bits.
    pub flags: u32,
}

/// The first bytes sent were a TLS handshake record: later bytes are ciphertext and only counted.
pub const STREAM_TLS: u32 = 1 << 0;
/// The first bytes were seen and classified.
pub const STREAM_CLASSIFIED: u32 = 1 << 1;

/// Bytes a `DATA` record carries at most.
pub const CHUNK_MAX: usize = 8192;

/// `DATA`: one chunk of one call (one SSL_write, one send...). Followed by `len` bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct DataRecord {
    pub header: Header,
    /// `struct sock *` for sockets, the TLS object (SSL *, gnutls session...) for TLS.
    pub conn: u64,
    /// Bytes the call moved in all.
    pub call_len: u64,
    /// Where this chunk starts within the call.
    pub offset: u32,
    pub len: u16,
    /// `DATA_*` bits.
    pub flags: u16,
    /// `tls::LIB_*` for TLS data, 0 for sockets.
    pub library: u32,
    pub _pad: u32,
}

pub const DATA_TLS: u16 = 1 << 0;
pub const DATA_RECV: u16 = 1 << 1;
/// The last chunk of its call.
pub const DATA_LAST: u16 = 1 << 2;
/// Bytes of the call beyond this chunk were not captured (chunk limit, ring buffer full or
/// unreadable memory); `call_len` says how many there were.
pub const DATA_TRUNCATED: u16 = 1 << 3;

/// `TLS_ASSOC`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TlsAssocRecord {
    pub header: Header,
    pub tls: u64,
    pub sk: u64,
    /// The socket I/O happened inside a TLS call (certain), or right after one on the same
    /// thread (likely: libraries with in-memory BIOs, like Node's).
    pub inside_call: u32,
    pub _pad: u32,
}

/// What a TLS probe reports, packed into its attach cookie.
pub mod tls {
    /// Bit 0: receives (SSL_read...); clear: sends.
    pub const COOKIE_RECV: u64 = 1 << 0;
    /// Bit 1: the byte count is stored through an out-parameter (SSL_read_ex...).
    pub const COOKIE_OUT_PARAM: u64 = 1 << 1;
    /// Bits 8-15: that out-parameter's register, as its byte offset in `struct pt_regs` / 8
    /// (the verifier forbids computed context offsets, so the kernel reads it this way).
    pub const COOKIE_OUT_REG_SHIFT: u64 = 8;
    /// Bits 16-23: `LIB_*`.
    pub const COOKIE_LIB_SHIFT: u64 = 16;

    pub const LIB_OPENSSL: u32 = 1;
    pub const LIB_BORINGSSL: u32 = 2;
    pub const LIB_GNUTLS: u32 = 3;
    pub const LIB_NSS: u32 = 4;
}

/// `EXEC_MAP`: followed by `path_len` bytes of leaf-first path.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ExecMapRecord {
    pub header: Header,
    pub file: FileRef,
    pub path_len: u16,
    pub path_flags: u16,
    pub _pad: u32,
}
