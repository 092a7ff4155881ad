//! The BEP 15 client state machine against the in-memory server, on a virtual clock.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "simulation helpers outside #[test] fns; a panic is a test failure"
)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lt_core::{PeerId, Sha1Hash};
use lt_tracker::server::{ServerConfig, TrackerServer};
use lt_tracker::udp::{UdpRequest, UdpResponse};
use lt_tracker::{AnnounceRequest, Error, Event, UdpConfig, UdpEvent, UdpTracker};

fn config(seed: u8) -> UdpConfig {
    UdpConfig {
        rng_seed: Some([seed; 32]),
        ..Default::default()
    }
}

fn request(peer: u8, port: u16, left: u64) -> AnnounceRequest {
    let mut r = AnnounceRequest::new(Sha1Hash::new([9; 20]), PeerId::new([peer; 20]), port);
    r.left = left;
    r.event = Event::Started;
    r
}

/// Delivers everything the client sends to the server and back, until an event appears.
fn exchange(
    client: &mut UdpTracker,
    server: &mut TrackerServer,
    now: Instant,
    from: SocketAddr,
) -> UdpEvent {
    for _ in 0..10 {
        if let Some(e) = client.poll_event() {
            return e;
        }
        let Some(datagram) = client.poll_transmit() else {
            panic!("the client sends nothing")
        };
        if let Some(reply) = server.handle_datagram(now, from, &datagram) {
            client.handle_datagram(now, &reply);
        }
    }
    panic!("no event after 10 round trips");
}

#[test]
fn two_peers_find_each_other_and_scrape() {
    let t0 = Instant::now();
    let mut server = TrackerServer::new(ServerConfig {
        rng_seed: Some([1; 32]),
        ..Default::default()
    });
    let a: SocketAddr = "127.0.0.1:40001".parse().unwrap();
    let b: SocketAddr = "127.0.0.2:40002".parse().unwrap();
    let mut ca = UdpTracker::new(config(1), b"/announce");
    let mut cb = UdpTracker::new(config(2), b"");

    ca.announce(t0, &request(1, 6881, 0)).unwrap();
    let UdpEvent::Announced(r) = exchange(&mut ca, &mut server, t0, a) else {
        panic!()
    };
    assert!(r.peers.is_empty());
    assert_eq!((r.complete, r.incomplete), (Some(1), Some(0)));

    cb.announce(t0, &request(2, 6882, 100)).unwrap();
    let UdpEvent::Announced(r) = exchange(&mut cb, &mut server, t0, b) else {
        panic!()
    };
    assert_eq!(r.peers.len(), 1);
    assert_eq!(r.peers[0].addr, "127.0.0.1:6881".parse().unwrap());
    assert_eq!(r.interval, Duration::from_secs(1800));

    // The connection id is reused within a minute: one datagram, no connect.
    let t1 = t0 + Duration::from_secs(30);
    cb.scrape(t1, &[Sha1Hash::new([9; 20]), Sha1Hash::new([8; 20])])
        .unwrap();
    let first = cb.poll_transmit().unwrap();
    assert!(matches!(
        UdpRequest::decode(&first),
        Ok(UdpRequest::Scrape { .. })
    ));
    let reply = server.handle_datagram(t1, b, &first).unwrap();
    cb.handle_datagram(t1, &reply);
    let Some(UdpEvent::Scraped(s)) = cb.poll_event() else {
        panic!()
    };
    assert_eq!((s[0].complete, s[0].incomplete), (1, 1));
    assert_eq!((s[1].complete, s[1].incomplete), (0, 0));

    // After a minute the client reconnects first.
    let t2 = t0 + Duration::from_secs(61);
    cb.announce(t2, &request(2, 6882, 100)).unwrap();
    let first = cb.poll_transmit().unwrap();
    assert!(matches!(
        UdpRequest::decode(&first),
        Ok(UdpRequest::Connect { .. })
    ));
}

