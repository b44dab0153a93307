//! Offline checks of deploy/: the Helm chart and the kustomization render, and what they render
//! passes Kubernetes 1.33's schemas strictly; the systemd unit verifies; every config file
//! passes the real binary's `check-config`; every flag used is one `agent-observer run` takes.
//!
//! Tools come from `cargo xtask setup --tests` (target/test-tools); a missing one fails the
//! test. No cluster, container engine or root is needed.

use std::{
    collections::BTreeMap,
    io::Write as _,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
};

use agent_observer_tests::{bin, tools_dir};
use serde_json::Value;

const K8S_VERSION: &str = "1.33";
const READY_FILE: &str = "/run/agent-observer/ready";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("repo root").to_path_buf()
}

fn tool(relative: &str) -> PathBuf {
    let path = tools_dir().join(relative);
    assert!(path.is_file(), "{} is missing: run `cargo xtask setup --tests`", path.display());
    path
}

/// Runs `cmd`, feeding `stdin`; returns its output whatever the exit status.
fn output(cmd: &mut Command, stdin: Option<&str>) -> Output {
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    if let Some(text) = stdin {
        // Dropping the handle closes the pipe, so the child sees EOF.
        let mut pipe = child.stdin.take().expect("stdin pipe");
        pipe.write_all(text.as_bytes()).expect("write stdin");
    }
    child.wait_with_output().expect("wait for child")
}

/// Runs `cmd` and returns its stdout; any failure panics with everything it printed.
fn run(cmd: &mut Command, stdin: Option<&str>) -> String {
    let out = output(cmd, stdin);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{cmd:?} failed ({})\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// helm with its config, cache and data directories kept out of $HOME.
fn helm(home: &Path) -> Command {
    let mut cmd = Command::new(tool("bin/helm"));
    cmd.current_dir(repo())
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_DATA_HOME", home.join("data"));
    cmd
}

fn helm_template(extra: &[&str]) -> String {
    let home = tempfile::tempdir().expect("tempdir");
    let chart = "deploy/helm/agent-observer";
    run(helm(home.path()).args(["lint", "--strict", chart]).args(extra), None);
    run(
        helm(home.path())
            .args(["template", "ao", chart, "--namespace", "agent-observer"])
            .args(["--kube-version", &format!("{K8S_VERSION}.0")])
            .args(extra),
        None,
    )
}

/// Validates every document against the Kubernetes schemas, strictly (unknown fields fail).
/// Returns the `kind/name` of each document the validator passed. A kind it has no schema for
/// only warns there, so a warning fails here.
fn validate(yaml: &str) -> Vec<String> {
    let out =
        run(Command::new(tool("venv/bin/kubernetes-validate")).args(["--strict", "-k", K8S_VERSION, "-"]), Some(yaml));
    let mut passed = Vec::new();
    for line in out.lines() {
        let resource = line
            .strip_prefix("INFO - passed for resource ")
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("kubernetes-validate did not pass a resource: {line}\nall output:\n{out}"));
        passed.push(resource.to_owned());
    }
    passed.sort();
    passed
}

/// YAML documents as JSON, through the PyYAML that kubernetes-validate uses.
fn parse_yaml(yaml: &str) -> Vec<Value> {
    const TO_JSON: &str = "import json, sys, yaml\n\
        json.dump([d for d in yaml.safe_load_all(sys.stdin) if d is not None], sys.stdout)";
    let json = run(Command::new(tool("venv/bin/python")).args(["-c", TO_JSON]), Some(yaml));
    match serde_json::from_str(&json).expect("PyYAML output is JSON") {
        Value::Array(docs) => docs,
        other => panic!("expected a list of documents, got {other}"),
    }
}

fn kind_names(docs: &[Value]) -> Vec<String> {
    let mut names: Vec<String> = docs
        .iter()
        .map(|d| format!("{}/{}", d["kind"].as_str().unwrap().to_lowercase(), d["metadata"]["name"].as_str().unwrap()))
        .collect();
    names.sort();
    names
}

fn the<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<&Value> = docs.iter().filter(|d| d["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "expected one {kind}, found {}", found.len());
    found[0]
}

fn env<'a>(container: &'a Value, name: &str) -> Option<&'a Value> {
    container["env"].as_array()?.iter().find(|e| e["name"] == name)
}

