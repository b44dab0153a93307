//! Values the daemon hands to the kernel programs: struct offsets, flags and map values.

/// Byte offsets of the kernel struct fields the programs read.
///
/// aya's Rust eBPF has no CO-RE, so the daemon resolves these from `/sys/kernel/btf/vmlinux`
/// at start-up and passes them in as a read-only global. The verifier then sees them as
/// constants.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Offsets {
    pub task_pid: u32,
    pub task_tgid: u32,
    pub task_exit_code: u32,
    pub task_mm: u32,
    pub task_fs: u32,
    pub task_files: u32,
    pub mm_arg_start: u32,
    pub mm_arg_end: u32,
    pub fs_pwd: u32,
    pub path_mnt: u32,
    pub path_dentry: u32,
    pub dentry_parent: u32,
    pub dentry_name: u32,
    pub qstr_name: u32,
    pub mount_mnt: u32,
    pub mount_parent: u32,
    pub mount_mountpoint: u32,
    pub vfsmount_root: u32,
    pub files_fdt: u32,
    pub fdtable_max_fds: u32,
    pub fdtable_fd: u32,
    pub file_path: u32,
    pub file_inode: u32,
    pub file_mode: u32,
    pub file_flags: u32,
    pub file_private_data: u32,
    pub inode_mode: u32,
    pub inode_ino: u32,
    pub inode_sb: u32,
    pub inode_size: u32,
    pub sb_dev: u32,
    pub socket_sk: u32,
    pub sock_family: u32,
    pub sock_type: u32,
    pub sock_protocol: u32,
    pub sock_dport: u32,
    pub sock_num: u32,
    pub sock_daddr: u32,
    pub sock_rcv_saddr: u32,
    pub sock_v6_daddr: u32,
    pub sock_v6_rcv_saddr: u32,
    /// `struct pt_regs` offset of the syscall number (orig_ax on x86_64).
    pub regs_nr: u32,
    /// `struct file` reference count: `f_ref` (6.13+, holds refs - 1) or `f_count` (refs).
    pub file_refs: u32,
    /// Added to the raw count to get the number of references: 1 for `f_ref`, 0 for `f_count`.
    pub file_refs_bias: u32,
}

/// Read-only configuration of the kernel programs, set once at load time.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelConfig {
    pub offsets: Offsets,
    /// `CFG_*` bits.
    pub flags: u32,
    /// The daemon's own tgid: never tracked, so its own I/O never feeds back into the trace.
    pub self_tgid: u32,
    /// `file->f_mode` bit the kernel sets when an open created the file (FMODE_CREATED).
    pub fmode_created: u32,
    pub _pad: u32,
}

/// Send exec records for every untracked exec, not only for candidate comms. Needed when a
/// user rule matches on a pattern that cannot be reduced to an exact comm.
pub const CFG_ALL_EXECS: u32 = 1 << 0;
/// Capture file changes (opens for write, writes, renames, deletes, chmods).
pub const CFG_FILES: u32 = 1 << 1;
/// Capture socket facts and plaintext of tracked processes.
pub const CFG_NET: u32 = 1 << 2;

/// Value of the `TRACKED` map, keyed by tgid.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tracked {
    /// tgid of the session's root process.
    pub root_tgid: u32,
    /// `TRACK_*` bits.
    pub flags: u32,
}

/// Tracked because its comm is a candidate; the daemon has not yet decided whether it is an
/// agent. Children forked meanwhile are tracked too, so nothing is lost while it decides.
pub const TRACK_PROVISIONAL: u32 = 1 << 0;

/// Key of the `WRITES` map: one write episode of one process on one open file.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct WriteKey {
    pub tgid: u32,
    pub _pad: u32,
    /// `struct file *`: shared by dup'd and inherited fds of the same open.
    pub file: u64,
}

/// Key of the `KNOWN_MAPS` set: a file (inode, kernel dev_t) the daemon has analysed, so
/// mapping it executable again needs no report.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct InodeKey {
    pub ino: u64,
    pub dev: u32,
    pub _pad: u32,
}

