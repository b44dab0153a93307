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
