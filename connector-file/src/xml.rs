//! XML documents as rows, read with [`quick_xml`]'s async reader chunk by chunk (memory is
//! bounded by one chunk, one row and one batch), and written as `<rows><row>…</row></rows>`.
//!
//! # Reading
//! A *row* is an element named [`XmlFormat::row_tag`] (at any depth, not inside another row),
//! or, without a row tag, every child element of the root. Within a row:
//!
//! - each attribute of the row element becomes a column named
//!   `<attribute_prefix><name>` (`@id`);
//! - each child element becomes a column named after it; its text (entities and character
//!   references resolved, CDATA included) is the value; the child's own attributes become
//!   columns `<child><attribute_prefix><name>` (`price@currency`);
//! - a child that contains elements becomes a `Utf8` column holding its **inner XML** (as it
//!   was written, e.g. `<tag>a</tag><tag>b</tag>`); a child that repeats within one row holds
//!   the **outer XML** of all its occurrences, concatenated;
//! - text directly inside the row element (not only whitespace) goes to
//!   [`XmlFormat::text_column`].
//!
//! Names are local names (namespace prefixes are dropped; `xmlns` attributes are skipped).
//! A row without a column reads null there; an empty element reads as an empty string in a
//! `Utf8` column and as null otherwise.
//!
//! Types are inferred over the first [`XmlFormat::infer_rows`] rows: `Boolean` (`true`/`false`),
//! `Int64`, `Float64`, `Date32` (`YYYY-MM-DD`), `Timestamp(Microsecond, None)` (ISO 8601
//! without offset), `Timestamp(Microsecond, "UTC")` (with `Z` or an offset), otherwise `Utf8`.
//! Columns first seen after the sample are ignored; pass an explicit schema
//! ([`FormatReadOptions::schema`]) to read them. A value that does not convert fails the read
//! with [`ErrorKind::InvalidInput`] at the file, line and column of the row (or is skipped and
//! recorded under [`BadRows::Skip`]).
//!
//! Malformed XML (mismatched or unclosed tags, text or a second element outside the root,
//! unknown entities, invalid UTF-8, no root element) fails with [`ErrorKind::InvalidInput`]
//! naming the file, the 1-based line and column (a `column` context value, in bytes) and the
//! byte offset.
//!
//! # Writing
//! `<?xml version="1.0" encoding="UTF-8"?>` then `<{root_tag}>`, one `<{write_row_tag}>` per
//! row and one child element per non-null value. Columns whose name starts with the attribute
//! prefix are written as attributes of the row element, so files read by this format round
//! trip. Characters that are not allowed in an XML name are replaced by `_`. Values are
//! escaped; nested types are JSON text, binary is hex. Text with characters XML 1.0 cannot
//! carry (control characters other than tab, newline and carriage return) fails with
//! [`ErrorKind::InvalidInput`].

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};

use arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Float64Array, Int64Array, StringArray, StringBuilder,
    TimestampMicrosecondArray,
};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, NaiveDate, NaiveDateTime};
use connector_core::{
    Error, ErrorKind, Location, RecordBatchStreamAdapter, Result, SendableRecordBatchStream,
};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use quick_xml::XmlVersion;
use quick_xml::events::{BytesStart, Event};
use serde::{Deserialize, Serialize};
use tokio_util::io::StreamReader;

use crate::excel::value_texts;
use crate::format::{BadRows, ByteSource, FileFormat, FormatReadOptions, FormatWriter};

const NAME: &str = "xml";

/// XML rows (see the [module docs](self)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default)]
pub struct XmlFormat {
    /// Name of the repeated record element; `None`: every child of the root is a row.
    pub row_tag: Option<String>,
    /// Prefix of columns read from attributes (and written as attributes).
    pub attribute_prefix: String,
    /// Column for text directly inside a row element.
    pub text_column: String,
    /// Rows examined to infer the schema (at least 1).
    pub infer_rows: usize,
    /// Root element of written files.
    pub root_tag: String,
    /// Row element of written files.
    pub write_row_tag: String,
}

impl Default for XmlFormat {
    fn default() -> Self {
        Self {
            row_tag: None,
            attribute_prefix: "@".to_owned(),
            text_column: "#text".to_owned(),
            infer_rows: 1000,
            root_tag: "rows".to_owned(),
            write_row_tag: "row".to_owned(),
        }
    }
}

