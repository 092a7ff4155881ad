//! Behaviour of each picker feature through the public API, with the invariant
//! check after every step.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers outside #[test] fns; a panic is a test failure"
)]

use std::time::{Duration, Instant};

use lt_core::{Bitfield, PieceIndex};
use lt_picker::{
    Block, BlockState, Config, Error, Layout, PeerKey, PickOptions, PiecePicker, PieceState,
    Priority, Speed,
};

const P1: PeerKey = PeerKey(1);
const P2: PeerKey = PeerKey(2);
const P3: PeerKey = PeerKey(3);

fn config() -> Config {
    Config {
        rng_seed: Some([42; 32]),
        initial_picker_threshold: 0,
        ..Config::default()
    }
}

fn picker(pieces: u32, blocks: u32) -> PiecePicker {
    PiecePicker::new(Layout::uniform(pieces, blocks).unwrap(), config())
}

fn bits(n: usize, ones: &[usize]) -> Bitfield {
    (0..n).map(|i| ones.contains(&i)).collect()
}

fn add(p: &mut PiecePicker, peer: PeerKey, ones: &[usize]) {
    p.add_peer(peer).unwrap();
    let n = p.num_pieces() as usize;
    p.peer_bitfield(peer, bits(n, ones)).unwrap();
    p.check_invariants();
}

fn add_seed(p: &mut PiecePicker, peer: PeerKey) {
    p.add_peer(peer).unwrap();
    p.peer_have_all(peer).unwrap();
    p.check_invariants();
}

fn pick(p: &mut PiecePicker, peer: PeerKey, n: usize) -> Vec<Block> {
    pick_with(p, peer, n, &PickOptions::default())
}

fn pick_with(p: &mut PiecePicker, peer: PeerKey, n: usize, opts: &PickOptions) -> Vec<Block> {
    let blocks = p.pick(Instant::now(), peer, n, opts).unwrap();
    p.check_invariants();
    blocks
}

fn pieces_of(blocks: &[Block]) -> Vec<u32> {
    let mut v: Vec<u32> = blocks.iter().map(|b| b.piece.get()).collect();
    v.dedup();
    v
}

/// Receives, writes and passes every block of `piece` from `peer`.
fn complete(p: &mut PiecePicker, peer: PeerKey, piece: u32) {
    for b in 0..p.layout().blocks_in_piece(piece) {
        p.block_received(peer, Block::new(piece, b)).unwrap();
        p.block_written(Block::new(piece, b)).unwrap();
    }
    p.piece_passed(PieceIndex(piece)).unwrap();
    p.check_invariants();
}

#[test]
fn rarest_first() {
    let mut p = picker(6, 1);
    add(&mut p, P1, &[0, 1, 2, 3, 4, 5]);
    add(&mut p, P2, &[0, 1, 2, 3, 5]);
    add(&mut p, P3, &[0, 1, 3, 5]);
    // Availability: 0:3 1:3 2:2 3:3 4:1 5:3.
    assert_eq!(pieces_of(&pick(&mut p, P1, 1)), [4]);
    assert_eq!(pieces_of(&pick(&mut p, P1, 1)), [2]);
    assert_eq!(p.availability(PieceIndex(4)), 1);
    assert_eq!(p.availabilities(), [3, 3, 2, 3, 1, 3]);
}

#[test]
fn random_within_a_rarity_class() {
    // Many pickers with different seeds pick different first pieces among equals.
    let mut first = std::collections::BTreeSet::new();
    for seed in 0..20u8 {
        let mut p = PiecePicker::new(
            Layout::uniform(50, 1).unwrap(),
            Config {
                rng_seed: Some([seed; 32]),
                initial_picker_threshold: 0,
                ..Config::default()
            },
        );
        add(&mut p, P1, &(0..49).collect::<Vec<_>>());
        first.insert(pick(&mut p, P1, 1)[0].piece.get());
    }
    assert!(first.len() > 5, "{first:?}");
}

