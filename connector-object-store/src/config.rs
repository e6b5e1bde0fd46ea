//! Typed configuration of every store, with credentials held as [`Secret`]s, and the code that
//! turns it into an `Arc<dyn ObjectStore>`.
//!
//! Credentials come from the config or, when `from_env` is true (the default), from the
//! provider's default chain as `object_store`'s builders read it: `AWS_*` variables, web identity
//! and instance metadata for S3; `AZURE_*` variables, workload identity and managed identity for
//! Azure; `GOOGLE_*` variables, application default credentials and the metadata server for GCS.
//! Values given in the config win over the environment.

#[cfg(any(feature = "s3", feature = "azure", feature = "gcs", feature = "http"))]
use std::sync::Arc;
#[cfg(any(feature = "s3", feature = "azure", feature = "gcs", feature = "http"))]
use std::time::Duration;

use connector_core::{Error, Result, Secret};
#[cfg(any(feature = "s3", feature = "azure", feature = "gcs", feature = "http"))]
use object_store::ObjectStore;
use serde::Deserialize;

use crate::location::{ObjectUrl, StoreKind};

/// HTTP client settings shared by every store (`object_store`'s `ClientOptions`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientSettings {
    /// Timeout of one whole request, in milliseconds (`object_store`'s default: 30 s).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Timeout of connecting, in milliseconds (default: 5 s).
    #[serde(default)]
    pub connect_timeout_ms: Option<u64>,
    /// Allow plain `http://` endpoints. Set automatically when the endpoint is `http://`.
    #[serde(default)]
    pub allow_http: bool,
    /// Accept invalid TLS certificates (self-signed test servers only).
    #[serde(default)]
    pub allow_invalid_certificates: bool,
    /// Send requests through this proxy.
    #[serde(default)]
    pub proxy_url: Option<String>,
}

/// `object_store`'s retry policy: it retries 5xx answers, connection errors and timeouts of
/// idempotent requests with exponential backoff. A `connector_core::layers::RetryLayer` above
/// retries whole calls on top of this; keep one of the two small.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetrySettings {
    /// How many times one request is retried (default 10; 0 disables retries).
    #[serde(default)]
    pub max_retries: Option<usize>,
    /// Stop retrying a request after this many milliseconds (default 180 000).
    #[serde(default)]
    pub retry_timeout_ms: Option<u64>,
    /// First backoff in milliseconds (default 100).
    #[serde(default)]
    pub init_backoff_ms: Option<u64>,
    /// Largest backoff in milliseconds (default 15 000).
    #[serde(default)]
    pub max_backoff_ms: Option<u64>,
    /// Backoff multiplier (default 2).
    #[serde(default)]
    pub backoff_base: Option<f64>,
}

#[cfg(any(feature = "s3", feature = "azure", feature = "gcs", feature = "http"))]
impl RetrySettings {
    fn to_object_store(&self) -> object_store::RetryConfig {
        let mut r = object_store::RetryConfig::default();
        if let Some(n) = self.max_retries {
            r.max_retries = n;
        }
        if let Some(ms) = self.retry_timeout_ms {
            r.retry_timeout = Duration::from_millis(ms);
        }
        if let Some(ms) = self.init_backoff_ms {
            r.backoff.init_backoff = Duration::from_millis(ms);
        }
        if let Some(ms) = self.max_backoff_ms {
            r.backoff.max_backoff = Duration::from_millis(ms);
        }
        if let Some(b) = self.backoff_base {
            r.backoff.base = b;
        }
        r
    }
}

#[cfg(any(feature = "s3", feature = "azure", feature = "gcs", feature = "http"))]
impl ClientSettings {
    fn to_object_store(&self, endpoint: Option<&str>) -> object_store::ClientOptions {
        let mut c = object_store::ClientOptions::new();
        if let Some(ms) = self.timeout_ms {
            c = c.with_timeout(Duration::from_millis(ms));
        }
        if let Some(ms) = self.connect_timeout_ms {
            c = c.with_connect_timeout(Duration::from_millis(ms));
        }
        let http_endpoint = endpoint.is_some_and(|e| e.starts_with("http://"));
        c = c.with_allow_http(self.allow_http || http_endpoint);
        if self.allow_invalid_certificates {
            c = c.with_allow_invalid_certificates(true);
        }
        if let Some(p) = &self.proxy_url {
            c = c.with_proxy_url(p);
        }
        c
    }
}

