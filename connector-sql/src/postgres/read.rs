//! The read path: query building, `COPY … TO STDOUT (FORMAT binary)` streaming, partition
//! planning over one exported snapshot, and discovery.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::datatypes::{Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use connector_core::{
    DatasetInfo, Error, ErrorKind, Location, Partition, ReadRequest, ReadTarget,
    RecordBatchStreamAdapter, SendableRecordBatchStream,
};
use deadpool_postgres::{Object, Pool};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio_postgres::types::{FromSql, Type};
use tokio_postgres::{CancelToken, CopyOutStream};

use super::decode::{CopyDecoder, SIGNATURE};
use super::error::{map_pg, map_pool, ours};
use super::sqltext::{date_literal, ident, render_filter, timestamp_literal};
use super::tls::MakeTls;
use super::types::{self, NumericPolicy, Resolved, UnknownTypePolicy};
use super::{CopyMode, PartitionStrategy};
use crate::sql::split_qualified;

/// Default Arrow-bytes budget of one batch when the request gives none.
const DEFAULT_BATCH_BYTES: usize = 64 << 20;

/// Options the read path needs from the connector config.
#[derive(Debug, Clone)]
pub(crate) struct ReadOptions {
    pub numeric: NumericPolicy,
    pub unknown: UnknownTypePolicy,
    pub schemas: Option<Vec<String>>,
    pub snapshot_ttl: Duration,
    /// The pool's TLS connector, for cancel requests (which open their own connection).
    pub tls: MakeTls,
    /// Binary COPY, cursor, or COPY with a fallback.
    pub copy_mode: CopyMode,
    /// Set once the server refused binary COPY under [`CopyMode::Auto`]: later reads use the cursor.
    pub copy_refused: Arc<AtomicBool>,
}

/// The cursor of the cursor read path.
const CURSOR: &str = "arrow_connectors_read";

/// Whether a failed `COPY (…) TO STDOUT (FORMAT binary)` means the server does not do binary
/// COPY (Redshift: `0A000` `feature_not_supported`, or `42601` syntax error on the COPY itself)
/// rather than a problem of the query. The SELECT was already prepared by `describe`, so a
/// syntax error at this point is the COPY's.
pub(crate) fn refuses_copy(sqlstate: Option<&str>) -> bool {
    matches!(sqlstate, Some("0A000" | "42601"))
}

/// A coordinating transaction that exported a snapshot, kept open while partitions read it.
struct Held {
    client: Option<Object>,
    remaining: usize,
}

/// Snapshots held open by [`Snapshots`], keyed by snapshot id.
#[derive(Clone, Default)]
pub(crate) struct Snapshots(Arc<Mutex<HashMap<String, Held>>>);

impl std::fmt::Debug for Snapshots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.0.lock().map_or(0, |m| m.len());
        f.debug_struct("Snapshots").field("held", &n).finish()
    }
}

impl Snapshots {
    /// Number of snapshots currently held open.
    pub(crate) fn len(&self) -> usize {
        self.0.lock().map_or(0, |m| m.len())
    }

    fn insert(&self, id: String, client: Object, remaining: usize, ttl: Duration) {
        if let Ok(mut m) = self.0.lock() {
            m.insert(
                id.clone(),
                Held {
                    client: Some(client),
                    remaining,
                },
            );
        }
        let me = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(ttl).await;
            me.release(&id);
        });
    }

    fn lease(&self, id: &str) -> Option<Lease> {
        let m = self.0.lock().ok()?;
        m.contains_key(id).then(|| Lease {
            snapshots: self.clone(),
            id: id.to_owned(),
        })
    }

    fn done_one(&self, id: &str) {
        let release = match self.0.lock() {
            Ok(mut m) => match m.get_mut(id) {
                Some(h) => {
                    h.remaining = h.remaining.saturating_sub(1);
                    h.remaining == 0
                }
                None => false,
            },
            Err(_) => false,
        };
        if release {
            self.release(id);
        }
    }

    fn release(&self, id: &str) {
        let held = self.0.lock().ok().and_then(|mut m| m.remove(id));
        if let Some(client) = held.and_then(|mut h| h.client.take()) {
            end_transaction(client);
        }
    }
}

/// Ends an open transaction on a pooled connection in the background (ROLLBACK), discarding the
/// connection if that fails.
fn end_transaction(client: Object) {
    match tokio::runtime::Handle::try_current() {
        Ok(h) => {
            h.spawn(async move {
                if client.batch_execute("ROLLBACK").await.is_err() {
                    drop(Object::take(client));
                }
            });
        }
        Err(_) => drop(Object::take(client)),
    }
}

