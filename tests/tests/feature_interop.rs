//! lt's session features against libtorrent 2.0 (`tests/python/lt_node.py`): uTP only in
//! both directions, magnet links both ways (one seeder and three), a magnet found through a
//! DHT of libtorrent nodes on loopback, both ways, PEX, a download limit, and super seeding
//! (BEP 16) both ways. Every byte is checked.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers outside #[test] fns; a panic is a test failure"
)]

use std::net::SocketAddr;
use std::path::Path;

use lt_tests::swarm::{
    Payload, Peer, Stream, deadline_in, free_port, lt_binary, start_libtorrent_node, start_lt,
    start_lt_seed, wait_summary,
};

fn s(x: impl AsRef<std::ffi::OsStr>) -> String {
    x.as_ref().to_string_lossy().into_owned()
}

fn magnet(payload: &Payload) -> String {
    let mut link = payload.info.magnet_link();
    link.trackers.clear();
    link.to_uri()
}

/// `lt download` of `source` with `extra` arguments; checks the summary and every byte.
fn lt_download(payload: &Payload, source: &str, out: &Path, extra: &[String]) {
    let mut args = vec![
        "download".to_owned(),
        source.to_owned(),
        "-o".to_owned(),
        s(out),
        "--json".to_owned(),
    ];
    args.extend(extra.iter().cloned());
    let (mut leech, _) = start_lt("lt download", &args);
    let summary = wait_summary(&mut leech, deadline_in(90)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(summary.pieces_verified, summary.pieces);
    payload
        .verify_download(out)
        .unwrap_or_else(|e| panic!("{e}"));
    let status = leech.wait_exit(deadline_in(30)).unwrap();
    assert!(status.success(), "{}", leech.failure("exit status"));
}

/// A libtorrent download; checks every byte.
fn libtorrent_download(payload: &Payload, args: &[String], out: &Path) {
    let (mut leech, _) = start_libtorrent_node("libtorrent download", args);
    leech
        .wait_event("finished", deadline_in(90))
        .unwrap_or_else(|e| panic!("{e}"));
    payload
        .verify_download(out)
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn utp_only_both_ways() {
    lt_binary();
    let dir = tempfile::tempdir().unwrap();
    let payload = Payload::create(dir.path(), "utp.bin", 6 << 20, 64 << 10, &[]);
    // libtorrent -> lt over uTP only.
    let (_seed, port) = start_libtorrent_node(
        "libtorrent seed",
        &[
            "seed".into(),
            "--torrent".into(),
            s(&payload.torrent),
            "--save".into(),
            s(&payload.data_dir),
            "--transport".into(),
            "utp".into(),
        ],
    );
    let out = dir.path().join("lt");
    lt_download(
        &payload,
        &s(&payload.torrent),
        &out,
        &[
            "--peer".into(),
            format!("127.0.0.1:{port}"),
            "--utp-only".into(),
        ],
    );
    // lt -> libtorrent over uTP only.
    let (_lt_seed, addr) =
        start_lt_seed(&payload.torrent, &payload.data_dir, &["--utp-only".into()]);
    let out = dir.path().join("libtorrent");
    libtorrent_download(
        &payload,
        &[
            "download".into(),
            "--torrent".into(),
            s(&payload.torrent),
            "--save".into(),
            s(&out),
            "--transport".into(),
            "utp".into(),
            "--peer".into(),
            format!("127.0.0.1:{}", addr.port()),
        ],
        &out,
    );
}

#[test]
fn magnets_both_ways() {
    lt_binary();
    let dir = tempfile::tempdir().unwrap();
    // 1,280 pieces: the info dictionary (25 KiB) spans two metadata pieces.
    let payload = Payload::create(dir.path(), "magnet.bin", 20 << 20, 16 << 10, &[]);
    let uri = magnet(&payload);
    let seed_args = |i: usize| -> Vec<String> {
        vec![
            "seed".into(),
            "--torrent".into(),
            s(&payload.torrent),
            "--save".into(),
            s(&payload.data_dir),
            "--listen".into(),
            format!("127.0.0.{}:0", 31 + i),
        ]
    };
    // lt fetches a magnet from one libtorrent seeder, then from three.
    let (_one, p1) = start_libtorrent_node("libtorrent seed 1", &seed_args(0));
    lt_download(
        &payload,
        &uri,
        &dir.path().join("one"),
        &["--peer".into(), format!("127.0.0.31:{p1}")],
    );
    // lt kept the metadata as a .torrent beside its resume data.
    let hex = payload.info_hash().to_hex();
    let saved = std::fs::read(dir.path().join(format!("one/.lt/{hex}.torrent"))).unwrap();
    let saved = lt_metainfo::TorrentInfo::from_bytes(&saved).unwrap();
    assert_eq!(saved.info_hash(), payload.info.info_hash());
    let (_two, p2) = start_libtorrent_node("libtorrent seed 2", &seed_args(1));
    let (_three, p3) = start_libtorrent_node("libtorrent seed 3", &seed_args(2));
    lt_download(
        &payload,
        &uri,
        &dir.path().join("three"),
        &[
            "--peer".into(),
            format!("127.0.0.31:{p1}"),
            "--peer".into(),
            format!("127.0.0.32:{p2}"),
            "--peer".into(),
            format!("127.0.0.33:{p3}"),
        ],
    );
    // libtorrent fetches a magnet from an lt seeder.
    let (_lt_seed, addr) = start_lt_seed(&payload.torrent, &payload.data_dir, &[]);
    let out = dir.path().join("libtorrent");
    libtorrent_download(
        &payload,
        &[
            "download".into(),
            "--magnet".into(),
            uri,
            "--save".into(),
            s(&out),
            "--peer".into(),
            format!("127.0.0.1:{}", addr.port()),
        ],
        &out,
    );
}

#[test]
fn magnet_through_a_dht_of_libtorrent_nodes() {
    lt_binary();
    let dir = tempfile::tempdir().unwrap();
    let payload = Payload::create(dir.path(), "dht.bin", 4 << 20, 32 << 10, &[]);
    let uri = magnet(&payload);
    // Three libtorrent seeders, each with a DHT node, that know each other.
    let mut nodes: Vec<(Peer, SocketAddr)> = Vec::new();
    for i in 0..3u8 {
        let mut args = vec![
            "seed".into(),
            "--torrent".into(),
            s(&payload.torrent),
            "--save".into(),
            s(&payload.data_dir),
            "--listen".into(),
            format!("127.0.0.{}:0", 21 + i),
            "--dht".into(),
        ];
        for (_, a) in &nodes {
            args.push("--dht-node".into());
            args.push(a.to_string());
        }
        let (peer, port) = start_libtorrent_node(&format!("libtorrent dht seed {i}"), &args);
        nodes.push((peer, SocketAddr::from(([127, 0, 0, 21 + i], port))));
    }
    // lt finds them from the magnet alone, with one DHT node to start from.
    lt_download(
        &payload,
        &uri,
        &dir.path().join("lt"),
        &["--dht-bootstrap".into(), nodes[0].1.to_string()],
    );
    // The reverse: the libtorrent seeders stop, an lt seeder announces through a libtorrent
    // DHT node that has no part in the torrent, and a libtorrent magnet download that knows
    // only that node finds the lt seeder.
    drop(nodes);
    let other = format!("magnet:?xt=urn:btih:{}", "ab".repeat(20));
    let (_node, node_port) = start_libtorrent_node(
        "libtorrent dht node",
        &[
            "download".into(),
            "--magnet".into(),
            other,
            "--save".into(),
            s(dir.path().join("node")),
            "--listen".into(),
            "127.0.0.25:0".into(),
            "--dht".into(),
        ],
    );
    let node = SocketAddr::from(([127, 0, 0, 25], node_port));
    let (_lt_seed, _) = start_lt_seed(
        &payload.torrent,
        &payload.data_dir,
        &["--dht-bootstrap".into(), node.to_string()],
    );
    let out = dir.path().join("libtorrent");
    libtorrent_download(
        &payload,
        &[
            "download".into(),
            "--magnet".into(),
            uri,
            "--save".into(),
            s(&out),
            "--listen".into(),
            "127.0.0.24:0".into(),
            "--dht".into(),
            "--dht-node".into(),
            node.to_string(),
        ],
        &out,
    );
}

#[test]
fn pex_spreads_a_seed_that_one_peer_knows() {
    lt_binary();
    let dir = tempfile::tempdir().unwrap();
    let payload = Payload::create(dir.path(), "pex.bin", 4 << 20, 32 << 10, &[]);
    let torrent = s(&payload.torrent);
    let (_seed, seed_port) = start_libtorrent_node(
        "libtorrent seed",
        &[
            "seed".into(),
            "--torrent".into(),
            torrent.clone(),
            "--save".into(),
            s(&payload.data_dir),
            "--listen".into(),
            "127.0.0.41:0".into(),
        ],
    );
    // A knows the seed but downloads at 100 kB/s: it needs 40 s, so whoever finishes well
    // before that got the data from the seed, whose address only A's PEX carried.
    let (mut a, a_addr) = start_lt(
        "lt A",
        [
            "download",
            &torrent,
            "-o",
            &s(dir.path().join("a")),
            "--json",
            "--seed",
            "--peer",
            &format!("127.0.0.41:{seed_port}"),
            "--download-limit",
            "100000",
            "--limit-local",
        ],
    );
    // A's first PEX message to each peer carries the peers A is connected to then, and the
    // next comes a minute later (BEP 11): the others may only meet A once A has the seed.
    a.wait_line(Stream::Stderr, deadline_in(20), |l| {
        l.starts_with("progress") && !l.contains(" 0 peers")
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let a_peer = format!("127.0.0.1:{}", a_addr.port());
    let start = std::time::Instant::now();
    let mut lts = Vec::new();
    for name in ["b", "c"] {
        let (p, _) = start_lt(
            &format!("lt {name}"),
            [
                "download",
                &torrent,
                "-o",
                &s(dir.path().join(name)),
                "--json",
                "--peer",
                &a_peer,
            ],
        );
        lts.push(p);
    }
    let out = dir.path().join("d");
    let (mut d, _) = start_libtorrent_node(
        "libtorrent D",
        &[
            "download".into(),
            "--torrent".into(),
            torrent,
            "--save".into(),
            s(&out),
            "--listen".into(),
            "127.0.0.42:0".into(),
            "--peer".into(),
            a_peer,
        ],
    );
    for (p, name) in lts.iter_mut().zip(["b", "c"]) {
        wait_summary(p, deadline_in(30)).unwrap_or_else(|e| panic!("{e}"));
        payload.verify_download(&dir.path().join(name)).unwrap();
    }
    d.wait_event("finished", deadline_in(30))
        .unwrap_or_else(|e| panic!("{e}"));
    payload.verify_download(&out).unwrap();
    let took = start.elapsed();
    assert!(
        !a.transcript().contains("\"complete\":true"),
        "A finished first ({took:?}): the others may have downloaded from it alone"
    );
    a.signal("INT").unwrap();
}

/// lt downloads 64 MiB from libtorrent at a 4 MiB/s download limit over `transport`
/// (`--tcp-only` or `--utp-only`); returns the seconds it took and the ideal.
fn limited_download(transport: &str) -> (f64, f64) {
    lt_binary();
    let dir = tempfile::tempdir().unwrap();
    let payload = Payload::create(dir.path(), "limited.bin", 64 << 20, 256 << 10, &[]);
    let (_seed, port) = start_libtorrent_node(
        "libtorrent seed",
        &[
            "seed".into(),
            "--torrent".into(),
            s(&payload.torrent),
            "--save".into(),
            s(&payload.data_dir),
            "--transport".into(),
            "both".into(),
        ],
    );
    let limit: u64 = 4 << 20;
    let out = dir.path().join("lt");
    let (mut leech, _) = start_lt(
        "lt download",
        [
            "download",
            &s(&payload.torrent),
            "-o",
            &s(&out),
            "--json",
            "--peer",
            &format!("127.0.0.1:{port}"),
            "--download-limit",
            &limit.to_string(),
            "--limit-local",
            transport,
        ],
    );
    let summary = wait_summary(&mut leech, deadline_in(60)).unwrap_or_else(|e| panic!("{e}"));
    payload.verify_download(&out).unwrap();
    #[allow(clippy::cast_precision_loss)]
    let ideal = (64u64 << 20) as f64 / limit as f64;
    eprintln!(
        "64 MiB at a 4 MiB/s limit ({transport}): {:.2} s (ideal {ideal:.1} s), {:.2} MB/s",
        summary.seconds, summary.mb_per_s
    );
    (summary.seconds, ideal)
}

/// Over TCP the limit holds within 10 %: never faster, and not much slower.
#[test]
fn download_limit_holds_over_a_transfer() {
    let (took, ideal) = limited_download("--tcp-only");
    assert!(
        (ideal * 0.9..ideal * 1.1).contains(&took),
        "took {took:.2} s, the limit allows {ideal:.1} s"
    );
}

/// Over uTP the limit holds as tightly: lt asks for half a second of the limit at a time.
/// Under CPU load this stalled for good once in a few runs: a window floored at one packet
/// before an MTU probe made packets larger held lt's requests back (`send_window` in
/// lt-utp).
#[test]
fn download_limit_holds_over_utp() {
    let (took, ideal) = limited_download("--utp-only");
    assert!(
        (ideal * 0.9..ideal * 1.1).contains(&took),
        "took {took:.2} s, the limit allows {ideal:.1} s"
    );
}

/// Bytes an lt seed with a 4 MB/s upload limit uploads while three libtorrent leechers
/// that know each other get `payload` from it. The leechers start first, so all three
/// meet the seed within half a second of each other.
fn lt_seed_to_three(payload: &Payload, dir: &Path, super_seed: bool) -> u64 {
    let port = free_port();
    let mut leechers = Vec::new();
    let mut peers = vec![format!("127.0.0.1:{port}")];
    for i in 0..3 {
        let out = dir.join(format!("libtorrent{i}"));
        let mut args = vec![
            "download".into(),
            "--torrent".into(),
            s(&payload.torrent),
            "--save".into(),
            s(&out),
            "--listen".into(),
            format!("127.0.0.{}:0", 61 + i),
        ];
        for p in &peers {
            args.extend(["--peer".into(), p.clone()]);
        }
        let (leech, port) = start_libtorrent_node("libtorrent download", &args);
        peers.push(format!("127.0.0.{}:{port}", 61 + i));
        leechers.push((leech, out));
    }
    let mut extra: Vec<String> = ["--json", "--listen", &port.to_string()]
        .into_iter()
        .chain(["--upload-limit", "4000000", "--limit-local"])
        .map(Into::into)
        .collect();
    if super_seed {
        extra.push("--super-seed".into());
    }
    let (mut seed, _) = start_lt_seed(&payload.torrent, &payload.data_dir, &extra);
    for (leech, out) in &mut leechers {
        leech
            .wait_event("finished", deadline_in(90))
            .unwrap_or_else(|e| panic!("{e}"));
        payload.verify_download(out).unwrap();
    }
    seed.signal("INT").unwrap();
    let summary = seed
        .wait_json(deadline_in(30), |v| v.get("uploaded").is_some())
        .unwrap();
    summary["uploaded"].as_u64().unwrap()
}

#[test]
fn super_seeding_both_ways() {
    lt_binary();
    let dir = tempfile::tempdir().unwrap();
    let size: u64 = 8 << 20;
    let payload = Payload::create(dir.path(), "super.bin", size, 64 << 10, &[]);
    let normal = lt_seed_to_three(&payload, &dir.path().join("normal"), false);
    let superseed = lt_seed_to_three(&payload, &dir.path().join("super"), true);
    #[allow(clippy::cast_precision_loss)]
    let copies = |b: u64| b as f64 / size as f64;
    eprintln!(
        "lt seed to three libtorrent leechers, 8 MiB: uploaded {:.2} copies normally, \
         {:.2} super seeding",
        copies(normal),
        copies(superseed)
    );
    assert!(superseed >= size && copies(superseed) < 1.5, "{superseed}");

    // lt downloads from a libtorrent super seed.
    let (_lt_seed, port) = start_libtorrent_node(
        "libtorrent super seed",
        &[
            "seed".into(),
            "--torrent".into(),
            s(&payload.torrent),
            "--save".into(),
            s(&payload.data_dir),
            "--super-seed".into(),
        ],
    );
    lt_download(
        &payload,
        &s(&payload.torrent),
        &dir.path().join("lt"),
        &["--peer".into(), format!("127.0.0.1:{port}")],
    );
}
