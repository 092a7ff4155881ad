//! Bodies of the lt fuzz targets, one plain function per target.
//!
//! Each `fuzz_targets/<name>.rs` is a one-line libFuzzer wrapper around the function of the
//! same name here. This file does not use `libfuzzer-sys`, so the workspace crate `lt-tests`
//! compiles it as a module (`#[path = ...]`) and replays every file of `corpus/<name>/`
//! through it with `cargo test` on stable.
//!
//! A body takes arbitrary bytes and checks properties that must hold for all of them; a
//! failed `assert!` (or any other panic) is a bug in the crate under test.
#![forbid(unsafe_code)]

use lt_bencode::{Node, Value};
use lt_core::PieceIndex;
use lt_metainfo::{MagnetLink, TorrentInfo};

/// At most this many nodes of one input get the per-node span check in [`bdecode`], so that a
/// deeply nested input cannot make one run quadratic.
const MAX_SPAN_CHECKS: usize = 1_000;

/// `lt-bencode`'s decoder, encoder and serde deserializer on arbitrary bytes.
///
/// - `decode` never panics;
/// - if it succeeds: re-encoding the value gives canonical bytes that decode to the same value,
///   identical to the input when the input was canonical; `decode_strict` accepts exactly the
///   canonical inputs; the raw span of every node decodes to that node's value;
/// - `from_bytes::<Value>` succeeds exactly when `decode` does, with the same value.
pub fn bdecode(data: &[u8]) {
    let decoded = lt_bencode::decode(data);
    let from_serde = lt_bencode::from_bytes::<Value>(data);
    let doc = match decoded {
        Ok(doc) => doc,
        Err(err) => {
            assert!(
                from_serde.is_err(),
                "decode failed ({err}) but from_bytes::<Value> succeeded"
            );
            assert!(lt_bencode::decode_strict(data).is_err());
            return;
        }
    };
    let root = doc.root();
    assert_eq!(
        root.raw(),
        data,
        "the root's span must cover the whole input"
    );
    let value = root.to_value();

    match from_serde {
        Ok(serde_value) => assert_eq!(serde_value, value, "from_bytes and decode disagree"),
        Err(err) => panic!("decode succeeded but from_bytes::<Value> failed: {err}"),
    }

    let reencoded = value.to_bytes();
    let redoc = match lt_bencode::decode(&reencoded) {
        Ok(redoc) => redoc,
        Err(err) => panic!("re-encoded value does not decode: {err}"),
    };
    assert!(
        redoc.is_canonical(),
        "the encoder wrote non-canonical bytes"
    );
    assert_eq!(
        redoc.root().to_value(),
        value,
        "re-encoding changed the value"
    );
    if doc.is_canonical() {
        assert_eq!(reencoded, data, "canonical input must re-encode to itself");
    }
    assert_eq!(
        lt_bencode::decode_strict(data).is_ok(),
        doc.is_canonical(),
        "decode_strict must accept exactly the canonical inputs"
    );

    let mut budget = MAX_SPAN_CHECKS;
    check_spans(root, &mut budget);
}

/// Checks that the raw bytes of `node` and of its descendants decode on their own to the same
/// value, visiting at most `budget` nodes.
fn check_spans(node: Node<'_>, budget: &mut usize) {
    if *budget == 0 {
        return;
    }
    *budget -= 1;
    match lt_bencode::decode(node.raw()) {
        Ok(sub) => assert_eq!(
            sub.root().to_value(),
            node.to_value(),
            "a node's raw span decodes to a different value"
        ),
        Err(err) => panic!("a node's raw span does not decode: {err}"),
    }
    if let Some(list) = node.as_list() {
        for item in list {
            check_spans(item, budget);
        }
    } else if let Some(dict) = node.as_dict() {
        for (_, item) in dict {
            check_spans(item, budget);
        }
    }
}

/// At most this many files of one torrent get the per-file mapping checks in [`torrent_info`].
const MAX_FILE_CHECKS: usize = 64;

/// `lt-metainfo`'s `.torrent` loader, writer and magnet link on arbitrary bytes.
///
/// - `TorrentInfo::from_bytes` never panics;
/// - if it succeeds: the name and every path component (files and symlink targets) is safe to
///   join under a download directory: not empty, `.` or `..`, no `/`, `\` or NUL;
/// - the layout is consistent: offsets are consecutive, sizes sum to `total_size`, the piece
///   count is `ceil(total_size / piece_length)`, a v1 torrent has a hash for every piece, and
///   mapping a piece to files covers exactly the piece;
/// - `to_bytes()` loads again to an equal `TorrentInfo`, with the same info-hash and the same
///   info dictionary bytes;
/// - the magnet link's URI parses back to the same link (when it fits the URI limit).
pub fn torrent_info(data: &[u8]) {
    let Ok(torrent) = TorrentInfo::from_bytes(data) else {
        return;
    };
    assert_safe_component(torrent.name());
    let files = torrent.files();
    let mut offset = 0u64;
    for f in files.files() {
        assert!(!f.path.is_empty(), "a file without a path");
        for c in &f.path {
            assert_safe_component(c);
        }
        for c in f.symlink_target.iter().flatten() {
            assert_safe_component(c);
        }
        assert_eq!(f.offset, offset, "file offsets are not consecutive");
        offset += f.size;
    }
    assert_eq!(
        offset,
        files.total_size(),
        "file sizes do not sum to the total"
    );
    assert_eq!(torrent.total_size(), files.total_size());
    let piece_len = u64::from(torrent.piece_length());
    assert!(piece_len > 0);
    assert_eq!(
        u64::from(torrent.num_pieces()),
        files.total_size().div_ceil(piece_len),
        "piece count"
    );
    if torrent.info_hash().has_v1() {
        for p in 0..torrent.num_pieces() {
            assert!(
                torrent.piece_hash(PieceIndex::new(p)).is_some(),
                "v1 piece {p} has no hash"
            );
        }
    }
    if let Some(last) = torrent.num_pieces().checked_sub(1) {
        for p in [0, last] {
            let piece = PieceIndex::new(p);
            let size = files.piece_size(piece);
            let mapped: u64 = files.map_block(piece, 0, size).iter().map(|s| s.size).sum();
            assert_eq!(
                mapped,
                u64::from(size),
                "piece {p} maps to {mapped} bytes of files"
            );
        }
    }
    for (i, f) in files.files().iter().enumerate().take(MAX_FILE_CHECKS) {
        let index = lt_core::FileIndex::new(u32::try_from(i).unwrap_or(u32::MAX));
        let pieces = files.file_piece_range(index);
        assert!(
            pieces.end <= torrent.num_pieces(),
            "file {i} maps past the last piece"
        );
        if f.size > 0 {
            let request = files.map_file(index, 0, 1);
            assert!(
                request.is_some(),
                "the first byte of file {i} maps to no piece"
            );
        }
    }

    let written = torrent.to_bytes();
    let again = match TorrentInfo::from_bytes(&written) {
        Ok(again) => again,
        Err(err) => panic!("to_bytes() output does not load: {err}"),
    };
    assert_eq!(
        again.info_hash(),
        torrent.info_hash(),
        "to_bytes() changed the info-hash"
    );
    assert_eq!(again.info_bytes(), torrent.info_bytes());
    assert_eq!(
        again, torrent,
        "to_bytes() does not load to an equal torrent"
    );

    let magnet = torrent.magnet_link();
    let uri = magnet.to_uri();
    if uri.len() <= MagnetLink::MAX_URI_LEN {
        match MagnetLink::parse(&uri) {
            Ok(back) => {
                assert_eq!(back.info_hash, torrent.info_hash());
                assert_eq!(
                    back, magnet,
                    "the torrent's magnet link does not round-trip"
                );
            }
            Err(err) => panic!("the torrent's magnet URI does not parse: {err}"),
        }
    }
}

/// `lt-metainfo`'s magnet link parser on arbitrary UTF-8.
///
/// - `MagnetLink::parse` never panics;
/// - if it succeeds: `to_uri()` parses back to an equal link (when it fits the URI limit),
///   and writing that link again gives the same URI.
pub fn magnet(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(link) = MagnetLink::parse(text) else {
        return;
    };
    let uri = link.to_uri();
    if uri.len() > MagnetLink::MAX_URI_LEN {
        return;
    }
    match MagnetLink::parse(&uri) {
        Ok(back) => {
            assert_eq!(back, link, "parse(to_uri()) changed the link");
            assert_eq!(back.to_uri(), uri, "to_uri() is not a fixed point");
        }
        Err(err) => panic!("to_uri() wrote a URI that does not parse: {err}"),
    }
}

fn assert_safe_component(c: &str) {
    assert!(
        !c.is_empty() && c != "." && c != ".." && !c.contains(['/', '\\', '\0']),
        "unsafe path component {c:?}"
    );
}

