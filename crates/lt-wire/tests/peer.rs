//! The peer state machine through its public API: a harness plays the remote peer with raw
//! bytes, or two connections talk through memory (plaintext and RC4), on a virtual clock.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation,
    reason = "test helpers outside #[test] fns; a panic is a test failure"
)]

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use lt_bencode::Value;
use lt_core::{Bitfield, InfoHash, PeerId, PieceIndex, Sha1Hash};
use lt_wire::mse::{MseConfig, MseHandshake, MseStatus};
use lt_wire::{
    BlockRequest, Error, ExtendedHandshake, ExtensionIds, ExtensionMessage, Handshake, Message,
    MetadataMessage, PeerConfig, PeerConnection, PeerEvent, PieceLayout, Reserved, TimeoutKind,
    TorrentParams,
};

const IH: [u8; 20] = [9; 20];

fn torrent() -> TorrentParams {
    TorrentParams {
        info_hash: InfoHash::v1(Sha1Hash::new(IH)),
        // 10 pieces of 32 KiB, the last 1000 bytes.
        layout: Some(PieceLayout {
            num_pieces: 10,
            piece_length: 32768,
            total_length: 9 * 32768 + 1000,
        }),
        metadata_size: Some(1234),
    }
}

/// Our outgoing connection, handshaken with a remote that sets `reserved`.
fn connected(reserved: Reserved) -> (PeerConnection, Instant) {
    let t0 = Instant::now();
    let mut c = PeerConnection::outgoing(
        PeerConfig::new(PeerId::new([1; 20])),
        t0,
        torrent(),
        None,
        BytesMut::new(),
    )
    .unwrap();
    let ours = c.poll_transmit().unwrap();
    assert_eq!(
        Handshake::decode(&ours[..68]).unwrap().info_hash,
        Sha1Hash::new(IH)
    );
    let theirs = Handshake {
        reserved,
        info_hash: Sha1Hash::new(IH),
        peer_id: PeerId::new([2; 20]),
    };
    c.handle_bytes(t0, &theirs.to_bytes()).unwrap();
    assert!(c.is_connected());
    drain(&mut c);
    (c, t0)
}

fn fast() -> Reserved {
    Reserved::default().with_fast(true).with_extensions(true)
}

fn drain(c: &mut PeerConnection) -> (Vec<PeerEvent>, Vec<Message>) {
    let mut events = Vec::new();
    while let Some(e) = c.poll_event() {
        events.push(e);
    }
    let mut bytes = BytesMut::new();
    while let Some(b) = c.poll_transmit() {
        bytes.extend_from_slice(&b);
    }
    if bytes.starts_with(lt_wire::PROTOCOL) {
        let _ = bytes.split_to(lt_wire::HANDSHAKE_LEN);
    }
    let mut dec = lt_wire::MessageDecoder::new(1 << 20);
    let mut msgs = Vec::new();
    while let Some(m) = dec.decode(&mut bytes).unwrap() {
        msgs.push(m);
    }
    (events, msgs)
}

fn feed(c: &mut PeerConnection, now: Instant, m: &Message) -> Result<(), Error> {
    c.handle_bytes(now, &m.to_bytes())
}

#[test]
fn handshake_sends_extended_handshake() {
    let t0 = Instant::now();
    let mut c = PeerConnection::outgoing(
        PeerConfig::new(PeerId::new([1; 20])),
        t0,
        torrent(),
        None,
        BytesMut::new(),
    )
    .unwrap();
    let _ = c.poll_transmit();
    let theirs = Handshake {
        reserved: fast(),
        info_hash: Sha1Hash::new(IH),
        peer_id: PeerId::new([2; 20]),
    };
    // One byte at a time.
    for b in theirs.to_bytes() {
        c.handle_bytes(t0, &[b]).unwrap();
    }
    let (events, msgs) = drain(&mut c);
    assert!(matches!(events[0], PeerEvent::Connected { .. }));
    let Message::Extended { id: 0, payload } = &msgs[0] else {
        panic!("{msgs:?}")
    };
    let hs = ExtendedHandshake::decode(payload, &Default::default()).unwrap();
    assert_eq!(hs.metadata_size, Some(1234));
    assert_eq!(hs.m.get("ut_metadata"), Some(&2));
    assert_eq!(hs.reqq, Some(500));
}

