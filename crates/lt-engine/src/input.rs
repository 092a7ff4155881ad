//! The engine's one way in: every event from the driver as plain data.
//!
//! The driver turns what happens on its sockets, disk threads, HTTP client and timers into
//! [`Input`]s and hands each to [`Engine::handle_input`](crate::Engine::handle_input). User
//! commands (add a torrent, pause, set a priority) are the engine's command methods. Since
//! inputs are values, a run can be recorded and replayed, and a fuzz target can feed the
//! engine arbitrary sequences of them.

use std::net::SocketAddr;

use bytes::BytesMut;
use lt_core::Sha1Hash;
use lt_tracker::{AnnounceResponse, ScrapeEntry, TrackerIndex};
use lt_wire::mse::Rc4Stream;

use crate::{ConnId, DiskDone, IoError, TorrentId};

/// The transport a peer connection runs over.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum Transport {
    /// TCP.
    #[default]
    Tcp,
    /// uTP (BEP 29).
    Utp,
}

/// What the connection's encryption handshake (MSE/PE) left for the peer protocol.
#[derive(Debug, Default)]
pub struct Handshake {
    /// The RC4 streams when RC4 was chosen; `None` in plaintext.
    pub cipher: Option<Rc4Stream>,
    /// Bytes received past the handshake (the start of the BitTorrent handshake).
    pub received: BytesMut,
    /// Whether MSE ran (even if it settled on plaintext).
    pub encrypted: bool,
    /// The connection runs TLS for the SSL torrent with this v1 (or truncated v2)
    /// info-hash: the one an incoming connection named in its SNI, or the one we dialled
    /// for. `None` on a plaintext or MSE connection. The engine accepts an SSL torrent's
    /// peers only with its own hash here, and no TLS connection for another torrent.
    pub ssl: Option<Sha1Hash>,
}

/// One event from the driver.
#[derive(Debug)]
#[non_exhaustive]
pub enum Input {
    /// The timer the engine asked for ([`Engine::poll_timeout`](crate::Engine::poll_timeout))
    /// fired; an early or late one is harmless.
    Timeout,
    /// A connection we asked for ([`Action::Connect`](crate::Action::Connect)) is open and
    /// its encryption handshake, if any, done.
    Connected {
        /// The engine's id for it.
        conn: ConnId,
        /// TCP or uTP.
        transport: Transport,
        /// What MSE left.
        handshake: Handshake,
    },
    /// A connection we asked for could not be made.
    ConnectFailed {
        /// The engine's id for it.
        conn: ConnId,
        /// Why.
        error: IoError,
    },
    /// A connection we asked for was made, but its encryption handshake failed (the peer
    /// closed it, or answered with something that is not MSE): a peer that does not speak
    /// MSE is dialled again in plaintext at once, when the policy allows it.
    HandshakeFailed {
        /// The engine's id for it.
        conn: ConnId,
        /// Why.
        error: IoError,
    },
    /// A peer connected to us. [`Engine::handle_input`](crate::Engine::handle_input) returns
    /// the id it gets, or `None` when it is refused (full, banned, blocked).
    Incoming {
        /// Its address.
        addr: SocketAddr,
        /// TCP or uTP.
        transport: Transport,
        /// What MSE left.
        handshake: Handshake,
    },
    /// Bytes arrived on a connection.
    Received {
        /// The connection.
        conn: ConnId,
        /// The bytes (taken without a copy when nothing is buffered).
        data: BytesMut,
    },
    /// The connection closed: `None` for a clean end of stream, else the socket's error.
    Closed {
        /// The connection.
        conn: ConnId,
        /// The error, if it failed.
        error: Option<IoError>,
    },
    /// The driver wrote `written` bytes of a connection's [`Action::Send`](crate::Action::Send)s
    /// to its socket (back-pressure: the engine serves a peer's requests only while the
    /// bytes it sent and the driver has not written stay below the send buffer watermark).
    Drained {
        /// The connection.
        conn: ConnId,
        /// Bytes written since the last report.
        written: usize,
    },
    /// A disk job finished.
    Disk(DiskDone),
    /// Bytes of a web request ([`Action::WebRequest`](crate::Action::WebRequest)), in
    /// order.
    WebData {
        /// The web seed.
        seed: ConnId,
        /// The request.
        request: u64,
        /// The next bytes.
        data: bytes::Bytes,
    },
    /// A web request ended: `Ok` once every byte was handed in, else why it failed.
    WebDone {
        /// The web seed.
        seed: ConnId,
        /// The request.
        request: u64,
        /// How it ended.
        result: Result<(), crate::web::WebError>,
    },
    /// A tracker answered (or failed) an announce.
    Announced {
        /// The torrent.
        torrent: TorrentId,
        /// The tracker.
        tracker: TrackerIndex,
        /// The reply.
        result: Result<AnnounceResponse, lt_tracker::Error>,
    },
    /// A tracker answered (or failed) a scrape.
    Scraped {
        /// The torrent.
        torrent: TorrentId,
        /// The tracker.
        tracker: TrackerIndex,
        /// The counts.
        result: Result<ScrapeEntry, lt_tracker::Error>,
    },
    /// A DHT announce ([`Action::DhtAnnounce`](crate::Action::DhtAnnounce)) finished with
    /// these peers (none when it failed or found nobody).
    DhtPeers {
        /// The torrent.
        torrent: TorrentId,
        /// The peers.
        peers: Vec<SocketAddr>,
    },
    /// A peer announced a torrent by local service discovery (BEP 14).
    LsdPeer {
        /// The info-hash it announced.
        info_hash: Sha1Hash,
        /// Where it listens.
        addr: SocketAddr,
    },
}
