//! The correlator: kernel events in, sessions and spans out.
//!
//! Pure: no I/O and no clock of its own. Time comes from event stamps and from the `now`
//! passed to [`Correlator::tick`] and [`Correlator::shutdown`]. What the daemon must do in the
//! world (track a tgid in the kernel, stop tracking one) comes back as [`Output`]s.
//!
//! Model: a session is one agent run and one trace. Its root span, `invoke_agent {agent}`, is
//! the agent's root process. Each exec inside the session opens an `exec {name}` span, a child
//! of the span the exec'ing process was attributed to. A fork without exec stays attributed to
//! the image that forked. Spans are handed out as soon as they end.

pub mod files;
pub mod net;
pub mod noise;
pub mod process;
pub mod session;

use std::collections::HashMap;

use crate::{
    catalogue::{ExecView, Matcher},
    intake::{Event, Exec, Exit, Fork},
    redact::Redactor,
    semconv as sc,
    span::{IdSource, Span, SpanId, Status, UnixNanos},
    text::{display_bytes, file_name, join_path},
};
pub use files::{FilesPolicy, HashOutcome, HashRequest};
pub use net::StreamLabel;
pub use process::{Process, ProcessTable};
pub use session::{Discovery, Session, SessionId};

/// What the correlator asks of the world, or tells the sinks.
#[derive(Clone, Debug)]
pub enum Output {
    /// A span opened; `depth` is its nesting below the session root (root = 0).
    SpanStarted { span: Span, depth: u32, agent: String },
    /// A span finished and can be exported.
    SpanEnded { span: Span, depth: u32, agent: String },
    /// Keep (or start) tracking this tgid in the kernel.
    Track(u32),
    /// Stop tracking this tgid in the kernel.
    Untrack(u32),
    SessionStarted { session: SessionId, root_tgid: u32, agent: String },
    /// The session's root process exited (`status` is its wait status) or the daemon stopped
    /// (`status` is None).
    SessionEnded { session: SessionId, root_tgid: u32, agent: String, status: Option<u32> },
    /// Hash this file and answer with [`Correlator::hash_done`]; a span waits for it.
    HashFile(HashRequest),
}

/// A process found in /proc at start-up.
#[derive(Clone, Debug, Default)]
pub struct ScannedProcess {
    pub tgid: u32,
    pub ppid: u32,
    pub start: UnixNanos,
    pub exe: Vec<u8>,
    pub argv: Vec<Vec<u8>>,
    pub cwd: Vec<u8>,
    pub comm: String,
    pub uid: u32,
}

struct OpenSpan {
    span: Span,
    depth: u32,
    session: SessionId,
}

pub struct Correlator {
    matcher: Matcher,
    redactor: Redactor,
    ids: Box<dyn IdSource>,
    processes: ProcessTable,
    sessions: HashMap<SessionId, Session>,
    spans: HashMap<SpanId, OpenSpan>,
    /// tgids `watch` started, waiting for their exec.
    expected: HashMap<u32, String>,
    next_session: u64,
    files: files::FileState,
    net: net::NetState,
    /// False while syscall capture is detached (on-demand arming).
    capture_armed: bool,
}

/// The fields of an image, from an exec event or a /proc scan.
struct Image<'a> {
    tgid: u32,
    parent: u32,
    exe: Vec<u8>,
    argv: &'a [Vec<u8>],
    argv_truncated: bool,
    cwd: Option<&'a [u8]>,
    comm: &'a str,
    uid: u32,
}

impl Image<'_> {
    fn argv_strings(&self) -> Vec<String> {
        self.argv.iter().map(|a| display_bytes(a)).collect()
    }
}

impl Correlator {
    pub fn new(matcher: Matcher, redactor: Redactor, ids: Box<dyn IdSource>) -> Correlator {
        Correlator {
            matcher,
            redactor,
            ids,
            processes: ProcessTable::default(),
            sessions: HashMap::new(),
            spans: HashMap::new(),
            expected: HashMap::new(),
            next_session: 1,
            files: files::FileState::new(FilesPolicy::default()),
            net: net::NetState::default(),
            capture_armed: true,
        }
    }

    pub fn with_files(mut self, policy: FilesPolicy) -> Correlator {
        self.files = files::FileState::new(policy);
        self
    }

    /// Whether `tgid` belongs to a session.
    pub fn is_tracked(&self, tgid: u32) -> bool {
        self.processes.contains(tgid)
    }

    pub fn live_sessions(&self) -> usize {
        self.sessions.len()
    }

    pub fn live_processes(&self) -> usize {
        self.processes.len()
    }

