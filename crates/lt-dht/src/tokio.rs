//! The tokio driver (feature `tokio`): [`DhtHandle`] runs a [`Dht`] node in a task, on
//! its own UDP socket or on datagram channels when the session owns the socket (uTP shares
//! it: KRPC datagrams are bencoded dictionaries, so their first byte is `d`, which no uTP
//! header starts with). With a second socket ([`DhtConfig::bind6`], or
//! [`DhtConfig::dual_stack`] on channels) it runs an IPv4 and an IPv6 node (BEP 32) and
//! merges their lookups.
//!
//! The task follows the driver rule of [`Dht`]: after every input it drains the
//! transmits, then the events, then re-arms one timer. Lookups started through the handle
//! (`get_peers`, `announce`, BEP 44 `put`/`get`) are answered when the core reports them
//! done, and each handle method is bounded by [`DhtConfig::lookup_timeout`]. Alerts go to
//! every [`DhtHandle::subscribe`]r on a bounded broadcast channel.
//!
//! ```no_run
//! use lt_core::Sha1Hash;
//! use lt_dht::tokio::{DhtConfig, DhtHandle};
//!
//! # async fn run() -> std::io::Result<()> {
//! let mut config = DhtConfig::bind("0.0.0.0:6881".parse().unwrap());
//! config.routers.push("67.215.246.10:6881".parse().unwrap());
//! let dht = DhtHandle::start(config)?;
//! let peers = dht.get_peers(Sha1Hash::new([0xab; 20])).await;
//! dht.announce(Sha1Hash::new([0xab; 20]), Some(6881)).await.ok();
//! let saved = dht.state().await; // DhtState::to_bencode() for the state file
//! dht.shutdown();
//! # let _ = (peers, saved);
//! # Ok(())
//! # }
//! ```

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ::tokio::net::UdpSocket;
use ::tokio::sync::{broadcast, mpsc, oneshot};
use ::tokio::time::{Instant, sleep_until, timeout};
use lt_core::Sha1Hash;
use tracing::{debug, trace};

use crate::item::{Item, MutableItem, public_key};
use crate::limits::MAX_MESSAGE_LEN;
use crate::{CommandError, Config, Dht, DhtState, Event, ItemError, LookupId, LookupKind};

/// Where the node's datagrams go.
#[derive(Debug)]
#[non_exhaustive]
pub enum Bind {
    /// Bind a new UDP socket to this address.
    Addr(SocketAddr),
    /// Use this (bound) socket; it is switched to non-blocking mode.
    Socket(std::net::UdpSocket),
}

/// Settings of a [`DhtHandle`].
#[derive(Debug)]
pub struct DhtConfig {
    /// The socket (ignored by [`DhtHandle::start_with_channels`]).
    pub bind: Bind,
    /// BEP 32: a second socket, of the other address family. The handle then runs an IPv4
    /// and an IPv6 node (as libtorrent runs one per listen socket) and merges their
    /// lookups. Default: `None`. Ignored by [`DhtHandle::start_with_channels`].
    pub bind6: Option<Bind>,
    /// [`DhtHandle::start_with_channels`] only: run an IPv4 and an IPv6 node, and route
    /// incoming datagrams to them by family. Default: false (one node, of the family
    /// [`Config::ipv6`] names).
    pub dual_stack: bool,
    /// Bootstrap routers: asked for nodes, never put in the routing table.
    pub routers: Vec<SocketAddr>,
    /// Nodes to ping at start (they join the table when they answer).
    pub nodes: Vec<SocketAddr>,
    /// A saved state: its id is reused (unless [`Config::id`] is set) and its nodes pinged.
    pub state: Option<DhtState>,
    /// BEP 43 read-only mode (overrides [`Config::read_only`]).
    pub read_only: bool,
    /// The core's settings. `rng_seed: None` is seeded here from the OS.
    pub settings: Config,
    /// The longest a handle method waits for its lookup. Default: 60 s.
    pub lookup_timeout: Duration,
    /// Capacity of the alert channel; slow subscribers miss the oldest alerts. Default: 1024.
    pub event_capacity: usize,
}

impl DhtConfig {
    /// Defaults with a socket bound to `addr`.
    #[must_use]
    pub fn bind(addr: SocketAddr) -> Self {
        Self::with_bind(Bind::Addr(addr))
    }

    /// Defaults with the given [`Bind`].
    #[must_use]
    pub fn with_bind(bind: Bind) -> Self {
        Self {
            bind,
            bind6: None,
            dual_stack: false,
            routers: Vec::new(),
            nodes: Vec::new(),
            state: None,
            read_only: false,
            settings: Config::default(),
            lookup_timeout: Duration::from_secs(60),
            event_capacity: 1024,
        }
    }
}

