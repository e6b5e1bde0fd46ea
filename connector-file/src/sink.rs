//! [`FileSink`]: write Arrow streams as files under a [`StoreRoot`].
//!
//! # Targets
//! - A target whose name has an extension a format claims (`out/data.csv`, `x.json.gz`) is one
//!   file. [`WriteMode::Overwrite`] replaces it; [`WriteMode::Append`] to an existing file is a
//!   [`ErrorKind::Conflict`] (objects cannot be appended to in place: write to a directory).
//! - Any other target (`sales`, `out/2024`) is a directory of part files
//!   `part-<uuid>-<n>.<ext>`. Append adds new parts; Overwrite writes new parts and then deletes
//!   the old ones. With `max_rows_per_file` / `max_bytes_per_file` a write rotates to a new part.
//!   With [`FileOptions::partition_by`] rows go into hive partition directories
//!   (`sales/year=2024/month=1/part-….parquet`, NULL as `__HIVE_DEFAULT_PARTITION__`, see
//!   [`crate::hive`]) and the files hold the other columns; each partition rotates on its own.
//! - A target may also be a full URL or path under the root (as for [`FileSource`]).
//!
//! # Atomicity and memory
//! Bytes stream to the store through `object_store`'s [`BufWriter`]: one PUT for small files, a
//! multipart upload for large ones (8 MiB parts, at most 4 in flight), so memory stays bounded
//! by the upload buffers and one encoded batch (Parquet: one row group). Every object store
//! makes a PUT or a completed multipart upload visible at once (the local store writes a hidden
//! staging file and renames it), so readers never see a half-written file, and no separate
//! temporary name and rename (a copy on S3) is needed for one file. When the stream or an upload
//! fails, the current uploads are aborted and the parts this write already finished are deleted:
//! the target is left as it was. Overwriting a directory deletes the old parts only after every
//! new part is complete; readers listing the directory during those deletes may see old and new
//! parts.
//!
//! # Staged publishing
//! With [`FileOptions::staged_publish`], a write of several files (rotation, partitions) becomes
//! visible only when all of it is written:
//! 1. every file is written under `<target>/_temporary/<write id>/…` (for a file target, next to
//!    it), which readers skip (this crate's source, Spark, pyarrow and DuckDB skip path segments
//!    starting with `_`);
//! 2. once the whole stream is written, each staged file is moved to its final name (a rename on
//!    local disks, a server-side copy and a delete on object stores; final names are unique per
//!    write, so a directory write replaces no existing file);
//! 3. an overwrite deletes the files that were there before only now, after every new file is in
//!    place; then the staging area is removed.
//!
//! If the stream or an upload fails, open uploads are aborted and the staging area deleted. If
//! the process dies while writing, only hidden files under `_temporary/` (and incomplete
//! multipart uploads, which are invisible) remain; an object-store lifecycle rule on
//! `_temporary/` and on incomplete multipart uploads removes them. While files are moved into
//! place a reader may see some of the new files, each one complete, and all the old ones.
//!
//! # Schema drift
//! Appending to a directory that holds files reconciles the incoming schema with the existing
//! files' schema (configured, or inferred from the first file) under the request's
//! [`connector_core::SchemaDriftPolicy`]. Text formats infer types, so only column names are
//! compared for them; Parquet and Avro compare types too. Adding columns is not supported (the
//! existing files would disagree with the new ones). Overwrite replaces data and schema.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{Array, RecordBatch, StringArray, UInt32Array};
use arrow::compute::{cast, take_record_batch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use connector_core::drift::{DriftPlan, reconcile};
use connector_core::{
    Error, ErrorKind, Result, SendableRecordBatchStream, Sink, SinkCapabilities, WriteMode,
    WriteReport, WriteRequest,
};
use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStoreExt;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use tokio::io::AsyncWriteExt;

use crate::compression::{Compression, compress_writer};
use crate::format::{FileFormat, FormatWriter};
use crate::hive::partition_dir;
use crate::source::{FileOptions, FileSource};
use crate::store::{StoreRoot, below, join_key};
use crate::store_error::location_of;

/// Bytes buffered before a file switches from one PUT to a multipart upload, and the size of each
/// part (above the 5 MiB minimum part size of S3), unless [`FileOptions::upload_part_size`] says.
const UPLOAD_PART: usize = 8 * 1024 * 1024;
/// The smallest part S3 accepts (but the last).
const MIN_UPLOAD_PART: usize = 5 * 1024 * 1024;
/// Parts of one file in flight at once: memory per open file stays under
/// `UPLOAD_PART * (UPLOAD_CONCURRENCY + 1)`.
const UPLOAD_CONCURRENCY: usize = 4;

/// Writes files. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct FileSink {
    root: StoreRoot,
    options: FileOptions,
}