#[test]
fn retry_schedule_and_timeout() {
    let t0 = Instant::now();
    let mut c = UdpTracker::new(
        UdpConfig {
            max_attempts: 9,
            ..config(3)
        },
        b"",
    );
    c.announce(t0, &request(1, 1, 0)).unwrap();
    let mut now = t0;
    let mut gaps = Vec::new();
    let mut tids = Vec::new();
    loop {
        while let Some(d) = c.poll_transmit() {
            tids.push(UdpRequest::decode(&d).unwrap().transaction_id());
        }
        if let Some(e) = c.poll_event() {
            assert_eq!(e, UdpEvent::Failed(Error::Timeout));
            break;
        }
        let deadline = c.poll_timeout().unwrap();
        gaps.push(deadline - now);
        now = deadline;
        c.handle_timeout(now);
    }
    let expected: Vec<Duration> = (0..9).map(|n| Duration::from_secs(15 << n)).collect();
    assert_eq!(gaps, expected, "15 * 2^n, n = 0..=8");
    tids.sort_unstable();
    tids.dedup();
    assert_eq!(tids.len(), 9, "a fresh transaction id per retransmission");
    assert!(!c.is_busy());
    assert_eq!(c.poll_timeout(), None);
}

#[test]
fn error_action_wrong_tid_and_garbage() {
    let t0 = Instant::now();
    let mut c = UdpTracker::new(config(4), b"");
    c.announce(t0, &request(1, 1, 0)).unwrap();
    let connect = UdpRequest::decode(&c.poll_transmit().unwrap()).unwrap();
    let tid = connect.transaction_id();
    // Replies to other transactions and garbage are ignored.
    c.handle_datagram(
        t0,
        &UdpResponse::Connect {
            transaction_id: tid ^ 1,
            connection_id: 5,
        }
        .to_vec(),
    );
    c.handle_datagram(t0, b"\xff");
    c.handle_datagram(t0, &[0; 3000]);
    assert_eq!(c.poll_event(), None);
    assert!(c.poll_timeout().is_some());
    c.handle_datagram(
        t0,
        &UdpResponse::Error {
            transaction_id: tid,
            message: b"go away".to_vec(),
        }
        .to_vec(),
    );
    assert_eq!(
        c.poll_event(),
        Some(UdpEvent::Failed(Error::TrackerFailure {
            message: "go away".into()
        }))
    );
}

#[test]
fn trailing_peer_bytes_fail_the_announce() {
    let t0 = Instant::now();
    let mut c = UdpTracker::new(config(5), b"");
    c.announce(t0, &request(1, 1, 0)).unwrap();
    let tid = UdpRequest::decode(&c.poll_transmit().unwrap())
        .unwrap()
        .transaction_id();
    c.handle_datagram(
        t0,
        &UdpResponse::Connect {
            transaction_id: tid,
            connection_id: 5,
        }
        .to_vec(),
    );
    let tid = UdpRequest::decode(&c.poll_transmit().unwrap())
        .unwrap()
        .transaction_id();
    let mut reply = UdpResponse::Announce {
        transaction_id: tid,
        interval: 60,
        leechers: 1,
        seeders: 1,
        peers: vec!["1.2.3.4:5".parse().unwrap(), "1.2.3.4:0".parse().unwrap()],
    }
    .to_vec();
    let mut ok = reply.clone();
    reply.push(1);
    c.handle_datagram(t0, &reply);
    assert!(matches!(
        c.poll_event(),
        Some(UdpEvent::Failed(Error::TrailingPeerBytes { .. }))
    ));
    // A well-formed reply with a port-0 peer: that peer is dropped.
    c.announce(t0, &request(1, 1, 0)).unwrap();
    let tid = UdpRequest::decode(&c.poll_transmit().unwrap())
        .unwrap()
        .transaction_id();
    ok[4..8].copy_from_slice(&tid.to_be_bytes());
    c.handle_datagram(t0, &ok);
    let Some(UdpEvent::Announced(r)) = c.poll_event() else {
        panic!()
    };
    assert_eq!(r.peers.len(), 1);
}

#[test]
fn ipv6_replies() {
    let t0 = Instant::now();
    let mut server = TrackerServer::new(ServerConfig::default());
    let a: SocketAddr = "[::1]:40001".parse().unwrap();
    let b: SocketAddr = "[::1]:40002".parse().unwrap();
    let v6 = UdpConfig {
        ipv6: true,
        ..config(6)
    };
    let mut ca = UdpTracker::new(v6.clone(), b"");
    let mut cb = UdpTracker::new(v6, b"");
    ca.announce(t0, &request(1, 7001, 0)).unwrap();
    let _ = exchange(&mut ca, &mut server, t0, a);
    cb.announce(t0, &request(2, 7002, 5)).unwrap();
    let UdpEvent::Announced(r) = exchange(&mut cb, &mut server, t0, b) else {
        panic!()
    };
    assert_eq!(r.peers[0].addr, "[::1]:7001".parse().unwrap());
}

