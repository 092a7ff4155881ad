//! `lt download` and `lt seed` against libtorrent-rasterbar 2.0 (`python3-libtorrent`, driven by
//! `tests/python/lt_peer.py`) over TCP on loopback, every byte checked against the source:
//!
//! - lt downloads from a libtorrent seeder, plaintext and with encryption forced (RC4), by
//!   `--peer` and through trackers (opentracker and lt-tracker's server, HTTP and UDP);
//! - libtorrent downloads from an `lt seed` the same ways;
//! - an lt leecher killed with SIGKILL mid-download resumes from its resume data and does not
//!   download again what it had verified; SIGINT saves resume data and exits 1;
//! - `lt seed` refuses incomplete data; `lt download --seed` serves the next leecher; a
//!   magnet link with `--peer` fetches the metadata first;
//! - a misbehaving peer (wrong data, blocks out of range, an oversized message) is banned or
//!   dropped while the download completes from a good seeder.
//!
//! The harness itself is checked by a libtorrent -> libtorrent transfer through opentracker.
//! Payloads are a few MiB on /dev/shm; every wait has a deadline and every child is killed
//! when its guard drops.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers outside #[test] fns; a panic is a test failure"
)]

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use lt_tests::bad_peer::{BadPeer, Misbehaviour};
use lt_tests::swarm::{
    Encryption, LibtorrentOptions, Payload, Peer, Stream, Summary, deadline_in, free_port,
    lt_binary, start_libtorrent, start_lt, start_lt_seed, start_opentracker, wait_summary,
    wait_tracker_seeds,
};
use lt_tests::tracker_driver::TrackerThreads;
use lt_tests::{ChildGuard, require_python_libtorrent};
use lt_tracker::server::{ServerConfig, TrackerServer};
use serde_json::Value;

/// Payload size of the plain transfer tests: a short last piece on purpose.
const SIZE: u64 = 3 * 1024 * 1024 + 12_345;
/// Piece size of the test torrents.
const PIECE: u32 = 64 * 1024;
/// How long a whole transfer may take.
const TRANSFER_SECS: u64 = 60;

/// A scratch directory on /dev/shm when it exists (payloads stay off the disk). Also makes
/// sure `lt` is built and python3-libtorrent is there before anything with a deadline starts.
fn scratch() -> tempfile::TempDir {
    require_python_libtorrent();
    lt_binary();
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        tempfile::Builder::new()
            .prefix("lt-session-interop-")
            .tempdir_in(shm)
            .unwrap()
    } else {
        tempfile::tempdir().unwrap()
    }
}

/// Which tracker a test goes through, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    /// `--peer` / `connect_peer`, no tracker.
    Direct,
    /// opentracker, announce over HTTP.
    OpentrackerHttp,
    /// opentracker, announce over UDP (BEP 15).
    OpentrackerUdp,
    /// lt-tracker's server, announce over HTTP.
    LtTrackerHttp,
    /// lt-tracker's server, announce over UDP.
    LtTrackerUdp,
}

/// A running tracker (its process or threads) and an HTTP announce URL on its port, for
/// scrapes.
struct Tracker {
    _opentracker: Option<ChildGuard>,
    _threads: Option<TrackerThreads>,
    http: String,
}

impl Via {
    /// Starts the tracker on `port` for `payload` (made with [`Via::announce`]'s URL).
    fn start(self, dir: &Path, port: u16, payload: &Payload) -> Option<Tracker> {
        let (opentracker, threads) = match self {
            Self::Direct => return None,
            Self::OpentrackerHttp | Self::OpentrackerUdp => (
                Some(start_opentracker(
                    &dir.join("opentracker"),
                    port,
                    &[payload.info_hash()],
                )),
                None,
            ),
            Self::LtTrackerHttp | Self::LtTrackerUdp => {
                let server = TrackerServer::new(ServerConfig {
                    announce_interval: Duration::from_secs(30),
                    min_interval: Duration::from_secs(2),
                    rng_seed: Some([7; 32]),
                    ..Default::default()
                });
                let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
                (None, Some(TrackerThreads::bind(server, addr).unwrap()))
            }
        };
        Some(Tracker {
            _opentracker: opentracker,
            _threads: threads,
            http: format!("http://127.0.0.1:{port}/announce"),
        })
    }

