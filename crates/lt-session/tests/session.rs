//! Sessions on loopback: a seed and a leecher with alerts, resume data and removal; a full
//! disk that sends the leecher into upload mode and out of it again.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lt_metainfo::{CreateTorrent, TorrentInfo};
use lt_session::{
    AddTorrentParams, Alert, AlertCategory, Session, SessionSettings, TorrentHandle, TorrentState,
};

fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Logs to the test's output when `RUST_LOG` is set (nextest shows it for a failed test).
fn init_log() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

fn settings() -> SessionSettings {
    init_log();
    let mut s = SessionSettings {
        listen_interfaces: vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 0))],
        alert_mask: AlertCategory::ALL,
        ..SessionSettings::default()
    };
    s.engine.allow_multiple_connections_per_ip = true;
    s.engine.tick_interval = Duration::from_millis(100);
    s
}

fn torrent(data: &[u8], piece: u32) -> Arc<TorrentInfo> {
    let bytes = CreateTorrent::from_memory("payload.bin", data.to_vec())
        .piece_size(piece)
        .generate()
        .unwrap();
    Arc::new(TorrentInfo::from_bytes(&bytes).unwrap())
}

/// Waits until `done` holds for the handle's status, collecting alerts.
fn wait(
    session: &Session,
    handle: &TorrentHandle,
    secs: u64,
    alerts: &mut Vec<Alert>,
    done: impl Fn(&lt_session::TorrentStatus) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        session.wait_for_alert(Duration::from_millis(100));
        alerts.extend(session.pop_alerts());
        let s = handle.status().unwrap();
        if done(&s) {
            // The loop posts a step's alerts before it lets go of the engine, so what led
            // to this status is queued by now, even if it came after the pop above.
            alerts.extend(session.pop_alerts());
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out; status {s:?}; peers {:?}; queue {:?}",
            handle.peer_info(),
            handle.download_queue()
        );
    }
}

fn seed_session(info: &Arc<TorrentInfo>, dir: &Path) -> (Session, SocketAddr) {
    let seed = Session::new(settings()).unwrap();
    let h = seed
        .add_torrent(AddTorrentParams::new(Arc::clone(info), dir))
        .unwrap();
    wait(&seed, &h, 20, &mut Vec::new(), |s| {
        s.state == TorrentState::Seeding
    });
    let addr = seed.listen_addrs()[0];
    (seed, addr)
}

