//! Dataset layout on the local filesystem: hive partitions (read, prune, write) and staged
//! publishing (hidden `_temporary/` area, atomic overwrite, nothing visible after a failure).
#![cfg(all(feature = "parquet", feature = "csv"))]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, SchemaRef};
use connector_core::stream::RecordBatchStreamAdapter;
use connector_core::{
    CmpOp, Error, ErrorKind, Expr, ReadRequest, SendableRecordBatchStream, Sink, SinkExt, Source,
    SourceExt, WriteRequest,
};
use connector_file::{CsvFormat, FileOptions, FileSink, FileSource, ParquetFormat};

fn rows(range: std::ops::Range<i64>) -> RecordBatch {
    let ids: Vec<i64> = range.clone().collect();
    let years: Vec<i64> = range.clone().map(|i| 2022 + i % 3).collect();
    let months: Vec<String> = range.clone().map(|i| format!("{:02}", 1 + i % 2)).collect();
    let names: Vec<String> = range.map(|i| format!("name-{i}")).collect();
    RecordBatch::try_from_iter([
        ("id", Arc::new(Int64Array::from(ids)) as _),
        ("year", Arc::new(Int64Array::from(years)) as _),
        ("month", Arc::new(StringArray::from(months)) as _),
        ("name", Arc::new(StringArray::from(names)) as _),
    ])
    .unwrap()
}

/// Every file below `dir`, relative to it, sorted.
fn files_below(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.push(
                    p.strip_prefix(root)
                        .unwrap()
                        .to_string_lossy()
                        .replace('\\', "/"),
                );
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn parquet() -> FileOptions {
    FileOptions::default().with_format(Arc::new(ParquetFormat::default()))
}

#[tokio::test]
async fn hive_partitions_are_written_read_as_columns_and_pruned_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let sink = FileSink::local(
        dir.path(),
        parquet()
            .with_partition_by(["year", "month"])
            .with_staged_publish(true),
    )
    .unwrap();
    let report = sink
        .write_batch(WriteRequest::overwrite("sales"), rows(0..600))
        .await
        .unwrap();
    assert_eq!(report.rows, 600);
    assert_eq!(report.outputs.len(), 6, "{:?}", report.outputs);
    let files = files_below(&dir.path().join("sales"));
    assert_eq!(files.len(), 6, "{files:?}");
    assert!(
        files
            .iter()
            .all(|f| f.starts_with("year=") && f.contains("/month=0") && f.ends_with(".parquet")),
        "{files:?}"
    );
    assert!(
        !dir.path().join("sales/_temporary").exists(),
        "the staging area is removed after publishing"
    );

    // Make every file outside year=2023/month=02 undecodable: a read that touched one fails.
    for f in &files {
        if !f.starts_with("year=2023/month=02/") {
            std::fs::write(dir.path().join("sales").join(f), b"not parquet at all").unwrap();
        }
    }
    let source = FileSource::local(
        dir.path(),
        FileOptions::default().with_hive_partitioning(true),
    )
    .unwrap();
    let req = ReadRequest::dataset("sales")
        .with_filter(Expr::eq("year", 2023).and(Expr::cmp("month", CmpOp::Eq, 2)))
        .with_projection(["id", "year", "month"]);
    let parts = source.plan(&req, 8).await.unwrap();
    let (_, got) = source.read_all_partitioned(req, 8).await.unwrap();
    assert!(!parts.is_empty());
    let got: Vec<RecordBatch> = got.into_iter().filter(|b| b.num_rows() > 0).collect();
    assert_eq!(got.iter().map(RecordBatch::num_rows).sum::<usize>(), 100);
    let schema = got[0].schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["id", "year", "month"]);
    assert_eq!(
        schema.field_with_name("year").unwrap().data_type(),
        &DataType::Int64
    );
    // "01", "02": every value parses as an integer.
    assert_eq!(
        schema.field_with_name("month").unwrap().data_type(),
        &DataType::Int64
    );
    for b in &got {
        let ids = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        let years = b.column(1).as_any().downcast_ref::<Int64Array>().unwrap();
        for i in 0..b.num_rows() {
            assert_eq!(years.value(i), 2023);
            assert_eq!(2022 + ids.value(i) % 3, 2023);
            assert_eq!(1 + ids.value(i) % 2, 2);
        }
    }
    // Without the filter the corrupt files are read, and fail.
    let e = source
        .read_all(ReadRequest::dataset("sales"))
        .await
        .expect_err("the other partitions are corrupt");
    assert_eq!(e.kind(), ErrorKind::Decode, "{e}");
    // Only partition columns: row counts survive.
    let got = source
        .read_batch(
            ReadRequest::dataset("sales")
                .with_filter(Expr::eq("year", 2023).and(Expr::eq("month", 2)))
                .with_projection(["year"]),
        )
        .await
        .unwrap();
    assert_eq!(got.num_rows(), 100);
    assert_eq!(got.num_columns(), 1);
}