/// A datagram between the node and a session-owned socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    /// Source (incoming) or destination (outgoing).
    pub addr: SocketAddr,
    /// The KRPC bytes.
    pub payload: Vec<u8>,
}

/// The session's side of [`DhtHandle::start_with_channels`]: feed received KRPC datagrams
/// into `incoming` (with `try_send`: a full channel drops, as UDP would) and send what
/// `outgoing` yields.
#[derive(Debug)]
pub struct DatagramChannels {
    /// Datagrams received on the shared socket that are KRPC (a bencoded dictionary,
    /// first byte `d`).
    pub incoming: mpsc::Sender<Datagram>,
    /// Datagrams to send.
    pub outgoing: mpsc::Receiver<Datagram>,
}

/// An alert from the node.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DhtEvent {
    /// A bootstrap finished with this many nodes in the routing table (reported by each
    /// node: twice per bootstrap round for a dual-stack handle).
    BootstrapDone {
        /// Routing-table size of the node that bootstrapped.
        nodes: usize,
    },
    /// A `get_peers` reply carried peers.
    GetPeersReply {
        /// The torrent.
        info_hash: Sha1Hash,
        /// Peers from one reply.
        peers: Vec<SocketAddr>,
    },
    /// Our announce finished (on one node: a dual-stack handle reports each family).
    AnnounceDone {
        /// The torrent.
        info_hash: Sha1Hash,
        /// Nodes sent `announce_peer`.
        announced: usize,
    },
    /// Another node announced a peer to us.
    IncomingAnnounce {
        /// The torrent.
        info_hash: Sha1Hash,
        /// The peer.
        peer: SocketAddr,
    },
    /// BEP 42: responders agree on our external address.
    ExternalAddress {
        /// Our address as others see it.
        addr: SocketAddr,
    },
    /// BEP 42: the node id changed to conform to the external address (save the state).
    NodeIdChanged {
        /// The new id.
        id: Sha1Hash,
    },
}

/// Why a handle method failed.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DhtError {
    /// The node refused the command (too many lookups, invalid item).
    #[error(transparent)]
    Command(#[from] CommandError),
    /// The lookup did not finish within [`DhtConfig::lookup_timeout`].
    #[error("DHT lookup timed out")]
    Timeout,
    /// The node's task has stopped.
    #[error("the DHT node has shut down")]
    Shutdown,
}

impl From<ItemError> for DhtError {
    fn from(e: ItemError) -> Self {
        Self::Command(CommandError::InvalidItem(e))
    }
}

/// What an announce or a put achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutOutcome {
    /// The item's key (the info-hash for an announce).
    pub target: Sha1Hash,
    /// Nodes sent `announce_peer` or `put`.
    pub stored_on: usize,
    /// For mutable puts: the sequence number written.
    pub seq: Option<i64>,
    /// For announces: peers the `get_peers` phase found.
    pub peers: Vec<SocketAddr>,
}

/// What a BEP 33 scrape estimated (bloom filters over IPs: a few percent off, and
/// several peers behind one IP count once).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScrapeOutcome {
    /// Seeds.
    pub seeds: u32,
    /// Downloaders.
    pub downloaders: u32,
}

/// A running DHT node; cheap to clone. The task stops on [`DhtHandle::shutdown`] or when
/// every handle is dropped.
#[derive(Debug, Clone)]
pub struct DhtHandle {
    commands: mpsc::Sender<Command>,
    events: broadcast::Sender<DhtEvent>,
    table_size: Arc<AtomicUsize>,
    local_addrs: Vec<SocketAddr>,
    lookup_timeout: Duration,
}

