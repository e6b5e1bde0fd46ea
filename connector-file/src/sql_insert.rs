//! SQL `INSERT` statements as an output format (write only: [`FileFormat::read`] returns
//! [`ErrorKind::Unsupported`]).
//!
//! ```sql
//! INSERT INTO "table" ("a", "b") VALUES
//! (1, 'x'),
//! (2, 'y');
//! ```
//!
//! Rows are batched [`SqlInsertFormat::rows_per_statement`] per statement (SQL Server accepts
//! at most 1000; Oracle gets one `INSERT ALL … SELECT 1 FROM DUAL` per batch). With
//! [`SqlInsertFormat::create_table`] the file starts with a `CREATE TABLE` for the Arrow schema.
//!
//! # Literals by dialect
//!
//! | Arrow                | PostgreSQL              | MySQL / MariaDB        | SQLite               | SQL Server              | Oracle                          |
//! |----------------------|-------------------------|------------------------|----------------------|-------------------------|---------------------------------|
//! | identifier           | `"a""b"`                | `` `a``b` ``           | `"a""b"`             | `[a]]b]`                | `"a""b"`                        |
//! | string               | `'it''s'`               | `'it\'s'` (backslash escapes) | `'it''s'`     | `N'it''s'`              | `'it''s'`                       |
//! | binary               | `'\x0aff'`              | `X'0aff'`              | `X'0aff'`            | `0x0aff`                | `HEXTORAW('0aff')`              |
//! | boolean              | `TRUE` / `FALSE`        | `TRUE` / `FALSE`       | `1` / `0`            | `1` / `0`               | `1` / `0`                       |
//! | date                 | `'2024-01-02'`          | same                   | same                 | same                    | `DATE '2024-01-02'`             |
//! | timestamp            | `'2024-01-02 03:04:05.000006'` (`+00` with a time zone) | same, UTC wall time without offset | same, `+00:00` with a time zone | same, `+00:00` with a time zone | `TIMESTAMP '…'` |
//! | NaN / ±infinity      | `'NaN'`, `'Infinity'`   | `NULL`                 | `NULL`, `9e999`      | `NULL`                  | `BINARY_DOUBLE_NAN`, `BINARY_DOUBLE_INFINITY` |
//! | decimal              | exact digits            | exact digits           | exact digits         | exact digits            | exact digits                    |
//! | list, struct, map    | JSON text               | JSON text              | JSON text            | JSON text               | JSON text                       |
//! | duration             | `'<n> microseconds'`    | integer in the column's unit | same           | same                    | same                            |
//!
//! Floats are written in Rust's shortest round-trip form, so they read back to the same value.
//! Text containing a NUL character cannot be stored by PostgreSQL and is rejected with
//! [`ErrorKind::InvalidInput`]; other dialects splice it in (MySQL `\\0`, SQL Server
//! `NCHAR(0)`, Oracle `CHR(0)`, SQLite a cast from a blob).
//! PostgreSQL output assumes `standard_conforming_strings = on` (the default since 9.1);
//! MySQL output assumes `NO_BACKSLASH_ESCAPES` is off (the default) and starts with
//! `SET NAMES utf8mb4;` so text arrives as UTF-8. Dates and timestamps outside years 1..9999
//! are rejected.

// Product names (PostgreSQL, MySQL, SQLite) in these docs are not code.
#![allow(clippy::doc_markdown)]

use std::fmt::Write as _;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, NaiveTime};
use connector_core::{Error, ErrorKind, Location, Result, SendableRecordBatchStream};
use serde::{Deserialize, Serialize};

use crate::excel::{hex, value_texts};
use crate::format::{ByteSource, FileFormat, FormatReadOptions, FormatWriter};

const NAME: &str = "sql_insert";

/// The SQL dialect statements are written for.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum SqlDialect {
    /// PostgreSQL.
    #[default]
    Postgres,
    /// MySQL and MariaDB.
    #[serde(alias = "mariadb")]
    MySql,
    /// SQLite.
    Sqlite,
    /// Microsoft SQL Server.
    SqlServer,
    /// Oracle Database.
    Oracle,
}

