//! serde deserialization straight from the token array, borrowing strings from the input.

use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};

use crate::decode::{Kind, Node, Token};
use crate::{Error, Limits, decode_with};

/// Decodes a `T` from bencoded bytes, borrowing byte strings (`&[u8]`, `&str`) from `buf`.
///
/// Missing `Option` fields become `None`, unknown keys are skipped, `bool` is read from
/// `i0e`/`i1e`, and byte arrays such as `[u8; 20]` are read from a string of that length.
///
/// ```
/// #[derive(serde::Deserialize)]
/// struct Reply<'a> {
///     interval: u32,
///     #[serde(borrow, with = "serde_bytes")]
///     peers: &'a [u8],
///     #[serde(rename = "warning message")]
///     warning: Option<String>,
/// }
/// let r: Reply<'_> = lt_bencode::from_bytes(b"d8:intervali1800e5:peers6:abcdefe").unwrap();
/// assert_eq!((r.interval, r.peers, r.warning), (1800, &b"abcdef"[..], None));
/// ```
///
/// # Errors
/// Malformed bencoding (see [`crate::decode`]) or a value of the wrong shape for `T`.
pub fn from_bytes<'de, T: de::Deserialize<'de>>(buf: &'de [u8]) -> Result<T, Error> {
    from_bytes_with(buf, &Limits::default())
}

/// [`from_bytes`] with explicit decoding limits.
///
/// # Errors
/// As [`from_bytes`].
pub fn from_bytes_with<'de, T: de::Deserialize<'de>>(
    buf: &'de [u8],
    limits: &Limits,
) -> Result<T, Error> {
    let doc = decode_with(buf, limits)?;
    T::deserialize(NodeDeserializer {
        buf,
        tokens: doc.tokens(),
        idx: 0,
    })
}

/// Decodes a `T` from one node of an already decoded document.
///
/// # Errors
/// A value of the wrong shape for `T`.
pub fn from_node<'a, T: de::Deserialize<'a>>(node: Node<'a>) -> Result<T, Error> {
    let (buf, tokens, idx) = node.parts();
    T::deserialize(NodeDeserializer { buf, tokens, idx })
}

/// A serde `Deserializer` over one item of a decoded document.
struct NodeDeserializer<'de, 't> {
    buf: &'de [u8],
    tokens: &'t [Token],
    idx: usize,
}

impl<'de, 't> NodeDeserializer<'de, 't> {
    fn token(&self) -> Token {
        self.tokens[self.idx]
    }

    fn at(&self, idx: usize) -> Self {
        Self {
            buf: self.buf,
            tokens: self.tokens,
            idx,
        }
    }

    fn bytes(&self) -> Option<&'de [u8]> {
        let t = self.token();
        (t.kind() == Kind::Bytes).then(|| &self.buf[t.string_range()])
    }

    fn children(&self) -> Children<'de, 't> {
        Children {
            de: self.at(self.idx + 1),
            end: self.token().next(),
        }
    }

    fn mismatch(&self, expected: &str) -> Error {
        let t = self.token();
        let found = match t.kind() {
            Kind::Int => "integer",
            Kind::Bytes => "string",
            Kind::List => "list",
            Kind::Dict => "dictionary",
        };
        Error::Message(format!(
            "expected {expected}, found {found} at byte {}",
            t.start()
        ))
    }
}

/// The items of a list, or the alternating keys and values of a dictionary.
struct Children<'de, 't> {
    de: NodeDeserializer<'de, 't>,
    end: usize,
}

impl<'de, 't> Iterator for Children<'de, 't> {
    type Item = NodeDeserializer<'de, 't>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.de.idx >= self.end {
            return None;
        }
        let item = self.de.at(self.de.idx);
        self.de.idx = item.token().next();
        Some(item)
    }
}

impl<'de> de::SeqAccess<'de> for Children<'de, '_> {
    type Error = Error;
    fn next_element_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, Error> {
        self.next().map(|item| seed.deserialize(item)).transpose()
    }
}

