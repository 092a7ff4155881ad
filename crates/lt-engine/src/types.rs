//! The engine's inputs and outputs: ids, actions for the driver, disk jobs and their
//! completions, and the status types the API reports.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use lt_core::{Bitfield, InfoHash, PeerId, PieceIndex, Sha1Hash};
use lt_metainfo::ResumeData;
use lt_metainfo::TorrentInfo;
use lt_tracker::{AnnounceRequest, TrackerIndex};
use lt_wire::BlockRequest;

use crate::DiskError;

/// A torrent in the session.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct TorrentId(pub u64);

impl fmt::Display for TorrentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t{}", self.0)
    }
}

/// A peer connection (or a connection attempt).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct ConnId(pub u64);

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "c{}", self.0)
    }
}

/// What the driver must do. Drain with [`crate::Engine::poll_action`] after every input.
///
/// Not `#[non_exhaustive]` on purpose: a driver must carry out every action, so a new kind
/// of action is a breaking change that the compiler points out in each driver.
#[derive(Debug)]
pub enum Action {
    /// Open a connection to `addr` over `transport`, with an MSE handshake for `info_hash`
    /// first when `encrypt` (the engine's [`crate::Engine::mse_config`] says what to
    /// allow); report [`crate::Input::Connected`] or [`crate::Input::ConnectFailed`]. Make
    /// one attempt: the engine decides on the next transport or plaintext after a failure,
    /// and asks again with the same `conn`.
    Connect {
        /// The id the engine gave the connection.
        conn: ConnId,
        /// Where to.
        addr: SocketAddr,
        /// TCP or uTP.
        transport: crate::Transport,
        /// The torrent's v1 (or truncated v2) info-hash, the MSE shared secret.
        info_hash: Sha1Hash,
        /// Start with MSE.
        encrypt: bool,
        /// An SSL torrent's connection: TLS on the transport, SNI the hex `info_hash`,
        /// with the torrent's certificate (never with MSE: `encrypt` is false then).
        ssl: bool,
        /// With `transport` uTP: when it has not connected after this long, dial TCP beside
        /// it and keep the first of the two to connect (report its transport in
        /// [`crate::Input::Connected`]; fail only when both do). `None`: `transport` alone.
        race_tcp_after: Option<Duration>,
    },
    /// Write these buffers to the connection, in order (one vectored write when possible).
    Send {
        /// The connection.
        conn: ConnId,
        /// The bytes.
        bufs: Vec<Bytes>,
    },
    /// Close the connection; the engine has forgotten it already.
    Close {
        /// The connection.
        conn: ConnId,
    },
    /// Run a disk job; report [`crate::Input::Disk`].
    Disk(DiskJob),
    /// Announce to a tracker; report [`crate::Input::Announced`].
    Announce {
        /// The torrent.
        torrent: TorrentId,
        /// The tracker's position in the torrent's list.
        tracker: TrackerIndex,
        /// Its URL.
        url: String,
        /// What to send (the driver fills in nothing).
        request: AnnounceRequest,
    },
    /// Scrape a tracker; report [`crate::Input::Scraped`].
    Scrape {
        /// The torrent.
        torrent: TorrentId,
        /// The tracker.
        tracker: TrackerIndex,
        /// Its announce URL.
        url: String,
        /// The info-hash to scrape.
        info_hash: Sha1Hash,
    },
    /// A magnet link's metadata arrived and was verified: set up the torrent's storage for
    /// `info` before running the disk jobs that follow.
    MetadataReceived {
        /// The torrent.
        torrent: TorrentId,
        /// Its metadata.
        info: Arc<TorrentInfo>,
    },
    /// Look the torrent up on the DHT and announce it there (BEP 5, with BEP 33's seed flag);
    /// report what was found, even nothing, as [`crate::Input::DhtPeers`].
    DhtAnnounce {
        /// The torrent.
        torrent: TorrentId,
        /// Its v1 (or truncated v2) info-hash.
        info_hash: Sha1Hash,
        /// We are a seed.
        seed: bool,
        /// The port to announce: the listen port, or the SSL listen port for an SSL
        /// torrent.
        port: u16,
    },
    /// Announce these torrents on the local network (BEP 14).
    LsdAnnounce {
        /// Their v1 (or truncated v2) info-hashes.
        info_hashes: Vec<Sha1Hash>,
        /// The port to announce: the listen port, or the SSL listen port for SSL torrents
        /// (which are announced in an action of their own).
        port: u16,
    },
    /// A peer told us its DHT node (BEP 5 PORT): add it to the DHT's routing table.
    DhtNode {
        /// The node.
        addr: SocketAddr,
    },
    /// Fetch a run of a torrent's bytes from a web seed: each part in order, handing the
    /// bytes in as they come with [`crate::Input::WebData`] (any chunk sizes, in order),
    /// then [`crate::Input::WebDone`].
    WebRequest(crate::web::WebRequest),
    /// Stop every request of this web seed; the engine forgot them.
    WebCancel {
        /// The web seed.
        seed: ConnId,
    },
    /// Drop the torrent's storage (after its last disk job): it was removed.
    RemoveStorage {
        /// The torrent.
        torrent: TorrentId,
        /// Also delete its files.
        delete_files: bool,
        /// Its info-hashes, for the alerts.
        info_hash: InfoHash,
    },
}

