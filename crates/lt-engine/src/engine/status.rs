//! What the API reports of a torrent: status, peers, download queue, file progress, resume data.

use std::time::Instant;

use lt_core::PieceIndex;
use lt_metainfo::ResumeData;

use crate::torrent::PeerSource;
use crate::{PeerInfo, SessionStatus, TorrentId, TorrentStatus};

use super::Engine;

/// What closed connections and removed torrents had counted, kept for the session's
/// totals.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Totals {
    pub(super) wire_down: u64,
    pub(super) wire_up: u64,
    pub(super) payload_down: u64,
    pub(super) payload_up: u64,
    pub(super) failed: u64,
    pub(super) redundant: u64,
}

impl Engine {
    /// The session's status (the manual's `session_status`), without the DHT and uTP
    /// counts, which the session adds.
    #[must_use]
    pub fn session_status(&self) -> SessionStatus {
        let g = self.gone;
        let mut s = SessionStatus {
            has_incoming_connections: self.had_incoming,
            total_download: g.wire_down,
            total_upload: g.wire_up,
            total_payload_download: g.payload_down,
            total_payload_upload: g.payload_up,
            total_failed_bytes: g.failed,
            total_redundant_bytes: g.redundant,
            allowed_upload_slots: self.settings.unchoke_slots_limit,
            num_torrents: self.torrents.len(),
            ..SessionStatus::default()
        };
        for (_, t) in self.torrents.iter() {
            s.payload_download_rate += t.down.rate();
            s.payload_upload_rate += t.up.rate();
            s.total_payload_download += t.total_download;
            s.total_payload_upload += t.total_upload;
            s.total_failed_bytes += t.total_failed;
            s.total_redundant_bytes += t.total_redundant;
            s.peerlist_size += t.peers.len();
            s.disk_queued_bytes += t.disk_bytes;
        }
        for c in self.conns.values() {
            let Some(w) = &c.wire else {
                continue;
            };
            s.total_download += w.stats().received.total_bytes();
            s.total_upload += w.stats().sent.total_bytes();
            s.num_peers += 1;
            s.num_unchoked += usize::from(!w.am_choking());
        }
        s
    }

    /// The torrent's resume data now (without file sizes, which the driver adds).
    #[must_use]
    pub fn resume_data(&self, now: Instant, id: TorrentId) -> Option<ResumeData> {
        let t = self.torrents.get(&id).filter(|t| t.has_metadata)?;
        let mut r = ResumeData::new(&t.info);
        r.info = Some(t.info.info_bytes().to_vec());
        r.pieces = t.have.clone();
        r.file_priority.clone_from(&t.file_priorities);
        r.piece_priority = t
            .picker
            .piece_priorities()
            .iter()
            .map(|p| p.get())
            .collect();
        r.trackers = t
            .trackers
            .entries()
            .iter()
            .fold(Vec::<Vec<String>>::new(), |mut tiers, e| {
                let tier = usize::from(e.tier);
                if tiers.len() <= tier {
                    tiers.resize(tier + 1, Vec::new());
                }
                tiers[tier].push(e.url.clone());
                tiers
            });
        r.peers = t
            .peers
            .iter()
            .filter(|(_, e)| !e.banned && !e.is_self && e.source != PeerSource::Incoming)
            .map(|(&a, _)| a)
            .take(200)
            .collect();
        r.total_downloaded = i64::try_from(t.prior_download + t.total_download).unwrap_or(i64::MAX);
        r.total_uploaded = i64::try_from(t.prior_upload + t.total_upload).unwrap_or(i64::MAX);
        let (active, seeding) = t.times(now);
        r.active_time = i64::try_from(active.as_secs()).unwrap_or(i64::MAX);
        r.seeding_time = i64::try_from(seeding.as_secs()).unwrap_or(i64::MAX);
        r.url_list = self.web_seeds(id, lt_metainfo::WebSeedKind::Url);
        r.httpseeds = self.web_seeds(id, lt_metainfo::WebSeedKind::Http);
        r.paused = t.paused;
        r.auto_managed = t.auto_managed;
        r.sequential_download = t.sequential;
        r.seed_mode = t.unverified.is_some();
        r.super_seeding = t.super_seeding;
        r.share_mode = t.share_mode;
        r.upload_mode = t.user_upload_mode;
        r.apply_ip_filter = t.apply_ip_filter;
        r.upload_rate_limit = t.up_bucket.rate();
        r.download_rate_limit = t.down_bucket.rate();
        r.max_connections = u64::try_from(t.max_connections).ok();
        r.max_uploads = t.max_uploads.and_then(|n| u64::try_from(n).ok());
        Some(r)
    }

