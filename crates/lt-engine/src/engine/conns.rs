//! Peer connections: dialling, accepting, bytes in, handshakes, peer events, closing.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use lt_core::{Bitfield, PeerId, PieceIndex, Sha1Hash};
use lt_wire::{ExtendedHandshake, ExtensionMessage, PeerConfig, PeerConnection, PeerEvent};
use tracing::{debug, trace};

use crate::alert::Alert;
use crate::torrent::{PeerEntry, PeerSource};
use crate::{Action, ConnId, DisconnectReason, Handshake, IoError, TorrentId, Transport};

use super::Engine;
use super::conn::{Conn, SuperSeed};

impl Engine {
    /// [`Input::Connected`]: a connection we dialled is open and its MSE handshake, if
    /// any, done.
    pub(super) fn dial_done(
        &mut self,
        now: Instant,
        cid: ConnId,
        transport: Transport,
        hs: Handshake,
    ) {
        let ssl = self.conns.get(&cid).is_some_and(|c| c.ssl.is_some());
        let config = self.peer_config(ssl);
        let Some(c) = self.conns.get_mut(&cid) else {
            self.actions.push_back(Action::Close { conn: cid });
            return;
        };
        if c.wire.is_some() {
            return;
        }
        self.half_open = self.half_open.saturating_sub(1);
        c.utp = transport == Transport::Utp;
        let Some(t) = c.torrent.and_then(|id| self.torrents.get_mut(&id)) else {
            self.close(now, cid, DisconnectReason::Closed);
            return;
        };
        if c.utp
            && let Some(e) = c.entry.and_then(|a| t.peers.get_mut(&a))
        {
            e.utp = Some(true);
        }
        let params = t.wire_params();
        c.encrypted = hs.encrypted;
        debug!(conn = %cid, peer = %c.addr, ?transport, encrypted = hs.encrypted, "connected");
        match PeerConnection::outgoing(config, now, params, hs.cipher, hs.received) {
            Ok(w) => {
                c.wire = Some(w);
                self.process(now, cid);
            }
            Err(e) => self.close(now, cid, DisconnectReason::Protocol(e)),
        }
    }

    /// [`Input::ConnectFailed`] and [`Input::HandshakeFailed`]: the dial failed. What the
    /// failure says about the peer is remembered in its entry (no uTP; no MSE), and the
    /// next way to reach it is tried at once, as libtorrent does: plaintext over the same
    /// transport after a failed MSE handshake (with the outgoing policy only "enabled"),
    /// the other transport after a failed connect.
    pub(super) fn dial_failed(&mut self, now: Instant, cid: ConnId, error: IoError, mse: bool) {
        let Some(c) = self.conns.get(&cid).filter(|c| c.wire.is_none()) else {
            self.close(now, cid, DisconnectReason::Io(error));
            return;
        };
        let (transport, encrypt, dialled, entry) = (c.transport, c.encrypt, c.dialled, c.entry);
        let raced = c.raced;
        let torrent = c.torrent;
        let enabled = self.settings.out_enc_policy == lt_wire::mse::EncPolicy::Enabled;
        let next = if mse && encrypt && enabled {
            Some((transport, false))
        } else if mse {
            None
        } else {
            let other = match transport {
                Transport::Tcp => Transport::Utp,
                Transport::Utp => Transport::Tcp,
            };
            self.transport_enabled(other)
                .then_some((other, encrypt))
                .filter(|_| !dialled[other as usize])
        };
        let Some(t) = torrent.and_then(|id| self.torrents.get_mut(&id)) else {
            self.half_open = self.half_open.saturating_sub(1);
            self.close(now, cid, DisconnectReason::Io(error));
            return;
        };
        if let Some(e) = entry.and_then(|a| t.peers.get_mut(&a)) {
            if mse && encrypt && enabled {
                e.plaintext = true;
            }
            // A raced dial failed both ways: which transport the peer lacks is not known.
            if !mse && !raced && transport == Transport::Utp && e.utp != Some(true) {
                e.utp = Some(false);
            }
        }
        let info_hash = t.wire_hash;
        if let Some((transport, encrypt)) = next {
            debug!(conn = %cid, %error, ?transport, encrypt, "dial failed, trying again");
            self.dial(cid, info_hash, transport, encrypt);
            return;
        }
        self.half_open = self.half_open.saturating_sub(1);
        self.close(now, cid, DisconnectReason::Io(error));
    }