/// `lt-picker`'s piece picker driven by an arbitrary sequence of operations.
///
/// The first three bytes choose the torrent (1-32 pieces of 1-4 blocks) and the settings; then
/// every 4 bytes are one operation (opcode, peer, piece, argument): peer messages, priorities,
/// deadlines, picks with arbitrary options, block arrivals, cancels, writes and hash results,
/// with indices a little past the end so the error paths run too.
///
/// - nothing panics, and every error leaves the state consistent;
/// - `check_invariants` holds after every operation;
/// - every picked block is of a piece the peer has, with priority above 0, that we lack; it was
///   open or requested before the pick (never received) and now lists the peer as a requester;
///   a peer on parole never gets a block already requested from someone else.
pub fn picker_ops(data: &[u8]) {
    use std::time::{Duration, Instant};

    use lt_core::Bitfield;
    use lt_picker::{
        Block, BlockState, Config, Layout, PeerKey, PickOptions, PiecePicker, Priority, Speed,
    };

    let [pieces, blocks, flags, rest @ ..] = data else {
        return;
    };
    let num_pieces = 1 + u32::from(pieces % 32);
    let Ok(layout) = Layout::uniform(num_pieces, 1 + u32::from(blocks % 4)) else {
        return;
    };
    let config = Config {
        rng_seed: Some([*flags; 32]),
        initial_picker_threshold: u32::from(flags % 3),
        strict_end_game: flags & 4 == 0,
        prioritize_partial_pieces: flags & 8 != 0,
        sequential: flags & 16 != 0,
        max_peers: 6,
        max_suggested_pieces: 3,
        max_allowed_fast: 3,
        max_requesters_per_block: 1 + (flags >> 5) % 3,
        ..Config::default()
    };
    let mut p = PiecePicker::new(layout, config);
    let n = num_pieces as usize;
    let now = Instant::now();
    for op in rest.chunks_exact(4) {
        let (code, peer, piece, arg) = (op[0], PeerKey(u32::from(op[1] % 8)), op[2] % 36, op[3]);
        let pi = PieceIndex(u32::from(piece));
        let block = Block::new(u32::from(piece), u32::from(arg % 5));
        // Errors are expected for out-of-range input; the invariant check covers the rest.
        match code % 24 {
            0 | 1 => drop(p.add_peer(peer)),
            2 => drop(p.remove_peer(peer)),
            3 => {
                let bits: Bitfield = (0..n)
                    .map(|i| (arg.rotate_left(u32::try_from(i % 8).unwrap_or(0)) ^ piece) & 1 == 1)
                    .collect();
                drop(p.peer_bitfield(peer, bits));
            }
            4 | 5 => drop(p.peer_have(peer, pi)),
            6 => drop(p.peer_have_all(peer)),
            7 => drop(p.peer_have_none(peer)),
            8 => drop(p.peer_dont_have(peer, pi)),
            9 => drop(p.peer_suggest(peer, pi)),
            10 => drop(p.peer_allowed_fast(peer, pi)),
            11 => drop(p.set_piece_priority(pi, Priority::saturating(arg % 8))),
            12 => drop(p.set_piece_deadline(pi, now + Duration::from_millis(arg.into()))),
            13 => drop(p.reset_piece_deadline(pi)),
            14..=16 => {
                let opts = PickOptions {
                    reverse: arg & 1 != 0,
                    on_parole: arg & 2 != 0,
                    prefer_whole_pieces: u32::from(arg >> 2 & 1),
                    speed: [Speed::None, Speed::Slow, Speed::Medium, Speed::Fast]
                        [usize::from(arg >> 3 & 3)],
                    choked: arg & 0x60 == 0x60,
                    time_critical_only: arg & 0xc0 == 0xc0,
                };
                let before: Vec<(Block, BlockState)> = (0..num_pieces)
                    .flat_map(|i| (0..p.layout().blocks_in_piece(i)).map(move |b| Block::new(i, b)))
                    .map(|b| {
                        (
                            b,
                            p.block_state(b)
                                .map(|v| v.state)
                                .unwrap_or(BlockState::Finished),
                        )
                    })
                    .collect();
                let Ok(picked) = p.pick(now, peer, usize::from(piece % 9), &opts) else {
                    continue;
                };
                for b in picked {
                    assert!(
                        p.peer_has(peer, b.piece),
                        "{b} picked from a peer that lacks it"
                    );
                    assert!(
                        !p.piece_priority(b.piece).is_dont_download(),
                        "{b} has priority 0"
                    );
                    assert!(!p.have_piece(b.piece), "{b} is a piece we have");
                    let was = before.iter().find(|(x, _)| *x == b).map(|&(_, s)| s);
                    assert!(
                        matches!(was, Some(BlockState::Open | BlockState::Requested)),
                        "{b} was {was:?} before the pick"
                    );
                    assert!(
                        !(opts.on_parole && was == Some(BlockState::Requested)),
                        "duplicate request for a peer on parole"
                    );
                    assert!(p.requesters(b).contains(&peer), "{b} not marked");
                }
            }
            17 | 18 => drop(p.block_received(peer, block)),
            19 => drop(p.cancel_request(peer, block)),
            20 => drop(p.block_written(block)),
            21 => drop(p.block_write_failed(block)),
            22 => drop(if arg & 1 == 0 {
                p.piece_passed(pi)
            } else {
                p.piece_failed(pi)
            }),
            _ => {
                if arg & 1 == 0 {
                    drop(p.set_have(pi));
                } else {
                    drop(p.clear_have(pi));
                }
            }
        }
        p.check_invariants();
    }
}

/// `lt-wire`'s framing decoder and peer state machine on arbitrary bytes.
///
/// - `MessageDecoder` never panics; decoding the input whole, split in two at a point the
///   input chooses, or one byte at a time yields the same messages and the same error;
/// - every decoded message re-encodes to bytes that decode to the same message, with a
///   length prefix that matches;
/// - a `PeerConnection` fed the input after a valid handshake (plaintext) never panics.
pub fn wire_message(data: &[u8]) {
    use bytes::BytesMut;
    use lt_wire::{Message, MessageDecoder};

    const MAX: u32 = 1 << 20;
    fn run<'a>(
        chunks: impl IntoIterator<Item = &'a [u8]>,
    ) -> (Vec<Message>, Option<lt_wire::Error>) {
        let mut dec = MessageDecoder::new(MAX);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for c in chunks {
            buf.extend_from_slice(c);
            loop {
                match dec.decode(&mut buf) {
                    Ok(Some(m)) => out.push(m),
                    Ok(None) => break,
                    Err(e) => return (out, Some(e)),
                }
            }
        }
        (out, None)
    }
    let whole = run([data]);
    let split = data.first().map_or(0, |&b| usize::from(b)) % (data.len() + 1);
    let (a, b) = data.split_at(split);
    assert_eq!(
        run([a, b]),
        whole,
        "splitting the stream changed the result"
    );
    if data.len() <= 4096 {
        assert_eq!(
            run(data.chunks(1)),
            whole,
            "byte-at-a-time changed the result"
        );
    }
    for m in &whole.0 {
        let bytes = m.to_bytes();
        assert_eq!(bytes.len(), m.encoded_len());
        let prefix = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
        assert_eq!(prefix + 4, bytes.len(), "length prefix");
        assert_eq!(
            Message::decode(&bytes, MAX).as_ref(),
            Ok(m),
            "re-encoding changed {m:?}"
        );
    }

    let now = std::time::Instant::now();
    let torrent = lt_wire::TorrentParams {
        info_hash: lt_core::InfoHash::v1([1; 20].into()),
        layout: Some(lt_wire::PieceLayout {
            num_pieces: 13,
            piece_length: 32768,
            total_length: 12 * 32768 + 7,
        }),
        metadata_size: Some(100),
    };
    let config = lt_wire::PeerConfig::new([2; 20].into());
    let Ok(mut conn) =
        lt_wire::PeerConnection::outgoing(config, now, torrent, None, BytesMut::new())
    else {
        return;
    };
    let theirs = lt_wire::Handshake {
        reserved: lt_wire::Reserved::default()
            .with_fast(true)
            .with_extensions(true),
        info_hash: [1; 20].into(),
        peer_id: [3; 20].into(),
    };
    if conn.handle_bytes(now, &theirs.to_bytes()).is_ok() {
        let _ = conn.handle_bytes(now, data);
        while conn.poll_event().is_some() {}
        while conn.poll_transmit().is_some() {}
        let _ = conn.handle_timeout(now + std::time::Duration::from_secs(61));
    }
}

/// `lt-wire`'s extension decoders on arbitrary bytes: the first byte picks the extension
/// (0: extended handshake), the rest is the payload.
///
/// - no decoder panics;
/// - whatever decodes re-encodes to a payload that decodes to the same message.
pub fn extension_message(data: &[u8]) {
    use lt_wire::{ExtendedHandshake, ExtensionIds, ExtensionMessage, Limits};

    let Some((&selector, payload)) = data.split_first() else {
        return;
    };
    let limits = Limits::default();
    let payload = bytes::Bytes::copy_from_slice(payload);
    // Both sides with the default ids, so encoding for the peer uses our incoming ids.
    let mut ids = ExtensionIds::default();
    ids.update_remote(&ExtendedHandshake {
        m: ExtensionIds::default().local_map(),
        ..ExtendedHandshake::default()
    });
    let ext_id = match selector % 7 {
        0 => 0,
        n => lt_wire::Extension::ALL[usize::from(n - 1)].default_local_id(),
    };
    let Ok(Some(msg)) = ExtensionMessage::decode(&ids, ext_id, &payload, &limits) else {
        return;
    };
    let Some(lt_wire::Message::Extended { id, payload: again }) = msg.to_message(&ids) else {
        panic!("a decoded message cannot be encoded: {msg:?}");
    };
    assert_eq!(id, ext_id);
    match ExtensionMessage::decode(&ids, id, &again, &limits) {
        Ok(Some(back)) => assert_eq!(back, msg, "re-encoding changed the message"),
        other => panic!("re-encoded {msg:?} decodes to {other:?}"),
    }
}

/// `lt-wire`'s MSE/PE handshake on arbitrary bytes, on both sides.
///
/// - neither side panics on any input, whole or split where the input says;
/// - a responder that reaches `NeedSkey` handles any answer without panicking.
pub fn mse_handshake(data: &[u8]) {
    use lt_wire::mse::{MseConfig, MseHandshake, MseStatus};

    let cfg = MseConfig::default();
    let seed = [data.first().copied().unwrap_or(0); 32];
    let split = data.get(1).map_or(0, |&b| usize::from(b) * 3) % (data.len() + 1);
    let (a, b) = data.split_at(split);

    let mut responder = MseHandshake::respond(&cfg, seed);
    if responder.handle_bytes(a).is_ok() && responder.handle_bytes(b).is_ok() {
        while responder.poll_transmit().is_some() {}
        if let MseStatus::NeedSkey(h) = responder.status() {
            let ih = lt_core::Sha1Hash::new([data.len().to_le_bytes()[0]; 20]);
            let known = lt_wire::mse::skey_hash(&ih) == h;
            let r = responder.provide_skey(Some(ih));
            assert!(known || r.is_err(), "an unknown SKEY was accepted");
        }
        if responder.status() == MseStatus::Done {
            let _ = responder.finish();
        }
    }

    let mut initiator = MseHandshake::initiate(&cfg, [7; 20].into(), seed);
    while initiator.poll_transmit().is_some() {}
    if initiator.handle_bytes(a).is_ok() && initiator.handle_bytes(b).is_ok() {
        while initiator.poll_transmit().is_some() {}
        if initiator.status() == MseStatus::Done {
            let _ = initiator.finish();
        }
    }
}

