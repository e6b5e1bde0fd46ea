//! CSV codec and file source/sink over the local file system.
#![cfg(feature = "csv")]

use std::fmt::Write as _;
use std::sync::Arc;

use arrow::array::{Array, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use connector_core::testkit::{Harness, counter_names, run_all};
use connector_core::{
    ErrorKind, ReadRequest, RecordBatchStreamAdapter, Sink, SinkExt, Source, SourceExt,
    WriteRequest,
};
use connector_file::{
    BadRowLog, BadRows, Compression, CsvFormat, CsvOptions, FileOptions, FileSink, FileSource,
};

fn csv_options() -> FileOptions {
    FileOptions::default().with_format(Arc::new(CsvFormat::default()))
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
    ]))
}

fn rows(ids: std::ops::Range<i64>) -> RecordBatch {
    let names: StringArray = ids.clone().map(|i| Some(format!("n{i}"))).collect();
    RecordBatch::try_new(
        schema(),
        vec![Arc::new(Int64Array::from_iter_values(ids)), Arc::new(names)],
    )
    .unwrap()
}

async fn read_all(source: &FileSource, dataset: &str) -> connector_core::Result<RecordBatch> {
    source.read_batch(ReadRequest::dataset(dataset)).await
}

#[tokio::test]
async fn conformance() {
    let dir = tempfile::tempdir().unwrap();
    let source = FileSource::local(dir.path(), csv_options()).unwrap();
    let sink = FileSink::local(dir.path(), csv_options()).unwrap();
    // CSV has no types: read-back columns are inferred and cast. Strings are left out because
    // CSV cannot tell an empty string from NULL.
    let types = vec![
        DataType::Boolean,
        DataType::Int8,
        DataType::Int16,
        DataType::Int32,
        DataType::Int64,
        DataType::UInt8,
        DataType::UInt16,
        DataType::UInt32,
        DataType::Float32,
        DataType::Float64,
        DataType::Date32,
    ];
    let h = Harness::new(Arc::new(source), Arc::new(sink), counter_names("t"))
        .with_types(types)
        .with_cast_on_read(true);
    run_all(&h).await;
}

#[tokio::test]
async fn ragged_row_names_file_and_line_after_header_and_quoted_newline() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.csv"),
        "id,name\n1,\"two\nlines\"\n\n2,b\n3\n4,d\n",
    )
    .unwrap();
    let source = FileSource::local(dir.path(), FileOptions::default()).unwrap();
    let e = read_all(&source, "a.csv").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    let loc = e.location().unwrap();
    assert_eq!(loc.line, Some(6), "{e}");
    assert!(loc.file.as_deref().unwrap().ends_with("a.csv"), "{e}");
    assert_eq!(e.connector(), Some("csv"));
    assert_eq!(e.operation(), Some("read"));
    assert!(e.to_string().contains("expected 2 fields, found 1"), "{e}");
}

#[tokio::test]
async fn unparsable_value_names_its_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.csv"), "id,name\n1,a\n2,b\nx,c\n").unwrap();
    let source = FileSource::local(dir.path(), csv_options().with_schema(schema())).unwrap();
    let e = read_all(&source, "a.csv").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert_eq!(e.location().unwrap().line, Some(4), "{e}");
    assert_eq!(e.location().unwrap().row, Some(2), "{e}");
}

#[tokio::test]
async fn skip_policy_logs_every_bad_row_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("id,name\n");
    for i in 0..50 {
        match i {
            7 | 31 => text.push_str("oops\n"),
            12 => text.push_str("notanumber,x\n"),
            40 => text.push_str("1,2,3\n"),
            _ => writeln!(text, "{i},n{i}").unwrap(),
        }
    }
    std::fs::write(dir.path().join("a.csv"), &text).unwrap();
    let log = BadRowLog::default();
    let options = csv_options()
        .with_schema(schema())
        .with_bad_rows(BadRows::Skip)
        .with_bad_row_log(log.clone());
    let source = FileSource::local(dir.path(), options).unwrap();
    let got = source
        .read_batch(ReadRequest::dataset("a.csv").with_batch_rows(8))
        .await
        .unwrap();
    assert_eq!(got.num_rows(), 46);
    let mut lines: Vec<u64> = log
        .rows()
        .iter()
        .map(|r| r.location.line.unwrap())
        .collect();
    // Ragged rows are found while splitting, unparsable values when their batch is decoded.
    lines.sort_unstable();
    assert_eq!(lines, vec![9, 14, 33, 42]);
    assert!(
        log.rows()
            .iter()
            .all(|r| r.location.file.as_deref().unwrap().ends_with("a.csv"))
    );
    assert_eq!(log.count(), 4);
    let ids = got.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
    assert!(!ids.values().contains(&12));
}

