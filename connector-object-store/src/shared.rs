//! State shared by the source and the sink of one location.

use std::fmt;
use std::sync::Arc;

use connector_core::{Error, Location, Result};
use connector_file::compression::{Compression, DecompressedSource};
use connector_file::{ByteSource, FileFormat, FormatRegistry, StoreRoot};
use object_store::ObjectStore;

use crate::config::LayoutConfig;
use crate::location::{ObjectUrl, join_key};

pub(crate) struct Shared {
    /// `s3`, `azure`, `gcs` or `http_files`.
    pub connector: &'static str,
    /// The store and the root prefix (the location's key up to its first glob).
    pub root: StoreRoot,
    /// The location's glob, relative to the root: the dataset `""`.
    pub root_glob: Option<String>,
    /// The location URL.
    pub url: ObjectUrl,
    /// Formats to read and write.
    pub formats: FormatRegistry,
    /// Layout settings.
    pub layout: LayoutConfig,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectStoreConnector")
            .field("connector", &self.connector)
            .field("url", &self.url.to_string())
            .field("formats", &self.formats)
            .field("layout", &self.layout)
            .finish_non_exhaustive()
    }
}

impl Shared {
    pub fn new(
        connector: &'static str,
        store: Arc<dyn ObjectStore>,
        url: ObjectUrl,
        formats: FormatRegistry,
        layout: LayoutConfig,
    ) -> Result<Self> {
        let prefix = url.list_prefix().to_owned();
        let root_glob = url.glob().map(str::to_owned);
        let display = if prefix.is_empty() {
            url.base()
        } else {
            format!("{}/{prefix}", url.base())
        };
        let root = StoreRoot::new(store, &prefix, display).map_err(|e| {
            e.with_connector(connector)
                .with_operation("build")
                .with_location(Location::url(url.to_string()))
        })?;
        if let Some(name) = &layout.format
            && formats.by_name(name).is_none()
        {
            return Err(Error::invalid_config(format!(
                "unknown file format {name:?}; this build has {formats:?}"
            ))
            .with_connector(connector)
            .with_operation("build"));
        }
        Ok(Self {
            connector,
            root,
            root_glob,
            url,
            formats,
            layout,
        })
    }

    /// A dataset name relative to the root: `""` is the location's own glob; a full URL must
    /// be under the location.
    pub fn relative_name(&self, name: &str) -> Result<String> {
        if name.is_empty() {
            return Ok(self.root_glob.clone().unwrap_or_default());
        }
        if name.contains("://") {
            let u = ObjectUrl::parse(name)
                .map_err(|e| e.with_connector(self.connector).with_operation("plan"))?;
            let prefix = self.url.list_prefix();
            let under = (u.kind == self.url.kind && u.bucket == self.url.bucket)
                .then(|| {
                    if prefix.is_empty() {
                        Some(u.key.as_str())
                    } else {
                        u.key
                            .strip_prefix(prefix)
                            .filter(|r| r.is_empty() || r.starts_with('/'))
                    }
                })
                .flatten();
            return under.map(|r| join_key(&[r])).ok_or_else(|| {
                Error::invalid_input(
                    format!("{u} is not under this connector's location {}", self.url),
                    Location::url(u.to_string()),
                )
                .with_connector(self.connector)
                .with_operation("plan")
            });
        }
        Ok(name.trim_matches('/').to_owned())
    }

    /// The format (forced by the config, else by extension) and compression of `key`.
    pub fn format_for(&self, key: &str) -> Option<(Arc<dyn FileFormat>, Compression)> {
        match &self.layout.format {
            Some(name) => self
                .formats
                .by_name(name)
                .map(|f| (f, Compression::from_path(key))),
            None => self.formats.for_path(key),
        }
    }

    /// The bytes of the object at `key` (relative to the root) of known size.
    pub fn bytes(&self, key: &str, size: u64, compression: Compression) -> Arc<dyn ByteSource> {
        // `key` came from a listing under the root, so it parses.
        let path = self
            .root
            .path(key)
            .unwrap_or_else(|_| self.root.prefix().clone());
        let raw: Arc<dyn ByteSource> = Arc::new(self.root.bytes(key, path, Some(size)));
        DecompressedSource::wrap(raw, compression)
    }

    /// Re-label an error with this connector, the operation and the object URL.
    pub fn refine(&self, e: Error, operation: &'static str, url: &str) -> Error {
        crate::error::refine(e, self.connector, operation, url)
    }

    /// List one level under the root: proves the bucket exists and the credentials work.
    pub async fn check(&self) -> Result<()> {
        let prefix = self.root.prefix().clone();
        let p = (!prefix.as_ref().is_empty()).then_some(&prefix);
        self.root
            .store()
            .list_with_delimiter(p)
            .await
            .map(|_| ())
            .map_err(|e| {
                crate::error::map_store_error(&e, self.connector, "check", &self.root.display(""))
            })
    }
}