impl DhtHandle {
    /// Binds (or adopts) the socket, starts the node and its bootstrap, and spawns the task
    /// on the current tokio runtime.
    ///
    /// # Errors
    ///
    /// When the socket cannot be bound or registered with the runtime.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime (as `tokio::spawn` does).
    pub fn start(mut config: DhtConfig) -> io::Result<Self> {
        let first = open(std::mem::replace(&mut config.bind, Bind::Addr(any_addr())))?;
        let local = first.local_addr()?;
        let mut sockets = vec![first];
        if let Some(bind6) = config.bind6.take() {
            let second = open(bind6)?;
            if second.local_addr()?.is_ipv6() == local.is_ipv6() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "bind6 must be of the other address family than bind",
                ));
            }
            sockets.push(second);
        }
        // BEP 32: a node on an IPv6 socket speaks `nodes6`; one node per socket.
        let addrs = sockets
            .iter()
            .map(UdpSocket::local_addr)
            .collect::<io::Result<Vec<SocketAddr>>>()?;
        let families: Vec<bool> = addrs.iter().map(SocketAddr::is_ipv6).collect();
        Ok(Self::spawn(config, &families, Io::Sockets(sockets), addrs))
    }

    /// Starts the node on channels instead of a socket, for a session that owns the UDP
    /// socket; [`DhtConfig::bind`] is ignored. [`Config::ipv6`] says which family the node
    /// serves, or [`DhtConfig::dual_stack`] runs one node per family.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    #[must_use]
    pub fn start_with_channels(config: DhtConfig) -> (Self, DatagramChannels) {
        let (in_tx, in_rx) = mpsc::channel(1024);
        let (out_tx, out_rx) = mpsc::channel(1024);
        let families = if config.dual_stack {
            vec![false, true]
        } else {
            vec![config.settings.ipv6]
        };
        let handle = Self::spawn(
            config,
            &families,
            Io::Channels {
                incoming: in_rx,
                outgoing: out_tx,
            },
            Vec::new(),
        );
        (
            handle,
            DatagramChannels {
                incoming: in_tx,
                outgoing: out_rx,
            },
        )
    }

    fn spawn(config: DhtConfig, families: &[bool], io: Io, local_addrs: Vec<SocketAddr>) -> Self {
        let (commands, commands_rx) = mpsc::channel(256);
        let (events, _) = broadcast::channel(config.event_capacity.max(1));
        let table_size = Arc::new(AtomicUsize::new(0));
        let lookup_timeout = config.lookup_timeout;
        let task = Task::new(
            config,
            families,
            io,
            commands_rx,
            events.clone(),
            table_size.clone(),
        );
        ::tokio::spawn(task.run());
        Self {
            commands,
            events,
            table_size,
            local_addrs,
            lookup_timeout,
        }
    }

    /// The (first) socket's address (`None` on channels).
    #[must_use]
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addrs.first().copied()
    }

    /// Every socket's address: [`DhtConfig::bind`]'s, then [`DhtConfig::bind6`]'s.
    #[must_use]
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    /// A receiver of alerts from now on.
    #[must_use]
    pub fn subscribe(&self) -> broadcast::Receiver<DhtEvent> {
        self.events.subscribe()
    }

    /// Nodes in the routing table (updated after every input).
    #[must_use]
    pub fn routing_table_size(&self) -> usize {
        self.table_size.load(Ordering::Relaxed)
    }

    /// Pings `addr`; it joins the table when it answers, and a bootstrap follows while the
    /// table is small. Returns false if the node has stopped or is overloaded.
    pub fn add_node(&self, addr: SocketAddr) -> bool {
        self.commands.try_send(Command::AddNode(addr)).is_ok()
    }

    /// Adds a bootstrap router and bootstraps from it.
    pub fn add_router(&self, addr: SocketAddr) -> bool {
        self.commands.try_send(Command::AddRouter(addr)).is_ok()
    }

    /// A complete `get_peers` lookup: every peer found (deduplicated, at most 1000); empty
    /// when the node is stopped, busy or the lookup times out.
    pub async fn get_peers(&self, info_hash: Sha1Hash) -> Vec<SocketAddr> {
        self.call(|reply| Command::GetPeers { info_hash, reply })
            .await
            .unwrap_or_default()
    }

    /// `get_peers`, then `announce_peer` to the closest nodes that gave tokens; `port: None`
    /// announces with `implied_port` (the UDP source port).
    ///
    /// # Errors
    ///
    /// [`DhtError`].
    pub async fn announce(
        &self,
        info_hash: Sha1Hash,
        port: Option<u16>,
    ) -> Result<PutOutcome, DhtError> {
        self.call(|reply| Command::Announce {
            info_hash,
            port,
            seed: false,
            reply,
        })
        .await?
    }

    /// [`DhtHandle::announce`], telling the nodes (BEP 33 `seed=1`) whether we are a seed.
    ///
    /// # Errors
    ///
    /// [`DhtError`].
    pub async fn announce_with(
        &self,
        info_hash: Sha1Hash,
        port: Option<u16>,
        seed: bool,
    ) -> Result<PutOutcome, DhtError> {
        self.call(|reply| Command::Announce {
            info_hash,
            port,
            seed,
            reply,
        })
        .await?
    }

    /// BEP 33: estimated seeds and downloaders of `info_hash`, from a complete `get_peers`
    /// lookup with `scrape=1`.
    ///
    /// # Errors
    ///
    /// [`DhtError`].
    pub async fn scrape(&self, info_hash: Sha1Hash) -> Result<ScrapeOutcome, DhtError> {
        self.call(|reply| Command::Scrape { info_hash, reply })
            .await?
    }

    /// BEP 44: stores the bencoded value `v` on the closest nodes. The outcome's `target`
    /// (the SHA-1 of `v`) is the item's key.
    ///
    /// # Errors
    ///
    /// [`DhtError`] (an invalid value is [`CommandError::InvalidItem`]).
    pub async fn put_immutable(&self, v: Vec<u8>) -> Result<PutOutcome, DhtError> {
        self.call(|reply| Command::PutImmutable { v, reply })
            .await?
    }

    /// BEP 44: the immutable item with key `target` (its bencoded value), as soon as one
    /// node returns a value that hashes to it.
    pub async fn get_immutable(&self, target: Sha1Hash) -> Option<Vec<u8>> {
        self.call(|reply| Command::GetImmutable { target, reply })
            .await
            .ok()
            .flatten()
    }

    /// BEP 44: stores the bencoded value `v` under the ed25519 key whose 32-byte secret
    /// seed is `secret`, with `salt`. The node first reads the current item: the new one
    /// gets the next `seq`, with `cas` set to the current one.
    ///
    /// # Errors
    ///
    /// [`DhtError`].
    pub async fn put_mutable(
        &self,
        secret: [u8; 32],
        salt: Vec<u8>,
        v: Vec<u8>,
    ) -> Result<PutOutcome, DhtError> {
        crate::item::check_value(&v)?;
        MutableItem::sign(&secret, &salt, 0, &v)?;
        self.call(|reply| Command::PutMutable {
            secret,
            salt,
            v,
            reply,
        })
        .await?
    }

    /// BEP 44: the newest mutable item of public key `k` and `salt` found by a complete
    /// lookup (signature checked).
    pub async fn get_mutable(&self, k: [u8; 32], salt: Vec<u8>) -> Option<MutableItem> {
        self.call(|reply| Command::GetMutable { k, salt, reply })
            .await
            .ok()
            .flatten()
    }

    /// The node id and good nodes, for the session's state file.
    pub async fn state(&self) -> DhtState {
        self.call(|reply| Command::State { reply })
            .await
            .unwrap_or_default()
    }

    /// Stops the task (pending calls return empty results or [`DhtError::Shutdown`]).
    pub fn shutdown(&self) {
        let _ = self.commands.try_send(Command::Shutdown);
    }

    async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, DhtError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| DhtError::Shutdown)?;
        match timeout(self.lookup_timeout, rx).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(_)) => Err(DhtError::Shutdown),
            Err(_) => Err(DhtError::Timeout),
        }
    }
}