impl XmlFormat {
    /// Rows are the elements named `tag`.
    #[must_use]
    pub fn with_row_tag(mut self, tag: impl Into<String>) -> Self {
        self.row_tag = Some(tag.into());
        self
    }

    /// Written files use these root and row tags.
    #[must_use]
    pub fn with_write_tags(mut self, root: impl Into<String>, row: impl Into<String>) -> Self {
        self.root_tag = root.into();
        self.write_row_tag = row.into();
        self
    }
}

// ---------------------------------------------------------------------------------------------
// Line tracking

/// Maps byte offsets to lines while the bytes stream through, keeping only the chunks not yet
/// passed. Queries must not go backwards (rows and errors only move forward).
#[derive(Debug, Default)]
struct Lines {
    chunks: VecDeque<(u64, Bytes)>,
    total: u64,
    cursor: u64,
    line: u64,
    line_start: u64,
}

impl Lines {
    fn push(&mut self, chunk: Bytes) {
        let len = chunk.len() as u64;
        self.chunks.push_back((self.total, chunk));
        self.total += len;
    }

    /// 1-based line and byte column of `pos`.
    fn at(&mut self, pos: u64) -> (u64, u64) {
        let pos = pos.min(self.total);
        while self.cursor < pos {
            let Some((start, chunk)) = self.chunks.front() else {
                break;
            };
            let end = start + chunk.len() as u64;
            if end <= self.cursor {
                self.chunks.pop_front();
                continue;
            }
            let from = (self.cursor - start) as usize;
            let to = (pos.min(end) - start) as usize;
            for (i, b) in chunk[from..to].iter().enumerate() {
                if *b == b'\n' {
                    self.line += 1;
                    self.line_start = start + (from + i) as u64 + 1;
                }
            }
            self.cursor = start + to as u64;
        }
        (self.line + 1, pos.saturating_sub(self.line_start) + 1)
    }
}

// ---------------------------------------------------------------------------------------------
// Row parsing

type ByteReader = StreamReader<BoxStream<'static, std::io::Result<Bytes>>, Bytes>;

/// One row: (column, value) pairs in document order, and where it started.
#[derive(Debug, Default)]
struct XmlRow {
    line: u64,
    column: u64,
    offset: u64,
    values: Vec<(String, String)>,
}

/// The child element being read inside a row.
struct Child {
    name: String,
    /// `name attrs` as written, to rebuild the outer XML.
    start_tag: String,
    qname: String,
    text: String,
    inner: quick_xml::Writer<Vec<u8>>,
    complex: bool,
}

struct RowParser {
    reader: quick_xml::Reader<ByteReader>,
    buf: Vec<u8>,
    lines: Arc<Mutex<Lines>>,
    file: String,
    row_tag: Option<String>,
    prefix: String,
    text_column: String,
    depth: usize,
    seen_root: bool,
    root_closed: bool,
    done: bool,
}

fn local(qname: &str) -> &str {
    qname.rsplit(':').next().unwrap_or(qname)
}

impl RowParser {
    async fn open(format: &XmlFormat, input: &Arc<dyn ByteSource>) -> Result<Self> {
        let lines = Arc::new(Mutex::new(Lines::default()));
        let tracker = lines.clone();
        let stream = input
            .stream()
            .await?
            .inspect_ok(move |chunk| {
                tracker
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(chunk.clone());
            })
            .map_err(std::io::Error::other)
            .boxed();
        let mut reader = quick_xml::Reader::from_reader(StreamReader::new(stream));
        reader.config_mut().trim_text(false);
        reader.config_mut().check_end_names = true;
        Ok(Self {
            reader,
            buf: Vec::new(),
            lines,
            file: input.location().to_owned(),
            row_tag: format.row_tag.clone(),
            prefix: format.attribute_prefix.clone(),
            text_column: format.text_column.clone(),
            depth: 0,
            seen_root: false,
            root_closed: false,
            done: false,
        })
    }

    fn position(&self, pos: u64) -> (u64, u64) {
        self.lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .at(pos)
    }

    /// An error about the input at byte `pos`.
    fn error_at(&mut self, pos: u64, message: impl Into<String>) -> Error {
        self.done = true;
        let (line, column) = self.position(pos);
        Error::invalid_input(
            message,
            Location::file(&self.file)
                .with_line(line)
                .with_byte_offset(pos),
        )
        .with_context("column", column)
    }

