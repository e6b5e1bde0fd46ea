//! PostgreSQL ⇄ Arrow type mapping (see the table in the [module docs](super)).

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, IntervalUnit, TimeUnit};
use connector_core::{Error, ErrorKind, Location};
use serde::{Deserialize, Serialize};
use tokio_postgres::types::{Kind, Type};

/// How unconstrained `numeric` columns (no precision/scale in the type) are read.
///
/// Whatever the policy, a value that does not fit is an error naming the column: nothing is
/// rounded or truncated silently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum NumericPolicy {
    /// `Decimal128(38, scale)`. A value with more fractional digits than `scale`, or more than
    /// 38 digits in all, is an error. `NaN`/`±Infinity` are errors.
    Decimal128 {
        /// Digits after the decimal point.
        scale: i8,
    },
    /// `Decimal256(76, scale)`. Same rules, 76 digits.
    Decimal256 {
        /// Digits after the decimal point.
        scale: i8,
    },
    /// The exact decimal text PostgreSQL would print (`NaN`, `Infinity`, `-Infinity` included).
    Utf8,
    /// The nearest `f64` (correctly rounded from the exact decimal). Lossy by choice; `NaN` and
    /// `±Infinity` map to the float values.
    Float64,
}

impl Default for NumericPolicy {
    fn default() -> Self {
        Self::Decimal128 { scale: 10 }
    }
}

/// What to do with a column whose type has no mapping.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum UnknownTypePolicy {
    /// Fail the read with an [`ErrorKind::Unsupported`] error naming the column and its type.
    #[default]
    Error,
    /// Read the column as its PostgreSQL text form (`col::text` in the query) into `Utf8`.
    AsText,
}

/// How one result column is decoded from the binary COPY stream.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Decode {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    Oid,
    Money,
    Numeric(NumTarget),
    /// UTF-8 text (text, varchar, bpchar, name, citext, json, xml, enum labels, `::text` casts).
    Text,
    /// jsonb: one version byte (1) then UTF-8 text.
    Jsonb,
    Bytea,
    Date,
    Time,
    TimeTz,
    Timestamp,
    TimestampTz,
    Interval,
    Uuid,
    List(Box<Decode>, Arc<Field>),
}

/// The Arrow type unconstrained or constrained numerics decode into.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum NumTarget {
    D128(u8, i8),
    D256(u8, i8),
    Utf8,
    F64,
}

/// A resolved result column: its Arrow field, how to decode it, and whether the SELECT must cast
/// it to text first.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub data_type: DataType,
    pub decode: Decode,
    /// `Some("text")` or `Some("text[]")` when the column is read through a text cast.
    pub cast: Option<&'static str>,
}

/// Metadata key/value of the canonical Arrow UUID extension type.
pub(crate) const UUID_EXTENSION: (&str, &str) = ("ARROW:extension:name", "arrow.uuid");

/// `numeric(p, s)` from a type modifier, PostgreSQL 15 encoding (scale may be negative).
pub(crate) fn numeric_typmod(typmod: i32) -> Option<(i32, i32)> {
    if typmod < 4 {
        return None;
    }
    let t = typmod - 4;
    let precision = (t >> 16) & 0xffff;
    let scale = ((t & 0x7ff) ^ 1024) - 1024;
    Some((precision, scale))
}

fn numeric_target(typmod: i32, policy: NumericPolicy) -> NumTarget {
    match numeric_typmod(typmod) {
        Some((p, s)) if p <= 38 && (-128..=127).contains(&s) => NumTarget::D128(p as u8, s as i8),
        Some((p, s)) if p <= 76 && (-128..=127).contains(&s) => NumTarget::D256(p as u8, s as i8),
        // Wider than any Arrow decimal: exact text is the only lossless choice.
        Some(_) => NumTarget::Utf8,
        None => match policy {
            NumericPolicy::Decimal128 { scale } => NumTarget::D128(38, scale),
            NumericPolicy::Decimal256 { scale } => NumTarget::D256(76, scale),
            NumericPolicy::Utf8 => NumTarget::Utf8,
            NumericPolicy::Float64 => NumTarget::F64,
        },
    }
}

fn num_data_type(t: NumTarget) -> DataType {
    match t {
        NumTarget::D128(p, s) => DataType::Decimal128(p, s),
        NumTarget::D256(p, s) => DataType::Decimal256(p, s),
        NumTarget::Utf8 => DataType::Utf8,
        NumTarget::F64 => DataType::Float64,
    }
}

/// Types read through a `::text` cast: PostgreSQL's own text form is the documented value.
fn is_text_cast(ty: &Type) -> bool {
    matches!(
        *ty,
        Type::INET
            | Type::CIDR
            | Type::MACADDR
            | Type::MACADDR8
            | Type::BIT
            | Type::VARBIT
            | Type::CHAR
    )
}

