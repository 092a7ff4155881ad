//! Web seeds (BEP 19 url seeds, BEP 17 HTTP seeds) as sources beside peers: the picker
//! gives each a contiguous run of whole pieces, [`Action::WebRequest`] asks the driver to
//! fetch it, the bytes come back as [`Input::WebData`](crate::Input::WebData) and go into
//! the partial pieces like a peer's blocks (hash-checked the same way), and
//! [`Input::WebDone`](crate::Input::WebDone) ends the request. A failure backs the seed
//! off (`urlseed_wait_retry`, doubling, or the server's `Retry-After`); a seed that sends a
//! piece failing its hash is banned for the torrent.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use lt_core::PieceIndex;
use lt_metainfo::{WebSeed, WebSeedKind};
use lt_picker::{Block, PickOptions, PieceState, Speed};
use tracing::debug;

use crate::alert::Alert;
use crate::rate::Rate;
use crate::web::{WebError, WebRequest, plan};
use crate::{Action, ConnId, TorrentId};

use super::Engine;
use super::conn::Conn;

/// The address web seeds stand under among a piece's senders (they are told apart by id).
const UNKNOWN_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);

/// Longest back-off after repeated failures.
const MAX_BACKOFF: Duration = Duration::from_secs(600);

/// One web seed of a torrent.
#[derive(Debug)]
pub(crate) struct WebSource {
    pub(crate) seed: WebSeed,
    /// Its id: the picker's key for it and the contributor id of what it sends.
    pub(crate) id: ConnId,
    pub(crate) requests: VecDeque<WebReq>,
    /// Not asked again before then (after a failure).
    pub(crate) retry_at: Option<Instant>,
    /// Failures in a row.
    pub(crate) failures: u32,
    pub(crate) hashfails: u32,
    pub(crate) banned: bool,
    pub(crate) down: Rate,
    pub(crate) last_error: Option<String>,
    /// The server is on the local network (exempt from the rate limits while
    /// `ignore_limits_on_local_network`).
    pub(crate) local: bool,
}

/// A request in flight: the blocks it covers, in order, and the bytes of the block being
/// filled.
#[derive(Debug)]
pub(crate) struct WebReq {
    pub(crate) id: u64,
    pub(crate) blocks: VecDeque<(Block, u32)>,
    pub(crate) partial: BytesMut,
}

impl WebSource {
    pub(crate) fn new(seed: WebSeed, id: ConnId) -> Self {
        Self {
            local: crate::torrent::url_is_local(&seed.url),
            seed,
            id,
            requests: VecDeque::new(),
            retry_at: None,
            failures: 0,
            hashfails: 0,
            banned: false,
            down: Rate::default(),
            last_error: None,
        }
    }
}

impl Engine {
    /// A new id for a web seed, distinct from every connection's and web seed's.
    fn new_web_id(&mut self, torrent: TorrentId) -> ConnId {
        // `new_conn_id` skips the ids of connections and web seeds.
        let id = self.new_conn_id();
        self.web_ids.insert(id, torrent);
        id
    }

    /// Adds a web seed to a torrent (the manual's `add_url_seed` / `add_http_seed`); one
    /// already there is left alone.
    pub fn add_web_seed(&mut self, now: Instant, torrent: TorrentId, seed: WebSeed) {
        let Some(t) = self.torrents.get(&torrent) else {
            return;
        };
        if t.web.iter().any(|w| w.seed == seed) {
            return;
        }
        let id = self.new_web_id(torrent);
        if let Some(t) = self.torrents.get_mut(&torrent) {
            t.web.push(WebSource::new(seed, id));
        }
        self.fill_web(now, torrent);
    }

    /// Adds the torrent's own web seeds and `extra` ones (when it is added).
    pub(super) fn add_web_seeds(&mut self, now: Instant, torrent: TorrentId, extra: Vec<WebSeed>) {
        let Some(t) = self.torrents.get(&torrent) else {
            return;
        };
        let mut all: Vec<WebSeed> = t.info.web_seeds().to_vec();
        all.extend(extra);
        for seed in all {
            self.add_web_seed(now, torrent, seed);
        }
    }

