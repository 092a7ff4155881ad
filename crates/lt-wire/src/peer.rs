//! A peer connection: the handshake, the message codec and the per-peer protocol state,
//! as a sans-IO state machine.
//!
//! It tracks choke and interest in both directions, the peer's pieces, the requests in
//! flight each way (with timeouts and BEP 6 rejects), the extension ids, snubbing,
//! keep-alive and inactivity timers and per-message byte counters. It decides nothing about
//! *which* pieces to request or whom to unchoke: that is the piece picker's and the
//! torrent's job, driven by the [`PeerEvent`]s it emits.
//!
//! # Invariants
//!
//! - `out_requests.len() <= min(max_out_requests, peer's reqq)`, `in_requests.len() <=
//!   max_in_requests`, the fast sets `<= max_fast_set`: nothing a peer sends grows a
//!   collection past a configured cap.
//! - Every block delivered as [`PeerEvent::Block`] matched a request we sent, exactly.
//! - Every request delivered as [`PeerEvent::Request`] is in range for the torrent and at
//!   most `max_request_len` long.
//! - At most one of BITFIELD / HAVE ALL / HAVE NONE is accepted, before any HAVE.

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use lt_core::{Bitfield, InfoHash, PeerId, PieceIndex, Sha1Hash};

use crate::extension::{ExtendedHandshake, ExtensionIds, ExtensionMessage};
use crate::handshake::{Handshake, HandshakeDecoder, HandshakeFrame, Reserved};
use crate::limits::{
    DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_INACTIVITY_TIMEOUT, DEFAULT_KEEPALIVE_INTERVAL,
    DEFAULT_MAX_FAST_SET, DEFAULT_MAX_IN_REQUESTS, DEFAULT_MAX_OUT_REQUESTS,
    DEFAULT_REQUEST_TIMEOUT,
};
use crate::message::{BlockRequest, HashRequest, Message, MessageDecoder, id, piece_header};
use crate::metadata::MetadataMessage;
use crate::mse::Rc4Stream;
use crate::pex::PexRateLimiter;
use crate::{Error, Limits, TimeoutKind};

/// Per-connection settings; every field has a documented default except `peer_id`.
#[derive(Clone, Debug)]
pub struct PeerConfig {
    /// Our peer id.
    pub peer_id: PeerId,
    /// Reserved bits we send. Default: fast extension and extension protocol.
    pub reserved: Reserved,
    /// Extensions we support and their local ids. Default: all of them.
    pub extensions: ExtensionIds,
    /// Fields of our extended handshake besides `m`, `reqq` and `metadata_size`
    /// (`v`, `p`, `yourip`, `upload_only`...). Default: empty.
    pub ext_handshake: ExtendedHandshake,
    /// Input limits. Default: [`Limits::default`].
    pub limits: Limits,
    /// Most requests we keep outstanding (also capped by the peer's `reqq`). Default:
    /// [`DEFAULT_MAX_OUT_REQUESTS`].
    pub max_out_requests: usize,
    /// Most requests from the peer we queue; advertised as `reqq`. Default:
    /// [`DEFAULT_MAX_IN_REQUESTS`].
    pub max_in_requests: usize,
    /// Most allowed-fast and suggested pieces remembered. Default: [`DEFAULT_MAX_FAST_SET`].
    pub max_fast_set: usize,
    /// Default: [`DEFAULT_REQUEST_TIMEOUT`].
    pub request_timeout: Duration,
    /// Default: [`DEFAULT_HANDSHAKE_TIMEOUT`].
    pub handshake_timeout: Duration,
    /// Default: [`DEFAULT_INACTIVITY_TIMEOUT`].
    pub inactivity_timeout: Duration,
    /// Default: [`DEFAULT_KEEPALIVE_INTERVAL`].
    pub keepalive_interval: Duration,
}

impl PeerConfig {
    /// The defaults, with our peer id.
    #[must_use]
    pub fn new(peer_id: PeerId) -> Self {
        Self {
            peer_id,
            reserved: Reserved::default().with_fast(true).with_extensions(true),
            extensions: ExtensionIds::default(),
            ext_handshake: ExtendedHandshake::default(),
            limits: Limits::default(),
            max_out_requests: DEFAULT_MAX_OUT_REQUESTS,
            max_in_requests: DEFAULT_MAX_IN_REQUESTS,
            max_fast_set: DEFAULT_MAX_FAST_SET,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            inactivity_timeout: DEFAULT_INACTIVITY_TIMEOUT,
            keepalive_interval: DEFAULT_KEEPALIVE_INTERVAL,
        }
    }
}

/// The piece geometry of a torrent, for validating indices and block ranges.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct PieceLayout {
    /// Number of pieces.
    pub num_pieces: u32,
    /// Bytes per piece (all but the last).
    pub piece_length: u32,
    /// Bytes in the torrent.
    pub total_length: u64,
}

impl PieceLayout {
    /// The size of piece `piece`, or `None` past the end.
    #[must_use]
    pub fn piece_size(&self, piece: PieceIndex) -> Option<u32> {
        let i = piece.get();
        if i >= self.num_pieces {
            return None;
        }
        let start = u64::from(i).checked_mul(u64::from(self.piece_length))?;
        let left = self.total_length.checked_sub(start)?;
        u32::try_from(left.min(u64::from(self.piece_length))).ok()
    }

    /// Checks a block against the layout and the request-length limit.
    fn check_block(&self, r: &BlockRequest, max_len: u32) -> Result<(), Error> {
        let size = self
            .piece_size(r.piece)
            .ok_or_else(|| Error::BadPieceIndex(r.piece.get()))?;
        if r.len > max_len {
            return Err(Error::RequestTooLong {
                len: r.len,
                max: max_len,
            });
        }
        match r.begin.checked_add(r.len) {
            Some(end) if r.len > 0 && end <= size => Ok(()),
            _ => Err(Error::BadBlock {
                piece: r.piece.get(),
                begin: r.begin,
                len: r.len,
            }),
        }
    }
}

