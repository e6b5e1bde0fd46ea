//! SQLite as an Arrow [`Source`] and [`Sink`], over [`rusqlite`] with the bundled SQLite.
//!
//! rusqlite is synchronous: every database call runs on tokio's blocking pool
//! (`spawn_blocking`), and batches move between it and the async side through bounded channels
//! (two batches in flight), so memory stays bounded however large the table is.
//!
//! # Type mapping
//!
//! SQLite stores values by *storage class* (INTEGER, REAL, TEXT, BLOB, NULL); a column has only a
//! declared type. Reads are typed by the declared type (the Arrow type is known before the
//! first row), tables this connector creates use the declared types in the right-hand column so
//! they read back as the same Arrow type:
//!
//! | declared type (case-insensitive)                | Arrow                      | written from Arrow |
//! |-------------------------------------------------|----------------------------|--------------------|
//! | `TINYINT` / `SMALLINT` / `INT32`                | Int8 / Int16 / Int32       | Int8 / Int16 / Int32 |
//! | `UINT8` / `UINT16` / `UINT32` / `UINT64`        | UInt8 … UInt64             | same               |
//! | any other containing `INT` (`INTEGER`, `BIGINT`) | Int64                     | Int64 → `BIGINT`   |
//! | `FLOAT4`                                        | Float32                    | Float32            |
//! | `REAL`, `DOUBLE`, `FLOAT`                       | Float64                    | Float64 → `REAL`   |
//! | `DECIMAL(p,s)`, `NUMERIC(p,s)`, `DECIMAL_TEXT(p,s)` (p ≤ 38) | Decimal128(p,s) | Decimal128 → `DECIMAL_TEXT(p,s)`, stored as exact TEXT |
//! | `NUMERIC`, `DECIMAL` without precision          | Float64                    |                    |
//! | `BOOLEAN`, `BOOL`                               | Boolean (0 false, else true) | Boolean          |
//! | `DATE`                                          | Date32 (text `YYYY-MM-DD`)  | Date32            |
//! | `DATETIME`, `TIMESTAMP`                         | Timestamp(µs) (text `YYYY-MM-DD HH:MM:SS[.ffffff]`, or integer Unix seconds) | Timestamp without zone |
//! | `TIMESTAMPTZ`                                   | Timestamp(µs, "UTC") (UTC wall-clock text) | Timestamp with a zone |
//! | `TIME`                                          | Time64(µs) (text `HH:MM:SS[.ffffff]`) | Time32/Time64 |
//! | containing `CHAR`, `CLOB`, `TEXT`; `JSON`; any other name | Utf8             | Utf8 → `TEXT`      |
//! | containing `BLOB`                               | Binary                     | Binary → `BLOB`    |
//! | none (an expression in a query)                 | from the first row's storage class | |
//!
//! A value whose storage class cannot become the column's Arrow type (text in an INTEGER
//! column, a malformed date) is an [`ErrorKind::InvalidInput`] error naming the table, column
//! and 0-based row. Integers are accepted in REAL columns and numbers are rendered as text in
//! text columns (SQLite's own affinity rules do the same).
//!
//! Filters on decimal columns (stored as exact TEXT, which SQLite would compare as text) are
//! evaluated by the connector after reading; all other filters are pushed down.
//! Filter pushdown binds literals the way they are stored: booleans as 0/1, dates and
//! timestamps as text in the formats above (so comparisons are exact for data this connector
//! wrote, and for text in the same format).
//!
//! # Writes
//! Every write is one `BEGIN IMMEDIATE` transaction with one prepared statement reused for all
//! rows (SQLite DDL is transactional, so a created table or added column is rolled back too):
//! a failure leaves the target unchanged. Upsert uses `INSERT … ON CONFLICT(keys) DO UPDATE`
//! when a unique index or the primary key covers exactly the keys (a table created by an upsert
//! gets one); otherwise it deletes each incoming key and inserts the row, in the same transaction.
//!
//! # Partitions
//! A table read splits into `rowid` ranges (`min(rowid)..=max(rowid)`, evenly). Each partition
//! runs on its own connection, so partitions do not share one snapshot. Views, `WITHOUT ROWID`
//! tables and queries are read as one partition.
//!
//! # `:memory:`
//! The path `:memory:` opens a private in-memory database shared by every connection of this
//! connector (a shared-cache URI kept alive by one held connection); it disappears when the
//! connector is dropped.

// Product names (SQLite, MariaDB) in docs are not code.
#![allow(clippy::doc_markdown)]
// `connector_core::Error` is the crate-wide error type; its size is core's decision.
// Type tables read best one row per source type, even when two rows map alike; date and time
// parts are conventionally y/m/d/h/s; a two-way match reads better than if-let-else here.
#![allow(
    clippy::match_same_arms,
    clippy::many_single_char_names,
    clippy::single_match_else
)]

use std::fmt;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder,
    Float64Builder, Int64Builder, StringBuilder, Time64MicrosecondBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Field, Float32Type, Float64Type, Int8Type, Int16Type,
    Int32Type, Int64Type, Schema, SchemaRef, Time32MillisecondType, Time32SecondType,
    Time64MicrosecondType, Time64NanosecondType, TimeUnit, UInt8Type, UInt16Type, UInt32Type,
    UInt64Type,
};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use connector_core::drift::reconcile;
use connector_core::registry::{ConnectorFactory, KindCapabilities};
use connector_core::residual::project_schema;
use connector_core::{
    DatasetInfo, Error, ErrorKind, Literal, Location, Partition, ReadRequest, ReadTarget, Result,
    SendableRecordBatchStream, Sink, SinkCapabilities, Source, SourceCapabilities, WriteMode,
    WriteReport, WriteRequest,
};
use futures::StreamExt;
use rusqlite::types::{ToSqlOutput, Value, ValueRef};
use rusqlite::{Connection, OpenFlags};
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot};

use crate::shared::{finish_report, kind_caps, sink_caps, source_caps, write_keys};
use crate::sql::{
    Dialect, align_to_target, cast_batch, civil_from_days, days_from_civil, decimal_to_string,
    parse_decimal, render_filter,
};

const NAME: &str = "sqlite";
const D: Dialect = Dialect::Sqlite;

/// Configuration of the `sqlite` kind.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SqliteConfig {
    /// Database file, or `:memory:` for a private in-memory database.
    pub path: String,
    /// Create the file if it does not exist (default true).
    #[serde(default = "default_true")]
    pub create: bool,
    /// How long to wait for a lock held by another connection, in milliseconds (default 5000).
    #[serde(default = "default_busy")]
    pub busy_timeout_ms: u64,
}

fn default_true() -> bool {
    true
}
fn default_busy() -> u64 {
    5000
}

impl SqliteConfig {
    /// A config for `path` with defaults.
    pub fn new(path: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            create: true,
            busy_timeout_ms: default_busy(),
        }
    }
}

static MEM_ID: AtomicU64 = AtomicU64::new(0);

struct Inner {
    /// What to open (a file path, or a shared-cache memory URI).
    target: String,
    uri: bool,
    create: bool,
    busy: Duration,
    /// Keeps a `:memory:` database alive.
    _keep: Option<Mutex<Connection>>,
}

/// A SQLite database as a source and a sink. Cheap to clone.
#[derive(Clone)]
pub struct SqliteConnector {
    inner: Arc<Inner>,
}

impl fmt::Debug for SqliteConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteConnector")
            .field("path", &self.inner.target)
            .finish_non_exhaustive()
    }
}

