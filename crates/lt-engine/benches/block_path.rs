//! The engine's block path: a leeching engine downloads a 16 MiB torrent (1 MiB pieces) from
//! one seeding peer speaking lt-wire, with the bench as the driver: PIECE messages in,
//! requests out, whole pieces out as `DiskJob::WritePiece` (answered at once; hashing and
//! writing are the driver's and are not in the figure). The peer's side (lt-wire framing
//! its blocks) is in the figure too. Criterion reports the time per 16 MiB and the
//! throughput; seconds per GiB is 1024 / (MiB/s).
#![allow(missing_docs, clippy::unwrap_used, clippy::cast_possible_truncation)]

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use lt_core::{Bitfield, PeerId};
use lt_engine::{
    Action, AddTorrent, DiskDone, DiskJob, Engine, Handshake, Input, Settings, Transport,
};
use lt_metainfo::{CreateTorrent, TorrentInfo};
use lt_wire::{BlockRequest, PeerConfig, PeerConnection, PieceLayout, TorrentParams};

const LEN: usize = 16 << 20;

/// Downloads the whole torrent once; returns the pieces written.
fn download(info: &Arc<TorrentInfo>, data: &Bytes) -> usize {
    let now = Instant::now();
    let n = info.num_pieces() as usize;
    let mut engine = Engine::new(Settings::default(), PeerId::new([1; 20]), [4; 32], now);
    let torrent = engine
        .add_torrent(now, AddTorrent::new(Arc::clone(info)))
        .unwrap();
    while let Some(a) = engine.poll_action() {
        if let Action::Disk(DiskJob::Check { torrent, .. }) = a {
            let done = DiskDone::Checked {
                torrent,
                result: Ok(Bitfield::new(n)),
            };
            let _ = engine.handle_input(now, Input::Disk(done));
        }
    }
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
    remote.send_bitfield(now, &Bitfield::full(n));
    let mut written = 0;
    let piece_len = info.piece_length() as usize;
    loop {
        let mut progress = false;
        while let Some(a) = engine.poll_action() {
            progress = true;
            match a {
                Action::Send { bufs, .. } => {
                    for b in bufs {
                        remote.handle_bytes(now, &b).unwrap();
                    }
                }
                Action::Disk(DiskJob::WritePiece {
                    torrent,
                    piece,
                    blocks,
                }) => {
                    black_box(&blocks);
                    written += 1;
                    let done = DiskDone::PieceWritten {
                        torrent,
                        piece,
                        passed: true,
                        error: None,
                    };
                    let _ = engine.handle_input(now, Input::Disk(done));
                }
                _ => {}
            }
        }
        while remote.poll_event().is_some() {}
        if remote.peer_interested() && remote.am_choking() {
            remote.unchoke(now);
        }
        let asked: Vec<BlockRequest> = remote.pending_peer_requests().copied().collect();
        for r in asked {
            let start = r.piece.as_usize() * piece_len + r.begin as usize;
            remote.send_block(
                now,
                r.piece,
                r.begin,
                data.slice(start..start + r.len as usize),
            );
        }
        // One buffer per pump, as a socket read would hand it over.
        let mut chunk = BytesMut::new();
        while let Some(b) = remote.poll_transmit() {
            chunk.extend_from_slice(&b);
        }
        if !chunk.is_empty() {
            progress = true;
            let _ = engine.handle_input(now, Input::Received { conn, data: chunk });
        }
        if written == n || !progress {
            break;
        }
    }
    assert!(engine.status(now, torrent).unwrap().pieces.all());
    written
}

fn bench(c: &mut Criterion) {
    let payload: Vec<u8> = (0..LEN).map(|i| (i % 251) as u8).collect();
    let bytes = CreateTorrent::from_memory("p.bin", payload.clone())
        .piece_size(1 << 20)
        .generate()
        .unwrap();
    let info = Arc::new(TorrentInfo::from_bytes(&bytes).unwrap());
    let data = Bytes::from(payload);
    let mut g = c.benchmark_group("engine_block_path");
    g.throughput(Throughput::Bytes(LEN as u64));
    g.sample_size(10);
    g.bench_function("download_16_MiB_from_one_peer", |b| {
        b.iter(|| download(&info, &data));
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