#[tokio::test]
async fn bom_is_stripped_and_dialect_options_apply() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.csv"),
        "\u{feff}id;name\n1;'x;y'\n2;'it''s'\n",
    )
    .unwrap();
    let format = CsvFormat::new(CsvOptions {
        delimiter: ';',
        quote: '\'',
        ..CsvOptions::default()
    })
    .unwrap();
    let source = FileSource::local(
        dir.path(),
        FileOptions::default().with_format(Arc::new(format)),
    )
    .unwrap();
    let got = read_all(&source, "a.csv").await.unwrap();
    assert_eq!(got.schema().field(0).name(), "id");
    assert_eq!(got.schema().field(0).data_type(), &DataType::Int64);
    let names = got
        .column(1)
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap();
    assert_eq!(names.value(0), "x;y");
    assert_eq!(names.value(1), "it's");

    // No header: columns are numbered; an escape character instead of doubled quotes.
    std::fs::write(dir.path().join("b.csv"), "1,\"a\\\"b\"\n2,c\n").unwrap();
    let format = CsvFormat::new(CsvOptions {
        header: false,
        escape: Some('\\'),
        ..CsvOptions::default()
    })
    .unwrap();
    let source = FileSource::local(
        dir.path(),
        FileOptions::default().with_format(Arc::new(format)),
    )
    .unwrap();
    let got = read_all(&source, "b.csv").await.unwrap();
    assert_eq!(got.num_rows(), 2);
    assert_eq!(got.schema().field(1).name(), "column_2");
    let c = got
        .column(1)
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap();
    assert_eq!(c.value(0), "a\"b");
    assert!(
        CsvFormat::new(CsvOptions {
            delimiter: 'é',
            ..CsvOptions::default()
        })
        .is_err()
    );
}

#[tokio::test]
async fn compressed_round_trips_by_extension_and_by_option() {
    let dir = tempfile::tempdir().unwrap();
    let sink = FileSink::local(dir.path(), FileOptions::default()).unwrap();
    let source =
        FileSource::local(dir.path(), FileOptions::default().with_schema(schema())).unwrap();
    let data = rows(0..5000);
    for name in ["out/a.csv.gz", "out/b.csv.zst", "out/c.csv"] {
        let report = sink
            .write(
                WriteRequest::overwrite(name),
                connector_core::stream::memory_stream(
                    schema(),
                    vec![data.slice(0, 2000), data.slice(2000, 3000)],
                ),
            )
            .await
            .unwrap();
        assert_eq!(report.rows, 5000);
        let got = read_all(&source, name).await.unwrap();
        assert_eq!(got, data, "{name}");
    }
    let raw = std::fs::read(dir.path().join("out/a.csv.gz")).unwrap();
    assert_eq!(&raw[..2], &[0x1f, 0x8b], "gzip magic");
    let plain = std::fs::metadata(dir.path().join("out/c.csv"))
        .unwrap()
        .len();
    let zst = std::fs::metadata(dir.path().join("out/b.csv.zst"))
        .unwrap()
        .len();
    assert!(zst < plain / 2, "zstd file {zst} bytes, plain {plain}");

    // Compression by option, whatever the extension.
    let gz = FileOptions::default().with_compression(Compression::Gzip);
    let sink = FileSink::local(dir.path(), gz.clone()).unwrap();
    sink.write(
        WriteRequest::overwrite("opt/x.csv"),
        connector_core::stream::memory_stream(schema(), vec![data.clone()]),
    )
    .await
    .unwrap();
    let raw = std::fs::read(dir.path().join("opt/x.csv")).unwrap();
    assert_eq!(&raw[..2], &[0x1f, 0x8b]);
    let source = FileSource::local(dir.path(), gz.with_schema(schema())).unwrap();
    assert_eq!(read_all(&source, "opt/x.csv").await.unwrap(), data);
}

