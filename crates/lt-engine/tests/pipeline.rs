//! The request pipeline as a property: whatever a seeding peer does (delivers blocks in any
//! order, chokes, unchokes, rejects, stays silent while time passes) and whatever the disk
//! answers, the engine never has more requests outstanding at that peer than
//! `max_out_request_queue`, and never asks for a piece it has.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use lt_core::{Bitfield, PeerId};
use lt_engine::{
    Action, AddTorrent, DiskDone, DiskJob, Engine, Handshake, Input, Settings, Transport,
};
use lt_metainfo::{CreateTorrent, TorrentInfo};
use lt_wire::{BlockRequest, PeerConfig, PeerConnection, PeerEvent, PieceLayout, TorrentParams};
use quickcheck::{QuickCheck, TestResult};

/// One run: `ops` drive the remote seed and the disk; `Err` names a broken rule, `Ok`
/// gives the pieces we have at the end.
fn run(ops: &[u8], max_out: usize) -> Result<u32, String> {
    let data: Vec<u8> = (0..(512 * 1024)).map(|i: usize| (i % 253) as u8).collect();
    let bytes = CreateTorrent::from_memory("p.bin", data.clone())
        .piece_size(32 * 1024)
        .generate()
        .unwrap();
    let info = Arc::new(TorrentInfo::from_bytes(&bytes).unwrap());
    let n = info.num_pieces() as usize;
    let mut now = Instant::now();
    let settings = Settings {
        max_out_request_queue: max_out,
        min_request_queue: max_out.min(16),
        ..Settings::default()
    };
    let mut engine = Engine::new(settings, PeerId::new([1; 20]), [4; 32], now);
    let torrent = engine
        .add_torrent(now, AddTorrent::new(Arc::clone(&info)))
        .unwrap();
    let mut writes: Vec<DiskJob> = Vec::new();
    let drain = |engine: &mut Engine, remote: Option<&mut PeerConnection>, now: Instant| {
        let mut remote = remote;
        let mut writes_out = Vec::new();
        while let Some(a) = engine.poll_action() {
            match a {
                Action::Disk(DiskJob::Check { torrent, .. }) => {
                    let done = DiskDone::Checked {
                        torrent,
                        result: Ok(Bitfield::new(n)),
                    };
                    let _ = engine.handle_input(now, Input::Disk(done));
                }
                Action::Disk(job @ DiskJob::WritePiece { .. }) => writes_out.push(job),
                Action::Send { bufs, .. } => {
                    if let Some(r) = remote.as_deref_mut() {
                        for b in bufs {
                            r.handle_bytes(now, &b).unwrap();
                        }
                    }
                }
                _ => {}
            }
        }
        writes_out
    };
    writes.extend(drain(&mut engine, None, now));
    let addr: SocketAddr = "10.0.0.2:6881".parse().unwrap();
    let incoming = Input::Incoming {
        addr,
        transport: Transport::Tcp,
        handshake: Handshake::default(),
    };
    let conn = engine.handle_input(now, incoming).unwrap();
    let params = TorrentParams {
        info_hash: info.info_hash(),
        layout: Some(PieceLayout {
            num_pieces: info.num_pieces(),
            piece_length: info.piece_length(),
            total_length: info.total_size(),
        }),
        metadata_size: None,
    };
    let mut remote = PeerConnection::outgoing(
        PeerConfig::new(PeerId::new([2; 20])),
        now,
        params,
        None,
        BytesMut::new(),
    )
    .unwrap();
    let pump = |engine: &mut Engine, remote: &mut PeerConnection, now: Instant| {
        let mut out = Vec::new();
        for _ in 0..8 {
            out.extend(drain(engine, Some(remote), now));
            let mut sent = false;
            while let Some(b) = remote.poll_transmit() {
                sent = true;
                let data = BytesMut::from(&b[..]);
                let _ = engine.handle_input(now, Input::Received { conn, data });
            }
            if !sent {
                break;
            }
        }
        out.extend(drain(engine, Some(remote), now));
        out
    };
    writes.extend(pump(&mut engine, &mut remote, now));
    remote.send_bitfield(now, &Bitfield::full(n));
    writes.extend(pump(&mut engine, &mut remote, now));

    let check = |engine: &Engine, remote: &PeerConnection| -> Result<(), String> {
        let asked: Vec<BlockRequest> = remote.pending_peer_requests().copied().collect();
        if asked.len() > max_out {
            return Err(format!(
                "{} requests outstanding, at most {max_out}",
                asked.len()
            ));
        }
        if let Some(r) = asked.iter().find(|r| engine.have_piece(torrent, r.piece)) {
            return Err(format!(
                "a request for piece {} which we have",
                r.piece.get()
            ));
        }
        Ok(())
    };
    for &op in ops {
        match op % 8 {
            // Serve the oldest or the newest request.
            0 | 1 => {
                let asked: Vec<BlockRequest> = remote.pending_peer_requests().copied().collect();
                let pick = if op % 8 == 0 {
                    asked.first()
                } else {
                    asked.last()
                };
                if let Some(r) = pick.copied() {
                    let start =
                        r.piece.as_usize() * info.piece_length() as usize + r.begin as usize;
                    let block = Bytes::copy_from_slice(&data[start..start + r.len as usize]);
                    remote.send_block(now, r.piece, r.begin, block);
                }
            }
            2 => remote.choke(now),
            3 => {
                if remote.peer_interested() {
                    remote.unchoke(now);
                }
            }
            4 => {
                let first = remote.pending_peer_requests().next().copied();
                if let Some(r) = first {
                    remote.reject(now, r);
                }
            }
            5 => {
                now += Duration::from_millis(u64::from(op) * 20);
                let _ = engine.handle_input(now, Input::Timeout);
            }
            // The disk finishes a write (a hash failure now and then).
            _ => {
                if !writes.is_empty()
                    && let DiskJob::WritePiece { torrent, piece, .. } = writes.remove(0)
                {
                    let done = DiskDone::PieceWritten {
                        torrent,
                        piece,
                        passed: op % 16 != 7,
                        error: None,
                    };
                    let _ = engine.handle_input(now, Input::Disk(done));
                }
            }
        }
        writes.extend(pump(&mut engine, &mut remote, now));
        while remote
            .poll_event()
            .is_some_and(|e| !matches!(e, PeerEvent::Block { .. }))
        {}
        check(&engine, &remote)?;
    }
    Ok(engine.status(now, torrent).unwrap().num_pieces)
}

#[test]
fn requests_stay_within_the_queue_and_skip_pieces_we_have() {
    fn prop(ops: Vec<u8>, max_out: u8) -> TestResult {
        match run(&ops, 2 + usize::from(max_out % 60)) {
            Ok(_) => TestResult::passed(),
            Err(e) => TestResult::error(e),
        }
    }
    QuickCheck::new()
        .tests(150)
        .quickcheck(prop as fn(Vec<u8>, u8) -> TestResult);
}

/// One long run that downloads everything: the ops above reach the end of the torrent.
#[test]
fn a_long_run_finishes_within_the_rules() {
    let ops: Vec<u8> = (0..4000u32)
        .map(|i| [0, 6, 1, 3, 5, 6][i as usize % 6])
        .collect();
    assert_eq!(run(&ops, 8).unwrap(), 16, "every piece downloaded");
}