    fn is_row(&self, name: &str) -> bool {
        match &self.row_tag {
            Some(t) => local(name) == t,
            None => self.depth == 1,
        }
    }

    /// Attributes of an element as (local name, value), skipping namespace declarations.
    fn attributes(&mut self, e: &BytesStart<'_>) -> Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        let mut failed = None;
        for a in e.attributes() {
            match a {
                Ok(a) => {
                    let key = a.key.0;
                    if key == "xmlns" || key.starts_with("xmlns:") {
                        continue;
                    }
                    match a.normalized_value(XmlVersion::Implicit1_0) {
                        Ok(v) => out.push((local(key).to_owned(), v.into_owned())),
                        Err(err) => {
                            failed = Some(format!("bad value of attribute '{key}': {err}"));
                            break;
                        }
                    }
                }
                Err(err) => {
                    failed = Some(format!("bad attribute: {err}"));
                    break;
                }
            }
        }
        if let Some(msg) = failed {
            let pos = self.reader.buffer_position();
            return Err(self.error_at(pos, msg));
        }
        Ok(out)
    }

    /// The next row, or `None` at the end of the document.
    async fn next_row(&mut self) -> Result<Option<XmlRow>> {
        let mut row: Option<XmlRow> = None;
        let mut row_depth = 0usize;
        let mut child: Option<Child> = None;
        let mut row_text = String::new();
        // column → (index in values, outer XML of its first occurrence, occurrences)
        let mut seen: HashMap<String, (usize, String, usize)> = HashMap::new();
        loop {
            if self.done {
                return Ok(None);
            }
            self.buf.clear();
            let before = self.reader.buffer_position();
            let event = match self.reader.read_event_into_async(&mut self.buf).await {
                Ok(e) => e.into_owned(),
                Err(e) => {
                    let pos = self.reader.error_position();
                    if let quick_xml::Error::Io(io) = &e
                        && let Some(ours) = io.get_ref().and_then(|i| i.downcast_ref::<Error>())
                    {
                        self.done = true;
                        return Err(Error::new(ours.kind(), ours.to_string())
                            .with_location(Location::file(&self.file)));
                    }
                    return Err(self.error_at(pos, format!("malformed XML: {e}")));
                }
            };
            let empty = matches!(event, Event::Empty(_));
            match event {
                Event::Start(e) | Event::Empty(e) if row.is_none() => {
                    let name = e.name().0.to_owned();
                    if self.depth == 0 {
                        if self.root_closed || self.seen_root {
                            return Err(
                                self.error_at(before, format!("a second root element <{name}>"))
                            );
                        }
                        self.seen_root = true;
                    }
                    if self.is_row(&name) {
                        let (line, column) = self.position(before);
                        let mut r = XmlRow {
                            line,
                            column,
                            offset: before,
                            values: Vec::new(),
                        };
                        for (k, v) in self.attributes(&e)? {
                            r.values.push((format!("{}{k}", self.prefix), v));
                        }
                        if empty {
                            if self.depth == 0 {
                                self.root_closed = true;
                            }
                            return Ok(Some(r));
                        }
                        row = Some(r);
                        row_depth = self.depth;
                    } else if empty && self.depth == 0 {
                        self.root_closed = true;
                    }
                    if !empty {
                        self.depth += 1;
                    }
                }
                Event::Start(e) | Event::Empty(e) => {
                    let qname = e.name().0.to_owned();
                    if self.depth == row_depth + 1 {
                        let name = local(&qname).to_owned();
                        let attrs = self.attributes(&e)?;
                        if let Some(r) = row.as_mut() {
                            for (k, v) in attrs {
                                r.values.push((format!("{name}{}{k}", self.prefix), v));
                            }
                        }
                        let start_tag = format!("{qname}{}", e.attributes_raw());
                        let c = Child {
                            name,
                            start_tag,
                            qname,
                            text: String::new(),
                            inner: quick_xml::Writer::new(Vec::new()),
                            complex: false,
                        };
                        if empty {
                            finish_child(row.as_mut(), &mut seen, c);
                        } else {
                            child = Some(c);
                        }
                    } else if let Some(c) = child.as_mut() {
                        c.complex = true;
                        let ev = if empty {
                            Event::Empty(e)
                        } else {
                            Event::Start(e)
                        };
                        c.inner
                            .write_event(ev)
                            .map_err(|err| Error::internal(format!("cannot copy XML: {err}")))?;
                    }
                    if !empty {
                        self.depth += 1;
                    }
                }
                Event::End(e) => {
                    self.depth = self.depth.saturating_sub(1);
                    if self.depth == 0 {
                        self.root_closed = true;
                    }
                    if row.is_some() {
                        if self.depth == row_depth {
                            let mut r = row.take().unwrap_or_default();
                            if !row_text.trim().is_empty() {
                                r.values.push((
                                    self.text_column.clone(),
                                    std::mem::take(&mut row_text),
                                ));
                            }
                            let end = self.reader.buffer_position();
                            self.position(end);
                            return Ok(Some(r));
                        } else if self.depth == row_depth + 1 {
                            if let Some(c) = child.take() {
                                finish_child(row.as_mut(), &mut seen, c);
                            }
                        } else if let Some(c) = child.as_mut() {
                            c.inner.write_event(Event::End(e)).map_err(|err| {
                                Error::internal(format!("cannot copy XML: {err}"))
                            })?;
                        }
                    }
                }
                Event::Text(t) => {
                    let text = t.xml_content(XmlVersion::Implicit1_0).into_owned();
                    self.text(
                        &mut child,
                        &mut row_text,
                        row.is_some(),
                        &text,
                        Event::Text(t),
                        before,
                    )?;
                }
                Event::CData(c) => {
                    let text = c.xml_content(XmlVersion::Implicit1_0).into_owned();
                    self.text(
                        &mut child,
                        &mut row_text,
                        row.is_some(),
                        &text,
                        Event::CData(c),
                        before,
                    )?;
                }
                Event::GeneralRef(r) => {
                    let resolved = match r.resolve_char_ref() {
                        Ok(Some(ch)) => ch.to_string(),
                        Ok(None) => match quick_xml::escape::resolve_predefined_entity(&r) {
                            Some(s) => s.to_owned(),
                            None => {
                                return Err(
                                    self.error_at(before, format!("unknown entity &{};", &*r))
                                );
                            }
                        },
                        Err(e) => {
                            return Err(self.error_at(
                                before,
                                format!("bad character reference &{};: {e}", &*r),
                            ));
                        }
                    };
                    self.text(
                        &mut child,
                        &mut row_text,
                        row.is_some(),
                        &resolved,
                        Event::GeneralRef(r),
                        before,
                    )?;
                }
                Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
                Event::Eof => {
                    self.done = true;
                    let end = self.reader.buffer_position();
                    if self.depth > 0 || row.is_some() {
                        return Err(self.error_at(
                            end,
                            "unexpected end of the document: an element is not closed",
                        ));
                    }
                    if !self.seen_root {
                        return Err(self.error_at(end, "no root element"));
                    }
                    return Ok(None);
                }
            }
        }
    }

