//! `cargo xtask bench`: overhead of the daemon, as ratios measured in one run.
//!
//! The machine is noisy, so each workload alternates off/on runs and reports the ratio of
//! medians, plus the raw medians.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::util::{Result, root_dir};

const REPS: usize = 7;

struct Daemon {
    child: Child,
    stats: PathBuf,
}

impl Daemon {
    fn start(dir: &Path, capture: &str) -> Result<Daemon> {
        let bin = root_dir().join("target/release/agent-observer");
        let ready = dir.join("ready");
        let stats = dir.join("stats.json");
        let _ = std::fs::remove_file(&ready);
        let child = Command::new(&bin)
            .args(["run", "--quiet", "--no-proc-scan", "--syscall-capture", capture])
            .arg("--output-file")
            .arg(dir.join("spans.json"))
            .arg("--ready-file")
            .arg(&ready)
            .arg("--stats-file")
            .arg(&stats)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while !ready.exists() {
            if Instant::now() > deadline {
                return Err("daemon did not become ready".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Daemon { child, stats })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the daemon; returns its stats file.
    fn stop(mut self) -> Result<String> {
        // SAFETY-free: use kill(1) to avoid a libc dependency.
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let status = self.child.wait().map_err(|e| e.to_string())?;
        if !status.success() {
            return Err(format!("daemon exited with {status}"));
        }
        std::fs::read_to_string(&self.stats).map_err(|e| format!("stats: {e}"))
    }
}

fn time(script: &Path) -> Result<Duration> {
    let start = Instant::now();
    let status = Command::new(script).status().map_err(|e| format!("{}: {e}", script.display()))?;
    if !status.success() {
        return Err(format!("{} failed: {status}", script.display()));
    }
    Ok(start.elapsed())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn write_script(path: &Path, body: &str) -> Result<()> {
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).map_err(|e| e.to_string())?;
    Command::new("chmod").arg("+x").arg(path).status().map_err(|e| e.to_string())?;
    Ok(())
}

/// A workload, run by a tracked (agent-named) script and by an untracked one.
struct Workload {
    name: &'static str,
    body: &'static str,
    /// A string the span output must hold once per tracked run (capture completeness).
    proof: Option<&'static str>,
}

const WORKLOADS: &[Workload] = &[
    Workload {
        name: "2,000 fork+exec of /bin/true",
        body: "i=0; while [ $i -lt 2000 ]; do /bin/true; i=$((i+1)); done",
        proof: None,
    },
    Workload {
        name: "100 MB in 4 KiB writes",
        body: "dd if=/dev/zero of=bench.bin bs=4k count=25600 status=none; rm -f bench.bin",
        proof: Some("\"intValue\":\"104857600\""),
    },
    Workload {
        name: "create+delete 10,000 small files",
        body: "exec /usr/bin/python3 -c \"import os\nfor i in range(10000):\n  p = f'small-{i}'\n  open(p, 'w').write('x')\n  os.unlink(p)\"",
        proof: None,
    },
];

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15; `after` starts at field 3.
    let get = |i: usize| fields.get(i - 3).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    get(14) + get(15)
}

fn json_number(stats: &str, key: &str) -> u64 {
    let pat = format!("\"{key}\":");
    stats
        .find(&pat)
        .and_then(|at| {
            let rest = &stats[at + pat.len()..];
            let end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
            rest[..end].parse().ok()
        })
        .unwrap_or(u64::MAX)
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}

fn median_f(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One workload's ratios from paired rounds: each round times the untracked script with no
/// daemon before and after, and in between the tracked and untracked scripts under a daemon
/// with syscall capture always armed, and the untracked script under an on-demand daemon with
/// no session live. The median of per-round ratios cancels the machine's drift.
struct Ratios {
    off: Duration,
    tracked: f64,
    untracked: f64,
    on_demand: f64,
    lost: u64,
    captured: usize,
}

fn measure(dir: &Path, tracked: &Path, untracked: &Path, proof: Option<&str>) -> Result<Ratios> {
    let (mut rt, mut ru, mut ro, mut offs) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut lost, mut captured) = (0, 0);
    for _ in 0..REPS {
        let before = time(untracked)?;
        let daemon = Daemon::start(dir, "always")?;
        let t = time(tracked)?;
        let u = time(untracked)?;
        let stats = daemon.stop()?;
        lost += json_number(&stats, "events_lost");
        let spans = std::fs::read_to_string(dir.join("spans.json")).unwrap_or_default();
        captured += proof.map_or(1, |p| spans.matches(p).count().min(1));
        let _ = std::fs::remove_file(dir.join("spans.json"));
        let daemon = Daemon::start(dir, "on-demand")?;
        let o = time(untracked)?;
        daemon.stop()?;
        let after = time(untracked)?;
        let off = (before + after) / 2;
        offs.push(off);
        rt.push(ratio(t, off));
        ru.push(ratio(u, off));
        ro.push(ratio(o, off));
    }
    Ok(Ratios { off: median(offs), tracked: median_f(rt), untracked: median_f(ru), on_demand: median_f(ro), lost, captured })
}

pub fn run() -> Result<()> {
    // BPF run-time statistics slow every program down; they must be off to measure.
    if std::fs::read_to_string("/proc/sys/kernel/bpf_stats_enabled").is_ok_and(|v| v.trim() != "0") {
        return Err("kernel.bpf_stats_enabled is on; turn it off (sysctl kernel.bpf_stats_enabled=0) to benchmark".into());
    }
    let dir = root_dir().join("target/bench");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    println!("agent-observer benchmark: wall-time ratios daemon-on / daemon-off, median of {REPS} paired rounds, one run\n");
    println!("{:<36} {:>9} {:>16} {:>18} {:>22}", "workload", "off", "tracked (<1.05)", "untracked (<1.01)", "untracked, on-demand");
    let mut failed = Vec::new();
    for (i, w) in WORKLOADS.iter().enumerate() {
        let wdir = dir.join(format!("w{i}"));
        std::fs::create_dir_all(&wdir).map_err(|e| e.to_string())?;
        let (tracked, untracked) = (wdir.join("claude"), wdir.join("bench-untracked"));
        for script in [&tracked, &untracked] {
            write_script(script, &format!("cd {}\n{}", wdir.display(), w.body))?;
        }
        let r = measure(&dir, &tracked, &untracked, w.proof)?;
        println!("{:<36} {:>9.1?} {:>16.3} {:>18.3} {:>22.3}", w.name, r.off, r.tracked, r.untracked, r.on_demand);
        if r.lost != 0 {
            failed.push(format!("{}: {} events lost", w.name, r.lost));
        }
        if r.captured < REPS {
            failed.push(format!("{}: only {} of {REPS} tracked runs fully captured", w.name, r.captured));
        }
    }
    println!("\nevents lost: {} (target 0); every tracked run's writes captured in full: {}", if failed.iter().any(|f| f.contains("lost")) { "some" } else { "0" }, failed.iter().all(|f| !f.contains("captured")));
    println!("(untracked, on-demand: no session live, so file/socket capture is detached)");

    failed.extend(tls_bench().err());
    discovery_times()?;

    let daemon = Daemon::start(&dir, "always")?;
    std::thread::sleep(Duration::from_secs(1));
    let ticks0 = cpu_ticks(daemon.pid());
    let window = Duration::from_secs(5);
    std::thread::sleep(window);
    let ticks1 = cpu_ticks(daemon.pid());
    let rss = rss_kib(daemon.pid());
    daemon.stop()?;
    let cpu = (ticks1 - ticks0) as f64 / 100.0 / window.as_secs_f64() * 100.0;
    println!("\nidle daemon: RSS {:.1} MiB (target < 30), CPU {cpu:.2}% of one core", rss as f64 / 1024.0);
    if failed.is_empty() { Ok(()) } else { Err(failed.join("; ")) }
}

/// The TLS-heavy client, run by the tests crate's bench binary (it shares the fixtures).
fn tls_bench() -> Result<()> {
    println!();
    let status = Command::new("cargo")
        .current_dir(root_dir())
        .args(["run", "--quiet", "--release", "-p", "agent-observer-tests", "--bin", "tls-bench"])
        .env("AGENT_OBSERVER_BIN", root_dir().join("target/release/agent-observer"))
        .env("AGENT_OBSERVER_TEST_TOOLS", crate::setup::tools_dir())
        .status()
        .map_err(|e| format!("tls-bench: {e}"))?;
    if status.success() { Ok(()) } else { Err("TLS capture incomplete (see above)".into()) }
}

/// ELF discovery time per binary, the largest first (the Claude Code binary is over 200 MB).
fn discovery_times() -> Result<()> {
    let npm = crate::setup::tools_dir().join("npm/node_modules");
    let files = [
        npm.join("@anthropic-ai/claude-code-linux-x64/claude"),
        npm.join("@openai/codex-linux-x64/vendor/x86_64-unknown-linux-musl/bin/codex"),
        npm.join("@github/copilot-linux-x64/copilot"),
        PathBuf::from("/usr/bin/node"),
        PathBuf::from("/usr/lib/x86_64-linux-gnu/libssl.so.3"),
    ];
    println!("\nTLS discovery (ELF analysis, release build):");
    for f in files {
        let size = std::fs::metadata(&f).map(|m| m.len()).map_err(|e| format!("{}: {e}", f.display()))?;
        let out = Command::new(root_dir().join("target/release/agent-observer"))
            .arg("tls-discover")
            .arg(&f)
            .output()
            .map_err(|e| e.to_string())?;
        let first = String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or("").to_owned();
        let summary = first.rsplit_once(": ").map_or(first.as_str(), |(_, s)| s).to_owned();
        println!("  {:>6.1} MB  {:<60} {summary}", size as f64 / 1e6, f.file_name().unwrap_or_default().to_string_lossy());
    }
    Ok(())
}
