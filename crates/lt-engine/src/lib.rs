//! The sans-IO core of the lt BitTorrent engine: every torrent and peer connection of a
//! session as one state machine (the libtorrent manual's session, torrent, peer and alert
//! chapters, without the I/O).
//!
//! ```text
//!   driver (lt-session, or a simulation)                   Engine
//!   ─────────────────────────────────────                  ──────
//!   every event, as an Input ── handle_input(now, Input) ──▶ conns: lt-wire PeerConnection
//!     Timeout | Connected | ConnectFailed | Incoming          per peer; requests, choking,
//!     Received | Closed | Drained | Disk(DiskDone)            disk, trackers, metadata, pex,
//!     Announced | Scraped | DhtPeers | LsdPeer                seeding, queue, discovery
//!   user commands ──── add_torrent, pause_torrent, ... ───▶  (engine/*.rs, one per concern)
//!                                                              │
//!   ◀── poll_action(): Connect (transport, MSE), Send, Close, Disk(WritePiece | Read | ...),
//!                      Announce, Scrape, DhtAnnounce, LsdAnnounce, DhtNode, ...
//!   ◀── poll_alert():  Alert (bounded queue, category mask)
//!   ◀── poll_timeout(): when to hand in Input::Timeout
//! ```
//!
//! Every decision is the engine's: which transport to dial and whether to retry in
//! plaintext, when to announce on trackers, the DHT and by LSD, whom to unchoke (the choker is a
//! pure function, `choker.rs`), how much to queue for a peer (the send buffer watermark, with
//! [`Input::Drained`] reporting what the driver wrote). Errors keep their cause
//! ([`DisconnectReason::fault`]).
//!
//! The block's journey: a PIECE message's payload leaves lt-wire's decoder as `Bytes`
//! without a copy, waits in the torrent's partial piece until the piece is complete, and
//! goes to the driver as one [`DiskJob::WritePiece`] with every block, which hashes the
//! blocks from memory and writes them with one vectored write; a piece that fails its hash
//! is never written. A partial piece holds at most `max_held_piece_bytes` in memory: past
//! it its blocks go out as [`DiskJob::WriteBlocks`] and the driver hashes the piece back
//! from the files when it completes. The senders of a failed piece go on parole and a
//! sender of corrupt data is banned (smart ban).
//!
//! Requests are pipelined by each peer's rate (`request_queue_time` seconds of it), the
//! choker is tit-for-tat while downloading and round-robin, fastest-upload or anti-leech
//! while seeding with an optimistic unchoke every 30 s; disk errors that mean "no space"
//! or "not allowed" put the torrent in upload mode until `optimistic_disk_retry`.
//!
//! Whole swarms run in-process on a virtual clock with the `sim` feature (module `sim`: loss,
//! reordering, MSE links, seeded by `LT_SIM_SEED`); `tests/peer_io.rs` drives the engine
//! against one lt-wire peer. `docs/architecture.md` maps every behaviour
//! to its module.
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
#[cfg(feature = "sim")]
pub mod sim;
mod torrent;
mod types;
pub mod web;

pub use alert::{Alert, AlertCategory, AlertQueue, PerformanceWarning};
pub use engine::Engine;
pub use error::{AddError, DisconnectReason, DiskError, DiskErrorKind, Fault, IoError};
pub use input::{Handshake, Input, Transport};
pub use ip_filter::{IpAccess, IpFilter, MAX_IP_FILTER_RULES, PortFilter};
pub use lt_picker::PartialPiece;
pub use settings::{MixedMode, SeedChoking, Settings};
pub use types::{
    Action, AddTorrent, ConnId, DiskDone, DiskJob, PeerInfo, PeerKind, SessionStatus, TorrentFlags,
    TorrentId, TorrentState, TorrentStatus,
};
