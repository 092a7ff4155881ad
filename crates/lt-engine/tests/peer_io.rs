//! The engine against one remote peer speaking the wire protocol through lt-wire, with the
//! test as the driver: back-pressure on a peer that does not read, and the dial fallback
//! across transports and encryption.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use lt_core::{Bitfield, PeerId, PieceIndex};
use lt_engine::{
    Action, AddTorrent, ConnId, DiskDone, DiskJob, Engine, Handshake, Input, IoError, Settings,
    TorrentId, Transport,
};
use lt_metainfo::{CreateTorrent, TorrentInfo};
use lt_wire::mse::EncPolicy;
use lt_wire::{BlockRequest, PeerConfig, PeerConnection, PeerEvent, PieceLayout, TorrentParams};

const BLOCK: u32 = 16 * 1024;

/// A seeding engine, its torrent and the payload.
struct Seed {
    engine: Engine,
    torrent: TorrentId,
    info: Arc<TorrentInfo>,
    data: Vec<u8>,
    now: Instant,
    /// Connections the engine closed, as `pump` saw them.
    closes: Vec<ConnId>,
}

impl Seed {
    fn new(settings: Settings, len: usize) -> Self {
        let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        let bytes = CreateTorrent::from_memory("p.bin", data.clone())
            .piece_size(256 * 1024)
            .generate()
            .unwrap();
        let info = Arc::new(TorrentInfo::from_bytes(&bytes).unwrap());
        let now = Instant::now();
        let mut engine = Engine::new(settings, PeerId::new([1; 20]), [3; 32], now);
        let torrent = engine
            .add_torrent(now, AddTorrent::new(Arc::clone(&info)))
            .unwrap();
        let mut seed = Self {
            engine,
            torrent,
            info,
            data,
            now,
            closes: Vec::new(),
        };
        // The check finds every piece.
        let n = seed.info.num_pieces() as usize;
        let mut checked = false;
        while let Some(a) = seed.engine.poll_action() {
            if let Action::Disk(DiskJob::Check { torrent, .. }) = a {
                let done = DiskDone::Checked {
                    torrent,
                    result: Ok(Bitfield::full(n)),
                };
                let _ = seed.engine.handle_input(now, Input::Disk(done));
                checked = true;
            }
        }
        assert!(checked);
        seed
    }

    fn params(&self) -> TorrentParams {
        TorrentParams {
            info_hash: self.info.info_hash(),
            layout: Some(PieceLayout {
                num_pieces: self.info.num_pieces(),
                piece_length: self.info.piece_length(),
                total_length: self.info.total_size(),
            }),
            metadata_size: None,
        }
    }

    /// Carries out the engine's actions: disk reads are answered at once, what it sends to
    /// `conn` goes to `remote` (and is counted in `*sent`), nothing is reported written.
    fn pump(&mut self, conn: ConnId, remote: &mut PeerConnection, sent: &mut usize) {
        loop {
            let mut progress = false;
            while let Some(a) = self.engine.poll_action() {
                progress = true;
                match a {
                    // Bytes for another connection (closing) go nowhere.
                    Action::Send { conn: c, .. } if c != conn => {}
                    Action::Close { conn } => self.closes.push(conn),
                    Action::Send { bufs, .. } => {
                        for b in bufs {
                            *sent += b.len();
                            remote.handle_bytes(self.now, &b).unwrap();
                        }
                    }
                    Action::Disk(DiskJob::Read {
                        torrent,
                        conn,
                        request,
                    }) => {
                        let start = request.piece.as_usize() * self.info.piece_length() as usize
                            + request.begin as usize;
                        let data =
                            Bytes::copy_from_slice(&self.data[start..start + request.len as usize]);
                        let done = DiskDone::Read {
                            torrent,
                            conn,
                            request,
                            result: Ok(data),
                        };
                        let _ = self.engine.handle_input(self.now, Input::Disk(done));
                    }
                    other => panic!("unexpected action {other:?}"),
                }
            }
            while let Some(b) = remote.poll_transmit() {
                progress = true;
                let data = BytesMut::from(&b[..]);
                let _ = self
                    .engine
                    .handle_input(self.now, Input::Received { conn, data });
            }
            if !progress {
                return;
            }
        }
    }

    /// A peer at `addr` connects and completes its handshake (no interest either way).
    fn accept(&mut self, addr: SocketAddr, id: u8) -> Option<(ConnId, PeerConnection)> {
        let incoming = Input::Incoming {
            addr,
            transport: Transport::Tcp,
            handshake: Handshake::default(),
        };
        let conn = self.engine.handle_input(self.now, incoming)?;
        let mut remote = PeerConnection::outgoing(
            PeerConfig::new(PeerId::new([id; 20])),
            self.now,
            self.params(),
            None,
            BytesMut::new(),
        )
        .unwrap();
        let mut sent = 0;
        self.pump(conn, &mut remote, &mut sent);
        Some((conn, remote))
    }

