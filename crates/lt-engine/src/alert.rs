//! Alerts: what happened in the session, for the application (the manual's "alerts"
//! chapter). Each alert has a category; the session keeps those the mask lets through in
//! a bounded queue.

use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;
use std::ops::{BitOr, BitOrAssign};

use lt_core::{InfoHash, PieceIndex};
use lt_metainfo::ResumeData;

use crate::{DisconnectReason, DiskError, TorrentId, TorrentState};

/// A set of alert categories (the manual's `alert::category_t`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct AlertCategory(u32);

impl AlertCategory {
    /// Errors: tracker errors, file errors, failed adds.
    pub const ERROR: Self = Self(1);
    /// Peer events: connect, disconnect, ban, snub.
    pub const PEER: Self = Self(1 << 1);
    /// Port mapping (lt-nat).
    pub const PORT_MAPPING: Self = Self(1 << 2);
    /// Storage: moved, renamed, deleted, resume data.
    pub const STORAGE: Self = Self(1 << 3);
    /// Tracker announces, replies and warnings.
    pub const TRACKER: Self = Self(1 << 4);
    /// Debug information.
    pub const DEBUG: Self = Self(1 << 5);
    /// State changes, torrent added/removed/finished/paused.
    pub const STATUS: Self = Self(1 << 6);
    /// Piece progress: piece finished.
    pub const PROGRESS: Self = Self(1 << 7);
    /// Banned peers.
    pub const IP_BLOCK: Self = Self(1 << 8);
    /// Performance warnings.
    pub const PERFORMANCE_WARNING: Self = Self(1 << 9);
    /// DHT.
    pub const DHT: Self = Self(1 << 10);
    /// Periodic transfer statistics.
    pub const STATS: Self = Self(1 << 11);
    /// Every category.
    pub const ALL: Self = Self(u32::MAX);
    /// No category.
    pub const NONE: Self = Self(0);

    /// Whether `self` and `other` share a category.
    #[must_use]
    pub const fn intersects(self, other: Self) -> bool {
        self.0 & other.0 != 0
    }

    /// The default mask: errors, storage, status, tracker errors and warnings (as the
    /// manual's default `error_notification`, plus status and storage).
    #[must_use]
    pub const fn default_mask() -> Self {
        Self(Self::ERROR.0 | Self::STORAGE.0 | Self::STATUS.0 | Self::PERFORMANCE_WARNING.0)
    }
}

impl BitOr for AlertCategory {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

impl BitOrAssign for AlertCategory {
    fn bitor_assign(&mut self, rhs: Self) {
        self.0 |= rhs.0;
    }
}

/// Kinds of performance warnings (the manual's `performance_alert`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PerformanceWarning {
    /// The disk queue is full: downloading waits for the disk.
    TooManyBytesQueuedForDisk,
    /// The connection limit keeps the torrent from reaching its peers.
    TooFewConnectionSlots,
    /// The upload rate limit is too low for the download rate.
    UploadLimitTooLow,
}

