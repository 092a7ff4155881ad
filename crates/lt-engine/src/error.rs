//! The engine's errors. Each keeps its cause as a type, not a string, so a caller can tell
//! a peer's fault from a local one and a timeout from both ([`DisconnectReason::fault`]).

use std::fmt;
use std::io;

use crate::TorrentId;

/// Why adding a torrent failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddError {
    /// The torrent is in the session already (with `duplicate_is_error`).
    #[error("the torrent is already in the session ({0})")]
    Duplicate(TorrentId),
    /// The torrent has no pieces or an unusable piece size.
    #[error("the torrent's piece layout is unusable: {0}")]
    BadLayout(lt_picker::Error),
}

/// Whose fault an error is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Fault {
    /// The peer broke the protocol or lied: it is not dialled again soon.
    Peer,
    /// The network: refused, reset, unreachable, timed out.
    Network,
    /// Ours: we closed it (paused, removed, over a limit, redundant).
    Local,
}

/// An I/O error the driver met on a socket or a file: its kind, to decide on, and the
/// system's text, to show.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[error("{message}")]
pub struct IoError {
    /// The kind of failure.
    pub kind: io::ErrorKind,
    /// The system's description.
    pub message: String,
}

impl IoError {
    /// An error of `kind` described by `message`.
    pub fn new(kind: io::ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

impl From<&io::Error> for IoError {
    fn from(e: &io::Error) -> Self {
        Self::new(e.kind(), e.to_string())
    }
}

impl From<io::Error> for IoError {
    fn from(e: io::Error) -> Self {
        Self::from(&e)
    }
}

/// Why a peer connection ended.
#[derive(Clone, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// The socket failed, or the connection could not be made.
    Io(IoError),
    /// The peer closed the connection.
    PeerClosed,
    /// The peer broke the wire protocol.
    Protocol(lt_wire::Error),
    /// The peer's piece messages contradict the torrent (a HAVE past the end, a block we
    /// did not ask for the picker refuses).
    BadPieces(lt_picker::Error),
    /// A timeout (handshake, inactivity).
    Timeout,
    /// We closed it: torrent paused or removed, session shutting down.
    Closed,
    /// Both sides are seeds.
    Redundant,
    /// The peer was banned (or its address is blocked by the IP filter).
    Banned,
    /// The peer is ourselves.
    SelfConnection,
    /// Already connected to this peer, or this torrent's connection limit is reached.
    Duplicate,
    /// The session's connection limit is reached, or the session is paused.
    TooManyConnections,
    /// The peer named a torrent we do not have (incoming).
    UnknownTorrent,
    /// The peer's connection does not fit the torrent's SSL rule (the manual's
    /// `requires_ssl_connection` and `invalid_ssl_cert`): plaintext or MSE to an SSL
    /// torrent, TLS to a torrent that is not one, a TLS session made for another torrent
    /// (its SNI) than the handshake names, or an SSL torrent without our certificate.
    SslMismatch,
}

impl DisconnectReason {
    /// Whose fault it is.
    #[must_use]
    pub const fn fault(&self) -> Fault {
        match self {
            Self::Protocol(_)
            | Self::BadPieces(_)
            | Self::Banned
            | Self::UnknownTorrent
            | Self::SslMismatch => Fault::Peer,
            Self::Io(_) | Self::PeerClosed | Self::Timeout => Fault::Network,
            Self::Closed
            | Self::Redundant
            | Self::SelfConnection
            | Self::Duplicate
            | Self::TooManyConnections => Fault::Local,
        }
    }
}

impl fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(e) => write!(f, "I/O: {e}"),
            Self::PeerClosed => f.write_str("closed by the peer"),
            Self::Protocol(e) => write!(f, "protocol: {e}"),
            Self::BadPieces(e) => write!(f, "bad piece message: {e}"),
            Self::Timeout => f.write_str("timed out"),
            Self::Closed => f.write_str("closed"),
            Self::Redundant => f.write_str("both are seeds"),
            Self::Banned => f.write_str("banned"),
            Self::SelfConnection => f.write_str("connected to ourselves"),
            Self::Duplicate => f.write_str("duplicate or over the torrent's limit"),
            Self::TooManyConnections => f.write_str("over the session's connection limit"),
            Self::UnknownTorrent => f.write_str("unknown torrent"),
            Self::SslMismatch => {
                f.write_str("the connection's TLS (or lack of it) does not fit the torrent")
            }
        }
    }
}

impl std::error::Error for DisconnectReason {}

/// How a disk error affects the torrent.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum DiskErrorKind {
    /// The disk is full or writing is not allowed: enter upload mode.
    NoSpaceOrDenied,
    /// The piece or file is not there (not downloaded yet, or outside the torrent).
    NotFound,
    /// Any other error.
    Other,
}

/// A disk job's failure, as the driver's storage reported it.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[error("{message}")]
pub struct DiskError {
    /// What it means for the torrent.
    pub kind: DiskErrorKind,
    /// The storage's description.
    pub message: String,
}

impl DiskError {
    /// An error of `kind` described by `message`.
    pub fn new(kind: DiskErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// The kind an I/O error of `kind` has for the torrent.
    #[must_use]
    pub fn kind_of(kind: io::ErrorKind) -> DiskErrorKind {
        match kind {
            io::ErrorKind::StorageFull
            | io::ErrorKind::PermissionDenied
            | io::ErrorKind::ReadOnlyFilesystem
            | io::ErrorKind::QuotaExceeded => DiskErrorKind::NoSpaceOrDenied,
            io::ErrorKind::NotFound => DiskErrorKind::NotFound,
            _ => DiskErrorKind::Other,
        }
    }
}
