//! Reading kernel structs through offsets resolved from BTF by the daemon, and walking paths.

use agent_observer_common::{Header, PATH_DEPTH, PATH_FAULT, PATH_MAX, PATH_TRUNCATED};
use aya_ebpf::helpers::{
    bpf_get_current_pid_tgid, bpf_get_current_task, bpf_ktime_get_boot_ns, bpf_probe_read_kernel,
    generated::bpf_probe_read_kernel_str,
};

use crate::maps::config;

/// Offset of a field, from the daemon-provided table.
macro_rules! off {
    ($field:ident) => {
        // SAFETY: CONFIG is always initialised; volatile so the value set at load time is used.
        unsafe {
            core::ptr::read_volatile(core::ptr::addr_of!(crate::maps::config().offsets.$field))
                as usize
        }
    };
}
pub(crate) use off;

/// Reads a `T` at `base + offset` in kernel memory.
#[inline(always)]
pub fn read<T>(base: *const u8, offset: usize) -> Option<T> {
    // SAFETY: bpf_probe_read_kernel tolerates any address.
    unsafe { bpf_probe_read_kernel(base.wrapping_add(offset).cast::<T>()).ok() }
}

#[inline(always)]
pub fn read_ptr(base: *const u8, offset: usize) -> *const u8 {
    read::<*const u8>(base, offset).unwrap_or(core::ptr::null())
}

#[inline(always)]
pub fn current_task() -> *const u8 {
    // SAFETY: always valid in tracing programs.
    unsafe { bpf_get_current_task() as *const u8 }
}

/// (tgid, tid) of the current task.
#[inline(always)]
pub fn current_ids() -> (u32, u32) {
    let id = bpf_get_current_pid_tgid();
    ((id >> 32) as u32, id as u32)
}

#[inline(always)]
pub fn header(kind: u16, len: usize) -> Header {
    let (tgid, tid) = current_ids();
    Header {
        kind,
        flags: 0,
        len: len as u32,
        tgid,
        tid,
        // SAFETY: plain helper.
        ts_ns: unsafe { bpf_ktime_get_boot_ns() },
    }
}

/// The `struct file *` behind `fd` in the current task, or null.
#[inline(always)]
pub fn fd_file(fd: i64) -> *const u8 {
    if fd < 0 {
        return core::ptr::null();
    }
    let files = read_ptr(current_task(), off!(task_files));
    let fdt = read_ptr(files, off!(files_fdt));
    let max_fds: u32 = read(fdt, off!(fdtable_max_fds)).unwrap_or(0);
    if fd as u64 >= max_fds as u64 {
        return core::ptr::null();
    }
    let array = read_ptr(fdt, off!(fdtable_fd));
    read_ptr(array, (fd as usize) * 8)
}

pub const S_IFMT: u16 = 0o170000;
pub const S_IFREG: u16 = 0o100000;

/// An open file's inode and type; enough for the hot path (every write).
#[derive(Clone, Copy)]
pub struct FileInfo {
    pub inode: *const u8,
    pub mode: u16,
}

impl FileInfo {
    /// (inode number, device): only read when a record is sent.
    #[inline(always)]
    pub fn identity(&self) -> (u64, u32) {
        let ino: u64 = read(self.inode, off!(inode_ino)).unwrap_or(0);
        let sb = read_ptr(self.inode, off!(inode_sb));
        (ino, read(sb, off!(sb_dev)).unwrap_or(0))
    }
}

#[inline(always)]
pub fn file_info(file: *const u8) -> Option<FileInfo> {
    if file.is_null() {
        return None;
    }
    let inode = read_ptr(file, off!(file_inode));
    let mode: u16 = read(inode, off!(inode_mode))?;
    Some(FileInfo { inode, mode })
}

/// The syscall argument saved at byte offset `reg` of `struct pt_regs`, or 0 for `REG_NONE`.
#[inline(always)]
pub fn syscall_arg(regs: *const u8, reg: u16) -> u64 {
    if reg == agent_observer_common::REG_NONE {
        return 0;
    }
    read::<u64>(regs, reg as usize).unwrap_or(0)
}

/// The current task's saved user registers: the syscall's arguments, at entry and at exit.
#[inline(always)]
pub fn current_regs() -> *const u8 {
    // SAFETY: both helpers are valid in tracing programs and never fail for current.
    unsafe {
        aya_ebpf::helpers::generated::bpf_task_pt_regs(aya_ebpf::helpers::generated::bpf_get_current_task_btf())
            as *const u8
    }
}

