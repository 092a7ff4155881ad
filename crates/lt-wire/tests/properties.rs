//! quickcheck properties of the codecs: round trips, arbitrary input never panics, and a
//! stream decodes the same however it is split.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation,
    reason = "test helpers outside #[test] fns; a panic is a test failure"
)]

use bytes::{Bytes, BytesMut};
use lt_core::{PeerId, Sha1Hash};
use lt_wire::mse::{EncLevel, MseConfig, MseHandshake, MseStatus};
use lt_wire::{
    ExtendedHandshake, Extension, ExtensionIds, ExtensionMessage, Handshake, HandshakeDecoder,
    HolepunchMessage, Limits, Message, MessageDecoder, MetadataMessage, PexMessage, Reserved,
};
use quickcheck::{Arbitrary, Gen, TestResult};
use quickcheck_macros::quickcheck;

const MAX: u32 = 1 << 20;

fn encode_all(msgs: &[Message]) -> Vec<u8> {
    let mut out = BytesMut::new();
    for m in msgs {
        m.encode(&mut out);
    }
    out.to_vec()
}

/// Decodes `chunks` fed one after another into one receive buffer.
fn decode_chunks<'a>(
    chunks: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Vec<Message>, lt_wire::Error> {
    let mut dec = MessageDecoder::new(MAX);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for c in chunks {
        buf.extend_from_slice(c);
        while let Some(m) = dec.decode(&mut buf)? {
            out.push(m);
        }
    }
    assert!(buf.is_empty() || dec.pending_body().is_some() || buf.len() < 5);
    Ok(out)
}

#[quickcheck]
fn message_round_trip(m: Message) -> bool {
    let bytes = m.to_bytes();
    let prefix = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    bytes.len() == m.encoded_len()
        && prefix + 4 == bytes.len()
        && Message::decode(&bytes, MAX) == Ok(m)
}

#[quickcheck]
fn every_strict_prefix_needs_more(m: Message) -> bool {
    let bytes = m.to_bytes();
    (0..bytes.len()).all(|k| {
        let mut dec = MessageDecoder::new(MAX);
        let mut buf = BytesMut::from(&bytes[..k]);
        matches!(dec.decode(&mut buf), Ok(None))
    })
}

#[quickcheck]
fn stream_split_at_every_boundary(msgs: Vec<Message>) -> bool {
    let stream = encode_all(&msgs);
    let whole = decode_chunks([&stream[..]]).unwrap();
    if whole != msgs {
        return false;
    }
    let bytewise = decode_chunks(stream.chunks(1)).unwrap();
    bytewise == msgs
        && (0..=stream.len()).all(|k| {
            let (a, b) = stream.split_at(k);
            decode_chunks([a, b]).as_ref() == Ok(&msgs)
        })
}

#[quickcheck]
fn arbitrary_bytes_never_panic(data: Vec<u8>, split: usize) -> bool {
    // Whole, and split anywhere: same messages, and an error only where the whole fails.
    let whole = decode_chunks([&data[..]]);
    let k = split % (data.len() + 1);
    let (a, b) = data.split_at(k);
    let parts = decode_chunks([a, b]);
    whole == parts
}

#[quickcheck]
fn length_limit_is_enforced(len: u32, id: u8) -> TestResult {
    if len <= 1000 {
        return TestResult::discard();
    }
    let mut dec = MessageDecoder::new(1000);
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(&[id]);
    TestResult::from_bool(matches!(
        dec.decode(&mut buf),
        Err(lt_wire::Error::MessageTooLong { .. })
    ))
}

#[quickcheck]
fn handshake_round_trip(reserved: u64, ih: Vec<u8>, id: Vec<u8>) -> bool {
    let mut h = [0u8; 20];
    let mut p = [0u8; 20];
    h.iter_mut()
        .zip(ih.iter().cycle())
        .for_each(|(d, s)| *d = *s);
    p.iter_mut()
        .zip(id.iter().cycle())
        .for_each(|(d, s)| *d = *s);
    let hs = Handshake {
        reserved: Reserved(reserved.to_be_bytes()),
        info_hash: Sha1Hash::new(h),
        peer_id: PeerId::new(p),
    };
    let bytes = hs.to_bytes();
    let mut dec = HandshakeDecoder::new();
    let mut buf = BytesMut::new();
    let mut frames = 0;
    for b in bytes {
        buf.extend_from_slice(&[b]);
        while dec.decode(&mut buf).unwrap().is_some() {
            frames += 1;
        }
    }
    Handshake::decode(&bytes) == Ok(hs) && frames == 2 && dec.is_done()
}

