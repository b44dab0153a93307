//! Which processes are agents: the built-in catalogue plus the user's rules.
//!
//! Matching is two-stage. The kernel only reports execs whose comm is a *candidate* (every name
//! below, every interpreter an agent may run under, and the user's literal names). The daemon
//! then decides here, on the full executable path and argv.

use std::collections::BTreeSet;

use regex::Regex;

use crate::config::{AgentRule, Config};

/// A built-in agent.
#[derive(Debug)]
pub struct AgentDef {
    /// Stable name, exported as `gen_ai.agent.name`.
    pub name: &'static str,
    /// Executable (or script) basenames.
    pub exe_names: &'static [&'static str],
    /// Substrings of an argument naming the agent's script, when run through an interpreter.
    pub scripts: &'static [&'static str],
    /// Python modules run with `-m`.
    pub modules: &'static [&'static str],
}

pub const CATALOGUE: &[AgentDef] = &[
    AgentDef {
        name: "claude-code",
        exe_names: &["claude"],
        scripts: &["@anthropic-ai/claude-code/cli.js", "@anthropic-ai/claude-code/cli.mjs"],
        modules: &[],
    },
    AgentDef {
        name: "codex",
        exe_names: &["codex", "codex-x86_64-unknown-linux-musl", "codex-aarch64-unknown-linux-musl"],
        scripts: &["@openai/codex/bin/codex.js"],
        modules: &[],
    },
    AgentDef {
        name: "gemini-cli",
        exe_names: &["gemini"],
        scripts: &["@google/gemini-cli/"],
        modules: &[],
    },
    AgentDef {
        name: "qwen-code",
        exe_names: &["qwen"],
        scripts: &["@qwen-code/qwen-code/"],
        modules: &[],
    },
    AgentDef {
        name: "opencode",
        exe_names: &["opencode"],
        scripts: &["opencode-ai/bin/opencode", "/opencode/bin/opencode"],
        modules: &[],
    },
    AgentDef {
        name: "copilot-cli",
        exe_names: &["copilot"],
        scripts: &["@github/copilot/"],
        modules: &[],
    },
    AgentDef { name: "aider", exe_names: &["aider"], scripts: &[], modules: &["aider"] },
    AgentDef {
        name: "mini-swe-agent",
        exe_names: &["mini", "mini-swe-agent", "mini-extra"],
        scripts: &[],
        modules: &["minisweagent", "minisweagent.run.mini"],
    },
    AgentDef {
        name: "cursor-agent",
        exe_names: &["cursor-agent"],
        scripts: &["cursor-agent/versions/"],
        modules: &[],
    },
    AgentDef { name: "goose", exe_names: &["goose"], scripts: &[], modules: &["goose"] },
    AgentDef { name: "amp", exe_names: &["amp"], scripts: &["@sourcegraph/amp/"], modules: &[] },
];

/// Interpreters agents run under; their execs are candidates so argv can be inspected.
pub const INTERPRETERS: &[&str] = &[
    "node", "nodejs", "bun", "deno", "python", "python3", "python3.8", "python3.9", "python3.10",
    "python3.11", "python3.12", "python3.13", "python3.14", "pypy3", "uv", "uvx", "pipx",
];

/// What a candidate exec looks like, for matching.
#[derive(Debug, Clone, Copy)]
pub struct ExecView<'a> {
    /// Absolute executable path as exec'd (for scripts: the script).
    pub exe: &'a str,
    pub argv: &'a [String],
    pub comm: &'a str,
    pub uid: u32,
}

/// A compiled set of user rules and enabled catalogue entries.
#[derive(Clone, Debug)]
pub struct Matcher {
    rules: Vec<UserRule>,
    catalogue: Vec<&'static AgentDef>,
}

#[derive(Clone, Debug)]
struct UserRule {
    name: String,
    exe: Option<Glob>,
    comm: Option<Glob>,
    argv: Option<Regex>,
    uid: Option<u32>,
}

