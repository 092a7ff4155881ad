//! A fixed-length bit set in the BEP 3 wire layout.
//!
//! Bit `i` is bit `7 - i % 8` of byte `i / 8`: the high bit of the first byte is
//! piece 0. The spare bits after the last piece are always zero (BEP 3), which is
//! an invariant of [`Bitfield`], so counting never needs masking and
//! [`Bitfield::as_bytes`] is the wire encoding as is.

use core::fmt;

use crate::Error;

/// An owned, fixed-length bit set: which pieces a peer has, which we have,
/// which are wanted.
///
/// ```
/// use lt_core::Bitfield;
///
/// let mut have = Bitfield::new(10);
/// have.set(0);
/// have.set(9);
/// assert_eq!(have.as_bytes(), &[0b1000_0000, 0b0100_0000]);
/// assert_eq!(have.count_ones(), 2);
/// assert_eq!(have.iter_ones().collect::<Vec<_>>(), [0, 9]);
///
/// // A peer's BITFIELD message: wrong sizes and set spare bits are rejected.
/// assert_eq!(Bitfield::from_bytes(&[0x80, 0x40], 10), Ok(have));
/// assert!(Bitfield::from_bytes(&[0x80, 0x41], 10).is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Bitfield {
    /// `len.div_ceil(8)` bytes; spare bits of the last byte are zero.
    bytes: Vec<u8>,
    len: usize,
}

impl Bitfield {
    /// `len` bits, all clear.
    #[must_use]
    pub fn new(len: usize) -> Self {
        Self {
            bytes: vec![0; len.div_ceil(8)],
            len,
        }
    }

    /// `len` bits, all set.
    #[must_use]
    pub fn full(len: usize) -> Self {
        let mut bf = Self {
            bytes: vec![0xff; len.div_ceil(8)],
            len,
        };
        bf.clear_spare_bits();
        bf
    }

    /// Parses a BEP 3 bitfield of `len` bits.
    ///
    /// # Errors
    ///
    /// [`Error::BitfieldLength`] unless `bytes` is exactly `ceil(len / 8)` long, and
    /// [`Error::BitfieldSpareBits`] if any bit past `len` is set. BEP 3 says a
    /// peer sending either should be disconnected.
    pub fn from_bytes(bytes: &[u8], len: usize) -> Result<Self, Error> {
        let expected = len.div_ceil(8);
        if bytes.len() != expected {
            return Err(Error::BitfieldLength {
                expected,
                actual: bytes.len(),
            });
        }
        if let Some(&last) = bytes.last()
            && last & spare_mask(len) != 0
        {
            return Err(Error::BitfieldSpareBits);
        }
        Ok(Self {
            bytes: bytes.to_vec(),
            len,
        })
    }

    /// The number of bits.
    #[must_use]
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no bits at all (not whether none is set; see [`Self::none`]).
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether bit `i` is set; `false` past the end.
    #[must_use]
    pub fn get(&self, i: usize) -> bool {
        i < self.len && self.bytes.get(i / 8).is_some_and(|b| b & bit(i) != 0)
    }

    /// Sets bit `i`. Past the end this is a caller bug: it asserts in debug builds
    /// and does nothing in release builds.
    pub fn set(&mut self, i: usize) {
        debug_assert!(i < self.len, "bit {i} out of range 0..{}", self.len);
        if i < self.len
            && let Some(b) = self.bytes.get_mut(i / 8)
        {
            *b |= bit(i);
        }
    }

    /// Clears bit `i`. Past the end this is a caller bug: it asserts in debug
    /// builds and does nothing in release builds.
    pub fn clear(&mut self, i: usize) {
        debug_assert!(i < self.len, "bit {i} out of range 0..{}", self.len);
        if let Some(b) = self.bytes.get_mut(i / 8) {
            *b &= !bit(i);
        }
    }

    /// Sets or clears bit `i`, like [`Self::set`] or [`Self::clear`].
    pub fn assign(&mut self, i: usize, value: bool) {
        if value {
            self.set(i);
        } else {
            self.clear(i);
        }
    }

    /// Sets or clears every bit.
    pub fn fill(&mut self, value: bool) {
        self.bytes.fill(if value { 0xff } else { 0 });
        self.clear_spare_bits();
    }