/// A file being written.
struct OpenFile {
    /// Its final name, relative to the root.
    relative: String,
    /// Where its bytes go: the final name, or its name in the staging area.
    staged: String,
    display: String,
    writer: Box<dyn FormatWriter>,
    upload: BufWriter,
    rows: usize,
    bytes: usize,
}

/// Where and how a write goes.
struct Plan {
    format: Arc<dyn FileFormat>,
    compression: Compression,
    /// `Some(file)` for a file target, `None` for a directory.
    file: Option<String>,
    /// The directory of parts (directory targets).
    dir: String,
    /// Files to delete after a successful overwrite of a directory.
    replaced: Vec<String>,
    drift: Option<DriftPlan>,
    /// The staging area of a staged write (relative to the root).
    staging: Option<String>,
    /// The directory the staging area mirrors (the target directory, or a file target's parent).
    staging_base: String,
}

impl FileSink {
    /// Write files under `root` with `options`.
    #[must_use]
    pub fn new(root: StoreRoot, options: FileOptions) -> Self {
        Self { root, options }
    }

    /// Write files under a local directory.
    pub fn local(dir: impl AsRef<std::path::Path>, options: FileOptions) -> Result<Self> {
        let name = options.connector_name();
        Ok(Self::new(
            StoreRoot::local(dir).map_err(|e| e.with_connector(name).with_operation("build"))?,
            options,
        ))
    }

    /// The root.
    #[must_use]
    pub fn root(&self) -> &StoreRoot {
        &self.root
    }

    fn err(&self, e: Error, target: &str) -> Error {
        self.options
            .label(e, "write")
            .with_location(location_of(&self.root.display(target)))
    }

    async fn plan(&self, request: &WriteRequest, incoming: &Schema) -> Result<Plan> {
        let target = request.target.trim_matches('/').to_owned();
        if !target.is_empty() && self.options.sees(&target, None) {
            return self.plan_file(request, target).await;
        }
        let source = FileSource::new(self.root.clone(), self.options.clone());
        let existing = if target.is_empty() {
            source.files("").await?
        } else {
            source.files(&target).await?
        };
        if existing.is_empty() && !request.create_if_missing {
            return Err(Error::new(
                ErrorKind::NotFound,
                "the target directory has no files and create_if_missing is false",
            ));
        }
        let from_existing = existing.first().and_then(|f| self.options.resolve(&f.path));
        let (format, compression) = match (&self.options.format, from_existing) {
            (Some(f), existing) => (
                f.clone(),
                self.options
                    .compression
                    .or(existing.map(|e| e.1))
                    .unwrap_or_default(),
            ),
            (None, Some((f, c))) => (f, self.options.compression.unwrap_or(c)),
            (None, None) => {
                return Err(Error::invalid_config(
                    "cannot choose a format for a directory target: configure a format or \
                     name a file with a known extension",
                ));
            }
        };
        let mut drift = None;
        let mut replaced = Vec::new();
        match &request.mode {
            WriteMode::Append => {
                if let Some(first) = existing.first() {
                    let target_schema = if let Some(s) = &self.options.schema {
                        s.clone()
                    } else {
                        let (fmt, bytes) = source_open(&self.root, &self.options, first)?;
                        fmt.infer_schema(bytes).await?
                    };
                    let exact = matches!(format.name(), "parquet" | "avro");
                    let target_schema = if exact {
                        target_schema
                    } else {
                        Arc::new(retype(&target_schema, incoming))
                    };
                    let plan = reconcile(&target_schema, incoming, request.schema_drift, &target)?;
                    if !plan.added.is_empty() {
                        return Err(Error::unsupported(format!(
                            "cannot add columns {:?} to files that already exist",
                            plan.added.iter().map(|f| f.name()).collect::<Vec<_>>()
                        )));
                    }
                    drift = Some(plan);
                }
            }
            WriteMode::Overwrite => replaced = existing.into_iter().map(|f| f.path).collect(),
            WriteMode::Upsert(_) | WriteMode::Delete(_) => {
                return Err(Error::unsupported(
                    "files support append and overwrite only",
                ));
            }
        }
        Ok(Plan {
            format,
            compression,
            file: None,
            dir: target,
            replaced,
            drift,
            staging: None,
            staging_base: String::new(),
        })
    }

