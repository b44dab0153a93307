//! Connections: one `connection {server}:{port}` span per TCP connection of a session, with
//! what was learnt about it (server name, ALPN, bytes) and, for TLS, whether its plaintext was
//! captured and, if not, why. That last part is how a user learns what they are missing.

use std::collections::HashMap;

use super::{Correlator, Output, SessionId};
use crate::{
    decode::{Segment, tls_hello},
    intake::{Conn, Direction, SockClose, SockOpen, TlsAssoc, TlsCoverage, TlsLibraryState, TlsProbeStatus},
    semconv as sc,
    span::{Span, SpanId, SpanKind, UnixNanos},
};

#[derive(Clone, Debug)]
struct Connection {
    tgid: u32,
    session: SessionId,
    parent: SpanId,
    depth: u32,
    opened: UnixNanos,
    connected: bool,
    local: std::net::SocketAddr,
    remote: std::net::SocketAddr,
    /// None until the first bytes sent tell.
    tls: Option<bool>,
    hello: Option<tls_hello::ClientHello>,
    /// Plain sockets: bytes captured and lost.
    plain_bytes: u64,
    plain_lost: u64,
}

#[derive(Clone, Debug, Default)]
struct TlsObject {
    sk: Option<u64>,
    /// The association was seen inside a TLS call (certain).
    certain: bool,
    library: u32,
    bytes: u64,
    lost: u64,
}

#[derive(Default)]
pub(super) struct NetState {
    conns: HashMap<u64, Connection>,
    tls: HashMap<(u32, u64), TlsObject>,
    coverage: HashMap<u32, Vec<TlsLibraryState>>,
    /// Closed TLS connections without plaintext, waiting for discovery, associations and
    /// segments still in flight before their gap reason is decided.
    pending: Vec<PendingConn>,
    /// Processes gone, and when: their TLS facts are kept until pending connections are done.
    gone: HashMap<u32, UnixNanos>,
}

/// A connection that ended, with what is known of its end.
struct Closed {
    sk: u64,
    conn: Connection,
    end: UnixNanos,
    counters: Option<crate::intake::SockCounters>,
    incomplete: bool,
}

struct PendingConn {
    closed: Closed,
    due: UnixNanos,
}

/// How long a TLS connection without plaintext waits before its gap reason is decided: ELF
/// discovery of a large binary takes a fraction of a second.
pub const GAP_GRACE_NS: u64 = 2_000_000_000;

fn library_name(lib: u32) -> &'static str {
    use agent_observer_common::tls::*;
    match lib {
        LIB_OPENSSL => "openssl",
        LIB_BORINGSSL => "boringssl",
        LIB_GNUTLS => "gnutls",
        LIB_NSS => "nss",
        _ => "unknown",
    }
}

impl Correlator {
    pub(super) fn on_sock_open(&mut self, o: SockOpen, out: &mut Vec<Output>) {
        let Some(p) = self.processes.get(o.tgid) else { return };
        let conn = Connection {
            tgid: o.tgid,
            session: p.session,
            parent: p.span,
            depth: p.depth,
            opened: o.ts,
            connected: o.connected,
            local: o.local,
            remote: o.remote,
            tls: None,
            hello: None,
            plain_bytes: 0,
            plain_lost: 0,
        };
        if let Some(stale) = self.net.conns.insert(o.sk, conn) {
            // The same struct sock again: the kernel freed it, so the old one closed unseen.
            self.finish_conn(Closed { sk: o.sk, conn: stale, end: o.ts, counters: None, incomplete: true }, out);
        }
    }

    pub(super) fn on_segment(&mut self, s: Segment) {
        match s.conn {
            Conn::Socket(sk) => {
                let Some(c) = self.net.conns.get_mut(&sk) else { return };
                if c.tls.is_none() && s.dir == Direction::Send {
                    c.hello = tls_hello::parse(&s.bytes);
                    c.tls = Some(c.hello.is_some() || s.bytes.starts_with(&[0x16, 0x03]));
                }
                if c.tls != Some(true) {
                    c.plain_bytes += s.bytes.len() as u64;
                    c.plain_lost += s.lost;
                }
            }
            Conn::Tls(ptr) => {
                let t = self.net.tls.entry((s.tgid, ptr)).or_default();
                t.library = s.library;
                t.bytes += s.bytes.len() as u64;
                t.lost += s.lost;
            }
        }
    }

    pub(super) fn on_tls_assoc(&mut self, a: TlsAssoc) {
        log::debug!("tls {:x} of {} on sock {:x} (inside call: {})", a.tls, a.tgid, a.sk, a.inside_call);
        let t = self.net.tls.entry((a.tgid, a.tls)).or_default();
        // A certain association is never replaced by a likely one.
        if t.sk.is_none() || a.inside_call || !t.certain {
            t.sk = Some(a.sk);
            t.certain |= a.inside_call;
        }
    }

