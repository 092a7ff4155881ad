//! BEP 12 tiers: shuffle, fail-over, promotion, back-off.

use std::time::{Duration, Instant};

use lt_tracker::{AnnounceResponse, Error, Event, TrackerIndex, TrackerList, TrackerSource};

fn ok(interval: u64) -> AnnounceResponse {
    AnnounceResponse {
        interval: Duration::from_secs(interval),
        ..Default::default()
    }
}

#[test]
fn fail_over_and_promote() {
    let now = Instant::now();
    let tiers = vec![vec!["a1", "a2"], vec!["b1"]];
    let mut l = TrackerList::new(&tiers, [1; 32]);
    assert_eq!(l.entries().len(), 3);
    assert_eq!(l.entries()[2].url, "b1");
    let first = l.next_announce(now).unwrap();
    assert!(l.next_announce(now).is_none(), "one at a time");
    let first_url = l.entries()[first.0].url.clone();
    l.on_failure(now, first, Error::Timeout);
    let second = l.next_announce(now).unwrap();
    assert_eq!(second.0, 1);
    l.on_failure(now, second, Error::Timeout);
    let third = l.next_announce(now).unwrap();
    assert_eq!(l.entries()[third.0].url, "b1");
    l.on_failure(now, third, Error::Timeout);
    assert!(l.next_announce(now).is_none());
    // After the back-off the first tier comes back; its second tracker answers and
    // moves to the front.
    let t = l.poll_timeout().unwrap();
    let a = l.next_announce(t).unwrap();
    assert_eq!(l.entries()[a.0].url, first_url);
    l.on_failure(t, a, Error::Timeout);
    let t2 = t + Duration::from_secs(5);
    let b = l.next_announce(t2).unwrap();
    assert_eq!(b.0, 1);
    let b = l.on_success(t2, b, Event::Started, &ok(60));
    assert_eq!(b.0, 0);
    assert!(l.entries()[0].verified);
    assert_eq!(l.entries()[1].url, first_url);
    // The verified tracker is not due for 60 s, and the failed ones wait behind it.
    assert!(l.next_announce(t2 + Duration::from_secs(59)).is_none());
    assert_eq!(
        l.next_announce(t2 + Duration::from_secs(60)),
        Some(TrackerIndex(0))
    );
}

#[test]
fn shuffle_is_seeded() {
    let tiers = vec![(0..20).map(|i| format!("u{i}")).collect::<Vec<_>>()];
    let a = TrackerList::new(&tiers, [1; 32]);
    let b = TrackerList::new(&tiers, [1; 32]);
    let c = TrackerList::new(&tiers, [2; 32]);
    assert_eq!(a.entries(), b.entries());
    assert_ne!(a.entries(), c.entries());
}

#[test]
fn announce_entry_fields() {
    let now = Instant::now();
    let mut l = TrackerList::new(&[vec!["a"], vec!["c"]], [3; 32]);
    assert!(l.add_tracker("b", 0, TrackerSource::Client));
    assert!(!l.add_tracker("a", 1, TrackerSource::Client), "duplicate");
    assert!(!l.add_tracker("", 1, TrackerSource::Client));
    let urls: Vec<_> = l
        .entries()
        .iter()
        .map(|e| (e.url.as_str(), e.tier, e.source))
        .collect();
    assert_eq!(
        urls,
        [
            ("a", 0, TrackerSource::Torrent),
            ("b", 0, TrackerSource::Client),
            ("c", 1, TrackerSource::Torrent)
        ]
    );
    let i = l.next_announce(now).unwrap();
    let resp = AnnounceResponse {
        interval: Duration::from_secs(100),
        min_interval: Some(Duration::from_secs(10)),
        warning: Some("be nice".into()),
        complete: Some(4),
        ..Default::default()
    };
    let i = l.on_success(now, i, Event::Started, &resp);
    let e = l.entry(i).unwrap();
    assert!(e.start_sent && !e.complete_sent && e.verified);
    assert_eq!(e.message, "be nice");
    assert_eq!(e.scrape_complete, Some(4));
    assert_eq!(
        e.next_announce_in(now + Duration::from_secs(40)),
        Duration::from_secs(60)
    );
    assert_eq!(
        e.min_announce_in(now + Duration::from_secs(40)),
        Duration::ZERO
    );
    // A fail limit retires a tracker.
    l.set_fail_limit(TrackerIndex(2), 1);
    let t = now + Duration::from_secs(100);
    let a = l.next_announce(t).unwrap();
    l.on_failure(t, a, Error::Timeout);
    let b = l.next_announce(t).unwrap();
    assert_eq!(l.entry(b).unwrap().url, "b");
    l.on_failure(
        t,
        b,
        Error::TrackerFailure {
            message: "no".into(),
        },
    );
    assert_eq!(l.entry(b).unwrap().message, "no");
    let c = l.next_announce(t).unwrap();
    assert_eq!(l.entry(c).unwrap().url, "c");
    l.on_failure(t, c, Error::Timeout);
    assert!(!l.entry(c).unwrap().can_announce());
}

/// Issue 18, finding 1: `d8:intervali9223372036854775807e5:peers0:e` overflowed
/// `Instant + Duration` and the panic stopped the whole session.
#[test]
fn huge_intervals_from_a_reply_are_clamped() {
    let reply = lt_tracker::http::parse_announce(
        b"d8:intervali9223372036854775807e12:min intervali9223372036854775807e5:peers0:e",
        &lt_tracker::http::HttpConfig::default(),
    )
    .unwrap();
    assert_eq!(reply.interval, lt_tracker::limits::MAX_ANNOUNCE_INTERVAL);
    assert_eq!(
        reply.min_interval,
        Some(lt_tracker::limits::MAX_ANNOUNCE_INTERVAL)
    );

    // A hand-built reply with the largest Duration is clamped by the tiers themselves.
    let now = Instant::now();
    let mut l = TrackerList::new(&[vec!["a"]], [1; 32]);
    let i = l.next_announce(now).unwrap();
    let huge = AnnounceResponse {
        interval: Duration::MAX,
        min_interval: Some(Duration::MAX),
        ..Default::default()
    };
    let i = l.on_success(now, i, Event::Started, &huge);
    let day = lt_tracker::limits::MAX_ANNOUNCE_INTERVAL;
    assert_eq!(l.entries()[i.0].next_announce, Some(now + day));
    assert_eq!(l.entries()[i.0].min_announce, Some(now + day));
    assert_eq!(l.poll_timeout(), Some(now + day));
}
