//! Whole swarms of [`Engine`]s in one process on a virtual clock: quinn-proto's `Pair`
//! for the BitTorrent engine (behind the `sim` feature).
//!
//! A [`Sim`] is N engine nodes sharing one torrent, the driver of each (what lt-session is
//! in production) and the network between them:
//!
//! ```text
//!   SimBuilder ── build(start) ──▶ Sim: N nodes, each an Engine with one torrent, a MemDisk
//!                                   │    (a Vec<u8>) and an uplink of `upload` bytes/s
//!   step(): the earliest event ─────┤
//!     a frame arrives on a link ────┼─▶ Input::Received (or the MSE handshake, or Incoming)
//!     a connect completes/fails ────┼─▶ Input::Connected | ConnectFailed
//!     a write leaves the uplink ────┼─▶ Input::Drained
//!     a node's timer is due ────────┼─▶ Input::Timeout
//!                                   ▼
//!   each Action the engine emits is carried out at once: Connect opens a socket on the link
//!   to the node with that address, Send puts a frame on the link, Disk(job) runs on the
//!   node's MemDisk and answers Input::Disk, Announce asks the sim's tracker (every other
//!   node), MetadataReceived remakes the MemDisk for the metadata received.
//! ```
//!
//! **Links.** Each pair of nodes has a [`Link`]: one-way latency, an optional bandwidth per
//! direction (on top of each node's uplink), loss, jitter, MSE and which transports connect.
//! Links are reliable in-order byte streams, as TCP and uTP are to the engine: a lost frame
//! is sent again after the link's `rto` (costing the sender's uplink again) and a delayed
//! frame arrives late; either way the frames behind it on the same connection wait
//! (head-of-line blocking), while other connections go on.
//!
//! **Connections** are made as lt-session's `io` makes them. A connect takes one round trip
//! (or is refused after one, when the link does not carry the transport or the peer does
//! not accept it). When the engine asks for encryption on a link with [`Link::mse`], the
//! two nodes run lt-wire's MSE/PE handshake ([`lt_wire::mse::MseHandshake`]) over the
//! link; the accepting side tells plaintext from MSE by the first bytes
//! ([`lt_wire::mse::classify_incoming`]), applies its `in_enc_policy` and asks its engine
//! which torrent `HASH('req2', SKEY)` names ([`Engine::torrent_for_skey`]). The engines get
//! what the handshake left in
//! [`Handshake`](crate::Handshake) (the RC4 streams, bytes read past it) and encrypt and
//! decrypt the rest of the stream themselves; the frames on the link are the ciphertext.
//! On a link without MSE, connections are plaintext whatever the engine asks.
//!
//! **Disk.** Each node's storage is a `Vec<u8>`: [`DiskJob::WritePiece`](crate::DiskJob)
//! hashes the blocks (SHA-1, from the torrent's piece hashes) and writes only a piece that
//! matches; `WriteBlocks` writes and, when `last`, hashes the whole piece back from the
//! stored bytes; `Check` hashes every piece with bytes in it. Corrupt seeds
//! ([`SimBuilder::corrupt_seeds`]) flip every byte they read for a peer.
//!
//! **Determinism.** Everything random (the payload, each engine's generator and peer id,
//! MSE keys, loss and jitter) is drawn from one seed: [`SimBuilder::new`]'s, unless the
//! environment variable `LT_SIM_SEED` is set, which replays a run. The same seed gives the
//! same run, event for event. When a test panics while a `Sim` is alive, the sim prints its
//! seed on stderr. The sim reads no clock: the caller passes the start `Instant`, and
//! [`Sim::step`] moves the virtual clock to the next event.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use lt_engine::sim::SimBuilder;
//!
//! let mut sim = SimBuilder::new(1)
//!     .leechers(2)
//!     .payload(256 << 10, 16 << 10)
//!     .build(Instant::now())?;
//! assert!(sim.run(Duration::from_secs(60)), "{:?}", sim.finish_times());
//! sim.verify()?;
//! # Ok::<(), lt_engine::sim::SimError>(())
//! ```

mod disk;
mod net;

