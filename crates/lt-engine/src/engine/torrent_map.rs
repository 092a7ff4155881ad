//! The engine's torrents, and which of them the tick has to look at.
//!
//! A session of ten thousand torrents has a handful active; the rest are queued with no
//! connections and nothing to report. Walking all of them twice a second (rates, stats,
//! announces, dialling, PEX, interest) cost 0.7 % of a core with nothing to do, where
//! libtorrent, which keeps lists of the torrents that want each kind of work, idles at
//! 0.05 %. Here the tick walks the *awake* torrents only: every torrent that was handed
//! out mutably since the last sweep, and every one that has something left to do
//! ([`Torrent::is_dormant`] is false). The map hands out `&mut Torrent` only through
//! methods that wake it, so no change to a torrent, from the network, the disk or the
//! API, can leave it asleep; the tick's sweep puts the dormant ones back to sleep.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Deref;

use crate::TorrentId;
use crate::torrent::Torrent;

/// The torrents by id (boxed: a `Torrent` is 1.5 KiB, and inline in half-full B-tree
/// nodes it cost 2.7 KiB a torrent), and the set of the awake ones.
#[derive(Debug, Default)]
pub(super) struct TorrentMap {
    map: BTreeMap<TorrentId, Box<Torrent>>,
    awake: BTreeSet<TorrentId>,
}

impl Deref for TorrentMap {
    type Target = BTreeMap<TorrentId, Box<Torrent>>;

    fn deref(&self) -> &Self::Target {
        &self.map
    }
}

impl TorrentMap {
    /// The torrent, woken: the next tick looks at it.
    pub(super) fn get_mut(&mut self, id: &TorrentId) -> Option<&mut Torrent> {
        let t = self.map.get_mut(id)?;
        self.awake.insert(*id);
        Some(t)
    }

    /// Adds a torrent, awake.
    pub(super) fn insert(&mut self, id: TorrentId, torrent: Box<Torrent>) {
        self.awake.insert(id);
        self.map.insert(id, torrent);
    }

    pub(super) fn remove(&mut self, id: &TorrentId) -> Option<Box<Torrent>> {
        self.awake.remove(id);
        self.map.remove(id)
    }

    /// Every torrent, each woken (for the few commands that change them all).
    pub(super) fn values_mut(&mut self) -> impl Iterator<Item = &mut Torrent> {
        self.awake.extend(self.map.keys().copied());
        self.map.values_mut().map(|t| &mut **t)
    }

    /// The awake torrents' ids, in id order.
    pub(super) fn awake(&self) -> Vec<TorrentId> {
        self.awake.iter().copied().collect()
    }

    /// The awake torrents, for passes that only read.
    pub(super) fn awake_iter(&self) -> impl Iterator<Item = (TorrentId, &Torrent)> {
        self.awake
            .iter()
            .filter_map(|id| self.map.get(id).map(|t| (*id, &**t)))
    }

    /// Puts the dormant torrents to sleep: after the tick's work, one with nothing left to
    /// do until something changes it. What a sleeper keeps only for a tick is let go.
    pub(super) fn sweep(&mut self) {
        let Self { map, awake } = self;
        awake.retain(|id| match map.get_mut(id) {
            Some(t) if t.is_dormant() => {
                t.down.compact();
                t.up.compact();
                false
            }
            Some(_) => true,
            None => false,
        });
    }

    /// How many torrents are awake.
    #[cfg(test)]
    pub(super) fn awake_len(&self) -> usize {
        self.awake.len()
    }
}
