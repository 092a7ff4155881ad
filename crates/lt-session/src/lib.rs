//! The lt BitTorrent session: the tokio shell around [`lt_engine::Engine`] and the public
//! API (the libtorrent manual's `session`, `torrent_handle`, `torrent_status`, `peer_info`
//! and alerts, in Rust idiom).
//!
//! ```text
//!  Session::new(settings) ── a tokio runtime (2 workers) runs one engine loop:
//!
//!   listeners ─accept─▶ first bytes: plaintext or MSE (skey lookup) ─┐
//!   Action::Connect ──▶ TCP connect (+ MSE, plaintext retry) ────────┤ Input channel
//!   per-connection reader (256 KiB reads) ───────── Data ────────────┤ (bounded: back-
//!   disk jobs on blocking threads ───────────────── DiskDone ────────┤  pressure)
//!   tracker tasks (reqwest HTTP(S), UDP) ─────────── announce result ┘
//!                                                                    ▼
//!                                   Mutex<Engine>: inputs ▶ actions, alerts, next timer
//!   per-connection writer ◀── Send (vectored writes of header + payload buffers)
//!   TorrentHandle / Session methods lock the engine briefly, call it, and wake the loop.
//! ```
//!
//! Every method is synchronous and short (it locks the engine, never waits on the
//! network), so the API works the same from plain threads and from async code; alerts
//! can be waited for both ways ([`Session::wait_for_alert`],
//! [`Session::next_alerts`]).
//!
//! Storage is [`lt_storage::FsStorage`] under each torrent's save path (sparse files, part
//! file for priority-0 files); pieces are hashed from the blocks in memory and written
//! with one vectored write, so a piece that fails its hash check never touches the disk.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod dht;
mod disk;
mod io;
mod lsd;
mod nat;
mod tracker;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use lt_core::{Fingerprint, InfoHash, PeerId, PieceIndex};
pub use lt_dht::DhtState;
use lt_engine::{Action, AddTorrent, ConnId, DiskJob, Engine, Handshake, Input, Transport};
pub use lt_engine::{
    Alert, AlertCategory, DisconnectReason, IpAccess, IpFilter, MixedMode, PartialPiece, PeerInfo,
    PerformanceWarning, PortFilter, SeedChoking, Settings, TorrentFlags, TorrentId, TorrentState,
    TorrentStatus,
};
pub use lt_metainfo::MagnetLink;
use lt_metainfo::TorrentInfo;
pub use lt_nat::Protocol as PortProtocol;
pub use lt_storage::ResumeData;
use lt_storage::{Allocation, FsOptions, FsStorage};
pub use lt_wire::mse::{EncLevel, EncPolicy};
use tokio::sync::{Notify, mpsc};

use crate::disk::{DiskOutput, TorrentIo};
use crate::io::Skeys;

/// Fills `buf` from the operating system's random source (or, if it fails, from the clock
/// and the process id, which is only used for peer ids and protocol nonces).
pub(crate) fn random_bytes(buf: &mut [u8]) {
    use rand_core::TryRngCore as _;
    if rand_core::OsRng.try_fill_bytes(buf).is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let seed = t ^ u128::from(std::process::id());
        for (i, b) in buf.iter_mut().enumerate() {
            *b = seed.to_le_bytes()[i % 16] ^ u8::try_from(i % 256).unwrap_or(0);
        }
    }
}

/// Errors of the session API.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Listening failed on every interface.
    #[error("could not listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The runtime could not start.
    #[error("could not start the session's runtime: {0}")]
    Runtime(std::io::Error),
    /// The storage could not be set up.
    #[error("storage: {0}")]
    Storage(#[from] lt_storage::Error),
    /// The engine refused the torrent.
    #[error(transparent)]
    Add(#[from] lt_engine::AddError),
    /// A saved session state that cannot be read.
    #[error("session state: {0}")]
    State(String),
    /// Metadata that cannot be used.
    #[error("metadata: {0}")]
    Metadata(lt_metainfo::Error),
    /// The torrent is no longer in the session.
    #[error("invalid torrent handle")]
    InvalidHandle,
}

/// Session settings: the engine's [`Settings`] and what the shell itself needs.
#[derive(Clone, Debug)]
pub struct SessionSettings {
    /// The engine's settings (the manual's `session_settings`).
    pub engine: Settings,
    /// Where to listen (the manual's `listen_interfaces`). Default `0.0.0.0:6881` and
    /// `[::]:6881`. Port 0 picks a free port (the same one on every interface).
    pub listen_interfaces: Vec<SocketAddr>,
    /// When a port is taken, try this many following ports (`listen_on`'s port range).
    /// Default 10.
    pub listen_port_retries: u16,
    /// The fingerprint at the start of our peer id. Default `-RL0100-` (lt 0.1: "LT" is libtorrent-rasterbar's and "LR" LibreTorrent's).
    pub fingerprint: Fingerprint,
    /// Threads hashing files during a recheck. Default: every core.
    pub check_threads: usize,
    /// Alerts let through. Default [`AlertCategory::default_mask`].
    pub alert_mask: AlertCategory,
    /// Tokio worker threads of the session's runtime. Default 2.
    pub worker_threads: usize,
    /// Map the listen port on the gateway with UPnP IGD (the manual's `start_upnp`).
    /// Default `false`: unlike libtorrent, lt talks to the LAN's gateway only when asked.
    pub enable_upnp: bool,
    /// Map the listen port with NAT-PMP, or PCP where the gateway has it (the manual's
    /// `start_natpmp`). Default `false`.
    pub enable_natpmp: bool,
    /// The NAT-PMP/PCP gateway; `None`: the default route's gateway.
    pub natpmp_gateway: Option<Ipv4Addr>,
    /// Run a DHT node (the manual's `start_dht`). Default `true`; it talks only to the
    /// nodes below and those peers name, since lt ships no public routers.
    pub enable_dht: bool,
    /// DHT nodes to start from (`add_dht_node`).
    pub dht_bootstrap_nodes: Vec<SocketAddr>,
    /// DHT routers to bootstrap from (`add_dht_router`; never put in the routing table).
    pub dht_routers: Vec<SocketAddr>,
    /// A saved DHT state (node id and nodes), from [`Session::dht_state`].
    pub dht_state: Option<DhtState>,
    /// How often each torrent is announced on the DHT. Default 15 min.
    pub dht_announce_interval: Duration,
    /// The DHT node's settings (the manual's `dht_settings`: bucket size, lookup
    /// parallelism, timeouts, rate limits, store limits, read-only mode...).
    pub dht_settings: lt_dht::Config,
    /// Local service discovery (BEP 14, the manual's `start_lsd`): multicast announces on
    /// the LAN. Default `false`: lt sends nothing to the LAN unless asked.
    pub enable_lsd: bool,
    /// How often each torrent is announced by LSD. Default 5 min.
    pub lsd_announce_interval: Duration,
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self {
            engine: Settings::default(),
            listen_interfaces: vec![
                SocketAddr::from((Ipv4Addr::UNSPECIFIED, 6881)),
                SocketAddr::from((Ipv6Addr::UNSPECIFIED, 6881)),
            ],
            listen_port_retries: 10,
            fingerprint: Fingerprint::new(*b"RL", 0, 1, 0, 0),
            check_threads: std::thread::available_parallelism().map_or(2, std::num::NonZero::get),
            alert_mask: AlertCategory::default_mask(),
            worker_threads: 2,
            enable_upnp: false,
            enable_natpmp: false,
            natpmp_gateway: None,
            enable_dht: true,
            dht_bootstrap_nodes: Vec::new(),
            dht_routers: Vec::new(),
            dht_state: None,
            dht_announce_interval: Duration::from_secs(15 * 60),
            dht_settings: lt_dht::Config::default(),
            enable_lsd: false,
            lsd_announce_interval: Duration::from_secs(5 * 60),
        }
    }
}

