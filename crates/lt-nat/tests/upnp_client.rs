//! `UpnpClient` against miniupnpd's captured answers, with a virtual clock.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lt_nat::http::{HttpResponse, parse_response};
use lt_nat::ssdp::{IGD_SEARCH_TARGET, MULTICAST};
use lt_nat::upnp::Status;
use lt_nat::{Error, Event, Protocol, Transport, UpnpClient, UpnpConfig};

const GW: &str = "192.168.77.1";
const ME: &str = "192.168.77.2";

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/testdata/miniupnpd-2.3.1-{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap()
}

fn ok_xml(body: Vec<u8>) -> HttpResponse {
    HttpResponse { status: 200, body }
}

fn http_fixture(name: &str) -> HttpResponse {
    parse_response(&fixture(&format!("{name}.http")), true)
        .unwrap()
        .unwrap()
}

fn ssdp_reply() -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nST: {IGD_SEARCH_TARGET}\r\nLOCATION: http://{GW}:5000/rootDesc.xml\r\n\
         SERVER: Debian/12 UPnP/1.1 MiniUPnPd/2.3.1\r\n\r\n"
    )
    .into_bytes()
}

fn gw_ssdp() -> SocketAddr {
    format!("{GW}:1900").parse().unwrap()
}

fn events(c: &mut UpnpClient) -> Vec<Event> {
    std::iter::from_fn(|| c.poll_event())
        .filter(|e| !matches!(e, Event::Log { .. }))
        .collect()
}

/// Answers the outstanding HTTP request with `resp`, checking it is the action `name`.
fn answer(c: &mut UpnpClient, now: Instant, name: &str, resp: HttpResponse) -> String {
    let req = c.poll_http().expect("an HTTP request");
    assert!(c.poll_http().is_none(), "one request at a time");
    let text = String::from_utf8(req.request).unwrap();
    assert!(text.contains(name), "expected {name}, got {text}");
    c.handle_http_response(now, req.id, Some(ME.parse().unwrap()), Ok(resp));
    text
}

/// A client that found the miniupnpd gateway and learned its external address.
fn ready(now: Instant) -> UpnpClient {
    let mut c = UpnpClient::new(
        UpnpConfig {
            rng_seed: Some([3; 32]),
            ..UpnpConfig::default()
        },
        now,
    );
    let t = c.poll_transmit().unwrap();
    assert_eq!(t.destination, MULTICAST);
    c.handle_datagram(now, gw_ssdp(), &ssdp_reply());
    answer(
        &mut c,
        now,
        "GET /rootDesc.xml",
        ok_xml(fixture("rootDesc.xml")),
    );
    assert_eq!(c.status(), &Status::Ready);
    assert_eq!(c.router_model(), Some("Debian router"));
    answer(&mut c, now, "GetExternalIPAddress", http_fixture("ext"));
    assert_eq!(
        events(&mut c),
        vec![Event::ExternalIp {
            address: "93.184.216.34".parse().unwrap(),
            transport: Transport::Upnp
        }]
    );
    c
}

#[test]
fn map_lookup_renew_delete() {
    let t0 = Instant::now();
    let mut c = ready(t0);
    let idx = c.add_mapping(t0, Protocol::Tcp, 7777, 7777).unwrap();
    let req = answer(&mut c, t0, "AddPortMapping", http_fixture("add"));
    assert!(req.contains("<NewInternalClient>192.168.77.2</NewInternalClient>"));
    assert!(req.contains("<NewLeaseDuration>3600</NewLeaseDuration>"));
    assert!(req.contains("urn:schemas-upnp-org:service:WANIPConnection:2#AddPortMapping"));
    assert_eq!(
        events(&mut c),
        vec![Event::Mapped {
            index: idx,
            transport: Transport::Upnp,
            protocol: Protocol::Tcp,
            external_port: 7777,
            local_port: 7777
        }]
    );
    c.lookup_mapping(t0, idx).unwrap();
    answer(
        &mut c,
        t0,
        "GetSpecificPortMappingEntry",
        http_fixture("entry"),
    );
    let ev = events(&mut c);
    assert!(
        matches!(&ev[..], [Event::MappingEntry { index, entry: Ok(e) }]
        if *index == idx && e.internal_port == 7777)
    );
    // Renewal at half the lease.
    let renew = c.poll_timeout().unwrap();
    assert_eq!(renew, t0 + Duration::from_secs(1800));
    c.handle_timeout(renew);
    answer(&mut c, renew, "AddPortMapping", http_fixture("add"));
    assert!(events(&mut c).is_empty());
    c.delete_mapping(renew, idx).unwrap();
    let req = answer(&mut c, renew, "DeletePortMapping", http_fixture("del"));
    assert!(req.contains("<NewExternalPort>7777</NewExternalPort>"));
    assert_eq!(
        events(&mut c),
        vec![Event::Unmapped {
            index: idx,
            transport: Transport::Upnp
        }]
    );
    assert!(!c.has_mappings());
}

#[test]
fn conflict_tries_another_port() {
    let t0 = Instant::now();
    let mut c = ready(t0);
    let idx = c.add_mapping(t0, Protocol::Udp, 7777, 6881).unwrap();
    answer(&mut c, t0, "AddPortMapping", http_fixture("conflict"));
    let req = answer(&mut c, t0, "AddPortMapping", http_fixture("add"));
    assert!(!req.contains("<NewExternalPort>7777<"));
    let ev = events(&mut c);
    assert!(
        matches!(&ev[..], [Event::Mapped { index, external_port, local_port: 6881, .. }]
            if *index == idx && *external_port > 1024 && *external_port != 7777),
        "{ev:?}"
    );
}

