//! Parquet codec: parquet's async Arrow reader over any [`ByteSource`] and its `ArrowWriter`.
//!
//! Reads fetch the footer and then only the column chunks of the projected columns in the row
//! groups that survive pruning: a row group whose min/max/null-count statistics rule out a
//! filter (`=`, `<>`, `<`, `<=`, `>`, `>=`, `IN`, `IS [NOT] NULL`, combined with `AND`/`OR`) is
//! never fetched. The caller still filters rows (statistics only prune whole row groups).
//! Floating-point columns are not pruned (statistics leave out NaN, which comparisons order
//! above every number). A truncated or corrupt file is an [`ErrorKind::Decode`] error naming it,
//! also when its footer would make parquet's Thrift decoder spin: the footer is checked before
//! decoding and decoded under a deadline (`load_metadata`).
//!
//! Writes encode with `ArrowWriter` (zstd by default) into a buffer the sink drains after every
//! batch; memory is bounded by one row group (`row_group_rows`).

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{
    Array, ArrayRef, BooleanArray, Date32Array, Float64Array, Int64Array, Scalar, StringArray,
    TimestampMicrosecondArray, UInt64Array,
};
use arrow::compute::kernels::{boolean, cmp};
use arrow::datatypes::{DataType, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use bytes::Bytes;
use connector_core::{
    CmpOp, Error, ErrorKind, Expr, Literal, Location, RecordBatchStreamAdapter, Result,
    SendableRecordBatchStream,
};
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use parquet::DecodeResult;
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::arrow_reader::statistics::StatisticsConverter;
use parquet::arrow::async_reader::{AsyncFileReader, ParquetRecordBatchStreamBuilder};
use parquet::arrow::{ArrowWriter, ProjectionMask};
use parquet::errors::ParquetError;
use parquet::file::metadata::{
    FooterTail, PageIndexPolicy, ParquetMetaData, ParquetMetaDataOptions,
    ParquetMetaDataPushDecoder, RowGroupMetaData,
};
use parquet::file::properties::WriterProperties;
use parquet::schema::types::SchemaDescriptor;
use serde::{Deserialize, Serialize};

use crate::format::{ByteSource, FileFormat, FormatReadOptions, FormatWriter};
use crate::util::SharedBuf;

const NAME: &str = "parquet";

/// Bytes fetched from the end of a file for the footer in one request.
const FOOTER_HINT: usize = 64 * 1024;

/// The fixed end of every Parquet file: metadata length (4 bytes) and magic (4 bytes).
const FOOTER_SIZE: u64 = 8;

/// Parquet writer options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ParquetOptions {
    /// Column compression: `zstd` (default), `snappy`, `gzip`, `lz4`, `brotli` or `none`.
    pub compression: String,
    /// Rows per row group. Default 1 048 576.
    pub row_group_rows: usize,
}

impl Default for ParquetOptions {
    fn default() -> Self {
        Self {
            compression: "zstd".to_owned(),
            row_group_rows: 1024 * 1024,
        }
    }
}

/// The Parquet [`FileFormat`].
#[derive(Debug, Clone)]
pub struct ParquetFormat {
    options: ParquetOptions,
    compression: parquet::basic::Compression,
}

impl Default for ParquetFormat {
    fn default() -> Self {
        Self {
            options: ParquetOptions::default(),
            compression: parquet::basic::Compression::ZSTD(parquet::basic::ZstdLevel::default()),
        }
    }
}

impl ParquetFormat {
    /// A Parquet format with `options`; an unknown compression is an error.
    pub fn new(options: ParquetOptions) -> Result<Self> {
        use parquet::basic::{BrotliLevel, Compression as C, GzipLevel, ZstdLevel};
        let compression = match options.compression.to_ascii_lowercase().as_str() {
            "zstd" => C::ZSTD(ZstdLevel::default()),
            "snappy" => C::SNAPPY,
            "gzip" => C::GZIP(GzipLevel::default()),
            "lz4" => C::LZ4_RAW,
            "brotli" => C::BROTLI(BrotliLevel::default()),
            "none" | "uncompressed" => C::UNCOMPRESSED,
            other => {
                return Err(Error::invalid_config(format!(
                    "unknown Parquet compression {other:?}; expected zstd, snappy, gzip, lz4, brotli or none"
                ))
                .with_connector(NAME));
            }
        };
        if options.row_group_rows == 0 {
            return Err(
                Error::invalid_config("row_group_rows must be at least 1").with_connector(NAME)
            );
        }
        Ok(Self {
            options,
            compression,
        })
    }

