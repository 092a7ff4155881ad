//! One `Dht` node driven by hand-written KRPC queries: answers, tokens, peer store caps,
//! rate limiting, read-only mode, timeouts.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lt_core::Sha1Hash;
use lt_dht::{Body, Config, Dht, Event, Item, Message, MutableItem, PutItem, Query, Response};

fn config() -> Config {
    Config {
        rng_seed: Some([1; 32]),
        id: Some(Sha1Hash::new([0x80; 20])),
        ..Config::default()
    }
}

fn query(tid: u8, q: Query) -> Vec<u8> {
    Message {
        tid: vec![tid],
        version: None,
        read_only: false,
        ip: None,
        body: Body::Query(q),
    }
    .encode()
}

/// The next answer, skipping the node's own queries (maintenance pings).
fn reply(dht: &mut Dht) -> Option<Message> {
    while let Some(t) = dht.poll_transmit() {
        let m = Message::decode(&t.payload).unwrap();
        if !matches!(m.body, Body::Query(_)) {
            return Some(m);
        }
    }
    None
}

fn response(m: Option<Message>) -> Response {
    match m.map(|m| m.body) {
        Some(Body::Response(r)) => r,
        other => panic!("expected a response, got {other:?}"),
    }
}

fn addr(i: u32) -> SocketAddr {
    let [_, _, a, b] = i.to_be_bytes();
    SocketAddr::from(([10, 0, a, b], 6881))
}

fn get_token(dht: &mut Dht, now: Instant, from: SocketAddr, ih: Sha1Hash) -> Vec<u8> {
    let id = Sha1Hash::new([7; 20]);
    dht.handle_datagram(
        now,
        from,
        &query(
            1,
            Query::GetPeers {
                id,
                info_hash: ih,
                noseed: false,
                scrape: false,
            },
        ),
    );
    response(reply(dht)).token.unwrap()
}

#[test]
fn answers_ping_and_find_node_and_learns_the_querier() {
    let now = Instant::now();
    let mut dht = Dht::new(config(), now);
    let id = Sha1Hash::new([1; 20]);
    dht.handle_datagram(now, addr(1), &query(9, Query::Ping { id }));
    let mut verify = None;
    let mut answer = None;
    while let Some(t) = dht.poll_transmit() {
        let m = Message::decode(&t.payload).unwrap();
        match m.body {
            Body::Query(Query::Ping { .. }) => verify = Some(m.tid),
            _ => answer = Some(m),
        }
    }
    let m = answer.unwrap();
    assert_eq!(m.tid, vec![9]);
    assert_eq!(m.ip, Some(addr(1)), "BEP 42 ip echoed");
    assert_eq!(response(Some(m)).id, dht.id());
    assert_eq!(dht.routing_table().len(), 1);
    // The new querier is unverified: it is pinged and not handed out until it answers.
    let find = |tid| {
        query(
            tid,
            Query::FindNode {
                id: Sha1Hash::new([2; 20]),
                target: id,
            },
        )
    };
    dht.handle_datagram(now, addr(2), &find(3));
    assert!(response(reply(&mut dht)).nodes.iter().all(|n| n.id != id));
    let pong = Message {
        tid: verify.unwrap(),
        version: None,
        read_only: false,
        ip: None,
        body: Body::Response(Response::new(id)),
    };
    dht.handle_datagram(now, addr(1), &pong.encode());
    dht.handle_datagram(
        now,
        addr(2),
        &query(
            3,
            Query::FindNode {
                id: Sha1Hash::new([2; 20]),
                target: id,
            },
        ),
    );
    let r = response(reply(&mut dht));
    assert_eq!(r.nodes[0].id, id);
}

