//! Maps and globals shared by every sensor.

use agent_observer_common::{
    CommKey, InodeKey, KernelConfig, SCRATCH_SIZE, SockStats, SyscallSpec, Tracked, WriteKey, WriteStats, stat,
};
use aya_ebpf::{
    Global,
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray, ProgramArray, RingBuf},
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

/// Files the daemon has analysed for TLS libraries: mapping them again is not reported.
#[map]
pub static KNOWN_MAPS: LruHashMap<InodeKey, u8> = LruHashMap::with_max_entries(16384, 0);

/// Counters of TCP connections of tracked processes, by `struct sock *`.
#[map]
pub static SOCKS: HashMap<u64, SockStats> = HashMap::with_max_entries(16384, 0);

/// A TLS call in progress, per thread: its arguments, for the return probe.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct TlsCall {
    pub conn: u64,
    pub buf: u64,
    /// Where the library stores the byte count (out-parameter conventions).
    pub out: u64,
    pub cookie: u64,
}

#[map]
pub static TLS_CALLS: LruHashMap<u32, TlsCall> = LruHashMap::with_max_entries(16384, 0);

/// The TLS object each thread used last: Node's TLS writes ciphertext to the socket right after
/// SSL_write returns, through an in-memory BIO, so the socket and the object meet only here.
#[map]
pub static LAST_TLS: LruHashMap<u32, u64> = LruHashMap::with_max_entries(16384, 0);

/// The socket each TLS object was last seen on, so each association is reported once.
#[map]
pub static TLS_SOCK: LruHashMap<u64, u64> = LruHashMap::with_max_entries(16384, 0);

/// Continuations of long transfers. A program array serves one program type, hence two:
/// slot 0 of each holds `sock_more` (tracepoint) and `tls_more` (uprobe).
#[map]
pub static SOCK_CONTINUE: ProgramArray = ProgramArray::with_max_entries(1, 0);
#[map]
pub static TLS_CONTINUE: ProgramArray = ProgramArray::with_max_entries(1, 0);

/// A transfer being copied out across tail calls, per CPU (tail calls stay on the CPU).
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct Cursor {
    pub conn: u64,
    pub call_len: u64,
    /// Next byte to copy in the current segment, and how many are left there.
    pub src: u64,
    pub seg_left: u64,
    /// Where that byte is within the call.
    pub offset: u64,
    /// Remaining iovecs (for readv/writev/sendmsg/recvmsg): next one and how many in all.
    pub iov: u64,
    pub iov_next: u64,
    pub iov_count: u64,
    pub library: u32,
    pub flags: u16,
    pub _pad: u16,
}

#[map]
pub static CURSOR: PerCpuArray<Cursor> = PerCpuArray::with_max_entries(1, 0);

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

/// Branch-free, so loops that send many records do not fork verifier states here.
#[inline(always)]
fn wakeup_flag() -> u64 {
    let avail = EVENTS.query(BPF_RB_AVAIL_DATA);
    // 1 when avail > WAKEUP_BYTES (the subtraction wraps to a value with the top bit set).
    let over = WAKEUP_BYTES.wrapping_sub(avail) >> 63;
    BPF_RB_NO_WAKEUP + over * (BPF_RB_FORCE_WAKEUP - BPF_RB_NO_WAKEUP)
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
