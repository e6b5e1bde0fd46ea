//! Parquet codec: parquet's async Arrow reader over any [`ByteSource`] and its `ArrowWriter`.
//!
//! Reads fetch the footer and then only the column chunks of the projected columns in the row
//! groups that survive pruning: a row group whose min/max/null-count statistics rule out a
//! filter (`=`, `<>`, `<`, `<=`, `>`, `>=`, `IN`, `IS [NOT] NULL`, combined with `AND`/`OR`) is
//! never fetched. The caller still filters rows (statistics only prune whole row groups).
//! Floating-point columns are not pruned (statistics leave out NaN, which comparisons order
//! above every number). A truncated or corrupt file is an [`ErrorKind::Decode`] error naming it.
//!
//! Writes encode with `ArrowWriter` (zstd by default) into a buffer the sink drains after every
//! batch; memory is bounded by one row group (`row_group_rows`).

use std::ops::Range;
use std::sync::Arc;

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
use futures::{FutureExt, TryStreamExt};
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::arrow_reader::statistics::StatisticsConverter;
use parquet::arrow::async_reader::{AsyncFileReader, ParquetRecordBatchStreamBuilder};
use parquet::arrow::{ArrowWriter, ProjectionMask};
use parquet::errors::ParquetError;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader, RowGroupMetaData};
use parquet::file::properties::WriterProperties;
use parquet::schema::types::SchemaDescriptor;
use serde::{Deserialize, Serialize};

use crate::format::{ByteSource, FileFormat, FormatReadOptions, FormatWriter};
use crate::util::SharedBuf;

const NAME: &str = "parquet";

/// Bytes fetched from the end of a file for the footer in one request.
const FOOTER_HINT: usize = 64 * 1024;

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
            futures::future::try_join_all(ranges.into_iter().map(|r| {
                let input = input.clone();
                async move { input.get_range(r).await }
            }))
            .await
            .map_err(|e| ParquetError::External(Box::new(e)))
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let size = self.size;
            let reader = ParquetMetaDataReader::new()
                .with_metadata_options(options.map(|o| o.metadata_options().clone()))
                .with_prefetch_hint(Some(FOOTER_HINT));
            Ok(Arc::new(reader.load_and_finish(self, size).await?))
        }
        .boxed()
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
    ParquetRecordBatchStreamBuilder::new(ByteSourceReader { input, size })
        .await
        .map_err(|e| from_parquet(e, &location))
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
        let batches = stream.map_err(move |e| from_parquet(e, &location).with_operation("read"));
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
