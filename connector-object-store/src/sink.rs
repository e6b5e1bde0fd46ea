//! [`ObjectStoreSink`]: write one object or many (rotated by rows or bytes), hive-partitioned,
//! with multipart uploads, published so that readers never see a partial write.
//!
//! # How a write is published
//!
//! 1. Every object is written under `<target>/_temporary/<write-id>/…`. Readers (this crate's
//!    source, connector-file, Spark, pyarrow, `DuckDB`) skip path segments starting with `_`.
//!    Large objects go up as multipart uploads, which the store shows only once completed.
//! 2. When the whole stream has been written, each staged object is moved to its final key
//!    (`<target>/year=2024/part-<write-id>-<n>.parquet`) by a server-side copy and a delete.
//!    Final names are unique per write, so no existing object is ever replaced.
//! 3. For an overwrite, the objects that were visible before the write are deleted only now,
//!    after every new object is in place.
//!
//! If the stream or an upload fails, open multipart uploads are aborted and staged objects
//! deleted: the target is unchanged. If the process dies during step 1, only hidden objects
//! under `_temporary/` (and incomplete multipart uploads, which are invisible) remain; an
//! object-store lifecycle rule on `_temporary/` and on incomplete multipart uploads removes them.
//! During step 2 (server-side copies, no data passes through the client) a reader may see some
//! of the new objects, each one complete; an overwrite's old objects are still all there then.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{Array, ArrayRef, RecordBatch, StringArray, UInt32Array, new_null_array};
use arrow::compute::{cast, take_record_batch};
use arrow::datatypes::{DataType, Schema, SchemaRef};
use async_trait::async_trait;
use bytes::Bytes;
use connector_core::{
    Error, ErrorKind, Location, Result, SchemaDriftPolicy, SendableRecordBatchStream, Sink,
    SinkCapabilities, WriteMode, WriteReport, WriteRequest,
};
use connector_file::{FileFormat, FormatWriter};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload, WriteMultipart};

use crate::hive::partition_dir;
use crate::location::{has_glob, join_key};
use crate::shared::Shared;

const DEFAULT_PART_SIZE: usize = 10 * 1024 * 1024;
const MIN_PART_SIZE: usize = 5 * 1024 * 1024;
const DEFAULT_MAX_FILE_BYTES: u64 = 1024 * 1024 * 1024;
const DEFAULT_UPLOAD_CONCURRENCY: usize = 4;

/// Writes datasets under the configured location; [`WriteRequest::target`] is a key prefix
/// relative to the location (or a full URL under it). See the [module docs](self) for how
/// writes are published.
#[derive(Debug, Clone)]
pub struct ObjectStoreSink {
    pub(crate) shared: Arc<Shared>,
}

/// One object being written.
struct OpenFile {
    writer: Option<Box<dyn FormatWriter>>,
    staged: Path,
    final_key: String,
    pending: Vec<Bytes>,
    pending_len: usize,
    upload: Option<WriteMultipart>,
    rows: u64,
    bytes: u64,
}

/// Limits and targets of one write.
struct Plan {
    shared: Arc<Shared>,
    format: Arc<dyn FileFormat>,
    ext: &'static str,
    target: String,
    staging: String,
    write_id: String,
    part_size: usize,
    concurrency: usize,
    max_rows: u64,
    max_bytes: u64,
}

impl Plan {
    fn display(&self, key: &str) -> String {
        self.shared.root.display(key)
    }

    fn store_err(&self, e: &object_store::Error, op: &'static str, key: &str) -> Error {
        crate::error::map_store_error(e, self.shared.connector, op, &self.display(key))
    }

    fn open(&self, dir: &str, seq: &mut u64, schema: &SchemaRef) -> Result<OpenFile> {
        let name = format!("part-{}-{:05}.{}", self.write_id, *seq, self.ext);
        *seq += 1;
        let final_key = join_key(&[&self.target, dir, &name]);
        let staged_key = join_key(&[&self.staging, dir, &name]);
        let staged = self.shared.root.path(&staged_key)?;
        let writer = self
            .format
            .writer(schema.clone())
            .map_err(|e| self.shared.refine(e, "write", &self.display(&final_key)))?;
        Ok(OpenFile {
            writer: Some(writer),
            staged,
            final_key,
            pending: Vec::new(),
            pending_len: 0,
            upload: None,
            rows: 0,
            bytes: 0,
        })
    }