fn any_addr() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 0))
}

fn open(bind: Bind) -> io::Result<UdpSocket> {
    let s = match bind {
        Bind::Addr(a) => std::net::UdpSocket::bind(a)?,
        Bind::Socket(s) => s,
    };
    s.set_nonblocking(true)?;
    UdpSocket::from_std(s)
}

/// Most peers collected for one `get_peers` call.
const MAX_PEERS_PER_CALL: usize = 1000;

enum Command {
    AddNode(SocketAddr),
    AddRouter(SocketAddr),
    GetPeers {
        info_hash: Sha1Hash,
        reply: oneshot::Sender<Vec<SocketAddr>>,
    },
    Announce {
        info_hash: Sha1Hash,
        port: Option<u16>,
        seed: bool,
        reply: oneshot::Sender<Result<PutOutcome, DhtError>>,
    },
    Scrape {
        info_hash: Sha1Hash,
        reply: oneshot::Sender<Result<ScrapeOutcome, DhtError>>,
    },
    PutImmutable {
        v: Vec<u8>,
        reply: oneshot::Sender<Result<PutOutcome, DhtError>>,
    },
    GetImmutable {
        target: Sha1Hash,
        reply: oneshot::Sender<Option<Vec<u8>>>,
    },
    PutMutable {
        secret: [u8; 32],
        salt: Vec<u8>,
        v: Vec<u8>,
        reply: oneshot::Sender<Result<PutOutcome, DhtError>>,
    },
    GetMutable {
        k: [u8; 32],
        salt: Vec<u8>,
        reply: oneshot::Sender<Option<MutableItem>>,
    },
    State {
        reply: oneshot::Sender<DhtState>,
    },
    Shutdown,
}

