//! Excel workbooks: read xlsx, xlsm, xlsb, xls and ods with [calamine]; write xlsx with
//! [`rust_xlsxwriter`].
//!
//! # Reading
//! One sheet is read ([`SheetSelector`]): by name or by 0-based index. The header row
//! ([`HeaderRow`]) names the columns; without one the columns are `column_1..n`. Empty and
//! duplicate header cells are named `column_<n>` and `<name>_<k>`.
//!
//! Types are inferred per column over the first [`ExcelFormat::infer_rows`] data rows:
//!
//! | cells seen                          | Arrow type                     |
//! |-------------------------------------|--------------------------------|
//! | booleans                            | `Boolean`                      |
//! | whole numbers                       | `Int64`                        |
//! | numbers (whole and fractional)      | `Float64`                      |
//! | dates without a time of day         | `Date32`                       |
//! | date-times (or dates and date-times)| `Timestamp(Microsecond, None)` |
//! | text, or any other mix              | `Utf8`                         |
//! | only empty cells                    | `Utf8` (all null)              |
//!
//! xlsx stores every number as a float, so a number without a fractional part counts as a
//! whole number. Empty cells, empty strings and error cells (`#DIV/0!`, `#N/A`) read as null.
//! Rows whose cells are all empty are skipped.
//!
//! With an explicit schema ([`FormatReadOptions::schema`]) columns are matched by header name
//! (by position without a header); a cell that cannot be converted fails the read with
//! [`ErrorKind::InvalidInput`] naming the file, the sheet, the row as Excel shows it (1-based),
//! and the column, or, under [`BadRows::Skip`], the row is skipped and recorded in the
//! [`crate::BadRowLog`].
//!
//! A workbook is read into memory whole (the zip and OLE containers need random access).
//!
//! # Writing
//! [`ExcelFormat::writer`] produces one xlsx worksheet: a header row, then one row per record.
//! Numbers, booleans and strings are typed cells; dates, timestamps and times are numbers with
//! a date format (timestamps with a time zone are written as UTC wall-clock time, because Excel
//! has no time zones); nulls are empty cells. Integers beyond ±2^53, decimals of more than 15
//! digits, non-finite floats, dates outside Excel's 1900-03-01..9999-12-31 and binary values
//! (hex) are written as text so no digit is lost; nested types (lists, structs, maps) are
//! written as JSON text. Excel's limits (1,048,576 rows, 32,767 characters per cell) are
//! reported as [`ErrorKind::InvalidInput`].

use std::io::Cursor;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Date32Array, Float64Array, Int64Array, StringArray,
    TimestampMicrosecondArray,
};
use arrow::compute::{CastOptions, cast, cast_with_options};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use async_trait::async_trait;
use bytes::Bytes;
use calamine::{Data, Reader as _, Sheets};
use chrono::{NaiveDate, NaiveDateTime};
use connector_core::{
    Error, ErrorKind, Location, RecordBatchStreamAdapter, Result, SendableRecordBatchStream,
};
use serde::{Deserialize, Serialize};

use crate::format::{BadRows, ByteSource, FileFormat, FormatReadOptions, FormatWriter};

const NAME: &str = "excel";
const ZIP_MAGIC: &[u8] = b"PK\x03\x04";
const OLE_MAGIC: &[u8] = &[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];
/// Excel's row limit.
const MAX_ROWS: usize = 1_048_576;
/// Excel's limit on characters in a cell.
const MAX_CELL_CHARS: usize = 32_767;
/// 2^53: integers up to this are exact in an f64 cell.
const MAX_EXACT_INT: i64 = 9_007_199_254_740_992;
/// Days between Excel's epoch (1899-12-30) and the Unix epoch.
const EXCEL_UNIX_EPOCH_DAYS: f64 = 25_569.0;
const MICROS_PER_DAY: f64 = 86_400_000_000.0;

/// Which sheet to read. In configuration a number is an index and a string a name
/// (`sheet: 1`, `sheet: "Totals"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum SheetSelector {
    /// The sheet at this 0-based position in workbook order.
    Index(usize),
    /// The sheet with this name.
    Name(String),
}

impl Default for SheetSelector {
    fn default() -> Self {
        Self::Index(0)
    }
}

/// Where the column names are.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum HeaderRow {
    /// The first non-empty row of the sheet holds the names; data follows it.
    #[default]
    First,
    /// This row (1-based, as Excel numbers rows) holds the names; data is the rows below it.
    At(u32),
    /// No header: every row is data, columns are named `column_1..n`.
    None,
}

/// Excel workbooks (see the [module docs](self)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default)]
pub struct ExcelFormat {
    /// The sheet to read.
    pub sheet: SheetSelector,
    /// The header row.
    pub header: HeaderRow,
    /// Data rows examined to infer column types (0: all rows).
    pub infer_rows: usize,
    /// Name of the worksheet the writer creates.
    pub write_sheet_name: String,
}

impl Default for ExcelFormat {
    fn default() -> Self {
        Self {
            sheet: SheetSelector::default(),
            header: HeaderRow::default(),
            infer_rows: 1000,
            write_sheet_name: "Sheet1".to_owned(),
        }
    }
}

