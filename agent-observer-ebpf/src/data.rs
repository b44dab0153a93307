//! Copying bytes from a tracked process's memory into `DATA` records, in chunks.

use agent_observer_common::{CHUNK_MAX, DATA_LAST, DATA_TRUNCATED, DataRecord, kind, stat};
use aya_ebpf::helpers::generated::bpf_probe_read_user;

use aya_ebpf::{EbpfContext, maps::ProgramArray};

use crate::{
    kernel::header,
    maps::{CURSOR, Cursor, count, scratch, submit},
};

/// Chunks one program run copies (256 KiB); longer transfers continue in a tail call.
pub const CHUNKS_PER_RUN: usize = 32;
/// iovecs followed per call.
pub const MAX_IOV: u64 = 16;


/// One call's bytes (one SSL_write, one send...), for [`emit`].
#[derive(Clone, Copy)]
pub struct Call {
    /// Connection identity: `struct sock *` or the TLS object.
    pub conn: u64,
    /// `DATA_TLS`, `DATA_RECV`.
    pub flags: u16,
    pub library: u32,
    /// Bytes the call moved in all (over every segment).
    pub len: u64,
}

/// Sends `len` bytes at `src` (user memory) that start at `offset` within the call, as up to
/// `MAX` chunks. Returns the bytes sent: fewer than `len` when `MAX` chunks were not enough (the
/// rest is counted as lost) or memory was unreadable (the last record says so). Each call site
/// picks its own bound, since the verifier walks every iteration. Only the loop index is carried
/// from one iteration to the next, so each iteration is one verifier state.
#[inline(always)]
pub fn emit<const MAX: usize>(call: &Call, src: u64, len: u64, offset: u64) -> u64 {
    let Some(buf) = scratch() else { return 0 };
    let fixed = size_of::<DataRecord>();
    // Decided once: comparing with call.len inside the loop would fork verifier states.
    let ends_call = offset + len >= call.len;
    for i in 0..MAX {
        let done = i as u64 * CHUNK_MAX as u64;
        if done >= len {
            return len;
        }
        let left = len - done;
        let n = if left > CHUNK_MAX as u64 { CHUNK_MAX as u64 } else { left };
        // SAFETY: the scratch buffer has room for the fixed part plus 2 * CHUNK_MAX.
        let rc = unsafe {
            bpf_probe_read_user(
                buf.wrapping_add(fixed).cast(),
                (n as u32) & (2 * CHUNK_MAX as u32 - 1),
                (src + done) as *const core::ffi::c_void,
            )
        };
        let at = offset + done;
        let (n, flags) = if rc == 0 {
            (n, call.flags | if ends_call && n == left { DATA_LAST } else { 0 })
        } else {
            // Unreadable (paged out or gone): the rest of the call is lost.
            (0, call.flags | DATA_TRUNCATED | DATA_LAST)
        };
        let record = DataRecord {
            header: header(kind::DATA, fixed + n as usize),
            conn: call.conn,
            call_len: call.len,
            offset: at as u32,
            len: n as u16,
            flags,
            library: call.library,
            _pad: 0,
        };
        // SAFETY: the scratch buffer (8-byte aligned) has room for the fixed part.
        unsafe { buf.cast::<DataRecord>().write(record) };
        submit(buf, fixed + n as usize);
        if rc != 0 {
            count(stat::DATA_LOST_BYTES, call.len - at);
            return done;
        }
    }
    let sent = MAX as u64 * CHUNK_MAX as u64;
    if len > sent {
        count(stat::DATA_LOST_BYTES, len - sent);
        return sent;
    }
    len
}

/// Starts copying a transfer out: stores the cursor and tail-calls the continuation in slot 0
/// of `next`. `iov`/`iov_count` are 0 for a single buffer at `src`.
#[inline(always)]
pub fn start<C: EbpfContext>(ctx: &C, next: &ProgramArray, call: &Call, src: u64, seg_len: u64, iov: u64, iov_count: u64) {
    let Some(cursor) = CURSOR.get_ptr_mut(0) else { return };
    let first = if seg_len < call.len { seg_len } else { call.len };
    // SAFETY: per-CPU slot; the tail calls that read it run on this CPU.
    unsafe {
        *cursor = Cursor {
            conn: call.conn,
            call_len: call.len,
            src,
            seg_left: first,
            offset: 0,
            iov,
            iov_next: 0,
            iov_count,
            library: call.library,
            flags: call.flags,
            _pad: 0,
        };
        next.tail_call(ctx, 0);
    }
    // Only reached when the tail call failed: nothing of this call could be copied.
    count(stat::DATA_LOST_BYTES, call.len);
}

/// One continuation run: copies up to `CHUNKS_PER_RUN` chunks, moves on to the next iovec when
/// a segment is done, and tail-calls itself while bytes remain (the kernel allows 33 tail
/// calls, about 8 MiB per transfer; the rest is counted as lost).
#[inline(always)]
pub fn resume<C: EbpfContext>(ctx: &C, next: &ProgramArray) {
    let Some(cursor) = CURSOR.get_ptr_mut(0) else { return };
    // SAFETY: per-CPU slot written by `start` or a previous run on this CPU.
    let mut c = unsafe { *cursor };
    if c.seg_left == 0 {
        if c.iov_next >= c.iov_count || c.iov_next >= MAX_IOV || c.offset >= c.call_len {
            return;
        }
        // SAFETY: bpf_probe_read_user tolerates any address.
        let seg: [u64; 2] = unsafe {
            aya_ebpf::helpers::bpf_probe_read_user((c.iov + 16 * c.iov_next) as *const [u64; 2])
        }
        .unwrap_or([0; 2]);
        let left = c.call_len - c.offset;
        c.src = seg[0];
        c.seg_left = if seg[1] < left { seg[1] } else { left };
        c.iov_next += 1;
    }
    let call = Call { conn: c.conn, flags: c.flags, library: c.library, len: c.call_len };
    let max = (CHUNKS_PER_RUN * CHUNK_MAX) as u64;
    let want = if c.seg_left < max { c.seg_left } else { max };
    let sent = emit::<CHUNKS_PER_RUN>(&call, c.src, want, c.offset);
    if sent < want {
        return; // unreadable memory: reported by emit
    }
    c.src += sent;
    c.seg_left -= sent;
    c.offset += sent;
    // SAFETY: per-CPU slot.
    unsafe {
        *cursor = c;
        if c.offset < c.call_len {
            next.tail_call(ctx, 0);
            count(stat::DATA_LOST_BYTES, c.call_len - c.offset);
        }
    }
}