/// A caller waiting for lookups (one per node of the handle).
enum Waiter {
    Peers {
        peers: Vec<SocketAddr>,
        reply: oneshot::Sender<Vec<SocketAddr>>,
    },
    Announce {
        peers: Vec<SocketAddr>,
        reply: oneshot::Sender<Result<PutOutcome, DhtError>>,
    },
    Put {
        target: Sha1Hash,
        seq: Option<i64>,
        reply: oneshot::Sender<Result<PutOutcome, DhtError>>,
    },
    GetImmutable {
        reply: oneshot::Sender<Option<Vec<u8>>>,
    },
    GetMutable {
        best: Option<MutableItem>,
        reply: oneshot::Sender<Option<MutableItem>>,
    },
    Scrape {
        outcome: ScrapeOutcome,
        reply: oneshot::Sender<Result<ScrapeOutcome, DhtError>>,
    },
    /// The read phase of a mutable put.
    PutMutableRead {
        secret: [u8; 32],
        salt: Vec<u8>,
        v: Vec<u8>,
        best: Option<MutableItem>,
        reply: oneshot::Sender<Result<PutOutcome, DhtError>>,
    },
}

impl Waiter {
    /// Answers a caller whose lookups could not start.
    fn fail(self, e: CommandError) {
        match self {
            Self::Peers { reply, .. } => {
                let _ = reply.send(Vec::new());
            }
            Self::Announce { reply, .. }
            | Self::Put { reply, .. }
            | Self::PutMutableRead { reply, .. } => {
                let _ = reply.send(Err(e.into()));
            }
            Self::Scrape { reply, .. } => {
                let _ = reply.send(Err(e.into()));
            }
            Self::GetImmutable { reply } => {
                let _ = reply.send(None);
            }
            Self::GetMutable { reply, .. } => {
                let _ = reply.send(None);
            }
        }
    }

    /// Keeps the item with the highest `seq`.
    fn offer(&mut self, m: MutableItem) {
        if let Self::GetMutable { best, .. } | Self::PutMutableRead { best, .. } = self
            && best.as_ref().is_none_or(|b| m.seq > b.seq)
        {
            *best = Some(m);
        }
    }
}

/// A handle call: its waiter, and how many of its lookups are still running.
struct Call {
    waiter: Waiter,
    remaining: usize,
    stored_on: usize,
}

/// One node of the handle (one per address family).
struct Core {
    dht: Dht,
    ipv6: bool,
    /// When to (re)run a bootstrap while the table is small.
    next_bootstrap: Option<Instant>,
    bootstrapping: bool,
}

enum Io {
    /// One socket per core, in core order.
    Sockets(Vec<UdpSocket>),
    Channels {
        incoming: mpsc::Receiver<Datagram>,
        outgoing: mpsc::Sender<Datagram>,
    },
}

struct Task {
    cores: Vec<Core>,
    io: Io,
    commands: mpsc::Receiver<Command>,
    events: broadcast::Sender<DhtEvent>,
    table_size: Arc<AtomicUsize>,
    calls: HashMap<u64, Call>,
    /// Which call each running lookup (core index, lookup) belongs to.
    lookups: HashMap<(usize, LookupId), u64>,
    next_call: u64,
}

impl Task {
    fn new(
        config: DhtConfig,
        families: &[bool],
        io: Io,
        commands: mpsc::Receiver<Command>,
        events: broadcast::Sender<DhtEvent>,
        table_size: Arc<AtomicUsize>,
    ) -> Self {
        let now = Instant::now();
        let seed = config.settings.rng_seed.unwrap_or_else(os_seed);
        let saved = config
            .state
            .as_ref()
            .map(|s| s.nodes.clone())
            .unwrap_or_default();
        let saved_id = config.state.as_ref().and_then(|s| s.id);
        let mut cores = Vec::new();
        for (i, &ipv6) in families.iter().enumerate() {
            let mut settings = config.settings.clone();
            settings.read_only |= config.read_only;
            settings.ipv6 = ipv6;
            let mut core_seed = seed;
            core_seed[0] ^= u8::try_from(i).unwrap_or(0);
            settings.rng_seed = Some(core_seed);
            if settings.id.is_none() {
                settings.id = saved_id;
            }
            let mut dht = Dht::new(settings, now.into_std());
            let mut has_router = false;
            for r in config.routers.iter().filter(|r| r.is_ipv6() == ipv6) {
                dht.add_router(*r);
                has_router = true;
            }
            for n in config
                .nodes
                .iter()
                .chain(&saved)
                .filter(|n| n.is_ipv6() == ipv6)
            {
                dht.add_node(now.into_std(), *n);
            }
            cores.push(Core {
                dht,
                ipv6,
                // Give pinged nodes a moment to answer before walking towards our id.
                next_bootstrap: Some(if has_router {
                    now
                } else {
                    now + Duration::from_millis(300)
                }),
                bootstrapping: false,
            });
        }
        Self {
            cores,
            io,
            commands,
            events,
            table_size,
            calls: HashMap::new(),
            lookups: HashMap::new(),
            next_call: 0,
        }
    }

