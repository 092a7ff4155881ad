//! KRPC messages (BEP 5) with the BEP 32 `nodes6`, BEP 42 `ip`, BEP 43 `ro` and BEP 51
//! `sample_infohashes` extensions.
//!
//! [`Message::decode`] takes one datagram and checks its size, nesting, item count and
//! every list length against [`crate::limits`] before allocating. [`Message::encode`]
//! writes canonical bencoding (sorted keys).

use std::net::{IpAddr, SocketAddr};

use lt_bencode::{Dict, Limits, write_bytes, write_int};
use lt_core::{Sha1Hash, compact};

use crate::Error;
use crate::limits::{
    MAX_DEPTH, MAX_ERROR_MESSAGE_LEN, MAX_ITEM_VALUE_LEN, MAX_ITEMS, MAX_MESSAGE_LEN, MAX_NODES,
    MAX_SALT_LEN, MAX_SAMPLES, MAX_TID_LEN, MAX_TOKEN_LEN, MAX_VALUES, MAX_VERSION_LEN,
};
use crate::scrape::Bloom;

/// Bytes of one IPv4 compact node info: 20-byte id, 4-byte IP, 2-byte port.
pub const NODE_V4_LEN: usize = 26;
/// Bytes of one IPv6 compact node info: 20-byte id, 16-byte IP, 2-byte port.
pub const NODE_V6_LEN: usize = 38;

/// A node's id and UDP address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NodeInfo {
    /// The node id.
    pub id: Sha1Hash,
    /// Its UDP address.
    pub addr: SocketAddr,
}

/// One KRPC message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Transaction id (`t`), echoed by the responder; at most [`MAX_TID_LEN`] bytes.
    pub tid: Vec<u8>,
    /// Client version (`v`); at most [`MAX_VERSION_LEN`] bytes.
    pub version: Option<Vec<u8>>,
    /// BEP 43 read-only flag (`ro=1`): the sender does not answer queries.
    pub read_only: bool,
    /// BEP 42: the requester's address as the responder sees it (`ip`).
    pub ip: Option<SocketAddr>,
    /// The query, response or error.
    pub body: Body,
}

/// The three KRPC message types (`y`).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// `y=q`.
    Query(Query),
    /// `y=r`. Responses do not name their method: the querier matches `t`.
    Response(Response),
    /// `y=e`: `[code, message]`.
    Error {
        /// 201 generic, 202 server, 203 protocol, 204 method unknown.
        code: i64,
        /// Human-readable text (bytes, not necessarily UTF-8).
        message: Vec<u8>,
    },
}

/// A KRPC query (`q` plus `a`).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// `ping`.
    Ping {
        /// Querier id.
        id: Sha1Hash,
    },
    /// `find_node`.
    FindNode {
        /// Querier id.
        id: Sha1Hash,
        /// The id sought.
        target: Sha1Hash,
    },
    /// `get_peers`.
    GetPeers {
        /// Querier id.
        id: Sha1Hash,
        /// The torrent.
        info_hash: Sha1Hash,
        /// BEP 33 `noseed=1`: leave seeds out of `values`.
        noseed: bool,
        /// BEP 33 `scrape=1`: add the `BFsd`/`BFpe` bloom filters.
        scrape: bool,
    },
    /// `announce_peer`.
    AnnouncePeer {
        /// Querier id.
        id: Sha1Hash,
        /// The torrent.
        info_hash: Sha1Hash,
        /// The peer's TCP port (ignored when `implied_port`).
        port: u16,
        /// Use the UDP source port instead of `port` (`implied_port=1`).
        implied_port: bool,
        /// The token from an earlier `get_peers` reply.
        token: Vec<u8>,
        /// BEP 33 `seed=1`: the peer is a seed.
        seed: bool,
    },
    /// BEP 51 `sample_infohashes`.
    SampleInfohashes {
        /// Querier id.
        id: Sha1Hash,
        /// Where in the key space to return nodes for.
        target: Sha1Hash,
    },
    /// BEP 44 `get`: an immutable or mutable item.
    Get {
        /// Querier id.
        id: Sha1Hash,
        /// SHA-1 of the value (immutable) or of the public key and salt (mutable).
        target: Sha1Hash,
        /// Only send the value if the stored sequence number is greater.
        seq: Option<i64>,
    },
    /// BEP 44 `put`.
    Put {
        /// Querier id.
        id: Sha1Hash,
        /// The token from an earlier `get` reply.
        token: Vec<u8>,
        /// The item with, for mutable items, its signature.
        item: PutItem,
    },
}

/// The arguments of a BEP 44 `put` besides `id` and `token`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutItem {
    /// The value, bencoded (`v`), at most [`MAX_ITEM_VALUE_LEN`] bytes.
    pub v: Vec<u8>,
    /// Mutable items: the ed25519 public key (`k`).
    pub k: Option<[u8; 32]>,
    /// Mutable items: the signature (`sig`).
    pub sig: Option<[u8; 64]>,
    /// Mutable items: the sequence number (`seq`).
    pub seq: Option<i64>,
    /// Compare-and-swap: only store if the current `seq` equals this (`cas`).
    pub cas: Option<i64>,
    /// Mutable items: the salt (`salt`), at most [`MAX_SALT_LEN`] bytes.
    pub salt: Option<Vec<u8>>,
}