    /// Handle character data (text, CDATA or a resolved reference).
    fn text(
        &mut self,
        child: &mut Option<Child>,
        row_text: &mut String,
        in_row: bool,
        text: &str,
        raw: Event<'_>,
        pos: u64,
    ) -> Result<()> {
        if let Some(c) = child.as_mut() {
            c.text.push_str(text);
            c.inner
                .write_event(raw)
                .map_err(|err| Error::internal(format!("cannot copy XML: {err}")))?;
        } else if in_row {
            row_text.push_str(text);
        } else if self.depth == 0 && !text.trim().is_empty() {
            return Err(self.error_at(pos, "text outside the root element"));
        }
        Ok(())
    }
}

/// Store a finished child's value in the row (repeated children become their outer XML).
fn finish_child(
    row: Option<&mut XmlRow>,
    seen: &mut HashMap<String, (usize, String, usize)>,
    c: Child,
) {
    let Some(row) = row else { return };
    let inner = String::from_utf8_lossy(&c.inner.into_inner()).into_owned();
    let outer = format!("<{}>{inner}</{}>", c.start_tag, c.qname);
    let value = if c.complex { inner } else { c.text };
    match seen.get_mut(&c.name) {
        None => {
            seen.insert(c.name.clone(), (row.values.len(), outer, 1));
            row.values.push((c.name, value));
        }
        Some((idx, first_outer, count)) => {
            if *count == 1 {
                row.values[*idx].1 = std::mem::take(first_outer);
            }
            *count += 1;
            row.values[*idx].1.push_str(&outer);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Types

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Null,
    Bool,
    Int,
    Float,
    Date,
    Ts,
    TsTz,
    Str,
}

impl Kind {
    fn of(v: &str) -> Self {
        let t = v.trim();
        if t.is_empty() {
            Self::Null
        } else if t.eq_ignore_ascii_case("true") || t.eq_ignore_ascii_case("false") {
            Self::Bool
        } else if t.parse::<i64>().is_ok() {
            Self::Int
        } else if looks_numeric(t) && t.parse::<f64>().is_ok() {
            Self::Float
        } else if NaiveDate::parse_from_str(t, "%Y-%m-%d").is_ok() {
            Self::Date
        } else if parse_naive(t).is_some() {
            Self::Ts
        } else if DateTime::parse_from_rfc3339(t).is_ok() {
            Self::TsTz
        } else {
            Self::Str
        }
    }

    fn merge(self, other: Self) -> Self {
        match (self, other) {
            (Self::Null, x) | (x, Self::Null) => x,
            (a, b) if a == b => a,
            (Self::Int, Self::Float) | (Self::Float, Self::Int) => Self::Float,
            (Self::Date, Self::Ts) | (Self::Ts, Self::Date) => Self::Ts,
            _ => Self::Str,
        }
    }

    fn data_type(self) -> DataType {
        match self {
            Self::Null | Self::Str => DataType::Utf8,
            Self::Bool => DataType::Boolean,
            Self::Int => DataType::Int64,
            Self::Float => DataType::Float64,
            Self::Date => DataType::Date32,
            Self::Ts => DataType::Timestamp(TimeUnit::Microsecond, None),
            Self::TsTz => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        }
    }
}

fn looks_numeric(t: &str) -> bool {
    t.bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.' | b'e' | b'E'))
}

fn parse_naive(t: &str) -> Option<NaiveDateTime> {
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(t, f).ok())
}

/// One converted value.
enum Val {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Date(i32),
    Micros(i64),
    Str(String),
}

fn convert(v: &str, target: &DataType) -> std::result::Result<Val, String> {
    let t = v.trim();
    let is_text = matches!(
        target,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    );
    if t.is_empty() && !is_text {
        return Ok(Val::Null);
    }
    let short: String = t.chars().take(40).collect();
    let bad = || format!("cannot convert '{short}' to {target}");
    Ok(match target {
        _ if is_text => Val::Str(v.to_owned()),
        DataType::Boolean => match t.to_ascii_lowercase().as_str() {
            "true" | "1" => Val::Bool(true),
            "false" | "0" => Val::Bool(false),
            _ => return Err(bad()),
        },
        DataType::Int64 => Val::Int(t.parse().map_err(|_| bad())?),
        DataType::Float64 => Val::Float(t.parse().map_err(|_| bad())?),
        DataType::Date32 => {
            let d = NaiveDate::parse_from_str(t, "%Y-%m-%d").map_err(|_| bad())?;
            Val::Date(d.signed_duration_since(NaiveDate::default()).num_days() as i32)
        }
        DataType::Timestamp(TimeUnit::Microsecond, tz) => {
            let us = match parse_naive(t) {
                Some(n) if tz.is_none() => n.and_utc().timestamp_micros(),
                _ => match DateTime::parse_from_rfc3339(t) {
                    Ok(d) => d.timestamp_micros(),
                    Err(_) => parse_naive(t).ok_or_else(bad)?.and_utc().timestamp_micros(),
                },
            };
            Val::Micros(us)
        }
        other => {
            let one: ArrayRef = Arc::new(StringArray::from(vec![t]));
            let opts = CastOptions {
                safe: false,
                ..CastOptions::default()
            };
            cast_with_options(&one, other, &opts).map_err(|e| format!("{}: {e}", bad()))?;
            Val::Str(t.to_owned())
        }
    })
}

/// Column builders for one batch.
struct Columns {
    schema: SchemaRef,
    index: HashMap<String, usize>,
    values: Vec<Vec<Val>>,
    rows: usize,
}

impl Columns {
    fn new(schema: SchemaRef) -> Self {
        let index = schema
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| (f.name().clone(), i))
            .collect();
        let values = schema.fields().iter().map(|_| Vec::new()).collect();
        Self {
            schema,
            index,
            values,
            rows: 0,
        }
    }

    /// Convert and append a row, or say which column failed and why.
    fn push(&mut self, row: &XmlRow) -> std::result::Result<(), (String, String)> {
        let mut converted: Vec<Option<Val>> = (0..self.values.len()).map(|_| None).collect();
        for (name, v) in &row.values {
            if let Some(&i) = self.index.get(name) {
                let f = self.schema.field(i);
                converted[i] = Some(convert(v, f.data_type()).map_err(|e| (name.clone(), e))?);
            }
        }
        for (i, f) in self.schema.fields().iter().enumerate() {
            if !f.is_nullable() && matches!(converted[i], None | Some(Val::Null)) {
                return Err((
                    f.name().clone(),
                    "missing value in a non-nullable column".to_owned(),
                ));
            }
        }
        for (col, v) in self.values.iter_mut().zip(converted) {
            col.push(v.unwrap_or(Val::Null));
        }
        self.rows += 1;
        Ok(())
    }

    fn finish(&mut self) -> Result<RecordBatch> {
        let mut arrays = Vec::with_capacity(self.values.len());
        for (f, vals) in self.schema.fields().iter().zip(self.values.iter_mut()) {
            let vals = std::mem::take(vals);
            arrays.push(build(vals, f.data_type())?);
        }
        let rows = std::mem::take(&mut self.rows);
        Ok(RecordBatch::try_new_with_options(
            self.schema.clone(),
            arrays,
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )?)
    }
}