/// How datasets are laid out under the location: format, hive partitions, file rotation.
#[derive(Debug, Clone, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LayoutConfig {
    /// File format by name (`parquet`, `csv`, `json`, …). Reads default to the format claiming
    /// each object's extension; writes default to `parquet`.
    #[serde(default)]
    pub format: Option<String>,
    /// Turn `key=value` path segments into columns and prune objects by filters on them.
    #[serde(default = "yes")]
    pub hive_partitioning: bool,
    /// Columns to partition written objects by (`year=2024/month=1/part-….parquet`).
    #[serde(default)]
    pub partition_by: Vec<String>,
    /// Start a new object after this many rows.
    #[serde(default)]
    pub max_rows_per_file: Option<u64>,
    /// Start a new object after about this many encoded bytes (default 1 GiB; S3 server-side
    /// copy, used to publish, is limited to 5 GiB per object).
    #[serde(default)]
    pub max_bytes_per_file: Option<u64>,
    /// Bytes per multipart-upload part (default 8 MiB; at least 5 MiB, what S3 needs).
    #[serde(default)]
    pub part_size: Option<usize>,
    /// Parts uploaded at the same time per object (default 4).
    #[serde(default)]
    pub upload_concurrency: Option<usize>,
}

fn yes() -> bool {
    true
}

impl Default for LayoutConfig {
    fn default() -> Self {
        Self {
            format: None,
            hive_partitioning: true,
            partition_by: Vec::new(),
            max_rows_per_file: None,
            max_bytes_per_file: None,
            part_size: None,
            upload_concurrency: None,
        }
    }
}

/// Config of the `s3` kind: Amazon S3 and S3-compatible stores (`MinIO`, `SeaweedFS`, R2).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// Root location, e.g. `s3://bucket/prefix/` or `s3://bucket/prefix/*.parquet`.
    pub url: String,
    /// Region (default from the environment, else `us-east-1`).
    #[serde(default)]
    pub region: Option<String>,
    /// Endpoint of an S3-compatible store, e.g. `http://127.0.0.1:8333`.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Access key id.
    #[serde(default)]
    pub access_key_id: Option<Secret>,
    /// Secret access key.
    #[serde(default)]
    pub secret_access_key: Option<Secret>,
    /// Session token of temporary credentials.
    #[serde(default)]
    pub session_token: Option<Secret>,
    /// Address buckets as `bucket.endpoint` (AWS style) instead of `endpoint/bucket` (path style,
    /// what most S3-compatible stores need). Default false.
    #[serde(default)]
    pub virtual_hosted_style_request: bool,
    /// Send unsigned requests (public buckets).
    #[serde(default)]
    pub skip_signature: bool,
    /// Read missing settings from the environment and the default credential chain (default true).
    #[serde(default = "yes")]
    pub from_env: bool,
    /// HTTP client settings.
    #[serde(default)]
    pub client: ClientSettings,
    /// Retry policy of each request.
    #[serde(default)]
    pub retry: RetrySettings,
    /// Dataset layout.
    #[serde(default)]
    pub layout: LayoutConfig,
}

/// Config of the `azure` kind: Azure Blob Storage (and ADLS Gen2 through the blob endpoint).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AzureConfig {
    /// Root location: `az://container/prefix`, `abfss://container@account.dfs.core.windows.net/prefix`
    /// or `https://account.blob.core.windows.net/container/prefix`.
    pub url: String,
    /// Storage account (also taken from the URL or the connection string).
    #[serde(default)]
    pub account: Option<String>,
    /// Shared account key.
    #[serde(default)]
    pub access_key: Option<Secret>,
    /// SAS token (`sv=…&sig=…`, with or without a leading `?`).
    #[serde(default)]
    pub sas_token: Option<Secret>,
    /// Connection string (`AccountName=…;AccountKey=…;BlobEndpoint=…` or `SharedAccessSignature=…`).
    #[serde(default)]
    pub connection_string: Option<Secret>,
    /// A bearer token (OAuth) used as is.
    #[serde(default)]
    pub bearer_token: Option<Secret>,
    /// Service principal: client id.
    #[serde(default)]
    pub client_id: Option<String>,
    /// Service principal: client secret.
    #[serde(default)]
    pub client_secret: Option<Secret>,
    /// Service principal: tenant id.
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// Blob endpoint override, e.g. `https://account.blob.core.windows.net`.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Talk to the Azurite emulator (`devstoreaccount1` and its well-known key unless given).
    /// Its address is `object_store`'s: `AZURITE_BLOB_STORAGE_URL`, default `http://127.0.0.1:10000`.
    #[serde(default)]
    pub use_emulator: bool,
    /// Read missing settings from the environment and the default credential chain (default true).
    #[serde(default = "yes")]
    pub from_env: bool,
    /// HTTP client settings.
    #[serde(default)]
    pub client: ClientSettings,
    /// Retry policy of each request.
    #[serde(default)]
    pub retry: RetrySettings,
    /// Dataset layout.
    #[serde(default)]
    pub layout: LayoutConfig,
}