    async fn run(mut self) {
        let mut buf = vec![0u8; MAX_MESSAGE_LEN + 1];
        let mut buf2 = vec![0u8; MAX_MESSAGE_LEN + 1];
        loop {
            let now = Instant::now();
            for core in &mut self.cores {
                if core.next_bootstrap.is_some_and(|t| t <= now) && !core.bootstrapping {
                    core.next_bootstrap = None;
                    if core.dht.bootstrap(now.into_std()).is_ok() {
                        core.bootstrapping = true;
                    }
                }
            }
            self.flush().await;
            let deadline = self
                .cores
                .iter()
                .flat_map(|c| {
                    [
                        c.dht.poll_timeout().map(Instant::from_std),
                        c.next_bootstrap,
                    ]
                })
                .flatten()
                .min()
                .unwrap_or(now + Duration::from_secs(60));
            let input = match &mut self.io {
                Io::Sockets(sockets) => {
                    let sockets = &*sockets;
                    ::tokio::select! {
                        r = recv(sockets.first(), &mut buf) => Input::Received(0, r),
                        r = recv(sockets.get(1), &mut buf2) => Input::Received(1, r),
                        c = self.commands.recv() => Input::Command(c),
                        () = sleep_until(deadline) => Input::Timer,
                    }
                }
                Io::Channels { incoming, .. } => ::tokio::select! {
                    d = incoming.recv() => match d {
                        Some(d) => Input::Owned(d),
                        None => Input::Command(None),
                    },
                    c = self.commands.recv() => Input::Command(c),
                    () = sleep_until(deadline) => Input::Timer,
                },
            };
            let now = Instant::now().into_std();
            match input {
                Input::Received(i, Ok((n, from))) => {
                    let b = if i == 0 { &buf } else { &buf2 };
                    if let (Some(core), Some(b)) = (self.cores.get_mut(i), b.get(..n)) {
                        core.dht.handle_datagram(now, from, b);
                    }
                }
                Input::Received(_, Err(e)) => {
                    // ICMP errors (ECONNREFUSED) surface here on Linux; keep going.
                    trace!(error = %e, "DHT recv error");
                }
                Input::Owned(d) => {
                    if let Some(core) = self.core_for(d.addr) {
                        core.dht.handle_datagram(now, d.addr, &d.payload);
                    }
                }
                Input::Timer => {
                    for core in &mut self.cores {
                        core.dht.handle_timeout(now);
                    }
                }
                Input::Command(None | Some(Command::Shutdown)) => break,
                Input::Command(Some(c)) => self.command(now, c),
            }
            let size = self.cores.iter().map(|c| c.dht.routing_table().len()).sum();
            self.table_size.store(size, Ordering::Relaxed);
        }
        debug!("DHT node stopped");
    }

    /// The node serving `addr`'s family, if the handle runs one.
    fn core_for(&mut self, addr: SocketAddr) -> Option<&mut Core> {
        self.cores.iter_mut().find(|c| c.ipv6 == addr.is_ipv6())
    }

    /// Drains transmits and events until all are empty (an event can start a lookup,
    /// such as the write phase of a mutable put, which queues more transmits).
    async fn flush(&mut self) {
        loop {
            let mut any = false;
            for i in 0..self.cores.len() {
                while let Some(t) = self.cores[i].dht.poll_transmit() {
                    any = true;
                    match &self.io {
                        Io::Sockets(sockets) => {
                            if let Some(socket) = sockets.get(i)
                                && let Err(e) = socket.send_to(&t.payload, t.dest).await
                            {
                                trace!(dest = %t.dest, error = %e, "DHT send failed");
                            }
                        }
                        Io::Channels { outgoing, .. } => {
                            // A full channel drops the datagram, as a full socket buffer
                            // would.
                            let _ = outgoing.try_send(Datagram {
                                addr: t.dest,
                                payload: t.payload,
                            });
                        }
                    }
                }
                while let Some(e) = self.cores[i].dht.poll_event() {
                    any = true;
                    self.event(i, e);
                }
            }
            if !any {
                return;
            }
        }
    }

    fn alert(&self, e: DhtEvent) {
        let _ = self.events.send(e);
    }