/// SQL `INSERT` output (see the [module docs](self)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default)]
pub struct SqlInsertFormat {
    /// Table to insert into.
    pub table: String,
    /// Schema (namespace) of the table, if any.
    pub schema: Option<String>,
    /// Dialect of the statements.
    pub dialect: SqlDialect,
    /// Rows per `INSERT` statement (at least 1; at most 1000 for SQL Server).
    pub rows_per_statement: usize,
    /// Start the output with a `CREATE TABLE` statement for the Arrow schema.
    pub create_table: bool,
}

impl Default for SqlInsertFormat {
    fn default() -> Self {
        Self {
            table: "data".to_owned(),
            schema: None,
            dialect: SqlDialect::default(),
            rows_per_statement: 500,
            create_table: false,
        }
    }
}

impl SqlInsertFormat {
    /// Statements for `table` in `dialect`.
    #[must_use]
    pub fn new(dialect: SqlDialect, table: impl Into<String>) -> Self {
        Self {
            table: table.into(),
            dialect,
            ..Self::default()
        }
    }

    /// Set the rows per statement.
    #[must_use]
    pub fn with_rows_per_statement(mut self, rows: usize) -> Self {
        self.rows_per_statement = rows;
        self
    }

    /// Emit a `CREATE TABLE` first.
    #[must_use]
    pub fn with_create_table(mut self, create: bool) -> Self {
        self.create_table = create;
        self
    }

    /// Qualify the table with a schema.
    #[must_use]
    pub fn with_schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = Some(schema.into());
        self
    }
}

fn invalid(message: impl Into<String>) -> Error {
    Error::invalid_input(message, Location::default())
        .with_connector(NAME)
        .with_operation("write")
}

impl SqlDialect {
    /// Quote an identifier, doubling the quote character inside it.
    pub fn quote_identifier(self, ident: &str) -> Result<String> {
        if ident.contains('\0') {
            return Err(invalid(format!(
                "identifier {ident:?} contains a NUL character"
            )));
        }
        Ok(match self {
            Self::Postgres | Self::Sqlite | Self::Oracle => {
                format!("\"{}\"", ident.replace('"', "\"\""))
            }
            Self::MySql => format!("`{}`", ident.replace('`', "``")),
            Self::SqlServer => format!("[{}]", ident.replace(']', "]]")),
        })
    }

    /// A string literal holding `s` exactly.
    pub fn string_literal(self, s: &str) -> Result<String> {
        match self {
            Self::Postgres => {
                if s.contains('\0') {
                    return Err(invalid("PostgreSQL text cannot contain a NUL character"));
                }
                Ok(format!("'{}'", s.replace('\'', "''")))
            }
            Self::MySql => {
                let mut out = String::with_capacity(s.len() + 2);
                out.push('\'');
                for ch in s.chars() {
                    match ch {
                        '\0' => out.push_str("\\0"),
                        '\n' => out.push_str("\\n"),
                        '\r' => out.push_str("\\r"),
                        '\\' => out.push_str("\\\\"),
                        '\'' => out.push_str("\\'"),
                        '"' => out.push_str("\\\""),
                        '\u{1a}' => out.push_str("\\Z"),
                        c => out.push(c),
                    }
                }
                out.push('\'');
                Ok(out)
            }
            Self::Sqlite => {
                if s.contains('\0') {
                    // SQLite stops reading SQL text at a NUL: go through a blob.
                    return Ok(format!("CAST(X'{}' AS TEXT)", hex(s.as_bytes())));
                }
                Ok(format!("'{}'", s.replace('\'', "''")))
            }
            Self::SqlServer => Ok(join_nul(
                s,
                |p| format!("N'{}'", p.replace('\'', "''")),
                "NCHAR(0)",
                " + ",
            )),
            Self::Oracle => Ok(join_nul(
                s,
                |p| format!("'{}'", p.replace('\'', "''")),
                "CHR(0)",
                " || ",
            )),
        }
    }

