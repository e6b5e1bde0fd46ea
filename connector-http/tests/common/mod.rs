//! Shared test helpers: peer addresses (a missing peer fails the test with how to start it) and
//! an in-process axum server for what the real peers cannot do.

#![allow(dead_code)]

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use connector_core::{ReadRequest, SourceExt};

/// The URL of a peer from `var` (or `default`), after checking that something listens there.
///
/// # Panics
/// If nothing answers, with how to start the peers.
pub fn peer_url(var: &str, default: &str, what: &str) -> String {
    let url = std::env::var(var).unwrap_or_else(|_| default.to_owned());
    let parsed =
        url::Url::parse(&url).unwrap_or_else(|e| panic!("{var}={url:?} is not a URL: {e}"));
    let host = parsed.host_str().unwrap_or("127.0.0.1").to_owned();
    let port = parsed.port_or_known_default().unwrap_or(80);
    let addrs: Vec<SocketAddr> = (host.as_str(), port)
        .to_socket_addrs()
        .map(Iterator::collect)
        .unwrap_or_default();
    let reachable = addrs
        .iter()
        .any(|a| TcpStream::connect_timeout(a, Duration::from_secs(2)).is_ok());
    assert!(
        reachable,
        "{what} is not reachable at {url} ({var}). Start the test peers with `cargo xtask peers up` \
         (or run everything with `cargo xtask test`), then run the tests again."
    );
    url
}

/// json-server 0.17 (`CONNECTOR_TEST_REST_URL`).
pub fn rest_url() -> String {
    peer_url(
        "CONNECTOR_TEST_REST_URL",
        "http://127.0.0.1:3001",
        "json-server",
    )
}

/// json-graphql-server (`CONNECTOR_TEST_GRAPHQL_URL`).
pub fn graphql_url() -> String {
    peer_url(
        "CONNECTOR_TEST_GRAPHQL_URL",
        "http://127.0.0.1:3002/",
        "json-graphql-server",
    )
}

/// Serve `router` on a free loopback port for the rest of the test; returns `http://127.0.0.1:<port>`.
pub async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let addr = listener.local_addr().expect("local address");
    tokio::spawn(async move {
        axum::serve(listener, router).await.expect("test server");
    });
    format!("http://{addr}")
}

/// A REST connector from a JSON config.
pub fn rest(config: serde_json::Value) -> connector_http::Rest {
    let c: connector_http::RestConfig = serde_json::from_value(config).expect("valid rest config");
    connector_http::Rest::new(c).expect("rest connector builds")
}

/// Read a whole dataset into one batch.
pub async fn read(
    source: &dyn connector_core::Source,
    request: ReadRequest,
) -> connector_core::Result<arrow::record_batch::RecordBatch> {
    source.read_batch(request).await
}

/// The Int64 column `name` of `batch`.
pub fn ints(batch: &arrow::record_batch::RecordBatch, name: &str) -> Vec<i64> {
    let col = batch
        .column_by_name(name)
        .unwrap_or_else(|| panic!("no column {name} in {:?}", batch.schema()));
    let col = arrow::compute::cast(col, &arrow::datatypes::DataType::Int64)
        .unwrap_or_else(|e| panic!("column {name} is not integer-like: {e}"));
    let a = col
        .as_any()
        .downcast_ref::<arrow::array::Int64Array>()
        .expect("Int64 after cast");
    a.iter().map(|v| v.expect("no nulls")).collect()
}

/// The string column `name` of `batch` (nulls as `None`).
pub fn strings(batch: &arrow::record_batch::RecordBatch, name: &str) -> Vec<Option<String>> {
    let col = batch
        .column_by_name(name)
        .unwrap_or_else(|| panic!("no column {name} in {:?}", batch.schema()));
    let col = arrow::compute::cast(col, &arrow::datatypes::DataType::Utf8)
        .unwrap_or_else(|e| panic!("column {name} cannot be shown as text: {e}"));
    let a = col
        .as_any()
        .downcast_ref::<arrow::array::StringArray>()
        .expect("Utf8 after cast");
    a.iter().map(|v| v.map(str::to_owned)).collect()
}
