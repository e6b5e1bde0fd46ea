//! PostgreSQL source and sink (feature `postgres`).
//!
//! # Reading
//! Every read is one `COPY (SELECT …) TO STDOUT (FORMAT binary)` whose stream is decoded straight
//! into Arrow buffers (no rows, no per-value allocation). Projection, filter and limit are pushed
//! into the `SELECT`; identifiers are always quoted. `COPY` takes no bind parameters, so filter
//! values are rendered as typed SQL literals by one small, tested renderer (see
//! `sqltext.rs`): strings are `'…'` with quotes doubled, or dollar-quoted when they contain a
//! backslash, so their meaning does not depend on `standard_conforming_strings`; `E'…'` is never
//! produced.
//!
//! Servers that speak the protocol but refuse binary `COPY … TO STDOUT` (Redshift) are read
//! through a cursor instead: `BEGIN`, `DECLARE … NO SCROLL CURSOR FOR <the same SELECT>`, then
//! `FETCH <batch_rows>` until a short batch, then `COMMIT`. The rows come in the binary result
//! format, which is each type's binary COPY format, so they go through the same decoder and give
//! the same Arrow output (types without a binary mapping are cast to text in the `SELECT` as for
//! COPY). [`CopyMode`] (`copy_mode`) chooses: `auto` (default) tries COPY and, when the server
//! refuses it (SQLSTATE `0A000`, or `42601` on the COPY of a SELECT that was already prepared),
//! falls back and keeps using the cursor for the connector's lifetime (not inside a partition's
//! snapshot transaction, which the failed COPY aborted: that read fails); `binary_copy` never
//! falls back; `cursor` never tries COPY. Only the forced cursor path is verified here (against
//! PostgreSQL 15); there is no Redshift server to test the refusal and the fallback against.
//!
//! Batches hold at most `batch_rows` rows (default 8192) and roughly `batch_bytes` bytes (wire
//! bytes, default 64 MiB). Dropping a stream cancels the query on the server
//! (`CancelToken`), rolls back, and returns the connection to the pool.
//!
//! # Type mapping
//! | PostgreSQL | Arrow | notes |
//! |---|---|---|
//! | `bool` | `Boolean` | |
//! | `int2` / `int4` / `int8` | `Int16` / `Int32` / `Int64` | |
//! | `float4` / `float8` | `Float32` / `Float64` | NaN and ±Infinity kept |
//! | `numeric(p,s)`, p ≤ 38 | `Decimal128(p,s)` | negative scales (PostgreSQL 15) kept |
//! | `numeric(p,s)`, 38 < p ≤ 76 | `Decimal256(p,s)` | |
//! | `numeric(p,s)`, p > 76 | `Utf8` | exact text |
//! | `numeric` (unconstrained) | per [`NumericPolicy`] | default `Decimal128(38,10)`; a value that does not fit, or NaN/±Infinity for decimals, is an error naming the column |
//! | `text`, `varchar`, `bpchar`, `name`, `citext`, `json`, `xml` | `Utf8` | `bpchar` keeps its padding |
//! | `jsonb` | `Utf8` | the version-1 binary format, i.e. the JSON text |
//! | enums | `Utf8` | the label |
//! | domains | their base type | (a domain's own typmod is not applied: `numeric` domains use the policy) |
//! | `bytea` | `Binary` | |
//! | `date` | `Date32` | ±infinity → `i32::MAX` / `i32::MIN` |
//! | `time` | `Time64(µs)` | |
//! | `timetz` | `Time64(µs)` | normalized to UTC; the offset is not kept |
//! | `timestamp` | `Timestamp(µs, None)` | ±infinity → `i64::MAX` / `i64::MIN`; 4713 BC … 294247-01-10 (µs since 1970 must fit `i64`; PostgreSQL's last 29 years, up to 294276 AD, are a decode error naming the column) |
//! | `timestamptz` | `Timestamp(µs, "UTC")` | same |
//! | `interval` | `Interval(MonthDayNano)` | |
//! | `uuid` | `FixedSizeBinary(16)` | field metadata `ARROW:extension:name = arrow.uuid` |
//! | `money` | `Int64` | the amount in the currency's minor unit (cents); independent of `lc_monetary` |
//! | `oid` | `UInt32` | |
//! | `inet`, `cidr`, `macaddr`, `macaddr8`, `bit`, `varbit`, `"char"` | `Utf8` | read through `::text` (`inet` always with its mask length, e.g. `1.2.3.4/32`; bits as `0`/`1`) |
//! | 1-D arrays of any of the above | `List<T>` | multi-dimensional arrays are an error naming the column |
//! | anything else | per [`UnknownTypePolicy`] | error (default) or `::text` |
//!
//! Writing maps back: `Boolean`→`boolean`, `Int8/16`,`UInt8`→`smallint`, `Int32`,`UInt16`→`integer`,
//! `Int64`,`UInt32`→`bigint`, `UInt64`→`numeric(20,0)`, `Float16/32`→`real`, `Float64`→`double
//! precision`, decimals→`numeric(p,s)`, strings→`text`, binaries→`bytea`, `FixedSizeBinary(16)` with
//! `arrow.uuid`→`uuid`, dates→`date`, times→`time`, `Timestamp(_, None)`→`timestamp`,
//! `Timestamp(_, Some)`→`timestamptz`, `Interval(MonthDayNano)`→`interval`, `List<T>`→`T[]`,
//! dictionaries→their value type. Timestamps and times are stored in microseconds (PostgreSQL's
//! precision): finer units are an error unless their sub-microsecond part is zero.
//!
//! # Partitioned reads
//! [`Source::plan`] with `max_partitions > 1` on a table opens a coordinating transaction
//! (`BEGIN ISOLATION LEVEL REPEATABLE READ`, `SELECT pg_export_snapshot()`) and keeps it open in
//! the source, keyed by the snapshot id written into every [`Partition::spec`]. Each partition
//! reads in its own transaction after `SET TRANSACTION SNAPSHOT`, so all partitions see the same
//! rows. The coordinating transaction ends when every partition's read has finished, failed or
//! been dropped, or after `snapshot_ttl_secs` (default 600), whichever comes first; a partition
//! read after that fails with a message to plan again. Strategies ([`PartitionStrategy`]):
//! - `ctid`: physical block ranges from `pg_relation_size` / `block_size`
//!   (`ctid >= '(a,0)'::tid AND ctid < '(b,0)'::tid`, a TID range scan), needs no key; the last
//!   range is open-ended so every row of the snapshot is read exactly once;
//! - `range`: integer, date or timestamp key split evenly between its min and max in the
//!   snapshot; the first range also takes NULL keys and everything below, the last everything above;
//! - `hash`: `hashtext(key::text) % n`, for any key type (each partition scans the table);
//! - `auto` (default): `range` on a single-column integer primary key, else `ctid` for tables,
//!   else one partition. Native queries are never split.
//!
//! # Writing
//! Every write is one transaction: rows go through `COPY … FROM STDIN (FORMAT binary)` encoded
//! from Arrow in bounded chunks (~1 MiB), and a failure anywhere (the input stream, a value,
//! the server) rolls everything back, leaving the target unchanged.
//! - append: `COPY` into the target;
//! - overwrite: `TRUNCATE` then `COPY` in the same transaction (readers in snapshots older than the
//!   commit see the table empty — a documented PostgreSQL `TRUNCATE` caveat — but never a half-written one);
//! - upsert: `COPY` into a temporary table, then `INSERT … SELECT DISTINCT ON (keys) … ORDER BY keys,
//!   arrival DESC ON CONFLICT (keys) DO UPDATE`; the last incoming row per key wins. That needs a
//!   unique index or constraint on exactly the key columns; without one the sink takes a
//!   `SHARE ROW EXCLUSIVE` lock (concurrent writers wait, readers do not) and runs `UPDATE … FROM`
//!   then `INSERT … WHERE NOT EXISTS` instead (existing duplicate keys are all updated);
//!   a table the upsert creates gets `PRIMARY KEY (keys)`;
//! - delete: `COPY` the keys into a temporary table, then `DELETE … USING` (NULL keys match nothing).
//!
//! A missing table is created from the Arrow schema (`create_if_missing`); under
//! [`connector_core::SchemaDriftPolicy::AddColumns`] missing columns are added with
//! `ALTER TABLE … ADD COLUMN` inside the same transaction.
//!
//! # Connections
//! A deadpool pool (`pool_size`), `connect_timeout_ms`, and `statement_timeout_ms` (sent as the
//! `statement_timeout` setting; a statement that runs longer fails with a `Timeout` error).
//! TLS is rustls with the `ring` provider, with libpq's `sslmode` meanings:
//! - `disable` (default): no TLS;
//! - `prefer`: TLS if the server accepts it, else plain (a server that refuses TLS is not an
//!   error); the certificate is not verified;
//! - `require`: TLS or fail; the certificate is **not** verified (the handshake signatures are),
//!   so it protects against eavesdropping, not against an active man in the middle;
//! - `verify_full`: TLS; the chain must lead to a certificate of the PEM file `sslrootcert` or,
//!   without it, to a root of the platform store (`rustls-native-certs`: `SSL_CERT_FILE`,
//!   `SSL_CERT_DIR`, else `/etc/ssl/certs` on Linux). As with libpq, `sslrootcert` replaces the
//!   platform store rather than adding to it. The certificate must name `host` (an IP address
//!   must be in its IP subject alternative names).
//!
//! A failed handshake or a rejected certificate is a permanent `Connection` error naming the
//! `sslmode`, the host and the reason (e.g. `UnknownIssuer`, a name mismatch), so retry layers
//! do not hammer the server. Writes always use binary `COPY … FROM STDIN`: servers that refuse it (Redshift)
//! cannot be written to.
//!
//! # Errors
//! SQLSTATE is kept ([`Error::sqlstate`]); `28P01`/`28000` → `Authentication`, `42501` →
//! `Permission`, `42P01`/`3D000`/`3F000`/`42703` → `NotFound`, `57014` (statement timeout,
//! cancel) → `Timeout`, `23505` → `Conflict`, `40001`/`40P01` → temporary `Conflict`, `08xxx`,
//! `53xxx`, `57P0x` and refused connections → temporary `Connection`. The password is a
//! [`Secret`] and never appears in `Debug`, `Display`, logs or errors.

