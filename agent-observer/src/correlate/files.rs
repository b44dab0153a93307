//! File changes: write episodes and namespace/metadata operations, as spans under the span of
//! the process that made them.
//!
//! A write episode is one process's use of one open file (`struct file *`), from its open for
//! writing (or its first write through an inherited fd) to its close. Its span waits for the
//! daemon to hash the file's content after close: the hash is requested a short grace period
//! after the close, so that a rename that follows (write-to-temp-then-rename) is applied to the
//! request first and the content is found where it went.

use std::collections::HashMap;

use super::{Correlator, Output, SessionId};
use crate::{
    intake::{CloseHow, FileClose, FileHandle, FileOp, FileOpKind, FileOpen, FileWriteStart, KernelPath, OpPath},
    semconv as sc,
    span::{Span, SpanId, UnixNanos},
    text::{display_bytes, file_name, is_lossless, join_path, normalize},
};

pub use super::noise::Noise;

/// Wait this long after a close before hashing, so renames that follow are seen first.
pub const HASH_GRACE_NS: u64 = 100_000_000;
/// File mtimes come from a coarse clock; later than the close by more than this means the
/// file was modified again.
const CHANGED_SLACK_NS: u64 = 20_000_000;

const O_ACCMODE: u32 = 0o3;
const O_WRONLY: u32 = 0o1;
const O_RDWR: u32 = 0o2;
const O_CREAT: u32 = 0o100;
const O_EXCL: u32 = 0o200;
const O_TRUNC: u32 = 0o1000;
const O_APPEND: u32 = 0o2000;
const AT_REMOVEDIR: u64 = 0x200;

/// What the daemon should hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HashRequest {
    pub id: u64,
    /// The writer: its /proc/PID/root is where `path` is, when it runs in a container.
    pub pid: u32,
    pub path: Vec<u8>,
    pub ino: u64,
    pub dev: u64,
    pub max_bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HashOutcome {
    /// `mtime_ns`: the file's modification time when hashed.
    Hashed { sha256: [u8; 32], size: u64, same_inode: bool, mtime_ns: u64 },
    TooLarge { size: u64 },
    Gone,
    Failed(String),
}

/// File-change settings.
#[derive(Clone, Debug)]
pub struct FilesPolicy {
    pub noise: Noise,
    pub hash_max_bytes: u64,
}

impl Default for FilesPolicy {
    fn default() -> Self {
        FilesPolicy { noise: Noise::default(), hash_max_bytes: 8 << 20 }
    }
}

#[derive(Clone, Debug)]
struct Episode {
    session: SessionId,
    /// Span of the process at open, replaced by its span at the first write.
    parent: SpanId,
    depth: u32,
    pid: u32,
    path: KernelPath,
    handle: FileHandle,
    /// Open flags; None when the episode started with a write through an inherited fd.
    flags: Option<u32>,
    created: bool,
    start: UnixNanos,
    first_write: Option<UnixNanos>,
    bytes: u64,
    writes: u64,
    truncated_to: Option<u64>,
    mmapped: bool,
    /// The last close of an fd that was not the last reference, with the write count then.
    closed_at: Option<(UnixNanos, u64)>,
}

impl Episode {
    /// An episode with nothing written yet (flags unknown: an inherited fd).
    fn new(session: SessionId, parent: SpanId, depth: u32, pid: u32, path: KernelPath, handle: FileHandle, start: UnixNanos) -> Episode {
        Episode {
            session,
            parent,
            depth,
            pid,
            path,
            handle,
            flags: None,
            created: false,
            start,
            first_write: None,
            bytes: 0,
            writes: 0,
            truncated_to: None,
            mmapped: false,
            closed_at: None,
        }
    }
}

#[derive(Clone, Debug)]
struct PendingHash {
    span: Span,
    depth: u32,
    agent: String,
    request: HashRequest,
    due: UnixNanos,
    requested: bool,
}

#[derive(Default)]
pub(super) struct FileState {
    policy: FilesPolicy,
    episodes: HashMap<(u32, u64), Episode>,
    pending: HashMap<u64, PendingHash>,
    next_job: u64,
}

impl FileState {
    pub(super) fn new(policy: FilesPolicy) -> FileState {
        FileState { policy, ..Default::default() }
    }
}

