//! The sans-IO core of the lt BitTorrent engine: every torrent and peer connection of a
//! session as one state machine (the libtorrent manual's session, torrent, peer and alert
//! chapters, without the I/O).
//!
//! ```text
//!   driver (lt-session, or a simulation)                 Engine
//!   ─────────────────────────────────────                ──────
//!   socket bytes ──────────── receive(now, conn, bytes) ─▶ PeerConnection (lt-wire)
//!   connect done / failed ─── connected / connect_failed ─▶   │ events
//!   accepted socket ───────── incoming(now, addr, ..) ────▶   ▼
//!   disk job done ─────────── disk_done(now, DiskDone) ───▶ torrent: PiecePicker (lt-picker),
//!   tracker reply ─────────── announce_done(now, ..) ─────▶ choker, peer list, trackers
//!   timer ─────────────────── handle_timeout(now) ────────▶ (lt-tracker), rates, limits
//!                                                            │
//!   ◀── poll_action(): Connect, Send, Close, Disk(WritePiece | Read | Check | ...),
//!                      Announce, Scrape, RemoveStorage
//!   ◀── poll_alert():  Alert (bounded queue, category mask)
//!   ◀── poll_timeout(): when to call handle_timeout
//! ```
//!
//! The block's journey: a PIECE message's payload leaves lt-wire's decoder as `Bytes`
//! without a copy, waits in the torrent's partial piece until the piece is complete, and
//! goes to the driver as one [`DiskJob::WritePiece`] with every block, which hashes the
//! blocks from memory and writes them with one vectored write. A piece that fails its hash
//! is never written, so corrupt data never reaches the disk; its senders go on parole and
//! a sender of corrupt data is banned (smart ban).
//!
//! Requests are pipelined by each peer's rate (`request_queue_time` seconds of it), the
//! choker is tit-for-tat while downloading and round-robin, fastest-upload or anti-leech
//! while seeding with an optimistic unchoke every 30 s; disk errors that mean "no space"
//! or "not allowed" put the torrent in upload mode until `optimistic_disk_retry`.
//!
//! Whole swarms run in-process on a virtual clock: see `tests/swarm.rs`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod alert;
mod choker;
mod engine;
mod error;
mod input;
mod ip_filter;
mod rate;
mod settings;
mod torrent;
mod types;

pub use alert::{Alert, AlertCategory, AlertQueue, PerformanceWarning};
pub use engine::Engine;
pub use error::{AddError, DisconnectReason, DiskError, DiskErrorKind, Fault, IoError};
pub use input::{Handshake, Input, Transport};
pub use ip_filter::{IpAccess, IpFilter, MAX_IP_FILTER_RULES, PortFilter};
pub use lt_picker::PartialPiece;
pub use settings::{MixedMode, SeedChoking, Settings};
pub use types::{
    Action, AddTorrent, ConnId, DiskDone, DiskJob, PeerInfo, TorrentFlags, TorrentId, TorrentState,
    TorrentStatus,
};
