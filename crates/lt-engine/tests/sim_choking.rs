//! The choker inside a swarm (`lt_engine::sim`): a downloading node reciprocates
//! (tit-for-tat), giving its regular upload slots to the peers it downloads fastest from.

#![allow(clippy::unwrap_used, clippy::cast_precision_loss)]
use std::time::{Duration, Instant};

use lt_engine::sim::{Sim, SimBuilder};

/// Node 1 is the leecher under test; leechers 2..=4 upload fast, 5..=7 slowly.
const TESTED: usize = 1;
const FAST: std::ops::RangeInclusive<usize> = 2..=4;
const SLOW: std::ops::RangeInclusive<usize> = 5..=7;

fn node_of_ip(sim: &Sim, addr: std::net::SocketAddr) -> usize {
    sim.nodes()
        .iter()
        .position(|n| n.addr().ip() == addr.ip())
        .unwrap()
}

#[test]
fn a_leecher_unchokes_the_peers_it_downloads_fastest_from() {
    // A slow seed, so the leechers live on what they trade. The tested leecher has two
    // regular upload slots and one optimistic; the others have the default eight, so
    // every peer's rate to it shows what that peer's uplink can give.
    let mut sim = SimBuilder::new(31)
        .leechers(7)
        .payload(4 << 20, 32 << 10)
        .upload(300_000, 0)
        .settings(|i, _, s| {
            if i == TESTED {
                s.unchoke_slots_limit = 3;
            }
        })
        .build(Instant::now())
        .unwrap();
    for i in FAST {
        sim.set_upload(i, 1_500_000);
    }
    for i in SLOW {
        sim.set_upload(i, 60_000);
    }
    sim.set_upload(TESTED, 1_000_000);

    // Each second from 12 s (two choker rounds in) until the tested node finishes, note
    // whom it unchokes in its regular slots.
    let (mut fast, mut slow, mut other) = (0usize, 0usize, 0usize);
    let mut samples = 0;
    for t in 12..120 {
        sim.run_until(Duration::from_secs(t), |_| false);
        if sim.node(TESTED).is_done() {
            break;
        }
        samples += 1;
        for p in sim.peer_info(TESTED) {
            if p.choked || p.optimistic_unchoke {
                continue;
            }
            let n = node_of_ip(&sim, p.addr);
            if FAST.contains(&n) {
                fast += 1;
            } else if SLOW.contains(&n) {
                slow += 1;
            } else {
                other += 1;
            }
        }
    }
    let up: Vec<(usize, u64, u64)> = sim
        .peer_info(TESTED)
        .iter()
        .map(|p| (node_of_ip(&sim, p.addr), p.total_download, p.total_upload))
        .collect();
    eprintln!(
        "{samples} samples of regular unchokes: {fast} fast, {slow} slow, {other} other; \
         (node, from it, to it): {up:?}; finished {:?}",
        sim.finish_times()
    );
    assert!(
        sim.run(Duration::from_secs(300)),
        "{:?}",
        sim.finish_times()
    );
    sim.verify().unwrap();
    assert!(samples >= 5, "only {samples} samples");
    // Two regular slots filled most of the time, nearly always with fast peers: an
    // unchoke by upload rate, at random or in turn would give the slow half its share.
    assert!(
        fast + slow + other >= samples,
        "regular unchokes: {fast} fast, {slow} slow, {other} other in {samples} samples"
    );
    assert!(
        fast >= 5 * slow && other == 0,
        "regular unchokes: {fast} fast, {slow} slow, {other} other"
    );
}