/// `lt-tracker`'s HTTP reply parsers and the server's HTTP announce/scrape on arbitrary bytes.
///
/// - `parse_announce` and `parse_scrape` never panic, with default and with tight limits;
/// - an accepted announce keeps at most `max_peers` peers, none with port 0;
/// - an accepted scrape keeps at most `max_scrape_files` entries;
/// - the server answers any request target, and its announce/scrape replies always parse.
pub fn http_tracker_response(data: &[u8]) {
    use lt_tracker::http::{HttpConfig, parse_announce, parse_scrape};

    let tight = HttpConfig {
        max_reply_len: 256,
        bencode: lt_bencode::Limits {
            max_depth: 3,
            max_items: 64,
        },
        max_peers: 3,
        max_scrape_files: 2,
    };
    for config in [HttpConfig::default(), tight] {
        if let Ok(r) = parse_announce(data, &config) {
            assert!(r.peers.len() <= config.max_peers);
            assert!(r.peers.iter().all(|p| p.addr.port() != 0));
        }
        if let Ok(s) = parse_scrape(data, &config) {
            assert!(s.len() <= config.max_scrape_files);
        }
    }
    let target = String::from_utf8_lossy(data);
    let mut server = lt_tracker::server::TrackerServer::new(Default::default());
    let now = std::time::Instant::now();
    let from = std::net::IpAddr::from([127, 0, 0, 1]);
    for path in ["/announce?", "/scrape?"] {
        let reply = server.handle_http(now, from, &format!("{path}{target}"));
        assert_eq!(reply.status, 200);
        let config = HttpConfig::default();
        let parsed = if path == "/announce?" {
            parse_announce(&reply.body, &config).map(|_| ())
        } else {
            parse_scrape(&reply.body, &config).map(|_| ())
        };
        match parsed {
            Ok(()) | Err(lt_tracker::Error::TrackerFailure { .. }) => {}
            Err(e) => panic!("server reply does not parse: {e}"),
        }
    }
}

/// `lt-tracker`'s BEP 15 codec, client state machine and server on arbitrary datagrams.
///
/// - request and reply decoding never panic, and whatever decodes re-encodes to a packet that
///   decodes to the same value;
/// - a `UdpTracker` with a connect and then an announce in flight takes the datagram (also
///   with the live transaction id patched in) without panicking, and its timer stays armed
///   or it reports an event;
/// - the server never panics, and its reply (if any) decodes as a reply.
pub fn udp_tracker_packet(data: &[u8]) {
    use lt_tracker::udp::{UdpRequest, UdpResponse};
    use lt_tracker::{AnnounceRequest, UdpConfig, UdpTracker};

    if let Ok(r) = UdpRequest::decode(data) {
        assert_eq!(UdpRequest::decode(&r.to_vec()).as_ref(), Ok(&r));
    }
    for ipv6 in [false, true] {
        if let Ok(r) = UdpResponse::decode(data, ipv6) {
            assert_eq!(UdpResponse::decode(&r.to_vec(), ipv6).as_ref(), Ok(&r));
        }
    }

    let now = std::time::Instant::now();
    let mut client = UdpTracker::new(
        UdpConfig {
            rng_seed: Some([1; 32]),
            ..Default::default()
        },
        b"/announce",
    );
    let req = AnnounceRequest::new(
        lt_core::Sha1Hash::new([1; 20]),
        lt_core::PeerId::new([2; 20]),
        6881,
    );
    let _ = client.announce(now, &req);
    let with_tid = |tid: u32| {
        let mut d = data.to_vec();
        if let Some(slot) = d.get_mut(4..8) {
            slot.copy_from_slice(&tid.to_be_bytes());
        }
        d
    };
    let tid_of = |client: &mut UdpTracker| {
        client
            .poll_transmit()
            .and_then(|p| UdpRequest::decode(&p).ok())
            .map(|r| r.transaction_id())
    };
    // In the connect phase.
    let connect_tid = tid_of(&mut client).unwrap_or(0);
    client.handle_datagram(now, data);
    client.handle_datagram(now, &with_tid(connect_tid));
    // In the announce phase (if the datagram did not already end the connect).
    if client.poll_timeout().is_some() {
        let reply = UdpResponse::Connect {
            transaction_id: connect_tid,
            connection_id: 7,
        };
        client.handle_datagram(now, &reply.to_vec());
        if let Some(tid) = tid_of(&mut client) {
            client.handle_datagram(now, &with_tid(tid));
        }
    }
    assert!(client.poll_timeout().is_some() || client.poll_event().is_some() || !client.is_busy());

    let mut server = lt_tracker::server::TrackerServer::new(Default::default());
    let from = std::net::SocketAddr::from(([127, 0, 0, 1], 4000));
    if let Some(reply) = server.handle_datagram(now, from, data) {
        assert!(UdpResponse::decode(&reply, false).is_ok());
    }
}

/// `lt-utp`'s packet codec and connection on arbitrary datagrams.
///
/// - `Packet::decode` never panics; what decodes re-encodes to bytes that decode to the same
///   packet, no longer than the input (unknown extensions are dropped);
/// - the datagram given to `Connection::accept`, to a connecting side and to an accepted
///   side (with its connection id patched to match) never panics, and what they transmit
///   afterwards decodes.
pub fn utp_packet(data: &[u8]) {
    use lt_utp::{Config, Connection, Packet};
    if let Ok(p) = Packet::decode(data) {
        let mut out = Vec::new();
        p.encode(&mut out);
        assert!(out.len() <= data.len());
        assert_eq!(Packet::decode(&out), Ok(p));
    }
    let now = std::time::Instant::now();
    let mut client = Connection::connect(Config::default(), now);
    let syn = client
        .poll_transmit(now)
        .map(|t| t.contents)
        .unwrap_or_default();
    let mut conns = Vec::new();
    if let Ok(server) = Connection::accept(Config::default(), now, data) {
        conns.push(server);
    }
    if let Ok(mut server) = Connection::accept(Config::default(), now, &syn) {
        let mut patched = data.to_vec();
        if patched.len() >= 4 {
            patched[2..4].copy_from_slice(&server.recv_id().to_be_bytes());
        }
        let _ = server.handle_datagram(now, &patched);
        conns.push(server);
    }
    let mut patched = data.to_vec();
    if patched.len() >= 4 {
        patched[2..4].copy_from_slice(&client.recv_id().to_be_bytes());
    }
    let _ = client.handle_datagram(now, &patched);
    conns.push(client);
    let later = now + std::time::Duration::from_secs(2);
    for mut c in conns {
        c.handle_timeout(later);
        for _ in 0..64 {
            let Some(t) = c.poll_transmit(later) else {
                break;
            };
            assert!(Packet::decode(&t.contents).is_ok());
        }
        while c.poll_event().is_some() {}
    }
}

/// `krpc_message`: KRPC decoding never panics, re-encoding a decoded message round-trips,
/// and a DHT node fed the datagram (as a query or as a reply to its bootstrap) stays sound.
pub fn krpc_message(data: &[u8]) {
    use lt_dht::{Config, Dht, Message};

    if let Ok(m) = Message::decode(data) {
        assert_eq!(Message::decode(&m.encode()).as_ref(), Ok(&m));
    }
    let now = std::time::Instant::now();
    let router: std::net::SocketAddr = ([10, 0, 0, 1], 6881).into();
    let mut dht = Dht::new(
        Config {
            rng_seed: Some([3; 32]),
            ..Default::default()
        },
        now,
    );
    dht.add_router(router);
    let _ = dht.bootstrap(now);
    // A decodable input is also replayed as the router's reply, under the transaction id
    // of the bootstrap query, so responses reach the lookup code.
    let tid = dht
        .poll_transmit()
        .and_then(|t| Message::decode(&t.payload).ok())
        .map(|m| m.tid);
    if let (Some(tid), Ok(mut m)) = (tid, Message::decode(data)) {
        m.tid = tid;
        dht.handle_datagram(now, router, &m.encode());
    }
    dht.handle_datagram(now, router, data);
    dht.handle_datagram(now, ([10, 0, 0, 2], 6881).into(), data);
    while let Some(t) = dht.poll_transmit() {
        assert!(t.payload.len() <= lt_dht::limits::MAX_MESSAGE_LEN);
        assert!(Message::decode(&t.payload).is_ok());
    }
    while dht.poll_event().is_some() {}
    let _ = dht.poll_timeout();
}

/// `lt-nat`'s UPnP parsers: SSDP responses, HTTP responses, device descriptions and SOAP
/// responses, all on the same bytes.
///
/// - nothing panics (XML bombs, deep nesting and huge inputs are typed errors);
/// - an accepted SSDP response's LOCATION is on the responder; an accepted description's
///   control URL is on the description's host;
/// - a parsed HTTP body is within the body limit, and a response complete before EOF parses
///   the same at EOF.
pub fn upnp_xml(data: &[u8]) {
    use lt_nat::http::{HttpResponse, HttpUrl, parse_response};
    use lt_nat::limits::MAX_HTTP_BODY;
    use lt_nat::soap::Action;
    use lt_nat::{Protocol, igd, ssdp};

    let from = std::net::SocketAddr::from(([192, 168, 77, 1], 1900));
    if let Ok(r) = ssdp::parse_response(from, data) {
        assert_eq!(r.location.host, from.ip());
    }
    let location = HttpUrl {
        host: from.ip(),
        port: 5000,
        path: "/rootDesc.xml".to_owned(),
    };
    if let Ok(d) = igd::parse_description(data, &location) {
        assert_eq!(d.service.control_url.host, location.host);
    }
    for eof in [false, true] {
        if let Ok(Some(resp)) = parse_response(data, eof) {
            assert!(resp.body.len() <= MAX_HTTP_BODY);
            if let Ok(Some(again)) = parse_response(data, !eof) {
                // Complete without EOF means EOF changes nothing.
                if !eof {
                    assert_eq!(again, resp);
                }
            }
        }
    }
    let actions = [
        Action::GetExternalIpAddress,
        Action::GetSpecificPortMappingEntry {
            external_port: 6881,
            protocol: Protocol::Tcp,
        },
        Action::DeletePortMapping {
            external_port: 6881,
            protocol: Protocol::Udp,
        },
    ];
    for status in [200, 500] {
        let resp = HttpResponse {
            status,
            body: data.to_vec(),
        };
        for action in &actions {
            let _ = action.parse_response(&resp);
        }
    }
}

