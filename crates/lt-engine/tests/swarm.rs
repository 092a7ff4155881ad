//! Whole swarms of engines in one process on `lt_engine::sim`: in-memory links with
//! latency and per-node upload bandwidth, in-memory disks, a simulated tracker and a
//! virtual clock. Every run is deterministic for a given seed (`LT_SIM_SEED` replays one).

#![allow(
    clippy::unwrap_used,
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss,
    clippy::cast_sign_loss
)]
use std::time::{Duration, Instant};

use lt_engine::sim::{Link, Role, Sim, SimBuilder};
use lt_engine::{MixedMode, TorrentState};

/// `leechers` leechers and `bad` corrupt seeds beside one seed, sharing `len` bytes.
fn swarm(seed: u64, leechers: usize, bad: usize, len: usize, piece: u32) -> SimBuilder {
    SimBuilder::new(seed)
        .leechers(leechers)
        .corrupt_seeds(bad)
        .payload(len, piece)
}

fn payload_upload(sim: &Sim, i: usize) -> u64 {
    sim.status(i).unwrap().total_payload_upload
}

#[test]
fn one_seed_twenty_leechers_finish_and_verify() {
    let mut sim = swarm(7, 20, 0, 4 << 20, 64 << 10)
        .build(Instant::now())
        .unwrap();
    assert!(
        sim.run(Duration::from_secs(600)),
        "swarm did not finish: {:?}",
        sim.finish_times()
    );
    sim.verify().unwrap();
    let times = sim.finish_times();
    let last = times.iter().flatten().max().unwrap();
    eprintln!("finish times: {times:?}");
    // 20 leechers x 4 MiB from one 4 MB/s seed alone would take 21 s; sharing must beat it.
    assert!(
        *last < Duration::from_secs(21),
        "the leechers did not share: last finished at {last:?}"
    );
    // Leechers uploaded to each other.
    let uploaded: u64 = (1..sim.nodes().len())
        .map(|i| payload_upload(&sim, i))
        .sum();
    assert!(
        uploaded > 4 << 20,
        "leechers uploaded only {uploaded} bytes"
    );
}

#[test]
fn swarm_is_deterministic() {
    let run = || {
        // Lossy, jittery links draw from the sim's generator too.
        let link = Link {
            loss: 0.01,
            reorder: 0.05,
            ..Link::default()
        };
        let mut sim = swarm(3, 8, 0, 1 << 20, 32 << 10)
            .link(link)
            .build(Instant::now())
            .unwrap();
        assert!(sim.run(Duration::from_secs(300)));
        sim.verify().unwrap();
        (sim.finish_times(), sim.total_link_stats())
    };
    assert_eq!(run(), run());
}

#[test]
fn corrupt_seed_is_banned_and_download_completes() {
    let mut sim = swarm(11, 3, 1, 1 << 20, 32 << 10)
        .build(Instant::now())
        .unwrap();
    assert_eq!(sim.node(1).role(), Role::CorruptSeed);
    assert!(
        sim.run(Duration::from_secs(600)),
        "did not finish: {:?}",
        sim.finish_times()
    );
    sim.verify().unwrap();
    let banned: usize = sim.nodes()[2..].iter().map(|n| n.stats().banned).sum();
    let failed: usize = sim.nodes()[2..].iter().map(|n| n.stats().hash_failed).sum();
    assert!(failed > 0, "the corrupt seed's pieces never failed");
    assert!(banned > 0, "nobody banned the corrupt seed");
}

