//! Typed Sparkplug values and the rules that turn protobuf fields into them and back.
//!
//! The proto has no signed fields. Int8/Int16/Int32 arrive in the uint32 `int_value`, either
//! sign-extended to 32 bits (Java Tahu, Ignition) or zero-extended at their own width (Python
//! Tahu); both decode to the same value because only the low bits are kept and reinterpreted.
//! UInt32 arrives in `int_value` (the specification) or `long_value` (Tahu, Ignition).

use bytes::Bytes;
use thiserror::Error;

use crate::datatype::DataType;
use crate::payload::{DataSet, PropertySet, Template};

/// A decoded value with its Sparkplug type.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Int8(i8),
    Int16(i16),
    Int32(i32),
    Int64(i64),
    UInt8(u8),
    UInt16(u16),
    UInt32(u32),
    UInt64(u64),
    Float(f32),
    Double(f64),
    Boolean(bool),
    String(String),
    /// Milliseconds since 1970-01-01 UTC.
    DateTime(u64),
    Text(String),
    Uuid(String),
    DataSet(DataSet),
    Bytes(Bytes),
    File(Bytes),
    Template(Template),
    PropertySet(PropertySet),
    PropertySetList(Vec<PropertySet>),
    Int8Array(Vec<i8>),
    Int16Array(Vec<i16>),
    Int32Array(Vec<i32>),
    Int64Array(Vec<i64>),
    UInt8Array(Vec<u8>),
    UInt16Array(Vec<u16>),
    UInt32Array(Vec<u32>),
    UInt64Array(Vec<u64>),
    FloatArray(Vec<f32>),
    DoubleArray(Vec<f64>),
    BooleanArray(Vec<bool>),
    StringArray(Vec<String>),
    /// Milliseconds since 1970-01-01 UTC.
    DateTimeArray(Vec<u64>),
}

/// The protobuf field that carried a value, before a datatype gives it meaning. A DATA metric
/// without `datatype` (what the specification recommends) holds one of these until the host
/// resolves it with the datatype from the birth.
#[derive(Clone, Debug, PartialEq)]
pub enum WireValue {
    Int(u32),
    Long(u64),
    Float(f32),
    Double(f64),
    Boolean(bool),
    String(String),
    Bytes(Bytes),
    /// An `extension_value`; its content is not part of the specification and is not decoded.
    Extension,
}

impl WireValue {
    /// The protobuf field name, for error messages.
    pub fn field_name(&self) -> &'static str {
        match self {
            WireValue::Int(_) => "int_value",
            WireValue::Long(_) => "long_value",
            WireValue::Float(_) => "float_value",
            WireValue::Double(_) => "double_value",
            WireValue::Boolean(_) => "boolean_value",
            WireValue::String(_) => "string_value",
            WireValue::Bytes(_) => "bytes_value",
            WireValue::Extension => "extension_value",
        }
    }

    /// Gives the field its meaning as `datatype`.
    ///
    /// Integer types accept `int_value` and `long_value` alike and keep the low bits of the
    /// type's width (so −1 sent as 0xFF, 0xFFFFFFFF or 0xFFFFFFFFFFFFFFFF is −1). Float and
    /// Double accept either float field. Any other combination is a [`ValueError::Mismatch`].
    pub fn into_value(self, datatype: DataType) -> Result<Value, ValueError> {
        use DataType as D;
        use WireValue as W;
        let mismatch = |wire: &WireValue| ValueError::Mismatch {
            datatype,
            field: wire.field_name(),
        };
        let bits = match &self {
            W::Int(v) => Some(u64::from(*v)),
            W::Long(v) => Some(*v),
            _ => None,
        };
        // Only the low bits of the declared width carry meaning: this is what makes both
        // sign conventions decode alike. The `as` casts below are the intended truncations.
        let int = |check_u32: bool| -> Result<u64, ValueError> {
            let b = bits.ok_or_else(|| mismatch(&self))?;
            if check_u32 && b > u64::from(u32::MAX) {
                return Err(ValueError::OutOfRange { datatype, value: b });
            }
            Ok(b)
        };
        Ok(match datatype {
            D::Int8 => Value::Int8(int(false)? as u8 as i8),
            D::Int16 => Value::Int16(int(false)? as u16 as i16),
            D::Int32 => Value::Int32(int(false)? as u32 as i32),
            D::Int64 => Value::Int64(int(false)? as i64),
            D::UInt8 => Value::UInt8(narrow(int(false)?, datatype)?),
            D::UInt16 => Value::UInt16(narrow(int(false)?, datatype)?),
            D::UInt32 => Value::UInt32(narrow(int(true)?, datatype)?),
            D::UInt64 => Value::UInt64(int(false)?),
            D::DateTime => Value::DateTime(int(false)?),
            D::Float => match self {
                W::Float(v) => Value::Float(v),
                W::Double(v) => Value::Float(v as f32),
                other => return Err(mismatch(&other)),
            },
            D::Double => match self {
                W::Double(v) => Value::Double(v),
                W::Float(v) => Value::Double(f64::from(v)),
                other => return Err(mismatch(&other)),
            },
            D::Boolean => match self {
                W::Boolean(v) => Value::Boolean(v),
                other => return Err(mismatch(&other)),
            },
            D::String | D::Text | D::UUID => match self {
                W::String(s) => match datatype {
                    D::String => Value::String(s),
                    D::Text => Value::Text(s),
                    _ => Value::Uuid(s),
                },
                other => return Err(mismatch(&other)),
            },
            D::Bytes | D::File => match self {
                W::Bytes(b) if datatype == D::Bytes => Value::Bytes(b),
                W::Bytes(b) => Value::File(b),
                other => return Err(mismatch(&other)),
            },
            dt if dt.is_array() => match self {
                W::Bytes(b) => unpack_array(dt, &b)?,
                other => return Err(mismatch(&other)),
            },
            _ => return Err(mismatch(&self)),
        })
    }
}

