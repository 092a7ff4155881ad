//! Adding, removing, pausing and configuring torrents (the torrent_handle commands).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lt_core::{Bitfield, PieceIndex, Sha1Hash};
use lt_metainfo::ResumeData;
use lt_picker::{Layout, PiecePicker, Priority};
use lt_tracker::TrackerList;
use lt_wire::PieceLayout;
use rand_core::RngCore as _;
use tracing::debug;

use crate::alert::Alert;
use crate::rate::{Bucket, Rate};
use crate::torrent::{PeerEntry, PeerSource, Torrent, apply_file_priorities};
use crate::{
    Action, AddError, AddTorrent, DisconnectReason, DiskError, DiskErrorKind, DiskJob, TorrentId,
    TorrentState,
};

use super::Engine;
use super::timers::Timer;

/// Least time between two runs of the queue, announces or dialling that added or checked
/// torrents bring forward.
const PULL_SPACING: Duration = Duration::from_millis(50);

impl Engine {
    /// Adds peers a DHT lookup found to a torrent's list.
    pub(super) fn add_peers(&mut self, now: Instant, id: TorrentId, peers: &[SocketAddr]) {
        let max = self.settings.max_peerlist_size;
        let listen_port = self.listen_port;
        let Some(t) = self.torrents.get_mut(&id) else {
            return;
        };
        for &a in peers {
            if t.peers.len() >= max {
                break;
            }
            // lt-dht keeps loopback peers only from nodes on this machine.
            if !crate::torrent::listable(a, listen_port, true) {
                continue;
            }
            t.peers
                .entry(a)
                .or_insert_with(|| PeerEntry::new(PeerSource::Dht));
        }
        self.timers.pull(Timer::Connect, now);
    }

    /// A peer announced a torrent by local service discovery (BEP 14): if the torrent is
    /// ours and public, the peer joins its list ([`Alert::LsdPeer`]).
    pub(super) fn add_lsd_peer(&mut self, now: Instant, info_hash: &Sha1Hash, addr: SocketAddr) {
        // BEP 14 is for the local network: an announce from anywhere else (a unicast to port
        // 6771 from the internet) names no peer worth dialling.
        if !crate::rate::is_local_network(addr.ip()) {
            debug!(peer = %addr, "LSD announce from outside the local network ignored");
            return;
        }
        let max = self.settings.max_peerlist_size;
        let Some(id) = self.find_by_wire_hash(info_hash) else {
            return;
        };
        let Some(t) = self.torrents.get_mut(&id) else {
            return;
        };
        if (t.has_metadata && t.info.is_private())
            || t.peers.len() >= max
            || !crate::torrent::listable(addr, self.listen_port, true)
        {
            return;
        }
        let e = t
            .peers
            .entry(addr)
            .or_insert_with(|| PeerEntry::new(PeerSource::Lsd));
        e.next_try = None;
        self.alerts.push(Alert::LsdPeer { torrent: id, addr });
        self.timers.pull(Timer::Connect, now);
    }

