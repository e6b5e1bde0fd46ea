//! Local evaluation of what a backend did not push down: projection, [`Expr`] filters and limits.
//!
//! Every [`crate::Source`] must return exactly what its request asks for; a backend that cannot
//! push a part of the request down wraps its stream with [`apply`], telling it what was pushed.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, Date32Array, Float64Array, Int64Array, Scalar, StringArray,
};
use arrow::compute::kernels::{boolean, cmp};
use arrow::compute::{cast, filter_record_batch, is_not_null, is_null};
use arrow::datatypes::{DataType, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use futures::StreamExt;

use crate::error::{Error, ErrorKind, Location, Result};
use crate::request::{CmpOp, Expr, Literal, ReadRequest};
use crate::stream::{RecordBatchStreamAdapter, SendableRecordBatchStream};

/// What the backend already applied; [`apply`] does the rest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[allow(clippy::struct_excessive_bools)]
pub struct Pushed {
    /// The stream already has exactly the projected columns, in order.
    pub projection: bool,
    /// The stream already holds only matching rows.
    pub filter: bool,
    /// The stream already holds at most `limit` rows.
    pub limit: bool,
}

impl Pushed {
    /// Nothing was pushed down.
    pub const NONE: Self = Self {
        projection: false,
        filter: false,
        limit: false,
    };
    /// Everything was pushed down.
    pub const ALL: Self = Self {
        projection: true,
        filter: true,
        limit: true,
    };
}

/// The schema after projecting `schema` onto `projection` (or `schema` itself for `None`).
pub fn project_schema(schema: &SchemaRef, projection: Option<&[String]>) -> Result<SchemaRef> {
    let Some(cols) = projection else {
        return Ok(schema.clone());
    };
    let indices = projection_indices(schema, cols)?;
    Ok(Arc::new(schema.project(&indices)?))
}

fn projection_indices(schema: &Schema, cols: &[String]) -> Result<Vec<usize>> {
    cols.iter()
        .map(|c| {
            schema.index_of(c).map_err(|_| {
                Error::new(
                    ErrorKind::InvalidInput,
                    format!("projected column {c:?} does not exist"),
                )
                .with_location(Location::default().with_column(c.clone()))
                .with_context(
                    "available",
                    schema
                        .fields()
                        .iter()
                        .map(|f| f.name().as_str())
                        .collect::<Vec<_>>()
                        .join(","),
                )
            })
        })
        .collect()
}

/// Evaluate `expr` on `batch`. Null results mean "not true" (SQL semantics).
pub fn evaluate(expr: &Expr, batch: &RecordBatch) -> Result<BooleanArray> {
    match expr {
        Expr::Compare { column, op, value } => {
            let col = column_of(batch, column)?;
            if matches!(value, Literal::Null) {
                return Ok(BooleanArray::new_null(batch.num_rows()));
            }
            let lit = literal_array(value, col.data_type(), column)?;
            let scalar = Scalar::new(lit);
            let out = match op {
                CmpOp::Eq => cmp::eq(&col, &scalar),
                CmpOp::NotEq => cmp::neq(&col, &scalar),
                CmpOp::Lt => cmp::lt(&col, &scalar),
                CmpOp::LtEq => cmp::lt_eq(&col, &scalar),
                CmpOp::Gt => cmp::gt(&col, &scalar),
                CmpOp::GtEq => cmp::gt_eq(&col, &scalar),
            };
            out.map_err(|e| filter_error(column, &e.to_string()))
        }
        Expr::And(parts) => fold(parts, batch, true),
        Expr::Or(parts) => fold(parts, batch, false),
        Expr::Not(inner) => Ok(boolean::not(&evaluate(inner, batch)?)?),
        Expr::IsNull(column) => Ok(is_null(&column_of(batch, column)?)?),
        Expr::IsNotNull(column) => Ok(is_not_null(&column_of(batch, column)?)?),
        Expr::In { column, values } => {
            let parts: Vec<Expr> = values
                .iter()
                .map(|v| Expr::Compare {
                    column: column.clone(),
                    op: CmpOp::Eq,
                    value: v.clone(),
                })
                .collect();
            if parts.is_empty() {
                column_of(batch, column)?;
                return Ok(BooleanArray::from(vec![false; batch.num_rows()]));
            }
            fold(&parts, batch, false)
        }
    }
}

fn fold(parts: &[Expr], batch: &RecordBatch, and: bool) -> Result<BooleanArray> {
    let mut acc = BooleanArray::from(vec![and; batch.num_rows()]);
    for p in parts {
        let v = evaluate(p, batch)?;
        acc = if and {
            boolean::and_kleene(&acc, &v)?
        } else {
            boolean::or_kleene(&acc, &v)?
        };
    }
    Ok(acc)
}

fn column_of(batch: &RecordBatch, column: &str) -> Result<ArrayRef> {
    batch.column_by_name(column).cloned().ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidInput,
            format!("filter names column {column:?}, which does not exist"),
        )
        .with_location(Location::default().with_column(column))
    })
}

