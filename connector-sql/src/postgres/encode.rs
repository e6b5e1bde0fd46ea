//! Encoder of Arrow arrays into the binary `COPY … FROM STDIN` format, for a given target column
//! type. Incoming arrays are first cast (overflow-checked) to the "wire" Arrow type of the target
//! column, then written value by value.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, FixedSizeBinaryArray, GenericBinaryArray,
    GenericListArray, PrimitiveArray, StringArray,
};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Decimal256Type, Field, Float32Type, Float64Type,
    Int16Type, Int32Type, Int64Type, IntervalMonthDayNanoType, IntervalUnit, Time64MicrosecondType,
    TimeUnit, TimestampMicrosecondType, UInt32Type,
};
use arrow::util::display::FormatOptions;
use tokio_postgres::types::{Kind, Type};

use super::decode::{PG_EPOCH_DAYS, PG_EPOCH_MICROS};
use super::numeric;

/// The binary COPY header.
pub(crate) fn header(out: &mut Vec<u8>) {
    out.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
    out.extend_from_slice(&0i32.to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes());
}

/// The binary COPY trailer.
pub(crate) fn trailer(out: &mut Vec<u8>) {
    out.extend_from_slice(&(-1i16).to_be_bytes());
}

/// The base type of a domain (recursively).
pub(crate) fn base_type(ty: &Type) -> &Type {
    let mut t = ty;
    for _ in 0..8 {
        match t.kind() {
            Kind::Domain(b) => t = b,
            _ => break,
        }
    }
    t
}

fn is_texty(ty: &Type) -> bool {
    matches!(
        *ty,
        Type::TEXT
            | Type::VARCHAR
            | Type::BPCHAR
            | Type::NAME
            | Type::JSON
            | Type::JSONB
            | Type::XML
    ) || matches!(ty.kind(), Kind::Enum(_))
        || ty.name() == "citext"
}

fn is_int(dt: &DataType) -> bool {
    dt.is_integer()
}

fn bits(dt: &DataType) -> u32 {
    dt.primitive_width().map_or(64, |w| w as u32 * 8)
}

/// Whether values of `dt` can be written into a column of type `ty` without loss.
pub(crate) fn compatible(dt: &DataType, ty: &Type) -> bool {
    let ty = base_type(ty);
    if let DataType::Dictionary(_, v) = dt {
        return compatible(v, ty);
    }
    match *ty {
        Type::BOOL => matches!(dt, DataType::Boolean),
        Type::INT2 | Type::INT4 | Type::INT8 | Type::OID | Type::MONEY => is_int(dt),
        Type::FLOAT4 => {
            matches!(dt, DataType::Float16 | DataType::Float32) || (is_int(dt) && bits(dt) <= 16)
        }
        Type::FLOAT8 => dt.is_floating() || (is_int(dt) && bits(dt) <= 32),
        Type::NUMERIC => {
            is_int(dt) || matches!(dt, DataType::Decimal128(..) | DataType::Decimal256(..))
        }
        Type::BYTEA => matches!(
            dt,
            DataType::Binary
                | DataType::LargeBinary
                | DataType::BinaryView
                | DataType::FixedSizeBinary(_)
        ),
        Type::UUID => matches!(dt, DataType::FixedSizeBinary(16)),
        Type::DATE => matches!(dt, DataType::Date32 | DataType::Date64),
        Type::TIME => matches!(dt, DataType::Time32(_) | DataType::Time64(_)),
        Type::TIMESTAMP | Type::TIMESTAMPTZ => matches!(dt, DataType::Timestamp(..)),
        Type::INTERVAL => matches!(dt, DataType::Interval(_)),
        _ if is_texty(ty) => matches!(
            dt,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
        ),
        _ => match (ty.kind(), dt) {
            (Kind::Array(elem), DataType::List(f) | DataType::LargeList(f)) => {
                !matches!(base_type(elem).kind(), Kind::Array(_)) && compatible(f.data_type(), elem)
            }
            _ => false,
        },
    }
}