    /// Adds a torrent. It starts checking its files (or, in seed mode, seeding).
    ///
    /// # Errors
    /// [`AddError`].
    pub fn add_torrent(
        &mut self,
        now: Instant,
        mut params: AddTorrent,
    ) -> Result<TorrentId, AddError> {
        params.reconcile_resume();
        params.apply_resume();
        let info_hash = params.info_hash();
        let has_metadata = params.metadata_for.is_none();
        if let Some(&id) = info_hash
            .wire_hashes()
            .find_map(|h| self.by_wire_hash.get(&h))
        {
            if params.flags.duplicate_is_error {
                return Err(AddError::Duplicate(id));
            }
            return Ok(id);
        }
        let info = params.info;
        let layout = Layout::new(info.total_size(), info.piece_length(), lt_core::BLOCK_SIZE)
            .map_err(AddError::BadLayout)?;
        let mut seed = [0u8; 32];
        self.rng.fill_bytes(&mut seed);
        let mut picker = PiecePicker::new(
            layout,
            lt_picker::Config {
                rng_seed: Some(seed),
                sequential: params.flags.sequential_download,
                ..lt_picker::Config::default()
            },
        );
        let num_files = info.files().files().len();
        let mut file_priorities = params.file_priorities.clone();
        file_priorities.resize(num_files, 1);
        if file_priorities.iter().any(|&p| p != 1) {
            apply_file_priorities(&mut picker, &info, &file_priorities);
        }
        if has_metadata {
            for (i, &p) in params.piece_priorities.iter().enumerate() {
                let Ok(i) = u32::try_from(i) else { break };
                if let Ok(p) = Priority::new(p.min(7)) {
                    let _ = picker.set_piece_priority(PieceIndex::new(i), p);
                }
            }
        }
        let tiers = tracker_tiers(&info, params.trackers, params.resume.as_ref());
        let mut seed2 = [0u8; 32];
        self.rng.fill_bytes(&mut seed2);
        let trackers = TrackerList::new(&tiers, seed2);
        let id = TorrentId(self.next_torrent);
        self.next_torrent += 1;
        let n = info.num_pieces() as usize;
        let wire_layout = PieceLayout {
            num_pieces: info.num_pieces(),
            piece_length: info.piece_length(),
            total_length: info.total_size(),
        };
        let peers = initial_peers(&params.peers, params.resume.as_ref());
        let (prior_download, prior_upload) = params.resume.as_ref().map_or((0, 0), |r| {
            (
                u64::try_from(r.total_downloaded).unwrap_or(0),
                u64::try_from(r.total_uploaded).unwrap_or(0),
            )
        });
        // Times from the resume data go on counting from where they were.
        let secs = |v: i64| Duration::from_secs(u64::try_from(v).unwrap_or(0));
        let (active_time, seeding_time) = params
            .resume
            .as_ref()
            .map_or((Duration::ZERO, Duration::ZERO), |r| {
                (secs(r.active_time), secs(r.seeding_time))
            });
        let state = if !has_metadata {
            TorrentState::DownloadingMetadata
        } else if params.flags.seed_mode {
            TorrentState::Seeding
        } else if params.resume.is_some() {
            TorrentState::CheckingResumeData
        } else {
            TorrentState::CheckingFiles
        };
        let t = Torrent {
            wire_hash: info_hash.best(),
            info_hash,
            layout,
            wire_layout,
            picker,
            have: Bitfield::new(n),
            state,
            paused: params.flags.paused,
            user_upload_mode: params.flags.upload_mode,
            disk_upload_mode_until: None,
            error: None,
            trackers,
            announcing: None,
            last_tracker: None,
            num_complete: None,
            num_incomplete: None,
            peers,
            conns: BTreeSet::new(),
            parts: BTreeMap::new(),
            held_bytes: 0,
            stale_writes: BTreeMap::new(),
            writing: BTreeMap::new(),
            disk_bytes: 0,
            file_priorities,
            max_connections: params
                .max_connections
                .unwrap_or(self.settings.max_connections_per_torrent),
            max_uploads: params.max_uploads,
            up_bucket: Bucket::new(params.upload_limit),
            down_bucket: Bucket::new(params.download_limit),
            pending_reads: VecDeque::new(),
            down: Rate::default(),
            up: Rate::default(),
            total_download: 0,
            total_upload: 0,
            total_failed: 0,
            total_redundant: 0,
            prior_download,
            prior_upload,
            stats_reported: (0, 0),
            sequential: params.flags.sequential_download,
            super_seeding: params.flags.super_seeding,
            share_mode: params.flags.share_mode,
            share_applied: false,
            auto_managed: params.flags.auto_managed,
            tracker_key: self.rng.next_u32(),
            active_since: (!params.flags.paused).then_some(now),
            active_time,
            seeding_since: None,
            seeding_time,
            num_banned: 0,
            apply_ip_filter: params.apply_ip_filter,
            unverified: None,
            verify_wait: BTreeMap::new(),
            queue_pos: u32::try_from(self.torrents.len()).unwrap_or(u32::MAX),
            has_metadata,
            meta: crate::torrent::MetaFetch::default(),
            name_hint: params.name.clone(),
            next_dht: None,
            dht_in_flight: false,
            next_lsd: None,
            web: Vec::new(),
            ssl_cert_set: false,
            info,
        };
        let name = if has_metadata {
            t.info.name().to_owned()
        } else {
            params.name.unwrap_or_else(|| info_hash.best().to_hex())
        };
        self.index_torrent(id, &info_hash);
        self.torrents.insert(id, Box::new(t));
        let mut web = params.web_seeds.clone();
        if let Some(r) = &params.resume {
            let kinds = [
                (&r.url_list, lt_metainfo::WebSeedKind::Url),
                (&r.httpseeds, lt_metainfo::WebSeedKind::Http),
            ];
            for (urls, kind) in kinds {
                web.extend(urls.iter().map(|url| lt_metainfo::WebSeed {
                    url: url.clone(),
                    kind,
                }));
            }
        }
        self.add_web_seeds(now, id, web);
        self.alerts.push(Alert::TorrentAdded {
            torrent: id,
            name,
            info_hash,
        });
        if has_metadata && self.torrents.get(&id).is_some_and(|t| t.is_ssl()) {
            self.alerts.push(Alert::TorrentNeedCert { torrent: id });
        }
        if !has_metadata {
            // The metadata comes from peers first.
        } else if params.flags.seed_mode {
            let all = Bitfield::full(n);
            if let Some(t) = self.torrents.get_mut(&id) {
                // Seed mode: trusted now, each piece hashed the first time a peer asks.
                t.unverified = Some(Bitfield::full(n));
            }
            self.apply_check(now, id, &all);
        } else {
            self.actions.push_back(Action::Disk(DiskJob::Check {
                torrent: id,
                resume: params.resume.map(Box::new),
            }));
        }
        self.queue_dirty = true;
        self.pull_for_torrent(now, id);
        Ok(id)
    }

