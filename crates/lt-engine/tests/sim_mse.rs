//! Swarms with MSE/PE on some links (`lt_engine::sim`): the two nodes of an MSE link run
//! lt-wire's handshake over it, as lt-session does over a socket, and the engines get the
//! RC4 streams in `Handshake`.

#![allow(clippy::unwrap_used)]
use std::time::{Duration, Instant};

use lt_engine::sim::{Link, Sim, SimBuilder};
use lt_wire::mse::EncPolicy;

/// The node at the other end of a connection (incoming ones come from an ephemeral port).
fn node_of_ip(sim: &Sim, addr: std::net::SocketAddr) -> usize {
    sim.nodes()
        .iter()
        .position(|n| n.addr().ip() == addr.ip())
        .unwrap()
}

/// Every connection now, as (node, peer node, encrypted).
fn connections(sim: &Sim) -> Vec<(usize, usize, bool)> {
    (0..sim.nodes().len())
        .flat_map(|i| {
            sim.peer_info(i)
                .into_iter()
                .map(move |p| (i, p.addr, p.encrypted))
        })
        .map(|(i, addr, encrypted)| (i, node_of_ip(sim, addr), encrypted))
        .collect()
}

#[test]
fn half_the_links_encrypted_with_rc4_finish_and_verify() {
    let mse = |a: usize, b: usize| (a + b) % 2 == 1;
    let mut sim = SimBuilder::new(51)
        .leechers(5)
        .payload(512 << 10, 16 << 10)
        .links(move |a, b| Link {
            mse: mse(a, b),
            ..Link::default()
        })
        // Both ends prefer RC4, so the stream after the handshake is encrypted too.
        .settings(|_, _, s| s.prefer_rc4 = true)
        .build(Instant::now())
        .unwrap();

    // While the download runs, each connection says whether it is encrypted, and only the
    // MSE links' are.
    assert!(!sim.run(Duration::from_millis(400)));
    let conns = connections(&sim);
    let encrypted = conns.iter().filter(|c| c.2).count();
    assert!(encrypted >= 6 && conns.len() - encrypted >= 6, "{conns:?}");
    for &(i, j, encrypted) in &conns {
        assert_eq!(encrypted, mse(i, j), "node {i} to node {j}: {conns:?}");
    }

    assert!(sim.run(Duration::from_secs(60)), "{:?}", sim.finish_times());
    sim.verify().unwrap();
    let n = sim.nodes().len();
    let (mut over_mse, mut total) = (0, 0);
    for a in 0..n {
        for b in a + 1..n {
            let st = sim.link_stats(a, b);
            if mse(a, b) {
                // Every connection ran MSE on both ends and chose RC4; no BitTorrent
                // handshake crossed the link in the clear.
                assert!(
                    st.connects > 0 && st.mse_handshakes == 2 * st.connects,
                    "{a}-{b}: {st:?}"
                );
                assert_eq!(st.rc4, st.mse_handshakes, "{a}-{b}: {st:?}");
                assert_eq!(st.plaintext_handshakes, 0, "{a}-{b}: {st:?}");
            } else {
                assert_eq!(st.mse_handshakes, 0, "{a}-{b}: {st:?}");
                assert!(st.plaintext_handshakes > 0, "{a}-{b}: {st:?}");
            }
            assert_eq!(st.mse_failed, 0, "{a}-{b}: {st:?}");
            total += st.bytes;
            if mse(a, b) {
                over_mse += st.bytes;
            }
        }
    }
    // The encrypted links carried their share of the payload (a broken cipher would
    // leave it all to the plaintext links).
    eprintln!("{over_mse} of {total} bytes over MSE links");
    assert!(
        over_mse * 3 > total,
        "{over_mse} of {total} bytes over MSE links"
    );
}

#[test]
fn forced_and_disabled_encryption_never_connect() {
    // Every link carries MSE. Node 1 forces encryption both ways, node 2 refuses it both
    // ways, the others allow either.
    let (forced, disabled) = (1, 2);
    let mut sim = SimBuilder::new(52)
        .leechers(4)
        .payload(512 << 10, 16 << 10)
        .link(Link {
            mse: true,
            ..Link::default()
        })
        .settings(move |i, _, s| {
            let policy = if i == forced {
                EncPolicy::Forced
            } else if i == disabled {
                EncPolicy::Disabled
            } else {
                return;
            };
            s.out_enc_policy = policy;
            s.in_enc_policy = policy;
        })
        .build(Instant::now())
        .unwrap();

    // Every 100 ms until everyone has finished, note every connection.
    let mut seen = Vec::new();
    for t in 1..=600 {
        let done = sim.run_until(Duration::from_millis(t * 100), Sim::all_done);
        seen.extend(connections(&sim));
        if done {
            break;
        }
    }
    assert!(sim.all_done(), "{:?}", sim.finish_times());
    sim.verify().unwrap();
    for node in [forced, disabled] {
        assert!(
            seen.iter().any(|c| c.0 == node),
            "node {node} never connected"
        );
    }
    // The forced node's connections are all encrypted, the disabled node's none; the
    // forced node never fell back to plaintext to reach the disabled one.
    for &(i, j, encrypted) in &seen {
        if i == forced || j == forced {
            assert!(encrypted, "node {i} to node {j} in plaintext");
            assert!(
                i != disabled && j != disabled,
                "nodes {i} and {j} connected"
            );
        }
        if i == disabled || j == disabled {
            assert!(!encrypted, "node {i} to node {j} encrypted");
        }
    }
    let between = sim.link_stats(forced, disabled);
    assert!(between.rejected > 0, "{between:?}");
    assert_eq!(between.mse_handshakes, 0, "{between:?}");
    // The others reach the disabled node in plaintext after their MSE attempt is refused.
    let fallback = sim.link_stats(0, disabled);
    assert!(
        fallback.rejected > 0 && fallback.plaintext_handshakes > 0,
        "{fallback:?}"
    );
}