    /// `watch`: the next exec of `tgid` starts a session named `agent`, whatever it runs.
    pub fn expect_session(&mut self, tgid: u32, agent: &str) {
        self.expected.insert(tgid, agent.to_owned());
    }

    pub fn handle(&mut self, event: Event, out: &mut Vec<Output>) {
        match event {
            Event::Fork(f) => self.on_fork(f, out),
            Event::Exec(e) => self.on_exec(e, out),
            Event::Exit(x) => self.on_exit(x, out),
            Event::FileOpen(o) => self.on_file_open(o),
            Event::FileWriteStart(w) => self.on_write_start(w),
            Event::FileClose(c) => self.on_file_close(c),
            Event::FileOp(op) => self.on_file_op(op, out),
            Event::SockOpen(o) => self.on_sock_open(o, out),
            Event::SockClose(c) => self.on_sock_close(c, out),
            Event::Segment(s) => self.on_segment(s),
            Event::TlsAssoc(a) => self.on_tls_assoc(a),
            Event::TlsCoverage(c) => self.on_tls_coverage(c),
            // Raw chunks are reassembled by the decode stage; mappings go to the TLS prober.
            Event::Data(_) | Event::ExecMap(_) => {}
        }
    }

    fn on_fork(&mut self, f: Fork, out: &mut Vec<Output>) {
        let Some(parent) = self.processes.get(f.parent) else {
            // The kernel followed a process we decided is not an agent's.
            out.push(Output::Untrack(f.child));
            return;
        };
        let child = Process {
            tgid: f.child,
            start: f.ts,
            parent: f.parent,
            session: parent.session,
            span: parent.span,
            own_span: None,
            depth: parent.depth,
        };
        let session = child.session;
        if let Some(stale) = self.processes.insert(child) {
            self.vanish(stale, f.ts, out);
        }
        if let Some(s) = self.sessions.get_mut(&session) {
            s.live += 1;
        }
    }

    fn on_exec(&mut self, e: Exec, out: &mut Vec<Output>) {
        let exe = match e.filename.first() {
            Some(b'/') | None => e.filename.clone(),
            Some(_) if e.cwd.known() => join_path(&e.cwd.bytes, &e.filename),
            Some(_) => e.filename.clone(),
        };
        let image = Image {
            tgid: e.tgid,
            parent: 0,
            exe,
            argv: &e.argv,
            argv_truncated: e.argv_truncated,
            cwd: e.cwd.known().then_some(e.cwd.bytes.as_slice()),
            comm: &e.comm,
            uid: e.uid,
        };
        if self.processes.contains(e.tgid) {
            self.exec_in_session(image, e.ts, out);
        } else if let Some(agent) = self.expected.remove(&e.tgid) {
            self.start_session(image, agent, Discovery::Watch, e.ts, out);
        } else if let Some(agent) = e.candidate.then(|| self.agent_for(&image)).flatten() {
            self.start_session(image, agent, Discovery::Exec, e.ts, out);
        } else {
            out.push(Output::Untrack(e.tgid));
        }
    }

    fn agent_for(&self, image: &Image<'_>) -> Option<String> {
        let exe = display_bytes(&image.exe);
        let argv = image.argv_strings();
        self.matcher.agent_for(&ExecView { exe: &exe, argv: &argv, comm: image.comm, uid: image.uid })
    }

    fn exec_in_session(&mut self, image: Image<'_>, ts: UnixNanos, out: &mut Vec<Output>) {
        let nested = self.agent_for(&image);
        let proc = self.processes.get(image.tgid).expect("checked by caller").clone();
        let Some(session) = self.sessions.get(&proc.session) else { return };
        let (root_span, agent) = (session.root_span, session.agent.clone());
        if let Some(old) = proc.own_span.filter(|s| *s != root_span) {
            self.end_span(old, ts, out, |span| {
                span.set(sc::REPLACED_BY_EXEC, true);
            });
        }
        let mut image = image;
        image.parent = proc.parent;
        let mut span = self.process_span(&image, proc.span, self.trace_of(proc.session), ts);
        if let Some(nested) = nested.filter(|n| *n != agent) {
            span.set(sc::NESTED_AGENT, nested);
        }
        let depth = proc.depth + 1;
        let id = span.span_id;
        self.open_span(span, depth, proc.session, out);
        let p = self.processes.get_mut(image.tgid).expect("present");
        p.span = id;
        p.own_span = Some(id);
        p.depth = depth;
    }

    fn trace_of(&self, session: SessionId) -> crate::span::TraceId {
        self.sessions.get(&session).map(|s| s.trace_id).unwrap_or_default()
    }