mod decode;
mod encode;
mod error;
mod numeric;
mod read;
mod sqltext;
mod tls;
mod types;
mod write;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use connector_core::registry::{Connector, ConnectorFactory, KindCapabilities, Registry};
use connector_core::{
    DatasetInfo, Error, Partition, ReadRequest, Secret, SendableRecordBatchStream, Sink,
    SinkCapabilities, Source, SourceCapabilities, WriteReport, WriteRequest,
};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use serde::{Deserialize, Serialize};

pub use types::{NumericPolicy, UnknownTypePolicy};

use crate::shared::{self, kind_caps, sink_caps};
use error::CONNECTOR;
use read::{ReadOptions, Snapshots};

/// How [`Source::plan`] splits a table. See the [module docs](self#partitioned-reads).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", tag = "mode")]
pub enum PartitionStrategy {
    /// Range on a single-column integer primary key, else ctid blocks, else one partition.
    #[default]
    Auto,
    /// Never split.
    None,
    /// Physical block ranges; needs no key.
    Ctid,
    /// Even ranges between min and max of an integer, date or timestamp column (other types hash).
    Range {
        /// The key column.
        column: String,
    },
    /// `hashtext(column::text) % n`.
    Hash {
        /// The key column.
        column: String,
    },
}

/// How reads get their rows. See the [module docs](self#reading).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum CopyMode {
    /// Binary COPY; when the server refuses it (Redshift), a cursor, for this and every later
    /// read of the connector.
    #[default]
    Auto,
    /// Binary COPY only.
    BinaryCopy,
    /// `DECLARE … CURSOR` and `FETCH` in a transaction.
    Cursor,
}

