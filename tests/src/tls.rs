//! Fixtures for the TLS / HTTP capture tests: a test CA, a loopback-only network namespace,
//! the Node test servers (tests/fixtures/*.mjs), the TLS clients (curl, Python, Node, a
//! stripped Bun binary, rustls) and the real agent CLIs pointed at the fake LLM API.
//!
//! Everything runs offline. A missing tool fails the test with a message naming
//! `cargo xtask setup --tests`; nothing is skipped.

use std::{
    ffi::OsStr,
    fs::File,
    io::{BufRead, BufReader, Read},
    os::{fd::AsRawFd, unix::process::CommandExt},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::{Mutex, mpsc},
    time::{Duration, Instant},
};

use serde_json::Value;
use sha2::{Digest, Sha256};

const SETUP: &str = "run `cargo xtask setup --tests`";

/// tests/fixtures/ in the source tree.
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

fn require_file(path: &Path, what: &str) -> PathBuf {
    assert!(path.exists(), "{what} not found at {}: {SETUP}", path.display());
    path.to_path_buf()
}

fn require_program(name: &str) {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|d| d.join(name).is_file()))
        .unwrap_or(false);
    assert!(found, "`{name}` is not on PATH: {SETUP} (it installs the test tools)");
}

fn run_checked(cmd: &mut Command, what: &str) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

// ------------------------------------------------------------------------------------ CA

/// A test CA and a `localhost` leaf signed by it, made with the openssl CLI in a temp dir.
///
/// rustls refuses a self-signed leaf used as its own trust anchor, so this is a real chain:
/// the CA has `basicConstraints CA:TRUE` and `keyUsage keyCertSign`; the leaf has the
/// `serverAuth` EKU and SANs `localhost`, `127.0.0.1` and `::1`.
pub struct TestCa {
    pub dir: tempfile::TempDir,
    /// The CA certificate (PEM): `--cacert`, `NODE_EXTRA_CA_CERTS`, `--cafile`.
    pub ca: PathBuf,
    /// The leaf certificate and its key (PEM, PKCS#8) for the servers.
    pub cert: PathBuf,
    pub key: PathBuf,
    /// System roots followed by the test CA, for clients that take one file
    /// (`SSL_CERT_FILE`, `REQUESTS_CA_BUNDLE`).
    pub bundle: PathBuf,
}

const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

