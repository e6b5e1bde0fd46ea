//! [`FileSource`]: datasets of files under a [`StoreRoot`], read through [`FileFormat`]s.
//!
//! # Datasets
//! A dataset name is a path relative to the root:
//! - a file (`data/a.csv`, `logs/b.json.gz`);
//! - a directory (`sales`): every data file below it, recursively;
//! - a glob (`data/*.csv`, `**/*.parquet`): `*` stays within one path segment, `**` crosses them;
//! - `""`: every data file under the root.
//!
//! A dataset name may also be a full URL or path under the root, starting with the root's
//! display form (`s3://bucket/prefix/sales` for a root shown as `s3://bucket/prefix`).
//!
//! Segments starting with `.` or `_` are hidden (temporary files, `_SUCCESS` markers, a sink's
//! `_temporary/` staging area). The format
//! of each file is the configured one or, without one, the [`FormatRegistry`]'s choice by
//! extension (after a `.gz`/`.zst` compression extension, which selects decompression unless a
//! compression is configured).
//!
//! # Plans and schemas
//! [`Source::plan`] lists the files (sorted by path), takes the configured schema or infers one
//! from the first file (or checks a sample of `infer_files`), and groups the files into at most
//! `max_partitions` partitions of consecutive files. With fewer files than partitions, files of
//! formats stored in row groups (Parquet) are split by row group. Every file must agree with that schema: a file whose columns have other
//! types, or lack a column the read needs, fails the read with [`ErrorKind::SchemaMismatch`]
//! naming the file.
//!
//! # Hive partitions
//! With [`FileOptions::hive_partitioning`], `key=value` directory segments below the dataset
//! (`sales/year=2024/month=01/part-0.parquet`) become columns appended to the files' columns
//! (typed as [`crate::hive`] describes). A filter on them prunes files when the plan is made,
//! before any byte of them is read: the schema comes from the first file the read keeps.
//!
//! # Pushdown
//! Projection reaches the format (Parquet reads only those column chunks; CSV and JSON skip
//! building the other columns). A filter reaches the format as a hint (Parquet skips row groups
//! whose statistics rule it out) and is then applied to rows by
//! [`connector_core::residual::apply`]; so is the limit. With hive partitioning the source
//! declares filter pushdown: filters on partition columns prune whole files in the plan.

use connector_core::drift::describe_schema as describe;
use std::sync::Arc;

use arrow::datatypes::{Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use connector_core::residual::{Pushed, apply, project_schema};
use connector_core::{
    DatasetInfo, Error, ErrorKind, Location, Partition, ReadRequest, ReadTarget,
    RecordBatchStreamAdapter, Result, SendableRecordBatchStream, Source, SourceCapabilities,
};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use serde::{Deserialize, Serialize};

use crate::compression::{Compression, DecompressedSource};
use crate::format::{BadRowLog, BadRows, ByteSource, FileFormat, FormatReadOptions};
use crate::formats::{FormatRegistry, claims};
use crate::hive::HiveColumns;
use crate::store::{StoreRoot, below};

/// Options shared by [`FileSource`] and [`crate::FileSink`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct FileOptions {
    /// The format of every file. `None`: chosen per file by extension from `formats`.
    pub format: Option<Arc<dyn FileFormat>>,
    /// Formats to choose from by extension.
    pub formats: FormatRegistry,
    /// Compression of every file. `None`: by extension (`.gz`, `.zst`).
    pub compression: Option<Compression>,
    /// Schema of every file, instead of inferring one.
    pub schema: Option<SchemaRef>,
    /// Bad-row policy of text formats.
    pub bad_rows: BadRows,
    /// Where skipped rows are recorded.
    pub bad_row_log: BadRowLog,
    /// Only files whose path relative to the root matches this glob are seen.
    pub glob: Option<String>,
    /// Files whose schemas are inferred when no schema is configured: the first gives the
    /// dataset's schema, the others must agree with it. Default 1 (every file is still checked
    /// against the schema when it is read).
    pub infer_files: usize,
    /// Sink: start a new file after this many rows (directory targets only).
    pub max_rows_per_file: Option<usize>,
    /// Sink: start a new file after about this many bytes (directory targets only).
    pub max_bytes_per_file: Option<usize>,
    /// The connector name in errors and in `name()` (`"s3"`, `"azure"`, …). `None`: the
    /// format's name, or `"file"`.
    pub connector: Option<&'static str>,
    /// Source: turn `key=value` directory segments below a dataset into columns, and prune files
    /// by filters on them before reading (see the [module docs](self)). Default false.
    pub hive_partitioning: bool,
    /// Sink: write rows into hive partition directories by these columns
    /// (`<target>/year=2024/month=1/part-….parquet`); the files do not store them. Directory
    /// targets only.
    pub partition_by: Vec<String>,
    /// Sink: write every file under `<target>/_temporary/<write id>/` first (hidden from readers)
    /// and move the files into place only once the whole stream is written; see
    /// [`crate::sink`]. Default false: each file is written at its final name, which every store
    /// makes visible only once complete.
    pub staged_publish: bool,
    /// Sink: bytes buffered before a file switches from one PUT to a multipart upload, and the
    /// size of each part (default 8 MiB; at least 5 MiB, S3's smallest part).
    pub upload_part_size: Option<usize>,
    /// Sink: parts of one file uploaded at once (default 4).
    pub upload_concurrency: Option<usize>,
}

