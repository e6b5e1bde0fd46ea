//! The conformance suite every backend runs from its own tests (feature `testkit`).
//!
//! A backend builds a [`Harness`] — its source, its sink, a way to name fresh targets and the
//! Arrow types it claims to round-trip — and calls [`run_all`] (or single `case_*` functions).
//! Cases are picked by the declared [`SourceCapabilities`](crate::SourceCapabilities) and
//! [`SinkCapabilities`](crate::SinkCapabilities): what a backend cannot do is skipped *and
//! printed as skipped*; a mode it does not support must be refused with
//! [`ErrorKind::Unsupported`] before any data is consumed.
//!
//! This is test code: a failed check panics with a message naming the backend and the case.
//!
//! ```no_run
//! # async fn demo() {
//! use connector_core::testkit::{Harness, counter_names, run_all};
//! use connector_core::MemoryStore;
//! use std::sync::Arc;
//!
//! let store = MemoryStore::new();
//! let harness = Harness::new(
//!     Arc::new(store.source()),
//!     Arc::new(store.sink()),
//!     counter_names("t"),
//! );
//! run_all(&harness).await;
//! # }
//! ```
//!
//! A backend's crate enables the kit in its dev-dependencies
//! (`connector-core = { workspace = true, features = ["testkit"] }`) and runs the cases either
//! all at once with [`run_all`] (every case runs, failures are collected and reported together)
//! or one `#[tokio::test]` per `case_*` function.
//!
//! # Cases
//! | case | needs | checks |
//! |---|---|---|
//! | [`case_check`] | — | `check()` of source and sink succeed |
//! | [`case_round_trip`] | create + append/overwrite | the [`type_matrix`] of [`Harness::types`] reads back equal |
//! | [`case_empty_stream`] | create | zero batches make a readable, empty target; an empty append changes nothing |
//! | [`case_projection`] | create | projected (and reordered) columns |
//! | [`case_filter`] | create | comparisons, and/or/not, is (not) null, in — SQL three-valued logic |
//! | [`case_filter_types`] | create | filters on typed matrix columns agree with [`crate::residual::evaluate`] |
//! | [`case_limit`] | create | limits alone, with a filter, above the row count, zero |
//! | [`case_partitioned_read`] | create | plan(4) partitions return every row once; 1 partition unless `partitioned_reads` |
//! | [`case_overwrite`], [`case_upsert`], [`case_delete`] | create | the mode's effect, or `Unsupported` before reading the stream |
//! | [`case_schema_drift_fail`], [`case_schema_drift_ignore_extra`] | create + append | `SchemaMismatch` / dropped column |
//! | [`case_schema_drift_add_columns`] | create + append + `add_columns` | the column is added, old rows read NULL |
//! | [`case_discover`] | create | the written target is listed with its columns (skipped if discover is `Unsupported`) |
//! | [`case_missing_dataset`] | — | `NotFound`, with connector and operation |
//! | [`case_bad_credentials`] | [`Harness::bad_credentials`] | `Authentication` from check and reads |
//!
//! # Fixtures
//! - [`type_matrix`]: a non-null `Int64` column `id` followed by one nullable column per type,
//!   named by [`column_name`], with deterministic values that include edge cases (minimum and
//!   maximum integers, negative numbers, empty strings, quotes, newlines, emoji, dates before
//!   1970 and far in the future) and about 10% nulls in every nullable column.
//! - [`sample_rows`]: `id: Int64` (non-null), `name: Utf8`, `qty: Int64` (nullable), used by the
//!   projection, filter, limit, partition, write-mode and drift cases. Every backend must be able
//!   to store `Int64` and `Utf8`.

// Panicking is how this test kit reports a failed check (see above); every case would need the
// same `# Panics` section.
#![allow(clippy::missing_panics_doc)]

use crate::drift::describe_schema as describe;
use std::collections::HashSet;
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use arrow::array::{
    Array, ArrayRef, BinaryArray, BooleanArray, Date32Array, Date64Array, Decimal128Array,
    Decimal256Array, DurationMicrosecondArray, DurationMillisecondArray, DurationNanosecondArray,
    DurationSecondArray, FixedSizeBinaryArray, Float32Array, Float64Array, Int8Array, Int16Array,
    Int32Array, Int64Array, IntervalMonthDayNanoArray, LargeBinaryArray, LargeListArray,
    LargeStringArray, ListArray, StringArray, StringViewArray, StructArray, Time32MillisecondArray,
    Time32SecondArray, Time64MicrosecondArray, Time64NanosecondArray, TimestampMicrosecondArray,
    TimestampMillisecondArray, TimestampNanosecondArray, TimestampSecondArray, UInt8Array,
    UInt16Array, UInt32Array, UInt64Array,
};
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::compute::{
    cast, concat_batches, filter_record_batch, sort_to_indices, take_record_batch,
};
use arrow::datatypes::{
    DataType, Field, Fields, IntervalMonthDayNano, IntervalUnit, Schema, SchemaRef, TimeUnit, i256,
};
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use futures::{FutureExt, Stream, StreamExt};

use crate::connector::{Sink, Source};
use crate::error::{Error, ErrorKind, Result};
use crate::request::{
    CmpOp, Expr, Partition, ReadRequest, SchemaDriftPolicy, WriteMode, WriteReport, WriteRequest,
};
use crate::stream::{RecordBatchStream, SendableRecordBatchStream, memory_stream};

/// Produces a fresh, unused target name for one case; the argument is a short case label.
pub type FreshName = Arc<dyn Fn(&str) -> String + Send + Sync>;

/// What the suite needs to know about one backend.
#[derive(Clone)]
pub struct Harness {
    /// The source under test.
    pub source: Arc<dyn Source>,
    /// The sink under test; what it writes must be readable through [`Harness::source`].
    pub sink: Arc<dyn Sink>,
    /// Returns a fresh, unused target name for one case (e.g. a new table in the test's own
    /// schema, a new file path); the same string is used as the sink's
    /// [`WriteRequest::target`] and the source's [`ReadRequest::dataset`].
    pub fresh_name: FreshName,
    /// Arrow types the backend claims to round-trip exactly (the fixture has one nullable column
    /// per type, plus a non-null `Int64` `id` first). Defaults to [`all_types`].
    pub types: Vec<DataType>,
    /// If true, the read-back batch is cast to the written schema before comparison (for formats
    /// without a type system, e.g. CSV with inference).
    pub cast_on_read: bool,
    /// A source built with wrong credentials, if the backend has credentials; its `check()` and
    /// reads must fail with [`ErrorKind::Authentication`].
    pub bad_credentials: Option<Arc<dyn Source>>,
}

impl fmt::Debug for Harness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Harness")
            .field("source", &self.source.name())
            .field("sink", &self.sink.name())
            .field("types", &self.types)
            .field("cast_on_read", &self.cast_on_read)
            .field("bad_credentials", &self.bad_credentials.is_some())
            .finish_non_exhaustive()
    }
}

impl Harness {
    /// A harness over `source` and `sink`, claiming [`all_types`], without casting on read and
    /// without a bad-credentials source.
    pub fn new(source: Arc<dyn Source>, sink: Arc<dyn Sink>, fresh_name: FreshName) -> Self {
        Self {
            source,
            sink,
            fresh_name,
            types: all_types(),
            cast_on_read: false,
            bad_credentials: None,
        }
    }

    /// Set the types the backend round-trips exactly.
    #[must_use]
    pub fn with_types(mut self, types: Vec<DataType>) -> Self {
        self.types = types;
        self
    }

    /// Cast read-back batches to the written schema before comparing.
    #[must_use]
    pub fn with_cast_on_read(mut self, cast_on_read: bool) -> Self {
        self.cast_on_read = cast_on_read;
        self
    }

    /// A source with wrong credentials.
    #[must_use]
    pub fn with_bad_credentials(mut self, source: Arc<dyn Source>) -> Self {
        self.bad_credentials = Some(source);
        self
    }

    /// The backend's name as printed in messages: `"postgres"`, or `"csv→parquet"` when the
    /// source and sink differ.
    #[must_use]
    pub fn label(&self) -> String {
        let (src, sink) = (self.source.name(), self.sink.name());
        if src == sink {
            src.to_owned()
        } else {
            format!("{src}→{sink}")
        }
    }
}

/// How one case ended (a failure panics instead).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every check of the case held.
    Passed,
    /// The backend declares it cannot do what the case needs; the reason says what.
    Skipped(String),
}

/// One line of [`run_all`]'s result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseReport {
    /// The case's name (`"round_trip"`, `"filter"`, …).
    pub case: &'static str,
    /// Passed or skipped; failures make [`run_all`] panic after every case has run.
    pub outcome: Outcome,
    /// Wall time of the case.
    pub elapsed: Duration,
}

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

/// Every type [`type_matrix`] can generate, in a stable order.
#[must_use]
pub fn all_types() -> Vec<DataType> {
    let utc = Some(Arc::from("UTC"));
    vec![
        DataType::Boolean,
        DataType::Int8,
        DataType::Int16,
        DataType::Int32,
        DataType::Int64,
        DataType::UInt8,
        DataType::UInt16,
        DataType::UInt32,
        DataType::UInt64,
        DataType::Float32,
        DataType::Float64,
        DataType::Utf8,
        DataType::LargeUtf8,
        DataType::Utf8View,
        DataType::Binary,
        DataType::LargeBinary,
        DataType::Date32,
        DataType::Date64,
        DataType::Time32(TimeUnit::Second),
        DataType::Time32(TimeUnit::Millisecond),
        DataType::Time64(TimeUnit::Microsecond),
        DataType::Time64(TimeUnit::Nanosecond),
        DataType::Timestamp(TimeUnit::Second, None),
        DataType::Timestamp(TimeUnit::Millisecond, None),
        DataType::Timestamp(TimeUnit::Microsecond, None),
        DataType::Timestamp(TimeUnit::Nanosecond, None),
        DataType::Timestamp(TimeUnit::Second, utc.clone()),
        DataType::Timestamp(TimeUnit::Millisecond, utc.clone()),
        DataType::Timestamp(TimeUnit::Microsecond, utc.clone()),
        DataType::Timestamp(TimeUnit::Nanosecond, utc),
        DataType::Duration(TimeUnit::Second),
        DataType::Duration(TimeUnit::Millisecond),
        DataType::Duration(TimeUnit::Microsecond),
        DataType::Duration(TimeUnit::Nanosecond),
        DataType::Interval(IntervalUnit::MonthDayNano),
        DataType::Decimal128(38, 10),
        DataType::Decimal128(10, 2),
        DataType::Decimal256(76, 10),
        DataType::FixedSizeBinary(16),
        DataType::List(Arc::new(Field::new_list_field(DataType::Int32, true))),
        DataType::Struct(Fields::from(vec![
            Field::new("a", DataType::Int32, true),
            Field::new("b", DataType::Utf8, true),
        ])),
        DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
    ]
}

