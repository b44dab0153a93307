//! `cargo xtask bench` part 2: a TLS-heavy client (10,000 HTTPS requests over keep-alive),
//! daemon on versus off, and how much of its plaintext was captured.
//!
//! Paired rounds (off, then on with a fresh daemon, then off again) so the machine's drift
//! cancels; ratios are medians of per-round ratios.

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use agent_observer_tests::{
    bin,
    dump,
    tls::{self, Netns, Server, TestCa, run_with_timeout},
};

const REQUESTS: usize = 10_000;
const ROUNDS: usize = 3;

fn script(path: &Path, client: &Path, url: &str, ca: &Path) {
    agent_observer_tests::script(
        path,
        &format!("exec node {} --url {url} --cafile {} --repeat {REQUESTS}", client.display(), ca.display()),
    );
}

fn timed(ns: &Netns, script: &Path) -> Duration {
    let start = Instant::now();
    let out = run_with_timeout(&mut ns.command(script), Duration::from_secs(600), "bench client");
    assert!(out.status.success(), "client failed: {}", tls::tail(&out.stderr));
    start.elapsed()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    agent_observer_tests::require_root();
    let ns = Netns::new();
    let ca = TestCa::create();
    let server = Server::tls(&ca, &ns);
    let dir = tempfile::tempdir().unwrap();
    let client = tls::fixtures_dir().join("node-client.mjs");
    let url = server.url("/hello");
    let (tracked, untracked) = (dir.path().join("claude"), dir.path().join("bench-client"));
    script(&tracked, &client, &url, &ca.ca);
    script(&untracked, &client, &url, &ca.ca);

    let (mut rt, mut ru) = (Vec::new(), Vec::new());
    let (mut captured, mut lost) = (0usize, 0u64);
    for round in 0..ROUNDS {
        let before = timed(&ns, &untracked);
        let dump_dir = dir.path().join(format!("dump-{round}"));
        let stats = dir.path().join(format!("stats-{round}.json"));
        let ready = dir.path().join(format!("ready-{round}"));
        let mut daemon = Command::new(bin())
            .args(["run", "--quiet", "--no-proc-scan"])
            .arg("--dump-streams")
            .arg(&dump_dir)
            .arg("--stats-file")
            .arg(&stats)
            .arg("--ready-file")
            .arg(&ready)
            .spawn()
            .expect("start daemon");
        let deadline = Instant::now() + Duration::from_secs(60);
        while !ready.exists() {
            assert!(Instant::now() < deadline, "daemon not ready");
            std::thread::sleep(Duration::from_millis(20));
        }
        let on_tracked = timed(&ns, &tracked);
        let on_untracked = timed(&ns, &untracked);
        // SAFETY: signalling our own child.
        unsafe { libc::kill(daemon.id() as i32, libc::SIGTERM) };
        assert!(daemon.wait().unwrap().success());
        let after = timed(&ns, &untracked);
        let off = (before + after) / 2;
        rt.push(on_tracked.as_secs_f64() / off.as_secs_f64());
        ru.push(on_untracked.as_secs_f64() / off.as_secs_f64());
        let streams = dump::read(&dump_dir);
        let sent: Vec<u8> = streams.iter().filter(|s| s.kind == "tls" && s.direction == "send").flat_map(|s| s.bytes.clone()).collect();
        captured += String::from_utf8_lossy(&sent).matches("GET /hello HTTP/1.1\r\n").count();
        lost += streams.iter().map(|s| s.lost_bytes).sum::<u64>();
        let stats: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
        lost += stats["data_lost_bytes"].as_u64().unwrap_or(0);
    }
    let made = REQUESTS * ROUNDS;
    println!(
        "{:<36} {:>16.3} {:>18.3}",
        format!("{REQUESTS} HTTPS requests, keep-alive (node)"),
        median(rt),
        median(ru)
    );
    println!(
        "TLS capture completeness: {captured} of {made} requests captured ({:.2}%), {lost} plaintext bytes lost (target 100%, 0)",
        100.0 * captured as f64 / made as f64
    );
    if captured != made || lost != 0 {
        std::process::exit(1);
    }
}
