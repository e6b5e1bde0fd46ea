//! The in-memory reference backend: a [`MemoryStore`] of named tables with a [`Source`] and a
//! [`Sink`] over it. It supports every capability, is atomic (a failed write leaves the table as
//! it was) and always runs in the conformance suite.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use arrow::compute::concat_batches;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use arrow::row::{RowConverter, SortField};
use async_trait::async_trait;
use futures::TryStreamExt;

use crate::capability::{SinkCapabilities, SourceCapabilities};
use crate::connector::{Sink, Source};
use crate::drift::reconcile;
use crate::error::{Error, ErrorKind, Location, Result};
use crate::request::{
    DatasetInfo, Partition, ReadRequest, ReadTarget, WriteMode, WriteReport, WriteRequest,
};
use crate::residual::{Pushed, apply, project_schema};
use crate::stream::{SendableRecordBatchStream, memory_stream};

const NAME: &str = "memory";

/// One table: a schema, its rows, and an optional primary key.
#[derive(Debug, Clone)]
pub struct MemoryTable {
    /// Schema of every batch.
    pub schema: SchemaRef,
    /// The rows.
    pub batches: Vec<RecordBatch>,
    /// Primary key columns, if any.
    pub primary_key: Vec<String>,
}

impl MemoryTable {
    fn num_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

/// Named tables shared by a [`MemorySource`] and a [`MemorySink`]. Cloning shares the tables.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    tables: Arc<RwLock<BTreeMap<String, MemoryTable>>>,
}

