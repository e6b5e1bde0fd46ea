//! [`ObjectStoreSource`]: read any connector-file format from one object, a prefix or a glob,
//! one partition per object, with hive partition columns pruned before any byte is read.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::datatypes::{Field, Schema, SchemaRef};
use async_trait::async_trait;
use connector_core::residual::{self, Pushed};
use connector_core::stream::RecordBatchStreamAdapter;
use connector_core::{
    DatasetInfo, Error, ErrorKind, Expr, Location, Partition, ReadRequest, Result,
    SendableRecordBatchStream, Source, SourceCapabilities,
};
use connector_file::compression::Compression;
use connector_file::{ByteSource, FileFormat, FormatReadOptions};
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use crate::hive::HiveColumns;
use crate::location::split_glob;
use crate::shared::Shared;

/// Reads datasets under the configured location. Dataset names are keys or globs relative to
/// the location (`"sales"`, `"sales/*.parquet"`, `"year=2024/**/*.csv"`), or full URLs in the
/// same bucket. `""` is the location itself (its glob, if it had one).
#[derive(Debug, Clone)]
pub struct ObjectStoreSource {
    pub(crate) shared: Arc<Shared>,
}

/// One object of a planned read.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct FileSpec {
    /// Key relative to the connector's root.
    key: String,
    /// Key relative to the dataset's base (where hive segments start).
    rel: String,
    size: u64,
}

/// What a partition carries, so that any worker can read it without listing again.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PartitionSpec {
    files: Vec<FileSpec>,
    /// The schema of the files (without partition columns).
    file_schema: Schema,
    /// The hive partition columns.
    hive: Vec<Field>,
    /// Format name, when forced by the config.
    format: Option<String>,
}

/// A resolved dataset: where it is and what it holds.
pub(crate) struct Resolved {
    /// Display URL of the dataset (for errors).
    pub display: String,
    /// Base key relative to the root: hive segments start below it.
    pub base: String,
    /// Objects, with keys relative to the root.
    pub files: Vec<(String, u64)>,
}