impl Query {
    /// The querier's node id.
    #[must_use]
    pub fn id(&self) -> Sha1Hash {
        match self {
            Self::Ping { id }
            | Self::FindNode { id, .. }
            | Self::GetPeers { id, .. }
            | Self::AnnouncePeer { id, .. }
            | Self::SampleInfohashes { id, .. }
            | Self::Get { id, .. }
            | Self::Put { id, .. } => *id,
        }
    }

    /// The method name on the wire.
    #[must_use]
    pub fn method(&self) -> &'static str {
        match self {
            Self::Ping { .. } => "ping",
            Self::FindNode { .. } => "find_node",
            Self::GetPeers { .. } => "get_peers",
            Self::AnnouncePeer { .. } => "announce_peer",
            Self::SampleInfohashes { .. } => "sample_infohashes",
            Self::Get { .. } => "get",
            Self::Put { .. } => "put",
        }
    }
}

/// A KRPC response (`r`). Which fields are present depends on the query answered;
/// empty lists are not encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Responder id.
    pub id: Sha1Hash,
    /// IPv4 nodes (`nodes`, 26 bytes each).
    pub nodes: Vec<NodeInfo>,
    /// IPv6 nodes (`nodes6`, 38 bytes each, BEP 32).
    pub nodes6: Vec<NodeInfo>,
    /// Peers (`values`, 6- or 18-byte compact addresses).
    pub values: Vec<SocketAddr>,
    /// `get_peers` token.
    pub token: Option<Vec<u8>>,
    /// BEP 51 info-hash samples.
    pub samples: Vec<Sha1Hash>,
    /// BEP 51 seconds before the responder wants to be asked again.
    pub interval: Option<i64>,
    /// BEP 51 number of info-hashes the responder stores.
    pub num: Option<i64>,
    /// BEP 44 `get`: the stored value, bencoded (`v`).
    pub v: Option<Vec<u8>>,
    /// BEP 44 `get` of a mutable item: the public key (`k`).
    pub k: Option<[u8; 32]>,
    /// BEP 44 `get` of a mutable item: the signature (`sig`).
    pub sig: Option<[u8; 64]>,
    /// BEP 44 `get` of a mutable item: the sequence number (`seq`).
    pub seq: Option<i64>,
    /// BEP 33 bloom filter of seeds (`BFsd`).
    pub bf_seeds: Option<Bloom>,
    /// BEP 33 bloom filter of downloaders (`BFpe`).
    pub bf_peers: Option<Bloom>,
}

impl Response {
    /// A response carrying only the responder id (`ping`, `announce_peer`).
    #[must_use]
    pub fn new(id: Sha1Hash) -> Self {
        Self {
            id,
            nodes: Vec::new(),
            nodes6: Vec::new(),
            values: Vec::new(),
            token: None,
            samples: Vec::new(),
            interval: None,
            num: None,
            v: None,
            k: None,
            sig: None,
            seq: None,
            bf_seeds: None,
            bf_peers: None,
        }
    }
}

impl Message {
    /// Decodes one datagram.
    ///
    /// # Errors
    ///
    /// [`Error::MessageTooLong`], [`Error::Bencode`], [`Error::BadField`],
    /// [`Error::TooMany`], [`Error::UnknownMethod`] or [`Error::UnknownType`]; never panics.
    pub fn decode(buf: &[u8]) -> Result<Self, Error> {
        if buf.len() > MAX_MESSAGE_LEN {
            return Err(Error::MessageTooLong {
                len: buf.len(),
                max: MAX_MESSAGE_LEN,
            });
        }
        let limits = Limits {
            max_depth: MAX_DEPTH,
            max_items: MAX_ITEMS,
        };
        let doc = lt_bencode::decode_with(buf, &limits)?;
        let root = doc.root();
        let dict = root.as_dict().ok_or(Error::BadField { key: "message" })?;
        let tid = bounded_bytes(&dict, "t", MAX_TID_LEN)?.to_vec();
        let version = match dict.get("v") {
            None => None,
            Some(_) => Some(bounded_bytes(&dict, "v", MAX_VERSION_LEN)?.to_vec()),
        };
        let read_only = matches!(dict.get_int("ro"), Some(1));
        let ip = match dict.get("ip") {
            None => None,
            Some(n) => {
                let b = n.as_bytes().ok_or(Error::BadField { key: "ip" })?;
                Some(compact::decode(b).ok_or(Error::BadField { key: "ip" })?)
            }
        };
        let y = dict.get_bytes("y").ok_or(Error::BadField { key: "y" })?;
        let body = match y {
            b"q" => Body::Query(decode_query(&dict)?),
            b"r" => Body::Response(decode_response(&dict)?),
            b"e" => decode_error(&dict)?,
            _ => return Err(Error::UnknownType),
        };
        Ok(Self {
            tid,
            version,
            read_only,
            ip,
            body,
        })
    }

