//! File changes by tracked processes: opens for writing, writes, closes, and namespace and
//! metadata changes.
//!
//! Each program handles one family of syscalls and is attached to each family member's
//! `syscalls:sys_{enter,exit}_*` tracepoint, so other syscalls run no BPF at all. Arguments are
//! read from the saved user registers (still intact at exit), at offsets the daemon puts in
//! `SPECS` for each syscall number.
//!
//! Writes are aggregated here, per (process, open file), in `WRITES`: a million small writes
//! are one record when the episode starts and one when the file is closed. Only regular files
//! count; pipes, sockets, ttys and devices are skipped by inode type.

use agent_observer_common::{
    CLOSE_NOT_LAST, CloseRecord, ExecMapRecord, FileOpRecord, InodeKey, FileRecord, FileRef, NAME_MAX_ARG, OP_NAME_A_TRUNCATED,
    OP_NAME_B_TRUNCATED, REG_NONE, SyscallSpec, WriteKey, WriteStats, kind, op, stat,
};
use aya_ebpf::{
    helpers::{bpf_ktime_get_boot_ns, bpf_probe_read_user, generated::bpf_probe_read_user_str},
    macros::tracepoint,
    programs::TracePointContext,
};

use crate::{
    kernel::{
        FileInfo, KPath, S_IFMT, S_IFREG, SCRATCH_MASK, SyscallTp, current_ids, fd_file, file_info,
        header, off, read, syscall_arg, write_path,
    },
    maps::{KNOWN_MAPS, SPECS, WRITES, count, is_tracked, scratch, submit, submit_fixed, submit_urgent},
};

const O_WRONLY: u64 = 0o1;
const O_RDWR: u64 = 0o2;
const O_CREAT: u64 = 0o100;
const O_TRUNC: u64 = 0o1000;
const FMODE_WRITE: u32 = 0x2;
const AT_FDCWD: i32 = -100;
const PROT_WRITE: u64 = 0x2;
const PROT_EXEC: u64 = 0x4;
const S_IFSOCK: u16 = 0o140000;
const MAP_TYPE: u64 = 0xf;
const MAP_SHARED: u64 = 0x1;
const MAP_SHARED_VALIDATE: u64 = 0x3;
const BPF_NOEXIST: u64 = 1;
/// Largest errno a syscall returns as -errno.
const MAX_ERRNO: u64 = 4095;

/// This syscall's argument layout, for tracked processes only.
#[inline(always)]
fn tracked_call(ctx: &TracePointContext) -> Option<(SyscallSpec, *const u8)> {
    if !is_tracked() {
        return None;
    }
    let call = SyscallTp::new(ctx);
    SPECS.get(call.nr).copied().map(|spec| (spec, call.regs))
}

#[inline(always)]
fn is_regular(info: &FileInfo) -> bool {
    info.mode & S_IFMT == S_IFREG
}

#[inline(always)]
fn file_ref(file: *const u8, info: &FileInfo, fd: i64) -> FileRef {
    let (ino, dev) = info.identity();
    FileRef { file: file as u64, ino, dev, fd: fd as i32 }
}

/// Sends a `FileRecord` (open or write start) with the file's path.
#[inline(always)]
fn send_file_record(kind: u16, file: *const u8, info: &FileInfo, fd: i64, flags: u64) {
    let Some(buf) = scratch() else { return };
    let fixed = size_of::<FileRecord>();
    let (path_len, path_flags) = write_path(buf, fixed, KPath::at(file, off!(file_path)));
    let record = FileRecord {
        header: header(kind, fixed + path_len),
        file: file_ref(file, info, fd),
        flags: flags as u32,
        fmode: read(file, off!(file_mode)).unwrap_or(0),
        size: read(info.inode, off!(inode_size)).unwrap_or(-1),
        path_len: path_len as u16,
        path_flags,
        _pad: 0,
    };
    // SAFETY: the scratch buffer (8-byte aligned) starts with room for the fixed part.
    unsafe { buf.cast::<FileRecord>().write(record) };
    submit(buf, fixed + path_len);
}

