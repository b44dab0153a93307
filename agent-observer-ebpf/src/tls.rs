//! TLS plaintext: uprobes on the TLS library's write/read functions (SSL_write, SSL_read_ex,
//! gnutls_record_send, PR_Write...), wherever the daemon found them.
//!
//! One entry and one return program serve every library: the attach cookie says which way the
//! bytes go and how the function reports their count (`tls::COOKIE_*`). Entry stashes the
//! arguments per thread; return copies the bytes that actually moved.

use agent_observer_common::{DATA_RECV, DATA_TLS, tls};
use aya_ebpf::{
    EbpfContext as _,
    helpers::{bpf_probe_read_user, generated::bpf_get_attach_cookie},
    macros::{uprobe, uretprobe},
    programs::{ProbeContext, RetProbeContext},
};

use crate::{
    data::{Call, resume, start},
    kernel::{current_ids, read},
    maps::{LAST_TLS, TLS_CALLS, TLS_CONTINUE, TlsCall, is_tracked},
};

#[uprobe]
pub fn tls_enter(ctx: ProbeContext) -> u32 {
    if !is_tracked() {
        return 0;
    }
    // SAFETY: the cookie helper is valid in uprobes.
    let cookie = unsafe { bpf_get_attach_cookie(ctx.as_ptr()) };
    let out = if cookie & tls::COOKIE_OUT_PARAM != 0 {
        let reg = ((cookie >> tls::COOKIE_OUT_REG_SHIFT) & 0xff) as usize * 8;
        read::<u64>(ctx.as_ptr() as *const u8, reg).unwrap_or(0)
    } else {
        0
    };
    let call = TlsCall {
        conn: ctx.arg::<u64>(0).unwrap_or(0),
        buf: ctx.arg::<u64>(1).unwrap_or(0),
        out,
        cookie,
    };
    let (_, tid) = current_ids();
    let _ = TLS_CALLS.insert(&tid, &call, 0);
    let _ = LAST_TLS.insert(&tid, &call.conn, 0);
    0
}

#[uretprobe]
pub fn tls_exit(ctx: RetProbeContext) -> u32 {
    if !is_tracked() {
        return 0;
    }
    let (_, tid) = current_ids();
    // SAFETY: read-only lookup, copied out before the delete.
    let Some(call) = (unsafe { TLS_CALLS.get(&tid) }).copied() else { return 0 };
    let _ = TLS_CALLS.remove(&tid);
    // SSL_read and friends return `int`: the upper half of the register is not a sign.
    // (gnutls returns ssize_t, but a record is at most 16 KiB, so 32 bits hold it too.)
    let ret = ctx.ret::<u64>() as u32 as i32 as i64;
    let bytes = if call.cookie & tls::COOKIE_OUT_PARAM != 0 {
        // SAFETY: bpf_probe_read_user tolerates any address.
        if ret == 1 { unsafe { bpf_probe_read_user(call.out as *const u64) }.unwrap_or(0) } else { 0 }
    } else if ret > 0 {
        ret as u64
    } else {
        0
    };
    if bytes == 0 {
        return 0;
    }
    let recv = call.cookie & tls::COOKIE_RECV != 0;
    let data = Call {
        conn: call.conn,
        flags: DATA_TLS | if recv { DATA_RECV } else { 0 },
        library: ((call.cookie >> tls::COOKIE_LIB_SHIFT) & 0xff) as u32,
        len: bytes,
    };
    start(&ctx, &TLS_CONTINUE, &data, call.buf, bytes, 0, 0);
    0
}

/// Continues copying a TLS transfer (see `data::resume`). A uprobe-type program so that
/// `tls_exit` can tail-call it; it is never attached.
#[uprobe]
pub fn tls_more(ctx: ProbeContext) -> u32 {
    resume(&ctx, &TLS_CONTINUE);
    0
}
