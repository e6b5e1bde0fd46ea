//! Registry factories: build file connectors from configuration.
//!
//! Every file kind shares one config shape, [`FileConfig`], with the format's own options under
//! `options`:
//!
//! ```yaml
//! type: csv
//! path: /data/in            # root directory (local file system)
//! glob: "**/*.csv"          # optional: only these files
//! compression: gzip         # optional: none | gzip | zstd (default: by extension)
//! bad_rows: skip            # optional: fail (default) | skip
//! schema:                   # optional: instead of inference
//!   - { name: id, type: Int64, nullable: false }
//!   - { name: name, type: Utf8 }
//! options: { delimiter: ";", header: true }
//! ```
//!
//! A format becomes a kind by implementing [`FormatKind`]; [`FileFactory`] does the rest.

use std::marker::PhantomData;
use std::str::FromStr;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema};
use async_trait::async_trait;
use connector_core::registry::{Connector, ConnectorFactory, KindCapabilities};
use connector_core::{Error, Result, SinkCapabilities, SourceCapabilities};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::compression::Compression;
use crate::format::{BadRows, FileFormat};
use crate::sink::FileSink;
use crate::source::{FileOptions, FileSource};
use crate::store::StoreRoot;

/// One column of an explicit schema.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ColumnConfig {
    /// Column name.
    pub name: String,
    /// Arrow type as Arrow prints it: `Int64`, `Utf8`, `Date32`, `Decimal128(10, 2)`,
    /// `Timestamp(Microsecond, Some("UTC"))`, `List(Int32)`, …
    #[serde(rename = "type")]
    pub data_type: String,
    /// Whether the column may hold nulls. Default true.
    #[serde(default = "default_true")]
    pub nullable: bool,
}

fn default_true() -> bool {
    true
}

/// The config of every file kind; `O` is the format's options.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(
    deny_unknown_fields,
    bound(deserialize = "O: DeserializeOwned + Default")
)]
pub struct FileConfig<O: Default> {
    /// Root directory on the local file system; datasets and targets are relative to it.
    pub path: String,
    /// Create the root directory if it does not exist. Default false.
    #[serde(default)]
    pub create: bool,
    /// Only files matching this glob (relative to `path`) are seen.
    #[serde(default)]
    pub glob: Option<String>,
    /// Compression of every file; default: by extension (`.gz`, `.zst`).
    #[serde(default)]
    pub compression: Option<Compression>,
    /// What to do with rows that cannot be decoded (text formats).
    #[serde(default)]
    pub bad_rows: BadRows,
    /// Schema of every file, instead of inferring one.
    #[serde(default)]
    pub schema: Option<Vec<ColumnConfig>>,
    /// Files sampled to infer and cross-check the schema. Default 1.
    #[serde(default)]
    pub infer_files: Option<usize>,
    /// Sink: start a new part file after this many rows.
    #[serde(default)]
    pub max_rows_per_file: Option<usize>,
    /// Sink: start a new part file after about this many bytes.
    #[serde(default)]
    pub max_bytes_per_file: Option<usize>,
    /// Source: read `key=value` directories as columns and prune by filters on them. Default
    /// false.
    #[serde(default)]
    pub hive_partitioning: bool,
    /// Sink: write hive partition directories by these columns.
    #[serde(default)]
    pub partition_by: Vec<String>,
    /// Sink: stage files under `_temporary/` and publish them when the write is complete.
    /// Default false.
    #[serde(default)]
    pub staged_publish: bool,
    /// The format's options.
    #[serde(default)]
    pub options: O,
}

impl<O: Default> FileConfig<O> {
    /// The explicit schema, parsed.
    pub fn parsed_schema(&self) -> Result<Option<Schema>> {
        let Some(cols) = &self.schema else {
            return Ok(None);
        };
        let fields = cols
            .iter()
            .map(|c| {
                DataType::from_str(&c.data_type)
                    .map(|t| Field::new(&c.name, t, c.nullable))
                    .map_err(|e| {
                        Error::invalid_config(format!(
                            "column {:?}: cannot parse type {:?}: {e}",
                            c.name, c.data_type
                        ))
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(Schema::new(fields)))
    }

    /// The [`FileOptions`] this config describes, reading and writing with `format`.
    pub fn file_options(&self, format: Arc<dyn FileFormat>) -> Result<FileOptions> {
        let mut o = FileOptions::default().with_format(format);
        o.compression = self.compression;
        o.bad_rows = self.bad_rows;
        o.glob.clone_from(&self.glob);
        o.max_rows_per_file = self.max_rows_per_file;
        o.max_bytes_per_file = self.max_bytes_per_file;
        o.hive_partitioning = self.hive_partitioning;
        o.partition_by.clone_from(&self.partition_by);
        o.staged_publish = self.staged_publish;
        o.schema = self.parsed_schema()?.map(Arc::new);
        if let Some(n) = self.infer_files {
            o = o.with_infer_files(n);
        }
        Ok(o)
    }

    /// The root directory as a [`StoreRoot`], created first if `create` is set.
    pub fn root(&self) -> Result<StoreRoot> {
        let dir = std::path::Path::new(&self.path);
        if self.create && !dir.exists() {
            std::fs::create_dir_all(dir).map_err(|e| {
                Error::from(e).with_location(connector_core::Location::file(self.path.clone()))
            })?;
        }
        if !dir.is_dir() {
            return Err(Error::invalid_config(format!(
                "root {:?} is not an existing directory (set `create: true` to create it)",
                self.path
            )));
        }
        StoreRoot::local(dir)
    }
}

/// A file format as a connector kind.
pub trait FormatKind: Send + Sync + 'static {
    /// The format's options (the `options` map of the config).
    type Options: DeserializeOwned + schemars::JsonSchema + Default + Clone + Send + Sync + 'static;
    /// The `type` value.
    const KIND: &'static str;
    /// One line for [`connector_core::registry::Registry::kinds`].
    const DESCRIPTION: &'static str;
    /// The format for `options`.
    fn format(options: &Self::Options) -> Result<Arc<dyn FileFormat>>;
    /// Whether reads fetch only the projected columns.
    #[must_use]
    fn projection_pushdown() -> bool {
        false
    }
}

/// The [`ConnectorFactory`] of a [`FormatKind`]: a [`FileSource`] and a [`FileSink`] over a local
/// directory.
pub struct FileFactory<K>(PhantomData<fn() -> K>);

impl<K> Default for FileFactory<K> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<K> std::fmt::Debug for FileFactory<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FileFactory")
    }
}