    async fn plan_file(&self, request: &WriteRequest, target: String) -> Result<Plan> {
        let (format, compression) = self
            .options
            .resolve(&target)
            .ok_or_else(|| Error::invalid_config(format!("no format writes {target:?}")))?;
        let exists = self.root.head(&target).await?.is_some();
        match (&request.mode, exists) {
            (WriteMode::Append, true) => {
                return Err(Error::new(
                    ErrorKind::Conflict,
                    "the file exists and files cannot be appended to in place; \
                     write to a directory target to add part files",
                ));
            }
            (_, false) if !request.create_if_missing => {
                return Err(Error::new(
                    ErrorKind::NotFound,
                    "the target file does not exist and create_if_missing is false",
                ));
            }
            _ => {}
        }
        Ok(Plan {
            format,
            compression,
            file: Some(target),
            dir: String::new(),
            replaced: Vec::new(),
            drift: None,
            staging: None,
            staging_base: String::new(),
        })
    }

    fn open(&self, relative: String, schema: &SchemaRef, plan: &Plan) -> Result<OpenFile> {
        let staged = match &plan.staging {
            Some(staging) => join_key(&[staging, below(&plan.staging_base, &relative)]),
            None => relative.clone(),
        };
        let path: Path = self.root.path(&staged)?;
        let writer = compress_writer(plan.format.writer(schema.clone())?, plan.compression)?;
        let part = self
            .options
            .upload_part_size
            .unwrap_or(UPLOAD_PART)
            .max(MIN_UPLOAD_PART);
        let concurrency = self
            .options
            .upload_concurrency
            .unwrap_or(UPLOAD_CONCURRENCY)
            .max(1);
        Ok(OpenFile {
            display: self.root.display(&relative),
            relative,
            staged,
            writer,
            upload: BufWriter::with_capacity(self.root.store().clone(), path, part)
                .with_max_concurrency(concurrency),
            rows: 0,
            bytes: 0,
        })
    }

    /// The name of part `n` of write `id` in the partition directory `partition` (`""` for none).
    fn part_name(plan: &Plan, id: &uuid::Uuid, partition: &str, n: usize) -> String {
        let ext = plan.format.extensions().first().copied().unwrap_or("dat");
        let comp = plan
            .compression
            .extension()
            .map(|c| format!(".{c}"))
            .unwrap_or_default();
        join_key(&[
            &plan.dir,
            partition,
            &format!("part-{id}-{n:05}.{ext}{comp}"),
        ])
    }

    async fn drain(&self, file: &mut OpenFile) -> Result<()> {
        let bytes = file.writer.take_bytes();
        if bytes.is_empty() {
            return Ok(());
        }
        file.bytes += bytes.len();
        file.upload
            .put(bytes)
            .await
            .map_err(|e| self.root.error(&e, &file.relative))
    }

    /// Finish a file: it is then complete where it was written. On error the upload is aborted.
    async fn close(&self, mut file: OpenFile) -> Result<Written> {
        let rest = std::mem::replace(&mut file.writer, Box::new(Closed)).finish();
        let put = match rest {
            Ok(b) if b.is_empty() => Ok(()),
            Ok(b) => file
                .upload
                .put(b)
                .await
                .map_err(|e| self.root.error(&e, &file.relative)),
            Err(e) => Err(e),
        };
        if let Err(e) = put {
            Self::abort(file).await;
            return Err(e);
        }
        file.upload
            .shutdown()
            .await
            .map_err(|e| Error::from(e).with_location(location_of(&file.display)))?;
        Ok(Written {
            staged: file.staged,
            relative: file.relative,
        })
    }

    async fn abort(mut file: OpenFile) {
        if let Err(e) = file.upload.abort().await {
            tracing::warn!(file = %file.display, error = %e, "could not abort an upload");
        }
    }