/// `sslmode`, as in libpq.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum SslMode {
    /// No TLS.
    #[default]
    Disable,
    /// TLS if the server offers it, else plain; the certificate is not verified.
    Prefer,
    /// TLS or fail; the certificate is not verified (as libpq's `require`).
    Require,
    /// TLS; the certificate chain must lead to a root of `sslrootcert` (else of the platform
    /// store) and the certificate must name the host.
    VerifyFull,
}

impl SslMode {
    /// The libpq spelling, as in the configuration (`verify_full`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyFull => "verify_full",
        }
    }
}

fn default_host() -> String {
    "127.0.0.1".into()
}
fn default_port() -> u16 {
    5432
}
fn default_user() -> String {
    "postgres".into()
}
fn default_db() -> String {
    "postgres".into()
}
fn default_pool() -> usize {
    8
}
fn default_connect_timeout() -> u64 {
    10_000
}
fn default_ttl() -> u64 {
    600
}

/// Configuration of the `postgres` kind.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// Host name or IP address.
    #[serde(default = "default_host")]
    pub host: String,
    /// Port.
    #[serde(default = "default_port")]
    pub port: u16,
    /// User name.
    #[serde(default = "default_user")]
    pub user: String,
    /// Password (never printed).
    #[serde(default)]
    pub password: Option<Secret>,
    /// Database name.
    #[serde(default = "default_db")]
    pub dbname: String,
    /// TLS mode.
    #[serde(default)]
    pub sslmode: SslMode,
    /// PEM file of the CA certificates `sslmode: verify_full` trusts. As libpq's `sslrootcert`,
    /// it replaces the platform store (which is used when this is absent).
    #[serde(default)]
    pub sslrootcert: Option<std::path::PathBuf>,
    /// Binary COPY, cursor, or COPY with a cursor fallback (default).
    #[serde(default)]
    pub copy_mode: CopyMode,
    /// Maximum pooled connections.
    #[serde(default = "default_pool")]
    pub pool_size: usize,
    /// Connect timeout in milliseconds.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_ms: u64,
    /// `statement_timeout` in milliseconds (none by default).
    #[serde(default)]
    pub statement_timeout_ms: Option<u64>,
    /// How `plan` splits tables.
    #[serde(default)]
    pub partitioning: PartitionStrategy,
    /// How unconstrained `numeric` is read.
    #[serde(default)]
    pub numeric: NumericPolicy,
    /// What to do with types that have no mapping.
    #[serde(default)]
    pub unknown_types: UnknownTypePolicy,
    /// Schemas `discover` lists (all non-system schemas when absent).
    #[serde(default)]
    pub schemas: Option<Vec<String>>,
    /// Seconds a partitioned read's snapshot is held at most.
    #[serde(default = "default_ttl")]
    pub snapshot_ttl_secs: u64,
    /// `application_name` reported to the server.
    #[serde(default)]
    pub application_name: Option<String>,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        Self {
            host: default_host(),
            port: default_port(),
            user: default_user(),
            password: None,
            dbname: default_db(),
            sslmode: SslMode::default(),
            sslrootcert: None,
            copy_mode: CopyMode::default(),
            pool_size: default_pool(),
            connect_timeout_ms: default_connect_timeout(),
            statement_timeout_ms: None,
            partitioning: PartitionStrategy::default(),
            numeric: NumericPolicy::default(),
            unknown_types: UnknownTypePolicy::default(),
            schemas: None,
            snapshot_ttl_secs: default_ttl(),
            application_name: None,
        }
    }
}