/// The Arrow type values are cast to before encoding for a column of type `ty`.
fn wire_type(dt: &DataType, ty: &Type) -> Option<DataType> {
    let ty = base_type(ty);
    let dt = match dt {
        DataType::Dictionary(_, v) => v.as_ref(),
        d => d,
    };
    Some(match *ty {
        Type::BOOL => DataType::Boolean,
        Type::INT2 => DataType::Int16,
        Type::INT4 => DataType::Int32,
        Type::INT8 | Type::MONEY => DataType::Int64,
        Type::OID => DataType::UInt32,
        Type::FLOAT4 => DataType::Float32,
        Type::FLOAT8 => DataType::Float64,
        Type::NUMERIC => match dt {
            DataType::Decimal128(..) | DataType::Decimal256(..) => dt.clone(),
            _ => DataType::Decimal256(76, 0),
        },
        Type::BYTEA => DataType::Binary,
        Type::UUID => DataType::FixedSizeBinary(16),
        Type::DATE => DataType::Date32,
        Type::TIME => DataType::Time64(TimeUnit::Microsecond),
        Type::TIMESTAMP => DataType::Timestamp(TimeUnit::Microsecond, None),
        Type::TIMESTAMPTZ => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        Type::INTERVAL => DataType::Interval(IntervalUnit::MonthDayNano),
        _ if is_texty(ty) => DataType::Utf8,
        _ => match (ty.kind(), dt) {
            (Kind::Array(elem), DataType::List(f) | DataType::LargeList(f)) => {
                let inner = wire_type(f.data_type(), elem)?;
                DataType::List(Arc::new(Field::new("item", inner, true)))
            }
            _ => return None,
        },
    })
}

/// One column ready to encode.
pub(crate) enum Enc {
    Bool(BooleanArray),
    I16(PrimitiveArray<Int16Type>),
    I32(PrimitiveArray<Int32Type>),
    I64(PrimitiveArray<Int64Type>),
    U32(PrimitiveArray<UInt32Type>),
    F32(PrimitiveArray<Float32Type>),
    F64(PrimitiveArray<Float64Type>),
    D128(PrimitiveArray<Decimal128Type>, i8),
    D256(PrimitiveArray<Decimal256Type>, i8),
    Text(StringArray, bool),
    Bytes(GenericBinaryArray<i32>),
    Uuid(FixedSizeBinaryArray),
    Date(PrimitiveArray<Date32Type>),
    Time(PrimitiveArray<Time64MicrosecondType>),
    Ts(PrimitiveArray<TimestampMicrosecondType>),
    Interval(PrimitiveArray<IntervalMonthDayNanoType>),
    List(GenericListArray<i32>, u32, Box<Enc>),
}

/// Sub-microsecond parts would be dropped by the cast to microseconds: refuse them.
fn check_micros(a: &ArrayRef) -> Result<(), String> {
    let bad = match a.data_type() {
        DataType::Timestamp(TimeUnit::Nanosecond, _) => a
            .as_primitive::<arrow::datatypes::TimestampNanosecondType>()
            .iter()
            .flatten()
            .any(|v| v % 1000 != 0),
        DataType::Time64(TimeUnit::Nanosecond) => a
            .as_primitive::<arrow::datatypes::Time64NanosecondType>()
            .iter()
            .flatten()
            .any(|v| v % 1000 != 0),
        DataType::Interval(IntervalUnit::MonthDayNano) => a
            .as_primitive::<IntervalMonthDayNanoType>()
            .iter()
            .flatten()
            .any(|v| v.nanoseconds % 1000 != 0),
        _ => false,
    };
    if bad {
        Err("has sub-microsecond values; PostgreSQL stores microseconds".into())
    } else {
        Ok(())
    }
}

