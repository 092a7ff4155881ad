//! The BEP 15 client: one UDP tracker, as a sans-IO state machine.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use lt_core::Sha1Hash;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use tracing::{debug, trace};

use crate::udp::{UdpAnnounce, UdpRequest, UdpResponse};
use crate::{AnnounceRequest, AnnounceResponse, Error, Peer, ScrapeEntry, http, limits};

/// Settings of a [`UdpTracker`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpConfig {
    /// First retransmission timeout; BEP 15 says 15 s, doubled after each retry.
    pub initial_timeout: Duration,
    /// How many times a packet is sent before giving up with [`Error::Timeout`]. BEP 15
    /// allows up to 9 (n = 0..=8, 3840 s); default 4 (15 + 30 + 60 + 120 s), as libtorrent
    /// gives up long before BEP 15's hour.
    pub max_attempts: u32,
    /// How long a connection id stays usable after it was received. BEP 15: one minute.
    pub connection_id_lifetime: Duration,
    /// Whether the socket talks IPv6 (18-byte peers in announce replies).
    pub ipv6: bool,
    /// Most peers kept from one reply. Default [`limits::MAX_PEERS_PER_REPLY`].
    pub max_peers: usize,
    /// Most operations queued behind the one in flight. Default [`limits::MAX_QUEUED_UDP_OPS`].
    pub max_queued: usize,
    /// Seed of the transaction-id generator. `None` uses a fixed seed, which is fine for
    /// tests but makes transaction ids predictable to an off-path spoofer: lt-session must
    /// pass a seed drawn from the OS (this crate may not read OS randomness).
    pub rng_seed: Option<[u8; 32]>,
}

impl Default for UdpConfig {
    fn default() -> Self {
        Self {
            initial_timeout: Duration::from_secs(15),
            max_attempts: 4,
            connection_id_lifetime: Duration::from_secs(60),
            ipv6: false,
            max_peers: limits::MAX_PEERS_PER_REPLY,
            max_queued: limits::MAX_QUEUED_UDP_OPS,
            rng_seed: None,
        }
    }
}

/// What a [`UdpTracker`] reports.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UdpEvent {
    /// An announce succeeded.
    Announced(AnnounceResponse),
    /// A scrape succeeded; entries are in request order.
    Scraped(Vec<ScrapeEntry>),
    /// An operation failed: [`Error::Timeout`] after the last retry, or
    /// [`Error::TrackerFailure`] for the error action.
    Failed(Error),
}