/// Counts one partition of a snapshot as finished when dropped.
struct Lease {
    snapshots: Snapshots,
    id: String,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.snapshots.done_one(&self.id);
    }
}

/// What one partition reads, as serialized into [`Partition::spec`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct PartSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slice: Option<Slice>,
}

/// The type of a range-partitioning column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RangeType {
    Int,
    Date,
    Timestamp,
    Timestamptz,
}

/// One slice of a table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum Slice {
    /// Heap blocks `[lo, hi)`; open ends are unbounded.
    Ctid { lo: Option<u64>, hi: Option<u64> },
    /// `column` in `[lo, hi)`; `nulls` adds the NULL keys.
    Range {
        column: String,
        ty: RangeType,
        lo: Option<i64>,
        hi: Option<i64>,
        nulls: bool,
    },
    /// Rows whose key hashes to `remainder` modulo `modulus`; remainder 0 adds the NULL keys.
    Hash {
        column: String,
        modulus: u32,
        remainder: u32,
    },
}

impl Slice {
    fn predicate(&self) -> String {
        match self {
            Self::Ctid { lo, hi } => {
                let mut p = Vec::new();
                if let Some(lo) = lo {
                    p.push(format!("ctid >= '({lo},0)'::tid"));
                }
                if let Some(hi) = hi {
                    p.push(format!("ctid < '({hi},0)'::tid"));
                }
                if p.is_empty() {
                    "TRUE".into()
                } else {
                    p.join(" AND ")
                }
            }
            Self::Range {
                column,
                ty,
                lo,
                hi,
                nulls,
            } => {
                let c = ident(column);
                let lit = |v: i64| match ty {
                    RangeType::Int => {
                        if v < 0 {
                            format!("({v})")
                        } else {
                            v.to_string()
                        }
                    }
                    RangeType::Date => date_literal(i32::try_from(v).unwrap_or(if v < 0 {
                        i32::MIN
                    } else {
                        i32::MAX
                    })),
                    RangeType::Timestamp => timestamp_literal(v, false),
                    RangeType::Timestamptz => timestamp_literal(v, true),
                };
                let mut p = Vec::new();
                if let Some(lo) = lo {
                    p.push(format!("{c} >= {}", lit(*lo)));
                }
                if let Some(hi) = hi {
                    p.push(format!("{c} < {}", lit(*hi)));
                }
                let body = if p.is_empty() {
                    format!("{c} IS NOT NULL")
                } else {
                    p.join(" AND ")
                };
                if *nulls {
                    format!("({body}) OR {c} IS NULL")
                } else {
                    body
                }
            }
            Self::Hash {
                column,
                modulus,
                remainder,
            } => {
                let c = ident(column);
                let p =
                    format!("(hashtext({c}::text)::int8 & 2147483647) % {modulus} = {remainder}");
                if *remainder == 0 {
                    format!("({p}) OR {c} IS NULL")
                } else {
                    p
                }
            }
        }
    }
}

/// A snapshot id as `pg_export_snapshot()` returns it (hex digits and dashes).
fn valid_snapshot_id(s: &str) -> bool {
    !s.is_empty() && s.len() < 64 && s.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

/// The quoted relation of a dataset name (`schema.table` or `table`).
pub(crate) fn quoted_relation(name: &str) -> Result<String, Error> {
    let parts = split_qualified(name);
    if parts.is_empty() || parts.len() > 2 || parts.iter().any(String::is_empty) {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("{name:?} is not a table name (expected `table` or `schema.table`)"),
        )
        .with_location(Location::table(name)));
    }
    Ok(parts.iter().map(|p| ident(p)).collect::<Vec<_>>().join("."))
}

/// The dataset name of `schema.table`, quoting parts only when needed.
fn dataset_name(schema: &str, table: &str) -> String {
    let q = |s: &str| {
        if s.contains('.') || s.contains('"') || s.is_empty() {
            ident(s)
        } else {
            s.to_owned()
        }
    };
    format!("{}.{}", q(schema), q(table))
}

/// A described result column.
pub(crate) struct Described {
    pub name: String,
    pub ty: Type,
    pub resolved: Resolved,
    pub nullable: bool,
}