    /// A binary literal.
    #[must_use]
    pub fn binary_literal(self, b: &[u8]) -> String {
        match self {
            Self::Postgres => format!("'\\x{}'", hex(b)),
            Self::MySql | Self::Sqlite => format!("X'{}'", hex(b)),
            Self::SqlServer => format!("0x{}", hex(b)),
            Self::Oracle => format!("HEXTORAW('{}')", hex(b)),
        }
    }

    fn bool_literal(self, v: bool) -> &'static str {
        match (self, v) {
            (Self::Postgres | Self::MySql, true) => "TRUE",
            (Self::Postgres | Self::MySql, false) => "FALSE",
            (_, true) => "1",
            (_, false) => "0",
        }
    }

    fn non_finite(self, v: f64) -> &'static str {
        match self {
            Self::Postgres if v.is_nan() => "'NaN'",
            Self::Postgres if v > 0.0 => "'Infinity'",
            Self::Postgres => "'-Infinity'",
            Self::Sqlite if v.is_nan() => "NULL",
            Self::Sqlite if v > 0.0 => "9e999",
            Self::Sqlite => "-9e999",
            Self::Oracle if v.is_nan() => "BINARY_DOUBLE_NAN",
            Self::Oracle if v > 0.0 => "BINARY_DOUBLE_INFINITY",
            Self::Oracle => "-BINARY_DOUBLE_INFINITY",
            Self::MySql | Self::SqlServer => "NULL",
        }
    }

    /// The column type `CREATE TABLE` uses for an Arrow type.
    #[must_use]
    // One arm per (dialect, type) reads as the mapping table; merging equal arms would hide it.
    #[allow(clippy::match_same_arms)]
    pub fn column_type(self, dt: &DataType) -> String {
        use DataType as D;
        use SqlDialect as S;
        let s = match (self, dt) {
            (
                S::Sqlite,
                D::Boolean
                | D::Int8
                | D::Int16
                | D::Int32
                | D::Int64
                | D::UInt8
                | D::UInt16
                | D::UInt32
                | D::UInt64,
            ) => "INTEGER",
            (S::Sqlite, D::Float16 | D::Float32 | D::Float64) => "REAL",
            (S::Sqlite, D::Binary | D::LargeBinary | D::BinaryView | D::FixedSizeBinary(_)) => {
                "BLOB"
            }
            (
                S::Sqlite,
                D::Decimal32(..) | D::Decimal64(..) | D::Decimal128(..) | D::Decimal256(..),
            ) => "NUMERIC",
            (S::Sqlite, D::Duration(_)) => "INTEGER",
            (S::Sqlite, _) => "TEXT",
            (_, D::Dictionary(_, v)) => return self.column_type(v),
            (S::Postgres, D::Boolean) => "BOOLEAN",
            (S::MySql, D::Boolean) => "BOOLEAN",
            (S::SqlServer, D::Boolean) => "BIT",
            (S::Oracle, D::Boolean) => "NUMBER(1)",
            (S::MySql, D::Int8) => "TINYINT",
            (S::Oracle, D::Int8 | D::Int16 | D::UInt8) => "NUMBER(5)",
            (_, D::Int8 | D::Int16 | D::UInt8) => "SMALLINT",
            (S::MySql, D::UInt16) => "SMALLINT UNSIGNED",
            (S::Oracle, D::Int32 | D::UInt16) => "NUMBER(10)",
            (S::MySql, D::Int32) => "INT",
            (_, D::Int32 | D::UInt16) => "INTEGER",
            (S::MySql, D::UInt32) => "INT UNSIGNED",
            (S::Oracle, D::Int64 | D::UInt32) => "NUMBER(19)",
            (_, D::Int64 | D::UInt32) => "BIGINT",
            (S::MySql, D::UInt64) => "BIGINT UNSIGNED",
            (S::Postgres, D::UInt64) => "NUMERIC(20)",
            (S::SqlServer, D::UInt64) => "DECIMAL(20)",
            (S::Oracle, D::UInt64) => "NUMBER(20)",
            (S::MySql, D::Float16 | D::Float32) => "FLOAT",
            (S::Oracle, D::Float16 | D::Float32) => "BINARY_FLOAT",
            (_, D::Float16 | D::Float32) => "REAL",
            (S::Postgres, D::Float64) => "DOUBLE PRECISION",
            (S::MySql, D::Float64) => "DOUBLE",
            (S::SqlServer, D::Float64) => "FLOAT",
            (S::Oracle, D::Float64) => "BINARY_DOUBLE",
            (
                _,
                D::Decimal32(p, s) | D::Decimal64(p, s) | D::Decimal128(p, s) | D::Decimal256(p, s),
            ) => {
                let max = match self {
                    S::MySql => 65,
                    S::SqlServer | S::Oracle => 38,
                    _ => u8::MAX,
                };
                if *p <= max && *s >= 0 && i16::from(*s) <= i16::from(*p) {
                    let ty = match self {
                        S::Postgres => "NUMERIC",
                        S::Oracle => "NUMBER",
                        _ => "DECIMAL",
                    };
                    return format!("{ty}({p}, {s})");
                }
                return self.column_type(&D::Utf8);
            }
            (S::Postgres, D::Binary | D::LargeBinary | D::BinaryView | D::FixedSizeBinary(_)) => {
                "BYTEA"
            }
            (S::MySql, D::Binary | D::LargeBinary | D::BinaryView | D::FixedSizeBinary(_)) => {
                "LONGBLOB"
            }
            (S::SqlServer, D::Binary | D::LargeBinary | D::BinaryView | D::FixedSizeBinary(_)) => {
                "VARBINARY(MAX)"
            }
            (S::Oracle, D::Binary | D::LargeBinary | D::BinaryView | D::FixedSizeBinary(_)) => {
                "BLOB"
            }
            (_, D::Date32 | D::Date64) => "DATE",
            (S::Postgres, D::Timestamp(_, None)) => "TIMESTAMP",
            (S::Postgres, D::Timestamp(_, Some(_))) => "TIMESTAMPTZ",
            (S::MySql, D::Timestamp(..)) => "DATETIME(6)",
            (S::SqlServer, D::Timestamp(_, None)) => "DATETIME2",
            (S::SqlServer, D::Timestamp(_, Some(_))) => "DATETIMEOFFSET",
            (S::Oracle, D::Timestamp(_, None)) => "TIMESTAMP",
            (S::Oracle, D::Timestamp(_, Some(_))) => "TIMESTAMP WITH TIME ZONE",
            (S::MySql, D::Time32(_) | D::Time64(_)) => "TIME(6)",
            (S::Postgres | S::SqlServer, D::Time32(_) | D::Time64(_)) => "TIME",
            (S::Postgres, D::Duration(_)) => "INTERVAL",
            (S::Oracle, D::Duration(_)) => "NUMBER(19)",
            (_, D::Duration(_)) => "BIGINT",
            (
                S::Postgres,
                D::List(_)
                | D::LargeList(_)
                | D::ListView(_)
                | D::LargeListView(_)
                | D::FixedSizeList(..)
                | D::Struct(_)
                | D::Map(..),
            ) => "JSONB",
            (
                S::MySql,
                D::List(_)
                | D::LargeList(_)
                | D::ListView(_)
                | D::LargeListView(_)
                | D::FixedSizeList(..)
                | D::Struct(_)
                | D::Map(..),
            ) => "JSON",
            (S::Postgres, _) => "TEXT",
            (S::MySql, _) => "LONGTEXT",
            (S::SqlServer, _) => "NVARCHAR(MAX)",
            (S::Oracle, _) => "NCLOB",
        };
        s.to_owned()
    }
}

