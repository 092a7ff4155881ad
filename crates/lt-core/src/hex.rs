//! Hexadecimal encoding by hand: lowercase out, either case in.

use core::fmt;

use crate::Error;

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Writes the lowercase hex of `bytes` into `out`, which must be twice as long.
pub(crate) fn encode_into(bytes: &[u8], out: &mut [u8]) {
    debug_assert_eq!(out.len(), bytes.len() * 2);
    for (&b, pair) in bytes.iter().zip(out.chunks_exact_mut(2)) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 0x0f)];
    }
}

/// The lowercase hex of `bytes`.
pub(crate) fn encode(bytes: &[u8]) -> String {
    let mut out = vec![0; bytes.len() * 2];
    encode_into(bytes, &mut out);
    // Every byte written by `encode_into` is an ASCII hex digit.
    String::from_utf8(out).unwrap_or_default()
}

/// Writes the lowercase hex of `bytes` to a formatter without allocating.
pub(crate) fn fmt(bytes: &[u8], f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let mut buf = [0u8; 64];
    for chunk in bytes.chunks(buf.len() / 2) {
        let out = &mut buf[..chunk.len() * 2];
        encode_into(chunk, out);
        f.write_str(core::str::from_utf8(out).map_err(|_| fmt::Error)?)?;
    }
    Ok(())
}

/// Decodes exactly `out.len()` bytes from `s`, accepting either case.
pub(crate) fn decode_into(s: &str, out: &mut [u8]) -> Result<(), Error> {
    let s = s.as_bytes();
    let expected = out.len() * 2;
    if s.len() != expected {
        return Err(Error::HexLength {
            expected,
            actual: s.len(),
        });
    }
    for (i, (pair, o)) in s.chunks_exact(2).zip(out.iter_mut()).enumerate() {
        let hi = digit(pair[0]).ok_or(Error::HexDigit { position: 2 * i })?;
        let lo = digit(pair[1]).ok_or(Error::HexDigit {
            position: 2 * i + 1,
        })?;
        *o = (hi << 4) | lo;
    }
    Ok(())
}

const fn digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_lowercase() {
        assert_eq!(encode(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        assert_eq!(encode(&[]), "");
    }

    #[test]
    fn decodes_either_case() {
        let mut out = [0u8; 4];
        decode_into("000FA5ff", &mut out).unwrap();
        assert_eq!(out, [0x00, 0x0f, 0xa5, 0xff]);
    }

    #[test]
    fn rejects_bad_length_and_digits() {
        let mut out = [0u8; 2];
        assert_eq!(
            decode_into("abc", &mut out),
            Err(Error::HexLength {
                expected: 4,
                actual: 3
            })
        );
        assert_eq!(
            decode_into("ab0g", &mut out),
            Err(Error::HexDigit { position: 3 })
        );
        assert_eq!(
            decode_into("x000", &mut out),
            Err(Error::HexDigit { position: 0 })
        );
        // A multi-byte character counts by its UTF-8 length and never splits badly.
        assert_eq!(
            decode_into("é0", &mut [0u8; 1][..]).map_err(|_| ()),
            Err(())
        );
        assert!(decode_into("éé", &mut out).is_err());
    }
}
