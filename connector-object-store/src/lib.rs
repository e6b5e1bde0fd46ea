#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod config;
pub mod error;
pub mod factory;
pub mod hive;
pub mod location;
mod shared;
mod sink;
mod source;

use std::sync::Arc;

use connector_core::Result;
use connector_file::FormatRegistry;
use object_store::ObjectStore;

pub use config::{
    AzureConfig, ClientSettings, GcsConfig, HttpFilesConfig, LayoutConfig, RetrySettings, S3Config,
};
pub use factory::register;
pub use location::{ObjectUrl, StoreKind};
pub use sink::ObjectStoreSink;
pub use source::ObjectStoreSource;

/// A location in an object store, with its source and sink.
///
/// Build it from a typed config ([`ObjectStoreConnector::s3`], [`ObjectStoreConnector::azure`],
/// [`ObjectStoreConnector::gcs`], [`ObjectStoreConnector::http`]) or from any
/// `Arc<dyn ObjectStore>` with [`ObjectStoreConnector::new`] (for example one wrapped in
/// `object_store`'s throttling or limit layers, or a request-counting wrapper in tests).
#[derive(Debug, Clone)]
pub struct ObjectStoreConnector {
    shared: Arc<shared::Shared>,
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
        Ok(Self {
            shared: Arc::new(shared::Shared::new(connector, store, url, formats, layout)?),
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

    /// The source side.
    #[must_use]
    pub fn source(&self) -> ObjectStoreSource {
        ObjectStoreSource {
            shared: self.shared.clone(),
        }
    }

    /// The sink side.
    #[must_use]
    pub fn sink(&self) -> ObjectStoreSink {
        ObjectStoreSink {
            shared: self.shared.clone(),
        }
    }

    /// The underlying store.
    #[must_use]
    pub fn store(&self) -> Arc<dyn ObjectStore> {
        self.shared.root.store().clone()
    }

    /// The location.
    #[must_use]
    pub fn url(&self) -> &ObjectUrl {
        &self.shared.url
    }
}
