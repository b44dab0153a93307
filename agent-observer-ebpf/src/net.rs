//! TCP connections of tracked processes: who they connect to, how many bytes flow, and the
//! bytes themselves where they are plaintext (plain HTTP to a local model or proxy) or a TLS
//! ClientHello (for the server name and ALPN).
//!
//! Data comes from the `sock:sock_send_length` / `sock:sock_recv_length` tracepoints, which
//! fire only for sockets, so file reads and writes run no BPF for this. The user buffers are
//! found through the current syscall's saved arguments.

use agent_observer_common::{
    DATA_RECV, REG_NONE, SOCK_CONNECTED, STREAM_CLASSIFIED, STREAM_TLS, SockCloseRecord,
    SockRecord, SockStats, SyscallSpec, TlsAssocRecord, kind, stat,
};
use aya_ebpf::{
    helpers::{bpf_ktime_get_boot_ns, bpf_probe_read_user},
    macros::tracepoint,
    programs::TracePointContext,
};

use crate::{
    data::{Call, emit, resume, start},
    kernel::{S_IFMT, SyscallTp, current_ids, current_regs, fd_file, file_info, header, off, read, read_ptr, syscall_arg},
    maps::{LAST_TLS, SOCKS, SOCK_CONTINUE, SPECS, TLS_CALLS, TLS_SOCK, count, is_tracked, submit_fixed},
};

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
const IPPROTO_TCP: u16 = 6;
const IPPROTO_MPTCP: u16 = 262;
const SOCK_STREAM: u16 = 1;
const MSG_PEEK: i32 = 2;
const EINPROGRESS: i64 = -115;
const S_IFSOCK: u16 = 0o140000;

/// The `struct sock *` behind a socket `struct file *`, or null.
#[inline(always)]
pub fn file_sock(file: *const u8) -> *const u8 {
    let socket = read_ptr(file, off!(file_private_data));
    read_ptr(socket, off!(socket_sk))
}

/// Sends `SOCK_OPEN` with the connection's addresses.
#[inline(always)]
fn send_open(sk: *const u8, family: u16, fd: i64, flags: u16) {
    let mut r = SockRecord {
        header: header(kind::SOCK_OPEN, size_of::<SockRecord>()),
        sk: sk as u64,
        fd: fd as i32,
        family,
        flags,
        sport: read(sk, off!(sock_num)).unwrap_or(0),
        dport: u16::from_be(read(sk, off!(sock_dport)).unwrap_or(0)),
        ..Default::default()
    };
    if family == AF_INET {
        let d: [u8; 4] = read(sk, off!(sock_daddr)).unwrap_or([0; 4]);
        let s: [u8; 4] = read(sk, off!(sock_rcv_saddr)).unwrap_or([0; 4]);
        r.daddr[..4].copy_from_slice(&d);
        r.saddr[..4].copy_from_slice(&s);
    } else {
        r.daddr = read(sk, off!(sock_v6_daddr)).unwrap_or([0; 16]);
        r.saddr = read(sk, off!(sock_v6_rcv_saddr)).unwrap_or([0; 16]);
    }
    submit_fixed(&r);
}

/// Starts counting a connection; false when the map is full.
#[inline(always)]
fn track_sock(sk: *const u8) -> bool {
    let (tgid, _) = current_ids();
    // SAFETY: plain helper.
    let now = unsafe { bpf_ktime_get_boot_ns() };
    let stats = SockStats { tgid, first_ns: now, last_ns: now, ..Default::default() };
    if SOCKS.insert(&(sk as u64), &stats, 0).is_err() {
        count(stat::SOCKS_FULL, 1);
        return false;
    }
    true
}