/// The torrent a connection is for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct TorrentParams {
    /// Its info-hash (v1, v2 or hybrid).
    pub info_hash: InfoHash,
    /// Its pieces; `None` while the metadata is unknown (a magnet link), when bitfields are
    /// reported raw ([`PeerEvent::RawBitfield`]) and indices are not range-checked.
    pub layout: Option<PieceLayout>,
    /// The info dictionary's size, advertised as `metadata_size` when known.
    pub metadata_size: Option<u32>,
}

/// What happened on a connection, for the layer above.
#[non_exhaustive]
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum PeerEvent {
    /// (Incoming connection.) The peer named the torrent: call
    /// [`PeerConnection::accept`] or drop the connection.
    IncomingHandshake {
        /// The info-hash from the handshake.
        info_hash: Sha1Hash,
        /// The peer's reserved bits.
        reserved: Reserved,
    },
    /// Both handshakes are done.
    Connected {
        /// The peer's id.
        peer_id: PeerId,
        /// The peer's reserved bits.
        reserved: Reserved,
    },
    /// The peer's extended handshake (first or later).
    ExtendedHandshake(Box<ExtendedHandshake>),
    /// The peer choked us. Without the fast extension, our requests were dropped
    /// (reported as [`PeerEvent::Rejected`] first).
    Choked,
    /// The peer unchoked us.
    Unchoked,
    /// The peer is interested.
    Interested,
    /// The peer is not interested.
    NotInterested,
    /// The peer has a piece.
    Have(PieceIndex),
    /// The peer's pieces (BITFIELD, HAVE ALL or HAVE NONE), checked against the layout.
    Bitfield(Bitfield),
    /// A BITFIELD received while the layout is unknown.
    RawBitfield(Bytes),
    /// HAVE ALL while the layout is unknown.
    HaveAll,
    /// HAVE NONE while the layout is unknown.
    HaveNone,
    /// The peer no longer has a piece (lt_donthave).
    DontHave(PieceIndex),
    /// The peer requests a block: answer with [`PeerConnection::send_block`] or
    /// [`PeerConnection::reject`].
    Request(BlockRequest),
    /// The peer cancelled a request it made (already removed from the queue).
    Cancel(BlockRequest),
    /// A block we requested.
    Block {
        /// The request it answers.
        request: BlockRequest,
        /// The data, zero-copy.
        data: Bytes,
    },
    /// The peer rejected (or, choking without the fast extension, dropped) our request.
    Rejected(BlockRequest),
    /// Our request was not answered within the request timeout; it was forgotten.
    RequestTimedOut(BlockRequest),
    /// The peer became snubbed: a request timed out.
    Snubbed,
    /// A snubbed peer sent a block we asked for: it is no longer snubbed.
    Unsnubbed,
    /// The peer lets us request this piece while choked (BEP 6).
    AllowedFast(PieceIndex),
    /// The peer suggests this piece (BEP 6).
    Suggest(PieceIndex),
    /// The peer's DHT port (BEP 5).
    Port(u16),
    /// A typed extension message other than the handshake (ut_metadata, ut_pex, ...).
    Extension(ExtensionMessage),
    /// BEP 52 hash request.
    HashRequest(HashRequest),
    /// BEP 52 hashes.
    Hashes {
        /// What they answer.
        request: HashRequest,
        /// `32 * n` bytes.
        hashes: Bytes,
    },
    /// BEP 52 hash reject.
    HashReject(HashRequest),
}

/// Message and byte counts for one direction, by message id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DirectionStats {
    /// Messages per id (index 24: keep-alives).
    pub messages: [u64; 25],
    /// Bytes per id, length prefix included (index 24: keep-alives).
    pub bytes: [u64; 25],
    /// Block payload bytes (the data of PIECE messages).
    pub payload_bytes: u64,
}

impl DirectionStats {
    fn count(&mut self, msg_id: Option<u8>, len: usize) {
        let i = msg_id.map_or(24, |i| usize::from(i).min(24));
        self.messages[i] = self.messages[i].saturating_add(1);
        self.bytes[i] = self.bytes[i].saturating_add(u64::try_from(len).unwrap_or(u64::MAX));
    }

    /// All bytes counted.
    #[must_use]
    pub fn total_bytes(&self) -> u64 {
        self.bytes.iter().fold(0u64, |a, &b| a.saturating_add(b))
    }
}

/// Counters of a connection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerStats {
    /// What we received.
    pub received: DirectionStats,
    /// What we sent.
    pub sent: DirectionStats,
    /// Bytes of blocks we did not request (or no longer wanted).
    pub wasted_bytes: u64,
}

#[derive(Debug)]
enum Phase {
    /// Waiting for the peer's handshake head (or, outgoing, all of it).
    Handshake,
    /// Incoming: head received, waiting for [`PeerConnection::accept`].
    AwaitAccept,
    /// Waiting for the peer id.
    PeerId,
    /// Exchanging messages.
    Messages,
}