impl SessionSettings {
    /// Applies a state saved by [`Session::save_state`] (the manual's `load_state`).
    ///
    /// # Errors
    /// [`Error::State`] when the bytes are not such a state.
    pub fn load_state(&mut self, state: &[u8]) -> Result<(), Error> {
        let doc = lt_bencode::decode(state).map_err(|e| Error::State(e.to_string()))?;
        let root = doc
            .root()
            .as_dict()
            .ok_or_else(|| Error::State("not a dictionary".into()))?;
        if let Some(s) = root.get_dict("settings") {
            let u = |k: &str| s.get_int(k).and_then(|v| u64::try_from(v).ok());
            let n = |k: &str| u(k).and_then(|v| usize::try_from(v).ok());
            let e = &mut self.engine;
            e.upload_rate_limit = u("upload_rate_limit").unwrap_or(e.upload_rate_limit);
            e.download_rate_limit = u("download_rate_limit").unwrap_or(e.download_rate_limit);
            e.connections_limit = n("connections_limit").unwrap_or(e.connections_limit);
            e.unchoke_slots_limit = n("unchoke_slots_limit").unwrap_or(e.unchoke_slots_limit);
            e.active_downloads = n("active_downloads").unwrap_or(e.active_downloads);
            e.active_seeds = n("active_seeds").unwrap_or(e.active_seeds);
            e.active_limit = n("active_limit").unwrap_or(e.active_limit);
            let b = |k: &str| s.get_int(k).map(|v| v != 0);
            e.rate_limit_ip_overhead =
                b("rate_limit_ip_overhead").unwrap_or(e.rate_limit_ip_overhead);
            e.ignore_limits_on_local_network =
                b("ignore_limits_on_local_network").unwrap_or(e.ignore_limits_on_local_network);
        }
        if let Some(d) = root.get_bytes("dht state") {
            self.dht_state =
                Some(DhtState::from_bencode(d).map_err(|e| Error::State(e.to_string()))?);
        }
        Ok(())
    }
}

/// Storage allocation (the manual's `storage_mode`; libtorrent 2 dropped compact mode).
pub type StorageMode = Allocation;

/// Where a torrent's metadata comes from.
#[derive(Clone, Debug)]
pub enum TorrentSource {
    /// A .torrent file's contents.
    Info(Arc<TorrentInfo>),
    /// A magnet link: the metadata is fetched from peers (BEP 9), unless the resume data
    /// holds it.
    Magnet(MagnetLink),
}

/// What to add (the manual's `add_torrent_params`).
#[derive(Clone, Debug)]
pub struct AddTorrentParams {
    /// The torrent or magnet link.
    pub source: TorrentSource,
    /// Where its files go (the torrent's name is a folder or file inside).
    pub save_path: PathBuf,
    /// Sparse (default) or full allocation.
    pub storage_mode: StorageMode,
    /// Resume data from an earlier [`TorrentHandle::save_resume_data`].
    pub resume: Option<ResumeData>,
    /// File priorities (0 to 7); files of priority 0 are not downloaded.
    pub file_priorities: Vec<u8>,
    /// More trackers, as tiers.
    pub trackers: Vec<Vec<String>>,
    /// Peers to connect to.
    pub peers: Vec<SocketAddr>,
    /// Flags.
    pub flags: TorrentFlags,
    /// Per-torrent connection limit.
    pub max_connections: Option<usize>,
    /// Per-torrent unchoke limit.
    pub max_uploads: Option<usize>,
    /// Upload limit, bytes per second (0: none).
    pub upload_limit: u64,
    /// Download limit, bytes per second (0: none).
    pub download_limit: u64,
}

impl AddTorrentParams {
    /// Defaults for `info` saved under `save_path`.
    #[must_use]
    pub fn new(info: Arc<TorrentInfo>, save_path: impl Into<PathBuf>) -> Self {
        Self::with_source(TorrentSource::Info(info), save_path.into())
    }

    /// Defaults for a magnet link saved under `save_path`.
    #[must_use]
    pub fn from_magnet(link: MagnetLink, save_path: impl Into<PathBuf>) -> Self {
        Self::with_source(TorrentSource::Magnet(link), save_path.into())
    }

    fn with_source(source: TorrentSource, save_path: PathBuf) -> Self {
        Self {
            source,
            save_path,
            storage_mode: Allocation::Sparse,
            resume: None,
            file_priorities: Vec::new(),
            trackers: Vec::new(),
            peers: Vec::new(),
            flags: TorrentFlags::default(),
            max_connections: None,
            max_uploads: None,
            upload_limit: 0,
            download_limit: 0,
        }
    }
}

/// What reaches the engine loop: events for the engine as they are, and the few that
/// carry a socket or writer the loop keeps before the engine hears of them.
pub(crate) enum Event {
    /// An event for the engine.
    Engine(Input),
    /// A dialled connection is up: the loop keeps its writer, then tells the engine.
    Connected {
        conn: ConnId,
        writer: mpsc::UnboundedSender<Vec<Bytes>>,
        transport: Transport,
        handshake: Handshake,
    },
    /// An accepted connection got past its first bytes (and MSE); the engine decides
    /// whether to keep it.
    Incoming {
        addr: SocketAddr,
        stream: io::PeerStream,
        handshake: Handshake,
    },
    /// An alert from the shell (DHT, port mapping, disk).
    Alert(Alert),
}

/// What the API and the loop share.
struct Shared {
    engine: Mutex<Engine>,
    wake: Notify,
    alerts: Mutex<VecDeque<Alert>>,
    alert_cv: Condvar,
    alert_notify: Notify,
    torrents: RwLock<BTreeMap<TorrentId, Arc<TorrentIo>>>,
    skeys: Skeys,
    listen: Vec<SocketAddr>,
    closed: AtomicBool,
    /// The DHT node while it runs (the manual's `start_dht`/`stop_dht`).
    dht: Mutex<Option<lt_dht::tokio::DhtHandle>>,
    /// The state of the last node stopped, for the next start.
    dht_saved: Mutex<Option<DhtState>>,
}