/// A short, lower-case, SQL-safe name for a type, e.g. `timestamp_us_utc` or `decimal128_38_10`.
#[must_use]
pub fn type_slug(dt: &DataType) -> String {
    fn unit(u: TimeUnit) -> &'static str {
        match u {
            TimeUnit::Second => "s",
            TimeUnit::Millisecond => "ms",
            TimeUnit::Microsecond => "us",
            TimeUnit::Nanosecond => "ns",
        }
    }
    match dt {
        DataType::Timestamp(u, None) => format!("timestamp_{}", unit(*u)),
        DataType::Timestamp(u, Some(tz)) => format!("timestamp_{}_{}", unit(*u), sanitize(tz)),
        DataType::Time32(u) => format!("time32_{}", unit(*u)),
        DataType::Time64(u) => format!("time64_{}", unit(*u)),
        DataType::Duration(u) => format!("duration_{}", unit(*u)),
        DataType::Interval(IntervalUnit::MonthDayNano) => "interval_mdn".to_owned(),
        DataType::Decimal128(p, s) => format!("decimal128_{p}_{s}"),
        DataType::Decimal256(p, s) => format!("decimal256_{p}_{s}"),
        DataType::FixedSizeBinary(n) => format!("fixed_binary_{n}"),
        DataType::List(f) => format!("list_{}", type_slug(f.data_type())),
        DataType::LargeList(f) => format!("large_list_{}", type_slug(f.data_type())),
        DataType::Struct(_) => "struct".to_owned(),
        DataType::Dictionary(k, v) => format!("dict_{}_{}", type_slug(k), type_slug(v)),
        other => sanitize(&other.to_string()),
    }
}

fn sanitize(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    out.trim_matches('_').to_owned()
}

/// The column name [`type_matrix`] gives the `index`-th type (0-based): `c_<slug>`, with the
/// index appended when the same type appears twice.
#[must_use]
pub fn column_name(types: &[DataType], index: usize) -> String {
    let slug = type_slug(&types[index]);
    let dup = types[..index].iter().any(|t| type_slug(t) == slug);
    if dup {
        format!("c_{slug}_{index}")
    } else {
        format!("c_{slug}")
    }
}

/// Strings with the usual troublemakers: empty, quotes, newlines, emoji, right-to-left, the word
/// "null", surrounding spaces, separators and a backslash.
const STRINGS: &[&str] = &[
    "",
    "plain ascii",
    "it's \"quoted\"",
    "line one\nline two\r\nline three",
    "emoji 🦀🎉👩‍👩‍👧",
    "ñandú 日本語 Ελληνικά עברית",
    "comma, semicolon; tab\there",
    "back\\slash",
    "  spaces around  ",
    "null",
];

/// Whether row `i` of the `col`-th column is null: about one row in ten, shifted per column.
fn is_null_at(i: usize, col: usize) -> bool {
    (i + col) % 10 == 9
}

fn int_at(i: usize, min: i128, max: i128) -> i128 {
    match i % 7 {
        0 => min,
        1 => max,
        2 => 0,
        3 => {
            if min < 0 {
                -1
            } else {
                1
            }
        }
        4 => 1,
        _ => {
            let x = (i as i128 * 2_654_435_761) % (max - min);
            if i.is_multiple_of(2) {
                min + x
            } else {
                max - x
            }
        }
    }
}

fn f64_at(i: usize) -> f64 {
    match i % 7 {
        0 => 0.0,
        1 => f64::MAX,
        2 => f64::MIN,
        3 => f64::EPSILON,
        4 => -1.5,
        _ => i as f64 * 0.25 - 100.0,
    }
}

fn f32_at(i: usize) -> f32 {
    match i % 7 {
        0 => 0.0,
        1 => f32::MAX,
        2 => f32::MIN,
        3 => f32::EPSILON,
        4 => -1.5,
        _ => (i % 4096) as f32 * 0.25 - 100.0,
    }
}

fn str_at(i: usize) -> String {
    if i < STRINGS.len() {
        STRINGS[i].to_owned()
    } else {
        format!("{} #{i}", STRINGS[i % STRINGS.len()])
    }
}

fn bytes_at(i: usize) -> Vec<u8> {
    match i % 5 {
        0 => Vec::new(),
        1 => vec![0],
        2 => vec![0xff, 0x00, 0x7f, 0x80],
        3 => b"\x00\n\r'\",\\".to_vec(),
        _ => (0..(i % 13)).map(|j| (i * 31 + j * 7) as u8).collect(),
    }
}

/// Days since the epoch: the epoch, the day before it, 0001-01-01, 9999-12-31, 2024-01-01, others.
fn date_at(i: usize) -> i32 {
    match i % 6 {
        0 => 0,
        1 => -1,
        2 => -719_162,
        3 => 2_932_896,
        4 => 19_723,
        _ => 10_000 + (i as i32 * 37) % 9_000,
    }
}

const NANOS_PER_DAY: i64 = 86_400_000_000_000;

fn time_ns_at(i: usize) -> i64 {
    match i % 4 {
        0 => 0,
        1 => NANOS_PER_DAY - 1,
        2 => NANOS_PER_DAY / 2,
        _ => (i as i64 * 1_234_567_891_234) % NANOS_PER_DAY,
    }
}

fn per_second(u: TimeUnit) -> i64 {
    match u {
        TimeUnit::Second => 1,
        TimeUnit::Millisecond => 1_000,
        TimeUnit::Microsecond => 1_000_000,
        TimeUnit::Nanosecond => 1_000_000_000,
    }
}

/// An instant in `unit`: the epoch, a second before it, 2023, 2099, 1900 and (outside the
/// nanosecond range) years 1 and 9999, with a sub-second part where the unit has one.
fn timestamp_at(i: usize, unit: TimeUnit) -> i64 {
    let far = unit != TimeUnit::Nanosecond;
    let secs: i64 = match i % 7 {
        0 => 0,
        1 => -1,
        2 => 1_700_000_000,
        3 => 4_102_444_799,
        4 => -2_208_988_800,
        5 if far => -62_135_596_800,
        6 if far => 253_402_300_799,
        _ => 1_000_000_000 + i as i64 * 86_413,
    };
    let per = per_second(unit);
    let sub_ns = (i as i64 * 123_456_789) % 1_000_000_000;
    secs * per + sub_ns / (1_000_000_000 / per)
}

fn duration_at(i: usize, unit: TimeUnit) -> i64 {
    match i % 5 {
        0 => 0,
        1 => -1,
        2 => 1,
        3 => 86_400 * per_second(unit),
        _ => i as i64 * 7_777_777 - 1_000_000,
    }
}

fn interval_at(i: usize) -> IntervalMonthDayNano {
    if i.is_multiple_of(5) {
        return IntervalMonthDayNano::new(0, 0, 0);
    }
    IntervalMonthDayNano::new(
        (i % 25) as i32 - 12,
        (i % 61) as i32 - 30,
        (i as i64 * 3_600_123_000) % NANOS_PER_DAY - NANOS_PER_DAY / 2,
    )
}

fn decimal128_at(i: usize, precision: u8) -> i128 {
    let max = 10_i128.pow(u32::from(precision)) - 1;
    match i % 6 {
        0 => 0,
        1 => max,
        2 => -max,
        3 => 1,
        4 => -1,
        _ => {
            let v = (i as i128 * 123_456_789_012_345_678) % max;
            if i.is_multiple_of(2) { v } else { -v }
        }
    }
}

fn decimal256_at(i: usize, precision: u8) -> i256 {
    let max = i256::from_i128(10)
        .wrapping_pow(u32::from(precision))
        .wrapping_sub(i256::ONE);
    match i % 6 {
        0 => i256::ZERO,
        1 => max,
        2 => max.wrapping_neg(),
        3 => i256::ONE,
        4 => i256::MINUS_ONE,
        _ => {
            let v = i256::from_i128(i as i128 * 987_654_321_987_654_321)
                .wrapping_mul(i256::from_i128(1_000_000_007))
                .wrapping_rem(max);
            if i.is_multiple_of(2) {
                v
            } else {
                v.wrapping_neg()
            }
        }
    }
}

fn opt<T>(rows: usize, col: usize, f: impl Fn(usize) -> T) -> Vec<Option<T>> {
    (0..rows)
        .map(|i| (!is_null_at(i, col)).then(|| f(i)))
        .collect()
}

macro_rules! ints {
    ($arr:ty, $t:ty, $rows:expr, $col:expr) => {
        Arc::new(<$arr>::from(opt($rows, $col, |i| {
            int_at(i, i128::from(<$t>::MIN), i128::from(<$t>::MAX)) as $t
        }))) as ArrayRef
    };
}

/// Null where the row is null, for struct parents and their children alike.
fn null_mask(rows: usize, col: usize) -> BooleanArray {
    (0..rows).map(|i| Some(is_null_at(i, col))).collect()
}

fn with_parent_nulls(child: &ArrayRef, rows: usize, col: usize) -> ArrayRef {
    match arrow::compute::kernels::nullif::nullif(child, &null_mask(rows, col)) {
        Ok(a) => a,
        Err(e) => panic!("type_matrix: cannot null struct child: {e}"),
    }
}

