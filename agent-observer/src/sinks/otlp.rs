//! OTLP export over gRPC or HTTP/protobuf, through `opentelemetry-otlp`.
//!
//! The exporter runs on its own thread with a small tokio runtime, so a slow or absent
//! collector never stalls event intake. Spans a collector refuses are kept (up to a bound) and
//! retried with backoff; whatever is still undelivered at shutdown is reported.

use std::{collections::VecDeque, thread::JoinHandle, time::Duration};

use anyhow::{Context as _, bail};
use opentelemetry::InstrumentationScope;
use opentelemetry_otlp::{Protocol, WithExportConfig as _};
use opentelemetry_sdk::trace::{SpanData, SpanExporter as _};
use tokio::sync::mpsc;

use super::{Sink, to_span_data};
use crate::span::Span;

/// Spans kept for retry while the collector is unreachable.
const MAX_QUEUED: usize = 200_000;
const BATCH: usize = 512;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Grpc,
    HttpProtobuf,
}

impl Transport {
    /// From `--otlp-protocol` or the standard environment variables; the OpenTelemetry
    /// default is `http/protobuf`.
    pub fn resolve(flag: Option<&str>) -> anyhow::Result<Transport> {
        let env = std::env::var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            .or_else(|_| std::env::var("OTEL_EXPORTER_OTLP_PROTOCOL"))
            .ok();
        match flag.map(str::to_owned).or(env).as_deref() {
            None | Some("http/protobuf") => Ok(Transport::HttpProtobuf),
            Some("grpc") => Ok(Transport::Grpc),
            Some(other) => bail!("unsupported OTLP protocol `{other}`: use `grpc` or `http/protobuf`"),
        }
    }
}