impl Shared {
    fn dht(&self) -> Option<lt_dht::tokio::DhtHandle> {
        self.dht
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn engine(&self) -> MutexGuard<'_, Engine> {
        self.engine.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Calls `f` on the engine and wakes the loop to carry out what it produced.
    fn with<R>(&self, f: impl FnOnce(&mut Engine, Instant) -> R) -> R {
        let r = f(&mut self.engine(), Instant::now());
        self.wake.notify_one();
        r
    }

    fn push_alerts(&self, engine: &mut Engine) {
        let mut got = false;
        let mut q = self.alerts.lock().unwrap_or_else(PoisonError::into_inner);
        while let Some(a) = engine.poll_alert() {
            q.push_back(a);
            got = true;
        }
        drop(q);
        if got {
            self.alert_cv.notify_all();
            self.alert_notify.notify_waiters();
        }
    }
}

/// A BitTorrent session: listeners, torrents, peers, trackers and the disk.
///
/// ```no_run
/// use std::sync::Arc;
/// use lt_session::{AddTorrentParams, Session, SessionSettings};
///
/// let info = Arc::new(lt_metainfo::TorrentInfo::from_bytes(&std::fs::read("a.torrent")?)?);
/// let session = Session::new(SessionSettings::default())?;
/// let handle = session.add_torrent(AddTorrentParams::new(info, "downloads"))?;
/// while !handle.status()?.is_seeding {
///     session.wait_for_alert(std::time::Duration::from_secs(1));
///     for alert in session.pop_alerts() {
///         println!("{alert:?}");
///     }
/// }
/// session.shutdown();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Session {
    shared: Arc<Shared>,
    runtime: Option<tokio::runtime::Runtime>,
    settings: SessionSettings,
    nat: Option<nat::NatHandle>,
    dht: dht::DhtStarter,
    /// Where the DHT's peers and alerts go.
    inputs: mpsc::Sender<Event>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("listen", &self.shared.listen)
            .finish_non_exhaustive()
    }
}

