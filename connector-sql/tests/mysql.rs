//! MySQL/MariaDB backend against the real server on 127.0.0.1:3306 (root, no password), or the
//! one named by `CONNECTOR_TEST_MYSQL_URL`. Each test works in its own fresh database.
#![cfg(feature = "mysql")]

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BooleanArray, Date32Array, Decimal128Array,
    DurationMicrosecondArray, Float32Array, Float64Array, Int8Array, Int16Array, Int32Array,
    Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray, UInt8Array, UInt16Array,
    UInt32Array, UInt64Array,
};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef, TimeUnit};
use connector_core::{
    CmpOp, ErrorKind, Expr, ReadRequest, RecordBatchStreamAdapter, SchemaDriftPolicy, Sink,
    SinkExt, Source, SourceExt, WriteRequest,
};
use connector_sql::mysql::{MySqlConfig, MySqlConnector, MySqlFactory, ZeroDatePolicy};

fn base_url() -> String {
    std::env::var("CONNECTOR_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".to_owned())
}

/// A fresh database, dropped when the test ends (also on panic).
struct TestDb {
    name: String,
    c: MySqlConnector,
}

impl TestDb {
    async fn new(test: &str) -> TestDb {
        let admin = MySqlConnector::new(MySqlConfig::from_url(base_url())).unwrap();
        if let Err(e) = Source::check(&admin).await {
            panic!(
                "MariaDB/MySQL is not reachable at {} ({e}). Start it with `cargo xtask peers up` \
                 or `start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd`, \
                 or set CONNECTOR_TEST_MYSQL_URL.",
                base_url().split('@').next_back().unwrap_or_default()
            );
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!("t_{test}_{}_{nanos}", std::process::id());
        admin
            .execute(&format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
            .await
            .unwrap();
        admin.close().await;
        let c =
            MySqlConnector::new(MySqlConfig::from_url(base_url()).with_database(&name)).unwrap();
        TestDb { name, c }
    }

    fn with(&self, f: impl FnOnce(&mut MySqlConfig)) -> MySqlConnector {
        let mut cfg = MySqlConfig::from_url(base_url()).with_database(&self.name);
        f(&mut cfg);
        MySqlConnector::new(cfg).unwrap()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let admin = MySqlConnector::new(MySqlConfig::from_url(base_url())).unwrap();
                let _ = admin
                    .execute(&format!("DROP DATABASE IF EXISTS `{name}`"))
                    .await;
                admin.close().await;
            });
        })
        .join();
    }
}

fn kv_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
    ]))
}

fn kv(ids: &[i64], names: &[&str]) -> RecordBatch {
    RecordBatch::try_new(
        kv_schema(),
        vec![
            Arc::new(Int64Array::from(ids.to_vec())),
            Arc::new(StringArray::from(names.to_vec())),
        ],
    )
    .unwrap()
}

fn ids_of(b: &RecordBatch) -> Vec<i64> {
    let mut v: Vec<i64> = b.column(0).as_primitive::<Int64Type>().values().to_vec();
    v.sort_unstable();
    v
}