use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use lt_core::{Fingerprint, PeerId};
use lt_metainfo::{CreateTorrent, TorrentInfo};
use lt_tracker::{AnnounceResponse, Peer, ScrapeEntry};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore as _, SeedableRng as _};

use crate::{
    Action, AddError, AddTorrent, Alert, AlertCategory, ConnId, Engine, Input, PeerInfo, Settings,
    TorrentId, TorrentState, TorrentStatus,
};

use disk::{MemDisk, Outcome};
pub use net::{Link, LinkStats};

/// The environment variable that overrides every sim's seed, to replay a failed run.
pub const SEED_VAR: &str = "LT_SIM_SEED";

/// Steps at one instant of virtual time before [`Sim::step`] calls it a livelock.
const LIVELOCK_STEPS: u64 = 1_000_000;

/// What a node starts as.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[non_exhaustive]
pub enum Role {
    /// Has the whole payload.
    Seed,
    /// Has the whole payload and serves every block corrupted.
    CorruptSeed,
    /// Starts with nothing (or only a magnet link).
    Leecher,
}

/// A sim could not be built or did not end as it should.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// The payload could not be made into a torrent (a bad piece size).
    #[error("making the torrent: {0}")]
    Torrent(#[from] lt_metainfo::Error),
    /// An engine refused the torrent.
    #[error("adding the torrent: {0}")]
    Add(#[from] AddError),
    /// More nodes than the sim has addresses for.
    #[error("{0} nodes: the sim has addresses for at most 250")]
    TooManyNodes(usize),
    /// [`Sim::verify`] found a node without the payload.
    #[error("node {node}: {problem} (replay with {SEED_VAR}={seed})")]
    Verify {
        /// The sim's seed.
        seed: u64,
        /// The node.
        node: usize,
        /// What is wrong.
        problem: String,
    },
}

/// What the sim saw of one node, from its alerts and its disk.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct NodeStats {
    /// When [`Alert::TorrentFinished`] came, since the start.
    pub finished_at: Option<Duration>,
    /// The torrent's state after its last [`Alert::StateChanged`].
    pub state: Option<TorrentState>,
    /// [`Alert::PeerBanned`]s.
    pub banned: usize,
    /// [`Alert::HashFailed`]s.
    pub hash_failed: usize,
    /// [`Alert::PeerConnected`]s.
    pub peers_connected: usize,
    /// [`Action::MetadataReceived`] came (a magnet's metadata).
    pub got_metadata: bool,
    /// The most bytes of blocks one write job carried.
    pub largest_write: usize,
}

/// One engine with its torrent, disk and uplink.
pub struct Node {
    engine: Engine,
    torrent: TorrentId,
    addr: SocketAddr,
    role: Role,
    /// Bytes per second the uplink sends (0: unlimited).
    upload: u64,
    up_busy: Instant,
    disk: MemDisk,
    expect_finish: bool,
    stats: NodeStats,
    alerts: Option<Vec<(Duration, Alert)>>,
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Node")
            .field("addr", &self.addr)
            .field("role", &self.role)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Node {
    /// The engine.
    #[must_use]
    pub const fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The engine, for commands. The sim carries out the actions they leave at its next
    /// [`Sim::step`].
    pub const fn engine_mut(&mut self) -> &mut Engine {
        &mut self.engine
    }

    /// The node's torrent.
    #[must_use]
    pub const fn torrent(&self) -> TorrentId {
        self.torrent
    }

    /// The address it listens on.
    #[must_use]
    pub const fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What it started as.
    #[must_use]
    pub const fn role(&self) -> Role {
        self.role
    }

    /// Its uplink in bytes per second (0: unlimited).
    #[must_use]
    pub const fn upload(&self) -> u64 {
        self.upload
    }

    /// What the sim saw of it.
    #[must_use]
    pub const fn stats(&self) -> &NodeStats {
        &self.stats
    }

    /// The bytes on its disk.
    #[must_use]
    pub fn data(&self) -> &[u8] {
        self.disk.data()
    }

    /// Its alerts with their times since the start, when [`SimBuilder::record_alerts`].
    #[must_use]
    pub fn alerts(&self) -> &[(Duration, Alert)] {
        self.alerts.as_deref().unwrap_or(&[])
    }

    /// Whether its torrent is complete (finished or seeding).
    #[must_use]
    pub fn is_done(&self) -> bool {
        self.stats.finished_at.is_some() || self.stats.state == Some(TorrentState::Seeding)
    }
}

type SettingsHook = Box<dyn FnMut(usize, Role, &mut Settings)>;
type LinkHook = Box<dyn Fn(usize, usize) -> Link>;

/// Builds a [`Sim`]. Nodes are numbered seeds first, then corrupt seeds, then leechers.
pub struct SimBuilder {
    seed: u64,
    seeds: usize,
    corrupt_seeds: usize,
    leechers: usize,
    len: usize,
    piece_size: u32,
    magnet: bool,
    tracker: bool,
    seed_upload: u64,
    leecher_upload: u64,
    link: Link,
    links: Option<LinkHook>,
    settings: Option<SettingsHook>,
    record_alerts: bool,
}

impl fmt::Debug for SimBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimBuilder")
            .field("seed", &self.seed)
            .field("seeds", &self.seeds)
            .field("corrupt_seeds", &self.corrupt_seeds)
            .field("leechers", &self.leechers)
            .field("len", &self.len)
            .field("piece_size", &self.piece_size)
            .finish_non_exhaustive()
    }
}

