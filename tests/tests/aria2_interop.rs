//! lt against aria2 1.36 (Debian package `aria2`, binary `aria2c`) over TCP on loopback, every
//! byte checked against the source:
//!
//! - an aria2c leecher gets everything from `lt seed`, with encryption forced on both sides
//!   and with both clients' defaults (encryption enabled). aria2c takes no peer list, so the
//!   seeder dials it (`--peer`);
//! - `lt download` gets everything from an aria2c seeder (`--check-integrity` on a complete
//!   copy of the data), with both defaults and with encryption forced on both sides.
//!
//! aria2 sends its bitfield twice (HAVE NONE or a BITFIELD, then a BITFIELD); lt used to drop
//! it for that and re-dial every 2 s, so an 8 MiB transfer to aria2c crawled at about
//! 30 KiB/s (over four minutes). Now the transfer itself takes about 0.1 s; from lt's start
//! to aria2c's exit takes about 3 s (mostly aria2c's own shutdown), and an lt download from
//! aria2c about 1 s (aria2c unchokes at its first choke round). Each transfer here must
//! finish within [`TRANSFER_SECS`].
//!
//! Payloads are 8 MiB of random bytes in 256 KiB pieces on /dev/shm; every wait has a
//! deadline and every child (aria2c, lt) is killed when its guard drops. aria2c is also told
//! to exit with the test process (`--stop-with-process`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers outside #[test] fns; a panic is a test failure"
)]

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use lt_tests::require_program;
use lt_tests::swarm::{
    Encryption, Payload, Peer, Stream, deadline_in, free_port, lt_binary, start_lt, start_lt_seed,
    wait_summary,
};

/// Payload size: 32 pieces of [`PIECE`].
const SIZE: u64 = 8 * 1024 * 1024;
/// Piece size of the test torrents.
const PIECE: u32 = 256 * 1024;
/// How long a whole transfer may take, from the start of the lt process to the end of the
/// transfer. A few seconds are normal; the old bitfield bug took minutes.
const TRANSFER_SECS: u64 = 30;
/// How long aria2c may take to check its data and listen.
const ARIA2_READY_SECS: u64 = 30;

/// The aria2c executable; panics naming the package when it is missing.
fn aria2c() -> PathBuf {
    require_program("aria2c", "aria2")
}

/// A scratch directory on /dev/shm when it exists (payloads stay off the disk). Also makes
/// sure aria2c is there and `lt` is built before anything with a deadline starts.
fn scratch() -> tempfile::TempDir {
    aria2c();
    lt_binary();
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        tempfile::Builder::new()
            .prefix("lt-aria2-interop-")
            .tempdir_in(shm)
            .unwrap()
    } else {
        tempfile::tempdir().unwrap()
    }
}

fn path_arg(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// Starts aria2c on `torrent`, saving into (or seeding from) `dir`, listening on
/// 127.0.0.1:`port`, with `extra` options; waits until it listens (and, with
/// `--check-integrity=true`, until it has verified its data).
///
/// Options common to every run: no configuration file, no DHT, LPD or PEX, IPv4 on loopback
/// only, notice-level console log without colours (the readiness lines are notices), and an
/// exit when the test process goes away.
fn start_aria2(label: &str, torrent: &Path, dir: &Path, port: u16, extra: &[&str]) -> Peer {
    let mut cmd = Command::new(aria2c());
    cmd.args([
        "--no-conf=true",
        "--enable-color=false",
        "--console-log-level=notice",
        "--summary-interval=0",
        "--enable-dht=false",
        "--enable-dht6=false",
        "--bt-enable-lpd=false",
        "--enable-peer-exchange=false",
        "--disable-ipv6=true",
        "--interface=127.0.0.1",
    ])
    .arg(format!("--stop-with-process={}", std::process::id()))
    .arg(format!("--listen-port={port}"))
    .arg(format!("--dir={}", dir.display()))
    .args(extra)
    .arg(torrent);
    let mut peer = Peer::spawn(label, &mut cmd).unwrap_or_else(|e| panic!("start aria2c: {e}"));
    let listening = format!("listening on TCP port {port}");
    let verified = "Verification finished successfully";
    let mut need_verified = extra.contains(&"--check-integrity=true");
    let mut need_listening = true;
    let deadline = deadline_in(ARIA2_READY_SECS);
    while need_verified || need_listening {
        let line = peer
            .wait_line(Stream::Stdout, deadline, |l| {
                l.contains(&listening) || l.contains(verified)
            })
            .unwrap_or_else(|e| panic!("aria2c did not get ready: {e}"));
        if line.contains(&listening) {
            need_listening = false;
        } else {
            need_verified = false;
        }
    }
    peer
}

/// An aria2c leecher started first; `lt seed` (with `enc`) dials it. aria2c must exit 0
/// (`--seed-time=0`: it stops once complete) within [`TRANSFER_SECS`] of lt's start, with
/// every byte right; `lt seed` then exits 0 on SIGTERM and reports the upload.
fn aria2_from_lt(enc: Encryption, aria2_require_crypto: bool) {
    let dir = scratch();
    let payload = Payload::create(dir.path(), "payload.bin", SIZE, PIECE, &[]);
    let out = dir.path().join("aria2");
    std::fs::create_dir_all(&out).unwrap();
    let port = free_port();
    let mut extra = vec!["--seed-time=0"];
    if aria2_require_crypto {
        extra.push("--bt-require-crypto=true");
    }
    let mut leech = start_aria2("aria2c leecher", &payload.torrent, &out, port, &extra);

    let started = Instant::now();
    let deadline = started + Duration::from_secs(TRANSFER_SECS);
    let aria2_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let (mut seed, _) = start_lt_seed(
        &payload.torrent,
        &payload.data_dir,
        &[
            "--json".to_owned(),
            "--no-dht".to_owned(),
            "--encryption".to_owned(),
            enc.arg().to_owned(),
            "--peer".to_owned(),
            aria2_addr.to_string(),
        ],
    );
    let status = leech
        .wait_exit(deadline)
        .unwrap_or_else(|e| panic!("{e}\nlt seed:\n{}", seed.transcript()));
    let elapsed = started.elapsed();
    assert!(
        status.success(),
        "{}\nlt seed:\n{}",
        leech.failure(&format!("exited with {status}")),
        seed.transcript()
    );
    payload.verify_download(&out).unwrap();
    eprintln!(
        "aria2c leecher (--bt-require-crypto={}) <- lt seed --encryption {}: {SIZE} bytes \
         in {:.2} s from lt's start",
        aria2_require_crypto,
        enc.arg(),
        elapsed.as_secs_f64()
    );

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
        uploaded["uploaded"].as_u64().is_some_and(|u| u >= SIZE),
        "{}",
        seed.failure(&format!("uploaded {uploaded}"))
    );
}