fn build(vals: Vec<Val>, target: &DataType) -> Result<ArrayRef> {
    let arr: ArrayRef = match target {
        DataType::Boolean => Arc::new(
            vals.iter()
                .map(|v| if let Val::Bool(x) = v { Some(*x) } else { None })
                .collect::<BooleanArray>(),
        ),
        DataType::Int64 => Arc::new(
            vals.iter()
                .map(|v| if let Val::Int(x) = v { Some(*x) } else { None })
                .collect::<Int64Array>(),
        ),
        DataType::Float64 => Arc::new(
            vals.iter()
                .map(|v| {
                    if let Val::Float(x) = v {
                        Some(*x)
                    } else {
                        None
                    }
                })
                .collect::<Float64Array>(),
        ),
        DataType::Date32 => Arc::new(
            vals.iter()
                .map(|v| if let Val::Date(x) = v { Some(*x) } else { None })
                .collect::<Date32Array>(),
        ),
        DataType::Timestamp(TimeUnit::Microsecond, tz) => Arc::new(
            vals.iter()
                .map(|v| {
                    if let Val::Micros(x) = v {
                        Some(*x)
                    } else {
                        None
                    }
                })
                .collect::<TimestampMicrosecondArray>()
                .with_timezone_opt(tz.clone()),
        ),
        _ => {
            let mut b = StringBuilder::new();
            for v in vals {
                b.append_option(if let Val::Str(x) = v { Some(x) } else { None });
            }
            let a: ArrayRef = Arc::new(b.finish());
            if target == &DataType::Utf8 {
                a
            } else {
                let opts = CastOptions {
                    safe: false,
                    ..CastOptions::default()
                };
                cast_with_options(&a, target, &opts)?
            }
        }
    };
    Ok(arr)
}