impl Default for FileOptions {
    fn default() -> Self {
        Self {
            format: None,
            formats: crate::default_formats(),
            compression: None,
            schema: None,
            bad_rows: BadRows::Fail,
            bad_row_log: BadRowLog::default(),
            glob: None,
            infer_files: 1,
            max_rows_per_file: None,
            max_bytes_per_file: None,
            connector: None,
            hive_partitioning: false,
            partition_by: Vec::new(),
            staged_publish: false,
            upload_part_size: None,
            upload_concurrency: None,
        }
    }
}

impl FileOptions {
    /// Read and write every file with `format`.
    #[must_use]
    pub fn with_format(mut self, format: Arc<dyn FileFormat>) -> Self {
        self.format = Some(format);
        self
    }

    /// Choose formats by extension from `formats`.
    #[must_use]
    pub fn with_formats(mut self, formats: FormatRegistry) -> Self {
        self.formats = formats;
        self
    }

    /// Force a compression (instead of by extension).
    #[must_use]
    pub fn with_compression(mut self, compression: Compression) -> Self {
        self.compression = Some(compression);
        self
    }

    /// Use `schema` instead of inferring one.
    #[must_use]
    pub fn with_schema(mut self, schema: SchemaRef) -> Self {
        self.schema = Some(schema);
        self
    }

    /// Set the bad-row policy.
    #[must_use]
    pub fn with_bad_rows(mut self, bad_rows: BadRows) -> Self {
        self.bad_rows = bad_rows;
        self
    }

    /// Record skipped rows in `log` (share it to inspect them).
    #[must_use]
    pub fn with_bad_row_log(mut self, log: BadRowLog) -> Self {
        self.bad_row_log = log;
        self
    }

    /// Only see files matching `glob` (relative to the root).
    #[must_use]
    pub fn with_glob(mut self, glob: impl Into<String>) -> Self {
        self.glob = Some(glob.into());
        self
    }

    /// Infer from (and cross-check) up to `files` files.
    #[must_use]
    pub fn with_infer_files(mut self, files: usize) -> Self {
        self.infer_files = files.max(1);
        self
    }

    /// Rotate output files after `rows` rows.
    #[must_use]
    pub fn with_max_rows_per_file(mut self, rows: usize) -> Self {
        self.max_rows_per_file = Some(rows.max(1));
        self
    }

    /// Rotate output files after about `bytes` bytes.
    #[must_use]
    pub fn with_max_bytes_per_file(mut self, bytes: usize) -> Self {
        self.max_bytes_per_file = Some(bytes.max(1));
        self
    }