/// An aria2c seeder (`--check-integrity=true` on its own copy of the data, so the source
/// stays untouched); `lt download --peer` (with `enc`) must print its summary within
/// [`TRANSFER_SECS`] of its start and exit 0, with every piece verified and every byte right.
fn lt_from_aria2(enc: Encryption, aria2_require_crypto: bool) {
    let dir = scratch();
    let payload = Payload::create(dir.path(), "payload.bin", SIZE, PIECE, &[]);
    let aria2_data = dir.path().join("aria2-seed");
    std::fs::create_dir_all(&aria2_data).unwrap();
    std::fs::copy(&payload.file, aria2_data.join("payload.bin")).unwrap();
    let port = free_port();
    let mut extra = vec![
        "--check-integrity=true",
        "--seed-ratio=0.0",
        // Minutes; the guard ends it long before.
        "--seed-time=60",
    ];
    if aria2_require_crypto {
        extra.push("--bt-require-crypto=true");
    }
    let seed = start_aria2("aria2c seeder", &payload.torrent, &aria2_data, port, &extra);

    let out = dir.path().join("lt");
    let started = Instant::now();
    let (mut lt, _) = start_lt(
        "lt download",
        [
            "download".to_owned(),
            path_arg(&payload.torrent),
            "-o".to_owned(),
            path_arg(&out),
            "--json".to_owned(),
            "--no-dht".to_owned(),
            "--encryption".to_owned(),
            enc.arg().to_owned(),
            "--peer".to_owned(),
            SocketAddr::from((Ipv4Addr::LOCALHOST, port)).to_string(),
        ],
    );
    let summary = wait_summary(&mut lt, started + Duration::from_secs(TRANSFER_SECS))
        .unwrap_or_else(|e| panic!("{e}\naria2c seeder:\n{}", seed.transcript()));
    let elapsed = started.elapsed();
    let status = lt
        .wait_exit(deadline_in(15))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        status.success(),
        "{}",
        lt.failure(&format!("exited with {status} after its summary"))
    );
    let pieces = u64::from(payload.info.num_pieces());
    assert_eq!(summary.total_bytes, SIZE, "{summary:?}");
    assert_eq!(summary.pieces, pieces, "{summary:?}");
    assert_eq!(summary.pieces_verified, pieces, "{summary:?}");
    assert_eq!(summary.resumed_pieces, 0, "{summary:?}");
    assert_eq!(summary.peers_banned, 0, "{summary:?}");
    assert!(summary.payload_downloaded >= SIZE, "{summary:?}");
    assert_eq!(
        summary.json["info_hash"].as_str(),
        Some(payload.info_hash().to_hex().as_str()),
        "{summary:?}"
    );
    payload.verify_download(&out).unwrap();
    eprintln!(
        "lt download --encryption {} <- aria2c seeder (--bt-require-crypto={}): {SIZE} bytes \
         in {:.2} s from lt's start ({:.2} s by lt's summary)",
        enc.arg(),
        aria2_require_crypto,
        elapsed.as_secs_f64(),
        summary.seconds
    );
}

#[test]
fn aria2_from_lt_encryption_forced() {
    aria2_from_lt(Encryption::Forced, true);
}

#[test]
fn aria2_from_lt_encryption_enabled() {
    aria2_from_lt(Encryption::Enabled, false);
}

#[test]
fn lt_from_aria2_encryption_enabled() {
    lt_from_aria2(Encryption::Enabled, false);
}

#[test]
fn lt_from_aria2_encryption_forced() {
    lt_from_aria2(Encryption::Forced, true);
}
