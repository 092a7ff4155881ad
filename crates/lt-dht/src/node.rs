//! The DHT node state machine: answers queries, runs lookups, keeps tokens and peers.
//!
//! Driver rule: after any input (`handle_datagram`, `handle_timeout` or a command), drain
//! [`Dht::poll_transmit`], then [`Dht::poll_event`], then re-arm one timer from
//! [`Dht::poll_timeout`]. `now` must never go backwards between calls.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use lt_core::Sha1Hash;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use tracing::trace;

use crate::item::{Item, ItemError, MutableItem, immutable_target, mutable_target};
use crate::krpc::{Body, Message, NodeInfo, PutItem, Query, Response};
use crate::limits;
use crate::routing::RoutingTable;
use crate::scrape::Bloom;
use crate::store::{ItemStore, PeerStore};

/// Node configuration. Every cap has a documented default.
#[derive(Debug, Clone)]
pub struct Config {
    /// Our node id; `None` draws one from the RNG (BEP 42-conforming when
    /// [`Config::external_ip`] is set).
    pub id: Option<Sha1Hash>,
    /// Our external IP as others see it, if known; used to derive a BEP 42 id.
    /// Default: `None`.
    pub external_ip: Option<IpAddr>,
    /// BEP 42: when responders agree on an external IP (see [`Event::ExternalAddress`])
    /// that our id does not conform to, switch to a conforming id and rebuild the routing
    /// table around it ([`Event::NodeIdChanged`]). Local addresses never trigger it.
    /// Default: true.
    pub regenerate_id: bool,
    /// RNG seed (ids, transaction ids, token secrets); `None` uses a fixed seed, so the
    /// caller (lt-session) should pass OS randomness.
    pub rng_seed: Option<[u8; 32]>,
    /// BEP 43: do not answer queries and send `ro=1`. Default: false.
    pub read_only: bool,
    /// Client version sent as `v`. Default: `b"LT01"`.
    pub version: Option<Vec<u8>>,
    /// Use `nodes6` (an IPv6 node) instead of `nodes`. Default: false.
    pub ipv6: bool,
    /// Nodes per bucket, and the lookup result size (K). Default: 8.
    pub bucket_size: usize,
    /// Replacement-cache entries per bucket. Default: 8.
    pub replacements: usize,
    /// Routing-table poisoning defence (libtorrent's `dht_restrict_routing_ips`): one node
    /// per IP address, and one per /24 (IPv4) or /64 (IPv6) in a bucket. Default:
    /// [`IpRestriction::Public`](crate::routing::IpRestriction::Public), which exempts
    /// loopback, private and link-local addresses so LAN and loopback swarms work.
    pub restrict_routing_ips: crate::routing::IpRestriction,
    /// Lookup parallelism (alpha). Default: 3.
    pub alpha: usize,
    /// How long to wait for a reply. Default: 5 s.
    pub query_timeout: Duration,
    /// Token secret rotation period (BEP 5: 5 minutes; tokens are accepted for two periods).
    pub token_rotation: Duration,
    /// How long announced peers are kept. Default: 30 minutes.
    pub peer_ttl: Duration,
    /// Maximum info-hashes in the peer store. Default: [`limits::DEFAULT_MAX_INFO_HASHES`].
    pub max_info_hashes: usize,
    /// Maximum peers per info-hash. Default: [`limits::DEFAULT_MAX_PEERS_PER_INFO_HASH`].
    pub max_peers_per_info_hash: usize,
    /// Maximum peer-store entries (over all info-hashes) announced from one IP; further
    /// new announces from it are not stored. Default: [`limits::DEFAULT_MAX_ANNOUNCES_PER_IP`].
    pub max_announces_per_ip: usize,
    /// Maximum peers per `get_peers` reply. Default: [`limits::DEFAULT_MAX_VALUES_IN_REPLY`].
    pub max_values_in_reply: usize,
    /// Incoming queries allowed per source IP per second. Default:
    /// [`limits::DEFAULT_QUERIES_PER_IP_PER_SECOND`].
    pub queries_per_ip_per_second: u32,
    /// Slots of the rate limiter (source IPs hash into them, colliding IPs share a
    /// budget; allocated once). Default:
    /// [`limits::DEFAULT_MAX_RATE_LIMIT_ENTRIES`].
    pub max_rate_limit_entries: usize,
    /// Outstanding transactions. Default: [`limits::DEFAULT_MAX_IN_FLIGHT`].
    pub max_in_flight: usize,
    /// Concurrent lookups. Default: [`limits::DEFAULT_MAX_LOOKUPS`].
    pub max_lookups: usize,
    /// Maintenance period: token rotation check, peer expiry, pinging questionable
    /// nodes. Default: 60 s.
    pub maintenance_interval: Duration,
    /// BEP 44 items stored for others; the oldest is dropped for a new one. Default:
    /// [`limits::DEFAULT_MAX_STORED_ITEMS`].
    pub max_stored_items: usize,
    /// BEP 44 items stored for one IP (the last to put each); past it, the IP's new item
    /// replaces its own oldest. Default: [`limits::DEFAULT_MAX_ITEMS_PER_IP`].
    pub max_items_per_ip: usize,
    /// How long a stored BEP 44 item lives without being put again (BEP 44: 2 hours).
    pub item_ttl: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            id: None,
            external_ip: None,
            regenerate_id: true,
            rng_seed: None,
            read_only: false,
            version: Some(b"LT01".to_vec()),
            ipv6: false,
            bucket_size: limits::DEFAULT_BUCKET_SIZE,
            replacements: limits::DEFAULT_REPLACEMENTS,
            restrict_routing_ips: crate::routing::IpRestriction::Public,
            alpha: 3,
            query_timeout: Duration::from_secs(5),
            token_rotation: Duration::from_secs(5 * 60),
            peer_ttl: Duration::from_secs(30 * 60),
            max_info_hashes: limits::DEFAULT_MAX_INFO_HASHES,
            max_peers_per_info_hash: limits::DEFAULT_MAX_PEERS_PER_INFO_HASH,
            max_announces_per_ip: limits::DEFAULT_MAX_ANNOUNCES_PER_IP,
            max_values_in_reply: limits::DEFAULT_MAX_VALUES_IN_REPLY,
            queries_per_ip_per_second: limits::DEFAULT_QUERIES_PER_IP_PER_SECOND,
            max_rate_limit_entries: limits::DEFAULT_MAX_RATE_LIMIT_ENTRIES,
            max_in_flight: limits::DEFAULT_MAX_IN_FLIGHT,
            max_lookups: limits::DEFAULT_MAX_LOOKUPS,
            maintenance_interval: Duration::from_secs(60),
            max_stored_items: limits::DEFAULT_MAX_STORED_ITEMS,
            max_items_per_ip: limits::DEFAULT_MAX_ITEMS_PER_IP,
            item_ttl: Duration::from_secs(2 * 60 * 60),
        }
    }
}

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where to.
    pub dest: SocketAddr,
    /// The encoded KRPC message.
    pub payload: Vec<u8>,
}