impl ExcelFormat {
    /// Read the sheet `name`.
    #[must_use]
    pub fn with_sheet_name(mut self, name: impl Into<String>) -> Self {
        self.sheet = SheetSelector::Name(name.into());
        self
    }

    /// Read the sheet at 0-based `index`.
    #[must_use]
    pub fn with_sheet_index(mut self, index: usize) -> Self {
        self.sheet = SheetSelector::Index(index);
        self
    }

    /// Set the header row.
    #[must_use]
    pub fn with_header(mut self, header: HeaderRow) -> Self {
        self.header = header;
        self
    }

    /// Open the workbook and decode the selected sheet.
    fn load(&self, location: &str, data: Bytes) -> Result<SheetData> {
        let mut sheets = open_workbook(location, data)?;
        let names = sheets.sheet_names();
        if names.is_empty() {
            return Err(Error::new(ErrorKind::Decode, "the workbook has no sheets")
                .with_location(Location::file(location)));
        }
        let name = match &self.sheet {
            SheetSelector::Name(n) => names.iter().find(|s| *s == n).cloned().ok_or_else(|| {
                Error::new(
                    ErrorKind::NotFound,
                    format!("no sheet named '{n}'; the workbook has {names:?}"),
                )
                .with_location(Location::file(location))
            })?,
            SheetSelector::Index(i) => names.get(*i).cloned().ok_or_else(|| {
                Error::new(
                    ErrorKind::NotFound,
                    format!(
                        "no sheet at index {i}; the workbook has {} sheets: {names:?}",
                        names.len()
                    ),
                )
                .with_location(Location::file(location))
            })?,
        };
        let range = sheets.worksheet_range(&name).map_err(|e| {
            Error::new(
                ErrorKind::Decode,
                format!("cannot read sheet '{name}': {e}"),
            )
            .with_location(Location::file(location).with_table(&name))
        })?;
        Ok(SheetData::new(location, name, &range, self.header))
    }
}

/// Open a workbook by its container magic (zip: xlsx/xlsm/xlsb/ods; OLE2: xls).
fn open_workbook(location: &str, data: Bytes) -> Result<Sheets<Cursor<Bytes>>> {
    let loc = || Location::file(location);
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        Error::new(
            ErrorKind::Decode,
            format!("not a readable {what} workbook: {e}"),
        )
        .with_location(loc())
    };
    if data.starts_with(OLE_MAGIC) {
        return calamine::open_workbook_from_rs(Cursor::new(data))
            .map(Sheets::Xls)
            .map_err(|e| fail("xls", &e));
    }
    if !data.starts_with(ZIP_MAGIC) {
        return Err(Error::new(
            ErrorKind::Decode,
            "not an Excel workbook: the bytes are neither a zip (xlsx, xlsm, xlsb, ods) nor an OLE2 (xls) file",
        )
        .with_location(loc()));
    }
    let ext = location
        .rsplit('.')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    match ext.as_str() {
        "ods" => calamine::open_workbook_from_rs(Cursor::new(data))
            .map(Sheets::Ods)
            .map_err(|e| fail("ods", &e)),
        "xlsb" => calamine::open_workbook_from_rs(Cursor::new(data))
            .map(Sheets::Xlsb)
            .map_err(|e| fail("xlsb", &e)),
        _ => match calamine::open_workbook_from_rs(Cursor::new(data.clone())) {
            Ok(x) => Ok(Sheets::Xlsx(x)),
            Err(xlsx_err) => {
                if let Ok(o) = calamine::open_workbook_from_rs(Cursor::new(data.clone())) {
                    return Ok(Sheets::Ods(o));
                }
                if let Ok(b) = calamine::open_workbook_from_rs(Cursor::new(data)) {
                    return Ok(Sheets::Xlsb(b));
                }
                Err(fail("xlsx", &xlsx_err))
            }
        },
    }
}

/// The cells of one sheet, split into header names and data rows.
struct SheetData {
    file: String,
    sheet: String,
    /// 0-based absolute index of the first column.
    first_col: u32,
    names: Vec<String>,
    has_header: bool,
    /// (0-based absolute row index, cells) of the data rows.
    rows: Vec<(u32, Vec<Data>)>,
}

impl SheetData {
    fn new(file: &str, sheet: String, range: &calamine::Range<Data>, header: HeaderRow) -> Self {
        let (first_row, first_col) = range.start().unwrap_or((0, 0));
        let width = range.width();
        let mut all: Vec<(u32, Vec<Data>)> = range
            .rows()
            .enumerate()
            .map(|(i, r)| (first_row.saturating_add(i as u32), r.to_vec()))
            .collect();
        let (header_cells, has_header) = match header {
            HeaderRow::None => (None, false),
            HeaderRow::First => {
                let pos = all.iter().position(|(_, r)| !row_is_empty(r));
                (pos.map(|p| all.remove(p).1), true)
            }
            HeaderRow::At(n) => {
                let abs = n.saturating_sub(1);
                let cells = all
                    .iter()
                    .position(|(r, _)| *r == abs)
                    .map(|p| all[p].1.clone());
                all.retain(|(r, _)| *r > abs);
                (cells, true)
            }
        };
        all.retain(|(_, r)| !row_is_empty(r));
        let names = header_names(header_cells.as_deref(), width);
        Self {
            file: file.to_owned(),
            sheet,
            first_col,
            names,
            has_header,
            rows: all,
        }
    }