    async fn delete(&self, relative: &str) -> Result<()> {
        let path = self.root.path(relative)?;
        match self.root.store().delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.root.error(&e, relative)),
        }
    }

    /// Delete the staging area of a write (best effort: failures are logged).
    async fn clean_staging(&self, plan: &Plan) {
        let Some(staging) = &plan.staging else { return };
        let Ok(prefix) = self.root.path(staging) else {
            return;
        };
        let store = self.root.store().clone();
        let locations = store.list(Some(&prefix)).map_ok(|m| m.location).boxed();
        let mut deleted = store.delete_stream(locations);
        while let Some(r) = deleted.next().await {
            if let Err(e) = r {
                tracing::warn!(staging = %self.root.display(staging), error = %self.root.error(&e, staging), "could not delete a staged file");
            }
        }
        // A local disk keeps the emptied directories: remove them, and `_temporary` when no
        // other write is using it.
        self.root.remove_local_dir(staging).await;
        if let Some((parent, _)) = staging.rsplit_once('/') {
            self.root.remove_empty_local_dir(parent).await;
        }
    }

    /// Undo a failed write: abort open uploads, delete what it wrote.
    async fn undo(&self, plan: &Plan, open: HashMap<String, OpenFile>, written: &[Written]) {
        for (_, f) in open {
            Self::abort(f).await;
        }
        for w in written {
            if let Err(del) = self.delete(&w.staged).await {
                tracing::warn!(file = %self.root.display(&w.staged), error = %del, "could not remove a part of a failed write");
            }
        }
        self.clean_staging(plan).await;
    }

    /// Move staged files to their final names.
    async fn publish(&self, plan: &Plan, written: &[Written]) -> Result<()> {
        if plan.staging.is_none() {
            return Ok(());
        }
        let store = self.root.store();
        for w in written {
            let from = self.root.path(&w.staged)?;
            let to = self.root.path(&w.relative)?;
            if let Err(e) = store.rename(&from, &to).await {
                // Files already moved stay (each is complete); the rest is removed.
                self.clean_staging(plan).await;
                return Err(self.root.error(&e, &w.relative));
            }
        }
        Ok(())
    }
}

/// A file a write has finished.
struct Written {
    /// Where its bytes are.
    staged: String,
    /// Its final name.
    relative: String,
}

/// Split `batch` by the values of `columns` (as strings) into (partition directory, rows with
/// the columns of `data_schema` only), in order of first appearance.
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

/// Open a file of `options` as [`FileSource`] does.
fn source_open(
    root: &StoreRoot,
    options: &FileOptions,
    file: &crate::source::FileRef,
) -> Result<(Arc<dyn FileFormat>, Arc<dyn crate::format::ByteSource>)> {
    let (format, compression) = options
        .resolve(&file.path)
        .ok_or_else(|| Error::invalid_config(format!("no format reads {:?}", file.path)))?;
    let bytes: Arc<dyn crate::format::ByteSource> =
        Arc::new(root.bytes(&file.path, root.path(&file.path)?, Some(file.size)));
    Ok((
        format,
        crate::compression::DecompressedSource::wrap(bytes, compression),
    ))
}

/// The target's columns with the incoming types where names match (text formats infer types).
fn retype(target: &Schema, incoming: &Schema) -> Schema {
    Schema::new(
        target
            .fields()
            .iter()
            .map(|f| match incoming.field_with_name(f.name()) {
                Ok(inf) => Arc::new(Field::new(f.name(), inf.data_type().clone(), true)),
                Err(_) => f.clone(),
            })
            .collect::<Vec<_>>(),
    )
}

/// Placeholder for a finished writer.
struct Closed;

impl FormatWriter for Closed {
    fn write(&mut self, _batch: &arrow::record_batch::RecordBatch) -> Result<()> {
        Err(Error::internal("the file is already finished"))
    }
    fn take_bytes(&mut self) -> bytes::Bytes {
        bytes::Bytes::new()
    }
    fn finish(self: Box<Self>) -> Result<bytes::Bytes> {
        Ok(bytes::Bytes::new())
    }
}

#[async_trait]
impl Sink for FileSink {
    fn name(&self) -> &str {
        self.options.connector_name()
    }

    fn capabilities(&self) -> SinkCapabilities {
        SinkCapabilities::none()
            .with_append()
            .with_overwrite()
            .with_create_if_missing()
            .with_atomic()
    }

    async fn check(&self) -> Result<()> {
        self.root
            .probe("")
            .await
            .map_err(|e| self.options.label(e, "check"))
    }

