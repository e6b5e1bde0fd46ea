//! Decoder of the `COPY … TO STDOUT (FORMAT binary)` stream straight into Arrow buffers.
//!
//! Stream layout: an 11-byte signature `PGCOPY\n\xff\r\n\0`, a 32-bit flags field, a 32-bit
//! header-extension length (and that many bytes); then per tuple a 16-bit field count and per
//! field a 32-bit length (−1 = NULL) and that many big-endian payload bytes; a field count of −1
//! ends the stream.
//!
//! The decoder is a push decoder: [`CopyDecoder::decode`] takes whatever bytes arrived and
//! returns how many it consumed. It only consumes whole tuples (a tuple split across network
//! chunks is left for the caller to hand in again with more bytes), stops when the batch is full,
//! and never allocates per row: values are appended to per-column vectors that become the Arrow
//! buffers of the batch.

use std::sync::Arc;

use arrow::array::builder::NullBufferBuilder;
use arrow::array::{
    ArrayRef, BinaryArray, BooleanArray, BooleanBufferBuilder, FixedSizeBinaryArray, ListArray,
    PrimitiveArray, StringArray,
};
use arrow::buffer::{Buffer, OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{
    ArrowPrimitiveType, DataType, Date32Type, Decimal128Type, Decimal256Type, Field, Float32Type,
    Float64Type, Int16Type, Int32Type, Int64Type, IntervalMonthDayNano, IntervalMonthDayNanoType,
    SchemaRef, Time64MicrosecondType, TimestampMicrosecondType, UInt32Type, i256,
};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use connector_core::{Error, ErrorKind, Location};

use super::numeric;
use super::types::{Decode, NumTarget};

pub(crate) const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";
/// Days from 1970-01-01 to 2000-01-01 (PostgreSQL's epoch).
pub(crate) const PG_EPOCH_DAYS: i32 = 10_957;
/// Microseconds from 1970-01-01 to 2000-01-01.
pub(crate) const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
const DAY_MICROS: i64 = 86_400_000_000;

struct Prim<T: ArrowPrimitiveType> {
    values: Vec<T::Native>,
    nulls: NullBufferBuilder,
}

impl<T: ArrowPrimitiveType> Prim<T> {
    fn new(cap: usize) -> Self {
        Self {
            values: Vec::with_capacity(cap),
            nulls: NullBufferBuilder::new(cap),
        }
    }
    #[inline]
    fn push(&mut self, v: T::Native) {
        self.values.push(v);
        self.nulls.append_non_null();
    }
    #[inline]
    fn push_null(&mut self) {
        self.values.push(T::Native::default());
        self.nulls.append_null();
    }
    fn len(&self) -> usize {
        self.values.len()
    }
    fn finish(&mut self, dt: &DataType) -> ArrayRef {
        let values = ScalarBuffer::from(std::mem::take(&mut self.values));
        let nulls = self.nulls.finish();
        Arc::new(PrimitiveArray::<T>::new(values, nulls).with_data_type(dt.clone()))
    }
}

/// Variable-length values (text, bytea, numeric as text).
struct Var {
    offsets: Vec<i32>,
    values: Vec<u8>,
    nulls: NullBufferBuilder,
}

impl Var {
    fn new(cap: usize) -> Self {
        let mut offsets = Vec::with_capacity(cap + 1);
        offsets.push(0);
        Self {
            offsets,
            values: Vec::new(),
            nulls: NullBufferBuilder::new(cap),
        }
    }
    #[inline]
    fn end(&mut self) -> Result<(), String> {
        let end = i32::try_from(self.values.len()).map_err(|_| {
            "more than 2 GiB of variable-length data in one batch; lower batch_bytes".to_owned()
        })?;
        self.offsets.push(end);
        self.nulls.append_non_null();
        Ok(())
    }
    #[inline]
    fn push(&mut self, v: &[u8]) -> Result<(), String> {
        self.values.extend_from_slice(v);
        self.end()
    }
    #[inline]
    fn push_null(&mut self) {
        let last = self.offsets.last().copied().unwrap_or(0);
        self.offsets.push(last);
        self.nulls.append_null();
    }
    fn len(&self) -> usize {
        self.offsets.len() - 1
    }
    fn finish_binary(&mut self) -> BinaryArray {
        let offsets = std::mem::replace(&mut self.offsets, vec![0]);
        // Offsets are monotonically increasing by construction.
        let offsets = OffsetBuffer::new(ScalarBuffer::from(offsets));
        let values = Buffer::from_vec(std::mem::take(&mut self.values));
        BinaryArray::new(offsets, values, self.nulls.finish())
    }
}

enum Col {
    Bool(BooleanBufferBuilder, NullBufferBuilder),
    I16(Prim<Int16Type>),
    I32(Prim<Int32Type>),
    I64(Prim<Int64Type>),
    F32(Prim<Float32Type>),
    F64(Prim<Float64Type>),
    U32(Prim<UInt32Type>),
    Date(Prim<Date32Type>),
    Time(Prim<Time64MicrosecondType>, bool),
    Ts(Prim<TimestampMicrosecondType>),
    Interval(Prim<IntervalMonthDayNanoType>),
    Uuid(Vec<u8>, NullBufferBuilder),
    Text(Var, bool),
    Bytea(Var),
    D128(Prim<Decimal128Type>, u8, i8),
    D256(Prim<Decimal256Type>, u8, i8),
    NumText(Var),
    NumF64(Prim<Float64Type>),
    List {
        offsets: Vec<i32>,
        nulls: NullBufferBuilder,
        child: Box<Col>,
        child_type: DataType,
        field: Arc<Field>,
    },
}

fn fixed<const N: usize>(v: &[u8]) -> Result<[u8; N], String> {
    v.try_into()
        .map_err(|_| format!("expected {N} bytes, got {}", v.len()))
}

impl Col {
    fn new(d: &Decode, cap: usize) -> Self {
        match d {
            Decode::Bool => Self::Bool(BooleanBufferBuilder::new(cap), NullBufferBuilder::new(cap)),
            Decode::Int2 => Self::I16(Prim::new(cap)),
            Decode::Int4 => Self::I32(Prim::new(cap)),
            Decode::Int8 | Decode::Money => Self::I64(Prim::new(cap)),
            Decode::Float4 => Self::F32(Prim::new(cap)),
            Decode::Float8 => Self::F64(Prim::new(cap)),
            Decode::Oid => Self::U32(Prim::new(cap)),
            Decode::Date => Self::Date(Prim::new(cap)),
            Decode::Time => Self::Time(Prim::new(cap), false),
            Decode::TimeTz => Self::Time(Prim::new(cap), true),
            Decode::Timestamp | Decode::TimestampTz => Self::Ts(Prim::new(cap)),
            Decode::Interval => Self::Interval(Prim::new(cap)),
            Decode::Uuid => Self::Uuid(Vec::with_capacity(cap * 16), NullBufferBuilder::new(cap)),
            Decode::Text => Self::Text(Var::new(cap), false),
            Decode::Jsonb => Self::Text(Var::new(cap), true),
            Decode::Bytea => Self::Bytea(Var::new(cap)),
            Decode::Numeric(NumTarget::D128(p, s)) => Self::D128(Prim::new(cap), *p, *s),
            Decode::Numeric(NumTarget::D256(p, s)) => Self::D256(Prim::new(cap), *p, *s),
            Decode::Numeric(NumTarget::Utf8) => Self::NumText(Var::new(cap)),
            Decode::Numeric(NumTarget::F64) => Self::NumF64(Prim::new(cap)),
            Decode::List(inner, field) => {
                let mut offsets = Vec::with_capacity(cap + 1);
                offsets.push(0);
                Self::List {
                    offsets,
                    nulls: NullBufferBuilder::new(cap),
                    child: Box::new(Col::new(inner, cap)),
                    child_type: field.data_type().clone(),
                    field: field.clone(),
                }
            }
        }
    }

    fn len(&self) -> usize {
        match self {
            Self::Bool(b, _) => b.len(),
            Self::I16(p) => p.len(),
            Self::I32(p) => p.len(),
            Self::Date(p) => p.len(),
            Self::I64(p) => p.len(),
            Self::F32(p) => p.len(),
            Self::F64(p) | Self::NumF64(p) => p.len(),
            Self::U32(p) => p.len(),
            Self::Time(p, _) => p.len(),
            Self::Ts(p) => p.len(),
            Self::Interval(p) => p.len(),
            Self::Uuid(_, n) => n.len(),
            Self::Text(v, _) | Self::Bytea(v) | Self::NumText(v) => v.len(),
            Self::D128(p, ..) => p.len(),
            Self::D256(p, ..) => p.len(),
            Self::List { offsets, .. } => offsets.len() - 1,
        }
    }

    #[inline]
    fn push_null(&mut self) {
        match self {
            Self::Bool(b, n) => {
                b.append(false);
                n.append_null();
            }
            Self::I16(p) => p.push_null(),
            Self::I32(p) => p.push_null(),
            Self::Date(p) => p.push_null(),
            Self::I64(p) => p.push_null(),
            Self::F32(p) => p.push_null(),
            Self::F64(p) | Self::NumF64(p) => p.push_null(),
            Self::U32(p) => p.push_null(),
            Self::Time(p, _) => p.push_null(),
            Self::Ts(p) => p.push_null(),
            Self::Interval(p) => p.push_null(),
            Self::Uuid(v, n) => {
                v.extend_from_slice(&[0; 16]);
                n.append_null();
            }
            Self::Text(v, _) | Self::Bytea(v) | Self::NumText(v) => v.push_null(),
            Self::D128(p, ..) => p.push_null(),
            Self::D256(p, ..) => p.push_null(),
            Self::List { offsets, nulls, .. } => {
                let last = offsets.last().copied().unwrap_or(0);
                offsets.push(last);
                nulls.append_null();
            }
        }
    }

    #[inline]
    fn push(&mut self, v: &[u8]) -> Result<(), String> {
        match self {
            Self::I32(p) => p.push(i32::from_be_bytes(fixed(v)?)),
            Self::I64(p) => p.push(i64::from_be_bytes(fixed(v)?)),
            Self::Text(var, jsonb) => {
                if *jsonb {
                    match v.split_first() {
                        Some((1, rest)) => var.push(rest)?,
                        Some((ver, _)) => {
                            return Err(format!("unsupported jsonb format version {ver}"));
                        }
                        None => return Err("empty jsonb value".into()),
                    }
                } else {
                    var.push(v)?;
                }
            }
            Self::F64(p) => p.push(f64::from_be_bytes(fixed(v)?)),
            Self::D128(p, prec, scale) => {
                let x = numeric::to_decimal128(v, *prec, *scale)
                    .map_err(|e| e.describe(*prec, *scale))?;
                p.push(x);
            }
            Self::Date(p) => {
                let d = i32::from_be_bytes(fixed(v)?);
                // ±infinity keep their sentinel values i32::MAX / i32::MIN
                let d = if d == i32::MAX || d == i32::MIN {
                    d
                } else {
                    d.checked_add(PG_EPOCH_DAYS).ok_or("date out of range")?
                };
                p.push(d);
            }
            Self::Ts(p) => {
                let t = i64::from_be_bytes(fixed(v)?);
                let t = if t == i64::MAX || t == i64::MIN {
                    t
                } else {
                    t.checked_add(PG_EPOCH_MICROS)
                        .ok_or("timestamp out of range")?
                };
                p.push(t);
            }
            Self::Bool(b, n) => {
                let [x] = fixed::<1>(v)?;
                b.append(x != 0);
                n.append_non_null();
            }
            Self::I16(p) => p.push(i16::from_be_bytes(fixed(v)?)),
            Self::F32(p) => p.push(f32::from_be_bytes(fixed(v)?)),
            Self::U32(p) => p.push(u32::from_be_bytes(fixed(v)?)),
            Self::Time(p, tz) => {
                if *tz {
                    let b: [u8; 12] = fixed(v)?;
                    let us = i64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
                    // the zone is stored in seconds WEST of UTC: UTC = local + zone
                    let zone = i64::from(i32::from_be_bytes([b[8], b[9], b[10], b[11]]));
                    p.push((us + zone * 1_000_000).rem_euclid(DAY_MICROS));
                } else {
                    p.push(i64::from_be_bytes(fixed(v)?));
                }
            }
            Self::Interval(p) => {
                let b: [u8; 16] = fixed(v)?;
                let us = i64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
                let days = i32::from_be_bytes([b[8], b[9], b[10], b[11]]);
                let months = i32::from_be_bytes([b[12], b[13], b[14], b[15]]);
                let nanos = us
                    .checked_mul(1000)
                    .ok_or("interval too large for nanoseconds")?;
                p.push(IntervalMonthDayNano::new(months, days, nanos));
            }
            Self::Uuid(buf, n) => {
                let b: [u8; 16] = fixed(v)?;
                buf.extend_from_slice(&b);
                n.append_non_null();
            }
            Self::Bytea(var) => var.push(v)?,
            Self::D256(p, prec, scale) => {
                let x = numeric::to_decimal::<i256>(v, *prec, *scale)
                    .map_err(|e| e.describe(*prec, *scale))?;
                p.push(x);
            }
            Self::NumText(var) => {
                numeric::to_text(v, &mut var.values).map_err(|e| e.describe(0, 0))?;
                var.end()?;
            }
            Self::NumF64(p) => p.push(numeric::to_f64(v).map_err(|e| e.describe(0, 0))?),
            Self::List {
                offsets,
                nulls,
                child,
                ..
            } => {
                decode_array(v, child)?;
                let end = i32::try_from(child.len())
                    .map_err(|_| "too many array elements in one batch")?;
                offsets.push(end);
                nulls.append_non_null();
            }
        }
        Ok(())
    }

    fn finish(&mut self, dt: &DataType) -> Result<ArrayRef, String> {
        Ok(match self {
            Self::Bool(b, n) => Arc::new(BooleanArray::new(b.finish(), n.finish())),
            Self::I16(p) => p.finish(dt),
            Self::I32(p) => p.finish(dt),
            Self::Date(p) => p.finish(dt),
            Self::I64(p) => p.finish(dt),
            Self::F32(p) => p.finish(dt),
            Self::F64(p) | Self::NumF64(p) => p.finish(dt),
            Self::U32(p) => p.finish(dt),
            Self::Time(p, _) => p.finish(dt),
            Self::Ts(p) => p.finish(dt),
            Self::Interval(p) => p.finish(dt),
            Self::D128(p, ..) => p.finish(dt),
            Self::D256(p, ..) => p.finish(dt),
            Self::Uuid(buf, n) => {
                let nulls = n.finish();
                let values = Buffer::from_vec(std::mem::take(buf));
                Arc::new(
                    FixedSizeBinaryArray::try_new(16, values, nulls)
                        .map_err(|e| format!("uuid column: {e}"))?,
                )
            }
            Self::Bytea(v) => Arc::new(v.finish_binary()),
            Self::Text(v, _) | Self::NumText(v) => Arc::new(
                StringArray::try_from_binary(v.finish_binary())
                    .map_err(|e| format!("invalid UTF-8 from the server: {e}"))?,
            ),
            Self::List {
                offsets,
                nulls,
                child,
                child_type,
                field,
            } => {
                let values = child.finish(child_type)?;
                let offs = std::mem::replace(offsets, vec![0]);
                let offs = OffsetBuffer::new(ScalarBuffer::from(offs));
                Arc::new(
                    ListArray::try_new(field.clone(), offs, values, nulls.finish())
                        .map_err(|e| e.to_string())?,
                )
            }
        })
    }
}

/// Decode a 1-D array value into `child`.
fn decode_array(v: &[u8], child: &mut Col) -> Result<(), String> {
    let rd = |at: usize| -> Result<i32, String> {
        v.get(at..at + 4)
            .and_then(|s| s.try_into().ok())
            .map(i32::from_be_bytes)
            .ok_or_else(|| "truncated array value".to_owned())
    };
    let ndim = rd(0)?;
    match ndim {
        0 => return Ok(()),
        1 => {}
        n => {
            return Err(format!(
                "{n}-dimensional array; only 1-dimensional arrays map to Arrow lists"
            ));
        }
    }
    let count = usize::try_from(rd(12)?).map_err(|_| "negative array length")?;
    let mut pos = 20;
    for _ in 0..count {
        let len = rd(pos)?;
        pos += 4;
        if len < 0 {
            child.push_null();
        } else {
            let end = pos + len as usize;
            let data = v.get(pos..end).ok_or("truncated array element")?;
            child.push(data)?;
            pos = end;
        }
    }
    if pos != v.len() {
        return Err("trailing bytes after array elements".into());
    }
    Ok(())
}

/// The binary COPY decoder of one read.
pub(crate) struct CopyDecoder {
    schema: SchemaRef,
    cols: Vec<Col>,
    header_done: bool,
    finished: bool,
    rows: usize,
    bytes: usize,
    batch_rows: usize,
    batch_bytes: usize,
    /// Rows emitted in earlier batches (for error locations).
    row_base: u64,
    table: String,
}

impl CopyDecoder {
    pub(crate) fn new(
        schema: SchemaRef,
        decodes: &[Decode],
        batch_rows: usize,
        batch_bytes: usize,
        table: String,
    ) -> Self {
        let cap = batch_rows.min(65_536);
        Self {
            cols: decodes.iter().map(|d| Col::new(d, cap)).collect(),
            schema,
            header_done: false,
            finished: false,
            rows: 0,
            bytes: 0,
            batch_rows: batch_rows.max(1),
            batch_bytes: batch_bytes.max(1),
            row_base: 0,
            table,
        }
    }

    /// True once the end-of-data marker was read.
    pub(crate) fn finished(&self) -> bool {
        self.finished
    }

    /// True when the current batch reached its row or byte budget.
    pub(crate) fn batch_full(&self) -> bool {
        self.rows >= self.batch_rows || self.bytes >= self.batch_bytes
    }

    /// Rows in the current, unfinished batch.
    pub(crate) fn buffered_rows(&self) -> usize {
        self.rows
    }

    fn err(&self, msg: impl Into<String>, column: Option<usize>) -> Error {
        let mut loc =
            Location::table(self.table.clone()).with_row(self.row_base + self.rows as u64);
        if let Some(c) = column {
            loc = loc.with_column(self.schema.field(c).name().clone());
        }
        Error::new(ErrorKind::Decode, msg).with_location(loc)
    }

    /// Decode whole tuples from `buf`; returns the number of bytes consumed.
    pub(crate) fn decode(&mut self, buf: &[u8]) -> Result<usize, Error> {
        let mut pos = 0usize;
        if !self.header_done {
            if buf.len() < 19 {
                return Ok(0);
            }
            if &buf[..11] != SIGNATURE {
                return Err(self.err("not a binary COPY stream (bad signature)", None));
            }
            let ext = u32::from_be_bytes([buf[15], buf[16], buf[17], buf[18]]) as usize;
            if buf.len() < 19 + ext {
                return Ok(0);
            }
            pos = 19 + ext;
            self.header_done = true;
        }
        let ncols = self.cols.len();
        while !self.finished && !self.batch_full() {
            let Some(head) = buf.get(pos..pos + 2) else {
                break;
            };
            let nf = i16::from_be_bytes([head[0], head[1]]);
            if nf == -1 {
                self.finished = true;
                pos += 2;
                break;
            }
            if nf as usize != ncols || nf < 0 {
                return Err(self.err(format!("tuple has {nf} fields, expected {ncols}"), None));
            }
            // First pass: is the whole tuple here?
            let mut p = pos + 2;
            let mut complete = true;
            for _ in 0..ncols {
                let Some(l) = buf.get(p..p + 4) else {
                    complete = false;
                    break;
                };
                let len = i32::from_be_bytes([l[0], l[1], l[2], l[3]]);
                p += 4;
                if len > 0 {
                    p += len as usize;
                } else if len < -1 {
                    return Err(self.err(format!("invalid field length {len}"), None));
                }
            }
            if !complete || p > buf.len() {
                break;
            }
            // Second pass: decode.
            let mut p = pos + 2;
            for (i, col) in self.cols.iter_mut().enumerate() {
                let len = i32::from_be_bytes([buf[p], buf[p + 1], buf[p + 2], buf[p + 3]]);
                p += 4;
                if len < 0 {
                    col.push_null();
                } else {
                    let end = p + len as usize;
                    if let Err(m) = col.push(&buf[p..end]) {
                        return Err(self.err(m, Some(i)));
                    }
                    p = end;
                }
            }
            self.bytes += p - pos;
            self.rows += 1;
            pos = p;
        }
        Ok(pos)
    }

    /// Take the buffered rows as a batch (possibly empty).
    pub(crate) fn flush(&mut self) -> Result<RecordBatch, Error> {
        let mut arrays = Vec::with_capacity(self.cols.len());
        for (i, col) in self.cols.iter_mut().enumerate() {
            let dt = self.schema.field(i).data_type().clone();
            match col.finish(&dt) {
                Ok(a) => arrays.push(a),
                Err(m) => {
                    return Err(Error::new(ErrorKind::Decode, m).with_location(
                        Location::table(self.table.clone())
                            .with_column(self.schema.field(i).name().clone()),
                    ));
                }
            }
        }
        let rows = self.rows;
        self.row_base += rows as u64;
        self.rows = 0;
        self.bytes = 0;
        let opts = RecordBatchOptions::new().with_row_count(Some(rows));
        Ok(RecordBatch::try_new_with_options(
            self.schema.clone(),
            arrays,
            &opts,
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Field, Schema};

    fn stream(rows: &[Vec<Option<Vec<u8>>>]) -> Vec<u8> {
        let mut b = SIGNATURE.to_vec();
        b.extend_from_slice(&0i32.to_be_bytes());
        b.extend_from_slice(&0i32.to_be_bytes());
        for r in rows {
            b.extend_from_slice(&(r.len() as i16).to_be_bytes());
            for f in r {
                match f {
                    None => b.extend_from_slice(&(-1i32).to_be_bytes()),
                    Some(v) => {
                        b.extend_from_slice(&(v.len() as i32).to_be_bytes());
                        b.extend_from_slice(v);
                    }
                }
            }
        }
        b.extend_from_slice(&(-1i16).to_be_bytes());
        b
    }

    #[test]
    fn decodes_split_chunks_and_batches() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("i", DataType::Int32, true),
            Field::new("s", DataType::Utf8, true),
        ]));
        let rows: Vec<Vec<Option<Vec<u8>>>> = (0..10)
            .map(|i: i32| {
                vec![
                    Some(i.to_be_bytes().to_vec()),
                    if i % 3 == 0 {
                        None
                    } else {
                        Some(format!("v{i}").into_bytes())
                    },
                ]
            })
            .collect();
        let data = stream(&rows);
        // feed byte by byte through a pending buffer, as the reader does
        let mut dec = CopyDecoder::new(
            schema,
            &[Decode::Int4, Decode::Text],
            4,
            usize::MAX,
            "t".into(),
        );
        let mut pending = Vec::new();
        let mut batches = Vec::new();
        for b in &data {
            pending.push(*b);
            loop {
                let n = dec.decode(&pending).unwrap();
                pending.drain(..n);
                if dec.batch_full() {
                    batches.push(dec.flush().unwrap());
                } else {
                    break;
                }
            }
        }
        assert!(dec.finished());
        batches.push(dec.flush().unwrap());
        let sizes: Vec<usize> = batches.iter().map(RecordBatch::num_rows).collect();
        assert_eq!(sizes, vec![4, 4, 2]);
        let s = batches[2].column(1).as_string::<i32>();
        assert_eq!(s.value(0), "v8");
        assert!(s.is_null(1));
    }

    #[test]
    fn bad_values_name_the_column() {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int32, true)]));
        let data = stream(&[vec![Some(vec![1, 2])]]);
        let mut dec = CopyDecoder::new(schema, &[Decode::Int4], 10, usize::MAX, "tbl".into());
        let e = dec.decode(&data).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Decode);
        assert_eq!(e.location().unwrap().column.as_deref(), Some("x"));
        assert!(e.to_string().contains("expected 4 bytes"));
    }
}