#[test]
fn wrong_info_hash_and_self_connection() {
    let t0 = Instant::now();
    let cfg = PeerConfig::new(PeerId::new([1; 20]));
    let mut c =
        PeerConnection::outgoing(cfg.clone(), t0, torrent(), None, BytesMut::new()).unwrap();
    let other = Handshake {
        reserved: fast(),
        info_hash: Sha1Hash::new([8; 20]),
        peer_id: PeerId::new([2; 20]),
    };
    assert_eq!(
        c.handle_bytes(t0, &other.to_bytes()),
        Err(Error::InfoHashMismatch)
    );
    let mut c = PeerConnection::outgoing(cfg, t0, torrent(), None, BytesMut::new()).unwrap();
    let me = Handshake {
        reserved: fast(),
        info_hash: Sha1Hash::new(IH),
        peer_id: PeerId::new([1; 20]),
    };
    assert_eq!(
        c.handle_bytes(t0, &me.to_bytes()),
        Err(Error::SelfConnection)
    );
}

#[test]
fn incoming_learns_info_hash_first() {
    let t0 = Instant::now();
    let mut c = PeerConnection::incoming(
        PeerConfig::new(PeerId::new([1; 20])),
        t0,
        None,
        BytesMut::new(),
    )
    .unwrap();
    let theirs = Handshake {
        reserved: fast(),
        info_hash: Sha1Hash::new(IH),
        peer_id: PeerId::new([2; 20]),
    };
    let bytes = theirs.to_bytes();
    // Only the head: the peer id and a HAVE follow later.
    c.handle_bytes(t0, &bytes[..48]).unwrap();
    assert_eq!(
        c.poll_event(),
        Some(PeerEvent::IncomingHandshake {
            info_hash: Sha1Hash::new(IH),
            reserved: fast()
        })
    );
    assert_eq!(c.poll_transmit(), None);
    c.handle_bytes(t0, &bytes[48..]).unwrap();
    c.handle_bytes(t0, &Message::Have(PieceIndex(3)).to_bytes())
        .unwrap();
    assert_eq!(c.poll_event(), None, "nothing parsed before accept");
    let mut wrong = torrent();
    wrong.info_hash = InfoHash::v1(Sha1Hash::new([7; 20]));
    assert_eq!(c.accept(t0, wrong), Err(Error::InfoHashMismatch));
    c.accept(t0, torrent()).unwrap();
    let (events, msgs) = drain(&mut c);
    assert!(matches!(events[0], PeerEvent::Connected { .. }));
    assert_eq!(events[1], PeerEvent::Have(PieceIndex(3)));
    assert!(matches!(msgs[0], Message::Extended { id: 0, .. }));
}