/// Exit of connect(2): a TCP connection of a tracked process.
#[tracepoint]
pub fn sock_connect(ctx: TracePointContext) -> u32 {
    if !is_tracked() {
        return 0;
    }
    let ret = SyscallTp::ret(&ctx);
    if ret != 0 && ret != EINPROGRESS {
        return 0;
    }
    let call = SyscallTp::new(&ctx);
    let Some(spec) = SPECS.get(call.nr).copied() else { return 0 };
    let fd = syscall_arg(call.regs, spec.fd) as i32 as i64;
    let file = fd_file(fd);
    let Some(info) = file_info(file) else { return 0 };
    if info.mode & S_IFMT != S_IFSOCK {
        return 0;
    }
    let sk = file_sock(file);
    let family: u16 = read(sk, off!(sock_family)).unwrap_or(0);
    let sock_type: u16 = read(sk, off!(sock_type)).unwrap_or(0);
    let protocol: u16 = read(sk, off!(sock_protocol)).unwrap_or(0);
    if !(family == AF_INET || family == AF_INET6)
        || sock_type != SOCK_STREAM
        || !(protocol == IPPROTO_TCP || protocol == IPPROTO_MPTCP)
    {
        return 0;
    }
    if track_sock(sk) {
        send_open(sk, family, fd, SOCK_CONNECTED);
    }
    0
}

#[tracepoint]
pub fn sock_send(ctx: TracePointContext) -> u32 {
    sock_data(&ctx, false)
}

#[tracepoint]
pub fn sock_recv(ctx: TracePointContext) -> u32 {
    sock_data(&ctx, true)
}

/// `sock_{send,recv}_length(sk, family, protocol, ret, flags)`.
#[inline(always)]
fn sock_data(ctx: &TracePointContext, recv: bool) -> u32 {
    if !is_tracked() {
        return 0;
    }
    // SAFETY: offsets of the sock_*_length tracepoint format.
    let (sk, family, protocol, ret, flags) = unsafe {
        (
            ctx.read_at::<u64>(8).unwrap_or(0),
            ctx.read_at::<u16>(16).unwrap_or(0),
            ctx.read_at::<u16>(18).unwrap_or(0),
            ctx.read_at::<i32>(20).unwrap_or(0),
            ctx.read_at::<i32>(24).unwrap_or(0),
        )
    };
    if ret <= 0 || !(family == AF_INET || family == AF_INET6) || !(protocol == IPPROTO_TCP || protocol == IPPROTO_MPTCP) {
        return 0;
    }
    if recv && flags & MSG_PEEK != 0 {
        return 0;
    }
    let bytes = ret as u64;
    let (_, tid) = current_ids();

    // Which TLS object, if any, this socket I/O carries.
    // SAFETY: read-only lookups.
    let inside = unsafe { TLS_CALLS.get(&tid) }.map(|c| c.conn);
    let recent = if recv { None } else { unsafe { LAST_TLS.get(&tid) }.copied() };
    if let Some(tls) = inside.or(recent) {
        // SAFETY: read-only lookup.
        if unsafe { TLS_SOCK.get(&tls) }.copied() != Some(sk) {
            let _ = TLS_SOCK.insert(&tls, &sk, 0);
            let r = TlsAssocRecord {
                header: header(kind::TLS_ASSOC, size_of::<TlsAssocRecord>()),
                tls,
                sk,
                inside_call: inside.is_some() as u32,
                _pad: 0,
            };
            submit_fixed(&r);
        }
    }

    let skp = sk as *const u8;
    if SOCKS.get_ptr_mut(&sk).is_none() {
        // Connected before tracking began (or by a process we adopted): first seen now.
        if !track_sock(skp) {
            return 0;
        }
        send_open(skp, family, -1, 0);
    }
    let Some(stats) = SOCKS.get_ptr_mut(&sk) else { return 0 };
    // SAFETY: map value; atomic adds because threads share a socket.
    let stream_flags = unsafe {
        use core::intrinsics::{AtomicOrdering::Relaxed, atomic_xadd};
        if recv {
            atomic_xadd::<u64, u64, { Relaxed }>(&raw mut (*stats).bytes_recv, bytes);
            atomic_xadd::<u64, u64, { Relaxed }>(&raw mut (*stats).recvs, 1);
        } else {
            atomic_xadd::<u64, u64, { Relaxed }>(&raw mut (*stats).bytes_sent, bytes);
            atomic_xadd::<u64, u64, { Relaxed }>(&raw mut (*stats).sends, 1);
        }
        (*stats).last_ns = bpf_ktime_get_boot_ns();
        (*stats).flags
    };

    let regs = current_regs();
    let nr = read::<u64>(regs, off!(regs_nr)).unwrap_or(u64::MAX) as u32;
    let Some(spec) = SPECS.get(nr).copied() else { return 0 };
    let (first, first_len) = first_segment(regs, &spec);

    if stream_flags & STREAM_CLASSIFIED == 0 && !recv {
        // The first bytes a client sends tell TLS (a handshake record) from plaintext.
        let head: [u8; 3] = if first_len >= 3 {
            // SAFETY: bpf_probe_read_user tolerates any address.
            unsafe { bpf_probe_read_user(first as *const [u8; 3]) }.unwrap_or([0; 3])
        } else {
            [0; 3]
        };
        let tls = head[0] == 0x16 && head[1] == 0x03;
        // SAFETY: map value.
        unsafe { (*stats).flags |= STREAM_CLASSIFIED | if tls { STREAM_TLS } else { 0 } };
        if tls {
            // Only the ClientHello is worth reading: server name and ALPN.
            let call = Call { conn: sk, flags: 0, library: 0, len: bytes };
            emit::<4>(&call, first, if first_len < bytes { first_len } else { bytes }, 0);
            return 0;
        }
    } else if stream_flags & STREAM_TLS != 0 {
        return 0; // ciphertext: counted above
    }
    let call = Call { conn: sk, flags: if recv { DATA_RECV } else { 0 }, library: 0, len: bytes };
    if spec.buf != REG_NONE {
        start(ctx, &SOCK_CONTINUE, &call, syscall_arg(regs, spec.buf), bytes, 0, 0);
    } else {
        let (iov, count) = iov_array(regs, &spec);
        start(ctx, &SOCK_CONTINUE, &call, 0, 0, iov, count);
    }
    0
}