impl Matcher {
    pub fn new(config: &Config) -> anyhow::Result<Matcher> {
        let rules = config.agents.iter().map(UserRule::compile).collect::<anyhow::Result<_>>()?;
        let disabled: Vec<&str> = config.catalogue.disable.iter().map(|d| d.get_ref().as_str()).collect();
        let catalogue = CATALOGUE.iter().filter(|a| !disabled.contains(&a.name)).collect();
        Ok(Matcher { rules, catalogue })
    }

    /// The agent this exec starts, if any.
    pub fn agent_for(&self, exec: &ExecView<'_>) -> Option<String> {
        if let Some(rule) = self.rules.iter().find(|r| r.matches(exec)) {
            return Some(rule.name.clone());
        }
        self.catalogue.iter().find(|a| catalogue_matches(a, exec)).map(|a| a.name.to_owned())
    }

    /// The comms the kernel should report execs for, and whether some rule needs every exec.
    pub fn candidate_comms(&self) -> (BTreeSet<String>, bool) {
        let mut comms: BTreeSet<String> = INTERPRETERS.iter().map(|s| comm_of(s)).collect();
        for agent in &self.catalogue {
            comms.extend(agent.exe_names.iter().map(|n| comm_of(n)));
        }
        let mut all_execs = false;
        for rule in &self.rules {
            let literal = rule
                .comm
                .as_ref()
                .and_then(Glob::literal)
                .map(|c| comm_of(c))
                .or_else(|| rule.exe.as_ref().and_then(Glob::literal).map(|e| comm_of(basename(e))));
            match literal {
                Some(comm) => {
                    comms.insert(comm);
                }
                None => all_execs = true,
            }
        }
        (comms, all_execs)
    }
}

impl UserRule {
    fn compile(rule: &AgentRule) -> anyhow::Result<UserRule> {
        Ok(UserRule {
            name: rule.name.get_ref().clone(),
            exe: rule.exe.as_deref().map(Glob::new),
            comm: rule.comm.as_deref().map(Glob::new),
            argv: rule.argv.as_deref().map(Regex::new).transpose()?,
            uid: rule.uid,
        })
    }

    fn matches(&self, exec: &ExecView<'_>) -> bool {
        let exe_ok = self.exe.as_ref().is_none_or(|g| {
            if g.pattern.contains('/') {
                g.matches(exec.exe)
            } else {
                g.matches(basename(exec.exe))
                    || exec.argv.first().is_some_and(|a0| g.matches(basename(a0)))
            }
        });
        let comm_ok = self.comm.as_ref().is_none_or(|g| g.matches(exec.comm));
        let argv_ok = self.argv.as_ref().is_none_or(|re| re.is_match(&exec.argv.join(" ")));
        let uid_ok = self.uid.is_none_or(|u| u == exec.uid);
        exe_ok && comm_ok && argv_ok && uid_ok
    }
}

fn catalogue_matches(agent: &AgentDef, exec: &ExecView<'_>) -> bool {
    let names = [basename(exec.exe), exec.argv.first().map_or("", |a| basename(a))];
    let by_name = agent.exe_names.iter().any(|n| {
        names.contains(n) || (!exec.comm.is_empty() && exec.comm == comm_of(n))
    });
    if by_name {
        return true;
    }
    let args = exec.argv.get(1..).unwrap_or(&[]);
    let by_script = args.iter().any(|a| agent.scripts.iter().any(|s| a.contains(s)));
    let by_module = args
        .windows(2)
        .any(|w| w[0] == "-m" && agent.modules.contains(&w[1].as_str()));
    by_script || by_module
}

/// The kernel's comm for an executable name: its first 15 bytes.
pub fn comm_of(name: &str) -> String {
    let mut end = name.len().min(15);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].to_owned()
}

pub fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// A shell-style pattern with `*` and `?`.
#[derive(Clone, Debug)]
struct Glob {
    pattern: String,
}

impl Glob {
    fn new(pattern: &str) -> Glob {
        Glob { pattern: pattern.to_owned() }
    }

    fn literal(&self) -> Option<&str> {
        (!self.pattern.contains(['*', '?'])).then_some(self.pattern.as_str())
    }

