//! Peer ids (BEP 3, BEP 20), our client fingerprint, and naming the client
//! behind a peer id.
//!
//! A peer id is 20 bytes chosen by the peer, so [`identify_client`] treats it as
//! hostile input: it reads fixed offsets of a fixed-size array and never panics.

use core::fmt;

use crate::macros::byte_array_newtype;

byte_array_newtype!(
    /// A 20-byte peer id, sent in the handshake and to trackers.
    ///
    /// `Display` and `FromStr` use hex; `Debug` shows the bytes as an escaped
    /// string (`PeerId("-LT2090-abc\x01...")`) because most ids start with a
    /// readable client prefix.
    ///
    /// ```
    /// use lt_core::{identify_client, Fingerprint, PeerId};
    ///
    /// let fp = Fingerprint::new(*b"LT", 2, 0, 11, 0);
    /// let id = PeerId::generate(&fp, [7; 12]);
    /// assert_eq!(&id.as_bytes()[..8], b"-LT20B0-");
    /// assert_eq!(identify_client(&id).unwrap().to_string(), "libtorrent 2.0.11");
    /// ```
    PeerId,
    20,
    40
);

/// The 64 URL-unreserved characters the random part of a generated peer id is
/// drawn from, so it needs no percent-encoding in a tracker announce.
const URL_SAFE: &[u8; 64] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_";

impl PeerId {
    /// A peer id with `fingerprint`'s 8-byte prefix followed by 12 characters
    /// derived from `random`.
    ///
    /// The caller supplies the randomness (lt-core reads no OS entropy). Each
    /// random byte picks one of 64 URL-safe characters (`0-9a-zA-Z-_`), like
    /// libtorrent's `url_random`, so the id travels unescaped in tracker URLs and
    /// still carries 72 random bits.
    #[must_use]
    pub fn generate(fingerprint: &Fingerprint, random: [u8; 12]) -> Self {
        let mut bytes = [0u8; 20];
        let (prefix, rest) = bytes.split_at_mut(8);
        prefix.copy_from_slice(&fingerprint.to_prefix_bytes());
        for (out, r) in rest.iter_mut().zip(random) {
            *out = URL_SAFE[usize::from(r % 64)];
        }
        Self(bytes)
    }

    /// An id with no client fingerprint: 20 random URL-safe characters (the manual's
    /// anonymous mode).
    #[must_use]
    pub fn anonymous(random: [u8; 20]) -> Self {
        Self(random.map(|r| URL_SAFE[usize::from(r % 64)]))
    }

    /// The client that sent this id, if recognised; see [`identify_client`].
    #[must_use]
    pub fn client(&self) -> Option<ClientInfo> {
        identify_client(self)
    }
}

/// Prints `PeerId("<escaped ASCII>")`.
impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerId(\"{}\")", self.0.escape_ascii())
    }
}

/// A client's Azureus-style identity: two name characters and four version
/// numbers, written as the 8-byte peer-id prefix `-NNabcd-` (libtorrent's
/// `fingerprint` / `generate_fingerprint`).
///
/// Each version number is written as one character: `0`-`9`, then `A`-`Z` for
/// 10 to 35. Larger values are a caller bug: they assert in debug builds and
/// are written as `Z`.
///
/// ```
/// use lt_core::Fingerprint;
///
/// let fp = Fingerprint::new(*b"LT", 1, 2, 13, 0);
/// assert_eq!(fp.to_prefix(), "-LT12D0-");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Fingerprint {
    /// The two-character client code, such as `*b"LT"` (ASCII graphic characters;
    /// anything else is written as `-`).
    pub name: [u8; 2],
    /// Major version, 0 to 35.
    pub major: u8,
    /// Minor version, 0 to 35.
    pub minor: u8,
    /// Revision, 0 to 35.
    pub revision: u8,
    /// Tag (build or pre-release number), 0 to 35.
    pub tag: u8,
}

impl Fingerprint {
    /// The largest version number one prefix character can carry (`Z`).
    pub const MAX_VERSION: u8 = 35;

    /// A fingerprint from a client code and version.
    #[must_use]
    pub const fn new(name: [u8; 2], major: u8, minor: u8, revision: u8, tag: u8) -> Self {
        Self {
            name,
            major,
            minor,
            revision,
            tag,
        }
    }

