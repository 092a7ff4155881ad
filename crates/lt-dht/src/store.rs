//! What a node stores for others: peers announced per info-hash (BEP 5, with the BEP 33
//! seed flag) and BEP 44 items. Both are capped whatever the network sends, in all and per
//! source IP, so one host (with one token) cannot fill either store and flush everyone
//! else's entries.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
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

/// Peers per info-hash: at most `max_info_hashes` info-hashes of at most `max_peers` peers,
/// and at most `max_per_ip` entries (over all info-hashes) announced from one IP.
#[derive(Debug)]
pub(crate) struct PeerStore {
    peers: HashMap<Sha1Hash, Vec<StoredPeer>>,
    max_info_hashes: usize,
    max_peers: usize,
    max_per_ip: usize,
    /// Stored entries per announcing IP (no zero counts kept).
    per_ip: HashMap<IpAddr, usize>,
}

impl PeerStore {
    pub(crate) fn new(max_info_hashes: usize, max_peers: usize, max_per_ip: usize) -> Self {
        Self {
            peers: HashMap::new(),
            max_info_hashes,
            max_peers,
            max_per_ip,
            per_ip: HashMap::new(),
        }
    }

    /// Records an announce (a repeated one refreshes its time and seed flag). A new entry
    /// from an IP that already has `max_per_ip` is not stored.
    pub(crate) fn insert(
        &mut self,
        info_hash: Sha1Hash,
        peer: SocketAddr,
        seed: bool,
        now: Instant,
    ) {
        if let Some(e) = self
            .peers
            .get_mut(&info_hash)
            .and_then(|list| list.iter_mut().find(|p| p.addr == peer))
        {
            e.at = now;
            e.seed = seed;
            return;
        }
        let ip = peer.ip();
        if self.per_ip.get(&ip).copied().unwrap_or(0) >= self.max_per_ip || self.max_peers == 0 {
            // Issue 18: one IP with one token filled the whole store.
            trace!(%ip, "peer store quota of this IP reached");
            return;
        }
        if !self.peers.contains_key(&info_hash) && self.peers.len() >= self.max_info_hashes {
            trace!("peer store full");
            return;
        }
        let list = self.peers.entry(info_hash).or_default();
        // Full: the oldest announce makes room.
        let evicted = if list.len() >= self.max_peers
            && let Some((i, _)) = list.iter().enumerate().min_by_key(|(_, p)| p.at)
        {
            Some(list.swap_remove(i).addr.ip())
        } else {
            None
        };
        list.push(StoredPeer {
            addr: peer,
            at: now,
            seed,
        });
        if let Some(old) = evicted {
            uncount(&mut self.per_ip, old);
        }
        *self.per_ip.entry(ip).or_insert(0) += 1;
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
        let per_ip = &mut self.per_ip;
        self.peers.retain(|_, list| {
            list.retain(|p| {
                let keep = now.saturating_duration_since(p.at) < ttl;
                if !keep {
                    uncount(per_ip, p.addr.ip());
                }
                keep
            });
            !list.is_empty()
        });
    }
}

/// Takes one from `ip`'s count, forgetting it at zero.
fn uncount(per_ip: &mut HashMap<IpAddr, usize>, ip: IpAddr) {
    if let Some(n) = per_ip.get_mut(&ip) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            per_ip.remove(&ip);
        }
    }
}

#[derive(Debug, Clone)]
struct StoredItem {
    item: Item,
    stored: Instant,
    /// The IP whose put stored it last.
    from: IpAddr,
}

/// BEP 44 items stored for others, at most `max`; the oldest makes room. At most
/// `max_per_ip` are held for the IP that last put them: past that, an IP's new item
/// replaces its own oldest, never anyone else's.
#[derive(Debug)]
pub(crate) struct ItemStore {
    items: HashMap<Sha1Hash, StoredItem>,
    max: usize,
    max_per_ip: usize,
    /// Items per IP that last put them (no zero counts kept).
    per_ip: HashMap<IpAddr, usize>,
}

impl ItemStore {
    pub(crate) fn new(max: usize, max_per_ip: usize) -> Self {
        Self {
            items: HashMap::new(),
            max,
            max_per_ip,
            per_ip: HashMap::new(),
        }
    }

    pub(crate) fn get(&self, target: &Sha1Hash) -> Option<&Item> {
        self.items.get(target).map(|s| &s.item)
    }

    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    /// Stores an item from a remote `put` sent by `from`, or returns the BEP 44 error code
    /// and text.
    pub(crate) fn put(
        &mut self,
        now: Instant,
        from: IpAddr,
        put: PutItem,
    ) -> Result<(), (i64, &'static [u8])> {
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
        if self.max == 0 || self.max_per_ip == 0 {
            return Ok(());
        }
        // Whoever puts an item last answers for it.
        if let Some(old) = self.items.remove(&target) {
            uncount(&mut self.per_ip, old.from);
        }
        let oldest = |items: &HashMap<Sha1Hash, StoredItem>, of: Option<IpAddr>| {
            items
                .iter()
                .filter(|(_, s)| of.is_none_or(|ip| s.from == ip))
                .min_by_key(|(_, s)| s.stored)
                .map(|(t, _)| *t)
        };
        // Issue 18: one IP's puts flushed every other item. Past its quota an IP's new
        // item replaces its own oldest; only a full store drops the oldest of all.
        let victim = if self.per_ip.get(&from).copied().unwrap_or(0) >= self.max_per_ip {
            oldest(&self.items, Some(from))
        } else if self.items.len() >= self.max {
            oldest(&self.items, None)
        } else {
            None
        };
        if let Some(old) = victim.and_then(|t| self.items.remove(&t)) {
            uncount(&mut self.per_ip, old.from);
        }
        self.items.insert(
            target,
            StoredItem {
                item,
                stored: now,
                from,
            },
        );
        *self.per_ip.entry(from).or_insert(0) += 1;
        Ok(())
    }

    /// Drops items not put again within `ttl`.
    pub(crate) fn expire(&mut self, now: Instant, ttl: Duration) {
        let per_ip = &mut self.per_ip;
        self.items.retain(|_, s| {
            let keep = now.saturating_duration_since(s.stored) < ttl;
            if !keep {
                uncount(per_ip, s.from);
            }
            keep
        });
    }
}
