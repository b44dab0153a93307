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

const REPS: usize = 5;

struct Daemon {
    child: Child,
    stats: PathBuf,
}

impl Daemon {
    fn start(dir: &Path) -> Result<Daemon> {
        let bin = root_dir().join("target/release/agent-observer");
        let ready = dir.join("ready");
        let stats = dir.join("stats.json");
        let _ = std::fs::remove_file(&ready);
        let child = Command::new(&bin)
            .args(["run", "--quiet", "--no-proc-scan"])
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
    body: String,
}

fn workloads() -> Vec<Workload> {
    vec![Workload {
        name: "2,000 fork+exec of /bin/true",
        body: "i=0; while [ $i -lt 2000 ]; do /bin/true; i=$((i+1)); done".into(),
    }]
}

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

pub fn run() -> Result<()> {
    let dir = root_dir().join("target/bench");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    println!("agent-observer benchmark (ratios are daemon-on / daemon-off wall time, medians of {REPS})\n");
    let mut failed = Vec::new();
    for w in workloads() {
        let tracked = dir.join("claude");
        let untracked = dir.join("bench-untracked");
        write_script(&tracked, &w.body)?;
        write_script(&untracked, &w.body)?;
        let mut off = Vec::new();
        for _ in 0..REPS {
            off.push(time(&untracked)?);
        }
        let daemon = Daemon::start(&dir)?;
        let (mut on_t, mut on_u) = (Vec::new(), Vec::new());
        for _ in 0..REPS {
            on_t.push(time(&tracked)?);
            on_u.push(time(&untracked)?);
        }
        let stats = daemon.stop()?;
        for _ in 0..REPS {
            off.push(time(&untracked)?);
        }
        let base = median(off);
        let (t, u) = (median(on_t), median(on_u));
        let rt = t.as_secs_f64() / base.as_secs_f64();
        let ru = u.as_secs_f64() / base.as_secs_f64();
        let lost = json_number(&stats, "events_lost");
        println!("{}:", w.name);
        println!("  off {:>8.1?}   tracked {:>8.1?} (ratio {rt:.3}, target < 1.05)   untracked {:>8.1?} (ratio {ru:.3}, target < 1.01)", base, t, u);
        println!("  events lost: {lost} (target 0)   spans exported: {}", json_number(&stats, "spans_exported"));
        if lost != 0 {
            failed.push(format!("{}: {lost} events lost", w.name));
        }
    }

    let daemon = Daemon::start(&dir)?;
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
