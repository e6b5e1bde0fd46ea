//! MySQL and MariaDB as an Arrow [`Source`] and [`Sink`].
//!
//! # Driver
//! [`mysql_async`] (pure Rust, tokio, maintained by the author of the long-standing `mysql`
//! crate and `mysql_common`, released regularly). It speaks the binary protocol through prepared
//! statements with a per-connection statement cache, has its own connection pool, and decodes
//! DECIMAL as text and temporal values as structured values, so nothing goes through `f64`.
//! `sqlx-mysql` was the alternative: it is async too, but its row decoding goes through its own
//! type system per value and it pulls in the whole sqlx runtime layer; mysql_async builds with
//! `default-features = false` and no TLS stack.
//!
//! Every read runs one prepared `SELECT` on one pooled connection in a tokio task that decodes
//! rows straight into Arrow builders and hands finished batches over a bounded channel (two in
//! flight), so memory is bounded by the batch size. Dropping the stream stops the task, which
//! kills the running query (`KILL QUERY`) and closes that connection instead of draining it.
//!
//! Filter pushdown compares in the server: text comparisons follow the column's collation
//! (tables this connector creates use `utf8mb4_bin`, which compares exactly as Arrow does; a
//! case-insensitive collation makes `=` case-insensitive).
//!
//! # Type mapping (reads)
//!
//! | MySQL / MariaDB                       | Arrow                          |
//! |---------------------------------------|--------------------------------|
//! | `TINYINT(1)` / `BOOL`                 | Boolean (non-zero is true)     |
//! | `TINYINT` / `SMALLINT` / `MEDIUMINT` / `INT` / `BIGINT` | Int8 / Int16 / Int32 / Int32 / Int64 |
//! | the same `UNSIGNED`                   | UInt8 / UInt16 / UInt32 / UInt32 / UInt64 |
//! | `FLOAT` / `DOUBLE`                    | Float32 / Float64              |
//! | `DECIMAL(p,s)`, p ≤ 38                | Decimal128(p,s), parsed exactly from the server's text |
//! | `DECIMAL(p,s)`, p > 38 (e.g. `SUM(BIGINT)`) | Decimal256(p,s), exact       |
//! | `DATE`                                | Date32                         |
//! | `DATETIME(fsp)`                       | Timestamp(µs, None)            |
//! | `TIMESTAMP(fsp)`                      | Timestamp(µs, "UTC") (session `time_zone = '+00:00'`) |
//! | `TIME(fsp)`                           | Duration(µs) (TIME can be negative and exceed 24 h) |
//! | `YEAR`                                | Int16                          |
//! | `CHAR` / `VARCHAR` / `TEXT` / `ENUM` / `SET` / `JSON` | Utf8           |
//! | the same with a binary collation, `BINARY` / `VARBINARY` / `BLOB` | Binary |
//! | `BIT(1)`                              | Boolean                        |
//! | `BIT(n)`, n > 1                       | UInt64                         |
//! | `GEOMETRY` and subtypes               | Binary (MySQL's internal form: 4-byte SRID + WKB) |
//! | anything else                         | [`ErrorKind::Unsupported`] naming the column |
//!
//! Zero dates (`'0000-00-00'`, or a zero month or day) follow [`ZeroDatePolicy`]: an error
//! naming table, column and row (default), or NULL.
//!
//! # Type mapping (tables created from Arrow)
//! Int8…Int64 → `TINYINT`…`BIGINT`, UInt8…UInt64 → the same `UNSIGNED`, Float32/64 →
//! `FLOAT`/`DOUBLE`, Boolean → `BOOLEAN`, Utf8 → `LONGTEXT` (`VARCHAR(255)` for key columns, so
//! they can be indexed), Binary → `LONGBLOB` (`VARBINARY(255)` for keys), Date32 → `DATE`,
//! Timestamp without zone → `DATETIME(6)`, Timestamp with zone → `TIMESTAMP(6)` (stored in UTC;
//! MySQL's TIMESTAMP range is 1970–2038), Time64/Duration → `TIME(6)` (reads back as
//! Duration), Decimal128(p,s) → `DECIMAL(p,s)`. Tables are InnoDB, `utf8mb4` with binary
//! collation (text compares exactly, as Arrow does).
//!
//! # Writes
//! Rows go in as multi-row `INSERT … VALUES (…),(…)` prepared statements (at most 65,535
//! placeholders and a quarter of `max_allowed_packet` per statement), inside ONE transaction
//! (InnoDB): a failure rolls back every row. Overwrite is `DELETE` in that same transaction (not
//! `TRUNCATE`, which commits implicitly). Upsert is `INSERT … ON DUPLICATE KEY UPDATE` when a
//! primary key or unique index covers exactly the keys (a table created by an upsert gets one);
//! otherwise each chunk first deletes its keys and then inserts its rows (a key repeated in the
//! input: the last row wins). Delete deletes by key tuples in chunks.
//!
//! DDL commits implicitly in MySQL and MariaDB, so `CREATE TABLE` and drift's
//! `ALTER TABLE … ADD COLUMN` run before the data transaction; when the write then fails, the
//! connector undoes them (`DROP TABLE` / `DROP COLUMN`, best effort) so that the target is left as
//! it was. A concurrent reader may briefly see the created table or added column.
//!
//! # Partitions and consistency
//! A table read with `max_partitions > 1` splits on an integer column (the configured
//! `partition_column`, else the table's single-column integer primary key, else its first
//! integer column) into even ranges of
//! `min..=max` (NULL keys go to the first partition; the first and last ranges are open-ended so
//! rows added after planning are not lost). Each partition is one `SELECT` on its own
//! connection and so sees its own consistent snapshot; the partitions are NOT one snapshot
//! together: a row updated between two partitions' starts may be seen in either state (never
//! twice, since ranges do not overlap, unless its partition key itself changes). MySQL has no
//! way to share a snapshot between connections.
//!
//! # Errors
//! Server errors keep their code (`vendor_code`) and SQLSTATE. 1045 → Authentication;
//! 1146/1049 → NotFound; 1142/1143/1044/1227 → Permission; 1062/1451/1452 → Conflict;
//! 1969/3024 (statement timeout) → Timeout; 1205 lock wait → Timeout, 1213 deadlock → Conflict,
//! both temporary; connection failures → Connection (temporary).

// Product names (MySQL, MariaDB, InnoDB) in docs are not code.
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
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder,
    Decimal256Builder, DurationMicrosecondBuilder, Float64Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder, UInt64Builder,
};
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Decimal256Type, DurationMicrosecondType,
    DurationMillisecondType, DurationNanosecondType, DurationSecondType, Field, Float32Type,
    Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, Schema, SchemaRef,
    Time32MillisecondType, Time32SecondType, Time64MicrosecondType, Time64NanosecondType, TimeUnit,
    UInt8Type, UInt16Type, UInt32Type, UInt64Type, i256,
};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use connector_core::drift::reconcile;
use connector_core::registry::{Connector, ConnectorFactory, KindCapabilities};
use connector_core::residual::project_schema;
use connector_core::{
    DatasetInfo, Error, ErrorKind, Literal, Location, Partition, ReadRequest, ReadTarget, Result,
    Secret, SendableRecordBatchStream, Sink, SinkCapabilities, Source, SourceCapabilities,
    WriteMode, WriteReport, WriteRequest,
};
use futures::StreamExt;
use mysql_async::consts::{ColumnFlags, ColumnType};
use mysql_async::prelude::Queryable;
use mysql_async::{Column, Conn, Params, Pool, Value};
use serde::Deserialize;
use tokio::sync::{OnceCell, mpsc, oneshot};

use crate::shared::{finish_report, kind_caps, sink_caps, source_caps, write_keys};
use crate::sql::{
    Dialect, align_to_target, cast_batch, civil_from_days, days_from_civil, decimal_to_string,
    parse_decimal, render_filter, split_qualified,
};

const NAME: &str = "mysql";
const D: Dialect = Dialect::MySql;
const BINARY_CHARSET: u16 = 63;

/// What to do with MySQL zero dates (`0000-00-00`, zero month or day).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ZeroDatePolicy {
    /// An error naming table, column and row.
    #[default]
    Error,
    /// Read as NULL.
    Null,
}

