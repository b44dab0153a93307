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
}