#[quickcheck]
fn handshake_decoder_never_panics(data: Vec<u8>) -> bool {
    let mut dec = HandshakeDecoder::new();
    let mut buf = BytesMut::from(&data[..]);
    while let Ok(Some(_)) = dec.decode(&mut buf) {}
    let _ = Handshake::decode(&data);
    true
}

#[derive(Clone, Debug)]
struct ArbHandshake(ExtendedHandshake);

impl Arbitrary for ArbHandshake {
    fn arbitrary(g: &mut Gen) -> Self {
        let names = [
            "ut_metadata",
            "ut_pex",
            "lt_donthave",
            "x_unknown",
            "upload_only",
        ];
        let mut hs = ExtendedHandshake::default();
        for n in names {
            if bool::arbitrary(g) {
                hs.m.insert(n.to_owned(), u8::arbitrary(g));
            }
        }
        hs.p = Option::<u16>::arbitrary(g).filter(|&p| p != 0);
        hs.v = Option::<String>::arbitrary(g);
        hs.yourip = Option::arbitrary(g);
        hs.ipv4 = Option::arbitrary(g);
        hs.ipv6 = Option::arbitrary(g);
        hs.reqq = Option::arbitrary(g);
        hs.metadata_size = Option::<u32>::arbitrary(g).map(|s| s % (30 << 20));
        hs.upload_only = bool::arbitrary(g);
        hs.share_mode = bool::arbitrary(g);
        Self(hs)
    }
}

#[quickcheck]
fn extended_handshake_round_trip(hs: ArbHandshake) -> bool {
    ExtendedHandshake::decode(&hs.0.to_bytes(), &Limits::default()) == Ok(hs.0)
}

#[derive(Clone, Debug)]
struct ArbExt(ExtensionMessage);

impl Arbitrary for ArbExt {
    fn arbitrary(g: &mut Gen) -> Self {
        Self(match u8::arbitrary(g) % 7 {
            0 => ExtensionMessage::Handshake(ArbHandshake::arbitrary(g).0),
            1 => ExtensionMessage::Metadata(MetadataMessage::arbitrary(g)),
            2 => ExtensionMessage::Pex(PexMessage::arbitrary(g)),
            3 => ExtensionMessage::DontHave(lt_core::PieceIndex::arbitrary(g)),
            4 => ExtensionMessage::UploadOnly(bool::arbitrary(g)),
            5 => ExtensionMessage::ShareMode(bool::arbitrary(g)),
            _ => ExtensionMessage::Holepunch(HolepunchMessage::arbitrary(g)),
        })
    }
}

#[quickcheck]
fn extension_message_round_trip(m: ArbExt) -> bool {
    // Both sides use the default ids, so our remote ids are the peer's local ones.
    let mut ids = ExtensionIds::default();
    let theirs = ExtendedHandshake {
        m: ExtensionIds::default().local_map(),
        ..Default::default()
    };
    ids.update_remote(&theirs);
    let Some(Message::Extended { id, payload }) = m.0.to_message(&ids) else {
        return false;
    };
    // Through the framing too.
    let wire = Message::Extended { id, payload }.to_bytes();
    let Ok(Message::Extended { id, payload }) = Message::decode(&wire, MAX) else {
        return false;
    };
    ExtensionMessage::decode(&ids, id, &payload, &Limits::default()) == Ok(Some(m.0))
}

#[quickcheck]
fn extension_decoders_never_panic(id: u8, data: Vec<u8>) -> bool {
    let ids = ExtensionIds::default();
    let payload = Bytes::from(data);
    let limits = Limits::default();
    let _ = ExtensionMessage::decode(&ids, id, &payload, &limits);
    for ext in Extension::ALL {
        let _ = ExtensionMessage::decode_extension(ext, &payload, &limits);
    }
    true
}

#[quickcheck]
fn bencoded_extension_payloads_never_panic(v: BencodeDict) -> bool {
    let payload = Bytes::from(v.0);
    let limits = Limits::default();
    for ext in Extension::ALL {
        let _ = ExtensionMessage::decode_extension(ext, &payload, &limits);
    }
    let _ = ExtendedHandshake::decode(&payload, &limits);
    true
}