impl TestCa {
    pub fn create() -> TestCa {
        require_program("openssl");
        let dir = tempfile::Builder::new().prefix("ao-ca-").tempdir().expect("tempdir");
        let p = |name: &str| dir.path().join(name);
        let openssl = |args: &[&str], what: &str| {
            run_checked(Command::new("openssl").current_dir(dir.path()).args(args), what);
        };
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
        let mut ca_args = vec!["req", "-x509", "-new"];
        ca_args.extend(ec);
        ca_args.extend([
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "3650",
            "-subj",
            "/CN=agent-observer test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        openssl(&ca_args, "openssl: test CA");
        let mut csr_args = vec!["req", "-new"];
        csr_args.extend(ec);
        csr_args.extend(["-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=localhost"]);
        openssl(&csr_args, "openssl: leaf key and CSR");
        std::fs::write(
            p("leaf.ext"),
            "basicConstraints=critical,CA:FALSE\n\
             keyUsage=critical,digitalSignature,keyEncipherment\n\
             extendedKeyUsage=serverAuth\n\
             subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\n\
             subjectKeyIdentifier=hash\n\
             authorityKeyIdentifier=keyid\n",
        )
        .expect("write leaf.ext");
        openssl(
            &[
                "x509",
                "-req",
                "-in",
                "leaf.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-set_serial",
                "2",
                "-days",
                "825",
                "-sha256",
                "-out",
                "leaf.pem",
                "-extfile",
                "leaf.ext",
            ],
            "openssl: sign the leaf",
        );
        let roots = std::fs::read(SYSTEM_ROOTS)
            .unwrap_or_else(|e| panic!("{SYSTEM_ROOTS}: {e}: install ca-certificates ({SETUP})"));
        let mut bundle = roots;
        if !bundle.ends_with(b"\n") {
            bundle.push(b'\n');
        }
        bundle.extend(std::fs::read(p("ca.pem")).expect("read ca.pem"));
        std::fs::write(p("bundle.pem"), bundle).expect("write bundle.pem");
        TestCa { ca: p("ca.pem"), cert: p("leaf.pem"), key: p("leaf.key"), bundle: p("bundle.pem"), dir }
    }
}

// ------------------------------------------------------------------------ network namespace

/// A loopback-only network namespace, made by this test and gone when the last process in it
/// exits after the `Netns` is dropped.
///
/// The namespace is created by `unshare(CLONE_NEWNET)` on a short-lived thread and held by an
/// fd to `/proc/thread-self/ns/net`; `command()` gives a `Command` whose child `setns`es into
/// it before exec, so the child's pid is the program's own (no wrapper process). The daemon
/// under test stays in the root namespace: eBPF sees every namespace.
pub struct Netns {
    fd: Option<File>,
}

// No `Default`: creating a namespace needs root and has effects.
#[allow(clippy::new_without_default)]
impl Netns {
    /// A fresh namespace with `lo` up (127.0.0.1 and ::1). Needs root.
    pub fn new() -> Netns {
        crate::require_root();
        let fd = std::thread::spawn(|| {
            // SAFETY: unshare affects only this thread, which exits right after.
            if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            File::open("/proc/thread-self/ns/net")
        })
        .join()
        .expect("netns thread")
        .unwrap_or_else(|e| panic!("cannot create a network namespace: {e}"));
        let ns = Netns { fd: Some(fd) };
        require_program("ip");
        run_checked(ns.command("ip").args(["link", "set", "lo", "up"]), "ip link set lo up (in the test netns)");
        ns
    }

    /// The namespace the tests themselves run in (no switch); for fixtures that must be
    /// reachable from the root namespace.
    pub fn host() -> Netns {
        Netns { fd: None }
    }

    /// A `Command` for `program` that runs inside this namespace.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new(program);
        if let Some(fd) = &self.fd {
            let raw = fd.as_raw_fd();
            // SAFETY: setns is async-signal-safe; the fd is open in the forked child (it is
            // close-on-exec, so the program itself does not inherit it).
            unsafe {
                cmd.pre_exec(move || {
                    if libc::setns(raw, libc::CLONE_NEWNET) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        cmd
    }

    /// The namespace's inode number (as in `/proc/PID/ns/net -> net:[INODE]`), 0 for `host()`.
    pub fn inode(&self) -> u64 {
        use std::os::unix::fs::MetadataExt as _;
        self.fd.as_ref().and_then(|f| f.metadata().ok()).map_or(0, |m| m.ino())
    }
}

// --------------------------------------------------------------------------------- servers

/// One exchange as a fixture server logged it: exactly what went over the wire at the HTTP
/// level (raw header names and values; bodies after HTTP/1.1 chunking or h2 framing).
#[derive(Clone, Debug)]
pub struct Exchange {
    pub method: String,
    /// Path with query, as the client sent it.
    pub path: String,
    /// "1.1" or "2.0".
    pub http_version: String,
    /// Negotiated ALPN ("h2", "http/1.1"), None for plain HTTP or clients that send none.
    pub alpn: Option<String>,
    /// The client's TCP port (the server's peer).
    pub remote_port: Option<u16>,
    pub request_headers: Vec<(String, String)>,
    pub request_body: Vec<u8>,
    pub request_body_sha256: String,
    pub status: u16,
    pub response_headers: Vec<(String, String)>,
    /// HTTP/1.1 only: the serialized status line and headers, byte for byte.
    pub response_head_raw: Option<String>,
    pub response_body: Vec<u8>,
    pub response_body_sha256: String,
    /// The connection closed before the response finished.
    pub aborted: bool,
    /// The whole log line.
    pub raw: Value,
}

impl Exchange {
    fn parse(line: &str) -> Exchange {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("bad fixture log line ({e}): {}", line.chars().take(500).collect::<String>()));
        let s = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
        let headers = |k: &str| {
            v[k].as_array()
                .map(|a| {
                    a.iter()
                        .map(|p| {
                            (p[0].as_str().unwrap_or_default().to_owned(), p[1].as_str().unwrap_or_default().to_owned())
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        Exchange {
            method: s("method"),
            path: s("path"),
            http_version: s("http_version"),
            alpn: v["alpn"].as_str().map(str::to_owned),
            remote_port: v["remote_port"].as_u64().map(|p| p as u16),
            request_headers: headers("request_headers"),
            request_body: base64_decode(&s("request_body_b64")),
            request_body_sha256: s("request_body_sha256"),
            status: v["status"].as_u64().unwrap_or(0) as u16,
            response_headers: headers("response_headers"),
            response_head_raw: v["response_head_raw"].as_str().map(str::to_owned),
            response_body: base64_decode(&s("response_body_b64")),
            response_body_sha256: s("response_body_sha256"),
            aborted: v["aborted"].as_bool().unwrap_or(false),
            raw: v,
        }
    }

    /// First request header with this name (case-insensitive).
    pub fn request_header(&self, name: &str) -> Option<&str> {
        self.request_headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The request body as JSON (the fake LLM's requests).
    pub fn request_json(&self) -> Value {
        serde_json::from_slice(&self.request_body).unwrap_or(Value::Null)
    }
}

/// Which Node script a `Server` runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fixture {
    TlsServer,
    FakeLlm,
}

/// A fixture server (tests/fixtures/tls-server.mjs or fake-llm.mjs) running under node in a
/// namespace. Listens on 127.0.0.1 and ::1; killed on drop (its log goes with it).
pub struct Server {
    child: Child,
    pub port: u16,
    pub tls: bool,
    /// The JSON-lines exchange log.
    pub log: PathBuf,
    dir: tempfile::TempDir,
}

impl Server {
    /// tls-server.mjs over TLS (HTTP/1.1 and h2 by ALPN) with the CA's leaf.
    pub fn tls(ca: &TestCa, netns: &Netns) -> Server {
        Server::start(Fixture::TlsServer, Some(ca), netns, &[])
    }

    /// tls-server.mjs over plain HTTP/1.1.
    pub fn plain(netns: &Netns) -> Server {
        Server::start(Fixture::TlsServer, None, netns, &[])
    }

    /// The fake LLM API (Anthropic, Gemini, OpenAI) over TLS; its tool call runs
    /// `echo agent-observer-marker > marker.txt`.
    pub fn fake_llm(ca: &TestCa, netns: &Netns) -> Server {
        Server::start(Fixture::FakeLlm, Some(ca), netns, &[])
    }

    /// The fake LLM API whose tool call runs `command` instead.
    pub fn fake_llm_with_command(ca: &TestCa, netns: &Netns, command: &str) -> Server {
        Server::start(Fixture::FakeLlm, Some(ca), netns, &[("FAKE_LLM_COMMAND", command)])
    }

    /// Starts `fixture`; TLS when `ca` is given, plain HTTP otherwise.
    pub fn start(fixture: Fixture, ca: Option<&TestCa>, netns: &Netns, env: &[(&str, &str)]) -> Server {
        require_program("node");
        let script = fixtures_dir().join(match fixture {
            Fixture::TlsServer => "tls-server.mjs",
            Fixture::FakeLlm => "fake-llm.mjs",
        });
        let dir = tempfile::Builder::new().prefix("ao-fixture-").tempdir().expect("tempdir");
        let log = dir.path().join("exchanges.jsonl");
        let stderr = dir.path().join("stderr.txt");
        let mut cmd = netns.command("node");
        cmd.arg(&script).args(["--port", "0", "--log"]).arg(&log);
        match ca {
            Some(ca) => cmd.arg("--cert").arg(&ca.cert).arg("--key").arg(&ca.key),
            None => cmd.arg("--plain"),
        };
        cmd.envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(File::create(&stderr).expect("stderr file"));
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start node {}: {e}", script.display()));
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_default();
        let port = serde_json::from_str::<Value>(&line).ok().and_then(|v| v["port"].as_u64()).map(|p| p as u16);
        let Some(port) = port else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{} did not report its port within 30s (stdout: {line:?}):\n{}",
                script.display(),
                std::fs::read_to_string(&stderr).unwrap_or_default()
            );
        };
        Server { child, port, tls: ca.is_some(), log, dir }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `https://localhost:PORT` (or `http://`), without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("{}://localhost:{}", if self.tls { "https" } else { "http" }, self.port)
    }

    /// `base_url() + path`; `path` starts with `/`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url())
    }

    /// Everything the server wrote on stderr (unknown routes of the fake LLM land here too).
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.txt")).unwrap_or_default()
    }

    /// Exchanges logged so far, in completion order. A server logs an exchange when its
    /// response has been handed to the kernel, so a client may finish a moment before its
    /// exchange is here: use `wait_requests` / `wait_for` right after a client returns.
    pub fn requests(&self) -> Vec<Exchange> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        // A line still being appended has no newline yet.
        let complete = text.rfind('\n').map_or("", |end| &text[..end]);
        complete.lines().filter(|l| !l.trim().is_empty()).map(Exchange::parse).collect()
    }

    /// Waits until at least `n` exchanges are logged.
    pub fn wait_requests(&self, n: usize, timeout: Duration) -> Vec<Exchange> {
        self.wait_for(n, timeout, |_| true)
    }

    /// Waits until at least `n` logged exchanges satisfy `pred`; returns those.
    pub fn wait_for(&self, n: usize, timeout: Duration, pred: impl Fn(&Exchange) -> bool) -> Vec<Exchange> {
        let deadline = Instant::now() + timeout;
        loop {
            let got: Vec<Exchange> = self.requests().into_iter().filter(&pred).collect();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "fixture server logged {} of {n} expected exchanges within {timeout:?}; all: {:?}",
                got.len(),
                self.requests().iter().map(|e| format!("{} {} {}", e.method, e.path, e.status)).collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for `n` exchanges with exactly this path (and query).
    pub fn wait_path(&self, path: &str, n: usize) -> Vec<Exchange> {
        self.wait_for(n, Duration::from_secs(10), |e| e.path == path)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: signalling our own child; SIGTERM lets node exit cleanly.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The body `GET /big?bytes=N` sends: 32-byte lines of an 8-hex-digit offset, a space, 22
/// letters and a newline, cut at `n` bytes.
pub fn big_pattern(n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 32);
    let mut off = 0;
    while out.len() < n {
        out.extend_from_slice(format!("{off:08x} abcdefghijklmnopqrstuv\n").as_bytes());
        off += 32;
    }
    out.truncate(n);
    out
}

/// The body `GET /hello` sends.
pub const HELLO: &str = "hello from agent-observer\n";

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("bad base64 byte {c:#x}"),
        }
    };
    let bytes: Vec<u8> = s.bytes().filter(|&c| c != b'=').collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= val(c) << (18 - 6 * i);
        }
        let n = chunk.len().saturating_sub(1);
        out.extend_from_slice(&acc.to_be_bytes()[1..1 + n]);
    }
    out
}

// --------------------------------------------------------------------------------- clients

/// The Python of the test virtualenv (it has `requests`).
pub fn venv_python() -> PathBuf {
    require_file(&crate::tools_dir().join("venv/bin/python"), "the test virtualenv's python")
}

/// `python py-client.py ...` in `netns`, with the test venv's Python.
pub fn py_client(netns: &Netns) -> Command {
    let mut cmd = netns.command(venv_python());
    cmd.arg(fixtures_dir().join("py-client.py"));
    cmd
}

/// `node node-client.mjs ...` in `netns`.
pub fn node_client(netns: &Netns) -> Command {
    require_program("node");
    let mut cmd = netns.command("node");
    cmd.arg(fixtures_dir().join("node-client.mjs"));
    cmd
}

fn npm_dir() -> PathBuf {
    crate::tools_dir().join("npm/node_modules")
}

/// The Bun runtime installed from npm.
pub fn bun() -> PathBuf {
    require_file(&npm_dir().join("bun/bin/bun.exe"), "bun (npm package `bun`)")
}

static BUN_BUILD: Mutex<()> = Mutex::new(());

/// tests/fixtures/bun-client.ts compiled into a standalone, stripped binary in `dir`
/// (reused when already there; the rename into place is atomic, so concurrent test
/// processes may share `dir`).
///
/// `strip` on a finished `bun build --compile` output breaks it: Bun 1.4 keeps the module
/// graph in a `.bun` ELF section that it moves while compiling, and strip zeroes the pointer
/// left at the section's old place ("Script not found" at run time). So the Bun runtime is
/// stripped first and used as the executable the program is compiled into
/// (`--compile-executable-path`): the result has no `.symtab`, like a release binary.
pub fn bun_client(dir: &Path) -> PathBuf {
    let _serial = BUN_BUILD.lock().unwrap_or_else(|p| p.into_inner());
    let out = dir.join("bun-client");
    if out.exists() {
        return out;
    }
    require_program("strip");
    std::fs::create_dir_all(dir).expect("create bun-client dir");
    let pid = std::process::id();
    let runtime = dir.join(format!("bun-stripped.{pid}"));
    std::fs::copy(bun(), &runtime).expect("copy bun");
    run_checked(Command::new("strip").arg(&runtime), "strip bun");
    let tmp = dir.join(format!("bun-client.{pid}.part"));
    run_checked(
        Command::new(&runtime)
            .current_dir(dir)
            .args(["build", "--compile", "--compile-executable-path"])
            .arg(&runtime)
            .arg(fixtures_dir().join("bun-client.ts"))
            .arg("--outfile")
            .arg(&tmp),
        "bun build --compile bun-client.ts",
    );
    std::fs::rename(&tmp, &out).expect("rename bun-client");
    let _ = std::fs::remove_file(&runtime);
    out
}

/// `bun_client` in a cache folder under target/tmp/ named by the hashes of the source and of
/// the Bun runtime, so a test run compiles it once (about 1 s) and later runs reuse it.
pub fn bun_client_shared() -> PathBuf {
    let mut h = Sha256::new();
    h.update(std::fs::read(fixtures_dir().join("bun-client.ts")).expect("read bun-client.ts"));
    h.update(std::fs::metadata(bun()).map(|m| m.len().to_le_bytes()).expect("stat bun"));
    let key = hex::encode(&h.finalize()[..8]);
    bun_client(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../target/tmp/bun-client-{key}")))
}

/// The rustls client (tests/fixtures/rustls-client), built by `cargo build` next to this test
/// binary; built here if it is missing (as with `cargo test -p agent-observer-tests`).
pub fn rustls_client() -> PathBuf {
    if let Some(p) = std::env::var_os("AGENT_OBSERVER_RUSTLS_CLIENT") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>");
    let bin = profile_dir.join("rustls-client");
    static BUILD: Mutex<()> = Mutex::new(());
    let _serial = BUILD.lock().unwrap_or_else(|p| p.into_inner());
    if !bin.exists() {
        let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        cmd.current_dir(env!("CARGO_MANIFEST_DIR")).args(["build", "-q", "-p", "rustls-client"]);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        run_checked(&mut cmd, "cargo build -p rustls-client");
    }
    require_file(&bin, "rustls-client (cargo build --workspace)")
}

// ---------------------------------------------------------------------------------- agents

/// A HOME and a working directory for one agent run.
pub struct AgentDirs {
    pub root: tempfile::TempDir,
    pub home: PathBuf,
    pub cwd: PathBuf,
}

impl AgentDirs {
    pub fn new() -> AgentDirs {
        let root = tempfile::Builder::new().prefix("ao-agent-").tempdir().expect("tempdir");
        let home = root.path().join("home");
        let cwd = root.path().join("work");
        std::fs::create_dir_all(&home).expect("home");
        std::fs::create_dir_all(&cwd).expect("cwd");
        AgentDirs { root, home, cwd }
    }
}

impl Default for AgentDirs {
    fn default() -> Self {
        AgentDirs::new()
    }
}

/// A clean environment: nothing of the developer's (API keys, proxies, agent settings)
/// leaks into the agent.
fn agent_command(netns: &Netns, program: impl AsRef<OsStr>, home: &Path, cwd: &Path) -> Command {
    let mut cmd = netns.command(program);
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into()))
        .env("HOME", home)
        .env("USER", "root")
        .env("LANG", "C.UTF-8")
        .env("TERM", "dumb")
        .env("NO_COLOR", "1")
        .current_dir(cwd)
        .stdin(Stdio::null());
    cmd
}

fn claude_env(cmd: &mut Command, api_base: &str, ca: &TestCa) {
    cmd.env("ANTHROPIC_BASE_URL", api_base)
        .env("ANTHROPIC_API_KEY", "sk-ant-fake-agent-observer")
        .env("NODE_EXTRA_CA_CERTS", &ca.ca)
        // Claude Code refuses --dangerously-skip-permissions as root outside a sandbox.
        .env("IS_SANDBOX", "1")
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .env("DISABLE_TELEMETRY", "1")
        .env("DISABLE_AUTOUPDATER", "1")
        .env("DISABLE_ERROR_REPORTING", "1");
}

const CLAUDE_ARGS: &[&str] =
    &["--dangerously-skip-permissions", "--output-format", "stream-json", "--verbose", "--model", "claude-sonnet-4-5"];

/// The native Claude Code 2.1.197 binary (Bun, BoringSSL static, stripped).
pub fn claude_binary() -> PathBuf {
    require_file(
        &npm_dir().join("@anthropic-ai/claude-code-linux-x64/claude"),
        "Claude Code 2.1.197 (npm @anthropic-ai/claude-code)",
    )
}

/// Claude Code 2.1.197 (native) in `netns`, against `api_base` (e.g. `Server::base_url()`),
/// in `cwd` with its own `home`: `claude -p PROMPT --dangerously-skip-permissions
/// --output-format stream-json --verbose --model claude-sonnet-4-5`.
pub fn claude(netns: &Netns, home: &Path, cwd: &Path, api_base: &str, ca: &TestCa, prompt: &str) -> Command {
    let mut cmd = agent_command(netns, claude_binary(), home, cwd);
    claude_env(&mut cmd, api_base, ca);
    cmd.arg("-p").arg(prompt).args(CLAUDE_ARGS);
    cmd
}

/// Claude Code 2.1.112's cli.js (runs on the system node).
pub fn claude_node_cli() -> PathBuf {
    require_file(
        &crate::tools_dir().join("npm-claude-2.1.112/node_modules/@anthropic-ai/claude-code/cli.js"),
        "Claude Code 2.1.112 (npm @anthropic-ai/claude-code@2.1.112)",
    )
}

/// Claude Code 2.1.112 (`node cli.js`), configured like `claude()`.
pub fn claude_node(netns: &Netns, home: &Path, cwd: &Path, api_base: &str, ca: &TestCa, prompt: &str) -> Command {
    require_program("node");
    let mut cmd = agent_command(netns, "node", home, cwd);
    claude_env(&mut cmd, api_base, ca);
    cmd.arg(claude_node_cli()).arg("-p").arg(prompt).args(CLAUDE_ARGS);
    cmd
}

/// Gemini CLI 0.61.0's entry point (runs on the system node).
pub fn gemini_script() -> PathBuf {
    require_file(&npm_dir().join("@google/gemini-cli/bundle/gemini.js"), "Gemini CLI 0.61.0 (npm @google/gemini-cli)")
}

/// Gemini CLI 0.61.0 in `netns`: writes `home/.gemini/settings.json` (API-key auth, folder
/// trust off, telemetry, usage statistics and auto-update off), then
/// `gemini -p PROMPT --yolo -m gemini-2.5-pro`.
pub fn gemini(netns: &Netns, home: &Path, cwd: &Path, api_base: &str, ca: &TestCa, prompt: &str) -> Command {
    require_program("node");
    let settings_dir = home.join(".gemini");
    std::fs::create_dir_all(&settings_dir).expect("create .gemini");
    let settings = serde_json::json!({
        "security": { "auth": { "selectedType": "gemini-api-key" }, "folderTrust": { "enabled": false } },
        "telemetry": { "enabled": false },
        "privacy": { "usageStatisticsEnabled": false },
        "general": { "enableAutoUpdate": false, "enableAutoUpdateNotification": false },
    });
    std::fs::write(settings_dir.join("settings.json"), serde_json::to_vec_pretty(&settings).expect("json"))
        .expect("write gemini settings");
    let mut cmd = agent_command(netns, "node", home, cwd);
    cmd.env("GOOGLE_GEMINI_BASE_URL", api_base)
        .env("GEMINI_API_KEY", "fake-gemini-key-agent-observer")
        .env("NODE_EXTRA_CA_CERTS", &ca.ca)
        .env("GEMINI_CLI_TRUST_WORKSPACE", "true")
        .arg(gemini_script())
        .arg("-p")
        .arg(prompt)
        .args(["--yolo", "-m", "gemini-2.5-pro"]);
    cmd
}

/// Aider's entry point in its own virtualenv; installed only on request.
pub fn aider_binary() -> PathBuf {
    let bin = crate::tools_dir().join("aider-venv/bin/aider");
    assert!(
        bin.exists(),
        "Aider not found at {}: run `AGENT_OBSERVER_AIDER=1 cargo xtask setup --tests` (opt-in, about 1-2 minutes)",
        bin.display()
    );
    bin
}

/// Aider 0.86.2 (CPython on the system's libssl) against the fake OpenAI API at
/// `api_base/v1`. stdin is at EOF so its questions take their defaults, which runs the
/// suggested shell command (`--yes-always` would answer no to shell commands).
pub fn aider(netns: &Netns, home: &Path, cwd: &Path, api_base: &str, ca: &TestCa, prompt: &str) -> Command {
    let mut cmd = agent_command(netns, aider_binary(), home, cwd);
    cmd.env("OPENAI_API_BASE", format!("{api_base}/v1"))
        .env("OPENAI_API_KEY", "sk-fake-agent-observer")
        .env("SSL_CERT_FILE", &ca.bundle)
        .env("REQUESTS_CA_BUNDLE", &ca.bundle)
        .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        .args(["--model", "openai/gpt-4o", "--message"])
        .arg(prompt)
        .args([
            "--no-git",
            "--no-check-update",
            "--no-analytics",
            "--no-stream",
            "--edit-format",
            "diff",
            "--suggest-shell-commands",
        ]);
    cmd
}

// ------------------------------------------------------------------------------- running

/// Runs `cmd` to completion with a deadline. On timeout the whole process group is killed
/// and the test fails with `what`, the timeout and the tails of stdout and stderr.
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration, what: &str) -> Output {
    let mut child = cmd
        .process_group(0)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: cannot start {cmd:?}: {e}"));
    let drain = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = drain(child.stdout.take().map(|s| Box::new(s) as Box<dyn Read + Send>));
    let err = drain(child.stderr.take().map(|s| Box::new(s) as Box<dyn Read + Send>));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if Instant::now() >= deadline {
            // SAFETY: the child leads its own process group (process_group(0) above).
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    match status {
        Some(status) => Output { status, stdout, stderr },
        None => panic!(
            "{what}: killed after {timeout:?} without finishing\n--- stdout (tail) ---\n{}\n--- stderr (tail) ---\n{}",
            tail(&stdout),
            tail(&stderr)
        ),
    }
}

/// The last 4 KiB of a process's output, for failure messages.
pub fn tail(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    let start = s.len().saturating_sub(4096);
    let start = (start..s.len()).find(|&i| s.is_char_boundary(i)).unwrap_or(s.len());
    s[start..].to_owned()
}
