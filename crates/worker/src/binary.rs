//! Binary attachments (protocol version 3) as serde sees them.
//!
//! Arguments: in a call with attachments, the object `{"$b":i}` stands for attachment `i`.
//! [`from_args`] runs the function's argument type over the JSON through [`De`], an adapter
//! that hands such an object to the type's visitor as borrowed bytes (`visit_borrowed_bytes`:
//! `serde_bytes::ByteBuf` copies them once, out of the read buffer) or, to a type that asked
//! for a sequence (a plain `Vec<u8>`), as a sequence of `u8`. Everything else is passed
//! through to `serde_json` as it is. Calls without attachments never come here.
//!
//! Results: [`Ser`] wraps `serde_json`'s serializer; `serialize_bytes` (`ByteBuf`,
//! `serde_bytes`' `Bytes`, `#[serde(with = "serde_bytes")]`) writes `{"$b":i}` and copies the
//! bytes once, into [`Staged`], which goes out after the line. Progress and events cannot carry
//! attachments: for them, bytes are an error.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::marker::PhantomData;

use comrade_protocol::json_plain as plain;
use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor,
};
use serde::ser::{self, Serialize, SerializeMap, Serializer};
use serde_json::value::RawValue;

type JsonError = serde_json::Error;

/// The name `serde_json` gives `RawValue`'s newtype, which it handles itself.
const RAW_VALUE_TOKEN: &str = "$serde_json::private::RawValue";

/// Strings at least this long are checked for [`plain`] text, nothing JSON escapes (shorter
/// ones are escaped as fast as they are checked).
const PLAIN_MIN: usize = 256;

/// Deserializes a call's `args` (JSON text) whose `{"$b":i}` objects stand for `bins[i]`.
pub(crate) fn from_args<'de, A: de::Deserialize<'de>>(
    text: &'de str,
    bins: &[&'de [u8]],
) -> Result<A, JsonError> {
    let mut json = serde_json::Deserializer::from_str(text);
    let value = A::deserialize(De {
        inner: &mut json,
        bins,
    })?;
    json.end()?;
    Ok(value)
}

/// A visitor that passes everything on to `visitor`, wrapping what it gets to look into (so
/// references at any depth are found), and turns `{"$b":i}` into bytes.
struct Wrap<'b, 'de, V> {
    visitor: V,
    bins: &'b [&'de [u8]],
    /// The visitor asked for a sequence: an attachment is visited as a sequence of `u8`.
    as_seq: bool,
}

impl<'b, 'de, V> Wrap<'b, 'de, V> {
    fn new(visitor: V, bins: &'b [&'de [u8]]) -> Self {
        Wrap {
            visitor,
            bins,
            as_seq: false,
        }
    }
}

macro_rules! forward_visit {
    ($($method:ident($ty:ty))*) => {$(
        fn $method<E: de::Error>(self, v: $ty) -> Result<Self::Value, E> {
            self.visitor.$method(v)
        }
    )*};
}

