//! Loss recovery and congestion control of a [`Connection`]: duplicate acks and SACK
//! holes, lost retransmissions (RACK), the tail-loss probe, the retransmission timeout and
//! its back-off, RTT estimation, and LEDBAT's window (BEP 29), with the loss responses
//! described in the crate docs.

use std::time::{Duration, Instant};

use tracing::trace;

use super::*;

impl Connection {
    /// Whether the oldest packet in flight was sent so long ago (1.5 smoothed RTTs and a
    /// millisecond) that a data packet from the peer still not acknowledging it counts as a
    /// duplicate ack. In a transfer towards us the peer sends data, rarely ST_STATE, so
    /// without this a lost request waited for the retransmission timeout (500 ms floor).
    pub(super) fn front_overdue(&self, now: Instant) -> bool {
        let (Some(srtt), Some(sent)) = (self.srtt_us, self.inflight.front().and_then(|p| p.sent))
        else {
            return false;
        };
        let wait = Duration::from_micros(srtt.saturating_mul(3) / 2) + Duration::from_millis(1);
        now.saturating_duration_since(sent) > wait
    }

    /// A packet not SACKed while [`DUPLICATE_ACKS`] later ones were is lost (libutp).
    pub(super) fn detect_sack_loss(&mut self) {
        let mut sacked_above = 0;
        let mut lost_seq = None;
        for p in self.inflight.iter_mut().rev() {
            if p.sacked {
                sacked_above += 1;
            } else if sacked_above >= DUPLICATE_ACKS && p.counted() && !p.fast_resent {
                self.cur_window = self.cur_window.saturating_sub(p.payload.len());
                p.lost = true;
                p.fast_resent = true;
                if !self.mtu.on_lost(p.seq) {
                    lost_seq = Some(p.seq);
                }
            }
        }
        if let Some(seq) = lost_seq {
            self.on_loss(seq);
        }
    }

    /// A retransmission is lost when a packet sent after it, by more than a quarter of a
    /// round trip, has been delivered (RACK, RFC 8985, for retransmissions: the duplicate
    /// acks and SACK holes that detect a first loss are spent on it). It goes again now,
    /// not after a retransmission timeout, which would also reset the window.
    pub(super) fn detect_lost_retransmissions(&mut self, delivered_sent: Instant) {
        let Some(srtt) = self.srtt_us else {
            return;
        };
        let reorder = Duration::from_micros(srtt / 4);
        let mut lost_seq = None;
        for p in &mut self.inflight {
            let Some(sent) = p.sent else { break };
            if sent + reorder >= delivered_sent {
                continue;
            }
            if p.transmissions > 1 && p.counted() {
                self.cur_window = self.cur_window.saturating_sub(p.payload.len());
                p.lost = true;
                p.fast_resent = true;
                self.stats.lost_retransmissions += 1;
                lost_seq = Some(p.seq);
            }
        }
        if let Some(seq) = lost_seq {
            self.on_loss(seq);
        }
    }

    /// Arms the tail-loss probe two smoothed round trips (at least 10 ms) from now while
    /// packets are in flight and the round trip is known.
    pub(super) fn arm_tail_probe(&mut self, now: Instant) {
        self.tlp_deadline = match self.srtt_us {
            Some(srtt) if !self.inflight.is_empty() => {
                let pto = Duration::from_micros(srtt.saturating_mul(2)).max(TLP_FLOOR);
                (pto < self.rto).then(|| now + pto)
            }
            _ => None,
        };
    }

    /// The tail-loss probe fired: no ack for two round trips. The oldest packet goes
    /// again, so that the ack it draws shows what is missing (the last packets of a burst
    /// lost whole draw no duplicate acks) long before the retransmission timeout.
    ///
    /// A packet already sent again goes once more if that was over a round trip ago: a
    /// lost retransmission with nothing sent after it draws no ack that would show it.
    pub(super) fn tail_probe(&mut self, now: Instant) {
        let srtt = Duration::from_micros(self.srtt_us.unwrap_or(0));
        let Some(p) = self.inflight.front_mut() else {
            return;
        };
        let Some(sent) = p.sent else { return };
        if !p.counted() || (p.fast_resent && now.saturating_duration_since(sent) <= srtt) {
            return;
        }
        self.cur_window = self.cur_window.saturating_sub(p.payload.len());
        p.lost = true;
        p.fast_resent = true;
        self.stats.tail_probes += 1;
    }

    /// A partial ack in recovery, without a SACK (NewReno, RFC 6582): the packet after
    /// the acknowledged ones was lost too, and goes again now. A peer that sends no SACK
    /// (rqbit) tells of one hole per round trip this way; waiting for three more duplicate
    /// acks instead would wait for the retransmission timeout whenever the loss emptied
    /// the window, which a burst of losses (a full receive buffer) does.
    ///
    /// A peer that has never sent a SACK may not hold packets past a hole at all, and a
    /// burst of losses (its receive buffer full) costs one round trip per packet this way:
    /// for it, every packet sent before the retransmission this ack covers goes again too
    /// (go-back-N from the hole, what such a receiver needs).
    pub(super) fn partial_ack(&mut self, resent_at: Option<Instant>) {
        let back_n = if self.peer_sacks { None } else { resent_at };
        for (i, p) in self.inflight.iter_mut().enumerate() {
            let before = back_n.is_some_and(|t| p.sent.is_some_and(|s| s <= t));
            if i > 0 && !before {
                break;
            }
            if !p.counted() || p.fast_resent {
                continue;
            }
            self.cur_window = self.cur_window.saturating_sub(p.payload.len());
            p.lost = true;
            p.fast_resent = true;
            self.stats.fast_retransmits += 1;
        }
    }

