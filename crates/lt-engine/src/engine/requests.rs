//! The request pipeline, interest, incoming blocks and serving requests (uploads), mixed-mode rates.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::Bytes;
use lt_core::PieceIndex;
use lt_picker::{PickOptions, Speed};
use lt_wire::BlockRequest;

use crate::torrent::{PartPiece, Slot};
use crate::{Action, ConnId, DisconnectReason, DiskJob, MixedMode, TorrentId};

use super::Engine;
use super::conn::{Conn, spend_block};

impl Engine {
    pub(super) fn set_seed(&mut self, now: Instant, cid: ConnId, seed: bool) {
        let Some(c) = self.conns.get_mut(&cid) else {
            return;
        };
        c.seed = seed;
        let Some(t) = c.torrent.and_then(|id| self.torrents.get_mut(&id)) else {
            return;
        };
        if let Some(e) = c.entry.and_then(|a| t.peers.get_mut(&a)) {
            e.seed = seed;
        }
        if seed && t.is_seed() && self.settings.close_redundant_connections {
            self.close(now, cid, DisconnectReason::Redundant);
        }
    }

    pub(super) fn update_interest(&mut self, now: Instant, cid: ConnId) {
        let Some(c) = self.conns.get_mut(&cid) else {
            return;
        };
        let Some(t) = c.torrent.and_then(|id| self.torrents.get(&id)) else {
            return;
        };
        let Some(w) = c.wire.as_mut() else { return };
        if !c.connected {
            return;
        }
        let interested =
            !t.is_finished() && !t.upload_mode() && t.picker.is_interesting(Conn::key(cid));
        if interested != w.am_interested() {
            w.set_interested(now, interested);
        }
        if interested {
            self.fill_requests(now, cid);
        }
        // INTERESTED / NOT INTERESTED must go out even when no request follows.
        self.flush(cid);
    }

    /// The torrent's connections (a copy, so the caller may change the engine).
    pub(super) fn torrent_conns(&self, id: TorrentId) -> Vec<ConnId> {
        self.torrents
            .get(&id)
            .map(|t| t.conns.iter().copied().collect())
            .unwrap_or_default()
    }

    pub(super) fn update_all_interest(&mut self, now: Instant, id: TorrentId) {
        for c in self.torrent_conns(id) {
            self.update_interest(now, c);
        }
    }

    pub(super) fn fill_torrent(&mut self, now: Instant, id: TorrentId) {
        for c in self.torrent_conns(id) {
            self.fill_requests(now, c);
        }
        self.fill_web(now, id);
    }

