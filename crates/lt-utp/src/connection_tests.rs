//! Tests that need the connection's private state.

use std::time::Instant;

use super::{Config, Connection, Event};
use crate::packet::{Packet, PacketType};

fn cfg(seed: u8) -> Config {
    Config {
        rng_seed: [seed; 32],
        ..Config::default()
    }
}

fn transmits(c: &mut Connection, now: Instant) -> Vec<Vec<u8>> {
    std::iter::from_fn(|| c.poll_transmit(now).map(|t| t.contents)).collect()
}

/// A window floored at one packet before a path MTU probe made packets larger is below
/// one packet now; with nothing in flight the next packet still goes (it stalled for good:
/// `lt download --utp-only --download-limit` under CPU load, 128 requests never sent).
#[test]
fn a_window_below_one_larger_packet_still_sends() {
    let now = Instant::now();
    let mut client = Connection::connect(cfg(1), now);
    let syn = transmits(&mut client, now);
    let mut server = Connection::accept(cfg(2), now, &syn[0]).expect("syn");
    for d in transmits(&mut server, now) {
        client.handle_datagram(now, &d).expect("syn-ack");
    }
    assert_eq!(client.poll_event(), Some(Event::Connected));
    // As after a loss at the base packet size and an MTU probe acknowledged since.
    client.mtu.floor += 120;
    client.cwnd = client.max_payload() - 30;
    assert_eq!(client.cur_window, 0);
    assert_eq!(client.write(&[7u8; 4000]), 4000);
    let sent = transmits(&mut client, now);
    let data = sent
        .iter()
        .filter_map(|d| Packet::decode(d).ok())
        .filter(|p| p.header.ty == PacketType::Data)
        .count();
    assert!(data >= 1, "nothing sent with the window at {}", client.cwnd);
}