#[tokio::test]
async fn server_types_map_exactly() {
    let db = TestDb::new("types").await;
    db.c.execute(
        "CREATE TABLE ty (
            b BOOL, ti TINYINT, tu TINYINT UNSIGNED, si SMALLINT, su SMALLINT UNSIGNED,
            mi MEDIUMINT, i INT, iu INT UNSIGNED, bi BIGINT, bu BIGINT UNSIGNED,
            f FLOAT, d DOUBLE, dec1 DECIMAL(38,10), dec2 DECIMAL(5,0) UNSIGNED, dbig DECIMAL(65,2),
            dt DATE, dtm DATETIME(6), ts TIMESTAMP(3) NULL, tm TIME(6), y YEAR,
            c CHAR(3), vc VARCHAR(20), tx TEXT, vb VARBINARY(8), bl BLOB, bn BINARY(2),
            j JSON, e ENUM('a','b'), st SET('x','y'), bt BIT(1), b12 BIT(12), g GEOMETRY
        )",
    )
    .await
    .unwrap();
    db.c.execute(
        "INSERT INTO ty VALUES (
            1, -128, 255, -32768, 65535, -8388608, -2147483648, 4294967295, -9223372036854775808,
            18446744073709551615, 1.5, -2.25, '-1234567890123456789012345678.0123456789', 99999,
            '123456789012345678901234567890123456789012345678901234567890123.45',
            '2024-02-29', '9999-12-31 23:59:59.999999', '2038-01-19 03:14:07.123', '-838:59:59.000000', 2155,
            'ab', 'héllo', 'long \u{1F600}', x'00ff', x'0102', x'ab', '{\"k\": [1, 2]}', 'b', 'x,y', b'1',
            b'101010101010', ST_GeomFromText('POINT(1 2)')
        ), (NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
            NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
    )
    .await
    .unwrap();
    let b = db.c.read_batch(ReadRequest::dataset("ty")).await.unwrap();
    let s = b.schema();
    let t = |n: &str| s.field_with_name(n).unwrap().data_type().clone();
    let col = |n: &str| b.column(s.index_of(n).unwrap()).clone();
    let expect = [
        ("b", DataType::Boolean),
        ("ti", DataType::Int8),
        ("tu", DataType::UInt8),
        ("si", DataType::Int16),
        ("su", DataType::UInt16),
        ("mi", DataType::Int32),
        ("i", DataType::Int32),
        ("iu", DataType::UInt32),
        ("bi", DataType::Int64),
        ("bu", DataType::UInt64),
        ("f", DataType::Float32),
        ("d", DataType::Float64),
        ("dec1", DataType::Decimal128(38, 10)),
        ("dec2", DataType::Decimal128(5, 0)),
        ("dbig", DataType::Decimal256(65, 2)),
        ("dt", DataType::Date32),
        ("dtm", DataType::Timestamp(TimeUnit::Microsecond, None)),
        (
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        ),
        ("tm", DataType::Duration(TimeUnit::Microsecond)),
        ("y", DataType::Int16),
        ("c", DataType::Utf8),
        ("vc", DataType::Utf8),
        ("tx", DataType::Utf8),
        ("vb", DataType::Binary),
        ("bl", DataType::Binary),
        ("bn", DataType::Binary),
        ("j", DataType::Utf8),
        ("e", DataType::Utf8),
        ("st", DataType::Utf8),
        ("bt", DataType::Boolean),
        ("b12", DataType::UInt64),
        ("g", DataType::Binary),
    ];
    for (n, dt) in &expect {
        assert_eq!(&t(n), dt, "type of {n}");
        assert!(col(n).is_null(1), "{n} row 2 is NULL");
    }
    assert!(col("b").as_boolean().value(0));
    assert_eq!(
        col("ti")
            .as_primitive::<arrow::datatypes::Int8Type>()
            .value(0),
        -128
    );
    assert_eq!(col("bi").as_primitive::<Int64Type>().value(0), i64::MIN);
    assert_eq!(
        col("bu")
            .as_primitive::<arrow::datatypes::UInt64Type>()
            .value(0),
        u64::MAX
    );
    assert_eq!(
        col("iu")
            .as_primitive::<arrow::datatypes::UInt32Type>()
            .value(0),
        u32::MAX
    );
    assert_eq!(
        col("dec1")
            .as_primitive::<arrow::datatypes::Decimal128Type>()
            .value(0),
        -12_345_678_901_234_567_890_123_456_780_123_456_789_i128
    );
    assert_eq!(
        col("dbig")
            .as_primitive::<arrow::datatypes::Decimal256Type>()
            .value(0)
            .to_string(),
        "12345678901234567890123456789012345678901234567890123456789012345"
    );
    assert_eq!(
        col("dt")
            .as_primitive::<arrow::datatypes::Date32Type>()
            .value(0),
        19_782
    );
    assert_eq!(
        col("dtm")
            .as_primitive::<arrow::datatypes::TimestampMicrosecondType>()
            .value(0),
        253_402_300_799_999_999
    );
    assert_eq!(
        col("ts")
            .as_primitive::<arrow::datatypes::TimestampMicrosecondType>()
            .value(0),
        2_147_483_647_123_000
    );
    assert_eq!(
        col("tm")
            .as_primitive::<arrow::datatypes::DurationMicrosecondType>()
            .value(0),
        -(838 * 3600 + 59 * 60 + 59) * 1_000_000
    );
    assert_eq!(
        col("y")
            .as_primitive::<arrow::datatypes::Int16Type>()
            .value(0),
        2155
    );
    assert_eq!(col("vc").as_string::<i32>().value(0), "héllo");
    assert_eq!(col("tx").as_string::<i32>().value(0), "long \u{1F600}");
    assert_eq!(col("vb").as_binary::<i32>().value(0), &[0, 255]);
    assert_eq!(col("bn").as_binary::<i32>().value(0), &[0xab, 0]);
    assert!(col("j").as_string::<i32>().value(0).contains("\"k\""));
    assert_eq!(col("st").as_string::<i32>().value(0), "x,y");
    assert!(col("bt").as_boolean().value(0));
    assert_eq!(
        col("b12")
            .as_primitive::<arrow::datatypes::UInt64Type>()
            .value(0),
        0b1010_1010_1010
    );
    // WKB point after a 4-byte SRID: byte order 1, type 1
    assert_eq!(
        &col("g").as_binary::<i32>().value(0)[4..9],
        &[1, 1, 0, 0, 0]
    );
    // discover reports the same schema, the primary key and an estimate
    let ds = db.c.discover().await.unwrap();
    let ty = ds.iter().find(|d| d.name == "ty").unwrap();
    assert_eq!(ty.schema.fields().len(), expect.len());
    assert_eq!(
        ty.schema.field(12).data_type(),
        &DataType::Decimal128(38, 10)
    );
}

