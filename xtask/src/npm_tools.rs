//! Agent CLIs and Bun for the end-to-end tests, from the npm registry (and Aider from PyPI).
//!
//! Each set of packages gets its own folder under target/test-tools with a generated
//! package.json that pins exact versions; `npm install` runs only when an installed version
//! differs from the pin or a file the tests run is missing. Claude Code 2.1.112 has its own
//! folder because its package name (and its `claude` bin) is the same as 2.1.197's.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use crate::{
    setup::tools_dir,
    util::{Result, output, run_status},
};

/// A folder of npm packages: pinned versions, and files that prove the install is usable
/// (native binaries come from per-platform optional dependencies that may silently be absent).
struct NpmSet {
    dir: &'static str,
    packages: &'static [(&'static str, &'static str)],
    must_exist: &'static [&'static str],
}

const SETS: &[NpmSet] = &[
    NpmSet {
        dir: "npm",
        packages: &[
            ("bun", "1.4.5"),
            ("@anthropic-ai/claude-code", "2.1.197"),
            ("@google/gemini-cli", "0.61.0"),
            ("@openai/codex", "0.169.0"),
            ("@github/copilot", "1.0.102"),
        ],
        must_exist: &[
            "node_modules/bun/bin/bun.exe",
            "node_modules/@anthropic-ai/claude-code-linux-x64/claude",
            "node_modules/@google/gemini-cli/bundle/gemini.js",
            "node_modules/@openai/codex-linux-x64/vendor/x86_64-unknown-linux-musl/bin/codex",
            "node_modules/@github/copilot-linux-x64/copilot",
        ],
    },
    NpmSet {
        dir: "npm-claude-2.1.112",
        packages: &[("@anthropic-ai/claude-code", "2.1.112")],
        must_exist: &["node_modules/@anthropic-ai/claude-code/cli.js"],
    },
];

/// Aider is large (about 2 minutes of pip), so it is installed only when asked for with
/// `AGENT_OBSERVER_AIDER=1`, into its own virtualenv.
const AIDER: &str = "aider-chat==0.86.2";
pub const AIDER_ENV: &str = "AGENT_OBSERVER_AIDER";

/// `"version": "X"` from a package.json, without a JSON parser (xtask has no dependencies).
fn package_version(manifest: &Path) -> Option<String> {
    let text = std::fs::read_to_string(manifest).ok()?;
    let at = text.find("\"version\"")?;
    let rest = &text[at + "\"version\"".len()..];
    let rest = rest.trim_start().strip_prefix(':')?.trim_start().strip_prefix('"')?;
    Some(rest[..rest.find('"')?].to_owned())
}

fn set_installed(dir: &Path, set: &NpmSet) -> bool {
    let versions_match = set.packages.iter().all(|(name, version)| {
        package_version(&dir.join("node_modules").join(name).join("package.json")).as_deref() == Some(*version)
    });
    versions_match && set.must_exist.iter().all(|f| dir.join(f).exists())
}

fn manifest(set: &NpmSet) -> String {
    let deps: Vec<String> = set.packages.iter().map(|(n, v)| format!("    \"{n}\": \"{v}\"")).collect();
    format!(
        "{{\n  \"name\": \"agent-observer-test-tools\",\n  \"private\": true,\n  \"dependencies\": {{\n{}\n  }}\n}}\n",
        deps.join(",\n")
    )
}

pub fn install() -> Result<()> {
    if output("npm", &["--version"]).is_none() {
        return Err("npm not found: the end-to-end tests need Node.js 20 and npm on PATH".into());
    }
    for set in SETS {
        let dir = tools_dir().join(set.dir);
        if set_installed(&dir, set) {
            continue;
        }
        let names: Vec<String> = set.packages.iter().map(|(n, v)| format!("{n}@{v}")).collect();
        println!("xtask: installing into {}: {}", dir.display(), names.join(" "));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        std::fs::write(dir.join("package.json"), manifest(set)).map_err(|e| format!("{}: {e}", dir.display()))?;
        let started = Instant::now();
        run_status(Command::new("npm").current_dir(&dir).args([
            "install",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
            "--save-exact",
        ]))?;
        println!("xtask: npm install took {:.0}s", started.elapsed().as_secs_f64());
        if !set_installed(&dir, set) {
            return Err(format!(
                "{}: after npm install, a pinned version or one of {:?} is missing",
                dir.display(),
                set.must_exist
            ));
        }
    }
    if std::env::var_os(AIDER_ENV).is_some_and(|v| v == "1") {
        aider()?;
    }
    Ok(())
}

pub fn aider_venv() -> PathBuf {
    tools_dir().join("aider-venv")
}

fn aider() -> Result<()> {
    let venv = aider_venv();
    let pip = venv.join("bin/pip");
    if !pip.exists() {
        println!("xtask: creating the Aider virtualenv");
        run_status(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    }
    let frozen = output(pip.to_str().unwrap_or_default(), &["freeze"]).unwrap_or_default();
    if frozen.lines().any(|l| l == AIDER) {
        return Ok(());
    }
    println!("xtask: installing {AIDER} (about 2 minutes)");
    let started = Instant::now();
    run_status(Command::new(&pip).args(["install", "-q", AIDER]))?;
    println!("xtask: pip install {AIDER} took {:.0}s", started.elapsed().as_secs_f64());
    Ok(())
}
