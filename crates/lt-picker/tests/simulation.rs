//! A swarm without a network: 1 seed and 50 leechers trade pieces in rounds,
//! each leecher asking its own `PiecePicker` what to request. The same swarm
//! runs with rarest-first picking and with random picking; rarest first must
//! finish in fewer rounds, because the seed's scarce upload slots then go to
//! pieces nobody else has yet.
//!
//! `cargo test -p lt-picker --test simulation -- --nocapture` prints the
//! distributed-copies curve of both runs.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers outside #[test] fns; a panic is a test failure"
)]

use std::time::Instant;

use lt_core::{Bitfield, PieceIndex};
use lt_picker::{Config, Layout, PeerKey, PickOptions, PiecePicker};

const PIECES: u32 = 100;
const LEECHERS: u32 = 50;
/// Upload slots per round: the seed's, and each leecher's.
const SEED_SLOTS: u32 = 2;
const LEECHER_SLOTS: u32 = 2;
/// Requests in flight per leecher per round.
const DOWNLOAD_SLOTS: u32 = 2;
const MAX_ROUNDS: u32 = 2_000;

/// The simulation's own generator (xorshift64*), so the test is reproducible.
struct SimRng(u64);

impl SimRng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
        usize::try_from((x >> 32) % n as u64).unwrap()
    }

    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            v.swap(i, self.below(i + 1));
        }
    }
}

struct Node {
    have: Bitfield,
    /// `None` for the seed.
    picker: Option<PiecePicker>,
}

struct Outcome {
    rounds: u32,
    /// (round, distributed copies among the leechers and the seed)
    curve: Vec<(u32, f64)>,
}

/// Runs the swarm to completion. `random_picking` keeps every leecher in the
/// initial random-pick mode for the whole download.
fn run(random_picking: bool, seed: u64) -> Outcome {
    let n = PIECES as usize;
    let nodes_len = LEECHERS + 1;
    let mut rng = SimRng(seed);
    let mut nodes: Vec<Node> = (0..nodes_len)
        .map(|i| {
            if i == 0 {
                return Node {
                    have: Bitfield::full(n),
                    picker: None,
                };
            }
            let config = Config {
                rng_seed: Some([u8::try_from(i).unwrap(); 32]),
                initial_picker_threshold: if random_picking { u32::MAX } else { 4 },
                ..Config::default()
            };
            let mut picker = PiecePicker::new(Layout::uniform(PIECES, 1).unwrap(), config);
            for j in 0..nodes_len {
                if j != i {
                    picker.add_peer(PeerKey(j)).unwrap();
                }
            }
            picker.peer_have_all(PeerKey(0)).unwrap();
            Node {
                have: Bitfield::new(n),
                picker: Some(picker),
            }
        })
        .collect();

    let now = Instant::now();
    let mut curve = Vec::new();
    let opts = PickOptions::default();
    for round in 1..=MAX_ROUNDS {
        // Each uploader unchokes up to its slot count of interested leechers
        // (random order), each of which then asks its picker for one block.
        let mut transfers: Vec<(u32, u32, u32)> = Vec::new(); // (to, from, piece)
        let mut download_left = vec![DOWNLOAD_SLOTS; nodes_len as usize];
        let mut uploaders: Vec<u32> = (0..nodes_len).collect();
        rng.shuffle(&mut uploaders);
        for &up in &uploaders {
            let mut slots = if up == 0 { SEED_SLOTS } else { LEECHER_SLOTS };
            let mut candidates: Vec<u32> = (1..nodes_len).filter(|&l| l != up).collect();
            rng.shuffle(&mut candidates);
            for l in candidates {
                if slots == 0 {
                    break;
                }
                let (to, from) = (l as usize, up as usize);
                if download_left[to] == 0 || !nodes[from].have.has_any_not_in(&nodes[to].have) {
                    continue;
                }
                let picker = nodes[to].picker.as_mut().unwrap();
                let blocks = picker.pick(now, PeerKey(up), 1, &opts).unwrap();
                if let Some(b) = blocks.first() {
                    transfers.push((l, up, b.piece.get()));
                    download_left[to] -= 1;
                    slots -= 1;
                }
            }
        }
        // Deliver; announce new pieces to everyone.
        let mut announced = Vec::new();
        for (to, from, piece) in transfers {
            let picker = nodes[to as usize].picker.as_mut().unwrap();
            let block = lt_picker::Block::new(piece, 0);
            let got = picker.block_received(PeerKey(from), block).unwrap();
            if got.redundant {
                continue;
            }
            picker.block_written(block).unwrap();
            picker.piece_passed(PieceIndex(piece)).unwrap();
            nodes[to as usize].have.set(piece as usize);
            announced.push((to, piece));
        }
        for (who, piece) in announced {
            for (i, node) in (0u32..).zip(nodes.iter_mut()) {
                if i != who
                    && let Some(p) = node.picker.as_mut()
                {
                    p.peer_have(PeerKey(who), PieceIndex(piece)).unwrap();
                }
            }
        }
        curve.push((round, distributed_copies(&nodes)));
        if nodes.iter().all(|node| node.have.all()) {
            for node in &nodes {
                if let Some(p) = &node.picker {
                    p.check_invariants();
                    assert!(p.is_seed());
                }
            }
            return Outcome {
                rounds: round,
                curve,
            };
        }
    }
    panic!("the swarm did not finish in {MAX_ROUNDS} rounds (random picking: {random_picking})");
}

/// The manual's distributed copies over the whole swarm: copies of the rarest
/// piece plus the fraction of pieces with more.
fn distributed_copies(nodes: &[Node]) -> f64 {
    let counts: Vec<usize> = (0..PIECES as usize)
        .map(|i| nodes.iter().filter(|node| node.have.get(i)).count())
        .collect();
    let min = counts.iter().copied().min().unwrap_or(0);
    let above = counts.iter().filter(|&&c| c > min).count();
    min as f64 + above as f64 / counts.len() as f64
}

#[test]
fn rarest_first_beats_random_picking() {
    let seed = std::env::var("LT_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_1234_u64);
    println!("LT_SIM_SEED={seed}");
    let rarest = run(false, seed);
    let random = run(true, seed);
    println!("round  distributed copies (rarest first | random)");
    let last = rarest.rounds.max(random.rounds);
    let at = |o: &Outcome, r: u32| {
        o.curve
            .get(r as usize - 1)
            .map_or_else(|| "done".to_owned(), |&(_, c)| format!("{c:6.2}"))
    };
    for r in (1..=last).filter(|r| r % 10 == 0 || *r == 1 || *r == last) {
        println!("{r:5}  {:>6} | {:>6}", at(&rarest, r), at(&random, r));
    }
    println!(
        "rounds to complete: rarest first {}, random {}",
        rarest.rounds, random.rounds
    );
    assert!(
        rarest.rounds < random.rounds,
        "rarest first took {} rounds, random {}",
        rarest.rounds,
        random.rounds
    );
}
