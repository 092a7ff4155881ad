//! Path MTU discovery: a binary search for the largest datagram the path carries.
//!
//! Packets start at the safe base size ([`Config::base_packet_size`](crate::Config), 1232
//! bytes by default: IPv6's minimum MTU less the IPv6 and UDP headers). While the search
//! is open, one full data packet at a time is sent padded to the midpoint between the
//! largest size known to pass (the floor) and the smallest known not to (the ceiling, at
//! first [`Config::max_packet_size`](crate::Config)). The padding is made of extensions every
//! receiver skips, so the payload is an ordinary one: a lost probe lowers the ceiling and
//! its data goes again unpadded, without a congestion-window cut (a lost probe says
//! nothing about congestion). An acknowledged probe raises the floor to its length. The
//! search stops when the two are within [`MTU_SEARCH_STEP`](crate::limits::MTU_SEARCH_STEP) bytes and starts again after
//! [`Config::mtu_probe_interval`](crate::Config). Repeated retransmission timeouts (the
//! path may have shrunk) drop the floor back to the base size.
//!
//! Invariant: no datagram but a probe is larger than the floor, and the floor only grows
//! through an acknowledged probe. The sender relies on the driver's socket to forbid IP
//! fragmentation (Linux `IP_PMTUDISC_PROBE`), so an oversize probe is dropped rather than
//! fragmented.

use std::time::{Duration, Instant};

use crate::limits::MTU_SEARCH_STEP;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Probe {
    pub(crate) seq: u16,
    pub(crate) size: usize,
}

#[derive(Debug)]
pub(crate) struct Mtu {
    base: usize,
    max: usize,
    interval: Duration,
    /// Largest datagram known to pass: every non-probe datagram fits in it.
    pub(crate) floor: usize,
    /// Largest size not yet known to fail.
    pub(crate) ceiling: usize,
    /// The probe in flight (first transmission not yet acknowledged or lost).
    pub(crate) probe: Option<Probe>,
    /// Encoded length of the probe in flight.
    pub(crate) probe_len: usize,
    next_search: Option<Instant>,
}

impl Mtu {
    pub(crate) fn new(base: usize, max: usize, interval: Duration) -> Self {
        let max = max.max(base);
        Self {
            base,
            max,
            interval,
            floor: base,
            ceiling: max,
            probe: None,
            probe_len: 0,
            next_search: None,
        }
    }

    /// Called for each new full data packet `seq`: makes it a probe when one is due.
    pub(crate) fn maybe_start_probe(&mut self, now: Instant, seq: u16) {
        if self.probe.is_some() {
            return;
        }
        if self.ceiling < self.floor + MTU_SEARCH_STEP {
            match self.next_search {
                None => {
                    self.next_search = Some(now + self.interval);
                    return;
                }
                Some(t) if now >= t => {
                    self.next_search = None;
                    self.ceiling = self.max;
                    if self.ceiling < self.floor + MTU_SEARCH_STEP {
                        return;
                    }
                }
                Some(_) => return,
            }
        }
        let size = self.floor + (self.ceiling - self.floor).div_ceil(2);
        self.probe = Some(Probe { seq, size });
    }

    /// Packet `seq` was acknowledged; `first` when on its first transmission.
    pub(crate) fn on_acked(&mut self, seq: u16, first: bool) {
        if self.probe.is_some_and(|p| p.seq == seq) {
            if first && self.probe_len > self.floor {
                self.floor = self.probe_len.min(self.ceiling);
                tracing::trace!(mtu = self.floor, "uTP MTU probe acknowledged");
            }
            self.probe = None;
        }
    }

    /// Packet `seq` was declared lost: returns whether it was the probe (whose loss is
    /// not congestion).
    pub(crate) fn on_lost(&mut self, seq: u16) -> bool {
        match self.probe.filter(|p| p.seq == seq) {
            Some(p) => {
                self.ceiling = (p.size - 1).max(self.floor);
                self.probe = None;
                tracing::trace!(size = p.size, ceiling = self.ceiling, "uTP MTU probe lost");
                true
            }
            None => false,
        }
    }

    /// Consecutive retransmission timeouts: the path may carry less than the floor.
    pub(crate) fn on_timeouts(&mut self, consecutive: u32) {
        if let Some(p) = self.probe {
            self.on_lost(p.seq);
        }
        if consecutive >= 2 && self.floor > self.base {
            self.ceiling = self.floor - 1;
            self.floor = self.base;
            self.next_search = None;
        }
    }
}