#[test]
fn hostile_core_messages() {
    let cases: Vec<(Reserved, Vec<Message>, Error)> = vec![
        (
            fast(),
            vec![Message::Request(BlockRequest::new(PieceIndex(0), 0, 16385))],
            Error::RequestTooLong {
                len: 16385,
                max: 16384,
            },
        ),
        (
            fast(),
            vec![Message::Have(PieceIndex(10))],
            Error::BadPieceIndex(10),
        ),
        (
            fast(),
            vec![Message::Request(BlockRequest::new(PieceIndex(9), 0, 1001))],
            Error::BadBlock {
                piece: 9,
                begin: 0,
                len: 1001,
            },
        ),
        (
            fast(),
            vec![Message::Request(BlockRequest::new(
                PieceIndex(0),
                u32::MAX,
                16,
            ))],
            Error::BadBlock {
                piece: 0,
                begin: u32::MAX,
                len: 16,
            },
        ),
        (
            fast(),
            vec![Message::Bitfield(Bytes::from_static(&[0xff]))],
            Error::Bitfield(lt_core::Error::BitfieldLength {
                expected: 2,
                actual: 1,
            }),
        ),
        (
            fast(),
            vec![Message::Bitfield(Bytes::from_static(&[0xff, 0xff]))],
            Error::Bitfield(lt_core::Error::BitfieldSpareBits),
        ),
        (
            fast(),
            vec![Message::Unknown {
                id: 99,
                payload: Bytes::new(),
            }],
            Error::UnknownMessage(99),
        ),
        (
            Reserved::default(),
            vec![Message::HaveAll],
            Error::FastNotNegotiated(14),
        ),
        (
            Reserved::default(),
            vec![Message::Extended {
                id: 0,
                payload: Bytes::from_static(b"de"),
            }],
            Error::ExtensionsNotNegotiated,
        ),
    ];
    for (reserved, msgs, expected) in cases {
        let (mut c, t0) = connected(reserved);
        let mut result = Ok(());
        for m in &msgs {
            result = feed(&mut c, t0, m);
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(expected), "{msgs:?}");
    }
}

/// A later BITFIELD, HAVE ALL or HAVE NONE replaces what we knew of the peer's pieces, as
/// libtorrent takes it: aria2 sends HAVE NONE then a BITFIELD (or two BITFIELDs), and was
/// dropped for it.
#[test]
fn a_later_bitfield_replaces_the_first() {
    let (mut c, now) = connected(fast());
    feed(&mut c, now, &Message::HaveNone).unwrap();
    feed(&mut c, now, &Message::Have(PieceIndex(1))).unwrap();
    feed(
        &mut c,
        now,
        &Message::Bitfield(Bytes::from_static(&[0x80, 0x40])),
    )
    .unwrap();
    let (events, _) = drain(&mut c);
    let mut last = None;
    for e in events {
        if let PeerEvent::Bitfield(b) = e {
            last = Some(b);
        }
    }
    let last = last.unwrap();
    assert_eq!((last.get(0), last.get(1), last.get(9)), (true, false, true));
    assert_eq!(c.peer_pieces(), Some(&last));
    feed(&mut c, now, &Message::HaveAll).unwrap();
    assert!(c.peer_pieces().unwrap().all());
}

#[test]
fn oversized_messages_are_refused_before_buffering() {
    let (mut c, t0) = connected(fast());
    // Only the length prefix and id of a 2 MiB message.
    let mut head = (2u32 << 20).to_be_bytes().to_vec();
    head.push(7);
    assert_eq!(
        c.handle_bytes(t0, &head),
        Err(Error::MessageTooLong {
            len: 2 << 20,
            max: 1 << 20
        })
    );
}

fn extended(id: u8, payload: Vec<u8>) -> Message {
    Message::Extended {
        id,
        payload: payload.into(),
    }
}