    /// Makes the queue, announces and dialling due after a torrent changed (added, checked):
    /// at `now`, or [`PULL_SPACING`] after they last ran when that is later, since each
    /// runs over every torrent and adding ten thousand torrents in a row would run them ten
    /// thousand times. The housekeeping too when the torrent has connections whose
    /// interest may have changed (not otherwise: it runs over every torrent and connection).
    pub(super) fn pull_for_torrent(&mut self, now: Instant, id: TorrentId) {
        for timer in [Timer::Queue, Timer::Announce, Timer::Connect] {
            self.timers.pull_spaced(timer, now, PULL_SPACING);
        }
        if self.torrents.get(&id).is_some_and(|t| !t.conns.is_empty()) {
            self.timers.pull(Timer::Housekeeping, now);
        }
    }

    /// An SSL torrent's certificate is in place (the driver holds it and the TLS
    /// configuration built from it): from now on the torrent dials its peers, over TLS,
    /// and takes the TLS connections that name it. Returns false when `id` is not an SSL
    /// torrent (or not a torrent).
    pub fn set_ssl_certificate(&mut self, now: Instant, id: TorrentId) -> bool {
        let Some(t) = self.torrents.get_mut(&id).filter(|t| t.is_ssl()) else {
            return false;
        };
        t.ssl_cert_set = true;
        self.pull_for_torrent(now, id);
        true
    }

    /// Removes a torrent: its connections close, `stopped` is announced, and the driver
    /// drops its storage (deleting the files if asked).
    pub fn remove_torrent(&mut self, now: Instant, id: TorrentId, delete_files: bool) {
        if !self.torrents.contains_key(&id) {
            return;
        }
        self.announce_stopped(now, id);
        self.close_torrent_conns(now, id, &DisconnectReason::Closed);
        self.stop_web(id);
        let Some(t) = self.torrents.remove(&id) else {
            return;
        };
        self.gone.payload_down += t.total_download;
        self.gone.payload_up += t.total_upload;
        self.gone.failed += t.total_failed;
        self.gone.redundant += t.total_redundant;
        for w in &t.web {
            self.web_ids.remove(&w.id);
        }
        self.unindex_torrent(&t.info_hash);
        let order = self.queue_order();
        self.set_queue(now, &order);
        self.actions.push_back(Action::RemoveStorage {
            torrent: id,
            delete_files,
            info_hash: t.info_hash,
        });
        self.alerts.push(Alert::TorrentRemoved {
            torrent: id,
            info_hash: t.info_hash,
        });
    }