    /// Sends as many requests to the peer as its rate calls for.
    pub(super) fn fill_requests(&mut self, now: Instant, cid: ConnId) {
        let key = Conn::key(cid);
        let max_disk = self.settings.max_queued_disk_bytes;
        let queue_time = self.settings.request_queue_time.as_secs_f64();
        let min_q = self.settings.min_request_queue;
        let max_q = self.settings.max_out_request_queue;
        let session_down_ok = self.down_bucket.available();
        let session_down_limit = self.down_bucket.rate();
        let ignore_local = self.settings.ignore_limits_on_local_network;
        let Some(c) = self.conns.get_mut(&cid) else {
            return;
        };
        let limited = !(ignore_local && c.local);
        let tcp_limit = if c.utp {
            0
        } else {
            self.tcp_down_bucket.rate()
        };
        let tcp_ok = c.utp || self.tcp_down_bucket.available();
        let Some(t) = c.torrent.and_then(|id| self.torrents.get_mut(&id)) else {
            return;
        };
        let Some(w) = c.wire.as_mut() else { return };
        if !c.connected
            || !t.has_metadata
            || !t.is_active()
            || t.upload_mode()
            || t.is_finished()
            || !w.am_interested()
        {
            return;
        }
        let choked = w.peer_choking();
        if choked && w.allowed_fast().is_empty() {
            return;
        }
        if t.disk_bytes >= max_disk
            || (limited && (!session_down_ok || !t.down_bucket.available() || !tcp_ok))
        {
            return;
        }
        let rate = c.down.rate();
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let by_rate = (rate as f64 * queue_time / f64::from(lt_core::BLOCK_SIZE)) as usize;
        let mut target = by_rate.clamp(min_q, max_q.max(min_q));
        // Under a download limit, requests in flight are capped at half a second of it, or
        // the last of them would overshoot the limit by the whole queue.
        let limit = if limited {
            [t.down_bucket.rate(), session_down_limit, tcp_limit]
                .into_iter()
                .filter(|&l| l > 0)
                .min()
                .unwrap_or(0)
        } else {
            0
        };
        if limit > 0 {
            let cap =
                usize::try_from(limit / 2 / u64::from(lt_core::BLOCK_SIZE)).unwrap_or(usize::MAX);
            target = target.min(cap.max(2));
        }
        let outstanding = t.picker.outstanding_requests(key) as usize;
        let need = target.saturating_sub(outstanding).min(w.request_capacity());
        if need == 0 {
            return;
        }
        let speed = match rate {
            0..20_000 => Speed::Slow,
            20_000..200_000 => Speed::Medium,
            _ => Speed::Fast,
        };
        let opts = PickOptions {
            reverse: w.is_snubbed(),
            on_parole: c.on_parole,
            prefer_whole_pieces: 0,
            speed,
            choked,
            time_critical_only: false,
        };
        let mut blocks = std::mem::take(&mut self.scratch_blocks);
        blocks.clear();
        if t.picker
            .pick_into(now, key, need, &opts, &mut blocks)
            .is_ok()
        {
            for &b in &blocks {
                let Some((begin, len)) = t.layout.request(b) else {
                    let _ = t.picker.cancel_request(key, b);
                    continue;
                };
                if w.request(now, BlockRequest::new(b.piece, begin, len))
                    .is_err()
                {
                    let _ = t.picker.cancel_request(key, b);
                }
            }
        }
        blocks.clear();
        self.scratch_blocks = blocks;
        self.flush(cid);
    }

    pub(super) fn on_block(&mut self, now: Instant, cid: ConnId, req: BlockRequest, data: Bytes) {
        let key = Conn::key(cid);
        let Some(c) = self.conns.get_mut(&cid) else {
            return;
        };
        let Some(id) = c.torrent else { return };
        let Some(t) = self.torrents.get_mut(&id) else {
            return;
        };
        let len = data.len() as u64;
        c.down.add(len);
        t.total_download += len;
        t.down.add(len);
        if !(self.settings.ignore_limits_on_local_network && c.local) {
            spend_block(
                &self.settings,
                c,
                req.len,
                [
                    &mut t.down_bucket,
                    &mut self.down_bucket,
                    &mut self.tcp_down_bucket,
                ],
            );
        }
        let addr = c.addr;
        let Some(block) = t.layout.block_at(req.piece, req.begin) else {
            t.total_redundant += len;
            return;
        };
        if t.layout.request(block) != Some((req.begin, req.len)) {
            t.total_redundant += len;
            return;
        }
        if let Err(e) = self.store_block(now, id, key, cid, addr, block, data) {
            self.close(now, cid, DisconnectReason::BadPieces(e));
            return;
        }
        self.fill_requests(now, cid);
    }

