//! Tracker announces and scrapes (BEP 3, 12, 15), and `stopped` at shutdown.

use std::time::Instant;

use lt_tracker::{AnnounceRequest, AnnounceResponse, Event, ScrapeEntry, TrackerIndex};
use tracing::debug;

use crate::alert::Alert;
use crate::torrent::{PeerEntry, PeerSource, Torrent};
use crate::{Action, TorrentId};

use super::Engine;
use super::timers::Timer;

impl Engine {
    /// Announces to the trackers now.
    pub fn force_reannounce(&mut self, now: Instant, id: TorrentId) {
        if let Some(t) = self.torrents.get_mut(&id) {
            t.trackers.force_announce(now);
            self.timers.pull(Timer::Announce, now);
        }
    }

    /// Scrapes the torrent's first tracker.
    pub fn scrape_tracker(&mut self, id: TorrentId) {
        if let Some(t) = self.torrents.get(&id)
            && let Some(e) = t.trackers.entries().first()
        {
            self.actions.push_back(Action::Scrape {
                torrent: id,
                tracker: TrackerIndex(0),
                url: e.url.clone(),
                info_hash: t.wire_hash,
            });
        }
    }

    /// Adds a tracker to a torrent.
    pub fn add_tracker(&mut self, now: Instant, id: TorrentId, url: &str, tier: u8) {
        if let Some(t) = self.torrents.get_mut(&id) {
            t.trackers
                .add_tracker(url, tier, lt_tracker::TrackerSource::Client);
            self.timers.pull(Timer::Announce, now);
        }
    }

    /// The torrent's trackers.
    #[must_use]
    pub fn trackers(&self, id: TorrentId) -> Vec<lt_tracker::AnnounceEntry> {
        self.torrents
            .get(&id)
            .map(|t| t.trackers.entries().to_vec())
            .unwrap_or_default()
    }

    pub(super) fn announce_stopped(&mut self, _now: Instant, id: TorrentId) {
        let Some(t) = self.torrents.get(&id) else {
            return;
        };
        let left = t.bytes_left();
        for (i, e) in t.trackers.entries().iter().enumerate() {
            if !e.start_sent {
                continue;
            }
            let mut req = self.announce_request(t, Event::Stopped, left);
            req.num_want = Some(0);
            self.stops_in_flight.insert((id, i));
            self.actions.push_back(Action::Announce {
                torrent: id,
                tracker: TrackerIndex(i),
                url: e.url.clone(),
                request: req,
            });
        }
    }

    pub(super) fn announce_request(&self, t: &Torrent, event: Event, left: u64) -> AnnounceRequest {
        // Not listening (behind a proxy, or no interface): port 1, since trackers refuse
        // port 0 and no port reaches us anyway.
        let port = match self.announce_port(t) {
            0 => 1,
            p => p,
        };
        let mut req = AnnounceRequest::new(t.wire_hash, self.peer_id, port);
        req.uploaded = t.total_upload;
        req.downloaded = t.total_download;
        req.left = left;
        req.event = event;
        req.key = t.tracker_key;
        req.num_want = Some(self.settings.num_want);
        req.compact = true;
        req.support_crypto = true;
        req
    }

