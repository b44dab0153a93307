use super::*;
use crate::{
    config::Config,
    intake::{Exec, Exit, Fork, KernelPath},
    span::RandomIds,
};

fn correlator(toml: &str) -> Correlator {
    let config = Config::parse(toml, std::path::Path::new("t.toml")).unwrap();
    Correlator::new(Matcher::new(&config).unwrap(), Redactor::default(), Box::new(RandomIds::seeded(7)))
}

fn exec(tgid: u32, ts: u64, filename: &str, argv: &[&str], candidate: bool) -> Event {
    Event::Exec(Exec {
        ts,
        tgid,
        uid: 1000,
        candidate,
        filename: filename.as_bytes().to_vec(),
        argv: argv.iter().map(|a| a.as_bytes().to_vec()).collect(),
        cwd: KernelPath { bytes: b"/work".to_vec(), ..Default::default() },
        comm: crate::catalogue::comm_of(crate::catalogue::basename(filename)),
        ..Default::default()
    })
}

fn fork(parent: u32, child: u32, ts: u64) -> Event {
    Event::Fork(Fork { ts, parent, child })
}

fn exit(tgid: u32, ts: u64, status: u32) -> Event {
    Event::Exit(Exit { ts, tgid, status })
}

fn run(c: &mut Correlator, events: Vec<Event>) -> Vec<Output> {
    let mut out = Vec::new();
    for e in events {
        c.handle(e, &mut out);
    }
    out
}

fn ended(out: &[Output]) -> Vec<&Span> {
    out.iter()
        .filter_map(|o| match o {
            Output::SpanEnded { span, .. } => Some(span),
            _ => None,
        })
        .collect()
}

fn by_name<'a>(spans: &[&'a Span], name: &str) -> &'a Span {
    spans.iter().find(|s| s.name == name).unwrap_or_else(|| panic!("no span {name}"))
}

#[test]
fn an_agent_session_becomes_a_causal_tree() {
    let mut c = correlator("");
    let out = run(
        &mut c,
        vec![
            exec(10, 100, "/usr/bin/claude", &["claude", "-p", "hi"], true),
            fork(10, 11, 110),
            exec(11, 120, "/bin/sh", &["sh", "-c", "exit 3"], false),
            fork(11, 12, 130),
            exec(12, 140, "/bin/ls", &["ls"], false),
            exit(12, 150, 0),
            exit(11, 160, 3 << 8),
            exit(10, 200, 0),
        ],
    );
    assert!(matches!(out[0], Output::Track(10)));
    let spans = ended(&out);
    assert_eq!(spans.len(), 3);
    let root = by_name(&spans, "invoke_agent claude-code");
    let sh = by_name(&spans, "exec sh");
    let ls = by_name(&spans, "exec ls");
    assert_eq!(root.parent, None);
    assert_eq!(sh.parent, Some(root.span_id));
    assert_eq!(ls.parent, Some(sh.span_id));
    assert!(spans.iter().all(|s| s.trace_id == root.trace_id));
    assert_eq!(root.get_str(sc::GEN_AI_OPERATION_NAME), Some("invoke_agent"));
    assert_eq!(root.get_str(sc::GEN_AI_AGENT_NAME), Some("claude-code"));
    assert_eq!((root.start, root.end), (100, 200));
    assert_eq!((sh.start, sh.end), (120, 160));
    assert_eq!(sh.get_int(sc::PROCESS_EXIT_CODE), Some(3));
    assert_eq!(sh.get_int(sc::PROCESS_PARENT_PID), Some(10));
    assert_eq!(sh.status, Status::Error("exit code 3".into()));
    assert_eq!(ls.status, Status::Unset);
    assert_eq!(
        sh.get(sc::PROCESS_COMMAND_ARGS),
        Some(&crate::span::Value::StrArray(vec!["sh".into(), "-c".into(), "exit 3".into()]))
    );
    assert!(matches!(out.last(), Some(Output::SessionEnded { status: Some(0), .. })));
    assert_eq!(c.live_sessions(), 0);
}