fn arrow_matrix() -> RecordBatch {
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
        Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, None), true),
        Field::new(
            "tstz",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        Field::new("dur", DataType::Duration(TimeUnit::Microsecond), true),
        Field::new("dec", DataType::Decimal128(38, 6), true),
    ];
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int8Array::from(vec![Some(i8::MIN), Some(i8::MAX), None])),
        Arc::new(Int16Array::from(vec![Some(i16::MIN), Some(i16::MAX), None])),
        Arc::new(Int32Array::from(vec![Some(i32::MIN), Some(i32::MAX), None])),
        Arc::new(Int64Array::from(vec![i64::MIN, i64::MAX, 0])),
        Arc::new(UInt8Array::from(vec![Some(u8::MAX), Some(0), None])),
        Arc::new(UInt16Array::from(vec![Some(u16::MAX), Some(0), None])),
        Arc::new(UInt32Array::from(vec![Some(u32::MAX), Some(0), None])),
        Arc::new(UInt64Array::from(vec![Some(u64::MAX), Some(0), None])),
        Arc::new(Float32Array::from(vec![Some(1.5), Some(-3.25e10), None])),
        Arc::new(Float64Array::from(vec![
            Some(f64::MAX),
            Some(-1e-300),
            None,
        ])),
        Arc::new(BooleanArray::from(vec![Some(true), Some(false), None])),
        Arc::new(StringArray::from(vec![
            Some("héllo \u{1F600} 'q' \"d\" \\"),
            Some(""),
            None,
        ])),
        Arc::new(BinaryArray::from(vec![
            Some(&[0u8, 255, 39, 92][..]),
            Some(&[][..]),
            None,
        ])),
        Arc::new(Date32Array::from(vec![
            Some(-719_162),
            Some(2_932_896),
            None,
        ])),
        Arc::new(TimestampMicrosecondArray::from(vec![
            Some(-1),
            Some(253_402_300_799_999_999),
            None,
        ])),
        Arc::new(
            TimestampMicrosecondArray::from(vec![
                Some(1_000_000),
                Some(2_147_483_647_999_999),
                None,
            ])
            .with_timezone("UTC"),
        ),
        Arc::new(DurationMicrosecondArray::from(vec![
            Some(-3_020_399_000_000),
            Some(1),
            None,
        ])),
        Arc::new(
            Decimal128Array::from(vec![
                Some(-99_999_999_999_999_999_999_999_999_999_999_999_999_i128),
                Some(1),
                None,
            ])
            .with_precision_and_scale(38, 6)
            .unwrap(),
        ),
    ];
    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap()
}

#[tokio::test]
async fn arrow_types_round_trip() {
    let db = TestDb::new("roundtrip").await;
    let b = arrow_matrix();
    db.c.write_batch(WriteRequest::append("m"), b.clone())
        .await
        .unwrap();
    let back = db.c.read_batch(ReadRequest::dataset("m")).await.unwrap();
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
}

