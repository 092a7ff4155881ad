//! Deterministic simulation: N nodes on an in-memory network with a virtual clock.
//!
//! `LT_DHT_SIM_NODES` sets N (default 1000 for the lookup test; the others use at most
//! 150); `LT_SIM_SEED` replays a seed.
#![allow(clippy::unwrap_used, clippy::redundant_clone)]

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use lt_core::Sha1Hash;
use lt_dht::{Config, Dht, Event, Item, LookupId, MutableItem, NodeInfo};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

type Datagram = (Instant, u64, usize, SocketAddr, Vec<u8>);

struct Sim {
    nodes: Vec<Dht>,
    addrs: Vec<SocketAddr>,
    index: HashMap<SocketAddr, usize>,
    now: Instant,
    queue: BinaryHeap<Reverse<Datagram>>,
    timers: BinaryHeap<Reverse<(Instant, usize)>>,
    rng: ChaCha8Rng,
    seq: u64,
    delivered: u64,
    events: Vec<(usize, Event)>,
}

impl Sim {
    fn new(n: usize, seed: u64) -> Self {
        Self::with_family(n, seed, false)
    }

    fn with_family(n: usize, seed: u64, ipv6: bool) -> Self {
        let now = Instant::now();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut nodes = Vec::new();
        let mut addrs = Vec::new();
        let mut index = HashMap::new();
        for i in 0..n {
            let i32 = u32::try_from(i).unwrap();
            let addr = if ipv6 {
                SocketAddr::from((
                    Ipv6Addr::from(0xfd00_u128 << 112 | u128::from(i32 + 1)),
                    6881,
                ))
            } else {
                SocketAddr::from((Ipv4Addr::from(0x0a00_0000 | (i32 + 1)), 6881))
            };
            let mut s = [0u8; 32];
            rng.fill_bytes(&mut s);
            let config = Config {
                rng_seed: Some(s),
                ipv6,
                ..Config::default()
            };
            nodes.push(Dht::new(config, now));
            index.insert(addr, i);
            addrs.push(addr);
        }
        Self {
            nodes,
            addrs,
            index,
            now,
            queue: BinaryHeap::new(),
            timers: BinaryHeap::new(),
            rng,
            seq: 0,
            delivered: 0,
            events: Vec::new(),
        }
    }

    /// Driver rule: drain transmits, then events, then re-arm the timer.
    fn flush(&mut self, i: usize) {
        while let Some(t) = self.nodes[i].poll_transmit() {
            if let Some(&to) = self.index.get(&t.dest) {
                let latency = Duration::from_millis(5 + self.rng.next_u64() % 45);
                self.seq += 1;
                self.queue.push(Reverse((
                    self.now + latency,
                    self.seq,
                    to,
                    self.addrs[i],
                    t.payload,
                )));
            }
        }
        while let Some(e) = self.nodes[i].poll_event() {
            self.events.push((i, e));
        }
        if let Some(t) = self.nodes[i].poll_timeout() {
            self.timers.push(Reverse((t, i)));
        }
    }

    /// Processes the earliest datagram or timer at or before `until`.
    fn step(&mut self, until: Instant) -> bool {
        let next_msg = self.queue.peek().map(|Reverse(d)| d.0);
        let next_timer = self.timers.peek().map(|Reverse(t)| t.0);
        let take_msg = match (next_msg, next_timer) {
            (Some(m), Some(t)) => m <= t,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => return false,
        };
        if take_msg {
            let Reverse((at, _, to, from, payload)) = self.queue.peek().cloned().unwrap();
            if at > until {
                return false;
            }
            self.queue.pop();
            self.now = at;
            self.delivered += 1;
            self.nodes[to].handle_datagram(at, from, &payload);
            self.flush(to);
        } else {
            let Reverse((at, i)) = *self.timers.peek().unwrap();
            if at > until {
                return false;
            }
            self.timers.pop();
            // Skip stale timers: only fire if the node still wants this deadline.
            if self.nodes[i].poll_timeout() == Some(at) {
                self.now = at;
                self.nodes[i].handle_timeout(at);
                self.flush(i);
            }
        }
        true
    }

    fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        let mut steps = 0u64;
        while self.step(until) {
            steps += 1;
            assert!(steps < 50_000_000, "livelock");
        }
        self.now = until;
    }

    fn run_until_done(&mut self, node: usize, lookup: LookupId) -> Event {
        let limit = self.now + Duration::from_secs(120);
        loop {
            if let Some(pos) = self.events.iter().position(|(i, e)| {
                *i == node && matches!(e, Event::LookupDone { lookup: l, .. } if *l == lookup)
            }) {
                return self.events.remove(pos).1;
            }
            assert!(
                self.step(limit),
                "lookup did not finish in 120 virtual seconds"
            );
        }
    }

    fn bootstrap_all(&mut self) {
        let router = self.addrs[0];
        for i in 1..self.nodes.len() {
            self.run_for(Duration::from_millis(20));
            let now = self.now;
            self.nodes[i].add_router(router);
            self.nodes[i].bootstrap(now).unwrap();
            self.flush(i);
        }
        self.run_for(Duration::from_secs(30));
        let done = self
            .events
            .iter()
            .filter(|(_, e)| matches!(e, Event::BootstrapDone { .. }))
            .count();
        assert_eq!(
            done,
            self.nodes.len() - 1,
            "every node finished its bootstrap"
        );
        self.events.clear();
    }

    fn random_id(&mut self) -> Sha1Hash {
        let mut b = [0u8; 20];
        self.rng.fill_bytes(&mut b);
        Sha1Hash::new(b)
    }
}