    /// The options.
    #[must_use]
    pub fn options(&self) -> &ParquetOptions {
        &self.options
    }
}

/// Our error from parquet's, recovering one of ours that crossed the parquet API.
fn from_parquet(e: ParquetError, location: &str) -> Error {
    match e {
        ParquetError::External(inner) => match inner.downcast::<Error>() {
            Ok(ours) => *ours,
            Err(other) => Error::new(ErrorKind::Io, other.to_string()),
        },
        other => Error::new(ErrorKind::Decode, other.to_string()),
    }
    .with_connector(NAME)
    .with_location(Location::file(location))
}

/// parquet's [`AsyncFileReader`] over a [`ByteSource`]: footer and column chunks by range.
struct ByteSourceReader {
    input: Arc<dyn ByteSource>,
    size: u64,
}

impl AsyncFileReader for ByteSourceReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        let input = self.input.clone();
        async move {
            input
                .get_range(range)
                .await
                .map_err(|e| ParquetError::External(Box::new(e)))
        }
        .boxed()
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        let input = self.input.clone();
        async move {
            input
                .get_ranges(&ranges)
                .await
                .map_err(|e| ParquetError::External(Box::new(e)))
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        let options = options.map(|o| Arc::new(o.metadata_options().clone()));
        async move {
            load_metadata(self.input.clone(), self.size, options, footer_deadline)
                .await
                .map(Arc::new)
                .map_err(|e| ParquetError::External(Box::new(e)))
        }
        .boxed()
    }
}

/// Fetches the footer of `input` (`size` bytes long) and decodes it within `deadline(footer
/// length)`, guarded against footers that make parquet's Thrift decoder spin.
///
/// # Why two guards
///
/// parquet 59 skips a Thrift field it does not know with `skip_till_depth`, which reads nothing
/// for a `bool` element of a list, set or map (the compact protocol spends a byte on each), so a
/// footer of a few bytes can declare a `map<bool, bool>` of 2^31 entries and loop for seconds
/// (the fuzz finding `tests/data/parquet-thrift-skip-timeout.bin`: 7 bytes of footer, 394 million
/// iterations). We cannot fix that decoder, so:
///
/// 1. [`thrift_precheck`] walks the footer once, in time linear in its length, and rejects a
///    collection that declares more elements than bytes remain. Every element of a well-formed
///    compact-protocol collection takes at least one byte, so this never rejects a valid footer,
///    and it turns the fuzz finding (and anything like it) into an error in microseconds.
/// 2. It is not a complete guarantee: parquet reads a field it knows by the field's declared
///    type without checking the type on the wire, so crafted bytes can make parquet read a
///    different structure than a spec-following walk sees. Hence the decode itself runs on a
///    thread of its own under a deadline proportional to the footer size
///    ([`footer_deadline`]: seconds for a tiny footer, where real footers take microseconds),
///    and a read that misses it fails with [`ErrorKind::Decode`] instead of stalling. A decode
///    cannot be interrupted: its thread runs on until parquet gives up (bounded, but a crafted
///    footer can take minutes), and nothing waits for it ([`with_deadline`]).
///
/// Both guards, rather than the deadline alone, because the pre-check stops the work instead of
/// abandoning a spinning thread, and the deadline alone would still cost seconds per bad file.
async fn load_metadata(
    input: Arc<dyn ByteSource>,
    size: u64,
    options: Option<Arc<ParquetMetaDataOptions>>,
    deadline: fn(usize) -> Duration,
) -> Result<ParquetMetaData> {
    let location = input.location().to_owned();
    let err = |e: ParquetError| from_parquet(e, &location);
    if size < FOOTER_SIZE {
        return Err(err(ParquetError::EOF(format!(
            "file size of {size} is less than the {FOOTER_SIZE}-byte Parquet footer"
        ))));
    }
    let suffix_start = size.saturating_sub(FOOTER_HINT as u64);
    let suffix = fetch_exact(input.as_ref(), suffix_start..size, &err).await?;
    let tail: [u8; 8] = suffix[suffix.len() - 8..].try_into().map_err(|_| {
        err(ParquetError::General(
            "the footer tail is not 8 bytes".into(),
        ))
    })?;
    let tail = FooterTail::try_new(&tail).map_err(err)?;
    let metadata_len = u64::try_from(tail.metadata_length()).unwrap_or(u64::MAX);
    let metadata_start = (size - FOOTER_SIZE)
        .checked_sub(metadata_len)
        .ok_or_else(|| {
            err(ParquetError::EOF(format!(
                "file size of {size} is less than footer + metadata {}",
                metadata_len.saturating_add(FOOTER_SIZE)
            )))
        })?;
    // The bytes from `start` to the end of the file, holding metadata and tail: one request when
    // the metadata fits in the prefetched suffix (as parquet's own loader does), else a second.
    let (start, bytes) = if metadata_start >= suffix_start {
        (suffix_start, suffix)
    } else {
        let head = fetch_exact(input.as_ref(), metadata_start..suffix_start, &err).await?;
        (metadata_start, Bytes::from([head, suffix].concat()))
    };
    let metadata = bytes.slice(to_usize(metadata_start - start)?..bytes.len() - 8);
    if !tail.is_encrypted_footer() {
        thrift_precheck(&metadata).map_err(|why| {
            Error::new(
                ErrorKind::Decode,
                format!("the Parquet footer cannot be decoded: {why}"),
            )
            .with_connector(NAME)
            .with_location(Location::file(&location))
        })?;
    }
    let deadline = deadline(metadata.len());
    let decode = move || {
        let mut decoder = ParquetMetaDataPushDecoder::try_new(size)?
            .with_page_index_policy(PageIndexPolicy::Skip)
            .with_metadata_options(options);
        decoder.push_range(start..size, bytes)?;
        match decoder.try_decode()? {
            DecodeResult::Data(metadata) => Ok(metadata),
            DecodeResult::NeedsData(more) => Err(ParquetError::General(format!(
                "the footer needs bytes {more:?} beyond the {metadata_len} it declares"
            ))),
            DecodeResult::Finished => Err(ParquetError::General(
                "the footer decoder finished without metadata".to_owned(),
            )),
        }
    };
    let decoded = with_deadline(decode, deadline).await.map_err(|e| {
        Error::new(
            ErrorKind::Io,
            format!("could not start a thread to decode the Parquet footer: {e}"),
        )
        .with_connector(NAME)
        .with_location(Location::file(&location))
    })?;
    match decoded {
        Some(decoded) => decoded.map_err(err),
        None => Err(Error::new(
            ErrorKind::Decode,
            format!(
                "the Parquet footer ({metadata_len} bytes) could not be decoded in {deadline:?}; \
                 the file's metadata is malformed"
            ),
        )
        .with_connector(NAME)
        .with_location(Location::file(&location))),
    }
}