    /// The connections the engine closed since the last call.
    fn closed(&mut self) -> Vec<ConnId> {
        let mut closed = std::mem::take(&mut self.closes);
        while let Some(a) = self.engine.poll_action() {
            if let Action::Close { conn } = a {
                closed.push(conn);
            }
        }
        closed
    }

    fn tick(&mut self, by: Duration) {
        self.now += by;
        let _ = self.engine.handle_input(self.now, Input::Timeout);
    }
}

/// Issue 18, finding 2 (and the back-pressure of issue 17): a peer that asks for 400
/// blocks and never reads gets no more than the send buffer watermark queued for it (the
/// low watermark while its upload rate is unknown, at most the high one); as the driver
/// reports bytes written, the rest follows, correct.
#[test]
fn a_peer_that_does_not_read_gets_at_most_the_watermark() {
    let settings = Settings::default();
    let (low, watermark) = (
        settings.send_buffer_low_watermark,
        settings.send_buffer_watermark,
    );
    let mut seed = Seed::new(settings, 8 << 20);
    let addr: SocketAddr = "10.0.0.2:50000".parse().unwrap();
    let conn = seed
        .engine
        .handle_input(
            seed.now,
            Input::Incoming {
                addr,
                transport: Transport::Tcp,
                handshake: Handshake::default(),
            },
        )
        .unwrap();
    let mut remote = PeerConnection::outgoing(
        PeerConfig::new(PeerId::new([2; 20])),
        seed.now,
        seed.params(),
        None,
        BytesMut::new(),
    )
    .unwrap();
    let mut sent = 0usize;
    seed.pump(conn, &mut remote, &mut sent);
    remote.set_interested(seed.now, true);
    seed.pump(conn, &mut remote, &mut sent);
    seed.tick(Duration::from_secs(1));
    seed.pump(conn, &mut remote, &mut sent);
    assert!(!remote.peer_choking(), "the seed unchoked the peer");
    while remote.poll_event().is_some() {}

    let blocks = 400u32;
    for i in 0..blocks {
        let piece = PieceIndex::new(i * BLOCK / seed.info.piece_length());
        let begin = i * BLOCK % seed.info.piece_length();
        remote
            .request(seed.now, BlockRequest::new(piece, begin, BLOCK))
            .unwrap();
    }
    let before = sent;
    seed.pump(conn, &mut remote, &mut sent);
    let queued = sent;
    assert!(
        queued - before >= BLOCK as usize,
        "the seed serves a block before its send buffer fills"
    );
    assert!(
        queued - before <= low + 2 * BLOCK as usize,
        "{} bytes queued for a new peer that reads nothing (low watermark {low})",
        queued - before
    );
    // Ticks alone release nothing more.
    for _ in 0..10 {
        seed.tick(Duration::from_millis(500));
        seed.pump(conn, &mut remote, &mut sent);
    }
    assert_eq!(sent, queued, "more was queued without a write");

    // The driver writes what it holds and time passes: the upload rate, and with it the
    // watermark, grows to the high one; everything arrives.
    let mut got = 0u32;
    let mut reported = 0usize;
    let mut most = 0;
    for _ in 0..2000 {
        while let Some(e) = remote.poll_event() {
            if let PeerEvent::Block { request, data } = e {
                let start = request.piece.as_usize() * seed.info.piece_length() as usize
                    + request.begin as usize;
                assert_eq!(&data[..], &seed.data[start..start + data.len()]);
                got += 1;
            }
        }
        if got == blocks {
            break;
        }
        let written = sent - reported;
        reported = sent;
        let _ = seed
            .engine
            .handle_input(seed.now, Input::Drained { conn, written });
        seed.tick(Duration::from_millis(20));
        let before = sent;
        seed.pump(conn, &mut remote, &mut sent);
        most = most.max(sent - before);
    }
    assert_eq!(got, blocks);
    assert!(
        most <= watermark + 2 * BLOCK as usize,
        "{most} bytes queued at once (watermark {watermark})"
    );
    assert!(
        most > 4 * low,
        "the watermark grew with the rate: at most {most} bytes queued at once"
    );
}

/// Drives the engine's dials to `peer`, failing each as `fail` says (`true`: the MSE
/// handshake failed, `false`: the connect), until it stops dialling; returns the attempts
/// (transport, encrypted, raced with TCP).
fn dial_attempts(seed: &mut Seed, peer: SocketAddr, fail: &[bool]) -> Vec<(Transport, bool, bool)> {
    let mut attempts = Vec::new();
    for &mse in fail {
        let mut dial = None;
        while let Some(a) = seed.engine.poll_action() {
            if let Action::Connect {
                conn,
                addr,
                transport,
                encrypt,
                race_tcp_after,
                ..
            } = a
            {
                assert_eq!(addr, peer);
                dial = Some(conn);
                attempts.push((transport, encrypt, race_tcp_after.is_some()));
            }
        }
        let Some(conn) = dial else { break };
        let input = if mse {
            let error = IoError::new(std::io::ErrorKind::UnexpectedEof, "closed during MSE");
            Input::HandshakeFailed { conn, error }
        } else {
            let error = IoError::new(std::io::ErrorKind::ConnectionRefused, "refused");
            Input::ConnectFailed { conn, error }
        };
        let _ = seed.engine.handle_input(seed.now, input);
    }
    attempts
}