/// One BitTorrent peer connection, sans IO.
///
/// Driver rule: after any input (`handle_bytes`, `handle_timeout`, a command), drain
/// [`poll_transmit`](Self::poll_transmit) and write every buffer to the socket in order,
/// then drain [`poll_event`](Self::poll_event), then re-arm one timer from
/// [`poll_timeout`](Self::poll_timeout). Every `Err` returned means the connection must be
/// closed. Callers must never pass an earlier `now` than before. No method reads a clock.
///
/// ```no_run
/// use std::io::{Read, Write};
/// use std::time::Instant;
/// use lt_core::{InfoHash, PeerId};
/// use lt_wire::{PeerConfig, PeerConnection, PeerEvent, TorrentParams};
///
/// let torrent = TorrentParams { info_hash: InfoHash::v1([1; 20].into()), layout: None, metadata_size: None };
/// let mut sock = std::net::TcpStream::connect("127.0.0.1:6881")?;
/// let mut conn = PeerConnection::outgoing(PeerConfig::new(PeerId::new([2; 20])), Instant::now(), torrent, None, Default::default())?;
/// let mut buf = [0u8; 65536];
/// loop {
///     while let Some(out) = conn.poll_transmit() { sock.write_all(&out)?; }
///     while let Some(event) = conn.poll_event() {
///         if let PeerEvent::Connected { peer_id, .. } = event { println!("connected to {peer_id:?}"); }
///     }
///     if let Some(deadline) = conn.poll_timeout() {
///         let wait = deadline.saturating_duration_since(Instant::now()).max(std::time::Duration::from_millis(1));
///         sock.set_read_timeout(Some(wait))?;
///     }
///     match sock.read(&mut buf) {
///         Ok(0) => break,
///         Ok(n) => conn.handle_bytes(Instant::now(), &buf[..n])?,
///         Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => {
///             conn.handle_timeout(Instant::now())?
///         }
///         Err(e) => return Err(e.into()),
///     }
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct PeerConnection {
    config: PeerConfig,
    torrent: Option<TorrentParams>,
    phase: Phase,
    hs_decoder: HandshakeDecoder,
    decoder: MessageDecoder,
    cipher: Option<Rc4Stream>,
    rx: BytesMut,
    tx: VecDeque<Bytes>,
    tx_small: BytesMut,
    events: VecDeque<PeerEvent>,

    peer_reserved: Reserved,
    peer_info_hash: Option<Sha1Hash>,
    peer_id: Option<PeerId>,
    ext_ids: ExtensionIds,
    peer_reqq: Option<u32>,
    /// The `metadata_size` of the peer's latest extended handshake that had one.
    peer_metadata_size: Option<u32>,

    am_choking: bool,
    am_interested: bool,
    peer_choking: bool,
    peer_interested: bool,
    peer_pieces: Option<Bitfield>,
    got_bitfield: bool,
    got_have: bool,

    out_requests: VecDeque<(BlockRequest, Instant)>,
    in_requests: InRequests,
    allowed_fast_in: Vec<PieceIndex>,
    allowed_fast_out: Vec<PieceIndex>,
    suggested: Vec<PieceIndex>,
    pex_limiter: PexRateLimiter,
    snubbed: bool,

    created: Instant,
    last_recv: Instant,
    last_send: Instant,
    stats: PeerStats,
}

impl PeerConnection {
    /// A connection we made to a peer for `torrent`. Our handshake is queued at once.
    /// `cipher` and `received` come from an MSE handshake ([`crate::mse::MseOutcome`]);
    /// pass `None` and an empty buffer for plaintext.
    ///
    /// # Errors
    /// Any protocol error in `received`.
    pub fn outgoing(
        config: PeerConfig,
        now: Instant,
        torrent: TorrentParams,
        cipher: Option<Rc4Stream>,
        received: BytesMut,
    ) -> Result<Self, Error> {
        let mut c = Self::new(config, now, cipher);
        c.torrent = Some(torrent);
        let hs = Handshake::for_torrent(&torrent.info_hash, c.config.reserved, c.config.peer_id);
        c.queue_raw(&hs.to_bytes());
        c.rx_push(received);
        c.process(now)?;
        Ok(c)
    }

    /// A connection a peer made to us. It reports [`PeerEvent::IncomingHandshake`] once the
    /// peer names the torrent; then call [`accept`](Self::accept).
    ///
    /// # Errors
    /// Any protocol error in `received`.
    pub fn incoming(
        config: PeerConfig,
        now: Instant,
        cipher: Option<Rc4Stream>,
        received: BytesMut,
    ) -> Result<Self, Error> {
        let mut c = Self::new(config, now, cipher);
        c.rx_push(received);
        c.process(now)?;
        Ok(c)
    }

    fn new(config: PeerConfig, now: Instant, cipher: Option<Rc4Stream>) -> Self {
        Self {
            decoder: MessageDecoder::new(config.limits.max_message_len),
            ext_ids: config.extensions,
            config,
            torrent: None,
            phase: Phase::Handshake,
            hs_decoder: HandshakeDecoder::new(),
            cipher,
            rx: BytesMut::new(),
            tx: VecDeque::new(),
            tx_small: BytesMut::new(),
            events: VecDeque::new(),
            peer_reserved: Reserved::default(),
            peer_info_hash: None,
            peer_id: None,
            peer_reqq: None,
            peer_metadata_size: None,
            am_choking: true,
            am_interested: false,
            peer_choking: true,
            peer_interested: false,
            peer_pieces: None,
            got_bitfield: false,
            got_have: false,
            out_requests: VecDeque::new(),
            in_requests: InRequests::default(),
            allowed_fast_in: Vec::new(),
            allowed_fast_out: Vec::new(),
            suggested: Vec::new(),
            pex_limiter: PexRateLimiter::default(),
            snubbed: false,
            created: now,
            last_recv: now,
            last_send: now,
            stats: PeerStats::default(),
        }
    }

    /// (Incoming.) Accepts the connection for `torrent` after
    /// [`PeerEvent::IncomingHandshake`]: our handshake is queued, answering with the
    /// info-hash the peer used.
    ///
    /// # Errors
    /// [`Error::InfoHashMismatch`] if `torrent` is not the one the peer named,
    /// [`Error::ApiMisuse`] if not waiting for it, and protocol errors in buffered bytes.
    pub fn accept(&mut self, now: Instant, torrent: TorrentParams) -> Result<(), Error> {
        if !matches!(self.phase, Phase::AwaitAccept) {
            return Err(Error::ApiMisuse("accept without IncomingHandshake"));
        }
        let wire = self.peer_info_hash.unwrap_or(Sha1Hash::ZERO);
        if !torrent.info_hash.matches(&wire) {
            return Err(Error::InfoHashMismatch);
        }
        self.torrent = Some(torrent);
        let mut reserved = self.config.reserved;
        if torrent.info_hash.is_hybrid() {
            reserved = reserved.with_v2_upgrade(true);
        }
        let hs = Handshake {
            reserved,
            info_hash: wire,
            peer_id: self.config.peer_id,
        };
        self.queue_raw(&hs.to_bytes());
        self.phase = Phase::PeerId;
        self.process(now)
    }

