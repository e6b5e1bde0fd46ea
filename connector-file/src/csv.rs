//! CSV codec: arrow-csv's push [`arrow::csv::reader::Decoder`] for values, `csv-core` for record
//! boundaries.
//!
//! Under [`BadRows::Fail`] (the default) a read takes a fast path: after the header, input chunks
//! go straight to arrow-csv's decoder, as arrow-rs's own reader does. If arrow-csv rejects
//! anything, the read falls back to the exact path below: the file is streamed again from its
//! start, the rows already yielded are passed over (never yielded twice), and the error names the
//! bad record's file line. A valid file is parsed once; only a failing one is parsed twice.
//!
//! On the exact path, records are split with `csv-core` (the state machine arrow-csv itself uses) as bytes arrive,
//! so every record's 1-based file line and byte offset are known exactly, quoted newlines
//! included. Each record's field count is checked before arrow-csv sees it: a ragged row is an
//! [`ErrorKind::InvalidInput`] error naming the file and line, or, under [`BadRows::Skip`], is
//! recorded in the [`crate::BadRowLog`] and left out. Complete records are decoded `batch_rows`
//! at a time; when arrow-csv rejects a batch (a value that does not parse as its column's type,
//! invalid UTF-8), the batch is decoded again record by record to find the bad lines. Memory is
//! bounded by one batch of raw records plus one input chunk.
//!
//! A UTF-8 byte-order mark at the start is dropped. Empty lines are skipped. Compression is a
//! separate layer ([`crate::compression`]).

use std::io::Cursor;
use std::sync::Arc;

use arrow::csv::reader::Format;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use bytes::Bytes;
use connector_core::{
    Error, ErrorKind, Location, RecordBatchStreamAdapter, Result, SendableRecordBatchStream,
};
use futures::StreamExt;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

use crate::format::{BadRowLog, BadRows, ByteSource, FileFormat, FormatReadOptions, FormatWriter};
use crate::util::{SharedBuf, count_newlines, strip_relative_line};

const NAME: &str = "csv";
const BOM: &[u8] = b"\xEF\xBB\xBF";
/// Bytes split at a time where only the first records of a chunk are wanted (header, sample).
const SPLIT_SLICE: usize = 16 * 1024;

/// CSV dialect and inference options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct CsvOptions {
    /// Field delimiter (one ASCII character). Default `,`.
    pub delimiter: char,
    /// Quote character (one ASCII character). Default `"`.
    pub quote: char,
    /// Escape character inside quoted fields (e.g. `\`); default none (quotes are doubled).
    pub escape: Option<char>,
    /// The first record names the columns. Default true. Without a header, columns are named
    /// `column_1`, `column_2`, …
    pub header: bool,
    /// Records sampled to infer the schema. Default 1000.
    pub infer_rows: usize,
}

impl Default for CsvOptions {
    fn default() -> Self {
        Self {
            delimiter: ',',
            quote: '"',
            escape: None,
            header: true,
            infer_rows: 1000,
        }
    }
}

/// The CSV [`FileFormat`].
#[derive(Debug, Clone)]
pub struct CsvFormat {
    options: CsvOptions,
    delimiter: u8,
    quote: u8,
    escape: Option<u8>,
}

impl Default for CsvFormat {
    fn default() -> Self {
        Self {
            options: CsvOptions::default(),
            delimiter: b',',
            quote: b'"',
            escape: None,
        }
    }
}

fn ascii(what: &str, c: char) -> Result<u8> {
    u8::try_from(c).ok().filter(u8::is_ascii).ok_or_else(|| {
        Error::invalid_config(format!("CSV {what} must be one ASCII character, got {c:?}"))
            .with_connector(NAME)
    })
}

impl CsvFormat {
    /// The tab-separated dialect (`.tsv`, `.tab`).
    #[must_use]
    pub fn tsv() -> Self {
        Self {
            options: CsvOptions {
                delimiter: '\t',
                ..CsvOptions::default()
            },
            delimiter: b'\t',
            ..Self::default()
        }
    }

    /// A CSV format with `options`; non-ASCII delimiter, quote or escape is an error.
    pub fn new(options: CsvOptions) -> Result<Self> {
        Ok(Self {
            delimiter: ascii("delimiter", options.delimiter)?,
            quote: ascii("quote", options.quote)?,
            escape: options.escape.map(|e| ascii("escape", e)).transpose()?,
            options,
        })
    }

    /// The options.
    #[must_use]
    pub fn options(&self) -> &CsvOptions {
        &self.options
    }

