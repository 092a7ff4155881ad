//! Disk job completions: checks, written and verified pieces, reads; smart ban.

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use lt_core::{Bitfield, PieceIndex};
use lt_wire::BlockRequest;
use tracing::debug;

use crate::alert::Alert;
use crate::torrent::{PeerEntry, PeerSource};
use crate::{
    ConnId, DisconnectReason, DiskDone, DiskError, DiskErrorKind, TorrentId, TorrentState,
};

use super::Engine;

impl Engine {
    /// A disk job finished.
    pub(super) fn disk_done(&mut self, now: Instant, done: DiskDone) {
        match done {
            DiskDone::Checked { torrent, result } => match result {
                Ok(have) => self.apply_check(now, torrent, &have),
                Err(e) => {
                    if let Some(t) = self.torrents.get_mut(&torrent) {
                        t.error = Some(e.message.clone());
                        t.paused = true;
                        self.alerts.push(Alert::FileError { torrent, error: e });
                    }
                }
            },
            DiskDone::PieceWritten {
                torrent,
                piece,
                passed,
                error,
            } => self.piece_written(now, torrent, piece, passed, error),
            DiskDone::BlocksWritten {
                torrent,
                piece,
                error,
            } => {
                let failed = error.is_some();
                if let Some(error) = error {
                    self.write_failed(now, torrent, error);
                }
                self.blocks_written(now, torrent, piece, failed);
            }
            DiskDone::Read {
                torrent,
                conn,
                request,
                result,
            } => self.read_done(now, torrent, conn, request, result),
            DiskDone::Verified { torrent, piece, ok } => {
                self.piece_verified(now, torrent, piece, ok)
            }
            DiskDone::PieceRead {
                torrent,
                piece,
                result,
            } => self.alerts.push(Alert::ReadPiece {
                torrent,
                piece,
                data: result,
            }),
            DiskDone::Moved { torrent, result } => match result {
                Ok(path) => self.alerts.push(Alert::StorageMoved { torrent, path }),
                Err(error) => self
                    .alerts
                    .push(Alert::StorageMovedFailed { torrent, error }),
            },
            DiskDone::Renamed {
                torrent,
                file,
                result,
            } => match result {
                Ok(name) => self.alerts.push(Alert::FileRenamed {
                    torrent,
                    file,
                    name,
                }),
                Err(error) => self.alerts.push(Alert::FileRenameFailed {
                    torrent,
                    file,
                    error,
                }),
            },
        }
    }

    pub(super) fn apply_check(&mut self, now: Instant, id: TorrentId, found: &Bitfield) {
        let Some(t) = self.torrents.get_mut(&id) else {
            return;
        };
        let n = t.have.len();
        for p in 0..n {
            let piece = PieceIndex::new(u32::try_from(p).unwrap_or(u32::MAX));
            let has = found.len() == n && found.get(p);
            if has && !t.have.get(p) {
                let _ = t.picker.set_have(piece);
                t.have.set(p);
            } else if !has && t.have.get(p) {
                let _ = t.picker.clear_have(piece);
                t.have.clear(p);
            }
        }
        let prev = t.state;
        t.state = t.transfer_state();
        if t.is_seed() && !t.paused {
            t.seeding_since.get_or_insert(now);
        }
        if prev != t.state {
            self.alerts.push(Alert::StateChanged {
                torrent: id,
                prev,
                state: t.state,
            });
        }
        let pieces = u32::try_from(t.have.count_ones()).unwrap_or(u32::MAX);
        self.alerts.push(Alert::TorrentChecked {
            torrent: id,
            pieces,
        });
        self.queue_dirty = true;
        self.pull_for_torrent(now, id);
        // Web seeds (and peers that connected while it checked) start now, not a tick later.
        self.fill_torrent(now, id);
    }

