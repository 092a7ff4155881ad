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
