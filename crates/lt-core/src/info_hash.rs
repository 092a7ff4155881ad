//! The identity of a torrent: its v1 info-hash, its v2 info-hash, or both.

use core::fmt;
use core::str::FromStr;

use crate::{Error, Sha1Hash, Sha256Hash};

/// A torrent's info-hash: SHA-1 of the info dictionary for v1 (BEP 3), SHA-256
/// for v2 (BEP 52), or both for a hybrid torrent. libtorrent calls this
/// `info_hash_t`.
///
/// At least one of the two is always present: the constructors are the only way
/// to build one, and there is no `Default`.
///
/// `Display` prints the v1 hex, the v2 hex, or `v1hex/v2hex` for a hybrid, and
/// `FromStr` reads any of those forms back.
///
/// ```
/// use lt_core::{InfoHash, Sha1Hash, Sha256Hash};
///
/// let v1 = Sha1Hash::digest(b"info");
/// let v2 = Sha256Hash::digest(b"info");
/// let ih = InfoHash::hybrid(v1, v2);
/// assert!(ih.is_hybrid());
/// assert_eq!(ih.best(), v1);
/// assert_eq!(InfoHash::v2(v2).best(), v2.truncated());
/// assert_eq!(ih.to_string().parse::<InfoHash>(), Ok(ih));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct InfoHash {
    v1: Option<Sha1Hash>,
    v2: Option<Sha256Hash>,
}

impl InfoHash {
    /// A v1-only torrent.
    #[must_use]
    pub const fn v1(hash: Sha1Hash) -> Self {
        Self {
            v1: Some(hash),
            v2: None,
        }
    }

    /// A v2-only torrent.
    #[must_use]
    pub const fn v2(hash: Sha256Hash) -> Self {
        Self {
            v1: None,
            v2: Some(hash),
        }
    }

    /// A hybrid torrent, with both hashes.
    #[must_use]
    pub const fn hybrid(v1: Sha1Hash, v2: Sha256Hash) -> Self {
        Self {
            v1: Some(v1),
            v2: Some(v2),
        }
    }

    /// Builds from optional parts, as a parser finds them; `None` if both are absent.
    #[must_use]
    pub const fn from_parts(v1: Option<Sha1Hash>, v2: Option<Sha256Hash>) -> Option<Self> {
        match (v1, v2) {
            (None, None) => None,
            (v1, v2) => Some(Self { v1, v2 }),
        }
    }

    /// The v1 (SHA-1) info-hash, if the torrent has one.
    #[must_use]
    pub const fn v1_hash(&self) -> Option<Sha1Hash> {
        self.v1
    }

    /// The v2 (SHA-256) info-hash, if the torrent has one.
    #[must_use]
    pub const fn v2_hash(&self) -> Option<Sha256Hash> {
        self.v2
    }

    /// Whether there is a v1 info-hash.
    #[must_use]
    pub const fn has_v1(&self) -> bool {
        self.v1.is_some()
    }

    /// Whether there is a v2 info-hash.
    #[must_use]
    pub const fn has_v2(&self) -> bool {
        self.v2.is_some()
    }

    /// Whether there are both.
    #[must_use]
    pub const fn is_hybrid(&self) -> bool {
        self.has_v1() && self.has_v2()
    }

    /// The 20 bytes to use in a handshake, an announce or a DHT lookup when only
    /// one is used: the v1 hash if present, otherwise the truncated v2 hash
    /// (libtorrent's `info_hash_t::get_best()`).
    #[must_use]
    pub fn best(&self) -> Sha1Hash {
        match (self.v1, self.v2) {
            (Some(v1), _) => v1,
            (None, Some(v2)) => v2.truncated(),
            // Unreachable: every constructor sets at least one hash.
            (None, None) => Sha1Hash::ZERO,
        }
    }

    /// Every 20-byte form this torrent answers to on the wire: the v1 hash, then
    /// the truncated v2 hash. A hybrid torrent announces, looks up and accepts
    /// handshakes under both.
    pub fn wire_hashes(&self) -> impl Iterator<Item = Sha1Hash> + use<> {
        self.v1.into_iter().chain(self.v2.map(|v2| v2.truncated()))
    }