    /// Each web seed's rate, and the requests of seeds whose back-off ended: every
    /// housekeeping tick, for the awake torrents that have web seeds.
    pub(super) fn tick_web(&mut self, now: Instant) {
        let ids: Vec<TorrentId> = self
            .torrents
            .awake_iter()
            .filter(|(_, t)| !t.web.is_empty())
            .map(|(id, _)| id)
            .collect();
        for id in ids {
            if let Some(t) = self.torrents.get_mut(&id) {
                for w in &mut t.web {
                    w.down.tick(now);
                }
            }
            self.fill_web(now, id);
        }
    }

    /// Removes a web seed (the manual's `remove_url_seed` / `remove_http_seed`); its
    /// requests are cancelled.
    pub fn remove_web_seed(&mut self, torrent: TorrentId, seed: &WebSeed) {
        let Some(t) = self.torrents.get_mut(&torrent) else {
            return;
        };
        let Some(i) = t.web.iter().position(|w| &w.seed == seed) else {
            return;
        };
        let w = t.web.remove(i);
        let _ = t.picker.remove_peer(Conn::key(w.id));
        self.web_ids.remove(&w.id);
        self.actions.push_back(Action::WebCancel { seed: w.id });
    }

    /// The torrent's web seeds of one kind (the manual's `url_seeds` / `http_seeds`),
    /// banned ones included.
    #[must_use]
    pub fn web_seeds(&self, torrent: TorrentId, kind: WebSeedKind) -> Vec<String> {
        self.torrents.get(&torrent).map_or_else(Vec::new, |t| {
            t.web
                .iter()
                .filter(|w| w.seed.kind == kind)
                .map(|w| w.seed.url.clone())
                .collect()
        })
    }

    /// Cancels every web request of a torrent (paused, removed, finished).
    pub(super) fn stop_web(&mut self, id: TorrentId) {
        let Some(t) = self.torrents.get_mut(&id) else {
            return;
        };
        for w in &mut t.web {
            if w.requests.is_empty() {
                continue;
            }
            w.requests.clear();
            let _ = t.picker.remove_peer(Conn::key(w.id));
            self.actions.push_back(Action::WebCancel { seed: w.id });
        }
    }

