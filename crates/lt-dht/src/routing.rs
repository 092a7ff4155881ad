//! The routing table (BEP 5): K-buckets over the XOR distance to our own id.
//!
//! Bucket `i` (for `i < buckets.len() - 1`) holds nodes whose id shares exactly `i`
//! leading bits with ours; the last bucket holds everything closer. A full last bucket
//! splits (up to 160 buckets); a full other bucket replaces a bad node or sends the newcomer
//! to the bucket's bounded replacement cache. Memory is bounded by
//! `160 * (bucket_size + replacements)` entries whatever the network sends.
//!
//! Poisoning (libtorrent's `dht_restrict_routing_ips`): with an [`IpRestriction`] other
//! than `Off`, the table holds at most one node per IP address (buckets and replacement
//! caches together), and a bucket with its replacement cache at most one node per /24
//! (IPv4) or /64 (IPv6), so one host, or one subnet, with many ids cannot fill buckets. By
//! default loopback, private and link-local addresses are exempt, so LAN and loopback
//! swarms (and tests with many nodes on 127.0.0.x) work.
//!
//! Liveness (BEP 5): a node is *good* if it answered one of our queries within the last
//! 15 minutes (or has ever answered and queried us within 15 minutes), *bad* after
//! [`MAX_FAILS`] consecutive timeouts, *questionable* otherwise.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use lt_core::Sha1Hash;

use crate::krpc::{NodeInfo, is_local};

/// Consecutive failures after which a node is bad.
pub const MAX_FAILS: u8 = 2;
/// How long a node stays good after we last heard from it (BEP 5: 15 minutes).
pub const GOOD_FOR: Duration = Duration::from_secs(15 * 60);

/// BEP 5 liveness of a routing-table node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// Answered recently.
    Good,
    /// Not heard from in 15 minutes, or never answered a query.
    Questionable,
    /// Failed [`MAX_FAILS`] queries in a row.
    Bad,
}

/// Which addresses the routing table limits to one node per IP, and per /24 (IPv4) or /64
/// (IPv6) within a bucket (libtorrent's `dht_restrict_routing_ips`).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IpRestriction {
    /// No limit: any number of ids per address.
    Off,
    /// Public addresses only; loopback, private and link-local addresses are exempt (a LAN
    /// or a loopback test may run many nodes on one host). The default.
    #[default]
    Public,
    /// Every address, local ones too.
    All,
}

impl IpRestriction {
    fn applies_to(self, ip: IpAddr) -> bool {
        match self {
            Self::Off => false,
            Self::Public => !is_local(ip),
            Self::All => true,
        }
    }
}

/// The subnet a bucket holds at most one node of: the /24 of an IPv4 address, the /64 of
/// an IPv6 one (an IPv4-mapped IPv6 address counts as IPv4).
fn subnet(ip: IpAddr) -> (bool, u64) {
    match ip {
        IpAddr::V4(v4) => (false, u64::from(u32::from(v4) >> 8)),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => (false, u64::from(u32::from(v4) >> 8)),
            None => {
                let hi = u128::from(v6) >> 64;
                (true, u64::try_from(hi).unwrap_or(u64::MAX))
            }
        },
    }
}

/// One node in the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Id and address.
    pub node: NodeInfo,
    /// When it last answered one of our queries, if ever.
    pub last_response: Option<Instant>,
    /// When we last heard anything from it.
    pub last_seen: Instant,
    /// Consecutive timeouts.
    pub fails: u8,
    /// The id conforms to the address under BEP 42 (local addresses always do).
    pub verified: bool,
}

impl Entry {
    /// BEP 5 liveness at `now`.
    #[must_use]
    pub fn liveness(&self, now: Instant) -> Liveness {
        if self.fails >= MAX_FAILS {
            Liveness::Bad
        } else if self.last_response.is_some()
            && now.saturating_duration_since(self.last_seen) < GOOD_FOR
        {
            Liveness::Good
        } else {
            Liveness::Questionable
        }
    }
}

#[derive(Debug, Clone, Default)]
struct Bucket {
    nodes: Vec<Entry>,
    replacements: Vec<Entry>,
    last_changed: Option<Instant>,
}

