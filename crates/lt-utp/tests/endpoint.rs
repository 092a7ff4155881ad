//! `Endpoint`: routing by (address, connection id) and the bounded half-open table.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lt_utp::{DatagramOutcome, Endpoint, EndpointConfig, Event, Header, Packet, PacketType};

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn syn(id: u16) -> Vec<u8> {
    let mut v = Vec::new();
    Packet {
        header: Header {
            ty: PacketType::Syn,
            connection_id: id,
            timestamp_us: 1,
            timestamp_diff_us: 0,
            wnd_size: 1 << 20,
            seq_nr: 1,
            ack_nr: 0,
        },
        sack: None,
        payload: &[],
    }
    .encode(&mut v);
    v
}

#[test]
fn two_endpoints_transfer_over_several_connections() {
    let now = Instant::now();
    let (a_addr, b_addr) = (addr(1000), addr(2000));
    let mut a = Endpoint::new(EndpointConfig {
        rng_seed: [1; 32],
        ..EndpointConfig::default()
    });
    let mut b = Endpoint::new(EndpointConfig {
        rng_seed: [2; 32],
        ..EndpointConfig::default()
    });
    let handles: Vec<_> = (0..3)
        .map(|_| a.connect(now, b_addr).expect("room"))
        .collect();
    let mut received = std::collections::HashMap::new();
    let mut t = now;
    for _ in 0..10_000 {
        let mut quiet = true;
        while let Some((to, d)) = a.poll_transmit(t) {
            assert_eq!(to, b_addr);
            quiet = false;
            b.handle_datagram(t, a_addr, &d.contents);
        }
        while let Some((to, d)) = b.poll_transmit(t) {
            assert_eq!(to, a_addr);
            quiet = false;
            a.handle_datagram(t, b_addr, &d.contents);
        }
        while let Some((h, e)) = a.poll_event() {
            if e == Event::Connected {
                let c = a.connection(h).expect("open");
                let msg = format!("message on {}", h.0);
                assert_eq!(c.write(msg.as_bytes()), msg.len());
                c.close();
            }
        }
        while let Some((h, e)) = b.poll_event() {
            if let Some(c) = b.connection(h) {
                let mut buf = [0; 100];
                let n = c.read(&mut buf);
                received
                    .entry(h)
                    .or_insert_with(Vec::new)
                    .extend_from_slice(&buf[..n]);
                if e == Event::PeerClosed {
                    c.close();
                }
            }
        }
        if a.is_empty() && b.is_empty() {
            break;
        }
        if quiet {
            let Some(next) = [a.poll_timeout(), b.poll_timeout()]
                .into_iter()
                .flatten()
                .min()
            else {
                break;
            };
            t = t.max(next);
            a.handle_timeout(t);
            b.handle_timeout(t);
        }
    }
    assert!(
        a.is_empty() && b.is_empty(),
        "all connections closed and removed"
    );
    let mut msgs: Vec<String> = received
        .into_values()
        .map(|v| String::from_utf8(v).expect("utf8"))
        .collect();
    msgs.sort();
    let mut want: Vec<String> = handles
        .iter()
        .map(|h| format!("message on {}", h.0))
        .collect();
    want.sort();
    assert_eq!(msgs, want);
}