    // ---- input ----

    /// Takes bytes received from the socket.
    ///
    /// # Errors
    /// Any protocol violation: close the connection.
    pub fn handle_bytes(&mut self, now: Instant, data: &[u8]) -> Result<(), Error> {
        if data.is_empty() {
            return Ok(());
        }
        self.last_recv = now;
        if matches!(self.phase, Phase::AwaitAccept) {
            // Nothing is parsed until the caller accepts: bound what waits.
            let max = usize::try_from(self.config.limits.max_message_len)
                .unwrap_or(usize::MAX)
                .saturating_add(crate::HANDSHAKE_LEN);
            let len = self.rx.len().saturating_add(data.len());
            if len > max {
                return Err(Error::ReceiveBufferFull { len, max });
            }
        }
        let start = self.rx.len();
        self.rx.extend_from_slice(data);
        if let Some(c) = &mut self.cipher {
            c.decrypt(&mut self.rx[start..]);
        }
        self.process(now)
    }

    /// Takes a buffer received from the socket, without copying it when nothing is
    /// buffered (the usual case): PIECE payloads then point into the caller's buffer.
    ///
    /// # Errors
    /// As [`handle_bytes`](Self::handle_bytes).
    pub fn handle_buf(&mut self, now: Instant, mut data: BytesMut) -> Result<(), Error> {
        if data.is_empty() {
            return Ok(());
        }
        if !self.rx.is_empty() || matches!(self.phase, Phase::AwaitAccept) {
            return self.handle_bytes(now, &data);
        }
        self.last_recv = now;
        if let Some(c) = &mut self.cipher {
            c.decrypt(&mut data);
        }
        self.rx = data;
        self.process(now)
    }