/// `lt-nat`'s NAT-PMP and PCP codecs and the `PmpClient` state machine.
///
/// - decoding never panics; whatever decodes re-encodes to bytes that decode to the same
///   value;
/// - a `PmpClient` (PCP and NAT-PMP mode, with a request in flight) fed the bytes from its
///   gateway never panics and only sends to the gateway.
pub fn natpmp_packet(data: &[u8]) {
    use lt_nat::{PmpClient, PmpConfig, Protocol, natpmp, pcp};
    use std::net::{Ipv4Addr, SocketAddr};

    if let Ok(r) = natpmp::Response::decode(data) {
        assert_eq!(natpmp::Response::decode(&r.encode()), Ok(r));
    }
    if let Ok(r) = natpmp::Request::decode(data) {
        // Not byte-identical: reserved bytes are ignored on decode and written as zero.
        assert_eq!(natpmp::Request::decode(&r.encode()), Ok(r));
    }
    if let Ok(r) = pcp::Response::decode(data) {
        assert_eq!(pcp::Response::decode(&r.encode()), Ok(r));
    }
    if let Ok(r) = pcp::MapRequest::decode(data) {
        assert_eq!(pcp::MapRequest::decode(&r.encode()), Ok(r));
    }
    let gw = Ipv4Addr::new(192, 168, 77, 1);
    let from = SocketAddr::from((gw, natpmp::SERVER_PORT));
    let now = std::time::Instant::now();
    for use_pcp in [false, true] {
        let config = PmpConfig {
            use_pcp,
            rng_seed: Some([0; 32]),
            ..PmpConfig::default()
        };
        let mut client = PmpClient::new(config, gw, Ipv4Addr::new(192, 168, 77, 2));
        let Ok(index) = client.add_mapping(now, Protocol::Tcp, 6881, 6881) else {
            panic!("the first mapping must be accepted");
        };
        for _ in 0..2 {
            client.handle_datagram(now, from, data);
            while let Some(t) = client.poll_transmit() {
                assert_eq!(t.destination, from);
            }
            while client.poll_event().is_some() {}
        }
        let _ = client.delete_mapping(now, index);
        client.handle_datagram(now, from, data);
        if let Some(t) = client.poll_timeout() {
            client.handle_timeout(t);
        }
        while client.poll_transmit().is_some() {}
        while client.poll_event().is_some() {}
    }
}

/// lt-engine fed an arbitrary sequence of driver inputs through its one way in
/// ([`lt_engine::Engine::handle_input`]): connections that come and go, bytes from peers
/// (raw, or after a valid handshake for one of the session's torrents), writes reported,
/// disk completions (the engine's own jobs, answered or failed), tracker, DHT and LSD
/// replies, and time passing. The engine seeds one torrent and fetches another from a magnet
/// link.
///
/// - nothing panics;
/// - the connections stay within `connections_limit`;
/// - bytes handed to the driver and not reported written stay within the high send buffer
///   watermark plus one piece of slack for each connection (back-pressure);
/// - every `Send` and `Close` names a connection the engine opened, and nothing is sent
///   to a connection after its `Close`;
/// - a partial piece hands the disk at most `max_held_piece_bytes` (one block here) per
///   `WriteBlocks` job.
pub fn engine_inputs(data: &[u8]) {
    use std::collections::BTreeMap;
    use std::net::{Ipv4Addr, SocketAddr};
    use std::sync::{Arc, OnceLock};
    use std::time::{Duration, Instant};

    use bytes::{Bytes, BytesMut};
    use lt_engine::{
        Action, AddTorrent, ConnId, DiskDone, DiskError, DiskErrorKind, DiskJob, Engine, Handshake,
        Input, IoError, Settings, Transport,
    };
    use lt_metainfo::{CreateTorrent, TorrentInfo};

    /// The seeded torrent (64 KiB, 16 KiB pieces), its payload, and the magnet's torrent.
    fn torrents() -> &'static (Arc<TorrentInfo>, Vec<u8>, Arc<TorrentInfo>) {
        static T: OnceLock<(Arc<TorrentInfo>, Vec<u8>, Arc<TorrentInfo>)> = OnceLock::new();
        T.get_or_init(|| {
            let make = |name: &str, data: Vec<u8>, piece: u32| {
                let bytes = CreateTorrent::from_memory(name, data)
                    .piece_size(piece)
                    .generate()
                    .unwrap_or_default();
                Arc::new(TorrentInfo::from_bytes(&bytes).unwrap_or_else(|e| panic!("{e}")))
            };
            let payload: Vec<u8> = (0..65_536u32).map(|i| (i % 251) as u8).collect();
            let seeded = make("seeded.bin", payload.clone(), 16 * 1024);
            // Two-block pieces: with max_held_piece_bytes at one block, the first block of
            // a piece goes out as WriteBlocks and the second completes it.
            let magnet = make("magnet.bin", vec![7; 40_000], 32 * 1024);
            (seeded, payload, magnet)
        })
    }

    let (info, payload, magnet_info) = torrents();
    let settings = Settings {
        connections_limit: 8,
        max_held_piece_bytes: 16 * 1024,
        ..Settings::default()
    };
    let limit = settings.connections_limit;
    let slack = settings.send_buffer_watermark + 2 * 16 * 1024 + 4096;
    let mut now = Instant::now();
    let mut engine = Engine::new(settings, lt_core::PeerId::new([1; 20]), [0; 32], now);
    engine.set_listen_port(6881);
    engine.set_dht_port(Some(6881));
    engine.set_lsd(true, now);
    let Ok(seeded) = engine.add_torrent(now, AddTorrent::new(Arc::clone(info))) else {
        return;
    };
    let Ok(magnet) = AddTorrent::from_magnet(&magnet_info.magnet_link()) else {
        return;
    };
    let Ok(fetched) = engine.add_torrent(now, magnet) else {
        return;
    };
    let hashes = [info.info_hash(), magnet_info.info_hash()];
    let ids = [seeded, fetched];

    // What the engine opened, what it closed, and each connection's unwritten bytes.
    let mut open: BTreeMap<ConnId, usize> = BTreeMap::new();
    let mut dialled: Vec<ConnId> = Vec::new();
    let mut pending_disk: Vec<DiskJob> = Vec::new();

    let mut ops = data;
    let mut step = 0usize;
    while let [code, a, b, rest @ ..] = ops {
        ops = rest;
        step += 1;
        if step > 4_000 {
            break;
        }
        let conn_of = |k: u8| open.keys().nth(usize::from(k) % open.len().max(1)).copied();
        let input = match code % 14 {
            0 => Some(Input::Incoming {
                addr: SocketAddr::from((Ipv4Addr::new(10, 0, *a, *b), 7000 + u16::from(*a))),
                transport: if b & 1 == 0 {
                    Transport::Tcp
                } else {
                    Transport::Utp
                },
                handshake: Handshake::default(),
            }),
            1 | 2 => {
                // Raw bytes: a length byte, then that many bytes of the input.
                let n = usize::from(*b).min(ops.len());
                let (chunk, tail) = ops.split_at(n);
                ops = tail;
                conn_of(*a).map(|conn| Input::Received {
                    conn,
                    data: BytesMut::from(chunk),
                })
            }
            3 => {
                // A valid handshake for one of the torrents (with the extension and fast
                // bits), then messages from the input can follow.
                let h = lt_wire::Handshake::for_torrent(
                    &hashes[usize::from(*b) % 2],
                    lt_wire::Reserved::default()
                        .with_extensions(true)
                        .with_fast(true)
                        .with_dht(b & 2 != 0),
                    lt_core::PeerId::new([*a; 20]),
                );
                conn_of(*a).map(|conn| Input::Received {
                    conn,
                    data: BytesMut::from(&h.to_bytes()[..]),
                })
            }
            4 => {
                // A whole message from the input: the codec's framing, so it parses.
                let n = usize::from(*b).min(ops.len());
                let (body, tail) = ops.split_at(n);
                ops = tail;
                conn_of(*a).map(|conn| {
                    let mut m = BytesMut::with_capacity(4 + n);
                    m.extend_from_slice(&u32::try_from(n).unwrap_or(0).to_be_bytes());
                    m.extend_from_slice(body);
                    Input::Received { conn, data: m }
                })
            }
            5 => conn_of(*a).map(|conn| Input::Closed {
                conn,
                error: (b & 1 == 1)
                    .then(|| IoError::new(std::io::ErrorKind::ConnectionReset, "reset")),
            }),
            6 => conn_of(*a).map(|conn| {
                let queued = open.get(&conn).copied().unwrap_or(0);
                let written = if b & 1 == 0 { queued } else { queued / 2 };
                Input::Drained { conn, written }
            }),
            7 => {
                now += Duration::from_millis(u64::from(*a) * 40 + u64::from(*b));
                Some(Input::Timeout)
            }
            8 if !pending_disk.is_empty() => {
                // Answer (or fail) one of the engine's disk jobs.
                let job = pending_disk.remove(usize::from(*a) % pending_disk.len());
                let fail = b & 1 == 1;
                let err = || DiskError::new(DiskErrorKind::Other, "fuzzed");
                match job {
                    DiskJob::Check { torrent, .. } => Some(DiskDone::Checked {
                        torrent,
                        result: if fail {
                            Err(err())
                        } else {
                            Ok(lt_core::Bitfield::full(info.num_pieces() as usize))
                        },
                    }),
                    DiskJob::WritePiece { torrent, piece, .. }
                    | DiskJob::WriteBlocks {
                        torrent,
                        piece,
                        last: true,
                        ..
                    } => Some(DiskDone::PieceWritten {
                        torrent,
                        piece,
                        passed: b & 2 == 0,
                        error: fail.then(err),
                    }),
                    DiskJob::WriteBlocks { torrent, piece, .. } => Some(DiskDone::BlocksWritten {
                        torrent,
                        piece,
                        error: fail.then(err),
                    }),
                    DiskJob::Read {
                        torrent,
                        conn,
                        request,
                    } => {
                        let start = request.piece.as_usize() * 16 * 1024 + request.begin as usize;
                        let end = start + request.len as usize;
                        Some(DiskDone::Read {
                            torrent,
                            conn,
                            request,
                            result: payload
                                .get(start..end)
                                .filter(|_| !fail)
                                .map(Bytes::copy_from_slice)
                                .ok_or_else(err),
                        })
                    }
                    DiskJob::VerifyPiece { torrent, piece } => Some(DiskDone::Verified {
                        torrent,
                        piece,
                        ok: !fail,
                    }),
                    _ => None,
                }
                .map(Input::Disk)
            }
            9 => {
                let peers = (0..(b % 8))
                    .map(|i| SocketAddr::from((Ipv4Addr::new(10, 1, *a, i), 6881)))
                    .collect();
                Some(Input::Announced {
                    torrent: ids[usize::from(*a) % 2],
                    tracker: lt_tracker::TrackerIndex(usize::from(*b % 2)),
                    result: Ok(lt_tracker::AnnounceResponse {
                        interval: Duration::from_secs(u64::from(*a) * 1000),
                        peers: peers_of(peers),
                        ..Default::default()
                    }),
                })
            }
            10 => Some(Input::DhtPeers {
                torrent: ids[usize::from(*a) % 2],
                peers: (0..(b % 4))
                    .map(|i| SocketAddr::from((Ipv4Addr::new(127, 0, *a, i), u16::from(*b))))
                    .collect(),
            }),
            11 => Some(Input::LsdPeer {
                info_hash: hashes[usize::from(*a) % 2].best(),
                addr: SocketAddr::from((Ipv4Addr::new(192, 168, *a, *b), 6881)),
            }),
            12 if !dialled.is_empty() => {
                let conn = dialled.remove(usize::from(*a) % dialled.len());
                Some(if b & 1 == 0 {
                    Input::Connected {
                        conn,
                        transport: Transport::Tcp,
                        handshake: Handshake::default(),
                    }
                } else {
                    Input::ConnectFailed {
                        conn,
                        error: IoError::new(std::io::ErrorKind::ConnectionRefused, "refused"),
                    }
                })
            }
            _ => {
                engine.connect_peer(
                    now,
                    ids[usize::from(*a) % 2],
                    SocketAddr::from((Ipv4Addr::new(10, 2, *a, *b), 6881)),
                );
                None
            }
        };
        if let Some(input) = input {
            // The driver's own close: the engine sends no Close for it.
            let closed = match &input {
                Input::Closed { conn, .. } => Some(*conn),
                _ => None,
            };
            if let Input::Drained { conn, written } = &input
                && let Some(q) = open.get_mut(conn)
            {
                *q = q.saturating_sub(*written);
            }
            if let Some(conn) = engine.handle_input(now, input) {
                assert!(open.insert(conn, 0).is_none(), "{conn} given out twice");
            }
            if let Some(conn) = closed {
                open.remove(&conn);
                dialled.retain(|c| *c != conn);
            }
        }
        while let Some(action) = engine.poll_action() {
            match action {
                Action::Connect { conn, .. } => {
                    open.entry(conn).or_insert(0);
                    if !dialled.contains(&conn) {
                        dialled.push(conn);
                    }
                }
                Action::Send { conn, bufs } => {
                    let queued = open
                        .get_mut(&conn)
                        .unwrap_or_else(|| panic!("a Send to {conn}, which is not open"));
                    *queued += bufs.iter().map(Bytes::len).sum::<usize>();
                    assert!(
                        *queued <= slack,
                        "{queued} bytes unwritten for {conn} (watermark {slack})"
                    );
                }
                Action::Close { conn } => {
                    assert!(open.remove(&conn).is_some(), "a Close of {conn}, not open");
                    dialled.retain(|c| *c != conn);
                }
                Action::Disk(job) if pending_disk.len() < 256 => {
                    if let DiskJob::WriteBlocks { blocks, .. } = &job {
                        let held: usize = blocks.iter().map(|(_, b)| b.len()).sum();
                        assert!(held <= 16 * 1024, "a WriteBlocks job carried {held} bytes");
                    }
                    pending_disk.push(job);
                }
                _ => {}
            }
        }
        while engine.poll_alert().is_some() {}
        assert!(
            engine.num_connections() <= limit,
            "{} connections over the limit of {limit}",
            engine.num_connections()
        );
    }

    fn peers_of(addrs: Vec<SocketAddr>) -> Vec<lt_tracker::Peer> {
        addrs
            .into_iter()
            .map(|addr| lt_tracker::Peer {
                addr,
                peer_id: None,
            })
            .collect()
    }
}