    fn location(&self, abs_row: u32, column: Option<&str>) -> Location {
        let mut l = Location::file(&self.file)
            .with_table(&self.sheet)
            .with_row(u64::from(abs_row));
        if let Some(c) = column {
            l = l.with_column(c);
        }
        l
    }

    /// Infer a schema from the first `infer_rows` rows (0: all).
    fn infer(&self, infer_rows: usize) -> Schema {
        let take = if infer_rows == 0 {
            usize::MAX
        } else {
            infer_rows
        };
        let fields: Vec<Field> = self
            .names
            .iter()
            .enumerate()
            .map(|(c, name)| {
                let kind = self
                    .rows
                    .iter()
                    .take(take)
                    .map(|(_, r)| r.get(c).map_or(Kind::Null, cell_kind))
                    .fold(Kind::Null, Kind::merge);
                Field::new(name, kind.data_type(), true)
            })
            .collect();
        Schema::new(fields)
    }

    /// For each field of `schema`, the sheet column (index into a row) it reads, if any.
    fn column_map(&self, schema: &Schema) -> Result<Vec<Option<usize>>> {
        schema
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let idx = if self.has_header {
                    self.names.iter().position(|n| n == f.name())
                } else {
                    (i < self.names.len()).then_some(i)
                };
                if idx.is_none() && !f.is_nullable() {
                    return Err(Error::new(
                        ErrorKind::SchemaMismatch,
                        format!(
                            "sheet '{}' has no column '{}' and the field is not nullable",
                            self.sheet,
                            f.name()
                        ),
                    )
                    .with_location(
                        Location::file(&self.file)
                            .with_table(&self.sheet)
                            .with_column(f.name()),
                    ));
                }
                Ok(idx)
            })
            .collect()
    }

    /// Decode the data rows into batches of `schema`.
    fn into_batches(
        self,
        schema: &SchemaRef,
        options: &FormatReadOptions,
    ) -> Result<Vec<RecordBatch>> {
        let map = self.column_map(schema)?;
        let limit = options.limit.unwrap_or(usize::MAX);
        let mut columns: Vec<Vec<Cell>> = vec![Vec::new(); schema.fields().len()];
        let mut kept = 0usize;
        'rows: for (abs_row, cells) in &self.rows {
            if kept >= limit {
                break;
            }
            let mut converted = Vec::with_capacity(map.len());
            for (field, idx) in schema.fields().iter().zip(&map) {
                let cell = idx.and_then(|i| cells.get(i)).unwrap_or(&Data::Empty);
                match convert(cell, field.data_type(), field.is_nullable()) {
                    Ok(v) => converted.push(v),
                    Err(reason) => {
                        let col = idx.map_or_else(
                            || "-".to_owned(),
                            |i| column_letter(self.first_col.saturating_add(i as u32)),
                        );
                        let msg = format!(
                            "sheet '{}' row {} column {col} ('{}'): {reason}",
                            self.sheet,
                            u64::from(*abs_row) + 1,
                            field.name()
                        );
                        let location = self.location(*abs_row, Some(field.name()));
                        if options.bad_rows == BadRows::Skip {
                            options.bad_row_log.record(location, msg);
                            continue 'rows;
                        }
                        return Err(Error::invalid_input(msg, location)
                            .with_context("excel_row", u64::from(*abs_row) + 1)
                            .with_context("excel_column", col));
                    }
                }
            }
            for (col, v) in columns.iter_mut().zip(converted) {
                col.push(v);
            }
            kept += 1;
        }
        let batch_rows = options.batch_rows.max(1);
        let arrays: Vec<ArrayRef> = schema
            .fields()
            .iter()
            .zip(&columns)
            .map(|(f, cells)| build_array(cells, f.data_type()))
            .collect::<Result<_>>()?;
        let batch = RecordBatch::try_new_with_options(
            schema.clone(),
            arrays,
            &RecordBatchOptions::new().with_row_count(Some(kept)),
        )?;
        let mut out = Vec::with_capacity(kept.div_ceil(batch_rows));
        let mut offset = 0;
        while offset < kept {
            let len = batch_rows.min(kept - offset);
            out.push(batch.slice(offset, len));
            offset += len;
        }
        Ok(out)
    }
}

fn row_is_empty(cells: &[Data]) -> bool {
    cells
        .iter()
        .all(|c| matches!(c, Data::Empty) || matches!(c, Data::String(s) if s.is_empty()))
}

/// Column names from the header cells: empty → `column_<n>`, duplicates → `<name>_<k>`.
fn header_names(header: Option<&[Data]>, width: usize) -> Vec<String> {
    let mut names: Vec<String> = Vec::with_capacity(width);
    for i in 0..width {
        let raw = header
            .and_then(|h| h.get(i))
            .map(cell_text)
            .unwrap_or_default();
        let base = if raw.trim().is_empty() {
            format!("column_{}", i + 1)
        } else {
            raw.trim().to_owned()
        };
        let mut name = base.clone();
        let mut k = 2;
        while names.contains(&name) {
            name = format!("{base}_{k}");
            k += 1;
        }
        names.push(name);
    }
    names
}

