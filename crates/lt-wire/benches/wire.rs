//! Wire benchmarks: decoding PIECE streams (16 KiB blocks), small-message streams, a whole
//! `PeerConnection` receiving blocks, RC4 throughput and a complete MSE handshake.
//!
//! `cargo bench -p lt-wire -- --warm-up-time 1 --measurement-time 3`; compare the RC4 line
//! with `openssl speed -evp rc4` on the same machine.

#![allow(
    clippy::unwrap_used,
    clippy::cast_possible_truncation,
    reason = "benchmark setup on constants; a panic is a bench failure"
)]

use std::hint::black_box;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use lt_core::{InfoHash, PeerId, PieceIndex, Sha1Hash};
use lt_wire::mse::{MseConfig, MseHandshake, MseStatus, Rc4Stream};
use lt_wire::{
    BlockRequest, Handshake, Message, MessageDecoder, PeerConfig, PeerConnection, PeerEvent,
    PieceLayout, Reserved, TorrentParams,
};

const BLOCK: usize = 16 * 1024;
const BLOCKS: usize = 1024;

/// 1024 PIECE messages of 16 KiB: 16 MiB plus headers.
fn piece_stream() -> Bytes {
    let mut out = BytesMut::with_capacity(BLOCKS * (BLOCK + 13));
    let data = Bytes::from(vec![0x5a; BLOCK]);
    for i in 0..BLOCKS {
        Message::Piece {
            piece: PieceIndex(u32::try_from(i / 16).unwrap()),
            begin: u32::try_from((i % 16) * BLOCK).unwrap(),
            data: data.clone(),
        }
        .encode(&mut out);
    }
    out.freeze()
}

fn decode_all(buf: &mut BytesMut) -> usize {
    let mut dec = MessageDecoder::new(1 << 20);
    let mut n = 0;
    while let Some(m) = dec.decode(buf).unwrap() {
        if let Message::Piece { data, .. } = m {
            n += data.len();
            black_box(data);
        }
    }
    n
}

fn bench_decode(c: &mut Criterion) {
    let stream = piece_stream();
    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Bytes(stream.len() as u64));
    // The receive buffer already holds the stream: only the framing and the zero-copy split.
    g.bench_function("piece_stream_16k_blocks", |b| {
        b.iter_batched_ref(
            || BytesMut::from(&stream[..]),
            |buf| assert_eq!(decode_all(buf), BLOCKS * BLOCK),
            BatchSize::LargeInput,
        );
    });
    // As from a socket: 64 KiB reads copied into the receive buffer, then decoded.
    g.bench_function("piece_stream_16k_blocks_with_64k_reads", |b| {
        b.iter(|| {
            let mut dec = MessageDecoder::new(1 << 20);
            let mut buf = BytesMut::with_capacity(256 << 10);
            let mut n = 0;
            for chunk in stream.chunks(64 << 10) {
                buf.reserve(chunk.len());
                buf.extend_from_slice(chunk);
                while let Some(m) = dec.decode(&mut buf).unwrap() {
                    if let Message::Piece { data, .. } = m {
                        n += data.len();
                        black_box(data);
                    }
                }
            }
            assert_eq!(n, BLOCKS * BLOCK);
        });
    });
    g.finish();

    let mut small = BytesMut::new();
    for i in 0..10_000u32 {
        Message::Have(PieceIndex(i)).encode(&mut small);
        Message::Request(BlockRequest::new(PieceIndex(i), 0, 16384)).encode(&mut small);
    }
    let small = small.freeze();
    let mut g = c.benchmark_group("decode_small");
    g.throughput(Throughput::Elements(20_000));
    g.bench_function("have_and_request_messages", |b| {
        b.iter_batched_ref(
            || BytesMut::from(&small[..]),
            |buf| {
                let mut dec = MessageDecoder::new(1 << 20);
                while let Some(m) = dec.decode(buf).unwrap() {
                    black_box(m);
                }
            },
            BatchSize::LargeInput,
        );
    });
    g.finish();
}

