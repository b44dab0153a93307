//! Issue 2: agent sessions as process-tree traces, end to end on the real kernel.

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use agent_observer_tests::{
    daemon::{Daemon, watch},
    kernel_lock,
    otlp::{SpanRec, session_in},
    script,
};

const STORM: usize = 200;

/// The workload every session runs: a failing shell, a SIGKILLed sleep and a fork storm.
fn workload() -> String {
    format!(
        r#"sh -c 'echo hi > f; ls; exit 3'
sleep 30 &
SLEEPER=$!
sleep 0.3
kill -9 $SLEEPER
wait $SLEEPER
i=0
while [ $i -lt {STORM} ]; do /bin/true storm-$i & i=$((i+1)); done
wait
exit 0"#
    )
}

/// Runs processes outside any agent tree while `f` runs.
fn with_outsider<T>(f: impl FnOnce() -> T) -> T {
    let mut outsider = Command::new("sh")
        .args(["-c", "i=0; while [ $i -lt 100 ]; do /bin/true outsider-marker; i=$((i+1)); done"])
        .spawn()
        .expect("outsider");
    let result = f();
    outsider.wait().expect("outsider wait");
    result
}

/// Checks the whole causal tree the workload must produce.
fn assert_workload_tree(root: &SpanRec, trace: &[&SpanRec], dir: &Path, root_exe: &Path, root_exit: i64) {
    let root_pid = root.pid();
    assert_eq!(root.str("process.executable.path"), Some(root_exe.to_str().unwrap()));
    assert_eq!(root.str("process.working_directory"), dir.to_str());
    assert_eq!(root.int("process.exit.code"), Some(root_exit));
    assert!(root.str("user.id").is_some());
    assert!(root.end > root.start);

    let children_of = |parent: &SpanRec| -> Vec<&SpanRec> {
        trace.iter().copied().filter(|s| s.parent == parent.span_id && s.name.starts_with("exec ")).collect()
    };
    let direct = children_of(root);

    // sh -c '…; exit 3' with ls under it.
    let sh: Vec<&SpanRec> = direct.iter().copied().filter(|s| s.name == "exec sh").collect();
    assert_eq!(sh.len(), 1, "{direct:#?}");
    let sh = sh[0];
    assert_eq!(sh.args(), ["sh", "-c", "echo hi > f; ls; exit 3"]);
    assert_eq!(sh.int("process.exit.code"), Some(3));
    assert_eq!(sh.int("process.parent_pid"), Some(root_pid));
    assert_eq!(sh.status_code, 2, "non-zero exit is an error");
    let ls = children_of(sh);
    assert_eq!(ls.len(), 1);
    assert_eq!(ls[0].name, "exec ls");
    assert_eq!(ls[0].int("process.parent_pid"), Some(sh.pid()));
    assert_eq!(ls[0].int("process.exit.code"), Some(0));
    assert!(ls[0].start >= sh.start && ls[0].end <= sh.end);
    // sh's `echo hi > f` is a file change under sh.
    let f = dir.join("f");
    let write = trace.iter().find(|s| s.name == "file write" && s.str("file.path") == f.to_str()).expect("write of f");
    assert_eq!(write.parent, sh.span_id);
    assert_eq!(write.int("agent_observer.file.bytes_written"), Some(3));

    // The SIGKILLed sleep.
    let killed: Vec<&SpanRec> = direct.iter().copied().filter(|s| s.args() == ["sleep", "30"]).collect();
    assert_eq!(killed.len(), 1, "{direct:#?}");
    assert_eq!(killed[0].str("agent_observer.process.exit.signal"), Some("SIGKILL"));
    assert_eq!(killed[0].int("process.exit.code"), Some(137));
    assert_eq!(killed[0].status_code, 2);

    // The storm: every one, once, with its own argv.
    let mut storm: Vec<String> = direct
        .iter()
        .filter(|s| s.name == "exec true")
        .map(|s| {
            assert_eq!(s.int("process.exit.code"), Some(0));
            assert_eq!(s.int("process.parent_pid"), Some(root_pid));
            s.args()[1].clone()
        })
        .collect();
    storm.sort();
    let mut expected: Vec<String> = (0..STORM).map(|i| format!("storm-{i}")).collect();
    expected.sort();
    assert_eq!(storm, expected);

    // Nothing else: root, sh, ls, the two sleeps and the storm.
    let processes: Vec<&&SpanRec> = trace.iter().filter(|s| !s.name.starts_with("file ")).collect();
    assert_eq!(processes.len(), 1 + 2 + 2 + STORM, "unexpected spans: {:#?}", trace.iter().map(|s| &s.name).collect::<Vec<_>>());
}

fn assert_no_outsider(spans: &[SpanRec]) {
    let leaked: Vec<&SpanRec> = spans.iter().filter(|s| s.args().iter().any(|a| a == "outsider-marker")).collect();
    assert!(leaked.is_empty(), "spans from outside the tree: {leaked:#?}");
}