/// Pieces larger than `max_held_piece_bytes` are written as their blocks come and hashed
/// back from storage: no disk job carries more than the limit, a corrupt seed is still
/// found out by the hash read back, and the data is right.
#[test]
fn large_pieces_are_written_as_they_come_and_hashed_back() {
    let limit = 128 << 10;
    let mut sim = swarm(13, 3, 1, 4 << 20, 1 << 20)
        .settings(move |_, _, s| s.max_held_piece_bytes = limit)
        .build(Instant::now())
        .unwrap();
    assert!(
        sim.run(Duration::from_secs(600)),
        "did not finish: {:?}",
        sim.finish_times()
    );
    sim.verify().unwrap();
    let failed: usize = sim.nodes()[2..].iter().map(|n| n.stats().hash_failed).sum();
    let banned: usize = sim.nodes()[2..].iter().map(|n| n.stats().banned).sum();
    assert!(failed > 0, "the corrupt seed's pieces never failed");
    assert!(banned > 0, "nobody banned the corrupt seed");
    for n in &sim.nodes()[2..] {
        assert!(
            n.stats().largest_write <= limit as usize,
            "a disk job carried {} bytes of a 1 MiB piece (limit {limit})",
            n.stats().largest_write
        );
    }
}

#[test]
fn magnet_leechers_fetch_the_metadata_then_the_data() {
    // 1,024 pieces of 16 KiB: 20 KiB of piece hashes, so the info dictionary spans two
    // 16 KiB metadata pieces.
    let mut sim = swarm(21, 4, 0, 16 << 20, 16 << 10)
        .magnet_leechers(true)
        .build(Instant::now())
        .unwrap();
    assert!(
        sim.info().info_bytes().len() > 16 << 10,
        "the metadata should span pieces"
    );
    let done = sim.run(Duration::from_secs(600));
    let states: Vec<_> = (0..sim.nodes().len())
        .map(|i| {
            let s = sim.status(i).unwrap();
            (
                sim.node(i).stats().got_metadata,
                s.state,
                s.num_pieces,
                s.num_peers,
            )
        })
        .collect();
    assert!(done, "did not finish: {states:?}");
    sim.verify().unwrap();
    assert!(sim.nodes()[1..].iter().all(|n| n.stats().got_metadata));
    let st = sim.status(1).unwrap();
    assert!(st.has_metadata);
    assert_eq!(st.name, "sim.bin");
}

/// Seconds for one leecher to get 8 MiB from a seed with a 1 MB/s upload limit.
fn limited_upload(settings: impl Fn(&mut lt_engine::Settings) + 'static) -> f64 {
    let mut sim = swarm(5, 1, 0, 8 << 20, 64 << 10)
        .settings(move |i, _, s| {
            if i == 0 {
                s.upload_rate_limit = 1_000_000;
                settings(s);
            }
        })
        .build(Instant::now())
        .unwrap();
    let done = sim.run(Duration::from_secs(60));
    let st = sim.status(1).unwrap();
    assert!(
        done,
        "{} pieces, {} bytes",
        st.num_pieces, st.total_payload_download
    );
    sim.verify().unwrap();
    sim.node(1).stats().finished_at.unwrap().as_secs_f64()
}

#[test]
fn upload_limit_holds_the_rate() {
    // The sim's peers are on 10.0.0.0/8: a local network, exempt unless told otherwise.
    let payload_only = limited_upload(|s| {
        s.ignore_limits_on_local_network = false;
        s.rate_limit_ip_overhead = false;
    });
    let with_overhead = limited_upload(|s| s.ignore_limits_on_local_network = false);
    let local = limited_upload(|_| {});
    let ideal = (8 << 20) as f64 / 1e6;
    // Each 16 KiB block costs 16,397 message bytes in 12 TCP segments of 40 header bytes.
    let ideal_overhead = ideal * (16_397.0 + 12.0 * 40.0) / 16_384.0;
    eprintln!(
        "8 MiB at 1 MB/s: payload only {payload_only:.2} s (ideal {ideal:.2} s), with IP \
         overhead {with_overhead:.2} s (ideal {ideal_overhead:.2} s), local peer exempt \
         {local:.2} s"
    );
    for (took, ideal) in [(payload_only, ideal), (with_overhead, ideal_overhead)] {
        assert!(
            took > ideal * 0.95 && took < ideal * 1.05,
            "took {took:.2} s, ideal {ideal:.2} s"
        );
    }
    assert!(with_overhead > payload_only * 1.01);
    // Unlimited, the seed's 4 MB/s link is the bound.
    assert!(local < ideal / 2.0, "local peer took {local:.2} s");
}