    async fn push(&self, f: &mut OpenFile, b: Bytes) -> Result<()> {
        if b.is_empty() {
            return Ok(());
        }
        f.bytes += b.len() as u64;
        if let Some(up) = f.upload.as_mut() {
            up.wait_for_capacity(self.concurrency)
                .await
                .map_err(|e| self.store_err(&e, "write", &f.final_key))?;
            up.put(b);
            return Ok(());
        }
        f.pending_len += b.len();
        f.pending.push(b);
        if f.pending_len >= self.part_size {
            let upload = self
                .shared
                .root
                .store()
                .put_multipart(&f.staged)
                .await
                .map_err(|e| self.store_err(&e, "write", &f.final_key))?;
            let mut wm = WriteMultipart::new_with_chunk_size(upload, self.part_size);
            for p in f.pending.drain(..) {
                wm.put(p);
            }
            f.pending_len = 0;
            f.upload = Some(wm);
        }
        Ok(())
    }

    async fn write(&self, f: &mut OpenFile, batch: &RecordBatch) -> Result<()> {
        let Some(w) = f.writer.as_mut() else {
            return Err(Error::internal("write after finish"));
        };
        w.write(batch)
            .map_err(|e| self.shared.refine(e, "write", &self.display(&f.final_key)))?;
        f.rows += batch.num_rows() as u64;
        let b = w.take_bytes();
        self.push(f, b).await
    }

    fn full(&self, f: &OpenFile) -> bool {
        f.rows >= self.max_rows || f.bytes >= self.max_bytes
    }

    /// Finish the object: it is then complete at its staged key.
    async fn finish(&self, mut f: OpenFile) -> Result<(Path, String)> {
        let Some(w) = f.writer.take() else {
            return Err(Error::internal("finish twice"));
        };
        let last = w
            .finish()
            .map_err(|e| self.shared.refine(e, "write", &self.display(&f.final_key)))?;
        self.push(&mut f, last).await?;
        if let Some(up) = f.upload.take() {
            up.finish()
                .await
                .map_err(|e| self.store_err(&e, "write", &f.final_key))?;
        } else {
            let payload: PutPayload = f.pending.drain(..).collect();
            self.shared
                .root
                .store()
                .put(&f.staged, payload)
                .await
                .map_err(|e| self.store_err(&e, "write", &f.final_key))?;
        }
        Ok((f.staged, f.final_key))
    }

    async fn abort(&self, mut f: OpenFile) {
        if let Some(up) = f.upload.take()
            && let Err(e) = up.abort().await
        {
            tracing::warn!(object = %self.display(&f.final_key), error = %self.store_err(&e, "abort", &f.final_key), "could not abort a multipart upload");
        }
    }

    /// Delete every object under the staging prefix (best effort: failures are logged).
    async fn clean_staging(&self) {
        let Ok(prefix) = self.shared.root.path(&self.staging) else {
            return;
        };
        let store = self.shared.root.store().clone();
        let locations = store.list(Some(&prefix)).map_ok(|m| m.location).boxed();
        let mut deleted = store.delete_stream(locations);
        while let Some(r) = deleted.next().await {
            if let Err(e) = r {
                tracing::warn!(staging = %self.display(&self.staging), error = %self.store_err(&e, "cleanup", &self.staging), "could not delete a staged object");
            }
        }
    }
}

/// How incoming batches are fitted to an existing dataset's schema.
enum Fit {
    AsIs,
    /// Take these incoming columns (by index, `None` for a NULL column) into `schema`.
    Map(Vec<Option<usize>>, SchemaRef),
}

impl Fit {
    fn apply(&self, b: &RecordBatch) -> Result<RecordBatch> {
        match self {
            Self::AsIs => Ok(b.clone()),
            Self::Map(idx, schema) => {
                let cols: Vec<ArrayRef> = idx
                    .iter()
                    .zip(schema.fields())
                    .map(|(i, f)| match i {
                        Some(i) => b.column(*i).clone(),
                        None => new_null_array(f.data_type(), b.num_rows()),
                    })
                    .collect();
                Ok(RecordBatch::try_new(schema.clone(), cols)?)
            }
        }
    }
}