/// `lt-storage`'s fast-resume parser and writer on arbitrary bytes.
///
/// - `ResumeData::from_bytes` and `from_bytes_with` (default and tight limits) never panic,
///   and `from_bytes` is `from_bytes_with` the default limits;
/// - accepted data respects the limits (input within `max_resume_size`, at most `max_peers`
///   peers and `max_unfinished` unfinished pieces), names a non-zero info-hash and has file
///   priorities within 0..=7;
/// - `to_bytes()` loads back (with the same count limits) to equal resume data, with the
///   embedded info dictionary byte for byte (its hash is the torrent's identity) and the
///   peers grouped IPv4 first (they are written as `peers` and `peers6`); and writing that
///   again gives the same bytes.
pub fn resume_data(data: &[u8]) {
    use lt_storage::{ResumeData, ResumeLimits as Limits};

    let defaults = Limits::default();
    assert_eq!(
        ResumeData::from_bytes(data).ok(),
        ResumeData::from_bytes_with(data, &defaults).ok(),
        "from_bytes differs from from_bytes_with(Limits::default())"
    );
    let tight = Limits {
        max_resume_size: 1024,
        max_decode_depth: 4,
        max_decode_tokens: 256,
        max_peers: 2,
        max_unfinished: 2,
    };
    for limits in [defaults, tight] {
        let Ok(r) = ResumeData::from_bytes_with(data, &limits) else {
            continue;
        };
        assert!(data.len() <= limits.max_resume_size);
        assert!(r.peers.len() <= limits.max_peers, "{} peers", r.peers.len());
        assert!(r.unfinished.len() <= limits.max_unfinished);
        assert!(
            r.info_hash.is_some() || r.info_hash2.is_some(),
            "no info-hash"
        );
        assert!(r.info_hash.is_none_or(|h| !h.is_zero()));
        assert!(r.info_hash2.is_none_or(|h| !h.is_zero()));
        assert!(r.file_priority.iter().all(|&p| p <= 7));

        let bytes = r.to_bytes();
        // The output has more items than the input (every field is written) and may be
        // longer; the count limits stay, since the output holds no more than was kept.
        let reload = Limits {
            max_resume_size: usize::MAX,
            max_decode_depth: limits.max_decode_depth.max(defaults.max_decode_depth),
            max_decode_tokens: usize::MAX,
            ..limits
        };
        let back = match ResumeData::from_bytes_with(&bytes, &reload) {
            Ok(back) => back,
            Err(e) => panic!("to_bytes() output does not load: {e}"),
        };
        let mut expected = r.clone();
        expected.peers.sort_by_key(std::net::SocketAddr::is_ipv6);
        assert_eq!(
            back, expected,
            "to_bytes() does not load to equal resume data"
        );
        assert_eq!(back.to_bytes(), bytes, "to_bytes() is not a fixed point");
    }
}

/// `lt-tracker`'s LSD (BEP 14) announce parser and encoder on arbitrary bytes.
///
/// - `lsd::parse` never panics;
/// - an accepted announce came in at most `MAX_DATAGRAM` bytes, has a port other than 0,
///   1 to `MAX_INFO_HASHES` info-hashes and a cookie of at most 64 characters without line
///   breaks at its ends;
/// - `encode` of it (to the IPv4 and the IPv6 group) fits in `MAX_DATAGRAM` and parses back
///   to the same port and cookie and a non-empty prefix of the info-hashes.
pub fn lsd_message(data: &[u8]) {
    use lt_tracker::lsd::{self, MAX_DATAGRAM, MAX_INFO_HASHES};

    let Ok(a) = lsd::parse(data) else {
        return;
    };
    assert!(data.len() <= MAX_DATAGRAM);
    assert_ne!(a.port, 0, "port 0 accepted");
    assert!(!a.info_hashes.is_empty() && a.info_hashes.len() <= MAX_INFO_HASHES);
    if let Some(c) = &a.cookie {
        assert!(
            c.chars().count() <= 64,
            "cookie of {} chars",
            c.chars().count()
        );
        assert_eq!(c.trim(), c, "cookie not trimmed");
    }
    let cookie = a.cookie.clone().unwrap_or_default();
    for host in ["239.192.152.143:6771", "[ff15::efc0:988f]:6771"] {
        let msg = lsd::encode(host, a.port, &a.info_hashes, &cookie);
        assert!(
            msg.len() <= MAX_DATAGRAM,
            "encode wrote {} bytes, more than parse accepts",
            msg.len()
        );
        let back = match lsd::parse(&msg) {
            Ok(back) => back,
            Err(e) => panic!("encoded announce does not parse: {e}"),
        };
        assert_eq!(back.port, a.port);
        assert_eq!(back.cookie.as_deref(), Some(cookie.as_str()));
        let n = back.info_hashes.len();
        assert!(n > 0 && a.info_hashes.get(..n) == Some(&back.info_hashes[..]));
    }
}

