//! The choker as a pure function: which interested peers to unchoke, given their scores.
//!
//! The engine scores each candidate (its download rate to us while we download; while we
//! seed, its upload rate, a round-robin turn or its anti-leech distance) and applies the
//! [`Decision`]; nothing here looks at a connection, so the rules are tested alone.
//!
//! The rules (libtorrent's): with more candidates than `slots`, the best `slots - 1` by
//! score are unchoked and one more is the optimistic unchoke, kept until it is time to
//! rotate (or it stops being a candidate), then drawn at random from the rest. With
//! `slots` or fewer candidates every candidate is unchoked and there is no optimistic one.
//! A torrent's `max_uploads` caps its regular unchokes.

use std::collections::BTreeMap;

use crate::TorrentId;

/// One interested, choked-or-unchoked peer the choker weighs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Candidate<K> {
    /// The connection.
    pub(crate) key: K,
    /// Its torrent (for the torrent's unchoke cap).
    pub(crate) torrent: TorrentId,
    /// Higher is better.
    pub(crate) score: u64,
}

/// What the choker decided.
#[derive(Clone, PartialEq, Eq, Debug)]
pub(crate) struct Decision<K> {
    /// Unchoked for their score, best first.
    pub(crate) regular: Vec<K>,
    /// The optimistic unchoke.
    pub(crate) optimistic: Option<K>,
    /// Whether a new optimistic unchoke was drawn (the rotation timer restarts).
    pub(crate) rotated: bool,
}

/// Chooses the peers to unchoke among `candidates`.
///
/// `current` is the optimistic unchoke now in place, `rotate` says its time is up,
/// `max_uploads` gives a torrent's cap and `pick(n)` draws an index below `n` (the
/// engine's seeded generator).
pub(crate) fn choose<K: Copy + Ord>(
    candidates: &[Candidate<K>],
    slots: usize,
    current: Option<K>,
    rotate: bool,
    max_uploads: impl Fn(TorrentId) -> Option<usize>,
    pick: impl FnOnce(usize) -> usize,
) -> Decision<K> {
    let slots = slots.max(1);
    let mut scored: Vec<&Candidate<K>> = candidates.iter().collect();
    scored.sort_by(|a, b| b.score.cmp(&a.score).then(a.key.cmp(&b.key)));
    let crowded = scored.len() > slots;
    let room = if crowded { slots - 1 } else { slots };
    let mut regular = Vec::new();
    let mut per_torrent: BTreeMap<TorrentId, usize> = BTreeMap::new();
    for c in &scored {
        if regular.len() >= room {
            break;
        }
        let n = per_torrent.entry(c.torrent).or_default();
        if max_uploads(c.torrent).is_some_and(|m| *n >= m) {
            continue;
        }
        *n += 1;
        regular.push(c.key);
    }
    if !crowded {
        return Decision {
            regular,
            optimistic: None,
            rotated: false,
        };
    }
    let rest: Vec<K> = scored
        .iter()
        .map(|c| c.key)
        .filter(|k| !regular.contains(k))
        .collect();
    match current {
        Some(k) if !rotate && rest.contains(&k) => Decision {
            regular,
            optimistic: Some(k),
            rotated: false,
        },
        _ => {
            let optimistic = (!rest.is_empty()).then(|| rest[pick(rest.len()) % rest.len()]);
            Decision {
                regular,
                optimistic,
                rotated: true,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use quickcheck::{TestResult, quickcheck};

    use super::*;

    fn cands(scores: &[(u8, u64)]) -> Vec<Candidate<u32>> {
        scores
            .iter()
            .enumerate()
            .map(|(i, &(t, score))| Candidate {
                key: u32::try_from(i).unwrap(),
                torrent: TorrentId(u64::from(t % 3)),
                score,
            })
            .collect()
    }

    #[test]
    fn best_by_score_plus_one_optimistic() {
        let c = cands(&[(0, 10), (0, 50), (0, 30), (0, 40), (0, 20)]);
        let d = choose(&c, 3, None, false, |_| None, |_| 1);
        assert_eq!(d.regular, [1, 3]);
        // The rest, best first, is [2, 4, 0]; pick(3) = 1 draws 4.
        assert_eq!(d.optimistic, Some(4));
        assert!(d.rotated);
        // The optimistic unchoke stays until it is time to rotate.
        let d = choose(&c, 3, Some(0), false, |_| None, |_| 0);
        assert_eq!(d.optimistic, Some(0));
        assert!(!d.rotated);
        let d = choose(&c, 3, Some(0), true, |_| None, |_| 0);
        assert_eq!(d.optimistic, Some(2));
    }

    #[test]
    fn few_candidates_are_all_unchoked() {
        let c = cands(&[(0, 1), (1, 2)]);
        let d = choose(&c, 4, Some(0), true, |_| None, |_| 0);
        assert_eq!(d.regular, [1, 0]);
        assert_eq!(d.optimistic, None);
    }

    #[test]
    fn torrent_cap_holds() {
        let c = cands(&[(0, 9), (0, 8), (0, 7), (1, 1)]);
        let d = choose(
            &c,
            4,
            None,
            false,
            |t| (t == TorrentId(0)).then_some(1),
            |_| 0,
        );
        assert_eq!(d.regular, [0, 3]);
    }

    quickcheck! {
        fn never_more_than_the_slots(scores: Vec<(u8, u64)>, slots: u8, cap: Option<u8>, current: Option<u8>, rotate: bool, draw: usize) -> TestResult {
            let c = cands(&scores);
            let slots = usize::from(slots % 12);
            let cap = cap.map(|m| usize::from(m % 5));
            let current = current.map(u32::from);
            let d = choose(&c, slots, current, rotate, |_| cap, |_| draw);
            let n = d.regular.len() + usize::from(d.optimistic.is_some());
            if n > slots.max(1) {
                return TestResult::error(format!("{n} unchoked with {slots} slots"));
            }
            // Every unchoked peer is a candidate, once.
            let mut all = d.regular.clone();
            all.extend(d.optimistic);
            let len = all.len();
            all.sort_unstable();
            all.dedup();
            if all.len() != len || all.iter().any(|k| c.iter().all(|x| x.key != *k)) {
                return TestResult::error("an unchoked peer twice or not a candidate");
            }
            // No torrent over its cap in the regular unchokes.
            for t in 0..3 {
                let n = d.regular.iter().filter(|&&k| c[k as usize].torrent == TorrentId(t)).count();
                if cap.is_some_and(|m| n > m) {
                    return TestResult::error(format!("torrent {t} has {n} regular unchokes"));
                }
            }
            // A regular slot never goes to a worse peer while a better one of a torrent under
            // its cap waits.
            let worst = d.regular.iter().map(|&k| c[k as usize].score).min();
            for x in &c {
                let under = cap.is_none_or(|m| d.regular.iter().filter(|&&k| c[k as usize].torrent == x.torrent).count() < m);
                if !d.regular.contains(&x.key) && under && worst.is_some_and(|w| x.score > w) {
                    return TestResult::error(format!("peer {} (score {}) passed over", x.key, x.score));
                }
            }
            // With no cap and few candidates, everyone is unchoked.
            if cap.is_none() && c.len() <= slots.max(1) && d.regular.len() != c.len() {
                return TestResult::error("a candidate left choked with free slots");
            }
            TestResult::passed()
        }
    }
}
