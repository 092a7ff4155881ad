//! Routing table through the public API: splitting, bounds, closest-n, liveness.
#![allow(clippy::unwrap_used)]

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Instant;

use lt_core::Sha1Hash;
use lt_dht::NodeInfo;
use lt_dht::routing::{GOOD_FOR, Inserted, Liveness, RoutingTable};

/// A node with a public address of its own /24 (`IpRestriction` allows one per /24 in a
/// bucket).
fn node(first: u8, i: u32) -> NodeInfo {
    let mut b = [0u8; 20];
    b[0] = first;
    b[16..].copy_from_slice(&i.to_be_bytes());
    NodeInfo {
        id: Sha1Hash::new(b),
        addr: SocketAddr::from((Ipv4Addr::from(0x0100_0000 + (i << 8)), 1000)),
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
    let public = |i: u8| SocketAddr::from(([1, 2, i, 3], 6881));
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

fn id_with(first: u8, i: u32) -> Sha1Hash {
    let mut b = [0x11u8; 20];
    b[0] = first;
    b[16..].copy_from_slice(&i.to_be_bytes());
    Sha1Hash::new(b)
}

/// Issue 18, finding 9: one host with many node ids filled the buckets (no per-IP or
/// per-subnet limit). Now one node per IP in the table, one per /24 in a bucket.
#[test]
fn one_host_or_subnet_cannot_fill_the_table() {
    let now = Instant::now();
    let mut t = RoutingTable::new(Sha1Hash::ZERO, 8, 8);
    let host = SocketAddr::from(([203, 0, 113, 7], 6881));
    let mut added = 0;
    for i in 0..5_000u32 {
        let n = NodeInfo {
            id: id_with(u8::try_from(i % 256).unwrap(), i),
            addr: SocketAddr::new(host.ip(), u16::try_from(1000 + i % 60_000).unwrap()),
        };
        if matches!(
            t.insert(n, now, true),
            Inserted::Added | Inserted::Replacement
        ) {
            added += 1;
        }
    }
    assert_eq!(added, 1, "one IP, many ids");
    assert_eq!(t.len(), 1);
    // Neighbours in 203.0.113.0/24, all in the far bucket: one of them at most.
    let mut t = RoutingTable::new(Sha1Hash::ZERO, 8, 8);
    for i in 1..=200u8 {
        let n = NodeInfo {
            id: id_with(0x80 | i, u32::from(i)),
            addr: SocketAddr::from(([203, 0, 113, i], 6881)),
        };
        t.insert(n, now, true);
    }
    assert_eq!(t.len(), 1, "one /24 in one bucket");
    // IPv6: one per /64 in a bucket.
    let mut t = RoutingTable::new(Sha1Hash::ZERO, 8, 8);
    for i in 1..=50u16 {
        let ip = std::net::Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 0, 0, 0, i);
        let n = NodeInfo {
            id: id_with(0x80 | u8::try_from(i).unwrap(), u32::from(i)),
            addr: SocketAddr::from((ip, 6881)),
        };
        t.insert(n, now, true);
    }
    assert_eq!(t.len(), 1, "one /64 in one bucket");
    // Different /24s are all welcome, and an entry that leaves frees its IP.
    let mut t = RoutingTable::new(Sha1Hash::ZERO, 8, 8);
    let a = NodeInfo {
        id: id_with(0x80, 1),
        addr: SocketAddr::from(([198, 51, 100, 1], 6881)),
    };
    let b = NodeInfo {
        id: id_with(0x81, 2),
        addr: a.addr,
    };
    assert_eq!(t.insert(a, now, true), Inserted::Added);
    assert_eq!(t.insert(b, now, true), Inserted::Rejected);
    t.remove(&a.id);
    assert_eq!(t.insert(b, now, true), Inserted::Added);
}

/// Loopback, private and link-local addresses are exempt by default (LAN and loopback
/// swarms); `IpRestriction::All` restricts them too, `Off` restricts nothing.
#[test]
fn local_addresses_are_exempt_by_default() {
    use lt_dht::IpRestriction;
    let now = Instant::now();
    let many = |t: &mut RoutingTable, ip: [u8; 4]| {
        for i in 0..20u32 {
            let n = NodeInfo {
                id: id_with(0x80 | u8::try_from(i).unwrap(), i),
                addr: SocketAddr::from((ip, u16::try_from(6881 + i).unwrap())),
            };
            t.insert(n, now, true);
        }
        t.len()
    };
    assert_eq!(
        many(&mut RoutingTable::new(Sha1Hash::ZERO, 8, 8), [127, 0, 0, 1]),
        8
    );
    assert_eq!(
        many(
            &mut RoutingTable::new(Sha1Hash::ZERO, 8, 8),
            [192, 168, 1, 2]
        ),
        8
    );
    let mut all = RoutingTable::new(Sha1Hash::ZERO, 8, 8).with_ip_restriction(IpRestriction::All);
    assert_eq!(many(&mut all, [127, 0, 0, 1]), 1);
    let mut off = RoutingTable::new(Sha1Hash::ZERO, 8, 8).with_ip_restriction(IpRestriction::Off);
    assert_eq!(many(&mut off, [203, 0, 113, 9]), 8);
}
