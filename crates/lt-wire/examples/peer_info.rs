//! Connects to one peer and prints what it says about itself:
//! `cargo run -p lt-wire --example peer_info -- 127.0.0.1:6881 <info-hash hex>`.
//!
//! A minimal driver of the sans-IO [`PeerConnection`] over a blocking `std::net` socket:
//! drain `poll_transmit`, then `poll_event`, then wait for bytes or the next deadline.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use lt_core::{InfoHash, PeerId, Sha1Hash};
use lt_wire::{PeerConfig, PeerConnection, PeerEvent, TorrentParams};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(addr), Some(hash)) = (args.next(), args.next()) else {
        return Err("usage: peer_info ADDR INFO_HASH_HEX".into());
    };
    let torrent = TorrentParams {
        info_hash: InfoHash::v1(Sha1Hash::from_hex(&hash)?),
        layout: None,
        metadata_size: None,
    };
    let mut sock = TcpStream::connect_timeout(&addr.parse()?, Duration::from_secs(5))?;
    let config = PeerConfig::new(PeerId::new(*b"-LT0001-peerinfo0000"));
    let mut conn =
        PeerConnection::outgoing(config, Instant::now(), torrent, None, Default::default())?;
    let started = Instant::now();
    let mut buf = vec![0u8; 1 << 16];
    while started.elapsed() < Duration::from_secs(10) {
        while let Some(out) = conn.poll_transmit() {
            sock.write_all(&out)?;
        }
        while let Some(event) = conn.poll_event() {
            match event {
                PeerEvent::Connected { peer_id, reserved } => {
                    println!(
                        "peer id {peer_id:?} ({:?}), reserved {reserved:?}",
                        peer_id.client()
                    );
                }
                PeerEvent::ExtendedHandshake(hs) => println!("extended handshake {hs:#?}"),
                PeerEvent::RawBitfield(b) => println!("bitfield of {} bytes", b.len()),
                PeerEvent::HaveAll => println!("has every piece"),
                other => println!("{other:?}"),
            }
        }
        let wait = conn.poll_timeout().map_or(Duration::from_secs(1), |t| {
            t.saturating_duration_since(Instant::now())
        });
        sock.set_read_timeout(Some(wait.max(Duration::from_millis(1))))?;
        match sock.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => conn.handle_bytes(Instant::now(), &buf[..n])?,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                conn.handle_timeout(Instant::now())?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
