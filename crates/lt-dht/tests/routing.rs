//! Routing table through the public API: splitting, bounds, closest-n, liveness.
#![allow(clippy::unwrap_used)]

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Instant;

use lt_core::Sha1Hash;
use lt_dht::NodeInfo;
use lt_dht::routing::{GOOD_FOR, Inserted, Liveness, RoutingTable};

fn node(first: u8, i: u32) -> NodeInfo {
    let mut b = [0u8; 20];
    b[0] = first;
    b[16..].copy_from_slice(&i.to_be_bytes());
    NodeInfo {
        id: Sha1Hash::new(b),
        addr: SocketAddr::from((Ipv4Addr::from(i), 1000)),
    }
}

#[test]
fn buckets_split_and_stay_bounded() {
    let now = Instant::now();
    let mut t = RoutingTable::new(Sha1Hash::ZERO, 8, 8);
    for i in 0..10_000u32 {
        let first = u8::try_from(i % 256).unwrap();
        t.insert(node(first, i + 1), now, true);
    }
    assert!(t.len() <= 160 * 8);
    assert!(t.bucket_count() > 1 && t.bucket_count() <= 160);
    // Far half of the space: bucket 0 keeps exactly K.
    assert_eq!(
        t.entries()
            .filter(|e| e.node.id.as_bytes()[0] >= 0x80)
            .count(),
        8
    );
}

#[test]
fn closest_matches_brute_force() {
    let now = Instant::now();
    let mut t = RoutingTable::new(Sha1Hash::new([0x42; 20]), 8, 8);
    let nodes: Vec<NodeInfo> = (1..50u32)
        .map(|i| node(0x40 + u8::try_from(i % 4).unwrap(), i))
        .collect();
    for n in &nodes {
        t.insert(*n, now, true);
    }
    let target = Sha1Hash::new([0x41; 20]);
    let mut present: Vec<NodeInfo> = t.entries().map(|e| e.node).collect();
    present.sort_by_key(|n| n.id ^ target);
    present.truncate(8);
    assert_eq!(t.closest(&target, 8, now), present);
}

#[test]
fn liveness_and_replacement() {
    let t0 = Instant::now();
    let mut t = RoutingTable::new(Sha1Hash::ZERO, 2, 2);
    // Far nodes (first bit set) land in bucket 0 which cannot split once a
    // second bucket exists.
    t.insert(node(0x00, 1), t0, true);
    t.insert(node(0x00, 2), t0, true);
    t.insert(node(0x00, 3), t0, true); // forces a split
    let a = node(0x80, 10);
    let b = node(0x81, 11);
    let c = node(0x82, 12);
    assert_eq!(t.insert(a, t0, true), Inserted::Added);
    assert_eq!(t.insert(b, t0, false), Inserted::Added);
    assert_eq!(t.insert(c, t0, true), Inserted::Replacement);
    assert_eq!(t.get(&a.id).unwrap().liveness(t0), Liveness::Good);
    assert_eq!(t.get(&b.id).unwrap().liveness(t0), Liveness::Questionable);
    assert_eq!(
        t.get(&a.id).unwrap().liveness(t0 + GOOD_FOR),
        Liveness::Questionable
    );
    t.failed(&b.id, t0);
    assert!(t.get(&b.id).is_some());
    t.failed(&b.id, t0);
    assert!(t.get(&b.id).is_none(), "bad node replaced");
    assert!(t.get(&c.id).is_some(), "by the replacement");
    assert_eq!(
        t.insert(
            NodeInfo {
                id: a.id,
                addr: c.addr
            },
            t0,
            true
        ),
        Inserted::Rejected
    );
    assert_eq!(
        t.insert(
            NodeInfo {
                id: Sha1Hash::ZERO,
                addr: c.addr
            },
            t0,
            true
        ),
        Inserted::Rejected
    );
}

#[test]
fn refresh_targets_fall_in_their_bucket() {
    let now = Instant::now();
    let own = Sha1Hash::new([0x5a; 20]);
    let mut t = RoutingTable::new(own, 8, 8);
    for i in 0..40u32 {
        t.insert(node(0x5a, i + 1), now, true);
    }
    assert!(t.bucket_count() > 1);
    for index in 0..t.bucket_count() - 1 {
        let id = t.random_id_in_bucket(index, [u8::try_from(index).unwrap(); 20]);
        assert_eq!((id ^ own).leading_zeros(), u32::try_from(index).unwrap());
    }
    // Far buckets hold fewer than K nodes, so they are due for a refresh.
    assert!(t.stale_buckets(None).contains(&0));
}

#[test]
fn bep42_conforming_nodes_displace_unverified_questionable_ones() {
    use lt_dht::routing::bep42_id;
    let now = Instant::now();
    let mut t = RoutingTable::new(Sha1Hash::ZERO, 2, 2);
    // Force a split so the far bucket (first bit set) can no longer split.
    for i in 1..=3 {
        t.insert(node(0x00, i), now, true);
    }
    let public = |i: u8| SocketAddr::from(([1, 2, 3, i], 6881));
    let far = |b: u8, i: u8| NodeInfo {
        id: Sha1Hash::new([0x80 | b; 20]),
        addr: public(i),
    };
    // Two non-conforming public nodes: one good (answered), one questionable.
    let good = far(1, 1);
    let questionable = far(2, 2);
    assert_eq!(t.insert(good, now, true), Inserted::Added);
    assert_eq!(t.insert(questionable, now, false), Inserted::Added);
    assert!(!t.get(&good.id).unwrap().verified);
    // A conforming newcomer replaces the questionable unverified node, not the good one.
    // A conforming id for public(9) that lands in the far bucket (first bit set).
    let id = (0..=255u8)
        .map(|r| bep42_id(public(9).ip(), [r; 20]))
        .find(|id| id.as_bytes()[0] & 0x80 != 0)
        .unwrap();
    let conforming = NodeInfo {
        id,
        addr: public(9),
    };
    assert_eq!(t.insert(conforming, now, false), Inserted::Added);
    assert!(t.get(&conforming.id).unwrap().verified);
    assert!(t.get(&good.id).is_some());
    assert!(t.get(&questionable.id).is_none());
    assert_eq!(t.get(&good.id).unwrap().liveness(now), Liveness::Good);
}