#[test]
fn signals_are_reported_as_errors_with_their_name() {
    let mut c = correlator("");
    let out = run(
        &mut c,
        vec![
            exec(10, 1, "/usr/bin/claude", &["claude"], true),
            fork(10, 11, 2),
            exec(11, 3, "/bin/sleep", &["sleep", "100"], false),
            exit(11, 4, 9),
        ],
    );
    let sleep = by_name(&ended(&out), "exec sleep").clone();
    assert_eq!(sleep.get_int(sc::PROCESS_EXIT_CODE), Some(137));
    assert_eq!(sleep.get_str(sc::EXIT_SIGNAL), Some("SIGKILL"));
    assert_eq!(sleep.status, Status::Error("killed by SIGKILL".into()));
}

#[test]
fn non_agents_are_untracked_with_anything_they_forked_meanwhile() {
    let mut c = correlator("");
    let out = run(
        &mut c,
        vec![exec(20, 1, "/usr/bin/node", &["node", "server.js"], true), fork(20, 21, 2), exec(21, 3, "/bin/ls", &["ls"], false)],
    );
    assert!(matches!(out[0], Output::Untrack(20)));
    assert!(matches!(out[1], Output::Untrack(21)));
    assert!(matches!(out[2], Output::Untrack(21)));
    assert!(ended(&out).is_empty());
    assert!(!c.is_tracked(20) && !c.is_tracked(21));
}

#[test]
fn a_fork_without_exec_makes_no_span_and_keeps_its_parents_attribution() {
    let mut c = correlator("");
    let out = run(
        &mut c,
        vec![
            exec(10, 1, "/usr/bin/claude", &["claude"], true),
            fork(10, 11, 2),
            exec(11, 3, "/bin/bash", &["bash"], false),
            fork(11, 12, 4), // subshell
            fork(12, 13, 5),
            exec(13, 6, "/bin/true", &["true"], false),
            exit(13, 7, 0),
            exit(12, 8, 0),
            exit(11, 9, 0),
        ],
    );
    let spans = ended(&out);
    assert_eq!(spans.len(), 2, "bash and true; the subshell has none");
    assert_eq!(by_name(&spans, "exec true").parent, Some(by_name(&spans, "exec bash").span_id));
}

#[test]
fn re_exec_replaces_the_image_span() {
    let mut c = correlator("");
    let out = run(
        &mut c,
        vec![
            exec(10, 1, "/usr/bin/claude", &["claude"], true),
            fork(10, 11, 2),
            exec(11, 3, "/usr/bin/env", &["env", "python3", "x.py"], false),
            exec(11, 4, "/usr/bin/python3", &["python3", "x.py"], false),
            exit(11, 5, 0),
        ],
    );
    let spans = ended(&out);
    let env = by_name(&spans, "exec env");
    let py = by_name(&spans, "exec python3");
    assert_eq!(env.end, 4);
    assert_eq!(env.get(sc::REPLACED_BY_EXEC), Some(&crate::span::Value::Bool(true)));
    assert_eq!(py.parent, Some(env.span_id));
}

#[test]
fn the_root_span_survives_a_root_re_exec() {
    let mut c = correlator("");
    let out = run(
        &mut c,
        vec![
            exec(10, 1, "/usr/local/bin/codex", &["node", "/usr/local/bin/codex"], true),
            exec(10, 2, "/usr/bin/node", &["node", "/usr/lib/node_modules/@openai/codex/bin/codex.js"], false),
            exit(10, 9, 0),
        ],
    );
    let spans = ended(&out);
    assert_eq!(spans.len(), 2);
    assert_eq!(by_name(&spans, "invoke_agent codex").end, 9);
    assert_eq!(by_name(&spans, "exec node").end, 9);
}