/// Unsigned widths below 64 bits must fit: a UInt8 of 300 is not a UInt8. A value sign-extended
/// from the type's own width cannot occur for unsigned types, so no truncation is applied.
fn narrow<T: TryFrom<u64>>(v: u64, datatype: DataType) -> Result<T, ValueError> {
    T::try_from(v).map_err(|_| ValueError::OutOfRange { datatype, value: v })
}

/// Why a field could not become a value of the declared datatype.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ValueError {
    #[error("datatype {datatype} cannot be carried in {field}")]
    Mismatch {
        datatype: DataType,
        field: &'static str,
    },
    #[error("value {value} is out of range for {datatype}")]
    OutOfRange { datatype: DataType, value: u64 },
    #[error("{datatype} bytes_value of {len} bytes is not a whole number of {size}-byte elements")]
    ArrayLength {
        datatype: DataType,
        len: usize,
        size: usize,
    },
    #[error("BooleanArray declares {count} values but carries only {len} bytes after the count")]
    BooleanArrayShort { count: u32, len: usize },
    #[error("StringArray is not terminated by a NUL byte")]
    StringArrayUnterminated,
    #[error("StringArray element {index} is not valid UTF-8")]
    StringArrayUtf8 { index: usize },
    #[error("StringArray element {index} contains a NUL byte and cannot be encoded")]
    StringArrayNul { index: usize },
    #[error("{datatype} is not allowed here")]
    NotAllowed { datatype: DataType },
}

impl Value {
    /// The Sparkplug datatype of this value.
    pub fn datatype(&self) -> DataType {
        use DataType as D;
        match self {
            Value::Int8(_) => D::Int8,
            Value::Int16(_) => D::Int16,
            Value::Int32(_) => D::Int32,
            Value::Int64(_) => D::Int64,
            Value::UInt8(_) => D::UInt8,
            Value::UInt16(_) => D::UInt16,
            Value::UInt32(_) => D::UInt32,
            Value::UInt64(_) => D::UInt64,
            Value::Float(_) => D::Float,
            Value::Double(_) => D::Double,
            Value::Boolean(_) => D::Boolean,
            Value::String(_) => D::String,
            Value::DateTime(_) => D::DateTime,
            Value::Text(_) => D::Text,
            Value::Uuid(_) => D::UUID,
            Value::DataSet(_) => D::DataSet,
            Value::Bytes(_) => D::Bytes,
            Value::File(_) => D::File,
            Value::Template(_) => D::Template,
            Value::PropertySet(_) => D::PropertySet,
            Value::PropertySetList(_) => D::PropertySetList,
            Value::Int8Array(_) => D::Int8Array,
            Value::Int16Array(_) => D::Int16Array,
            Value::Int32Array(_) => D::Int32Array,
            Value::Int64Array(_) => D::Int64Array,
            Value::UInt8Array(_) => D::UInt8Array,
            Value::UInt16Array(_) => D::UInt16Array,
            Value::UInt32Array(_) => D::UInt32Array,
            Value::UInt64Array(_) => D::UInt64Array,
            Value::FloatArray(_) => D::FloatArray,
            Value::DoubleArray(_) => D::DoubleArray,
            Value::BooleanArray(_) => D::BooleanArray,
            Value::StringArray(_) => D::StringArray,
            Value::DateTimeArray(_) => D::DateTimeArray,
        }
    }