impl<'de> de::MapAccess<'de> for Children<'de, '_> {
    type Error = Error;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        self.next().map(|key| seed.deserialize(key)).transpose()
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        // The parser guarantees every key has a value.
        let value = self
            .next()
            .ok_or_else(|| Error::Message("dictionary key without value".into()))?;
        seed.deserialize(value)
    }
}

/// The bytes of a string presented as a sequence of `u8`, for `[u8; N]` and tuples.
struct ByteSeq<'de> {
    bytes: std::slice::Iter<'de, u8>,
}

impl<'de> de::SeqAccess<'de> for ByteSeq<'de> {
    type Error = Error;
    fn next_element_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, Error> {
        self.bytes
            .next()
            .map(|&b| seed.deserialize(b.into_deserializer()))
            .transpose()
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.bytes.len())
    }
}

impl<'de> de::Deserializer<'de> for NodeDeserializer<'de, '_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let t = self.token();
        match t.kind() {
            Kind::Int => visitor.visit_i64(t.int_value(self.buf)),
            Kind::Bytes => visitor.visit_borrowed_bytes(&self.buf[t.string_range()]),
            Kind::List => visitor.visit_seq(self.children()),
            Kind::Dict => visitor.visit_map(self.children()),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let t = self.token();
        match (t.kind(), t.int_value(self.buf)) {
            (Kind::Int, 0) => visitor.visit_bool(false),
            (Kind::Int, 1) => visitor.visit_bool(true),
            _ => Err(self.mismatch("i0e or i1e")),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let bytes = self.bytes().ok_or_else(|| self.mismatch("string"))?;
        match std::str::from_utf8(bytes) {
            Ok(s) => visitor.visit_borrowed_str(s),
            Err(_) => visitor.visit_borrowed_bytes(bytes),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let bytes = self.bytes().ok_or_else(|| self.mismatch("string"))?;
        visitor.visit_borrowed_bytes(bytes)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_some(self)
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.token().kind() {
            Kind::List => visitor.visit_seq(self.children()),
            Kind::Bytes => visitor.visit_seq(ByteSeq {
                bytes: self.bytes().unwrap_or_default().iter(),
            }),
            _ => Err(self.mismatch("list")),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if self.token().kind() != Kind::Dict {
            return Err(self.mismatch("dictionary"));
        }
        visitor.visit_map(self.children())
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_map(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.token().kind() {
            Kind::Bytes => visitor.visit_enum(Enum {
                variant: self,
                value: None,
            }),
            Kind::Dict => {
                let mut children = self.children();
                match (children.next(), children.next(), children.next()) {
                    (Some(variant), Some(value), None) => visitor.visit_enum(Enum {
                        variant,
                        value: Some(value),
                    }),
                    _ => Err(self.mismatch("dictionary of one entry for an enum")),
                }
            }
            _ => Err(self.mismatch("string or dictionary for an enum")),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        // The subtree is skipped by its `next` index; nothing to walk.
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64
    }
}

/// An enum as a bare variant name, or a one-entry dictionary `{variant: value}`.
struct Enum<'de, 't> {
    variant: NodeDeserializer<'de, 't>,
    value: Option<NodeDeserializer<'de, 't>>,
}

impl<'de, 't> de::EnumAccess<'de> for Enum<'de, 't> {
    type Error = Error;
    type Variant = Variant<'de, 't>;
    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Self::Variant), Error> {
        let v = seed.deserialize(self.variant)?;
        Ok((v, Variant(self.value)))
    }
}

/// The value of an enum variant, absent for a bare variant name.
struct Variant<'de, 't>(Option<NodeDeserializer<'de, 't>>);

impl<'de> de::VariantAccess<'de> for Variant<'de, '_> {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        Ok(())
    }

    fn newtype_variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value, Error> {
        let value = self
            .0
            .ok_or_else(|| Error::Message("expected a variant with a value".into()))?;
        seed.deserialize(value)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Error> {
        let value = self
            .0
            .ok_or_else(|| Error::Message("expected a tuple variant".into()))?;
        de::Deserializer::deserialize_seq(value, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let value = self
            .0
            .ok_or_else(|| Error::Message("expected a struct variant".into()))?;
        de::Deserializer::deserialize_map(value, visitor)
    }
}
