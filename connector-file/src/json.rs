//! JSON codec: newline-delimited JSON and top-level arrays of objects, decoded with arrow-json's
//! push [`arrow::json::reader::Decoder`] (nested objects become structs, arrays lists).
//!
//! The layout is chosen by option or detected from the first non-whitespace byte (`[` means an
//! array). Values are split as bytes arrive: by line for NDJSON, by bracket depth (strings and
//! escapes respected) for arrays, so each value's line and byte offset are known. Values are
//! decoded `batch_rows` at a time; when arrow-json rejects a batch (invalid JSON, a value of the
//! wrong type), the batch is decoded again value by value to find the bad ones, which fail the
//! read with an [`ErrorKind::InvalidInput`] error naming the file, line and byte offset, or are
//! skipped and logged under [`BadRows::Skip`]. A structural error in an array (a missing
//! comma, a non-object element) cannot be skipped and always fails. Memory is bounded by one
//! batch of raw values plus one input chunk.
//!
//! Writers: arrow-json's `LineDelimitedWriter` and `ArrayWriter`.

use std::collections::VecDeque;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};
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

const NAME: &str = "json";

/// How JSON values are laid out in a file.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum JsonLayout {
    /// Read: detect from the first non-whitespace byte. Write: NDJSON.
    #[default]
    Auto,
    /// One object per line.
    Ndjson,
    /// One top-level array of objects.
    Array,
}

/// JSON options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct JsonOptions {
    /// Layout of the values.
    pub layout: JsonLayout,
    /// Values sampled to infer the schema. Default 1000.
    pub infer_rows: usize,
}

impl Default for JsonOptions {
    fn default() -> Self {
        Self {
            layout: JsonLayout::Auto,
            infer_rows: 1000,
        }
    }
}

/// The JSON [`FileFormat`].
#[derive(Debug, Clone, Default)]
pub struct JsonFormat {
    options: JsonOptions,
}

impl JsonFormat {
    /// A JSON format with `options`.
    #[must_use]
    pub fn new(options: JsonOptions) -> Self {
        Self { options }
    }

    /// The options.
    #[must_use]
    pub fn options(&self) -> &JsonOptions {
        &self.options
    }
}

/// One complete value as it appeared in the input.
struct RawValue<'a> {
    bytes: &'a [u8],
    line: u64,
    offset: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ArrayState {
    /// Before `[`.
    Open,
    /// After `[` or `,`: a value or (after `[`) `]`.
    Value { first: bool },
    /// Inside a value.
    In,
    /// After a value: `,` or `]`.
    Next,
    /// After `]`: only whitespace.
    Closed,
}

/// Splits a byte stream into raw JSON values, tracking lines and offsets.
struct Splitter {
    layout: JsonLayout,
    location: String,
    value: Vec<u8>,
    line: u64,
    offset: u64,
    value_line: u64,
    value_offset: u64,
    // NDJSON
    in_line: bool,
    // Array
    state: ArrayState,
    depth: u32,
    in_string: bool,
    escape: bool,
    /// Bytes of a byte-order mark seen at the start.
    bom: usize,
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

impl Splitter {
    fn new(layout: JsonLayout, location: String) -> Self {
        Self {
            layout,
            location,
            value: Vec::new(),
            line: 1,
            offset: 0,
            value_line: 1,
            value_offset: 0,
            in_line: false,
            state: ArrayState::Open,
            depth: 0,
            in_string: false,
            escape: false,
            bom: 0,
        }
    }

    fn syntax(&self, what: &str) -> Error {
        Error::new(ErrorKind::InvalidInput, format!("invalid JSON: {what}")).with_location(
            Location::file(self.location.clone())
                .with_line(self.line)
                .with_byte_offset(self.offset),
        )
    }