fn env_value<'a>(container: &'a Value, name: &str) -> &'a str {
    env(container, name).and_then(|e| e["value"].as_str()).unwrap_or_else(|| panic!("no env {name}: {container:#}"))
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array().unwrap_or_else(|| panic!("not a list: {v}")).iter().map(|s| s.as_str().expect("string")).collect()
}

/// `agent-observer check-config` on this text must succeed.
fn check_config(text: &str, what: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("config.toml");
    std::fs::write(&path, text).expect("write config");
    let out = run(Command::new(bin()).arg("check-config").arg(&path), None);
    assert!(out.contains("ok"), "{what}: check-config said {out:?}");
}

/// Every `--flag` must be one `agent-observer run --help` lists.
fn assert_run_flags(args: &[&str], what: &str) {
    let help = run(Command::new(bin()).args(["run", "--help"]), None);
    for flag in args.iter().filter(|a| a.starts_with("--")) {
        let name = flag.split('=').next().unwrap();
        assert!(
            help.split(|c: char| c.is_whitespace() || c == ',').any(|w| w == name),
            "{what}: `agent-observer run` has no flag {name}:\n{help}"
        );
    }
}

/// What both the chart and the kustomization must give the DaemonSet.
fn assert_daemonset(ds: &Value, configmap: &Value, what: &str) {
    assert_eq!(ds["spec"]["updateStrategy"]["type"], "RollingUpdate", "{what}");
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(pod["hostPID"], true, "{what}: /proc scanning needs the node's PIDs");
    assert_eq!(pod["terminationGracePeriodSeconds"], 30, "{what}");
    assert!(
        pod["tolerations"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t["operator"] == "Exists" && t.get("key").is_none())),
        "{what}: must tolerate every taint: {}",
        pod["tolerations"]
    );
    let containers = pod["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 1, "{what}");
    let c = &containers[0];
    assert_eq!(c["securityContext"]["privileged"], true, "{what}");
    assert_eq!(c["resources"]["limits"]["memory"], "128Mi", "{what}");

    let args = strings(&c["args"]);
    assert_eq!(args[0], "run", "{what}");
    assert!(args.contains(&"--quiet"), "{what}: the console view is for terminals");
    assert_run_flags(&args[1..], what);
    let after = |flag: &str| args.iter().position(|a| *a == flag).map(|i| args[i + 1]);
    assert_eq!(after("--ready-file"), Some(READY_FILE), "{what}");
    for probe in ["startupProbe", "readinessProbe"] {
        assert_eq!(strings(&c[probe]["exec"]["command"]), ["test", "-f", READY_FILE], "{what}: {probe}");
    }

    // Each mount: its volume, by mount path.
    let volumes: BTreeMap<&str, &Value> =
        pod["volumes"].as_array().expect("volumes").iter().map(|v| (v["name"].as_str().unwrap(), v)).collect();
    let mounts: BTreeMap<&str, (&Value, &Value)> = c["volumeMounts"]
        .as_array()
        .expect("volumeMounts")
        .iter()
        .map(|m| (m["mountPath"].as_str().unwrap(), (m, volumes[m["name"].as_str().unwrap()])))
        .collect();
    let (ready_mount, ready) = mounts["/run/agent-observer"];
    assert!(ready.get("emptyDir").is_some(), "{what}: the ready file must not outlive the pod: {ready}");
    assert_ne!(ready_mount["readOnly"], true, "{what}");
    let (btf_mount, btf) = mounts["/sys/kernel/btf"];
    assert_eq!(btf["hostPath"]["path"], "/sys/kernel/btf", "{what}");
    assert_eq!(btf_mount["readOnly"], true, "{what}");
    assert_eq!(mounts["/sys/kernel/tracing"].1["hostPath"]["path"], "/sys/kernel/tracing", "{what}");
    let (_, config) = mounts["/etc/agent-observer"];
    assert_eq!(config["configMap"]["name"], configmap["metadata"]["name"], "{what}");
    assert_eq!(after("--config"), Some("/etc/agent-observer/config.toml"), "{what}");
    assert!(configmap["data"]["config.toml"].is_string(), "{what}: {configmap}");
}

fn container(ds: &Value) -> &Value {
    &ds["spec"]["template"]["spec"]["containers"][0]
}

