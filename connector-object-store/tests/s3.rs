//! S3 against `SeaweedFS` (a real S3 server that checks `SigV4`) and moto. Each test uses its own
//! fresh bucket. A missing peer fails the test with instructions to start it.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{CountingStore, Counts};
use connector_core::arrow::array::{Int64Array, RecordBatch, StringArray};
use connector_core::arrow::datatypes::{DataType, SchemaRef};
use connector_core::testkit::{Harness, run_all};
use connector_core::{
    CmpOp, ErrorKind, Expr, ReadRequest, Sink, SinkExt, Source, SourceExt, WriteRequest,
};
use connector_object_store::{ObjectStoreConnector, ObjectUrl, S3Config};
use object_store::ObjectStoreExt;
use object_store::path::Path;

async fn seaweed_bucket(label: &str) -> (S3Config, String) {
    let (endpoint, key, secret) = common::seaweed();
    common::require_peer("SeaweedFS", &endpoint, common::SEAWEED_HOW).await;
    let bucket = common::fresh(label);
    common::create_bucket(&endpoint, &key, &secret, &bucket).await;
    let mut c = S3Config::new(format!("s3://{bucket}/data"));
    c.endpoint = Some(endpoint);
    c.access_key_id = Some(key.into());
    c.secret_access_key = Some(secret.into());
    c.from_env = false;
    c.retry.max_retries = Some(1);
    (c, bucket)
}

async fn moto_bucket(label: &str) -> (S3Config, String) {
    let endpoint = common::moto();
    common::require_peer("moto", &endpoint, common::MOTO_HOW).await;
    let bucket = common::fresh(label);
    common::create_bucket(&endpoint, "moto", "moto", &bucket).await;
    let mut c = S3Config::new(format!("s3://{bucket}"));
    c.endpoint = Some(endpoint);
    c.access_key_id = Some("moto".into());
    c.secret_access_key = Some("moto".into());
    c.from_env = false;
    c.retry.max_retries = Some(1);
    (c, bucket)
}

fn with_format(mut c: S3Config, format: &str) -> S3Config {
    c.layout.format = Some(format.to_owned());
    c
}

fn names() -> connector_core::testkit::FreshName {
    let n = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    Arc::new(move |label: &str| {
        let i = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("{label}_{i}")
    })
}

fn types_for(format: &str) -> Vec<DataType> {
    match format {
        "parquet" => connector_core::testkit::all_types()
            .into_iter()
            .filter(|t| !matches!(t, DataType::Interval(_) | DataType::Duration(_)))
            .collect(),
        // CSV cannot tell an empty string from NULL: strings are left out of the matrix.
        _ => vec![
            DataType::Int64,
            DataType::Int32,
            DataType::Float64,
            DataType::Boolean,
            DataType::Date32,
        ],
    }
}

async fn drop_seaweed(bucket: &str) {
    let (endpoint, key, secret) = common::seaweed();
    common::drop_bucket(&endpoint, &key, &secret, bucket).await;
}

async fn conformance(config: S3Config, format: &str) {
    let config = with_format(config, format);
    let c = ObjectStoreConnector::s3(&config).expect("connector");
    let mut bad_cfg = config.clone();
    bad_cfg.secret_access_key = Some("definitely-wrong".into());
    let bad = ObjectStoreConnector::s3(&bad_cfg).expect("connector");
    let h = Harness::new(Arc::new(c.source()), Arc::new(c.sink()), names())
        .with_types(types_for(format))
        .with_cast_on_read(format != "parquet")
        .with_bad_credentials(Arc::new(bad.source()));
    let report = run_all(&h).await;
    println!("{format}: {report:#?}");
}

#[tokio::test]
async fn seaweedfs_conformance_csv() {
    let (c, bucket) = seaweed_bucket("conf-csv").await;
    conformance(c, "csv").await;
    drop_seaweed(&bucket).await;
}

#[tokio::test]
async fn seaweedfs_conformance_parquet() {
    let (c, bucket) = seaweed_bucket("conf-parquet").await;
    conformance(c, "parquet").await;
    drop_seaweed(&bucket).await;
}

