//! lt's side of `cargo xtask bench scale` (issue 19): one lt-session process, driven by the
//! bench, which samples `/proc/PID` when this program prints a line.
//!
//! ```text
//! lt-scale make-many DIR COUNT TRACKER   # DIR/data/tNNNNN.bin (16 KiB each) + DIR/torrents/tNNNNN.torrent
//! lt-scale make-one FILE OUT PIECE_KIB   # a v1 torrent of FILE
//! lt-scale torrents DIR COUNT SETTLE_S IDLE_S
//! lt-scale seed TORRENT DATA_DIR CONNECTIONS PROFILE   # PROFILE: default | high-performance
//! ```
//!
//! `torrents`: starts a session (127.0.0.1, no DHT, LSD or port mapping, default settings
//! otherwise), waits 2 s and prints `{"event":"base"}`, waits 1 s, then adds COUNT torrents
//! from DIR/torrents in seed mode, auto-managed (default active limits), saved under
//! DIR/data, reading and parsing each .torrent inside the timed loop. It prints
//! `{"event":"added","add_s":..,"ready_s":..}`: `add_s` is the time until the last
//! `add_torrent` returned, `ready_s` until no torrent is in a checking state any more
//! (polled every 100 ms). Then it only drains alerts (one wait of up to 1 s at a time): after
//! SETTLE_S it prints `{"event":"settled"}`, after IDLE_S more `{"event":"idle_done"}`, and
//! then a summary of the torrents' states and the tracker replies seen, and exits. With
//! `LT_SCALE_DEBUG` set it prints every alert it drains to stderr.
//!
//! `seed`: seeds TORRENT from DATA_DIR (checked first, not seed mode) with the session's
//! connection limits raised to CONNECTIONS (session and torrent) and
//! `allow_multiple_connections_per_ip`; prints `{"event":"listening","port":N}`,
//! `{"event":"ready"}` once seeding, then `{"event":"status","uploaded":N,"peers":N}` each
//! second until killed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss,
    reason = "a benchmark program: a failure aborts it"
)]

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lt_metainfo::{CreateTorrent, TorrentInfo, TorrentVersion};
use lt_session::{
    AddTorrentParams, Alert, AlertCategory, Session, SessionSettings, Settings, TorrentState,
};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    match a.as_slice() {
        ["make-many", dir, count, tracker] => {
            make_many(Path::new(dir), count.parse().unwrap(), tracker);
        }
        ["make-one", file, out, piece_kib] => {
            let bytes = CreateTorrent::new(*file)
                .version(TorrentVersion::V1)
                .piece_size(piece_kib.parse::<u32>().unwrap() * 1024)
                .generate()
                .unwrap();
            std::fs::write(out, bytes).unwrap();
        }
        ["torrents", dir, count, settle, idle] => torrents(
            Path::new(dir),
            count.parse().unwrap(),
            Duration::from_secs(settle.parse().unwrap()),
            Duration::from_secs(idle.parse().unwrap()),
        ),
        ["seed", torrent, data, connections, profile] => seed(
            Path::new(torrent),
            Path::new(data),
            connections.parse().unwrap(),
            profile,
        ),
        _ => {
            eprintln!("usage: see the doc comment of tests/src/bin/lt-scale.rs");
            std::process::exit(2);
        }
    }
}

fn emit(v: &serde_json::Value) {
    println!("{v}");
}

/// A torrent file's name (without extension) for index `i`.
fn stem(i: usize) -> String {
    format!("t{i:05}")
}

/// Writes `count` 16 KiB files of distinct pseudo-random bytes and a single-file v1 torrent
/// of each, announcing to `tracker`.
fn make_many(dir: &Path, count: usize, tracker: &str) {
    let (data, torrents) = (dir.join("data"), dir.join("torrents"));
    std::fs::create_dir_all(&data).unwrap();
    std::fs::create_dir_all(&torrents).unwrap();
    for i in 0..count {
        let mut x = (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let mut bytes = vec![0u8; 16 * 1024];
        for w in bytes.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            w.copy_from_slice(&x.to_le_bytes());
        }
        let name = format!("{}.bin", stem(i));
        std::fs::write(data.join(&name), &bytes).unwrap();
        let t = CreateTorrent::from_memory(name, bytes)
            .version(TorrentVersion::V1)
            .piece_size(16 * 1024)
            .tracker(tracker)
            .generate()
            .unwrap();
        std::fs::write(torrents.join(format!("{}.torrent", stem(i))), t).unwrap();
    }
}

fn session_settings(engine: Settings) -> SessionSettings {
    SessionSettings {
        engine,
        listen_interfaces: vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 0))],
        listen_port_retries: 0,
        enable_dht: false,
        enable_lsd: false,
        enable_upnp: false,
        enable_natpmp: false,
        alert_mask: AlertCategory::default_mask() | AlertCategory::TRACKER,
        ..SessionSettings::default()
    }
}