/// Config of the `gcs` kind: Google Cloud Storage.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GcsConfig {
    /// Root location, e.g. `gs://bucket/prefix/`.
    pub url: String,
    /// Service-account key: the JSON document itself.
    #[serde(default)]
    pub service_account_key: Option<Secret>,
    /// Path of a service-account key file.
    #[serde(default)]
    pub service_account_path: Option<String>,
    /// Path of an application-default-credentials file.
    #[serde(default)]
    pub application_credentials: Option<String>,
    /// Send unsigned requests (public buckets).
    #[serde(default)]
    pub skip_signature: bool,
    /// Read missing settings from the environment and the default credential chain (default true).
    #[serde(default = "yes")]
    pub from_env: bool,
    /// HTTP client settings.
    #[serde(default)]
    pub client: ClientSettings,
    /// Retry policy of each request.
    #[serde(default)]
    pub retry: RetrySettings,
    /// Dataset layout.
    #[serde(default)]
    pub layout: LayoutConfig,
}

/// Config of the `http_files` kind: files served over HTTP(S). Listing needs a `WebDAV` server;
/// single files are read with ranged GETs from any server.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpFilesConfig {
    /// Root location, e.g. `https://example.com/data/`.
    pub url: String,
    /// HTTP client settings.
    #[serde(default)]
    pub client: ClientSettings,
    /// Retry policy of each request.
    #[serde(default)]
    pub retry: RetrySettings,
    /// Dataset layout.
    #[serde(default)]
    pub layout: LayoutConfig,
}

#[cfg(any(feature = "s3", feature = "azure", feature = "gcs", feature = "http"))]
fn build_err(connector: &'static str, url: &ObjectUrl, e: &object_store::Error) -> Error {
    let text = crate::error::redact_query(&e.to_string());
    Error::invalid_config(format!("cannot build the {connector} store: {text}"))
        .with_connector(connector)
        .with_operation("build")
        .with_location(connector_core::Location::url(url.to_string()))
}

fn parse_url(text: &str, expected: StoreKind) -> Result<ObjectUrl> {
    let url = ObjectUrl::parse(text).map_err(|e| e.with_connector(expected.connector()))?;
    if url.kind != expected {
        return Err(Error::invalid_config(format!(
            "location {url} is a {} location, not {}",
            url.kind.connector(),
            expected.connector()
        ))
        .with_connector(expected.connector())
        .with_operation("build"));
    }
    Ok(url)
}

impl S3Config {
    /// A config for `url` with every other setting at its default.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            from_env: true,
            ..Self::default()
        }
    }

    /// The parsed root location.
    pub fn location(&self) -> Result<ObjectUrl> {
        parse_url(&self.url, StoreKind::S3)
    }

    /// Build the store.
    #[cfg(feature = "s3")]
    pub fn build_store(&self) -> Result<(Arc<dyn ObjectStore>, ObjectUrl)> {
        use object_store::aws::AmazonS3Builder;
        let url = self.location()?;
        let mut b = if self.from_env {
            AmazonS3Builder::from_env()
        } else {
            AmazonS3Builder::new()
        };
        b = b
            .with_bucket_name(&url.bucket)
            .with_virtual_hosted_style_request(self.virtual_hosted_style_request)
            .with_client_options(self.client.to_object_store(self.endpoint.as_deref()))
            .with_retry(self.retry.to_object_store());
        if let Some(r) = &self.region {
            b = b.with_region(r);
        } else if !self.from_env || std::env::var_os("AWS_REGION").is_none() {
            b = b.with_region("us-east-1");
        }
        if let Some(e) = &self.endpoint {
            b = b.with_endpoint(e);
        }
        if let Some(k) = &self.access_key_id {
            b = b.with_access_key_id(k.expose());
        }
        if let Some(s) = &self.secret_access_key {
            b = b.with_secret_access_key(s.expose());
        }
        if let Some(t) = &self.session_token {
            b = b.with_token(t.expose());
        }
        if self.skip_signature {
            b = b.with_skip_signature(true);
        }
        let store = b.build().map_err(|e| build_err("s3", &url, &e))?;
        Ok((Arc::new(store), url))
    }
}

/// The fields of an Azure connection string that matter here.
#[derive(Default)]
#[cfg_attr(not(feature = "azure"), allow(dead_code))]
struct ConnectionString {
    account: Option<String>,
    key: Option<String>,
    sas: Option<String>,
    blob_endpoint: Option<String>,
}

