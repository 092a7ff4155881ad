//! The engine: every torrent and peer connection of a session, driven by events.

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Instant;

use lt_core::{InfoHash, PeerId, Sha1Hash};
use lt_picker::Block;
use lt_wire::PeerEvent;
use lt_wire::mse::MseConfig;
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng as _;
use tracing::{debug, debug_span};

use crate::alert::{Alert, AlertCategory, AlertQueue};
use crate::rate::Bucket;
use crate::{Action, ConnId, DisconnectReason, Input, Settings, TorrentId};

mod choking;
mod conn;
mod conns;
mod discovery;
mod disk;
mod metadata;
mod pex;
mod queue;
mod requests;
mod seeding;
mod status;
mod tick;
mod timers;
mod torrent_map;
mod torrents;
mod trackers;
pub(crate) mod web;

use conn::Conn;
use timers::TimerTable;
use torrent_map::TorrentMap;

/// The engine: a sans-IO state machine for every torrent and connection of a session.
///
/// Every event from the driver comes in through [`handle_input`](Self::handle_input) as an
/// [`Input`]; user commands are the other methods taking `now`. Output leaves through
/// [`poll_action`](Self::poll_action) (what the driver must do), [`poll_alert`](Self::poll_alert)
/// and [`poll_timeout`](Self::poll_timeout).
///
/// Driver rule: after every input or command, drain `poll_action` and carry out each action,
/// drain alerts, and hand in [`Input::Timeout`] at `poll_timeout`. Report every write of an
/// [`Action::Send`] with [`Input::Drained`]: a connection's requests wait while its unwritten
/// bytes are over the send buffer watermark. `now` must never go backwards. Nothing here
/// reads a clock, touches a socket or a file, or draws randomness other than from the seed
/// given to [`Engine::new`]; the same inputs give the same outputs.
///
/// The behaviour lives in one module per concern beside this one: `conns` (connections and
/// peer events), `requests` (the request pipeline and uploads), `choking`, `disk`,
/// `trackers`, `metadata` (BEP 9), `pex` (BEP 11), `seeding` (super seeding, share mode),
/// `queue` (the auto-manager), `torrents` (torrent commands), `status` and `tick`.
#[derive(Debug)]
pub struct Engine {
    settings: Settings,
    peer_id: PeerId,
    rng: ChaCha8Rng,
    listen_port: u16,
    /// The SSL listen port (0: none), announced for SSL torrents.
    ssl_listen_port: u16,
    /// What each torrent's status looked like at the last `torrent_updates`.
    last_updates: BTreeMap<TorrentId, u64>,
    /// What each torrent's resume data held when it was last saved (`need_save_resume_data`).
    saved_resume: BTreeMap<TorrentId, u64>,
    /// The torrents, and which of them the tick looks at (`torrent_map.rs`).
    torrents: TorrentMap,
    conns: BTreeMap<ConnId, Conn>,
    next_conn: u32,
    next_torrent: u64,
    actions: VecDeque<Action>,
    alerts: AlertQueue,
    /// When each kind of timed work is next due.
    timers: TimerTable,
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
    /// Each torrent by the 20-byte hashes peers name it with (v1, truncated v2).
    by_wire_hash: HashMap<Sha1Hash, TorrentId>,
    /// MSE's `HASH('req2', info-hash)` of each of those hashes, to the hash.
    by_skey: HashMap<Sha1Hash, Sha1Hash>,
    /// The queue changed: run the auto-manager at the next tick.
    queue_dirty: bool,
    ip_filter: crate::IpFilter,
    port_filter: crate::PortFilter,
    last_auto_manage: Instant,
    /// Our DHT node's port, sent to peers in PORT messages (BEP 5).
    dht_port: Option<u16>,
    /// Local service discovery is on (the driver has the multicast socket).
    lsd: bool,
    /// Each web seed's torrent, by the seed's id.
    web_ids: BTreeMap<ConnId, TorrentId>,
    next_web_request: u64,
    /// An incoming connection was accepted since the engine started.
    had_incoming: bool,
    /// What closed connections and removed torrents counted, for the session totals.
    gone: status::Totals,
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
            ssl_listen_port: 0,
            last_updates: BTreeMap::new(),
            saved_resume: BTreeMap::new(),
            torrents: TorrentMap::default(),
            conns: BTreeMap::new(),
            next_conn: 1,
            next_torrent: 1,
            actions: VecDeque::new(),
            alerts,
            timers: TimerTable::new(now),
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
            by_wire_hash: HashMap::new(),
            by_skey: HashMap::new(),
            queue_dirty: false,
            ip_filter: crate::IpFilter::new(),
            port_filter: crate::PortFilter::new(),
            last_auto_manage: now,
            dht_port: None,
            lsd: false,
            web_ids: BTreeMap::new(),
            next_web_request: 1,
            had_incoming: false,
            gone: status::Totals::default(),
        }
    }

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

    /// The torrents that transfer now (checked, not paused), for the passes that skip
    /// queued ones.
    fn active_torrents(&self) -> Vec<TorrentId> {
        // An active torrent is never dormant, so it is awake.
        self.torrents
            .awake_iter()
            .filter(|(_, t)| t.is_active())
            .map(|(id, _)| id)
            .collect()
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

    /// The port SSL connections are accepted on (0: none): SSL torrents announce it to
    /// trackers, the DHT and LSD instead of the listen port, and tell it their peers.
    pub const fn set_ssl_listen_port(&mut self, port: u16) {
        self.ssl_listen_port = port;
    }

    /// The port to announce for a torrent: the SSL listen port for an SSL torrent.
    pub(crate) fn announce_port(&self, t: &crate::torrent::Torrent) -> u16 {
        if t.is_ssl() {
            self.ssl_listen_port
        } else {
            self.listen_port
        }
    }

    /// The port of our DHT node (`None`: no DHT): peers that support the DHT are told it
    /// (BEP 5 PORT), and their PORT messages come out as [`Action::DhtNode`].
    /// With a node, every public torrent is announced on the DHT from the next tick on
    /// ([`Action::DhtAnnounce`]).
    pub fn set_dht_port(&mut self, port: Option<u16>) {
        self.dht_port = port;
        for t in self.torrents.values_mut() {
            t.next_dht = None;
            t.dht_in_flight = false;
        }
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

    /// Takes one event from the driver. Returns the id an [`Input::Incoming`] connection
    /// gets, or `None` when it was refused (and for every other input).
    ///
    /// A panic while handling the input (a bug) does not unwind into the driver: the
    /// torrent the input concerned is paused with the error, [`Alert::InternalError`] says
    /// so, and the rest of the session goes on.
    pub fn handle_input(&mut self, now: Instant, input: Input) -> Option<ConnId> {
        let torrent = self.torrent_of(&input);
        // Every event of the input is logged inside its torrent's and its peer's spans
        // (`lt -v` shows `torrent{id=..}:peer{conn=.. addr=..}: ...`); disabled spans cost a
        // level check.
        let _torrent = torrent.map(|id| debug_span!("torrent", %id).entered());
        let _peer = self.peer_span(&input).map(tracing::Span::entered);
        match panic::catch_unwind(AssertUnwindSafe(|| self.dispatch(now, input))) {
            Ok(conn) => conn,
            Err(payload) => {
                self.contain(now, torrent, payload.as_ref());
                None
            }
        }
    }

    fn dispatch(&mut self, now: Instant, input: Input) -> Option<ConnId> {
        match input {
            Input::Timeout => self.tick(now),
            Input::Connected {
                conn,
                transport,
                handshake,
            } => self.dial_done(now, conn, transport, handshake),
            Input::ConnectFailed { conn, error } => self.dial_failed(now, conn, error, false),
            Input::HandshakeFailed { conn, error } => self.dial_failed(now, conn, error, true),
            Input::Incoming {
                addr,
                transport,
                handshake,
            } => {
                let conn = self.accept(now, addr, transport, handshake);
                self.had_incoming |= conn.is_some();
                return conn;
            }
            Input::Received { conn, data } => self.receive(now, conn, data),
            Input::Closed { conn, error } => self.closed(now, conn, error),
            Input::Drained { conn, written } => self.drained(conn, written),
            Input::Disk(done) => self.disk_done(now, done),
            Input::Announced {
                torrent,
                tracker,
                result,
            } => self.announce_done(now, torrent, tracker, result),
            Input::Scraped {
                torrent,
                tracker,
                result,
            } => self.scrape_done(torrent, tracker, result),
            Input::DhtPeers { torrent, peers } => self.dht_done(now, torrent, &peers),
            Input::LsdPeer { info_hash, addr } => self.add_lsd_peer(now, &info_hash, addr),
            Input::WebData {
                seed,
                request,
                data,
            } => self.web_data(now, seed, request, data),
            Input::WebDone {
                seed,
                request,
                result,
            } => self.web_done(now, seed, request, result),
        }
        None
    }

    /// The span of the peer an input concerns, if any.
    fn peer_span(&self, input: &Input) -> Option<tracing::Span> {
        if !tracing::enabled!(tracing::Level::DEBUG) {
            return None;
        }
        let (conn, addr) = match input {
            Input::Connected { conn, .. }
            | Input::ConnectFailed { conn, .. }
            | Input::HandshakeFailed { conn, .. }
            | Input::Received { conn, .. }
            | Input::Closed { conn, .. }
            | Input::Drained { conn, .. } => (Some(*conn), self.conns.get(conn).map(|c| c.addr)),
            Input::Incoming { addr, .. } => (None, Some(*addr)),
            Input::Disk(crate::DiskDone::Read { conn, .. }) => {
                (Some(*conn), self.conns.get(conn).map(|c| c.addr))
            }
            _ => return None,
        };
        let addr = addr?;
        Some(match conn {
            Some(conn) => debug_span!("peer", %conn, %addr),
            None => debug_span!("peer", %addr),
        })
    }

    /// The torrent an input concerns, when it is known before handling it.
    fn torrent_of(&self, input: &Input) -> Option<TorrentId> {
        let of_conn = |conn: &ConnId| self.conns.get(conn).and_then(|c| c.torrent);
        match input {
            Input::Connected { conn, .. }
            | Input::ConnectFailed { conn, .. }
            | Input::HandshakeFailed { conn, .. }
            | Input::Received { conn, .. }
            | Input::Closed { conn, .. }
            | Input::Drained { conn, .. } => of_conn(conn),
            Input::Disk(done) => Some(done.torrent()),
            Input::Announced { torrent, .. }
            | Input::Scraped { torrent, .. }
            | Input::DhtPeers { torrent, .. } => Some(*torrent),
            Input::LsdPeer { info_hash, .. } => self.find_by_wire_hash(info_hash),
            Input::WebData { seed, .. } | Input::WebDone { seed, .. } => {
                self.web_ids.get(seed).copied()
            }
            Input::Timeout | Input::Incoming { .. } => None,
        }
    }

    /// After a contained panic: the torrent concerned is paused with the error (its
    /// connections closed), and an alert says what happened. A second panic while doing so
    /// leaves the torrent as it is.
    fn contain(&mut self, now: Instant, torrent: Option<TorrentId>, payload: &(dyn Any + Send)) {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".to_owned());
        debug!(torrent = ?torrent, %message, "contained a panic");
        let torrent = torrent.filter(|id| self.torrents.contains_key(id));
        if let Some(id) = torrent {
            let _ = panic::catch_unwind(AssertUnwindSafe(|| {
                if let Some(t) = self.torrents.get_mut(&id) {
                    t.error = Some(format!("internal error: {message}"));
                    t.auto_managed = false;
                }
                self.pause_inner(now, id);
            }));
        }
        self.alerts.push(Alert::InternalError { torrent, message });
    }

    /// The next action for the driver.
    #[must_use]
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The next alert.
    #[must_use]
    pub fn poll_alert(&mut self) -> Option<Alert> {
        self.alerts.pop()
    }

    /// Queues an alert from the driver (listen results, saved resume data).
    pub fn post_alert(&mut self, alert: Alert) {
        self.alerts.push(alert);
    }

    /// When to hand in [`Input::Timeout`]: the earliest of the engine's timers (the
    /// housekeeping one is always armed, so this is at most `tick_interval` away).
    #[must_use]
    pub fn poll_timeout(&self) -> Instant {
        // Never None: the housekeeping timer is set again whenever it runs. Should that
        // change, a deadline in the past makes the driver hand in a timeout at once.
        self.timers.next().unwrap_or(self.last_auto_manage)
    }

    /// The torrents, in the order they were added.
    #[must_use]
    pub fn torrents(&self) -> Vec<TorrentId> {
        self.torrents.keys().copied().collect()
    }

    /// The torrent with this info-hash.
    #[must_use]
    pub fn find_torrent(&self, info_hash: &InfoHash) -> Option<TorrentId> {
        // Every torrent's wire hashes are indexed, and no two torrents share one.
        info_hash.wire_hashes().find_map(|h| {
            let &id = self.by_wire_hash.get(&h)?;
            self.torrents
                .get(&id)
                .is_some_and(|t| t.info_hash == *info_hash)
                .then_some(id)
        })
    }

    /// The torrent whose v1 (or truncated v2) info-hash is `hash`, as in a handshake.
    #[must_use]
    pub fn find_by_wire_hash(&self, hash: &Sha1Hash) -> Option<TorrentId> {
        self.by_wire_hash.get(hash).copied()
    }

    /// For an incoming MSE handshake: the info-hash (as on the wire) whose
    /// `HASH('req2', info-hash)` is `skey`, if the session has that torrent. The MSE
    /// responder runs in the driver; which torrents it may open is the engine's answer.
    #[must_use]
    pub fn torrent_for_skey(&self, skey: &Sha1Hash) -> Option<Sha1Hash> {
        self.by_skey.get(skey).copied()
    }

    /// Indexes a torrent added under `id` by its wire hashes.
    fn index_torrent(&mut self, id: TorrentId, info_hash: &InfoHash) {
        for h in info_hash.wire_hashes() {
            self.by_wire_hash.insert(h, id);
            self.by_skey.insert(lt_wire::mse::skey_hash(&h), h);
        }
    }

    /// Forgets a removed torrent's wire hashes.
    fn unindex_torrent(&mut self, info_hash: &InfoHash) {
        for h in info_hash.wire_hashes() {
            self.by_wire_hash.remove(&h);
            self.by_skey.remove(&lt_wire::mse::skey_hash(&h));
        }
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
        self.timers.pull_all(now);
    }

    /// Whether the session is paused.
    #[must_use]
    pub const fn is_paused(&self) -> bool {
        self.paused
    }

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
}
