//! Connections still open when their process exits: their last fd closes without a syscall,
//! so the intake reads their counters from the kernel and hands on a synthetic close.

use std::collections::{HashMap, HashSet};

use super::{Event, SockClose, SockCounters};

#[derive(Default)]
pub struct OpenSockets {
    by_tgid: HashMap<u32, HashSet<u64>>,
}

impl OpenSockets {
    pub fn observe(&mut self, event: &Event) {
        match event {
            Event::SockOpen(o) => {
                self.by_tgid.entry(o.tgid).or_default().insert(o.sk);
            }
            Event::SockClose(c) => {
                for socks in self.by_tgid.values_mut() {
                    socks.remove(&c.sk);
                }
            }
            _ => {}
        }
    }

    /// Closes to hand on before an exit: `read` fetches (and removes) a connection's counters.
    pub fn closes_before(&mut self, event: &Event, mut read: impl FnMut(u64) -> Option<SockCounters>) -> Vec<Event> {
        let Event::Exit(x) = event else { return Vec::new() };
        let Some(socks) = self.by_tgid.remove(&x.tgid) else { return Vec::new() };
        let mut socks: Vec<u64> = socks.into_iter().collect();
        socks.sort_unstable();
        socks
            .into_iter()
            .filter_map(|sk| {
                // Absent from the kernel map: closed by another process that shared it.
                let counters = read(sk)?;
                Some(Event::SockClose(SockClose { ts: x.ts, tgid: x.tgid, sk, counters, at_exit: true }))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intake::{Exit, SockOpen};

    #[test]
    fn an_exit_closes_what_the_kernel_still_counts() {
        let mut o = OpenSockets::default();
        let addr: std::net::SocketAddr = "127.0.0.1:1".parse().unwrap();
        for sk in [1, 2] {
            o.observe(&Event::SockOpen(SockOpen { ts: 1, tgid: 9, sk, fd: 3, connected: true, local: addr, remote: addr }));
        }
        let exit = Event::Exit(Exit { ts: 5, tgid: 9, status: 0 });
        let closes = o.closes_before(&exit, |sk| (sk == 2).then(|| SockCounters { bytes_sent: 7, ..Default::default() }));
        assert_eq!(closes.len(), 1);
        let Event::SockClose(c) = &closes[0] else { panic!() };
        assert!(c.at_exit && c.sk == 2 && c.counters.bytes_sent == 7);
        assert!(o.closes_before(&exit, |_| None).is_empty());
    }
}