/// Describe `SELECT * FROM base` without running it.
pub(crate) async fn describe(
    client: &Object,
    base: &str,
    opts: &ReadOptions,
    table: &str,
    op: &'static str,
) -> Result<Vec<Described>, Error> {
    let stmt = client
        .prepare(&format!("SELECT * FROM {base}"))
        .await
        .map_err(|e| map_pg(&e, op, Some(table)))?;
    let cols = stmt.columns();
    // NOT NULL from the catalog, for columns that come straight from a table
    let rels: Vec<u32> = cols
        .iter()
        .filter_map(tokio_postgres::Column::table_oid)
        .collect();
    let mut notnull: HashMap<(u32, i16), bool> = HashMap::new();
    if !rels.is_empty() {
        let rows = client
            .query(
                "SELECT attrelid, attnum, attnotnull FROM pg_attribute WHERE attrelid = ANY($1) AND attnum > 0",
                &[&rels],
            )
            .await
            .map_err(|e| map_pg(&e, op, Some(table)))?;
        for r in rows {
            notnull.insert((r.get(0), r.get(1)), r.get(2));
        }
    }
    cols.iter()
        .map(|c| {
            let resolved = types::resolve(
                c.type_(),
                c.type_modifier(),
                opts.numeric,
                opts.unknown,
                c.name(),
            )
            .map_err(|e| ours(e.with_location(Location::table(table)), op))?;
            let nn = match (c.table_oid(), c.column_id()) {
                (Some(t), Some(a)) => notnull.get(&(t, a)).copied().unwrap_or(false),
                _ => false,
            };
            Ok(Described {
                name: c.name().to_owned(),
                ty: c.type_().clone(),
                resolved,
                nullable: !nn,
            })
        })
        .collect()
}

/// The relation text and the display name of a read target.
fn base_of(request: &ReadRequest) -> Result<(String, String), Error> {
    match &request.target {
        ReadTarget::Dataset(d) => Ok((quoted_relation(d)?, d.clone())),
        ReadTarget::Query(q) => {
            let q = q.trim().trim_end_matches(';');
            Ok((format!("({q}) AS \"_q\""), "query".to_owned()))
        }
    }
}

/// Build the SELECT of a read and its output columns.
pub(crate) fn build_select(
    request: &ReadRequest,
    base: &str,
    described: &[Described],
    slice: Option<&Slice>,
    table: &str,
) -> Result<(String, Vec<usize>), Error> {
    let indices: Vec<usize> = match &request.projection {
        None => (0..described.len()).collect(),
        Some(cols) => cols
            .iter()
            .map(|c| {
                let mut found = described.iter().enumerate().filter(|(_, d)| &d.name == c);
                match (found.next(), found.next()) {
                    (Some((i, _)), None) => Ok(i),
                    (None, _) => Err(Error::new(
                        ErrorKind::NotFound,
                        format!(
                            "column {c:?} not found; available: {}",
                            described
                                .iter()
                                .map(|d| d.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    )
                    .with_location(Location::table(table).with_column(c))),
                    (Some(_), Some(_)) => Err(Error::new(
                        ErrorKind::InvalidInput,
                        format!("column name {c:?} is ambiguous"),
                    )
                    .with_location(Location::table(table).with_column(c))),
                }
            })
            .collect::<Result<_, _>>()?,
    };
    let needs_list =
        request.projection.is_some() || described.iter().any(|d| d.resolved.cast.is_some());
    let list = if needs_list {
        let mut seen = std::collections::HashSet::new();
        let mut parts = Vec::with_capacity(indices.len());
        for &i in &indices {
            let d = &described[i];
            if !seen.insert(d.name.as_str()) && request.projection.is_none() {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "the query returns column {:?} twice; alias one of them",
                        d.name
                    ),
                )
                .with_location(Location::table(table).with_column(&d.name)));
            }
            let c = ident(&d.name);
            parts.push(match d.resolved.cast {
                Some(cast) => format!("{c}::{cast} AS {c}"),
                None => c,
            });
        }
        parts.join(", ")
    } else {
        "*".to_owned()
    };
    let mut sql = format!("SELECT {list} FROM {base}");
    let mut preds = Vec::new();
    if let Some(f) = &request.filter {
        let is_tz = |c: &str| {
            described
                .iter()
                .any(|d| d.name == c && d.ty == Type::TIMESTAMPTZ)
        };
        preds.push(render_filter(f, &is_tz).map_err(|e| e.with_location(Location::table(table)))?);
    }
    if let Some(s) = slice {
        preds.push(s.predicate());
    }
    if !preds.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(
            &preds
                .iter()
                .map(|p| format!("({p})"))
                .collect::<Vec<_>>()
                .join(" AND "),
        );
    }
    if let Some(l) = request.limit {
        let _ = write!(sql, " LIMIT {l}");
    }
    Ok((sql, indices))
}

