//! Hot paths of lt-tracker without sockets: parsing a compact announce reply with 200 peers,
//! and the server answering a UDP announce datagram.
#![allow(
    missing_docs,
    clippy::cast_possible_truncation,
    reason = "bench inputs are reduced into the target range; criterion macros"
)]

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use lt_core::{PeerId, Sha1Hash};
use lt_tracker::http::{HttpConfig, parse_announce};
use lt_tracker::server::{ServerConfig, TrackerServer};
use lt_tracker::udp::{UdpAnnounce, UdpRequest, UdpResponse};
use lt_tracker::{Event, encode_compact};

fn parse(c: &mut Criterion) {
    let mut peers = Vec::new();
    for i in 0..200u16 {
        encode_compact(
            SocketAddr::from(([10, 0, (i >> 8) as u8, i as u8], 6881)),
            &mut peers,
        );
    }
    let mut body = b"d8:completei10e10:incompletei20e8:intervali1800e5:peers1200:".to_vec();
    body.extend(&peers);
    body.push(b'e');
    let config = HttpConfig::default();
    let mut g = c.benchmark_group("http");
    g.throughput(Throughput::Elements(1));
    g.bench_function("parse_announce_200_peers", |b| {
        b.iter(|| parse_announce(black_box(&body), &config))
    });
    g.finish();
}

fn server(c: &mut Criterion) {
    let now = Instant::now();
    let mut server = TrackerServer::new(ServerConfig {
        rng_seed: Some([1; 32]),
        ..Default::default()
    });
    let from = SocketAddr::from(([127, 0, 0, 1], 5000));
    let reply = server
        .handle_datagram(
            now,
            from,
            &UdpRequest::Connect { transaction_id: 1 }.to_vec(),
        )
        .unwrap_or_default();
    let Ok(UdpResponse::Connect { connection_id, .. }) = UdpResponse::decode(&reply, false) else {
        return;
    };
    let mut g = c.benchmark_group("server");
    g.throughput(Throughput::Elements(1));
    let mut n = 0u32;
    let mut packet = Vec::new();
    g.bench_function("udp_announce", |b| {
        b.iter(|| {
            n = n.wrapping_add(1);
            packet.clear();
            UdpRequest::Announce {
                connection_id,
                transaction_id: n,
                announce: UdpAnnounce {
                    info_hash: Sha1Hash::new([(n % 100) as u8; 20]),
                    peer_id: PeerId::new([7; 20]),
                    downloaded: 0,
                    left: u64::from(n % 2),
                    uploaded: 0,
                    event: Event::None,
                    ip: 0,
                    key: n,
                    num_want: 50,
                    port: (1024 + n % 60_000) as u16,
                    url_data: Vec::new(),
                },
            }
            .encode(&mut packet);
            server.handle_datagram(now, from, black_box(&packet))
        })
    });
    g.finish();
}

criterion_group!(benches, parse, server);
criterion_main!(benches);
