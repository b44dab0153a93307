//! Removes secrets from argv and other text before anything leaves the daemon.
//!
//! Built-in rules cover secret-named flags (`--api-key=…`, `--token …`), auth headers,
//! well-known token shapes (`sk-…`, `ghp_…`, `AKIA…`, JWTs), `NAME_KEY=value` assignments and
//! passwords in URLs. The config adds patterns and flag names, or turns the built-ins off.

use std::borrow::Cow;

use regex::Regex;

use crate::config::RedactionConfig;

pub const REDACTED: &str = "[REDACTED]";

/// Last word of a flag name (split on `-` and `_`) that marks its value as secret.
const SECRET_FLAG_WORDS: &[&str] = &[
    "key", "apikey", "token", "secret", "password", "passwd", "pass", "pw", "credential",
    "credentials", "auth", "bearer", "cookie",
];

const TOKEN_PATTERNS: &[&str] = &[
    // Auth headers: keep the header name, drop the value (and the scheme's credentials).
    r#"(?i)((?:proxy-)?authorization|x-api-key|api-key|x-goog-api-key|cookie)(\s*[:=]\s*)(?:(?:bearer|basic|token)\s+)?[^\s,;'"]+"#,
    // NAME_WITH_KEY=value, as in `env OPENAI_API_KEY=… cmd`.
    r"\b([A-Za-z_][A-Za-z0-9_]*(?:KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIALS?))(=)[^\s]+",
    // Passwords in URLs.
    r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]+)(:)[^@\s/]+(@)",
    r"\bsk-[A-Za-z0-9_-]{16,}",
    r"\bgh[pousr]_[A-Za-z0-9]{20,}",
    r"\bgithub_pat_[A-Za-z0-9_]{20,}",
    r"\bglpat-[A-Za-z0-9_-]{20,}",
    r"\bAKIA[0-9A-Z]{16}\b",
    r"\bAIza[0-9A-Za-z_-]{35}",
    r"\bxox[abposr]-[A-Za-z0-9-]{10,}",
    r"\bhf_[A-Za-z0-9]{30,}",
    r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
];

#[derive(Clone, Debug)]
pub struct Redactor {
    /// Each regex has either no groups, or groups kept around the secret: prefix, separator
    /// and an optional suffix.
    patterns: Vec<Regex>,
    secret_flag_words: Vec<String>,
    extra_flags: Vec<String>,
}

static BUILT_IN: std::sync::LazyLock<Redactor> =
    std::sync::LazyLock::new(|| Redactor::new(&RedactionConfig::default()).expect("built-in patterns compile"));

impl Default for Redactor {
    /// The built-in rules, compiled once (regexes are cheap to clone).
    fn default() -> Self {
        BUILT_IN.clone()
    }
}

impl Redactor {
    pub fn new(config: &RedactionConfig) -> anyhow::Result<Redactor> {
        let mut patterns = Vec::new();
        let mut secret_flag_words = Vec::new();
        if !config.disable_defaults {
            for p in TOKEN_PATTERNS {
                patterns.push(Regex::new(p)?);
            }
            secret_flag_words = SECRET_FLAG_WORDS.iter().map(|s| s.to_string()).collect();
        }
        for p in &config.patterns {
            patterns.push(Regex::new(p.get_ref())?);
        }
        let extra_flags = config
            .secret_flags
            .iter()
            .map(|f| f.trim_start_matches('-').to_ascii_lowercase())
            .collect();
        Ok(Redactor { patterns, secret_flag_words, extra_flags })
    }