    /// The announce URL to put in the torrent for a tracker on `port`.
    fn announce(self, port: u16) -> Option<String> {
        match self {
            Self::Direct => None,
            Self::OpentrackerHttp | Self::LtTrackerHttp => {
                Some(format!("http://127.0.0.1:{port}/announce"))
            }
            Self::OpentrackerUdp | Self::LtTrackerUdp => Some(format!("udp://127.0.0.1:{port}")),
        }
    }
}

/// A payload whose torrent announces to a tracker (per `via`), and that tracker running.
fn setup(dir: &Path, via: Via, size: u64) -> (Option<Tracker>, Payload) {
    let port = free_port();
    let trackers: Vec<String> = via.announce(port).into_iter().collect();
    let payload = Payload::create(dir, "payload.bin", size, PIECE, &trackers);
    let tracker = via.start(dir, port, &payload);
    (tracker, payload)
}

fn path_arg(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// `lt download` arguments: torrent, output dir, `--json`, encryption and peers.
fn lt_download_args(
    payload: &Payload,
    out: &Path,
    enc: Encryption,
    peers: &[SocketAddr],
) -> Vec<String> {
    let mut args = vec![
        "download".to_owned(),
        path_arg(&payload.torrent),
        "-o".to_owned(),
        path_arg(out),
        "--json".to_owned(),
        "--encryption".to_owned(),
        enc.arg().to_owned(),
    ];
    for p in peers {
        args.push("--peer".to_owned());
        args.push(p.to_string());
    }
    args
}

/// Waits for `lt download`'s summary and its exit 0; checks the summary's counts.
fn finish_lt_download(lt: &mut Peer, payload: &Payload) -> Summary {
    let summary = wait_summary(lt, deadline_in(TRANSFER_SECS)).unwrap_or_else(|e| panic!("{e}"));
    let status = lt
        .wait_exit(deadline_in(15))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        status.success(),
        "{}",
        lt.failure(&format!("exited with {status} after its summary"))
    );
    let pieces = u64::from(payload.info.num_pieces());
    assert_eq!(
        summary.total_bytes,
        payload.info.total_size(),
        "{summary:?}"
    );
    assert_eq!(summary.pieces, pieces, "{summary:?}");
    assert_eq!(summary.pieces_verified, pieces, "{summary:?}");
    assert_eq!(
        summary.json["info_hash"].as_str(),
        Some(payload.info_hash().to_hex().as_str()),
        "{summary:?}"
    );
    assert!(
        summary.seconds > 0.0 && summary.mb_per_s >= 0.0,
        "{summary:?}"
    );
    summary
}

/// lt downloads from a libtorrent seeder.
fn lt_from_libtorrent(enc: Encryption, via: Via) {
    require_python_libtorrent();
    let dir = scratch();
    let (tracker, payload) = setup(dir.path(), via, SIZE);
    let (_seed, seed_addr) = start_libtorrent(
        "seed",
        &payload.torrent,
        &payload.data_dir,
        &LibtorrentOptions {
            encryption: enc,
            ..Default::default()
        },
    );
    let peers = match &tracker {
        None => vec![seed_addr],
        Some(t) => {
            wait_tracker_seeds(&t.http, payload.info_hash(), 1, deadline_in(20)).unwrap();
            Vec::new()
        }
    };
    let out = dir.path().join("lt");
    let (mut lt, _) = start_lt("lt download", lt_download_args(&payload, &out, enc, &peers));
    let summary = finish_lt_download(&mut lt, &payload);
    assert_eq!(summary.resumed_pieces, 0, "{summary:?}");
    assert!(
        summary.payload_downloaded >= payload.info.total_size(),
        "{summary:?}"
    );
    payload.verify_download(&out).unwrap();
}