/// `lt-utp`'s `Endpoint` (many connections behind one socket) on arbitrary datagrams from
/// several source addresses, as a sequence of operations read from the input.
///
/// Two endpoints share an in-memory link: a listener (small half-open table) and a dialer
/// that accepts nothing and has connections open (one to the listener, two to addresses
/// that only the input speaks for). Operations: a datagram from the input (raw, or with its
/// connection id patched to route to a live connection) from one of six IPv4 and IPv6
/// addresses to either endpoint, a well-formed SYN, time passing by an input-chosen step,
/// delivery of what crossed the link, new connections, writes, reads, closes and aborts.
///
/// - nothing panics;
/// - the half-open count stays within `max_half_open`, within `max_half_open_per_ip` for
///   every address, the connections within `max_connections`; the count `len()` reports is
///   the number of accepted connections `is_half_open` says are half-open; a half-open
///   connection is gone once `handle_timeout` ran past its `half_open_timeout`;
/// - only a SYN is `Accepted`, and never by the dialer; an accepted or routed handle exists;
/// - every datagram an endpoint sends decodes as a uTP packet and fits the packet size for
///   its address family.
pub fn utp_endpoint(data: &[u8]) {
    use std::collections::BTreeMap;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
    use std::time::{Duration, Instant};

    use lt_utp::endpoint::IPV6_MAX_PACKET_SIZE;
    use lt_utp::limits::DEFAULT_MAX_PACKET_SIZE;
    use lt_utp::{
        ConnectionHandle, DatagramOutcome, Endpoint, EndpointConfig, Event, Header, Packet,
        PacketType,
    };

    const MAX_HALF_OPEN: usize = 4;
    const PER_IP: usize = 2;
    const MAX_CONNECTIONS: usize = 8;
    const HALF_OPEN_TIMEOUT: Duration = Duration::from_secs(10);
    /// Most datagrams waiting on the link between the two endpoints.
    const LINK_CAP: usize = 256;

    /// One side: the endpoint, its own address, and the half-open connections it accepted
    /// (with when).
    struct Side {
        ep: Endpoint,
        addr: SocketAddr,
        accepted: BTreeMap<ConnectionHandle, Instant>,
        handles: Vec<ConnectionHandle>,
    }

    impl Side {
        fn check(&self, now: Instant, listening: bool) {
            let (conns, half_open) = self.ep.len();
            assert!(conns <= MAX_CONNECTIONS, "{conns} connections");
            assert!(half_open <= MAX_HALF_OPEN, "{half_open} half-open");
            let mut per_ip: BTreeMap<IpAddr, usize> = BTreeMap::new();
            for (&h, &since) in &self.accepted {
                if !self.ep.is_half_open(h) {
                    continue;
                }
                assert!(
                    now < since + HALF_OPEN_TIMEOUT,
                    "half-open {h:?} outlived its timeout"
                );
                let ip = self.ep.peer_addr(h).map(|a| a.ip());
                if let Some(ip) = ip {
                    *per_ip.entry(ip).or_insert(0) += 1;
                }
            }
            assert_eq!(
                per_ip.values().sum::<usize>(),
                half_open,
                "len() counts half-open connections is_half_open does not know"
            );
            assert!(per_ip.values().all(|&n| n <= PER_IP), "{per_ip:?}");
            assert!(listening || half_open == 0);
        }
    }

    let Some((&seed, mut ops)) = data.split_first() else {
        return;
    };
    let v4 = |d: u8| IpAddr::V4(Ipv4Addr::new(10, 0, 0, d));
    let addrs: [SocketAddr; 6] = [
        SocketAddr::new(v4(1), 6881),
        SocketAddr::new(v4(2), 6881),
        SocketAddr::new(v4(2), 6882),
        SocketAddr::new(v4(3), 50000),
        SocketAddr::new(
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
            6881,
        ),
        SocketAddr::new(
            IpAddr::V6(Ipv4Addr::new(10, 0, 0, 3).to_ipv6_mapped()),
            6881,
        ),
    ];
    let config = |rng: u8, accept: bool| EndpointConfig {
        rng_seed: [rng; 32],
        accept_incoming: accept,
        max_connections: MAX_CONNECTIONS,
        max_half_open: MAX_HALF_OPEN,
        max_half_open_per_ip: PER_IP,
        half_open_timeout: HALF_OPEN_TIMEOUT,
        ..EndpointConfig::default()
    };
    let mut now = Instant::now();
    let mut sides = [
        Side {
            ep: Endpoint::new(config(seed, true)),
            addr: addrs[0],
            accepted: BTreeMap::new(),
            handles: Vec::new(),
        },
        Side {
            ep: Endpoint::new(config(seed ^ 0xff, false)),
            addr: addrs[1],
            accepted: BTreeMap::new(),
            handles: Vec::new(),
        },
    ];
    for to in [addrs[0], addrs[3], addrs[4]] {
        if let Some(h) = sides[1].ep.connect(now, to) {
            sides[1].handles.push(h);
        }
    }
    // Datagrams on the link: (to side, from address, bytes).
    let mut link: Vec<(usize, SocketAddr, Vec<u8>)> = Vec::new();
    let mut steps = 0usize;

    loop {
        // Driver rule: after any input, drain transmits, then events.
        for (i, side) in sides.iter_mut().enumerate() {
            for _ in 0..1024 {
                let Some((to, t)) = side.ep.poll_transmit(now) else {
                    break;
                };
                let p = Packet::decode(&t.contents)
                    .unwrap_or_else(|e| panic!("the endpoint sent a bad packet: {e}"));
                let max = if to.is_ipv6() {
                    IPV6_MAX_PACKET_SIZE
                } else {
                    DEFAULT_MAX_PACKET_SIZE
                };
                assert!(
                    t.contents.len() <= max,
                    "{} byte {:?} to {to}",
                    t.contents.len(),
                    p.header.ty
                );
                let peer = 1 - i;
                if to == addrs[peer] && link.len() < LINK_CAP {
                    link.push((peer, side.addr, t.contents));
                }
            }
            while let Some((h, ev)) = side.ep.poll_event() {
                match ev {
                    Event::Closed(_) => {
                        assert!(side.ep.peer_addr(h).is_none(), "{h:?} closed but kept");
                        side.handles.retain(|x| *x != h);
                        side.accepted.remove(&h);
                    }
                    Event::Readable => {
                        let mut buf = [0u8; 4096];
                        if let Some(c) = side.ep.connection(h) {
                            while c.read(&mut buf) > 0 {}
                        }
                    }
                    _ => {}
                }
            }
            // Evicted and expired half-open connections go without an event.
            let ep = &side.ep;
            side.handles.retain(|&h| ep.peer_addr(h).is_some());
            side.accepted.retain(|&h, _| ep.peer_addr(h).is_some());
            side.check(now, i == 0);
        }

        let [code, a, rest @ ..] = ops else {
            break;
        };
        ops = rest;
        steps += 1;
        if steps > 2_000 {
            break;
        }
        let side = usize::from(code & 1);
        match code >> 1 & 7 {
            0 | 1 => {
                // A datagram from the input: a length byte, then that many bytes.
                let n = usize::from(*a).min(ops.len());
                let (bytes, tail) = ops.split_at(n);
                ops = tail;
                let mut bytes = bytes.to_vec();
                let mut from = addrs[usize::from(code >> 4) % addrs.len()];
                if code & 0x80 != 0 && bytes.len() >= 4 && !sides[side].handles.is_empty() {
                    // Patched to route to a live connection, from its peer.
                    let h = sides[side].handles[usize::from(*a) % sides[side].handles.len()];
                    let ep = &mut sides[side].ep;
                    if let (Some(addr), Some(c)) = (ep.peer_addr(h), ep.connection(h)) {
                        from = addr;
                        bytes[2..4].copy_from_slice(&c.recv_id().to_be_bytes());
                    }
                }
                deliver(&mut sides[side], now, from, &bytes, side == 0);
            }
            2 => {
                // A well-formed SYN: connection id and sequence number from the input.
                let [x, y, tail @ ..] = ops else {
                    break;
                };
                ops = tail;
                let mut buf = Vec::new();
                Packet {
                    header: Header {
                        ty: PacketType::Syn,
                        connection_id: u16::from_be_bytes([*a, *x]),
                        timestamp_us: 0,
                        timestamp_diff_us: 0,
                        wnd_size: 1 << 20,
                        seq_nr: u16::from_be_bytes([*y, *a]),
                        ack_nr: 0,
                    },
                    sack: None,
                    payload: &[],
                }
                .encode(&mut buf);
                let from = addrs[usize::from(code >> 4) % addrs.len()];
                deliver(&mut sides[side], now, from, &buf, side == 0);
            }
            3 => {
                // Time passes: milliseconds, or seconds with the top bit.
                let step = if a & 0x80 != 0 {
                    Duration::from_secs(u64::from(a & 0x7f) * 7)
                } else {
                    Duration::from_millis(u64::from(*a) * 13)
                };
                now += step;
                for s in &mut sides {
                    s.ep.handle_timeout(now);
                }
            }
            4 => {
                // What crossed the link arrives (all of it, or the first `a`).
                let n = usize::from(*a).max(1).min(link.len());
                for (to, from, bytes) in link.drain(..n).collect::<Vec<_>>() {
                    deliver(&mut sides[to], now, from, &bytes, to == 0);
                }
            }
            5 => {
                let to = addrs[usize::from(*a) % addrs.len()];
                if let Some(h) = sides[side].ep.connect(now, to) {
                    sides[side].handles.push(h);
                }
            }
            6 => {
                let s = &mut sides[side];
                if let Some(&h) = s.handles.get(usize::from(*a) % s.handles.len().max(1))
                    && let Some(c) = s.ep.connection(h)
                {
                    let payload = vec![*a; usize::from(code >> 4) * 700];
                    let _ = c.write(&payload);
                }
            }
            _ => {
                let s = &mut sides[side];
                if let Some(&h) = s.handles.get(usize::from(*a) % s.handles.len().max(1))
                    && let Some(c) = s.ep.connection(h)
                {
                    if a & 1 == 0 {
                        c.close();
                    } else {
                        c.abort();
                    }
                }
            }
        }
    }

    fn deliver(side: &mut Side, now: Instant, from: SocketAddr, buf: &[u8], listening: bool) {
        let syn = Packet::decode(buf).is_ok_and(|p| p.header.ty == PacketType::Syn);
        match side.ep.handle_datagram(now, from, buf) {
            DatagramOutcome::Accepted(h) => {
                assert!(listening, "an endpoint that does not listen accepted");
                assert!(syn, "accepted a datagram that is not a SYN");
                assert!(side.ep.is_half_open(h) && side.ep.peer_addr(h) == Some(from));
                side.accepted.insert(h, now);
                side.handles.push(h);
            }
            DatagramOutcome::Routed(h) => {
                assert!(
                    side.ep.peer_addr(h).is_some(),
                    "routed to {h:?}, which is gone"
                );
            }
            _ => {}
        }
    }
}

/// What the accepting side of a connection did with the bytes of [`peer_incoming`].
#[derive(Debug, PartialEq, Eq)]
struct IncomingRun {
    /// `classify_incoming`'s verdict: plaintext (`Some(true)`) or MSE.
    plaintext: Option<bool>,
    /// The MSE method selected, when that handshake finished.
    mse_method: Option<u32>,
    /// Everything we sent, in order.
    sent: Vec<u8>,
    /// Every peer event.
    events: Vec<lt_wire::PeerEvent>,
    /// Why the connection ended, if it did.
    end: Option<String>,
}

/// `lt-wire`'s accepting side on arbitrary bytes from the remote initiator: as lt-session
/// does, `classify_incoming` picks the plaintext handshake (`PeerConnection::incoming`) or
/// the MSE responder (`MseHandshake::respond`, the SKEY answered for the one known torrent,
/// then `PeerConnection::incoming` with its cipher and leftover bytes); the connection is
/// accepted when the peer names the known torrent and dropped otherwise.
///
/// - nothing panics;
/// - feeding the input whole, split in two where the input says, or one byte at a time
///   gives the same verdict, MSE method, bytes sent, peer events and outcome (an MSE input
///   is fed whole and one of the other two ways, as its byte 70 says);
/// - `MseConfig::accept_incoming` refuses plaintext when encryption is forced and MSE when
///   it is disabled.
pub fn peer_incoming(data: &[u8]) {
    use lt_wire::mse::{EncPolicy, MseConfig};

    let whole = incoming_run([data]);
    // The MSE responder's Diffie-Hellman dominates a run (tens of milliseconds under the
    // sanitizer): an MSE input gets one of the two chunked runs, picked by the input.
    let picked = data.get(70).copied().unwrap_or(0);
    let mse = whole.plaintext == Some(false);
    if !mse || picked & 1 == 0 {
        let split = usize::from(picked) * 7 % (data.len() + 1);
        let (a, b) = data.split_at(split);
        assert_eq!(
            incoming_run([a, b]),
            whole,
            "splitting the input at {split} changed the result"
        );
    }
    if data.len() <= 4096 && (!mse || picked & 1 == 1) {
        assert_eq!(
            incoming_run(data.chunks(1)),
            whole,
            "byte-at-a-time changed the result"
        );
    }
    if let Some(plaintext) = whole.plaintext {
        for policy in [EncPolicy::Forced, EncPolicy::Enabled, EncPolicy::Disabled] {
            let config = MseConfig {
                in_policy: policy,
                ..MseConfig::default()
            };
            let refused = match policy {
                EncPolicy::Forced => plaintext,
                EncPolicy::Enabled => false,
                EncPolicy::Disabled => !plaintext,
            };
            assert_eq!(config.accept_incoming(plaintext).is_err(), refused);
        }
    }
}