#[tokio::test]
async fn glob_over_several_files_and_partitions() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("data/sub")).unwrap();
    for (i, name) in ["data/a.csv", "data/b.csv", "data/sub/c.csv", "data/d.json"]
        .iter()
        .enumerate()
    {
        let i = i as i64;
        std::fs::write(
            dir.path().join(name),
            format!("id,name\n{i},x{i}\n{},y\n", i + 10),
        )
        .unwrap();
    }
    std::fs::write(dir.path().join("data/_SUCCESS"), "").unwrap();
    std::fs::write(dir.path().join("data/.hidden.csv"), "garbage").unwrap();
    let source =
        FileSource::local(dir.path(), FileOptions::default().with_schema(schema())).unwrap();
    let got = read_all(&source, "data/*.csv").await.unwrap();
    assert_eq!(got.num_rows(), 4);
    let got = read_all(&source, "data/**/*.csv").await.unwrap();
    assert_eq!(got.num_rows(), 6);
    let parts = source
        .plan(&ReadRequest::dataset("data/**/*.csv"), 2)
        .await
        .unwrap();
    assert_eq!(parts.len(), 2);
    let mut total = 0;
    for p in parts {
        let b = connector_core::collect(source.read(p).await.unwrap())
            .await
            .unwrap();
        total += b.num_rows();
    }
    assert_eq!(total, 6);
    let e = read_all(&source, "data/*.parquet").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    // discover lists the directory as one dataset per format.
    let names: Vec<String> = source
        .discover()
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.name)
        .collect();
    assert!(names.contains(&"data/**/*.csv".to_owned()), "{names:?}");
}

#[tokio::test]
async fn a_file_that_disagrees_with_the_schema_is_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("d")).unwrap();
    std::fs::write(dir.path().join("d/a.csv"), "id,name\n1,a\n").unwrap();
    std::fs::write(dir.path().join("d/b.csv"), "id,name,extra\n1,a,z\n").unwrap();
    std::fs::create_dir_all(dir.path().join("e")).unwrap();
    std::fs::write(dir.path().join("e/a.csv"), "id,name\n1,a\n").unwrap();
    std::fs::write(dir.path().join("e/b.csv"), "name,id\nb,2\n").unwrap();
    let source = FileSource::local(dir.path(), FileOptions::default()).unwrap();
    let e = read_all(&source, "d").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::SchemaMismatch, "{e}");
    let file = e.location().unwrap().file.clone().unwrap();
    assert!(file.ends_with("d/b.csv"), "{e}");
    // Sampling both files at plan time names the one that differs before anything is read.
    std::fs::write(dir.path().join("d/b.csv"), "id,name\nx,a\n").unwrap();
    let sampled =
        FileSource::local(dir.path(), FileOptions::default().with_infer_files(5)).unwrap();
    let e = sampled
        .plan(&ReadRequest::dataset("d"), 1)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::SchemaMismatch, "{e}");
    assert!(
        e.location()
            .unwrap()
            .file
            .as_deref()
            .unwrap()
            .ends_with("d/b.csv"),
        "{e}"
    );
    assert!(e.to_string().contains("id: Utf8"), "{e}");
    // Same columns in another order: named too, at line 1 and the first differing column.
    let e = read_all(&source, "e").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::SchemaMismatch, "{e}");
    let loc = e.location().unwrap();
    assert!(loc.file.as_deref().unwrap().ends_with("e/b.csv"), "{e}");
    assert_eq!(
        (loc.line, loc.column.as_deref()),
        (Some(1), Some("name")),
        "{e}"
    );
}

/// A stream that yields `good` and then fails.
fn failing_stream(good: RecordBatch) -> connector_core::SendableRecordBatchStream {
    let items = vec![
        Ok(good),
        Err(connector_core::Error::new(
            ErrorKind::Connection,
            "upstream broke",
        )),
    ];
    RecordBatchStreamAdapter::boxed(schema(), futures::stream::iter(items))
}

#[tokio::test]
async fn failed_overwrite_leaves_the_old_file_and_directory_intact() {
    let dir = tempfile::tempdir().unwrap();
    let sink = FileSink::local(dir.path(), csv_options()).unwrap();
    let source = FileSource::local(dir.path(), csv_options().with_schema(schema())).unwrap();
    for target in ["t.csv", "tdir"] {
        sink.write_batches(WriteRequest::overwrite(target), schema(), vec![rows(0..10)])
            .await
            .unwrap();
        // A big first batch so that bytes reach the store before the failure.
        let e = sink
            .write(
                WriteRequest::overwrite(target),
                failing_stream(rows(100..60_100)),
            )
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Connection);
        assert_eq!(
            read_all(&source, target).await.unwrap(),
            rows(0..10),
            "{target}"
        );
    }
    // Nothing but the directory's single old part remains.
    assert_eq!(
        std::fs::read_dir(dir.path().join("tdir")).unwrap().count(),
        1
    );
}