/// One thing that happened. `torrent` fields name the torrent by its session id.
#[non_exhaustive]
#[derive(Clone, Debug)]
pub enum Alert {
    /// A torrent was added.
    TorrentAdded {
        /// Its id.
        torrent: TorrentId,
        /// Its name.
        name: String,
        /// Its info-hashes.
        info_hash: InfoHash,
    },
    /// Adding a torrent failed (async add).
    AddTorrentFailed {
        /// Why.
        error: String,
    },
    /// A torrent was removed.
    TorrentRemoved {
        /// Its id (no longer valid).
        torrent: TorrentId,
        /// Its info-hashes.
        info_hash: InfoHash,
    },
    /// A removed torrent's files were deleted.
    TorrentDeleted {
        /// Its info-hashes.
        info_hash: InfoHash,
    },
    /// Deleting a removed torrent's files failed.
    TorrentDeleteFailed {
        /// Its info-hashes.
        info_hash: InfoHash,
        /// The error.
        error: String,
    },
    /// A magnet link's metadata arrived and matched its info-hash.
    MetadataReceived {
        /// The torrent.
        torrent: TorrentId,
    },
    /// The resume data given with a torrent did not fit its files (the manual's
    /// `fastresume_rejected_alert`): its pieces were not trusted and the files were
    /// checked instead. The flags, priorities and limits it holds were still restored.
    FastresumeRejected {
        /// The torrent.
        torrent: TorrentId,
        /// Why.
        error: String,
    },
    /// An SSL torrent (its info dictionary has a root certificate) was added, or a magnet
    /// link's metadata made it one (the manual's `torrent_need_cert_alert`): it connects
    /// to no one, and accepts no one, until it has a certificate signed by that root
    /// (`TorrentHandle::set_ssl_certificate`).
    TorrentNeedCert {
        /// The torrent.
        torrent: TorrentId,
    },
    /// The engine hit a bug (a panic) while handling an input and contained it: the
    /// torrent the input concerned, if any, is paused with this error; the session goes on.
    InternalError {
        /// The torrent paused, when the input concerned one.
        torrent: Option<TorrentId>,
        /// The panic's message.
        message: String,
    },
    /// Metadata from peers did not match the info-hash or did not parse; it is fetched
    /// again.
    MetadataFailed {
        /// The torrent.
        torrent: TorrentId,
        /// Why.
        error: String,
    },
    /// A torrent's state changed.
    StateChanged {
        /// The torrent.
        torrent: TorrentId,
        /// The state before.
        prev: TorrentState,
        /// The state now.
        state: TorrentState,
    },
    /// Every wanted piece is downloaded and verified.
    TorrentFinished {
        /// The torrent.
        torrent: TorrentId,
    },
    /// The torrent was paused.
    TorrentPaused {
        /// The torrent.
        torrent: TorrentId,
    },
    /// The torrent was resumed.
    TorrentResumed {
        /// The torrent.
        torrent: TorrentId,
    },
    /// A check of the files finished (on add or after `force_recheck`).
    TorrentChecked {
        /// The torrent.
        torrent: TorrentId,
        /// Pieces found on disk (or vouched for by the resume data): what a download
        /// resumed with.
        pieces: u32,
    },
    /// A piece passed its hash check and is on disk.
    PieceFinished {
        /// The torrent.
        torrent: TorrentId,
        /// The piece.
        piece: PieceIndex,
    },
    /// Every piece of a file is downloaded and checked (the manual's
    /// `file_completed_alert`); posted once, when its last piece passes (not for files found
    /// complete by a check). Pad files are not reported.
    FileCompleted {
        /// The torrent.
        torrent: TorrentId,
        /// The file's index in the torrent.
        file: lt_core::FileIndex,
    },
    /// A peer connected to us and the session took the connection (the manual's
    /// `incoming_connection_alert`); which torrent it wants is known after its handshake.
    IncomingConnection {
        /// The peer.
        addr: SocketAddr,
        /// TCP or uTP.
        transport: crate::Transport,
        /// Over TLS, on the SSL listen port.
        ssl: bool,
    },
    /// The torrents whose status changed since the last
    /// [`Engine::torrent_updates`](crate::Engine::torrent_updates) (the manual's
    /// `state_update_alert`, answering `post_torrent_updates`).
    StateUpdate {
        /// Their statuses.
        statuses: Vec<crate::TorrentStatus>,
    },
    /// A web seed failed (an HTTP error, a timeout, a short reply) and waits before it is
    /// asked again, or was banned for sending data that failed the hash check (the manual's
    /// `url_seed_alert`).
    UrlSeed {
        /// The torrent.
        torrent: TorrentId,
        /// The web seed's URL.
        url: String,
        /// What went wrong.
        error: String,
    },
    /// A piece failed its hash check; it will be downloaded again.
    HashFailed {
        /// The torrent.
        torrent: TorrentId,
        /// The piece.
        piece: PieceIndex,
    },
    /// An announce was sent.
    TrackerAnnounce {
        /// The torrent.
        torrent: TorrentId,
        /// The tracker.
        url: String,
        /// The event sent.
        event: lt_tracker::Event,
    },
    /// A tracker answered an announce.
    TrackerReply {
        /// The torrent.
        torrent: TorrentId,
        /// The tracker.
        url: String,
        /// Peers it returned.
        num_peers: usize,
    },
    /// A tracker announce failed.
    TrackerError {
        /// The torrent.
        torrent: TorrentId,
        /// The tracker.
        url: String,
        /// Failures in a row.
        times_in_row: u32,
        /// The error.
        error: lt_tracker::Error,
    },
    /// A tracker sent a warning message.
    TrackerWarning {
        /// The torrent.
        torrent: TorrentId,
        /// The tracker.
        url: String,
        /// The message.
        message: String,
    },
    /// A scrape answered.
    ScrapeReply {
        /// The torrent.
        torrent: TorrentId,
        /// The tracker.
        url: String,
        /// Seeds.
        complete: u32,
        /// Leechers.
        incomplete: u32,
    },
    /// A scrape failed.
    ScrapeFailed {
        /// The torrent.
        torrent: TorrentId,
        /// The tracker.
        url: String,
        /// The error.
        error: String,
    },
    /// A peer connection completed its handshake.
    PeerConnected {
        /// The torrent.
        torrent: TorrentId,
        /// The peer.
        addr: SocketAddr,
        /// Whether we made the connection.
        outgoing: bool,
    },
    /// A peer connection ended.
    PeerDisconnected {
        /// The torrent, if the handshake named one.
        torrent: Option<TorrentId>,
        /// The peer.
        addr: SocketAddr,
        /// Why.
        reason: DisconnectReason,
    },
    /// A peer was banned for sending corrupt data.
    PeerBanned {
        /// The torrent.
        torrent: TorrentId,
        /// The peer.
        addr: SocketAddr,
    },
    /// A peer stopped answering requests.
    PeerSnubbed {
        /// The torrent.
        torrent: TorrentId,
        /// The peer.
        addr: SocketAddr,
    },
    /// A snubbed peer sent data again.
    PeerUnsnubbed {
        /// The torrent.
        torrent: TorrentId,
        /// The peer.
        addr: SocketAddr,
    },
    /// A disk operation failed.
    FileError {
        /// The torrent.
        torrent: TorrentId,
        /// The error (it names the file and the operation).
        error: DiskError,
    },
    /// The torrent entered or left upload mode.
    UploadMode {
        /// The torrent.
        torrent: TorrentId,
        /// Whether it is in upload mode now.
        enabled: bool,
    },
    /// `move_storage` finished.
    StorageMoved {
        /// The torrent.
        torrent: TorrentId,
        /// The new save path.
        path: String,
    },
    /// `move_storage` failed.
    StorageMovedFailed {
        /// The torrent.
        torrent: TorrentId,
        /// The error.
        error: DiskError,
    },
    /// `rename_file` finished.
    FileRenamed {
        /// The torrent.
        torrent: TorrentId,
        /// The file.
        file: u32,
        /// Its new path.
        name: String,
    },
    /// `rename_file` failed.
    FileRenameFailed {
        /// The torrent.
        torrent: TorrentId,
        /// The file.
        file: u32,
        /// The error.
        error: DiskError,
    },
    /// `save_resume_data` produced this.
    SaveResumeData {
        /// The torrent.
        torrent: TorrentId,
        /// The resume data.
        data: Box<ResumeData>,
    },
    /// `save_resume_data` failed.
    SaveResumeDataFailed {
        /// The torrent.
        torrent: TorrentId,
        /// The error.
        error: String,
    },
    /// `read_piece` finished.
    ReadPiece {
        /// The torrent.
        torrent: TorrentId,
        /// The piece.
        piece: PieceIndex,
        /// The bytes, or the error.
        data: Result<bytes::Bytes, DiskError>,
    },
    /// Periodic transfer counters of a torrent (every tick with traffic).
    Stats {
        /// The torrent.
        torrent: TorrentId,
        /// Payload bytes received since the last stats alert.
        downloaded: u64,
        /// Payload bytes sent since the last stats alert.
        uploaded: u64,
    },
    /// Something limits performance.
    Performance {
        /// The torrent.
        torrent: TorrentId,
        /// What.
        warning: PerformanceWarning,
    },
    /// The session listens on this address.
    ListenSucceeded {
        /// The address.
        addr: SocketAddr,
    },
    /// Listening on an address failed.
    ListenFailed {
        /// The address.
        addr: SocketAddr,
        /// The error.
        error: String,
    },
    /// A port mapping exists on the gateway (the manual's `portmap_alert`).
    PortMap {
        /// The session's mapping index.
        mapping: usize,
        /// "UPnP", "NAT-PMP" or "PCP".
        transport: String,
        /// "TCP" or "UDP".
        protocol: String,
        /// The port the gateway forwards.
        external_port: u16,
    },
    /// A port mapping failed (the manual's `portmap_error_alert`).
    PortMapError {
        /// The session's mapping index.
        mapping: usize,
        /// "UPnP", "NAT-PMP" or "PCP".
        transport: String,
        /// Why.
        error: String,
    },
    /// Port-mapping diagnostics (the manual's `portmap_log_alert`).
    PortMapLog {
        /// "UPnP", "NAT-PMP" or "PCP".
        transport: String,
        /// What happened.
        message: String,
    },
    /// Our external address as a gateway or tracker reported it (`external_ip_alert`).
    ExternalIp {
        /// The address.
        address: std::net::IpAddr,
    },
    /// The DHT finished a bootstrap (`dht_bootstrap_alert`).
    DhtBootstrap {
        /// Nodes in the routing table.
        nodes: usize,
    },
    /// A DHT lookup for one of our torrents found peers (`dht_get_peers_reply_alert`).
    DhtGetPeersReply {
        /// The torrent.
        torrent: TorrentId,
        /// Peers found.
        num_peers: usize,
    },
    /// Another node announced a peer to our DHT node (`dht_announce_alert`).
    DhtAnnounce {
        /// The info-hash.
        info_hash: lt_core::Sha1Hash,
        /// The peer.
        peer: SocketAddr,
    },
    /// A connection was refused by the IP filter (`peer_blocked_alert`).
    PeerBlocked {
        /// The torrent, if known.
        torrent: Option<TorrentId>,
        /// The peer.
        addr: SocketAddr,
    },
    /// A peer was found by local service discovery (`lsd_peer_alert`).
    LsdPeer {
        /// The torrent.
        torrent: TorrentId,
        /// The peer.
        addr: SocketAddr,
    },
    /// Something was not done because it would have gone around the proxy (the manual's
    /// `anonymous_mode_alert`): with a proxy set, a UDP tracker, the DHT, local service
    /// discovery, port mapping, listening, and uTP are off until they can go through it.
    AnonymousMode {
        /// What was not done, and why.
        message: String,
    },
    /// Alerts were dropped because the queue was full.
    AlertsDropped {
        /// How many.
        count: u64,
    },
}