    /// The value as a number, where it is one (booleans count as 0 and 1). Used by consumers that
    /// only want a float, such as the normalizer.
    pub fn as_f64(&self) -> Option<f64> {
        Some(match *self {
            Value::Int8(v) => f64::from(v),
            Value::Int16(v) => f64::from(v),
            Value::Int32(v) => f64::from(v),
            Value::Int64(v) => v as f64,
            Value::UInt8(v) => f64::from(v),
            Value::UInt16(v) => f64::from(v),
            Value::UInt32(v) => f64::from(v),
            Value::UInt64(v) => v as f64,
            Value::Float(v) => f64::from(v),
            Value::Double(v) => v,
            Value::Boolean(v) => f64::from(u8::from(v)),
            Value::DateTime(v) => v as f64,
            _ => return None,
        })
    }

    /// The scalar wire field for this value, as Tahu writes it: signed integers sign-extended
    /// to 32 bits in `int_value`, Int64/UInt32/UInt64/DateTime in `long_value`, arrays packed into
    /// `bytes_value`. Returns `None` for DataSet, Template and property sets, which have their
    /// own messages.
    pub fn to_wire(&self) -> Result<Option<WireValue>, ValueError> {
        use WireValue as W;
        // Sign extension to 32 bits is the intended encoding for the narrow signed types.
        Ok(Some(match self {
            Value::Int8(v) => W::Int(i32::from(*v) as u32),
            Value::Int16(v) => W::Int(i32::from(*v) as u32),
            Value::Int32(v) => W::Int(*v as u32),
            Value::Int64(v) => W::Long(*v as u64),
            Value::UInt8(v) => W::Int(u32::from(*v)),
            Value::UInt16(v) => W::Int(u32::from(*v)),
            Value::UInt32(v) => W::Long(u64::from(*v)),
            Value::UInt64(v) | Value::DateTime(v) => W::Long(*v),
            Value::Float(v) => W::Float(*v),
            Value::Double(v) => W::Double(*v),
            Value::Boolean(v) => W::Boolean(*v),
            Value::String(s) | Value::Text(s) | Value::Uuid(s) => W::String(s.clone()),
            Value::Bytes(b) | Value::File(b) => W::Bytes(b.clone()),
            Value::DataSet(_)
            | Value::Template(_)
            | Value::PropertySet(_)
            | Value::PropertySetList(_) => return Ok(None),
            array => W::Bytes(pack_array(array)?),
        }))
    }
}

fn chunks<const N: usize>(datatype: DataType, bytes: &[u8]) -> Result<Vec<[u8; N]>, ValueError> {
    if !bytes.len().is_multiple_of(N) {
        return Err(ValueError::ArrayLength {
            datatype,
            len: bytes.len(),
            size: N,
        });
    }
    Ok(bytes
        .chunks_exact(N)
        .map(|c| {
            let mut a = [0u8; N];
            a.copy_from_slice(c);
            a
        })
        .collect())
}

/// Unpacks an array datatype from `bytes_value` (specification §6.4.17 "Array Types").
fn unpack_array(datatype: DataType, b: &[u8]) -> Result<Value, ValueError> {
    use DataType as D;
    Ok(match datatype {
        D::Int8Array => Value::Int8Array(b.iter().map(|&x| x as i8).collect()),
        D::UInt8Array => Value::UInt8Array(b.to_vec()),
        D::Int16Array => Value::Int16Array(map_le(datatype, b, i16::from_le_bytes)?),
        D::UInt16Array => Value::UInt16Array(map_le(datatype, b, u16::from_le_bytes)?),
        D::Int32Array => Value::Int32Array(map_le(datatype, b, i32::from_le_bytes)?),
        D::UInt32Array => Value::UInt32Array(map_le(datatype, b, u32::from_le_bytes)?),
        D::Int64Array => Value::Int64Array(map_le(datatype, b, i64::from_le_bytes)?),
        D::UInt64Array => Value::UInt64Array(map_le(datatype, b, u64::from_le_bytes)?),
        D::DateTimeArray => Value::DateTimeArray(map_le(datatype, b, u64::from_le_bytes)?),
        D::FloatArray => Value::FloatArray(map_le(datatype, b, f32::from_le_bytes)?),
        D::DoubleArray => Value::DoubleArray(map_le(datatype, b, f64::from_le_bytes)?),
        D::BooleanArray => Value::BooleanArray(unpack_booleans(b)?),
        D::StringArray => Value::StringArray(unpack_strings(b)?),
        other => return Err(ValueError::NotAllowed { datatype: other }),
    })
}