fn flag_names(flags: u32) -> Vec<String> {
    let mut names = vec![match flags & O_ACCMODE {
        O_WRONLY => "O_WRONLY",
        O_RDWR => "O_RDWR",
        _ => "O_RDONLY",
    }
    .to_owned()];
    for (bit, name) in [(O_CREAT, "O_CREAT"), (O_EXCL, "O_EXCL"), (O_TRUNC, "O_TRUNC"), (O_APPEND, "O_APPEND")] {
        if flags & bit != 0 {
            names.push(name.to_owned());
        }
    }
    names
}

/// Absolute path of an operation's path argument.
fn resolve(p: &OpPath) -> KernelPath {
    if p.name.first() == Some(&b'/') {
        return KernelPath { bytes: normalize(&p.name), truncated: p.name_truncated, fault: false };
    }
    if p.name.is_empty() {
        return p.base.clone();
    }
    KernelPath {
        bytes: join_path(&p.base.bytes, &p.name),
        truncated: p.base.truncated || p.name_truncated,
        fault: p.base.fault,
    }
}

/// file.path, file.name, file.directory, and the raw bytes when they are not UTF-8.
fn describe_path(span: &mut Span, key_prefix: &str, path: &KernelPath) {
    let bytes = &path.bytes;
    if key_prefix.is_empty() {
        span.set(sc::FILE_PATH, display_bytes(bytes));
        span.set(sc::FILE_NAME, display_bytes(file_name(bytes)));
        let dir_len = bytes.len() - file_name(bytes).len();
        let dir = &bytes[..dir_len.saturating_sub(1).max(1).min(bytes.len())];
        span.set(sc::FILE_DIRECTORY, display_bytes(dir));
        if !is_lossless(bytes) {
            span.set(sc::FILE_PATH_HEX, hex::encode(bytes));
        }
        if path.truncated {
            span.set(sc::FILE_PATH_TRUNCATED, true);
        }
    } else {
        span.set(key_prefix, display_bytes(bytes));
        if !is_lossless(bytes) {
            span.set(&format!("{key_prefix}_hex"), hex::encode(bytes));
        }
    }
}

/// Rewrites `path` if it is `from` or lies under it.
fn follow_rename(path: &mut Vec<u8>, from: &[u8], to: &[u8]) -> bool {
    if path.as_slice() == from {
        *path = to.to_vec();
        return true;
    }
    if path.starts_with(from) && path.get(from.len()) == Some(&b'/') {
        let rest = path[from.len()..].to_vec();
        *path = [to, rest.as_slice()].concat();
        return true;
    }
    false
}

impl Correlator {
    /// Where (span, depth, session) file activity of `tgid` belongs now.
    fn attribution(&self, tgid: u32) -> Option<(SpanId, u32, SessionId)> {
        self.processes.get(tgid).map(|p| (p.span, p.depth, p.session))
    }

    fn is_noise(&self, session: SessionId, path: &[u8]) -> bool {
        let uid = self.sessions.get(&session).map_or(u32::MAX, |s| s.uid);
        self.files.policy.noise.matches(path, uid)
    }

    pub(super) fn on_file_open(&mut self, o: FileOpen) {
        let Some((parent, depth, session)) = self.attribution(o.tgid) else { return };
        let key = (o.tgid, o.handle.file);
        if let Some(stale) = self.files.episodes.remove(&key) {
            // The same struct file reused: the kernel freed the old one, so it was closed.
            self.finish_episode(stale, o.ts, None, false);
        }
        let mut episode = Episode::new(session, parent, depth, o.tgid, o.path, o.handle, o.ts);
        episode.flags = Some(o.flags);
        episode.created = o.created;
        self.files.episodes.insert(key, episode);
    }

    pub(super) fn on_write_start(&mut self, w: FileWriteStart) {
        let Some((parent, depth, session)) = self.attribution(w.tgid) else { return };
        let episode = self
            .files
            .episodes
            .entry((w.tgid, w.handle.file))
            .or_insert_with(|| Episode::new(session, parent, depth, w.tgid, w.path.clone(), w.handle, w.ts));
        if episode.first_write.is_none() {
            // Attribute to the image that writes: `cmd > f` opens in the shell's fork and
            // writes after the exec.
            episode.first_write = Some(w.ts);
            episode.parent = parent;
            episode.depth = depth;
        }
    }