#[tokio::test]
async fn moto_conformance_parquet() {
    let (c, _) = moto_bucket("moto-parquet").await;
    // moto checks no signatures: the bad-credentials case cannot fail there.
    let c = with_format(c, "parquet");
    let conn = ObjectStoreConnector::s3(&c).expect("connector");
    let h = Harness::new(Arc::new(conn.source()), Arc::new(conn.sink()), names())
        .with_types(types_for("parquet"));
    println!("{:#?}", run_all(&h).await);
}

#[tokio::test]
async fn moto_conformance_csv() {
    let (c, _) = moto_bucket("moto-csv").await;
    let c = with_format(c, "csv");
    let conn = ObjectStoreConnector::s3(&c).expect("connector");
    let h = Harness::new(Arc::new(conn.source()), Arc::new(conn.sink()), names())
        .with_types(types_for("csv"))
        .with_cast_on_read(true);
    println!("{:#?}", run_all(&h).await);
}

fn rows(range: std::ops::Range<i64>) -> RecordBatch {
    let ids: Vec<i64> = range.clone().collect();
    let years: Vec<i64> = range.clone().map(|i| 2022 + i % 3).collect();
    let months: Vec<String> = range.clone().map(|i| format!("{:02}", 1 + i % 2)).collect();
    let names: Vec<String> = range
        .map(|i| format!("name-{i}-{}", "x".repeat(20)))
        .collect();
    RecordBatch::try_from_iter([
        ("id", Arc::new(Int64Array::from(ids)) as _),
        ("year", Arc::new(Int64Array::from(years)) as _),
        ("month", Arc::new(StringArray::from(months)) as _),
        ("name", Arc::new(StringArray::from(names)) as _),
    ])
    .expect("batch")
}

fn counting(config: &S3Config) -> (ObjectStoreConnector, Arc<Counts>) {
    let (store, url) = config.build_store().expect("store");
    let counts = Arc::new(Counts::default());
    let store = Arc::new(CountingStore {
        inner: store,
        counts: counts.clone(),
    });
    let c = ObjectStoreConnector::new(
        store,
        url,
        ObjectStoreConnector::default_formats(),
        config.layout.clone(),
    )
    .expect("connector");
    (c, counts)
}

#[tokio::test]
async fn wrong_secret_is_authentication_naming_the_url() {
    let (mut c, bucket) = seaweed_bucket("badsecret").await;
    c.secret_access_key = Some("wrong-secret-value".into());
    let conn = ObjectStoreConnector::s3(&c).expect("connector");
    let e = conn.source().check().await.expect_err("check must fail");
    assert_eq!(e.kind(), ErrorKind::Authentication, "{e}");
    assert_eq!(e.connector(), Some("s3"));
    let s = e.to_string();
    assert!(s.contains(&format!("s3://{bucket}/data")), "{s}");
    assert!(!s.contains("wrong-secret-value") && !format!("{e:?}").contains("wrong-secret-value"));
    let e = conn
        .source()
        .read_all(ReadRequest::dataset("x"))
        .await
        .expect_err("read must fail");
    assert_eq!(e.kind(), ErrorKind::Authentication, "{e}");
    let mut c2 = c.clone();
    c2.access_key_id = Some("no-such-key-id".into());
    let e = ObjectStoreConnector::s3(&c2)
        .expect("connector")
        .sink()
        .check()
        .await
        .expect_err("unknown key id");
    assert_eq!(e.kind(), ErrorKind::Authentication, "{e}");
    drop_seaweed(&bucket).await;
}

#[tokio::test]
async fn missing_bucket_is_not_found() {
    let (seaweed, seaweed_name) = seaweed_bucket("nobucket").await;
    for c in [seaweed, moto_bucket("nobucket").await.0] {
        let mut c = c;
        let missing = common::fresh("missing");
        c.url = format!("s3://{missing}/x");
        let conn = ObjectStoreConnector::s3(&c).expect("connector");
        let e = conn.source().check().await.expect_err("check must fail");
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
        assert!(e.to_string().contains(&format!("s3://{missing}")), "{e}");
        let e = conn
            .source()
            .read_all(ReadRequest::dataset("a.parquet"))
            .await
            .expect_err("read must fail");
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
        let e = conn
            .sink()
            .write_batch(WriteRequest::append("t"), rows(0..3))
            .await
            .expect_err("write must fail");
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    }
    // Only its configuration was used; SeaweedFS keeps volumes for every bucket left behind.
    drop_seaweed(&seaweed_name).await;
}

