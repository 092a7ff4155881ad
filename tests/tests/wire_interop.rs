//! lt-wire against libtorrent-rasterbar 2.0 (`python3-libtorrent`) over real TCP on loopback.
//!
//! A python child seeds a small torrent (made with [`CreateTorrent`]) on 127.0.0.1. The test
//! drives an [`lt_wire::PeerConnection`] over a plain tokio `TcpStream`: it completes the
//! handshake, exchanges extended handshakes, receives libtorrent's bitfield, requests and
//! SHA-1-verifies three pieces, and fetches the whole info dictionary with ut_metadata
//! (checked against the info-hash). It runs four times: with MSE forced to RC4 on both
//! sides, with MSE forced but only the handshake obfuscated (crypto method plaintext), in
//! plain BitTorrent with encryption disabled on libtorrent's side, and in plain BitTorrent on
//! a v2-only torrent (BEP 52: the handshake carries the truncated SHA-256 info-hash; pieces
//! are checked against the seeded bytes since v2 has no SHA-1 piece hashes).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers outside #[test] fns; a panic is a test failure"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use lt_core::{Bitfield, PeerId, PieceIndex, Sha1Hash};
use lt_metainfo::{CreateTorrent, TorrentInfo, TorrentVersion};
use lt_tests::{ChildGuard, require_python_libtorrent};
use lt_wire::mse::{
    CRYPTO_PLAINTEXT, CRYPTO_RC4, EncLevel, EncPolicy, MseConfig, MseHandshake, MseStatus,
};
use lt_wire::{
    BlockRequest, ExtensionMessage, MetadataMessage, PeerConfig, PeerConnection, PeerEvent,
    PieceLayout, TorrentParams, metadata_piece_count,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The whole exchange (connect, MSE, download, metadata) must finish within this.
const TEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Seeds `argv[1]` (a .torrent) from the directory `argv[2]` on 127.0.0.1, with encryption
/// `argv[3]` (`rc4`, `obfuscated` or `plaintext`); prints `PORT <n>` once listening and runs until killed.
const SEED_PY: &str = r#"
import sys, time
import libtorrent as lt
torrent, save, mode = sys.argv[1], sys.argv[2], sys.argv[3]
s = lt.high_performance_seed()
s.update({
    "listen_interfaces": "127.0.0.1:0",
    "enable_upnp": False, "enable_natpmp": False, "enable_lsd": False, "enable_dht": False,
    "allow_multiple_connections_per_ip": True,
    "tick_interval": 100, "smooth_connects": False,
    "alert_mask": lt.alert.category_t.error_notification | lt.alert.category_t.peer_notification
        | lt.alert.category_t.connect_notification | lt.alert.category_t.status_notification,
})
if mode == "rc4":
    s.update({
        "out_enc_policy": lt.enc_policy.forced, "in_enc_policy": lt.enc_policy.forced,
        "allowed_enc_level": lt.enc_level.rc4, "prefer_rc4": True,
    })
elif mode == "obfuscated":
    s.update({
        "out_enc_policy": lt.enc_policy.forced, "in_enc_policy": lt.enc_policy.forced,
        "allowed_enc_level": lt.enc_level.plaintext, "prefer_rc4": False,
    })
else:
    s.update({
        "out_enc_policy": lt.enc_policy.disabled, "in_enc_policy": lt.enc_policy.disabled,
    })
ses = lt.session(s)
p = lt.add_torrent_params()
p.ti = lt.torrent_info(torrent)
p.save_path = save
p.flags |= lt.torrent_flags.seed_mode
# Not auto-managed: otherwise it starts paused until the queue manager's next tick, and
# libtorrent refuses connections to a paused torrent.
p.flags &= ~lt.torrent_flags.auto_managed
p.flags &= ~lt.torrent_flags.paused
h = ses.add_torrent(p)
# Wait until the listen socket is up for good (a listen socket opened before the settings
# settle is closed again, resetting early connections) and the torrent is seeding.
deadline = time.time() + 20
listening = False
while time.time() < deadline:
    for a in ses.pop_alerts():
        print("libtorrent:", a.message(), file=sys.stderr, flush=True)
        if isinstance(a, lt.listen_succeeded_alert):
            listening = True
    st = h.status()
    if listening and st.state == lt.torrent_status.seeding and not st.paused:
        break
    time.sleep(0.05)
print("PORT", ses.listen_port(), flush=True)
while True:
    # Peer errors and disconnects go to stderr, which the test shows on failure.
    for a in ses.pop_alerts():
        print("libtorrent:", a.message(), file=sys.stderr, flush=True)
    time.sleep(0.1)
"#;

#[test]
fn libtorrent_rc4() {
    run(Mode::Rc4);
}

#[test]
fn libtorrent_obfuscated_header() {
    run(Mode::Obfuscated);
}

/// A v2-only torrent (BEP 52): the handshake carries the SHA-256 info-hash truncated to 20
/// bytes, and the metadata hashes to the full SHA-256.
#[test]
fn libtorrent_v2_plaintext() {
    run(Mode::V2);
}

#[test]
fn libtorrent_plaintext() {
    run(Mode::Plaintext);
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// MSE, RC4 on the whole stream.
    Rc4,
    /// MSE with crypto method plaintext: only the handshake is obfuscated.
    Obfuscated,
    /// Plain BitTorrent, no MSE.
    Plaintext,
    /// Plain BitTorrent on a v2-only torrent.
    V2,
}

/// Deterministic data of an awkward size: 9 full 32 KiB pieces and a short last one.
fn data() -> Vec<u8> {
    let mut x = 0x1234_5678_u32;
    (0..9 * 32768 + 5000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x.to_be_bytes()[0]
        })
        .collect()
}

