//! LEDBAT yields (issue 20): a uTP flow (lt-utp's tokio driver) and then a TCP flow (CUBIC)
//! from namespace A to namespace B through a router namespace R whose link to B is limited
//! to 1 MB/s by `tc tbf` with a 500 ms queue. The queue is on the router, not on the
//! sender's own interface, where TCP small queues would cap the TCP flow.
//!
//! Alone, uTP fills the link and keeps the queue near LEDBAT's 100 ms target (not the
//! 500 ms the buffer allows); once TCP fills the queue, uTP backs off to under a fifth of
//! the link. Needs root (CI runs as root) and `tc` (iproute2).
#![allow(
    clippy::unwrap_used,
    clippy::cast_precision_loss,
    reason = "a panic is a test failure"
)]

use std::process::Stdio;
use std::time::Duration;

use lt_tests::netns::NetNs;
use lt_tests::{ChildGuard, output_with_timeout, require_program};
use serde_json::Value;

/// The link's rate in bytes per second (`tc tbf rate 8mbit`).
const LINK: f64 = 1_000_000.0;
/// The run: uTP alone until `TCP_AT`, both until `END` (seconds).
const TCP_AT: f64 = 8.0;
const END: f64 = 20.0;

fn lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("t").is_some())
        .collect()
}

/// The sink's byte counts of `key` ("tcp" or "utp") at the first sample at or after `t`.
fn bytes_at(samples: &[Value], key: &str, t: f64) -> f64 {
    let s = samples
        .iter()
        .find(|v| v["t"].as_f64().unwrap() >= t)
        .unwrap_or_else(|| panic!("no sample at {t} s"));
    s[key].as_f64().unwrap()
}

#[test]
fn ledbat_fills_a_free_link_and_yields_to_tcp() {
    require_program("tc", "iproute2");
    let bin = env!("CARGO_BIN_EXE_lt-ledbat");
    let a = NetNs::create("ltlba");
    let r = NetNs::create("ltlbr");
    let b = NetNs::create("ltlbb");
    a.link_named("la", "10.79.1.1/24", &r, "ra", "10.79.1.2/24");
    let (_, to_b) = b.link_named("lb", "10.79.2.1/24", &r, "rb", "10.79.2.2/24");
    a.ip(&["route", "add", "default", "via", "10.79.1.2"]);
    b.ip(&["route", "add", "default", "via", "10.79.2.2"]);
    r.run(&["sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"]);
    r.run(&[
        "tc", "qdisc", "add", "dev", &to_b, "root", "tbf", "rate", "8mbit", "burst", "16kb",
        "latency", "500ms",
    ]);

    let dir = tempfile::tempdir().unwrap();
    let sink_out = dir.path().join("sink.jsonl");
    let sink = ChildGuard::spawn(
        b.exec()
            .args([bin, "sink", "7100"])
            .stdout(std::fs::File::create(&sink_out).unwrap())
            .stderr(Stdio::inherit()),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let source = output_with_timeout(
        a.exec().args([
            bin,
            "source",
            "10.79.2.1:7100",
            &END.to_string(),
            &TCP_AT.to_string(),
        ]),
        Duration::from_secs(60),
    )
    .unwrap();
    drop(sink);
    assert!(
        source.status.success(),
        "source: {}",
        String::from_utf8_lossy(&source.stderr)
    );
    let sent = lines(&String::from_utf8_lossy(&source.stdout));
    let got = lines(&std::fs::read_to_string(&sink_out).unwrap());

    // uTP alone, after its first seconds: the link full, the queue near 100 ms (the
    // path's own round trip is well under a millisecond, so the RTT is the queue).
    let (from, to) = (4.0, TCP_AT);
    let alone = (bytes_at(&got, "utp", to) - bytes_at(&got, "utp", from)) / (to - from);
    let rtts: Vec<f64> = sent
        .iter()
        .filter(|v| (from..to).contains(&v["t"].as_f64().unwrap()))
        .map(|v| v["rtt_ms"].as_f64().unwrap())
        .collect();
    let rtt = rtts.iter().sum::<f64>() / rtts.len().max(1) as f64;
    // Beside TCP, once LEDBAT has seen the queue grow.
    let (from, to) = (TCP_AT + 6.0, END - 0.5);
    let utp = bytes_at(&got, "utp", to) - bytes_at(&got, "utp", from);
    let tcp = bytes_at(&got, "tcp", to) - bytes_at(&got, "tcp", from);
    let share = utp / (utp + tcp);
    println!(
        "LEDBAT through a 1 MB/s link with a 500 ms queue: alone {:.0} KB/s ({:.0} % of the \
         link), mean RTT {rtt:.1} ms (target 100 ms queuing delay); beside TCP from {:.0} s \
         to {:.1} s: uTP {:.1} KB/s, TCP {:.1} KB/s, uTP's share {:.1} %",
        alone / 1e3,
        alone / LINK * 100.0,
        from,
        to,
        utp / (to - from) / 1e3,
        tcp / (to - from) / 1e3,
        share * 100.0
    );
    assert!(
        alone > 0.8 * LINK,
        "uTP alone used {alone:.0} B/s of the link"
    );
    assert!(
        (60.0..=160.0).contains(&rtt),
        "uTP alone kept the queue at {rtt:.1} ms, not near 100 ms"
    );
    assert!(tcp > 0.7 * LINK * (to - from), "TCP got {tcp:.0} bytes");
    assert!(share < 0.2, "uTP kept {:.1} % of the link", share * 100.0);
}
