//! When each public torrent is announced on the DHT (BEP 5) and by local service
//! discovery (BEP 14). The engine decides; the driver runs the lookup or sends the
//! multicast ([`Action::DhtAnnounce`], [`Action::LsdAnnounce`]) and hands back what a DHT
//! announce found ([`crate::Input::DhtPeers`]).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tracing::debug;

use super::Engine;
use super::timers::Timer;
use crate::{Action, Alert, TorrentId};

/// How soon a DHT announce that found nobody is tried again.
const DHT_RETRY_EMPTY: Duration = Duration::from_secs(5);

impl Engine {
    /// Turns local service discovery announces on or off (the manual's `start_lsd` and
    /// `stop_lsd`): the driver has the multicast socket and carries out
    /// [`Action::LsdAnnounce`].
    pub fn set_lsd(&mut self, on: bool, now: Instant) {
        self.lsd = on;
        if on {
            for t in self.torrents.values_mut() {
                t.next_lsd = None;
            }
            self.timers.pull(Timer::Announce, now);
        }
    }

    /// Asks for the announces that are due: active torrents that are not private, while the
    /// session is not paused. A torrent is announced on the DHT every
    /// `dht_announce_interval` (one lookup at a time), and by LSD every
    /// `lsd_announce_interval`, all due LSD announces in one action.
    pub(super) fn tick_discovery(&mut self, now: Instant) {
        if self.paused || (self.dht_port.is_none() && !self.lsd) {
            return;
        }
        let dht_every = self.settings.dht_announce_interval;
        let lsd_every = self.settings.lsd_announce_interval;
        let mut lsd = Vec::new();
        let mut lsd_ssl = Vec::new();
        // Only active torrents announce, and they are awake.
        for id in self.torrents.awake() {
            let port = match self.torrents.get(&id) {
                Some(t) => self.announce_port(t),
                None => continue,
            };
            let Some(t) = self.torrents.get_mut(&id) else {
                continue;
            };
            if !t.is_active() || (t.has_metadata && t.info.is_private()) {
                continue;
            }
            if self.dht_port.is_some() && !t.dht_in_flight && t.next_dht.is_none_or(|at| at <= now)
            {
                t.dht_in_flight = true;
                t.next_dht = Some(now + dht_every);
                debug!(torrent = %id, seed = t.is_seed(), "DHT announce");
                self.actions.push_back(Action::DhtAnnounce {
                    torrent: id,
                    info_hash: t.wire_hash,
                    seed: t.is_seed(),
                    port,
                });
            }
            if self.lsd && t.next_lsd.is_none_or(|at| at <= now) {
                t.next_lsd = Some(now + lsd_every);
                if t.is_ssl() {
                    lsd_ssl.push(t.wire_hash);
                } else {
                    lsd.push(t.wire_hash);
                }
            }
        }
        for (info_hashes, port) in [(lsd, self.listen_port), (lsd_ssl, self.ssl_listen_port)] {
            if !info_hashes.is_empty() {
                debug!(torrents = info_hashes.len(), port, "LSD announce");
                self.actions
                    .push_back(Action::LsdAnnounce { info_hashes, port });
            }
        }
    }

    /// [`crate::Input::DhtPeers`]: a DHT announce finished. One that found nobody is tried
    /// again soon.
    pub(super) fn dht_done(&mut self, now: Instant, id: TorrentId, peers: &[SocketAddr]) {
        let Some(t) = self.torrents.get_mut(&id) else {
            return;
        };
        t.dht_in_flight = false;
        if peers.is_empty() {
            t.next_dht = Some(now + DHT_RETRY_EMPTY);
            return;
        }
        self.alerts.push(Alert::DhtGetPeersReply {
            torrent: id,
            num_peers: peers.len(),
        });
        self.add_peers(now, id, peers);
    }
}