impl fmt::Display for Alert {
    /// The alert in words, as the manual's `alert::message()` gives it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let conn = |outgoing: bool| if outgoing { "outgoing" } else { "incoming" };
        match self {
            Self::TorrentAdded {
                torrent,
                name,
                info_hash,
            } => {
                write!(f, "{torrent}: added {name} ({info_hash})")
            }
            Self::AddTorrentFailed { error } => write!(f, "adding a torrent failed: {error}"),
            Self::TorrentRemoved { torrent, info_hash } => {
                write!(f, "{torrent}: removed ({info_hash})")
            }
            Self::TorrentDeleted { info_hash } => write!(f, "{info_hash}: files deleted"),
            Self::TorrentDeleteFailed { info_hash, error } => {
                write!(f, "{info_hash}: deleting the files failed: {error}")
            }
            Self::MetadataReceived { torrent } => write!(f, "{torrent}: metadata received"),
            Self::FastresumeRejected { torrent, error } => {
                write!(
                    f,
                    "{torrent}: resume data rejected, checking the files: {error}"
                )
            }
            Self::TorrentNeedCert { torrent } => {
                write!(f, "{torrent}: an SSL torrent, waiting for a certificate")
            }
            Self::InternalError {
                torrent: Some(t),
                message,
            } => {
                write!(f, "{t}: internal error, paused: {message}")
            }
            Self::InternalError {
                torrent: None,
                message,
            } => {
                write!(f, "internal error: {message}")
            }
            Self::MetadataFailed { torrent, error } => {
                write!(f, "{torrent}: metadata failed: {error}")
            }
            Self::StateChanged {
                torrent,
                prev,
                state,
            } => {
                write!(f, "{torrent}: {prev} -> {state}")
            }
            Self::TorrentFinished { torrent } => write!(f, "{torrent}: finished"),
            Self::TorrentPaused { torrent } => write!(f, "{torrent}: paused"),
            Self::TorrentResumed { torrent } => write!(f, "{torrent}: resumed"),
            Self::TorrentChecked { torrent, pieces } => {
                write!(f, "{torrent}: checked, {pieces} pieces present")
            }
            Self::PieceFinished { torrent, piece } => {
                write!(f, "{torrent}: piece {piece} finished")
            }
            Self::FileCompleted { torrent, file } => write!(f, "{torrent}: file {file} completed"),
            Self::IncomingConnection {
                addr,
                transport,
                ssl,
            } => write!(
                f,
                "incoming connection from {addr} over {}{transport:?}",
                if *ssl { "TLS on " } else { "" }
            ),
            Self::StateUpdate { statuses } => {
                write!(f, "{} torrents changed", statuses.len())
            }
            Self::UrlSeed {
                torrent,
                url,
                error,
            } => write!(f, "{torrent}: web seed {url}: {error}"),
            Self::HashFailed { torrent, piece } => {
                write!(f, "{torrent}: piece {piece} failed its hash check")
            }
            Self::TrackerAnnounce {
                torrent,
                url,
                event,
            } => {
                write!(f, "{torrent}: announcing {event:?} to {url}")
            }
            Self::TrackerReply {
                torrent,
                url,
                num_peers,
            } => {
                write!(f, "{torrent}: {url} replied with {num_peers} peers")
            }
            Self::TrackerError {
                torrent,
                url,
                times_in_row,
                error,
            } => {
                write!(
                    f,
                    "{torrent}: {url} failed ({times_in_row} in a row): {error}"
                )
            }
            Self::TrackerWarning {
                torrent,
                url,
                message,
            } => {
                write!(f, "{torrent}: {url} warns: {message}")
            }
            Self::ScrapeReply {
                torrent,
                url,
                complete,
                incomplete,
            } => write!(
                f,
                "{torrent}: {url} scrape: {complete} seeds, {incomplete} downloading"
            ),
            Self::ScrapeFailed {
                torrent,
                url,
                error,
            } => {
                write!(f, "{torrent}: {url} scrape failed: {error}")
            }
            Self::PeerConnected {
                torrent,
                addr,
                outgoing,
            } => {
                write!(f, "{torrent}: {} peer {addr} connected", conn(*outgoing))
            }
            Self::PeerDisconnected {
                torrent: Some(t),
                addr,
                reason,
            } => {
                write!(f, "{t}: peer {addr} disconnected: {reason}")
            }
            Self::PeerDisconnected {
                torrent: None,
                addr,
                reason,
            } => {
                write!(f, "peer {addr} disconnected: {reason}")
            }
            Self::PeerBanned { torrent, addr } => write!(f, "{torrent}: peer {addr} banned"),
            Self::PeerSnubbed { torrent, addr } => write!(f, "{torrent}: peer {addr} snubbed"),
            Self::PeerUnsnubbed { torrent, addr } => {
                write!(f, "{torrent}: peer {addr} no longer snubbed")
            }
            Self::FileError { torrent, error } => write!(f, "{torrent}: file error: {error}"),
            Self::UploadMode { torrent, enabled } => write!(
                f,
                "{torrent}: upload mode {}",
                if *enabled { "on" } else { "off" }
            ),
            Self::StorageMoved { torrent, path } => write!(f, "{torrent}: storage moved to {path}"),
            Self::StorageMovedFailed { torrent, error } => {
                write!(f, "{torrent}: moving the storage failed: {error}")
            }
            Self::FileRenamed {
                torrent,
                file,
                name,
            } => {
                write!(f, "{torrent}: file {file} renamed to {name}")
            }
            Self::FileRenameFailed {
                torrent,
                file,
                error,
            } => {
                write!(f, "{torrent}: renaming file {file} failed: {error}")
            }
            Self::SaveResumeData { torrent, .. } => write!(f, "{torrent}: resume data saved"),
            Self::SaveResumeDataFailed { torrent, error } => {
                write!(f, "{torrent}: saving resume data failed: {error}")
            }
            Self::ReadPiece {
                torrent,
                piece,
                data: Ok(d),
            } => {
                write!(f, "{torrent}: piece {piece} read ({} bytes)", d.len())
            }
            Self::ReadPiece {
                torrent,
                piece,
                data: Err(e),
            } => {
                write!(f, "{torrent}: reading piece {piece} failed: {e}")
            }
            Self::Stats {
                torrent,
                downloaded,
                uploaded,
            } => write!(
                f,
                "{torrent}: {downloaded} bytes down, {uploaded} bytes up since the last stats"
            ),
            Self::Performance { torrent, warning } => {
                write!(f, "{torrent}: performance warning: {warning:?}")
            }
            Self::ListenSucceeded { addr } => write!(f, "listening on {addr}"),
            Self::ListenFailed { addr, error } => write!(f, "listening on {addr} failed: {error}"),
            Self::PortMap {
                transport,
                protocol,
                external_port,
                ..
            } => {
                write!(
                    f,
                    "{transport}: {protocol} mapped to external port {external_port}"
                )
            }
            Self::PortMapError {
                transport, error, ..
            } => {
                write!(f, "{transport}: port mapping failed: {error}")
            }
            Self::PortMapLog { transport, message } => write!(f, "{transport}: {message}"),
            Self::ExternalIp { address } => write!(f, "external address {address}"),
            Self::DhtBootstrap { nodes } => write!(f, "DHT bootstrapped with {nodes} nodes"),
            Self::DhtGetPeersReply { torrent, num_peers } => {
                write!(f, "{torrent}: the DHT found {num_peers} peers")
            }
            Self::DhtAnnounce { info_hash, peer } => {
                write!(f, "{peer} announced {info_hash} to our DHT node")
            }
            Self::PeerBlocked { addr, .. } => write!(f, "peer {addr} blocked by the IP filter"),
            Self::LsdPeer { torrent, addr } => {
                write!(f, "{torrent}: local service discovery found {addr}")
            }
            Self::AnonymousMode { message } => write!(f, "anonymous mode: {message}"),
            Self::AlertsDropped { count } => {
                write!(f, "{count} alerts dropped: the queue was full")
            }
        }
    }
}

