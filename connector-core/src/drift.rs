//! Schema-drift handling shared by every sink: compare an incoming schema with a target's and
//! decide, under a [`SchemaDriftPolicy`], what to add, what to drop and how to reshape batches.

use std::sync::Arc;

use arrow::array::{ArrayRef, new_null_array};
use arrow::datatypes::{Field, FieldRef, Schema, SchemaRef};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};

use crate::error::{Error, ErrorKind, Location, Result};
use crate::request::SchemaDriftPolicy;

/// How incoming batches map onto a target.
#[derive(Debug, Clone)]
pub struct DriftPlan {
    /// The target schema after the write (target columns, then any added ones).
    pub target: SchemaRef,
    /// Columns the target gains (only under [`SchemaDriftPolicy::AddColumns`]).
    pub added: Vec<FieldRef>,
    /// Incoming columns dropped (only under [`SchemaDriftPolicy::IgnoreExtra`]).
    pub ignored: Vec<String>,
    /// For each target column, the incoming column index that feeds it (None: write NULL).
    sources: Vec<Option<usize>>,
}

impl DriftPlan {
    /// True when incoming batches already have exactly the target's schema layout.
    #[must_use]
    pub fn is_identity(&self) -> bool {
        self.added.is_empty()
            && self.ignored.is_empty()
            && self.sources.iter().enumerate().all(|(i, s)| *s == Some(i))
    }

    /// Reshape an incoming batch to the target schema.
    pub fn apply(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let cols: Vec<ArrayRef> = self
            .target
            .fields()
            .iter()
            .zip(&self.sources)
            .map(|(f, s)| match s {
                Some(i) => batch.column(*i).clone(),
                None => new_null_array(f.data_type(), batch.num_rows()),
            })
            .collect();
        let opts = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
        Ok(RecordBatch::try_new_with_options(
            self.target.clone(),
            cols,
            &opts,
        )?)
    }
}

/// A schema as `name: type, …`, for messages that show two schemas side by side.
#[must_use]
pub fn describe_schema(schema: &Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| format!("{}: {}", f.name(), f.data_type()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Compare `incoming` with `target` (the existing target's schema) under `policy`.
///
/// - Columns match by name; types must be equal (a backend that widens types maps them first).
/// - An incoming column the target lacks: error under `Fail`, added under `AddColumns`,
///   dropped under `IgnoreExtra`.
/// - A target column the incoming data lacks: NULL if the column is nullable (under `AddColumns`
///   and `IgnoreExtra`), otherwise an error.
pub fn reconcile(
    target: &Schema,
    incoming: &Schema,
    policy: SchemaDriftPolicy,
    table: &str,
) -> Result<DriftPlan> {
    let mismatch = |msg: String, column: &str| {
        Error::new(ErrorKind::SchemaMismatch, msg)
            .with_location(Location::table(table).with_column(column))
            .with_context("policy", format!("{policy:?}"))
    };
    let mut fields: Vec<FieldRef> = Vec::new();
    let mut sources = Vec::new();
    for tf in target.fields() {
        if let Ok(i) = incoming.index_of(tf.name()) {
            {
                let inf = incoming.field(i);
                if inf.data_type() != tf.data_type() {
                    return Err(mismatch(
                        format!(
                            "column {:?} is {} in the target but {} in the data",
                            tf.name(),
                            tf.data_type(),
                            inf.data_type()
                        ),
                        tf.name(),
                    ));
                }
                sources.push(Some(i));
            }
        } else {
            {
                if policy == SchemaDriftPolicy::Fail || !tf.is_nullable() {
                    return Err(mismatch(
                        format!(
                            "the data has no column {:?}, which the target requires",
                            tf.name()
                        ),
                        tf.name(),
                    ));
                }
                sources.push(None);
            }
        }
        fields.push(tf.clone());
    }
    let mut added = Vec::new();
    let mut ignored = Vec::new();
    for (i, f) in incoming.fields().iter().enumerate() {
        if target.index_of(f.name()).is_ok() {
            continue;
        }
        match policy {
            SchemaDriftPolicy::Fail => {
                return Err(mismatch(
                    format!("the data has column {:?}, which the target lacks", f.name()),
                    f.name(),
                ));
            }
            SchemaDriftPolicy::AddColumns => {
                let nf: FieldRef = Arc::new(
                    Field::new(f.name(), f.data_type().clone(), true)
                        .with_metadata(f.metadata().clone()),
                );
                added.push(nf.clone());
                fields.push(nf);
                sources.push(Some(i));
            }
            SchemaDriftPolicy::IgnoreExtra => ignored.push(f.name().clone()),
        }
    }
    Ok(DriftPlan {
        target: Arc::new(Schema::new_with_metadata(fields, target.metadata().clone())),
        added,
        ignored,
        sources,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int32Array;
    use arrow::datatypes::DataType;

    fn schema(cols: &[(&str, DataType, bool)]) -> Schema {
        Schema::new(
            cols.iter()
                .map(|(n, t, nl)| Field::new(*n, t.clone(), *nl))
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn policies() {
        let target = schema(&[("a", DataType::Int32, false), ("b", DataType::Int32, true)]);
        let incoming = schema(&[("a", DataType::Int32, false), ("c", DataType::Int32, true)]);
        let e = reconcile(&target, &incoming, SchemaDriftPolicy::Fail, "t").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::SchemaMismatch);
        let p = reconcile(&target, &incoming, SchemaDriftPolicy::AddColumns, "t").unwrap();
        assert_eq!(p.added.len(), 1);
        let batch = RecordBatch::try_new(
            Arc::new(incoming.clone()),
            vec![
                Arc::new(Int32Array::from(vec![1])),
                Arc::new(Int32Array::from(vec![2])),
            ],
        )
        .unwrap();
        let out = p.apply(&batch).unwrap();
        assert_eq!(out.num_columns(), 3);
        assert_eq!(out.column(1).null_count(), 1);
        let p = reconcile(&target, &incoming, SchemaDriftPolicy::IgnoreExtra, "t").unwrap();
        assert_eq!(p.ignored, vec!["c".to_string()]);
        assert_eq!(p.apply(&batch).unwrap().num_columns(), 2);
        let t2 = schema(&[("a", DataType::Int64, false)]);
        assert_eq!(
            reconcile(&t2, &incoming, SchemaDriftPolicy::IgnoreExtra, "t")
                .unwrap_err()
                .kind(),
            ErrorKind::SchemaMismatch
        );
    }
}