    /// An `exec {name}` span for one image.
    fn process_span(&mut self, image: &Image<'_>, parent: SpanId, trace: crate::span::TraceId, ts: UnixNanos) -> Span {
        let mut span = Span {
            trace_id: trace,
            span_id: self.ids.span_id(),
            parent: Some(parent),
            name: format!("exec {}", display_bytes(file_name(&image.exe))),
            start: ts,
            ..Default::default()
        };
        self.describe_image(&mut span, image);
        if image.parent != 0 {
            span.set(sc::PROCESS_PARENT_PID, image.parent);
        }
        span
    }

    fn describe_image(&self, span: &mut Span, image: &Image<'_>) {
        span.set(sc::PROCESS_PID, image.tgid);
        span.set(sc::PROCESS_EXECUTABLE_PATH, display_bytes(&image.exe));
        span.set(sc::PROCESS_EXECUTABLE_NAME, display_bytes(file_name(&image.exe)));
        span.set(sc::PROCESS_COMMAND_ARGS, self.redactor.argv(&image.argv_strings()));
        if image.argv_truncated {
            span.set(sc::ARGV_TRUNCATED, true);
        }
        if let Some(cwd) = image.cwd {
            span.set(sc::PROCESS_WORKING_DIRECTORY, display_bytes(cwd));
        }
        span.set(sc::USER_ID, image.uid.to_string());
    }

    fn start_session(&mut self, image: Image<'_>, agent: String, how: Discovery, ts: UnixNanos, out: &mut Vec<Output>) {
        let id = SessionId(self.next_session);
        self.next_session += 1;
        let trace_id = self.ids.trace_id();
        let mut span = Span {
            trace_id,
            span_id: self.ids.span_id(),
            parent: None,
            name: format!("invoke_agent {agent}"),
            start: ts,
            ..Default::default()
        };
        span.set(sc::GEN_AI_OPERATION_NAME, sc::OP_INVOKE_AGENT);
        span.set(sc::GEN_AI_AGENT_NAME, agent.clone());
        self.describe_image(&mut span, &image);
        span.set(sc::SESSION_DISCOVERY, how.as_str());
        let root_span = span.span_id;
        self.sessions.insert(
            id,
            Session {
                id,
                agent: agent.clone(),
                trace_id,
                root_span,
                root_tgid: image.tgid,
                started: ts,
                live: 1,
                root_status: None,
                uid: image.uid,
                files: Default::default(),
                capture_gap: !self.capture_armed,
            },
        );
        let process = Process {
            tgid: image.tgid,
            start: ts,
            parent: image.parent,
            session: id,
            span: root_span,
            own_span: Some(root_span),
            depth: 0,
        };
        if let Some(stale) = self.processes.insert(process) {
            self.vanish(stale, ts, out);
        }
        out.push(Output::Track(image.tgid));
        out.push(Output::SessionStarted { session: id, root_tgid: image.tgid, agent });
        self.open_span(span, 0, id, out);
    }

    fn on_exit(&mut self, x: Exit, out: &mut Vec<Output>) {
        self.net_process_gone(x.tgid, x.ts);
        let Some(proc) = self.processes.remove(x.tgid) else { return };
        let root = self.sessions.get(&proc.session).map(|s| s.root_span);
        if let Some(span) = proc.own_span.filter(|s| Some(*s) != root) {
            self.end_span(span, x.ts, out, |span| describe_exit(span, x.status));
        }
        // The root span lasts as long as the root process, through any re-exec.
        if let Some(s) = self.sessions.get(&proc.session).filter(|s| s.root_tgid == proc.tgid) {
            let root = s.root_span;
            let mut summary = Span::default();
            self.describe_files(proc.session, &mut summary);
            self.end_span(root, x.ts, out, |span| {
                describe_exit(span, x.status);
                span.attributes.extend(summary.attributes);
            });
        }
        self.leave_session(&proc, Some(x.status), out);
    }

    /// A process disappeared without an exit event (pid reused while events were lost).
    fn vanish(&mut self, proc: Process, ts: UnixNanos, out: &mut Vec<Output>) {
        let root = self.sessions.get(&proc.session).filter(|s| s.root_tgid == proc.tgid).map(|s| s.root_span);
        let own = proc.own_span.filter(|s| Some(*s) != root);
        for span in [own, root].into_iter().flatten() {
            self.end_span(span, ts, out, |span| span.set(sc::INCOMPLETE, true));
        }
        self.leave_session(&proc, None, out);
    }

