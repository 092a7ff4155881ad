//! Fetching and serving the metadata of magnet links (BEP 9).

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use lt_core::{Bitfield, Sha1Hash};
use lt_picker::{Layout, PiecePicker};
use lt_wire::{ExtensionMessage, MetadataMessage, PieceLayout};
use rand_core::RngCore as _;
use tracing::debug;

use crate::alert::Alert;
use crate::{Action, ConnId, DiskJob, TorrentId, TorrentState};

use super::Engine;
use super::conn::{Bits, Conn, METADATA_REQUEST_TIMEOUT};

impl Engine {
    pub(super) fn metadata_size_seen(&mut self, now: Instant, id: TorrentId, size: u32) {
        let Some(t) = self.torrents.get_mut(&id) else {
            return;
        };
        if t.meta.size.is_some()
            || size == 0
            || u64::from(size) > lt_wire::limits::DEFAULT_MAX_METADATA_SIZE
        {
            return;
        }
        let n = lt_wire::metadata_piece_count(size) as usize;
        t.meta.size = Some(size);
        t.meta.pieces = vec![None; n];
        t.meta.requested = vec![None; n];
        self.request_metadata(now, id);
    }

    /// Asks peers that have the metadata for pieces nobody is fetching, two at a time each.
    pub(super) fn request_metadata(&mut self, now: Instant, id: TorrentId) {
        let Some(t) = self.torrents.get_mut(&id) else {
            return;
        };
        if t.has_metadata || t.meta.size.is_none() {
            return;
        }
        let conns: Vec<ConnId> = t.conns.iter().copied().collect();
        let mut flush = Vec::new();
        for cid in conns {
            let Some(w) = self
                .conns
                .get_mut(&cid)
                .filter(|c| c.connected && c.serves_metadata)
                .and_then(|c| c.wire.as_mut())
            else {
                continue;
            };
            if w.extension_ids()
                .remote(lt_wire::Extension::Metadata)
                .is_none()
            {
                continue;
            }
            let mut asked = t
                .meta
                .requested
                .iter()
                .filter(|r| r.is_some_and(|(c, _)| c == cid))
                .count();
            for i in 0..t.meta.pieces.len() {
                if asked >= 2 {
                    break;
                }
                let stale = t.meta.requested[i].is_none_or(|(_, at)| {
                    now.saturating_duration_since(at) >= METADATA_REQUEST_TIMEOUT
                });
                if t.meta.pieces[i].is_none() && stale {
                    let piece = u32::try_from(i).unwrap_or(u32::MAX);
                    let msg = ExtensionMessage::Metadata(MetadataMessage::Request { piece });
                    if w.send_extension(now, &msg).is_ok() {
                        t.meta.requested[i] = Some((cid, now));
                        asked += 1;
                    }
                }
            }
            flush.push(cid);
        }
        for cid in flush {
            self.flush(cid);
        }
    }

    pub(super) fn on_metadata_message(
        &mut self,
        now: Instant,
        id: TorrentId,
        cid: ConnId,
        msg: MetadataMessage,
    ) {
        let Some(t) = self.torrents.get_mut(&id) else {
            return;
        };
        match msg {
            MetadataMessage::Request { piece } => {
                let Some(w) = self.conns.get_mut(&cid).and_then(|c| c.wire.as_mut()) else {
                    return;
                };
                let info = t.info.info_bytes();
                let total = u32::try_from(info.len()).unwrap_or(u32::MAX);
                let piece_size = lt_wire::limits::METADATA_PIECE_SIZE as usize;
                let reply = match lt_wire::metadata_piece_len(piece, total) {
                    Some(len) if t.has_metadata => {
                        let start = piece as usize * piece_size;
                        MetadataMessage::Data {
                            piece,
                            total_size: total,
                            data: Bytes::copy_from_slice(&info[start..start + len as usize]),
                        }
                    }
                    _ => MetadataMessage::Reject { piece },
                };
                let _ = w.send_extension(now, &ExtensionMessage::Metadata(reply));
                self.flush(cid);
                return;
            }
            MetadataMessage::Reject { piece } => {
                // Someone else is asked at the next round.
                if let Some(r) = t.meta.requested.get_mut(piece as usize)
                    && r.is_some_and(|(c, _)| c == cid)
                {
                    *r = None;
                }
                if let Some(c) = self.conns.get_mut(&cid) {
                    c.serves_metadata = false;
                }
            }
            MetadataMessage::Data {
                piece,
                total_size,
                data,
            } => {
                if t.has_metadata || t.meta.size != Some(total_size) {
                    return;
                }
                let i = piece as usize;
                let fits = lt_wire::metadata_piece_len(piece, total_size)
                    .is_some_and(|len| len as usize == data.len());
                if !fits || t.meta.pieces.get(i).is_none_or(Option::is_some) {
                    return;
                }
                t.meta.pieces[i] = Some(data);
                t.meta.requested[i] = None;
                if t.meta.pieces.iter().all(Option::is_some) {
                    let bytes: Vec<u8> = t
                        .meta
                        .pieces
                        .iter()
                        .flatten()
                        .flat_map(|b| b.iter().copied())
                        .collect();
                    self.metadata_complete(now, id, &bytes);
                    return;
                }
            }
            _ => {}
        }
        self.request_metadata(now, id);
    }

