//! The engine: every torrent and peer connection of a session, driven by events.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use lt_core::{Bitfield, InfoHash, PeerId, PieceIndex, Sha1Hash};
use lt_picker::{Block, Layout, PeerKey, PickOptions, PiecePicker, Priority, Speed};
use lt_storage::ResumeData;
use lt_tracker::{
    AnnounceRequest, AnnounceResponse, Event, ScrapeEntry, TrackerIndex, TrackerList,
};
use lt_wire::mse::{MseConfig, Rc4Stream};
use lt_wire::{
    BlockRequest, ExtendedHandshake, ExtensionMessage, MetadataMessage, PeerConfig, PeerConnection,
    PeerEvent, PieceLayout,
};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore as _, SeedableRng as _};

use crate::alert::{Alert, AlertCategory, AlertQueue, DisconnectReason, PerformanceWarning};
use crate::rate::{Bucket, Rate, is_local_network, wire_cost};
use crate::torrent::{PartPiece, PeerEntry, PeerSource, Torrent, apply_file_priorities};
use crate::{
    Action, AddTorrent, ConnId, DiskDone, DiskErrorKind, DiskJob, MixedMode, PeerInfo, Settings,
    TorrentId, TorrentState, TorrentStatus,
};

/// Why adding a torrent failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddError {
    /// The torrent is in the session already (with `duplicate_is_error`).
    #[error("the torrent is already in the session ({0})")]
    Duplicate(TorrentId),
    /// The torrent has no pieces or an unusable piece size.
    #[error("the torrent's piece layout is unusable: {0}")]
    BadLayout(String),
}

/// One peer connection.
#[derive(Debug)]
struct Conn {
    addr: SocketAddr,
    torrent: Option<TorrentId>,
    outgoing: bool,
    /// `None` while the TCP connect (and MSE) runs.
    wire: Option<PeerConnection>,
    connected: bool,
    encrypted: bool,
    seed: bool,
    hashfails: u32,
    on_parole: bool,
    optimistic: bool,
    unchoked_at: Option<Instant>,
    down: Rate,
    up: Rate,
    snubbed: bool,
    pending_reads: u32,
    /// The peer-list entry it belongs to.
    entry: Option<SocketAddr>,
    /// Pieces we let it request while choked (BEP 6).
    allowed_fast: Vec<PieceIndex>,
    /// What the peer said of its pieces before we had the metadata.
    pending_bits: Vec<Bits>,
    /// Its listen port, from its extended handshake (for incoming connections).
    listen_port: Option<u16>,
    /// It announced a metadata size and has not rejected a metadata request.
    serves_metadata: bool,
    /// The connection runs over uTP (as the driver said).
    utp: bool,
    /// The peer is on the local network (for `ignore_limits_on_local_network`).
    local: bool,
    /// Peers we told it about with ut_pex (BEP 11), and when we last did.
    pex_sent: BTreeSet<SocketAddr>,
    last_pex: Option<Instant>,
    /// Super seeding (BEP 16): the pieces we announced to it (it saw no bitfield), and
    /// the one it is getting now. `None` when it saw our real pieces.
    super_seed: Option<SuperSeed>,
}

/// Draws a block of `len` payload bytes to or from `c` from the limits that apply to it:
/// `[torrent, session, tcp]`, the last (mixed mode's) only on TCP. With
/// `rate_limit_ip_overhead` the block costs its headers too.
fn spend_block(settings: &Settings, c: &Conn, len: u32, buckets: [&mut Bucket; 3]) {
    let cost = wire_cost(
        len,
        c.addr.is_ipv6(),
        c.utp,
        settings.rate_limit_ip_overhead,
    );
    let [torrent, session, tcp] = buckets;
    torrent.spend(cost);
    session.spend(cost);
    if !c.utp {
        tcp.spend(cost);
    }
}

/// What a super seed told one peer.
#[derive(Debug)]
struct SuperSeed {
    offered: Bitfield,
    current: Option<PieceIndex>,
}

/// A peer's piece announcement kept until the metadata (and so the piece count) is known.
#[derive(Debug)]
enum Bits {
    Raw(Bytes),
    All,
    Have(PieceIndex),
}

/// Most announcements kept per peer before the metadata arrives.
const MAX_PENDING_BITS: usize = 1 << 16;
/// Most candidate pieces weighed for one super-seeding offer.
const SUPER_SEED_SCAN: u32 = 4096;
/// How long a metadata piece request may go unanswered before it is asked elsewhere.
const METADATA_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

impl Conn {
    /// A connection that has not completed its handshake.
    fn new(
        addr: SocketAddr,
        torrent: Option<TorrentId>,
        outgoing: bool,
        encrypted: bool,
        entry: Option<SocketAddr>,
    ) -> Self {
        Self {
            addr,
            torrent,
            outgoing,
            wire: None,
            connected: false,
            encrypted,
            seed: false,
            hashfails: 0,
            on_parole: false,
            optimistic: false,
            unchoked_at: None,
            down: Rate::default(),
            up: Rate::default(),
            snubbed: false,
            pending_reads: 0,
            entry,
            allowed_fast: Vec::new(),
            pending_bits: Vec::new(),
            listen_port: None,
            serves_metadata: false,
            utp: false,
            local: is_local_network(addr.ip()),
            pex_sent: BTreeSet::new(),
            last_pex: None,
            super_seed: None,
        }
    }

    fn key(id: ConnId) -> PeerKey {
        PeerKey(u32::try_from(id.0 & u64::from(u32::MAX)).unwrap_or(u32::MAX))
    }
}

/// The engine: a sans-IO state machine for every torrent and connection of a session.
///
/// Driver rule: after every input (a method taking `now`), drain
/// [`poll_action`](Self::poll_action) and carry out each action, drain alerts with
/// [`poll_alert`](Self::poll_alert), and call [`handle_timeout`](Self::handle_timeout) at
/// [`poll_timeout`](Self::poll_timeout). `now` must never go backwards. Nothing here reads a
/// clock, touches a socket or a file, or draws randomness other than from the seed given to
/// [`Engine::new`]; the same inputs give the same outputs.
#[derive(Debug)]
pub struct Engine {
    settings: Settings,
    peer_id: PeerId,
    rng: ChaCha8Rng,
    listen_port: u16,
    torrents: BTreeMap<TorrentId, Torrent>,
    conns: BTreeMap<ConnId, Conn>,
    next_conn: u32,
    next_torrent: u64,
    actions: VecDeque<Action>,
    alerts: AlertQueue,
    next_tick: Instant,
    last_unchoke: Instant,
    last_optimistic: Instant,
    half_open: usize,
    paused: bool,
    shutdown_deadline: Option<Instant>,
    stops_in_flight: BTreeSet<(TorrentId, usize)>,
    up_bucket: Bucket,
    down_bucket: Bucket,
    /// `mixed_mode_algorithm`'s limits on TCP peers while uTP peers transfer.
    tcp_up_bucket: Bucket,
    tcp_down_bucket: Bucket,
    scratch_blocks: Vec<Block>,
    scratch_events: Vec<PeerEvent>,
    banned: BTreeSet<SocketAddr>,
    optimistic_counter: u64,
    /// The queue changed: run the auto-manager at the next tick.
    queue_dirty: bool,
    ip_filter: crate::IpFilter,
    port_filter: crate::PortFilter,
    last_auto_manage: Instant,
    /// Our DHT node's port, sent to peers in PORT messages (BEP 5).
    dht_port: Option<u16>,
}

impl Engine {
    /// An engine with `settings`, our peer id, a seed for every random choice, and the
    /// current time.
    #[must_use]
    pub fn new(settings: Settings, peer_id: PeerId, rng_seed: [u8; 32], now: Instant) -> Self {
        let alerts = AlertQueue::new(AlertCategory::default_mask(), settings.alert_queue_size);
        let up_bucket = Bucket::new(settings.upload_rate_limit);
        let down_bucket = Bucket::new(settings.download_rate_limit);
        Self {
            settings,
            peer_id,
            rng: ChaCha8Rng::from_seed(rng_seed),
            listen_port: 0,
            torrents: BTreeMap::new(),
            conns: BTreeMap::new(),
            next_conn: 1,
            next_torrent: 1,
            actions: VecDeque::new(),
            alerts,
            next_tick: now,
            last_unchoke: now,
            last_optimistic: now,
            half_open: 0,
            paused: false,
            shutdown_deadline: None,
            stops_in_flight: BTreeSet::new(),
            up_bucket,
            down_bucket,
            tcp_up_bucket: Bucket::new(0),
            tcp_down_bucket: Bucket::new(0),
            scratch_blocks: Vec::new(),
            scratch_events: Vec::new(),
            banned: BTreeSet::new(),
            optimistic_counter: 0,
            queue_dirty: false,
            ip_filter: crate::IpFilter::new(),
            port_filter: crate::PortFilter::new(),
            last_auto_manage: now,
            dht_port: None,
        }
    }

    // ------------------------------------------------------------ settings

    /// Our peer id.
    #[must_use]
    pub const fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// The settings.
    #[must_use]
    pub const fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Replaces the settings (limits apply from the next tick).
    pub fn apply_settings(&mut self, settings: Settings) {
        self.up_bucket.set_rate(settings.upload_rate_limit);
        self.down_bucket.set_rate(settings.download_rate_limit);
        self.alerts.set_limit(settings.alert_queue_size);
        self.settings = settings;
    }

    /// The MSE settings for the driver's handshakes.
    #[must_use]
    pub const fn mse_config(&self) -> MseConfig {
        MseConfig {
            out_policy: self.settings.out_enc_policy,
            in_policy: self.settings.in_enc_policy,
            allowed: self.settings.allowed_enc_level,
            prefer_rc4: self.settings.prefer_rc4,
        }
    }

    /// The port we listen on, announced to trackers and peers.
    pub const fn set_listen_port(&mut self, port: u16) {
        self.listen_port = port;
    }

    /// The port of our DHT node (`None`: no DHT): peers that support the DHT are told it
    /// (BEP 5 PORT), and their PORT messages come out as [`Action::DhtNode`].
    pub const fn set_dht_port(&mut self, port: Option<u16>) {
        self.dht_port = port;
    }

    /// Adds peers a DHT lookup found to a torrent's list.
    pub fn add_peers(&mut self, now: Instant, id: TorrentId, peers: &[SocketAddr]) {
        let max = self.settings.max_peerlist_size;
        let listen_port = self.listen_port;
        let Some(t) = self.torrents.get_mut(&id) else {
            return;
        };
        for &a in peers {
            if t.peers.len() >= max {
                break;
            }
            if a.port() == 0 || (a.port() == listen_port && a.ip().is_loopback()) {
                continue;
            }
            t.peers
                .entry(a)
                .or_insert_with(|| PeerEntry::new(PeerSource::Dht));
        }
        self.next_tick = now;
    }

    /// A peer announced a torrent by local service discovery (BEP 14): if the torrent is
    /// ours and public, the peer joins its list ([`Alert::LsdPeer`]).
    pub fn add_lsd_peer(&mut self, now: Instant, info_hash: &Sha1Hash, addr: SocketAddr) {
        let max = self.settings.max_peerlist_size;
        let Some(id) = self.find_by_wire_hash(info_hash) else {
            return;
        };
        let Some(t) = self.torrents.get_mut(&id) else {
            return;
        };
        if (t.has_metadata && t.info.is_private()) || t.peers.len() >= max || addr.port() == 0 {
            return;
        }
        if (addr.port() == self.listen_port) && addr.ip().is_loopback() {
            return;
        }
        let e = t
            .peers
            .entry(addr)
            .or_insert_with(|| PeerEntry::new(PeerSource::Lsd));
        e.next_try = None;
        self.alerts.push(Alert::LsdPeer { torrent: id, addr });
        self.next_tick = now;
    }

    /// Torrents to announce on the DHT and by LSD: active, not private. With each, its
    /// info-hash as the DHT knows it and whether we are a seed.
    #[must_use]
    pub fn public_torrents(&self) -> Vec<(TorrentId, Sha1Hash, bool)> {
        self.torrents
            .iter()
            .filter(|(_, t)| {
                t.is_active() && !self.paused && !(t.has_metadata && t.info.is_private())
            })
            .map(|(&id, t)| (id, t.wire_hash, t.is_seed()))
            .collect()
    }