#[test]
fn watch_sessions_start_on_any_exec() {
    let mut c = correlator("");
    c.expect_session(30, "build.sh");
    let out = run(&mut c, vec![exec(30, 1, "./build.sh", &["./build.sh"], false), exit(30, 2, 0)]);
    let spans = ended(&out);
    let root = by_name(&spans, "invoke_agent build.sh");
    assert_eq!(root.get_str(sc::PROCESS_EXECUTABLE_PATH), Some("/work/build.sh"));
    assert_eq!(root.get_str(sc::SESSION_DISCOVERY), Some("watch"));
}

#[test]
fn secrets_in_argv_never_reach_a_span() {
    let mut c = correlator("");
    let out = run(
        &mut c,
        vec![exec(10, 1, "/usr/bin/claude", &["claude", "--api-key", "sk-ant-api03-0123456789abcdef"], true), exit(10, 2, 0)],
    );
    let root = ended(&out)[0].clone();
    let args = format!("{:?}", root.get(sc::PROCESS_COMMAND_ARGS));
    assert!(!args.contains("sk-ant"), "{args}");
    assert!(args.contains("[REDACTED]"));
}

#[test]
fn pid_reuse_ends_the_stale_process() {
    let mut c = correlator("");
    let out = run(
        &mut c,
        vec![
            exec(10, 1, "/usr/bin/claude", &["claude"], true),
            fork(10, 11, 2),
            exec(11, 3, "/bin/sleep", &["sleep"], false),
            // The exit of 11 was lost; 11 is reused.
            fork(10, 11, 4),
        ],
    );
    let sleep = by_name(&ended(&out), "exec sleep").clone();
    assert_eq!(sleep.get(sc::INCOMPLETE), Some(&crate::span::Value::Bool(true)));
    assert!(c.is_tracked(11));
}

#[test]
fn shutdown_ends_everything_as_incomplete() {
    let mut c = correlator("");
    let mut out = run(
        &mut c,
        vec![exec(10, 1, "/usr/bin/claude", &["claude"], true), fork(10, 11, 2), exec(11, 3, "/bin/sleep", &["sleep"], false)],
    );
    c.shutdown(50, &mut out);
    let spans = ended(&out);
    assert_eq!(spans.len(), 2);
    assert!(spans.iter().all(|s| s.end == 50 && s.get(sc::INCOMPLETE).is_some()));
    assert_eq!(spans[0].name, "exec sleep", "children end first");
    assert!(matches!(out.last(), Some(Output::SessionEnded { status: None, .. })));
    assert_eq!(c.live_processes(), 0);
}

#[test]
fn running_agents_are_adopted_with_their_descendants() {
    let mut c = correlator("");
    let p = |tgid, ppid, start, exe: &str, argv: &[&str]| ScannedProcess {
        tgid,
        ppid,
        start,
        exe: exe.as_bytes().to_vec(),
        argv: argv.iter().map(|a| a.as_bytes().to_vec()).collect(),
        cwd: b"/w".to_vec(),
        comm: crate::catalogue::comm_of(crate::catalogue::basename(exe)),
        uid: 0,
    };
    let scanned = vec![
        p(1, 0, 0, "/sbin/init", &["init"]),
        p(5, 1, 1, "/bin/bash", &["bash"]),
        p(10, 5, 2, "/usr/bin/claude", &["claude"]),
        p(11, 10, 3, "/bin/sh", &["sh", "-c", "x"]),
        p(12, 11, 4, "/usr/bin/codex", &["codex"]),
        p(13, 12, 5, "/bin/sleep", &["sleep", "9"]),
        p(20, 5, 6, "/bin/sleep", &["sleep", "1"]),
    ];
    let mut out = Vec::new();
    c.adopt(&scanned, 999, &mut out);
    let tracked: Vec<u32> = out.iter().filter_map(|o| if let Output::Track(t) = o { Some(*t) } else { None }).collect();
    assert_eq!(tracked.len(), 4);
    for t in [10, 11, 12, 13] {
        assert!(tracked.contains(&t) && c.is_tracked(t), "{t}");
    }
    assert!(!c.is_tracked(20) && !c.is_tracked(5));
    assert_eq!(out.iter().filter(|o| matches!(o, Output::SessionStarted { .. })).count(), 1, "codex is nested");
    c.handle(exit(13, 10, 0), &mut out);
    let sleep = by_name(&ended(&out), "exec sleep").clone();
    assert_eq!(sleep.start, 5);

    // A later scan finds a child forked meanwhile, under an existing session.
    let mut later: Vec<ScannedProcess> = scanned.iter().filter(|s| s.tgid != 13).cloned().collect();
    later.push(p(14, 11, 7, "/bin/cat", &["cat"]));
    let mut out = Vec::new();
    c.adopt(&later, 999, &mut out);
    assert!(c.is_tracked(14));
    assert_eq!(out.iter().filter(|o| matches!(o, Output::SessionStarted { .. })).count(), 0);
    let cat = out.iter().find_map(|o| if let Output::SpanStarted { span, .. } = o { Some(span.clone()) } else { None }).unwrap();
    assert_eq!(cat.name, "exec cat");
}

