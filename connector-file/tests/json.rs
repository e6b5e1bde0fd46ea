//! JSON codec (NDJSON and arrays) through the file source and sink.
#![cfg(feature = "json")]

use std::sync::Arc;

use arrow::array::{Array, Int64Array, StringArray, StructArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use connector_core::testkit::{self, Harness, counter_names};
use connector_core::{ErrorKind, ReadRequest, SinkExt, SourceExt, WriteRequest};
use connector_file::{
    BadRowLog, BadRows, FileOptions, FileSink, FileSource, JsonFormat, JsonLayout, JsonOptions,
};

fn json(layout: JsonLayout) -> FileOptions {
    FileOptions::default().with_format(Arc::new(JsonFormat::new(JsonOptions {
        layout,
        ..JsonOptions::default()
    })))
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("name", DataType::Utf8, true),
    ]))
}

#[tokio::test]
async fn conformance_ndjson_and_array() {
    // JSON numbers, strings, booleans, lists and objects; read back by inference and cast.
    let types = vec![
        DataType::Boolean,
        DataType::Int8,
        DataType::Int32,
        DataType::Int64,
        DataType::UInt16,
        DataType::Float64,
        DataType::Utf8,
        DataType::LargeUtf8,
        DataType::Date32,
        DataType::List(Arc::new(Field::new_list_field(DataType::Int32, true))),
        DataType::Struct(
            vec![
                Field::new("a", DataType::Int32, true),
                Field::new("b", DataType::Utf8, true),
            ]
            .into(),
        ),
    ];
    for layout in [JsonLayout::Ndjson, JsonLayout::Array] {
        let dir = tempfile::tempdir().unwrap();
        let h = Harness::new(
            Arc::new(FileSource::local(dir.path(), json(layout)).unwrap()),
            Arc::new(FileSink::local(dir.path(), json(layout)).unwrap()),
            counter_names("t"),
        )
        .with_types(types.clone())
        .with_cast_on_read(true);
        // Every case but `empty_stream` and `overwrite` (which ends by overwriting with no
        // rows): an empty JSON file carries no schema. The sink's overwrite is covered by the
        // CSV and Parquet suites; JSON overwrites with rows by `overwrite_replaces_rows` below.
        testkit::case_check(&h).await;
        testkit::case_round_trip(&h).await;
        testkit::case_projection(&h).await;
        testkit::case_filter(&h).await;
        testkit::case_filter_types(&h).await;
        testkit::case_limit(&h).await;
        testkit::case_partitioned_read(&h).await;
        testkit::case_upsert(&h).await;
        testkit::case_delete(&h).await;
        testkit::case_schema_drift_fail(&h).await;
        testkit::case_schema_drift_add_columns(&h).await;
        testkit::case_schema_drift_ignore_extra(&h).await;
        testkit::case_discover(&h).await;
        testkit::case_missing_dataset(&h).await;
    }
}

#[tokio::test]
async fn nested_objects_become_structs_and_array_layout_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.json"),
        "\u{feff} [\n {\"id\": 1, \"p\": {\"x\": 1.5, \"tags\": [\"a\", \"b\"]}},\n {\"id\": 2, \"p\": null}\n]\n",
    )
    .unwrap();
    let source = FileSource::local(dir.path(), FileOptions::default()).unwrap();
    let got = source
        .read_batch(ReadRequest::dataset("a.json"))
        .await
        .unwrap();
    assert_eq!(got.num_rows(), 2);
    let p = got.column_by_name("p").unwrap();
    let DataType::Struct(fields) = p.data_type() else {
        panic!("p is {}", p.data_type());
    };
    assert_eq!(fields.len(), 2);
    let tags = fields.iter().find(|f| f.name() == "tags").unwrap();
    assert!(matches!(tags.data_type(), DataType::List(_)));
    // Top-level columns keep the order of the document.
    assert_eq!(got.schema().field(0).name(), "id");
    let p = p.as_any().downcast_ref::<StructArray>().unwrap();
    assert!(p.is_null(1));
}