    /// Pauses a torrent: its connections close and `stopped` is announced. The torrent
    /// stops being auto-managed, so the queue does not resume it (libtorrent 1.x's rule;
    /// [`set_auto_managed`](Self::set_auto_managed) hands it back).
    pub fn pause_torrent(&mut self, now: Instant, id: TorrentId) {
        if let Some(t) = self.torrents.get_mut(&id) {
            t.auto_managed = false;
        }
        self.pause_inner(now, id);
        self.queue_dirty = true;
    }

    pub(super) fn pause_inner(&mut self, now: Instant, id: TorrentId) {
        let Some(t) = self.torrents.get_mut(&id) else {
            return;
        };
        if t.paused {
            return;
        }
        t.paused = true;
        if let Some(since) = t.active_since.take() {
            t.active_time += now.saturating_duration_since(since);
        }
        if let Some(since) = t.seeding_since.take() {
            t.seeding_time += now.saturating_duration_since(since);
        }
        self.announce_stopped(now, id);
        self.close_torrent_conns(now, id, &DisconnectReason::Closed);
        self.alerts.push(Alert::TorrentPaused { torrent: id });
    }

    /// Resumes a paused torrent.
    pub fn resume_torrent(&mut self, now: Instant, id: TorrentId) {
        self.resume_inner(now, id);
        self.queue_dirty = true;
    }

    pub(super) fn resume_inner(&mut self, now: Instant, id: TorrentId) {
        let Some(t) = self.torrents.get_mut(&id) else {
            return;
        };
        if !t.paused {
            return;
        }
        t.paused = false;
        t.active_since = Some(now);
        if t.is_seed() {
            t.seeding_since = Some(now);
        }
        t.trackers.force_announce(now);
        for e in t.peers.values_mut() {
            e.next_try = None;
        }
        self.alerts.push(Alert::TorrentResumed { torrent: id });
        self.timers.pull(Timer::Announce, now);
        self.timers.pull(Timer::Connect, now);
    }

    /// Adds a peer to a torrent's list and dials it soon (the manual's `connect_peer`).
    pub fn connect_peer(&mut self, now: Instant, id: TorrentId, addr: SocketAddr) {
        if let Some(t) = self.torrents.get_mut(&id) {
            let e = t
                .peers
                .entry(addr)
                .or_insert_with(|| PeerEntry::new(PeerSource::User));
            e.source = PeerSource::User;
            e.failcount = 0;
            e.next_try = None;
            self.timers.pull(Timer::Connect, now);
        }
    }

    /// Hashes every piece again (the manual's `force_recheck`).
    pub fn force_recheck(&mut self, now: Instant, id: TorrentId) {
        if self.torrents.get(&id).is_none_or(|t| !t.has_metadata) {
            return;
        }
        self.close_torrent_conns(now, id, &DisconnectReason::Closed);
        if let Some(t) = self.torrents.get_mut(&id) {
            let prev = t.state;
            t.state = TorrentState::CheckingFiles;
            t.drop_parts();
            t.error = None;
            t.unverified = None;
            self.alerts.push(Alert::StateChanged {
                torrent: id,
                prev,
                state: t.state,
            });
            self.actions.push_back(Action::Disk(DiskJob::Check {
                torrent: id,
                resume: None,
            }));
        }
    }

    /// Downloads pieces in order, or not.
    pub fn set_sequential_download(&mut self, id: TorrentId, on: bool) {
        if let Some(t) = self.torrents.get_mut(&id) {
            t.sequential = on;
            t.picker.set_sequential(on);
        }
    }

