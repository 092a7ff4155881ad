//! The BEP 10 extension protocol: the extended handshake, the per-direction mapping of
//! extension names to message ids, and typed extension messages.
//!
//! ```text
//!  20 <ext id> <payload>
//!   ext id 0          extended handshake  {m: {name: id}, p, v, yourip, reqq, metadata_size, ...}
//!   ext id = OUR id   messages the peer sends us use the ids WE put in our `m`
//!   ext id = THEIR id messages we send use the ids THEY put in their `m`
//! ```
//!
//! Unknown extension ids and names are ignored (forward compatibility); a malformed message
//! of a known extension is an error.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bytes::{BufMut, Bytes, BytesMut};
use lt_bencode::Value;
use lt_core::PieceIndex;

use crate::holepunch::HolepunchMessage;
use crate::metadata::MetadataMessage;
use crate::pex::PexMessage;
use crate::{Error, Limits, Message};

/// An extension this crate implements.
#[non_exhaustive]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub enum Extension {
    /// `ut_metadata` (BEP 9): fetching the info dictionary from peers.
    Metadata,
    /// `ut_pex` (BEP 11): peer exchange.
    Pex,
    /// `lt_donthave`: a peer no longer has a piece.
    DontHave,
    /// `upload_only`: the peer only uploads (a seed or finished partial download).
    UploadOnly,
    /// `share_mode`: the peer is in libtorrent's share mode.
    ShareMode,
    /// `ut_holepunch` (BEP 55): NAT traversal through a relaying peer.
    Holepunch,
}

impl Extension {
    /// Every extension, in id-table order.
    pub const ALL: [Self; 6] = [
        Self::Metadata,
        Self::Pex,
        Self::DontHave,
        Self::UploadOnly,
        Self::ShareMode,
        Self::Holepunch,
    ];

    /// The name in the `m` dictionary.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Metadata => "ut_metadata",
            Self::Pex => "ut_pex",
            Self::DontHave => "lt_donthave",
            Self::UploadOnly => "upload_only",
            Self::ShareMode => "share_mode",
            Self::Holepunch => "ut_holepunch",
        }
    }

    /// The id we advertise by default (libtorrent's choices, so traces look alike).
    #[must_use]
    pub const fn default_local_id(self) -> u8 {
        match self {
            Self::Pex => 1,
            Self::Metadata => 2,
            Self::UploadOnly => 3,
            Self::Holepunch => 4,
            Self::DontHave => 7,
            Self::ShareMode => 8,
        }
    }

    /// The extension with this `m` name.
    #[must_use]
    pub fn from_name(name: &[u8]) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.name().as_bytes() == name)
    }

    const fn slot(self) -> usize {
        match self {
            Self::Metadata => 0,
            Self::Pex => 1,
            Self::DontHave => 2,
            Self::UploadOnly => 3,
            Self::ShareMode => 4,
            Self::Holepunch => 5,
        }
    }
}

/// Extension ids in both directions.
///
/// `local` ids are the ones we advertise: the peer uses them in messages to us. `remote`
/// ids come from the peer's extended handshake: we use them in messages to the peer. An id
/// of 0 means "not supported" (or disabled by a later handshake, BEP 10).
///
/// ```
/// use lt_wire::{Extension, ExtensionIds, ExtendedHandshake};
/// let mut ids = ExtensionIds::new([Extension::Metadata, Extension::Pex]);
/// let mut theirs = ExtendedHandshake::default();
/// theirs.m.insert("ut_metadata".into(), 3);
/// ids.update_remote(&theirs);
/// assert_eq!(ids.remote(Extension::Metadata), Some(3));
/// assert_eq!(ids.remote(Extension::Pex), None);
/// assert_eq!(ids.incoming(2), Some(Extension::Metadata));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ExtensionIds {
    local: [u8; 6],
    remote: [u8; 6],
}

impl ExtensionIds {
    /// We support (and advertise) `enabled`, with the default local ids.
    #[must_use]
    pub fn new(enabled: impl IntoIterator<Item = Extension>) -> Self {
        let mut local = [0u8; 6];
        for e in enabled {
            local[e.slot()] = e.default_local_id();
        }
        Self {
            local,
            remote: [0; 6],
        }
    }

    /// The id we advertise for `ext`, if we support it.
    #[must_use]
    pub fn local(&self, ext: Extension) -> Option<u8> {
        Some(self.local[ext.slot()]).filter(|&id| id != 0)
    }

    /// The id the peer wants for `ext`, if it supports it.
    #[must_use]
    pub fn remote(&self, ext: Extension) -> Option<u8> {
        Some(self.remote[ext.slot()]).filter(|&id| id != 0)
    }