/// libtorrent downloads from `lt seed`, which then stops on SIGTERM, exits 0 and reports
/// what it uploaded.
fn libtorrent_from_lt(enc: Encryption, via: Via) {
    require_python_libtorrent();
    let dir = scratch();
    let (tracker, payload) = setup(dir.path(), via, SIZE);
    let (mut seed, seed_addr) = start_lt_seed(
        &payload.torrent,
        &payload.data_dir,
        &[
            "--json".to_owned(),
            "--encryption".to_owned(),
            enc.arg().to_owned(),
        ],
    );
    let peers = match &tracker {
        None => vec![seed_addr],
        Some(t) => {
            wait_tracker_seeds(&t.http, payload.info_hash(), 1, deadline_in(20))
                .unwrap_or_else(|e| panic!("{e}\n{}", seed.transcript()));
            Vec::new()
        }
    };
    let out = dir.path().join("libtorrent");
    let (mut leech, _) = start_libtorrent(
        "download",
        &payload.torrent,
        &out,
        &LibtorrentOptions {
            peers,
            encryption: enc,
            max_time: TRANSFER_SECS,
            ..Default::default()
        },
    );
    let finished = leech
        .wait_event("finished", deadline_in(TRANSFER_SECS))
        .unwrap_or_else(|e| panic!("{e}\nlt seed:\n{}", seed.transcript()));
    assert_eq!(
        finished["total_bytes"].as_u64(),
        Some(payload.info.total_size())
    );
    let status = leech.wait_exit(deadline_in(15)).unwrap();
    assert!(status.success(), "{}", leech.failure("exit status"));
    payload.verify_download(&out).unwrap();

    seed.signal("TERM").unwrap();
    let status = seed
        .wait_exit(deadline_in(15))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        status.success(),
        "{}",
        seed.failure(&format!("exited with {status} on SIGTERM"))
    );
    let uploaded = seed
        .wait_json(deadline_in(5), |v| v.get("uploaded").is_some())
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        uploaded["uploaded"]
            .as_u64()
            .is_some_and(|u| u >= payload.info.total_size()),
        "{}",
        seed.failure(&format!("uploaded {uploaded}"))
    );
}

#[test]
fn lt_from_libtorrent_plaintext() {
    lt_from_libtorrent(Encryption::Disabled, Via::Direct);
}

#[test]
fn lt_from_libtorrent_encryption_forced() {
    lt_from_libtorrent(Encryption::Forced, Via::Direct);
}

#[test]
fn lt_from_libtorrent_via_opentracker_http() {
    lt_from_libtorrent(Encryption::Enabled, Via::OpentrackerHttp);
}

#[test]
fn lt_from_libtorrent_via_lt_tracker_udp() {
    lt_from_libtorrent(Encryption::Enabled, Via::LtTrackerUdp);
}

#[test]
fn libtorrent_from_lt_plaintext() {
    libtorrent_from_lt(Encryption::Disabled, Via::Direct);
}

#[test]
fn libtorrent_from_lt_encryption_forced() {
    libtorrent_from_lt(Encryption::Forced, Via::Direct);
}

#[test]
fn libtorrent_from_lt_via_opentracker_udp() {
    libtorrent_from_lt(Encryption::Enabled, Via::OpentrackerUdp);
}

#[test]
fn libtorrent_from_lt_via_lt_tracker_http() {
    libtorrent_from_lt(Encryption::Enabled, Via::LtTrackerHttp);
}

/// The harness alone: libtorrent -> libtorrent through opentracker, so that a failure of the
/// tests above is not a failure of lt_peer.py or the helpers.
#[test]
fn harness_libtorrent_to_libtorrent_via_opentracker() {
    require_python_libtorrent();
    let dir = scratch();
    let (tracker, payload) = setup(dir.path(), Via::OpentrackerUdp, SIZE);
    let tracker = tracker.unwrap();
    let (_seed, _) = start_libtorrent(
        "seed",
        &payload.torrent,
        &payload.data_dir,
        &LibtorrentOptions::default(),
    );
    wait_tracker_seeds(&tracker.http, payload.info_hash(), 1, deadline_in(20)).unwrap();
    let out = dir.path().join("leech");
    let (mut leech, _) = start_libtorrent(
        "download",
        &payload.torrent,
        &out,
        &LibtorrentOptions::default(),
    );
    leech
        .wait_event("finished", deadline_in(TRANSFER_SECS))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(leech.wait_exit(deadline_in(15)).unwrap().success());
    payload.verify_download(&out).unwrap();
}

/// The percentage of an `lt download` progress line (`progress 45.1% ...`).
fn progress_percent(line: &str) -> Option<f64> {
    let rest = line.split("progress ").nth(1)?;
    rest.split('%').next()?.trim().parse().ok()
}