/// What [`RoutingTable::insert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// The node was already in the table; its timestamps were updated.
    Updated,
    /// The node joined a bucket.
    Added,
    /// The bucket was full; the node went to the replacement cache.
    Replacement,
    /// Rejected (our own id, an id already held by another address, or with an
    /// [`IpRestriction`]: an address already in the table under another id, or a bucket
    /// already holding a node of the same /24 or /64).
    Rejected,
}

/// A bounded Kademlia routing table.
#[derive(Debug, Clone)]
pub struct RoutingTable {
    own_id: Sha1Hash,
    bucket_size: usize,
    replacements: usize,
    buckets: Vec<Bucket>,
    restriction: IpRestriction,
    /// Entries (buckets and replacement caches) per restricted IP address.
    ips: HashMap<IpAddr, u32>,
}

impl RoutingTable {
    /// An empty table around `own_id` with `bucket_size` (K, normally 8) nodes and
    /// `replacements` cached candidates per bucket, with the default [`IpRestriction`].
    #[must_use]
    pub fn new(own_id: Sha1Hash, bucket_size: usize, replacements: usize) -> Self {
        Self {
            own_id,
            bucket_size: bucket_size.max(1),
            replacements,
            buckets: vec![Bucket::default()],
            restriction: IpRestriction::default(),
            ips: HashMap::new(),
        }
    }

    /// The same empty table with another [`IpRestriction`] (set it before inserting).
    #[must_use]
    pub fn with_ip_restriction(mut self, restriction: IpRestriction) -> Self {
        self.restriction = restriction;
        self
    }

    /// The [`IpRestriction`] in force.
    #[must_use]
    pub fn ip_restriction(&self) -> IpRestriction {
        self.restriction
    }

    /// Our node id.
    #[must_use]
    pub fn own_id(&self) -> Sha1Hash {
        self.own_id
    }

    /// Number of nodes in buckets (not counting replacement caches).
    #[must_use]
    pub fn len(&self) -> usize {
        self.buckets.iter().map(|b| b.nodes.len()).sum()
    }

    /// True when no bucket holds a node.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of buckets (1 to 160).
    #[must_use]
    pub fn bucket_count(&self) -> usize {
        self.buckets.len()
    }