    fn push(
        &mut self,
        input: &[u8],
        on_value: &mut dyn FnMut(RawValue<'_>) -> Result<()>,
    ) -> Result<()> {
        for &b in input {
            // A UTF-8 byte-order mark at the start is dropped.
            if self.offset < 3 && self.offset == self.bom as u64 && BOM.get(self.bom) == Some(&b) {
                self.bom += 1;
                self.advance(b);
                continue;
            }
            if self.layout == JsonLayout::Auto {
                if b.is_ascii_whitespace() {
                    self.advance(b);
                    continue;
                }
                self.layout = if b == b'[' {
                    JsonLayout::Array
                } else {
                    JsonLayout::Ndjson
                };
            }
            match self.layout {
                JsonLayout::Array => self.array_byte(b, on_value)?,
                _ => self.ndjson_byte(b, on_value)?,
            }
            self.advance(b);
        }
        Ok(())
    }

    fn advance(&mut self, b: u8) {
        self.offset += 1;
        if b == b'\n' {
            self.line += 1;
        }
    }

    fn start_value(&mut self) {
        self.value.clear();
        self.value_line = self.line;
        self.value_offset = self.offset;
    }

    fn emit(&mut self, on_value: &mut dyn FnMut(RawValue<'_>) -> Result<()>) -> Result<()> {
        let end = self
            .value
            .iter()
            .rposition(|c| !c.is_ascii_whitespace())
            .map_or(0, |i| i + 1);
        if end == 0 {
            return Ok(());
        }
        on_value(RawValue {
            bytes: &self.value[..end],
            line: self.value_line,
            offset: self.value_offset,
        })
    }

    fn ndjson_byte(
        &mut self,
        b: u8,
        on_value: &mut dyn FnMut(RawValue<'_>) -> Result<()>,
    ) -> Result<()> {
        if b == b'\n' {
            if self.in_line {
                self.in_line = false;
                self.emit(on_value)?;
            }
            return Ok(());
        }
        if !self.in_line {
            if b.is_ascii_whitespace() {
                return Ok(());
            }
            self.in_line = true;
            self.start_value();
        }
        self.value.push(b);
        Ok(())
    }

    fn array_byte(
        &mut self,
        b: u8,
        on_value: &mut dyn FnMut(RawValue<'_>) -> Result<()>,
    ) -> Result<()> {
        match self.state {
            ArrayState::In => {
                self.value.push(b);
                if self.in_string {
                    if self.escape {
                        self.escape = false;
                    } else if b == b'\\' {
                        self.escape = true;
                    } else if b == b'"' {
                        self.in_string = false;
                    }
                    return Ok(());
                }
                match b {
                    b'"' => self.in_string = true,
                    b'{' | b'[' => self.depth += 1,
                    b'}' | b']' => {
                        self.depth -= 1;
                        if self.depth == 0 {
                            self.state = ArrayState::Next;
                            self.emit(on_value)?;
                        }
                    }
                    _ => {}
                }
                Ok(())
            }
            _ if b.is_ascii_whitespace() => Ok(()),
            ArrayState::Open if b == b'[' => {
                self.state = ArrayState::Value { first: true };
                Ok(())
            }
            ArrayState::Open => Err(self.syntax("expected '[' to open the array")),
            ArrayState::Value { first: true } if b == b']' => {
                self.state = ArrayState::Closed;
                Ok(())
            }
            ArrayState::Value { .. } if b == b'{' => {
                self.start_value();
                self.value.push(b);
                self.depth = 1;
                self.state = ArrayState::In;
                Ok(())
            }
            ArrayState::Value { .. } => Err(self.syntax("an array element is not an object")),
            ArrayState::Next if b == b',' => {
                self.state = ArrayState::Value { first: false };
                Ok(())
            }
            ArrayState::Next if b == b']' => {
                self.state = ArrayState::Closed;
                Ok(())
            }
            ArrayState::Next => Err(self.syntax("expected ',' or ']' after an array element")),
            ArrayState::Closed => Err(self.syntax("data after the end of the array")),
        }
    }

    fn finish(&mut self, on_value: &mut dyn FnMut(RawValue<'_>) -> Result<()>) -> Result<()> {
        match self.layout {
            JsonLayout::Array if self.state != ArrayState::Closed => {
                Err(self.syntax("the array is not closed (truncated file?)"))
            }
            JsonLayout::Ndjson if self.in_line => {
                self.in_line = false;
                self.emit(on_value)
            }
            _ => Ok(()),
        }
    }
}

/// The keys of a JSON object in document order (values ignored).
struct KeyOrder(Vec<String>);

impl<'de> Deserialize<'de> for KeyOrder {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = KeyOrder;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<KeyOrder, A::Error> {
                let mut keys = Vec::new();
                while let Some((k, _)) = map.next_entry::<String, serde::de::IgnoredAny>()? {
                    keys.push(k);
                }
                Ok(KeyOrder(keys))
            }
        }
        d.deserialize_map(Visitor)
    }
}

#[derive(Debug, Clone, Copy)]
struct Pos {
    start: usize,
    end: usize,
    line: u64,
    offset: u64,
    row: u64,
}

struct JsonRead {
    location: String,
    input: BoxStream<'static, Result<Bytes>>,
    splitter: Splitter,
    schema: SchemaRef,
    batch_rows: usize,
    bad_rows: BadRows,
    log: BadRowLog,
    pending: Vec<u8>,
    positions: Vec<Pos>,
    next_row: u64,
    ready: VecDeque<RecordBatch>,
    rows_left: Option<usize>,
    eof: bool,
}

impl JsonRead {
    fn decode(
        &self,
        bytes: &[u8],
        rows: usize,
    ) -> std::result::Result<Option<RecordBatch>, arrow::error::ArrowError> {
        let mut decoder = arrow::json::ReaderBuilder::new(self.schema.clone())
            .with_batch_size(rows.max(1))
            .build_decoder()?;
        let mut pos = 0;
        while pos < bytes.len() {
            let n = decoder.decode(&bytes[pos..])?;
            if n == 0 {
                break;
            }
            pos += n;
        }
        if !bytes[pos..].iter().all(u8::is_ascii_whitespace) {
            return Err(arrow::error::ArrowError::JsonError(
                "more values than expected".to_owned(),
            ));
        }
        decoder.flush()
    }

    fn accept(&mut self, v: &RawValue<'_>) -> Result<()> {
        let start = self.pending.len();
        self.pending.extend_from_slice(v.bytes);
        self.pending.push(b'\n');
        self.positions.push(Pos {
            start,
            end: self.pending.len(),
            line: v.line,
            offset: v.offset,
            row: self.next_row,
        });
        self.next_row += 1;
        if self.positions.len() >= self.batch_rows {
            self.decode_pending()?;
        }
        Ok(())
    }

    fn bad(&self, p: Pos, reason: String) -> Result<()> {
        let location = Location::file(self.location.clone())
            .with_line(p.line)
            .with_row(p.row)
            .with_byte_offset(p.offset);
        match self.bad_rows {
            BadRows::Fail => Err(Error::new(ErrorKind::InvalidInput, reason)
                .with_connector(NAME)
                .with_operation("read")
                .with_location(location)),
            BadRows::Skip => {
                self.log.record(location, reason);
                Ok(())
            }
        }
    }

    fn decode_pending(&mut self) -> Result<()> {
        let n = self.positions.len();
        if n == 0 {
            return Ok(());
        }
        let batch = match self.decode(&self.pending, n) {
            Ok(Some(b)) if b.num_rows() == n => b,
            _ => {
                let mut good = Vec::new();
                for p in self.positions.clone() {
                    match self.decode(&self.pending[p.start..p.end], 1) {
                        Ok(Some(b)) if b.num_rows() == 1 => good.push(b),
                        Ok(_) => self.bad(p, "not a JSON object".to_owned())?,
                        Err(e) => self.bad(p, e.to_string())?,
                    }
                }
                arrow::compute::concat_batches(&self.schema, &good)?
            }
        };
        self.pending.clear();
        self.positions.clear();
        if batch.num_rows() > 0 {
            self.ready.push_back(batch);
        }
        Ok(())
    }

    fn feed(&mut self, chunk: Option<&[u8]>) -> Result<()> {
        let mut splitter = std::mem::replace(
            &mut self.splitter,
            Splitter::new(JsonLayout::Auto, String::new()),
        );
        let r = match chunk {
            Some(c) => splitter.push(c, &mut |v| self.accept(&v)),
            None => splitter.finish(&mut |v| self.accept(&v)),
        };
        self.splitter = splitter;
        // Values split before a structural error are still decoded (and their errors come first).
        if r.is_err() || chunk.is_none() {
            self.decode_pending()?;
        }
        r
    }

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
            let r = match self.input.next().await {
                Some(Ok(chunk)) => self.feed(Some(&chunk)),
                Some(Err(e)) => Err(e),
                None => {
                    self.eof = true;
                    self.feed(None)
                }
            };
            if let Err(e) = r {
                self.eof = true;
                self.ready.clear();
                return Some(Err(e
                    .with_connector(NAME)
                    .with_operation("read")
                    .with_location(Location::file(self.location.clone()))));
            }
        }
    }
}

/// Fields inferred as `Null` (only nulls in the sample) become nullable `Utf8`, recursively.
fn null_to_utf8(fields: &Fields) -> Fields {
    fields
        .iter()
        .map(|f| {
            let dt = match f.data_type() {
                DataType::Null => DataType::Utf8,
                DataType::Struct(inner) => DataType::Struct(null_to_utf8(inner)),
                DataType::List(item) if item.data_type() == &DataType::Null => DataType::List(
                    Arc::new(item.as_ref().clone().with_data_type(DataType::Utf8)),
                ),
                other => other.clone(),
            };
            Arc::new(Field::new(f.name(), dt, true))
        })
        .collect()
}

#[async_trait]
impl FileFormat for JsonFormat {
    fn name(&self) -> &'static str {
        NAME
    }