/// Configuration of the `mysql` kind.
#[derive(Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MySqlConfig {
    /// A `mysql://user:password@host:port/db` URL; fields below override its parts.
    #[serde(default)]
    pub url: Option<Secret>,
    /// Host (default 127.0.0.1).
    #[serde(default)]
    pub host: Option<String>,
    /// Port (default 3306).
    #[serde(default)]
    pub port: Option<u16>,
    /// User name.
    #[serde(default)]
    pub user: Option<String>,
    /// Password.
    #[serde(default)]
    pub password: Option<Secret>,
    /// Default database: unqualified table names live here.
    #[serde(default)]
    pub database: Option<String>,
    /// Most connections the pool opens (default 10).
    #[serde(default = "default_pool")]
    pub pool_max: usize,
    /// Connect timeout in milliseconds (default 10000).
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_ms: u64,
    /// Per-statement timeout in milliseconds (MariaDB `max_statement_time`; MySQL
    /// `max_execution_time`, which applies to SELECT only). None: server default.
    #[serde(default)]
    pub statement_timeout_ms: Option<u64>,
    /// Integer column to split partitioned reads on (default: a single-column integer primary key).
    #[serde(default)]
    pub partition_column: Option<String>,
    /// Zero dates: `error` (default) or `null`.
    #[serde(default)]
    pub zero_date: ZeroDatePolicy,
    /// Most rows per multi-row INSERT statement (default 2000).
    #[serde(default = "default_insert_rows")]
    pub insert_rows: usize,
}

fn default_pool() -> usize {
    10
}
fn default_connect_timeout() -> u64 {
    10_000
}
fn default_insert_rows() -> usize {
    2000
}

impl Default for MySqlConfig {
    fn default() -> Self {
        Self {
            url: None,
            host: None,
            port: None,
            user: None,
            password: None,
            database: None,
            pool_max: default_pool(),
            connect_timeout_ms: default_connect_timeout(),
            statement_timeout_ms: None,
            partition_column: None,
            zero_date: ZeroDatePolicy::Error,
            insert_rows: default_insert_rows(),
        }
    }
}

impl fmt::Debug for MySqlConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MySqlConfig")
            .field("url", &self.url.as_ref().map(|_| "***"))
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password)
            .field("database", &self.database)
            .field("pool_max", &self.pool_max)
            .field("connect_timeout_ms", &self.connect_timeout_ms)
            .field("statement_timeout_ms", &self.statement_timeout_ms)
            .field("partition_column", &self.partition_column)
            .field("zero_date", &self.zero_date)
            .finish_non_exhaustive()
    }
}

impl MySqlConfig {
    /// A config from a `mysql://` URL (kept secret: it may hold a password).
    pub fn from_url(url: impl Into<String>) -> Self {
        Self {
            url: Some(Secret::new(url.into())),
            ..Self::default()
        }
    }

    /// Set the default database.
    #[must_use]
    pub fn with_database(mut self, db: impl Into<String>) -> Self {
        self.database = Some(db.into());
        self
    }

    fn opts(&self) -> Result<mysql_async::OptsBuilder> {
        let mut b = match &self.url {
            Some(u) => {
                // The URL may carry a password: never echo it or the parser's message.
                let o = mysql_async::Opts::from_url(u.expose()).map_err(|_| {
                    Error::invalid_config("`url` is not a valid mysql:// URL").with_connector(NAME)
                })?;
                mysql_async::OptsBuilder::from_opts(o)
            }
            None => mysql_async::OptsBuilder::default()
                .ip_or_hostname("127.0.0.1")
                .tcp_port(3306),
        };
        if let Some(h) = &self.host {
            b = b.ip_or_hostname(h.clone());
        }
        if let Some(p) = self.port {
            b = b.tcp_port(p);
        }
        if let Some(u) = &self.user {
            b = b.user(Some(u.clone()));
        }
        if let Some(p) = &self.password {
            b = b.pass(Some(p.expose().to_owned()));
        }
        if let Some(d) = &self.database {
            b = b.db_name(Some(d.clone()));
        }
        Ok(b.prefer_socket(false).tcp_nodelay(true))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavor {
    MariaDb,
    MySql,
}

struct Inner {
    config: MySqlConfig,
    pool: OnceCell<(Pool, Flavor)>,
}

/// A MySQL or MariaDB server as a source and a sink. Cheap to clone (shares the pool).
#[derive(Clone)]
pub struct MySqlConnector {
    inner: Arc<Inner>,
}

impl fmt::Debug for MySqlConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MySqlConnector")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// Map a driver error to ours.
fn map_err(e: mysql_async::Error, what: &str) -> Error {
    use mysql_async::Error as E;
    match e {
        E::Server(s) => {
            let (kind, temporary) = match s.code {
                1045 | 1698 => (ErrorKind::Authentication, false),
                1146 | 1049 | 1051 => (ErrorKind::NotFound, false),
                1142 | 1143 | 1044 | 1227 | 1370 => (ErrorKind::Permission, false),
                1062 | 1451 | 1452 | 1586 | 1022 => (ErrorKind::Conflict, false),
                1969 | 3024 => (ErrorKind::Timeout, true),
                1205 => (ErrorKind::Timeout, true),
                1213 => (ErrorKind::Conflict, true),
                1040 | 1053 | 1152 | 1158 | 1159 | 1160 | 1161 | 2002 | 2003 | 2006 | 2013 => {
                    (ErrorKind::Connection, true)
                }
                1054 | 1136 => (ErrorKind::SchemaMismatch, false),
                1264 | 1292 | 1366 | 1406 | 1048 | 1365 => (ErrorKind::InvalidInput, false),
                1317 => (ErrorKind::Cancelled, false),
                _ => (ErrorKind::Query, false),
            };
            let mut err = Error::new(kind, format!("{what} failed: {}", s.message))
                .with_connector(NAME)
                .with_vendor_code(i64::from(s.code))
                .with_sqlstate(s.state.clone());
            err = if temporary {
                err.temporary()
            } else {
                err.permanent()
            };
            err
        }
        E::Io(io) => Error::new(ErrorKind::Connection, format!("{what} failed: {io}"))
            .with_connector(NAME)
            .temporary()
            .with_source(io),
        E::Driver(d) => {
            use mysql_async::DriverError as Dr;
            let kind = match &d {
                Dr::ConnectionClosed | Dr::PoolDisconnected => ErrorKind::Connection,
                Dr::UnexpectedPacket { .. } | Dr::PacketOutOfOrder | Dr::PacketTooLarge => {
                    ErrorKind::Decode
                }
                _ => ErrorKind::Query,
            };
            let err = Error::new(kind, format!("{what} failed: {d}")).with_connector(NAME);
            if kind == ErrorKind::Connection {
                err.temporary()
            } else {
                err
            }
        }
        E::Url(_) => Error::invalid_config("invalid MySQL connection URL").with_connector(NAME),
        E::Other(o) => {
            Error::new(ErrorKind::Internal, format!("{what} failed: {o}")).with_connector(NAME)
        }
    }
}

impl MySqlConnector {
    /// A connector for `config`. Nothing is contacted until the first call.
    pub fn new(config: MySqlConfig) -> Result<Self> {
        config.opts()?;
        if config.pool_max == 0 {
            return Err(Error::invalid_config("`pool_max` must be at least 1").with_connector(NAME));
        }
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                pool: OnceCell::new(),
            }),
        })
    }

    fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.inner.config.connect_timeout_ms.max(1))
    }

    async fn pool(&self) -> Result<&(Pool, Flavor)> {
        self.inner
            .pool
            .get_or_try_init(|| async {
                let base = self.inner.config.opts()?;
                let timeout = self.connect_timeout();
                let conn = tokio::time::timeout(timeout, Conn::new(base.clone()))
                    .await
                    .map_err(|_| connect_timed_out(timeout))?
                    .map_err(|e| map_err(e, "connect"))?;
                let mut conn = conn;
                let version: Option<String> = conn
                    .query_first("SELECT VERSION()")
                    .await
                    .map_err(|e| map_err(e, "connect"))?;
                let _ = conn.disconnect().await;
                let flavor = if version.unwrap_or_default().contains("MariaDB") {
                    Flavor::MariaDb
                } else {
                    Flavor::MySql
                };
                let mut init = vec![
                    "SET time_zone = '+00:00'".to_owned(),
                    "SET NAMES utf8mb4".to_owned(),
                ];
                if let Some(ms) = self.inner.config.statement_timeout_ms {
                    init.push(match flavor {
                        Flavor::MariaDb => {
                            format!("SET SESSION max_statement_time = {:.3}", ms as f64 / 1000.0)
                        }
                        Flavor::MySql => format!("SET SESSION max_execution_time = {ms}"),
                    });
                }
                let constraints = mysql_async::PoolConstraints::new(0, self.inner.config.pool_max)
                    .ok_or_else(|| {
                        Error::invalid_config("invalid pool size").with_connector(NAME)
                    })?;
                let opts = base
                    .init(init)
                    .pool_opts(mysql_async::PoolOpts::new().with_constraints(constraints));
                Ok::<_, Error>((Pool::new(opts), flavor))
            })
            .await
    }

    /// A pooled connection with the session set up.
    async fn conn(&self) -> Result<Conn> {
        let (pool, _) = self.pool().await?;
        let timeout = self.connect_timeout();
        tokio::time::timeout(timeout, pool.get_conn())
            .await
            .map_err(|_| connect_timed_out(timeout))?
            .map_err(|e| map_err(e, "connect"))
    }

    /// Run SQL statements (text protocol, no results), e.g. to prepare fixtures.
    pub async fn execute(&self, sql: &str) -> Result<()> {
        let mut c = self.conn().await.map_err(|e| e.with_operation("execute"))?;
        c.query_drop(sql)
            .await
            .map_err(|e| map_err(e, "execute").with_operation("execute"))
    }

    /// Close the pool's connections.
    pub async fn close(&self) {
        if let Some((pool, _)) = self.inner.pool.get() {
            let _ = pool.clone().disconnect().await;
        }
    }
}

