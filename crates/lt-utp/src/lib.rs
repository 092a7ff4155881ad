//! uTP, the Micro Transport Protocol (BEP 29), sans IO.
//!
//! ```text
//!   datagrams from the UDP socket (demultiplexed by connection id)
//!               │
//!   ┌───────────▼──────────────────────────────────────────────────┐
//!   │ Packet::decode  header, SACK extension, unknown exts skipped │
//!   └───────────┬──────────────────────────────────────────────────┘
//!   ┌───────────▼──────────────────────────────────────────────────┐
//!   │ Connection    handle_datagram(now, &[u8]) / handle_timeout(now)
//!   │  SYN handshake, in-order delivery (bounded reorder buffer),  │
//!   │  delayed ACK + SACK, RTT/RTO, fast retransmit, FIN / RESET,  │
//!   │  LEDBAT cwnd (100 ms target), receive window, Nagle          │
//!   │  write(&[u8]) -> n   read(&mut [u8]) -> n   close()          │
//!   └──┬─────────────────────────┬──────────────────────────┬──────┘
//!      ▼ poll_transmit(now)       ▼ poll_event()             ▼ poll_timeout()
//!   datagram to send            Connected / Readable / ...   next deadline
//! ```
//!
//! This crate performs no I/O, reads no clock (`now: Instant` is a parameter) and no OS
//! randomness (connection ids and sequence numbers come from a ChaCha generator seeded by
//! the caller), spawns nothing and has no `unsafe`. Everything a peer can make it buffer is
//! bounded by [`limits`], the connection [`Config`] and the [`EndpointConfig`] of the
//! [`Endpoint`], which demultiplexes datagrams of one socket by (address, connection id)
//! with a bounded half-open table. It owns no socket. Path MTU discovery (module `mtu` docs
//! in the source; [`Connection::path_mtu`]) searches between
//! [`limits::DEFAULT_BASE_PACKET_SIZE`] and [`limits::DEFAULT_MAX_PACKET_SIZE`] with padded
//! probes.
//!
//! # Loss recovery
//!
//! A packet is lost after three duplicate acks, when three packets past it are SACKed, or
//! when an ack still does not cover it 1.5 round trips after it was sent; it goes again at
//! once (fast retransmit). A peer without SACK (rqbit) shows one hole per partial ack
//! (NewReno). A retransmission is lost when a packet sent a quarter of a round trip after
//! it has been delivered (RACK, RFC 8985). The tail-loss probe resends the oldest packet
//! after two round trips without an ack. The retransmission timeout (RFC 6298, at least
//! 500 ms) backs off until new data is acknowledged.
//!
//! The window halves on a loss in slow start or with a queue on the path, and shrinks by a
//! fifth when the queuing delay at the loss is under a tenth of LEDBAT's target (TCP Veno's
//! rule): then the loss was random, not a full buffer. Alone on a link LEDBAT keeps the
//! queue near its 100 ms target; beside TCP its delay rule yields the link
//! (`tests/tests/ledbat_netns.rs` measures both through `tc tbf`).
//!
//! A window update after a closed receive window is repeated, backing off, until the peer
//! sends again: libtorrent's sender does not probe a closed window.
//!
//! # Example: a run loop over `std::net`
//!
//! ```no_run
//! use std::net::UdpSocket;
//! use std::time::Instant;
//! use lt_utp::{Config, Connection, Event};
//!
//! let sock = UdpSocket::bind("0.0.0.0:0")?;
//! sock.connect("127.0.0.1:6881")?;
//! let mut conn = Connection::connect(Config { rng_seed: [7; 32], ..Config::default() }, Instant::now());
//! let mut buf = [0u8; 65536];
//! loop {
//!     let now = Instant::now();
//!     while let Some(t) = conn.poll_transmit(now) {
//!         sock.send(&t.contents)?;
//!     }
//!     while let Some(event) = conn.poll_event() {
//!         match event {
//!             Event::Connected => { conn.write(b"hello"); conn.close(); }
//!             Event::Readable => { let n = conn.read(&mut buf); println!("{:?}", &buf[..n]); }
//!             Event::Closed(reason) => return Ok(println!("closed: {reason:?}")),
//!             _ => {}
//!         }
//!     }
//!     let Some(deadline) = conn.poll_timeout() else { break };
//!     let wait = deadline.saturating_duration_since(Instant::now());
//!     sock.set_read_timeout(Some(wait.max(std::time::Duration::from_millis(1))))?;
//!     match sock.recv(&mut buf) {
//!         Ok(n) => { let _ = conn.handle_datagram(Instant::now(), &buf[..n]); }
//!         Err(_) => conn.handle_timeout(Instant::now()),
//!     }
//! }
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! The codec alone:
//!
//! ```
//! use lt_utp::{Packet, PacketType};
//! let datagram = [0x41, 0, 0, 7, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0];
//! let p = Packet::decode(&datagram)?;
//! assert_eq!((p.header.ty, p.header.connection_id), (PacketType::Syn, 7));
//! # Ok::<(), lt_utp::Error>(())
//! ```
//!
//! # Features
//!
//! - `quickcheck`: `quickcheck::Arbitrary` for the packet types, for property tests.
//! - `tokio` (off by default): [`tokio::UtpSocket`] and [`tokio::UtpStream`]
//!   (`AsyncRead + AsyncWrite`), a driver running an [`Endpoint`] over one UDP socket that
//!   it shares with other protocols (the DHT); batched with `quinn-udp` (see the module
//!   docs for why that crate). Only this module uses tokio, a clock and OS randomness.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod connection;
pub mod endpoint;
mod error;
pub mod limits;
mod mtu;
mod packet;
pub mod relay;
#[cfg(feature = "tokio")]
pub mod tokio;

pub use connection::{CloseReason, Config, Connection, Event, Stats, Transmit};
pub use endpoint::{ConnectionHandle, DatagramOutcome, Endpoint, EndpointConfig};
pub use error::Error;
pub use packet::{EXT_PADDING, EXT_SACK, Header, Packet, PacketType, SelectiveAck, VERSION};

/// Runs the README's example as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