#[test]
fn announce_needs_a_valid_token_and_tokens_survive_one_rotation() {
    let t0 = Instant::now();
    let mut dht = Dht::new(config(), t0);
    let ih = Sha1Hash::new([5; 20]);
    let id = Sha1Hash::new([7; 20]);
    let token = get_token(&mut dht, t0, addr(1), ih);
    let ann = |token: Vec<u8>, implied_port| {
        query(
            2,
            Query::AnnouncePeer {
                id,
                info_hash: ih,
                port: 7000,
                implied_port,
                token,
                seed: false,
            },
        )
    };
    // A token given to another IP is refused with a protocol error.
    dht.handle_datagram(t0, addr(2), &ann(token.clone(), false));
    assert!(matches!(
        reply(&mut dht).unwrap().body,
        Body::Error { code: 203, .. }
    ));
    dht.handle_datagram(t0, addr(1), &ann(token.clone(), false));
    response(reply(&mut dht));
    assert_eq!(
        dht.stored_peers(&ih).collect::<Vec<_>>(),
        vec![SocketAddr::new(addr(1).ip(), 7000)]
    );
    // After one rotation the old token still works, after two it does not.
    let mut now = t0;
    for _ in 0..6 {
        now += Duration::from_secs(60);
        dht.handle_timeout(now);
    }
    dht.handle_datagram(now, addr(1), &ann(token.clone(), true));
    response(reply(&mut dht));
    for _ in 0..5 {
        now += Duration::from_secs(60);
        dht.handle_timeout(now);
    }
    dht.handle_datagram(now, addr(1), &ann(token, true));
    assert!(matches!(
        reply(&mut dht).unwrap().body,
        Body::Error { code: 203, .. }
    ));
    // get_peers returns the stored peer (implied port: the UDP source port).
    let id2 = Sha1Hash::new([8; 20]);
    dht.handle_datagram(
        now,
        addr(3),
        &query(
            4,
            Query::GetPeers {
                id: id2,
                info_hash: ih,
                noseed: false,
                scrape: false,
            },
        ),
    );
    let r = response(reply(&mut dht));
    assert!(r.values.contains(&addr(1)), "{:?}", r.values);
    // Peers expire after the TTL (30 minutes).
    for _ in 0..31 {
        now += Duration::from_secs(60);
        dht.handle_timeout(now);
    }
    assert_eq!(dht.stored_info_hashes(), 0);
}

#[test]
fn peer_store_is_bounded() {
    let now = Instant::now();
    let cfg = Config {
        max_info_hashes: 3,
        max_peers_per_info_hash: 4,
        queries_per_ip_per_second: 1000,
        ..config()
    };
    let mut dht = Dht::new(cfg, now);
    let id = Sha1Hash::new([7; 20]);
    for h in 0..10u8 {
        let ih = Sha1Hash::new([h; 20]);
        for p in 0..10u32 {
            let from = addr(p);
            let token = get_token(&mut dht, now, from, ih);
            let q = Query::AnnouncePeer {
                id,
                info_hash: ih,
                port: 1000,
                implied_port: false,
                token,
                seed: false,
            };
            dht.handle_datagram(now, from, &query(2, q));
            let _ = reply(&mut dht);
        }
    }
    assert_eq!(dht.stored_info_hashes(), 3);
    assert_eq!(dht.stored_peers(&Sha1Hash::new([0; 20])).count(), 4);
    // BEP 51: the stored info-hashes are sampled.
    dht.handle_datagram(
        now,
        addr(1),
        &query(5, Query::SampleInfohashes { id, target: id }),
    );
    let r = response(reply(&mut dht));
    assert_eq!((r.samples.len(), r.num), (3, Some(3)));
}

#[test]
fn queries_are_rate_limited_per_source_ip() {
    let now = Instant::now();
    let cfg = Config {
        queries_per_ip_per_second: 5,
        max_rate_limit_entries: 10,
        ..config()
    };
    let mut dht = Dht::new(cfg, now);
    let id = Sha1Hash::new([1; 20]);
    let mut answered = 0;
    for _ in 0..50 {
        dht.handle_datagram(now, addr(1), &query(1, Query::Ping { id }));
        answered += usize::from(reply(&mut dht).is_some());
    }
    assert_eq!(answered, 5);
    // Another source is still served; a second later the first is served again.
    dht.handle_datagram(now, addr(2), &query(1, Query::Ping { id }));
    assert!(reply(&mut dht).is_some());
    // A second later the first source is served again.
    let later = now + Duration::from_secs(1);
    dht.handle_datagram(later, addr(1), &query(1, Query::Ping { id }));
    assert!(reply(&mut dht).is_some());
    assert!(dht.routing_table().len() <= 160 * 8);
}

