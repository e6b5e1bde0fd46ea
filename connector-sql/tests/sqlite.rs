//! SQLite backend against real database files (bundled SQLite).
#![cfg(feature = "sqlite")]

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BooleanArray, Date32Array, Decimal128Array,
    Float32Array, Float64Array, Int8Array, Int16Array, Int32Array, Int64Array, RecordBatch,
    StringArray, Time64MicrosecondArray, TimestampMicrosecondArray, UInt8Array, UInt16Array,
    UInt32Array, UInt64Array,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use connector_core::stream::memory_stream;
use connector_core::{
    CmpOp, ErrorKind, Expr, ReadRequest, RecordBatchStreamAdapter, SchemaDriftPolicy, Sink,
    SinkExt, Source, SourceExt, WriteRequest,
};
use connector_sql::sqlite::{SqliteConfig, SqliteConnector, SqliteFactory};

fn db() -> (tempfile::TempDir, SqliteConnector) {
    let dir = tempfile::tempdir().unwrap();
    let c =
        SqliteConnector::new(SqliteConfig::new(dir.path().join("t.db").to_string_lossy())).unwrap();
    (dir, c)
}

fn matrix() -> RecordBatch {
    let fields = vec![
        Field::new("i8", DataType::Int8, true),
        Field::new("i16", DataType::Int16, true),
        Field::new("i32", DataType::Int32, true),
        Field::new("i64", DataType::Int64, false),
        Field::new("u8", DataType::UInt8, true),
        Field::new("u16", DataType::UInt16, true),
        Field::new("u32", DataType::UInt32, true),
        Field::new("u64", DataType::UInt64, true),
        Field::new("f32", DataType::Float32, true),
        Field::new("f64", DataType::Float64, true),
        Field::new("b", DataType::Boolean, true),
        Field::new("s", DataType::Utf8, true),
        Field::new("bin", DataType::Binary, true),
        Field::new("d", DataType::Date32, true),
        Field::new(
            "ts",
            DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, None),
            true,
        ),
        Field::new(
            "tstz",
            DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        Field::new(
            "t",
            DataType::Time64(arrow::datatypes::TimeUnit::Microsecond),
            true,
        ),
        Field::new("dec", DataType::Decimal128(20, 4), true),
    ];
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int8Array::from(vec![Some(i8::MIN), Some(i8::MAX), None])),
        Arc::new(Int16Array::from(vec![Some(i16::MIN), Some(1), None])),
        Arc::new(Int32Array::from(vec![Some(i32::MIN), Some(i32::MAX), None])),
        Arc::new(Int64Array::from(vec![i64::MIN, i64::MAX, 0])),
        Arc::new(UInt8Array::from(vec![Some(u8::MAX), Some(0), None])),
        Arc::new(UInt16Array::from(vec![Some(u16::MAX), Some(0), None])),
        Arc::new(UInt32Array::from(vec![Some(u32::MAX), Some(0), None])),
        Arc::new(UInt64Array::from(vec![
            Some(i64::MAX as u64),
            Some(0),
            None,
        ])),
        Arc::new(Float32Array::from(vec![Some(1.5), Some(-0.25), None])),
        Arc::new(Float64Array::from(vec![
            Some(f64::MAX),
            Some(-1e-300),
            None,
        ])),
        Arc::new(BooleanArray::from(vec![Some(true), Some(false), None])),
        Arc::new(StringArray::from(vec![
            Some("héllo \u{1F600}"),
            Some(""),
            None,
        ])),
        Arc::new(BinaryArray::from(vec![
            Some(&[0u8, 255, 1][..]),
            Some(&[][..]),
            None,
        ])),
        Arc::new(Date32Array::from(vec![Some(-719_162), Some(19_723), None])),
        Arc::new(TimestampMicrosecondArray::from(vec![
            Some(-1),
            Some(1_700_000_000_123_456),
            None,
        ])),
        Arc::new(
            TimestampMicrosecondArray::from(vec![Some(0), Some(1_700_000_000_000_001), None])
                .with_timezone("UTC"),
        ),
        Arc::new(Time64MicrosecondArray::from(vec![
            Some(0),
            Some(86_399_999_999),
            None,
        ])),
        Arc::new(
            Decimal128Array::from(vec![Some(-12_345_678_901_234_567), Some(1), None])
                .with_precision_and_scale(20, 4)
                .unwrap(),
        ),
    ];
    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap()
}

fn ids(schema: SchemaRef, ids: &[i64], names: &[&str]) -> RecordBatch {
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(ids.to_vec())),
            Arc::new(StringArray::from(names.to_vec())),
        ],
    )
    .unwrap()
}

fn kv_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
    ]))
}

