//! The download queue and the auto-manager (the manual's queuing).

use std::time::{Duration, Instant};

use crate::TorrentId;

use super::Engine;
use super::timers::Timer;

impl Engine {
    /// Lets the queue start and stop the torrent (or not).
    pub fn set_auto_managed(&mut self, now: Instant, id: TorrentId, on: bool) {
        if let Some(t) = self.torrents.get_mut(&id) {
            t.auto_managed = on;
            self.queue_dirty = true;
            self.timers.pull(Timer::Queue, now);
        }
    }

    /// The torrent's place in the download queue (0 first); `None` once it is finished.
    #[must_use]
    pub fn queue_position(&self, id: TorrentId) -> Option<u32> {
        let t = self.torrents.get(&id)?;
        (!t.is_finished()).then_some(t.queue_pos)
    }

    pub(super) fn queue_order(&self) -> Vec<TorrentId> {
        let mut q: Vec<(u32, TorrentId)> = self
            .torrents
            .iter()
            .filter(|(_, t)| !t.is_finished())
            .map(|(&id, t)| (t.queue_pos, id))
            .collect();
        q.sort_unstable();
        q.into_iter().map(|(_, id)| id).collect()
    }

    pub(super) fn set_queue(&mut self, now: Instant, order: &[TorrentId]) {
        for (i, id) in order.iter().enumerate() {
            if let Some(t) = self.torrents.get_mut(id) {
                t.queue_pos = u32::try_from(i).unwrap_or(u32::MAX);
            }
        }
        self.queue_dirty = true;
        self.timers.pull(Timer::Queue, now);
    }

    /// Moves the torrent within the queue: `place` gets the queue and the torrent's index
    /// and rearranges it.
    pub(super) fn move_in_queue(
        &mut self,
        now: Instant,
        id: TorrentId,
        place: impl FnOnce(&mut Vec<TorrentId>, usize),
    ) {
        let mut q = self.queue_order();
        if let Some(i) = q.iter().position(|&x| x == id) {
            place(&mut q, i);
            self.set_queue(now, &q);
        }
    }

    /// Moves the torrent one place up the queue (`queue_position_up`).
    pub fn queue_position_up(&mut self, now: Instant, id: TorrentId) {
        self.move_in_queue(now, id, |q, i| q.swap(i, i.saturating_sub(1)));
    }

    /// Moves the torrent one place down the queue (`queue_position_down`).
    pub fn queue_position_down(&mut self, now: Instant, id: TorrentId) {
        self.move_in_queue(now, id, |q, i| {
            let last = q.len() - 1;
            q.swap(i, (i + 1).min(last));
        });
    }

    /// Moves the torrent to the front of the queue (`queue_position_top`).
    pub fn queue_position_top(&mut self, now: Instant, id: TorrentId) {
        self.move_in_queue(now, id, |q, i| {
            let t = q.remove(i);
            q.insert(0, t);
        });
    }

    /// Moves the torrent to the back of the queue (`queue_position_bottom`).
    pub fn queue_position_bottom(&mut self, now: Instant, id: TorrentId) {
        self.move_in_queue(now, id, |q, i| {
            let t = q.remove(i);
            q.push(t);
        });
    }

    /// The auto-manager (the manual's queuing): starts auto-managed downloads in queue
    /// order up to `active_downloads` and seeds by seed rank up to `active_seeds`, at most
    /// `active_limit` in all, seeds past their ratio or time limits last; pauses the rest.
    /// Slow downloads do not count with `dont_count_slow_torrents`. A paused session starts
    /// nothing.
    pub(super) fn auto_manage(&mut self, now: Instant) {
        self.queue_dirty = false;
        self.last_auto_manage = now;
        if self.paused {
            return;
        }
        let s = &self.settings;
        let (max_dl, max_seed, max_all) = (s.active_downloads, s.active_seeds, s.active_limit);
        let slow_rate = s.inactive_down_rate;
        let dont_count_slow = s.dont_count_slow_torrents;
        let ratio_limit = s.share_ratio_limit;
        let seed_time_limit = s.seed_time_limit;
        let mut downloads = Vec::new();
        let mut seeds = Vec::new();
        for (&id, t) in self.torrents.iter() {
            if !t.auto_managed || t.is_checking() {
                continue;
            }
            if t.is_finished() {
                // libtorrent's rule: a torrent added complete counts its size as downloaded.
                let down = (t.prior_download + t.total_download)
                    .max(t.info.total_size())
                    .max(1);
                #[allow(clippy::cast_precision_loss)]
                let ratio = (t.prior_upload + t.total_upload) as f64 / down as f64;
                let seeding = t.seeding_time
                    + t.seeding_since
                        .map_or(Duration::ZERO, |x| now.saturating_duration_since(x));
                let done = (ratio_limit > 0.0 && ratio >= ratio_limit)
                    || (!seed_time_limit.is_zero() && seeding >= seed_time_limit);
                // Seed rank: peers that want it first (few seeds, many downloaders).
                let rank = t
                    .num_incomplete
                    .unwrap_or(0)
                    .saturating_sub(t.num_complete.unwrap_or(0));
                seeds.push((done, std::cmp::Reverse(rank), t.total_upload, id));
            } else {
                let slow = !t.paused
                    && t.active_since.is_some_and(|a| {
                        now.saturating_duration_since(a) > Duration::from_secs(60)
                    })
                    && t.down.rate() < slow_rate;
                downloads.push((t.queue_pos, id, slow));
            }
        }
        downloads.sort_unstable();
        seeds.sort_unstable();
        let mut all = 0;
        let mut counted = 0;
        let mut start = Vec::new();
        let mut stop = Vec::new();
        for (_, id, slow) in downloads {
            if counted < max_dl && all < max_all {
                start.push(id);
                all += 1;
                if !(slow && dont_count_slow) {
                    counted += 1;
                }
            } else {
                stop.push(id);
            }
        }
        let mut seeding = 0;
        // Seeds that met their ratio or time goal sort last, but are not paused for it:
        // the manual only lowers their priority, and a lone seed past its ratio may hold
        // the swarm's only copy of a piece.
        for (_, _, _, id) in seeds {
            if seeding < max_seed && all < max_all {
                start.push(id);
                seeding += 1;
                all += 1;
            } else {
                stop.push(id);
            }
        }
        for id in stop {
            self.pause_inner(now, id);
        }
        for id in start {
            self.resume_inner(now, id);
        }
    }
}