#[tokio::test]
async fn invalid_ndjson_names_line_and_offset_and_skip_logs_each() {
    let dir = tempfile::tempdir().unwrap();
    let text = "{\"id\": 1, \"name\": \"a\"}\n\n{\"id\": 2, \"name\": \"b\"}\n{\"id\": 3, \"name\": tru}\n{\"id\": \"x\"}\n{\"id\": 5}\n";
    std::fs::write(dir.path().join("a.jsonl"), text).unwrap();
    let source =
        FileSource::local(dir.path(), FileOptions::default().with_schema(schema())).unwrap();
    let e = source
        .read_batch(ReadRequest::dataset("a.jsonl"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    let loc = e.location().unwrap();
    assert_eq!(loc.line, Some(4), "{e}");
    assert_eq!(
        loc.byte_offset,
        Some(text.find("{\"id\": 3").unwrap() as u64)
    );
    assert!(loc.file.as_deref().unwrap().ends_with("a.jsonl"));
    assert_eq!(e.connector(), Some("json"));

    let log = BadRowLog::default();
    let source = FileSource::local(
        dir.path(),
        FileOptions::default()
            .with_schema(schema())
            .with_bad_rows(BadRows::Skip)
            .with_bad_row_log(log.clone()),
    )
    .unwrap();
    let got = source
        .read_batch(ReadRequest::dataset("a.jsonl").with_batch_rows(2))
        .await
        .unwrap();
    let ids = got.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
    assert_eq!(ids.values().to_vec(), vec![1, 2, 5]);
    let lines: Vec<u64> = log
        .rows()
        .iter()
        .map(|r| r.location.line.unwrap())
        .collect();
    assert_eq!(lines, vec![4, 5]);
}

#[tokio::test]
async fn broken_array_is_an_error_with_offset() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.json"), "[{\"id\": 1}\n {\"id\": 2}]").unwrap();
    std::fs::write(dir.path().join("b.json"), "[{\"id\": 1}, {\"id\": 2}").unwrap();
    let source =
        FileSource::local(dir.path(), FileOptions::default().with_schema(schema())).unwrap();
    let e = source
        .read_batch(ReadRequest::dataset("a.json"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert_eq!(e.location().unwrap().byte_offset, Some(12), "{e}");
    assert_eq!(e.location().unwrap().line, Some(2), "{e}");
    let e = source
        .read_batch(ReadRequest::dataset("b.json"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("not closed"), "{e}");
}

#[tokio::test]
async fn writers_produce_ndjson_and_arrays_gzip_too() {
    let dir = tempfile::tempdir().unwrap();
    let batch = arrow::record_batch::RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int64Array::from(vec![Some(1), None, Some(3)])),
            Arc::new(StringArray::from(vec![Some("a\"q"), Some("b"), None])),
        ],
    )
    .unwrap();
    for (layout, target) in [
        (JsonLayout::Ndjson, "x.jsonl"),
        (JsonLayout::Array, "y.json"),
        (JsonLayout::Ndjson, "z.json.gz"),
    ] {
        let sink = FileSink::local(dir.path(), json(layout)).unwrap();
        sink.write_batch(WriteRequest::overwrite(target), batch.clone())
            .await
            .unwrap();
        let source =
            FileSource::local(dir.path(), json(JsonLayout::Auto).with_schema(schema())).unwrap();
        let got = source
            .read_batch(ReadRequest::dataset(target))
            .await
            .unwrap();
        assert_eq!(got, batch, "{target}");
    }
    let text = std::fs::read_to_string(dir.path().join("y.json")).unwrap();
    assert!(
        text.starts_with('[') && text.trim_end().ends_with(']'),
        "{text}"
    );
    let text = std::fs::read_to_string(dir.path().join("x.jsonl")).unwrap();
    assert_eq!(text.lines().count(), 3);
}

#[tokio::test]
async fn overwrite_replaces_rows() {
    let dir = tempfile::tempdir().unwrap();
    let sink = FileSink::local(dir.path(), json(JsonLayout::Ndjson)).unwrap();
    let source = FileSource::local(dir.path(), json(JsonLayout::Ndjson)).unwrap();
    let rows = |ids: Vec<i64>| {
        arrow::record_batch::RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)])),
            vec![Arc::new(Int64Array::from(ids))],
        )
        .unwrap()
    };
    for target in ["d", "f.json"] {
        sink.write_batch(WriteRequest::append(target), rows(vec![1, 2, 3]))
            .await
            .unwrap();
        sink.write_batch(WriteRequest::overwrite(target), rows(vec![7]))
            .await
            .unwrap();
        let got = source
            .read_batch(ReadRequest::dataset(target))
            .await
            .unwrap();
        assert_eq!(got, rows(vec![7]), "{target}");
    }
}