#[test]
fn read_only_node_stays_silent_and_marks_queries() {
    let now = Instant::now();
    let mut dht = Dht::new(
        Config {
            read_only: true,
            ..config()
        },
        now,
    );
    dht.handle_datagram(
        now,
        addr(1),
        &query(
            1,
            Query::Ping {
                id: Sha1Hash::new([1; 20]),
            },
        ),
    );
    assert!(dht.poll_transmit().is_none());
    dht.add_router(addr(9));
    dht.bootstrap(now).unwrap();
    let m = Message::decode(&dht.poll_transmit().unwrap().payload).unwrap();
    assert!(m.read_only);
    assert!(matches!(m.body, Body::Query(Query::FindNode { .. })));
}

#[test]
fn unanswered_bootstrap_times_out_and_reports() {
    let now = Instant::now();
    let mut dht = Dht::new(config(), now);
    dht.add_router(addr(9));
    dht.bootstrap(now).unwrap();
    assert!(dht.poll_transmit().is_some());
    let deadline = dht.poll_timeout().unwrap();
    assert_eq!(deadline, now + Duration::from_secs(5));
    dht.handle_timeout(deadline);
    assert!(matches!(
        dht.poll_event(),
        Some(Event::LookupDone { messages: 1, .. })
    ));
    assert_eq!(dht.poll_event(), Some(Event::BootstrapDone { nodes: 0 }));
    // A reply that arrives late, or from the wrong address, is ignored.
    let late = Message {
        tid: vec![0, 0],
        version: None,
        read_only: false,
        ip: None,
        body: Body::Response(Response::new(Sha1Hash::new([3; 20]))),
    };
    dht.handle_datagram(deadline, addr(9), &late.encode());
    assert!(dht.routing_table().is_empty());
    dht.handle_datagram(deadline, addr(9), b"garbage");
    assert!(dht.poll_event().is_none());
}

#[test]
fn malformed_queries_get_krpc_errors() {
    let now = Instant::now();
    let mut dht = Dht::new(config(), now);
    dht.handle_datagram(
        now,
        addr(1),
        b"d1:ad2:id20:abcdefghij0123456789e1:q3:foo1:t2:xy1:y1:qe",
    );
    let m = reply(&mut dht).unwrap();
    assert_eq!(m.tid, b"xy");
    assert!(matches!(m.body, Body::Error { code: 204, .. }));
    // find_node without a target: protocol error.
    dht.handle_datagram(
        now,
        addr(1),
        b"d1:ad2:id20:abcdefghij0123456789e1:q9:find_node1:t2:zz1:y1:qe",
    );
    let m = reply(&mut dht).unwrap();
    assert_eq!(m.tid, b"zz");
    assert!(matches!(m.body, Body::Error { code: 203, .. }));
    // Broken replies and non-dictionaries get nothing.
    dht.handle_datagram(now, addr(1), b"d1:rd2:id1:xe1:t2:aa1:y1:re");
    dht.handle_datagram(now, addr(1), b"i42e");
    assert!(dht.poll_transmit().is_none());
}

#[test]
fn external_ip_gives_a_bep42_id() {
    let now = Instant::now();
    let ip: std::net::IpAddr = "124.31.75.21".parse().unwrap();
    let dht = Dht::new(
        Config {
            external_ip: Some(ip),
            rng_seed: Some([9; 32]),
            ..Config::default()
        },
        now,
    );
    assert!(lt_dht::routing::bep42_valid(&dht.id(), ip));
}