impl MemoryStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Put (or replace) a table.
    pub fn put(&self, name: impl Into<String>, schema: SchemaRef, batches: Vec<RecordBatch>) {
        self.write_lock().insert(
            name.into(),
            MemoryTable {
                schema,
                batches,
                primary_key: Vec::new(),
            },
        );
    }

    /// Put (or replace) a table with a primary key.
    pub fn put_with_key(
        &self,
        name: impl Into<String>,
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
        primary_key: Vec<String>,
    ) {
        self.write_lock().insert(
            name.into(),
            MemoryTable {
                schema,
                batches,
                primary_key,
            },
        );
    }

    /// A copy of a table.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<MemoryTable> {
        self.read_lock().get(name).cloned()
    }

    /// Remove a table.
    #[must_use]
    pub fn remove(&self, name: &str) -> Option<MemoryTable> {
        self.write_lock().remove(name)
    }

    /// A source over this store.
    #[must_use]
    pub fn source(&self) -> MemorySource {
        MemorySource {
            store: self.clone(),
        }
    }

    /// A sink into this store.
    #[must_use]
    pub fn sink(&self) -> MemorySink {
        MemorySink {
            store: self.clone(),
        }
    }

    // A poisoned lock only means another thread panicked while holding it; the map itself is
    // always replaced whole (writes build the new table first), so its contents stay consistent.
    fn read_lock(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, MemoryTable>> {
        self.tables
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write_lock(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, MemoryTable>> {
        self.tables
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn not_found(name: &str, op: &'static str) -> Error {
    Error::new(
        ErrorKind::NotFound,
        format!("table {name:?} does not exist"),
    )
    .with_connector(NAME)
    .with_operation(op)
    .with_location(Location::table(name))
}

/// Reads tables of a [`MemoryStore`].
#[derive(Debug, Clone)]
pub struct MemorySource {
    store: MemoryStore,
}

#[async_trait]
impl Source for MemorySource {
    fn name(&self) -> &'static str {
        NAME
    }

    fn capabilities(&self) -> SourceCapabilities {
        SourceCapabilities::none()
            .with_projection_pushdown()
            .with_filter_pushdown()
            .with_limit_pushdown()
            .with_partitioned_reads()
            .with_consistent_snapshot()
    }

    async fn check(&self) -> Result<()> {
        Ok(())
    }

    async fn discover(&self) -> Result<Vec<DatasetInfo>> {
        Ok(self
            .store
            .read_lock()
            .iter()
            .map(|(name, t)| DatasetInfo {
                name: name.clone(),
                schema: t.schema.clone(),
                primary_key: t.primary_key.clone(),
                row_estimate: Some(t.num_rows() as u64),
            })
            .collect())
    }

    async fn plan(&self, request: &ReadRequest, max_partitions: usize) -> Result<Vec<Partition>> {
        let name = match &request.target {
            ReadTarget::Dataset(d) => d,
            ReadTarget::Query(_) => {
                return Err(
                    Error::unsupported("the memory backend has no query language")
                        .with_connector(NAME)
                        .with_operation("plan"),
                );
            }
        };
        let table = self
            .store
            .get(name)
            .ok_or_else(|| not_found(name, "plan"))?;
        if let Some(p) = &request.projection {
            project_schema(&table.schema, Some(p))
                .map_err(|e| e.with_connector(NAME).with_operation("plan"))?;
        }
        // Snapshot: the partitions carry the row range of the table as it is now; rows are
        // split evenly by position. (Writes replace tables whole, so positions are stable
        // only if nothing writes in between; the store has no MVCC.)
        let rows = table.num_rows();
        let n = max_partitions.clamp(1, rows.max(1));
        let per = rows.div_ceil(n).max(1);
        Ok((0..n)
            .map(|i| {
                let start = (i * per).min(rows);
                let end = ((i + 1) * per).min(rows);
                Partition {
                    request: request.clone(),
                    index: i,
                    count: n,
                    spec: serde_json::json!({ "start": start, "end": end }),
                    row_estimate: Some((end - start) as u64),
                }
            })
            .collect())
    }

    async fn read(&self, partition: Partition) -> Result<SendableRecordBatchStream> {
        let request = &partition.request;
        let Some(name) = request.dataset_name() else {
            return Err(
                Error::unsupported("the memory backend has no query language")
                    .with_connector(NAME)
                    .with_operation("read"),
            );
        };
        let table = self
            .store
            .get(name)
            .ok_or_else(|| not_found(name, "read"))?;
        let start = partition
            .spec
            .get("start")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0) as usize;
        let end = partition
            .spec
            .get("end")
            .and_then(serde_json::Value::as_u64)
            .map_or(usize::MAX, |e| e as usize);
        let batch_rows = request.batch_rows_or_default();
        let mut out = Vec::new();
        let mut offset = 0usize;
        for b in &table.batches {
            let (b_start, b_end) = (offset, offset + b.num_rows());
            offset = b_end;
            let (s, e) = (start.max(b_start), end.min(b_end));
            if s >= e {
                continue;
            }
            let mut at = s;
            while at < e {
                let len = (e - at).min(batch_rows);
                out.push(b.slice(at - b_start, len));
                at += len;
            }
        }
        let stream = memory_stream(table.schema.clone(), out);
        apply(stream, request, Pushed::NONE).map_err(|e| {
            e.with_connector(NAME)
                .with_operation("read")
                .with_location(Location::table(name))
        })
    }
}

/// Writes tables of a [`MemoryStore`]. Every write is atomic.
#[derive(Debug, Clone)]
pub struct MemorySink {
    store: MemoryStore,
}

#[async_trait]
impl Sink for MemorySink {
    fn name(&self) -> &'static str {
        NAME
    }

    fn capabilities(&self) -> SinkCapabilities {
        SinkCapabilities::none()
            .with_append()
            .with_overwrite()
            .with_upsert()
            .with_delete()
            .with_create_if_missing()
            .with_add_columns()
            .with_atomic()
    }

    async fn check(&self) -> Result<()> {
        Ok(())
    }

    async fn write(
        &self,
        request: WriteRequest,
        data: SendableRecordBatchStream,
    ) -> Result<WriteReport> {
        let started = Instant::now();
        let name = request.target.clone();
        let ctx = |e: Error| {
            e.with_connector(NAME)
                .with_operation("write")
                .with_location(Location::table(&name))
        };
        let incoming_schema = data.schema();
        // Consume the whole stream before touching the table, so a failing stream changes nothing.
        let incoming: Vec<RecordBatch> = data.try_collect().await.map_err(ctx)?;
        let rows: u64 = incoming.iter().map(|b| b.num_rows() as u64).sum();
        let bytes: u64 = incoming
            .iter()
            .map(|b| b.get_array_memory_size() as u64)
            .sum();

        let existing = self.store.get(&name);
        let existing = match (existing, &request.mode) {
            (Some(t), _) => t,
            (None, WriteMode::Delete(_)) => return Err(ctx(not_found(&name, "write"))),
            (None, _) if request.create_if_missing => MemoryTable {
                schema: incoming_schema.clone(),
                batches: Vec::new(),
                primary_key: Vec::new(),
            },
            (None, _) => {
                return Err(ctx(not_found(&name, "write")).with_context("create_if_missing", false));
            }
        };
        let plan = reconcile(
            &existing.schema,
            &incoming_schema,
            request.schema_drift,
            &name,
        )
        .map_err(ctx)?;
        let target = plan.target.clone();
        let incoming: Vec<RecordBatch> = incoming
            .iter()
            .map(|b| plan.apply(b))
            .collect::<Result<_>>()
            .map_err(ctx)?;
        let old: Vec<RecordBatch> = if plan.added.is_empty() {
            existing.batches.clone()
        } else {
            // Widen existing rows with NULLs for the added columns.
            let widen = reconcile(
                &target,
                &existing.schema,
                crate::SchemaDriftPolicy::AddColumns,
                &name,
            )
            .map_err(ctx)?;
            existing
                .batches
                .iter()
                .map(|b| widen.apply(b))
                .collect::<Result<_>>()
                .map_err(ctx)?
        };
        let mut report = WriteReport::new(rows, bytes, std::time::Duration::ZERO);
        report.columns_added = plan.added.iter().map(|f| f.name().clone()).collect();
        report.columns_ignored.clone_from(&plan.ignored);
        let new_batches = match &request.mode {
            WriteMode::Append => old.into_iter().chain(incoming).collect(),
            WriteMode::Overwrite => incoming,
            WriteMode::Upsert(keys) => {
                let kept = remove_matching(&target, &old, &incoming, keys).map_err(ctx)?;
                let deduped = dedup_last(&target, &incoming, keys).map_err(ctx)?;
                kept.into_iter().chain(deduped).collect()
            }
            WriteMode::Delete(keys) => {
                let before: usize = old.iter().map(RecordBatch::num_rows).sum();
                let kept = remove_matching(&target, &old, &incoming, keys).map_err(ctx)?;
                let after: usize = kept.iter().map(RecordBatch::num_rows).sum();
                report.rows_deleted = Some((before - after) as u64);
                kept
            }
        };
        let primary_key = match &request.mode {
            WriteMode::Upsert(keys) if existing.primary_key.is_empty() => keys.clone(),
            _ => existing.primary_key,
        };
        self.store.write_lock().insert(
            name.clone(),
            MemoryTable {
                schema: target,
                batches: new_batches,
                primary_key,
            },
        );
        report.outputs.push(name.clone());
        report.elapsed = started.elapsed();
        Ok(report)
    }
}

fn key_converter(schema: &SchemaRef, keys: &[String]) -> Result<(RowConverter, Vec<usize>)> {
    if keys.is_empty() {
        return Err(Error::invalid_config(
            "upsert and delete need at least one key column",
        ));
    }
    let idx: Vec<usize> = keys
        .iter()
        .map(|k| {
            schema.index_of(k).map_err(|_| {
                Error::new(
                    ErrorKind::SchemaMismatch,
                    format!("key column {k:?} does not exist"),
                )
                .with_location(Location::default().with_column(k.clone()))
            })
        })
        .collect::<Result<_>>()?;
    let fields = idx
        .iter()
        .map(|i| SortField::new(schema.field(*i).data_type().clone()))
        .collect();
    Ok((RowConverter::new(fields)?, idx))
}

fn key_rows(conv: &RowConverter, idx: &[usize], batch: &RecordBatch) -> Result<arrow::row::Rows> {
    let cols: Vec<_> = idx.iter().map(|i| batch.column(*i).clone()).collect();
    Ok(conv.convert_columns(&cols)?)
}

/// Keep the rows of `old` whose keys appear in no row of `incoming`.
fn remove_matching(
    schema: &SchemaRef,
    old: &[RecordBatch],
    incoming: &[RecordBatch],
    keys: &[String],
) -> Result<Vec<RecordBatch>> {
    let (conv, idx) = key_converter(schema, keys)?;
    let mut set: HashSet<Vec<u8>> = HashSet::new();
    for b in incoming {
        let rows = key_rows(&conv, &idx, b)?;
        set.extend(rows.iter().map(|r| r.as_ref().to_vec()));
    }
    let mut out = Vec::new();
    for b in old {
        let rows = key_rows(&conv, &idx, b)?;
        let mask: arrow::array::BooleanArray = rows
            .iter()
            .map(|r| Some(!set.contains(r.as_ref())))
            .collect();
        out.push(arrow::compute::filter_record_batch(b, &mask)?);
    }
    Ok(out)
}

/// Incoming rows with duplicate keys: the last one wins.
fn dedup_last(
    schema: &SchemaRef,
    incoming: &[RecordBatch],
    keys: &[String],
) -> Result<Vec<RecordBatch>> {
    let all = concat_batches(schema, incoming)?;
    let (conv, idx) = key_converter(schema, keys)?;
    let rows = key_rows(&conv, &idx, &all)?;
    let mut seen: HashSet<Vec<u8>> = HashSet::new();
    let mut keep = vec![false; all.num_rows()];
    for i in (0..all.num_rows()).rev() {
        if seen.insert(rows.row(i).as_ref().to_vec()) {
            keep[i] = true;
        }
    }
    let mask = arrow::array::BooleanArray::from(keep);
    Ok(vec![arrow::compute::filter_record_batch(&all, &mask)?])
}