impl PostgresConfig {
    /// Read host, port, user, password and dbname from a libpq key/value string
    /// (`host=… port=… user=… dbname=…`) or a `postgresql://` URL; other fields keep defaults.
    pub fn from_dsn(dsn: &str) -> Result<Self, Error> {
        let c: tokio_postgres::Config = dsn.parse().map_err(|e: tokio_postgres::Error| {
            // the driver's message never contains the password
            Error::invalid_config(format!("invalid connection string: {e}"))
                .with_connector(CONNECTOR)
        })?;
        let mut cfg = Self::default();
        if let Some(tokio_postgres::config::Host::Tcp(h)) = c.get_hosts().first() {
            cfg.host.clone_from(h);
        }
        if let Some(p) = c.get_ports().first() {
            cfg.port = *p;
        }
        if let Some(u) = c.get_user() {
            u.clone_into(&mut cfg.user);
        }
        if let Some(d) = c.get_dbname() {
            d.clone_into(&mut cfg.dbname);
        }
        if let Some(p) = c.get_password() {
            cfg.password = Some(Secret::new(String::from_utf8_lossy(p).into_owned()));
        }
        Ok(cfg)
    }

    fn pg_config(&self) -> tokio_postgres::Config {
        use tokio_postgres::config::SslMode as PgSsl;
        let mut c = tokio_postgres::Config::new();
        c.ssl_mode(match self.sslmode {
            SslMode::Disable => PgSsl::Disable,
            SslMode::Prefer => PgSsl::Prefer,
            SslMode::Require | SslMode::VerifyFull => PgSsl::Require,
        })
        .host(&self.host)
        .port(self.port)
        .user(&self.user)
        .dbname(&self.dbname)
        .connect_timeout(Duration::from_millis(self.connect_timeout_ms))
        .application_name(
            self.application_name
                .as_deref()
                .unwrap_or("arrow-connectors"),
        );
        if let Some(p) = &self.password {
            c.password(p.expose());
        }
        if let Some(t) = self.statement_timeout_ms {
            c.options(format!("-c statement_timeout={t}"));
        }
        c
    }
}