#[tokio::test]
async fn pushdown_and_native_query() {
    let db = TestDb::new("pushdown").await;
    db.c.write_batch(
        WriteRequest::append("t"),
        kv(&[1, 2, 3, 4], &["a", "b", "c", "d"]),
    )
    .await
    .unwrap();
    let r = ReadRequest::dataset("t")
        .with_projection(["name"])
        .with_filter(
            Expr::cmp("id", CmpOp::GtEq, 2)
                .and(Expr::is_in("name", ["b", "d", "x"]).or(Expr::IsNull("name".into()))),
        )
        .with_limit(10);
    let b = db.c.read_batch(r).await.unwrap();
    assert_eq!(b.num_columns(), 1);
    let mut names: Vec<&str> = b
        .column(0)
        .as_string::<i32>()
        .iter()
        .map(Option::unwrap)
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["b", "d"]);
    assert_eq!(
        db.c.read_batch(ReadRequest::dataset("t").with_limit(3))
            .await
            .unwrap()
            .num_rows(),
        3
    );
    let q =
        db.c.read_batch(
            ReadRequest::query("SELECT COUNT(*) AS n, SUM(id) AS s FROM t").with_filter(Expr::cmp(
                "n",
                CmpOp::Gt,
                0,
            )),
        )
        .await
        .unwrap();
    assert_eq!(q.column(0).as_primitive::<Int64Type>().value(0), 4);
    assert_eq!(
        q.schema().field(1).data_type(),
        &DataType::Decimal256(41, 0)
    );
    assert_eq!(
        q.column(1)
            .as_primitive::<arrow::datatypes::Decimal256Type>()
            .value(0)
            .to_string(),
        "10"
    );
    let e =
        db.c.read_batch(ReadRequest::dataset("missing"))
            .await
            .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert_eq!(e.connector(), Some("mysql"));
    let e =
        db.c.read_batch(ReadRequest::query("SELECT nope FROM t"))
            .await
            .unwrap_err();
    assert_eq!(e.vendor_code(), Some(1054));
    assert_eq!(e.sqlstate(), Some("42S22"));
}

#[tokio::test]
async fn hostile_identifiers_and_injection_are_data() {
    let db = TestDb::new("hostile").await;
    let evil_col = "co`l 'x\" ; DROP";
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new(evil_col, DataType::Utf8, true),
    ]));
    let payload = "'); DROP TABLE t; -- \\' ? `x`";
    let b = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(vec![1, 2])),
            Arc::new(StringArray::from(vec![payload, "ok"])),
        ],
    )
    .unwrap();
    let target = "we`ird'; DROP TABLE x; --";
    db.c.write_batch(WriteRequest::upsert(target, ["id"]), b.clone())
        .await
        .unwrap();
    db.c.write_batch(WriteRequest::upsert(target, ["id"]), b)
        .await
        .unwrap();
    let got =
        db.c.read_batch(ReadRequest::dataset(target).with_filter(Expr::eq(evil_col, payload)))
            .await
            .unwrap();
    assert_eq!(got.num_rows(), 1);
    assert_eq!(got.column(1).as_string::<i32>().value(0), payload);
    let ds = db.c.discover().await.unwrap();
    let d = ds.iter().find(|d| d.name == target).unwrap();
    assert_eq!(d.schema.field(1).name(), evil_col);
}

