//! Process lifecycle: fork, exec and exit of tracked processes.
//!
//! Needs only the `sched` tracepoints (raw for fork, to see the child's tgid and ignore threads).

use agent_observer_common::{
    ARGV_MAX, CommKey, EXEC_ARGV_TRUNCATED, EXEC_CANDIDATE, ExecRecord, ExitRecord, FILENAME_MAX,
    ForkRecord, TRACK_PROVISIONAL, Tracked, kind, stat, CFG_ALL_EXECS,
};
use aya_ebpf::{
    helpers::{
        bpf_get_current_comm, bpf_get_current_uid_gid, bpf_probe_read_user_buf,
        generated::bpf_probe_read_kernel_str,
    },
    macros::{raw_tracepoint, tracepoint},
    programs::{RawTracePointContext, TracePointContext},
};

use crate::{
    kernel::{KPath, SCRATCH_MASK, current_ids, current_task, header, off, read, read_ptr, self_tgid, write_path},
    maps::{CANDIDATES, TRACKED, config, count, scratch, submit, submit_fixed, submit_urgent},
};

/// `sched_process_fork(struct task_struct *parent, struct task_struct *child)`.
#[raw_tracepoint(tracepoint = "sched_process_fork")]
pub fn sched_process_fork(ctx: RawTracePointContext) -> i32 {
    let (tgid, _) = current_ids();
    // SAFETY: read-only lookup.
    let Some(tracked) = (unsafe { TRACKED.get(&tgid) }).copied() else {
        return 0;
    };
    let child: *const u8 = ctx.arg(1);
    let (Some(child_pid), Some(child_tgid)) =
        (read::<i32>(child, off!(task_pid)), read::<i32>(child, off!(task_tgid)))
    else {
        count(stat::READ_FAILED, 1);
        return 0;
    };
    if child_pid != child_tgid || child_tgid as u32 == tgid {
        return 0; // a thread
    }
    let child_tgid = child_tgid as u32;
    if TRACKED.insert(&child_tgid, &tracked, 0).is_err() {
        count(stat::TRACKED_FULL, 1);
    }
    let record = ForkRecord {
        header: header(kind::FORK, size_of::<ForkRecord>()),
        parent_tgid: tgid,
        child_tgid,
    };
    submit_fixed(&record);
    0
}

const EXEC_FIXED: usize = size_of::<ExecRecord>();

#[tracepoint(category = "sched", name = "sched_process_exec")]
pub fn sched_process_exec(ctx: TracePointContext) -> u32 {
    let (tgid, _) = current_ids();
    if tgid == self_tgid() {
        return 0;
    }
    let mut flags = 0u32;
    // SAFETY: read-only lookup.
    if unsafe { TRACKED.get(&tgid) }.is_none() {
        let comm: CommKey = bpf_get_current_comm().unwrap_or([0; 16]);
        // SAFETY: read-only lookup.
        let candidate = unsafe { CANDIDATES.get(&comm) }.is_some();
        if !candidate && config().flags & CFG_ALL_EXECS == 0 {
            return 0;
        }
        let provisional = Tracked { root_tgid: tgid, flags: TRACK_PROVISIONAL };
        if TRACKED.insert(&tgid, &provisional, 0).is_err() {
            count(stat::TRACKED_FULL, 1);
        }
        flags |= EXEC_CANDIDATE;
    }
    let Some(buf) = scratch() else { return 0 };

    // Filename, from the tracepoint's __data_loc field.
    // SAFETY: offset 8 is `__data_loc char[] filename` in the sched_process_exec format.
    let loc: u32 = unsafe { ctx.read_at(8) }.unwrap_or(0);
    let src = ctx.as_ptr_u8().wrapping_add((loc & 0xffff) as usize);
    let dst = buf.wrapping_add(EXEC_FIXED);
    // SAFETY: dst has FILENAME_MAX bytes of room.
    let n = unsafe { bpf_probe_read_kernel_str(dst.cast(), FILENAME_MAX as u32, src.cast()) };
    let filename_len = if n > 0 { n as usize } else { 0 };

    // argv, from the new image's argument area: exactly what the kernel passed, in one read.
    let mm = read_ptr(current_task(), off!(task_mm));
    let arg_start: u64 = read(mm, off!(mm_arg_start)).unwrap_or(0);
    let arg_end: u64 = read(mm, off!(mm_arg_end)).unwrap_or(0);
    let mut argv_len = arg_end.saturating_sub(arg_start) as usize;
    if argv_len > ARGV_MAX {
        argv_len = ARGV_MAX;
        flags |= EXEC_ARGV_TRUNCATED;
    }
    let argv_at = (EXEC_FIXED + filename_len) & SCRATCH_MASK;
    if argv_len > 0 {
        // SAFETY: argv_at + ARGV_MAX stays inside the scratch buffer.
        let dst = unsafe { core::slice::from_raw_parts_mut(buf.wrapping_add(argv_at), argv_len & (2 * ARGV_MAX - 1)) };
        // SAFETY: bpf_probe_read_user tolerates any address.
        if unsafe { bpf_probe_read_user_buf(arg_start as *const u8, dst) }.is_err() {
            argv_len = 0;
        }
    }

    let cwd_at = argv_at + argv_len;
    let (cwd_len, cwd_flags) = write_path(buf, cwd_at, KPath::cwd());

    let total = cwd_at + cwd_len;
    let uid_gid = bpf_get_current_uid_gid();
    // SAFETY: offset 16 is `pid_t old_pid`.
    let old_tid: i32 = unsafe { ctx.read_at(16) }.unwrap_or(0);
    let record = ExecRecord {
        header: header(kind::EXEC, total),
        old_tid: old_tid as u32,
        uid: uid_gid as u32,
        gid: (uid_gid >> 32) as u32,
        flags,
        filename_len: filename_len as u16,
        argv_len: argv_len as u16,
        cwd_len: cwd_len as u16,
        cwd_flags,
        comm: bpf_get_current_comm().unwrap_or([0; 16]),
    };
    // SAFETY: the scratch buffer (8-byte aligned) starts with room for the fixed part.
    unsafe { buf.cast::<ExecRecord>().write(record) };
    if flags & EXEC_CANDIDATE != 0 {
        submit_urgent(buf, total);
    } else {
        submit(buf, total);
    }
    0
}

#[tracepoint(category = "sched", name = "sched_process_exit")]
pub fn sched_process_exit(ctx: TracePointContext) -> u32 {
    // SAFETY: offset 32 is `bool group_dead` in the sched_process_exit format.
    let group_dead: u8 = unsafe { ctx.read_at(32) }.unwrap_or(0);
    if group_dead == 0 {
        return 0;
    }
    let (tgid, _) = current_ids();
    // SAFETY: read-only lookup.
    if unsafe { TRACKED.get(&tgid) }.is_none() {
        return 0;
    }
    let _ = TRACKED.remove(&tgid);
    let exit_code: i32 = read(current_task(), off!(task_exit_code)).unwrap_or(0);
    let record = ExitRecord {
        header: header(kind::EXIT, size_of::<ExitRecord>()),
        exit_code: exit_code as u32,
        _pad: 0,
    };
    submit_fixed(&record);
    0
}

trait CtxPtr {
    fn as_ptr_u8(&self) -> *const u8;
}

impl CtxPtr for TracePointContext {
    fn as_ptr_u8(&self) -> *const u8 {
        use aya_ebpf::EbpfContext as _;
        self.as_ptr() as *const u8
    }
}