    /// Name the connector `name` in errors and `name()` (instead of the format).
    #[must_use]
    pub fn with_connector_name(mut self, name: &'static str) -> Self {
        self.connector = Some(name);
        self
    }

    /// Read `key=value` directory segments as columns and prune by them.
    #[must_use]
    pub fn with_hive_partitioning(mut self, enabled: bool) -> Self {
        self.hive_partitioning = enabled;
        self
    }

    /// Write hive partition directories by `columns`.
    #[must_use]
    pub fn with_partition_by<S: Into<String>>(
        mut self,
        columns: impl IntoIterator<Item = S>,
    ) -> Self {
        self.partition_by = columns.into_iter().map(Into::into).collect();
        self
    }

    /// Stage written files under `_temporary/` and publish them when the write is complete.
    #[must_use]
    pub fn with_staged_publish(mut self, enabled: bool) -> Self {
        self.staged_publish = enabled;
        self
    }

    /// Multipart upload part size in bytes (at least 5 MiB).
    #[must_use]
    pub fn with_upload_part_size(mut self, bytes: usize) -> Self {
        self.upload_part_size = Some(bytes);
        self
    }

    /// Parts of one file uploaded at once (at least 1).
    #[must_use]
    pub fn with_upload_concurrency(mut self, parts: usize) -> Self {
        self.upload_concurrency = Some(parts.max(1));
        self
    }

    /// The connector name for errors: the configured one, else the format's name, else `"file"`.
    #[must_use]
    pub fn connector_name(&self) -> &'static str {
        self.connector
            .unwrap_or_else(|| self.format.as_ref().map_or("file", |f| f.name()))
    }

    /// Name the connector and `operation` in an error: a configured connector name replaces a
    /// format's name (kept as the `format` context, see [`crate::store_error::relabel`]).
    pub(crate) fn label(&self, e: Error, operation: &'static str) -> Error {
        match self.connector {
            Some(c) => crate::store_error::relabel(e, c, operation),
            None => e
                .with_connector(self.connector_name())
                .with_operation(operation),
        }
    }

    /// The format and compression of a file, or `None` if no format claims it.
    pub(crate) fn resolve(&self, path: &str) -> Option<(Arc<dyn FileFormat>, Compression)> {
        let (format, by_ext) = match &self.format {
            Some(f) => (f.clone(), Compression::from_path(path)),
            None => self.formats.for_path(path)?,
        };
        Some((format, self.compression.unwrap_or(by_ext)))
    }

    /// Whether a listed file belongs to the data: claimed by a format (the configured one
    /// claims every file when the dataset names it explicitly) and matching the glob option.
    pub(crate) fn sees(&self, path: &str, glob: Option<&globset::GlobMatcher>) -> bool {
        let claimed = match &self.format {
            Some(f) => claims(f.as_ref(), path),
            None => self.formats.for_path(path).is_some(),
        };
        claimed && glob.is_none_or(|g| g.is_match(path))
    }

    pub(crate) fn glob_matcher(&self) -> Result<Option<globset::GlobMatcher>> {
        self.glob.as_deref().map(compile_glob).transpose()
    }
}

fn compile_glob(glob: &str) -> Result<globset::GlobMatcher> {
    globset::GlobBuilder::new(glob.trim_start_matches('/'))
        .literal_separator(true)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| Error::invalid_config(format!("invalid glob {glob:?}: {e}")))
}

fn is_glob(s: &str) -> bool {
    s.contains(['*', '?', '[', '{'])
}

/// One file of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FileRef {
    /// Path relative to the root.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Only these row groups (a large file split over several partitions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_groups: Option<Vec<usize>>,
}

/// What a partition holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PartitionSpec {
    files: Vec<FileRef>,
    /// The files' schema (without hive columns).
    schema: Schema,
    /// Hive partition columns, appended to the files' columns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    hive: Vec<Field>,
    /// Where the hive segments of the files' paths start.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    base: String,
}

/// Reads datasets of files. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct FileSource {
    root: StoreRoot,
    options: FileOptions,
}