#[test]
fn peers_found_by_pex_alone() {
    // Leecher 1 knows the seed; leechers 2 and 3 only know leecher 1. No tracker.
    let mut sim = swarm(8, 3, 0, 2 << 20, 32 << 10)
        .tracker(false)
        .build(Instant::now())
        .unwrap();
    let (now, seed, first) = (sim.now(), sim.node(0).addr(), sim.node(1).addr());
    let node = sim.node_mut(1);
    let t = node.torrent();
    node.engine_mut().connect_peer(now, t, seed);
    for i in 2..4 {
        let node = sim.node_mut(i);
        let t = node.torrent();
        node.engine_mut().connect_peer(now, t, first);
    }
    assert!(
        sim.run(Duration::from_secs(300)),
        "{:?}",
        sim.finish_times()
    );
    sim.verify().unwrap();
    // Leechers 2 and 3 learned the seed's address through PEX and downloaded from it.
    let peers_of_seed = sim.node(0).stats().peers_connected;
    assert!(
        peers_of_seed >= 3,
        "the seed saw {peers_of_seed} peers; uploaded {}",
        payload_upload(&sim, 0)
    );
}

/// The seed's payload upload until every leecher finished, what each leecher was told of
/// the seed's pieces, and when the last finished (ms).
fn seed_upload(super_seeding: bool) -> (u64, Vec<usize>, u64) {
    let mut sim = swarm(11, 6, 0, 4 << 20, 32 << 10)
        .build(Instant::now())
        .unwrap();
    let now = sim.now();
    let node = sim.node_mut(0);
    let t = node.torrent();
    node.engine_mut().set_super_seeding(now, t, super_seeding);
    assert!(
        sim.run(Duration::from_secs(120)),
        "{:?}",
        sim.finish_times()
    );
    sim.verify().unwrap();
    let seed_ip = sim.node(0).addr().ip();
    let seen: Vec<usize> = (1..sim.nodes().len())
        .filter_map(|i| {
            sim.peer_info(i)
                .into_iter()
                .find(|p| p.addr.ip() == seed_ip)
                .and_then(|p| p.pieces)
                .map(|b| b.count_ones())
        })
        .collect();
    let st = sim.status(0).unwrap();
    assert_eq!(st.super_seeding, super_seeding);
    let last = sim.finish_times().into_iter().flatten().max().unwrap();
    (st.total_payload_upload, seen, last.as_millis() as u64)
}

#[test]
fn super_seeding_uploads_each_piece_about_once() {
    let size = 4u64 << 20;
    let (normal, _, normal_ms) = seed_upload(false);
    let (superseed, seen, super_ms) = seed_upload(true);
    eprintln!(
        "seed upload for 4 MiB to 6 leechers: normal {normal} B in {normal_ms} ms, \
         super seeding {superseed} B in {super_ms} ms (leechers still connected were \
         offered {seen:?} of 128 pieces)"
    );
    // A super seed shows each leecher only the pieces it offered it (finished leechers
    // look like seeds to it and are dropped, so some are gone), and uploads little more
    // than one copy.
    assert!(
        !seen.is_empty() && seen.iter().all(|&n| n < 128),
        "{seen:?}"
    );
    assert!(superseed < normal, "super {superseed} >= normal {normal}");
    assert!(superseed < size * 3 / 2, "super seed uploaded {superseed}");
}

/// A sim whose node 1 is in share mode (the run does not wait for it).
fn share_mode_sim(seed: u64, leechers: usize, seed_upload: u64) -> Sim {
    let mut sim = swarm(seed, leechers, 0, 4 << 20, 32 << 10)
        .upload(seed_upload, 2_000_000)
        .build(Instant::now())
        .unwrap();
    sim.set_expect_finish(1, false);
    let now = sim.now();
    let node = sim.node_mut(1);
    let t = node.torrent();
    node.engine_mut().set_share_mode(now, t, true);
    sim
}

