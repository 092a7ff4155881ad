//! SHA-1 and SHA-256 digests as values, and incremental hashers.
//!
//! [`Sha1Hash`] is the v1 piece hash, the v1 info-hash and the DHT node id
//! (BEP 3, BEP 5); [`Sha256Hash`] is the v2 info-hash and merkle node (BEP 52).
//! Both order like big-endian integers, so `a ^ b` compares as an XOR distance.

use core::fmt;
use core::ops::BitXor;

use sha1::Digest as _;

use crate::Error;
use crate::macros::byte_array_newtype;

byte_array_newtype!(
    /// A 20-byte SHA-1 digest: a v1 info-hash, a v1 piece hash or a DHT node id.
    ///
    /// `Display` and `FromStr` use lowercase hex; `Debug` prints `Sha1Hash(<hex>)`.
    ///
    /// ```
    /// use lt_core::Sha1Hash;
    ///
    /// let h = Sha1Hash::digest(b"abc");
    /// assert_eq!(h.to_string(), "a9993e364706816aba3e25717850c26c9cd0d89d");
    /// assert_eq!(h.to_base32(), "VGMT4NSHA2AWVOR6EVYXQUGCNSONBWE5");
    /// assert_eq!("A9993E364706816ABA3E25717850C26C9CD0D89D".parse::<Sha1Hash>(), Ok(h));
    /// ```
    Sha1Hash,
    20,
    40
);

byte_array_newtype!(
    /// A 32-byte SHA-256 digest: a v2 info-hash or a v2 merkle tree node (BEP 52).
    ///
    /// `Display` and `FromStr` use lowercase hex; `Debug` prints `Sha256Hash(<hex>)`.
    ///
    /// ```
    /// use lt_core::Sha256Hash;
    ///
    /// let h = Sha256Hash::digest(b"abc");
    /// assert!(h.to_hex().starts_with("ba7816bf"));
    /// // BEP 52: the wire, trackers and the DHT see the first 20 bytes.
    /// assert_eq!(h.truncated().as_bytes()[..], h.as_bytes()[..20]);
    /// ```
    Sha256Hash,
    32,
    64
);

/// What the two digest types share beyond the byte-array basics.
macro_rules! digest_extras {
    ($name:ident) => {
        impl $name {
            /// The all-zero value (libtorrent's "no hash").
            pub const ZERO: Self = Self([0; Self::LEN]);

            /// The uppercase RFC 4648 base32 encoding, without padding.
            #[must_use]
            pub fn to_base32(&self) -> String {
                crate::base32::encode(&self.0)
            }

            /// Parses unpadded RFC 4648 base32, in either case.
            ///
            /// # Errors
            ///
            /// [`Error::Base32Length`] for a wrong length, [`Error::Base32Digit`] for a
            /// character outside the alphabet and [`Error::Base32TrailingBits`] for a
            /// non-canonical last character.
            pub fn from_base32(s: &str) -> Result<Self, Error> {
                let mut bytes = [0u8; Self::LEN];
                crate::base32::decode_into(s, &mut bytes)?;
                Ok(Self(bytes))
            }

            /// The number of leading zero bits, counting from the most significant
            /// bit of the first byte; `8 * LEN` for the zero value.
            ///
            /// For a DHT XOR distance this is the shared prefix length.
            #[must_use]
            pub fn leading_zeros(&self) -> u32 {
                let mut n = 0;
                for &b in &self.0 {
                    if b != 0 {
                        return n + b.leading_zeros();
                    }
                    n += 8;
                }
                n
            }
        }

        /// Prints `Name(<lowercase hex>)`.
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "("))?;
                crate::hex::fmt(&self.0, f)?;
                f.write_str(")")
            }
        }

        /// Bytewise XOR: the DHT distance metric (BEP 5).
        impl BitXor for $name {
            type Output = Self;

            fn bitxor(self, rhs: Self) -> Self {
                let mut out = self.0;
                for (o, r) in out.iter_mut().zip(rhs.0) {
                    *o ^= r;
                }
                Self(out)
            }
        }
    };
}

digest_extras!(Sha1Hash);
digest_extras!(Sha256Hash);

impl Sha1Hash {
    /// Hashes `data` in one call.
    ///
    /// The backend is RustCrypto's `sha1`, which uses the SHA-NI instructions when
    /// the CPU has them (detected at run time).
    #[must_use]
    pub fn digest(data: &[u8]) -> Self {
        Self(sha1::Sha1::digest(data).into())
    }
}

impl Sha256Hash {
    /// Hashes `data` in one call (RustCrypto `sha2`, SHA-NI when available).
    #[must_use]
    pub fn digest(data: &[u8]) -> Self {
        Self(sha2::Sha256::digest(data).into())
    }

    /// The first 20 bytes: how BEP 52 puts a v2 info-hash in the handshake, on
    /// trackers and in the DHT.
    #[must_use]
    pub fn truncated(&self) -> Sha1Hash {
        let mut out = [0u8; Sha1Hash::LEN];
        out.copy_from_slice(&self.0[..Sha1Hash::LEN]);
        Sha1Hash(out)
    }
}

/// An incremental SHA-1 hasher, so a piece can be hashed block by block as the
/// blocks arrive in order.
///
/// ```
/// use lt_core::{Sha1Hash, Sha1Hasher};
///
/// let mut h = Sha1Hasher::new();
/// h.update(b"ab");
/// h.update(b"c");
/// assert_eq!(h.finalize(), Sha1Hash::digest(b"abc"));
/// ```
#[derive(Clone, Default)]
pub struct Sha1Hasher(sha1::Sha1);

