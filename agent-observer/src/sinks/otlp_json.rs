//! OTLP/JSON to a file: one `ExportTraceServiceRequest` per line, the encoding of the
//! OpenTelemetry Collector's file exporter.

use std::{
    fs::File,
    io::{BufWriter, Write as _},
    path::{Path, PathBuf},
};

use anyhow::Context as _;
use opentelemetry::InstrumentationScope;
use opentelemetry_proto::{
    tonic::collector::trace::v1::ExportTraceServiceRequest,
    transform::{common::tonic::ResourceAttributesWithSchema, trace::tonic::group_spans_by_resource_and_scope},
};
use opentelemetry_sdk::trace::SpanData;

use super::{Sink, to_span_data};
use crate::span::Span;

/// Encodes spans as one OTLP/JSON request line.
pub fn encode_line(spans: Vec<SpanData>, resource: &ResourceAttributesWithSchema) -> anyhow::Result<String> {
    let request = ExportTraceServiceRequest { resource_spans: group_spans_by_resource_and_scope(spans, resource) };
    Ok(serde_json::to_string(&request)?)
}

pub struct FileSink {
    path: PathBuf,
    out: BufWriter<File>,
    pending: Vec<SpanData>,
    resource: ResourceAttributesWithSchema,
    scope: InstrumentationScope,
}

impl FileSink {
    /// Appends to `path`, creating it if needed.
    pub fn create(path: &Path) -> anyhow::Result<FileSink> {
        let file = File::options()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open output file {}", path.display()))?;
        Ok(FileSink {
            path: path.to_owned(),
            out: BufWriter::new(file),
            pending: Vec::new(),
            resource: (&super::resource()).into(),
            scope: super::scope(),
        })
    }
}

impl Sink for FileSink {
    fn span_ended(&mut self, span: &Span, _depth: u32, _agent: &str) {
        self.pending.push(to_span_data(span, &self.scope));
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let line = encode_line(std::mem::take(&mut self.pending), &self.resource)?;
        self.out
            .write_all(line.as_bytes())
            .and_then(|()| self.out.write_all(b"\n"))
            .and_then(|()| self.out.flush())
            .with_context(|| format!("cannot write to {}", self.path.display()))
    }
}
