//! Converting kernel CLOCK_BOOTTIME stamps to Unix time.

use crate::span::UnixNanos;

/// Offset between CLOCK_REALTIME and CLOCK_BOOTTIME, sampled when created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootClock {
    offset_ns: i128,
}

fn now(clock: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: valid pointer, valid clock id.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128
}

impl BootClock {
    pub fn sample() -> BootClock {
        BootClock { offset_ns: now(libc::CLOCK_REALTIME) - now(libc::CLOCK_BOOTTIME) }
    }

    /// A fixed offset, for tests.
    pub fn with_offset(offset_ns: i128) -> BootClock {
        BootClock { offset_ns }
    }

    pub fn to_unix(&self, boot_ns: u64) -> UnixNanos {
        (boot_ns as i128 + self.offset_ns).clamp(0, u64::MAX as i128) as u64
    }

    /// The current time, from the same clocks the kernel stamps with.
    pub fn now_unix() -> UnixNanos {
        now(libc::CLOCK_REALTIME) as u64
    }

    /// Boot-time nanoseconds of a `/proc/PID/stat` start time in clock ticks.
    pub fn ticks_to_boot_ns(ticks: u64) -> u64 {
        // SAFETY: sysconf is always safe to call.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        ticks.saturating_mul(1_000_000_000 / hz)
    }
}