/// A disk job for the driver's disk threads. Exhaustive, like [`Action`]: a driver runs
/// every kind.
#[derive(Debug)]
pub enum DiskJob {
    /// Decide which pieces are on disk: from `resume` when it fits the files
    /// (lt-storage's `verify_resume`), otherwise by hashing every piece. Report
    /// [`DiskDone::Checked`].
    Check {
        /// The torrent.
        torrent: TorrentId,
        /// Resume data to trust if it fits.
        resume: Option<Box<ResumeData>>,
    },
    /// Hash a whole piece from these blocks (in order) and, if it matches the torrent,
    /// write them at the piece's start. Report [`DiskDone::PieceWritten`].
    WritePiece {
        /// The torrent.
        torrent: TorrentId,
        /// The piece.
        piece: PieceIndex,
        /// Its blocks, in order; together exactly the piece.
        blocks: Vec<Bytes>,
    },
    /// Write blocks of a piece (offset in the piece and bytes, in offset order). While
    /// `last` is false the piece is still downloading: report [`DiskDone::BlocksWritten`].
    /// When `last` is true these are the piece's final blocks, every other block was
    /// written by earlier `WriteBlocks` jobs (all reported): after writing, hash the whole
    /// piece back from the files and report [`DiskDone::PieceWritten`]. The engine sends
    /// this instead of [`DiskJob::WritePiece`] for pieces too large to hold in memory.
    WriteBlocks {
        /// The torrent.
        torrent: TorrentId,
        /// The piece.
        piece: PieceIndex,
        /// The blocks: offset in the piece, bytes.
        blocks: Vec<(u32, Bytes)>,
        /// Whether the piece is complete with these.
        last: bool,
    },
    /// Read a block a peer requested. Report [`DiskDone::Read`].
    Read {
        /// The torrent.
        torrent: TorrentId,
        /// For whom.
        conn: ConnId,
        /// What.
        request: BlockRequest,
    },
    /// Hash a piece on disk (seed mode checks each piece the first time a peer asks for
    /// it). Report [`DiskDone::Verified`].
    VerifyPiece {
        /// The torrent.
        torrent: TorrentId,
        /// The piece.
        piece: PieceIndex,
    },
    /// Read a whole piece for `read_piece`. Report [`DiskDone::PieceRead`].
    ReadPiece {
        /// The torrent.
        torrent: TorrentId,
        /// The piece.
        piece: PieceIndex,
    },
    /// Flush the files, record their sizes into `data` and post it as
    /// [`crate::Alert::SaveResumeData`] with [`crate::Engine::post_alert`].
    SaveResume {
        /// The torrent.
        torrent: TorrentId,
        /// The resume data without file sizes.
        data: Box<ResumeData>,
    },
    /// Move the files to `path`. Report [`DiskDone::Moved`].
    Move {
        /// The torrent.
        torrent: TorrentId,
        /// The new save path.
        path: String,
    },
    /// Rename a file. Report [`DiskDone::Renamed`].
    Rename {
        /// The torrent.
        torrent: TorrentId,
        /// The file.
        file: u32,
        /// Its new path, relative to the save path.
        name: String,
    },
    /// Set a file's priority in the storage (priority 0 files go to the part file).
    FilePriority {
        /// The torrent.
        torrent: TorrentId,
        /// The file.
        file: u32,
        /// 0 to 7.
        priority: u8,
    },
}