#[tokio::test]
async fn type_matrix_round_trips() {
    let (_d, c) = db();
    let b = matrix();
    c.write_batch(WriteRequest::append("m"), b.clone())
        .await
        .unwrap();
    let back = c.read_batch(ReadRequest::dataset("m")).await.unwrap();
    assert_eq!(back.schema().fields().len(), b.schema().fields().len());
    for (i, f) in b.schema().fields().iter().enumerate() {
        assert_eq!(
            back.schema().field(i).data_type(),
            f.data_type(),
            "type of {}",
            f.name()
        );
        assert_eq!(
            back.column(i).as_ref(),
            b.column(i).as_ref(),
            "values of {}",
            f.name()
        );
    }
    // discover reports the same schema (types) and the table
    let ds = c.discover().await.unwrap();
    let m = ds.iter().find(|d| d.name == "m").unwrap();
    assert_eq!(m.schema.field(17).data_type(), &DataType::Decimal128(20, 4));
}

#[tokio::test]
async fn pushdown_projection_filter_limit() {
    let (_d, c) = db();
    let s = kv_schema();
    c.write_batch(
        WriteRequest::append("t"),
        ids(s, &[1, 2, 3, 4], &["a", "b", "c", "d"]),
    )
    .await
    .unwrap();
    let r = ReadRequest::dataset("t")
        .with_projection(["name"])
        .with_filter(Expr::cmp("id", CmpOp::GtEq, 2).and(Expr::is_in("name", ["b", "d", "x"])))
        .with_limit(5);
    let b = c.read_batch(r).await.unwrap();
    assert_eq!(b.num_columns(), 1);
    let names: Vec<&str> = b
        .column(0)
        .as_string::<i32>()
        .iter()
        .map(Option::unwrap)
        .collect();
    assert_eq!(names, ["b", "d"]);
    let b = c
        .read_batch(ReadRequest::dataset("t").with_limit(3))
        .await
        .unwrap();
    assert_eq!(b.num_rows(), 3);
    let b = c
        .read_batch(ReadRequest::query(
            "SELECT count(*) AS n, max(name) AS m FROM t",
        ))
        .await
        .unwrap();
    assert_eq!(
        b.column(0)
            .as_primitive::<arrow::datatypes::Int64Type>()
            .value(0),
        4
    );
    assert_eq!(b.column(1).as_string::<i32>().value(0), "d");
}

#[tokio::test]
async fn hostile_identifiers_and_injection_are_data() {
    let (_d, c) = db();
    let evil_table = "we\"ird'; DROP TABLE x; --";
    let evil_col = "co\"l 'x'";
    let schema = Arc::new(Schema::new(vec![Field::new(
        evil_col,
        DataType::Utf8,
        true,
    )]));
    let payload = "'); DROP TABLE t; -- \" ?1 \\";
    let b = RecordBatch::try_new(
        schema,
        vec![Arc::new(StringArray::from(vec![payload, "ok"]))],
    )
    .unwrap();
    // a dotted name addresses schema.table: quote the table name as one part
    let target = format!("\"{}\"", evil_table.replace('"', "\"\""));
    c.write_batch(WriteRequest::append(target.clone()), b)
        .await
        .unwrap();
    let got = c
        .read_batch(ReadRequest::dataset(target).with_filter(Expr::eq(evil_col, payload)))
        .await
        .unwrap();
    assert_eq!(got.num_rows(), 1);
    assert_eq!(got.column(0).as_string::<i32>().value(0), payload);
    assert!(
        c.discover()
            .await
            .unwrap()
            .iter()
            .any(|d| d.name == evil_table)
    );
}

#[tokio::test]
async fn upsert_delete_overwrite() {
    let (_d, c) = db();
    let s = kv_schema();
    c.write_batch(
        WriteRequest::upsert("u", ["id"]),
        ids(s.clone(), &[1, 2], &["a", "b"]),
    )
    .await
    .unwrap();
    c.write_batch(
        WriteRequest::upsert("u", ["id"]),
        ids(s.clone(), &[2, 3], &["B", "c"]),
    )
    .await
    .unwrap();
    let b = c.read_batch(ReadRequest::dataset("u")).await.unwrap();
    assert_eq!(b.num_rows(), 3);
    let r = c
        .read_batch(ReadRequest::dataset("u").with_filter(Expr::eq("id", 2)))
        .await
        .unwrap();
    assert_eq!(r.column(1).as_string::<i32>().value(0), "B");
    let rep = c
        .write_batch(
            WriteRequest::delete("u", ["id"]),
            ids(s.clone(), &[1, 9], &["", ""]),
        )
        .await
        .unwrap();
    assert_eq!(rep.rows, 2);
    assert_eq!(rep.rows_deleted, Some(1));
    c.write_batch(WriteRequest::overwrite("u"), ids(s.clone(), &[7], &["z"]))
        .await
        .unwrap();
    let b = c.read_batch(ReadRequest::dataset("u")).await.unwrap();
    assert_eq!(b.num_rows(), 1);
    // upsert into a table without a unique key replaces by delete + insert
    c.write_batch(
        WriteRequest::append("nokey"),
        ids(s.clone(), &[1, 2], &["a", "b"]),
    )
    .await
    .unwrap();
    c.write_batch(
        WriteRequest::upsert("nokey", ["id"]),
        ids(s, &[1, 3], &["A", "c"]),
    )
    .await
    .unwrap();
    let b = c
        .read_batch(ReadRequest::dataset("nokey").with_filter(Expr::eq("id", 1)))
        .await
        .unwrap();
    assert_eq!(b.num_rows(), 1);
    assert_eq!(b.column(1).as_string::<i32>().value(0), "A");
    assert_eq!(
        c.read_batch(ReadRequest::dataset("nokey"))
            .await
            .unwrap()
            .num_rows(),
        3
    );
}