#[derive(Debug, Clone)]
enum Op {
    Announce(UdpAnnounce),
    Scrape(Vec<Sha1Hash>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Connecting,
    Requesting,
}

#[derive(Debug)]
struct InFlight {
    op: Op,
    phase: Phase,
    transaction_id: u32,
    /// Packets sent for this operation so far (connects and requests together).
    attempts: u32,
    deadline: Instant,
}

/// One UDP tracker (BEP 15 with BEP 41 URL data): connect, announce, scrape, retries.
///
/// Sans-IO: it never touches a socket or reads the clock. The driver owns a UDP socket
/// connected to the tracker's address, and **after any input drains
/// [`poll_transmit`](Self::poll_transmit) (send each datagram to the tracker), then
/// [`poll_event`](Self::poll_event), then re-arms one timer from
/// [`poll_timeout`](Self::poll_timeout)** and calls [`handle_timeout`](Self::handle_timeout)
/// when it fires. `now` must never go backwards.
///
/// One operation is in flight at a time; others queue (at most [`UdpConfig::max_queued`]).
/// A connection id is reused for [`UdpConfig::connection_id_lifetime`]; a request that
/// times out is sent again after 15 × 2ⁿ s (n = retries so far), reconnecting first if the
/// id expired meanwhile.
#[derive(Debug)]
pub struct UdpTracker {
    config: UdpConfig,
    rng: ChaCha8Rng,
    url_data: Vec<u8>,
    connection: Option<(u64, Instant)>,
    in_flight: Option<InFlight>,
    queue: VecDeque<Op>,
    transmits: VecDeque<Vec<u8>>,
    events: VecDeque<UdpEvent>,
}

impl UdpTracker {
    /// A tracker with no connection yet. `url_data` is the BEP 41 path and query of the
    /// tracker URL ([`crate::UdpUrl::url_data`]).
    pub fn new(config: UdpConfig, url_data: &[u8]) -> Self {
        let rng = ChaCha8Rng::from_seed(config.rng_seed.unwrap_or([0x5a; 32]));
        Self {
            config,
            rng,
            url_data: url_data.to_vec(),
            connection: None,
            in_flight: None,
            queue: VecDeque::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// Queues an announce. Only the fields BEP 15 carries are used (`compact`, `ipv4`...
    /// are HTTP-only).
    pub fn announce(&mut self, now: Instant, req: &AnnounceRequest) -> Result<(), Error> {
        let op = Op::Announce(UdpAnnounce {
            info_hash: req.info_hash,
            peer_id: req.peer_id,
            downloaded: req.downloaded,
            left: req.left,
            uploaded: req.uploaded,
            event: req.event,
            ip: 0,
            key: req.key,
            num_want: req
                .num_want
                .map_or(-1, |n| i32::try_from(n).unwrap_or(i32::MAX)),
            port: req.port,
            url_data: self.url_data.clone(),
        });
        self.enqueue(now, op)
    }

    /// Queues a scrape of up to [`limits::MAX_UDP_SCRAPE_HASHES`] torrents.
    pub fn scrape(&mut self, now: Instant, hashes: &[Sha1Hash]) -> Result<(), Error> {
        if hashes.is_empty() || hashes.len() > limits::MAX_UDP_SCRAPE_HASHES {
            return Err(Error::ApiMisuse("scrape takes 1 to 74 info-hashes"));
        }
        self.enqueue(now, Op::Scrape(hashes.to_vec()))
    }

    /// Whether an operation is in flight or queued.
    pub fn is_busy(&self) -> bool {
        self.in_flight.is_some() || !self.queue.is_empty()
    }

    /// Feeds a datagram received from the tracker. Datagrams that are malformed or match
    /// no request in flight are dropped (with a `debug!`): anyone can send to our socket.
    pub fn handle_datagram(&mut self, now: Instant, buf: &[u8]) {
        let resp = match UdpResponse::decode(buf, self.config.ipv6) {
            Ok(r) => r,
            Err(e) => {
                // A malformed reply to our request: fail the operation rather than wait
                // for a timeout, but only if its transaction id is ours.
                let tid = buf
                    .get(4..8)
                    .and_then(|b| <[u8; 4]>::try_from(b).ok())
                    .map(u32::from_be_bytes);
                if tid.is_some() && tid == self.in_flight.as_ref().map(|f| f.transaction_id) {
                    debug!(error = %e, "malformed UDP tracker reply");
                    self.in_flight = None;
                    self.events.push_back(UdpEvent::Failed(e));
                    self.start_next(now);
                }
                return;
            }
        };
        let Some(flight) = self.in_flight.take() else {
            trace!("UDP tracker reply with nothing in flight");
            return;
        };
        if resp.transaction_id() != flight.transaction_id {
            trace!("UDP tracker reply with unknown transaction id");
            self.in_flight = Some(flight);
            return;
        }
        match (resp, flight.phase, flight.op) {
            (UdpResponse::Connect { connection_id, .. }, Phase::Connecting, op) => {
                self.connection = Some((connection_id, now + self.config.connection_id_lifetime));
                self.send(now, op, flight.attempts);
                return;
            }
            (
                UdpResponse::Announce {
                    interval,
                    leechers,
                    seeders,
                    peers,
                    ..
                },
                Phase::Requesting,
                Op::Announce(_),
            ) => {
                let peers = peers
                    .into_iter()
                    .filter(|a| a.port() != 0)
                    .take(self.config.max_peers)
                    .map(Peer::new)
                    .collect();
                self.events.push_back(UdpEvent::Announced(AnnounceResponse {
                    interval: limits::clamp_interval(u64::from(interval)),
                    complete: Some(seeders),
                    incomplete: Some(leechers),
                    peers,
                    ..AnnounceResponse::default()
                }));
            }
            (UdpResponse::Scrape { entries, .. }, Phase::Requesting, Op::Scrape(hashes)) => {
                if entries.len() != hashes.len() {
                    self.events
                        .push_back(UdpEvent::Failed(Error::MalformedPacket));
                } else {
                    let out = hashes
                        .iter()
                        .zip(entries)
                        .map(|(h, e)| ScrapeEntry {
                            info_hash: *h,
                            complete: e.seeders,
                            incomplete: e.leechers,
                            downloaded: e.completed,
                        })
                        .collect();
                    self.events.push_back(UdpEvent::Scraped(out));
                }
            }
            (UdpResponse::Error { message, .. }, _, _) => {
                self.events
                    .push_back(UdpEvent::Failed(Error::TrackerFailure {
                        message: http::message(&message),
                    }));
            }
            _ => {
                self.events
                    .push_back(UdpEvent::Failed(Error::MalformedPacket));
            }
        }
        self.start_next(now);
    }

    /// Retransmits or gives up when the deadline from [`poll_timeout`](Self::poll_timeout)
    /// has passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some(flight) = self.in_flight.take() else {
            return;
        };
        if now < flight.deadline {
            self.in_flight = Some(flight);
            return;
        }
        if flight.attempts >= self.config.max_attempts {
            debug!(attempts = flight.attempts, "UDP tracker timed out");
            self.events.push_back(UdpEvent::Failed(Error::Timeout));
            self.start_next(now);
            return;
        }
        self.send(now, flight.op, flight.attempts);
    }