/// Continues copying a socket transfer (see `data::resume`).
#[tracepoint]
pub fn sock_more(ctx: TracePointContext) -> u32 {
    resume(&ctx, &SOCK_CONTINUE);
    0
}

/// The first contiguous user buffer of a socket syscall, and its length.
#[inline(always)]
fn first_segment(regs: *const u8, spec: &SyscallSpec) -> (u64, u64) {
    if spec.buf != REG_NONE {
        return (syscall_arg(regs, spec.buf), syscall_arg(regs, spec.value));
    }
    let iov = iov_array(regs, spec);
    // SAFETY: bpf_probe_read_user tolerates any address.
    let seg: [u64; 2] = unsafe { bpf_probe_read_user(iov.0 as *const [u64; 2]) }.unwrap_or([0; 2]);
    (seg[0], seg[1])
}

/// (iovec array, count) of a readv/writev-style or msghdr-style call.
#[inline(always)]
fn iov_array(regs: *const u8, spec: &SyscallSpec) -> (u64, u64) {
    if spec.msg != REG_NONE {
        // struct msghdr { void *name; int namelen; struct iovec *iov; size_t iovlen; ... }
        let msg = syscall_arg(regs, spec.msg);
        // SAFETY: bpf_probe_read_user tolerates any address.
        let head: [u64; 4] = unsafe { bpf_probe_read_user(msg as *const [u64; 4]) }.unwrap_or([0; 4]);
        return (head[2], head[3]);
    }
    (syscall_arg(regs, spec.iov), syscall_arg(regs, spec.value))
}

/// At close (entry) of a socket fd: the connection's final counters, on its last reference.
#[inline(always)]
pub fn close_sock(file: *const u8) {
    let sk = file_sock(file) as u64;
    // SAFETY: read-only lookup, copied out before the delete.
    let Some(stats) = (unsafe { SOCKS.get(&sk) }).copied() else { return };
    let refs: i64 = read(file, off!(file_refs)).unwrap_or(0);
    if refs + off!(file_refs_bias) as i64 > 1 {
        return;
    }
    let _ = SOCKS.remove(&sk);
    let r = SockCloseRecord { header: header(kind::SOCK_CLOSE, size_of::<SockCloseRecord>()), sk, stats };
    submit_fixed(&r);
}