// ---------------------------------------------------------------------------------------------
// FileFormat

impl XmlFormat {
    async fn infer(&self, input: &Arc<dyn ByteSource>) -> Result<SchemaRef> {
        let mut parser = RowParser::open(self, input).await?;
        let mut order: Vec<String> = Vec::new();
        let mut kinds: HashMap<String, Kind> = HashMap::new();
        let mut n = 0;
        while n < self.infer_rows.max(1) {
            let Some(row) = parser.next_row().await? else {
                break;
            };
            for (name, v) in &row.values {
                let k = Kind::of(v);
                if let Some(existing) = kinds.get_mut(name) {
                    *existing = existing.merge(k);
                } else {
                    order.push(name.clone());
                    kinds.insert(name.clone(), k);
                }
            }
            n += 1;
        }
        let fields: Vec<Field> = order
            .iter()
            .map(|name| {
                Field::new(
                    name,
                    kinds.get(name).copied().unwrap_or(Kind::Null).data_type(),
                    true,
                )
            })
            .collect();
        Ok(Arc::new(Schema::new(fields)))
    }
}

struct ReadState {
    parser: RowParser,
    columns: Columns,
    options: FormatReadOptions,
    batch_rows: usize,
    remaining: usize,
    finished: bool,
}

async fn next_batch(mut st: ReadState) -> Option<(Result<RecordBatch>, ReadState)> {
    if st.finished {
        return None;
    }
    let during = |e: Error| e.with_connector(NAME).with_operation("read");
    while st.columns.rows < st.batch_rows && st.remaining > 0 {
        match st.parser.next_row().await {
            Ok(Some(row)) => match st.columns.push(&row) {
                Ok(()) => st.remaining -= 1,
                Err((column, reason)) => {
                    let loc = Location::file(&st.parser.file)
                        .with_line(row.line)
                        .with_byte_offset(row.offset)
                        .with_column(&column);
                    let msg = format!(
                        "row at line {} column {}: column '{column}': {reason}",
                        row.line, row.column
                    );
                    if st.options.bad_rows == BadRows::Skip {
                        st.options.bad_row_log.record(loc, msg);
                    } else {
                        st.finished = true;
                        return Some((Err(during(Error::invalid_input(msg, loc))), st));
                    }
                }
            },
            Ok(None) => {
                st.finished = true;
                break;
            }
            Err(e) => {
                st.finished = true;
                return Some((Err(during(e)), st));
            }
        }
    }
    if st.remaining == 0 {
        st.finished = true;
    }
    if st.columns.rows == 0 {
        return None;
    }
    let batch = st.columns.finish().map_err(during);
    Some((batch, st))
}

