//! Golden vectors: real bytes captured from libtorrent 2.0.8 (see `testdata/`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation,
    reason = "test helpers outside #[test] fns; a panic is a test failure"
)]

use bytes::BytesMut;
use lt_wire::{ExtendedHandshake, Limits, Message, MessageDecoder};

/// What a libtorrent 2.0.8 seed sends after its handshake to a peer that supports the fast
/// extension and the extension protocol: its extended handshake, HAVE ALL and UNCHOKE
/// (captured over loopback from `python3-libtorrent`).
#[test]
fn libtorrent_seed_greeting() {
    let bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/testdata/libtorrent-2.0.8-seed-greeting.bin"
    ))
    .unwrap();
    let mut buf = BytesMut::from(&bytes[..]);
    let mut dec = MessageDecoder::new(lt_wire::limits::DEFAULT_MAX_MESSAGE_LEN);
    let mut msgs = Vec::new();
    while let Some(m) = dec.decode(&mut buf).unwrap() {
        msgs.push(m);
    }
    assert!(buf.is_empty());
    let Message::Extended { id: 0, payload } = &msgs[0] else {
        panic!("{msgs:?}");
    };
    assert_eq!(&msgs[1..], [Message::HaveAll, Message::Unchoke]);
    let hs = ExtendedHandshake::decode(payload, &Limits::default()).unwrap();
    assert_eq!(hs.v.as_deref(), Some("libtorrent/2.0.8.0"));
    assert_eq!(hs.reqq, Some(2000));
    assert!(hs.upload_only);
    assert_eq!(hs.yourip, Some("127.0.0.1".parse().unwrap()));
    let ids: Vec<(&str, u8)> = hs.m.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert_eq!(
        ids,
        [
            ("lt_donthave", 7),
            ("share_mode", 8),
            ("upload_only", 3),
            ("ut_holepunch", 4),
            ("ut_metadata", 2),
            ("ut_pex", 1)
        ]
    );
    assert!(hs.metadata_size.is_some());
}