struct Inner {
    config: PostgresConfig,
    pool: Pool,
    snapshots: Snapshots,
    read: ReadOptions,
}

/// A PostgreSQL source and sink over one connection pool. Cheap to clone.
#[derive(Clone)]
pub struct PostgresConnector {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PostgresConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.inner.config;
        f.debug_struct("PostgresConnector")
            .field("host", &c.host)
            .field("port", &c.port)
            .field("user", &c.user)
            .field("dbname", &c.dbname)
            .field("sslmode", &c.sslmode)
            .field("snapshots", &self.inner.snapshots)
            .finish_non_exhaustive()
    }
}

impl PostgresConnector {
    /// Build a connector (and its pool) from `config`. Does not contact the server.
    pub fn new(config: PostgresConfig) -> Result<Self, Error> {
        let pg = config.pg_config();
        let tls = tls::MakeTls::new(config.sslmode, config.sslrootcert.as_deref())
            .map_err(|e| e.with_connector(CONNECTOR).with_operation("build"))?;
        let manager = Manager::from_config(
            pg,
            tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let timeout = Duration::from_millis(config.connect_timeout_ms);
        let pool = Pool::builder(manager)
            .max_size(config.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .create_timeout(Some(timeout))
            .wait_timeout(Some(timeout.saturating_mul(3)))
            .build()
            .map_err(|e| {
                Error::invalid_config(format!("cannot build the connection pool: {e}"))
                    .with_connector(CONNECTOR)
                    .with_operation("build")
            })?;
        let read = ReadOptions {
            numeric: config.numeric,
            unknown: config.unknown_types,
            schemas: config.schemas.clone(),
            snapshot_ttl: Duration::from_secs(config.snapshot_ttl_secs),
            tls,
            copy_mode: config.copy_mode,
            copy_refused: Arc::default(),
        };
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                pool,
                snapshots: Snapshots::default(),
                read,
            }),
        })
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &PostgresConfig {
        &self.inner.config
    }

    /// Plan with an explicit strategy instead of the configured one.
    pub async fn plan_with(
        &self,
        request: &ReadRequest,
        max_partitions: usize,
        strategy: &PartitionStrategy,
    ) -> Result<Vec<Partition>, Error> {
        let i = &self.inner;
        read::plan(
            &i.pool,
            &i.snapshots,
            &i.read,
            strategy,
            request,
            max_partitions,
        )
        .await
    }

    /// Snapshots of partitioned reads currently held open.
    #[must_use]
    pub fn open_snapshots(&self) -> usize {
        self.inner.snapshots.len()
    }

    async fn check_impl(&self) -> Result<(), Error> {
        let client = self
            .inner
            .pool
            .get()
            .await
            .map_err(|e| error::map_pool(e, "check"))?;
        client
            .simple_query("SELECT 1")
            .await
            .map_err(|e| error::map_pg(&e, "check", None))?;
        Ok(())
    }
}