/// Fields every `syscalls:sys_{enter,exit}_*` tracepoint record starts with.
pub struct SyscallTp {
    pub nr: u32,
    pub regs: *const u8,
}

impl SyscallTp {
    /// `int __syscall_nr` is at offset 8 of every syscall tracepoint record.
    #[inline(always)]
    pub fn new(ctx: &aya_ebpf::programs::TracePointContext) -> SyscallTp {
        // SAFETY: offset 8 is inside every syscall tracepoint record.
        let nr: i32 = unsafe { ctx.read_at(8) }.unwrap_or(-1);
        SyscallTp { nr: nr as u32, regs: current_regs() }
    }

    /// `long ret` of a `sys_exit_*` record.
    #[inline(always)]
    pub fn ret(ctx: &aya_ebpf::programs::TracePointContext) -> i64 {
        // SAFETY: offset 16 is `ret` in every sys_exit record.
        unsafe { ctx.read_at(16) }.unwrap_or(-1)
    }
}

#[inline(always)]
pub fn self_tgid() -> u32 {
    // SAFETY: see `off!`.
    unsafe { core::ptr::read_volatile(core::ptr::addr_of!(config().self_tgid)) }
}

/// A `struct path`: where a file or directory sits in the mount tree.
#[derive(Clone, Copy)]
pub struct KPath {
    pub vfsmount: *const u8,
    pub dentry: *const u8,
}

impl KPath {
    /// Reads the `struct path` embedded at `base + offset`.
    #[inline(always)]
    pub fn at(base: *const u8, offset: usize) -> KPath {
        let path = base.wrapping_add(offset);
        KPath {
            vfsmount: read_ptr(path, off!(path_mnt)),
            dentry: read_ptr(path, off!(path_dentry)),
        }
    }

    /// The current task's working directory.
    #[inline(always)]
    pub fn cwd() -> KPath {
        let fs = read_ptr(current_task(), off!(task_fs));
        KPath::at(fs, off!(fs_pwd))
    }
}

/// Longest name a dentry can have, plus its NUL.
const NAME_SIZE: usize = 256;
/// Masks scratch offsets so the verifier can bound them; the scratch buffer is twice this size.
pub const SCRATCH_MASK: usize = agent_observer_common::SCRATCH_SIZE - 1;

/// Writes `path` into `buf[start..]` as leaf-first NUL-terminated components, the way d_path
/// walks it: up the dentries, crossing mount points into the parent mount, until the root.
/// Returns the byte length and `PATH_*` flags.
#[inline(always)]
pub fn write_path(buf: *mut u8, start: usize, path: KPath) -> (usize, u16) {
    let mut vfsmount = path.vfsmount;
    let mut dentry = path.dentry;
    let mut mount = vfsmount.wrapping_sub(off!(mount_mnt));
    let mut len = 0usize;
    if vfsmount.is_null() || dentry.is_null() {
        return (0, PATH_FAULT);
    }
    for _ in 0..PATH_DEPTH {
        let mnt_root = read_ptr(vfsmount, off!(vfsmount_root));
        if dentry == mnt_root {
            let parent = read_ptr(mount, off!(mount_parent));
            if parent.is_null() || parent == mount {
                return (len, 0);
            }
            dentry = read_ptr(mount, off!(mount_mountpoint));
            mount = parent;
            vfsmount = mount.wrapping_add(off!(mount_mnt));
            continue;
        }
        let parent = read_ptr(dentry, off!(dentry_parent));
        if parent.is_null() {
            return (len, PATH_FAULT);
        }
        if parent == dentry {
            // The root of a filesystem that is not mounted here (e.g. a detached mount).
            return (len, 0);
        }
        if len >= PATH_MAX {
            return (len, PATH_TRUNCATED);
        }
        let name = read_ptr(dentry, off!(dentry_name) + off!(qstr_name));
        let dst = buf.wrapping_add((start + len) & SCRATCH_MASK);
        // SAFETY: dst + NAME_SIZE stays inside the 2 * SCRATCH_SIZE buffer.
        let n = unsafe { bpf_probe_read_kernel_str(dst.cast(), NAME_SIZE as u32, name.cast()) };
        if n <= 0 {
            return (len, PATH_FAULT);
        }
        // A no-op on the value (len < PATH_MAX + NAME_SIZE), but it gives every iteration the
        // same range for len, so the verifier can prune instead of exploring 2^depth paths.
        len = (len + n as usize) & (2 * PATH_MAX - 1);
        dentry = parent;
    }
    (len, PATH_TRUNCATED)
}