/// Identifies a lookup started by a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LookupId(pub u64);

/// What a lookup is for.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupKind {
    /// `find_node` towards our own id, from the routers.
    Bootstrap,
    /// `find_node` towards a target.
    FindNode,
    /// `find_node` towards a random id in a stale or sparse bucket (BEP 5 refresh).
    Refresh,
    /// `get_peers` for an info-hash.
    GetPeers,
    /// `get_peers`, then `announce_peer` to the closest nodes that gave tokens;
    /// `None` announces with `implied_port`.
    Announce(Option<u16>),
    /// BEP 44 `get` of an item ([`Event::Item`] reports what is found).
    Get,
    /// BEP 44 `get` for tokens, then `put` to the closest nodes that gave one.
    Put,
    /// BEP 33 `get_peers` with `scrape=1`.
    Scrape,
}

/// Output of the node.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A `get_peers` reply carried peers (may repeat per lookup).
    Peers {
        /// The lookup.
        lookup: LookupId,
        /// The info-hash.
        info_hash: Sha1Hash,
        /// Peers from one reply.
        peers: Vec<SocketAddr>,
    },
    /// A lookup converged.
    LookupDone {
        /// The lookup.
        lookup: LookupId,
        /// What it was.
        kind: LookupKind,
        /// The target or info-hash.
        target: Sha1Hash,
        /// Up to K responding nodes closest to the target, nearest first.
        closest: Vec<NodeInfo>,
        /// Hops: the longest chain of replies that led to a queried node.
        rounds: u32,
        /// Queries sent.
        messages: u32,
        /// For announces and puts: `announce_peer` or `put` queries sent.
        announced: usize,
    },
    /// A BEP 44 `get` lookup received a valid item: the first immutable one, then each
    /// mutable one with a higher `seq` than before.
    Item {
        /// The lookup.
        lookup: LookupId,
        /// The item's key.
        target: Sha1Hash,
        /// The item (its hash or signature checked).
        item: Item,
    },
    /// A node announced itself as a peer for an info-hash (it gave a valid token).
    IncomingAnnounce {
        /// The torrent.
        info_hash: Sha1Hash,
        /// The peer's address (UDP source IP with the announced or implied port).
        peer: SocketAddr,
    },
    /// A majority of recent responders report the same external IP for us (BEP 42 `ip`).
    ExternalAddress {
        /// Our address as the last of those responders saw it.
        addr: SocketAddr,
    },
    /// A BEP 33 scrape ended.
    Scrape {
        /// The lookup.
        lookup: LookupId,
        /// The torrent.
        info_hash: Sha1Hash,
        /// Estimated seeds (union of the nodes' `BFsd` filters).
        seeds: u32,
        /// Estimated downloaders (union of the nodes' `BFpe` filters).
        downloaders: u32,
    },
    /// BEP 42: our node id changed to conform to our external IP
    /// ([`Config::regenerate_id`]); save it with the state.
    NodeIdChanged {
        /// The new id.
        id: Sha1Hash,
    },
    /// The bootstrap lookup finished.
    BootstrapDone {
        /// Nodes in the routing table.
        nodes: usize,
    },
}

/// Why a command was refused.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// [`Config::max_lookups`] lookups are already running.
    #[error("too many concurrent lookups")]
    TooManyLookups,
    /// A BEP 44 item is malformed or its signature does not verify.
    #[error("invalid item: {0}")]
    InvalidItem(#[from] ItemError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CandState {
    New,
    InFlight,
    Responded,
    Failed,
}

#[derive(Debug, Clone)]
struct Candidate {
    node: NodeInfo,
    state: CandState,
    hop: u32,
    token: Option<Vec<u8>>,
}

#[derive(Debug)]
struct Lookup {
    kind: LookupKind,
    target: Sha1Hash,
    candidates: Vec<Candidate>,
    seen: HashSet<SocketAddr>,
    in_flight: usize,
    messages: u32,
    /// BEP 44: what to `put` when the lookup ends ([`LookupKind::Put`]).
    put: Option<PutItem>,
    /// BEP 44 `get`: the mutable key and salt expected, the `seq` asked for, and the best
    /// `seq` reported so far (`Some` once an immutable item was found).
    get: Option<GetState>,
    /// BEP 33: announce as a seed.
    seed: bool,
    /// BEP 33 scrape: the union of the seed and downloader filters received.
    scrape: Option<(Bloom, Bloom)>,
}

#[derive(Debug, Clone)]
struct GetState {
    mutable: Option<([u8; 32], Vec<u8>)>,
    min_seq: Option<i64>,
    best_seq: Option<i64>,
}

#[derive(Debug, Clone, Copy)]
enum Purpose {
    /// A lookup query; `hop` of the candidate queried (0 for a router).
    Lookup(LookupId, u32),
    /// A liveness ping or announce, only for the routing table.
    Other,
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    addr: SocketAddr,
    id: Option<Sha1Hash>,
    deadline: Instant,
    purpose: Purpose,
}

#[derive(Debug, Clone, Copy, Default)]
struct RateEntry {
    window_start: Option<Instant>,
    count: u32,
}