/// Exit of open, openat, openat2 and creat.
#[tracepoint]
pub fn file_open(ctx: TracePointContext) -> u32 {
    let Some((spec, regs)) = tracked_call(&ctx) else { return 0 };
    let fd = SyscallTp::ret(&ctx);
    if fd < 0 {
        return 0;
    }
    let flags = match spec.op as u8 {
        op::OPEN => syscall_arg(regs, spec.flags),
        // SAFETY: reads the first field (flags) of the caller's struct open_how.
        op::OPEN_HOW => unsafe { bpf_probe_read_user(syscall_arg(regs, spec.flags) as *const u64) }.unwrap_or(0),
        op::CREAT => O_CREAT | O_WRONLY | O_TRUNC,
        _ => return 0,
    };
    if flags & (O_WRONLY | O_RDWR | O_CREAT | O_TRUNC) == 0 {
        return 0;
    }
    let file = fd_file(fd);
    let Some(info) = file_info(file) else { return 0 };
    if is_regular(&info) {
        send_file_record(kind::FILE_OPEN, file, &info, fd, flags);
    }
    0
}

/// Adds one successful write to the episode of (this process, this open file).
#[inline(always)]
pub fn account_write(file: *const u8, info: &FileInfo, fd: i64, bytes: u64) {
    let (tgid, _) = current_ids();
    let key = WriteKey { tgid, _pad: 0, file: file as u64 };
    // SAFETY: plain helper.
    let now = unsafe { bpf_ktime_get_boot_ns() };
    if let Some(stats) = WRITES.get_ptr_mut(&key) {
        add(stats, bytes, now);
        return;
    }
    let fresh = WriteStats { bytes, writes: 1, first_ns: now, last_ns: now };
    match WRITES.insert(&key, &fresh, BPF_NOEXIST) {
        Ok(()) => send_file_record(kind::FILE_WRITE_START, file, info, fd, 0),
        Err(_) => match WRITES.get_ptr_mut(&key) {
            // Another thread started the episode first.
            Some(stats) => add(stats, bytes, now),
            None => {
                // The map is full: report this write on its own, so nothing is lost.
                count(stat::WRITES_FULL, 1);
                send_file_record(kind::FILE_WRITE_START, file, info, fd, 0);
                send_close(file, info, fd, &fresh, op::WRITE, 0);
            }
        },
    }
}

#[inline(always)]
fn add(stats: *mut WriteStats, bytes: u64, now: u64) {
    use core::intrinsics::{AtomicOrdering::Relaxed, atomic_xadd};
    // SAFETY: map value pointer; atomic adds because threads share the episode. core's
    // AtomicU64 has no fetch_add on the bpf target, the intrinsic lowers to BPF_ATOMIC_ADD.
    unsafe {
        atomic_xadd::<u64, u64, { Relaxed }>(&raw mut (*stats).bytes, bytes);
        atomic_xadd::<u64, u64, { Relaxed }>(&raw mut (*stats).writes, 1);
        (*stats).last_ns = now;
    }
}

#[inline(always)]
fn send_close(file: *const u8, info: &FileInfo, fd: i64, stats: &WriteStats, how: u8, flags: u32) {
    let record = CloseRecord {
        header: header(kind::FILE_CLOSE, size_of::<CloseRecord>()),
        file: file_ref(file, info, fd),
        bytes: stats.bytes,
        writes: stats.writes,
        first_ns: stats.first_ns,
        last_ns: stats.last_ns,
        size: read(info.inode, off!(inode_size)).unwrap_or(-1),
        op: how as u32,
        flags,
    };
    submit_fixed(&record);
}

/// Exit of write, pwrite64, writev, pwritev(2), sendfile, copy_file_range and splice.
#[tracepoint]
pub fn file_write(ctx: TracePointContext) -> u32 {
    let Some((spec, regs)) = tracked_call(&ctx) else { return 0 };
    let ret = SyscallTp::ret(&ctx);
    if ret <= 0 {
        return 0;
    }
    let fd = syscall_arg(regs, spec.fd) as i32 as i64;
    let file = fd_file(fd);
    let Some(info) = file_info(file) else { return 0 };
    if is_regular(&info) {
        account_write(file, &info, fd, ret as u64);
    }
    0
}

