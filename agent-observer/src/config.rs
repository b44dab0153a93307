//! The configuration file (TOML).
//!
//! Everything has a default, so no file is needed. A file adds the user's own agent rules,
//! disables catalogue entries and tunes redaction. Unknown keys are errors: a typo must not
//! silently turn a rule off.
//!
//! ```toml
//! [[agent]]
//! name = "my-agent"          # becomes gen_ai.agent.name
//! exe = "my-agent"           # basename or absolute path; `*` and `?` globs allowed
//! argv = "--serve"           # regex over the space-joined argv
//! uid = 1000
//!
//! [catalogue]
//! disable = ["amp"]
//!
//! [redaction]
//! patterns = ['MYCORP-[0-9a-f]{32}']
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;
pub use toml::Spanned;

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// User-defined agents, matched before the built-in catalogue.
    #[serde(default, rename = "agent")]
    pub agents: Vec<AgentRule>,
    #[serde(default)]
    pub catalogue: CatalogueConfig,
    #[serde(default)]
    pub redaction: RedactionConfig,
    #[serde(default)]
    pub files: FilesConfig,
    #[serde(default)]
    pub capture: CaptureConfig,
}

/// A user rule. At least one of `exe` or `comm` is required: the kernel pre-filters execs on
/// them. Every given field must match.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentRule {
    pub name: Spanned<String>,
    pub exe: Option<String>,
    pub comm: Option<String>,
    pub argv: Option<String>,
    pub uid: Option<u32>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogueConfig {
    /// Catalogue entries (by agent name) not to match.
    #[serde(default)]
    pub disable: Vec<Spanned<String>>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedactionConfig {
    /// Extra regexes; every match is replaced by `[REDACTED]`.
    #[serde(default)]
    pub patterns: Vec<Spanned<String>>,
    /// Extra flag names (without dashes) whose value is secret, e.g. `db-password`.
    #[serde(default)]
    pub secret_flags: Vec<String>,
    /// Turn the built-in rules off (only `patterns` and `secret_flags` apply).
    #[serde(default)]
    pub disable_defaults: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesConfig {
    /// Path prefixes whose changes are counted but not spanned. `~` is each session's home.
    /// Replaces the default list when given.
    pub noise_prefixes: Option<Vec<String>>,
    /// Files larger than this are not hashed.
    #[serde(default = "default_hash_limit")]
    pub hash_max_bytes: u64,
}

impl Default for FilesConfig {
    fn default() -> Self {
        FilesConfig { noise_prefixes: None, hash_max_bytes: default_hash_limit() }
    }
}

fn default_hash_limit() -> u64 {
    8 << 20
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptureConfig {
    /// Capture prompt and response content. Off by default.
    #[serde(default)]
    pub content: bool,
    /// When file and socket capture is attached: `always` (default, nothing missed) or
    /// `on-demand` (only while a session is live: no cost to other processes when no agent
    /// runs, but a session found at exec is observed from a few milliseconds in).
    #[serde(default)]
    pub syscalls: SyscallCapture,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SyscallCapture {
    #[default]
    Always,
    OnDemand,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}, line {line}, column {column}: {message}")]
    Parse { path: PathBuf, line: usize, column: usize, message: String },
    #[error("config file {path}, line {line}: {message}")]
    Invalid { path: PathBuf, line: usize, message: String },
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        Config::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| {
            let (line, column) = e
                .span()
                .map(|span| line_col(text, span.start))
                .unwrap_or((1, 1));
            ConfigError::Parse {
                path: path.to_owned(),
                line,
                column,
                message: e.message().to_owned(),
            }
        })?;
        config.validate().map_err(|(offset, message)| ConfigError::Invalid {
            path: path.to_owned(),
            line: line_col(text, offset).0,
            message,
        })?;
        Ok(config)
    }

    /// On error, returns the byte offset the error is about and the message.
    fn validate(&self) -> Result<(), (usize, String)> {
        for rule in &self.agents {
            let at = rule.name.span().start;
            let name = rule.name.get_ref();
            if name.trim().is_empty() {
                return Err((at, "[[agent]] rule with an empty name".into()));
            }
            if rule.exe.is_none() && rule.comm.is_none() {
                return Err((
                    at,
                    format!("[[agent]] rule `{name}` needs `exe` or `comm`: the kernel filters execs on them"),
                ));
            }
            if let Some(re) = &rule.argv {
                regex::Regex::new(re)
                    .map_err(|e| (at, format!("[[agent]] rule `{name}`: bad argv regex: {e}")))?;
            }
        }
        for re in &self.redaction.patterns {
            regex::Regex::new(re.get_ref())
                .map_err(|e| (re.span().start, format!("[redaction] bad pattern {:?}: {e}", re.get_ref())))?;
        }
        let known = crate::catalogue::CATALOGUE.iter().map(|a| a.name).collect::<Vec<_>>();
        for name in &self.catalogue.disable {
            if !known.contains(&name.get_ref().as_str()) {
                return Err((
                    name.span().start,
                    format!("[catalogue] disable: unknown agent `{}` (known: {})", name.get_ref(), known.join(", ")),
                ));
            }
        }
        Ok(())
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("test.toml"))
    }

    #[test]
    fn empty_file_is_all_defaults() {
        let c = parse("").unwrap();
        assert!(c.agents.is_empty());
        assert_eq!(c.files.hash_max_bytes, 8 << 20);
        assert!(!c.capture.content);
    }

    #[test]
    fn user_rules_and_disables_parse() {
        let c = parse(
            "[[agent]]\nname = \"mine\"\nexe = \"my-agent\"\nargv = \"--serve\"\nuid = 1000\n\n[catalogue]\ndisable = [\"amp\"]\n",
        )
        .unwrap();
        assert_eq!(c.agents[0].name.get_ref(), "mine");
        assert_eq!(c.agents[0].uid, Some(1000));
        assert_eq!(c.catalogue.disable[0].get_ref(), "amp");
    }

    #[test]
    fn syntax_error_names_the_line() {
        let err = parse("[[agent]]\nname = \"x\"\nexe = \n").unwrap_err().to_string();
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("test.toml"), "{err}");
    }

    #[test]
    fn unknown_key_names_the_line() {
        let err = parse("\n\n[[agent]]\nname = \"x\"\nexe = \"y\"\nexecutable = \"z\"\n").unwrap_err().to_string();
        assert!(err.contains("line 6"), "{err}");
        assert!(err.contains("executable"), "{err}");
    }

    #[test]
    fn semantic_errors_are_explained() {
        let err = parse("[[agent]]\nname = \"x\"\n").unwrap_err().to_string();
        assert!(err.contains("needs `exe` or `comm`"), "{err}");
        let err = parse("[[agent]]\nname = \"x\"\nexe = \"a\"\nargv = \"(\"\n").unwrap_err().to_string();
        assert!(err.contains("bad argv regex"), "{err}");
        let err = parse("[catalogue]\n\ndisable = [\"nope\"]\n").unwrap_err().to_string();
        assert!(err.contains("unknown agent `nope`") && err.contains("line 3"), "{err}");
    }
}