#[test]
fn seed_to_leecher_with_alerts_resume_and_removal() {
    let data = payload(4 << 20, 5);
    let info = torrent(&data, 64 << 10);
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("payload.bin"), &data).unwrap();
    let (seed, seed_addr) = seed_session(&info, src.path());

    let dst = tempfile::tempdir().unwrap();
    let leech = Session::new(settings()).unwrap();
    let mut params = AddTorrentParams::new(Arc::clone(&info), dst.path());
    params.peers.push(seed_addr);
    let h = leech.add_torrent(params).unwrap();
    let mut alerts = Vec::new();
    wait(&leech, &h, 30, &mut alerts, |s| s.is_seeding);
    assert_eq!(std::fs::read(dst.path().join("payload.bin")).unwrap(), data);
    std::thread::sleep(Duration::from_millis(300));
    alerts.extend(leech.pop_alerts());

    let finished = alerts
        .iter()
        .filter(|a| matches!(a, Alert::PieceFinished { .. }))
        .count();
    assert_eq!(
        finished,
        info.num_pieces() as usize,
        "one piece-finished alert a piece"
    );
    assert!(
        alerts
            .iter()
            .any(|a| matches!(a, Alert::TorrentFinished { .. }))
    );
    assert!(
        alerts
            .iter()
            .any(|a| matches!(a, Alert::PeerConnected { outgoing: true, .. }))
    );
    let st = h.status().unwrap();
    assert_eq!(st.total_done, info.total_size());
    assert_eq!(st.num_pieces, info.num_pieces());
    assert!(st.total_payload_download >= info.total_size());
    assert_eq!(h.file_progress(), vec![info.total_size()]);
    let seed_st = seed.torrents()[0].status().unwrap();
    assert!(
        seed_st.total_payload_upload >= info.total_size(),
        "{seed_st:?}"
    );

    // Resume data round trip: a new session trusts it without a recheck.
    h.save_resume_data();
    let mut resume = None;
    let deadline = Instant::now() + Duration::from_secs(10);
    while resume.is_none() && Instant::now() < deadline {
        leech.wait_for_alert(Duration::from_millis(100));
        for a in leech.pop_alerts() {
            if let Alert::SaveResumeData { data, .. } = a {
                resume = Some(*data);
            }
        }
    }
    let resume = resume.expect("resume data alert");
    assert!(resume.pieces.all());
    let bytes = resume.to_bytes();
    leech.remove_torrent(&h, false);
    assert!(!h.is_valid());
    let again = Session::new(settings()).unwrap();
    let mut params = AddTorrentParams::new(Arc::clone(&info), dst.path());
    params.resume = Some(lt_session::ResumeData::from_bytes(&bytes).unwrap());
    let h2 = again.add_torrent(params).unwrap();
    let mut alerts = Vec::new();
    wait(&again, &h2, 10, &mut alerts, |s| s.is_seeding);
    assert!(alerts.iter().any(|a| matches!(
        a,
        Alert::StateChanged {
            prev: TorrentState::CheckingResumeData,
            state: TorrentState::Seeding,
            ..
        }
    )));

    // Removal with the files.
    again.remove_torrent(&h2, true);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut deleted = false;
    while !deleted && Instant::now() < deadline {
        again.wait_for_alert(Duration::from_millis(100));
        deleted = again
            .pop_alerts()
            .iter()
            .any(|a| matches!(a, Alert::TorrentDeleted { .. }));
    }
    assert!(deleted, "no torrent-deleted alert");
    assert!(!dst.path().join("payload.bin").exists());
    seed.shutdown();
}

#[test]
fn encrypted_transfer_and_pause_resume() {
    let data = payload(2 << 20, 9);
    let info = torrent(&data, 32 << 10);
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("payload.bin"), &data).unwrap();
    let mut s = settings();
    s.engine.out_enc_policy = lt_session::EncPolicy::Forced;
    s.engine.in_enc_policy = lt_session::EncPolicy::Forced;
    let seed = Session::new(s.clone()).unwrap();
    let sh = seed
        .add_torrent(AddTorrentParams::new(Arc::clone(&info), src.path()))
        .unwrap();
    wait(&seed, &sh, 20, &mut Vec::new(), |s| s.is_seeding);
    let dst = tempfile::tempdir().unwrap();
    let leech = Session::new(s).unwrap();
    let mut params = AddTorrentParams::new(Arc::clone(&info), dst.path());
    params.flags.paused = true;
    params.flags.auto_managed = false;
    let h = leech.add_torrent(params).unwrap();
    wait(&leech, &h, 10, &mut Vec::new(), |s| {
        s.state == TorrentState::Downloading
    });
    h.connect_peer(seed.listen_addrs()[0]);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        h.status().unwrap().num_pieces,
        0,
        "a paused torrent downloads nothing"
    );
    h.resume();
    wait(&leech, &h, 30, &mut Vec::new(), |s| s.is_seeding);
    assert_eq!(std::fs::read(dst.path().join("payload.bin")).unwrap(), data);
    let peers = sh.peer_info();
    assert!(peers.iter().all(|p| p.encrypted), "{peers:?}");
}

/// Mounts a tmpfs of `kib` KiB on `dir`; unmounted on drop.
struct Tmpfs<'a>(&'a Path);

impl<'a> Tmpfs<'a> {
    fn mount(dir: &'a Path, kib: u32) -> Self {
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "tmpfs"])
            .arg(dir)
            .status()
            .expect("run mount")
            .success();
        assert!(
            ok,
            "mounting a tmpfs failed: the full-disk test needs root (CAP_SYS_ADMIN)"
        );
        Self(dir)
    }

    fn resize(&self, kib: u32) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,size={kib}k")])
            .arg(self.0)
            .status()
            .expect("run mount")
            .success();
        assert!(ok, "remount failed");
    }
}

