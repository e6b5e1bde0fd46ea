//! The codec contract: a [`FileFormat`] decodes bytes from a [`ByteSource`] into Arrow batches and
//! encodes batches into bytes with a [`FormatWriter`]. Formats know nothing of storage: local
//! files, object stores and HTTP bodies all feed them through [`ByteSource`].

use std::fmt::Debug;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use bytes::Bytes;
use connector_core::{Error, Expr, Location, Result, SendableRecordBatchStream};
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

/// Random and sequential access to the bytes of one file, wherever they live.
#[async_trait]
pub trait ByteSource: Send + Sync + Debug {
    /// The path, key or URL, for error messages (never with credentials).
    fn location(&self) -> &str;

    /// Total size in bytes.
    async fn size(&self) -> Result<u64>;

    /// The bytes in `range`.
    async fn get_range(&self, range: Range<u64>) -> Result<Bytes>;

    /// The bytes of several ranges (a Parquet row group's column chunks), in order. The default
    /// fetches them concurrently, one request each; remote stores merge nearby ranges into fewer
    /// requests ([`crate::ObjectStoreBytes`]).
    async fn get_ranges(&self, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        futures::future::try_join_all(ranges.iter().map(|r| self.get_range(r.clone()))).await
    }

    /// The whole file as a stream of chunks.
    async fn stream(&self) -> Result<BoxStream<'static, Result<Bytes>>>;

    /// The whole file in memory (formats that need it, such as xlsx).
    async fn get_all(&self) -> Result<Bytes> {
        let size = self.size().await?;
        self.get_range(0..size).await
    }
}

/// Bytes already in memory (an HTTP body, a test fixture).
#[derive(Debug, Clone)]
pub struct InMemoryBytes {
    name: String,
    data: Bytes,
    /// Bytes per streamed chunk; `None`: one chunk.
    chunk: Option<usize>,
}

impl InMemoryBytes {
    /// Name the bytes (used in error locations).
    pub fn new(name: impl Into<String>, data: impl Into<Bytes>) -> Self {
        Self {
            name: name.into(),
            data: data.into(),
            chunk: None,
        }
    }

    /// Stream the bytes in chunks of `bytes` (at least 1), as a network body arrives; tests use
    /// it to cut records, headers and markers at every position.
    #[must_use]
    pub fn with_stream_chunk(self, bytes: usize) -> Self {
        Self {
            chunk: Some(bytes.max(1)),
            ..self
        }
    }
}

#[async_trait]
impl ByteSource for InMemoryBytes {
    fn location(&self) -> &str {
        &self.name
    }

    async fn size(&self) -> Result<u64> {
        Ok(self.data.len() as u64)
    }

    async fn get_range(&self, range: Range<u64>) -> Result<Bytes> {
        let len = self.data.len() as u64;
        if range.start > range.end || range.end > len {
            return Err(Error::invalid_input(
                format!(
                    "range {}..{} is outside the {len} bytes",
                    range.start, range.end
                ),
                Location::file(&self.name),
            ));
        }
        Ok(self.data.slice(range.start as usize..range.end as usize))
    }

    async fn stream(&self) -> Result<BoxStream<'static, Result<Bytes>>> {
        let Some(chunk) = self.chunk else {
            return Ok(Box::pin(futures::stream::iter([Ok(self.data.clone())])));
        };
        let chunks: Vec<Result<Bytes>> = (0..self.data.len())
            .step_by(chunk)
            .map(|i| Ok(self.data.slice(i..(i + chunk).min(self.data.len()))))
            .collect();
        Ok(Box::pin(futures::stream::iter(chunks)))
    }

    async fn get_all(&self) -> Result<Bytes> {
        Ok(self.data.clone())
    }
}

/// What to do with a row that cannot be decoded.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum BadRows {
    /// Fail the read with an error naming the file and line or row.
    #[default]
    Fail,
    /// Skip the row, count it and record where it was in the [`BadRowLog`].
    Skip,
}

/// One skipped row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRow {
    /// Where it was.
    pub location: Location,
    /// Why it was skipped.
    pub reason: String,
}

/// Every row skipped under [`BadRows::Skip`]: shared by the reads of a source, never silent.
#[derive(Debug, Clone, Default)]
pub struct BadRowLog {
    rows: Arc<Mutex<Vec<BadRow>>>,
}

impl BadRowLog {
    /// Record a skipped row (and log it at `warn`).
    pub fn record(&self, location: Location, reason: impl Into<String>) {
        let reason = reason.into();
        tracing::warn!(%location, %reason, "skipped a bad row");
        self.rows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(BadRow { location, reason });
    }

    /// How many rows were skipped.
    #[must_use]
    pub fn count(&self) -> usize {
        self.rows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    /// A copy of the skipped rows.
    #[must_use]
    pub fn rows(&self) -> Vec<BadRow> {
        self.rows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// Per-read options a format honours.
#[derive(Debug, Clone, Default)]
pub struct FormatReadOptions {
    /// Use this schema instead of inferring one.
    pub schema: Option<SchemaRef>,
    /// Columns to decode (a format that can skip others does; the caller projects the rest).
    pub projection: Option<Vec<String>>,
    /// A filter a format may use to skip data (Parquet row groups); the caller still filters rows.
    pub filter: Option<Expr>,
    /// Stop after this many rows (a hint; the caller still enforces it).
    pub limit: Option<usize>,
    /// Rows per batch.
    pub batch_rows: usize,
    /// Bad-row policy.
    pub bad_rows: BadRows,
    /// Where skipped rows are recorded.
    pub bad_row_log: BadRowLog,
    /// Read only these row groups (0-based), for formats that report them
    /// ([`FileFormat::row_groups`]); other formats read the whole file. `None`: all.
    pub row_groups: Option<Vec<usize>>,
}

/// Encodes batches into bytes. Bytes are taken out as they are produced, so a sink can upload
/// large files in parts with bounded memory.
pub trait FormatWriter: Send {
    /// Encode one batch.
    fn write(&mut self, batch: &RecordBatch) -> Result<()>;

    /// Take the bytes encoded so far (may be empty for formats that only produce output at the end).
    fn take_bytes(&mut self) -> Bytes;

    /// Finish the file and return the remaining bytes.
    fn finish(self: Box<Self>) -> Result<Bytes>;
}

/// A file format.
#[async_trait]
pub trait FileFormat: Send + Sync + Debug {
    /// The format's name, e.g. `"csv"`; also the connector name in errors.
    fn name(&self) -> &'static str;

    /// File extensions this format claims (without dot), used to pick a format for a path.
    fn extensions(&self) -> &'static [&'static str];

    /// Infer the schema from the file (a sample of its beginning, where that is enough).
    async fn infer_schema(&self, input: Arc<dyn ByteSource>) -> Result<SchemaRef>;

    /// Decode the file into a stream of batches.
    async fn read(
        &self,
        input: Arc<dyn ByteSource>,
        options: FormatReadOptions,
    ) -> Result<SendableRecordBatchStream>;

    /// A writer producing one file with `schema`.
    fn writer(&self, schema: SchemaRef) -> Result<Box<dyn FormatWriter>>;

    /// How many independently readable row groups the file has, for formats that can read a
    /// subset of them ([`FormatReadOptions::row_groups`]), so that one large file can be split
    /// into several partitions. `None` (the default) for formats that read whole files.
    async fn row_groups(&self, input: Arc<dyn ByteSource>) -> Result<Option<usize>> {
        let _ = input;
        Ok(None)
    }
}
