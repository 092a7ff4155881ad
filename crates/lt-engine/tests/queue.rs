//! The queue (the manual's "queuing"): ten auto-managed downloads with active_downloads 3.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use lt_core::{Bitfield, PeerId};
use lt_engine::{Action, AddTorrent, DiskDone, DiskJob, Engine, Input, Settings, TorrentId};
use lt_metainfo::{CreateTorrent, TorrentInfo};

fn info(i: u8) -> Arc<TorrentInfo> {
    let bytes = CreateTorrent::from_memory(format!("t{i}.bin"), vec![i; 100_000])
        .piece_size(32 << 10)
        .generate()
        .unwrap();
    Arc::new(TorrentInfo::from_bytes(&bytes).unwrap())
}

/// Answers every check with "nothing on disk" (or everything, for `complete`).
fn run(engine: &mut Engine, now: Instant, complete: &[TorrentId]) {
    let mut checks = Vec::new();
    while let Some(a) = engine.poll_action() {
        if let Action::Disk(DiskJob::Check { torrent, .. }) = a {
            checks.push(torrent);
        }
    }
    for torrent in checks {
        let n = engine.torrent_info(torrent).unwrap().num_pieces() as usize;
        let have = if complete.contains(&torrent) {
            Bitfield::full(n)
        } else {
            Bitfield::new(n)
        };
        let checked = DiskDone::Checked {
            torrent,
            result: Ok(have),
        };
        let _ = engine.handle_input(now, Input::Disk(checked));
    }
    let _ = engine.handle_input(now, Input::Timeout);
    while engine.poll_action().is_some() {}
}

fn active(engine: &Engine, now: Instant, ids: &[TorrentId]) -> Vec<usize> {
    ids.iter()
        .enumerate()
        .filter(|(_, id)| !engine.status(now, **id).unwrap().paused)
        .map(|(i, _)| i)
        .collect()
}

#[test]
fn active_downloads_follow_the_queue() {
    let t0 = Instant::now();
    let settings = Settings {
        active_downloads: 3,
        active_seeds: 2,
        tick_interval: Duration::from_millis(100),
        ..Settings::default()
    };
    let mut engine = Engine::new(settings, PeerId::new([1; 20]), [9; 32], t0);
    let ids: Vec<TorrentId> = (0..10)
        .map(|i| engine.add_torrent(t0, AddTorrent::new(info(i))).unwrap())
        .collect();
    let mut now = t0;
    run(&mut engine, now, &[]);
    assert_eq!(active(&engine, now, &ids), [0, 1, 2]);
    for (i, &id) in ids.iter().enumerate() {
        assert_eq!(engine.queue_position(id), Some(u32::try_from(i).unwrap()));
    }
    // Moving the first to the back starts the fourth.
    now += Duration::from_secs(1);
    engine.queue_position_bottom(now, ids[0]);
    run(&mut engine, now, &[]);
    assert_eq!(active(&engine, now, &ids), [1, 2, 3]);
    assert_eq!(engine.queue_position(ids[0]), Some(9));
    // The last one to the top.
    now += Duration::from_secs(1);
    engine.queue_position_top(now, ids[9]);
    engine.queue_position_down(now, ids[1]);
    run(&mut engine, now, &[]);
    // The queue is now 9, 2, 1, 3, ...
    assert_eq!(engine.queue_position(ids[2]), Some(1));
    assert_eq!(active(&engine, now, &ids), [1, 2, 9]);
    // A torrent taken out of the queue by the user stays paused; the next one starts.
    now += Duration::from_secs(1);
    engine.pause_torrent(now, ids[9]);
    run(&mut engine, now, &[]);
    assert_eq!(active(&engine, now, &ids), [1, 2, 3]);
    // A paused session starts nothing, even when slots free up.
    now += Duration::from_secs(1);
    engine.pause(now);
    engine.set_auto_managed(now, ids[9], true);
    run(&mut engine, now, &[]);
    assert!(active(&engine, now, &ids).len() <= 3);
    assert!(engine.status(now, ids[9]).unwrap().paused);
    engine.resume(now);
    now += Duration::from_secs(1);
    run(&mut engine, now, &[]);
    assert_eq!(active(&engine, now, &ids), [1, 2, 9]);
}