    /// Runs the timers: handshake and inactivity timeouts, request timeouts (with
    /// snubbing) and keep-alives.
    ///
    /// # Errors
    /// [`Error::Timeout`] when the connection is dead.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), Error> {
        if !matches!(self.phase, Phase::Messages)
            && now.saturating_duration_since(self.created) >= self.config.handshake_timeout
        {
            return Err(Error::Timeout(TimeoutKind::Handshake));
        }
        if now.saturating_duration_since(self.last_recv) >= self.config.inactivity_timeout {
            return Err(Error::Timeout(TimeoutKind::Inactivity));
        }
        while let Some(&(req, sent)) = self.out_requests.front() {
            if now.saturating_duration_since(sent) < self.config.request_timeout {
                break;
            }
            self.out_requests.pop_front();
            self.events.push_back(PeerEvent::RequestTimedOut(req));
            if !self.snubbed {
                self.snubbed = true;
                self.events.push_back(PeerEvent::Snubbed);
            }
        }
        if matches!(self.phase, Phase::Messages)
            && now.saturating_duration_since(self.last_send) >= self.config.keepalive_interval
        {
            self.send(&Message::KeepAlive, now);
        }
        Ok(())
    }

    // ---- output ----

    /// The next buffer to write to the socket (already encrypted when RC4 is on).
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        if let Some(b) = self.tx.pop_front() {
            return Some(b);
        }
        (!self.tx_small.is_empty()).then(|| self.tx_small.split().freeze())
    }

    /// The next event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<PeerEvent> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) should run next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t = self.last_recv + self.config.inactivity_timeout;
        if matches!(self.phase, Phase::Messages) {
            t = t.min(self.last_send + self.config.keepalive_interval);
        } else {
            t = t.min(self.created + self.config.handshake_timeout);
        }
        if let Some(&(_, sent)) = self.out_requests.front() {
            t = t.min(sent + self.config.request_timeout);
        }
        Some(t)
    }

    // ---- state ----

    /// Whether both handshakes are done.
    #[must_use]
    pub fn is_connected(&self) -> bool {
        matches!(self.phase, Phase::Messages)
    }
    /// The peer's id, once known.
    #[must_use]
    pub fn peer_id(&self) -> Option<PeerId> {
        self.peer_id
    }
    /// The peer's reserved bits.
    #[must_use]
    pub fn peer_reserved(&self) -> Reserved {
        self.peer_reserved
    }
    /// Whether both sides support the fast extension.
    #[must_use]
    pub fn fast(&self) -> bool {
        self.config.reserved.fast() && self.peer_reserved.fast()
    }
    /// Whether both sides support the extension protocol.
    #[must_use]
    pub fn extensions(&self) -> bool {
        self.config.reserved.extensions() && self.peer_reserved.extensions()
    }
    /// The extension ids in both directions.
    #[must_use]
    pub fn extension_ids(&self) -> &ExtensionIds {
        &self.ext_ids
    }
    /// Whether we choke the peer.
    #[must_use]
    pub fn am_choking(&self) -> bool {
        self.am_choking
    }
    /// Whether we are interested in the peer.
    #[must_use]
    pub fn am_interested(&self) -> bool {
        self.am_interested
    }
    /// Whether the peer chokes us.
    #[must_use]
    pub fn peer_choking(&self) -> bool {
        self.peer_choking
    }
    /// Whether the peer is interested in us.
    #[must_use]
    pub fn peer_interested(&self) -> bool {
        self.peer_interested
    }
    /// The peer's pieces, when the layout is known.
    #[must_use]
    pub fn peer_pieces(&self) -> Option<&Bitfield> {
        self.peer_pieces.as_ref()
    }
    /// Our requests in flight, oldest first.
    pub fn outstanding_requests(&self) -> impl Iterator<Item = &BlockRequest> {
        self.out_requests.iter().map(|(r, _)| r)
    }
    /// The peer's requests waiting for an answer.
    pub fn pending_peer_requests(&self) -> impl Iterator<Item = &BlockRequest> {
        self.in_requests.iter()
    }
    /// How many more requests we may send now.
    #[must_use]
    pub fn request_capacity(&self) -> usize {
        let reqq = self.peer_reqq.map_or(usize::MAX, |q| {
            usize::try_from(q).unwrap_or(usize::MAX).max(1)
        });
        self.config
            .max_out_requests
            .min(reqq)
            .saturating_sub(self.out_requests.len())
    }
    /// Pieces the peer allows us to request while choked.
    #[must_use]
    pub fn allowed_fast(&self) -> &[PieceIndex] {
        &self.allowed_fast_in
    }
    /// Pieces the peer suggested.
    #[must_use]
    pub fn suggested(&self) -> &[PieceIndex] {
        &self.suggested
    }
    /// Whether a request timed out since the last block arrived.
    #[must_use]
    pub fn is_snubbed(&self) -> bool {
        self.snubbed
    }
    /// Message and byte counters.
    #[must_use]
    pub fn stats(&self) -> &PeerStats {
        &self.stats
    }

    /// Sets the layout once the metadata is known (magnet downloads). A bitfield received
    /// before stays with the caller ([`PeerEvent::RawBitfield`]).
    pub fn set_layout(&mut self, layout: PieceLayout) {
        if let Some(t) = &mut self.torrent {
            t.layout = Some(layout);
        }
        let n = usize::try_from(layout.num_pieces).unwrap_or(0);
        if self.peer_pieces.is_none() {
            self.peer_pieces = Some(Bitfield::new(n));
        }
    }

    // ---- commands ----

    /// Sends our pieces: HAVE ALL or HAVE NONE when the fast extension allows and fits,
    /// otherwise BITFIELD. Call once, right after [`PeerEvent::Connected`].
    ///
    /// An empty `have` (the piece count is not known yet, as for a magnet link) sends HAVE
    /// NONE with the fast extension and nothing without it.
    pub fn send_bitfield(&mut self, now: Instant, have: &Bitfield) {
        if have.is_empty() && !self.fast() {
            return;
        }
        let msg = if self.fast() && have.all() && !have.is_empty() {
            Message::HaveAll
        } else if self.fast() && have.none() {
            Message::HaveNone
        } else {
            Message::Bitfield(Bytes::copy_from_slice(have.as_bytes()))
        };
        self.send(&msg, now);
    }

    /// Sends HAVE.
    pub fn have(&mut self, now: Instant, piece: PieceIndex) {
        self.send(&Message::Have(piece), now);
    }

    /// Chokes the peer: its queued requests are dropped (BEP 3) or, with the fast
    /// extension, rejected except for allowed-fast pieces (BEP 6).
    pub fn choke(&mut self, now: Instant) {
        if self.am_choking {
            return;
        }
        self.am_choking = true;
        self.send(&Message::Choke, now);
        let pending = std::mem::take(&mut self.in_requests);
        for r in pending {
            if self.fast() && self.allowed_fast_out.contains(&r.piece) {
                self.in_requests.push_back(r);
            } else if self.fast() {
                self.send(&Message::Reject(r), now);
            }
        }
    }

    /// Unchokes the peer.
    pub fn unchoke(&mut self, now: Instant) {
        if self.am_choking {
            self.am_choking = false;
            self.send(&Message::Unchoke, now);
        }
    }

    /// Tells the peer whether we are interested.
    pub fn set_interested(&mut self, now: Instant, interested: bool) {
        if self.am_interested != interested {
            self.am_interested = interested;
            let m = if interested {
                Message::Interested
            } else {
                Message::NotInterested
            };
            self.send(&m, now);
        }
    }

    /// Requests a block.
    ///
    /// # Errors
    /// [`Error::ApiMisuse`] when the peer chokes us (and the piece is not allowed fast),
    /// the queue is full ([`request_capacity`](Self::request_capacity) is 0), the block is
    /// already requested or out of range.
    pub fn request(&mut self, now: Instant, req: BlockRequest) -> Result<(), Error> {
        if !self.is_connected() {
            return Err(Error::ApiMisuse("request before the handshake"));
        }
        if self.peer_choking && !self.allowed_fast_in.contains(&req.piece) {
            return Err(Error::ApiMisuse("request while choked"));
        }
        if self.request_capacity() == 0 {
            return Err(Error::ApiMisuse("request queue full"));
        }
        if let Some(layout) = self.layout() {
            layout
                .check_block(&req, self.config.limits.max_request_len)
                .map_err(|_| Error::ApiMisuse("request out of range"))?;
        }
        if self.out_requests.iter().any(|(r, _)| *r == req) {
            return Err(Error::ApiMisuse("block already requested"));
        }
        self.out_requests.push_back((req, now));
        self.send(&Message::Request(req), now);
        Ok(())
    }

    /// Cancels a request of ours. Returns whether it was outstanding. (With the fast
    /// extension the peer still answers with the block or a reject; both are then ignored.)
    pub fn cancel(&mut self, now: Instant, req: BlockRequest) -> bool {
        let Some(pos) = self.out_requests.iter().position(|(r, _)| *r == req) else {
            return false;
        };
        self.out_requests.remove(pos);
        self.send(&Message::Cancel(req), now);
        true
    }

    /// Sends a block the peer requested; returns `false` (sending nothing) when the request
    /// is no longer pending (cancelled, or dropped by a choke).
    ///
    /// In plaintext the block is queued as its own buffer after a 13-byte header, never
    /// copied; with RC4 it must be copied to be encrypted.
    pub fn send_block(&mut self, now: Instant, piece: PieceIndex, begin: u32, data: Bytes) -> bool {
        let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        let req = BlockRequest::new(piece, begin, len);
        if !self.in_requests.remove(&req) {
            return false;
        }
        let header = piece_header(piece, begin, len);
        self.stats.sent.count(Some(id::PIECE), 13 + data.len());
        self.stats.sent.payload_bytes =
            self.stats.sent.payload_bytes.saturating_add(u64::from(len));
        self.last_send = now;
        match &mut self.cipher {
            None => {
                self.tx_small.extend_from_slice(&header);
                let head = self.tx_small.split().freeze();
                self.tx.push_back(head);
                self.tx.push_back(data);
            }
            Some(c) => {
                let start = self.tx_small.len();
                self.tx_small.extend_from_slice(&header);
                self.tx_small.extend_from_slice(&data);
                c.encrypt(&mut self.tx_small[start..]);
                let buf = self.tx_small.split().freeze();
                self.tx.push_back(buf);
            }
        }
        true
    }

    /// Rejects a pending request of the peer (BEP 6; without the fast extension the request
    /// is just dropped). Returns whether it was pending.
    pub fn reject(&mut self, now: Instant, req: BlockRequest) -> bool {
        if !self.in_requests.remove(&req) {
            return false;
        }
        if self.fast() {
            self.send(&Message::Reject(req), now);
        }
        true
    }

    /// Lets the peer request `piece` while choked (BEP 6; see [`crate::allowed_fast_set`]).
    pub fn allow_fast(&mut self, now: Instant, piece: PieceIndex) {
        if self.fast()
            && !self.allowed_fast_out.contains(&piece)
            && self.allowed_fast_out.len() < self.config.max_fast_set
        {
            self.allowed_fast_out.push(piece);
            self.send(&Message::AllowedFast(piece), now);
        }
    }

    /// Suggests a piece (BEP 6). Ignored without the fast extension.
    pub fn suggest(&mut self, now: Instant, piece: PieceIndex) {
        if self.fast() {
            self.send(&Message::Suggest(piece), now);
        }
    }

    /// Sends an extension message with the peer's id for it.
    ///
    /// # Errors
    /// [`Error::ApiMisuse`] when the peer does not support the extension.
    pub fn send_extension(&mut self, now: Instant, msg: &ExtensionMessage) -> Result<(), Error> {
        if !self.extensions() {
            return Err(Error::ApiMisuse("peer does not support extensions"));
        }
        let m = msg
            .to_message(&self.ext_ids)
            .ok_or(Error::ApiMisuse("peer does not support this extension"))?;
        self.send(&m, now);
        Ok(())
    }

    /// Sends any message as is (PORT, the BEP 52 hash messages, ...). State-changing
    /// messages should go through their own commands so the state stays right.
    pub fn send_message(&mut self, now: Instant, msg: &Message) {
        self.send(msg, now);
    }

    // ---- internals ----

    fn layout(&self) -> Option<PieceLayout> {
        self.torrent.and_then(|t| t.layout)
    }

    fn rx_push(&mut self, received: BytesMut) {
        // MSE hands these over already decrypted.
        self.rx.unsplit(received);
    }

    fn queue_raw(&mut self, bytes: &[u8]) {
        let start = self.tx_small.len();
        self.tx_small.extend_from_slice(bytes);
        if let Some(c) = &mut self.cipher {
            c.encrypt(&mut self.tx_small[start..]);
        }
    }

    fn send(&mut self, msg: &Message, now: Instant) {
        let start = self.tx_small.len();
        msg.encode(&mut self.tx_small);
        if let Some(c) = &mut self.cipher {
            c.encrypt(&mut self.tx_small[start..]);
        }
        self.stats.sent.count(msg.id(), self.tx_small.len() - start);
        self.last_send = now;
    }

    fn process(&mut self, now: Instant) -> Result<(), Error> {
        loop {
            match self.phase {
                Phase::Handshake | Phase::PeerId => {
                    let Some(frame) = self.hs_decoder.decode(&mut self.rx)? else {
                        return Ok(());
                    };
                    self.on_handshake_frame(now, frame)?;
                }
                Phase::AwaitAccept => return Ok(()),
                Phase::Messages => {
                    let Some(msg) = self.decoder.decode(&mut self.rx)? else {
                        return Ok(());
                    };
                    self.stats.received.count(msg.id(), msg.encoded_len());
                    self.on_message(now, msg)?;
                }
            }
        }
    }

    fn on_handshake_frame(&mut self, now: Instant, frame: HandshakeFrame) -> Result<(), Error> {
        match frame {
            HandshakeFrame::Head {
                reserved,
                info_hash,
            } => {
                self.peer_reserved = reserved;
                self.peer_info_hash = Some(info_hash);
                match &self.torrent {
                    // Outgoing: it must be the torrent we asked for.
                    Some(t) => {
                        if !t.info_hash.matches(&info_hash) {
                            return Err(Error::InfoHashMismatch);
                        }
                        self.phase = Phase::PeerId;
                    }
                    None => {
                        self.phase = Phase::AwaitAccept;
                        self.events.push_back(PeerEvent::IncomingHandshake {
                            info_hash,
                            reserved,
                        });
                    }
                }
            }
            HandshakeFrame::PeerId(peer_id) => {
                if peer_id == self.config.peer_id {
                    return Err(Error::SelfConnection);
                }
                self.peer_id = Some(peer_id);
                self.phase = Phase::Messages;
                if let Some(layout) = self.layout() {
                    let n = usize::try_from(layout.num_pieces).unwrap_or(0);
                    self.peer_pieces = Some(Bitfield::new(n));
                }
                self.events.push_back(PeerEvent::Connected {
                    peer_id,
                    reserved: self.peer_reserved,
                });
                if self.extensions() {
                    self.send_extended_handshake(now);
                }
            }
        }
        Ok(())
    }

    fn send_extended_handshake(&mut self, now: Instant) {
        let mut hs = self.config.ext_handshake.clone();
        hs.m = self.config.extensions.local_map();
        hs.reqq = u32::try_from(self.config.max_in_requests).ok();
        if let Some(size) = self.torrent.and_then(|t| t.metadata_size) {
            hs.metadata_size = Some(size);
        }
        let msg = Message::Extended {
            id: 0,
            payload: hs.to_bytes().into(),
        };
        self.send(&msg, now);
    }

    fn check_piece(&self, piece: PieceIndex) -> Result<(), Error> {
        match self.layout() {
            Some(l) if piece.get() >= l.num_pieces => Err(Error::BadPieceIndex(piece.get())),
            _ => Ok(()),
        }
    }

    fn require_fast(&self, msg_id: u8) -> Result<(), Error> {
        if self.fast() {
            Ok(())
        } else {
            Err(Error::FastNotNegotiated(msg_id))
        }
    }

    /// BEP 3 sends a bitfield only first, and BEP 6's HAVE ALL / HAVE NONE replace it; a
    /// later or second one replaces what we knew of the peer's pieces, as libtorrent takes
    /// it. aria2 sends its bitfield twice (a HAVE NONE or a BITFIELD, then a BITFIELD).
    fn on_bitfield_class(&mut self) {
        if self.got_bitfield || self.got_have {
            tracing::trace!("a later bitfield replaces the peer's pieces");
        }
        self.got_bitfield = true;
    }

    fn on_message(&mut self, now: Instant, msg: Message) -> Result<(), Error> {
        match msg {
            Message::KeepAlive => {}
            Message::Choke => {
                if !self.peer_choking {
                    self.peer_choking = true;
                    if !self.fast() {
                        // BEP 3: a choke drops every request.
                        for (r, _) in std::mem::take(&mut self.out_requests) {
                            self.events.push_back(PeerEvent::Rejected(r));
                        }
                    }
                    self.events.push_back(PeerEvent::Choked);
                }
            }
            Message::Unchoke => {
                if self.peer_choking {
                    self.peer_choking = false;
                    self.events.push_back(PeerEvent::Unchoked);
                }
            }
            Message::Interested => {
                if !self.peer_interested {
                    self.peer_interested = true;
                    self.events.push_back(PeerEvent::Interested);
                }
            }
            Message::NotInterested => {
                if self.peer_interested {
                    self.peer_interested = false;
                    self.events.push_back(PeerEvent::NotInterested);
                }
            }
            Message::Have(p) => {
                self.check_piece(p)?;
                self.got_have = true;
                if let Some(bf) = &mut self.peer_pieces {
                    if bf.get(p.as_usize()) {
                        return Ok(());
                    }
                    bf.set(p.as_usize());
                }
                self.events.push_back(PeerEvent::Have(p));
            }
            Message::Bitfield(bytes) => {
                self.on_bitfield_class();
                match self.layout() {
                    Some(l) => {
                        let n = usize::try_from(l.num_pieces).unwrap_or(0);
                        let bf = Bitfield::from_bytes(&bytes, n)?;
                        self.peer_pieces = Some(bf.clone());
                        self.events.push_back(PeerEvent::Bitfield(bf));
                    }
                    None => self.events.push_back(PeerEvent::RawBitfield(bytes)),
                }
            }
            Message::HaveAll | Message::HaveNone => {
                let all = matches!(msg, Message::HaveAll);
                self.require_fast(if all { id::HAVE_ALL } else { id::HAVE_NONE })?;
                self.on_bitfield_class();
                match self.layout() {
                    Some(l) => {
                        let n = usize::try_from(l.num_pieces).unwrap_or(0);
                        let bf = if all {
                            Bitfield::full(n)
                        } else {
                            Bitfield::new(n)
                        };
                        self.peer_pieces = Some(bf.clone());
                        self.events.push_back(PeerEvent::Bitfield(bf));
                    }
                    None if all => self.events.push_back(PeerEvent::HaveAll),
                    None => self.events.push_back(PeerEvent::HaveNone),
                }
            }
            Message::Request(r) => self.on_request(now, r)?,
            Message::Cancel(r) => {
                if let Some(l) = self.layout() {
                    l.check_block(&r, self.config.limits.max_request_len)?;
                }
                if self.in_requests.remove(&r) {
                    // BEP 6: a cancelled request is answered with a reject.
                    if self.fast() {
                        self.send(&Message::Reject(r), now);
                    }
                    self.events.push_back(PeerEvent::Cancel(r));
                }
            }
            Message::Piece { piece, begin, data } => {
                let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
                let req = BlockRequest::new(piece, begin, len);
                if let Some(l) = self.layout() {
                    l.check_block(&req, self.config.limits.max_message_len)?;
                }
                self.stats.received.payload_bytes = self
                    .stats
                    .received
                    .payload_bytes
                    .saturating_add(u64::from(len));
                match self.out_requests.iter().position(|(r, _)| *r == req) {
                    Some(pos) => {
                        self.out_requests.remove(pos);
                        if self.snubbed {
                            self.snubbed = false;
                            self.events.push_back(PeerEvent::Unsnubbed);
                        }
                        self.events
                            .push_back(PeerEvent::Block { request: req, data });
                    }
                    None => {
                        tracing::trace!(piece = piece.get(), begin, len, "unrequested block");
                        self.stats.wasted_bytes =
                            self.stats.wasted_bytes.saturating_add(u64::from(len));
                    }
                }
            }
            Message::Port(p) => self.events.push_back(PeerEvent::Port(p)),
            Message::Suggest(p) => {
                self.require_fast(id::SUGGEST)?;
                self.check_piece(p)?;
                if !self.suggested.contains(&p) && self.suggested.len() < self.config.max_fast_set {
                    self.suggested.push(p);
                    self.events.push_back(PeerEvent::Suggest(p));
                }
            }
            Message::AllowedFast(p) => {
                self.require_fast(id::ALLOWED_FAST)?;
                self.check_piece(p)?;
                if !self.allowed_fast_in.contains(&p)
                    && self.allowed_fast_in.len() < self.config.max_fast_set
                {
                    self.allowed_fast_in.push(p);
                    self.events.push_back(PeerEvent::AllowedFast(p));
                }
            }
            Message::Reject(r) => {
                self.require_fast(id::REJECT)?;
                if let Some(pos) = self.out_requests.iter().position(|(x, _)| *x == r) {
                    self.out_requests.remove(pos);
                    self.events.push_back(PeerEvent::Rejected(r));
                }
            }
            Message::Extended {
                id: ext_id,
                payload,
            } => {
                if !self.extensions() {
                    return Err(Error::ExtensionsNotNegotiated);
                }
                self.on_extended(now, ext_id, &payload)?;
            }
            Message::HashRequest(r) => {
                check_hash_request(&r)?;
                self.events.push_back(PeerEvent::HashRequest(r));
            }
            Message::Hashes { request, hashes } => {
                check_hash_request(&request)?;
                self.events.push_back(PeerEvent::Hashes { request, hashes });
            }
            Message::HashReject(r) => {
                check_hash_request(&r)?;
                self.events.push_back(PeerEvent::HashReject(r));
            }
            Message::Unknown { id, .. } => return Err(Error::UnknownMessage(id)),
        }
        Ok(())
    }

    fn on_request(&mut self, now: Instant, r: BlockRequest) -> Result<(), Error> {
        if r.len > self.config.limits.max_request_len {
            return Err(Error::RequestTooLong {
                len: r.len,
                max: self.config.limits.max_request_len,
            });
        }
        if let Some(l) = self.layout() {
            l.check_block(&r, self.config.limits.max_request_len)?;
        }
        if self.in_requests.contains(&r) {
            // A duplicate (the peer timed its request out and asked again): the pending
            // one is answered. Rejecting it would reject the peer's only copy.
            tracing::trace!(piece = r.piece.get(), "duplicate request");
            return Ok(());
        }
        let allowed = !self.am_choking || self.allowed_fast_out.contains(&r.piece);
        let full = self.in_requests.len() >= self.config.max_in_requests;
        if !allowed || full {
            tracing::trace!(piece = r.piece.get(), allowed, full, "refusing request");
            // BEP 6: refused requests are rejected; BEP 3: silently dropped.
            if self.fast() {
                self.send(&Message::Reject(r), now);
            }
            return Ok(());
        }
        self.in_requests.push_back(r);
        self.events.push_back(PeerEvent::Request(r));
        Ok(())
    }

    fn on_extended(&mut self, now: Instant, ext_id: u8, payload: &Bytes) -> Result<(), Error> {
        let Some(msg) =
            ExtensionMessage::decode(&self.ext_ids, ext_id, payload, &self.config.limits)?
        else {
            return Ok(());
        };
        match msg {
            ExtensionMessage::Handshake(hs) => {
                self.ext_ids.update_remote(&hs);
                if hs.reqq.is_some() {
                    self.peer_reqq = hs.reqq;
                }
                if hs.metadata_size.is_some() {
                    self.peer_metadata_size = hs.metadata_size;
                }
                self.events
                    .push_back(PeerEvent::ExtendedHandshake(Box::new(hs)));
            }
            ExtensionMessage::Metadata(MetadataMessage::Data { total_size, .. })
                if self.peer_metadata_size.is_some_and(|s| s != total_size) =>
            {
                // BEP 9: `total_size` is the size of the metadata, which the peer announced
                // as `metadata_size`; a peer that contradicts itself lies about one of them
                // (issue 18: such pieces were dropped and asked for again, for ever).
                return Err(Error::BadMetadataMessage(
                    "total_size differs from the announced metadata_size",
                ));
            }
            ExtensionMessage::Pex(p) => {
                self.pex_limiter.check(now)?;
                self.events
                    .push_back(PeerEvent::Extension(ExtensionMessage::Pex(p)));
            }
            ExtensionMessage::DontHave(p) => {
                self.check_piece(p)?;
                if let Some(bf) = &mut self.peer_pieces {
                    bf.clear(p.as_usize());
                }
                self.events.push_back(PeerEvent::DontHave(p));
            }
            other => self.events.push_back(PeerEvent::Extension(other)),
        }
        Ok(())
    }
}