impl SimBuilder {
    /// A sim of one seed and one leecher sharing 1 MiB in 32 KiB pieces, over links of
    /// [`Link::default`], seeded with `seed` (or [`SEED_VAR`] when set).
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            seeds: 1,
            corrupt_seeds: 0,
            leechers: 1,
            len: 1 << 20,
            piece_size: 32 << 10,
            magnet: false,
            tracker: true,
            seed_upload: 4_000_000,
            leecher_upload: 2_000_000,
            link: Link::default(),
            links: None,
            settings: None,
            record_alerts: false,
        }
    }

    /// Seeds (default 1).
    #[must_use]
    pub const fn seeds(mut self, n: usize) -> Self {
        self.seeds = n;
        self
    }

    /// Seeds that serve corrupt data (default 0); a run does not wait for them and
    /// [`Sim::verify`] skips them.
    #[must_use]
    pub const fn corrupt_seeds(mut self, n: usize) -> Self {
        self.corrupt_seeds = n;
        self
    }

    /// Leechers (default 1).
    #[must_use]
    pub const fn leechers(mut self, n: usize) -> Self {
        self.leechers = n;
        self
    }

    /// The payload's size in bytes and the piece size (default 1 MiB in 32 KiB pieces;
    /// the piece size must be a power of two of at least 16 KiB).
    #[must_use]
    pub const fn payload(mut self, len: usize, piece_size: u32) -> Self {
        self.len = len;
        self.piece_size = piece_size;
        self
    }

    /// Leechers start from a magnet link and fetch the metadata from peers (BEP 9).
    #[must_use]
    pub const fn magnet_leechers(mut self, yes: bool) -> Self {
        self.magnet = yes;
        self
    }

    /// Whether the sim's tracker hands out the other nodes (default true). Without it,
    /// peers come only from [`Engine::connect_peer`] and PEX.
    #[must_use]
    pub const fn tracker(mut self, yes: bool) -> Self {
        self.tracker = yes;
        self
    }

    /// The uplinks in bytes per second of seeds and of leechers (default 4 MB/s and
    /// 2 MB/s; 0 is unlimited). [`Sim::set_upload`] changes one node's.
    #[must_use]
    pub const fn upload(mut self, seeds: u64, leechers: u64) -> Self {
        self.seed_upload = seeds;
        self.leecher_upload = leechers;
        self
    }

    /// The link between every two nodes (default [`Link::default`]).
    #[must_use]
    pub fn link(mut self, link: Link) -> Self {
        self.link = link;
        self
    }

    /// The link between nodes `a < b`, per pair; overrides [`link`](Self::link).
    #[must_use]
    pub fn links(mut self, f: impl Fn(usize, usize) -> Link + 'static) -> Self {
        self.links = Some(Box::new(f));
        self
    }

    /// Changes each node's settings after the sim's defaults (which allow several
    /// connections per IP, unchoke every 5 s, rotate the optimistic unchoke every 10 s
    /// and tick every 100 ms).
    #[must_use]
    pub fn settings(mut self, f: impl FnMut(usize, Role, &mut Settings) + 'static) -> Self {
        self.settings = Some(Box::new(f));
        self
    }

    /// Keep every alert of every node ([`Node::alerts`]).
    #[must_use]
    pub const fn record_alerts(mut self, yes: bool) -> Self {
        self.record_alerts = yes;
        self
    }

    /// The sim, its clock starting at `start`.
    ///
    /// # Errors
    /// [`SimError::Torrent`] for a bad piece size, [`SimError::TooManyNodes`] past 250
    /// nodes, [`SimError::Add`] if an engine refuses the torrent.
    pub fn build(mut self, start: Instant) -> Result<Sim, SimError> {
        let seed = seed_from_env().unwrap_or(self.seed);
        let total = self.seeds + self.corrupt_seeds + self.leechers;
        if total > 250 {
            return Err(SimError::TooManyNodes(total));
        }
        let payload = payload(self.len, seed);
        let bytes = CreateTorrent::from_memory("sim.bin", payload.clone())
            .piece_size(self.piece_size)
            .tracker("http://tracker.sim/announce")
            .generate()?;
        let info = Arc::new(TorrentInfo::from_bytes(&bytes)?);
        let mut nodes = Vec::with_capacity(total);
        for i in 0..total {
            let role = if i < self.seeds {
                Role::Seed
            } else if i < self.seeds + self.corrupt_seeds {
                Role::CorruptSeed
            } else {
                Role::Leecher
            };
            let mut settings = Settings {
                allow_multiple_connections_per_ip: true,
                unchoke_interval: Duration::from_secs(5),
                optimistic_unchoke_interval: Duration::from_secs(10),
                tick_interval: Duration::from_millis(100),
                ..Settings::default()
            };
            if let Some(f) = &mut self.settings {
                f(i, role, &mut settings);
            }
            // Both fit: at most 250 nodes.
            let index = u8::try_from(i).unwrap_or(u8::MAX);
            let mut rng_seed = [0u8; 32];
            rng_seed[..8].copy_from_slice(&seed.to_le_bytes());
            rng_seed[8] = index;
            let mut id = [0u8; 12];
            id[..8].copy_from_slice(&seed.to_le_bytes());
            id[8] = index;
            let peer_id = PeerId::generate(&Fingerprint::new(*b"LT", 0, 1, 0, 0), id);
            let mut engine = Engine::new(settings, peer_id, rng_seed, start);
            engine.set_alert_mask(AlertCategory::ALL);
            let port = 6881 + u16::from(index);
            engine.set_listen_port(port);
            let seeded = role != Role::Leecher;
            let add = if self.magnet && !seeded {
                AddTorrent::from_magnet(&info.magnet_link())?
            } else {
                AddTorrent::new(Arc::clone(&info))
            };
            let mut disk = if seeded {
                MemDisk::full(Arc::clone(&add.info), &payload)
            } else {
                MemDisk::empty(Arc::clone(&add.info))
            };
            disk.corrupt = role == Role::CorruptSeed;
            let torrent = engine.add_torrent(start, add)?;
            nodes.push(Node {
                engine,
                torrent,
                addr: SocketAddr::from((Ipv4Addr::new(10, 0, 0, index + 1), port)),
                role,
                upload: if seeded {
                    self.seed_upload
                } else {
                    self.leecher_upload
                },
                up_busy: start,
                disk,
                expect_finish: role != Role::CorruptSeed,
                stats: NodeStats::default(),
                alerts: self.record_alerts.then(Vec::new),
            });
        }
        let mut links = BTreeMap::new();
        if let Some(f) = &self.links {
            for a in 0..total {
                for b in a + 1..total {
                    links.insert((a, b), net::LinkState::new(f(a, b), start));
                }
            }
        }
        Ok(Sim {
            seed,
            start,
            now: start,
            info,
            payload,
            nodes,
            net: net::Net::new(self.link, links),
            events: BTreeMap::new(),
            seq: 0,
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x5157_5349_4d00_0000),
            tracker: self.tracker,
            same_instant: 0,
        })
    }
}