/// A sans-IO Mainline DHT node.
///
/// Feed it datagrams and timeouts; it produces datagrams ([`Transmit`]) and [`Event`]s.
/// Driver rule: after any input, drain `poll_transmit`, then `poll_event`, then re-arm
/// one timer from `poll_timeout`.
#[derive(Debug)]
pub struct Dht {
    config: Config,
    id: Sha1Hash,
    rng: ChaCha8Rng,
    table: RoutingTable,
    routers: Vec<SocketAddr>,
    next_tid: u16,
    pending: HashMap<u16, Pending>,
    deadlines: BTreeSet<(Instant, u16)>,
    lookups: HashMap<LookupId, Lookup>,
    next_lookup: u64,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    secret: [u8; 16],
    prev_secret: [u8; 16],
    last_rotation: Instant,
    next_maintenance: Instant,
    peers: PeerStore,
    rate: Vec<RateEntry>,
    rate_salt: u64,
    bootstrap: Option<LookupId>,
    items: ItemStore,
    ip_votes: VecDeque<(IpAddr, SocketAddr)>,
    external: Option<SocketAddr>,
}

impl Dht {
    /// A node with an empty routing table.
    #[must_use]
    pub fn new(config: Config, now: Instant) -> Self {
        let mut rng = ChaCha8Rng::from_seed(config.rng_seed.unwrap_or([0x44; 32]));
        let id = config.id.unwrap_or_else(|| {
            let mut b = [0u8; 20];
            rng.fill_bytes(&mut b);
            match config.external_ip {
                Some(ip) => crate::routing::bep42_id(ip, b),
                None => Sha1Hash::new(b),
            }
        });
        let rate = vec![RateEntry::default(); config.max_rate_limit_entries];
        let peers = PeerStore::new(
            config.max_info_hashes,
            config.max_peers_per_info_hash,
            config.max_announces_per_ip,
        );
        let items = ItemStore::new(config.max_stored_items, config.max_items_per_ip);
        let rate_salt = rng.next_u64();
        let mut secret = [0u8; 16];
        rng.fill_bytes(&mut secret);
        let next_tid = u16::try_from(rng.next_u32() & 0xffff).unwrap_or(0);
        Self {
            table: RoutingTable::new(id, config.bucket_size, config.replacements)
                .with_ip_restriction(config.restrict_routing_ips),
            next_maintenance: now + config.maintenance_interval,
            config,
            id,
            rng,
            routers: Vec::new(),
            next_tid,
            pending: HashMap::new(),
            deadlines: BTreeSet::new(),
            lookups: HashMap::new(),
            next_lookup: 0,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            secret,
            prev_secret: secret,
            last_rotation: now,
            peers,
            rate,
            rate_salt,
            bootstrap: None,
            items,
            ip_votes: VecDeque::new(),
            external: None,
        }
    }

    /// Our node id.
    #[must_use]
    pub fn id(&self) -> Sha1Hash {
        self.id
    }

    /// The routing table.
    #[must_use]
    pub fn routing_table(&self) -> &RoutingTable {
        &self.table
    }

    /// Adds a bootstrap router (queried by [`Dht::bootstrap`], never put in the table).
    pub fn add_router(&mut self, addr: SocketAddr) {
        if !self.routers.contains(&addr) && self.routers.len() < 32 {
            self.routers.push(addr);
        }
    }

    /// Pings a node we knew before (saved state, or a `port` message from a peer); it
    /// joins the routing table when it answers.
    pub fn add_node(&mut self, now: Instant, addr: SocketAddr) {
        let q = Query::Ping { id: self.id };
        self.send_query(now, addr, None, q, Purpose::Other);
    }

    /// Good nodes worth saving for the next start, nearest to our id first.
    #[must_use]
    pub fn saved_nodes(&self, now: Instant) -> Vec<NodeInfo> {
        self.table
            .closest_confirmed(&self.id, self.table.len(), now)
    }

    /// Our id and good nodes, to save for the next start.
    #[must_use]
    pub fn state(&self, now: Instant) -> crate::DhtState {
        crate::DhtState {
            id: Some(self.id),
            nodes: self.saved_nodes(now).into_iter().map(|n| n.addr).collect(),
        }
    }

    /// Starts the bootstrap: a `find_node` for our own id from the routers and the table.
    ///
    /// # Errors
    ///
    /// [`CommandError::TooManyLookups`].
    pub fn bootstrap(&mut self, now: Instant) -> Result<LookupId, CommandError> {
        // Marked before starting: with no router and an empty table the lookup finishes
        // inside `start`, and must still report `BootstrapDone`.
        let previous = self.bootstrap.replace(LookupId(self.next_lookup));
        let started = self.start(now, LookupKind::Bootstrap, self.id);
        if started.is_err() {
            self.bootstrap = previous;
        }
        started
    }

    /// Starts an iterative `find_node` for `target`.
    ///
    /// # Errors
    ///
    /// [`CommandError::TooManyLookups`].
    pub fn find_node(&mut self, now: Instant, target: Sha1Hash) -> Result<LookupId, CommandError> {
        self.start(now, LookupKind::FindNode, target)
    }

    /// Starts an iterative `get_peers` for `info_hash`.
    ///
    /// # Errors
    ///
    /// [`CommandError::TooManyLookups`].
    pub fn get_peers(
        &mut self,
        now: Instant,
        info_hash: Sha1Hash,
    ) -> Result<LookupId, CommandError> {
        self.start(now, LookupKind::GetPeers, info_hash)
    }

    /// `get_peers`, then `announce_peer` to the closest K nodes that gave a token.
    /// `port: None` announces with `implied_port`.
    ///
    /// # Errors
    ///
    /// [`CommandError::TooManyLookups`].
    pub fn announce(
        &mut self,
        now: Instant,
        info_hash: Sha1Hash,
        port: Option<u16>,
    ) -> Result<LookupId, CommandError> {
        self.announce_with(now, info_hash, port, false)
    }

    /// [`Dht::announce`], telling the nodes (BEP 33 `seed=1`) whether we are a seed.
    ///
    /// # Errors
    ///
    /// [`CommandError::TooManyLookups`].
    pub fn announce_with(
        &mut self,
        now: Instant,
        info_hash: Sha1Hash,
        port: Option<u16>,
        seed: bool,
    ) -> Result<LookupId, CommandError> {
        let lid = self.start(now, LookupKind::Announce(port), info_hash)?;
        if let Some(l) = self.lookups.get_mut(&lid) {
            l.seed = seed;
        }
        Ok(lid)
    }