/// Split `s` at NUL characters, quote the parts and join them with the dialect's NUL expression.
fn join_nul(s: &str, quote: impl Fn(&str) -> String, nul: &str, concat: &str) -> String {
    if !s.contains('\0') {
        return quote(s);
    }
    let parts: Vec<String> = s.split('\0').map(&quote).collect();
    format!("({})", parts.join(&format!("{concat}{nul}{concat}")))
}

/// Render every value of a column as a SQL literal.
#[allow(clippy::many_single_char_names)] // n, v, a, t, x, s: short-lived locals per arm
fn render_column(array: &ArrayRef, field: &Field, dialect: SqlDialect) -> Result<Vec<String>> {
    use DataType as D;
    let n = array.len();
    let null = || "NULL".to_owned();
    let out: Vec<String> = match array.data_type() {
        D::Null => vec![null(); n],
        D::Boolean => array
            .as_boolean()
            .iter()
            .map(|v| v.map_or_else(null, |b| dialect.bool_literal(b).to_owned()))
            .collect(),
        D::Int8 | D::Int16 | D::Int32 | D::Int64 | D::UInt8 | D::UInt16 | D::UInt32 | D::UInt64 => {
            let f = arrow::util::display::ArrayFormatter::try_new(
                array.as_ref(),
                &arrow::util::display::FormatOptions::default(),
            )?;
            (0..n)
                .map(|i| {
                    if array.is_valid(i) {
                        f.value(i).to_string()
                    } else {
                        null()
                    }
                })
                .collect()
        }
        D::Float16 | D::Float32 => {
            let a = cast(array, &D::Float32)?;
            a.as_primitive::<arrow::datatypes::Float32Type>()
                .iter()
                .map(|v| match v {
                    None => null(),
                    Some(x) if x.is_finite() => format!("{x:?}"),
                    Some(x) => dialect.non_finite(f64::from(x)).to_owned(),
                })
                .collect()
        }
        D::Float64 => array
            .as_primitive::<arrow::datatypes::Float64Type>()
            .iter()
            .map(|v| match v {
                None => null(),
                Some(x) if x.is_finite() => format!("{x:?}"),
                Some(x) => dialect.non_finite(x).to_owned(),
            })
            .collect(),
        D::Decimal32(..) | D::Decimal64(..) | D::Decimal128(..) | D::Decimal256(..) => {
            let f = arrow::util::display::ArrayFormatter::try_new(
                array.as_ref(),
                &arrow::util::display::FormatOptions::default(),
            )?;
            (0..n)
                .map(|i| {
                    if array.is_valid(i) {
                        f.value(i).to_string()
                    } else {
                        null()
                    }
                })
                .collect()
        }
        D::Binary | D::LargeBinary | D::BinaryView => {
            let a = cast(array, &D::LargeBinary)?;
            a.as_binary::<i64>()
                .iter()
                .map(|v| v.map_or_else(null, |b| dialect.binary_literal(b)))
                .collect()
        }
        D::FixedSizeBinary(_) => array
            .as_fixed_size_binary()
            .iter()
            .map(|v| v.map_or_else(null, |b| dialect.binary_literal(b)))
            .collect(),
        D::Date32 | D::Date64 => {
            let a = cast(array, &D::Date32)?;
            let a = a.as_primitive::<arrow::datatypes::Date32Type>();
            let mut v = Vec::with_capacity(n);
            for d in a {
                v.push(match d {
                    None => null(),
                    Some(days) => {
                        let t = DateTime::from_timestamp(i64::from(days) * 86_400, 0)
                            .filter(|t| (1..=9999).contains(&chrono::Datelike::year(t)))
                            .ok_or_else(|| {
                                invalid(format!(
                                    "date {days} days from 1970 is outside years 1..9999"
                                ))
                            })?;
                        let s = t.format("%Y-%m-%d").to_string();
                        if dialect == SqlDialect::Oracle {
                            format!("DATE '{s}'")
                        } else {
                            format!("'{s}'")
                        }
                    }
                });
            }
            v
        }
        D::Timestamp(unit, tz) => {
            let nanos = *unit == TimeUnit::Nanosecond;
            let target = D::Timestamp(
                if nanos {
                    TimeUnit::Nanosecond
                } else {
                    TimeUnit::Microsecond
                },
                tz.clone(),
            );
            let a = cast(array, &target)?;
            let values: Vec<Option<i64>> = if nanos {
                a.as_primitive::<arrow::datatypes::TimestampNanosecondType>()
                    .iter()
                    .collect()
            } else {
                a.as_primitive::<arrow::datatypes::TimestampMicrosecondType>()
                    .iter()
                    .collect()
            };
            let mut v = Vec::with_capacity(n);
            for x in values {
                v.push(match x {
                    None => null(),
                    Some(x) => {
                        let t = if nanos {
                            Some(DateTime::from_timestamp_nanos(x))
                        } else {
                            DateTime::from_timestamp_micros(x)
                        };
                        let t = t
                            .filter(|t| (1..=9999).contains(&chrono::Datelike::year(t)))
                            .ok_or_else(|| {
                                invalid(format!("timestamp {x} is outside years 1..9999"))
                            })?;
                        let frac = if nanos { "%.9f" } else { "%.6f" };
                        let mut s = t.format(&format!("%Y-%m-%d %H:%M:%S{frac}")).to_string();
                        if tz.is_some() {
                            match dialect {
                                SqlDialect::Postgres => s.push_str("+00"),
                                SqlDialect::MySql => {}
                                _ => s.push_str("+00:00"),
                            }
                        }
                        if dialect == SqlDialect::Oracle {
                            format!("TIMESTAMP '{s}'")
                        } else {
                            format!("'{s}'")
                        }
                    }
                });
            }
            v
        }
        D::Time32(_) | D::Time64(_) => {
            let a = cast(array, &D::Time64(TimeUnit::Nanosecond))?;
            let mut v = Vec::with_capacity(n);
            for x in a.as_primitive::<arrow::datatypes::Time64NanosecondType>() {
                v.push(match x {
                    None => null(),
                    Some(ns) => {
                        let secs = u32::try_from(ns.div_euclid(1_000_000_000)).unwrap_or(u32::MAX);
                        let sub = u32::try_from(ns.rem_euclid(1_000_000_000)).unwrap_or(0);
                        let t = NaiveTime::from_num_seconds_from_midnight_opt(secs, sub)
                            .ok_or_else(|| {
                                invalid(format!("time of day {ns} ns is out of range"))
                            })?;
                        let s = t.format("%H:%M:%S%.6f").to_string();
                        dialect.string_literal(&s)?
                    }
                });
            }
            v
        }
        D::Duration(unit) => {
            if dialect == SqlDialect::Postgres {
                let a = cast(array, &D::Duration(TimeUnit::Microsecond))?;
                a.as_primitive::<arrow::datatypes::DurationMicrosecondType>()
                    .iter()
                    .map(|v| v.map_or_else(null, |us| format!("'{us} microseconds'")))
                    .collect()
            } else {
                let _ = unit;
                let a = cast(array, &D::Int64)?;
                a.as_primitive::<arrow::datatypes::Int64Type>()
                    .iter()
                    .map(|v| v.map_or_else(null, |x| x.to_string()))
                    .collect()
            }
        }
        D::Dictionary(_, value) => {
            let a = cast(array, value)?;
            return render_column(
                &a,
                &Field::new(field.name(), value.as_ref().clone(), true),
                dialect,
            );
        }
        _ => {
            let texts = value_texts(array)?;
            let mut v = Vec::with_capacity(n);
            for t in texts {
                v.push(match t {
                    None => null(),
                    Some(t) => dialect.string_literal(&t)?,
                });
            }
            v
        }
    };
    Ok(out)
}

