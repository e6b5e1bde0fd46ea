//! Avro Object Container Files, read and written with [`arrow_avro`].
//!
//! # Reading
//! The schema comes from the file header (the writer schema); types map as arrow-avro maps them
//! (records → `Struct`, arrays → `List`, maps → `Map`, enums → `Dictionary`, logical types to
//! their Arrow counterparts). Blocks compressed with deflate, snappy, zstd, bzip2 or xz are
//! decompressed.
//!
//! Before decoding, the container framing is checked: magic, header, and every block's count,
//! size and sync marker, up to the exact end of the file. A truncated or corrupt file fails with
//! [`ErrorKind::Decode`] naming the file and the byte offset of the bad block, instead of
//! silently yielding fewer rows. The file is read into memory whole.
//!
//! Each block is decoded by its own arrow-avro reader asked for exactly the block's rows:
//! arrow-avro 59.3's reader (60.1 too) loops forever when a block holds more bytes than its row
//! count, and a reader never asked for more cannot. Bytes beyond the announced rows of a block
//! are therefore ignored (arrow-avro does not report how many bytes the rows used). A block may
//! announce at most 2^24 rows.
//!
//! # Writing
//! [`AvroFormat::writer`] writes an Object Container File with one block per batch, compressed
//! with [`AvroFormat::compression`]. Bytes can be taken out after every batch.

use std::io::{Cursor, Write};
use std::sync::{Arc, Mutex, PoisonError};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use arrow_avro::compression::CompressionCodec;
use arrow_avro::reader::ReaderBuilder;
use arrow_avro::writer::WriterBuilder;
use arrow_avro::writer::format::AvroOcfFormat;
use async_trait::async_trait;
use bytes::Bytes;
use connector_core::{
    Error, ErrorKind, Location, RecordBatchStreamAdapter, Result, SendableRecordBatchStream,
};
use serde::{Deserialize, Serialize};

use crate::format::{ByteSource, FileFormat, FormatReadOptions, FormatWriter};

const NAME: &str = "avro";
const MAGIC: &[u8] = b"Obj\x01";
const SYNC_LEN: usize = 16;

/// Block compression of written files.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum AvroCompression {
    /// No compression.
    #[default]
    None,
    /// Deflate (RFC 1951).
    Deflate,
    /// Snappy (with the CRC32 Avro requires).
    Snappy,
    /// Zstandard.
    Zstd,
}

/// Avro Object Container Files (see the [module docs](self)).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default)]
pub struct AvroFormat {
    /// Compression of written blocks.
    pub compression: AvroCompression,
}

fn decode_error(file: &str, offset: Option<u64>, message: impl Into<String>) -> Error {
    let mut loc = Location::file(file);
    if let Some(o) = offset {
        loc = loc.with_byte_offset(o);
    }
    Error::new(ErrorKind::Decode, message).with_location(loc)
}

/// A cursor over the container framing.
struct Framing<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Framing<'_> {
    /// An Avro `long`: zig-zag varint of at most 10 bytes.
    fn long(&mut self) -> Option<i64> {
        let mut value: u64 = 0;
        for i in 0..10 {
            let b = *self.data.get(self.pos)?;
            self.pos += 1;
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Some(((value >> 1) as i64) ^ -((value & 1) as i64));
            }
        }
        None
    }

    fn skip(&mut self, n: usize) -> Option<&[u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.data.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    fn len(&mut self) -> Option<usize> {
        usize::try_from(self.long()?).ok()
    }
}

/// Check the container framing of a whole file: magic, header metadata map, sync marker, and
/// every block up to the end of the file.
/// Rows one block may announce (bounds the memory a block's batch takes).
const MAX_BLOCK_ROWS: i64 = 1 << 24;

/// Where the header ends and each block (start, end, rows) lies.
#[derive(Debug)]
struct Framed {
    header_end: usize,
    blocks: Vec<(usize, usize, usize)>,
}