impl<'b, 'de, V: Visitor<'de>> Visitor<'de> for Wrap<'b, 'de, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.visitor.expecting(f)
    }

    forward_visit! {
        visit_bool(bool) visit_i8(i8) visit_i16(i16) visit_i32(i32) visit_i64(i64)
        visit_i128(i128) visit_u8(u8) visit_u16(u16) visit_u32(u32) visit_u64(u64)
        visit_u128(u128) visit_f32(f32) visit_f64(f64) visit_char(char) visit_str(&str)
        visit_borrowed_str(&'de str) visit_string(String) visit_bytes(&[u8])
        visit_borrowed_bytes(&'de [u8]) visit_byte_buf(Vec<u8>)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.visitor.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.visitor.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.visitor.visit_some(De {
            inner: d,
            bins: self.bins,
        })
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.visitor.visit_newtype_struct(De {
            inner: d,
            bins: self.bins,
        })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        self.visitor.visit_seq(SeqW {
            inner: seq,
            bins: self.bins,
        })
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Self::Value, A::Error> {
        self.visitor.visit_enum(EnumW {
            inner: data,
            bins: self.bins,
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let Some(key) = map.next_key_seed(KeySeed)? else {
            return self.visitor.visit_map(MapW {
                inner: map,
                bins: self.bins,
                replay: VecDeque::new(),
            });
        };
        let mut replay = VecDeque::new();
        if key == "$b" {
            let raw: &'de RawValue = map.next_value_seed(RawSeed)?;
            let index = raw
                .get()
                .parse::<usize>()
                .ok()
                .filter(|&i| i < self.bins.len() && !raw.get().starts_with('+'));
            match (index, map.next_key_seed(KeySeed)?) {
                (Some(i), None) => {
                    let bytes = self.bins[i];
                    return if self.as_seq {
                        de::value::SeqDeserializer::new(bytes.iter().copied())
                            .deserialize_any(self.visitor)
                    } else {
                        self.visitor.visit_borrowed_bytes(bytes)
                    };
                }
                (_, next) => {
                    replay.push_back(Pending::Key(key));
                    replay.push_back(Pending::Value(raw));
                    if let Some(next) = next {
                        replay.push_back(Pending::Key(next));
                    }
                }
            }
        } else {
            replay.push_back(Pending::Key(key));
        }
        self.visitor.visit_map(MapW {
            inner: map,
            bins: self.bins,
            replay,
        })
    }
}

/// A deserializer that reads `{"$b":i}` as attachment `i` (see the module docs), over
/// serde_json's deserializer or the ones it hands to visitors; errors are the inner one's.
pub(crate) struct De<'b, 'de, D> {
    inner: D,
    bins: &'b [&'de [u8]],
}

macro_rules! forward_plain {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
            self.inner.$method(visitor)
        }
    )*};
}

impl<'b, 'de, D: Deserializer<'de>> Deserializer<'de> for De<'b, 'de, D> {
    type Error = D::Error;

    forward_plain! {
        deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64
        deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64
        deserialize_u128 deserialize_f32 deserialize_f64 deserialize_char deserialize_str
        deserialize_string deserialize_unit deserialize_identifier deserialize_ignored_any
    }

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.inner.deserialize_any(Wrap::new(visitor, self.bins))
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.inner.deserialize_any(Wrap::new(visitor, self.bins))
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.inner.deserialize_any(Wrap::new(visitor, self.bins))
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        let mut wrap = Wrap::new(visitor, self.bins);
        wrap.as_seq = true;
        self.inner.deserialize_any(wrap)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.inner.deserialize_option(Wrap::new(visitor, self.bins))
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.inner.deserialize_unit_struct(name, visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        if name == RAW_VALUE_TOKEN {
            return self.inner.deserialize_newtype_struct(name, visitor);
        }
        self.inner
            .deserialize_newtype_struct(name, Wrap::new(visitor, self.bins))
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        let mut wrap = Wrap::new(visitor, self.bins);
        wrap.as_seq = true;
        self.inner.deserialize_tuple(len, wrap)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.inner
            .deserialize_tuple_struct(name, len, Wrap::new(visitor, self.bins))
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.inner.deserialize_map(Wrap::new(visitor, self.bins))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.inner
            .deserialize_struct(name, fields, Wrap::new(visitor, self.bins))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.inner
            .deserialize_enum(name, variants, Wrap::new(visitor, self.bins))
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

/// Hands `seed` a wrapped deserializer.
struct SeedW<'b, 'de, S> {
    seed: S,
    bins: &'b [&'de [u8]],
}

impl<'b, 'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for SeedW<'b, 'de, S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<S::Value, D::Error> {
        self.seed.deserialize(De {
            inner: d,
            bins: self.bins,
        })
    }
}

struct SeqW<'b, 'de, A> {
    inner: A,
    bins: &'b [&'de [u8]],
}

impl<'b, 'de, A: SeqAccess<'de>> SeqAccess<'de> for SeqW<'b, 'de, A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        self.inner.next_element_seed(SeedW {
            seed,
            bins: self.bins,
        })
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

/// What [`Wrap::visit_map`] read ahead to tell a reference from an ordinary object; the
/// object's visitor gets it first.
enum Pending<'de> {
    Key(Cow<'de, str>),
    Value(&'de RawValue),
}

struct MapW<'b, 'de, A> {
    inner: A,
    bins: &'b [&'de [u8]],
    replay: VecDeque<Pending<'de>>,
}