fn filter_error(column: &str, msg: &str) -> Error {
    Error::new(
        ErrorKind::InvalidInput,
        format!("cannot evaluate filter on column {column:?}: {msg}"),
    )
    .with_location(Location::default().with_column(column))
}

/// A one-element array holding `lit`, cast to `target`.
fn literal_array(lit: &Literal, target: &DataType, column: &str) -> Result<ArrayRef> {
    let raw: ArrayRef = match lit {
        Literal::Null => return Ok(arrow::array::new_null_array(target, 1)),
        Literal::Bool(b) => Arc::new(BooleanArray::from(vec![*b])),
        Literal::Int(i) => Arc::new(Int64Array::from(vec![*i])),
        Literal::Float(f) => Arc::new(Float64Array::from(vec![*f])),
        Literal::String(s) => Arc::new(StringArray::from(vec![s.as_str()])),
        Literal::Date(d) => Arc::new(Date32Array::from(vec![*d])),
        Literal::TimestampMicros(t) => {
            let arr = arrow::array::TimestampMicrosecondArray::from(vec![*t]);
            // An instant: compare against zoned columns in UTC, against naive ones as-is.
            match target {
                DataType::Timestamp(_, Some(tz)) => Arc::new(arr.with_timezone(tz.clone())),
                _ => Arc::new(arr),
            }
        }
    };
    if raw.data_type() == target {
        return Ok(raw);
    }
    let casted = cast(&raw, target).map_err(|e| filter_error(column, &e.to_string()))?;
    if casted.null_count() > 0 {
        return Err(filter_error(
            column,
            &format!("literal {lit} cannot be represented as {target}"),
        ));
    }
    Ok(casted)
}

/// Apply the filter (if any) and then the projection (if any) to one batch.
pub fn apply_to_batch(
    batch: &RecordBatch,
    request: &ReadRequest,
    pushed: Pushed,
) -> Result<RecordBatch> {
    let mut batch = batch.clone();
    if let (Some(f), false) = (&request.filter, pushed.filter) {
        let mask = evaluate(f, &batch)?;
        batch = filter_record_batch(&batch, &mask)?;
    }
    if let (Some(p), false) = (&request.projection, pushed.projection) {
        let idx = projection_indices(&batch.schema(), p)?;
        batch = batch.project(&idx)?;
    }
    Ok(batch)
}