impl Alert {
    /// The alert in words (the manual's `message()`); the same as its `Display`.
    #[must_use]
    pub fn message(&self) -> String {
        self.to_string()
    }

    /// The alert's category.
    #[must_use]
    pub const fn category(&self) -> AlertCategory {
        match self {
            Self::AddTorrentFailed { .. }
            | Self::InternalError { .. }
            | Self::FileError { .. }
            | Self::TorrentDeleteFailed { .. }
            | Self::MetadataFailed { .. }
            | Self::StorageMovedFailed { .. }
            | Self::FileRenameFailed { .. }
            | Self::SaveResumeDataFailed { .. }
            | Self::ListenFailed { .. }
            | Self::PortMapError { .. }
            | Self::TrackerError { .. }
            | Self::UrlSeed { .. }
            | Self::AnonymousMode { .. }
            | Self::TorrentNeedCert { .. }
            | Self::FastresumeRejected { .. }
            | Self::ScrapeFailed { .. } => AlertCategory::ERROR,
            Self::TorrentAdded { .. }
            | Self::TorrentRemoved { .. }
            | Self::StateChanged { .. }
            | Self::TorrentFinished { .. }
            | Self::TorrentPaused { .. }
            | Self::TorrentResumed { .. }
            | Self::TorrentChecked { .. }
            | Self::MetadataReceived { .. }
            | Self::UploadMode { .. }
            | Self::ListenSucceeded { .. }
            | Self::ExternalIp { .. }
            | Self::AlertsDropped { .. } => AlertCategory::STATUS,
            Self::PortMap { .. } | Self::PortMapLog { .. } => AlertCategory::PORT_MAPPING,
            Self::DhtBootstrap { .. }
            | Self::DhtGetPeersReply { .. }
            | Self::DhtAnnounce { .. } => AlertCategory::DHT,
            Self::TorrentDeleted { .. }
            | Self::StorageMoved { .. }
            | Self::FileRenamed { .. }
            | Self::SaveResumeData { .. }
            | Self::ReadPiece { .. } => AlertCategory::STORAGE,
            Self::PieceFinished { .. } | Self::FileCompleted { .. } => AlertCategory::PROGRESS,
            Self::StateUpdate { .. } => AlertCategory::STATUS,
            Self::HashFailed { .. } => AlertCategory::STATUS,
            Self::TrackerAnnounce { .. }
            | Self::TrackerReply { .. }
            | Self::TrackerWarning { .. }
            | Self::ScrapeReply { .. } => AlertCategory::TRACKER,
            Self::PeerConnected { .. }
            | Self::IncomingConnection { .. }
            | Self::PeerDisconnected { .. }
            | Self::PeerSnubbed { .. }
            | Self::PeerUnsnubbed { .. }
            | Self::LsdPeer { .. } => AlertCategory::PEER,
            Self::PeerBanned { .. } | Self::PeerBlocked { .. } => AlertCategory::IP_BLOCK,
            Self::Stats { .. } => AlertCategory::STATS,
            Self::Performance { .. } => AlertCategory::PERFORMANCE_WARNING,
        }
    }