impl<'b, 'de, A: MapAccess<'de>> MapAccess<'de> for MapW<'b, 'de, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        match self.replay.front() {
            Some(Pending::Key(_)) => {
                let Some(Pending::Key(key)) = self.replay.pop_front() else {
                    unreachable!()
                };
                seed.deserialize(KeyDeE::<A::Error>(KeyDe(key), PhantomData))
                    .map(Some)
            }
            _ => self.inner.next_key_seed(SeedW {
                seed,
                bins: self.bins,
            }),
        }
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, A::Error> {
        match self.replay.front() {
            Some(Pending::Value(_)) => {
                let Some(Pending::Value(raw)) = self.replay.pop_front() else {
                    unreachable!()
                };
                let mut json = serde_json::Deserializer::from_str(raw.get());
                seed.deserialize(De {
                    inner: &mut json,
                    bins: self.bins,
                })
                .map_err(de::Error::custom)
            }
            _ => self.inner.next_value_seed(SeedW {
                seed,
                bins: self.bins,
            }),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

struct EnumW<'b, 'de, A> {
    inner: A,
    bins: &'b [&'de [u8]],
}

impl<'b, 'de, A: EnumAccess<'de>> EnumAccess<'de> for EnumW<'b, 'de, A> {
    type Error = A::Error;
    type Variant = VariantW<'b, 'de, A::Variant>;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Self::Variant), A::Error> {
        let (value, variant) = self.inner.variant_seed(seed)?;
        Ok((
            value,
            VariantW {
                inner: variant,
                bins: self.bins,
            },
        ))
    }
}

struct VariantW<'b, 'de, A> {
    inner: A,
    bins: &'b [&'de [u8]],
}

impl<'b, 'de, A: VariantAccess<'de>> VariantAccess<'de> for VariantW<'b, 'de, A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), A::Error> {
        self.inner.unit_variant()
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, A::Error> {
        self.inner.newtype_variant_seed(SeedW {
            seed,
            bins: self.bins,
        })
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        self.inner.tuple_variant(len, Wrap::new(visitor, self.bins))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        self.inner
            .struct_variant(fields, Wrap::new(visitor, self.bins))
    }
}

/// Reads an object key (always a string in JSON), borrowed when it has no escapes.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(KeySeed)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

/// Captures an object's value as its JSON text.
struct RawSeed;

impl<'de> DeserializeSeed<'de> for RawSeed {
    type Value = &'de RawValue;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        <&'de RawValue as de::Deserialize<'de>>::deserialize(d)
    }
}

/// A key read ahead, handed back as serde_json hands keys: a string, which a numeric key type
/// (a `HashMap<u32, _>`) parses.
struct KeyDe<'de>(Cow<'de, str>);

macro_rules! key_number {
    ($($method:ident $visit:ident $ty:ty)*) => {$(
        fn $method<V: Visitor<'de>, E: de::Error>(self, visitor: V) -> Result<V::Value, E> {
            match self.0 .0.parse::<$ty>() {
                Ok(n) => visitor.$visit(n),
                Err(_) => Err(de::Error::invalid_type(de::Unexpected::Str(&self.0 .0), &visitor)),
            }
        }
    )*};
}

impl<'de> KeyDe<'de> {
    fn visit<V: Visitor<'de>, E: de::Error>(self, visitor: V) -> Result<V::Value, E> {
        match self.0 {
            Cow::Borrowed(s) => visitor.visit_borrowed_str(s),
            Cow::Owned(s) => visitor.visit_string(s),
        }
    }
}

/// [`KeyDe`] with the error type of the map it stands in.
struct KeyDeE<'de, E>(KeyDe<'de>, PhantomData<E>);

impl<'de, E: de::Error> Deserializer<'de> for KeyDeE<'de, E> {
    type Error = E;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        self.0.visit(visitor)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        match &*self.0 .0 {
            "true" => visitor.visit_bool(true),
            "false" => visitor.visit_bool(false),
            _ => self.0.visit(visitor),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, E> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, E> {
        let s: de::value::CowStrDeserializer<'de, E> =
            de::value::CowStrDeserializer::new(self.0 .0);
        s.deserialize_enum(name, variants, visitor)
    }

    serde::forward_to_deserialize_any! {
        char str string bytes byte_buf unit unit_struct seq tuple tuple_struct map struct
        identifier ignored_any
    }

    fn deserialize_i8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        KeyNum(self.0).i8(visitor)
    }
    fn deserialize_i16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        KeyNum(self.0).i16(visitor)
    }
    fn deserialize_i32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        KeyNum(self.0).i32(visitor)
    }
    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        KeyNum(self.0).i64(visitor)
    }
    fn deserialize_i128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        KeyNum(self.0).i128(visitor)
    }
    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        KeyNum(self.0).u8(visitor)
    }
    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        KeyNum(self.0).u16(visitor)
    }
    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        KeyNum(self.0).u32(visitor)
    }
    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        KeyNum(self.0).u64(visitor)
    }
    fn deserialize_u128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        KeyNum(self.0).u128(visitor)
    }
    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        KeyNum(self.0).f32(visitor)
    }
    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        KeyNum(self.0).f64(visitor)
    }
}

