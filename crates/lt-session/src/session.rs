//! The [`Session`]: the API over the engine, and what it shares with the engine loop.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant};

use lt_core::{InfoHash, PeerId};
pub(crate) use lt_dht::DhtState;
use lt_engine::{AddTorrent, Engine};
pub(crate) use lt_engine::{
    Alert, AlertCategory, IpFilter, PortFilter, SessionStatus, Settings, TorrentId, TorrentStatus,
};
pub(crate) use lt_nat::Protocol as PortProtocol;
use lt_storage::{FsOptions, FsStorage, TorrentStore};
use tokio::sync::{Notify, mpsc};

use crate::AddTorrentParams;
use crate::Error;
use crate::Event;
use crate::SessionSettings;
use crate::TorrentHandle;
use crate::TorrentSource;
use crate::dht;
use crate::disk::TorrentIo;
use crate::driver::engine_loop;
use crate::io;
use crate::listen::bind_udp;
use crate::listen::listen_all;
use crate::lsd;
use crate::nat;
use crate::random_bytes;
use crate::{ProxyKind, ProxySettings};

/// Disk jobs queued at most; past it the loop keeps further jobs until one finishes (the
/// engine bounds the bytes in flight per torrent by `max_queued_disk_bytes`).
const DISK_QUEUE_DEPTH: usize = 1024;

/// What the API and the loop share.
pub(crate) struct Shared {
    pub(crate) engine: Mutex<Engine>,
    pub(crate) wake: Notify,
    pub(crate) alerts: Mutex<VecDeque<Alert>>,
    pub(crate) alert_cv: Condvar,
    pub(crate) alert_notify: Notify,
    pub(crate) torrents: RwLock<BTreeMap<TorrentId, Arc<TorrentIo>>>,
    /// The disk threads (lt-storage's), for every torrent.
    pub(crate) disk: crate::disk::Disk,
    /// The read cache every torrent's store reads through.
    pub(crate) read_cache: Arc<lt_storage::ReadCache>,
    pub(crate) listen: Vec<SocketAddr>,
    pub(crate) closed: AtomicBool,
    /// The DHT node while it runs (the manual's `start_dht`/`stop_dht`).
    pub(crate) dht: Mutex<Option<lt_dht::tokio::DhtHandle>>,
    /// The state of the last node stopped, for the next start.
    pub(crate) dht_saved: Mutex<Option<DhtState>>,
    /// The proxy outgoing connections go through (shared with the dialer).
    pub(crate) proxy: Arc<RwLock<Option<ProxySettings>>>,
    /// Anonymous mode: trackers only through a proxy.
    pub(crate) anonymous: bool,
    /// The SSL listen addresses (none when not listening for SSL).
    pub(crate) ssl_listen: Vec<SocketAddr>,
    /// The SSL torrents' TLS setups, by info-hash (shared with the dialer).
    pub(crate) ssl: Arc<crate::ssl::SslContexts>,
    /// Local service discovery's socket while LSD runs (`start_lsd`, `stop_lsd`).
    pub(crate) lsd: Mutex<Option<Arc<lsd::Lsd>>>,
}