impl SqliteConnector {
    /// Open a connector over `config.path` (nothing is opened until the first call, except for
    /// `:memory:`, which is created now).
    pub fn new(config: SqliteConfig) -> Result<Self> {
        let busy = Duration::from_millis(config.busy_timeout_ms);
        let inner = if config.path == ":memory:" {
            let n = MEM_ID.fetch_add(1, Ordering::Relaxed);
            let target = format!(
                "file:arrow_connectors_mem_{}_{n}?mode=memory&cache=shared",
                std::process::id()
            );
            let keep = Connection::open_with_flags(&target, mem_flags())
                .map_err(|e| map_err(&e, "open", None))?;
            Inner {
                target,
                uri: true,
                create: true,
                busy,
                _keep: Some(Mutex::new(keep)),
            }
        } else {
            if config.path.is_empty() {
                return Err(Error::invalid_config("sqlite `path` is empty").with_connector(NAME));
            }
            Inner {
                target: config.path,
                uri: false,
                create: config.create,
                busy,
                _keep: None,
            }
        };
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// Shorthand for [`SqliteConnector::new`] with a path and defaults.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self> {
        Self::new(SqliteConfig::new(
            path.into().to_string_lossy().into_owned(),
        ))
    }

    /// A private in-memory database.
    pub fn memory() -> Result<Self> {
        Self::new(SqliteConfig::new(":memory:"))
    }

    /// Run `f` with a fresh connection on the blocking pool.
    async fn blocking<T, F>(&self, op: &'static str, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = inner.connect()?;
            f(&mut conn)
        })
        .await
        .map_err(|e| Error::internal(format!("sqlite worker failed: {e}")))?
        .map_err(|e| e.with_connector(NAME).with_operation(op))
    }

    /// Execute SQL statements (no results), e.g. to prepare fixtures.
    pub async fn execute_batch(&self, sql: impl Into<String>) -> Result<()> {
        let sql = sql.into();
        self.blocking("execute", move |c| {
            c.execute_batch(&sql)
                .map_err(|e| map_err(&e, "execute", None))
        })
        .await
    }
}

fn mem_flags() -> OpenFlags {
    OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
}

impl Inner {
    fn connect(&self) -> Result<Connection> {
        let flags = if self.uri {
            mem_flags()
        } else {
            let mut f = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
            if self.create {
                f |= OpenFlags::SQLITE_OPEN_CREATE;
            }
            f
        };
        let conn = Connection::open_with_flags(&self.target, flags)
            .map_err(|e| map_err(&e, "open", None).with_context("path", &self.target))?;
        conn.busy_timeout(self.busy)
            .map_err(|e| map_err(&e, "open", None))?;
        Ok(conn)
    }
}

/// Map a rusqlite error to ours, with the extended result code as vendor code.
fn map_err(e: &rusqlite::Error, what: &str, table: Option<&str>) -> Error {
    use rusqlite::ErrorCode as C;
    let (kind, code) = match e {
        rusqlite::Error::SqliteFailure(f, msg) => {
            let m = msg.as_deref().unwrap_or("");
            let kind = match f.code {
                C::ConstraintViolation => ErrorKind::Conflict,
                C::DatabaseBusy | C::DatabaseLocked => ErrorKind::Timeout,
                C::PermissionDenied | C::ReadOnly | C::AuthorizationForStatementDenied => {
                    ErrorKind::Permission
                }
                C::CannotOpen => ErrorKind::NotFound,
                C::NotADatabase | C::DatabaseCorrupt => ErrorKind::Decode,
                C::SystemIoFailure | C::DiskFull => ErrorKind::Io,
                C::TooBig => ErrorKind::InvalidInput,
                _ if m.starts_with("no such table") => ErrorKind::NotFound,
                _ if m.starts_with("no such column") || m.contains("has no column") => {
                    ErrorKind::SchemaMismatch
                }
                _ => ErrorKind::Query,
            };
            (kind, Some(f.extended_code))
        }
        rusqlite::Error::FromSqlConversionFailure(..) | rusqlite::Error::InvalidColumnType(..) => {
            (ErrorKind::Decode, None)
        }
        _ => (ErrorKind::Query, None),
    };
    let mut err = Error::new(kind, format!("{what} failed: {e}")).with_connector(NAME);
    if let Some(c) = code {
        err = err.with_vendor_code(i64::from(c));
    }
    if let Some(t) = table {
        err = err.with_location(Location::table(t));
    }
    err
}

// ---------------------------------------------------------------------------------------------
// Type mapping

/// The Arrow type of a declared column type; `None` when undeclared (type from the values).
#[must_use]
pub fn arrow_type_for_decl(decl: Option<&str>) -> Option<DataType> {
    let decl = decl?.trim();
    if decl.is_empty() {
        return None;
    }
    let up = decl.to_ascii_uppercase();
    let base = up.split('(').next().unwrap_or("").trim();
    let t = match base {
        "TINYINT" => DataType::Int8,
        "SMALLINT" => DataType::Int16,
        "INT32" => DataType::Int32,
        "UINT8" => DataType::UInt8,
        "UINT16" => DataType::UInt16,
        "UINT32" => DataType::UInt32,
        "UINT64" => DataType::UInt64,
        "BOOLEAN" | "BOOL" => DataType::Boolean,
        "DATE" => DataType::Date32,
        "DATETIME" | "TIMESTAMP" => DataType::Timestamp(TimeUnit::Microsecond, None),
        "TIMESTAMPTZ" | "TIMESTAMP WITH TIME ZONE" => {
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        }
        "TIME" => DataType::Time64(TimeUnit::Microsecond),
        "FLOAT4" => DataType::Float32,
        "JSON" => DataType::Utf8,
        "DECIMAL" | "NUMERIC" | "DECIMAL_TEXT" => {
            return Some(decimal_decl(&up).unwrap_or(DataType::Float64));
        }
        b if b.contains("INT") => DataType::Int64,
        b if b.contains("CHAR") || b.contains("CLOB") || b.contains("TEXT") => DataType::Utf8,
        b if b.contains("BLOB") => DataType::Binary,
        b if b.contains("REAL") || b.contains("FLOA") || b.contains("DOUB") => DataType::Float64,
        _ => DataType::Utf8,
    };
    Some(t)
}

fn decimal_decl(up: &str) -> Option<DataType> {
    let args = up.split_once('(')?.1.split_once(')')?.0;
    let mut it = args.split(',').map(|s| s.trim().parse::<u8>());
    let p = it.next()?.ok()?;
    let s = it.next().unwrap_or(Ok(0)).ok()?;
    ((1..=38).contains(&p) && s <= p).then_some(DataType::Decimal128(p, s as i8))
}

