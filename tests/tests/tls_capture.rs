//! Issue 4: TLS plaintext and socket bytes, captured from real clients on every TLS stack
//! agents use, compared byte for byte with what the test server logged; and connections whose
//! plaintext could not be captured reported as such.
//!
//! Clients run under `agent-observer watch` inside a loopback-only network namespace, with the
//! test server in the same namespace.

use std::{ffi::OsStr, process::Output, time::Duration};

use agent_observer_tests::{
    bin,
    dump::{self, Stream},
    kernel_lock,
    otlp::{SpanRec, read_spans},
    tls::{self, Exchange, HELLO, Netns, Server, TestCa, big_pattern, run_with_timeout, sha256_hex},
};

const TIMEOUT: Duration = Duration::from_secs(120);

struct Captured {
    out: Output,
    spans: Vec<SpanRec>,
    streams: Vec<Stream>,
    _dir: tempfile::TempDir,
}

impl Captured {
    /// The client's TLS plaintext in one direction, all streams joined in capture order.
    fn tls(&self, direction: &str) -> Vec<u8> {
        self.joined("tls", direction)
    }

    fn joined(&self, kind: &str, direction: &str) -> Vec<u8> {
        self.streams
            .iter()
            .filter(|s| s.kind == kind && s.direction == direction)
            .flat_map(|s| s.bytes.clone())
            .collect()
    }

    fn connections(&self) -> Vec<&SpanRec> {
        self.spans.iter().filter(|s| s.name.starts_with("connection ")).collect()
    }

    fn assert_lossless(&self) {
        for s in &self.streams {
            assert_eq!(s.lost_bytes, 0, "{} lost bytes", s.file);
        }
    }
}

/// Runs `cmd` under `agent-observer watch` in `ns`, dumping streams.
fn watch(ns: &Netns, cmd: &[&OsStr], env: &[(&str, &OsStr)]) -> Captured {
    let dir = tempfile::tempdir().unwrap();
    let spans = dir.path().join("spans.json");
    let streams = dir.path().join("streams");
    let mut c = ns.command(bin());
    c.arg("watch").arg("--dump-streams").arg(&streams).arg("--output-file").arg(&spans).arg("--").args(cmd);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = run_with_timeout(&mut c, TIMEOUT, "agent-observer watch");
    assert!(out.status.success(), "watch failed: {}\n{}", out.status, tls::tail(&out.stderr));
    Captured { spans: read_spans(&spans), streams: dump::read(&streams), out, _dir: dir }
}

/// The request and response bytes of an HTTP/1.1 exchange, as they must appear on the wire.
fn assert_h1_exchange(cap: &Captured, ex: &Exchange) {
    let sent = cap.tls("send");
    let received = cap.tls("recv");
    let requests = dump::http1_messages(&sent);
    let request = requests
        .iter()
        .find(|m| m.starts_with(format!("{} {} HTTP/1.1\r\n", ex.method, ex.path).as_bytes()))
        .unwrap_or_else(|| panic!("request {} {} not captured; sent: {:?}", ex.method, ex.path, String::from_utf8_lossy(&sent)));
    let head = String::from_utf8_lossy(&request[..request.windows(4).position(|w| w == b"\r\n\r\n").unwrap()]).to_string();
    for (name, value) in &ex.request_headers {
        assert!(
            head.to_ascii_lowercase().contains(&format!("{}: {}", name.to_ascii_lowercase(), value.to_ascii_lowercase())),
            "header {name}: {value} missing from captured head:\n{head}"
        );
    }
    assert_eq!(dump::http1_body(request).unwrap(), ex.request_body, "request body");
    let head_raw = ex.response_head_raw.as_deref().expect("server logged the raw response head");
    let at = received
        .windows(head_raw.len())
        .position(|w| w == head_raw.as_bytes())
        .unwrap_or_else(|| panic!("response head not captured exactly:\n{head_raw}\n--- captured:\n{}", String::from_utf8_lossy(&received)));
    let response = &dump::http1_messages(&received[at..])[0];
    assert_eq!(dump::http1_body(response).unwrap(), ex.response_body, "response body");
}

fn assert_captured_connection(cap: &Captured, port: u16) {
    let conns = cap.connections();
    let conn = conns
        .iter()
        .find(|s| s.int("server.port") == Some(port as i64) && s.bool("agent_observer.connection.tls") == Some(true))
        .unwrap_or_else(|| panic!("no TLS connection span to port {port}: {conns:#?}"));
    assert_eq!(conn.str("tls.client.server_name"), Some("localhost"));
    assert_eq!(conn.str("agent_observer.tls.plaintext"), Some("captured"), "{conn:#?}");
    assert!(conn.int("agent_observer.connection.bytes_sent").unwrap() > 0);
}