    pub(super) fn on_tls_coverage(&mut self, c: TlsCoverage) {
        let libs = self.net.coverage.entry(c.tgid).or_default();
        for lib in c.libraries {
            match libs.iter_mut().find(|l| l.path == lib.path) {
                Some(existing) => *existing = lib,
                None => libs.push(lib),
            }
        }
    }

    pub(super) fn on_sock_close(&mut self, c: SockClose, out: &mut Vec<Output>) {
        let Some(conn) = self.net.conns.remove(&c.sk) else { return };
        self.finish_conn(Closed { sk: c.sk, conn, end: c.ts, counters: Some(c.counters), incomplete: false }, out);
    }

    /// Notes a process is gone; its TLS facts are forgotten once nothing pending needs them.
    pub(super) fn net_process_gone(&mut self, tgid: u32, ts: UnixNanos) {
        self.net.gone.insert(tgid, ts);
    }

    /// Decides the connections whose grace period is over, and forgets gone processes.
    pub(super) fn net_tick(&mut self, now: UnixNanos, out: &mut Vec<Output>) {
        let (due, keep): (Vec<PendingConn>, Vec<PendingConn>) =
            std::mem::take(&mut self.net.pending).into_iter().partition(|p| p.due <= now);
        self.net.pending = keep;
        for p in due {
            self.emit_conn(p.closed, out);
        }
        let waiting: std::collections::HashSet<u32> = self.net.pending.iter().map(|p| p.closed.conn.tgid).collect();
        let forget: Vec<u32> = self
            .net
            .gone
            .iter()
            .filter(|(t, at)| !waiting.contains(t) && now >= **at + GAP_GRACE_NS)
            .map(|(t, _)| *t)
            .collect();
        for tgid in forget {
            self.net.gone.remove(&tgid);
            self.net.tls.retain(|(t, _), _| *t != tgid);
            self.net.coverage.remove(&tgid);
        }
    }

    /// Why a TLS connection's plaintext was not captured.
    fn gap_reason(&self, conn: &Connection) -> (&'static str, Option<String>) {
        let libs = self.net.coverage.get(&conn.tgid).map(Vec::as_slice).unwrap_or(&[]);
        if let Some(l) = libs.iter().find(|l| matches!(l.status, TlsProbeStatus::Failed(_))) {
            return ("probe-failed", Some(l.library.clone()));
        }
        let attached: Vec<&TlsLibraryState> =
            libs.iter().filter(|l| matches!(l.status, TlsProbeStatus::Attached(_))).collect();
        if attached.iter().any(|l| matches!(l.status, TlsProbeStatus::Attached(at) if at > conn.opened)) {
            return ("probe-attached-late", attached.first().map(|l| l.library.clone()));
        }
        if let Some(l) = libs.iter().find(|l| l.status == TlsProbeStatus::Unsupported) {
            return ("unsupported-tls-library", Some(l.library.clone()));
        }
        if !attached.is_empty() {
            // Probes are in place but this connection's bytes never went through them: another
            // TLS stack in the same process, or one we could not tie to this socket.
            return ("not-observed", attached.first().map(|l| l.library.clone()));
        }
        ("unsupported-tls-library", None)
    }

    fn captured_bytes(&self, tgid: u32, sk: u64) -> u64 {
        self.net.tls.iter().filter(|((t, _), o)| *t == tgid && o.sk == Some(sk)).map(|(_, o)| o.bytes).sum()
    }

    /// Emits the connection's span, or holds it while a TLS gap's reason may still change.
    fn finish_conn(&mut self, closed: Closed, out: &mut Vec<Output>) {
        let tls = closed.conn.tls == Some(true) || closed.counters.is_some_and(|c| c.tls);
        if tls && !closed.incomplete && self.captured_bytes(closed.conn.tgid, closed.sk) == 0 {
            let due = closed.end + GAP_GRACE_NS;
            self.net.pending.push(PendingConn { closed, due });
            return;
        }
        self.emit_conn(closed, out);
    }