#[tokio::test]
async fn failed_write_leaves_target_unchanged() {
    let (_d, c) = db();
    let s = kv_schema();
    c.write_batch(
        WriteRequest::upsert("f", ["id"]),
        ids(s.clone(), &[1, 2], &["a", "b"]),
    )
    .await
    .unwrap();
    // second batch fails midway: the stream yields an error after one good batch
    let good = ids(s.clone(), &[10, 11], &["x", "y"]);
    let stream = futures::stream::iter(vec![
        Ok(good),
        Err(connector_core::Error::new(ErrorKind::Io, "source broke")),
    ]);
    let e = c
        .write(
            WriteRequest::overwrite("f"),
            RecordBatchStreamAdapter::boxed(s.clone(), stream),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io);
    // a constraint violation midway (duplicate key in append) also rolls back everything
    let e = c
        .write_batch(
            WriteRequest::append("f"),
            ids(s.clone(), &[3, 3], &["c", "c"]),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    assert_eq!(e.connector(), Some("sqlite"));
    assert!(e.vendor_code().is_some());
    let b = c.read_batch(ReadRequest::dataset("f")).await.unwrap();
    let got: Vec<i64> = b
        .column(0)
        .as_primitive::<arrow::datatypes::Int64Type>()
        .values()
        .to_vec();
    assert_eq!(got, vec![1, 2]);
    // a created table is rolled back with the failed write
    let e = c
        .write(
            WriteRequest::append("newtab"),
            RecordBatchStreamAdapter::boxed(
                s.clone(),
                futures::stream::iter(vec![Err(connector_core::Error::new(ErrorKind::Io, "x"))]),
            ),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io);
    assert!(
        !c.discover()
            .await
            .unwrap()
            .iter()
            .any(|d| d.name == "newtab")
    );
}

#[tokio::test]
async fn partitioned_read_returns_every_row_once() {
    let (_d, c) = db();
    let s = kv_schema();
    let n = 10_007_i64;
    let idv: Vec<i64> = (0..n).collect();
    let names: Vec<String> = idv.iter().map(|i| format!("n{i}")).collect();
    let b = RecordBatch::try_new(
        s.clone(),
        vec![
            Arc::new(Int64Array::from(idv)),
            Arc::new(StringArray::from(names)),
        ],
    )
    .unwrap();
    c.write_batch(WriteRequest::append("p"), b).await.unwrap();
    // holes in the rowid range
    c.execute_batch("DELETE FROM p WHERE id % 7 = 3")
        .await
        .unwrap();
    let parts = c
        .plan(&ReadRequest::dataset("p").with_batch_rows(1000), 4)
        .await
        .unwrap();
    assert_eq!(parts.len(), 4);
    let mut seen = Vec::new();
    for p in parts {
        let s = c.read(p).await.unwrap();
        let batches = connector_core::collect(s).await.unwrap();
        seen.extend(
            batches
                .column(0)
                .as_primitive::<arrow::datatypes::Int64Type>()
                .values()
                .iter()
                .copied(),
        );
    }
    seen.sort_unstable();
    let expected: Vec<i64> = (0..n).filter(|i| i % 7 != 3).collect();
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn schema_drift_add_columns_and_fail() {
    let (_d, c) = db();
    let s = kv_schema();
    c.write_batch(WriteRequest::append("dr"), ids(s, &[1], &["a"]))
        .await
        .unwrap();
    let s2 = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int32, false),
        Field::new("extra", DataType::Float64, true),
    ]));
    let b2 = RecordBatch::try_new(
        s2,
        vec![
            Arc::new(Int32Array::from(vec![2])),
            Arc::new(Float64Array::from(vec![0.5])),
        ],
    )
    .unwrap();
    let e = c
        .write_batch(WriteRequest::append("dr"), b2.clone())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::SchemaMismatch);
    let rep = c
        .write_batch(
            WriteRequest::append("dr").with_schema_drift(SchemaDriftPolicy::AddColumns),
            b2,
        )
        .await
        .unwrap();
    assert_eq!(rep.columns_added, vec!["extra".to_string()]);
    let b = c.read_batch(ReadRequest::dataset("dr")).await.unwrap();
    assert_eq!(b.num_columns(), 3);
    assert_eq!(b.num_rows(), 2);
    assert_eq!(b.column(2).null_count(), 1);
}