fn parquet_bytes(batch: &RecordBatch, row_group: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let props = parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_row_count(Some(row_group))
        .build();
    let mut w = parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), Some(props))
        .expect("writer");
    w.write(batch).expect("write");
    w.close().expect("close");
    out
}

#[tokio::test]
async fn truncated_parquet_is_a_decode_error_naming_the_object() {
    let (c, bucket) = seaweed_bucket("truncated").await;
    let conn = ObjectStoreConnector::s3(&c).expect("connector");
    let full = parquet_bytes(&rows(0..1000), 1000);
    for (key, bytes) in [
        ("cut/a.parquet", full[..full.len() / 2].to_vec()),
        ("tail/a.parquet", full[..full.len() - 3].to_vec()),
    ] {
        conn.store()
            .put(&Path::from(format!("data/{key}")), bytes.into())
            .await
            .expect("put");
        let e = conn
            .source()
            .read_all(ReadRequest::dataset(key))
            .await
            .expect_err("a truncated object must not decode");
        assert_eq!(e.kind(), ErrorKind::Decode, "{e}");
        let url = format!("s3://{bucket}/data/{key}");
        assert!(e.to_string().contains(&url), "{e} should name {url}");
        assert_eq!(e.connector(), Some("s3"), "{e}");
    }
    drop_seaweed(&bucket).await;
}

async fn visible(conn: &ObjectStoreConnector, prefix: &str) -> Vec<String> {
    use futures::TryStreamExt;
    let mut v: Vec<String> = conn
        .store()
        .list(Some(&Path::from(prefix)))
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .expect("list");
    v.sort();
    v
}

#[tokio::test]
async fn a_failed_write_leaves_the_target_unchanged() {
    let (mut c, bucket) = seaweed_bucket("failwrite").await;
    c.layout.max_rows_per_file = Some(100);
    let conn = ObjectStoreConnector::s3(&c).expect("connector");
    let sink = conn.sink();
    let batches: Vec<RecordBatch> = (0..5).map(|i| rows(i * 100..(i + 1) * 100)).collect();
    let schema = batches[0].schema();
    // New target: nothing at all may appear.
    let e = sink
        .write(
            WriteRequest::append("t"),
            common::failing_stream(schema.clone(), batches.clone()),
        )
        .await
        .expect_err("the stream fails");
    assert_eq!(e.kind(), ErrorKind::Io, "{e}");
    assert_eq!(visible(&conn, "data/t").await, Vec::<String>::new());
    // Existing target, overwrite: the old rows stay.
    sink.write_batch(WriteRequest::append("u"), rows(0..10))
        .await
        .expect("seed");
    let before = visible(&conn, "data/u").await;
    sink.write(
        WriteRequest::overwrite("u"),
        common::failing_stream(schema, batches),
    )
    .await
    .expect_err("the stream fails");
    assert_eq!(visible(&conn, "data/u").await, before);
    let got = conn
        .source()
        .read_batch(ReadRequest::dataset("u"))
        .await
        .expect("read");
    assert_eq!(got.num_rows(), 10);
    drop_seaweed(&bucket).await;
}

#[tokio::test]
async fn an_aborted_writer_leaves_no_visible_object() {
    let (mut c, bucket) = seaweed_bucket("abort").await;
    c.layout.max_rows_per_file = Some(2000);
    c.layout.part_size = Some(5 * 1024 * 1024);
    c.layout.format = Some("csv".into());
    let (conn, counts) = counting(&c);
    let sink = conn.sink();
    // ~20 MB of CSV: several completed staged objects and a multipart upload in flight.
    let batches: Vec<RecordBatch> = (0..100).map(|i| rows(i * 2000..(i + 1) * 2000)).collect();
    let schema = batches[0].schema();
    let task = tokio::spawn(async move {
        sink.write(
            WriteRequest::append("t"),
            common::hanging_stream(schema, batches),
        )
        .await
    });
    // Wait until objects were put, then kill the writer.
    for _ in 0..200 {
        if counts.put.load(std::sync::atomic::Ordering::Relaxed) >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        counts.put.load(std::sync::atomic::Ordering::Relaxed) >= 3,
        "the writer uploaded nothing before the abort"
    );
    task.abort();
    let _ = task.await;
    // Staged objects exist, but hidden; readers see nothing.
    let all = visible(&conn, "data/t").await;
    assert!(
        !all.is_empty(),
        "staged objects should remain until cleaned"
    );
    assert!(all.iter().all(|k| k.contains("/_temporary/")), "{all:?}");
    let e = conn
        .source()
        .read_all(ReadRequest::dataset("t"))
        .await
        .expect_err("nothing is visible");
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    drop_seaweed(&bucket).await;
}