/// One column of `rows` values of `dt`; `col` shifts the null pattern and the values.
#[allow(clippy::match_same_arms)]
fn column(dt: &DataType, rows: usize, col: usize) -> ArrayRef {
    let opt64 = |f: &dyn Fn(usize) -> i64| opt(rows, col, f);
    match dt {
        DataType::Boolean => Arc::new(BooleanArray::from(opt(rows, col, |i| i % 3 == 0))),
        DataType::Int8 => ints!(Int8Array, i8, rows, col),
        DataType::Int16 => ints!(Int16Array, i16, rows, col),
        DataType::Int32 => ints!(Int32Array, i32, rows, col),
        DataType::Int64 => ints!(Int64Array, i64, rows, col),
        DataType::UInt8 => ints!(UInt8Array, u8, rows, col),
        DataType::UInt16 => ints!(UInt16Array, u16, rows, col),
        DataType::UInt32 => ints!(UInt32Array, u32, rows, col),
        DataType::UInt64 => ints!(UInt64Array, u64, rows, col),
        DataType::Float32 => Arc::new(Float32Array::from(opt(rows, col, f32_at))),
        DataType::Float64 => Arc::new(Float64Array::from(opt(rows, col, f64_at))),
        DataType::Utf8 => Arc::new(StringArray::from(opt(rows, col, str_at))),
        DataType::LargeUtf8 => Arc::new(LargeStringArray::from(opt(rows, col, str_at))),
        DataType::Utf8View => Arc::new(StringViewArray::from_iter(opt(rows, col, str_at))),
        DataType::Binary => Arc::new(BinaryArray::from_iter(opt(rows, col, bytes_at))),
        DataType::LargeBinary => Arc::new(LargeBinaryArray::from_iter(opt(rows, col, bytes_at))),
        DataType::Date32 => Arc::new(Date32Array::from(opt(rows, col, date_at))),
        DataType::Date64 => Arc::new(Date64Array::from(opt64(&|i| {
            i64::from(date_at(i)) * 86_400_000
        }))),
        DataType::Time32(TimeUnit::Second) => {
            Arc::new(Time32SecondArray::from(opt(rows, col, |i| {
                (time_ns_at(i) / 1_000_000_000) as i32
            })))
        }
        DataType::Time32(TimeUnit::Millisecond) => {
            Arc::new(Time32MillisecondArray::from(opt(rows, col, |i| {
                (time_ns_at(i) / 1_000_000) as i32
            })))
        }
        DataType::Time64(TimeUnit::Microsecond) => {
            Arc::new(Time64MicrosecondArray::from(opt64(&|i| {
                time_ns_at(i) / 1_000
            })))
        }
        DataType::Time64(TimeUnit::Nanosecond) => {
            Arc::new(Time64NanosecondArray::from(opt64(&time_ns_at)))
        }
        DataType::Timestamp(unit, tz) => {
            let v = opt64(&|i| timestamp_at(i, *unit));
            let a: ArrayRef = match unit {
                TimeUnit::Second => {
                    Arc::new(TimestampSecondArray::from(v).with_timezone_opt(tz.clone()))
                }
                TimeUnit::Millisecond => {
                    Arc::new(TimestampMillisecondArray::from(v).with_timezone_opt(tz.clone()))
                }
                TimeUnit::Microsecond => {
                    Arc::new(TimestampMicrosecondArray::from(v).with_timezone_opt(tz.clone()))
                }
                TimeUnit::Nanosecond => {
                    Arc::new(TimestampNanosecondArray::from(v).with_timezone_opt(tz.clone()))
                }
            };
            a
        }
        DataType::Duration(unit) => {
            let v = opt64(&|i| duration_at(i, *unit));
            match unit {
                TimeUnit::Second => Arc::new(DurationSecondArray::from(v)),
                TimeUnit::Millisecond => Arc::new(DurationMillisecondArray::from(v)),
                TimeUnit::Microsecond => Arc::new(DurationMicrosecondArray::from(v)),
                TimeUnit::Nanosecond => Arc::new(DurationNanosecondArray::from(v)),
            }
        }
        DataType::Interval(IntervalUnit::MonthDayNano) => {
            Arc::new(IntervalMonthDayNanoArray::from(opt(rows, col, interval_at)))
        }
        DataType::Decimal128(precision, scale) => {
            let values = Decimal128Array::from(opt(rows, col, |i| decimal128_at(i, *precision)));
            match values.with_precision_and_scale(*precision, *scale) {
                Ok(a) => Arc::new(a),
                Err(e) => panic!("type_matrix: {dt}: {e}"),
            }
        }
        DataType::Decimal256(precision, scale) => {
            let values = Decimal256Array::from(opt(rows, col, |i| decimal256_at(i, *precision)));
            match values.with_precision_and_scale(*precision, *scale) {
                Ok(a) => Arc::new(a),
                Err(e) => panic!("type_matrix: {dt}: {e}"),
            }
        }
        DataType::FixedSizeBinary(n) => {
            let n = usize::try_from(*n).unwrap_or(0);
            let values = opt(rows, col, |i| -> Vec<u8> {
                match i % 4 {
                    0 => vec![0; n],
                    1 => vec![0xff; n],
                    _ => (0..n).map(|j| (i * 31 + j * 7) as u8).collect(),
                }
            });
            match FixedSizeBinaryArray::try_from_sparse_iter_with_size(values.into_iter(), n as i32)
            {
                Ok(a) => Arc::new(a),
                Err(e) => panic!("type_matrix: {dt}: {e}"),
            }
        }
        DataType::List(field) | DataType::LargeList(field) => {
            assert!(
                field.is_nullable(),
                "type_matrix: {dt}: the item field must be nullable"
            );
            let lengths: Vec<usize> = (0..rows)
                .map(|i| if is_null_at(i, col) { 0 } else { i % 4 })
                .collect();
            let child = column(field.data_type(), lengths.iter().sum(), col + 3);
            let nulls = Some(
                (0..rows)
                    .map(|i| !is_null_at(i, col))
                    .collect::<NullBuffer>(),
            );
            let out: std::result::Result<ArrayRef, _> = if matches!(dt, DataType::List(_)) {
                ListArray::try_new(
                    field.clone(),
                    OffsetBuffer::from_lengths(lengths),
                    child,
                    nulls,
                )
                .map(|a| Arc::new(a) as ArrayRef)
            } else {
                LargeListArray::try_new(
                    field.clone(),
                    OffsetBuffer::from_lengths(lengths),
                    child,
                    nulls,
                )
                .map(|a| Arc::new(a) as ArrayRef)
            };
            match out {
                Ok(a) => a,
                Err(e) => panic!("type_matrix: {dt}: {e}"),
            }
        }
        DataType::Struct(fields) => {
            let children: Vec<ArrayRef> = fields
                .iter()
                .enumerate()
                .map(|(k, f)| {
                    assert!(
                        f.is_nullable(),
                        "type_matrix: {dt}: child {} must be nullable",
                        f.name()
                    );
                    with_parent_nulls(&column(f.data_type(), rows, col + k + 1), rows, col)
                })
                .collect();
            let nulls = Some(
                (0..rows)
                    .map(|i| !is_null_at(i, col))
                    .collect::<NullBuffer>(),
            );
            match StructArray::try_new(fields.clone(), children, nulls) {
                Ok(a) => Arc::new(a),
                Err(e) => panic!("type_matrix: {dt}: {e}"),
            }
        }
        DataType::Dictionary(_, value) => {
            // Few distinct values, as dictionaries are meant for.
            let values: ArrayRef = if matches!(value.as_ref(), DataType::Utf8) {
                Arc::new(StringArray::from(opt(rows, col, |i| STRINGS[i % 4])))
            } else {
                column(value, rows, col)
            };
            match cast(&values, dt) {
                Ok(a) => a,
                Err(e) => panic!("type_matrix: {dt}: {e}"),
            }
        }
        other => panic!(
            "type_matrix: type {other} is not supported; supported types are listed by all_types()"
        ),
    }
}

/// A batch with a non-null `Int64` column `id` (`0..rows`) followed by one nullable column per
/// type in `types`, named by [`column_name`]. Values are deterministic and include edge cases;
/// about 10% of every nullable column is null.
///
/// # Panics
/// On a type it cannot generate (see [`all_types`]).
#[must_use]
pub fn type_matrix(types: &[DataType], rows: usize) -> RecordBatch {
    let mut fields = vec![Field::new("id", DataType::Int64, false)];
    let mut columns: Vec<ArrayRef> = vec![Arc::new(Int64Array::from_iter_values(
        (0..rows).map(|i| i as i64),
    ))];
    for (k, dt) in types.iter().enumerate() {
        fields.push(Field::new(column_name(types, k), dt.clone(), true));
        columns.push(column(dt, rows, k + 1));
    }
    match RecordBatch::try_new(Arc::new(Schema::new(fields)), columns) {
        Ok(b) => b,
        Err(e) => panic!("type_matrix: {e}"),
    }
}

/// The schema of [`sample_rows`].
#[must_use]
pub fn sample_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("qty", DataType::Int64, true),
    ]))
}

fn sample_name(id: i64, tag: &str) -> String {
    const GROUPS: [&str; 4] = ["alpha", "beta", "gamma", "delta"];
    format!("{tag}{}-{id}", GROUPS[id.rem_euclid(4) as usize])
}

fn sample_qty(id: i64) -> Option<i64> {
    (id.rem_euclid(10) != 4).then(|| (id * 37).rem_euclid(101) - 50)
}