    /// Starts one lookup per node with `start` and registers `waiter` for them all.
    fn start_all(
        &mut self,
        waiter: Waiter,
        mut start: impl FnMut(&mut Dht) -> Result<LookupId, CommandError>,
    ) {
        let id = self.next_call;
        self.next_call += 1;
        let mut started = 0;
        let mut error = CommandError::TooManyLookups;
        for (i, core) in self.cores.iter_mut().enumerate() {
            match start(&mut core.dht) {
                Ok(lid) => {
                    self.lookups.insert((i, lid), id);
                    started += 1;
                }
                Err(e) => error = e,
            }
        }
        if started == 0 {
            waiter.fail(error);
        } else {
            self.calls.insert(
                id,
                Call {
                    waiter,
                    remaining: started,
                    stored_on: 0,
                },
            );
        }
    }

    fn command(&mut self, now: std::time::Instant, c: Command) {
        match c {
            Command::AddNode(addr) => {
                if let Some(core) = self.core_for(addr) {
                    core.dht.add_node(now, addr);
                    if core.dht.routing_table().len() < 8 && core.next_bootstrap.is_none() {
                        core.next_bootstrap = Some(Instant::now() + Duration::from_millis(300));
                    }
                }
            }
            Command::AddRouter(addr) => {
                if let Some(core) = self.core_for(addr) {
                    core.dht.add_router(addr);
                    core.next_bootstrap = Some(Instant::now());
                }
            }
            Command::GetPeers { info_hash, reply } => {
                let w = Waiter::Peers {
                    peers: Vec::new(),
                    reply,
                };
                self.start_all(w, |d| d.get_peers(now, info_hash));
            }
            Command::Announce {
                info_hash,
                port,
                seed,
                reply,
            } => {
                let w = Waiter::Announce {
                    peers: Vec::new(),
                    reply,
                };
                self.start_all(w, |d| d.announce_with(now, info_hash, port, seed));
            }
            Command::Scrape { info_hash, reply } => {
                let w = Waiter::Scrape {
                    outcome: ScrapeOutcome::default(),
                    reply,
                };
                self.start_all(w, |d| d.scrape(now, info_hash));
            }
            Command::PutImmutable { v, reply } => {
                let w = Waiter::Put {
                    target: crate::item::immutable_target(&v),
                    seq: None,
                    reply,
                };
                self.start_all(w, |d| d.put_immutable(now, v.clone()).map(|(lid, _)| lid));
            }
            Command::GetImmutable { target, reply } => {
                let w = Waiter::GetImmutable { reply };
                self.start_all(w, |d| d.get_immutable(now, target));
            }
            Command::PutMutable {
                secret,
                salt,
                v,
                reply,
            } => {
                let k = public_key(&secret);
                let read_salt = salt.clone();
                let w = Waiter::PutMutableRead {
                    secret,
                    salt,
                    v,
                    best: None,
                    reply,
                };
                self.start_all(w, |d| d.get_mutable(now, k, &read_salt, None));
            }
            Command::GetMutable { k, salt, reply } => {
                let w = Waiter::GetMutable { best: None, reply };
                self.start_all(w, |d| d.get_mutable(now, k, &salt, None));
            }
            Command::State { reply } => {
                let mut state = DhtState::default();
                for core in &self.cores {
                    let s = core.dht.state(now);
                    state.id = state.id.or(s.id);
                    state
                        .nodes
                        .extend(s.nodes.into_iter().take(crate::state::MAX_SAVED_NODES));
                }
                let _ = reply.send(state);
            }
            Command::Shutdown => {}
        }
    }