fn connect_timed_out(t: Duration) -> Error {
    Error::new(ErrorKind::Connection, format!("no connection within {t:?}"))
        .with_connector(NAME)
        .temporary()
}

// ---------------------------------------------------------------------------------------------
// Type mapping

/// The Arrow type of a result column.
pub fn arrow_type(col: &Column) -> Result<DataType> {
    use ColumnType as T;
    let flags = col.flags();
    let unsigned = flags.contains(ColumnFlags::UNSIGNED_FLAG);
    let binary = col.character_set() == BINARY_CHARSET;
    let t = match col.column_type() {
        T::MYSQL_TYPE_TINY if col.column_length() == 1 && !unsigned => DataType::Boolean,
        T::MYSQL_TYPE_TINY if unsigned => DataType::UInt8,
        T::MYSQL_TYPE_TINY => DataType::Int8,
        T::MYSQL_TYPE_SHORT if unsigned => DataType::UInt16,
        T::MYSQL_TYPE_SHORT => DataType::Int16,
        T::MYSQL_TYPE_INT24 | T::MYSQL_TYPE_LONG if unsigned => DataType::UInt32,
        T::MYSQL_TYPE_INT24 | T::MYSQL_TYPE_LONG => DataType::Int32,
        T::MYSQL_TYPE_LONGLONG if unsigned => DataType::UInt64,
        T::MYSQL_TYPE_LONGLONG => DataType::Int64,
        T::MYSQL_TYPE_FLOAT => DataType::Float32,
        T::MYSQL_TYPE_DOUBLE => DataType::Float64,
        T::MYSQL_TYPE_NEWDECIMAL | T::MYSQL_TYPE_DECIMAL => {
            let s = col.decimals();
            let len = col.column_length();
            let p = len
                .saturating_sub(u32::from(s > 0))
                .saturating_sub(u32::from(!unsigned))
                .max(1);
            if u32::from(s) > p || p > 76 {
                DataType::Utf8
            } else if p <= 38 {
                DataType::Decimal128(p as u8, s as i8)
            } else {
                DataType::Decimal256(p as u8, s as i8)
            }
        }
        T::MYSQL_TYPE_DATE | T::MYSQL_TYPE_NEWDATE => DataType::Date32,
        T::MYSQL_TYPE_DATETIME | T::MYSQL_TYPE_DATETIME2 => {
            DataType::Timestamp(TimeUnit::Microsecond, None)
        }
        T::MYSQL_TYPE_TIMESTAMP | T::MYSQL_TYPE_TIMESTAMP2 => {
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        }
        T::MYSQL_TYPE_TIME | T::MYSQL_TYPE_TIME2 => DataType::Duration(TimeUnit::Microsecond),
        T::MYSQL_TYPE_YEAR => DataType::Int16,
        T::MYSQL_TYPE_BIT if col.column_length() == 1 => DataType::Boolean,
        T::MYSQL_TYPE_BIT => DataType::UInt64,
        T::MYSQL_TYPE_JSON | T::MYSQL_TYPE_ENUM | T::MYSQL_TYPE_SET => DataType::Utf8,
        T::MYSQL_TYPE_VARCHAR
        | T::MYSQL_TYPE_VAR_STRING
        | T::MYSQL_TYPE_STRING
        | T::MYSQL_TYPE_TINY_BLOB
        | T::MYSQL_TYPE_MEDIUM_BLOB
        | T::MYSQL_TYPE_LONG_BLOB
        | T::MYSQL_TYPE_BLOB => {
            if flags.intersects(ColumnFlags::ENUM_FLAG | ColumnFlags::SET_FLAG) || !binary {
                DataType::Utf8
            } else {
                DataType::Binary
            }
        }
        T::MYSQL_TYPE_GEOMETRY => DataType::Binary,
        T::MYSQL_TYPE_NULL => DataType::Utf8,
        other => {
            let name = col.name_str();
            return Err(Error::unsupported(format!(
                "column {name:?} has MySQL type {other:?}, which has no Arrow mapping"
            ))
            .with_location(Location::default().with_column(name.into_owned())));
        }
    };
    Ok(t)
}

/// The column type used when creating a column of Arrow type `t`.
pub fn ddl_type(t: &DataType, column: &str, is_key: bool) -> Result<String> {
    Ok(match t {
        DataType::Int8 => "TINYINT".into(),
        DataType::Int16 => "SMALLINT".into(),
        DataType::Int32 => "INT".into(),
        DataType::Int64 => "BIGINT".into(),
        DataType::UInt8 => "TINYINT UNSIGNED".into(),
        DataType::UInt16 => "SMALLINT UNSIGNED".into(),
        DataType::UInt32 => "INT UNSIGNED".into(),
        DataType::UInt64 => "BIGINT UNSIGNED".into(),
        DataType::Float32 => "FLOAT".into(),
        DataType::Float64 => "DOUBLE".into(),
        DataType::Boolean => "BOOLEAN".into(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View if is_key => {
            "VARCHAR(255)".into()
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "LONGTEXT".into(),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView if is_key => {
            "VARBINARY(255)".into()
        }
        DataType::FixedSizeBinary(n) if *n <= 255 => format!("BINARY({n})"),
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => "LONGBLOB".into(),
        DataType::Date32 | DataType::Date64 => "DATE".into(),
        DataType::Timestamp(_, None) => "DATETIME(6)".into(),
        DataType::Timestamp(_, Some(_)) => "TIMESTAMP(6) NULL".into(),
        DataType::Time32(_) | DataType::Time64(_) | DataType::Duration(_) => "TIME(6)".into(),
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s)
            if *p <= 65 && *s >= 0 && *s <= 30 =>
        {
            format!("DECIMAL({p},{s})")
        }
        other => {
            return Err(Error::unsupported(format!(
                "column {column:?}: Arrow type {other} cannot be stored in MySQL"
            ))
            .with_location(Location::default().with_column(column)));
        }
    })
}

fn literal_value(l: &Literal) -> Value {
    match l {
        Literal::Null => Value::NULL,
        Literal::Bool(b) => Value::Int(i64::from(*b)),
        Literal::Int(i) => Value::Int(*i),
        Literal::Float(f) => Value::Double(*f),
        Literal::String(s) => Value::Bytes(s.as_bytes().to_vec()),
        Literal::Date(d) => date_value(i64::from(*d) * 86_400_000_000).unwrap_or(Value::NULL),
        Literal::TimestampMicros(t) => date_value(*t).unwrap_or(Value::NULL),
    }
}

/// Microseconds since the epoch → a DATETIME value (None outside years 0..=9999).
fn date_value(us: i64) -> Option<Value> {
    let days = us.div_euclid(86_400_000_000);
    let rem = us.rem_euclid(86_400_000_000);
    let (y, m, d) = civil_from_days(days);
    let y = u16::try_from(y).ok().filter(|y| *y <= 9999)?;
    let secs = rem / 1_000_000;
    Some(Value::Date(
        y,
        m as u8,
        d as u8,
        (secs / 3600) as u8,
        ((secs / 60) % 60) as u8,
        (secs % 60) as u8,
        (rem % 1_000_000) as u32,
    ))
}

/// A signed duration in microseconds → a TIME value.
fn time_value(us: i64) -> Value {
    let neg = us < 0;
    let a = us.unsigned_abs();
    let secs = a / 1_000_000;
    Value::Time(
        neg,
        (secs / 86_400) as u32,
        ((secs / 3600) % 24) as u8,
        ((secs / 60) % 60) as u8,
        (secs % 60) as u8,
        (a % 1_000_000) as u32,
    )
}

// ---------------------------------------------------------------------------------------------
// Reading

enum Col {
    Int(Int64Builder, DataType),
    U64(UInt64Builder, bool),
    Float(Float64Builder, DataType),
    Bool(BooleanBuilder),
    Dec(Decimal128Builder, u8, i8),
    Dec256(Decimal256Builder, u8, i8),
    Date(Date32Builder),
    Ts(TimestampMicrosecondBuilder, Option<Arc<str>>),
    Dur(DurationMicrosecondBuilder),
    Text(StringBuilder),
    Bin(BinaryBuilder),
}

fn bit_u64(b: &[u8]) -> Option<u64> {
    (b.len() <= 8).then(|| b.iter().fold(0u64, |acc, x| (acc << 8) | u64::from(*x)))
}

fn int_of(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::UInt(u) => i64::try_from(*u).ok(),
        Value::Bytes(b) => std::str::from_utf8(b).ok()?.trim().parse().ok(),
        _ => None,
    }
}

