//! The tokio driver (feature `tokio`): [`DhtHandle`] runs one [`Dht`] node in a task, on
//! its own UDP socket or on datagram channels when the session owns the socket (uTP shares
//! it).
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
    /// A bootstrap finished with this many nodes in the routing table.
    BootstrapDone {
        /// Routing-table size.
        nodes: usize,
    },
    /// A `get_peers` reply carried peers.
    GetPeersReply {
        /// The torrent.
        info_hash: Sha1Hash,
        /// Peers from one reply.
        peers: Vec<SocketAddr>,
    },
    /// Our announce finished.
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

/// A running DHT node; cheap to clone. The task stops on [`DhtHandle::shutdown`] or when
/// every handle is dropped.
#[derive(Debug, Clone)]
pub struct DhtHandle {
    commands: mpsc::Sender<Command>,
    events: broadcast::Sender<DhtEvent>,
    table_size: Arc<AtomicUsize>,
    local_addr: Option<SocketAddr>,
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
        let std_socket = match std::mem::replace(&mut config.bind, Bind::Addr(any_addr())) {
            Bind::Addr(a) => std::net::UdpSocket::bind(a)?,
            Bind::Socket(s) => s,
        };
        std_socket.set_nonblocking(true)?;
        let socket = UdpSocket::from_std(std_socket)?;
        let local = socket.local_addr()?;
        // BEP 32: a node on an IPv6 socket speaks `nodes6` (one node per address family,
        // as libtorrent runs one per listen socket).
        config.settings.ipv6 = local.is_ipv6();
        Ok(Self::spawn(config, Io::Socket(socket), Some(local)))
    }

    /// Starts the node on channels instead of a socket, for a session that owns the UDP
    /// socket; [`DhtConfig::bind`] is ignored and [`Config::ipv6`] says which family
    /// the node serves (feed it only datagrams of that family).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    #[must_use]
    pub fn start_with_channels(config: DhtConfig) -> (Self, DatagramChannels) {
        let (in_tx, in_rx) = mpsc::channel(1024);
        let (out_tx, out_rx) = mpsc::channel(1024);
        let handle = Self::spawn(
            config,
            Io::Channels {
                incoming: in_rx,
                outgoing: out_tx,
            },
            None,
        );
        (
            handle,
            DatagramChannels {
                incoming: in_tx,
                outgoing: out_rx,
            },
        )
    }

    fn spawn(config: DhtConfig, io: Io, local_addr: Option<SocketAddr>) -> Self {
        let (commands, commands_rx) = mpsc::channel(256);
        let (events, _) = broadcast::channel(config.event_capacity.max(1));
        let table_size = Arc::new(AtomicUsize::new(0));
        let lookup_timeout = config.lookup_timeout;
        let task = Task::new(config, io, commands_rx, events.clone(), table_size.clone());
        ::tokio::spawn(task.run());
        Self {
            commands,
            events,
            table_size,
            local_addr,
            lookup_timeout,
        }
    }

    /// The socket's address (`None` on channels).
    #[must_use]
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
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
            reply,
        })
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
        reply: oneshot::Sender<Result<PutOutcome, DhtError>>,
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

/// A caller waiting for a lookup.
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
    /// The read phase of a mutable put.
    PutMutableRead {
        secret: [u8; 32],
        salt: Vec<u8>,
        v: Vec<u8>,
        best: Option<MutableItem>,
        reply: oneshot::Sender<Result<PutOutcome, DhtError>>,
    },
}

enum Io {
    Socket(UdpSocket),
    Channels {
        incoming: mpsc::Receiver<Datagram>,
        outgoing: mpsc::Sender<Datagram>,
    },
}

struct Task {
    dht: Dht,
    io: Io,
    commands: mpsc::Receiver<Command>,
    events: broadcast::Sender<DhtEvent>,
    table_size: Arc<AtomicUsize>,
    waiters: HashMap<LookupId, Waiter>,
    /// When to (re)run a bootstrap while the table is small.
    next_bootstrap: Option<Instant>,
    bootstrapping: bool,
}

impl Task {
    fn new(
        config: DhtConfig,
        io: Io,
        commands: mpsc::Receiver<Command>,
        events: broadcast::Sender<DhtEvent>,
        table_size: Arc<AtomicUsize>,
    ) -> Self {
        let now = Instant::now();
        let mut settings = config.settings;
        settings.read_only |= config.read_only;
        if settings.rng_seed.is_none() {
            settings.rng_seed = Some(os_seed());
        }
        if settings.id.is_none() {
            settings.id = config.state.as_ref().and_then(|s| s.id);
        }
        let mut dht = Dht::new(settings, now.into_std());
        for r in &config.routers {
            dht.add_router(*r);
        }
        let saved = config.state.map(|s| s.nodes).unwrap_or_default();
        for n in config.nodes.iter().chain(&saved) {
            dht.add_node(now.into_std(), *n);
        }
        Self {
            dht,
            io,
            commands,
            events,
            table_size,
            waiters: HashMap::new(),
            // Give pinged nodes a moment to answer before walking towards our id.
            next_bootstrap: Some(if config.routers.is_empty() {
                now + Duration::from_millis(300)
            } else {
                now
            }),
            bootstrapping: false,
        }
    }