#[test]
fn helm_chart_defaults() {
    let yaml = helm_template(&[]);
    assert_eq!(
        validate(&yaml),
        ["configmap/ao-agent-observer", "daemonset/ao-agent-observer", "serviceaccount/ao-agent-observer"]
    );
    let docs = parse_yaml(&yaml);
    let (ds, cm, sa) = (the(&docs, "DaemonSet"), the(&docs, "ConfigMap"), the(&docs, "ServiceAccount"));
    assert_daemonset(ds, cm, "helm defaults");
    assert!(
        docs.iter().all(|d| d["metadata"]["namespace"] == "agent-observer"),
        "every object in the release namespace"
    );
    assert_eq!(ds["spec"]["template"]["spec"]["serviceAccountName"], sa["metadata"]["name"]);
    assert_eq!(sa["automountServiceAccountToken"], false);
    let c = container(ds);
    assert_eq!(c["image"], "agent-observer:0.1.0", "tag defaults to appVersion");
    assert_eq!(env_value(c, "OTEL_EXPORTER_OTLP_ENDPOINT"), "http://otel-collector.observability:4318");
    assert_eq!(env_value(c, "OTEL_EXPORTER_OTLP_PROTOCOL"), "http/protobuf");
    assert!(env(c, "OTEL_EXPORTER_OTLP_HEADERS").is_none(), "no headers secret by default");
    check_config(cm["data"]["config.toml"].as_str().unwrap(), "the chart's default config");
}

#[test]
fn helm_chart_overrides() {
    let custom = "[[agent]]\nname = \"house-bot\"\nexe = \"house-bot\"\n\n[catalogue]\ndisable = [\"amp\"]\n\n\
                  [redaction]\npatterns = ['CORP-[0-9a-f]{32}']\n\n[capture]\ncontent = false\n";
    let indented: String = custom.lines().map(|l| format!("  {l}\n")).collect();
    let values = format!(
        "otlp:\n  endpoint: https://collector.example.com:4317\n  protocol: grpc\n  headersSecret:\n    name: otlp-auth\n    key: headers\n\
         config: |\n{indented}\
         extraArgs: [\"--ring-mib\", \"16\"]\n\
         extraEnv:\n  - name: OTEL_SERVICE_NAME\n    value: agents-prod\n\
         nodeSelector:\n  kubernetes.io/os: linux\n\
         serviceAccount:\n  create: false\n  name: observer\n\
         image:\n  repository: registry.example.com/agent-observer\n  tag: \"1.2.3\"\n"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("values.yaml");
    std::fs::write(&file, values).expect("write values");
    let yaml = helm_template(&["--values", file.to_str().unwrap()]);
    assert_eq!(validate(&yaml), ["configmap/ao-agent-observer", "daemonset/ao-agent-observer"]);
    let docs = parse_yaml(&yaml);
    let (ds, cm) = (the(&docs, "DaemonSet"), the(&docs, "ConfigMap"));
    assert_daemonset(ds, cm, "helm overrides");
    assert_eq!(cm["data"]["config.toml"], custom, "the config reaches the ConfigMap unchanged");
    check_config(custom, "the overriding config");

    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "observer");
    assert_eq!(pod["nodeSelector"]["kubernetes.io/os"], "linux");
    let c = container(ds);
    assert_eq!(c["image"], "registry.example.com/agent-observer:1.2.3");
    assert_eq!(env_value(c, "OTEL_EXPORTER_OTLP_ENDPOINT"), "https://collector.example.com:4317");
    assert_eq!(env_value(c, "OTEL_EXPORTER_OTLP_PROTOCOL"), "grpc");
    assert_eq!(env_value(c, "OTEL_SERVICE_NAME"), "agents-prod");
    let headers = &env(c, "OTEL_EXPORTER_OTLP_HEADERS").expect("headers env")["valueFrom"]["secretKeyRef"];
    assert_eq!((headers["name"].as_str(), headers["key"].as_str()), (Some("otlp-auth"), Some("headers")));
    assert!(strings(&c["args"]).ends_with(&["--ring-mib", "16"]));

    // A config change must roll the pods.
    let default_ds = parse_yaml(&helm_template(&[]));
    let checksum = |ds: &Value| ds["spec"]["template"]["metadata"]["annotations"]["checksum/config"].clone();
    assert!(checksum(ds).is_string());
    assert_ne!(checksum(ds), checksum(the(&default_ds, "DaemonSet")));
}

