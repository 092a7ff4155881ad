//! `Connection` behaviour through the public API: handshake, acks, timers and hostile input.
#![allow(
    clippy::expect_used,
    reason = "test helpers outside #[test] fns; a panic is a test failure"
)]

use std::time::{Duration, Instant};

use lt_utp::{
    CloseReason, Config, Connection, Error, Event, Header, Packet, PacketType, SelectiveAck,
};

fn cfg(seed: u8) -> Config {
    Config {
        rng_seed: [seed; 32],
        ..Config::default()
    }
}

fn transmits(c: &mut Connection, now: Instant) -> Vec<Vec<u8>> {
    std::iter::from_fn(|| c.poll_transmit(now).map(|t| t.contents)).collect()
}

fn events(c: &mut Connection) -> Vec<Event> {
    std::iter::from_fn(|| c.poll_event()).collect()
}

fn decode(b: &[u8]) -> Packet<'_> {
    Packet::decode(b).expect("we send valid packets")
}

/// A client and server after the handshake, with no packet in flight.
fn connected(now: Instant) -> (Connection, Connection) {
    let mut client = Connection::connect(cfg(1), now);
    let syn = transmits(&mut client, now);
    assert_eq!(syn.len(), 1);
    let mut server = Connection::accept(cfg(2), now, &syn[0]).expect("syn");
    for d in transmits(&mut server, now) {
        client.handle_datagram(now, &d).expect("syn-ack");
    }
    assert_eq!(events(&mut client), [Event::Connected]);
    assert_eq!(events(&mut server), [Event::Connected]);
    (client, server)
}

/// Shuttles datagrams both ways (no delay) until both are quiet.
fn exchange(a: &mut Connection, b: &mut Connection, now: Instant) {
    for _ in 0..1000 {
        let ab = transmits(a, now);
        let ba = transmits(b, now);
        if ab.is_empty() && ba.is_empty() {
            return;
        }
        for d in ab {
            let _ = b.handle_datagram(now, &d);
        }
        for d in ba {
            let _ = a.handle_datagram(now, &d);
        }
    }
    panic!("livelock");
}

/// A packet from `from`'s point of view to the connection with receive id `to_id`.
fn forge(ty: PacketType, to_id: u16, seq_nr: u16, ack_nr: u16, wnd: u32) -> Header {
    Header {
        ty,
        connection_id: to_id,
        timestamp_us: 1,
        timestamp_diff_us: 0,
        wnd_size: wnd,
        seq_nr,
        ack_nr,
    }
}

fn encode(header: Header, sack: Option<SelectiveAck>, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    Packet {
        header,
        sack,
        payload,
    }
    .encode(&mut v);
    v
}

#[test]
fn handshake_ids_and_sequence_numbers() {
    let now = Instant::now();
    let mut client = Connection::connect(cfg(1), now);
    let syn = transmits(&mut client, now).remove(0);
    let p = decode(&syn);
    assert_eq!(p.header.ty, PacketType::Syn);
    assert_eq!(p.header.connection_id, client.recv_id());
    assert_eq!(p.header.seq_nr, 1);
    let mut server = Connection::accept(cfg(2), now, &syn).expect("syn");
    assert_eq!(server.recv_id(), client.recv_id().wrapping_add(1));
    let state = transmits(&mut server, now).remove(0);
    let s = decode(&state);
    assert_eq!(s.header.ty, PacketType::State);
    assert_eq!(s.header.connection_id, client.recv_id());
    assert_eq!(s.header.ack_nr, 1);
    assert_eq!(
        Connection::accept(cfg(2), now, &state).err(),
        Some(Error::NotSyn)
    );
}

#[test]
fn lost_syn_is_retransmitted_and_duplicate_syn_reacked() {
    let now = Instant::now();
    let mut client = Connection::connect(cfg(1), now);
    let syn = transmits(&mut client, now).remove(0);
    let t = client.poll_timeout().expect("rto armed");
    assert_eq!(t, now + Duration::from_secs(1));
    client.handle_timeout(t);
    let again = transmits(&mut client, t);
    assert_eq!(again.len(), 1);
    assert_eq!(decode(&again[0]).header.ty, PacketType::Syn);
    // The server answers each copy of the SYN.
    let mut server = Connection::accept(cfg(2), t, &syn).expect("syn");
    assert_eq!(transmits(&mut server, t).len(), 1);
    server.handle_datagram(t, &again[0]).expect("dup syn");
    assert_eq!(transmits(&mut server, t).len(), 1);
}