    /// The 8-byte peer-id prefix, e.g. `-LT20B0-`.
    #[must_use]
    pub fn to_prefix_bytes(&self) -> [u8; 8] {
        let name = |c: u8| if c.is_ascii_graphic() { c } else { b'-' };
        debug_assert!(
            self.name.iter().all(u8::is_ascii_graphic),
            "fingerprint name must be ASCII graphic characters"
        );
        [
            b'-',
            name(self.name[0]),
            name(self.name[1]),
            version_char(self.major),
            version_char(self.minor),
            version_char(self.revision),
            version_char(self.tag),
            b'-',
        ]
    }

    /// The 8-character peer-id prefix, e.g. `"-LT20B0-"`.
    #[must_use]
    pub fn to_prefix(&self) -> String {
        self.to_prefix_bytes()
            .iter()
            .map(|&b| char::from(b))
            .collect()
    }

    /// Reads the fingerprint back from an Azureus-style peer id whose version
    /// characters are all in `0-9A-Z`; `None` for any other id.
    #[must_use]
    pub fn from_peer_id(id: &PeerId) -> Option<Self> {
        let (name, raw) = azureus_parts(&id.0)?;
        let v = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'A'..=b'Z' => Some(c - b'A' + 10),
            _ => None,
        };
        Some(Self::new(
            name,
            v(raw[0])?,
            v(raw[1])?,
            v(raw[2])?,
            v(raw[3])?,
        ))
    }
}

/// The 8-character prefix.
impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_prefix())
    }
}

/// The client a peer id names: see [`identify_client`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct ClientInfo {
    /// The client's name, e.g. `"qBittorrent"`.
    pub name: &'static str,
    /// Its version as the id encodes it, e.g. `"4.2.5"`; empty when the id
    /// carries none.
    pub version: String,
}

impl ClientInfo {
    fn new(name: &'static str, version: impl Into<String>) -> Self {
        Self {
            name,
            version: version.into(),
        }
    }
}

/// `name version`, or just `name` without a version: `libtorrent 1.2.3`.
impl fmt::Display for ClientInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.version.is_empty() {
            f.write_str(self.name)
        } else {
            write!(f, "{} {}", self.name, self.version)
        }
    }
}

/// Names the client that generated a peer id, like libtorrent's
/// `identify_client()`, or `None` when the id follows no known convention or
/// names an unknown client.
///
/// Recognised conventions:
///
/// - Azureus style `-XXabcd-` (libtorrent `-LT`, rakshasa libTorrent `-lt`,
///   Transmission, qBittorrent, µTorrent, Deluge, Vuze, BiglyBT, rqbit `-rQ`,
///   KTorrent, Free Download Manager and many more);
/// - Shadow style `S58B-----` (a letter from ABC, Osprey, BTQueue, Tribler,
///   Shad0w, BitTornado, UPnP NAT, then base-64 version digits);
/// - Mainline style `M4-3-6--`;
/// - one-offs: BitComet/BitLord `exbc`, Opera `OP`, XBT `XBT`, Tixati `TIX`,
///   aria2 `A2-1-2-0-`, BitTyrant, LimeWire and the older names libtorrent knows.
///
/// Never panics, whatever the 20 bytes are.
///
/// ```
/// use lt_core::{identify_client, PeerId};
///
/// let id = PeerId::new(*b"-qB4250-abcdefghijkl");
/// assert_eq!(identify_client(&id).unwrap().to_string(), "qBittorrent 4.2.5");
/// let id = PeerId::new(*b"M4-3-6--abcdefghijkl");
/// assert_eq!(identify_client(&id).unwrap().to_string(), "Mainline 4.3.6");
/// assert_eq!(identify_client(&PeerId::new([0x9c; 20])), None);
/// ```
#[must_use]
pub fn identify_client(id: &PeerId) -> Option<ClientInfo> {
    let b = &id.0;
    if id.is_zero() {
        return None;
    }
    one_off(b)
        .or_else(|| azureus(b))
        .or_else(|| shadow(b))
        .or_else(|| mainline(b))
}

/// libtorrent's `version_to_char`, clamped at `Z`.
fn version_char(v: u8) -> u8 {
    debug_assert!(
        v <= Fingerprint::MAX_VERSION,
        "version number {v} does not fit one character"
    );
    match v {
        0..=9 => b'0' + v,
        10..=35 => b'A' + (v - 10),
        _ => b'Z',
    }
}