fn torrents(dir: &Path, count: usize, settle: Duration, idle: Duration) {
    let session = Session::new(session_settings(Settings::default())).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    emit(&serde_json::json!({"event": "base"}));
    std::thread::sleep(Duration::from_secs(1));

    let mut replies = 0u64;
    let mut errors = 0u64;
    let mut count_alerts = |alerts: Vec<Alert>| {
        for a in alerts {
            if std::env::var_os("LT_SCALE_DEBUG").is_some() {
                eprintln!("{a:?}");
            }
            match a {
                Alert::TrackerReply { .. } => replies += 1,
                Alert::TrackerError { .. } => errors += 1,
                _ => {}
            }
        }
    };
    let save = dir.join("data");
    let started = Instant::now();
    for i in 0..count {
        let path = dir.join("torrents").join(format!("{}.torrent", stem(i)));
        let bytes = std::fs::read(&path).unwrap();
        let info = Arc::new(TorrentInfo::from_bytes(&bytes).unwrap());
        let mut p = AddTorrentParams::new(info, &save);
        p.flags.seed_mode = true;
        p.flags.auto_managed = true;
        session.add_torrent(p).unwrap();
        if i % 1000 == 999 {
            count_alerts(session.pop_alerts());
        }
    }
    let add_s = started.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        if session.torrent_status(|s| s.is_checking()).is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "torrents still checking after 600 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let ready_s = started.elapsed().as_secs_f64();
    emit(
        &serde_json::json!({"event": "added", "torrents": count, "add_s": add_s, "ready_s": ready_s}),
    );

    let settled_at = Instant::now() + settle;
    let idle_at = settled_at + idle;
    let mut settled = false;
    loop {
        let now = Instant::now();
        if !settled && now >= settled_at {
            settled = true;
            emit(&serde_json::json!({"event": "settled"}));
        }
        if now >= idle_at {
            emit(&serde_json::json!({"event": "idle_done"}));
            break;
        }
        let next = if settled { idle_at } else { settled_at };
        session.wait_for_alert(
            next.saturating_duration_since(now)
                .min(Duration::from_secs(1)),
        );
        count_alerts(session.pop_alerts());
    }
    let mut states: BTreeMap<String, usize> = BTreeMap::new();
    let mut paused = 0usize;
    for s in session.torrent_status(|_| true) {
        *states.entry(state_name(s.state).to_owned()).or_default() += 1;
        paused += usize::from(s.paused);
    }
    emit(&serde_json::json!({
        "event": "summary", "states": states, "paused": paused,
        "tracker_replies": replies, "tracker_errors": errors,
    }));
    session.shutdown();
}

const fn state_name(s: TorrentState) -> &'static str {
    match s {
        TorrentState::CheckingResumeData => "checking_resume_data",
        TorrentState::CheckingFiles => "checking_files",
        TorrentState::DownloadingMetadata => "downloading_metadata",
        TorrentState::Downloading => "downloading",
        TorrentState::Finished => "finished",
        TorrentState::Seeding => "seeding",
    }
}

fn seed(torrent: &Path, data: &Path, connections: usize, profile: &str) {
    let mut engine = match profile {
        "default" => Settings::default(),
        "high-performance" => Settings::high_performance_seed(),
        other => panic!("unknown profile {other:?}"),
    };
    engine.connections_limit = engine.connections_limit.max(connections);
    engine.max_connections_per_torrent = engine.max_connections_per_torrent.max(connections);
    engine.allow_multiple_connections_per_ip = true;
    engine.enable_incoming_utp = false;
    engine.enable_outgoing_utp = false;
    let session = Session::new(session_settings(engine)).unwrap();
    emit(&serde_json::json!({"event": "listening", "port": session.listen_port()}));
    let info = Arc::new(TorrentInfo::from_bytes(&std::fs::read(torrent).unwrap()).unwrap());
    let mut p = AddTorrentParams::new(info, PathBuf::from(data));
    p.flags.auto_managed = false;
    let h = session.add_torrent(p).unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        session.wait_for_alert(Duration::from_millis(100));
        drop(session.pop_alerts());
        let s = h.status().unwrap();
        assert!(s.error.is_none(), "{:?}", s.error);
        if !s.is_checking() {
            assert!(s.is_seeding, "the data is incomplete");
            break;
        }
        assert!(Instant::now() < deadline, "still checking after 300 s");
    }
    emit(&serde_json::json!({"event": "ready"}));
    let mut next = Instant::now() + Duration::from_secs(1);
    loop {
        session.wait_for_alert(next.saturating_duration_since(Instant::now()));
        drop(session.pop_alerts());
        if Instant::now() >= next {
            next += Duration::from_secs(1);
            let s = h.status().unwrap();
            emit(&serde_json::json!({
                "event": "status", "uploaded": s.total_payload_upload, "peers": s.num_peers,
                "uploads": s.num_uploads,
            }));
        }
    }
}