    fn splitter(&self) -> Splitter {
        let reader = csv_core::ReaderBuilder::new()
            .delimiter(self.delimiter)
            .quote(self.quote)
            .escape(self.escape)
            .double_quote(true)
            .build();
        Splitter::new(reader)
    }

    fn arrow_format(&self) -> Format {
        let f = Format::default()
            .with_header(self.options.header)
            .with_delimiter(self.delimiter)
            .with_quote(self.quote);
        match self.escape {
            Some(e) => f.with_escape(e),
            None => f,
        }
    }
}

/// One complete record as it appeared in the input.
struct RawRecord<'a> {
    bytes: &'a [u8],
    line: u64,
    offset: u64,
    /// Offset just past the record's last consumed byte (after any byte-order mark).
    end: u64,
    fields: usize,
}

/// Splits a byte stream into raw CSV records, tracking lines and offsets.
struct Splitter {
    reader: csv_core::Reader,
    scratch: Vec<u8>,
    ends: Vec<usize>,
    record: Vec<u8>,
    fields: usize,
    in_record: bool,
    line: u64,
    offset: u64,
    record_line: u64,
    record_offset: u64,
    bom_pending: Option<Vec<u8>>,
    /// Bytes of byte-order mark dropped at the start (0 or 3).
    bom_len: usize,
}

impl Splitter {
    fn new(reader: csv_core::Reader) -> Self {
        Self::with_buffers(reader, vec![0; 64 * 1024], vec![0; 1024])
    }

    fn with_buffers(reader: csv_core::Reader, scratch: Vec<u8>, ends: Vec<usize>) -> Self {
        Self {
            reader,
            scratch,
            ends,
            record: Vec::new(),
            fields: 0,
            in_record: false,
            line: 1,
            offset: 0,
            record_line: 1,
            record_offset: 0,
            bom_pending: Some(Vec::new()),
            bom_len: 0,
        }
    }