/// Excel's column letters for a 0-based column index (0 → A, 26 → AA).
fn column_letter(mut col: u32) -> String {
    let mut out = Vec::new();
    loop {
        out.push(b'A' + (col % 26) as u8);
        if col < 26 {
            break;
        }
        col = col / 26 - 1;
    }
    out.reverse();
    String::from_utf8_lossy(&out).into_owned()
}

/// A cell's kind for inference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Null,
    Bool,
    Int,
    Float,
    Date,
    DateTime,
    Str,
}

impl Kind {
    fn merge(self, other: Self) -> Self {
        match (self, other) {
            (Self::Null, x) | (x, Self::Null) => x,
            (a, b) if a == b => a,
            (Self::Int, Self::Float) | (Self::Float, Self::Int) => Self::Float,
            (Self::Date, Self::DateTime) | (Self::DateTime, Self::Date) => Self::DateTime,
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
            Self::DateTime => DataType::Timestamp(TimeUnit::Microsecond, None),
        }
    }
}

fn is_whole(f: f64) -> bool {
    f.is_finite() && f.fract() == 0.0 && f.abs() <= MAX_EXACT_INT as f64
}

fn cell_kind(cell: &Data) -> Kind {
    match cell {
        Data::Empty | Data::Error(_) => Kind::Null,
        Data::String(s) if s.is_empty() => Kind::Null,
        Data::Bool(_) => Kind::Bool,
        Data::Int(_) => Kind::Int,
        Data::Float(f) if is_whole(*f) => Kind::Int,
        Data::Float(_) => Kind::Float,
        Data::DateTime(dt) if dt.is_datetime() => match excel_micros(dt) {
            Some(us) if us.rem_euclid(86_400_000_000) == 0 => Kind::Date,
            Some(_) => Kind::DateTime,
            None => Kind::Str,
        },
        Data::DateTimeIso(s) => match parse_datetime(s) {
            Some((_, true)) => Kind::Date,
            Some((_, false)) => Kind::DateTime,
            None => Kind::Str,
        },
        Data::String(_) | Data::DateTime(_) | Data::DurationIso(_) => Kind::Str,
    }
}

/// Microseconds since the Unix epoch of an Excel date-time (None for Excel's fictitious
/// 1900-02-29 or out-of-range serials).
fn excel_micros(dt: &calamine::ExcelDateTime) -> Option<i64> {
    let serial = dt.as_f64();
    if !serial.is_finite() || !(0.0..2_958_466.0).contains(&serial) {
        return None;
    }
    let (year, month, day, hour, minute, second, milli) = dt.to_ymd_hms_milli();
    let date = NaiveDate::from_ymd_opt(i32::from(year), u32::from(month), u32::from(day))?;
    let time = date.and_hms_milli_opt(
        u32::from(hour),
        u32::from(minute),
        u32::from(second),
        u32::from(milli),
    )?;
    Some(time.and_utc().timestamp_micros())
}

/// Parse an ISO date or date-time; the bool is true for a date without time.
fn parse_datetime(s: &str) -> Option<(NaiveDateTime, bool)> {
    let s = s.trim();
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some((t, false));
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| (t, true))
}

/// The text Excel would show for a cell (used for header names and Utf8 columns).
fn cell_text(cell: &Data) -> String {
    match cell {
        Data::Empty | Data::Error(_) => String::new(),
        Data::String(s) | Data::DateTimeIso(s) | Data::DurationIso(s) => s.clone(),
        Data::Bool(b) => b.to_string(),
        Data::Int(i) => i.to_string(),
        Data::Float(f) if is_whole(*f) => format!("{}", *f as i64),
        Data::Float(f) => f.to_string(),
        Data::DateTime(dt) => {
            match excel_micros(dt).and_then(chrono::DateTime::from_timestamp_micros) {
                Some(t) if dt.is_datetime() => {
                    let t = t.naive_utc();
                    if t.time() == chrono::NaiveTime::MIN {
                        t.date().to_string()
                    } else {
                        t.to_string()
                    }
                }
                _ => dt.as_f64().to_string(),
            }
        }
    }
}

/// One converted cell.
#[derive(Debug, Clone)]
enum Cell {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    /// Days since the Unix epoch.
    Date(i32),
    /// Microseconds since the Unix epoch.
    Micros(i64),
}