    /// Encodes canonically into a new vector.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        out.push(b'd');
        match &self.body {
            Body::Query(q) => {
                key(&mut out, "a");
                encode_args(&mut out, q);
            }
            Body::Error { code, message } => {
                key(&mut out, "e");
                out.push(b'l');
                write_int(&mut out, *code);
                write_bytes(&mut out, message);
                out.push(b'e');
            }
            Body::Response(_) => {}
        }
        if let Some(ip) = self.ip {
            key(&mut out, "ip");
            write_bytes(&mut out, compact::encode(ip).as_ref());
        }
        if let Body::Query(q) = &self.body {
            key(&mut out, "q");
            write_bytes(&mut out, q.method().as_bytes());
        }
        if let Body::Response(r) = &self.body {
            key(&mut out, "r");
            encode_response(&mut out, r);
        }
        if self.read_only {
            key(&mut out, "ro");
            write_int(&mut out, 1);
        }
        key(&mut out, "t");
        write_bytes(&mut out, &self.tid);
        if let Some(v) = &self.version {
            key(&mut out, "v");
            write_bytes(&mut out, v);
        }
        key(&mut out, "y");
        write_bytes(
            &mut out,
            match self.body {
                Body::Query(_) => b"q",
                Body::Response(_) => b"r",
                Body::Error { .. } => b"e",
            },
        );
        out.push(b'e');
        out
    }
}

/// Encodes IPv4 nodes as a concatenation of 26-byte entries (IPv6 nodes are skipped).
#[must_use]
pub fn encode_nodes(nodes: &[NodeInfo]) -> Vec<u8> {
    let mut out = Vec::new();
    for n in nodes {
        let c = compact::encode(n.addr);
        let c = c.as_ref();
        if c.len() == compact::V4_LEN {
            out.extend_from_slice(n.id.as_bytes());
            out.extend_from_slice(c);
        }
    }
    out
}

/// Encodes IPv6 nodes as a concatenation of 38-byte entries (IPv4 nodes are skipped).
#[must_use]
pub fn encode_nodes6(nodes: &[NodeInfo]) -> Vec<u8> {
    let mut out = Vec::new();
    for n in nodes {
        let c = compact::encode(n.addr);
        let c = c.as_ref();
        if c.len() == compact::V6_LEN {
            out.extend_from_slice(n.id.as_bytes());
            out.extend_from_slice(c);
        }
    }
    out
}

/// Decodes a `nodes` (`entry == 26`) or `nodes6` (`entry == 38`) value.
///
/// # Errors
///
/// [`Error::BadField`] if the length is not a multiple of the entry size,
/// [`Error::TooMany`] past [`MAX_NODES`].
pub fn decode_nodes(buf: &[u8], entry: usize, key: &'static str) -> Result<Vec<NodeInfo>, Error> {
    if entry == 0 || !buf.len().is_multiple_of(entry) {
        return Err(Error::BadField { key });
    }
    let count = buf.len() / entry;
    if count > MAX_NODES {
        return Err(Error::TooMany {
            key,
            len: count,
            max: MAX_NODES,
        });
    }
    let mut out = Vec::with_capacity(count);
    for chunk in buf.chunks_exact(entry) {
        let (id, addr) = chunk.split_at(20);
        let id = Sha1Hash::from_slice(id).ok_or(Error::BadField { key })?;
        let addr = compact::decode(addr).ok_or(Error::BadField { key })?;
        out.push(NodeInfo { id, addr });
    }
    Ok(out)
}

fn key(out: &mut Vec<u8>, k: &str) {
    write_bytes(out, k.as_bytes());
}

fn encode_args(out: &mut Vec<u8>, q: &Query) {
    out.push(b'd');
    if let Query::Put {
        item: PutItem { cas: Some(cas), .. },
        ..
    } = q
    {
        key(out, "cas");
        write_int(out, *cas);
    }
    key(out, "id");
    write_bytes(out, q.id().as_bytes());
    match q {
        Query::Get { target, seq, .. } => {
            if let Some(seq) = seq {
                key(out, "seq");
                write_int(out, *seq);
            }
            key(out, "target");
            write_bytes(out, target.as_bytes());
        }
        Query::Put { token, item, .. } => {
            if let Some(k) = &item.k {
                key(out, "k");
                write_bytes(out, k);
            }
            if let Some(salt) = &item.salt {
                key(out, "salt");
                write_bytes(out, salt);
            }
            if let Some(seq) = item.seq {
                key(out, "seq");
                write_int(out, seq);
            }
            if let Some(sig) = &item.sig {
                key(out, "sig");
                write_bytes(out, sig);
            }
            key(out, "token");
            write_bytes(out, token);
            key(out, "v");
            // `v` is already bencoded (checked on decode, or by the caller's command).
            out.extend_from_slice(&item.v);
        }
        Query::Ping { .. } => {}
        Query::FindNode { target, .. } | Query::SampleInfohashes { target, .. } => {
            key(out, "target");
            write_bytes(out, target.as_bytes());
        }
        Query::GetPeers {
            info_hash,
            noseed,
            scrape,
            ..
        } => {
            key(out, "info_hash");
            write_bytes(out, info_hash.as_bytes());
            if *noseed {
                key(out, "noseed");
                write_int(out, 1);
            }
            if *scrape {
                key(out, "scrape");
                write_int(out, 1);
            }
        }
        Query::AnnouncePeer {
            info_hash,
            port,
            implied_port,
            token,
            seed,
            ..
        } => {
            if *implied_port {
                key(out, "implied_port");
                write_int(out, 1);
            }
            key(out, "info_hash");
            write_bytes(out, info_hash.as_bytes());
            key(out, "port");
            write_int(out, i64::from(*port));
            if *seed {
                key(out, "seed");
                write_int(out, 1);
            }
            key(out, "token");
            write_bytes(out, token);
        }
    }
    out.push(b'e');
}