impl Col {
    fn new(t: &DataType, col: &Column, cap: usize) -> Col {
        match t {
            DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32 => Col::Int(Int64Builder::with_capacity(cap), t.clone()),
            DataType::UInt64 => Col::U64(
                UInt64Builder::with_capacity(cap),
                col.column_type() == ColumnType::MYSQL_TYPE_BIT,
            ),
            DataType::Float32 | DataType::Float64 => {
                Col::Float(Float64Builder::with_capacity(cap), t.clone())
            }
            DataType::Boolean => Col::Bool(BooleanBuilder::with_capacity(cap)),
            DataType::Decimal128(p, s) => Col::Dec(Decimal128Builder::with_capacity(cap), *p, *s),
            DataType::Decimal256(p, s) => {
                Col::Dec256(Decimal256Builder::with_capacity(cap), *p, *s)
            }
            DataType::Date32 => Col::Date(Date32Builder::with_capacity(cap)),
            DataType::Timestamp(_, tz) => Col::Ts(
                TimestampMicrosecondBuilder::with_capacity(cap),
                tz.as_deref().map(Arc::from),
            ),
            DataType::Duration(_) => Col::Dur(DurationMicrosecondBuilder::with_capacity(cap)),
            DataType::Binary => Col::Bin(BinaryBuilder::with_capacity(cap, cap * 16)),
            _ => Col::Text(StringBuilder::with_capacity(cap, cap * 16)),
        }
    }

    fn push_null(&mut self) {
        match self {
            Col::Int(b, _) => b.append_null(),
            Col::U64(b, _) => b.append_null(),
            Col::Float(b, _) => b.append_null(),
            Col::Bool(b) => b.append_null(),
            Col::Dec(b, ..) => b.append_null(),
            Col::Dec256(b, ..) => b.append_null(),
            Col::Date(b) => b.append_null(),
            Col::Ts(b, _) => b.append_null(),
            Col::Dur(b) => b.append_null(),
            Col::Text(b) => b.append_null(),
            Col::Bin(b) => b.append_null(),
        }
    }

    /// Append one value; `Err(reason)` when it does not fit.
    fn push(&mut self, v: Value, zero: ZeroDatePolicy) -> std::result::Result<(), String> {
        if matches!(v, Value::NULL) {
            self.push_null();
            return Ok(());
        }
        let bad = |v: &Value| Err(format!("unexpected value {v:?}"));
        match self {
            Col::Int(b, _) => match int_of(&v) {
                Some(i) => b.append_value(i),
                None => return bad(&v),
            },
            Col::U64(b, is_bit) => match &v {
                Value::UInt(u) => b.append_value(*u),
                Value::Int(i) if *i >= 0 => b.append_value(*i as u64),
                Value::Bytes(x) if *is_bit => match bit_u64(x) {
                    Some(u) => b.append_value(u),
                    None => return bad(&v),
                },
                Value::Bytes(x) => match std::str::from_utf8(x).ok().and_then(|s| s.parse().ok()) {
                    Some(u) => b.append_value(u),
                    None => return bad(&v),
                },
                _ => return bad(&v),
            },
            Col::Float(b, _) => match &v {
                Value::Double(d) => b.append_value(*d),
                Value::Float(f) => b.append_value(f64::from(*f)),
                Value::Int(i) => b.append_value(*i as f64),
                Value::UInt(u) => b.append_value(*u as f64),
                Value::Bytes(x) => match std::str::from_utf8(x).ok().and_then(|s| s.parse().ok()) {
                    Some(f) => b.append_value(f),
                    None => return bad(&v),
                },
                _ => return bad(&v),
            },
            Col::Bool(b) => match &v {
                Value::Bytes(x) if x.len() == 1 && x[0] <= 1 => b.append_value(x[0] == 1),
                _ => match int_of(&v) {
                    Some(i) => b.append_value(i != 0),
                    None => return bad(&v),
                },
            },
            Col::Dec(b, p, s) => {
                let parsed = match &v {
                    Value::Bytes(x) => std::str::from_utf8(x)
                        .ok()
                        .and_then(|t| parse_decimal(t, *s)),
                    Value::Int(i) => parse_decimal(&i.to_string(), *s),
                    Value::UInt(u) => parse_decimal(&u.to_string(), *s),
                    _ => None,
                };
                let bound = 10_i128.checked_pow(u32::from(*p)).unwrap_or(i128::MAX);
                match parsed.filter(|x| x.unsigned_abs() < bound.unsigned_abs()) {
                    Some(x) => b.append_value(x),
                    None => return Err(format!("value {v:?} is not a DECIMAL({p},{s})")),
                }
            }
            Col::Dec256(b, p, s) => {
                let digits = match &v {
                    Value::Bytes(x) => std::str::from_utf8(x)
                        .ok()
                        .and_then(|t| unscaled_digits(t, *s)),
                    Value::Int(i) => unscaled_digits(&i.to_string(), *s),
                    Value::UInt(u) => unscaled_digits(&u.to_string(), *s),
                    _ => None,
                };
                match digits
                    .filter(|d| d.trim_start_matches('-').len() <= usize::from(*p))
                    .and_then(|d| i256::from_string(&d))
                {
                    Some(x) => b.append_value(x),
                    None => return Err(format!("value {v:?} is not a DECIMAL({p},{s})")),
                }
            }
            Col::Date(b) => match v {
                Value::Date(y, m, d, ..) => match days_from_civil(i64::from(y), m.into(), d.into())
                {
                    Some(days) => b.append_value(days as i32),
                    None if y == 0 || m == 0 || d == 0 => {
                        return zero_date(zero, &mut || b.append_null());
                    }
                    None => return bad(&v),
                },
                Value::Bytes(ref x) => match parse_date_text(x) {
                    Some(Some(days)) => b.append_value(days as i32),
                    Some(None) => return zero_date(zero, &mut || b.append_null()),
                    None => return bad(&v),
                },
                _ => return bad(&v),
            },
            Col::Ts(b, _) => match v {
                Value::Date(y, m, d, h, mi, s, us) => {
                    match days_from_civil(i64::from(y), m.into(), d.into()) {
                        Some(days) => b.append_value(
                            days * 86_400_000_000
                                + ((i64::from(h) * 60 + i64::from(mi)) * 60 + i64::from(s))
                                    * 1_000_000
                                + i64::from(us),
                        ),
                        None if y == 0 || m == 0 || d == 0 => {
                            return zero_date(zero, &mut || b.append_null());
                        }
                        None => return bad(&v),
                    }
                }
                _ => return bad(&v),
            },
            Col::Dur(b) => match v {
                Value::Time(neg, days, h, m, s, us) => {
                    let t = ((i64::from(days) * 24 + i64::from(h)) * 60 + i64::from(m)) * 60
                        + i64::from(s);
                    let t = t * 1_000_000 + i64::from(us);
                    b.append_value(if neg { -t } else { t });
                }
                _ => return bad(&v),
            },
            Col::Text(b) => match v {
                Value::Bytes(x) => match String::from_utf8(x) {
                    Ok(s) => b.append_value(s),
                    Err(_) => return Err("text is not valid UTF-8".to_owned()),
                },
                Value::Int(i) => b.append_value(i.to_string()),
                Value::UInt(u) => b.append_value(u.to_string()),
                Value::Double(d) => b.append_value(d.to_string()),
                Value::Float(f) => b.append_value(f.to_string()),
                other => return bad(&other),
            },
            Col::Bin(b) => match v {
                Value::Bytes(x) => b.append_value(x),
                other => return bad(&other),
            },
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
            Col::U64(b, _) => Arc::new(b.finish()),
            Col::Float(b, t) => {
                let a: ArrayRef = Arc::new(b.finish());
                if *t == DataType::Float64 {
                    a
                } else {
                    arrow::compute::cast_with_options(&a, t, &opts)?
                }
            }
            Col::Bool(b) => Arc::new(b.finish()),
            Col::Dec(b, p, s) => Arc::new(b.finish().with_precision_and_scale(*p, *s)?),
            Col::Dec256(b, p, s) => Arc::new(b.finish().with_precision_and_scale(*p, *s)?),
            Col::Date(b) => Arc::new(b.finish()),
            Col::Ts(b, tz) => Arc::new(b.finish().with_timezone_opt(tz.clone())),
            Col::Dur(b) => Arc::new(b.finish()),
            Col::Text(b) => Arc::new(b.finish()),
            Col::Bin(b) => Arc::new(b.finish()),
        })
    }
}