/// The engine chooses how to dial from what failed, as libtorrent does: uTP first, and a
/// connect that fails tries the other transport; an MSE handshake that fails (a peer without MSE, like
/// rqbit or aria2, closes it) tries plaintext over the same transport at once, and the
/// peer is dialled in plaintext from then on. Forced encryption never falls back to
/// plaintext; uTP alone is dialled alone.
#[test]
fn dial_falls_back_by_what_failed() {
    let peer: SocketAddr = "10.0.0.9:6881".parse().unwrap();
    // By default a uTP dial races TCP in the driver: one action, failed only when both
    // transports failed, and then nothing more to try.
    let mut seed = Seed::new(Settings::default(), 1 << 20);
    seed.engine.connect_peer(seed.now, seed.torrent, peer);
    seed.tick(Duration::from_secs(1));
    let raced = dial_attempts(&mut seed, peer, &[false, false]);
    assert_eq!(raced, [(Transport::Utp, true, true)]);
    assert_eq!(seed.engine.num_connections(), 0);

    // Without the race: uTP first, TCP after it failed, as libtorrent does.
    let settings = Settings {
        min_reconnect_time: Duration::from_secs(1),
        utp_tcp_race_delay: None,
        ..Settings::default()
    };
    let mut seed = Seed::new(settings, 1 << 20);
    seed.engine.connect_peer(seed.now, seed.torrent, peer);
    seed.tick(Duration::from_secs(1));
    let refused = dial_attempts(&mut seed, peer, &[false; 4]);
    assert_eq!(
        refused,
        [(Transport::Utp, true, false), (Transport::Tcp, true, false)],
        "uTP first, TCP when it fails"
    );
    assert_eq!(seed.engine.num_connections(), 0);

    seed.tick(Duration::from_secs(30));
    let no_mse = dial_attempts(&mut seed, peer, &[true, true]);
    assert_eq!(
        no_mse,
        [
            (Transport::Tcp, true, false),
            (Transport::Tcp, false, false)
        ],
        "no uTP to a peer whose uTP connect failed"
    );
    seed.tick(Duration::from_secs(60));
    let again = dial_attempts(&mut seed, peer, &[false]);
    assert_eq!(
        again,
        [(Transport::Tcp, false, false)],
        "dialled in plaintext from then on"
    );

    let settings = Settings {
        out_enc_policy: EncPolicy::Forced,
        enable_outgoing_tcp: false,
        ..Settings::default()
    };
    let mut seed = Seed::new(settings, 1 << 20);
    seed.engine.connect_peer(seed.now, seed.torrent, peer);
    seed.tick(Duration::from_secs(1));
    let forced = dial_attempts(&mut seed, peer, &[true, true]);
    assert_eq!(
        forced,
        [(Transport::Utp, true, false)],
        "no race without TCP"
    );
}