impl ObjectStoreSink {
    fn connector(&self) -> &'static str {
        self.shared.connector
    }

    fn format_name(&self) -> &str {
        self.shared.layout.format.as_deref().unwrap_or("parquet")
    }

    fn err(&self, kind: ErrorKind, msg: String, target: &str) -> Error {
        Error::new(kind, msg)
            .with_connector(self.connector())
            .with_operation("write")
            .with_location(Location::url(self.shared.root.display(target)))
    }

    /// Schema of the data files already under `target` (from the first one), if any.
    async fn existing_schema(
        &self,
        existing: &[object_store::ObjectMeta],
    ) -> Result<Option<SchemaRef>> {
        for m in existing {
            let Some(key) = self.shared.root.relative(&m.location) else {
                continue;
            };
            let Some((format, compression)) = self.shared.format_for(&key) else {
                continue;
            };
            let input = self.shared.bytes(&key, m.size, compression);
            let s = format.infer_schema(input).await.map_err(|e| {
                self.shared
                    .refine(e, "write", &self.shared.root.display(&key))
            })?;
            return Ok(Some(s));
        }
        Ok(None)
    }

    fn fit(
        &self,
        incoming: &SchemaRef,
        existing: Option<&SchemaRef>,
        policy: SchemaDriftPolicy,
        target: &str,
    ) -> Result<Fit> {
        let Some(existing) = existing else {
            return Ok(Fit::AsIs);
        };
        let extra: Vec<&str> = incoming
            .fields()
            .iter()
            .filter(|f| existing.field_with_name(f.name()).is_err())
            .map(|f| f.name().as_str())
            .collect();
        let missing: Vec<&str> = existing
            .fields()
            .iter()
            .filter(|f| incoming.field_with_name(f.name()).is_err())
            .map(|f| f.name().as_str())
            .collect();
        let mut retyped = Vec::new();
        // Text formats have inferred types (an empty CSV reads as strings): names only there.
        let typed = matches!(self.format_name(), "parquet" | "avro" | "ipc" | "arrow");
        for f in existing.fields().iter().filter(|_| typed) {
            if let Ok(i) = incoming.field_with_name(f.name())
                && i.data_type() != f.data_type()
            {
                retyped.push(format!(
                    "{}: {} → {}",
                    f.name(),
                    f.data_type(),
                    i.data_type()
                ));
            }
        }
        if !retyped.is_empty() {
            return Err(self.err(
                ErrorKind::SchemaMismatch,
                format!(
                    "incoming column types differ from the objects already written: {}",
                    retyped.join(", ")
                ),
                target,
            ));
        }
        if extra.is_empty() && missing.is_empty() {
            let same_order = incoming
                .fields()
                .iter()
                .zip(existing.fields())
                .all(|(a, b)| a.name() == b.name());
            if same_order {
                return Ok(Fit::AsIs);
            }
        }
        match policy {
            SchemaDriftPolicy::Fail if !extra.is_empty() || !missing.is_empty() => Err(self.err(
                ErrorKind::SchemaMismatch,
                format!(
                    "incoming columns differ from the objects already written: extra {extra:?}, missing {missing:?} (schema_drift = fail)"
                ),
                target,
            )),
            SchemaDriftPolicy::AddColumns if !extra.is_empty() => Err(self.err(
                ErrorKind::Unsupported,
                format!("adding columns {extra:?} to objects already written is not supported; write to a new target or overwrite"),
                target,
            )),
            _ => {
                let idx = existing
                    .fields()
                    .iter()
                    .map(|f| incoming.index_of(f.name()).ok())
                    .collect();
                Ok(Fit::Map(idx, existing.clone()))
            }
        }
    }
}

/// Split `batch` by the string values of `columns` into (partition dir, rows without them).
fn split_by_partition(
    batch: &RecordBatch,
    columns: &[String],
    data_schema: &SchemaRef,
) -> Result<Vec<(String, RecordBatch)>> {
    let schema = batch.schema();
    let mut keys: Vec<StringArray> = Vec::with_capacity(columns.len());
    for c in columns {
        let i = schema.index_of(c).map_err(|_| {
            Error::invalid_config(format!(
                "partition column {c:?} is not in the data (columns: {:?})",
                schema.fields().iter().map(|f| f.name()).collect::<Vec<_>>()
            ))
        })?;
        let s = cast(batch.column(i), &DataType::Utf8)?;
        let s = s
            .as_any()
            .downcast_ref::<StringArray>()
            .cloned()
            .ok_or_else(|| Error::internal("cast to Utf8 did not give a StringArray"))?;
        keys.push(s);
    }
    let data_idx: Vec<usize> = data_schema
        .fields()
        .iter()
        .filter_map(|f| schema.index_of(f.name()).ok())
        .collect();
    let mut groups: Vec<(String, Vec<u32>)> = Vec::new();
    let mut pos: HashMap<String, usize> = HashMap::new();
    for row in 0..batch.num_rows() {
        let values: Vec<Option<String>> = keys
            .iter()
            .map(|k| (!k.is_null(row)).then(|| k.value(row).to_owned()))
            .collect();
        let dir = partition_dir(columns, &values);
        let g = *pos.entry(dir.clone()).or_insert_with(|| {
            groups.push((dir, Vec::new()));
            groups.len() - 1
        });
        groups[g].1.push(row as u32);
    }
    let data = batch.project(&data_idx)?;
    groups
        .into_iter()
        .map(|(dir, rows)| {
            let idx = UInt32Array::from(rows);
            Ok((dir, take_record_batch(&data, &idx)?))
        })
        .collect()
}

