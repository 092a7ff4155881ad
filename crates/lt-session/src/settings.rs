//! What a session and a torrent are set up with: [`SessionSettings`] and
//! [`AddTorrentParams`].

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use lt_core::Fingerprint;
pub(crate) use lt_dht::DhtState;
pub(crate) use lt_engine::{AlertCategory, Settings, TorrentFlags};
pub(crate) use lt_metainfo::MagnetLink;
use lt_metainfo::TorrentInfo;
use lt_storage::Allocation;
pub(crate) use lt_storage::ResumeData;

use crate::Error;

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
    /// The port SSL torrents' peers connect to (the manual's `ssl_listen`), TCP and uTP,
    /// on the listen interfaces' addresses: `Some(4433)` by default; `None` does not listen
    /// for SSL (the manual's 0); `Some(0)` picks a free port. A taken port tries the
    /// following ones like the listen port; when none is free the session runs without
    /// (an [`Alert::ListenFailed`](lt_engine::Alert::ListenFailed) says so).
    pub ssl_listen: Option<u16>,
    /// The fingerprint at the start of our peer id. Default `-RL0100-` (lt 0.1: "LT" is libtorrent-rasterbar's and "LR" LibreTorrent's).
    pub fingerprint: Fingerprint,
    /// Threads hashing files during a recheck. Default: every core.
    pub check_threads: usize,
    /// The manual's `aio_threads`: disk threads running the engine's disk jobs (hashing,
    /// writing, reading for peers) for every torrent. Default: twice the cores, at least 4.
    pub aio_threads: usize,
    /// Bytes of the read cache every torrent shares: windows of 256 KiB of pieces read for
    /// peers, so a peer's next requests in a piece are served from memory (libtorrent 1.x's
    /// `cache_size`, in bytes; 2.x has no cache of its own). 0 turns it off. Default 8 MiB.
    pub read_cache_size: usize,
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
    /// A saved DHT state (node id and nodes), from [`Session::dht_state`](crate::Session::dht_state).
    pub dht_state: Option<DhtState>,
    /// The DHT node's settings (the manual's `dht_settings`: bucket size, lookup
    /// parallelism, timeouts, rate limits, store limits, read-only mode...).
    pub dht_settings: lt_dht::Config,
    /// Incoming connections allowed in their handshake (first bytes and MSE) at once;
    /// past it a new connection is closed before any work is done. Default 64.
    pub max_incoming_handshakes: usize,
    /// Local service discovery (BEP 14, the manual's `start_lsd`): multicast announces on
    /// the LAN. Default `false`: lt sends nothing to the LAN unless asked.
    pub enable_lsd: bool,
    /// The proxy every outgoing connection goes through (the manual's `set_proxy`), or
    /// none. With a proxy that carries peer connections the session does not listen (no
    /// incoming connections), and the DHT, local service discovery, port mapping, uTP and
    /// UDP trackers are off: none of them can go through a TCP proxy. Each that was asked
    /// for posts [`Alert::AnonymousMode`](lt_engine::Alert::AnonymousMode).
    pub proxy: Option<crate::ProxySettings>,
    /// The manual's `anonymous_mode`: the peer id carries no client fingerprint, no user
    /// agent is sent (HTTP or the extension handshake's `v`), the session does not listen,
    /// the DHT, local service discovery and port mapping are off, and trackers are used
    /// only through a proxy. Each refusal posts
    /// [`Alert::AnonymousMode`](lt_engine::Alert::AnonymousMode). Default `false`.
    pub anonymous_mode: bool,
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
            ssl_listen: Some(4433),
            fingerprint: Fingerprint::new(*b"RL", 0, 1, 0, 0),
            check_threads: std::thread::available_parallelism().map_or(2, std::num::NonZero::get),
            aio_threads: std::thread::available_parallelism()
                .map_or(4, |n| n.get().saturating_mul(2))
                .max(4),
            read_cache_size: lt_storage::DEFAULT_READ_CACHE_BYTES,
            alert_mask: AlertCategory::default_mask(),
            worker_threads: 2,
            enable_upnp: false,
            enable_natpmp: false,
            natpmp_gateway: None,
            enable_dht: true,
            dht_bootstrap_nodes: Vec::new(),
            dht_routers: Vec::new(),
            dht_state: None,
            dht_settings: lt_dht::Config::default(),
            max_incoming_handshakes: 64,
            enable_lsd: false,
            proxy: None,
            anonymous_mode: false,
        }
    }
}

impl SessionSettings {
    /// Applies a state saved by [`Session::save_state`](crate::Session::save_state) (the manual's `load_state`).
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
        if let Some(p) = root.get_dict("proxy") {
            self.proxy = Some(crate::ProxySettings::from_bencode(&p).map_err(Error::State)?);
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
    /// Resume data from an earlier [`TorrentHandle::save_resume_data`](crate::TorrentHandle::save_resume_data).
    /// Besides the pieces (trusted if the files match, else checked: then
    /// [`Alert::FastresumeRejected`](lt_engine::Alert::FastresumeRejected)), it restores the
    /// allocation, file and piece priorities, the flags (paused, auto-managed, sequential,
    /// seed, super-seed, share and upload modes), the limits and whether the IP filter
    /// applies, over what is set here, unless `flags.override_resume_data`; and adds its
    /// trackers, web seeds and peers to these.
    pub resume: Option<ResumeData>,
    /// File priorities (0 to 7); files of priority 0 are not downloaded.
    pub file_priorities: Vec<u8>,
    /// Piece priorities (0 to 7), after the file priorities (libtorrent 2.x's
    /// `piece_priorities`).
    pub piece_priorities: Vec<u8>,
    /// Whether the session's IP filter applies (the manual's `apply_ip_filter` flag).
    /// Default true.
    pub apply_ip_filter: bool,
    /// More trackers, as tiers.
    pub trackers: Vec<Vec<String>>,
    /// Peers to connect to.
    pub peers: Vec<SocketAddr>,
    /// Web seeds besides the torrent's own (the manual's `url_seeds` / `http_seeds`).
    pub web_seeds: Vec<lt_metainfo::WebSeed>,
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
            piece_priorities: Vec::new(),
            apply_ip_filter: true,
            trackers: Vec::new(),
            peers: Vec::new(),
            web_seeds: Vec::new(),
            flags: TorrentFlags::default(),
            max_connections: None,
            max_uploads: None,
            upload_limit: 0,
            download_limit: 0,
        }
    }
}