/// Resolve a result column's type.
pub(crate) fn resolve(
    ty: &Type,
    typmod: i32,
    numeric: NumericPolicy,
    unknown: UnknownTypePolicy,
    column: &str,
) -> Result<Resolved, Error> {
    if let Some(r) = resolve_inner(ty, typmod, numeric, 0) {
        return Ok(r);
    }
    match unknown {
        UnknownTypePolicy::AsText => Ok(Resolved {
            data_type: DataType::Utf8,
            decode: Decode::Text,
            cast: Some("text"),
        }),
        UnknownTypePolicy::Error => Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "column {column:?} has type {}.{} (oid {}), which has no Arrow mapping; set \
                 unknown_types = \"as_text\" to read it as text, or cast it in a query",
                ty.schema(),
                ty.name(),
                ty.oid()
            ),
        )
        .with_location(Location::default().with_column(column))),
    }
}

#[allow(clippy::unnecessary_wraps)] // keeps resolve_inner's arms uniform
fn scalar(dt: DataType, d: Decode) -> Option<Resolved> {
    Some(Resolved {
        data_type: dt,
        decode: d,
        cast: None,
    })
}

fn resolve_inner(ty: &Type, typmod: i32, numeric: NumericPolicy, depth: u8) -> Option<Resolved> {
    if depth > 8 {
        return None;
    }
    if is_text_cast(ty) {
        return Some(Resolved {
            data_type: DataType::Utf8,
            decode: Decode::Text,
            cast: Some("text"),
        });
    }
    let ts = |tz: Option<&str>| DataType::Timestamp(TimeUnit::Microsecond, tz.map(Into::into));
    match *ty {
        Type::BOOL => return scalar(DataType::Boolean, Decode::Bool),
        Type::INT2 => return scalar(DataType::Int16, Decode::Int2),
        Type::INT4 => return scalar(DataType::Int32, Decode::Int4),
        Type::INT8 => return scalar(DataType::Int64, Decode::Int8),
        Type::FLOAT4 => return scalar(DataType::Float32, Decode::Float4),
        Type::FLOAT8 => return scalar(DataType::Float64, Decode::Float8),
        Type::OID => return scalar(DataType::UInt32, Decode::Oid),
        Type::MONEY => return scalar(DataType::Int64, Decode::Money),
        Type::NUMERIC => {
            let t = numeric_target(typmod, numeric);
            return scalar(num_data_type(t), Decode::Numeric(t));
        }
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::JSON | Type::XML => {
            return scalar(DataType::Utf8, Decode::Text);
        }
        Type::JSONB => return scalar(DataType::Utf8, Decode::Jsonb),
        Type::BYTEA => return scalar(DataType::Binary, Decode::Bytea),
        Type::DATE => return scalar(DataType::Date32, Decode::Date),
        Type::TIME => return scalar(DataType::Time64(TimeUnit::Microsecond), Decode::Time),
        Type::TIMETZ => return scalar(DataType::Time64(TimeUnit::Microsecond), Decode::TimeTz),
        Type::TIMESTAMP => return scalar(ts(None), Decode::Timestamp),
        Type::TIMESTAMPTZ => return scalar(ts(Some("UTC")), Decode::TimestampTz),
        Type::INTERVAL => {
            return scalar(
                DataType::Interval(IntervalUnit::MonthDayNano),
                Decode::Interval,
            );
        }
        Type::UUID => return scalar(DataType::FixedSizeBinary(16), Decode::Uuid),
        _ => {}
    }
    match ty.kind() {
        Kind::Enum(_) => scalar(DataType::Utf8, Decode::Text),
        Kind::Domain(base) => resolve_inner(base, typmod, numeric, depth + 1),
        Kind::Simple if ty.name() == "citext" => scalar(DataType::Utf8, Decode::Text),
        Kind::Array(elem) => {
            let inner = resolve_inner(elem, typmod, numeric, depth + 1)?;
            if inner.cast.is_some() {
                let field = Arc::new(Field::new("item", DataType::Utf8, true));
                return Some(Resolved {
                    data_type: DataType::List(field.clone()),
                    decode: Decode::List(Box::new(Decode::Text), field),
                    cast: Some("text[]"),
                });
            }
            if matches!(inner.decode, Decode::List(..)) {
                return None;
            }
            let mut field = Field::new("item", inner.data_type, true);
            if inner.decode == Decode::Uuid {
                field = field.with_metadata(uuid_metadata());
            }
            let field = Arc::new(field);
            Some(Resolved {
                data_type: DataType::List(field.clone()),
                decode: Decode::List(Box::new(inner.decode), field),
                cast: None,
            })
        }
        _ => None,
    }
}

