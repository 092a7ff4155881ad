//! A small in-memory tracker (feature `server`): BEP 3/23/7 HTTP and BEP 15 UDP announce
//! and scrape, for tests and local swarms.
//!
//! Sans-IO like the rest of the crate: [`TrackerServer::handle_datagram`] takes a UDP
//! datagram and returns the reply datagram; [`TrackerServer::handle_http`] takes the
//! request target (`/announce?...`) of a parsed HTTP GET and returns the status and body.
//! The driver owns the sockets and the HTTP framing. Swarms and peers are capped
//! ([`ServerConfig`]); peers that stop announcing expire after
//! [`ServerConfig::peer_timeout`].

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use lt_bencode::Value;
use lt_core::{PeerId, Sha1Hash};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use tracing::trace;

use crate::http::percent_decode;
use crate::peers::encode_compact;
use crate::udp::{UdpRequest, UdpResponse, UdpScrapeCounts};
use crate::{Event, limits};

/// Settings of a [`TrackerServer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// `interval` told to clients. Default 1800 s.
    pub announce_interval: Duration,
    /// `min interval` told to HTTP clients. Default 60 s.
    pub min_interval: Duration,
    /// Peers not heard from for this long are dropped. Default 3600 s.
    pub peer_timeout: Duration,
    /// Most torrents tracked; announces for new torrents beyond it fail. Default 10,000.
    pub max_torrents: usize,
    /// Most peers per torrent; new peers beyond it get peers but are not stored.
    /// Default 10,000.
    pub max_peers_per_torrent: usize,
    /// Peers returned when the client does not say. Default 50.
    pub default_num_want: usize,
    /// Most peers returned in one reply. Default 200.
    pub max_num_want: usize,
    /// Seed for the connection-id secret and peer selection. `None` uses a fixed seed, so
    /// connection ids become guessable; pass a seed from the OS outside tests.
    pub rng_seed: Option<[u8; 32]>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            announce_interval: Duration::from_secs(1800),
            min_interval: Duration::from_secs(60),
            peer_timeout: Duration::from_secs(3600),
            max_torrents: 10_000,
            max_peers_per_torrent: 10_000,
            default_num_want: 50,
            max_num_want: 200,
            rng_seed: None,
        }
    }
}

/// An HTTP reply from [`TrackerServer::handle_http`]: the status code and a bencoded (or,
/// for 404, plain) body with content type `text/plain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpReply {
    /// 200, or 404 for a path that is neither announce nor scrape.
    pub status: u16,
    /// The body.
    pub body: Vec<u8>,
}

#[derive(Debug, Clone)]
struct PeerRec {
    addr: SocketAddr,
    peer_id: PeerId,
    seed: bool,
    last_seen: Instant,
}

#[derive(Debug, Default)]
struct Swarm {
    peers: Vec<PeerRec>,
    index: HashMap<SocketAddr, usize>,
    seeds: u32,
    downloaded: u32,
    last_sweep: Option<Instant>,
}

impl Swarm {
    fn counts(&self) -> (u32, u32, u32) {
        let total = u32::try_from(self.peers.len()).unwrap_or(u32::MAX);
        (
            self.seeds,
            total.saturating_sub(self.seeds),
            self.downloaded,
        )
    }

    fn remove(&mut self, addr: SocketAddr) {
        let Some(i) = self.index.remove(&addr) else {
            return;
        };
        let rec = self.peers.swap_remove(i);
        if rec.seed {
            self.seeds = self.seeds.saturating_sub(1);
        }
        if let Some(moved) = self.peers.get(i) {
            self.index.insert(moved.addr, i);
        }
    }

    fn sweep(&mut self, now: Instant, timeout: Duration) {
        if self
            .last_sweep
            .is_some_and(|t| now.saturating_duration_since(t) < timeout / 4)
        {
            return;
        }
        self.last_sweep = Some(now);
        let expired: Vec<SocketAddr> = self
            .peers
            .iter()
            .filter(|p| now.saturating_duration_since(p.last_seen) > timeout)
            .map(|p| p.addr)
            .collect();
        for a in expired {
            self.remove(a);
        }
    }
}

struct Announce {
    info_hash: Sha1Hash,
    peer_id: PeerId,
    addr: SocketAddr,
    left: u64,
    event: Event,
    num_want: Option<usize>,
}