    /// Every node in the buckets.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.buckets.iter().flat_map(|b| b.nodes.iter())
    }

    /// The entry for `id`, if present.
    #[must_use]
    pub fn get(&self, id: &Sha1Hash) -> Option<&Entry> {
        let b = self.bucket_index(id);
        self.buckets[b].nodes.iter().find(|e| e.node.id == *id)
    }

    /// Records that we heard from `node` at `now`; `responded` is true when it answered
    /// one of our queries (only such nodes become good).
    pub fn insert(&mut self, node: NodeInfo, now: Instant, responded: bool) -> Inserted {
        if node.id == self.own_id {
            return Inserted::Rejected;
        }
        loop {
            let bi = self.bucket_index(&node.id);
            let last = self.buckets.len() - 1;
            let k = self.bucket_size;
            let ip = node.addr.ip();
            let restricted = self.restriction.applies_to(ip);
            let ip_taken = self.ips.contains_key(&ip);
            let bucket = &mut self.buckets[bi];
            if let Some(e) = bucket.nodes.iter_mut().find(|e| e.node.id == node.id) {
                if e.node.addr != node.addr {
                    // An id moving address could be a spoof: keep the one we know.
                    return Inserted::Rejected;
                }
                e.last_seen = now;
                if responded {
                    e.last_response = Some(now);
                    e.fails = 0;
                    bucket.last_changed = Some(now);
                }
                return Inserted::Updated;
            }
            let cached = bucket
                .replacements
                .iter()
                .find(|e| e.node.id == node.id)
                .map(|e| e.node.addr);
            if cached.is_some_and(|a| a != node.addr) {
                return Inserted::Rejected;
            }
            let cached = cached.is_some();
            if !cached && restricted {
                // One node per IP in the table, one per /24 or /64 in a bucket (issue 18:
                // one host with many ids filled buckets).
                let net = subnet(ip);
                if ip_taken
                    || bucket
                        .nodes
                        .iter()
                        .chain(&bucket.replacements)
                        .any(|e| subnet(e.node.addr.ip()) == net)
                {
                    return Inserted::Rejected;
                }
            }
            let entry = Entry {
                node,
                last_response: responded.then_some(now),
                last_seen: now,
                fails: 0,
                verified: bep42_valid(&node.id, ip),
            };
            if bucket.nodes.len() < k {
                bucket.nodes.push(entry);
                bucket.last_changed = Some(now);
                if cached {
                    // Moved from the cache to the bucket: still counted once.
                    bucket.replacements.retain(|e| e.node.id != node.id);
                } else {
                    self.count_ip(ip);
                }
                return Inserted::Added;
            }
            // A bad node makes room; so does (BEP 42: prefer conforming ids) a node that is
            // neither good nor BEP 42-conforming when the newcomer conforms.
            let newcomer_verified = entry.verified;
            if let Some(bad) = bucket
                .nodes
                .iter()
                .position(|e| e.liveness(now) == Liveness::Bad)
                .or_else(|| {
                    bucket.nodes.iter().position(|e| {
                        newcomer_verified && !e.verified && e.liveness(now) != Liveness::Good
                    })
                })
            {
                let old = std::mem::replace(&mut bucket.nodes[bad], entry);
                bucket.last_changed = Some(now);
                if cached {
                    bucket.replacements.retain(|e| e.node.id != node.id);
                } else {
                    self.count_ip(ip);
                }
                self.uncount_ip(old.node.addr.ip());
                return Inserted::Added;
            }
            if bi == last && self.buckets.len() < 160 {
                self.split_last();
                continue;
            }
            let bucket = &mut self.buckets[bi];
            if let Some(r) = bucket
                .replacements
                .iter_mut()
                .find(|e| e.node.id == node.id)
            {
                *r = entry;
            } else if self.replacements > 0 {
                let dropped = (bucket.replacements.len() >= self.replacements)
                    .then(|| bucket.replacements.remove(0));
                bucket.replacements.push(entry);
                if let Some(d) = dropped {
                    self.uncount_ip(d.node.addr.ip());
                }
                self.count_ip(ip);
            }
            return Inserted::Replacement;
        }
    }

    /// The same nodes around a new own id (BEP 42: after our external IP changed). Nodes
    /// keep their liveness; those that no longer fit a full bucket go to its replacement
    /// cache or are dropped, so the result is bounded like any table.
    #[must_use]
    pub fn rebuilt(&self, own_id: Sha1Hash) -> Self {
        let mut t = Self::new(own_id, self.bucket_size, self.replacements)
            .with_ip_restriction(self.restriction);
        for e in self.entries() {
            if t.insert(e.node, e.last_seen, e.last_response.is_some()) == Inserted::Added {
                let bi = t.bucket_index(&e.node.id);
                if let Some(n) = t.buckets[bi]
                    .nodes
                    .iter_mut()
                    .find(|n| n.node.id == e.node.id)
                {
                    n.last_response = e.last_response;
                    n.fails = e.fails;
                }
            }
        }
        t
    }

    /// Records a timeout for the node `id`. A node that turns bad is
    /// replaced by the freshest replacement-cache entry, if any.
    pub fn failed(&mut self, id: &Sha1Hash, now: Instant) {
        let bi = self.bucket_index(id);
        let bucket = &mut self.buckets[bi];
        let Some(pos) = bucket.nodes.iter().position(|e| e.node.id == *id) else {
            if let Some(i) = bucket.replacements.iter().position(|e| e.node.id == *id) {
                let gone = bucket.replacements.remove(i);
                self.uncount_ip(gone.node.addr.ip());
            }
            return;
        };
        let e = &mut bucket.nodes[pos];
        e.fails = e.fails.saturating_add(1);
        if e.liveness(now) == Liveness::Bad
            && let Some(r) = bucket.replacements.pop()
        {
            let gone = std::mem::replace(&mut bucket.nodes[pos], r);
            bucket.last_changed = Some(now);
            self.uncount_ip(gone.node.addr.ip());
        }
    }

    /// Removes the node `id`.
    pub fn remove(&mut self, id: &Sha1Hash) {
        let bi = self.bucket_index(id);
        let nodes = &mut self.buckets[bi].nodes;
        if let Some(i) = nodes.iter().position(|e| e.node.id == *id) {
            let gone = nodes.remove(i);
            self.uncount_ip(gone.node.addr.ip());
        }
    }

    /// The `n` non-bad nodes closest to `target`, nearest first.
    #[must_use]
    pub fn closest(&self, target: &Sha1Hash, n: usize, now: Instant) -> Vec<NodeInfo> {
        self.closest_where(target, n, |e| e.liveness(now) != Liveness::Bad)
    }

    /// The `n` closest nodes that have answered at least one of our queries and are not
    /// bad: what we hand out in replies, so unverified queriers cannot poison others.
    #[must_use]
    pub fn closest_confirmed(&self, target: &Sha1Hash, n: usize, now: Instant) -> Vec<NodeInfo> {
        self.closest_where(target, n, |e| {
            e.last_response.is_some() && e.liveness(now) != Liveness::Bad
        })
    }

    /// The `n` entries closest to `target` among those `keep` accepts, nearest first.
    fn closest_where(
        &self,
        target: &Sha1Hash,
        n: usize,
        keep: impl Fn(&Entry) -> bool,
    ) -> Vec<NodeInfo> {
        if n == 0 {
            return Vec::new();
        }
        // Each distance is computed once; a partial selection keeps this O(table size).
        let mut all: Vec<(Sha1Hash, NodeInfo)> = self
            .entries()
            .filter(|e| keep(e))
            .map(|e| (e.node.id ^ *target, e.node))
            .collect();
        if all.len() > n {
            all.select_nth_unstable_by_key(n - 1, |x| x.0);
            all.truncate(n);
        }
        all.sort_unstable_by_key(|x| x.0);
        all.into_iter().map(|(_, node)| node).collect()
    }

    /// Nodes that deserve a ping: questionable ones, oldest first, at most `n`.
    #[must_use]
    pub fn questionable(&self, n: usize, now: Instant) -> Vec<NodeInfo> {
        let mut q: Vec<&Entry> = self
            .entries()
            .filter(|e| e.liveness(now) == Liveness::Questionable)
            .collect();
        q.sort_by_key(|e| e.last_seen);
        q.into_iter().take(n).map(|e| e.node).collect()
    }

    /// Buckets to refresh (BEP 5): those not changed since `since` (or never), and those
    /// holding fewer than K nodes, except the last bucket (our own neighbourhood, which
    /// the bootstrap lookup covers). Returned as bucket indices.
    #[must_use]
    pub fn stale_buckets(&self, since: Option<Instant>) -> Vec<usize> {
        let last = self.buckets.len() - 1;
        self.buckets
            .iter()
            .enumerate()
            .filter(|&(i, b)| {
                i < last
                    && (b.nodes.len() < self.bucket_size
                        || since.is_some_and(|s| b.last_changed.is_none_or(|c| c < s)))
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// A random id that falls in bucket `index` (for `index < 159`): it shares exactly
    /// `index` leading bits with our id.
    #[must_use]
    pub fn random_id_in_bucket(&self, index: usize, random: [u8; 20]) -> Sha1Hash {
        let own = self.own_id.as_bytes();
        let mut out = random;
        for bit in 0..=index.min(159) {
            let (byte, mask) = (bit / 8, 0x80u8 >> (bit % 8));
            let want = if bit == index { !own[byte] } else { own[byte] } & mask;
            out[byte] = (out[byte] & !mask) | want;
        }
        Sha1Hash::new(out)
    }

    /// Index of the bucket that holds (or would hold) `id`.
    fn bucket_index(&self, id: &Sha1Hash) -> usize {
        let shared = usize::try_from((*id ^ self.own_id).leading_zeros()).unwrap_or(usize::MAX);
        shared.min(self.buckets.len() - 1)
    }

    fn split_last(&mut self) {
        let last = self.buckets.len() - 1;
        let old = std::mem::take(&mut self.buckets[last]);
        self.buckets.push(Bucket::default());
        for e in old.nodes.into_iter().chain(old.replacements) {
            let bi = self.bucket_index(&e.node.id);
            let b = &mut self.buckets[bi];
            if b.nodes.len() < self.bucket_size {
                b.nodes.push(e);
            } else if b.replacements.len() < self.replacements {
                b.replacements.push(e);
            } else {
                self.uncount_ip(e.node.addr.ip());
            }
        }
        self.buckets[last].last_changed = old.last_changed;
    }

    /// Counts an entry at `ip` (only restricted addresses are tracked).
    fn count_ip(&mut self, ip: IpAddr) {
        if self.restriction.applies_to(ip) {
            *self.ips.entry(ip).or_insert(0) += 1;
        }
    }

    /// Forgets an entry at `ip`.
    fn uncount_ip(&mut self, ip: IpAddr) {
        if let Some(n) = self.ips.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.ips.remove(&ip);
            }
        }
    }
}

