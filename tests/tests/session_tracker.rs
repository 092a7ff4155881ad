//! lt-session with lt-tracker's server on loopback: peers find each other only through
//! the tracker (UDP and HTTP), `completed` is announced, and shutdown announces `stopped`
//! within the stop timeout.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lt_metainfo::{CreateTorrent, TorrentInfo};
use lt_session::{AddTorrentParams, AlertCategory, Session, SessionSettings};
use lt_tests::session::{payload, wait_for};
use lt_tests::tracker_driver::TrackerThreads;

fn settings() -> SessionSettings {
    let mut s = SessionSettings {
        listen_interfaces: vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 0))],
        alert_mask: AlertCategory::ALL,
        ..SessionSettings::default()
    };
    s.engine.allow_multiple_connections_per_ip = true;
    s.engine.tick_interval = Duration::from_millis(100);
    s.engine.stop_tracker_timeout = Duration::from_secs(3);
    s
}

fn swarm_through(scheme: &str) {
    let tracker = TrackerThreads::loopback([3; 32]).unwrap();
    let url = match scheme {
        "udp" => format!("udp://127.0.0.1:{}", tracker.port),
        _ => format!("http://127.0.0.1:{}/announce", tracker.port),
    };
    let data = payload(3 << 20, 0x9e37_79b9_7f4a_7c15);
    let bytes = CreateTorrent::from_memory("payload.bin", data.clone())
        .piece_size(64 << 10)
        .tracker(url)
        .generate()
        .unwrap();
    let info = Arc::new(TorrentInfo::from_bytes(&bytes).unwrap());
    let ih = info.info_hash().v1_hash().unwrap();
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("payload.bin"), &data).unwrap();
    let seed = Session::new(settings()).unwrap();
    let sh = seed
        .add_torrent(AddTorrentParams::new(Arc::clone(&info), src.path()))
        .unwrap();
    wait_for(&sh, 20, "the seed's check", |s| s.is_seeding);
    let dst = tempfile::tempdir().unwrap();
    let leech = Session::new(settings()).unwrap();
    let lh = leech
        .add_torrent(AddTorrentParams::new(Arc::clone(&info), dst.path()))
        .unwrap();
    wait_for(&lh, 30, "the download", |s| s.is_seeding);
    assert_eq!(std::fs::read(dst.path().join("payload.bin")).unwrap(), data);
    // The leecher announced `completed`: the tracker counts it as a download.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let counts = tracker.server.lock().unwrap().counts(&ih);
        if counts.is_some_and(|(seeds, _, completed)| seeds == 2 && completed >= 1) {
            break;
        }
        assert!(Instant::now() < deadline, "tracker counts {counts:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        lh.trackers().iter().all(|t| t.verified),
        "{:?}",
        lh.trackers()
    );
    // Shutdown announces `stopped` within the stop timeout.
    let start = Instant::now();
    leech.shutdown();
    seed.shutdown();
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "shutdown took {:?}",
        start.elapsed()
    );
    let counts = tracker.server.lock().unwrap().counts(&ih);
    assert!(
        counts.is_none_or(|(seeds, leechers, _)| seeds == 0 && leechers == 0),
        "peers left after stopped: {counts:?}"
    );
}

#[test]
fn peers_meet_through_a_udp_tracker_and_say_stopped() {
    swarm_through("udp");
}

#[test]
fn peers_meet_through_an_http_tracker_and_say_stopped() {
    swarm_through("http");
}