/// The engine schedules DHT and LSD announces (the driver only runs them): a DHT announce
/// at once, one at a time, again after 5 s when it found nobody and after
/// `dht_announce_interval` when it found peers; LSD every `lsd_announce_interval`. LSD
/// announces from outside the local network name no peer (issue 18, finding 12).
#[test]
fn dht_and_lsd_announces_are_scheduled_by_the_engine() {
    fn announces(seed: &mut Seed) -> (Vec<bool>, usize) {
        let (mut dht, mut lsd) = (Vec::new(), 0);
        while let Some(a) = seed.engine.poll_action() {
            match a {
                Action::DhtAnnounce { seed: s, .. } => dht.push(s),
                Action::LsdAnnounce { info_hashes, .. } => lsd += info_hashes.len(),
                _ => {}
            }
        }
        (dht, lsd)
    }
    let mut seed = Seed::new(Settings::default(), 1 << 20);
    let (torrent, now) = (seed.torrent, seed.now);
    seed.engine.set_alert_mask(lt_engine::AlertCategory::ALL);
    seed.engine.set_dht_port(Some(6881));
    seed.engine.set_lsd(true, now);
    seed.tick(Duration::from_millis(500));
    assert_eq!(announces(&mut seed), (vec![true], 1));
    seed.tick(Duration::from_secs(10));
    assert_eq!(
        announces(&mut seed),
        (vec![], 0),
        "one DHT announce at a time"
    );
    let done = Input::DhtPeers {
        torrent,
        peers: Vec::new(),
    };
    let _ = seed.engine.handle_input(seed.now, done);
    seed.tick(Duration::from_secs(4));
    assert_eq!(announces(&mut seed), (vec![], 0));
    seed.tick(Duration::from_secs(2));
    assert_eq!(announces(&mut seed), (vec![true], 0), "retried after 5 s");
    let found: SocketAddr = "10.1.2.3:6881".parse().unwrap();
    let done = Input::DhtPeers {
        torrent,
        peers: vec![found],
    };
    let _ = seed.engine.handle_input(seed.now, done);
    let mut replies = 0;
    while let Some(a) = seed.engine.poll_alert() {
        if let lt_engine::Alert::DhtGetPeersReply { num_peers, .. } = a {
            replies += num_peers;
        }
    }
    assert_eq!(replies, 1);
    // LSD again after 5 min; the DHT after 15 (the tick is 14 min here, so one LSD).
    seed.tick(Duration::from_secs(4 * 60));
    assert_eq!(announces(&mut seed), (vec![], 0));
    seed.tick(Duration::from_secs(2 * 60));
    assert_eq!(announces(&mut seed), (vec![], 1), "LSD on its interval");
    seed.tick(Duration::from_secs(8 * 60));
    assert_eq!(announces(&mut seed).0, vec![]);
    seed.tick(Duration::from_secs(2 * 60));
    assert_eq!(
        announces(&mut seed).0,
        vec![true],
        "the DHT on its interval"
    );

    // LSD peers: only from the local network.
    let hash = seed.info.info_hash().best();
    for (addr, kept) in [("8.8.8.8:6881", false), ("192.168.1.5:6881", true)] {
        let addr: SocketAddr = addr.parse().unwrap();
        let lsd = Input::LsdPeer {
            info_hash: hash,
            addr,
        };
        let _ = seed.engine.handle_input(seed.now, lsd);
        let mut seen = false;
        while let Some(a) = seed.engine.poll_alert() {
            seen |= matches!(a, lt_engine::Alert::LsdPeer { addr: a, .. } if a == addr);
        }
        assert_eq!(seen, kept, "{addr}");
    }
    // With both off, nothing is announced.
    seed.engine.set_dht_port(None);
    seed.engine.set_lsd(false, seed.now);
    seed.tick(Duration::from_secs(3600));
    assert_eq!(announces(&mut seed), (vec![], 0));
}

/// Issue 18, finding 17: at the connection limit an idle connection (handshake done, no
/// payload, nobody interested) makes room for a newcomer, the oldest first; when every
/// connection is busy the newcomer is refused.
#[test]
fn idle_connections_make_room_for_new_peers() {
    let settings = Settings {
        connections_limit: 4,
        ..Settings::default()
    };
    let mut seed = Seed::new(settings, 1 << 20);
    let mut peers = Vec::new();
    for i in 0..4u8 {
        let addr: SocketAddr = format!("10.0.1.{}:7000", i + 1).parse().unwrap();
        seed.now += Duration::from_millis(10);
        peers.push(seed.accept(addr, i + 10).unwrap());
    }
    assert_eq!(seed.engine.num_connections(), 4);
    let newcomer: SocketAddr = "10.0.2.1:7000".parse().unwrap();
    let (new_conn, mut new_remote) = seed.accept(newcomer, 50).unwrap();
    assert_eq!(
        seed.closed(),
        [peers[0].0],
        "the oldest idle connection made room"
    );
    assert_eq!(seed.engine.num_connections(), 4);

    // Everyone interested now: no connection is idle, so the next peer is refused.
    for (conn, remote) in peers.iter_mut().skip(1) {
        remote.set_interested(seed.now, true);
        let mut sent = 0;
        seed.pump(*conn, remote, &mut sent);
    }
    new_remote.set_interested(seed.now, true);
    let mut sent = 0;
    seed.pump(new_conn, &mut new_remote, &mut sent);
    let late: SocketAddr = "10.0.3.1:7000".parse().unwrap();
    assert!(seed.accept(late, 60).is_none());
    assert_eq!(seed.closed(), []);
    assert_eq!(seed.engine.num_connections(), 4);
}

/// Issue 18, finding 8: a peer's PORT messages name one DHT node per connection, however
/// many it sends.
#[test]
fn a_port_flood_names_one_dht_node() {
    let mut seed = Seed::new(Settings::default(), 1 << 20);
    seed.engine.set_dht_port(Some(6881));
    let mut config = PeerConfig::new(PeerId::new([7; 20]));
    config.reserved = config.reserved.with_dht(true);
    let incoming = Input::Incoming {
        addr: "10.0.0.7:7000".parse().unwrap(),
        transport: Transport::Tcp,
        handshake: Handshake::default(),
    };
    let conn = seed.engine.handle_input(seed.now, incoming).unwrap();
    let mut remote =
        PeerConnection::outgoing(config, seed.now, seed.params(), None, BytesMut::new()).unwrap();
    let mut sent = 0;
    seed.pump(conn, &mut remote, &mut sent);
    let mut nodes = 0;
    for port in 1000..1100u16 {
        remote.send_message(seed.now, &lt_wire::Message::Port(port));
        while let Some(b) = remote.poll_transmit() {
            let data = BytesMut::from(&b[..]);
            let _ = seed
                .engine
                .handle_input(seed.now, Input::Received { conn, data });
        }
        while let Some(a) = seed.engine.poll_action() {
            if let Action::DhtNode { addr } = a {
                assert_eq!(addr, "10.0.0.7:1000".parse().unwrap());
                nodes += 1;
            }
        }
    }
    assert_eq!(nodes, 1);
}