/// Rows `id`, `name` (`"<tag><group>-<id>"`, group one of alpha/beta/gamma/delta by `id % 4`,
/// never null) and `qty` (null when `id % 10 == 4`, else `(id * 37) mod 101 - 50`).
///
/// # Panics
/// Never for valid input; the arrays always match the schema.
#[must_use]
pub fn sample_rows(ids: impl IntoIterator<Item = i64>, tag: &str) -> RecordBatch {
    let ids: Vec<i64> = ids.into_iter().collect();
    let names: StringArray = ids.iter().map(|id| Some(sample_name(*id, tag))).collect();
    let qty: Int64Array = ids.iter().map(|id| sample_qty(*id)).collect();
    match RecordBatch::try_new(
        sample_schema(),
        vec![
            Arc::new(Int64Array::from(ids)),
            Arc::new(names),
            Arc::new(qty),
        ],
    ) {
        Ok(b) => b,
        Err(e) => panic!("sample_rows: {e}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Comparison
// ---------------------------------------------------------------------------------------------

/// Compare two batches as sets of rows: same column names in the same order, same types, same
/// rows after sorting both by `id` (when there is an `id` column). `None` when equal, else a
/// readable description of the differences.
#[must_use]
pub fn diff_rows(expected: &RecordBatch, actual: &RecordBatch) -> Option<String> {
    let es = expected.schema();
    let as_ = actual.schema();
    let names =
        |s: &Schema| -> Vec<String> { s.fields().iter().map(|f| f.name().clone()).collect() };
    if names(&es) != names(&as_) {
        return Some(format!(
            "columns differ:\n  expected {:?}\n  actual   {:?}",
            names(&es),
            names(&as_)
        ));
    }
    let mut out = Vec::new();
    for (e, a) in es.fields().iter().zip(as_.fields()) {
        if e.data_type() != a.data_type() {
            out.push(format!(
                "column {:?}: expected type {}, actual type {}",
                e.name(),
                e.data_type(),
                a.data_type()
            ));
        }
    }
    if !out.is_empty() {
        return Some(out.join("\n"));
    }
    if expected.num_rows() != actual.num_rows() {
        out.push(format!(
            "expected {} rows, got {}",
            expected.num_rows(),
            actual.num_rows()
        ));
    }
    let expected = sort_by_id(expected);
    let actual = sort_by_id(actual);
    if let (Some(e_ids), Some(a_ids)) = (id_values(&expected), id_values(&actual)) {
        let e_set: HashSet<i64> = e_ids.iter().copied().collect();
        let a_set: HashSet<i64> = a_ids.iter().copied().collect();
        let mut missing: Vec<i64> = e_set.difference(&a_set).copied().collect();
        let mut extra: Vec<i64> = a_set.difference(&e_set).copied().collect();
        missing.sort_unstable();
        extra.sort_unstable();
        let dups = a_ids.len() - a_set.len();
        if !missing.is_empty() {
            out.push(format!("missing ids: {}", preview(&missing)));
        }
        if !extra.is_empty() {
            out.push(format!("unexpected ids: {}", preview(&extra)));
        }
        if dups > 0 {
            out.push(format!("{dups} duplicate ids in the actual rows"));
        }
        if !out.is_empty() {
            return Some(out.join("\n"));
        }
    }
    if !out.is_empty() {
        return Some(out.join("\n"));
    }
    let opts = FormatOptions::default().with_null("NULL");
    let id_col = expected.schema().index_of("id").ok();
    for (k, field) in es.fields().iter().enumerate() {
        let (e, a) = (expected.column(k), actual.column(k));
        if e.as_ref() == a.as_ref() {
            continue;
        }
        let fe = ArrayFormatter::try_new(e.as_ref(), &opts);
        let fa = ArrayFormatter::try_new(a.as_ref(), &opts);
        let mut shown = 0;
        let mut differing = 0;
        for r in 0..e.len() {
            if e.slice(r, 1).as_ref() == a.slice(r, 1).as_ref() {
                continue;
            }
            differing += 1;
            if shown < 5 {
                shown += 1;
                let row = id_col.map_or_else(
                    || format!("row {r}"),
                    |i| {
                        ArrayFormatter::try_new(expected.column(i).as_ref(), &opts)
                            .map_or_else(|_| format!("row {r}"), |f| format!("id {}", f.value(r)))
                    },
                );
                let show = |f: &std::result::Result<ArrayFormatter<'_>, _>| match f {
                    Ok(f) => format!("{:?}", f.value(r).to_string()),
                    Err(_) => "<unformattable>".to_owned(),
                };
                out.push(format!(
                    "column {:?}, {row}: expected {} got {}",
                    field.name(),
                    show(&fe),
                    show(&fa)
                ));
            }
        }
        if differing == 0 {
            // Equal value by value but not as arrays: a layout difference (e.g. the field
            // metadata or nullability of nested fields).
            out.push(format!(
                "column {:?}: arrays differ in layout: expected {:?} got {:?}",
                field.name(),
                e.data_type(),
                a.data_type()
            ));
        } else if differing > shown {
            out.push(format!(
                "column {:?}: … {} more differing rows",
                field.name(),
                differing - shown
            ));
        }
    }
    if out.is_empty() {
        None
    } else {
        Some(out.join("\n"))
    }
}

/// Assert that two batches hold the same rows (see [`diff_rows`]).
///
/// # Panics
/// When they differ, with a description of every difference.
pub fn assert_same_rows(expected: &RecordBatch, actual: &RecordBatch) {
    if let Some(d) = diff_rows(expected, actual) {
        panic!("rows differ:\n{d}");
    }
}

fn preview(ids: &[i64]) -> String {
    let shown: Vec<String> = ids.iter().take(20).map(ToString::to_string).collect();
    if ids.len() > 20 {
        format!("[{}, … {} in all]", shown.join(", "), ids.len())
    } else {
        format!("[{}]", shown.join(", "))
    }
}

fn id_values(batch: &RecordBatch) -> Option<Vec<i64>> {
    let col = batch.column_by_name("id")?;
    let col = cast(col, &DataType::Int64).ok()?;
    let ids = col.as_any().downcast_ref::<Int64Array>()?;
    if ids.null_count() > 0 {
        return None;
    }
    Some(ids.values().to_vec())
}

fn sort_by_id(batch: &RecordBatch) -> RecordBatch {
    let Some(col) = batch.column_by_name("id") else {
        return batch.clone();
    };
    match sort_to_indices(col, None, None).and_then(|idx| take_record_batch(batch, &idx)) {
        Ok(b) => b,
        Err(_) => batch.clone(),
    }
}

fn rows_with_ids(batch: &RecordBatch, ids: &HashSet<i64>) -> RecordBatch {
    let Some(all) = id_values(batch) else {
        return batch.clone();
    };
    let mask: BooleanArray = all.iter().map(|id| Some(ids.contains(id))).collect();
    filter_record_batch(batch, &mask).unwrap_or_else(|e| panic!("filter fixture: {e}"))
}

fn concat(schema: &SchemaRef, batches: &[RecordBatch]) -> RecordBatch {
    concat_batches(schema, batches).unwrap_or_else(|e| panic!("concat fixture: {e}"))
}

fn project(batch: &RecordBatch, columns: &[&str]) -> RecordBatch {
    let idx: Vec<usize> = columns
        .iter()
        .map(|c| {
            batch
                .schema()
                .index_of(c)
                .unwrap_or_else(|e| panic!("project fixture: {e}"))
        })
        .collect();
    batch
        .project(&idx)
        .unwrap_or_else(|e| panic!("project fixture: {e}"))
}

// ---------------------------------------------------------------------------------------------
// Case plumbing
// ---------------------------------------------------------------------------------------------

/// One running case: names the backend and the case in every message.
struct Case<'a> {
    h: &'a Harness,
    name: &'static str,
}

impl<'a> Case<'a> {
    fn new(h: &'a Harness, name: &'static str) -> Self {
        Self { h, name }
    }

    fn prefix(&self) -> String {
        format!("conformance [{}] {}", self.h.label(), self.name)
    }

    fn fail(&self, msg: impl fmt::Display) -> ! {
        panic!("{}: FAILED: {msg}", self.prefix())
    }

    fn check(&self, cond: bool, msg: impl FnOnce() -> String) {
        if !cond {
            self.fail(msg());
        }
    }

    fn ok<T>(&self, r: Result<T>, what: &str) -> T {
        match r {
            Ok(v) => v,
            Err(e) => self.fail(format!("{what} failed: {e}")),
        }
    }

    fn expect_kind<T>(&self, r: Result<T>, kind: ErrorKind, what: &str) -> Error {
        match r {
            Ok(_) => self.fail(format!("{what} succeeded; expected a {kind} error")),
            Err(e) if e.kind() == kind => e,
            Err(e) => self.fail(format!("{what}: expected a {kind} error, got {e}")),
        }
    }

    fn same_rows(&self, what: &str, expected: &RecordBatch, actual: &RecordBatch) {
        if let Some(d) = diff_rows(expected, actual) {
            self.fail(format!("{what}: rows differ:\n{d}"));
        }
    }

    fn passed(&self, note: &str) -> Outcome {
        if note.is_empty() {
            println!("{}: ok", self.prefix());
        } else {
            println!("{}: ok ({note})", self.prefix());
        }
        Outcome::Passed
    }

    fn skip(&self, reason: impl Into<String>) -> Outcome {
        let reason = reason.into();
        println!("{}: SKIPPED: {reason}", self.prefix());
        Outcome::Skipped(reason)
    }

    fn fresh(&self) -> String {
        (self.h.fresh_name)(self.name)
    }

    /// The mode used to put fixtures into a fresh target, or why that is impossible.
    fn setup_mode(&self) -> std::result::Result<WriteMode, String> {
        let caps = self.h.sink.capabilities();
        if !caps.create_if_missing {
            return Err("the sink cannot create targets (create_if_missing)".to_owned());
        }
        if caps.append {
            Ok(WriteMode::Append)
        } else if caps.overwrite {
            Ok(WriteMode::Overwrite)
        } else {
            Err("the sink supports neither append nor overwrite".to_owned())
        }
    }

    async fn write(
        &self,
        request: WriteRequest,
        batches: Vec<RecordBatch>,
        schema: SchemaRef,
    ) -> Result<WriteReport> {
        self.h
            .sink
            .write(request, memory_stream(schema, batches))
            .await
    }

    /// Write `batches` into a fresh target with the setup mode; returns the target.
    async fn setup(
        &self,
        mode: &WriteMode,
        batches: Vec<RecordBatch>,
        schema: SchemaRef,
    ) -> String {
        let name = self.fresh();
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        let req = WriteRequest::append(&name);
        let req = WriteRequest {
            mode: mode.clone(),
            ..req
        };
        let report = self.ok(
            self.write(req, batches, schema).await,
            "writing the fixture",
        );
        self.check(report.rows == rows as u64, || {
            format!(
                "the write report counts {} rows, {rows} were written",
                report.rows
            )
        });
        name
    }

    /// Read one partition's stream, checking that every batch has the stream's schema.
    async fn collect(&self, stream: SendableRecordBatchStream, what: &str) -> Result<RecordBatch> {
        let schema = stream.schema();
        let mut stream = stream;
        let mut batches = Vec::new();
        while let Some(b) = stream.next().await {
            let b = b?;
            self.check(same_fields(&b.schema(), &schema), || {
                format!(
                    "{what}: a batch's schema ({}) differs from the stream's schema ({})",
                    describe(&b.schema()),
                    describe(&schema)
                )
            });
            batches.push(b);
        }
        Ok(concat_batches(&schema, &batches)?)
    }

    /// Plan `request` as one partition and read it.
    async fn read(&self, request: ReadRequest, what: &str) -> Result<RecordBatch> {
        let parts = self.h.source.plan(&request, 1).await?;
        self.check(parts.len() == 1, || {
            format!(
                "{what}: plan with max_partitions=1 returned {} partitions",
                parts.len()
            )
        });
        let mut parts = parts;
        let stream = self.h.source.read(parts.remove(0)).await?;
        self.collect(stream, what).await
    }

    /// Read and conform to `expected`'s schema (casting when the harness asks for it).
    async fn read_ok(&self, request: ReadRequest, expected: &Schema, what: &str) -> RecordBatch {
        let got = self.ok(self.read(request, what).await, what);
        self.conform(got, expected)
    }

    fn conform(&self, got: RecordBatch, expected: &Schema) -> RecordBatch {
        if !self.h.cast_on_read || got.num_columns() != expected.fields().len() {
            return got;
        }
        let mut fields = Vec::new();
        let mut columns = Vec::new();
        for (k, f) in expected.fields().iter().enumerate() {
            let actual = got.schema().field(k).clone();
            if actual.name() != f.name() {
                return got;
            }
            let c = match cast(got.column(k), f.data_type()) {
                Ok(c) => c,
                Err(e) => self.fail(format!(
                    "cast_on_read: cannot cast column {:?} from {} to {}: {e}",
                    f.name(),
                    actual.data_type(),
                    f.data_type()
                )),
            };
            fields.push(actual.with_data_type(f.data_type().clone()));
            columns.push(c);
        }
        let opts =
            arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(got.num_rows()));
        self.ok(
            RecordBatch::try_new_with_options(Arc::new(Schema::new(fields)), columns, &opts)
                .map_err(Error::from),
            "cast_on_read",
        )
    }

    /// Refusal of an unsupported mode: `Unsupported`, before consuming any data.
    async fn expect_unsupported(&self, request: WriteRequest) {
        let mode = format!("{:?}", request.mode);
        let polled = Arc::new(AtomicBool::new(false));
        let probe = Probe {
            inner: memory_stream(sample_schema(), vec![sample_rows(0..3, "")]),
            polled: polled.clone(),
        };
        let r = self.h.sink.write(request, Box::pin(probe)).await;
        self.expect_kind(
            r,
            ErrorKind::Unsupported,
            &format!("write with unsupported mode {mode}"),
        );
        self.check(!polled.load(Ordering::SeqCst), || {
            format!("the sink consumed data before refusing the unsupported mode {mode}")
        });
    }
}