/// Read one partition as a stream.
pub(crate) async fn read(
    pool: &Pool,
    snapshots: &Snapshots,
    opts: &ReadOptions,
    partition: Partition,
) -> Result<SendableRecordBatchStream, Error> {
    const OP: &str = "read";
    let request = partition.request;
    let spec: PartSpec = if partition.spec.is_null() {
        PartSpec::default()
    } else {
        serde_json::from_value(partition.spec.clone()).map_err(|e| {
            ours(
                Error::new(
                    ErrorKind::InvalidInput,
                    format!("invalid partition spec: {e}"),
                ),
                OP,
            )
        })?
    };
    let (base, table) = base_of(&request).map_err(|e| ours(e, OP))?;
    let client = pool.get().await.map_err(|e| map_pool(e, OP))?;
    let mut guard = ReadState::new(client, table.clone(), opts.tls.clone());
    if let Some(id) = &spec.snapshot {
        if !valid_snapshot_id(id) {
            return Err(ours(
                Error::new(
                    ErrorKind::InvalidInput,
                    format!("invalid snapshot id {id:?}"),
                ),
                OP,
            ));
        }
        guard.lease = snapshots.lease(id);
        if guard.lease.is_none() {
            return Err(ours(
                Error::new(
                    ErrorKind::InvalidInput,
                    format!("snapshot {id} was released (all partitions finished, or its TTL passed); plan the read again"),
                )
                .with_location(Location::table(&table)),
                OP,
            ));
        }
        guard.in_tx = true;
        let c = guard.client()?;
        c.batch_execute(&format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT '{id}'"
        ))
        .await
        .map_err(|e| map_pg(&e, OP, Some(&table)))?;
    }
    let c = guard.client()?;
    let described = describe(c, &base, opts, &table, OP).await?;
    let (select, indices) = build_select(&request, &base, &described, spec.slice.as_ref(), &table)
        .map_err(|e| ours(e, OP))?;
    let fields: Vec<_> = indices
        .iter()
        .map(|&i| {
            let d = &described[i];
            types::field(&d.name, &d.resolved, d.nullable)
        })
        .collect();
    let decodes: Vec<_> = indices
        .iter()
        .map(|&i| described[i].resolved.decode.clone())
        .collect();
    let schema: SchemaRef = Arc::new(Schema::new(fields));
    let batch_rows = request.batch_rows_or_default().max(1);
    let mut fallback = false;
    let use_cursor = match opts.copy_mode {
        CopyMode::Cursor => true,
        CopyMode::BinaryCopy => false,
        CopyMode::Auto => opts.copy_refused.load(Ordering::Relaxed),
    };
    if !use_cursor {
        let copy_sql = format!("COPY ({select}) TO STDOUT (FORMAT binary)");
        tracing::debug!(target: "connector_sql::postgres", sql = %copy_sql, "copy out");
        match c.copy_out(copy_sql.as_str()).await {
            Ok(copy) => guard.feed = Some(Feed::Copy(Box::pin(copy))),
            // In a snapshot's transaction the failed COPY aborted it: no fallback there.
            Err(e)
                if opts.copy_mode == CopyMode::Auto
                    && !guard.in_tx
                    && refuses_copy(e.code().map(tokio_postgres::error::SqlState::code)) =>
            {
                tracing::info!(
                    target: "connector_sql::postgres", error = %e,
                    "the server refuses binary COPY; reading through a cursor"
                );
                fallback = true;
            }
            Err(e) => return Err(map_pg(&e, OP, Some(&table))),
        }
    }
    if guard.feed.is_none() {
        let begin = !guard.in_tx;
        guard.in_tx = true;
        let c = guard.client()?;
        if begin {
            c.batch_execute("BEGIN")
                .await
                .map_err(|e| map_pg(&e, OP, Some(&table)))?;
        }
        let declare = format!("DECLARE {CURSOR} NO SCROLL CURSOR FOR {select}");
        tracing::debug!(target: "connector_sql::postgres", sql = %declare, "cursor");
        c.batch_execute(&declare)
            .await
            .map_err(|e| map_pg(&e, OP, Some(&table)))?;
        if fallback {
            opts.copy_refused.store(true, Ordering::Relaxed);
        }
        guard.feed = Some(Feed::Cursor {
            fetch: format!("FETCH {batch_rows} FROM {CURSOR}"),
            rows: batch_rows,
            started: false,
            finished: false,
        });
    }
    guard.decoder = Some(CopyDecoder::new(
        schema.clone(),
        &decodes,
        batch_rows,
        request.batch_bytes.unwrap_or(DEFAULT_BATCH_BYTES),
        table,
    ));
    let stream = futures::stream::unfold(guard, |mut st| async move {
        if st.ended {
            return None;
        }
        match st.next_batch().await {
            Ok(Some(b)) => Some((Ok(b), st)),
            Ok(None) => None,
            Err(e) => {
                st.ended = true;
                Some((Err(ours(e, OP)), st))
            }
        }
    });
    Ok(RecordBatchStreamAdapter::boxed(schema, stream))
}