/// The bytes in `range`, all of them (a short read is a truncated file).
async fn fetch_exact(
    input: &dyn ByteSource,
    range: Range<u64>,
    err: &impl Fn(ParquetError) -> Error,
) -> Result<Bytes> {
    let want = range.end - range.start;
    let bytes = input.get_range(range).await?;
    if bytes.len() as u64 == want {
        Ok(bytes)
    } else {
        Err(err(ParquetError::EOF(format!(
            "the footer needs {want} bytes, but only {} could be read",
            bytes.len()
        ))))
    }
}

fn to_usize(n: u64) -> Result<usize> {
    usize::try_from(n).map_err(|_| {
        Error::new(
            ErrorKind::Decode,
            format!("a Parquet footer of {n} bytes does not fit in memory"),
        )
    })
}

/// How long decoding a footer of `len` bytes may take: 5 s plus 5 ms per KiB. Real footers decode
/// at well under 1 ms per KiB even in a debug build; the floor leaves room for a loaded machine.
fn footer_deadline(len: usize) -> Duration {
    let kib = u64::try_from(len / 1024).unwrap_or(u64::MAX);
    Duration::from_millis(5_000_u64.saturating_add(kib.saturating_mul(5)))
}

/// Runs `work` on a thread of its own and waits at most `deadline` for it: `Ok(None)` if it did
/// not finish in time. A thread that misses the deadline is left detached, so a `work` that never ends holds neither the
/// caller nor a tokio runtime's shutdown (which waits for `spawn_blocking` tasks); it ends with
/// `work` or with the process. The wait itself runs on tokio's blocking pool (on the calling
/// thread without a runtime) and needs no tokio timer, so runtimes built without `enable_time`
/// work too. A panic in `work` resumes in the caller.
async fn with_deadline<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
    deadline: Duration,
) -> std::io::Result<Option<T>> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let thread = std::thread::Builder::new()
        .name("parquet-footer".to_owned())
        .spawn(move || {
            // The receiver is gone once the deadline passed: nothing left to do then.
            let _ = tx.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)));
        })?;
    let wait = move || {
        let waited = rx.recv_timeout(deadline);
        if waited.is_ok() {
            // The thread has sent its result and is exiting: join it, so that no thread
            // outlives a read that finished in time (LeakSanitizer saw its exit racing the
            // fuzz target's leak check). After a missed deadline it stays detached.
            let _ = thread.join();
        }
        waited
    };
    let waited = match tokio::runtime::Handle::try_current() {
        Ok(runtime) => match runtime.spawn_blocking(wait).await {
            Ok(waited) => waited,
            // The runtime is shutting down.
            Err(_) => return Ok(None),
        },
        Err(_) => wait(),
    };
    match waited {
        Ok(Ok(value)) => Ok(Some(value)),
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => Ok(None),
    }
}