    pub(super) fn on_file_close(&mut self, c: FileClose) {
        let key = (c.tgid, c.handle.file);
        match c.how {
            CloseHow::Unaggregated => {
                if let Some(e) = self.files.episodes.get_mut(&key) {
                    e.bytes += c.bytes;
                    e.writes += c.writes;
                }
                return;
            }
            CloseHow::NotLast => {
                // The last close may come only at exit; if nothing is written after this one,
                // this is when the process was done with the file.
                if let Some(e) = self.files.episodes.get_mut(&key) {
                    e.closed_at = Some((c.ts, c.writes));
                }
                return;
            }
            _ => {}
        }
        let Some(mut episode) = self.files.episodes.remove(&key) else { return };
        episode.bytes += c.bytes;
        episode.writes += c.writes;
        if let Some(first) = (c.first_write != 0).then_some(c.first_write) {
            episode.first_write = Some(episode.first_write.map_or(first, |f| f.min(first)));
        }
        let size = (c.size >= 0).then_some(c.size as u64);
        // Closed implicitly at exit with nothing written since an earlier close of an fd:
        // it ended at that close.
        let end = match (c.how, episode.closed_at) {
            (CloseHow::Exit, Some((at, writes))) if writes == c.writes => at,
            _ => c.ts,
        };
        self.finish_episode(episode, end, size, false);
    }

    /// Ends an episode: a `file write` span if the file changed, held until it is hashed.
    fn finish_episode(&mut self, e: Episode, end: UnixNanos, size: Option<u64>, incomplete: bool) {
        let flags = e.flags.unwrap_or(0);
        let truncating = flags & O_TRUNC != 0;
        let changed = e.bytes > 0 || e.created || truncating || e.truncated_to.is_some() || e.mmapped;
        if !changed {
            return;
        }
        let noise = self.is_noise(e.session, &e.path.bytes);
        if let Some(s) = self.sessions.get_mut(&e.session) {
            s.files.bytes_written += e.bytes;
            if noise {
                s.files.noise_changes += 1;
            } else if e.created {
                s.files.created.insert(e.path.bytes.clone());
            } else if !s.files.created.contains(&e.path.bytes) {
                s.files.modified.insert(e.path.bytes.clone());
            }
        }
        if noise {
            return;
        }
        let mut span = Span {
            trace_id: self.trace_of(e.session),
            span_id: self.ids.span_id(),
            parent: Some(e.parent),
            name: sc::SPAN_FILE_WRITE.to_owned(),
            start: e.start,
            end,
            ..Default::default()
        };
        describe_path(&mut span, "", &e.path);
        span.set(sc::PROCESS_PID, e.pid);
        span.set(sc::FILE_BYTES_WRITTEN, e.bytes);
        span.set(sc::FILE_WRITE_COUNT, e.writes);
        match e.flags {
            Some(f) => span.set(sc::FILE_OPEN_FLAGS, flag_names(f)),
            None => span.set(sc::FILE_INHERITED_FD, true),
        }
        span.set(sc::FILE_CREATED, e.created);
        if let Some(len) = e.truncated_to {
            span.set(sc::FILE_TRUNCATED_TO, len);
        }
        if e.mmapped {
            span.set(sc::FILE_MMAP_SHARED_WRITE, true);
        }
        if let Some(first) = e.first_write {
            span.set(sc::FILE_FIRST_WRITE_NS, first);
        }
        span.set(sc::FILE_INODE, e.handle.ino);
        if incomplete {
            span.set(sc::INCOMPLETE, true);
        }
        if let Some(size) = size {
            span.set(sc::FILE_SIZE, size);
        }
        let id = self.files.next_job;
        self.files.next_job += 1;
        let request = HashRequest {
            id,
            pid: e.pid,
            path: e.path.bytes.clone(),
            ino: e.handle.ino,
            dev: e.handle.dev,
            max_bytes: self.files.policy.hash_max_bytes,
        };
        let depth = e.depth + 1;
        let agent = self.sessions.get(&e.session).map(|s| s.agent.clone()).unwrap_or_default();
        self.files.pending.insert(
            id,
            PendingHash { span, depth, agent, request, due: end + HASH_GRACE_NS, requested: false },
        );
    }