mod files {
    use super::*;
    use crate::{
        correlate::{HashOutcome, files::HASH_GRACE_NS, noise::Noise},
        intake::{CloseHow, FileClose, FileHandle, FileOp, FileOpKind, FileOpen, FileWriteStart, OpPath},
    };

    fn with_files() -> Correlator {
        let homes = [(1000u32, b"/home/u".to_vec())].into_iter().collect();
        correlator("").with_files(FilesPolicy {
            noise: Noise::new(vec!["~/.claude".into(), "/proc".into()], homes),
            hash_max_bytes: 1 << 20,
        })
    }

    fn path(p: &str) -> KernelPath {
        KernelPath { bytes: p.as_bytes().to_vec(), ..Default::default() }
    }

    fn handle(file: u64) -> FileHandle {
        FileHandle { file, ino: 77, dev: 5, fd: 3 }
    }

    fn open(tgid: u32, ts: u64, file: u64, p: &str, flags: u32, created: bool) -> Event {
        Event::FileOpen(FileOpen { ts, tgid, handle: handle(file), flags, created, size: 0, path: path(p) })
    }

    fn close(tgid: u32, ts: u64, file: u64, bytes: u64, how: CloseHow) -> Event {
        Event::FileClose(FileClose {
            ts,
            tgid,
            handle: handle(file),
            bytes,
            writes: u64::from(bytes > 0),
            first_write: if bytes > 0 { ts - 1 } else { 0 },
            last_write: if bytes > 0 { ts - 1 } else { 0 },
            size: bytes as i64,
            how,
        })
    }

    fn rename(tgid: u32, ts: u64, from: &str, to: &str) -> Event {
        Event::FileOp(FileOp {
            ts,
            tgid,
            kind: FileOpKind::Rename,
            a: OpPath { base: path("/w"), name: from.as_bytes().to_vec(), name_truncated: false },
            b: Some(OpPath { base: path("/w"), name: to.as_bytes().to_vec(), name_truncated: false }),
            flags: 0,
            value: 0,
            handle: None,
        })
    }

    fn hashes(out: &[Output]) -> Vec<HashRequest> {
        out.iter().filter_map(|o| if let Output::HashFile(r) = o { Some(r.clone()) } else { None }).collect()
    }