impl ObjectStoreSource {
    fn connector(&self) -> &'static str {
        self.shared.connector
    }

    /// Resolve a dataset name into its objects (hidden `_`/`.` objects are skipped).
    pub(crate) async fn resolve(&self, name: &str) -> Result<Resolved> {
        let rel = self.shared.relative_name(name)?;
        let (prefix, glob) = split_glob(&rel);
        let display = self.shared.root.display(&rel);
        let listed = self
            .shared
            .root
            .list(prefix)
            .await
            .map_err(|e| self.shared.refine(e, "plan", &display))?;
        let mut files: Vec<(String, u64)> = Vec::new();
        let matcher = match glob {
            Some(g) => Some(
                globset::GlobBuilder::new(g)
                    .literal_separator(true)
                    .build()
                    .map_err(|e| {
                        Error::invalid_input(
                            format!("invalid glob {g:?}: {e}"),
                            Location::url(display.clone()),
                        )
                        .with_connector(self.connector())
                        .with_operation("plan")
                    })?
                    .compile_matcher(),
            ),
            None => None,
        };
        for m in listed {
            let Some(key) = self.shared.root.relative(&m.location) else {
                continue;
            };
            let below = key
                .strip_prefix(prefix)
                .unwrap_or(&key)
                .trim_start_matches('/');
            if let Some(mt) = &matcher
                && !mt.is_match(below)
            {
                continue;
            }
            if matcher.is_none() && self.shared.format_for(&key).is_none() {
                // A prefix read takes every object a format claims (or all, with a forced format).
                continue;
            }
            files.push((key, m.size));
        }
        if files.is_empty() && glob.is_none() && !prefix.is_empty() {
            // Not a prefix: perhaps one object.
            if let Some(m) = self
                .shared
                .root
                .head(prefix)
                .await
                .map_err(|e| self.shared.refine(e, "plan", &display))?
            {
                let base = prefix.rsplit_once('/').map_or("", |(d, _)| d).to_owned();
                return Ok(Resolved {
                    display,
                    base,
                    files: vec![(prefix.to_owned(), m.size)],
                });
            }
        }
        if files.is_empty() {
            return Err(
                Error::new(ErrorKind::NotFound, format!("no objects match {display}"))
                    .with_connector(self.connector())
                    .with_operation("plan")
                    .with_location(Location::url(display)),
            );
        }
        files.sort();
        Ok(Resolved {
            display,
            base: prefix.to_owned(),
            files,
        })
    }

    fn format_of(&self, key: &str) -> Result<(Arc<dyn FileFormat>, Compression)> {
        self.shared.format_for(key).ok_or_else(|| {
            Error::new(
                ErrorKind::Unsupported,
                format!(
                    "no file format claims {key:?}; set `layout.format` (known: {:?})",
                    self.shared.formats
                ),
            )
            .with_connector(self.connector())
            .with_operation("plan")
            .with_location(Location::url(self.shared.root.display(key)))
        })
    }

    async fn file_schema(&self, key: &str, size: u64) -> Result<SchemaRef> {
        let (format, compression) = self.format_of(key)?;
        let input = self.shared.bytes(key, size, compression);
        format.infer_schema(input).await.map_err(|e| {
            self.shared
                .refine(e, "discover", &self.shared.root.display(key))
        })
    }

    /// The hive columns of a resolved dataset.
    fn hive_columns(&self, r: &Resolved) -> Result<HiveColumns> {
        if self.shared.layout.hive_partitioning {
            HiveColumns::infer(r.files.iter().map(|(k, _)| rel_to(&r.base, k)))
                .map_err(|e| self.shared.refine(e, "plan", &r.display))
        } else {
            Ok(HiveColumns::default())
        }
    }

    /// The file schema and hive columns of a resolved dataset.
    async fn dataset_schema(&self, r: &Resolved) -> Result<(SchemaRef, HiveColumns)> {
        let hive = self.hive_columns(r)?;
        let (first, size) = &r.files[0];
        let schema = self.file_schema(first, *size).await?;
        Ok((schema, hive))
    }
}

fn rel_to<'a>(base: &str, key: &'a str) -> &'a str {
    key.strip_prefix(base)
        .unwrap_or(key)
        .trim_start_matches('/')
}

#[async_trait]
impl Source for ObjectStoreSource {
    fn name(&self) -> &str {
        self.connector()
    }

    fn capabilities(&self) -> SourceCapabilities {
        SourceCapabilities::none()
            .with_projection_pushdown()
            .with_filter_pushdown()
            .with_limit_pushdown()
            .with_partitioned_reads()
    }

    async fn check(&self) -> Result<()> {
        self.shared.check().await
    }

    async fn discover(&self) -> Result<Vec<DatasetInfo>> {
        // Datasets: the location's own glob, or each top-level "directory" and each top-level
        // object under the location.
        let mut names: Vec<String> = Vec::new();
        if self.shared.root_glob.is_some() {
            names.push(String::new());
        } else {
            let listed = self.shared.root.list("").await.map_err(|e| {
                self.shared
                    .refine(e, "discover", &self.shared.root.display(""))
            })?;
            let mut seen = HashSet::new();
            for m in listed {
                let Some(key) = self.shared.root.relative(&m.location) else {
                    continue;
                };
                let name = match key.split_once('/') {
                    Some((dir, _)) if !dir.contains('=') => dir.to_owned(),
                    // Hive directories directly under the root: the root is one dataset.
                    Some(_) => String::new(),
                    None if self.shared.format_for(&key).is_some() => key.clone(),
                    None => continue,
                };
                if seen.insert(name.clone()) {
                    names.push(name);
                }
            }
        }
        let mut out = Vec::new();
        for name in names {
            let r = self.resolve(&name).await?;
            let (schema, hive) = self.dataset_schema(&r).await?;
            out.push(DatasetInfo {
                name,
                schema: hive.extend_schema(&schema),
                primary_key: Vec::new(),
                row_estimate: None,
            });
        }
        Ok(out)
    }

