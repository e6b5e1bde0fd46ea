//! Excel codec: round trips through the xlsx writer, sheet and header selection, inference,
//! explicit schemas and bad rows.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Date32Array, Float64Array, Int32Array, Int64Array,
    ListArray, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Int32Type, Int64Type, Schema, TimeUnit};
use arrow::record_batch::RecordBatch;
use connector_core::{ErrorKind, collect};
use connector_file::{
    BadRows, ExcelFormat, FileFormat, FormatReadOptions, HeaderRow, InMemoryBytes,
};
use rust_xlsxwriter::Workbook;

fn opts() -> FormatReadOptions {
    FormatReadOptions {
        batch_rows: 1024,
        ..FormatReadOptions::default()
    }
}

async fn read(
    format: &ExcelFormat,
    bytes: Vec<u8>,
    options: FormatReadOptions,
) -> connector_core::Result<RecordBatch> {
    let input = Arc::new(InMemoryBytes::new("test.xlsx", bytes));
    collect(format.read(input, options).await?).await
}

fn sample_batch() -> RecordBatch {
    let list = ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
        Some(vec![Some(1), Some(2)]),
        None,
        Some(vec![]),
    ]);
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("score", DataType::Float64, true),
        Field::new("ok", DataType::Boolean, true),
        Field::new("day", DataType::Date32, true),
        Field::new("at", DataType::Timestamp(TimeUnit::Microsecond, None), true),
        Field::new("small", DataType::Int32, true),
        Field::new("tags", list.data_type().clone(), true),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(vec![1, 2, 3])),
        Arc::new(StringArray::from(vec![
            Some("a'b \"c\" <d>"),
            None,
            Some("ünïcødé\nline"),
        ])),
        Arc::new(Float64Array::from(vec![Some(1.5), Some(-2.25), None])),
        Arc::new(BooleanArray::from(vec![Some(true), None, Some(false)])),
        Arc::new(Date32Array::from(vec![Some(19_723), None, Some(0)])),
        Arc::new(TimestampMicrosecondArray::from(vec![
            Some(1_704_164_645_123_000),
            None,
            Some(86_400_000_000),
        ])),
        Arc::new(Int32Array::from(vec![Some(7), Some(-7), None])),
        Arc::new(list),
    ];
    RecordBatch::try_new(schema, columns).unwrap()
}

fn write_xlsx(batch: &RecordBatch) -> Vec<u8> {
    let mut w = ExcelFormat::default().writer(batch.schema()).unwrap();
    w.write(batch).unwrap();
    w.finish().unwrap().to_vec()
}

#[tokio::test]
async fn write_then_read_infers_types_and_keeps_values() {
    let batch = sample_batch();
    let out = read(&ExcelFormat::default(), write_xlsx(&batch), opts())
        .await
        .unwrap();
    let types: Vec<DataType> = out
        .schema()
        .fields()
        .iter()
        .map(|f| f.data_type().clone())
        .collect();
    assert_eq!(
        types,
        vec![
            DataType::Int64,
            DataType::Utf8,
            DataType::Float64,
            DataType::Boolean,
            DataType::Date32,
            DataType::Timestamp(TimeUnit::Microsecond, None),
            DataType::Int64,
            DataType::Utf8,
        ]
    );
    assert_eq!(out.num_rows(), 3);
    assert_eq!(
        out.column(0).as_primitive::<Int64Type>().values().to_vec(),
        vec![1, 2, 3]
    );
    let names = out.column(1).as_string::<i32>();
    assert_eq!(names.value(0), "a'b \"c\" <d>");
    assert!(names.is_null(1));
    assert_eq!(names.value(2), "ünïcødé\nline");
    let scores = out
        .column(2)
        .as_primitive::<arrow::datatypes::Float64Type>();
    assert_eq!(scores.value(1).to_bits(), (-2.25f64).to_bits());
    assert!(scores.is_null(2));
    assert!(out.column(3).as_boolean().is_null(1));
    let days = out.column(4).as_primitive::<arrow::datatypes::Date32Type>();
    assert_eq!(days.value(0), 19_723);
    let at = out
        .column(5)
        .as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
    assert_eq!(at.value(0), 1_704_164_645_123_000);
    assert_eq!(at.value(2), 86_400_000_000);
    let tags = out.column(7).as_string::<i32>();
    assert_eq!(tags.value(0), "[1,2]");
    assert!(tags.is_null(1));
    assert_eq!(tags.value(2), "[]");
}

