//! The picker's hot operations on a 100,000-piece torrent (16 blocks per
//! piece) with 200 connected peers holding random halves of it:
//!
//! - `pick_16_blocks`: one `pick_into` of 16 blocks for a (non-seed) peer;
//! - `have`: one `peer_have` of a piece the peer lacked;
//! - `seed_add_remove/*`: registering a peer, its HAVE ALL (or full BITFIELD)
//!   and removing it, at 1,000 and 100,000 pieces (the same time at both sizes
//!   is the O(1) claim);
//! - `peer_join_rebuild`: a peer with a random half bitfield joining and the
//!   next pick, which rebuilds the order.
//!
//! Timed with `iter_custom`, so each sample times only the operation; the
//! untimed undo (cancelling the picked requests, DONT HAVE) keeps the state
//! steady. Run: `cargo bench -p lt-picker -- --warm-up-time 1 --measurement-time 3`.

#![allow(
    clippy::unwrap_used,
    clippy::cast_possible_truncation,
    missing_docs,
    reason = "benchmark harness"
)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use lt_core::{Bitfield, PieceIndex};
use lt_picker::{Block, Config, Layout, PeerKey, PickOptions, PiecePicker};

const PIECES: u32 = 100_000;
const PEERS: u32 = 200;

/// xorshift64* for reproducible bitfields.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn random_half(rng: &mut Rng, n: u32) -> Bitfield {
    (0..n).map(|_| rng.next() >> 63 == 1).collect()
}

/// A picker past the initial random picks, with 200 peers and some partial
/// pieces in progress.
fn swarm(pieces: u32) -> (PiecePicker, Vec<Bitfield>) {
    let config = Config {
        rng_seed: Some([7; 32]),
        ..Config::default()
    };
    let mut p = PiecePicker::new(Layout::uniform(pieces, 16).unwrap(), config);
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let mut fields = Vec::new();
    for k in 0..PEERS {
        let bits = random_half(&mut rng, pieces);
        fields.push(bits.clone());
        p.add_peer(PeerKey(k)).unwrap();
        p.peer_bitfield(PeerKey(k), bits).unwrap();
    }
    // We have 1% of the pieces; 100 pieces are being downloaded.
    for i in (0..pieces).step_by(100) {
        p.set_have(PieceIndex(i)).unwrap();
    }
    let now = Instant::now();
    for k in 0..100 {
        p.pick(now, PeerKey(k), 8, &PickOptions::default()).unwrap();
    }
    (p, fields)
}

fn bench(c: &mut Criterion) {
    let (mut p, fields) = swarm(PIECES);
    let now = Instant::now();
    let opts = PickOptions::default();

    c.bench_function("pick_16_blocks", |b| {
        let mut out: Vec<Block> = Vec::with_capacity(64);
        let mut k = 0u32;
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let peer = PeerKey(100 + k % 100);
                k = k.wrapping_add(1);
                out.clear();
                let start = Instant::now();
                let s = p.pick_into(now, peer, 16, &opts, &mut out).unwrap();
                total += start.elapsed();
                black_box(s);
                for &block in &out {
                    p.cancel_request(peer, block).unwrap();
                }
            }
            total
        });
    });

    c.bench_function("have", |b| {
        // (peer, piece) pairs where the peer lacks the piece.
        let mut rng = Rng(99);
        let pairs: Vec<(PeerKey, PieceIndex)> = (0..4096)
            .map(|_| {
                loop {
                    let k = (rng.next() % u64::from(PEERS)) as u32;
                    let i = (rng.next() % u64::from(PIECES)) as u32;
                    if !fields[k as usize].get(i as usize) {
                        break (PeerKey(k), PieceIndex(i));
                    }
                }
            })
            .collect();
        let mut j = 0usize;
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (peer, piece) = pairs[j % pairs.len()];
                j += 1;
                let start = Instant::now();
                p.peer_have(peer, piece).unwrap();
                total += start.elapsed();
                p.peer_dont_have(peer, piece).unwrap();
            }
            total
        });
    });

    let mut group = c.benchmark_group("seed_add_remove");
    for pieces in [1_000u32, PIECES] {
        let (mut q, _) = if pieces == PIECES {
            (p.clone(), Vec::new())
        } else {
            swarm(pieces)
        };
        group.bench_function(format!("have_all/{pieces}"), |b| {
            b.iter(|| {
                q.add_peer(PeerKey(1_000_000)).unwrap();
                q.peer_have_all(PeerKey(1_000_000)).unwrap();
                q.remove_peer(black_box(PeerKey(1_000_000))).unwrap();
            });
        });
        group.bench_function(format!("remove_only/{pieces}"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    q.add_peer(PeerKey(1_000_000)).unwrap();
                    q.peer_have_all(PeerKey(1_000_000)).unwrap();
                    let start = Instant::now();
                    q.remove_peer(black_box(PeerKey(1_000_000))).unwrap();
                    total += start.elapsed();
                }
                total
            });
        });
        let full = Bitfield::full(pieces as usize);
        group.bench_function(format!("full_bitfield/{pieces}"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let bits = full.clone();
                    let start = Instant::now();
                    q.add_peer(PeerKey(1_000_000)).unwrap();
                    q.peer_bitfield(PeerKey(1_000_000), bits).unwrap();
                    q.remove_peer(black_box(PeerKey(1_000_000))).unwrap();
                    total += start.elapsed();
                }
                total
            });
        });
    }
    group.finish();

    c.bench_function("peer_join_rebuild", |b| {
        let mut rng = Rng(5);
        let bits = random_half(&mut rng, PIECES);
        let mut out = Vec::new();
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let field = bits.clone();
                let start = Instant::now();
                p.add_peer(PeerKey(2_000_000)).unwrap();
                p.peer_bitfield(PeerKey(2_000_000), field).unwrap();
                out.clear();
                p.pick_into(now, PeerKey(2_000_000), 16, &opts, &mut out)
                    .unwrap();
                total += start.elapsed();
                for &block in &out {
                    p.cancel_request(PeerKey(2_000_000), block).unwrap();
                }
                p.remove_peer(PeerKey(2_000_000)).unwrap();
            }
            total
        });
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