fn check_framing(file: &str, data: &[u8]) -> Result<Framed> {
    if !data.starts_with(MAGIC) {
        return Err(decode_error(
            file,
            Some(0),
            "not an Avro object container file (bad magic)",
        ));
    }
    let mut f = Framing {
        data,
        pos: MAGIC.len(),
    };
    let truncated_header = || decode_error(file, Some(0), "truncated or corrupt Avro header");
    loop {
        let count = f.long().ok_or_else(truncated_header)?;
        if count == 0 {
            break;
        }
        if count < 0 {
            // A negative count is followed by the block's size in bytes.
            f.long().ok_or_else(truncated_header)?;
        }
        for _ in 0..count.unsigned_abs() {
            let k = f.len().ok_or_else(truncated_header)?;
            f.skip(k).ok_or_else(truncated_header)?;
            let v = f.len().ok_or_else(truncated_header)?;
            f.skip(v).ok_or_else(truncated_header)?;
        }
    }
    let sync: [u8; SYNC_LEN] = f
        .skip(SYNC_LEN)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(truncated_header)?;
    let mut framed = Framed {
        header_end: f.pos,
        blocks: Vec::new(),
    };
    while f.pos < data.len() {
        let start = f.pos as u64;
        let bad = |what: &str| {
            decode_error(
                file,
                Some(start),
                format!("truncated or corrupt Avro block: {what}"),
            )
        };
        let count = f.long().ok_or_else(|| bad("bad row count"))?;
        if count < 0 {
            return Err(bad("negative row count"));
        }
        let size = f.len().ok_or_else(|| bad("bad size"))?;
        if count > MAX_BLOCK_ROWS {
            return Err(bad(&format!(
                "{count} rows in one block (limit {MAX_BLOCK_ROWS})"
            )));
        }
        if count == 0 && size > 0 {
            // arrow-avro 59.3's reader loops forever on such a block (found by fuzzing).
            return Err(bad(&format!("{size} bytes of data for 0 rows")));
        }
        let left = data.len() - f.pos;
        f.skip(size)
            .ok_or_else(|| bad(&format!("{size} bytes announced, {left} left")))?;
        let marker = f.skip(SYNC_LEN).ok_or_else(|| bad("missing sync marker"))?;
        if marker != sync {
            return Err(bad("sync marker does not match the header's"));
        }
        framed.blocks.push((start as usize, f.pos, count as usize));
    }
    Ok(framed)
}

impl AvroFormat {
    /// A reader over the header and, optionally, one block; `batch_rows` rows per batch.
    fn reader(
        file: &str,
        data: Bytes,
        batch_rows: usize,
    ) -> Result<arrow_avro::reader::Reader<Cursor<Bytes>>> {
        ReaderBuilder::new()
            .with_batch_size(batch_rows.max(1))
            .build(Cursor::new(data))
            .map_err(|e| decode_error(file, None, format!("cannot read the Avro header: {e}")))
    }

    /// Decode one block into batches of at most `batch_rows`. The block is read by its own
    /// reader with a batch of exactly its row count and dropped after that one batch: arrow-avro's
    /// reader spins forever when a block holds more bytes than its count of rows, which a
    /// reader that is never asked for more cannot do.
    fn decode_block(
        file: &str,
        data: &Bytes,
        framed: &Framed,
        block: (usize, usize, usize),
        batch_rows: usize,
    ) -> Result<Vec<RecordBatch>> {
        let (start, end, count) = block;
        let mut one = Vec::with_capacity(framed.header_end + end - start);
        one.extend_from_slice(&data[..framed.header_end]);
        one.extend_from_slice(&data[start..end]);
        let mut reader = Self::reader(file, Bytes::from(one), count)?;
        let corrupt = |what: String| {
            decode_error(
                file,
                Some(start as u64),
                format!("corrupt Avro block: {what}"),
            )
        };
        let batch = match reader.next() {
            Some(Ok(b)) => b,
            Some(Err(e)) => return Err(corrupt(e.to_string())),
            None => return Err(corrupt(format!("no rows where {count} were announced"))),
        };
        if batch.num_rows() != count {
            return Err(corrupt(format!(
                "{} rows where {count} were announced",
                batch.num_rows()
            )));
        }
        let step = batch_rows.max(1);
        Ok((0..count)
            .step_by(step)
            .map(|o| batch.slice(o, step.min(count - o)))
            .collect())
    }
}