    /// BEP 33: a `get_peers` lookup with `scrape=1`; [`Event::Scrape`] reports the
    /// estimated numbers of seeds and downloaders when it ends.
    ///
    /// # Errors
    ///
    /// [`CommandError::TooManyLookups`].
    pub fn scrape(&mut self, now: Instant, info_hash: Sha1Hash) -> Result<LookupId, CommandError> {
        self.start(now, LookupKind::Scrape, info_hash)
    }

    /// BEP 44: looks up the immutable item whose key is `target` (the SHA-1 of its
    /// bencoded value). [`Event::Item`] reports it.
    ///
    /// # Errors
    ///
    /// [`CommandError::TooManyLookups`].
    pub fn get_immutable(
        &mut self,
        now: Instant,
        target: Sha1Hash,
    ) -> Result<LookupId, CommandError> {
        let get = GetState {
            mutable: None,
            min_seq: None,
            best_seq: None,
        };
        self.start_with(now, LookupKind::Get, target, None, Some(get))
    }

    /// BEP 44: looks up the mutable item of public key `k` and `salt`; with `min_seq`, only
    /// newer items are sent. [`Event::Item`] reports each higher `seq` found.
    ///
    /// # Errors
    ///
    /// [`CommandError::TooManyLookups`], or [`CommandError::InvalidItem`] for a salt
    /// longer than 64 bytes.
    pub fn get_mutable(
        &mut self,
        now: Instant,
        k: [u8; 32],
        salt: &[u8],
        min_seq: Option<i64>,
    ) -> Result<LookupId, CommandError> {
        if salt.len() > limits::MAX_SALT_LEN {
            return Err(ItemError::SaltTooLong {
                len: salt.len(),
                max: limits::MAX_SALT_LEN,
            }
            .into());
        }
        let get = GetState {
            mutable: Some((k, salt.to_vec())),
            min_seq,
            best_seq: None,
        };
        self.start_with(
            now,
            LookupKind::Get,
            mutable_target(&k, salt),
            None,
            Some(get),
        )
    }

    /// BEP 44: stores the bencoded value `v` as an immutable item on the closest nodes.
    /// Returns the lookup and the item's key (the SHA-1 of `v`).
    ///
    /// # Errors
    ///
    /// [`CommandError::InvalidItem`] if `v` is not one bencoded value of at most 1000
    /// bytes, or [`CommandError::TooManyLookups`].
    pub fn put_immutable(
        &mut self,
        now: Instant,
        v: Vec<u8>,
    ) -> Result<(LookupId, Sha1Hash), CommandError> {
        crate::item::check_value(&v)?;
        let target = immutable_target(&v);
        let put = PutItem {
            v,
            k: None,
            sig: None,
            seq: None,
            cas: None,
            salt: None,
        };
        let lid = self.start_with(now, LookupKind::Put, target, Some(put), None)?;
        Ok((lid, target))
    }

    /// BEP 44: stores a signed mutable item on the closest nodes; with `cas`, nodes only
    /// replace an item whose `seq` equals it.
    ///
    /// # Errors
    ///
    /// [`CommandError::InvalidItem`] if the item does not verify, or
    /// [`CommandError::TooManyLookups`].
    pub fn put_mutable(
        &mut self,
        now: Instant,
        item: MutableItem,
        cas: Option<i64>,
    ) -> Result<LookupId, CommandError> {
        if !item.verify() {
            return Err(ItemError::BadSignature.into());
        }
        let target = item.target();
        let put = PutItem {
            v: item.v,
            k: Some(item.k),
            sig: Some(item.sig),
            seq: Some(item.seq),
            cas,
            salt: (!item.salt.is_empty()).then_some(item.salt),
        };
        self.start_with(now, LookupKind::Put, target, Some(put), None)
    }

    /// The BEP 44 item stored here under `target`, if any.
    #[must_use]
    pub fn stored_item(&self, target: &Sha1Hash) -> Option<&Item> {
        self.items.get(target)
    }

    /// Number of BEP 44 items stored here.
    #[must_use]
    pub fn stored_items(&self) -> usize {
        self.items.len()
    }

    /// Our external address as voted by responders (BEP 42 `ip`), once known.
    #[must_use]
    pub fn external_addr(&self) -> Option<SocketAddr> {
        self.external
    }