/// Convert a cell to a value for `target`, or say why not.
fn convert(cell: &Data, target: &DataType, nullable: bool) -> std::result::Result<Cell, String> {
    let empty = matches!(cell, Data::Empty | Data::Error(_))
        || matches!(cell, Data::String(s) if s.is_empty());
    if empty {
        return if nullable {
            Ok(Cell::Null)
        } else {
            Err("empty cell in a non-nullable column".to_owned())
        };
    }
    let bad = || format!("cannot convert {} to {target}", describe(cell));
    match target {
        DataType::Boolean => match cell {
            Data::Bool(b) => Ok(Cell::Bool(*b)),
            Data::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" => Ok(Cell::Bool(true)),
                "false" => Ok(Cell::Bool(false)),
                _ => Err(bad()),
            },
            _ => Err(bad()),
        },
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => {
            let v = match cell {
                Data::Int(i) => *i,
                Data::Float(f) if is_whole(*f) => *f as i64,
                Data::String(s) => s.trim().parse::<i64>().map_err(|_| bad())?,
                _ => return Err(bad()),
            };
            if int_fits(v, target) {
                Ok(Cell::Int(v))
            } else {
                Err(format!("{v} is out of range for {target}"))
            }
        }
        DataType::Float16 | DataType::Float32 | DataType::Float64 => match cell {
            Data::Int(i) => Ok(Cell::Float(*i as f64)),
            Data::Float(f) => Ok(Cell::Float(*f)),
            Data::String(s) => s.trim().parse::<f64>().map(Cell::Float).map_err(|_| bad()),
            _ => Err(bad()),
        },
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Ok(Cell::Str(cell_text(cell))),
        DataType::Date32 | DataType::Date64 => match cell {
            Data::DateTime(dt) if dt.is_datetime() => excel_micros(dt)
                .map(|us| Cell::Date(us.div_euclid(86_400_000_000) as i32))
                .ok_or_else(bad),
            Data::DateTimeIso(s) | Data::String(s) => parse_datetime(s)
                .map(|(t, _)| Cell::Date((t.and_utc().timestamp().div_euclid(86_400)) as i32))
                .ok_or_else(bad),
            _ => Err(bad()),
        },
        DataType::Timestamp(..) => match cell {
            Data::DateTime(dt) if dt.is_datetime() => {
                excel_micros(dt).map(Cell::Micros).ok_or_else(bad)
            }
            Data::DateTimeIso(s) | Data::String(s) => parse_datetime(s)
                .map(|(t, _)| Cell::Micros(t.and_utc().timestamp_micros()))
                .ok_or_else(bad),
            _ => Err(bad()),
        },
        other => {
            // Any other type: convert the cell's text with Arrow's cast, checked per cell.
            let text = cell_text(cell);
            let one: ArrayRef = Arc::new(StringArray::from(vec![text.as_str()]));
            let opts = CastOptions {
                safe: false,
                ..CastOptions::default()
            };
            cast_with_options(&one, other, &opts).map_err(|e| format!("{}: {e}", bad()))?;
            Ok(Cell::Str(text))
        }
    }
}

fn describe(cell: &Data) -> String {
    match cell {
        Data::String(s) => {
            let short: String = s.chars().take(40).collect();
            format!("text '{short}'")
        }
        Data::Bool(b) => format!("boolean {b}"),
        Data::Int(i) => format!("number {i}"),
        Data::Float(f) => format!("number {f}"),
        Data::DateTime(_) | Data::DateTimeIso(_) => format!("date-time {}", cell_text(cell)),
        Data::DurationIso(s) => format!("duration {s}"),
        Data::Error(e) => format!("error cell {e}"),
        Data::Empty => "an empty cell".to_owned(),
    }
}

fn int_fits(v: i64, target: &DataType) -> bool {
    match target {
        DataType::Int8 => i8::try_from(v).is_ok(),
        DataType::Int16 => i16::try_from(v).is_ok(),
        DataType::Int32 => i32::try_from(v).is_ok(),
        DataType::UInt8 => u8::try_from(v).is_ok(),
        DataType::UInt16 => u16::try_from(v).is_ok(),
        DataType::UInt32 => u32::try_from(v).is_ok(),
        DataType::UInt64 => v >= 0,
        _ => true,
    }
}

/// Build the column for `target` from converted cells.
fn build_array(cells: &[Cell], target: &DataType) -> Result<ArrayRef> {
    let native: ArrayRef = match target {
        DataType::Boolean => Arc::new(
            cells
                .iter()
                .map(|c| {
                    if let Cell::Bool(v) = c {
                        Some(*v)
                    } else {
                        None
                    }
                })
                .collect::<BooleanArray>(),
        ),
        t if t.is_integer() => Arc::new(
            cells
                .iter()
                .map(|c| if let Cell::Int(v) = c { Some(*v) } else { None })
                .collect::<Int64Array>(),
        ),
        t if t.is_floating() => Arc::new(
            cells
                .iter()
                .map(|c| {
                    if let Cell::Float(v) = c {
                        Some(*v)
                    } else {
                        None
                    }
                })
                .collect::<Float64Array>(),
        ),
        DataType::Date32 | DataType::Date64 => Arc::new(
            cells
                .iter()
                .map(|c| {
                    if let Cell::Date(v) = c {
                        Some(*v)
                    } else {
                        None
                    }
                })
                .collect::<Date32Array>(),
        ),
        DataType::Timestamp(_, tz) => Arc::new(
            cells
                .iter()
                .map(|c| {
                    if let Cell::Micros(v) = c {
                        Some(*v)
                    } else {
                        None
                    }
                })
                .collect::<TimestampMicrosecondArray>()
                .with_timezone_opt(tz.clone()),
        ),
        _ => Arc::new(
            cells
                .iter()
                .map(|c| {
                    if let Cell::Str(v) = c {
                        Some(v.as_str())
                    } else {
                        None
                    }
                })
                .collect::<StringArray>(),
        ),
    };
    if native.data_type() == target {
        return Ok(native);
    }
    let opts = CastOptions {
        safe: false,
        ..CastOptions::default()
    };
    cast_with_options(&native, target, &opts)
        .map_err(|e| Error::from(e).with_connector(NAME).with_operation("read"))
}