    /// Sets the IP filter (the manual's `set_ip_filter`): connections to and from blocked
    /// addresses are refused for torrents that apply it, and open ones to newly blocked
    /// addresses close.
    pub fn set_ip_filter(&mut self, now: Instant, filter: crate::IpFilter) {
        self.ip_filter = filter;
        let blocked: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| self.blocked(c.torrent, c.addr))
            .map(|(&k, _)| k)
            .collect();
        for cid in blocked {
            let (torrent, addr) = self
                .conns
                .get(&cid)
                .map_or((None, None), |c| (c.torrent, Some(c.addr)));
            if let Some(addr) = addr {
                self.alerts.push(Alert::PeerBlocked { torrent, addr });
            }
            self.close(now, cid, DisconnectReason::Banned);
        }
    }

    /// The IP filter.
    #[must_use]
    pub const fn ip_filter(&self) -> &crate::IpFilter {
        &self.ip_filter
    }

    /// Sets the port filter (the manual's `set_port_filter`): peers on blocked ports are
    /// not dialled.
    pub fn set_port_filter(&mut self, filter: crate::PortFilter) {
        self.port_filter = filter;
    }

    /// The port filter.
    #[must_use]
    pub const fn port_filter(&self) -> &crate::PortFilter {
        &self.port_filter
    }

    /// Whether a torrent applies the IP filter (the manual's `apply_ip_filter`; default on).
    pub fn set_apply_ip_filter(&mut self, id: TorrentId, on: bool) {
        if let Some(t) = self.torrents.get_mut(&id) {
            t.apply_ip_filter = on;
        }
    }

    fn blocked(&self, torrent: Option<TorrentId>, addr: SocketAddr) -> bool {
        let applies = torrent
            .and_then(|id| self.torrents.get(&id))
            .is_none_or(|t| t.apply_ip_filter);
        applies && !self.ip_filter.is_empty() && self.ip_filter.access(addr.ip()).is_blocked()
    }

    /// Which alert categories are queued.
    pub const fn set_alert_mask(&mut self, mask: AlertCategory) {
        self.alerts.set_mask(mask);
    }

    /// The alert mask.
    #[must_use]
    pub const fn alert_mask(&self) -> AlertCategory {
        self.alerts.mask()
    }

    // ------------------------------------------------------------ outputs

    /// The next action for the driver.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The next alert.
    pub fn poll_alert(&mut self) -> Option<Alert> {
        self.alerts.pop()
    }

    /// Queues an alert from the driver (listen results, saved resume data).
    pub fn post_alert(&mut self, alert: Alert) {
        self.alerts.push(alert);
    }

    /// When to call [`handle_timeout`](Self::handle_timeout).
    #[must_use]
    pub fn poll_timeout(&self) -> Instant {
        self.next_tick
    }

    // ------------------------------------------------------------ torrents

    /// Adds a torrent. It starts checking its files (or, in seed mode, seeding).
    ///
    /// # Errors
    /// [`AddError`].
    pub fn add_torrent(&mut self, now: Instant, params: AddTorrent) -> Result<TorrentId, AddError> {
        let info_hash = params
            .metadata_for
            .unwrap_or_else(|| params.info.info_hash());
        let has_metadata = params.metadata_for.is_none();
        if let Some((&id, _)) = self.torrents.iter().find(|(_, t)| t.info_hash == info_hash) {
            if params.flags.duplicate_is_error {
                return Err(AddError::Duplicate(id));
            }
            return Ok(id);
        }
        let info = params.info;
        let layout = Layout::new(info.total_size(), info.piece_length(), lt_core::BLOCK_SIZE)
            .map_err(|e| AddError::BadLayout(e.to_string()))?;
        let mut seed = [0u8; 32];
        self.rng.fill_bytes(&mut seed);
        let mut picker = PiecePicker::new(
            layout,
            lt_picker::Config {
                rng_seed: Some(seed),
                sequential: params.flags.sequential_download,
                ..lt_picker::Config::default()
            },
        );
        let num_files = info.files().files().len();
        let mut file_priorities = params.file_priorities.clone();
        file_priorities.resize(num_files, 1);
        if file_priorities.iter().any(|&p| p != 1) {
            apply_file_priorities(&mut picker, &info, &file_priorities);
        }
        let mut tiers: Vec<Vec<String>> = Vec::new();
        for t in info.trackers() {
            let tier = usize::from(t.tier);
            if tiers.len() <= tier {
                tiers.resize(tier + 1, Vec::new());
            }
            tiers[tier].push(t.url.clone());
        }
        let mut extra = params.trackers;
        if let Some(r) = &params.resume {
            extra.extend(r.trackers.iter().cloned());
        }
        for tier in &extra {
            tiers.push(tier.clone());
        }
        let mut seed2 = [0u8; 32];
        self.rng.fill_bytes(&mut seed2);
        let trackers = TrackerList::new(&tiers, seed2);
        let id = TorrentId(self.next_torrent);
        self.next_torrent += 1;
        let n = info.num_pieces() as usize;
        let wire_layout = PieceLayout {
            num_pieces: info.num_pieces(),
            piece_length: info.piece_length(),
            total_length: info.total_size(),
        };
        let mut peers = BTreeMap::new();
        for &a in &params.peers {
            peers.insert(a, PeerEntry::new(PeerSource::User));
        }
        let (prior_download, prior_upload) = params.resume.as_ref().map_or((0, 0), |r| {
            (
                u64::try_from(r.total_downloaded).unwrap_or(0),
                u64::try_from(r.total_uploaded).unwrap_or(0),
            )
        });
        if let Some(r) = &params.resume {
            for &a in &r.peers {
                peers
                    .entry(a)
                    .or_insert_with(|| PeerEntry::new(PeerSource::Resume));
            }
        }
        let state = if !has_metadata {
            TorrentState::DownloadingMetadata
        } else if params.flags.seed_mode {
            TorrentState::Seeding
        } else if params.resume.is_some() {
            TorrentState::CheckingResumeData
        } else {
            TorrentState::CheckingFiles
        };
        let t = Torrent {
            wire_hash: info_hash.best(),
            info_hash,
            layout,
            wire_layout,
            picker,
            have: Bitfield::new(n),
            state,
            paused: params.flags.paused,
            user_upload_mode: params.flags.upload_mode,
            disk_upload_mode_until: None,
            error: None,
            trackers,
            announcing: None,
            last_tracker: None,
            num_complete: None,
            num_incomplete: None,
            peers,
            conns: BTreeSet::new(),
            parts: BTreeMap::new(),
            writing: BTreeMap::new(),
            disk_bytes: 0,
            file_priorities,
            max_connections: params
                .max_connections
                .unwrap_or(self.settings.max_connections_per_torrent),
            max_uploads: params.max_uploads,
            up_bucket: Bucket::new(params.upload_limit),
            down_bucket: Bucket::new(params.download_limit),
            pending_reads: VecDeque::new(),
            down: Rate::default(),
            up: Rate::default(),
            total_download: 0,
            total_upload: 0,
            total_failed: 0,
            total_redundant: 0,
            prior_download,
            prior_upload,
            stats_reported: (0, 0),
            sequential: params.flags.sequential_download,
            super_seeding: params.flags.super_seeding,
            share_mode: params.flags.share_mode,
            share_applied: false,
            auto_managed: params.flags.auto_managed,
            tracker_key: self.rng.next_u32(),
            active_since: (!params.flags.paused).then_some(now),
            active_time: Duration::ZERO,
            seeding_since: None,
            seeding_time: Duration::ZERO,
            num_banned: 0,
            apply_ip_filter: true,
            unverified: None,
            verify_wait: BTreeMap::new(),
            queue_pos: u32::try_from(self.torrents.len()).unwrap_or(u32::MAX),
            has_metadata,
            meta: crate::torrent::MetaFetch::default(),
            name_hint: params.name.clone(),
            info,
        };
        let name = if has_metadata {
            t.info.name().to_owned()
        } else {
            params.name.unwrap_or_else(|| info_hash.best().to_hex())
        };
        self.torrents.insert(id, t);
        self.alerts.push(Alert::TorrentAdded {
            torrent: id,
            name,
            info_hash,
        });
        if !has_metadata {
            // The metadata comes from peers first.
        } else if params.flags.seed_mode {
            let all = Bitfield::full(n);
            if let Some(t) = self.torrents.get_mut(&id) {
                // Seed mode: trusted now, each piece hashed the first time a peer asks.
                t.unverified = Some(Bitfield::full(n));
            }
            self.apply_check(now, id, &all);
        } else {
            self.actions.push_back(Action::Disk(DiskJob::Check {
                torrent: id,
                resume: params.resume.map(Box::new),
            }));
        }
        self.queue_dirty = true;
        self.next_tick = now;
        Ok(id)
    }

    /// Removes a torrent: its connections close, `stopped` is announced, and the driver
    /// drops its storage (deleting the files if asked).
    pub fn remove_torrent(&mut self, now: Instant, id: TorrentId, delete_files: bool) {
        if !self.torrents.contains_key(&id) {
            return;
        }
        self.announce_stopped(now, id);
        self.close_torrent_conns(now, id, &DisconnectReason::Closed);
        let Some(t) = self.torrents.remove(&id) else {
            return;
        };
        let order = self.queue_order();
        self.set_queue(now, &order);
        self.actions.push_back(Action::RemoveStorage {
            torrent: id,
            delete_files,
            info_hash: t.info_hash,
        });
        self.alerts.push(Alert::TorrentRemoved {
            torrent: id,
            info_hash: t.info_hash,
        });
    }

    /// The torrents, in the order they were added.
    #[must_use]
    pub fn torrents(&self) -> Vec<TorrentId> {
        self.torrents.keys().copied().collect()
    }

    /// The torrent with this info-hash.
    #[must_use]
    pub fn find_torrent(&self, info_hash: &InfoHash) -> Option<TorrentId> {
        self.torrents
            .iter()
            .find(|(_, t)| t.info_hash == *info_hash)
            .map(|(&id, _)| id)
    }

    /// The torrent whose v1 (or truncated v2) info-hash is `hash`, as in a handshake.
    #[must_use]
    pub fn find_by_wire_hash(&self, hash: &Sha1Hash) -> Option<TorrentId> {
        self.torrents
            .iter()
            .find(|(_, t)| t.info_hash.matches(hash))
            .map(|(&id, _)| id)
    }

    /// The torrent's metadata.
    #[must_use]
    pub fn torrent_info(&self, id: TorrentId) -> Option<Arc<lt_metainfo::TorrentInfo>> {
        self.torrents
            .get(&id)
            .filter(|t| t.has_metadata)
            .map(|t| Arc::clone(&t.info))
    }

    /// Whether the torrent is in the session.
    #[must_use]
    pub fn contains(&self, id: TorrentId) -> bool {
        self.torrents.contains_key(&id)
    }

    /// Pauses a torrent: its connections close and `stopped` is announced. The torrent
    /// stops being auto-managed, so the queue does not resume it (libtorrent 1.x's rule;
    /// [`set_auto_managed`](Self::set_auto_managed) hands it back).
    pub fn pause_torrent(&mut self, now: Instant, id: TorrentId) {
        if let Some(t) = self.torrents.get_mut(&id) {
            t.auto_managed = false;
        }
        self.pause_inner(now, id);
        self.queue_dirty = true;
    }

    fn pause_inner(&mut self, now: Instant, id: TorrentId) {
        let Some(t) = self.torrents.get_mut(&id) else {
            return;
        };
        if t.paused {
            return;
        }
        t.paused = true;
        if let Some(since) = t.active_since.take() {
            t.active_time += now.saturating_duration_since(since);
        }
        if let Some(since) = t.seeding_since.take() {
            t.seeding_time += now.saturating_duration_since(since);
        }
        self.announce_stopped(now, id);
        self.close_torrent_conns(now, id, &DisconnectReason::Closed);
        self.alerts.push(Alert::TorrentPaused { torrent: id });
    }

    /// Resumes a paused torrent.
    pub fn resume_torrent(&mut self, now: Instant, id: TorrentId) {
        self.resume_inner(now, id);
        self.queue_dirty = true;
    }

    fn resume_inner(&mut self, now: Instant, id: TorrentId) {
        let Some(t) = self.torrents.get_mut(&id) else {
            return;
        };
        if !t.paused {
            return;
        }
        t.paused = false;
        t.active_since = Some(now);
        if t.is_seed() {
            t.seeding_since = Some(now);
        }
        t.trackers.force_announce(now);
        for e in t.peers.values_mut() {
            e.next_try = None;
        }
        self.alerts.push(Alert::TorrentResumed { torrent: id });
        self.next_tick = now;
    }

    /// Lets the queue start and stop the torrent (or not).
    pub fn set_auto_managed(&mut self, now: Instant, id: TorrentId, on: bool) {
        if let Some(t) = self.torrents.get_mut(&id) {
            t.auto_managed = on;
            self.queue_dirty = true;
            self.next_tick = now;
        }
    }

    /// The torrent's place in the download queue (0 first); `None` once it is finished.
    #[must_use]
    pub fn queue_position(&self, id: TorrentId) -> Option<u32> {
        let t = self.torrents.get(&id)?;
        (!t.is_finished()).then_some(t.queue_pos)
    }

    fn queue_order(&self) -> Vec<TorrentId> {
        let mut q: Vec<(u32, TorrentId)> = self
            .torrents
            .iter()
            .filter(|(_, t)| !t.is_finished())
            .map(|(&id, t)| (t.queue_pos, id))
            .collect();
        q.sort_unstable();
        q.into_iter().map(|(_, id)| id).collect()
    }

    fn set_queue(&mut self, now: Instant, order: &[TorrentId]) {
        for (i, id) in order.iter().enumerate() {
            if let Some(t) = self.torrents.get_mut(id) {
                t.queue_pos = u32::try_from(i).unwrap_or(u32::MAX);
            }
        }
        self.queue_dirty = true;
        self.next_tick = now;
    }

    /// Moves the torrent within the queue: `place` gets the queue and the torrent's index
    /// and rearranges it.
    fn move_in_queue(
        &mut self,
        now: Instant,
        id: TorrentId,
        place: impl FnOnce(&mut Vec<TorrentId>, usize),
    ) {
        let mut q = self.queue_order();
        if let Some(i) = q.iter().position(|&x| x == id) {
            place(&mut q, i);
            self.set_queue(now, &q);
        }
    }

    /// Moves the torrent one place up the queue (`queue_position_up`).
    pub fn queue_position_up(&mut self, now: Instant, id: TorrentId) {
        self.move_in_queue(now, id, |q, i| q.swap(i, i.saturating_sub(1)));
    }

    /// Moves the torrent one place down the queue (`queue_position_down`).
    pub fn queue_position_down(&mut self, now: Instant, id: TorrentId) {
        self.move_in_queue(now, id, |q, i| {
            let last = q.len() - 1;
            q.swap(i, (i + 1).min(last));
        });
    }

    /// Moves the torrent to the front of the queue (`queue_position_top`).
    pub fn queue_position_top(&mut self, now: Instant, id: TorrentId) {
        self.move_in_queue(now, id, |q, i| {
            let t = q.remove(i);
            q.insert(0, t);
        });
    }

    /// Moves the torrent to the back of the queue (`queue_position_bottom`).
    pub fn queue_position_bottom(&mut self, now: Instant, id: TorrentId) {
        self.move_in_queue(now, id, |q, i| {
            let t = q.remove(i);
            q.push(t);
        });
    }

    /// The auto-manager (the manual's queuing): starts auto-managed downloads in queue
    /// order up to `active_downloads` and seeds by seed rank up to `active_seeds`, at most
    /// `active_limit` in all; pauses the rest and seeds past their ratio or time limits.
    /// Slow downloads do not count with `dont_count_slow_torrents`. A paused session starts
    /// nothing.
    fn auto_manage(&mut self, now: Instant) {
        self.queue_dirty = false;
        self.last_auto_manage = now;
        if self.paused {
            return;
        }
        let s = &self.settings;
        let (max_dl, max_seed, max_all) = (s.active_downloads, s.active_seeds, s.active_limit);
        let slow_rate = s.inactive_down_rate;
        let dont_count_slow = s.dont_count_slow_torrents;
        let ratio_limit = s.share_ratio_limit;
        let seed_time_limit = s.seed_time_limit;
        let mut downloads = Vec::new();
        let mut seeds = Vec::new();
        for (&id, t) in &self.torrents {
            if !t.auto_managed || t.is_checking() {
                continue;
            }
            if t.is_finished() {
                // libtorrent's rule: a torrent added complete counts its size as downloaded.
                let down = (t.prior_download + t.total_download)
                    .max(t.info.total_size())
                    .max(1);
                #[allow(clippy::cast_precision_loss)]
                let ratio = (t.prior_upload + t.total_upload) as f64 / down as f64;
                let seeding = t.seeding_time
                    + t.seeding_since
                        .map_or(Duration::ZERO, |x| now.saturating_duration_since(x));
                let done = (ratio_limit > 0.0 && ratio >= ratio_limit)
                    || (!seed_time_limit.is_zero() && seeding >= seed_time_limit);
                // Seed rank: peers that want it first (few seeds, many downloaders).
                let rank = t
                    .num_incomplete
                    .unwrap_or(0)
                    .saturating_sub(t.num_complete.unwrap_or(0));
                seeds.push((done, std::cmp::Reverse(rank), t.total_upload, id));
            } else {
                let slow = !t.paused
                    && t.active_since.is_some_and(|a| {
                        now.saturating_duration_since(a) > Duration::from_secs(60)
                    })
                    && t.down.rate() < slow_rate;
                downloads.push((t.queue_pos, id, slow));
            }
        }
        downloads.sort_unstable();
        seeds.sort_unstable();
        let mut all = 0;
        let mut counted = 0;
        let mut start = Vec::new();
        let mut stop = Vec::new();
        for (_, id, slow) in downloads {
            if counted < max_dl && all < max_all {
                start.push(id);
                all += 1;
                if !(slow && dont_count_slow) {
                    counted += 1;
                }
            } else {
                stop.push(id);
            }
        }
        let mut seeding = 0;
        for (done, _, _, id) in seeds {
            if !done && seeding < max_seed && all < max_all {
                start.push(id);
                seeding += 1;
                all += 1;
            } else {
                stop.push(id);
            }
        }
        for id in stop {
            self.pause_inner(now, id);
        }
        for id in start {
            self.resume_inner(now, id);
        }
    }

    /// Pauses every torrent (the session's `pause`); [`resume`](Self::resume) undoes it.
    pub fn pause(&mut self, now: Instant) {
        self.paused = true;
        let ids: Vec<TorrentId> = self.torrents.keys().copied().collect();
        for id in ids {
            self.close_torrent_conns(now, id, &DisconnectReason::Closed);
        }
    }

    /// Resumes the session.
    pub fn resume(&mut self, now: Instant) {
        self.paused = false;
        self.queue_dirty = true;
        self.next_tick = now;
    }

    /// Whether the session is paused.
    #[must_use]
    pub const fn is_paused(&self) -> bool {
        self.paused
    }

    /// Adds a peer to a torrent's list and dials it soon (the manual's `connect_peer`).
    pub fn connect_peer(&mut self, now: Instant, id: TorrentId, addr: SocketAddr) {
        if let Some(t) = self.torrents.get_mut(&id) {
            let e = t
                .peers
                .entry(addr)
                .or_insert_with(|| PeerEntry::new(PeerSource::User));
            e.source = PeerSource::User;
            e.failcount = 0;
            e.next_try = None;
            self.next_tick = now;
        }
    }

    /// Announces to the trackers now.
    pub fn force_reannounce(&mut self, now: Instant, id: TorrentId) {
        if let Some(t) = self.torrents.get_mut(&id) {
            t.trackers.force_announce(now);
            self.next_tick = now;
        }
    }

    /// Scrapes the torrent's first tracker.
    pub fn scrape_tracker(&mut self, id: TorrentId) {
        if let Some(t) = self.torrents.get(&id)
            && let Some(e) = t.trackers.entries().first()
        {
            self.actions.push_back(Action::Scrape {
                torrent: id,
                tracker: TrackerIndex(0),
                url: e.url.clone(),
                info_hash: t.wire_hash,
            });
        }
    }

    /// Adds a tracker to a torrent.
    pub fn add_tracker(&mut self, now: Instant, id: TorrentId, url: &str, tier: u8) {
        if let Some(t) = self.torrents.get_mut(&id) {
            t.trackers
                .add_tracker(url, tier, lt_tracker::TrackerSource::Client);
            self.next_tick = now;
        }
    }

    /// The torrent's trackers.
    #[must_use]
    pub fn trackers(&self, id: TorrentId) -> Vec<lt_tracker::AnnounceEntry> {
        self.torrents
            .get(&id)
            .map(|t| t.trackers.entries().to_vec())
            .unwrap_or_default()
    }

    /// Hashes every piece again (the manual's `force_recheck`).
    pub fn force_recheck(&mut self, now: Instant, id: TorrentId) {
        if self.torrents.get(&id).is_none_or(|t| !t.has_metadata) {
            return;
        }
        self.close_torrent_conns(now, id, &DisconnectReason::Closed);
        if let Some(t) = self.torrents.get_mut(&id) {
            let prev = t.state;
            t.state = TorrentState::CheckingFiles;
            t.parts.clear();
            t.error = None;
            t.unverified = None;
            self.alerts.push(Alert::StateChanged {
                torrent: id,
                prev,
                state: t.state,
            });
            self.actions.push_back(Action::Disk(DiskJob::Check {
                torrent: id,
                resume: None,
            }));
        }
    }

    /// Downloads pieces in order, or not.
    pub fn set_sequential_download(&mut self, id: TorrentId, on: bool) {
        if let Some(t) = self.torrents.get_mut(&id) {
            t.sequential = on;
            t.picker.set_sequential(on);
        }
    }

    /// Upload mode: request nothing, only seed what we have.
    pub fn set_upload_mode(&mut self, now: Instant, id: TorrentId, on: bool) {
        if let Some(t) = self.torrents.get_mut(&id) {
            t.user_upload_mode = on;
            if !on {
                t.disk_upload_mode_until = None;
            }
            self.alerts.push(Alert::UploadMode {
                torrent: id,
                enabled: on,
            });
            self.update_all_interest(now, id);
        }
    }

    /// Sets a torrent's upload limit in bytes per second (0: none).
    pub fn set_upload_limit(&mut self, id: TorrentId, limit: u64) {
        if let Some(t) = self.torrents.get_mut(&id) {
            t.up_bucket.set_rate(limit);
        }
    }

    /// Sets a torrent's download limit in bytes per second (0: none).
    pub fn set_download_limit(&mut self, id: TorrentId, limit: u64) {
        if let Some(t) = self.torrents.get_mut(&id) {
            t.down_bucket.set_rate(limit);
        }
    }

    /// A torrent's upload and download limits.
    #[must_use]
    pub fn limits(&self, id: TorrentId) -> Option<(u64, u64)> {
        self.torrents
            .get(&id)
            .map(|t| (t.up_bucket.rate(), t.down_bucket.rate()))
    }

    /// Sets a torrent's connection limit.
    pub fn set_max_connections(&mut self, id: TorrentId, max: usize) {
        if let Some(t) = self.torrents.get_mut(&id) {
            t.max_connections = max.max(2);
        }
    }

    /// Sets a torrent's unchoke limit (`None`: only the session's).
    pub fn set_max_uploads(&mut self, id: TorrentId, max: Option<usize>) {
        if let Some(t) = self.torrents.get_mut(&id) {
            t.max_uploads = max;
        }
    }

    /// Sets a piece's priority (0 to 7).
    pub fn set_piece_priority(&mut self, now: Instant, id: TorrentId, piece: PieceIndex, prio: u8) {
        if let Some(t) = self.torrents.get_mut(&id) {
            let p = Priority::new(prio.min(7)).unwrap_or(Priority::NORMAL);
            let _ = t.picker.set_piece_priority(piece, p);
            self.after_priority_change(now, id);
        }
    }

    /// Every piece's priority.
    #[must_use]
    pub fn piece_priorities(&self, id: TorrentId) -> Vec<u8> {
        self.torrents
            .get(&id)
            .map(|t| {
                t.picker
                    .piece_priorities()
                    .iter()
                    .map(|p| p.get())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Sets every file's priority (0 to 7); files past the list keep theirs.
    pub fn prioritize_files(&mut self, now: Instant, id: TorrentId, priorities: &[u8]) {
        let Some(t) = self.torrents.get_mut(&id) else {
            return;
        };
        for (i, &p) in priorities.iter().enumerate() {
            if let Some(slot) = t.file_priorities.get_mut(i)
                && *slot != p.min(7)
            {
                *slot = p.min(7);
                self.actions.push_back(Action::Disk(DiskJob::FilePriority {
                    torrent: id,
                    file: u32::try_from(i).unwrap_or(u32::MAX),
                    priority: p.min(7),
                }));
            }
        }
        apply_file_priorities(&mut t.picker, &t.info, &t.file_priorities);
        self.after_priority_change(now, id);
    }

    /// Every file's priority.
    #[must_use]
    pub fn file_priorities(&self, id: TorrentId) -> Vec<u8> {
        self.torrents
            .get(&id)
            .map(|t| t.file_priorities.clone())
            .unwrap_or_default()
    }

    fn after_priority_change(&mut self, now: Instant, id: TorrentId) {
        self.update_all_interest(now, id);
        self.check_finished(now, id);
        if let Some(t) = self.torrents.get_mut(&id)
            && !t.is_finished()
            && matches!(t.state, TorrentState::Finished)
        {
            let prev = t.state;
            t.state = TorrentState::Downloading;
            self.alerts.push(Alert::StateChanged {
                torrent: id,
                prev,
                state: TorrentState::Downloading,
            });
        }
        self.fill_torrent(now, id);
    }

    /// Asks for `piece` by `deadline` (the manual's `set_piece_deadline`); with
    /// `alert_when_available`, a [`Alert::ReadPiece`] follows once it is on disk.
    pub fn set_piece_deadline(
        &mut self,
        now: Instant,
        id: TorrentId,
        piece: PieceIndex,
        deadline: Instant,
    ) {
        if let Some(t) = self.torrents.get_mut(&id) {
            let _ = t.picker.set_piece_deadline(piece, deadline);
            self.fill_torrent(now, id);
        }
    }

    /// Forgets a piece's deadline.
    pub fn reset_piece_deadline(&mut self, id: TorrentId, piece: PieceIndex) {
        if let Some(t) = self.torrents.get_mut(&id) {
            let _ = t.picker.reset_piece_deadline(piece);
        }
    }

    /// Whether we have `piece`.
    #[must_use]
    pub fn have_piece(&self, id: TorrentId, piece: PieceIndex) -> bool {
        self.torrents
            .get(&id)
            .is_some_and(|t| t.have.get(piece.as_usize()))
    }

    /// Reads a piece from disk; [`Alert::ReadPiece`] brings it (or the error).
    pub fn read_piece(&mut self, id: TorrentId, piece: PieceIndex) {
        let Some(t) = self.torrents.get(&id) else {
            return;
        };
        if !t.have.get(piece.as_usize()) {
            self.alerts.push(Alert::ReadPiece {
                torrent: id,
                piece,
                data: Err("we do not have this piece".into()),
            });
            return;
        }
        self.actions
            .push_back(Action::Disk(DiskJob::ReadPiece { torrent: id, piece }));
    }

    /// Moves the files; [`Alert::StorageMoved`] or [`Alert::StorageMovedFailed`] follows.
    pub fn move_storage(&mut self, id: TorrentId, path: String) {
        if self.torrents.contains_key(&id) {
            self.actions
                .push_back(Action::Disk(DiskJob::Move { torrent: id, path }));
        }
    }

    /// Renames a file; [`Alert::FileRenamed`] or [`Alert::FileRenameFailed`] follows.
    pub fn rename_file(&mut self, id: TorrentId, file: u32, name: String) {
        if self.torrents.contains_key(&id) {
            self.actions.push_back(Action::Disk(DiskJob::Rename {
                torrent: id,
                file,
                name,
            }));
        }
    }

    /// Saves resume data; [`Alert::SaveResumeData`] follows once the files are flushed.
    pub fn save_resume_data(&mut self, now: Instant, id: TorrentId) {
        let Some(data) = self.resume_data(now, id) else {
            if self.torrents.contains_key(&id) {
                self.alerts.push(Alert::SaveResumeDataFailed {
                    torrent: id,
                    error: "the metadata is not known yet".into(),
                });
            }
            return;
        };
        self.actions.push_back(Action::Disk(DiskJob::SaveResume {
            torrent: id,
            data: Box::new(data),
        }));
    }

    /// The torrent's resume data now (without file sizes, which the driver adds).
    #[must_use]
    pub fn resume_data(&self, now: Instant, id: TorrentId) -> Option<ResumeData> {
        let t = self.torrents.get(&id).filter(|t| t.has_metadata)?;
        let mut r = ResumeData::new(&t.info);
        r.info = Some(t.info.info_bytes().to_vec());
        r.pieces = t.have.clone();
        r.file_priority.clone_from(&t.file_priorities);
        r.piece_priority = t
            .picker
            .piece_priorities()
            .iter()
            .map(|p| p.get())
            .collect();
        r.trackers = t
            .trackers
            .entries()
            .iter()
            .fold(Vec::<Vec<String>>::new(), |mut tiers, e| {
                let tier = usize::from(e.tier);
                if tiers.len() <= tier {
                    tiers.resize(tier + 1, Vec::new());
                }
                tiers[tier].push(e.url.clone());
                tiers
            });
        r.peers = t
            .peers
            .iter()
            .filter(|(_, e)| !e.banned && !e.is_self && e.source != PeerSource::Incoming)
            .map(|(&a, _)| a)
            .take(200)
            .collect();
        r.total_downloaded = i64::try_from(t.prior_download + t.total_download).unwrap_or(i64::MAX);
        r.total_uploaded = i64::try_from(t.prior_upload + t.total_upload).unwrap_or(i64::MAX);
        let active = t.active_time
            + t.active_since
                .map_or(Duration::ZERO, |s| now.saturating_duration_since(s));
        let seeding = t.seeding_time
            + t.seeding_since
                .map_or(Duration::ZERO, |s| now.saturating_duration_since(s));
        r.active_time = i64::try_from(active.as_secs()).unwrap_or(i64::MAX);
        r.seeding_time = i64::try_from(seeding.as_secs()).unwrap_or(i64::MAX);
        r.paused = t.paused;
        r.auto_managed = t.auto_managed;
        r.sequential_download = t.sequential;
        r.seed_mode = t.unverified.is_some();
        Some(r)
    }

    /// The torrent's status.
    #[must_use]
    pub fn status(&self, now: Instant, id: TorrentId) -> Option<TorrentStatus> {
        let t = self.torrents.get(&id)?;
        let total_done = if t.has_metadata { t.bytes_done() } else { 0 };
        let mut total_wanted = 0u64;
        let mut total_wanted_done = 0u64;
        let pieces = if t.has_metadata {
            t.info.num_pieces()
        } else {
            0
        };
        for p in 0..pieces {
            if !t
                .picker
                .piece_priority(PieceIndex::new(p))
                .is_dont_download()
            {
                let s = t.piece_size(p);
                total_wanted += s;
                if t.have.get(p as usize) {
                    total_wanted_done += s;
                }
            }
        }
        let mut num_peers = 0;
        let mut num_seeds = 0;
        let mut num_uploads = 0;
        let mut total_in = 0u64;
        let mut total_out = 0u64;
        for c in t.conns.iter().filter_map(|c| self.conns.get(c)) {
            if let Some(w) = c.wire.as_ref().filter(|_| c.connected) {
                num_peers += 1;
                num_seeds += usize::from(c.seed);
                num_uploads += usize::from(!w.am_choking());
                total_in += w.stats().received.total_bytes();
                total_out += w.stats().sent.total_bytes();
            }
        }
        #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
        let progress = if total_wanted == 0 {
            1.0
        } else {
            (total_wanted_done as f64 / total_wanted as f64) as f32
        };
        let next_announce = t
            .trackers
            .entries()
            .iter()
            .filter_map(|e| e.next_announce)
            .min()
            .map(|at| at.saturating_duration_since(now));
        let active = t.active_time
            + t.active_since
                .map_or(Duration::ZERO, |s| now.saturating_duration_since(s));
        let seeding = t.seeding_time
            + t.seeding_since
                .map_or(Duration::ZERO, |s| now.saturating_duration_since(s));
        Some(TorrentStatus {
            id,
            name: if t.has_metadata {
                t.info.name().to_owned()
            } else {
                t.name_hint
                    .clone()
                    .unwrap_or_else(|| t.info_hash.best().to_hex())
            },
            info_hash: t.info_hash,
            state: t.state,
            paused: t.paused || self.paused,
            upload_mode: t.upload_mode(),
            sequential_download: t.sequential,
            super_seeding: t.super_seeding,
            share_mode: t.share_mode,
            error: t.error.clone(),
            progress,
            total_done,
            total_wanted,
            total_wanted_done,
            total_payload_download: t.total_download,
            total_payload_upload: t.total_upload,
            total_download: total_in,
            total_upload: total_out,
            all_time_download: t.prior_download + t.total_download,
            all_time_upload: t.prior_upload + t.total_upload,
            total_failed_bytes: t.total_failed,
            total_redundant_bytes: t.total_redundant,
            download_payload_rate: t.down.rate(),
            upload_payload_rate: t.up.rate(),
            num_peers,
            num_seeds,
            num_uploads,
            list_peers: t.peers.len(),
            num_complete: t.num_complete,
            num_incomplete: t.num_incomplete,
            pieces: t.have.clone(),
            num_pieces: u32::try_from(t.have.count_ones()).unwrap_or(u32::MAX),
            distributed_copies: t.picker.distributed_copies().copies(),
            piece_length: t.info.piece_length(),
            next_announce,
            current_tracker: t.last_tracker.clone(),
            is_seeding: t.is_seed(),
            is_finished: t.is_finished(),
            active_time: active,
            seeding_time: seeding,
            num_banned: t.num_banned,
            has_metadata: t.has_metadata,
            auto_managed: t.auto_managed,
            queue_position: (!t.is_finished()).then_some(t.queue_pos),
        })
    }

    /// The torrent's connected peers.
    #[must_use]
    pub fn peer_info(&self, id: TorrentId) -> Vec<PeerInfo> {
        let Some(t) = self.torrents.get(&id) else {
            return Vec::new();
        };
        let n = t.info.num_pieces() as usize;
        t.conns
            .iter()
            .filter_map(|c| self.conns.get(c))
            .filter(|c| c.connected)
            .filter_map(|c| {
                let w = c.wire.as_ref()?;
                let pieces = w.peer_pieces().cloned();
                #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
                let progress = pieces
                    .as_ref()
                    .map_or(0.0, |b| b.count_ones() as f32 / n.max(1) as f32);
                Some(PeerInfo {
                    addr: c.addr,
                    peer_id: w.peer_id(),
                    client: w
                        .peer_id()
                        .and_then(|p| lt_core::identify_client(&p))
                        .map_or_else(String::new, |ci| ci.to_string()),
                    outgoing: c.outgoing,
                    encrypted: c.encrypted,
                    utp: c.utp,
                    choked: w.am_choking(),
                    remote_choked: w.peer_choking(),
                    interesting: w.am_interested(),
                    remote_interested: w.peer_interested(),
                    seed: c.seed,
                    snubbed: c.snubbed,
                    on_parole: c.on_parole,
                    optimistic_unchoke: c.optimistic,
                    payload_down_speed: c.down.rate(),
                    payload_up_speed: c.up.rate(),
                    total_download: c.down.total(),
                    total_upload: c.up.total(),
                    download_queue_length: w.outstanding_requests().count(),
                    upload_queue_length: w.pending_peer_requests().count(),
                    pieces,
                    hashfails: c.hashfails,
                    progress,
                })
            })
            .collect()
    }

    /// Pieces being downloaded (the manual's `get_download_queue`).
    #[must_use]
    pub fn download_queue(&self, id: TorrentId) -> Vec<lt_picker::PartialPiece> {
        self.torrents
            .get(&id)
            .map(|t| t.picker.download_queue())
            .unwrap_or_default()
    }

    /// Bytes of each file that are in verified pieces (the manual's `file_progress`).
    #[must_use]
    pub fn file_progress(&self, id: TorrentId) -> Vec<u64> {
        let Some(t) = self.torrents.get(&id) else {
            return Vec::new();
        };
        let files = t.info.files();
        let mut out = vec![0u64; files.files().len()];
        for p in t.have.iter_ones() {
            let piece = PieceIndex::new(u32::try_from(p).unwrap_or(u32::MAX));
            let size = files.piece_size(piece);
            for slice in files.map_block(piece, 0, size) {
                if let Some(slot) = out.get_mut(slice.file.as_usize()) {
                    *slot += slice.size;
                }
            }
        }
        out
    }

    // ------------------------------------------------------------ shutdown

    /// Starts shutting down: every torrent announces `stopped`, every connection closes.
    /// Poll [`is_shut_down`](Self::is_shut_down) until it is true (at most
    /// `stop_tracker_timeout`).
    pub fn shutdown(&mut self, now: Instant) {
        let ids: Vec<TorrentId> = self.torrents.keys().copied().collect();
        for id in ids {
            self.announce_stopped(now, id);
            self.close_torrent_conns(now, id, &DisconnectReason::Closed);
        }
        let rest: Vec<ConnId> = self.conns.keys().copied().collect();
        for c in rest {
            self.close(now, c, DisconnectReason::Closed);
        }
        self.paused = true;
        self.shutdown_deadline = Some(now + self.settings.stop_tracker_timeout);
    }

    /// Whether shutdown is complete: every `stopped` announce answered or timed out.
    #[must_use]
    pub fn is_shut_down(&self, now: Instant) -> bool {
        self.shutdown_deadline
            .is_some_and(|d| self.stops_in_flight.is_empty() || now >= d)
    }

    fn announce_stopped(&mut self, _now: Instant, id: TorrentId) {
        let Some(t) = self.torrents.get(&id) else {
            return;
        };
        let left = t.bytes_left();
        for (i, e) in t.trackers.entries().iter().enumerate() {
            if !e.start_sent {
                continue;
            }
            let mut req = self.announce_request(t, Event::Stopped, left);
            req.num_want = Some(0);
            self.stops_in_flight.insert((id, i));
            self.actions.push_back(Action::Announce {
                torrent: id,
                tracker: TrackerIndex(i),
                url: e.url.clone(),
                request: req,
            });
        }
    }

    fn announce_request(&self, t: &Torrent, event: Event, left: u64) -> AnnounceRequest {
        let mut req = AnnounceRequest::new(t.wire_hash, self.peer_id, self.listen_port);
        req.uploaded = t.total_upload;
        req.downloaded = t.total_download;
        req.left = left;
        req.event = event;
        req.key = t.tracker_key;
        req.num_want = Some(self.settings.num_want);
        req.compact = true;
        req.support_crypto = true;
        req
    }

    // ------------------------------------------------------------ trackers

    /// A tracker answered (or failed) an announce.
    pub fn announce_done(
        &mut self,
        now: Instant,
        id: TorrentId,
        tracker: TrackerIndex,
        result: Result<AnnounceResponse, lt_tracker::Error>,
    ) {
        if self.stops_in_flight.remove(&(id, tracker.0)) {
            return;
        }
        let listen_port = self.listen_port;
        let max_list = self.settings.max_peerlist_size;
        let Some(t) = self.torrents.get_mut(&id) else {
            return;
        };
        let Some((i, event)) = t.announcing.take() else {
            return;
        };
        if i != tracker {
            return;
        }
        let url = t
            .trackers
            .entry(i)
            .map(|e| e.url.clone())
            .unwrap_or_default();
        match result {
            Ok(resp) => {
                t.trackers.on_success(now, i, event, &resp);
                t.last_tracker = Some(url.clone());
                t.num_complete = resp.complete.or(t.num_complete);
                t.num_incomplete = resp.incomplete.or(t.num_incomplete);
                for p in &resp.peers {
                    if p.addr.port() == 0 || t.peers.len() >= max_list {
                        continue;
                    }
                    if p.addr.port() == listen_port
                        && (p.addr.ip().is_loopback() || p.addr.ip().is_unspecified())
                    {
                        // Probably ourselves; a handshake would tell, but why dial.
                        continue;
                    }
                    t.peers
                        .entry(p.addr)
                        .or_insert_with(|| PeerEntry::new(PeerSource::Tracker));
                }
                if let Some(w) = resp.warning.clone() {
                    self.alerts.push(Alert::TrackerWarning {
                        torrent: id,
                        url: url.clone(),
                        message: w,
                    });
                }
                self.alerts.push(Alert::TrackerReply {
                    torrent: id,
                    url,
                    num_peers: resp.peers.len(),
                });
                self.next_tick = now;
            }
            Err(e) => {
                let msg = e.to_string();
                t.trackers.on_failure(now, i, e);
                let times_in_row = t.trackers.entry(i).map_or(1, |e| e.fails);
                self.alerts.push(Alert::TrackerError {
                    torrent: id,
                    url,
                    times_in_row,
                    error: msg,
                });
            }
        }
    }

    /// A scrape answered.
    pub fn scrape_done(
        &mut self,
        id: TorrentId,
        tracker: TrackerIndex,
        result: Result<ScrapeEntry, lt_tracker::Error>,
    ) {
        let Some(t) = self.torrents.get_mut(&id) else {
            return;
        };
        let url = t
            .trackers
            .entry(tracker)
            .map(|e| e.url.clone())
            .unwrap_or_default();
        match result {
            Ok(s) => {
                t.trackers.on_scrape(tracker, &s);
                t.num_complete = Some(s.complete);
                t.num_incomplete = Some(s.incomplete);
                self.alerts.push(Alert::ScrapeReply {
                    torrent: id,
                    url,
                    complete: s.complete,
                    incomplete: s.incomplete,
                });
            }
            Err(e) => self.alerts.push(Alert::ScrapeFailed {
                torrent: id,
                url,
                error: e.to_string(),
            }),
        }
    }

    fn tick_trackers(&mut self, now: Instant) {
        let ids: Vec<TorrentId> = self.torrents.keys().copied().collect();
        for id in ids {
            let Some(t) = self.torrents.get_mut(&id) else {
                continue;
            };
            if !t.is_active() || self.paused || t.announcing.is_some() {
                continue;
            }
            let Some(i) = t.trackers.next_announce(now) else {
                continue;
            };
            let Some(e) = t.trackers.entry(i) else {
                continue;
            };
            let event = if !e.start_sent {
                Event::Started
            } else if t.is_seed() && !e.complete_sent && t.total_download > 0 {
                Event::Completed
            } else {
                Event::None
            };
            let url = e.url.clone();
            t.announcing = Some((i, event));
            let left = t.bytes_left();
            let t = &self.torrents[&id];
            let request = self.announce_request(t, event, left);
            self.alerts.push(Alert::TrackerAnnounce {
                torrent: id,
                url: url.clone(),
                event,
            });
            self.actions.push_back(Action::Announce {
                torrent: id,
                tracker: i,
                url,
                request,
            });
        }
    }

    // ------------------------------------------------------------ disk

    /// A disk job finished.
    pub fn disk_done(&mut self, now: Instant, done: DiskDone) {
        match done {
            DiskDone::Checked { torrent, result } => match result {
                Ok(have) => self.apply_check(now, torrent, &have),
                Err(e) => {
                    if let Some(t) = self.torrents.get_mut(&torrent) {
                        t.error = Some(e.clone());
                        t.paused = true;
                        self.alerts.push(Alert::FileError { torrent, error: e });
                    }
                }
            },
            DiskDone::PieceWritten {
                torrent,
                piece,
                passed,
                error,
            } => self.piece_written(now, torrent, piece, passed, error),
            DiskDone::Read {
                torrent,
                conn,
                request,
                result,
            } => self.read_done(now, torrent, conn, request, result),
            DiskDone::Verified { torrent, piece, ok } => {
                self.piece_verified(now, torrent, piece, ok)
            }
            DiskDone::PieceRead {
                torrent,
                piece,
                result,
            } => self.alerts.push(Alert::ReadPiece {
                torrent,
                piece,
                data: result,
            }),
            DiskDone::Moved { torrent, result } => match result {
                Ok(path) => self.alerts.push(Alert::StorageMoved { torrent, path }),
                Err(error) => self
                    .alerts
                    .push(Alert::StorageMovedFailed { torrent, error }),
            },
            DiskDone::Renamed {
                torrent,
                file,
                result,
            } => match result {
                Ok(name) => self.alerts.push(Alert::FileRenamed {
                    torrent,
                    file,
                    name,
                }),
                Err(error) => self.alerts.push(Alert::FileRenameFailed {
                    torrent,
                    file,
                    error,
                }),
            },
        }
    }

    fn apply_check(&mut self, now: Instant, id: TorrentId, found: &Bitfield) {
        let Some(t) = self.torrents.get_mut(&id) else {
            return;
        };
        let n = t.have.len();
        for p in 0..n {
            let piece = PieceIndex::new(u32::try_from(p).unwrap_or(u32::MAX));
            let has = found.len() == n && found.get(p);
            if has && !t.have.get(p) {
                let _ = t.picker.set_have(piece);
                t.have.set(p);
            } else if !has && t.have.get(p) {
                let _ = t.picker.clear_have(piece);
                t.have.clear(p);
            }
        }
        let prev = t.state;
        t.state = t.transfer_state();
        if t.is_seed() && !t.paused {
            t.seeding_since.get_or_insert(now);
        }
        if prev != t.state {
            self.alerts.push(Alert::StateChanged {
                torrent: id,
                prev,
                state: t.state,
            });
        }
        self.alerts.push(Alert::TorrentChecked { torrent: id });
        self.queue_dirty = true;
        self.next_tick = now;
    }

    fn piece_written(
        &mut self,
        now: Instant,
        id: TorrentId,
        piece: PieceIndex,
        passed: bool,
        error: Option<(DiskErrorKind, String)>,
    ) {
        let smart_ban = self.settings.smart_ban;
        let parole = self.settings.use_parole_mode;
        let retry = self.settings.optimistic_disk_retry;
        let Some(t) = self.torrents.get_mut(&id) else {
            return;
        };
        let size = t.piece_size(piece.get());
        t.disk_bytes = t.disk_bytes.saturating_sub(size);
        let contributors = t.writing.remove(&piece.get()).unwrap_or_default();
        if !passed {
            t.total_failed += size;
            let _ = t.picker.piece_failed(piece);
            self.alerts.push(Alert::HashFailed { torrent: id, piece });
            let alone = {
                let mut addrs: Vec<SocketAddr> = contributors.iter().map(|c| c.1).collect();
                addrs.sort_unstable();
                addrs.dedup();
                addrs.len() == 1
            };
            let mut to_ban = Vec::new();
            for &(cid, addr) in &contributors {
                if let Some(c) = self.conns.get_mut(&cid) {
                    c.hashfails += 1;
                    c.on_parole |= parole;
                    if smart_ban && (alone || c.hashfails >= 2) {
                        to_ban.push((Some(cid), addr));
                    }
                } else if smart_ban && alone {
                    to_ban.push((None, addr));
                }
            }
            to_ban.sort_unstable();
            to_ban.dedup();
            for (cid, addr) in to_ban {
                self.ban(now, id, cid, addr);
            }
        } else if let Some((kind, msg)) = error {
            let _ = t.picker.piece_failed(piece);
            t.error = Some(msg.clone());
            self.alerts.push(Alert::FileError {
                torrent: id,
                error: msg,
            });
            if kind == DiskErrorKind::NoSpaceOrDenied && t.disk_upload_mode_until.is_none() {
                t.disk_upload_mode_until = Some(now + retry);
                self.alerts.push(Alert::UploadMode {
                    torrent: id,
                    enabled: true,
                });
                self.update_all_interest(now, id);
            }
        } else {
            let _ = t.picker.piece_passed(piece);
            t.have.set(piece.as_usize());
            if t.error.is_some() && t.disk_upload_mode_until.is_none() {
                t.error = None;
            }
            for &(cid, _) in &contributors {
                if let Some(c) = self.conns.get_mut(&cid) {
                    c.on_parole = false;
                }
            }
            self.alerts
                .push(Alert::PieceFinished { torrent: id, piece });
            for cid in self.torrent_conns(id) {
                if let Some(w) = self.conns.get_mut(&cid).and_then(|c| c.wire.as_mut()) {
                    w.have(now, piece);
                }
                self.flush(cid);
            }
            self.check_finished(now, id);
            self.update_all_interest(now, id);
        }
        self.fill_torrent(now, id);
    }

    /// A seed-mode piece was hashed: serve the requests that waited for it, or drop the
    /// piece (it is downloaded again) when it did not match.
    fn piece_verified(&mut self, now: Instant, id: TorrentId, piece: PieceIndex, ok: bool) {
        let Some(t) = self.torrents.get_mut(&id) else {
            return;
        };
        let waiting = t.verify_wait.remove(&piece.get()).unwrap_or_default();
        if let Some(u) = &mut t.unverified {
            u.clear(piece.as_usize());
        }
        if !ok {
            t.have.clear(piece.as_usize());
            let _ = t.picker.clear_have(piece);
            let prev = t.state;
            t.state = t.transfer_state();
            self.alerts.push(Alert::HashFailed { torrent: id, piece });
            if prev != t.state {
                self.alerts.push(Alert::StateChanged {
                    torrent: id,
                    prev,
                    state: t.state,
                });
            }
        }
        for (cid, req) in waiting {
            if ok {
                self.on_request(now, cid, req);
            } else if let Some(w) = self.conns.get_mut(&cid).and_then(|c| c.wire.as_mut()) {
                w.reject(now, req);
                self.flush(cid);
            }
        }
        if !ok {
            self.end_super_seed(now, id);
            self.update_all_interest(now, id);
        }
    }

    fn check_finished(&mut self, now: Instant, id: TorrentId) {
        let Some(t) = self.torrents.get_mut(&id) else {
            return;
        };
        if !t.is_finished() || matches!(t.state, TorrentState::Finished | TorrentState::Seeding) {
            return;
        }
        let prev = t.state;
        t.state = t.transfer_state();
        if t.is_seed() {
            t.seeding_since.get_or_insert(now);
            t.trackers.force_announce(now);
        }
        self.alerts.push(Alert::StateChanged {
            torrent: id,
            prev,
            state: t.state,
        });
        self.alerts.push(Alert::TorrentFinished { torrent: id });
        self.queue_dirty = true;
        if t.is_seed() && self.settings.close_redundant_connections {
            let seeds: Vec<ConnId> = t
                .conns
                .iter()
                .copied()
                .filter(|c| self.conns.get(c).is_some_and(|c| c.seed))
                .collect();
            for c in seeds {
                self.close(now, c, DisconnectReason::Redundant);
            }
        }
        self.next_tick = now;
    }

    fn ban(&mut self, now: Instant, id: TorrentId, conn: Option<ConnId>, addr: SocketAddr) {
        let Some(t) = self.torrents.get_mut(&id) else {
            return;
        };
        t.num_banned += 1;
        let entry = conn
            .and_then(|c| self.conns.get(&c))
            .and_then(|c| c.entry)
            .unwrap_or(addr);
        t.peers
            .entry(entry)
            .or_insert_with(|| PeerEntry::new(PeerSource::Incoming))
            .banned = true;
        self.banned.insert(entry);
        self.banned.insert(addr);
        self.alerts.push(Alert::PeerBanned { torrent: id, addr });
        if let Some(c) = conn {
            self.close(now, c, DisconnectReason::Banned);
        }
    }

    fn read_done(
        &mut self,
        now: Instant,
        id: TorrentId,
        cid: ConnId,
        req: BlockRequest,
        result: Result<Bytes, String>,
    ) {
        let Some(c) = self.conns.get_mut(&cid) else {
            return;
        };
        c.pending_reads = c.pending_reads.saturating_sub(1);
        let Some(w) = c.wire.as_mut() else {
            return;
        };
        match result {
            Ok(data) => {
                let len = data.len() as u64;
                if w.send_block(now, req.piece, req.begin, data) {
                    c.up.add(len);
                    if let Some(t) = self.torrents.get_mut(&id) {
                        t.total_upload += len;
                        t.up.add(len);
                    }
                }
            }
            Err(e) => {
                w.reject(now, req);
                self.alerts.push(Alert::FileError {
                    torrent: id,
                    error: e,
                });
            }
        }
        self.flush(cid);
    }

    // ------------------------------------------------------------ connections

    /// A connection we asked for ([`Action::Connect`]) is open (and its MSE handshake, if
    /// any, done): `cipher` and `received` come from MSE (`None` and empty in plaintext);
    /// `encrypted` says whether MSE ran.
    pub fn connected(
        &mut self,
        now: Instant,
        cid: ConnId,
        cipher: Option<Rc4Stream>,
        received: BytesMut,
        encrypted: bool,
    ) {
        let config = self.peer_config();
        let Some(c) = self.conns.get_mut(&cid) else {
            self.actions.push_back(Action::Close { conn: cid });
            return;
        };
        if c.wire.is_some() {
            return;
        }
        self.half_open = self.half_open.saturating_sub(1);
        let Some(t) = c.torrent.and_then(|id| self.torrents.get(&id)) else {
            self.close(now, cid, DisconnectReason::Closed);
            return;
        };
        let params = t.wire_params();
        c.encrypted = encrypted;
        match PeerConnection::outgoing(config, now, params, cipher, received) {
            Ok(w) => {
                c.wire = Some(w);
                self.process(now, cid);
            }
            Err(e) => self.close(now, cid, DisconnectReason::Protocol(e.to_string())),
        }
    }

    /// A connection we asked for could not be made.
    pub fn connect_failed(&mut self, now: Instant, cid: ConnId, error: &str) {
        if self.conns.get(&cid).is_some_and(|c| c.wire.is_none()) {
            self.half_open = self.half_open.saturating_sub(1);
        }
        self.close(now, cid, DisconnectReason::Io(error.to_owned()));
    }

    /// A peer connected to us. `cipher`, `received` and `encrypted` are as in
    /// [`connected`](Self::connected). Returns the connection's id (already closed again
    /// when the session is full or the peer banned: the driver sees an [`Action::Close`]).
    pub fn incoming(
        &mut self,
        now: Instant,
        addr: SocketAddr,
        cipher: Option<Rc4Stream>,
        received: BytesMut,
        encrypted: bool,
    ) -> ConnId {
        let cid = self.new_conn_id();
        let config = self.peer_config();
        let conn = Conn::new(addr, None, false, encrypted, None);
        self.conns.insert(cid, conn);
        if self.paused || self.conns.len() > self.settings.connections_limit {
            self.close(now, cid, DisconnectReason::Duplicate);
            return cid;
        }
        if self.banned.contains(&addr) {
            self.close(now, cid, DisconnectReason::Banned);
            return cid;
        }
        if self.blocked(None, addr) {
            self.alerts.push(Alert::PeerBlocked {
                torrent: None,
                addr,
            });
            self.close(now, cid, DisconnectReason::Banned);
            return cid;
        }
        match PeerConnection::incoming(config, now, cipher, received) {
            Ok(w) => {
                if let Some(c) = self.conns.get_mut(&cid) {
                    c.wire = Some(w);
                }
                self.process(now, cid);
            }
            Err(e) => self.close(now, cid, DisconnectReason::Protocol(e.to_string())),
        }
        cid
    }

    /// Bytes arrived on a connection.
    pub fn receive(&mut self, now: Instant, cid: ConnId, data: &[u8]) {
        let Some(w) = self.conns.get_mut(&cid).and_then(|c| c.wire.as_mut()) else {
            return;
        };
        if let Err(e) = w.handle_bytes(now, data) {
            self.process(now, cid);
            self.close(now, cid, DisconnectReason::Protocol(e.to_string()));
            return;
        }
        self.process(now, cid);
    }

    /// A buffer arrived on a connection; like [`receive`](Self::receive) without a copy
    /// when the connection has nothing buffered.
    pub fn receive_buf(&mut self, now: Instant, cid: ConnId, data: BytesMut) {
        let Some(w) = self.conns.get_mut(&cid).and_then(|c| c.wire.as_mut()) else {
            return;
        };
        if let Err(e) = w.handle_buf(now, data) {
            self.process(now, cid);
            self.close(now, cid, DisconnectReason::Protocol(e.to_string()));
            return;
        }
        self.process(now, cid);
    }

    /// The connection closed (EOF or error).
    pub fn closed(&mut self, now: Instant, cid: ConnId, error: Option<&str>) {
        if self.conns.get(&cid).is_some_and(|c| c.wire.is_none()) {
            self.half_open = self.half_open.saturating_sub(1);
        }
        let reason = DisconnectReason::Io(error.unwrap_or("closed by peer").to_owned());
        self.close_inner(now, cid, reason, false);
    }

    /// Records that a connection runs over uTP (for `peer_info`).
    pub fn set_utp(&mut self, cid: ConnId, utp: bool) {
        if let Some(c) = self.conns.get_mut(&cid) {
            c.utp = utp;
        }
    }

    /// Whether a connection is known (not closed).
    #[must_use]
    pub fn is_open(&self, cid: ConnId) -> bool {
        self.conns.contains_key(&cid)
    }

    /// Connections open or opening.
    #[must_use]
    pub fn num_connections(&self) -> usize {
        self.conns.len()
    }

    fn new_conn_id(&mut self) -> ConnId {
        loop {
            let id = ConnId(u64::from(self.next_conn));
            self.next_conn = self.next_conn.wrapping_add(1).max(1);
            if !self.conns.contains_key(&id) {
                return id;
            }
        }
    }

    fn peer_config(&self) -> PeerConfig {
        let mut c = PeerConfig::new(self.peer_id);
        c.max_out_requests = self.settings.max_out_request_queue;
        c.max_in_requests = self.settings.max_allowed_in_request_queue;
        c.request_timeout = self.settings.request_timeout;
        c.handshake_timeout = self.settings.handshake_timeout;
        c.inactivity_timeout = self.settings.peer_timeout;
        if self.dht_port.is_some() {
            c.reserved = c.reserved.with_dht(true);
        }
        c.ext_handshake = ExtendedHandshake {
            v: Some(self.settings.user_agent.clone()),
            p: (self.listen_port != 0).then_some(self.listen_port),
            ..ExtendedHandshake::default()
        };
        c
    }

    fn close(&mut self, now: Instant, cid: ConnId, reason: DisconnectReason) {
        self.close_inner(now, cid, reason, true);
    }

    fn close_inner(
        &mut self,
        now: Instant,
        cid: ConnId,
        reason: DisconnectReason,
        tell_driver: bool,
    ) {
        let Some(mut c) = self.conns.remove(&cid) else {
            return;
        };
        if tell_driver {
            // Flush what is queued (a reject, a bitfield) before closing.
            if let Some(w) = c.wire.as_mut() {
                let mut bufs = Vec::new();
                while let Some(b) = w.poll_transmit() {
                    bufs.push(b);
                }
                if !bufs.is_empty() {
                    self.actions.push_back(Action::Send { conn: cid, bufs });
                }
            }
            self.actions.push_back(Action::Close { conn: cid });
        }
        let min_reconnect = self.settings.min_reconnect_time;
        if let Some(t) = c.torrent.and_then(|id| self.torrents.get_mut(&id)) {
            if c.connected {
                let _ = t.picker.remove_peer(Conn::key(cid));
            }
            t.conns.remove(&cid);
            t.pending_reads.retain(|(x, _)| *x != cid);
            if let Some(e) = c.entry.and_then(|a| t.peers.get_mut(&a)) {
                if e.conn == Some(cid) {
                    e.conn = None;
                }
                match reason {
                    DisconnectReason::SelfConnection => e.is_self = true,
                    DisconnectReason::Io(_)
                    | DisconnectReason::Timeout
                    | DisconnectReason::Protocol(_) => {
                        e.failcount += 1;
                        let wait = if e.source == PeerSource::User {
                            Duration::from_secs(1)
                        } else {
                            min_reconnect.saturating_mul(e.failcount)
                        };
                        e.next_try = Some(now + wait);
                    }
                    _ => e.next_try = Some(now + min_reconnect),
                }
            }
            if c.connected || matches!(reason, DisconnectReason::Banned) {
                self.alerts.push(Alert::PeerDisconnected {
                    torrent: c.torrent,
                    addr: c.addr,
                    reason,
                });
            }
            if let Some(tid) = c.torrent
                && c.connected
            {
                self.fill_torrent(now, tid);
                if !c.optimistic && c.unchoked_at.is_some() {
                    self.unchoke_free_slots(now);
                }
            }
        }
    }

    fn close_torrent_conns(&mut self, now: Instant, id: TorrentId, reason: &DisconnectReason) {
        let conns: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.torrent == Some(id))
            .map(|(&k, _)| k)
            .collect();
        for c in conns {
            self.close(now, c, reason.clone());
        }
    }

    fn flush(&mut self, cid: ConnId) {
        let Some(w) = self.conns.get_mut(&cid).and_then(|c| c.wire.as_mut()) else {
            return;
        };
        let mut bufs = Vec::new();
        while let Some(b) = w.poll_transmit() {
            bufs.push(b);
        }
        if !bufs.is_empty() {
            self.actions.push_back(Action::Send { conn: cid, bufs });
        }
    }

    /// Handles a connection's queued events and flushes what it has to send.
    fn process(&mut self, now: Instant, cid: ConnId) {
        let mut events = std::mem::take(&mut self.scratch_events);
        loop {
            events.clear();
            let Some(w) = self.conns.get_mut(&cid).and_then(|c| c.wire.as_mut()) else {
                break;
            };
            while let Some(e) = w.poll_event() {
                events.push(e);
            }
            if events.is_empty() {
                break;
            }
            for e in events.drain(..) {
                if !self.conns.contains_key(&cid) {
                    break;
                }
                self.on_event(now, cid, e);
            }
        }
        self.scratch_events = events;
        self.flush(cid);
    }

    #[allow(clippy::too_many_lines)]
    fn on_event(&mut self, now: Instant, cid: ConnId, event: PeerEvent) {
        let key = Conn::key(cid);
        let tid = self.conns.get(&cid).and_then(|c| c.torrent);
        let has_metadata = tid
            .and_then(|id| self.torrents.get(&id))
            .is_some_and(|t| t.has_metadata);
        if !has_metadata && tid.is_some() {
            let bits = match &event {
                PeerEvent::RawBitfield(b) => Some(Bits::Raw(b.clone())),
                PeerEvent::HaveAll => Some(Bits::All),
                PeerEvent::Have(p) => Some(Bits::Have(*p)),
                _ => None,
            };
            if let Some(bits) = bits {
                if let Some(c) = self.conns.get_mut(&cid) {
                    if matches!(bits, Bits::Raw(_) | Bits::All) {
                        c.pending_bits.clear();
                        c.seed = matches!(bits, Bits::All);
                    }
                    if c.pending_bits.len() < MAX_PENDING_BITS {
                        c.pending_bits.push(bits);
                    }
                }
                return;
            }
            if matches!(event, PeerEvent::HaveNone | PeerEvent::DontHave(_)) {
                return;
            }
        }
        match event {
            PeerEvent::ExtendedHandshake(hs) => {
                if let Some(c) = self.conns.get_mut(&cid) {
                    c.listen_port = hs.p.filter(|&p| p != 0);
                    c.serves_metadata = hs.metadata_size.is_some_and(|n| n > 0);
                }
                if !has_metadata
                    && let Some(id) = tid
                    && let Some(size) = hs.metadata_size
                {
                    self.metadata_size_seen(now, id, size);
                }
            }
            PeerEvent::Extension(ExtensionMessage::Pex(m)) => {
                if let Some(id) = tid {
                    self.on_pex(id, &m);
                }
            }
            PeerEvent::Extension(ExtensionMessage::Metadata(m)) => {
                if let Some(id) = tid {
                    self.on_metadata_message(now, id, cid, m);
                }
            }
            PeerEvent::IncomingHandshake { info_hash, .. } => {
                self.on_incoming_handshake(now, cid, &info_hash);
            }
            PeerEvent::Connected { peer_id, .. } => self.on_connected(now, cid, peer_id),
            PeerEvent::Bitfield(bits) => {
                let Some(id) = tid else { return };
                let seed = bits.all();
                let Some(t) = self.torrents.get_mut(&id) else {
                    return;
                };
                if let Err(e) = t.picker.peer_bitfield(key, bits) {
                    self.close(now, cid, DisconnectReason::Protocol(e.to_string()));
                    return;
                }
                self.set_seed(now, cid, seed);
                self.update_interest(now, cid);
                self.super_seed_offer(now, cid);
            }
            PeerEvent::Have(piece) => {
                let Some(id) = tid else { return };
                let Some(t) = self.torrents.get_mut(&id) else {
                    return;
                };
                if let Err(e) = t.picker.peer_have(key, piece) {
                    self.close(now, cid, DisconnectReason::Protocol(e.to_string()));
                    return;
                }
                let wanted = !t.have.get(piece.as_usize())
                    && !t.picker.piece_priority(piece).is_dont_download();
                let all = self
                    .conns
                    .get(&cid)
                    .and_then(|c| c.wire.as_ref())
                    .and_then(|w| w.peer_pieces())
                    .is_some_and(Bitfield::all);
                if all {
                    self.set_seed(now, cid, true);
                }
                if wanted {
                    self.update_interest(now, cid);
                }
                self.super_seed_offer(now, cid);
            }
            PeerEvent::DontHave(piece) => {
                let Some(t) = tid.and_then(|id| self.torrents.get_mut(&id)) else {
                    return;
                };
                let _ = t.picker.peer_dont_have(key, piece);
                if let Some(c) = self.conns.get_mut(&cid) {
                    c.seed = false;
                }
                self.update_interest(now, cid);
            }
            PeerEvent::HaveAll | PeerEvent::HaveNone | PeerEvent::RawBitfield(_) => {}
            PeerEvent::Unchoked => self.fill_requests(now, cid),
            PeerEvent::Choked => {}
            PeerEvent::Interested
                if self
                    .conns
                    .get(&cid)
                    .and_then(|c| c.wire.as_ref())
                    .is_some_and(PeerConnection::am_choking) =>
            {
                self.unchoke_free_slots(now);
            }
            PeerEvent::NotInterested => {
                let unchoked = self
                    .conns
                    .get(&cid)
                    .and_then(|c| c.wire.as_ref())
                    .is_some_and(|w| !w.am_choking());
                if unchoked {
                    self.choke(now, cid);
                    self.unchoke_free_slots(now);
                }
            }
            PeerEvent::Request(req) => self.on_request(now, cid, req),
            PeerEvent::Cancel(req) => {
                if let Some(t) = tid.and_then(|id| self.torrents.get_mut(&id)) {
                    t.pending_reads.retain(|&(c, r)| !(c == cid && r == req));
                }
            }
            PeerEvent::Block { request, data } => self.on_block(now, cid, request, data),
            PeerEvent::Rejected(req) | PeerEvent::RequestTimedOut(req) => {
                let timed_out = matches!(event, PeerEvent::RequestTimedOut(_));
                if let Some(t) = tid.and_then(|id| self.torrents.get_mut(&id))
                    && let Some(b) = t.layout.block_at(req.piece, req.begin)
                {
                    let _ = t.picker.cancel_request(key, b);
                }
                if timed_out {
                    if let Some(c) = self.conns.get_mut(&cid)
                        && !c.snubbed
                        && let Some(id) = tid
                    {
                        c.snubbed = true;
                        self.alerts.push(Alert::PeerSnubbed {
                            torrent: id,
                            addr: c.addr,
                        });
                    }
                    if let Some(id) = tid {
                        self.fill_torrent(now, id);
                    }
                } else {
                    self.fill_requests(now, cid);
                }
            }
            PeerEvent::Snubbed => {}
            PeerEvent::AllowedFast(piece) => {
                if let Some(t) = tid.and_then(|id| self.torrents.get_mut(&id)) {
                    let _ = t.picker.peer_allowed_fast(key, piece);
                }
                self.fill_requests(now, cid);
            }
            PeerEvent::Port(port) if self.dht_port.is_some() && port != 0 => {
                if let Some(c) = self.conns.get(&cid) {
                    self.actions.push_back(Action::DhtNode {
                        addr: SocketAddr::new(c.addr.ip(), port),
                    });
                }
            }
            PeerEvent::Suggest(piece) => {
                if let Some(t) = tid.and_then(|id| self.torrents.get_mut(&id)) {
                    let _ = t.picker.peer_suggest(key, piece);
                }
            }
            _ => {}
        }
    }

    // ------------------------------------------------------------ peer exchange (BEP 11)

    /// Where a connected peer accepts connections, if known.
    fn listen_addr(c: &Conn) -> Option<SocketAddr> {
        if c.outgoing {
            Some(c.addr)
        } else {
            c.listen_port.map(|p| SocketAddr::new(c.addr.ip(), p))
        }
    }

    fn on_pex(&mut self, id: TorrentId, m: &lt_wire::PexMessage) {
        let max = self.settings.max_peerlist_size;
        let listen_port = self.listen_port;
        let Some(t) = self.torrents.get_mut(&id) else {
            return;
        };
        if t.has_metadata && t.info.is_private() {
            return;
        }
        for p in &m.added {
            if t.peers.len() >= max {
                break;
            }
            let a = p.addr;
            if a.port() == 0
                || a.ip().is_unspecified()
                || (a.port() == listen_port && a.ip().is_loopback())
            {
                continue;
            }
            let e = t
                .peers
                .entry(a)
                .or_insert_with(|| PeerEntry::new(PeerSource::Pex));
            if p.flags.has(lt_wire::PexFlags::SEED) {
                e.seed = true;
            }
        }
    }

    /// Sends each peer that speaks ut_pex the peers joined and left since the last message,
    /// at most once per `pex_interval` (BEP 11: at most 50 of each).
    fn send_pex(&mut self, now: Instant) {
        let interval = self.settings.pex_interval;
        let ids: Vec<TorrentId> = self.torrents.keys().copied().collect();
        for id in ids {
            let Some(t) = self.torrents.get(&id) else {
                continue;
            };
            if !t.has_metadata || t.info.is_private() || !t.is_active() {
                continue;
            }
            let mut current: BTreeMap<SocketAddr, bool> = BTreeMap::new();
            for c in t.conns.iter().filter_map(|c| self.conns.get(c)) {
                if c.connected
                    && let Some(a) = Self::listen_addr(c)
                {
                    current.insert(a, c.seed);
                }
            }
            let conns: Vec<ConnId> = t.conns.iter().copied().collect();
            for cid in conns {
                let Some(c) = self.conns.get_mut(&cid) else {
                    continue;
                };
                if !c.connected
                    || c.last_pex
                        .is_some_and(|l| now.saturating_duration_since(l) < interval)
                {
                    continue;
                }
                let own = Self::listen_addr(c);
                let Some(w) = c.wire.as_mut() else { continue };
                if w.extension_ids().remote(lt_wire::Extension::Pex).is_none() {
                    continue;
                }
                let added: Vec<lt_wire::PexPeer> = current
                    .iter()
                    .filter(|&(a, _)| Some(*a) != own && !c.pex_sent.contains(a))
                    .take(50)
                    .map(|(&addr, &seed)| lt_wire::PexPeer {
                        addr,
                        flags: lt_wire::PexFlags(if seed { lt_wire::PexFlags::SEED } else { 0 }),
                    })
                    .collect();
                let dropped: Vec<SocketAddr> = c
                    .pex_sent
                    .iter()
                    .filter(|a| !current.contains_key(a))
                    .take(50)
                    .copied()
                    .collect();
                if added.is_empty() && dropped.is_empty() && c.last_pex.is_some() {
                    continue;
                }
                for p in &added {
                    c.pex_sent.insert(p.addr);
                }
                for a in &dropped {
                    c.pex_sent.remove(a);
                }
                c.last_pex = Some(now);
                let msg = ExtensionMessage::Pex(lt_wire::PexMessage { added, dropped });
                if w.send_extension(now, &msg).is_ok() {
                    self.flush(cid);
                }
            }
        }
    }

    // ------------------------------------------------------------ metadata (BEP 9)

    fn metadata_size_seen(&mut self, now: Instant, id: TorrentId, size: u32) {
        let Some(t) = self.torrents.get_mut(&id) else {
            return;
        };
        if t.meta.size.is_some()
            || size == 0
            || u64::from(size) > lt_wire::limits::DEFAULT_MAX_METADATA_SIZE
        {
            return;
        }
        let n = lt_wire::metadata_piece_count(size) as usize;
        t.meta.size = Some(size);
        t.meta.pieces = vec![None; n];
        t.meta.requested = vec![None; n];
        self.request_metadata(now, id);
    }

    /// Asks peers that have the metadata for pieces nobody is fetching, two at a time each.
    fn request_metadata(&mut self, now: Instant, id: TorrentId) {
        let Some(t) = self.torrents.get_mut(&id) else {
            return;
        };
        if t.has_metadata || t.meta.size.is_none() {
            return;
        }
        let conns: Vec<ConnId> = t.conns.iter().copied().collect();
        let mut flush = Vec::new();
        for cid in conns {
            let Some(w) = self
                .conns
                .get_mut(&cid)
                .filter(|c| c.connected && c.serves_metadata)
                .and_then(|c| c.wire.as_mut())
            else {
                continue;
            };
            if w.extension_ids()
                .remote(lt_wire::Extension::Metadata)
                .is_none()
            {
                continue;
            }
            let mut asked = t
                .meta
                .requested
                .iter()
                .filter(|r| r.is_some_and(|(c, _)| c == cid))
                .count();
            for i in 0..t.meta.pieces.len() {
                if asked >= 2 {
                    break;
                }
                let stale = t.meta.requested[i].is_none_or(|(_, at)| {
                    now.saturating_duration_since(at) >= METADATA_REQUEST_TIMEOUT
                });
                if t.meta.pieces[i].is_none() && stale {
                    let piece = u32::try_from(i).unwrap_or(u32::MAX);
                    let msg = ExtensionMessage::Metadata(MetadataMessage::Request { piece });
                    if w.send_extension(now, &msg).is_ok() {
                        t.meta.requested[i] = Some((cid, now));
                        asked += 1;
                    }
                }
            }
            flush.push(cid);
        }
        for cid in flush {
            self.flush(cid);
        }
    }

    fn on_metadata_message(
        &mut self,
        now: Instant,
        id: TorrentId,
        cid: ConnId,
        msg: MetadataMessage,
    ) {
        let Some(t) = self.torrents.get_mut(&id) else {
            return;
        };
        match msg {
            MetadataMessage::Request { piece } => {
                let Some(w) = self.conns.get_mut(&cid).and_then(|c| c.wire.as_mut()) else {
                    return;
                };
                let info = t.info.info_bytes();
                let total = u32::try_from(info.len()).unwrap_or(u32::MAX);
                let piece_size = lt_wire::limits::METADATA_PIECE_SIZE as usize;
                let reply = match lt_wire::metadata_piece_len(piece, total) {
                    Some(len) if t.has_metadata => {
                        let start = piece as usize * piece_size;
                        MetadataMessage::Data {
                            piece,
                            total_size: total,
                            data: Bytes::copy_from_slice(&info[start..start + len as usize]),
                        }
                    }
                    _ => MetadataMessage::Reject { piece },
                };
                let _ = w.send_extension(now, &ExtensionMessage::Metadata(reply));
                self.flush(cid);
                return;
            }
            MetadataMessage::Reject { piece } => {
                // Someone else is asked at the next round.
                if let Some(r) = t.meta.requested.get_mut(piece as usize)
                    && r.is_some_and(|(c, _)| c == cid)
                {
                    *r = None;
                }
                if let Some(c) = self.conns.get_mut(&cid) {
                    c.serves_metadata = false;
                }
            }
            MetadataMessage::Data {
                piece,
                total_size,
                data,
            } => {
                if t.has_metadata || t.meta.size != Some(total_size) {
                    return;
                }
                let i = piece as usize;
                let fits = lt_wire::metadata_piece_len(piece, total_size)
                    .is_some_and(|len| len as usize == data.len());
                if !fits || t.meta.pieces.get(i).is_none_or(Option::is_some) {
                    return;
                }
                t.meta.pieces[i] = Some(data);
                t.meta.requested[i] = None;
                if t.meta.pieces.iter().all(Option::is_some) {
                    let bytes: Vec<u8> = t
                        .meta
                        .pieces
                        .iter()
                        .flatten()
                        .flat_map(|b| b.iter().copied())
                        .collect();
                    self.metadata_complete(now, id, &bytes);
                    return;
                }
            }
            _ => {}
        }
        self.request_metadata(now, id);
    }

    /// Checks the fetched info dictionary against the info-hash and turns the magnet into a
    /// normal torrent that checks its files next.
    fn metadata_complete(&mut self, now: Instant, id: TorrentId, bytes: &[u8]) {
        let Some(t) = self.torrents.get(&id) else {
            return;
        };
        let ih = t.info_hash;
        let matches = match (ih.v1_hash(), ih.v2_hash()) {
            (Some(v1), _) => Sha1Hash::digest(bytes) == v1,
            (None, Some(v2)) => lt_core::Sha256Hash::digest(bytes) == v2,
            (None, None) => false,
        };
        if !matches {
            self.metadata_failed(id, "the metadata does not match the info-hash".into());
            return;
        }
        let info = match lt_metainfo::TorrentInfo::from_info_bytes(
            bytes,
            &lt_metainfo::LoadLimits::default(),
        ) {
            Ok(i) => Arc::new(i),
            Err(e) => {
                self.metadata_failed(id, e.to_string());
                return;
            }
        };
        let Ok(layout) = Layout::new(info.total_size(), info.piece_length(), lt_core::BLOCK_SIZE)
        else {
            self.metadata_failed(id, "the metadata's piece layout is unusable".into());
            return;
        };
        let mut seed = [0u8; 32];
        self.rng.fill_bytes(&mut seed);
        let Some(t) = self.torrents.get_mut(&id) else {
            return;
        };
        let n = info.num_pieces() as usize;
        t.picker = PiecePicker::new(
            layout,
            lt_picker::Config {
                rng_seed: Some(seed),
                sequential: t.sequential,
                ..lt_picker::Config::default()
            },
        );
        t.layout = layout;
        t.wire_layout = PieceLayout {
            num_pieces: info.num_pieces(),
            piece_length: info.piece_length(),
            total_length: info.total_size(),
        };
        t.have = Bitfield::new(n);
        t.file_priorities = vec![1; info.files().files().len()];
        t.info = Arc::clone(&info);
        t.has_metadata = true;
        t.meta = crate::torrent::MetaFetch::default();
        let prev = t.state;
        t.state = TorrentState::CheckingFiles;
        let wire_layout = t.wire_layout;
        let conns: Vec<ConnId> = t.conns.iter().copied().collect();
        for cid in conns {
            let key = Conn::key(cid);
            let Some(c) = self.conns.get_mut(&cid) else {
                continue;
            };
            let Some(w) = c.wire.as_mut() else { continue };
            w.set_layout(wire_layout);
            if !c.connected {
                continue;
            }
            let _ = t.picker.add_peer(key);
            for bits in std::mem::take(&mut c.pending_bits) {
                let _ = match bits {
                    Bits::Raw(raw) => match Bitfield::from_bytes(&raw, n) {
                        Ok(b) => t.picker.peer_bitfield(key, b),
                        Err(_) => Ok(()),
                    },
                    Bits::All => t.picker.peer_have_all(key),
                    Bits::Have(p) if p.as_usize() < n => t.picker.peer_have(key, p),
                    Bits::Have(_) => Ok(()),
                };
            }
        }
        self.alerts.push(Alert::MetadataReceived { torrent: id });
        self.alerts.push(Alert::StateChanged {
            torrent: id,
            prev,
            state: TorrentState::CheckingFiles,
        });
        self.actions
            .push_back(Action::MetadataReceived { torrent: id, info });
        self.actions.push_back(Action::Disk(DiskJob::Check {
            torrent: id,
            resume: None,
        }));
        self.next_tick = now;
    }

    fn metadata_failed(&mut self, id: TorrentId, error: String) {
        if let Some(t) = self.torrents.get_mut(&id) {
            t.meta = crate::torrent::MetaFetch::default();
        }
        self.alerts
            .push(Alert::MetadataFailed { torrent: id, error });
    }

    fn on_incoming_handshake(&mut self, now: Instant, cid: ConnId, hash: &Sha1Hash) {
        let Some(id) = self.find_by_wire_hash(hash) else {
            self.close(now, cid, DisconnectReason::UnknownTorrent);
            return;
        };
        let Some(t) = self.torrents.get(&id) else {
            return;
        };
        if !t.is_active() {
            self.close(now, cid, DisconnectReason::Closed);
            return;
        }
        let addr = self.conns.get(&cid).map(|c| c.addr);
        if !self.settings.allow_multiple_connections_per_ip
            && let Some(a) = addr
            && t.conns
                .iter()
                .any(|c| self.conns.get(c).is_some_and(|c| c.addr.ip() == a.ip()))
        {
            self.close(now, cid, DisconnectReason::Duplicate);
            return;
        }
        if t.conns.len() >= t.max_connections {
            self.close(now, cid, DisconnectReason::Duplicate);
            return;
        }
        let params = t.wire_params();
        let Some(c) = self.conns.get_mut(&cid) else {
            return;
        };
        c.torrent = Some(id);
        let Some(w) = c.wire.as_mut() else { return };
        if let Err(e) = w.accept(now, params) {
            self.close(now, cid, DisconnectReason::Protocol(e.to_string()));
            return;
        }
        if let Some(t) = self.torrents.get_mut(&id) {
            t.conns.insert(cid);
        }
    }

    fn on_connected(&mut self, now: Instant, cid: ConnId, peer_id: PeerId) {
        let allowed_fast_set_size = self.settings.allowed_fast_set_size;
        let Some(id) = self.conns.get(&cid).and_then(|c| c.torrent) else {
            self.close(now, cid, DisconnectReason::Closed);
            return;
        };
        // One connection per peer id and torrent. When both sides dialled at once, both
        // must drop the same one: the connection made by the side with the lower peer id
        // stays (libtorrent's rule too).
        let other = self.torrents.get(&id).and_then(|t| {
            t.conns.iter().copied().find(|&o| {
                o != cid
                    && self.conns.get(&o).is_some_and(|c| {
                        c.connected
                            && c.wire.as_ref().and_then(PeerConnection::peer_id) == Some(peer_id)
                    })
            })
        });
        if let Some(other) = other {
            let keep_ours = self.peer_id.as_bytes() < peer_id.as_bytes();
            let new_is_ours = self.conns.get(&cid).is_some_and(|c| c.outgoing);
            let other_is_ours = self.conns.get(&other).is_some_and(|c| c.outgoing);
            if new_is_ours != other_is_ours && new_is_ours == keep_ours {
                self.close(now, other, DisconnectReason::Duplicate);
            } else {
                self.close(now, cid, DisconnectReason::Duplicate);
                return;
            }
        }
        let Some(t) = self.torrents.get_mut(&id) else {
            return;
        };
        if t.picker.add_peer(Conn::key(cid)).is_err() {
            self.close(now, cid, DisconnectReason::Duplicate);
            return;
        }
        let Some(c) = self.conns.get_mut(&cid) else {
            return;
        };
        c.connected = true;
        let addr = c.addr;
        let outgoing = c.outgoing;
        if !t.has_metadata {
            // The piece count is not known yet: an empty set.
            if let Some(w) = c.wire.as_mut() {
                w.send_bitfield(now, &Bitfield::new(0));
            }
        } else if t.super_seeding() {
            // BEP 16: look like a peer with nothing; pieces are offered one at a time.
            if let Some(w) = c.wire.as_mut() {
                w.send_bitfield(now, &Bitfield::new(0));
            }
            c.super_seed = Some(SuperSeed {
                offered: Bitfield::new(t.have.len()),
                current: None,
            });
        } else if let Some(w) = c.wire.as_mut() {
            w.send_bitfield(now, &t.have);
            if w.fast() && allowed_fast_set_size > 0 {
                // BEP 6: a few pieces the peer may request while choked, so a new peer
                // gets something to trade quickly.
                let set = lt_wire::allowed_fast_set(
                    c.addr.ip(),
                    &t.wire_hash,
                    t.info.num_pieces(),
                    allowed_fast_set_size,
                );
                for p in set {
                    if t.have.get(p.as_usize()) {
                        w.allow_fast(now, p);
                        c.allowed_fast.push(p);
                    }
                }
            }
        }
        if !outgoing {
            c.entry = None;
        }
        if let Some(port) = self.dht_port
            && let Some(w) = self.conns.get_mut(&cid).and_then(|c| c.wire.as_mut())
            && w.peer_reserved().dht()
        {
            w.send_message(now, &lt_wire::Message::Port(port));
        }
        self.alerts.push(Alert::PeerConnected {
            torrent: id,
            addr,
            outgoing,
        });
        self.super_seed_offer(now, cid);
        self.flush(cid);
    }

    /// Super seeding: once the peer has the piece it was offered (or before the first
    /// offer), offers it another with HAVE: of the pieces it lacks, one offered to the
    /// fewest other peers right now, then the rarest among connected peers, ties broken
    /// at random. This is libtorrent's rule (not BEP 16's strict variant, which waits to
    /// see the piece announced by a third peer first). At most [`SUPER_SEED_SCAN`] pieces
    /// from a random start are weighed, so a peer that claims each offered piece at once
    /// costs bounded work per message on a torrent of any size.
    fn super_seed_offer(&mut self, now: Instant, cid: ConnId) {
        let Some(c) = self.conns.get(&cid) else {
            return;
        };
        let (Some(ss), Some(w)) = (c.super_seed.as_ref(), c.wire.as_ref()) else {
            return;
        };
        let Some(t) = c.torrent.and_then(|id| self.torrents.get(&id)) else {
            return;
        };
        let peer_has = |p: PieceIndex| w.peer_pieces().is_some_and(|b| b.get(p.as_usize()));
        if ss.current.is_some_and(|p| !peer_has(p)) {
            return;
        }
        let mut offered_now: BTreeMap<u32, u32> = BTreeMap::new();
        for o in &t.conns {
            if let Some(p) = self
                .conns
                .get(o)
                .and_then(|c| c.super_seed.as_ref())
                .and_then(|s| s.current)
            {
                *offered_now.entry(p.get()).or_default() += 1;
            }
        }
        let n = t.info.num_pieces();
        if n == 0 {
            return;
        }
        let start = u32::try_from(self.rng.next_u64() % u64::from(n)).unwrap_or(0);
        let mut best: Option<((u32, u32), PieceIndex)> = None;
        let mut weighed = 0;
        for k in 0..n {
            if weighed >= SUPER_SEED_SCAN && best.is_some() {
                break;
            }
            let p = PieceIndex::new((start + k) % n);
            if peer_has(p) || !t.have.get(p.as_usize()) {
                continue;
            }
            weighed += 1;
            let key = (
                offered_now.get(&p.get()).copied().unwrap_or(0),
                t.picker.availability(p),
            );
            if best.is_none_or(|(b, _)| key < b) {
                best = Some((key, p));
            }
        }
        let next = best.map(|(_, p)| p);
        let Some(c) = self.conns.get_mut(&cid) else {
            return;
        };
        let (Some(ss), Some(w)) = (c.super_seed.as_mut(), c.wire.as_mut()) else {
            return;
        };
        ss.current = next;
        if let Some(p) = next {
            ss.offered.set(p.as_usize());
            w.have(now, p);
        }
        self.flush(cid);
    }

    /// Super seeding ends (turned off, or the torrent is no longer a seed): every peer
    /// that was offered pieces one by one hears of the rest.
    fn end_super_seed(&mut self, now: Instant, id: TorrentId) {
        for cid in self.torrent_conns(id) {
            let Some(c) = self.conns.get_mut(&cid) else {
                continue;
            };
            let Some(ss) = c.super_seed.take() else {
                continue;
            };
            let (Some(w), Some(t)) = (c.wire.as_mut(), self.torrents.get(&id)) else {
                continue;
            };
            for p in t.have.iter_ones() {
                if !ss.offered.get(p) {
                    w.have(now, PieceIndex::new(u32::try_from(p).unwrap_or(u32::MAX)));
                }
            }
            self.flush(cid);
        }
    }

    /// Turns share mode on or off. Off, the file priorities apply again and the torrent
    /// downloads the rest.
    pub fn set_share_mode(&mut self, now: Instant, id: TorrentId, on: bool) {
        let Some(t) = self.torrents.get_mut(&id) else {
            return;
        };
        if t.share_mode == on {
            return;
        }
        t.share_mode = on;
        t.share_applied = false;
        if on {
            self.recalc_share_mode(now, id);
        } else if t.has_metadata {
            apply_file_priorities(&mut t.picker, &t.info, &t.file_priorities);
            self.after_priority_change(now, id);
        }
    }

    /// Share mode, as libtorrent's `recalc_share_mode` does it: every piece starts at
    /// priority 0, and one more (a rarest piece among the peers) is wanted only while
    ///
    /// - some connected peer is downloading (not a seed);
    /// - what we uploaded is at least `share_mode_target` times the pieces we hold;
    /// - fewer than one piece in 20 of those is still in flight;
    /// - at least `share_mode_target` peers lack that piece, so it can be uploaded again.
    ///
    /// With more than half the peers seeds near the connection limit, seeds are dropped
    /// to make room for downloaders.
    fn recalc_share_mode(&mut self, now: Instant, id: TorrentId) {
        let target = self.settings.share_mode_target.max(1);
        let Some(t) = self.torrents.get_mut(&id) else {
            return;
        };
        if !t.share_mode || !t.has_metadata || !t.is_active() || t.is_seed() {
            return;
        }
        let n = t.info.num_pieces();
        if !t.share_applied {
            t.share_applied = true;
            let prios: Vec<Priority> = (0..n)
                .map(|p| match t.picker.piece_state(PieceIndex::new(p)) {
                    Ok(lt_picker::PieceState::Open) | Err(_) => Priority::DONT_DOWNLOAD,
                    Ok(_) => Priority::NORMAL,
                })
                .collect();
            let _ = t.picker.set_piece_priorities(&prios);
            self.after_priority_change(now, id);
        }
        let Some(t) = self.torrents.get(&id) else {
            return;
        };
        let (mut peers, mut seeds, mut downloaders) = (0usize, Vec::new(), 0usize);
        for cid in &t.conns {
            let Some(c) = self.conns.get(cid).filter(|c| c.connected) else {
                continue;
            };
            peers += 1;
            if c.seed {
                seeds.push(*cid);
            } else {
                downloaders += 1;
            }
        }
        if peers == 0 {
            return;
        }
        if seeds.len() * 2 > peers && (peers * 10 > t.max_connections * 9 || peers > 20) {
            let drop = seeds.len() - peers / 2;
            for cid in seeds.into_iter().take(drop) {
                self.close(now, cid, DisconnectReason::Redundant);
            }
            return;
        }
        if downloaders == 0 {
            return;
        }
        let prios = t.picker.piece_priorities();
        let selected = prios.iter().filter(|p| !p.is_dont_download()).count();
        let held = t.have.count_ones().max(selected) as u64;
        let uploaded = t.prior_upload.saturating_add(t.total_upload);
        let needed = held
            .saturating_mul(u64::from(t.info.piece_length()))
            .saturating_mul(u64::from(target));
        if held > 0 && needed > uploaded {
            return;
        }
        if t.picker.download_queue().len() as u64 > held / 20 {
            return;
        }
        let mut rarest = Vec::new();
        let mut rarity = u32::MAX;
        for (p, prio) in (0..n).zip(&prios) {
            let piece = PieceIndex::new(p);
            let avail = t.picker.availability(piece);
            if avail == 0 || !prio.is_dont_download() || t.have.get(piece.as_usize()) {
                continue;
            }
            if avail < rarity {
                rarest.clear();
                rarity = avail;
            }
            if avail == rarity {
                rarest.push(piece);
            }
        }
        // Only a piece that enough peers lack can be uploaded more often than downloaded.
        if rarest.is_empty() || (peers as u64) < u64::from(rarity) + u64::from(target) {
            return;
        }
        let pick = rarest[usize::try_from(self.rng.next_u64() % rarest.len() as u64).unwrap_or(0)];
        if let Some(t) = self.torrents.get_mut(&id) {
            let _ = t.picker.set_piece_priority(pick, Priority::NORMAL);
        }
        self.after_priority_change(now, id);
    }

    /// Turns super seeding (BEP 16) on or off. It applies to peers that connect while
    /// the torrent is a seed; turning it off tells those peers of every piece.
    pub fn set_super_seeding(&mut self, now: Instant, id: TorrentId, on: bool) {
        let Some(t) = self.torrents.get_mut(&id) else {
            return;
        };
        t.super_seeding = on;
        if !on {
            self.end_super_seed(now, id);
        }
    }

    fn set_seed(&mut self, now: Instant, cid: ConnId, seed: bool) {
        let Some(c) = self.conns.get_mut(&cid) else {
            return;
        };
        c.seed = seed;
        let Some(t) = c.torrent.and_then(|id| self.torrents.get_mut(&id)) else {
            return;
        };
        if let Some(e) = c.entry.and_then(|a| t.peers.get_mut(&a)) {
            e.seed = seed;
        }
        if seed && t.is_seed() && self.settings.close_redundant_connections {
            self.close(now, cid, DisconnectReason::Redundant);
        }
    }

    fn update_interest(&mut self, now: Instant, cid: ConnId) {
        let Some(c) = self.conns.get_mut(&cid) else {
            return;
        };
        let Some(t) = c.torrent.and_then(|id| self.torrents.get(&id)) else {
            return;
        };
        let Some(w) = c.wire.as_mut() else { return };
        if !c.connected {
            return;
        }
        let interested =
            !t.is_finished() && !t.upload_mode() && t.picker.is_interesting(Conn::key(cid));
        if interested != w.am_interested() {
            w.set_interested(now, interested);
        }
        if interested {
            self.fill_requests(now, cid);
        }
        // INTERESTED / NOT INTERESTED must go out even when no request follows.
        self.flush(cid);
    }

    /// The torrent's connections (a copy, so the caller may change the engine).
    fn torrent_conns(&self, id: TorrentId) -> Vec<ConnId> {
        self.torrents
            .get(&id)
            .map(|t| t.conns.iter().copied().collect())
            .unwrap_or_default()
    }

    fn update_all_interest(&mut self, now: Instant, id: TorrentId) {
        for c in self.torrent_conns(id) {
            self.update_interest(now, c);
        }
    }

    fn fill_torrent(&mut self, now: Instant, id: TorrentId) {
        for c in self.torrent_conns(id) {
            self.fill_requests(now, c);
        }
    }

    /// Sends as many requests to the peer as its rate calls for.
    fn fill_requests(&mut self, now: Instant, cid: ConnId) {
        let key = Conn::key(cid);
        let max_disk = self.settings.max_queued_disk_bytes;
        let queue_time = self.settings.request_queue_time.as_secs_f64();
        let min_q = self.settings.min_request_queue;
        let max_q = self.settings.max_out_request_queue;
        let session_down_ok = self.down_bucket.available();
        let session_down_limit = self.down_bucket.rate();
        let ignore_local = self.settings.ignore_limits_on_local_network;
        let Some(c) = self.conns.get_mut(&cid) else {
            return;
        };
        let limited = !(ignore_local && c.local);
        let tcp_limit = if c.utp {
            0
        } else {
            self.tcp_down_bucket.rate()
        };
        let tcp_ok = c.utp || self.tcp_down_bucket.available();
        let Some(t) = c.torrent.and_then(|id| self.torrents.get_mut(&id)) else {
            return;
        };
        let Some(w) = c.wire.as_mut() else { return };
        if !c.connected
            || !t.has_metadata
            || !t.is_active()
            || t.upload_mode()
            || t.is_finished()
            || !w.am_interested()
        {
            return;
        }
        let choked = w.peer_choking();
        if choked && w.allowed_fast().is_empty() {
            return;
        }
        if t.disk_bytes >= max_disk
            || (limited && (!session_down_ok || !t.down_bucket.available() || !tcp_ok))
        {
            return;
        }
        let rate = c.down.rate();
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let by_rate = (rate as f64 * queue_time / f64::from(lt_core::BLOCK_SIZE)) as usize;
        let mut target = by_rate.clamp(min_q, max_q.max(min_q));
        // Under a download limit, requests in flight are capped at half a second of it, or
        // the last of them would overshoot the limit by the whole queue.
        let limit = if limited {
            [t.down_bucket.rate(), session_down_limit, tcp_limit]
                .into_iter()
                .filter(|&l| l > 0)
                .min()
                .unwrap_or(0)
        } else {
            0
        };
        if limit > 0 {
            let cap =
                usize::try_from(limit / 2 / u64::from(lt_core::BLOCK_SIZE)).unwrap_or(usize::MAX);
            target = target.min(cap.max(2));
        }
        let outstanding = t.picker.outstanding_requests(key) as usize;
        let need = target.saturating_sub(outstanding).min(w.request_capacity());
        if need == 0 {
            return;
        }
        let speed = match rate {
            0..20_000 => Speed::Slow,
            20_000..200_000 => Speed::Medium,
            _ => Speed::Fast,
        };
        let opts = PickOptions {
            reverse: c.snubbed,
            on_parole: c.on_parole,
            prefer_whole_pieces: 0,
            speed,
            choked,
            time_critical_only: false,
        };
        let mut blocks = std::mem::take(&mut self.scratch_blocks);
        blocks.clear();
        if t.picker
            .pick_into(now, key, need, &opts, &mut blocks)
            .is_ok()
        {
            for &b in &blocks {
                let Some((begin, len)) = t.layout.request(b) else {
                    let _ = t.picker.cancel_request(key, b);
                    continue;
                };
                if w.request(now, BlockRequest::new(b.piece, begin, len))
                    .is_err()
                {
                    let _ = t.picker.cancel_request(key, b);
                }
            }
        }
        blocks.clear();
        self.scratch_blocks = blocks;
        self.flush(cid);
    }

    fn on_block(&mut self, now: Instant, cid: ConnId, req: BlockRequest, data: Bytes) {
        let key = Conn::key(cid);
        let Some(c) = self.conns.get_mut(&cid) else {
            return;
        };
        let Some(id) = c.torrent else { return };
        let Some(t) = self.torrents.get_mut(&id) else {
            return;
        };
        let len = data.len() as u64;
        c.down.add(len);
        t.total_download += len;
        t.down.add(len);
        if !(self.settings.ignore_limits_on_local_network && c.local) {
            spend_block(
                &self.settings,
                c,
                req.len,
                [
                    &mut t.down_bucket,
                    &mut self.down_bucket,
                    &mut self.tcp_down_bucket,
                ],
            );
        }
        if c.snubbed {
            c.snubbed = false;
            self.alerts.push(Alert::PeerUnsnubbed {
                torrent: id,
                addr: c.addr,
            });
        }
        let addr = c.addr;
        let Some(block) = t.layout.block_at(req.piece, req.begin) else {
            t.total_redundant += len;
            return;
        };
        if t.layout.request(block) != Some((req.begin, req.len)) {
            t.total_redundant += len;
            return;
        }
        let received = match t.picker.block_received(key, block) {
            Ok(r) => r,
            Err(e) => {
                self.close(now, cid, DisconnectReason::Protocol(e.to_string()));
                return;
            }
        };
        if received.redundant {
            t.total_redundant += len;
        } else {
            let blocks_in_piece = t.layout.blocks_in_piece(block.piece.get()) as usize;
            let part = t
                .parts
                .entry(block.piece.get())
                .or_insert_with(|| PartPiece {
                    blocks: vec![None; blocks_in_piece],
                    contributors: Vec::new(),
                });
            if let Some(slot) = part.blocks.get_mut(block.block.as_usize()) {
                *slot = Some(data);
            }
            if !part.contributors.iter().any(|&(x, _)| x == cid) {
                part.contributors.push((cid, addr));
            }
            if received.piece_complete {
                self.piece_complete(now, id, block.piece);
            }
        }
        for other in received.cancel {
            let ocid = ConnId(u64::from(other.0));
            if let Some(w) = self.conns.get_mut(&ocid).and_then(|c| c.wire.as_mut()) {
                w.cancel(now, req);
                self.flush(ocid);
            }
        }
        self.fill_requests(now, cid);
    }

    fn piece_complete(&mut self, _now: Instant, id: TorrentId, piece: PieceIndex) {
        let Some(t) = self.torrents.get_mut(&id) else {
            return;
        };
        let Some(part) = t.parts.remove(&piece.get()) else {
            return;
        };
        if part.blocks.iter().any(Option::is_none) {
            // A block finished earlier is not in memory: download the piece again.
            let _ = t.picker.piece_failed(piece);
            return;
        }
        let blocks: Vec<Bytes> = part.blocks.into_iter().flatten().collect();
        t.disk_bytes += t.piece_size(piece.get());
        t.writing.insert(piece.get(), part.contributors);
        self.actions.push_back(Action::Disk(DiskJob::WritePiece {
            torrent: id,
            piece,
            blocks,
        }));
    }

    fn on_request(&mut self, now: Instant, cid: ConnId, req: BlockRequest) {
        let session_up_ok = self.up_bucket.available();
        let Some(c) = self.conns.get_mut(&cid) else {
            return;
        };
        let Some(id) = c.torrent else { return };
        let Some(t) = self.torrents.get_mut(&id) else {
            return;
        };
        let Some(w) = c.wire.as_mut() else { return };
        let allowed = (!w.am_choking() || c.allowed_fast.contains(&req.piece))
            && c.super_seed
                .as_ref()
                .is_none_or(|ss| ss.offered.get(req.piece.as_usize()));
        if !t.have.get(req.piece.as_usize()) || !allowed || !t.is_active() {
            w.reject(now, req);
            self.flush(cid);
            return;
        }
        if let Some(unverified) = &t.unverified
            && unverified.get(req.piece.as_usize())
        {
            let waiting = t.verify_wait.entry(req.piece.get()).or_default();
            if waiting.is_empty() {
                self.actions.push_back(Action::Disk(DiskJob::VerifyPiece {
                    torrent: id,
                    piece: req.piece,
                }));
            }
            if waiting.len() < 1024 {
                waiting.push((cid, req));
            }
            return;
        }
        let limited = !(self.settings.ignore_limits_on_local_network && c.local);
        let tcp_ok = c.utp || self.tcp_up_bucket.available();
        if !limited
            || (session_up_ok && tcp_ok && t.up_bucket.available() && t.pending_reads.is_empty())
        {
            if limited {
                spend_block(
                    &self.settings,
                    c,
                    req.len,
                    [
                        &mut t.up_bucket,
                        &mut self.up_bucket,
                        &mut self.tcp_up_bucket,
                    ],
                );
            }
            c.pending_reads += 1;
            self.actions.push_back(Action::Disk(DiskJob::Read {
                torrent: id,
                conn: cid,
                request: req,
            }));
        } else {
            t.pending_reads.push_back((cid, req));
        }
    }

    fn serve_pending_reads(&mut self) {
        let ids: Vec<TorrentId> = self.torrents.keys().copied().collect();
        for id in ids {
            // TCP requests held back by mixed mode wait without blocking uTP ones.
            let mut held = VecDeque::new();
            while let Some(t) = self.torrents.get_mut(&id) {
                if !self.up_bucket.available() || !t.up_bucket.available() {
                    break;
                }
                let Some((cid, req)) = t.pending_reads.pop_front() else {
                    break;
                };
                let Some(c) = self.conns.get_mut(&cid) else {
                    continue;
                };
                if !c.utp && !self.tcp_up_bucket.available() {
                    held.push_back((cid, req));
                    continue;
                }
                spend_block(
                    &self.settings,
                    c,
                    req.len,
                    [
                        &mut t.up_bucket,
                        &mut self.up_bucket,
                        &mut self.tcp_up_bucket,
                    ],
                );
                c.pending_reads += 1;
                self.actions.push_back(Action::Disk(DiskJob::Read {
                    torrent: id,
                    conn: cid,
                    request: req,
                }));
            }
            if let Some(t) = self.torrents.get_mut(&id) {
                while let Some(r) = held.pop_back() {
                    t.pending_reads.push_front(r);
                }
            }
        }
    }

    /// `mixed_mode_algorithm`: while uTP peers transfer, TCP peers together get their
    /// share (by peer count) of the current rate (libtorrent's `peer_proportional`).
    fn balance_mixed_mode(&mut self, now: Instant) {
        // [TCP, uTP] peers we download from (requests in flight or data coming) and upload
        // to (requests waiting or data going).
        let (mut down, mut up) = ([0u64; 2], [0u64; 2]);
        if self.settings.mixed_mode_algorithm == MixedMode::PeerProportional {
            let ignore_local = self.settings.ignore_limits_on_local_network;
            for (&cid, c) in &self.conns {
                let Some(w) = c.wire.as_ref().filter(|_| c.connected) else {
                    continue;
                };
                if ignore_local && c.local {
                    continue;
                }
                let proto = usize::from(c.utp);
                if c.down.rate() > 0
                    || c.torrent
                        .and_then(|id| self.torrents.get(&id))
                        .is_some_and(|t| t.picker.outstanding_requests(Conn::key(cid)) > 0)
                {
                    down[proto] += 1;
                }
                if c.up.rate() > 0
                    || c.pending_reads > 0
                    || w.pending_peer_requests().next().is_some()
                {
                    up[proto] += 1;
                }
            }
        }
        let (up_rate, down_rate) = self.torrents.values().fold((0u64, 0u64), |(u, d), t| {
            (u + t.up.rate(), d + t.down.rate())
        });
        for (bucket, peers, rate, floor) in [
            (&mut self.tcp_up_bucket, up, up_rate, 5_000),
            (&mut self.tcp_down_bucket, down, down_rate, 30_000),
        ] {
            if peers[1] == 0 {
                bucket.set_rate(0);
                continue;
            }
            let tcp = peers[0].max(1);
            let share =
                u64::try_from(u128::from(rate) * u128::from(tcp) / u128::from(tcp + peers[1]))
                    .unwrap_or(u64::MAX);
            bucket.set_rate(share.max(floor));
            bucket.refill(now);
        }
    }

    // ------------------------------------------------------------ choking

    fn choke(&mut self, now: Instant, cid: ConnId) {
        if let Some(c) = self.conns.get_mut(&cid) {
            c.unchoked_at = None;
            c.optimistic = false;
            if let Some(w) = c.wire.as_mut() {
                w.choke(now);
            }
            if let Some(t) = c.torrent.and_then(|id| self.torrents.get_mut(&id)) {
                t.pending_reads.retain(|(x, _)| *x != cid);
            }
        }
        self.flush(cid);
    }

    fn unchoke(&mut self, now: Instant, cid: ConnId, optimistic: bool) {
        if let Some(c) = self.conns.get_mut(&cid) {
            c.unchoked_at = Some(now);
            c.optimistic = optimistic;
            if let Some(w) = c.wire.as_mut() {
                w.unchoke(now);
            }
        }
        self.flush(cid);
    }

    fn unchoked_count(&self) -> usize {
        self.conns
            .values()
            .filter(|c| {
                c.wire
                    .as_ref()
                    .is_some_and(|w| c.connected && !w.am_choking())
            })
            .count()
    }

    fn torrent_unchoked(&self, id: TorrentId) -> usize {
        self.torrents.get(&id).map_or(0, |t| {
            t.conns
                .iter()
                .filter_map(|c| self.conns.get(c))
                .filter(|c| c.wire.as_ref().is_some_and(|w| !w.am_choking()))
                .count()
        })
    }

    /// Interested, choked peers of active torrents.
    fn choke_candidates(&self) -> Vec<ConnId> {
        self.conns
            .iter()
            .filter(|(_, c)| {
                c.connected
                    && c.wire.as_ref().is_some_and(PeerConnection::peer_interested)
                    && c.torrent
                        .and_then(|id| self.torrents.get(&id))
                        .is_some_and(Torrent::is_active)
            })
            .map(|(&k, _)| k)
            .collect()
    }

    /// Unchokes interested peers while slots are free.
    fn unchoke_free_slots(&mut self, now: Instant) {
        let slots = self.settings.unchoke_slots_limit;
        let mut used = self.unchoked_count();
        for cid in self.choke_candidates() {
            if used >= slots {
                break;
            }
            let Some(c) = self.conns.get(&cid) else {
                continue;
            };
            if c.wire.as_ref().is_some_and(|w| !w.am_choking()) {
                continue;
            }
            let Some(id) = c.torrent else { continue };
            let cap = self.torrents.get(&id).and_then(|t| t.max_uploads);
            if cap.is_some_and(|m| self.torrent_unchoked(id) >= m) {
                continue;
            }
            self.unchoke(now, cid, false);
            used += 1;
        }
    }

    /// The periodic choker: the best `slots - 1` peers by rate, plus one optimistic unchoke.
    fn run_choker(&mut self, now: Instant) {
        let slots = self.settings.unchoke_slots_limit.max(1);
        let rotate_optimistic = now.saturating_duration_since(self.last_optimistic)
            >= self.settings.optimistic_unchoke_interval;
        let algo = self.settings.seed_choking_algorithm;
        let mut scored: Vec<(u64, ConnId)> = self
            .choke_candidates()
            .into_iter()
            .filter_map(|cid| {
                let c = self.conns.get(&cid)?;
                let t = self.torrents.get(&c.torrent?)?;
                let score = if t.is_seed() {
                    match algo {
                        crate::SeedChoking::FastestUpload => c.up.rate(),
                        crate::SeedChoking::RoundRobin => {
                            // Peers unchoked longest go to the back.
                            c.unchoked_at.map_or(u64::MAX, |at| {
                                u64::MAX / 2
                                    - u64::try_from(now.saturating_duration_since(at).as_millis())
                                        .unwrap_or(0)
                            })
                        }
                        crate::SeedChoking::AntiLeech => {
                            let have = c
                                .wire
                                .as_ref()
                                .and_then(|w| w.peer_pieces())
                                .map_or(0, Bitfield::count_ones)
                                as u64;
                            let n = u64::from(t.info.num_pieces()).max(1);
                            let frac = have * 1000 / n;
                            frac.abs_diff(500)
                        }
                    }
                } else {
                    c.down.rate()
                };
                Some((score, cid))
            })
            .collect();
        scored.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let regular = if scored.len() > slots {
            slots - 1
        } else {
            slots
        };
        let mut keep: BTreeSet<ConnId> = BTreeSet::new();
        let mut per_torrent: BTreeMap<TorrentId, usize> = BTreeMap::new();
        for &(_, cid) in &scored {
            if keep.len() >= regular {
                break;
            }
            let Some(id) = self.conns.get(&cid).and_then(|c| c.torrent) else {
                continue;
            };
            let cap = self.torrents.get(&id).and_then(|t| t.max_uploads);
            let n = per_torrent.entry(id).or_default();
            if cap.is_some_and(|m| *n >= m) {
                continue;
            }
            *n += 1;
            keep.insert(cid);
        }
        // The optimistic unchoke: keep the current one until it is time to rotate.
        let current_opt = self
            .conns
            .iter()
            .find(|(_, c)| c.optimistic)
            .map(|(&k, _)| k);
        let rest: Vec<ConnId> = scored
            .iter()
            .map(|&(_, c)| c)
            .filter(|c| !keep.contains(c))
            .collect();
        let optimistic = if scored.len() <= slots {
            None
        } else if rotate_optimistic || current_opt.is_none_or(|c| !rest.contains(&c)) {
            self.last_optimistic = now;
            if rest.is_empty() {
                None
            } else {
                self.optimistic_counter = self.optimistic_counter.wrapping_add(1);
                let i = usize::try_from(self.rng.next_u64() % rest.len() as u64).unwrap_or(0);
                Some(rest[i])
            }
        } else {
            current_opt
        };
        let all: Vec<ConnId> = self.conns.keys().copied().collect();
        for cid in all {
            let Some(c) = self.conns.get(&cid) else {
                continue;
            };
            let Some(w) = c.wire.as_ref() else { continue };
            if !c.connected {
                continue;
            }
            let choking = w.am_choking();
            if keep.contains(&cid) {
                if choking {
                    self.unchoke(now, cid, false);
                } else if let Some(c) = self.conns.get_mut(&cid) {
                    c.optimistic = false;
                }
            } else if Some(cid) == optimistic {
                if choking {
                    self.unchoke(now, cid, true);
                } else if let Some(c) = self.conns.get_mut(&cid) {
                    c.optimistic = true;
                }
            } else if !choking {
                self.choke(now, cid);
            }
        }
    }

    // ------------------------------------------------------------ timers

    /// Runs the timers: connection timeouts, rates, the choker, tracker announces, new
    /// connections, rate limits and upload-mode retries.
    pub fn handle_timeout(&mut self, now: Instant) {
        if now < self.next_tick {
            return;
        }
        self.next_tick = now + self.settings.tick_interval;
        self.up_bucket.refill(now);
        self.down_bucket.refill(now);
        self.balance_mixed_mode(now);
        let ids: Vec<TorrentId> = self.torrents.keys().copied().collect();
        for &id in &ids {
            if let Some(t) = self.torrents.get_mut(&id) {
                t.down.tick(now);
                t.up.tick(now);
                t.up_bucket.refill(now);
                t.down_bucket.refill(now);
                if t.disk_upload_mode_until.is_some_and(|u| now >= u) {
                    t.disk_upload_mode_until = None;
                    self.alerts.push(Alert::UploadMode {
                        torrent: id,
                        enabled: false,
                    });
                }
                let (d, u) = (t.total_download, t.total_upload);
                if (d, u) != t.stats_reported {
                    self.alerts.push(Alert::Stats {
                        torrent: id,
                        downloaded: d - t.stats_reported.0,
                        uploaded: u - t.stats_reported.1,
                    });
                    t.stats_reported = (d, u);
                }
                if t.disk_bytes >= self.settings.max_queued_disk_bytes {
                    self.alerts.push(Alert::Performance {
                        torrent: id,
                        warning: PerformanceWarning::TooManyBytesQueuedForDisk,
                    });
                }
            }
        }
        let conns: Vec<ConnId> = self.conns.keys().copied().collect();
        for cid in conns {
            let Some(c) = self.conns.get_mut(&cid) else {
                continue;
            };
            c.down.tick(now);
            c.up.tick(now);
            let Some(w) = c.wire.as_mut() else { continue };
            if w.poll_timeout().is_some_and(|t| t <= now) {
                if let Err(e) = w.handle_timeout(now) {
                    let reason = if matches!(e, lt_wire::Error::Timeout(_)) {
                        DisconnectReason::Timeout
                    } else {
                        DisconnectReason::Protocol(e.to_string())
                    };
                    self.close(now, cid, reason);
                    continue;
                }
                self.process(now, cid);
            }
        }
        if self.shutdown_deadline.is_some() {
            return;
        }
        if self.queue_dirty
            || now.saturating_duration_since(self.last_auto_manage)
                >= self.settings.auto_manage_interval
        {
            self.auto_manage(now);
        }
        self.serve_pending_reads();
        if now.saturating_duration_since(self.last_unchoke) >= self.settings.unchoke_interval {
            self.last_unchoke = now;
            self.run_choker(now);
        } else {
            self.unchoke_free_slots(now);
        }
        self.tick_trackers(now);
        self.send_pex(now);
        self.connect_peers(now);
        for &id in &ids {
            if self
                .torrents
                .get(&id)
                .is_some_and(|t| !t.has_metadata && t.meta.size.is_some())
            {
                self.request_metadata(now, id);
            }
        }
        for &id in &ids {
            self.recalc_share_mode(now, id);
            self.update_all_interest(now, id);
        }
    }

    fn connect_peers(&mut self, now: Instant) {
        if self.paused {
            return;
        }
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let mut budget = ((self.settings.connection_speed as f64)
            * self.settings.tick_interval.as_secs_f64())
        .ceil()
        .max(1.0) as usize;
        let ids: Vec<TorrentId> = self.torrents.keys().copied().collect();
        for id in ids {
            loop {
                if budget == 0
                    || self.half_open >= self.settings.half_open_limit
                    || self.conns.len() >= self.settings.connections_limit
                {
                    return;
                }
                let Some(t) = self.torrents.get(&id) else {
                    break;
                };
                if !t.is_active() || t.conns.len() >= t.max_connections {
                    break;
                }
                let seed = t.is_seed();
                let allow_multi = self.settings.allow_multiple_connections_per_ip;
                let max_fail = self.settings.max_failcount;
                let candidate = t
                    .peers
                    .iter()
                    .filter(|(a, e)| {
                        e.conn.is_none()
                            && !e.banned
                            && !e.is_self
                            && !self.banned.contains(a)
                            && !self.blocked(Some(id), **a)
                            && !self.port_filter.access(a.port()).is_blocked()
                            && (e.source == PeerSource::User || e.failcount < max_fail)
                            && e.next_try.is_none_or(|n| n <= now)
                            && !(seed && e.seed)
                            && (allow_multi
                                || !t.conns.iter().any(|c| {
                                    self.conns.get(c).is_some_and(|c| c.addr.ip() == a.ip())
                                }))
                    })
                    .min_by_key(|(_, e)| (e.source != PeerSource::User, e.failcount))
                    .map(|(&a, _)| a);
                let Some(addr) = candidate else { break };
                let cid = self.new_conn_id();
                let encrypt = self.mse_config().encrypt_outgoing();
                let Some(t) = self.torrents.get_mut(&id) else {
                    break;
                };
                if let Some(e) = t.peers.get_mut(&addr) {
                    e.conn = Some(cid);
                    e.next_try = Some(now + Duration::from_secs(1));
                }
                t.conns.insert(cid);
                let info_hash = t.wire_hash;
                self.conns
                    .insert(cid, Conn::new(addr, Some(id), true, false, Some(addr)));
                self.half_open += 1;
                budget -= 1;
                self.actions.push_back(Action::Connect {
                    conn: cid,
                    addr,
                    info_hash,
                    encrypt,
                });
            }
        }
    }
}