/// Waits until `lt download` reports at least `percent` progress on stderr.
fn wait_progress(lt: &mut Peer, percent: f64, secs: u64) {
    lt.wait_line(Stream::Stderr, deadline_in(secs), |l| {
        progress_percent(l).is_some_and(|p| p >= percent)
    })
    .unwrap_or_else(|e| panic!("{e}"));
}

/// SIGKILL an lt leecher once it passed 30% and saved resume data; the same command then
/// finishes from its resume data: `resumed_pieces > 0` and less than the whole payload
/// downloaded again.
#[test]
fn lt_resumes_after_sigkill() {
    require_python_libtorrent();
    let dir = scratch();
    // 6 MiB at 1.5 MB/s: about four seconds, so the kill lands mid-download.
    let (_, payload) = setup(dir.path(), Via::Direct, 6 * 1024 * 1024);
    let (_seed, seed_addr) = start_libtorrent(
        "seed",
        &payload.torrent,
        &payload.data_dir,
        &LibtorrentOptions {
            upload_limit: 1_500_000,
            ..Default::default()
        },
    );
    let out = dir.path().join("lt");
    let args = lt_download_args(&payload, &out, Encryption::Enabled, &[seed_addr]);
    let resume: PathBuf = out
        .join(".lt")
        .join(format!("{}.resume", payload.info_hash().to_hex()));

    let (mut first, _) = start_lt("lt download (first run)", &args);
    wait_progress(&mut first, 30.0, TRANSFER_SECS);
    // Resume data is saved about once a second while pieces complete.
    let deadline = deadline_in(10);
    while !resume.is_file() {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            first.failure(&format!("no resume data at {} after 30%", resume.display()))
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(1200));
    first.signal("KILL").unwrap();
    let status = first.wait_exit(deadline_in(10)).unwrap();
    assert!(!status.success());
    drop(first);

    let (mut second, _) = start_lt("lt download (after SIGKILL)", &args);
    let summary = finish_lt_download(&mut second, &payload);
    assert!(summary.resumed_pieces > 0, "nothing resumed: {summary:?}");
    assert!(
        summary.payload_downloaded < payload.info.total_size(),
        "downloaded everything again: {summary:?}"
    );
    assert!(
        summary.payload_downloaded
            >= (u64::from(payload.info.num_pieces()) - summary.resumed_pieces).saturating_sub(1)
                * u64::from(PIECE),
        "downloaded less than the missing pieces: {summary:?}"
    );
    payload.verify_download(&out).unwrap();
}

/// A bad peer and a rate-limited good libtorrent seeder; lt dials both. Returns the lt peer
/// (running), the bad peer and the payload.
fn with_bad_peer(dir: &Path, behaviour: Misbehaviour) -> (Peer, BadPeer, Payload, Peer, PathBuf) {
    require_python_libtorrent();
    // 4 MiB at 1 MB/s from the good seeder: about four seconds.
    let (_, payload) = setup(dir, Via::Direct, 4 * 1024 * 1024);
    let (seed, seed_addr) = start_libtorrent(
        "seed",
        &payload.torrent,
        &payload.data_dir,
        &LibtorrentOptions {
            upload_limit: 1_000_000,
            encryption: Encryption::Disabled,
            ..Default::default()
        },
    );
    let bad = BadPeer::start(
        payload.info_hash(),
        payload.info.num_pieces(),
        payload.info.piece_length(),
        behaviour,
    )
    .unwrap();
    let out = dir.join("lt");
    // The bad peer first, so that lt talks to it from the start.
    let (lt, _) = start_lt(
        "lt download",
        lt_download_args(&payload, &out, Encryption::Disabled, &[bad.addr, seed_addr]),
    );
    (lt, bad, payload, seed, out)
}

/// Wrong data in every block: lt bans the peer (smart ban) and still completes correctly.
#[test]
fn bad_peer_wrong_data_is_banned() {
    let dir = scratch();
    let (mut lt, bad, payload, _seed, out) = with_bad_peer(
        dir.path(),
        Misbehaviour {
            wrong_data: true,
            out_of_range_every: None,
            oversized_after: None,
        },
    );
    let summary = finish_lt_download(&mut lt, &payload);
    payload.verify_download(&out).unwrap();
    let sent = bad
        .stats
        .bad_blocks
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        sent > 0,
        "lt never asked the bad peer for a block (connections: {}); the test proved nothing\n{}",
        bad.stats
            .connections
            .load(std::sync::atomic::Ordering::Relaxed),
        lt.transcript()
    );
    assert!(
        summary.peers_banned >= 1,
        "a peer that sent {sent} corrupt blocks was not banned: {summary:?}\n{}",
        lt.transcript()
    );
}