#[async_trait]
impl FileFormat for XmlFormat {
    fn name(&self) -> &'static str {
        NAME
    }

    fn extensions(&self) -> &'static [&'static str] {
        &["xml"]
    }

    async fn infer_schema(&self, input: Arc<dyn ByteSource>) -> Result<SchemaRef> {
        self.infer(&input)
            .await
            .map_err(|e| e.with_connector(NAME).with_operation("infer_schema"))
    }

    async fn read(
        &self,
        input: Arc<dyn ByteSource>,
        options: FormatReadOptions,
    ) -> Result<SendableRecordBatchStream> {
        let during = |e: Error| e.with_connector(NAME).with_operation("read");
        let schema = match &options.schema {
            Some(s) => s.clone(),
            None => self.infer(&input).await.map_err(during)?,
        };
        let parser = RowParser::open(self, &input).await.map_err(during)?;
        let batch_rows = if options.batch_rows == 0 {
            8192
        } else {
            options.batch_rows
        };
        let state = ReadState {
            parser,
            columns: Columns::new(schema.clone()),
            remaining: options.limit.unwrap_or(usize::MAX),
            options,
            batch_rows,
            finished: false,
        };
        Ok(RecordBatchStreamAdapter::boxed(
            schema,
            futures::stream::unfold(state, next_batch),
        ))
    }

    fn writer(&self, schema: SchemaRef) -> Result<Box<dyn FormatWriter>> {
        Ok(Box::new(XmlWriter::new(self, &schema)))
    }
}

// ---------------------------------------------------------------------------------------------
// Writing

/// Replace characters not allowed in an XML name by `_` (and prefix a name that cannot start one).
fn xml_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if !out.starts_with(|c: char| c.is_alphabetic() || c == '_')
        || out.to_ascii_lowercase().starts_with("xml")
    {
        out.insert(0, '_');
    }
    out
}

/// Escape text for element content or attribute values; `\r` becomes `&#13;` so it survives
/// end-of-line normalization. Characters XML 1.0 forbids are an error.
fn escape_text(s: &str) -> std::result::Result<String, char> {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#13;"),
            '\t' | '\n' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => return Err(c),
            c => out.push(c),
        }
    }
    Ok(out)
}

struct XmlWriter {
    row_tag: String,
    root_tag: String,
    /// (column name in XML, written as an attribute)
    columns: Vec<(String, bool)>,
    names: Vec<String>,
    out: String,
    rows: u64,
}

impl XmlWriter {
    fn new(f: &XmlFormat, schema: &SchemaRef) -> Self {
        let prefix = f.attribute_prefix.as_str();
        let columns = schema
            .fields()
            .iter()
            .map(|field| {
                match field
                    .name()
                    .strip_prefix(prefix)
                    .filter(|_| !prefix.is_empty())
                {
                    Some(attr) => (xml_name(attr), true),
                    None => (xml_name(field.name()), false),
                }
            })
            .collect();
        let root_tag = xml_name(&f.root_tag);
        let out = format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<{root_tag}>\n");
        Self {
            row_tag: xml_name(&f.write_row_tag),
            root_tag,
            columns,
            names: schema.fields().iter().map(|f| f.name().clone()).collect(),
            out,
            rows: 0,
        }
    }
}