/// Metadata of an `arrow.uuid` field.
pub(crate) fn uuid_metadata() -> HashMap<String, String> {
    HashMap::from([(UUID_EXTENSION.0.to_owned(), UUID_EXTENSION.1.to_owned())])
}

/// The Arrow field of a resolved column.
pub(crate) fn field(name: &str, r: &Resolved, nullable: bool) -> Field {
    let f = Field::new(name, r.data_type.clone(), nullable);
    if r.decode == Decode::Uuid {
        f.with_metadata(uuid_metadata())
    } else {
        f
    }
}

/// The PostgreSQL column type (DDL) used when a table is created from an Arrow field.
pub(crate) fn ddl_type(field: &Field) -> Result<String, Error> {
    fn go(dt: &DataType, meta_uuid: bool, column: &str) -> Result<String, Error> {
        Ok(match dt {
            DataType::Boolean => "boolean".into(),
            DataType::Int8 | DataType::Int16 | DataType::UInt8 => "smallint".into(),
            DataType::Int32 | DataType::UInt16 => "integer".into(),
            DataType::Int64 | DataType::UInt32 => "bigint".into(),
            DataType::UInt64 => "numeric(20,0)".into(),
            DataType::Float16 | DataType::Float32 => "real".into(),
            DataType::Float64 => "double precision".into(),
            DataType::Decimal32(p, s)
            | DataType::Decimal64(p, s)
            | DataType::Decimal128(p, s)
            | DataType::Decimal256(p, s) => {
                format!("numeric({p},{s})")
            }
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "text".into(),
            DataType::FixedSizeBinary(16) if meta_uuid => "uuid".into(),
            DataType::Binary
            | DataType::LargeBinary
            | DataType::BinaryView
            | DataType::FixedSizeBinary(_) => "bytea".into(),
            DataType::Date32 | DataType::Date64 => "date".into(),
            DataType::Time32(_) | DataType::Time64(_) => "time".into(),
            DataType::Timestamp(_, None) => "timestamp".into(),
            DataType::Timestamp(_, Some(_)) => "timestamptz".into(),
            DataType::Interval(IntervalUnit::MonthDayNano) => "interval".into(),
            DataType::Dictionary(_, v) => go(v, false, column)?,
            DataType::List(f) | DataType::LargeList(f) => {
                let inner = go(f.data_type(), is_uuid_field(f), column)?;
                if inner.ends_with(']') {
                    return Err(unsupported_ddl(dt, column));
                }
                format!("{inner}[]")
            }
            other => return Err(unsupported_ddl(other, column)),
        })
    }
    go(field.data_type(), is_uuid_field(field), field.name())
}

fn unsupported_ddl(dt: &DataType, column: &str) -> Error {
    Error::new(
        ErrorKind::Unsupported,
        format!("column {column:?}: Arrow type {dt} has no PostgreSQL column type"),
    )
    .with_location(Location::default().with_column(column))
}

/// True for a field carrying the `arrow.uuid` extension.
pub(crate) fn is_uuid_field(f: &Field) -> bool {
    f.metadata().get(UUID_EXTENSION.0).map(String::as_str) == Some(UUID_EXTENSION.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_typmods() {
        // numeric(10,2): ((10 << 16) | 2) + 4
        assert_eq!(numeric_typmod((10 << 16 | 2) + 4), Some((10, 2)));
        // numeric(5,-2) (PostgreSQL 15): scale stored as 11-bit two's complement
        assert_eq!(
            numeric_typmod((5 << 16 | (0x7ff & -2i32)) + 4),
            Some((5, -2))
        );
        assert_eq!(numeric_typmod(-1), None);
        assert_eq!(numeric_target(-1, NumericPolicy::Utf8), NumTarget::Utf8);
        assert_eq!(
            numeric_target((50 << 16 | 3) + 4, NumericPolicy::Utf8),
            NumTarget::D256(50, 3)
        );
    }

    #[test]
    fn unknown_types_follow_policy() {
        let e = resolve(
            &Type::POINT,
            -1,
            NumericPolicy::default(),
            UnknownTypePolicy::Error,
            "p",
        )
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        assert!(e.to_string().contains("\"p\""));
        let r = resolve(
            &Type::POINT,
            -1,
            NumericPolicy::default(),
            UnknownTypePolicy::AsText,
            "p",
        )
        .unwrap();
        assert_eq!(r.cast, Some("text"));
        let r = resolve(
            &Type::INET_ARRAY,
            -1,
            NumericPolicy::default(),
            UnknownTypePolicy::Error,
            "a",
        )
        .unwrap();
        assert_eq!(r.cast, Some("text[]"));
    }
}