impl FileSource {
    /// Read files under `root` with `options`.
    #[must_use]
    pub fn new(root: StoreRoot, options: FileOptions) -> Self {
        Self { root, options }
    }

    /// Read files under a local directory.
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

    /// The options.
    #[must_use]
    pub fn options(&self) -> &FileOptions {
        &self.options
    }

    /// Every row skipped under [`BadRows::Skip`] so far.
    #[must_use]
    pub fn bad_rows(&self) -> &BadRowLog {
        &self.options.bad_row_log
    }

    fn err(&self, e: Error, op: &'static str) -> Error {
        self.options.label(e, op)
    }

    /// A dataset name relative to the root. A URL (`s3://bucket/prefix/sales`) must be under the
    /// root's display form; an absolute path under an absolute root's display form is taken
    /// relative to it; any other name is relative already.
    pub(crate) fn relative_name(&self, name: &str) -> Result<String> {
        let root = self.root.display("");
        let under = || {
            name.strip_prefix(root.as_str())
                .filter(|r| !root.is_empty() && (r.is_empty() || r.starts_with('/')))
                .map(|r| r.trim_matches('/').to_owned())
        };
        if name.contains("://") {
            return under().ok_or_else(|| {
                Error::invalid_input(
                    format!("{name} is not under this connector's location {root}"),
                    crate::store_error::location_of(name),
                )
            });
        }
        if root.starts_with('/')
            && let Some(r) = under()
        {
            return Ok(r);
        }
        Ok(name.trim_matches('/').to_owned())
    }

    /// The hive columns of the `files` of `dataset` (none without hive partitioning).
    fn hive_columns(&self, dataset: &str, files: &[FileRef]) -> Result<HiveColumns> {
        if !self.options.hive_partitioning {
            return Ok(HiveColumns::default());
        }
        let base = hive_base(dataset);
        HiveColumns::infer(files.iter().map(|f| below(&base, &f.path)))
    }

    /// The files of a dataset, sorted by path.
    pub(crate) async fn files(&self, dataset: &str) -> Result<Vec<FileRef>> {
        let glob = self.options.glob_matcher()?;
        let dataset = dataset.trim_matches('/');
        let to_ref = |m: &object_store::ObjectMeta| {
            self.root.relative(&m.location).map(|path| FileRef {
                path,
                size: m.size,
                row_groups: None,
            })
        };
        if is_glob(dataset) {
            let pattern = compile_glob(dataset)?;
            let base: Vec<&str> = dataset.split('/').take_while(|s| !is_glob(s)).collect();
            let listed = self.root.list(&base.join("/")).await?;
            return Ok(listed
                .iter()
                .filter_map(to_ref)
                .filter(|f| pattern.is_match(&f.path) && self.options.resolve(&f.path).is_some())
                .filter(|f| glob.as_ref().is_none_or(|g| g.is_match(&f.path)))
                .collect());
        }
        let head = if dataset.is_empty() {
            None
        } else {
            match self.root.head(dataset).await {
                Ok(m) => m,
                // A HEAD answer has no body to tell a bad signature from a missing permission:
                // a listing's answer says which (or works, when only the key was forbidden).
                Err(e) if matches!(e.kind(), ErrorKind::Permission | ErrorKind::Authentication) => {
                    self.root.probe(dataset).await?;
                    return Err(e);
                }
                Err(e) => return Err(e),
            }
        };
        if let Some(meta) = head {
            if self.options.resolve(dataset).is_none() {
                return Err(Error::invalid_config(format!(
                    "no format reads {dataset:?}; set a format or use a known extension"
                ))
                .with_location(Location::file(self.root.display(dataset))));
            }
            return Ok(vec![FileRef {
                path: dataset.to_owned(),
                size: meta.size,
                row_groups: None,
            }]);
        }
        let listed = self.root.list(dataset).await?;
        Ok(listed
            .iter()
            .filter_map(to_ref)
            .filter(|f| self.options.sees(&f.path, glob.as_ref()))
            .collect())
    }