/// Wrap `stream` so that it honours `request`'s projection, filter and limit, skipping what
/// `pushed` says the backend already did. The filter runs before the projection, so filters may
/// name columns that are not projected: a backend that pushes the projection but not the filter
/// must read the filter's columns too and leave `pushed.projection` false.
pub fn apply(
    stream: SendableRecordBatchStream,
    request: &ReadRequest,
    pushed: Pushed,
) -> Result<SendableRecordBatchStream> {
    let needs_filter = request.filter.is_some() && !pushed.filter;
    let needs_projection = request.projection.is_some() && !pushed.projection;
    let limit = if pushed.limit { None } else { request.limit };
    if !needs_filter && !needs_projection && limit.is_none() {
        return Ok(stream);
    }
    let in_schema = stream.schema();
    let out_schema = if needs_projection {
        project_schema(&in_schema, request.projection.as_deref())?
    } else {
        in_schema
    };
    let request = request.clone();
    let mapped = stream.map(move |b| b.and_then(|b| apply_to_batch(&b, &request, pushed)));
    let out: futures::stream::BoxStream<'static, Result<RecordBatch>> = match limit {
        None => mapped.boxed(),
        Some(limit) => Limit {
            inner: mapped.boxed(),
            left: limit,
        }
        .boxed(),
    };
    Ok(RecordBatchStreamAdapter::boxed(out_schema, out))
}

/// Yields at most `left` rows, then ends without polling the inner stream again.
struct Limit {
    inner: futures::stream::BoxStream<'static, Result<RecordBatch>>,
    left: usize,
}

impl futures::Stream for Limit {
    type Item = Result<RecordBatch>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        if self.left == 0 {
            return Poll::Ready(None);
        }
        match self.inner.poll_next_unpin(cx) {
            Poll::Ready(Some(Ok(b))) => {
                let take = b.num_rows().min(self.left);
                self.left -= take;
                Poll::Ready(Some(Ok(if take == b.num_rows() {
                    b
                } else {
                    b.slice(0, take)
                })))
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int32Array, StringArray};
    use arrow::datatypes::Field;

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int32, false),
            Field::new("name", DataType::Utf8, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int32Array::from(vec![1, 2, 3, 4])),
                Arc::new(StringArray::from(vec![
                    Some("a"),
                    None,
                    Some("c"),
                    Some("d"),
                ])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn compare_and_in_and_null_logic() {
        let b = batch();
        let m = evaluate(&Expr::cmp("id", CmpOp::Gt, 2), &b).unwrap();
        assert_eq!(m, BooleanArray::from(vec![false, false, true, true]));
        let m = evaluate(&Expr::is_in("name", ["a", "d"]), &b).unwrap();
        assert_eq!(filter_record_batch(&b, &m).unwrap().num_rows(), 2);
        // NOT (name = 'a') excludes the NULL row too
        let m = evaluate(&Expr::eq("name", "a").not(), &b).unwrap();
        assert_eq!(filter_record_batch(&b, &m).unwrap().num_rows(), 2);
        let m = evaluate(&Expr::IsNull("name".into()), &b).unwrap();
        assert_eq!(m, BooleanArray::from(vec![false, true, false, false]));
    }

    #[test]
    fn missing_column_is_invalid_input_naming_it() {
        let e = evaluate(&Expr::eq("nope", 1), &batch()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert_eq!(e.location().unwrap().column.as_deref(), Some("nope"));
    }

    #[tokio::test]
    async fn apply_filters_projects_and_limits_across_batches() {
        let b = batch();
        let s = crate::stream::memory_stream(b.schema(), vec![b.clone(), b.clone(), b]);
        let req = ReadRequest::dataset("t")
            .with_projection(["name"])
            .with_filter(Expr::cmp("id", CmpOp::GtEq, 2))
            .with_limit(4);
        let out: Vec<RecordBatch> = apply(s, &req, Pushed::NONE)
            .unwrap()
            .map(|b| b.unwrap())
            .collect()
            .await;
        let rows: usize = out.iter().map(RecordBatch::num_rows).sum();
        assert_eq!(rows, 4);
        assert!(
            out.iter()
                .all(|b| b.num_columns() == 1 && b.schema().field(0).name() == "name")
        );
    }
}