#[test]
fn seeds_are_counted_without_touching_pieces() {
    let mut p = picker(4, 1);
    add(&mut p, P1, &[0]);
    add_seed(&mut p, P2);
    add_seed(&mut p, P3);
    assert_eq!(p.num_seeds(), 2);
    assert_eq!(p.availabilities(), [3, 2, 2, 2]);
    // A seed can be asked for pieces no other peer has; P1 cannot.
    assert_eq!(pieces_of(&pick(&mut p, P1, 4)), [0]);
    let from_seed = pick(&mut p, P2, 3);
    assert_eq!(from_seed.len(), 3);
    assert!(from_seed.iter().all(|b| b.piece.get() != 0));
    p.remove_peer(P3).unwrap();
    p.check_invariants();
    assert_eq!(p.availabilities(), [2, 1, 1, 1]);
    // A full bitfield is a seed, too.
    p.add_peer(P3).unwrap();
    p.peer_bitfield(P3, Bitfield::full(4)).unwrap();
    assert_eq!(p.num_seeds(), 2);
    p.check_invariants();
}

#[test]
fn have_have_none_dont_have() {
    let mut p = picker(3, 1);
    p.add_peer(P1).unwrap();
    p.peer_have(P1, PieceIndex(1)).unwrap();
    p.peer_have(P1, PieceIndex(1)).unwrap();
    assert_eq!(p.availabilities(), [0, 1, 0]);
    p.peer_have(P1, PieceIndex(0)).unwrap();
    p.peer_have(P1, PieceIndex(2)).unwrap();
    // Three HAVEs of three pieces: now a seed.
    assert_eq!(p.num_seeds(), 1);
    assert_eq!(p.availabilities(), [1, 1, 1]);
    p.check_invariants();
    p.peer_dont_have(P1, PieceIndex(2)).unwrap();
    assert_eq!(p.num_seeds(), 0);
    assert_eq!(p.availabilities(), [1, 1, 0]);
    p.check_invariants();
    assert!(p.peer_has(P1, PieceIndex(0)));
    assert!(!p.peer_has(P1, PieceIndex(2)));
    p.peer_have_none(P1).unwrap();
    assert_eq!(p.availabilities(), [0, 0, 0]);
    assert!(pick(&mut p, P1, 5).is_empty());
    p.peer_have_all(P1).unwrap();
    assert_eq!(p.availabilities(), [1, 1, 1]);
    p.check_invariants();
}

#[test]
fn peer_faults_and_caller_mistakes_are_errors() {
    let mut p = picker(3, 2);
    add(&mut p, P1, &[0]);
    assert_eq!(p.add_peer(P1), Err(Error::DuplicatePeer(P1)));
    assert!(matches!(
        p.peer_have(P1, PieceIndex(3)),
        Err(Error::PieceOutOfRange { .. })
    ));
    assert!(matches!(
        p.peer_have(P1, PieceIndex(u32::MAX)),
        Err(Error::PieceOutOfRange { .. })
    ));
    assert!(matches!(
        p.peer_bitfield(P1, Bitfield::new(4)),
        Err(Error::BitfieldLength {
            expected: 3,
            actual: 4
        })
    ));
    assert_eq!(p.peer_have(P2, PieceIndex(0)), Err(Error::UnknownPeer(P2)));
    assert_eq!(p.remove_peer(P2), Err(Error::UnknownPeer(P2)));
    assert!(
        p.pick(Instant::now(), P2, 1, &PickOptions::default())
            .is_err()
    );
    assert!(matches!(
        p.block_received(P1, Block::new(0, 2)),
        Err(Error::BlockOutOfRange { .. })
    ));
    assert!(matches!(
        p.set_piece_priorities(&[Priority::NORMAL]),
        Err(Error::LengthMismatch { .. })
    ));
    let mut small = PiecePicker::new(
        Layout::uniform(1, 1).unwrap(),
        Config {
            max_peers: 1,
            ..config()
        },
    );
    small.add_peer(P1).unwrap();
    assert_eq!(small.add_peer(P2), Err(Error::TooManyPeers { max: 1 }));
    p.check_invariants();
}

#[test]
fn initial_random_picks_finish_partial_pieces_first() {
    let mut p = PiecePicker::new(
        Layout::uniform(20, 4).unwrap(),
        Config {
            rng_seed: Some([5; 32]),
            ..Config::default()
        },
    );
    add_seed(&mut p, P1);
    add_seed(&mut p, P2);
    let first = pick(&mut p, P1, 2);
    assert_eq!(pieces_of(&first).len(), 1);
    // P2 continues the piece P1 started rather than opening a new one.
    let second = pick(&mut p, P2, 2);
    assert_eq!(pieces_of(&second), pieces_of(&first));
}