    /// Changes the length to `len` bits; new bits take `value`.
    pub fn resize(&mut self, len: usize, value: bool) {
        if value && len > self.len {
            // Set the spare bits of the current last byte before growing.
            if let Some(last) = self.bytes.last_mut() {
                *last |= spare_mask(self.len);
            }
        }
        self.bytes
            .resize(len.div_ceil(8), if value { 0xff } else { 0 });
        self.len = len;
        self.clear_spare_bits();
    }

    /// The number of set bits.
    #[must_use]
    pub fn count_ones(&self) -> usize {
        count_ones(&self.bytes)
    }

    /// The number of clear bits.
    #[must_use]
    pub fn count_zeros(&self) -> usize {
        self.len - self.count_ones()
    }

    /// Whether every bit is set (true for an empty bitfield): a seed.
    #[must_use]
    pub fn all(&self) -> bool {
        let Some((&last, whole)) = self.bytes.split_last() else {
            return true;
        };
        whole.iter().all(|&b| b == 0xff) && last | spare_mask(self.len) == 0xff
    }

    /// Whether no bit is set (true for an empty bitfield).
    #[must_use]
    pub fn none(&self) -> bool {
        self.bytes.iter().all(|&b| b == 0)
    }

    /// Whether any bit is set.
    #[must_use]
    pub fn any(&self) -> bool {
        !self.none()
    }

    /// The indices of the set bits, in increasing order. Skips zero words, so a
    /// sparse bitfield iterates in time proportional to `len / 64 + ones`.
    #[must_use]
    pub fn iter_ones(&self) -> Ones<'_> {
        Ones(Scan::new(&self.bytes, self.len, false))
    }

    /// The indices of the clear bits, in increasing order; skips full words.
    #[must_use]
    pub fn iter_zeros(&self) -> Zeros<'_> {
        Zeros(Scan::new(&self.bytes, self.len, true))
    }

    /// The number of bits set in `self` and clear in `other`, over the bits both
    /// have: for a peer's bitfield and ours, how many of its pieces we lack.
    #[must_use]
    pub fn and_not_count(&self, other: &Self) -> usize {
        let n = self.bytes.len().min(other.bytes.len());
        let (a, b) = (&self.bytes[..n], &other.bytes[..n]);
        let mut total = 0;
        let mut wa = a.chunks_exact(8);
        let mut wb = b.chunks_exact(8);
        for (x, y) in wa.by_ref().zip(wb.by_ref()) {
            total += (load(x) & !load(y)).count_ones() as usize;
        }
        for (x, y) in wa.remainder().iter().zip(wb.remainder()) {
            total += (x & !y).count_ones() as usize;
        }
        // Within the shorter length, bits past `other.len` are spare (zero) in
        // `other` but may be set in `self`; drop them.
        if self.len > other.len
            && let Some(&last) = a.last()
        {
            total -= (last & spare_mask(other.len)).count_ones() as usize;
        }
        total
    }

    /// Whether `self` has any bit set that `other` lacks (an early-exit
    /// [`Self::and_not_count`]`> 0`): whether we are interested in a peer.
    #[must_use]
    pub fn has_any_not_in(&self, other: &Self) -> bool {
        let n = self.len.min(other.len);
        self.iter_ones()
            .take_while(|&i| i < n)
            .any(|i| !other.get(i))
    }

    /// The wire encoding (BEP 3): `ceil(len / 8)` bytes, high bit first, spare
    /// bits zero.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The wire encoding, by value.
    #[must_use]
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    fn clear_spare_bits(&mut self) {
        let mask = spare_mask(self.len);
        if let Some(last) = self.bytes.last_mut() {
            *last &= !mask;
        }
    }
}

/// Prints `Bitfield(len, "1010…")`, eliding the bits after the first 256.
impl fmt::Debug for Bitfield {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 256;
        write!(f, "Bitfield({}, \"", self.len)?;
        for i in 0..self.len.min(SHOWN) {
            f.write_str(if self.get(i) { "1" } else { "0" })?;
        }
        if self.len > SHOWN {
            f.write_str("…")?;
        }
        f.write_str("\")")
    }
}

impl FromIterator<bool> for Bitfield {
    fn from_iter<I: IntoIterator<Item = bool>>(iter: I) -> Self {
        let mut bf = Self::default();
        for (i, value) in iter.into_iter().enumerate() {
            if i % 8 == 0 {
                bf.bytes.push(0);
            }
            bf.len = i + 1;
            if value {
                bf.set(i);
            }
        }
        bf
    }
}