#[tokio::test]
async fn hive_partitions_become_columns_and_prune_before_reading() {
    let (mut c, bucket) = seaweed_bucket("hive").await;
    c.layout.partition_by = vec!["year".into(), "month".into()];
    c.layout.format = Some("parquet".into());
    let conn = ObjectStoreConnector::s3(&c).expect("connector");
    let report = conn
        .sink()
        .write_batch(WriteRequest::overwrite("sales"), rows(0..600))
        .await
        .expect("write");
    assert_eq!(report.rows, 600);
    assert_eq!(report.outputs.len(), 6, "{:?}", report.outputs);
    assert!(
        report.outputs.iter().all(
            |o| o.starts_with(&format!("s3://{bucket}/data/sales/year=")) && o.contains("/month=")
        ),
        "{:?}",
        report.outputs
    );
    let mut reader_cfg = c.clone();
    reader_cfg.layout.partition_by.clear();
    reader_cfg.layout.format = None;
    let (reader, counts) = counting(&reader_cfg);
    let req = ReadRequest::dataset("sales")
        .with_filter(Expr::eq("year", 2023).and(Expr::cmp("month", CmpOp::Eq, 2)))
        .with_projection(["id", "year", "month"]);
    let got = reader.source().read_batch(req).await.expect("read");
    assert_eq!(got.num_rows(), 100);
    let schema = got.schema();
    assert_eq!(
        schema.field_with_name("year").unwrap().data_type(),
        &DataType::Int64
    );
    // "01", "02": every value parses as an integer, so the column is Int64.
    assert_eq!(
        schema.field_with_name("month").unwrap().data_type(),
        &DataType::Int64
    );
    let paths = counts.read_paths();
    assert!(!paths.is_empty());
    assert!(
        paths.iter().all(|p| p.contains("year=2023/month=02/")),
        "objects of other partitions were read: {paths:?}"
    );
    // Discover shows the partition columns.
    let ds = reader.source().discover().await.expect("discover");
    let sales = ds.iter().find(|d| d.name == "sales").expect("sales listed");
    assert!(sales.schema.field_with_name("year").is_ok());
    assert!(sales.schema.field_with_name("name").is_ok());
    drop_seaweed(&bucket).await;
}

#[tokio::test]
async fn parquet_reads_fetch_only_footer_and_needed_columns() {
    let (c, bucket) = seaweed_bucket("ranged").await;
    let (conn, counts) = counting(&c);
    // One wide object: id + a large text column.
    let n = 20_000;
    let batch = RecordBatch::try_from_iter([
        ("id", Arc::new(Int64Array::from_iter_values(0..n)) as _),
        (
            "big",
            Arc::new(StringArray::from_iter_values(
                (0..n).map(|i| format!("{i:>200}")),
            )) as _,
        ),
    ])
    .expect("batch");
    let bytes = parquet_bytes(&batch, 5000);
    let size = bytes.len() as u64;
    conn.store()
        .put(&Path::from("data/wide.parquet"), bytes.into())
        .await
        .expect("put");
    let got = conn
        .source()
        .read_batch(ReadRequest::dataset("wide.parquet").with_projection(["id"]))
        .await
        .expect("read");
    assert_eq!(got.num_rows(), n as usize);
    let fetched = counts.bytes();
    assert!(
        fetched * 4 < size,
        "read {fetched} of {size} bytes for one small column: not ranged"
    );
    assert!(
        counts.gets() >= 2,
        "expected a footer read and column reads"
    );
    // Every column: a row group's column chunks touch, so each row group is one GET (4 row
    // groups, plus at most two footer reads: planning and reading), not one per column chunk.
    let before = counts.gets();
    let all = conn
        .source()
        .read_batch(ReadRequest::dataset("wide.parquet"))
        .await
        .expect("read");
    assert_eq!(all.num_rows(), n as usize);
    let full_gets = counts.gets() - before;
    assert!(
        full_gets <= 4 + 2,
        "{full_gets} GETs for 4 row groups of 2 columns: column chunks were not merged"
    );
    drop_seaweed(&bucket).await;
}