/// Source capabilities of every file kind (`projection`: whether the format pushes projection).
#[must_use]
pub fn source_capabilities(projection: bool) -> SourceCapabilities {
    let caps = SourceCapabilities::none().with_partitioned_reads();
    if projection {
        caps.with_projection_pushdown()
    } else {
        caps
    }
}

/// Sink capabilities of every file kind.
#[must_use]
pub fn sink_capabilities() -> SinkCapabilities {
    SinkCapabilities::none()
        .with_append()
        .with_overwrite()
        .with_create_if_missing()
        .with_atomic()
}

#[async_trait]
impl<K: FormatKind> ConnectorFactory for FileFactory<K> {
    type Config = FileConfig<K::Options>;

    fn kind(&self) -> &'static str {
        K::KIND
    }

    fn description(&self) -> &'static str {
        K::DESCRIPTION
    }

    fn capabilities(&self) -> KindCapabilities {
        KindCapabilities {
            source: Some(source_capabilities(K::projection_pushdown())),
            sink: Some(sink_capabilities()),
        }
    }

    async fn build(&self, config: Self::Config) -> Result<Connector> {
        let options = config.file_options(K::format(&config.options)?)?;
        let root = config.root()?;
        Ok(Connector::both(
            FileSource::new(root.clone(), options.clone()),
            FileSink::new(root, options),
        ))
    }
}

/// The `csv` kind.
#[cfg(feature = "csv")]
#[derive(Debug)]
pub struct CsvKind;

#[cfg(feature = "csv")]
impl FormatKind for CsvKind {
    type Options = crate::csv::CsvOptions;
    const KIND: &'static str = "csv";
    const DESCRIPTION: &'static str = "CSV files in a local directory (gzip/zstd, globs)";
    fn format(options: &Self::Options) -> Result<Arc<dyn FileFormat>> {
        Ok(Arc::new(crate::csv::CsvFormat::new(options.clone())?))
    }
}

/// The `json` kind.
#[cfg(feature = "json")]
#[derive(Debug)]
pub struct JsonKind;

#[cfg(feature = "json")]
impl FormatKind for JsonKind {
    type Options = crate::json::JsonOptions;
    const KIND: &'static str = "json";
    const DESCRIPTION: &'static str = "NDJSON or JSON-array files in a local directory";
    fn format(options: &Self::Options) -> Result<Arc<dyn FileFormat>> {
        Ok(Arc::new(crate::json::JsonFormat::new(options.clone())))
    }
}

/// The `parquet` kind.
#[cfg(feature = "parquet")]
#[derive(Debug)]
pub struct ParquetKind;

#[cfg(feature = "parquet")]
impl FormatKind for ParquetKind {
    type Options = crate::parquet::ParquetOptions;
    const KIND: &'static str = "parquet";
    const DESCRIPTION: &'static str =
        "Parquet files in a local directory (projection, row-group pruning)";
    fn format(options: &Self::Options) -> Result<Arc<dyn FileFormat>> {
        Ok(Arc::new(crate::parquet::ParquetFormat::new(
            options.clone(),
        )?))
    }
    fn projection_pushdown() -> bool {
        true
    }
}

/// Factory of the `csv` kind.
#[cfg(feature = "csv")]
pub type CsvFactory = FileFactory<CsvKind>;
/// Factory of the `json` kind.
#[cfg(feature = "json")]
pub type JsonFactory = FileFactory<JsonKind>;
/// Factory of the `parquet` kind.
#[cfg(feature = "parquet")]
pub type ParquetFactory = FileFactory<ParquetKind>;