#[async_trait]
impl FileFormat for ExcelFormat {
    fn name(&self) -> &'static str {
        NAME
    }

    fn extensions(&self) -> &'static [&'static str] {
        &["xlsx", "xlsm", "xlsb", "xls", "ods"]
    }

    async fn infer_schema(&self, input: Arc<dyn ByteSource>) -> Result<SchemaRef> {
        let data = input
            .get_all()
            .await
            .map_err(|e| e.with_connector(NAME).with_operation("infer_schema"))?;
        let location = input.location().to_owned();
        let this = self.clone();
        let sheet = this
            .load(&location, data)
            .map_err(|e| e.with_connector(NAME).with_operation("infer_schema"))?;
        Ok(Arc::new(sheet.infer(this.infer_rows)))
    }

    async fn read(
        &self,
        input: Arc<dyn ByteSource>,
        options: FormatReadOptions,
    ) -> Result<SendableRecordBatchStream> {
        let during = |e: Error| e.with_connector(NAME).with_operation("read");
        let data = input.get_all().await.map_err(during)?;
        let sheet = self.load(input.location(), data).map_err(during)?;
        let schema = options
            .schema
            .clone()
            .unwrap_or_else(|| Arc::new(sheet.infer(self.infer_rows)));
        let batches = sheet.into_batches(&schema, &options).map_err(during)?;
        Ok(RecordBatchStreamAdapter::boxed(
            schema,
            futures::stream::iter(batches.into_iter().map(Ok)),
        ))
    }

    fn writer(&self, schema: SchemaRef) -> Result<Box<dyn FormatWriter>> {
        Ok(Box::new(ExcelWriter::new(schema, &self.write_sheet_name)?))
    }
}

// ---------------------------------------------------------------------------------------------
// Writing

/// Writes one xlsx worksheet; all bytes come out at [`FormatWriter::finish`] (an xlsx is a zip
/// that can only be written once complete).
struct ExcelWriter {
    schema: SchemaRef,
    sheet: rust_xlsxwriter::Worksheet,
    next_row: usize,
    date: rust_xlsxwriter::Format,
    datetime: rust_xlsxwriter::Format,
    time: rust_xlsxwriter::Format,
}

fn write_err(e: &rust_xlsxwriter::XlsxError, row: usize, column: &str) -> Error {
    Error::invalid_input(
        format!("cannot write row {row} column '{column}' to xlsx: {e}"),
        Location::default().with_row(row as u64).with_column(column),
    )
    .with_connector(NAME)
    .with_operation("write")
}

impl ExcelWriter {
    fn new(schema: SchemaRef, sheet_name: &str) -> Result<Self> {
        use rust_xlsxwriter::Format;
        let mut sheet = rust_xlsxwriter::Worksheet::new();
        sheet.set_name(sheet_name).map_err(|e| {
            Error::invalid_config(format!("invalid worksheet name '{sheet_name}': {e}"))
                .with_connector(NAME)
        })?;
        for (c, f) in schema.fields().iter().enumerate() {
            sheet
                .write_string(0, c as u16, f.name())
                .map_err(|e| write_err(&e, 0, f.name()))?;
        }
        Ok(Self {
            schema,
            sheet,
            next_row: 1,
            date: Format::new().set_num_format("yyyy-mm-dd"),
            datetime: Format::new().set_num_format("yyyy-mm-dd hh:mm:ss.000"),
            time: Format::new().set_num_format("hh:mm:ss.000"),
        })
    }