/// The value of a base-64 version digit as Shad0w defined it (`0-9`, `A-Z`,
/// `a-z`, `.`, then `-` for 63, which only Shad0w style treats as a digit).
fn base64_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'A'..=b'Z' => Some(c - b'A' + 10),
        b'a'..=b'z' => Some(c - b'a' + 36),
        b'.' => Some(62),
        _ => None,
    }
}

/// The name and four raw version characters of an Azureus-style id
/// `-NNabcd-`.
fn azureus_parts(b: &[u8; 20]) -> Option<([u8; 2], [u8; 4])> {
    let name = [b[1], b[2]];
    let version = [b[3], b[4], b[5], b[6]];
    (b[0] == b'-'
        && b[7] == b'-'
        && name.iter().all(|c| c.is_ascii_graphic() && *c != b'-')
        && version.iter().all(|&c| base64_digit(c).is_some()))
    .then_some((name, version))
}

/// How a client writes the four version characters.
#[derive(Clone, Copy)]
enum Scheme {
    /// libtorrent's reading: four numbers, the fourth shown when non-zero.
    Numeric,
    /// As `Numeric`, but a letter in the fourth place marks a release type
    /// (µTorrent's `B` for beta, Deluge's `s` for stable, ...) and is dropped.
    LetterTag,
    /// Transmission before 4.0 wrote `major.minor` with a two-digit minor
    /// (`-TR2940-` is 2.94); 4.0 and later are `major.minor.patch`.
    Transmission,
}