    /// Which of our extensions an incoming extended id names (`None` for 0 and unknown ids).
    #[must_use]
    pub fn incoming(&self, id: u8) -> Option<Extension> {
        if id == 0 {
            return None;
        }
        Extension::ALL
            .into_iter()
            .find(|e| self.local[e.slot()] == id)
    }

    /// Applies the peer's (first or later) extended handshake: names present in `m` set
    /// or change the id, 0 disables; names absent keep their id (BEP 10).
    pub fn update_remote(&mut self, hs: &ExtendedHandshake) {
        for (name, &id) in &hs.m {
            if let Some(e) = Extension::from_name(name.as_bytes()) {
                self.remote[e.slot()] = id;
            }
        }
    }

    /// Our `m` dictionary.
    #[must_use]
    pub fn local_map(&self) -> BTreeMap<String, u8> {
        Extension::ALL
            .into_iter()
            .filter_map(|e| self.local(e).map(|id| (e.name().to_owned(), id)))
            .collect()
    }
}

impl Default for ExtensionIds {
    fn default() -> Self {
        Self::new(Extension::ALL)
    }
}

/// The extended handshake (extension message 0, BEP 10).
///
/// Unknown keys are ignored. Fields with the wrong type are ignored too, as libtorrent does,
/// except the ones whose misuse could hurt us: `m` must be a dictionary of at most
/// [`Limits::max_extensions`] entries and `metadata_size` must be within
/// [`Limits::max_metadata_size`].
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct ExtendedHandshake {
    /// Extension names and ids (`m`); id 0 disables.
    pub m: BTreeMap<String, u8>,
    /// The sender's listen port (`p`).
    pub p: Option<u16>,
    /// Client name and version (`v`).
    pub v: Option<String>,
    /// Our address as the peer sees it (`yourip`).
    pub yourip: Option<IpAddr>,
    /// The sender's IPv4 address (`ipv4`).
    pub ipv4: Option<Ipv4Addr>,
    /// The sender's IPv6 address (`ipv6`).
    pub ipv6: Option<Ipv6Addr>,
    /// How many outstanding requests the sender queues (`reqq`).
    pub reqq: Option<u32>,
    /// Size of the info dictionary (`metadata_size`, BEP 9).
    pub metadata_size: Option<u32>,
    /// The sender only uploads (`upload_only`).
    pub upload_only: bool,
    /// The sender is in share mode (`share_mode`).
    pub share_mode: bool,
}

impl ExtendedHandshake {
    /// Parses the payload of extension message 0.
    ///
    /// # Errors
    /// [`Error::ExtensionTooLong`], [`Error::Bencode`], [`Error::BadExtendedHandshake`],
    /// [`Error::TooManyExtensions`] and [`Error::MetadataTooLarge`].
    pub fn decode(payload: &[u8], limits: &Limits) -> Result<Self, Error> {
        if payload.len() > limits.max_extended_handshake_len {
            return Err(Error::ExtensionTooLong {
                len: payload.len(),
                max: limits.max_extended_handshake_len,
            });
        }
        let (doc, _) = lt_bencode::decode_prefix_with(payload, &limits.bencode())?;
        let root = doc
            .root()
            .as_dict()
            .ok_or(Error::BadExtendedHandshake("not a dictionary"))?;
        let mut hs = Self::default();
        if let Some(m) = root.get("m") {
            let m = m
                .as_dict()
                .ok_or(Error::BadExtendedHandshake("m is not a dictionary"))?;
            if m.len() > limits.max_extensions {
                return Err(Error::TooManyExtensions {
                    count: m.len(),
                    max: limits.max_extensions,
                });
            }
            for (name, id) in m {
                let (Ok(name), Some(id)) = (
                    std::str::from_utf8(name),
                    id.as_int().and_then(|i| u8::try_from(i).ok()),
                ) else {
                    continue;
                };
                hs.m.insert(name.to_owned(), id);
            }
        }
        hs.p = root
            .get_int("p")
            .and_then(|p| u16::try_from(p).ok())
            .filter(|&p| p != 0);
        hs.v = root
            .get_bytes("v")
            .map(|v| String::from_utf8_lossy(v).into_owned());
        hs.yourip = root.get_bytes("yourip").and_then(ip_from_bytes);
        hs.ipv4 = root
            .get_bytes("ipv4")
            .and_then(|b| <[u8; 4]>::try_from(b).ok().map(Ipv4Addr::from));
        hs.ipv6 = root
            .get_bytes("ipv6")
            .and_then(|b| <[u8; 16]>::try_from(b).ok().map(Ipv6Addr::from));
        hs.reqq = root.get_int("reqq").and_then(|q| u32::try_from(q).ok());
        if let Some(size) = root.get("metadata_size") {
            let size = size.as_int().ok_or(Error::BadExtendedHandshake(
                "metadata_size is not an integer",
            ))?;
            let size = u64::try_from(size)
                .map_err(|_| Error::BadExtendedHandshake("negative metadata_size"))?;
            if size > limits.max_metadata_size {
                return Err(Error::MetadataTooLarge {
                    size,
                    max: limits.max_metadata_size,
                });
            }
            hs.metadata_size = Some(u32::try_from(size).map_err(|_| Error::MetadataTooLarge {
                size,
                max: limits.max_metadata_size,
            })?);
        }
        hs.upload_only = root.get_int("upload_only").is_some_and(|v| v != 0);
        hs.share_mode = root.get_int("share_mode").is_some_and(|v| v != 0);
        Ok(hs)
    }