    fn write_column(&mut self, array: &ArrayRef, col: usize, name: &str) -> Result<()> {
        let c = u16::try_from(col).map_err(|_| {
            Error::invalid_input(
                "more than 16,384 columns do not fit an Excel sheet",
                Location::default(),
            )
            .with_connector(NAME)
            .with_operation("write")
        })?;
        let base = self.next_row;
        let at = |i: usize| (base + i) as u32;
        let err = |e: rust_xlsxwriter::XlsxError, i: usize| write_err(&e, base + i, name);
        let dt = array.data_type().clone();
        match &dt {
            DataType::Null => {}
            DataType::Boolean => {
                let a = array.as_boolean();
                for i in 0..a.len() {
                    if a.is_valid(i) {
                        self.sheet
                            .write_boolean(at(i), c, a.value(i))
                            .map_err(|e| err(e, i))?;
                    }
                }
            }
            t if t.is_integer() => {
                let a = cast(array, &DataType::Int64).or_else(|_| cast(array, &DataType::Utf8))?;
                if let Some(a) = a.as_primitive_opt::<arrow::datatypes::Int64Type>() {
                    for i in 0..a.len() {
                        if a.is_valid(i) {
                            let v = a.value(i);
                            if v.abs() <= MAX_EXACT_INT {
                                self.sheet
                                    .write_number(at(i), c, v as f64)
                                    .map_err(|e| err(e, i))?;
                            } else {
                                self.sheet
                                    .write_string(at(i), c, v.to_string())
                                    .map_err(|e| err(e, i))?;
                            }
                        }
                    }
                } else {
                    self.write_text(&a, c, name)?;
                }
            }
            t if t.is_floating() => {
                let a = cast(array, &DataType::Float64)?;
                let a = a.as_primitive::<arrow::datatypes::Float64Type>();
                for i in 0..a.len() {
                    if a.is_valid(i) {
                        let v = a.value(i);
                        if v.is_finite() {
                            self.sheet
                                .write_number(at(i), c, v)
                                .map_err(|e| err(e, i))?;
                        } else {
                            self.sheet
                                .write_string(at(i), c, v.to_string())
                                .map_err(|e| err(e, i))?;
                        }
                    }
                }
            }
            DataType::Decimal32(p, s) | DataType::Decimal64(p, s) | DataType::Decimal128(p, s)
                if *p <= 15 && *s >= 0 =>
            {
                let fmt = if *s == 0 {
                    rust_xlsxwriter::Format::new().set_num_format("0")
                } else {
                    rust_xlsxwriter::Format::new()
                        .set_num_format(format!("0.{}", "0".repeat(*s as usize)))
                };
                let a = cast(array, &DataType::Float64)?;
                let a = a.as_primitive::<arrow::datatypes::Float64Type>();
                for i in 0..a.len() {
                    if a.is_valid(i) {
                        self.sheet
                            .write_number_with_format(at(i), c, a.value(i), &fmt)
                            .map_err(|e| err(e, i))?;
                    }
                }
            }
            DataType::Date32 | DataType::Date64 | DataType::Timestamp(..) => {
                let is_date = matches!(dt, DataType::Date32 | DataType::Date64);
                let micros = to_utc_micros(array)?;
                let texts = value_texts(array)?;
                for (i, us) in micros.iter().enumerate() {
                    if let Some(us) = *us {
                        let serial = EXCEL_UNIX_EPOCH_DAYS + us as f64 / MICROS_PER_DAY;
                        if (61.0..2_958_466.0).contains(&serial) {
                            let fmt = if is_date { &self.date } else { &self.datetime };
                            self.sheet
                                .write_number_with_format(at(i), c, serial, fmt)
                                .map_err(|e| err(e, i))?;
                        } else if let Some(Some(t)) = texts.get(i) {
                            self.sheet
                                .write_string(at(i), c, t)
                                .map_err(|e| err(e, i))?;
                        }
                    }
                }
            }
            DataType::Time32(_) | DataType::Time64(_) => {
                let a = cast(array, &DataType::Time64(TimeUnit::Microsecond))?;
                let a = a.as_primitive::<arrow::datatypes::Time64MicrosecondType>();
                for i in 0..a.len() {
                    if a.is_valid(i) {
                        let frac = a.value(i) as f64 / MICROS_PER_DAY;
                        self.sheet
                            .write_number_with_format(at(i), c, frac, &self.time)
                            .map_err(|e| err(e, i))?;
                    }
                }
            }
            DataType::Dictionary(_, value) => {
                let a = cast(array, value)?;
                return self.write_column(&a, col, name);
            }
            _ => self.write_text(array, c, name)?,
        }
        Ok(())
    }

    /// Write a column as text (strings, binary as hex, nested as JSON, the rest as displayed).
    fn write_text(&mut self, array: &ArrayRef, c: u16, name: &str) -> Result<()> {
        let texts = value_texts(array)?;
        for (i, t) in texts.iter().enumerate() {
            if let Some(t) = t {
                if t.chars().count() > MAX_CELL_CHARS {
                    return Err(Error::invalid_input(
                        format!(
                            "row {} column '{name}': {} characters exceed Excel's limit of {MAX_CELL_CHARS} per cell",
                            self.next_row + i,
                            t.chars().count()
                        ),
                        Location::default().with_row((self.next_row + i) as u64).with_column(name),
                    )
                    .with_connector(NAME)
                    .with_operation("write"));
                }
                self.sheet
                    .write_string((self.next_row + i) as u32, c, t)
                    .map_err(|e| write_err(&e, self.next_row + i, name))?;
            }
        }
        Ok(())
    }
}

/// Microseconds since the Unix epoch (UTC) of a date or timestamp column.
fn to_utc_micros(array: &ArrayRef) -> Result<Vec<Option<i64>>> {
    let tz = match array.data_type() {
        DataType::Timestamp(_, tz) => tz.clone(),
        _ => None,
    };
    // Casting between units keeps the time zone, so the values stay UTC instants.
    let a = cast(array, &DataType::Timestamp(TimeUnit::Microsecond, tz))?;
    let a = a.as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
    Ok(a.iter().collect())
}