#[async_trait]
impl FileFormat for SqlInsertFormat {
    fn name(&self) -> &'static str {
        NAME
    }

    fn extensions(&self) -> &'static [&'static str] {
        &["sql"]
    }

    async fn infer_schema(&self, _input: Arc<dyn ByteSource>) -> Result<SchemaRef> {
        Err(Error::unsupported("SQL INSERT is a write-only format")
            .with_connector(NAME)
            .with_operation("infer_schema"))
    }

    async fn read(
        &self,
        _input: Arc<dyn ByteSource>,
        _options: FormatReadOptions,
    ) -> Result<SendableRecordBatchStream> {
        Err(Error::unsupported("SQL INSERT is a write-only format")
            .with_connector(NAME)
            .with_operation("read"))
    }

    fn writer(&self, schema: SchemaRef) -> Result<Box<dyn FormatWriter>> {
        Ok(Box::new(SqlInsertWriter::new(self, schema)?))
    }
}

struct SqlInsertWriter {
    dialect: SqlDialect,
    schema: SchemaRef,
    /// `INSERT INTO t (cols) VALUES` (or Oracle's `INTO t (cols) VALUES`).
    head: String,
    rows_per_statement: usize,
    /// Rows in the open statement (0: none open).
    open_rows: usize,
    out: String,
}