/// A remote peer for the metadata tests: it serves `serves` as the info dictionary (or
/// garbage of its length), and may push pieces nobody asked for.
struct MetaPeer {
    conn: ConnId,
    wire: PeerConnection,
    addr: SocketAddr,
    serves: Vec<u8>,
    closed: bool,
}

/// Issue 18, finding 4: metadata pieces nobody asked for are dropped, and a peer whose
/// metadata fails the info-hash is found and banned while an honest peer supplies it.
#[test]
fn metadata_from_a_liar_is_dropped_and_the_liar_banned() {
    let data: Vec<u8> = (0..32usize << 20).map(|i| (i * 13 % 249) as u8).collect();
    let bytes = CreateTorrent::from_memory("m.bin", data)
        .piece_size(16 * 1024)
        .generate()
        .unwrap();
    let info = Arc::new(TorrentInfo::from_bytes(&bytes).unwrap());
    let truth = info.info_bytes().to_vec();
    assert!(truth.len() > 2 * 16 * 1024, "three metadata pieces");
    let size = u32::try_from(truth.len()).unwrap();
    let mut now = Instant::now();
    let mut engine = Engine::new(Settings::default(), PeerId::new([1; 20]), [5; 32], now);
    engine.set_alert_mask(lt_engine::AlertCategory::ALL);
    let magnet = AddTorrent::from_magnet(&info.magnet_link()).unwrap();
    engine.add_torrent(now, magnet).unwrap();
    let params = |metadata_size| TorrentParams {
        info_hash: info.info_hash(),
        layout: None,
        metadata_size,
    };
    let garbage: Vec<u8> = truth.iter().map(|b| b ^ 0x55).collect();
    // An injector that announces no metadata (so is never asked) but pushes garbage, a
    // liar that serves garbage, and an honest peer, connected in that order.
    let mut peers: Vec<MetaPeer> = Vec::new();
    for (i, (serves, announces)) in [
        (garbage.clone(), None),
        (garbage, Some(size)),
        (truth.clone(), Some(size)),
    ]
    .into_iter()
    .enumerate()
    {
        let addr: SocketAddr = format!("10.0.4.{}:7000", i + 1).parse().unwrap();
        let incoming = Input::Incoming {
            addr,
            transport: Transport::Tcp,
            handshake: Handshake::default(),
        };
        let conn = engine.handle_input(now, incoming).unwrap();
        let wire = PeerConnection::outgoing(
            PeerConfig::new(PeerId::new([20 + i as u8; 20])),
            now,
            params(announces),
            None,
            BytesMut::new(),
        )
        .unwrap();
        peers.push(MetaPeer {
            conn,
            wire,
            addr,
            serves,
            closed: false,
        });
    }
    let mut got = None;
    let mut banned = Vec::new();
    let mut failed_rounds = 0;
    let mut pushed = false;
    let mut fetching = false;
    let injector = peers[0].conn;
    for _ in 0..400 {
        let mut progress = false;
        while let Some(a) = engine.poll_action() {
            progress = true;
            match a {
                Action::Send { conn, bufs } => {
                    if let Some(p) = peers.iter_mut().find(|p| p.conn == conn && !p.closed) {
                        for b in bufs {
                            if p.wire.handle_bytes(now, &b).is_err() {
                                p.closed = true;
                            }
                        }
                    }
                }
                Action::Close { conn } => {
                    if let Some(p) = peers.iter_mut().find(|p| p.conn == conn) {
                        p.closed = true;
                    }
                }
                Action::MetadataReceived { info, .. } => got = Some(info),
                _ => {}
            }
        }
        while let Some(a) = engine.poll_alert() {
            match a {
                lt_engine::Alert::PeerBanned { addr, .. } => banned.push(addr),
                lt_engine::Alert::MetadataFailed { .. } => failed_rounds += 1,
                _ => {}
            }
        }
        for p in peers.iter_mut().filter(|p| !p.closed) {
            let total = u32::try_from(p.serves.len()).unwrap();
            let reply = |piece: u32| {
                let start = piece as usize * 16 * 1024;
                let end = (start + 16 * 1024).min(p.serves.len());
                lt_wire::ExtensionMessage::Metadata(lt_wire::MetadataMessage::Data {
                    piece,
                    total_size: total,
                    data: Bytes::copy_from_slice(&p.serves[start..end]),
                })
            };
            let mut out = Vec::new();
            while let Some(e) = p.wire.poll_event() {
                if let PeerEvent::Extension(lt_wire::ExtensionMessage::Metadata(
                    lt_wire::MetadataMessage::Request { piece },
                )) = e
                {
                    fetching = true;
                    out.push(reply(piece));
                }
            }
            // The injector (never asked) pushes every piece once the fetch runs.
            if p.conn == injector && fetching && !pushed {
                pushed = true;
                out.extend((0..3).map(reply));
            }
            for m in out {
                let _ = p.wire.send_extension(now, &m);
            }
            while let Some(b) = p.wire.poll_transmit() {
                progress = true;
                let data = BytesMut::from(&b[..]);
                let conn = p.conn;
                let _ = engine.handle_input(now, Input::Received { conn, data });
            }
        }
        if got.is_some() {
            break;
        }
        if !progress {
            now += Duration::from_millis(500);
            let _ = engine.handle_input(now, Input::Timeout);
        }
    }
    let got = got.expect("the metadata arrived");
    assert_eq!(got.info_bytes(), &truth[..]);
    assert!(pushed, "the injector pushed its pieces");
    assert_eq!(
        banned,
        [peers[1].addr],
        "the liar, and only the liar, is banned"
    );
    // The liar, first to announce the size, supplies the whole first round and is named
    // by it; the second round is the honest peer's. The injector's pieces, never asked
    // for, make no round of their own.
    assert_eq!(failed_rounds, 1);
    assert!(!peers[2].closed, "the honest peer stays");
}