/// CRC-32C (Castagnoli), bitwise; BEP 42 hashes at most 8 bytes with it.
fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// The BEP 42 prefix for `ip` and the 3-bit `r`: the top 21 bits a conforming id must have.
fn bep42_crc(ip: IpAddr, r: u8) -> u32 {
    let r = r & 0x07;
    match ip {
        IpAddr::V4(v4) => {
            let mut b = v4.octets();
            for (x, m) in b.iter_mut().zip([0x03, 0x0f, 0x3f, 0xff]) {
                *x &= m;
            }
            b[0] |= r << 5;
            crc32c(&b)
        }
        IpAddr::V6(v6) => {
            let mut b = [0u8; 8];
            b.copy_from_slice(&v6.octets()[..8]);
            for (x, m) in b
                .iter_mut()
                .zip([0x01, 0x03, 0x07, 0x0f, 0x1f, 0x3f, 0x7f, 0xff])
            {
                *x &= m;
            }
            b[0] |= r << 5;
            crc32c(&b)
        }
    }
}

/// BEP 42: a node id that conforms to `ip`, from 20 random bytes.
#[must_use]
pub fn bep42_id(ip: IpAddr, random: [u8; 20]) -> Sha1Hash {
    let r = random[19] & 0x07;
    let crc = bep42_crc(ip, r).to_be_bytes();
    let mut id = random;
    id[0] = crc[0];
    id[1] = crc[1];
    id[2] = (crc[2] & 0xf8) | (random[2] & 0x07);
    id[19] = random[19];
    Sha1Hash::new(id)
}