    fn open(&self, file: &FileRef) -> Result<(Arc<dyn FileFormat>, Arc<dyn ByteSource>)> {
        let (format, compression) = self.options.resolve(&file.path).ok_or_else(|| {
            Error::invalid_config(format!("no format reads {:?}", file.path))
                .with_location(Location::file(self.root.display(&file.path)))
        })?;
        let path: Path = self.root.path(&file.path)?;
        let bytes: Arc<dyn ByteSource> =
            Arc::new(self.root.bytes(&file.path, path, Some(file.size)));
        Ok((format, DecompressedSource::wrap(bytes, compression)))
    }

    async fn infer(&self, file: &FileRef) -> Result<SchemaRef> {
        let (format, bytes) = self.open(file)?;
        format.infer_schema(bytes).await
    }

    async fn schema_of(&self, files: &[FileRef]) -> Result<SchemaRef> {
        if let Some(s) = &self.options.schema {
            return Ok(s.clone());
        }
        let Some(first) = files.first() else {
            return Ok(Arc::new(Schema::empty()));
        };
        let schema = self.infer(first).await?;
        for f in files.iter().take(self.options.infer_files.max(1)).skip(1) {
            let other = self.infer(f).await?;
            let same = other.fields().len() == schema.fields().len()
                && other
                    .fields()
                    .iter()
                    .zip(schema.fields())
                    .all(|(a, b)| a.name() == b.name() && a.data_type() == b.data_type());
            if !same {
                return Err(Error::new(
                    ErrorKind::SchemaMismatch,
                    format!(
                        "this file's schema ({}) differs from that of {} ({}); configure a schema",
                        describe(&other),
                        self.root.display(&first.path),
                        describe(&schema)
                    ),
                )
                .with_location(Location::file(self.root.display(&f.path))));
            }
        }
        Ok(schema)
    }

    /// Fewer files than partitions: split files of formats with row groups (Parquet) into
    /// single row groups, so that [`group`] can spread them; neighbours of one file that land in
    /// the same partition are merged again.
    async fn split_row_groups(&self, files: Vec<FileRef>, max: usize) -> Result<Vec<FileRef>> {
        let mut units = Vec::new();
        for f in files {
            let (format, bytes) = self.open(&f)?;
            match format.row_groups(bytes).await? {
                Some(n) if n > 1 => units.extend((0..n).map(|g| FileRef {
                    row_groups: Some(vec![g]),
                    ..f.clone()
                })),
                _ => units.push(f),
            }
        }
        Ok(group(&units, max)
            .into_iter()
            .flat_map(merge_row_groups)
            .collect())
    }

    fn not_found(&self, dataset: &str) -> Error {
        Error::new(
            ErrorKind::NotFound,
            format!("dataset {dataset:?} has no data files"),
        )
        .with_location(Location::file(self.root.display(dataset)))
    }
}

/// Where the hive segments of a dataset's file paths start: the dataset's directory, or the
/// part of a glob before its first wildcard segment.
fn hive_base(dataset: &str) -> String {
    if is_glob(dataset) {
        dataset
            .split('/')
            .take_while(|s| !is_glob(s))
            .collect::<Vec<_>>()
            .join("/")
    } else {
        dataset.to_owned()
    }
}

/// Merge consecutive single-row-group pieces of the same file.
fn merge_row_groups(run: Vec<FileRef>) -> Vec<FileRef> {
    let mut out: Vec<FileRef> = Vec::new();
    for f in run {
        if let Some(last) = out.last_mut()
            && last.path == f.path
            && let (Some(a), Some(b)) = (&mut last.row_groups, &f.row_groups)
        {
            a.extend_from_slice(b);
            continue;
        }
        out.push(f);
    }
    out
}

/// Group `files` into at most `max` runs of consecutive files, balanced by count.
fn group<T: Clone>(files: &[T], max: usize) -> Vec<Vec<T>> {
    let n = max.clamp(1, files.len().max(1));
    let (per, extra) = (files.len() / n, files.len() % n);
    let mut out = Vec::with_capacity(n);
    let mut at = 0;
    for i in 0..n {
        let len = per + usize::from(i < extra);
        out.push(files[at..at + len].to_vec());
        at += len;
    }
    out
}

