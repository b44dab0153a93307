//! The TLS / HTTP fixtures themselves, without the daemon: the servers log exactly what the
//! clients sent and received, every client completes against them, and the real agent CLIs
//! finish a tool loop against the fake LLM API. Needs root (network namespaces).

use std::{path::Path, process::Command, time::Duration};

use agent_observer_tests::tls::{
    self, AgentDirs, Exchange, HELLO, Netns, Server, TestCa, big_pattern, run_with_timeout, sha256_hex,
};

const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);
const AGENT_TIMEOUT: Duration = Duration::from_secs(120);

fn curl(ns: &Netns, ca: &TestCa, args: &[&str]) -> Vec<u8> {
    let mut cmd = ns.command("curl");
    cmd.args(["-sS", "--fail", "--max-time", "30", "--cacert"]).arg(&ca.ca).args(args);
    let out = run_with_timeout(&mut cmd, CLIENT_TIMEOUT, "curl");
    assert!(out.status.success(), "curl {args:?}: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    out.stdout
}

fn stdout_of(cmd: &mut Command, what: &str) -> String {
    let out = run_with_timeout(cmd, CLIENT_TIMEOUT, what);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{what}: {}\nstdout: {stdout}\nstderr: {}", out.status, tls::tail(&out.stderr));
    stdout
}

fn write_payload(dir: &Path, len: usize) -> (std::path::PathBuf, String) {
    // Not a repeating pattern: every byte position differs from its neighbours'.
    let data: Vec<u8> = (0..len).map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3]).collect();
    let path = dir.join(format!("payload-{len}.bin"));
    std::fs::write(&path, &data).expect("write payload");
    (path, sha256_hex(&data))
}

#[test]
fn tls_server_speaks_h1_and_h2() {
    let ns = Netns::new();
    let ca = TestCa::create();
    let server = Server::tls(&ca, &ns);
    let port = server.port;

    for (flag, version, alpn) in [("--http1.1", "1.1", "http/1.1"), ("--http2", "2.0", "h2")] {
        let body = curl(&ns, &ca, &[flag, &server.url("/hello")]);
        assert_eq!(body, HELLO.as_bytes());
        let echoed = curl(&ns, &ca, &[flag, "--data-binary", &format!("echo over {version}"), &server.url("/echo")]);
        assert_eq!(echoed, format!("echo over {version}").as_bytes());
        let n = if version == "1.1" { 1 } else { 2 };
        let hello = server.wait_path("/hello", n).pop().expect("hello logged");
        assert_eq!((hello.http_version.as_str(), hello.alpn.as_deref()), (version, Some(alpn)));
        assert_eq!(hello.response_body, body);
        assert_eq!(hello.response_body_sha256, sha256_hex(&body));
        let echo = server.wait_path("/echo", n).pop().expect("echo logged");
        assert_eq!(echo.http_version, version);
        assert_eq!(echo.request_body, echoed);
        assert_eq!(echo.response_body, echoed);
        assert_eq!(echo.request_body_sha256, sha256_hex(&echoed));
        assert_eq!(echo.method, "POST");
    }
    // The request headers are logged raw: HTTP/1.1 keeps curl's case, h2 has pseudo-headers.
    let hellos = server.wait_path("/hello", 2);
    assert_eq!(hellos[0].request_header("Host"), Some(format!("localhost:{port}").as_str()));
    assert!(hellos[0].request_headers.iter().any(|(n, _)| n == "User-Agent"));
    assert!(hellos[0].response_head_raw.as_deref().unwrap_or_default().starts_with("HTTP/1.1 200 OK\r\n"));
    assert_eq!(hellos[1].request_header(":path"), Some("/hello"));
    assert_eq!(hellos[1].response_headers[0], (":status".to_owned(), "200".to_owned()));

    // The leaf is valid for every SAN.
    for host in ["127.0.0.1", "[::1]"] {
        assert_eq!(curl(&ns, &ca, &[&format!("https://{host}:{port}/hello")]), HELLO.as_bytes());
    }
}

#[test]
fn plain_server_speaks_http1() {
    let ns = Netns::new();
    let ca = TestCa::create();
    let server = Server::plain(&ns);
    assert!(server.url("/hello").starts_with("http://"));
    assert_eq!(curl(&ns, &ca, &[&server.url("/hello")]), HELLO.as_bytes());
    let logged = server.wait_path("/hello", 1);
    assert_eq!((logged[0].http_version.as_str(), logged[0].alpn.as_deref()), ("1.1", None));
}

