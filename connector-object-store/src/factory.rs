//! Registry factories of the kinds `s3`, `azure`, `gcs` and `http_files`.

#[cfg(any(feature = "s3", feature = "azure", feature = "gcs", feature = "http"))]
use async_trait::async_trait;
#[cfg(any(feature = "s3", feature = "azure", feature = "gcs", feature = "http"))]
use connector_core::Result;
#[cfg(any(feature = "s3", feature = "azure", feature = "gcs", feature = "http"))]
use connector_core::registry::{Connector, ConnectorFactory};
use connector_core::registry::{KindCapabilities, Registry};
use connector_file::factory::{sink_capabilities, source_capabilities};

/// What every object-store kind can do (`http_files` is read-only): what connector-file's
/// source and sink declare, with filter pushdown for the hive-partition pruning the layout turns
/// on by default. Projection pushdown depends on the format (Parquet), known only per config.
#[cfg_attr(
    not(any(feature = "s3", feature = "azure", feature = "gcs", feature = "http")),
    allow(dead_code)
)]
fn caps(sink: bool) -> KindCapabilities {
    KindCapabilities {
        source: Some(source_capabilities(false).with_filter_pushdown()),
        sink: sink.then(sink_capabilities),
    }
}

/// Factory of the `s3` kind ([`crate::S3Config`]).
#[cfg(feature = "s3")]
#[derive(Debug, Clone, Copy, Default)]
pub struct S3Factory;

#[cfg(feature = "s3")]
#[async_trait]
impl ConnectorFactory for S3Factory {
    type Config = crate::S3Config;

    fn kind(&self) -> &'static str {
        "s3"
    }

    fn description(&self) -> &'static str {
        "Amazon S3 and S3-compatible stores (MinIO, SeaweedFS, R2): files of any connector-file format"
    }

    fn capabilities(&self) -> KindCapabilities {
        caps(true)
    }

    async fn build(&self, config: crate::S3Config) -> Result<Connector> {
        let c = crate::ObjectStoreConnector::s3(&config)?;
        Ok(Connector::both(c.source(), c.sink()))
    }
}

/// Factory of the `azure` kind ([`crate::AzureConfig`]).
#[cfg(feature = "azure")]
#[derive(Debug, Clone, Copy, Default)]
pub struct AzureFactory;

#[cfg(feature = "azure")]
#[async_trait]
impl ConnectorFactory for AzureFactory {
    type Config = crate::AzureConfig;

    fn kind(&self) -> &'static str {
        "azure"
    }

    fn description(&self) -> &'static str {
        "Azure Blob Storage (and ADLS Gen2): files of any connector-file format"
    }

    fn capabilities(&self) -> KindCapabilities {
        caps(true)
    }

    async fn build(&self, config: crate::AzureConfig) -> Result<Connector> {
        let c = crate::ObjectStoreConnector::azure(&config)?;
        Ok(Connector::both(c.source(), c.sink()))
    }
}

/// Factory of the `gcs` kind ([`crate::GcsConfig`]).
#[cfg(feature = "gcs")]
#[derive(Debug, Clone, Copy, Default)]
pub struct GcsFactory;

#[cfg(feature = "gcs")]
#[async_trait]
impl ConnectorFactory for GcsFactory {
    type Config = crate::GcsConfig;

    fn kind(&self) -> &'static str {
        "gcs"
    }

    fn description(&self) -> &'static str {
        "Google Cloud Storage: files of any connector-file format (not verified against a live server)"
    }

    fn capabilities(&self) -> KindCapabilities {
        caps(true)
    }

    async fn build(&self, config: crate::GcsConfig) -> Result<Connector> {
        let c = crate::ObjectStoreConnector::gcs(&config)?;
        Ok(Connector::both(c.source(), c.sink()))
    }
}

/// Factory of the `http_files` kind ([`crate::HttpFilesConfig`]): read-only.
#[cfg(feature = "http")]
#[derive(Debug, Clone, Copy, Default)]
pub struct HttpFilesFactory;

#[cfg(feature = "http")]
#[async_trait]
impl ConnectorFactory for HttpFilesFactory {
    type Config = crate::HttpFilesConfig;

    fn kind(&self) -> &'static str {
        "http_files"
    }

    fn description(&self) -> &'static str {
        "Files over HTTP(S) with ranged GETs (listing needs WebDAV): any connector-file format"
    }

    fn capabilities(&self) -> KindCapabilities {
        caps(false)
    }

    async fn build(&self, config: crate::HttpFilesConfig) -> Result<Connector> {
        let c = crate::ObjectStoreConnector::http(&config)?;
        Ok(Connector::source(c.source()))
    }
}

/// Register every kind this build includes (features `s3`, `azure`, `gcs`, `http`).
pub fn register(registry: &mut Registry) {
    #[cfg(feature = "s3")]
    registry.register(S3Factory);
    #[cfg(feature = "azure")]
    registry.register(AzureFactory);
    #[cfg(feature = "gcs")]
    registry.register(GcsFactory);
    #[cfg(feature = "http")]
    registry.register(HttpFilesFactory);
    let _ = &registry;
}