fn same_fields(a: &Schema, b: &Schema) -> bool {
    a.fields().len() == b.fields().len()
        && a.fields()
            .iter()
            .zip(b.fields())
            .all(|(x, y)| x.name() == y.name() && x.data_type() == y.data_type())
}

/// A stream that records whether anyone polled it.
struct Probe {
    inner: SendableRecordBatchStream,
    polled: Arc<AtomicBool>,
}

impl Stream for Probe {
    type Item = Result<RecordBatch>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.polled.store(true, Ordering::SeqCst);
        self.inner.poll_next_unpin(cx)
    }
}

impl RecordBatchStream for Probe {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }
}

/// Rows in the shared sample fixture.
const SAMPLE_ROWS: i64 = 200;
/// Rows in the type matrix of the round-trip case.
const MATRIX_ROWS: usize = 100;

// ---------------------------------------------------------------------------------------------
// Cases
// ---------------------------------------------------------------------------------------------

/// `check()` succeeds on the source and the sink.
pub async fn case_check(h: &Harness) -> Outcome {
    let c = Case::new(h, "check");
    c.ok(h.source.check().await, "source check");
    c.ok(h.sink.check().await, "sink check");
    c.passed("")
}

/// The type matrix of [`Harness::types`], written in two batches with create-if-missing and read
/// back, equals what was written.
pub async fn case_round_trip(h: &Harness) -> Outcome {
    let c = Case::new(h, "round_trip");
    let mode = match c.setup_mode() {
        Ok(m) => m,
        Err(why) => return c.skip(why),
    };
    if h.types.is_empty() {
        return c.skip("the harness lists no types");
    }
    let matrix = type_matrix(&h.types, MATRIX_ROWS);
    let split = MATRIX_ROWS * 3 / 5;
    let batches = vec![
        matrix.slice(0, split),
        matrix.slice(split, MATRIX_ROWS - split),
    ];
    let name = c.setup(&mode, batches, matrix.schema()).await;
    let got = c
        .read_ok(ReadRequest::dataset(&name), &matrix.schema(), "read back")
        .await;
    c.same_rows("round trip of the type matrix", &matrix, &got);
    c.passed(&format!("{} types", h.types.len()))
}

/// Writing zero batches creates a readable target with 0 rows; reading it yields 0 rows with the
/// written schema (and so does a projection of it).
pub async fn case_empty_stream(h: &Harness) -> Outcome {
    let c = Case::new(h, "empty_stream");
    let mode = match c.setup_mode() {
        Ok(m) => m,
        Err(why) => return c.skip(why),
    };
    let name = c.setup(&mode, Vec::new(), sample_schema()).await;
    let expected = sample_rows(std::iter::empty(), "");
    let got = c
        .read_ok(
            ReadRequest::dataset(&name),
            &sample_schema(),
            "read of the empty target",
        )
        .await;
    c.same_rows("empty target", &expected, &got);
    let got = c
        .read_ok(
            ReadRequest::dataset(&name).with_projection(["qty", "id"]),
            &project(&expected, &["qty", "id"]).schema(),
            "projected read of the empty target",
        )
        .await;
    c.same_rows(
        "projected empty target",
        &project(&expected, &["qty", "id"]),
        &got,
    );
    if mode != WriteMode::Append {
        return c.passed("no append: empty write to an existing target not checked");
    }
    // An empty append leaves an existing target as it was.
    let rows = sample_rows(0..3, "");
    let report = c.ok(
        c.write(
            WriteRequest::append(&name),
            vec![rows.clone()],
            sample_schema(),
        )
        .await,
        "append of 3 rows",
    );
    c.check(report.rows == 3, || {
        format!("append report counts {} rows, 3 written", report.rows)
    });
    let report = c.ok(
        c.write(WriteRequest::append(&name), Vec::new(), sample_schema())
            .await,
        "append of no batches",
    );
    c.check(report.rows == 0, || {
        format!("an empty append reports {} rows", report.rows)
    });
    let got = c
        .read_ok(
            ReadRequest::dataset(&name),
            &sample_schema(),
            "read after an empty append",
        )
        .await;
    c.same_rows("target after an empty append", &rows, &got);
    c.passed("")
}

/// Write the sample fixture for a read-side case, or say why not.
async fn sample_target(c: &Case<'_>) -> std::result::Result<(String, RecordBatch), String> {
    let mode = c.setup_mode()?;
    let rows = sample_rows(0..SAMPLE_ROWS, "");
    let half = (SAMPLE_ROWS / 2) as usize;
    let batches = vec![
        rows.slice(0, half),
        rows.slice(half, rows.num_rows() - half),
    ];
    let name = c.setup(&mode, batches, sample_schema()).await;
    Ok((name, rows))
}

/// Projections return exactly the named columns in the requested order.
pub async fn case_projection(h: &Harness) -> Outcome {
    let c = Case::new(h, "projection");
    let (name, rows) = match sample_target(&c).await {
        Ok(t) => t,
        Err(why) => return c.skip(why),
    };
    for cols in [
        vec!["id", "name", "qty"],
        vec!["qty", "id"],
        vec!["name", "id"],
        vec!["id"],
    ] {
        let expected = project(&rows, &cols);
        let got = c
            .read_ok(
                ReadRequest::dataset(&name).with_projection(cols.iter().copied()),
                &expected.schema(),
                &format!("read with projection {cols:?}"),
            )
            .await;
        c.same_rows(&format!("projection {cols:?}"), &expected, &got);
    }
    let pushed = h.source.capabilities().projection_pushdown;
    c.passed(if pushed {
        "pushed down"
    } else {
        "applied locally"
    })
}

type RowPredicate = fn(i64, &str, Option<i64>) -> bool;

fn filter_cases() -> Vec<(&'static str, Expr, RowPredicate)> {
    vec![
        ("id > 150", Expr::cmp("id", CmpOp::Gt, 150), |id, _, _| {
            id > 150
        }),
        ("id <> 7", Expr::cmp("id", CmpOp::NotEq, 7), |id, _, _| {
            id != 7
        }),
        (
            "id >= 10 AND id < 20",
            Expr::cmp("id", CmpOp::GtEq, 10).and(Expr::cmp("id", CmpOp::Lt, 20)),
            |id, _, _| (10..20).contains(&id),
        ),
        (
            "qty < 0 OR id = 3",
            Expr::cmp("qty", CmpOp::Lt, 0).or(Expr::eq("id", 3)),
            |id, _, q| q.is_some_and(|q| q < 0) || id == 3,
        ),
        (
            "NOT (qty > 0)",
            Expr::cmp("qty", CmpOp::Gt, 0).not(),
            |_, _, q| q.is_some_and(|q| q <= 0),
        ),
        (
            "NOT (id <= 100 OR qty IS NULL)",
            Expr::cmp("id", CmpOp::LtEq, 100)
                .or(Expr::IsNull("qty".into()))
                .not(),
            |id, _, q| id > 100 && q.is_some(),
        ),
        ("qty IS NULL", Expr::IsNull("qty".into()), |_, _, q| {
            q.is_none()
        }),
        (
            "qty IS NOT NULL AND id < 30",
            Expr::IsNotNull("qty".into()).and(Expr::cmp("id", CmpOp::Lt, 30)),
            |id, _, q| q.is_some() && id < 30,
        ),
        (
            "id IN (1, 5, 9999)",
            Expr::is_in("id", [1, 5, 9999]),
            |id, _, _| matches!(id, 1 | 5 | 9999),
        ),
        (
            "name IN ('beta-5', 'gamma-2', 'nope')",
            Expr::is_in("name", ["beta-5", "gamma-2", "nope"]),
            |_, n, _| matches!(n, "beta-5" | "gamma-2"),
        ),
        (
            "name = 'delta-3'",
            Expr::eq("name", "delta-3"),
            |_, n, _| n == "delta-3",
        ),
        (
            "name >= 'gamma'",
            Expr::cmp("name", CmpOp::GtEq, "gamma"),
            |_, n, _| n >= "gamma",
        ),
        ("id = -1 (no rows)", Expr::eq("id", -1), |id, _, _| id == -1),
    ]
}

