//! Resume data restores a torrent's state (issue 24, item 4): a torrent whose every
//! restorable property was changed is saved, the session restarts, and the torrent added
//! with the saved bytes has each property back; `override_resume_data` keeps the ones
//! given instead; resume data that no longer fits the files is rejected with an alert and
//! the files are checked.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lt_core::PieceIndex;
use lt_metainfo::{CreateTorrent, TorrentInfo};
use lt_session::{AddTorrentParams, Alert, ResumeData, Session, StorageMode, TorrentHandle};
use lt_tests::session::{loopback_settings, payload, wait_for};

/// A three-file torrent of 16 pieces under `dir/src/multi`.
fn torrent(dir: &Path) -> Arc<TorrentInfo> {
    let root = dir.join("src").join("multi");
    std::fs::create_dir_all(&root).unwrap();
    for (i, len) in [(0u64, 300_000usize), (1, 500_000), (2, 248_576)] {
        std::fs::write(root.join(format!("f{i}.bin")), payload(len, i + 1)).unwrap();
    }
    let bytes = CreateTorrent::new(&root)
        .piece_size(64 << 10)
        .generate()
        .unwrap();
    Arc::new(TorrentInfo::from_bytes(&bytes).unwrap())
}

/// The torrent's resume data, as bytes, once the session has written it.
fn save(session: &Session, handle: &TorrentHandle) -> Vec<u8> {
    handle.save_resume_data();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        session.wait_for_alert(Duration::from_millis(100));
        for a in session.pop_alerts() {
            if let Alert::SaveResumeData { data, .. } = a {
                return data.to_bytes();
            }
        }
    }
    panic!("no resume data");
}

fn session() -> Session {
    let mut s = loopback_settings();
    s.ssl_listen = None;
    Session::new(s).unwrap()
}

#[test]
fn resume_data_restores_every_restorable_property() {
    let dir = tempfile::tempdir().unwrap();
    let info = torrent(dir.path());
    let save_path = dir.path().join("out");
    let peer: SocketAddr = "10.9.8.7:6881".parse().unwrap();
    let tracker = "http://tracker.invalid:8080/announce";
    let seed = "http://seed.invalid/files/";

    let first = session();
    let mut params = AddTorrentParams::new(Arc::clone(&info), &save_path);
    params.storage_mode = StorageMode::Full;
    let h = first.add_torrent(params).unwrap();
    wait_for(&h, 30, "the check", |s| !s.is_checking());
    h.pause();
    h.set_auto_managed(false);
    h.set_sequential_download(true);
    h.set_super_seeding(true);
    h.set_upload_mode(true);
    h.set_upload_limit(123_000);
    h.set_download_limit(456_000);
    h.set_max_connections(17);
    h.set_max_uploads(Some(3));
    h.set_apply_ip_filter(false);
    h.prioritize_files(&[0, 7, 2]);
    // A piece of the third file, raised above its file's priority.
    let last = PieceIndex::new(info.num_pieces() - 1);
    h.piece_priority(last, 6);
    h.add_tracker(tracker, 3);
    h.add_url_seed(seed);
    h.connect_peer(peer);
    let before = h.status().unwrap();
    let files_before = h.file_priorities();
    let pieces_before = h.piece_priorities();
    assert_eq!(pieces_before[last.as_usize()], 6);
    let bytes = save(&first, &h);
    first.shutdown();

    // A new session, the torrent added with the saved bytes and nothing else.
    let second = session();
    let mut params = AddTorrentParams::new(Arc::clone(&info), &save_path);
    params.resume = Some(ResumeData::from_bytes(&bytes).unwrap());
    let h = second.add_torrent(params).unwrap();
    wait_for(&h, 30, "the check", |s| !s.is_checking());
    let s = h.status().unwrap();
    assert!(s.paused, "paused");
    assert!(!s.auto_managed, "auto-managed");
    assert!(s.sequential_download, "sequential");
    assert!(s.super_seeding, "super seeding");
    assert!(s.upload_mode, "upload mode");
    assert!(!s.ip_filter_applies, "IP filter");
    assert_eq!(h.limits(), Some((123_000, 456_000)), "rate limits");
    assert_eq!(s.connections_limit, 17);
    assert_eq!(s.uploads_limit, Some(3));
    assert_eq!(h.file_priorities(), files_before);
    assert_eq!(h.piece_priorities(), pieces_before);
    assert!(
        h.trackers().iter().any(|t| t.url == tracker && t.tier == 3),
        "{:?}",
        h.trackers()
    );
    assert_eq!(h.url_seeds(), vec![seed.to_owned()]);
    assert_eq!(s.connections_limit, before.connections_limit);
    // The peer is known again: the next save lists it.
    let again = ResumeData::from_bytes(&save(&second, &h)).unwrap();
    assert!(again.peers.contains(&peer), "{:?}", again.peers);
    assert_eq!(again.allocation, lt_metainfo::Allocation::Full);

    // With override_resume_data the caller's flags and limits stay.
    let third = session();
    let mut params = AddTorrentParams::new(Arc::clone(&info), dir.path().join("out"));
    params.resume = Some(ResumeData::from_bytes(&bytes).unwrap());
    params.flags.override_resume_data = true;
    params.upload_limit = 1_000;
    let h = third.add_torrent(params).unwrap();
    wait_for(&h, 30, "the check", |s| !s.is_checking());
    let s = h.status().unwrap();
    assert!(!s.paused && s.auto_managed && !s.sequential_download && !s.upload_mode);
    assert!(s.ip_filter_applies);
    assert_eq!(h.limits(), Some((1_000, 0)));
    assert!(h.file_priorities().iter().all(|&p| p != 0));
    drop((second, third));
}

