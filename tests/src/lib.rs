//! Harness for agent-observer's integration and end-to-end tests.
//!
//! Tests here run the real binary, as root, against the real kernel. They never skip: a
//! missing privilege or a probe that does not load fails the test with the daemon's message.

pub mod daemon;
pub mod dump;
pub mod otlp;
pub mod receivers;
pub mod tls;

use std::{
    path::{Path, PathBuf},
    sync::{Mutex, MutexGuard},
};

/// The daemon binary: `AGENT_OBSERVER_BIN` (set by `cargo xtask test`), else the one next to
/// this test binary in target/.
pub fn bin() -> PathBuf {
    if let Some(p) = std::env::var_os("AGENT_OBSERVER_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test binary path");
    let candidate = exe.parent().and_then(Path::parent).map(|d| d.join("agent-observer"));
    match candidate {
        Some(p) if p.exists() => p,
        _ => panic!("agent-observer binary not found: run `cargo xtask test`, or set AGENT_OBSERVER_BIN"),
    }
}

/// Test tools (venv with OTLP receivers, npm agents) installed by `cargo xtask setup --tests`.
pub fn tools_dir() -> PathBuf {
    std::env::var_os("AGENT_OBSERVER_TEST_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-tools"))
}

/// Kernel tests need root; say so loudly instead of skipping.
pub fn require_root() {
    // SAFETY: geteuid cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(euid, 0, "these tests load eBPF programs and must run as root (CI runs them as root)");
}

static KERNEL: Mutex<()> = Mutex::new(());

/// Serialises tests that start a daemon, so their workloads do not compete for the 2 cores.
pub fn kernel_lock() -> MutexGuard<'static, ()> {
    require_root();
    KERNEL.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Writes an executable `#!/bin/sh` script.
pub fn script(path: &Path, body: &str) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).expect("write script");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}
