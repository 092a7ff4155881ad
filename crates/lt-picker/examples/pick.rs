//! Downloads a small torrent from three simulated peers through the picker and
//! prints what it requested from whom.
//!
//! `cargo run -p lt-picker --example pick`

use std::time::Instant;

use lt_core::Bitfield;
use lt_picker::{Config, Layout, PeerKey, PickOptions, PiecePicker};

fn main() -> Result<(), lt_picker::Error> {
    // 8 pieces of 4 blocks of 16 KiB.
    let layout = Layout::uniform(8, 4)?;
    let config = Config {
        rng_seed: Some([7; 32]),
        ..Config::default()
    };
    let mut picker = PiecePicker::new(layout, config);

    let seed = PeerKey(0);
    picker.add_peer(seed)?;
    picker.peer_have_all(seed)?;
    for (key, pieces) in [(1, [0, 1, 2, 3]), (2, [2, 3, 4, 5])] {
        let peer = PeerKey(key);
        picker.add_peer(peer)?;
        picker.peer_bitfield(
            peer,
            (0..8).map(|i| pieces.contains(&i)).collect::<Bitfield>(),
        )?;
    }
    println!("availability: {:?}", picker.availabilities());

    let now = Instant::now();
    while !picker.is_finished() {
        for peer in [seed, PeerKey(1), PeerKey(2)] {
            let blocks = picker.pick(now, peer, 4, &PickOptions::default())?;
            if blocks.is_empty() {
                continue;
            }
            let shown: Vec<String> = blocks.iter().map(ToString::to_string).collect();
            println!("{peer}: request {}", shown.join(" "));
            for block in blocks {
                let received = picker.block_received(peer, block)?;
                for other in received.cancel {
                    println!("  cancel {block} at {other}");
                }
                if received.redundant {
                    continue;
                }
                picker.block_written(block)?;
                if received.piece_complete {
                    picker.piece_passed(block.piece)?;
                    println!("  piece {} passed", block.piece);
                }
            }
        }
    }
    let copies = picker.distributed_copies();
    println!(
        "done: {} pieces; distributed copies {:.3}",
        picker.num_have(),
        copies.copies()
    );
    Ok(())
}