#[tokio::test]
async fn write_modes_rotation_and_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let sink = FileSink::local(dir.path(), csv_options().with_max_rows_per_file(300)).unwrap();
    let source = FileSource::local(dir.path(), csv_options().with_schema(schema())).unwrap();
    let report = sink
        .write_batches(WriteRequest::append("r"), schema(), vec![rows(0..1000)])
        .await
        .unwrap();
    assert_eq!(report.outputs.len(), 4);
    assert_eq!(read_all(&source, "r").await.unwrap().num_rows(), 1000);
    sink.write_batches(WriteRequest::append("r"), schema(), vec![rows(0..10)])
        .await
        .unwrap();
    assert_eq!(read_all(&source, "r").await.unwrap().num_rows(), 1010);
    // Appending to an existing single file is refused; upsert and delete are unsupported.
    sink.write_batches(WriteRequest::append("one.csv"), schema(), vec![rows(0..1)])
        .await
        .unwrap();
    let e = sink
        .write_batches(WriteRequest::append("one.csv"), schema(), vec![rows(0..1)])
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    let e = sink
        .write_batches(
            WriteRequest::upsert("r", ["id"]),
            schema(),
            vec![rows(0..1)],
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    let e = sink
        .write_batches(
            WriteRequest::overwrite("missing.csv").with_create_if_missing(false),
            schema(),
            vec![rows(0..1)],
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn crlf_line_endings_and_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("id,name\r\n");
    for i in 0..1000 {
        writeln!(text, "{i},\"n\r\n{i}\"\r").unwrap();
    }
    std::fs::write(dir.path().join("a.csv"), &text).unwrap();
    let source = FileSource::local(dir.path(), FileOptions::default()).unwrap();
    let got = read_all(&source, "a.csv").await.unwrap();
    assert_eq!(got.num_rows(), 1000);
    let names = got
        .column(1)
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap();
    assert_eq!(names.value(7), "n\r\n7");
    let got = source
        .read_batch(
            ReadRequest::dataset("a.csv")
                .with_limit(3)
                .with_batch_rows(2),
        )
        .await
        .unwrap();
    assert_eq!(got.num_rows(), 3);
    // A ragged row after CRLF lines is still reported at its line (2 lines per record).
    text.push_str("1,2,3\r\n");
    std::fs::write(dir.path().join("b.csv"), &text).unwrap();
    let e = read_all(&source, "b.csv").await.unwrap_err();
    assert_eq!(e.location().unwrap().line, Some(2002), "{e}");
}

#[tokio::test]
async fn tsv_files_are_tab_separated_by_default() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.tsv"), "id\tname\n1\tx,y\n").unwrap();
    std::fs::write(dir.path().join("b.csv"), "id,name\n2,z\n").unwrap();
    let source = FileSource::local(dir.path(), FileOptions::default()).unwrap();
    let got = read_all(&source, "a.tsv").await.unwrap();
    let names = got
        .column(1)
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap();
    assert_eq!(names.value(0), "x,y");
    assert_eq!(read_all(&source, "b.csv").await.unwrap().num_columns(), 2);
}

#[tokio::test]
async fn rotation_by_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let sink = FileSink::local(dir.path(), csv_options().with_max_bytes_per_file(2000)).unwrap();
    let batches: Vec<RecordBatch> = (0..20).map(|k| rows(k * 50..(k + 1) * 50)).collect();
    let report = sink
        .write_batches(WriteRequest::append("parts"), schema(), batches)
        .await
        .unwrap();
    // About 9 KB of CSV in parts of at least 2000 bytes.
    assert_eq!(report.outputs.len(), 4, "{:?}", report.outputs);
    let source = FileSource::local(dir.path(), csv_options().with_schema(schema())).unwrap();
    let got = read_all(&source, "parts").await.unwrap();
    assert_eq!(got.num_rows(), 1000);
    for f in std::fs::read_dir(dir.path().join("parts")).unwrap() {
        // A part closes at the first batch that takes it past the limit.
        assert!(f.unwrap().metadata().unwrap().len() < 2000 + 50 * 10 + 10);
    }
}