/// Numbers in object keys, parsed from the key's text as serde_json does.
struct KeyNum<'de>(KeyDe<'de>);

impl<'de> KeyNum<'de> {
    key_number! {
        i8 visit_i8 i8  i16 visit_i16 i16  i32 visit_i32 i32  i64 visit_i64 i64
        i128 visit_i128 i128  u8 visit_u8 u8  u16 visit_u16 u16  u32 visit_u32 u32
        u64 visit_u64 u64  u128 visit_u128 u128  f32 visit_f32 f32  f64 visit_f64 f64
    }
}

/// The attachments a value serialized: their bytes, copied once, back to back, and each one's
/// length.
#[derive(Default)]
pub(crate) struct Staged {
    pub(crate) lens: Vec<usize>,
    pub(crate) bytes: Vec<u8>,
    /// Bytes are refused (progress and events cannot carry attachments): the message says
    /// where they were.
    refuse: Option<&'static str>,
}

impl Staged {
    /// For a message that cannot carry attachments: serializing bytes fails with a message
    /// naming `what`.
    pub(crate) fn refusing(what: &'static str) -> Self {
        Staged {
            refuse: Some(what),
            ..Staged::default()
        }
    }
}

/// Appends `value` as JSON, `}` and `\n` to `out`, finishing the message line that starts at
/// `start` (its head, up to the value, is already there). Bytes in `value` become `{"$b":i}`
/// and are staged (see [`Staged`]). On an error the line is removed, head and all.
pub(crate) fn finish_line<T: Serialize + ?Sized>(
    out: &mut Vec<u8>,
    start: usize,
    value: &T,
    staged: &RefCell<Staged>,
) -> Result<(), JsonError> {
    let mut json = serde_json::Serializer::new(&mut *out);
    match value.serialize(Ser {
        inner: &mut json,
        staged,
    }) {
        Ok(()) => {
            out.extend_from_slice(b"}\n");
            Ok(())
        }
        Err(e) => {
            out.truncate(start);
            Err(e)
        }
    }
}

/// A serializer that writes bytes as `{"$b":i}` and stages them (see the module docs), and
/// passes everything else to `inner`.
struct Ser<'s, S> {
    inner: S,
    staged: &'s RefCell<Staged>,
}

/// `value`, serialized through [`Ser`].
struct W<'s, T: ?Sized> {
    value: &'s T,
    staged: &'s RefCell<Staged>,
}

impl<T: Serialize + ?Sized> Serialize for W<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(Ser {
            inner: s,
            staged: self.staged,
        })
    }
}

macro_rules! forward_ser {
    ($($method:ident($ty:ty))*) => {$(
        fn $method(self, v: $ty) -> Result<S::Ok, S::Error> {
            self.inner.$method(v)
        }
    )*};
}

impl<'s, S: Serializer> Serializer for Ser<'s, S> {
    type Ok = S::Ok;
    type Error = S::Error;
    type SerializeSeq = Comp<'s, S::SerializeSeq>;
    type SerializeTuple = Comp<'s, S::SerializeTuple>;
    type SerializeTupleStruct = Comp<'s, S::SerializeTupleStruct>;
    type SerializeTupleVariant = Comp<'s, S::SerializeTupleVariant>;
    type SerializeMap = Comp<'s, S::SerializeMap>;
    type SerializeStruct = Comp<'s, S::SerializeStruct>;
    type SerializeStructVariant = Comp<'s, S::SerializeStructVariant>;