#[async_trait]
impl Sink for ObjectStoreSink {
    fn name(&self) -> &str {
        self.connector()
    }

    fn capabilities(&self) -> SinkCapabilities {
        SinkCapabilities::none()
            .with_append()
            .with_overwrite()
            .with_create_if_missing()
            .with_atomic()
    }

    async fn check(&self) -> Result<()> {
        self.shared.check().await
    }

    async fn write(
        &self,
        request: WriteRequest,
        data: SendableRecordBatchStream,
    ) -> Result<WriteReport> {
        let start = Instant::now();
        let overwrite = match &request.mode {
            WriteMode::Append => false,
            WriteMode::Overwrite => true,
            other => {
                return Err(Error::unsupported(format!(
                    "object stores write files: append and overwrite only, not {other:?}"
                ))
                .with_connector(self.connector())
                .with_operation("write"));
            }
        };
        let target = self.shared.relative_name(&request.target)?;
        if has_glob(&target) {
            return Err(self.err(
                ErrorKind::InvalidInput,
                "a write target cannot be a glob".to_owned(),
                &target,
            ));
        }
        let format_name = self.format_name();
        let format = self.shared.formats.by_name(format_name).ok_or_else(|| {
            self.err(
                ErrorKind::InvalidConfig,
                format!(
                    "file format {format_name:?} is not in this build ({:?})",
                    self.shared.formats
                ),
                &target,
            )
        })?;
        let ext = format.extensions().first().copied().unwrap_or("dat");

        // What is visible now: replaced by an overwrite, schema reference for an append.
        let existing = self.shared.root.list(&target).await.map_err(|e| {
            self.shared
                .refine(e, "write", &self.shared.root.display(&target))
        })?;
        if !request.create_if_missing && existing.is_empty() {
            return Err(self.err(
                ErrorKind::NotFound,
                "the target has no objects and create_if_missing is false".to_owned(),
                &target,
            ));
        }
        let partition_by = self.shared.layout.partition_by.clone();
        let incoming = data.schema();
        for c in &partition_by {
            if incoming.field_with_name(c).is_err() {
                return Err(self.err(
                    ErrorKind::InvalidConfig,
                    format!("partition column {c:?} is not in the data"),
                    &target,
                ));
            }
        }
        let data_schema: SchemaRef = Arc::new(Schema::new(
            incoming
                .fields()
                .iter()
                .filter(|f| !partition_by.contains(f.name()))
                .cloned()
                .collect::<Vec<_>>(),
        ));
        let fit = if overwrite {
            Fit::AsIs
        } else {
            let old = self.existing_schema(&existing).await?;
            self.fit(&data_schema, old.as_ref(), request.schema_drift, &target)?
        };
        let file_schema = match &fit {
            Fit::AsIs => data_schema.clone(),
            Fit::Map(_, s) => s.clone(),
        };
        let ignored: Vec<String> = data_schema
            .fields()
            .iter()
            .filter(|f| file_schema.field_with_name(f.name()).is_err())
            .map(|f| f.name().clone())
            .collect();

        let write_id = uuid::Uuid::new_v4().simple().to_string();
        let part_size = self
            .shared
            .layout
            .part_size
            .unwrap_or(DEFAULT_PART_SIZE)
            .max(MIN_PART_SIZE);
        let plan = Plan {
            shared: self.shared.clone(),
            format,
            ext,
            staging: join_key(&[&target, "_temporary", &write_id]),
            target: target.clone(),
            write_id,
            part_size,
            concurrency: self
                .shared
                .layout
                .upload_concurrency
                .unwrap_or(DEFAULT_UPLOAD_CONCURRENCY)
                .max(1),
            max_rows: self
                .shared
                .layout
                .max_rows_per_file
                .unwrap_or(u64::MAX)
                .max(1),
            max_bytes: self
                .shared
                .layout
                .max_bytes_per_file
                .unwrap_or(DEFAULT_MAX_FILE_BYTES)
                .max(1),
        };

        let mut open: HashMap<String, OpenFile> = HashMap::new();
        let mut staged: Vec<(Path, String)> = Vec::new();
        let mut rows = 0u64;
        let mut bytes = 0u64;
        let result = write_all(
            &plan,
            data,
            &fit,
            &partition_by,
            &data_schema,
            &file_schema,
            &mut open,
            &mut staged,
            (&mut rows, &mut bytes),
        )
        .await;
        if let Err(e) = result {
            for (_, f) in open.drain() {
                plan.abort(f).await;
            }
            plan.clean_staging().await;
            return Err(e);
        }

        // Publish: move every staged object into place, then drop what an overwrite replaces.
        let store = self.shared.root.store().clone();
        let mut outputs = Vec::with_capacity(staged.len());
        for (from, final_key) in &staged {
            let to = self.shared.root.path(final_key)?;
            if let Err(e) = store.rename(from, &to).await {
                let err = plan.store_err(&e, "publish", final_key);
                // Objects already moved stay (each is complete); the rest is removed.
                plan.clean_staging().await;
                return Err(err);
            }
            outputs.push(self.shared.root.display(final_key));
        }
        if overwrite && !existing.is_empty() {
            let old: Vec<object_store::Result<Path>> =
                existing.into_iter().map(|m| Ok(m.location)).collect();
            let mut deleted = store.delete_stream(futures::stream::iter(old).boxed());
            while let Some(r) = deleted.next().await {
                r.map_err(|e| plan.store_err(&e, "overwrite", &target))?;
            }
        }
        plan.clean_staging().await;
        let mut report = WriteReport::new(rows, bytes, start.elapsed());
        report.outputs = outputs;
        report.columns_ignored = ignored;
        Ok(report)
    }
}