#[test]
fn syn_flood_is_bounded_and_expires() {
    let now = Instant::now();
    // All from 127.0.0.1: the per-IP cap stops the flood before it evicts anything.
    let mut ep = Endpoint::new(EndpointConfig {
        max_half_open: 8,
        max_half_open_per_ip: 8,
        ..EndpointConfig::default()
    });
    let mut accepted = 0;
    for i in 0..1000u16 {
        match ep.handle_datagram(now, addr(3000 + i % 50), &syn(i.wrapping_mul(7))) {
            DatagramOutcome::Accepted(_) => accepted += 1,
            DatagramOutcome::Dropped | DatagramOutcome::Routed(_) => {}
            _ => unreachable!(),
        }
    }
    assert_eq!(accepted, 8);
    assert_eq!(ep.len(), (8, 8));
    // A retransmitted SYN is routed to its connection, not accepted again.
    assert!(matches!(
        ep.handle_datagram(now, addr(3000), &syn(0)),
        DatagramOutcome::Routed(_)
    ));
    while ep.poll_transmit(now).is_some() {}
    let t = ep.poll_timeout().expect("half-open timer");
    assert!(t <= now + Duration::from_secs(10));
    ep.handle_timeout(now + Duration::from_secs(10));
    assert_eq!(ep.len(), (0, 0));
    // Room again.
    assert!(matches!(
        ep.handle_datagram(now, addr(4000), &syn(1)),
        DatagramOutcome::Accepted(_)
    ));
    // Junk and non-SYN packets for unknown connections are dropped.
    assert_eq!(
        ep.handle_datagram(now, addr(4000), b"junk"),
        DatagramOutcome::Dropped
    );
    while ep.poll_transmit(now).is_some() {}
    // A packet for an unknown connection is answered with ST_RESET, boundedly.
    let mut state = syn(999);
    state[0] = 0x21;
    for _ in 0..1000 {
        assert_eq!(
            ep.handle_datagram(now, addr(5000), &state),
            DatagramOutcome::Dropped
        );
    }
    let resets: Vec<_> = std::iter::from_fn(|| ep.poll_transmit(now)).collect();
    assert_eq!(resets.len(), lt_utp::endpoint::MAX_PENDING_RESETS);
    let (to, r) = &resets[0];
    assert_eq!(*to, addr(5000));
    let r = Packet::decode(&r.contents).expect("reset");
    assert_eq!(
        (r.header.ty, r.header.connection_id),
        (PacketType::Reset, 999)
    );
}

/// Two busy connections take turns: no connection sends more than `TRANSMIT_BURST`
/// datagrams in a row while the other has some to send.
#[test]
fn connections_take_turns_in_bursts() {
    use lt_utp::endpoint::TRANSMIT_BURST;
    let now = Instant::now();
    let (a_addr, b_addr) = (addr(1000), addr(2000));
    let mut a = Endpoint::new(EndpointConfig {
        rng_seed: [3; 32],
        ..EndpointConfig::default()
    });
    let mut b = Endpoint::new(EndpointConfig {
        rng_seed: [4; 32],
        ..EndpointConfig::default()
    });
    let handles: Vec<_> = (0..2)
        .map(|_| a.connect(now, b_addr).expect("room"))
        .collect();
    let data = vec![5u8; 256 * 1024];
    let mut t = now;
    let mut checked = 0;
    let mut sink = vec![0u8; 65536];
    for _ in 0..5_000 {
        let mut ids = Vec::new();
        while let Some((_, d)) = a.poll_transmit(t) {
            let p = Packet::decode(&d.contents).expect("valid");
            if p.header.ty == PacketType::Data {
                ids.push(p.header.connection_id);
            }
            b.handle_datagram(t, a_addr, &d.contents);
        }
        let distinct: std::collections::HashSet<_> = ids.iter().collect();
        if distinct.len() == 2 && ids.len() >= 3 * TRANSMIT_BURST {
            let longest = ids
                .chunk_by(|x, y| x == y)
                .map(<[u16]>::len)
                .max()
                .unwrap_or(0);
            assert!(longest <= TRANSMIT_BURST, "a run of {longest}: {ids:?}");
            checked += 1;
        }
        while let Some((_, d)) = b.poll_transmit(t) {
            a.handle_datagram(t, b_addr, &d.contents);
        }
        while a.poll_event().is_some() {}
        for &h in &handles {
            if let Some(c) = a.connection(h) {
                let _ = c.write(&data);
            }
        }
        while let Some((h, _)) = b.poll_event() {
            if let Some(c) = b.connection(h) {
                while c.read(&mut sink) > 0 {}
            }
        }
        t += Duration::from_millis(1);
        a.handle_timeout(t);
        b.handle_timeout(t);
        if checked >= 5 {
            break;
        }
    }
    assert!(
        checked >= 5,
        "both connections never had a large window together"
    );
}

