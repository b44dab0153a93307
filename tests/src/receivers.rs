//! Real OTLP receivers that we did not write, run as child processes.
//!
//! rotel (a Rust OpenTelemetry collector, from PyPI) accepts OTLP over gRPC and HTTP and logs
//! every span it receives; we parse that log.

use std::{
    collections::BTreeMap,
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// A span as rotel printed it.
#[derive(Clone, Debug, Default)]
pub struct ReceivedSpan {
    pub trace_id: String,
    pub parent: String,
    pub span_id: String,
    pub name: String,
    pub status: String,
    pub attrs: BTreeMap<String, String>,
    pub resource: BTreeMap<String, String>,
}

pub struct Rotel {
    child: Child,
    log: PathBuf,
    pub grpc: u16,
    pub http: u16,
    _dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

fn rotel_binary() -> PathBuf {
    let venv = crate::tools_dir().join("venv/lib");
    let found = std::fs::read_dir(&venv).ok().and_then(|mut dirs| {
        dirs.find_map(|d| {
            let p = d.ok()?.path().join("site-packages/rotel/rotel-agent");
            p.exists().then_some(p)
        })
    });
    found.unwrap_or_else(|| panic!("rotel-agent not installed under {}: run `cargo xtask setup --tests`", venv.display()))
}

impl Rotel {
    pub fn start() -> Rotel {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("rotel.log");
        let (grpc, http) = (free_port(), free_port());
        let child = Command::new(rotel_binary())
            .args(["start", "--exporter", "blackhole", "--debug-log", "traces", "--debug-log-verbosity", "detailed"])
            .arg("--otlp-grpc-endpoint")
            .arg(format!("127.0.0.1:{grpc}"))
            .arg("--otlp-http-endpoint")
            .arg(format!("127.0.0.1:{http}"))
            .stdout(std::fs::File::create(&log).expect("log"))
            .stderr(Stdio::null())
            .spawn()
            .expect("start rotel-agent");
        let rotel = Rotel { child, log, grpc, http, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", grpc)).is_err()
            || std::net::TcpStream::connect(("127.0.0.1", http)).is_err()
        {
            assert!(Instant::now() < deadline, "rotel did not listen within 20s");
            std::thread::sleep(Duration::from_millis(50));
        }
        rotel
    }

    /// Spans received so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        parse_log(&std::fs::read_to_string(&self.log).unwrap_or_default())
    }

    /// Waits until at least `n` spans arrived.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<ReceivedSpan> {
        let deadline = Instant::now() + timeout;
        loop {
            let spans = self.spans();
            if spans.len() >= n || Instant::now() > deadline {
                return spans;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Rotel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Parses rotel's `--debug-log-verbosity detailed` output.
pub fn parse_log(text: &str) -> Vec<ReceivedSpan> {
    let mut spans = Vec::new();
    let mut resource = BTreeMap::new();
    let mut current: Option<ReceivedSpan> = None;
    let mut in_resource = false;
    for line in text.lines().map(strip_ansi) {
        let trimmed = line.trim();
        if trimmed.starts_with("ResourceSpans #") {
            spans.extend(current.take());
            resource = BTreeMap::new();
            in_resource = true;
        } else if trimmed.starts_with("Span #") {
            spans.extend(current.take());
            in_resource = false;
            current = Some(ReceivedSpan { resource: resource.clone(), ..Default::default() });
        } else if let Some(rest) = trimmed.strip_prefix("-> ") {
            let Some((k, v)) = rest.split_once(": ") else { continue };
            if in_resource {
                resource.insert(k.to_owned(), v.to_owned());
            } else if let Some(span) = current.as_mut() {
                span.attrs.insert(k.to_owned(), v.to_owned());
            }
        } else if let (Some(span), Some((k, v))) = (current.as_mut(), trimmed.split_once(':')) {
            let v = v.trim().to_owned();
            match k.trim() {
                "Trace ID" => span.trace_id = v,
                "Parent ID" => span.parent = v,
                "ID" => span.span_id = v,
                "Name" => span.name = v,
                "Status code" => span.status = v,
                _ => {}
            }
        }
    }
    spans.extend(current);
    spans
}