    /// The torrent the alert is about, if any.
    #[must_use]
    pub const fn torrent(&self) -> Option<TorrentId> {
        match self {
            Self::TorrentAdded { torrent, .. }
            | Self::TorrentRemoved { torrent, .. }
            | Self::StateChanged { torrent, .. }
            | Self::TorrentFinished { torrent }
            | Self::TorrentPaused { torrent }
            | Self::TorrentResumed { torrent }
            | Self::TorrentChecked { torrent, .. }
            | Self::MetadataReceived { torrent }
            | Self::TorrentNeedCert { torrent }
            | Self::FastresumeRejected { torrent, .. }
            | Self::MetadataFailed { torrent, .. }
            | Self::PieceFinished { torrent, .. }
            | Self::FileCompleted { torrent, .. }
            | Self::HashFailed { torrent, .. }
            | Self::UrlSeed { torrent, .. }
            | Self::TrackerAnnounce { torrent, .. }
            | Self::TrackerReply { torrent, .. }
            | Self::TrackerError { torrent, .. }
            | Self::TrackerWarning { torrent, .. }
            | Self::ScrapeReply { torrent, .. }
            | Self::ScrapeFailed { torrent, .. }
            | Self::PeerConnected { torrent, .. }
            | Self::PeerBanned { torrent, .. }
            | Self::PeerSnubbed { torrent, .. }
            | Self::PeerUnsnubbed { torrent, .. }
            | Self::FileError { torrent, .. }
            | Self::UploadMode { torrent, .. }
            | Self::StorageMoved { torrent, .. }
            | Self::StorageMovedFailed { torrent, .. }
            | Self::FileRenamed { torrent, .. }
            | Self::FileRenameFailed { torrent, .. }
            | Self::SaveResumeData { torrent, .. }
            | Self::SaveResumeDataFailed { torrent, .. }
            | Self::ReadPiece { torrent, .. }
            | Self::Stats { torrent, .. }
            | Self::Performance { torrent, .. }
            | Self::DhtGetPeersReply { torrent, .. }
            | Self::LsdPeer { torrent, .. } => Some(*torrent),
            Self::PeerDisconnected { torrent, .. } | Self::PeerBlocked { torrent, .. } => *torrent,
            _ => None,
        }
    }
}

