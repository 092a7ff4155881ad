//! RFC 4648 base32 by hand: uppercase out without padding, either case in.
//!
//! Magnet links carry a v1 info-hash either as 40 hex digits or as 32 base32
//! characters (BEP 9), and 20 bytes are exactly 32 characters, so no padding is
//! ever needed there.

use crate::Error;

const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// The number of characters that encode `n` bytes, without padding.
pub(crate) const fn encoded_len(n: usize) -> usize {
    (n * 8).div_ceil(5)
}

/// The uppercase, unpadded base32 of `bytes`.
pub(crate) fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(encoded_len(bytes.len()));
    // Only the low `bits + 8 <= 12` bits of `buffer` matter; higher bits fall off.
    let mut buffer: usize = 0;
    let mut bits = 0u32;
    for &b in bytes {
        buffer = (buffer << 8) | usize::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[(buffer >> bits) & 31]));
        }
        buffer &= 0xff;
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[(buffer << (5 - bits)) & 31]));
    }
    out
}

/// Decodes exactly `out.len()` bytes from unpadded base32, accepting either case.
///
/// Only the canonical encoding is accepted: the unused low bits of the last
/// character must be zero.
pub(crate) fn decode_into(s: &str, out: &mut [u8]) -> Result<(), Error> {
    let s = s.as_bytes();
    let expected = encoded_len(out.len());
    if s.len() != expected {
        return Err(Error::Base32Length {
            expected,
            actual: s.len(),
        });
    }
    let mut buffer: u16 = 0;
    let mut bits = 0u32;
    let mut slots = out.iter_mut();
    for (position, &c) in s.iter().enumerate() {
        let v = digit(c).ok_or(Error::Base32Digit { position })?;
        // `bits < 8` before this shift, so the 13 bits we need fit in a u16.
        buffer = (buffer << 5) | u16::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            let [_, byte] = (buffer >> bits).to_be_bytes();
            // The length check above makes the slot count exactly right.
            if let Some(slot) = slots.next() {
                *slot = byte;
            }
        }
    }
    if buffer & ((1 << bits) - 1) != 0 {
        return Err(Error::Base32TrailingBits);
    }
    Ok(())
}

const fn digit(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a'),
        b'2'..=b'7' => Some(c - b'2' + 26),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(s: &str, n: usize) -> Result<Vec<u8>, Error> {
        let mut out = vec![0; n];
        decode_into(s, &mut out).map(|()| out)
    }

    // RFC 4648 section 10, without padding.
    const VECTORS: &[(&str, &str)] = &[
        ("", ""),
        ("f", "MY"),
        ("fo", "MZXQ"),
        ("foo", "MZXW6"),
        ("foob", "MZXW6YQ"),
        ("fooba", "MZXW6YTB"),
        ("foobar", "MZXW6YTBOI"),
    ];

    #[test]
    fn rfc4648_vectors() {
        for &(plain, encoded) in VECTORS {
            assert_eq!(encode(plain.as_bytes()), encoded);
            assert_eq!(decode(encoded, plain.len()).unwrap(), plain.as_bytes());
            let lower = encoded.to_ascii_lowercase();
            assert_eq!(decode(&lower, plain.len()).unwrap(), plain.as_bytes());
        }
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!(
            decode("MZXW6", 4),
            Err(Error::Base32Length {
                expected: 7,
                actual: 5
            })
        );
        assert_eq!(
            decode("MZXW1YQ", 4),
            Err(Error::Base32Digit { position: 4 })
        );
        assert_eq!(decode("MZ======", 1).map_err(|_| ()), Err(()));
        // "MZ" is "f"; "M2" sets a trailing bit.
        assert_eq!(decode("M2", 1), Err(Error::Base32TrailingBits));
    }
}