#[test]
fn seed_and_share_modes_come_back_and_stale_resume_data_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let info = torrent(dir.path());
    let data = dir.path().join("src");

    let first = session();
    let mut params = AddTorrentParams::new(Arc::clone(&info), &data);
    params.flags.seed_mode = true;
    let h = first.add_torrent(params).unwrap();
    h.set_share_mode(true);
    wait_for(&h, 30, "seeding", |s| s.is_seeding);
    assert!(h.status().unwrap().seed_mode);
    let bytes = save(&first, &h);
    first.shutdown();

    let second = session();
    let mut params = AddTorrentParams::new(Arc::clone(&info), &data);
    params.resume = Some(ResumeData::from_bytes(&bytes).unwrap());
    let h = second.add_torrent(params).unwrap();
    wait_for(&h, 30, "seeding", |s| s.is_seeding);
    let s = h.status().unwrap();
    assert!(s.seed_mode, "seed mode");
    assert!(s.share_mode, "share mode");
    second.shutdown();

    // A file that changed size since: the resume data is rejected, the files checked.
    let mut resume = ResumeData::from_bytes(&bytes).unwrap();
    resume.seed_mode = false;
    resume.file_sizes = vec![(1, 0); 3];
    resume.active_time = 5_000;
    resume.seeding_time = 4_000;
    let third = session();
    let mut params = AddTorrentParams::new(Arc::clone(&info), &data);
    params.resume = Some(resume);
    let h = third.add_torrent(params).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut rejected = None;
    while rejected.is_none() && Instant::now() < deadline {
        third.wait_for_alert(Duration::from_millis(100));
        rejected = third.pop_alerts().into_iter().find_map(|a| match a {
            Alert::FastresumeRejected { error, .. } => Some(error),
            _ => None,
        });
    }
    let error = rejected.expect("no FastresumeRejected alert");
    assert!(error.contains("size"), "{error}");
    // The check found every piece anyway; the times go on from the saved ones.
    wait_for(&h, 30, "seeding after the check", |s| s.is_seeding);
    let s = h.status().unwrap();
    assert!(
        s.active_time >= Duration::from_secs(5_000),
        "{:?}",
        s.active_time
    );
    assert!(
        s.seeding_time >= Duration::from_secs(4_000),
        "{:?}",
        s.seeding_time
    );
}