    fn extensions(&self) -> &'static [&'static str] {
        &["json", "jsonl", "ndjson"]
    }

    async fn infer_schema(&self, input: Arc<dyn ByteSource>) -> Result<SchemaRef> {
        let location = input.location().to_owned();
        let ctx = |e: Error| {
            e.with_connector(NAME)
                .with_operation("infer schema")
                .with_location(Location::file(location.clone()))
        };
        let mut stream = input.stream().await.map_err(ctx)?;
        let mut splitter = Splitter::new(self.options.layout, location.clone());
        let wanted = self.options.infer_rows.max(1);
        let mut values: Vec<serde_json::Value> = Vec::new();
        let mut order: Vec<String> = Vec::new();
        let taken = std::sync::atomic::AtomicUsize::new(0);
        let mut take = |v: RawValue<'_>| {
            if values.len() < wanted {
                taken.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let parsed = serde_json::from_slice(v.bytes).map_err(|e| {
                    Error::new(ErrorKind::InvalidInput, format!("invalid JSON: {e}")).with_location(
                        Location::file(location.clone())
                            .with_line(v.line)
                            .with_byte_offset(v.offset),
                    )
                })?;
                values.push(parsed);
                // serde_json maps sort keys; remember the order keys first appear in.
                if let Ok(KeyOrder(keys)) = serde_json::from_slice::<KeyOrder>(v.bytes) {
                    for k in keys {
                        if !order.contains(&k) {
                            order.push(k);
                        }
                    }
                }
            }
            Ok(())
        };
        loop {
            let Some(chunk) = stream.next().await else {
                splitter.finish(&mut take).map_err(ctx)?;
                break;
            };
            splitter
                .push(&chunk.map_err(ctx)?, &mut take)
                .map_err(ctx)?;
            if taken.load(std::sync::atomic::Ordering::Relaxed) >= wanted {
                break;
            }
        }
        drop(stream);
        let schema = arrow::json::reader::infer_json_schema_from_iterator(values.iter().map(Ok))
            .map_err(|e| ctx(Error::new(ErrorKind::InvalidInput, e.to_string())))?;
        let fields = null_to_utf8(schema.fields());
        let mut ordered: Vec<_> = fields.iter().cloned().collect();
        ordered.sort_by_key(|f| {
            order
                .iter()
                .position(|k| k == f.name())
                .unwrap_or(usize::MAX)
        });
        Ok(Arc::new(Schema::new(ordered)))
    }

    async fn read(
        &self,
        input: Arc<dyn ByteSource>,
        options: FormatReadOptions,
    ) -> Result<SendableRecordBatchStream> {
        let full = match options.schema.clone() {
            Some(s) => s,
            None => self.infer_schema(input.clone()).await?,
        };
        let location = input.location().to_owned();
        // arrow-json ignores fields the schema does not name: decoding with the projected schema
        // skips building the other columns.
        let schema = match &options.projection {
            Some(cols) => Arc::new(Schema::new(
                cols.iter()
                    .map(|c| {
                        full.field_with_name(c).cloned().map_err(|_| {
                            Error::new(
                                ErrorKind::InvalidInput,
                                format!("column {c:?} does not exist in the JSON schema"),
                            )
                            .with_connector(NAME)
                            .with_operation("read")
                            .with_location(Location::file(location.clone()).with_column(c.clone()))
                        })
                    })
                    .collect::<Result<Vec<_>>>()?,
            )),
            None => full,
        };
        let stream = input.stream().await.map_err(|e| {
            e.with_connector(NAME)
                .with_operation("read")
                .with_location(Location::file(location.clone()))
        })?;
        let state = JsonRead {
            splitter: Splitter::new(self.options.layout, location.clone()),
            location,
            input: stream,
            schema: schema.clone(),
            batch_rows: options.batch_rows.max(1),
            bad_rows: options.bad_rows,
            log: options.bad_row_log,
            pending: Vec::new(),
            positions: Vec::new(),
            next_row: 0,
            ready: VecDeque::new(),
            rows_left: if options.filter.is_none() {
                options.limit
            } else {
                None
            },
            eof: false,
        };
        let batches = futures::stream::unfold(state, |mut st| async move {
            st.next_batch().await.map(|b| (b, st))
        });
        Ok(RecordBatchStreamAdapter::boxed(schema, batches))
    }

    fn writer(&self, _schema: SchemaRef) -> Result<Box<dyn FormatWriter>> {
        // Explicit nulls: every object carries every column, in schema order, so that
        // inference on read finds the columns in the order they were written.
        let b = arrow::json::WriterBuilder::new().with_explicit_nulls(true);
        Ok(match self.options.layout {
            JsonLayout::Array => Box::new(JsonWriter::Array(b.build(Vec::new()))),
            JsonLayout::Auto | JsonLayout::Ndjson => {
                Box::new(JsonWriter::Lines(b.build(Vec::new())))
            }
        })
    }
}