#[tokio::test]
async fn upsert_delete_overwrite() {
    let db = TestDb::new("modes").await;
    db.c.write_batch(WriteRequest::upsert("u", ["id"]), kv(&[1, 2], &["a", "b"]))
        .await
        .unwrap();
    db.c.write_batch(WriteRequest::upsert("u", ["id"]), kv(&[2, 3], &["B", "c"]))
        .await
        .unwrap();
    let b = db.c.read_batch(ReadRequest::dataset("u")).await.unwrap();
    assert_eq!(ids_of(&b), vec![1, 2, 3]);
    let r =
        db.c.read_batch(ReadRequest::dataset("u").with_filter(Expr::eq("id", 2)))
            .await
            .unwrap();
    assert_eq!(r.column(1).as_string::<i32>().value(0), "B");
    let rep =
        db.c.write_batch(WriteRequest::delete("u", ["id"]), kv(&[1, 9], &["", ""]))
            .await
            .unwrap();
    assert_eq!((rep.rows, rep.rows_deleted), (2, Some(1)));
    db.c.write_batch(WriteRequest::overwrite("u"), kv(&[7], &["z"]))
        .await
        .unwrap();
    assert_eq!(
        ids_of(&db.c.read_batch(ReadRequest::dataset("u")).await.unwrap()),
        vec![7]
    );
    // delete from a missing table is NotFound, not a created table
    let e =
        db.c.write_batch(WriteRequest::delete("nope", ["id"]), kv(&[1], &["a"]))
            .await
            .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn failed_writes_leave_target_unchanged() {
    let db = TestDb::new("atomic").await;
    db.c.write_batch(WriteRequest::upsert("f", ["id"]), kv(&[1, 2], &["a", "b"]))
        .await
        .unwrap();
    // overwrite whose input fails after a batch: the DELETE and the rows roll back
    let stream = futures::stream::iter(vec![
        Ok(kv(&[10, 11], &["x", "y"])),
        Err(connector_core::Error::new(ErrorKind::Io, "source broke")),
    ]);
    let e =
        db.c.write(
            WriteRequest::overwrite("f"),
            RecordBatchStreamAdapter::boxed(kv_schema(), stream),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io);
    // a duplicate key in the third statement: earlier statements roll back too
    let c = db.with(|c| c.insert_rows = 2);
    let e = c
        .write_batch(
            WriteRequest::append("f"),
            kv(&[3, 4, 5, 6, 1], &["c", "d", "e", "f", "dup"]),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    assert_eq!(e.vendor_code(), Some(1062));
    assert_eq!(e.sqlstate(), Some("23000"));
    assert_eq!(e.location().unwrap().table.as_deref(), Some("f"));
    assert_eq!(
        ids_of(&db.c.read_batch(ReadRequest::dataset("f")).await.unwrap()),
        vec![1, 2]
    );
    // drift that fails midway: the added column is dropped again
    let s2 = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("extra", DataType::Int32, true),
    ]));
    let b2 = RecordBatch::try_new(
        s2,
        vec![
            Arc::new(Int64Array::from(vec![1])),
            Arc::new(Int32Array::from(vec![5])),
        ],
    )
    .unwrap();
    let e =
        db.c.write_batch(
            WriteRequest::append("f").with_schema_drift(SchemaDriftPolicy::AddColumns),
            b2,
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    let schema = db.c.dataset_schema("f").await.unwrap();
    assert_eq!(
        schema.fields().len(),
        2,
        "added column rolled back: {schema:?}"
    );
    // a created table is dropped again when the write fails
    let stream = futures::stream::iter(vec![Err(connector_core::Error::new(ErrorKind::Io, "x"))]);
    db.c.write(
        WriteRequest::append("created"),
        RecordBatchStreamAdapter::boxed(kv_schema(), stream),
    )
    .await
    .unwrap_err();
    assert!(
        !db.c
            .discover()
            .await
            .unwrap()
            .iter()
            .any(|d| d.name == "created")
    );
}