impl Drop for Tmpfs<'_> {
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg(self.0)
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            // Never leave a mount behind, even when a file is still open.
            let _ = Command::new("umount").arg("-l").arg(self.0).status();
        }
    }
}

#[test]
fn full_disk_enters_upload_mode_and_leaves_it() {
    let data = payload(4 << 20, 13);
    let info = torrent(&data, 64 << 10);
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("payload.bin"), &data).unwrap();
    let (seed, seed_addr) = seed_session(&info, src.path());

    let dst = tempfile::tempdir().unwrap();
    let fs = Tmpfs::mount(dst.path(), 1024);
    let mut s = settings();
    s.engine.optimistic_disk_retry = Duration::from_secs(1);
    let leech = Session::new(s).unwrap();
    let mut params = AddTorrentParams::new(Arc::clone(&info), dst.path());
    params.peers.push(seed_addr);
    let h = leech.add_torrent(params).unwrap();
    let mut alerts = Vec::new();
    wait(&leech, &h, 30, &mut alerts, |s| s.upload_mode);
    assert!(
        alerts.iter().any(|a| matches!(a, Alert::FileError { .. })),
        "no file error alert among {} alerts: {:?}",
        alerts.len(),
        alerts
            .iter()
            .filter(|a| !matches!(a, Alert::PieceFinished { .. } | Alert::Stats { .. }))
            .collect::<Vec<_>>()
    );
    let partial = h.status().unwrap().num_pieces;
    assert!(partial < info.num_pieces());
    fs.resize(16 * 1024);
    wait(&leech, &h, 60, &mut alerts, |s| s.is_seeding);
    assert!(
        alerts
            .iter()
            .any(|a| matches!(a, Alert::UploadMode { enabled: false, .. }))
    );
    assert_eq!(std::fs::read(dst.path().join("payload.bin")).unwrap(), data);
    leech.shutdown();
    drop(fs);
    seed.shutdown();
}

#[test]
fn magnet_found_through_the_dht_alone() {
    let data = payload(1 << 20, 17);
    let info = torrent(&data, 32 << 10);
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("payload.bin"), &data).unwrap();
    // A DHT node everyone starts from, a seed and a leecher that has only the magnet link.
    let hub = Session::new(settings()).unwrap();
    let hub_addr = hub.listen_addrs()[0];
    let mut s = settings();
    s.dht_bootstrap_nodes = vec![hub_addr];
    s.engine.dht_announce_interval = Duration::from_secs(2);
    let seed = Session::new(s.clone()).unwrap();
    let sh = seed
        .add_torrent(AddTorrentParams::new(Arc::clone(&info), src.path()))
        .unwrap();
    wait(&seed, &sh, 20, &mut Vec::new(), |s| s.is_seeding);
    let dst = tempfile::tempdir().unwrap();
    let leech = Session::new(s).unwrap();
    let mut link = info.magnet_link();
    link.trackers.clear();
    link.peers.clear();
    let h = leech
        .add_torrent(AddTorrentParams::from_magnet(link, dst.path()))
        .unwrap();
    let mut alerts = Vec::new();
    wait(&leech, &h, 60, &mut alerts, |s| s.is_seeding);
    assert_eq!(std::fs::read(dst.path().join("payload.bin")).unwrap(), data);
    assert!(
        alerts
            .iter()
            .any(|a| matches!(a, Alert::MetadataReceived { .. }))
    );
    // No tracker, no peer given: the seed and the leecher met through the DHT (whichever
    // looked the other up first dialled).
    assert!(leech.dht_nodes() >= 1);
    let state = leech.dht_state().unwrap();
    assert!(state.id.is_some() && !state.nodes.is_empty(), "{state:?}");
}

/// Waits for the first alert `pick` accepts.
fn wait_alert<T>(session: &Session, secs: u64, mut pick: impl FnMut(&Alert) -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        session.wait_for_alert(Duration::from_millis(100));
        for a in session.pop_alerts() {
            if let Some(t) = pick(&a) {
                return t;
            }
        }
        assert!(Instant::now() < deadline, "timed out waiting for an alert");
    }
}