/// 100,000 queries from 100,000 spoofed-looking sources over ten virtual seconds: memory
/// stays bounded, replies stay small relative to the queries, and a legitimate source
/// querying in the middle of the flood is answered.
#[test]
fn flood_from_many_sources_keeps_memory_bounded_and_legit_answered() {
    let t0 = Instant::now();
    let mut dht = Dht::new(config(), t0);
    let mut bytes_in = 0usize;
    let mut bytes_out = 0usize;
    let mut legit_answered = 0;
    for i in 0..100_000u32 {
        let now = t0 + Duration::from_micros(u64::from(i) * 100);
        let from = SocketAddr::from((std::net::Ipv4Addr::from(0x0b00_0000 + i), 6881));
        let mut idb = [0u8; 20];
        idb[..4].copy_from_slice(&i.to_be_bytes());
        idb[4..8].copy_from_slice(&i.wrapping_mul(2_654_435_761).to_be_bytes());
        let id = Sha1Hash::new(idb);
        let q = match i % 3 {
            0 => Query::Ping { id },
            1 => Query::FindNode { id, target: id },
            _ => Query::GetPeers {
                id,
                info_hash: id,
                noseed: false,
                scrape: false,
            },
        };
        let buf = query(1, q);
        bytes_in += buf.len();
        dht.handle_datagram(now, from, &buf);
        while let Some(t) = dht.poll_transmit() {
            bytes_out += t.payload.len();
        }
        if i % 10_000 == 5_000 {
            let legit = query(
                7,
                Query::FindNode {
                    id: Sha1Hash::new([9; 20]),
                    target: id,
                },
            );
            dht.handle_datagram(now, addr(1), &legit);
            legit_answered += usize::from(reply(&mut dht).is_some());
        }
        dht.handle_timeout(now);
    }
    let table = dht.routing_table().len();
    eprintln!(
        "flood: 100000 queries, {bytes_in} bytes in, {bytes_out} bytes out (x{:.2}), table {table}, legit {legit_answered}/10",
        bytes_out as f64 / bytes_in as f64
    );
    assert!(table <= 160 * 8);
    assert_eq!(legit_answered, 10);
    assert!(
        bytes_out < 4 * bytes_in,
        "amplification: {bytes_out} out for {bytes_in} in"
    );
}

fn put(token: Vec<u8>, item: PutItem) -> Vec<u8> {
    query(
        4,
        Query::Put {
            id: Sha1Hash::new([7; 20]),
            token,
            item,
        },
    )
}

fn error_code(m: Option<Message>) -> i64 {
    match m.map(|m| m.body) {
        Some(Body::Error { code, .. }) => code,
        other => panic!("expected an error, got {other:?}"),
    }
}

fn signed(secret: &[u8; 32], seq: i64, v: &[u8], cas: Option<i64>) -> PutItem {
    let m = MutableItem::sign(secret, b"", seq, v).unwrap();
    PutItem {
        v: m.v,
        k: Some(m.k),
        sig: Some(m.sig),
        seq: Some(m.seq),
        cas,
        salt: None,
    }
}

/// BEP 44 errors: bad token, bad signature (206), CAS mismatch (301), older seq (302),
/// oversized value (205); `get` with `seq` omits an item that is not newer; the store is
/// capped.
#[test]
fn bep44_put_errors_get_with_seq_and_store_cap() {
    let now = Instant::now();
    let cfg = Config {
        max_stored_items: 3,
        queries_per_ip_per_second: 1000,
        ..config()
    };
    let mut dht = Dht::new(cfg, now);
    let from = addr(1);
    let target = Sha1Hash::new([9; 20]);
    let token = get_token(&mut dht, now, from, target);
    let secret = [5u8; 32];

    dht.handle_datagram(
        now,
        from,
        &put(b"forged".to_vec(), signed(&secret, 1, b"1:a", None)),
    );
    assert_eq!(error_code(reply(&mut dht)), 203);
    let mut bad = signed(&secret, 1, b"1:a", None);
    bad.seq = Some(2);
    dht.handle_datagram(now, from, &put(token.clone(), bad));
    assert_eq!(error_code(reply(&mut dht)), 206);
    dht.handle_datagram(
        now,
        from,
        &put(token.clone(), signed(&secret, 5, b"1:a", None)),
    );
    response(reply(&mut dht));
    dht.handle_datagram(
        now,
        from,
        &put(token.clone(), signed(&secret, 6, b"1:b", Some(4))),
    );
    assert_eq!(error_code(reply(&mut dht)), 301);
    dht.handle_datagram(
        now,
        from,
        &put(token.clone(), signed(&secret, 4, b"1:c", None)),
    );
    assert_eq!(error_code(reply(&mut dht)), 302);
    dht.handle_datagram(
        now,
        from,
        &put(token.clone(), signed(&secret, 6, b"1:d", Some(5))),
    );
    response(reply(&mut dht));
    let k = lt_dht::item::public_key(&secret);
    let key = lt_dht::item::mutable_target(&k, b"");
    assert!(matches!(dht.stored_item(&key), Some(Item::Mutable(m)) if m.seq == 6));

    // get with seq: the value only when ours is newer.
    let get = |seq| {
        query(
            6,
            Query::Get {
                id: Sha1Hash::new([7; 20]),
                target: key,
                seq,
            },
        )
    };
    dht.handle_datagram(now, from, &get(Some(6)));
    let r = response(reply(&mut dht));
    assert_eq!((r.seq, r.v.is_none()), (Some(6), true));
    dht.handle_datagram(now, from, &get(Some(5)));
    let r = response(reply(&mut dht));
    assert_eq!(r.v.as_deref(), Some(&b"1:d"[..]));
    assert!(r.token.is_some());

    // A value over 1000 bytes is refused by the codec with 205.
    let long = format!("1001:{}", "x".repeat(1001));
    let immutable = |v: &[u8]| PutItem {
        v: v.to_vec(),
        k: None,
        sig: None,
        seq: None,
        cas: None,
        salt: None,
    };
    dht.handle_datagram(now, from, &put(token.clone(), immutable(long.as_bytes())));
    assert_eq!(error_code(reply(&mut dht)), 205);

    // The store keeps at most 3 items, dropping the oldest.
    for i in 0..10u8 {
        let v = format!("1:{}", char::from(b'a' + i));
        let later = now + Duration::from_secs(u64::from(i) + 1);
        dht.handle_datagram(later, from, &put(token.clone(), immutable(v.as_bytes())));
        response(reply(&mut dht));
    }
    assert_eq!(dht.stored_items(), 3);
    assert!(
        dht.stored_item(&lt_dht::item::immutable_target(b"1:j"))
            .is_some()
    );
    assert!(dht.stored_item(&key).is_none(), "the oldest item made room");
}