fn packet(ty: PacketType, id: u16, seq_nr: u16, ack_nr: u16) -> Vec<u8> {
    let mut v = Vec::new();
    Packet {
        header: Header {
            ty,
            connection_id: id,
            timestamp_us: 1,
            timestamp_diff_us: 0,
            wnd_size: 1 << 20,
            seq_nr,
            ack_nr,
        },
        sack: None,
        payload: &[],
    }
    .encode(&mut v);
    v
}

fn ip(last: u8, port: u16) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, last], port))
}

/// Issue 18, finding 11: with the half-open table full, new SYNs were dropped until the
/// flood's entries timed out, so a steady flood locked every new peer out. Now the oldest
/// half-open connection makes room.
#[test]
fn syn_flood_cannot_lock_out_new_peers() {
    let now = Instant::now();
    let mut ep = Endpoint::new(EndpointConfig {
        max_half_open: 8,
        ..EndpointConfig::default()
    });
    let mut flood = Vec::new();
    for i in 0..8u8 {
        match ep.handle_datagram(now, ip(i, 4000), &syn(u16::from(i) * 10)) {
            DatagramOutcome::Accepted(h) => flood.push(h),
            other => panic!("flood SYN {i}: {other:?}"),
        }
    }
    assert_eq!(ep.len(), (8, 8));
    // A new peer still gets in; the oldest flood entry goes.
    let DatagramOutcome::Accepted(peer) = ep.handle_datagram(now, ip(100, 6881), &syn(500)) else {
        panic!("a new peer was locked out by a full half-open table");
    };
    assert_eq!(ep.len(), (8, 8));
    assert!(
        ep.peer_addr(flood[0]).is_none(),
        "the oldest was not evicted"
    );
    assert!(ep.is_half_open(peer));
    // Established connections are never evicted: confirm the peer, then flood again.
    let mut reply = None;
    while let Some((to, t)) = ep.poll_transmit(now) {
        if to == ip(100, 6881) {
            reply = Some(Packet::decode(&t.contents).expect("state").header);
        }
    }
    let reply = reply.expect("ST_STATE to the new peer");
    let ack = packet(PacketType::State, 501, 2, reply.seq_nr.wrapping_sub(1));
    assert_eq!(
        ep.handle_datagram(now, ip(100, 6881), &ack),
        DatagramOutcome::Routed(peer)
    );
    assert!(!ep.is_half_open(peer));
    for i in 0..50u8 {
        let _ = ep.handle_datagram(now, ip(i, 5000), &syn(1000 + u16::from(i)));
    }
    assert!(ep.peer_addr(peer).is_some());
    assert_eq!(ep.len(), (9, 8));
}

/// Issue 18, finding 11: half-open connections are counted per source IP, so one host
/// cannot take the whole table (nor, through eviction, push everyone else out).
#[test]
fn half_open_connections_are_capped_per_ip() {
    let now = Instant::now();
    let mut ep = Endpoint::new(EndpointConfig {
        max_half_open: 8,
        max_half_open_per_ip: 3,
        ..EndpointConfig::default()
    });
    let other = ep.handle_datagram(now, ip(2, 1), &syn(7));
    let DatagramOutcome::Accepted(other) = other else {
        panic!("{other:?}");
    };
    let mut accepted = 0;
    for port in 0..100u16 {
        if let DatagramOutcome::Accepted(_) = ep.handle_datagram(now, ip(1, port), &syn(port * 3)) {
            accepted += 1;
        }
    }
    assert_eq!(accepted, 3);
    assert_eq!(ep.len(), (4, 4));
    assert!(
        ep.is_half_open(other),
        "one host's flood evicted another's SYN"
    );
}

