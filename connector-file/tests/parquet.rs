//! Parquet codec: conformance, pruning, projection, corrupt files.
#![cfg(feature = "parquet")]

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::array::{Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use bytes::Bytes;
use connector_core::testkit::{Harness, all_types, counter_names, run_all};
use connector_core::{
    CmpOp, ErrorKind, Expr, ReadRequest, SinkExt, Source, SourceExt, WriteRequest,
};
use connector_file::{
    ByteSource, FileFormat, FileOptions, FileSink, FileSource, FormatReadOptions, InMemoryBytes,
    ParquetFormat, ParquetOptions,
};
use futures::TryStreamExt;
use futures::stream::BoxStream;

fn parquet() -> FileOptions {
    FileOptions::default().with_format(Arc::new(ParquetFormat::default()))
}

#[tokio::test]
async fn conformance() {
    let dir = tempfile::tempdir().unwrap();
    // Parquet stores every Arrow type of the matrix but month-day-nano intervals.
    let types: Vec<DataType> = all_types()
        .into_iter()
        .filter(|t| !matches!(t, DataType::Interval(_)))
        .collect();
    let h = Harness::new(
        Arc::new(FileSource::local(dir.path(), parquet()).unwrap()),
        Arc::new(FileSink::local(dir.path(), parquet()).unwrap()),
        counter_names("t"),
    )
    .with_types(types);
    run_all(&h).await;
}

/// A byte source that counts what is fetched.
#[derive(Debug)]
struct Counting {
    inner: InMemoryBytes,
    ranges: AtomicU64,
    bytes: AtomicU64,
}

impl Counting {
    fn new(data: Bytes) -> Arc<Self> {
        Arc::new(Self {
            inner: InMemoryBytes::new("mem://counted.parquet", data),
            ranges: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
        })
    }
    fn take(&self) -> (u64, u64) {
        (
            self.ranges.swap(0, Ordering::SeqCst),
            self.bytes.swap(0, Ordering::SeqCst),
        )
    }
}

#[async_trait]
impl ByteSource for Counting {
    fn location(&self) -> &str {
        self.inner.location()
    }
    async fn size(&self) -> connector_core::Result<u64> {
        self.inner.size().await
    }
    async fn get_range(&self, range: Range<u64>) -> connector_core::Result<Bytes> {
        self.ranges.fetch_add(1, Ordering::SeqCst);
        self.bytes
            .fetch_add(range.end - range.start, Ordering::SeqCst);
        self.inner.get_range(range).await
    }
    async fn stream(
        &self,
    ) -> connector_core::Result<BoxStream<'static, connector_core::Result<Bytes>>> {
        self.inner.stream().await
    }
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
    ]))
}

fn rows(ids: Range<i64>) -> RecordBatch {
    let names: StringArray = ids
        .clone()
        .map(|i| Some(format!("name-{i:08}-padding-to-make-the-file-larger")))
        .collect();
    RecordBatch::try_new(
        schema(),
        vec![Arc::new(Int64Array::from_iter_values(ids)), Arc::new(names)],
    )
    .unwrap()
}

/// 10 000 rows in 10 row groups of 1000 (ids ascending), uncompressed so sizes are predictable
/// and the data dwarfs the 64 KiB footer prefetch.
fn ten_row_groups() -> Bytes {
    let format = ParquetFormat::new(ParquetOptions {
        compression: "none".into(),
        row_group_rows: 1000,
    })
    .unwrap();
    let mut w = format.writer(schema()).unwrap();
    let mut out = Vec::new();
    for chunk in 0..4 {
        w.write(&rows(chunk * 2500..(chunk + 1) * 2500)).unwrap();
        out.extend_from_slice(&w.take_bytes());
    }
    out.extend_from_slice(&w.finish().unwrap());
    Bytes::from(out)
}

async fn read_rows(
    input: Arc<dyn ByteSource>,
    filter: Option<Expr>,
    projection: Option<Vec<String>>,
) -> usize {
    let options = FormatReadOptions {
        filter,
        projection,
        batch_rows: 64,
        ..FormatReadOptions::default()
    };
    let batches: Vec<RecordBatch> = ParquetFormat::default()
        .read(input, options)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    batches.iter().map(RecordBatch::num_rows).sum()
}

#[tokio::test]
async fn row_group_pruning_skips_fetches() {
    let src = Counting::new(ten_row_groups());
    assert_eq!(read_rows(src.clone(), None, None).await, 10_000);
    let (_, all_bytes) = src.take();

    // id >= 9500 can only match the last row group: its 1000 rows come back (rows are filtered
    // later, by the source).
    let f = Expr::cmp("id", CmpOp::GtEq, 9500);
    assert_eq!(read_rows(src.clone(), Some(f), None).await, 1000);
    let (_, pruned_bytes) = src.take();
    assert!(
        pruned_bytes * 3 < all_bytes,
        "pruned read fetched {pruned_bytes} bytes, full read {all_bytes}"
    );

    // OR of two ranges keeps two row groups; IN keeps the groups of its values.
    let f = Expr::cmp("id", CmpOp::Lt, 500).or(Expr::cmp("id", CmpOp::Gt, 9900));
    assert_eq!(read_rows(src.clone(), Some(f), None).await, 2000);
    let f = Expr::is_in("id", [5, 5555, 5556]);
    assert_eq!(read_rows(src.clone(), Some(f), None).await, 2000);
    let f = Expr::eq("name", "name-00004200-padding-to-make-the-file-larger").and(Expr::cmp(
        "id",
        CmpOp::GtEq,
        0,
    ));
    assert_eq!(read_rows(src.clone(), Some(f), None).await, 1000);
    // Nothing matches: no row group is read at all.
    assert_eq!(
        read_rows(src.clone(), Some(Expr::eq("id", -1)), None).await,
        0
    );
    assert_eq!(
        read_rows(src.clone(), Some(Expr::IsNull("id".into())), None).await,
        0
    );
    // NOT cannot be judged from statistics: everything is read.
    let f = Expr::cmp("id", CmpOp::Lt, 9500).not();
    assert_eq!(read_rows(src.clone(), Some(f), None).await, 10_000);

    // Projection fetches only the projected column's chunks.
    src.take();
    assert_eq!(
        read_rows(src.clone(), None, Some(vec!["id".into()])).await,
        10_000
    );
    let (_, id_bytes) = src.take();
    assert!(
        id_bytes < all_bytes / 2,
        "id only: {id_bytes} bytes, all: {all_bytes}"
    );
}