/// The accepting side of [`peer_incoming`], fed `chunks` in order.
fn incoming_run<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> IncomingRun {
    use bytes::BytesMut;
    use lt_wire::mse::{MseConfig, MseHandshake, MseStatus, classify_incoming, skey_hash};
    use lt_wire::{PeerConfig, PeerConnection, PeerEvent, TorrentParams};

    enum Stage {
        Classify(BytesMut),
        Mse(Box<MseHandshake>),
        Peer(Box<PeerConnection>),
        Closed,
    }

    let known = lt_core::Sha1Hash::new([1; 20]);
    let torrent = TorrentParams {
        info_hash: lt_core::InfoHash::v1(known),
        layout: Some(lt_wire::PieceLayout {
            num_pieces: 13,
            piece_length: 32768,
            total_length: 12 * 32768 + 7,
        }),
        metadata_size: Some(100),
    };
    let config = PeerConfig::new([2; 20].into());
    let now = std::time::Instant::now();
    let mut run = IncomingRun {
        plaintext: None,
        mse_method: None,
        sent: Vec::new(),
        events: Vec::new(),
        end: None,
    };
    let mut stage = Stage::Classify(BytesMut::new());
    for chunk in chunks {
        // Feed the chunk.
        let fed = match &mut stage {
            Stage::Classify(prefix) => {
                prefix.extend_from_slice(chunk);
                match classify_incoming(prefix) {
                    None => Ok(()),
                    Some(plaintext) => {
                        run.plaintext = Some(plaintext);
                        let prefix = std::mem::take(prefix);
                        if plaintext {
                            PeerConnection::incoming(config.clone(), now, None, prefix)
                                .map(|c| stage = Stage::Peer(Box::new(c)))
                        } else {
                            // The responder's seed is fixed, so a recorded initiator's
                            // bytes (corpus/peer_incoming/mse_*) replay.
                            let mut hs = MseHandshake::respond(&MseConfig::default(), [0x5a; 32]);
                            let r = hs.handle_bytes(&prefix);
                            stage = Stage::Mse(Box::new(hs));
                            r
                        }
                    }
                }
            }
            Stage::Mse(hs) => hs.handle_bytes(chunk),
            Stage::Peer(c) => c.handle_bytes(now, chunk),
            Stage::Closed => break,
        };
        // Settle: drain output, answer NeedSkey, hand a finished MSE over, accept.
        let mut result = fed;
        loop {
            match &mut stage {
                Stage::Mse(hs) => {
                    while let Some(b) = hs.poll_transmit() {
                        run.sent.extend_from_slice(&b);
                    }
                    if result.is_err() {
                        break;
                    }
                    match hs.status() {
                        MseStatus::NeedSkey(h) => {
                            result = hs.provide_skey((h == skey_hash(&known)).then_some(known));
                        }
                        MseStatus::Done => {
                            let Stage::Mse(hs) = std::mem::replace(&mut stage, Stage::Closed)
                            else {
                                unreachable!("matched above")
                            };
                            match hs.finish() {
                                Ok(out) => {
                                    assert_eq!(out.info_hash, known, "MSE for another torrent");
                                    run.mse_method = Some(out.method);
                                    match PeerConnection::incoming(
                                        config.clone(),
                                        now,
                                        out.cipher,
                                        out.received,
                                    ) {
                                        Ok(c) => stage = Stage::Peer(Box::new(c)),
                                        Err(e) => result = Err(e),
                                    }
                                }
                                Err(e) => panic!("finish() after Done failed: {e}"),
                            }
                        }
                        MseStatus::InProgress => break,
                    }
                }
                Stage::Peer(c) => {
                    let mut accepted = false;
                    while let Some(b) = c.poll_transmit() {
                        run.sent.extend_from_slice(&b);
                    }
                    while let Some(e) = c.poll_event() {
                        if let PeerEvent::IncomingHandshake { info_hash, .. } = &e
                            && result.is_ok()
                        {
                            if *info_hash == known {
                                accepted = true;
                            } else {
                                result = Err(lt_wire::Error::InfoHashMismatch);
                            }
                        }
                        run.events.push(e);
                    }
                    if accepted {
                        result = c.accept(now, torrent);
                        continue;
                    }
                    break;
                }
                Stage::Classify(_) | Stage::Closed => break,
            }
        }
        if let Err(e) = result {
            run.end = Some(format!("{e:?}"));
            stage = Stage::Closed;
        }
    }
    if let Stage::Peer(c) = &mut stage {
        let later = now + std::time::Duration::from_secs(130);
        assert!(c.poll_timeout().is_some());
        if c.handle_timeout(later).is_ok() {
            while c.poll_transmit().is_some() {}
        }
    }
    run
}

/// `lt-tracker`'s BEP 12 tier logic (`TrackerList`) driven by an operation sequence: announces
/// falling due, replies parsed by `parse_announce` from the input (or failing to parse),
/// hand-built replies with arbitrary intervals up to `Duration::MAX`, failures, scrapes, new
/// trackers, fail limits, forced re-announces, and time advancing by arbitrary steps up to
/// the largest `Instant` (where an `interval` of `i64::MAX` once overflowed).
///
/// - nothing panics;
/// - at most one tracker is updating, and `next_announce` hands out nothing while one is;
///   what it hands out is due, and every tracker before it in order has failed (BEP 12);
/// - trackers stay in tier order and within `MAX_TRACKERS`; one that answered moves to the
///   front of its tier with its failures cleared;
/// - every `next_announce` and `min_announce` lies within `MAX_ANNOUNCE_INTERVAL` (or the one
///   hour failure back-off, if longer) of the current time; `poll_timeout` is the earliest
///   of them over the trackers that can announce, and `None` while one is updating.
pub fn tracker_tiers(data: &[u8]) {
    use std::time::{Duration, Instant};

    use lt_tracker::http::{HttpConfig, parse_announce};
    use lt_tracker::limits::MAX_ANNOUNCE_INTERVAL;
    use lt_tracker::{
        AnnounceResponse, Error, Event, MAX_TRACKERS, ScrapeEntry, TrackerIndex, TrackerList,
        TrackerSource,
    };

    let [shape, seed, rest @ ..] = data else {
        return;
    };
    let url = |i: u8| format!("udp://tracker{i}.example:6969/announce");
    // One to four tiers of one to four trackers.
    let tiers: Vec<Vec<String>> = (0..=(shape & 3))
        .map(|t| {
            (0..=(shape >> (2 + t) & 3))
                .map(|i| url(t * 4 + i))
                .collect()
        })
        .collect();
    let mut list = TrackerList::new(&tiers, [*seed; 32])
        .with_retry_base(Duration::from_secs(u64::from(seed % 16)));
    let base = Instant::now();
    let latest = latest_instant(base);
    let mut now = base;
    let http = HttpConfig::default();
    let event_of = |b: u8| {
        [
            Event::None,
            Event::Started,
            Event::Completed,
            Event::Stopped,
        ][usize::from(b % 4)]
    };
    let horizon_span = MAX_ANNOUNCE_INTERVAL.max(Duration::from_secs(3600));

    let mut ops = rest;
    let mut steps = 0usize;
    while let [code, a, rest @ ..] = ops {
        ops = rest;
        steps += 1;
        if steps > 2_000 {
            break;
        }
        let updating = list.entries().iter().position(|e| e.updating);
        // The tracker an answer is for: the one updating, or (API misuse) any index.
        let target = updating.map_or_else(|| TrackerIndex(usize::from(*a) % 20), TrackerIndex);
        match code % 10 {
            0 | 1 => {
                let got = list.next_announce(now);
                if let Some(TrackerIndex(i)) = got {
                    assert!(
                        updating.is_none(),
                        "handed out {i} while {updating:?} updates"
                    );
                    let e = &list.entries()[i];
                    assert!(e.updating && e.can_announce());
                    assert!(e.next_announce.is_none_or(|t| t <= now), "not due");
                    for (j, before) in list.entries()[..i].iter().enumerate() {
                        assert!(
                            before.fails > 0 || !before.can_announce(),
                            "skipped {j}, which never failed, for {i}"
                        );
                    }
                }
            }
            2 | 3 => {
                // A reply body from the input: a length byte, then that many bytes.
                let n = usize::from(*a).min(ops.len());
                let (body, tail) = ops.split_at(n);
                ops = tail;
                match parse_announce(body, &http) {
                    Ok(resp) => answered(&mut list, now, target, event_of(code >> 4), &resp),
                    Err(e) => failed(&mut list, now, target, e),
                }
            }
            4 => {
                // A hand-built reply: intervals of 8 bytes of seconds each, any size.
                let take = |ops: &mut &[u8]| {
                    let (head, rest) = ops.split_at(ops.len().min(8));
                    *ops = rest;
                    let mut secs = [0u8; 8];
                    secs[..head.len()].copy_from_slice(head);
                    u64::from_le_bytes(secs)
                };
                let interval = take(&mut ops);
                let min = take(&mut ops);
                let resp = AnnounceResponse {
                    interval: if a & 1 == 0 {
                        Duration::from_secs(interval)
                    } else {
                        Duration::MAX
                    },
                    min_interval: (a & 2 != 0).then(|| Duration::new(min, u32::from(*a) * 1_000)),
                    complete: (a & 4 != 0).then_some(u32::from(*a)),
                    tracker_id: (a & 8 != 0).then(|| vec![*a; 4]),
                    warning: (a & 16 != 0).then(|| "slow down".to_owned()),
                    ..AnnounceResponse::default()
                };
                answered(&mut list, now, target, event_of(a >> 5), &resp);
            }
            5 => {
                let error = if a & 1 == 0 {
                    Error::TrackerFailure {
                        message: format!("failure {a}"),
                    }
                } else {
                    Error::MalformedPacket
                };
                failed(&mut list, now, target, error);
            }
            6 => {
                // Time passes: up to 2^(a % 64) seconds, the top ones past any Instant.
                let secs = 1u64.checked_shl(u32::from(a % 64)).unwrap_or(u64::MAX);
                let step = Duration::from_secs(secs.saturating_mul(u64::from(code >> 4) + 1) / 16);
                now = now.checked_add(step).unwrap_or(latest);
            }
            7 => {
                // Time passes to the next deadline.
                if let Some(t) = list.poll_timeout() {
                    now = now.max(t);
                }
            }
            8 => match a % 4 {
                0 => list.force_announce(now),
                1 => {
                    list.set_fail_limit(TrackerIndex(usize::from(code >> 4)), u32::from(a >> 2) % 4)
                }
                2 => list.on_scrape(
                    TrackerIndex(usize::from(code >> 4)),
                    &ScrapeEntry {
                        complete: u32::from(*a),
                        ..ScrapeEntry::default()
                    },
                ),
                _ => {
                    let source = [
                        TrackerSource::Client,
                        TrackerSource::MagnetLink,
                        TrackerSource::Tex,
                    ][usize::from(a >> 2) % 3];
                    let _ = list.add_tracker(&url(code >> 4), a >> 4, source);
                }
            },
            _ => {
                // A huge jump: to the latest Instant, where nothing can be added.
                if a & 1 == 0 {
                    now = latest;
                }
            }
        }
        check(&list, now, latest, horizon_span);
    }

    fn answered(
        list: &mut TrackerList,
        now: Instant,
        i: TrackerIndex,
        event: Event,
        resp: &AnnounceResponse,
    ) {
        let url = list.entry(i).map(|e| e.url.clone());
        let at = list.on_success(now, i, event, resp);
        if let Some(url) = url {
            let e = list
                .entry(at)
                .unwrap_or_else(|| panic!("on_success lost {url}"));
            assert_eq!(e.url, url, "on_success returned another tracker's index");
            assert!(!e.updating && e.fails == 0 && e.verified);
            assert!(
                list.entries()[..at.0].iter().all(|x| x.tier < e.tier),
                "the tracker that answered is not first in its tier"
            );
        }
    }

    fn failed(list: &mut TrackerList, now: Instant, i: TrackerIndex, error: Error) {
        let fails = list.entry(i).map(|e| e.fails);
        list.on_failure(now, i, error);
        if let Some(fails) = fails {
            let e = list
                .entry(i)
                .unwrap_or_else(|| panic!("on_failure lost {i:?}"));
            assert_eq!(e.fails, fails.saturating_add(1));
            assert!(!e.updating && e.last_error.is_some());
        }
    }

    fn check(list: &TrackerList, now: Instant, latest: Instant, span: Duration) {
        let entries = list.entries();
        assert!(entries.len() <= MAX_TRACKERS);
        assert!(
            entries.windows(2).all(|w| w[0].tier <= w[1].tier),
            "tiers out of order"
        );
        let updating = entries.iter().filter(|e| e.updating).count();
        assert!(updating <= 1, "{updating} trackers updating");
        let horizon = now.checked_add(span).unwrap_or(latest);
        for e in entries {
            for t in [e.next_announce, e.min_announce].into_iter().flatten() {
                assert!(t <= horizon, "{} scheduled past the clamp", e.url);
            }
            let _ = (e.next_announce_in(now), e.min_announce_in(now));
        }
        let earliest = entries
            .iter()
            .filter(|e| e.can_announce())
            .filter_map(|e| e.next_announce)
            .min();
        let expected = if updating > 0 { None } else { earliest };
        assert_eq!(list.poll_timeout(), expected);
    }
}