    /// A tracker answered (or failed) an announce.
    pub(super) fn announce_done(
        &mut self,
        now: Instant,
        id: TorrentId,
        tracker: TrackerIndex,
        result: Result<AnnounceResponse, lt_tracker::Error>,
    ) {
        if self.stops_in_flight.remove(&(id, tracker.0)) {
            return;
        }
        let listen_port = self.listen_port;
        let max_list = self.settings.max_peerlist_size;
        let Some(t) = self.torrents.get_mut(&id) else {
            return;
        };
        let Some((i, event)) = t.announcing.take() else {
            return;
        };
        if i != tracker {
            return;
        }
        let url = t
            .trackers
            .entry(i)
            .map(|e| e.url.clone())
            .unwrap_or_default();
        match result {
            Ok(resp) => {
                debug!(torrent = %id, %url, peers = resp.peers.len(), interval = ?resp.interval, "tracker reply");
                t.trackers.on_success(now, i, event, &resp);
                t.last_tracker = Some(url.clone());
                t.num_complete = resp.complete.or(t.num_complete);
                t.num_incomplete = resp.incomplete.or(t.num_incomplete);
                // A tracker elsewhere that names loopback addresses would make us dial our
                // own machine's services.
                let loopback_ok = crate::torrent::url_is_loopback(&url);
                for p in &resp.peers {
                    if t.peers.len() >= max_list
                        || !crate::torrent::listable(p.addr, listen_port, loopback_ok)
                    {
                        continue;
                    }
                    t.peers
                        .entry(p.addr)
                        .or_insert_with(|| PeerEntry::new(PeerSource::Tracker));
                }
                if let Some(w) = resp.warning.clone() {
                    self.alerts.push(Alert::TrackerWarning {
                        torrent: id,
                        url: url.clone(),
                        message: w,
                    });
                }
                self.alerts.push(Alert::TrackerReply {
                    torrent: id,
                    url,
                    num_peers: resp.peers.len(),
                });
                self.timers.pull(Timer::Connect, now);
            }
            Err(e) => {
                debug!(torrent = %id, %url, error = %e, "tracker failed");
                t.trackers.on_failure(now, i, e.clone());
                let times_in_row = t.trackers.entry(i).map_or(1, |e| e.fails);
                self.alerts.push(Alert::TrackerError {
                    torrent: id,
                    url,
                    times_in_row,
                    error: e,
                });
            }
        }
    }

    /// A scrape answered.
    pub(super) fn scrape_done(
        &mut self,
        id: TorrentId,
        tracker: TrackerIndex,
        result: Result<ScrapeEntry, lt_tracker::Error>,
    ) {
        let Some(t) = self.torrents.get_mut(&id) else {
            return;
        };
        let url = t
            .trackers
            .entry(tracker)
            .map(|e| e.url.clone())
            .unwrap_or_default();
        match result {
            Ok(s) => {
                t.trackers.on_scrape(tracker, &s);
                t.num_complete = Some(s.complete);
                t.num_incomplete = Some(s.incomplete);
                self.alerts.push(Alert::ScrapeReply {
                    torrent: id,
                    url,
                    complete: s.complete,
                    incomplete: s.incomplete,
                });
            }
            Err(e) => self.alerts.push(Alert::ScrapeFailed {
                torrent: id,
                url,
                error: e.to_string(),
            }),
        }
    }

    pub(super) fn tick_trackers(&mut self, now: Instant) {
        if self.paused {
            return;
        }
        // Paused (queued) torrents do not announce: only the active ones are looked at.
        let ids = self.active_torrents();
        for id in ids {
            let Some(t) = self.torrents.get_mut(&id) else {
                continue;
            };
            if !t.is_active() || self.paused || t.announcing.is_some() {
                continue;
            }
            let Some(i) = t.trackers.next_announce(now) else {
                continue;
            };
            let Some(e) = t.trackers.entry(i) else {
                continue;
            };
            let event = if !e.start_sent {
                Event::Started
            } else if t.is_seed() && !e.complete_sent && t.total_download > 0 {
                Event::Completed
            } else {
                Event::None
            };
            let url = e.url.clone();
            debug!(torrent = %id, %url, ?event, "announce");
            t.announcing = Some((i, event));
            let left = t.bytes_left();
            let t = &self.torrents[&id];
            let request = self.announce_request(t, event, left);
            self.alerts.push(Alert::TrackerAnnounce {
                torrent: id,
                url: url.clone(),
                event,
            });
            self.actions.push_back(Action::Announce {
                torrent: id,
                tracker: i,
                url,
                request,
            });
        }
    }
}