fn bind_udp(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    let domain = if addr.is_ipv4() {
        socket2::Domain::IPV4
    } else {
        socket2::Domain::IPV6
    };
    let s = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.bind(&addr.into())?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let domain = if addr.is_ipv4() {
        socket2::Domain::IPV4
    } else {
        socket2::Domain::IPV6
    };
    let s = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_reuse_address(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

/// Binds every interface on one port, trying the following ports when it is taken.
fn listen_all(settings: &SessionSettings) -> Result<Vec<std::net::TcpListener>, Error> {
    let Some(first) = settings.listen_interfaces.first().copied() else {
        return Ok(Vec::new());
    };
    let mut last_err = None;
    for k in 0..=settings.listen_port_retries {
        let port = if first.port() == 0 {
            0
        } else {
            first.port().saturating_add(k)
        };
        let mut out = Vec::new();
        let mut chosen = port;
        let mut failed = false;
        for (i, a) in settings.listen_interfaces.iter().enumerate() {
            let addr = SocketAddr::new(a.ip(), chosen);
            match bind(addr) {
                Ok(l) => {
                    if i == 0 {
                        chosen = l.local_addr().map_or(chosen, |a| a.port());
                    }
                    out.push(l);
                }
                Err(e) if i == 0 => {
                    last_err = Some((addr, e));
                    failed = true;
                    break;
                }
                // A secondary interface (e.g. no IPv6 here) is skipped.
                Err(_) => {}
            }
        }
        if !failed {
            return Ok(out);
        }
        if first.port() == 0 {
            break;
        }
    }
    let (addr, source) = last_err.unwrap_or_else(|| (first, std::io::Error::other("no interface")));
    Err(Error::Listen { addr, source })
}

impl Session {
    /// Starts a session: binds the listen interfaces and starts the engine loop on a
    /// runtime of its own.
    ///
    /// # Errors
    /// [`Error::Listen`] when the first interface cannot be bound on any port of the range,
    /// [`Error::Runtime`].
    pub fn new(settings: SessionSettings) -> Result<Self, Error> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(settings.worker_threads.max(1))
            .thread_name("lt-session")
            .enable_all()
            .build()
            .map_err(Error::Runtime)?;
        let listeners = listen_all(&settings)?;
        let listen: Vec<SocketAddr> = listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect();
        // uTP on the same port numbers, over UDP.
        let mut utp = Vec::new();
        if settings.engine.enable_incoming_utp || settings.engine.enable_outgoing_utp {
            let _guard = runtime.enter();
            for &addr in &listen {
                match bind_udp(addr).and_then(lt_utp::tokio::UtpSocket::from_std) {
                    Ok(u) => utp.push(u),
                    Err(e) => tracing::warn!("uTP on {addr}: {e}"),
                }
            }
        }
        let mut random = [0u8; 12];
        random_bytes(&mut random);
        let peer_id = PeerId::generate(&settings.fingerprint, random);
        let mut seed = [0u8; 32];
        random_bytes(&mut seed);
        let now = Instant::now();
        let mut engine = Engine::new(settings.engine.clone(), peer_id, seed, now);
        engine.set_alert_mask(settings.alert_mask);
        engine.set_listen_port(listen.first().map_or(0, SocketAddr::port));
        for &addr in &listen {
            engine.post_alert(Alert::ListenSucceeded { addr });
        }
        let shared = Arc::new(Shared {
            engine: Mutex::new(engine),
            wake: Notify::new(),
            alerts: Mutex::new(VecDeque::new()),
            alert_cv: Condvar::new(),
            alert_notify: Notify::new(),
            torrents: RwLock::new(BTreeMap::new()),
            skeys: Arc::new(RwLock::new(HashMap::new())),
            listen,
            closed: AtomicBool::new(false),
            dht: Mutex::new(None),
            dht_saved: Mutex::new(None),
        });
        let (tx, rx) = mpsc::channel::<Event>(1024);
        let handshake_timeout = settings.engine.handshake_timeout;
        {
            let _guard = runtime.enter();
            for l in listeners {
                let Ok(listener) = tokio::net::TcpListener::from_std(l) else {
                    continue;
                };
                let shared = Arc::clone(&shared);
                let tx = tx.clone();
                let incoming_tcp = settings.engine.enable_incoming_tcp;
                runtime.spawn(async move {
                    loop {
                        let Ok((stream, addr)) = listener.accept().await else {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        };
                        if shared.closed.load(Ordering::Relaxed) {
                            return;
                        }
                        if !incoming_tcp {
                            continue;
                        }
                        let stream = io::PeerStream::Tcp(stream);
                        let config = shared.engine().mse_config();
                        tokio::spawn(io::accept(
                            stream,
                            addr,
                            config,
                            Arc::clone(&shared.skeys),
                            handshake_timeout,
                            tx.clone(),
                        ));
                    }
                });
            }
        }
        if settings.engine.enable_incoming_utp {
            for u in &utp {
                let u = u.clone();
                let shared = Arc::clone(&shared);
                let tx = tx.clone();
                runtime.spawn(async move {
                    while let Ok((stream, addr)) = u.accept().await {
                        if shared.closed.load(Ordering::Relaxed) {
                            return;
                        }
                        let config = shared.engine().mse_config();
                        tokio::spawn(io::accept(
                            io::PeerStream::Utp(stream),
                            addr,
                            config,
                            Arc::clone(&shared.skeys),
                            handshake_timeout,
                            tx.clone(),
                        ));
                    }
                });
            }
        }
        let dialer = io::Dialer {
            utp: utp.clone(),
            config: shared.engine().mse_config(),
            timeout: settings.engine.peer_connect_timeout,
        };
        let dht = dht::DhtStarter::new(
            &runtime,
            utp.iter().find(|u| u.local_addr().is_ipv4()),
            shared.listen.iter().copied().find(SocketAddr::is_ipv4),
        );
        if settings.enable_lsd {
            let _guard = runtime.enter();
            if let Some(sock) = lsd::bind() {
                let port = shared.listen.first().map_or(0, SocketAddr::port);
                runtime.spawn(lsd::run(
                    sock,
                    Arc::clone(&shared),
                    port,
                    settings.lsd_announce_interval,
                ));
            }
        }
        let check_threads = settings.check_threads.max(1);
        let nat = (settings.enable_upnp || settings.enable_natpmp).then(|| {
            let port = shared.listen.first().map_or(0, SocketAddr::port);
            nat::start(&runtime, &settings, port, tx.clone())
        });
        runtime.spawn(engine_loop(
            Arc::clone(&shared),
            rx,
            tx.clone(),
            check_threads,
            dialer,
        ));
        let session = Self {
            shared,
            runtime: Some(runtime),
            nat,
            dht,
            inputs: tx,
            settings,
        };
        if session.settings.enable_dht {
            session.start_dht();
        }
        Ok(session)
    }

    /// Starts the DHT node (the manual's `start_dht`) if it is not running. It keeps the
    /// node id and nodes of the last node this session stopped.
    pub fn start_dht(&self) {
        let mut running = self
            .shared
            .dht
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if running.is_some() {
            return;
        }
        let state = self
            .shared
            .dht_saved
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(d) = self.dht.start(&self.settings, state) else {
            return;
        };
        let port = self.shared.listen.first().map_or(0, SocketAddr::port);
        self.shared.engine().set_dht_port(Some(port));
        if let Some(rt) = &self.runtime {
            rt.spawn(dht::run(
                d.clone(),
                Arc::clone(&self.shared),
                self.inputs.clone(),
                port,
                self.settings.dht_announce_interval,
            ));
        }
        *running = Some(d);
    }

    /// Stops the DHT node (the manual's `stop_dht`); its node id and nodes are kept for
    /// the next [`start_dht`](Self::start_dht).
    pub fn stop_dht(&self) {
        let state = self.dht_state();
        let Some(d) = self
            .shared
            .dht
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        else {
            return;
        };
        *self
            .shared
            .dht_saved
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = state;
        d.shutdown();
        self.dht.stopped();
        self.shared.engine().set_dht_port(None);
    }

    /// The addresses we listen on.
    #[must_use]
    pub fn listen_addrs(&self) -> &[SocketAddr] {
        &self.shared.listen
    }

    /// The port we listen on (0 when not listening).
    #[must_use]
    pub fn listen_port(&self) -> u16 {
        self.shared.listen.first().map_or(0, SocketAddr::port)
    }

    /// Our peer id.
    #[must_use]
    pub fn peer_id(&self) -> PeerId {
        self.shared.engine().peer_id()
    }

    /// Adds a torrent and returns its handle (the manual's `add_torrent`).
    ///
    /// # Errors
    /// [`Error::Storage`] when the save path cannot be used, [`Error::Add`].
    pub fn add_torrent(&self, params: AddTorrentParams) -> Result<TorrentHandle, Error> {
        // A magnet whose resume data holds the metadata is added as a torrent.
        let resumed_info = match (&params.source, &params.resume) {
            (TorrentSource::Magnet(link), Some(r)) => r
                .info
                .as_deref()
                .and_then(|b| {
                    TorrentInfo::from_info_bytes(b, &lt_metainfo::LoadLimits::default()).ok()
                })
                .filter(|i| {
                    i.info_hash() == link.info_hash
                        || i.info_hash().v1_hash() == link.info_hash.v1_hash()
                })
                .map(Arc::new),
            _ => None,
        };
        let mut add = match (&params.source, resumed_info) {
            (TorrentSource::Info(info), _) => AddTorrent::new(Arc::clone(info)),
            (TorrentSource::Magnet(_), Some(info)) => AddTorrent::new(info),
            (TorrentSource::Magnet(link), None) => {
                AddTorrent::from_magnet(link).map_err(Error::Metadata)?
            }
        };
        if let TorrentSource::Magnet(link) = &params.source {
            add.trackers = link.trackers.iter().map(|t| vec![t.clone()]).collect();
            add.peers = link.peer_addrs();
        }
        let info = Arc::clone(&add.info);
        let ih = add.metadata_for.unwrap_or_else(|| info.info_hash());
        let options = FsOptions {
            allocation: params.storage_mode,
            file_priorities: params.file_priorities.clone(),
            ..FsOptions::default()
        };
        let storage = FsStorage::new(info.files().clone(), &params.save_path, options.clone())?;
        let mut engine = self.shared.engine();
        if let Some(id) = engine.find_torrent(&ih) {
            if params.flags.duplicate_is_error {
                return Err(Error::Add(lt_engine::AddError::Duplicate(id)));
            }
            return Ok(self.handle(id));
        }
        let io = Arc::new(TorrentIo {
            storage: RwLock::new(Box::new(storage)),
            info: Arc::clone(&info),
            save_path: RwLock::new(params.save_path.clone()),
            write_lock: Mutex::new(()),
            options,
            read_cache: Mutex::default(),
        });
        add.resume = params.resume;
        add.trackers.extend(params.trackers);
        add.peers.extend(params.peers);
        add.file_priorities = params.file_priorities;
        add.flags = params.flags;
        add.max_connections = params.max_connections;
        add.max_uploads = params.max_uploads;
        add.upload_limit = params.upload_limit;
        add.download_limit = params.download_limit;
        // The storage is registered before the loop runs the engine's first disk job: the
        // engine lock is held until then.
        let id = engine.add_torrent(Instant::now(), add)?;
        self.shared
            .torrents
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, io);
        let mut skeys = self
            .shared
            .skeys
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        for h in ih.wire_hashes() {
            skeys.insert(lt_wire::mse::skey_hash(&h), h);
        }
        drop(skeys);
        self.shared.push_alerts(&mut engine);
        drop(engine);
        self.shared.wake.notify_one();
        Ok(self.handle(id))
    }

    /// Adds a torrent without waiting for the result: [`Alert::TorrentAdded`] or
    /// [`Alert::AddTorrentFailed`] follows (the manual's `async_add_torrent`).
    pub fn async_add_torrent(&self, params: AddTorrentParams) {
        if let Err(e) = self.add_torrent(params) {
            let mut engine = self.shared.engine();
            engine.post_alert(Alert::AddTorrentFailed {
                error: e.to_string(),
            });
            self.shared.push_alerts(&mut engine);
        }
    }

    fn handle(&self, id: TorrentId) -> TorrentHandle {
        TorrentHandle {
            id,
            shared: Arc::clone(&self.shared),
        }
    }

    /// Removes a torrent, optionally deleting its files (the manual's `remove_torrent`).
    pub fn remove_torrent(&self, handle: &TorrentHandle, delete_files: bool) {
        self.shared
            .with(|e, now| e.remove_torrent(now, handle.id, delete_files));
    }

    /// The torrent with this info-hash.
    #[must_use]
    pub fn find_torrent(&self, info_hash: &InfoHash) -> Option<TorrentHandle> {
        let id = self.shared.engine().find_torrent(info_hash)?;
        Some(self.handle(id))
    }

    /// Every torrent.
    #[must_use]
    pub fn torrents(&self) -> Vec<TorrentHandle> {
        let ids = self.shared.engine().torrents();
        ids.into_iter().map(|id| self.handle(id)).collect()
    }

    /// The status of every torrent `pred` accepts (the manual's `get_torrent_status`).
    #[must_use]
    pub fn torrent_status(&self, pred: impl Fn(&TorrentStatus) -> bool) -> Vec<TorrentStatus> {
        let engine = self.shared.engine();
        let now = Instant::now();
        engine
            .torrents()
            .into_iter()
            .filter_map(|id| engine.status(now, id))
            .filter(|s| pred(s))
            .collect()
    }

    /// Pauses every torrent.
    pub fn pause(&self) {
        self.shared.with(Engine::pause);
    }

    /// Resumes the session.
    pub fn resume(&self) {
        self.shared.with(Engine::resume);
    }

    /// Whether the session is paused.
    #[must_use]
    pub fn is_paused(&self) -> bool {
        self.shared.engine().is_paused()
    }

    /// The settings.
    #[must_use]
    pub fn settings(&self) -> Settings {
        self.shared.engine().settings().clone()
    }

    /// Applies new engine settings (limits, timeouts, choking; the listen interfaces stay).
    pub fn apply_settings(&self, settings: Settings) {
        self.shared.with(|e, _| e.apply_settings(settings));
    }

    /// Sets which alert categories are queued.
    pub fn set_alert_mask(&self, mask: AlertCategory) {
        self.shared.engine().set_alert_mask(mask);
    }

    /// Maps a port on the gateway (the manual's `add_port_mapping`); `None` when port
    /// mapping is off or failed to start. [`Alert::PortMap`] or [`Alert::PortMapError`]
    /// follows.
    #[must_use]
    pub fn add_port_mapping(
        &self,
        protocol: PortProtocol,
        external_port: u16,
        local_port: u16,
    ) -> Option<usize> {
        self.nat.as_ref()?.add(protocol, external_port, local_port)
    }

    /// Removes a port mapping (the manual's `delete_port_mapping`).
    pub fn delete_port_mapping(&self, mapping: usize) {
        if let Some(n) = &self.nat {
            n.delete(mapping);
        }
    }

    /// Sets the port filter (the manual's `set_port_filter`): peers on blocked ports are
    /// not dialled (incoming connections are unaffected).
    pub fn set_port_filter(&self, filter: PortFilter) {
        self.shared.with(|e, _| e.set_port_filter(filter));
    }

    /// Sets the IP filter (the manual's `set_ip_filter`).
    pub fn set_ip_filter(&self, filter: IpFilter) {
        self.shared.with(|e, now| e.set_ip_filter(now, filter));
    }

    /// The IP filter.
    #[must_use]
    pub fn ip_filter(&self) -> IpFilter {
        self.shared.engine().ip_filter().clone()
    }

    /// The session's state to keep across runs (the manual's `save_state`): rate,
    /// connection and queue limits and the DHT's node id and nodes, bencoded. Give it to
    /// [`SessionSettings::load_state`] next time.
    #[must_use]
    pub fn save_state(&self) -> Vec<u8> {
        use lt_bencode::Value;
        let s = self.settings();
        let int = |v: u64| Value::Int(i64::try_from(v).unwrap_or(i64::MAX));
        let mut settings = BTreeMap::new();
        for (k, v) in [
            ("upload_rate_limit", s.upload_rate_limit),
            ("download_rate_limit", s.download_rate_limit),
            ("connections_limit", s.connections_limit as u64),
            ("unchoke_slots_limit", s.unchoke_slots_limit as u64),
            ("active_downloads", s.active_downloads as u64),
            ("active_seeds", s.active_seeds as u64),
            ("active_limit", s.active_limit as u64),
            (
                "rate_limit_ip_overhead",
                u64::from(s.rate_limit_ip_overhead),
            ),
            (
                "ignore_limits_on_local_network",
                u64::from(s.ignore_limits_on_local_network),
            ),
        ] {
            settings.insert(k.as_bytes().to_vec(), int(v));
        }
        let mut root = BTreeMap::new();
        root.insert(b"settings".to_vec(), Value::Dict(settings));
        if let Some(d) = self.dht_state() {
            root.insert(b"dht state".to_vec(), Value::Bytes(d.to_bencode()));
        }
        Value::Dict(root).to_bytes()
    }

    /// Whether the DHT runs.
    #[must_use]
    pub fn is_dht_running(&self) -> bool {
        self.shared.dht().is_some()
    }

    /// Adds a DHT node (the manual's `add_dht_node`).
    pub fn add_dht_node(&self, addr: SocketAddr) {
        if let Some(d) = self.shared.dht() {
            d.add_node(addr);
        }
    }

    /// Adds a DHT router (the manual's `add_dht_router`).
    pub fn add_dht_router(&self, addr: SocketAddr) {
        if let Some(d) = self.shared.dht() {
            d.add_router(addr);
        }
    }

    /// Nodes in the DHT's routing table.
    #[must_use]
    pub fn dht_nodes(&self) -> usize {
        self.shared
            .dht()
            .as_ref()
            .map_or(0, lt_dht::tokio::DhtHandle::routing_table_size)
    }

    /// The DHT's state to save (node id and good nodes; the manual's `save_state` for the
    /// DHT), to pass back in [`SessionSettings::dht_state`].
    #[must_use]
    pub fn dht_state(&self) -> Option<DhtState> {
        let d = self.shared.dht()?;
        let rt = self.runtime.as_ref()?;
        let (tx, rx) = std::sync::mpsc::channel();
        rt.spawn(async move {
            let _ = tx.send(d.state().await);
        });
        rx.recv_timeout(Duration::from_secs(5)).ok()
    }

    /// Takes every queued alert.
    #[must_use]
    pub fn pop_alerts(&self) -> Vec<Alert> {
        let mut q = self
            .shared
            .alerts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        q.drain(..).collect()
    }

    /// Waits up to `timeout` for an alert; returns whether one is queued.
    pub fn wait_for_alert(&self, timeout: Duration) -> bool {
        let q = self
            .shared
            .alerts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (q, _) = self
            .shared
            .alert_cv
            .wait_timeout_while(q, timeout, |q| q.is_empty())
            .unwrap_or_else(PoisonError::into_inner);
        !q.is_empty()
    }

    /// Waits for alerts and takes them (async).
    pub async fn next_alerts(&self) -> Vec<Alert> {
        loop {
            let notified = self.shared.alert_notify.notified();
            let got = self.pop_alerts();
            if !got.is_empty() {
                return got;
            }
            notified.await;
        }
    }

    /// Shuts down: announces `stopped` to trackers (waiting at most `stop_tracker_timeout`),
    /// closes every connection, flushes the files and stops the runtime (the manual's
    /// `abort` and `session_proxy`, in one call).
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if self.shared.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        self.shared.with(Engine::shutdown);
        if let Some(n) = self.nat.take() {
            n.shutdown(Duration::from_secs(2));
        }
        if let Some(d) = self
            .shared
            .dht
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            d.shutdown();
        }
        let deadline =
            Instant::now() + self.settings.engine.stop_tracker_timeout + Duration::from_secs(1);
        while Instant::now() < deadline && !self.shared.engine().is_shut_down(Instant::now()) {
            std::thread::sleep(Duration::from_millis(20));
        }
        for io in self
            .shared
            .torrents
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
        {
            let s = io.storage.read().unwrap_or_else(PoisonError::into_inner);
            let _ = s.flush();
            let _ = s.release_files();
        }
        if let Some(rt) = self.runtime.take() {
            if tokio::runtime::Handle::try_current().is_ok() {
                rt.shutdown_background();
            } else {
                rt.shutdown_timeout(Duration::from_secs(1));
            }
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A torrent in a session (the manual's `torrent_handle`). Cheap to clone; methods on a
/// removed torrent do nothing or return [`Error::InvalidHandle`].
#[derive(Clone)]
pub struct TorrentHandle {
    id: TorrentId,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for TorrentHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("TorrentHandle").field(&self.id).finish()
    }
}

impl PartialEq for TorrentHandle {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id && Arc::ptr_eq(&self.shared, &other.shared)
    }
}