/// Checks that lt closed the bad peer's connection while the download was still running.
fn assert_dropped_midway(lt: &mut Peer, bad: &BadPeer, what: &str) {
    // The good seeder needs about four seconds; at 50% lt is still downloading, so a closed
    // connection is lt's answer to the violation, not its exit.
    wait_progress(lt, 50.0, TRANSFER_SECS);
    let closed = bad
        .stats
        .closed_by_remote
        .load(std::sync::atomic::Ordering::Relaxed);
    let connections = bad
        .stats
        .connections
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        connections >= 1,
        "{}",
        lt.failure("lt never connected to the bad peer")
    );
    assert!(
        closed >= 1,
        "{}",
        lt.failure(&format!(
            "lt kept a connection open after {what} ({connections} connection(s))"
        ))
    );
}

/// Blocks of a piece past the torrent's end and past a piece's end: lt drops the peer and
/// completes correctly.
#[test]
fn bad_peer_out_of_range_blocks_are_dropped() {
    let dir = scratch();
    let (mut lt, bad, payload, _seed, out) = with_bad_peer(
        dir.path(),
        Misbehaviour {
            wrong_data: false,
            out_of_range_every: Some(1),
            oversized_after: None,
        },
    );
    assert_dropped_midway(&mut lt, &bad, "blocks out of range");
    finish_lt_download(&mut lt, &payload);
    payload.verify_download(&out).unwrap();
}

/// A 256 MiB length prefix: lt refuses it before buffering, drops the peer and completes.
#[test]
fn bad_peer_oversized_message_is_dropped() {
    let dir = scratch();
    let (mut lt, bad, payload, _seed, out) = with_bad_peer(
        dir.path(),
        Misbehaviour {
            wrong_data: false,
            out_of_range_every: None,
            oversized_after: Some(1),
        },
    );
    assert_dropped_midway(&mut lt, &bad, "an oversized message");
    finish_lt_download(&mut lt, &payload);
    payload.verify_download(&out).unwrap();
}

#[test]
fn progress_lines_parse() {
    assert_eq!(
        progress_percent("progress 45.1% 123.4 MB/s 3 peers eta 5s"),
        Some(45.1)
    );
    assert_eq!(progress_percent("listening on 0.0.0.0:1"), None);
    let v: Value = serde_json::from_str(r#"{"uploaded":5}"#).unwrap();
    assert_eq!(v["uploaded"], 5);
}

/// SIGINT before completion: lt saves resume data (here in a `--state-dir` of its own) and
/// exits 1; the same command then resumes without downloading everything again.
#[test]
fn lt_sigint_saves_resume_data_and_exits_1() {
    let dir = scratch();
    let (_, payload) = setup(dir.path(), Via::Direct, 6 * 1024 * 1024);
    let (_seed, seed_addr) = start_libtorrent(
        "seed",
        &payload.torrent,
        &payload.data_dir,
        &LibtorrentOptions {
            upload_limit: 1_500_000,
            ..Default::default()
        },
    );
    let out = dir.path().join("lt");
    let state = dir.path().join("state");
    let mut args = lt_download_args(&payload, &out, Encryption::Enabled, &[seed_addr]);
    args.extend(["--state-dir".to_owned(), path_arg(&state)]);
    let resume = state.join(format!("{}.resume", payload.info_hash().to_hex()));

    let (mut first, _) = start_lt("lt download (first run)", &args);
    wait_progress(&mut first, 30.0, TRANSFER_SECS);
    first.signal("INT").unwrap();
    let status = first.wait_exit(deadline_in(15)).unwrap();
    assert_eq!(
        status.code(),
        Some(1),
        "{}",
        first.failure(&format!(
            "SIGINT before completion: {status}, expected exit 1"
        ))
    );
    assert!(
        resume.is_file(),
        "{}",
        first.failure(&format!(
            "no resume data at {} after SIGINT",
            resume.display()
        ))
    );
    assert!(
        !out.join(".lt").exists(),
        "state written outside --state-dir"
    );
    drop(first);

    let (mut second, _) = start_lt("lt download (after SIGINT)", &args);
    let summary = finish_lt_download(&mut second, &payload);
    assert!(summary.resumed_pieces > 0, "nothing resumed: {summary:?}");
    assert!(
        summary.payload_downloaded < payload.info.total_size(),
        "downloaded everything again: {summary:?}"
    );
    payload.verify_download(&out).unwrap();
}

/// `lt seed` on data with its second half missing exits 1 instead of seeding.
#[test]
fn lt_seed_refuses_incomplete_data() {
    let dir = scratch();
    let (_, payload) = setup(dir.path(), Via::Direct, SIZE);
    let half = payload.info.total_size() / 2;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&payload.file)
        .unwrap();
    file.set_len(half).unwrap();
    drop(file);
    let mut cmd = std::process::Command::new(lt_binary());
    cmd.arg("seed")
        .arg(&payload.torrent)
        .arg("--data")
        .arg(&payload.data_dir);
    let mut seed = Peer::spawn("lt seed (incomplete data)", &mut cmd).unwrap();
    let status = seed.wait_exit(deadline_in(30)).unwrap();
    assert_eq!(
        status.code(),
        Some(1),
        "{}",
        seed.failure(&format!("seeding half the data: {status}, expected exit 1"))
    );
}