#[test]
fn handle_operations_read_recheck_move_rename() {
    let data = payload(1 << 20, 23);
    let info = torrent(&data, 64 << 10);
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("payload.bin"), &data).unwrap();
    let session = Session::new(settings()).unwrap();
    let h = session
        .add_torrent(AddTorrentParams::new(Arc::clone(&info), src.path()))
        .unwrap();
    wait(&session, &h, 20, &mut Vec::new(), |s| s.is_seeding);
    assert!(h.have_piece(lt_core::PieceIndex::new(3)));

    // read_piece returns the piece's bytes.
    h.read_piece(lt_core::PieceIndex::new(3));
    let got = wait_alert(&session, 10, |a| match a {
        Alert::ReadPiece { data, .. } => Some(data.clone()),
        _ => None,
    })
    .unwrap();
    assert_eq!(&got[..], &data[3 * 65536..4 * 65536]);

    // force_recheck finds every piece again; a damaged piece is found missing.
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(src.path().join("payload.bin"))
        .unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, b"corrupt", 5 * 65536).unwrap();
    drop(f);
    h.force_recheck();
    wait(&session, &h, 20, &mut Vec::new(), |s| {
        s.state == TorrentState::Downloading && s.num_pieces == info.num_pieces() - 1
    });
    assert!(!h.have_piece(lt_core::PieceIndex::new(5)));

    // move_storage moves the file; rename_file renames it.
    let moved = tempfile::tempdir().unwrap();
    h.move_storage(moved.path().to_string_lossy());
    let path = wait_alert(&session, 10, |a| match a {
        Alert::StorageMoved { path, .. } => Some(path.clone()),
        Alert::StorageMovedFailed { error, .. } => panic!("move failed: {error}"),
        _ => None,
    });
    assert_eq!(Path::new(&path), moved.path());
    assert!(moved.path().join("payload.bin").exists());
    assert!(!src.path().join("payload.bin").exists());
    assert_eq!(h.save_path().unwrap(), moved.path());
    h.rename_file(0, "renamed.bin");
    let name = wait_alert(&session, 10, |a| match a {
        Alert::FileRenamed { name, .. } => Some(name.clone()),
        Alert::FileRenameFailed { error, .. } => panic!("rename failed: {error}"),
        _ => None,
    });
    assert_eq!(name, "renamed.bin");
    assert!(moved.path().join("renamed.bin").exists());

    // Priorities and flags are reported back.
    h.prioritize_files(&[0]);
    assert_eq!(h.file_priorities(), vec![0]);
    assert!(h.piece_priorities().iter().all(|&p| p == 0));
    h.set_sequential_download(true);
    assert!(h.status().unwrap().sequential_download);
    h.set_upload_limit(1000);
    h.set_download_limit(2000);
    assert_eq!(h.limits(), Some((1000, 2000)));
    h.pause();
    assert!(h.status().unwrap().paused);
    session.remove_torrent(&h, false);
    assert!(session.torrents().is_empty());
}

#[test]
fn ip_filter_refuses_blocked_peers() {
    let data = payload(512 << 10, 29);
    let info = torrent(&data, 32 << 10);
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("payload.bin"), &data).unwrap();
    let (seed, seed_addr) = seed_session(&info, src.path());
    let mut filter = lt_session::IpFilter::default();
    assert!(filter.add_rule(
        "127.0.0.0".parse().unwrap(),
        "127.255.255.255".parse().unwrap(),
        lt_session::IpAccess::BLOCKED
    ));
    seed.set_ip_filter(filter);
    let dst = tempfile::tempdir().unwrap();
    let leech = Session::new(settings()).unwrap();
    let mut params = AddTorrentParams::new(Arc::clone(&info), dst.path());
    params.peers.push(seed_addr);
    let h = leech.add_torrent(params).unwrap();
    let blocked = wait_alert(&seed, 10, |a| match a {
        Alert::PeerBlocked { addr, .. } => Some(*addr),
        _ => None,
    });
    assert!(blocked.ip().is_loopback());
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        h.status().unwrap().num_pieces,
        0,
        "a blocked seed served data"
    );
    seed.set_ip_filter(lt_session::IpFilter::default());
    wait(&leech, &h, 30, &mut Vec::new(), |s| s.is_seeding);
    assert_eq!(std::fs::read(dst.path().join("payload.bin")).unwrap(), data);
}