#[test]
fn hostile_extension_messages() {
    let (mut c, t0) = connected(fast());
    let r = feed(&mut c, t0, &extended(0, vec![b'x'; 70_000]));
    assert!(matches!(r, Err(Error::ExtensionTooLong { .. })), "{r:?}");

    let (mut c, t0) = connected(fast());
    let hs = Value::dict([("metadata_size", Value::Int(1 << 40))]).to_bytes();
    assert!(matches!(
        feed(&mut c, t0, &extended(0, hs)),
        Err(Error::MetadataTooLarge { .. })
    ));

    // PEX: too many peers in one message, then too many messages in a minute.
    let (mut c, t0) = connected(fast());
    let pex_id = ExtensionIds::default()
        .local(lt_wire::Extension::Pex)
        .unwrap();
    let flood = Value::dict([("added", Value::Bytes(vec![1; 6 * 201]))]).to_bytes();
    assert_eq!(
        feed(&mut c, t0, &extended(pex_id, flood)),
        Err(Error::PexTooManyPeers {
            count: 201,
            max: 200
        })
    );
    let (mut c, t0) = connected(fast());
    let one = Value::dict([("added", Value::Bytes(vec![1; 6]))]).to_bytes();
    for i in 0..6 {
        feed(
            &mut c,
            t0 + Duration::from_secs(i),
            &extended(pex_id, one.clone()),
        )
        .unwrap();
    }
    assert_eq!(
        feed(&mut c, t0 + Duration::from_secs(30), &extended(pex_id, one)),
        Err(Error::PexTooFrequent)
    );
    // Unknown extension ids are ignored.
    let (mut c, t0) = connected(fast());
    feed(&mut c, t0, &extended(77, b"garbage".to_vec())).unwrap();
}

/// A ut_metadata data piece whose `total_size` is not the `metadata_size` the peer
/// announced is a lie (hostile-peer suite, issue 18); one that agrees is delivered.
#[test]
fn metadata_total_size_must_match_the_announced_size() {
    let md_id = ExtensionIds::default()
        .local(lt_wire::Extension::Metadata)
        .unwrap();
    let data = |total_size: u32| {
        let mut payload = BytesMut::new();
        MetadataMessage::Data {
            piece: 0,
            total_size,
            data: Bytes::from(vec![7u8; total_size.min(16384) as usize]),
        }
        .encode(&mut payload);
        extended(md_id, payload.to_vec())
    };
    let announce = |size: i64| {
        let hs = Value::dict([
            ("m", Value::dict([("ut_metadata", Value::Int(3))])),
            ("metadata_size", Value::Int(size)),
        ]);
        extended(0, hs.to_bytes())
    };
    let (mut c, t0) = connected(fast());
    feed(&mut c, t0, &announce(1000)).unwrap();
    assert_eq!(
        feed(&mut c, t0, &data(21_000)),
        Err(Error::BadMetadataMessage(
            "total_size differs from the announced metadata_size"
        ))
    );
    let (mut c, t0) = connected(fast());
    feed(&mut c, t0, &announce(1000)).unwrap();
    feed(&mut c, t0, &data(1000)).unwrap();
    let (events, _) = drain(&mut c);
    assert!(
        events.iter().any(|e| matches!(
            e,
            PeerEvent::Extension(ExtensionMessage::Metadata(MetadataMessage::Data {
                total_size: 1000,
                ..
            }))
        )),
        "{events:?}"
    );
}

#[test]
fn request_timeout_snubs() {
    let (mut c, t0) = connected(fast());
    feed(&mut c, t0, &Message::Unchoke).unwrap();
    let req = BlockRequest::new(PieceIndex(0), 0, 16384);
    c.request(t0, req).unwrap();
    assert_eq!(
        c.request(t0, req),
        Err(Error::ApiMisuse("block already requested"))
    );
    drain(&mut c);
    let deadline = c.poll_timeout().unwrap();
    assert_eq!(deadline, t0 + Duration::from_secs(60));
    c.handle_timeout(deadline).unwrap();
    let (events, _) = drain(&mut c);
    assert_eq!(
        events,
        [PeerEvent::RequestTimedOut(req), PeerEvent::Snubbed]
    );
    assert!(c.is_snubbed());
    // Keep-alive after two minutes of silence from us; inactivity closes at ten minutes.
    c.handle_bytes(
        t0 + Duration::from_secs(100),
        &Message::KeepAlive.to_bytes(),
    )
    .unwrap();
    c.handle_timeout(t0 + Duration::from_secs(121)).unwrap();
    let (_, msgs) = drain(&mut c);
    assert_eq!(msgs, [Message::KeepAlive]);
    assert_eq!(
        c.handle_timeout(t0 + Duration::from_secs(701)),
        Err(Error::Timeout(TimeoutKind::Inactivity))
    );
}