#[test]
fn seeds_are_limited_separately() {
    let t0 = Instant::now();
    let settings = Settings {
        active_downloads: 1,
        active_seeds: 2,
        ..Settings::default()
    };
    let mut engine = Engine::new(settings, PeerId::new([1; 20]), [9; 32], t0);
    let ids: Vec<TorrentId> = (0..6)
        .map(|i| engine.add_torrent(t0, AddTorrent::new(info(i))).unwrap())
        .collect();
    // Four complete torrents, two downloads.
    run(&mut engine, t0, &ids[..4]);
    let act = active(&engine, t0, &ids);
    let seeds = act.iter().filter(|&&i| i < 4).count();
    let downloads = act.iter().filter(|&&i| i >= 4).count();
    assert_eq!((seeds, downloads), (2, 1), "active: {act:?}");
    assert_eq!(
        engine.queue_position(ids[0]),
        None,
        "seeds have no queue position"
    );
    assert_eq!(engine.queue_position(ids[4]), Some(4));
}

/// A magnet added with resume data that holds matching metadata is a torrent with that
/// metadata at once (it checks the resume data); metadata that does not match the link is
/// ignored and the magnet fetches its own.
#[test]
fn a_magnet_with_resumed_metadata_needs_no_fetch() {
    let t0 = Instant::now();
    let mut engine = Engine::new(Settings::default(), PeerId::new([1; 20]), [9; 32], t0);
    let wanted = info(1);
    let other = info(2);
    for (resumed, has_metadata) in [(&wanted, true), (&other, false)] {
        let mut add = AddTorrent::from_magnet(&wanted.magnet_link()).unwrap();
        let mut resume = lt_metainfo::ResumeData::new(resumed);
        resume.info = Some(resumed.info_bytes().to_vec());
        add.resume = Some(resume);
        let id = engine.add_torrent(t0, add).unwrap();
        let st = engine.status(t0, id).unwrap();
        assert_eq!(st.has_metadata, has_metadata);
        assert_eq!(st.info_hash, wanted.info_hash());
        engine.remove_torrent(t0, id, false);
        while engine.poll_action().is_some() {}
    }
}

/// Torrents added one after another (a client loading ten thousand at start-up) are queued
/// together: each add brings the auto-manager forward to at most once per 50 ms, and runs
/// no housekeeping over every torrent, so adding stays linear in the number of torrents.
/// Every torrent is still managed within that time.
#[test]
fn torrents_added_in_a_row_are_queued_together() {
    let t0 = Instant::now();
    let settings = Settings {
        active_seeds: 2,
        ..Settings::default()
    };
    let mut engine = Engine::new(settings, PeerId::new([1; 20]), [9; 32], t0);
    let mut ids = Vec::new();
    let mut passes = 0;
    for i in 0..40u8 {
        // One torrent every 0.1 ms, each followed by the timeout the driver hands in.
        let now = t0 + Duration::from_micros(100 * u64::from(i));
        let mut add = AddTorrent::new(info(i));
        add.flags.seed_mode = true;
        ids.push(engine.add_torrent(now, add).unwrap());
        if i > 0 {
            assert!(
                engine.poll_timeout() > now,
                "adding torrent {i} made work due at once"
            );
        }
        if engine.poll_timeout() <= now {
            let _ = engine.handle_input(now, Input::Timeout);
        }
        while engine.poll_action().is_some() {}
        let mut paused = false;
        while let Some(a) = engine.poll_alert() {
            paused |= matches!(a, lt_engine::Alert::TorrentPaused { .. });
        }
        passes += usize::from(paused);
    }
    assert!(passes <= 1, "the queue paused torrents in {passes} passes");
    // At the next pass every torrent is managed: two seeds active, the rest paused.
    let now = engine.poll_timeout();
    assert!(now <= t0 + Duration::from_millis(60));
    let _ = engine.handle_input(now, Input::Timeout);
    assert_eq!(active(&engine, now, &ids).len(), 2);
}