fn encode_response(out: &mut Vec<u8>, r: &Response) {
    out.push(b'd');
    // Upper-case keys sort first.
    if let Some(b) = &r.bf_peers {
        key(out, "BFpe");
        write_bytes(out, b.as_bytes());
    }
    if let Some(b) = &r.bf_seeds {
        key(out, "BFsd");
        write_bytes(out, b.as_bytes());
    }
    key(out, "id");
    write_bytes(out, r.id.as_bytes());
    if let Some(i) = r.interval {
        key(out, "interval");
        write_int(out, i);
    }
    if let Some(k) = &r.k {
        key(out, "k");
        write_bytes(out, k);
    }
    if !r.nodes.is_empty() {
        key(out, "nodes");
        write_bytes(out, &encode_nodes(&r.nodes));
    }
    if !r.nodes6.is_empty() {
        key(out, "nodes6");
        write_bytes(out, &encode_nodes6(&r.nodes6));
    }
    if let Some(n) = r.num {
        key(out, "num");
        write_int(out, n);
    }
    if !r.samples.is_empty() {
        key(out, "samples");
        let mut s = Vec::with_capacity(r.samples.len() * 20);
        for h in &r.samples {
            s.extend_from_slice(h.as_bytes());
        }
        write_bytes(out, &s);
    }
    if let Some(seq) = r.seq {
        key(out, "seq");
        write_int(out, seq);
    }
    if let Some(sig) = &r.sig {
        key(out, "sig");
        write_bytes(out, sig);
    }
    if let Some(t) = &r.token {
        key(out, "token");
        write_bytes(out, t);
    }
    if let Some(v) = &r.v {
        key(out, "v");
        out.extend_from_slice(v);
    }
    if !r.values.is_empty() {
        key(out, "values");
        out.push(b'l');
        for v in &r.values {
            write_bytes(out, compact::encode(*v).as_ref());
        }
        out.push(b'e');
    }
    out.push(b'e');
}

fn bounded_bytes<'a>(dict: &Dict<'a>, key: &'static str, max: usize) -> Result<&'a [u8], Error> {
    let b = dict.get_bytes(key).ok_or(Error::BadField { key })?;
    if b.len() > max {
        return Err(Error::BadField { key });
    }
    Ok(b)
}

fn hash(dict: &Dict<'_>, key: &'static str) -> Result<Sha1Hash, Error> {
    dict.get_bytes(key)
        .and_then(Sha1Hash::from_slice)
        .ok_or(Error::BadField { key })
}

fn decode_query(dict: &Dict<'_>) -> Result<Query, Error> {
    let method = dict.get_bytes("q").ok_or(Error::BadField { key: "q" })?;
    let a = dict.get_dict("a").ok_or(Error::BadField { key: "a" })?;
    let id = hash(&a, "id")?;
    Ok(match method {
        b"ping" => Query::Ping { id },
        b"find_node" => Query::FindNode {
            id,
            target: hash(&a, "target")?,
        },
        b"get_peers" => Query::GetPeers {
            id,
            info_hash: hash(&a, "info_hash")?,
            noseed: matches!(a.get_int("noseed"), Some(1)),
            scrape: matches!(a.get_int("scrape"), Some(1)),
        },
        b"sample_infohashes" => Query::SampleInfohashes {
            id,
            target: hash(&a, "target")?,
        },
        b"get" => Query::Get {
            id,
            target: hash(&a, "target")?,
            seq: opt_int(&a, "seq")?,
        },
        b"put" => {
            let token = bounded_bytes(&a, "token", MAX_TOKEN_LEN)?.to_vec();
            let v = item_value(&a)?.ok_or(Error::BadField { key: "v" })?;
            let salt = match a.get("salt") {
                None => None,
                Some(_) => Some(bounded_bytes(&a, "salt", MAX_SALT_LEN)?.to_vec()),
            };
            Query::Put {
                id,
                token,
                item: PutItem {
                    v,
                    k: opt_array(&a, "k")?,
                    sig: opt_array(&a, "sig")?,
                    seq: opt_int(&a, "seq")?,
                    cas: opt_int(&a, "cas")?,
                    salt,
                },
            }
        }
        b"announce_peer" => {
            let info_hash = hash(&a, "info_hash")?;
            let implied_port = matches!(a.get_int("implied_port"), Some(1));
            // BEP 5: with implied_port the port argument is ignored and may be absent.
            let port = match a.get_int("port") {
                Some(p) => u16::try_from(p).map_err(|_| Error::BadField { key: "port" })?,
                None if implied_port => 0,
                None => return Err(Error::BadField { key: "port" }),
            };
            let token = bounded_bytes(&a, "token", MAX_TOKEN_LEN)?.to_vec();
            Query::AnnouncePeer {
                id,
                info_hash,
                port,
                implied_port,
                token,
                seed: matches!(a.get_int("seed"), Some(1)),
            }
        }
        _ => return Err(Error::UnknownMethod),
    })
}