#[test]
fn port_filter_stops_outgoing_connections() {
    let data = payload(256 << 10, 31);
    let info = torrent(&data, 32 << 10);
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("payload.bin"), &data).unwrap();
    let (_seed, seed_addr) = seed_session(&info, src.path());
    let dst = tempfile::tempdir().unwrap();
    let leech = Session::new(settings()).unwrap();
    let mut filter = lt_session::PortFilter::default();
    assert!(filter.add_rule(
        seed_addr.port(),
        seed_addr.port(),
        lt_session::IpAccess::BLOCKED
    ));
    leech.set_port_filter(filter);
    let mut params = AddTorrentParams::new(Arc::clone(&info), dst.path());
    params.peers.push(seed_addr);
    let h = leech.add_torrent(params).unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let st = h.status().unwrap();
    assert_eq!((st.num_peers, st.num_pieces), (0, 0), "{st:?}");
    leech.set_port_filter(lt_session::PortFilter::default());
    wait(&leech, &h, 30, &mut Vec::new(), |s| s.is_seeding);
    assert_eq!(std::fs::read(dst.path().join("payload.bin")).unwrap(), data);
}

/// Waits up to 10 s for the session's DHT to know at least one node.
fn wait_for_dht_nodes(session: &Session, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while session.dht_nodes() == 0 {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn dht_starts_and_stops_while_the_session_runs() {
    let hub = Session::new(settings()).unwrap();
    let mut s = settings();
    s.enable_dht = false;
    let session = Session::new(s).unwrap();
    assert!(!session.is_dht_running());
    session.start_dht();
    assert!(session.is_dht_running());
    session.add_dht_node(hub.listen_addrs()[0]);
    wait_for_dht_nodes(&session, "the started DHT never met the hub");
    let id = session.dht_state().unwrap().id;
    assert!(id.is_some());

    session.stop_dht();
    assert!(!session.is_dht_running());
    assert_eq!(session.dht_nodes(), 0);
    assert!(session.dht_state().is_none());

    // Started again, it has the same node id and finds the hub from its saved nodes.
    session.start_dht();
    assert!(session.is_dht_running());
    wait_for_dht_nodes(&session, "the restarted DHT did not find its saved nodes");
    assert_eq!(session.dht_state().unwrap().id, id);
}

#[test]
fn session_state_round_trip() {
    let mut s = settings();
    s.engine.upload_rate_limit = 123_456;
    s.engine.active_downloads = 7;
    s.engine.ignore_limits_on_local_network = false;
    let hub = Session::new(settings()).unwrap();
    s.dht_bootstrap_nodes = vec![hub.listen_addrs()[0]];
    let session = Session::new(s).unwrap();
    wait_for_dht_nodes(&session, "the DHT never met the hub");
    let state = session.save_state();
    let mut loaded = SessionSettings::default();
    loaded.load_state(&state).unwrap();
    assert_eq!(loaded.engine.upload_rate_limit, 123_456);
    assert_eq!(loaded.engine.active_downloads, 7);
    assert!(!loaded.engine.ignore_limits_on_local_network);
    assert!(loaded.engine.rate_limit_ip_overhead);
    let dht = loaded.dht_state.unwrap();
    assert!(dht.id.is_some());
    assert_eq!(dht.nodes, vec![hub.listen_addrs()[0]]);
    assert!(SessionSettings::default().load_state(b"junk").is_err());
}

#[test]
fn the_proxy_is_kept_in_the_session_state() {
    use lt_session::{ProxyKind, ProxySettings};
    let proxy = ProxySettings {
        proxy_tracker_connections: false,
        ..ProxySettings::new(ProxyKind::Socks5, "127.0.0.1", 1080).with_auth("ann", "p:w")
    };
    let session = Session::new(settings()).unwrap();
    assert_eq!(session.proxy(), None);
    session.set_proxy(Some(proxy.clone())).unwrap();
    assert_eq!(session.proxy(), Some(proxy.clone()));
    // The DHT and incoming connections stop, and alerts say why.
    assert!(!session.is_dht_running());
    let s = session.settings();
    assert!(!s.enable_incoming_tcp && !s.enable_outgoing_utp);
    let alerts = session.pop_alerts();
    let said = |what: &str| {
        alerts
            .iter()
            .any(|a| matches!(a, Alert::AnonymousMode { message } if message.contains(what)))
    };
    assert!(said("DHT") && said("not listening"), "{alerts:?}");
    let mut loaded = SessionSettings::default();
    loaded.load_state(&session.save_state()).unwrap();
    assert_eq!(loaded.proxy, Some(proxy));
    // Settings that cannot be a proxy are refused and change nothing.
    let bad = ProxySettings::new(ProxyKind::Http, "no host/here", 8080);
    assert!(session.set_proxy(Some(bad)).is_err());
    session.set_proxy(None).unwrap();
    assert_eq!(session.proxy(), None);
}

#[test]
fn seed_mode_hashes_each_piece_when_first_asked() {
    let data = payload(1 << 20, 31);
    let info = torrent(&data, 64 << 10);
    let src = tempfile::tempdir().unwrap();
    // Piece 2 on disk is damaged, but seed mode trusts the files until a peer asks.
    let mut damaged = data;
    damaged[2 * 65536 + 100] ^= 0xff;
    std::fs::write(src.path().join("payload.bin"), &damaged).unwrap();
    let seed = Session::new(settings()).unwrap();
    let mut params = AddTorrentParams::new(Arc::clone(&info), src.path());
    params.flags.seed_mode = true;
    let sh = seed.add_torrent(params).unwrap();
    assert!(
        sh.status().unwrap().is_seeding,
        "seed mode starts seeding at once"
    );
    let dst = tempfile::tempdir().unwrap();
    let leech = Session::new(settings()).unwrap();
    let mut params = AddTorrentParams::new(Arc::clone(&info), dst.path());
    params.peers.push(seed.listen_addrs()[0]);
    let h = leech.add_torrent(params).unwrap();
    let n = info.num_pieces();
    let mut leech_alerts = Vec::new();
    wait(&leech, &h, 30, &mut leech_alerts, |s| s.num_pieces == n - 1);
    let mut seed_alerts = Vec::new();
    wait(&seed, &sh, 10, &mut seed_alerts, |s| {
        s.num_pieces == n - 1 && !s.is_seeding
    });
    assert!(
        seed_alerts
            .iter()
            .any(|a| matches!(a, Alert::HashFailed { piece, .. } if piece.get() == 2))
    );
    assert!(!h.have_piece(lt_core::PieceIndex::new(2)));
    assert!(
        !leech_alerts
            .iter()
            .any(|a| matches!(a, Alert::HashFailed { .. })),
        "the damaged piece was sent"
    );
}

/// Issue 18, finding 7: connections that never send a byte hold at most
/// `max_incoming_handshakes` handshake slots; the others are closed at once, before any
/// work is done for them.
#[test]
fn silent_connections_hold_at_most_the_handshake_slots() {
    use std::io::Read as _;

    let mut s = settings();
    s.max_incoming_handshakes = 4;
    s.engine.handshake_timeout = Duration::from_secs(30);
    let session = Session::new(s).unwrap();
    let addr = session.listen_addrs()[0];
    let mut socks: Vec<std::net::TcpStream> = (0..10)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let mut closed = 0;
    for sock in &mut socks {
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut buf = [0u8; 1];
        match sock.read(&mut buf) {
            Ok(0) => closed += 1,
            Err(e)
                if !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                closed += 1;
            }
            _ => {}
        }
    }
    assert_eq!(closed, 6, "all but the 4 handshake slots closed at once");
    session.shutdown();
}

/// The API's alert queue is bounded like the engine's: alerts nobody pops cannot grow it
/// past `alert_queue_size`; what was dropped is counted.
#[test]
fn the_alert_queue_is_bounded() {
    let mut s = settings();
    s.engine.alert_queue_size = 20;
    let session = Session::new(s).unwrap();
    let src = tempfile::tempdir().unwrap();
    let mut added = 0;
    for i in 0..30u8 {
        let data = payload(40_000, u64::from(i));
        std::fs::write(src.path().join("payload.bin"), &data).unwrap();
        let info = torrent(&data, 16 << 10);
        let dir = src.path().join(format!("t{i}"));
        session
            .add_torrent(AddTorrentParams::new(info, &dir))
            .unwrap();
        added += 1;
    }
    std::thread::sleep(Duration::from_millis(500));
    let alerts = session.pop_alerts();
    assert!(alerts.len() <= 20, "{} alerts queued", alerts.len());
    let dropped: u64 = alerts
        .iter()
        .map(|a| match a {
            Alert::AlertsDropped { count } => *count,
            _ => 0,
        })
        .sum();
    assert!(dropped > 0, "{added} torrents added, nothing dropped");
    session.shutdown();
}

/// A leecher that may hold only 64 KiB of a piece in memory writes 2 MiB pieces block run
/// by block run and hashes each back from its files (SHA-1 for a hybrid torrent, the v2
/// merkle layer for a v2-only one); the download is whole and no piece fails.
#[test]
fn pieces_larger_than_the_memory_limit_download_through_the_files() {
    for version in [
        lt_metainfo::TorrentVersion::Hybrid,
        lt_metainfo::TorrentVersion::V2,
    ] {
        let data = payload(6 << 20, 21);
        let bytes = CreateTorrent::from_memory("payload.bin", data.clone())
            .piece_size(2 << 20)
            .version(version)
            .generate()
            .unwrap();
        let info = Arc::new(TorrentInfo::from_bytes(&bytes).unwrap());
        let src = tempfile::tempdir().unwrap();
        std::fs::write(src.path().join("payload.bin"), &data).unwrap();
        let (seed, seed_addr) = seed_session(&info, src.path());

        let dst = tempfile::tempdir().unwrap();
        let mut s = settings();
        s.engine.max_held_piece_bytes = 64 << 10;
        let leech = Session::new(s).unwrap();
        let mut params = AddTorrentParams::new(Arc::clone(&info), dst.path());
        params.peers.push(seed_addr);
        let h = leech.add_torrent(params).unwrap();
        let mut alerts = Vec::new();
        wait(&leech, &h, 30, &mut alerts, |s| s.is_seeding);
        assert_eq!(
            std::fs::read(dst.path().join("payload.bin")).unwrap(),
            data,
            "{version:?}"
        );
        assert!(
            !alerts.iter().any(|a| matches!(a, Alert::HashFailed { .. })),
            "{version:?}: a piece failed its hash read back"
        );
        leech.shutdown();
        seed.shutdown();
    }
}

/// `enable_incoming_tcp` is read at each connection: `apply_settings` turns it off (a
/// peer's handshake gets no answer) and on again (it gets the seed's handshake).
#[test]
fn incoming_tcp_follows_apply_settings() {
    use std::io::{Read as _, Write as _};
    let data = payload(64 << 10, 3);
    let info = torrent(&data, 16 << 10);
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("payload.bin"), &data).unwrap();
    let (seed, addr) = seed_session(&info, src.path());
    let handshake = |expect_answer: bool| {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut hs = vec![19u8];
        hs.extend_from_slice(b"BitTorrent protocol");
        hs.extend_from_slice(&[0; 8]);
        hs.extend_from_slice(info.info_hash().best().as_bytes());
        hs.extend_from_slice(&[7; 20]);
        s.write_all(&hs).unwrap();
        let mut answer = [0u8; 68];
        let got = s.read_exact(&mut answer).is_ok();
        assert_eq!(got, expect_answer, "handshake answered: {got}");
        if got {
            assert_eq!(&answer[28..48], info.info_hash().best().as_bytes());
        }
    };
    handshake(true);
    let mut s = settings().engine;
    s.enable_incoming_tcp = false;
    seed.apply_settings(s.clone());
    handshake(false);
    s.enable_incoming_tcp = true;
    seed.apply_settings(s);
    handshake(true);
    seed.shutdown();
}