/// Whether the environment asks for OTLP export.
pub fn enabled_by_env() -> bool {
    let exporter_off = std::env::var("OTEL_TRACES_EXPORTER").is_ok_and(|v| v == "none");
    !exporter_off
        && (std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").is_some()
            || std::env::var_os("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_some())
}

enum Msg {
    Spans(Vec<SpanData>),
    Shutdown,
}

struct Report {
    delivered: u64,
    undelivered: u64,
    last_error: Option<String>,
}

pub struct OtlpSink {
    tx: mpsc::UnboundedSender<Msg>,
    worker: Option<JoinHandle<Report>>,
    scope: InstrumentationScope,
    pending: Vec<SpanData>,
    target: String,
}

impl OtlpSink {
    /// `endpoint` overrides `OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT`.
    pub fn start(transport: Transport, endpoint: Option<&str>) -> anyhow::Result<OtlpSink> {
        let (tx, rx) = mpsc::unbounded_channel();
        let endpoint = endpoint.map(str::to_owned);
        let target = format!(
            "{} {}",
            match transport {
                Transport::Grpc => "grpc",
                Transport::HttpProtobuf => "http/protobuf",
            },
            endpoint
                .clone()
                .or_else(|| std::env::var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").ok())
                .or_else(|| std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").ok())
                .unwrap_or_else(|| "(default endpoint)".into())
        );
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let worker = std::thread::Builder::new()
            .name("otlp-export".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
                let runtime = match runtime {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = ready_tx.send(Err(anyhow::anyhow!("tokio runtime: {e}")));
                        return Report { delivered: 0, undelivered: 0, last_error: None };
                    }
                };
                runtime.block_on(async move {
                    match build_exporter(transport, endpoint) {
                        Ok(exporter) => {
                            let _ = ready_tx.send(Ok(()));
                            run(exporter, rx).await
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            Report { delivered: 0, undelivered: 0, last_error: None }
                        }
                    }
                })
            })
            .context("cannot start the OTLP export thread")?;
        ready_rx.recv().context("OTLP export thread died")??;
        Ok(OtlpSink { tx, worker: Some(worker), scope: super::scope(), pending: Vec::new(), target })
    }
}

fn build_exporter(transport: Transport, endpoint: Option<String>) -> anyhow::Result<opentelemetry_otlp::SpanExporter> {
    let mut exporter = match transport {
        Transport::Grpc => {
            let mut b = opentelemetry_otlp::SpanExporter::builder().with_tonic();
            if let Some(e) = endpoint {
                b = b.with_endpoint(e);
            }
            b.build()
        }
        Transport::HttpProtobuf => {
            let mut b = opentelemetry_otlp::SpanExporter::builder().with_http().with_protocol(Protocol::HttpBinary);
            if let Some(e) = endpoint {
                b = b.with_endpoint(e);
            }
            b.build()
        }
    }
    .context("cannot configure the OTLP exporter")?;
    exporter.set_resource(&super::resource());
    Ok(exporter)
}

async fn run(exporter: opentelemetry_otlp::SpanExporter, mut rx: mpsc::UnboundedReceiver<Msg>) -> Report {
    let mut queue: VecDeque<SpanData> = VecDeque::new();
    let mut report = Report { delivered: 0, undelivered: 0, last_error: None };
    let mut backoff = Duration::from_millis(500);
    let mut failing = false;
    let mut stopping = false;
    loop {
        if !stopping {
            let msg = if queue.is_empty() || failing {
                let wait = if failing { backoff } else { Duration::from_secs(3600) };
                tokio::time::timeout(wait, rx.recv()).await.unwrap_or(Some(Msg::Spans(Vec::new())))
            } else {
                rx.try_recv().ok()
            };
            match msg {
                Some(Msg::Spans(spans)) => queue.extend(spans),
                Some(Msg::Shutdown) | None => stopping = true,
            }
            while queue.len() > MAX_QUEUED {
                queue.pop_front();
                report.undelivered += 1;
            }
        }
        while !queue.is_empty() {
            let n = queue.len().min(BATCH);
            let batch: Vec<SpanData> = queue.iter().take(n).cloned().collect();
            let result = tokio::time::timeout(Duration::from_secs(10), exporter.export(batch)).await;
            match result {
                Ok(Ok(())) => {
                    queue.drain(..n);
                    report.delivered += n as u64;
                    if failing {
                        log::info!("OTLP export recovered");
                    }
                    failing = false;
                    backoff = Duration::from_millis(500);
                }
                Ok(Err(e)) => {
                    fail(&mut report, &mut failing, e.to_string());
                    break;
                }
                Err(_) => {
                    fail(&mut report, &mut failing, "timed out after 10s".into());
                    break;
                }
            }
        }
        if stopping {
            if queue.is_empty() || failing {
                break;
            }
        } else if failing {
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
    }
    report.undelivered += queue.len() as u64;
    let _ = exporter.shutdown();
    report
}

fn fail(report: &mut Report, failing: &mut bool, error: String) {
    if !*failing {
        log::warn!("OTLP export failed, will retry: {error}");
    }
    *failing = true;
    report.last_error = Some(error);
}

impl Sink for OtlpSink {
    fn span_ended(&mut self, span: &Span, _depth: u32, _agent: &str) {
        self.pending.push(to_span_data(span, &self.scope));
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        if !self.pending.is_empty() {
            let spans = std::mem::take(&mut self.pending);
            self.tx.send(Msg::Spans(spans)).map_err(|_| anyhow::anyhow!("OTLP export thread stopped"))?;
        }
        Ok(())
    }

    fn shutdown(&mut self) -> anyhow::Result<()> {
        self.flush()?;
        let _ = self.tx.send(Msg::Shutdown);
        let Some(worker) = self.worker.take() else { return Ok(()) };
        let report = worker.join().map_err(|_| anyhow::anyhow!("OTLP export thread panicked"))?;
        log::info!("OTLP ({}) delivered {} spans", self.target, report.delivered);
        if report.undelivered > 0 {
            bail!(
                "{} spans could not be delivered over OTLP ({}): {}",
                report.undelivered,
                self.target,
                report.last_error.unwrap_or_default()
            );
        }
        Ok(())
    }
}
