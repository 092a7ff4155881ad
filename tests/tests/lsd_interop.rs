//! Local service discovery (BEP 14) between two lt sessions in separate network namespaces
//! linked by a veth pair: no tracker, no DHT, no peer given; the downloader and the seeder
//! find each other by multicast. Needs root (CI runs as root).
#![allow(clippy::unwrap_used, reason = "a panic is a test failure")]

use lt_tests::netns::NetNs;
use lt_tests::swarm::{Payload, Peer, Stream, deadline_in, lt_binary, wait_summary};

#[test]
fn two_namespaces_find_each_other_by_lsd() {
    let lt = lt_binary();
    let dir = tempfile::tempdir().unwrap();
    let payload = Payload::create(dir.path(), "lsd.bin", 2 << 20, 32 << 10, &[]);
    let a = NetNs::create("ltlsda");
    let b = NetNs::create("ltlsdb");
    a.link("10.78.0.1/24", &b, "10.78.0.2/24");

    let mut cmd = a.exec();
    cmd.arg(&lt)
        .arg("seed")
        .arg(&payload.torrent)
        .arg("--data")
        .arg(&payload.data_dir)
        .args(["--listen", "7000", "--lsd", "--no-dht"]);
    let mut seed = Peer::spawn("lt seed (ns a)", &mut cmd).unwrap();
    seed.wait_line(Stream::Stderr, deadline_in(30), |l| l.contains("seeding "))
        .unwrap_or_else(|e| panic!("{e}"));

    let out = dir.path().join("out");
    let mut cmd = b.exec();
    cmd.arg(&lt)
        .arg("download")
        .arg(&payload.torrent)
        .arg("-o")
        .arg(&out)
        .args(["--listen", "7001", "--lsd", "--no-dht", "--json"]);
    let mut leech = Peer::spawn("lt download (ns b)", &mut cmd).unwrap();
    let summary = wait_summary(&mut leech, deadline_in(60))
        .unwrap_or_else(|e| panic!("{e}\n{}", seed.transcript()));
    assert_eq!(summary.pieces_verified, summary.pieces);
    payload.verify_download(&out).unwrap();
    seed.signal("INT").unwrap();
    seed.wait_exit(deadline_in(20)).unwrap();
}