    pub(super) fn piece_written(
        &mut self,
        now: Instant,
        id: TorrentId,
        piece: PieceIndex,
        passed: bool,
        error: Option<DiskError>,
    ) {
        let smart_ban = self.settings.smart_ban;
        let parole = self.settings.use_parole_mode;
        let Some(t) = self.torrents.get_mut(&id) else {
            return;
        };
        let size = t.piece_size(piece.get());
        t.disk_bytes = t.disk_bytes.saturating_sub(size);
        let contributors = t.writing.remove(&piece.get()).unwrap_or_default();
        if !passed {
            debug!(torrent = %id, piece = piece.get(), senders = contributors.len(), "hash failed");
            t.total_failed += size;
            let _ = t.picker.piece_failed(piece);
            self.alerts.push(Alert::HashFailed { torrent: id, piece });
            let (web, contributors): (Vec<_>, Vec<_>) =
                contributors.into_iter().partition(|c| self.is_web(c.0));
            let alone = {
                let mut addrs: Vec<SocketAddr> = contributors.iter().map(|c| c.1).collect();
                addrs.sort_unstable();
                addrs.dedup();
                addrs.len() + web.len() == 1
            };
            for &(seed, _) in &web {
                self.web_hash_failed(id, seed, alone);
            }
            let mut to_ban = Vec::new();
            for &(cid, addr) in &contributors {
                if let Some(c) = self.conns.get_mut(&cid) {
                    c.hashfails += 1;
                    c.on_parole |= parole;
                    if smart_ban && (alone || c.hashfails >= 2) {
                        to_ban.push((Some(cid), addr));
                    }
                } else if smart_ban && alone {
                    to_ban.push((None, addr));
                }
            }
            to_ban.sort_unstable();
            to_ban.dedup();
            for (cid, addr) in to_ban {
                self.ban(now, id, cid, addr);
            }
        } else if let Some(error) = error {
            let _ = t.picker.piece_failed(piece);
            self.write_failed(now, id, error);
        } else {
            let _ = t.picker.piece_passed(piece);
            t.have.set(piece.as_usize());
            if t.error.is_some() && t.disk_upload_mode_until.is_none() {
                t.error = None;
            }
            for &(cid, _) in &contributors {
                if let Some(c) = self.conns.get_mut(&cid) {
                    c.on_parole = false;
                }
            }
            self.alerts
                .push(Alert::PieceFinished { torrent: id, piece });
            self.files_completed(id, piece);
            for cid in self.torrent_conns(id) {
                if let Some(w) = self.conns.get_mut(&cid).and_then(|c| c.wire.as_mut()) {
                    w.have(now, piece);
                }
                self.flush(cid);
            }
            self.check_finished(now, id);
            self.update_all_interest(now, id);
        }
        self.fill_torrent(now, id);
    }

    /// Posts [`Alert::FileCompleted`] for each file of `piece` (just passed) whose pieces
    /// are all here now.
    fn files_completed(&mut self, id: TorrentId, piece: PieceIndex) {
        let Some(t) = self.torrents.get(&id) else {
            return;
        };
        let fs = t.info.files();
        let size = fs.piece_size(piece);
        let mut files: Vec<usize> = fs
            .map_block(piece, 0, size)
            .iter()
            .map(|s| s.file.as_usize())
            .collect();
        files.dedup();
        for f in files {
            let file = lt_core::FileIndex::new(u32::try_from(f).unwrap_or(u32::MAX));
            if fs.file(file).is_none_or(lt_metainfo::FileEntry::is_pad) {
                continue;
            }
            let range = fs.file_piece_range(file);
            if range.clone().all(|p| t.have.get(p as usize)) {
                self.alerts.push(Alert::FileCompleted { torrent: id, file });
            }
        }
    }

    /// Writing failed: the torrent shows the error, and goes to upload mode for
    /// `optimistic_disk_retry` when the disk is full or writing is not allowed.
    fn write_failed(&mut self, now: Instant, id: TorrentId, error: DiskError) {
        let retry = self.settings.optimistic_disk_retry;
        let Some(t) = self.torrents.get_mut(&id) else {
            return;
        };
        t.error = Some(error.message.clone());
        let kind = error.kind;
        self.alerts.push(Alert::FileError { torrent: id, error });
        if kind == DiskErrorKind::NoSpaceOrDenied && t.disk_upload_mode_until.is_none() {
            t.disk_upload_mode_until = Some(now + retry);
            self.alerts.push(Alert::UploadMode {
                torrent: id,
                enabled: true,
            });
            self.update_all_interest(now, id);
        }
    }