enum JsonWriter {
    Lines(arrow::json::LineDelimitedWriter<Vec<u8>>),
    Array(arrow::json::ArrayWriter<Vec<u8>>),
}

fn write_error(e: arrow::error::ArrowError) -> Error {
    Error::from(e).with_connector(NAME).with_operation("write")
}

impl FormatWriter for JsonWriter {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        match self {
            Self::Lines(w) => w.write(batch),
            Self::Array(w) => w.write(batch),
        }
        .map_err(write_error)
    }

    fn take_bytes(&mut self) -> Bytes {
        let buf = match self {
            Self::Lines(w) => w.get_mut(),
            Self::Array(w) => w.get_mut(),
        };
        Bytes::from(std::mem::take(buf))
    }

    fn finish(mut self: Box<Self>) -> Result<Bytes> {
        match self.as_mut() {
            Self::Lines(w) => w.finish(),
            Self::Array(w) => w.finish(),
        }
        .map_err(write_error)?;
        Ok(self.take_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(layout: JsonLayout, chunks: &[&str]) -> Result<Vec<(u64, u64, String)>> {
        let mut s = Splitter::new(layout, "x.json".into());
        let mut out = Vec::new();
        let mut f = |v: RawValue<'_>| {
            out.push((
                v.line,
                v.offset,
                String::from_utf8_lossy(v.bytes).into_owned(),
            ));
            Ok(())
        };
        for c in chunks {
            s.push(c.as_bytes(), &mut f)?;
        }
        s.finish(&mut f)?;
        Ok(out)
    }

    #[test]
    fn array_values_split_across_chunks_with_strings_and_nesting() {
        let v = split(
            JsonLayout::Auto,
            &[
                " [ {\"a\": \"x]}\\\"\", \"b\": [1, {\"c\"",
                ": 2}]},\n {\"a\":",
                " null} ]\n",
            ],
        )
        .unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].2, "{\"a\": \"x]}\\\"\", \"b\": [1, {\"c\": 2}]}");
        assert_eq!((v[1].0, v[1].1), (2, 40));
        let e = split(JsonLayout::Array, &["[{\"a\":1} {\"a\":2}]"]).unwrap_err();
        assert_eq!(e.location().unwrap().byte_offset, Some(9));
        assert!(split(JsonLayout::Array, &["[{\"a\":1}"]).is_err());
        assert!(split(JsonLayout::Array, &["[1]"]).is_err());
    }

    #[test]
    fn ndjson_lines_skip_blanks() {
        let v = split(JsonLayout::Auto, &["{\"a\":1}\r\n\n  {\"a\"", ":2}"]).unwrap();
        let lines: Vec<u64> = v.iter().map(|x| x.0).collect();
        assert_eq!(lines, vec![1, 3]);
        assert_eq!(v[0].2, "{\"a\":1}");
    }
}
