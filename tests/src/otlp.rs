//! Reading spans back from OTLP/JSON (the daemon's `--output-file`).

use std::{collections::BTreeMap, path::Path};

use serde_json::Value;

#[derive(Clone, Debug, PartialEq)]
pub enum Attr {
    Str(String),
    Int(i64),
    Bool(bool),
    Array(Vec<String>),
    Other(String),
}

#[derive(Clone, Debug)]
pub struct SpanRec {
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent: String,
    pub name: String,
    pub kind: i64,
    pub start: u64,
    pub end: u64,
    /// 0 unset, 1 ok, 2 error.
    pub status_code: i64,
    pub status_message: String,
    pub attrs: BTreeMap<String, Attr>,
    pub resource: BTreeMap<String, Attr>,
}

impl SpanRec {
    pub fn str(&self, key: &str) -> Option<&str> {
        match self.attrs.get(key) {
            Some(Attr::Str(s)) => Some(s),
            _ => None,
        }
    }

    pub fn int(&self, key: &str) -> Option<i64> {
        match self.attrs.get(key) {
            Some(Attr::Int(v)) => Some(*v),
            _ => None,
        }
    }

    pub fn bool(&self, key: &str) -> Option<bool> {
        match self.attrs.get(key) {
            Some(Attr::Bool(v)) => Some(*v),
            _ => None,
        }
    }

    pub fn args(&self) -> Vec<String> {
        match self.attrs.get("process.command_args") {
            Some(Attr::Array(a)) => a.clone(),
            _ => Vec::new(),
        }
    }

    pub fn pid(&self) -> i64 {
        self.int("process.pid").unwrap_or(-1)
    }
}

fn attr(v: &Value) -> Attr {
    if let Some(s) = v.get("stringValue").and_then(Value::as_str) {
        return Attr::Str(s.to_owned());
    }
    if let Some(i) = v.get("intValue") {
        let n = i.as_i64().or_else(|| i.as_str().and_then(|s| s.parse().ok()));
        if let Some(n) = n {
            return Attr::Int(n);
        }
    }
    if let Some(b) = v.get("boolValue").and_then(Value::as_bool) {
        return Attr::Bool(b);
    }
    if let Some(values) = v.get("arrayValue").and_then(|a| a.get("values")).and_then(Value::as_array) {
        return Attr::Array(
            values.iter().map(|x| x.get("stringValue").and_then(Value::as_str).unwrap_or("").to_owned()).collect(),
        );
    }
    Attr::Other(v.to_string())
}

fn attrs(list: Option<&Value>) -> BTreeMap<String, Attr> {
    list.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|kv| Some((kv.get("key")?.as_str()?.to_owned(), attr(kv.get("value")?))))
                .collect()
        })
        .unwrap_or_default()
}

fn num(v: Option<&Value>) -> u64 {
    v.and_then(|x| x.as_u64().or_else(|| x.as_str().and_then(|s| s.parse().ok()))).unwrap_or(0)
}

/// Every span in an OTLP/JSON file of `ExportTraceServiceRequest` lines. Each line must be a
/// complete JSON object.
pub fn read_spans(path: &Path) -> Vec<SpanRec> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut spans = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let request: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("{}:{}: not a JSON object: {e}", path.display(), n + 1));
        for rs in request["resourceSpans"].as_array().expect("resourceSpans array") {
            let resource = attrs(rs["resource"].get("attributes"));
            for ss in rs["scopeSpans"].as_array().expect("scopeSpans array") {
                for s in ss["spans"].as_array().expect("spans array") {
                    spans.push(SpanRec {
                        trace_id: s["traceId"].as_str().unwrap_or("").to_owned(),
                        span_id: s["spanId"].as_str().unwrap_or("").to_owned(),
                        parent: s["parentSpanId"].as_str().unwrap_or("").to_owned(),
                        name: s["name"].as_str().unwrap_or("").to_owned(),
                        kind: s["kind"].as_i64().unwrap_or(0),
                        start: num(s.get("startTimeUnixNano")),
                        end: num(s.get("endTimeUnixNano")),
                        status_code: s["status"]["code"].as_i64().unwrap_or(0),
                        status_message: s["status"]["message"].as_str().unwrap_or("").to_owned(),
                        attrs: attrs(s.get("attributes")),
                        resource: resource.clone(),
                    });
                }
            }
        }
    }
    spans
}

/// A session's spans: the `invoke_agent` root whose working directory is `cwd`, and every span
/// of its trace.
pub fn session_in<'a>(spans: &'a [SpanRec], cwd: &Path) -> (&'a SpanRec, Vec<&'a SpanRec>) {
    let cwd = cwd.to_str().expect("utf-8 temp dir");
    let roots: Vec<&SpanRec> = spans
        .iter()
        .filter(|s| s.parent.is_empty() && s.str("process.working_directory") == Some(cwd))
        .collect();
    assert_eq!(roots.len(), 1, "expected one session rooted in {cwd}, got {}: {roots:#?}", roots.len());
    let root = roots[0];
    let trace = spans.iter().filter(|s| s.trace_id == root.trace_id).collect();
    (root, trace)
}