    fn event(&mut self, core: usize, e: Event) {
        match e {
            Event::BootstrapDone { nodes } => {
                if let Some(c) = self.cores.get_mut(core) {
                    c.bootstrapping = false;
                    if nodes < 8 {
                        // Still lonely: try again (routers or nodes may have come up since).
                        c.next_bootstrap = Some(Instant::now() + Duration::from_secs(5));
                    }
                }
                self.alert(DhtEvent::BootstrapDone { nodes });
            }
            Event::Peers {
                lookup,
                info_hash,
                peers,
            } => {
                if let Some(Call {
                    waiter: Waiter::Peers { peers: all, .. } | Waiter::Announce { peers: all, .. },
                    ..
                }) = self
                    .lookups
                    .get(&(core, lookup))
                    .and_then(|id| self.calls.get_mut(id))
                {
                    for p in &peers {
                        if all.len() < MAX_PEERS_PER_CALL && !all.contains(p) {
                            all.push(*p);
                        }
                    }
                }
                self.alert(DhtEvent::GetPeersReply { info_hash, peers });
            }
            Event::Item { lookup, item, .. } => {
                let Some(&id) = self.lookups.get(&(core, lookup)) else {
                    return;
                };
                match item {
                    Item::Immutable { v } => {
                        // The first valid value answers; the other lookups run out alone.
                        if let Some(Call {
                            waiter: Waiter::GetImmutable { .. },
                            ..
                        }) = self.calls.get(&id)
                            && let Some(Call {
                                waiter: Waiter::GetImmutable { reply },
                                ..
                            }) = self.calls.remove(&id)
                        {
                            let _ = reply.send(Some(v));
                        }
                    }
                    Item::Mutable(m) => {
                        if let Some(call) = self.calls.get_mut(&id) {
                            call.waiter.offer(m);
                        }
                    }
                }
            }
            Event::LookupDone {
                lookup,
                kind,
                target,
                announced,
                ..
            } => {
                if let LookupKind::Announce(_) = kind {
                    self.alert(DhtEvent::AnnounceDone {
                        info_hash: target,
                        announced,
                    });
                }
                let Some(id) = self.lookups.remove(&(core, lookup)) else {
                    return;
                };
                let Some(call) = self.calls.get_mut(&id) else {
                    return;
                };
                call.remaining = call.remaining.saturating_sub(1);
                call.stored_on += announced;
                if call.remaining == 0
                    && let Some(call) = self.calls.remove(&id)
                {
                    self.complete(call, target);
                }
            }
            Event::IncomingAnnounce { info_hash, peer } => {
                self.alert(DhtEvent::IncomingAnnounce { info_hash, peer });
            }
            Event::ExternalAddress { addr } => self.alert(DhtEvent::ExternalAddress { addr }),
            Event::NodeIdChanged { id } => self.alert(DhtEvent::NodeIdChanged { id }),
            Event::Scrape {
                lookup,
                seeds,
                downloaders,
                ..
            } => {
                // Each family's node counts its own IPs: the sum is the estimate.
                if let Some(Call {
                    waiter: Waiter::Scrape { outcome, .. },
                    ..
                }) = self
                    .lookups
                    .get(&(core, lookup))
                    .and_then(|id| self.calls.get_mut(id))
                {
                    outcome.seeds = outcome.seeds.saturating_add(seeds);
                    outcome.downloaders = outcome.downloaders.saturating_add(downloaders);
                }
            }
        }
    }

    /// Every lookup of a call has finished.
    fn complete(&mut self, call: Call, target: Sha1Hash) {
        let stored_on = call.stored_on;
        match call.waiter {
            Waiter::Peers { peers, reply } => {
                let _ = reply.send(peers);
            }
            Waiter::Announce { peers, reply } => {
                let _ = reply.send(Ok(PutOutcome {
                    target,
                    stored_on,
                    seq: None,
                    peers,
                }));
            }
            Waiter::Put { target, seq, reply } => {
                let _ = reply.send(Ok(PutOutcome {
                    target,
                    stored_on,
                    seq,
                    peers: Vec::new(),
                }));
            }
            Waiter::GetImmutable { reply } => {
                let _ = reply.send(None);
            }
            Waiter::GetMutable { best, reply } => {
                let _ = reply.send(best);
            }
            Waiter::Scrape { outcome, reply } => {
                let _ = reply.send(Ok(outcome));
            }
            Waiter::PutMutableRead {
                secret,
                salt,
                v,
                best,
                reply,
            } => {
                // BEP 44: the next seq, and compare-and-swap against the one read.
                let cas = best.as_ref().map(|m| m.seq);
                let seq = cas.map_or(1, |s| s.saturating_add(1));
                let now = Instant::now().into_std();
                match MutableItem::sign(&secret, &salt, seq, &v) {
                    Ok(item) => {
                        let w = Waiter::Put {
                            target,
                            seq: Some(seq),
                            reply,
                        };
                        self.start_all(w, |d| d.put_mutable(now, item.clone(), cas));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e.into()));
                    }
                }
            }
        }
    }
}

/// Receives on `socket`, or never when there is none.
async fn recv(socket: Option<&UdpSocket>, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
    match socket {
        Some(s) => s.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

enum Input {
    Received(usize, io::Result<(usize, SocketAddr)>),
    Owned(Datagram),
    Command(Option<Command>),
    Timer,
}

/// 32 bytes from the standard library's per-process random hasher keys (OS randomness,
/// without another dependency).
fn os_seed() -> [u8; 32] {
    use std::hash::{BuildHasher, Hasher};
    let mut seed = [0u8; 32];
    for (i, chunk) in seed.chunks_mut(8).enumerate() {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_usize(i);
        chunk.copy_from_slice(&h.finish().to_le_bytes());
    }
    seed
}