/// Check that `got` (the schema of a file's stream) fits `plan`: same types by column name.
fn conform(plan: &Schema, got: &Schema, file: &str) -> Result<()> {
    for f in got.fields() {
        let planned = plan.field_with_name(f.name()).map_err(|_| {
            Error::new(
                ErrorKind::SchemaMismatch,
                format!("column {:?} is not in the dataset's schema", f.name()),
            )
            .with_location(Location::file(file).with_column(f.name().clone()))
        })?;
        if planned.data_type() != f.data_type() {
            return Err(Error::new(
                ErrorKind::SchemaMismatch,
                format!(
                    "column {:?} is {} in this file but {} in the dataset's schema",
                    f.name(),
                    f.data_type(),
                    planned.data_type()
                ),
            )
            .with_location(Location::file(file).with_column(f.name().clone())));
        }
    }
    Ok(())
}

/// Reorder and relabel a file's batch to `want` (whose columns the batch must all have).
fn reshape(batch: &RecordBatch, want: &SchemaRef, file: &str) -> Result<RecordBatch> {
    let cols = want
        .fields()
        .iter()
        .map(|f| {
            batch.column_by_name(f.name()).cloned().ok_or_else(|| {
                Error::new(
                    ErrorKind::SchemaMismatch,
                    format!("the file has no column {:?}", f.name()),
                )
                .with_location(Location::file(file).with_column(f.name().clone()))
            })
        })
        .collect::<Result<Vec<_>>>()?;
    RecordBatch::try_new(want.clone(), cols).map_err(|e| {
        Error::new(ErrorKind::SchemaMismatch, e.to_string()).with_location(Location::file(file))
    })
}

#[async_trait]
impl Source for FileSource {
    fn name(&self) -> &str {
        self.options.connector_name()
    }

    fn capabilities(&self) -> SourceCapabilities {
        let mut caps = SourceCapabilities::none().with_partitioned_reads();
        if matches!(&self.options.format, Some(f) if f.name() == "parquet") {
            caps = caps.with_projection_pushdown();
        }
        if self.options.hive_partitioning {
            // Filters on partition columns prune whole files.
            caps = caps.with_filter_pushdown();
        }
        caps
    }

    async fn check(&self) -> Result<()> {
        self.root.probe("").await.map_err(|e| self.err(e, "check"))
    }