/// Entry of close, dup2 and dup3 (which closes its target): ends the episode on that file.
#[tracepoint]
pub fn file_close(ctx: TracePointContext) -> u32 {
    let Some((spec, regs)) = tracked_call(&ctx) else { return 0 };
    let fd = syscall_arg(regs, spec.fd) as i32 as i64;
    if spec.op == op::DUP_OVER as u16 && syscall_arg(regs, spec.value) as i32 as i64 == fd {
        return 0;
    }
    let file = fd_file(fd);
    let Some(info) = file_info(file) else { return 0 };
    if info.mode & S_IFMT == S_IFSOCK {
        crate::net::close_sock(file);
        return 0;
    }
    if !is_regular(&info) {
        return 0;
    }
    let fmode: u32 = read(file, off!(file_mode)).unwrap_or(0);
    if fmode & FMODE_WRITE == 0 {
        return 0;
    }
    let (tgid, _) = current_ids();
    let key = WriteKey { tgid, _pad: 0, file: file as u64 };
    // This fd holds one reference; any other (a dup'd fd, an inherited one, a mapping) means
    // the file stays open and the episode goes on.
    let refs: i64 = read(file, off!(file_refs)).unwrap_or(0);
    let refs = refs + off!(file_refs_bias) as i64;
    if refs > 1 {
        // SAFETY: read-only lookup.
        let stats = unsafe { WRITES.get(&key) }.copied().unwrap_or_default();
        send_close(file, &info, fd, &stats, spec.op as u8, CLOSE_NOT_LAST);
        return 0;
    }
    // SAFETY: read-only lookup, copied out before the delete.
    let stats = unsafe { WRITES.get(&key) }.copied().unwrap_or_default();
    let _ = WRITES.remove(&key);
    send_close(file, &info, fd, &stats, spec.op as u8, 0);
    0
}

/// Writes one path argument: the directory it is relative to (unless absolute), then the name.
/// Returns (base_len, base_flags, name_len, name_truncated).
#[inline(always)]
fn write_path_arg(buf: *mut u8, at: usize, regs: *const u8, dirfd_arg: u16, name_arg: u16) -> (usize, u16, usize, bool) {
    let name = syscall_arg(regs, name_arg) as *const u8;
    // SAFETY: bpf_probe_read_user tolerates any address.
    let first: u8 = unsafe { bpf_probe_read_user(name) }.unwrap_or(0);
    let (base_len, base_flags) = if first == b'/' {
        (0, 0)
    } else {
        let dirfd = if dirfd_arg == REG_NONE { AT_FDCWD } else { syscall_arg(regs, dirfd_arg) as i32 };
        let base = if dirfd == AT_FDCWD {
            KPath::cwd()
        } else {
            KPath::at(fd_file(dirfd as i64), off!(file_path))
        };
        write_path(buf, at, base)
    };
    let dst = buf.wrapping_add((at + base_len) & SCRATCH_MASK);
    // SAFETY: dst + NAME_MAX_ARG stays inside the 2 * SCRATCH_SIZE buffer.
    let n = unsafe { bpf_probe_read_user_str(dst.cast(), NAME_MAX_ARG as u32, name.cast()) };
    let name_len = if n > 0 { n as usize } else { 0 };
    (base_len, base_flags, name_len, name_len >= NAME_MAX_ARG)
}