/// Walks a Thrift compact-protocol struct (a Parquet footer) and fails if a list, set or map
/// declares more elements than bytes remain after its header, which no well-formed encoding
/// does (each element takes at least one byte; a `bool` element is one byte, unlike a `bool`
/// field). Linear in `buf`: every step consumes a byte. What the walk cannot follow (an unknown
/// type, a truncated value, nesting deeper than 64) ends it without a verdict: parquet decides.
fn thrift_precheck(buf: &[u8]) -> std::result::Result<(), String> {
    let mut walk = ThriftWalk { buf, pos: 0 };
    match walk.value(STRUCT, 64) {
        Ok(()) | Err(WalkStop::Unfollowable) => Ok(()),
        Err(WalkStop::Impossible(why)) => Err(why),
    }
}

/// Compact-protocol type ids the walk treats specially.
const BOOL_TRUE: u8 = 1;
const BOOL_FALSE: u8 = 2;
const STRUCT: u8 = 12;

enum WalkStop {
    /// The walk cannot follow the bytes; no verdict.
    Unfollowable,
    /// The bytes cannot be a valid encoding.
    Impossible(String),
}

struct ThriftWalk<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl ThriftWalk<'_> {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn byte(&mut self) -> std::result::Result<u8, WalkStop> {
        let b = *self.buf.get(self.pos).ok_or(WalkStop::Unfollowable)?;
        self.pos += 1;
        Ok(b)
    }

    fn skip(&mut self, n: u64) -> std::result::Result<(), WalkStop> {
        match usize::try_from(n) {
            Ok(n) if n <= self.remaining() => {
                self.pos += n;
                Ok(())
            }
            _ => Err(WalkStop::Unfollowable),
        }
    }

    fn varint(&mut self) -> std::result::Result<u64, WalkStop> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(WalkStop::Unfollowable)
    }

    /// Fails if `count` elements of at least `min_bytes` each cannot fit in what remains.
    fn check_count(
        &self,
        what: &str,
        at: usize,
        count: u64,
        min_bytes: u64,
    ) -> std::result::Result<(), WalkStop> {
        let remaining = self.remaining() as u64;
        if count.saturating_mul(min_bytes) > remaining {
            return Err(WalkStop::Impossible(format!(
                "the Thrift {what} at byte {at} of the footer declares {count} elements, \
                 but only {remaining} byte(s) follow"
            )));
        }
        Ok(())
    }

    /// A collection element: a `bool` takes a byte here.
    fn element(&mut self, ty: u8, depth: u8) -> std::result::Result<(), WalkStop> {
        if matches!(ty, BOOL_TRUE | BOOL_FALSE) {
            self.skip(1)
        } else {
            self.value(ty, depth)
        }
    }

    /// A value of compact type `ty` (a struct field's type: a `bool` has no payload).
    fn value(&mut self, ty: u8, depth: u8) -> std::result::Result<(), WalkStop> {
        let depth = depth.checked_sub(1).ok_or(WalkStop::Unfollowable)?;
        match ty {
            BOOL_TRUE | BOOL_FALSE => Ok(()),
            3 => self.skip(1),
            4..=6 => self.varint().map(drop),
            7 => self.skip(8),
            8 => {
                let len = self.varint()?;
                self.skip(len)
            }
            9 | 10 => {
                let at = self.pos;
                let header = self.byte()?;
                let element = header & 0x0f;
                let count = match header >> 4 {
                    15 => self.varint()?,
                    n => u64::from(n),
                };
                self.check_count("list", at, count, 1)?;
                for _ in 0..count {
                    self.element(element, depth)?;
                }
                Ok(())
            }
            11 => {
                let at = self.pos;
                let count = self.varint()?;
                if count == 0 {
                    return Ok(());
                }
                let kinds = self.byte()?;
                self.check_count("map", at, count, 2)?;
                for _ in 0..count {
                    self.element(kinds >> 4, depth)?;
                    self.element(kinds & 0x0f, depth)?;
                }
                Ok(())
            }
            STRUCT => loop {
                let header = self.byte()?;
                let field_type = header & 0x0f;
                if field_type == 0 {
                    return Ok(()); // stop
                }
                if header >> 4 == 0 {
                    self.varint()?; // the field id, in full
                }
                self.value(field_type, depth)?;
            },
            13 => self.skip(16),
            _ => Err(WalkStop::Unfollowable),
        }
    }
}