#[test]
fn unanswered_syn_times_out() {
    let mut now = Instant::now();
    let mut client = Connection::connect(cfg(1), now);
    let mut sent = 0;
    for _ in 0..100 {
        sent += transmits(&mut client, now).len();
        let Some(t) = client.poll_timeout() else {
            break;
        };
        now = t;
        client.handle_timeout(now);
    }
    assert!(client.is_closed());
    assert_eq!(events(&mut client), [Event::Closed(CloseReason::TimedOut)]);
    assert!((2..=10).contains(&sent), "{sent} SYNs");
}

#[test]
fn data_ack_is_delayed_then_sent() {
    let now = Instant::now();
    let (mut client, mut server) = connected(now);
    assert_eq!(client.write(&[7; 100]), 100);
    let d = transmits(&mut client, now);
    assert_eq!(d.len(), 1);
    server.handle_datagram(now, &d[0]).expect("data");
    assert_eq!(events(&mut server), [Event::Readable]);
    // One packet: the ack waits for the delayed-ack timer.
    assert!(transmits(&mut server, now).is_empty());
    let t = server.poll_timeout().expect("delayed ack");
    assert_eq!(t, now + Duration::from_millis(100));
    server.handle_timeout(t);
    let acks = transmits(&mut server, t);
    assert_eq!(acks.len(), 1);
    let ack = decode(&acks[0]);
    assert_eq!(ack.header.ty, PacketType::State);
    assert_eq!(ack.header.ack_nr, decode(&d[0]).header.seq_nr);
    let mut buf = [0; 200];
    assert_eq!(server.read(&mut buf), 100);
    assert_eq!(&buf[..100], &[7; 100]);
}

#[test]
fn nagle_coalesces_small_writes() {
    let now = Instant::now();
    let (mut client, mut server) = connected(now);
    client.write(b"a");
    let a = transmits(&mut client, now);
    assert_eq!(a.len(), 1);
    for _ in 0..10 {
        client.write(b"b");
    }
    // Data in flight: the small writes wait.
    assert!(transmits(&mut client, now).is_empty());
    server.handle_datagram(now, &a[0]).expect("data");
    exchange(&mut client, &mut server, now);
    let t = server.poll_timeout().expect("timer");
    server.handle_timeout(t);
    exchange(&mut client, &mut server, t);
    let mut buf = [0; 64];
    assert_eq!(server.read(&mut buf), 11);
    assert_eq!(&buf[..11], b"abbbbbbbbbb");
    assert_eq!(client.stats().packets_sent, 3, "SYN, 'a', 'bbbbbbbbbb'");
}

#[test]
fn write_is_bounded_by_the_send_buffer() {
    let now = Instant::now();
    let mut client = Connection::connect(
        Config {
            send_buffer_size: 10_000,
            ..cfg(1)
        },
        now,
    );
    assert_eq!(client.write(&[0; 50_000]), 10_000);
    assert_eq!(client.write(&[0; 10]), 0);
}

#[test]
fn graceful_close_both_ways() {
    let now = Instant::now();
    let (mut client, mut server) = connected(now);
    client.write(b"bye");
    client.close();
    exchange(&mut client, &mut server, now);
    assert_eq!(events(&mut server), [Event::Readable, Event::PeerClosed]);
    let mut buf = [0; 8];
    assert_eq!(server.read(&mut buf), 3);
    assert_eq!(client.write(b"late"), 0);
    server.close();
    exchange(&mut client, &mut server, now);
    assert_eq!(
        events(&mut client),
        [Event::PeerClosed, Event::Closed(CloseReason::Done)]
    );
    assert_eq!(events(&mut server), [Event::Closed(CloseReason::Done)]);
    assert!(client.poll_timeout().is_none() && server.poll_timeout().is_none());
}

#[test]
fn reset_from_peer_and_abort() {
    let now = Instant::now();
    let (mut client, mut server) = connected(now);
    server.abort();
    let r = transmits(&mut server, now);
    assert_eq!(r.len(), 1);
    assert_eq!(decode(&r[0]).header.ty, PacketType::Reset);
    assert_eq!(events(&mut server), [Event::Closed(CloseReason::Aborted)]);
    client.handle_datagram(now, &r[0]).expect("reset");
    assert_eq!(events(&mut client), [Event::Closed(CloseReason::Reset)]);
    assert!(transmits(&mut client, now).is_empty());
}