fn expected_for(rows: &RecordBatch, pred: RowPredicate) -> RecordBatch {
    let ids = id_values(rows).unwrap_or_default();
    let mask: BooleanArray = ids
        .iter()
        .map(|id| {
            let name = sample_name(*id, "");
            Some(pred(*id, &name, sample_qty(*id)))
        })
        .collect();
    filter_record_batch(rows, &mask).unwrap_or_else(|e| panic!("filter fixture: {e}"))
}

/// Filters (comparisons, and/or/not, is null, in) return exactly the matching rows, with SQL
/// three-valued logic, whether pushed down or not; also combined with a projection that leaves
/// out the filtered column.
pub async fn case_filter(h: &Harness) -> Outcome {
    let c = Case::new(h, "filter");
    let (name, rows) = match sample_target(&c).await {
        Ok(t) => t,
        Err(why) => return c.skip(why),
    };
    let cases = filter_cases();
    for (label, expr, pred) in &cases {
        let expected = expected_for(&rows, *pred);
        let got = c
            .read_ok(
                ReadRequest::dataset(&name).with_filter(expr.clone()),
                &rows.schema(),
                &format!("read with filter {label}"),
            )
            .await;
        c.same_rows(&format!("filter {label}"), &expected, &got);
    }
    // Filter on a column the projection leaves out.
    let expected = project(
        &expected_for(&rows, |_, _, q| q.is_some_and(|q| q > 10)),
        &["name", "id"],
    );
    let got = c
        .read_ok(
            ReadRequest::dataset(&name)
                .with_filter(Expr::cmp("qty", CmpOp::Gt, 10))
                .with_projection(["name", "id"]),
            &expected.schema(),
            "read with filter qty > 10 and projection [name, id]",
        )
        .await;
    c.same_rows(
        "filter qty > 10 with projection [name, id]",
        &expected,
        &got,
    );
    let pushed = h.source.capabilities().filter_pushdown;
    c.passed(&format!(
        "{} filters, {}",
        cases.len() + 1,
        if pushed {
            "pushed down"
        } else {
            "applied locally"
        }
    ))
}

/// Limits return exactly `min(limit, matching rows)` distinct rows of the dataset.
pub async fn case_limit(h: &Harness) -> Outcome {
    let c = Case::new(h, "limit");
    let (name, rows) = match sample_target(&c).await {
        Ok(t) => t,
        Err(why) => return c.skip(why),
    };
    let not_null = expected_for(&rows, |_, _, q| q.is_some());
    let checks: Vec<(String, ReadRequest, &RecordBatch, usize)> = vec![
        (
            "limit 17".into(),
            ReadRequest::dataset(&name).with_limit(17),
            &rows,
            17,
        ),
        (
            "limit 0".into(),
            ReadRequest::dataset(&name).with_limit(0),
            &rows,
            0,
        ),
        (
            "limit above the row count".into(),
            ReadRequest::dataset(&name).with_limit(10_000),
            &rows,
            rows.num_rows(),
        ),
        (
            "limit 1 with batch_rows 1".into(),
            ReadRequest::dataset(&name).with_limit(1).with_batch_rows(1),
            &rows,
            1,
        ),
        (
            "limit 5 with filter qty IS NOT NULL".into(),
            ReadRequest::dataset(&name)
                .with_filter(Expr::IsNotNull("qty".into()))
                .with_limit(5),
            &not_null,
            5,
        ),
    ];
    for (label, request, pool, want) in checks {
        let got = c
            .read_ok(request, &rows.schema(), &format!("read with {label}"))
            .await;
        c.check(got.num_rows() == want, || {
            format!("{label}: expected {want} rows, got {}", got.num_rows())
        });
        let ids: HashSet<i64> = id_values(&got).unwrap_or_default().into_iter().collect();
        c.check(ids.len() == got.num_rows(), || {
            format!("{label}: duplicate or null ids")
        });
        c.same_rows(&label, &rows_with_ids(pool, &ids), &got);
    }
    let pushed = h.source.capabilities().limit_pushdown;
    c.passed(if pushed {
        "pushed down"
    } else {
        "applied locally"
    })
}

/// Planning 4 partitions returns 1..=4 partitions (exactly 1 without `partitioned_reads`) that
/// survive a serde round trip and together return every row exactly once, also with a filter
/// and a projection.
pub async fn case_partitioned_read(h: &Harness) -> Outcome {
    let c = Case::new(h, "partitioned_read");
    let (name, rows) = match sample_target(&c).await {
        Ok(t) => t,
        Err(why) => return c.skip(why),
    };
    let claimed = h.source.capabilities().partitioned_reads;
    let filtered = project(&expected_for(&rows, |id, _, _| id % 3 != 0), &["qty", "id"]);
    let mut counts = Vec::new();
    for (label, request, expected) in [
        ("all rows", ReadRequest::dataset(&name), rows.clone()),
        (
            "filter id % 3 <> 0 (as NOT IN), projection [qty, id]",
            ReadRequest::dataset(&name)
                .with_filter(Expr::is_in("id", (0..SAMPLE_ROWS).filter(|i| i % 3 == 0)).not())
                .with_projection(["qty", "id"]),
            filtered.clone(),
        ),
    ] {
        let parts = c.ok(
            h.source.plan(&request, 4).await,
            "plan with max_partitions=4",
        );
        let n = parts.len();
        c.check((1..=4).contains(&n), || {
            format!("{label}: plan(4) returned {n} partitions")
        });
        c.check(claimed || n == 1, || {
            format!("{label}: plan(4) returned {n} partitions without claiming partitioned_reads")
        });
        let mut indices: Vec<usize> = parts.iter().map(|p| p.index).collect();
        indices.sort_unstable();
        c.check(
            indices == (0..n).collect::<Vec<_>>() && parts.iter().all(|p| p.count == n),
            || format!("{label}: partition indices/counts are not 0..{n}: {indices:?}"),
        );
        let mut batches = Vec::new();
        for p in parts {
            let json = c.ok(
                serde_json::to_string(&p).map_err(|e| Error::internal(e.to_string())),
                "serializing a partition",
            );
            let back: Partition = c.ok(
                serde_json::from_str(&json).map_err(|e| Error::internal(e.to_string())),
                "deserializing a partition",
            );
            let stream = c.ok(h.source.read(back).await, "reading a partition");
            let got = c.ok(c.collect(stream, "partition").await, "reading a partition");
            batches.push(c.conform(got, &expected.schema()));
        }
        let Some(first) = batches.first() else {
            c.fail(format!("{label}: no partitions"));
        };
        let schema = first.schema();
        for b in &batches {
            c.check(same_fields(&b.schema(), &schema), || {
                format!("{label}: partitions have different schemas")
            });
        }
        let all = c.ok(
            concat_batches(&schema, &batches).map_err(Error::from),
            "concat",
        );
        c.same_rows(
            &format!("{label}: union of {n} partitions"),
            &expected,
            &all,
        );
        counts.push(n);
    }
    // Every partition honours the request's limit on its own.
    let request = ReadRequest::dataset(&name).with_limit(7);
    let parts = c.ok(h.source.plan(&request, 4).await, "plan with a limit");
    let mut seen: HashSet<i64> = HashSet::new();
    for p in parts {
        let index = p.index;
        let stream = c.ok(h.source.read(p).await, "reading a limited partition");
        let got = c.ok(
            c.collect(stream, "partition").await,
            "reading a limited partition",
        );
        c.check(got.num_rows() <= 7, || {
            format!(
                "partition {index} returned {} rows with limit 7",
                got.num_rows()
            )
        });
        for id in id_values(&got).unwrap_or_default() {
            c.check(seen.insert(id), || {
                format!("id {id} returned by two partitions")
            });
        }
    }
    if claimed {
        c.passed(&format!("partitions planned: {counts:?}"))
    } else {
        c.passed("single partition (partitioned_reads not claimed)")
    }
}

/// Overwrite replaces every row (or is refused with `Unsupported`).
pub async fn case_overwrite(h: &Harness) -> Outcome {
    let c = Case::new(h, "overwrite");
    let caps = h.sink.capabilities();
    let mode = match c.setup_mode() {
        Ok(m) => m,
        Err(why) if caps.overwrite => return c.skip(why),
        Err(_) => {
            c.expect_unsupported(WriteRequest::overwrite(c.fresh()))
                .await;
            return c.passed("overwrite unsupported and refused");
        }
    };
    let name = c
        .setup(&mode, vec![sample_rows(0..50, "")], sample_schema())
        .await;
    if !caps.overwrite {
        c.expect_unsupported(WriteRequest::overwrite(&name)).await;
        let got = c
            .read_ok(
                ReadRequest::dataset(&name),
                &sample_schema(),
                "read after refused overwrite",
            )
            .await;
        c.same_rows(
            "target after a refused overwrite",
            &sample_rows(0..50, ""),
            &got,
        );
        return c.passed("overwrite unsupported and refused");
    }
    let new = sample_rows(100..120, "new-");
    let report = c.ok(
        c.write(
            WriteRequest::overwrite(&name),
            vec![new.slice(0, 7), new.slice(7, 13)],
            sample_schema(),
        )
        .await,
        "overwrite",
    );
    c.check(report.rows == 20, || {
        format!("overwrite report counts {} rows, 20 written", report.rows)
    });
    let got = c
        .read_ok(
            ReadRequest::dataset(&name),
            &sample_schema(),
            "read after overwrite",
        )
        .await;
    c.same_rows("target after overwrite", &new, &got);
    // Overwriting with nothing leaves an empty target.
    c.ok(
        c.write(WriteRequest::overwrite(&name), Vec::new(), sample_schema())
            .await,
        "overwrite with no rows",
    );
    let got = c
        .read_ok(
            ReadRequest::dataset(&name),
            &sample_schema(),
            "read after empty overwrite",
        )
        .await;
    c.same_rows(
        "target after overwrite with no rows",
        &sample_rows(std::iter::empty(), ""),
        &got,
    );
    c.passed("")
}