#[test]
fn a_block_lifts_the_snub() {
    let (mut c, t0) = connected(fast());
    feed(&mut c, t0, &Message::Unchoke).unwrap();
    let req = BlockRequest::new(PieceIndex(0), 0, 16384);
    c.request(t0, req).unwrap();
    drain(&mut c);
    let deadline = c.poll_timeout().unwrap();
    c.handle_timeout(deadline).unwrap();
    assert_eq!(
        drain(&mut c).0,
        [PeerEvent::RequestTimedOut(req), PeerEvent::Snubbed]
    );
    // A block we asked for (after the timeout) lifts the snub, with an event.
    let req2 = BlockRequest::new(PieceIndex(0), 16384, 16384);
    c.request(deadline, req2).unwrap();
    drain(&mut c);
    let piece = Message::Piece {
        piece: PieceIndex(0),
        begin: 16384,
        data: Bytes::from(vec![1u8; 16384]),
    };
    feed(&mut c, deadline, &piece).unwrap();
    let (events, _) = drain(&mut c);
    assert!(
        matches!(&events[..], [PeerEvent::Unsnubbed, PeerEvent::Block { request, .. }] if *request == req2)
    );
    assert!(!c.is_snubbed());
}

#[test]
fn handshake_timeout() {
    let t0 = Instant::now();
    let mut c = PeerConnection::incoming(
        PeerConfig::new(PeerId::new([1; 20])),
        t0,
        None,
        BytesMut::new(),
    )
    .unwrap();
    assert_eq!(c.poll_timeout(), Some(t0 + Duration::from_secs(10)));
    assert_eq!(
        c.handle_timeout(t0 + Duration::from_secs(10)),
        Err(Error::Timeout(TimeoutKind::Handshake))
    );
}

#[test]
fn choke_semantics() {
    // Without the fast extension a choke drops our requests.
    let (mut c, t0) = connected(Reserved::default().with_extensions(true));
    feed(&mut c, t0, &Message::Unchoke).unwrap();
    let req = BlockRequest::new(PieceIndex(1), 0, 16384);
    c.request(t0, req).unwrap();
    drain(&mut c);
    feed(&mut c, t0, &Message::Choke).unwrap();
    let (events, _) = drain(&mut c);
    assert_eq!(events, [PeerEvent::Rejected(req), PeerEvent::Choked]);
    assert_eq!(
        c.request(t0, req),
        Err(Error::ApiMisuse("request while choked"))
    );

    // With it, requests survive a choke until rejected; allowed-fast pieces may be
    // requested while choked.
    let (mut c, t0) = connected(fast());
    feed(&mut c, t0, &Message::AllowedFast(PieceIndex(2))).unwrap();
    let req = BlockRequest::new(PieceIndex(2), 0, 16384);
    c.request(t0, req).unwrap();
    feed(&mut c, t0, &Message::Choke).unwrap();
    assert_eq!(c.outstanding_requests().count(), 1);
    feed(&mut c, t0, &Message::Reject(req)).unwrap();
    let (events, _) = drain(&mut c);
    assert_eq!(
        events,
        [
            PeerEvent::AllowedFast(PieceIndex(2)),
            PeerEvent::Rejected(req)
        ]
    );
}