#[test]
fn curl_http1_request_and_response_bytes_are_exact() {
    let _k = kernel_lock();
    let ns = Netns::new();
    let ca = TestCa::create();
    let server = Server::tls(&ca, &ns);
    let url = server.url("/echo");
    let cap = watch(
        &ns,
        &["curl", "-sS", "--http1.1", "--cacert", ca.ca.to_str().unwrap(), "--data-binary", "ping from curl", &url].map(OsStr::new),
        &[],
    );
    let ex = server.wait_path("/echo", 1).pop().unwrap();
    assert_h1_exchange(&cap, &ex);
    assert_captured_connection(&cap, server.port);
    cap.assert_lossless();
    assert!(cap.streams.iter().any(|s| s.kind == "tls" && s.library == 1), "libssl (OpenSSL) plaintext");
}

#[test]
fn curl_http2_frames_carry_the_exact_bodies() {
    let _k = kernel_lock();
    let ns = Netns::new();
    let ca = TestCa::create();
    let server = Server::tls(&ca, &ns);
    let url = server.url("/echo");
    let body = "h2 body from curl";
    let cap = watch(
        &ns,
        &["curl", "-sS", "--http2", "--cacert", ca.ca.to_str().unwrap(), "--data-binary", body, &url].map(OsStr::new),
        &[],
    );
    let ex = server.wait_path("/echo", 1).pop().unwrap();
    assert_eq!(ex.http_version, "2.0");
    let sent = cap.tls("send");
    assert!(sent.starts_with(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), "h2 preface: {:?}", &sent[..sent.len().min(40)]);
    // A DATA frame (type 0) whose payload is the body.
    let needle = [&(body.len() as u32).to_be_bytes()[1..], &[0u8]].concat();
    let at = sent.windows(needle.len()).position(|w| w == needle).expect("DATA frame header");
    assert_eq!(&sent[at + 9..at + 9 + body.len()], body.as_bytes());
    let recv = cap.tls("recv");
    assert!(recv.windows(ex.response_body.len()).any(|w| w == ex.response_body), "response DATA payload");
    assert_captured_connection(&cap, server.port);
    let conn = cap.connections().into_iter().find(|s| s.int("server.port") == Some(server.port as i64)).unwrap();
    assert!(format!("{:?}", conn.attrs.get("agent_observer.tls.alpn_offered")).contains("h2"));
    cap.assert_lossless();
}

#[test]
fn python_urllib_and_requests_are_captured() {
    let _k = kernel_lock();
    let ns = Netns::new();
    let ca = TestCa::create();
    let server = Server::tls(&ca, &ns);
    let payload = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(payload.path(), b"{\"from\":\"python\"}").unwrap();
    for (n, lib) in ["urllib", "requests"].into_iter().enumerate() {
        let python = tls::venv_python();
        let script = tls::fixtures_dir().join("py-client.py");
        let url = server.url("/echo");
        let cap = watch(
            &ns,
            &[
                python.as_os_str(),
                script.as_os_str(),
                OsStr::new("--url"),
                OsStr::new(&url),
                OsStr::new("--method"),
                OsStr::new("POST"),
                OsStr::new("--data-file"),
                payload.path().as_os_str(),
                OsStr::new("--lib"),
                OsStr::new(lib),
                OsStr::new("--cafile"),
                ca.ca.as_os_str(),
            ],
            &[],
        );
        let ex = server.wait_path("/echo", n + 1).pop().unwrap();
        assert_h1_exchange(&cap, &ex);
        assert_captured_connection(&cap, server.port);
        cap.assert_lossless();
    }
}

#[test]
fn node_https_is_captured_from_nodes_own_openssl() {
    let _k = kernel_lock();
    let ns = Netns::new();
    let ca = TestCa::create();
    let server = Server::tls(&ca, &ns);
    let script = tls::fixtures_dir().join("node-client.mjs");
    let url = server.url("/hello");
    let cap = watch(
        &ns,
        &[OsStr::new("node"), script.as_os_str(), OsStr::new("--url"), OsStr::new(&url), OsStr::new("--cafile"), ca.ca.as_os_str()],
        &[],
    );
    let ex = server.wait_path("/hello", 1).pop().unwrap();
    assert_eq!(ex.response_body, HELLO.as_bytes());
    assert_h1_exchange(&cap, &ex);
    assert_captured_connection(&cap, server.port);
    cap.assert_lossless();
}