    #[test]
    fn a_write_episode_waits_for_its_hash_and_follows_a_rename() {
        let mut c = with_files();
        let mut out = run(
            &mut c,
            vec![
                exec(10, 1, "/usr/bin/claude", &["claude"], true),
                open(10, 10, 0xa, "/w/.tmp123", 0o1101, true),
                close(10, 20, 0xa, 12, CloseHow::Close),
                rename(10, 21, ".tmp123", "final.txt"),
            ],
        );
        assert!(!ended(&out).iter().any(|s| s.name == "file write"), "held for its hash");
        c.tick(20 + HASH_GRACE_NS - 1, &mut out);
        assert!(hashes(&out).is_empty(), "not before the grace period");
        c.tick(20 + HASH_GRACE_NS, &mut out);
        let req = hashes(&out).pop().expect("a hash request");
        assert_eq!(req.path, b"/w/final.txt", "the rename was followed");
        c.hash_done(req.id, HashOutcome::Hashed { sha256: [7; 32], size: 12, same_inode: true, mtime_ns: 19 }, &mut out);
        let spans = ended(&out);
        let w = by_name(&spans, "file write");
        assert_eq!(w.get_str(sc::FILE_PATH), Some("/w/.tmp123"));
        assert_eq!(w.get_str(sc::FILE_RENAMED_TO), Some("/w/final.txt"));
        assert_eq!(w.get_str(sc::FILE_HASH_STATUS), Some("ok"));
        assert_eq!(w.get_str(sc::FILE_SHA256), Some(hex::encode([7u8; 32]).as_str()));
        assert_eq!(w.get_int(sc::FILE_BYTES_WRITTEN), Some(12));
        assert_eq!((w.start, w.end), (10, 20));
        let r = by_name(&spans, "file rename");
        assert_eq!(r.get_str(sc::FILE_TARGET_PATH), Some("/w/final.txt"));
    }

    #[test]
    fn a_close_that_is_not_the_last_keeps_the_episode_open() {
        let mut c = with_files();
        let mut out = run(
            &mut c,
            vec![
                exec(10, 1, "/usr/bin/claude", &["claude"], true),
                open(10, 10, 0xa, "/w/f", 0o1101, true),
                close(10, 11, 0xa, 0, CloseHow::NotLast),
                Event::FileWriteStart(FileWriteStart { ts: 12, tgid: 10, handle: handle(0xa), path: path("/w/f") }),
                close(10, 13, 0xa, 3, CloseHow::DupOver),
            ],
        );
        c.tick(u64::MAX / 2, &mut out);
        for r in hashes(&out) {
            c.hash_done(r.id, HashOutcome::Gone, &mut out);
        }
        let spans = ended(&out);
        let writes: Vec<_> = spans.iter().filter(|s| s.name == "file write").collect();
        assert_eq!(writes.len(), 1, "one episode for open, dup, close, write, close");
        assert_eq!(writes[0].get_int(sc::FILE_BYTES_WRITTEN), Some(3));
        assert_eq!(writes[0].get(sc::FILE_CREATED), Some(&crate::span::Value::Bool(true)));
        assert_eq!(writes[0].get_str(sc::FILE_HASH_STATUS), Some("gone"));
    }

    #[test]
    fn opens_without_change_and_noise_make_no_spans_but_noise_is_counted() {
        let mut c = with_files();
        let mut out = run(
            &mut c,
            vec![
                exec(10, 1, "/usr/bin/claude", &["claude"], true),
                open(10, 2, 0xa, "/w/db.sqlite", 0o2, false), // O_RDWR, nothing written
                close(10, 3, 0xa, 0, CloseHow::Close),
                open(10, 4, 0xb, "/home/u/.claude/state.json", 0o1101, true),
                close(10, 5, 0xb, 100, CloseHow::Close),
                exit(10, 9, 0),
            ],
        );
        c.tick(u64::MAX / 2, &mut out);
        assert!(hashes(&out).is_empty());
        let spans = ended(&out);
        assert_eq!(spans.len(), 1, "only the session");
        let root = spans[0];
        assert_eq!(root.get_int(sc::FILES_NOISE_CHANGES), Some(1));
        assert_eq!(root.get_int(sc::FILES_CREATED), Some(0));
        assert_eq!(root.get_int(sc::FILES_BYTES_WRITTEN), Some(100));
    }

