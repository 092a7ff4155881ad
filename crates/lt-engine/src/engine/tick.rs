//! What runs on [`crate::Input::Timeout`]: each kind of timed work that is due (see
//! `timers.rs`), housekeeping every `tick_interval`, and dialling, announces and the queue
//! whenever something made them due.

use std::time::Instant;

use crate::alert::{Alert, PerformanceWarning};
use crate::{ConnId, DisconnectReason, TorrentId};

use super::Engine;
use super::timers::Timer;

impl Engine {
    /// Runs the timed work that is due at `now`.
    pub(super) fn tick(&mut self, now: Instant) {
        let every = self.settings.tick_interval;
        let house = self.timers.take(Timer::Housekeeping, now);
        if house {
            self.timers.set(Timer::Housekeeping, now + every);
            self.housekeeping(now);
        }
        if self.shutdown_deadline.is_some() {
            return;
        }
        let queue_due = self.timers.take(Timer::Queue, now);
        if queue_due
            || (house
                && (self.queue_dirty
                    || now.saturating_duration_since(self.last_auto_manage)
                        >= self.settings.auto_manage_interval))
        {
            self.auto_manage(now);
        }
        if house {
            self.serve_pending_reads();
            if now.saturating_duration_since(self.last_unchoke) >= self.settings.unchoke_interval {
                self.last_unchoke = now;
                self.run_choker(now);
            } else {
                self.unchoke_free_slots(now);
            }
        }
        if self.timers.take(Timer::Announce, now) || house {
            self.timers.set(Timer::Announce, now + every);
            self.tick_trackers(now);
            self.tick_discovery(now);
        }
        if house {
            self.send_pex(now);
        }
        if self.timers.take(Timer::Connect, now) || house {
            self.timers.set(Timer::Connect, now + every);
            self.connect_peers(now);
        }
        if house {
            let ids: Vec<TorrentId> = self.torrents.keys().copied().collect();
            for &id in &ids {
                if self
                    .torrents
                    .get(&id)
                    .is_some_and(|t| !t.has_metadata && t.meta.size.is_some())
                {
                    self.request_metadata(now, id);
                }
            }
            for &id in &ids {
                self.recalc_share_mode(now, id);
                self.update_all_interest(now, id);
            }
        }
    }

    /// Every `tick_interval`: rates and rate limits, per-torrent stats and retries, and
    /// each connection's rates and lt-wire deadlines.
    fn housekeeping(&mut self, now: Instant) {
        self.up_bucket.refill(now);
        self.down_bucket.refill(now);
        self.balance_mixed_mode(now);
        let ids: Vec<TorrentId> = self.torrents.keys().copied().collect();
        for &id in &ids {
            if let Some(t) = self.torrents.get_mut(&id) {
                t.down.tick(now);
                t.up.tick(now);
                t.up_bucket.refill(now);
                t.down_bucket.refill(now);
                if t.disk_upload_mode_until.is_some_and(|u| now >= u) {
                    t.disk_upload_mode_until = None;
                    self.alerts.push(Alert::UploadMode {
                        torrent: id,
                        enabled: false,
                    });
                }
                let (d, u) = (t.total_download, t.total_upload);
                if (d, u) != t.stats_reported {
                    self.alerts.push(Alert::Stats {
                        torrent: id,
                        downloaded: d - t.stats_reported.0,
                        uploaded: u - t.stats_reported.1,
                    });
                    t.stats_reported = (d, u);
                }
                if t.disk_bytes >= self.settings.max_queued_disk_bytes {
                    self.alerts.push(Alert::Performance {
                        torrent: id,
                        warning: PerformanceWarning::TooManyBytesQueuedForDisk,
                    });
                }
            }
        }
        let conns: Vec<ConnId> = self.conns.keys().copied().collect();
        for cid in conns {
            let Some(c) = self.conns.get_mut(&cid) else {
                continue;
            };
            c.down.tick(now);
            c.up.tick(now);
            let Some(w) = c.wire.as_mut() else { continue };
            if w.poll_timeout().is_some_and(|t| t <= now) {
                if let Err(e) = w.handle_timeout(now) {
                    let reason = if matches!(e, lt_wire::Error::Timeout(_)) {
                        DisconnectReason::Timeout
                    } else {
                        DisconnectReason::Protocol(e)
                    };
                    self.close(now, cid, reason);
                    continue;
                }
                self.process(now, cid);
            }
        }
    }
}