/// Where the decoder's bytes come from.
enum Feed {
    /// `COPY (…) TO STDOUT (FORMAT binary)`.
    Copy(Pin<Box<CopyOutStream>>),
    /// `FETCH n FROM` the cursor, binary results re-framed as binary COPY tuples: the same
    /// decoder, so the same Arrow output (a value's binary result format is its COPY format).
    Cursor {
        fetch: String,
        rows: usize,
        started: bool,
        finished: bool,
    },
}

impl Feed {
    async fn next(
        &mut self,
        client: Option<&Object>,
    ) -> Option<Result<Bytes, tokio_postgres::Error>> {
        match self {
            Self::Copy(s) => s.next().await,
            Self::Cursor {
                fetch,
                rows,
                started,
                finished,
            } => {
                if *finished {
                    return None;
                }
                let got = match client?.query(fetch.as_str(), &[]).await {
                    Ok(r) => r,
                    Err(e) => return Some(Err(e)),
                };
                let mut buf = BytesMut::new();
                if !*started {
                    *started = true;
                    buf.put_slice(SIGNATURE);
                    buf.put_i32(0); // flags
                    buf.put_i32(0); // header extension length
                }
                for row in &got {
                    if let Err(e) = put_tuple(row, &mut buf) {
                        return Some(Err(e));
                    }
                }
                if got.len() < *rows {
                    buf.put_i16(-1);
                    *finished = true;
                }
                Some(Ok(buf.freeze()))
            }
        }
    }
}

/// A value's bytes in the binary result format, whatever its type.
struct Raw<'a>(Option<&'a [u8]>);

impl<'a> FromSql<'a> for Raw<'a> {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Self(Some(raw)))
    }

    fn from_sql_null(_: &Type) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Self(None))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// One row as a binary COPY tuple: field count, then per field its length (-1 for NULL) and bytes.
fn put_tuple(row: &tokio_postgres::Row, buf: &mut BytesMut) -> Result<(), tokio_postgres::Error> {
    // PostgreSQL limits a row to 1664 columns and a value to 1 GiB: both always fit.
    buf.put_i16(i16::try_from(row.len()).unwrap_or(i16::MAX));
    for i in 0..row.len() {
        match row.try_get::<_, Raw<'_>>(i)?.0 {
            Some(v) => {
                buf.put_i32(i32::try_from(v.len()).unwrap_or(i32::MAX));
                buf.put_slice(v);
            }
            None => buf.put_i32(-1),
        }
    }
    Ok(())
}

/// The state of one streaming read. Dropping it before the end cancels the server-side query
/// and returns the connection to the pool after a ROLLBACK (or discards it).
struct ReadState {
    client: Option<Object>,
    cancel: CancelToken,
    feed: Option<Feed>,
    decoder: Option<CopyDecoder>,
    chunk: Bytes,
    pending: BytesMut,
    in_tx: bool,
    done: bool,
    ended: bool,
    lease: Option<Lease>,
    table: String,
    tls: MakeTls,
}

impl ReadState {
    fn new(client: Object, table: String, tls: MakeTls) -> Self {
        Self {
            cancel: client.cancel_token(),
            client: Some(client),
            feed: None,
            decoder: None,
            chunk: Bytes::new(),
            pending: BytesMut::new(),
            in_tx: false,
            done: false,
            ended: false,
            lease: None,
            table,
            tls,
        }
    }

    fn client(&self) -> Result<&Object, Error> {
        self.client
            .as_ref()
            .ok_or_else(|| Error::internal("connection already released"))
    }