fn azureus(b: &[u8; 20]) -> Option<ClientInfo> {
    use Scheme::{LetterTag, Numeric, Transmission};

    let (code, raw) = azureus_parts(b)?;
    let (name, scheme) = match &code {
        b"7T" => ("aTorrent", LetterTag),
        b"AB" => ("AnyEvent::BitTorrent", LetterTag),
        b"AG" | b"A~" => ("Ares", LetterTag),
        b"AR" => ("Arctic", LetterTag),
        b"AT" => ("Artemis", LetterTag),
        b"AV" => ("Avicora", LetterTag),
        b"AX" => ("BitPump", LetterTag),
        b"AZ" => ("Azureus", Numeric),
        b"BB" => ("BitBuddy", LetterTag),
        b"BC" => ("BitComet", LetterTag),
        b"BE" => ("baretorrent", LetterTag),
        b"BF" => ("Bitflu", LetterTag),
        b"BG" => ("BTG", LetterTag),
        b"BI" => ("BiglyBT", Numeric),
        b"BL" => ("BitBlinder", LetterTag),
        b"BP" => ("BitTorrent Pro", LetterTag),
        b"BR" => ("BitRocket", LetterTag),
        b"BS" => ("BTSlave", LetterTag),
        b"BT" => ("BitTorrent", LetterTag),
        b"BW" => ("BitWombat", LetterTag),
        b"BX" => ("BittorrentX", LetterTag),
        b"CD" => ("Enhanced CTorrent", LetterTag),
        b"CT" => ("CTorrent", LetterTag),
        b"DE" => ("Deluge", LetterTag),
        b"DP" => ("Propagate Data Client", LetterTag),
        b"EB" => ("EBit", LetterTag),
        b"ES" => ("electric sheep", LetterTag),
        b"FC" => ("FileCroc", LetterTag),
        b"FD" => ("Free Download Manager", LetterTag),
        b"FT" => ("FoxTorrent", LetterTag),
        b"FW" => ("FrostWire", LetterTag),
        b"FX" => ("Freebox BitTorrent", LetterTag),
        b"GS" => ("GSTorrent", LetterTag),
        b"HK" => ("Hekate", LetterTag),
        b"HL" => ("Halite", LetterTag),
        b"HN" => ("Hydranode", LetterTag),
        b"IL" => ("iLivid", LetterTag),
        b"KG" => ("KGet", LetterTag),
        b"KT" => ("KTorrent", LetterTag),
        b"LC" => ("LeechCraft", LetterTag),
        b"LH" => ("LH-ABC", LetterTag),
        b"LK" => ("Linkage", LetterTag),
        b"LP" => ("Lphant", LetterTag),
        b"LT" => ("libtorrent", Numeric),
        b"LW" => ("LimeWire", LetterTag),
        b"lt" => ("libTorrent (rakshasa)", Numeric),
        b"ML" => ("MLDonkey", LetterTag),
        b"MO" => ("MonoTorrent", LetterTag),
        b"MP" => ("MooPolice", LetterTag),
        b"MR" => ("Miro", LetterTag),
        b"MT" => ("Moonlight Torrent", LetterTag),
        b"NX" => ("Net Transport", LetterTag),
        b"OS" => ("OneSwarm", LetterTag),
        b"OT" => ("OmegaTorrent", LetterTag),
        b"PD" => ("Pando", LetterTag),
        b"PI" => ("PicoTorrent", LetterTag),
        b"QD" => ("QQDownload", LetterTag),
        b"QT" => ("Qt 4 Torrent example", LetterTag),
        b"qB" => ("qBittorrent", LetterTag),
        b"rQ" => ("rqbit", LetterTag),
        b"RL" => ("lt", Numeric),
        b"RT" => ("Retriever", LetterTag),
        b"RZ" => ("RezTorrent", LetterTag),
        b"SB" => ("Swiftbit", LetterTag),
        b"SD" => ("Xunlei", LetterTag),
        b"SK" => ("spark", LetterTag),
        b"SN" => ("ShareNet", LetterTag),
        b"SS" => ("SwarmScope", LetterTag),
        b"ST" => ("SymTorrent", LetterTag),
        b"st" => ("SharkTorrent", LetterTag),
        b"SZ" => ("Shareaza", LetterTag),
        b"S~" => ("Shareaza (beta)", LetterTag),
        b"TB" => ("Torch", LetterTag),
        b"TL" => ("Tribler", LetterTag),
        b"TN" => ("Torrent.NET", LetterTag),
        b"TR" => ("Transmission", Transmission),
        b"TS" => ("TorrentStorm", LetterTag),
        b"TT" => ("TuoTu", LetterTag),
        b"UL" => ("uLeecher!", LetterTag),
        b"UM" => ("µTorrent Mac", LetterTag),
        b"UT" => ("µTorrent", LetterTag),
        b"UW" => ("µTorrent Web", LetterTag),
        b"VG" => ("Vagaa", LetterTag),
        b"WD" => ("WebTorrent Desktop", LetterTag),
        b"WT" => ("BitLet", LetterTag),
        b"WW" => ("WebTorrent", LetterTag),
        b"WY" => ("FireTorrent", LetterTag),
        b"XF" => ("Xfplay", LetterTag),
        b"XL" => ("Xunlei", LetterTag),
        b"XS" => ("XSwifter", LetterTag),
        b"XT" => ("XanTorrent", LetterTag),
        b"XX" => ("Xtorrent", LetterTag),
        b"ZT" => ("ZipTorrent", LetterTag),
        b"pX" => ("pHoton", LetterTag),
        _ => return None,
    };
    let [a, b2, c, d] = raw.map(|ch| base64_digit(ch).unwrap_or(0));
    let version = match scheme {
        Transmission if a < 4 => format!("{a}.{b2}{c}"),
        Transmission => format!("{a}.{b2}.{c}"),
        LetterTag if !raw[3].is_ascii_digit() => format!("{a}.{b2}.{c}"),
        Numeric | LetterTag if d == 0 => format!("{a}.{b2}.{c}"),
        Numeric | LetterTag => format!("{a}.{b2}.{c}.{d}"),
    };
    Some(ClientInfo::new(name, version))
}

/// Shad0w's style: a client letter, up to four base-64 version digits padded
/// with `-` to six bytes, then (commonly) `---`. `S58B-----` is Shad0w 5.8.11.
fn shadow(b: &[u8; 20]) -> Option<ClientInfo> {
    let name = match b[0] {
        b'A' => "ABC",
        b'O' => "Osprey Permaseed",
        b'Q' => "BTQueue",
        b'R' => "Tribler",
        b'S' => "Shad0w",
        b'T' => "BitTornado",
        b'U' => "UPnP NAT Bit Torrent",
        _ => return None,
    };
    let field = &b[1..6];
    let digits = field.iter().take_while(|&&c| c != b'-').count();
    if !(1..=4).contains(&digits) || field[digits..].iter().any(|&c| c != b'-') {
        return None;
    }
    let mut version = String::new();
    for (i, &c) in field[..digits].iter().enumerate() {
        let v = base64_digit(c)?;
        if i > 0 {
            version.push('.');
        }
        version.push_str(&v.to_string());
    }
    Some(ClientInfo::new(name, version))
}