impl TorrentHandle {
    /// The torrent's id in the session.
    #[must_use]
    pub const fn id(&self) -> TorrentId {
        self.id
    }

    /// Whether the torrent is still in the session.
    #[must_use]
    pub fn is_valid(&self) -> bool {
        self.shared.engine().torrent_info(self.id).is_some()
    }

    /// Its metadata.
    ///
    /// # Errors
    /// [`Error::InvalidHandle`].
    pub fn torrent_file(&self) -> Result<Arc<TorrentInfo>, Error> {
        self.shared
            .engine()
            .torrent_info(self.id)
            .ok_or(Error::InvalidHandle)
    }

    /// Its info-hashes.
    ///
    /// # Errors
    /// [`Error::InvalidHandle`].
    pub fn info_hash(&self) -> Result<InfoHash, Error> {
        Ok(self.torrent_file()?.info_hash())
    }

    /// Its status (the manual's `status()`).
    ///
    /// # Errors
    /// [`Error::InvalidHandle`].
    pub fn status(&self) -> Result<TorrentStatus, Error> {
        self.shared
            .engine()
            .status(Instant::now(), self.id)
            .ok_or(Error::InvalidHandle)
    }

    /// Its save path.
    #[must_use]
    pub fn save_path(&self) -> Option<PathBuf> {
        let t = self
            .shared
            .torrents
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        t.get(&self.id).map(|io| {
            io.save_path
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
        })
    }