fn map_le<const N: usize, T>(
    datatype: DataType,
    b: &[u8],
    f: fn([u8; N]) -> T,
) -> Result<Vec<T>, ValueError> {
    Ok(chunks::<N>(datatype, b)?.into_iter().map(f).collect())
}

/// BooleanArray: a 4-byte little-endian count, then the bits MSB-first (element 0 is bit 7 of
/// the first byte), the last byte padded.
fn unpack_booleans(b: &[u8]) -> Result<Vec<bool>, ValueError> {
    let Some((count, bits)) = b.split_first_chunk::<4>() else {
        return Err(ValueError::BooleanArrayShort {
            count: 0,
            len: b.len(),
        });
    };
    let count = u32::from_le_bytes(*count);
    let needed = (u64::from(count)).div_ceil(8);
    if (bits.len() as u64) < needed {
        return Err(ValueError::BooleanArrayShort {
            count,
            len: bits.len(),
        });
    }
    Ok((0..count as usize)
        .map(|i| bits[i / 8] & (0x80 >> (i % 8)) != 0)
        .collect())
}

/// StringArray: UTF-8 strings, each terminated by a NUL byte.
fn unpack_strings(b: &[u8]) -> Result<Vec<String>, ValueError> {
    if b.is_empty() {
        return Ok(Vec::new());
    }
    let Some(body) = b.strip_suffix(&[0]) else {
        return Err(ValueError::StringArrayUnterminated);
    };
    body.split(|&c| c == 0)
        .enumerate()
        .map(|(index, s)| {
            String::from_utf8(s.to_vec()).map_err(|_| ValueError::StringArrayUtf8 { index })
        })
        .collect()
}

