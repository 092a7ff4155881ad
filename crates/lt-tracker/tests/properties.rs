//! quickcheck round trips of compact peer lists and UDP packets, and no-panic decoding of
//! arbitrary bytes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use lt_core::{PeerId, Sha1Hash};
use lt_tracker::http::{HttpConfig, parse_announce, parse_scrape};
use lt_tracker::udp::{UdpAnnounce, UdpRequest, UdpResponse, UdpScrapeCounts};
use lt_tracker::{Event, Peer, decode_compact_v4, decode_compact_v6, encode_compact};
use quickcheck::{Arbitrary, Gen};
use quickcheck_macros::quickcheck;

#[derive(Debug, Clone)]
struct Addrs(Vec<SocketAddr>, bool);

impl Arbitrary for Addrs {
    fn arbitrary(g: &mut Gen) -> Self {
        let v6 = bool::arbitrary(g);
        let n = usize::arbitrary(g) % 50;
        let addrs = (0..n)
            .map(|_| {
                let ip: IpAddr = if v6 {
                    Ipv6Addr::from(u128::arbitrary(g)).into()
                } else {
                    Ipv4Addr::from(u32::arbitrary(g)).into()
                };
                SocketAddr::new(ip, u16::arbitrary(g).max(1))
            })
            .collect();
        Self(addrs, v6)
    }
}

#[quickcheck]
fn compact_round_trip(a: Addrs) -> bool {
    let mut buf = Vec::new();
    for p in &a.0 {
        encode_compact(*p, &mut buf);
    }
    let mut out = Vec::new();
    if a.1 {
        decode_compact_v6(&buf, usize::MAX, &mut out).unwrap();
    } else {
        decode_compact_v4(&buf, usize::MAX, &mut out).unwrap();
    }
    out == a.0.iter().map(|s| Peer::new(*s)).collect::<Vec<_>>()
}

fn hash(g: &mut Gen) -> Sha1Hash {
    Sha1Hash::new(std::array::from_fn(|_| u8::arbitrary(g)))
}

#[derive(Debug, Clone)]
struct Req(UdpRequest);

impl Arbitrary for Req {
    fn arbitrary(g: &mut Gen) -> Self {
        let tid = u32::arbitrary(g);
        let conn = u64::arbitrary(g);
        Self(match u8::arbitrary(g) % 3 {
            0 => UdpRequest::Connect {
                transaction_id: tid,
            },
            1 => UdpRequest::Announce {
                connection_id: conn,
                transaction_id: tid,
                announce: UdpAnnounce {
                    info_hash: hash(g),
                    peer_id: PeerId::new(std::array::from_fn(|_| u8::arbitrary(g))),
                    downloaded: u64::arbitrary(g),
                    left: u64::arbitrary(g),
                    uploaded: u64::arbitrary(g),
                    event: Event::from_udp(u32::arbitrary(g) % 4),
                    ip: u32::arbitrary(g),
                    key: u32::arbitrary(g),
                    num_want: i32::arbitrary(g),
                    port: u16::arbitrary(g),
                    url_data: (0..usize::arbitrary(g) % 600)
                        .map(|_| u8::arbitrary(g))
                        .collect(),
                },
            },
            _ => UdpRequest::Scrape {
                connection_id: conn,
                transaction_id: tid,
                info_hashes: (0..usize::arbitrary(g) % 75).map(|_| hash(g)).collect(),
            },
        })
    }
}

#[derive(Debug, Clone)]
struct Resp(UdpResponse, bool);

impl Arbitrary for Resp {
    fn arbitrary(g: &mut Gen) -> Self {
        let tid = u32::arbitrary(g);
        let addrs = Addrs::arbitrary(g);
        Self(
            match u8::arbitrary(g) % 4 {
                0 => UdpResponse::Connect {
                    transaction_id: tid,
                    connection_id: u64::arbitrary(g),
                },
                1 => UdpResponse::Announce {
                    transaction_id: tid,
                    interval: u32::arbitrary(g),
                    leechers: u32::arbitrary(g),
                    seeders: u32::arbitrary(g),
                    peers: addrs.0,
                },
                2 => UdpResponse::Scrape {
                    transaction_id: tid,
                    entries: (0..usize::arbitrary(g) % 75)
                        .map(|_| UdpScrapeCounts {
                            seeders: u32::arbitrary(g),
                            completed: u32::arbitrary(g),
                            leechers: u32::arbitrary(g),
                        })
                        .collect(),
                },
                _ => UdpResponse::Error {
                    transaction_id: tid,
                    message: String::arbitrary(g).into_bytes(),
                },
            },
            addrs.1,
        )
    }
}

#[quickcheck]
fn udp_request_round_trip(r: Req) -> bool {
    UdpRequest::decode(&r.0.to_vec()) == Ok(r.0)
}

#[quickcheck]
fn udp_response_round_trip(r: Resp) -> bool {
    UdpResponse::decode(&r.0.to_vec(), r.1) == Ok(r.0)
}

#[quickcheck]
fn arbitrary_bytes_never_panic(data: Vec<u8>, v6: bool) -> bool {
    let _ = UdpRequest::decode(&data);
    let _ = UdpResponse::decode(&data, v6);
    let _ = parse_announce(&data, &HttpConfig::default());
    let _ = parse_scrape(&data, &HttpConfig::default());
    true
}

#[quickcheck]
fn strict_prefixes_of_requests_are_rejected_or_shorter(r: Req) -> bool {
    // A truncated fixed part never decodes as the original (the BEP 41 end-of-options
    // byte is optional, so cutting only that is not a truncation).
    let bytes = r.0.to_vec();
    (0..bytes.len().min(98)).all(|n| UdpRequest::decode(&bytes[..n]).as_ref() != Ok(&r.0))
}
