//! Web seeds in the engine, without I/O: contiguous runs of whole pieces, bytes in any
//! chunk sizes, back-off after a failure (the server's `Retry-After` first), a ban for data
//! that fails the hash check.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use lt_core::{Bitfield, PeerId};
use lt_engine::web::{WebError, WebPart, WebRequest};
use lt_engine::{Action, AddTorrent, Alert, DiskDone, DiskJob, Engine, Input, Settings, TorrentId};
use lt_metainfo::{CreateTorrent, TorrentInfo};

const PIECE: usize = 64 << 10;

struct Leech {
    engine: Engine,
    torrent: TorrentId,
    data: Vec<u8>,
    now: Instant,
    requests: Vec<WebRequest>,
    cancels: usize,
    written: Vec<(u32, bool)>,
    /// Pieces handed to the disk and not yet answered: (piece, bytes match the torrent).
    writes: Vec<(u32, bool)>,
}

impl Leech {
    fn new() -> Self {
        let data: Vec<u8> = (0..8 * PIECE)
            .map(|i| u8::try_from(i * 13 % 251).unwrap())
            .collect();
        let bytes = CreateTorrent::from_memory("p.bin", data.clone())
            .piece_size(u32::try_from(PIECE).unwrap())
            .web_seed("http://h/files/")
            .generate()
            .unwrap();
        let info = Arc::new(TorrentInfo::from_bytes(&bytes).unwrap());
        let now = Instant::now();
        let settings = Settings {
            urlseed_max_request_bytes: 4 * PIECE as u64,
            urlseed_pipeline_size: 2,
            ..Settings::default()
        };
        let mut engine = Engine::new(settings, PeerId::new([1; 20]), [3; 32], now);
        let torrent = engine.add_torrent(now, AddTorrent::new(info)).unwrap();
        let mut leech = Self {
            engine,
            torrent,
            data,
            now,
            requests: Vec::new(),
            cancels: 0,
            written: Vec::new(),
            writes: Vec::new(),
        };
        leech.pump();
        leech
    }

    /// Carries out the engine's actions: the check finds nothing, pieces are kept for the
    /// test to answer, web requests are collected.
    fn pump(&mut self) {
        while let Some(a) = self.engine.poll_action() {
            match a {
                Action::Disk(DiskJob::Check { torrent, .. }) => {
                    let done = DiskDone::Checked {
                        torrent,
                        result: Ok(Bitfield::new(8)),
                    };
                    let _ = self.engine.handle_input(self.now, Input::Disk(done));
                }
                Action::Disk(DiskJob::WritePiece { piece, blocks, .. }) => {
                    let got: Vec<u8> = blocks.iter().flat_map(|b| b.iter().copied()).collect();
                    let at = piece.as_usize() * PIECE;
                    self.writes
                        .push((piece.get(), got == self.data[at..at + PIECE]));
                }
                Action::WebRequest(r) => self.requests.push(r),
                Action::WebCancel { .. } => self.cancels += 1,
                Action::Announce { .. } | Action::DhtAnnounce { .. } => {}
                other => panic!("unexpected action {other:?}"),
            }
        }
    }

    fn tick(&mut self, by: Duration) {
        self.now += by;
        let _ = self.engine.handle_input(self.now, Input::Timeout);
        self.pump();
    }

    /// Answers the disk's writes: a piece passes when its bytes are the torrent's.
    fn write_all(&mut self) {
        for (piece, ok) in std::mem::take(&mut self.writes) {
            let done = DiskDone::PieceWritten {
                torrent: self.torrent,
                piece: lt_core::PieceIndex::new(piece),
                passed: ok,
                error: None,
            };
            let _ = self.engine.handle_input(self.now, Input::Disk(done));
            self.written.push((piece, ok));
            self.pump();
        }
    }