#[test]
fn keepalive_then_idle_timeout() {
    let now = Instant::now();
    let (mut client, _server) = connected(now);
    let t = client.poll_timeout().expect("keepalive");
    assert_eq!(t, now + Duration::from_secs(29));
    client.handle_timeout(t);
    let k = transmits(&mut client, t);
    assert_eq!(k.len(), 1);
    assert_eq!(decode(&k[0]).header.ty, PacketType::State);
    while let Some(t) = client.poll_timeout() {
        client.handle_timeout(t);
        let _ = transmits(&mut client, t);
    }
    assert_eq!(events(&mut client), [Event::Closed(CloseReason::TimedOut)]);
}

#[test]
fn bogus_ack_and_wrong_id_are_dropped_a_huge_sack_is_cut() {
    let now = Instant::now();
    let (mut client, mut server) = connected(now);
    client.write(&[1; 3000]);
    let data = transmits(&mut client, now);
    assert!(!data.is_empty());
    let seq = decode(&data[0]).header.seq_nr;
    let id = client.recv_id();
    // Acks of packets never sent.
    let bogus = encode(
        forge(PacketType::State, id, 1, seq.wrapping_add(500), 1 << 20),
        None,
        &[],
    );
    assert_eq!(
        client.handle_datagram(now, &bogus),
        Err(Error::AckOutOfRange(seq.wrapping_add(500)))
    );
    let wrong_id = encode(
        forge(PacketType::State, id ^ 0x5555, 1, seq, 1 << 20),
        None,
        &[],
    );
    assert_eq!(
        client.handle_datagram(now, &wrong_id),
        Err(Error::ConnectionIdMismatch(id ^ 0x5555))
    );
    let mut huge = encode(forge(PacketType::State, id, 1, seq, 1 << 20), None, &[]);
    huge[1] = lt_utp::EXT_SACK;
    huge.extend_from_slice(&[0, 252]);
    huge.extend_from_slice(&[0xff; 252]);
    // A 252-byte SACK (BEP 29 wants a multiple of 4, libtorrent sends any length): the
    // first 32 bytes count, bits for packets never sent are ignored.
    assert_eq!(client.handle_datagram(now, &huge), Ok(()));
    assert_eq!(client.stats().packets_dropped, 2);
    // The connection still works.
    for d in data {
        server.handle_datagram(now, &d).expect("data");
    }
    exchange(&mut client, &mut server, now);
    assert_eq!(server.readable_len(), 3000);
    assert!(events(&mut client).is_empty());
}

/// A peer that closes its window and sends no update when it reads (rqbit waits seconds)
/// is probed soon, then less and less often: the first probe goes within 20 ms here (no
/// round trip measured yet), not after libutp's 15 s. (Stalled 4 s at a time sending to
/// rqbit 9.1 over uTP.)
#[test]
fn zero_window_probes_start_soon_and_back_off() {
    let start = Instant::now();
    let (mut client, _server) = connected(start);
    let id = client.recv_id();
    let zero = encode(forge(PacketType::State, id, 0, 1, 0), None, &[]);
    client.handle_datagram(start, &zero).expect("zero window");
    client.write(&[5; 5000]);
    assert!(transmits(&mut client, start).is_empty(), "window is zero");
    let mut probes = Vec::new();
    while let Some(now) = client.poll_timeout() {
        if now > start + Duration::from_secs(20) {
            break;
        }
        client.handle_timeout(now);
        for d in transmits(&mut client, now) {
            if decode(&d).header.ty == PacketType::Data {
                probes.push(now - start);
            }
        }
        let _ = client.handle_datagram(now, &zero);
    }
    assert!(
        probes
            .first()
            .is_some_and(|&t| t <= Duration::from_millis(20)),
        "{probes:?}"
    );
    // Probes and the retransmissions of a probe in flight, backing off: a few dozen in
    // 20 s at most, the last ones seconds apart.
    assert!((5..=30).contains(&probes.len()), "{probes:?}");
    let gaps: Vec<Duration> = probes.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps.last().is_some_and(|&g| g >= Duration::from_secs(1)),
        "{gaps:?}"
    );
    assert!(
        gaps.iter().all(|&g| g <= Duration::from_secs(15)),
        "{gaps:?}"
    );
}

