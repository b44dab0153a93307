//! Running the real daemon (`run`) or `watch` under test.

use std::{
    ffi::OsStr,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use crate::otlp::{SpanRec, read_spans};

/// A running `agent-observer run`, writing OTLP/JSON into its own temp dir.
pub struct Daemon {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
}

/// What a stopped daemon left behind.
pub struct Stopped {
    pub status: ExitStatus,
    pub spans: Vec<SpanRec>,
    pub console: String,
    pub log: String,
    pub stats: serde_json::Value,
}

impl Daemon {
    /// Starts the daemon with `extra` arguments and waits until every probe is attached.
    pub fn start(extra: &[&str]) -> Daemon {
        Daemon::start_with_env(extra, &[])
    }

    pub fn start_with_env(extra: &[&str], env: &[(&str, &str)]) -> Daemon {
        let dir = tempfile::Builder::new().prefix("ao-daemon-").tempdir().expect("tempdir");
        let ready = dir.path().join("ready");
        let mut cmd = Command::new(crate::bin());
        cmd.arg("run")
            .arg("--output-file")
            .arg(dir.path().join("spans.json"))
            .arg("--ready-file")
            .arg(&ready)
            .arg("--stats-file")
            .arg(dir.path().join("stats.json"))
            .args(extra)
            .envs(env.iter().copied())
            .stdout(std::fs::File::create(dir.path().join("console.txt")).expect("console file"))
            .stderr(std::fs::File::create(dir.path().join("daemon.log")).expect("log file"));
        let child = cmd.spawn().expect("spawn agent-observer");
        let mut daemon = Daemon { child: Some(child), dir };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !ready.exists() {
            if let Some(status) = daemon.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("daemon exited before ready ({status}):\n{}", daemon.log());
            }
            assert!(Instant::now() < deadline, "daemon not ready after 60s:\n{}", daemon.log());
            std::thread::sleep(Duration::from_millis(20));
        }
        daemon
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    pub fn output(&self) -> PathBuf {
        self.dir.path().join("spans.json")
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// SIGTERM, then collect everything it wrote.
    pub fn stop(mut self) -> Stopped {
        let mut child = self.child.take().expect("running");
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("daemon did not stop within 30s of SIGTERM:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let read = |name: &str| std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        Stopped {
            status,
            spans: read_spans(&self.output()),
            console: read("console.txt"),
            log: read("daemon.log"),
            stats: serde_json::from_str(&read("stats.json")).unwrap_or(serde_json::Value::Null),
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Result of `agent-observer watch`.
pub struct Watched {
    pub status: ExitStatus,
    pub spans: Vec<SpanRec>,
    pub stderr: String,
    pub stdout: String,
}

/// Runs `agent-observer watch [extra] -- cmd args` in `cwd`.
pub fn watch<S: AsRef<OsStr>>(cwd: &Path, extra: &[&str], cmd: &[S]) -> Watched {
    let out = tempfile::NamedTempFile::new().expect("temp file");
    let result = Command::new(crate::bin())
        .current_dir(cwd)
        .arg("watch")
        .arg("--output-file")
        .arg(out.path())
        .args(extra)
        .arg("--")
        .args(cmd)
        .stdin(Stdio::null())
        .output()
        .expect("run agent-observer watch");
    Watched {
        status: result.status,
        spans: read_spans(out.path()),
        stderr: String::from_utf8_lossy(&result.stderr).into_owned(),
        stdout: String::from_utf8_lossy(&result.stdout).into_owned(),
    }
}