#[async_trait]
impl Source for PostgresConnector {
    fn name(&self) -> &str {
        CONNECTOR
    }

    fn capabilities(&self) -> SourceCapabilities {
        source_caps()
    }

    async fn check(&self) -> Result<(), Error> {
        self.check_impl().await
    }

    async fn discover(&self) -> Result<Vec<DatasetInfo>, Error> {
        read::discover(&self.inner.pool, &self.inner.read).await
    }

    async fn plan(
        &self,
        request: &ReadRequest,
        max_partitions: usize,
    ) -> Result<Vec<Partition>, Error> {
        self.plan_with(request, max_partitions, &self.inner.config.partitioning)
            .await
    }

    async fn read(&self, partition: Partition) -> Result<SendableRecordBatchStream, Error> {
        let i = &self.inner;
        read::read(&i.pool, &i.snapshots, &i.read, partition).await
    }
}

#[async_trait]
impl Sink for PostgresConnector {
    fn name(&self) -> &str {
        CONNECTOR
    }

    fn capabilities(&self) -> SinkCapabilities {
        sink_caps()
    }

    async fn check(&self) -> Result<(), Error> {
        self.check_impl().await
    }

    async fn write(
        &self,
        request: WriteRequest,
        data: SendableRecordBatchStream,
    ) -> Result<WriteReport, Error> {
        write::write(&self.inner.pool, request, data).await
    }
}

fn source_caps() -> SourceCapabilities {
    shared::source_caps().with_consistent_snapshot()
}

/// The registry factory of the `postgres` kind.
#[derive(Debug, Clone, Copy, Default)]
pub struct PostgresFactory;

#[async_trait]
impl ConnectorFactory for PostgresFactory {
    type Config = PostgresConfig;

    fn kind(&self) -> &'static str {
        CONNECTOR
    }

    fn description(&self) -> &'static str {
        "PostgreSQL: binary COPY reads and writes, snapshot-consistent partitioned reads"
    }

    fn capabilities(&self) -> KindCapabilities {
        kind_caps(source_caps())
    }

    async fn build(&self, config: PostgresConfig) -> Result<Connector, Error> {
        let c = PostgresConnector::new(config)?;
        Ok(Connector::both(c.clone(), c))
    }
}

/// Register the `postgres` kind.
pub fn register(registry: &mut Registry) {
    registry.register(PostgresFactory);
}

#[cfg(test)]
mod tests {
    use super::*;
    use connector_core::ErrorKind;

    #[test]
    fn config_never_prints_the_password() {
        let c: PostgresConfig = serde_json::from_value(serde_json::json!({
            "host": "db", "password": "hunter2", "partitioning": {"mode": "hash", "column": "k"},
            "numeric": {"type": "decimal256", "scale": 4}
        }))
        .unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(c.password.as_ref().map(Secret::expose), Some("hunter2"));
        assert_eq!(c.numeric, NumericPolicy::Decimal256 { scale: 4 });
        let conn = PostgresConnector::new(c).unwrap();
        assert!(!format!("{conn:?}").contains("hunter2"));
        let c = PostgresConfig::from_dsn("host=h port=6000 user=u password=pw dbname=d").unwrap();
        assert_eq!(
            (c.host.as_str(), c.port, c.dbname.as_str()),
            ("h", 6000, "d")
        );
        assert!(!format!("{c:?}").contains("pw"));
    }

    #[test]
    fn tls_modes_build_and_a_bad_rootcert_is_a_config_error() {
        for mode in [
            SslMode::Disable,
            SslMode::Prefer,
            SslMode::Require,
            SslMode::VerifyFull,
        ] {
            let c = PostgresConfig {
                sslmode: mode,
                ..PostgresConfig::default()
            };
            PostgresConnector::new(c).unwrap();
        }
        let c: PostgresConfig = serde_json::from_value(serde_json::json!({
            "sslmode": "verify_full", "sslrootcert": "/nonexistent/root.pem"
        }))
        .unwrap();
        let e = PostgresConnector::new(c).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidConfig);
        assert!(e.to_string().contains("/nonexistent/root.pem"), "{e}");
    }
}