/// Upsert by `id` replaces matching rows and inserts new ones (or is refused with
/// `Unsupported`).
pub async fn case_upsert(h: &Harness) -> Outcome {
    let c = Case::new(h, "upsert");
    let caps = h.sink.capabilities();
    let mode = match c.setup_mode() {
        Ok(m) => m,
        Err(why) if caps.upsert => return c.skip(why),
        Err(_) => {
            c.expect_unsupported(WriteRequest::upsert(c.fresh(), ["id"]))
                .await;
            return c.passed("upsert unsupported and refused");
        }
    };
    let old = sample_rows(0..50, "");
    let name = c.setup(&mode, vec![old.clone()], sample_schema()).await;
    if !caps.upsert {
        c.expect_unsupported(WriteRequest::upsert(&name, ["id"]))
            .await;
        let got = c
            .read_ok(
                ReadRequest::dataset(&name),
                &sample_schema(),
                "read after refused upsert",
            )
            .await;
        c.same_rows("target after a refused upsert", &old, &got);
        return c.passed("upsert unsupported and refused");
    }
    let incoming = sample_rows(40..60, "upd-");
    let report = c.ok(
        c.write(
            WriteRequest::upsert(&name, ["id"]),
            vec![incoming.clone()],
            sample_schema(),
        )
        .await,
        "upsert",
    );
    c.check(report.rows == 20, || {
        format!("upsert report counts {} rows, 20 written", report.rows)
    });
    let expected = concat(&sample_schema(), &[old.slice(0, 40), incoming]);
    let got = c
        .read_ok(
            ReadRequest::dataset(&name),
            &sample_schema(),
            "read after upsert",
        )
        .await;
    c.same_rows(
        "target after upsert (ids 40..50 replaced, 50..60 inserted)",
        &expected,
        &got,
    );
    c.passed("")
}

/// Delete by `id` removes exactly the rows with those keys, ignoring keys that match nothing (or
/// is refused with `Unsupported`).
pub async fn case_delete(h: &Harness) -> Outcome {
    let c = Case::new(h, "delete");
    let caps = h.sink.capabilities();
    let mode = match c.setup_mode() {
        Ok(m) => m,
        Err(why) if caps.delete => return c.skip(why),
        Err(_) => {
            c.expect_unsupported(WriteRequest::delete(c.fresh(), ["id"]))
                .await;
            return c.passed("delete unsupported and refused");
        }
    };
    let old = sample_rows(0..50, "");
    let name = c.setup(&mode, vec![old.clone()], sample_schema()).await;
    if !caps.delete {
        c.expect_unsupported(WriteRequest::delete(&name, ["id"]))
            .await;
        let got = c
            .read_ok(
                ReadRequest::dataset(&name),
                &sample_schema(),
                "read after refused delete",
            )
            .await;
        c.same_rows("target after a refused delete", &old, &got);
        return c.passed("delete unsupported and refused");
    }
    let keys = sample_rows([3, 7, 20, 999], "");
    let report = c.ok(
        c.write(
            WriteRequest::delete(&name, ["id"]),
            vec![keys],
            sample_schema(),
        )
        .await,
        "delete",
    );
    c.check(report.rows == 4, || {
        format!("delete report counts {} key rows, 4 sent", report.rows)
    });
    if let Some(d) = report.rows_deleted {
        c.check(d == 3, || {
            format!("delete report says {d} rows deleted, expected 3")
        });
    }
    let keep: HashSet<i64> = (0..50).filter(|i| ![3, 7, 20].contains(i)).collect();
    let got = c
        .read_ok(
            ReadRequest::dataset(&name),
            &sample_schema(),
            "read after delete",
        )
        .await;
    c.same_rows(
        "target after deleting ids 3, 7, 20 (and absent 999)",
        &rows_with_ids(&old, &keep),
        &got,
    );
    c.passed(if report.rows_deleted.is_some() {
        "rows_deleted reported"
    } else {
        ""
    })
}

fn with_extra(batch: &RecordBatch) -> RecordBatch {
    let extra: Int64Array = (0..batch.num_rows())
        .map(|i| Some(i as i64 * 1000))
        .collect();
    let mut fields: Vec<Field> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new("extra_col", DataType::Int64, true));
    let mut cols = batch.columns().to_vec();
    cols.push(Arc::new(extra));
    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)
        .unwrap_or_else(|e| panic!("fixture: {e}"))
}

async fn drift_target(c: &Case<'_>) -> std::result::Result<(String, RecordBatch), String> {
    match c.setup_mode()? {
        WriteMode::Append => {}
        _ => return Err("drift cases need append".to_owned()),
    }
    let old = sample_rows(0..10, "");
    let name = c
        .setup(&WriteMode::Append, vec![old.clone()], sample_schema())
        .await;
    Ok((name, old))
}

/// Under [`SchemaDriftPolicy::Fail`], an extra incoming column is a `SchemaMismatch` and the
/// target is unchanged.
pub async fn case_schema_drift_fail(h: &Harness) -> Outcome {
    let c = Case::new(h, "schema_drift_fail");
    let (name, old) = match drift_target(&c).await {
        Ok(t) => t,
        Err(why) => return c.skip(why),
    };
    let new = with_extra(&sample_rows(10..15, ""));
    let r = c
        .write(WriteRequest::append(&name), vec![new.clone()], new.schema())
        .await;
    c.expect_kind(
        r,
        ErrorKind::SchemaMismatch,
        "append with an extra column under policy Fail",
    );
    let got = c
        .read_ok(
            ReadRequest::dataset(&name),
            &sample_schema(),
            "read after refused drift",
        )
        .await;
    c.same_rows("target after a refused drifting write", &old, &got);
    c.passed("")
}

/// Under [`SchemaDriftPolicy::AddColumns`], an extra incoming column is added (old rows read it
/// as NULL) when the sink claims `add_columns`.
pub async fn case_schema_drift_add_columns(h: &Harness) -> Outcome {
    let c = Case::new(h, "schema_drift_add_columns");
    if !h.sink.capabilities().add_columns {
        return c.skip("the sink does not claim add_columns");
    }
    let (name, old) = match drift_target(&c).await {
        Ok(t) => t,
        Err(why) => return c.skip(why),
    };
    let new = with_extra(&sample_rows(10..15, ""));
    let req = WriteRequest::append(&name).with_schema_drift(SchemaDriftPolicy::AddColumns);
    let report = c.ok(
        c.write(req, vec![new.clone()], new.schema()).await,
        "append with AddColumns",
    );
    c.check(report.columns_added == ["extra_col"], || {
        format!(
            "report.columns_added is {:?}, expected [\"extra_col\"]",
            report.columns_added
        )
    });
    let old_widened = {
        let mut cols = old.columns().to_vec();
        cols.push(arrow::array::new_null_array(
            &DataType::Int64,
            old.num_rows(),
        ));
        RecordBatch::try_new(new.schema(), cols).unwrap_or_else(|e| panic!("fixture: {e}"))
    };
    let expected = concat(&new.schema(), &[old_widened, new.clone()]);
    let got = c
        .read_ok(
            ReadRequest::dataset(&name),
            &new.schema(),
            "read after AddColumns",
        )
        .await;
    c.same_rows("target after adding a column", &expected, &got);
    c.passed("")
}

/// Under [`SchemaDriftPolicy::IgnoreExtra`], an extra incoming column is dropped and reported.
pub async fn case_schema_drift_ignore_extra(h: &Harness) -> Outcome {
    let c = Case::new(h, "schema_drift_ignore_extra");
    let (name, old) = match drift_target(&c).await {
        Ok(t) => t,
        Err(why) => return c.skip(why),
    };
    let plain = sample_rows(10..15, "");
    let new = with_extra(&plain);
    let req = WriteRequest::append(&name).with_schema_drift(SchemaDriftPolicy::IgnoreExtra);
    let report = c.ok(
        c.write(req, vec![new.clone()], new.schema()).await,
        "append with IgnoreExtra",
    );
    c.check(report.columns_ignored == ["extra_col"], || {
        format!(
            "report.columns_ignored is {:?}, expected [\"extra_col\"]",
            report.columns_ignored
        )
    });
    let expected = concat(&sample_schema(), &[old, plain]);
    let got = c
        .read_ok(
            ReadRequest::dataset(&name),
            &sample_schema(),
            "read after IgnoreExtra",
        )
        .await;
    c.same_rows("target after ignoring an extra column", &expected, &got);
    c.passed("")
}

/// Filters on one column of each filterable type of the matrix: what the backend returns equals
/// what [`crate::residual::evaluate`] (the reference semantics) selects from the written rows.
pub async fn case_filter_types(h: &Harness) -> Outcome {
    let c = Case::new(h, "filter_types");
    let mode = match c.setup_mode() {
        Ok(m) => m,
        Err(why) => return c.skip(why),
    };
    let matrix = type_matrix(&h.types, MATRIX_ROWS);
    let mut checks: Vec<(String, Expr)> = Vec::new();
    for (k, dt) in h.types.iter().enumerate() {
        let col = column_name(&h.types, k);
        let exprs = typed_filters(&col, dt);
        if !exprs.is_empty() {
            checks.push((format!("{col} IS NULL"), Expr::IsNull(col.clone())));
        }
        for e in exprs {
            checks.push((format!("{e:?}"), e));
        }
    }
    if checks.is_empty() {
        return c.skip("no filterable types among the harness's types");
    }
    let name = c.setup(&mode, vec![matrix.clone()], matrix.schema()).await;
    for (label, expr) in &checks {
        let mask = c.ok(
            crate::residual::evaluate(expr, &matrix),
            &format!("reference evaluation of {label}"),
        );
        let expected =
            filter_record_batch(&matrix, &mask).unwrap_or_else(|e| panic!("filter fixture: {e}"));
        let expected = project(&expected, &["id"]);
        let got = c
            .read_ok(
                ReadRequest::dataset(&name)
                    .with_filter(expr.clone())
                    .with_projection(["id"]),
                &expected.schema(),
                &format!("read with filter {label}"),
            )
            .await;
        c.same_rows(&format!("filter {label}"), &expected, &got);
    }
    c.passed(&format!("{} filters", checks.len()))
}