#[test]
fn sequential_and_reverse() {
    let mut p = picker(10, 2);
    p.set_sequential(true);
    add_seed(&mut p, P1);
    add(&mut p, P2, &[3, 7]);
    complete(&mut p, P1, 0);
    assert_eq!(pieces_of(&pick(&mut p, P1, 3)), [1, 2]);
    assert_eq!(pieces_of(&pick(&mut p, P2, 1)), [3]);
    let rev = PickOptions {
        reverse: true,
        ..PickOptions::default()
    };
    assert_eq!(pieces_of(&pick_with(&mut p, P1, 3, &rev)), [9, 8]);
    p.check_invariants();
    // Priority 7 goes first even in sequential mode.
    let mut q = picker(10, 2);
    q.set_sequential(true);
    add_seed(&mut q, P1);
    q.set_piece_priority(PieceIndex(6), Priority::TOP).unwrap();
    assert_eq!(pieces_of(&pick(&mut q, P1, 1)), [6]);
    assert_eq!(pieces_of(&pick(&mut q, P1, 2)), [6, 0]);
}

#[test]
fn reverse_picks_the_most_common_pieces() {
    let mut p = picker(4, 1);
    add(&mut p, P1, &[0, 1, 2, 3]);
    add(&mut p, P2, &[2, 3]);
    add(&mut p, P3, &[2]);
    let rev = PickOptions {
        reverse: true,
        ..PickOptions::default()
    };
    assert_eq!(pieces_of(&pick_with(&mut p, P1, 1, &rev)), [2]);
    assert_eq!(pieces_of(&pick_with(&mut p, P1, 1, &rev)), [3]);
}

#[test]
fn parole_takes_whole_untouched_pieces() {
    let mut p = picker(2, 4);
    add_seed(&mut p, P1);
    add_seed(&mut p, P2);
    // P2 starts piece 0 (or 1).
    let started = pieces_of(&pick(&mut p, P2, 1))[0];
    let parole = PickOptions {
        on_parole: true,
        ..PickOptions::default()
    };
    let blocks = pick_with(&mut p, P1, 1, &parole);
    assert_eq!(blocks.len(), 4, "a whole piece");
    assert_eq!(pieces_of(&blocks), [1 - started]);
    // Nothing else is free for it: no duplicates on parole.
    assert!(pick_with(&mut p, P1, 1, &parole).is_empty());
}

#[test]
fn hash_failure_reopens_the_piece_and_names_contributors() {
    let mut p = picker(1, 2);
    add_seed(&mut p, P1);
    add_seed(&mut p, P2);
    let now = Instant::now();
    assert!(p.request_block(now, P1, Block::new(0, 0)).unwrap());
    assert!(p.request_block(now, P2, Block::new(0, 1)).unwrap());
    p.block_received(P1, Block::new(0, 0)).unwrap();
    let r = p.block_received(P2, Block::new(0, 1)).unwrap();
    assert!(r.piece_complete);
    assert_eq!(p.piece_state(PieceIndex(0)), Ok(PieceState::Complete));
    assert_eq!(p.piece_failed(PieceIndex(0)).unwrap(), [P1, P2]);
    assert_eq!(p.piece_state(PieceIndex(0)), Ok(PieceState::Open));
    p.check_invariants();
    assert_eq!(pick(&mut p, P1, 2).len(), 2);
}

#[test]
fn partial_pieces_first_when_configured() {
    let mut p = PiecePicker::new(
        Layout::uniform(3, 4).unwrap(),
        Config {
            prioritize_partial_pieces: true,
            ..config()
        },
    );
    add(&mut p, P1, &[0, 1, 2]);
    add(&mut p, P2, &[0, 1]);
    add(&mut p, P3, &[0, 1]);
    // Start piece 0 from P2; piece 2 is rarer but 0 is partial.
    assert!(
        p.request_block(Instant::now(), P2, Block::new(0, 0))
            .unwrap()
    );
    assert_eq!(pieces_of(&pick(&mut p, P1, 2)), [0]);
    // Without the setting, the rare piece wins.
    let mut q = picker(3, 4);
    add(&mut q, P1, &[0, 1, 2]);
    add(&mut q, P2, &[0, 1]);
    add(&mut q, P3, &[0, 1]);
    assert!(
        q.request_block(Instant::now(), P2, Block::new(0, 0))
            .unwrap()
    );
    assert_eq!(pieces_of(&pick(&mut q, P1, 2)), [2]);
}