    /// The statuses of the torrents whose status changed since the last call, every torrent
    /// the first time (the manual's `post_torrent_updates`, whose `state_update_alert` the
    /// session posts with them: [`Alert::StateUpdate`](crate::Alert::StateUpdate)). A
    /// change is one in what a client shows: state, flags, progress, pieces, rates, peers,
    /// totals, error, queue position, name; not the clocks.
    pub fn torrent_updates(&mut self, now: Instant) -> Vec<TorrentStatus> {
        use std::hash::{Hash as _, Hasher as _};
        let mut out = Vec::new();
        let mut seen = std::collections::BTreeMap::new();
        for &id in self.torrents.keys() {
            let Some(s) = self.status(now, id) else {
                continue;
            };
            let mut h = std::hash::DefaultHasher::new();
            format!("{:?}", s.state).hash(&mut h);
            (
                s.paused,
                s.upload_mode,
                s.sequential_download,
                s.super_seeding,
            )
                .hash(&mut h);
            (s.share_mode, s.auto_managed, s.has_metadata, s.is_seeding).hash(&mut h);
            (s.progress.to_bits(), s.num_pieces, s.total_done).hash(&mut h);
            (s.download_payload_rate, s.upload_payload_rate).hash(&mut h);
            (s.num_peers, s.num_seeds, s.num_web_seeds).hash(&mut h);
            (s.total_payload_download, s.total_payload_upload).hash(&mut h);
            (&s.error, s.queue_position, &s.name).hash(&mut h);
            let fp = h.finish();
            if self.last_updates.get(&id) != Some(&fp) {
                out.push(s);
            }
            seen.insert(id, fp);
        }
        self.last_updates = seen;
        out
    }

    /// The torrent's status.
    #[must_use]
    pub fn status(&self, now: Instant, id: TorrentId) -> Option<TorrentStatus> {
        let t = self.torrents.get(&id)?;
        let total_done = if t.has_metadata { t.bytes_done() } else { 0 };
        let mut total_wanted = 0u64;
        let mut total_wanted_done = 0u64;
        let pieces = if t.has_metadata {
            t.info.num_pieces()
        } else {
            0
        };
        for p in 0..pieces {
            if !t
                .picker
                .piece_priority(PieceIndex::new(p))
                .is_dont_download()
            {
                let s = t.piece_size(p);
                total_wanted += s;
                if t.have.get(p as usize) {
                    total_wanted_done += s;
                }
            }
        }
        let mut num_peers = 0;
        let mut num_seeds = 0;
        let mut num_uploads = 0;
        let mut total_in = 0u64;
        let mut total_out = 0u64;
        for c in t.conns.iter().filter_map(|c| self.conns.get(c)) {
            if let Some(w) = c.wire.as_ref().filter(|_| c.connected) {
                num_peers += 1;
                num_seeds += usize::from(c.seed);
                num_uploads += usize::from(!w.am_choking());
                total_in += w.stats().received.total_bytes();
                total_out += w.stats().sent.total_bytes();
            }
        }
        #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
        let progress = if total_wanted == 0 {
            1.0
        } else {
            (total_wanted_done as f64 / total_wanted as f64) as f32
        };
        let next_announce = t
            .trackers
            .entries()
            .iter()
            .filter_map(|e| e.next_announce)
            .min()
            .map(|at| at.saturating_duration_since(now));
        let (active, seeding) = t.times(now);
        Some(TorrentStatus {
            id,
            name: if t.has_metadata {
                t.info.name().to_owned()
            } else {
                t.name_hint
                    .clone()
                    .unwrap_or_else(|| t.info_hash.best().to_hex())
            },
            info_hash: t.info_hash,
            state: t.state,
            paused: t.paused || self.paused,
            upload_mode: t.upload_mode(),
            sequential_download: t.sequential,
            super_seeding: t.super_seeding,
            share_mode: t.share_mode,
            error: t.error.clone(),
            progress,
            total_done,
            total_wanted,
            total_wanted_done,
            total_payload_download: t.total_download,
            total_payload_upload: t.total_upload,
            total_download: total_in,
            total_upload: total_out,
            all_time_download: t.prior_download + t.total_download,
            all_time_upload: t.prior_upload + t.total_upload,
            total_failed_bytes: t.total_failed,
            total_redundant_bytes: t.total_redundant,
            download_payload_rate: t.down.rate(),
            upload_payload_rate: t.up.rate(),
            num_peers,
            num_web_seeds: t.web.iter().filter(|w| !w.requests.is_empty()).count(),
            total_web_seed_download: t.web.iter().map(|w| w.down.total()).sum(),
            web_seeds_banned: t.web.iter().filter(|w| w.banned).count(),
            num_seeds,
            num_uploads,
            list_peers: t.peers.len(),
            num_complete: t.num_complete,
            num_incomplete: t.num_incomplete,
            pieces: t.have.clone(),
            num_pieces: u32::try_from(t.have.count_ones()).unwrap_or(u32::MAX),
            distributed_copies: t.picker.distributed_copies().copies(),
            piece_length: t.info.piece_length(),
            next_announce,
            current_tracker: t.last_tracker.clone(),
            is_seeding: t.is_seed(),
            is_finished: t.is_finished(),
            active_time: active,
            seeding_time: seeding,
            num_banned: t.num_banned,
            has_metadata: t.has_metadata,
            auto_managed: t.auto_managed,
            queue_position: (!t.is_finished()).then_some(t.queue_pos),
            connections_limit: t.max_connections,
            uploads_limit: t.max_uploads,
            seed_mode: t.unverified.is_some(),
            ip_filter_applies: t.apply_ip_filter,
        })
    }

