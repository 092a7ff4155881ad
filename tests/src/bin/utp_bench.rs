//! uTP transfers with libtorrent on loopback, for issue #11's figures:
//! `cargo run --release -p lt-tests --bin utp_bench -- [MIB] [RUNS]` (default 1024 MiB, 3).
//!
//! Seeds a MIB-mebibyte file from /dev/shm with libtorrent (`tests/python/lt_peer.py`, uTP
//! only, plaintext, seed mode) and, per run:
//! - libtorrent -> lt: downloads it over a `lt_utp::tokio::UtpStream` with lt-wire's codecs,
//!   SHA-1-checking every piece as it completes (nothing kept in memory past a piece);
//! - libtorrent -> libtorrent: a second `lt_peer.py` downloads it over uTP.
//!
//! Prints each run and the median: MB/s and the downloader's CPU seconds. Needs
//! `python3-libtorrent`; everything it starts is stopped and its files removed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss,
    reason = "a benchmark program: a failure aborts it"
)]

use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use lt_core::{Bitfield, PeerId, PieceIndex};
use lt_metainfo::{CreateTorrent, TorrentInfo};
use lt_tests::ChildGuard;
use lt_tests::swarm::spawn_lt_peer;
use lt_utp::tokio::UtpSocket;
use lt_wire::{BlockRequest, PeerConfig, PeerConnection, PeerEvent, PieceLayout, TorrentParams};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PIECE: u32 = 1 << 20;
const BLOCK: u32 = 16 * 1024;

fn main() {
    let mut args = std::env::args().skip(1);
    let mib: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1024);
    let runs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(3);
    let dir = PathBuf::from(format!("/dev/shm/lt-utp-bench-{}", std::process::id()));
    let _cleanup = Cleanup(dir.clone());
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("payload.bin");
    write_payload(&file, mib << 20);
    let torrent_bytes = CreateTorrent::new(&file)
        .piece_size(PIECE)
        .generate()
        .unwrap();
    let torrent = dir.join("t.torrent");
    std::fs::write(&torrent, &torrent_bytes).unwrap();
    let ti = TorrentInfo::from_bytes(&torrent_bytes).unwrap();

    let (seeder, port) = lt_peer(&[
        "seed",
        "--torrent",
        torrent.to_str().unwrap(),
        "--save",
        dir.to_str().unwrap(),
        "--transport",
        "utp",
        "--encryption",
        "disabled",
        "--seed-mode",
        "--max-time",
        "3600",
    ]);
    let seed_addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    let mut lt_results = Vec::new();
    for run in 1..=runs {
        let cpu0 = cpu_seconds("self");
        let start = Instant::now();
        rt.block_on(leech(seed_addr, &ti, run));
        let secs = start.elapsed().as_secs_f64();
        let cpu = cpu_seconds("self") - cpu0;
        let mbps = (mib << 20) as f64 / 1e6 / secs;
        println!("libtorrent -> lt (uTP) run {run}: {secs:.2} s = {mbps:.1} MB/s, {cpu:.2} CPU s");
        lt_results.push((mbps, cpu));
    }
    let mut lt_lt = Vec::new();
    for run in 1..=runs {
        let save = dir.join(format!("dl{run}"));
        std::fs::create_dir_all(&save).unwrap();
        let peer = seed_addr.to_string();
        let (mut child, rx) = spawn_lt_peer(
            &[
                "download",
                "--torrent",
                torrent.to_str().unwrap(),
                "--save",
                save.to_str().unwrap(),
                "--transport",
                "utp",
                "--encryption",
                "disabled",
                "--peer",
                &peer,
                "--keep-seeding",
                "--max-time",
                "3600",
            ],
            Stdio::null(),
        );
        let line = wait_event(&rx, "finished", Duration::from_secs(3600));
        let cpu = cpu_seconds(&child.id().to_string());
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let secs = v["seconds"].as_f64().unwrap_or(f64::NAN);
        let mbps = (mib << 20) as f64 / 1e6 / secs;
        println!(
            "libtorrent -> libtorrent (uTP) run {run}: {secs:.2} s = {mbps:.1} MB/s, {cpu:.2} CPU s \
             (whole downloader process, start-up included)"
        );
        lt_lt.push((mbps, cpu));
        let _ = child.kill();
        drop(child);
        let _ = std::fs::remove_dir_all(&save);
    }
    drop(seeder);
    for (name, mut r) in [
        ("libtorrent -> lt (uTP)", lt_results),
        ("libtorrent -> libtorrent (uTP)", lt_lt),
    ] {
        r.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (mbps, cpu) = r[r.len() / 2];
        println!("{name}, {mib} MiB, median of {runs}: {mbps:.1} MB/s, {cpu:.2} CPU s");
    }
}

struct Cleanup(PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn write_payload(path: &Path, len: u64) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    let mut chunk = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        for w in chunk.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            w.copy_from_slice(&x.to_le_bytes()[..w.len()]);
        }
        let n = left.min(chunk.len() as u64) as usize;
        f.write_all(&chunk[..n]).unwrap();
        left -= n as u64;
    }
    f.flush().unwrap();
}