fn decode_response(dict: &Dict<'_>) -> Result<Response, Error> {
    let r = dict.get_dict("r").ok_or(Error::BadField { key: "r" })?;
    let mut out = Response::new(hash(&r, "id")?);
    if let Some(n) = r.get("nodes") {
        let b = n.as_bytes().ok_or(Error::BadField { key: "nodes" })?;
        out.nodes = decode_nodes(b, NODE_V4_LEN, "nodes")?;
    }
    if let Some(n) = r.get("nodes6") {
        let b = n.as_bytes().ok_or(Error::BadField { key: "nodes6" })?;
        out.nodes6 = decode_nodes(b, NODE_V6_LEN, "nodes6")?;
    }
    if let Some(n) = r.get("values") {
        let list = n.as_list().ok_or(Error::BadField { key: "values" })?;
        if list.len() > MAX_VALUES {
            return Err(Error::TooMany {
                key: "values",
                len: list.len(),
                max: MAX_VALUES,
            });
        }
        let mut values = Vec::with_capacity(list.len());
        for v in list.iter() {
            let b = v.as_bytes().ok_or(Error::BadField { key: "values" })?;
            values.push(compact::decode(b).ok_or(Error::BadField { key: "values" })?);
        }
        out.values = values;
    }
    if r.get("token").is_some() {
        out.token = Some(bounded_bytes(&r, "token", MAX_TOKEN_LEN)?.to_vec());
    }
    if let Some(n) = r.get("samples") {
        let b = n.as_bytes().ok_or(Error::BadField { key: "samples" })?;
        if !b.len().is_multiple_of(20) {
            return Err(Error::BadField { key: "samples" });
        }
        if b.len() / 20 > MAX_SAMPLES {
            return Err(Error::TooMany {
                key: "samples",
                len: b.len() / 20,
                max: MAX_SAMPLES,
            });
        }
        out.samples = b
            .chunks_exact(20)
            .filter_map(Sha1Hash::from_slice)
            .collect();
    }
    if let Some(n) = r.get("interval") {
        out.interval = Some(n.as_int().ok_or(Error::BadField { key: "interval" })?);
    }
    if let Some(n) = r.get("num") {
        out.num = Some(n.as_int().ok_or(Error::BadField { key: "num" })?);
    }
    out.v = item_value(&r)?;
    out.bf_seeds = opt_array(&r, "BFsd")?.map(Bloom::from);
    out.bf_peers = opt_array(&r, "BFpe")?.map(Bloom::from);
    out.k = opt_array(&r, "k")?;
    out.sig = opt_array(&r, "sig")?;
    out.seq = opt_int(&r, "seq")?;
    Ok(out)
}

/// The raw bencoding of a BEP 44 `v`, at most [`MAX_ITEM_VALUE_LEN`] bytes.
fn item_value(dict: &Dict<'_>) -> Result<Option<Vec<u8>>, Error> {
    let Some(n) = dict.get("v") else {
        return Ok(None);
    };
    let raw = n.raw();
    if raw.len() > MAX_ITEM_VALUE_LEN {
        return Err(Error::TooMany {
            key: "v",
            len: raw.len(),
            max: MAX_ITEM_VALUE_LEN,
        });
    }
    Ok(Some(raw.to_vec()))
}

fn opt_int(dict: &Dict<'_>, key: &'static str) -> Result<Option<i64>, Error> {
    match dict.get(key) {
        None => Ok(None),
        Some(n) => n.as_int().map(Some).ok_or(Error::BadField { key }),
    }
}

fn opt_array<const N: usize>(dict: &Dict<'_>, key: &'static str) -> Result<Option<[u8; N]>, Error> {
    match dict.get(key) {
        None => Ok(None),
        Some(n) => n
            .as_bytes()
            .and_then(|b| <[u8; N]>::try_from(b).ok())
            .map(Some)
            .ok_or(Error::BadField { key }),
    }
}

fn decode_error(dict: &Dict<'_>) -> Result<Body, Error> {
    let e = dict.get_list("e").ok_or(Error::BadField { key: "e" })?;
    let code = e
        .get(0)
        .and_then(|n| n.as_int())
        .ok_or(Error::BadField { key: "e" })?;
    let message = e.get(1).and_then(|n| n.as_bytes()).unwrap_or_default();
    if message.len() > MAX_ERROR_MESSAGE_LEN {
        return Err(Error::BadField { key: "e" });
    }
    Ok(Body::Error {
        code,
        message: message.to_vec(),
    })
}

