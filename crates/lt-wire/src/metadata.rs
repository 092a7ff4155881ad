//! `ut_metadata` (BEP 9): fetching a torrent's info dictionary from peers in 16 KiB pieces.
//!
//! ```text
//! {msg_type: 0 request, piece: i}
//! {msg_type: 1 data,    piece: i, total_size: n} <piece bytes>
//! {msg_type: 2 reject,  piece: i}
//! ```

use bytes::{BufMut, Bytes, BytesMut};
use lt_bencode::{write_bytes, write_int};

use crate::limits::METADATA_PIECE_SIZE;
use crate::{Error, Limits};

/// A ut_metadata message.
#[non_exhaustive]
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum MetadataMessage {
    /// Asks for piece `piece`.
    Request {
        /// Metadata piece index.
        piece: u32,
    },
    /// Piece `piece` of metadata of `total_size` bytes.
    Data {
        /// Metadata piece index.
        piece: u32,
        /// Size of the whole info dictionary.
        total_size: u32,
        /// The piece: 16 KiB, except the last which may be shorter (zero-copy).
        data: Bytes,
    },
    /// The sender will not send piece `piece`.
    Reject {
        /// Metadata piece index.
        piece: u32,
    },
}

/// Number of ut_metadata pieces for metadata of `size` bytes.
#[must_use]
pub fn metadata_piece_count(size: u32) -> u32 {
    size.div_ceil(METADATA_PIECE_SIZE)
}

/// Length of metadata piece `piece` for metadata of `total_size` bytes, or `None` when the
/// piece does not exist.
#[must_use]
pub fn metadata_piece_len(piece: u32, total_size: u32) -> Option<u32> {
    let start = piece.checked_mul(METADATA_PIECE_SIZE)?;
    (start < total_size).then(|| (total_size - start).min(METADATA_PIECE_SIZE))
}

impl MetadataMessage {
    /// The piece index the message is about.
    #[must_use]
    pub fn piece(&self) -> u32 {
        match self {
            Self::Request { piece } | Self::Data { piece, .. } | Self::Reject { piece } => *piece,
        }
    }

    /// Parses a ut_metadata payload. `Ok(None)` for an unknown `msg_type`, which BEP 9 says
    /// to ignore.
    ///
    /// # Errors
    /// [`Error::Bencode`], [`Error::BadMetadataMessage`] (missing or out-of-range fields, a
    /// data piece of the wrong length, trailing bytes after a request or reject) and
    /// [`Error::MetadataTooLarge`].
    pub fn decode(payload: &Bytes, limits: &Limits) -> Result<Option<Self>, Error> {
        let (doc, used) = lt_bencode::decode_prefix_with(payload, &limits.bencode())?;
        let dict = doc
            .root()
            .as_dict()
            .ok_or(Error::BadMetadataMessage("not a dictionary"))?;
        let msg_type = dict
            .get_int("msg_type")
            .ok_or(Error::BadMetadataMessage("no msg_type"))?;
        let piece = dict
            .get_int("piece")
            .and_then(|p| u32::try_from(p).ok())
            .ok_or(Error::BadMetadataMessage("piece missing or out of range"))?;
        let max_pieces = limits
            .max_metadata_size
            .div_ceil(u64::from(METADATA_PIECE_SIZE));
        if u64::from(piece) >= max_pieces {
            return Err(Error::BadMetadataMessage("piece past the size limit"));
        }
        let rest = payload.slice(used..);
        let msg = match msg_type {
            0 | 2 => {
                if !rest.is_empty() {
                    return Err(Error::BadMetadataMessage("trailing data"));
                }
                if msg_type == 0 {
                    Self::Request { piece }
                } else {
                    Self::Reject { piece }
                }
            }
            1 => {
                let total = dict
                    .get_int("total_size")
                    .ok_or(Error::BadMetadataMessage("no total_size"))?;
                let total = u64::try_from(total)
                    .map_err(|_| Error::BadMetadataMessage("negative total_size"))?;
                if total > limits.max_metadata_size {
                    return Err(Error::MetadataTooLarge {
                        size: total,
                        max: limits.max_metadata_size,
                    });
                }
                let total_size = u32::try_from(total).map_err(|_| Error::MetadataTooLarge {
                    size: total,
                    max: limits.max_metadata_size,
                })?;
                let expected = metadata_piece_len(piece, total_size)
                    .ok_or(Error::BadMetadataMessage("piece past total_size"))?;
                if u32::try_from(rest.len()).ok() != Some(expected) {
                    return Err(Error::BadMetadataMessage("data piece of the wrong length"));
                }
                Self::Data {
                    piece,
                    total_size,
                    data: rest,
                }
            }
            _ => {
                tracing::trace!(msg_type, "ignoring unknown ut_metadata msg_type");
                return Ok(None);
            }
        };
        Ok(Some(msg))
    }