    /// Connected peers (the manual's `get_peer_info`).
    #[must_use]
    pub fn peer_info(&self) -> Vec<PeerInfo> {
        self.shared.engine().peer_info(self.id)
    }

    /// Pieces being downloaded (the manual's `get_download_queue`).
    #[must_use]
    pub fn download_queue(&self) -> Vec<PartialPiece> {
        self.shared.engine().download_queue(self.id)
    }

    /// Bytes downloaded of each file, counting verified pieces.
    #[must_use]
    pub fn file_progress(&self) -> Vec<u64> {
        self.shared.engine().file_progress(self.id)
    }

    /// Pauses the torrent.
    pub fn pause(&self) {
        self.shared.with(|e, now| e.pause_torrent(now, self.id));
    }

    /// Resumes the torrent.
    pub fn resume(&self) {
        self.shared.with(|e, now| e.resume_torrent(now, self.id));
    }

    /// Whether the session's IP filter applies to this torrent (default: yes).
    pub fn set_apply_ip_filter(&self, on: bool) {
        self.shared.with(|e, _| e.set_apply_ip_filter(self.id, on));
    }

    /// Lets the queue start and stop the torrent, or not (the manual's `auto_managed`).
    pub fn set_auto_managed(&self, on: bool) {
        self.shared
            .with(|e, now| e.set_auto_managed(now, self.id, on));
    }

    /// Its place in the download queue (0 first); `None` once finished.
    #[must_use]
    pub fn queue_position(&self) -> Option<u32> {
        self.shared.engine().queue_position(self.id)
    }

    /// One place up the queue.
    pub fn queue_position_up(&self) {
        self.shared.with(|e, now| e.queue_position_up(now, self.id));
    }

    /// One place down the queue.
    pub fn queue_position_down(&self) {
        self.shared
            .with(|e, now| e.queue_position_down(now, self.id));
    }

    /// To the front of the queue.
    pub fn queue_position_top(&self) {
        self.shared
            .with(|e, now| e.queue_position_top(now, self.id));
    }

    /// To the back of the queue.
    pub fn queue_position_bottom(&self) {
        self.shared
            .with(|e, now| e.queue_position_bottom(now, self.id));
    }

    /// Rechecks every piece.
    pub fn force_recheck(&self) {
        self.shared.with(|e, now| e.force_recheck(now, self.id));
    }

    /// Announces to the trackers now.
    pub fn force_reannounce(&self) {
        self.shared.with(|e, now| e.force_reannounce(now, self.id));
    }

    /// Scrapes the first tracker; [`Alert::ScrapeReply`] or [`Alert::ScrapeFailed`]
    /// follows.
    pub fn scrape_tracker(&self) {
        self.shared.with(|e, _| e.scrape_tracker(self.id));
    }

    /// Connects to a peer.
    pub fn connect_peer(&self, addr: SocketAddr) {
        self.shared
            .with(|e, now| e.connect_peer(now, self.id, addr));
    }

    /// Sets the upload limit in bytes per second (0: none).
    pub fn set_upload_limit(&self, limit: u64) {
        self.shared.with(|e, _| e.set_upload_limit(self.id, limit));
    }

