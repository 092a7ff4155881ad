//! The tokio `PortMapper` against an in-process NAT-PMP gateway on loopback, and against a
//! silent one (shutdown must still return within its bound).
#![cfg(feature = "tokio")]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::net::{Ipv4Addr, UdpSocket};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use lt_nat::driver::{DriverConfig, PortMapper};
use lt_nat::natpmp::{Request, Response};
use lt_nat::{Error, Event, MappingIndex, PmpConfig, Protocol, Transport};

fn natpmp_only(gateway: Ipv4Addr) -> DriverConfig {
    DriverConfig {
        upnp: None,
        natpmp: Some(PmpConfig {
            use_pcp: false,
            max_attempts: 3,
            ..PmpConfig::default()
        }),
        gateway: Some(gateway),
        rng_seed: Some([5; 32]),
        ..DriverConfig::default()
    }
}

async fn next(events: &mut tokio::sync::mpsc::Receiver<Event>) -> Event {
    tokio::time::timeout(Duration::from_secs(10), events.recv())
        .await
        .expect("an event within 10 s")
        .expect("channel open")
}

#[tokio::test(flavor = "current_thread")]
async fn maps_and_unmaps_through_a_loopback_gateway() {
    // A NAT-PMP gateway on 127.0.0.1:5351 that grants everything and reports what it got.
    let gw = UdpSocket::bind("127.0.0.1:5351").expect("UDP 127.0.0.1:5351 must be free");
    gw.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let (seen_tx, seen_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1100];
        while let Ok((n, from)) = gw.recv_from(&mut buf) {
            let Ok(req) = Request::decode(&buf[..n]) else {
                continue;
            };
            let resp = match req {
                Request::ExternalAddress => Response::ExternalAddress {
                    epoch: 10,
                    address: Ipv4Addr::new(198, 18, 0, 1),
                },
                Request::Map {
                    protocol,
                    internal_port,
                    suggested_external_port,
                    lifetime,
                } => Response::Map {
                    protocol,
                    epoch: 10,
                    internal_port,
                    external_port: suggested_external_port,
                    lifetime,
                },
            };
            let _ = gw.send_to(&resp.encode(), from);
            if seen_tx.send(req).is_err() {
                break;
            }
        }
    });

    let (mapper, mut events) = PortMapper::start(natpmp_only(Ipv4Addr::LOCALHOST))
        .await
        .unwrap();
    let index = mapper.add_mapping(Protocol::Udp, 7001, 7000).await.unwrap();
    assert_eq!(index, MappingIndex(0));
    let mut external = false;
    let mut mapped = false;
    while !(external && mapped) {
        match next(&mut events).await {
            Event::ExternalIp { address, transport } => {
                assert_eq!(address.to_string(), "198.18.0.1");
                assert_eq!(transport, Transport::NatPmp);
                external = true;
            }
            Event::Mapped {
                index: i,
                external_port,
                local_port,
                ..
            } => {
                assert_eq!((i, external_port, local_port), (index, 7001, 7000));
                mapped = true;
            }
            Event::MapFailed { error, .. } => panic!("mapping failed: {error}"),
            _ => {}
        }
    }
    assert_eq!(
        mapper.lookup_mapping(index).await,
        Err(Error::ApiMisuse("no UPnP mapping with this index"))
    );
    assert!(mapper.delete_mapping(MappingIndex(9)).await.is_err());
    mapper.shutdown(Duration::from_secs(5)).await;
    let requests: Vec<Request> = seen_rx.try_iter().collect();
    assert!(
        requests.contains(&Request::Map {
            protocol: Protocol::Udp,
            internal_port: 7000,
            suggested_external_port: 0,
            lifetime: 0
        }),
        "shutdown sent no delete: {requests:?}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn shutdown_is_bounded_when_the_gateway_is_silent() {
    // 127.0.0.2: nothing answers there.
    let (mapper, _events) = PortMapper::start(natpmp_only(Ipv4Addr::new(127, 0, 0, 2)))
        .await
        .unwrap();
    mapper.add_mapping(Protocol::Tcp, 0, 6881).await.unwrap();
    // The external-address request gives up after 3 sends (1.75 s); then the MAP request is
    // in flight, so the delete has to wait for it: shutdown waits until its deadline.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let started = Instant::now();
    mapper.shutdown(Duration::from_millis(500)).await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(2),
        "shutdown took {took:?}"
    );
}