/// BitTorrent's mainline style: a letter and the dotted version with `-` for
/// `.`, padded with `-` to eight bytes: `M4-3-6--`, `M4-20-8-`.
fn mainline(b: &[u8; 20]) -> Option<ClientInfo> {
    let name = match b[0] {
        b'M' => "Mainline",
        b'Q' => "Queen Bee",
        _ => return None,
    };
    if b[7] != b'-' {
        return None;
    }
    let mut rest = &b[1..8];
    let mut parts = [0u16; 3];
    for part in &mut parts {
        let n = rest.iter().take_while(|c| c.is_ascii_digit()).count();
        if !(1..=3).contains(&n) || rest.get(n) != Some(&b'-') {
            return None;
        }
        *part = decimal(&rest[..n])?;
        rest = &rest[n + 1..];
    }
    if rest.iter().any(|&c| c != b'-') {
        return None;
    }
    let [x, y, z] = parts;
    Some(ClientInfo::new(name, format!("{x}.{y}.{z}")))
}

/// Ids that follow none of the three conventions; checked first, like
/// libtorrent's `generic_mappings`.
fn one_off(b: &[u8; 20]) -> Option<ClientInfo> {
    // BitComet (and BitLord, built on it): "exbc", two version bytes.
    if b.starts_with(b"exbc") {
        let name = if &b[6..10] == b"LORD" {
            "BitLord"
        } else {
            "BitComet"
        };
        return Some(ClientInfo::new(name, format!("{}.{:02}", b[4], b[5])));
    }
    // aria2: "A2-1-36-0-".
    if b.starts_with(b"A2-") {
        return aria2(&b[3..]).map(|v| ClientInfo::new("aria2", v));
    }
    // Tixati: "TIX0137-" is 1.37.
    if b.starts_with(b"TIX") {
        let version = match (decimal(&b[3..5]), decimal(&b[5..7])) {
            (Some(major), Some(minor)) => format!("{major}.{minor:02}"),
            _ => String::new(),
        };
        return Some(ClientInfo::new("Tixati", version));
    }
    // XBT: "XBT054d-" is 0.5.4 (the "d" marks a debug build).
    if b.starts_with(b"XBT") {
        let digits = &b[3..6];
        let version = if digits.iter().all(u8::is_ascii_digit) {
            format!(
                "{}.{}.{}",
                digits[0] - b'0',
                digits[1] - b'0',
                digits[2] - b'0'
            )
        } else {
            String::new()
        };
        return Some(ClientInfo::new("XBT", version));
    }
    // Opera: "OP" and a four-digit build number.
    if b.starts_with(b"OP") {
        let build = &b[2..6];
        let version = if build.iter().all(u8::is_ascii_digit) {
            build.iter().map(|&c| char::from(c)).collect()
        } else {
            String::new()
        };
        return Some(ClientInfo::new("Opera", version));
    }
    // Fixed strings at fixed offsets, without a version.
    const FIXED: &[(usize, &[u8], &str)] = &[
        (0, b"AZ2500BT", "BitTyrant"),
        (0, b"Deadman Walking-", "Deadman"),
        (5, b"Azureus", "Azureus 2.0.3.2"),
        (0, b"DansClient", "XanTorrent"),
        (4, b"btfans", "SimpleBT"),
        (0, b"PRC.P---", "Bittorrent Plus! II"),
        (0, b"P87.P---", "Bittorrent Plus!"),
        (0, b"S587Plus", "Bittorrent Plus!"),
        (0, b"martini", "Martini Man"),
        (0, b"Plus---", "Bittorrent Plus"),
        (0, b"turbobt", "TurboBT"),
        (0, b"a00---0", "Swarmy"),
        (0, b"a02---0", "Swarmy"),
        (0, b"T00---0", "Teeweety"),
        (0, b"BTDWV-", "Deadman Walking"),
        (2, b"BS", "BitSpirit"),
        (0, b"Pando-", "Pando"),
        (0, b"LIME", "LimeWire"),
        (0, b"btuga", "BTugaXP"),
        (0, b"oernu", "BTugaXP"),
        (0, b"Mbrst", "Burst!"),
        (0, b"PEERAPP", "PeerApp"),
        (0, b"Plus", "Plus!"),
        (0, b"-Qt-", "Qt"),
        (0, b"DNA", "BitTorrent DNA"),
        (0, b"-G3", "G3 Torrent"),
        (0, b"-FG", "FlashGet"),
        (0, b"-MG", "Media Get"),
        (0, b"btpd/", "BitTorrent Protocol Daemon"),
        (0, b"QVOD", "Qvod"),
    ];
    FIXED
        .iter()
        .find(|(offset, pattern, _)| b.get(*offset..).is_some_and(|s| s.starts_with(pattern)))
        .map(|&(_, _, name)| ClientInfo::new(name, ""))
}

