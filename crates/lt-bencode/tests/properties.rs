//! Codec properties over generated values and arbitrary bytes.

use std::collections::BTreeMap;

use lt_bencode::{Limits, Value, decode, decode_with, from_bytes, to_bytes};
use quickcheck::{Arbitrary, Gen};
use quickcheck_macros::quickcheck;

/// A generated [`Value`], bounded in depth so trees stay small.
#[derive(Debug, Clone)]
struct V(Value);

fn gen_value(g: &mut Gen, depth: u32) -> Value {
    let choice = if depth == 0 { 2 } else { 4 };
    match u32::arbitrary(g) % choice {
        0 => Value::Int(i64::arbitrary(g)),
        1 => Value::Bytes(Vec::<u8>::arbitrary(g)),
        2 => Value::List(
            (0..usize::arbitrary(g) % 5)
                .map(|_| gen_value(g, depth - 1))
                .collect(),
        ),
        _ => Value::Dict(
            (0..usize::arbitrary(g) % 5)
                .map(|_| (Vec::<u8>::arbitrary(g), gen_value(g, depth - 1)))
                .collect::<BTreeMap<_, _>>(),
        ),
    }
}

impl Arbitrary for V {
    fn arbitrary(g: &mut Gen) -> Self {
        Self(gen_value(g, 4))
    }
}

#[quickcheck]
fn decode_of_encode_is_identity(v: V) -> bool {
    let bytes = v.0.to_bytes();
    let doc = decode(&bytes).unwrap();
    doc.is_canonical() && doc.root().to_value() == v.0 && doc.root().raw() == bytes
}

#[quickcheck]
fn serde_round_trip_matches_value_encoder(v: V) -> bool {
    let bytes = to_bytes(&v.0).unwrap();
    bytes == v.0.to_bytes() && from_bytes::<Value>(&bytes).unwrap() == v.0
}

#[quickcheck]
fn arbitrary_bytes_never_panic(bytes: Vec<u8>) -> bool {
    let limits = Limits {
        max_depth: 8,
        max_items: 64,
    };
    match decode_with(&bytes, &limits) {
        Ok(doc) => {
            doc.item_count() <= 64 && {
                // Re-encoding a canonical document reproduces the input exactly.
                !doc.is_canonical() || doc.root().to_value().to_bytes() == bytes
            }
        }
        Err(e) => e.offset().is_some_and(|o| o <= bytes.len()),
    }
}

#[quickcheck]
fn every_strict_prefix_fails_with_eof(v: V) -> bool {
    let bytes = v.0.to_bytes();
    (0..bytes.len()).all(|n| {
        let e = decode(&bytes[..n]).unwrap_err();
        // A prefix of an integer such as "i1" can look complete only with its "e".
        e.code() == "unexpected_eof" || e.code() == "expected_digit"
    })
}

#[quickcheck]
fn mutated_documents_never_panic(v: V, flips: Vec<(usize, u8)>) -> bool {
    let mut bytes = v.0.to_bytes();
    for (at, b) in flips {
        let len = bytes.len();
        bytes[at % len] = b;
    }
    let _ = decode(&bytes);
    let _ = from_bytes::<Value>(&bytes);
    true
}