#[test]
fn partial_pieces_first_when_there_are_too_many() {
    let mut p = picker(10, 4);
    add(&mut p, P1, &(0..10).collect::<Vec<_>>());
    add(&mut p, P2, &(0..9).collect::<Vec<_>>());
    // Two peers, four partial pieces (> 1.5 per peer), all but piece 9 common.
    for piece in 0..4 {
        assert!(
            p.request_block(Instant::now(), P2, Block::new(piece, 0))
                .unwrap()
        );
    }
    let blocks = pick(&mut p, P1, 3);
    assert!(blocks.iter().all(|b| b.piece.get() < 4), "{blocks:?}");
}

#[test]
fn whole_pieces_for_fast_peers() {
    let mut p = picker(3, 4);
    add_seed(&mut p, P1);
    add_seed(&mut p, P2);
    assert_eq!(pick(&mut p, P2, 1).len(), 1);
    let whole = PickOptions {
        prefer_whole_pieces: 1,
        ..PickOptions::default()
    };
    let blocks = pick_with(&mut p, P1, 2, &whole);
    assert_eq!(blocks.len(), 4);
    assert_eq!(pieces_of(&blocks).len(), 1);
    // Take the last open piece whole; then only P2's partial piece is left,
    // which a whole-piece peer still uses as a fallback.
    assert_eq!(pick_with(&mut p, P1, 1, &whole).len(), 4);
    // (Three free blocks, and one duplicate since we are in end game.)
    assert_eq!(pick_with(&mut p, P1, 2, &whole).len(), 4);
}

#[test]
fn speed_affinity() {
    let mut p = picker(2, 4);
    add(&mut p, P1, &[0]);
    add_seed(&mut p, P2);
    add_seed(&mut p, P3);
    let slow = PickOptions {
        speed: Speed::Slow,
        ..PickOptions::default()
    };
    let fast = PickOptions {
        speed: Speed::Fast,
        ..PickOptions::default()
    };
    // Piece 1 is the rarer: only the seeds have it.
    assert_eq!(pieces_of(&pick_with(&mut p, P2, 1, &slow)), [1]);
    assert_eq!(p.download_queue()[0].speed, Speed::Slow);
    // A fast peer prefers the untouched piece 0 over the slow partial piece 1,
    // though 1 is rarer.
    assert_eq!(pieces_of(&pick_with(&mut p, P3, 1, &fast)), [0]);
    // ... and uses the slow piece as a fallback (3 + 3 free blocks), then,
    // every piece having a request, one duplicate request (end game).
    let blocks = pick_with(&mut p, P3, 8, &fast);
    assert_eq!(blocks.len(), 7);
}

#[test]
fn priorities() {
    let mut p = picker(6, 1);
    add_seed(&mut p, P1);
    add(&mut p, P2, &[0, 1, 2]);
    add(&mut p, P3, &[0, 1, 2, 3]);
    // Availability 0:3 1:3 2:3 3:2 4:1 5:1.
    p.set_piece_priority(PieceIndex(4), Priority::DONT_DOWNLOAD)
        .unwrap();
    p.set_piece_priority(PieceIndex(0), Priority::TOP).unwrap();
    p.set_piece_priority(PieceIndex(1), Priority::new(2).unwrap())
        .unwrap();
    p.check_invariants();
    let order: Vec<u32> = (0..5).map(|_| pieces_of(&pick(&mut p, P1, 1))[0]).collect();
    // 7 first; then rarest (5, 3); priority 2 before priority 1 at equal availability.
    assert_eq!(order, [0, 5, 3, 1, 2]);
    assert!(pick(&mut p, P1, 1).is_empty(), "priority 0 is never picked");
    assert_eq!(p.piece_priority(PieceIndex(4)), Priority::DONT_DOWNLOAD);
    assert_eq!(p.piece_priorities().len(), 6);
    assert!(Priority::new(8).is_err());
}

