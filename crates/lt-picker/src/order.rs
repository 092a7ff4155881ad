//! The pick order: every pickable piece in one vector, sorted by bucket
//! (libtorrent's `m_pieces` with `m_priority_boundaries`).
//!
//! Bucket `k` is the slice `pieces[start(k)..ends[k]]`; `ends` is
//! non-decreasing and its last entry is `pieces.len()`. A piece whose bucket
//! changes from `a` to `b` moves by one swap per bucket boundary crossed, so a
//! HAVE (which moves a piece by a few buckets) costs a handful of swaps. Within
//! a bucket pieces are in random order: an insertion or move ends with a swap
//! against a random member of the target bucket, and a rebuild shuffles each
//! bucket.
//!
//! When many pieces change at once (a peer with a bitfield joins or leaves),
//! the caller marks the order dirty and rebuilds it lazily with a counting sort
//! in O(pieces + buckets), before the next pick.

use crate::rng::Rng;

/// `key` of a piece that is not in the order.
pub(crate) const NONE: u32 = u32::MAX;

#[derive(Clone, Debug, Default)]
pub(crate) struct Order {
    /// Piece indices in pick order.
    pieces: Vec<u32>,
    /// `ends[k]`: one past the last position of bucket `k`.
    ends: Vec<u32>,
    /// Per piece: its position in `pieces`, or [`NONE`].
    pos: Vec<u32>,
    /// Per piece: its bucket, or [`NONE`].
    key: Vec<u32>,
    /// `pos`, `pieces` and `ends` are stale; `key` is not maintained either.
    dirty: bool,
}

impl Order {
    pub(crate) fn new(num_pieces: usize) -> Self {
        Self {
            pieces: Vec::new(),
            ends: Vec::new(),
            pos: vec![NONE; num_pieces],
            key: vec![NONE; num_pieces],
            dirty: true,
        }
    }

    pub(crate) const fn is_dirty(&self) -> bool {
        self.dirty
    }

    pub(crate) const fn mark_dirty(&mut self) {
        self.dirty = true;
    }

    /// The pieces in pick order.
    pub(crate) fn pieces(&self) -> &[u32] {
        &self.pieces
    }

    /// The number of buckets (the highest key in use, plus one).
    pub(crate) fn num_buckets(&self) -> usize {
        self.ends.len()
    }

    /// The positions of bucket `k`.
    pub(crate) fn bucket(&self, k: usize) -> core::ops::Range<usize> {
        let start = if k == 0 { 0 } else { self.ends[k - 1] };
        start as usize..self.ends[k] as usize
    }

    /// The bucket of `piece` (`NONE` if out of the order). Meaningless while dirty.
    pub(crate) fn key(&self, piece: u32) -> u32 {
        self.key[piece as usize]
    }

    /// Moves `piece` to bucket `new` (`NONE` removes it). Does nothing while
    /// dirty: the rebuild recomputes every key.
    pub(crate) fn set(&mut self, piece: u32, new: u32, rng: &mut Rng) {
        if self.dirty {
            return;
        }
        let old = self.key[piece as usize];
        if old == new {
            return;
        }
        match (old, new) {
            (NONE, _) => self.insert(piece, new),
            (_, NONE) => self.remove(piece, old),
            _ if new > old => self.move_up(piece, old, new),
            _ => self.move_down(piece, old, new),
        }
        if new != NONE {
            self.shuffle_into(piece, new, rng);
        }
        self.trim();
    }

    /// Rebuilds from `keys` (one per piece), shuffling every bucket.
    pub(crate) fn rebuild(&mut self, keys: impl Iterator<Item = u32>, rng: &mut Rng) {
        self.key.clear();
        self.key.extend(keys);
        let mut counts: Vec<u32> = Vec::new();
        for &k in &self.key {
            if k == NONE {
                continue;
            }
            let k = k as usize;
            if counts.len() <= k {
                counts.resize(k + 1, 0);
            }
            counts[k] += 1;
        }
        // Prefix sums: `ends`, and `fill` = the next free slot of each bucket.
        self.ends.clear();
        let mut total = 0u32;
        let mut fill = Vec::with_capacity(counts.len());
        for c in counts {
            fill.push(total);
            total += c;
            self.ends.push(total);
        }
        self.pieces.clear();
        self.pieces.resize(total as usize, NONE);
        for (piece, &k) in (0u32..).zip(&self.key) {
            if k == NONE {
                self.pos[piece as usize] = NONE;
                continue;
            }
            let slot = &mut fill[k as usize];
            self.pieces[*slot as usize] = piece;
            *slot += 1;
        }
        for k in 0..self.ends.len() {
            let range = self.bucket(k);
            let bucket = &mut self.pieces[range];
            // Fisher-Yates.
            for i in (1..bucket.len()).rev() {
                let j = rng.below(u32::try_from(i + 1).unwrap_or(u32::MAX)) as usize;
                bucket.swap(i, j);
            }
        }
        for (at, &piece) in (0u32..).zip(&self.pieces) {
            self.pos[piece as usize] = at;
        }
        self.dirty = false;
        self.trim();
    }