impl Shared {
    pub(crate) fn proxy(&self) -> Option<ProxySettings> {
        self.proxy
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn dht(&self) -> Option<lt_dht::tokio::DhtHandle> {
        self.dht
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn engine(&self) -> MutexGuard<'_, Engine> {
        self.engine.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Calls `f` on the engine and wakes the loop to carry out what it produced.
    /// Its alerts are queued before the engine is let go, as the loop's are.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut Engine, Instant) -> R) -> R {
        let mut engine = self.engine();
        let r = f(&mut engine, Instant::now());
        self.push_alerts(&mut engine);
        drop(engine);
        self.wake.notify_one();
        r
    }

    /// Moves the engine's alerts to the API's queue, which holds at most
    /// `alert_queue_size` of them like the engine's: when nobody pops them, the oldest go
    /// and one [`Alert::AlertsDropped`] at the front counts them.
    pub(crate) fn push_alerts(&self, engine: &mut Engine) {
        let limit = engine.settings().alert_queue_size.max(2);
        let mut got = false;
        let mut q = self.alerts.lock().unwrap_or_else(PoisonError::into_inner);
        while let Some(a) = engine.poll_alert() {
            q.push_back(a);
            got = true;
        }
        if q.len() > limit {
            let mut dropped = 0u64;
            while q.len() >= limit {
                match q.pop_front() {
                    Some(Alert::AlertsDropped { count }) => dropped += count,
                    Some(_) => dropped += 1,
                    None => break,
                }
            }
            q.push_front(Alert::AlertsDropped { count: dropped });
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
    /// The port mapper while UPnP or NAT-PMP runs, and which of them are on.
    nat: Mutex<Option<nat::NatHandle>>,
    nat_on: Mutex<(bool, bool)>,
    dht: dht::DhtStarter,
    /// Where the DHT's peers and alerts go.
    inputs: mpsc::Sender<Event>,
    /// The SOCKS5 proxy whose UDP relay uTP and the DHT use, if any.
    relay_proxy: Option<ProxySettings>,
    /// The uTP sockets, for their counts.
    utp: Vec<lt_utp::tokio::UtpSocket>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("listen", &self.shared.listen)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Starts a session: binds the listen interfaces and starts the engine loop on a
    /// runtime of its own.
    ///
    /// # Errors
    /// [`Error::Listen`] when the first interface cannot be bound on any port of the range,
    /// [`Error::Runtime`].
    pub fn new(settings: SessionSettings) -> Result<Self, Error> {
        if let Some(p) = &settings.proxy {
            check_proxy(p)?;
        }
        let (mut settings, mut not_proxied) = without_bypass(settings);
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
                match utp_socket(addr, &settings) {
                    Ok(u) => utp.push(u),
                    Err(e) => tracing::warn!("uTP on {addr}: {e}"),
                }
            }
        }
        // Behind a SOCKS5 proxy, uTP and the DHT share one socket whose datagrams all go
        // through the proxy's UDP relay.
        let mut udp_control = None;
        let relay_proxy = settings
            .proxy
            .clone()
            .filter(|p| p.kind == ProxyKind::Socks5 && p.proxy_peer_connections);
        if let Some(p) = &relay_proxy
            && (settings.engine.enable_outgoing_utp || settings.enable_dht)
        {
            match relayed_utp(&runtime, p, &settings) {
                Ok((socket, control)) => {
                    utp.push(socket);
                    udp_control = Some(control);
                }
                Err(e) => {
                    settings.engine.enable_outgoing_utp = false;
                    settings.enable_dht = false;
                    not_proxied.push(format!(
                        "uTP and the DHT are off: no UDP relay from the proxy: {e}"
                    ));
                }
            }
        }
        let relay_proxy = relay_proxy.filter(|_| udp_control.is_some());
        let mut listen_failed = Vec::new();
        let (ssl_listeners, ssl_utp) = {
            let _guard = runtime.enter();
            listen_ssl(&settings, &listen, &mut listen_failed)
        };
        let ssl_listen: Vec<SocketAddr> = ssl_listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect();
        let mut random = [0u8; 12];
        random_bytes(&mut random);
        let peer_id = if settings.anonymous_mode {
            let mut random = [0u8; 20];
            random_bytes(&mut random);
            PeerId::anonymous(random)
        } else {
            PeerId::generate(&settings.fingerprint, random)
        };
        let mut seed = [0u8; 32];
        random_bytes(&mut seed);
        let now = Instant::now();
        let mut engine = Engine::new(settings.engine.clone(), peer_id, seed, now);
        engine.set_alert_mask(settings.alert_mask);
        engine.set_listen_port(listen.first().map_or(0, SocketAddr::port));
        engine.set_ssl_listen_port(ssl_listen.first().map_or(0, SocketAddr::port));
        for &addr in listen.iter().chain(&ssl_listen) {
            engine.post_alert(Alert::ListenSucceeded { addr });
        }
        for (addr, error) in listen_failed {
            engine.post_alert(Alert::ListenFailed { addr, error });
        }
        for message in not_proxied {
            engine.post_alert(Alert::AnonymousMode { message });
        }
        let (tx, rx) = mpsc::channel::<Event>(1024);
        let check_threads = settings.check_threads.max(1);
        let disk = {
            let tx = tx.clone();
            crate::disk::Disk::new(
                settings.aio_threads.max(1),
                DISK_QUEUE_DEPTH,
                check_threads,
                move |done| {
                    // A disk thread waits here while the loop's channel is full: the queue
                    // behind it fills and the loop keeps further jobs until it drains.
                    let _ = tx.blocking_send(Event::Disk(done));
                },
            )?
        };
        let shared = Arc::new(Shared {
            disk,
            read_cache: Arc::new(lt_storage::ReadCache::new(settings.read_cache_size)),
            engine: Mutex::new(engine),
            wake: Notify::new(),
            alerts: Mutex::new(VecDeque::new()),
            alert_cv: Condvar::new(),
            alert_notify: Notify::new(),
            torrents: RwLock::new(BTreeMap::new()),
            listen,
            closed: AtomicBool::new(false),
            dht: Mutex::new(None),
            dht_saved: Mutex::new(None),
            proxy: Arc::new(RwLock::new(settings.proxy.clone())),
            anonymous: settings.anonymous_mode,
            ssl_listen,
            ssl: Arc::default(),
            lsd: Mutex::new(None),
        });
        spawn_accept_loops(&runtime, listeners, &utp, false, &shared, &tx, &settings);
        spawn_accept_loops(
            &runtime,
            ssl_listeners,
            &ssl_utp,
            true,
            &shared,
            &tx,
            &settings,
        );
        if let Some(control) = udp_control {
            runtime.spawn(keep_association(control, tx.clone()));
        }
        let dialer = io::Dialer {
            utp: utp.clone(),
            config: shared.engine().mse_config(),
            timeout: settings.engine.peer_connect_timeout,
            proxy: Arc::clone(&shared.proxy),
            ssl_utp,
            ssl: Arc::clone(&shared.ssl),
        };
        let dht = dht::DhtStarter::new(
            &runtime,
            utp.iter().find(|u| u.local_addr().is_ipv4()),
            shared.listen.iter().copied().find(SocketAddr::is_ipv4),
        );
        runtime.spawn(engine_loop(Arc::clone(&shared), rx, tx.clone(), dialer));
        let session = Self {
            relay_proxy,
            utp: utp.clone(),
            shared,
            runtime: Some(runtime),
            nat: Mutex::new(None),
            nat_on: Mutex::new((false, false)),
            dht,
            inputs: tx,
            settings,
        };
        if session.settings.enable_dht {
            session.start_dht();
        }
        if session.settings.enable_lsd {
            session.start_lsd();
        }
        let (upnp, natpmp) = (session.settings.enable_upnp, session.settings.enable_natpmp);
        session.set_port_mapping(Some(upnp), Some(natpmp));
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
        if self.shared.proxy().is_some() && self.shared.proxy() != self.relay_proxy {
            drop(running);
            self.shared.with(|e, _| {
                e.post_alert(Alert::AnonymousMode {
                    message: NO_DHT.into(),
                });
            });
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
            rt.spawn(dht::run(d.clone(), self.inputs.clone()));
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

    /// Starts local service discovery (the manual's `start_lsd`): BEP 14 multicast
    /// announces of the torrents on the LAN, and peers from others'. Does nothing when it
    /// runs already, or behind a proxy or in anonymous mode (which keep multicast off), or
    /// when the multicast socket cannot be bound (a warning is logged).
    pub fn start_lsd(&self) {
        if self.shared.proxy().is_some() || self.shared.anonymous {
            return;
        }
        let mut lsd = self
            .shared
            .lsd
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if lsd.is_some() {
            return;
        }
        let Some(rt) = &self.runtime else { return };
        let _guard = rt.enter();
        *lsd = lsd::Lsd::start(&self.shared, self.inputs.clone());
        let on = lsd.is_some();
        drop(lsd);
        if on {
            self.shared.with(|e, now| e.set_lsd(true, now));
        }
    }

    /// Stops local service discovery (the manual's `stop_lsd`).
    pub fn stop_lsd(&self) {
        let lsd = self
            .shared
            .lsd
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(l) = lsd {
            l.stop();
            self.shared.with(|e, now| e.set_lsd(false, now));
        }
    }

    /// Whether local service discovery runs.
    #[must_use]
    pub fn is_lsd_running(&self) -> bool {
        self.shared
            .lsd
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    /// Starts UPnP IGD port mapping (the manual's `start_upnp`): the listen port (TCP, and
    /// UDP for uTP and the DHT) and the SSL listen port are mapped on the gateway. Not
    /// behind a proxy or in anonymous mode.
    pub fn start_upnp(&self) {
        self.set_port_mapping(Some(true), None);
    }

    /// Stops UPnP (the manual's `stop_upnp`): its mappings are removed from the gateway.
    pub fn stop_upnp(&self) {
        self.set_port_mapping(Some(false), None);
    }

    /// Starts NAT-PMP (or PCP where the gateway has it) port mapping (the manual's
    /// `start_natpmp`), as [`Session::start_upnp`].
    pub fn start_natpmp(&self) {
        self.set_port_mapping(None, Some(true));
    }

    /// Stops NAT-PMP (the manual's `stop_natpmp`): its mappings are removed.
    pub fn stop_natpmp(&self) {
        self.set_port_mapping(None, Some(false));
    }

    /// Restarts the port mapper with UPnP and NAT-PMP on or off. Mappings added with
    /// [`Session::add_port_mapping`] are removed with the old mapper.
    fn set_port_mapping(&self, upnp: Option<bool>, natpmp: Option<bool>) {
        if self.shared.proxy().is_some() || self.shared.anonymous {
            return;
        }
        let Some(rt) = &self.runtime else { return };
        let mut on = self.nat_on.lock().unwrap_or_else(PoisonError::into_inner);
        let want = (upnp.unwrap_or(on.0), natpmp.unwrap_or(on.1));
        if want == *on {
            return;
        }
        *on = want;
        let mut nat = self.nat.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(old) = nat.take() {
            old.stop();
        }
        if want.0 || want.1 {
            let mut settings = self.settings.clone();
            settings.enable_upnp = want.0;
            settings.enable_natpmp = want.1;
            let mut ports = vec![self.listen_port()];
            ports.push(self.ssl_listen_port());
            ports.retain(|&p| p != 0);
            *nat = Some(nat::start(
                rt,
                &settings,
                &ports,
                !self.utp.is_empty(),
                self.inputs.clone(),
            ));
        }
    }

    /// Whether the session listens for incoming connections (the manual's
    /// `is_listening`).
    #[must_use]
    pub fn is_listening(&self) -> bool {
        !self.shared.listen.is_empty()
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

    /// The port SSL torrents' peers connect to, TCP and uTP (the manual's
    /// `ssl_listen_port`; 0 when not listening for SSL).
    #[must_use]
    pub fn ssl_listen_port(&self) -> u16 {
        self.shared.ssl_listen.first().map_or(0, SocketAddr::port)
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
        // The engine decides what a magnet with resume data is (the metadata in the resume
        // data, when it matches) and what a duplicate gets; the session makes the storage.
        let mut add = match &params.source {
            TorrentSource::Info(info) => AddTorrent::new(Arc::clone(info)),
            TorrentSource::Magnet(link) => {
                AddTorrent::from_magnet(link).map_err(Error::Metadata)?
            }
        };
        let allocation = match &params.resume {
            Some(r) if !params.flags.override_resume_data => r.allocation,
            _ => params.storage_mode,
        };
        add.resume = params.resume;
        add.trackers.extend(params.trackers);
        add.web_seeds.extend(params.web_seeds);
        add.peers.extend(params.peers);
        add.file_priorities = params.file_priorities;
        add.piece_priorities = params.piece_priorities;
        add.apply_ip_filter = params.apply_ip_filter;
        add.flags = params.flags;
        add.max_connections = params.max_connections;
        add.max_uploads = params.max_uploads;
        add.upload_limit = params.upload_limit;
        add.download_limit = params.download_limit;
        // The engine's rules, applied here first so that the storage is made for the
        // metadata and the file priorities the engine will use.
        add.reconcile_resume();
        add.apply_resume();
        let options = FsOptions {
            allocation,
            file_priorities: add.file_priorities.clone(),
            ..FsOptions::default()
        };
        let info = Arc::clone(&add.info);
        let ih = add.info_hash();
        let storage = FsStorage::new(info.files().clone(), &params.save_path, options.clone())?;
        let mut engine = self.shared.engine();
        let existed = engine.find_torrent(&ih);
        let id = engine.add_torrent(Instant::now(), add)?;
        if existed == Some(id) {
            return Ok(self.handle(id));
        }
        // The storage is registered before the loop runs the engine's first disk job: the
        // engine lock is held until then.
        let io = Arc::new(TorrentIo {
            store: Arc::new(TorrentStore::with_cache(
                Box::new(storage),
                info,
                params.save_path,
                Arc::clone(&self.shared.read_cache),
            )),
            options,
        });
        self.shared
            .torrents
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, io);
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
        self.nat
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()?
            .add(protocol, external_port, local_port)
    }

    /// Removes a port mapping (the manual's `delete_port_mapping`).
    pub fn delete_port_mapping(&self, mapping: usize) {
        if let Some(n) = &*self.nat.lock().unwrap_or_else(PoisonError::into_inner) {
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
    /// connection and queue limits, the proxy (its password included, as libtorrent saves
    /// it) and the DHT's node id and nodes, bencoded. Give it to
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
        if let Some(p) = self.proxy() {
            root.insert(b"proxy".to_vec(), p.to_bencode());
        }
        if let Some(d) = self.dht_state() {
            root.insert(b"dht state".to_vec(), Value::Bytes(d.to_bencode()));
        }
        Value::Dict(root).to_bytes()
    }

    /// Sets the proxy every new outgoing connection goes through (the manual's
    /// `set_proxy`), or none. From now on peer connections, trackers and web seeds go
    /// through it as its settings say; the DHT is stopped, uTP is not dialled, and incoming
    /// connections are refused, since none of them can go through a TCP proxy (each posts
    /// [`Alert::AnonymousMode`]). Connections already open stay open. Give the proxy in
    /// [`SessionSettings::proxy`] instead to never listen or send anything directly.
    ///
    /// # Errors
    /// [`Error::Proxy`] when the settings cannot be used; then nothing changes.
    pub fn set_proxy(&self, proxy: Option<ProxySettings>) -> Result<(), Error> {
        if let Some(p) = &proxy {
            check_proxy(p)?;
        }
        let peers = proxy.as_ref().is_some_and(|p| p.proxy_peer_connections);
        *self
            .shared
            .proxy
            .write()
            .unwrap_or_else(PoisonError::into_inner) = proxy.clone();
        if proxy.is_some() && proxy != self.relay_proxy && self.is_dht_running() {
            self.stop_dht();
            self.shared.with(|e, _| {
                e.post_alert(Alert::AnonymousMode {
                    message: NO_DHT.into(),
                });
            });
        }
        if peers {
            let mut s = self.settings();
            let relayed = proxy == self.relay_proxy;
            if (s.enable_outgoing_utp && !relayed) || s.enable_incoming_utp || s.enable_incoming_tcp
            {
                s.enable_outgoing_utp &= relayed;
                s.enable_incoming_utp = false;
                s.enable_incoming_tcp = false;
                self.apply_settings(s);
                self.shared.with(|e, _| {
                    e.post_alert(Alert::AnonymousMode {
                        message: NO_INCOMING.into(),
                    });
                });
            }
        }
        let _ = self.inputs.try_send(Event::ProxyChanged);
        Ok(())
    }

    /// The proxy outgoing connections go through, if any (the manual's `proxy`).
    #[must_use]
    pub fn proxy(&self) -> Option<ProxySettings> {
        self.shared.proxy()
    }

    /// Posts [`Alert::StateUpdate`] with the status of every torrent that changed since the
    /// last call (every torrent the first time): the manual's `post_torrent_updates`, for a
    /// UI that redraws what changed once a second instead of asking each torrent. The
    /// alert's category is `STATUS`.
    pub fn post_torrent_updates(&self) {
        self.shared.with(|e, now| {
            let statuses = e.torrent_updates(now);
            e.post_alert(Alert::StateUpdate { statuses });
        });
    }

    /// The session's status (the manual's `status()`): totals since the session started,
    /// payload rates, peers, and the DHT's and uTP's counts.
    #[must_use]
    pub fn status(&self) -> SessionStatus {
        let mut s = self.shared.engine().session_status();
        s.dht_nodes = self.dht_nodes();
        for u in &self.utp {
            let (n, half_open) = u.connections();
            s.utp_connections += n;
            s.utp_half_open += half_open;
        }
        s
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
        let nat = self
            .nat
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(n) = nat {
            n.shutdown(Duration::from_secs(2));
        }
        self.stop_lsd();
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
        // Queued writes finish before the files are flushed and closed.
        self.shared.disk.shutdown();
        for io in self
            .shared
            .torrents
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
        {
            io.store.with_storage(|s| {
                let _ = s.flush();
                let _ = s.release_files();
            });
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

const NO_DHT: &str = "the DHT is off: a proxy is set and UDP does not go through it";

/// A UDP socket for uTP and the DHT whose datagrams go through `proxy`'s UDP relay, and
/// the connection that keeps the association.
fn relayed_utp(
    runtime: &tokio::runtime::Runtime,
    proxy: &ProxySettings,
    settings: &SessionSettings,
) -> Result<(lt_utp::tokio::UtpSocket, tokio::net::TcpStream), String> {
    let socket = bind_udp(SocketAddr::from(([0, 0, 0, 0], 0))).map_err(|e| e.to_string())?;
    let local = socket.local_addr().map_err(|e| e.to_string())?;
    let timeout = settings.engine.peer_connect_timeout;
    // On a thread of its own: `Session::new` may be called from inside another runtime.
    let assoc = std::thread::scope(|s| {
        s.spawn(|| runtime.block_on(crate::proxy::associate(proxy, local, timeout)))
            .join()
    })
    .map_err(|_| "the UDP associate thread panicked".to_owned())?
    .map_err(|e| e.to_string())?;
    let _guard = runtime.enter();
    let cfg = lt_utp::tokio::SocketConfig {
        connect_timeout: settings.engine.utp_connect_timeout,
        relay: Some(assoc.relay),
        ..lt_utp::tokio::SocketConfig::default()
    };
    let utp = lt_utp::tokio::UtpSocket::from_std_with(socket, cfg).map_err(|e| e.to_string())?;
    Ok((utp, assoc.control))
}

/// Holds a UDP association's connection open until the proxy closes it, then says so.
async fn keep_association(mut control: tokio::net::TcpStream, tx: mpsc::Sender<Event>) {
    use tokio::io::AsyncReadExt as _;
    let mut buf = [0u8; 64];
    while matches!(control.read(&mut buf).await, Ok(n) if n > 0) {}
    let message = "the proxy ended the UDP association: uTP and the DHT get no more datagrams";
    let _ = tx
        .send(Event::Alert(Alert::AnonymousMode {
            message: message.to_owned(),
        }))
        .await;
}
const NO_INCOMING: &str =
    "not listening and no uTP: a proxy carries peer connections and these cannot go through it";
const NO_LISTEN: &str = "not listening: a proxy carries peer connections (uTP and the DHT go \
                         through its UDP relay)";

/// Refuses proxy settings that reqwest cannot use (a host that is not a host name).
fn check_proxy(p: &ProxySettings) -> Result<(), Error> {
    if p.host.is_empty() || p.port == 0 {
        return Err(Error::Proxy(format!("{}: no host or port", p.endpoint())));
    }
    p.reqwest()
        .map(|_| ())
        .map_err(|e| Error::Proxy(format!("{}: {e}", p.endpoint())))
}

/// Anonymous mode (the manual's `anonymous_mode`): no user agent, no listening, no DHT,
/// local service discovery or port mapping, and no trackers without a proxy for them.
fn anonymize(s: &mut SessionSettings, off: &mut Vec<String>) {
    s.engine.user_agent.clear();
    let socks5 = s
        .proxy
        .as_ref()
        .is_some_and(|p| p.kind == ProxyKind::Socks5 && p.proxy_peer_connections);
    if !s.listen_interfaces.is_empty() {
        off.push("anonymous mode: not listening".to_owned());
    }
    s.listen_interfaces.clear();
    s.engine.enable_incoming_tcp = false;
    s.engine.enable_incoming_utp = false;
    // uTP needs a socket, which only a SOCKS5 relay gives without listening.
    s.engine.enable_outgoing_utp &= socks5;
    for (on, what) in [
        (std::mem::take(&mut s.enable_dht), "the DHT"),
        (std::mem::take(&mut s.enable_lsd), "local service discovery"),
        (
            std::mem::take(&mut s.enable_upnp) | std::mem::take(&mut s.enable_natpmp),
            "port mapping",
        ),
    ] {
        if on {
            off.push(format!("anonymous mode: {what} is off"));
        }
    }
    if !s
        .proxy
        .as_ref()
        .is_some_and(|p| p.proxy_tracker_connections)
    {
        off.push(crate::tracker::ANONYMOUS_NO_PROXY.to_owned());
    }
}

/// The settings with everything a proxy cannot carry turned off (listening, uTP, the DHT,
/// local service discovery, port mapping), and a message for each that had been asked for.
fn without_bypass(mut s: SessionSettings) -> (SessionSettings, Vec<String>) {
    let mut off = Vec::new();
    if s.anonymous_mode {
        anonymize(&mut s, &mut off);
    }
    let Some(proxy) = &s.proxy else {
        return (s, off);
    };
    // SOCKS5 carries UDP too: uTP and the DHT then go through its relay.
    let udp = proxy.kind == ProxyKind::Socks5 && proxy.proxy_peer_connections;
    if proxy.proxy_peer_connections {
        let e = &mut s.engine;
        if !s.listen_interfaces.is_empty() || (e.enable_outgoing_utp && !udp) {
            off.push(if udp { NO_LISTEN } else { NO_INCOMING }.to_owned());
        }
        s.listen_interfaces.clear();
        e.enable_outgoing_utp &= udp;
        e.enable_incoming_utp = false;
        e.enable_incoming_tcp = false;
    }
    if !udp && std::mem::take(&mut s.enable_dht) {
        off.push(NO_DHT.to_owned());
    }
    if std::mem::take(&mut s.enable_lsd) {
        off.push(
            "local service discovery is off: a proxy is set and multicast does not go through it"
                .to_owned(),
        );
    }
    if std::mem::take(&mut s.enable_upnp) | std::mem::take(&mut s.enable_natpmp) {
        off.push("port mapping is off: a proxy is set".to_owned());
    }
    (s, off)
}

/// The SSL listen sockets: TCP listeners and uTP sockets on the SSL port, on the addresses
/// of the listen sockets (`listen`). None when SSL listening is off, when the session
/// does not listen, or when no port is free (then `failed` says why).
fn listen_ssl(
    settings: &SessionSettings,
    listen: &[SocketAddr],
    failed: &mut Vec<(SocketAddr, String)>,
) -> (Vec<std::net::TcpListener>, Vec<lt_utp::tokio::UtpSocket>) {
    let Some(port) = settings.ssl_listen else {
        return (Vec::new(), Vec::new());
    };
    let interfaces: Vec<SocketAddr> = listen
        .iter()
        .map(|a| SocketAddr::new(a.ip(), port))
        .collect();
    let listeners = match crate::listen::listen_on(&interfaces, settings.listen_port_retries) {
        Ok(l) => l,
        Err(e) => {
            let addr = interfaces
                .first()
                .copied()
                .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], port)));
            failed.push((addr, format!("SSL listen port: {e}")));
            return (Vec::new(), Vec::new());
        }
    };
    let mut utp = Vec::new();
    if settings.engine.enable_incoming_utp || settings.engine.enable_outgoing_utp {
        for addr in listeners.iter().filter_map(|l| l.local_addr().ok()) {
            match utp_socket(addr, settings) {
                Ok(u) => utp.push(u),
                Err(e) => failed.push((addr, format!("SSL uTP: {e}"))),
            }
        }
    }
    (listeners, utp)
}

/// A uTP socket on `addr` (UDP) with the session's connect timeout. Call inside the
/// runtime.
fn utp_socket(
    addr: SocketAddr,
    settings: &SessionSettings,
) -> std::io::Result<lt_utp::tokio::UtpSocket> {
    let cfg = lt_utp::tokio::SocketConfig {
        connect_timeout: settings.engine.utp_connect_timeout,
        ..lt_utp::tokio::SocketConfig::default()
    };
    bind_udp(addr).and_then(|s| lt_utp::tokio::UtpSocket::from_std_with(s, cfg))
}

/// Accepts connections on every TCP listener and uTP socket given: each new one goes
/// through `io::start_accept` (plaintext or MSE, or TLS first on the SSL ones, `ssl`), at
/// most `max_incoming_handshakes` at once.
fn spawn_accept_loops(
    runtime: &tokio::runtime::Runtime,
    listeners: Vec<std::net::TcpListener>,
    utp: &[lt_utp::tokio::UtpSocket],
    ssl: bool,
    shared: &Arc<Shared>,
    tx: &mpsc::Sender<Event>,
    settings: &SessionSettings,
) {
    let handshake_timeout = settings.engine.handshake_timeout;
    // Incoming connections in their first bytes (and MSE's key exchange) at once: past
    // the cap a new one is closed before any work is done for it.
    let handshakes = io::HandshakeSlots::new(settings.max_incoming_handshakes);
    {
        let _guard = runtime.enter();
        for l in listeners {
            let Ok(listener) = tokio::net::TcpListener::from_std(l) else {
                continue;
            };
            let shared = Arc::clone(shared);
            let tx = tx.clone();
            let handshakes = Arc::clone(&handshakes);
            runtime.spawn(async move {
                loop {
                    let Ok((stream, addr)) = listener.accept().await else {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    };
                    if shared.closed.load(Ordering::Relaxed) {
                        return;
                    }
                    // Read at each connection, so `apply_settings` turns it on and off.
                    if !shared.engine().settings().enable_incoming_tcp {
                        continue;
                    }
                    let stream = io::PeerStream::Tcp(stream);
                    io::start_accept(
                        stream,
                        addr,
                        ssl,
                        &shared,
                        &handshakes,
                        handshake_timeout,
                        &tx,
                    );
                }
            });
        }
    }
    for u in utp {
        let u = u.clone();
        let shared = Arc::clone(shared);
        let tx = tx.clone();
        let handshakes = Arc::clone(&handshakes);
        runtime.spawn(async move {
            while let Ok((stream, addr)) = u.accept().await {
                if shared.closed.load(Ordering::Relaxed) {
                    return;
                }
                if !shared.engine().settings().enable_incoming_utp {
                    continue;
                }
                let stream = io::PeerStream::Utp(stream);
                io::start_accept(
                    stream,
                    addr,
                    ssl,
                    &shared,
                    &handshakes,
                    handshake_timeout,
                    &tx,
                );
            }
        });
    }
}
