//! Object locations by URL: `s3://bucket/prefix/*.parquet`, `az://container/…`,
//! `abfss://container@account.dfs.core.windows.net/…`, `https://account.blob.core.windows.net/container/…`,
//! `gs://bucket/…` and `https://host/…` for plain HTTP files.

use std::fmt;

use connector_core::{Error, Result};
use object_store::path::Path;

pub use connector_file::store::join_key;

/// Which store a location lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoreKind {
    /// Amazon S3 or an S3-compatible store.
    S3,
    /// Azure Blob Storage (or ADLS Gen2 through its blob endpoint).
    Azure,
    /// Google Cloud Storage.
    Gcs,
    /// Files served over HTTP(S).
    Http,
}

impl StoreKind {
    /// The connector kind in the registry and in errors: `s3`, `azure`, `gcs`, `http_files`.
    #[must_use]
    pub fn connector(self) -> &'static str {
        match self {
            Self::S3 => "s3",
            Self::Azure => "azure",
            Self::Gcs => "gcs",
            Self::Http => "http_files",
        }
    }
}

/// A parsed object location: the store, the bucket (container, or `scheme://host` for HTTP),
/// and a key that may end in a glob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectUrl {
    /// The store.
    pub kind: StoreKind,
    /// Bucket or container; for HTTP, `scheme://host[:port]`.
    pub bucket: String,
    /// Azure storage account, when the URL names one.
    pub account: Option<String>,
    /// The key or key pattern, without a leading `/`. May be empty (the whole bucket).
    pub key: String,
}

impl ObjectUrl {
    /// Parse a location URL.
    pub fn parse(text: &str) -> Result<Self> {
        let shown = crate::error::redact_query(text);
        let bad = |why: &str| {
            Error::invalid_config(format!("invalid object location {shown:?}: {why}"))
                .with_operation("parse url")
        };
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| bad("expected scheme://bucket/key, e.g. s3://bucket/data/*.parquet"))?;
        let (authority, key) = rest.split_once('/').unwrap_or((rest, ""));
        if authority.is_empty() {
            return Err(bad("the bucket (or container, or host) is missing"));
        }
        if rest.split_once('?').is_some_and(|(_, q)| q.contains('=')) {
            return Err(bad(
                "query strings are not accepted in locations; put SAS tokens and keys in the config",
            ));
        }
        let key = key.trim_start_matches('/').to_owned();
        let scheme = scheme.to_ascii_lowercase();
        let (kind, bucket, account, key) = match scheme.as_str() {
            "s3" | "s3a" => (StoreKind::S3, authority.to_owned(), None, key),
            "gs" | "gcs" => (StoreKind::Gcs, authority.to_owned(), None, key),
            "az" | "azure" | "adl" => (StoreKind::Azure, authority.to_owned(), None, key),
            "abfs" | "abfss" | "wasb" | "wasbs" => {
                // container@account.dfs.core.windows.net
                let (container, host) = authority
                    .split_once('@')
                    .ok_or_else(|| bad("expected container@account.dfs.core.windows.net"))?;
                let account = host.split('.').next().unwrap_or_default().to_owned();
                (StoreKind::Azure, container.to_owned(), Some(account), key)
            }
            "https" | "http" => {
                let host = authority.split(':').next().unwrap_or_default();
                if let Some(account) = host
                    .strip_suffix(".blob.core.windows.net")
                    .or_else(|| host.strip_suffix(".dfs.core.windows.net"))
                {
                    let (container, key) = key.split_once('/').unwrap_or((key.as_str(), ""));
                    if container.is_empty() {
                        return Err(bad("the container is missing"));
                    }
                    (
                        StoreKind::Azure,
                        container.to_owned(),
                        Some(account.to_owned()),
                        key.to_owned(),
                    )
                } else if host == "storage.googleapis.com" {
                    let (bucket, key) = key.split_once('/').unwrap_or((key.as_str(), ""));
                    (StoreKind::Gcs, bucket.to_owned(), None, key.to_owned())
                } else if let Some(bucket) = host
                    .strip_suffix(".s3.amazonaws.com")
                    .filter(|b| !b.is_empty())
                {
                    (StoreKind::S3, bucket.to_owned(), None, key)
                } else {
                    (
                        StoreKind::Http,
                        format!("{scheme}://{authority}"),
                        None,
                        key,
                    )
                }
            }
            other => {
                return Err(bad(&format!(
                    "unknown scheme {other:?}; expected s3, az, abfss, gs, http or https"
                )));
            }
        };
        if bucket.is_empty() {
            return Err(bad("the bucket (or container) is missing"));
        }
        Ok(Self {
            kind,
            bucket,
            account,
            key,
        })
    }

    /// The URL of the bucket root, e.g. `s3://bucket`.
    #[must_use]
    pub fn base(&self) -> String {
        match self.kind {
            StoreKind::S3 => format!("s3://{}", self.bucket),
            StoreKind::Gcs => format!("gs://{}", self.bucket),
            StoreKind::Azure => format!("az://{}", self.bucket),
            StoreKind::Http => self.bucket.clone(),
        }
    }

    /// The part of the key before the first segment with a glob character: where to list.
    #[must_use]
    pub fn list_prefix(&self) -> &str {
        split_glob(&self.key).0
    }

    /// The glob part of the key (from the first segment with a glob character), if any.
    #[must_use]
    pub fn glob(&self) -> Option<&str> {
        split_glob(&self.key).1
    }
}

