//! Redaction: never panics, and a known secret planted anywhere never survives.
#![no_main]
use agent_observer::redact::Redactor;
use libfuzzer_sys::fuzz_target;

static REDACTOR: std::sync::LazyLock<Redactor> = std::sync::LazyLock::new(Redactor::default);

const SECRET: &str = "sk-ant-api03-SECRETSECRETSECRETSECRET";

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let r = &*REDACTOR;
    let _ = r.text(&text);
    let args: Vec<String> = text.split('\0').map(str::to_owned).collect();
    let _ = r.argv(&args);
    // Planted between words, the secret must go.
    let planted = format!("{text} {SECRET} {text}");
    assert!(!r.text(&planted).contains(SECRET));
});