/// `lt download --seed` keeps seeding after its summary: once the original libtorrent
/// seeder is gone, a libtorrent leecher gets everything from lt; SIGTERM then exits 0.
#[test]
fn lt_download_seed_serves_the_next_leecher() {
    let dir = scratch();
    let (_, payload) = setup(dir.path(), Via::Direct, SIZE);
    let (mut seed, seed_addr) = start_libtorrent(
        "seed",
        &payload.torrent,
        &payload.data_dir,
        &LibtorrentOptions::default(),
    );
    let out = dir.path().join("lt");
    let mut args = lt_download_args(&payload, &out, Encryption::Enabled, &[seed_addr]);
    args.push("--seed".to_owned());
    let (mut lt, lt_addr) = start_lt("lt download --seed", args);
    let summary =
        wait_summary(&mut lt, deadline_in(TRANSFER_SECS)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(summary.pieces_verified, summary.pieces, "{summary:?}");
    payload.verify_download(&out).unwrap();
    seed.signal("TERM").unwrap();
    seed.wait_exit(deadline_in(15)).unwrap();
    drop(seed);

    let next = dir.path().join("libtorrent");
    let (mut leech, _) = start_libtorrent(
        "download",
        &payload.torrent,
        &next,
        &LibtorrentOptions {
            peers: vec![lt_addr],
            max_time: TRANSFER_SECS,
            ..Default::default()
        },
    );
    leech
        .wait_event("finished", deadline_in(TRANSFER_SECS))
        .unwrap_or_else(|e| panic!("{e}\nlt:\n{}", lt.transcript()));
    assert!(leech.wait_exit(deadline_in(15)).unwrap().success());
    payload.verify_download(&next).unwrap();

    lt.signal("TERM").unwrap();
    let status = lt.wait_exit(deadline_in(15)).unwrap();
    assert!(
        status.success(),
        "{}",
        lt.failure(&format!("lt download --seed on SIGTERM: {status}"))
    );
}

/// A magnet link and `--peer`: lt fetches the metadata from libtorrent (ut_metadata), then
/// the data.
#[test]
fn lt_from_libtorrent_magnet() {
    let dir = scratch();
    let (_, payload) = setup(dir.path(), Via::Direct, SIZE);
    let (_seed, seed_addr) = start_libtorrent(
        "seed",
        &payload.torrent,
        &payload.data_dir,
        &LibtorrentOptions::default(),
    );
    let magnet = payload.info.magnet_link().to_uri();
    let out = dir.path().join("lt");
    let (mut lt, _) = start_lt(
        "lt download (magnet)",
        [
            "download".to_owned(),
            magnet,
            "-o".to_owned(),
            path_arg(&out),
            "--json".to_owned(),
            "--peer".to_owned(),
            seed_addr.to_string(),
        ],
    );
    finish_lt_download(&mut lt, &payload);
    payload.verify_download(&out).unwrap();
}