impl std::fmt::Debug for ConnectionString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionString")
            .field("account", &self.account)
            .field("key", &self.key.as_ref().map(|_| "***"))
            .field("sas", &self.sas.as_ref().map(|_| "***"))
            .field("blob_endpoint", &self.blob_endpoint)
            .finish()
    }
}

#[cfg_attr(not(feature = "azure"), allow(dead_code))]
fn parse_connection_string(s: &str) -> Result<ConnectionString> {
    let mut out = ConnectionString::default();
    for part in s.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((k, v)) = part.split_once('=') else {
            // Never echo the part: it may be a key.
            return Err(Error::invalid_config(
                "the Azure connection string has a part without `=`",
            ));
        };
        match k.to_ascii_lowercase().as_str() {
            "accountname" => out.account = Some(v.to_owned()),
            "accountkey" => out.key = Some(v.to_owned()),
            "sharedaccesssignature" => out.sas = Some(v.to_owned()),
            "blobendpoint" => out.blob_endpoint = Some(v.trim_end_matches('/').to_owned()),
            _ => {}
        }
    }
    Ok(out)
}

impl AzureConfig {
    /// A config for `url` with every other setting at its default.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            from_env: true,
            ..Self::default()
        }
    }

    /// The parsed root location.
    pub fn location(&self) -> Result<ObjectUrl> {
        parse_url(&self.url, StoreKind::Azure)
    }

    /// Build the store.
    #[cfg(feature = "azure")]
    pub fn build_store(&self) -> Result<(Arc<dyn ObjectStore>, ObjectUrl)> {
        use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
        let url = self.location()?;
        let cs = match &self.connection_string {
            Some(s) => parse_connection_string(s.expose())
                .map_err(|e| e.with_connector("azure").with_operation("build"))?,
            None => ConnectionString::default(),
        };
        let mut b = if self.from_env {
            MicrosoftAzureBuilder::from_env()
        } else {
            MicrosoftAzureBuilder::new()
        };
        let endpoint = self.endpoint.clone().or(cs.blob_endpoint);
        b = b
            .with_container_name(&url.bucket)
            .with_client_options(self.client.to_object_store(endpoint.as_deref()))
            .with_retry(self.retry.to_object_store());
        if let Some(a) = self
            .account
            .clone()
            .or(cs.account)
            .or_else(|| url.account.clone())
        {
            b = b.with_account(a);
        }
        if self.use_emulator {
            b = b.with_use_emulator(true);
        } else if let Some(e) = endpoint {
            b = b.with_endpoint(e);
        }
        if let Some(k) = self
            .access_key
            .as_ref()
            .map(Secret::expose)
            .or(cs.key.as_deref())
        {
            b = b.with_access_key(k);
        }
        if let Some(sas) = self
            .sas_token
            .as_ref()
            .map(Secret::expose)
            .or(cs.sas.as_deref())
        {
            b = b.with_config(AzureConfigKey::SasKey, sas.trim_start_matches('?'));
        }
        if let Some(t) = &self.bearer_token {
            b = b.with_bearer_token_authorization(t.expose());
        }
        if let Some(id) = &self.client_id {
            b = b.with_client_id(id);
        }
        if let Some(s) = &self.client_secret {
            b = b.with_client_secret(s.expose());
        }
        if let Some(t) = &self.tenant_id {
            b = b.with_tenant_id(t);
        }
        let store = b.build().map_err(|e| build_err("azure", &url, &e))?;
        Ok((Arc::new(store), url))
    }
}

impl GcsConfig {
    /// A config for `url` with every other setting at its default.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            from_env: true,
            ..Self::default()
        }
    }

    /// The parsed root location.
    pub fn location(&self) -> Result<ObjectUrl> {
        parse_url(&self.url, StoreKind::Gcs)
    }

    /// Build the store.
    #[cfg(feature = "gcs")]
    pub fn build_store(&self) -> Result<(Arc<dyn ObjectStore>, ObjectUrl)> {
        use object_store::gcp::GoogleCloudStorageBuilder;
        let url = self.location()?;
        let mut b = if self.from_env {
            GoogleCloudStorageBuilder::from_env()
        } else {
            GoogleCloudStorageBuilder::new()
        };
        b = b
            .with_bucket_name(&url.bucket)
            .with_client_options(self.client.to_object_store(None))
            .with_retry(self.retry.to_object_store());
        if let Some(k) = &self.service_account_key {
            b = b.with_service_account_key(k.expose());
        }
        if let Some(p) = &self.service_account_path {
            b = b.with_service_account_path(p);
        }
        if let Some(p) = &self.application_credentials {
            b = b.with_application_credentials(p);
        }
        if self.skip_signature {
            b = b.with_skip_signature(true);
        }
        // A bad key's parse error quotes no key material, only its position.
        let store = b.build().map_err(|e| {
            let mut err = build_err("gcs", &url, &e);
            if self.service_account_key.is_some() || self.service_account_path.is_some() {
                err = Error::new(connector_core::ErrorKind::Authentication, err.message())
                    .with_connector("gcs")
                    .with_operation("build")
                    .with_location(connector_core::Location::url(url.to_string()));
            }
            err
        })?;
        Ok((Arc::new(store), url))
    }
}

