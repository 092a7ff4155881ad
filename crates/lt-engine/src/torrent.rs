//! One torrent's state inside the engine.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use lt_core::{Bitfield, InfoHash, PieceIndex, Sha1Hash};
use lt_metainfo::TorrentInfo;
use lt_picker::{Layout, PiecePicker};
use lt_tracker::{Event, TrackerIndex, TrackerList};
use lt_wire::{BlockRequest, PieceLayout};

use crate::rate::{Bucket, Rate};
use crate::{ConnId, TorrentState};

/// Where a peer address came from.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum PeerSource {
    Tracker,
    User,
    Incoming,
    Resume,
    Pex,
    Dht,
    Lsd,
}

/// A known peer of a torrent, connected or not.
#[derive(Clone, Debug)]
pub(crate) struct PeerEntry {
    pub(crate) source: PeerSource,
    pub(crate) failcount: u32,
    pub(crate) conn: Option<ConnId>,
    pub(crate) next_try: Option<Instant>,
    pub(crate) banned: bool,
    /// It turned out to be us.
    pub(crate) is_self: bool,
    /// Connections from it that completed a handshake (to re-dial user peers forever).
    pub(crate) seed: bool,
    /// Whether it speaks uTP: `Some(true)` when a uTP connection to it worked or PEX said
    /// so, `Some(false)` when a uTP dial failed; `None` until known.
    pub(crate) utp: Option<bool>,
    /// An encrypted dial to it failed in the MSE handshake: it is dialled in plaintext
    /// (libtorrent's `pe_support` turned off).
    pub(crate) plaintext: bool,
}

impl PeerEntry {
    pub(crate) const fn new(source: PeerSource) -> Self {
        Self {
            source,
            failcount: 0,
            conn: None,
            next_try: None,
            banned: false,
            is_self: false,
            seed: false,
            utp: None,
            plaintext: false,
        }
    }
}

/// Where one block of a piece being downloaded is.
#[derive(Debug, Clone)]
pub(crate) enum Slot {
    /// Not here (or received before the piece's blocks were dropped: the piece is
    /// downloaded again when it completes).
    Missing,
    /// In memory, to be written with the piece.
    Held(Bytes),
    /// Handed to the disk with [`crate::DiskJob::WriteBlocks`].
    Written,
}

/// A piece being downloaded. Its blocks wait in memory so that a piece that arrives whole
/// is hashed before any of it is written; a piece holding more than
/// `max_held_piece_bytes` (or a torrent holding more than `max_queued_disk_bytes`) writes
/// what it holds and is hashed back from the files when complete, so memory per partial
/// piece stays bounded whatever the piece length.
#[derive(Debug)]
pub(crate) struct PartPiece {
    pub(crate) blocks: Vec<Slot>,
    pub(crate) contributors: Vec<(ConnId, SocketAddr)>,
    /// Bytes of the `Held` blocks.
    pub(crate) held: u64,
    /// `WriteBlocks` jobs not yet reported, and their bytes.
    pub(crate) writes_in_flight: u32,
    pub(crate) writing_bytes: u64,
    /// Every block is here; the piece is finished when the writes in flight are.
    pub(crate) complete: bool,
    /// A write of some of its blocks failed: the piece is downloaded again, nobody blamed.
    pub(crate) write_failed: bool,
}

impl PartPiece {
    pub(crate) fn new(blocks: usize) -> Self {
        Self {
            blocks: vec![Slot::Missing; blocks],
            contributors: Vec::new(),
            held: 0,
            writes_in_flight: 0,
            writing_bytes: 0,
            complete: false,
            write_failed: false,
        }
    }

    /// Keeps a block that arrived; returns its bytes if the slot was empty.
    pub(crate) fn hold(&mut self, block: usize, data: Bytes) -> u64 {
        match self.blocks.get_mut(block) {
            Some(slot @ Slot::Missing) => {
                let len = data.len() as u64;
                *slot = Slot::Held(data);
                self.held += len;
                len
            }
            _ => 0,
        }
    }

    /// The held blocks with their offsets in the piece (blocks of `block_size` bytes), now
    /// marked written.
    pub(crate) fn take_held(&mut self, block_size: u32) -> Vec<(u32, Bytes)> {
        let mut out = Vec::new();
        for (i, slot) in self.blocks.iter_mut().enumerate() {
            if let Slot::Held(_) = slot
                && let Slot::Held(data) = std::mem::replace(slot, Slot::Written)
            {
                let begin = u32::try_from(i)
                    .unwrap_or(u32::MAX)
                    .saturating_mul(block_size);
                out.push((begin, data));
            }
        }
        self.held = 0;
        out
    }
}