    /// Peers stored for `info_hash` by `announce_peer` queries.
    pub fn stored_peers(&self, info_hash: &Sha1Hash) -> impl Iterator<Item = SocketAddr> + '_ {
        self.peers.peers(info_hash)
    }

    /// Number of info-hashes in the peer store.
    #[must_use]
    pub fn stored_info_hashes(&self) -> usize {
        self.peers.len()
    }

    /// Takes one datagram from `from`.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, buf: &[u8]) {
        let msg = match Message::decode(buf) {
            Ok(m) => m,
            Err(e) => {
                trace!(peer = %from, error = %e, "malformed KRPC");
                // BEP 5: answer a broken query with 203 (protocol) or 204 (method unknown)
                // if it carries a usable transaction id; drop anything else silently.
                if let Some(tid) = crate::krpc::query_tid(buf)
                    && !self.config.read_only
                    && self.allow(now, from.ip())
                {
                    let (code, text): (i64, &[u8]) = match e {
                        crate::Error::UnknownMethod => (204, b"Method Unknown"),
                        // BEP 44 error codes for an oversized value or salt.
                        crate::Error::TooMany { key: "v", .. } => (205, b"message too big"),
                        crate::Error::BadField { key: "salt" } => (207, b"salt too big"),
                        _ => (203, b"Protocol Error"),
                    };
                    let msg = Message {
                        tid,
                        version: self.config.version.clone(),
                        read_only: false,
                        ip: None,
                        body: Body::Error {
                            code,
                            message: text.to_vec(),
                        },
                    };
                    self.transmits.push_back(Transmit {
                        dest: from,
                        payload: msg.encode(),
                    });
                }
                return;
            }
        };
        match msg.body {
            Body::Query(q) => self.on_query(now, from, &msg.tid, msg.read_only, q),
            Body::Response(r) => {
                if self.on_response(now, from, &msg.tid, Some(r))
                    && let Some(ip) = msg.ip
                {
                    self.vote_external(from.ip(), ip);
                }
            }
            Body::Error { code, .. } => {
                trace!(peer = %from, code, "KRPC error");
                let _ = self.on_response(now, from, &msg.tid, None);
            }
        }
    }

    /// Fires expired transactions and periodic maintenance.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&(deadline, tid)) = self.deadlines.first() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_first();
            if let Some(p) = self.pending.remove(&tid) {
                if let Some(id) = p.id {
                    self.table.failed(&id, now);
                }
                if let Purpose::Lookup(lid, _) = p.purpose {
                    self.lookup_reply(now, lid, p.addr, None, 0);
                }
            }
        }
        if now >= self.next_maintenance {
            self.next_maintenance = now + self.config.maintenance_interval;
            self.maintain(now);
        }
    }

    /// The next datagram to send.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Dht::handle_timeout`] wants to be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let tx = self.deadlines.first().map(|&(d, _)| d);
        Some(tx.map_or(self.next_maintenance, |d| d.min(self.next_maintenance)))
    }

    // ---- queries we answer ----

    fn on_query(&mut self, now: Instant, from: SocketAddr, tid: &[u8], ro: bool, q: Query) {
        // BEP 43: a read-only node does not answer.
        if self.config.read_only || !self.allow(now, from.ip()) {
            return;
        }
        let id = q.id();
        // Routers only point the way (libtorrent never tables them either).
        if !ro && id != self.id && !self.routers.contains(&from) {
            let node = NodeInfo { id, addr: from };
            // A new querier is unverified: ping it once so it can become good. The table
            // has at most 160 * K slots, so this cannot amplify a flood without bound.
            if self.table.insert(node, now, false) == crate::routing::Inserted::Added {
                let q = Query::Ping { id: self.id };
                self.send_query(now, from, Some(id), q, Purpose::Other);
            }
        }
        let body = match q {
            Query::Ping { .. } => Body::Response(Response::new(self.id)),
            Query::FindNode { target, .. } => Body::Response(self.nodes_reply(&target, now)),
            Query::GetPeers {
                info_hash,
                noseed,
                scrape,
                ..
            } => {
                let mut r = self.nodes_reply(&info_hash, now);
                r.token = Some(self.token(from.ip(), &self.secret).to_vec());
                r.values = self.sample_peers(&info_hash, now, noseed);
                if scrape {
                    // BEP 33: the filters instead of a long list of values.
                    let (seeds, peers) = self.peers.filters(&info_hash, now, self.config.peer_ttl);
                    r.bf_seeds = Some(seeds);
                    r.bf_peers = Some(peers);
                    r.values.truncate(8);
                }
                Body::Response(r)
            }
            Query::AnnouncePeer {
                info_hash,
                port,
                implied_port,
                token,
                seed,
                ..
            } => {
                let ip = from.ip();
                if token != self.token(ip, &self.secret)
                    && token != self.token(ip, &self.prev_secret)
                {
                    Body::Error {
                        code: 203,
                        message: b"bad token".to_vec(),
                    }
                } else {
                    // BEP 5: implied_port means the UDP source port.
                    let port = if implied_port { from.port() } else { port };
                    if port == 0 {
                        Body::Error {
                            code: 203,
                            message: b"bad port".to_vec(),
                        }
                    } else {
                        let peer = SocketAddr::new(ip, port);
                        self.peers.insert(info_hash, peer, seed, now);
                        self.events
                            .push_back(Event::IncomingAnnounce { info_hash, peer });
                        Body::Response(Response::new(self.id))
                    }
                }
            }
            Query::Get { target, seq, .. } => {
                let mut r = self.nodes_reply(&target, now);
                r.token = Some(self.token(from.ip(), &self.secret).to_vec());
                match self.items.get(&target) {
                    Some(Item::Immutable { v }) => r.v = Some(v.clone()),
                    Some(Item::Mutable(m)) => {
                        r.seq = Some(m.seq);
                        // BEP 44: with `seq`, the value is only sent if ours is newer.
                        if seq.is_none_or(|s| m.seq > s) {
                            r.v = Some(m.v.clone());
                            r.k = Some(m.k);
                            r.sig = Some(m.sig);
                        }
                    }
                    None => {}
                }
                Body::Response(r)
            }
            Query::Put { token, item, .. } => {
                let ip = from.ip();
                if token != self.token(ip, &self.secret)
                    && token != self.token(ip, &self.prev_secret)
                {
                    Body::Error {
                        code: 203,
                        message: b"bad token".to_vec(),
                    }
                } else {
                    match self.items.put(now, ip, item) {
                        Ok(()) => Body::Response(Response::new(self.id)),
                        Err((code, text)) => Body::Error {
                            code,
                            message: text.to_vec(),
                        },
                    }
                }
            }
            Query::SampleInfohashes { target, .. } => {
                let mut r = self.nodes_reply(&target, now);
                let keys = self.peers.info_hashes();
                let n = keys.len();
                // A random window of the sorted keys, at most MAX_SAMPLES.
                let max = limits::MAX_SAMPLES.min(n);
                let start = if n > max {
                    self.rand_below(n - max + 1)
                } else {
                    0
                };
                r.samples = keys[start..start + max].to_vec();
                r.num = Some(i64::try_from(n).unwrap_or(i64::MAX));
                r.interval =
                    Some(i64::try_from(self.config.maintenance_interval.as_secs()).unwrap_or(60));
                Body::Response(r)
            }
        };
        let msg = Message {
            tid: tid.to_vec(),
            version: self.config.version.clone(),
            read_only: false,
            ip: Some(from),
            body,
        };
        self.transmits.push_back(Transmit {
            dest: from,
            payload: msg.encode(),
        });
    }

    fn nodes_reply(&self, target: &Sha1Hash, now: Instant) -> Response {
        let mut r = Response::new(self.id);
        let nodes = self
            .table
            .closest_confirmed(target, self.config.bucket_size, now);
        if self.config.ipv6 {
            r.nodes6 = nodes.into_iter().filter(|n| n.addr.is_ipv6()).collect();
        } else {
            r.nodes = nodes.into_iter().filter(|n| n.addr.is_ipv4()).collect();
        }
        r
    }

    fn token(&self, ip: IpAddr, secret: &[u8; 16]) -> [u8; 8] {
        let mut buf = Vec::with_capacity(32);
        buf.extend_from_slice(secret);
        match ip {
            IpAddr::V4(v4) => buf.extend_from_slice(&v4.octets()),
            IpAddr::V6(v6) => buf.extend_from_slice(&v6.octets()),
        }
        let h = Sha1Hash::digest(&buf);
        let mut t = [0u8; 8];
        t.copy_from_slice(&h.as_bytes()[..8]);
        t
    }

    /// Per-source-IP query budget. Source IPs hash (with a secret salt, so a sender
    /// cannot aim at a victim's slot) into a fixed table of one-second windows; colliding
    /// IPs share a budget, which can only make the limit stricter. A flood from many
    /// spoofed sources spreads over all slots and leaves each far below the limit, so
    /// legitimate sources keep being answered, and memory never grows.
    fn allow(&mut self, now: Instant, ip: IpAddr) -> bool {
        use std::hash::{Hash, Hasher};
        let limit = self.config.queries_per_ip_per_second;
        if self.rate.is_empty() {
            return true;
        }
        let mut h = std::hash::DefaultHasher::new();
        self.rate_salt.hash(&mut h);
        ip.hash(&mut h);
        let len = u64::try_from(self.rate.len()).unwrap_or(u64::MAX);
        let slot = usize::try_from(h.finish() % len).unwrap_or(0);
        let Some(e) = self.rate.get_mut(slot) else {
            return false;
        };
        if e.window_start
            .is_none_or(|w| now.saturating_duration_since(w) >= Duration::from_secs(1))
        {
            *e = RateEntry {
                window_start: Some(now),
                count: 0,
            };
        }
        e.count = e.count.saturating_add(1);
        if e.count > limit {
            trace!(%ip, "query rate limit");
        }
        e.count <= limit
    }

    fn sample_peers(
        &mut self,
        info_hash: &Sha1Hash,
        now: Instant,
        noseed: bool,
    ) -> Vec<SocketAddr> {
        let ttl = self.config.peer_ttl;
        let max = self.config.max_values_in_reply.min(limits::MAX_VALUES);
        let fresh = self
            .peers
            .fresh(info_hash, now, ttl, noseed, self.config.ipv6);
        if fresh.len() <= max {
            return fresh;
        }
        let start = self.rand_below(fresh.len());
        fresh
            .iter()
            .cycle()
            .skip(start)
            .take(max)
            .copied()
            .collect()
    }

    fn rand_below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        usize::try_from(self.rng.next_u64() % u64::try_from(n).unwrap_or(u64::MAX)).unwrap_or(0)
    }

    fn maintain(&mut self, now: Instant) {
        if now.saturating_duration_since(self.last_rotation) >= self.config.token_rotation {
            self.prev_secret = self.secret;
            self.rng.fill_bytes(&mut self.secret);
            self.last_rotation = now;
        }
        let ttl = self.config.peer_ttl;
        self.peers.expire(now, ttl);
        self.items.expire(now, self.config.item_ttl);
        // BEP 5: refresh buckets unchanged for 15 minutes.
        if let Some(since) = now.checked_sub(crate::routing::GOOD_FOR) {
            self.refresh(now, Some(since));
        }
        for node in self.table.questionable(3, now) {
            let q = Query::Ping { id: self.id };
            self.send_query(now, node.addr, Some(node.id), q, Purpose::Other);
        }
    }

    /// Starts a refresh lookup for each stale or sparse bucket, within the lookup cap.
    fn refresh(&mut self, now: Instant, since: Option<Instant>) {
        for index in self.table.stale_buckets(since) {
            if self.lookups.len() >= self.config.max_lookups / 2 {
                break;
            }
            let mut random = [0u8; 20];
            self.rng.fill_bytes(&mut random);
            let target = self.table.random_id_in_bucket(index, random);
            let _ = self.start(now, LookupKind::Refresh, target);
        }
    }

    // ---- our queries ----

    fn send_query(
        &mut self,
        now: Instant,
        addr: SocketAddr,
        id: Option<Sha1Hash>,
        q: Query,
        purpose: Purpose,
    ) -> bool {
        if self.pending.len() >= self.config.max_in_flight {
            return false;
        }
        let mut tid = self.next_tid;
        while self.pending.contains_key(&tid) {
            tid = tid.wrapping_add(1);
        }
        self.next_tid = tid.wrapping_add(1);
        let deadline = now + self.config.query_timeout;
        self.pending.insert(
            tid,
            Pending {
                addr,
                id,
                deadline,
                purpose,
            },
        );
        self.deadlines.insert((deadline, tid));
        let msg = Message {
            tid: tid.to_be_bytes().to_vec(),
            version: self.config.version.clone(),
            read_only: self.config.read_only,
            ip: None,
            body: Body::Query(q),
        };
        self.transmits.push_back(Transmit {
            dest: addr,
            payload: msg.encode(),
        });
        true
    }

    /// Matches a reply to our query; true when it answered one.
    fn on_response(
        &mut self,
        now: Instant,
        from: SocketAddr,
        tid: &[u8],
        r: Option<Response>,
    ) -> bool {
        let Ok(tid) = <[u8; 2]>::try_from(tid) else {
            return false;
        };
        let tid = u16::from_be_bytes(tid);
        let Some(p) = self.pending.get(&tid).copied() else {
            return false;
        };
        // Anti-spoofing: the reply must come from the address we asked.
        if p.addr != from {
            return false;
        }
        self.pending.remove(&tid);
        self.deadlines.remove(&(p.deadline, tid));
        let Some(r) = r else {
            if let Purpose::Lookup(lid, _) = p.purpose {
                self.lookup_reply(now, lid, from, None, 0);
            }
            return true;
        };
        if p.id.is_some_and(|id| id != r.id) {
            // A different node answers at that address now.
            if let Some(id) = p.id {
                self.table.remove(&id);
            }
        }
        if !self.routers.contains(&from) {
            self.table.insert(
                NodeInfo {
                    id: r.id,
                    addr: from,
                },
                now,
                true,
            );
        }
        if let Purpose::Lookup(lid, hop) = p.purpose {
            self.lookup_reply(now, lid, from, Some(r), hop);
        }
        true
    }

    /// BEP 42: counts the `ip` a responder saw us at. Only the last [`IP_VOTES`] votes are
    /// kept, one per responder IP; an IP with more than half of them becomes ours (ports
    /// are not compared: a NAT may map each destination to another one).
    fn vote_external(&mut self, voter: IpAddr, seen: SocketAddr) {
        if self.ip_votes.iter().any(|(v, _)| *v == voter) {
            return;
        }
        if self.ip_votes.len() >= IP_VOTES {
            self.ip_votes.pop_front();
        }
        self.ip_votes.push_back((voter, seen));
        let count = self
            .ip_votes
            .iter()
            .filter(|(_, s)| s.ip() == seen.ip())
            .count();
        if count >= IP_VOTES_NEEDED
            && count * 2 > self.ip_votes.len()
            && self.external.is_none_or(|e| e.ip() != seen.ip())
        {
            self.external = Some(seen);
            self.events.push_back(Event::ExternalAddress { addr: seen });
            if self.config.regenerate_id && !crate::routing::bep42_valid(&self.id, seen.ip()) {
                let mut random = [0u8; 20];
                self.rng.fill_bytes(&mut random);
                self.id = crate::routing::bep42_id(seen.ip(), random);
                self.table = self.table.rebuilt(self.id);
                self.events.push_back(Event::NodeIdChanged { id: self.id });
            }
        }
    }

    // ---- lookups ----

    fn start(
        &mut self,
        now: Instant,
        kind: LookupKind,
        target: Sha1Hash,
    ) -> Result<LookupId, CommandError> {
        self.start_with(now, kind, target, None, None)
    }

    fn start_with(
        &mut self,
        now: Instant,
        kind: LookupKind,
        target: Sha1Hash,
        put: Option<PutItem>,
        get: Option<GetState>,
    ) -> Result<LookupId, CommandError> {
        if self.lookups.len() >= self.config.max_lookups {
            return Err(CommandError::TooManyLookups);
        }
        let lid = LookupId(self.next_lookup);
        self.next_lookup += 1;
        let mut lookup = Lookup {
            kind,
            target,
            candidates: Vec::new(),
            seen: HashSet::new(),
            in_flight: 0,
            messages: 0,
            put,
            get,
            seed: false,
            scrape: (kind == LookupKind::Scrape).then(|| (Bloom::default(), Bloom::default())),
        };
        for node in self
            .table
            .closest(&target, limits::DEFAULT_MAX_CANDIDATES, now)
        {
            add_candidate(&mut lookup, node, 1);
        }
        self.lookups.insert(lid, lookup);
        if kind == LookupKind::Bootstrap || self.table.len() < self.config.bucket_size {
            for addr in self.routers.clone() {
                let q = self.query_for(lid, kind, target);
                if self.send_query(now, addr, None, q, Purpose::Lookup(lid, 0))
                    && let Some(l) = self.lookups.get_mut(&lid)
                {
                    l.seen.insert(addr);
                    l.in_flight += 1;
                    l.messages += 1;
                }
            }
        }
        self.advance(now, lid);
        Ok(lid)
    }

    fn query_for(&self, lid: LookupId, kind: LookupKind, target: Sha1Hash) -> Query {
        match kind {
            LookupKind::Get | LookupKind::Put => Query::Get {
                id: self.id,
                target,
                seq: self
                    .lookups
                    .get(&lid)
                    .and_then(|l| l.get.as_ref())
                    .and_then(|g| g.min_seq),
            },
            LookupKind::Bootstrap | LookupKind::FindNode | LookupKind::Refresh => Query::FindNode {
                id: self.id,
                target,
            },
            LookupKind::GetPeers | LookupKind::Announce(_) | LookupKind::Scrape => {
                Query::GetPeers {
                    id: self.id,
                    info_hash: target,
                    noseed: false,
                    scrape: kind == LookupKind::Scrape,
                }
            }
        }
    }

    fn lookup_reply(
        &mut self,
        now: Instant,
        lid: LookupId,
        from: SocketAddr,
        r: Option<Response>,
        hop: u32,
    ) {
        let ipv6 = self.config.ipv6;
        let own = self.id;
        let Some(l) = self.lookups.get_mut(&lid) else {
            return;
        };
        l.in_flight = l.in_flight.saturating_sub(1);
        let cand = l.candidates.iter_mut().find(|c| c.node.addr == from);
        match r {
            None => {
                if let Some(c) = cand {
                    c.state = CandState::Failed;
                }
            }
            Some(r) => {
                if let Some(c) = cand {
                    if c.node.id == r.id {
                        c.state = CandState::Responded;
                        c.token.clone_from(&r.token);
                    } else {
                        c.state = CandState::Failed;
                    }
                }
                let nodes = if ipv6 { &r.nodes6 } else { &r.nodes };
                for n in nodes {
                    if n.id != own {
                        add_candidate(l, *n, hop + 1);
                    }
                }
                if let Some((seeds, peers)) = l.scrape.as_mut() {
                    if let Some(b) = &r.bf_seeds {
                        seeds.union(b);
                    }
                    if let Some(b) = &r.bf_peers {
                        peers.union(b);
                    }
                }
                if let (Some(v), Some(get)) = (&r.v, l.get.as_mut())
                    && let Some(item) = accept_item(l.target, get, v, &r)
                {
                    self.events.push_back(Event::Item {
                        lookup: lid,
                        target: l.target,
                        item,
                    });
                }
                let mut peers = r.values;
                peers.retain(|p| crate::krpc::plausible_peer(*p, from));
                if !peers.is_empty()
                    && matches!(
                        l.kind,
                        LookupKind::GetPeers | LookupKind::Announce(_) | LookupKind::Scrape
                    )
                {
                    self.events.push_back(Event::Peers {
                        lookup: lid,
                        info_hash: l.target,
                        peers,
                    });
                }
            }
        }
        self.advance(now, lid);
    }

    fn advance(&mut self, now: Instant, lid: LookupId) {
        let k = self.config.bucket_size;
        let alpha = self.config.alpha.max(1);
        loop {
            let Some(l) = self.lookups.get_mut(&lid) else {
                return;
            };
            if l.in_flight >= alpha {
                return;
            }
            // The next unqueried candidate among the K closest that have not failed.
            let next = l
                .candidates
                .iter()
                .filter(|c| c.state != CandState::Failed)
                .take(k)
                .position(|c| c.state == CandState::New);
            let Some(pos) = next.map(|p| {
                // `position` counted only non-failed entries: map back to an index.
                l.candidates
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| c.state != CandState::Failed)
                    .nth(p)
                    .map_or(0, |(i, _)| i)
            }) else {
                break;
            };
            let c = &mut l.candidates[pos];
            c.state = CandState::InFlight;
            let (node, hop, kind, target) = (c.node, c.hop, l.kind, l.target);
            l.in_flight += 1;
            l.messages += 1;
            let q = self.query_for(lid, kind, target);
            if !self.send_query(now, node.addr, Some(node.id), q, Purpose::Lookup(lid, hop)) {
                // Out of transaction slots: treat as failed so the lookup can finish.
                if let Some(l) = self.lookups.get_mut(&lid) {
                    l.in_flight -= 1;
                    if let Some(c) = l.candidates.get_mut(pos) {
                        c.state = CandState::Failed;
                    }
                }
            }
        }
        let done = self.lookups.get(&lid).is_some_and(|l| l.in_flight == 0);
        if done {
            self.finish(now, lid);
        }
    }

    fn finish(&mut self, now: Instant, lid: LookupId) {
        let Some(l) = self.lookups.remove(&lid) else {
            return;
        };
        let k = self.config.bucket_size;
        let responded: Vec<&Candidate> = l
            .candidates
            .iter()
            .filter(|c| c.state == CandState::Responded)
            .take(k)
            .collect();
        let rounds = responded.iter().map(|c| c.hop).max().unwrap_or(0);
        let closest: Vec<NodeInfo> = responded.iter().map(|c| c.node).collect();
        let mut announced = 0;
        if let (LookupKind::Put, Some(item)) = (l.kind, &l.put) {
            let targets: Vec<(NodeInfo, Vec<u8>)> = responded
                .iter()
                .filter_map(|c| c.token.clone().map(|t| (c.node, t)))
                .collect();
            for (node, token) in targets {
                let q = Query::Put {
                    id: self.id,
                    token,
                    item: item.clone(),
                };
                if self.send_query(now, node.addr, Some(node.id), q, Purpose::Other) {
                    announced += 1;
                }
            }
        }
        if let LookupKind::Announce(port) = l.kind {
            let targets: Vec<(NodeInfo, Vec<u8>)> = responded
                .iter()
                .filter_map(|c| c.token.clone().map(|t| (c.node, t)))
                .collect();
            for (node, token) in targets {
                let q = Query::AnnouncePeer {
                    id: self.id,
                    info_hash: l.target,
                    port: port.unwrap_or(0),
                    implied_port: port.is_none(),
                    token,
                    seed: l.seed,
                };
                if self.send_query(now, node.addr, Some(node.id), q, Purpose::Other) {
                    announced += 1;
                }
            }
        }
        if let Some((seeds, peers)) = &l.scrape {
            self.events.push_back(Event::Scrape {
                lookup: lid,
                info_hash: l.target,
                seeds: seeds.estimate(),
                downloaders: peers.estimate(),
            });
        }
        self.events.push_back(Event::LookupDone {
            lookup: lid,
            kind: l.kind,
            target: l.target,
            closest,
            rounds,
            messages: l.messages,
            announced,
        });
        if self.bootstrap == Some(lid) {
            self.bootstrap = None;
            // Fill the far buckets: the bootstrap only walked towards our own id.
            self.refresh(now, None);
            self.events.push_back(Event::BootstrapDone {
                nodes: self.table.len(),
            });
        }
    }
}