    async fn next_batch(&mut self) -> Result<Option<RecordBatch>, Error> {
        let (Some(dec), Some(feed)) = (self.decoder.as_mut(), self.feed.as_mut()) else {
            return Ok(None);
        };
        loop {
            if !dec.finished() {
                if self.pending.is_empty() {
                    if !self.chunk.is_empty() {
                        let n = dec.decode(&self.chunk)?;
                        self.chunk.advance(n);
                        if !dec.batch_full() && !dec.finished() && !self.chunk.is_empty() {
                            // an incomplete tuple: keep it until more bytes arrive
                            self.pending.extend_from_slice(&self.chunk);
                            self.chunk = Bytes::new();
                        }
                    }
                } else {
                    let n = dec.decode(&self.pending)?;
                    self.pending.advance(n);
                }
            }
            if dec.batch_full() {
                return dec.flush().map(Some);
            }
            if dec.finished() {
                // drain the end of the COPY (CommandComplete), then commit
                while let Some(m) = feed.next(self.client.as_ref()).await {
                    m.map_err(|e| map_pg(&e, "read", Some(&self.table)))?;
                }
                if self.in_tx
                    && let Some(c) = &self.client
                {
                    c.batch_execute("COMMIT")
                        .await
                        .map_err(|e| map_pg(&e, "read", Some(&self.table)))?;
                }
                self.done = true;
                self.lease = None;
                self.client = None;
                self.feed = None;
                let rows = dec.buffered_rows();
                let last = if rows > 0 { Some(dec.flush()?) } else { None };
                self.decoder = None;
                return Ok(last);
            }
            match feed.next(self.client.as_ref()).await {
                Some(Ok(bytes)) => {
                    if self.pending.is_empty() && self.chunk.is_empty() {
                        self.chunk = bytes;
                    } else {
                        self.pending.extend_from_slice(&self.chunk);
                        self.chunk = Bytes::new();
                        self.pending.extend_from_slice(&bytes);
                    }
                }
                Some(Err(e)) => return Err(map_pg(&e, "read", Some(&self.table))),
                None => {
                    return Err(Error::new(
                        ErrorKind::Decode,
                        "the COPY stream ended without its end-of-data marker",
                    )
                    .with_location(Location::table(&self.table)));
                }
            }
        }
    }
}

impl Drop for ReadState {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let Some(client) = self.client.take() else {
            return;
        };
        let copy = self.feed.take();
        let cancel = self.cancel.clone();
        let lease = self.lease.take();
        let tls = self.tls.clone();
        let started = copy.is_some();
        match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                h.spawn(async move {
                    drop(copy);
                    if started {
                        // Stop the server from producing the rest of the result.
                        let _ = cancel.cancel_query(tls).await;
                    }
                    // Waits for the cancelled statement to end; a cancel that arrived late
                    // fails this instead, and the connection is discarded.
                    if client.batch_execute("ROLLBACK").await.is_err() {
                        drop(Object::take(client));
                    }
                    drop(lease);
                });
            }
            Err(_) => drop(Object::take(client)),
        }
    }
}

/// Plan `request` into at most `n` partitions reading one exported snapshot.
pub(crate) async fn plan(
    pool: &Pool,
    snapshots: &Snapshots,
    opts: &ReadOptions,
    strategy: &PartitionStrategy,
    request: &ReadRequest,
    n: usize,
) -> Result<Vec<Partition>, Error> {
    const OP: &str = "plan";
    let single = || Ok(vec![Partition::single(request.clone())]);
    let ReadTarget::Dataset(name) = &request.target else {
        return single();
    };
    if n <= 1 || matches!(strategy, PartitionStrategy::None) {
        // Validate the name early so a bad target fails at plan time.
        quoted_relation(name).map_err(|e| ours(e, OP))?;
        return single();
    }
    let rel = quoted_relation(name).map_err(|e| ours(e, OP))?;
    let client = pool.get().await.map_err(|e| map_pool(e, OP))?;
    let res = plan_in_snapshot(&client, &rel, name, strategy, n).await;
    match res {
        Ok((id, slices, estimate)) if slices.len() > 1 => {
            let count = slices.len();
            snapshots.insert(id.clone(), client, count, opts.snapshot_ttl);
            Ok(slices
                .into_iter()
                .enumerate()
                .map(|(index, slice)| Partition {
                    request: request.clone(),
                    index,
                    count,
                    spec: serde_json::to_value(PartSpec {
                        snapshot: Some(id.clone()),
                        slice: Some(slice),
                    })
                    .unwrap_or(serde_json::Value::Null),
                    row_estimate: estimate.map(|e| e / count as u64),
                })
                .collect())
        }
        Ok(_) => {
            end_transaction(client);
            single()
        }
        Err(e) => {
            end_transaction(client);
            Err(e)
        }
    }
}

type Planned = (String, Vec<Slice>, Option<u64>);