/// BEP 52: `length` is a nonzero power of two and `index` a multiple of it. At most 8192
/// hashes (256 KiB) per request, so an answer fits the message-length limit.
fn check_hash_request(r: &HashRequest) -> Result<(), Error> {
    if !r.length.is_power_of_two() {
        return Err(Error::BadHashMessage("length not a power of two"));
    }
    if !r.index.is_multiple_of(r.length) {
        return Err(Error::BadHashMessage("index not a multiple of length"));
    }
    if r.length > 8192 {
        return Err(Error::BadHashMessage("more than 8192 hashes"));
    }
    Ok(())
}

/// The peer's requests we have not answered, in the order they came, with a set beside
/// them: a request is looked up (a duplicate, a block to send, a cancel) in constant time,
/// where a scan of a few hundred took 6.6 % of a seeder's CPU.
#[derive(Debug, Default)]
struct InRequests {
    order: VecDeque<BlockRequest>,
    set: HashSet<BlockRequest>,
}

impl InRequests {
    fn len(&self) -> usize {
        self.order.len()
    }

    fn contains(&self, r: &BlockRequest) -> bool {
        self.set.contains(r)
    }

    fn iter(&self) -> impl Iterator<Item = &BlockRequest> {
        self.order.iter()
    }

    fn push_back(&mut self, r: BlockRequest) {
        if self.set.insert(r) {
            self.order.push_back(r);
        }
    }

    /// Removes `r`; whether it was there. Requests are answered in about the order they
    /// came, so the scan of `order` stops near its front.
    fn remove(&mut self, r: &BlockRequest) -> bool {
        if !self.set.remove(r) {
            return false;
        }
        if let Some(pos) = self.order.iter().position(|x| x == r) {
            self.order.remove(pos);
        }
        true
    }
}

impl IntoIterator for InRequests {
    type Item = BlockRequest;
    type IntoIter = std::collections::vec_deque::IntoIter<BlockRequest>;

    fn into_iter(self) -> Self::IntoIter {
        self.order.into_iter()
    }
}
