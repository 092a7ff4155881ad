//! serde serialization into canonical bencoding.

use serde::ser::{self, Serialize};

use crate::Error;
use crate::value::{write_bytes, write_int};

/// Encodes `value` as canonical bencoding.
///
/// Struct fields and map entries are written in sorted key order whatever their order in
/// the type; `None` fields are left out; `bool` becomes `i0e`/`i1e`; byte slices under
/// `serde_bytes` become strings. Floats, integers outside `i64` and non-string map keys
/// are errors.
///
/// ```
/// #[derive(serde::Serialize)]
/// struct Msg<'a> { y: &'a str, t: &'a str, comment: Option<&'a str> }
/// let bytes = lt_bencode::to_bytes(&Msg { y: "q", t: "aa", comment: None }).unwrap();
/// assert_eq!(bytes, b"d1:t2:aa1:y1:qe");
/// ```
///
/// # Errors
/// A value bencoding cannot represent, or a `Serialize` impl that failed.
pub fn to_bytes<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, Error> {
    let mut ser = Serializer { out: Vec::new() };
    value.serialize(&mut ser)?;
    Ok(ser.out)
}

struct Serializer {
    out: Vec<u8>,
}

fn unsupported(what: &str) -> Error {
    Error::Message(format!("bencode cannot represent {what}"))
}

impl<'s> ser::Serializer for &'s mut Serializer {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Seq<'s>;
    type SerializeTuple = Seq<'s>;
    type SerializeTupleStruct = Seq<'s>;
    type SerializeTupleVariant = Seq<'s>;
    type SerializeMap = Map<'s>;
    type SerializeStruct = Map<'s>;
    type SerializeStructVariant = Map<'s>;

    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        write_int(&mut self.out, i64::from(v));
        Ok(())
    }
    fn serialize_i8(self, v: i8) -> Result<(), Error> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i16(self, v: i16) -> Result<(), Error> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i32(self, v: i32) -> Result<(), Error> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i64(self, v: i64) -> Result<(), Error> {
        write_int(&mut self.out, v);
        Ok(())
    }
    fn serialize_u8(self, v: u8) -> Result<(), Error> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_u16(self, v: u16) -> Result<(), Error> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_u32(self, v: u32) -> Result<(), Error> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_u64(self, v: u64) -> Result<(), Error> {
        let v = i64::try_from(v).map_err(|_| unsupported("an integer above i64::MAX"))?;
        self.serialize_i64(v)
    }
    fn serialize_f32(self, _v: f32) -> Result<(), Error> {
        Err(unsupported("a float"))
    }
    fn serialize_f64(self, _v: f64) -> Result<(), Error> {
        Err(unsupported("a float"))
    }
    fn serialize_char(self, v: char) -> Result<(), Error> {
        self.serialize_str(v.encode_utf8(&mut [0; 4]))
    }
    fn serialize_str(self, v: &str) -> Result<(), Error> {
        self.serialize_bytes(v.as_bytes())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Error> {
        write_bytes(&mut self.out, v);
        Ok(())
    }
    fn serialize_none(self) -> Result<(), Error> {
        // Nothing is written; a map entry whose value wrote nothing is dropped.
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Error> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Error> {
        Ok(())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Error> {
        Ok(())
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), Error> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.out.push(b'd');
        write_bytes(&mut self.out, variant.as_bytes());
        value.serialize(&mut *self)?;
        self.out.push(b'e');
        Ok(())
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Seq<'s>, Error> {
        self.out.push(b'l');
        Ok(Seq {
            ser: self,
            variant: false,
        })
    }
    fn serialize_tuple(self, len: usize) -> Result<Seq<'s>, Error> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(self, _name: &'static str, len: usize) -> Result<Seq<'s>, Error> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Seq<'s>, Error> {
        self.out.push(b'd');
        write_bytes(&mut self.out, variant.as_bytes());
        self.out.push(b'l');
        Ok(Seq {
            ser: self,
            variant: true,
        })
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Map<'s>, Error> {
        Ok(Map {
            ser: self,
            entries: Vec::new(),
            key: None,
            variant: false,
        })
    }
    fn serialize_struct(self, _name: &'static str, len: usize) -> Result<Map<'s>, Error> {
        self.serialize_map(Some(len))
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Map<'s>, Error> {
        self.out.push(b'd');
        write_bytes(&mut self.out, variant.as_bytes());
        Ok(Map {
            ser: self,
            entries: Vec::new(),
            key: None,
            variant: true,
        })
    }
}

/// A list being written in place.
#[doc(hidden)]
pub struct Seq<'s> {
    ser: &'s mut Serializer,
    /// Whether a `d<variant>` wrapper needs closing too.
    variant: bool,
}

impl Seq<'_> {
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        value.serialize(&mut *self.ser)
    }

    fn finish(self) -> Result<(), Error> {
        self.ser.out.push(b'e');
        if self.variant {
            self.ser.out.push(b'e');
        }
        Ok(())
    }
}

impl ser::SerializeSeq for Seq<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }
    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

impl ser::SerializeTuple for Seq<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }
    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

impl ser::SerializeTupleStruct for Seq<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }
    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

impl ser::SerializeTupleVariant for Seq<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }
    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