#[test]
fn file_priorities_map_to_pieces() {
    let layout = Layout::new(4 * 16384, 16384, 16384).unwrap();
    let mut p = PiecePicker::new(layout, config());
    add_seed(&mut p, P1);
    // Files of 1.5, 1.5 and 1 pieces: skip the middle one.
    let sizes = [24576, 24576, 16384];
    let prio = [Priority::NORMAL, Priority::DONT_DOWNLOAD, Priority::NORMAL];
    p.set_file_priorities(&sizes, &prio).unwrap();
    p.check_invariants();
    assert_eq!(p.piece_priority(PieceIndex(2)), Priority::DONT_DOWNLOAD);
    let mut picked = pieces_of(&pick(&mut p, P1, 10));
    picked.sort_unstable();
    assert_eq!(picked, [0, 1, 3]);
}

#[test]
fn deadlines_first_and_duplicated() {
    let mut p = picker(5, 2);
    add_seed(&mut p, P1);
    add_seed(&mut p, P2);
    let t = Instant::now();
    p.set_piece_deadline(PieceIndex(3), t + Duration::from_millis(500))
        .unwrap();
    p.set_piece_deadline(PieceIndex(1), t + Duration::from_millis(100))
        .unwrap();
    p.check_invariants();
    assert_eq!(p.deadlines()[0].0, PieceIndex(1));
    assert_eq!(pieces_of(&pick(&mut p, P1, 4)), [1, 3]);
    // Both deadline pieces are fully requested from P1: P2 may duplicate one
    // of their blocks even though we are far from end game.
    let critical = PickOptions {
        time_critical_only: true,
        ..PickOptions::default()
    };
    let dup = pick_with(&mut p, P2, 1, &critical);
    assert_eq!(dup.len(), 1);
    assert_eq!(dup[0].piece, PieceIndex(1));
    assert_eq!(p.requesters(dup[0]), [P1, P2]);
    // When it arrives from P2, P1's request is to be cancelled.
    let r = p.block_received(P2, dup[0]).unwrap();
    assert_eq!(r.cancel, [P1]);
    p.check_invariants();
    p.reset_piece_deadline(PieceIndex(3)).unwrap();
    assert_eq!(p.deadlines().len(), 1);
    complete(&mut p, P1, 1);
    assert!(p.deadlines().is_empty(), "a piece we have has no deadline");
}

#[test]
fn suggested_pieces_first() {
    let mut p = picker(5, 1);
    add_seed(&mut p, P1);
    add(&mut p, P2, &[0]);
    p.peer_suggest(P1, PieceIndex(3)).unwrap();
    assert_eq!(pieces_of(&pick(&mut p, P1, 1)), [3]);
    // Suggestions are bounded.
    for i in 0..5 {
        for _ in 0..20 {
            p.peer_suggest(P1, PieceIndex(i)).unwrap();
        }
    }
    p.check_invariants();
    assert!(p.peer_suggest(P1, PieceIndex(9)).is_err());
}

#[test]
fn choked_peers_only_serve_allowed_fast_pieces() {
    let mut p = picker(6, 1);
    add_seed(&mut p, P1);
    add(&mut p, P2, &[2]);
    let choked = PickOptions {
        choked: true,
        ..PickOptions::default()
    };
    assert!(pick_with(&mut p, P1, 3, &choked).is_empty());
    p.peer_allowed_fast(P1, PieceIndex(2)).unwrap();
    p.peer_allowed_fast(P1, PieceIndex(4)).unwrap();
    // Rarest first among the allowed-fast pieces: 4 (only P1) before 2.
    let picked: Vec<u32> = pick_with(&mut p, P1, 3, &choked)
        .iter()
        .map(|b| b.piece.get())
        .collect();
    assert_eq!(picked, [4, 2]);
    for i in 0..100 {
        p.peer_allowed_fast(P1, PieceIndex(i % 6)).unwrap();
    }
    p.check_invariants();
}

