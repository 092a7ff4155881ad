//! Fetching and serving the metadata of magnet links (BEP 9).
//!
//! A magnet's metadata is fetched in rounds. A round asks the peers that announced the
//! round's size for pieces, two at a time each, and keeps only pieces it asked that peer
//! for. When the assembled bytes fail the info-hash, a lone sender is banned; several
//! senders become suspects that are not asked again, and later rounds take every piece
//! from one peer, so a lie names its peer. Requests from peers are answered while their
//! send buffer has room, rejected otherwise.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use lt_core::{Bitfield, Sha1Hash};
use lt_picker::{Layout, PiecePicker};
use lt_wire::{ExtensionMessage, MetadataMessage, PieceLayout};
use rand_core::RngCore as _;
use tracing::debug;

use crate::alert::Alert;
use crate::torrent::Torrent;
use crate::{Action, ConnId, DisconnectReason, DiskJob, TorrentId, TorrentState};

use super::Engine;
use super::conn::{Conn, METADATA_REQUEST_TIMEOUT};

impl Engine {
    /// A peer announced the metadata's size in its extended handshake. The first size seen
    /// starts the fetch; after a failed round the size most peers announce is fetched.
    pub(super) fn metadata_size_seen(
        &mut self,
        now: Instant,
        id: TorrentId,
        cid: ConnId,
        size: u32,
    ) {
        if size == 0 || u64::from(size) > lt_wire::limits::DEFAULT_MAX_METADATA_SIZE {
            return;
        }
        if let Some(c) = self.conns.get_mut(&cid) {
            c.metadata_size = Some(size);
        }
        let Some(t) = self.torrents.get_mut(&id) else {
            return;
        };
        if t.has_metadata || t.meta.size.is_some() {
            return;
        }
        t.meta.start(size);
        self.request_metadata(now, id);
    }

    /// Whether a connection may be asked for the metadata this round: it serves it, of the
    /// size being fetched, and is not suspected of a failed round.
    fn metadata_source(&self, t: &Torrent, cid: ConnId) -> bool {
        self.conns.get(&cid).is_some_and(|c| {
            c.connected
                && c.serves_metadata
                && c.metadata_size == t.meta.size
                && !t.meta.suspects.contains(&c.addr)
                && c.wire.as_ref().is_some_and(|w| {
                    w.extension_ids()
                        .remote(lt_wire::Extension::Metadata)
                        .is_some()
                })
        })
    }

    /// A peer that left a metadata request unanswered for `METADATA_REQUEST_TIMEOUT` is no
    /// longer a source for this torrent's metadata (as if it had rejected it), and its
    /// pieces go to others: a silent peer cannot hold a magnet up.
    fn drop_silent_metadata_sources(&mut self, now: Instant, id: TorrentId) {
        let Some(t) = self.torrents.get_mut(&id) else {
            return;
        };
        let mut silent = Vec::new();
        for r in &mut t.meta.requested {
            if let Some((cid, at)) = *r
                && now.saturating_duration_since(at) >= METADATA_REQUEST_TIMEOUT
            {
                *r = None;
                silent.push(cid);
            }
        }
        for cid in silent {
            if let Some(c) = self.conns.get_mut(&cid) {
                debug!(conn = %cid, peer = %c.addr, "metadata request timed out; not asked again");
                c.serves_metadata = false;
            }
        }
    }

