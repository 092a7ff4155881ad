//! `PmpClient` against a scripted NAT-PMP/PCP gateway with a virtual clock.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use lt_nat::natpmp::{Request, Response, ResultCode, SERVER_PORT};
use lt_nat::{Error, Event, MappingIndex, PmpClient, PmpConfig, Protocol, Transport, pcp};

const GW: Ipv4Addr = Ipv4Addr::new(192, 168, 77, 1);
const ME: Ipv4Addr = Ipv4Addr::new(192, 168, 77, 2);
const EXT: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 5);

fn gw() -> SocketAddr {
    SocketAddr::from((GW, SERVER_PORT))
}

fn client(use_pcp: bool) -> PmpClient {
    PmpClient::new(
        PmpConfig {
            use_pcp,
            rng_seed: Some([1; 32]),
            ..PmpConfig::default()
        },
        GW,
        ME,
    )
}

fn drain(c: &mut PmpClient) -> (Vec<Vec<u8>>, Vec<Event>) {
    let mut tx = Vec::new();
    while let Some(t) = c.poll_transmit() {
        assert_eq!(t.destination, gw());
        tx.push(t.contents);
    }
    let mut ev = Vec::new();
    while let Some(e) = c.poll_event() {
        ev.push(e);
    }
    (tx, ev)
}

/// A NAT-PMP gateway that grants every request and answers PCP with "unsupported version".
fn natpmp_gateway(req: &[u8], epoch: u32) -> Vec<u8> {
    if req.first() == Some(&2) {
        return Response::Failure {
            opcode: req[1],
            result: ResultCode::UnsupportedVersion,
            epoch,
        }
        .encode();
    }
    match Request::decode(req).unwrap() {
        Request::ExternalAddress => Response::ExternalAddress {
            epoch,
            address: EXT,
        }
        .encode(),
        Request::Map {
            protocol,
            internal_port,
            suggested_external_port,
            lifetime,
        } => Response::Map {
            protocol,
            epoch,
            internal_port,
            external_port: if lifetime == 0 {
                0
            } else {
                suggested_external_port
            },
            lifetime,
        }
        .encode(),
    }
}

#[test]
fn natpmp_map_renew_and_delete() {
    let t0 = Instant::now();
    let mut c = client(false);
    let idx = c.add_mapping(t0, Protocol::Tcp, 6881, 6881).unwrap();
    // External address first, then the mapping.
    let (tx, _) = drain(&mut c);
    assert_eq!(tx, vec![Request::ExternalAddress.encode()]);
    c.handle_datagram(t0, gw(), &natpmp_gateway(&tx[0], 100));
    let (tx, ev) = drain(&mut c);
    assert_eq!(
        ev,
        vec![Event::ExternalIp {
            address: IpAddr::V4(EXT),
            transport: Transport::NatPmp
        }]
    );
    assert_eq!(
        Request::decode(&tx[0]).unwrap(),
        Request::Map {
            protocol: Protocol::Tcp,
            internal_port: 6881,
            suggested_external_port: 6881,
            lifetime: 7200
        }
    );
    c.handle_datagram(t0, gw(), &natpmp_gateway(&tx[0], 100));
    let (tx, ev) = drain(&mut c);
    assert!(tx.is_empty());
    assert_eq!(
        ev,
        vec![Event::Mapped {
            index: idx,
            transport: Transport::NatPmp,
            protocol: Protocol::Tcp,
            external_port: 6881,
            local_port: 6881
        }]
    );
    // Renewal at half the lifetime, without a second Mapped event.
    let renew = c.poll_timeout().unwrap();
    assert_eq!(renew, t0 + Duration::from_secs(3600));
    c.handle_timeout(renew);
    let (tx, _) = drain(&mut c);
    assert_eq!(tx.len(), 1);
    c.handle_datagram(renew, gw(), &natpmp_gateway(&tx[0], 3700));
    let (_, ev) = drain(&mut c);
    assert!(ev.is_empty(), "{ev:?}");
    // Delete: lifetime 0 and external port 0 (RFC 6886 section 3.4).
    c.delete_mapping(renew, idx).unwrap();
    let (tx, _) = drain(&mut c);
    assert_eq!(
        Request::decode(&tx[0]).unwrap(),
        Request::Map {
            protocol: Protocol::Tcp,
            internal_port: 6881,
            suggested_external_port: 0,
            lifetime: 0
        }
    );
    c.handle_datagram(renew, gw(), &natpmp_gateway(&tx[0], 3700));
    let (_, ev) = drain(&mut c);
    assert_eq!(
        ev,
        vec![Event::Unmapped {
            index: idx,
            transport: Transport::NatPmp
        }]
    );
    assert!(!c.has_mappings());
    assert_eq!(c.poll_timeout(), None);
}

#[test]
fn pcp_falls_back_to_natpmp_on_unsupported_version() {
    let t0 = Instant::now();
    let mut c = client(true);
    c.add_mapping(t0, Protocol::Udp, 0, 7000).unwrap();
    let (tx, _) = drain(&mut c);
    assert_eq!(tx[0].len(), pcp::MAP_LEN);
    let req = pcp::MapRequest::decode(&tx[0]).unwrap();
    assert_eq!(req.client_addr, IpAddr::V4(ME));
    c.handle_datagram(t0, gw(), &natpmp_gateway(&tx[0], 5));
    assert_eq!(c.transport(), Transport::NatPmp);
    let (tx, _) = drain(&mut c);
    assert_eq!(tx, vec![Request::ExternalAddress.encode()]);
}