/// A leecher dials uTP first. Against a seed without uTP it reaches the seed over TCP
/// without waiting for the uTP connect timeout (set to 60 s here): when the seed's UDP port
/// is closed, the ICMP port unreachable fails the uTP connect at once; when something holds
/// the port and never answers (a peer with the DHT on its listen port but no uTP), TCP is
/// dialled beside uTP after `utp_tcp_race_delay` and wins.
#[test]
fn a_peer_without_utp_is_reached_over_tcp_at_once() {
    let data = payload(1 << 20, 11);
    let info = torrent(&data, 64 << 10);
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("payload.bin"), &data).unwrap();
    for silent_udp in [false, true] {
        let mut seed_settings = settings();
        seed_settings.engine.enable_incoming_utp = false;
        seed_settings.engine.enable_outgoing_utp = false;
        seed_settings.enable_dht = false;
        let seed = Session::new(seed_settings).unwrap();
        let sh = seed
            .add_torrent(AddTorrentParams::new(Arc::clone(&info), src.path()))
            .unwrap();
        wait(&seed, &sh, 20, &mut Vec::new(), |s| {
            s.state == TorrentState::Seeding
        });
        let seed_addr = seed.listen_addrs()[0];
        // The seed has no UDP socket; in the silent case the test holds its port.
        let _udp = silent_udp.then(|| std::net::UdpSocket::bind(seed_addr).unwrap());

        let mut s = settings();
        s.engine.utp_connect_timeout = Duration::from_secs(60);
        let leech = Session::new(s).unwrap();
        let dst = tempfile::tempdir().unwrap();
        let mut params = AddTorrentParams::new(Arc::clone(&info), dst.path());
        params.peers.push(seed_addr);
        let started = Instant::now();
        let h = leech.add_torrent(params).unwrap();
        wait(&leech, &h, 30, &mut Vec::new(), |s| s.is_seeding);
        let took = started.elapsed();
        eprintln!("silent UDP port {silent_udp}: downloaded in {took:?}");
        assert!(
            took < Duration::from_secs(10),
            "silent UDP port {silent_udp}: {took:?}"
        );
        assert_eq!(std::fs::read(dst.path().join("payload.bin")).unwrap(), data);
    }
}