#[test]
fn end_game_duplicates_the_last_blocks_and_cancels() {
    let mut p = picker(2, 2);
    add_seed(&mut p, P1);
    add_seed(&mut p, P2);
    add_seed(&mut p, P3);
    assert_eq!(pick(&mut p, P1, 2).len(), 2);
    assert!(!p.is_end_game(), "piece 1 has no request yet");
    assert_eq!(pick(&mut p, P2, 1).len(), 1);
    assert!(p.is_end_game());
    // One free block is left; P3 gets it, then one busy block.
    let s = p
        .pick_into(
            Instant::now(),
            P3,
            4,
            &PickOptions::default(),
            &mut Vec::new(),
        )
        .unwrap();
    assert_eq!((s.picked, s.busy, s.end_game), (2, 1, true));
    p.check_invariants();
    // Duplicates are capped at max_requesters_per_block (2) and never twice per peer.
    for _ in 0..5 {
        pick(&mut p, P1, 4);
        pick(&mut p, P2, 4);
        pick(&mut p, P3, 4);
    }
    for block in [
        Block::new(0, 0),
        Block::new(0, 1),
        Block::new(1, 0),
        Block::new(1, 1),
    ] {
        let r = p.requesters(block);
        assert_eq!(r.len(), 2, "{block}: {r:?}");
        let got = p.block_received(r[1], block).unwrap();
        assert_eq!(got.cancel, [r[0]]);
        assert!(!got.redundant);
        assert!(p.block_received(r[0], block).unwrap().redundant);
        p.check_invariants();
    }
    assert_eq!(
        p.outstanding_requests(P1) + p.outstanding_requests(P2) + p.outstanding_requests(P3),
        0
    );
}

#[test]
fn non_strict_end_game_duplicates_early() {
    let mut p = PiecePicker::new(
        Layout::uniform(3, 1).unwrap(),
        Config {
            strict_end_game: false,
            ..config()
        },
    );
    add_seed(&mut p, P1);
    add(&mut p, P2, &[0]);
    assert_eq!(pieces_of(&pick(&mut p, P2, 1)), [0]);
    // P1 has pieces 1 and 2 free, and may duplicate piece 0 as well.
    assert_eq!(pick(&mut p, P1, 3).len(), 3);
    p.check_invariants();
}

#[test]
fn block_states_and_download_queue() {
    let mut p = picker(2, 3);
    add_seed(&mut p, P1);
    let now = Instant::now();
    let b0 = Block::new(1, 0);
    let b1 = Block::new(1, 1);
    assert_eq!(p.block_state(b0).unwrap().state, BlockState::Open);
    assert!(p.request_block(now, P1, b0).unwrap());
    assert!(
        !p.request_block(now, P1, b0).unwrap(),
        "no second request by the same peer"
    );
    assert_eq!(p.piece_state(PieceIndex(1)), Ok(PieceState::Partial));
    let v = p.block_state(b0).unwrap();
    assert_eq!(
        (v.state, v.peer, v.num_peers),
        (BlockState::Requested, Some(P1), 1)
    );
    p.block_received(P1, b0).unwrap();
    assert_eq!(p.block_state(b0).unwrap().state, BlockState::Writing);
    assert!(!p.block_written(b0).unwrap());
    assert_eq!(p.block_state(b0).unwrap().state, BlockState::Finished);
    // An unrequested block is accepted; a failed write reopens it.
    p.block_received(P1, b1).unwrap();
    p.block_write_failed(b1).unwrap();
    assert_eq!(p.block_state(b1).unwrap().state, BlockState::Open);
    let q = p.download_queue();
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].piece, PieceIndex(1));
    let states: Vec<BlockState> = q[0].blocks.iter().map(|b| b.state).collect();
    assert_eq!(
        states,
        [BlockState::Finished, BlockState::Open, BlockState::Open]
    );
    // The picker never hands out the finished block.
    let blocks = pick(&mut p, P1, 10);
    assert!(!blocks.contains(&b0));
    assert_eq!(blocks.len(), 5);
    assert_eq!(p.piece_state(PieceIndex(1)), Ok(PieceState::FullyRequested));
    p.check_invariants();
}

#[test]
fn cancel_and_disconnect_reopen_blocks() {
    let mut p = picker(2, 2);
    add_seed(&mut p, P1);
    add_seed(&mut p, P2);
    let blocks = pick(&mut p, P1, 4);
    assert_eq!(blocks.len(), 4);
    assert_eq!(p.outstanding_requests(P1), 4);
    assert!(p.cancel_request(P1, blocks[0]).unwrap());
    assert!(!p.cancel_request(P1, blocks[0]).unwrap());
    p.check_invariants();
    assert_eq!(pick(&mut p, P2, 1), [blocks[0]]);
    p.remove_peer(P1).unwrap();
    p.check_invariants();
    assert_eq!(p.outstanding_requests(P1), 0);
    assert_eq!(pick(&mut p, P2, 4).len(), 3);
    p.check_invariants();
}