/// Votes kept for our external address (BEP 42).
const IP_VOTES: usize = 32;
/// Votes an address needs (and a majority of those kept) to become our external address.
const IP_VOTES_NEEDED: usize = 5;

/// A BEP 44 item from a `get` reply, if it is valid for this lookup and news to it.
fn accept_item(target: Sha1Hash, get: &mut GetState, v: &[u8], r: &Response) -> Option<Item> {
    match &get.mutable {
        None => {
            // Immutable: the value must hash to the target; report it once.
            if get.best_seq.is_some() || immutable_target(v) != target {
                return None;
            }
            get.best_seq = Some(0);
            Some(Item::Immutable { v: v.to_vec() })
        }
        Some((k, salt)) => {
            let (Some(rk), Some(sig), Some(seq)) = (r.k, r.sig, r.seq) else {
                return None;
            };
            if rk != *k || get.best_seq.is_some_and(|b| seq <= b) {
                return None;
            }
            let item = MutableItem {
                k: rk,
                salt: salt.clone(),
                seq,
                v: v.to_vec(),
                sig,
            };
            if !item.verify() {
                return None;
            }
            get.best_seq = Some(seq);
            Some(Item::Mutable(item))
        }
    }
}

/// Inserts `node` in distance order, keeping at most `DEFAULT_MAX_CANDIDATES`.
fn add_candidate(l: &mut Lookup, node: NodeInfo, hop: u32) {
    if !l.seen.insert(node.addr) {
        return;
    }
    let d = node.id ^ l.target;
    let pos = l.candidates.partition_point(|c| (c.node.id ^ l.target) < d);
    if pos >= limits::DEFAULT_MAX_CANDIDATES {
        return;
    }
    l.candidates.insert(
        pos,
        Candidate {
            node,
            state: CandState::New,
            hop,
            token: None,
        },
    );
    if l.candidates.len() > limits::DEFAULT_MAX_CANDIDATES {
        // Drop the farthest unqueried candidate; never one we await a reply from.
        if let Some(i) = l
            .candidates
            .iter()
            .rposition(|c| c.state != CandState::InFlight)
        {
            l.candidates.remove(i);
        }
    }
}
