//! [`FileSink`]: write Arrow streams as files under a [`StoreRoot`].
//!
//! # Targets
//! - A target whose name has an extension a format claims (`out/data.csv`, `x.json.gz`) is one
//!   file. [`WriteMode::Overwrite`] replaces it; [`WriteMode::Append`] to an existing file is a
//!   [`ErrorKind::Conflict`] (objects cannot be appended to in place: write to a directory).
//! - Any other target (`sales`, `out/2024`) is a directory of part files
//!   `part-<uuid>-<n>.<ext>`. Append adds new parts; Overwrite writes new parts and then deletes
//!   the old ones. With `max_rows_per_file` / `max_bytes_per_file` a write rotates to a new part.
//!
//! # Atomicity and memory
//! Bytes stream to the store through `object_store`'s [`BufWriter`]: one PUT for small files, a
//! multipart upload for large ones (8 MiB parts, at most 4 in flight), so memory stays bounded
//! by the upload buffers and one encoded batch (Parquet: one row group). Every object store
//! makes a PUT or a completed multipart upload visible at once (the local store writes a hidden
//! staging file and renames it), so readers never see a half-written file, and no separate
//! temporary name and rename (a copy on S3) is needed. When the stream or an upload fails, the
//! current upload is aborted and the parts this write already finished are deleted: the target
//! is left as it was. Overwriting a directory deletes the old parts only after every new part
//! is complete; readers listing the directory during those deletes may see old and new parts.
//!
//! # Schema drift
//! Appending to a directory that holds files reconciles the incoming schema with the existing
//! files' schema (configured, or inferred from the first file) under the request's
//! [`connector_core::SchemaDriftPolicy`]. Text formats infer types, so only column names are
//! compared for them; Parquet and Avro compare types too. Adding columns is not supported (the
//! existing files would disagree with the new ones). Overwrite replaces data and schema.

use std::sync::Arc;
use std::time::Instant;

use arrow::datatypes::{Field, Schema, SchemaRef};
use async_trait::async_trait;
use connector_core::drift::{DriftPlan, reconcile};
use connector_core::{
    Error, ErrorKind, Location, Result, SendableRecordBatchStream, Sink, SinkCapabilities,
    WriteMode, WriteReport, WriteRequest,
};
use futures::StreamExt;
use object_store::ObjectStoreExt;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use tokio::io::AsyncWriteExt;

use crate::compression::{Compression, compress_writer};
use crate::format::{FileFormat, FormatWriter};
use crate::source::{FileOptions, FileSource};
use crate::store::{StoreRoot, store_error};