struct AnnounceResult {
    complete: u32,
    incomplete: u32,
    peers: Vec<(SocketAddr, PeerId)>,
}

/// The tracker. See the [module docs](self).
#[derive(Debug)]
pub struct TrackerServer {
    config: ServerConfig,
    rng: ChaCha8Rng,
    secret: u64,
    epoch: Option<Instant>,
    torrents: HashMap<Sha1Hash, Swarm>,
}

impl TrackerServer {
    /// An empty tracker.
    pub fn new(config: ServerConfig) -> Self {
        let mut rng = ChaCha8Rng::from_seed(config.rng_seed.unwrap_or([0xa5; 32]));
        let secret = rng.next_u64();
        Self {
            config,
            rng,
            secret,
            epoch: None,
            torrents: HashMap::new(),
        }
    }

    /// Number of torrents with at least one peer record.
    pub fn torrent_count(&self) -> usize {
        self.torrents.len()
    }

    /// `(seeds, leechers, completed)` of a torrent.
    pub fn counts(&self, info_hash: &Sha1Hash) -> Option<(u32, u32, u32)> {
        self.torrents.get(info_hash).map(Swarm::counts)
    }

    /// Handles a BEP 15 datagram from `from` and returns the reply to send back, if any.
    /// Malformed datagrams get no reply; an announce or scrape with an unknown or expired
    /// connection id gets the error action.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        buf: &[u8],
    ) -> Option<Vec<u8>> {
        let Ok(req) = UdpRequest::decode(buf) else {
            trace!(%from, "malformed UDP tracker request");
            return None;
        };
        let reply = match req {
            UdpRequest::Connect { transaction_id } => UdpResponse::Connect {
                transaction_id,
                connection_id: self.connection_id(now, from, 0),
            },
            UdpRequest::Announce {
                connection_id,
                transaction_id,
                announce,
            } => {
                if !self.connection_id_ok(now, from, connection_id) {
                    return Some(error_reply(transaction_id, b"invalid connection id"));
                }
                if announce.port == 0 {
                    return Some(error_reply(transaction_id, b"invalid port"));
                }
                let a = Announce {
                    info_hash: announce.info_hash,
                    peer_id: announce.peer_id,
                    addr: SocketAddr::new(from.ip(), announce.port),
                    left: announce.left,
                    event: announce.event,
                    num_want: usize::try_from(announce.num_want).ok(),
                };
                match self.announce(now, &a) {
                    Ok(r) => UdpResponse::Announce {
                        transaction_id,
                        interval: u32::try_from(self.config.announce_interval.as_secs())
                            .unwrap_or(u32::MAX),
                        leechers: r.incomplete,
                        seeders: r.complete,
                        // BEP 15: peers of the socket's address family only.
                        peers: r
                            .peers
                            .into_iter()
                            .map(|(a, _)| a)
                            .filter(|a| a.is_ipv4() == from.is_ipv4())
                            .collect(),
                    },
                    Err(msg) => return Some(error_reply(transaction_id, msg.as_bytes())),
                }
            }
            UdpRequest::Scrape {
                connection_id,
                transaction_id,
                info_hashes,
            } => {
                if !self.connection_id_ok(now, from, connection_id) {
                    return Some(error_reply(transaction_id, b"invalid connection id"));
                }
                let entries = info_hashes
                    .iter()
                    .map(|h| {
                        let (seeders, leechers, completed) = self.counts(h).unwrap_or_default();
                        UdpScrapeCounts {
                            seeders,
                            completed,
                            leechers,
                        }
                    })
                    .collect();
                UdpResponse::Scrape {
                    transaction_id,
                    entries,
                }
            }
        };
        Some(reply.to_vec())
    }

    /// Handles an HTTP GET for `target` (path and query, e.g.
    /// `/announce?info_hash=...`) from `from`.
    pub fn handle_http(&mut self, now: Instant, from: IpAddr, target: &str) -> HttpReply {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let body = if path.ends_with("/announce") {
            self.http_announce(now, from, query)
        } else if path.ends_with("/scrape") {
            self.http_scrape(query)
        } else {
            return HttpReply {
                status: 404,
                body: b"not found".to_vec(),
            };
        };
        HttpReply { status: 200, body }
    }

    fn http_announce(&mut self, now: Instant, from: IpAddr, query: &str) -> Vec<u8> {
        let mut info_hash = None;
        let mut peer_id = None;
        let mut port = None;
        let mut left = 0u64;
        let mut event = Event::None;
        let mut num_want = None;
        let mut compact = false;
        let mut no_peer_id = false;
        for (k, v) in query_pairs(query) {
            match k {
                "info_hash" => info_hash = v.as_deref().and_then(Sha1Hash::from_slice),
                "peer_id" => peer_id = v.as_deref().and_then(PeerId::from_slice),
                "port" => port = parse_num::<u16>(v.as_deref()),
                "left" => left = parse_num(v.as_deref()).unwrap_or(0),
                "event" => event = Event::from_http(v.as_deref().unwrap_or_default()),
                "numwant" => num_want = parse_num(v.as_deref()),
                "compact" => compact = v.as_deref() == Some(b"1"),
                "no_peer_id" => no_peer_id = v.as_deref() == Some(b"1"),
                _ => {}
            }
        }
        let (Some(info_hash), Some(peer_id)) = (info_hash, peer_id) else {
            return failure("missing or malformed info_hash or peer_id");
        };
        let Some(port) = port.filter(|&p| p != 0) else {
            return failure("invalid port");
        };
        let a = Announce {
            info_hash,
            peer_id,
            addr: SocketAddr::new(from, port),
            left,
            event,
            num_want,
        };
        let r = match self.announce(now, &a) {
            Ok(r) => r,
            Err(msg) => return failure(msg),
        };
        let mut d = vec![
            (
                "interval",
                Value::Int(
                    i64::try_from(self.config.announce_interval.as_secs()).unwrap_or(i64::MAX),
                ),
            ),
            (
                "min interval",
                Value::Int(i64::try_from(self.config.min_interval.as_secs()).unwrap_or(i64::MAX)),
            ),
            ("complete", Value::Int(i64::from(r.complete))),
            ("incomplete", Value::Int(i64::from(r.incomplete))),
        ];
        if compact {
            let mut v4 = Vec::new();
            let mut v6 = Vec::new();
            for (addr, _) in &r.peers {
                if addr.is_ipv4() {
                    encode_compact(*addr, &mut v4);
                } else {
                    encode_compact(*addr, &mut v6);
                }
            }
            d.push(("peers", Value::Bytes(v4)));
            if !v6.is_empty() {
                d.push(("peers6", Value::Bytes(v6)));
            }
        } else {
            let list = r
                .peers
                .iter()
                .map(|(addr, id)| {
                    let mut p = vec![
                        ("ip", Value::Bytes(addr.ip().to_string().into_bytes())),
                        ("port", Value::Int(i64::from(addr.port()))),
                    ];
                    if !no_peer_id {
                        p.push(("peer id", Value::Bytes(id.as_bytes().to_vec())));
                    }
                    Value::dict(p)
                })
                .collect();
            d.push(("peers", Value::List(list)));
        }
        Value::dict(d).to_bytes()
    }

    fn http_scrape(&self, query: &str) -> Vec<u8> {
        let mut hashes: Vec<Sha1Hash> = query_pairs(query)
            .filter(|(k, _)| *k == "info_hash")
            .filter_map(|(_, v)| v.as_deref().and_then(Sha1Hash::from_slice))
            .take(limits::MAX_SCRAPE_FILES)
            .collect();
        if hashes.is_empty() {
            // A full scrape, bounded.
            hashes = self
                .torrents
                .keys()
                .take(limits::MAX_SCRAPE_FILES)
                .copied()
                .collect();
        }
        let files = hashes
            .iter()
            .filter_map(|h| {
                let (c, i, d) = self.counts(h)?;
                Some((
                    h.as_bytes().to_vec(),
                    Value::dict([
                        ("complete", Value::Int(i64::from(c))),
                        ("downloaded", Value::Int(i64::from(d))),
                        ("incomplete", Value::Int(i64::from(i))),
                    ]),
                ))
            })
            .collect();
        Value::dict([("files", Value::Dict(files))]).to_bytes()
    }

    fn announce(&mut self, now: Instant, a: &Announce) -> Result<AnnounceResult, &'static str> {
        let torrents = self.torrents.len();
        let swarm = match self.torrents.entry(a.info_hash) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(_) if a.event == Event::Stopped => {
                return Ok(AnnounceResult {
                    complete: 0,
                    incomplete: 0,
                    peers: Vec::new(),
                });
            }
            Entry::Vacant(_) if torrents >= self.config.max_torrents => {
                return Err("tracker full");
            }
            Entry::Vacant(e) => e.insert(Swarm::default()),
        };
        swarm.sweep(now, self.config.peer_timeout);
        let seed = a.left == 0;
        if a.event == Event::Stopped {
            swarm.remove(a.addr);
            // The swarm stays (bounded by `max_torrents`) so its `downloaded` count lives on.
            let (complete, incomplete, _) = swarm.counts();
            return Ok(AnnounceResult {
                complete,
                incomplete,
                peers: Vec::new(),
            });
        }
        match swarm.index.get(&a.addr) {
            Some(&i) => {
                if let Some(p) = swarm.peers.get_mut(i) {
                    if seed && !p.seed {
                        swarm.seeds = swarm.seeds.saturating_add(1);
                        if a.event == Event::Completed {
                            swarm.downloaded = swarm.downloaded.saturating_add(1);
                        }
                    } else if !seed && p.seed {
                        swarm.seeds = swarm.seeds.saturating_sub(1);
                    }
                    p.seed = seed;
                    p.peer_id = a.peer_id;
                    p.last_seen = now;
                }
            }
            None if swarm.peers.len() < self.config.max_peers_per_torrent => {
                swarm.index.insert(a.addr, swarm.peers.len());
                swarm.peers.push(PeerRec {
                    addr: a.addr,
                    peer_id: a.peer_id,
                    seed,
                    last_seen: now,
                });
                if seed {
                    swarm.seeds = swarm.seeds.saturating_add(1);
                    if a.event == Event::Completed {
                        swarm.downloaded = swarm.downloaded.saturating_add(1);
                    }
                }
            }
            None => {}
        }
        let want = a
            .num_want
            .unwrap_or(self.config.default_num_want)
            .min(self.config.max_num_want);
        let n = swarm.peers.len();
        let mut peers = Vec::with_capacity(want.min(n));
        if n > 0 {
            // A random window of the peer list, skipping the announcer (and, for seeds,
            // other seeds, which have nothing to trade).
            let start = usize::try_from(self.rng.next_u64() % (n as u64)).unwrap_or(0);
            for k in 0..n {
                if peers.len() >= want {
                    break;
                }
                let Some(p) = swarm.peers.get((start + k) % n) else {
                    continue;
                };
                if p.addr == a.addr || (seed && p.seed) {
                    continue;
                }
                peers.push((p.addr, p.peer_id));
            }
        }
        let (complete, incomplete, _) = swarm.counts();
        Ok(AnnounceResult {
            complete,
            incomplete,
            peers,
        })
    }

    /// Connection ids are a keyed hash of the client's IP address and the minute since the
    /// first datagram, so the server stores nothing per connection. BEP 15: an id is
    /// accepted for (at least) two minutes. The port is left out, like opentracker does:
    /// libtorrent shares one connection-id cache between all sessions of a process.
    fn connection_id(&mut self, now: Instant, from: SocketAddr, minutes_back: u64) -> u64 {
        let epoch = *self.epoch.get_or_insert(now);
        let minute = now.saturating_duration_since(epoch).as_secs() / 60;
        let mut h = DefaultHasher::new();
        self.secret.hash(&mut h);
        from.ip().hash(&mut h);
        minute.saturating_sub(minutes_back).hash(&mut h);
        h.finish()
    }

    fn connection_id_ok(&mut self, now: Instant, from: SocketAddr, id: u64) -> bool {
        (0..=2).any(|back| self.connection_id(now, from, back) == id)
    }
}

fn error_reply(transaction_id: u32, msg: &[u8]) -> Vec<u8> {
    UdpResponse::Error {
        transaction_id,
        message: msg.to_vec(),
    }
    .to_vec()
}

fn failure(msg: &str) -> Vec<u8> {
    Value::dict([("failure reason", Value::from(msg))]).to_bytes()
}

fn query_pairs(query: &str) -> impl Iterator<Item = (&str, Option<Vec<u8>>)> {
    query.split('&').filter(|s| !s.is_empty()).map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k, percent_decode(v.as_bytes()))
    })
}

fn parse_num<T: std::str::FromStr>(v: Option<&[u8]>) -> Option<T> {
    std::str::from_utf8(v?).ok()?.parse().ok()
}
