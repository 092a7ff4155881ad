//! The periodic tick: rates, timeouts, the choker, announces, new connections.

use std::time::Instant;

use crate::alert::{Alert, PerformanceWarning};
use crate::{ConnId, DisconnectReason, TorrentId};

use super::Engine;

impl Engine {
    /// Runs the timers: connection timeouts, rates, the choker, tracker announces, new
    /// connections, rate limits and upload-mode retries.
    pub(super) fn tick(&mut self, now: Instant) {
        if now < self.next_tick {
            return;
        }
        self.next_tick = now + self.settings.tick_interval;
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
        if self.shutdown_deadline.is_some() {
            return;
        }
        if self.queue_dirty
            || now.saturating_duration_since(self.last_auto_manage)
                >= self.settings.auto_manage_interval
        {
            self.auto_manage(now);
        }
        self.serve_pending_reads();
        if now.saturating_duration_since(self.last_unchoke) >= self.settings.unchoke_interval {
            self.last_unchoke = now;
            self.run_choker(now);
        } else {
            self.unchoke_free_slots(now);
        }
        self.tick_trackers(now);
        self.tick_discovery(now);
        self.send_pex(now);
        self.connect_peers(now);
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