/// A connected `PeerConnection` with every block of the stream requested.
fn requesting_connection(now: Instant) -> PeerConnection {
    let torrent = TorrentParams {
        info_hash: InfoHash::v1(Sha1Hash::new([1; 20])),
        layout: Some(PieceLayout {
            num_pieces: 64,
            piece_length: 16 * BLOCK as u32,
            total_length: 64 * 16 * BLOCK as u64,
        }),
        metadata_size: None,
    };
    let mut cfg = PeerConfig::new(PeerId::new([2; 20]));
    cfg.max_out_requests = BLOCKS;
    let mut conn = PeerConnection::outgoing(cfg, now, torrent, None, BytesMut::new()).unwrap();
    let theirs = Handshake {
        reserved: Reserved::default().with_fast(true),
        info_hash: Sha1Hash::new([1; 20]),
        peer_id: PeerId::new([3; 20]),
    };
    conn.handle_bytes(now, &theirs.to_bytes()).unwrap();
    conn.handle_bytes(now, &Message::Unchoke.to_bytes())
        .unwrap();
    for i in 0..BLOCKS {
        let r = BlockRequest::new(
            PieceIndex(u32::try_from(i / 16).unwrap()),
            u32::try_from((i % 16) * BLOCK).unwrap(),
            BLOCK as u32,
        );
        conn.request(now, r).unwrap();
    }
    while conn.poll_transmit().is_some() {}
    while conn.poll_event().is_some() {}
    conn
}

fn bench_connection(c: &mut Criterion) {
    let stream = piece_stream();
    let now = Instant::now();
    let mut g = c.benchmark_group("peer_connection");
    g.throughput(Throughput::Bytes(stream.len() as u64));
    g.bench_function("receive_16k_blocks_64k_reads", |b| {
        b.iter_batched_ref(
            || requesting_connection(now),
            |conn| {
                let mut n = 0;
                for chunk in stream.chunks(64 << 10) {
                    conn.handle_bytes(now, chunk).unwrap();
                    while let Some(e) = conn.poll_event() {
                        if let PeerEvent::Block { data, .. } = e {
                            n += data.len();
                        }
                    }
                }
                assert_eq!(n, BLOCKS * BLOCK);
            },
            BatchSize::LargeInput,
        );
    });
    g.finish();
}

fn bench_rc4(c: &mut Criterion) {
    let mut g = c.benchmark_group("rc4");
    for size in [16usize << 10, 1 << 20] {
        g.throughput(Throughput::Bytes(size as u64));
        let mut rc4 = Rc4Stream::from_keys(&Sha1Hash::new([1; 20]), &Sha1Hash::new([2; 20]));
        let mut buf = vec![0u8; size];
        g.bench_function(format!("encrypt_{}k", size >> 10), |b| {
            b.iter(|| rc4.encrypt(black_box(&mut buf)));
        });
    }
    g.finish();

    let mut g = c.benchmark_group("mse");
    g.bench_function("full_handshake_both_sides", |b| {
        let ih = Sha1Hash::new([7; 20]);
        let cfg = MseConfig::default();
        let mut seed = 0u8;
        b.iter(|| {
            seed = seed.wrapping_add(1);
            let mut a = MseHandshake::initiate(&cfg, ih, [seed; 32]);
            let mut bb = MseHandshake::respond(&cfg, [seed ^ 0xff; 32]);
            while a.status() != MseStatus::Done || bb.status() != MseStatus::Done {
                while let Some(x) = a.poll_transmit() {
                    bb.handle_bytes(&x).unwrap();
                }
                if let MseStatus::NeedSkey(_) = bb.status() {
                    bb.provide_skey(Some(ih)).unwrap();
                }
                while let Some(x) = bb.poll_transmit() {
                    a.handle_bytes(&x).unwrap();
                }
            }
            black_box((a.finish().unwrap(), bb.finish().unwrap()))
        });
    });
    g.finish();
}

criterion_group!(benches, bench_decode, bench_connection, bench_rc4);
criterion_main!(benches);