    #[test]
    fn hash_outcomes_become_markers() {
        let mut c = with_files();
        let mut out = run(
            &mut c,
            vec![
                exec(10, 1, "/usr/bin/claude", &["claude"], true),
                open(10, 2, 0xa, "/w/a", 0o1101, true),
                close(10, 3, 0xa, 1, CloseHow::Close),
                open(10, 4, 0xb, "/w/b", 0o1101, true),
                close(10, 5, 0xb, 1, CloseHow::Close),
                open(10, 6, 0xc, "/w/c", 0o1101, true),
                close(10, 7, 0xc, 1, CloseHow::Close),
            ],
        );
        c.tick(u64::MAX / 2, &mut out);
        let reqs = hashes(&out);
        assert_eq!(reqs.len(), 3);
        c.hash_done(reqs[0].id, HashOutcome::TooLarge { size: 9 << 20 }, &mut out);
        c.hash_done(reqs[1].id, HashOutcome::Hashed { sha256: [0; 32], size: 1, same_inode: false, mtime_ns: 0 }, &mut out);
        let late = 7 + 1_000_000_000;
        c.hash_done(reqs[2].id, HashOutcome::Hashed { sha256: [0; 32], size: 1, same_inode: true, mtime_ns: late }, &mut out);
        let status: Vec<Option<&str>> = ended(&out).iter().map(|s| s.get_str(sc::FILE_HASH_STATUS)).collect();
        assert_eq!(status, vec![Some("too-large"), Some("replaced"), Some("changed-after-close")]);
    }

    #[test]
    fn shutdown_requests_every_pending_hash_and_closes_open_episodes() {
        let mut c = with_files();
        let mut out = run(
            &mut c,
            vec![exec(10, 1, "/usr/bin/claude", &["claude"], true), open(10, 2, 0xa, "/w/open.log", 0o2101, true)],
        );
        c.shutdown(50, &mut out);
        let reqs = hashes(&out);
        assert_eq!(reqs.len(), 1);
        c.hash_done(reqs[0].id, HashOutcome::Gone, &mut out);
        assert_eq!(c.pending_hashes(), 0);
        let w = by_name(&ended(&out), "file write").clone();
        assert_eq!(w.get(sc::INCOMPLETE), Some(&crate::span::Value::Bool(true)));
    }
}

mod net {
    use super::*;
    use crate::{
        correlate::net::GAP_GRACE_NS,
        decode::Segment,
        intake::{
            Conn, Direction, SockClose, SockCounters, SockOpen, TlsAssoc, TlsCoverage, TlsLibraryState, TlsProbeStatus,
        },
    };

    fn open(tgid: u32, sk: u64, ts: u64) -> Event {
        Event::SockOpen(SockOpen {
            ts,
            tgid,
            sk,
            fd: 5,
            connected: true,
            local: "127.0.0.1:40000".parse().unwrap(),
            remote: "10.0.0.7:443".parse().unwrap(),
        })
    }

    fn close(tgid: u32, sk: u64, ts: u64) -> Event {
        Event::SockClose(SockClose {
            ts,
            tgid,
            sk,
            counters: SockCounters { bytes_sent: 900, bytes_recv: 4000, tls: true, ..Default::default() },
            at_exit: false,
        })
    }

    fn segment(tgid: u32, conn: Conn, dir: Direction, bytes: &[u8]) -> Event {
        Event::Segment(Segment { ts: 3, tgid, conn, dir, library: 1, bytes: bytes.to_vec(), lost: 0 })
    }

    fn hello() -> Vec<u8> {
        crate::decode::tls_hello::tests::client_hello("api.example.com", &["h2", "http/1.1"], false)
    }

    fn conn_span(out: &[Output]) -> Span {
        ended(out).into_iter().find(|s| s.name.starts_with("connection ")).expect("a connection span").clone()
    }