/// Something that happens at an instant of virtual time.
enum Event {
    /// A connect (the initiator's socket) completed.
    Established { sock: net::SockId },
    /// A connect was refused.
    Refused { node: usize, conn: ConnId },
    /// A raced uTP connect was refused: the driver dials TCP at once.
    RaceTcp {
        node: usize,
        conn: ConnId,
        addr: SocketAddr,
        info_hash: lt_core::Sha1Hash,
        encrypt: bool,
    },
    /// Bytes arrive at a socket.
    Frame { sock: net::SockId, bytes: BytesMut },
    /// The other end closed.
    Fin { sock: net::SockId },
    /// A node's uplink finished writing bytes of a connection.
    Drained {
        node: usize,
        conn: ConnId,
        written: usize,
    },
}

/// N engines, their disks and the links between them, on a virtual clock. See the
/// [module docs](self).
pub struct Sim {
    seed: u64,
    start: Instant,
    now: Instant,
    info: Arc<TorrentInfo>,
    payload: Vec<u8>,
    nodes: Vec<Node>,
    net: net::Net,
    events: BTreeMap<(Instant, u64), Event>,
    seq: u64,
    rng: ChaCha8Rng,
    tracker: bool,
    /// Steps taken at the current instant (the livelock guard).
    same_instant: u64,
}