impl Enc {
    /// Prepare `array` for a column of type `ty`.
    pub(crate) fn new(array: &ArrayRef, ty: &Type) -> Result<Self, String> {
        let base = base_type(ty);
        let wire = wire_type(array.data_type(), base).ok_or_else(|| {
            format!(
                "{} cannot be written into a {} column",
                array.data_type(),
                ty.name()
            )
        })?;
        check_micros(array)?;
        let opts = CastOptions {
            safe: false,
            format_options: FormatOptions::default(),
        };
        let a = if array.data_type() == &wire {
            array.clone()
        } else {
            cast_with_options(array, &wire, &opts)
                .map_err(|e| format!("cannot convert to {}: {e}", ty.name()))?
        };
        Ok(match wire {
            DataType::Boolean => Self::Bool(a.as_boolean().clone()),
            DataType::Int16 => Self::I16(a.as_primitive().clone()),
            DataType::Int32 => Self::I32(a.as_primitive().clone()),
            DataType::Int64 => Self::I64(a.as_primitive().clone()),
            DataType::UInt32 => Self::U32(a.as_primitive().clone()),
            DataType::Float32 => Self::F32(a.as_primitive().clone()),
            DataType::Float64 => Self::F64(a.as_primitive().clone()),
            DataType::Decimal128(_, s) => Self::D128(a.as_primitive().clone(), s),
            DataType::Decimal256(_, s) => Self::D256(a.as_primitive().clone(), s),
            DataType::Utf8 => Self::Text(a.as_string::<i32>().clone(), *base == Type::JSONB),
            DataType::Binary => Self::Bytes(a.as_binary::<i32>().clone()),
            DataType::FixedSizeBinary(_) => Self::Uuid(a.as_fixed_size_binary().clone()),
            DataType::Date32 => Self::Date(a.as_primitive().clone()),
            DataType::Time64(_) => Self::Time(a.as_primitive().clone()),
            DataType::Timestamp(..) => Self::Ts(a.as_primitive().clone()),
            DataType::Interval(_) => Self::Interval(a.as_primitive().clone()),
            DataType::List(_) => {
                let Kind::Array(elem) = base.kind() else {
                    return Err(format!("{} is not an array type", ty.name()));
                };
                let list = a.as_list::<i32>().clone();
                let child = Enc::new(list.values(), elem)?;
                Self::List(list, elem.oid(), Box::new(child))
            }
            other => return Err(format!("no encoder for {other}")),
        })
    }

    fn is_null(&self, i: usize) -> bool {
        match self {
            Self::Bool(a) => a.is_null(i),
            Self::I16(a) => a.is_null(i),
            Self::I32(a) => a.is_null(i),
            Self::I64(a) => a.is_null(i),
            Self::U32(a) => a.is_null(i),
            Self::F32(a) => a.is_null(i),
            Self::F64(a) => a.is_null(i),
            Self::D128(a, _) => a.is_null(i),
            Self::D256(a, _) => a.is_null(i),
            Self::Text(a, _) => a.is_null(i),
            Self::Bytes(a) => a.is_null(i),
            Self::Uuid(a) => a.is_null(i),
            Self::Date(a) => a.is_null(i),
            Self::Time(a) => a.is_null(i),
            Self::Ts(a) => a.is_null(i),
            Self::Interval(a) => a.is_null(i),
            Self::List(a, ..) => a.is_null(i),
        }
    }