/// A finished [`DiskJob`].
#[derive(Debug)]
#[non_exhaustive]
pub enum DiskDone {
    /// A check finished: the pieces on disk, or the error.
    Checked {
        /// The torrent.
        torrent: TorrentId,
        /// The pieces found, or the error.
        result: Result<Bitfield, DiskError>,
    },
    /// A piece was hashed and (if it matched) written.
    PieceWritten {
        /// The torrent.
        torrent: TorrentId,
        /// The piece.
        piece: PieceIndex,
        /// Whether the hash matched (true when `error` stopped the job before hashing).
        passed: bool,
        /// The write's (or the read-back's) error, if any.
        error: Option<DiskError>,
    },
    /// Blocks of a piece still downloading were written ([`DiskJob::WriteBlocks`] with
    /// `last` false).
    BlocksWritten {
        /// The torrent.
        torrent: TorrentId,
        /// The piece.
        piece: PieceIndex,
        /// The write's error, if any.
        error: Option<DiskError>,
    },
    /// A block was read.
    Read {
        /// The torrent.
        torrent: TorrentId,
        /// For whom.
        conn: ConnId,
        /// What.
        request: BlockRequest,
        /// The bytes or the error.
        result: Result<Bytes, DiskError>,
    },
    /// A piece on disk was hashed.
    Verified {
        /// The torrent.
        torrent: TorrentId,
        /// The piece.
        piece: PieceIndex,
        /// Whether it matched.
        ok: bool,
    },
    /// A piece was read for `read_piece`.
    PieceRead {
        /// The torrent.
        torrent: TorrentId,
        /// The piece.
        piece: PieceIndex,
        /// The bytes or the error.
        result: Result<Bytes, DiskError>,
    },
    /// The files were moved.
    Moved {
        /// The torrent.
        torrent: TorrentId,
        /// The new path or the error.
        result: Result<String, DiskError>,
    },
    /// A file was renamed.
    Renamed {
        /// The torrent.
        torrent: TorrentId,
        /// The file.
        file: u32,
        /// The new name or the error.
        result: Result<String, DiskError>,
    },
}

impl DiskJob {
    /// The torrent the job is for.
    #[must_use]
    pub const fn torrent(&self) -> TorrentId {
        match self {
            Self::Check { torrent, .. }
            | Self::WritePiece { torrent, .. }
            | Self::WriteBlocks { torrent, .. }
            | Self::Read { torrent, .. }
            | Self::VerifyPiece { torrent, .. }
            | Self::ReadPiece { torrent, .. }
            | Self::SaveResume { torrent, .. }
            | Self::Move { torrent, .. }
            | Self::Rename { torrent, .. }
            | Self::FilePriority { torrent, .. } => *torrent,
        }
    }
}

impl DiskDone {
    /// The torrent the job was for.
    #[must_use]
    pub const fn torrent(&self) -> TorrentId {
        match self {
            Self::Checked { torrent, .. }
            | Self::PieceWritten { torrent, .. }
            | Self::BlocksWritten { torrent, .. }
            | Self::Read { torrent, .. }
            | Self::Verified { torrent, .. }
            | Self::PieceRead { torrent, .. }
            | Self::Moved { torrent, .. }
            | Self::Renamed { torrent, .. } => *torrent,
        }
    }
}

/// A torrent's state (the manual's `torrent_status::state_t`; `allocating` and
/// `queued_for_checking` are gone in libtorrent 2).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum TorrentState {
    /// Checking resume data against the files.
    CheckingResumeData,
    /// Hashing the files to find the pieces on disk.
    CheckingFiles,
    /// Fetching the metadata (magnet links).
    DownloadingMetadata,
    /// Downloading.
    Downloading,
    /// Every wanted piece is here, but not every piece.
    Finished,
    /// Every piece is here.
    Seeding,
}

impl fmt::Display for TorrentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::CheckingResumeData => "checking resume data",
            Self::CheckingFiles => "checking files",
            Self::DownloadingMetadata => "downloading metadata",
            Self::Downloading => "downloading",
            Self::Finished => "finished",
            Self::Seeding => "seeding",
        })
    }
}

