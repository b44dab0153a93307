//! Reading the kernel's ring buffer and its loss counters.

use std::{os::fd::AsRawFd as _, time::Duration};

use agent_observer_common::stat;
use aya::maps::{MapData, PerCpuArray, RingBuf};

use super::{Event, clock::BootClock, record};

/// Counters of what the kernel or the intake could not deliver.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Losses {
    /// Records dropped because the ring buffer was full.
    pub ring_full: u64,
    /// Syscalls not followed to their exit because a per-thread map was full.
    pub pending_full: u64,
    /// Children not tracked because the tracked set was full.
    pub tracked_full: u64,
    /// Kernel reads that failed.
    pub read_failed: u64,
    /// Write episodes reported without aggregation.
    pub writes_full: u64,
    /// Payload bytes not captured.
    pub data_lost_bytes: u64,
    /// Records the daemon could not decode.
    pub undecodable: u64,
}

impl Losses {
    /// Events lost for good (payload truncation and read faults are reported separately).
    pub fn events_lost(&self) -> u64 {
        self.ring_full + self.pending_full + self.tracked_full + self.undecodable
    }
}

pub struct Intake {
    ring: RingBuf<MapData>,
    stats: PerCpuArray<MapData, u64>,
    clock: BootClock,
    undecodable: u64,
}

impl Intake {
    pub fn new(ring: RingBuf<MapData>, stats: PerCpuArray<MapData, u64>) -> Intake {
        Intake { ring, stats, clock: BootClock::sample(), undecodable: 0 }
    }

    /// Waits until records are ready or `timeout` passes.
    pub fn wait(&self, timeout: Duration) -> std::io::Result<()> {
        let mut fds = [libc::pollfd { fd: self.ring.as_raw_fd(), events: libc::POLLIN, revents: 0 }];
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), 1, ms) };
        if rc < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() != std::io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
        Ok(())
    }

    /// Decodes up to `limit` ready records into `out`. Returns how many were read.
    pub fn drain(&mut self, out: &mut Vec<Event>, limit: usize) -> usize {
        let mut n = 0;
        while n < limit {
            let Some(item) = self.ring.next() else { break };
            n += 1;
            match record::parse(&item, &self.clock) {
                Ok(event) => out.push(event),
                Err(e) => {
                    self.undecodable += 1;
                    log::warn!("undecodable kernel record: {e}");
                }
            }
        }
        n
    }

    /// Re-samples the clock offset (NTP may have stepped the wall clock).
    pub fn resync_clock(&mut self) {
        self.clock = BootClock::sample();
    }

    pub fn clock(&self) -> BootClock {
        self.clock
    }

    pub fn losses(&self) -> Losses {
        let sum = |index: u32| -> u64 {
            self.stats.get(&index, 0).map(|values| values.iter().sum()).unwrap_or(0)
        };
        Losses {
            ring_full: sum(stat::RINGBUF_FULL),
            pending_full: sum(stat::PENDING_FULL),
            tracked_full: sum(stat::TRACKED_FULL),
            read_failed: sum(stat::READ_FAILED),
            writes_full: sum(stat::WRITES_FULL),
            data_lost_bytes: sum(stat::DATA_LOST_BYTES),
            undecodable: self.undecodable,
        }
    }
}
