//! `cargo xtask setup`: installs what a fresh machine lacks. Every step checks first, so a
//! second run does nothing.

use std::{path::PathBuf, process::Command};

use crate::util::{Result, output, root_dir, run_status};

const BPF_LINKER_VERSION: &str = "0.13.0";

/// Debian packages the build and the tests use, with a binary that proves each is there.
const APT: &[(&str, &str)] = &[
    ("curl", "curl"),
    ("openssl", "openssl"),
    ("iproute2", "ip"),
    ("procps", "ps"),
    ("util-linux", "setpriv"),
    ("ca-certificates", "update-ca-certificates"),
    ("gnutls-bin", "gnutls-cli"),
    // libssl.a for the stripped-static-OpenSSL discovery tests (an absolute path: no binary).
    ("libssl-dev", "/usr/include/openssl/ssl.h"),
];

/// PyPI packages for the tests: real OTLP receivers we did not write, a Kubernetes schema
/// validator for deploy/, and `requests` (a TLS client the capture tests drive).
const PIP: &[&str] = &["rotel==0.0.1a15", "kubernetes-validate==1.37.0", "requests==2.34.2"];

pub fn run(with_tests: bool) -> Result<()> {
    tracefs()?;
    apt()?;
    nightly()?;
    bpf_linker()?;
    if with_tests {
        test_tools()?;
    }
    Ok(())
}

fn have(binary: &str) -> bool {
    if binary.starts_with('/') {
        return std::path::Path::new(binary).exists();
    }
    Command::new("sh")
        .args(["-c", &format!("command -v {binary} >/dev/null 2>&1")])
        .status()
        .is_ok_and(|s| s.success())
}

fn apt() -> Result<()> {
    let missing: Vec<&str> = APT.iter().filter(|(_, bin)| !have(bin)).map(|(pkg, _)| *pkg).collect();
    if missing.is_empty() {
        return Ok(());
    }
    println!("xtask: installing apt packages: {}", missing.join(" "));
    let sudo: &[&str] = if crate::util::is_root() { &[] } else { &["sudo"] };
    let apt = |args: &[&str]| {
        let mut argv: Vec<&str> = sudo.to_vec();
        argv.push("apt-get");
        argv.extend_from_slice(args);
        run_status(Command::new(argv[0]).args(&argv[1..]).env("DEBIAN_FRONTEND", "noninteractive"))
    };
    apt(&["update", "-q"])?;
    let mut install = vec!["install", "-y", "-q", "--no-install-recommends"];
    install.extend(missing);
    apt(&install)
}

/// The daemon mounts tracefs itself; the tests that inspect it need it before any daemon runs.
fn tracefs() -> Result<()> {
    if std::path::Path::new("/sys/kernel/tracing/events").exists() || !crate::util::is_root() {
        return Ok(());
    }
    run_status(Command::new("mount").args(["-t", "tracefs", "nodev", "/sys/kernel/tracing"]))
}

fn nightly() -> Result<()> {
    if output("rustc", &["+nightly", "--version"]).is_none() {
        println!("xtask: installing the nightly toolchain");
        run_status(Command::new("rustup").args(["toolchain", "install", "nightly", "--profile", "minimal"]))?;
    }
    let installed = output("rustup", &["component", "list", "--toolchain", "nightly", "--installed"]).unwrap_or_default();
    if !installed.lines().any(|l| l.starts_with("rust-src")) {
        println!("xtask: adding rust-src to nightly");
        run_status(Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", "nightly"]))?;
    }
    Ok(())
}

/// Where bpf-linker finds the nightly's libLLVM (it is linked with this RUNPATH).
fn llvm_prefix() -> PathBuf {
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/root"));
    home.join(".cache/agent-observer/llvm")
}

fn bpf_linker() -> Result<()> {
    let sysroot = output("rustc", &["+nightly", "--print", "sysroot"]).ok_or("cannot find the nightly sysroot")?;
    let lib_dir = PathBuf::from(&sysroot).join("lib");
    let llvm = std::fs::read_dir(&lib_dir)
        .map_err(|e| format!("{}: {e}", lib_dir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("libLLVM.so."))
        .ok_or_else(|| format!("no libLLVM.so.* in {}", lib_dir.display()))?;
    let prefix = llvm_prefix();
    let links = prefix.join("lib");
    std::fs::create_dir_all(&links).map_err(|e| format!("{}: {e}", links.display()))?;
    for name in ["libLLVM.so", llvm.as_str()] {
        let link = links.join(name);
        let target = lib_dir.join(&llvm);
        if std::fs::read_link(&link).ok().as_deref() != Some(target.as_path()) {
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(&target, &link).map_err(|e| format!("{}: {e}", link.display()))?;
        }
    }
    let version = output("bpf-linker", &["--version"]).unwrap_or_default();
    if version.ends_with(BPF_LINKER_VERSION) {
        return Ok(());
    }
    println!("xtask: installing bpf-linker {BPF_LINKER_VERSION} against {llvm} (about 3 minutes)");
    run_status(Command::new("cargo").env("LLVM_PREFIX", &prefix).args([
        "install",
        "bpf-linker",
        "--version",
        BPF_LINKER_VERSION,
        "--locked",
        "--no-default-features",
        "--features",
        "llvm-22",
    ]))
}

/// Test tools live under target/, so a fresh clone starts without them.
pub fn tools_dir() -> PathBuf {
    root_dir().join("target/test-tools")
}

fn test_tools() -> Result<()> {
    let venv = tools_dir().join("venv");
    let pip = venv.join("bin/pip");
    if !pip.exists() {
        println!("xtask: creating the test virtualenv");
        run_status(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    }
    let frozen = output(pip.to_str().unwrap_or_default(), &["freeze"]).unwrap_or_default();
    let missing: Vec<&str> = PIP.iter().copied().filter(|p| !frozen.lines().any(|l| l == *p)).collect();
    if !missing.is_empty() {
        println!("xtask: installing test packages: {}", missing.join(" "));
        run_status(Command::new(&pip).args(["install", "-q"]).args(&missing))?;
    }
    crate::deploy_tools::install()?;
    crate::npm_tools::install()?;
    Ok(())
}

pub fn ensure_cargo_fuzz() -> Result<()> {
    if output("cargo", &["fuzz", "--version"]).is_some() {
        return Ok(());
    }
    run_status(Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]))
}