    /// Feed bytes; `on_record` is called for each record completed.
    fn push(
        &mut self,
        input: &[u8],
        on_record: &mut dyn FnMut(RawRecord<'_>) -> Result<()>,
    ) -> Result<()> {
        if let Some(mut pending) = self.bom_pending.take() {
            pending.extend_from_slice(input);
            if pending.len() < BOM.len() && BOM.starts_with(&pending) {
                self.bom_pending = Some(pending);
                return Ok(());
            }
            let start = if pending.starts_with(BOM) {
                BOM.len()
            } else {
                0
            };
            self.bom_len = start;
            return self.split(&pending[start..], on_record);
        }
        self.split(input, on_record)
    }

    fn split(
        &mut self,
        mut input: &[u8],
        on_record: &mut dyn FnMut(RawRecord<'_>) -> Result<()>,
    ) -> Result<()> {
        while !input.is_empty() {
            if !self.in_record {
                let skip = input
                    .iter()
                    .take_while(|b| **b == b'\n' || **b == b'\r')
                    .count();
                self.line += count_newlines(&input[..skip]);
                self.offset += skip as u64;
                input = &input[skip..];
                if input.is_empty() {
                    break;
                }
                self.in_record = true;
                self.record_line = self.line;
                self.record_offset = self.offset;
                self.fields = 0;
                self.record.clear();
            }
            let (result, nin, _, nend) =
                self.reader
                    .read_record(input, &mut self.scratch, &mut self.ends);
            let consumed = &input[..nin];
            self.record.extend_from_slice(consumed);
            self.line += count_newlines(consumed);
            self.offset += nin as u64;
            self.fields += nend;
            input = &input[nin..];
            if result == csv_core::ReadRecordResult::Record {
                self.complete(on_record)?;
            }
        }
        Ok(())
    }

    fn complete(&mut self, on_record: &mut dyn FnMut(RawRecord<'_>) -> Result<()>) -> Result<()> {
        self.in_record = false;
        if !matches!(self.record.last(), Some(b'\n' | b'\r')) {
            self.record.push(b'\n');
        }
        on_record(RawRecord {
            bytes: &self.record,
            line: self.record_line,
            offset: self.record_offset,
            end: self.offset,
            fields: self.fields,
        })
    }

    /// End of input: completes the last record if it had no line terminator.
    fn finish(&mut self, on_record: &mut dyn FnMut(RawRecord<'_>) -> Result<()>) -> Result<()> {
        if let Some(pending) = self.bom_pending.take() {
            let start = if pending.starts_with(BOM) {
                BOM.len()
            } else {
                0
            };
            self.bom_len = start;
            self.split(&pending[start..], on_record)?;
        }
        if self.in_record {
            let (result, _, _, nend) =
                self.reader
                    .read_record(&[], &mut self.scratch, &mut self.ends);
            self.fields += nend;
            if result == csv_core::ReadRecordResult::Record {
                self.complete(on_record)?;
            } else {
                self.in_record = false;
            }
        }
        Ok(())
    }
}

fn bad_row_error(location: &str, line: u64, row: u64, offset: u64, reason: String) -> Error {
    Error::new(ErrorKind::InvalidInput, reason)
        .with_connector(NAME)
        .with_operation("read")
        .with_location(
            Location::file(location)
                .with_line(line)
                .with_row(row)
                .with_byte_offset(offset),
        )
}

/// Where a buffered record came from.
#[derive(Debug, Clone, Copy)]
struct Pos {
    start: usize,
    end: usize,
    line: u64,
    offset: u64,
    row: u64,
}

/// The fast path's state: chunks go straight to arrow-csv's decoder.
struct Fast {
    decoder: arrow::csv::reader::Decoder,
    /// Until the data starts: the input so far and a splitter looking for the header record
    /// (or, without a header, for the end of a byte-order mark).
    head: Option<(Vec<u8>, Splitter)>,
    /// Data rows decoded into batches so far.
    rows: u64,
}

/// Why the fast path stopped.
enum FastStop {
    /// arrow-csv rejected the input: re-read on the exact path to say where.
    Rejected(arrow::error::ArrowError),
    /// An error that the exact path would report the same way (a mismatched header).
    Failed(Error),
}

/// The state of one CSV read.
struct CsvRead {
    location: String,
    /// Streamed again from the start if the fast path has to fall back.
    source: Arc<dyn ByteSource>,
    input: BoxStream<'static, Result<Bytes>>,
    /// The fast path, while it lasts (only under [`BadRows::Fail`]).
    fast: Option<Fast>,
    /// Data rows the fast path already decoded: the exact path passes over them.
    skip_rows: u64,
    /// Taken out while a chunk is split (the callback borrows the reader mutably); building a
    /// stand-in would construct a csv-core DFA per chunk, which dominated the read profile.
    splitter: Option<Splitter>,
    schema: SchemaRef,
    projection: Option<Vec<usize>>,
    out_schema: SchemaRef,
    format: CsvFormat,
    header_pending: bool,
    batch_rows: usize,
    bad_rows: BadRows,
    log: BadRowLog,
    /// Raw bytes of good records not yet decoded.
    pending: Vec<u8>,
    positions: Vec<Pos>,
    /// 0-based index of the next data record.
    next_row: u64,
    ready: std::collections::VecDeque<RecordBatch>,
    rows_left: Option<usize>,
    eof: bool,
}

impl CsvRead {
    fn decoder(&self, rows: usize) -> arrow::csv::reader::Decoder {
        let mut b = arrow::csv::ReaderBuilder::new(self.schema.clone())
            .with_header(false)
            .with_delimiter(self.format.delimiter)
            .with_quote(self.format.quote)
            .with_batch_size(rows.max(1));
        if let Some(e) = self.format.escape {
            b = b.with_escape(e);
        }
        if let Some(p) = &self.projection {
            b = b.with_projection(p.clone());
        }
        b.build_decoder()
    }

    fn decode_bytes(
        decoder: &mut arrow::csv::reader::Decoder,
        bytes: &[u8],
    ) -> std::result::Result<Option<RecordBatch>, arrow::error::ArrowError> {
        let mut pos = 0;
        while pos < bytes.len() {
            let n = decoder.decode(&bytes[pos..])?;
            if n == 0 {
                break;
            }
            pos += n;
        }
        decoder.decode(&[])?;
        decoder.flush()
    }

    /// Take one complete record from the splitter.
    fn accept(&mut self, rec: &RawRecord<'_>) -> Result<()> {
        if self.header_pending {
            self.header_pending = false;
            return self.check_header(rec);
        }
        let row = self.next_row;
        self.next_row += 1;
        if row < self.skip_rows {
            // Decoded and yielded by the fast path before it fell back.
            return Ok(());
        }
        let expected = self.schema.fields().len();
        if rec.fields != expected {
            let reason = format!("expected {expected} fields, found {}", rec.fields);
            return self.bad(rec.line, row, rec.offset, reason);
        }
        let start = self.pending.len();
        self.pending.extend_from_slice(rec.bytes);
        self.positions.push(Pos {
            start,
            end: self.pending.len(),
            line: rec.line,
            offset: rec.offset,
            row,
        });
        if self.positions.len() >= self.batch_rows {
            self.decode_pending()?;
        }
        Ok(())
    }

    /// The header must name the schema's columns, in order: a file whose columns are
    /// reordered, renamed or of another number is a [`ErrorKind::SchemaMismatch`].
    fn check_header(&self, rec: &RawRecord<'_>) -> Result<()> {
        let (header, _) = self
            .format
            .arrow_format()
            .infer_schema(Cursor::new(rec.bytes), Some(0))
            .map_err(|e| bad_row_error(&self.location, rec.line, 0, rec.offset, e.to_string()))?;
        let got: Vec<&String> = header.fields().iter().map(|f| f.name()).collect();
        let want: Vec<&String> = self.schema.fields().iter().map(|f| f.name()).collect();
        if got == want {
            return Ok(());
        }
        let first_difference = (0..got.len().max(want.len()))
            .find(|i| got.get(*i) != want.get(*i))
            .unwrap_or_default();
        let mut location = Location::file(self.location.clone())
            .with_line(rec.line)
            .with_byte_offset(rec.offset);
        if let Some(name) = got
            .get(first_difference)
            .or_else(|| want.get(first_difference))
        {
            location = location.with_column((*name).clone());
        }
        Err(Error::new(
            ErrorKind::SchemaMismatch,
            format!("the header names columns {got:?}, the schema {want:?}"),
        )
        .with_connector(NAME)
        .with_operation("read")
        .with_location(location))
    }

    fn bad(&self, line: u64, row: u64, offset: u64, reason: String) -> Result<()> {
        match self.bad_rows {
            BadRows::Fail => Err(bad_row_error(&self.location, line, row, offset, reason)),
            BadRows::Skip => {
                self.log.record(
                    Location::file(self.location.clone())
                        .with_line(line)
                        .with_row(row)
                        .with_byte_offset(offset),
                    reason,
                );
                Ok(())
            }
        }
    }

    /// Decode the buffered records into one batch.
    fn decode_pending(&mut self) -> Result<()> {
        if self.positions.is_empty() {
            return Ok(());
        }
        let n = self.positions.len();
        let mut decoder = self.decoder(n);
        let batch = match Self::decode_bytes(&mut decoder, &self.pending) {
            Ok(Some(b)) if b.num_rows() == n => Some(b),
            _ => None,
        };
        let batch = match batch {
            Some(b) => b,
            None => self.decode_one_by_one()?,
        };
        self.pending.clear();
        self.positions.clear();
        if batch.num_rows() > 0 {
            self.ready.push_back(batch);
        }
        Ok(())
    }

    /// The slow path: find the records arrow-csv rejects.
    fn decode_one_by_one(&mut self) -> Result<RecordBatch> {
        let mut good = Vec::new();
        for p in self.positions.clone() {
            let mut decoder = self.decoder(1);
            match Self::decode_bytes(&mut decoder, &self.pending[p.start..p.end]) {
                Ok(Some(b)) if b.num_rows() == 1 => good.push(b),
                Ok(_) => self.bad(p.line, p.row, p.offset, "the record has no data".into())?,
                Err(e) => self.bad(p.line, p.row, p.offset, strip_relative_line(&e.to_string()))?,
            }
        }
        Ok(arrow::compute::concat_batches(&self.out_schema, &good)?)
    }

    /// The fast path: feed one chunk, or end the input (`None`).
    fn fast_push(&mut self, chunk: Option<&[u8]>) -> std::result::Result<(), FastStop> {
        if self.fast.as_ref().is_some_and(|f| f.head.is_some()) {
            let Some(data_start) = self.fast_head(chunk)? else {
                return Ok(());
            };
            let head = self
                .fast
                .as_mut()
                .and_then(|f| f.head.take())
                .map(|(head, _)| head)
                .unwrap_or_default();
            let data = head.get(data_start..).unwrap_or_default();
            self.fast_decode(data).map_err(FastStop::Rejected)?;
        } else if let Some(c) = chunk {
            self.fast_decode(c).map_err(FastStop::Rejected)?;
        }
        if chunk.is_none() {
            self.fast_end().map_err(FastStop::Rejected)?;
        }
        Ok(())
    }

    /// Before the data: buffer `chunk` until the header record (or, without a header, a
    /// possible byte-order mark) is complete; then the offset of the data in the buffer.
    fn fast_head(&mut self, chunk: Option<&[u8]>) -> std::result::Result<Option<usize>, FastStop> {
        let header_pending = self.header_pending;
        let Some((head, splitter)) = self.fast.as_mut().and_then(|f| f.head.as_mut()) else {
            return Ok(Some(0));
        };
        let len_before = head.len();
        if let Some(c) = chunk {
            head.extend_from_slice(c);
        }
        if !header_pending {
            return Ok(if head.len() >= BOM.len() || chunk.is_none() {
                Some(if head.starts_with(BOM) { BOM.len() } else { 0 })
            } else {
                None
            });
        }
        let header = std::cell::RefCell::new(None);
        let mut take = |rec: RawRecord<'_>| {
            header.borrow_mut().get_or_insert_with(|| {
                (
                    rec.bytes.to_vec(),
                    rec.line,
                    rec.offset,
                    rec.end,
                    rec.fields,
                )
            });
            Ok(())
        };
        match chunk {
            // In slices, to stop splitting (a second parse) once the header is complete.
            Some(_) => {
                for slice in head[len_before..].chunks(SPLIT_SLICE) {
                    splitter.push(slice, &mut take).map_err(FastStop::Failed)?;
                    if header.borrow().is_some() {
                        break;
                    }
                }
            }
            None => splitter.finish(&mut take).map_err(FastStop::Failed)?,
        }
        let header = header.into_inner();
        let bom_len = splitter.bom_len;
        let Some((bytes, line, offset, end, fields)) = header else {
            // No complete header yet; at the end of the input, an empty file.
            return Ok(chunk.is_none().then_some(head.len()));
        };
        let rec = RawRecord {
            bytes: &bytes,
            line,
            offset,
            end,
            fields,
        };
        self.check_header(&rec).map_err(FastStop::Failed)?;
        self.header_pending = false;
        Ok(Some(bom_len + end as usize))
    }

    fn fast_decode(
        &mut self,
        mut data: &[u8],
    ) -> std::result::Result<(), arrow::error::ArrowError> {
        while !data.is_empty() {
            self.fast_flush_if_full()?;
            let Some(fast) = self.fast.as_mut() else {
                return Ok(());
            };
            let n = fast.decoder.decode(data)?;
            if n == 0 && fast.decoder.capacity() > 0 {
                return Err(arrow::error::ArrowError::CsvError(
                    "the CSV decoder took no input".into(),
                ));
            }
            data = &data[n..];
        }
        self.fast_flush_if_full()
    }

    fn fast_flush_if_full(&mut self) -> std::result::Result<(), arrow::error::ArrowError> {
        if self
            .fast
            .as_ref()
            .is_some_and(|f| f.decoder.capacity() == 0)
        {
            self.fast_flush()?;
        }
        Ok(())
    }

    fn fast_flush(&mut self) -> std::result::Result<(), arrow::error::ArrowError> {
        let Some(fast) = self.fast.as_mut() else {
            return Ok(());
        };
        if let Some(batch) = fast.decoder.flush()? {
            fast.rows += batch.num_rows() as u64;
            if batch.num_rows() > 0 {
                self.ready.push_back(batch);
            }
        }
        Ok(())
    }

    /// End of input on the fast path: the last record may lack a line terminator.
    fn fast_end(&mut self) -> std::result::Result<(), arrow::error::ArrowError> {
        self.fast_flush_if_full()?;
        if let Some(fast) = self.fast.as_mut() {
            fast.decoder.decode(&[])?;
        }
        self.fast_flush()
    }

    /// Leave the fast path: stream the file again on the exact path, passing over the rows
    /// already decoded, so that the error (or the bad rows) are found at their lines.
    async fn fall_back(&mut self, why: &arrow::error::ArrowError) -> Result<()> {
        let Some(fast) = self.fast.take() else {
            return Ok(());
        };
        tracing::debug!(
            location = %self.location,
            rows = fast.rows,
            error = %why,
            "CSV fast path rejected the input; re-reading on the exact path"
        );
        self.input = self.source.stream().await?;
        self.splitter = Some(self.format.splitter());
        self.header_pending = self.format.options.header;
        self.next_row = 0;
        self.skip_rows = fast.rows;
        self.pending.clear();
        self.positions.clear();
        Ok(())
    }

    fn push_chunk(&mut self, chunk: &[u8]) -> Result<()> {
        let Some(mut splitter) = self.splitter.take() else {
            return Err(Error::internal("the CSV splitter is in use"));
        };
        let r = splitter.push(chunk, &mut |rec| self.accept(&rec));
        self.splitter = Some(splitter);
        r
    }

    fn finish_input(&mut self) -> Result<()> {
        let Some(mut splitter) = self.splitter.take() else {
            return Err(Error::internal("the CSV splitter is in use"));
        };
        let r = splitter.finish(&mut |rec| self.accept(&rec));
        self.splitter = Some(splitter);
        r?;
        self.decode_pending()
    }

    /// The next batch, or `None` at the end.
    async fn next_batch(&mut self) -> Option<Result<RecordBatch>> {
        loop {
            if self.rows_left == Some(0) {
                return None;
            }
            if let Some(b) = self.ready.pop_front() {
                let b = match &mut self.rows_left {
                    Some(left) => {
                        let take = b.num_rows().min(*left);
                        *left -= take;
                        b.slice(0, take)
                    }
                    None => b,
                };
                return Some(Ok(b));
            }
            if self.eof {
                return None;
            }
            if self.fast.is_some() {
                let next = self.input.next().await;
                let r = match &next {
                    Some(Ok(chunk)) => self.fast_push(Some(chunk)),
                    Some(Err(_)) => Ok(()),
                    None => {
                        let r = self.fast_push(None);
                        if r.is_ok() {
                            self.eof = true;
                        }
                        r
                    }
                };
                let r = match (next, r) {
                    (Some(Err(e)), _) | (_, Err(FastStop::Failed(e))) => Err(e),
                    // Batches already decoded stay queued: the exact path passes over them.
                    (_, Err(FastStop::Rejected(why))) => self.fall_back(&why).await,
                    (_, Ok(())) => Ok(()),
                };
                if let Err(e) = r {
                    return Some(Err(self.fail(e)));
                }
                continue;
            }
            let r = match self.input.next().await {
                Some(Ok(chunk)) => self.push_chunk(&chunk),
                Some(Err(e)) => Err(e),
                None => {
                    self.eof = true;
                    self.finish_input()
                }
            };
            if let Err(e) = r {
                return Some(Err(self.fail(e)));
            }
        }
    }

    /// End the read with `e`.
    fn fail(&mut self, e: Error) -> Error {
        self.eof = true;
        self.fast = None;
        self.ready.clear();
        e.with_connector(NAME)
            .with_operation("read")
            .with_location(Location::file(self.location.clone()))
    }
}

/// `Null` columns (all values empty in the sample) become nullable `Utf8`.
fn null_to_utf8(schema: &Schema) -> Schema {
    Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| {
                if f.data_type() == &DataType::Null {
                    Arc::new(Field::new(f.name(), DataType::Utf8, true))
                } else {
                    f.clone()
                }
            })
            .collect::<Vec<_>>(),
    )
}

#[async_trait]
impl FileFormat for CsvFormat {
    fn name(&self) -> &'static str {
        NAME
    }