    /// A seed-mode piece was hashed: serve the requests that waited for it, or drop the
    /// piece (it is downloaded again) when it did not match.
    pub(super) fn piece_verified(
        &mut self,
        now: Instant,
        id: TorrentId,
        piece: PieceIndex,
        ok: bool,
    ) {
        let Some(t) = self.torrents.get_mut(&id) else {
            return;
        };
        let waiting = t.verify_wait.remove(&piece.get()).unwrap_or_default();
        if let Some(u) = &mut t.unverified {
            u.clear(piece.as_usize());
        }
        if !ok {
            t.have.clear(piece.as_usize());
            let _ = t.picker.clear_have(piece);
            let prev = t.state;
            t.state = t.transfer_state();
            self.alerts.push(Alert::HashFailed { torrent: id, piece });
            if prev != t.state {
                self.alerts.push(Alert::StateChanged {
                    torrent: id,
                    prev,
                    state: t.state,
                });
            }
        }
        for (cid, req) in waiting {
            if ok {
                self.on_request(now, cid, req);
            } else if let Some(w) = self.conns.get_mut(&cid).and_then(|c| c.wire.as_mut()) {
                w.reject(now, req);
                self.flush(cid);
            }
        }
        if !ok {
            self.end_super_seed(now, id);
            self.update_all_interest(now, id);
        }
    }

    pub(super) fn check_finished(&mut self, now: Instant, id: TorrentId) {
        let Some(t) = self.torrents.get_mut(&id) else {
            return;
        };
        if !t.is_finished() || matches!(t.state, TorrentState::Finished | TorrentState::Seeding) {
            return;
        }
        let prev = t.state;
        t.state = t.transfer_state();
        if t.is_seed() {
            t.seeding_since.get_or_insert(now);
            t.trackers.force_announce(now);
        }
        self.alerts.push(Alert::StateChanged {
            torrent: id,
            prev,
            state: t.state,
        });
        self.alerts.push(Alert::TorrentFinished { torrent: id });
        self.queue_dirty = true;
        if t.is_seed() && self.settings.close_redundant_connections {
            let seeds: Vec<ConnId> = t
                .conns
                .iter()
                .copied()
                .filter(|c| self.conns.get(c).is_some_and(|c| c.seed))
                .collect();
            for c in seeds {
                self.close(now, c, DisconnectReason::Redundant);
            }
        }
        self.stop_web(id);
        self.timers.pull_all(now);
    }

    pub(super) fn ban(
        &mut self,
        now: Instant,
        id: TorrentId,
        conn: Option<ConnId>,
        addr: SocketAddr,
    ) {
        let Some(t) = self.torrents.get_mut(&id) else {
            return;
        };
        let entry = conn
            .and_then(|c| self.conns.get(&c))
            .and_then(|c| c.entry)
            .unwrap_or(addr);
        t.peers
            .entry(entry)
            .or_insert_with(|| PeerEntry::new(PeerSource::Incoming))
            .banned = true;
        // A peer is counted (and announced) once, however many of its pieces failed.
        let new_entry = self.banned.insert(entry);
        if self.banned.insert(addr) || new_entry {
            t.num_banned += 1;
            debug!(torrent = %id, peer = %addr, "banned for corrupt data");
            self.alerts.push(Alert::PeerBanned { torrent: id, addr });
        }
        if let Some(c) = conn {
            self.close(now, c, DisconnectReason::Banned);
        }
    }

    pub(super) fn read_done(
        &mut self,
        now: Instant,
        id: TorrentId,
        cid: ConnId,
        req: BlockRequest,
        result: Result<Bytes, DiskError>,
    ) {
        let Some(c) = self.conns.get_mut(&cid) else {
            return;
        };
        c.pending_reads = c.pending_reads.saturating_sub(1);
        let Some(w) = c.wire.as_mut() else {
            return;
        };
        match result {
            Ok(data) => {
                let len = data.len() as u64;
                if w.send_block(now, req.piece, req.begin, data) {
                    c.up.add(len);
                    if let Some(t) = self.torrents.get_mut(&id) {
                        t.total_upload += len;
                        t.up.add(len);
                    }
                }
            }
            Err(e) => {
                w.reject(now, req);
                self.alerts.push(Alert::FileError {
                    torrent: id,
                    error: e,
                });
            }
        }
        // The read no longer counts against the send buffer: requests held for room are
        // served now, since no write may follow to report (a cancelled request sends nothing).
        self.serve_held(cid);
        self.flush(cid);
    }
}