    /// Asks peers for the pieces nobody is fetching, two at a time each. After a failed
    /// round one peer at a time supplies every piece, so that the next failure names the
    /// peer that lied.
    pub(super) fn request_metadata(&mut self, now: Instant, id: TorrentId) {
        self.drop_silent_metadata_sources(now, id);
        let Some(t) = self.torrents.get(&id) else {
            return;
        };
        if t.has_metadata || t.meta.size.is_none() {
            return;
        }
        let mut sources: Vec<ConnId> = t
            .conns
            .iter()
            .copied()
            .filter(|&cid| self.metadata_source(t, cid))
            .collect();
        if t.meta.single_source {
            // The peer already asked keeps the round; otherwise the first source.
            let current = t.meta.requested.iter().flatten().map(|&(c, _)| c).next();
            sources = current
                .filter(|c| sources.contains(c))
                .or_else(|| sources.first().copied())
                .into_iter()
                .collect();
        }
        let Some(t) = self.torrents.get_mut(&id) else {
            return;
        };
        for &cid in &sources {
            let Some(w) = self.conns.get_mut(&cid).and_then(|c| c.wire.as_mut()) else {
                continue;
            };
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
        }
        for cid in sources {
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
        match msg {
            MetadataMessage::Request { piece } => self.serve_metadata(now, id, cid, piece),
            MetadataMessage::Reject { piece } => {
                // Someone else is asked at the next round.
                if let Some(r) = self
                    .torrents
                    .get_mut(&id)
                    .and_then(|t| t.meta.requested.get_mut(piece as usize))
                    && r.is_some_and(|(c, _)| c == cid)
                {
                    *r = None;
                }
                if let Some(c) = self.conns.get_mut(&cid) {
                    c.serves_metadata = false;
                }
                self.request_metadata(now, id);
            }
            MetadataMessage::Data {
                piece,
                total_size,
                data,
            } => self.metadata_piece(now, id, cid, piece, total_size, data),
            _ => {}
        }
    }

    /// Answers a metadata request: the piece when we have the metadata and the peer's send
    /// buffer has room (the same watermark as for blocks), else a reject, so a peer that
    /// asks and never reads costs a bounded amount of memory.
    fn serve_metadata(&mut self, now: Instant, id: TorrentId, cid: ConnId, piece: u32) {
        let Some(t) = self.torrents.get(&id) else {
            return;
        };
        let room = self.conns.get(&cid).is_some_and(|c| self.send_room(c));
        let info = t.info.info_bytes();
        let total = u32::try_from(info.len()).unwrap_or(u32::MAX);
        let piece_size = lt_wire::limits::METADATA_PIECE_SIZE as usize;
        let reply = match lt_wire::metadata_piece_len(piece, total) {
            Some(len) if t.has_metadata && room => {
                let start = piece as usize * piece_size;
                MetadataMessage::Data {
                    piece,
                    total_size: total,
                    data: Bytes::copy_from_slice(&info[start..start + len as usize]),
                }
            }
            _ => MetadataMessage::Reject { piece },
        };
        if let Some(w) = self.conns.get_mut(&cid).and_then(|c| c.wire.as_mut()) {
            let _ = w.send_extension(now, &ExtensionMessage::Metadata(reply));
        }
        self.flush(cid);
    }

    /// A metadata piece arrived. Only a piece we asked this peer for, of the size being
    /// fetched, is kept, with who sent it.
    fn metadata_piece(
        &mut self,
        now: Instant,
        id: TorrentId,
        cid: ConnId,
        piece: u32,
        total_size: u32,
        data: Bytes,
    ) {
        let Some(addr) = self.conns.get(&cid).map(|c| c.addr) else {
            return;
        };
        let Some(t) = self.torrents.get_mut(&id) else {
            return;
        };
        let i = piece as usize;
        let asked = t
            .meta
            .requested
            .get(i)
            .is_some_and(|r| r.is_some_and(|(c, _)| c == cid));
        let fits = lt_wire::metadata_piece_len(piece, total_size)
            .is_some_and(|len| len as usize == data.len());
        if t.has_metadata || t.meta.size != Some(total_size) || !asked || !fits {
            debug!(torrent = %id, conn = %cid, piece, asked, fits, "metadata piece dropped");
            return;
        }
        t.meta.pieces[i] = Some((data, addr));
        t.meta.requested[i] = None;
        if t.meta.pieces.iter().all(Option::is_some) {
            let mut bytes = Vec::with_capacity(total_size as usize);
            let mut senders = BTreeSet::new();
            for (data, from) in t.meta.pieces.iter().flatten() {
                bytes.extend_from_slice(data);
                senders.insert(*from);
            }
            self.metadata_complete(now, id, &bytes, &senders);
            return;
        }
        self.request_metadata(now, id);
    }

    /// A round's metadata did not match the info-hash. A lone sender lied and is banned;
    /// with several, each becomes a suspect that is not asked again, and the next rounds
    /// take every piece from one peer. The size most remaining peers announce is fetched
    /// next (a liar may have announced its own).
    fn metadata_round_failed(
        &mut self,
        now: Instant,
        id: TorrentId,
        senders: &BTreeSet<SocketAddr>,
    ) {
        if let [liar] = senders.iter().copied().collect::<Vec<_>>()[..] {
            let conn = self.torrents.get(&id).and_then(|t| {
                t.conns
                    .iter()
                    .copied()
                    .find(|c| self.conns.get(c).is_some_and(|c| c.addr == liar))
            });
            debug!(torrent = %id, peer = %liar, "banned for metadata that fails the info-hash");
            self.ban(now, id, conn, liar);
        }
        let Some(t) = self.torrents.get(&id) else {
            return;
        };
        let mut suspects = t.meta.suspects.clone();
        if senders.len() > 1 {
            suspects.extend(senders.iter().copied());
        }
        // Sizes the peers still eligible announce; when suspicion covers them all, everyone
        // gets another chance, one at a time.
        let eligible = |suspects: &BTreeSet<SocketAddr>| -> Vec<u32> {
            t.conns
                .iter()
                .filter_map(|c| self.conns.get(c))
                .filter(|c| c.connected && c.serves_metadata && !suspects.contains(&c.addr))
                .filter_map(|c| c.metadata_size)
                .collect()
        };
        let mut sizes = eligible(&suspects);
        if sizes.is_empty() {
            suspects.clear();
            sizes = eligible(&suspects);
        }
        let mut counts: BTreeMap<u32, usize> = BTreeMap::new();
        for s in sizes {
            *counts.entry(s).or_default() += 1;
        }
        let size = counts
            .into_iter()
            .max_by_key(|&(s, n)| (n, std::cmp::Reverse(s)))
            .map(|(s, _)| s);
        let Some(t) = self.torrents.get_mut(&id) else {
            return;
        };
        t.meta = crate::torrent::MetaFetch {
            suspects,
            single_source: true,
            ..crate::torrent::MetaFetch::default()
        };
        if let Some(size) = size {
            t.meta.start(size);
        }
        self.request_metadata(now, id);
    }

    /// Checks the fetched info dictionary against the info-hash and turns the magnet into a
    /// normal torrent that checks its files next.
    pub(super) fn metadata_complete(
        &mut self,
        now: Instant,
        id: TorrentId,
        bytes: &[u8],
        senders: &BTreeSet<SocketAddr>,
    ) {
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
            self.metadata_round_failed(now, id, senders);
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
            std::mem::take(&mut c.pending_bits).apply(&mut t.picker, key, n);
        }
        debug!(torrent = %id, size = bytes.len(), "metadata received");
        self.alerts.push(Alert::MetadataReceived { torrent: id });
        if info.ssl_cert().is_some() {
            // An SSL torrent: the connections that brought the metadata are not TLS, and
            // it waits for a certificate.
            self.alerts.push(Alert::TorrentNeedCert { torrent: id });
            let conns: Vec<ConnId> = self
                .torrents
                .get(&id)
                .map(|t| t.conns.iter().copied().collect())
                .unwrap_or_default();
            for cid in conns {
                self.close(now, cid, DisconnectReason::SslMismatch);
            }
        }
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
        self.timers.pull_all(now);
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