    /// Starts web requests for a torrent while its web seeds have room, in whole
    /// contiguous runs of pieces.
    pub(super) fn fill_web(&mut self, now: Instant, id: TorrentId) {
        let max_disk = self.settings.max_queued_disk_bytes;
        let pipeline = self.settings.urlseed_pipeline_size.max(1);
        let max_bytes = self.settings.urlseed_max_request_bytes.max(1);
        let max_seeds = self.settings.max_web_seed_connections;
        let ignore_local = self.settings.ignore_limits_on_local_network;
        let session_limited = self.down_bucket.rate() > 0;
        let session_ok = self.down_bucket.available();
        let Some(t) = self.torrents.get_mut(&id) else {
            return;
        };
        if t.web.is_empty()
            || !t.has_metadata
            || !t.is_active()
            || t.upload_mode()
            || t.is_finished()
            || t.disk_bytes >= max_disk
        {
            return;
        }
        let any_limit = session_limited || t.down_bucket.rate() > 0;
        let limits_ok = session_ok && t.down_bucket.available();
        let piece_len = u64::from(t.layout.piece_len());
        let mut busy = t.web.iter().filter(|w| !w.requests.is_empty()).count();
        let mut out = Vec::new();
        for wi in 0..t.web.len() {
            let w = &t.web[wi];
            let idle = w.requests.is_empty();
            // Under a rate limit one piece at a time, so that the limit holds.
            let limited = any_limit && !(ignore_local && w.local);
            let (pipeline, max_bytes) = if limited {
                (1, 1)
            } else {
                (pipeline, max_bytes)
            };
            if (limited && !limits_ok)
                || w.banned
                || w.retry_at.is_some_and(|r| now < r)
                || w.requests.len() >= pipeline
                || (idle && busy >= max_seeds)
            {
                continue;
            }
            let key = Conn::key(w.id);
            if t.picker.add_peer(key).is_ok() {
                let _ = t.picker.peer_have_all(key);
            }
            let mut started = false;
            while t.web[wi].requests.len() < pipeline {
                let mut blocks = Vec::new();
                let opts = PickOptions {
                    reverse: false,
                    on_parole: false,
                    prefer_whole_pieces: 1,
                    speed: Speed::Fast,
                    choked: false,
                    time_critical_only: false,
                };
                let per_piece = t.layout.blocks_per_piece() as usize;
                if t.picker
                    .pick_into(now, key, per_piece, &opts, &mut blocks)
                    .is_err()
                    || blocks.is_empty()
                {
                    break;
                }
                blocks.sort_unstable_by_key(|b| (b.piece.get(), b.block.get()));
                // Grow the run with the open pieces that follow, up to the request size.
                let mut last = blocks.last().map_or(0, |b| b.piece.get());
                let mut bytes = (u64::from(last) + 1 - u64::from(blocks[0].piece.get()))
                    .saturating_mul(piece_len);
                while bytes + piece_len <= max_bytes.max(piece_len) {
                    let next = PieceIndex::new(last + 1);
                    if last + 1 >= t.layout.num_pieces()
                        || t.picker.piece_state(next) != Ok(PieceState::Open)
                        || t.picker.piece_priority(next).is_dont_download()
                    {
                        break;
                    }
                    for b in 0..t.layout.blocks_in_piece(last + 1) {
                        let block = Block::new(last + 1, b);
                        if t.picker.request_block(now, key, block) == Ok(true) {
                            blocks.push(block);
                        }
                    }
                    last += 1;
                    bytes += piece_len;
                }
                // One request per contiguous run.
                let mut runs: Vec<Vec<(Block, u32)>> = Vec::new();
                let mut end = None;
                for b in blocks {
                    let Some((begin, len)) = t.layout.request(b) else {
                        let _ = t.picker.cancel_request(key, b);
                        continue;
                    };
                    let start = u64::from(b.piece.get()) * piece_len + u64::from(begin);
                    match runs.last_mut() {
                        Some(run) if end == Some(start) => run.push((b, len)),
                        _ => runs.push(vec![(b, len)]),
                    }
                    end = Some(start + u64::from(len));
                }
                for run in runs {
                    let (first, _) = run[0];
                    let start = u64::from(first.piece.get()) * piece_len
                        + u64::from(t.layout.request(first).map_or(0, |r| r.0));
                    let len: u64 = run.iter().map(|&(_, l)| u64::from(l)).sum();
                    let request = self.next_web_request;
                    self.next_web_request += 1;
                    let w = &mut t.web[wi];
                    let parts = plan(&w.seed, t.info.files(), t.wire_hash.as_bytes(), start, len);
                    w.requests.push_back(WebReq {
                        id: request,
                        blocks: run.into(),
                        partial: BytesMut::new(),
                    });
                    out.push(WebRequest {
                        torrent: id,
                        seed: w.id,
                        request,
                        url: w.seed.url.clone(),
                        parts,
                    });
                }
                started = true;
            }
            if started && idle {
                busy += 1;
            }
        }
        for r in out {
            debug!(torrent = %id, url = %r.url, request = r.request, "web request");
            self.actions.push_back(Action::WebRequest(r));
        }
    }

    /// Bytes of a web request arrived, in order.
    pub(super) fn web_data(&mut self, now: Instant, seed: ConnId, request: u64, mut data: Bytes) {
        let Some(&id) = self.web_ids.get(&seed) else {
            return;
        };
        let mut done = Vec::new();
        {
            let Some(t) = self.torrents.get_mut(&id) else {
                return;
            };
            let Some(w) = t.web.iter_mut().find(|w| w.id == seed) else {
                return;
            };
            let Some(r) = w.requests.iter_mut().find(|r| r.id == request) else {
                return;
            };
            let len = data.len() as u64;
            w.down.add(len);
            t.total_download += len;
            t.down.add(len);
            if !(self.settings.ignore_limits_on_local_network && w.local) {
                t.down_bucket.spend(len);
                self.down_bucket.spend(len);
            }
            while !data.is_empty() {
                let Some(&(block, len)) = r.blocks.front() else {
                    // More than was asked for: the rest is dropped.
                    t.total_redundant += data.len() as u64;
                    break;
                };
                let want = len as usize - r.partial.len();
                let take = data.split_to(want.min(data.len()));
                let whole = if r.partial.is_empty() && take.len() == len as usize {
                    take
                } else {
                    r.partial.extend_from_slice(&take);
                    if r.partial.len() < len as usize {
                        continue;
                    }
                    r.partial.split().freeze()
                };
                r.blocks.pop_front();
                done.push((block, whole));
            }
        }
        let key = Conn::key(seed);
        for (block, bytes) in done {
            if let Err(e) = self.store_block(now, id, key, seed, UNKNOWN_ADDR, block, bytes) {
                self.web_failed(
                    now,
                    id,
                    seed,
                    &WebError {
                        status: None,
                        retry_after: None,
                        message: e.to_string(),
                    },
                );
                return;
            }
        }
        self.fill_web(now, id);
    }