    /// Keeps a block that arrived from `cid` (a peer or a web seed) in its partial piece,
    /// hands the piece to the disk when it is complete, and cancels the block at the other
    /// peers it was asked of (end game).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn store_block(
        &mut self,
        now: Instant,
        id: TorrentId,
        key: lt_picker::PeerKey,
        cid: ConnId,
        addr: std::net::SocketAddr,
        block: lt_picker::Block,
        data: Bytes,
    ) -> Result<(), lt_picker::Error> {
        let Some(t) = self.torrents.get_mut(&id) else {
            return Ok(());
        };
        let len = data.len() as u64;
        let received = t.picker.block_received(key, block)?;
        if received.redundant {
            t.total_redundant += len;
        } else {
            let blocks_in_piece = t.layout.blocks_in_piece(block.piece.get()) as usize;
            let part = t
                .parts
                .entry(block.piece.get())
                .or_insert_with(|| PartPiece::new(blocks_in_piece));
            t.held_bytes += part.hold(block.block.as_usize(), data);
            if !part.contributors.iter().any(|&(x, _)| x == cid) {
                part.contributors.push((cid, addr));
            }
            let too_much = part.held >= self.settings.max_held_piece_bytes
                || t.held_bytes > self.settings.max_queued_disk_bytes;
            if received.piece_complete {
                self.piece_complete(now, id, block.piece);
            } else if too_much {
                self.write_held(id, block.piece);
            }
        }
        let Some((begin, len)) = self.torrents.get(&id).and_then(|t| t.layout.request(block))
        else {
            return Ok(());
        };
        let req = BlockRequest::new(block.piece, begin, len);
        for other in received.cancel {
            let ocid = ConnId(u64::from(other.0));
            if let Some(w) = self.conns.get_mut(&ocid).and_then(|c| c.wire.as_mut()) {
                w.cancel(now, req);
                self.flush(ocid);
            }
        }
        Ok(())
    }

    /// Every block of `piece` is here: hash and write it. A piece held whole in memory
    /// goes as one [`DiskJob::WritePiece`] (hashed before anything is written); one that
    /// wrote blocks already goes, once those writes are reported, as the last
    /// [`DiskJob::WriteBlocks`].
    pub(super) fn piece_complete(&mut self, _now: Instant, id: TorrentId, piece: PieceIndex) {
        let Some(t) = self.torrents.get_mut(&id) else {
            return;
        };
        let Some(part) = t.parts.get_mut(&piece.get()) else {
            return;
        };
        part.complete = true;
        if part.writes_in_flight > 0 {
            return;
        }
        let Some(mut part) = t.parts.remove(&piece.get()) else {
            return;
        };
        t.held_bytes = t.held_bytes.saturating_sub(part.held);
        if part.write_failed || part.blocks.iter().any(|s| matches!(s, Slot::Missing)) {
            // A block finished earlier is neither in memory nor written (the piece's
            // blocks were dropped), or writing some failed: download the piece again.
            let _ = t.picker.piece_failed(piece);
            return;
        }
        t.disk_bytes += t.piece_size(piece.get());
        let job = if part.blocks.iter().all(|s| matches!(s, Slot::Held(_))) {
            let blocks = part
                .blocks
                .into_iter()
                .filter_map(|s| match s {
                    Slot::Held(b) => Some(b),
                    Slot::Missing | Slot::Written => None,
                })
                .collect();
            DiskJob::WritePiece {
                torrent: id,
                piece,
                blocks,
            }
        } else {
            DiskJob::WriteBlocks {
                torrent: id,
                piece,
                blocks: part.take_held(t.layout.block_size()),
                last: true,
            }
        };
        t.writing.insert(piece.get(), part.contributors);
        self.actions.push_back(Action::Disk(job));
    }

    /// Writes the blocks `piece` holds (memory is running out for it).
    pub(super) fn write_held(&mut self, id: TorrentId, piece: PieceIndex) {
        let Some(t) = self.torrents.get_mut(&id) else {
            return;
        };
        let block_size = t.layout.block_size();
        let Some(part) = t.parts.get_mut(&piece.get()) else {
            return;
        };
        let held = part.held;
        let blocks = part.take_held(block_size);
        if blocks.is_empty() {
            return;
        }
        part.writes_in_flight += 1;
        part.writing_bytes += held;
        t.held_bytes = t.held_bytes.saturating_sub(held);
        t.disk_bytes += held;
        self.actions.push_back(Action::Disk(DiskJob::WriteBlocks {
            torrent: id,
            piece,
            blocks,
            last: false,
        }));
    }

    /// A [`DiskJob::WriteBlocks`] that was not the piece's last is done.
    pub(super) fn blocks_written(
        &mut self,
        now: Instant,
        id: TorrentId,
        piece: PieceIndex,
        failed: bool,
    ) {
        let Some(t) = self.torrents.get_mut(&id) else {
            return;
        };
        if let Some(stale) = t.stale_writes.get_mut(&piece.get()) {
            *stale -= 1;
            if *stale == 0 {
                t.stale_writes.remove(&piece.get());
            }
            return;
        }
        let Some(part) = t.parts.get_mut(&piece.get()) else {
            return;
        };
        part.writes_in_flight = part.writes_in_flight.saturating_sub(1);
        part.write_failed |= failed;
        if part.writes_in_flight > 0 {
            return;
        }
        t.disk_bytes = t.disk_bytes.saturating_sub(part.writing_bytes);
        part.writing_bytes = 0;
        if part.complete {
            self.piece_complete(now, id, piece);
        }
        self.fill_torrent(now, id);
    }

    pub(super) fn on_request(&mut self, now: Instant, cid: ConnId, req: BlockRequest) {
        let Some(c) = self.conns.get_mut(&cid) else {
            return;
        };
        let Some(id) = c.torrent else { return };
        let Some(t) = self.torrents.get_mut(&id) else {
            return;
        };
        let Some(w) = c.wire.as_mut() else { return };
        let allowed = (!w.am_choking() || c.allowed_fast.contains(&req.piece))
            && c.super_seed
                .as_ref()
                .is_none_or(|ss| ss.offered.get(req.piece.as_usize()));
        if !t.have.get(req.piece.as_usize()) || !allowed || !t.is_active() {
            w.reject(now, req);
            self.flush(cid);
            return;
        }
        if let Some(unverified) = &t.unverified
            && unverified.get(req.piece.as_usize())
        {
            let waiting = t.verify_wait.entry(req.piece.get()).or_default();
            if waiting.is_empty() {
                self.actions.push_back(Action::Disk(DiskJob::VerifyPiece {
                    torrent: id,
                    piece: req.piece,
                }));
            }
            if waiting.len() < 1024 {
                waiting.push((cid, req));
            }
            return;
        }
        // Back-pressure: past the send buffer watermark the request waits, in order, until
        // the driver reports the socket drained.
        let c = &self.conns[&cid];
        if !c.held.is_empty() || !self.send_room(c) {
            if let Some(c) = self.conns.get_mut(&cid) {
                c.held.push_back(req);
            }
            return;
        }
        self.serve_request(cid, req);
    }

    /// Reads a block for a peer now, or queues the request behind the torrent's rate limit.
    fn serve_request(&mut self, cid: ConnId, req: BlockRequest) {
        let session_up_ok = self.up_bucket.available();
        let Some(c) = self.conns.get_mut(&cid) else {
            return;
        };
        let Some(id) = c.torrent else { return };
        let Some(t) = self.torrents.get_mut(&id) else {
            return;
        };
        let limited = !(self.settings.ignore_limits_on_local_network && c.local);
        let tcp_ok = c.utp || self.tcp_up_bucket.available();
        if !limited
            || (session_up_ok && tcp_ok && t.up_bucket.available() && t.pending_reads.is_empty())
        {
            self.read_for(id, cid, req, limited);
        } else {
            t.pending_reads.push_back((cid, req));
        }
    }

    /// Asks the disk for a block a peer requested, drawing its cost from the rate limits
    /// that apply to the peer when `charge`.
    fn read_for(&mut self, id: TorrentId, cid: ConnId, req: BlockRequest, charge: bool) {
        let (Some(c), Some(t)) = (self.conns.get_mut(&cid), self.torrents.get_mut(&id)) else {
            return;
        };
        if charge {
            spend_block(
                &self.settings,
                c,
                req.len,
                [
                    &mut t.up_bucket,
                    &mut self.up_bucket,
                    &mut self.tcp_up_bucket,
                ],
            );
        }
        c.pending_reads += 1;
        self.actions.push_back(Action::Disk(DiskJob::Read {
            torrent: id,
            conn: cid,
            request: req,
        }));
    }

    /// Bytes the driver may hold for a connection before its requests wait: the manual's
    /// `send_buffer_watermark_factor` percent of its upload rate, between the low and high
    /// watermarks.
    pub(super) fn send_watermark(&self, c: &Conn) -> usize {
        let s = &self.settings;
        let by_rate =
            c.up.rate()
                .saturating_mul(u64::from(s.send_buffer_watermark_factor))
                / 100;
        usize::try_from(by_rate).unwrap_or(usize::MAX).clamp(
            s.send_buffer_low_watermark,
            s.send_buffer_watermark.max(s.send_buffer_low_watermark),
        )
    }

    /// Whether a connection's send buffer (bytes queued in the driver and blocks being read
    /// for it) is below its watermark.
    pub(super) fn send_room(&self, c: &Conn) -> bool {
        let reading = c.pending_reads as usize * lt_core::BLOCK_SIZE as usize;
        c.send_queued.saturating_add(reading) < self.send_watermark(c)
    }

    /// Serves a connection's requests that waited for room in its send buffer.
    pub(super) fn serve_held(&mut self, cid: ConnId) {
        while let Some(c) = self.conns.get(&cid)
            && !c.held.is_empty()
        {
            if !self.send_room(c) {
                break;
            }
            let Some(req) = self.conns.get_mut(&cid).and_then(|c| c.held.pop_front()) else {
                break;
            };
            self.serve_request(cid, req);
        }
    }

    pub(super) fn serve_pending_reads(&mut self) {
        // A torrent with reads waiting is awake.
        let ids = self.torrents.awake();
        for id in ids {
            // TCP requests held back by mixed mode wait without blocking uTP ones.
            let mut held = VecDeque::new();
            while let Some(t) = self.torrents.get_mut(&id) {
                if !self.up_bucket.available() || !t.up_bucket.available() {
                    break;
                }
                let Some((cid, req)) = t.pending_reads.pop_front() else {
                    break;
                };
                let Some(c) = self.conns.get(&cid) else {
                    continue;
                };
                if !c.utp && !self.tcp_up_bucket.available() {
                    held.push_back((cid, req));
                    continue;
                }
                self.read_for(id, cid, req, true);
            }
            if let Some(t) = self.torrents.get_mut(&id) {
                while let Some(r) = held.pop_back() {
                    t.pending_reads.push_front(r);
                }
            }
        }
    }

    /// `mixed_mode_algorithm`: while uTP peers transfer, TCP peers together get their
    /// share (by peer count) of the current rate (libtorrent's `peer_proportional`).
    pub(super) fn balance_mixed_mode(&mut self, now: Instant) {
        // [TCP, uTP] peers we download from (requests in flight or data coming) and upload
        // to (requests waiting or data going).
        let (mut down, mut up) = ([0u64; 2], [0u64; 2]);
        if self.settings.mixed_mode_algorithm == MixedMode::PeerProportional {
            let ignore_local = self.settings.ignore_limits_on_local_network;
            for (&cid, c) in &self.conns {
                let Some(w) = c.wire.as_ref().filter(|_| c.connected) else {
                    continue;
                };
                if ignore_local && c.local {
                    continue;
                }
                let proto = usize::from(c.utp);
                if c.down.rate() > 0
                    || c.torrent
                        .and_then(|id| self.torrents.get(&id))
                        .is_some_and(|t| t.picker.outstanding_requests(Conn::key(cid)) > 0)
                {
                    down[proto] += 1;
                }
                if c.up.rate() > 0
                    || c.pending_reads > 0
                    || w.pending_peer_requests().next().is_some()
                {
                    up[proto] += 1;
                }
            }
        }
        if up[1] == 0 && down[1] == 0 {
            // No uTP peer transfers: TCP is not held back, and the rates of every torrent
            // need not be added up (10,000 idle torrents made this a quarter of a tick).
            self.tcp_up_bucket.set_rate(0);
            self.tcp_down_bucket.set_rate(0);
            return;
        }
        // A dormant torrent's rates are zero.
        let (up_rate, down_rate) = self
            .torrents
            .awake_iter()
            .fold((0u64, 0u64), |(u, d), (_, t)| {
                (u + t.up.rate(), d + t.down.rate())
            });
        for (bucket, peers, rate, floor) in [
            (&mut self.tcp_up_bucket, up, up_rate, 5_000),
            (&mut self.tcp_down_bucket, down, down_rate, 30_000),
        ] {
            if peers[1] == 0 {
                bucket.set_rate(0);
                continue;
            }
            let tcp = peers[0].max(1);
            let share =
                u64::try_from(u128::from(rate) * u128::from(tcp) / u128::from(tcp + peers[1]))
                    .unwrap_or(u64::MAX);
            bucket.set_rate(share.max(floor));
            bucket.refill(now);
        }
    }
}