/// BEP 42: true when `id` conforms to `ip` (local addresses always conform).
#[must_use]
pub fn bep42_valid(id: &Sha1Hash, ip: IpAddr) -> bool {
    if is_local(ip) {
        return true;
    }
    let b = id.as_bytes();
    let crc = bep42_crc(ip, b[19]).to_be_bytes();
    b[0] == crc[0] && b[1] == crc[1] && (b[2] & 0xf8) == (crc[2] & 0xf8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bep42_vectors() {
        let cases: [(&str, u8, &str); 5] = [
            ("124.31.75.21", 1, "5fbfbf"),
            ("21.75.31.124", 86, "5a3ce9"),
            ("65.23.51.170", 22, "a5d432"),
            ("84.124.73.14", 65, "1b0321"),
            ("43.213.53.83", 90, "e56f6c"),
        ];
        for (ip, r, prefix) in cases {
            let ip: IpAddr = ip.parse().unwrap();
            let mut random = [0x55u8; 20];
            random[19] = r;
            let id = bep42_id(ip, random);
            let hex = id.to_hex();
            // The top 21 bits are fixed by the CRC; the rest of byte 2 is random.
            let want = u32::from_str_radix(prefix, 16).unwrap() >> 3;
            let got = u32::from_str_radix(&hex[..6], 16).unwrap() >> 3;
            assert_eq!(got, want, "{ip}");
            assert!(bep42_valid(&id, ip));
            let mut other = id.into_bytes();
            other[0] ^= 0x80;
            assert!(!bep42_valid(&Sha1Hash::new(other), ip));
        }
        assert!(bep42_valid(&Sha1Hash::ZERO, "10.0.0.1".parse().unwrap()));
    }
}
