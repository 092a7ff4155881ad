//! lt-utp against libtorrent-rasterbar 2.0's uTP (`python3-libtorrent`, TCP disabled) on
//! loopback, with lt-wire's codecs driven over a [`UtpStream`]:
//!
//! - libtorrent seeds (uTP only) and the test downloads every piece over uTP, checking each
//!   against the torrent's SHA-1 piece hashes and the whole file against the seeded bytes;
//! - the test seeds on a [`UtpSocket`] and a libtorrent leecher (uTP only) downloads the
//!   torrent from it, and its file is compared byte for byte;
//! - the first again through a UDP relay adding 50 ms of delay each way and 1 % loss.
//!
//! libtorrent is run by `tests/python/lt_peer.py`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation,
    reason = "test helpers outside #[test] fns; a panic is a test failure"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use lt_core::{Bitfield, PeerId, PieceIndex};
use lt_metainfo::{CreateTorrent, TorrentInfo};
use lt_tests::ChildGuard;
use lt_tests::swarm::spawn_lt_peer;
use lt_utp::tokio::{UtpSocket, UtpStream};
use lt_wire::{BlockRequest, PeerConfig, PeerConnection, PeerEvent, PieceLayout, TorrentParams};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PIECE: u32 = 64 * 1024;
const BLOCK: u32 = 16 * 1024;
const TEST_TIMEOUT: Duration = Duration::from_secs(40);

/// 2 MiB and a bit: 32 full pieces and a short last one.
fn data() -> Vec<u8> {
    let mut x = 0x9e37_79b9_u32;
    (0..32 * PIECE as usize + 12_345)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x.to_be_bytes()[0]
        })
        .collect()
}

struct Fixture {
    dir: tempfile::TempDir,
    torrent: PathBuf,
    ti: TorrentInfo,
    payload: Vec<u8>,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let payload = data();
    let file = dir.path().join("payload.bin");
    std::fs::write(&file, &payload).unwrap();
    let bytes = CreateTorrent::new(&file)
        .piece_size(PIECE)
        .generate()
        .unwrap();
    let torrent = dir.path().join("t.torrent");
    std::fs::write(&torrent, &bytes).unwrap();
    let ti = TorrentInfo::from_bytes(&bytes).unwrap();
    Fixture {
        dir,
        torrent,
        ti,
        payload,
    }
}

fn layout(ti: &TorrentInfo) -> PieceLayout {
    PieceLayout {
        num_pieces: ti.num_pieces(),
        piece_length: ti.piece_length(),
        total_length: ti.total_size(),
    }
}

fn params(ti: &TorrentInfo) -> TorrentParams {
    TorrentParams {
        info_hash: ti.info_hash(),
        layout: Some(layout(ti)),
        metadata_size: None,
    }
}

/// Starts `lt_peer.py` with `args`; returns the guard and a channel of its stdout lines
/// (read on a thread, so the pipe never fills).
fn lt_peer(args: &[&str]) -> (ChildGuard, std::sync::mpsc::Receiver<String>) {
    spawn_lt_peer(args, Stdio::inherit())
}

/// Waits for an `lt_peer.py` line with `"event":"<event>"`.
fn wait_event(rx: &std::sync::mpsc::Receiver<String>, event: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    let needle = format!("\"event\":\"{event}\"");
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(&needle) => return line,
            Ok(line) if line.contains("\"event\":\"error\"") => panic!("lt_peer.py: {line}"),
            Ok(_) => {}
            Err(e) => panic!("no {event} event from lt_peer.py: {e}"),
        }
    }
}

