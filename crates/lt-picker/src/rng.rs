//! The picker's own small random number generator (xoshiro256**), seeded by
//! the caller: a dozen lines instead of a dependency, and deterministic for a
//! given [`crate::Config::rng_seed`]. It only shuffles pieces within a rarity
//! class; nothing depends on it being unpredictable to peers.

/// xoshiro256** by Blackman and Vigna (public domain reference algorithm).
#[derive(Clone, Debug)]
pub(crate) struct Rng {
    s: [u64; 4],
}

/// Used when the caller passes no seed.
const DEFAULT_SEED: [u8; 32] = *b"lt-picker default seed, 32 bytes";

impl Rng {
    pub(crate) fn new(seed: Option<[u8; 32]>) -> Self {
        let seed = seed.unwrap_or(DEFAULT_SEED);
        let mut s = [0u64; 4];
        for (word, chunk) in s.iter_mut().zip(seed.chunks_exact(8)) {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(chunk);
            *word = u64::from_le_bytes(bytes);
        }
        if s == [0; 4] {
            // The all-zero state is a fixed point of xoshiro; use SplitMix64 of 0.
            s = [
                0xe220_a839_7b1d_cdaf,
                0x6e78_9e6a_a1b9_65f4,
                0x06c4_5d18_8009_454f,
                0xf88b_b8a8_724c_81ec,
            ];
        }
        Self { s }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// A value in `0..n` (0 when `n` is 0), by Lemire's multiply-shift; the
    /// bias is below 2^-32 and irrelevant for shuffling.
    pub(crate) fn below(&mut self, n: u32) -> u32 {
        let wide = (self.next_u64() >> 32) * u64::from(n);
        // The high half of a 32x32-bit product is below n.
        u32::try_from(wide >> 32).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_in_range() {
        let mut a = Rng::new(Some([7; 32]));
        let mut b = Rng::new(Some([7; 32]));
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        let mut seen = [false; 10];
        for _ in 0..1000 {
            let v = a.below(10);
            assert!(v < 10);
            seen[v as usize] = true;
        }
        assert!(seen.iter().all(|&s| s));
        assert_eq!(a.below(0), 0);
        assert_ne!(Rng::new(Some([0; 32])).next_u64(), 0);
    }
}
