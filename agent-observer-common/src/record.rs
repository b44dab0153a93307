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
    pub const CHDIR: u16 = 4;
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

/// A successful chdir/fchdir. Followed by `cwd_len` bytes of leaf-first cwd components.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ChdirRecord {
    pub header: Header,
    pub cwd_len: u16,
    pub cwd_flags: u16,
    pub _pad: u32,
}