fn json_u64(line: &str, key: &str) -> u64 {
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    v[key].as_u64().unwrap_or_else(|| panic!("{key} in {line}"))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Connects, retrying while libtorrent's uTP socket comes up.
async fn connect(sock: &UtpSocket, to: SocketAddr) -> UtpStream {
    let mut last = None;
    for _ in 0..20 {
        match tokio::time::timeout(Duration::from_secs(3), sock.connect(to)).await {
            Ok(Ok(s)) => return s,
            Ok(Err(e)) => last = Some(e.to_string()),
            Err(_) => last = Some("timed out".into()),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("cannot connect to libtorrent over uTP at {to}: {last:?}");
}

/// Downloads the whole torrent from the peer behind `stream`, checking every piece hash;
/// returns the file's bytes and the peer's client name.
async fn leech(mut stream: UtpStream, ti: &TorrentInfo) -> (Vec<u8>, String) {
    let layout = layout(ti);
    let mut config = PeerConfig::new(PeerId::new(*b"-LR0100-utpinterop01"));
    config.ext_handshake.v = Some("lt-utp interop".into());
    let mut conn = PeerConnection::outgoing(
        config,
        Instant::now(),
        params(ti),
        None,
        bytes::BytesMut::new(),
    )
    .unwrap();
    let mut queue: Vec<BlockRequest> = Vec::new();
    for p in (0..layout.num_pieces).rev() {
        let size = layout.piece_size(PieceIndex(p)).unwrap();
        for begin in (0..size).step_by(BLOCK as usize).rev() {
            queue.push(BlockRequest::new(
                PieceIndex(p),
                begin,
                (size - begin).min(BLOCK),
            ));
        }
    }
    let mut blocks: BTreeMap<u32, BTreeMap<u32, Bytes>> = BTreeMap::new();
    let mut verified = BTreeSet::new();
    let mut client = String::new();
    let mut unchoked = false;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let now = Instant::now();
        while let Some(event) = conn.poll_event() {
            match event {
                PeerEvent::Connected { .. } => {
                    conn.send_bitfield(now, &Bitfield::new(layout.num_pieces as usize));
                    conn.set_interested(now, true);
                }
                PeerEvent::ExtendedHandshake(hs) => client = hs.v.clone().unwrap_or_default(),
                PeerEvent::Bitfield(bf) => assert!(bf.all(), "a seed has every piece"),
                PeerEvent::Unchoked => unchoked = true,
                PeerEvent::Choked => unchoked = false,
                PeerEvent::Block { request, data } => {
                    let piece = request.piece.get();
                    let entry = blocks.entry(piece).or_default();
                    entry.insert(request.begin, data);
                    let have: usize = entry.values().map(Bytes::len).sum();
                    if have == layout.piece_size(request.piece).unwrap() as usize {
                        let mut h = lt_core::Sha1Hasher::new();
                        for b in entry.values() {
                            h.update(b);
                        }
                        assert_eq!(
                            Some(h.finalize()),
                            ti.piece_hash(request.piece),
                            "piece {piece} hash"
                        );
                        verified.insert(piece);
                    }
                }
                PeerEvent::Rejected(r) | PeerEvent::RequestTimedOut(r) => queue.push(r),
                _ => {}
            }
        }
        while unchoked && conn.request_capacity() > 0 {
            let Some(r) = queue.pop() else { break };
            conn.request(now, r).unwrap();
        }
        while let Some(out) = conn.poll_transmit() {
            stream.write_all(&out).await.unwrap();
        }
        if verified.len() == layout.num_pieces as usize {
            let file: Vec<u8> = blocks
                .into_values()
                .flat_map(BTreeMap::into_values)
                .flat_map(|b| b.to_vec())
                .collect();
            return (file, client);
        }
        let deadline = conn.poll_timeout().unwrap_or(now + Duration::from_secs(1));
        let wait = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(wait, stream.read(&mut buf)).await {
            Ok(Ok(0)) => panic!("libtorrent closed the uTP stream"),
            Ok(Ok(n)) => conn.handle_bytes(Instant::now(), &buf[..n]).unwrap(),
            Ok(Err(e)) => panic!("uTP read: {e}"),
            Err(_) => conn.handle_timeout(Instant::now()).unwrap(),
        }
    }
}

/// Serves the torrent (`payload`) to the peer behind `stream` until it closes.
async fn seed(mut stream: UtpStream, ti: Arc<TorrentInfo>, payload: Arc<Vec<u8>>) {
    let layout = layout(&ti);
    let mut config = PeerConfig::new(PeerId::new(*b"-LR0100-utpinterop02"));
    config.ext_handshake.v = Some("lt-utp interop seed".into());
    let mut conn =
        PeerConnection::incoming(config, Instant::now(), None, bytes::BytesMut::new()).unwrap();
    let payload = Bytes::from(payload.to_vec());
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let now = Instant::now();
        while let Some(event) = conn.poll_event() {
            match event {
                PeerEvent::IncomingHandshake { .. } => conn.accept(now, params(&ti)).unwrap(),
                PeerEvent::Connected { .. } => {
                    conn.send_bitfield(now, &Bitfield::full(layout.num_pieces as usize));
                }
                PeerEvent::Interested => conn.unchoke(now),
                PeerEvent::Request(r) => {
                    let start = u64::from(r.piece.get()) * u64::from(layout.piece_length)
                        + u64::from(r.begin);
                    let start = start as usize;
                    let block = payload.slice(start..start + r.len as usize);
                    conn.send_block(now, r.piece, r.begin, block);
                }
                _ => {}
            }
        }
        while let Some(out) = conn.poll_transmit() {
            if stream.write_all(&out).await.is_err() {
                return;
            }
        }
        let deadline = conn.poll_timeout().unwrap_or(now + Duration::from_secs(1));
        let wait = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(wait, stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return,
            Ok(Ok(n)) => {
                if conn.handle_bytes(Instant::now(), &buf[..n]).is_err() {
                    return;
                }
            }
            Err(_) => {
                if conn.handle_timeout(Instant::now()).is_err() {
                    return;
                }
            }
        }
    }
}

/// Starts a libtorrent seeder (uTP only) of the fixture; returns it and its port.
fn libtorrent_seeder(f: &Fixture) -> (ChildGuard, u16) {
    let save = f.dir.path().to_str().unwrap();
    let torrent = f.torrent.to_str().unwrap();
    let (child, rx) = lt_peer(&[
        "seed",
        "--torrent",
        torrent,
        "--save",
        save,
        "--transport",
        "utp",
        "--encryption",
        "disabled",
        "--seed-mode",
        "--max-time",
        "120",
    ]);
    let port = json_u64(&wait_event(&rx, "listening", TEST_TIMEOUT), "port");
    wait_event(&rx, "ready", TEST_TIMEOUT);
    // Keep draining its output.
    std::thread::spawn(move || while rx.recv().is_ok() {});
    (child, u16::try_from(port).unwrap())
}

fn download_from_libtorrent(via_relay: bool) {
    let f = fixture();
    let (child, port) = libtorrent_seeder(&f);
    let seeder: SocketAddr = ([127, 0, 0, 1], port).into();
    let relay = via_relay.then(|| relay(seeder, 50, 10));
    let relay_addr = relay.as_ref().map(|r| r.1);
    let rt = runtime();
    let start = Instant::now();
    let (file, client) = rt.block_on(async {
        let sock = UtpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let to = relay_addr.unwrap_or(seeder);
        let limit = if via_relay {
            3 * TEST_TIMEOUT
        } else {
            TEST_TIMEOUT
        };
        tokio::time::timeout(limit, async {
            let stream = connect(&sock, to).await;
            leech(stream, &f.ti).await
        })
        .await
        .expect("download from libtorrent in time")
    });
    let secs = start.elapsed().as_secs_f64();
    drop(child);
    println!(
        "lt <- libtorrent over uTP{}: {} bytes in {secs:.2} s ({:.2} MB/s), client {client:?}",
        if via_relay {
            " via a 50 ms / 1% loss relay"
        } else {
            ""
        },
        file.len(),
        file.len() as f64 / 1e6 / secs
    );
    assert!(client.contains("libtorrent"), "{client}");
    assert!(file == f.payload, "downloaded bytes differ");
}

#[test]
fn lt_downloads_from_libtorrent_over_utp() {
    download_from_libtorrent(false);
}

#[test]
fn lt_downloads_from_libtorrent_over_a_lossy_utp_link() {
    download_from_libtorrent(true);
}

#[test]
fn libtorrent_downloads_from_lt_over_utp() {
    let f = fixture();
    let rt = runtime();
    let sock = rt.block_on(async { UtpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap() });
    let ti = Arc::new(f.ti.clone());
    let payload = Arc::new(f.payload.clone());
    rt.spawn({
        let sock = sock.clone();
        async move {
            while let Ok((stream, _)) = sock.accept().await {
                tokio::spawn(seed(stream, Arc::clone(&ti), Arc::clone(&payload)));
            }
        }
    });
    let save = tempfile::tempdir().unwrap();
    let peer = sock.local_addr().to_string();
    let start = Instant::now();
    let (child, rx) = lt_peer(&[
        "download",
        "--torrent",
        f.torrent.to_str().unwrap(),
        "--save",
        save.path().to_str().unwrap(),
        "--transport",
        "utp",
        "--encryption",
        "disabled",
        "--peer",
        &peer,
        "--max-time",
        "60",
    ]);
    let finished = wait_event(&rx, "finished", TEST_TIMEOUT);
    let secs = start.elapsed().as_secs_f64();
    drop(child);
    println!("libtorrent <- lt over uTP: {finished} ({secs:.2} s with start-up)");
    assert_eq!(json_u64(&finished, "total_bytes"), f.payload.len() as u64);
    let got = std::fs::read(save.path().join(f.ti.name())).unwrap();
    assert!(got == f.payload, "libtorrent's file differs");
    drop(rt);
}

/// Starts `lt-udp-relay` (this package's binary) between one client and `server`: every
/// datagram is delayed by `delay_ms` and dropped with probability `loss_permille`/1000
/// (seeded, so runs repeat). Returns the guard and the relay's address.
fn relay(server: SocketAddr, delay_ms: u64, loss_permille: u64) -> (ChildGuard, SocketAddr) {
    let mut child = ChildGuard::spawn(
        std::process::Command::new(env!("CARGO_BIN_EXE_lt-udp-relay"))
            .args([
                server.to_string(),
                delay_ms.to_string(),
                loss_permille.to_string(),
            ])
            .stdout(Stdio::piped()),
    )
    .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let v: serde_json::Value = serde_json::from_str(&first).unwrap();
    let port = u16::try_from(v["port"].as_u64().unwrap()).unwrap();
    // Keep draining its statistics.
    std::thread::spawn(move || lines.map_while(Result::ok).for_each(drop));
    (child, ([127, 0, 0, 1], port).into())
}
