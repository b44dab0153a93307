//! The trace model every sink consumes: plain spans, independent of any exporter crate.

use std::fmt;

/// Nanoseconds since the Unix epoch.
pub type UnixNanos = u64;

#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TraceId(pub [u8; 16]);

#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct SpanId(pub [u8; 8]);

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// Makes trace and span ids. Injected so tests can be deterministic.
pub trait IdSource: Send {
    fn trace_id(&mut self) -> TraceId;
    fn span_id(&mut self) -> SpanId;
}

/// Random ids, as the W3C trace context recommends.
pub struct RandomIds(rand::rngs::StdRng);

impl RandomIds {
    pub fn new() -> RandomIds {
        use rand::SeedableRng as _;
        RandomIds(rand::rngs::StdRng::from_os_rng())
    }

    pub fn seeded(seed: u64) -> RandomIds {
        use rand::SeedableRng as _;
        RandomIds(rand::rngs::StdRng::seed_from_u64(seed))
    }
}

impl Default for RandomIds {
    fn default() -> Self {
        RandomIds::new()
    }
}

impl IdSource for RandomIds {
    fn trace_id(&mut self) -> TraceId {
        use rand::Rng as _;
        loop {
            let id: [u8; 16] = self.0.random();
            if id != [0; 16] {
                return TraceId(id);
            }
        }
    }

    fn span_id(&mut self) -> SpanId {
        use rand::Rng as _;
        loop {
            let id: [u8; 8] = self.0.random();
            if id != [0; 8] {
                return SpanId(id);
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Bool(bool),
    StrArray(Vec<String>),
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Str(s.to_owned())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Str(s)
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Value {
        Value::Int(v)
    }
}
impl From<u32> for Value {
    fn from(v: u32) -> Value {
        Value::Int(v.into())
    }
}
impl From<u64> for Value {
    fn from(v: u64) -> Value {
        Value::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Bool(v)
    }
}
impl From<Vec<String>> for Value {
    fn from(v: Vec<String>) -> Value {
        Value::StrArray(v)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Attribute {
    pub key: String,
    pub value: Value,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Status {
    #[default]
    Unset,
    Ok,
    Error(String),
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SpanKind {
    #[default]
    Internal,
    Client,
}

/// A span, open or finished.
#[derive(Clone, Debug, Default)]
pub struct Span {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub parent: Option<SpanId>,
    pub name: String,
    pub kind: SpanKind,
    pub start: UnixNanos,
    /// Zero while open.
    pub end: UnixNanos,
    pub attributes: Vec<Attribute>,
    pub status: Status,
}

impl Span {
    pub fn set(&mut self, key: &str, value: impl Into<Value>) {
        let value = value.into();
        match self.attributes.iter_mut().find(|a| a.key == key) {
            Some(a) => a.value = value,
            None => self.attributes.push(Attribute { key: key.to_owned(), value }),
        }
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.attributes.iter().find(|a| a.key == key).map(|a| &a.value)
    }

    pub fn get_str(&self, key: &str) -> Option<&str> {
        match self.get(key) {
            Some(Value::Str(s)) => Some(s),
            _ => None,
        }
    }

    pub fn get_int(&self, key: &str) -> Option<i64> {
        match self.get(key) {
            Some(Value::Int(v)) => Some(*v),
            _ => None,
        }
    }
}