/// Comparisons the filter language can express on a column of `dt`.
fn typed_filters(col: &str, dt: &DataType) -> Vec<Expr> {
    use crate::request::Literal;
    let c = || col.to_owned();
    match dt {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => vec![
            Expr::cmp(c(), CmpOp::GtEq, 1),
            Expr::cmp(c(), CmpOp::Lt, 1),
            Expr::is_in(c(), [0, 1]),
            Expr::eq(c(), 0).not(),
        ],
        DataType::Float32 | DataType::Float64 => vec![
            Expr::cmp(c(), CmpOp::Lt, -1.5),
            Expr::cmp(c(), CmpOp::LtEq, -1.5),
            Expr::eq(c(), 0.0),
        ],
        DataType::Decimal128(..) | DataType::Decimal256(..) => vec![
            Expr::cmp(c(), CmpOp::Gt, 0),
            Expr::cmp(c(), CmpOp::NotEq, 1),
        ],
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => vec![
            Expr::eq(c(), "plain ascii"),
            Expr::eq(c(), ""),
            Expr::cmp(c(), CmpOp::Gt, "l"),
            Expr::is_in(c(), ["it's \"quoted\"", "line one\nline two\r\nline three"]),
        ],
        DataType::Boolean => vec![Expr::eq(c(), true), Expr::eq(c(), false).not()],
        DataType::Date32 => vec![
            Expr::cmp(c(), CmpOp::GtEq, Literal::Date(19_723)),
            Expr::cmp(c(), CmpOp::Lt, Literal::Date(0)),
        ],
        DataType::Timestamp(..) => vec![
            Expr::cmp(
                c(),
                CmpOp::Gt,
                Literal::TimestampMicros(1_700_000_000_000_000),
            ),
            Expr::cmp(c(), CmpOp::Lt, Literal::TimestampMicros(0)),
        ],
        _ => Vec::new(),
    }
}

/// A written target is listed by `discover()` under its name, with its columns.
pub async fn case_discover(h: &Harness) -> Outcome {
    let c = Case::new(h, "discover");
    let (name, rows) = match sample_target(&c).await {
        Ok(t) => t,
        Err(why) => return c.skip(why),
    };
    let listed = match h.source.discover().await {
        Ok(l) => l,
        Err(e) if e.kind() == ErrorKind::Unsupported => {
            return c.skip(format!("discover is unsupported: {e}"));
        }
        Err(e) => c.fail(format!("discover failed: {e}")),
    };
    let Some(info) = listed.iter().find(|d| d.name == name) else {
        let names: Vec<&str> = listed.iter().map(|d| d.name.as_str()).take(20).collect();
        c.fail(format!(
            "discover does not list {name:?}; it lists {names:?}"
        ));
    };
    let want: Vec<&str> = rows
        .schema_ref()
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    let got: Vec<&str> = info
        .schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    c.check(want == got, || {
        format!("discover lists columns {got:?}, expected {want:?}")
    });
    if !h.cast_on_read {
        c.check(same_fields(&info.schema, &rows.schema()), || {
            format!(
                "discover lists ({}), expected ({})",
                describe(&info.schema),
                describe(&rows.schema())
            )
        });
    }
    c.passed("")
}

/// Run plan, read and the stream; return the first error, if any.
async fn try_read_everything(source: &dyn Source, name: &str) -> Result<()> {
    let request = ReadRequest::dataset(name);
    for p in source.plan(&request, 1).await? {
        let mut s = source.read(p).await?;
        while let Some(b) = s.next().await {
            b?;
        }
    }
    Ok(())
}

/// Reading a dataset that does not exist fails with `NotFound`, naming connector and operation.
pub async fn case_missing_dataset(h: &Harness) -> Outcome {
    let c = Case::new(h, "missing_dataset");
    let name = c.fresh();
    let e = c.expect_kind(
        try_read_everything(h.source.as_ref(), &name).await,
        ErrorKind::NotFound,
        "reading a dataset that does not exist",
    );
    c.check(e.connector().is_some() && e.operation().is_some(), || {
        format!("the NotFound error does not name its connector and operation: {e:?}")
    });
    c.passed("")
}

/// A source with wrong credentials fails `check()` and reads with `Authentication`.
pub async fn case_bad_credentials(h: &Harness) -> Outcome {
    let c = Case::new(h, "bad_credentials");
    let Some(bad) = &h.bad_credentials else {
        return c.skip("the harness provides no bad-credentials source");
    };
    let e = c.expect_kind(
        bad.check().await,
        ErrorKind::Authentication,
        "check with bad credentials",
    );
    c.check(e.connector().is_some(), || {
        format!("the error does not name its connector: {e:?}")
    });
    c.expect_kind(
        try_read_everything(bad.as_ref(), &c.fresh()).await,
        ErrorKind::Authentication,
        "reading with bad credentials",
    );
    c.passed("")
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else {
        "panic with a non-string payload".to_owned()
    }
}

/// Every case's name, in the order [`run_all`] runs them.
pub const CASES: &[&str] = &[
    "check",
    "round_trip",
    "empty_stream",
    "projection",
    "filter",
    "filter_types",
    "limit",
    "partitioned_read",
    "overwrite",
    "upsert",
    "delete",
    "schema_drift_fail",
    "schema_drift_add_columns",
    "schema_drift_ignore_extra",
    "discover",
    "missing_dataset",
    "bad_credentials",
];

async fn run_case(h: &Harness, case: &'static str) -> Outcome {
    match case {
        "check" => case_check(h).await,
        "round_trip" => case_round_trip(h).await,
        "empty_stream" => case_empty_stream(h).await,
        "projection" => case_projection(h).await,
        "filter" => case_filter(h).await,
        "filter_types" => case_filter_types(h).await,
        "discover" => case_discover(h).await,
        "limit" => case_limit(h).await,
        "partitioned_read" => case_partitioned_read(h).await,
        "overwrite" => case_overwrite(h).await,
        "upsert" => case_upsert(h).await,
        "delete" => case_delete(h).await,
        "schema_drift_fail" => case_schema_drift_fail(h).await,
        "schema_drift_add_columns" => case_schema_drift_add_columns(h).await,
        "schema_drift_ignore_extra" => case_schema_drift_ignore_extra(h).await,
        "missing_dataset" => case_missing_dataset(h).await,
        "bad_credentials" => case_bad_credentials(h).await,
        other => panic!("conformance: unknown case {other:?}"),
    }
}

/// Run every case in [`CASES`], printing one line per case, and return what passed and what was
/// skipped.
///
/// # Panics
/// After all cases have run, if any failed, with every failure's message.
pub async fn run_all(h: &Harness) -> Vec<CaseReport> {
    let mut reports = Vec::new();
    let mut failures = Vec::new();
    for case in CASES {
        let started = Instant::now();
        let result = AssertUnwindSafe(run_case(h, case)).catch_unwind().await;
        let elapsed = started.elapsed();
        match result {
            Ok(outcome) => reports.push(CaseReport {
                case,
                outcome,
                elapsed,
            }),
            Err(payload) => {
                let msg = panic_message(payload.as_ref());
                println!(
                    "conformance [{}] {case}: FAILED after {elapsed:?}",
                    h.label()
                );
                failures.push(msg);
            }
        }
    }
    let passed = reports
        .iter()
        .filter(|r| r.outcome == Outcome::Passed)
        .count();
    println!(
        "conformance [{}]: {passed} passed, {} skipped, {} failed",
        h.label(),
        reports.len() - passed,
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "conformance [{}]: {} case(s) failed:\n{}",
        h.label(),
        failures.len(),
        failures.join("\n\n")
    );
    reports
}

/// [`all_types`] without `exclude`, for [`Harness::types`] of a backend that cannot store some.
#[must_use]
pub fn all_types_except(exclude: &[DataType]) -> Vec<DataType> {
    all_types()
        .into_iter()
        .filter(|t| !exclude.contains(t))
        .collect()
}

/// A [`FreshName`] that returns `<prefix>_<n>_<case>` with a counter, for backends whose targets
/// live in a namespace of their own (a fresh schema, directory or bucket per test run).
#[must_use]
pub fn counter_names(prefix: impl Into<String>) -> FreshName {
    let prefix = prefix.into();
    let n = std::sync::atomic::AtomicUsize::new(0);
    Arc::new(move |case: &str| {
        let k = n.fetch_add(1, Ordering::Relaxed);
        format!("{prefix}_{k}_{case}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every typed filter selects some rows of the matrix but not all of them, so a backend
    /// that ignores or inverts it is caught.
    #[test]
    fn typed_filters_are_selective_on_the_matrix() {
        let types = all_types();
        let matrix = type_matrix(&types, MATRIX_ROWS);
        let mut count = 0;
        for (k, dt) in types.iter().enumerate() {
            for e in typed_filters(&column_name(&types, k), dt) {
                let mask = crate::residual::evaluate(&e, &matrix).unwrap();
                let selected = mask.true_count();
                assert!(
                    selected > 0 && selected < MATRIX_ROWS,
                    "{e:?} selects {selected} of {MATRIX_ROWS} rows"
                );
                count += 1;
            }
        }
        assert!(count > 50, "{count}");
    }

    #[test]
    fn sample_filters_are_selective() {
        let rows = sample_rows(0..SAMPLE_ROWS, "");
        for (label, expr, pred) in filter_cases() {
            let expected = expected_for(&rows, pred).num_rows();
            // The reference evaluator agrees with the hand-written predicate…
            let mask = crate::residual::evaluate(&expr, &rows).unwrap();
            assert_eq!(mask.true_count(), expected, "{label}");
            // …and every filter but the deliberately empty one selects something, never all.
            if !label.contains("no rows") {
                assert!(
                    expected > 0 && expected < rows.num_rows(),
                    "{label}: {expected}"
                );
            }
        }
    }
}