    /// Asks the driver to dial a connection's peer over `transport` (with MSE when
    /// `encrypt`), and records the attempt for the fallback.
    /// A uTP dial races TCP (`utp_tcp_race_delay`) when TCP is on and was not dialled for
    /// this connection yet (a plaintext retry after MSE failed may race again).
    fn dial(&mut self, cid: ConnId, info_hash: Sha1Hash, transport: Transport, encrypt: bool) {
        let race = self
            .settings
            .utp_tcp_race_delay
            .filter(|_| transport == Transport::Utp && self.settings.enable_outgoing_tcp);
        let Some(c) = self.conns.get_mut(&cid) else {
            return;
        };
        let race = race.filter(|_| !c.dialled[Transport::Tcp as usize] || c.raced);
        c.transport = transport;
        c.encrypt = encrypt;
        c.dialled[transport as usize] = true;
        if race.is_some() {
            c.dialled[Transport::Tcp as usize] = true;
            c.raced = true;
        }
        self.actions.push_back(Action::Connect {
            conn: cid,
            addr: c.addr,
            transport,
            info_hash,
            encrypt,
            ssl: c.ssl.is_some(),
            race_tcp_after: race,
        });
    }

    const fn transport_enabled(&self, transport: Transport) -> bool {
        match transport {
            Transport::Tcp => self.settings.enable_outgoing_tcp,
            Transport::Utp => self.settings.enable_outgoing_utp,
        }
    }

    /// How to dial a peer first, from what its entry knows: uTP unless it is known not to
    /// speak it (a uTP connect to it failed), as libtorrent assumes every peer does until
    /// then; TCP otherwise, or when uTP is off. With MSE as the outgoing
    /// policy says, unless an MSE handshake with it failed; never with MSE for an SSL
    /// torrent (`ssl`), whose connections are TLS. `None` when no outgoing transport is on.
    pub(super) fn first_dial(
        &self,
        entry: Option<&PeerEntry>,
        ssl: bool,
    ) -> Option<(Transport, bool)> {
        let utp = entry.and_then(|e| e.utp);
        let transport = if self.settings.enable_outgoing_utp
            && (!self.settings.enable_outgoing_tcp || utp != Some(false))
        {
            Transport::Utp
        } else if self.settings.enable_outgoing_tcp {
            Transport::Tcp
        } else {
            return None;
        };
        let plaintext_ok = self.settings.out_enc_policy != lt_wire::mse::EncPolicy::Forced;
        let encrypt = !ssl
            && self.mse_config().encrypt_outgoing()
            && !(plaintext_ok && entry.is_some_and(|e| e.plaintext));
        Some((transport, encrypt))
    }