#[async_trait]
impl FileFormat for AvroFormat {
    fn name(&self) -> &'static str {
        NAME
    }

    fn extensions(&self) -> &'static [&'static str] {
        &["avro"]
    }

    async fn infer_schema(&self, input: Arc<dyn ByteSource>) -> Result<SchemaRef> {
        let during = |e: Error| e.with_connector(NAME).with_operation("infer_schema");
        let data = input.get_all().await.map_err(during)?;
        let framed = check_framing(input.location(), &data).map_err(during)?;
        let reader =
            Self::reader(input.location(), data.slice(..framed.header_end), 1).map_err(during)?;
        Ok(reader.schema())
    }

    async fn read(
        &self,
        input: Arc<dyn ByteSource>,
        options: FormatReadOptions,
    ) -> Result<SendableRecordBatchStream> {
        let during = |e: Error| e.with_connector(NAME).with_operation("read");
        let data = input.get_all().await.map_err(during)?;
        let file = input.location().to_owned();
        let batch_rows = if options.batch_rows == 0 {
            8192
        } else {
            options.batch_rows
        };
        let framed = check_framing(&file, &data).map_err(during)?;
        let schema = Self::reader(&file, data.slice(..framed.header_end), 1)
            .map_err(during)?
            .schema();
        if let Some(wanted) = &options.schema
            && wanted.fields() != schema.fields()
        {
            return Err(during(
                Error::new(
                    ErrorKind::SchemaMismatch,
                    "the requested schema differs from the Avro file's schema (cast after reading)",
                )
                .with_location(Location::file(&file)),
            ));
        }
        let limit = options.limit.unwrap_or(usize::MAX);
        let mut rows = 0usize;
        let mut failed = false;
        let blocks = framed.blocks.clone();
        let batches = blocks
            .into_iter()
            .map_while(move |block| {
                if failed || rows >= limit {
                    return None;
                }
                match Self::decode_block(&file, &data, &framed, block, batch_rows) {
                    Ok(b) => {
                        rows += block.2;
                        Some(b.into_iter().map(Ok).collect::<Vec<_>>())
                    }
                    Err(e) => {
                        failed = true;
                        Some(vec![Err(during(e))])
                    }
                }
            })
            .flatten();
        let stream = futures::stream::iter(batches);
        Ok(RecordBatchStreamAdapter::boxed(schema, stream))
    }

    fn writer(&self, schema: SchemaRef) -> Result<Box<dyn FormatWriter>> {
        let codec = match self.compression {
            AvroCompression::None => None,
            AvroCompression::Deflate => Some(CompressionCodec::Deflate),
            AvroCompression::Snappy => Some(CompressionCodec::Snappy),
            AvroCompression::Zstd => Some(CompressionCodec::ZStandard),
        };
        let buf = SharedBuf::default();
        let writer = WriterBuilder::new(schema.as_ref().clone())
            .with_compression(codec)
            .build::<_, AvroOcfFormat>(buf.clone())
            .map_err(|e| {
                Error::new(
                    ErrorKind::Unsupported,
                    format!("cannot write this schema as Avro: {e}"),
                )
                .with_connector(NAME)
                .with_operation("write")
            })?;
        Ok(Box::new(AvroFileWriter { writer, buf }))
    }
}

/// A `Write` whose bytes can be taken out while the writer still owns it.
#[derive(Debug, Clone, Default)]
struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl SharedBuf {
    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct AvroFileWriter {
    writer: arrow_avro::writer::Writer<SharedBuf, AvroOcfFormat>,
    buf: SharedBuf,
}

impl FormatWriter for AvroFileWriter {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.writer.write(batch).map_err(|e| {
            Error::new(
                ErrorKind::SchemaMismatch,
                format!("cannot encode the batch as Avro: {e}"),
            )
            .with_connector(NAME)
            .with_operation("write")
        })
    }

    fn take_bytes(&mut self) -> Bytes {
        Bytes::from(self.buf.take())
    }

    fn finish(mut self: Box<Self>) -> Result<Bytes> {
        self.writer.finish().map_err(|e| {
            Error::new(ErrorKind::Io, format!("cannot finish the Avro file: {e}"))
                .with_connector(NAME)
                .with_operation("write")
        })?;
        Ok(Bytes::from(self.buf.take()))
    }
}

/// The `avro` connector kind: [`AvroFormat`] options under `options` of a
/// [`crate::factory::FileConfig`].
#[derive(Debug)]
pub struct AvroKind;

impl crate::factory::FormatKind for AvroKind {
    type Options = AvroFormat;
    const KIND: &'static str = "avro";
    const DESCRIPTION: &'static str = "Avro object container files in a local directory";
    fn format(options: &Self::Options) -> Result<Arc<dyn FileFormat>> {
        Ok(Arc::new(options.clone()))
    }
}