#[tokio::test]
async fn hive_columns_in_discover_and_without_the_option() {
    let dir = tempfile::tempdir().unwrap();
    let sink = FileSink::local(dir.path(), parquet().with_partition_by(["year"])).unwrap();
    sink.write_batch(WriteRequest::overwrite("sales"), rows(0..30))
        .await
        .unwrap();
    let hive = FileSource::local(dir.path(), parquet().with_hive_partitioning(true)).unwrap();
    let ds = hive.discover().await.unwrap();
    let sales = ds.iter().find(|d| d.name == "sales").expect("sales listed");
    for c in ["id", "month", "name", "year"] {
        assert!(
            sales.schema.field_with_name(c).is_ok(),
            "{c}: {:?}",
            sales.schema
        );
    }
    let got = hive
        .read_batch(ReadRequest::dataset("sales").with_filter(Expr::cmp("year", CmpOp::GtEq, 2023)))
        .await
        .unwrap();
    assert_eq!(got.num_rows(), 20);
    // Without hive partitioning the path segments are not columns.
    let plain = FileSource::local(dir.path(), parquet()).unwrap();
    let got = plain
        .read_batch(ReadRequest::dataset("sales"))
        .await
        .unwrap();
    assert_eq!(got.num_rows(), 30);
    assert!(got.schema().field_with_name("year").is_err());
}

/// A stream that yields `batches` and then fails.
fn failing(schema: SchemaRef, batches: Vec<RecordBatch>) -> SendableRecordBatchStream {
    let items = batches
        .into_iter()
        .map(Ok)
        .chain(std::iter::once(Err(Error::new(
            ErrorKind::Io,
            "the upstream died",
        ))));
    RecordBatchStreamAdapter::boxed(schema, futures::stream::iter(items))
}

/// A stream that yields `batches` and then never ends.
fn hanging(schema: SchemaRef, batches: Vec<RecordBatch>) -> SendableRecordBatchStream {
    use futures::StreamExt;
    let items =
        futures::stream::iter(batches.into_iter().map(Ok)).chain(futures::stream::pending());
    RecordBatchStreamAdapter::boxed(schema, items)
}

fn staged_csv() -> FileOptions {
    FileOptions::default()
        .with_format(Arc::new(CsvFormat::default()))
        .with_staged_publish(true)
        .with_max_rows_per_file(100)
}