    /// Write value `i` (length-prefixed, or −1 for NULL).
    #[inline]
    pub(crate) fn write(&self, i: usize, out: &mut Vec<u8>) -> Result<(), String> {
        if self.is_null(i) {
            out.extend_from_slice(&(-1i32).to_be_bytes());
            return Ok(());
        }
        macro_rules! fixed {
            ($v:expr) => {{
                let b = $v.to_be_bytes();
                out.extend_from_slice(&(b.len() as i32).to_be_bytes());
                out.extend_from_slice(&b);
            }};
        }
        match self {
            Self::Bool(a) => fixed!(u8::from(a.value(i))),
            Self::I16(a) => fixed!(a.value(i)),
            Self::I32(a) => fixed!(a.value(i)),
            Self::I64(a) => fixed!(a.value(i)),
            Self::U32(a) => fixed!(a.value(i)),
            Self::F32(a) => fixed!(a.value(i)),
            Self::F64(a) => fixed!(a.value(i)),
            Self::Date(a) => {
                let d = a.value(i);
                let d = if d == i32::MAX || d == i32::MIN {
                    d
                } else {
                    d.checked_sub(PG_EPOCH_DAYS).ok_or("date out of range")?
                };
                fixed!(d);
            }
            Self::Time(a) => fixed!(a.value(i)),
            Self::Ts(a) => {
                let t = a.value(i);
                let t = if t == i64::MAX || t == i64::MIN {
                    t
                } else {
                    t.checked_sub(PG_EPOCH_MICROS)
                        .ok_or("timestamp out of range")?
                };
                fixed!(t);
            }
            Self::Interval(a) => {
                let v = a.value(i);
                out.extend_from_slice(&16i32.to_be_bytes());
                out.extend_from_slice(&(v.nanoseconds / 1000).to_be_bytes());
                out.extend_from_slice(&v.days.to_be_bytes());
                out.extend_from_slice(&v.months.to_be_bytes());
            }
            Self::Uuid(a) => {
                let v = a.value(i);
                out.extend_from_slice(&(v.len() as i32).to_be_bytes());
                out.extend_from_slice(v);
            }
            Self::Text(a, jsonb) => {
                let v = a.value(i).as_bytes();
                if v.contains(&0) {
                    return Err(
                        "contains a NUL character, which PostgreSQL text cannot hold".into(),
                    );
                }
                let len = i32::try_from(v.len() + usize::from(*jsonb))
                    .map_err(|_| "value larger than 2 GiB")?;
                out.extend_from_slice(&len.to_be_bytes());
                if *jsonb {
                    out.push(1);
                }
                out.extend_from_slice(v);
            }
            Self::Bytes(a) => {
                let v = a.value(i);
                let len = i32::try_from(v.len()).map_err(|_| "value larger than 2 GiB")?;
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(v);
            }
            Self::D128(a, s) => {
                let at = out.len();
                out.extend_from_slice(&[0; 4]);
                numeric::encode_i128(a.value(i), *s, out);
                patch_len(out, at)?;
            }
            Self::D256(a, s) => {
                let at = out.len();
                out.extend_from_slice(&[0; 4]);
                numeric::encode_decimal_str(&a.value(i).to_string(), *s, out);
                patch_len(out, at)?;
            }
            Self::List(a, elem_oid, child) => {
                let at = out.len();
                out.extend_from_slice(&[0; 4]);
                let offs = a.value_offsets();
                let (start, end) = (offs[i] as usize, offs[i + 1] as usize);
                let n = end - start;
                let has_null = (start..end).any(|j| child.is_null(j));
                if n == 0 {
                    out.extend_from_slice(&0i32.to_be_bytes());
                    out.extend_from_slice(&0i32.to_be_bytes());
                    out.extend_from_slice(&elem_oid.to_be_bytes());
                } else {
                    out.extend_from_slice(&1i32.to_be_bytes());
                    out.extend_from_slice(&i32::from(has_null).to_be_bytes());
                    out.extend_from_slice(&elem_oid.to_be_bytes());
                    out.extend_from_slice(
                        &(i32::try_from(n).map_err(|_| "array too long")?).to_be_bytes(),
                    );
                    out.extend_from_slice(&1i32.to_be_bytes());
                    for j in start..end {
                        child.write(j, out)?;
                    }
                }
                patch_len(out, at)?;
            }
        }
        Ok(())
    }
}

fn patch_len(out: &mut [u8], at: usize) -> Result<(), String> {
    let len = i32::try_from(out.len() - at - 4).map_err(|_| "value larger than 2 GiB")?;
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
    Ok(())
}