/// Decimal text → the digits of its unscaled integer with exactly `scale` fractional digits
/// (sign kept, leading zeros dropped); None if it is not a decimal or would need rounding.
fn unscaled_digits(text: &str, scale: i8) -> Option<String> {
    let t = text.trim();
    let (neg, t) = match t.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    let scale = usize::from(scale.max(0).unsigned_abs());
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
        || (frac.len() > scale && frac[scale..].bytes().any(|b| b != b'0'))
    {
        return None;
    }
    let mut digits: String = int.trim_start_matches('0').to_owned();
    for i in 0..scale {
        digits.push(char::from(*frac.as_bytes().get(i).unwrap_or(&b'0')));
    }
    let digits = digits.trim_start_matches('0');
    Some(match (digits.is_empty(), neg) {
        (true, _) => "0".to_owned(),
        (false, true) => format!("-{digits}"),
        (false, false) => digits.to_owned(),
    })
}

/// An unscaled integer's decimal digits with a point `scale` places from the right.
fn with_point(unscaled: &str, scale: i8) -> String {
    let (neg, digits) = match unscaled.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, unscaled),
    };
    let scale = usize::from(scale.max(0).unsigned_abs());
    let sign = if neg { "-" } else { "" };
    if scale == 0 {
        return format!("{sign}{digits}");
    }
    let padded = if digits.len() <= scale {
        format!("{}{digits}", "0".repeat(scale + 1 - digits.len()))
    } else {
        digits.to_owned()
    };
    let (i, f) = padded.split_at(padded.len() - scale);
    format!("{sign}{i}.{f}")
}

fn zero_date(policy: ZeroDatePolicy, null: &mut dyn FnMut()) -> std::result::Result<(), String> {
    match policy {
        ZeroDatePolicy::Null => {
            null();
            Ok(())
        }
        ZeroDatePolicy::Error => Err(
            "zero date (0000-00-00 or a zero month/day); set zero_date: null to read it as NULL"
                .to_owned(),
        ),
    }
}

/// `YYYY-MM-DD` → Some(Some(days)), a zero date → Some(None), else None.
#[allow(clippy::option_option)]
fn parse_date_text(b: &[u8]) -> Option<Option<i64>> {
    let s = std::str::from_utf8(b).ok()?;
    let mut it = s.get(..10)?.split('-');
    let y: i64 = it.next()?.parse().ok()?;
    let m: u32 = it.next()?.parse().ok()?;
    let d: u32 = it.next()?.parse().ok()?;
    if y == 0 || m == 0 || d == 0 {
        return Some(None);
    }
    days_from_civil(y, m, d).map(Some)
}

fn quote_table(name: &str) -> String {
    let parts = split_qualified(name);
    let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
    D.quote_path(&refs)
}

/// (schema, table) of a possibly qualified name.
fn table_parts(name: &str) -> (Option<String>, String) {
    let mut parts = split_qualified(name);
    let t = parts.pop().unwrap_or_default();
    ((!parts.is_empty()).then(|| parts.join(".")), t)
}

fn build_select(p: &Partition) -> (String, Vec<Value>, String) {
    let req = &p.request;
    let proj = match req.projection.as_deref() {
        Some(cols) if !cols.is_empty() => cols
            .iter()
            .map(|c| D.quote_ident(c))
            .collect::<Vec<_>>()
            .join(", "),
        _ => "*".to_owned(),
    };
    let (from, label) = match &req.target {
        ReadTarget::Dataset(d) => (quote_table(d), d.clone()),
        ReadTarget::Query(q) => (format!("({q}) AS `q`"), "query".to_owned()),
    };
    let mut lits = Vec::new();
    let mut conds = Vec::new();
    if let Some(f) = &req.filter {
        conds.push(render_filter(f, D, &mut lits));
    }
    let mut params: Vec<Value> = lits.iter().map(literal_value).collect();
    if let Some(col) = p.spec.get("column").and_then(|v| v.as_str()) {
        let qc = D.quote_ident(col);
        let lo = p.spec.get("lo").and_then(serde_json::Value::as_i64);
        let hi = p.spec.get("hi").and_then(serde_json::Value::as_i64);
        let mut c = Vec::new();
        if let Some(lo) = lo {
            c.push(format!("{qc} >= ?"));
            params.push(Value::Int(lo));
        }
        if let Some(hi) = hi {
            c.push(format!("{qc} < ?"));
            params.push(Value::Int(hi));
        }
        let mut cond = if c.is_empty() {
            "TRUE".to_owned()
        } else {
            c.join(" AND ")
        };
        if p.spec.get("nulls").and_then(serde_json::Value::as_bool) == Some(true) {
            cond = format!("({cond}) OR {qc} IS NULL");
        }
        conds.push(cond);
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
    if let Some(l) = req.limit {
        sql.push_str(" LIMIT ?");
        params.push(Value::UInt(l as u64));
    }
    (sql, params, label)
}

struct ReadJob {
    sql: String,
    params: Vec<Value>,
    label: String,
    batch_rows: usize,
    zero: ZeroDatePolicy,
}

async fn read_task(
    mut conn: Conn,
    kill: (mysql_async::OptsBuilder, Duration),
    job: ReadJob,
    schema_tx: oneshot::Sender<Result<SchemaRef>>,
    tx: mpsc::Sender<Result<RecordBatch>>,
) {
    let mut schema_tx = Some(schema_tx);
    let res = read_rows(&mut conn, &job, &mut schema_tx, &tx).await;
    if let Ok(false) = res {
        // The stream was dropped mid-read: stop the server from sending the rest (the driver
        // would otherwise drain it before the connection can be reused), then close it.
        // A separate connection, not from the pool, which may be exhausted by the reads.
        if let Ok(Ok(mut killer)) = tokio::time::timeout(kill.1, Conn::new(kill.0)).await {
            let _ = killer.query_drop(format!("KILL QUERY {}", conn.id())).await;
            let _ = killer.disconnect().await;
        }
        let _ = conn.disconnect().await;
    } else if let Err(e) = res {
        let e = e.with_connector(NAME).with_operation("read");
        match schema_tx.take() {
            Some(s) => {
                let _ = s.send(Err(e));
            }
            None => {
                let _ = tx.send(Err(e)).await;
            }
        }
        // A broken read may leave unread rows: do not hand the connection back.
        let _ = conn.disconnect().await;
    }
}

/// Ok(true): all rows sent; Ok(false): the receiver went away first.
async fn read_rows(
    conn: &mut Conn,
    job: &ReadJob,
    schema_tx: &mut Option<oneshot::Sender<Result<SchemaRef>>>,
    tx: &mpsc::Sender<Result<RecordBatch>>,
) -> Result<bool> {
    let label = job.label.as_str();
    let located = |e: Error| e.with_location(Location::table(label));
    let mut result = conn
        .exec_iter(job.sql.as_str(), Params::Positional(job.params.clone()))
        .await
        .map_err(|e| located(map_err(e, "query")))?;
    let columns: Arc<[Column]> = result.columns().unwrap_or_else(|| Arc::from(Vec::new()));
    let fields = columns
        .iter()
        .map(|c| Ok(Field::new(c.name_str(), arrow_type(c)?, true)))
        .collect::<Result<Vec<_>>>()
        .map_err(located)?;
    let schema = Arc::new(Schema::new(fields));
    let mut cols: Vec<Col> = schema
        .fields()
        .iter()
        .zip(columns.iter())
        .map(|(f, c)| Col::new(f.data_type(), c, job.batch_rows))
        .collect();
    if let Some(s) = schema_tx.take()
        && s.send(Ok(schema.clone())).is_err()
    {
        return Ok(false);
    }
    let mut n = 0usize;
    let mut row_no = 0u64;
    while let Some(row) = result.next().await.map_err(|e| {
        located(map_err(e, "read")).with_location(Location::default().with_row(row_no))
    })? {
        for (i, (c, v)) in cols.iter_mut().zip(row.unwrap_raw()).enumerate() {
            let r = match v {
                None => {
                    c.push_null();
                    Ok(())
                }
                Some(v) => c.push(v, job.zero),
            };
            if let Err(why) = r {
                let f = schema.field(i);
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!("column {:?} ({}): {why}", f.name(), f.data_type()),
                )
                .with_location(
                    Location::table(label)
                        .with_column(f.name().clone())
                        .with_row(row_no),
                ));
            }
        }
        row_no += 1;
        n += 1;
        if n >= job.batch_rows {
            n = 0;
            let b = finish(&schema, &mut cols, label)?;
            if tx.send(Ok(b)).await.is_err() {
                return Ok(false); // the reader is gone
            }
        }
    }
    if n > 0 {
        let b = finish(&schema, &mut cols, label)?;
        let _ = tx.send(Ok(b)).await;
    }
    Ok(true)
}