/// Flags of a torrent being added (the manual's `add_torrent_params` flags).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[allow(clippy::struct_excessive_bools)]
pub struct TorrentFlags {
    /// Trust that every piece is on disk without checking the files first; each piece is
    /// hashed the first time a peer asks for it, and one that does not match is dropped
    /// (as libtorrent does).
    pub seed_mode: bool,
    /// Only upload: request nothing.
    pub upload_mode: bool,
    /// Start paused.
    pub paused: bool,
    /// Let the session's queue start and stop it (queuing arrives with issue #9).
    pub auto_managed: bool,
    /// Fail if the torrent is in the session already (else the existing one is returned).
    pub duplicate_is_error: bool,
    /// Download pieces in order.
    pub sequential_download: bool,
    /// Super seeding (BEP 16): while a seed, pretend to have nothing and offer each peer
    /// one piece at a time, a rare one, moving on once the peer has it. Spreads a new
    /// torrent with the least upload from the initial seed.
    pub super_seeding: bool,
    /// Share mode (libtorrent's): download only pieces that can be uploaded again, aiming
    /// at `share_mode_target` times as much upload as download; never completes the
    /// torrent on its own.
    pub share_mode: bool,
    /// The flags, priorities and limits given here win over those of the resume data (the
    /// manual's `flag_override_resume_data`); without it the resume data's are restored.
    pub override_resume_data: bool,
}

impl Default for TorrentFlags {
    fn default() -> Self {
        Self {
            seed_mode: false,
            upload_mode: false,
            paused: false,
            auto_managed: true,
            duplicate_is_error: false,
            sequential_download: false,
            super_seeding: false,
            share_mode: false,
            override_resume_data: false,
        }
    }
}

/// What kind of source a [`PeerInfo`] is (the manual's `peer_info::connection_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerKind {
    /// A BitTorrent peer.
    BitTorrent,
    /// A BEP 19 url seed.
    UrlSeed,
    /// A BEP 17 HTTP seed.
    HttpSeed,
}

/// What the engine needs to add a torrent (the session's `AddTorrentParams` adds the save
/// path and storage options).
#[derive(Clone, Debug)]
pub struct AddTorrent {
    /// The torrent. For a magnet link (`metadata_for` set) a placeholder until the
    /// metadata arrives.
    pub info: Arc<TorrentInfo>,
    /// A magnet link's info-hash: fetch the metadata from peers (BEP 9) first.
    pub metadata_for: Option<InfoHash>,
    /// A name to show until the metadata arrives (a magnet link's `dn`).
    pub name: Option<String>,
    /// Resume data to trust if it fits the files.
    pub resume: Option<ResumeData>,
    /// Trackers besides the torrent's own, as tiers.
    pub trackers: Vec<Vec<String>>,
    /// Peers to connect to.
    pub peers: Vec<SocketAddr>,
    /// Web seeds besides the torrent's own (BEP 19 and BEP 17).
    pub web_seeds: Vec<lt_metainfo::WebSeed>,
    /// File priorities (0 to 7), one per file; missing files get 1 (normal).
    pub file_priorities: Vec<u8>,
    /// Piece priorities (0 to 7), one per piece, applied after the file priorities
    /// (libtorrent 2.x's `piece_priorities`); empty: from the files.
    pub piece_priorities: Vec<u8>,
    /// Whether the session's IP filter applies to this torrent's peers. Default true.
    pub apply_ip_filter: bool,
    /// Flags.
    pub flags: TorrentFlags,
    /// Most connections of this torrent (`None`: the session's default).
    pub max_connections: Option<usize>,
    /// Most unchoked peers of this torrent (`None`: no own limit).
    pub max_uploads: Option<usize>,
    /// Upload limit in bytes per second (0: none).
    pub upload_limit: u64,
    /// Download limit in bytes per second (0: none).
    pub download_limit: u64,
}

