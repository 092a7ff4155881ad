//! Two clients announce to the in-memory tracker over virtual UDP and find each other.
//!
//! `cargo run -p lt-tracker --example local_swarm`

use std::net::SocketAddr;
use std::time::Instant;

use lt_core::{PeerId, Sha1Hash};
use lt_tracker::server::{ServerConfig, TrackerServer};
use lt_tracker::{AnnounceRequest, UdpConfig, UdpEvent, UdpTracker};

fn main() -> Result<(), lt_tracker::Error> {
    let now = Instant::now();
    let mut server = TrackerServer::new(ServerConfig::default());
    let info_hash = Sha1Hash::new([0x42; 20]);
    for (i, from) in ["127.0.0.1:50001", "127.0.0.1:50002"].iter().enumerate() {
        let from: SocketAddr = from.parse().map_err(|_| lt_tracker::Error::InvalidUrl)?;
        let seed = [u8::try_from(i).unwrap_or(0); 32];
        let mut client = UdpTracker::new(
            UdpConfig {
                rng_seed: Some(seed),
                ..Default::default()
            },
            b"",
        );
        let port = 6881 + u16::try_from(i).unwrap_or(0);
        let peer_id = PeerId::new([b'a' + u8::try_from(i).unwrap_or(0); 20]);
        let mut req = AnnounceRequest::new(info_hash, peer_id, port);
        req.left = u64::try_from(i).unwrap_or(0); // the first is a seed, the second a leecher
        client.announce(now, &req)?;
        // The driver loop, with the server standing in for the network.
        let event = loop {
            if let Some(event) = client.poll_event() {
                break event;
            }
            let Some(datagram) = client.poll_transmit() else {
                return Err(lt_tracker::Error::Timeout);
            };
            if let Some(reply) = server.handle_datagram(now, from, &datagram) {
                client.handle_datagram(now, &reply);
            }
        };
        if let UdpEvent::Announced(r) = event {
            let peers: Vec<String> = r.peers.iter().map(|p| p.addr.to_string()).collect();
            println!("peer {i}: interval {:?}, peers {peers:?}", r.interval);
        }
    }
    Ok(())
}
