//! The in-memory tracker server: HTTP and UDP announce and scrape, caps.

use std::net::SocketAddr;
use std::time::Instant;

use lt_core::{PeerId, Sha1Hash};
use lt_tracker::server::{ServerConfig, TrackerServer};
use lt_tracker::udp::{UdpRequest, UdpResponse};

use lt_tracker::http::{HttpConfig, announce_url, parse_announce, parse_scrape, scrape_url};
use lt_tracker::{AnnounceRequest, Event};

#[test]
fn http_announce_and_scrape() {
    let now = Instant::now();
    let mut s = TrackerServer::new(ServerConfig::default());
    let ih = Sha1Hash::new([3; 20]);
    let mut req = AnnounceRequest::new(ih, PeerId::new([1; 20]), 1000);
    req.left = 0;
    let url = announce_url("http://h/announce", &req);
    let target = &url["http://h".len()..];
    let r = s.handle_http(now, "127.0.0.1".parse().unwrap(), target);
    let r = parse_announce(&r.body, &HttpConfig::default()).unwrap();
    assert!(r.peers.is_empty());
    assert_eq!(r.complete, Some(1));

    let mut req2 = AnnounceRequest::new(ih, PeerId::new([2; 20]), 2000);
    req2.left = 10;
    req2.event = Event::Started;
    for compact in [true, false] {
        req2.compact = compact;
        req2.no_peer_id = false;
        let url = announce_url("http://h/announce", &req2);
        let r = s.handle_http(now, "127.0.0.1".parse().unwrap(), &url["http://h".len()..]);
        let r = parse_announce(&r.body, &HttpConfig::default()).unwrap();
        assert_eq!(r.peers.len(), 1);
        assert_eq!(r.peers[0].addr, "127.0.0.1:1000".parse().unwrap());
        assert_eq!(r.peers[0].peer_id.is_some(), !compact);
        assert_eq!((r.complete, r.incomplete), (Some(1), Some(1)));
    }
    let url = scrape_url("http://h/announce", &[ih]).unwrap();
    let r = s.handle_http(now, "127.0.0.1".parse().unwrap(), &url["http://h".len()..]);
    let e = parse_scrape(&r.body, &HttpConfig::default()).unwrap();
    assert_eq!((e[0].complete, e[0].incomplete), (1, 1));
    assert_eq!(
        s.handle_http(now, "127.0.0.1".parse().unwrap(), "/x")
            .status,
        404
    );
    let bad = s.handle_http(now, "127.0.0.1".parse().unwrap(), "/announce?info_hash=abc");
    assert!(parse_announce(&bad.body, &HttpConfig::default()).is_err());
}

#[test]
fn udp_bad_connection_id() {
    let now = Instant::now();
    let mut s = TrackerServer::new(ServerConfig::default());
    let from: SocketAddr = "127.0.0.1:5000".parse().unwrap();
    let req = UdpRequest::Scrape {
        connection_id: 1,
        transaction_id: 9,
        info_hashes: vec![Sha1Hash::new([1; 20])],
    };
    let r = s.handle_datagram(now, from, &req.to_vec()).unwrap();
    assert!(matches!(
        UdpResponse::decode(&r, false),
        Ok(UdpResponse::Error {
            transaction_id: 9,
            ..
        })
    ));
    assert!(s.handle_datagram(now, from, b"junk").is_none());
}

#[test]
fn caps_hold() {
    let now = Instant::now();
    let mut s = TrackerServer::new(ServerConfig {
        max_torrents: 2,
        max_peers_per_torrent: 3,
        ..Default::default()
    });
    for t in 0..4u8 {
        for p in 0..10u16 {
            let mut req =
                AnnounceRequest::new(Sha1Hash::new([t; 20]), PeerId::new([0; 20]), 1000 + p);
            req.left = 1;
            let url = announce_url("http://h/announce", &req);
            let _ = s.handle_http(now, "127.0.0.1".parse().unwrap(), &url["http://h".len()..]);
        }
    }
    assert_eq!(s.torrent_count(), 2);
    assert_eq!(s.counts(&Sha1Hash::new([0; 20])), Some((0, 3, 0)));
}

#[test]
fn peers_expire() {
    let t0 = Instant::now();
    let mut s = TrackerServer::new(ServerConfig {
        peer_timeout: std::time::Duration::from_secs(100),
        ..Default::default()
    });
    let ih = Sha1Hash::new([5; 20]);
    let announce = |s: &mut TrackerServer, now, peer: u8, port: u16| {
        let mut req = AnnounceRequest::new(ih, PeerId::new([peer; 20]), port);
        req.left = 1;
        let url = announce_url("http://h/announce", &req);
        let r = s.handle_http(now, "127.0.0.1".parse().unwrap(), &url["http://h".len()..]);
        parse_announce(&r.body, &HttpConfig::default()).unwrap()
    };
    announce(&mut s, t0, 1, 1000);
    let r = announce(&mut s, t0 + std::time::Duration::from_secs(50), 2, 2000);
    assert_eq!(r.peers.len(), 1);
    // Peer 1 was last seen 101 s ago: gone. Peer 2 (51 s) stays.
    let r = announce(&mut s, t0 + std::time::Duration::from_secs(101), 3, 3000);
    assert_eq!(r.peers.len(), 1);
    assert_eq!(r.peers[0].addr.port(), 2000);
    assert_eq!(s.counts(&ih), Some((0, 2, 0)));
}