impl AddTorrent {
    /// A torrent from a magnet link: its trackers (one tier each, in order) and peers;
    /// the metadata is fetched from peers, unless resume data that holds it is added with
    /// it (then the engine uses that).
    ///
    /// # Errors
    /// Never in practice: building the placeholder metadata cannot fail.
    pub fn from_magnet(link: &lt_metainfo::MagnetLink) -> Result<Self, lt_metainfo::Error> {
        let placeholder = Arc::new(placeholder_info()?);
        let mut add = Self::new(placeholder);
        add.metadata_for = Some(link.info_hash);
        add.name.clone_from(&link.name);
        add.trackers = link.trackers.iter().map(|t| vec![t.clone()]).collect();
        add.peers = link.peer_addrs();
        add.web_seeds = link
            .web_seeds
            .iter()
            .map(|url| lt_metainfo::WebSeed {
                url: url.clone(),
                kind: lt_metainfo::WebSeedKind::Url,
            })
            .collect();
        Ok(add)
    }

    /// The torrent's info-hashes: the magnet link's, or the metadata's.
    #[must_use]
    pub fn info_hash(&self) -> InfoHash {
        self.metadata_for.unwrap_or_else(|| self.info.info_hash())
    }

    /// A magnet link whose resume data holds the metadata (an earlier run fetched it)
    /// becomes a torrent with that metadata, when the metadata matches the link; otherwise
    /// it stays as it is.
    /// [`Engine::add_torrent`](crate::Engine::add_torrent) does this itself; a driver that
    /// makes the storage before adding calls it first to know which metadata to make it for.
    pub fn reconcile_resume(&mut self) {
        let Some(link_hash) = self.metadata_for else {
            return;
        };
        let resumed = self
            .resume
            .as_ref()
            .and_then(|r| r.info.as_deref())
            .and_then(|b| {
                TorrentInfo::from_info_bytes(b, &lt_metainfo::LoadLimits::default()).ok()
            });
        if let Some(info) = resumed.filter(|i| {
            let ih = i.info_hash();
            ih == link_hash || (ih.v1_hash().is_some() && ih.v1_hash() == link_hash.v1_hash())
        }) {
            self.info = Arc::new(info);
            self.metadata_for = None;
        }
    }

    /// Takes what the resume data restores (unless `flags.override_resume_data`): paused,
    /// auto-managed, sequential, seed, super-seed, share and upload modes; file and piece
    /// priorities; rate limits, connection and upload slot limits; whether the IP filter
    /// applies. Trackers, peers, web seeds and totals are merged by
    /// [`Engine::add_torrent`](crate::Engine::add_torrent) itself.
    /// [`Engine::add_torrent`](crate::Engine::add_torrent) calls this.
    pub fn apply_resume(&mut self) {
        let Some(r) = self
            .resume
            .as_ref()
            .filter(|_| !self.flags.override_resume_data)
        else {
            return;
        };
        let f = &mut self.flags;
        f.paused = r.paused;
        f.auto_managed = r.auto_managed;
        f.sequential_download = r.sequential_download;
        f.seed_mode = r.seed_mode;
        f.super_seeding = r.super_seeding;
        f.share_mode = r.share_mode;
        f.upload_mode = r.upload_mode;
        if !r.file_priority.is_empty() {
            self.file_priorities.clone_from(&r.file_priority);
        }
        if !r.piece_priority.is_empty() {
            self.piece_priorities.clone_from(&r.piece_priority);
        }
        self.upload_limit = r.upload_rate_limit;
        self.download_limit = r.download_rate_limit;
        let count = |v: Option<u64>| v.map(|n| usize::try_from(n).unwrap_or(usize::MAX));
        self.max_connections = count(r.max_connections).or(self.max_connections);
        self.max_uploads = count(r.max_uploads);
        self.apply_ip_filter = r.apply_ip_filter;
    }

    /// Defaults for `info`.
    #[must_use]
    pub fn new(info: Arc<TorrentInfo>) -> Self {
        Self {
            info,
            metadata_for: None,
            name: None,
            resume: None,
            trackers: Vec::new(),
            peers: Vec::new(),
            web_seeds: Vec::new(),
            file_priorities: Vec::new(),
            piece_priorities: Vec::new(),
            apply_ip_filter: true,
            flags: TorrentFlags::default(),
            max_connections: None,
            max_uploads: None,
            upload_limit: 0,
            download_limit: 0,
        }
    }
}