/// A magnet link's metadata being fetched (BEP 9).
#[derive(Debug, Default)]
pub(crate) struct MetaFetch {
    /// The size this round fetches (the first announced; after a failed round, the one
    /// most peers announce). Only peers that announced it are asked.
    pub(crate) size: Option<u32>,
    /// Each piece, with the address of the peer that sent it.
    pub(crate) pieces: Vec<Option<(Bytes, SocketAddr)>>,
    /// Who was asked for each piece, and when; only that peer's answer is taken.
    pub(crate) requested: Vec<Option<(ConnId, Instant)>>,
    /// After a failed round: one peer supplies every piece, so a failure names it.
    pub(crate) single_source: bool,
    /// Peers that sent pieces of a failed round with others: not asked again this fetch.
    pub(crate) suspects: BTreeSet<SocketAddr>,
}

impl MetaFetch {
    /// Starts a round for metadata of `size` bytes (suspects and mode stay).
    pub(crate) fn start(&mut self, size: u32) {
        let n = lt_wire::metadata_piece_count(size) as usize;
        self.size = Some(size);
        self.pieces = vec![None; n];
        self.requested = vec![None; n];
    }
}

/// One torrent.
#[derive(Debug)]
pub(crate) struct Torrent {
    pub(crate) info: Arc<TorrentInfo>,
    pub(crate) info_hash: InfoHash,
    pub(crate) wire_hash: Sha1Hash,
    pub(crate) layout: Layout,
    pub(crate) wire_layout: PieceLayout,
    pub(crate) picker: PiecePicker,
    pub(crate) have: Bitfield,
    pub(crate) state: TorrentState,
    pub(crate) paused: bool,
    pub(crate) user_upload_mode: bool,
    /// Upload mode after a disk error, until then.
    pub(crate) disk_upload_mode_until: Option<Instant>,
    pub(crate) error: Option<String>,
    pub(crate) trackers: TrackerList,
    /// The announce in flight and its event.
    pub(crate) announcing: Option<(TrackerIndex, Event)>,
    pub(crate) last_tracker: Option<String>,
    pub(crate) num_complete: Option<u32>,
    pub(crate) num_incomplete: Option<u32>,
    pub(crate) peers: BTreeMap<SocketAddr, PeerEntry>,
    pub(crate) conns: BTreeSet<ConnId>,
    pub(crate) parts: BTreeMap<u32, PartPiece>,
    /// Bytes held in memory by `parts`.
    pub(crate) held_bytes: u64,
    /// `WriteBlocks` jobs in flight for pieces whose blocks were dropped: their reports
    /// count against these before a new download of the piece.
    pub(crate) stale_writes: BTreeMap<u32, u32>,
    /// Pieces handed to the disk for hashing and writing, with who sent them.
    pub(crate) writing: BTreeMap<u32, Vec<(ConnId, SocketAddr)>>,
    pub(crate) disk_bytes: u64,
    pub(crate) file_priorities: Vec<u8>,
    pub(crate) max_connections: usize,
    pub(crate) max_uploads: Option<usize>,
    pub(crate) up_bucket: Bucket,
    pub(crate) down_bucket: Bucket,
    pub(crate) pending_reads: VecDeque<(ConnId, BlockRequest)>,
    pub(crate) down: Rate,
    pub(crate) up: Rate,
    pub(crate) total_download: u64,
    pub(crate) total_upload: u64,
    pub(crate) total_failed: u64,
    pub(crate) total_redundant: u64,
    pub(crate) prior_download: u64,
    pub(crate) prior_upload: u64,
    pub(crate) stats_reported: (u64, u64),
    pub(crate) sequential: bool,
    pub(crate) super_seeding: bool,
    pub(crate) share_mode: bool,
    /// Share mode's piece priorities are in place (all 0 but what it chose).
    pub(crate) share_applied: bool,
    pub(crate) auto_managed: bool,
    pub(crate) tracker_key: u32,
    pub(crate) active_since: Option<Instant>,
    pub(crate) active_time: std::time::Duration,
    pub(crate) seeding_since: Option<Instant>,
    pub(crate) seeding_time: std::time::Duration,
    pub(crate) num_banned: usize,
    /// Seed mode: pieces not hashed yet (each is, the first time a peer asks for it).
    pub(crate) unverified: Option<Bitfield>,
    /// Peer requests waiting for their piece's seed-mode hash.
    pub(crate) verify_wait: BTreeMap<u32, Vec<(ConnId, BlockRequest)>>,
    /// Whether the session's IP filter applies.
    pub(crate) apply_ip_filter: bool,
    /// Place in the download queue (0 first).
    pub(crate) queue_pos: u32,
    /// False while a magnet link's metadata is fetched; `info` is a placeholder then.
    pub(crate) has_metadata: bool,
    pub(crate) meta: MetaFetch,
    /// The name to show until the metadata arrives.
    pub(crate) name_hint: Option<String>,
    /// When the next DHT announce is due (`None`: at once) and whether one runs.
    pub(crate) next_dht: Option<Instant>,
    pub(crate) dht_in_flight: bool,
    /// When the next local service discovery announce is due (`None`: at once).
    pub(crate) next_lsd: Option<Instant>,
    /// Web seeds (BEP 19, BEP 17).
    pub(crate) web: Vec<crate::engine::web::WebSource>,
    /// An SSL torrent's certificate is set: it may connect and accept peers.
    pub(crate) ssl_cert_set: bool,
}