/// A bounded queue of alerts filtered by a category mask. Past `limit`, alerts are dropped
/// (and counted); alerts the caller waits for (resume data, read piece) are never dropped.
#[derive(Debug)]
pub struct AlertQueue {
    queue: VecDeque<Alert>,
    mask: AlertCategory,
    limit: usize,
    dropped: u64,
}

impl AlertQueue {
    /// An empty queue.
    #[must_use]
    pub const fn new(mask: AlertCategory, limit: usize) -> Self {
        Self {
            queue: VecDeque::new(),
            mask,
            limit,
            dropped: 0,
        }
    }

    /// Sets the mask.
    pub const fn set_mask(&mut self, mask: AlertCategory) {
        self.mask = mask;
    }

    /// The mask.
    #[must_use]
    pub const fn mask(&self) -> AlertCategory {
        self.mask
    }

    /// Sets the size limit.
    pub const fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
    }

    /// Queues `alert` if the mask lets it through and there is room.
    pub fn push(&mut self, alert: Alert) {
        let must_keep = matches!(
            alert,
            Alert::SaveResumeData { .. }
                | Alert::SaveResumeDataFailed { .. }
                | Alert::ReadPiece { .. }
        );
        if !must_keep && !alert.category().intersects(self.mask) {
            return;
        }
        if !must_keep && self.queue.len() >= self.limit {
            self.dropped = self.dropped.saturating_add(1);
            return;
        }
        self.queue.push_back(alert);
    }

    /// The oldest alert. After drops, an [`Alert::AlertsDropped`] comes first.
    pub fn pop(&mut self) -> Option<Alert> {
        if self.dropped > 0 {
            let count = std::mem::take(&mut self.dropped);
            return Some(Alert::AlertsDropped { count });
        }
        self.queue.pop_front()
    }

    /// Whether the queue is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty() && self.dropped == 0
    }

    /// Alerts waiting.
    #[must_use]
    pub fn len(&self) -> usize {
        self.queue.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_alert_says_what_happened() {
        let t = TorrentId(4);
        let addr: SocketAddr = "10.0.0.1:6881".parse().unwrap();
        let cases = [
            (
                Alert::TorrentNeedCert { torrent: t },
                "t4: an SSL torrent, waiting for a certificate",
            ),
            (
                Alert::FileCompleted {
                    torrent: t,
                    file: lt_core::FileIndex::new(2),
                },
                "t4: file 2 completed",
            ),
            (
                Alert::PeerConnected {
                    torrent: t,
                    addr,
                    outgoing: true,
                },
                "t4: outgoing peer 10.0.0.1:6881 connected",
            ),
            (
                Alert::PeerDisconnected {
                    torrent: None,
                    addr,
                    reason: DisconnectReason::SslMismatch,
                },
                "peer 10.0.0.1:6881 disconnected: the connection's TLS (or lack of it) does not fit the torrent",
            ),
            (
                Alert::AlertsDropped { count: 3 },
                "3 alerts dropped: the queue was full",
            ),
        ];
        for (alert, text) in cases {
            assert_eq!(alert.message(), text);
        }
    }

    #[test]
    fn mask_filters_and_limit_drops() {
        let mut q = AlertQueue::new(AlertCategory::STATUS, 2);
        let t = TorrentId(1);
        q.push(Alert::PeerSnubbed {
            torrent: t,
            addr: "127.0.0.1:1".parse().unwrap(),
        });
        assert!(q.is_empty(), "peer alerts are masked out");
        for _ in 0..3 {
            q.push(Alert::TorrentFinished { torrent: t });
        }
        assert_eq!(q.len(), 2);
        assert!(matches!(q.pop(), Some(Alert::AlertsDropped { count: 1 })));
        assert!(matches!(q.pop(), Some(Alert::TorrentFinished { .. })));
        q.push(Alert::SaveResumeDataFailed {
            torrent: t,
            error: "x".into(),
        });
        q.push(Alert::SaveResumeDataFailed {
            torrent: t,
            error: "y".into(),
        });
        assert_eq!(q.len(), 3, "resume data alerts are never dropped");
    }
}