    /// Checks the structure against the wanted keys (tests only; O(pieces)).
    pub(crate) fn check(&self, expected_key: impl Fn(u32) -> u32) {
        if self.dirty {
            return;
        }
        debug_assert_eq!(
            self.ends.last().copied().unwrap_or(0) as usize,
            self.pieces.len()
        );
        debug_assert!(self.ends.windows(2).all(|w| w[0] <= w[1]), "ends sorted");
        if self.ends.len() >= 2 {
            debug_assert_ne!(
                self.ends[self.ends.len() - 2],
                self.ends[self.ends.len() - 1],
                "trimmed"
            );
        }
        for (piece, (&k, &p)) in (0u32..).zip(self.key.iter().zip(&self.pos)) {
            debug_assert_eq!(k, expected_key(piece), "key of piece {piece}");
            if k == NONE {
                debug_assert_eq!(p, NONE, "position of piece {piece} out of the order");
                continue;
            }
            debug_assert_eq!(self.pieces[p as usize], piece, "position of piece {piece}");
            debug_assert!(
                self.bucket(k as usize).contains(&(p as usize)),
                "bucket of piece {piece}"
            );
        }
    }

    fn swap(&mut self, a: u32, b: u32) {
        if a == b {
            return;
        }
        self.pieces.swap(a as usize, b as usize);
        let (pa, pb) = (self.pieces[a as usize], self.pieces[b as usize]);
        self.pos[pa as usize] = a;
        self.pos[pb as usize] = b;
    }

    fn insert(&mut self, piece: u32, k: u32) {
        let mut at = u32::try_from(self.pieces.len()).unwrap_or(NONE);
        self.pieces.push(piece);
        self.pos[piece as usize] = at;
        self.key[piece as usize] = k;
        let k = k as usize;
        if self.ends.len() <= k {
            self.ends.resize(k + 1, at);
        }
        // Shift every bucket above k right by one: its first element goes to
        // the hole at `at`, which moves down to that bucket's old start.
        for b in (k + 1..self.ends.len()).rev() {
            let first = self.ends[b - 1];
            self.swap(first, at);
            at = first;
            self.ends[b] += 1;
        }
        self.ends[k] += 1;
    }

    fn remove(&mut self, piece: u32, k: u32) {
        let mut at = self.pos[piece as usize];
        for b in k as usize..self.ends.len() {
            let last = self.ends[b] - 1;
            self.swap(at, last);
            at = last;
            self.ends[b] -= 1;
        }
        debug_assert_eq!(at as usize + 1, self.pieces.len());
        self.pieces.pop();
        self.pos[piece as usize] = NONE;
        self.key[piece as usize] = NONE;
    }

    fn move_up(&mut self, piece: u32, from: u32, to: u32) {
        let len = u32::try_from(self.pieces.len()).unwrap_or(NONE);
        if self.ends.len() <= to as usize {
            self.ends.resize(to as usize + 1, len);
        }
        let mut at = self.pos[piece as usize];
        for b in from as usize..to as usize {
            let last = self.ends[b] - 1;
            self.swap(at, last);
            at = last;
            self.ends[b] -= 1;
        }
        self.key[piece as usize] = to;
    }

    fn move_down(&mut self, piece: u32, from: u32, to: u32) {
        let mut at = self.pos[piece as usize];
        for b in (to as usize + 1..=from as usize).rev() {
            let first = self.ends[b - 1];
            self.swap(at, first);
            at = first;
            self.ends[b - 1] += 1;
        }
        self.key[piece as usize] = to;
    }

    fn shuffle_into(&mut self, piece: u32, k: u32, rng: &mut Rng) {
        let range = self.bucket(k as usize);
        let len = u32::try_from(range.len()).unwrap_or(u32::MAX);
        if len > 1 {
            let start = u32::try_from(range.start).unwrap_or(NONE);
            let other = start + rng.below(len);
            self.swap(self.pos[piece as usize], other);
        }
    }

    /// Drops trailing empty buckets so scans and inserts stay short.
    fn trim(&mut self) {
        while let [.., a, b] = self.ends[..] {
            if a != b {
                break;
            }
            self.ends.pop();
        }
        if self.ends == [0] {
            self.ends.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(order: &Order, keys: &[u32]) {
        order.check(|p| keys[p as usize]);
    }

    #[test]
    fn moves_keep_buckets_sorted() {
        let mut rng = Rng::new(Some([3; 32]));
        let n = 40;
        let mut keys: Vec<u32> = (0..n)
            .map(|i| if i % 7 == 0 { NONE } else { i % 5 })
            .collect();
        let mut order = Order::new(n as usize);
        order.rebuild(keys.iter().copied(), &mut rng);
        check(&order, &keys);
        for step in 0..2000u32 {
            let piece = rng.below(n);
            let new = match rng.below(6) {
                0 => NONE,
                v => (keys[piece as usize].wrapping_add(v).wrapping_sub(3)) % 12,
            };
            keys[piece as usize] = new;
            order.set(piece, new, &mut rng);
            check(&order, &keys);
            if step % 500 == 0 {
                order.mark_dirty();
                order.rebuild(keys.iter().copied(), &mut rng);
                check(&order, &keys);
            }
        }
    }

    #[test]
    fn shuffles_within_a_bucket() {
        let mut rng = Rng::new(Some([9; 32]));
        let mut order = Order::new(100);
        order.rebuild(core::iter::repeat_n(0, 100), &mut rng);
        let first: Vec<u32> = order.pieces()[..10].to_vec();
        assert_ne!(first, (0..10).collect::<Vec<_>>());
    }
}