#[test]
fn a_stripped_bun_binary_is_captured_through_boringssl() {
    let _k = kernel_lock();
    let ns = Netns::new();
    let ca = TestCa::create();
    let server = Server::tls(&ca, &ns);
    let client = tls::bun_client_shared();
    let url = server.url("/echo");
    let data = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(data.path(), b"from a stripped bun binary").unwrap();
    let cap = watch(
        &ns,
        &[
            client.as_os_str(),
            OsStr::new("--url"),
            OsStr::new(&url),
            OsStr::new("--method"),
            OsStr::new("POST"),
            OsStr::new("--data-file"),
            data.path().as_os_str(),
            OsStr::new("--cafile"),
            ca.ca.as_os_str(),
        ],
        &[("NODE_EXTRA_CA_CERTS", ca.ca.as_os_str())],
    );
    let ex = server.wait_path("/echo", 1).pop().unwrap();
    assert_h1_exchange(&cap, &ex);
    assert!(cap.streams.iter().any(|s| s.kind == "tls" && s.library == 2), "BoringSSL plaintext: {:#?}", cap.streams);
    assert_captured_connection(&cap, server.port);
}

#[test]
fn a_2_mib_upload_arrives_whole() {
    let _k = kernel_lock();
    let ns = Netns::new();
    let ca = TestCa::create();
    let server = Server::tls(&ca, &ns);
    let payload = big_pattern(2 << 20);
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &payload).unwrap();
    let url = server.url("/upload");
    let data = format!("@{}", file.path().display());
    let cap = watch(
        &ns,
        &["curl", "-sS", "--http1.1", "--cacert", ca.ca.to_str().unwrap(), "--data-binary", &data, &url].map(OsStr::new),
        &[],
    );
    let ex = server.wait_path("/upload", 1).pop().unwrap();
    assert_eq!(ex.request_body_sha256, sha256_hex(&payload));
    let sent = cap.tls("send");
    let request = &dump::http1_messages(&sent)[0];
    let body = dump::http1_body(request).unwrap();
    assert_eq!(body.len(), payload.len());
    assert_eq!(sha256_hex(&body), sha256_hex(&payload));
    cap.assert_lossless();
}

#[test]
fn a_long_sse_stream_is_captured_event_by_event() {
    let _k = kernel_lock();
    let ns = Netns::new();
    let ca = TestCa::create();
    let server = Server::tls(&ca, &ns);
    let n = 3000;
    let url = server.url(&format!("/sse?n={n}&interval_ms=0"));
    let cap = watch(&ns, &["curl", "-sS", "-N", "--http1.1", "--cacert", ca.ca.to_str().unwrap(), &url].map(OsStr::new), &[]);
    let ex = server.wait_for(1, Duration::from_secs(30), |e| e.path.starts_with("/sse")).pop().unwrap();
    let recv = cap.tls("recv");
    let head = ex.response_head_raw.as_deref().unwrap();
    let at = recv.windows(head.len()).position(|w| w == head.as_bytes()).expect("SSE response head");
    let body = dump::http1_body(&recv[at..]).unwrap();
    assert_eq!(sha256_hex(&body), ex.response_body_sha256, "the whole event stream, byte for byte");
    let events = String::from_utf8_lossy(&body).matches("data: ").count();
    assert_eq!(events, n);
    cap.assert_lossless();
}

#[test]
fn plain_http_bytes_are_exact() {
    let _k = kernel_lock();
    let ns = Netns::new();
    let server = Server::plain(&ns);
    let url = server.url("/echo");
    let cap = watch(&ns, &["curl", "-sS", "--data-binary", "plain ping", &url].map(OsStr::new), &[]);
    let ex = server.wait_path("/echo", 1).pop().unwrap();
    let sent = cap.joined("sock", "send");
    let request = &dump::http1_messages(&sent)[0];
    assert!(request.starts_with(b"POST /echo HTTP/1.1\r\n"));
    assert_eq!(dump::http1_body(request).unwrap(), b"plain ping");
    let recv = cap.joined("sock", "recv");
    let head = ex.response_head_raw.as_deref().unwrap();
    assert!(recv.starts_with(head.as_bytes()), "response head, exactly");
    assert_eq!(dump::http1_body(&recv).unwrap(), ex.response_body);
    let conn = cap.connections().into_iter().find(|s| s.int("server.port") == Some(server.port as i64)).unwrap();
    assert_eq!(conn.bool("agent_observer.connection.tls"), Some(false));
    assert_eq!(conn.int("agent_observer.connection.plaintext_bytes"), Some((sent.len() + recv.len()) as i64));
    cap.assert_lossless();
}