    async fn plan(&self, request: &ReadRequest, max_partitions: usize) -> Result<Vec<Partition>> {
        let Some(name) = request.dataset_name() else {
            return Err(Error::unsupported(
                "object stores read datasets (keys, prefixes, globs), not queries",
            )
            .with_connector(self.connector())
            .with_operation("plan"));
        };
        let r = self.resolve(name).await?;
        let hive = self.hive_columns(&r)?;
        let mut files: Vec<FileSpec> = Vec::with_capacity(r.files.len());
        for (key, size) in &r.files {
            let rel = rel_to(&r.base, key).to_owned();
            if let Some(f) = &request.filter
                && !hive.is_empty()
                && !hive.may_match(f, &hive.values(&rel))
            {
                continue;
            }
            files.push(FileSpec {
                key: key.clone(),
                rel,
                size: *size,
            });
        }
        // The schema comes from the first object the read keeps (pruned objects are never
        // touched), or the dataset's first object when the filter keeps none.
        let (first, size) = files
            .first()
            .map_or_else(|| r.files[0].clone(), |f| (f.key.clone(), f.size));
        let file_schema = self.file_schema(&first, size).await?;
        let full = hive.extend_schema(&file_schema);
        // Validate the request's columns now, so a bad column fails the plan.
        residual::project_schema(&full, request.projection.as_deref())
            .map_err(|e| e.with_connector(self.connector()).with_operation("plan"))?;
        let n = max_partitions.max(1);
        let groups: Vec<Vec<FileSpec>> = if files.is_empty() {
            vec![Vec::new()]
        } else if files.len() <= n {
            // One partition per object.
            files.into_iter().map(|f| vec![f]).collect()
        } else {
            // Contiguous groups of about equal bytes; each object stays whole in one partition.
            let total: u64 = files.iter().map(|f| f.size.max(1)).sum();
            let per = total.div_ceil(n as u64).max(1);
            let mut groups: Vec<Vec<FileSpec>> = vec![Vec::new(); n];
            let mut acc = 0u64;
            for f in files {
                let idx = ((acc / per) as usize).min(n - 1);
                acc += f.size.max(1);
                groups[idx].push(f);
            }
            groups.into_iter().filter(|g| !g.is_empty()).collect()
        };
        let count = groups.len();
        let format = self.shared.layout.format.clone();
        groups
            .into_iter()
            .enumerate()
            .map(|(index, files)| {
                let spec = PartitionSpec {
                    files,
                    file_schema: file_schema.as_ref().clone(),
                    hive: hive.fields.clone(),
                    format: format.clone(),
                };
                Ok(Partition {
                    request: request.clone(),
                    index,
                    count,
                    row_estimate: None,
                    spec: serde_json::to_value(&spec).map_err(|e| {
                        Error::internal(format!("cannot serialize a partition: {e}"))
                            .with_connector(self.connector())
                            .with_operation("plan")
                    })?,
                })
            })
            .collect()
    }

