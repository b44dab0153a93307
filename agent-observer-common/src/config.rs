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
    pub _pad: u32,
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
    pub const COUNT: u32 = 8;
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: plain #[repr(C)] integers without padding holes that matter to the kernel.
    unsafe impl aya::Pod for super::KernelConfig {}
    unsafe impl aya::Pod for super::Tracked {}
}