fn pack_array(value: &Value) -> Result<Bytes, ValueError> {
    fn le<T: Copy, const N: usize>(items: &[T], f: fn(T) -> [u8; N]) -> Vec<u8> {
        items.iter().flat_map(|&x| f(x)).collect()
    }
    let out = match value {
        Value::Int8Array(v) => v.iter().map(|&x| x as u8).collect(),
        Value::UInt8Array(v) => v.clone(),
        Value::Int16Array(v) => le(v, i16::to_le_bytes),
        Value::UInt16Array(v) => le(v, u16::to_le_bytes),
        Value::Int32Array(v) => le(v, i32::to_le_bytes),
        Value::UInt32Array(v) => le(v, u32::to_le_bytes),
        Value::Int64Array(v) => le(v, i64::to_le_bytes),
        Value::UInt64Array(v) | Value::DateTimeArray(v) => le(v, u64::to_le_bytes),
        Value::FloatArray(v) => le(v, f32::to_le_bytes),
        Value::DoubleArray(v) => le(v, f64::to_le_bytes),
        Value::BooleanArray(v) => {
            let count = u32::try_from(v.len()).map_err(|_| ValueError::OutOfRange {
                datatype: DataType::BooleanArray,
                value: v.len() as u64,
            })?;
            let mut out = count.to_le_bytes().to_vec();
            out.resize(4 + v.len().div_ceil(8), 0);
            for (i, _) in v.iter().enumerate().filter(|(_, b)| **b) {
                out[4 + i / 8] |= 0x80 >> (i % 8);
            }
            out
        }
        Value::StringArray(v) => {
            let mut out = Vec::new();
            for (index, s) in v.iter().enumerate() {
                if s.contains('\0') {
                    return Err(ValueError::StringArrayNul { index });
                }
                out.extend_from_slice(s.as_bytes());
                out.push(0);
            }
            out
        }
        other => {
            return Err(ValueError::NotAllowed {
                datatype: other.datatype(),
            });
        }
    };
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(dt: DataType, w: WireValue) -> Value {
        w.into_value(dt).expect("valid value")
    }

    #[test]
    fn narrow_signed_ints_decode_from_both_conventions() {
        assert_eq!(
            decode(DataType::Int8, WireValue::Int(0xFF)),
            Value::Int8(-1)
        );
        assert_eq!(
            decode(DataType::Int8, WireValue::Int(u32::MAX)),
            Value::Int8(-1)
        );
        assert_eq!(
            decode(DataType::Int16, WireValue::Int(0xFFA9)),
            Value::Int16(-87)
        );
        assert_eq!(
            decode(DataType::Int16, WireValue::Int(0xFFFF_FFA9)),
            Value::Int16(-87)
        );
        assert_eq!(
            decode(DataType::Int32, WireValue::Long(u64::MAX)),
            Value::Int32(-1)
        );
        assert_eq!(
            decode(DataType::Int64, WireValue::Long(u64::MAX)),
            Value::Int64(-1)
        );
    }

    #[test]
    fn uint32_comes_from_int_or_long_and_must_fit() {
        assert_eq!(
            decode(DataType::UInt32, WireValue::Int(7)),
            Value::UInt32(7)
        );
        assert_eq!(
            decode(DataType::UInt32, WireValue::Long(4_294_967_295)),
            Value::UInt32(u32::MAX)
        );
        assert!(matches!(
            WireValue::Long(1 << 32).into_value(DataType::UInt32),
            Err(ValueError::OutOfRange { .. })
        ));
        assert!(matches!(
            WireValue::Int(256).into_value(DataType::UInt8),
            Err(ValueError::OutOfRange { .. })
        ));
    }

    #[test]
    fn spec_array_examples_unpack() {
        let v = |dt, bytes: &[u8]| decode(dt, WireValue::Bytes(Bytes::copy_from_slice(bytes)));
        assert_eq!(
            v(
                DataType::Int32Array,
                &[0x15, 0xCD, 0x5B, 0x07, 0xB1, 0x68, 0xDE, 0x3A]
            ),
            Value::Int32Array(vec![123_456_789, 987_654_321])
        );
        assert_eq!(
            v(DataType::Int8Array, &[0xE9, 0x7B]),
            Value::Int8Array(vec![-23, 123])
        );
        assert_eq!(
            v(
                DataType::FloatArray,
                &[0xA4, 0x70, 0x9D, 0x3F, 0x98, 0xAE, 0xB2, 0x42]
            ),
            Value::FloatArray(vec![1.23, 89.341])
        );
        assert_eq!(
            v(DataType::BooleanArray, &[0x0C, 0, 0, 0, 0x34, 0xD0]),
            Value::BooleanArray(vec![
                false, false, true, true, false, true, false, false, true, true, false, true
            ])
        );
        assert_eq!(
            v(DataType::StringArray, b"ABC\0hello\0"),
            Value::StringArray(vec!["ABC".into(), "hello".into()])
        );
        assert_eq!(
            v(DataType::UInt8Array, &[0x80, 0xFF]),
            Value::UInt8Array(vec![128, 255])
        );
    }

    #[test]
    fn spec_array_examples_pack() {
        let bits = Value::BooleanArray(vec![
            false, false, true, true, false, true, false, false, true, true, false, true,
        ]);
        assert_eq!(
            bits.to_wire().expect("encodes"),
            Some(WireValue::Bytes(Bytes::from_static(&[
                0x0C, 0, 0, 0, 0x34, 0xD0
            ])))
        );
        let strings = Value::StringArray(vec!["ABC".into(), "hello".into()]);
        assert_eq!(
            strings.to_wire().expect("encodes"),
            Some(WireValue::Bytes(Bytes::from_static(b"ABC\0hello\0")))
        );
    }

    #[test]
    fn malformed_arrays_are_errors() {
        let bad =
            |dt, bytes: &'static [u8]| WireValue::Bytes(Bytes::from_static(bytes)).into_value(dt);
        assert!(matches!(
            bad(DataType::Int32Array, &[1, 2, 3]),
            Err(ValueError::ArrayLength { .. })
        ));
        assert!(matches!(
            bad(DataType::BooleanArray, &[9, 0, 0, 0, 0xFF]),
            Err(ValueError::BooleanArrayShort { .. })
        ));
        assert!(matches!(
            bad(DataType::BooleanArray, &[1, 0]),
            Err(ValueError::BooleanArrayShort { .. })
        ));
        assert!(matches!(
            bad(DataType::StringArray, b"abc"),
            Err(ValueError::StringArrayUnterminated)
        ));
        assert!(matches!(
            bad(DataType::StringArray, &[0xFF, 0]),
            Err(ValueError::StringArrayUtf8 { index: 0 })
        ));
        assert!(Value::StringArray(vec!["a\0b".into()]).to_wire().is_err());
    }

    #[test]
    fn wrong_field_for_datatype_is_a_mismatch() {
        assert_eq!(
            WireValue::String("x".into()).into_value(DataType::Int32),
            Err(ValueError::Mismatch {
                datatype: DataType::Int32,
                field: "string_value"
            })
        );
        assert!(WireValue::Int(1).into_value(DataType::Boolean).is_err());
        assert!(WireValue::Int(1).into_value(DataType::DataSet).is_err());
    }
}
