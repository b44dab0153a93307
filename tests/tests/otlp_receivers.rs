//! Issue 2: a real OTLP receiver (rotel) gets the same spans over gRPC and HTTP/protobuf as
//! the OTLP/JSON file.

use std::{process::Command, time::Duration};

use agent_observer_tests::{daemon::Daemon, kernel_lock, otlp::session_in, receivers::Rotel, script};

fn session_over(protocol: &str, endpoint: String) {
    let rotel = Rotel::start();
    let endpoint = endpoint.replace("GRPC", &rotel.grpc.to_string()).replace("HTTP", &rotel.http.to_string());
    let daemon = Daemon::start(&["--otlp", "--otlp-protocol", protocol, "--otlp-endpoint", &endpoint]);
    let dir = tempfile::tempdir().unwrap();
    let agent = dir.path().join("codex");
    script(&agent, "sh -c 'ls > /dev/null; exit 2'\n/bin/echo --api-key sk-live-0123456789abcdefghij >/dev/null");
    assert!(Command::new(&agent).current_dir(dir.path()).status().unwrap().success());
    let out = daemon.stop();
    assert!(out.status.success(), "{}", out.log);
    let (root, trace) = session_in(&out.spans, dir.path());
    let received = rotel.wait_for(trace.len(), Duration::from_secs(20));
    for span in &trace {
        let got = received
            .iter()
            .find(|r| r.span_id == span.span_id)
            .unwrap_or_else(|| panic!("{protocol}: span {} ({}) not received; got {received:#?}", span.name, span.span_id));
        assert_eq!(got.trace_id, span.trace_id);
        assert_eq!(got.parent, span.parent);
        assert_eq!(got.name, span.name);
        assert_eq!(got.resource.get("service.name").map(String::as_str), Some("Str(agent-observer)"));
    }
    let got_root = received.iter().find(|r| r.span_id == root.span_id).unwrap();
    assert_eq!(got_root.attrs.get("gen_ai.agent.name").map(String::as_str), Some("Str(codex)"));
    let sh = received.iter().find(|r| r.name == "exec sh" && r.trace_id == root.trace_id).unwrap();
    assert_eq!(sh.attrs.get("process.exit.code").map(String::as_str), Some("Int(2)"));
    assert_eq!(sh.status, "STATUS_CODE_ERROR");
    let echo = received.iter().find(|r| r.name == "exec echo" && r.trace_id == root.trace_id).unwrap();
    let args = echo.attrs.get("process.command_args").unwrap();
    assert!(!args.contains("sk-live") && args.contains("[REDACTED]"), "secret exported: {args}");
}

#[test]
fn rotel_receives_the_same_spans_over_grpc() {
    let _k = kernel_lock();
    session_over("grpc", "http://127.0.0.1:GRPC".into());
}

#[test]
fn rotel_receives_the_same_spans_over_http_protobuf() {
    let _k = kernel_lock();
    session_over("http/protobuf", "http://127.0.0.1:HTTP/v1/traces".into());
}

#[test]
fn a_collector_that_is_down_is_reported_and_the_file_still_gets_everything() {
    let _k = kernel_lock();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let endpoint = format!("http://127.0.0.1:{port}/v1/traces");
    let daemon = Daemon::start(&["--otlp", "--otlp-protocol", "http/protobuf", "--otlp-endpoint", &endpoint]);
    let dir = tempfile::tempdir().unwrap();
    let agent = dir.path().join("aider");
    script(&agent, "/bin/true");
    assert!(Command::new(&agent).current_dir(dir.path()).status().unwrap().success());
    let out = daemon.stop();
    assert_eq!(out.status.code(), Some(0), "{}", out.log);
    let (_, trace) = session_in(&out.spans, dir.path());
    assert_eq!(trace.len(), 2);
    assert!(out.log.contains("could not be delivered over OTLP"), "log: {}", out.log);
}