#[test]
fn helm_chart_without_otlp() {
    let yaml = helm_template(&["--set", "otlp.endpoint="]);
    validate(&yaml);
    let docs = parse_yaml(&yaml);
    assert!(env(container(the(&docs, "DaemonSet")), "OTEL_EXPORTER_OTLP_ENDPOINT").is_none());

    // NOTES.txt is only rendered by install; a client-side dry run needs no cluster.
    let home = tempfile::tempdir().expect("tempdir");
    let notes = run(
        helm(home.path())
            .env("KUBECONFIG", "/dev/null")
            .args(["install", "ao", "deploy/helm/agent-observer", "--namespace", "agent-observer"])
            .args(["--dry-run=client", "--set", "otlp.endpoint="]),
        None,
    );
    assert!(notes.contains("otlp.endpoint is empty: no spans are exported"), "NOTES:\n{notes}");
}

#[test]
fn kustomization() {
    let yaml =
        run(Command::new(tool("bin/kubectl")).current_dir(repo()).args(["kustomize", "deploy/kubernetes"]), None);
    let docs = parse_yaml(&yaml);
    let names = kind_names(&docs);
    assert_eq!(validate(&yaml), names);
    let (ds, cm) = (the(&docs, "DaemonSet"), the(&docs, "ConfigMap"));
    the(&docs, "ServiceAccount");
    let ns = the(&docs, "Namespace");
    assert_eq!(ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"], "privileged", "privileged pods need it");
    assert!(
        docs.iter().filter(|d| d["kind"] != "Namespace").all(|d| d["metadata"]["namespace"] == ns["metadata"]["name"]),
        "every object in the namespace"
    );
    assert!(
        cm["metadata"]["name"].as_str().unwrap().starts_with("agent-observer-config-"),
        "a hashed name rolls the pods on config changes"
    );
    assert_daemonset(ds, cm, "kustomize");
    let c = container(ds);
    assert_eq!(c["image"], "agent-observer:0.1.0");
    assert_eq!(env_value(c, "OTEL_EXPORTER_OTLP_ENDPOINT"), "http://otel-collector.observability:4318");
    let file = std::fs::read_to_string(repo().join("deploy/kubernetes/config.toml")).expect("config.toml");
    assert_eq!(cm["data"]["config.toml"], file.as_str());
    check_config(&file, "deploy/kubernetes/config.toml");
}

/// Guards the checks above: the validator does reject a bad manifest.
#[test]
fn validator_rejects_unknown_fields() {
    let bad = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  a: b\nhostPID: true\n";
    let out = output(
        Command::new(tool("venv/bin/kubernetes-validate")).args(["--strict", "-k", K8S_VERSION, "-"]),
        Some(bad),
    );
    assert!(!out.status.success(), "kubernetes-validate accepted an unknown field");
    assert!(String::from_utf8_lossy(&out.stdout).contains("ERROR"));
}

/// `key -> values` of one section of a unit file.
fn unit_section(text: &str, section: &str) -> BTreeMap<String, Vec<String>> {
    let mut current = String::new();
    let mut keys: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = name.to_owned();
        } else if current == section {
            let (k, v) = line.split_once('=').unwrap_or_else(|| panic!("not key=value: {line}"));
            keys.entry(k.trim().to_owned()).or_default().push(v.trim().to_owned());
        }
    }
    keys
}