/// The transaction id of a datagram that is a bencoded dictionary with `y=q` and a
/// bounded `t`, even when the rest of the query is malformed (to send a KRPC error back).
#[must_use]
pub fn query_tid(buf: &[u8]) -> Option<Vec<u8>> {
    if buf.len() > MAX_MESSAGE_LEN {
        return None;
    }
    let limits = Limits {
        max_depth: MAX_DEPTH,
        max_items: MAX_ITEMS,
    };
    let doc = lt_bencode::decode_with(buf, &limits).ok()?;
    let dict = doc.root().as_dict()?;
    if dict.get_bytes("y")? != b"q" {
        return None;
    }
    let t = dict.get_bytes("t")?;
    (t.len() <= MAX_TID_LEN).then(|| t.to_vec())
}

/// True for addresses BEP 42 exempts and tests use: loopback, private, link-local.
#[must_use]
pub fn is_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private() || v4.is_link_local(),
        IpAddr::V6(v6) => v6.is_loopback() || (v6.segments()[0] & 0xfe00) == 0xfc00,
    }
}

/// Whether a peer a node returned for a torrent can be dialled: a real port, not an
/// unspecified, multicast or broadcast address, and a loopback address only from a node on
/// this machine (a node elsewhere that names 127.0.0.1 would make us dial our own services).
pub(crate) fn plausible_peer(peer: SocketAddr, from: SocketAddr) -> bool {
    let ip = peer.ip();
    let broadcast = matches!(ip, IpAddr::V4(v4) if v4.is_broadcast());
    peer.port() != 0
        && !ip.is_unspecified()
        && !ip.is_multicast()
        && !broadcast
        && (!ip.is_loopback() || from.ip().is_loopback())
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV6};

    use quickcheck::{Arbitrary, Gen};
    use quickcheck_macros::quickcheck;

    use super::*;

    fn h(g: &mut Gen) -> Sha1Hash {
        let mut b = [0u8; 20];
        for x in &mut b {
            *x = u8::arbitrary(g);
        }
        Sha1Hash::new(b)
    }

    fn bytes(g: &mut Gen, max: usize) -> Vec<u8> {
        let n = usize::arbitrary(g) % (max + 1);
        (0..n).map(|_| u8::arbitrary(g)).collect()
    }

    fn v4(g: &mut Gen) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::from(u32::arbitrary(g)), u16::arbitrary(g)))
    }

    fn v6(g: &mut Gen) -> SocketAddr {
        SocketAddr::V6(SocketAddrV6::new(
            Ipv6Addr::from(u128::arbitrary(g)),
            u16::arbitrary(g),
            0,
            0,
        ))
    }

    /// A small bencoded value: a string, an integer or a list of both.
    fn value(g: &mut Gen) -> Vec<u8> {
        let mut out = Vec::new();
        match u8::arbitrary(g) % 3 {
            0 => write_bytes(&mut out, &bytes(g, 40)),
            1 => write_int(&mut out, i64::arbitrary(g)),
            _ => {
                out.push(b'l');
                write_bytes(&mut out, &bytes(g, 10));
                write_int(&mut out, i64::arbitrary(g));
                out.push(b'e');
            }
        }
        out
    }

    fn list<T>(g: &mut Gen, max: usize, f: impl Fn(&mut Gen) -> T) -> Vec<T> {
        let n = usize::arbitrary(g) % (max + 1);
        (0..n).map(|_| f(g)).collect()
    }

    #[derive(Debug, Clone)]
    struct Arb(Message);

    impl Arbitrary for Arb {
        fn arbitrary(g: &mut Gen) -> Self {
            let body = match u8::arbitrary(g) % 9 {
                0 => Body::Query(Query::Ping { id: h(g) }),
                1 => Body::Query(Query::FindNode {
                    id: h(g),
                    target: h(g),
                }),
                2 => Body::Query(Query::GetPeers {
                    id: h(g),
                    info_hash: h(g),
                    noseed: bool::arbitrary(g),
                    scrape: bool::arbitrary(g),
                }),
                3 => Body::Query(Query::AnnouncePeer {
                    id: h(g),
                    info_hash: h(g),
                    port: u16::arbitrary(g),
                    implied_port: bool::arbitrary(g),
                    token: bytes(g, MAX_TOKEN_LEN),
                    seed: bool::arbitrary(g),
                }),
                4 => Body::Query(Query::SampleInfohashes {
                    id: h(g),
                    target: h(g),
                }),
                7 => Body::Query(Query::Get {
                    id: h(g),
                    target: h(g),
                    seq: Option::arbitrary(g),
                }),
                8 => Body::Query(Query::Put {
                    id: h(g),
                    token: bytes(g, MAX_TOKEN_LEN),
                    item: PutItem {
                        v: value(g),
                        k: bool::arbitrary(g).then(|| [u8::arbitrary(g); 32]),
                        sig: bool::arbitrary(g).then(|| [u8::arbitrary(g); 64]),
                        seq: Option::arbitrary(g),
                        cas: Option::arbitrary(g),
                        salt: bool::arbitrary(g).then(|| bytes(g, MAX_SALT_LEN)),
                    },
                }),
                5 => Body::Error {
                    code: i64::arbitrary(g),
                    message: bytes(g, 40),
                },
                _ => Body::Response(Response {
                    id: h(g),
                    nodes: list(g, 8, |g| NodeInfo {
                        id: h(g),
                        addr: v4(g),
                    }),
                    nodes6: list(g, 8, |g| NodeInfo {
                        id: h(g),
                        addr: v6(g),
                    }),
                    values: list(g, 20, |g| if bool::arbitrary(g) { v4(g) } else { v6(g) }),
                    token: bool::arbitrary(g).then(|| bytes(g, MAX_TOKEN_LEN)),
                    samples: list(g, 10, h),
                    interval: Option::arbitrary(g),
                    num: Option::arbitrary(g),
                    v: bool::arbitrary(g).then(|| value(g)),
                    k: bool::arbitrary(g).then(|| [u8::arbitrary(g); 32]),
                    sig: bool::arbitrary(g).then(|| [u8::arbitrary(g); 64]),
                    seq: Option::arbitrary(g),
                    bf_seeds: bool::arbitrary(g).then(|| Bloom::from([u8::arbitrary(g); 256])),
                    bf_peers: bool::arbitrary(g).then(|| Bloom::from([u8::arbitrary(g); 256])),
                }),
            };
            Self(Message {
                tid: bytes(g, MAX_TID_LEN),
                version: bool::arbitrary(g).then(|| bytes(g, 4)),
                read_only: bool::arbitrary(g),
                ip: bool::arbitrary(g).then(|| v4(g)),
                body,
            })
        }
    }

    #[quickcheck]
    fn round_trip(m: Arb) -> bool {
        let bytes = m.0.encode();
        lt_bencode::decode_strict(&bytes).is_ok() && Message::decode(&bytes) == Ok(m.0)
    }

    #[quickcheck]
    fn arbitrary_bytes_never_panic(buf: Vec<u8>) -> bool {
        let _ = Message::decode(&buf);
        true
    }

    #[quickcheck]
    fn mutated_messages_never_panic(m: Arb, flips: Vec<(usize, u8)>) -> bool {
        let mut bytes = m.0.encode();
        for (i, b) in flips {
            if !bytes.is_empty() {
                let len = bytes.len();
                bytes[i % len] ^= b;
            }
        }
        let _ = Message::decode(&bytes);
        for cut in 0..bytes.len() {
            let _ = Message::decode(&bytes[..cut]);
        }
        true
    }

    #[test]
    fn bep5_examples() {
        let ping = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe";
        let m = Message::decode(ping).unwrap();
        assert_eq!(m.tid, b"aa");
        assert_eq!(
            m.body,
            Body::Query(Query::Ping {
                id: Sha1Hash::new(*b"abcdefghij0123456789")
            })
        );
        assert_eq!(m.encode(), ping);

        let ann = b"d1:ad2:id20:abcdefghij012345678912:implied_porti1e9:info_hash20:mnopqrstuvwxyz1234564:porti6881e5:token8:aoeusnthe1:q13:announce_peer1:t2:aa1:y1:qe";
        let m = Message::decode(ann).unwrap();
        assert!(matches!(
            m.body,
            Body::Query(Query::AnnouncePeer {
                implied_port: true,
                port: 6881,
                ..
            })
        ));
        assert_eq!(m.encode(), ann);

        let err = b"d1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee";
        let m = Message::decode(err).unwrap();
        assert_eq!(
            m.body,
            Body::Error {
                code: 201,
                message: b"A Generic Error Ocurred".to_vec()
            }
        );
        assert_eq!(m.encode(), err);

        let values = b"d1:rd2:id20:abcdefghij01234567895:token8:aoeusnth6:valuesl6:axje.u6:idhtnmee1:t2:aa1:y1:re";
        let m = Message::decode(values).unwrap();
        let Body::Response(r) = &m.body else {
            panic!("response")
        };
        assert_eq!(r.values.len(), 2);
        assert_eq!(m.encode(), values);
    }

    /// BEP 44 messages (the same bytes seed the `krpc_message` fuzz corpus) decode and
    /// re-encode byte for byte.
    #[test]
    fn bep44_messages() {
        let get = b"d1:ad2:id20:abcdefghij01234567893:seqi4e6:target20:xxxxxxxxxxxxxxxxxxxxe1:q3:get1:t2:aa1:y1:qe";
        let m = Message::decode(get).unwrap();
        assert!(matches!(
            m.body,
            Body::Query(Query::Get { seq: Some(4), .. })
        ));
        assert_eq!(m.encode(), get);

        let put = b"d1:ad2:id20:abcdefghij01234567895:token8:aoeusnth1:v12:Hello World!e1:q3:put1:t2:aa1:y1:qe";
        let m = Message::decode(put).unwrap();
        let Body::Query(Query::Put { item, .. }) = &m.body else {
            panic!("put")
        };
        assert_eq!(item.v, b"12:Hello World!");
        assert_eq!(m.encode(), put);

        let mut mutable = b"d1:ad3:casi1e2:id20:abcdefghij01234567891:k32:".to_vec();
        mutable.extend_from_slice(&[b'k'; 32]);
        mutable.extend_from_slice(b"4:salt6:foobar3:seqi2e3:sig64:");
        mutable.extend_from_slice(&[b's'; 64]);
        mutable.extend_from_slice(b"5:token8:aoeusnth1:vl1:ai1eee1:q3:put1:t2:aa1:y1:qe");
        let m = Message::decode(&mutable).unwrap();
        let Body::Query(Query::Put { item, .. }) = &m.body else {
            panic!("put")
        };
        assert_eq!(
            (item.cas, item.seq, item.salt.as_deref(), item.v.as_slice()),
            (Some(1), Some(2), Some(&b"foobar"[..]), &b"l1:ai1ee"[..])
        );
        assert_eq!(m.encode(), mutable);

        let mut reply = b"d1:rd2:id20:abcdefghij01234567891:k32:".to_vec();
        reply.extend_from_slice(&[b'k'; 32]);
        reply.extend_from_slice(b"3:seqi2e3:sig64:");
        reply.extend_from_slice(&[b's'; 64]);
        reply.extend_from_slice(b"5:token8:aoeusnth1:v12:Hello World!e1:t2:aa1:y1:re");
        let m = Message::decode(&reply).unwrap();
        let Body::Response(r) = &m.body else {
            panic!("response")
        };
        assert_eq!(
            (r.seq, r.k, r.v.as_deref()),
            (Some(2), Some([b'k'; 32]), Some(&b"12:Hello World!"[..]))
        );
        assert_eq!(m.encode(), reply);

        // BEP 33 (the same bytes seed the fuzz corpus).
        let scrape = b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz1234566:noseedi1e6:scrapei1ee1:q9:get_peers1:t2:aa1:y1:qe";
        let m = Message::decode(scrape).unwrap();
        assert!(matches!(
            m.body,
            Body::Query(Query::GetPeers {
                noseed: true,
                scrape: true,
                ..
            })
        ));
        assert_eq!(m.encode(), scrape);
        let mut reply = b"d1:rd4:BFpe256:".to_vec();
        reply.extend(0..=255u8);
        reply.extend_from_slice(b"4:BFsd256:");
        reply.extend((0..=255u8).rev());
        reply.extend_from_slice(b"2:id20:abcdefghij01234567895:token8:aoeusnthe1:t2:aa1:y1:re");
        let m = Message::decode(&reply).unwrap();
        let Body::Response(r) = &m.body else {
            panic!("response")
        };
        assert_eq!(r.bf_peers.as_ref().map(|b| b.as_bytes()[1]), Some(1));
        assert_eq!(r.bf_seeds.as_ref().map(|b| b.as_bytes()[1]), Some(254));
        assert_eq!(m.encode(), reply);

        // A salt over 64 bytes and a k of the wrong size are malformed.
        let bad_k =
            b"d1:ad2:id20:abcdefghij01234567891:k3:abc5:token1:x1:v1:xe1:q3:put1:t2:aa1:y1:qe";
        assert_eq!(Message::decode(bad_k), Err(Error::BadField { key: "k" }));
    }

    #[test]
    fn bounds_are_enforced() {
        assert!(matches!(
            Message::decode(&[b'd'; 3000]),
            Err(Error::MessageTooLong { .. })
        ));
        let id = [b'a'; 20];
        let mut r = Response::new(Sha1Hash::new(id));
        r.nodes = (0..33u8)
            .map(|i| NodeInfo {
                id: Sha1Hash::new([i; 20]),
                addr: SocketAddr::from(([1, 2, 3, i], 1)),
            })
            .collect();
        let m = Message {
            tid: b"aa".to_vec(),
            version: None,
            read_only: false,
            ip: None,
            body: Body::Response(r),
        };
        assert!(matches!(
            Message::decode(&m.encode()),
            Err(Error::TooMany { key: "nodes", .. })
        ));
        // nodes not a multiple of 26
        let bad = b"d1:rd2:id20:abcdefghij01234567895:nodes3:abce1:t2:aa1:y1:re";
        assert_eq!(Message::decode(bad), Err(Error::BadField { key: "nodes" }));
        let unknown = b"d1:ad2:id20:abcdefghij0123456789e1:q3:foo1:t2:aa1:y1:qe";
        assert_eq!(Message::decode(unknown), Err(Error::UnknownMethod));
        let long_tid = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t17:aaaaaaaaaaaaaaaaa1:y1:qe";
        assert_eq!(Message::decode(long_tid), Err(Error::BadField { key: "t" }));
        let bad_port = b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz1234564:porti70000e5:token1:xe1:q13:announce_peer1:t2:aa1:y1:qe";
        assert_eq!(
            Message::decode(bad_port),
            Err(Error::BadField { key: "port" })
        );
    }
}

#[cfg(test)]
mod plausible_tests {
    use super::plausible_peer;

    #[test]
    fn loopback_peers_only_from_loopback_nodes() {
        let node = "203.0.113.5:6881".parse().unwrap();
        let here = "127.0.0.1:6881".parse().unwrap();
        for (peer, from, want) in [
            ("198.51.100.7:51413", node, true),
            ("127.0.0.1:22", node, false),
            ("127.0.0.1:51413", here, true),
            ("198.51.100.7:0", node, false),
            ("0.0.0.0:51413", node, false),
            ("239.1.2.3:51413", node, false),
            ("255.255.255.255:51413", node, false),
        ] {
            assert_eq!(plausible_peer(peer.parse().unwrap(), from), want, "{peer}");
        }
    }
}