    /// The bencoded payload (canonical: keys sorted, absent fields left out).
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut d: BTreeMap<Vec<u8>, Value> = BTreeMap::new();
        let m: BTreeMap<Vec<u8>, Value> = self
            .m
            .iter()
            .map(|(k, &v)| (k.as_bytes().to_vec(), Value::Int(i64::from(v))))
            .collect();
        d.insert(b"m".to_vec(), Value::Dict(m));
        if let Some(p) = self.p {
            d.insert(b"p".to_vec(), Value::Int(i64::from(p)));
        }
        if let Some(v) = &self.v {
            d.insert(b"v".to_vec(), Value::from(v.as_str()));
        }
        if let Some(ip) = self.yourip {
            d.insert(b"yourip".to_vec(), Value::Bytes(ip_to_bytes(ip)));
        }
        if let Some(ip) = self.ipv4 {
            d.insert(b"ipv4".to_vec(), Value::Bytes(ip.octets().to_vec()));
        }
        if let Some(ip) = self.ipv6 {
            d.insert(b"ipv6".to_vec(), Value::Bytes(ip.octets().to_vec()));
        }
        if let Some(q) = self.reqq {
            d.insert(b"reqq".to_vec(), Value::Int(i64::from(q)));
        }
        if let Some(s) = self.metadata_size {
            d.insert(b"metadata_size".to_vec(), Value::Int(i64::from(s)));
        }
        if self.upload_only {
            d.insert(b"upload_only".to_vec(), Value::Int(1));
        }
        if self.share_mode {
            d.insert(b"share_mode".to_vec(), Value::Int(1));
        }
        Value::Dict(d).to_bytes()
    }
}

fn ip_from_bytes(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => <[u8; 4]>::try_from(b).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(b).ok().map(IpAddr::from),
        _ => None,
    }
}

