//! The file source and sink over a store that is not the local file system (`object_store`'s
//! in-memory store, under a prefix, shown as `mem://…`), as the object-store connectors use them;
//! and the multipart path of large writes.
#![cfg(all(feature = "csv", feature = "parquet"))]

use std::sync::Arc;

use arrow::array::{Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use connector_core::testkit::{Harness, counter_names, run_all};
use connector_core::{
    ErrorKind, ReadRequest, RecordBatchStreamAdapter, Sink, SinkExt, SourceExt, WriteRequest,
};
use connector_file::{
    ByteSource, CsvFormat, FileOptions, FileSink, FileSource, ObjectStoreBytes, ParquetFormat,
    StoreRoot,
};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

fn mem_root(store: &Arc<InMemory>) -> StoreRoot {
    StoreRoot::new(
        store.clone() as Arc<dyn ObjectStore>,
        "bucket/prefix",
        "mem://bucket/prefix",
    )
    .unwrap()
}

#[tokio::test]
async fn parquet_conformance_over_an_in_memory_object_store() {
    let store = Arc::new(InMemory::new());
    let options = FileOptions::default().with_format(Arc::new(ParquetFormat::default()));
    let h = Harness::new(
        Arc::new(FileSource::new(mem_root(&store), options.clone())),
        Arc::new(FileSink::new(mem_root(&store), options)),
        counter_names("t"),
    )
    .with_types(vec![
        DataType::Int32,
        DataType::Utf8,
        DataType::Float64,
        DataType::Date32,
    ]);
    run_all(&h).await;
    // Everything landed under the prefix.
    let outside = store
        .list_with_delimiter(None)
        .await
        .unwrap()
        .common_prefixes;
    assert_eq!(outside, vec![Path::from("bucket")]);
}

#[tokio::test]
async fn csv_conformance_over_an_in_memory_object_store() {
    let store = Arc::new(InMemory::new());
    let options = FileOptions::default().with_format(Arc::new(CsvFormat::default()));
    let h = Harness::new(
        Arc::new(FileSource::new(mem_root(&store), options.clone())),
        Arc::new(FileSink::new(mem_root(&store), options)),
        counter_names("t"),
    )
    .with_types(vec![DataType::Int64, DataType::Float64, DataType::Boolean])
    .with_cast_on_read(true);
    run_all(&h).await;
}

#[tokio::test]
async fn errors_show_the_display_location() {
    let store = Arc::new(InMemory::new());
    store
        .put(
            &Path::from("bucket/prefix/d/a.csv"),
            "id,name\n1,a\n2\n".into(),
        )
        .await
        .unwrap();
    let source = FileSource::new(mem_root(&store), FileOptions::default());
    let e = source
        .read_batch(ReadRequest::dataset("d/a.csv"))
        .await
        .unwrap_err();
    assert_eq!(
        e.location().unwrap().file.as_deref(),
        Some("mem://bucket/prefix/d/a.csv")
    );
    assert_eq!(e.location().unwrap().line, Some(3));
    let e = source
        .read_batch(ReadRequest::dataset("nope"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(e.to_string().contains("mem://bucket/prefix/nope"), "{e}");
    // ObjectStoreBytes on its own: ranged reads and a missing object.
    let bytes = ObjectStoreBytes::new(
        store.clone(),
        Path::from("bucket/prefix/d/a.csv"),
        "mem://bucket/prefix/d/a.csv",
    );
    assert_eq!(bytes.size().await.unwrap(), 14);
    assert_eq!(&bytes.get_range(3..7).await.unwrap()[..], b"name");
    let missing = ObjectStoreBytes::new(store, Path::from("x"), "mem://x");
    assert_eq!(
        missing.size().await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
    ]))
}

fn rows(ids: std::ops::Range<i64>) -> RecordBatch {
    let names: StringArray = ids
        .clone()
        .map(|i| Some(format!("a-longer-name-{i:012}")))
        .collect();
    RecordBatch::try_new(
        schema(),
        vec![Arc::new(Int64Array::from_iter_values(ids)), Arc::new(names)],
    )
    .unwrap()
}

/// More than the 10 MiB upload buffer reaches the store (as a multipart upload) before the
/// stream fails: the upload is aborted and the old file stays, with nothing left beside it.
#[tokio::test]
async fn failed_large_overwrite_aborts_the_multipart_upload() {
    let dir = tempfile::tempdir().unwrap();
    let options = FileOptions::default().with_schema(schema());
    let sink = FileSink::local(dir.path(), options.clone()).unwrap();
    let source = FileSource::local(dir.path(), options).unwrap();
    sink.write_batch(WriteRequest::overwrite("big.csv"), rows(0..10))
        .await
        .unwrap();
    let mut items: Vec<connector_core::Result<RecordBatch>> = (0..8)
        .map(|k| Ok(rows(k * 50_000..(k + 1) * 50_000)))
        .collect();
    items.push(Err(connector_core::Error::new(
        ErrorKind::Connection,
        "upstream broke",
    )));
    let stream = RecordBatchStreamAdapter::boxed(schema(), futures::stream::iter(items));
    let e = sink
        .write(WriteRequest::overwrite("big.csv"), stream)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connection);
    assert_eq!(
        source
            .read_batch(ReadRequest::dataset("big.csv"))
            .await
            .unwrap(),
        rows(0..10)
    );
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["big.csv".to_owned()]);

    // The same write without the failure goes through as a multipart upload.
    let batches: Vec<RecordBatch> = (0..8).map(|k| rows(k * 50_000..(k + 1) * 50_000)).collect();
    let report = sink
        .write_batches(WriteRequest::overwrite("big.csv"), schema(), batches)
        .await
        .unwrap();
    assert_eq!(report.rows, 400_000);
    assert!(std::fs::metadata(dir.path().join("big.csv")).unwrap().len() > 10 * 1024 * 1024);
    let got = source
        .read_batch(
            ReadRequest::dataset("big.csv").with_filter(connector_core::Expr::eq("id", 399_999)),
        )
        .await
        .unwrap();
    assert_eq!(got, rows(399_999..400_000));
}
