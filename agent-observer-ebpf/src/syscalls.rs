//! Syscall dispatch: one raw tracepoint on `sys_enter` and one on `sys_exit`.
//!
//! Any syscall tracepoint sends every syscall of every task through the kernel's slow path,
//! whether one hook or forty are attached, so two raw hooks cost the same as forty typed ones
//! and arm in two attaches. Untracked tasks stop after one map lookup; tracked ones tail-call the
//! handler registered for the syscall number (see `files`, `net`). `pt_regs` still holds the
//! arguments at exit, so handlers read them there.

use aya_ebpf::{macros::raw_tracepoint, programs::RawTracePointContext};

use crate::{
    kernel::{current_ids, syscall_nr},
    maps::{ENTER_PROGS, EXIT_PROGS, SYSCALL_SLOTS, TRACKED},
};

#[inline(always)]
fn tracked() -> bool {
    let (tgid, _) = current_ids();
    // SAFETY: read-only lookup.
    unsafe { TRACKED.get(&tgid) }.is_some()
}

/// `sys_enter(struct pt_regs *regs, long id)`.
#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn sys_enter(ctx: RawTracePointContext) -> i32 {
    if !tracked() {
        return 0;
    }
    let nr: i64 = ctx.arg(1);
    if (0..SYSCALL_SLOTS as i64).contains(&nr) {
        // SAFETY: a failed tail call (empty slot) just returns here.
        unsafe { ENTER_PROGS.tail_call(&ctx, nr as u32) };
    }
    0
}

/// `sys_exit(struct pt_regs *regs, long ret)`.
#[raw_tracepoint(tracepoint = "sys_exit")]
pub fn sys_exit(ctx: RawTracePointContext) -> i32 {
    if !tracked() {
        return 0;
    }
    let regs: *const u8 = ctx.arg(0);
    let nr = syscall_nr(regs);
    if nr < SYSCALL_SLOTS {
        // SAFETY: a failed tail call (empty slot) just returns here.
        unsafe { EXIT_PROGS.tail_call(&ctx, nr) };
    }
    0
}