async fn plan_in_snapshot(
    client: &Object,
    rel: &str,
    name: &str,
    strategy: &PartitionStrategy,
    n: usize,
) -> Result<Planned, Error> {
    const OP: &str = "plan";
    let pg = |e: tokio_postgres::Error| map_pg(&e, OP, Some(name));
    client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await
        .map_err(pg)?;
    let id: String = client
        .query_one("SELECT pg_export_snapshot()", &[])
        .await
        .map_err(pg)?
        .get(0);
    let info = client
        .query_opt(
            "SELECT c.relkind::text, pg_relation_size(c.oid), current_setting('block_size')::int8, c.reltuples::float8 \
             FROM pg_class c WHERE c.oid = to_regclass($1)",
            &[&rel],
        )
        .await
        .map_err(pg)?
        .ok_or_else(|| {
            ours(
                Error::new(ErrorKind::NotFound, format!("table {name:?} does not exist"))
                    .with_location(Location::table(name)),
                OP,
            )
        })?;
    let relkind: String = info.get(0);
    let size: i64 = info.get(1);
    let block: i64 = info.get(2);
    let tuples: f64 = info.get(3);
    let estimate = (tuples >= 0.0).then_some(tuples as u64);
    let has_heap = relkind == "r" || relkind == "m";
    let strategy = match strategy {
        PartitionStrategy::Auto => match single_int_pk(client, rel).await.map_err(pg)? {
            Some(col) => PartitionStrategy::Range { column: col },
            None if has_heap => PartitionStrategy::Ctid,
            None => PartitionStrategy::None,
        },
        s => s.clone(),
    };
    let slices = match strategy {
        PartitionStrategy::None | PartitionStrategy::Auto => Vec::new(),
        PartitionStrategy::Ctid => {
            if !has_heap {
                return Err(ours(
                    Error::unsupported(format!(
                        "{name:?} is not a plain table (relkind {relkind}); ctid partitioning needs one"
                    ))
                    .with_location(Location::table(name)),
                    OP,
                ));
            }
            let blocks = (size.max(0) as u64).div_ceil(block.max(1) as u64);
            let parts = (n as u64).min(blocks.max(1));
            let step = blocks.div_ceil(parts).max(1);
            (0..parts)
                .map(|i| Slice::Ctid {
                    lo: (i > 0).then_some(i * step),
                    hi: (i + 1 < parts).then_some((i + 1) * step),
                })
                .collect()
        }
        PartitionStrategy::Range { column } => range_slices(client, rel, name, &column, n).await?,
        PartitionStrategy::Hash { column } => {
            let modulus = n.min(1024) as u32;
            (0..modulus)
                .map(|remainder| Slice::Hash {
                    column: column.clone(),
                    modulus,
                    remainder,
                })
                .collect()
        }
    };
    Ok((id, slices, estimate))
}

async fn single_int_pk(
    client: &Object,
    rel: &str,
) -> Result<Option<String>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT a.attname::text, a.atttypid::int8 FROM pg_index i \
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
             WHERE i.indrelid = to_regclass($1) AND i.indisprimary",
            &[&rel],
        )
        .await?;
    if rows.len() != 1 {
        return Ok(None);
    }
    let oid: i64 = rows[0].get(1);
    Ok(matches!(oid, 20 | 21 | 23).then(|| rows[0].get(0)))
}

async fn range_slices(
    client: &Object,
    rel: &str,
    name: &str,
    column: &str,
    n: usize,
) -> Result<Vec<Slice>, Error> {
    const OP: &str = "plan";
    let pg = |e: tokio_postgres::Error| map_pg(&e, OP, Some(name));
    let row = client
        .query_opt(
            "SELECT a.atttypid::int8 FROM pg_attribute a WHERE a.attrelid = to_regclass($1) AND a.attname = $2 AND NOT a.attisdropped",
            &[&rel, &column],
        )
        .await
        .map_err(pg)?
        .ok_or_else(|| {
            ours(
                Error::new(ErrorKind::NotFound, format!("partition column {column:?} not found"))
                    .with_location(Location::table(name).with_column(column)),
                OP,
            )
        })?;
    let oid: i64 = row.get(0);
    let c = ident(column);
    let (ty, q) = match oid {
        20 | 21 | 23 => (
            RangeType::Int,
            format!("SELECT min({c})::int8, max({c})::int8 FROM {rel}"),
        ),
        1082 => (
            RangeType::Date,
            format!(
                "SELECT (min({c}) - DATE '1970-01-01')::int8, (max({c}) - DATE '1970-01-01')::int8 FROM {rel} WHERE isfinite({c})"
            ),
        ),
        1114 | 1184 => (
            if oid == 1114 {
                RangeType::Timestamp
            } else {
                RangeType::Timestamptz
            },
            format!(
                "SELECT (extract(epoch FROM min({c})) * 1000000)::int8, (extract(epoch FROM max({c})) * 1000000)::int8 FROM {rel} WHERE isfinite({c})"
            ),
        ),
        _ => {
            // Not an orderable numeric/time key: hash it instead.
            let modulus = n.min(1024) as u32;
            return Ok((0..modulus)
                .map(|remainder| Slice::Hash {
                    column: column.to_owned(),
                    modulus,
                    remainder,
                })
                .collect());
        }
    };
    let row = client.query_one(q.as_str(), &[]).await.map_err(pg)?;
    let (Some(min), Some(max)) = (row.get::<_, Option<i64>>(0), row.get::<_, Option<i64>>(1))
    else {
        return Ok(Vec::new());
    };
    let span = i128::from(max) - i128::from(min) + 1;
    let mut bounds: Vec<i64> = Vec::new();
    for i in 1..n as i128 {
        let b = (i128::from(min) + span * i / n as i128) as i64;
        if b > min && bounds.last().is_none_or(|l| *l < b) {
            bounds.push(b);
        }
    }
    let mut slices = Vec::with_capacity(bounds.len() + 1);
    for i in 0..=bounds.len() {
        slices.push(Slice::Range {
            column: column.to_owned(),
            ty,
            lo: if i == 0 { None } else { Some(bounds[i - 1]) },
            hi: bounds.get(i).copied(),
            nulls: i == 0,
        });
    }
    Ok(slices)
}