    async fn run(mut self) {
        let mut buf = vec![0u8; MAX_MESSAGE_LEN + 1];
        loop {
            let now = Instant::now();
            if self.next_bootstrap.is_some_and(|t| t <= now) && !self.bootstrapping {
                self.next_bootstrap = None;
                if self.dht.bootstrap(now.into_std()).is_ok() {
                    self.bootstrapping = true;
                }
            }
            self.flush().await;
            let core = self.dht.poll_timeout().map(Instant::from_std);
            let deadline = match (core, self.next_bootstrap) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => a.or(b).unwrap_or(now + Duration::from_secs(60)),
            };
            let input = match &mut self.io {
                Io::Socket(socket) => ::tokio::select! {
                    r = socket.recv_from(&mut buf) => match r {
                        Ok((n, from)) => Input::Datagram(from, n),
                        Err(e) => {
                            // ICMP errors (ECONNREFUSED) surface here on Linux; keep going.
                            trace!(error = %e, "DHT recv error");
                            Input::Nothing
                        }
                    },
                    c = self.commands.recv() => Input::Command(c),
                    () = sleep_until(deadline) => Input::Timer,
                },
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
                Input::Datagram(from, n) => {
                    if let Some(b) = buf.get(..n) {
                        self.dht.handle_datagram(now, from, b);
                    }
                }
                Input::Owned(d) => self.dht.handle_datagram(now, d.addr, &d.payload),
                Input::Timer => self.dht.handle_timeout(now),
                Input::Nothing => {}
                Input::Command(None | Some(Command::Shutdown)) => break,
                Input::Command(Some(c)) => self.command(now, c),
            }
            self.table_size
                .store(self.dht.routing_table().len(), Ordering::Relaxed);
        }
        debug!("DHT node stopped");
    }

    /// Drains transmits and events until both are empty (an event can start a lookup,
    /// such as the write phase of a mutable put, which queues more transmits).
    async fn flush(&mut self) {
        loop {
            let mut any = false;
            while let Some(t) = self.dht.poll_transmit() {
                any = true;
                match &self.io {
                    Io::Socket(socket) => {
                        if let Err(e) = socket.send_to(&t.payload, t.dest).await {
                            trace!(dest = %t.dest, error = %e, "DHT send failed");
                        }
                    }
                    Io::Channels { outgoing, .. } => {
                        // A full channel drops the datagram, as a full socket buffer would.
                        let _ = outgoing.try_send(Datagram {
                            addr: t.dest,
                            payload: t.payload,
                        });
                    }
                }
            }
            while let Some(e) = self.dht.poll_event() {
                any = true;
                self.event(e);
            }
            if !any {
                return;
            }
        }
    }

    fn alert(&self, e: DhtEvent) {
        let _ = self.events.send(e);
    }

    fn command(&mut self, now: std::time::Instant, c: Command) {
        match c {
            Command::AddNode(addr) => {
                self.dht.add_node(now, addr);
                if self.dht.routing_table().len() < 8 && self.next_bootstrap.is_none() {
                    self.next_bootstrap = Some(Instant::now() + Duration::from_millis(300));
                }
            }
            Command::AddRouter(addr) => {
                self.dht.add_router(addr);
                self.next_bootstrap = Some(Instant::now());
            }
            Command::GetPeers { info_hash, reply } => match self.dht.get_peers(now, info_hash) {
                Ok(lid) => {
                    self.waiters.insert(
                        lid,
                        Waiter::Peers {
                            peers: Vec::new(),
                            reply,
                        },
                    );
                }
                Err(_) => {
                    let _ = reply.send(Vec::new());
                }
            },
            Command::Announce {
                info_hash,
                port,
                reply,
            } => match self.dht.announce(now, info_hash, port) {
                Ok(lid) => {
                    self.waiters.insert(
                        lid,
                        Waiter::Announce {
                            peers: Vec::new(),
                            reply,
                        },
                    );
                }
                Err(e) => {
                    let _ = reply.send(Err(e.into()));
                }
            },
            Command::PutImmutable { v, reply } => match self.dht.put_immutable(now, v) {
                Ok((lid, target)) => {
                    self.waiters.insert(
                        lid,
                        Waiter::Put {
                            target,
                            seq: None,
                            reply,
                        },
                    );
                }
                Err(e) => {
                    let _ = reply.send(Err(e.into()));
                }
            },
            Command::GetImmutable { target, reply } => match self.dht.get_immutable(now, target) {
                Ok(lid) => {
                    self.waiters.insert(lid, Waiter::GetImmutable { reply });
                }
                Err(_) => {
                    let _ = reply.send(None);
                }
            },
            Command::PutMutable {
                secret,
                salt,
                v,
                reply,
            } => match self.dht.get_mutable(now, public_key(&secret), &salt, None) {
                Ok(lid) => {
                    self.waiters.insert(
                        lid,
                        Waiter::PutMutableRead {
                            secret,
                            salt,
                            v,
                            best: None,
                            reply,
                        },
                    );
                }
                Err(e) => {
                    let _ = reply.send(Err(e.into()));
                }
            },
            Command::GetMutable { k, salt, reply } => {
                match self.dht.get_mutable(now, k, &salt, None) {
                    Ok(lid) => {
                        self.waiters
                            .insert(lid, Waiter::GetMutable { best: None, reply });
                    }
                    Err(_) => {
                        let _ = reply.send(None);
                    }
                }
            }
            Command::State { reply } => {
                let mut state = self.dht.state(now);
                state.nodes.truncate(crate::state::MAX_SAVED_NODES);
                let _ = reply.send(state);
            }
            Command::Shutdown => {}
        }
    }

    fn event(&mut self, e: Event) {
        match e {
            Event::BootstrapDone { nodes } => {
                self.bootstrapping = false;
                if nodes < 8 {
                    // Still lonely: try again (routers or nodes may have come up since).
                    self.next_bootstrap = Some(Instant::now() + Duration::from_secs(5));
                }
                self.alert(DhtEvent::BootstrapDone { nodes });
            }
            Event::Peers {
                lookup,
                info_hash,
                peers,
            } => {
                if let Some(
                    Waiter::Peers { peers: all, .. } | Waiter::Announce { peers: all, .. },
                ) = self.waiters.get_mut(&lookup)
                {
                    for p in &peers {
                        if all.len() < MAX_PEERS_PER_CALL && !all.contains(p) {
                            all.push(*p);
                        }
                    }
                }
                self.alert(DhtEvent::GetPeersReply { info_hash, peers });
            }
            Event::Item { lookup, item, .. } => match (self.waiters.remove(&lookup), item) {
                (Some(Waiter::GetImmutable { reply }), Item::Immutable { v }) => {
                    let _ = reply.send(Some(v));
                }
                (Some(Waiter::GetMutable { reply, .. }), Item::Mutable(m)) => {
                    self.waiters.insert(
                        lookup,
                        Waiter::GetMutable {
                            best: Some(m),
                            reply,
                        },
                    );
                }
                (
                    Some(Waiter::PutMutableRead {
                        secret,
                        salt,
                        v,
                        reply,
                        ..
                    }),
                    Item::Mutable(m),
                ) => {
                    self.waiters.insert(
                        lookup,
                        Waiter::PutMutableRead {
                            secret,
                            salt,
                            v,
                            best: Some(m),
                            reply,
                        },
                    );
                }
                (Some(w), _) => {
                    self.waiters.insert(lookup, w);
                }
                (None, _) => {}
            },
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
                self.lookup_done(lookup, target, announced);
            }
            Event::IncomingAnnounce { info_hash, peer } => {
                self.alert(DhtEvent::IncomingAnnounce { info_hash, peer });
            }
            Event::ExternalAddress { addr } => self.alert(DhtEvent::ExternalAddress { addr }),
        }
    }

    fn lookup_done(&mut self, lookup: LookupId, target: Sha1Hash, announced: usize) {
        let Some(w) = self.waiters.remove(&lookup) else {
            return;
        };
        match w {
            Waiter::Peers { peers, reply } => {
                let _ = reply.send(peers);
            }
            Waiter::Announce { peers, reply } => {
                let _ = reply.send(Ok(PutOutcome {
                    target,
                    stored_on: announced,
                    seq: None,
                    peers,
                }));
            }
            Waiter::Put { target, seq, reply } => {
                let _ = reply.send(Ok(PutOutcome {
                    target,
                    stored_on: announced,
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
                let started = MutableItem::sign(&secret, &salt, seq, &v)
                    .map_err(DhtError::from)
                    .and_then(|item| self.dht.put_mutable(now, item, cas).map_err(DhtError::from));
                match started {
                    Ok(lid) => {
                        self.waiters.insert(
                            lid,
                            Waiter::Put {
                                target,
                                seq: Some(seq),
                                reply,
                            },
                        );
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
            }
        }
    }
}

enum Input {
    Datagram(SocketAddr, usize),
    Owned(Datagram),
    Command(Option<Command>),
    Timer,
    Nothing,
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