#[test]
fn sse_stream_has_all_events() {
    let ns = Netns::new();
    let ca = TestCa::create();
    let server = Server::tls(&ca, &ns);
    let path = "/sse?n=20&interval_ms=10&pad=40";
    for (n, flag) in ["--http1.1", "--http2"].into_iter().enumerate() {
        let body = curl(&ns, &ca, &[flag, "-N", &server.url(path)]);
        let text = String::from_utf8(body.clone()).expect("utf-8");
        let events: Vec<serde_json::Value> = text
            .split("\n\n")
            .filter(|e| !e.is_empty())
            .map(|e| serde_json::from_str(e.strip_prefix("data: ").expect("data: line")).expect("event json"))
            .collect();
        assert_eq!(events.len(), 20, "{flag}: {text}");
        for (i, e) in events.iter().enumerate() {
            assert_eq!(e["i"], i, "{flag}: events in order");
            assert_eq!(e["pad"].as_str().map(str::len), Some(40));
        }
        let logged = server.wait_path(path, n + 1).pop().expect("sse logged");
        assert_eq!(logged.response_body, body, "{flag}: the log holds the whole stream");
        assert!(!logged.aborted);
        assert!(logged.response_headers.iter().any(|(n, v)| n == "content-type" && v == "text/event-stream"));
    }
}

#[test]
fn big_bodies_match_the_log_both_ways() {
    let ns = Netns::new();
    let ca = TestCa::create();
    let server = Server::tls(&ca, &ns);
    let n = 3 * 1024 * 1024 + 17;
    let big = curl(&ns, &ca, &["--http1.1", &server.url(&format!("/big?bytes={n}"))]);
    assert_eq!(big.len(), n);
    assert!(big == big_pattern(n), "GET /big differs from big_pattern()");
    assert_eq!(server.wait_path(&format!("/big?bytes={n}"), 1)[0].response_body_sha256, sha256_hex(&big));

    let (payload, sha) = write_payload(ca.dir.path(), 2 * 1024 * 1024 + 5);
    for flag in ["--http1.1", "--http2"] {
        let reply =
            curl(&ns, &ca, &[flag, "--data-binary", &format!("@{}", payload.display()), &server.url("/upload")]);
        let reply: serde_json::Value = serde_json::from_slice(&reply).expect("upload json");
        assert_eq!(reply["bytes"], 2 * 1024 * 1024 + 5);
        assert_eq!(reply["sha256"], sha);
    }
    for e in server.wait_path("/upload", 2) {
        assert_eq!(e.request_body_sha256, sha);
        assert_eq!(sha256_hex(&e.request_body), sha);
    }
}

#[test]
fn python_node_bun_clients_complete() {
    let ns = Netns::new();
    let ca = TestCa::create();
    let server = Server::tls(&ca, &ns);
    let (payload, sha) = write_payload(ca.dir.path(), 2 * 1024 * 1024);
    let bun = tls::bun_client_shared();
    let cafile = ca.ca.to_str().expect("utf-8 path").to_owned();
    let payload = payload.to_str().expect("utf-8 path").to_owned();

    type Client<'a> = (&'static str, Box<dyn Fn() -> Command + 'a>);
    let clients: Vec<Client> = vec![
        (
            "urllib",
            Box::new(|| {
                let mut c = tls::py_client(&ns);
                c.args(["--lib", "urllib"]);
                c
            }),
        ),
        (
            "requests",
            Box::new(|| {
                let mut c = tls::py_client(&ns);
                c.args(["--lib", "requests"]);
                c
            }),
        ),
        ("node", Box::new(|| tls::node_client(&ns))),
        ("bun", Box::new(|| ns.command(&bun))),
    ];
    for (name, make) in &clients {
        let hello =
            stdout_of(make().args(["--url", &server.url("/hello"), "--cafile", &cafile, "--repeat", "2"]), name);
        assert_eq!(hello, format!("status=200 bytes={len}\nstatus=200 bytes={len}\n", len = HELLO.len()), "{name}");
        let upload = stdout_of(
            make().args(["--url", &server.url("/upload"), "--cafile", &cafile, "--data-file", &payload]),
            name,
        );
        assert!(upload.starts_with("status=200 "), "{name}: {upload}");
    }
    // Bun also trusts the CA through NODE_EXTRA_CA_CERTS, without --cafile.
    let via_env = stdout_of(
        ns.command(&bun).env("NODE_EXTRA_CA_CERTS", &ca.ca).args(["--url", &server.url("/hello")]),
        "bun with NODE_EXTRA_CA_CERTS",
    );
    assert!(via_env.starts_with("status=200"));

    let hellos = server.wait_path("/hello", 2 * clients.len() + 1);
    assert_eq!(hellos.len(), 2 * clients.len() + 1);
    let uploads = server.wait_path("/upload", clients.len());
    assert_eq!(uploads.len(), clients.len());
    for u in &uploads {
        assert_eq!(u.request_body_sha256, sha, "upload from {:?}", u.request_header("user-agent"));
    }
    // The keep-alive clients sent their two requests over one connection.
    let agents = |ua: &str| {
        hellos
            .iter()
            .filter(|e| e.request_header("user-agent").is_some_and(|v| v.contains(ua)))
            .map(|e| e.remote_port)
            .collect::<Vec<_>>()
    };
    for ua in ["python-requests", "Bun/"] {
        let ports = agents(ua);
        assert!(ports.len() >= 2 && ports[0] == ports[1], "{ua}: {ports:?}");
    }

    // The Bun client is a stripped standalone binary.
    let sections = stdout_of(Command::new("readelf").args(["-S", "-W"]).arg(&bun), "readelf");
    assert!(sections.contains(".bun") && !sections.contains(".symtab"), "bun-client is not a stripped Bun binary");
}