/// Factory of the `avro` kind.
pub type AvroFactory = crate::factory::FileFactory<AvroKind>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zigzag_longs() {
        let mut f = Framing {
            data: &[0x00, 0x01, 0x02, 0x7f, 0x80, 0x01],
            pos: 0,
        };
        assert_eq!(f.long(), Some(0));
        assert_eq!(f.long(), Some(-1));
        assert_eq!(f.long(), Some(1));
        assert_eq!(f.long(), Some(-64));
        assert_eq!(f.long(), Some(64));
        assert_eq!(f.long(), None);
    }

    #[test]
    fn framing_rejects_bad_magic() {
        let e = check_framing("x.avro", b"PK\x03\x04").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Decode);
        assert_eq!(e.location().and_then(|l| l.file.as_deref()), Some("x.avro"));
    }

    /// Why the framing check exists: arrow-avro's reader alone treats a file cut inside its
    /// last block as complete and returns the earlier rows without an error.
    #[test]
    fn framing_catches_a_truncation_the_reader_misses() {
        use arrow::array::Int64Array;
        use arrow::datatypes::{DataType, Field, Schema};
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        let mut w = AvroFormat::default().writer(schema.clone()).unwrap();
        for start in [0i64, 10] {
            let batch = RecordBatch::try_new(
                schema.clone(),
                vec![Arc::new(Int64Array::from(
                    (start..start + 10).collect::<Vec<_>>(),
                ))],
            )
            .unwrap();
            w.write(&batch).unwrap();
        }
        let bytes = w.finish().unwrap();
        let cut = bytes.slice(..bytes.len() - 20);
        let plain: std::result::Result<Vec<RecordBatch>, _> = ReaderBuilder::new()
            .build(Cursor::new(cut.clone()))
            .unwrap()
            .collect();
        let plain_rows: Option<usize> = plain
            .ok()
            .map(|b| b.iter().map(RecordBatch::num_rows).sum());
        assert_eq!(
            plain_rows,
            Some(10),
            "arrow-avro alone: silently 10 of 20 rows"
        );
        let e = check_framing("cut.avro", &cut).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Decode);
        assert!(e.location().and_then(|l| l.byte_offset).is_some());
    }

    /// A block announcing 0 rows but carrying data made arrow-avro's reader spin forever
    /// (fuzz finding); the framing check rejects it.
    #[test]
    fn zero_row_block_with_data_is_rejected() {
        use arrow::array::Int64Array;
        use arrow::datatypes::{DataType, Field, Schema};
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        let mut w = AvroFormat::default().writer(schema.clone()).unwrap();
        let mut file = w.take_bytes().to_vec();
        let batch =
            RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![1, 2, 3]))]).unwrap();
        w.write(&batch).unwrap();
        let mut block = w.take_bytes().to_vec();
        block.extend_from_slice(&w.finish().unwrap());
        // The block starts with its row count (zig-zag 3 = 6); make it 0.
        assert_eq!(block[0], 6);
        assert!(check_framing("z.avro", &[file.as_slice(), &block].concat()).is_ok());
        block[0] = 0;
        file.extend_from_slice(&block);
        let e = check_framing("z.avro", &file).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Decode);
        assert!(e.to_string().contains("for 0 rows"), "{e}");
    }

    /// A block announcing fewer rows than it holds made arrow-avro's reader spin forever; read
    /// block by block it returns the announced rows and ends.
    #[tokio::test]
    async fn block_with_fewer_rows_than_bytes_does_not_hang() {
        use arrow::array::Int64Array;
        use arrow::datatypes::{DataType, Field, Schema};
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        let mut w = AvroFormat::default().writer(schema.clone()).unwrap();
        let mut file = w.take_bytes().to_vec();
        let batch =
            RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![1, 2, 3]))]).unwrap();
        w.write(&batch).unwrap();
        let mut block = w.take_bytes().to_vec();
        block.extend_from_slice(&w.finish().unwrap());
        assert_eq!(block[0], 6);
        block[0] = 4; // 2 rows announced, 3 present
        file.extend_from_slice(&block);
        let input = Arc::new(crate::InMemoryBytes::new("short.avro", file));
        let out = AvroFormat::default()
            .read(input, FormatReadOptions::default())
            .await
            .unwrap();
        let out = connector_core::collect(out).await.unwrap();
        assert_eq!(out.num_rows(), 2);
    }
}
