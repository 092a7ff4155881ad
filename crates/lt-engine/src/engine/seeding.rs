//! Super seeding (BEP 16) and share mode.

use std::collections::BTreeMap;
use std::time::Instant;

use lt_core::PieceIndex;
use lt_picker::Priority;
use rand_core::RngCore as _;

use crate::torrent::apply_file_priorities;
use crate::{ConnId, DisconnectReason, TorrentId};

use super::Engine;
use super::conn::SUPER_SEED_SCAN;

impl Engine {
    /// Super seeding: once the peer has the piece it was offered (or before the first
    /// offer), offers it another with HAVE: of the pieces it lacks, one offered to the
    /// fewest other peers right now, then the rarest among connected peers, ties broken
    /// at random. This is libtorrent's rule (not BEP 16's strict variant, which waits to
    /// see the piece announced by a third peer first). At most [`SUPER_SEED_SCAN`] pieces
    /// from a random start are weighed, so a peer that claims each offered piece at once
    /// costs bounded work per message on a torrent of any size.
    pub(super) fn super_seed_offer(&mut self, now: Instant, cid: ConnId) {
        let Some(c) = self.conns.get(&cid) else {
            return;
        };
        let (Some(ss), Some(w)) = (c.super_seed.as_ref(), c.wire.as_ref()) else {
            return;
        };
        let Some(t) = c.torrent.and_then(|id| self.torrents.get(&id)) else {
            return;
        };
        let peer_has = |p: PieceIndex| w.peer_pieces().is_some_and(|b| b.get(p.as_usize()));
        if ss.current.is_some_and(|p| !peer_has(p)) {
            return;
        }
        let mut offered_now: BTreeMap<u32, u32> = BTreeMap::new();
        for o in &t.conns {
            if let Some(p) = self
                .conns
                .get(o)
                .and_then(|c| c.super_seed.as_ref())
                .and_then(|s| s.current)
            {
                *offered_now.entry(p.get()).or_default() += 1;
            }
        }
        let n = t.info.num_pieces();
        if n == 0 {
            return;
        }
        let start = u32::try_from(self.rng.next_u64() % u64::from(n)).unwrap_or(0);
        let mut best: Option<((u32, u32), PieceIndex)> = None;
        let mut weighed = 0;
        for k in 0..n {
            if weighed >= SUPER_SEED_SCAN && best.is_some() {
                break;
            }
            let p = PieceIndex::new((start + k) % n);
            if peer_has(p) || !t.have.get(p.as_usize()) {
                continue;
            }
            weighed += 1;
            let key = (
                offered_now.get(&p.get()).copied().unwrap_or(0),
                t.picker.availability(p),
            );
            if best.is_none_or(|(b, _)| key < b) {
                best = Some((key, p));
            }
        }
        let next = best.map(|(_, p)| p);
        let Some(c) = self.conns.get_mut(&cid) else {
            return;
        };
        let (Some(ss), Some(w)) = (c.super_seed.as_mut(), c.wire.as_mut()) else {
            return;
        };
        ss.current = next;
        if let Some(p) = next {
            ss.offered.set(p.as_usize());
            w.have(now, p);
        }
        self.flush(cid);
    }

    /// Super seeding ends (turned off, or the torrent is no longer a seed): every peer
    /// that was offered pieces one by one hears of the rest.
    pub(super) fn end_super_seed(&mut self, now: Instant, id: TorrentId) {
        for cid in self.torrent_conns(id) {
            let Some(c) = self.conns.get_mut(&cid) else {
                continue;
            };
            let Some(ss) = c.super_seed.take() else {
                continue;
            };
            let (Some(w), Some(t)) = (c.wire.as_mut(), self.torrents.get(&id)) else {
                continue;
            };
            for p in t.have.iter_ones() {
                if !ss.offered.get(p) {
                    w.have(now, PieceIndex::new(u32::try_from(p).unwrap_or(u32::MAX)));
                }
            }
            self.flush(cid);
        }
    }

    /// Turns share mode on or off. Off, the file priorities apply again and the torrent
    /// downloads the rest.
    pub fn set_share_mode(&mut self, now: Instant, id: TorrentId, on: bool) {
        let Some(t) = self.torrents.get_mut(&id) else {
            return;
        };
        if t.share_mode == on {
            return;
        }
        t.share_mode = on;
        t.share_applied = false;
        if on {
            self.recalc_share_mode(now, id);
        } else if t.has_metadata {
            apply_file_priorities(&mut t.picker, &t.info, &t.file_priorities);
            self.after_priority_change(now, id);
        }
    }