#[test]
fn conflict_gives_up_after_max_attempts() {
    let t0 = Instant::now();
    let mut c = ready(t0);
    let idx = c.add_mapping(t0, Protocol::Udp, 7777, 6881).unwrap();
    for _ in 0..UpnpConfig::default().max_port_attempts {
        answer(&mut c, t0, "AddPortMapping", http_fixture("conflict"));
    }
    assert!(c.poll_http().is_none());
    assert_eq!(
        events(&mut c),
        vec![Event::MapFailed {
            index: idx,
            transport: Transport::Upnp,
            error: Error::PortConflict
        }]
    );
}

#[test]
fn only_permanent_leases() {
    let t0 = Instant::now();
    let mut c = ready(t0);
    c.add_mapping(t0, Protocol::Tcp, 7000, 7000).unwrap();
    let fault = HttpResponse {
        status: 500,
        body: b"<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body><s:Fault>\
            <detail><UPnPError><errorCode>725</errorCode></UPnPError></detail></s:Fault></s:Body></s:Envelope>"
            .to_vec(),
    };
    answer(&mut c, t0, "AddPortMapping", fault);
    let req = answer(&mut c, t0, "AddPortMapping", http_fixture("add"));
    assert!(req.contains("<NewLeaseDuration>0</NewLeaseDuration>"));
    // Permanent: no renewal timer.
    assert_eq!(c.poll_timeout(), None);
}

#[test]
fn search_gives_up_and_fails_mappings() {
    let t0 = Instant::now();
    let mut c = UpnpClient::new(UpnpConfig::default(), t0);
    let idx = c.add_mapping(t0, Protocol::Tcp, 1, 1).unwrap();
    // A responder pointing elsewhere is refused.
    let evil = b"HTTP/1.1 200 OK\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n\
        LOCATION: http://10.1.1.1:80/x.xml\r\n\r\n";
    c.handle_datagram(t0, "192.168.77.66:1900".parse().unwrap(), evil);
    assert_eq!(c.status(), &Status::Searching);
    let mut sent = 0;
    while let Some(now) = c.poll_timeout() {
        sent += std::iter::from_fn(|| c.poll_transmit()).count();
        c.handle_timeout(now);
        assert!(now - t0 < Duration::from_secs(60));
    }
    assert_eq!(sent, 3);
    assert_eq!(c.status(), &Status::Failed(Error::NoGateway));
    assert_eq!(
        events(&mut c),
        vec![Event::MapFailed {
            index: idx,
            transport: Transport::Upnp,
            error: Error::NoGateway
        }]
    );
}

#[test]
fn hostile_description_fails_cleanly() {
    let t0 = Instant::now();
    let mut c = UpnpClient::new(UpnpConfig::default(), t0);
    c.add_mapping(t0, Protocol::Tcp, 1, 1).unwrap();
    c.handle_datagram(t0, gw_ssdp(), &ssdp_reply());
    let bomb =
        br#"<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]><root>&b;</root>"#;
    answer(&mut c, t0, "GET", ok_xml(bomb.to_vec()));
    assert!(matches!(c.status(), Status::Failed(Error::XmlSyntax(_))));
    let ev = events(&mut c);
    assert!(matches!(&ev[..], [Event::MapFailed { .. }]));
    assert!(c.poll_http().is_none());
}

#[test]
fn delete_before_mapped_and_io_error() {
    let t0 = Instant::now();
    let mut c = ready(t0);
    let a = c.add_mapping(t0, Protocol::Tcp, 5000, 5000).unwrap();
    let b = c.add_mapping(t0, Protocol::Tcp, 5001, 5001).unwrap();
    // b is queued behind a: deleting it needs no request.
    c.delete_mapping(t0, b).unwrap();
    assert_eq!(
        events(&mut c),
        vec![Event::Unmapped {
            index: b,
            transport: Transport::Upnp
        }]
    );
    let req = c.poll_http().unwrap();
    c.handle_http_response(
        t0,
        req.id,
        None,
        Err(Error::Io(std::io::ErrorKind::TimedOut)),
    );
    assert_eq!(
        events(&mut c),
        vec![Event::MapFailed {
            index: a,
            transport: Transport::Upnp,
            error: Error::Io(std::io::ErrorKind::TimedOut)
        }]
    );
    // A stale id is ignored.
    c.handle_http_response(t0, 999, None, Ok(http_fixture("add")));
    assert!(c.poll_http().is_none());
}

#[test]
fn rediscover_after_failure_remaps() {
    let t0 = Instant::now();
    let mut c = UpnpClient::new(
        UpnpConfig {
            rng_seed: Some([3; 32]),
            ..UpnpConfig::default()
        },
        t0,
    );
    let idx = c.add_mapping(t0, Protocol::Tcp, 7777, 7777).unwrap();
    while let Some(now) = c.poll_timeout() {
        while c.poll_transmit().is_some() {}
        c.handle_timeout(now);
    }
    assert_eq!(c.status(), &Status::Failed(Error::NoGateway));
    let _ = events(&mut c);
    // The network changed: search again; the failed mapping is made on the new gateway.
    let t1 = t0 + Duration::from_secs(60);
    c.rediscover(t1);
    assert_eq!(c.status(), &Status::Searching);
    assert!(c.poll_transmit().is_some());
    c.handle_datagram(t1, gw_ssdp(), &ssdp_reply());
    answer(
        &mut c,
        t1,
        "GET /rootDesc.xml",
        ok_xml(fixture("rootDesc.xml")),
    );
    answer(&mut c, t1, "GetExternalIPAddress", http_fixture("ext"));
    answer(&mut c, t1, "AddPortMapping", http_fixture("add"));
    let ev = events(&mut c);
    assert!(
        ev.iter().any(
            |e| matches!(e, Event::Mapped { index, external_port: 7777, .. } if *index == idx)
        ),
        "{ev:?}"
    );
}