    /// Redacts free text.
    pub fn text<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for re in &self.patterns {
            if !re.is_match(&out) {
                continue;
            }
            let replaced = if re.captures_len() >= 3 {
                re.replace_all(&out, |c: &regex::Captures<'_>| {
                    let suffix = c.get(3).map_or("", |m| m.as_str());
                    format!("{}{}{REDACTED}{suffix}", &c[1], &c[2])
                })
            } else {
                re.replace_all(&out, REDACTED)
            };
            out = Cow::Owned(replaced.into_owned());
        }
        out
    }

    /// Redacts an argument vector: values of secret flags, then every argument as text.
    pub fn argv(&self, argv: &[String]) -> Vec<String> {
        let mut out = Vec::with_capacity(argv.len());
        let mut hide_next = false;
        for arg in argv {
            if hide_next {
                hide_next = false;
                out.push(REDACTED.to_owned());
                continue;
            }
            if let Some(flag) = arg.strip_prefix('-').map(|a| a.trim_start_matches('-')) {
                let (name, value) = match flag.split_once('=') {
                    Some((n, v)) => (n, Some(v)),
                    None => (flag, None),
                };
                if !name.is_empty() && self.is_secret_flag(name) {
                    match value {
                        Some(v) => out.push(format!("{}={REDACTED}", &arg[..arg.len() - v.len() - 1])),
                        None => {
                            out.push(arg.clone());
                            hide_next = true;
                        }
                    }
                    continue;
                }
            }
            out.push(self.text(arg).into_owned());
        }
        out
    }

    fn is_secret_flag(&self, name: &str) -> bool {
        let lower = name.to_ascii_lowercase();
        if self.extra_flags.iter().any(|f| *f == lower) {
            return true;
        }
        if self.secret_flag_words.is_empty() {
            return false;
        }
        let compact: String = lower.chars().filter(|c| *c != '-' && *c != '_').collect();
        if compact.ends_with("apikey") || compact.ends_with("accesskey") {
            return true;
        }
        let last = lower.rsplit(['-', '_']).next().unwrap_or("");
        self.secret_flag_words.iter().any(|w| w == last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(a: &[&str]) -> Vec<String> {
        Redactor::default().argv(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn secret_flags_lose_their_values() {
        assert_eq!(argv(&["x", "--api-key=abc123"]), ["x", "--api-key=[REDACTED]"]);
        assert_eq!(argv(&["x", "--api-key", "abc123", "next"]), ["x", "--api-key", "[REDACTED]", "next"]);
        assert_eq!(argv(&["x", "-token", "t"]), ["x", "-token", "[REDACTED]"]);
        assert_eq!(argv(&["x", "--openai_api_key=v"]), ["x", "--openai_api_key=[REDACTED]"]);
        assert_eq!(argv(&["x", "--db-password", "hunter2"]), ["x", "--db-password", "[REDACTED]"]);
    }

    #[test]
    fn harmless_flags_are_kept() {
        assert_eq!(argv(&["x", "--max-tokens", "100", "--keyboard", "us"]), ["x", "--max-tokens", "100", "--keyboard", "us"]);
        assert_eq!(argv(&["sh", "-c", "echo hi > f; ls; exit 3"]), ["sh", "-c", "echo hi > f; ls; exit 3"]);
    }

    #[test]
    fn headers_tokens_and_assignments_are_masked_inside_arguments() {
        let r = Redactor::default();
        assert_eq!(
            r.text("curl -H 'Authorization: Bearer abc.def' https://x"),
            "curl -H 'Authorization: [REDACTED]' https://x"
        );
        assert_eq!(r.text("x-api-key: sk-ant-api03-AAAA"), "x-api-key: [REDACTED]");
        assert_eq!(r.text("use sk-proj-abcdefghijklmnopqrstuv now"), "use [REDACTED] now");
        assert_eq!(r.text("OPENAI_API_KEY=sk-123 aider"), "OPENAI_API_KEY=[REDACTED] aider");
        assert_eq!(r.text("https://bob:pw@host/x"), "https://bob:[REDACTED]@host/x");
        assert_eq!(r.text("ghp_0123456789abcdefghijABCDEFGHIJ"), "[REDACTED]");
        assert_eq!(r.text("AKIAIOSFODNN7EXAMPLE"), "[REDACTED]");
        assert_eq!(r.text("plain words stay"), "plain words stay");
    }

    #[test]
    fn configured_rules_apply_and_defaults_can_be_turned_off() {
        let cfg: RedactionConfig = toml::from_str(
            "patterns = ['CORP-[0-9]+']\nsecret_flags = ['--pin']\ndisable_defaults = true\n",
        )
        .unwrap();
        let r = Redactor::new(&cfg).unwrap();
        let out = r.argv(&["a".into(), "CORP-42".into(), "--pin".into(), "1234".into(), "--api-key=k".into()]);
        assert_eq!(out, ["a", "[REDACTED]", "--pin", "[REDACTED]", "--api-key=k"]);
    }
}