#[test]
fn serving_requests() {
    let (mut c, t0) = connected(fast());
    let req = BlockRequest::new(PieceIndex(1), 16384, 16384);
    // Choked: rejected at once (BEP 6).
    feed(&mut c, t0, &Message::Request(req)).unwrap();
    let (events, msgs) = drain(&mut c);
    assert!(events.is_empty());
    assert_eq!(msgs, [Message::Reject(req)]);
    c.unchoke(t0);
    feed(&mut c, t0, &Message::Request(req)).unwrap();
    let (events, _) = drain(&mut c);
    assert_eq!(events, [PeerEvent::Request(req)]);
    let data = Bytes::from(vec![5u8; 16384]);
    assert!(c.send_block(t0, req.piece, req.begin, data.clone()));
    // Header and block are separate buffers: the block is not copied.
    let head = c.poll_transmit().unwrap();
    assert_eq!(head.len(), 13);
    let block = c.poll_transmit().unwrap();
    assert_eq!(block.as_ptr(), data.as_ptr());
    assert!(
        !c.send_block(t0, req.piece, req.begin, data),
        "answered once"
    );
    // Cancel of a pending request is answered with a reject; choke rejects the rest.
    feed(&mut c, t0, &Message::Request(req)).unwrap();
    let other = BlockRequest::new(PieceIndex(2), 0, 16384);
    feed(&mut c, t0, &Message::Request(other)).unwrap();
    feed(&mut c, t0, &Message::Cancel(req)).unwrap();
    c.choke(t0);
    let (events, msgs) = drain(&mut c);
    assert_eq!(
        events,
        [
            PeerEvent::Request(req),
            PeerEvent::Request(other),
            PeerEvent::Cancel(req)
        ]
    );
    assert_eq!(
        msgs,
        [Message::Reject(req), Message::Choke, Message::Reject(other)]
    );
    assert_eq!(c.stats().sent.payload_bytes, 16384);
}

#[test]
fn request_queue_is_bounded() {
    let t0 = Instant::now();
    let mut cfg = PeerConfig::new(PeerId::new([1; 20]));
    cfg.max_in_requests = 3;
    let mut c = PeerConnection::outgoing(cfg, t0, torrent(), None, BytesMut::new()).unwrap();
    let theirs = Handshake {
        reserved: fast(),
        info_hash: Sha1Hash::new(IH),
        peer_id: PeerId::new([2; 20]),
    };
    c.handle_bytes(t0, &theirs.to_bytes()).unwrap();
    c.unchoke(t0);
    drain(&mut c);
    for i in 0..10 {
        let r = BlockRequest::new(PieceIndex(i / 2), (i % 2) * 16384, 16384);
        feed(&mut c, t0, &Message::Request(r)).unwrap();
    }
    assert_eq!(c.pending_peer_requests().count(), 3);
    let (_, msgs) = drain(&mut c);
    assert_eq!(
        msgs.iter()
            .filter(|m| matches!(m, Message::Reject(_)))
            .count(),
        7
    );
}

#[test]
fn unrequested_and_mismatched_blocks_are_not_delivered() {
    let (mut c, t0) = connected(fast());
    feed(&mut c, t0, &Message::Unchoke).unwrap();
    let req = BlockRequest::new(PieceIndex(0), 0, 16384);
    c.request(t0, req).unwrap();
    drain(&mut c);
    let short = Message::Piece {
        piece: PieceIndex(0),
        begin: 0,
        data: Bytes::from(vec![0u8; 100]),
    };
    feed(&mut c, t0, &short).unwrap();
    assert_eq!(drain(&mut c).0, []);
    assert_eq!(c.stats().wasted_bytes, 100);
    let right = Message::Piece {
        piece: PieceIndex(0),
        begin: 0,
        data: Bytes::from(vec![1u8; 16384]),
    };
    feed(&mut c, t0, &right).unwrap();
    let (events, _) = drain(&mut c);
    assert!(matches!(&events[..], [PeerEvent::Block { request, .. }] if *request == req));
    let past = Message::Piece {
        piece: PieceIndex(9),
        begin: 900,
        data: Bytes::from(vec![1u8; 200]),
    };
    assert!(matches!(
        feed(&mut c, t0, &past),
        Err(Error::BadBlock { .. })
    ));
}