    async fn write(
        &self,
        mut request: WriteRequest,
        mut data: SendableRecordBatchStream,
    ) -> Result<WriteReport> {
        let started = Instant::now();
        let source = FileSource::new(self.root.clone(), self.options.clone());
        let target = source
            .relative_name(&request.target)
            .map_err(|e| self.err(e, &request.target))?;
        request.target.clone_from(&target);
        if matches!(request.mode, WriteMode::Upsert(_) | WriteMode::Delete(_)) {
            return Err(self.err(
                Error::unsupported("files support append and overwrite only"),
                &target,
            ));
        }
        let incoming = data.schema();
        let partition_by = &self.options.partition_by;
        for c in partition_by {
            if incoming.field_with_name(c).is_err() {
                return Err(self.err(
                    Error::invalid_config(format!("partition column {c:?} is not in the data")),
                    &target,
                ));
            }
        }
        // What the files hold: the incoming columns less the partition columns.
        let data_schema: SchemaRef = Arc::new(Schema::new(
            incoming
                .fields()
                .iter()
                .filter(|f| !partition_by.contains(f.name()))
                .cloned()
                .collect::<Vec<_>>(),
        ));
        let mut plan = self
            .plan(&request, &data_schema)
            .await
            .map_err(|e| self.err(e, &target))?;
        if plan.file.is_some() && !partition_by.is_empty() {
            return Err(self.err(
                Error::invalid_config("partition_by needs a directory target, not a file"),
                &target,
            ));
        }
        let schema = plan
            .drift
            .as_ref()
            .map_or_else(|| data_schema.clone(), |d| d.target.clone());
        let rotate = plan.file.is_none();
        let max_rows = if rotate {
            self.options.max_rows_per_file.unwrap_or(usize::MAX)
        } else {
            usize::MAX
        };
        let max_bytes = if rotate {
            self.options.max_bytes_per_file.unwrap_or(usize::MAX)
        } else {
            usize::MAX
        };
        let id = uuid::Uuid::new_v4();
        if self.options.staged_publish {
            plan.staging_base = match &plan.file {
                Some(f) => f.rsplit_once('/').map_or("", |(d, _)| d).to_owned(),
                None => plan.dir.clone(),
            };
            plan.staging = Some(join_key(&[
                &plan.staging_base,
                "_temporary",
                &id.simple().to_string(),
            ]));
        }
        let mut next_part = 0usize;
        let mut name = |partition: &str| {
            if let Some(f) = &plan.file {
                return f.clone();
            }
            next_part += 1;
            Self::part_name(&plan, &id, partition, next_part - 1)
        };
        let mut written: Vec<Written> = Vec::new();
        let mut open: HashMap<String, OpenFile> = HashMap::new();
        let (mut rows, mut bytes) = (0u64, 0u64);
        let result: Result<()> = async {
            while let Some(batch) = data.next().await {
                let batch = batch?;
                rows += batch.num_rows() as u64;
                bytes += batch.get_array_memory_size() as u64;
                let parts = if partition_by.is_empty() {
                    vec![(String::new(), batch)]
                } else if batch.num_rows() == 0 {
                    Vec::new()
                } else {
                    split_by_partition(&batch, partition_by, &data_schema)?
                };
                for (partition, part) in parts {
                    let part = match &plan.drift {
                        Some(d) if !d.is_identity() => d.apply(&part)?,
                        _ => part,
                    };
                    let mut offset = 0;
                    while offset < part.num_rows() {
                        if !open.contains_key(&partition) {
                            let file = self.open(name(&partition), &schema, &plan)?;
                            open.insert(partition.clone(), file);
                        }
                        let Some(file) = open.get_mut(&partition) else {
                            return Err(Error::internal("no open file"));
                        };
                        let take = (max_rows - file.rows).min(part.num_rows() - offset);
                        file.writer.write(&part.slice(offset, take))?;
                        file.rows += take;
                        offset += take;
                        self.drain(file).await?;
                        if (file.rows >= max_rows || file.bytes >= max_bytes)
                            && let Some(done) = open.remove(&partition)
                        {
                            written.push(self.close(done).await?);
                        }
                    }
                }
            }
            if open.is_empty() && written.is_empty() && partition_by.is_empty() {
                // An empty stream still writes a file that records the schema.
                let file = self.open(name(""), &schema, &plan)?;
                open.insert(String::new(), file);
            }
            let mut partitions: Vec<String> = open.keys().cloned().collect();
            partitions.sort();
            for p in partitions {
                if let Some(done) = open.remove(&p) {
                    written.push(self.close(done).await?);
                }
            }
            Ok(())
        }
        .await;
        if let Err(e) = result {
            self.undo(&plan, open, &written).await;
            return Err(self.err(e, &target));
        }
        self.publish(&plan, &written)
            .await
            .map_err(|e| self.err(e, &target))?;
        for old in plan
            .replaced
            .iter()
            .filter(|o| !written.iter().any(|w| &w.relative == *o))
        {
            self.delete(old).await.map_err(|e| self.err(e, &target))?;
        }
        self.clean_staging(&plan).await;
        let mut report = WriteReport::new(rows, bytes, started.elapsed());
        report.columns_ignored = plan
            .drift
            .as_ref()
            .map(|d| d.ignored.clone())
            .unwrap_or_default();
        report.outputs = written
            .iter()
            .map(|w| self.root.display(&w.relative))
            .collect();
        Ok(report)
    }
}
