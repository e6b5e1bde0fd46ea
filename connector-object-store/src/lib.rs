#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod config;
pub mod error;
pub mod factory;
pub mod location;

use std::fmt;
use std::sync::Arc;

use connector_core::{Error, Location, Result};
use connector_file::{FileOptions, FileSink, FileSource, FormatRegistry, StoreRoot};
use object_store::ObjectStore;

pub use config::{
    AzureConfig, ClientSettings, GcsConfig, HttpFilesConfig, LayoutConfig, RetrySettings, S3Config,
};
pub use factory::register;
pub use location::{ObjectUrl, StoreKind};

/// The source of an object-store location: connector-file's [`FileSource`] over the store and
/// the location's prefix, named after the store (`s3`, `azure`, `gcs`, `http_files`) in errors.
pub type ObjectStoreSource = FileSource;

/// The sink of an object-store location: connector-file's [`FileSink`] over the store and the
/// location's prefix, publishing staged writes (see [`connector_file::sink`]).
pub type ObjectStoreSink = FileSink;

/// Default rotation size of written objects: S3's server-side copy, used to publish staged
/// objects, takes at most 5 GiB.
const DEFAULT_MAX_FILE_BYTES: u64 = 1024 * 1024 * 1024;

/// A location in an object store, with its source and sink.
///
/// Build it from a typed config ([`ObjectStoreConnector::s3`], [`ObjectStoreConnector::azure`],
/// [`ObjectStoreConnector::gcs`], [`ObjectStoreConnector::http`]) or from any
/// `Arc<dyn ObjectStore>` with [`ObjectStoreConnector::new`] (for example one wrapped in
/// `object_store`'s throttling or limit layers, or a request-counting wrapper in tests).
#[derive(Clone)]
pub struct ObjectStoreConnector {
    url: ObjectUrl,
    layout: LayoutConfig,
    source: FileSource,
    sink: FileSink,
}

impl fmt::Debug for ObjectStoreConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectStoreConnector")
            .field("connector", &self.url.kind.connector())
            .field("url", &self.url.to_string())
            .field("layout", &self.layout)
            .finish_non_exhaustive()
    }
}

impl ObjectStoreConnector {
    /// A connector over `store` at `url` (whose bucket `store` must be bound to), reading and
    /// writing `formats` with `layout`.
    pub fn new(
        store: Arc<dyn ObjectStore>,
        url: ObjectUrl,
        formats: FormatRegistry,
        layout: LayoutConfig,
    ) -> Result<Self> {
        let connector = url.kind.connector();
        let build_err = |e: Error| {
            e.with_connector(connector)
                .with_operation("build")
                .with_location(Location::url(url.to_string()))
        };
        let prefix = url.list_prefix().to_owned();
        let display = if prefix.is_empty() {
            url.base()
        } else {
            format!("{}/{prefix}", url.base())
        };
        let root = StoreRoot::new(store, &prefix, display)
            .map_err(build_err)?
            .with_transport_classifier(error::transport_kind);
        let format = match &layout.format {
            Some(name) => Some(formats.by_name(name).ok_or_else(|| {
                build_err(Error::invalid_config(format!(
                    "unknown file format {name:?}; this build has {formats:?}"
                )))
            })?),
            None => None,
        };
        // Writes default to Parquet.
        let write_format = format.clone().or_else(|| formats.by_name("parquet"));
        let mut options = FileOptions::default()
            .with_formats(formats)
            .with_connector_name(connector)
            .with_hive_partitioning(layout.hive_partitioning)
            .with_partition_by(layout.partition_by.iter().cloned())
            .with_staged_publish(true)
            .with_max_bytes_per_file(usize_of(
                layout.max_bytes_per_file.unwrap_or(DEFAULT_MAX_FILE_BYTES),
            ));
        if let Some(g) = url.glob() {
            options = options.with_glob(g);
        }
        if let Some(rows) = layout.max_rows_per_file {
            options = options.with_max_rows_per_file(usize_of(rows));
        }
        if let Some(bytes) = layout.part_size {
            options = options.with_upload_part_size(bytes);
        }
        if let Some(parts) = layout.upload_concurrency {
            options = options.with_upload_concurrency(parts);
        }
        let mut sink_options = options.clone();
        if let Some(f) = &format {
            options = options.with_format(f.clone());
        }
        if let Some(f) = write_format {
            sink_options = sink_options.with_format(f);
        }
        Ok(Self {
            source: FileSource::new(root.clone(), options),
            sink: FileSink::new(root, sink_options),
            url,
            layout,
        })
    }

    /// Every file format of this build ([`connector_file::default_formats`]).
    #[must_use]
    pub fn default_formats() -> FormatRegistry {
        connector_file::default_formats()
    }

    /// An S3 (or S3-compatible) location.
    #[cfg(feature = "s3")]
    pub fn s3(config: &S3Config) -> Result<Self> {
        let (store, url) = config.build_store()?;
        Self::new(store, url, Self::default_formats(), config.layout.clone())
    }

    /// An Azure Blob Storage location.
    #[cfg(feature = "azure")]
    pub fn azure(config: &AzureConfig) -> Result<Self> {
        let (store, url) = config.build_store()?;
        Self::new(store, url, Self::default_formats(), config.layout.clone())
    }

    /// A Google Cloud Storage location.
    #[cfg(feature = "gcs")]
    pub fn gcs(config: &GcsConfig) -> Result<Self> {
        let (store, url) = config.build_store()?;
        Self::new(store, url, Self::default_formats(), config.layout.clone())
    }

    /// Files over HTTP(S).
    #[cfg(feature = "http")]
    pub fn http(config: &HttpFilesConfig) -> Result<Self> {
        let (store, url) = config.build_store()?;
        Self::new(store, url, Self::default_formats(), config.layout.clone())
    }

    /// The source side: a [`FileSource`] over the location.
    #[must_use]
    pub fn source(&self) -> ObjectStoreSource {
        self.source.clone()
    }

    /// The sink side: a [`FileSink`] over the location, writing Parquet unless the layout names
    /// a format.
    #[must_use]
    pub fn sink(&self) -> ObjectStoreSink {
        self.sink.clone()
    }

    /// The underlying store.
    #[must_use]
    pub fn store(&self) -> Arc<dyn ObjectStore> {
        self.source.root().store().clone()
    }

    /// The location.
    #[must_use]
    pub fn url(&self) -> &ObjectUrl {
        &self.url
    }

    /// The layout settings.
    #[must_use]
    pub fn layout(&self) -> &LayoutConfig {
        &self.layout
    }
}

/// A count from a config as `usize` (saturating on 32-bit targets).
fn usize_of(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}