    /// Checks the fetched info dictionary against the info-hash and turns the magnet into a
    /// normal torrent that checks its files next.
    pub(super) fn metadata_complete(&mut self, now: Instant, id: TorrentId, bytes: &[u8]) {
        let Some(t) = self.torrents.get(&id) else {
            return;
        };
        let ih = t.info_hash;
        let matches = match (ih.v1_hash(), ih.v2_hash()) {
            (Some(v1), _) => Sha1Hash::digest(bytes) == v1,
            (None, Some(v2)) => lt_core::Sha256Hash::digest(bytes) == v2,
            (None, None) => false,
        };
        if !matches {
            self.metadata_failed(id, "the metadata does not match the info-hash".into());
            return;
        }
        let info = match lt_metainfo::TorrentInfo::from_info_bytes(
            bytes,
            &lt_metainfo::LoadLimits::default(),
        ) {
            Ok(i) => Arc::new(i),
            Err(e) => {
                self.metadata_failed(id, e.to_string());
                return;
            }
        };
        let Ok(layout) = Layout::new(info.total_size(), info.piece_length(), lt_core::BLOCK_SIZE)
        else {
            self.metadata_failed(id, "the metadata's piece layout is unusable".into());
            return;
        };
        let mut seed = [0u8; 32];
        self.rng.fill_bytes(&mut seed);
        let Some(t) = self.torrents.get_mut(&id) else {
            return;
        };
        let n = info.num_pieces() as usize;
        t.picker = PiecePicker::new(
            layout,
            lt_picker::Config {
                rng_seed: Some(seed),
                sequential: t.sequential,
                ..lt_picker::Config::default()
            },
        );
        t.layout = layout;
        t.wire_layout = PieceLayout {
            num_pieces: info.num_pieces(),
            piece_length: info.piece_length(),
            total_length: info.total_size(),
        };
        t.have = Bitfield::new(n);
        t.file_priorities = vec![1; info.files().files().len()];
        t.info = Arc::clone(&info);
        t.has_metadata = true;
        t.meta = crate::torrent::MetaFetch::default();
        let prev = t.state;
        t.state = TorrentState::CheckingFiles;
        let wire_layout = t.wire_layout;
        let conns: Vec<ConnId> = t.conns.iter().copied().collect();
        for cid in conns {
            let key = Conn::key(cid);
            let Some(c) = self.conns.get_mut(&cid) else {
                continue;
            };
            let Some(w) = c.wire.as_mut() else { continue };
            w.set_layout(wire_layout);
            if !c.connected {
                continue;
            }
            let _ = t.picker.add_peer(key);
            for bits in std::mem::take(&mut c.pending_bits) {
                let _ = match bits {
                    Bits::Raw(raw) => match Bitfield::from_bytes(&raw, n) {
                        Ok(b) => t.picker.peer_bitfield(key, b),
                        Err(_) => Ok(()),
                    },
                    Bits::All => t.picker.peer_have_all(key),
                    Bits::Have(p) if p.as_usize() < n => t.picker.peer_have(key, p),
                    Bits::Have(_) => Ok(()),
                };
            }
        }
        debug!(torrent = %id, size = bytes.len(), "metadata received");
        self.alerts.push(Alert::MetadataReceived { torrent: id });
        self.alerts.push(Alert::StateChanged {
            torrent: id,
            prev,
            state: TorrentState::CheckingFiles,
        });
        self.actions
            .push_back(Action::MetadataReceived { torrent: id, info });
        self.actions.push_back(Action::Disk(DiskJob::Check {
            torrent: id,
            resume: None,
        }));
        self.next_tick = now;
    }

    pub(super) fn metadata_failed(&mut self, id: TorrentId, error: String) {
        if let Some(t) = self.torrents.get_mut(&id) {
            t.meta = crate::torrent::MetaFetch::default();
        }
        debug!(torrent = %id, %error, "metadata failed");
        self.alerts
            .push(Alert::MetadataFailed { torrent: id, error });
    }
}