impl fmt::Display for ObjectUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            f.write_str(&self.base())
        } else {
            write!(f, "{}/{}", self.base(), self.key)
        }
    }
}

/// True when `s` holds a glob metacharacter.
#[must_use]
pub fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '[', '{'])
}

/// Split `key` into the part before the first globbed segment and the rest.
#[must_use]
pub fn split_glob(key: &str) -> (&str, Option<&str>) {
    let mut offset = 0;
    for seg in key.split('/') {
        if has_glob(seg) {
            return (key[..offset].trim_end_matches('/'), Some(&key[offset..]));
        }
        offset += seg.len() + 1;
    }
    (key.trim_end_matches('/'), None)
}

/// The `object_store` path of `key` (validated: no `..`, no empty segments).
pub fn to_path(key: &str, url_for_errors: &str) -> Result<Path> {
    Path::parse(key).map_err(|e| {
        Error::invalid_config(format!("invalid object key {key:?}: {e}"))
            .with_location(connector_core::Location::url(url_for_errors))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_scheme() {
        let u = ObjectUrl::parse("s3://bkt/data/year=2024/*.parquet").unwrap();
        assert_eq!(u.kind, StoreKind::S3);
        assert_eq!(u.bucket, "bkt");
        assert_eq!(u.list_prefix(), "data/year=2024");
        assert_eq!(u.glob(), Some("*.parquet"));
        assert_eq!(u.to_string(), "s3://bkt/data/year=2024/*.parquet");

        let u = ObjectUrl::parse("abfss://cont@acct.dfs.core.windows.net/a/b.csv").unwrap();
        assert_eq!(
            (
                u.kind,
                u.bucket.as_str(),
                u.account.as_deref(),
                u.key.as_str()
            ),
            (StoreKind::Azure, "cont", Some("acct"), "a/b.csv")
        );
        let u = ObjectUrl::parse("https://acct.blob.core.windows.net/cont/a/b.csv").unwrap();
        assert_eq!(
            (
                u.kind,
                u.bucket.as_str(),
                u.account.as_deref(),
                u.key.as_str()
            ),
            (StoreKind::Azure, "cont", Some("acct"), "a/b.csv")
        );
        let u = ObjectUrl::parse("az://cont").unwrap();
        assert_eq!((u.bucket.as_str(), u.key.as_str()), ("cont", ""));
        assert_eq!(u.to_string(), "az://cont");

        let u = ObjectUrl::parse("gs://g/x/**/*.json").unwrap();
        assert_eq!(
            (u.kind, u.list_prefix(), u.glob()),
            (StoreKind::Gcs, "x", Some("**/*.json"))
        );
        let u = ObjectUrl::parse("https://example.com:8080/files/a.csv").unwrap();
        assert_eq!(
            (u.kind, u.bucket.as_str(), u.key.as_str()),
            (StoreKind::Http, "https://example.com:8080", "files/a.csv")
        );
        assert_eq!(u.to_string(), "https://example.com:8080/files/a.csv");
        let u = ObjectUrl::parse("https://bkt.s3.amazonaws.com/k").unwrap();
        assert_eq!((u.kind, u.bucket.as_str()), (StoreKind::S3, "bkt"));
    }

    #[test]
    fn rejects_bad_locations() {
        for bad in [
            "bucket/key",
            "s3:///key",
            "ftp://h/x",
            "abfss://noat/x",
            "https://a.blob.core.windows.net/",
            "https://a.blob.core.windows.net/c/k?sig=SECRET",
        ] {
            let e = ObjectUrl::parse(bad).unwrap_err();
            assert_eq!(e.kind(), connector_core::ErrorKind::InvalidConfig, "{bad}");
            assert!(!e.to_string().contains("SECRET"), "{e}");
        }
    }

    #[test]
    fn glob_split_and_join() {
        assert_eq!(split_glob("a/b/c.parquet"), ("a/b/c.parquet", None));
        assert_eq!(split_glob("a/*/c"), ("a", Some("*/c")));
        assert_eq!(split_glob("*.csv"), ("", Some("*.csv")));
        assert_eq!(join_key(&["a/", "", "/b", "c"]), "a/b/c");
    }
}