/// aria2's `1-36-0-`: three decimal numbers, each followed by `-`.
fn aria2(mut rest: &[u8]) -> Option<String> {
    let mut version = String::new();
    for i in 0..3 {
        let n = rest.iter().take_while(|c| c.is_ascii_digit()).count();
        if !(1..=3).contains(&n) || rest.get(n) != Some(&b'-') {
            return None;
        }
        if i > 0 {
            version.push('.');
        }
        version.push_str(&decimal(&rest[..n])?.to_string());
        rest = rest.get(n + 1..)?;
    }
    Some(version)
}

/// A short run of ASCII decimal digits as a number; `None` if any byte is not
/// a digit or the value overflows.
fn decimal(digits: &[u8]) -> Option<u16> {
    digits.iter().try_fold(0u16, |acc, &c| {
        c.is_ascii_digit()
            .then(|| acc.checked_mul(10)?.checked_add(u16::from(c - b'0')))
            .flatten()
    })
}

#[cfg(feature = "quickcheck")]
impl quickcheck::Arbitrary for Fingerprint {
    fn arbitrary(g: &mut quickcheck::Gen) -> Self {
        let letter = |g: &mut quickcheck::Gen| b'A' + u8::arbitrary(g) % 26;
        let v = |g: &mut quickcheck::Gen| u8::arbitrary(g) % (Self::MAX_VERSION + 1);
        Self::new([letter(g), letter(g)], v(g), v(g), v(g), v(g))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(prefix: &[u8]) -> PeerId {
        let mut bytes = *b"01234567890123456789";
        bytes[..prefix.len()].copy_from_slice(prefix);
        PeerId::new(bytes)
    }

    fn name(prefix: &[u8]) -> Option<String> {
        identify_client(&id(prefix)).map(|c| c.to_string())
    }

    #[test]
    fn fingerprint_prefix() {
        assert_eq!(Fingerprint::new(*b"LT", 1, 0, 0, 0).to_prefix(), "-LT1000-");
        assert_eq!(
            Fingerprint::new(*b"LT", 2, 0, 11, 0).to_prefix(),
            "-LT20B0-"
        );
        assert_eq!(
            Fingerprint::new(*b"qB", 9, 10, 35, 1).to_prefix(),
            "-qB9AZ1-"
        );
        assert_eq!(Fingerprint::new(*b"TR", 4, 0, 6, 0).to_string(), "-TR4060-");
    }

    #[test]
    fn generate_uses_the_prefix_and_url_safe_randomness() {
        let fp = Fingerprint::new(*b"LT", 2, 0, 9, 0);
        let id = PeerId::generate(&fp, [0, 1, 63, 64, 255, 128, 10, 36, 62, 200, 7, 99]);
        assert_eq!(&id.as_bytes()[..8], b"-LT2090-");
        assert!(
            id.as_bytes()[8..]
                .iter()
                .all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_')
        );
        assert_eq!(&id.as_bytes()[8..], b"01_0_0aA-87z");
        assert_eq!(Fingerprint::from_peer_id(&id), Some(fp));
    }

    #[test]
    fn debug_escapes_and_display_is_hex() {
        let mut bytes = *b"-LT2090-abcdefghijk\x00";
        bytes[8] = 0xff;
        let id = PeerId::new(bytes);
        assert_eq!(format!("{id:?}"), r#"PeerId("-LT2090-\xffbcdefghijk\x00")"#);
        assert_eq!(id.to_string().len(), 40);
        assert_eq!(id.to_string().parse::<PeerId>(), Ok(id));
    }

    #[test]
    fn azureus_style_clients() {
        for (prefix, expected) in [
            (&b"-LT20D0-"[..], "libtorrent 2.0.13"),
            (b"-LT1234-", "libtorrent 1.2.3.4"),
            (b"-lt0D80-", "libTorrent (rakshasa) 0.13.8"),
            (b"-TR2940-", "Transmission 2.94"),
            (b"-TR3000-", "Transmission 3.00"),
            (b"-TR4060-", "Transmission 4.0.6"),
            (b"-qB4250-", "qBittorrent 4.2.5"),
            (b"-UT355S-", "µTorrent 3.5.5"),
            (b"-UM1870-", "µTorrent Mac 1.8.7"),
            (b"-DE13F0-", "Deluge 1.3.15"),
            (b"-DE203s-", "Deluge 2.0.3"),
            (b"-AZ5770-", "Azureus 5.7.7"),
            (b"-BI3500-", "BiglyBT 3.5.0"),
            (b"-rQ0001-", "rqbit 0.0.0.1"),
            (b"-KT4130-", "KTorrent 4.1.3"),
            (b"-FD5100-", "Free Download Manager 5.1.0"),
            (b"-LW0000-", "LimeWire 0.0.0"),
            (b"-BC0100-", "BitComet 0.1.0"),
        ] {
            assert_eq!(name(prefix).as_deref(), Some(expected), "{prefix:?}");
        }
    }

    #[test]
    fn shadow_and_mainline_styles() {
        assert_eq!(name(b"S58B-----").as_deref(), Some("Shad0w 5.8.11"));
        assert_eq!(name(b"T03I-----").as_deref(), Some("BitTornado 0.3.18"));
        assert_eq!(name(b"A310--").as_deref(), Some("ABC 3.1.0"));
        assert_eq!(name(b"M4-3-6--").as_deref(), Some("Mainline 4.3.6"));
        assert_eq!(name(b"M4-20-8-").as_deref(), Some("Mainline 4.20.8"));
        assert_eq!(name(b"M7-10-0-").as_deref(), Some("Mainline 7.10.0"));
        assert_eq!(name(b"M4-3-6-x"), None);
        assert_eq!(name(b"M4-3-x--"), None);
        assert_eq!(name(b"M4-3--"), None);
    }

    #[test]
    fn one_offs() {
        assert_eq!(name(b"exbc\x00\x38").as_deref(), Some("BitComet 0.56"));
        assert_eq!(name(b"exbc\x00\x38LORD").as_deref(), Some("BitLord 0.56"));
        assert_eq!(name(b"A2-1-36-0-").as_deref(), Some("aria2 1.36.0"));
        assert_eq!(name(b"A2-1-2-0-").as_deref(), Some("aria2 1.2.0"));
        assert_eq!(name(b"A2-1-2"), None);
        assert_eq!(name(b"TIX0137-").as_deref(), Some("Tixati 1.37"));
        assert_eq!(name(b"XBT054d-").as_deref(), Some("XBT 0.5.4"));
        assert_eq!(name(b"OP7685").as_deref(), Some("Opera 7685"));
        assert_eq!(name(b"AZ2500BT").as_deref(), Some("BitTyrant"));
        assert_eq!(name(b"LIMEguid").as_deref(), Some("LimeWire"));
    }

    #[test]
    fn unknown_ids() {
        assert_eq!(identify_client(&PeerId::default()), None);
        assert_eq!(name(b"-ZZ1234-"), None);
        assert_eq!(name(b"-LT12\x004-"), None);
        assert_eq!(name(b"-LT1234x"), None);
        assert_eq!(identify_client(&PeerId::new([0xff; 20])), None);
        assert_eq!(
            identify_client(&PeerId::new(*b"01234567890123456789")),
            None
        );
    }

    #[test]
    fn decimal_parses_and_rejects() {
        assert_eq!(decimal(b"042"), Some(42));
        assert_eq!(decimal(b""), Some(0));
        assert_eq!(decimal(b"4x"), None);
        assert_eq!(decimal(b"99999"), None);
    }
}