/// The latest `Instant` reachable from `from` by `checked_add`.
fn latest_instant(from: std::time::Instant) -> std::time::Instant {
    let mut t = from;
    let mut step = std::time::Duration::MAX;
    while !step.is_zero() {
        while let Some(next) = t.checked_add(step) {
            t = next;
        }
        step /= 2;
    }
    t
}

/// `lt-engine`'s IP and port filters driven by `add_rule` / lookup sequences (IPv4 and IPv6,
/// v4-mapped addresses, reversed and overlapping ranges), against a naive model of what the
/// filter documents: rules kept in the order added, the last rule containing an address
/// decides, and a v4-mapped IPv6 address is its IPv4 address, in lookups and in rules alike
/// (a range between two of them is an IPv4 range); a range whose ends are of different
/// families or reversed is refused; an IPv6 range covers only the other IPv6 addresses.
///
/// - nothing panics;
/// - `add_rule` accepts exactly what the model does, and every lookup (`access`, `is_empty`)
///   agrees with the model.
pub fn ip_filter(data: &[u8]) {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use lt_engine::{IpAccess, IpFilter, PortFilter};

    /// An address from a selector byte and four bytes: IPv4, or IPv6 in one of a few
    /// neighbourhoods (v4-mapped, v4-compatible, documentation, the top of the space).
    fn addr(sel: u8, b: [u8; 4]) -> IpAddr {
        let v4 = Ipv4Addr::from(b);
        let [h0, h1] = [
            u16::from_be_bytes([b[0], b[1]]),
            u16::from_be_bytes([b[2], b[3]]),
        ];
        match sel % 6 {
            0 | 1 => IpAddr::V4(v4),
            2 => IpAddr::V6(v4.to_ipv6_mapped()),
            3 => IpAddr::V6(Ipv6Addr::new(0, 0, 0, 0, 0, 0, h0, h1)),
            4 => IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, h0, h1)),
            _ => IpAddr::V6(Ipv6Addr::new(
                0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, h0, h1,
            )),
        }
    }

    /// The model's form of an address: (is IPv4, value), a v4-mapped address as IPv4 (by
    /// its bytes, not through the standard library's conversions).
    fn key(ip: IpAddr) -> (bool, u128) {
        match ip {
            IpAddr::V4(a) => (true, u128::from(u32::from(a))),
            IpAddr::V6(a) => {
                let n = u128::from(a);
                if n >> 32 == 0xffff {
                    (true, n & 0xffff_ffff)
                } else {
                    (false, n)
                }
            }
        }
    }

    let mut filter = IpFilter::new();
    let mut ports = PortFilter::new();
    // The model: (is IPv4, first, last, flags) in the order added.
    let mut rules: Vec<(bool, u128, u128, u32)> = Vec::new();
    let mut port_rules: Vec<(u16, u16, u32)> = Vec::new();
    let mut seen: Vec<IpAddr> = Vec::new();

    let mut ops = data;
    let mut steps = 0usize;
    while let [code, rest @ ..] = ops {
        ops = rest;
        steps += 1;
        if steps > 4_000 {
            break;
        }
        match code % 4 {
            0 | 1 => {
                // add_rule: two addresses (selector + 4 bytes each) and the flags.
                let [s1, a0, a1, a2, a3, s2, b0, b1, b2, b3, flags, tail @ ..] = ops else {
                    break;
                };
                ops = tail;
                let first = addr(*s1, [*a0, *a1, *a2, *a3]);
                // Often a range near the first address, so that ranges overlap.
                let last = if code & 0x10 != 0 {
                    addr(*s1, [*a0, *a1, a2.wrapping_add(*b2), a3.wrapping_add(*b3)])
                } else {
                    addr(*s2, [*b0, *b1, *b2, *b3])
                };
                let access = IpAccess(u32::from(*flags % 4));
                let (kf, kl) = (key(first), key(last));
                let ok = kf.0 == kl.0 && kf.1 <= kl.1;
                assert_eq!(
                    filter.add_rule(first, last, access),
                    ok,
                    "add_rule({first}, {last})"
                );
                if ok {
                    rules.push((kf.0, kf.1, kl.1, access.0));
                }
                seen.extend([first, last]);
            }
            2 => {
                // Lookup: a new address, or one seen in a rule (and its neighbours).
                let [s, a0, a1, a2, a3, tail @ ..] = ops else {
                    break;
                };
                ops = tail;
                let mut probes = vec![addr(*s, [*a0, *a1, *a2, *a3])];
                if let Some(&ip) = seen.get(usize::from(*a0) % seen.len().max(1)) {
                    // The address, its neighbours, and its other form.
                    let (v4, n) = key(ip);
                    for m in [n.wrapping_sub(1), n, n.wrapping_add(1)] {
                        probes.push(match u32::try_from(m) {
                            Ok(m) if v4 => IpAddr::V4(Ipv4Addr::from(m)),
                            _ => IpAddr::V6(Ipv6Addr::from(m)),
                        });
                    }
                    if let IpAddr::V4(a) = ip {
                        probes.push(IpAddr::V6(a.to_ipv6_mapped()));
                    }
                }
                for ip in probes {
                    let model = rules
                        .iter()
                        .rev()
                        .find(|&&(v4, lo, hi, _)| {
                            let (f, x) = key(ip);
                            f == v4 && lo <= x && x <= hi
                        })
                        .map_or(0, |r| r.3);
                    assert_eq!(filter.access(ip).0, model, "access({ip})");
                    assert_eq!(filter.access(ip).is_blocked(), model & 1 != 0);
                }
                assert_eq!(filter.is_empty(), rules.is_empty());
            }
            _ => {
                // The port filter: a rule (or a lookup) from two ports and the flags.
                let [p0, p1, q0, q1, flags, tail @ ..] = ops else {
                    break;
                };
                ops = tail;
                let (p, q) = (
                    u16::from_be_bytes([*p0, *p1]),
                    u16::from_be_bytes([*q0, *q1]),
                );
                if flags & 0x80 == 0 {
                    let access = IpAccess(u32::from(*flags % 4));
                    assert_eq!(ports.add_rule(p, q, access), p <= q, "port rule {p}-{q}");
                    if p <= q {
                        port_rules.push((p, q, access.0));
                    }
                }
                for port in [p, q, p.wrapping_sub(1), q.wrapping_add(1)] {
                    let model = port_rules
                        .iter()
                        .rev()
                        .find(|&&(lo, hi, _)| lo <= port && port <= hi)
                        .map_or(0, |r| r.2);
                    assert_eq!(ports.access(port).0, model, "port {port}");
                }
            }
        }
    }
}
