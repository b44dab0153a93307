//! Reading running processes from /proc, to adopt agents that started before the daemon.

use std::os::unix::ffi::OsStrExt as _;

use crate::{correlate::ScannedProcess, intake::clock::BootClock, text::split_nul};

/// Every process (not thread) visible in /proc. Processes that vanish mid-read are skipped.
pub fn scan(clock: &BootClock) -> Vec<ScannedProcess> {
    let Ok(all) = procfs::process::all_processes() else { return Vec::new() };
    all.filter_map(Result::ok).filter_map(|p| read(&p, clock)).collect()
}

/// One process, if it still exists.
pub fn scan_one(pid: u32, clock: &BootClock) -> Option<ScannedProcess> {
    let p = procfs::process::Process::new(pid as i32).ok()?;
    read(&p, clock)
}

fn read(p: &procfs::process::Process, clock: &BootClock) -> Option<ScannedProcess> {
    let stat = p.stat().ok()?;
    let dir = format!("/proc/{}", p.pid);
    let raw = |name: &str| std::fs::read(format!("{dir}/{name}")).ok();
    let link = |name: &str| {
        std::fs::read_link(format!("{dir}/{name}")).ok().map(|l| l.as_os_str().as_bytes().to_vec())
    };
    let uid = p.uid().unwrap_or(u32::MAX);
    Some(ScannedProcess {
        tgid: p.pid as u32,
        ppid: stat.ppid as u32,
        start: clock.to_unix(BootClock::ticks_to_boot_ns(stat.starttime)),
        exe: link("exe").unwrap_or_default(),
        argv: raw("cmdline").map(|c| split_nul(&c)).unwrap_or_default(),
        cwd: link("cwd").unwrap_or_default(),
        comm: stat.comm,
        uid,
    })
}
