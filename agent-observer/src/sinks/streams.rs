//! Views of captured plaintext streams, before any protocol decoding.
//!
//! - [`DebugView`] (`--debug-tls`): the head of every segment, secrets redacted.
//! - [`StreamDump`] (`--dump-streams DIR`): every stream's raw bytes in a file of its own. This
//!   is content capture, so it only happens when asked for.

use std::{
    collections::HashMap,
    fs::File,
    io::Write as _,
    path::{Path, PathBuf},
};

use anyhow::Context as _;

use crate::{
    correlate::StreamLabel,
    decode::Segment,
    intake::{Conn, Direction},
    redact::Redactor,
    text::display_bytes,
};

/// Somewhere segments go as they are reassembled.
pub trait StreamSink: Send {
    fn segment(&mut self, segment: &Segment, label: &StreamLabel);
    fn flush(&mut self) -> anyhow::Result<()> {
        Ok(())
    }
}

fn conn_name(conn: Conn) -> (&'static str, u64) {
    match conn {
        Conn::Tls(p) => ("tls", p),
        Conn::Socket(p) => ("sock", p),
    }
}

fn dir_name(dir: Direction) -> &'static str {
    match dir {
        Direction::Send => "send",
        Direction::Recv => "recv",
    }
}

/// Bytes of each segment shown by the debug view.
const HEAD: usize = 240;

pub struct DebugView {
    out: Box<dyn std::io::Write + Send>,
    redactor: Redactor,
}

impl DebugView {
    pub fn new(out: Box<dyn std::io::Write + Send>, redactor: Redactor) -> DebugView {
        DebugView { out, redactor }
    }
}

impl StreamSink for DebugView {
    fn segment(&mut self, s: &Segment, label: &StreamLabel) {
        let (kind, ptr) = conn_name(s.conn);
        let peer = label
            .server_name
            .clone()
            .or_else(|| label.remote.map(|r| r.to_string()))
            .unwrap_or_else(|| "?".into());
        let head = &s.bytes[..s.bytes.len().min(HEAD)];
        let text = display_bytes(head).replace('\r', "").replace('\n', "⏎");
        let text = self.redactor.text(&text);
        let more = if s.bytes.len() > HEAD { "…" } else { "" };
        let lost = if s.lost > 0 { format!(" ({} bytes lost)", s.lost) } else { String::new() };
        let _ = writeln!(
            self.out,
            "[{kind} {ptr:x} pid {} {} {peer}] {} {} bytes{lost}: {text}{more}",
            s.tgid,
            label.agent.as_deref().unwrap_or("-"),
            dir_name(s.dir),
            s.bytes.len(),
        );
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        let _ = self.out.flush();
        Ok(())
    }
}

/// Raw plaintext per stream, with an `index.jsonl` describing each file.
pub struct StreamDump {
    dir: PathBuf,
    files: HashMap<String, File>,
    index: File,
}

impl StreamDump {
    pub fn create(dir: &Path) -> anyhow::Result<StreamDump> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let index = File::options()
            .create(true)
            .append(true)
            .open(dir.join("index.jsonl"))
            .with_context(|| format!("cannot open {}/index.jsonl", dir.display()))?;
        Ok(StreamDump { dir: dir.to_owned(), files: HashMap::new(), index })
    }

    fn note(&mut self, value: serde_json::Value) {
        let _ = writeln!(self.index, "{value}");
    }
}

impl StreamSink for StreamDump {
    fn segment(&mut self, s: &Segment, label: &StreamLabel) {
        let (kind, ptr) = conn_name(s.conn);
        let name = format!("{}-{kind}-{ptr:x}-{}.bin", s.tgid, dir_name(s.dir));
        if !self.files.contains_key(&name) {
            match File::create(self.dir.join(&name)) {
                Ok(f) => {
                    self.files.insert(name.clone(), f);
                }
                Err(e) => {
                    log::error!("stream dump: cannot create {name}: {e}");
                    return;
                }
            }
            self.note(serde_json::json!({
                "file": name,
                "pid": s.tgid,
                "kind": kind,
                "conn": format!("{ptr:x}"),
                "direction": dir_name(s.dir),
                "library": s.library,
                "agent": label.agent,
                "server_name": label.server_name,
                "remote": label.remote.map(|r| r.to_string()),
                "first_unix_nano": s.ts,
            }));
        }
        if let Some(f) = self.files.get_mut(&name) {
            if let Err(e) = f.write_all(&s.bytes) {
                log::error!("stream dump: cannot write {name}: {e}");
            }
        }
        if s.lost > 0 {
            self.note(serde_json::json!({ "file": name, "lost_bytes": s.lost }));
        }
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        for f in self.files.values_mut() {
            f.flush()?;
        }
        self.index.flush()?;
        Ok(())
    }
}