fn seed() -> u64 {
    let seed = std::env::var("LT_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_261_125);
    eprintln!("LT_SIM_SEED={seed}");
    seed
}

fn node_count() -> usize {
    std::env::var("LT_DHT_SIM_NODES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000)
}

fn median(v: &mut [u32]) -> u32 {
    v.sort_unstable();
    v[v.len() / 2]
}

#[test]
fn lookups_find_the_true_closest_nodes() {
    let n = node_count();
    let mut sim = Sim::new(n, seed());
    sim.bootstrap_all();
    let sizes: Vec<usize> = sim.nodes.iter().map(|d| d.routing_table().len()).collect();
    let mut exact = 0;
    let mut rounds = Vec::new();
    let mut messages = Vec::new();
    for _ in 0..100 {
        let from = usize::try_from(sim.rng.next_u64() % u64::try_from(n).unwrap()).unwrap();
        let target = sim.random_id();
        let now = sim.now;
        let lid = sim.nodes[from].find_node(now, target).unwrap();
        sim.flush(from);
        let Event::LookupDone {
            closest,
            rounds: r,
            messages: m,
            ..
        } = sim.run_until_done(from, lid)
        else {
            unreachable!()
        };
        let own = sim.nodes[from].id();
        // Brute force over every node but the querier and node 0, the router everyone
        // bootstrapped from: routers are never put in routing tables (as in libtorrent).
        let mut truth: Vec<NodeInfo> = sim
            .nodes
            .iter()
            .zip(&sim.addrs)
            .skip(1)
            .filter(|(d, _)| d.id() != own)
            .map(|(d, a)| NodeInfo {
                id: d.id(),
                addr: *a,
            })
            .collect();
        truth.sort_by_key(|x| x.id ^ target);
        truth.truncate(8);
        if closest == truth {
            exact += 1;
        }
        rounds.push(r);
        messages.push(m);
    }
    let mut sorted_sizes = sizes.clone();
    sorted_sizes.sort_unstable();
    eprintln!(
        "dht sim: {n} nodes, routing table median {} min {}; 100 lookups: {exact} exact, median rounds {}, median messages {}, max rounds {}, {} datagrams in total",
        sorted_sizes[n / 2],
        sorted_sizes[0],
        median(&mut rounds),
        median(&mut messages),
        rounds.iter().max().unwrap(),
        sim.delivered,
    );
    assert!(
        exact >= 98,
        "only {exact}/100 lookups found the true 8 closest"
    );
    assert!(
        *rounds.iter().max().unwrap() <= 12,
        "lookups took too many rounds"
    );
}

#[test]
fn announce_then_get_peers_across_the_network() {
    let n = node_count().min(150);
    let mut sim = Sim::new(n, seed() ^ 1);
    sim.bootstrap_all();
    let info_hash = sim.random_id();
    let now = sim.now;
    let lid = sim.nodes[5].announce(now, info_hash, Some(7000)).unwrap();
    sim.flush(5);
    let Event::LookupDone { announced, .. } = sim.run_until_done(5, lid) else {
        unreachable!()
    };
    assert!(announced >= 6, "announced to {announced} nodes");
    // implied_port: the UDP source port is stored.
    let now = sim.now;
    let lid = sim.nodes[9].announce(now, info_hash, None).unwrap();
    sim.flush(9);
    sim.run_until_done(9, lid);
    sim.run_for(Duration::from_secs(1));
    let stored = sim
        .nodes
        .iter()
        .filter(|d| d.stored_info_hashes() == 1)
        .count();
    assert!(stored >= 6, "{stored} nodes store the info-hash");

    let now = sim.now;
    let lid = sim.nodes[n - 1].get_peers(now, info_hash).unwrap();
    sim.flush(n - 1);
    sim.run_until_done(n - 1, lid);
    let mut found: Vec<SocketAddr> = sim
        .events
        .iter()
        .filter_map(|(i, e)| match e {
            Event::Peers { lookup, peers, .. } if *i == n - 1 && *lookup == lid => {
                Some(peers.clone())
            }
            _ => None,
        })
        .flatten()
        .collect();
    found.sort();
    found.dedup();
    let a = SocketAddr::new(sim.addrs[5].ip(), 7000);
    let b = sim.addrs[9];
    assert!(found.contains(&a), "explicit port found: {found:?}");
    assert!(found.contains(&b), "implied port found: {found:?}");
}

/// BEP 32 `nodes6`: an IPv6-only network converges as well, and a node restarted from its
/// saved nodes (no router) rejoins it.
#[test]
fn ipv6_network_and_restart_from_saved_nodes() {
    let mut sim = Sim::with_family(60, seed() ^ 2, true);
    sim.bootstrap_all();
    let target = sim.random_id();
    let now = sim.now;
    let lid = sim.nodes[3].find_node(now, target).unwrap();
    sim.flush(3);
    let Event::LookupDone { closest, .. } = sim.run_until_done(3, lid) else {
        unreachable!()
    };
    assert_eq!(closest.len(), 8);
    assert!(closest.iter().all(|n| n.addr.is_ipv6()));

    // Node 7 restarts with a fresh table and only its saved nodes.
    let saved = sim.nodes[7].saved_nodes(sim.now);
    assert!(saved.len() >= 8, "{} saved nodes", saved.len());
    let id = sim.nodes[7].id();
    let config = Config {
        id: Some(id),
        rng_seed: Some([77; 32]),
        ipv6: true,
        ..Config::default()
    };
    sim.nodes[7] = Dht::new(config, sim.now);
    let now = sim.now;
    for n in &saved {
        sim.nodes[7].add_node(now, n.addr);
    }
    sim.flush(7);
    sim.run_for(Duration::from_secs(2));
    assert!(sim.nodes[7].routing_table().len() >= 8);
    let now = sim.now;
    let lid = sim.nodes[7].bootstrap(now).unwrap();
    sim.flush(7);
    let Event::LookupDone { closest, .. } = sim.run_until_done(7, lid) else {
        unreachable!()
    };
    assert_eq!(closest.len(), 8);
}

fn items_found(sim: &Sim, node: usize, lid: LookupId) -> Vec<Item> {
    sim.events
        .iter()
        .filter_map(|(i, e)| match e {
            Event::Item { lookup, item, .. } if *i == node && *lookup == lid => Some(item.clone()),
            _ => None,
        })
        .collect()
}

/// BEP 44: immutable and mutable items put by one node are found by another; a newer
/// `seq` replaces the old value, a stale one is refused.
#[test]
fn bep44_put_and_get_across_the_network() {
    let n = node_count().min(120);
    let mut sim = Sim::new(n, seed() ^ 3);
    sim.bootstrap_all();

    let now = sim.now;
    let (lid, target) = sim.nodes[4]
        .put_immutable(now, b"12:Hello World!".to_vec())
        .unwrap();
    sim.flush(4);
    let Event::LookupDone { announced, .. } = sim.run_until_done(4, lid) else {
        unreachable!()
    };
    assert!(announced >= 6, "put to {announced} nodes");
    sim.run_for(Duration::from_secs(1));
    let now = sim.now;
    let lid = sim.nodes[n - 2].get_immutable(now, target).unwrap();
    sim.flush(n - 2);
    sim.run_until_done(n - 2, lid);
    assert_eq!(
        items_found(&sim, n - 2, lid),
        vec![Item::Immutable {
            v: b"12:Hello World!".to_vec()
        }]
    );

    let secret = [42u8; 32];
    let put = |sim: &mut Sim, seq: i64, v: &[u8], cas: Option<i64>| {
        let item = MutableItem::sign(&secret, b"salt", seq, v).unwrap();
        let now = sim.now;
        let lid = sim.nodes[6].put_mutable(now, item, cas).unwrap();
        sim.flush(6);
        sim.run_until_done(6, lid);
        sim.run_for(Duration::from_secs(1));
    };
    let get = |sim: &mut Sim| {
        let now = sim.now;
        let k = lt_dht::item::public_key(&secret);
        let lid = sim.nodes[n - 3].get_mutable(now, k, b"salt", None).unwrap();
        sim.flush(n - 3);
        sim.run_until_done(n - 3, lid);
        match items_found(sim, n - 3, lid).pop() {
            Some(Item::Mutable(m)) => (m.seq, m.v),
            other => panic!("no mutable item: {other:?}"),
        }
    };
    put(&mut sim, 1, b"3:one", None);
    assert_eq!(get(&mut sim), (1, b"3:one".to_vec()));
    put(&mut sim, 2, b"3:two", Some(1));
    assert_eq!(get(&mut sim), (2, b"3:two".to_vec()));
    // A stale seq and a failed compare-and-swap change nothing.
    put(&mut sim, 1, b"5:stale", None);
    put(&mut sim, 3, b"3:cas", Some(1));
    assert_eq!(get(&mut sim), (2, b"3:two".to_vec()));
}

/// BEP 33: ten nodes announce as seeds and five as downloaders; a scrape from another node
/// estimates both from the closest nodes' bloom filters, and `noseed` keeps seeds out of
/// `values`.
#[test]
fn bep33_scrape_counts_seeds_and_downloaders() {
    let n = node_count().min(120);
    let mut sim = Sim::new(n, seed() ^ 4);
    sim.bootstrap_all();
    let info_hash = sim.random_id();
    for i in 10..25 {
        let now = sim.now;
        let lid = sim.nodes[i]
            .announce_with(now, info_hash, Some(6881), i < 20)
            .unwrap();
        sim.flush(i);
        sim.run_until_done(i, lid);
    }
    sim.run_for(Duration::from_secs(1));
    let now = sim.now;
    let lid = sim.nodes[n - 1].scrape(now, info_hash).unwrap();
    sim.flush(n - 1);
    sim.run_until_done(n - 1, lid);
    let (seeds, downloaders) = sim
        .events
        .iter()
        .find_map(|(i, e)| match e {
            Event::Scrape {
                lookup,
                seeds,
                downloaders,
                ..
            } if *i == n - 1 && *lookup == lid => Some((*seeds, *downloaders)),
            _ => None,
        })
        .expect("a scrape event");
    eprintln!("scrape: {seeds} seeds, {downloaders} downloaders (10 and 5 announced)");
    assert!((9..=11).contains(&seeds), "{seeds} seeds");
    assert!((4..=6).contains(&downloaders), "{downloaders} downloaders");
}
