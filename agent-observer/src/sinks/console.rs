//! A readable live view of sessions, one line per event, indented by causal depth.

use std::io::Write;

use super::Sink;
use crate::{
    semconv as sc,
    span::{Span, Status, Value},
};

pub struct ConsoleSink {
    out: Box<dyn Write + Send>,
}

impl ConsoleSink {
    pub fn stdout() -> ConsoleSink {
        ConsoleSink { out: Box::new(std::io::stdout()) }
    }

    pub fn stderr() -> ConsoleSink {
        ConsoleSink { out: Box::new(std::io::stderr()) }
    }

    pub fn to(out: Box<dyn Write + Send>) -> ConsoleSink {
        ConsoleSink { out }
    }

    fn line(&mut self, ts: u64, agent: &str, depth: u32, text: &str) {
        let indent = "  ".repeat(depth as usize);
        let _ = writeln!(self.out, "{} {agent:<12} {indent}{text}", clock(ts));
    }
}

/// Local wall-clock time of day with milliseconds.
fn clock(ns: u64) -> String {
    let secs = (ns / 1_000_000_000) as libc::time_t;
    // SAFETY: tm is plain data; localtime_r fills it from a valid time_t.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    unsafe { libc::localtime_r(&secs, &mut tm) };
    format!("{:02}:{:02}:{:02}.{:03}", tm.tm_hour, tm.tm_min, tm.tm_sec, (ns / 1_000_000) % 1000)
}

fn command(span: &Span) -> String {
    match span.get(sc::PROCESS_COMMAND_ARGS) {
        Some(Value::StrArray(args)) => {
            let joined = args
                .iter()
                .map(|a| if a.is_empty() || a.contains([' ', '\'', '"', ';']) { format!("'{a}'") } else { a.clone() })
                .collect::<Vec<_>>()
                .join(" ");
            if joined.chars().count() > 160 {
                format!("{}…", joined.chars().take(160).collect::<String>())
            } else {
                joined
            }
        }
        _ => span.name.clone(),
    }
}

fn duration(span: &Span) -> String {
    let ms = span.end.saturating_sub(span.start) as f64 / 1e6;
    if ms < 1000.0 { format!("{ms:.1}ms") } else { format!("{:.2}s", ms / 1000.0) }
}

impl Sink for ConsoleSink {
    fn span_started(&mut self, span: &Span, depth: u32, agent: &str) {
        if span.get(sc::FILE_PATH).is_some() {
            return; // file spans are reported whole when they end
        }
        let pid = span.get_int(sc::PROCESS_PID).unwrap_or(0);
        let text = if span.parent.is_none() {
            let cwd = span.get_str(sc::PROCESS_WORKING_DIRECTORY).unwrap_or("?");
            format!("▶ session {agent} pid {pid}: {}  (cwd {cwd})", command(span))
        } else if span.get(sc::PROCESS_PID).is_some() {
            format!("▸ [{pid}] {}", command(span))
        } else {
            format!("▸ {}", span.name)
        };
        self.line(span.start, agent, depth, &text);
    }

    fn span_ended(&mut self, span: &Span, depth: u32, agent: &str) {
        if span.parent.is_none() {
            return; // session_ended reports the root
        }
        let mark = match span.status {
            Status::Error(_) => "✗",
            _ => "✓",
        };
        let mut text = format!("{mark} {} {}", span.name, duration(span));
        if let Some(path) = span.get_str(sc::FILE_PATH) {
            text = format!("✎ {} {path}", span.name);
            if let Some(target) = span.get_str(sc::FILE_TARGET_PATH) {
                text.push_str(&format!(" → {target}"));
            }
            if let Some(bytes) = span.get_int(sc::FILE_BYTES_WRITTEN) {
                text.push_str(&format!(" ({bytes} bytes)"));
            }
        } else if let Some(pid) = span.get_int(sc::PROCESS_PID) {
            text = format!("{mark} [{pid}] {} {}", span.name, duration(span));
        }
        if let Status::Error(msg) = &span.status {
            text.push_str(&format!("  ({msg})"));
        }
        if span.get(sc::INCOMPLETE).is_some() {
            text.push_str("  (incomplete)");
        }
        self.line(span.end, agent, depth, &text);
    }

    fn session_ended(&mut self, root_tgid: u32, agent: &str, status: Option<u32>) {
        let how = match status {
            None => "still running (daemon stopped)".to_owned(),
            Some(s) if s & 0x7f != 0 => format!("killed by {}", crate::correlate::signal_name(s & 0x7f)),
            Some(s) => format!("exit {}", (s >> 8) & 0xff),
        };
        let now = crate::intake::clock::BootClock::now_unix();
        self.line(now, agent, 0, &format!("■ session {agent} pid {root_tgid} ended: {how}"));
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        let _ = self.out.flush();
        Ok(())
    }
}