/// Bytes buffered before a file switches from one PUT to a multipart upload, and the size of each
/// part (above the 5 MiB minimum part size of S3).
const UPLOAD_PART: usize = 8 * 1024 * 1024;
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
    relative: String,
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
        e.with_connector(self.options.connector_name())
            .with_operation("write")
            .with_location(Location::file(self.root.display(target)))
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
        })
    }

    fn open(&self, relative: String, schema: &SchemaRef, plan: &Plan) -> Result<OpenFile> {
        let path: Path = self.root.path(&relative)?;
        let writer = compress_writer(plan.format.writer(schema.clone())?, plan.compression)?;
        Ok(OpenFile {
            display: self.root.display(&relative),
            relative,
            writer,
            upload: BufWriter::with_capacity(self.root.store().clone(), path, UPLOAD_PART)
                .with_max_concurrency(UPLOAD_CONCURRENCY),
            rows: 0,
            bytes: 0,
        })
    }

    fn part_name(plan: &Plan, id: &uuid::Uuid, n: usize) -> String {
        let ext = plan.format.extensions().first().copied().unwrap_or("dat");
        let comp = plan
            .compression
            .extension()
            .map(|c| format!(".{c}"))
            .unwrap_or_default();
        let name = format!("part-{id}-{n:05}.{ext}{comp}");
        if plan.dir.is_empty() {
            name
        } else {
            format!("{}/{name}", plan.dir)
        }
    }

    async fn drain(file: &mut OpenFile) -> Result<()> {
        let bytes = file.writer.take_bytes();
        if bytes.is_empty() {
            return Ok(());
        }
        file.bytes += bytes.len();
        file.upload
            .put(bytes)
            .await
            .map_err(|e| store_error(e, &file.display))
    }

    /// Finish a file. On error the upload is aborted.
    async fn close(mut file: OpenFile) -> Result<String> {
        let rest = std::mem::replace(&mut file.writer, Box::new(Closed)).finish();
        let put = match rest {
            Ok(b) if b.is_empty() => Ok(()),
            Ok(b) => file
                .upload
                .put(b)
                .await
                .map_err(|e| store_error(e, &file.display)),
            Err(e) => Err(e),
        };
        if let Err(e) = put {
            Self::abort(file).await;
            return Err(e);
        }
        file.upload
            .shutdown()
            .await
            .map_err(|e| Error::from(e).with_location(Location::file(file.display.clone())))?;
        Ok(file.relative)
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
            Err(e) => Err(store_error(e, &self.root.display(relative))),
        }
    }
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
        let prefix = self.root.prefix().clone();
        match self.root.store().list(Some(&prefix)).next().await {
            Some(Err(e)) => Err(store_error(e, &self.root.display(""))
                .with_connector(self.options.connector_name())
                .with_operation("check")),
            _ => Ok(()),
        }
    }

    async fn write(
        &self,
        request: WriteRequest,
        mut data: SendableRecordBatchStream,
    ) -> Result<WriteReport> {
        let started = Instant::now();
        let target = request.target.trim_matches('/').to_owned();
        if matches!(request.mode, WriteMode::Upsert(_) | WriteMode::Delete(_)) {
            return Err(self.err(
                Error::unsupported("files support append and overwrite only"),
                &target,
            ));
        }
        let incoming = data.schema();
        let plan = self
            .plan(&request, &incoming)
            .await
            .map_err(|e| self.err(e, &target))?;
        let schema = plan
            .drift
            .as_ref()
            .map_or_else(|| incoming.clone(), |d| d.target.clone());
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
        let mut next_part = 0usize;
        let mut name = || {
            if let Some(f) = &plan.file {
                return f.clone();
            }
            next_part += 1;
            Self::part_name(&plan, &id, next_part - 1)
        };
        let mut written: Vec<String> = Vec::new();
        let mut current: Option<OpenFile> = None;
        let (mut rows, mut bytes) = (0u64, 0u64);
        let result: Result<()> = async {
            while let Some(batch) = data.next().await {
                let batch = batch?;
                let batch = match &plan.drift {
                    Some(d) if !d.is_identity() => d.apply(&batch)?,
                    _ => batch,
                };
                rows += batch.num_rows() as u64;
                bytes += batch.get_array_memory_size() as u64;
                let mut offset = 0;
                while offset < batch.num_rows() {
                    if current.is_none() {
                        current = Some(self.open(name(), &schema, &plan)?);
                    }
                    let Some(file) = current.as_mut() else {
                        return Err(Error::internal("no open file"));
                    };
                    let take = (max_rows - file.rows).min(batch.num_rows() - offset);
                    file.writer.write(&batch.slice(offset, take))?;
                    file.rows += take;
                    offset += take;
                    Self::drain(file).await?;
                    if (file.rows >= max_rows || file.bytes >= max_bytes)
                        && let Some(done) = current.take()
                    {
                        written.push(Self::close(done).await?);
                    }
                }
            }
            if current.is_none() && written.is_empty() {
                // An empty stream still writes a file that records the schema.
                current = Some(self.open(name(), &schema, &plan)?);
            }
            if let Some(done) = current.take() {
                written.push(Self::close(done).await?);
            }
            Ok(())
        }
        .await;
        if let Err(e) = result {
            if let Some(open) = current.take() {
                Self::abort(open).await;
            }
            for w in &written {
                if let Err(del) = self.delete(w).await {
                    tracing::warn!(file = %self.root.display(w), error = %del, "could not remove a part of a failed write");
                }
            }
            return Err(self.err(e, &target));
        }
        for old in plan.replaced.iter().filter(|o| !written.contains(o)) {
            self.delete(old).await.map_err(|e| self.err(e, &target))?;
        }
        let mut report = WriteReport::new(rows, bytes, started.elapsed());
        report.columns_ignored = plan
            .drift
            .as_ref()
            .map(|d| d.ignored.clone())
            .unwrap_or_default();
        report.outputs = written.iter().map(|w| self.root.display(w)).collect();
        Ok(report)
    }
}
