//! Sinks: where finished spans go. None of them knows how spans are made.
//!
//! - [`otlp_json::FileSink`]: OTLP/JSON, one `ExportTraceServiceRequest` per line, as the
//!   OpenTelemetry Collector's file exporter writes it.
//! - [`otlp::OtlpSink`]: OTLP over gRPC or HTTP/protobuf through `opentelemetry-otlp`.
//! - [`console::ConsoleSink`]: a readable live view.
//!
//! All OTLP encodings go through [`to_span_data`], so the file and the wire carry the same
//! spans.

pub mod console;
pub mod otlp;
pub mod otlp_json;
pub mod streams;

use std::{borrow::Cow, time::{Duration, SystemTime}};

use opentelemetry::{
    InstrumentationScope, KeyValue, StringValue,
    trace::{SpanContext, SpanKind as OtelKind, Status as OtelStatus, TraceFlags, TraceState},
};
use opentelemetry_sdk::{Resource, trace::SpanData};

use crate::span::{Span, SpanKind, Status, Value};

/// A destination for the trace. Called from the daemon's loop; must not block for long.
pub trait Sink: Send {
    fn span_started(&mut self, _span: &Span, _depth: u32, _agent: &str) {}
    fn span_ended(&mut self, span: &Span, depth: u32, agent: &str);
    fn session_started(&mut self, _root_tgid: u32, _agent: &str) {}
    fn session_ended(&mut self, _root_tgid: u32, _agent: &str, _status: Option<u32>) {}
    /// Writes out what is buffered. Called after every batch of events.
    fn flush(&mut self) -> anyhow::Result<()> {
        Ok(())
    }
    /// Final flush; reports anything that could not be delivered.
    fn shutdown(&mut self) -> anyhow::Result<()> {
        self.flush()
    }
}

/// The resource every span is exported under: `service.name` defaults to `agent-observer`
/// and the standard `OTEL_SERVICE_NAME` / `OTEL_RESOURCE_ATTRIBUTES` apply.
pub fn resource() -> Resource {
    let mut builder = Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        builder = builder.with_service_name("agent-observer");
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    builder
        .with_attribute(KeyValue::new("host.name", host.trim().to_owned()))
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build()
}

pub fn scope() -> InstrumentationScope {
    InstrumentationScope::builder("agent-observer").with_version(env!("CARGO_PKG_VERSION")).build()
}

fn time(ns: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_nanos(ns)
}

fn value(v: &Value) -> opentelemetry::Value {
    match v {
        Value::Str(s) => opentelemetry::Value::String(s.clone().into()),
        Value::Int(i) => opentelemetry::Value::I64(*i),
        Value::Bool(b) => opentelemetry::Value::Bool(*b),
        Value::StrArray(a) => opentelemetry::Value::Array(opentelemetry::Array::String(
            a.iter().cloned().map(StringValue::from).collect(),
        )),
    }
}

/// Our span as the OpenTelemetry SDK's exportable span.
pub fn to_span_data(span: &Span, scope: &InstrumentationScope) -> SpanData {
    let context = SpanContext::new(
        opentelemetry::trace::TraceId::from_bytes(span.trace_id.0),
        opentelemetry::trace::SpanId::from_bytes(span.span_id.0),
        TraceFlags::SAMPLED,
        false,
        TraceState::default(),
    );
    SpanData {
        span_context: context,
        parent_span_id: span
            .parent
            .map(|p| opentelemetry::trace::SpanId::from_bytes(p.0))
            .unwrap_or(opentelemetry::trace::SpanId::INVALID),
        parent_span_is_remote: false,
        span_kind: match span.kind {
            SpanKind::Internal => OtelKind::Internal,
            SpanKind::Client => OtelKind::Client,
        },
        name: Cow::Owned(span.name.clone()),
        start_time: time(span.start),
        end_time: time(span.end.max(span.start)),
        attributes: span
            .attributes
            .iter()
            .map(|a| KeyValue::new(a.key.clone(), value(&a.value)))
            .collect(),
        dropped_attributes_count: 0,
        events: Default::default(),
        links: Default::default(),
        status: match &span.status {
            Status::Unset => OtelStatus::Unset,
            Status::Ok => OtelStatus::Ok,
            Status::Error(msg) => OtelStatus::error(msg.clone()),
        },
        instrumentation_scope: scope.clone(),
    }
}

/// Sends each output to every sink.
pub struct Fanout {
    sinks: Vec<Box<dyn Sink>>,
}

impl Fanout {
    pub fn new(sinks: Vec<Box<dyn Sink>>) -> Fanout {
        Fanout { sinks }
    }

    pub fn dispatch(&mut self, output: &crate::correlate::Output) {
        use crate::correlate::Output;
        for sink in &mut self.sinks {
            match output {
                Output::SpanStarted { span, depth, agent } => sink.span_started(span, *depth, agent),
                Output::SpanEnded { span, depth, agent } => sink.span_ended(span, *depth, agent),
                Output::SessionStarted { root_tgid, agent, .. } => sink.session_started(*root_tgid, agent),
                Output::SessionEnded { root_tgid, agent, status, .. } => {
                    sink.session_ended(*root_tgid, agent, *status)
                }
                Output::Track(_) | Output::Untrack(_) | Output::HashFile(_) => {}
            }
        }
    }

    pub fn flush(&mut self) {
        for sink in &mut self.sinks {
            if let Err(e) = sink.flush() {
                log::error!("{e:#}");
            }
        }
    }

    /// Shuts every sink down; returns the first error after trying them all.
    pub fn shutdown(&mut self) -> anyhow::Result<()> {
        let mut first = Ok(());
        for sink in &mut self.sinks {
            if let Err(e) = sink.shutdown() {
                log::error!("{e:#}");
                if first.is_ok() {
                    first = Err(e);
                }
            }
        }
        first
    }
}