    forward_ser! {
        serialize_bool(bool) serialize_i8(i8) serialize_i16(i16) serialize_i32(i32)
        serialize_i64(i64) serialize_i128(i128) serialize_u8(u8) serialize_u16(u16)
        serialize_u32(u32) serialize_u64(u64) serialize_u128(u128) serialize_f32(f32)
        serialize_f64(f64) serialize_char(char)
        serialize_unit_struct(&'static str)
    }

    /// A long string with nothing JSON escapes (a payload sent back, say) is written as it is,
    /// as a raw value, instead of through `serde_json`'s escaping, which looks at it one byte
    /// at a time (a tenth of the `md5` example worker's time on 3 KB payloads).
    fn serialize_str(self, v: &str) -> Result<S::Ok, S::Error> {
        if v.len() < PLAIN_MIN || !plain(v.as_bytes()) {
            return self.inner.serialize_str(v);
        }
        let mut quoted = String::with_capacity(v.len() + 2);
        quoted.push('"');
        quoted.push_str(v);
        quoted.push('"');
        let mut raw = self.inner.serialize_struct(RAW_VALUE_TOKEN, 1)?;
        ser::SerializeStruct::serialize_field(&mut raw, RAW_VALUE_TOKEN, &quoted)?;
        ser::SerializeStruct::end(raw)
    }

    fn serialize_bytes(self, v: &[u8]) -> Result<S::Ok, S::Error> {
        let index = {
            let mut staged = self.staged.borrow_mut();
            if let Some(what) = staged.refuse {
                return Err(ser::Error::custom(format!(
                    "{what} cannot carry binary data (only a function's result can)"
                )));
            }
            // One copy, into room made for exactly this attachment.
            staged.bytes.reserve_exact(v.len());
            staged.bytes.extend_from_slice(v);
            staged.lens.push(v.len());
            staged.lens.len() - 1
        };
        let mut map = self.inner.serialize_map(Some(1))?;
        map.serialize_entry("$b", &index)?;
        map.end()
    }

    fn serialize_none(self) -> Result<S::Ok, S::Error> {
        self.inner.serialize_none()
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<S::Ok, S::Error> {
        self.inner.serialize_some(&W {
            value,
            staged: self.staged,
        })
    }

    fn serialize_unit(self) -> Result<S::Ok, S::Error> {
        self.inner.serialize_unit()
    }

    fn serialize_unit_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
    ) -> Result<S::Ok, S::Error> {
        self.inner.serialize_unit_variant(name, index, variant)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        self.inner.serialize_newtype_struct(
            name,
            &W {
                value,
                staged: self.staged,
            },
        )
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        self.inner.serialize_newtype_variant(
            name,
            index,
            variant,
            &W {
                value,
                staged: self.staged,
            },
        )
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<Self::SerializeSeq, S::Error> {
        Ok(Comp::new(self.inner.serialize_seq(len)?, self.staged))
    }

    fn serialize_tuple(self, len: usize) -> Result<Self::SerializeTuple, S::Error> {
        Ok(Comp::new(self.inner.serialize_tuple(len)?, self.staged))
    }

    fn serialize_tuple_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleStruct, S::Error> {
        Ok(Comp::new(
            self.inner.serialize_tuple_struct(name, len)?,
            self.staged,
        ))
    }

    fn serialize_tuple_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleVariant, S::Error> {
        Ok(Comp::new(
            self.inner
                .serialize_tuple_variant(name, index, variant, len)?,
            self.staged,
        ))
    }

    fn serialize_map(self, len: Option<usize>) -> Result<Self::SerializeMap, S::Error> {
        Ok(Comp::new(self.inner.serialize_map(len)?, self.staged))
    }

    fn serialize_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStruct, S::Error> {
        Ok(Comp::new(
            self.inner.serialize_struct(name, len)?,
            self.staged,
        ))
    }

    fn serialize_struct_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStructVariant, S::Error> {
        Ok(Comp::new(
            self.inner
                .serialize_struct_variant(name, index, variant, len)?,
            self.staged,
        ))
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

/// The compound serializers of [`Ser`]: each element goes through [`Ser`] too.
struct Comp<'s, C> {
    inner: C,
    staged: &'s RefCell<Staged>,
}

impl<'s, C> Comp<'s, C> {
    fn new(inner: C, staged: &'s RefCell<Staged>) -> Self {
        Comp { inner, staged }
    }

    fn wrap<'v, T: ?Sized>(&self, value: &'v T) -> W<'v, T>
    where
        's: 'v,
    {
        W {
            value,
            staged: self.staged,
        }
    }
}

impl<C: ser::SerializeSeq> ser::SerializeSeq for Comp<'_, C> {
    type Ok = C::Ok;
    type Error = C::Error;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), C::Error> {
        let w = self.wrap(value);
        self.inner.serialize_element(&w)
    }