#[cfg(feature = "quickcheck")]
impl quickcheck::Arbitrary for Bitfield {
    fn arbitrary(g: &mut quickcheck::Gen) -> Self {
        Vec::<bool>::arbitrary(g).into_iter().collect()
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Self>> {
        let bits: Vec<bool> = (0..self.len).map(|i| self.get(i)).collect();
        Box::new(bits.shrink().map(|v| v.into_iter().collect()))
    }
}

/// Iterator over the set bits of a [`Bitfield`]; see [`Bitfield::iter_ones`].
#[derive(Clone, Debug)]
pub struct Ones<'a>(Scan<'a>);

impl Iterator for Ones<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        self.0.next()
    }
}

/// Iterator over the clear bits of a [`Bitfield`]; see [`Bitfield::iter_zeros`].
#[derive(Clone, Debug)]
pub struct Zeros<'a>(Scan<'a>);

impl Iterator for Zeros<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        self.0.next()
    }
}

/// Walks 64-bit big-endian words, yielding the index of each set bit (of the
/// inverted word when `invert`, masked to `len`).
#[derive(Clone, Debug)]
struct Scan<'a> {
    words: core::slice::Chunks<'a, u8>,
    invert: bool,
    len: usize,
    /// Bit index of the most significant bit of `current`.
    base: usize,
    /// Bit index of the first bit of the next word.
    next_base: usize,
    /// Bits still to report in the current word.
    current: u64,
}

impl<'a> Scan<'a> {
    fn new(bytes: &'a [u8], len: usize, invert: bool) -> Self {
        Self {
            words: bytes.chunks(8),
            invert,
            len,
            base: 0,
            next_base: 0,
            current: 0,
        }
    }
}

impl Iterator for Scan<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        while self.current == 0 {
            let chunk = self.words.next()?;
            self.base = self.next_base;
            self.next_base += 64;
            let mut word = load(chunk);
            if self.invert {
                word = !word;
                // Keep only the bits below `len`.
                let valid = self.len.saturating_sub(self.base);
                if valid < 64 {
                    word &= !(u64::MAX >> valid);
                }
            }
            self.current = word;
        }
        let offset = self.current.leading_zeros();
        self.current &= !(1u64 << 63 >> offset);
        Some(self.base + offset as usize)
    }
}

/// Big-endian load of up to 8 bytes, zero-padded on the right.
fn load(chunk: &[u8]) -> u64 {
    if let Ok(word) = <[u8; 8]>::try_from(chunk) {
        return u64::from_be_bytes(word);
    }
    let mut word = [0u8; 8];
    let n = chunk.len().min(8);
    word[..n].copy_from_slice(&chunk[..n]);
    u64::from_be_bytes(word)
}

fn count_ones(bytes: &[u8]) -> usize {
    let words = bytes.chunks_exact(8);
    let tail: usize = words
        .remainder()
        .iter()
        .map(|b| b.count_ones() as usize)
        .sum();
    words.map(|w| load(w).count_ones() as usize).sum::<usize>() + tail
}

/// The mask of bit `i` within its byte.
const fn bit(i: usize) -> u8 {
    0x80 >> (i % 8)
}