    fn leave_session(&mut self, proc: &Process, status: Option<u32>, out: &mut Vec<Output>) {
        let Some(session) = self.sessions.get_mut(&proc.session) else { return };
        session.live = session.live.saturating_sub(1);
        if proc.tgid == session.root_tgid && session.root_status.is_none() {
            session.root_status = Some(status.unwrap_or(0));
            out.push(Output::SessionEnded {
                session: session.id,
                root_tgid: session.root_tgid,
                agent: session.agent.clone(),
                status,
            });
        }
        if session.live == 0 {
            self.sessions.remove(&proc.session);
        }
    }

    fn open_span(&mut self, span: Span, depth: u32, session: SessionId, out: &mut Vec<Output>) {
        let agent = self.sessions.get(&session).map(|s| s.agent.clone()).unwrap_or_default();
        out.push(Output::SpanStarted { span: span.clone(), depth, agent });
        self.spans.insert(span.span_id, OpenSpan { span, depth, session });
    }

    fn end_span(&mut self, id: SpanId, ts: UnixNanos, out: &mut Vec<Output>, finish: impl FnOnce(&mut Span)) {
        let Some(mut open) = self.spans.remove(&id) else { return };
        open.span.end = ts.max(open.span.start);
        finish(&mut open.span);
        let agent = self.sessions.get(&open.session).map(|s| s.agent.clone()).unwrap_or_default();
        out.push(Output::SpanEnded { span: open.span, depth: open.depth, agent });
    }

    /// Adopts agents that were already running at start-up, with their descendants.
    pub fn adopt(&mut self, scanned: &[ScannedProcess], self_tgid: u32, out: &mut Vec<Output>) {
        let by_pid: HashMap<u32, &ScannedProcess> = scanned.iter().map(|p| (p.tgid, p)).collect();
        let mut roots: Vec<(&ScannedProcess, String)> = Vec::new();
        for p in scanned {
            if p.tgid == self_tgid || self.processes.contains(p.tgid) {
                continue;
            }
            let Some(agent) = self.agent_for(&scanned_image(p)) else { continue };
            // Only the outermost agent starts a session; nested ones belong to it.
            let mut ancestor = by_pid.get(&p.ppid).copied();
            let mut nested = false;
            for _ in 0..by_pid.len() {
                let Some(a) = ancestor else { break };
                if self.agent_for(&scanned_image(a)).is_some() || self.processes.contains(a.tgid) {
                    nested = true;
                    break;
                }
                ancestor = by_pid.get(&a.ppid).copied();
            }
            if !nested {
                roots.push((p, agent));
            }
        }
        roots.sort_by_key(|(p, _)| (p.start, p.tgid));
        for (root, agent) in roots {
            let mut image = scanned_image(root);
            image.parent = root.ppid;
            self.start_session(image, agent, Discovery::Procfs, root.start, out);
        }
        // Descendants of every session, new or not (a child forked after an earlier scan):
        // in start order, so parents come first.
        let mut rest: Vec<&ScannedProcess> = scanned.iter().filter(|p| p.tgid != self_tgid).collect();
        rest.sort_by_key(|p| (p.start, p.tgid));
        loop {
            let before = self.processes.len();
            for p in &rest {
                if !self.processes.contains(p.tgid) && self.processes.contains(p.ppid) {
                    self.adopt_child(p, out);
                }
            }
            if self.processes.len() == before {
                break;
            }
        }
    }

    fn adopt_child(&mut self, p: &ScannedProcess, out: &mut Vec<Output>) {
        let Some(parent) = self.processes.get(p.ppid).cloned() else { return };
        let mut image = scanned_image(p);
        image.parent = p.ppid;
        let span = self.process_span(&image, parent.span, self.trace_of(parent.session), p.start);
        let id = span.span_id;
        self.open_span(span, parent.depth + 1, parent.session, out);
        self.processes.insert(Process {
            tgid: p.tgid,
            start: p.start,
            parent: p.ppid,
            session: parent.session,
            span: id,
            own_span: Some(id),
            depth: parent.depth + 1,
        });
        if let Some(s) = self.sessions.get_mut(&parent.session) {
            s.live += 1;
        }
        out.push(Output::Track(p.tgid));
    }

    /// Syscall capture was detached (on-demand arming): sessions starting now are not yet
    /// observed beyond their process tree.
    pub fn capture_disarmed(&mut self) {
        self.capture_armed = false;
    }

    /// Syscall capture is attached from `now` on; sessions that started before record the gap.
    pub fn capture_armed(&mut self, now: UnixNanos) {
        self.capture_armed = true;
        let late: Vec<(SpanId, u64)> = self
            .sessions
            .values()
            .filter(|s| s.capture_gap)
            .map(|s| (s.root_span, now.saturating_sub(s.started)))
            .collect();
        for s in self.sessions.values_mut() {
            s.capture_gap = false;
        }
        for (root, gap) in late {
            if let Some(open) = self.spans.get_mut(&root) {
                open.span.set(sc::CAPTURE_ARMED_LATE_NS, gap);
            }
        }
    }