fn two_sheet_workbook() -> Vec<u8> {
    let mut wb = Workbook::new();
    let s1 = wb.add_worksheet();
    s1.set_name("First").unwrap();
    s1.write_string(0, 0, "x").unwrap();
    s1.write_number(1, 0, 1).unwrap();
    let s2 = wb.add_worksheet();
    s2.set_name("Second").unwrap();
    s2.write_string(0, 0, "title line").unwrap();
    s2.write_string(2, 0, "qty").unwrap();
    s2.write_string(2, 1, "label").unwrap();
    s2.write_number(3, 0, 10).unwrap();
    s2.write_string(3, 1, "ten").unwrap();
    s2.write_string(4, 0, "eleven").unwrap();
    s2.write_string(4, 1, "bad qty").unwrap();
    s2.write_number(5, 0, 12).unwrap();
    s2.write_string(5, 1, "twelve").unwrap();
    wb.save_to_buffer().unwrap()
}

#[tokio::test]
async fn sheet_by_name_and_index_and_header_row() {
    let bytes = two_sheet_workbook();
    let first = read(&ExcelFormat::default(), bytes.clone(), opts())
        .await
        .unwrap();
    assert_eq!(first.schema().field(0).name(), "x");
    assert_eq!(first.num_rows(), 1);

    let fmt = ExcelFormat::default()
        .with_sheet_name("Second")
        .with_header(HeaderRow::At(3));
    let second = read(&fmt, bytes.clone(), opts()).await.unwrap();
    assert_eq!(second.schema().field(0).name(), "qty");
    assert_eq!(
        second.schema().field(0).data_type(),
        &DataType::Utf8,
        "10 and 'eleven' mix"
    );
    assert_eq!(second.num_rows(), 3);

    let by_index = ExcelFormat::default()
        .with_sheet_index(1)
        .with_header(HeaderRow::None);
    let raw = read(&by_index, bytes.clone(), opts()).await.unwrap();
    assert_eq!(raw.schema().field(0).name(), "column_1");
    assert_eq!(raw.schema().field(1).name(), "column_2");
    assert_eq!(raw.num_rows(), 5, "blank row 2 is skipped");

    let missing = read(
        &ExcelFormat::default().with_sheet_name("Nope"),
        bytes.clone(),
        opts(),
    )
    .await
    .unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::NotFound);
    assert!(missing.to_string().contains("Second"), "{missing}");
    let out_of_range = read(&ExcelFormat::default().with_sheet_index(9), bytes, opts())
        .await
        .unwrap_err();
    assert_eq!(out_of_range.kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn explicit_schema_names_sheet_row_and_column_of_a_bad_cell() {
    let fmt = ExcelFormat::default()
        .with_sheet_name("Second")
        .with_header(HeaderRow::At(3));
    let schema = Arc::new(Schema::new(vec![
        Field::new("qty", DataType::Int32, true),
        Field::new("label", DataType::Utf8, true),
    ]));
    let o = FormatReadOptions {
        schema: Some(schema.clone()),
        ..opts()
    };
    let err = read(&fmt, two_sheet_workbook(), o).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let msg = err.to_string();
    assert!(
        msg.contains("sheet 'Second' row 5 column A ('qty')"),
        "{msg}"
    );
    assert!(msg.contains("test.xlsx"), "{msg}");
    assert_eq!(err.connector(), Some("excel"));
    let loc = err.location().unwrap();
    assert_eq!(loc.table.as_deref(), Some("Second"));
    assert_eq!(loc.column.as_deref(), Some("qty"));

    let o = FormatReadOptions {
        schema: Some(schema),
        bad_rows: BadRows::Skip,
        ..opts()
    };
    let log = o.bad_row_log.clone();
    let out = read(&fmt, two_sheet_workbook(), o).await.unwrap();
    assert_eq!(out.num_rows(), 2);
    assert_eq!(
        out.column(0).as_primitive::<Int32Type>().values().to_vec(),
        vec![10, 12]
    );
    assert_eq!(log.count(), 1);
    assert_eq!(
        log.rows()[0].location.row,
        Some(4),
        "0-based sheet row of Excel row 5"
    );
}

#[tokio::test]
async fn not_a_zip_is_a_decode_error_naming_the_file() {
    let err = read(&ExcelFormat::default(), b"name,qty\nx,1\n".to_vec(), opts())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode);
    assert_eq!(
        err.location().and_then(|l| l.file.as_deref()),
        Some("test.xlsx")
    );
    // A zip that is not a workbook.
    let mut zip_like = b"PK\x03\x04".to_vec();
    zip_like.extend_from_slice(&[0u8; 64]);
    let err = read(&ExcelFormat::default(), zip_like, opts())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode);
}