#[test]
fn systemd_unit() {
    let path = repo().join("deploy/systemd/agent-observer.service");
    let text = std::fs::read_to_string(&path).expect("unit file");
    let service = unit_section(&text, "Service");
    let one = |key: &str| match service.get(key).map(Vec::as_slice) {
        Some([v]) => v.as_str(),
        other => panic!("[Service] {key}: expected one value, got {other:?}"),
    };
    assert_eq!(one("Type"), "notify", "the daemon sends READY=1");
    assert_eq!(one("Restart"), "on-failure");
    assert_eq!(one("EnvironmentFile"), "-/etc/default/agent-observer");
    let exec: Vec<&str> = one("ExecStart").split_whitespace().collect();
    assert_eq!(&exec[..2], ["/usr/local/bin/agent-observer", "run"]);
    assert!(exec.contains(&"--quiet"));
    assert_run_flags(&exec[2..], "ExecStart");
    let after = |flag: &str| exec.iter().position(|a| *a == flag).map(|i| exec[i + 1]).unwrap();
    // ProtectSystem=strict leaves only these directories writable (and creates them).
    assert_eq!(one("ProtectSystem"), "strict");
    assert_eq!(after("--config"), format!("/etc/{}/config.toml", one("ConfigurationDirectory")));
    assert_eq!(after("--output-file"), format!("/var/log/{}/spans.jsonl", one("LogsDirectory")));
    let caps: Vec<&str> = one("CapabilityBoundingSet").split_whitespace().collect();
    for cap in ["CAP_BPF", "CAP_PERFMON", "CAP_SYS_ADMIN", "CAP_SYS_RESOURCE"] {
        assert!(caps.contains(&cap), "CapabilityBoundingSet lacks {cap}");
    }
    // Each of these would break tracing: see the unit's comments.
    for key in ["ProtectKernelTunables", "PrivateTmp", "ProtectHome", "ProcSubset", "User", "DynamicUser"] {
        assert!(!service.contains_key(key), "[Service] {key} is set");
    }
    assert_eq!(unit_section(&text, "Install")["WantedBy"], ["multi-user.target"]);

    // systemd's own parser, where the machine has it. It also checks that ExecStart is
    // executable, so the copy points at the built binary.
    let analyze = Command::new("sh").args(["-c", "command -v systemd-analyze"]).output().expect("sh");
    if !analyze.status.success() {
        eprintln!("systemd-analyze not installed: checked the unit file's settings only");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = dir.path().join("agent-observer.service");
    assert_eq!(text.matches("/usr/local/bin/agent-observer").count(), 1);
    std::fs::write(&copy, text.replace("/usr/local/bin/agent-observer", bin().to_str().unwrap())).expect("write unit");
    let out = output(Command::new("systemd-analyze").args(["verify", "--man=no", "--generators=no"]).arg(&copy), None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "systemd-analyze verify failed ({}):\n{stderr}", out.status);
    // Unknown keys and bad values are only warnings there.
    let ours: Vec<&str> = stderr.lines().filter(|l| l.contains("agent-observer")).collect();
    assert!(ours.is_empty(), "systemd-analyze verify warned:\n{}", ours.join("\n"));
}

#[test]
fn systemd_config() {
    let path = repo().join("deploy/systemd/config.toml");
    let text = std::fs::read_to_string(&path).expect("config.toml");
    check_config(&text, "deploy/systemd/config.toml");
    // Guards check_config: a typo must fail it.
    let dir = tempfile::tempdir().expect("tempdir");
    let typo = dir.path().join("typo.toml");
    std::fs::write(&typo, text.replace("[capture]\n", "[capture]\ncontnet = true\n")).expect("write");
    let out = output(Command::new(bin()).arg("check-config").arg(&typo), None);
    assert!(!out.status.success(), "check-config accepted an unknown key");
}

/// Not built here (no container engine): checks it against the workspace instead.
#[test]
fn containerfile() {
    let text = std::fs::read_to_string(repo().join("deploy/Containerfile")).expect("Containerfile");
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim_start().starts_with('#')).collect();
    let froms: Vec<&str> = lines.iter().filter_map(|l| l.strip_prefix("FROM ")).collect();
    let manifest = std::fs::read_to_string(repo().join("Cargo.toml")).expect("Cargo.toml");
    let rust = manifest
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .expect("workspace rust-version")
        .trim_matches('"');
    assert_eq!(
        froms,
        [format!("docker.io/library/rust:{rust}-bookworm AS build").as_str(), "docker.io/library/debian:bookworm-slim"],
        "builder on the workspace's Rust, runtime on the same Debian"
    );
    let body = lines.join("\n");
    for step in [
        "rustup toolchain install nightly --profile minimal",
        "cargo xtask setup",
        "cargo build --release -p agent-observer",
        "ca-certificates",
        "COPY --from=build /out/agent-observer /usr/local/bin/agent-observer",
        "ENTRYPOINT [\"/usr/local/bin/agent-observer\"]",
    ] {
        assert!(body.contains(step), "Containerfile lacks `{step}`");
    }
    let ignore = std::fs::read_to_string(repo().join("deploy/Containerfile.dockerignore")).expect("ignore file");
    assert!(ignore.lines().any(|l| l == "target"), "the build context must not carry target/");
}