    fn extensions(&self) -> &'static [&'static str] {
        // A tab-separated dialect also claims `.csv` so that a configured format sees every file
        // of a directory; the default registry registers it first, so `.csv` stays comma.
        if self.delimiter == b'\t' {
            &["tsv", "tab", "csv"]
        } else {
            &["csv"]
        }
    }

    async fn infer_schema(&self, input: Arc<dyn ByteSource>) -> Result<SchemaRef> {
        let location = input.location().to_owned();
        let ctx = |e: Error| {
            e.with_connector(NAME)
                .with_operation("infer schema")
                .with_location(Location::file(location.clone()))
        };
        let mut stream = input.stream().await.map_err(ctx)?;
        let mut splitter = self.splitter();
        let mut sample = Vec::new();
        let mut first_fields = None;
        let records = std::sync::atomic::AtomicUsize::new(0);
        let wanted = self.options.infer_rows.max(1) + usize::from(self.options.header);
        let mut take = |rec: RawRecord<'_>| {
            let first = *first_fields.get_or_insert(rec.fields);
            // Ragged records are reported by the read; they must not skew the sample.
            if rec.fields == first && records.load(std::sync::atomic::Ordering::Relaxed) < wanted {
                sample.extend_from_slice(rec.bytes);
                records.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            Ok(())
        };
        loop {
            let Some(chunk) = stream.next().await else {
                splitter.finish(&mut take).map_err(ctx)?;
                break;
            };
            // In slices, to stop splitting once the sample is complete.
            for slice in chunk.map_err(ctx)?.chunks(SPLIT_SLICE) {
                splitter.push(slice, &mut take).map_err(ctx)?;
                if records.load(std::sync::atomic::Ordering::Relaxed) >= wanted {
                    break;
                }
            }
            if records.load(std::sync::atomic::Ordering::Relaxed) >= wanted {
                break;
            }
        }
        drop(stream);
        if sample.is_empty() {
            return Ok(Arc::new(Schema::empty()));
        }
        let (schema, _) = self
            .arrow_format()
            .infer_schema(Cursor::new(sample), None)
            .map_err(|e| ctx(Error::new(ErrorKind::InvalidInput, e.to_string())))?;
        Ok(Arc::new(null_to_utf8(&schema)))
    }

    async fn read(
        &self,
        input: Arc<dyn ByteSource>,
        options: FormatReadOptions,
    ) -> Result<SendableRecordBatchStream> {
        let schema = match options.schema.clone() {
            Some(s) => s,
            None => self.infer_schema(input.clone()).await?,
        };
        let location = input.location().to_owned();
        let projection = options
            .projection
            .as_ref()
            .map(|cols| {
                cols.iter()
                    .map(|c| {
                        schema.index_of(c).map_err(|_| {
                            Error::new(
                                ErrorKind::InvalidInput,
                                format!("column {c:?} does not exist in the CSV schema"),
                            )
                            .with_connector(NAME)
                            .with_operation("read")
                            .with_location(Location::file(location.clone()).with_column(c.clone()))
                        })
                    })
                    .collect::<Result<Vec<usize>>>()
            })
            .transpose()?;
        let out_schema = match &projection {
            Some(p) => Arc::new(schema.project(p)?),
            None => schema.clone(),
        };
        let stream = input.stream().await.map_err(|e| {
            e.with_connector(NAME)
                .with_operation("read")
                .with_location(Location::file(location.clone()))
        })?;
        let mut state = CsvRead {
            location,
            source: input,
            input: stream,
            fast: None,
            skip_rows: 0,
            splitter: Some(self.splitter()),
            schema,
            projection,
            out_schema: out_schema.clone(),
            format: self.clone(),
            header_pending: self.options.header,
            batch_rows: options.batch_rows.max(1),
            bad_rows: options.bad_rows,
            log: options.bad_row_log,
            pending: Vec::new(),
            positions: Vec::new(),
            next_row: 0,
            ready: std::collections::VecDeque::new(),
            rows_left: if options.filter.is_none() {
                options.limit
            } else {
                None
            },
            eof: false,
        };
        if state.bad_rows == BadRows::Fail {
            state.fast = Some(Fast {
                decoder: state.decoder(state.batch_rows),
                head: Some((Vec::new(), self.splitter())),
                rows: 0,
            });
        }
        let batches = futures::stream::unfold(state, |mut st| async move {
            st.next_batch().await.map(|b| (b, st))
        });
        Ok(RecordBatchStreamAdapter::boxed(out_schema, batches))
    }

    fn writer(&self, schema: SchemaRef) -> Result<Box<dyn FormatWriter>> {
        for f in schema.fields() {
            if f.data_type().is_nested() {
                return Err(Error::unsupported(format!(
                    "CSV cannot hold nested column {:?} of type {}",
                    f.name(),
                    f.data_type()
                ))
                .with_connector(NAME)
                .with_operation("write")
                .with_location(Location::default().with_column(f.name().clone())));
            }
        }
        let buf = SharedBuf::default();
        let mut b = arrow::csv::WriterBuilder::new()
            .with_header(self.options.header)
            .with_delimiter(self.delimiter)
            .with_quote(self.quote);
        if let Some(e) = self.escape {
            b = b.with_escape(e).with_double_quote(false);
        }
        Ok(Box::new(CsvWriter {
            writer: b.build(buf.clone()),
            buf,
            schema,
            started: false,
        }))
    }
}