#[test]
fn an_agent_named_script_becomes_one_trace_with_every_exec() {
    let _k = kernel_lock();
    let daemon = Daemon::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let agent = dir.path().join("claude");
    script(&agent, &workload());
    let status = with_outsider(|| Command::new(&agent).current_dir(dir.path()).status().unwrap());
    assert!(status.success());
    let out = daemon.stop();
    assert!(out.status.success(), "daemon exit: {:?}\n{}", out.status, out.log);
    let (root, trace) = session_in(&out.spans, dir.path());
    assert_eq!(root.name, "invoke_agent claude-code");
    assert_eq!(root.str("gen_ai.operation.name"), Some("invoke_agent"));
    assert_eq!(root.str("gen_ai.agent.name"), Some("claude-code"));
    assert_eq!(root.str("agent_observer.session.discovery"), Some("exec"));
    assert_workload_tree(root, &trace, dir.path(), &agent, 0);
    assert_no_outsider(&out.spans);
    assert_eq!(out.stats["events_lost"], 0, "{}", out.stats);
    assert!(out.console.contains("session claude-code"), "console view: {}", out.console);
}

#[test]
fn watch_traces_any_command_and_returns_its_exit_code() {
    let _k = kernel_lock();
    let dir = tempfile::tempdir().unwrap();
    let tool = dir.path().join("my-build-tool");
    script(&tool, &workload().replace("exit 0", "exit 42"));
    let w = with_outsider(|| watch(dir.path(), &[], &[tool.as_os_str()]));
    assert_eq!(w.status.code(), Some(42), "{}", w.stderr);
    let (root, trace) = session_in(&w.spans, dir.path());
    assert_eq!(root.name, "invoke_agent my-build-tool");
    assert_eq!(root.str("agent_observer.session.discovery"), Some("watch"));
    assert_workload_tree(root, &trace, dir.path(), &tool, 42);
    assert_no_outsider(&w.spans);
    assert!(w.stderr.contains("session my-build-tool"), "console view goes to stderr: {}", w.stderr);
}

#[test]
fn watch_reports_signals_and_missing_commands() {
    let _k = kernel_lock();
    let dir = tempfile::tempdir().unwrap();
    let w = watch(dir.path(), &[], &["sh", "-c", "kill -9 $$"]);
    assert_eq!(w.status.code(), Some(137));
    let (root, _) = session_in(&w.spans, dir.path());
    assert_eq!(root.str("agent_observer.process.exit.signal"), Some("SIGKILL"));
    let w = watch(dir.path(), &[], &["/nonexistent/agent"]);
    assert_ne!(w.status.code(), Some(0));
    assert!(w.stderr.contains("cannot run the command"), "{}", w.stderr);
}

#[test]
fn agents_already_running_are_picked_up_mid_session() {
    let _k = kernel_lock();
    let dir = tempfile::tempdir().unwrap();
    let agent = dir.path().join("claude");
    let go = dir.path().join("go");
    script(
        &agent,
        &format!(
            "sleep 60 &\nBG=$!\nwhile [ ! -e {go} ]; do sleep 0.05; done\nsh -c 'exit 5'\nkill $BG\nwait\n",
            go = go.display()
        ),
    );
    let mut running = Command::new(&agent).current_dir(dir.path()).spawn().unwrap();
    // Let the background sleep exec before the daemon starts.
    std::thread::sleep(Duration::from_millis(300));
    let daemon = Daemon::start(&[]);
    std::fs::write(&go, "").unwrap();
    assert!(running.wait().unwrap().success());
    let out = daemon.stop();
    let (root, trace) = session_in(&out.spans, dir.path());
    assert_eq!(root.str("agent_observer.session.discovery"), Some("procfs"));
    assert_eq!(root.int("process.pid"), Some(running.id() as i64));
    assert!(root.start < root.end);
    let sleep = trace.iter().find(|s| s.args() == ["sleep", "60"]).expect("adopted descendant");
    assert_eq!(sleep.parent, root.span_id);
    assert_eq!(sleep.str("agent_observer.process.exit.signal"), Some("SIGTERM"));
    let sh = trace.iter().find(|s| s.name == "exec sh").expect("exec after pick-up");
    assert_eq!(sh.int("process.exit.code"), Some(5));
    assert_eq!(sh.parent, root.span_id);
}

#[test]
fn sigint_flushes_open_spans_as_incomplete_and_exits_zero() {
    let _k = kernel_lock();
    let daemon = Daemon::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let agent = dir.path().join("gemini");
    script(&agent, "sleep 30");
    let mut running = Command::new(&agent).current_dir(dir.path()).spawn().unwrap();
    // Wait until the daemon has seen the sleep exec.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(daemon.dir.path().join("console.txt")).unwrap_or_default().contains("sleep 30") {
        assert!(Instant::now() < deadline, "daemon never showed the session");
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: signalling our own child.
    unsafe { libc::kill(daemon.pid() as i32, libc::SIGINT) };
    let out = daemon.stop();
    let _ = running.kill();
    let _ = running.wait();
    assert_eq!(out.status.code(), Some(0), "{}", out.log);
    let (root, trace) = session_in(&out.spans, dir.path());
    assert_eq!(root.name, "invoke_agent gemini-cli");
    assert_eq!(trace.len(), 2);
    assert!(trace.iter().all(|s| s.bool("agent_observer.incomplete") == Some(true) && s.end >= s.start));
}