impl Sha1Hasher {
    /// A hasher that has seen no data.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds more data.
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// The digest of everything fed so far.
    #[must_use]
    pub fn finalize(self) -> Sha1Hash {
        Sha1Hash(self.0.finalize().into())
    }
}

impl fmt::Debug for Sha1Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sha1Hasher").finish_non_exhaustive()
    }
}

/// An incremental SHA-256 hasher (v2 merkle leaves are 16 KiB blocks).
///
/// ```
/// use lt_core::{Sha256Hash, Sha256Hasher};
///
/// let mut h = Sha256Hasher::new();
/// h.update(b"ab");
/// h.update(b"c");
/// assert_eq!(h.finalize(), Sha256Hash::digest(b"abc"));
/// ```
#[derive(Clone, Default)]
pub struct Sha256Hasher(sha2::Sha256);

impl Sha256Hasher {
    /// A hasher that has seen no data.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds more data.
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// The digest of everything fed so far.
    #[must_use]
    pub fn finalize(self) -> Sha256Hash {
        Sha256Hash(self.0.finalize().into())
    }
}

impl fmt::Debug for Sha256Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sha256Hasher").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ABC_SHA1: &str = "a9993e364706816aba3e25717850c26c9cd0d89d";
    const ABC_SHA256: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn digests_match_fips_vectors() {
        assert_eq!(Sha1Hash::digest(b"abc").to_hex(), ABC_SHA1);
        assert_eq!(
            Sha1Hash::digest(b"").to_hex(),
            "da39a3ee5e6b4b0d3255bfef95601890afd80709"
        );
        assert_eq!(Sha256Hash::digest(b"abc").to_hex(), ABC_SHA256);
    }

    #[test]
    fn hashers_match_one_shot_digests() {
        let data: Vec<u8> = (0..100_000u32).map(|i| i.to_le_bytes()[0]).collect();
        let mut h1 = Sha1Hasher::new();
        let mut h2 = Sha256Hasher::new();
        for chunk in data.chunks(16 * 1024 + 3) {
            h1.update(chunk);
            h2.update(chunk);
        }
        assert_eq!(h1.finalize(), Sha1Hash::digest(&data));
        assert_eq!(h2.finalize(), Sha256Hash::digest(&data));
    }

    #[test]
    fn hex_round_trip_and_case() {
        let h = Sha1Hash::from_hex(ABC_SHA1).unwrap();
        assert_eq!(h.to_string(), ABC_SHA1);
        assert_eq!(Sha1Hash::from_hex(&ABC_SHA1.to_uppercase()), Ok(h));
        assert_eq!(format!("{h:?}"), format!("Sha1Hash({ABC_SHA1})"));
        let h = Sha256Hash::from_hex(ABC_SHA256).unwrap();
        assert_eq!(format!("{h}"), ABC_SHA256);
        assert_eq!(format!("{h:?}"), format!("Sha256Hash({ABC_SHA256})"));
        assert_eq!(
            Sha1Hash::from_hex(ABC_SHA256),
            Err(Error::HexLength {
                expected: 40,
                actual: 64
            })
        );
    }

    #[test]
    fn base32_of_a_magnet_btih() {
        let h = Sha1Hash::from_hex(ABC_SHA1).unwrap();
        let b32 = h.to_base32();
        assert_eq!(b32.len(), 32);
        assert_eq!(b32, "VGMT4NSHA2AWVOR6EVYXQUGCNSONBWE5");
        assert_eq!(Sha1Hash::from_base32(&b32.to_lowercase()), Ok(h));
        let h = Sha256Hash::digest(b"abc");
        assert_eq!(h.to_base32().len(), 52);
        assert_eq!(Sha256Hash::from_base32(&h.to_base32()), Ok(h));
    }

    #[test]
    fn from_slice_checks_length() {
        assert_eq!(Sha1Hash::from_slice(&[1; 20]), Some(Sha1Hash::new([1; 20])));
        assert_eq!(Sha1Hash::from_slice(&[1; 19]), None);
        assert_eq!(Sha1Hash::from_slice(&[1; 21]), None);
        assert_eq!(Sha256Hash::from_slice(&[1; 20]), None);
    }

    #[test]
    fn xor_and_leading_zeros() {
        assert_eq!(Sha1Hash::ZERO.leading_zeros(), 160);
        assert_eq!(Sha256Hash::ZERO.leading_zeros(), 256);
        assert!(Sha1Hash::default().is_zero());
        let mut a = [0u8; 20];
        a[2] = 0b0001_0000;
        let a = Sha1Hash::new(a);
        assert_eq!(a.leading_zeros(), 19);
        assert_eq!((a ^ a).leading_zeros(), 160);
        assert_eq!(a ^ Sha1Hash::ZERO, a);
        let b = Sha1Hash::new([0xff; 20]);
        assert_eq!((a ^ b).leading_zeros(), 0);
        assert!(a < b);
    }

    #[test]
    fn truncation_keeps_the_first_20_bytes() {
        let mut bytes = [0u8; 32];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = u8::try_from(i).unwrap();
        }
        let t = Sha256Hash::new(bytes).truncated();
        assert_eq!(t.as_bytes()[..], bytes[..20]);
    }
}