/// BEP 42: the external address becomes known once most recent responders agree on it;
/// replies to queries we never sent do not vote.
#[test]
fn external_address_from_responder_votes() {
    let now = Instant::now();
    let mut dht = Dht::new(config(), now);
    let seen: SocketAddr = "203.0.113.7:6881".parse().unwrap();
    // Unsolicited replies carry no weight.
    for i in 0..10 {
        let m = Message {
            tid: vec![0, 1],
            version: None,
            read_only: false,
            ip: Some(seen),
            body: Body::Response(Response::new(Sha1Hash::new([i; 20]))),
        };
        dht.handle_datagram(now, addr(u32::from(i) + 1), &m.encode());
    }
    assert_eq!(dht.external_addr(), None);
    for i in 1..=6u32 {
        dht.add_node(now, addr(i));
    }
    let mut events = Vec::new();
    let pings: Vec<_> = std::iter::from_fn(|| dht.poll_transmit()).collect();
    for (n, t) in pings.iter().enumerate() {
        let q = Message::decode(&t.payload).unwrap();
        let pong = Message {
            tid: q.tid,
            version: None,
            read_only: false,
            ip: Some(seen),
            body: Body::Response(Response::new(Sha1Hash::new(
                [u8::try_from(n).unwrap() + 1; 20],
            ))),
        };
        dht.handle_datagram(now, t.dest, &pong.encode());
        events.extend(std::iter::from_fn(|| dht.poll_event()));
        assert_eq!(
            dht.external_addr().is_some(),
            n + 1 >= 5,
            "after {} votes",
            n + 1
        );
    }
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, Event::ExternalAddress { addr } if *addr == seen))
            .count(),
        1
    );
    // BEP 42: the fixed id did not conform to 203.0.113.7; a conforming one replaced it
    // and the table kept its nodes around the new id.
    assert!(lt_dht::routing::bep42_valid(&dht.id(), seen.ip()));
    assert_ne!(dht.id(), Sha1Hash::new([0x80; 20]));
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::NodeIdChanged { id } if *id == dht.id()))
    );
    assert_eq!(dht.routing_table().len(), 6);
    assert_eq!(dht.routing_table().own_id(), dht.id());
}

/// A bootstrap with no router and an empty table finishes at once and still reports.
#[test]
fn lonely_bootstrap_reports_done() {
    let now = Instant::now();
    let mut dht = Dht::new(config(), now);
    dht.bootstrap(now).unwrap();
    let events: Vec<Event> = std::iter::from_fn(|| dht.poll_event()).collect();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::BootstrapDone { nodes: 0 })),
        "{events:?}"
    );
}