#[test]
fn pcp_maps_and_reports_external_address() {
    let t0 = Instant::now();
    let mut c = client(true);
    let idx = c.add_mapping(t0, Protocol::Tcp, 6881, 6881).unwrap();
    let (tx, _) = drain(&mut c);
    let req = pcp::MapRequest::decode(&tx[0]).unwrap();
    let resp = pcp::Response::Map(pcp::MapResponse {
        lifetime: 120,
        epoch: 1,
        nonce: req.nonce,
        protocol: req.protocol,
        internal_port: req.internal_port,
        external_port: 40000,
        external_addr: IpAddr::V4(EXT),
    });
    // A reply with another nonce is ignored.
    let mut wrong = resp;
    if let pcp::Response::Map(m) = &mut wrong {
        m.nonce[0] ^= 1;
    }
    c.handle_datagram(t0, gw(), &wrong.encode());
    let (_, ev) = drain(&mut c);
    assert!(matches!(ev[..], [Event::Log { .. }]));
    c.handle_datagram(t0, gw(), &resp.encode());
    let (_, ev) = drain(&mut c);
    assert_eq!(
        ev,
        vec![
            Event::ExternalIp {
                address: IpAddr::V4(EXT),
                transport: Transport::Pcp
            },
            Event::Mapped {
                index: idx,
                transport: Transport::Pcp,
                protocol: Protocol::Tcp,
                external_port: 40000,
                local_port: 6881
            }
        ]
    );
    assert_eq!(c.poll_timeout(), Some(t0 + Duration::from_secs(60)));
}

#[test]
fn retry_schedule_doubles_then_gives_up() {
    let t0 = Instant::now();
    let mut c = PmpClient::new(
        PmpConfig {
            use_pcp: false,
            max_attempts: 4,
            ..PmpConfig::default()
        },
        GW,
        ME,
    );
    let idx = c.add_mapping(t0, Protocol::Tcp, 1, 2).unwrap();
    let mut now = t0;
    let mut waits = Vec::new();
    let mut sends = drain(&mut c).0.len();
    for _ in 0..20 {
        let Some(next) = c.poll_timeout() else { break };
        waits.push(next - now);
        now = next;
        c.handle_timeout(now);
        let (tx, ev) = drain(&mut c);
        sends += tx.len();
        if ev.iter().any(|e| matches!(e, Event::MapFailed { .. })) {
            break;
        }
    }
    // External address: 4 sends, then the mapping: 4 sends, then the failure.
    assert_eq!(sends, 8);
    assert_eq!(
        &waits[..4],
        &[250, 500, 1000, 2000].map(Duration::from_millis)
    );
    let _ = idx;
}

#[test]
fn refusal_and_wrong_source_and_garbage() {
    let t0 = Instant::now();
    let mut c = client(false);
    let idx = c.add_mapping(t0, Protocol::Tcp, 80, 80).unwrap();
    let (tx, _) = drain(&mut c);
    c.handle_datagram(t0, gw(), &natpmp_gateway(&tx[0], 1));
    let _ = drain(&mut c);
    // Garbage and a stranger's reply are logged and ignored.
    c.handle_datagram(t0, gw(), &[0, 130, 0]);
    c.handle_datagram(t0, "192.168.77.99:5351".parse().unwrap(), &[0; 16]);
    let (tx, ev) = drain(&mut c);
    assert!(tx.is_empty());
    assert_eq!(ev.len(), 2);
    let refused = Response::Failure {
        opcode: 2,
        result: ResultCode::NotAuthorized,
        epoch: 2,
    };
    c.handle_datagram(t0, gw(), &refused.encode());
    let (_, ev) = drain(&mut c);
    assert_eq!(
        ev,
        vec![Event::MapFailed {
            index: idx,
            transport: Transport::NatPmp,
            error: Error::NatPmpResult(ResultCode::NotAuthorized)
        }]
    );
}

#[test]
fn epoch_going_back_remaps() {
    let t0 = Instant::now();
    let mut c = client(false);
    c.add_mapping(t0, Protocol::Udp, 9000, 9000).unwrap();
    let (tx, _) = drain(&mut c);
    c.handle_datagram(t0, gw(), &natpmp_gateway(&tx[0], 1000));
    let (tx, _) = drain(&mut c);
    c.handle_datagram(t0, gw(), &natpmp_gateway(&tx[0], 1000));
    let _ = drain(&mut c);
    // 100 s later an ANNOUNCE-like answer with epoch 3: the gateway rebooted.
    let t1 = t0 + Duration::from_secs(100);
    c.delete_mapping(t1, MappingIndex(0)).unwrap();
    let (tx, _) = drain(&mut c);
    // Before answering the delete, nothing else happens; answer it with a rebooted epoch.
    c.handle_datagram(t1, gw(), &natpmp_gateway(&tx[0], 3));
    let (tx, ev) = drain(&mut c);
    assert!(
        ev.iter()
            .any(|e| matches!(e, Event::Log { message, .. } if message.contains("epoch")))
    );
    // External address asked again.
    assert_eq!(tx, vec![Request::ExternalAddress.encode()]);
}