    pub(super) fn on_file_op(&mut self, op: FileOp, out: &mut Vec<Output>) {
        let Some((parent, depth, session)) = self.attribution(op.tgid) else { return };
        let a = resolve(&op.a);
        let b = op.b.as_ref().map(resolve);

        // fd-based changes to an open episode belong to that episode.
        if let Some(h) = op.handle {
            if let Some(e) = self.files.episodes.get_mut(&(op.tgid, h.file)) {
                match op.kind {
                    FileOpKind::Truncate => {
                        e.truncated_to = Some(op.value);
                        return;
                    }
                    FileOpKind::Mmap => {
                        e.mmapped = true;
                        return;
                    }
                    _ => {}
                }
            }
        }
        if op.kind == FileOpKind::Rename {
            if let Some(to) = &b {
                self.apply_rename(&a.bytes, &to.bytes);
            }
        }

        let (name, subject, is_dir) = match op.kind {
            FileOpKind::Rename => (sc::SPAN_FILE_RENAME, a.clone(), false),
            FileOpKind::Unlink if op.flags & AT_REMOVEDIR != 0 => (sc::SPAN_FILE_DELETE, a.clone(), true),
            FileOpKind::Unlink => (sc::SPAN_FILE_DELETE, a.clone(), false),
            FileOpKind::Rmdir => (sc::SPAN_FILE_DELETE, a.clone(), true),
            FileOpKind::Mkdir => (sc::SPAN_FILE_MKDIR, a.clone(), true),
            FileOpKind::Chmod => (sc::SPAN_FILE_CHMOD, a.clone(), false),
            FileOpKind::Symlink | FileOpKind::Link => {
                (sc::SPAN_FILE_LINK, b.clone().unwrap_or_default(), false)
            }
            FileOpKind::Truncate => (sc::SPAN_FILE_TRUNCATE, a.clone(), false),
            FileOpKind::Mmap => (sc::SPAN_FILE_MMAP, a.clone(), false),
        };

        let noise = self.is_noise(session, &subject.bytes)
            && b.as_ref().is_none_or(|b| op.kind != FileOpKind::Rename || self.is_noise(session, &b.bytes));
        if let Some(s) = self.sessions.get_mut(&session) {
            if noise {
                s.files.noise_changes += 1;
            } else {
                match op.kind {
                    FileOpKind::Unlink | FileOpKind::Rmdir => {
                        s.files.deleted.insert(subject.bytes.clone());
                    }
                    FileOpKind::Mkdir => {
                        s.files.created.insert(subject.bytes.clone());
                    }
                    FileOpKind::Rename => {
                        if let Some(to) = &b {
                            if !s.files.created.contains(&to.bytes) {
                                s.files.modified.insert(to.bytes.clone());
                            }
                        }
                    }
                    FileOpKind::Symlink | FileOpKind::Link => {
                        s.files.created.insert(subject.bytes.clone());
                    }
                    FileOpKind::Chmod | FileOpKind::Truncate | FileOpKind::Mmap => {
                        if !s.files.created.contains(&subject.bytes) {
                            s.files.modified.insert(subject.bytes.clone());
                        }
                    }
                }
            }
        }
        if noise {
            return;
        }

        let mut span = Span {
            trace_id: self.trace_of(session),
            span_id: self.ids.span_id(),
            parent: Some(parent),
            name: name.to_owned(),
            start: op.ts,
            end: op.ts,
            ..Default::default()
        };
        describe_path(&mut span, "", &subject);
        span.set(sc::PROCESS_PID, op.tgid);
        if is_dir {
            span.set(sc::FILE_TYPE, "directory");
        }
        match op.kind {
            FileOpKind::Rename => {
                if let Some(to) = &b {
                    describe_path(&mut span, sc::FILE_TARGET_PATH, to);
                }
                if op.flags != 0 {
                    span.set(sc::FILE_RENAME_FLAGS, op.flags);
                }
            }
            FileOpKind::Chmod | FileOpKind::Mkdir => span.set(sc::FILE_MODE, format!("{:04o}", op.value & 0o7777)),
            FileOpKind::Symlink => {
                span.set(sc::FILE_SYMLINK_TARGET, display_bytes(&op.a.name));
                span.set(sc::FILE_LINK_KIND, "symbolic");
            }
            FileOpKind::Link => {
                describe_path(&mut span, sc::FILE_LINK_SOURCE, &a);
                span.set(sc::FILE_LINK_KIND, "hard");
            }
            FileOpKind::Truncate => span.set(sc::FILE_TRUNCATED_TO, op.value),
            FileOpKind::Mmap => {
                span.set(sc::FILE_MMAP_SHARED_WRITE, true);
                span.set(sc::FILE_MMAP_LENGTH, op.value);
            }
            FileOpKind::Unlink | FileOpKind::Rmdir => {}
        }
        self.emit_span(span, depth + 1, session, out);
    }