#[tokio::test]
async fn staged_writes_publish_whole_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let sink = FileSink::local(dir.path(), staged_csv()).unwrap();
    let source = FileSource::local(dir.path(), staged_csv()).unwrap();
    let batches: Vec<RecordBatch> = (0..5).map(|i| rows(i * 100..(i + 1) * 100)).collect();
    let schema = batches[0].schema();

    // A failed write to a new target leaves nothing at all.
    let e = sink
        .write(
            WriteRequest::append("t"),
            failing(schema.clone(), batches.clone()),
        )
        .await
        .expect_err("the stream fails");
    assert_eq!(e.kind(), ErrorKind::Io, "{e}");
    assert_eq!(files_below(&dir.path().join("t")), Vec::<String>::new());
    assert!(!dir.path().join("t/_temporary").exists());

    // A failed overwrite leaves the old files.
    sink.write_batch(WriteRequest::append("u"), rows(0..250))
        .await
        .unwrap();
    let before = files_below(&dir.path().join("u"));
    assert_eq!(before.len(), 3, "{before:?}");
    sink.write(
        WriteRequest::overwrite("u"),
        failing(schema.clone(), batches.clone()),
    )
    .await
    .expect_err("the stream fails");
    assert_eq!(files_below(&dir.path().join("u")), before);
    assert!(!dir.path().join("u/_temporary").exists());

    // A successful overwrite replaces them, rotated, and removes its staging area.
    let r = sink
        .write_batches(
            WriteRequest::overwrite("u"),
            schema.clone(),
            batches.clone(),
        )
        .await
        .unwrap();
    assert_eq!(r.outputs.len(), 5, "{:?}", r.outputs);
    let after = files_below(&dir.path().join("u"));
    assert_eq!(after.len(), 5, "{after:?}");
    assert!(after.iter().all(|f| !before.contains(f)), "{after:?}");
    assert!(!dir.path().join("u/_temporary").exists());
    let got = source.read_all(ReadRequest::dataset("u")).await.unwrap();
    assert_eq!(got.iter().map(RecordBatch::num_rows).sum::<usize>(), 500);

    // A single-file target is staged next to it and moved into place.
    let r = sink
        .write_batch(WriteRequest::overwrite("one/data.csv"), rows(0..7))
        .await
        .unwrap();
    assert_eq!(r.outputs.len(), 1);
    assert_eq!(files_below(&dir.path().join("one")), ["data.csv"]);
    let got = source
        .read_batch(ReadRequest::dataset("one/data.csv"))
        .await
        .unwrap();
    assert_eq!(got.num_rows(), 7);
}

#[tokio::test]
async fn a_killed_writer_leaves_only_hidden_staged_files() {
    let dir = tempfile::tempdir().unwrap();
    let sink = FileSink::local(dir.path(), staged_csv()).unwrap();
    let source = FileSource::local(dir.path(), staged_csv()).unwrap();
    let batches: Vec<RecordBatch> = (0..5).map(|i| rows(i * 100..(i + 1) * 100)).collect();
    let schema = batches[0].schema();
    let task = tokio::spawn(async move {
        sink.write(WriteRequest::append("t"), hanging(schema, batches))
            .await
    });
    let t = dir.path().join("t");
    for _ in 0..200 {
        if files_below(&t).len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    task.abort();
    let _ = task.await;
    let all = files_below(&t);
    assert!(
        all.len() >= 3,
        "the writer wrote nothing before the abort: {all:?}"
    );
    assert!(all.iter().all(|f| f.starts_with("_temporary/")), "{all:?}");
    let e = source
        .read_all(ReadRequest::dataset("t"))
        .await
        .expect_err("nothing is visible");
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
}

#[tokio::test]
async fn dataset_names_may_be_full_paths_under_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let sink = FileSink::local(dir.path(), staged_csv()).unwrap();
    sink.write_batch(WriteRequest::append("logs"), rows(0..10))
        .await
        .unwrap();
    let source = FileSource::local(dir.path(), staged_csv()).unwrap();
    let full = format!("{}/logs", dir.path().display());
    let got = source
        .read_batch(ReadRequest::dataset(&full))
        .await
        .unwrap();
    assert_eq!(got.num_rows(), 10);
}

#[tokio::test]
async fn layout_options_from_a_registry_config() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = connector_core::registry::Registry::with_core();
    connector_file::register_all(&mut r);
    let yaml = format!(
        "type: parquet\npath: {:?}\nhive_partitioning: true\npartition_by: [year]\nstaged_publish: true\n",
        dir.path().display().to_string()
    );
    let c = r.build_yaml(&yaml).await.unwrap();
    c.as_sink()
        .unwrap()
        .write_batch(WriteRequest::append("sales"), rows(0..30))
        .await
        .unwrap();
    assert!(dir.path().join("sales/year=2024").is_dir());
    assert!(!dir.path().join("sales/_temporary").exists());
    let got = c
        .as_source()
        .unwrap()
        .read_batch(ReadRequest::dataset("sales").with_filter(Expr::eq("year", 2024)))
        .await
        .unwrap();
    assert_eq!(got.num_rows(), 10);
}