    /// Multiplicative decrease, at most once per window of data (libutp).
    ///
    /// By half, as TCP does, when a queue stands on the path or in slow start; by a fifth
    /// past slow start when the queuing delay is under [`QUIET_QUEUE_SHARE`] of the target
    /// (TCP Veno's rule): then nothing was queued when the packet was lost, so the loss was
    /// no sign of a full buffer. At
    /// 0.1 % random loss over a 50 ms path this gives about 1.7 times the rate of halving,
    /// since additive increase is the same 3000 bytes per round trip. A competing flow that
    /// fills a buffer raises the delay first, and then the window halves (and LEDBAT's
    /// delay rule has been shrinking it already).
    pub(super) fn on_loss(&mut self, seq: u16) {
        self.stats.fast_retransmits += 1;
        if seq_lt(self.recovery, seq) {
            // In slow start the window doubles each round trip and goes out in bursts that
            // can overflow a buffer the last delay samples never saw filling: that loss
            // is our own overshoot.
            let quiet =
                !self.slow_start && self.queuing_delay < self.cfg.target_delay / QUIET_QUEUE_SHARE;
            self.cwnd = if quiet {
                self.stats.quiet_losses += 1;
                self.cwnd - self.cwnd / 5
            } else {
                self.cwnd / 2
            }
            .max(self.max_payload());
            self.ssthresh = self.cwnd;
            self.slow_start = false;
            self.recovery = self.seq_nr.wrapping_sub(1);
            self.in_recovery = true;
            trace!(cwnd = self.cwnd, quiet, "uTP loss: window reduced");
        }
    }

    pub(super) fn on_rto(&mut self, now: Instant) {
        if self.inflight.iter().all(|p| p.sent.is_none()) {
            self.rto_deadline = None;
            return;
        }
        self.timeouts += 1;
        self.stats.timeouts += 1;
        if self.timeouts > self.cfg.max_timeouts {
            debug!(id = self.recv_id, "uTP: too many timeouts");
            self.fail(CloseReason::TimedOut, false);
            return;
        }
        self.mtu.on_timeouts(self.timeouts);
        self.rto = (self.rto * 2).min(MAX_RTO);
        self.ssthresh = (self.cwnd / 2).max(2 * self.max_payload());
        self.cwnd = self.max_payload();
        self.slow_start = true;
        self.recovery = self.seq_nr.wrapping_sub(1);
        self.in_recovery = false;
        // Go back N: everything unacknowledged is sent again as the window allows.
        for p in &mut self.inflight {
            if p.sent.is_some() && !p.sacked {
                p.lost = true;
                p.fast_resent = false;
            }
        }
        self.cur_window = 0;
        self.rto_deadline = Some(now + self.rto);
    }

    pub(super) fn update_rtt(&mut self, rtt: Duration) {
        // RFC 6298 section 2.
        let r = micros(rtt);
        match self.srtt_us {
            None => {
                self.srtt_us = Some(r);
                self.rttvar_us = r / 2;
            }
            Some(srtt) => {
                self.rttvar_us = (3 * self.rttvar_us + srtt.abs_diff(r)) / 4;
                self.srtt_us = Some((7 * srtt + r) / 8);
            }
        }
        self.reset_rto();
    }

    /// The retransmission timeout from the smoothed round trip, without back-off.
    pub(super) fn reset_rto(&mut self) {
        if let Some(srtt) = self.srtt_us {
            let rto = srtt + 4 * self.rttvar_us;
            self.rto = Duration::from_micros(rto).clamp(MIN_RTO, MAX_RTO);
        }
    }

    /// LEDBAT (BEP 29, libutp): grow or shrink in proportion to the distance from target.
    pub(super) fn ledbat(&mut self, acked: usize) {
        let mss = self.max_payload();
        let target = i128::from(micros(self.cfg.target_delay).max(1));
        let delay = i128::from(micros(self.queuing_delay));
        if self.slow_start {
            if delay > target / 2 || self.cwnd >= self.ssthresh {
                self.slow_start = false;
            } else {
                if self.window_limited {
                    self.cwnd =
                        (self.cwnd + acked).min(self.cfg.send_buffer_size.max(self.max_payload()));
                }
                self.window_limited = false;
                return;
            }
        }
        // Not clamped below (libutp): far above target the window shrinks several times
        // faster than it grows, which is what lets a TCP flow take the link.
        let off_target = target - delay;
        let cwnd = i128::try_from(self.cwnd).unwrap_or(i128::MAX);
        let acked = i128::try_from(acked).unwrap_or(0);
        let gain = i128::from(self.cfg.gain) * off_target * acked.min(cwnd)
            / (target * acked.max(cwnd).max(1));
        if gain < 0 || self.window_limited {
            let max = i128::try_from(self.cfg.send_buffer_size.max(mss)).unwrap_or(i128::MAX);
            let next = (cwnd + gain).clamp(i128::try_from(mss).unwrap_or(0), max);
            self.cwnd = usize::try_from(next).unwrap_or(mss);
        }
        self.window_limited = false;
    }
}