#[test]
fn rustls_client_completes() {
    let ns = Netns::new();
    let ca = TestCa::create();
    let server = Server::tls(&ca, &ns);
    let client = tls::rustls_client();
    let out = stdout_of(
        ns.command(&client).arg("--url").arg(server.url("/hello")).arg("--cafile").arg(&ca.ca).args(["--repeat", "3"]),
        "rustls-client",
    );
    assert_eq!(out.matches("HTTP/1.1 200 OK\n").count(), 3, "{out}");
    assert_eq!(out.matches(&format!("bytes={}\n", HELLO.len())).count(), 3, "{out}");
    let hellos = server.wait_path("/hello", 3);
    assert_eq!(hellos.len(), 3);
    assert!(hellos.iter().all(|e| e.remote_port == hellos[0].remote_port && e.http_version == "1.1"));
    assert_eq!(hellos[0].request_header("user-agent"), Some("rustls-client"));

    // A server certificate from another CA is refused.
    let other = TestCa::create();
    let out = run_with_timeout(
        ns.command(&client).arg("--url").arg(server.url("/hello")).arg("--cafile").arg(&other.ca),
        CLIENT_TIMEOUT,
        "rustls-client with the wrong CA",
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("certificate"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn fake_llm_speaks_openai_and_anthropic_without_an_agent() {
    let ns = Netns::new();
    let ca = TestCa::create();
    let llm = Server::fake_llm_with_command(&ca, &ns, "touch x");
    let post = |path: &str, body: serde_json::Value| {
        curl(&ns, &ca, &["-H", "content-type: application/json", "--data-binary", &body.to_string(), &llm.url(path)])
    };
    let tools = serde_json::json!([{ "type": "function", "function": { "name": "shell", "parameters": {} } }]);
    let first = post(
        "/v1/chat/completions",
        serde_json::json!({ "model": "gpt-4o", "stream": true, "stream_options": { "include_usage": true }, "tools": tools,
            "messages": [{ "role": "user", "content": "hi" }] }),
    );
    let first = String::from_utf8(first).expect("utf-8");
    assert!(first.contains(r#""name":"shell""#), "{first}");
    assert!(first.contains(r#""finish_reason":"tool_calls""#) && first.contains(r#""total_tokens""#), "{first}");
    assert!(first.ends_with("data: [DONE]\n\n"));
    let second = post(
        "/v1/chat/completions",
        serde_json::json!({ "model": "gpt-4o", "tools": tools, "messages": [
            { "role": "user", "content": "hi" },
            { "role": "assistant", "tool_calls": [{ "id": "c1", "type": "function", "function": { "name": "shell", "arguments": "{}" } }] },
            { "role": "tool", "tool_call_id": "c1", "content": "" }] }),
    );
    let second: serde_json::Value = serde_json::from_slice(&second).expect("json");
    assert_eq!(second["choices"][0]["message"]["content"], "done");
    assert!(second["usage"]["prompt_tokens"].as_u64() > Some(0));

    let msg = post(
        "/v1/messages",
        serde_json::json!({ "model": "claude-sonnet-4-5", "max_tokens": 10, "tools": [{ "name": "Bash", "input_schema": {} }],
            "messages": [{ "role": "user", "content": "hi" }] }),
    );
    let msg: serde_json::Value = serde_json::from_slice(&msg).expect("json");
    assert_eq!(msg["stop_reason"], "tool_use");
    assert_eq!(msg["content"][1]["input"]["command"], "touch x");
    assert_eq!(llm.wait_requests(3, Duration::from_secs(10)).len(), 3);
}

/// What a finished agent run left behind: exit 0, at least `min_calls` model requests, and
/// the marker file the tool call writes.
fn assert_tool_loop(agent: &str, dirs: &AgentDirs, llm: &Server, out: &std::process::Output, min_calls: usize) {
    let context = || {
        format!(
            "\n--- {agent} stdout ---\n{}\n--- {agent} stderr ---\n{}\n--- fake LLM ---\n{}\n{}",
            tls::tail(&out.stdout),
            tls::tail(&out.stderr),
            llm.requests()
                .iter()
                .map(|e| format!("{} {} -> {}", e.method, e.path, e.status))
                .collect::<Vec<_>>()
                .join("\n"),
            llm.stderr()
        )
    };
    let calls: Vec<String> = llm.requests().iter().map(|e| format!("{} {} {}", e.method, e.path, e.status)).collect();
    eprintln!("{agent} called the fake API: {calls:#?}");
    assert!(out.status.success(), "{agent} exited with {}{}", out.status, context());
    let calls = llm.requests();
    let model_calls = calls.iter().filter(|e| e.method == "POST" && e.status == 200).count();
    assert!(model_calls >= min_calls, "{agent}: expected at least {min_calls} model requests{}", context());
    let marker = std::fs::read_to_string(dirs.cwd.join("marker.txt")).unwrap_or_default();
    assert_eq!(marker, "agent-observer-marker\n", "{agent}: the tool call did not run{}", context());
}

#[test]
fn claude_code_completes_a_tool_loop_against_the_fake_api() {
    let ns = Netns::new();
    let ca = TestCa::create();
    let llm = Server::fake_llm(&ca, &ns);
    let dirs = AgentDirs::new();
    let mut cmd = tls::claude(&ns, &dirs.home, &dirs.cwd, &llm.base_url(), &ca, "Create the marker file.");
    let out = run_with_timeout(&mut cmd, AGENT_TIMEOUT, "Claude Code 2.1.197");
    assert_tool_loop("claude", &dirs, &llm, &out, 2);
    let messages: Vec<Exchange> = llm.requests().into_iter().filter(|e| e.path.starts_with("/v1/messages")).collect();
    assert!(
        messages.iter().all(|e| e.request_header("user-agent").is_some_and(|ua| ua.starts_with("claude-cli/2.1.197")))
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(r#""result":"done""#));
}

#[test]
fn claude_code_node_completes_a_tool_loop_against_the_fake_api() {
    let ns = Netns::new();
    let ca = TestCa::create();
    let llm = Server::fake_llm(&ca, &ns);
    let dirs = AgentDirs::new();
    let mut cmd = tls::claude_node(&ns, &dirs.home, &dirs.cwd, &llm.base_url(), &ca, "Create the marker file.");
    let out = run_with_timeout(&mut cmd, AGENT_TIMEOUT, "Claude Code 2.1.112 (node)");
    assert_tool_loop("claude (node)", &dirs, &llm, &out, 2);
}

#[test]
fn gemini_cli_completes_a_tool_loop_against_the_fake_api() {
    let ns = Netns::new();
    let ca = TestCa::create();
    let llm = Server::fake_llm(&ca, &ns);
    let dirs = AgentDirs::new();
    let mut cmd = tls::gemini(&ns, &dirs.home, &dirs.cwd, &llm.base_url(), &ca, "Create the marker file.");
    let out = run_with_timeout(&mut cmd, AGENT_TIMEOUT, "Gemini CLI 0.61.0");
    assert_tool_loop("gemini", &dirs, &llm, &out, 2);
    let streamed = llm.requests().into_iter().filter(|e| e.path.contains(":streamGenerateContent")).count();
    assert!(streamed >= 2, "gemini streamed {streamed} requests");
}

#[test]
#[ignore = "Aider is opt-in: AGENT_OBSERVER_AIDER=1 cargo xtask setup --tests, then run with --ignored"]
fn aider_completes_a_shell_command_against_the_fake_api() {
    let ns = Netns::new();
    let ca = TestCa::create();
    let llm = Server::fake_llm(&ca, &ns);
    let dirs = AgentDirs::new();
    let mut cmd = tls::aider(&ns, &dirs.home, &dirs.cwd, &llm.base_url(), &ca, "Create the marker file.");
    let out = run_with_timeout(&mut cmd, AGENT_TIMEOUT, "Aider 0.86.2");
    // In --message mode Aider makes one request, then runs the suggested command.
    assert_tool_loop("aider", &dirs, &llm, &out, 1);
}