async fn builder(
    input: Arc<dyn ByteSource>,
) -> Result<ParquetRecordBatchStreamBuilder<ByteSourceReader>> {
    let location = input.location().to_owned();
    let size = input.size().await.map_err(|e| {
        e.with_connector(NAME)
            .with_location(Location::file(&location))
    })?;
    std::panic::AssertUnwindSafe(ParquetRecordBatchStreamBuilder::new(ByteSourceReader {
        input,
        size,
    }))
    .catch_unwind()
    .await
    .map_err(|panic| panic_error(panic.as_ref(), &location))?
    .map_err(|e| from_parquet(e, &location))
}

/// A panic inside parquet or arrow turned into a [`ErrorKind::Decode`] error naming the file.
///
/// Some malformed files make those crates panic instead of returning an error: the fuzz target
/// found an embedded Arrow schema (`ARROW:schema` metadata) holding a field of type `NONE`,
/// which arrow-ipc 59.3's schema conversion answers with `unimplemented!`. Opening a file and
/// decoding its batches run under `catch_unwind`, so such a file fails its read like any other
/// corrupt file instead of unwinding through the caller. (The panic message still reaches the
/// process's panic hook, which prints it by default.)
fn panic_error(panic: &(dyn std::any::Any + Send), location: &str) -> Error {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned());
    Error::new(
        ErrorKind::Decode,
        format!("the Parquet file is malformed (the parquet crate panicked: {what})"),
    )
    .with_connector(NAME)
    .with_location(Location::file(location))
}

/// A one-element array holding `lit` as `target`, or `None` if it cannot be represented.
fn literal(lit: &Literal, target: &DataType) -> Option<ArrayRef> {
    let raw: ArrayRef = match lit {
        Literal::Null => return None,
        Literal::Bool(b) => Arc::new(BooleanArray::from(vec![*b])),
        Literal::Int(i) => Arc::new(Int64Array::from(vec![*i])),
        Literal::Float(f) => Arc::new(Float64Array::from(vec![*f])),
        Literal::String(s) => Arc::new(StringArray::from(vec![s.as_str()])),
        Literal::Date(d) => Arc::new(Date32Array::from(vec![*d])),
        Literal::TimestampMicros(t) => {
            let a = TimestampMicrosecondArray::from(vec![*t]);
            match target {
                DataType::Timestamp(_, Some(tz)) => Arc::new(a.with_timezone(tz.clone())),
                _ => Arc::new(a),
            }
        }
    };
    let out = arrow::compute::cast(&raw, target).ok()?;
    (out.null_count() == 0).then_some(out)
}

/// Statistics of the row groups of one file.
struct Stats<'a> {
    schema: &'a Schema,
    parquet: &'a SchemaDescriptor,
    groups: &'a [RowGroupMetaData],
}