    /// Writes the payload.
    pub fn encode(&self, out: &mut BytesMut) {
        // Keys in canonical order: msg_type, piece, total_size.
        out.put_u8(b'd');
        write_bytes(out, b"msg_type");
        let (t, piece) = match self {
            Self::Request { piece } => (0, piece),
            Self::Data { piece, .. } => (1, piece),
            Self::Reject { piece } => (2, piece),
        };
        write_int(out, t);
        write_bytes(out, b"piece");
        write_int(out, i64::from(*piece));
        if let Self::Data {
            total_size, data, ..
        } = self
        {
            write_bytes(out, b"total_size");
            write_int(out, i64::from(*total_size));
            out.put_u8(b'e');
            out.put_slice(data);
        } else {
            out.put_u8(b'e');
        }
    }
}

#[cfg(feature = "quickcheck")]
impl quickcheck::Arbitrary for MetadataMessage {
    fn arbitrary(g: &mut quickcheck::Gen) -> Self {
        let piece = u32::arbitrary(g) % 64;
        match u8::arbitrary(g) % 3 {
            0 => Self::Request { piece },
            1 => Self::Reject { piece },
            _ => {
                let extra = u32::arbitrary(g) % (2 * METADATA_PIECE_SIZE);
                let total_size = piece * METADATA_PIECE_SIZE + 1 + extra;
                let len = metadata_piece_len(piece, total_size).unwrap_or(0);
                let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
                Self::Data {
                    piece,
                    total_size,
                    data: data.into(),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(b: &[u8]) -> Result<Option<MetadataMessage>, Error> {
        MetadataMessage::decode(&Bytes::copy_from_slice(b), &Limits::default())
    }

    #[test]
    fn bep9_examples() {
        assert_eq!(
            dec(b"d8:msg_typei0e5:piecei0ee"),
            Ok(Some(MetadataMessage::Request { piece: 0 }))
        );
        assert_eq!(
            dec(b"d8:msg_typei2e5:piecei0ee"),
            Ok(Some(MetadataMessage::Reject { piece: 0 }))
        );
        let mut data = b"d8:msg_typei1e5:piecei0e10:total_sizei3ee".to_vec();
        data.extend_from_slice(b"xyz");
        assert_eq!(
            dec(&data),
            Ok(Some(MetadataMessage::Data {
                piece: 0,
                total_size: 3,
                data: Bytes::from_static(b"xyz")
            }))
        );
        assert_eq!(dec(b"d8:msg_typei7e5:piecei0ee"), Ok(None));
    }

    #[test]
    fn hostile() {
        assert!(matches!(
            dec(b"d8:msg_typei1e5:piecei0e10:total_sizei99999999999ee"),
            Err(Error::MetadataTooLarge { .. })
        ));
        assert!(dec(b"d8:msg_typei1e5:piecei0e10:total_sizei3eexy").is_err());
        assert!(dec(b"d8:msg_typei1e5:piecei1e10:total_sizei3eexyz").is_err());
        assert!(dec(b"d8:msg_typei0e5:piecei-1ee").is_err());
        assert!(dec(b"d8:msg_typei0e5:piecei999999ee").is_err());
        assert!(dec(b"d8:msg_typei0e5:piecei0eeX").is_err());
    }

    #[test]
    fn encode_matches_bep9() {
        let mut out = BytesMut::new();
        MetadataMessage::Request { piece: 1 }.encode(&mut out);
        assert_eq!(&out[..], b"d8:msg_typei0e5:piecei1ee");
    }
}
