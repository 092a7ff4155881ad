//! The torrent handle's thinner controls (issue 24, item 7) on a live session:
//! `replace_trackers`, `file_priority` for one file, `prioritize_pieces`,
//! `piece_availability` and `need_save_resume_data` (`clear_error` is in lt-engine's
//! `tests/controls.rs`).
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lt_metainfo::{CreateTorrent, TorrentInfo, TorrentVersion};
use lt_session::{AddTorrentParams, Alert, Session, TorrentHandle};
use lt_tests::session::{loopback_settings, payload, wait_for};

fn session() -> Session {
    let mut s = loopback_settings();
    s.ssl_listen = None;
    Session::new(s).unwrap()
}

/// Waits for the resume data the session writes and drops it.
fn saved(session: &Session) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        session.wait_for_alert(Duration::from_millis(100));
        if session
            .pop_alerts()
            .iter()
            .any(|a| matches!(a, Alert::SaveResumeData { .. }))
        {
            return;
        }
    }
    panic!("no resume data");
}

fn add(session: &Session, info: &Arc<TorrentInfo>, path: &std::path::Path) -> TorrentHandle {
    let h = session
        .add_torrent(AddTorrentParams::new(Arc::clone(info), path))
        .unwrap();
    wait_for(&h, 30, "the check", |s| !s.is_checking());
    h
}

#[test]
fn trackers_priorities_availability_and_resume_need() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("src").join("two");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("a.bin"), payload(300_000, 1)).unwrap();
    std::fs::write(root.join("b.bin"), payload(300_000, 2)).unwrap();
    // v1: no pad files, so the files are indices 0 and 1.
    let bytes = CreateTorrent::new(&root)
        .version(TorrentVersion::V1)
        .piece_size(64 << 10)
        .tracker("http://first.invalid/announce")
        .generate()
        .unwrap();
    let info = Arc::new(TorrentInfo::from_bytes(&bytes).unwrap());
    let n = info.num_pieces() as usize;

    let leech = session();
    let h = add(&leech, &info, &dir.path().join("out"));
    h.pause();

    // Trackers replaced, tiers kept.
    let tiers = vec![
        vec!["http://one.invalid/announce".to_owned()],
        vec![
            "http://two.invalid/announce".to_owned(),
            "http://three.invalid/announce".to_owned(),
        ],
    ];
    h.replace_trackers(&tiers);
    let now: Vec<(String, u8)> = h.trackers().into_iter().map(|e| (e.url, e.tier)).collect();
    assert_eq!(now.len(), 3, "{now:?}");
    assert!(now.contains(&("http://one.invalid/announce".to_owned(), 0)));
    assert!(now.contains(&("http://three.invalid/announce".to_owned(), 1)));
    assert!(!now.iter().any(|(u, _)| u.contains("first")));

    // One file's priority; then every piece's.
    h.file_priority(1, 0);
    assert_eq!(h.file_priorities()[1], 0);
    assert_eq!(h.file_priorities()[0], 1);
    let last = *h.piece_priorities().last().unwrap();
    assert_eq!(last, 0, "the second file's pieces follow it");
    let wanted: Vec<u8> = (0..n).map(|i| u8::try_from(i % 8).unwrap()).collect();
    h.prioritize_pieces(&wanted);
    assert_eq!(h.piece_priorities(), wanted);

    // Resume data: needed until saved, not after, needed again after a change.
    assert!(h.need_save_resume_data());
    h.save_resume_data();
    saved(&leech);
    assert!(!h.need_save_resume_data(), "just saved");
    h.file_priority(0, 5);
    assert!(h.need_save_resume_data(), "a priority changed");

    // Availability: nobody yet; a seed connected has every piece.
    h.prioritize_pieces(&vec![4; n]);
    h.prioritize_files(&[1, 1]);
    assert_eq!(h.piece_availability(), vec![0; n]);
    // The seed is held to 50 kB/s, even on loopback, so that the download is still under
    // way when the availability is read.
    let mut settings = loopback_settings();
    settings.ssl_listen = None;
    settings.engine.ignore_limits_on_local_network = false;
    let seed = Session::new(settings).unwrap();
    let mut params = AddTorrentParams::new(Arc::clone(&info), dir.path().join("src"));
    params.flags.seed_mode = true;
    params.upload_limit = 50_000;
    let seed_handle = seed.add_torrent(params).unwrap();
    wait_for(&seed_handle, 30, "seeding", |s| s.is_seeding);
    h.resume();
    h.connect_peer(SocketAddr::from(([127, 0, 0, 1], seed.listen_port())));
    wait_for(&h, 30, "the seed connected", |s| s.num_seeds == 1);
    assert_eq!(h.piece_availability(), vec![1; n]);
}