#[tokio::test]
async fn rotation_multipart_and_reads_by_url_and_glob() {
    let (mut c, bucket) = seaweed_bucket("rotate").await;
    c.layout.max_rows_per_file = Some(250);
    c.layout.format = Some("csv".into());
    let conn = ObjectStoreConnector::s3(&c).expect("connector");
    let r = conn
        .sink()
        .write_batch(WriteRequest::append("logs"), rows(0..1000))
        .await
        .expect("write");
    assert_eq!(r.outputs.len(), 4, "{:?}", r.outputs);
    for name in [
        "logs".to_owned(),
        "logs/*.csv".to_owned(),
        format!("s3://{bucket}/data/logs/"),
    ] {
        let parts = conn
            .source()
            .plan(&ReadRequest::dataset(&name), 8)
            .await
            .expect("plan");
        assert_eq!(parts.len(), 4, "{name}: one partition per object");
        let (_, got) = conn
            .source()
            .read_all_partitioned(ReadRequest::dataset(&name), 8)
            .await
            .expect("read");
        assert_eq!(
            got.iter().map(RecordBatch::num_rows).sum::<usize>(),
            1000,
            "{name}"
        );
    }
    // A large object goes up in parts (no single PUT).
    let mut big = c.clone();
    big.layout.max_rows_per_file = None;
    big.layout.part_size = Some(5 * 1024 * 1024);
    let (conn, counts) = counting(&big);
    let batches: Vec<RecordBatch> = (0..25)
        .map(|i| rows(i * 10_000..(i + 1) * 10_000))
        .collect();
    let schema: SchemaRef = batches[0].schema();
    let r = conn
        .sink()
        .write_batches(WriteRequest::overwrite("big"), schema, batches)
        .await
        .expect("write");
    assert_eq!(r.outputs.len(), 1);
    let meta = conn
        .store()
        .head(&Path::from(
            r.outputs[0].trim_start_matches(&format!("s3://{bucket}/")),
        ))
        .await
        .expect("head");
    assert!(
        meta.size > 10 * 1024 * 1024,
        "object of {} bytes",
        meta.size
    );
    assert_eq!(
        counts.put.load(std::sync::atomic::Ordering::Relaxed),
        0,
        "a large object must be uploaded as multipart, not one PUT"
    );
    drop_seaweed(&bucket).await;
}

#[tokio::test]
async fn registry_builds_s3_from_config_text() {
    let (endpoint, key, secret) = common::seaweed();
    common::require_peer("SeaweedFS", &endpoint, common::SEAWEED_HOW).await;
    let bucket = common::fresh("registry");
    common::create_bucket(&endpoint, &key, &secret, &bucket).await;
    let mut r = connector_core::registry::Registry::with_core();
    connector_object_store::register(&mut r);
    let cfg = serde_json::json!({
        "type": "s3",
        "url": format!("s3://{bucket}/p"),
        "endpoint": endpoint,
        "access_key_id": "${OS_TEST_KEY}",
        "secret_access_key": "${OS_TEST_SECRET}",
        "from_env": false,
        "retry": {"max_retries": 2, "retry_timeout_ms": 5000},
        "client": {"timeout_ms": 10000},
        "layout": {"format": "parquet"}
    });
    let conn = r
        .build_value_with(cfg, &|k| match k {
            "OS_TEST_KEY" => Some(key.clone()),
            "OS_TEST_SECRET" => Some(secret.clone()),
            _ => None,
        })
        .await
        .expect("build");
    conn.check().await.expect("check");
    let sink = conn.as_sink().expect("sink");
    sink.write_batch(WriteRequest::append("t"), rows(0..5))
        .await
        .expect("write");
    let got = conn
        .as_source()
        .expect("source")
        .read_batch(ReadRequest::dataset("t"))
        .await
        .expect("read");
    assert_eq!(got.num_rows(), 5);
    assert_eq!(
        ObjectUrl::parse(&format!("s3://{bucket}/p"))
            .expect("url")
            .bucket,
        bucket
    );
    drop_seaweed(&bucket).await;
}