    #[test]
    fn a_captured_tls_connection_has_its_server_name_and_plaintext() {
        let mut c = correlator("");
        let out = run(
            &mut c,
            vec![
                exec(10, 1, "/usr/bin/claude", &["claude"], true),
                open(10, 0x50, 2),
                segment(10, Conn::Socket(0x50), Direction::Send, &hello()),
                Event::TlsAssoc(TlsAssoc { ts: 3, tgid: 10, tls: 0x77, sk: 0x50, inside_call: true }),
                segment(10, Conn::Tls(0x77), Direction::Send, b"POST /v1/messages HTTP/1.1\r\n\r\n"),
                close(10, 0x50, 9),
            ],
        );
        let span = conn_span(&out);
        assert_eq!(span.name, "connection api.example.com:443");
        assert_eq!(span.kind, crate::span::SpanKind::Client);
        assert_eq!(span.get_str(sc::TLS_SERVER_NAME), Some("api.example.com"));
        assert_eq!(span.get_str(sc::TLS_PLAINTEXT), Some("captured"));
        assert_eq!(span.get_str(sc::TLS_LIBRARY), Some("openssl"));
        assert_eq!(span.get_str(sc::NETWORK_PEER_ADDRESS), Some("10.0.0.7"));
        assert_eq!(span.get_int(sc::CONN_BYTES_RECEIVED), Some(4000));
        assert_eq!((span.start, span.end), (2, 9));
    }

    #[test]
    fn a_gap_waits_for_discovery_and_says_why() {
        let mut c = correlator("");
        let mut out = run(
            &mut c,
            vec![
                exec(10, 1, "/usr/bin/codex", &["codex"], true),
                open(10, 0x50, 2),
                segment(10, Conn::Socket(0x50), Direction::Send, &hello()),
                close(10, 0x50, 9),
            ],
        );
        assert!(ended(&out).iter().all(|s| !s.name.starts_with("connection")), "held while discovery runs");
        c.handle(
            Event::TlsCoverage(TlsCoverage {
                ts: 10,
                tgid: 10,
                libraries: vec![TlsLibraryState { library: "rustls".into(), path: "/usr/bin/codex".into(), status: TlsProbeStatus::Unsupported }],
            }),
            &mut out,
        );
        c.tick(9 + GAP_GRACE_NS, &mut out);
        let span = conn_span(&out);
        assert_eq!(span.get_str(sc::TLS_PLAINTEXT), Some("missing"));
        assert_eq!(span.get_str(sc::TLS_GAP_REASON), Some("unsupported-tls-library"));
        assert_eq!(span.get_str(sc::TLS_LIBRARY), Some("rustls"));
    }

    #[test]
    fn late_and_failed_probes_are_told_apart() {
        for (status, reason) in [
            (TlsProbeStatus::Attached(50), "probe-attached-late"),
            (TlsProbeStatus::Failed("EPERM".into()), "probe-failed"),
            (TlsProbeStatus::Attached(1), "not-observed"),
        ] {
            let mut c = correlator("");
            let mut out = run(&mut c, vec![exec(10, 1, "/usr/bin/claude", &["claude"], true)]);
            c.handle(
                Event::TlsCoverage(TlsCoverage {
                    ts: 1,
                    tgid: 10,
                    libraries: vec![TlsLibraryState { library: "boringssl".into(), path: "/claude".into(), status }],
                }),
                &mut out,
            );
            for e in [open(10, 0x50, 5), segment(10, Conn::Socket(0x50), Direction::Send, &hello()), close(10, 0x50, 9)] {
                c.handle(e, &mut out);
            }
            c.tick(u64::MAX / 2, &mut out);
            assert_eq!(conn_span(&out).get_str(sc::TLS_GAP_REASON), Some(reason));
        }
    }

    #[test]
    fn plain_connections_count_their_bytes() {
        let mut c = correlator("");
        let out = run(
            &mut c,
            vec![
                exec(10, 1, "/usr/bin/aider", &["aider"], true),
                open(10, 0x60, 2),
                segment(10, Conn::Socket(0x60), Direction::Send, b"POST /api/chat HTTP/1.1\r\n\r\n"),
                segment(10, Conn::Socket(0x60), Direction::Recv, b"HTTP/1.1 200 OK\r\n\r\n"),
                Event::SockClose(SockClose { ts: 4, tgid: 10, sk: 0x60, counters: SockCounters::default(), at_exit: true }),
            ],
        );
        let span = conn_span(&out);
        assert_eq!(span.get(sc::CONN_TLS), Some(&crate::span::Value::Bool(false)));
        assert_eq!(span.get_int(sc::CONN_PLAINTEXT_BYTES), Some(27 + 19));
    }
}