#[test]
fn zero_window_forever_resets() {
    let now = Instant::now();
    let (mut client, _server) = connected(now);
    let id = client.recv_id();
    // A STATE's seq_nr is not checked; ack_nr 1 acknowledges the SYN.
    let zero = encode(forge(PacketType::State, id, 0, 1, 0), None, &[]);
    client.handle_datagram(now, &zero).expect("zero window");
    client.write(&[5; 5000]);
    assert!(transmits(&mut client, now).is_empty(), "window is zero");
    let mut probes = 0;
    while let Some(now) = client.poll_timeout() {
        client.handle_timeout(now);
        for d in transmits(&mut client, now) {
            if decode(&d).header.ty == PacketType::Data {
                probes += 1;
            }
        }
        // The peer keeps saying zero (its idle timer is kept alive).
        let _ = client.handle_datagram(now, &zero);
    }
    assert_eq!(
        events(&mut client),
        [Event::Closed(CloseReason::ZeroWindow)]
    );
    assert!(probes >= 1, "zero-window probe sent");
}

#[test]
fn out_of_window_data_is_dropped_and_memory_bounded() {
    let now = Instant::now();
    let (mut client, _server) = connected(now);
    let id = client.recv_id();
    // The server's first data packet would have the seq after the STATE's; flood with
    // every sequence number: most are out of the reorder window.
    let payload = [9u8; 1000];
    for seq in 0..=u16::MAX {
        let d = encode(forge(PacketType::Data, id, seq, 1, 1 << 20), None, &payload);
        let _ = client.handle_datagram(now, &d);
    }
    // At most the receive buffer is held, whatever arrived.
    assert!(client.readable_len() <= Config::default().recv_buffer_size);
    let acks = transmits(&mut client, now);
    assert!(acks.len() <= 2, "{} acks", acks.len());
    for a in acks {
        let p = decode(&a);
        assert!(
            p.sack
                .is_none_or(|s| s.as_bytes().len() <= lt_utp::limits::MAX_SACK_BYTES)
        );
    }
}

#[test]
fn sack_reports_holes_and_drives_fast_retransmit() {
    let now = Instant::now();
    let (mut client, mut server) = connected(now);
    let mss = client.max_payload();
    // Grow the window first so several packets are in flight.
    let mut t = now;
    for _ in 0..10 {
        client.write(&vec![3; 4 * mss]);
        exchange(&mut client, &mut server, t);
        t += Duration::from_millis(10);
        let mut buf = vec![0; 1 << 20];
        while server.read(&mut buf) > 0 {}
    }
    client.write(&vec![4; 6 * mss]);
    let burst = transmits(&mut client, t);
    assert!(burst.len() >= 4, "{} in flight", burst.len());
    // Lose the first; deliver the rest: the server SACKs them.
    let mut acks = Vec::new();
    for d in &burst[1..] {
        server.handle_datagram(t, d).expect("data");
        acks.extend(transmits(&mut server, t));
    }
    let last = decode(acks.last().expect("acks"));
    let sack = last.sack.expect("sack of the packets past the hole");
    assert_eq!(sack.acked().count(), burst.len() - 1);
    let fast_before = client.stats().fast_retransmits;
    let mut resent = Vec::new();
    for a in &acks {
        client.handle_datagram(t, a).expect("ack");
        resent.extend(transmits(&mut client, t));
    }
    assert!(client.stats().fast_retransmits > fast_before);
    assert!(
        resent
            .iter()
            .any(|d| decode(d).header.seq_nr == decode(&burst[0]).header.seq_nr),
        "the hole is retransmitted before any timeout"
    );
}

#[quickcheck_macros::quickcheck]
fn arbitrary_datagrams_never_panic(datagrams: Vec<(u8, Vec<u8>)>) -> bool {
    let now = Instant::now();
    let (mut client, mut server) = connected(now);
    client.write(&[1; 5000]);
    let mut t = now;
    for (i, (kind, mut d)) in datagrams.into_iter().enumerate() {
        // Half of them get a valid-looking first byte and connection id.
        if kind % 2 == 0 && d.len() >= 4 {
            d[0] = (kind % 5) << 4 | 1;
            d[2..4].copy_from_slice(&client.recv_id().to_be_bytes());
        }
        let _ = client.handle_datagram(t, &d);
        let _ = server.handle_datagram(t, &d);
        t += Duration::from_millis(u64::from(kind));
        if i % 3 == 0 {
            client.handle_timeout(t);
        }
        exchange(&mut client, &mut server, t);
    }
    client.readable_len() <= Config::default().recv_buffer_size
}

