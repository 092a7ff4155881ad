//! Fifty DHT nodes in memory with a virtual clock: all bootstrap from node 0, node 7
//! announces an info-hash and node 42 finds it.
//!
//! `cargo run -p lt-dht --example local_dht`

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lt_core::Sha1Hash;
use lt_dht::{Config, Dht, Event};

fn main() {
    let mut now = Instant::now();
    let addr = |i: usize| SocketAddr::from(([10, 0, 0, u8::try_from(i + 1).unwrap_or(255)], 6881));
    let mut nodes: Vec<Dht> = (0..50u8)
        .map(|i| {
            Dht::new(
                Config {
                    rng_seed: Some([i; 32]),
                    ..Config::default()
                },
                now,
            )
        })
        .collect();
    let mut wire: VecDeque<(usize, SocketAddr, Vec<u8>)> = VecDeque::new();
    let mut events = Vec::new();
    // One "tick" delivers every queued datagram 10 ms later.
    let mut run = |nodes: &mut Vec<Dht>, now: &mut Instant, events: &mut Vec<(usize, Event)>| {
        for _ in 0..50 {
            for (i, node) in nodes.iter_mut().enumerate() {
                node.handle_timeout(*now);
                while let Some(t) = node.poll_transmit() {
                    if let Some(to) = (0..50).find(|&j| addr(j) == t.dest) {
                        wire.push_back((to, addr(i), t.payload));
                    }
                }
                while let Some(e) = node.poll_event() {
                    events.push((i, e));
                }
            }
            *now += Duration::from_millis(10);
            while let Some((to, from, payload)) = wire.pop_front() {
                nodes[to].handle_datagram(*now, from, &payload);
            }
        }
    };
    for (i, node) in nodes.iter_mut().enumerate().skip(1) {
        node.add_router(addr(0));
        let _ = node.bootstrap(now + Duration::from_millis(u64::try_from(i).unwrap_or(0)));
    }
    run(&mut nodes, &mut now, &mut events);
    let info_hash = Sha1Hash::digest(b"example torrent");
    let _ = nodes[7].announce(now, info_hash, Some(51413));
    run(&mut nodes, &mut now, &mut events);
    let _ = nodes[42].get_peers(now, info_hash);
    run(&mut nodes, &mut now, &mut events);
    for (i, e) in events {
        match e {
            Event::Peers { peers, .. } => println!("node {i} found peers {peers:?}"),
            Event::LookupDone {
                kind,
                rounds,
                messages,
                announced,
                ..
            } => {
                println!(
                    "node {i}: {kind:?} done in {rounds} rounds, {messages} messages, announced to {announced}"
                );
            }
            Event::BootstrapDone { .. } | _ => {}
        }
    }
}
