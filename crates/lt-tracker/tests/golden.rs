//! Replies captured from opentracker (Debian 12) on loopback, in `testdata/`, with their
//! expected parse.

use std::net::SocketAddr;
use std::time::Duration;

use lt_core::Sha1Hash;
use lt_tracker::http::{HttpConfig, parse_announce, parse_scrape};
use lt_tracker::udp::{UdpResponse, UdpScrapeCounts};
use lt_tracker::{Error, ScrapeEntry};

fn data(name: &str) -> Vec<u8> {
    let path = format!("{}/testdata/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

#[test]
fn http_announces() {
    let r = parse_announce(
        &data("opentracker_announce_seed.bin"),
        &HttpConfig::default(),
    )
    .unwrap();
    assert_eq!(r.interval, Duration::from_secs(1909));
    assert_eq!(r.min_interval, Some(Duration::from_secs(954)));
    assert_eq!(
        (r.complete, r.incomplete, r.downloaded),
        (Some(1), Some(0), Some(0))
    );
    // opentracker hands the announcer its own address back.
    assert_eq!(
        r.peers.iter().map(|p| p.addr).collect::<Vec<_>>(),
        [addr(7001)]
    );

    let r = parse_announce(
        &data("opentracker_announce_compact.bin"),
        &HttpConfig::default(),
    )
    .unwrap();
    assert_eq!((r.complete, r.incomplete), (Some(1), Some(1)));
    assert_eq!(
        r.peers.iter().map(|p| p.addr).collect::<Vec<_>>(),
        [addr(7002), addr(7001)]
    );
    assert!(r.peers.iter().all(|p| p.peer_id.is_none()));

    assert_eq!(
        parse_announce(
            &data("opentracker_not_whitelisted.bin"),
            &HttpConfig::default()
        ),
        Err(Error::TrackerFailure {
            message: "Requested download is not authorized for use with this tracker.".into()
        })
    );
}

#[test]
fn http_scrape() {
    let s = parse_scrape(&data("opentracker_scrape.bin"), &HttpConfig::default()).unwrap();
    assert_eq!(
        s,
        [ScrapeEntry {
            info_hash: Sha1Hash::new([0x5e; 20]),
            complete: 1,
            incomplete: 1,
            downloaded: 0
        }]
    );
}

#[test]
fn udp_replies() {
    let c = UdpResponse::decode(&data("opentracker_udp_connect.bin"), false).unwrap();
    assert!(matches!(
        c,
        UdpResponse::Connect {
            transaction_id: 1,
            ..
        }
    ));
    let a = UdpResponse::decode(&data("opentracker_udp_announce.bin"), false).unwrap();
    assert_eq!(
        a,
        UdpResponse::Announce {
            transaction_id: 2,
            interval: 1829,
            leechers: 2,
            seeders: 1,
            peers: vec![addr(7002), addr(7005), addr(7001)],
        }
    );
    let s = UdpResponse::decode(&data("opentracker_udp_scrape.bin"), false).unwrap();
    assert_eq!(
        s,
        UdpResponse::Scrape {
            transaction_id: 3,
            entries: vec![UdpScrapeCounts {
                seeders: 1,
                completed: 0,
                leechers: 2
            }],
        }
    );
    let e = UdpResponse::decode(&data("opentracker_udp_bad_connection_id.bin"), false).unwrap();
    assert_eq!(
        e,
        UdpResponse::Error {
            transaction_id: 4,
            message: b"Connection ID missmatch.\0".to_vec()
        }
    );
    // Every capture re-encodes to the same bytes.
    for name in [
        "opentracker_udp_connect.bin",
        "opentracker_udp_announce.bin",
        "opentracker_udp_scrape.bin",
        "opentracker_udp_bad_connection_id.bin",
    ] {
        let bytes = data(name);
        assert_eq!(
            UdpResponse::decode(&bytes, false).unwrap().to_vec(),
            bytes,
            "{name}"
        );
    }
}