    async fn discover(&self) -> Result<Vec<DatasetInfo>> {
        let files = self.files("").await.map_err(|e| self.err(e, "discover"))?;
        // Group by first path segment: a file at the top is its own dataset, a directory is one;
        // hive partition directories right under the root make the root one dataset (`""`).
        let mut groups: Vec<(String, Vec<FileRef>)> = Vec::new();
        for f in files {
            let mut name = f.path.split('/').next().unwrap_or_default().to_owned();
            if self.options.hive_partitioning && name.contains('=') && f.path.contains('/') {
                name.clear();
            }
            match groups.iter_mut().find(|(n, _)| *n == name) {
                Some((_, v)) => v.push(f),
                None => groups.push((name, vec![f])),
            }
        }
        let mut out = Vec::new();
        for (name, files) in groups {
            // A directory holding several formats becomes one dataset per format.
            let mut by_format: Vec<(&'static str, Vec<FileRef>)> = Vec::new();
            for f in files {
                let fmt = self.options.resolve(&f.path).map_or("", |(f, _)| f.name());
                match by_format.iter_mut().find(|(n, _)| *n == fmt) {
                    Some((_, v)) => v.push(f),
                    None => by_format.push((fmt, vec![f])),
                }
            }
            let split = by_format.len() > 1;
            for (fmt, files) in by_format {
                let dataset = if split {
                    let ext = crate::formats::extension(Compression::split_path(&files[0].path).0)
                        .unwrap_or(fmt);
                    if name.is_empty() {
                        format!("**/*.{ext}")
                    } else {
                        format!("{name}/**/*.{ext}")
                    }
                } else {
                    name.clone()
                };
                let hive = self
                    .hive_columns(&dataset, &files)
                    .map_err(|e| self.err(e, "discover"))?;
                let schema = self
                    .schema_of(&files)
                    .await
                    .map_err(|e| self.err(e, "discover"))?;
                out.push(DatasetInfo {
                    name: dataset,
                    schema: hive.extend_schema(&schema),
                    primary_key: Vec::new(),
                    row_estimate: None,
                });
            }
        }
        Ok(out)
    }

    async fn plan(&self, request: &ReadRequest, max_partitions: usize) -> Result<Vec<Partition>> {
        let dataset = match &request.target {
            ReadTarget::Dataset(d) => self.relative_name(d).map_err(|e| self.err(e, "plan"))?,
            ReadTarget::Query(_) => {
                return Err(self.err(
                    Error::unsupported("file sources read datasets (paths and globs), not queries"),
                    "plan",
                ));
            }
        };
        let files = self
            .files(&dataset)
            .await
            .map_err(|e| self.err(e, "plan"))?;
        if files.is_empty() {
            return Err(self.err(self.not_found(&dataset), "plan"));
        }
        let hive = self
            .hive_columns(&dataset, &files)
            .map_err(|e| self.err(e, "plan"))?;
        let base = hive_base(&dataset);
        // Prune by the partition columns before any byte of a file is read.
        let kept: Vec<FileRef> = match &request.filter {
            Some(filter) if !hive.is_empty() => files
                .iter()
                .filter(|f| hive.may_match(filter, &hive.values(below(&base, &f.path))))
                .cloned()
                .collect(),
            _ => files.clone(),
        };
        // The schema comes from the files the read keeps (the dataset's first file when the
        // filter keeps none).
        let schema = self
            .schema_of(if kept.is_empty() { &files[..1] } else { &kept })
            .await
            .map_err(|e| self.err(e, "plan"))?;
        // A file column of the same name as a partition column wins.
        let hive = HiveColumns {
            fields: hive
                .fields
                .into_iter()
                .filter(|f| schema.field_with_name(f.name()).is_err())
                .collect(),
        };
        let full = hive.extend_schema(&schema);
        project_schema(&full, request.projection.as_deref()).map_err(|e| self.err(e, "plan"))?;
        if let Some(f) = &request.filter {
            for c in f.columns() {
                full.index_of(c).map_err(|_| {
                    self.err(
                        Error::new(
                            ErrorKind::InvalidInput,
                            format!("filter names column {c:?}, which does not exist"),
                        )
                        .with_location(Location::file(self.root.display(&dataset)).with_column(c)),
                        "plan",
                    )
                })?;
            }
        }
        let files = if !kept.is_empty() && kept.len() < max_partitions {
            self.split_row_groups(kept, max_partitions)
                .await
                .map_err(|e| self.err(e, "plan"))?
        } else {
            kept
        };
        let groups = group(&files, max_partitions);
        let count = groups.len();
        groups
            .into_iter()
            .enumerate()
            .map(|(index, files)| {
                let spec = PartitionSpec {
                    files,
                    schema: schema.as_ref().clone(),
                    hive: hive.fields.clone(),
                    base: base.clone(),
                };
                Ok(Partition {
                    request: request.clone(),
                    index,
                    count,
                    spec: serde_json::to_value(&spec).map_err(|e| {
                        self.err(
                            Error::internal(format!("cannot encode partition: {e}")),
                            "plan",
                        )
                    })?,
                    row_estimate: None,
                })
            })
            .collect()
    }

    async fn read(&self, partition: Partition) -> Result<SendableRecordBatchStream> {
        let spec: PartitionSpec = serde_json::from_value(partition.spec.clone()).map_err(|e| {
            self.err(
                Error::new(
                    ErrorKind::InvalidInput,
                    format!("not a partition of a file source: {e}"),
                ),
                "read",
            )
        })?;
        let request = partition.request;
        let plan_schema = Arc::new(spec.schema);
        let hive = Arc::new(HiveColumns { fields: spec.hive });
        let base = spec.base;
        // The format decodes the projected columns plus those the filter needs, less the
        // partition columns (which come from the path).
        let needed: Option<Vec<String>> = request.projection.as_ref().map(|p| {
            let mut cols = p.clone();
            if let Some(f) = &request.filter {
                for c in f.columns() {
                    if !cols.iter().any(|x| x == c) {
                        cols.push(c.to_owned());
                    }
                }
            }
            if hive.is_empty() {
                return cols;
            }
            let mut file_cols: Vec<String> =
                cols.into_iter().filter(|c| !hive.contains(c)).collect();
            if file_cols.is_empty()
                && !p.is_empty()
                && let Some(f) = plan_schema.fields().first()
            {
                // Only partition columns asked for: decode one column to keep row counts.
                file_cols.push(f.name().clone());
            }
            file_cols
        });
        let inner_schema =
            project_schema(&plan_schema, needed.as_deref()).map_err(|e| self.err(e, "read"))?;
        let stage_schema = hive.extend_schema(&inner_schema);
        // A filter reaches the format (as a hint) only when it names the files' columns alone.
        let format_filter = request.filter.clone().filter(|f| {
            f.columns()
                .iter()
                .all(|c| plan_schema.field_with_name(c).is_ok())
        });
        let options = FormatReadOptions {
            schema: Some(plan_schema.clone()),
            projection: needed.clone(),
            filter: format_filter,
            limit: if request.filter.is_none() {
                request.limit
            } else {
                None
            },
            batch_rows: request.batch_rows_or_default(),
            bad_rows: self.options.bad_rows,
            bad_row_log: self.options.bad_row_log.clone(),
            row_groups: None,
        };
        let this = self.clone();
        let want = inner_schema.clone();
        let staged = stage_schema.clone();
        let plan = plan_schema.clone();
        let per_file = futures::stream::iter(spec.files).then(move |file| {
            let this = this.clone();
            let mut options = options.clone();
            options.row_groups.clone_from(&file.row_groups);
            let want = want.clone();
            let staged = staged.clone();
            let plan = plan.clone();
            let hive = hive.clone();
            let values = hive.values(below(&base, &file.path));
            async move {
                // Files open one after another: the next one only when the last is exhausted.
                let (format, bytes) = this.open(&file)?;
                let display = bytes.location().to_owned();
                let stream = format.read(bytes, options).await?;
                conform(&plan, &stream.schema(), &display)?;
                Ok::<_, Error>(stream.map(move |b| {
                    let b = reshape(&b?, &want, &display)?;
                    hive.extend_batch(&b, &values, &staged)
                }))
            }
        });
        let labels = self.options.clone();
        let batches = per_file
            .try_flatten()
            .map_err(move |e: Error| labels.label(e, "read"));
        let no_hive = stage_schema.fields().len() == inner_schema.fields().len();
        let stream = RecordBatchStreamAdapter::boxed(stage_schema, batches);
        let pushed = Pushed {
            // Without a filter or partition columns the stream already has exactly the
            // projected columns, in order.
            projection: request.filter.is_none() && no_hive,
            filter: false,
            limit: false,
        };
        apply(stream, &request, pushed).map_err(|e| self.err(e, "read"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouping_is_balanced_and_ordered() {
        let g = group(&[1, 2, 3, 4, 5], 2);
        assert_eq!(g, vec![vec![1, 2, 3], vec![4, 5]]);
        assert_eq!(group(&[1, 2], 8).len(), 2);
        assert_eq!(group::<i32>(&[], 4), vec![Vec::<i32>::new()]);
    }

    #[test]
    fn globs() {
        let g = compile_glob("data/*.csv").unwrap();
        assert!(g.is_match("data/a.csv"));
        assert!(!g.is_match("data/x/a.csv"));
        assert!(compile_glob("**/*.csv").unwrap().is_match("a/b/c.csv"));
        assert!(is_glob("a/*.csv") && !is_glob("a/b.csv"));
    }
}
