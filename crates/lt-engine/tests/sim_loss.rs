//! Swarms over lossy, jittery links (`lt_engine::sim`): frames lost and sent again after
//! a retransmission timeout, frames held back so that other connections overtake them.
//! Requests race chokes, cancels race blocks and HAVEs arrive out of order between
//! connections; the download must still finish, soon, with every byte right.

#![allow(clippy::unwrap_used, clippy::cast_precision_loss)]
use std::time::{Duration, Instant};

use lt_engine::sim::{Link, Sim, SimBuilder};

/// Ten leechers of 2 MiB in 16 KiB pieces with a choker that turns every second over
/// two slots, so that chokes often overtake requests in flight.
fn churning_swarm(link: Link) -> Sim {
    SimBuilder::new(41)
        .leechers(10)
        .payload(2 << 20, 16 << 10)
        .upload(2_000_000, 1_000_000)
        .link(link)
        .settings(|_, _, s| {
            s.unchoke_slots_limit = 2;
            s.unchoke_interval = Duration::from_secs(1);
            s.optimistic_unchoke_interval = Duration::from_secs(2);
        })
        .build(Instant::now())
        .unwrap()
}

fn last_finish(sim: &Sim) -> Duration {
    sim.finish_times().into_iter().flatten().max().unwrap()
}

#[test]
fn a_swarm_over_lossy_reordering_links_finishes_and_verifies() {
    let mut clean = churning_swarm(Link::default());
    assert!(
        clean.run(Duration::from_secs(120)),
        "{:?}",
        clean.finish_times()
    );
    clean.verify().unwrap();

    let lossy = Link {
        loss: 0.02,
        reorder: 0.1,
        jitter: Duration::from_millis(100),
        ..Link::default()
    };
    let mut sim = churning_swarm(lossy);
    assert!(
        sim.run(Duration::from_secs(120)),
        "{:?}",
        sim.finish_times()
    );
    sim.verify().unwrap();

    let net = sim.total_link_stats();
    let statuses: Vec<_> = (1..sim.nodes().len())
        .map(|i| sim.status(i).unwrap())
        .collect();
    let received: u64 = statuses.iter().map(|s| s.total_payload_download).sum();
    let redundant: u64 = statuses.iter().map(|s| s.total_redundant_bytes).sum();
    let failed: u64 = statuses.iter().map(|s| s.total_failed_bytes).sum();
    let (clean_t, lossy_t) = (last_finish(&clean), last_finish(&sim));
    eprintln!(
        "clean: last finished at {clean_t:?}; lossy: {lossy_t:?}, {} of {} frames lost, {} \
         held back, {redundant} of {received} payload bytes redundant",
        net.lost, net.frames, net.reordered
    );
    // The links really were lossy.
    assert!(net.lost > 50 && net.reordered > 200, "{net:?}");
    // A stream is never corrupted, so no piece fails.
    assert_eq!(failed, 0);
    // Nothing waits for a timeout (request_timeout is 60 s): a request dropped by a
    // choke, or a block lost track of, would hold its piece up far longer than this.
    assert!(
        lossy_t < clean_t * 3,
        "lossy swarm took {lossy_t:?}, clean {clean_t:?}"
    );
    // Little is downloaded twice.
    assert!(
        redundant * 20 < received,
        "{redundant} of {received} bytes redundant"
    );
}