/// Consume the stream into staged objects. On error the caller aborts and cleans up.
#[allow(clippy::too_many_arguments)]
async fn write_all(
    plan: &Plan,
    mut data: SendableRecordBatchStream,
    fit: &Fit,
    partition_by: &[String],
    data_schema: &SchemaRef,
    file_schema: &SchemaRef,
    open: &mut HashMap<String, OpenFile>,
    staged: &mut Vec<(Path, String)>,
    (rows, bytes): (&mut u64, &mut u64),
) -> Result<()> {
    let mut seq = 0u64;
    while let Some(batch) = data.next().await {
        let batch = batch.map_err(|e| {
            e.with_connector(plan.shared.connector)
                .with_operation("write")
        })?;
        *rows += batch.num_rows() as u64;
        *bytes += batch.get_array_memory_size() as u64;
        if batch.num_rows() == 0 {
            continue;
        }
        let parts = if partition_by.is_empty() {
            vec![(String::new(), batch)]
        } else {
            split_by_partition(&batch, partition_by, data_schema).map_err(|e| {
                e.with_connector(plan.shared.connector)
                    .with_operation("write")
            })?
        };
        for (dir, part) in parts {
            let part = fit.apply(&part)?;
            let mut offset = 0;
            while offset < part.num_rows() {
                if !open.contains_key(&dir) {
                    let f = plan.open(&dir, &mut seq, file_schema)?;
                    open.insert(dir.clone(), f);
                }
                let full = match open.get_mut(&dir) {
                    Some(f) => {
                        // Rotate by rows exactly: write no more than the object has room for.
                        let room = plan.max_rows.saturating_sub(f.rows).max(1);
                        let take = (part.num_rows() - offset)
                            .min(usize::try_from(room).unwrap_or(usize::MAX));
                        plan.write(f, &part.slice(offset, take)).await?;
                        offset += take;
                        plan.full(f)
                    }
                    None => break,
                };
                if full && let Some(f) = open.remove(&dir) {
                    staged.push(plan.finish(f).await?);
                }
            }
        }
    }
    if staged.is_empty() && open.is_empty() && partition_by.is_empty() {
        // No rows: one empty object keeps the schema readable.
        let f = plan.open("", &mut seq, file_schema)?;
        open.insert(String::new(), f);
    }
    let mut dirs: Vec<String> = open.keys().cloned().collect();
    dirs.sort();
    for d in dirs {
        if let Some(f) = open.remove(&d) {
            staged.push(plan.finish(f).await?);
        }
    }
    Ok(())
}
