//! Azure Blob Storage against Azurite. Each test uses its own fresh container. A missing peer
//! fails the test with instructions to start it.

mod common;

use std::sync::Arc;

use connector_core::arrow::array::{Int64Array, RecordBatch, StringArray};
use connector_core::arrow::datatypes::DataType;
use connector_core::testkit::{Harness, run_all};
use connector_core::{ErrorKind, ReadRequest, Sink, SinkExt, Source, SourceExt, WriteRequest};
use connector_object_store::{AzureConfig, ObjectStoreConnector};
use futures::TryStreamExt;
use object_store::path::Path;

async fn container(label: &str) -> (AzureConfig, String) {
    let endpoint = common::azurite();
    common::require_peer("Azurite", &endpoint, common::AZURITE_HOW).await;
    let name = common::fresh(label);
    common::create_container(&endpoint, &name).await;
    let mut c = AzureConfig::new(format!("az://{name}/data"));
    c.use_emulator = true;
    c.account = Some("devstoreaccount1".into());
    c.access_key = Some(common::AZURITE_KEY.into());
    c.from_env = false;
    c.retry.max_retries = Some(1);
    (c, name)
}

fn names() -> connector_core::testkit::FreshName {
    let n = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    Arc::new(move |label: &str| {
        let i = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("{label}_{i}")
    })
}

fn bad_key() -> String {
    // A valid base64 key of the right length that is not the account's.
    "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQQ=="
        .to_owned()
}

#[tokio::test]
async fn azurite_conformance_parquet() {
    let (mut c, _) = container("conf-parquet").await;
    c.layout.format = Some("parquet".into());
    let conn = ObjectStoreConnector::azure(&c).expect("connector");
    let mut bad = c.clone();
    bad.access_key = Some(bad_key().into());
    let bad = ObjectStoreConnector::azure(&bad).expect("connector");
    let types = connector_core::testkit::all_types()
        .into_iter()
        .filter(|t| !matches!(t, DataType::Interval(_) | DataType::Duration(_)))
        .collect();
    let h = Harness::new(Arc::new(conn.source()), Arc::new(conn.sink()), names())
        .with_types(types)
        .with_bad_credentials(Arc::new(bad.source()));
    println!("{:#?}", run_all(&h).await);
}

#[tokio::test]
async fn azurite_conformance_csv() {
    let (mut c, _) = container("conf-csv").await;
    c.layout.format = Some("csv".into());
    let conn = ObjectStoreConnector::azure(&c).expect("connector");
    let h = Harness::new(Arc::new(conn.source()), Arc::new(conn.sink()), names())
        .with_types(vec![
            DataType::Int64,
            DataType::Int32,
            DataType::Float64,
            DataType::Boolean,
            DataType::Date32,
        ])
        .with_cast_on_read(true);
    println!("{:#?}", run_all(&h).await);
}

fn rows(range: std::ops::Range<i64>) -> RecordBatch {
    let ids: Vec<i64> = range.clone().collect();
    let names: Vec<String> = range.map(|i| format!("n{i}")).collect();
    RecordBatch::try_from_iter([
        ("id", Arc::new(Int64Array::from(ids)) as _),
        ("name", Arc::new(StringArray::from(names)) as _),
    ])
    .expect("batch")
}

#[tokio::test]
async fn wrong_key_is_authentication_and_never_printed() {
    let (mut c, name) = container("badkey").await;
    let key = bad_key();
    c.access_key = Some(key.clone().into());
    let conn = ObjectStoreConnector::azure(&c).expect("connector");
    let e = conn.source().check().await.expect_err("check must fail");
    assert_eq!(e.kind(), ErrorKind::Authentication, "{e}");
    assert_eq!(e.connector(), Some("azure"));
    assert!(e.to_string().contains(&format!("az://{name}/data")), "{e}");
    assert!(!e.to_string().contains(&key) && !format!("{e:?}").contains(&key));
    assert!(!format!("{c:?}").contains(&key));
}

#[tokio::test]
async fn missing_container_is_not_found() {
    let (mut c, _) = container("exists").await;
    let missing = common::fresh("missing");
    c.url = format!("az://{missing}/x");
    let conn = ObjectStoreConnector::azure(&c).expect("connector");
    let e = conn.source().check().await.expect_err("check must fail");
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(e.to_string().contains(&format!("az://{missing}")), "{e}");
    let e = conn
        .source()
        .read_all(ReadRequest::dataset("t"))
        .await
        .expect_err("read must fail");
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
}

#[tokio::test]
async fn a_failed_write_leaves_nothing_and_overwrite_publishes_whole() {
    let (mut c, name) = container("atomic").await;
    c.layout.max_rows_per_file = Some(10);
    let conn = ObjectStoreConnector::azure(&c).expect("connector");
    let sink = conn.sink();
    sink.write_batch(WriteRequest::append("t"), rows(0..25))
        .await
        .expect("seed");
    let batches: Vec<RecordBatch> = (0..4).map(|i| rows(i * 10..(i + 1) * 10)).collect();
    let e = sink
        .write(
            WriteRequest::overwrite("t"),
            common::failing_stream(batches[0].schema(), batches),
        )
        .await
        .expect_err("stream fails");
    assert_eq!(e.kind(), ErrorKind::Io);
    let got = conn
        .source()
        .read_batch(ReadRequest::dataset("t"))
        .await
        .expect("read");
    assert_eq!(
        got.num_rows(),
        25,
        "a failed overwrite must leave the old rows"
    );
    // Nothing left in staging either.
    let all: Vec<String> = conn
        .store()
        .list(Some(&Path::from("data/t")))
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .expect("list");
    assert!(all.iter().all(|k| !k.contains("_temporary")), "{all:?}");
    let r = sink
        .write_batch(WriteRequest::overwrite("t"), rows(100..105))
        .await
        .expect("overwrite");
    assert!(
        r.outputs[0].starts_with(&format!("az://{name}/data/t/part-")),
        "{:?}",
        r.outputs
    );
    let got = conn
        .source()
        .read_batch(ReadRequest::dataset("t"))
        .await
        .expect("read");
    assert_eq!(got.num_rows(), 5);
}

#[tokio::test]
async fn connection_string_and_sas_configs_build() {
    // Build only (no request): the connection string's account and key are used.
    let c: AzureConfig = serde_json::from_value(serde_json::json!({
        "url": "az://c/p",
        "connection_string": format!(
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={};BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;",
            common::AZURITE_KEY
        ),
        "from_env": false
    }))
    .expect("config");
    ObjectStoreConnector::azure(&c).expect("connection string builds");
    let c: AzureConfig = serde_json::from_value(serde_json::json!({
        "url": "https://acct.blob.core.windows.net/c/p",
        "sas_token": "?sv=2022-11-02&ss=b&srt=co&sp=rl&se=2030-01-01T00:00:00Z&sig=abc%3D",
        "from_env": false
    }))
    .expect("config");
    let conn = ObjectStoreConnector::azure(&c).expect("sas builds");
    assert_eq!(conn.url().account.as_deref(), Some("acct"));
    assert!(!format!("{conn:?}").contains("sig=abc"));
}
