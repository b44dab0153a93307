//! Clear errors for bad input: configuration and privileges.

use std::process::Command;

use agent_observer_tests::{bin, require_root};

fn run(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(bin()).args(args).output().expect("run agent-observer");
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn a_bad_config_names_its_line_and_does_not_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[[agent]]\nname = \"mine\"\nexe = [oops\n").unwrap();
    let (code, err) = run(&["run", "--config", path.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("bad.toml") && err.contains("line 3"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    std::fs::write(&path, "[[agent]]\nname = \"mine\"\n").unwrap();
    let (code, err) = run(&["check-config", path.to_str().unwrap()]);
    assert_eq!(code, Some(1));
    assert!(err.contains("line 2") && err.contains("needs `exe` or `comm`"), "{err}");

    let (code, err) = run(&["run", "--config", "/nonexistent/agent-observer.toml"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("cannot read config file"), "{err}");
}

#[test]
fn a_good_config_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ok.toml");
    std::fs::write(&path, "[[agent]]\nname = \"mine\"\nexe = \"my-agent\"\n\n[catalogue]\ndisable = [\"amp\"]\n").unwrap();
    let (code, err) = run(&["check-config", path.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn without_privileges_the_error_says_what_to_do() {
    require_root(); // to drop to nobody
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all"])
        .arg(bin())
        .args(["run", "--no-proc-scan"])
        .output()
        .expect("setpriv");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("needs root"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
