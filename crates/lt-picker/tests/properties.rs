//! quickcheck properties of the picker: random operation sequences keep every
//! invariant, and picks are always valid; sequential and rarest-first order;
//! random swarms always complete.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers outside #[test] fns; a panic is a test failure"
)]

use std::time::{Duration, Instant};

use lt_core::{Bitfield, PieceIndex};
use lt_picker::{
    Block, BlockState, Config, Layout, PeerKey, PickOptions, PiecePicker, Priority, Speed,
};
use quickcheck::{Arbitrary, Gen};
use quickcheck_macros::quickcheck;

const MAX_PEERS: u8 = 6;

#[derive(Clone, Debug)]
enum Op {
    AddPeer(u8),
    RemovePeer(u8),
    Bitfield(u8, Vec<bool>),
    Have(u8, u16),
    HaveAll(u8),
    HaveNone(u8),
    DontHave(u8, u16),
    Suggest(u8, u16),
    AllowedFast(u8, u16),
    Priority(u16, u8),
    Deadline(u16, u8),
    ResetDeadline(u16),
    Pick(u8, u8, u8),
    Receive(u8, u16, u8),
    Cancel(u8, u16, u8),
    Written(u16, u8),
    WriteFailed(u16, u8),
    Passed(u16),
    Failed(u16),
    SetHave(u16),
    ClearHave(u16),
    Sequential(bool),
}

impl Arbitrary for Op {
    fn arbitrary(g: &mut Gen) -> Self {
        let peer = u8::arbitrary(g) % MAX_PEERS;
        // Piece and block indices slightly past the end, to exercise errors.
        let piece = u16::arbitrary(g) % 26;
        let block = u8::arbitrary(g) % 6;
        match u8::arbitrary(g) % 26 {
            0..=1 => Self::AddPeer(peer),
            2 => Self::RemovePeer(peer),
            3 => Self::Bitfield(peer, (0..24).map(|_| bool::arbitrary(g)).collect()),
            4..=5 => Self::Have(peer, piece),
            6 => Self::HaveAll(peer),
            7 => Self::HaveNone(peer),
            8 => Self::DontHave(peer, piece),
            9 => Self::Suggest(peer, piece),
            10 => Self::AllowedFast(peer, piece),
            11 => Self::Priority(piece, u8::arbitrary(g) % 9),
            12 => Self::Deadline(piece, u8::arbitrary(g)),
            13 => Self::ResetDeadline(piece),
            14..=17 => Self::Pick(peer, u8::arbitrary(g) % 8, u8::arbitrary(g)),
            18..=19 => Self::Receive(peer, piece, block),
            20 => Self::Cancel(peer, piece, block),
            21 => Self::Written(piece, block),
            22 => Self::WriteFailed(piece, block),
            23 => {
                if bool::arbitrary(g) {
                    Self::Passed(piece)
                } else {
                    Self::Failed(piece)
                }
            }
            24 => {
                if bool::arbitrary(g) {
                    Self::SetHave(piece)
                } else {
                    Self::ClearHave(piece)
                }
            }
            _ => Self::Sequential(bool::arbitrary(g)),
        }
    }
}

#[derive(Clone, Debug)]
struct Scenario {
    pieces: u32,
    blocks: u32,
    threshold: u32,
    strict: bool,
    seed: u8,
    ops: Vec<Op>,
}