#[test]
fn a_rustls_client_is_reported_as_a_gap_with_its_server_name() {
    let _k = kernel_lock();
    let ns = Netns::new();
    let ca = TestCa::create();
    let server = Server::tls(&ca, &ns);
    let client = tls::rustls_client();
    let url = format!("https://localhost:{}/hello", server.port);
    let cap = watch(&ns, &[client.as_os_str(), OsStr::new("--url"), OsStr::new(&url), OsStr::new("--cafile"), ca.ca.as_os_str()], &[]);
    assert!(String::from_utf8_lossy(&cap.out.stdout).contains("200"), "{}", String::from_utf8_lossy(&cap.out.stdout));
    server.wait_path("/hello", 1);
    let conns = cap.connections();
    let conn = conns.iter().find(|s| s.int("server.port") == Some(server.port as i64)).expect("connection span");
    assert_eq!(conn.str("tls.client.server_name"), Some("localhost"));
    assert_eq!(conn.str("agent_observer.tls.plaintext"), Some("missing"));
    assert_eq!(conn.str("agent_observer.tls.gap_reason"), Some("unsupported-tls-library"));
    assert_eq!(conn.str("agent_observer.tls.library"), Some("rustls"));
    assert!(conn.int("agent_observer.connection.bytes_sent").unwrap() > 0);
    assert!(conn.int("agent_observer.connection.bytes_received").unwrap() > 0);
    assert!(conn.pid() > 0);
    assert!(cap.streams.iter().all(|s| s.kind != "tls"), "no plaintext for rustls");
}

#[test]
fn the_debug_view_shows_heads_with_secrets_redacted() {
    let _k = kernel_lock();
    let ns = Netns::new();
    let ca = TestCa::create();
    let server = Server::tls(&ca, &ns);
    let url = server.url("/echo");
    let mut c = ns.command(bin());
    c.args(["watch", "--debug-tls", "--", "curl", "-sS", "--http1.1", "--cacert"])
        .arg(&ca.ca)
        .args(["-H", "Authorization: Bearer sk-ant-api03-TOPSECRETTOPSECRET", "-H", "x-api-key: sk-live-ALSOSECRETALSOSECRET"])
        .args(["--data-binary", "hello debug", &url]);
    let out = run_with_timeout(&mut c, TIMEOUT, "watch --debug-tls");
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("POST /echo HTTP/1.1"), "{err}");
    assert!(!err.contains("TOPSECRET") && !err.contains("ALSOSECRET"), "secret in debug view:\n{err}");
    assert!(err.contains("[REDACTED]"), "{err}");
    server.wait_path("/echo", 1);
}

fn is_claude_request(ex: &Exchange) -> bool {
    ex.method == "POST" && ex.path.starts_with("/v1/messages")
}

