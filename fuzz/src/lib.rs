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
///   to a connection after its `Close`.
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
            let make = |name: &str, data: Vec<u8>| {
                let bytes = CreateTorrent::from_memory(name, data)
                    .piece_size(16 * 1024)
                    .generate()
                    .unwrap_or_default();
                Arc::new(TorrentInfo::from_bytes(&bytes).unwrap_or_else(|e| panic!("{e}")))
            };
            let payload: Vec<u8> = (0..65_536u32).map(|i| (i % 251) as u8).collect();
            let seeded = make("seeded.bin", payload.clone());
            let magnet = make("magnet.bin", vec![7; 40_000]);
            (seeded, payload, magnet)
        })
    }

    let (info, payload, magnet_info) = torrents();
    let settings = Settings {
        connections_limit: 8,
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
                    DiskJob::WritePiece { torrent, piece, .. } => Some(DiskDone::PieceWritten {
                        torrent,
                        piece,
                        passed: b & 2 == 0,
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
                Action::Disk(job) if pending_disk.len() < 256 => pending_disk.push(job),
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
