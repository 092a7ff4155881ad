//! The owned [`Value`] tree and the canonical encoder.

use std::collections::BTreeMap;

use bytes::BufMut;

use crate::decode::{Kind, Node};

/// An owned bencode value (the manual's `entry`).
///
/// Dictionaries are `BTreeMap`s, so encoding always writes keys in the sorted order BEP 3
/// requires; a decoded dictionary with duplicate keys keeps the first.
///
/// ```
/// use lt_bencode::Value;
/// let v = Value::dict([("b", Value::from(1)), ("a", Value::from("x"))]);
/// assert_eq!(v.to_bytes(), b"d1:a1:x1:bi1ee");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Value {
    /// An integer.
    Int(i64),
    /// A byte string (not necessarily UTF-8).
    Bytes(Vec<u8>),
    /// A list.
    List(Vec<Self>),
    /// A dictionary with byte-string keys.
    Dict(BTreeMap<Vec<u8>, Self>),
}

impl Value {
    /// Builds a dictionary from key/value pairs.
    pub fn dict<K: Into<Vec<u8>>>(entries: impl IntoIterator<Item = (K, Self)>) -> Self {
        Self::Dict(entries.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    /// Encodes canonically into a new vector.
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode(&mut out);
        out
    }

    /// Encodes canonically into `out`.
    pub fn encode<B: BufMut>(&self, out: &mut B) {
        match self {
            Self::Int(i) => write_int(out, *i),
            Self::Bytes(b) => write_bytes(out, b),
            Self::List(items) => {
                out.put_u8(b'l');
                for item in items {
                    item.encode(out);
                }
                out.put_u8(b'e');
            }
            Self::Dict(entries) => {
                out.put_u8(b'd');
                for (k, v) in entries {
                    write_bytes(out, k);
                    v.encode(out);
                }
                out.put_u8(b'e');
            }
        }
    }

    /// The exact length of [`Value::to_bytes`].
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        match self {
            Self::Int(i) => int_len(*i) + 2,
            Self::Bytes(b) => bytes_len(b.len()),
            Self::List(items) => 2 + items.iter().map(Self::encoded_len).sum::<usize>(),
            Self::Dict(entries) => {
                2 + entries
                    .iter()
                    .map(|(k, v)| bytes_len(k.len()) + v.encoded_len())
                    .sum::<usize>()
            }
        }
    }

    /// The integer, if this is one.
    #[must_use]
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Self::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The byte string, if this is one.
    #[must_use]
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Self::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The byte string as UTF-8, if this is a string and valid UTF-8.
    #[must_use]
    pub fn as_str(&self) -> Option<&str> {
        self.as_bytes().and_then(|b| std::str::from_utf8(b).ok())
    }

    /// The list, if this is one.
    #[must_use]
    pub fn as_list(&self) -> Option<&[Self]> {
        match self {
            Self::List(l) => Some(l),
            _ => None,
        }
    }

    /// The dictionary, if this is one.
    #[must_use]
    pub fn as_dict(&self) -> Option<&BTreeMap<Vec<u8>, Self>> {
        match self {
            Self::Dict(d) => Some(d),
            _ => None,
        }
    }

    /// The value under `key` if this is a dictionary holding it.
    #[must_use]
    pub fn get(&self, key: impl AsRef<[u8]>) -> Option<&Self> {
        self.as_dict()?.get(key.as_ref())
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Self::Int(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Self::Bytes(v.as_bytes().to_vec())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Self::Bytes(v.into_bytes())
    }
}

impl From<&[u8]> for Value {
    fn from(v: &[u8]) -> Self {
        Self::Bytes(v.to_vec())
    }
}

impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Self::Bytes(v)
    }
}

impl From<Vec<Self>> for Value {
    fn from(v: Vec<Self>) -> Self {
        Self::List(v)
    }
}

impl From<Node<'_>> for Value {
    fn from(node: Node<'_>) -> Self {
        node.to_value()
    }
}

impl Node<'_> {
    /// Copies this subtree into an owned [`Value`].
    #[must_use]
    pub fn to_value(&self) -> Value {
        match self.kind() {
            Kind::Int => Value::Int(self.as_int().unwrap_or_default()),
            Kind::Bytes => Value::Bytes(self.as_bytes().unwrap_or_default().to_vec()),
            Kind::List => Value::List(
                self.as_list()
                    .into_iter()
                    .flatten()
                    .map(|n| n.to_value())
                    .collect(),
            ),
            Kind::Dict => {
                let mut map = BTreeMap::new();
                for (k, v) in self.as_dict().into_iter().flatten() {
                    map.entry(k.to_vec()).or_insert_with(|| v.to_value());
                }
                Value::Dict(map)
            }
        }
    }
}