/// A file mapped executable: a library (or plugin) whose TLS functions may need probes.
#[inline(always)]
fn exec_map(fd: i64) {
    let file = fd_file(fd);
    let Some(info) = file_info(file) else { return };
    if !is_regular(&info) {
        return;
    }
    // Every exec maps libc and friends: only files the daemon has not analysed are news.
    let (ino, dev) = info.identity();
    // SAFETY: read-only lookup.
    if unsafe { KNOWN_MAPS.get(&InodeKey { ino, dev, _pad: 0 }) }.is_some() {
        return;
    }
    let Some(buf) = scratch() else { return };
    let fixed = size_of::<ExecMapRecord>();
    let (path_len, path_flags) = write_path(buf, fixed, KPath::at(file, off!(file_path)));
    let record = ExecMapRecord {
        header: header(kind::EXEC_MAP, fixed + path_len),
        file: file_ref(file, &info, fd),
        path_len: path_len as u16,
        path_flags,
        _pad: 0,
    };
    // SAFETY: the scratch buffer (8-byte aligned) starts with room for the fixed part.
    unsafe { buf.cast::<ExecMapRecord>().write(record) };
    // Urgent: the process may use a TLS library it just mapped within milliseconds.
    submit_urgent(buf, fixed + path_len);
}

/// Exit of rename*, unlink*, mkdir*, rmdir, chmod family, symlink*, link*, truncate,
/// ftruncate and mmap.
#[tracepoint]
pub fn file_op(ctx: TracePointContext) -> u32 {
    let Some((spec, regs)) = tracked_call(&ctx) else { return 0 };
    let ret = SyscallTp::ret(&ctx);
    if spec.op == op::MMAP as u16 {
        if ret as u64 > u64::MAX - MAX_ERRNO {
            return 0;
        }
        let (prot, flags) = (syscall_arg(regs, spec.extra), syscall_arg(regs, spec.flags));
        if prot & PROT_EXEC != 0 {
            exec_map(syscall_arg(regs, spec.fd) as i32 as i64);
            return 0;
        }
        let shared = matches!(flags & MAP_TYPE, MAP_SHARED | MAP_SHARED_VALIDATE);
        if prot & PROT_WRITE == 0 || !shared {
            return 0;
        }
    } else if ret != 0 {
        return 0;
    }
    let Some(buf) = scratch() else { return 0 };
    let fixed = size_of::<FileOpRecord>();
    let mut record = FileOpRecord {
        op: spec.op,
        flags: if spec.flags == REG_NONE { 0 } else { syscall_arg(regs, spec.flags) },
        value: if spec.value == REG_NONE { 0 } else { syscall_arg(regs, spec.value) },
        ..Default::default()
    };
    let mut len = fixed;
    if spec.name_a == REG_NONE {
        // fd-based: the file's own path.
        let fd = syscall_arg(regs, spec.fd) as i32 as i64;
        let file = fd_file(fd);
        let Some(info) = file_info(file) else { return 0 };
        if spec.op == op::MMAP as u16 && !is_regular(&info) {
            return 0;
        }
        record.file = file_ref(file, &info, fd);
        let (n, flags) = write_path(buf, len, KPath::at(file, off!(file_path)));
        record.base_a_len = n as u16;
        record.base_a_flags = flags;
        len += n;
    } else {
        let (b, bf, n, cut) = write_path_arg(buf, len, regs, spec.dirfd_a, spec.name_a);
        record.base_a_len = b as u16;
        record.base_a_flags = bf;
        record.name_a_len = n as u16;
        if cut {
            record.name_flags |= OP_NAME_A_TRUNCATED;
        }
        len = (len + b + n) & SCRATCH_MASK;
        if spec.name_b != REG_NONE {
            let (b, bf, n, cut) = write_path_arg(buf, len, regs, spec.dirfd_b, spec.name_b);
            record.base_b_len = b as u16;
            record.base_b_flags = bf;
            record.name_b_len = n as u16;
            if cut {
                record.name_flags |= OP_NAME_B_TRUNCATED;
            }
            len = (len + b + n) & SCRATCH_MASK;
        }
    }
    if record.name_flags != 0 {
        count(stat::PATH_TRUNCATED, 1);
    }
    record.header = header(kind::FILE_OP, len);
    // SAFETY: the scratch buffer (8-byte aligned) starts with room for the fixed part.
    unsafe { buf.cast::<FileOpRecord>().write(record) };
    submit(buf, len);
    0
}
