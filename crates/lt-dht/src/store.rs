//! What a node stores for others: peers announced per info-hash (BEP 5, with the BEP 33
//! seed flag) and BEP 44 items. Both are capped whatever the network sends.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lt_core::Sha1Hash;
use tracing::trace;

use crate::item::{Item, MutableItem};
use crate::krpc::PutItem;
use crate::scrape::Bloom;

/// A peer announced to us.
#[derive(Debug, Clone, Copy)]
struct StoredPeer {
    addr: SocketAddr,
    at: Instant,
    /// BEP 33: announced with `seed=1`.
    seed: bool,
}

/// Peers per info-hash: at most `max_info_hashes` info-hashes of at most `max_peers` peers.
#[derive(Debug)]
pub(crate) struct PeerStore {
    peers: HashMap<Sha1Hash, Vec<StoredPeer>>,
    max_info_hashes: usize,
    max_peers: usize,
}

impl PeerStore {
    pub(crate) fn new(max_info_hashes: usize, max_peers: usize) -> Self {
        Self {
            peers: HashMap::new(),
            max_info_hashes,
            max_peers,
        }
    }

    /// Records an announce (a repeated one refreshes its time and seed flag).
    pub(crate) fn insert(
        &mut self,
        info_hash: Sha1Hash,
        peer: SocketAddr,
        seed: bool,
        now: Instant,
    ) {
        if !self.peers.contains_key(&info_hash) && self.peers.len() >= self.max_info_hashes {
            trace!("peer store full");
            return;
        }
        let list = self.peers.entry(info_hash).or_default();
        if let Some(e) = list.iter_mut().find(|p| p.addr == peer) {
            e.at = now;
            e.seed = seed;
            return;
        }
        // Full: the oldest announce makes room.
        if list.len() >= self.max_peers
            && let Some((i, _)) = list.iter().enumerate().min_by_key(|(_, p)| p.at)
        {
            list.swap_remove(i);
        }
        if self.max_peers > 0 {
            list.push(StoredPeer {
                addr: peer,
                at: now,
                seed,
            });
        }
    }

    /// Every stored peer of `info_hash`.
    pub(crate) fn peers(&self, info_hash: &Sha1Hash) -> impl Iterator<Item = SocketAddr> + '_ {
        self.peers
            .get(info_hash)
            .into_iter()
            .flatten()
            .map(|p| p.addr)
    }

    /// Peers announced within `ttl` of the family `ipv6`, without seeds when `noseed`.
    pub(crate) fn fresh(
        &self,
        info_hash: &Sha1Hash,
        now: Instant,
        ttl: Duration,
        noseed: bool,
        ipv6: bool,
    ) -> Vec<SocketAddr> {
        self.peers
            .get(info_hash)
            .into_iter()
            .flatten()
            .filter(|p| now.saturating_duration_since(p.at) < ttl && !(noseed && p.seed))
            .map(|p| p.addr)
            .filter(|a| a.is_ipv6() == ipv6)
            .collect()
    }

    /// BEP 33: bloom filters of the seeds' and downloaders' IPs announced within `ttl`.
    pub(crate) fn filters(
        &self,
        info_hash: &Sha1Hash,
        now: Instant,
        ttl: Duration,
    ) -> (Bloom, Bloom) {
        let (mut seeds, mut peers) = (Bloom::default(), Bloom::default());
        for p in self.peers.get(info_hash).into_iter().flatten() {
            if now.saturating_duration_since(p.at) < ttl {
                if p.seed {
                    seeds.insert(p.addr.ip());
                } else {
                    peers.insert(p.addr.ip());
                }
            }
        }
        (seeds, peers)
    }

    /// The stored info-hashes, sorted (BEP 51 samples).
    pub(crate) fn info_hashes(&self) -> Vec<Sha1Hash> {
        let mut keys: Vec<Sha1Hash> = self.peers.keys().copied().collect();
        keys.sort();
        keys
    }

    pub(crate) fn len(&self) -> usize {
        self.peers.len()
    }

    /// Drops announces older than `ttl`.
    pub(crate) fn expire(&mut self, now: Instant, ttl: Duration) {
        self.peers.retain(|_, list| {
            list.retain(|p| now.saturating_duration_since(p.at) < ttl);
            !list.is_empty()
        });
    }
}

#[derive(Debug, Clone)]
struct StoredItem {
    item: Item,
    stored: Instant,
}

/// BEP 44 items stored for others, at most `max`; the oldest makes room.
#[derive(Debug)]
pub(crate) struct ItemStore {
    items: HashMap<Sha1Hash, StoredItem>,
    max: usize,
}

impl ItemStore {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            items: HashMap::new(),
            max,
        }
    }

    pub(crate) fn get(&self, target: &Sha1Hash) -> Option<&Item> {
        self.items.get(target).map(|s| &s.item)
    }

    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    /// Stores an item from a remote `put`, or returns the BEP 44 error code and text.
    pub(crate) fn put(&mut self, now: Instant, put: PutItem) -> Result<(), (i64, &'static [u8])> {
        let item = match (put.k, put.sig, put.seq) {
            (None, None, None) => {
                if crate::item::check_value(&put.v).is_err() {
                    return Err((205, b"message too big"));
                }
                Item::Immutable { v: put.v }
            }
            (Some(k), Some(sig), Some(seq)) => {
                let m = MutableItem {
                    k,
                    salt: put.salt.unwrap_or_default(),
                    seq,
                    v: put.v,
                    sig,
                };
                if !m.verify() {
                    return Err((206, b"invalid signature"));
                }
                if let Some(Item::Mutable(old)) = self.get(&m.target()) {
                    // BEP 44: compare-and-swap, and never go back in sequence.
                    if put.cas.is_some_and(|cas| cas != old.seq) {
                        return Err((301, b"CAS mismatch"));
                    }
                    if seq < old.seq {
                        return Err((302, b"sequence number less than current"));
                    }
                }
                Item::Mutable(m)
            }
            _ => return Err((203, b"missing k, sig or seq")),
        };
        let target = item.target();
        if !self.items.contains_key(&target) && self.items.len() >= self.max {
            let oldest = self
                .items
                .iter()
                .min_by_key(|(_, s)| s.stored)
                .map(|(t, _)| *t);
            if let Some(t) = oldest {
                self.items.remove(&t);
            }
        }
        if self.max > 0 {
            self.items.insert(target, StoredItem { item, stored: now });
        }
        Ok(())
    }

    /// Drops items not put again within `ttl`.
    pub(crate) fn expire(&mut self, now: Instant, ttl: Duration) {
        self.items
            .retain(|_, s| now.saturating_duration_since(s.stored) < ttl);
    }
}