/// The spare (always-zero) bits of the last byte of a `len`-bit field.
const fn spare_mask(len: usize) -> u8 {
    match len % 8 {
        0 => 0,
        used => 0xff >> used,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_str(s: &str) -> Bitfield {
        s.chars().map(|c| c == '1').collect()
    }

    #[test]
    fn new_and_full() {
        let bf = Bitfield::new(0);
        assert!(bf.is_empty() && bf.all() && bf.none());
        assert_eq!(bf.as_bytes(), &[] as &[u8]);
        let bf = Bitfield::new(9);
        assert_eq!(bf.len(), 9);
        assert_eq!(bf.as_bytes(), &[0, 0]);
        assert!(bf.none() && !bf.all());
        let bf = Bitfield::full(9);
        assert_eq!(bf.as_bytes(), &[0xff, 0x80]);
        assert!(bf.all() && !bf.none());
        assert_eq!(bf.count_ones(), 9);
        assert_eq!(Bitfield::full(16).as_bytes(), &[0xff, 0xff]);
    }

    #[test]
    fn get_set_clear() {
        let mut bf = Bitfield::new(20);
        bf.set(0);
        bf.set(7);
        bf.set(19);
        assert_eq!(bf.as_bytes(), &[0x81, 0x00, 0x10]);
        assert!(bf.get(0) && bf.get(7) && bf.get(19) && !bf.get(1));
        assert!(!bf.get(20) && !bf.get(usize::MAX));
        bf.clear(7);
        bf.assign(1, true);
        assert_eq!(bf.iter_ones().collect::<Vec<_>>(), [0, 1, 19]);
        assert_eq!(bf.count_zeros(), 17);
    }

    #[test]
    #[cfg(not(debug_assertions))]
    fn out_of_range_writes_are_ignored_in_release() {
        let mut bf = Bitfield::new(3);
        bf.set(3);
        bf.set(100);
        bf.clear(100);
        assert_eq!(bf.as_bytes(), &[0]);
    }

    #[test]
    #[should_panic = "out of range"]
    #[cfg(debug_assertions)]
    fn out_of_range_writes_assert_in_debug() {
        Bitfield::new(3).set(3);
    }

    #[test]
    fn from_bytes_enforces_bep3() {
        assert_eq!(
            Bitfield::from_bytes(&[0xff], 9),
            Err(Error::BitfieldLength {
                expected: 2,
                actual: 1
            })
        );
        assert_eq!(
            Bitfield::from_bytes(&[0xff, 0x80, 0], 9),
            Err(Error::BitfieldLength {
                expected: 2,
                actual: 3
            })
        );
        assert_eq!(
            Bitfield::from_bytes(&[0xff, 0x40], 9),
            Err(Error::BitfieldSpareBits)
        );
        assert_eq!(
            Bitfield::from_bytes(&[0xff, 0x80], 9),
            Ok(Bitfield::full(9))
        );
        assert_eq!(Bitfield::from_bytes(&[], 0), Ok(Bitfield::new(0)));
        assert_eq!(Bitfield::from_bytes(&[0xff], 8), Ok(Bitfield::full(8)));
    }

    #[test]
    fn iterators_cross_word_boundaries() {
        let mut bf = Bitfield::new(200);
        let ones = [0, 1, 63, 64, 127, 128, 150, 199];
        for i in ones {
            bf.set(i);
        }
        assert_eq!(bf.iter_ones().collect::<Vec<_>>(), ones);
        let zeros: Vec<usize> = (0..200).filter(|i| !ones.contains(i)).collect();
        assert_eq!(bf.iter_zeros().collect::<Vec<_>>(), zeros);
        assert_eq!(Bitfield::full(70).iter_zeros().next(), None);
        assert_eq!(Bitfield::new(70).iter_ones().next(), None);
        assert_eq!(Bitfield::new(70).iter_zeros().count(), 70);
        assert_eq!(Bitfield::new(64).iter_zeros().last(), Some(63));
    }

    #[test]
    fn resize_keeps_spare_bits_clear() {
        let mut bf = from_str("101");
        bf.resize(10, true);
        assert_eq!(bf, from_str("1011111111"));
        bf.resize(4, false);
        assert_eq!(bf, from_str("1011"));
        assert_eq!(bf.as_bytes(), &[0b1011_0000]);
        bf.resize(12, false);
        assert_eq!(bf, from_str("101100000000"));
        bf.resize(0, true);
        assert!(bf.is_empty());
        assert_eq!(bf.as_bytes(), &[] as &[u8]);
    }

    #[test]
    fn fill() {
        let mut bf = Bitfield::new(13);
        bf.fill(true);
        assert_eq!(bf, Bitfield::full(13));
        bf.fill(false);
        assert_eq!(bf, Bitfield::new(13));
    }

    #[test]
    fn and_not() {
        let peer = from_str("1111000011");
        let ours = from_str("1010000001");
        assert_eq!(peer.and_not_count(&ours), 3);
        assert!(peer.has_any_not_in(&ours));
        assert_eq!(ours.and_not_count(&peer), 0);
        assert!(!ours.has_any_not_in(&peer));
        // Different lengths compare over the common prefix only.
        let short = from_str("101");
        assert_eq!(peer.and_not_count(&short), 1);
        assert_eq!(short.and_not_count(&peer), 0);
        let big = Bitfield::full(1000);
        assert_eq!(big.and_not_count(&Bitfield::new(1000)), 1000);
        assert_eq!(big.and_not_count(&Bitfield::new(999)), 999);
        assert!(!big.has_any_not_in(&big));
    }

    #[test]
    fn debug_shows_bits() {
        assert_eq!(format!("{:?}", from_str("1001")), "Bitfield(4, \"1001\")");
    }
}