fn finish(schema: &SchemaRef, cols: &mut [Col], label: &str) -> Result<RecordBatch> {
    let arrays = cols
        .iter_mut()
        .zip(schema.fields())
        .map(|(c, f)| {
            c.finish().map_err(|e| {
                Error::invalid_input(
                    format!(
                        "column {:?}: value out of range for {}: {e}",
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

/// Schema of a table (via an empty SELECT, so types match reads); None if it does not exist.
async fn table_schema(conn: &mut Conn, name: &str) -> Result<Option<SchemaRef>> {
    let sql = format!("SELECT * FROM {} LIMIT 0", quote_table(name));
    let res = conn.query_iter(sql).await;
    let result = match res {
        Ok(r) => r,
        Err(mysql_async::Error::Server(s)) if s.code == 1146 => return Ok(None),
        Err(e) => return Err(map_err(e, "describe").with_location(Location::table(name))),
    };
    let columns = result.columns().unwrap_or_else(|| Arc::from(Vec::new()));
    result
        .drop_result()
        .await
        .map_err(|e| map_err(e, "describe"))?;
    let fields = columns
        .iter()
        .map(|c| {
            let nullable = !c.flags().contains(ColumnFlags::NOT_NULL_FLAG);
            Ok(Field::new(c.name_str(), arrow_type(c)?, nullable))
        })
        .collect::<Result<Vec<_>>>()
        .map_err(|e| e.with_location(Location::table(name)))?;
    Ok(Some(Arc::new(Schema::new(fields))))
}

fn not_found(name: &str) -> Error {
    Error::new(
        ErrorKind::NotFound,
        format!("table {name:?} does not exist"),
    )
    .with_connector(NAME)
    .with_location(Location::table(name))
}

/// Primary key columns of a table, in key order.
async fn primary_key(conn: &mut Conn, name: &str) -> Result<Vec<String>> {
    let (schema, table) = table_parts(name);
    let rows: Vec<String> = conn
        .exec(
            "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE \
             WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ? AND CONSTRAINT_NAME = 'PRIMARY' \
             ORDER BY ORDINAL_POSITION",
            (schema, table),
        )
        .await
        .map_err(|e| map_err(e, "primary key"))?;
    Ok(rows)
}

/// Whether a primary key or unique index of `table` covers exactly `keys`.
async fn has_unique_key(conn: &mut Conn, table: &str, keys: &[String]) -> Result<bool> {
    let (schema, t) = table_parts(table);
    let rows: Vec<(String, String)> = conn
        .exec(
            "SELECT INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS \
             WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ? AND NON_UNIQUE = 0",
            (schema, t),
        )
        .await
        .map_err(|e| map_err(e, "index list").with_location(Location::table(table)))?;
    let mut by_index: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
        std::collections::BTreeMap::new();
    for (i, c) in rows {
        by_index.entry(i).or_default().insert(c);
    }
    let want: std::collections::BTreeSet<String> = keys.iter().cloned().collect();
    Ok(by_index.values().any(|cols| *cols == want))
}

#[async_trait]
impl Source for MySqlConnector {
    fn name(&self) -> &'static str {
        NAME
    }

    fn capabilities(&self) -> SourceCapabilities {
        source_caps()
    }

    async fn check(&self) -> Result<()> {
        let mut c = self.conn().await.map_err(|e| e.with_operation("check"))?;
        c.ping()
            .await
            .map_err(|e| map_err(e, "ping").with_operation("check"))
    }

    async fn discover(&self) -> Result<Vec<DatasetInfo>> {
        let op = |e: Error| e.with_operation("discover");
        let mut c = self.conn().await.map_err(op)?;
        let tables: Vec<(String, Option<u64>)> = c
            .query(
                "SELECT TABLE_NAME, TABLE_ROWS FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME",
            )
            .await
            .map_err(|e| op(map_err(e, "list tables")))?;
        let mut out = Vec::with_capacity(tables.len());
        for (t, rows) in tables {
            let q = D.quote_ident(&t);
            // Quote as one part for split_qualified: a dot in a name is not a schema separator.
            let name_for_sql = format!("\"{}\"", t.replace('"', "\"\""));
            let Some(schema) = table_schema(&mut c, &name_for_sql).await.map_err(op)? else {
                continue; // dropped meanwhile
            };
            let pk = primary_key(&mut c, &t).await.map_err(op)?;
            let _ = q;
            out.push(DatasetInfo {
                name: t,
                schema,
                primary_key: pk,
                row_estimate: rows,
            });
        }
        Ok(out)
    }

    async fn plan(&self, request: &ReadRequest, max_partitions: usize) -> Result<Vec<Partition>> {
        let op = |e: Error| e.with_operation("plan");
        let ReadTarget::Dataset(name) = &request.target else {
            return Ok(vec![Partition::single(request.clone())]);
        };
        let mut c = self.conn().await.map_err(op)?;
        let Some(schema) = table_schema(&mut c, name).await.map_err(op)? else {
            return Err(op(not_found(name)));
        };
        if let Some(p) = &request.projection {
            project_schema(&schema, Some(p)).map_err(|e| op(e.with_connector(NAME)))?;
        }
        let single = vec![Partition::single(request.clone())];
        if max_partitions <= 1 {
            return Ok(single);
        }
        let col = match &self.inner.config.partition_column {
            Some(c) => Some(c.clone()),
            None => {
                let pk = primary_key(&mut c, name).await.map_err(op)?;
                match pk.as_slice() {
                    [k] if schema
                        .field_with_name(k)
                        .is_ok_and(|f| f.data_type().is_integer()) =>
                    {
                        Some(k.clone())
                    }
                    // No integer primary key: any integer column splits correctly (NULLs
                    // go to the first partition); it may split unevenly.
                    _ => schema
                        .fields()
                        .iter()
                        .find(|f| f.data_type().is_integer())
                        .map(|f| f.name().clone()),
                }
            }
        };
        let Some(col) = col else { return Ok(single) };
        let qc = D.quote_ident(&col);
        let (lo, hi): (Option<i64>, Option<i64>) = c
            .query_first(format!(
                "SELECT CAST(MIN({qc}) AS SIGNED), CAST(MAX({qc}) AS SIGNED) FROM {}",
                quote_table(name)
            ))
            .await
            .map_err(|e| {
                op(map_err(e, "min/max")
                    .with_location(Location::table(name).with_column(col.clone())))
            })?
            .unwrap_or((None, None));
        let (Some(lo), Some(hi)) = (lo, hi) else {
            return Ok(single);
        };
        let span = i128::from(hi) - i128::from(lo) + 1;
        let n = (max_partitions as i128).min(span).max(1);
        let step = (span + n - 1) / n;
        let est = self
            .discover_estimate(&mut c, name)
            .await
            .map(|r| r / n as u64);
        Ok((0..n)
            .map(|i| {
                let a = i128::from(lo) + i * step;
                let b = a + step;
                let mut spec = serde_json::json!({"column": col});
                if i > 0 {
                    spec["lo"] = serde_json::json!(a as i64);
                } else {
                    spec["nulls"] = serde_json::json!(true);
                }
                if i < n - 1 {
                    spec["hi"] = serde_json::json!(b as i64);
                }
                Partition {
                    request: request.clone(),
                    index: i as usize,
                    count: n as usize,
                    spec,
                    row_estimate: est,
                }
            })
            .collect())
    }

    async fn read(&self, partition: Partition) -> Result<SendableRecordBatchStream> {
        let (sql, params, label) = build_select(&partition);
        let conn = self.conn().await.map_err(|e| e.with_operation("read"))?;
        let kill = (
            self.inner
                .config
                .opts()
                .map_err(|e| e.with_operation("read"))?,
            self.connect_timeout(),
        );
        let job = ReadJob {
            sql,
            params,
            label,
            batch_rows: partition.request.batch_rows_or_default(),
            zero: self.inner.config.zero_date,
        };
        let (schema_tx, schema_rx) = oneshot::channel();
        let (tx, rx) = mpsc::channel(2);
        tokio::spawn(read_task(conn, kill, job, schema_tx, tx));
        let schema = schema_rx.await.map_err(|_| {
            Error::internal("mysql reader ended early")
                .with_connector(NAME)
                .with_operation("read")
        })??;
        let stream =
            futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) });
        Ok(connector_core::RecordBatchStreamAdapter::boxed(
            schema, stream,
        ))
    }
}

impl MySqlConnector {
    async fn discover_estimate(&self, c: &mut Conn, name: &str) -> Option<u64> {
        let (schema, table) = table_parts(name);
        c.exec_first::<Option<u64>, _, _>(
            "SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ?",
            (schema, table),
        )
        .await
        .ok()
        .flatten()
        .flatten()
    }
}

// ---------------------------------------------------------------------------------------------
// Writing

/// Value `row` of `arr` as a MySQL parameter.
fn to_value(arr: &dyn Array, row: usize) -> std::result::Result<Value, String> {
    use arrow::datatypes::DataType as T;
    if arr.is_null(row) {
        return Ok(Value::NULL);
    }
    Ok(match arr.data_type() {
        T::Int8 => Value::Int(arr.as_primitive::<Int8Type>().value(row).into()),
        T::Int16 => Value::Int(arr.as_primitive::<Int16Type>().value(row).into()),
        T::Int32 => Value::Int(arr.as_primitive::<Int32Type>().value(row).into()),
        T::Int64 => Value::Int(arr.as_primitive::<Int64Type>().value(row)),
        T::UInt8 => Value::UInt(arr.as_primitive::<UInt8Type>().value(row).into()),
        T::UInt16 => Value::UInt(arr.as_primitive::<UInt16Type>().value(row).into()),
        T::UInt32 => Value::UInt(arr.as_primitive::<UInt32Type>().value(row).into()),
        T::UInt64 => Value::UInt(arr.as_primitive::<UInt64Type>().value(row)),
        T::Float32 => Value::Float(arr.as_primitive::<Float32Type>().value(row)),
        T::Float64 => Value::Double(arr.as_primitive::<Float64Type>().value(row)),
        T::Boolean => Value::Int(i64::from(arr.as_boolean().value(row))),
        T::Utf8 => Value::Bytes(arr.as_string::<i32>().value(row).as_bytes().to_vec()),
        T::LargeUtf8 => Value::Bytes(arr.as_string::<i64>().value(row).as_bytes().to_vec()),
        T::Utf8View => Value::Bytes(arr.as_string_view().value(row).as_bytes().to_vec()),
        T::Binary => Value::Bytes(arr.as_binary::<i32>().value(row).to_vec()),
        T::LargeBinary => Value::Bytes(arr.as_binary::<i64>().value(row).to_vec()),
        T::BinaryView => Value::Bytes(arr.as_binary_view().value(row).to_vec()),
        T::FixedSizeBinary(_) => Value::Bytes(arr.as_fixed_size_binary().value(row).to_vec()),
        T::Date32 => {
            date_value(i64::from(arr.as_primitive::<Date32Type>().value(row)) * 86_400_000_000)
                .ok_or("date outside years 0..9999")?
        }
        T::Date64 => date_value(
            arr.as_primitive::<arrow::datatypes::Date64Type>()
                .value(row)
                .div_euclid(86_400_000)
                * 86_400_000_000,
        )
        .ok_or("date outside years 0..9999")?,
        T::Timestamp(unit, _) => {
            let us = crate_ts_us(arr, *unit, row).ok_or("timestamp out of range")?;
            date_value(us).ok_or("timestamp outside years 0..9999")?
        }
        T::Time32(TimeUnit::Second) => {
            time_value(i64::from(arr.as_primitive::<Time32SecondType>().value(row)) * 1_000_000)
        }
        T::Time32(_) => {
            time_value(i64::from(arr.as_primitive::<Time32MillisecondType>().value(row)) * 1000)
        }
        T::Time64(TimeUnit::Nanosecond) => {
            time_value(arr.as_primitive::<Time64NanosecondType>().value(row) / 1000)
        }
        T::Time64(_) => time_value(arr.as_primitive::<Time64MicrosecondType>().value(row)),
        T::Duration(TimeUnit::Second) => time_value(
            arr.as_primitive::<DurationSecondType>()
                .value(row)
                .checked_mul(1_000_000)
                .ok_or("duration out of range")?,
        ),
        T::Duration(TimeUnit::Millisecond) => time_value(
            arr.as_primitive::<DurationMillisecondType>()
                .value(row)
                .checked_mul(1000)
                .ok_or("duration out of range")?,
        ),
        T::Duration(TimeUnit::Microsecond) => {
            time_value(arr.as_primitive::<DurationMicrosecondType>().value(row))
        }
        T::Duration(TimeUnit::Nanosecond) => {
            time_value(arr.as_primitive::<DurationNanosecondType>().value(row) / 1000)
        }
        T::Decimal128(_, s) => Value::Bytes(
            decimal_to_string(arr.as_primitive::<Decimal128Type>().value(row), *s).into_bytes(),
        ),
        T::Decimal256(_, s) => Value::Bytes(
            with_point(
                &arr.as_primitive::<Decimal256Type>().value(row).to_string(),
                *s,
            )
            .into_bytes(),
        ),
        other => return Err(format!("Arrow type {other} is not supported")),
    })
}

fn crate_ts_us(arr: &dyn Array, unit: TimeUnit, row: usize) -> Option<i64> {
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

/// What the write did before its transaction, to undo if it fails.
#[derive(Default)]
struct DdlDone {
    created: bool,
    added: Vec<String>,
}

impl MySqlConnector {
    async fn write_inner(
        &self,
        conn: &mut Conn,
        request: &WriteRequest,
        data: &mut SendableRecordBatchStream,
        ddl: &mut DdlDone,
    ) -> Result<WriteReport> {
        let started = Instant::now();
        let target = request.target.as_str();
        let qt = quote_table(target);
        let incoming = data.schema();
        let keys = write_keys(&request.mode, &incoming, target)?;
        let mut report = WriteReport::default();
        let existing = table_schema(conn, target).await?;
        let (plan_schema, plan) = match existing {
            None => {
                if !request.create_if_missing || matches!(request.mode, WriteMode::Delete(_)) {
                    return Err(not_found(target));
                }
                let mut cols = incoming
                    .fields()
                    .iter()
                    .map(|f| {
                        let is_key = keys.contains(f.name());
                        let t = ddl_type(f.data_type(), f.name(), is_key)?;
                        let null = if f.is_nullable() || t.ends_with(" NULL") {
                            ""
                        } else {
                            " NOT NULL"
                        };
                        Ok(format!("{} {t}{null}", D.quote_ident(f.name())))
                    })
                    .collect::<Result<Vec<_>>>()?;
                if let WriteMode::Upsert(k) = &request.mode {
                    cols.push(format!(
                        "UNIQUE KEY `upsert_key` ({})",
                        k.iter()
                            .map(|c| D.quote_ident(c))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                let sql = format!(
                    "CREATE TABLE {qt} ({}) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
                    cols.join(", ")
                );
                conn.query_drop(sql).await.map_err(|e| {
                    map_err(e, "create table").with_location(Location::table(target))
                })?;
                ddl.created = true;
                (incoming.clone(), None)
            }
            Some(existing) => {
                let aligned = align_to_target(&existing, &incoming);
                let p = reconcile(&existing, &aligned, request.schema_drift, target)?;
                for f in &p.added {
                    let sql = format!(
                        "ALTER TABLE {qt} ADD COLUMN {} {}",
                        D.quote_ident(f.name()),
                        ddl_type(f.data_type(), f.name(), false)?
                    );
                    conn.query_drop(sql).await.map_err(|e| {
                        map_err(e, "add column")
                            .with_location(Location::table(target).with_column(f.name().clone()))
                    })?;
                    ddl.added.push(f.name().clone());
                    report.columns_added.push(f.name().clone());
                }
                report.columns_ignored.clone_from(&p.ignored);
                (p.target.clone(), Some((aligned, p)))
            }
        };
        let names: Vec<String> = plan_schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let qcols: Vec<String> = names.iter().map(|c| D.quote_ident(c)).collect();
        let max_packet: u64 = conn
            .query_first("SELECT @@max_allowed_packet")
            .await
            .map_err(|e| map_err(e, "max_allowed_packet"))?
            .unwrap_or(4 << 20);
        let budget = (max_packet / 4).max(64 << 10) as usize;

        // Upsert without a unique key on exactly the keys: delete the keys, then insert.
        let upsert_by_delete = match &request.mode {
            WriteMode::Upsert(k) if !ddl.created => !has_unique_key(conn, target, k).await?,
            _ => false,
        };
        let mut tx = conn
            .start_transaction(mysql_async::TxOpts::default())
            .await
            .map_err(|e| map_err(e, "begin"))?;
        if matches!(request.mode, WriteMode::Overwrite) {
            tx.query_drop(format!("DELETE FROM {qt}"))
                .await
                .map_err(|e| map_err(e, "overwrite").with_location(Location::table(target)))?;
        }
        let (bind_cols, row_sql, max_rows): (Vec<usize>, String, usize) = match &request.mode {
            WriteMode::Delete(k) => {
                let idx: Vec<usize> = k
                    .iter()
                    .map(|c| names.iter().position(|n| n == c).unwrap_or(0))
                    .collect();
                let row = format!(
                    "({})",
                    k.iter()
                        .map(|c| format!("{} = ?", D.quote_ident(c)))
                        .collect::<Vec<_>>()
                        .join(" AND ")
                );
                (idx, row, 500)
            }
            _ => {
                let row = format!("({})", vec!["?"; names.len()].join(","));
                let by_params = (65_535 / names.len().max(1)).max(1);
                (
                    (0..names.len()).collect(),
                    row,
                    by_params.min(self.inner.config.insert_rows.max(1)),
                )
            }
        };
        let suffix = match &request.mode {
            WriteMode::Upsert(k) if !upsert_by_delete => {
                let sets: Vec<String> = names
                    .iter()
                    .filter(|n| !k.contains(n))
                    .map(|n| format!("{0} = VALUES({0})", D.quote_ident(n)))
                    .collect();
                let sets = if sets.is_empty() {
                    format!("{0} = {0}", D.quote_ident(&k[0]))
                } else {
                    sets.join(", ")
                };
                format!(" ON DUPLICATE KEY UPDATE {sets}")
            }
            _ => String::new(),
        };
        let stmt_for = |rows: usize| -> String {
            match &request.mode {
                WriteMode::Delete(_) => format!(
                    "DELETE FROM {qt} WHERE {}",
                    vec![row_sql.as_str(); rows].join(" OR ")
                ),
                _ => {
                    let mut s = format!("INSERT INTO {qt} ({}) VALUES ", qcols.join(", "));
                    for i in 0..rows {
                        if i > 0 {
                            s.push(',');
                        }
                        s.push_str(&row_sql);
                    }
                    s.push_str(&suffix);
                    s
                }
            }
        };
        let key_pos: Vec<usize> = keys
            .iter()
            .filter_map(|k| names.iter().position(|n| n == k))
            .collect();
        let key_row_sql = format!(
            "({})",
            keys.iter()
                .map(|c| format!("{} = ?", D.quote_ident(c)))
                .collect::<Vec<_>>()
                .join(" AND ")
        );
        let mut full_sql: Option<String> = None;
        let mut deleted = 0u64;
        let mut row_base = 0u64;
        let mut params: Vec<Value> = Vec::with_capacity(max_rows * bind_cols.len());
        let mut key_params: Vec<Value> = Vec::new();
        let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
        while let Some(batch) = data.next().await {
            let batch = batch?;
            report.bytes += batch.get_array_memory_size() as u64;
            let batch = match &plan {
                Some((aligned, p)) => p.apply(&cast_batch(&batch, aligned)?)?,
                None => batch,
            };
            let arrays: Vec<&dyn Array> = bind_cols
                .iter()
                .map(|i| batch.column(*i).as_ref())
                .collect();
            let value_err = |why: String, col: &str, r: usize| {
                Error::invalid_input(
                    format!("cannot write value: {why}"),
                    Location::table(target)
                        .with_column(col.to_owned())
                        .with_row(row_base + r as u64),
                )
            };
            let mut rows_in = 0usize;
            let mut bytes_in = 0usize;
            let mut first_row = 0usize;
            let n = batch.num_rows();
            let mut r = 0usize;
            while r < n {
                let mut flush_before = false;
                if upsert_by_delete {
                    let kv = key_pos
                        .iter()
                        .map(|i| {
                            to_value(batch.column(*i).as_ref(), r)
                                .map_err(|w| value_err(w, &names[*i], r))
                        })
                        .collect::<Result<Vec<_>>>()?;
                    // A key repeated within one chunk: write what is pending first, so the
                    // later row replaces the earlier one.
                    if seen.insert(format!("{kv:?}")) {
                        key_params.extend(kv);
                    } else {
                        flush_before = true;
                    }
                }
                if !flush_before {
                    for (j, a) in arrays.iter().enumerate() {
                        let v =
                            to_value(*a, r).map_err(|w| value_err(w, &names[bind_cols[j]], r))?;
                        bytes_in += match &v {
                            Value::Bytes(b) => b.len() + 9,
                            _ => 9,
                        };
                        params.push(v);
                    }
                    rows_in += 1;
                    r += 1;
                }
                if rows_in > 0
                    && (flush_before || rows_in == max_rows || bytes_in >= budget || r == n)
                {
                    let at = |e: mysql_async::Error| {
                        map_err(e, "write")
                            .with_location(
                                Location::table(target).with_row(row_base + first_row as u64),
                            )
                            .with_context(
                                "rows",
                                format!("{}..{}", row_base + first_row as u64, row_base + r as u64),
                            )
                    };
                    if upsert_by_delete {
                        let sql = format!(
                            "DELETE FROM {qt} WHERE {}",
                            vec![key_row_sql.as_str(); rows_in].join(" OR ")
                        );
                        tx.exec_drop(sql, Params::Positional(std::mem::take(&mut key_params)))
                            .await
                            .map_err(at)?;
                        seen.clear();
                    }
                    let sql = if rows_in == max_rows {
                        full_sql.get_or_insert_with(|| stmt_for(max_rows)).clone()
                    } else {
                        stmt_for(rows_in)
                    };
                    let p = Params::Positional(std::mem::replace(
                        &mut params,
                        Vec::with_capacity(max_rows * bind_cols.len()),
                    ));
                    tx.exec_drop(sql, p).await.map_err(at)?;
                    deleted += tx.affected_rows();
                    rows_in = 0;
                    bytes_in = 0;
                    first_row = r;
                }
            }
            row_base += n as u64;
        }
        tx.commit().await.map_err(|e| map_err(e, "commit"))?;
        Ok(finish_report(
            report,
            &request.mode,
            row_base,
            deleted,
            started,
            target,
        ))
    }
}

#[async_trait]
impl Sink for MySqlConnector {
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
        let op = |e: Error| e.with_connector(NAME).with_operation("write");
        let mut conn = self.conn().await.map_err(op)?;
        let mut ddl = DdlDone::default();
        let res = self
            .write_inner(&mut conn, &request, &mut data, &mut ddl)
            .await;
        match res {
            Ok(r) => Ok(r),
            Err(e) => {
                // The transaction was rolled back when it was dropped; undo the DDL that
                // committed on its own.
                let qt = quote_table(&request.target);
                let _ = conn.query_drop("ROLLBACK").await;
                if ddl.created {
                    let _ = conn.query_drop(format!("DROP TABLE IF EXISTS {qt}")).await;
                } else {
                    for c in ddl.added.iter().rev() {
                        let _ = conn
                            .query_drop(format!(
                                "ALTER TABLE {qt} DROP COLUMN {}",
                                D.quote_ident(c)
                            ))
                            .await;
                    }
                }
                Err(op(e))
            }
        }
    }
}

/// Registry factory of the `mysql` kind.
#[derive(Debug, Clone, Copy, Default)]
pub struct MySqlFactory;

#[async_trait]
impl ConnectorFactory for MySqlFactory {
    type Config = MySqlConfig;

    fn kind(&self) -> &'static str {
        NAME
    }

    fn description(&self) -> &'static str {
        "MySQL or MariaDB server (binary protocol, InnoDB transactions)"
    }

    fn capabilities(&self) -> KindCapabilities {
        kind_caps(source_caps())
    }

    async fn build(&self, config: MySqlConfig) -> Result<Connector> {
        let c = MySqlConnector::new(config)?;
        Ok(Connector::both(c.clone(), c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_temporal() {
        assert_eq!(date_value(0), Some(Value::Date(1970, 1, 1, 0, 0, 0, 0)));
        assert_eq!(
            time_value(-1_500_000),
            Value::Time(true, 0, 0, 0, 1, 500_000)
        );
        assert_eq!(
            time_value(90_000_000_000),
            Value::Time(false, 1, 1, 0, 0, 0)
        );
        assert_eq!(parse_date_text(b"0000-00-00"), Some(None));
        assert_eq!(parse_date_text(b"1970-01-02"), Some(Some(1)));
        assert_eq!(unscaled_digits("-001.50", 3).as_deref(), Some("-1500"));
        assert_eq!(unscaled_digits("0.000", 2).as_deref(), Some("0"));
        assert_eq!(unscaled_digits("1.005", 2), None);
        assert_eq!(with_point("-1500", 3), "-1.500");
        assert_eq!(with_point("5", 3), "0.005");
    }

    #[test]
    fn config_debug_hides_secrets() {
        let mut c = MySqlConfig::from_url("mysql://u:hunter2@h/db");
        c.password = Some(Secret::new("s3cret"));
        let s = format!("{c:?}");
        assert!(!s.contains("hunter2") && !s.contains("s3cret"), "{s}");
    }
}
