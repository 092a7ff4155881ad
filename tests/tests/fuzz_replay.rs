//! Replays every fuzz corpus through its target body, on stable and without libFuzzer.
//!
//! The bodies are `fuzz/src/lib.rs`, compiled here as a module; `fuzz/fuzz_targets/<t>.rs`
//! wraps the same functions for cargo-fuzz. See `fuzz/README.md`.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] fns; a panic is a test failure"
)]

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

#[allow(unreachable_pub, reason = "the bodies are `pub` for the lt-fuzz crate")]
#[path = "../../fuzz/src/lib.rs"]
mod bodies;

/// Every fuzz target, each with a `#[test]` below.
const TARGETS: &[&str] = &[
    "bdecode",
    "magnet",
    "torrent_info",
    "picker_ops",
    "wire_message",
    "extension_message",
    "mse_handshake",
    "http_tracker_response",
    "udp_tracker_packet",
    "krpc_message",
    "utp_packet",
    "upnp_xml",
    "natpmp_packet",
    "engine_inputs",
    "resume_data",
    "lsd_message",
    "utp_endpoint",
    "peer_incoming",
    "tracker_tiers",
    "ip_filter",
];

#[test]
fn engine_inputs() {
    replay("engine_inputs", bodies::engine_inputs);
}

#[test]
fn bdecode() {
    replay("bdecode", bodies::bdecode);
}

#[test]
fn torrent_info() {
    replay("torrent_info", bodies::torrent_info);
}

#[test]
fn magnet() {
    replay("magnet", bodies::magnet);
}

#[test]
fn picker_ops() {
    replay("picker_ops", bodies::picker_ops);
}

#[test]
fn wire_message() {
    replay("wire_message", bodies::wire_message);
}

#[test]
fn extension_message() {
    replay("extension_message", bodies::extension_message);
}

#[test]
fn mse_handshake() {
    replay("mse_handshake", bodies::mse_handshake);
}

#[test]
fn http_tracker_response() {
    replay("http_tracker_response", bodies::http_tracker_response);
}

#[test]
fn udp_tracker_packet() {
    replay("udp_tracker_packet", bodies::udp_tracker_packet);
}

#[test]
fn utp_packet() {
    replay("utp_packet", bodies::utp_packet);
}

#[test]
fn upnp_xml() {
    replay("upnp_xml", bodies::upnp_xml);
}

#[test]
fn natpmp_packet() {
    replay("natpmp_packet", bodies::natpmp_packet);
}

#[test]
fn resume_data() {
    replay("resume_data", bodies::resume_data);
}

#[test]
fn lsd_message() {
    replay("lsd_message", bodies::lsd_message);
}

#[test]
fn utp_endpoint() {
    replay("utp_endpoint", bodies::utp_endpoint);
}

#[test]
fn peer_incoming() {
    replay("peer_incoming", bodies::peer_incoming);
}

#[test]
fn tracker_tiers() {
    replay("tracker_tiers", bodies::tracker_tiers);
}

#[test]
fn ip_filter() {
    replay("ip_filter", bodies::ip_filter);
}

#[test]
fn every_fuzz_target_is_replayed() {
    let dir = fuzz_dir().join("fuzz_targets");
    let mut found: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "rs"))
        .map(|path| path.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    found.sort();
    let mut listed: Vec<String> = TARGETS.iter().map(|t| (*t).to_owned()).collect();
    listed.sort();
    assert_eq!(
        found, listed,
        "fuzz/fuzz_targets/*.rs and TARGETS in tests/tests/fuzz_replay.rs differ: \
         add a replay #[test] for each target"
    );
}

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

#[test]
fn krpc_message() {
    replay("krpc_message", bodies::krpc_message);
}

/// Runs every file of `fuzz/corpus/<target>/` through `body`, reporting all failing files.
fn replay(target: &str, body: fn(&[u8])) {
    let dir = fuzz_dir().join("corpus").join(target);
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| {
        panic!(
            "fuzz corpus {} is missing ({e}): every target needs seed inputs",
            dir.display()
        )
    });
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .filter(|path| !path.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "fuzz corpus {} is empty: every target needs seed inputs",
        dir.display()
    );

    let mut failures = Vec::new();
    for file in &files {
        let data = std::fs::read(file).unwrap();
        if catch_unwind(AssertUnwindSafe(|| body(&data))).is_err() {
            failures.push(file.display().to_string());
        }
    }
    assert!(
        failures.is_empty(),
        "{target}: {} of {} corpus files failed (panic messages above):\n  {}",
        failures.len(),
        files.len(),
        failures.join("\n  ")
    );
    println!("{target}: replayed {} corpus files", files.len());
}