impl Stats<'_> {
    fn all(&self, v: bool) -> Vec<bool> {
        vec![v; self.groups.len()]
    }

    fn converter(&self, column: &str) -> Option<StatisticsConverter<'_>> {
        let field = self.schema.field_with_name(column).ok()?;
        if field.data_type().is_floating() || field.data_type().is_nested() {
            return None;
        }
        StatisticsConverter::try_new(column, self.schema, self.parquet).ok()
    }

    /// Per row group: may it hold a row matching `expr`? `None` when statistics cannot tell.
    fn may_match(&self, expr: &Expr) -> Option<Vec<bool>> {
        match expr {
            Expr::Compare { column, op, value } => self.compare(column, *op, value),
            Expr::In { column, values } => {
                let mut acc = self.all(false);
                for v in values {
                    let m = self.compare(column, CmpOp::Eq, v)?;
                    acc.iter_mut().zip(m).for_each(|(a, b)| *a |= b);
                }
                Some(acc)
            }
            Expr::And(parts) => {
                let mut acc = self.all(true);
                for p in parts {
                    if let Some(m) = self.may_match(p) {
                        acc.iter_mut().zip(m).for_each(|(a, b)| *a &= b);
                    }
                }
                Some(acc)
            }
            Expr::Or(parts) => {
                let mut acc = self.all(false);
                for p in parts {
                    let m = self.may_match(p)?;
                    acc.iter_mut().zip(m).for_each(|(a, b)| *a |= b);
                }
                Some(acc)
            }
            Expr::Not(_) => None,
            Expr::IsNull(column) | Expr::IsNotNull(column) => {
                let conv = StatisticsConverter::try_new(column, self.schema, self.parquet).ok()?;
                let nulls = conv.row_group_null_counts(self.groups).ok()?;
                let rows: UInt64Array = self
                    .groups
                    .iter()
                    .map(|g| u64::try_from(g.num_rows()).ok())
                    .collect();
                let want_nulls = matches!(expr, Expr::IsNull(_));
                Some(
                    (0..self.groups.len())
                        .map(|i| {
                            if nulls.is_null(i) || rows.is_null(i) {
                                return true;
                            }
                            let n = nulls.value(i);
                            if want_nulls { n > 0 } else { n < rows.value(i) }
                        })
                        .collect(),
                )
            }
        }
    }

    fn compare(&self, column: &str, op: CmpOp, value: &Literal) -> Option<Vec<bool>> {
        let conv = self.converter(column)?;
        let mins = conv.row_group_mins(self.groups).ok()?;
        let maxes = conv.row_group_maxes(self.groups).ok()?;
        let lit = Scalar::new(literal(value, mins.data_type())?);
        let m = match op {
            CmpOp::Eq => boolean::and(
                &cmp::lt_eq(&mins, &lit).ok()?,
                &cmp::gt_eq(&maxes, &lit).ok()?,
            ),
            CmpOp::NotEq => boolean::and(&cmp::eq(&mins, &lit).ok()?, &cmp::eq(&maxes, &lit).ok()?)
                .and_then(|all_equal| boolean::not(&all_equal)),
            CmpOp::Lt => cmp::lt(&mins, &lit),
            CmpOp::LtEq => cmp::lt_eq(&mins, &lit),
            CmpOp::Gt => cmp::gt(&maxes, &lit),
            CmpOp::GtEq => cmp::gt_eq(&maxes, &lit),
        }
        .ok()?;
        // Missing statistics (null) keep the row group.
        Some((0..m.len()).map(|i| m.is_null(i) || m.value(i)).collect())
    }
}

/// The row groups of `metadata` that may hold rows matching `filter`.
fn prune(metadata: &ParquetMetaData, schema: &Schema, filter: Option<&Expr>) -> Vec<usize> {
    let groups = metadata.row_groups();
    let all: Vec<usize> = (0..groups.len()).collect();
    let Some(filter) = filter else {
        return all;
    };
    let stats = Stats {
        schema,
        parquet: metadata.file_metadata().schema_descr(),
        groups,
    };
    match stats.may_match(filter) {
        Some(keep) => all.into_iter().filter(|i| keep[*i]).collect(),
        None => all,
    }
}