#[tokio::test]
async fn partitioned_read_returns_every_row_once() {
    let db = TestDb::new("parts").await;
    let n = 20_011_i64;
    let ids: Vec<i64> = (0..n).map(|i| i * 3 - 5000).collect();
    let names: Vec<String> = ids.iter().map(|i| format!("n{i}")).collect();
    let b = RecordBatch::try_new(
        kv_schema(),
        vec![
            Arc::new(Int64Array::from(ids.clone())),
            Arc::new(StringArray::from(names)),
        ],
    )
    .unwrap();
    db.c.write_batch(WriteRequest::upsert("p", ["id"]), b)
        .await
        .unwrap();
    db.c.execute("ALTER TABLE p DROP INDEX upsert_key, ADD PRIMARY KEY (id)")
        .await
        .unwrap();
    let req = ReadRequest::dataset("p").with_batch_rows(1000);
    let parts = db.c.plan(&req, 4).await.unwrap();
    assert_eq!(parts.len(), 4);
    let mut seen = Vec::new();
    for p in parts {
        let b = connector_core::collect(db.c.read(p).await.unwrap())
            .await
            .unwrap();
        seen.extend(
            b.column(0)
                .as_primitive::<Int64Type>()
                .values()
                .iter()
                .copied(),
        );
    }
    seen.sort_unstable();
    assert_eq!(seen, ids);
    // a configured partition column with NULLs: the NULL rows come exactly once
    db.c.execute("CREATE TABLE q (k INT NULL, v INT); INSERT INTO q VALUES (NULL, 1), (1, 2), (5, 3), (NULL, 4), (9, 5)")
        .await
        .unwrap();
    let c = db.with(|c| c.partition_column = Some("k".into()));
    let (_, batches) = c
        .read_all_partitioned(ReadRequest::dataset("q"), 3)
        .await
        .unwrap();
    let mut v: Vec<i32> = batches
        .iter()
        .flat_map(|b| {
            b.column(1)
                .as_primitive::<arrow::datatypes::Int32Type>()
                .values()
                .to_vec()
        })
        .collect();
    v.sort_unstable();
    assert_eq!(v, vec![1, 2, 3, 4, 5]);
}

#[tokio::test]
async fn bad_credentials_are_authentication_errors() {
    let db = TestDb::new("auth").await;
    let user = format!("u_{}", db.name.len() + std::process::id() as usize);
    db.c.execute(&format!(
        "CREATE USER IF NOT EXISTS '{user}'@'%' IDENTIFIED BY 'right-pw'"
    ))
    .await
    .unwrap();
    db.c.execute(&format!(
        "CREATE USER IF NOT EXISTS '{user}'@'localhost' IDENTIFIED BY 'right-pw'"
    ))
    .await
    .unwrap();
    let c = db.with(|c| {
        c.user = Some(user.clone());
        c.password = Some("wrong-pw-hunter2".into());
        c.url = None;
    });
    let e = Source::check(&c).await.unwrap_err();
    db.c.execute(&format!(
        "DROP USER IF EXISTS '{user}'@'%', '{user}'@'localhost'"
    ))
    .await
    .unwrap();
    assert_eq!(e.kind(), ErrorKind::Authentication, "{e}");
    assert_eq!(e.vendor_code(), Some(1045));
    assert!(!e.is_temporary());
    assert!(!format!("{e} {e:?} {c:?}").contains("hunter2"));
}

#[tokio::test]
async fn closed_port_is_temporary_connection_error() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let c = MySqlConnector::new(MySqlConfig {
        port: Some(port),
        user: Some("root".into()),
        connect_timeout_ms: 2000,
        ..MySqlConfig::default()
    })
    .unwrap();
    let e = Source::check(&c).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connection, "{e}");
    assert!(e.is_temporary());
    assert_eq!(e.operation(), Some("check"));
}

#[tokio::test]
async fn statement_timeout_is_timeout() {
    let db = TestDb::new("timeout").await;
    let c = db.with(|c| c.statement_timeout_ms = Some(500));
    let started = std::time::Instant::now();
    let e = c
        .read_batch(ReadRequest::query("SELECT SLEEP(5) AS s"))
        .await
        .unwrap_err();
    assert!(started.elapsed() < std::time::Duration::from_secs(4));
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(e.is_temporary());
    assert!(matches!(e.vendor_code(), Some(1969 | 3024)));
}

#[tokio::test]
async fn zero_dates_follow_policy() {
    let db = TestDb::new("zero").await;
    db.c.execute("SET SESSION sql_mode = ''; CREATE TABLE z (id INT, d DATE, t DATETIME); INSERT INTO z VALUES (1, '2024-01-01', '2024-01-01 00:00:00'), (2, '0000-00-00', '0000-00-00 00:00:00')")
        .await
        .unwrap();
    let e =
        db.c.read_batch(ReadRequest::dataset("z"))
            .await
            .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    let loc = e.location().unwrap();
    assert_eq!(
        (loc.table.as_deref(), loc.column.as_deref(), loc.row),
        (Some("z"), Some("d"), Some(1))
    );
    let c = db.with(|c| c.zero_date = ZeroDatePolicy::Null);
    let b = c.read_batch(ReadRequest::dataset("z")).await.unwrap();
    assert_eq!((b.column(1).null_count(), b.column(2).null_count()), (1, 1));
}