    fn emit_conn(&mut self, closed: Closed, out: &mut Vec<Output>) {
        let Closed { sk, conn, end, counters, incomplete } = closed;
        let server = conn.hello.as_ref().and_then(|h| h.server_name.clone());
        let host = server.clone().unwrap_or_else(|| conn.remote.ip().to_string());
        let mut span = Span {
            trace_id: self.trace_of(conn.session),
            span_id: self.ids.span_id(),
            parent: Some(conn.parent),
            name: format!("connection {host}:{}", conn.remote.port()),
            kind: SpanKind::Client,
            start: conn.opened,
            end: end.max(conn.opened),
            ..Default::default()
        };
        span.set(sc::PROCESS_PID, conn.tgid);
        span.set(sc::SERVER_ADDRESS, host);
        span.set(sc::SERVER_PORT, u32::from(conn.remote.port()));
        span.set(sc::NETWORK_PEER_ADDRESS, conn.remote.ip().to_string());
        span.set(sc::NETWORK_PEER_PORT, u32::from(conn.remote.port()));
        span.set(sc::CLIENT_PORT, u32::from(conn.local.port()));
        span.set(sc::NETWORK_TRANSPORT, "tcp");
        span.set(sc::NETWORK_TYPE, if conn.remote.is_ipv4() { "ipv4" } else { "ipv6" });
        if !conn.connected {
            span.set(sc::CONN_SEEN_MID_STREAM, true);
        }
        if let Some(c) = counters {
            span.set(sc::CONN_BYTES_SENT, c.bytes_sent);
            span.set(sc::CONN_BYTES_RECEIVED, c.bytes_recv);
        }
        if incomplete {
            span.set(sc::INCOMPLETE, true);
        }
        let tls = conn.tls == Some(true) || counters.is_some_and(|c| c.tls);
        span.set(sc::CONN_TLS, tls);
        if tls {
            if let Some(name) = &server {
                span.set(sc::TLS_SERVER_NAME, name.clone());
            }
            if let Some(h) = &conn.hello {
                if !h.alpn.is_empty() {
                    span.set(sc::TLS_ALPN_OFFERED, h.alpn.clone());
                }
            }
            let objects: Vec<&TlsObject> = self.net.tls.iter().filter(|((t, _), o)| *t == conn.tgid && o.sk == Some(sk)).map(|(_, o)| o).collect();
            let bytes: u64 = objects.iter().map(|o| o.bytes).sum();
            let lost: u64 = objects.iter().map(|o| o.lost).sum();
            if bytes > 0 {
                span.set(sc::TLS_PLAINTEXT, if lost > 0 { "partial" } else { "captured" });
                span.set(sc::TLS_LIBRARY, library_name(objects[0].library));
                span.set(sc::CONN_PLAINTEXT_BYTES, bytes);
                if lost > 0 {
                    span.set(sc::TLS_GAP_REASON, "truncated");
                    span.set(sc::CONN_PLAINTEXT_LOST, lost);
                }
            } else {
                let (reason, library) = self.gap_reason(&conn);
                span.set(sc::TLS_PLAINTEXT, "missing");
                span.set(sc::TLS_GAP_REASON, reason);
                if let Some(l) = library {
                    span.set(sc::TLS_LIBRARY, l);
                }
            }
        } else {
            span.set(sc::CONN_PLAINTEXT_BYTES, conn.plain_bytes);
            if conn.plain_lost > 0 {
                span.set(sc::CONN_PLAINTEXT_LOST, conn.plain_lost);
            }
        }
        let agent = self.sessions.get(&conn.session).map(|s| s.agent.clone()).unwrap_or_default();
        let depth = conn.depth + 1;
        out.push(Output::SpanStarted { span: span.clone(), depth, agent: agent.clone() });
        out.push(Output::SpanEnded { span, depth, agent });
    }

    /// Ends every open connection at `now` and decides every pending one (daemon shutdown).
    pub(super) fn flush_net(&mut self, now: UnixNanos, out: &mut Vec<Output>) {
        for p in std::mem::take(&mut self.net.pending) {
            self.emit_conn(p.closed, out);
        }
        let mut conns: Vec<(u64, Connection)> = self.net.conns.drain().collect();
        conns.sort_by_key(|(_, c)| c.opened);
        for (sk, conn) in conns {
            self.emit_conn(Closed { sk, conn, end: now, counters: None, incomplete: true }, out);
        }
    }

    /// What is known of the connection a segment belongs to, for the stream views.
    pub fn stream_label(&self, tgid: u32, conn: Conn) -> StreamLabel {
        let sk = match conn {
            Conn::Socket(sk) => Some(sk),
            Conn::Tls(ptr) => self.net.tls.get(&(tgid, ptr)).and_then(|t| t.sk),
        };
        let c = sk.and_then(|sk| self.net.conns.get(&sk));
        let agent = self
            .processes
            .get(tgid)
            .and_then(|p| self.sessions.get(&p.session))
            .map(|s| s.agent.clone());
        StreamLabel {
            agent,
            server_name: c.and_then(|c| c.hello.as_ref()).and_then(|h| h.server_name.clone()),
            remote: c.map(|c| c.remote),
        }
    }
}

/// Labels for a stream in the debug views.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamLabel {
    pub agent: Option<String>,
    pub server_name: Option<String>,
    pub remote: Option<std::net::SocketAddr>,
}