/// Issue 18, finding 1: a bug met while handling one torrent's input does not take the
/// engine (and the session with it) down. A driver that reports a piece the torrent does
/// not have trips a debug assertion in the bitfield; the engine contains the panic, pauses
/// that torrent with the error and says so, and the other torrent and the connections go on.
#[test]
fn a_panic_in_one_torrent_is_contained() {
    let mut seed = Seed::new(Settings::default(), 1 << 20);
    seed.engine.set_alert_mask(lt_engine::AlertCategory::ALL);
    let other_data = vec![9u8; 300_000];
    let other = Arc::new(
        TorrentInfo::from_bytes(
            &CreateTorrent::from_memory("other.bin", other_data)
                .piece_size(64 * 1024)
                .generate()
                .unwrap(),
        )
        .unwrap(),
    );
    let other_id = seed
        .engine
        .add_torrent(seed.now, AddTorrent::new(Arc::clone(&other)))
        .unwrap();
    while seed.engine.poll_action().is_some() {}
    while seed.engine.poll_alert().is_some() {}
    let bogus = DiskDone::PieceWritten {
        torrent: seed.torrent,
        piece: PieceIndex::new(1_000_000),
        passed: true,
        error: None,
    };
    let _ = seed.engine.handle_input(seed.now, Input::Disk(bogus));
    if cfg!(debug_assertions) {
        let mut contained = None;
        while let Some(a) = seed.engine.poll_alert() {
            if let lt_engine::Alert::InternalError { torrent, message } = a {
                contained = Some((torrent, message));
            }
        }
        let (torrent, message) = contained.expect("an InternalError alert");
        assert_eq!(torrent, Some(seed.torrent));
        assert!(message.contains("out of range"), "{message}");
        let st = seed.engine.status(seed.now, seed.torrent).unwrap();
        assert!(st.paused);
        assert!(st.error.unwrap().starts_with("internal error"));
    }
    // The engine goes on: the other torrent is untouched, and inputs are taken.
    seed.tick(Duration::from_secs(1));
    let st = seed.engine.status(seed.now, other_id).unwrap();
    assert!(!st.paused && st.error.is_none());
    let addr: SocketAddr = "10.0.9.9:7000".parse().unwrap();
    assert!(seed.accept(addr, 99).is_some());
}

/// The timer table (issue 17): a peer found between two housekeeping ticks makes only the
/// dialling due; the engine dials it at once and the housekeeping keeps its own deadline.
#[test]
fn a_new_peer_is_dialled_without_a_whole_tick() {
    let mut seed = Seed::new(Settings::default(), 1 << 20);
    seed.engine.set_dht_port(Some(6881));
    seed.tick(Duration::from_millis(1));
    while seed.engine.poll_action().is_some() {}
    let housekeeping = seed.engine.poll_timeout();
    assert_eq!(housekeeping, seed.now + Settings::default().tick_interval);
    seed.now += Duration::from_millis(100);
    let peer: SocketAddr = "10.0.7.7:6881".parse().unwrap();
    let found = Input::DhtPeers {
        torrent: seed.torrent,
        peers: vec![peer],
    };
    let _ = seed.engine.handle_input(seed.now, found);
    assert_eq!(
        seed.engine.poll_timeout(),
        seed.now,
        "dialling is due at once"
    );
    let _ = seed.engine.handle_input(seed.now, Input::Timeout);
    let mut dialled = false;
    while let Some(a) = seed.engine.poll_action() {
        dialled |= matches!(a, Action::Connect { addr, .. } if addr == peer);
    }
    assert!(dialled);
    assert_eq!(
        seed.engine.poll_timeout(),
        housekeeping,
        "the housekeeping tick did not run early"
    );
}