/// Value of the `WRITES` map, updated in the kernel on every write.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteStats {
    pub bytes: u64,
    pub writes: u64,
    pub first_ns: u64,
    pub last_ns: u64,
}

/// Key of the `CANDIDATES` map: a comm, NUL-padded to 16 bytes.
pub type CommKey = [u8; 16];

/// Indices of the per-CPU `STATS` counters.
pub mod stat {
    /// A record could not be reserved in the ring buffer: an event was lost.
    pub const RINGBUF_FULL: u32 = 0;
    /// A per-thread map was full, so a syscall could not be followed to its exit.
    pub const PENDING_FULL: u32 = 1;
    /// The `TRACKED` map was full: a tracked process's child could not be tracked.
    pub const TRACKED_FULL: u32 = 2;
    /// A kernel read failed where it should not have (bad offset or unmapped memory).
    pub const READ_FAILED: u32 = 3;
    /// Write aggregation map was full: a write episode was reported unaggregated.
    pub const WRITES_FULL: u32 = 4;
    /// Payload bytes that could not be captured (chunk limit or ring buffer full).
    pub const DATA_LOST_BYTES: u32 = 5;
    /// A file record was built but a path or name had to be cut.
    pub const PATH_TRUNCATED: u32 = 6;
    /// The socket map was full: a connection's counters were not kept.
    pub const SOCKS_FULL: u32 = 7;
    pub const COUNT: u32 = 16;
}

/// How the kernel reads one syscall's arguments: where in the saved registers each one is.
/// Set per syscall number by the daemon from its per-architecture table and the BTF layout of
/// `struct pt_regs`, so the kernel side needs neither.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyscallSpec {
    /// `OP_*`: what the syscall does.
    pub op: u16,
    /// Byte offsets in `struct pt_regs` (`REG_NONE` when absent).
    pub fd: u16,
    pub dirfd_a: u16,
    pub name_a: u16,
    pub dirfd_b: u16,
    pub name_b: u16,
    pub flags: u16,
    /// Mode, length or size argument.
    pub value: u16,
    /// One more argument some ops need (mmap: prot).
    pub extra: u16,
    /// Socket data: where the user buffer is (`buf`), or the iovec array (`iov`, with `value`
    /// its count), or the msghdr (`msg`).
    pub buf: u16,
    pub iov: u16,
    pub msg: u16,
}

/// No such argument.
pub const REG_NONE: u16 = 0xffff;


/// Syscall operations (`SyscallSpec::op`, `FileOpRecord::op`).
pub mod op {
    pub const OPEN: u8 = 1;
    /// openat2: flags are in the `struct open_how` the flags argument points to.
    pub const OPEN_HOW: u8 = 2;
    /// creat: flags are O_CREAT|O_WRONLY|O_TRUNC.
    pub const CREAT: u8 = 3;
    pub const WRITE: u8 = 4;
    pub const CLOSE: u8 = 5;
    /// dup2/dup3: closes the target fd if it was open.
    pub const DUP_OVER: u8 = 6;
    pub const RENAME: u8 = 10;
    pub const UNLINK: u8 = 11;
    pub const MKDIR: u8 = 12;
    pub const RMDIR: u8 = 13;
    pub const CHMOD: u8 = 14;
    pub const SYMLINK: u8 = 15;
    pub const LINK: u8 = 16;
    pub const TRUNCATE: u8 = 17;
    pub const MMAP: u8 = 18;
    pub const CONNECT: u8 = 19;
    /// Socket data through a plain buffer, an iovec array or a msghdr (see `SyscallSpec`).
    pub const SOCK_DATA: u8 = 20;
}

#[cfg(feature = "user")]
mod pod {
    unsafe impl aya::Pod for super::SyscallSpec {}
    unsafe impl aya::Pod for super::WriteKey {}
    unsafe impl aya::Pod for super::InodeKey {}
    unsafe impl aya::Pod for super::WriteStats {}
    unsafe impl aya::Pod for crate::record::SockStats {}
    // SAFETY: plain #[repr(C)] integers without padding holes that matter to the kernel.
    unsafe impl aya::Pod for super::KernelConfig {}
    unsafe impl aya::Pod for super::Tracked {}
}