    fn end(self) -> Result<C::Ok, C::Error> {
        self.inner.end()
    }
}

impl<C: ser::SerializeTuple> ser::SerializeTuple for Comp<'_, C> {
    type Ok = C::Ok;
    type Error = C::Error;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), C::Error> {
        let w = self.wrap(value);
        self.inner.serialize_element(&w)
    }

    fn end(self) -> Result<C::Ok, C::Error> {
        self.inner.end()
    }
}

impl<C: ser::SerializeTupleStruct> ser::SerializeTupleStruct for Comp<'_, C> {
    type Ok = C::Ok;
    type Error = C::Error;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), C::Error> {
        let w = self.wrap(value);
        self.inner.serialize_field(&w)
    }

    fn end(self) -> Result<C::Ok, C::Error> {
        self.inner.end()
    }
}

impl<C: ser::SerializeTupleVariant> ser::SerializeTupleVariant for Comp<'_, C> {
    type Ok = C::Ok;
    type Error = C::Error;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), C::Error> {
        let w = self.wrap(value);
        self.inner.serialize_field(&w)
    }

    fn end(self) -> Result<C::Ok, C::Error> {
        self.inner.end()
    }
}

impl<C: ser::SerializeMap> ser::SerializeMap for Comp<'_, C> {
    type Ok = C::Ok;
    type Error = C::Error;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), C::Error> {
        let w = self.wrap(key);
        self.inner.serialize_key(&w)
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), C::Error> {
        let w = self.wrap(value);
        self.inner.serialize_value(&w)
    }

    fn end(self) -> Result<C::Ok, C::Error> {
        self.inner.end()
    }
}

impl<C: ser::SerializeStruct> ser::SerializeStruct for Comp<'_, C> {
    type Ok = C::Ok;
    type Error = C::Error;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), C::Error> {
        let w = self.wrap(value);
        self.inner.serialize_field(key, &w)
    }

    fn skip_field(&mut self, key: &'static str) -> Result<(), C::Error> {
        self.inner.skip_field(key)
    }

    fn end(self) -> Result<C::Ok, C::Error> {
        self.inner.end()
    }
}

impl<C: ser::SerializeStructVariant> ser::SerializeStructVariant for Comp<'_, C> {
    type Ok = C::Ok;
    type Error = C::Error;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), C::Error> {
        let w = self.wrap(value);
        self.inner.serialize_field(key, &w)
    }

    fn skip_field(&mut self, key: &'static str) -> Result<(), C::Error> {
        self.inner.skip_field(key)
    }

    fn end(self) -> Result<C::Ok, C::Error> {
        self.inner.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // What `finish_line` writes for `value`, after a line start of `{"v":`.
    fn line<T: Serialize + ?Sized>(value: &T) -> String {
        let mut out = b"{\"v\":".to_vec();
        let staged = RefCell::new(Staged::default());
        finish_line(&mut out, 0, value, &staged).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn long_strings_come_out_as_serde_json_writes_them() {
        let long = "abc".repeat(1024);
        let mut cases = vec![long.clone(), "é€😀".repeat(200), "x".repeat(PLAIN_MIN - 1)];
        // Each character JSON escapes, at each position in an 8-byte word and in the tail.
        for c in ['"', '\\', '\n', '\u{0}', '\u{1f}'] {
            for at in [0, 3, 7, 8, 300, long.len() - 1] {
                let mut s = long.clone();
                s.replace_range(at..at + 1, &c.to_string());
                cases.push(s);
            }
        }
        for s in &cases {
            let want = format!("{{\"v\":{}}}\n", serde_json::to_string(s).unwrap());
            assert_eq!(line(s), want);
            let pair = (s.as_str(), "digest");
            let want = format!("{{\"v\":{}}}\n", serde_json::to_string(&pair).unwrap());
            assert_eq!(line(&pair), want);
        }
        assert!(plain(long.as_bytes()));
        assert!(plain("\u{7f}~ \u{80}".repeat(100).as_bytes()));
        assert!(!plain(b"0123456789abcde\x1f"));
    }
}