/// A bencoded dictionary with the keys the extensions read and values of random types, so
/// the decoders see well-formed bencoding with wrong shapes.
#[derive(Clone, Debug)]
struct BencodeDict(Vec<u8>);

impl Arbitrary for BencodeDict {
    fn arbitrary(g: &mut Gen) -> Self {
        use lt_bencode::Value;
        let keys = [
            "m",
            "p",
            "v",
            "reqq",
            "metadata_size",
            "yourip",
            "ipv4",
            "ipv6",
            "msg_type",
            "piece",
            "total_size",
            "added",
            "added.f",
            "added6",
            "added6.f",
            "dropped",
            "dropped6",
            "upload_only",
        ];
        let mut entries = Vec::new();
        for k in keys {
            if bool::arbitrary(g) {
                let v = match u8::arbitrary(g) % 4 {
                    0 => Value::Int(i64::arbitrary(g) % 100_000),
                    1 => Value::Bytes(Vec::<u8>::arbitrary(g)),
                    2 => Value::List(vec![Value::Int(1)]),
                    _ => Value::dict([("ut_metadata", Value::Int(i64::arbitrary(g) % 300))]),
                };
                entries.push((k, v));
            }
        }
        let mut bytes = Value::dict(entries).to_bytes();
        bytes.extend(Vec::<u8>::arbitrary(g).into_iter().take(8));
        Self(bytes)
    }
}

#[quickcheck]
fn mse_handshakes_agree(seed_a: u64, seed_b: u64, level_a: u8, level_b: u8, prefer: bool) -> bool {
    let level = |l: u8| [EncLevel::Plaintext, EncLevel::Rc4, EncLevel::Both][usize::from(l % 3)];
    let a_cfg = MseConfig {
        allowed: level(level_a),
        ..MseConfig::default()
    };
    let b_cfg = MseConfig {
        allowed: level(level_b),
        prefer_rc4: prefer,
        ..MseConfig::default()
    };
    let mut sa = [0u8; 32];
    sa[..8].copy_from_slice(&seed_a.to_le_bytes());
    let mut sb = [1u8; 32];
    sb[..8].copy_from_slice(&seed_b.to_le_bytes());
    let ih = Sha1Hash::new([5; 20]);
    let mut a = MseHandshake::initiate(&a_cfg, ih, sa);
    let mut b = MseHandshake::respond(&b_cfg, sb);
    let common = a_cfg.allowed.bits() & b_cfg.allowed.bits() != 0;
    for _ in 0..6 {
        while let Some(out) = a.poll_transmit() {
            // Uneven chunks: 7 bytes at a time.
            for c in out.chunks(7) {
                if b.handle_bytes(c).is_err() {
                    return !common;
                }
            }
        }
        if let MseStatus::NeedSkey(_) = b.status()
            && b.provide_skey(Some(ih)).is_err()
        {
            return !common;
        }
        while let Some(out) = b.poll_transmit() {
            if a.handle_bytes(&out).is_err() {
                return !common;
            }
        }
        if a.status() == MseStatus::Done && b.status() == MseStatus::Done {
            let (Ok(mut oa), Ok(mut ob)) = (a.finish(), b.finish()) else {
                return false;
            };
            if oa.method != ob.method || !common {
                return false;
            }
            return match (&mut oa.cipher, &mut ob.cipher) {
                (Some(ca), Some(cb)) => {
                    let mut x = *b"payload";
                    ca.encrypt(&mut x);
                    cb.decrypt(&mut x);
                    &x == b"payload"
                }
                (None, None) => true,
                _ => false,
            };
        }
    }
    false
}

#[quickcheck]
fn mse_responder_never_panics(data: Vec<u8>, seed: u8) -> bool {
    let mut b = MseHandshake::respond(&MseConfig::default(), [seed; 32]);
    let _ = b.handle_bytes(&data);
    if let MseStatus::NeedSkey(_) = b.status() {
        let _ = b.provide_skey(Some(Sha1Hash::new([seed; 20])));
    }
    let mut a = MseHandshake::initiate(&MseConfig::default(), Sha1Hash::new([1; 20]), [seed; 32]);
    let _ = a.handle_bytes(&data);
    true
}