fn lt_peer(args: &[&str]) -> (ChildGuard, u16) {
    let (child, rx) = spawn_lt_peer(args, Stdio::null());
    let line = wait_event(&rx, "listening", Duration::from_secs(60));
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    let port = u16::try_from(v["port"].as_u64().unwrap()).unwrap();
    wait_event(&rx, "ready", Duration::from_secs(600));
    std::thread::spawn(move || while rx.recv().is_ok() {});
    (child, port)
}

fn wait_event(rx: &std::sync::mpsc::Receiver<String>, event: &str, timeout: Duration) -> String {
    let needle = format!("\"event\":\"{event}\"");
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(&needle) => return line,
            Ok(line) if line.contains("\"event\":\"error\"") => panic!("lt_peer.py: {line}"),
            Ok(_) => {}
            Err(e) => panic!("no {event} from lt_peer.py: {e}"),
        }
    }
}

/// Downloads every piece from `to`, checking each SHA-1 as it completes.
async fn leech(to: SocketAddr, ti: &TorrentInfo, run: usize) {
    let sock = UtpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let mut stream = sock.connect(to).await.expect("connect to libtorrent");
    let layout = PieceLayout {
        num_pieces: ti.num_pieces(),
        piece_length: ti.piece_length(),
        total_length: ti.total_size(),
    };
    let params = TorrentParams {
        info_hash: ti.info_hash(),
        layout: Some(layout),
        metadata_size: None,
    };
    // A new peer id per run: libtorrent drops a second connection from a known id.
    let mut id = *b"-LR0100-utpbench0000";
    id[19] = b'0' + (run % 10) as u8;
    let config = PeerConfig::new(PeerId::new(id));
    let mut conn =
        PeerConnection::outgoing(config, Instant::now(), params, None, bytes::BytesMut::new())
            .unwrap();
    let mut queue: VecDeque<BlockRequest> = VecDeque::new();
    for p in 0..layout.num_pieces {
        let size = layout.piece_size(PieceIndex(p)).unwrap();
        for begin in (0..size).step_by(BLOCK as usize) {
            queue.push_back(BlockRequest::new(
                PieceIndex(p),
                begin,
                (size - begin).min(BLOCK),
            ));
        }
    }
    // Piece -> (hasher state as blocks arrive in order, bytes so far, out-of-order blocks).
    let mut partial: BTreeMap<u32, (lt_core::Sha1Hasher, u32, BTreeMap<u32, bytes::Bytes>)> =
        BTreeMap::new();
    let mut done = 0u32;
    let mut unchoked = false;
    let mut buf = vec![0u8; 1 << 18];
    let mut last_stats = None;
    loop {
        let now = Instant::now();
        if let Some(s) = stream.stats() {
            last_stats = Some(s);
        }
        while let Some(event) = conn.poll_event() {
            match event {
                PeerEvent::Connected { .. } => {
                    conn.send_bitfield(now, &Bitfield::new(layout.num_pieces as usize));
                    conn.set_interested(now, true);
                }
                PeerEvent::Unchoked => unchoked = true,
                PeerEvent::Choked => unchoked = false,
                PeerEvent::Block { request, data } => {
                    let p = request.piece.get();
                    let entry = partial
                        .entry(p)
                        .or_insert_with(|| (lt_core::Sha1Hasher::new(), 0, BTreeMap::new()));
                    entry.2.insert(request.begin, data);
                    while let Some(b) = entry.2.remove(&entry.1) {
                        entry.0.update(&b);
                        entry.1 += b.len() as u32;
                    }
                    if entry.1 == layout.piece_size(request.piece).unwrap() {
                        let (h, _, _) = partial.remove(&p).unwrap();
                        assert_eq!(
                            Some(h.finalize()),
                            ti.piece_hash(request.piece),
                            "piece {p}"
                        );
                        done += 1;
                    }
                }
                PeerEvent::Rejected(r) | PeerEvent::RequestTimedOut(r) => queue.push_back(r),
                _ => {}
            }
        }
        while unchoked && conn.request_capacity() > 0 {
            let Some(r) = queue.pop_front() else { break };
            conn.request(now, r).unwrap();
        }
        while let Some(out) = conn.poll_transmit() {
            stream.write_all(&out).await.unwrap();
        }
        if done == layout.num_pieces {
            println!("  uTP stream at the end: {last_stats:?}");
            return;
        }
        let deadline = conn.poll_timeout().unwrap_or(now + Duration::from_secs(1));
        let wait = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(wait, stream.read(&mut buf)).await {
            Ok(Ok(0)) => panic!("libtorrent closed the uTP stream"),
            Ok(Ok(n)) => conn.handle_bytes(Instant::now(), &buf[..n]).unwrap(),
            Ok(Err(e)) => panic!(
                "uTP read after {done} of {} pieces: {e}; last stats {last_stats:?}",
                layout.num_pieces
            ),
            Err(_) => conn.handle_timeout(Instant::now()).unwrap(),
        }
    }
}

/// User plus system CPU seconds of process `pid` (`self` for this one).
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    (f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0)) as f64 / 100.0
}