impl FormatWriter for XmlWriter {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.num_columns() != self.columns.len() {
            return Err(Error::new(
                ErrorKind::SchemaMismatch,
                format!(
                    "batch has {} columns, the writer {}",
                    batch.num_columns(),
                    self.columns.len()
                ),
            )
            .with_connector(NAME)
            .with_operation("write"));
        }
        let texts = batch
            .columns()
            .iter()
            .map(value_texts)
            .collect::<Result<Vec<_>>>()?;
        let mut out = String::new();
        for row in 0..batch.num_rows() {
            let mut attrs = String::new();
            let mut body = String::new();
            for (c, ((name, is_attr), col)) in self.columns.iter().zip(&texts).enumerate() {
                let Some(Some(v)) = col.get(row) else {
                    continue;
                };
                let escaped = escape_text(v).map_err(|ch| {
                    Error::invalid_input(
                        format!("character U+{:04X} cannot be written in XML 1.0", ch as u32),
                        Location::default()
                            .with_row(self.rows + row as u64)
                            .with_column(&self.names[c]),
                    )
                    .with_connector(NAME)
                    .with_operation("write")
                })?;
                if *is_attr {
                    let _ = write!(attrs, " {name}=\"{escaped}\"");
                } else {
                    let _ = write!(body, "<{name}>{escaped}</{name}>");
                }
            }
            let _ = writeln!(out, "  <{}{attrs}>{body}</{}>", self.row_tag, self.row_tag);
        }
        self.rows += batch.num_rows() as u64;
        self.out.push_str(&out);
        Ok(())
    }

    fn take_bytes(&mut self) -> Bytes {
        Bytes::from(std::mem::take(&mut self.out))
    }

    fn finish(mut self: Box<Self>) -> Result<Bytes> {
        let _ = writeln!(self.out, "</{}>", self.root_tag);
        Ok(Bytes::from(std::mem::take(&mut self.out)))
    }
}

/// The `xml` connector kind: [`XmlFormat`] options under `options` of a
/// [`crate::factory::FileConfig`].
#[derive(Debug)]
pub struct XmlKind;

impl crate::factory::FormatKind for XmlKind {
    type Options = XmlFormat;
    const KIND: &'static str = "xml";
    const DESCRIPTION: &'static str = "XML files in a local directory (rows by element, streaming)";
    fn format(options: &Self::Options) -> Result<Arc<dyn FileFormat>> {
        Ok(Arc::new(options.clone()))
    }
}

/// Factory of the `xml` kind.
pub type XmlFactory = crate::factory::FileFactory<XmlKind>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_track_across_chunks() {
        let mut l = Lines::default();
        l.push(Bytes::from_static(b"ab\ncd"));
        l.push(Bytes::from_static(b"\n\nef"));
        assert_eq!(l.at(0), (1, 1));
        assert_eq!(l.at(4), (2, 2));
        assert_eq!(l.at(7), (4, 1));
        assert_eq!(l.at(8), (4, 2));
        assert_eq!(l.at(100), (4, 3));
    }

    #[test]
    fn names_and_escaping() {
        assert_eq!(xml_name("order id"), "order_id");
        assert_eq!(xml_name("1st"), "_1st");
        assert_eq!(
            escape_text("<a & 'b'>\r").unwrap(),
            "&lt;a &amp; &apos;b&apos;&gt;&#13;"
        );
        assert_eq!(escape_text("bell \u{7}"), Err('\u{7}'));
    }

    #[test]
    fn kinds() {
        assert_eq!(Kind::of("12"), Kind::Int);
        assert_eq!(Kind::of("1.5e3"), Kind::Float);
        assert_eq!(Kind::of("inf"), Kind::Str);
        assert_eq!(Kind::of("TRUE"), Kind::Bool);
        assert_eq!(Kind::of("2024-01-02"), Kind::Date);
        assert_eq!(Kind::of("2024-01-02T03:04:05"), Kind::Ts);
        assert_eq!(Kind::of("2024-01-02T03:04:05Z"), Kind::TsTz);
        assert_eq!(Kind::Int.merge(Kind::Float), Kind::Float);
    }
}
