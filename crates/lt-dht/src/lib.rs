//! The BitTorrent Mainline DHT without I/O: a KRPC codec, a Kademlia routing table and a
//! node state machine that answers queries, runs iterative lookups and announces.
//!
//! ```text
//!            datagram from a node ─▶ handle_datagram(now, from, buf) ─┐
//!                           timer ─▶ handle_timeout(now)             │
//!  bootstrap / find_node / get_peers / announce /
//!  scrape / get_immutable / get_mutable / put_immutable / put_mutable (commands) ─▶ Dht ──▶ poll_transmit() ─▶ Transmit { dest, payload }
//!                                                                     │  ──▶ poll_event()    ─▶ Event::{Peers, Item, LookupDone, BootstrapDone, ...}
//!                                                                     └─ ──▶ poll_timeout()  ─▶ next deadline
//!
//!  krpc::Message::decode(&[u8]) ⇄ Message::encode()    routing::RoutingTable (k-buckets, liveness)
//!  item::MutableItem::sign / verify (ed25519)          DhtState::to_bencode / from_bencode
//! ```
//!
//! BEPs: 5 (DHT protocol, KRPC, tokens), 32 (`nodes6`; one node per address family, as
//! libtorrent runs one per socket), 42 (conforming ids, `ip` key, external-address votes
//! and a new conforming id when they disagree with ours), 33 (scrape bloom filters), 43
//! (read-only nodes), 44 (immutable and mutable items), 51 (`sample_infohashes`).
//!
//! The core **performs no network I/O and reads no clock**: every method takes
//! `now: Instant`, randomness comes from a ChaCha8 RNG seeded by [`Config::rng_seed`], and
//! every collection a remote node can grow is capped (routing table, replacement caches,
//! peer store, rate-limit table, transactions, lookups and their candidates; see
//! [`limits`] and [`Config`]). Nothing a remote node sends can make it panic: malformed
//! or oversized messages are typed [`Error`]s, which the node drops.
//!
//! Driver rule: after any input, drain [`Dht::poll_transmit`], then [`Dht::poll_event`],
//! then re-arm one timer from [`Dht::poll_timeout`]. Never pass an earlier `now`.
//!
//! With the `tokio` feature, `lt_dht::tokio::DhtHandle` runs a node on a UDP
//! socket or on datagram channels of a socket the session owns; it is the only code here
//! that touches the clock, sockets or OS randomness.
//!
//! Not yet: the BEP 32 `want` key (a node answers with its own family's nodes), strict
//! BEP 42 enforcement.
//!
//! # Example: a run loop over `std::net`
//!
//! ```no_run
//! use std::net::UdpSocket;
//! use std::time::{Duration, Instant};
//! use lt_core::Sha1Hash;
//! use lt_dht::{Config, Dht, Event};
//!
//! let socket = UdpSocket::bind("0.0.0.0:6881")?;
//! let mut dht = Dht::new(Config { rng_seed: Some([7; 32]), ..Config::default() }, Instant::now());
//! dht.add_router("67.215.246.10:6881".parse()?);
//! dht.bootstrap(Instant::now())?;
//! let mut buf = [0u8; 2048];
//! loop {
//!     while let Some(t) = dht.poll_transmit() {
//!         socket.send_to(&t.payload, t.dest)?;
//!     }
//!     while let Some(event) = dht.poll_event() {
//!         if let Event::BootstrapDone { nodes } = event {
//!             println!("bootstrapped with {nodes} nodes");
//!             dht.get_peers(Instant::now(), Sha1Hash::new([0xab; 20]))?;
//!         } else {
//!             println!("{event:?}");
//!         }
//!     }
//!     let deadline = dht.poll_timeout().unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
//!     let wait = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
//!     socket.set_read_timeout(Some(wait))?;
//!     match socket.recv_from(&mut buf) {
//!         Ok((n, from)) => dht.handle_datagram(Instant::now(), from, &buf[..n]),
//!         Err(_) => dht.handle_timeout(Instant::now()),
//!     }
//! }
//! # #[allow(unreachable_code)]
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod error;
pub mod item;
pub mod krpc;
pub mod limits;
mod node;
pub mod routing;
pub mod scrape;
mod state;
mod store;
#[cfg(feature = "tokio")]
pub mod tokio;

pub use error::Error;
pub use item::{Item, ItemError, MutableItem};
pub use krpc::{Body, Message, NodeInfo, PutItem, Query, Response};
pub use node::{CommandError, Config, Dht, Event, LookupId, LookupKind, Transmit};
pub use routing::{IpRestriction, RoutingTable};
pub use state::{DhtState, MAX_SAVED_NODES};
