//! BEP 33 DHT scrape: the 2048-bit bloom filters of seed and downloader IPs (`BFsd`,
//! `BFpe`) a node returns for `get_peers` with `scrape=1`, and the size estimate.

use std::net::IpAddr;

use lt_core::Sha1Hash;

/// Bytes of a BEP 33 bloom filter (2048 bits).
pub const BLOOM_LEN: usize = 256;

/// A BEP 33 bloom filter of IP addresses (boxed: it is large next to other messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bloom(Box<[u8; BLOOM_LEN]>);

impl Default for Bloom {
    fn default() -> Self {
        Self(Box::new([0; BLOOM_LEN]))
    }
}

impl From<[u8; BLOOM_LEN]> for Bloom {
    fn from(bits: [u8; BLOOM_LEN]) -> Self {
        Self(Box::new(bits))
    }
}

impl Bloom {
    /// The 256 bytes of the filter.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; BLOOM_LEN] {
        &self.0
    }

    /// Adds `ip`: the SHA-1 of its bytes gives two 11-bit indices (bytes 0-1 and 2-3, little
    /// endian), whose bits are set.
    pub fn insert(&mut self, ip: IpAddr) {
        let h = match ip {
            IpAddr::V4(v4) => Sha1Hash::digest(&v4.octets()),
            IpAddr::V6(v6) => Sha1Hash::digest(&v6.octets()),
        };
        let b = h.as_bytes();
        for (lo, hi) in [(b[0], b[1]), (b[2], b[3])] {
            let index = usize::from(u16::from_le_bytes([lo, hi])) % (BLOOM_LEN * 8);
            self.0[index / 8] |= 1 << (index % 8);
        }
    }

    /// Merges another filter (the union of both sets).
    pub fn union(&mut self, other: &Self) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a |= b;
        }
    }

    /// BEP 33's estimate of how many distinct IPs were inserted:
    /// `ln(c / m) / (k * ln(1 - 1/m))` with `m = 2048` bits, `k = 2` and `c` zero bits
    /// (rounded; a full filter, where the formula diverges, counts as one zero bit).
    #[must_use]
    pub fn estimate(&self) -> u32 {
        let m = 2048.0_f64;
        let zeros = self.0.iter().map(|b| b.count_zeros()).sum::<u32>();
        let c = f64::from(zeros.max(1));
        let n = ((c / m).ln() / (2.0 * (1.0 - 1.0 / m).ln())).round();
        // With 1 <= c <= 2048, 0 <= n <= about 7,800: the conversion is exact.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let n = n.clamp(0.0, 10_000.0) as u32;
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bep33_test_vector_and_estimates() {
        // BEP 33: all of 192.0.2.0/24 and the 1000 addresses 2001:db8:: ..= 2001:db8::3e7
        // give an estimated size of 1224.93.
        let mut all = Bloom::default();
        for i in 0..=255u8 {
            all.insert(IpAddr::from([192, 0, 2, i]));
        }
        for i in 0..1000u128 {
            all.insert(IpAddr::from(std::net::Ipv6Addr::from(
                0x2001_0db8_u128 << 96 | i,
            )));
        }
        assert_eq!(all.estimate(), 1225);
        assert_eq!(Bloom::default().estimate(), 0);
        let mut few = Bloom::default();
        for i in 1..=10u8 {
            few.insert(IpAddr::from([10, 0, 0, i]));
        }
        assert!((9..=11).contains(&few.estimate()));
        let mut merged = few.clone();
        merged.union(&all);
        assert!(merged.estimate() >= 1225);
        assert!(Bloom::from([0xff; BLOOM_LEN]).estimate() > 5000);
    }
}