#[test]
fn sequence_numbers_wrap_during_a_transfer() {
    let now = Instant::now();
    let mut client = Connection::connect(cfg(1), now);
    let syn = transmits(&mut client, now).remove(0);
    // Find a server seed whose initial sequence number is just below the 16-bit wrap.
    let mut server = (0..=u16::MAX)
        .find_map(|i| {
            let mut seed = [9; 32];
            seed[..2].copy_from_slice(&i.to_le_bytes());
            let config = Config {
                rng_seed: seed,
                ..Config::default()
            };
            let mut s = Connection::accept(config, now, &syn).ok()?;
            let state = transmits(&mut s, now);
            (decode(&state[0]).header.seq_nr > 65_300).then(|| {
                client.handle_datagram(now, &state[0]).expect("syn-ack");
                s
            })
        })
        .expect("some seed gives a high sequence number");
    let data: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8).collect();
    let mut written = 0;
    let mut got = Vec::new();
    let mut t = now;
    let mut buf = vec![0; 1 << 16];
    for _ in 0..100_000 {
        written += server.write(&data[written..]);
        exchange(&mut server, &mut client, t);
        loop {
            let n = client.read(&mut buf);
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        if got.len() == data.len() {
            break;
        }
        t += Duration::from_millis(5);
        server.handle_timeout(t);
        client.handle_timeout(t);
    }
    assert!(got == data, "{} of {} bytes", got.len(), data.len());
    assert_eq!(server.stats().retransmits, 0);
}

/// An MTU probe's padding is skipped by the decoder: the payload is intact and the
/// encoded length is exactly the probe size.
#[test]
fn padded_packet_decodes_to_the_same_payload() {
    use lt_utp::{Header, Packet, PacketType, SelectiveAck};
    for padding in [0, 2, 3, 200, 256, 257, 258, 600] {
        for sack in [None, Some(SelectiveAck::new(4))] {
            let p = Packet {
                header: Header {
                    ty: PacketType::Data,
                    connection_id: 9,
                    timestamp_us: 1,
                    timestamp_diff_us: 2,
                    wnd_size: 3,
                    seq_nr: 4,
                    ack_nr: 5,
                },
                sack,
                payload: b"payload",
            };
            let mut out = Vec::new();
            p.encode_padded(&mut out, padding);
            let expect = if padding == 1 { 0 } else { padding };
            assert_eq!(out.len(), p.encoded_len() + expect, "padding {padding}");
            let d = Packet::decode(&out).expect("decodes");
            assert_eq!((d.header, d.sack, d.payload), (p.header, p.sack, p.payload));
        }
    }
}

/// Regression (libtorrent interop): a window advertised small (but not below one of our
/// packets) and then reopened by the reader must be announced at once; libtorrent, whose
/// packets can be larger than that small window, waits for an update and never probes.
#[test]
fn reopened_window_is_announced() {
    let now = Instant::now();
    let (mut client, mut server) = connected(now);
    // Fill the server's receive buffer to within ~4 KB of full.
    let total = lt_utp::limits::DEFAULT_RECV_BUFFER - 4000;
    let data = vec![7u8; total];
    let mut written = 0;
    for _ in 0..10_000 {
        if written < total {
            written += client.write(&data[written..]);
        }
        let t = now + Duration::from_millis(1);
        exchange(&mut client, &mut server, t);
        if server.readable_len() >= total {
            break;
        }
    }
    assert_eq!(server.readable_len(), total);
    let _ = events(&mut server);
    // Everything acknowledged: the last advertised window is ~4000 bytes.
    exchange(&mut client, &mut server, now + Duration::from_secs(1));
    assert!(transmits(&mut server, now + Duration::from_secs(1)).is_empty());
    let mut buf = vec![0u8; total];
    assert_eq!(server.read(&mut buf), total);
    let update = transmits(&mut server, now + Duration::from_secs(1));
    assert_eq!(update.len(), 1, "a window update is sent");
    let p = decode(&update[0]);
    assert_eq!(p.header.ty, PacketType::State);
    assert_eq!(
        p.header.wnd_size as usize,
        lt_utp::limits::DEFAULT_RECV_BUFFER
    );
}