    /// Sets the download limit in bytes per second (0: none).
    pub fn set_download_limit(&self, limit: u64) {
        self.shared
            .with(|e, _| e.set_download_limit(self.id, limit));
    }

    /// The upload and download limits.
    #[must_use]
    pub fn limits(&self) -> Option<(u64, u64)> {
        self.shared.engine().limits(self.id)
    }

    /// Sets the connection limit.
    pub fn set_max_connections(&self, max: usize) {
        self.shared.with(|e, _| e.set_max_connections(self.id, max));
    }

    /// Sets the unchoke limit.
    pub fn set_max_uploads(&self, max: Option<usize>) {
        self.shared.with(|e, _| e.set_max_uploads(self.id, max));
    }

    /// Downloads in order, or not.
    pub fn set_sequential_download(&self, on: bool) {
        self.shared
            .with(|e, _| e.set_sequential_download(self.id, on));
    }

    /// Super seeding (BEP 16) on or off: while a seed, offer each new peer one rare piece
    /// at a time instead of a bitfield.
    pub fn set_super_seeding(&self, on: bool) {
        self.shared
            .with(|e, now| e.set_super_seeding(now, self.id, on));
    }

    /// Share mode on or off: download only pieces that can be uploaded
    /// `share_mode_target` times over.
    pub fn set_share_mode(&self, on: bool) {
        self.shared
            .with(|e, now| e.set_share_mode(now, self.id, on));
    }

    /// Upload mode on or off.
    pub fn set_upload_mode(&self, on: bool) {
        self.shared
            .with(|e, now| e.set_upload_mode(now, self.id, on));
    }

    /// Reads a piece; [`Alert::ReadPiece`] brings it.
    pub fn read_piece(&self, piece: PieceIndex) {
        self.shared.with(|e, _| e.read_piece(self.id, piece));
    }

    /// Wants `piece` within `deadline`.
    pub fn set_piece_deadline(&self, piece: PieceIndex, deadline: Duration) {
        self.shared
            .with(|e, now| e.set_piece_deadline(now, self.id, piece, now + deadline));
    }

    /// Forgets a piece's deadline.
    pub fn reset_piece_deadline(&self, piece: PieceIndex) {
        self.shared
            .with(|e, _| e.reset_piece_deadline(self.id, piece));
    }

    /// Whether we have `piece`.
    #[must_use]
    pub fn have_piece(&self, piece: PieceIndex) -> bool {
        self.shared.engine().have_piece(self.id, piece)
    }

    /// Sets one piece's priority (0 to 7).
    pub fn piece_priority(&self, piece: PieceIndex, priority: u8) {
        self.shared
            .with(|e, now| e.set_piece_priority(now, self.id, piece, priority));
    }

    /// Every piece's priority.
    #[must_use]
    pub fn piece_priorities(&self) -> Vec<u8> {
        self.shared.engine().piece_priorities(self.id)
    }

    /// Sets every file's priority (0 to 7).
    pub fn prioritize_files(&self, priorities: &[u8]) {
        self.shared
            .with(|e, now| e.prioritize_files(now, self.id, priorities));
    }

    /// Every file's priority.
    #[must_use]
    pub fn file_priorities(&self) -> Vec<u8> {
        self.shared.engine().file_priorities(self.id)
    }

    /// Moves the files; [`Alert::StorageMoved`] follows.
    pub fn move_storage(&self, path: impl Into<String>) {
        let path = path.into();
        self.shared.with(|e, _| e.move_storage(self.id, path));
    }

    /// Renames a file; [`Alert::FileRenamed`] follows.
    pub fn rename_file(&self, file: u32, name: impl Into<String>) {
        let name = name.into();
        self.shared.with(|e, _| e.rename_file(self.id, file, name));
    }

    /// Saves resume data; [`Alert::SaveResumeData`] brings it.
    pub fn save_resume_data(&self) {
        self.shared.with(|e, now| e.save_resume_data(now, self.id));
    }

    /// The trackers and their state.
    #[must_use]
    pub fn trackers(&self) -> Vec<lt_tracker::AnnounceEntry> {
        self.shared.engine().trackers(self.id)
    }

    /// Adds a tracker.
    pub fn add_tracker(&self, url: &str, tier: u8) {
        self.shared
            .with(|e, now| e.add_tracker(now, self.id, url, tier));
    }
}