fn run(mode: Mode) {
    let python = require_python_libtorrent();
    let dir = tempfile::tempdir().unwrap();
    let payload = data();
    std::fs::write(dir.path().join("payload.bin"), &payload).unwrap();
    let torrent_bytes = CreateTorrent::new(dir.path().join("payload.bin"))
        .version(if mode == Mode::V2 {
            TorrentVersion::V2
        } else {
            TorrentVersion::V1
        })
        .piece_size(32768)
        .generate()
        .unwrap();
    let torrent_path = dir.path().join("t.torrent");
    std::fs::write(&torrent_path, &torrent_bytes).unwrap();
    let ti = TorrentInfo::from_bytes(&torrent_bytes).unwrap();

    let mut child = ChildGuard::spawn(
        Command::new(python)
            .arg("-c")
            .arg(SEED_PY)
            .arg(&torrent_path)
            .arg(dir.path())
            .arg(match mode {
                Mode::Rc4 => "rc4",
                Mode::Obfuscated => "obfuscated",
                Mode::Plaintext | Mode::V2 => "plaintext",
            })
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit()),
    )
    .expect("start python3");
    let stdout = child.stdout.take().unwrap();
    // Bounded by the script's own 20 s wait for the listen port.
    let port = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|l| {
            l.strip_prefix("PORT ")
                .map(|p| p.trim().parse::<u16>().unwrap())
        })
        .expect("libtorrent printed no listen port");
    assert_ne!(port, 0, "libtorrent did not listen");

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let report = rt
        .block_on(async {
            tokio::time::timeout(TEST_TIMEOUT, leech(port, mode, &ti, &payload)).await
        })
        .unwrap_or_else(|_| panic!("{mode:?}: no result within {TEST_TIMEOUT:?}"));
    drop(child);
    println!("{mode:?}: {report:?}");
    assert!(report.client.contains("libtorrent"), "{report:?}");
    assert_eq!(report.rc4, mode == Mode::Rc4);
    assert_eq!(report.pieces_verified, 3);
    assert_eq!(report.metadata_bytes, ti.info_bytes().len());
}

#[derive(Debug)]
struct Report {
    client: String,
    rc4: bool,
    pieces_verified: usize,
    metadata_bytes: usize,
}