#[test]
fn claude_code_native_and_gemini_cli_requests_are_captured() {
    let _k = kernel_lock();
    let dump_dir = tempfile::tempdir().unwrap();
    let daemon = agent_observer_tests::daemon::Daemon::start(&["--dump-streams", dump_dir.path().to_str().unwrap()]);
    let ns = Netns::new();
    let ca = TestCa::create();
    let api = Server::fake_llm(&ca, &ns);

    let dirs = tls::AgentDirs::new();
    let prompt = "agent-observer capture probe for claude";
    let out = run_with_timeout(&mut tls::claude(&ns, &dirs.home, &dirs.cwd, &api.base_url(), &ca, prompt), TIMEOUT, "claude");
    assert!(out.status.success(), "claude: {}", tls::tail(&out.stderr));
    api.wait_for(2, Duration::from_secs(30), is_claude_request);

    let gdirs = tls::AgentDirs::new();
    let gprompt = "agent-observer capture probe for gemini";
    let out = run_with_timeout(&mut tls::gemini(&ns, &gdirs.home, &gdirs.cwd, &api.base_url(), &ca, gprompt), TIMEOUT, "gemini");
    assert!(out.status.success(), "gemini: {}", tls::tail(&out.stderr));

    let stopped = daemon.stop();
    assert!(stopped.status.success(), "{}", stopped.log);
    let streams = dump::read(dump_dir.path());
    let sent_by = |agent: &str| -> String {
        streams
            .iter()
            .filter(|s| s.kind == "tls" && s.direction == "send" && s.agent.as_deref() == Some(agent))
            .map(|s| String::from_utf8_lossy(&s.bytes).into_owned())
            .collect()
    };
    let claude = sent_by("claude-code");
    assert!(claude.contains("POST /v1/messages"), "claude request line not captured; streams: {:#?}", streams.iter().map(|s| (&s.file, &s.agent, s.bytes.len())).collect::<Vec<_>>());
    assert!(claude.contains(prompt), "claude's prompt in its request body");
    let gemini = sent_by("gemini-cli");
    assert!(gemini.contains(":streamGenerateContent"), "gemini request not captured");
    assert!(gemini.contains(gprompt), "gemini's prompt in its request body");
    // The captured request bodies are what the fake API received.
    for ex in api.requests().iter().filter(|e| is_claude_request(e)) {
        assert!(claude.contains(&String::from_utf8_lossy(&ex.request_body).to_string()), "claude request body differs");
    }
    // Both sessions have their API connection with plaintext.
    let conns: Vec<&SpanRec> = stopped.spans.iter().filter(|s| s.name.starts_with("connection ") && s.int("server.port") == Some(api.port as i64)).collect();
    assert!(conns.iter().any(|c| c.str("agent_observer.tls.plaintext") == Some("captured")), "{conns:#?}");
}

#[test]
fn gnutls_is_probed_by_symbol_when_a_session_maps_it() {
    let _k = kernel_lock();
    let dump_dir = tempfile::tempdir().unwrap();
    let daemon = agent_observer_tests::daemon::Daemon::start(&["--dump-streams", dump_dir.path().to_str().unwrap()]);
    let ns = Netns::new();
    let ca = TestCa::create();
    let server = Server::tls(&ca, &ns);
    let request = "GET /hello HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("request.txt");
    std::fs::write(&input, request).unwrap();
    // An agent-named script: the daemon tracks it. libgnutls is not probed until a session maps
    // it, so the first client may talk before the probes are in (and must then say so).
    let agent = dir.path().join("claude");
    agent_observer_tests::script(
        &agent,
        &format!("exec gnutls-cli --logfile=/dev/null --x509cafile {} -p {} localhost < {}", ca.ca.display(), server.port, input.display()),
    );
    let run = |what: &str| {
        let out = run_with_timeout(&mut ns.command(&agent), TIMEOUT, what);
        assert!(out.status.success(), "{what}: {}", tls::tail(&out.stderr));
    };
    run("first gnutls-cli");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !daemon.log().contains("libgnutls") {
        assert!(std::time::Instant::now() < deadline, "libgnutls never probed:\n{}", daemon.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    run("second gnutls-cli");
    server.wait_path("/hello", 2);
    let stopped = daemon.stop();
    let streams = dump::read(dump_dir.path());
    let gnutls: Vec<&Stream> = streams.iter().filter(|s| s.kind == "tls" && s.library == 3).collect();
    let sent: Vec<&&Stream> = gnutls.iter().filter(|s| s.direction == "send").collect();
    assert!(!sent.is_empty(), "no GnuTLS plaintext: {streams:#?}");
    assert!(sent.iter().all(|s| s.bytes == request.as_bytes()), "exact request bytes");
    assert!(gnutls.iter().any(|s| s.direction == "recv" && String::from_utf8_lossy(&s.bytes).contains(HELLO)));
    let mut conns: Vec<&SpanRec> = stopped
        .spans
        .iter()
        .filter(|s| s.name.starts_with("connection ") && s.int("server.port") == Some(server.port as i64))
        .collect();
    conns.sort_by_key(|s| s.start);
    assert_eq!(conns.len(), 2, "{conns:#?}");
    match conns[0].str("agent_observer.tls.plaintext") {
        Some("captured") => {}
        other => {
            assert_eq!(other, Some("missing"));
            assert_eq!(conns[0].str("agent_observer.tls.gap_reason"), Some("probe-attached-late"), "{:#?}", conns[0]);
        }
    }
    assert_eq!(conns[1].str("agent_observer.tls.plaintext"), Some("captured"), "the second client is probed");
    assert_eq!(conns[1].str("agent_observer.tls.library"), Some("gnutls"));
}
