//! The engine's timers: one deadline per kind of work, so an input that makes one kind
//! due (a peer to dial, a tracker to ask, the queue to rebalance) runs that work alone at
//! the next [`crate::Input::Timeout`] instead of the whole housekeeping over every torrent
//! and connection.

use std::time::{Duration, Instant};

/// A kind of timed work.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Timer {
    /// Every `tick_interval`: rates and rate limits, connection timeouts (lt-wire's
    /// deadlines), stats and upload-mode retries, reads waiting for the rate limits, the
    /// choker, PEX, metadata requests, share mode and interest.
    Housekeeping,
    /// Dialling peers from the peer lists (every `tick_interval`, or at once when a list
    /// grows).
    Connect,
    /// Tracker, DHT and LSD announces that are due.
    Announce,
    /// The auto-manager (queuing).
    Queue,
}

impl Timer {
    const ALL: [Self; 4] = [
        Self::Housekeeping,
        Self::Connect,
        Self::Announce,
        Self::Queue,
    ];

    const fn slot(self) -> usize {
        match self {
            Self::Housekeeping => 0,
            Self::Connect => 1,
            Self::Announce => 2,
            Self::Queue => 3,
        }
    }
}

/// When each kind of work is next due, and when it last ran.
#[derive(Debug)]
pub(super) struct TimerTable {
    due: [Option<Instant>; 4],
    ran: [Option<Instant>; 4],
}

impl TimerTable {
    /// Everything due at `now`.
    pub(super) const fn new(now: Instant) -> Self {
        Self {
            due: [Some(now); 4],
            ran: [None; 4],
        }
    }

    /// Makes `timer` due at `at`.
    pub(super) const fn set(&mut self, timer: Timer, at: Instant) {
        self.due[timer.slot()] = Some(at);
    }

    /// Makes `timer` due at `at` at the latest.
    pub(super) fn pull(&mut self, timer: Timer, at: Instant) {
        let slot = &mut self.due[timer.slot()];
        *slot = Some(slot.map_or(at, |t| t.min(at)));
    }

    /// Makes `timer` due at `now` at the latest, or `gap` after it last ran if that is
    /// later: many pulls in a row (ten thousand torrents added one after another) run the
    /// work once per `gap`, not once each.
    pub(super) fn pull_spaced(&mut self, timer: Timer, now: Instant, gap: Duration) {
        let at = self.ran[timer.slot()].map_or(now, |r| now.max(r + gap));
        self.pull(timer, at);
    }

    /// Makes every timer due at `at` at the latest.
    pub(super) fn pull_all(&mut self, at: Instant) {
        for t in Timer::ALL {
            self.pull(t, at);
        }
    }

    /// Whether `timer` is due at `now`; a due timer is disarmed (the work sets it again).
    pub(super) fn take(&mut self, timer: Timer, now: Instant) -> bool {
        let slot = &mut self.due[timer.slot()];
        if slot.is_some_and(|t| t <= now) {
            *slot = None;
            self.ran[timer.slot()] = Some(now);
            return true;
        }
        false
    }

    /// The earliest deadline.
    pub(super) fn next(&self) -> Option<Instant> {
        self.due.iter().flatten().min().copied()
    }
}