/// A one-piece torrent standing in for a magnet link's metadata until it arrives.
pub(crate) fn placeholder_info() -> Result<TorrentInfo, lt_metainfo::Error> {
    let mut info = b"d6:lengthi1e4:name8:metadata12:piece lengthi16384e6:pieces20:".to_vec();
    info.extend_from_slice(&[0u8; 20]);
    info.push(b'e');
    TorrentInfo::from_info_bytes(&info, &lt_metainfo::LoadLimits::default())
}

/// The session's status (the manual's `session_status`): totals since the session
/// started, removed torrents and closed connections included, and what is open now.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SessionStatus {
    /// An incoming connection has been accepted since the session started (a hint that
    /// the listen port is reachable).
    pub has_incoming_connections: bool,
    /// Payload bytes per second, down and up, over every torrent.
    pub payload_download_rate: u64,
    /// See `payload_download_rate`.
    pub payload_upload_rate: u64,
    /// Payload bytes received (verified or not) and sent.
    pub total_payload_download: u64,
    /// See `total_payload_download`.
    pub total_payload_upload: u64,
    /// Bytes of the peer protocol received and sent (messages and payload, after
    /// decryption).
    pub total_download: u64,
    /// See `total_download`.
    pub total_upload: u64,
    /// Bytes of pieces that failed their hash check.
    pub total_failed_bytes: u64,
    /// Bytes received twice (end game, a block from a second peer).
    pub total_redundant_bytes: u64,
    /// Connected peers (past the handshake).
    pub num_peers: usize,
    /// Peers we unchoke.
    pub num_unchoked: usize,
    /// The unchoke slots (`unchoke_slots_limit`).
    pub allowed_upload_slots: usize,
    /// Peers known in every torrent's peer list.
    pub peerlist_size: usize,
    /// Torrents in the session.
    pub num_torrents: usize,
    /// Received bytes waiting for the disk, over every torrent.
    pub disk_queued_bytes: u64,
    /// Nodes in the DHT routing table (filled by the session; 0 from the engine).
    pub dht_nodes: usize,
    /// uTP connections, and how many of them are half-open (filled by the session).
    pub utp_connections: usize,
    /// See `utp_connections`.
    pub utp_half_open: usize,
}

/// A torrent's status (the manual's `torrent_status`).
#[derive(Clone, Debug)]
pub struct TorrentStatus {
    /// The torrent.
    pub id: TorrentId,
    /// Its name.
    pub name: String,
    /// Its info-hashes.
    pub info_hash: InfoHash,
    /// Its state.
    pub state: TorrentState,
    /// Paused (by the user or with the session).
    pub paused: bool,
    /// In upload mode (a disk error, or asked for).
    pub upload_mode: bool,
    /// Downloading in order.
    pub sequential_download: bool,
    /// Super seeding asked for (BEP 16; in effect only while a seed).
    pub super_seeding: bool,
    /// In share mode.
    pub share_mode: bool,
    /// The last error (disk or check), if any.
    pub error: Option<String>,
    /// Fraction of wanted bytes we have, 0 to 1.
    pub progress: f32,
    /// Bytes of verified pieces.
    pub total_done: u64,
    /// Bytes of wanted pieces (all pieces, minus those of priority 0).
    pub total_wanted: u64,
    /// Bytes of wanted pieces we have.
    pub total_wanted_done: u64,
    /// Payload bytes received this session.
    pub total_payload_download: u64,
    /// Payload bytes sent this session.
    pub total_payload_upload: u64,
    /// All bytes received this session (protocol included).
    pub total_download: u64,
    /// All bytes sent this session (protocol included).
    pub total_upload: u64,
    /// Payload bytes received all time (with resume data).
    pub all_time_download: u64,
    /// Payload bytes sent all time (with resume data).
    pub all_time_upload: u64,
    /// Bytes of pieces that failed their hash check.
    pub total_failed_bytes: u64,
    /// Bytes received that we did not need.
    pub total_redundant_bytes: u64,
    /// Payload download rate, bytes per second.
    pub download_payload_rate: u64,
    /// Payload upload rate, bytes per second.
    pub upload_payload_rate: u64,
    /// Connected peers.
    pub num_peers: usize,
    /// Web seeds with a request in flight.
    pub num_web_seeds: usize,
    /// Payload bytes received from web seeds this session.
    pub total_web_seed_download: u64,
    /// Web seeds banned for data that failed the hash check.
    pub web_seeds_banned: usize,
    /// Connected seeds.
    pub num_seeds: usize,
    /// Unchoked peers.
    pub num_uploads: usize,
    /// Peers known (connected or not).
    pub list_peers: usize,
    /// Seeds in the tracker's last reply.
    pub num_complete: Option<u32>,
    /// Leechers in the tracker's last reply.
    pub num_incomplete: Option<u32>,
    /// Our pieces.
    pub pieces: Bitfield,
    /// How many we have.
    pub num_pieces: u32,
    /// Distributed copies in the swarm we see.
    pub distributed_copies: f64,
    /// Bytes per piece.
    pub piece_length: u32,
    /// Time to the next announce.
    pub next_announce: Option<Duration>,
    /// The tracker that answered last.
    pub current_tracker: Option<String>,
    /// Whether we have every piece.
    pub is_seeding: bool,
    /// Whether we have every wanted piece.
    pub is_finished: bool,
    /// Seconds the torrent has been active (not paused).
    pub active_time: Duration,
    /// Seconds it has been seeding.
    pub seeding_time: Duration,
    /// Peers banned for corrupt data.
    pub num_banned: usize,
    /// Whether the metadata is known (false while a magnet link's is fetched).
    pub has_metadata: bool,
    /// Whether the queue starts and stops it.
    pub auto_managed: bool,
    /// Its place in the download queue (0 first); `None` once finished.
    pub queue_position: Option<u32>,
    /// Its connection limit (the manual's `connections_limit`).
    pub connections_limit: usize,
    /// Its own limit of unchoked peers (`uploads_limit`; `None`: none of its own).
    pub uploads_limit: Option<usize>,
    /// Seed mode: pieces are trusted until a peer asks for one, then hashed
    /// (`seed_mode`).
    pub seed_mode: bool,
    /// Whether the session's IP filter applies to its peers (`ip_filter_applies`).
    pub ip_filter_applies: bool,
}