/// Writes `i<v>e`.
pub fn write_int<B: BufMut + ?Sized>(out: &mut B, v: i64) {
    let mut digits = [0u8; 20];
    let n = format_u64(v.unsigned_abs(), &mut digits);
    out.put_u8(b'i');
    if v < 0 {
        out.put_u8(b'-');
    }
    out.put_slice(&digits[20 - n..]);
    out.put_u8(b'e');
}

/// Writes `<len>:<bytes>`.
pub fn write_bytes<B: BufMut + ?Sized>(out: &mut B, bytes: &[u8]) {
    let mut digits = [0u8; 20];
    let n = format_u64(bytes.len() as u64, &mut digits);
    out.put_slice(&digits[20 - n..]);
    out.put_u8(b':');
    out.put_slice(bytes);
}

/// The encoded length of a string of `len` bytes.
pub(crate) fn bytes_len(len: usize) -> usize {
    decimal_digits(len as u64) + 1 + len
}

/// The number of characters of `v` in decimal, sign included.
fn int_len(v: i64) -> usize {
    decimal_digits(v.unsigned_abs()) + usize::from(v < 0)
}

fn decimal_digits(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 10 {
        v /= 10;
        n += 1;
    }
    n
}

/// Writes the decimal digits of `v` right-aligned into `buf`, returning how many.
fn format_u64(mut v: u64, buf: &mut [u8; 20]) -> usize {
    let mut i = buf.len();
    loop {
        i -= 1;
        // `v % 10` is below 10, so the narrowing cannot truncate.
        buf[i] = b'0' + u8::try_from(v % 10).unwrap_or(0);
        v /= 10;
        if v == 0 {
            return buf.len() - i;
        }
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for Value {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self {
            Self::Int(i) => s.serialize_i64(*i),
            Self::Bytes(b) => s.serialize_bytes(b),
            Self::List(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Self::Dict(entries) => {
                let mut map = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(&RawKey(k), v)?;
                }
                map.end()
            }
        }
    }
}

/// A dictionary key serialized as bytes.
#[cfg(feature = "serde")]
struct RawKey<'a>(&'a [u8]);

#[cfg(feature = "serde")]
impl serde::Serialize for RawKey<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for Value {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

#[cfg(feature = "serde")]
struct ValueVisitor;

#[cfg(feature = "serde")]
impl<'de> serde::de::Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a bencode value")
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Value, E> {
        i64::try_from(v)
            .map(Value::Int)
            .map_err(|_| E::custom("integer above i64::MAX"))
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Int(i64::from(v)))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::List(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = BTreeMap::new();
        while let Some((k, v)) = map.next_entry::<serde_bytes_key::Key, Value>()? {
            entries.entry(k.0).or_insert(v);
        }
        Ok(Value::Dict(entries))
    }
}

/// Deserializes a dictionary key as raw bytes without depending on `serde_bytes`.
#[cfg(feature = "serde")]
mod serde_bytes_key {
    pub(super) struct Key(pub(super) Vec<u8>);

    impl<'de> serde::Deserialize<'de> for Key {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_bytes(KeyVisitor)
        }
    }

    struct KeyVisitor;

    impl serde::de::Visitor<'_> for KeyVisitor {
        type Value = Key;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a byte-string key")
        }

        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Key, E> {
            Ok(Key(v.as_bytes().to_vec()))
        }

        fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Key, E> {
            Ok(Key(v.to_vec()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode;

    #[test]
    fn encodes_canonically() {
        let v = Value::dict([
            ("zz", Value::from(vec![Value::from(-7), Value::from("")])),
            ("a", Value::from(i64::MIN)),
            ("m", Value::dict::<&str>([])),
        ]);
        let bytes = v.to_bytes();
        assert_eq!(
            bytes,
            b"d1:ai-9223372036854775808e1:mde2:zzli-7e0:ee".as_slice()
        );
        assert_eq!(v.encoded_len(), bytes.len());
        assert_eq!(decode(&bytes).unwrap().root().to_value(), v);
    }

    #[test]
    fn duplicate_keys_keep_first() {
        let doc = decode(b"d1:ai1e1:ai2ee").unwrap();
        assert_eq!(doc.root().to_value().get("a"), Some(&Value::Int(1)));
    }

    #[test]
    fn write_helpers() {
        let mut out = Vec::new();
        write_int(&mut out, 0);
        write_int(&mut out, i64::MAX);
        write_bytes(&mut out, b"spam");
        assert_eq!(out, b"i0ei9223372036854775807e4:spam");
    }
}