impl SqlInsertWriter {
    fn new(f: &SqlInsertFormat, schema: SchemaRef) -> Result<Self> {
        let d = f.dialect;
        if f.table.is_empty() {
            return Err(Error::invalid_config("sql_insert needs a table name").with_connector(NAME));
        }
        if schema.fields().is_empty() {
            return Err(
                Error::invalid_config("sql_insert needs at least one column").with_connector(NAME),
            );
        }
        let mut table = String::new();
        if let Some(s) = &f.schema {
            table.push_str(&d.quote_identifier(s)?);
            table.push('.');
        }
        table.push_str(&d.quote_identifier(&f.table)?);
        let cols = schema
            .fields()
            .iter()
            .map(|c| d.quote_identifier(c.name()))
            .collect::<Result<Vec<_>>>()?;
        let mut out = String::new();
        if d == SqlDialect::MySql {
            out.push_str("SET NAMES utf8mb4;\n");
        }
        if f.create_table {
            let _ = writeln!(out, "CREATE TABLE {table} (");
            for (i, (field, col)) in schema.fields().iter().zip(&cols).enumerate() {
                let null = if field.is_nullable() { "" } else { " NOT NULL" };
                let sep = if i + 1 < cols.len() { "," } else { "" };
                let _ = writeln!(
                    out,
                    "  {col} {}{null}{sep}",
                    d.column_type(field.data_type())
                );
            }
            out.push_str(if d == SqlDialect::MySql {
                ") DEFAULT CHARSET=utf8mb4;\n"
            } else {
                ");\n"
            });
        }
        let head = if d == SqlDialect::Oracle {
            format!("INTO {table} ({}) VALUES ", cols.join(", "))
        } else {
            format!("INSERT INTO {table} ({}) VALUES\n", cols.join(", "))
        };
        let max = if d == SqlDialect::SqlServer {
            1000
        } else {
            usize::MAX
        };
        Ok(Self {
            dialect: d,
            schema,
            head,
            rows_per_statement: f.rows_per_statement.clamp(1, max),
            open_rows: 0,
            out,
        })
    }

