//! Sends a message to a uTP peer and prints what comes back:
//! `cargo run -p lt-utp --example send -- 127.0.0.1:6881 hello`.
//!
//! A minimal driver of the sans-IO [`Connection`] over a blocking `std::net::UdpSocket`:
//! after any input, drain `poll_transmit`, then `poll_event`, then wait for a datagram or
//! the next deadline. (One connection per socket: no demultiplexing.)

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use lt_utp::{Config, Connection, Event};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(addr), Some(message)) = (args.next(), args.next()) else {
        return Err("usage: send ADDR MESSAGE".into());
    };
    let sock = UdpSocket::bind("0.0.0.0:0")?;
    sock.connect(&addr)?;
    let mut seed = [0u8; 32];
    // Example only: a real driver seeds from the OS.
    seed[..16].copy_from_slice(&Instant::now().elapsed().as_nanos().to_le_bytes());
    let config = Config {
        rng_seed: seed,
        ..Config::default()
    };
    let mut conn = Connection::connect(config, Instant::now());
    let mut buf = vec![0u8; 65536];
    let mut out = message.as_bytes();
    loop {
        let now = Instant::now();
        while let Some(t) = conn.poll_transmit(now) {
            sock.send(&t.contents)?;
        }
        while let Some(event) = conn.poll_event() {
            match event {
                Event::Connected | Event::Writable => {
                    let n = conn.write(out);
                    out = &out[n..];
                    if out.is_empty() {
                        conn.close();
                    }
                }
                Event::Readable => {
                    let n = conn.read(&mut buf);
                    println!("{}", String::from_utf8_lossy(&buf[..n]));
                }
                Event::Closed(reason) => {
                    println!("closed: {reason:?}");
                    return Ok(());
                }
                _ => {}
            }
        }
        let Some(deadline) = conn.poll_timeout() else {
            return Ok(());
        };
        let wait = deadline.saturating_duration_since(Instant::now());
        sock.set_read_timeout(Some(wait.max(Duration::from_millis(1))))?;
        match sock.recv(&mut buf) {
            Ok(n) => {
                let _ = conn.handle_datagram(Instant::now(), &buf[..n]);
            }
            Err(_) => conn.handle_timeout(Instant::now()),
        }
    }
}