    /// The next datagram to send to the tracker.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmits.pop_front()
    }

    /// The next event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<UdpEvent> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.in_flight.as_ref().map(|f| f.deadline)
    }

    fn enqueue(&mut self, now: Instant, op: Op) -> Result<(), Error> {
        if self.in_flight.is_none() {
            self.send(now, op, 0);
            return Ok(());
        }
        if self.queue.len() >= self.config.max_queued {
            return Err(Error::ApiMisuse("too many queued UDP tracker operations"));
        }
        self.queue.push_back(op);
        Ok(())
    }

    fn start_next(&mut self, now: Instant) {
        if let Some(op) = self.queue.pop_front() {
            self.send(now, op, 0);
        }
    }

    /// Sends `op` (or a connect first, if we hold no live connection id) with a fresh
    /// transaction id, and arms the 15 × 2ⁿ timer.
    fn send(&mut self, now: Instant, op: Op, attempts: u32) {
        let connection_id = match self.connection {
            Some((id, expires)) if now < expires => Some(id),
            _ => None,
        };
        let transaction_id = self.rng.next_u32();
        let packet = match (connection_id, &op) {
            (None, _) => UdpRequest::Connect { transaction_id },
            (Some(connection_id), Op::Announce(a)) => UdpRequest::Announce {
                connection_id,
                transaction_id,
                announce: a.clone(),
            },
            (Some(connection_id), Op::Scrape(h)) => UdpRequest::Scrape {
                connection_id,
                transaction_id,
                info_hashes: h.clone(),
            },
        };
        self.transmits.push_back(packet.to_vec());
        // BEP 15: wait 15 * 2^n seconds, n = retransmissions so far (capped at 8).
        let timeout = self
            .config
            .initial_timeout
            .saturating_mul(1 << attempts.min(8));
        self.in_flight = Some(InFlight {
            op,
            phase: if connection_id.is_some() {
                Phase::Requesting
            } else {
                Phase::Connecting
            },
            transaction_id,
            attempts: attempts + 1,
            deadline: now + timeout,
        });
    }
}