/// The text of every value of a column: strings as they are, binary as hex, nested types
/// (lists, structs, maps, unions) as JSON, everything else as Arrow displays it. Used by the
/// writers of this crate that write text cells.
pub(crate) fn value_texts(array: &ArrayRef) -> Result<Vec<Option<String>>> {
    use arrow::util::display::{ArrayFormatter, FormatOptions};
    match array.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let a = cast(array, &DataType::Utf8)?;
            Ok(a.as_string::<i32>()
                .iter()
                .map(|v| v.map(str::to_owned))
                .collect())
        }
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => {
            let a = cast(array, &DataType::LargeBinary)?;
            Ok(a.as_binary::<i64>().iter().map(|v| v.map(hex)).collect())
        }
        DataType::FixedSizeBinary(_) => Ok(array
            .as_fixed_size_binary()
            .iter()
            .map(|v| v.map(hex))
            .collect()),
        DataType::List(_)
        | DataType::LargeList(_)
        | DataType::ListView(_)
        | DataType::LargeListView(_)
        | DataType::FixedSizeList(..)
        | DataType::Struct(_)
        | DataType::Map(..)
        | DataType::Union(..) => json_texts(array),
        DataType::Dictionary(_, value) => value_texts(&cast(array, value)?),
        _ => {
            let f = ArrayFormatter::try_new(array.as_ref(), &FormatOptions::default())?;
            Ok((0..array.len())
                .map(|i| array.is_valid(i).then(|| f.value(i).to_string()))
                .collect())
        }
    }
}

/// Lower-case hex of bytes.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Each value of a nested column as JSON text, via Arrow's JSON writer.
fn json_texts(array: &ArrayRef) -> Result<Vec<Option<String>>> {
    let schema = Arc::new(Schema::new(vec![Field::new(
        "v",
        array.data_type().clone(),
        true,
    )]));
    let batch = RecordBatch::try_new(schema, vec![array.clone()])?;
    let mut w = arrow::json::LineDelimitedWriter::new(Vec::new());
    w.write(&batch)?;
    w.finish()?;
    let out = w.into_inner();
    let mut texts = Vec::with_capacity(array.len());
    for (i, line) in out
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .enumerate()
    {
        if array.is_null(i) {
            texts.push(None);
            continue;
        }
        let v: serde_json::Value = serde_json::from_slice(line).map_err(|e| {
            Error::internal(format!("Arrow's JSON writer produced invalid JSON: {e}"))
        })?;
        texts.push(v.get("v").map(ToString::to_string));
    }
    texts.resize(array.len(), None);
    Ok(texts)
}

impl FormatWriter for ExcelWriter {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.schema().fields().len() != self.schema.fields().len() {
            return Err(Error::new(
                ErrorKind::SchemaMismatch,
                format!(
                    "batch has {} columns, the sheet {}",
                    batch.num_columns(),
                    self.schema.fields().len()
                ),
            )
            .with_connector(NAME)
            .with_operation("write"));
        }
        if self.next_row + batch.num_rows() > MAX_ROWS {
            return Err(Error::invalid_input(
                format!("more than {MAX_ROWS} rows (with the header) do not fit an Excel sheet"),
                Location::default().with_row(self.next_row as u64),
            )
            .with_connector(NAME)
            .with_operation("write"));
        }
        let names: Vec<String> = self
            .schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        for (c, (array, name)) in batch.columns().iter().zip(&names).enumerate() {
            self.write_column(array, c, name)?;
        }
        self.next_row += batch.num_rows();
        Ok(())
    }

    fn take_bytes(&mut self) -> Bytes {
        Bytes::new()
    }

    fn finish(self: Box<Self>) -> Result<Bytes> {
        let mut workbook = rust_xlsxwriter::Workbook::new();
        workbook.push_worksheet(self.sheet);
        let buf = workbook.save_to_buffer().map_err(|e| {
            Error::new(
                ErrorKind::Internal,
                format!("cannot save the xlsx workbook: {e}"),
            )
            .with_connector(NAME)
            .with_operation("write")
        })?;
        Ok(Bytes::from(buf))
    }
}

/// The `excel` connector kind: [`ExcelFormat`] options under `options` of a
/// [`crate::factory::FileConfig`].
#[derive(Debug)]
pub struct ExcelKind;

impl crate::factory::FormatKind for ExcelKind {
    type Options = ExcelFormat;
    const KIND: &'static str = "excel";
    const DESCRIPTION: &'static str =
        "Excel workbooks (xlsx, xlsm, xlsb, xls, ods) in a local directory; writes xlsx";
    fn format(options: &Self::Options) -> Result<Arc<dyn FileFormat>> {
        Ok(Arc::new(options.clone()))
    }
}

/// Factory of the `excel` kind.
pub type ExcelFactory = crate::factory::FileFactory<ExcelKind>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_letters() {
        assert_eq!(column_letter(0), "A");
        assert_eq!(column_letter(25), "Z");
        assert_eq!(column_letter(26), "AA");
        assert_eq!(column_letter(701), "ZZ");
        assert_eq!(column_letter(702), "AAA");
    }

    #[test]
    fn kinds_merge() {
        assert_eq!(Kind::Int.merge(Kind::Float), Kind::Float);
        assert_eq!(Kind::Null.merge(Kind::Bool), Kind::Bool);
        assert_eq!(Kind::Date.merge(Kind::DateTime), Kind::DateTime);
        assert_eq!(Kind::Bool.merge(Kind::Int), Kind::Str);
    }

    #[test]
    fn header_names_fill_and_dedupe() {
        let h = vec![
            Data::String("a".into()),
            Data::Empty,
            Data::String("a".into()),
        ];
        assert_eq!(
            header_names(Some(&h), 4),
            vec!["a", "column_2", "a_2", "column_4"]
        );
    }
}