/// Whether an address a tracker, a peer (PEX), the DHT or LSD named may go into a peer list
/// (issue 18, finding 16): a real port; not an unspecified, multicast or broadcast address;
/// not our own listen port on this machine; and a loopback address only when
/// `loopback_ok` (the source is on this machine itself).
pub(crate) fn listable(addr: SocketAddr, listen_port: u16, loopback_ok: bool) -> bool {
    let ip = match addr.ip() {
        std::net::IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map_or(std::net::IpAddr::V6(v6), std::net::IpAddr::V4),
        v4 => v4,
    };
    let broadcast = matches!(ip, std::net::IpAddr::V4(v4) if v4.is_broadcast());
    let ourselves = addr.port() == listen_port && ip.is_loopback();
    let unusable = addr.port() == 0 || ip.is_unspecified() || ip.is_multicast() || broadcast;
    !unusable && !ourselves && (loopback_ok || !ip.is_loopback())
}

/// The host of a URL (brackets of an IPv6 address removed).
fn url_host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        host_port.split(':').next().unwrap_or("")
    }
}

/// Whether a tracker URL names this machine (`localhost` or a loopback address).
pub(crate) fn url_is_loopback(url: &str) -> bool {
    let host = url_host(url);
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Whether a URL names a host on the local network (`localhost`, a loopback, private or
/// link-local address), for `ignore_limits_on_local_network`.
pub(crate) fn url_is_local(url: &str) -> bool {
    let host = url_host(url);
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(crate::rate::is_local_network)
}

/// Sets the picker's piece priorities from file priorities (0 to 7; past 7 is 7).
pub(crate) fn apply_file_priorities(picker: &mut PiecePicker, info: &TorrentInfo, prios: &[u8]) {
    let sizes: Vec<u64> = info.files().files().iter().map(|f| f.size).collect();
    let prios: Vec<lt_picker::Priority> = prios
        .iter()
        .map(|&p| lt_picker::Priority::new(p.min(7)).unwrap_or(lt_picker::Priority::NORMAL))
        .collect();
    let _ = picker.set_file_priorities(&sizes, &prios);
}

impl Torrent {
    /// Forgets the pieces being downloaded (their blocks already written stay in the
    /// files, unverified; the pieces are downloaded again).
    pub(crate) fn drop_parts(&mut self) {
        for (piece, part) in std::mem::take(&mut self.parts) {
            self.disk_bytes = self.disk_bytes.saturating_sub(part.writing_bytes);
            if part.writes_in_flight > 0 {
                *self.stale_writes.entry(piece).or_default() += part.writes_in_flight;
            }
        }
        self.held_bytes = 0;
    }

    /// Whether it is an SSL torrent: its info dictionary has a root certificate, and its
    /// peers talk TLS with certificates signed by it.
    pub(crate) fn is_ssl(&self) -> bool {
        self.has_metadata && self.info.ssl_cert().is_some()
    }

    /// An SSL torrent without our certificate yet: it dials and accepts no one.
    pub(crate) fn ssl_waits(&self) -> bool {
        self.is_ssl() && !self.ssl_cert_set
    }

    /// Whether we have every piece.
    pub(crate) fn is_seed(&self) -> bool {
        self.has_metadata && self.have.all()
    }

    /// Whether every wanted piece is here.
    /// Super seeding is asked for and in effect (only a seed super-seeds).
    pub(crate) fn super_seeding(&self) -> bool {
        self.super_seeding && self.is_seed()
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.has_metadata && self.picker.is_finished()
    }

    pub(crate) fn is_checking(&self) -> bool {
        matches!(
            self.state,
            TorrentState::CheckingFiles | TorrentState::CheckingResumeData
        )
    }

    pub(crate) const fn upload_mode(&self) -> bool {
        self.user_upload_mode || self.disk_upload_mode_until.is_some()
    }

    /// Whether it may transfer: checked, not paused.
    pub(crate) fn is_active(&self) -> bool {
        !self.paused && !self.is_checking()
    }

    /// Whether the engine's tick has nothing to do for it until something changes it: not
    /// active, no connections, reads or disk bytes waiting, rates down to zero, stats
    /// reported, no upload-mode timer, not in share mode and not fetching metadata.
    pub(crate) fn is_dormant(&self) -> bool {
        !self.is_active()
            && self.conns.is_empty()
            && self.pending_reads.is_empty()
            && self.disk_bytes == 0
            && self.down.is_idle()
            && self.up.is_idle()
            && self.stats_reported == (self.total_download, self.total_upload)
            && self.disk_upload_mode_until.is_none()
            && !self.share_mode
            && (self.has_metadata || self.meta.size.is_none())
    }

    pub(crate) fn piece_size(&self, piece: u32) -> u64 {
        u64::from(
            self.wire_layout
                .piece_size(PieceIndex::new(piece))
                .unwrap_or(0),
        )
    }

    pub(crate) fn bytes_done(&self) -> u64 {
        self.have
            .iter_ones()
            .map(|p| self.piece_size(u32::try_from(p).unwrap_or(u32::MAX)))
            .sum()
    }

    pub(crate) fn bytes_left(&self) -> u64 {
        self.info.total_size().saturating_sub(self.bytes_done())
    }

    /// The torrent's parameters for a peer connection.
    pub(crate) fn wire_params(&self) -> lt_wire::TorrentParams {
        lt_wire::TorrentParams {
            info_hash: self.info_hash,
            layout: self.has_metadata.then_some(self.wire_layout),
            metadata_size: if self.has_metadata {
                u32::try_from(self.info.info_bytes().len()).ok()
            } else {
                None
            },
        }
    }

    /// Time active and time seeding, up to `now` (the manual's `active_time`,
    /// `seeding_time`).
    pub(crate) fn times(&self, now: Instant) -> (std::time::Duration, std::time::Duration) {
        let since = |s: Option<Instant>| {
            s.map_or(std::time::Duration::ZERO, |s| {
                now.saturating_duration_since(s)
            })
        };
        (
            self.active_time + since(self.active_since),
            self.seeding_time + since(self.seeding_since),
        )
    }

    /// The state the pieces call for.
    pub(crate) fn transfer_state(&self) -> TorrentState {
        if !self.has_metadata {
            TorrentState::DownloadingMetadata
        } else if self.is_seed() {
            TorrentState::Seeding
        } else if self.is_finished() {
            TorrentState::Finished
        } else {
            TorrentState::Downloading
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn listable_addresses() {
        for (addr, loopback_ok, want) in [
            ("10.0.0.1:6881", false, true),
            ("[2001:db8::1]:6881", false, true),
            ("10.0.0.1:0", true, false),
            ("0.0.0.0:6881", true, false),
            ("[::]:6881", true, false),
            ("224.0.0.1:6881", true, false),
            ("[ff02::1]:6881", true, false),
            ("255.255.255.255:6881", true, false),
            ("127.0.0.1:6881", true, true),
            ("127.0.0.1:6881", false, false),
            ("[::1]:6881", false, false),
            ("[::ffff:127.0.0.1]:6881", false, false),
            // Our own listen port on this machine.
            ("127.0.0.1:7000", true, false),
            ("[::ffff:127.0.0.1]:7000", true, false),
            ("10.0.0.1:7000", false, true),
        ] {
            assert_eq!(
                listable(a(addr), 7000, loopback_ok),
                want,
                "{addr} {loopback_ok}"
            );
        }
    }

    #[test]
    fn tracker_urls_on_this_machine() {
        for (url, want) in [
            ("http://127.0.0.1:6969/announce", true),
            ("udp://localhost:6969", true),
            ("http://[::1]:80/a", true),
            ("https://user:pw@127.0.0.2/x?y=1", true),
            ("http://tracker.example.org:80/announce", false),
            ("udp://10.0.0.1:6969", false),
            ("http://127.example.org/", false),
            ("", false),
        ] {
            assert_eq!(url_is_loopback(url), want, "{url}");
        }
    }
}