/// The declared type used when creating a column of Arrow type `t`.
pub fn decl_for_arrow(t: &DataType, column: &str) -> Result<String> {
    Ok(match t {
        DataType::Int8 => "TINYINT".into(),
        DataType::Int16 => "SMALLINT".into(),
        DataType::Int32 => "INT32".into(),
        DataType::Int64 => "BIGINT".into(),
        DataType::UInt8 => "UINT8".into(),
        DataType::UInt16 => "UINT16".into(),
        DataType::UInt32 => "UINT32".into(),
        DataType::UInt64 => "UINT64".into(),
        DataType::Float32 => "FLOAT4".into(),
        DataType::Float16 | DataType::Float64 => "REAL".into(),
        DataType::Boolean => "BOOLEAN".into(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "TEXT".into(),
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => "BLOB".into(),
        DataType::Date32 | DataType::Date64 => "DATE".into(),
        DataType::Timestamp(_, None) => "DATETIME".into(),
        DataType::Timestamp(_, Some(_)) => "TIMESTAMPTZ".into(),
        DataType::Time32(_) | DataType::Time64(_) => "TIME".into(),
        DataType::Decimal128(p, s) if *s >= 0 => format!("DECIMAL_TEXT({p},{s})"),
        other => {
            return Err(Error::unsupported(format!(
                "column {column:?}: Arrow type {other} cannot be stored in SQLite"
            ))
            .with_location(Location::default().with_column(column)));
        }
    })
}

fn fmt_date(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

fn fmt_timestamp_us(us: i64) -> String {
    let days = us.div_euclid(86_400_000_000);
    let rem = us.rem_euclid(86_400_000_000);
    format!("{} {}", fmt_date(days), fmt_time_us(rem))
}

fn fmt_time_us(us: i64) -> String {
    let s = us / 1_000_000;
    format!(
        "{:02}:{:02}:{:02}.{:06}",
        s / 3600,
        (s / 60) % 60,
        s % 60,
        us % 1_000_000
    )
}

#[allow(clippy::many_single_char_names)]
fn parse_date(s: &str) -> Option<i32> {
    let s = s.trim();
    let b = s.as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let y: i64 = s[..4].parse().ok()?;
    let m: u32 = s[5..7].parse().ok()?;
    let d: u32 = s[8..10].parse().ok()?;
    i32::try_from(days_from_civil(y, m, d)?).ok()
}

/// `HH:MM[:SS[.ffffff]]` → microseconds of the day.
#[allow(clippy::many_single_char_names)]
fn parse_time(s: &str) -> Option<i64> {
    let mut parts = s.split(':');
    let h: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let (sec, frac) = match parts.next() {
        None => (0, 0),
        Some(x) => {
            let (a, f) = x.split_once('.').unwrap_or((x, ""));
            let sec: i64 = a.parse().ok()?;
            if f.len() > 9 || !f.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            let mut digits = f.to_owned();
            digits.truncate(6);
            while digits.len() < 6 {
                digits.push('0');
            }
            (sec, digits.parse::<i64>().ok()?)
        }
    };
    if parts.next().is_some()
        || !(0..24).contains(&h)
        || !(0..60).contains(&m)
        || !(0..61).contains(&sec)
    {
        return None;
    }
    Some(((h * 60 + m) * 60 + sec) * 1_000_000 + frac)
}

/// `YYYY-MM-DD[ T]HH:MM[:SS[.f]][Z|±HH:MM]` (or a bare date) → UTC microseconds.
fn parse_timestamp(s: &str) -> Option<i64> {
    let s = s.trim();
    let days = i64::from(parse_date(s)?);
    let rest = s.get(10..)?;
    if rest.is_empty() {
        return days.checked_mul(86_400_000_000);
    }
    let rest = rest.strip_prefix([' ', 'T'])?;
    let (time, offset_us) = if let Some(t) = rest.strip_suffix('Z') {
        (t, 0)
    } else if let Some(pos) = rest.rfind(['+', '-']).filter(|p| *p >= 5) {
        let (t, off) = rest.split_at(pos);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let (oh, om) = off[1..].split_once(':').unwrap_or((&off[1..], "0"));
        let oh: i64 = oh.parse().ok()?;
        let om: i64 = om.parse().ok()?;
        (t, sign * (oh * 60 + om) * 60_000_000)
    } else {
        (rest, 0)
    };
    let t = parse_time(time)?;
    days.checked_mul(86_400_000_000)?
        .checked_add(t)?
        .checked_sub(offset_us)
}

fn literal_value(l: &Literal) -> Value {
    match l {
        Literal::Null => Value::Null,
        Literal::Bool(b) => Value::Integer(i64::from(*b)),
        Literal::Int(i) => Value::Integer(*i),
        Literal::Float(f) => Value::Real(*f),
        Literal::String(s) => Value::Text(s.clone()),
        Literal::Date(d) => Value::Text(fmt_date(i64::from(*d))),
        Literal::TimestampMicros(t) => Value::Text(fmt_timestamp_us(*t)),
    }
}

// ---------------------------------------------------------------------------------------------
// Reading

/// A column decoder: appends SQLite values to an Arrow builder of the column's type.
enum Col {
    Int(Int64Builder, DataType),
    Float(Float64Builder, DataType),
    Bool(BooleanBuilder),
    Text(StringBuilder),
    Blob(BinaryBuilder),
    Date(Date32Builder),
    Ts(TimestampMicrosecondBuilder, Option<Arc<str>>),
    Time(Time64MicrosecondBuilder),
    Dec(Decimal128Builder, u8, i8),
}

impl Col {
    fn new(t: &DataType, cap: usize) -> Col {
        match t {
            DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64 => Col::Int(Int64Builder::with_capacity(cap), t.clone()),
            DataType::Float32 | DataType::Float64 => {
                Col::Float(Float64Builder::with_capacity(cap), t.clone())
            }
            DataType::Boolean => Col::Bool(BooleanBuilder::with_capacity(cap)),
            DataType::Binary => Col::Blob(BinaryBuilder::with_capacity(cap, cap * 16)),
            DataType::Date32 => Col::Date(Date32Builder::with_capacity(cap)),
            DataType::Timestamp(_, tz) => Col::Ts(
                TimestampMicrosecondBuilder::with_capacity(cap),
                tz.as_deref().map(Arc::from),
            ),
            DataType::Time64(_) => Col::Time(Time64MicrosecondBuilder::with_capacity(cap)),
            DataType::Decimal128(p, s) => Col::Dec(Decimal128Builder::with_capacity(cap), *p, *s),
            _ => Col::Text(StringBuilder::with_capacity(cap, cap * 16)),
        }
    }

    /// Append one value; `Err(reason)` when it does not fit.
    #[allow(clippy::many_single_char_names, clippy::similar_names)]
    fn push(&mut self, v: ValueRef<'_>) -> std::result::Result<(), String> {
        let text = |b: &[u8]| -> std::result::Result<String, String> {
            std::str::from_utf8(b)
                .map(str::to_owned)
                .map_err(|_| "text is not valid UTF-8".to_owned())
        };
        let bad = |what: &str| Err(format!("a {what} value does not fit this column"));
        match (self, v) {
            (Col::Int(b, _), ValueRef::Null) => b.append_null(),
            (Col::Float(b, _), ValueRef::Null) => b.append_null(),
            (Col::Bool(b), ValueRef::Null) => b.append_null(),
            (Col::Text(b), ValueRef::Null) => b.append_null(),
            (Col::Blob(b), ValueRef::Null) => b.append_null(),
            (Col::Date(b), ValueRef::Null) => b.append_null(),
            (Col::Ts(b, _), ValueRef::Null) => b.append_null(),
            (Col::Time(b), ValueRef::Null) => b.append_null(),
            (Col::Dec(b, ..), ValueRef::Null) => b.append_null(),
            (Col::Int(b, _), ValueRef::Integer(i)) => b.append_value(i),
            (Col::Float(b, _), ValueRef::Integer(i)) => b.append_value(i as f64),
            (Col::Float(b, _), ValueRef::Real(f)) => b.append_value(f),
            (Col::Float(b, _), ValueRef::Text(t)) => match text(t)?.trim().parse::<f64>() {
                Ok(f) => b.append_value(f),
                Err(_) => return bad("non-numeric TEXT"),
            },
            (Col::Bool(b), ValueRef::Integer(i)) => b.append_value(i != 0),
            (Col::Bool(b), ValueRef::Real(f)) => b.append_value(f != 0.0),
            (Col::Bool(b), ValueRef::Text(t)) => match text(t)?.to_ascii_lowercase().as_str() {
                "true" | "t" | "1" => b.append_value(true),
                "false" | "f" | "0" => b.append_value(false),
                _ => return bad("non-boolean TEXT"),
            },
            (Col::Text(b), ValueRef::Text(t)) => {
                b.append_value(
                    std::str::from_utf8(t).map_err(|_| "text is not valid UTF-8".to_owned())?,
                );
            }
            (Col::Text(b), ValueRef::Integer(i)) => b.append_value(i.to_string()),
            (Col::Text(b), ValueRef::Real(f)) => b.append_value(f.to_string()),
            (Col::Blob(b), ValueRef::Blob(x) | ValueRef::Text(x)) => b.append_value(x),
            (Col::Date(b), ValueRef::Text(t)) => match parse_date(&text(t)?) {
                Some(d) => b.append_value(d),
                None => return bad("TEXT that is not a date (YYYY-MM-DD)"),
            },
            (Col::Ts(b, _), ValueRef::Text(t)) => match parse_timestamp(&text(t)?) {
                Some(us) => b.append_value(us),
                None => return bad("TEXT that is not a timestamp"),
            },
            (Col::Ts(b, _), ValueRef::Integer(secs)) => match secs.checked_mul(1_000_000) {
                Some(us) => b.append_value(us),
                None => return bad("out-of-range INTEGER"),
            },
            (Col::Time(b), ValueRef::Text(t)) => match parse_time(&text(t)?) {
                Some(us) => b.append_value(us),
                None => return bad("TEXT that is not a time of day"),
            },
            (
                Col::Dec(b, p, s),
                v @ (ValueRef::Text(_) | ValueRef::Integer(_) | ValueRef::Real(_)),
            ) => {
                let txt = match v {
                    ValueRef::Text(t) => text(t)?,
                    ValueRef::Integer(i) => i.to_string(),
                    ValueRef::Real(f) => f.to_string(),
                    _ => String::new(),
                };
                match parse_decimal(&txt, *s).filter(|x| fits_precision(*x, *p)) {
                    Some(x) => b.append_value(x),
                    None => {
                        return Err(format!("value {txt:?} is not a DECIMAL({p},{s})"));
                    }
                }
            }
            (_, ValueRef::Blob(_)) => return bad("BLOB"),
            (_, ValueRef::Text(_)) => return bad("TEXT"),
            (_, ValueRef::Integer(_)) => return bad("INTEGER"),
            (_, ValueRef::Real(_)) => return bad("REAL"),
        }
        Ok(())
    }

    fn finish(&mut self) -> std::result::Result<ArrayRef, arrow::error::ArrowError> {
        let opts = arrow::compute::CastOptions {
            safe: false,
            ..Default::default()
        };
        Ok(match self {
            Col::Int(b, t) => {
                let a: ArrayRef = Arc::new(b.finish());
                if *t == DataType::Int64 {
                    a
                } else {
                    arrow::compute::cast_with_options(&a, t, &opts)?
                }
            }
            Col::Float(b, t) => {
                let a: ArrayRef = Arc::new(b.finish());
                if *t == DataType::Float64 {
                    a
                } else {
                    arrow::compute::cast_with_options(&a, t, &opts)?
                }
            }
            Col::Bool(b) => Arc::new(b.finish()),
            Col::Text(b) => Arc::new(b.finish()),
            Col::Blob(b) => Arc::new(b.finish()),
            Col::Date(b) => Arc::new(b.finish()),
            Col::Ts(b, tz) => Arc::new(b.finish().with_timezone_opt(tz.clone())),
            Col::Time(b) => Arc::new(b.finish()),
            Col::Dec(b, p, s) => Arc::new(b.finish().with_precision_and_scale(*p, *s)?),
        })
    }
}

fn fits_precision(x: i128, p: u8) -> bool {
    let bound = 10_i128.checked_pow(u32::from(p)).unwrap_or(i128::MAX);
    x.unsigned_abs() < bound.unsigned_abs()
}

fn storage_type(v: ValueRef<'_>) -> DataType {
    match v {
        ValueRef::Integer(_) => DataType::Int64,
        ValueRef::Real(_) => DataType::Float64,
        ValueRef::Blob(_) => DataType::Binary,
        ValueRef::Text(_) | ValueRef::Null => DataType::Utf8,
    }
}

struct ReadJob {
    sql: String,
    params: Vec<Value>,
    label: String,
    batch_rows: usize,
    /// Undeclared columns take the first row's storage class (queries); otherwise Utf8, as
    /// `discover` reports them (tables and views).
    infer_undeclared: bool,
}

fn read_blocking(
    conn: &Connection,
    job: &ReadJob,
    schema_tx: oneshot::Sender<Result<SchemaRef>>,
    tx: &mpsc::Sender<Result<RecordBatch>>,
) {
    let mut schema_tx = Some(schema_tx);
    let fail = |schema_tx: &mut Option<oneshot::Sender<Result<SchemaRef>>>, e: Error| {
        let e = e.with_connector(NAME).with_operation("read");
        match schema_tx.take() {
            Some(s) => {
                let _ = s.send(Err(e));
            }
            None => {
                let _ = tx.blocking_send(Err(e));
            }
        }
    };
    let label = job.label.as_str();
    let mut stmt = match conn.prepare(&job.sql) {
        Ok(s) => s,
        Err(e) => return fail(&mut schema_tx, map_err(&e, "prepare", Some(label))),
    };
    let names: Vec<String> = stmt.column_names().map(str::to_owned).collect();
    let declared: Vec<Option<DataType>> = stmt
        .columns()
        .map(|c| arrow_type_for_decl(c.decl_type()))
        .collect();
    for (i, p) in job.params.iter().enumerate() {
        if let Err(e) = stmt.raw_bind_parameter(i + 1, p) {
            return fail(&mut schema_tx, map_err(&e, "bind", Some(label)));
        }
    }
    let mut rows = stmt.raw_query();
    let mut schema: Option<SchemaRef> = None;
    let mut cols: Vec<Col> = Vec::new();
    let mut n_in_batch = 0usize;
    let mut row_no: u64 = 0;
    loop {
        let row = match rows.next() {
            Ok(r) => r,
            Err(e) => return fail(&mut schema_tx, map_err(&e, "read", Some(label))),
        };
        if schema.is_none() {
            // Types come from declarations; undeclared columns take the first row's storage class.
            let fields: Vec<Field> = names
                .iter()
                .zip(&declared)
                .enumerate()
                .map(|(i, (n, t))| {
                    let t = t.clone().unwrap_or_else(|| {
                        row.filter(|_| job.infer_undeclared)
                            .and_then(|r| r.get_ref(i).ok())
                            .map_or(DataType::Utf8, storage_type)
                    });
                    Field::new(n, t, true)
                })
                .collect();
            let s = Arc::new(Schema::new(fields));
            cols = s
                .fields()
                .iter()
                .map(|f| Col::new(f.data_type(), job.batch_rows))
                .collect();
            if let Some(tx) = schema_tx.take()
                && tx.send(Ok(s.clone())).is_err()
            {
                return;
            }
            schema = Some(s);
        }
        let Some(schema) = schema.as_ref() else {
            return;
        };
        match row {
            Some(r) => {
                for (i, c) in cols.iter_mut().enumerate() {
                    let v = match r.get_ref(i) {
                        Ok(v) => v,
                        Err(e) => return fail(&mut schema_tx, map_err(&e, "read", Some(label))),
                    };
                    if let Err(why) = c.push(v) {
                        let name = schema.field(i).name();
                        let e = Error::invalid_input(
                            format!("column {name:?} is {}: {why}", schema.field(i).data_type()),
                            Location::table(label)
                                .with_column(name.clone())
                                .with_row(row_no),
                        );
                        return fail(&mut schema_tx, e);
                    }
                }
                row_no += 1;
                n_in_batch += 1;
                if n_in_batch >= job.batch_rows {
                    match finish_batch(schema, &mut cols, label) {
                        Ok(b) => {
                            if tx.blocking_send(Ok(b)).is_err() {
                                return;
                            }
                        }
                        Err(e) => return fail(&mut schema_tx, e),
                    }
                    n_in_batch = 0;
                }
            }
            None => {
                if n_in_batch > 0 {
                    match finish_batch(schema, &mut cols, label) {
                        Ok(b) => {
                            let _ = tx.blocking_send(Ok(b));
                        }
                        Err(e) => fail(&mut schema_tx, e),
                    }
                }
                return;
            }
        }
    }
}

fn finish_batch(schema: &SchemaRef, cols: &mut [Col], label: &str) -> Result<RecordBatch> {
    let arrays = cols
        .iter_mut()
        .zip(schema.fields())
        .map(|(c, f)| {
            c.finish().map_err(|e| {
                Error::invalid_input(
                    format!(
                        "column {:?} holds a value out of range for {}: {e}",
                        f.name(),
                        f.data_type()
                    ),
                    Location::table(label).with_column(f.name().clone()),
                )
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(schema.clone(), arrays)?)
}

/// Table name → quoted path (`main.t` or `t`).
fn quote_table(name: &str) -> String {
    let parts = crate::sql::split_qualified(name);
    let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
    D.quote_path(&refs)
}

fn table_parts(name: &str) -> (Option<String>, String) {
    let mut parts = crate::sql::split_qualified(name);
    if parts.len() >= 2 {
        let t = parts.pop().unwrap_or_default();
        (Some(parts.join(".")), t)
    } else {
        (None, parts.pop().unwrap_or_default())
    }
}

/// Column name, declared type, not-null, primary-key position.
type ColInfo = (String, Option<String>, bool, i64);

/// The columns of a table (empty: no such table).
fn table_info(conn: &Connection, name: &str) -> Result<Vec<ColInfo>> {
    let (schema, table) = table_parts(name);
    let sql = match &schema {
        Some(s) => format!(
            "PRAGMA {}.table_info({})",
            D.quote_ident(s),
            D.quote_ident(&table)
        ),
        None => format!("PRAGMA table_info({})", D.quote_ident(&table)),
    };
    let mut stmt = conn
        .prepare(&sql)
        .map_err(|e| map_err(&e, "table_info", Some(name)))?;
    let rows = stmt
        .query_map([], |r| {
            let decl: String = r.get(2)?;
            Ok((
                r.get::<_, String>(1)?,
                (!decl.is_empty()).then_some(decl),
                r.get::<_, i64>(3)? != 0,
                r.get::<_, i64>(5)?,
            ))
        })
        .map_err(|e| map_err(&e, "table_info", Some(name)))?;
    rows.collect::<rusqlite::Result<Vec<_>>>()
        .map_err(|e| map_err(&e, "table_info", Some(name)))
}

/// Whether a unique index or the primary key of `table` covers exactly `keys`.
fn has_unique_key(
    conn: &Connection,
    table: &str,
    info: &[ColInfo],
    keys: &[String],
) -> Result<bool> {
    let want: std::collections::BTreeSet<&str> = keys.iter().map(String::as_str).collect();
    let pk: std::collections::BTreeSet<&str> = info
        .iter()
        .filter(|c| c.3 > 0)
        .map(|c| c.0.as_str())
        .collect();
    if pk == want {
        return Ok(true);
    }
    let (schema, t) = table_parts(table);
    let prefix = schema
        .map(|s| format!("{}.", D.quote_ident(&s)))
        .unwrap_or_default();
    let err = |e: rusqlite::Error| map_err(&e, "index list", Some(table));
    let mut stmt = conn
        .prepare(&format!("PRAGMA {prefix}index_list({})", D.quote_ident(&t)))
        .map_err(err)?;
    let indexes: Vec<(String, bool)> = stmt
        .query_map([], |r| {
            Ok((r.get::<_, String>(1)?, r.get::<_, i64>(2)? != 0))
        })
        .and_then(Iterator::collect)
        .map_err(err)?;
    for (name, unique) in indexes {
        if !unique {
            continue;
        }
        let mut s = conn
            .prepare(&format!(
                "PRAGMA {prefix}index_info({})",
                D.quote_ident(&name)
            ))
            .map_err(err)?;
        let cols: Vec<Option<String>> = s
            .query_map([], |r| r.get::<_, Option<String>>(2))
            .and_then(Iterator::collect)
            .map_err(err)?;
        let cols: std::collections::BTreeSet<&str> =
            cols.iter().flatten().map(String::as_str).collect();
        if cols == want {
            return Ok(true);
        }
    }
    Ok(false)
}

fn schema_of(info: &[ColInfo]) -> SchemaRef {
    Arc::new(Schema::new(
        info.iter()
            .map(|(n, d, notnull, _)| {
                Field::new(
                    n,
                    arrow_type_for_decl(d.as_deref()).unwrap_or(DataType::Utf8),
                    !notnull,
                )
            })
            .collect::<Vec<_>>(),
    ))
}

fn not_found(name: &str) -> Error {
    Error::new(
        ErrorKind::NotFound,
        format!("table {name:?} does not exist"),
    )
    .with_connector(NAME)
    .with_location(Location::table(name))
}

/// Build the SELECT for a partition: (sql, params).
/// With `push` false, the SELECT reads every column and row of the partition and the caller
/// applies projection, filter and limit itself.
fn build_select(p: &Partition, push: bool) -> (String, Vec<Value>, String) {
    let req = &p.request;
    let proj = match req.projection.as_deref().filter(|_| push) {
        Some(cols) if !cols.is_empty() => cols
            .iter()
            .map(|c| D.quote_ident(c))
            .collect::<Vec<_>>()
            .join(", "),
        _ => "*".to_owned(),
    };
    let (from, label) = match &req.target {
        ReadTarget::Dataset(d) => (quote_table(d), d.clone()),
        ReadTarget::Query(q) => (format!("({q}) AS \"q\""), "query".to_owned()),
    };
    let mut lits = Vec::new();
    let mut conds = Vec::new();
    if let Some(f) = req.filter.as_ref().filter(|_| push) {
        conds.push(render_filter(f, D, &mut lits));
    }
    let mut params: Vec<Value> = lits.iter().map(literal_value).collect();
    if let Some(range) = p.spec.get("rowid").and_then(|v| v.as_array()) {
        let col = p
            .spec
            .get("rowid_column")
            .and_then(|v| v.as_str())
            .unwrap_or("_rowid_");
        let lo = range
            .first()
            .and_then(serde_json::Value::as_i64)
            .unwrap_or(i64::MIN);
        let hi = range.get(1).and_then(serde_json::Value::as_i64);
        params.push(Value::Integer(lo));
        let mut c = format!("{col} >= ?{}", params.len());
        if let Some(hi) = hi {
            params.push(Value::Integer(hi));
            let _ = write!(c, " AND {col} < ?{}", params.len());
        }
        conds.push(c);
    }
    let mut sql = format!("SELECT {proj} FROM {from}");
    if !conds.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(
            &conds
                .iter()
                .map(|c| format!("({c})"))
                .collect::<Vec<_>>()
                .join(" AND "),
        );
    }
    if let Some(l) = req.limit.filter(|_| push) {
        params.push(Value::Integer(i64::try_from(l).unwrap_or(i64::MAX)));
        let _ = write!(sql, " LIMIT ?{}", params.len());
    }
    (sql, params, label)
}

#[async_trait]
impl Source for SqliteConnector {
    fn name(&self) -> &'static str {
        NAME
    }

    fn capabilities(&self) -> SourceCapabilities {
        source_caps()
    }

    async fn check(&self) -> Result<()> {
        self.blocking("check", |c| {
            c.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))
                .map_err(|e| map_err(&e, "check", None))
        })
        .await
    }

    async fn discover(&self) -> Result<Vec<DatasetInfo>> {
        self.blocking("discover", |c| {
            let mut stmt = c
                .prepare("SELECT name FROM sqlite_master WHERE type IN ('table','view') AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name")
                .map_err(|e| map_err(&e, "discover", None))?;
            let names = stmt
                .query_map([], |r| r.get::<_, String>(0))
                .and_then(Iterator::collect::<rusqlite::Result<Vec<String>>>)
                .map_err(|e| map_err(&e, "discover", None))?;
            let mut out = Vec::with_capacity(names.len());
            for n in names {
                let info = table_info(c, &quote_for_name(&n))?;
                let mut pk: Vec<(i64, String)> = info.iter().filter(|x| x.3 > 0).map(|x| (x.3, x.0.clone())).collect();
                pk.sort();
                out.push(DatasetInfo {
                    name: n,
                    schema: schema_of(&info),
                    primary_key: pk.into_iter().map(|x| x.1).collect(),
                    row_estimate: None,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn plan(&self, request: &ReadRequest, max_partitions: usize) -> Result<Vec<Partition>> {
        let ReadTarget::Dataset(name) = &request.target else {
            return Ok(vec![Partition::single(request.clone())]);
        };
        let name = name.clone();
        let req = request.clone();
        self.blocking("plan", move |c| {
            let info = table_info(c, &name)?;
            if info.is_empty() {
                return Err(not_found(&name));
            }
            if let Some(p) = &req.projection {
                project_schema(&schema_of(&info), Some(p))?;
            }
            let single = vec![Partition::single(req.clone())];
            if max_partitions <= 1 {
                return Ok(single);
            }
            let rowid = ["_rowid_", "rowid", "oid"]
                .into_iter()
                .find(|r| !info.iter().any(|x| x.0.eq_ignore_ascii_case(r)));
            let Some(rowid) = rowid else {
                return Ok(single);
            };
            // Views and WITHOUT ROWID tables have no rowid: the query fails, read as one.
            let Ok((lo, hi)) = c.query_row(
                &format!(
                    "SELECT min({rowid}), max({rowid}) FROM {}",
                    quote_table(&name)
                ),
                [],
                |r| Ok((r.get::<_, Option<i64>>(0)?, r.get::<_, Option<i64>>(1)?)),
            ) else {
                return Ok(single);
            };
            let (Some(lo), Some(hi)) = (lo, hi) else {
                return Ok(single);
            };
            let span = i128::from(hi) - i128::from(lo) + 1;
            let n = (max_partitions as i128).min(span).max(1);
            let step = (span + n - 1) / n;
            let parts = (0..n)
                .map(|i| {
                    let a = i128::from(lo) + i * step;
                    let b = a + step;
                    // The first and last ranges are open so rows added since planning are not lost.
                    let a = if i == 0 { i64::MIN } else { a as i64 };
                    let range = if i == n - 1 {
                        serde_json::json!([a])
                    } else {
                        serde_json::json!([a, b as i64])
                    };
                    Partition {
                        request: req.clone(),
                        index: i as usize,
                        count: n as usize,
                        spec: serde_json::json!({"rowid": range, "rowid_column": rowid}),
                        row_estimate: None,
                    }
                })
                .collect();
            Ok(parts)
        })
        .await
    }

    async fn read(&self, partition: Partition) -> Result<SendableRecordBatchStream> {
        // Decimals are stored as exact TEXT, which SQLite compares as text: filters on them
        // are evaluated here instead.
        let push = match (&partition.request.target, &partition.request.filter) {
            (ReadTarget::Dataset(d), Some(f)) => {
                let d = d.clone();
                let cols: Vec<String> = f.columns().into_iter().map(str::to_owned).collect();
                self.blocking("read", move |c| {
                    let info = table_info(c, &d)?;
                    Ok(!info.iter().any(|x| {
                        cols.contains(&x.0)
                            && matches!(
                                arrow_type_for_decl(x.1.as_deref()),
                                Some(DataType::Decimal128(..))
                            )
                    }))
                })
                .await?
            }
            _ => true,
        };
        let (sql, params, label) = build_select(&partition, push);
        let job = ReadJob {
            sql,
            params,
            label,
            batch_rows: partition.request.batch_rows_or_default(),
            infer_undeclared: matches!(partition.request.target, ReadTarget::Query(_)),
        };
        let (schema_tx, schema_rx) = oneshot::channel();
        let (tx, rx) = mpsc::channel(2);
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || match inner.connect() {
            Ok(conn) => read_blocking(&conn, &job, schema_tx, &tx),
            Err(e) => {
                let _ = schema_tx.send(Err(e.with_connector(NAME).with_operation("read")));
            }
        });
        let schema = schema_rx.await.map_err(|_| {
            Error::internal("sqlite reader ended early")
                .with_connector(NAME)
                .with_operation("read")
        })??;
        let stream =
            futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) });
        let stream = connector_core::RecordBatchStreamAdapter::boxed(schema, stream);
        if push {
            Ok(stream)
        } else {
            connector_core::residual::apply(
                stream,
                &partition.request,
                connector_core::residual::Pushed::NONE,
            )
            .map_err(|e| e.with_connector(NAME).with_operation("read"))
        }
    }
}

/// Dataset names from `discover` are bare table names; quote them when they contain a dot.
fn quote_for_name(n: &str) -> String {
    if n.contains('.') || n.contains('"') {
        D.quote_ident(n)
    } else {
        n.to_owned()
    }
}

// ---------------------------------------------------------------------------------------------
// Writing

enum Msg {
    Batch(RecordBatch),
    Done,
}

/// Bind value `row` of `arr` as parameter `idx`.
fn bind(
    stmt: &mut rusqlite::Statement<'_>,
    idx: usize,
    arr: &dyn Array,
    row: usize,
) -> rusqlite::Result<()> {
    if arr.is_null(row) {
        return stmt.raw_bind_parameter(idx, ToSqlOutput::Borrowed(ValueRef::Null));
    }
    let int = |v: i64| ToSqlOutput::Owned(Value::Integer(v));
    let out: ToSqlOutput<'_> = match arr.data_type() {
        DataType::Int8 => int(arr.as_primitive::<Int8Type>().value(row).into()),
        DataType::Int16 => int(arr.as_primitive::<Int16Type>().value(row).into()),
        DataType::Int32 => int(arr.as_primitive::<Int32Type>().value(row).into()),
        DataType::Int64 => int(arr.as_primitive::<Int64Type>().value(row)),
        DataType::UInt8 => int(arr.as_primitive::<UInt8Type>().value(row).into()),
        DataType::UInt16 => int(arr.as_primitive::<UInt16Type>().value(row).into()),
        DataType::UInt32 => int(arr.as_primitive::<UInt32Type>().value(row).into()),
        DataType::UInt64 => {
            let v = arr.as_primitive::<UInt64Type>().value(row);
            int(i64::try_from(v)
                .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?)
        }
        DataType::Float32 => ToSqlOutput::Owned(Value::Real(
            arr.as_primitive::<Float32Type>().value(row).into(),
        )),
        DataType::Float64 => {
            ToSqlOutput::Owned(Value::Real(arr.as_primitive::<Float64Type>().value(row)))
        }
        DataType::Boolean => int(i64::from(arr.as_boolean().value(row))),
        DataType::Utf8 => {
            ToSqlOutput::Borrowed(ValueRef::Text(arr.as_string::<i32>().value(row).as_bytes()))
        }
        DataType::LargeUtf8 => {
            ToSqlOutput::Borrowed(ValueRef::Text(arr.as_string::<i64>().value(row).as_bytes()))
        }
        DataType::Utf8View => {
            ToSqlOutput::Borrowed(ValueRef::Text(arr.as_string_view().value(row).as_bytes()))
        }
        DataType::Binary => {
            ToSqlOutput::Borrowed(ValueRef::Blob(arr.as_binary::<i32>().value(row)))
        }
        DataType::LargeBinary => {
            ToSqlOutput::Borrowed(ValueRef::Blob(arr.as_binary::<i64>().value(row)))
        }
        DataType::BinaryView => {
            ToSqlOutput::Borrowed(ValueRef::Blob(arr.as_binary_view().value(row)))
        }
        DataType::FixedSizeBinary(_) => {
            ToSqlOutput::Borrowed(ValueRef::Blob(arr.as_fixed_size_binary().value(row)))
        }
        DataType::Date32 => ToSqlOutput::Owned(Value::Text(fmt_date(
            arr.as_primitive::<Date32Type>().value(row).into(),
        ))),
        DataType::Date64 => ToSqlOutput::Owned(Value::Text(fmt_date(
            arr.as_primitive::<arrow::datatypes::Date64Type>()
                .value(row)
                .div_euclid(86_400_000),
        ))),
        DataType::Timestamp(unit, _) => {
            let us = timestamp_us(arr, *unit, row).ok_or_else(|| {
                rusqlite::Error::ToSqlConversionFailure("timestamp out of range".into())
            })?;
            ToSqlOutput::Owned(Value::Text(fmt_timestamp_us(us)))
        }
        DataType::Time32(TimeUnit::Second) => ToSqlOutput::Owned(Value::Text(fmt_time_us(
            i64::from(arr.as_primitive::<Time32SecondType>().value(row)) * 1_000_000,
        ))),
        DataType::Time32(_) => ToSqlOutput::Owned(Value::Text(fmt_time_us(
            i64::from(arr.as_primitive::<Time32MillisecondType>().value(row)) * 1000,
        ))),
        DataType::Time64(TimeUnit::Nanosecond) => ToSqlOutput::Owned(Value::Text(fmt_time_us(
            arr.as_primitive::<Time64NanosecondType>().value(row) / 1000,
        ))),
        DataType::Time64(_) => ToSqlOutput::Owned(Value::Text(fmt_time_us(
            arr.as_primitive::<Time64MicrosecondType>().value(row),
        ))),
        DataType::Decimal128(_, s) => ToSqlOutput::Owned(Value::Text(decimal_to_string(
            arr.as_primitive::<Decimal128Type>().value(row),
            *s,
        ))),
        other => {
            return Err(rusqlite::Error::ToSqlConversionFailure(
                format!("Arrow type {other} is not supported").into(),
            ));
        }
    };
    stmt.raw_bind_parameter(idx, out)
}

/// A timestamp value in microseconds.
pub(crate) fn timestamp_us(arr: &dyn Array, unit: TimeUnit, row: usize) -> Option<i64> {
    use arrow::datatypes::{
        TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
        TimestampSecondType,
    };
    match unit {
        TimeUnit::Second => arr
            .as_primitive::<TimestampSecondType>()
            .value(row)
            .checked_mul(1_000_000),
        TimeUnit::Millisecond => arr
            .as_primitive::<TimestampMillisecondType>()
            .value(row)
            .checked_mul(1000),
        TimeUnit::Microsecond => Some(arr.as_primitive::<TimestampMicrosecondType>().value(row)),
        TimeUnit::Nanosecond => Some(
            arr.as_primitive::<TimestampNanosecondType>()
                .value(row)
                .div_euclid(1000),
        ),
    }
}

struct WriteJob {
    req: WriteRequest,
    incoming: SchemaRef,
}

fn write_blocking(
    conn: &mut Connection,
    job: &WriteJob,
    rx: &mut mpsc::Receiver<Msg>,
) -> Result<WriteReport> {
    let started = Instant::now();
    let target = job.req.target.as_str();
    let qt = quote_table(target);
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(|e| map_err(&e, "begin", Some(target)))?;
    let info = table_info(&tx, target)?;
    let mut report = WriteReport::default();
    let keys = write_keys(&job.req.mode, &job.incoming, target)?;
    let plan_schema: SchemaRef;
    let plan;
    if info.is_empty() {
        if !job.req.create_if_missing || matches!(job.req.mode, WriteMode::Delete(_)) {
            return Err(not_found(target));
        }
        let cols = job
            .incoming
            .fields()
            .iter()
            .map(|f| {
                Ok(format!(
                    "{} {}{}",
                    D.quote_ident(f.name()),
                    decl_for_arrow(f.data_type(), f.name())?,
                    if f.is_nullable() { "" } else { " NOT NULL" }
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut ddl = format!("CREATE TABLE {qt} ({})", cols.join(", "));
        if let WriteMode::Upsert(k) = &job.req.mode {
            let _ = write!(
                ddl,
                "; CREATE UNIQUE INDEX {} ON {qt} ({})",
                D.quote_ident(&format!("{}_upsert_key", table_parts(target).1)),
                k.iter()
                    .map(|c| D.quote_ident(c))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            // An index name is per schema: qualify it like the table.
            if let (Some(s), _) = table_parts(target) {
                ddl = ddl.replacen(
                    "CREATE UNIQUE INDEX ",
                    &format!("CREATE UNIQUE INDEX {}.", D.quote_ident(&s)),
                    1,
                );
            }
        }
        tx.execute_batch(&ddl)
            .map_err(|e| map_err(&e, "create table", Some(target)))?;
        plan_schema = job.incoming.clone();
        plan = None;
    } else {
        let existing = schema_of(&info);
        let aligned = align_to_target(&existing, &job.incoming);
        let p = reconcile(&existing, &aligned, job.req.schema_drift, target)?;
        for f in &p.added {
            tx.execute(
                &format!(
                    "ALTER TABLE {qt} ADD COLUMN {} {}",
                    D.quote_ident(f.name()),
                    decl_for_arrow(f.data_type(), f.name())?
                ),
                [],
            )
            .map_err(|e| {
                map_err(&e, "add column", Some(target))
                    .with_location(Location::default().with_column(f.name().clone()))
            })?;
            report.columns_added.push(f.name().clone());
        }
        report.columns_ignored.clone_from(&p.ignored);
        plan_schema = p.target.clone();
        plan = Some((aligned, p));
    }
    if matches!(job.req.mode, WriteMode::Overwrite) {
        tx.execute(&format!("DELETE FROM {qt}"), [])
            .map_err(|e| map_err(&e, "overwrite", Some(target)))?;
    }
    let names: Vec<String> = plan_schema
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let qcols: Vec<String> = names.iter().map(|c| D.quote_ident(c)).collect();
    // Upsert without a unique index on exactly the keys: delete the key, then insert, per row.
    let upsert_by_delete = match &job.req.mode {
        WriteMode::Upsert(k) if !info.is_empty() => !has_unique_key(&tx, target, &info, k)?,
        _ => false,
    };
    let (sql, bind_cols): (String, Vec<usize>) = match &job.req.mode {
        WriteMode::Delete(k) => {
            let conds: Vec<String> = k
                .iter()
                .enumerate()
                .map(|(i, c)| format!("{} = ?{}", D.quote_ident(c), i + 1))
                .collect();
            let idx = k
                .iter()
                .map(|c| names.iter().position(|n| n == c).unwrap_or(usize::MAX))
                .collect();
            (
                format!("DELETE FROM {qt} WHERE {}", conds.join(" AND ")),
                idx,
            )
        }
        mode => {
            let ph: Vec<String> = (1..=names.len()).map(|i| format!("?{i}")).collect();
            let mut sql = format!(
                "INSERT INTO {qt} ({}) VALUES ({})",
                qcols.join(", "),
                ph.join(", ")
            );
            if let (WriteMode::Upsert(k), false) = (mode, upsert_by_delete) {
                let sets: Vec<String> = names
                    .iter()
                    .filter(|n| !k.contains(n))
                    .map(|n| format!("{0} = excluded.{0}", D.quote_ident(n)))
                    .collect();
                let keys = k
                    .iter()
                    .map(|c| D.quote_ident(c))
                    .collect::<Vec<_>>()
                    .join(", ");
                if sets.is_empty() {
                    let _ = write!(sql, " ON CONFLICT ({keys}) DO NOTHING");
                } else {
                    let _ = write!(
                        sql,
                        " ON CONFLICT ({keys}) DO UPDATE SET {}",
                        sets.join(", ")
                    );
                }
            }
            (sql, (0..names.len()).collect())
        }
    };
    if bind_cols.contains(&usize::MAX) {
        return Err(Error::new(
            ErrorKind::SchemaMismatch,
            "a key column is not in the target",
        )
        .with_location(Location::table(target)));
    }
    let mut stmt = tx.prepare(&sql).map_err(|e| {
        let mut err = map_err(&e, "prepare write", Some(target));
        if err.message().contains("ON CONFLICT clause does not match") {
            err = Error::new(
                ErrorKind::SchemaMismatch,
                format!(
                    "upsert needs a unique index or primary key on the key columns of {target:?}"
                ),
            )
            .with_location(Location::table(target))
            .with_source(err);
        }
        err
    })?;
    let mut del_stmt = match (&job.req.mode, upsert_by_delete) {
        (WriteMode::Upsert(k), true) => {
            let conds: Vec<String> = k
                .iter()
                .enumerate()
                .map(|(i, c)| format!("{} = ?{}", D.quote_ident(c), i + 1))
                .collect();
            let sql = format!("DELETE FROM {qt} WHERE {}", conds.join(" AND "));
            Some(
                tx.prepare(&sql)
                    .map_err(|e| map_err(&e, "prepare upsert", Some(target)))?,
            )
        }
        _ => None,
    };
    let key_idx: Vec<usize> = keys
        .iter()
        .filter_map(|k| names.iter().position(|n| n == k))
        .collect();
    let mut deleted = 0u64;
    let mut row_base: u64 = 0;
    loop {
        let Some(msg) = rx.blocking_recv() else {
            return Err(Error::new(
                ErrorKind::Cancelled,
                "the input stream ended with an error; nothing was written",
            ));
        };
        let batch = match msg {
            Msg::Done => break,
            Msg::Batch(b) => b,
        };
        report.bytes += batch.get_array_memory_size() as u64;
        let batch = match &plan {
            Some((aligned, p)) => p.apply(&cast_batch(&batch, aligned)?)?,
            None => batch,
        };
        let arrays: Vec<&dyn Array> = bind_cols
            .iter()
            .map(|i| batch.column(*i).as_ref())
            .collect();
        for r in 0..batch.num_rows() {
            if let Some(del) = del_stmt.as_mut() {
                for (j, i) in key_idx.iter().enumerate() {
                    bind(del, j + 1, batch.column(*i).as_ref(), r)
                        .map_err(|e| map_err(&e, "bind", Some(target)))?;
                }
                del.raw_execute()
                    .map_err(|e| map_err(&e, "upsert", Some(target)))?;
            }
            for (j, a) in arrays.iter().enumerate() {
                bind(&mut stmt, j + 1, *a, r).map_err(|e| {
                    map_err(&e, "bind", Some(target)).with_location(
                        Location::default()
                            .with_column(names[bind_cols[j]].clone())
                            .with_row(row_base + r as u64),
                    )
                })?;
            }
            let n = stmt.raw_execute().map_err(|e| {
                map_err(&e, "write", Some(target))
                    .with_location(Location::default().with_row(row_base + r as u64))
            })?;
            deleted += n as u64;
        }
        row_base += batch.num_rows() as u64;
    }
    drop(stmt);
    drop(del_stmt);
    tx.commit()
        .map_err(|e| map_err(&e, "commit", Some(target)))?;
    Ok(finish_report(
        report,
        &job.req.mode,
        row_base,
        deleted,
        started,
        target,
    ))
}

#[async_trait]
impl Sink for SqliteConnector {
    fn name(&self) -> &'static str {
        NAME
    }

    fn capabilities(&self) -> SinkCapabilities {
        sink_caps()
    }

    async fn check(&self) -> Result<()> {
        Source::check(self).await
    }

    async fn write(
        &self,
        request: WriteRequest,
        mut data: SendableRecordBatchStream,
    ) -> Result<WriteReport> {
        let job = WriteJob {
            incoming: data.schema(),
            req: request,
        };
        let (tx, mut rx) = mpsc::channel::<Msg>(2);
        let inner = self.inner.clone();
        let worker = tokio::task::spawn_blocking(move || {
            let mut conn = inner.connect()?;
            write_blocking(&mut conn, &job, &mut rx)
        });
        let mut stream_err = None;
        while let Some(b) = data.next().await {
            match b {
                Ok(b) => {
                    if tx.send(Msg::Batch(b)).await.is_err() {
                        break; // the worker failed; its error is below
                    }
                }
                Err(e) => {
                    stream_err = Some(e);
                    break;
                }
            }
        }
        if stream_err.is_none() {
            let _ = tx.send(Msg::Done).await;
        }
        drop(tx);
        let res = worker
            .await
            .map_err(|e| Error::internal(format!("sqlite writer failed: {e}")))
            .and_then(|r| r);
        if let Some(e) = stream_err {
            return Err(e.with_connector(NAME).with_operation("write"));
        }
        res.map_err(|e| e.with_connector(NAME).with_operation("write"))
    }
}

/// Registry factory of the `sqlite` kind.
#[derive(Debug, Clone, Copy, Default)]
pub struct SqliteFactory;

#[async_trait]
impl ConnectorFactory for SqliteFactory {
    type Config = SqliteConfig;

    fn kind(&self) -> &'static str {
        NAME
    }

    fn description(&self) -> &'static str {
        "SQLite database file (bundled SQLite)"
    }

    fn capabilities(&self) -> KindCapabilities {
        kind_caps(source_caps())
    }

    async fn build(&self, config: SqliteConfig) -> Result<connector_core::registry::Connector> {
        let c = SqliteConnector::new(config)?;
        Ok(connector_core::registry::Connector::both(c.clone(), c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decl_types_map() {
        assert_eq!(arrow_type_for_decl(Some("integer")), Some(DataType::Int64));
        assert_eq!(
            arrow_type_for_decl(Some("VARCHAR(10)")),
            Some(DataType::Utf8)
        );
        assert_eq!(
            arrow_type_for_decl(Some("DECIMAL_TEXT(10,2)")),
            Some(DataType::Decimal128(10, 2))
        );
        assert_eq!(
            arrow_type_for_decl(Some("numeric")),
            Some(DataType::Float64)
        );
        assert_eq!(arrow_type_for_decl(None), None);
        for t in [
            DataType::Int8,
            DataType::UInt32,
            DataType::Float32,
            DataType::Date32,
            DataType::Decimal128(12, 3),
        ] {
            let d = decl_for_arrow(&t, "c").unwrap();
            assert_eq!(arrow_type_for_decl(Some(&d)), Some(t));
        }
    }

    #[test]
    fn text_formats_round_trip() {
        for us in [0_i64, -1, 1_700_000_000_123_456, -62_135_596_800_000_000] {
            assert_eq!(parse_timestamp(&fmt_timestamp_us(us)), Some(us));
        }
        assert_eq!(
            parse_timestamp("2024-01-01T01:00:00+01:00"),
            parse_timestamp("2024-01-01 00:00:00")
        );
        assert_eq!(
            parse_time(&fmt_time_us(45_296_000_001)),
            Some(45_296_000_001)
        );
        assert_eq!(parse_date("2024-02-30"), None);
        assert_eq!(parse_time("25:00"), None);
    }
}