#[async_trait]
impl FileFormat for ParquetFormat {
    fn name(&self) -> &'static str {
        NAME
    }

    fn extensions(&self) -> &'static [&'static str] {
        &["parquet", "pq"]
    }

    async fn infer_schema(&self, input: Arc<dyn ByteSource>) -> Result<SchemaRef> {
        let b = builder(input)
            .await
            .map_err(|e| e.with_operation("infer schema"))?;
        Ok(b.schema().clone())
    }

    async fn row_groups(&self, input: Arc<dyn ByteSource>) -> Result<Option<usize>> {
        let b = builder(input).await.map_err(|e| e.with_operation("plan"))?;
        Ok(Some(b.metadata().num_row_groups()))
    }

    async fn read(
        &self,
        input: Arc<dyn ByteSource>,
        options: FormatReadOptions,
    ) -> Result<SendableRecordBatchStream> {
        let location = input.location().to_owned();
        let ctx = |e: Error| e.with_operation("read");
        let mut b = builder(input).await.map_err(ctx)?;
        let schema = b.schema().clone();
        if let Some(cols) = &options.projection {
            let indices = cols
                .iter()
                .map(|c| {
                    schema.index_of(c).map_err(|_| {
                        Error::new(
                            ErrorKind::SchemaMismatch,
                            format!("the file has no column {c:?}"),
                        )
                        .with_connector(NAME)
                        .with_operation("read")
                        .with_location(Location::file(&location).with_column(c.clone()))
                    })
                })
                .collect::<Result<Vec<usize>>>()?;
            let mask = ProjectionMask::roots(b.parquet_schema(), indices);
            b = b.with_projection(mask);
        }
        let mut groups = prune(b.metadata(), &schema, options.filter.as_ref());
        if let Some(only) = &options.row_groups {
            groups.retain(|g| only.contains(g));
        }
        tracing::debug!(file = %location, kept = groups.len(), total = b.metadata().num_row_groups(), "parquet row groups after pruning");
        b = b
            .with_row_groups(groups)
            .with_batch_size(options.batch_rows.max(1));
        if let (Some(limit), None) = (options.limit, &options.filter) {
            b = b.with_limit(limit);
        }
        let stream = b.build().map_err(|e| ctx(from_parquet(e, &location)))?;
        let out_schema = stream.schema().clone();
        let panic_location = location.clone();
        let batches =
            std::panic::AssertUnwindSafe(stream)
                .catch_unwind()
                .map(move |item| match item {
                    Ok(Ok(batch)) => Ok(batch),
                    Ok(Err(e)) => Err(from_parquet(e, &location).with_operation("read")),
                    Err(panic) => {
                        Err(panic_error(panic.as_ref(), &panic_location).with_operation("read"))
                    }
                });
        Ok(RecordBatchStreamAdapter::boxed(out_schema, batches))
    }

    fn writer(&self, schema: SchemaRef) -> Result<Box<dyn FormatWriter>> {
        let props = WriterProperties::builder()
            .set_compression(self.compression)
            .set_max_row_group_row_count(Some(self.options.row_group_rows))
            .build();
        let buf = SharedBuf::default();
        let writer = ArrowWriter::try_new(buf.clone(), schema, Some(props)).map_err(|e| {
            Error::new(ErrorKind::Unsupported, e.to_string())
                .with_connector(NAME)
                .with_operation("write")
        })?;
        Ok(Box::new(ParquetWriter { writer, buf }))
    }
}

struct ParquetWriter {
    writer: ArrowWriter<SharedBuf>,
    buf: SharedBuf,
}

