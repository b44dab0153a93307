//! Write episodes the kernel is still aggregating, so they can be closed when their process
//! exits (or execs, for close-on-exec fds) without a close syscall.
//!
//! The kernel reports an episode's start and its close; an exit closes every fd without a
//! syscall, so for those the intake reads the final counters from the kernel's `WRITES` map and
//! hands the correlator a synthetic close, just before the exit itself.

use std::collections::HashMap;

use super::{CloseHow, Event, FileClose, FileHandle};

const O_CLOEXEC: u32 = 0o2000000;

#[derive(Default)]
pub struct OpenWrites {
    /// tgid → open files it opened for writing or wrote to, with whether the fd is close-on-exec.
    by_tgid: HashMap<u32, HashMap<u64, (FileHandle, bool)>>,
}

/// Final counters of one episode, as read from the kernel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub bytes: u64,
    pub writes: u64,
    pub first_ns: u64,
    pub last_ns: u64,
}

impl OpenWrites {
    /// Follows opens, write starts and closes.
    pub fn observe(&mut self, event: &Event) {
        match event {
            Event::FileOpen(o) => {
                let cloexec = o.flags & O_CLOEXEC != 0;
                self.by_tgid.entry(o.tgid).or_default().insert(o.handle.file, (o.handle, cloexec));
            }
            Event::FileWriteStart(w) => {
                self.by_tgid.entry(w.tgid).or_default().entry(w.handle.file).or_insert((w.handle, false));
            }
            Event::FileClose(c) if !matches!(c.how, CloseHow::Unaggregated | CloseHow::NotLast) => {
                if let Some(files) = self.by_tgid.get_mut(&c.tgid) {
                    files.remove(&c.handle.file);
                }
            }
            _ => {}
        }
    }

    /// Episodes to close before `event` is handled: all of an exiting process's, and the
    /// close-on-exec ones of an exec'ing process. `read` fetches (and removes) the kernel's
    /// counters for (tgid, file).
    pub fn closes_before(
        &mut self,
        event: &Event,
        mut read: impl FnMut(u32, u64) -> Option<Counters>,
        to_unix: impl Fn(u64) -> u64,
    ) -> Vec<Event> {
        let (tgid, ts, only_cloexec) = match event {
            Event::Exit(x) => (x.tgid, x.ts, false),
            Event::Exec(e) => (e.tgid, e.ts, true),
            _ => return Vec::new(),
        };
        let Some(files) = self.by_tgid.get_mut(&tgid) else { return Vec::new() };
        let closing: Vec<(FileHandle, bool)> =
            files.values().copied().filter(|(_, cloexec)| *cloexec || !only_cloexec).collect();
        for (h, _) in &closing {
            files.remove(&h.file);
        }
        if files.is_empty() {
            self.by_tgid.remove(&tgid);
        }
        closing
            .into_iter()
            .map(|(handle, _)| {
                let c = read(tgid, handle.file).unwrap_or_default();
                Event::FileClose(FileClose {
                    ts,
                    tgid,
                    handle,
                    bytes: c.bytes,
                    writes: c.writes,
                    first_write: if c.writes > 0 { to_unix(c.first_ns) } else { 0 },
                    last_write: if c.writes > 0 { to_unix(c.last_ns) } else { 0 },
                    size: -1,
                    how: CloseHow::Exit,
                })
            })
            .collect()
    }

    pub fn len(&self) -> usize {
        self.by_tgid.values().map(HashMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.by_tgid.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intake::{Exit, FileOpen, FileWriteStart, KernelPath};

    fn open(tgid: u32, file: u64, flags: u32) -> Event {
        Event::FileOpen(FileOpen {
            ts: 1,
            tgid,
            handle: FileHandle { file, ..Default::default() },
            flags,
            created: false,
            size: 0,
            path: KernelPath::default(),
        })
    }

    #[test]
    fn exit_closes_every_open_episode_with_kernel_counters() {
        let mut w = OpenWrites::default();
        w.observe(&open(5, 100, 0));
        w.observe(&Event::FileWriteStart(FileWriteStart {
            ts: 2,
            tgid: 5,
            handle: FileHandle { file: 200, ..Default::default() },
            path: KernelPath::default(),
        }));
        let exit = Event::Exit(Exit { ts: 9, tgid: 5, status: 0 });
        let mut closes = w.closes_before(&exit, |_, f| Some(Counters { bytes: f, writes: 1, first_ns: 3, last_ns: 4 }), |t| t + 1000);
        closes.sort_by_key(|e| if let Event::FileClose(c) = e { c.handle.file } else { 0 });
        assert_eq!(closes.len(), 2);
        let Event::FileClose(c) = &closes[1] else { panic!() };
        assert_eq!((c.bytes, c.first_write, c.how, c.ts), (200, 1003, CloseHow::Exit, 9));
        assert!(w.is_empty());
    }

    #[test]
    fn exec_closes_only_close_on_exec_files() {
        let mut w = OpenWrites::default();
        w.observe(&open(5, 100, O_CLOEXEC));
        w.observe(&open(5, 101, 0));
        let exec = Event::Exec(crate::intake::Exec { tgid: 5, ts: 3, ..Default::default() });
        let closes = w.closes_before(&exec, |_, _| None, |t| t);
        assert_eq!(closes.len(), 1);
        assert_eq!(w.len(), 1);
    }
}
