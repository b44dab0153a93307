//! Project tasks: `cargo xtask setup | build | run | test | bench | fuzz`.
//!
//! `setup` is idempotent and installs whatever this kind of machine lacks: apt packages, the
//! nightly's rust-src, bpf-linker linked against the nightly's own libLLVM, and (for tests) the
//! OTLP receivers and agent CLIs the end-to-end tests run.

mod bench;
mod deploy_tools;
mod npm_tools;
mod setup;
mod util;

use std::process::ExitCode;

use util::{Result, cargo, root_dir, run_status};

const USAGE: &str = "usage: cargo xtask <command> [args]

commands:
  setup [--tests]   install what is missing (toolchain parts; with --tests, test tools too)
  build             build the daemon (release)
  run [ARGS...]     set up, build and run the daemon (default: `run`, console view)
  test [ARGS...]    set up, build and run every test (unit, kernel, end-to-end)
  bench             set up, build and print overhead ratios
  fuzz [SECONDS]    run each fuzz target for SECONDS (default 30)
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("setup") => setup::run(args.iter().any(|a| a == "--tests")),
        Some("build") => setup::run(false).and_then(|()| build_release()),
        Some("run") => run_daemon(&args[1..]),
        Some("test") => test(&args[1..]),
        Some("bench") => setup::run(true).and_then(|()| build_release()).and_then(|()| bench::run()),
        Some("fuzz") => fuzz(args.get(1).map(String::as_str).unwrap_or("30")),
        _ => {
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn build_release() -> Result<()> {
    cargo(&["build", "--release", "-p", "agent-observer"])
}

fn run_daemon(args: &[String]) -> Result<()> {
    setup::run(false)?;
    build_release()?;
    let bin = root_dir().join("target/release/agent-observer");
    let mut argv: Vec<String> = if args.is_empty() { vec!["run".into()] } else { args.to_vec() };
    let mut cmd = if util::is_root() {
        std::process::Command::new(&bin)
    } else {
        eprintln!("xtask: the daemon needs root; running it through sudo");
        argv.insert(0, bin.display().to_string());
        std::process::Command::new("sudo")
    };
    cmd.args(&argv);
    run_status(&mut cmd)
}

fn test(args: &[String]) -> Result<()> {
    setup::run(true)?;
    // The end-to-end tests drive the real binary; build it first.
    cargo(&["build", "-p", "agent-observer"])?;
    let bin = root_dir().join("target/debug/agent-observer");
    let mut cmd = std::process::Command::new("cargo");
    cmd.current_dir(root_dir())
        .args(["test", "--workspace", "--exclude", "agent-observer-ebpf"])
        .args(args)
        .env("AGENT_OBSERVER_BIN", &bin)
        .env("AGENT_OBSERVER_TEST_TOOLS", setup::tools_dir());
    run_status(&mut cmd)
}

fn fuzz(seconds: &str) -> Result<()> {
    setup::run(false)?;
    setup::ensure_cargo_fuzz()?;
    let dir = root_dir().join("agent-observer/fuzz");
    let out = std::process::Command::new("cargo")
        .current_dir(&dir)
        .args(["+nightly", "fuzz", "list"])
        .output()
        .map_err(|e| format!("cargo fuzz list: {e}"))?;
    let targets = String::from_utf8_lossy(&out.stdout).to_string();
    for target in targets.lines().filter(|l| !l.trim().is_empty()) {
        println!("xtask: fuzzing {target} for {seconds}s");
        let mut cmd = std::process::Command::new("cargo");
        cmd.current_dir(&dir).args([
            "+nightly",
            "fuzz",
            "run",
            target,
            "--",
            &format!("-max_total_time={seconds}"),
        ]);
        run_status(&mut cmd)?;
    }
    Ok(())
}