impl fmt::Debug for Sim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sim")
            .field("seed", &self.seed)
            .field("elapsed", &self.elapsed())
            .field("nodes", &self.nodes)
            .finish_non_exhaustive()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // The one way to hand the seed to whoever reads the failed test's output.
            #[allow(clippy::print_stderr)]
            {
                eprintln!(
                    "sim: seed {} at {:?} of virtual time; replay with {SEED_VAR}={}",
                    self.seed,
                    self.elapsed(),
                    self.seed
                );
            }
        }
    }
}

impl Sim {
    /// The seed this run was drawn from.
    #[must_use]
    pub const fn seed(&self) -> u64 {
        self.seed
    }

    /// When the virtual clock started.
    #[must_use]
    pub const fn start(&self) -> Instant {
        self.start
    }

    /// The virtual clock.
    #[must_use]
    pub const fn now(&self) -> Instant {
        self.now
    }

    /// Virtual time since the start.
    #[must_use]
    pub fn elapsed(&self) -> Duration {
        self.now.duration_since(self.start)
    }

    /// The torrent every node shares.
    #[must_use]
    pub const fn info(&self) -> &Arc<TorrentInfo> {
        &self.info
    }

    /// The torrent's bytes.
    #[must_use]
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// Every node.
    #[must_use]
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// Node `i`.
    ///
    /// # Panics
    /// If there is no node `i`.
    #[must_use]
    pub fn node(&self, i: usize) -> &Node {
        &self.nodes[i]
    }

    /// Node `i`, to give its engine commands.
    ///
    /// # Panics
    /// If there is no node `i`.
    pub fn node_mut(&mut self, i: usize) -> &mut Node {
        &mut self.nodes[i]
    }

    /// Node `i`'s torrent status now.
    ///
    /// # Panics
    /// If there is no node `i`.
    #[must_use]
    pub fn status(&self, i: usize) -> Option<TorrentStatus> {
        let n = &self.nodes[i];
        n.engine.status(self.now, n.torrent)
    }

    /// Node `i`'s connected peers now.
    ///
    /// # Panics
    /// If there is no node `i`.
    #[must_use]
    pub fn peer_info(&self, i: usize) -> Vec<PeerInfo> {
        let n = &self.nodes[i];
        n.engine.peer_info(n.torrent)
    }