    /// [`Input::Incoming`]: a peer connected to us. Returns the connection's id, or `None`
    /// when it is refused (the session is paused or full, the peer banned or blocked).
    pub(super) fn accept(
        &mut self,
        now: Instant,
        addr: SocketAddr,
        transport: Transport,
        hs: Handshake,
    ) -> Option<ConnId> {
        if !self.paused && self.conns.len() >= self.settings.connections_limit {
            self.make_room(now, None);
        }
        let refused = if self.paused || self.conns.len() >= self.settings.connections_limit {
            Some(DisconnectReason::TooManyConnections)
        } else if self.banned.contains(&addr) {
            Some(DisconnectReason::Banned)
        } else if let Err(e) = self.mse_config().accept_incoming(!hs.encrypted) {
            // The driver checks this before running MSE; the engine has the last word.
            Some(DisconnectReason::Protocol(e))
        } else if self.blocked(None, addr) {
            self.alerts.push(Alert::PeerBlocked {
                torrent: None,
                addr,
            });
            Some(DisconnectReason::Banned)
        } else {
            None
        };
        if let Some(reason) = refused {
            debug!(peer = %addr, %reason, "incoming connection refused");
            return None;
        }
        let cid = self.new_conn_id();
        let mut conn = Conn::new(now, addr, None, false, hs.encrypted, None);
        conn.utp = transport == Transport::Utp;
        conn.ssl = hs.ssl;
        let config = self.peer_config(hs.ssl.is_some());
        match PeerConnection::incoming(config, now, hs.cipher, hs.received) {
            Ok(w) => {
                conn.wire = Some(w);
                self.conns.insert(cid, conn);
                debug!(conn = %cid, peer = %addr, ?transport, encrypted = hs.encrypted, "accepted");
                self.alerts.push(Alert::IncomingConnection {
                    addr,
                    transport,
                    ssl: hs.ssl.is_some(),
                });
                self.process(now, cid);
                // The first bytes may already have closed it.
                self.conns.contains_key(&cid).then_some(cid)
            }
            Err(e) => {
                debug!(peer = %addr, error = %e, "incoming handshake refused");
                None
            }
        }
    }

    /// At the connection limit, closes the least useful connection for a new one, as
    /// libtorrent does: of those past their handshake that exchanged no payload and where
    /// neither side is interested, the oldest. Without such a connection nothing is closed
    /// (and the newcomer is refused), so a flood of idle connections cannot keep real
    /// peers out for longer than it takes them to arrive (issue 18, finding 17). With
    /// `torrent`, only that torrent's connections are weighed (its own connection limit).
    fn make_room(&mut self, now: Instant, torrent: Option<TorrentId>) {
        let idle = self
            .conns
            .iter()
            .filter(|(_, c)| {
                torrent.is_none_or(|id| c.torrent == Some(id))
                    && c.connected
                    && c.down.total() == 0
                    && c.up.total() == 0
                    && c.wire
                        .as_ref()
                        .is_some_and(|w| !w.am_interested() && !w.peer_interested())
            })
            .min_by_key(|(id, c)| (c.since, **id))
            .map(|(&id, _)| id);
        if let Some(victim) = idle {
            debug!(conn = %victim, "closing an idle connection to make room");
            self.close(now, victim, DisconnectReason::TooManyConnections);
        }
    }

    /// [`Input::Received`]: bytes arrived on a connection.
    pub(super) fn receive(&mut self, now: Instant, cid: ConnId, data: BytesMut) {
        let Some(w) = self.conns.get_mut(&cid).and_then(|c| c.wire.as_mut()) else {
            return;
        };
        if let Err(e) = w.handle_buf(now, data) {
            self.process(now, cid);
            self.close(now, cid, DisconnectReason::Protocol(e));
            return;
        }
        self.process(now, cid);
    }

    /// [`Input::Closed`]: the connection closed (end of stream or error).
    pub(super) fn closed(&mut self, now: Instant, cid: ConnId, error: Option<IoError>) {
        if self.conns.get(&cid).is_some_and(|c| c.wire.is_none()) {
            self.half_open = self.half_open.saturating_sub(1);
        }
        let reason = error.map_or(DisconnectReason::PeerClosed, DisconnectReason::Io);
        self.close_inner(now, cid, reason, false);
    }

    /// [`Input::Drained`]: the driver wrote `written` bytes of what we sent; below the send
    /// buffer watermark the connection's waiting requests are served again.
    pub(super) fn drained(&mut self, cid: ConnId, written: usize) {
        let Some(c) = self.conns.get_mut(&cid) else {
            return;
        };
        c.send_queued = c.send_queued.saturating_sub(written);
        self.serve_held(cid);
        self.flush(cid);
    }