#[test]
fn queue_is_bounded() {
    let t0 = Instant::now();
    let mut c = UdpTracker::new(
        UdpConfig {
            max_queued: 2,
            ..config(7)
        },
        b"",
    );
    for _ in 0..3 {
        c.announce(t0, &request(1, 1, 0)).unwrap();
    }
    assert!(matches!(
        c.announce(t0, &request(1, 1, 0)),
        Err(Error::ApiMisuse(_))
    ));
    assert!(c.scrape(t0, &[]).is_err());
}

/// A seeded lossy link between one client and the server on a virtual clock: 30 % of
/// datagrams in each direction are lost, each takes 40 ms. Every queued announce must end in
/// an event (a reply or `Timeout`) within a bounded number of steps, with the retry schedule
/// and connection-id expiry doing the work. `LT_SIM_SEED` replays one seed.
#[test]
fn lossy_link_simulation() {
    let seeds: Vec<u64> = match std::env::var("LT_SIM_SEED") {
        Ok(s) => vec![s.parse().expect("LT_SIM_SEED is a u64")],
        Err(_) => (1..=100).collect(),
    };
    let mut answered = 0;
    for seed in seeds {
        let r = std::panic::catch_unwind(|| simulate(seed));
        match r {
            Ok(n) => answered += n,
            Err(e) => {
                eprintln!("lossy_link_simulation failed with LT_SIM_SEED={seed}");
                std::panic::resume_unwind(e);
            }
        }
    }
    assert!(answered > 0);
}

fn simulate(seed: u64) -> usize {
    let mut rng = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut lost = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % 10 < 3
    };
    let latency = Duration::from_millis(40);
    let t0 = Instant::now();
    let mut now = t0;
    let mut server = TrackerServer::new(ServerConfig {
        rng_seed: Some([1; 32]),
        ..Default::default()
    });
    let from: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let mut client = UdpTracker::new(
        UdpConfig {
            max_attempts: 6,
            rng_seed: Some(seed_bytes),
            ..Default::default()
        },
        b"/announce",
    );
    const OPS: usize = 5;
    for i in 0..OPS {
        client
            .announce(now, &request(1, 6000 + u16::try_from(i).unwrap(), 10))
            .unwrap();
    }
    // (deliver at, to the server?, bytes)
    let mut link: Vec<(Instant, bool, Vec<u8>)> = Vec::new();
    let mut events = Vec::new();
    for _step in 0..10_000 {
        while let Some(d) = client.poll_transmit() {
            if !lost() {
                link.push((now + latency, true, d));
            }
        }
        while let Some(e) = client.poll_event() {
            events.push(e);
        }
        if events.len() == OPS {
            assert!(!client.is_busy() && client.poll_timeout().is_none());
            assert!(
                now - t0 < Duration::from_secs(6 * 3600),
                "bounded by the retry schedule"
            );
            return events
                .iter()
                .filter(|e| matches!(e, UdpEvent::Announced(_)))
                .count();
        }
        let next_link = link.iter().map(|l| l.0).min();
        let next = match (next_link, client.poll_timeout()) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b).expect("work left but nothing scheduled"),
        };
        assert!(next >= now, "time never goes backwards");
        now = next;
        let (due, rest): (Vec<_>, Vec<_>) = link.drain(..).partition(|l| l.0 <= now);
        link = rest;
        for (_, to_server, bytes) in due {
            if to_server {
                if let Some(reply) = server.handle_datagram(now, from, &bytes)
                    && !lost()
                {
                    link.push((now + latency, false, reply));
                }
            } else {
                client.handle_datagram(now, &bytes);
            }
        }
        if client.poll_timeout().is_some_and(|t| t <= now) {
            client.handle_timeout(now);
        }
    }
    panic!("livelock: {} events after 10,000 steps", events.len());
}