impl HttpFilesConfig {
    /// A config for `url` with every other setting at its default.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ..Self::default()
        }
    }

    /// The parsed root location.
    pub fn location(&self) -> Result<ObjectUrl> {
        parse_url(&self.url, StoreKind::Http)
    }

    /// Build the store.
    #[cfg(feature = "http")]
    pub fn build_store(&self) -> Result<(Arc<dyn ObjectStore>, ObjectUrl)> {
        use object_store::http::HttpBuilder;
        let url = self.location()?;
        let store = HttpBuilder::new()
            .with_url(&url.bucket)
            .with_client_options(self.client.to_object_store(Some(&url.bucket)))
            .with_retry(self.retry.to_object_store())
            .build()
            .map_err(|e| build_err("http_files", &url, &e))?;
        Ok((Arc::new(store), url))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_string_fields() {
        let cs = parse_connection_string(
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=abc==;BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1/;",
        )
        .unwrap();
        assert_eq!(cs.account.as_deref(), Some("devstoreaccount1"));
        assert_eq!(cs.key.as_deref(), Some("abc=="));
        assert_eq!(
            cs.blob_endpoint.as_deref(),
            Some("http://127.0.0.1:10000/devstoreaccount1")
        );
        let e = parse_connection_string("AccountName=a;SECRETKEYWITHOUTEQUALS").unwrap_err();
        assert!(!e.to_string().contains("SECRETKEY"));
    }

    #[test]
    fn secrets_never_print() {
        let c: AzureConfig = serde_json::from_value(serde_json::json!({
            "url": "az://c/p",
            "access_key": "KEY-AAAA",
            "sas_token": "sv=1&sig=SIG-BBBB",
            "connection_string": "AccountKey=CS-CCCC",
            "client_secret": "CLIENT-DDDD",
        }))
        .unwrap();
        let d = format!("{c:?}");
        for s in ["KEY-AAAA", "SIG-BBBB", "CS-CCCC", "CLIENT-DDDD"] {
            assert!(!d.contains(s), "{d}");
        }
        let s: S3Config = serde_json::from_value(serde_json::json!({
            "url": "s3://b", "access_key_id": "AKIA-EEEE", "secret_access_key": "SECRET-FFFF",
            "session_token": "TOKEN-GGGG"
        }))
        .unwrap();
        let d = format!("{s:?}");
        for x in ["AKIA-EEEE", "SECRET-FFFF", "TOKEN-GGGG"] {
            assert!(!d.contains(x), "{d}");
        }
        let g: GcsConfig = serde_json::from_value(serde_json::json!({
            "url": "gs://b", "service_account_key": "{\"private_key\":\"PK-HHHH\"}"
        }))
        .unwrap();
        assert!(!format!("{g:?}").contains("PK-HHHH"));
    }

    #[test]
    fn wrong_scheme_for_kind() {
        let e = S3Config::new("gs://b/x").location().unwrap_err();
        assert_eq!(e.kind(), connector_core::ErrorKind::InvalidConfig);
        assert!(e.to_string().contains("gcs location"), "{e}");
    }

    #[test]
    #[cfg(feature = "s3")]
    fn retry_settings_map() {
        let r = RetrySettings {
            max_retries: Some(2),
            retry_timeout_ms: Some(1500),
            init_backoff_ms: Some(10),
            max_backoff_ms: Some(20),
            backoff_base: Some(3.0),
        }
        .to_object_store();
        assert_eq!(r.max_retries, 2);
        assert_eq!(r.retry_timeout, Duration::from_millis(1500));
        assert_eq!(r.backoff.init_backoff, Duration::from_millis(10));
        assert_eq!(r.backoff.max_backoff, Duration::from_millis(20));
        assert!((r.backoff.base - 3.0).abs() < f64::EPSILON);
    }
}