#[test]
fn have_set_and_cleared() {
    let mut p = picker(4, 1);
    add_seed(&mut p, P1);
    p.set_have(PieceIndex(0)).unwrap();
    p.set_have(PieceIndex(3)).unwrap();
    assert_eq!(p.num_have(), 2);
    assert!(p.have_piece(PieceIndex(0)));
    assert_eq!(p.have_bitfield().iter_ones().collect::<Vec<_>>(), [0, 3]);
    p.check_invariants();
    let mut picked = pieces_of(&pick(&mut p, P1, 4));
    picked.sort_unstable();
    assert_eq!(picked, [1, 2]);
    p.clear_have(PieceIndex(3)).unwrap();
    p.check_invariants();
    assert_eq!(pieces_of(&pick(&mut p, P1, 4)), [3]);
    assert!(!p.is_finished());
    complete(&mut p, P1, 1);
    complete(&mut p, P1, 2);
    complete(&mut p, P1, 3);
    assert!(p.is_finished() && p.is_seed());
    assert!(!p.is_interesting(P1));
}

#[test]
fn interest() {
    let mut p = picker(4, 1);
    add(&mut p, P1, &[1]);
    add(&mut p, P2, &[]);
    assert!(p.is_interesting(P1));
    assert!(!p.is_interesting(P2));
    p.set_piece_priority(PieceIndex(1), Priority::DONT_DOWNLOAD)
        .unwrap();
    assert!(!p.is_interesting(P1));
}

#[test]
fn distributed_copies() {
    let mut p = picker(4, 1);
    add(&mut p, P1, &[0, 1]);
    add(&mut p, P2, &[0]);
    let d = p.distributed_copies();
    assert_eq!((d.full_copies, d.fraction), (0, 500));
    add_seed(&mut p, P3);
    let d = p.distributed_copies();
    assert_eq!((d.full_copies, d.fraction), (1, 500));
    assert!((d.copies() - 1.5).abs() < 1e-9);
    p.set_have(PieceIndex(2)).unwrap();
    p.set_have(PieceIndex(3)).unwrap();
    assert_eq!(p.distributed_copies().full_copies, 2);
}

#[test]
fn big_pieces_get_big_blocks() {
    let layout = Layout::new(64 << 20, 8 << 20, lt_core::BLOCK_SIZE).unwrap();
    let mut p = PiecePicker::new(layout, config());
    add_seed(&mut p, P1);
    let blocks = pick(&mut p, P1, 300);
    assert_eq!(blocks.len(), 300);
    assert_eq!(pieces_of(&blocks).len(), 2, "256 blocks per piece");
    assert_eq!(p.layout().request(blocks[0]), Some((0, 32 * 1024)));
}

#[test]
fn zero_piece_torrent() {
    let mut p = PiecePicker::new(Layout::new(0, 16384, 16384).unwrap(), config());
    p.add_peer(P1).unwrap();
    p.peer_bitfield(P1, Bitfield::new(0)).unwrap();
    p.peer_have_all(P1).unwrap();
    assert!(pick(&mut p, P1, 4).is_empty());
    assert!(p.is_finished());
    assert_eq!(p.distributed_copies().full_copies, 1);
    p.remove_peer(P1).unwrap();
    p.check_invariants();
}

#[test]
fn request_timeouts_use_the_callers_clock() {
    let mut p = picker(2, 2);
    add_seed(&mut p, P1);
    add_seed(&mut p, P2);
    let t0 = Instant::now();
    let timeout = Duration::from_secs(10);
    assert_eq!(p.next_request_timeout(timeout), None);
    let a = p.pick(t0, P1, 2, &PickOptions::default()).unwrap();
    let b = p
        .pick(t0 + Duration::from_secs(5), P2, 2, &PickOptions::default())
        .unwrap();
    assert_eq!(p.next_request_timeout(timeout), Some(t0 + timeout));
    let mut out = Vec::new();
    p.expired_requests(t0 + Duration::from_secs(9), timeout, &mut out);
    assert!(out.is_empty());
    p.expired_requests(t0 + Duration::from_secs(12), timeout, &mut out);
    assert_eq!(out, a.iter().map(|&x| (x, vec![P1])).collect::<Vec<_>>());
    for block in a {
        p.cancel_request(P1, block).unwrap();
    }
    assert_eq!(
        p.next_request_timeout(timeout),
        Some(t0 + Duration::from_secs(15))
    );
    assert_eq!(b.len(), 2);
    p.check_invariants();
}