/// Connects to the seed at `port` and runs the exchange to completion.
async fn leech(port: u16, mode: Mode, ti: &TorrentInfo, payload: &[u8]) -> Report {
    let mut sock = connect(port).await;
    let info_hash = ti.info_hash();
    let wire_hash = info_hash.best();

    // MSE first when encrypting.
    let (cipher, received) = match mode {
        Mode::Plaintext | Mode::V2 => (None, BytesMut::new()),
        Mode::Rc4 | Mode::Obfuscated => {
            let cfg = MseConfig {
                out_policy: EncPolicy::Forced,
                in_policy: EncPolicy::Forced,
                // We offer both; libtorrent's allowed level decides.
                allowed: EncLevel::Both,
                prefer_rc4: mode == Mode::Rc4,
            };
            let mut mse = MseHandshake::initiate(&cfg, wire_hash, [42; 32]);
            let mut buf = vec![0u8; 4096];
            loop {
                while let Some(out) = mse.poll_transmit() {
                    sock.write_all(&out).await.unwrap();
                }
                if mse.status() == MseStatus::Done {
                    break;
                }
                let n = sock.read(&mut buf).await.unwrap();
                assert!(n > 0, "libtorrent closed during the MSE handshake");
                mse.handle_bytes(&buf[..n]).unwrap();
            }
            let outcome = mse.finish().unwrap();
            let expected = if mode == Mode::Rc4 {
                CRYPTO_RC4
            } else {
                CRYPTO_PLAINTEXT
            };
            assert_eq!(outcome.method, expected);
            (outcome.cipher, outcome.received)
        }
    };
    let rc4 = cipher.is_some();

    let layout = PieceLayout {
        num_pieces: ti.num_pieces(),
        piece_length: ti.piece_length(),
        total_length: ti.total_size(),
    };
    let torrent = TorrentParams {
        info_hash,
        layout: Some(layout),
        metadata_size: None,
    };
    let mut config = PeerConfig::new(PeerId::new(*b"-LT0001-wireinterop0"));
    config.ext_handshake.v = Some("lt-wire interop".into());
    let start = Instant::now();
    let mut conn = PeerConnection::outgoing(config, start, torrent, cipher, received).unwrap();

    // Three pieces: the first, one in the middle and the short last one.
    let last = ti.num_pieces() - 1;
    let wanted: BTreeSet<u32> = [0, 4, last].into();
    let mut blocks: BTreeMap<u32, BTreeMap<u32, bytes::Bytes>> = BTreeMap::new();
    let mut verified = BTreeSet::new();
    let mut requested = false;
    let mut client = String::new();
    let mut metadata: Option<Vec<Option<bytes::Bytes>>> = None;
    let mut got_bitfield = false;
    let mut buf = vec![0u8; 1 << 16];

    loop {
        while let Some(out) = conn.poll_transmit() {
            sock.write_all(&out).await.unwrap();
        }
        while let Some(event) = conn.poll_event() {
            let now = Instant::now();
            match event {
                PeerEvent::Connected { reserved, .. } => {
                    assert!(reserved.extensions() && reserved.fast(), "{reserved:?}");
                    conn.send_bitfield(now, &Bitfield::new(layout.num_pieces as usize));
                    conn.set_interested(now, true);
                }
                PeerEvent::ExtendedHandshake(hs) => {
                    client = hs.v.clone().unwrap_or_default();
                    let size = hs.metadata_size.expect("libtorrent sends metadata_size");
                    assert_eq!(size as usize, ti.info_bytes().len());
                    let n = metadata_piece_count(size);
                    metadata = Some(vec![None; n as usize]);
                    for piece in 0..n {
                        conn.send_extension(
                            now,
                            &ExtensionMessage::Metadata(MetadataMessage::Request { piece }),
                        )
                        .unwrap();
                    }
                }
                PeerEvent::Bitfield(bf) => {
                    assert!(bf.all(), "a seed has every piece");
                    got_bitfield = true;
                }
                PeerEvent::Unchoked if !requested => {
                    requested = true;
                    for &p in &wanted {
                        let size = layout.piece_size(PieceIndex(p)).unwrap();
                        for begin in (0..size).step_by(16384) {
                            let len = (size - begin).min(16384);
                            conn.request(now, BlockRequest::new(PieceIndex(p), begin, len))
                                .unwrap();
                        }
                    }
                }
                PeerEvent::Block { request, data } => {
                    let piece = request.piece.get();
                    let entry = blocks.entry(piece).or_default();
                    entry.insert(request.begin, data);
                    let have: usize = entry.values().map(bytes::Bytes::len).sum();
                    if have == layout.piece_size(request.piece).unwrap() as usize {
                        let mut h = lt_core::Sha1Hasher::new();
                        for b in entry.values() {
                            h.update(b);
                        }
                        match ti.piece_hash(request.piece) {
                            Some(expected) => assert_eq!(h.finalize(), expected),
                            // v2: no SHA-1 piece hashes; compare with the seeded bytes.
                            None => {
                                let start = piece as usize * layout.piece_length as usize;
                                let got: Vec<u8> =
                                    entry.values().flat_map(|b| b.to_vec()).collect();
                                // A v2 torrent pads the last file to a whole piece
                                // (libtorrent and lt-metainfo alike): zeros past the data.
                                let mut expected = payload[start.min(payload.len())
                                    ..(start + got.len()).min(payload.len())]
                                    .to_vec();
                                expected.resize(got.len(), 0);
                                assert_eq!(got, expected);
                            }
                        }
                        verified.insert(piece);
                    }
                }
                PeerEvent::Extension(ExtensionMessage::Metadata(MetadataMessage::Data {
                    piece,
                    data,
                    ..
                })) => {
                    let slots = metadata.as_mut().expect("metadata after the handshake");
                    slots[piece as usize] = Some(data);
                }
                PeerEvent::Extension(ExtensionMessage::Metadata(MetadataMessage::Reject {
                    piece,
                })) => panic!("libtorrent rejected metadata piece {piece}"),
                PeerEvent::Rejected(r) | PeerEvent::RequestTimedOut(r) => {
                    panic!("request {r:?} failed")
                }
                _ => {}
            }
        }
        // Commands issued while handling events queued more output.
        while let Some(out) = conn.poll_transmit() {
            sock.write_all(&out).await.unwrap();
        }
        let metadata_done = metadata
            .as_ref()
            .is_some_and(|m| m.iter().all(Option::is_some));
        if verified == wanted && metadata_done && got_bitfield {
            let info: Vec<u8> = metadata
                .unwrap()
                .into_iter()
                .flat_map(|b| b.unwrap().to_vec())
                .collect();
            match (info_hash.v1_hash(), info_hash.v2_hash()) {
                (Some(v1), _) => assert_eq!(Sha1Hash::digest(&info), v1, "metadata hash"),
                (None, Some(v2)) => {
                    assert_eq!(lt_core::Sha256Hash::digest(&info), v2, "metadata hash");
                    assert_eq!(wire_hash, v2.truncated(), "v2 handshake hash");
                }
                (None, None) => unreachable!("an info-hash has v1 or v2"),
            }
            assert_eq!(info, ti.info_bytes());
            let stats = conn.stats();
            assert!(stats.received.payload_bytes >= 2 * 32768);
            return Report {
                client,
                rc4,
                pieces_verified: verified.len(),
                metadata_bytes: info.len(),
            };
        }
        let deadline = conn.poll_timeout().unwrap();
        let wait = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(wait, sock.read(&mut buf)).await {
            Ok(Ok(0)) => panic!("libtorrent closed the connection"),
            Ok(Ok(n)) => conn.handle_bytes(Instant::now(), &buf[..n]).unwrap(),
            Ok(Err(e)) => {
                tokio::time::sleep(Duration::from_millis(500)).await;
                panic!("read: {e}")
            }
            Err(_) => conn.handle_timeout(Instant::now()).unwrap(),
        }
    }
}

/// Connects, retrying briefly while the listener comes up.
async fn connect(port: u16) -> TcpStream {
    for _ in 0..50 {
        if let Ok(s) = TcpStream::connect(("127.0.0.1", port)).await {
            s.set_nodelay(true).unwrap();
            return s;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("cannot connect to libtorrent on port {port}");
}