fn ip_to_bytes(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

/// A typed extension message.
#[non_exhaustive]
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum ExtensionMessage {
    /// The extended handshake (id 0).
    Handshake(ExtendedHandshake),
    /// `ut_metadata` (BEP 9).
    Metadata(MetadataMessage),
    /// `ut_pex` (BEP 11).
    Pex(PexMessage),
    /// `lt_donthave`: the sender lost a piece.
    DontHave(PieceIndex),
    /// `upload_only`: whether the sender now only uploads.
    UploadOnly(bool),
    /// `share_mode`: whether the sender is in share mode.
    ShareMode(bool),
    /// `ut_holepunch` (BEP 55).
    Holepunch(HolepunchMessage),
}

impl ExtensionMessage {
    /// The extension this message belongs to (`None` for the handshake).
    #[must_use]
    pub fn extension(&self) -> Option<Extension> {
        Some(match self {
            Self::Handshake(_) => return None,
            Self::Metadata(_) => Extension::Metadata,
            Self::Pex(_) => Extension::Pex,
            Self::DontHave(_) => Extension::DontHave,
            Self::UploadOnly(_) => Extension::UploadOnly,
            Self::ShareMode(_) => Extension::ShareMode,
            Self::Holepunch(_) => Extension::Holepunch,
        })
    }

    /// Decodes the payload of an incoming extended message with id `id`, using our local
    /// ids. Returns `Ok(None)` for ids we did not advertise and for messages an extension
    /// says to ignore (an unknown ut_metadata `msg_type`).
    ///
    /// # Errors
    /// The extension's decode error for a malformed message.
    pub fn decode(
        ids: &ExtensionIds,
        id: u8,
        payload: &Bytes,
        limits: &Limits,
    ) -> Result<Option<Self>, Error> {
        if id == 0 {
            return ExtendedHandshake::decode(payload, limits).map(|h| Some(Self::Handshake(h)));
        }
        let Some(ext) = ids.incoming(id) else {
            tracing::trace!(id, "ignoring unknown extension message");
            return Ok(None);
        };
        Self::decode_extension(ext, payload, limits)
    }

    /// Decodes the payload of an `ext` message.
    ///
    /// # Errors
    /// The extension's decode error for a malformed message.
    pub fn decode_extension(
        ext: Extension,
        payload: &Bytes,
        limits: &Limits,
    ) -> Result<Option<Self>, Error> {
        Ok(Some(match ext {
            Extension::Metadata => {
                return MetadataMessage::decode(payload, limits).map(|m| m.map(Self::Metadata));
            }
            Extension::Pex => Self::Pex(PexMessage::decode(payload, limits)?),
            Extension::DontHave => {
                let b = <[u8; 4]>::try_from(&payload[..])
                    .map_err(|_| Error::BadExtensionMessage("lt_donthave length"))?;
                Self::DontHave(PieceIndex::new(u32::from_be_bytes(b)))
            }
            Extension::UploadOnly => Self::UploadOnly(flag(payload, "upload_only length")?),
            Extension::ShareMode => Self::ShareMode(flag(payload, "share_mode length")?),
            Extension::Holepunch => Self::Holepunch(HolepunchMessage::decode(payload)?),
        }))
    }

    /// Writes the payload (what follows the extension id byte).
    pub fn encode_payload(&self, out: &mut BytesMut) {
        match self {
            Self::Handshake(h) => out.put_slice(&h.to_bytes()),
            Self::Metadata(m) => m.encode(out),
            Self::Pex(p) => out.put_slice(&p.to_bytes()),
            Self::DontHave(p) => out.put_u32(p.get()),
            Self::UploadOnly(b) | Self::ShareMode(b) => out.put_u8(u8::from(*b)),
            Self::Holepunch(h) => h.encode(out),
        }
    }

    /// The wire message to send this to the peer, with the peer's id for the extension.
    /// `None` when the peer does not support it.
    #[must_use]
    pub fn to_message(&self, ids: &ExtensionIds) -> Option<Message> {
        let id = match self.extension() {
            None => 0,
            Some(e) => ids.remote(e)?,
        };
        let mut payload = BytesMut::new();
        self.encode_payload(&mut payload);
        Some(Message::Extended {
            id,
            payload: payload.freeze(),
        })
    }
}

fn flag(payload: &[u8], what: &'static str) -> Result<bool, Error> {
    // libtorrent sends one byte; accept a longer payload by its first byte.
    payload
        .first()
        .map(|&b| b != 0)
        .ok_or(Error::BadExtensionMessage(what))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_round_trip() {
        let hs = ExtendedHandshake {
            m: ExtensionIds::default().local_map(),
            p: Some(6881),
            v: Some("lt 0.1".into()),
            yourip: Some("10.0.0.1".parse().unwrap()),
            ipv4: Some("1.2.3.4".parse().unwrap()),
            ipv6: Some("::1".parse().unwrap()),
            reqq: Some(500),
            metadata_size: Some(12345),
            upload_only: true,
            share_mode: false,
        };
        let bytes = hs.to_bytes();
        assert_eq!(
            ExtendedHandshake::decode(&bytes, &Limits::default()),
            Ok(hs)
        );
    }

    #[test]
    fn hostile_handshakes() {
        let l = Limits::default();
        assert!(matches!(
            ExtendedHandshake::decode(b"d13:metadata_sizei99999999999ee", &l),
            Err(Error::MetadataTooLarge { .. })
        ));
        assert!(matches!(
            ExtendedHandshake::decode(b"li1ee", &l),
            Err(Error::BadExtendedHandshake(_))
        ));
        let big = vec![b' '; l.max_extended_handshake_len + 1];
        assert!(matches!(
            ExtendedHandshake::decode(&big, &l),
            Err(Error::ExtensionTooLong { .. })
        ));
        let mut many = b"d1:md".to_vec();
        for i in 0..100 {
            many.extend_from_slice(format!("3:x{i:02}i1e").as_bytes());
        }
        many.extend_from_slice(b"ee");
        assert!(matches!(
            ExtendedHandshake::decode(&many, &l),
            Err(Error::TooManyExtensions { count: 100, .. })
        ));
    }

    #[test]
    fn later_handshake_disables() {
        let mut ids = ExtensionIds::default();
        let mut hs = ExtendedHandshake::default();
        hs.m.insert("ut_pex".into(), 9);
        ids.update_remote(&hs);
        assert_eq!(ids.remote(Extension::Pex), Some(9));
        hs.m.insert("ut_pex".into(), 0);
        ids.update_remote(&hs);
        assert_eq!(ids.remote(Extension::Pex), None);
    }
}