struct CsvWriter {
    writer: arrow::csv::Writer<SharedBuf>,
    buf: SharedBuf,
    schema: SchemaRef,
    started: bool,
}

impl FormatWriter for CsvWriter {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.started = true;
        self.writer
            .write(batch)
            .map_err(|e| Error::from(e).with_connector(NAME).with_operation("write"))
    }

    fn take_bytes(&mut self) -> Bytes {
        self.buf.take()
    }

    fn finish(mut self: Box<Self>) -> Result<Bytes> {
        if !self.started {
            // An empty file still gets its header.
            let empty = RecordBatch::new_empty(self.schema.clone());
            self.write(&empty)?;
        }
        Ok(self.buf.take())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(input: &[&[u8]]) -> Vec<(u64, usize, Vec<u8>)> {
        let mut s = CsvFormat::default().splitter();
        let mut out = Vec::new();
        let mut f = |r: RawRecord<'_>| {
            out.push((r.line, r.fields, r.bytes.to_vec()));
            Ok(())
        };
        for chunk in input {
            s.push(chunk, &mut f).unwrap();
        }
        s.finish(&mut f).unwrap();
        out
    }

    #[test]
    fn splitter_tracks_lines_across_quoted_newlines_chunks_and_bom() {
        let recs = split(&[b"\xEF\xBB", b"\xBFa,b\r\n1,\"x\ny\"\n\n3", b",4"]);
        let lines: Vec<u64> = recs.iter().map(|r| r.0).collect();
        assert_eq!(lines, vec![1, 2, 5]);
        assert_eq!(recs[0].2, b"a,b\r".to_vec());
        assert_eq!(recs[1].1, 2);
        assert_eq!(recs[2].2, b"3,4\n".to_vec());
    }

    /// Every batch and the error (if any) of reading `data` in `chunk`-byte pieces.
    async fn read_chunked(
        data: &'static [u8],
        chunk: usize,
        bad_rows: BadRows,
        batch_rows: usize,
    ) -> (Vec<RecordBatch>, Option<Error>) {
        let format = CsvFormat::default();
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]));
        let input = Arc::new(
            crate::InMemoryBytes::new("chunked.csv", Bytes::from_static(data))
                .with_stream_chunk(chunk),
        );
        let options = FormatReadOptions {
            schema: Some(schema),
            batch_rows,
            bad_rows,
            ..FormatReadOptions::default()
        };
        let mut stream = format.read(input, options).await.unwrap();
        let mut batches = Vec::new();
        while let Some(b) = stream.next().await {
            match b {
                Ok(b) => batches.push(b),
                Err(e) => return (batches, Some(e)),
            }
        }
        (batches, None)
    }

    fn ids(batches: &[RecordBatch]) -> Vec<i64> {
        batches
            .iter()
            .flat_map(|b| {
                b.column(0)
                    .as_any()
                    .downcast_ref::<arrow::array::Int64Array>()
                    .unwrap()
                    .values()
                    .to_vec()
            })
            .collect()
    }

    const GOOD: &[u8] =
        b"\xEF\xBB\xBFid,name\r\n0,a\r\n1,\"two\nlines\"\r\n\r\n2,\"q\"\"d\"\n3,\n4,e\n5,f\n6,g";

    #[tokio::test]
    async fn fast_path_matches_the_exact_path_at_every_chunk_size() {
        let (exact, e) = read_chunked(GOOD, 1 << 20, BadRows::Skip, 2).await;
        assert!(e.is_none(), "{e:?}");
        let exact = arrow::compute::concat_batches(&exact[0].schema(), &exact).unwrap();
        assert_eq!(exact.num_rows(), 7);
        for chunk in 1..=GOOD.len() {
            for batch_rows in [1, 2, 3, 100] {
                let (fast, e) = read_chunked(GOOD, chunk, BadRows::Fail, batch_rows).await;
                assert!(e.is_none(), "chunk {chunk}: {e:?}");
                let fast = arrow::compute::concat_batches(&exact.schema(), &fast).unwrap();
                assert_eq!(fast, exact, "chunk {chunk}, batch_rows {batch_rows}");
            }
        }
    }

    #[tokio::test]
    async fn fast_path_falls_back_without_yielding_rows_twice() {
        // Row 5 (line 9) does not parse as an integer; rows 0-3 come in the first two batches.
        let bad: &'static [u8] = b"id,name\n0,a\n1,\"two\nlines\"\n2,c\n\n3,d\n4,e\nx,f\n6,g\n";
        for chunk in [1, 5, 64, 1 << 20] {
            let (batches, e) = read_chunked(bad, chunk, BadRows::Fail, 2).await;
            let e = e.expect("the bad row fails the read");
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
            assert_eq!(e.location().unwrap().line, Some(9), "{e}");
            assert_eq!(e.location().unwrap().row, Some(5), "{e}");
            assert_eq!(ids(&batches), vec![0, 1, 2, 3], "chunk {chunk}");
        }
        // A ragged row is found the same way.
        let ragged = b"id,name\n0,a\n1,b\n2,c,extra\n3,d\n";
        let (batches, e) = read_chunked(ragged, 3, BadRows::Fail, 1).await;
        let e = e.expect("the ragged row fails the read");
        assert_eq!(e.location().unwrap().line, Some(4), "{e}");
        assert_eq!(ids(&batches), vec![0, 1]);
        // A mismatched header is reported without falling back.
        let (batches, e) = read_chunked(b"id,nom\n0,a\n", 2, BadRows::Fail, 1).await;
        assert_eq!(e.unwrap().kind(), ErrorKind::SchemaMismatch);
        assert!(batches.is_empty());
    }

    #[test]
    fn strip_relative_line_positions() {
        assert_eq!(
            strip_relative_line(
                "Error while parsing value 'x' as type 'Int64' for column 0 at line 1. Row data: '[x]'"
            ),
            "Error while parsing value 'x' as type 'Int64' for column 0. Row data: '[x]'"
        );
    }
}