impl TorrentStatus {
    /// Whether its files are being checked (resume data or a full hash).
    #[must_use]
    pub const fn is_checking(&self) -> bool {
        matches!(
            self.state,
            TorrentState::CheckingFiles | TorrentState::CheckingResumeData
        )
    }
}

/// One connected peer (the manual's `peer_info`).
#[derive(Clone, Debug)]
#[allow(clippy::struct_excessive_bools)]
pub struct PeerInfo {
    /// Its address (unspecified for a web seed: see `url`).
    pub addr: SocketAddr,
    /// A BitTorrent peer, or a web seed (the manual's `connection_type`).
    pub kind: PeerKind,
    /// A web seed's URL.
    pub url: Option<String>,
    /// Its peer id.
    pub peer_id: Option<PeerId>,
    /// Its client, from the peer id.
    pub client: String,
    /// We made the connection.
    pub outgoing: bool,
    /// The connection is RC4-encrypted or MSE-obfuscated.
    pub encrypted: bool,
    /// The connection runs over uTP (else TCP).
    pub utp: bool,
    /// The connection runs TLS (an SSL torrent's peer).
    pub ssl: bool,
    /// We choke it.
    pub choked: bool,
    /// It chokes us.
    pub remote_choked: bool,
    /// We are interested.
    pub interesting: bool,
    /// It is interested.
    pub remote_interested: bool,
    /// It is a seed.
    pub seed: bool,
    /// It is snubbed.
    pub snubbed: bool,
    /// On parole (took part in a failed piece).
    pub on_parole: bool,
    /// Optimistically unchoked.
    pub optimistic_unchoke: bool,
    /// Payload bytes per second from it.
    pub payload_down_speed: u64,
    /// Payload bytes per second to it.
    pub payload_up_speed: u64,
    /// Payload bytes from it.
    pub total_download: u64,
    /// Payload bytes to it.
    pub total_upload: u64,
    /// Our requests in flight to it.
    pub download_queue_length: usize,
    /// Its requests waiting for us.
    pub upload_queue_length: usize,
    /// Its pieces.
    pub pieces: Option<Bitfield>,
    /// Pieces it sent that failed.
    pub hashfails: u32,
    /// Its fraction of pieces, 0 to 1.
    pub progress: f32,
}