/// A window that closed (under one packet free) and reopens is announced again and again
/// while the peer sends nothing: libtorrent's sender never probes a closed window, so one
/// lost update would stall it for good. The repeats back off, and stop once data comes.
#[test]
fn a_lost_window_update_is_repeated_until_data_comes() {
    let now = Instant::now();
    let (mut client, mut server) = connected(now);
    let total = lt_utp::limits::DEFAULT_RECV_BUFFER - 500;
    let data = vec![7u8; total];
    let mut written = 0;
    for _ in 0..10_000 {
        if written < total {
            written += client.write(&data[written..]);
        }
        exchange(&mut client, &mut server, now + Duration::from_millis(1));
        if server.readable_len() >= total {
            break;
        }
    }
    assert_eq!(server.readable_len(), total);
    let t0 = now + Duration::from_secs(1);
    exchange(&mut client, &mut server, t0);
    let mut buf = vec![0u8; total];
    assert_eq!(server.read(&mut buf), total);
    // The update and its repeats are all lost; each comes later than the one before.
    let mut at = t0;
    let mut gaps = Vec::new();
    for _ in 0..4 {
        let sent = transmits(&mut server, at);
        assert_eq!(sent.len(), 1, "a window update at {:?}", at - t0);
        let p = decode(&sent[0]);
        assert_eq!(p.header.ty, PacketType::State);
        assert!(p.header.wnd_size as usize >= total);
        let next = server.poll_timeout().expect("a timer");
        assert!(next > at, "the repeat is scheduled later");
        gaps.push(next - at);
        server.handle_timeout(next);
        at = next;
    }
    assert!(gaps.windows(2).all(|w| w[1] > w[0]), "backs off: {gaps:?}");
    // The last one arrives: the client sends again, and the repeats stop.
    client.write(b"more");
    exchange(&mut client, &mut server, at);
    let acked = at + Duration::from_millis(200);
    server.handle_timeout(acked);
    exchange(&mut client, &mut server, acked);
    let quiet_until = acked + Duration::from_secs(10);
    let mut after = Vec::new();
    while let Some(next) = server.poll_timeout().filter(|&t| t < quiet_until) {
        server.handle_timeout(next);
        after.extend(transmits(&mut server, next));
    }
    assert!(after.is_empty(), "{} packets after data came", after.len());
}

/// In a transfer towards us the peer sends data, not ST_STATE: once our oldest packet is
/// overdue (1.5 RTT), three of its data packets still not acknowledging it trigger a fast
/// retransmit instead of a wait for the retransmission timeout.
#[test]
fn peer_data_counts_as_duplicate_acks_once_overdue() {
    let t0 = Instant::now();
    let (mut client, mut server) = connected(t0);
    // An RTT sample of about 200 ms.
    assert_eq!(client.write(b"hello"), 5);
    for d in transmits(&mut client, t0) {
        server.handle_datagram(t0, &d).expect("data");
    }
    let t1 = t0 + Duration::from_millis(200);
    for d in transmits(&mut server, t1) {
        client.handle_datagram(t1, &d).expect("ack");
    }
    assert!(client.rtt().is_some());
    // This one is lost.
    assert_eq!(client.write(b"lost"), 4);
    let lost = transmits(&mut client, t1);
    assert_eq!(lost.len(), 1);
    // 400 ms later (before the RTO of at least 500 ms) the server streams data.
    let t2 = t1 + Duration::from_millis(400);
    let big = vec![9u8; 8 * server.max_payload()];
    assert_eq!(server.write(&big), big.len());
    let mut resent = false;
    for _ in 0..20 {
        for d in transmits(&mut server, t2) {
            let _ = client.handle_datagram(t2, &d);
        }
        for d in transmits(&mut client, t2) {
            resent |= decode(&d).payload == b"lost";
            let _ = server.handle_datagram(t2, &d);
        }
        if resent {
            break;
        }
    }
    assert!(
        resent,
        "fast retransmit before the RTO: {:?}",
        client.stats()
    );
    assert_eq!(client.stats().timeouts, 0);
    assert_eq!(client.stats().fast_retransmits, 1);
}