#[tokio::test]
async fn infer_schema_and_batching() {
    let mut wb = Workbook::new();
    let s = wb.add_worksheet();
    s.write_string(0, 0, "n").unwrap();
    for i in 1..=25u32 {
        s.write_number(i, 0, f64::from(i) + 0.5).unwrap();
    }
    let bytes = wb.save_to_buffer().unwrap();
    let input = Arc::new(InMemoryBytes::new("n.xlsx", bytes.clone()));
    let schema = ExcelFormat::default()
        .infer_schema(input.clone())
        .await
        .unwrap();
    assert_eq!(schema.field(0).data_type(), &DataType::Float64);
    let o = FormatReadOptions {
        batch_rows: 10,
        ..FormatReadOptions::default()
    };
    let stream = ExcelFormat::default().read(input, o).await.unwrap();
    let batches: Vec<RecordBatch> = futures::TryStreamExt::try_collect(stream).await.unwrap();
    assert_eq!(
        batches
            .iter()
            .map(RecordBatch::num_rows)
            .collect::<Vec<_>>(),
        vec![10, 10, 5]
    );
}

#[test]
fn writer_rejects_a_cell_over_excels_limit() {
    let schema = Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8, true)]));
    let big = "x".repeat(40_000);
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![Arc::new(StringArray::from(vec![big.as_str()]))],
    )
    .unwrap();
    let mut w = ExcelFormat::default().writer(schema).unwrap();
    let err = w.write(&batch).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("32767"), "{err}");
}

#[tokio::test]
async fn registry_kind_reads_a_sheet_through_the_file_source() {
    use connector_core::{ReadRequest, SourceExt};
    let mut registry = connector_core::registry::Registry::new();
    connector_file::register_all(&mut registry);
    let kinds: Vec<&str> = registry.kinds().iter().map(|k| k.kind).collect();
    for kind in ["excel", "avro", "xml", "sql_insert"] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("book.xlsx"), two_sheet_workbook()).unwrap();
    let config = serde_json::json!({
        "type": "excel",
        "path": dir.path().to_str().unwrap(),
        "options": { "sheet": "Second", "header": { "at": 3 } },
    });
    let connector = registry.build_value(config).await.unwrap();
    let source = connector.as_source().unwrap();
    let stream = source
        .read_stream(ReadRequest::dataset("book.xlsx"))
        .await
        .unwrap();
    let batch = collect(stream).await.unwrap();
    assert_eq!(batch.schema().field(1).name(), "label");
    assert_eq!(batch.num_rows(), 3);
}
