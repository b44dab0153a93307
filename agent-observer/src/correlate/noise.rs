//! Noise prefixes: paths whose changes are counted but not spanned (agents' own state and
//! caches, and pseudo-filesystems).

use std::collections::HashMap;

/// The default list; `~` is the session user's home directory.
pub const DEFAULT_NOISE: &[&str] = &[
    "~/.claude",
    "~/.claude.json*",
    "~/.codex",
    "~/.gemini",
    "~/.qwen",
    "~/.copilot",
    "~/.cursor",
    "~/.aider*",
    "~/.config/goose",
    "~/.config/opencode",
    "~/.local/share/opencode",
    "~/.local/state",
    "~/.cache",
    "~/.npm",
    "~/.bun",
    "/tmp/*-agent-scratch",
    "/proc",
    "/sys",
    "/dev",
];

/// Compiled noise patterns plus the home directories `~` expands to.
#[derive(Clone, Debug, Default)]
pub struct Noise {
    patterns: Vec<String>,
    homes: HashMap<u32, Vec<u8>>,
}

impl Noise {
    /// `patterns` are the configured list (or [`DEFAULT_NOISE`]); `homes` maps uid to home.
    pub fn new(patterns: Vec<String>, homes: HashMap<u32, Vec<u8>>) -> Noise {
        Noise { patterns, homes }
    }

    /// Whether `path` (absolute) is at or under a noise pattern, for a session of `uid`.
    pub fn matches(&self, path: &[u8], uid: u32) -> bool {
        self.patterns.iter().any(|p| {
            let expanded: Vec<u8> = match p.strip_prefix('~') {
                Some(rest) => match self.homes.get(&uid) {
                    Some(home) => [home.as_slice(), rest.as_bytes()].concat(),
                    None => return false,
                },
                None => p.as_bytes().to_vec(),
            };
            under(&expanded, path)
        })
    }
}

/// Whether `path` equals `pattern` or lies under it, component by component, with `*` and `?`
/// globs inside a component.
fn under(pattern: &[u8], path: &[u8]) -> bool {
    let pat: Vec<&[u8]> = pattern.split(|&b| b == b'/').filter(|c| !c.is_empty()).collect();
    let mut comps = path.split(|&b| b == b'/').filter(|c| !c.is_empty());
    pat.iter().all(|p| comps.next().is_some_and(|c| crate::text::glob_match(p, c)))
}

/// Reads `/etc/passwd`-format text into uid → home.
pub fn parse_passwd(text: &str) -> HashMap<u32, Vec<u8>> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            Some((f.get(2)?.parse().ok()?, f.get(5)?.as_bytes().to_vec()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise() -> Noise {
        let homes = parse_passwd("root:x:0:0:root:/root:/bin/bash\nu:x:1000:1000::/home/u:/bin/sh\nbad line\n");
        Noise::new(DEFAULT_NOISE.iter().map(|s| s.to_string()).collect(), homes)
    }

    #[test]
    fn agent_state_and_pseudo_filesystems_are_noise() {
        let n = noise();
        assert!(n.matches(b"/home/u/.claude/projects/x.jsonl", 1000));
        assert!(n.matches(b"/home/u/.claude.json.backup", 1000));
        assert!(n.matches(b"/root/.cache/pip/x", 0));
        assert!(n.matches(b"/tmp/abc-agent-scratch/f", 1000));
        assert!(n.matches(b"/proc/self/attr/current", 1000));
        assert!(n.matches(b"/dev", 1000));
    }

    #[test]
    fn project_files_are_not_noise() {
        let n = noise();
        assert!(!n.matches(b"/home/u/project/src/main.rs", 1000));
        assert!(!n.matches(b"/home/u/.claudex/file", 1000));
        assert!(!n.matches(b"/root/.claude/x", 1000), "~ is the session user's home");
        assert!(!n.matches(b"/device", 1000));
        assert!(!n.matches(b"/home/u/.claude", 4242), "unknown uid: no ~ patterns");
    }
}