#[tokio::test]
async fn source_filters_rows_after_pruning_and_pushes_projection() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("t.parquet"), ten_row_groups()).unwrap();
    let source = FileSource::local(dir.path(), FileOptions::default()).unwrap();
    let got = source
        .read_batch(
            ReadRequest::dataset("t.parquet")
                .with_filter(Expr::cmp("id", CmpOp::GtEq, 9995))
                .with_projection(["name"]),
        )
        .await
        .unwrap();
    assert_eq!(got.num_rows(), 5);
    assert_eq!(got.num_columns(), 1);
    let got = source
        .read_batch(ReadRequest::dataset("t.parquet").with_limit(7))
        .await
        .unwrap();
    assert_eq!(got, rows(0..7));
}

#[tokio::test]
async fn truncated_and_corrupt_files_are_decode_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let good = ten_row_groups();
    std::fs::write(dir.path().join("cut.parquet"), &good[..good.len() / 2]).unwrap();
    std::fs::write(dir.path().join("tiny.parquet"), b"PAR").unwrap();
    // Cut 1000 bytes out of the data, keep the footer: its offsets now point into garbage.
    let bad = [&good[..1000], &good[2000..]].concat();
    std::fs::write(dir.path().join("garbled.parquet"), &bad).unwrap();
    let source = FileSource::local(dir.path(), FileOptions::default()).unwrap();
    for name in ["cut.parquet", "tiny.parquet", "garbled.parquet"] {
        let e = source
            .read_batch(ReadRequest::dataset(name))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Decode, "{name}: {e}");
        assert!(
            e.location()
                .unwrap()
                .file
                .as_deref()
                .unwrap()
                .ends_with(name),
            "{name}: {e}"
        );
        assert_eq!(e.connector(), Some("parquet"), "{e}");
    }
}

#[tokio::test]
async fn files_with_another_schema_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let sink = FileSink::local(dir.path(), parquet()).unwrap();
    sink.write_batch(WriteRequest::overwrite("d/a.parquet"), rows(0..3))
        .await
        .unwrap();
    let other = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("id", DataType::Utf8, true)])),
        vec![Arc::new(StringArray::from(vec!["x"]))],
    )
    .unwrap();
    sink.write_batch(WriteRequest::overwrite("d/b.parquet"), other)
        .await
        .unwrap();
    let source = FileSource::local(dir.path(), parquet()).unwrap();
    let e = source
        .read_batch(ReadRequest::dataset("d"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::SchemaMismatch, "{e}");
    assert!(
        e.location()
            .unwrap()
            .file
            .as_deref()
            .unwrap()
            .ends_with("d/b.parquet"),
        "{e}"
    );
    // Appending a different type to the directory is refused before anything is written.
    let e = sink
        .write_batch(WriteRequest::append("d2"), rows(0..2))
        .await
        .and(
            sink.write_batch(
                WriteRequest::append("d2"),
                RecordBatch::try_new(
                    Arc::new(Schema::new(vec![
                        Field::new("id", DataType::Int32, false),
                        Field::new("name", DataType::Utf8, true),
                    ])),
                    vec![
                        Arc::new(arrow::array::Int32Array::from(vec![1])),
                        Arc::new(StringArray::from(vec!["x"])),
                    ],
                )
                .unwrap(),
            )
            .await,
        )
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::SchemaMismatch, "{e}");
    assert_eq!(std::fs::read_dir(dir.path().join("d2")).unwrap().count(), 1);
}

#[tokio::test]
async fn one_large_file_is_split_by_row_groups_across_partitions() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("t.parquet"), ten_row_groups()).unwrap();
    let source = FileSource::local(dir.path(), FileOptions::default()).unwrap();
    for (request, want) in [
        (ReadRequest::dataset("t.parquet"), 10_000),
        (
            ReadRequest::dataset("t.parquet")
                .with_filter(Expr::cmp("id", CmpOp::Lt, 2500))
                .with_projection(["id"]),
            2500,
        ),
    ] {
        let parts = source.plan(&request, 4).await.unwrap();
        assert_eq!(parts.len(), 4);
        let mut ids = Vec::new();
        let mut sizes = Vec::new();
        for p in parts {
            let p: connector_core::Partition =
                serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
            let b = connector_core::collect(source.read(p).await.unwrap())
                .await
                .unwrap();
            sizes.push(b.num_rows());
            let col = b
                .column_by_name("id")
                .unwrap()
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap();
            ids.extend(col.values().iter().copied());
        }
        ids.sort_unstable();
        assert_eq!(ids, (0..want).collect::<Vec<i64>>());
        if want == 10_000 {
            // 10 row groups over 4 partitions: 3, 3, 2, 2.
            assert_eq!(sizes, vec![3000, 3000, 2000, 2000]);
        }
    }
}