    /// The node listening on `addr`.
    #[must_use]
    pub fn node_of(&self, addr: SocketAddr) -> Option<usize> {
        self.nodes.iter().position(|n| n.addr == addr)
    }

    /// Changes node `i`'s uplink (bytes per second, 0 unlimited).
    ///
    /// # Panics
    /// If there is no node `i`.
    pub fn set_upload(&mut self, i: usize, bytes_per_sec: u64) {
        self.nodes[i].upload = bytes_per_sec;
    }

    /// Whether [`run`](Self::run) waits for node `i` and [`verify`](Self::verify) checks
    /// it (default: every node but corrupt seeds). A node in share mode never completes.
    ///
    /// # Panics
    /// If there is no node `i`.
    pub fn set_expect_finish(&mut self, i: usize, yes: bool) {
        self.nodes[i].expect_finish = yes;
    }

    /// Changes the link between nodes `a` and `b` for frames sent from now on.
    pub fn set_link(&mut self, a: usize, b: usize, link: Link) {
        let now = self.now;
        self.net.link_mut(a, b, now).cfg = link;
    }

    /// What went over the link between nodes `a` and `b`.
    #[must_use]
    pub fn link_stats(&self, a: usize, b: usize) -> LinkStats {
        self.net.stats(a, b)
    }

    /// What went over every link.
    #[must_use]
    pub fn total_link_stats(&self) -> LinkStats {
        self.net.total_stats()
    }

    /// When each node finished (its [`Alert::TorrentFinished`]), since the start.
    #[must_use]
    pub fn finish_times(&self) -> Vec<Option<Duration>> {
        self.nodes.iter().map(|n| n.stats.finished_at).collect()
    }

    /// Whether every node the run waits for ([`set_expect_finish`](Self::set_expect_finish))
    /// has the whole torrent.
    #[must_use]
    pub fn all_done(&self) -> bool {
        self.nodes.iter().all(|n| !n.expect_finish || n.is_done())
    }

