//! Property tests over the public API.

use lt_core::{Bitfield, Fingerprint, InfoHash, PeerId, Sha1Hash, Sha256Hash, identify_client};
use quickcheck::{Arbitrary, Gen, TestResult};
use quickcheck_macros::quickcheck;

fn arr<const N: usize>(v: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    for (o, b) in out.iter_mut().zip(v.iter().cycle()) {
        *o = *b;
    }
    out
}

#[quickcheck]
fn sha1_hex_round_trip(bytes: Vec<u8>) -> TestResult {
    if bytes.is_empty() {
        return TestResult::discard();
    }
    let h = Sha1Hash::new(arr(&bytes));
    let hex = h.to_hex();
    TestResult::from_bool(
        Sha1Hash::from_hex(&hex) == Ok(h)
            && Sha1Hash::from_hex(&hex.to_uppercase()) == Ok(h)
            && hex.parse::<Sha1Hash>() == Ok(h)
            && h.to_string() == hex,
    )
}

#[quickcheck]
fn sha256_hex_and_base32_round_trip(bytes: Vec<u8>) -> TestResult {
    if bytes.is_empty() {
        return TestResult::discard();
    }
    let h = Sha256Hash::new(arr(&bytes));
    let b32 = h.to_base32();
    TestResult::from_bool(
        Sha256Hash::from_hex(&h.to_hex()) == Ok(h)
            && b32.len() == 52
            && Sha256Hash::from_base32(&b32) == Ok(h)
            && Sha256Hash::from_base32(&b32.to_lowercase()) == Ok(h),
    )
}

#[quickcheck]
fn sha1_base32_round_trip(bytes: Vec<u8>) -> TestResult {
    if bytes.is_empty() {
        return TestResult::discard();
    }
    let h = Sha1Hash::new(arr(&bytes));
    let b32 = h.to_base32();
    TestResult::from_bool(
        b32.len() == 32
            && Sha1Hash::from_base32(&b32) == Ok(h)
            && Sha1Hash::from_base32(&b32.to_lowercase()) == Ok(h),
    )
}

#[quickcheck]
fn parsers_never_panic_on_arbitrary_strings(s: String) -> bool {
    let _ = Sha1Hash::from_hex(&s);
    let _ = Sha256Hash::from_hex(&s);
    let _ = Sha1Hash::from_base32(&s);
    let _ = Sha256Hash::from_base32(&s);
    let _ = s.parse::<InfoHash>();
    let _ = s.parse::<PeerId>();
    true
}

/// Strings of the right length made of near-alphabet characters, so the digit
/// checks (not just the length check) get exercised.
#[derive(Clone, Debug)]
struct NearHex(String);

impl Arbitrary for NearHex {
    fn arbitrary(g: &mut Gen) -> Self {
        const CHARS: &[u8] = b"0123456789abcdefABCDEFgG/:@`xyz234567=";
        let len = *g.choose(&[32usize, 40, 52, 64]).unwrap_or(&40);
        Self(
            (0..len)
                .map(|_| char::from(*g.choose(CHARS).unwrap_or(&b'0')))
                .collect(),
        )
    }
}

#[quickcheck]
fn parsers_never_panic_on_near_misses(s: NearHex) -> bool {
    let s = s.0;
    let ok1 = Sha1Hash::from_hex(&s).map(|h| h.to_hex() == s.to_lowercase());
    let ok2 = Sha256Hash::from_hex(&s).map(|h| h.to_hex() == s.to_lowercase());
    let _ = Sha1Hash::from_base32(&s);
    let _ = Sha256Hash::from_base32(&s);
    ok1.unwrap_or(true) && ok2.unwrap_or(true)
}

#[quickcheck]
fn bitfield_wire_round_trip(bf: Bitfield) -> bool {
    let back = Bitfield::from_bytes(bf.as_bytes(), bf.len());
    back.as_ref() == Ok(&bf) && bf.as_bytes().len() == bf.len().div_ceil(8)
}