    /// Upload mode: request nothing, only seed what we have.
    pub fn set_upload_mode(&mut self, now: Instant, id: TorrentId, on: bool) {
        if let Some(t) = self.torrents.get_mut(&id) {
            t.user_upload_mode = on;
            if !on {
                t.disk_upload_mode_until = None;
            }
            self.alerts.push(Alert::UploadMode {
                torrent: id,
                enabled: on,
            });
            self.update_all_interest(now, id);
        }
    }

    /// Sets a torrent's upload limit in bytes per second (0: none).
    pub fn set_upload_limit(&mut self, id: TorrentId, limit: u64) {
        if let Some(t) = self.torrents.get_mut(&id) {
            t.up_bucket.set_rate(limit);
        }
    }

    /// Sets a torrent's download limit in bytes per second (0: none).
    pub fn set_download_limit(&mut self, id: TorrentId, limit: u64) {
        if let Some(t) = self.torrents.get_mut(&id) {
            t.down_bucket.set_rate(limit);
        }
    }

    /// A torrent's upload and download limits.
    #[must_use]
    pub fn limits(&self, id: TorrentId) -> Option<(u64, u64)> {
        self.torrents
            .get(&id)
            .map(|t| (t.up_bucket.rate(), t.down_bucket.rate()))
    }

    /// Sets a torrent's connection limit.
    pub fn set_max_connections(&mut self, id: TorrentId, max: usize) {
        if let Some(t) = self.torrents.get_mut(&id) {
            t.max_connections = max.max(2);
        }
    }

    /// Sets a torrent's unchoke limit (`None`: only the session's).
    pub fn set_max_uploads(&mut self, id: TorrentId, max: Option<usize>) {
        if let Some(t) = self.torrents.get_mut(&id) {
            t.max_uploads = max;
        }
    }

    /// Sets a piece's priority (0 to 7).
    pub fn set_piece_priority(&mut self, now: Instant, id: TorrentId, piece: PieceIndex, prio: u8) {
        if let Some(t) = self.torrents.get_mut(&id) {
            let p = Priority::new(prio.min(7)).unwrap_or(Priority::NORMAL);
            let _ = t.picker.set_piece_priority(piece, p);
            self.after_priority_change(now, id);
        }
    }