/// Two connections through memory, optionally behind MSE with RC4.
fn pair(rc4: bool) -> (PeerConnection, PeerConnection, Instant) {
    let t0 = Instant::now();
    let ih = Sha1Hash::new(IH);
    let (ca, ra, cb, rb) = if rc4 {
        let cfg = MseConfig {
            prefer_rc4: true,
            ..MseConfig::default()
        };
        let mut a = MseHandshake::initiate(&cfg, ih, [1; 32]);
        let mut b = MseHandshake::respond(&cfg, [2; 32]);
        while a.status() != MseStatus::Done || b.status() != MseStatus::Done {
            while let Some(x) = a.poll_transmit() {
                b.handle_bytes(&x).unwrap();
            }
            if let MseStatus::NeedSkey(h) = b.status() {
                assert_eq!(h, lt_wire::mse::skey_hash(&ih));
                b.provide_skey(Some(ih)).unwrap();
            }
            while let Some(x) = b.poll_transmit() {
                a.handle_bytes(&x).unwrap();
            }
        }
        let (a, b) = (a.finish().unwrap(), b.finish().unwrap());
        assert!(a.cipher.is_some() && b.cipher.is_some());
        (a.cipher, a.received, b.cipher, b.received)
    } else {
        (None, BytesMut::new(), None, BytesMut::new())
    };
    let a = PeerConnection::outgoing(PeerConfig::new(PeerId::new([1; 20])), t0, torrent(), ca, ra)
        .unwrap();
    let b = PeerConnection::incoming(PeerConfig::new(PeerId::new([2; 20])), t0, cb, rb).unwrap();
    (a, b, t0)
}

fn shuttle(
    a: &mut PeerConnection,
    b: &mut PeerConnection,
    now: Instant,
) -> (Vec<PeerEvent>, Vec<PeerEvent>) {
    let (mut ea, mut eb) = (Vec::new(), Vec::new());
    for _ in 0..4 {
        while let Some(x) = a.poll_transmit() {
            b.handle_bytes(now, &x).unwrap();
        }
        while let Some(x) = b.poll_transmit() {
            a.handle_bytes(now, &x).unwrap();
        }
        while let Some(e) = a.poll_event() {
            ea.push(e);
        }
        while let Some(e) = b.poll_event() {
            if matches!(e, PeerEvent::IncomingHandshake { .. }) {
                b.accept(now, torrent()).unwrap();
            }
            eb.push(e);
        }
    }
    (ea, eb)
}

#[test]
fn two_peers_exchange_blocks_and_metadata() {
    for rc4 in [false, true] {
        let (mut a, mut b, t0) = pair(rc4);
        shuttle(&mut a, &mut b, t0);
        assert!(a.is_connected() && b.is_connected(), "rc4 {rc4}");
        b.send_bitfield(t0, &Bitfield::full(10));
        b.unchoke(t0);
        a.set_interested(t0, true);
        let (ea, eb) = shuttle(&mut a, &mut b, t0);
        assert!(
            ea.contains(&PeerEvent::Bitfield(Bitfield::full(10))),
            "{ea:?}"
        );
        assert!(ea.contains(&PeerEvent::Unchoked));
        assert!(eb.contains(&PeerEvent::Interested));
        assert!(a.peer_pieces().unwrap().all());

        let req = BlockRequest::new(PieceIndex(9), 0, 1000);
        a.request(t0, req).unwrap();
        a.send_extension(
            t0,
            &ExtensionMessage::Metadata(MetadataMessage::Request { piece: 0 }),
        )
        .unwrap();
        let (_, eb) = shuttle(&mut a, &mut b, t0);
        assert!(eb.contains(&PeerEvent::Request(req)));
        assert!(
            eb.contains(&PeerEvent::Extension(ExtensionMessage::Metadata(
                MetadataMessage::Request { piece: 0 }
            )))
        );
        let data = Bytes::from(vec![3u8; 1000]);
        assert!(b.send_block(t0, req.piece, req.begin, data.clone()));
        b.send_extension(
            t0,
            // The whole metadata of the size `b` announced (`torrent()`'s 1234 bytes).
            &ExtensionMessage::Metadata(MetadataMessage::Data {
                piece: 0,
                total_size: 1234,
                data: Bytes::from(vec![b'h'; 1234]),
            }),
        )
        .unwrap();
        let (ea, _) = shuttle(&mut a, &mut b, t0);
        assert!(ea.contains(&PeerEvent::Block { request: req, data }));
        assert!(ea.iter().any(|e| matches!(
            e,
            PeerEvent::Extension(ExtensionMessage::Metadata(MetadataMessage::Data { .. }))
        )));
        assert_eq!(a.stats().received.payload_bytes, 1000);
        assert_eq!(b.stats().sent.messages[7], 1);
    }
}