#[quickcheck]
fn bitfield_counts_agree(bf: Bitfield) -> bool {
    let ones = bf.count_ones();
    ones == bf.iter_ones().count()
        && bf.len() - ones == bf.iter_zeros().count()
        && ones == (0..bf.len()).filter(|&i| bf.get(i)).count()
        && bf.iter_ones().all(|i| bf.get(i))
        && bf.iter_zeros().all(|i| i < bf.len() && !bf.get(i))
        && bf.all() == (ones == bf.len())
        && bf.none() == (ones == 0)
}

#[quickcheck]
fn bitfield_and_not_matches_naive(a: Bitfield, b: Bitfield) -> bool {
    let n = a.len().min(b.len());
    let naive = (0..n).filter(|&i| a.get(i) && !b.get(i)).count();
    a.and_not_count(&b) == naive && a.has_any_not_in(&b) == (naive > 0)
}

#[quickcheck]
fn bitfield_from_arbitrary_bytes_never_panics(bytes: Vec<u8>, len: u16) -> bool {
    match Bitfield::from_bytes(&bytes, usize::from(len)) {
        Ok(bf) => bf.as_bytes() == bytes.as_slice() && bf.count_ones() <= bf.len(),
        Err(_) => true,
    }
}

#[quickcheck]
fn bitfield_resize_keeps_prefix(bf: Bitfield, len: u16, value: bool) -> bool {
    let len = usize::from(len % 2048);
    let mut r = bf.clone();
    r.resize(len, value);
    r.len() == len
        && (0..len).all(|i| r.get(i) == if i < bf.len() { bf.get(i) } else { value })
        && Bitfield::from_bytes(r.as_bytes(), len).is_ok()
}

#[quickcheck]
fn identify_client_never_panics(bytes: Vec<u8>, prefix: u8) -> bool {
    let mut id = arr::<20>(&if bytes.is_empty() { vec![0] } else { bytes });
    // Bias a share of the inputs towards the conventions' first bytes.
    const STARTS: &[u8] = b"-AMOQRSTUeXO";
    id[0] = STARTS[usize::from(prefix) % STARTS.len()];
    let _ = identify_client(&PeerId::new(id)).map(|c| c.to_string());
    let _ = format!("{:?}", PeerId::new(id));
    true
}

#[quickcheck]
fn identify_client_never_panics_on_raw_ids(id: PeerId) -> bool {
    let _ = identify_client(&id);
    let _ = Fingerprint::from_peer_id(&id);
    true
}

#[quickcheck]
fn libtorrent_fingerprint_round_trips(
    major: u8,
    minor: u8,
    revision: u8,
    tag: u8,
    random: Vec<u8>,
) -> bool {
    let v = |x: u8| x % (Fingerprint::MAX_VERSION + 1);
    let fp = Fingerprint::new(*b"LT", v(major), v(minor), v(revision), v(tag));
    let id = PeerId::generate(&fp, arr(&if random.is_empty() { vec![1] } else { random }));
    let mut expected = format!("libtorrent {}.{}.{}", fp.major, fp.minor, fp.revision);
    if fp.tag != 0 {
        expected.push_str(&format!(".{}", fp.tag));
    }
    Fingerprint::from_peer_id(&id) == Some(fp)
        && identify_client(&id).map(|c| c.to_string()) == Some(expected)
        && id.to_string().parse::<PeerId>() == Ok(id)
}

#[quickcheck]
fn any_fingerprint_round_trips(fp: Fingerprint) -> bool {
    let id = PeerId::generate(&fp, [0; 12]);
    Fingerprint::from_peer_id(&id) == Some(fp) && fp.to_prefix().len() == 8
}

#[quickcheck]
fn xor_is_a_metric(a: Sha1Hash, b: Sha1Hash, c: Sha1Hash) -> bool {
    (a ^ a).is_zero()
        && (a ^ b) == (b ^ a)
        && ((a ^ b) ^ b) == a
        && ((a ^ b) ^ (b ^ c)) == (a ^ c)
        && (a ^ b).leading_zeros() <= 160
}

#[quickcheck]
fn info_hash_display_round_trips(ih: InfoHash) -> bool {
    ih.to_string().parse::<InfoHash>() == Ok(ih)
        && ih.matches(&ih.best())
        && (ih.has_v1() || ih.has_v2())
}