/// The engine loop: inputs in, actions out.
#[allow(clippy::too_many_lines)]
async fn engine_loop(
    shared: Arc<Shared>,
    mut rx: mpsc::Receiver<Event>,
    tx: mpsc::Sender<Event>,
    check_threads: usize,
    dialer: io::Dialer,
) {
    let mut writers: HashMap<ConnId, mpsc::UnboundedSender<Vec<Bytes>>> = HashMap::new();
    let mut tasks: HashMap<ConnId, tokio::task::AbortHandle> = HashMap::new();
    let http = {
        let e = shared.engine();
        tracker::http_client(
            &e.settings().user_agent,
            e.settings().tracker_completion_timeout,
        )
    };
    let disk_permits = Arc::new(tokio::sync::Semaphore::new(check_threads.max(2) * 2));
    let mut batch: Vec<Event> = Vec::with_capacity(256);
    let mut served: Vec<lt_engine::DiskDone> = Vec::new();
    let mut actions: Vec<Action> = Vec::new();
    loop {
        let deadline = shared.engine().poll_timeout();
        tokio::select! {
            input = rx.recv() => {
                let Some(input) = input else { return };
                batch.push(input);
                while batch.len() < 256 {
                    match rx.try_recv() {
                        Ok(i) => batch.push(i),
                        Err(_) => break,
                    }
                }
            }
            () = shared.wake.notified() => {}
            () = tokio::time::sleep_until(deadline.into()) => {}
            () = std::future::ready(()), if !served.is_empty() => {}
        }
        {
            let mut engine = shared.engine();
            let now = Instant::now();
            for done in served.drain(..) {
                let _ = engine.handle_input(now, Input::Disk(done));
            }
            for event in batch.drain(..) {
                match event {
                    Event::Connected {
                        conn,
                        writer,
                        transport,
                        handshake,
                    } => {
                        writers.insert(conn, writer);
                        let connected = Input::Connected {
                            conn,
                            transport,
                            handshake,
                        };
                        let _ = engine.handle_input(now, connected);
                    }
                    Event::Incoming {
                        addr,
                        stream,
                        handshake,
                    } => {
                        let incoming = Input::Incoming {
                            addr,
                            transport: stream.transport(),
                            handshake,
                        };
                        // A refused connection is dropped here, which closes it.
                        if let Some(conn) = engine.handle_input(now, incoming) {
                            let (writer, reader) = stream.start(conn, &tx);
                            writers.insert(conn, writer);
                            let t = tokio::spawn(reader);
                            tasks.insert(conn, t.abort_handle());
                        }
                    }
                    Event::Engine(input) => {
                        match &input {
                            Input::ConnectFailed { conn, .. } => {
                                tasks.remove(conn);
                            }
                            Input::Closed { conn, .. } => {
                                writers.remove(conn);
                                tasks.remove(conn);
                            }
                            _ => {}
                        }
                        let _ = engine.handle_input(now, input);
                    }
                    Event::Alert(a) => engine.post_alert(a),
                }
            }
            if engine.poll_timeout() <= now {
                let _ = engine.handle_input(now, Input::Timeout);
            }
            while let Some(a) = engine.poll_action() {
                actions.push(a);
            }
            shared.push_alerts(&mut engine);
        }
        for action in actions.drain(..) {
            match action {
                Action::Send { conn, bufs } => {
                    if let Some(w) = writers.get(&conn) {
                        let _ = w.send(bufs);
                    }
                }
                Action::Close { conn } => {
                    writers.remove(&conn);
                    if let Some(t) = tasks.remove(&conn) {
                        t.abort();
                    }
                }
                Action::Connect {
                    conn,
                    addr,
                    transport,
                    info_hash,
                    encrypt,
                } => {
                    let mut dialer = dialer.clone();
                    dialer.config = shared.engine().mse_config();
                    let t = tokio::spawn(io::connect(
                        conn,
                        addr,
                        transport,
                        info_hash,
                        encrypt,
                        dialer,
                        tx.clone(),
                    ));
                    tasks.insert(conn, t.abort_handle());
                }
                Action::Disk(job) => {
                    let torrent = disk_job_torrent(&job);
                    let Some(io) = shared
                        .torrents
                        .read()
                        .unwrap_or_else(PoisonError::into_inner)
                        .get(&torrent)
                        .cloned()
                    else {
                        continue;
                    };
                    // Blocks of cached pieces are served here, without a disk job.
                    if let DiskJob::Read {
                        torrent,
                        conn,
                        request,
                    } = &job
                        && let Some(data) =
                            io.cached_block(request.piece.get(), request.begin, request.len)
                    {
                        served.push(lt_engine::DiskDone::Read {
                            torrent: *torrent,
                            conn: *conn,
                            request: *request,
                            result: Ok(data),
                        });
                        continue;
                    }
                    let tx = tx.clone();
                    let permits = Arc::clone(&disk_permits);
                    tokio::spawn(async move {
                        let Ok(_permit) = permits.acquire_owned().await else {
                            return;
                        };
                        let out =
                            tokio::task::spawn_blocking(move || disk::run(&io, job, check_threads))
                                .await;
                        match out {
                            Ok(DiskOutput::Done(d)) => {
                                let _ = tx.send(Event::Engine(Input::Disk(d))).await;
                            }
                            Ok(DiskOutput::Alert(a)) => {
                                let _ = tx.send(Event::Alert(a)).await;
                            }
                            Ok(DiskOutput::Nothing) => {}
                            Err(e) => tracing::error!("a disk job failed to run: {e}"),
                        }
                    });
                }
                Action::Announce {
                    torrent,
                    tracker,
                    url,
                    request,
                } => {
                    let tx = tx.clone();
                    let http = http.clone();
                    let timeout = shared.engine().settings().tracker_completion_timeout;
                    tokio::spawn(async move {
                        let result = tracker::announce(&http, &url, &request, timeout).await;
                        let _ = tx
                            .send(Event::Engine(Input::Announced {
                                torrent,
                                tracker,
                                result,
                            }))
                            .await;
                    });
                }
                Action::Scrape {
                    torrent,
                    tracker,
                    url,
                    info_hash,
                } => {
                    let tx = tx.clone();
                    let http = http.clone();
                    let timeout = shared.engine().settings().tracker_completion_timeout;
                    tokio::spawn(async move {
                        let result = tracker::scrape(&http, &url, info_hash, timeout).await;
                        let _ = tx
                            .send(Event::Engine(Input::Scraped {
                                torrent,
                                tracker,
                                result,
                            }))
                            .await;
                    });
                }
                Action::MetadataReceived { torrent, info } => {
                    let old = shared
                        .torrents
                        .read()
                        .unwrap_or_else(PoisonError::into_inner)
                        .get(&torrent)
                        .cloned();
                    let Some(old) = old else { continue };
                    let path = old
                        .save_path
                        .read()
                        .unwrap_or_else(PoisonError::into_inner)
                        .clone();
                    match FsStorage::new(info.files().clone(), &path, old.options.clone()) {
                        Ok(storage) => {
                            let io = Arc::new(TorrentIo {
                                storage: RwLock::new(Box::new(storage)),
                                info,
                                save_path: RwLock::new(path),
                                write_lock: Mutex::new(()),
                                options: old.options.clone(),
                                read_cache: Mutex::default(),
                            });
                            shared
                                .torrents
                                .write()
                                .unwrap_or_else(PoisonError::into_inner)
                                .insert(torrent, io);
                        }
                        Err(e) => {
                            let mut engine = shared.engine();
                            engine.post_alert(Alert::FileError {
                                torrent,
                                error: lt_engine::DiskError::new(
                                    lt_engine::DiskErrorKind::Other,
                                    e.to_string(),
                                ),
                            });
                            shared.push_alerts(&mut engine);
                        }
                    }
                }
                Action::DhtNode { addr } => {
                    if let Some(d) = shared.dht() {
                        d.add_node(addr);
                    }
                }
                Action::RemoveStorage {
                    torrent,
                    delete_files,
                    info_hash,
                } => {
                    let io = shared
                        .torrents
                        .write()
                        .unwrap_or_else(PoisonError::into_inner)
                        .remove(&torrent);
                    {
                        let mut skeys =
                            shared.skeys.write().unwrap_or_else(PoisonError::into_inner);
                        for h in info_hash.wire_hashes() {
                            skeys.remove(&lt_wire::mse::skey_hash(&h));
                        }
                    }
                    if let Some(io) = io {
                        let tx = tx.clone();
                        tokio::task::spawn_blocking(move || {
                            let mut s = io.storage.write().unwrap_or_else(PoisonError::into_inner);
                            let _ = s.flush();
                            let _ = s.release_files();
                            if delete_files {
                                let alert = match s.delete_files() {
                                    Ok(()) => Alert::TorrentDeleted { info_hash },
                                    Err(e) => Alert::TorrentDeleteFailed {
                                        info_hash,
                                        error: e.to_string(),
                                    },
                                };
                                let _ = tx.blocking_send(Event::Alert(alert));
                            }
                        });
                    }
                }
            }
        }
    }
}

const fn disk_job_torrent(job: &DiskJob) -> TorrentId {
    match job {
        DiskJob::Check { torrent, .. }
        | DiskJob::WritePiece { torrent, .. }
        | DiskJob::Read { torrent, .. }
        | DiskJob::ReadPiece { torrent, .. }
        | DiskJob::VerifyPiece { torrent, .. }
        | DiskJob::SaveResume { torrent, .. }
        | DiskJob::Move { torrent, .. }
        | DiskJob::Rename { torrent, .. }
        | DiskJob::FilePriority { torrent, .. } => *torrent,
    }
}
