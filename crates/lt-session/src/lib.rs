//! The lt BitTorrent session: the tokio shell around [`lt_engine::Engine`] and the public
//! API (the libtorrent manual's `session`, `torrent_handle`, `torrent_status`, `peer_info`
//! and alerts, in Rust idiom).
//!
//! ```text
//!  Session::new(settings) ── a tokio runtime (2 workers) runs one engine loop:
//!
//!   listeners ─accept─▶ first bytes: plaintext or MSE (skey lookup) ─┐
//!   Action::Connect ──▶ one TCP or uTP dial (+ MSE) ─────────────────┤ Event channel
//!   per-connection reader  (64 KiB reads) ───────── Received ────────┤ (bounded)
//!   per-connection writer: bytes written ─────────── Drained ─────────┤
//!   disk jobs on lt-storage's DiskIo threads ─────── Disk ────────────┤
//!   tracker, DHT announce tasks, LSD listener ────── Announced, ... ──┘
//!                                                                    ▼
//!          driver.rs: Mutex<Engine>::handle_input ▶ actions (one method each), alerts
//!   per-connection writer ◀── Send (vectored writes of header + payload buffers)
//!   TorrentHandle / Session methods lock the engine briefly, call it, and wake the loop.
//! ```
//!
//! Every method is synchronous and short (it locks the engine, never waits on the
//! network), so the API works the same from plain threads and from async code; alerts
//! can be waited for both ways ([`Session::wait_for_alert`],
//! [`Session::next_alerts`]).
//!
//! Storage is [`lt_storage::FsStorage`] under each torrent's save path (sparse or full
//! files, part file for priority-0 files), run by [`lt_storage::DiskIo`]; pieces are hashed
//! from the blocks in memory and written with one vectored write, so a piece that fails its
//! hash check never touches the disk (pieces over `max_held_piece_bytes` are written as they
//! come and hashed back from the files).
//!
//! With a proxy ([`SessionSettings::proxy`], [`Session::set_proxy`]) every outgoing
//! connection goes through it (SOCKS4, SOCKS5 with or without a password, HTTP `CONNECT`),
//! and what cannot go through it is not done (see [`ProxySettings`]).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod dht;
mod disk;
mod driver;
mod error;
mod handle;
mod io;
mod listen;
mod lsd;
mod nat;
mod proxy;
mod session;
mod settings;
mod ssl;
mod tracker;
mod web;

pub use lt_dht::DhtState;
pub use lt_engine::{
    Alert, AlertCategory, DisconnectReason, IpAccess, IpFilter, MixedMode, PartialPiece, PeerInfo,
    PerformanceWarning, PortFilter, SeedChoking, SessionStatus, Settings, TorrentFlags, TorrentId,
    TorrentState, TorrentStatus,
};
pub use lt_metainfo::MagnetLink;
pub use lt_nat::Protocol as PortProtocol;
pub use lt_storage::ResumeData;
pub use lt_wire::mse::{EncLevel, EncPolicy};

/// An error with its causes (reqwest's own message leaves out why a request failed, such
/// as the certificate check or the proxy's answer).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

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

pub use error::Error;
pub use handle::TorrentHandle;
pub use proxy::{ProxyAuth, ProxyError, ProxyErrorKind, ProxyKind, ProxySettings};
pub use session::Session;
pub use settings::{AddTorrentParams, SessionSettings, StorageMode, TorrentSource};
pub use ssl::SslError;

pub(crate) use driver::Event;
pub(crate) use session::Shared;