#[test]
fn share_mode_downloads_only_what_it_can_upload_again() {
    // Alone with the seed there is nobody to upload to: nothing is downloaded.
    let mut sim = share_mode_sim(12, 1, 4_000_000);
    sim.run(Duration::from_secs(10));
    let st = sim.status(1).unwrap();
    assert!(st.share_mode);
    assert_eq!(st.num_pieces, 0, "{st:?}");
    assert_eq!(st.total_payload_download, 0);

    // With six leechers it fetches rare pieces and uploads them several times over. The
    // seed's link is slow, so the leechers welcome another source.
    let piece = 32u64 << 10;
    let mut sim = share_mode_sim(13, 7, 400_000);
    assert!(
        sim.run(Duration::from_secs(120)),
        "{:?}",
        sim.finish_times()
    );
    sim.verify().unwrap();
    let st = sim.status(1).unwrap();
    let (down, up) = (st.total_payload_download, st.total_payload_upload);
    eprintln!(
        "share mode: {} of 128 pieces, downloaded {down} B, uploaded {up} B (ratio {:.2})",
        st.num_pieces,
        up as f64 / down.max(1) as f64
    );
    assert!(st.num_pieces > 0 && st.num_pieces < 128, "{st:?}");
    assert_ne!(st.state, TorrentState::Seeding);
    // A piece is added only once the upload is 3 times the pieces held; at most one in
    // 20 is in flight beyond that.
    let held = u64::from(st.num_pieces);
    assert!(
        held * 19 / 20 <= up / (3 * piece) + 1,
        "{held} pieces for {up} B uploaded"
    );
    assert!(up >= down, "uploaded {up} < downloaded {down}");
}

/// What a uTP leecher held to 100 kB/s by its own download limit and a TCP leecher that
/// is not held download from a 1 MB/s seed using `mode`, from 10 s to 30 s (the balance
/// follows the measured rate, which takes a few seconds to settle).
fn mixed_mode_downloads(mode: MixedMode) -> (u64, u64) {
    let mut sim = swarm(21, 2, 0, 32 << 20, 256 << 10)
        // Leecher 1 reaches the others over uTP only, leecher 2 over TCP only: its uTP
        // dials fail and the engine falls back.
        .links(|a, b| Link {
            tcp: a != 1 && b != 1,
            utp: a != 2 && b != 2,
            ..Link::default()
        })
        .settings(move |i, _, s| {
            s.ignore_limits_on_local_network = false;
            match i {
                0 => s.mixed_mode_algorithm = mode,
                1 => s.download_rate_limit = 100_000,
                _ => {}
            }
        })
        .upload(1_000_000, 2_000_000)
        .build(Instant::now())
        .unwrap();
    let down = |sim: &Sim, n: usize| sim.status(n).unwrap().total_payload_download;
    assert!(
        !sim.run(Duration::from_secs(10)),
        "{:?}",
        sim.finish_times()
    );
    let before = (down(&sim, 1), down(&sim, 2));
    assert!(
        !sim.run(Duration::from_secs(30)),
        "{:?}",
        sim.finish_times()
    );
    let seeds_peers = sim.peer_info(0);
    assert!(seeds_peers.iter().any(|p| p.utp), "{seeds_peers:?}");
    assert!(seeds_peers.iter().any(|p| !p.utp), "{seeds_peers:?}");
    (down(&sim, 1) - before.0, down(&sim, 2) - before.1)
}

#[test]
fn mixed_mode_holds_tcp_to_its_share_beside_utp() {
    let (utp, tcp) = mixed_mode_downloads(MixedMode::PreferTcp);
    let (p_utp, p_tcp) = mixed_mode_downloads(MixedMode::PeerProportional);
    eprintln!(
        "downloaded from 10 s to 30 s: prefer_tcp uTP {utp} B, TCP {tcp} B; \
         peer_proportional uTP {p_utp} B, TCP {p_tcp} B"
    );
    // Unbalanced, the TCP peer takes the rest of the seed's 1 MB/s.
    assert!(tcp > 4 * utp, "prefer_tcp: uTP {utp}, TCP {tcp}");
    // Balanced, one TCP peer beside one uTP peer gets about what the uTP peer gets.
    assert!(
        p_tcp < 2 * p_utp,
        "peer_proportional: uTP {p_utp}, TCP {p_tcp}"
    );
    assert!(p_utp > 0 && p_tcp > 0);
}