#[test]
fn unaccepted_connections_buffer_a_bounded_amount() {
    let t0 = Instant::now();
    let mut c = PeerConnection::incoming(
        PeerConfig::new(PeerId::new([1; 20])),
        t0,
        None,
        BytesMut::new(),
    )
    .unwrap();
    let theirs = Handshake {
        reserved: fast(),
        info_hash: Sha1Hash::new(IH),
        peer_id: PeerId::new([2; 20]),
    };
    c.handle_bytes(t0, &theirs.to_bytes()).unwrap();
    let chunk = vec![0u8; 64 << 10];
    let mut result = Ok(());
    for _ in 0..40 {
        result = c.handle_bytes(t0, &chunk);
        if result.is_err() {
            break;
        }
    }
    assert!(
        matches!(result, Err(Error::ReceiveBufferFull { .. })),
        "{result:?}"
    );

    let mut mse = MseHandshake::respond(&MseConfig::default(), [3; 32]);
    let mut result = Ok(());
    for _ in 0..40 {
        result = mse.handle_bytes(&chunk);
        if result.is_err() {
            break;
        }
    }
    // Junk fails the sync long before the buffer limit.
    assert!(result.is_err());
}

/// `handle_buf` (owned buffers, zero-copy when nothing is buffered) sees the same events as
/// `handle_bytes`, however the stream is cut, in plaintext and RC4.
#[test]
fn handle_buf_matches_handle_bytes() {
    for rc4 in [false, true] {
        let mut runs = Vec::new();
        for owned in [false, true] {
            let (mut a, mut b, t0) = pair(rc4);
            shuttle(&mut a, &mut b, t0);
            a.set_interested(t0, true);
            shuttle(&mut a, &mut b, t0);
            b.send_bitfield(t0, &Bitfield::full(10));
            b.unchoke(t0);
            shuttle(&mut a, &mut b, t0);
            let req = BlockRequest::new(PieceIndex(2), 0, 1000);
            a.request(t0, req).unwrap();
            shuttle(&mut a, &mut b, t0);
            assert!(b.send_block(t0, PieceIndex(2), 0, Bytes::from(vec![7u8; 1000])));
            b.have(t0, PieceIndex(3));
            let mut stream = Vec::new();
            while let Some(x) = b.poll_transmit() {
                stream.extend_from_slice(&x);
            }
            let mut rest = &stream[..];
            for cut in [1usize, 5, 13, 2, 700].into_iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let (now, later) = rest.split_at(cut.min(rest.len()));
                if owned {
                    a.handle_buf(t0, BytesMut::from(now)).unwrap();
                } else {
                    a.handle_bytes(t0, now).unwrap();
                }
                rest = later;
            }
            let mut events = Vec::new();
            while let Some(e) = a.poll_event() {
                events.push(e);
            }
            assert!(
                events.iter().any(
                    |e| matches!(e, PeerEvent::Block { data, .. } if data[..] == [7u8; 1000][..])
                ),
                "rc4 {rc4} owned {owned}: {events:?}"
            );
            runs.push(events);
        }
        assert_eq!(runs[0], runs[1], "rc4 {rc4}");
    }
}