    /// Every piece's priority.
    #[must_use]
    pub fn piece_priorities(&self, id: TorrentId) -> Vec<u8> {
        self.torrents
            .get(&id)
            .map(|t| {
                t.picker
                    .piece_priorities()
                    .iter()
                    .map(|p| p.get())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Sets every file's priority (0 to 7); files past the list keep theirs.
    pub fn prioritize_files(&mut self, now: Instant, id: TorrentId, priorities: &[u8]) {
        let Some(t) = self.torrents.get_mut(&id) else {
            return;
        };
        for (i, &p) in priorities.iter().enumerate() {
            if let Some(slot) = t.file_priorities.get_mut(i)
                && *slot != p.min(7)
            {
                *slot = p.min(7);
                self.actions.push_back(Action::Disk(DiskJob::FilePriority {
                    torrent: id,
                    file: u32::try_from(i).unwrap_or(u32::MAX),
                    priority: p.min(7),
                }));
            }
        }
        apply_file_priorities(&mut t.picker, &t.info, &t.file_priorities);
        self.after_priority_change(now, id);
    }

    /// Every file's priority.
    #[must_use]
    pub fn file_priorities(&self, id: TorrentId) -> Vec<u8> {
        self.torrents
            .get(&id)
            .map(|t| t.file_priorities.clone())
            .unwrap_or_default()
    }

    pub(super) fn after_priority_change(&mut self, now: Instant, id: TorrentId) {
        self.update_all_interest(now, id);
        self.check_finished(now, id);
        if let Some(t) = self.torrents.get_mut(&id)
            && !t.is_finished()
            && matches!(t.state, TorrentState::Finished)
        {
            let prev = t.state;
            t.state = TorrentState::Downloading;
            self.alerts.push(Alert::StateChanged {
                torrent: id,
                prev,
                state: TorrentState::Downloading,
            });
        }
        self.fill_torrent(now, id);
    }

    /// Asks for `piece` by `deadline` (the manual's `set_piece_deadline`); with
    /// `alert_when_available`, a [`Alert::ReadPiece`] follows once it is on disk.
    pub fn set_piece_deadline(
        &mut self,
        now: Instant,
        id: TorrentId,
        piece: PieceIndex,
        deadline: Instant,
    ) {
        if let Some(t) = self.torrents.get_mut(&id) {
            let _ = t.picker.set_piece_deadline(piece, deadline);
            self.fill_torrent(now, id);
        }
    }

    /// Forgets a piece's deadline.
    pub fn reset_piece_deadline(&mut self, id: TorrentId, piece: PieceIndex) {
        if let Some(t) = self.torrents.get_mut(&id) {
            let _ = t.picker.reset_piece_deadline(piece);
        }
    }

    /// Whether we have `piece`.
    #[must_use]
    pub fn have_piece(&self, id: TorrentId, piece: PieceIndex) -> bool {
        self.torrents
            .get(&id)
            .is_some_and(|t| t.have.get(piece.as_usize()))
    }

    /// Reads a piece from disk; [`Alert::ReadPiece`] brings it (or the error).
    pub fn read_piece(&mut self, id: TorrentId, piece: PieceIndex) {
        let Some(t) = self.torrents.get(&id) else {
            return;
        };
        if !t.have.get(piece.as_usize()) {
            self.alerts.push(Alert::ReadPiece {
                torrent: id,
                piece,
                data: Err(DiskError::new(
                    DiskErrorKind::NotFound,
                    "we do not have this piece",
                )),
            });
            return;
        }
        self.actions
            .push_back(Action::Disk(DiskJob::ReadPiece { torrent: id, piece }));
    }

    /// Moves the files; [`Alert::StorageMoved`] or [`Alert::StorageMovedFailed`] follows.
    pub fn move_storage(&mut self, id: TorrentId, path: String) {
        if self.torrents.contains_key(&id) {
            self.actions
                .push_back(Action::Disk(DiskJob::Move { torrent: id, path }));
        }
    }

    /// Renames a file; [`Alert::FileRenamed`] or [`Alert::FileRenameFailed`] follows.
    pub fn rename_file(&mut self, id: TorrentId, file: u32, name: String) {
        if self.torrents.contains_key(&id) {
            self.actions.push_back(Action::Disk(DiskJob::Rename {
                torrent: id,
                file,
                name,
            }));
        }
    }

    /// Saves resume data; [`Alert::SaveResumeData`] follows once the files are flushed.
    pub fn save_resume_data(&mut self, now: Instant, id: TorrentId) {
        let Some(data) = self.resume_data(now, id) else {
            if self.torrents.contains_key(&id) {
                self.alerts.push(Alert::SaveResumeDataFailed {
                    torrent: id,
                    error: "the metadata is not known yet".into(),
                });
            }
            return;
        };
        self.saved_resume.insert(id, resume_fingerprint(&data));
        self.actions.push_back(Action::Disk(DiskJob::SaveResume {
            torrent: id,
            data: Box::new(data),
        }));
    }

    /// Whether the torrent's resume data would say something new since it was last saved
    /// (the manual's `need_save_resume_data`): pieces, priorities, flags, limits, trackers
    /// or web seeds changed, or it was never saved. Peers found and bytes moved alone do
    /// not count, as in libtorrent.
    #[must_use]
    pub fn need_save_resume_data(&self, now: Instant, id: TorrentId) -> bool {
        self.resume_data(now, id)
            .is_some_and(|d| self.saved_resume.get(&id) != Some(&resume_fingerprint(&d)))
    }

    /// Replaces the torrent's trackers with `tiers` (the manual's `replace_trackers`); an
    /// announce in flight is forgotten and the new list is announced to at once.
    pub fn replace_trackers(&mut self, now: Instant, id: TorrentId, tiers: &[Vec<String>]) {
        let mut seed = [0u8; 32];
        self.rng.fill_bytes(&mut seed);
        if let Some(t) = self.torrents.get_mut(&id) {
            t.trackers = TrackerList::new(tiers, seed);
            t.announcing = None;
            self.timers.pull(Timer::Announce, now);
        }
    }

    /// Announces the torrent on the DHT now (the manual's `force_dht_announce`), when the
    /// DHT runs and the torrent is active and public.
    pub fn force_dht_announce(&mut self, now: Instant, id: TorrentId) {
        if let Some(t) = self.torrents.get_mut(&id) {
            t.next_dht = None;
            self.timers.pull(Timer::Announce, now);
        }
    }

    /// Clears the torrent's error and starts it again if the error had paused it (the
    /// manual's `clear_error`).
    pub fn clear_error(&mut self, now: Instant, id: TorrentId) {
        let Some(t) = self.torrents.get_mut(&id) else {
            return;
        };
        if t.error.take().is_some() && t.paused {
            self.resume_inner(now, id);
        }
    }

    /// Sets one file's priority (0 to 7; the manual's `file_priority(index, priority)`).
    pub fn set_file_priority(&mut self, now: Instant, id: TorrentId, file: usize, prio: u8) {
        let Some(mut all) = self.torrents.get(&id).map(|t| t.file_priorities.clone()) else {
            return;
        };
        if let Some(slot) = all.get_mut(file) {
            *slot = prio.min(7);
            self.prioritize_files(now, id, &all);
        }
    }

    /// Sets every piece's priority (0 to 7; the manual's `prioritize_pieces`); pieces past
    /// the list keep theirs.
    pub fn prioritize_pieces(&mut self, now: Instant, id: TorrentId, priorities: &[u8]) {
        let Some(t) = self.torrents.get_mut(&id) else {
            return;
        };
        for (i, &p) in priorities.iter().enumerate() {
            let (Ok(i), Ok(p)) = (u32::try_from(i), Priority::new(p.min(7))) else {
                break;
            };
            let _ = t.picker.set_piece_priority(PieceIndex::new(i), p);
        }
        self.after_priority_change(now, id);
    }

    /// How many connected peers have each piece (the manual's `piece_availability`).
    #[must_use]
    pub fn piece_availability(&self, id: TorrentId) -> Vec<u32> {
        self.torrents
            .get(&id)
            .filter(|t| t.has_metadata)
            .map(|t| {
                (0..t.info.num_pieces())
                    .map(|p| t.picker.availability(PieceIndex::new(p)))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// What of a torrent's resume data `need_save_resume_data` compares: all but the clocks,
/// the totals and the peers.
fn resume_fingerprint(data: &ResumeData) -> u64 {
    use std::hash::{Hash as _, Hasher as _};
    let mut d = data.clone();
    d.active_time = 0;
    d.seeding_time = 0;
    d.total_downloaded = 0;
    d.total_uploaded = 0;
    d.peers.clear();
    let mut h = std::hash::DefaultHasher::new();
    d.to_bytes().hash(&mut h);
    h.finish()
}

/// The torrent's tracker tiers: its own, then the ones added with it and the resume data's,
/// each a tier of its own.
fn tracker_tiers(
    info: &lt_metainfo::TorrentInfo,
    added: Vec<Vec<String>>,
    resume: Option<&ResumeData>,
) -> Vec<Vec<String>> {
    let mut tiers: Vec<Vec<String>> = Vec::new();
    for t in info.trackers() {
        let tier = usize::from(t.tier);
        if tiers.len() <= tier {
            tiers.resize(tier + 1, Vec::new());
        }
        tiers[tier].push(t.url.clone());
    }
    tiers.extend(added);
    if let Some(r) = resume {
        tiers.extend(r.trackers.iter().cloned());
    }
    tiers
}

/// The peers a torrent starts with: the user's, then the resume data's.
fn initial_peers(
    user: &[SocketAddr],
    resume: Option<&ResumeData>,
) -> BTreeMap<SocketAddr, PeerEntry> {
    let mut peers = BTreeMap::new();
    for &a in user {
        peers.insert(a, PeerEntry::new(PeerSource::User));
    }
    for &a in resume.iter().flat_map(|r| r.peers.iter()) {
        peers
            .entry(a)
            .or_insert_with(|| PeerEntry::new(PeerSource::Resume));
    }
    peers
}
