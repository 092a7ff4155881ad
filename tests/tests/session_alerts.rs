//! Alerts of issue 24, item 5, between two lt sessions on loopback: `FileCompleted` once
//! per file as its last piece passes, `IncomingConnection` on the accepting side, and
//! `post_torrent_updates`' `StateUpdate` with only the torrents that changed.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use lt_metainfo::{CreateTorrent, TorrentInfo};
use lt_session::{AddTorrentParams, Alert, Session, TorrentId};
use lt_tests::session::{loopback_settings, payload, wait_for};

fn session() -> Session {
    let mut s = loopback_settings();
    s.ssl_listen = None;
    Session::new(s).unwrap()
}

/// Every alert `session` posts until `done` holds for them (or 30 s pass).
fn alerts_until(session: &Session, done: impl Fn(&[Alert]) -> bool) -> Vec<Alert> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut all = Vec::new();
    while !done(&all) {
        assert!(Instant::now() < deadline, "timed out: {all:?}");
        session.wait_for_alert(Duration::from_millis(100));
        all.extend(session.pop_alerts());
    }
    all
}

#[test]
fn file_completed_incoming_connection_and_state_updates() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("src").join("three");
    std::fs::create_dir_all(&root).unwrap();
    for (i, len) in [(0u64, 200_000usize), (1, 70_000), (2, 400_000)] {
        std::fs::write(root.join(format!("f{i}.bin")), payload(len, i + 7)).unwrap();
    }
    let bytes = CreateTorrent::new(&root)
        .piece_size(64 << 10)
        .generate()
        .unwrap();
    let info = Arc::new(TorrentInfo::from_bytes(&bytes).unwrap());
    let files = info.files().files().iter().filter(|f| !f.is_pad()).count();
    assert_eq!(files, 3);

    let seed = session();
    let mut params = AddTorrentParams::new(Arc::clone(&info), dir.path().join("src"));
    params.flags.seed_mode = true;
    let seed_handle = seed.add_torrent(params).unwrap();
    wait_for(&seed_handle, 30, "seeding", |s| s.is_seeding);

    let leech = session();
    let mut params = AddTorrentParams::new(Arc::clone(&info), dir.path().join("out"));
    params.peers.push(std::net::SocketAddr::from((
        [127, 0, 0, 1],
        seed.listen_port(),
    )));
    let h = leech.add_torrent(params).unwrap();
    let alerts = alerts_until(&leech, |a| {
        a.iter().any(|a| matches!(a, Alert::TorrentFinished { .. }))
    });
    let mut completed: Vec<u32> = alerts
        .iter()
        .filter_map(|a| match a {
            Alert::FileCompleted { file, .. } => Some(file.get()),
            _ => None,
        })
        .collect();
    completed.sort_unstable();
    let real: Vec<u32> = info
        .files()
        .files()
        .iter()
        .enumerate()
        .filter(|(_, f)| !f.is_pad())
        .map(|(i, _)| u32::try_from(i).unwrap())
        .collect();
    assert_eq!(completed, real, "once per file, pad files left out");
    // Each file's alert came after its last piece's.
    for a in &alerts {
        if let Alert::FileCompleted { file, .. } = a {
            let last = info.files().file_piece_range(*file).end - 1;
            let at = |want: &dyn Fn(&Alert) -> bool| alerts.iter().position(want).unwrap();
            let piece =
                at(&|x| matches!(x, Alert::PieceFinished { piece, .. } if piece.get() == last));
            let done = at(&|x| matches!(x, Alert::FileCompleted { file: f, .. } if f == file));
            assert!(piece < done, "file {file:?} before its piece {last}");
        }
    }
    // The seed saw the leecher's connection come in.
    let incoming = alerts_until(&seed, |a| {
        a.iter()
            .any(|a| matches!(a, Alert::IncomingConnection { .. }))
    });
    assert!(incoming.iter().any(|a| matches!(
        a,
        Alert::IncomingConnection {
            transport: lt_engine::Transport::Utp | lt_engine::Transport::Tcp,
            ssl: false,
            ..
        }
    )));

    // State updates: every torrent the first time, then only what changed.
    let updates = |session: &Session| -> Vec<TorrentId> {
        session.post_torrent_updates();
        let alerts = alerts_until(session, |a| {
            a.iter().any(|a| matches!(a, Alert::StateUpdate { .. }))
        });
        alerts
            .into_iter()
            .find_map(|a| match a {
                Alert::StateUpdate { statuses } => Some(statuses.iter().map(|s| s.id).collect()),
                _ => None,
            })
            .unwrap()
    };
    h.pause();
    wait_for(&h, 10, "paused", |s| s.paused && s.num_peers == 0);
    assert_eq!(updates(&leech), vec![h.id()]);
    assert_eq!(updates(&leech), Vec::<TorrentId>::new(), "nothing changed");
    h.resume();
    wait_for(&h, 10, "resumed", |s| !s.paused);
    assert_eq!(updates(&leech), vec![h.id()]);
}

/// Local service discovery starts and stops while the session runs (the manual's
/// `start_lsd`/`stop_lsd`), and stays off behind a proxy; `is_listening` says whether the
/// session takes connections.
#[test]
fn lsd_starts_and_stops_at_run_time() {
    let s = session();
    assert!(s.is_listening());
    assert!(!s.is_lsd_running());
    s.start_lsd();
    assert!(s.is_lsd_running());
    s.stop_lsd();
    assert!(!s.is_lsd_running());
    s.start_lsd();
    assert!(s.is_lsd_running());
    s.shutdown();

    let mut settings = loopback_settings();
    settings.proxy = Some("socks5://127.0.0.1:9".parse().unwrap());
    let proxied = Session::new(settings).unwrap();
    assert!(!proxied.is_listening());
    proxied.start_lsd();
    assert!(
        !proxied.is_lsd_running(),
        "multicast does not go through a proxy"
    );
}