/// Issue 18, finding 11: any non-SYN packet used to confirm a half-open connection, so a
/// spoofer could pin its SYNs in the table. Only the SYN sender's ACK of our ST_STATE does.
#[test]
fn only_a_valid_ack_confirms_a_half_open_connection() {
    let now = Instant::now();
    let mut ep = Endpoint::new(EndpointConfig::default());
    let from = ip(9, 9000);
    let DatagramOutcome::Accepted(h) = ep.handle_datagram(now, from, &syn(41)) else {
        panic!("SYN not accepted");
    };
    let (_, t) = ep.poll_transmit(now).expect("ST_STATE");
    let ours = Packet::decode(&t.contents).expect("state").header.seq_nr;
    let bad = [
        // An ack of something we never sent.
        packet(PacketType::State, 42, 2, ours.wrapping_add(100)),
        // An ack far behind our first sequence number (blind guess).
        packet(PacketType::State, 42, 2, ours.wrapping_sub(500)),
        // A sequence number that does not follow the SYN's.
        packet(PacketType::Data, 42, 9000, ours.wrapping_sub(1)),
        // Our own id (the SYN's), not the one the peer must use.
        packet(PacketType::State, 41, 2, ours.wrapping_sub(1)),
    ];
    for p in &bad {
        let _ = ep.handle_datagram(now, from, p);
        assert!(
            ep.is_half_open(h),
            "{:?}",
            Packet::decode(p).map(|p| p.header)
        );
    }
    assert_eq!(ep.len(), (1, 1));
    let good = packet(PacketType::State, 42, 2, ours.wrapping_sub(1));
    assert_eq!(
        ep.handle_datagram(now, from, &good),
        DatagramOutcome::Routed(h)
    );
    assert!(!ep.is_half_open(h));
    assert_eq!(ep.len(), (1, 0));
}

/// An ICMP error for the peer's address ends a connection that waits for the SYN's answer
/// (nothing listens there), and leaves an established one and other addresses alone.
#[test]
fn unreachable_ends_only_connects_in_progress() {
    let now = Instant::now();
    let (a_addr, b_addr, c_addr) = (addr(1000), addr(2000), addr(3000));
    let mut a = Endpoint::new(EndpointConfig {
        rng_seed: [1; 32],
        ..EndpointConfig::default()
    });
    let mut b = Endpoint::new(EndpointConfig {
        rng_seed: [2; 32],
        ..EndpointConfig::default()
    });
    // An established connection to b.
    let up = a.connect(now, b_addr).expect("room");
    for _ in 0..4 {
        while let Some((_, d)) = a.poll_transmit(now) {
            b.handle_datagram(now, a_addr, &d.contents);
        }
        while let Some((_, d)) = b.poll_transmit(now) {
            a.handle_datagram(now, b_addr, &d.contents);
        }
    }
    assert_eq!(a.poll_event(), Some((up, Event::Connected)));
    // Two connects in progress: one to b (a second connection), one to c.
    let to_b = a.connect(now, b_addr).expect("room");
    let to_c = a.connect(now, c_addr).expect("room");
    while a.poll_transmit(now).is_some() {}
    assert_eq!(a.handle_unreachable(c_addr), 1);
    assert_eq!(
        a.poll_event(),
        Some((to_c, Event::Closed(lt_utp::CloseReason::Unreachable)))
    );
    assert_eq!(
        a.handle_unreachable(b_addr),
        1,
        "only the connect in progress"
    );
    assert_eq!(
        a.poll_event(),
        Some((to_b, Event::Closed(lt_utp::CloseReason::Unreachable)))
    );
    assert_eq!(a.poll_event(), None);
    assert!(a.connection(up).is_some_and(|c| !c.is_closed()));
    assert_eq!(a.len().0, 1);
}