impl FormatWriter for ParquetWriter {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.writer.write(batch).map_err(|e| {
            Error::new(ErrorKind::Internal, e.to_string())
                .with_connector(NAME)
                .with_operation("write")
        })
    }

    fn take_bytes(&mut self) -> Bytes {
        self.buf.take()
    }

    fn finish(self: Box<Self>) -> Result<Bytes> {
        let this = *self;
        this.writer.close().map_err(|e| {
            Error::new(ErrorKind::Internal, e.to_string())
                .with_connector(NAME)
                .with_operation("write")
        })?;
        Ok(this.buf.take())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_compression_is_invalid_config() {
        let e = ParquetFormat::new(ParquetOptions {
            compression: "lzma".into(),
            ..ParquetOptions::default()
        })
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidConfig);
        assert!(ParquetFormat::new(ParquetOptions::default()).is_ok());
    }

    /// The metadata bytes of a Parquet file (footer without its 8-byte tail).
    fn footer_of(file: &[u8]) -> &[u8] {
        let tail = &file[file.len() - 8..];
        let len = u32::from_le_bytes(tail[..4].try_into().unwrap()) as usize;
        &file[file.len() - 8 - len..file.len() - 8]
    }

    /// A Parquet file around `footer`.
    fn file_with_footer(footer: &[u8]) -> Bytes {
        let len = u32::try_from(footer.len()).unwrap().to_le_bytes();
        Bytes::from([b"PAR1".as_slice(), footer, &len, b"PAR1"].concat())
    }

    #[test]
    fn precheck_accepts_real_footers() {
        use arrow::array::{ListArray, StructArray};
        use arrow::datatypes::{Field, Int32Type};
        let list = ListArray::from_iter_primitive::<Int32Type, _, _>(
            (0..100).map(|i| (i % 3 != 0).then(|| vec![Some(i), None, Some(i * 2)])),
        );
        let names: StringArray = (0..100).map(|i| Some(format!("n{i}"))).collect();
        let flags = BooleanArray::from((0..100).map(|i| i % 2 == 0).collect::<Vec<_>>());
        let nested = StructArray::from(vec![
            (
                Arc::new(Field::new("f", DataType::Float64, false)),
                Arc::new(Float64Array::from_iter_values((0..100).map(f64::from))) as ArrayRef,
            ),
            (
                Arc::new(Field::new("b", DataType::Boolean, false)),
                Arc::new(flags.clone()) as ArrayRef,
            ),
        ]);
        let batch = RecordBatch::try_from_iter(vec![
            (
                "id",
                Arc::new(Int64Array::from_iter_values(0..100)) as ArrayRef,
            ),
            ("name", Arc::new(names) as ArrayRef),
            ("flag", Arc::new(flags) as ArrayRef),
            ("list", Arc::new(list) as ArrayRef),
            ("nested", Arc::new(nested) as ArrayRef),
        ])
        .unwrap();
        let format = ParquetFormat::new(ParquetOptions {
            row_group_rows: 7,
            ..ParquetOptions::default()
        })
        .unwrap();
        let mut w = format.writer(batch.schema()).unwrap();
        w.write(&batch).unwrap();
        let file = w.finish().unwrap();
        thrift_precheck(footer_of(&file)).unwrap();
    }

    #[test]
    fn precheck_rejects_the_fuzz_footer() {
        let file = include_bytes!("../tests/data/parquet-thrift-skip-timeout.bin");
        let footer = footer_of(file);
        assert_eq!(footer, [0xfb, 0xfb, 0xfb, 0xfb, 0x5d, 0x11, 0x00]);
        let why = thrift_precheck(footer).unwrap_err();
        assert!(
            why.contains("map at byte 1") && why.contains("only 1 byte(s) follow"),
            "{why}"
        );
        // Truncated or unknown input has no verdict: parquet reports it.
        thrift_precheck(&[]).unwrap();
        thrift_precheck(&[0x1f]).unwrap();
    }

    /// parquet reads field 1 (`version`, an i32) whatever its wire type, so a footer can hide a
    /// `map<bool, bool>` of 2^31 - 1 entries inside what the spec walk sees as a 7-byte binary.
    /// The pre-check accepts it; the deadline turns it into an error.
    #[tokio::test]
    async fn deadline_fails_a_footer_the_precheck_cannot_see() {
        let footer = [0x18, 0x07, 0xfb, 0xff, 0xff, 0xff, 0xff, 0x07, 0x11, 0x00];
        thrift_precheck(&footer).unwrap();
        let file = file_with_footer(&footer);
        let size = file.len() as u64;
        let input = Arc::new(crate::InMemoryBytes::new("mem://hidden.parquet", file));
        let started = std::time::Instant::now();
        let e = load_metadata(input, size, None, |_| Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(e.kind(), ErrorKind::Decode, "{e}");
        assert!(
            e.to_string().contains("could not be decoded in 200ms"),
            "{e}"
        );
        assert_eq!(
            e.location().unwrap().file.as_deref(),
            Some("mem://hidden.parquet")
        );
    }

    #[test]
    fn deadlines_grow_with_the_footer() {
        assert_eq!(footer_deadline(100), Duration::from_secs(5));
        assert_eq!(
            footer_deadline(1024 * 1024),
            Duration::from_millis(5_000 + 5 * 1024)
        );
        assert!(footer_deadline(usize::MAX) > Duration::from_secs(3600));
    }

    #[test]
    fn literals_cast_or_refuse() {
        assert!(literal(&Literal::Int(300), &DataType::Int8).is_none());
        assert_eq!(
            literal(&Literal::Int(3), &DataType::Int32)
                .unwrap()
                .data_type(),
            &DataType::Int32
        );
        assert!(literal(&Literal::Null, &DataType::Int32).is_none());
    }
}