    /// The torrent's connected peers.
    #[must_use]
    pub fn peer_info(&self, id: TorrentId) -> Vec<PeerInfo> {
        let Some(t) = self.torrents.get(&id) else {
            return Vec::new();
        };
        let n = t.info.num_pieces() as usize;
        t.conns
            .iter()
            .filter_map(|c| self.conns.get(c))
            .filter(|c| c.connected)
            .filter_map(|c| {
                let w = c.wire.as_ref()?;
                let pieces = w.peer_pieces().cloned();
                #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
                let progress = pieces
                    .as_ref()
                    .map_or(0.0, |b| b.count_ones() as f32 / n.max(1) as f32);
                Some(PeerInfo {
                    addr: c.addr,
                    kind: crate::types::PeerKind::BitTorrent,
                    url: None,
                    peer_id: w.peer_id(),
                    client: w
                        .peer_id()
                        .and_then(|p| lt_core::identify_client(&p))
                        .map_or_else(String::new, |ci| ci.to_string()),
                    outgoing: c.outgoing,
                    encrypted: c.encrypted,
                    utp: c.utp,
                    ssl: c.ssl.is_some(),
                    choked: w.am_choking(),
                    remote_choked: w.peer_choking(),
                    interesting: w.am_interested(),
                    remote_interested: w.peer_interested(),
                    seed: c.seed,
                    snubbed: w.is_snubbed(),
                    on_parole: c.on_parole,
                    optimistic_unchoke: c.optimistic,
                    payload_down_speed: c.down.rate(),
                    payload_up_speed: c.up.rate(),
                    total_download: c.down.total(),
                    total_upload: c.up.total(),
                    download_queue_length: w.outstanding_requests().count(),
                    upload_queue_length: w.pending_peer_requests().count(),
                    pieces,
                    hashfails: c.hashfails,
                    progress,
                })
            })
            .chain(
                t.web
                    .iter()
                    .filter(|w| !w.requests.is_empty())
                    .map(|w| PeerInfo {
                        addr: std::net::SocketAddr::from(([0, 0, 0, 0], 0)),
                        kind: match w.seed.kind {
                            lt_metainfo::WebSeedKind::Url => crate::types::PeerKind::UrlSeed,
                            lt_metainfo::WebSeedKind::Http => crate::types::PeerKind::HttpSeed,
                        },
                        url: Some(w.seed.url.clone()),
                        peer_id: None,
                        client: String::new(),
                        outgoing: true,
                        encrypted: w.seed.url.starts_with("https:"),
                        utp: false,
                        ssl: false,
                        choked: true,
                        remote_choked: false,
                        interesting: true,
                        remote_interested: false,
                        seed: true,
                        snubbed: false,
                        on_parole: false,
                        optimistic_unchoke: false,
                        payload_down_speed: w.down.rate(),
                        payload_up_speed: 0,
                        total_download: w.down.total(),
                        total_upload: 0,
                        download_queue_length: w.requests.iter().map(|r| r.blocks.len()).sum(),
                        upload_queue_length: 0,
                        pieces: None,
                        hashfails: w.hashfails,
                        progress: 1.0,
                    }),
            )
            .collect()
    }

    /// Pieces being downloaded (the manual's `get_download_queue`).
    #[must_use]
    pub fn download_queue(&self, id: TorrentId) -> Vec<lt_picker::PartialPiece> {
        self.torrents
            .get(&id)
            .map(|t| t.picker.download_queue())
            .unwrap_or_default()
    }

    /// Bytes of each file that are in verified pieces (the manual's `file_progress`).
    #[must_use]
    pub fn file_progress(&self, id: TorrentId) -> Vec<u64> {
        let Some(t) = self.torrents.get(&id) else {
            return Vec::new();
        };
        let files = t.info.files();
        let mut out = vec![0u64; files.files().len()];
        for p in t.have.iter_ones() {
            let piece = PieceIndex::new(u32::try_from(p).unwrap_or(u32::MAX));
            let size = files.piece_size(piece);
            for slice in files.map_block(piece, 0, size) {
                if let Some(slot) = out.get_mut(slice.file.as_usize()) {
                    *slot += slice.size;
                }
            }
        }
        out
    }
}