/// A dictionary whose entries are collected, then written in key order.
#[doc(hidden)]
pub struct Map<'s> {
    ser: &'s mut Serializer,
    /// (key, encoded value) pairs.
    entries: Vec<(Vec<u8>, Vec<u8>)>,
    key: Option<Vec<u8>>,
    /// Whether a `d<variant>` wrapper needs closing too.
    variant: bool,
}

impl Map<'_> {
    fn entry<T: Serialize + ?Sized>(&mut self, key: Vec<u8>, value: &T) -> Result<(), Error> {
        let mut inner = Serializer { out: Vec::new() };
        value.serialize(&mut inner)?;
        if !inner.out.is_empty() {
            self.entries.push((key, inner.out));
        }
        Ok(())
    }

    fn finish(mut self) -> Result<(), Error> {
        self.entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        if let Some(w) = self.entries.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(Error::Message(format!(
                "duplicate dictionary key {:?}",
                String::from_utf8_lossy(&w[0].0)
            )));
        }
        let out = &mut self.ser.out;
        out.push(b'd');
        for (k, v) in &self.entries {
            write_bytes(out, k);
            out.extend_from_slice(v);
        }
        out.push(b'e');
        if self.variant {
            out.push(b'e');
        }
        Ok(())
    }
}

impl ser::SerializeMap for Map<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        self.key = Some(key.serialize(KeySerializer)?);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        let key = self
            .key
            .take()
            .ok_or_else(|| Error::Message("map value without key".into()))?;
        self.entry(key, value)
    }
    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

impl ser::SerializeStruct for Map<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.entry(key.as_bytes().to_vec(), value)
    }
    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

impl ser::SerializeStructVariant for Map<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.entry(key.as_bytes().to_vec(), value)
    }
    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

/// Serializes a map key, which bencode requires to be a byte string.
struct KeySerializer;

fn key_error() -> Error {
    unsupported("a dictionary key that is not a string")
}

impl ser::Serializer for KeySerializer {
    type Ok = Vec<u8>;
    type Error = Error;
    type SerializeSeq = ser::Impossible<Vec<u8>, Error>;
    type SerializeTuple = ser::Impossible<Vec<u8>, Error>;
    type SerializeTupleStruct = ser::Impossible<Vec<u8>, Error>;
    type SerializeTupleVariant = ser::Impossible<Vec<u8>, Error>;
    type SerializeMap = ser::Impossible<Vec<u8>, Error>;
    type SerializeStruct = ser::Impossible<Vec<u8>, Error>;
    type SerializeStructVariant = ser::Impossible<Vec<u8>, Error>;

    fn serialize_str(self, v: &str) -> Result<Vec<u8>, Error> {
        Ok(v.as_bytes().to_vec())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<Vec<u8>, Error> {
        Ok(v.to_vec())
    }
    fn serialize_char(self, v: char) -> Result<Vec<u8>, Error> {
        Ok(v.to_string().into_bytes())
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<Vec<u8>, Error> {
        Ok(variant.as_bytes().to_vec())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<Vec<u8>, Error> {
        value.serialize(self)
    }
    fn serialize_bool(self, _v: bool) -> Result<Vec<u8>, Error> {
        Err(key_error())
    }
    fn serialize_i8(self, _v: i8) -> Result<Vec<u8>, Error> {
        Err(key_error())
    }
    fn serialize_i16(self, _v: i16) -> Result<Vec<u8>, Error> {
        Err(key_error())
    }
    fn serialize_i32(self, _v: i32) -> Result<Vec<u8>, Error> {
        Err(key_error())
    }
    fn serialize_i64(self, _v: i64) -> Result<Vec<u8>, Error> {
        Err(key_error())
    }
    fn serialize_u8(self, _v: u8) -> Result<Vec<u8>, Error> {
        Err(key_error())
    }
    fn serialize_u16(self, _v: u16) -> Result<Vec<u8>, Error> {
        Err(key_error())
    }
    fn serialize_u32(self, _v: u32) -> Result<Vec<u8>, Error> {
        Err(key_error())
    }
    fn serialize_u64(self, _v: u64) -> Result<Vec<u8>, Error> {
        Err(key_error())
    }
    fn serialize_f32(self, _v: f32) -> Result<Vec<u8>, Error> {
        Err(key_error())
    }
    fn serialize_f64(self, _v: f64) -> Result<Vec<u8>, Error> {
        Err(key_error())
    }
    fn serialize_none(self) -> Result<Vec<u8>, Error> {
        Err(key_error())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, _value: &T) -> Result<Vec<u8>, Error> {
        Err(key_error())
    }
    fn serialize_unit(self) -> Result<Vec<u8>, Error> {
        Err(key_error())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<Vec<u8>, Error> {
        Err(key_error())
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<Vec<u8>, Error> {
        Err(key_error())
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq, Error> {
        Err(key_error())
    }
    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple, Error> {
        Err(key_error())
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleStruct, Error> {
        Err(key_error())
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, Error> {
        Err(key_error())
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, Error> {
        Err(key_error())
    }
    fn serialize_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStruct, Error> {
        Err(key_error())
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, Error> {
        Err(key_error())
    }
}
