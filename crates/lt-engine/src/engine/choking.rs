//! Choking and unchoking peers.

use std::collections::BTreeSet;
use std::time::Instant;

use lt_core::Bitfield;
use lt_wire::PeerConnection;
use rand_core::RngCore as _;
use tracing::debug;

use crate::{ConnId, TorrentId};

use super::Engine;
use crate::choker::{self, Candidate};

impl Engine {
    pub(super) fn choke(&mut self, now: Instant, cid: ConnId) {
        debug!(conn = %cid, "choke");
        if let Some(c) = self.conns.get_mut(&cid) {
            c.unchoked_at = None;
            c.optimistic = false;
            // The wire rejects (or, without the fast extension, forgets) the peer's
            // requests; those for allowed-fast pieces stay pending and are still served.
            let mut kept = Vec::new();
            if let Some(w) = c.wire.as_mut() {
                w.choke(now);
                kept.extend(w.pending_peer_requests().copied());
            }
            if let Some(t) = c.torrent.and_then(|id| self.torrents.get_mut(&id)) {
                t.pending_reads
                    .retain(|(x, r)| *x != cid || kept.contains(r));
            }
            c.held.retain(|r| kept.contains(r));
        }
        self.flush(cid);
    }

    pub(super) fn unchoke(&mut self, now: Instant, cid: ConnId, optimistic: bool) {
        debug!(conn = %cid, optimistic, "unchoke");
        if let Some(c) = self.conns.get_mut(&cid) {
            c.unchoked_at = Some(now);
            c.optimistic = optimistic;
            if let Some(w) = c.wire.as_mut() {
                w.unchoke(now);
            }
        }
        self.flush(cid);
    }

    pub(super) fn unchoked_count(&self) -> usize {
        self.conns
            .values()
            .filter(|c| {
                c.wire
                    .as_ref()
                    .is_some_and(|w| c.connected && !w.am_choking())
            })
            .count()
    }

    pub(super) fn torrent_unchoked(&self, id: TorrentId) -> usize {
        self.torrents.get(&id).map_or(0, |t| {
            t.conns
                .iter()
                .filter_map(|c| self.conns.get(c))
                .filter(|c| c.wire.as_ref().is_some_and(|w| !w.am_choking()))
                .count()
        })
    }

    /// Interested, choked peers of active torrents.
    pub(super) fn choke_candidates(&self) -> Vec<ConnId> {
        self.conns
            .iter()
            .filter(|(_, c)| {
                c.connected
                    && c.wire.as_ref().is_some_and(PeerConnection::peer_interested)
                    && c.torrent
                        .and_then(|id| self.torrents.get(&id))
                        .is_some_and(|t| t.is_active())
            })
            .map(|(&k, _)| k)
            .collect()
    }

    /// Unchokes interested peers while slots are free.
    pub(super) fn unchoke_free_slots(&mut self, now: Instant) {
        let slots = self.settings.unchoke_slots_limit;
        let mut used = self.unchoked_count();
        for cid in self.choke_candidates() {
            if used >= slots {
                break;
            }
            let Some(c) = self.conns.get(&cid) else {
                continue;
            };
            if c.wire.as_ref().is_some_and(|w| !w.am_choking()) {
                continue;
            }
            let Some(id) = c.torrent else { continue };
            let cap = self.torrents.get(&id).and_then(|t| t.max_uploads);
            if cap.is_some_and(|m| self.torrent_unchoked(id) >= m) {
                continue;
            }
            self.unchoke(now, cid, false);
            used += 1;
        }
    }

    /// The periodic choker: the best `slots - 1` peers by rate, plus one optimistic unchoke.
    pub(super) fn run_choker(&mut self, now: Instant) {
        let slots = self.settings.unchoke_slots_limit.max(1);
        let rotate_optimistic = now.saturating_duration_since(self.last_optimistic)
            >= self.settings.optimistic_unchoke_interval;
        let algo = self.settings.seed_choking_algorithm;
        let candidates: Vec<Candidate<ConnId>> = self
            .choke_candidates()
            .into_iter()
            .filter_map(|cid| {
                let c = self.conns.get(&cid)?;
                let torrent = c.torrent?;
                let t = self.torrents.get(&torrent)?;
                let score = if t.is_seed() {
                    match algo {
                        crate::SeedChoking::FastestUpload => c.up.rate(),
                        crate::SeedChoking::RoundRobin => {
                            // Peers unchoked longest go to the back.
                            c.unchoked_at.map_or(u64::MAX, |at| {
                                let ms = now.saturating_duration_since(at).as_millis();
                                (u64::MAX / 2).saturating_sub(u64::try_from(ms).unwrap_or(0))
                            })
                        }
                        crate::SeedChoking::AntiLeech => {
                            let have = c
                                .wire
                                .as_ref()
                                .and_then(|w| w.peer_pieces())
                                .map_or(0, Bitfield::count_ones)
                                as u64;
                            let n = u64::from(t.info.num_pieces()).max(1);
                            let frac = have * 1000 / n;
                            frac.abs_diff(500)
                        }
                    }
                } else {
                    c.down.rate()
                };
                Some(Candidate {
                    key: cid,
                    torrent,
                    score,
                })
            })
            .collect();
        let current = self
            .conns
            .iter()
            .find(|(_, c)| c.optimistic)
            .map(|(&k, _)| k);
        let torrents = &self.torrents;
        let rng = &mut self.rng;
        let decision = choker::choose(
            &candidates,
            slots,
            current,
            rotate_optimistic,
            |id| torrents.get(&id).and_then(|t| t.max_uploads),
            |n| usize::try_from(rng.next_u64() % n as u64).unwrap_or(0),
        );
        if decision.rotated {
            self.last_optimistic = now;
        }
        let keep: BTreeSet<ConnId> = decision.regular.iter().copied().collect();
        let optimistic = decision.optimistic;
        let all: Vec<ConnId> = self.conns.keys().copied().collect();
        for cid in all {
            let Some(c) = self.conns.get(&cid) else {
                continue;
            };
            let Some(w) = c.wire.as_ref() else { continue };
            if !c.connected {
                continue;
            }
            let choking = w.am_choking();
            if keep.contains(&cid) {
                if choking {
                    self.unchoke(now, cid, false);
                } else if let Some(c) = self.conns.get_mut(&cid) {
                    c.optimistic = false;
                }
            } else if Some(cid) == optimistic {
                if choking {
                    self.unchoke(now, cid, true);
                } else if let Some(c) = self.conns.get_mut(&cid) {
                    c.optimistic = true;
                }
            } else if !choking {
                self.choke(now, cid);
            }
        }
    }
}