/// Worst-case reply sizes against the smallest queries that invite them: a full
/// `get_peers` (8 nodes, 50 values, token) and a `get` of a 1000-byte item. With the per-IP
/// rate limit this bounds what a spoofed source can make us send to a victim.
#[test]
fn worst_case_replies_stay_within_a_small_factor_of_the_query() {
    let now = Instant::now();
    let cfg = Config {
        queries_per_ip_per_second: 100_000,
        ..config()
    };
    let mut dht = Dht::new(cfg, now);
    // A table with confirmed nodes (they answer our verification pings).
    for i in 0..64u32 {
        let id = Sha1Hash::digest(&i.to_be_bytes());
        dht.handle_datagram(now, addr(1000 + i), &query(1, Query::Ping { id }));
        while let Some(t) = dht.poll_transmit() {
            let m = Message::decode(&t.payload).unwrap();
            if let Body::Query(Query::Ping { .. }) = m.body {
                let pong = Message {
                    tid: m.tid,
                    version: None,
                    read_only: false,
                    ip: None,
                    body: Body::Response(Response::new(id)),
                };
                dht.handle_datagram(now, t.dest, &pong.encode());
            }
        }
    }
    // 200 peers for one info-hash, and a 1000-byte item.
    let ih = Sha1Hash::new([0xee; 20]);
    for p in 0..200u32 {
        let from = addr(5000 + p);
        let token = get_token(&mut dht, now, from, ih);
        let ann = Query::AnnouncePeer {
            id: Sha1Hash::new([7; 20]),
            info_hash: ih,
            port: 1,
            implied_port: true,
            token,
            seed: false,
        };
        dht.handle_datagram(now, from, &query(2, ann));
        while dht.poll_transmit().is_some() {}
    }
    let v = format!("996:{}", "x".repeat(996)).into_bytes();
    assert_eq!(v.len(), 1000);
    let token = get_token(&mut dht, now, addr(1), ih);
    let item = PutItem {
        v: v.clone(),
        k: None,
        sig: None,
        seq: None,
        cas: None,
        salt: None,
    };
    dht.handle_datagram(now, addr(1), &put(token, item));
    response(reply(&mut dht));

    let id = Sha1Hash::new([3; 20]);
    let cases = [
        ("ping", Query::Ping { id }),
        ("find_node", Query::FindNode { id, target: ih }),
        (
            "get_peers",
            Query::GetPeers {
                id,
                info_hash: ih,
                noseed: false,
                scrape: false,
            },
        ),
        (
            "get",
            Query::Get {
                id,
                target: lt_dht::item::immutable_target(&v),
                seq: None,
            },
        ),
    ];
    for (name, q) in cases {
        let buf = query(1, q);
        dht.handle_datagram(now, addr(2), &buf);
        let out = dht
            .poll_transmit()
            .into_iter()
            .chain(std::iter::from_fn(|| dht.poll_transmit()))
            .map(|t| t.payload.len())
            .max()
            .unwrap();
        let factor = out as f64 / buf.len() as f64;
        eprintln!(
            "{name}: query {} bytes, reply {out} bytes (x{factor:.1})",
            buf.len()
        );
        assert!(out <= lt_dht::limits::MAX_MESSAGE_LEN);
        assert!(factor < 16.0, "{name}: x{factor:.1}");
    }
}

/// BEP 33 on one node: `seed=1` announces go to `BFsd`, others to `BFpe`; `noseed` leaves
/// seeds out of `values`.
#[test]
fn bep33_filters_and_noseed() {
    let now = Instant::now();
    let cfg = Config {
        queries_per_ip_per_second: 1000,
        ..config()
    };
    let mut dht = Dht::new(cfg, now);
    let ih = Sha1Hash::new([0x33; 20]);
    for p in 1..=6u32 {
        let from = addr(p);
        let token = get_token(&mut dht, now, from, ih);
        let ann = Query::AnnouncePeer {
            id: Sha1Hash::new([7; 20]),
            info_hash: ih,
            port: 0,
            implied_port: true,
            token,
            seed: p <= 4,
        };
        dht.handle_datagram(now, from, &query(2, ann));
        response(reply(&mut dht));
    }
    let ask = |noseed, scrape| {
        query(
            3,
            Query::GetPeers {
                id: Sha1Hash::new([8; 20]),
                info_hash: ih,
                noseed,
                scrape,
            },
        )
    };
    dht.handle_datagram(now, addr(9), &ask(true, false));
    let r = response(reply(&mut dht));
    let mut values = r.values.clone();
    values.sort();
    assert_eq!(values, vec![addr(5), addr(6)], "noseed: downloaders only");
    assert!(r.bf_seeds.is_none());
    dht.handle_datagram(now, addr(9), &ask(false, true));
    let r = response(reply(&mut dht));
    assert_eq!(r.values.len(), 6);
    assert_eq!(r.bf_seeds.unwrap().estimate(), 4);
    assert_eq!(r.bf_peers.unwrap().estimate(), 2);
}