/// Requests held for room in the send buffer are served when a read finishes even if
/// nothing is sent for it (its request was cancelled meanwhile): no write follows, so no
/// `Drained` would ever release them. Seen as a download stuck on its last piece.
#[test]
fn held_requests_go_on_after_a_cancelled_read() {
    let mut seed = Seed::new(Settings::default(), 1 << 20);
    let addr: SocketAddr = "10.0.0.3:50000".parse().unwrap();
    let (conn, mut remote) = seed.accept(addr, 3).unwrap();
    let mut sent = 0usize;
    remote.set_interested(seed.now, true);
    seed.pump(conn, &mut remote, &mut sent);
    seed.tick(Duration::from_secs(1));
    seed.pump(conn, &mut remote, &mut sent);
    assert!(!remote.peer_choking());
    // Report everything written so far: an empty send buffer.
    let _ = seed.engine.handle_input(
        seed.now,
        Input::Drained {
            conn,
            written: sent,
        },
    );
    while remote.poll_event().is_some() {}
    let reqs: Vec<BlockRequest> = (0..3)
        .map(|i| BlockRequest::new(PieceIndex::new(0), i * BLOCK, BLOCK))
        .collect();
    for r in &reqs {
        remote.request(seed.now, *r).unwrap();
    }
    while let Some(b) = remote.poll_transmit() {
        let data = BytesMut::from(&b[..]);
        let _ = seed
            .engine
            .handle_input(seed.now, Input::Received { conn, data });
    }
    // One read was asked for (the low watermark allows one block); the other two wait.
    let mut reads = Vec::new();
    while let Some(a) = seed.engine.poll_action() {
        if let Action::Disk(job @ DiskJob::Read { .. }) = a {
            reads.push(job);
        }
    }
    assert_eq!(reads.len(), 1);
    // The peer cancels that request; then the read finishes, with nothing to send.
    remote.cancel(seed.now, reqs[0]);
    while let Some(b) = remote.poll_transmit() {
        let data = BytesMut::from(&b[..]);
        let _ = seed
            .engine
            .handle_input(seed.now, Input::Received { conn, data });
    }
    let Some(DiskJob::Read {
        torrent,
        conn: c,
        request,
    }) = reads.pop()
    else {
        unreachable!()
    };
    let done = DiskDone::Read {
        torrent,
        conn: c,
        request,
        result: Ok(Bytes::from(vec![0u8; BLOCK as usize])),
    };
    let _ = seed.engine.handle_input(seed.now, Input::Disk(done));
    let mut next = 0;
    while let Some(a) = seed.engine.poll_action() {
        next += usize::from(matches!(a, Action::Disk(DiskJob::Read { .. })));
    }
    assert_eq!(next, 1, "a held request is served");
}

/// Requests for an allowed-fast piece survive a choke: the wire keeps them pending (BEP 6),
/// so the engine must still serve the ones it held for room in the send buffer. Seen as a
/// leecher leaving upload mode stuck on its last piece: the seed had dropped the held
/// requests, then rejected each re-request as a duplicate of one it would never answer.
#[test]
fn held_allowed_fast_requests_are_served_after_a_choke() {
    let mut seed = Seed::new(Settings::default(), 1 << 20);
    let addr: SocketAddr = "10.0.0.4:50000".parse().unwrap();
    let (conn, mut remote) = seed.accept(addr, 4).unwrap();
    let mut sent = 0usize;
    remote.set_interested(seed.now, true);
    seed.pump(conn, &mut remote, &mut sent);
    seed.tick(Duration::from_secs(1));
    seed.pump(conn, &mut remote, &mut sent);
    assert!(!remote.peer_choking());
    let _ = seed.engine.handle_input(
        seed.now,
        Input::Drained {
            conn,
            written: sent,
        },
    );
    while remote.poll_event().is_some() {}
    let piece = *remote
        .allowed_fast()
        .first()
        .expect("the seed allows a piece fast");
    let reqs: Vec<BlockRequest> = (0..3)
        .map(|i| BlockRequest::new(piece, i * BLOCK, BLOCK))
        .collect();
    for r in &reqs {
        remote.request(seed.now, *r).unwrap();
    }
    // The requests, then NOT INTERESTED, arrive together: the seed chokes the peer while
    // two of the three requests wait for room.
    remote.set_interested(seed.now, false);
    while let Some(b) = remote.poll_transmit() {
        let data = BytesMut::from(&b[..]);
        let _ = seed
            .engine
            .handle_input(seed.now, Input::Received { conn, data });
    }
    seed.tick(Duration::from_secs(11));
    let mut blocks = 0;
    for _ in 0..10 {
        let before = sent;
        seed.pump(conn, &mut remote, &mut sent);
        let _ = seed.engine.handle_input(
            seed.now,
            Input::Drained {
                conn,
                written: sent - before,
            },
        );
        while let Some(e) = remote.poll_event() {
            match e {
                PeerEvent::Block { .. } => blocks += 1,
                PeerEvent::Rejected(r) => panic!("{r:?} rejected"),
                _ => {}
            }
        }
    }
    assert!(remote.peer_choking(), "the seed did not choke");
    assert_eq!(blocks, 3, "every allowed-fast request is served");
}