    /// Periodic work; `now` is the current Unix time.
    pub fn tick(&mut self, now: UnixNanos, out: &mut Vec<Output>) {
        self.due_hashes(now, out);
        self.net_tick(now, out);
    }

    /// Records kernel losses on every live session's root span.
    pub fn note_losses(&mut self, events_lost: u64) {
        let roots: Vec<SpanId> = self.sessions.values().map(|s| s.root_span).collect();
        for id in roots {
            if let Some(open) = self.spans.get_mut(&id) {
                open.span.set(sc::EVENTS_LOST, events_lost);
            }
        }
    }

    /// Ends everything still open at `now`, marked incomplete.
    /// File spans waiting for a hash come out as [`Output::HashFile`]; answer them all with
    /// [`Correlator::hash_done`] to get their spans.
    pub fn shutdown(&mut self, now: UnixNanos, out: &mut Vec<Output>) {
        self.flush_files(now, out);
        self.flush_net(now, out);
        let roots: Vec<(SessionId, SpanId)> = self.sessions.values().map(|s| (s.id, s.root_span)).collect();
        for (session, root) in roots {
            let mut summary = Span::default();
            self.describe_files(session, &mut summary);
            if let Some(open) = self.spans.get_mut(&root) {
                open.span.attributes.extend(summary.attributes);
            }
        }
        let mut open: Vec<(u32, SpanId)> = self.spans.values().map(|o| (o.depth, o.span.span_id)).collect();
        // Children first, so a reader sees leaves end before their parents.
        open.sort_by(|a, b| b.cmp(a));
        for (_, id) in open {
            self.end_span(id, now, out, |span| span.set(sc::INCOMPLETE, true));
        }
        let mut sessions: Vec<Session> = self.sessions.drain().map(|(_, s)| s).collect();
        sessions.sort_by_key(|s| s.id);
        for s in sessions {
            if s.root_status.is_none() {
                out.push(Output::SessionEnded { session: s.id, root_tgid: s.root_tgid, agent: s.agent, status: None });
            }
        }
        self.processes.drain().for_each(drop);
    }
}

fn scanned_image(p: &ScannedProcess) -> Image<'_> {
    Image {
        tgid: p.tgid,
        parent: 0,
        exe: p.exe.clone(),
        argv: &p.argv,
        argv_truncated: false,
        cwd: (!p.cwd.is_empty()).then_some(p.cwd.as_slice()),
        comm: &p.comm,
        uid: p.uid,
    }
}

/// Exit attributes and status from a wait(2) status.
pub fn describe_exit(span: &mut Span, status: u32) {
    let signal = status & 0x7f;
    if signal == 0 {
        let code = (status >> 8) & 0xff;
        span.set(sc::PROCESS_EXIT_CODE, code);
        span.status = if code == 0 { Status::Unset } else { Status::Error(format!("exit code {code}")) };
    } else {
        let name = signal_name(signal);
        span.set(sc::PROCESS_EXIT_CODE, 128 + signal);
        span.set(sc::EXIT_SIGNAL, name.clone());
        span.set(sc::EXIT_SIGNAL_NUMBER, signal);
        if status & 0x80 != 0 {
            span.set(sc::EXIT_CORE_DUMPED, true);
        }
        span.status = Status::Error(format!("killed by {name}"));
    }
}

pub fn signal_name(signal: u32) -> String {
    const NAMES: [&str; 32] = [
        "", "SIGHUP", "SIGINT", "SIGQUIT", "SIGILL", "SIGTRAP", "SIGABRT", "SIGBUS", "SIGFPE",
        "SIGKILL", "SIGUSR1", "SIGSEGV", "SIGUSR2", "SIGPIPE", "SIGALRM", "SIGTERM", "SIGSTKFLT",
        "SIGCHLD", "SIGCONT", "SIGSTOP", "SIGTSTP", "SIGTTIN", "SIGTTOU", "SIGURG", "SIGXCPU",
        "SIGXFSZ", "SIGVTALRM", "SIGPROF", "SIGWINCH", "SIGIO", "SIGPWR", "SIGSYS",
    ];
    match NAMES.get(signal as usize) {
        Some(n) if !n.is_empty() => (*n).to_owned(),
        _ => format!("SIGRT{signal}"),
    }
}

#[cfg(test)]
mod tests;