impl Arbitrary for Scenario {
    fn arbitrary(g: &mut Gen) -> Self {
        let len = usize::arbitrary(g) % 300;
        // Start with a few peers that have pieces, so that picks have work to do.
        let mut ops = Vec::new();
        for k in 0..1 + u8::arbitrary(g) % 4 {
            ops.push(Op::AddPeer(k));
            ops.push(if u8::arbitrary(g) % 4 == 0 {
                Op::HaveAll(k)
            } else {
                Op::Bitfield(k, (0..24).map(|_| bool::arbitrary(g)).collect())
            });
        }
        ops.extend((0..len).map(|_| Op::arbitrary(g)));
        Self {
            pieces: 1 + u32::arbitrary(g) % 24,
            blocks: 1 + u32::arbitrary(g) % 4,
            threshold: u32::arbitrary(g) % 3,
            strict: bool::arbitrary(g),
            seed: u8::arbitrary(g),
            ops,
        }
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Self>> {
        let me = self.clone();
        Box::new(self.ops.shrink().map(move |ops| Self { ops, ..me.clone() }))
    }
}

fn options(bits: u8) -> PickOptions {
    PickOptions {
        reverse: bits & 1 != 0,
        on_parole: bits & 2 != 0,
        prefer_whole_pieces: u32::from(bits >> 2 & 1),
        speed: match bits >> 3 & 3 {
            0 => Speed::None,
            1 => Speed::Slow,
            2 => Speed::Medium,
            _ => Speed::Fast,
        },
        choked: bits & 0x20 != 0 && bits & 0x40 != 0,
        time_critical_only: bits & 0x80 != 0 && bits & 0x40 != 0,
    }
}

/// Applies `op`, ignoring errors (they must leave the state unchanged, which
/// the invariant check after it covers), and checks each picked block.
fn apply(p: &mut PiecePicker, now: Instant, op: &Op) {
    let n = p.num_pieces() as usize;
    let pi = |x: u16| PieceIndex(u32::from(x));
    let blk = |x: u16, b: u8| Block::new(u32::from(x), u32::from(b));
    match *op {
        Op::AddPeer(k) => drop(p.add_peer(PeerKey(k.into()))),
        Op::RemovePeer(k) => drop(p.remove_peer(PeerKey(k.into()))),
        Op::Bitfield(k, ref bits) => {
            let bf: Bitfield = bits.iter().copied().take(n).collect();
            drop(p.peer_bitfield(PeerKey(k.into()), bf));
        }
        Op::Have(k, x) => drop(p.peer_have(PeerKey(k.into()), pi(x))),
        Op::HaveAll(k) => drop(p.peer_have_all(PeerKey(k.into()))),
        Op::HaveNone(k) => drop(p.peer_have_none(PeerKey(k.into()))),
        Op::DontHave(k, x) => drop(p.peer_dont_have(PeerKey(k.into()), pi(x))),
        Op::Suggest(k, x) => drop(p.peer_suggest(PeerKey(k.into()), pi(x))),
        Op::AllowedFast(k, x) => drop(p.peer_allowed_fast(PeerKey(k.into()), pi(x))),
        Op::Priority(x, v) => {
            if let Ok(prio) = Priority::new(v) {
                drop(p.set_piece_priority(pi(x), prio));
            }
        }
        Op::Deadline(x, ms) => {
            drop(p.set_piece_deadline(pi(x), now + Duration::from_millis(ms.into())));
        }
        Op::ResetDeadline(x) => drop(p.reset_piece_deadline(pi(x))),
        Op::Pick(k, count, bits) => {
            let peer = PeerKey(k.into());
            let opts = options(bits);
            let before: Vec<Option<lt_picker::BlockView>> = (0..n)
                .flat_map(|piece| {
                    let piece = u32::try_from(piece).unwrap();
                    (0..p.layout().blocks_in_piece(piece)).map(move |b| Block::new(piece, b))
                })
                .map(|b| p.block_state(b).ok())
                .collect();
            let Ok(blocks) = p.pick(now, peer, count.into(), &opts) else {
                return;
            };
            let mut seen = blocks.clone();
            seen.sort_unstable();
            seen.dedup();
            assert_eq!(seen.len(), blocks.len(), "a block picked twice");
            let bpp = p.layout().blocks_per_piece();
            for b in blocks {
                assert!(
                    p.peer_has(peer, b.piece),
                    "{b} picked from a peer that lacks it"
                );
                assert!(
                    !p.piece_priority(b.piece).is_dont_download(),
                    "{b} has priority 0"
                );
                assert!(!p.have_piece(b.piece), "{b} is a piece we have");
                let index = (b.piece.get() * bpp + b.block.get()) as usize;
                let was = before[index].expect("valid block");
                assert!(
                    matches!(was.state, BlockState::Open | BlockState::Requested),
                    "{b} was {:?}",
                    was.state
                );
                if was.state == BlockState::Requested {
                    assert!(!opts.on_parole, "duplicate request for a peer on parole");
                }
                assert!(p.requesters(b).contains(&peer));
            }
        }
        Op::Receive(k, x, b) => drop(p.block_received(PeerKey(k.into()), blk(x, b))),
        Op::Cancel(k, x, b) => drop(p.cancel_request(PeerKey(k.into()), blk(x, b))),
        Op::Written(x, b) => drop(p.block_written(blk(x, b))),
        Op::WriteFailed(x, b) => drop(p.block_write_failed(blk(x, b))),
        Op::Passed(x) => drop(p.piece_passed(pi(x))),
        Op::Failed(x) => drop(p.piece_failed(pi(x))),
        Op::SetHave(x) => drop(p.set_have(pi(x))),
        Op::ClearHave(x) => drop(p.clear_have(pi(x))),
        Op::Sequential(on) => p.set_sequential(on),
    }
}

#[test]
fn random_operations_keep_invariants_and_picks_valid() {
    quickcheck::QuickCheck::new()
        .tests(500)
        .quickcheck(run_scenario as fn(Scenario));
}

fn run_scenario(s: Scenario) {
    let config = Config {
        rng_seed: Some([s.seed; 32]),
        initial_picker_threshold: s.threshold,
        strict_end_game: s.strict,
        ..Config::default()
    };
    let mut p = PiecePicker::new(Layout::uniform(s.pieces, s.blocks).unwrap(), config);
    let now = Instant::now();
    for op in &s.ops {
        apply(&mut p, now, op);
        p.check_invariants();
    }
}

/// A peer with bitfield `has` (cycled to the piece count), our pieces `mine`
/// and priorities 0/1 from `zero`.
fn setup(pieces: u32, has: &[bool], mine: &[bool], zero: &[bool], sequential: bool) -> PiecePicker {
    let mut p = PiecePicker::new(
        Layout::uniform(pieces, 2).unwrap(),
        Config {
            rng_seed: Some([9; 32]),
            initial_picker_threshold: 0,
            sequential,
            ..Config::default()
        },
    );
    let n = pieces as usize;
    let get = |v: &[bool], i: usize| !v.is_empty() && v[i % v.len()];
    p.add_peer(PeerKey(0)).unwrap();
    p.peer_bitfield(PeerKey(0), (0..n).map(|i| get(has, i)).collect())
        .unwrap();
    for i in 0..n {
        let piece = PieceIndex(u32::try_from(i).unwrap());
        if get(mine, i) {
            p.set_have(piece).unwrap();
        }
        if get(zero, i) {
            p.set_piece_priority(piece, Priority::DONT_DOWNLOAD)
                .unwrap();
        }
    }
    p
}

#[quickcheck]
fn sequential_returns_the_lowest_eligible_piece(
    pieces: u8,
    has: Vec<bool>,
    mine: Vec<bool>,
    zero: Vec<bool>,
) -> bool {
    let pieces = 1 + u32::from(pieces % 64);
    let mut p = setup(pieces, &has, &mine, &zero, true);
    let expected = (0..pieces).map(PieceIndex).find(|&i| {
        p.peer_has(PeerKey(0), i) && !p.have_piece(i) && !p.piece_priority(i).is_dont_download()
    });
    let got = p
        .pick(Instant::now(), PeerKey(0), 1, &PickOptions::default())
        .unwrap();
    got.first().map(|b| b.piece) == expected
}

#[quickcheck]
fn rarest_first_picks_a_piece_of_least_availability(
    peers: Vec<Vec<bool>>,
    mine: Vec<bool>,
) -> bool {
    let pieces = 40u32;
    let mut p = setup(pieces, &[true], &mine, &[], false);
    for (k, bits) in (1u32..).zip(peers.iter().take(20)) {
        let n = pieces as usize;
        let bf: Bitfield = (0..n)
            .map(|i| !bits.is_empty() && bits[i % bits.len()])
            .collect();
        p.add_peer(PeerKey(k)).unwrap();
        p.peer_bitfield(PeerKey(k), bf).unwrap();
    }
    let peer = PeerKey(0);
    let min = (0..pieces)
        .map(PieceIndex)
        .filter(|&i| p.peer_has(peer, i) && !p.have_piece(i))
        .map(|i| p.availability(i))
        .min();
    let got = p
        .pick(Instant::now(), peer, 1, &PickOptions::default())
        .unwrap();
    p.check_invariants();
    match (got.first(), min) {
        (None, None) => true,
        (Some(b), Some(min)) => p.availability(b.piece) == min,
        _ => false,
    }
}

/// A leecher with random peers whose pieces together cover the torrent
/// always finishes, whatever the order in which blocks arrive.
#[quickcheck]
fn a_random_swarm_always_completes(
    peers: Vec<Vec<bool>>,
    pieces: u8,
    seed: u8,
    strict: bool,
) -> bool {
    let pieces = 1 + u32::from(pieces % 30);
    let n = pieces as usize;
    let mut p = PiecePicker::new(
        Layout::uniform(pieces, 3).unwrap(),
        Config {
            rng_seed: Some([seed; 32]),
            strict_end_game: strict,
            ..Config::default()
        },
    );
    let mut sets: Vec<Bitfield> = peers
        .iter()
        .take(8)
        .map(|b| (0..n).map(|i| !b.is_empty() && b[i % b.len()]).collect())
        .collect();
    if sets.is_empty() {
        sets.push(Bitfield::new(n));
    }
    // Make the union cover every piece.
    for i in 0..n {
        if !sets.iter().any(|s| s.get(i)) {
            let k = i % sets.len();
            sets[k].set(i);
        }
    }
    for (k, bits) in (0u32..).zip(&sets) {
        p.add_peer(PeerKey(k)).unwrap();
        p.peer_bitfield(PeerKey(k), bits.clone()).unwrap();
    }
    let now = Instant::now();
    let mut in_flight: Vec<(PeerKey, Block)> = Vec::new();
    for round in 0..10_000u32 {
        if p.is_finished() {
            p.check_invariants();
            return true;
        }
        for k in 0..u32::try_from(sets.len()).unwrap() {
            let blocks = p.pick(now, PeerKey(k), 2, &PickOptions::default()).unwrap();
            in_flight.extend(blocks.into_iter().map(|b| (PeerKey(k), b)));
        }
        // Deliver about half of the requests, in a scrambled order.
        let mut keep = Vec::new();
        for (i, (peer, block)) in in_flight.drain(..).enumerate() {
            if (i + round as usize + usize::from(seed)).is_multiple_of(2) {
                keep.push((peer, block));
                continue;
            }
            let r = p.block_received(peer, block).unwrap();
            if r.redundant {
                continue;
            }
            p.block_written(block).unwrap();
            if r.piece_complete {
                p.piece_passed(block.piece).unwrap();
            }
        }
        // Cancelled duplicates may still be in flight; drop those that are stale.
        in_flight = keep;
        if round % 16 == 0 {
            p.check_invariants();
        }
    }
    false
}