#[test]
fn session_status_counts_across_connections_and_removed_torrents() {
    let data = payload(1 << 20, 47);
    let info = torrent(&data, 64 << 10);
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("payload.bin"), &data).unwrap();
    let (seed, seed_addr) = seed_session(&info, src.path());
    let before = seed.status();
    assert!(!before.has_incoming_connections);
    assert_eq!((before.num_torrents, before.num_peers), (1, 0));
    assert_eq!(
        before.allowed_upload_slots,
        seed.settings().unchoke_slots_limit
    );

    let leech = Session::new(settings()).unwrap();
    let dst = tempfile::tempdir().unwrap();
    let mut params = AddTorrentParams::new(Arc::clone(&info), dst.path());
    params.peers = vec![seed_addr];
    let lh = leech.add_torrent(params).unwrap();
    wait(&leech, &lh, 30, &mut Vec::new(), |s| s.is_seeding);
    let size = data.len() as u64;
    let l = leech.status();
    assert!(l.total_payload_download >= size, "{l:?}");
    assert!(l.total_download > l.total_payload_download, "{l:?}");
    assert!(!l.has_incoming_connections, "{l:?}");
    assert!(l.peerlist_size >= 1, "{l:?}");
    let s = seed.status();
    assert!(s.has_incoming_connections, "{s:?}");
    assert!(s.total_payload_upload >= size, "{s:?}");
    assert!(s.total_upload > s.total_payload_upload, "{s:?}");
    // Totals outlive the connections and the torrent.
    leech.remove_torrent(&lh, false);
    let deadline = Instant::now() + Duration::from_secs(10);
    while leech.status().num_torrents != 0 || seed.status().num_peers != 0 {
        assert!(
            Instant::now() < deadline,
            "{:?} {:?}",
            leech.status(),
            seed.status()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let l2 = leech.status();
    assert_eq!(l2.total_payload_download, l.total_payload_download);
    assert!(l2.total_download >= l.total_download);
    let s2 = seed.status();
    assert!(s2.total_upload >= s.total_upload && s2.total_payload_upload >= size);
    assert_eq!((s2.num_peers, s2.num_unchoked), (0, 0));
}
