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
        // Reads wait only in torrents with connections; most of ten thousand torrents have
        // none.
        if house
            && self
                .torrents
                .awake_iter()
                .any(|(_, t)| !t.pending_reads.is_empty())
        {
            self.serve_pending_reads();
        }
        if house {
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
            self.tick_web(now);
        }
        if self.timers.take(Timer::Connect, now) || house {
            self.timers.set(Timer::Connect, now + every);
            self.connect_peers(now);
        }
        if house {
            let fetching: Vec<TorrentId> = self
                .torrents
                .awake_iter()
                .filter(|(_, t)| !t.has_metadata && t.meta.size.is_some())
                .map(|(id, _)| id)
                .collect();
            for id in fetching {
                self.request_metadata(now, id);
            }
            // Share mode and interest have nothing to do in a torrent without connections
            // unless it is in share mode.
            let busy: Vec<TorrentId> = self
                .torrents
                .awake_iter()
                .filter(|(_, t)| t.share_mode || !t.conns.is_empty())
                .map(|(id, _)| id)
                .collect();
            for id in busy {
                self.recalc_share_mode(now, id);
                self.update_all_interest(now, id);
            }
            self.torrents.sweep();
        }
    }

    /// Every `tick_interval`: rates and rate limits, per-torrent stats and retries, and
    /// each connection's rates and lt-wire deadlines.
    fn housekeeping(&mut self, now: Instant) {
        self.up_bucket.refill(now);
        self.down_bucket.refill(now);
        self.balance_mixed_mode(now);
        // A dormant torrent (`torrent_map.rs`) has nothing here to do: ten thousand queued
        // torrents cost nothing a tick.
        for id in self.torrents.awake() {
            let Some(t) = self.torrents.get_mut(&id) else {
                continue;
            };
            // A torrent without connections moves no bytes: once its rates are down to zero
            // they and its buckets wait for the next connection (a bucket refilled after a
            // gap comes to the same tokens, capped at one second's worth).
            if !(t.conns.is_empty() && t.down.is_idle() && t.up.is_idle()) {
                t.down.tick(now);
                t.up.tick(now);
                t.up_bucket.refill(now);
                t.down_bucket.refill(now);
            }
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use lt_core::PeerId;
    use lt_metainfo::{CreateTorrent, TorrentInfo};

    use crate::{AddTorrent, Engine, Input, Settings, TorrentId};

    /// Queued torrents fall asleep after a tick and are not walked again; pausing or
    /// resuming one through the API wakes it, and the auto-manager's swap is seen at once.
    #[test]
    fn queued_torrents_sleep_until_changed() {
        let t0 = Instant::now();
        let settings = Settings {
            active_seeds: 2,
            ..Settings::default()
        };
        let mut e = Engine::new(settings, PeerId::new([1; 20]), [9; 32], t0);
        let mut ids = Vec::new();
        for i in 0..6u8 {
            let bytes = CreateTorrent::from_memory(format!("q{i}.bin"), vec![i; 20_000])
                .generate()
                .unwrap();
            let mut add = AddTorrent::new(Arc::new(TorrentInfo::from_bytes(&bytes).unwrap()));
            add.flags.seed_mode = true;
            add.flags.auto_managed = true;
            ids.push(e.add_torrent(t0, add).unwrap());
        }
        let mut now = t0;
        let mut run = |e: &mut Engine, ticks: u32| {
            for _ in 0..ticks {
                now += Duration::from_millis(500);
                let _ = e.handle_input(now, Input::Timeout);
                while e.poll_action().is_some() {}
            }
            now
        };
        let now1 = run(&mut e, 4);
        assert_eq!(
            e.torrents.awake_len(),
            2,
            "only the two active seeds stay awake"
        );
        let active: Vec<TorrentId> = e.torrents.awake();
        assert!(active.iter().all(|id| e.torrents[id].is_active()));
        // Pausing an active one (no longer auto-managed) wakes it and lets the queue start
        // a sleeping one at its next pass.
        e.set_auto_managed(now1, active[0], false);
        e.pause_torrent(now1, active[0]);
        run(&mut e, 2);
        let now2 = run(&mut e, 2);
        let running: Vec<TorrentId> = ids
            .iter()
            .copied()
            .filter(|id| e.torrents[id].is_active())
            .collect();
        assert_eq!(
            running.len(),
            2,
            "the queue filled the freed slot: {running:?}"
        );
        assert!(!running.contains(&active[0]));
        assert_eq!(
            e.torrents.awake(),
            running,
            "the paused one fell asleep again"
        );
        // A queued torrent taken out of the queue and resumed wakes and runs.
        let sleeper = ids
            .iter()
            .copied()
            .find(|id| !running.contains(id) && *id != active[0])
            .unwrap();
        e.set_auto_managed(now2, sleeper, false);
        e.resume_torrent(now2, sleeper);
        run(&mut e, 2);
        assert!(e.torrents[&sleeper].is_active());
        assert!(e.torrents.awake().contains(&sleeper));
    }

    /// Torrents without connections whose rates are down to zero are not ticked: a session
    /// of ten thousand idle torrents must not work through each one's rates twice a second.
    #[test]
    fn idle_torrents_are_not_ticked() {
        let t0 = Instant::now();
        let mut e = Engine::new(Settings::default(), PeerId::new([1; 20]), [9; 32], t0);
        for i in 0..3u8 {
            let bytes = CreateTorrent::from_memory(format!("t{i}.bin"), vec![i; 40_000])
                .generate()
                .unwrap();
            let mut add = AddTorrent::new(Arc::new(TorrentInfo::from_bytes(&bytes).unwrap()));
            add.flags.seed_mode = true;
            e.add_torrent(t0, add).unwrap();
        }
        for k in 0..20u32 {
            let _ = e.handle_input(t0 + Duration::from_millis(500) * k, Input::Timeout);
            while e.poll_action().is_some() {}
        }
        for t in e.torrents.values() {
            assert!(t.up.samples_len() <= 1 && t.down.samples_len() <= 1);
            assert_eq!((t.up.rate(), t.down.rate()), (0, 0));
        }
    }
}