    async fn read(&self, partition: Partition) -> Result<SendableRecordBatchStream> {
        let spec: PartitionSpec = serde_json::from_value(partition.spec.clone()).map_err(|e| {
            Error::invalid_input(
                format!("this partition was not planned by an object-store source: {e}"),
                Location::default(),
            )
            .with_connector(self.connector())
            .with_operation("read")
        })?;
        let request = partition.request;
        let file_schema: SchemaRef = Arc::new(spec.file_schema);
        let hive = HiveColumns { fields: spec.hive };

        // The file columns the request needs, in file order.
        let mut wanted: HashSet<String> = HashSet::new();
        let all = request.projection.is_none();
        if let Some(p) = &request.projection {
            wanted.extend(p.iter().cloned());
        }
        if let Some(f) = &request.filter {
            wanted.extend(f.columns().into_iter().map(str::to_owned));
        }
        let mut needed: Vec<String> = file_schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .filter(|n| all || wanted.contains(n))
            .collect();
        if needed.is_empty()
            && let Some(f) = file_schema.fields().first()
        {
            // Keep row counts: decode the first column and drop it afterwards.
            needed.push(f.name().clone());
        }
        let decoded_schema = Arc::new(
            file_schema.project(
                &needed
                    .iter()
                    .filter_map(|n| file_schema.index_of(n).ok())
                    .collect::<Vec<_>>(),
            )?,
        );
        let stage_schema = hive.extend_schema(&decoded_schema);
        // A filter reaches the format only when it names file columns alone.
        let format_filter: Option<Expr> = request.filter.clone().filter(|f| {
            f.columns()
                .iter()
                .all(|c| file_schema.field_with_name(c).is_ok())
        });
        let limit_hint = if request.filter.is_none() {
            request.limit
        } else {
            None
        };

        let stage_schema_out = stage_schema.clone();
        let shared = self.shared.clone();
        let batch_rows = request.batch_rows_or_default();
        let forced = spec.format;
        let files = spec.files;
        let stream = futures::stream::iter(files)
            .then(move |f| {
                let shared = shared.clone();
                let file_schema = file_schema.clone();
                let decoded_schema = decoded_schema.clone();
                let stage_schema = stage_schema.clone();
                let hive = hive.clone();
                let needed = needed.clone();
                let format_filter = format_filter.clone();
                let forced = forced.clone();
                async move {
                    let display = shared.root.display(&f.key);
                    let (format, compression) = match &forced {
                        Some(name) => shared
                            .formats
                            .by_name(name)
                            .map(|fmt| (fmt, Compression::from_path(&f.key))),
                        None => shared.format_for(&f.key),
                    }
                    .ok_or_else(|| {
                        Error::unsupported(format!("no file format claims {display}"))
                            .with_connector(shared.connector)
                            .with_operation("read")
                            .with_location(Location::url(display.clone()))
                    })?;
                    let input: Arc<dyn ByteSource> = shared.bytes(&f.key, f.size, compression);
                    let options = FormatReadOptions {
                        schema: Some(file_schema.clone()),
                        projection: Some(needed.clone()),
                        filter: format_filter,
                        limit: limit_hint,
                        batch_rows,
                        ..FormatReadOptions::default()
                    };
                    let decoded = format
                        .read(input, options)
                        .await
                        .map_err(|e| shared.refine(e, "read", &display))?;
                    let values = hive.values(&f.rel);
                    let s2 = shared.clone();
                    let mapped = decoded.map(move |b| {
                        let b = b.map_err(|e| s2.refine(e, "read", &display))?;
                        // Formats may return more columns than asked for: keep ours, in order.
                        let idx: Vec<usize> = decoded_schema
                            .fields()
                            .iter()
                            .map(|fld| {
                                b.schema().index_of(fld.name()).map_err(|_| {
                                    Error::new(
                                        ErrorKind::SchemaMismatch,
                                        format!(
                                            "{display} has no column {:?} (the dataset schema comes from its first object)",
                                            fld.name()
                                        ),
                                    )
                                    .with_connector(s2.connector)
                                    .with_operation("read")
                                    .with_location(Location::url(display.clone()))
                                })
                            })
                            .collect::<Result<_>>()?;
                        let b = b.project(&idx)?;
                        let b = arrow::record_batch::RecordBatch::try_new_with_options(
                            decoded_schema.clone(),
                            b.columns().to_vec(),
                            &arrow::record_batch::RecordBatchOptions::new()
                                .with_row_count(Some(b.num_rows())),
                        )
                        .map_err(|e| {
                            Error::new(ErrorKind::SchemaMismatch, e.to_string())
                                .with_connector(s2.connector)
                                .with_operation("read")
                                .with_location(Location::url(display.clone()))
                        })?;
                        hive.extend_batch(&b, &values, &stage_schema)
                    });
                    Ok::<_, Error>(mapped)
                }
            })
            .try_flatten();
        let staged = RecordBatchStreamAdapter::boxed(stage_schema_out, stream);
        residual::apply(staged, &request, Pushed::NONE)
    }
}