    /// Share mode, as libtorrent's `recalc_share_mode` does it: every piece starts at
    /// priority 0, and one more (a rarest piece among the peers) is wanted only while
    ///
    /// - some connected peer is downloading (not a seed);
    /// - what we uploaded is at least `share_mode_target` times the pieces we hold;
    /// - fewer than one piece in 20 of those is still in flight;
    /// - at least `share_mode_target` peers lack that piece, so it can be uploaded again.
    ///
    /// With more than half the peers seeds near the connection limit, seeds are dropped
    /// to make room for downloaders.
    pub(super) fn recalc_share_mode(&mut self, now: Instant, id: TorrentId) {
        let target = self.settings.share_mode_target.max(1);
        let Some(t) = self.torrents.get_mut(&id) else {
            return;
        };
        if !t.share_mode || !t.has_metadata || !t.is_active() || t.is_seed() {
            return;
        }
        let n = t.info.num_pieces();
        if !t.share_applied {
            t.share_applied = true;
            let prios: Vec<Priority> = (0..n)
                .map(|p| match t.picker.piece_state(PieceIndex::new(p)) {
                    Ok(lt_picker::PieceState::Open) | Err(_) => Priority::DONT_DOWNLOAD,
                    Ok(_) => Priority::NORMAL,
                })
                .collect();
            let _ = t.picker.set_piece_priorities(&prios);
            self.after_priority_change(now, id);
        }
        let Some(t) = self.torrents.get(&id) else {
            return;
        };
        let (mut peers, mut seeds, mut downloaders) = (0usize, Vec::new(), 0usize);
        for cid in &t.conns {
            let Some(c) = self.conns.get(cid).filter(|c| c.connected) else {
                continue;
            };
            peers += 1;
            if c.seed {
                seeds.push(*cid);
            } else {
                downloaders += 1;
            }
        }
        if peers == 0 {
            return;
        }
        if seeds.len() * 2 > peers && (peers * 10 > t.max_connections * 9 || peers > 20) {
            let drop = seeds.len() - peers / 2;
            for cid in seeds.into_iter().take(drop) {
                self.close(now, cid, DisconnectReason::Redundant);
            }
            return;
        }
        if downloaders == 0 {
            return;
        }
        let prios = t.picker.piece_priorities();
        let selected = prios.iter().filter(|p| !p.is_dont_download()).count();
        let held = t.have.count_ones().max(selected) as u64;
        let uploaded = t.prior_upload.saturating_add(t.total_upload);
        let needed = held
            .saturating_mul(u64::from(t.info.piece_length()))
            .saturating_mul(u64::from(target));
        if held > 0 && needed > uploaded {
            return;
        }
        if t.picker.download_queue().len() as u64 > held / 20 {
            return;
        }
        let mut rarest = Vec::new();
        let mut rarity = u32::MAX;
        for (p, prio) in (0..n).zip(&prios) {
            let piece = PieceIndex::new(p);
            let avail = t.picker.availability(piece);
            if avail == 0 || !prio.is_dont_download() || t.have.get(piece.as_usize()) {
                continue;
            }
            if avail < rarity {
                rarest.clear();
                rarity = avail;
            }
            if avail == rarity {
                rarest.push(piece);
            }
        }
        // Only a piece that enough peers lack can be uploaded more often than downloaded.
        if rarest.is_empty() || (peers as u64) < u64::from(rarity) + u64::from(target) {
            return;
        }
        let pick = rarest[usize::try_from(self.rng.next_u64() % rarest.len() as u64).unwrap_or(0)];
        if let Some(t) = self.torrents.get_mut(&id) {
            let _ = t.picker.set_piece_priority(pick, Priority::NORMAL);
        }
        self.after_priority_change(now, id);
    }

    /// Turns super seeding (BEP 16) on or off. It applies to peers that connect while
    /// the torrent is a seed; turning it off tells those peers of every piece.
    pub fn set_super_seeding(&mut self, now: Instant, id: TorrentId, on: bool) {
        let Some(t) = self.torrents.get_mut(&id) else {
            return;
        };
        t.super_seeding = on;
        if !on {
            self.end_super_seed(now, id);
        }
    }
}