#[tokio::test]
async fn bad_value_names_table_column_row() {
    let (_d, c) = db();
    c.execute_batch("CREATE TABLE bad (id INTEGER, d DATE); INSERT INTO bad VALUES (1, '2024-01-01'), (2, 'not a date');")
        .await
        .unwrap();
    let e = c.read_batch(ReadRequest::dataset("bad")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    let loc = e.location().unwrap();
    assert_eq!(loc.table.as_deref(), Some("bad"));
    assert_eq!(loc.column.as_deref(), Some("d"));
    assert_eq!(loc.row, Some(1));
    // an undeclared column reads as text in a table (as discover says), typed in a query
    c.execute_batch("CREATE TABLE untyped (x); INSERT INTO untyped VALUES (7), ('a');")
        .await
        .unwrap();
    let b = c.read_batch(ReadRequest::dataset("untyped")).await.unwrap();
    assert_eq!(b.column(0).as_string::<i32>().value(0), "7");
    assert_eq!(
        c.dataset_schema("untyped")
            .await
            .unwrap()
            .field(0)
            .data_type(),
        &DataType::Utf8
    );
    let b = c
        .read_batch(ReadRequest::query("SELECT 1 + 1 AS two"))
        .await
        .unwrap();
    assert_eq!(b.schema().field(0).data_type(), &DataType::Int64);
    let e = c
        .read_batch(ReadRequest::dataset("missing"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert_eq!(e.operation(), Some("plan"));
}

#[tokio::test]
async fn memory_database_and_registry() {
    let mut r = connector_core::registry::Registry::with_core();
    r.register(SqliteFactory);
    let conn = r
        .build_json(r#"{"type":"sqlite","path":":memory:"}"#)
        .await
        .unwrap();
    conn.check().await.unwrap();
    let sink = conn.as_sink().unwrap();
    let src = conn.as_source().unwrap();
    sink.write(
        WriteRequest::append("m"),
        memory_stream(kv_schema(), vec![ids(kv_schema(), &[1, 2], &["a", "b"])]),
    )
    .await
    .unwrap();
    let b = src.read_batch(ReadRequest::dataset("m")).await.unwrap();
    assert_eq!(b.num_rows(), 2);
    let e = r
        .build_json(r#"{"type":"sqlite","path":"/nonexistent-dir/x.db","create":false}"#)
        .await
        .unwrap()
        .check()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert_eq!(e.connector(), Some("sqlite"));
}

#[tokio::test]
async fn streams_in_bounded_batches() {
    let (_d, c) = db();
    c.execute_batch(
        "CREATE TABLE big (x INTEGER); WITH RECURSIVE r(i) AS (SELECT 0 UNION ALL SELECT i+1 FROM r WHERE i < 49999) INSERT INTO big SELECT i FROM r;",
    )
    .await
    .unwrap();
    let mut s = c
        .read_stream(ReadRequest::dataset("big").with_batch_rows(4096))
        .await
        .unwrap();
    let mut total = 0;
    while let Some(b) = futures::StreamExt::next(&mut s).await {
        let b = b.unwrap();
        assert!(b.num_rows() <= 4096);
        total += b.num_rows();
    }
    assert_eq!(total, 50_000);
    assert!(!Array::is_empty(&Int64Array::from(vec![1])));
}

#[tokio::test]
async fn conformance_suite() {
    use arrow::datatypes::TimeUnit;
    use connector_core::testkit::{Harness, counter_names, run_all};
    let (_d, c) = db();
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
        DataType::Utf8,
        DataType::Binary,
        DataType::Date32,
        DataType::Time64(TimeUnit::Microsecond),
        DataType::Timestamp(TimeUnit::Microsecond, None),
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        DataType::Decimal128(38, 10),
        DataType::Decimal128(10, 2),
    ];
    let h = Harness::new(Arc::new(c.clone()), Arc::new(c), counter_names("conf")).with_types(types);
    let reports = run_all(&h).await;
    assert!(reports.iter().any(|r| r.case == "round_trip"));
}