    /// Handles the earliest event: carries out the actions engines left (commands given
    /// through [`Node::engine_mut`]), then moves the clock to the next frame, connect,
    /// write or timer and hands it to its node. Returns the virtual time.
    ///
    /// # Panics
    /// When a million steps pass without the clock moving (a livelock), naming the seed.
    pub fn step(&mut self) -> Instant {
        for i in 0..self.nodes.len() {
            self.drain(i);
        }
        let event = self.events.first_key_value().map(|(&(at, _), _)| at);
        let timer = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.engine.poll_timeout(), i))
            .min();
        let before = self.now;
        match (event, timer) {
            (Some(at), Some((t, _))) if at <= t => self.next_event(),
            (Some(_), None) => self.next_event(),
            (_, Some((t, i))) => {
                self.now = self.now.max(t);
                let _ = self.nodes[i].engine.handle_input(self.now, Input::Timeout);
                self.drain(i);
            }
            (None, None) => {}
        }
        if self.now == before {
            self.same_instant += 1;
            assert!(
                self.same_instant < LIVELOCK_STEPS,
                "livelock: {LIVELOCK_STEPS} steps at {:?} (replay with {SEED_VAR}={})",
                self.elapsed(),
                self.seed
            );
        } else {
            self.same_instant = 0;
        }
        self.now
    }

    /// Steps until every node it waits for has the whole torrent ([`all_done`](Self::all_done))
    /// or the next event lies past `bound` of virtual time since the start; then the clock
    /// stands at `bound`. Returns whether everyone finished. Call again with a later bound
    /// to go on.
    pub fn run(&mut self, bound: Duration) -> bool {
        self.run_until(bound, Self::all_done)
    }

    /// Steps until `done` holds or the next event lies past `bound` since the start (then
    /// the clock stands at `bound`). Returns whether `done` held.
    pub fn run_until(&mut self, bound: Duration, mut done: impl FnMut(&Self) -> bool) -> bool {
        let end = self.start + bound;
        loop {
            for i in 0..self.nodes.len() {
                self.drain(i);
            }
            if done(self) {
                return true;
            }
            if self.next_at().is_none_or(|t| t > end) {
                self.now = self.now.max(end);
                return done(self);
            }
            self.step();
        }
    }

    /// Checks that every node the run waits for is seeding and holds exactly the payload.
    ///
    /// # Errors
    /// [`SimError::Verify`] naming the first node that does not.
    pub fn verify(&self) -> Result<(), SimError> {
        for (i, n) in self.nodes.iter().enumerate() {
            if !n.expect_finish {
                continue;
            }
            let fail = |problem: String| SimError::Verify {
                seed: self.seed,
                node: i,
                problem,
            };
            let st = n
                .engine
                .status(self.now, n.torrent)
                .ok_or_else(|| fail("no torrent".into()))?;
            if st.state != TorrentState::Seeding || !st.pieces.all() {
                return Err(fail(format!(
                    "{} with {} of {} pieces",
                    st.state,
                    st.num_pieces,
                    self.info.num_pieces()
                )));
            }
            if n.disk.data() != self.payload.as_slice() {
                let first = n
                    .disk
                    .data()
                    .iter()
                    .zip(&self.payload)
                    .position(|(a, b)| a != b);
                return Err(fail(format!(
                    "holds other bytes ({} of {}; first difference at {first:?})",
                    n.disk.data().len(),
                    self.payload.len()
                )));
            }
        }
        Ok(())
    }

    /// When the next event or timer is due.
    fn next_at(&self) -> Option<Instant> {
        let event = self.events.first_key_value().map(|(&(at, _), _)| at);
        let timer = self.nodes.iter().map(|n| n.engine.poll_timeout()).min();
        match (event, timer) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn schedule(&mut self, at: Instant, event: Event) {
        self.seq += 1;
        self.events.insert((at, self.seq), event);
    }

    fn next_event(&mut self) {
        let Some(((at, _), event)) = self.events.pop_first() else {
            return;
        };
        self.now = self.now.max(at);
        match event {
            Event::Established { sock } => self.established(sock),
            Event::Refused { node, conn } => {
                let error = crate::IoError::new(std::io::ErrorKind::ConnectionRefused, "refused");
                self.input(node, Input::ConnectFailed { conn, error });
            }
            Event::RaceTcp {
                node,
                conn,
                addr,
                info_hash,
                encrypt,
            } => {
                self.connect(
                    node,
                    conn,
                    addr,
                    crate::Transport::Tcp,
                    info_hash,
                    encrypt,
                    false,
                );
                self.drain(node);
            }
            Event::Frame { sock, bytes } => self.frame(sock, bytes),
            Event::Fin { sock } => self.fin(sock),
            Event::Drained {
                node,
                conn,
                written,
            } => self.input(node, Input::Drained { conn, written }),
        }
    }

    /// Hands `input` to node `i` and carries out what follows.
    fn input(&mut self, i: usize, input: Input) {
        let _ = self.nodes[i].engine.handle_input(self.now, input);
        self.drain(i);
    }

    /// Carries out every action of node `i` and reads its alerts.
    fn drain(&mut self, i: usize) {
        while let Some(action) = self.nodes[i].engine.poll_action() {
            match action {
                Action::Connect {
                    conn,
                    addr,
                    transport,
                    info_hash,
                    encrypt,
                    ssl: false,
                    race_tcp_after,
                } => self.connect(
                    i,
                    conn,
                    addr,
                    transport,
                    info_hash,
                    encrypt,
                    race_tcp_after.is_some(),
                ),
                // The simulation has no TLS: an SSL torrent's dial fails.
                Action::Connect { conn, .. } => {
                    let error =
                        crate::IoError::new(std::io::ErrorKind::Unsupported, "no TLS in the sim");
                    let _ = self.nodes[i]
                        .engine
                        .handle_input(self.now, Input::ConnectFailed { conn, error });
                }
                Action::Send { conn, bufs } => self.send(i, conn, &bufs),
                Action::Close { conn } => self.close(i, conn),
                Action::Disk(job) => {
                    let outcome = self.nodes[i].disk.run(job);
                    let node = &mut self.nodes[i];
                    node.stats.largest_write = node.disk.largest_write;
                    match outcome {
                        Outcome::Done(done) => {
                            let _ = node.engine.handle_input(self.now, Input::Disk(done));
                        }
                        Outcome::Alert(alert) => node.engine.post_alert(alert),
                        Outcome::Nothing => {}
                    }
                }
                Action::MetadataReceived { info, .. } => {
                    let node = &mut self.nodes[i];
                    node.disk.remake(info);
                    node.stats.got_metadata = true;
                }
                Action::Announce {
                    torrent, tracker, ..
                } => {
                    let peers = if self.tracker {
                        self.nodes
                            .iter()
                            .enumerate()
                            .filter(|&(j, _)| j != i)
                            .map(|(_, n)| Peer {
                                addr: n.addr,
                                peer_id: None,
                            })
                            .collect()
                    } else {
                        Vec::new()
                    };
                    let result = Ok(AnnounceResponse {
                        interval: Duration::from_secs(1800),
                        min_interval: None,
                        peers,
                        complete: None,
                        incomplete: None,
                        downloaded: None,
                        warning: None,
                        tracker_id: None,
                        external_ip: None,
                    });
                    let announced = Input::Announced {
                        torrent,
                        tracker,
                        result,
                    };
                    let _ = self.nodes[i].engine.handle_input(self.now, announced);
                }
                Action::Scrape {
                    torrent,
                    tracker,
                    info_hash,
                    ..
                } => {
                    let complete = self.nodes.iter().filter(|n| n.is_done()).count();
                    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
                    let result = Ok(ScrapeEntry {
                        info_hash,
                        complete: count(complete),
                        incomplete: count(self.nodes.len() - complete),
                        downloaded: count(complete),
                    });
                    let scraped = Input::Scraped {
                        torrent,
                        tracker,
                        result,
                    };
                    let _ = self.nodes[i].engine.handle_input(self.now, scraped);
                }
                // The sim has no DHT: every lookup finds nobody.
                Action::DhtAnnounce { torrent, .. } => {
                    let peers = Vec::new();
                    let _ = self.nodes[i]
                        .engine
                        .handle_input(self.now, Input::DhtPeers { torrent, peers });
                }
                Action::RemoveStorage { delete_files, .. } => {
                    if delete_files {
                        self.nodes[i].disk.clear();
                    }
                }
                // No local network to multicast on and no DHT routing table.
                Action::LsdAnnounce { .. } | Action::DhtNode { .. } => {}
                // The simulation has no HTTP servers.
                Action::WebRequest(_) | Action::WebCancel { .. } => {}
            }
        }
        let elapsed = self.elapsed();
        let node = &mut self.nodes[i];
        while let Some(alert) = node.engine.poll_alert() {
            let stats = &mut node.stats;
            match &alert {
                Alert::TorrentFinished { .. } => {
                    stats.finished_at.get_or_insert(elapsed);
                }
                Alert::StateChanged { state, .. } => stats.state = Some(*state),
                Alert::PeerBanned { .. } => stats.banned += 1,
                Alert::PeerConnected { .. } => stats.peers_connected += 1,
                Alert::HashFailed { .. } => stats.hash_failed += 1,
                _ => {}
            }
            if let Some(log) = &mut node.alerts {
                log.push((elapsed, alert));
            }
        }
    }

    /// 32 bytes from the sim's generator.
    fn rng_seed(&mut self) -> [u8; 32] {
        let mut seed = [0u8; 32];
        self.rng.fill_bytes(&mut seed);
        seed
    }

    /// A number in [0, 1) from the sim's generator.
    fn unit(&mut self) -> f64 {
        // 53 random bits: every such integer is exact in an f64.
        #[allow(clippy::cast_precision_loss)]
        let x = (self.rng.next_u64() >> 11) as f64;
        x / (1u64 << 53) as f64
    }
}

/// [`SEED_VAR`] as a number, when set.
fn seed_from_env() -> Option<u64> {
    std::env::var(SEED_VAR).ok()?.trim().parse().ok()
}

/// `len` pseudo-random bytes from `seed` (xorshift).
fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[3]
        })
        .collect()
}
