//! Maps and globals shared by every sensor.

use agent_observer_common::{
    CommKey, KernelConfig, SCRATCH_SIZE, SyscallSpec, Tracked, WriteKey, WriteStats, stat,
};
use aya_ebpf::{
    Global,
    macros::map,
    maps::{Array, HashMap, PerCpuArray, RingBuf},
};

/// Set by the daemon at load time.
#[unsafe(no_mangle)]
pub static CONFIG: Global<KernelConfig> = Global::new(KernelConfig {
    offsets: unsafe { core::mem::zeroed() },
    flags: 0,
    self_tgid: 0,
    fmode_created: 0,
    _pad: 0,
});

/// Every record for the daemon. Sized by the daemon at load time.
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(1 << 24, 0);

/// The tgids being observed.
#[map]
pub static TRACKED: HashMap<u32, Tracked> = HashMap::with_max_entries(65536, 0);

/// Comms whose exec makes an untracked process a candidate agent.
#[map]
pub static CANDIDATES: HashMap<CommKey, u8> = HashMap::with_max_entries(1024, 0);

/// Counters the daemon reports, so that nothing is lost silently.
#[map]
pub static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(stat::COUNT, 0);

/// How to read each syscall's arguments, indexed by syscall number.
#[map]
pub static SPECS: Array<SyscallSpec> = Array::with_max_entries(SYSCALL_SLOTS, 0);

pub const SYSCALL_SLOTS: u32 = 512;

/// Open write episodes: bytes and write counts per (process, open file).
#[map]
pub static WRITES: HashMap<WriteKey, WriteStats> = HashMap::with_max_entries(16384, 0);

/// Where variable-size records are assembled; twice the largest record so that masked offsets
/// always stay inside it.
#[map]
pub static SCRATCH: PerCpuArray<[u8; 2 * SCRATCH_SIZE]> = PerCpuArray::with_max_entries(1, 0);

#[inline(always)]
pub fn config() -> &'static KernelConfig {
    // SAFETY: Global<T> is a transparent wrapper around an always-initialised T.
    unsafe { &*(&raw const CONFIG).cast::<KernelConfig>() }
}

#[inline(always)]
pub fn is_tracked() -> bool {
    let tgid = (aya_ebpf::helpers::bpf_get_current_pid_tgid() >> 32) as u32;
    // SAFETY: read-only lookup.
    unsafe { TRACKED.get(&tgid) }.is_some()
}

#[inline(always)]
pub fn count(index: u32, by: u64) {
    if let Some(slot) = STATS.get_ptr_mut(index) {
        // SAFETY: per-CPU slot, no concurrent writer on this CPU.
        unsafe { *slot += by };
    }
}

/// Unread bytes above which a record wakes the daemon. Below it the daemon finds records on
/// its next timed poll: a wakeup per record costs an interrupt, which in a VM is several
/// microseconds per event.
const WAKEUP_BYTES: u64 = 256 * 1024;
const BPF_RB_NO_WAKEUP: u64 = 1;
const BPF_RB_FORCE_WAKEUP: u64 = 2;
const BPF_RB_AVAIL_DATA: u64 = 0;

#[inline(always)]
fn wakeup_flag() -> u64 {
    if EVENTS.query(BPF_RB_AVAIL_DATA) > WAKEUP_BYTES { BPF_RB_FORCE_WAKEUP } else { BPF_RB_NO_WAKEUP }
}

/// Sends `len` bytes of the scratch buffer, counting a loss when the ring buffer is full.
#[inline(always)]
pub fn submit(buf: *const u8, len: usize) {
    submit_with(buf, len, wakeup_flag());
}

/// Like [`submit`], waking the daemon at once: it has something to decide (a candidate agent).
#[inline(always)]
pub fn submit_urgent(buf: *const u8, len: usize) {
    submit_with(buf, len, BPF_RB_FORCE_WAKEUP);
}

#[inline(always)]
fn submit_with(buf: *const u8, len: usize, flags: u64) {
    let len = len & (SCRATCH_SIZE - 1);
    // SAFETY: buf is the scratch map value, which is 2 * SCRATCH_SIZE long.
    let data = unsafe { core::slice::from_raw_parts(buf, len) };
    if EVENTS.output::<[u8]>(data, flags).is_err() {
        count(stat::RINGBUF_FULL, 1);
    }
}

/// Sends a fixed-size record.
#[inline(always)]
pub fn submit_fixed<T>(record: &T) {
    if EVENTS.output::<T>(record, wakeup_flag()).is_err() {
        count(stat::RINGBUF_FULL, 1);
    }
}

#[inline(always)]
pub fn scratch() -> Option<*mut u8> {
    SCRATCH.get_ptr_mut(0).map(|p| p.cast::<u8>())
}