/// List tables, views and materialized views with their Arrow schemas.
pub(crate) async fn discover(pool: &Pool, opts: &ReadOptions) -> Result<Vec<DatasetInfo>, Error> {
    const OP: &str = "discover";
    let client = pool.get().await.map_err(|e| map_pool(e, OP))?;
    let pg = |e: tokio_postgres::Error| map_pg(&e, OP, None);
    let schemas: Option<Vec<String>> = opts.schemas.clone();
    let rows = client
        .query(
            "SELECT n.nspname::text, c.relname::text, c.reltuples::float8, c.oid \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r','v','m','p','f') AND NOT c.relispartition \
               AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%' \
               AND ($1::text[] IS NULL OR n.nspname = ANY($1)) \
               AND has_table_privilege(c.oid, 'SELECT') \
             ORDER BY 1, 2",
            &[&schemas],
        )
        .await
        .map_err(pg)?;
    let pk_rows = client
        .query(
            "SELECT i.indrelid, a.attname::text FROM pg_index i \
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
             WHERE i.indisprimary ORDER BY i.indrelid, array_position(i.indkey::int2[], a.attnum)",
            &[],
        )
        .await
        .map_err(pg)?;
    let mut pks: HashMap<u32, Vec<String>> = HashMap::new();
    for r in pk_rows {
        pks.entry(r.get(0)).or_default().push(r.get(1));
    }
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let schema: String = r.get(0);
        let table: String = r.get(1);
        let tuples: f64 = r.get(2);
        let oid: u32 = r.get(3);
        let rel = format!("{}.{}", ident(&schema), ident(&table));
        let name = dataset_name(&schema, &table);
        let described = match describe(&client, &rel, opts, &name, OP).await {
            Ok(d) => d,
            Err(e) if e.kind() == ErrorKind::Unsupported => {
                tracing::warn!(target: "connector_sql::postgres", table = %name, error = %e, "skipping table in discovery");
                continue;
            }
            Err(e) => return Err(e),
        };
        let fields: Vec<_> = described
            .iter()
            .map(|d| types::field(&d.name, &d.resolved, d.nullable))
            .collect();
        out.push(DatasetInfo {
            name,
            schema: Arc::new(Schema::new(fields)),
            primary_key: pks.remove(&oid).unwrap_or_default(),
            row_estimate: (tuples >= 0.0).then_some(tuples as u64),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_refusals() {
        assert!(refuses_copy(Some("0A000")));
        assert!(refuses_copy(Some("42601")));
        for other in ["42P01", "42501", "57014", "08006", "22P02"] {
            assert!(!refuses_copy(Some(other)), "{other}");
        }
        assert!(!refuses_copy(None));
    }

    #[test]
    fn slices_render_predicates() {
        let s = Slice::Ctid {
            lo: Some(10),
            hi: None,
        };
        assert_eq!(s.predicate(), "ctid >= '(10,0)'::tid");
        let s = Slice::Range {
            column: "id".into(),
            ty: RangeType::Int,
            lo: None,
            hi: Some(-5),
            nulls: true,
        };
        assert_eq!(s.predicate(), r#"("id" < (-5)) OR "id" IS NULL"#);
        let s = Slice::Hash {
            column: "k".into(),
            modulus: 4,
            remainder: 1,
        };
        assert_eq!(
            s.predicate(),
            r#"(hashtext("k"::text)::int8 & 2147483647) % 4 = 1"#
        );
        assert!(valid_snapshot_id("00000003-0000001B-1"));
        assert!(!valid_snapshot_id("1'; DROP"));
        assert_eq!(dataset_name("public", "a.b"), r#"public."a.b""#);
        assert_eq!(
            quoted_relation(r#"public."a.b""#).unwrap(),
            r#""public"."a.b""#
        );
    }
}