/// A `Vec<u8>` behind a lock, as a tracing writer.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Issue 17, "Observable": what the engine logs while handling a peer's input is inside
/// the torrent's span and the peer's span, so `lt -v` says which torrent and which peer a
/// decision was about.
#[test]
fn events_carry_the_torrent_and_peer_spans() {
    let out = Captured::default();
    let writer = out.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        let mut seed = Seed::new(Settings::default(), 256 << 10);
        let addr: SocketAddr = "10.0.9.1:7000".parse().unwrap();
        let (conn, _remote) = seed.accept(addr, 9).unwrap();
        let _ = seed.engine.handle_input(
            seed.now,
            Input::Closed {
                conn,
                error: Some(IoError::new(std::io::ErrorKind::ConnectionReset, "reset")),
            },
        );
    });
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("disconnected"))
        .unwrap_or_else(|| panic!("no disconnect event in:\n{text}"));
    assert!(
        line.contains("torrent{id=") && line.contains("peer{conn=") && line.contains("10.0.9.1"),
        "{line}"
    );
}

/// Issue 17, "policy down": the SKEY of an incoming MSE handshake is looked up in the
/// engine, for each hash peers may name a hybrid torrent by, and no longer once the
/// torrent is removed.
#[test]
fn mse_skeys_name_the_engines_torrents() {
    let mut seed = Seed::new(Settings::default(), 256 << 10);
    let ih = seed.info.info_hash();
    let hashes: Vec<_> = ih.wire_hashes().collect();
    assert_eq!(hashes.len(), 2, "a hybrid torrent has two wire hashes");
    for h in &hashes {
        assert_eq!(
            seed.engine.torrent_for_skey(&lt_wire::mse::skey_hash(h)),
            Some(*h)
        );
        assert_eq!(seed.engine.find_by_wire_hash(h), Some(seed.torrent));
    }
    assert_eq!(seed.engine.torrent_for_skey(&hashes[0]), None);
    let now = seed.now;
    seed.engine.remove_torrent(now, seed.torrent, false);
    for h in &hashes {
        assert_eq!(
            seed.engine.torrent_for_skey(&lt_wire::mse::skey_hash(h)),
            None
        );
        assert_eq!(seed.engine.find_by_wire_hash(h), None);
    }
}

/// Issue 17, "policy down": whatever the driver let through, the engine refuses a
/// plaintext incoming connection when encryption is forced, and an encrypted one when it
/// is disabled.
#[test]
fn the_engine_applies_the_incoming_encryption_policy() {
    for (policy, encrypted, accepted) in [
        (EncPolicy::Forced, false, false),
        (EncPolicy::Forced, true, true),
        (EncPolicy::Disabled, true, false),
        (EncPolicy::Enabled, false, true),
    ] {
        let settings = Settings {
            in_enc_policy: policy,
            ..Settings::default()
        };
        let mut seed = Seed::new(settings, 256 << 10);
        let addr: SocketAddr = "10.0.7.1:7000".parse().unwrap();
        let conn = seed.engine.handle_input(
            seed.now,
            Input::Incoming {
                addr,
                transport: Transport::Tcp,
                handshake: Handshake {
                    cipher: None,
                    received: BytesMut::new(),
                    encrypted,
                    ssl: None,
                },
            },
        );
        assert_eq!(
            conn.is_some(),
            accepted,
            "{policy:?}, encrypted {encrypted}"
        );
    }
}

/// Issue 18, finding 17, at the torrent's limit too: when the torrent has
/// `max_connections` connections and one is idle, a new peer for it gets in and the oldest
/// idle one is closed (a flood that handshakes and goes quiet used to keep it out).
#[test]
fn idle_connections_make_room_at_the_torrents_limit() {
    let settings = Settings {
        connections_limit: 100,
        max_connections_per_torrent: 3,
        ..Settings::default()
    };
    let mut seed = Seed::new(settings, 1 << 20);
    let mut peers = Vec::new();
    for i in 0..3u8 {
        let addr: SocketAddr = format!("10.0.4.{}:7000", i + 1).parse().unwrap();
        seed.now += Duration::from_millis(10);
        peers.push(seed.accept(addr, i + 10).unwrap());
    }
    assert_eq!(seed.closed(), []);
    let newcomer: SocketAddr = "10.0.5.1:7000".parse().unwrap();
    let (new_conn, _new_remote) = seed.accept(newcomer, 50).unwrap();
    assert_eq!(
        seed.closed(),
        [peers[0].0],
        "the oldest idle connection of the torrent made room"
    );
    assert!(
        seed.engine
            .peer_info(seed.torrent)
            .iter()
            .any(|p| p.addr == newcomer)
    );
    let _ = new_conn;
}