    fn close_statement(&mut self) {
        if self.open_rows > 0 {
            self.out.push_str(if self.dialect == SqlDialect::Oracle {
                "\nSELECT 1 FROM DUAL;\n"
            } else {
                ";\n"
            });
            self.open_rows = 0;
        }
    }
}

impl FormatWriter for SqlInsertWriter {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.num_columns() != self.schema.fields().len() {
            return Err(Error::new(
                ErrorKind::SchemaMismatch,
                format!(
                    "batch has {} columns, the statement {}",
                    batch.num_columns(),
                    self.schema.fields().len()
                ),
            )
            .with_connector(NAME)
            .with_operation("write"));
        }
        let columns = batch
            .columns()
            .iter()
            .zip(self.schema.fields())
            .map(|(a, f)| {
                render_column(a, f, self.dialect)
                    .map_err(|e| e.with_location(Location::default().with_column(f.name())))
            })
            .collect::<Result<Vec<_>>>()?;
        for row in 0..batch.num_rows() {
            if self.open_rows == 0 {
                if self.dialect == SqlDialect::Oracle {
                    self.out.push_str("INSERT ALL\n");
                } else {
                    self.out.push_str(&self.head);
                }
            } else if self.dialect != SqlDialect::Oracle {
                self.out.push_str(",\n");
            }
            if self.dialect == SqlDialect::Oracle {
                self.out.push_str("  ");
                self.out.push_str(&self.head);
            }
            self.out.push('(');
            for (i, c) in columns.iter().enumerate() {
                if i > 0 {
                    self.out.push_str(", ");
                }
                self.out.push_str(&c[row]);
            }
            self.out.push(')');
            if self.dialect == SqlDialect::Oracle {
                self.out.push('\n');
            }
            self.open_rows += 1;
            if self.open_rows >= self.rows_per_statement {
                self.close_statement();
            }
        }
        Ok(())
    }

    fn take_bytes(&mut self) -> Bytes {
        Bytes::from(std::mem::take(&mut self.out))
    }

    fn finish(mut self: Box<Self>) -> Result<Bytes> {
        self.close_statement();
        Ok(Bytes::from(std::mem::take(&mut self.out)))
    }
}

