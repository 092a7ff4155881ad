//! The tokio driver on loopback: a small network of `DhtHandle`s bootstraps, finds an
//! announced peer, round-trips BEP 44 items, runs on session-owned channels, and survives a
//! query flood from many source addresses with bounded memory.
#![cfg(feature = "tokio")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use lt_core::Sha1Hash;
use lt_dht::tokio::{Bind, DhtConfig, DhtEvent, DhtHandle};
use lt_dht::{Body, Config, DhtState, Message, Query};

const WAIT: Duration = Duration::from_secs(20);

fn config(ip: Ipv4Addr, seed: u8) -> DhtConfig {
    let mut c = DhtConfig::bind(SocketAddr::from((ip, 0)));
    c.settings = Config {
        rng_seed: Some([seed; 32]),
        query_timeout: Duration::from_secs(1),
        ..Config::default()
    };
    c.lookup_timeout = WAIT;
    c
}

/// `n` nodes on 127.0.0.(base+i), each given node 0 as a router and node 0 given the others.
async fn network(n: u8, base: u8) -> Vec<DhtHandle> {
    let first = DhtHandle::start(config(Ipv4Addr::new(127, 0, 0, base), 1)).unwrap();
    let router = first.local_addr().unwrap();
    let mut nodes = vec![first];
    for i in 1..n {
        let mut c = config(Ipv4Addr::new(127, 0, 0, base + i), i + 1);
        c.nodes.push(router);
        nodes.push(DhtHandle::start(c).unwrap());
    }
    let deadline = Instant::now() + WAIT;
    while nodes
        .iter()
        .any(|d| d.routing_table_size() < usize::from(n) / 2)
    {
        assert!(
            Instant::now() < deadline,
            "bootstrap: table sizes {:?}",
            nodes
                .iter()
                .map(DhtHandle::routing_table_size)
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    nodes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_network_announce_get_peers_and_bep44() {
    let nodes = network(8, 31).await;
    let ih = Sha1Hash::new([0x5a; 20]);
    let mut alerts = nodes[7].subscribe();
    let out = nodes[2].announce(ih, Some(7777)).await.unwrap();
    assert!(out.stored_on >= 4, "announced to {}", out.stored_on);
    // implied_port: the UDP source port of node 3 is stored.
    nodes[3].announce(ih, None).await.unwrap();
    let peers = nodes[5].get_peers(ih).await;
    // BEP 33: two downloaders (node 2 and node 3's IPs), no seed; then node 4 as a seed.
    let scrape = nodes[6].scrape(ih).await.unwrap();
    assert_eq!((scrape.seeds, scrape.downloaders), (0, 2), "{scrape:?}");
    nodes[4].announce_with(ih, Some(7000), true).await.unwrap();
    let scrape = nodes[6].scrape(ih).await.unwrap();
    assert_eq!((scrape.seeds, scrape.downloaders), (1, 2), "{scrape:?}");
    let a2 = SocketAddr::new(nodes[2].local_addr().unwrap().ip(), 7777);
    let a3 = nodes[3].local_addr().unwrap();
    assert!(peers.contains(&a2) && peers.contains(&a3), "{peers:?}");

    // Some node got an incoming announce; node 7 saw bootstrap or announce alerts.
    let mut saw = Vec::new();
    while let Ok(e) = alerts.try_recv() {
        saw.push(e);
    }
    assert!(
        saw.iter()
            .any(|e| matches!(e, DhtEvent::IncomingAnnounce { info_hash, .. } if *info_hash == ih))
            || nodes[7].get_peers(ih).await.contains(&a2),
        "{saw:?}"
    );

    // BEP 44 immutable.
    let put = nodes[1]
        .put_immutable(b"12:Hello World!".to_vec())
        .await
        .unwrap();
    assert!(put.stored_on >= 4);
    assert_eq!(
        nodes[6].get_immutable(put.target).await.as_deref(),
        Some(&b"12:Hello World!"[..])
    );
    assert_eq!(
        nodes[6].get_immutable(Sha1Hash::new([1; 20])).await,
        None,
        "absent item"
    );
    // BEP 44 mutable: seq 1, then 2 with cas.
    let secret = [7u8; 32];
    let k = lt_dht::item::public_key(&secret);
    let p1 = nodes[4]
        .put_mutable(secret, b"s".to_vec(), b"3:one".to_vec())
        .await
        .unwrap();
    assert_eq!(p1.seq, Some(1));
    let got = nodes[0].get_mutable(k, b"s".to_vec()).await.unwrap();
    assert_eq!((got.seq, got.v.as_slice()), (1, &b"3:one"[..]));
    let p2 = nodes[5]
        .put_mutable(secret, b"s".to_vec(), b"3:two".to_vec())
        .await
        .unwrap();
    assert_eq!(p2.seq, Some(2));
    let got = nodes[0].get_mutable(k, b"s".to_vec()).await.unwrap();
    assert_eq!((got.seq, got.v.as_slice()), (2, &b"3:two"[..]));
    assert!(
        nodes[0]
            .put_immutable(b"not bencode".to_vec())
            .await
            .is_err()
    );

    // The state survives a restart: same id, and the saved nodes rejoin it.
    let state = nodes[6].state().await;
    let bytes = state.to_bencode();
    let back = DhtState::from_bencode(&bytes).unwrap();
    assert_eq!(back, state);
    assert!(back.nodes.len() >= 4, "{} saved nodes", back.nodes.len());
    nodes[6].shutdown();
    let mut c = config(Ipv4Addr::new(127, 0, 0, 60), 99);
    c.state = Some(back);
    let restarted = DhtHandle::start(c).unwrap();
    assert_eq!(restarted.state().await.id, state.id);
    let deadline = Instant::now() + WAIT;
    while restarted.routing_table_size() < 4 {
        assert!(Instant::now() < deadline, "restart did not rejoin");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(restarted.get_peers(ih).await.contains(&a2));
    for n in &nodes {
        n.shutdown();
    }
}

/// The session-owned socket mode: datagrams go through channels (routed to the node of
/// their family).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_mode_talks_to_a_socket_node() {
    let nodes = network(4, 41).await;
    let socket = tokio::net::UdpSocket::bind("127.0.0.45:0").await.unwrap();
    let mut c = config(Ipv4Addr::new(127, 0, 0, 45), 50);
    c.nodes.push(nodes[0].local_addr().unwrap());
    // One node per family behind the channels; only IPv4 traffic comes here.
    c.dual_stack = true;
    let (dht, mut io) = DhtHandle::start_with_channels(c);
    let socket = std::sync::Arc::new(socket);
    let rx = socket.clone();
    let incoming = io.incoming.clone();
    let pump_in = tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = rx.recv_from(&mut buf).await {
            let _ = incoming.try_send(lt_dht::tokio::Datagram {
                addr: from,
                payload: buf[..n].to_vec(),
            });
        }
    });
    let tx = socket.clone();
    let pump_out = tokio::spawn(async move {
        while let Some(d) = io.outgoing.recv().await {
            let _ = tx.send_to(&d.payload, d.addr).await;
        }
    });
    let ih = Sha1Hash::new([0x77; 20]);
    nodes[1].announce(ih, Some(9999)).await.unwrap();
    let deadline = Instant::now() + WAIT;
    while dht.routing_table_size() < 3 {
        assert!(Instant::now() < deadline, "channel node did not join");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let peers = dht.get_peers(ih).await;
    assert!(
        peers.contains(&SocketAddr::new(nodes[1].local_addr().unwrap().ip(), 9999)),
        "{peers:?}"
    );
    dht.shutdown();
    pump_in.abort();
    pump_out.abort();
    for n in &nodes {
        n.shutdown();
    }
}

fn rss_anon_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// 100,000 queries (ping, find_node, get_peers, announce_peer with bad tokens, get, put)
/// from 250 sockets on 127.0.1.1-250, as fast as loopback takes them; the node's memory
/// stays bounded and a legitimate querier on another address is still answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flood_from_many_sources_stays_bounded_and_answers() {
    let mut c = config(Ipv4Addr::new(127, 0, 0, 70), 70);
    c.settings.max_rate_limit_entries = 4096;
    let dht = DhtHandle::start(c).unwrap();
    let target = dht.local_addr().unwrap();
    let before = rss_anon_kb();

    let flood = tokio::task::spawn_blocking(move || {
        let sockets: Vec<UdpSocket> = (1..=250u8)
            .map(|i| UdpSocket::bind((Ipv4Addr::new(127, 0, 1, i), 0)).unwrap())
            .collect();
        for s in &sockets {
            s.set_nonblocking(true).unwrap();
        }
        let mut sent = 0u32;
        let mut drained = 0u64;
        let mut buf = [0u8; 2048];
        for i in 0..100_000u32 {
            let id = Sha1Hash::digest(&i.to_be_bytes());
            let q = match i % 6 {
                0 => Query::Ping { id },
                1 => Query::FindNode { id, target: id },
                2 => Query::GetPeers {
                    id,
                    info_hash: id,
                    noseed: false,
                    scrape: false,
                },
                3 => Query::AnnouncePeer {
                    id,
                    info_hash: id,
                    port: 1,
                    implied_port: false,
                    token: b"forged".to_vec(),
                    seed: false,
                },
                4 => Query::Get {
                    id,
                    target: id,
                    seq: None,
                },
                _ => Query::Put {
                    id,
                    token: b"forged".to_vec(),
                    item: lt_dht::PutItem {
                        v: b"3:abc".to_vec(),
                        k: None,
                        sig: None,
                        seq: None,
                        cas: None,
                        salt: None,
                    },
                },
            };
            let m = Message {
                tid: i.to_be_bytes().to_vec(),
                version: None,
                read_only: false,
                ip: None,
                body: Body::Query(q),
            };
            let s = &sockets[usize::try_from(i).unwrap() % sockets.len()];
            if s.send_to(&m.encode(), target).is_ok() {
                sent += 1;
            }
            // Keep the replies from filling our receive buffers.
            while s.recv_from(&mut buf).is_ok() {
                drained += 1;
            }
            if i % 2000 == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        (sent, drained)
    });

    // A legitimate querier keeps asking during the flood.
    let legit = tokio::net::UdpSocket::bind("127.0.0.71:0").await.unwrap();
    let mut answered = 0;
    let mut asked = 0;
    let started = Instant::now();
    while !flood.is_finished() || asked < 10 {
        asked += 1;
        let ping = Message {
            tid: vec![9, u8::try_from(asked % 256).unwrap()],
            version: None,
            read_only: false,
            ip: None,
            body: Body::Query(Query::Ping {
                id: Sha1Hash::new([0x11; 20]),
            }),
        };
        // Like any KRPC client, retry a lost query (the flood can overflow the node's
        // socket buffer, and the kernel drops whatever arrives then).
        for _try in 0..3 {
            legit.send_to(&ping.encode(), target).await.unwrap();
            let mut buf = [0u8; 2048];
            if let Ok(Ok((n, _))) =
                tokio::time::timeout(Duration::from_millis(300), legit.recv_from(&mut buf)).await
                && matches!(
                    Message::decode(&buf[..n]).map(|m| m.body),
                    Ok(Body::Response(_))
                )
            {
                answered += 1;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "flood took too long"
        );
    }
    let (sent, drained) = flood.await.unwrap();
    let after = rss_anon_kb();
    let table = dht.routing_table_size();
    eprintln!(
        "dht flood: {sent} queries sent from 250 addresses, {drained} replies drained, \
         legitimate pings answered {answered}/{asked}, routing table {table}, \
         RssAnon {before} kB -> {after} kB"
    );
    assert_eq!(sent, 100_000);
    assert_eq!(answered, asked, "legit answered {answered}/{asked}");
    assert!(table <= 160 * 8);
    // The routing table, rate limiter and stores are capped; the test process as a whole
    // (tokio, sockets, test harness) must not grow by more than a few MB.
    assert!(
        after.saturating_sub(before) < 16 * 1024,
        "RssAnon grew from {before} kB to {after} kB"
    );
    dht.shutdown();
}

/// BEP 32: nodes on IPv6 sockets exchange `nodes6` and find each other's announces.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_nodes_on_loopback() {
    let v6 = |seed: u8| {
        let mut c = DhtConfig::bind("[::1]:0".parse().unwrap());
        c.settings.rng_seed = Some([seed; 32]);
        c.settings.query_timeout = Duration::from_secs(1);
        c.lookup_timeout = WAIT;
        c
    };
    let Ok(first) = DhtHandle::start(v6(1)) else {
        panic!("this test needs IPv6 on loopback (::1)");
    };
    let router = first.local_addr().unwrap();
    let mut nodes = vec![first];
    for i in 2..6 {
        let mut c = v6(i);
        c.nodes.push(router);
        nodes.push(DhtHandle::start(c).unwrap());
    }
    let deadline = Instant::now() + WAIT;
    while nodes.iter().any(|d| d.routing_table_size() < 2) {
        assert!(Instant::now() < deadline, "IPv6 bootstrap");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ih = Sha1Hash::new([0x66; 20]);
    nodes[1].announce(ih, Some(6666)).await.unwrap();
    let peers = nodes[4].get_peers(ih).await;
    assert!(peers.contains(&"[::1]:6666".parse().unwrap()), "{peers:?}");
    assert!(nodes[3].state().await.nodes.iter().all(SocketAddr::is_ipv6));
    for n in &nodes {
        n.shutdown();
    }
}

/// Routers: one node is configured with a router, another gets one later with
/// `add_router` after a lonely start; both fill their tables, and the routers are not
/// in them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routers_at_start_and_added_later() {
    let nodes = network(5, 51).await;
    let router = nodes[0].local_addr().unwrap();
    let mut c = config(Ipv4Addr::new(127, 0, 0, 57), 57);
    c.routers.push(router);
    let a = DhtHandle::start(c).unwrap();
    let b = DhtHandle::start(config(Ipv4Addr::new(127, 0, 0, 58), 58)).unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(b.routing_table_size(), 0);
    let mut alerts = b.subscribe();
    assert!(b.add_router(router));
    let deadline = Instant::now() + WAIT;
    while a.routing_table_size() < 4 || b.routing_table_size() < 4 {
        assert!(
            Instant::now() < deadline,
            "tables {} and {}",
            a.routing_table_size(),
            b.routing_table_size()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let done = tokio::time::timeout(WAIT, async {
        loop {
            if let Ok(DhtEvent::BootstrapDone { nodes }) = alerts.recv().await {
                break nodes;
            }
        }
    })
    .await
    .unwrap();
    assert!(done >= 1, "bootstrap alert with {done} nodes");
    assert!(!b.state().await.nodes.contains(&router));
    for n in nodes.iter().chain([&a, &b]) {
        n.shutdown();
    }
}

/// BEP 32 in one handle: each node has an IPv4 and an IPv6 socket; an announce reaches
/// both families and `get_peers` merges them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dual_stack_handles_merge_both_families() {
    let dual = |i: u8| {
        let mut c = config(Ipv4Addr::new(127, 0, 0, 91 + i), 90 + i);
        c.bind6 = Some(Bind::Addr("[::1]:0".parse().unwrap()));
        c
    };
    let first = DhtHandle::start(dual(0)).unwrap();
    let addrs = first.local_addrs().to_vec();
    assert!(addrs.len() == 2 && addrs[0].is_ipv4() && addrs[1].is_ipv6());
    let mut nodes = vec![first];
    for i in 1..5 {
        let mut c = dual(i);
        c.nodes.extend(&addrs);
        nodes.push(DhtHandle::start(c).unwrap());
    }
    // Both tables fill: at least 3 IPv4 and 3 IPv6 nodes each.
    let deadline = Instant::now() + WAIT;
    while nodes.iter().any(|d| d.routing_table_size() < 6) {
        assert!(
            Instant::now() < deadline,
            "dual-stack bootstrap: {:?}",
            nodes
                .iter()
                .map(DhtHandle::routing_table_size)
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ih = Sha1Hash::new([0x32; 20]);
    let out = nodes[1].announce(ih, Some(7070)).await.unwrap();
    assert!(out.stored_on >= 6, "{out:?}");
    let peers = nodes[3].get_peers(ih).await;
    assert!(
        peers.contains(&SocketAddr::from((Ipv4Addr::new(127, 0, 0, 92), 7070)))
            && peers.contains(&"[::1]:7070".parse().unwrap()),
        "{peers:?}"
    );
    let state = nodes[4].state().await;
    assert!(
        state.nodes.iter().any(SocketAddr::is_ipv4) && state.nodes.iter().any(SocketAddr::is_ipv6),
        "{state:?}"
    );
    // BEP 44 through both families.
    let put = nodes[2].put_immutable(b"4:dual".to_vec()).await.unwrap();
    assert!(put.stored_on >= 6);
    assert_eq!(
        nodes[0].get_immutable(put.target).await.as_deref(),
        Some(&b"4:dual"[..])
    );
    for n in &nodes {
        n.shutdown();
    }
}

#[test]
fn bind_socket_variant_is_usable() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let s = UdpSocket::bind("127.0.0.80:0").unwrap();
        let addr = s.local_addr().unwrap();
        let mut c = DhtConfig::with_bind(Bind::Socket(s));
        c.settings.rng_seed = Some([8; 32]);
        let dht = DhtHandle::start(c).unwrap();
        assert_eq!(dht.local_addr(), Some(addr));
        assert!(!dht.state().await.id.unwrap().as_bytes().is_empty());
        dht.shutdown();
    });
}
