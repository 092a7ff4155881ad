//! The auto-manager inside a swarm (`lt_engine::sim`).

#![allow(clippy::unwrap_used, clippy::cast_precision_loss)]
use std::time::{Duration, Instant};

use lt_engine::sim::SimBuilder;

/// A lone seed that reaches `share_ratio_limit` (2.0 by default) long before the slow
/// swarm is done keeps seeding: a seed past its goal only loses priority to other
/// torrents. It used to pause itself and leave every leecher one piece short.
#[test]
fn a_seed_past_its_share_ratio_keeps_seeding_when_nothing_else_wants_the_slot() {
    let mut sim = SimBuilder::new(31)
        .leechers(7)
        .payload(4 << 20, 32 << 10)
        .upload(300_000, 1_000_000)
        .settings(|i, _, s| {
            if i == 1 {
                s.unchoke_slots_limit = 3;
            }
        })
        .build(Instant::now())
        .unwrap();
    for i in 2..=4 {
        sim.set_upload(i, 1_500_000);
    }
    for i in 5..=7 {
        sim.set_upload(i, 60_000);
    }
    assert!(
        sim.run(Duration::from_secs(600)),
        "the swarm stalled: {:?}",
        sim.finish_times()
    );
    sim.verify().unwrap();
    let seed = sim.status(0).unwrap();
    assert!(
        seed.total_payload_upload as f64 >= 2.0 * (4 << 20) as f64,
        "the seed never passed its share ratio ({} bytes up): the test shows nothing",
        seed.total_payload_upload
    );
}