    /// A rename moves pending hashes and open episodes along with the file.
    fn apply_rename(&mut self, from: &[u8], to: &[u8]) {
        for p in self.files.pending.values_mut() {
            if follow_rename(&mut p.request.path, from, to) {
                p.span.set(sc::FILE_RENAMED_TO, display_bytes(&p.request.path));
            }
        }
        for e in self.files.episodes.values_mut() {
            follow_rename(&mut e.path.bytes, from, to);
        }
    }

    /// Emits a finished span directly (no hash to wait for).
    fn emit_span(&mut self, span: Span, depth: u32, session: SessionId, out: &mut Vec<Output>) {
        let agent = self.sessions.get(&session).map(|s| s.agent.clone()).unwrap_or_default();
        out.push(Output::SpanStarted { span: span.clone(), depth, agent: agent.clone() });
        out.push(Output::SpanEnded { span, depth, agent });
    }

    /// Hash requests whose grace period has passed (all of them when `now` is u64::MAX).
    pub(super) fn due_hashes(&mut self, now: UnixNanos, out: &mut Vec<Output>) {
        let mut due: Vec<&mut PendingHash> =
            self.files.pending.values_mut().filter(|p| !p.requested && p.due <= now).collect();
        due.sort_by_key(|p| p.request.id);
        for p in due {
            p.requested = true;
            out.push(Output::HashFile(p.request.clone()));
        }
    }

    /// The daemon hashed a file: finish its span.
    pub fn hash_done(&mut self, id: u64, outcome: HashOutcome, out: &mut Vec<Output>) {
        let Some(mut p) = self.files.pending.remove(&id) else { return };
        let status = match outcome {
            HashOutcome::Hashed { sha256, size, same_inode, mtime_ns } => {
                p.span.set(sc::FILE_SHA256, hex::encode(sha256));
                if p.span.get(sc::FILE_SIZE).is_none() {
                    p.span.set(sc::FILE_SIZE, size);
                }
                if !same_inode {
                    "replaced"
                } else if mtime_ns > p.span.end + CHANGED_SLACK_NS {
                    // Written again after this episode closed: the hash is of later content.
                    "changed-after-close"
                } else {
                    "ok"
                }
            }
            HashOutcome::TooLarge { size } => {
                if p.span.get(sc::FILE_SIZE).is_none() {
                    p.span.set(sc::FILE_SIZE, size);
                }
                "too-large"
            }
            HashOutcome::Gone => "gone",
            HashOutcome::Failed(why) => {
                p.span.set(sc::FILE_HASH_ERROR, why);
                "error"
            }
        };
        p.span.set(sc::FILE_HASH_STATUS, status);
        out.push(Output::SpanStarted { span: p.span.clone(), depth: p.depth, agent: p.agent.clone() });
        out.push(Output::SpanEnded { span: p.span, depth: p.depth, agent: p.agent });
    }

    /// Closes the episodes of processes that are gone (daemon shutdown) and requests every
    /// pending hash.
    pub(super) fn flush_files(&mut self, now: UnixNanos, out: &mut Vec<Output>) {
        let episodes: Vec<Episode> = self.files.episodes.drain().map(|(_, e)| e).collect();
        for e in episodes {
            self.finish_episode(e, now, None, true);
        }
        for p in self.files.pending.values_mut() {
            p.due = 0;
        }
        self.due_hashes(u64::MAX, out);
    }

    /// Hash requests not yet answered.
    pub fn pending_hashes(&self) -> usize {
        self.files.pending.len()
    }

    /// Session summary attributes for the root span.
    pub(super) fn describe_files(&self, session: SessionId, span: &mut Span) {
        let Some(s) = self.sessions.get(&session) else { return };
        span.set(sc::FILES_CREATED, s.files.created.len() as u64);
        // Episodes finish in close order, so a file can be modified (through an inherited fd)
        // before the episode that created it ends: created wins.
        let modified = s.files.modified.difference(&s.files.created).count();
        span.set(sc::FILES_MODIFIED, modified as u64);
        span.set(sc::FILES_DELETED, s.files.deleted.len() as u64);
        span.set(sc::FILES_BYTES_WRITTEN, s.files.bytes_written);
        span.set(sc::FILES_NOISE_CHANGES, s.files.noise_changes);
    }
}