    /// Whether a 20-byte hash from a handshake, tracker or DHT names this torrent.
    #[must_use]
    pub fn matches(&self, wire: &Sha1Hash) -> bool {
        self.wire_hashes().any(|h| h == *wire)
    }
}

impl From<Sha1Hash> for InfoHash {
    fn from(hash: Sha1Hash) -> Self {
        Self::v1(hash)
    }
}

impl From<Sha256Hash> for InfoHash {
    fn from(hash: Sha256Hash) -> Self {
        Self::v2(hash)
    }
}

impl fmt::Display for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.v1, self.v2) {
            (Some(v1), Some(v2)) => write!(f, "{v1}/{v2}"),
            (Some(v1), None) => write!(f, "{v1}"),
            (None, Some(v2)) => write!(f, "{v2}"),
            (None, None) => Ok(()),
        }
    }
}

/// Parses 40 hex digits (v1), 64 hex digits (v2) or `v1hex/v2hex` (hybrid).
impl FromStr for InfoHash {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        if let Some((v1, v2)) = s.split_once('/') {
            return Ok(Self::hybrid(v1.parse()?, v2.parse()?));
        }
        if s.len() == Sha256Hash::LEN * 2 {
            Ok(Self::v2(s.parse()?))
        } else {
            Ok(Self::v1(s.parse()?))
        }
    }
}

#[cfg(feature = "quickcheck")]
impl quickcheck::Arbitrary for InfoHash {
    fn arbitrary(g: &mut quickcheck::Gen) -> Self {
        match u8::arbitrary(g) % 3 {
            0 => Self::v1(Sha1Hash::arbitrary(g)),
            1 => Self::v2(Sha256Hash::arbitrary(g)),
            _ => Self::hybrid(Sha1Hash::arbitrary(g), Sha256Hash::arbitrary(g)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v1() -> Sha1Hash {
        Sha1Hash::digest(b"v1")
    }

    fn v2() -> Sha256Hash {
        Sha256Hash::digest(b"v2")
    }

    #[test]
    fn kinds() {
        let a = InfoHash::v1(v1());
        assert!(a.has_v1() && !a.has_v2() && !a.is_hybrid());
        assert_eq!(a.v1_hash(), Some(v1()));
        assert_eq!(a.v2_hash(), None);
        let b = InfoHash::v2(v2());
        assert!(!b.has_v1() && b.has_v2() && !b.is_hybrid());
        let c = InfoHash::hybrid(v1(), v2());
        assert!(c.has_v1() && c.has_v2() && c.is_hybrid());
        assert_eq!(InfoHash::from_parts(None, None), None);
        assert_eq!(InfoHash::from_parts(Some(v1()), Some(v2())), Some(c));
        assert_eq!(InfoHash::from(v1()), a);
        assert_eq!(InfoHash::from(v2()), b);
    }

    #[test]
    fn best_prefers_v1() {
        assert_eq!(InfoHash::v1(v1()).best(), v1());
        assert_eq!(InfoHash::v2(v2()).best(), v2().truncated());
        assert_eq!(InfoHash::hybrid(v1(), v2()).best(), v1());
    }

    #[test]
    fn wire_hashes_and_matching() {
        let h = InfoHash::hybrid(v1(), v2());
        assert_eq!(
            h.wire_hashes().collect::<Vec<_>>(),
            [v1(), v2().truncated()]
        );
        assert!(h.matches(&v1()));
        assert!(h.matches(&v2().truncated()));
        assert!(!InfoHash::v1(v1()).matches(&v2().truncated()));
        assert!(!h.matches(&Sha1Hash::ZERO));
    }

    #[test]
    fn display_round_trips() {
        for h in [
            InfoHash::v1(v1()),
            InfoHash::v2(v2()),
            InfoHash::hybrid(v1(), v2()),
        ] {
            assert_eq!(h.to_string().parse::<InfoHash>(), Ok(h));
        }
        assert_eq!(InfoHash::v1(v1()).to_string(), v1().to_hex());
        assert_eq!(
            InfoHash::hybrid(v1(), v2()).to_string(),
            format!("{}/{}", v1(), v2())
        );
        assert!("".parse::<InfoHash>().is_err());
        assert!("/".parse::<InfoHash>().is_err());
    }
}