    fn matches(&self, text: &str) -> bool {
        crate::text::glob_match(self.pattern.as_bytes(), text.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::path::Path;

    fn exec<'a>(exe: &'a str, argv: &'a [String], comm: &'a str) -> ExecView<'a> {
        ExecView { exe, argv, comm, uid: 1000 }
    }

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    fn matcher(toml: &str) -> Matcher {
        Matcher::new(&Config::parse(toml, Path::new("t.toml")).unwrap()).unwrap()
    }

    #[test]
    fn native_and_node_claude_match() {
        let m = matcher("");
        let a = args(&["claude", "-p", "hi"]);
        assert_eq!(m.agent_for(&exec("/usr/local/bin/claude", &a, "claude")).as_deref(), Some("claude-code"));
        let a = args(&["node", "/usr/lib/node_modules/@anthropic-ai/claude-code/cli.js", "-p"]);
        assert_eq!(m.agent_for(&exec("/usr/bin/node", &a, "node")).as_deref(), Some("claude-code"));
    }

    #[test]
    fn interpreters_alone_are_not_agents() {
        let m = matcher("");
        let a = args(&["node", "server.js"]);
        assert_eq!(m.agent_for(&exec("/usr/bin/node", &a, "node")), None);
        let a = args(&["python3", "-m", "http.server"]);
        assert_eq!(m.agent_for(&exec("/usr/bin/python3", &a, "python3")), None);
    }

    #[test]
    fn python_module_agents_match() {
        let m = matcher("");
        let a = args(&["python3", "-m", "aider", "--message", "x"]);
        assert_eq!(m.agent_for(&exec("/usr/bin/python3.11", &a, "python3.11")).as_deref(), Some("aider"));
        let a = args(&["/venv/bin/python", "/venv/bin/mini", "-t", "x"]);
        assert_eq!(m.agent_for(&exec("/venv/bin/mini", &a, "mini")).as_deref(), Some("mini-swe-agent"));
    }

    #[test]
    fn every_catalogue_entry_has_a_stable_name_and_a_candidate_comm() {
        let m = matcher("");
        let (comms, all) = m.candidate_comms();
        assert!(!all);
        for a in CATALOGUE {
            assert!(a.name.chars().all(|c| c.is_ascii_lowercase() || c == '-'), "{}", a.name);
            assert!(a.exe_names.iter().all(|n| comms.contains(&comm_of(n))));
        }
        assert!(comms.contains("node") && comms.contains("python3.11"));
        assert!(comms.iter().all(|c| c.len() <= 15));
    }

    #[test]
    fn user_rules_win_and_disabled_entries_do_not_match() {
        let m = matcher(
            "[[agent]]\nname = \"house-bot\"\nexe = \"claude\"\nuid = 1000\n\n[catalogue]\ndisable = [\"codex\"]\n",
        );
        let a = args(&["claude"]);
        assert_eq!(m.agent_for(&exec("/bin/claude", &a, "claude")).as_deref(), Some("house-bot"));
        let a = args(&["codex"]);
        assert_eq!(m.agent_for(&exec("/bin/codex", &a, "codex")), None);
    }

    #[test]
    fn user_rule_fields_all_have_to_match() {
        let m = matcher("[[agent]]\nname = \"svc\"\ncomm = \"worker*\"\nargv = \"--agent-mode\"\nuid = 7\n");
        let a = args(&["worker-3", "--agent-mode"]);
        let mut e = exec("/opt/worker-3", &a, "worker-3");
        assert_eq!(m.agent_for(&e), None, "uid differs");
        e.uid = 7;
        assert_eq!(m.agent_for(&e).as_deref(), Some("svc"));
        let a = args(&["worker-3"]);
        assert_eq!(m.agent_for(&exec("/opt/worker-3", &a, "worker-3")), None);
        assert!(m.candidate_comms().1, "a comm glob needs every exec");
    }


    #[test]
    fn comm_truncation_respects_utf8() {
        assert_eq!(comm_of("mini-swe-agent"), "mini-swe-agent");
        assert_eq!(comm_of("a-very-long-agent-name"), "a-very-long-age");
        assert_eq!(comm_of("ééééééééé").len(), 14);
    }
}