#[tokio::test]
async fn schema_drift_add_columns() {
    let db = TestDb::new("drift").await;
    db.c.write_batch(WriteRequest::append("dr"), kv(&[1], &["a"]))
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
    let e =
        db.c.write_batch(WriteRequest::append("dr"), b2.clone())
            .await
            .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::SchemaMismatch);
    let rep =
        db.c.write_batch(
            WriteRequest::append("dr").with_schema_drift(SchemaDriftPolicy::AddColumns),
            b2,
        )
        .await
        .unwrap();
    assert_eq!(rep.columns_added, vec!["extra".to_string()]);
    let b = db.c.read_batch(ReadRequest::dataset("dr")).await.unwrap();
    assert_eq!(
        (b.num_rows(), b.num_columns(), b.column(2).null_count()),
        (2, 3, 1)
    );
}

#[tokio::test]
async fn registry_builds_mysql() {
    let db = TestDb::new("registry").await;
    let mut r = connector_core::registry::Registry::with_core();
    r.register(MySqlFactory);
    let cfg =
        serde_json::json!({"type": "mysql", "url": base_url(), "database": db.name, "pool_max": 2});
    let conn = r.build_value(cfg).await.unwrap();
    conn.check().await.unwrap();
    conn.as_sink()
        .unwrap()
        .write_batch(WriteRequest::append("r"), kv(&[1], &["a"]))
        .await
        .unwrap();
    assert_eq!(
        conn.as_source()
            .unwrap()
            .read_batch(ReadRequest::dataset("r"))
            .await
            .unwrap()
            .num_rows(),
        1
    );
    let e = r
        .build_value(serde_json::json!({"type": "mysql", "url": "not a url"}))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidConfig);
    assert!(!Array::is_empty(&Int64Array::from(vec![1])));
}

#[tokio::test]
async fn conformance_suite() {
    use connector_core::testkit::{Harness, counter_names, run_all};
    let db = TestDb::new("conformance").await;
    let types = vec![
        DataType::Boolean,
        DataType::Int8,
        DataType::Int16,
        DataType::Int32,
        DataType::Int64,
        DataType::UInt8,
        DataType::UInt16,
        DataType::UInt32,
        DataType::UInt64,
        DataType::Float32,
        DataType::Float64,
        DataType::Utf8,
        DataType::Binary,
        DataType::Date32,
        DataType::Timestamp(TimeUnit::Microsecond, None),
        DataType::Duration(TimeUnit::Microsecond),
        DataType::Decimal128(38, 10),
        DataType::Decimal128(10, 2),
    ];
    let bad = db.with(|c| {
        c.url = None;
        c.user = Some("root".into());
        c.password = Some("certainly-wrong".into());
    });
    let h = Harness::new(
        Arc::new(db.c.clone()),
        Arc::new(db.c.clone()),
        counter_names("conf"),
    )
    .with_types(types)
    .with_bad_credentials(Arc::new(bad));
    let reports = run_all(&h).await;
    assert!(reports.iter().any(|r| r.case == "round_trip"));
}

#[tokio::test]
async fn dropping_a_stream_cancels_the_read() {
    let db = TestDb::new("cancel").await;
    db.c.execute(
        "CREATE TABLE big (id BIGINT PRIMARY KEY, pad VARCHAR(100)); \
         INSERT INTO big SELECT seq, REPEAT('x', 100) FROM seq_1_to_100000",
    )
    .await
    .unwrap();
    let c = db.with(|c| c.pool_max = 2);
    let started = std::time::Instant::now();
    for _ in 0..4 {
        let mut s = c
            .read_stream(ReadRequest::dataset("big").with_batch_rows(100))
            .await
            .unwrap();
        let first = futures::StreamExt::next(&mut s).await.unwrap().unwrap();
        assert_eq!(first.num_rows(), 100);
        drop(s);
    }
    // the pool (2 connections) is not exhausted by the abandoned reads, and a full read works
    let b = c
        .read_batch(ReadRequest::query("SELECT COUNT(*) AS n FROM big"))
        .await
        .unwrap();
    assert_eq!(b.column(0).as_primitive::<Int64Type>().value(0), 100_000);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}