    pub(super) fn new_conn_id(&mut self) -> ConnId {
        loop {
            let id = ConnId(u64::from(self.next_conn));
            self.next_conn = self.next_conn.wrapping_add(1).max(1);
            if !self.conns.contains_key(&id) && !self.web_ids.contains_key(&id) {
                return id;
            }
        }
    }

    /// The wire settings of a new connection; `ssl`: an SSL torrent's, which tells peers
    /// the SSL listen port in its extension handshake (as libtorrent does), so that PEX
    /// spreads the port they can reach it on.
    pub(super) fn peer_config(&self, ssl: bool) -> PeerConfig {
        let port = if ssl {
            self.ssl_listen_port
        } else {
            self.listen_port
        };
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
            // No client name at all when it is empty (anonymous mode).
            v: (!self.settings.user_agent.is_empty()).then(|| self.settings.user_agent.clone()),
            p: (port != 0).then_some(port),
            ..ExtendedHandshake::default()
        };
        c
    }

    pub(super) fn close(&mut self, now: Instant, cid: ConnId, reason: DisconnectReason) {
        self.close_inner(now, cid, reason, true);
    }

    pub(super) fn close_inner(
        &mut self,
        now: Instant,
        cid: ConnId,
        reason: DisconnectReason,
        tell_driver: bool,
    ) {
        let Some(mut c) = self.conns.remove(&cid) else {
            return;
        };
        if let Some(w) = &c.wire {
            self.gone.wire_down += w.stats().received.total_bytes();
            self.gone.wire_up += w.stats().sent.total_bytes();
        }
        debug!(conn = %cid, peer = %c.addr, %reason, fault = ?reason.fault(), "disconnected");
        if tell_driver {
            // Flush what is queued (a reject, a bitfield) before closing.
            if let Some(bufs) = c.take_transmit() {
                self.actions.push_back(Action::Send { conn: cid, bufs });
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
            // Metadata pieces it was asked for go to someone else now, not at their timeout.
            let mut meta_freed = false;
            for r in &mut t.meta.requested {
                if r.is_some_and(|(x, _)| x == cid) {
                    *r = None;
                    meta_freed = true;
                }
            }
            if let Some(e) = c.entry.and_then(|a| t.peers.get_mut(&a)) {
                if e.conn == Some(cid) {
                    e.conn = None;
                }
                match &reason {
                    DisconnectReason::SelfConnection => e.is_self = true,
                    r if r.fault() != crate::Fault::Local => {
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
            // A dial that failed is posted too (with the socket's or the proxy's error), as
            // libtorrent posts a connect failure: it is how a user learns that a proxy
            // refuses us. So is a connection refused by the SSL torrent rule.
            if c.connected
                || matches!(
                    reason,
                    DisconnectReason::Banned
                        | DisconnectReason::Io(_)
                        | DisconnectReason::SslMismatch
                )
            {
                self.alerts.push(Alert::PeerDisconnected {
                    torrent: c.torrent,
                    addr: c.addr,
                    reason,
                });
            }
            if let Some(tid) = c.torrent
                && meta_freed
            {
                self.request_metadata(now, tid);
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

    pub(super) fn close_torrent_conns(
        &mut self,
        now: Instant,
        id: TorrentId,
        reason: &DisconnectReason,
    ) {
        let conns: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.torrent == Some(id))
            .map(|(&k, _)| k)
            .collect();
        for c in conns {
            self.close(now, c, reason.clone());
        }
        self.stop_web(id);
    }

    pub(super) fn flush(&mut self, cid: ConnId) {
        if let Some(bufs) = self.conns.get_mut(&cid).and_then(Conn::take_transmit) {
            self.actions.push_back(Action::Send { conn: cid, bufs });
        }
    }

    /// Handles a connection's queued events and flushes what it has to send.
    pub(super) fn process(&mut self, now: Instant, cid: ConnId) {
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
    pub(super) fn on_event(&mut self, now: Instant, cid: ConnId, event: PeerEvent) {
        if !matches!(event, PeerEvent::Block { .. }) {
            trace!(conn = %cid, ?event, "peer event");
        }
        let key = Conn::key(cid);
        let tid = self.conns.get(&cid).and_then(|c| c.torrent);
        let has_metadata = tid
            .and_then(|id| self.torrents.get(&id))
            .is_some_and(|t| t.has_metadata);
        let event = if !has_metadata && tid.is_some() {
            let Some(event) = self.hold_before_metadata(cid, event) else {
                return;
            };
            event
        } else {
            event
        };
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
                    self.metadata_size_seen(now, id, cid, size);
                }
            }
            PeerEvent::Extension(ExtensionMessage::Pex(m)) => {
                if let (Some(id), Some(from)) = (tid, self.conns.get(&cid).map(|c| c.addr)) {
                    self.on_pex(id, from, &m);
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
                if let Some(id) = tid {
                    self.on_bitfield(now, id, cid, bits);
                }
            }
            PeerEvent::Have(piece) => {
                if let Some(id) = tid {
                    self.on_have(now, id, cid, piece);
                }
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
                if let Some(c) = self.conns.get_mut(&cid) {
                    c.held.retain(|&r| r != req);
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
                    if let Some(id) = tid {
                        self.fill_torrent(now, id);
                    }
                } else {
                    self.fill_requests(now, cid);
                }
            }
            PeerEvent::Snubbed | PeerEvent::Unsnubbed => {
                if let (Some(torrent), Some(c)) = (tid, self.conns.get(&cid)) {
                    let (addr, snubbed) = (c.addr, matches!(event, PeerEvent::Snubbed));
                    debug!(conn = %cid, peer = %addr, snubbed, "snub");
                    self.alerts.push(if snubbed {
                        Alert::PeerSnubbed { torrent, addr }
                    } else {
                        Alert::PeerUnsnubbed { torrent, addr }
                    });
                }
            }
            PeerEvent::AllowedFast(piece) => {
                if let Some(t) = tid.and_then(|id| self.torrents.get_mut(&id)) {
                    let _ = t.picker.peer_allowed_fast(key, piece);
                }
                self.fill_requests(now, cid);
            }
            PeerEvent::Port(port) if self.dht_port.is_some() && port != 0 => {
                // One DHT node per connection: a flood of PORT messages would otherwise
                // become a flood of DHT pings (issue 18, finding 8).
                if let Some(c) = self.conns.get_mut(&cid)
                    && !c.dht_node_sent
                {
                    c.dht_node_sent = true;
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

    /// Before the metadata (and so the piece count) is known, a peer's piece
    /// announcements are kept on its connection; returns the event when it is not one.
    fn hold_before_metadata(&mut self, cid: ConnId, event: PeerEvent) -> Option<PeerEvent> {
        let c = self.conns.get_mut(&cid)?;
        match event {
            PeerEvent::RawBitfield(b) => {
                c.pending_bits.bitfield(b);
                c.seed = false;
            }
            PeerEvent::HaveAll => {
                c.pending_bits.have_all();
                c.seed = true;
            }
            PeerEvent::Have(p) => c.pending_bits.have(p),
            PeerEvent::HaveNone | PeerEvent::DontHave(_) => {}
            other => return Some(other),
        }
        None
    }

    fn on_bitfield(&mut self, now: Instant, id: TorrentId, cid: ConnId, bits: Bitfield) {
        let seed = bits.all();
        let Some(t) = self.torrents.get_mut(&id) else {
            return;
        };
        if let Err(e) = t.picker.peer_bitfield(Conn::key(cid), bits) {
            self.close(now, cid, DisconnectReason::BadPieces(e));
            return;
        }
        self.set_seed(now, cid, seed);
        self.update_interest(now, cid);
        self.super_seed_offer(now, cid);
    }

    fn on_have(&mut self, now: Instant, id: TorrentId, cid: ConnId, piece: PieceIndex) {
        let Some(t) = self.torrents.get_mut(&id) else {
            return;
        };
        if let Err(e) = t.picker.peer_have(Conn::key(cid), piece) {
            self.close(now, cid, DisconnectReason::BadPieces(e));
            return;
        }
        let wanted =
            !t.have.get(piece.as_usize()) && !t.picker.piece_priority(piece).is_dont_download();
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

    pub(super) fn on_incoming_handshake(&mut self, now: Instant, cid: ConnId, hash: &Sha1Hash) {
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
        // An SSL torrent takes only TLS connections made for it (the SNI named it, so its
        // certificate was shown and checked), and only once it has a certificate; a torrent
        // that is not one takes no TLS connection (libtorrent's `attach_peer`).
        let ssl = self.conns.get(&cid).and_then(|c| c.ssl);
        let fits = if t.is_ssl() {
            t.ssl_cert_set && ssl.and_then(|h| self.find_by_wire_hash(&h)) == Some(id)
        } else {
            ssl.is_none()
        };
        if !fits {
            // Named, so that the alert says which torrent refused it.
            if let Some(c) = self.conns.get_mut(&cid) {
                c.torrent = Some(id);
            }
            self.close(now, cid, DisconnectReason::SslMismatch);
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
            // At the torrent's limit, an idle connection of the torrent makes room, as at
            // the session's limit: a flood that handshakes and goes quiet (or leaves before
            // its close is seen) must not keep a real peer out.
            self.make_room(now, Some(id));
            if self
                .torrents
                .get(&id)
                .is_none_or(|t| t.conns.len() >= t.max_connections)
            {
                self.close(now, cid, DisconnectReason::Duplicate);
                return;
            }
        }
        let Some(t) = self.torrents.get(&id) else {
            return;
        };
        let params = t.wire_params();
        let Some(c) = self.conns.get_mut(&cid) else {
            return;
        };
        c.torrent = Some(id);
        let Some(w) = c.wire.as_mut() else { return };
        if let Err(e) = w.accept(now, params) {
            self.close(now, cid, DisconnectReason::Protocol(e));
            return;
        }
        if let Some(t) = self.torrents.get_mut(&id) {
            t.conns.insert(cid);
        }
    }

    pub(super) fn on_connected(&mut self, now: Instant, cid: ConnId, peer_id: PeerId) {
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

    pub(super) fn connect_peers(&mut self, now: Instant) {
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
        // Only active torrents dial.
        let ids = self.active_torrents();
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
                if !t.is_active() || t.conns.len() >= t.max_connections || t.ssl_waits() {
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
                let ssl = t.is_ssl().then_some(t.wire_hash);
                let Some((transport, encrypt)) = self.first_dial(t.peers.get(&addr), ssl.is_some())
                else {
                    return;
                };
                let cid = self.new_conn_id();
                let Some(t) = self.torrents.get_mut(&id) else {
                    break;
                };
                if let Some(e) = t.peers.get_mut(&addr) {
                    e.conn = Some(cid);
                    e.next_try = Some(now + Duration::from_secs(1));
                }
                t.conns.insert(cid);
                let info_hash = t.wire_hash;
                let mut conn = Conn::new(now, addr, Some(id), true, false, Some(addr));
                conn.ssl = ssl;
                self.conns.insert(cid, conn);
                self.half_open += 1;
                budget -= 1;
                debug!(conn = %cid, peer = %addr, torrent = %id, ?transport, encrypt, "dialling");
                self.dial(cid, info_hash, transport, encrypt);
            }
        }
    }
}