    /// A web request ended: a success that left blocks unsent is a failure too.
    pub(super) fn web_done(
        &mut self,
        now: Instant,
        seed: ConnId,
        request: u64,
        result: Result<(), WebError>,
    ) {
        let Some(&id) = self.web_ids.get(&seed) else {
            return;
        };
        let Some(t) = self.torrents.get_mut(&id) else {
            return;
        };
        let key = Conn::key(seed);
        let Some(w) = t.web.iter_mut().find(|w| w.id == seed) else {
            return;
        };
        let Some(i) = w.requests.iter().position(|r| r.id == request) else {
            return;
        };
        let Some(r) = w.requests.remove(i) else {
            return;
        };
        let short = !r.blocks.is_empty();
        for &(b, _) in &r.blocks {
            let _ = t.picker.cancel_request(key, b);
        }
        match result {
            Ok(()) if !short => {
                w.failures = 0;
                w.last_error = None;
                self.fill_web(now, id);
            }
            Ok(()) => {
                let error = WebError {
                    status: None,
                    retry_after: None,
                    message: format!("the reply ended {} blocks short", r.blocks.len()),
                };
                self.web_failed(now, id, seed, &error);
            }
            Err(error) => self.web_failed(now, id, seed, &error),
        }
    }

    /// A web seed failed: its requests are cancelled and it waits before it is asked again.
    fn web_failed(&mut self, now: Instant, id: TorrentId, seed: ConnId, error: &WebError) {
        let base = self.settings.urlseed_wait_retry;
        let Some(t) = self.torrents.get_mut(&id) else {
            return;
        };
        let key = Conn::key(seed);
        let Some(w) = t.web.iter_mut().find(|w| w.id == seed) else {
            return;
        };
        w.failures = w.failures.saturating_add(1);
        let backoff = error.retry_after.unwrap_or_else(|| {
            base.saturating_mul(1 << (w.failures - 1).min(8))
                .min(MAX_BACKOFF)
        });
        w.retry_at = Some(now + backoff);
        w.last_error = Some(error.to_string());
        let url = w.seed.url.clone();
        if !w.requests.is_empty() {
            w.requests.clear();
            self.actions.push_back(Action::WebCancel { seed });
        }
        let _ = t.picker.remove_peer(key);
        debug!(torrent = %id, %url, %error, ?backoff, "web seed failed");
        self.alerts.push(Alert::UrlSeed {
            torrent: id,
            url,
            error: error.to_string(),
        });
        self.fill_torrent(now, id);
    }

    /// A piece a web seed sent failed its hash: the seed is banned when it was the only
    /// sender or has failed before.
    pub(super) fn web_hash_failed(&mut self, id: TorrentId, seed: ConnId, alone: bool) {
        let smart_ban = self.settings.smart_ban;
        let Some(t) = self.torrents.get_mut(&id) else {
            return;
        };
        let Some(w) = t.web.iter_mut().find(|w| w.id == seed) else {
            return;
        };
        w.hashfails += 1;
        if !(smart_ban && (alone || w.hashfails >= 2)) || w.banned {
            return;
        }
        w.banned = true;
        let url = w.seed.url.clone();
        let error = "banned: it sent data that failed the hash check".to_owned();
        w.last_error = Some(error.clone());
        if !w.requests.is_empty() {
            w.requests.clear();
            self.actions.push_back(Action::WebCancel { seed });
        }
        let _ = t.picker.remove_peer(Conn::key(seed));
        debug!(torrent = %id, %url, "web seed banned");
        self.alerts.push(Alert::UrlSeed {
            torrent: id,
            url,
            error,
        });
    }

    /// Whether `cid` is one of the torrent's web seeds.
    pub(super) fn is_web(&self, cid: ConnId) -> bool {
        self.web_ids.contains_key(&cid)
    }
}