/// The `sql_insert` connector kind: [`SqlInsertFormat`] options under `options` of a
/// [`crate::factory::FileConfig`].
#[derive(Debug)]
pub struct SqlInsertKind;

impl crate::factory::FormatKind for SqlInsertKind {
    type Options = SqlInsertFormat;
    const KIND: &'static str = "sql_insert";
    const DESCRIPTION: &'static str =
        "SQL INSERT scripts written to a local directory (write only)";
    fn format(options: &Self::Options) -> Result<Arc<dyn FileFormat>> {
        Ok(Arc::new(options.clone()))
    }
}

/// Factory of the `sql_insert` kind.
pub type SqlInsertFactory = crate::factory::FileFactory<SqlInsertKind>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_double_the_quote() {
        assert_eq!(
            SqlDialect::Postgres.quote_identifier("a\"b").unwrap(),
            "\"a\"\"b\""
        );
        assert_eq!(SqlDialect::MySql.quote_identifier("a`b").unwrap(), "`a``b`");
        assert_eq!(
            SqlDialect::SqlServer.quote_identifier("a]b").unwrap(),
            "[a]]b]"
        );
        assert!(SqlDialect::Sqlite.quote_identifier("a\0b").is_err());
    }

    #[test]
    fn strings_escape_per_dialect() {
        let s = "it's \\ a\0b";
        assert!(SqlDialect::Postgres.string_literal(s).is_err());
        assert_eq!(
            SqlDialect::Postgres.string_literal("it's \\").unwrap(),
            "'it''s \\'"
        );
        assert_eq!(
            SqlDialect::MySql.string_literal(s).unwrap(),
            "'it\\'s \\\\ a\\0b'"
        );
        assert_eq!(
            SqlDialect::SqlServer.string_literal(s).unwrap(),
            "(N'it''s \\ a' + NCHAR(0) + N'b')"
        );
        assert_eq!(
            SqlDialect::Oracle.string_literal("a\0").unwrap(),
            "('a' || CHR(0) || '')"
        );
        assert_eq!(
            SqlDialect::Sqlite.string_literal("a\0").unwrap(),
            "CAST(X'6100' AS TEXT)"
        );
    }
}