/// Issue 18, finding 10: one IP with one token filled the whole peer store (5,000
/// info-hashes). Now its entries are capped, and other hosts' announces are still stored.
#[test]
fn one_ip_cannot_fill_the_peer_store() {
    let now = Instant::now();
    let cfg = Config {
        queries_per_ip_per_second: 1_000_000,
        ..config()
    };
    let mut dht = Dht::new(cfg, now);
    let announce = |dht: &mut Dht, from: SocketAddr, ih: Sha1Hash, token: Vec<u8>| {
        let q = Query::AnnouncePeer {
            id: Sha1Hash::new([7; 20]),
            info_hash: ih,
            port: 0,
            implied_port: true,
            token,
            seed: false,
        };
        dht.handle_datagram(now, from, &query(2, q));
        response(reply(dht));
    };
    let attacker = SocketAddr::from(([203, 0, 113, 5], 6881));
    let token = get_token(&mut dht, now, attacker, Sha1Hash::ZERO);
    for i in 0..6_000u32 {
        let mut h = [0u8; 20];
        h[..4].copy_from_slice(&i.to_be_bytes());
        announce(&mut dht, attacker, Sha1Hash::new(h), token.clone());
    }
    let quota = lt_dht::limits::DEFAULT_MAX_ANNOUNCES_PER_IP;
    assert_eq!(dht.stored_info_hashes(), quota);
    // A repeated announce still refreshes; another host still gets in.
    announce(&mut dht, attacker, Sha1Hash::new([0; 20]), token);
    let honest = SocketAddr::from(([198, 51, 100, 7], 51413));
    let ih = Sha1Hash::new([0xee; 20]);
    let token = get_token(&mut dht, now, honest, ih);
    announce(&mut dht, honest, ih, token);
    assert_eq!(dht.stored_peers(&ih).collect::<Vec<_>>(), [honest]);
    assert_eq!(dht.stored_info_hashes(), quota + 1);
}

/// Issue 18, finding 10: 1,000 BEP 44 puts from one IP flushed every other item. Now an IP
/// past its quota only replaces its own oldest items.
#[test]
fn one_ip_cannot_flush_the_item_store() {
    let now = Instant::now();
    let cfg = Config {
        queries_per_ip_per_second: 1_000_000,
        ..config()
    };
    let mut dht = Dht::new(cfg, now);
    let immutable = |v: &[u8]| PutItem {
        v: v.to_vec(),
        k: None,
        sig: None,
        seq: None,
        cas: None,
        salt: None,
    };
    let honest = SocketAddr::from(([198, 51, 100, 7], 6881));
    let token = get_token(&mut dht, now, honest, Sha1Hash::ZERO);
    dht.handle_datagram(now, honest, &put(token, immutable(b"5:hello")));
    response(reply(&mut dht));
    let attacker = SocketAddr::from(([203, 0, 113, 5], 6881));
    let token = get_token(&mut dht, now, attacker, Sha1Hash::ZERO);
    for i in 0..1_500u32 {
        let v = format!("i{i}e");
        let later = now + Duration::from_millis(u64::from(i) + 1);
        dht.handle_datagram(
            later,
            attacker,
            &put(token.clone(), immutable(v.as_bytes())),
        );
        response(reply(&mut dht));
    }
    let quota = lt_dht::limits::DEFAULT_MAX_ITEMS_PER_IP;
    assert_eq!(dht.stored_items(), quota + 1);
    assert!(
        dht.stored_item(&lt_dht::item::immutable_target(b"5:hello"))
            .is_some(),
        "the honest item was flushed"
    );
    // The attacker keeps only its newest items.
    assert!(
        dht.stored_item(&lt_dht::item::immutable_target(b"i1499e"))
            .is_some()
    );
    assert!(
        dht.stored_item(&lt_dht::item::immutable_target(b"i0e"))
            .is_none()
    );
}