    /// Sends a request's bytes in 10,000-byte chunks (`corrupt`: one byte flipped), then
    /// ends it with `result`.
    fn answer(&mut self, r: &WebRequest, corrupt: bool, result: Result<(), WebError>) {
        let start = match &r.parts[0] {
            WebPart::Get { start, .. } => usize::try_from(*start).unwrap(),
            WebPart::Zeros(_) => panic!("no pad files here"),
        };
        let len = usize::try_from(r.len()).unwrap();
        let mut bytes = self.data[start..start + len].to_vec();
        if corrupt {
            bytes[len / 2] ^= 1;
        }
        for chunk in bytes.chunks(10_000) {
            let input = Input::WebData {
                seed: r.seed,
                request: r.request,
                data: Bytes::copy_from_slice(chunk),
            };
            let _ = self.engine.handle_input(self.now, input);
            self.pump();
        }
        let done = Input::WebDone {
            seed: r.seed,
            request: r.request,
            result,
        };
        let _ = self.engine.handle_input(self.now, done);
        self.pump();
    }

    fn url_seed_alerts(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(a) = self.engine.poll_alert() {
            if let Alert::UrlSeed { error, .. } = a {
                out.push(error);
            }
        }
        out
    }
}

fn range(r: &WebRequest) -> (u64, u64) {
    match &r.parts[..] {
        [
            WebPart::Get {
                url,
                range_header: true,
                start,
                len,
            },
        ] => {
            assert_eq!(url, "http://h/files/p.bin");
            (*start, *len)
        }
        other => panic!("one ranged GET expected: {other:?}"),
    }
}

#[test]
fn web_requests_start_as_soon_as_the_check_ends() {
    // No tick: a torrent whose files were checked asks its web seed at once (waiting for
    // the next housekeeping tick cost 15 % of a 1 GiB download from nginx).
    let l = Leech::new();
    assert_eq!(l.requests.len(), 2, "{:?}", l.requests);
}

#[test]
fn runs_of_whole_pieces_back_off_and_ban() {
    let mut l = Leech::new();
    l.tick(Duration::from_secs(1));
    // Two requests in flight, each a run of whole pieces of at most four pieces.
    assert_eq!(l.requests.len(), 2, "{:?}", l.requests);
    for r in &l.requests {
        let (start, len) = range(r);
        assert_eq!(start % PIECE as u64, 0);
        assert_eq!(len % PIECE as u64, 0);
        assert!(len <= 4 * PIECE as u64 && len > 0);
    }
    let status = l.engine.status(l.now, l.torrent).unwrap();
    assert_eq!(status.num_web_seeds, 1);

    // The first arrives whole, in odd chunks: its pieces go to the disk and pass.
    let first = l.requests.remove(0);
    l.answer(&first, false, Ok(()));
    l.write_all();
    let passed = l.written.iter().filter(|w| w.1).count();
    assert_eq!(passed as u64, first.len() / PIECE as u64);

    // The second fails with a Retry-After of 5 s: nothing is asked before then.
    let second = l.requests.remove(0);
    // A new request may have started after the first ended; it is cancelled with the rest.
    l.requests.clear();
    let busy = WebError {
        status: Some(503),
        retry_after: Some(Duration::from_secs(5)),
        message: "busy".into(),
    };
    let input = Input::WebDone {
        seed: second.seed,
        request: second.request,
        result: Err(busy),
    };
    let _ = l.engine.handle_input(l.now, input);
    l.pump();
    let alerts = l.url_seed_alerts();
    assert!(alerts.iter().any(|a| a.contains("503")), "{alerts:?}");
    for _ in 0..4 {
        l.tick(Duration::from_secs(1));
    }
    assert!(
        l.requests.is_empty(),
        "asked during the back-off: {:?}",
        l.requests
    );
    l.tick(Duration::from_secs(1));
    assert!(!l.requests.is_empty(), "not asked again after the back-off");

    // Now it sends a corrupt piece: banned, never asked again.
    let third = l.requests.remove(0);
    l.requests.clear();
    l.answer(&third, true, Ok(()));
    l.write_all();
    assert!(l.written.iter().any(|w| !w.1));
    let alerts = l.url_seed_alerts();
    assert!(alerts.iter().any(|a| a.contains("banned")), "{alerts:?}");
    assert!(l.cancels > 0);
    let status = l.engine.status(l.now, l.torrent).unwrap();
    assert_eq!(status.web_seeds_banned, 1);
    for _ in 0..40 {
        l.tick(Duration::from_secs(1));
    }
    assert!(
        l.requests.is_empty(),
        "a banned seed was asked: {:?}",
        l.requests
    );
    assert_eq!(
        l.engine.web_seeds(l.torrent, lt_metainfo::WebSeedKind::Url),
        vec!["http://h/files/".to_owned()]
    );
}
