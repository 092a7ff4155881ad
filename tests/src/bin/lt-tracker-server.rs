//! `cargo run -p lt-tests --bin lt-tracker-server -- [ADDR]`: lt-tracker's in-memory tracker
//! on real sockets (HTTP and UDP on the same port) for local swarms, until killed.
//! ADDR defaults to `127.0.0.1:6969`; port 0 picks a free one. Prints the announce URLs.

use std::net::SocketAddr;

use lt_tests::tracker_driver::TrackerThreads;
use lt_tracker::server::{ServerConfig, TrackerServer};

fn main() -> std::io::Result<()> {
    let addr: SocketAddr = match std::env::args().nth(1) {
        Some(a) => a
            .parse()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?,
        None => SocketAddr::from(([127, 0, 0, 1], 6969)),
    };
    let config = ServerConfig {
        // Local swarms want peers to re-announce quickly.
        announce_interval: std::time::Duration::from_secs(30),
        min_interval: std::time::Duration::from_secs(5),
        ..Default::default()
    };
    let tracker = TrackerThreads::bind(TrackerServer::new(config), addr)?;
    let ip = addr.ip();
    let host = if ip.is_ipv6() {
        format!("[{ip}]")
    } else {
        ip.to_string()
    };
    println!("http://{host}:{}/announce", tracker.port);
    println!("udp://{host}:{}", tracker.port);
    loop {
        std::thread::park();
    }
}
