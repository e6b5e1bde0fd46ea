//! Tests against a real PostgreSQL (15 on 127.0.0.1:5432 by default; `CONNECTOR_TEST_PG_URL`
//! overrides the libpq connection string). Every test works in a fresh schema that it drops.
#![cfg(feature = "postgres")]
// Exact float comparison is the point of a round trip; short names keep assertions readable.
#![allow(
    clippy::too_many_lines,
    clippy::missing_panics_doc,
    clippy::float_cmp,
    clippy::many_single_char_names
)]

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{
    Array, ArrayRef, AsArray, Decimal128Array, Int32Array, Int64Array, RecordBatch, StringArray,
};
use arrow::datatypes::{
    DataType, Date32Type, Decimal256Type, Field, Float64Type, Int16Type, Int32Type, Int64Type,
    IntervalMonthDayNano, IntervalMonthDayNanoType, Schema, Time64MicrosecondType, TimeUnit,
    TimestampMicrosecondType, UInt32Type, i256,
};
use connector_core::testkit::{self, Harness};
use connector_core::{
    CmpOp, ErrorKind, Expr, Literal, Partition, ReadRequest, RecordBatchStreamAdapter, Sink,
    SinkExt, Source, SourceExt, WriteRequest,
};
use connector_sql::postgres::{
    CopyMode, NumericPolicy, PartitionStrategy, PostgresConfig, PostgresConnector, SslMode,
    UnknownTypePolicy,
};
use futures::StreamExt;

fn dsn() -> String {
    std::env::var("CONNECTOR_TEST_PG_URL")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres dbname=test".to_owned())
}

/// A fresh schema, dropped when the value is dropped.
struct Db {
    schema: String,
    admin: tokio_postgres::Client,
}

impl Db {
    async fn new(test: &str) -> Self {
        let (admin, conn) = match tokio_postgres::connect(&dsn(), tokio_postgres::NoTls).await {
            Ok(x) => x,
            Err(e) => panic!(
                "cannot reach PostgreSQL at {:?}: {e}. Start it with `cargo xtask peers up` or \
                 `pg_ctlcluster --skip-systemctl-redirect 15 main start` (or set CONNECTOR_TEST_PG_URL)",
                dsn()
            ),
        };
        tokio::spawn(conn);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let schema = format!("t_{test}_{}_{nanos}", std::process::id());
        admin
            .batch_execute(&format!("CREATE SCHEMA \"{schema}\""))
            .await
            .expect("create schema");
        Self { schema, admin }
    }

    fn config(&self) -> PostgresConfig {
        let mut c = PostgresConfig::from_dsn(&dsn()).expect("dsn");
        c.schemas = Some(vec![self.schema.clone()]);
        c.pool_size = 4;
        c
    }

    fn connector(&self) -> PostgresConnector {
        PostgresConnector::new(self.config()).expect("connector")
    }

    /// `schema.table` as a dataset name.
    fn t(&self, table: &str) -> String {
        format!("{}.{table}", self.schema)
    }

    async fn sql(&self, sql: &str) {
        self.admin
            .batch_execute(&format!("SET search_path = \"{}\"; {sql}", self.schema))
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    async fn count(&self, table: &str) -> i64 {
        self.admin
            .query_one(
                &format!(
                    "SELECT count(*) FROM \"{}\".\"{}\"",
                    self.schema,
                    table.replace('"', "\"\"")
                ),
                &[],
            )
            .await
            .expect("count")
            .get(0)
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let schema = self.schema.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(rt) = rt {
                rt.block_on(async {
                    if let Ok((c, conn)) =
                        tokio_postgres::connect(&dsn(), tokio_postgres::NoTls).await
                    {
                        tokio::spawn(conn);
                        let _ = c
                            .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                            .await;
                    }
                });
            }
        })
        .join();
    }
}

async fn read_all(src: &PostgresConnector, req: ReadRequest) -> RecordBatch {
    src.read_batch(req).await.expect("read")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite() {
    let db = Db::new("conf").await;
    let c = Arc::new(db.connector());
    let schema = db.schema.clone();
    let types = vec![
        DataType::Boolean,
        DataType::Int16,
        DataType::Int32,
        DataType::Int64,
        DataType::Float32,
        DataType::Float64,
        DataType::Utf8,
        DataType::Binary,
        DataType::Date32,
        DataType::Time64(TimeUnit::Microsecond),
        DataType::Timestamp(TimeUnit::Microsecond, None),
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        DataType::Interval(arrow::datatypes::IntervalUnit::MonthDayNano),
        DataType::Decimal128(38, 10),
        DataType::Decimal128(10, 2),
        DataType::Decimal256(76, 10),
        DataType::List(Arc::new(Field::new_list_field(DataType::Int32, true))),
    ];
    let bad = {
        let mut cfg = db.config();
        cfg.user = "no_such_role_for_tests".into();
        Arc::new(PostgresConnector::new(cfg).expect("bad connector"))
    };
    let h = Harness::new(c.clone(), c, testkit::counter_names(format!("{schema}.t")))
        .with_types(types)
        .with_bad_credentials(bad);
    testkit::run_all(&h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn type_matrix_written_with_sql_reads_back_exactly() {
    let db = Db::new("types").await;
    db.sql(
        "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
         CREATE DOMAIN posint AS integer CHECK (VALUE > 0);
         CREATE TABLE m (
            id int4 PRIMARY KEY, b bool, i2 int2, i8 int8, f4 float4, f8 float8,
            n102 numeric(10,2), nneg numeric(5,-2), n50 numeric(50,5), nfree numeric,
            t text, vc varchar(10), ch char(4), nm name, js json, jb jsonb, x xml,
            by bytea, d date, tm time, ttz timetz, ts timestamp, tstz timestamptz, iv interval,
            u uuid, mo mood, dom posint, ip inet, cidr_ cidr, mac macaddr, bits bit(4), vb varbit,
            money_ money, o oid, ai int4[], at text[], an numeric(6,2)[], aip inet[]
         );
         INSERT INTO m VALUES
         (1, true, -32768, 9223372036854775807, 1.5, -2.25e300,
          -12345678.91, 12300, 1234567890123456789012345678901234567890.12345, 0.000000001,
          'it''s \"q\" \\ ünï 🎉', 'abc', 'ab', 'nm', '{\"a\": [1, 2]}', '{\"b\": null}', '<a>x</a>',
          '\\x00ff10', '2000-02-29', '23:59:59.999999', '10:00:00+02', '2262-04-11 23:47:16.854775',
          '1677-09-21 00:12:43.145224+00', '1 year 2 months 3 days 04:05:06.000007',
          'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'happy', 7, '192.168.0.1', '10.0.0.0/8',
          '08:00:2b:01:02:03', B'1010', B'101', 12.34, 4294967295, '{1,NULL,3}', '{\"a\",NULL,\"\"}',
          '{1.25,-2.5}', '{127.0.0.1}'),
         (2, false, 32767, -9223372036854775808, 'NaN', 'Infinity',
          0, -100, 0, -99999999999999999999999999.9999999999,
          '', '', '', '', 'null', '[]', '', '\\x', 'infinity', '00:00', '00:00:00-11:30', 'infinity',
          '-infinity', '-1 mons -2 days', '00000000-0000-0000-0000-000000000000', 'sad', 1, '::1',
          '::/0', 'ff:ff:ff:ff:ff:ff', B'0000', B'', -0.01, 0, '{}', '{}', '{}', '{}'),
         (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
          NULL, NULL, NULL, '10000-01-01', NULL, NULL, '4713-01-01 00:00:00 BC', '294200-01-01 00:00:00+00',
          NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);",
    )
    .await;
    let c = db.connector();
    let b = read_all(&c, ReadRequest::dataset(db.t("m"))).await;
    assert_eq!(b.num_rows(), 3);
    // The cursor path (Redshift's fallback) gives the same Arrow output, in one batch or in
    // several FETCHes.
    let mut cfg = db.config();
    cfg.copy_mode = CopyMode::Cursor;
    let cur = PostgresConnector::new(cfg).unwrap();
    assert_eq!(read_all(&cur, ReadRequest::dataset(db.t("m"))).await, b);
    let batches: Vec<RecordBatch> = cur
        .read_stream(ReadRequest::dataset(db.t("m")).with_batch_rows(2))
        .await
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
        .await;
    assert_eq!(
        batches
            .iter()
            .map(RecordBatch::num_rows)
            .collect::<Vec<_>>(),
        [2, 1]
    );
    assert_eq!(
        arrow::compute::concat_batches(&b.schema(), &batches).unwrap(),
        b
    );
    // projection, filter and limit go into the cursor's SELECT as into the COPY's
    let req = ReadRequest::dataset(db.t("m"))
        .with_projection(["t", "id", "ai"])
        .with_filter(Expr::cmp("id", CmpOp::Gt, 1))
        .with_limit(1);
    assert_eq!(read_all(&cur, req.clone()).await, read_all(&c, req).await);
    let s = b.schema();
    let col = |n: &str| b.column(s.index_of(n).expect(n)).clone();
    let ty = |n: &str| s.field(s.index_of(n).expect(n)).data_type().clone();
    // schema
    assert_eq!(ty("b"), DataType::Boolean);
    assert_eq!(ty("i2"), DataType::Int16);
    assert_eq!(ty("n102"), DataType::Decimal128(10, 2));
    assert_eq!(ty("nneg"), DataType::Decimal128(5, -2));
    assert_eq!(ty("n50"), DataType::Decimal256(50, 5));
    assert_eq!(ty("nfree"), DataType::Decimal128(38, 10));
    assert_eq!(
        ty("tstz"),
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
    );
    assert_eq!(ty("u"), DataType::FixedSizeBinary(16));
    assert_eq!(
        s.field(s.index_of("u").unwrap())
            .metadata()
            .get("ARROW:extension:name")
            .map(String::as_str),
        Some("arrow.uuid")
    );
    assert_eq!(ty("dom"), DataType::Int32);
    assert_eq!(ty("money_"), DataType::Int64);
    assert_eq!(ty("o"), DataType::UInt32);
    assert!(!s.field(0).is_nullable(), "primary key is NOT NULL");
    assert!(s.field(1).is_nullable());
    // values, row 0
    assert!(col("b").as_boolean().value(0));
    assert_eq!(col("i2").as_primitive::<Int16Type>().value(0), i16::MIN);
    assert_eq!(col("i8").as_primitive::<Int64Type>().value(0), i64::MAX);
    assert_eq!(col("i8").as_primitive::<Int64Type>().value(1), i64::MIN);
    assert_eq!(
        col("f4")
            .as_primitive::<arrow::datatypes::Float32Type>()
            .value(0),
        1.5
    );
    assert!(
        col("f4")
            .as_primitive::<arrow::datatypes::Float32Type>()
            .value(1)
            .is_nan()
    );
    assert_eq!(col("f8").as_primitive::<Float64Type>().value(0), -2.25e300);
    assert_eq!(
        col("f8").as_primitive::<Float64Type>().value(1),
        f64::INFINITY
    );
    let n = col("n102");
    let n = n.as_any().downcast_ref::<Decimal128Array>().unwrap();
    assert_eq!(n.value(0), -1_234_567_891);
    assert_eq!(
        col("nneg")
            .as_primitive::<arrow::datatypes::Decimal128Type>()
            .value(0),
        123
    );
    assert_eq!(
        col("nneg")
            .as_primitive::<arrow::datatypes::Decimal128Type>()
            .value(1),
        -1
    );
    assert_eq!(
        col("n50").as_primitive::<Decimal256Type>().value(0),
        i256::from_string("123456789012345678901234567890123456789012345").unwrap()
    );
    let nf = col("nfree");
    let nf = nf.as_primitive::<arrow::datatypes::Decimal128Type>();
    assert_eq!(nf.value(0), 10);
    assert_eq!(nf.value(1), -(10i128.pow(36) - 1));
    let t = col("t");
    assert_eq!(t.as_string::<i32>().value(0), "it's \"q\" \\ ünï 🎉");
    assert_eq!(t.as_string::<i32>().value(1), "");
    assert_eq!(col("ch").as_string::<i32>().value(0), "ab  ");
    assert_eq!(col("nm").as_string::<i32>().value(0), "nm");
    assert_eq!(col("js").as_string::<i32>().value(0), "{\"a\": [1, 2]}");
    assert_eq!(col("jb").as_string::<i32>().value(0), "{\"b\": null}");
    assert_eq!(col("x").as_string::<i32>().value(0), "<a>x</a>");
    assert_eq!(col("by").as_binary::<i32>().value(0), &[0u8, 255, 16]);
    assert_eq!(col("by").as_binary::<i32>().value(1), b"");
    let d = col("d");
    let d = d.as_primitive::<Date32Type>();
    assert_eq!(d.value(0), 11_016); // 2000-02-29
    assert_eq!(d.value(1), i32::MAX); // infinity
    assert_eq!(d.value(2), 2_932_897); // 10000-01-01
    assert_eq!(
        col("tm").as_primitive::<Time64MicrosecondType>().value(0),
        86_399_999_999
    );
    assert_eq!(
        col("ttz").as_primitive::<Time64MicrosecondType>().value(0),
        8 * 3_600_000_000
    );
    assert_eq!(
        col("ttz").as_primitive::<Time64MicrosecondType>().value(1),
        11 * 3_600_000_000 + 1_800_000_000
    );
    let ts = col("ts");
    let ts = ts.as_primitive::<TimestampMicrosecondType>();
    assert_eq!(ts.value(0), 9_223_372_036_854_775);
    assert_eq!(ts.value(1), i64::MAX);
    // 4713-01-01 BC (proleptic Gregorian, astronomical year -4712)
    assert_eq!(ts.value(2), -210_863_520_000_000_000);
    let tz = col("tstz");
    let tz = tz.as_primitive::<TimestampMicrosecondType>();
    assert_eq!(tz.value(0), -9_223_372_036_854_776);
    assert_eq!(tz.value(1), i64::MIN);
    assert_eq!(tz.value(2), 9_221_888_102_400_000_000);
    let iv = col("iv");
    let iv = iv.as_primitive::<IntervalMonthDayNanoType>();
    assert_eq!(
        iv.value(0),
        IntervalMonthDayNano::new(14, 3, 14_706_000_007_000)
    );
    assert_eq!(iv.value(1), IntervalMonthDayNano::new(-1, -2, 0));
    let u = col("u");
    assert_eq!(
        u.as_fixed_size_binary().value(0),
        &[
            0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b, 0xb9, 0xbd, 0x38,
            0x0a, 0x11
        ]
    );
    assert_eq!(col("mo").as_string::<i32>().value(0), "happy");
    assert_eq!(col("dom").as_primitive::<Int32Type>().value(0), 7);
    assert_eq!(col("ip").as_string::<i32>().value(0), "192.168.0.1/32");
    assert_eq!(col("cidr_").as_string::<i32>().value(0), "10.0.0.0/8");
    assert_eq!(col("mac").as_string::<i32>().value(0), "08:00:2b:01:02:03");
    assert_eq!(col("bits").as_string::<i32>().value(0), "1010");
    assert_eq!(col("vb").as_string::<i32>().value(1), "");
    assert_eq!(col("money_").as_primitive::<Int64Type>().value(0), 1234);
    assert_eq!(col("money_").as_primitive::<Int64Type>().value(1), -1);
    assert_eq!(col("o").as_primitive::<UInt32Type>().value(0), u32::MAX);
    let ai = col("ai");
    let ai = ai.as_list::<i32>();
    let first = ai.value(0);
    let first = first.as_primitive::<Int32Type>();
    assert_eq!(
        (
            first.len(),
            first.value(0),
            first.is_null(1),
            first.value(2)
        ),
        (3, 1, true, 3)
    );
    assert_eq!(ai.value(1).len(), 0);
    assert!(ai.is_null(2));
    let at = col("at");
    let at0 = at.as_list::<i32>().value(0);
    assert_eq!(at0.as_string::<i32>().value(2), "");
    let an = col("an");
    assert_eq!(
        an.as_list::<i32>()
            .value(0)
            .as_primitive::<arrow::datatypes::Decimal128Type>()
            .value(1),
        -250
    );
    assert_eq!(
        col("aip")
            .as_list::<i32>()
            .value(0)
            .as_string::<i32>()
            .value(0),
        "127.0.0.1/32"
    );
    // row 2: NULLs everywhere they were written
    for name in [
        "b", "i2", "n102", "t", "by", "u", "iv", "ai", "money_", "ip",
    ] {
        assert!(col(name).is_null(2), "{name} should be NULL");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numeric_policies_never_lose_digits() {
    let db = Db::new("num").await;
    db.sql("CREATE TABLE n (v numeric); INSERT INTO n VALUES (1.5), ('NaN'), (0.12345678901234);")
        .await;
    let mut cfg = db.config();
    let c = PostgresConnector::new(cfg.clone()).unwrap();
    // default Decimal128(38,10): 0.12345678901234 has 14 fractional digits -> error naming the column
    let e = c
        .read_batch(ReadRequest::dataset(db.t("n")).with_filter(Expr::cmp("v", CmpOp::Lt, 1.0)))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Decode, "{e}");
    assert_eq!(e.location().and_then(|l| l.column.as_deref()), Some("v"));
    assert!(e.to_string().contains("round"), "{e}");
    // NaN under a decimal policy is an error too
    let e = c
        .read_batch(ReadRequest::dataset(db.t("n")))
        .await
        .unwrap_err();
    assert_eq!(e.connector(), Some("postgres"));
    cfg.numeric = NumericPolicy::Utf8;
    let c = PostgresConnector::new(cfg.clone()).unwrap();
    let b = read_all(&c, ReadRequest::dataset(db.t("n"))).await;
    let v: Vec<&str> = b
        .column(0)
        .as_string::<i32>()
        .iter()
        .map(Option::unwrap)
        .collect();
    assert_eq!(v, vec!["1.5", "NaN", "0.12345678901234"]);
    cfg.numeric = NumericPolicy::Float64;
    let c = PostgresConnector::new(cfg.clone()).unwrap();
    let b = read_all(&c, ReadRequest::dataset(db.t("n"))).await;
    let f = b.column(0).as_primitive::<Float64Type>();
    assert_eq!(f.value(0), 1.5);
    assert!(f.value(1).is_nan());
    cfg.numeric = NumericPolicy::Decimal256 { scale: 20 };
    let c = PostgresConnector::new(cfg).unwrap();
    let b = read_all(
        &c,
        ReadRequest::dataset(db.t("n")).with_filter(Expr::cmp("v", CmpOp::Lt, 1.0)),
    )
    .await;
    assert_eq!(
        b.column(0).as_primitive::<Decimal256Type>().value(0),
        i256::from_i128(12_345_678_901_234_000_000)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_types_follow_the_policy() {
    let db = Db::new("unk").await;
    db.sql("CREATE TABLE g (p point, r int4range); INSERT INTO g VALUES ('(1,2)', '[1,5)');")
        .await;
    let mut cfg = db.config();
    let c = PostgresConnector::new(cfg.clone()).unwrap();
    let e = c
        .read_batch(ReadRequest::dataset(db.t("g")))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert!(e.to_string().contains("point"), "{e}");
    cfg.unknown_types = UnknownTypePolicy::AsText;
    let c = PostgresConnector::new(cfg).unwrap();
    let b = read_all(&c, ReadRequest::dataset(db.t("g"))).await;
    assert_eq!(b.column(0).as_string::<i32>().value(0), "(1,2)");
    assert_eq!(b.column(1).as_string::<i32>().value(0), "[1,5)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_identifiers_and_injection_round_trip_as_data() {
    let db = Db::new("hostile").await;
    let c = db.connector();
    let names = [
        "we\"ird",
        "with space",
        "ünï👀",
        "select",
        "x'); DROP TABLE y; --",
        "a.b",
    ];
    let table = format!("{}.\"tab\"\"le; DROP\"", db.schema);
    let values = [
        "'); DROP TABLE t; --",
        "\\'; SELECT 1; --",
        "$q$ $$ \\",
        "E'\\x41'",
        "\"",
    ];
    let schema = Arc::new(Schema::new(
        names
            .iter()
            .map(|n| Field::new(*n, DataType::Utf8, true))
            .collect::<Vec<_>>(),
    ));
    let cols: Vec<ArrayRef> = names
        .iter()
        .map(|_| Arc::new(StringArray::from(values.to_vec())) as ArrayRef)
        .collect();
    let batch = RecordBatch::try_new(schema, cols).unwrap();
    c.write_batch(WriteRequest::append(table.clone()), batch.clone())
        .await
        .expect("write");
    let back = read_all(&c, ReadRequest::dataset(table.clone())).await;
    assert_eq!(back.num_rows(), values.len());
    for (i, n) in names.iter().enumerate() {
        assert_eq!(back.schema().field(i).name(), n);
        assert_eq!(back.column(i).as_string::<i32>().value(0), values[0]);
    }
    // Filters with hostile values select exactly the matching row, never run as SQL.
    for v in values {
        let b = read_all(
            &c,
            ReadRequest::dataset(table.clone())
                .with_projection([names[4], names[0]])
                .with_filter(Expr::eq(names[4], v)),
        )
        .await;
        assert_eq!(b.num_rows(), 1, "filter value {v:?}");
        assert_eq!(b.column(1).as_string::<i32>().value(0), v);
    }
    let b = read_all(
        &c,
        ReadRequest::dataset(table.clone())
            .with_filter(Expr::is_in(names[2], values[..2].iter().copied())),
    )
    .await;
    assert_eq!(b.num_rows(), 2);
    // a hostile native query is just a query
    let b = read_all(&c, ReadRequest::query("SELECT 1 AS \"a;b\"")).await;
    assert_eq!(b.num_rows(), 1);
    // the table still exists with all rows
    assert_eq!(db.count("tab\"le; DROP").await, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushdown_projection_filter_limit_and_batches() {
    let db = Db::new("push").await;
    db.sql(
        "CREATE TABLE p (id int8 PRIMARY KEY, s text, ts timestamptz, d date);
         INSERT INTO p SELECT g, 'v' || g, '2020-01-01 00:00:00+00'::timestamptz + g * interval '1 hour',
            DATE '2020-01-01' + g FROM generate_series(1, 10000) g;",
    )
    .await;
    let c = db.connector();
    let b = read_all(
        &c,
        ReadRequest::dataset(db.t("p"))
            .with_projection(["s", "id"])
            .with_filter(
                Expr::cmp("id", CmpOp::Gt, 100)
                    .and(Expr::cmp(
                        "ts",
                        CmpOp::Lt,
                        Literal::TimestampMicros(1_577_836_800_000_000 + 200 * 3_600_000_000),
                    ))
                    .and(Expr::cmp("d", CmpOp::GtEq, Literal::Date(18_262 + 150))),
            ),
    )
    .await;
    assert_eq!(b.schema().field(0).name(), "s");
    assert_eq!(b.num_rows(), 50); // ids 150..=199
    assert_eq!(b.column(1).as_primitive::<Int64Type>().value(0), 150);
    let mut s = c
        .read_stream(ReadRequest::dataset(db.t("p")).with_batch_rows(3000))
        .await
        .unwrap();
    let mut sizes = Vec::new();
    while let Some(b) = s.next().await {
        sizes.push(b.unwrap().num_rows());
    }
    assert_eq!(sizes, vec![3000, 3000, 3000, 1000]);
    let b = read_all(&c, ReadRequest::dataset(db.t("p")).with_limit(7)).await;
    assert_eq!(b.num_rows(), 7);
    // byte budget: ~ 30 bytes per row on the wire
    let mut s = c
        .read_stream(
            ReadRequest::dataset(db.t("p"))
                .with_projection(["id"])
                .with_batch_bytes(1000),
        )
        .await
        .unwrap();
    let first = s.next().await.unwrap().unwrap();
    assert!(first.num_rows() < 100, "{}", first.num_rows());
    drop(s);
    // empty projection still counts rows
    let b = read_all(
        &c,
        ReadRequest::dataset(db.t("p"))
            .with_projection(Vec::<String>::new())
            .with_limit(5),
    )
    .await;
    assert_eq!((b.num_columns(), b.num_rows()), (0, 5));
    // missing column names the column
    let e = c
        .read_batch(ReadRequest::dataset(db.t("p")).with_projection(["nope"]))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert_eq!(e.location().and_then(|l| l.column.as_deref()), Some("nope"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_lists_tables_views_keys_and_estimates() {
    let db = Db::new("disc").await;
    db.sql(
        "CREATE TABLE a (k1 int4, k2 text, v numeric(12,3), PRIMARY KEY (k2, k1));
         INSERT INTO a SELECT g, 'x', g FROM generate_series(1, 100) g; ANALYZE a;
         CREATE VIEW av AS SELECT k1, v FROM a;",
    )
    .await;
    let c = db.connector();
    let ds = c.discover().await.unwrap();
    let names: Vec<&str> = ds.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, vec![db.t("a").as_str(), db.t("av").as_str()]);
    assert_eq!(ds[0].primary_key, vec!["k2".to_owned(), "k1".to_owned()]);
    assert_eq!(ds[0].row_estimate, Some(100));
    assert_eq!(
        ds[0].schema.field(2).data_type(),
        &DataType::Decimal128(12, 3)
    );
    assert!(!ds[0].schema.field(0).is_nullable());
    assert_eq!(ds[1].schema.fields().len(), 2);
}

async fn concurrent_partitioned_read(strategy: PartitionStrategy) {
    let db = Db::new("part").await;
    db.sql(
        "CREATE TABLE big (id int8 PRIMARY KEY, k text, ts timestamp);
         INSERT INTO big SELECT g, 'k' || (g % 97), timestamp '2020-01-01' + g * interval '1 minute'
           FROM generate_series(1, 20000) g;
         INSERT INTO big VALUES (-5, NULL, NULL);",
    )
    .await;
    let c = db.connector();
    let req = ReadRequest::dataset(db.t("big"));
    let parts = c.plan_with(&req, 4, &strategy).await.unwrap();
    assert_eq!(parts.len(), 4, "{strategy:?}");
    assert_eq!(c.open_snapshots(), 1);
    // a writer changes the table after the snapshot was taken
    db.sql("INSERT INTO big SELECT g, 'new', NULL FROM generate_series(20001, 25000) g; DELETE FROM big WHERE id <= 1000;")
        .await;
    let mut ids: Vec<i64> = Vec::new();
    // read the partitions concurrently
    let futs = parts.into_iter().map(|p: Partition| {
        let c = c.clone();
        async move {
            let b = c.read(p).await.unwrap();
            connector_core::collect(b).await.unwrap()
        }
    });
    for b in futures::future::join_all(futs).await {
        let a = b.column(0).as_primitive::<Int64Type>();
        ids.extend(a.values().iter().copied());
    }
    ids.sort_unstable();
    let mut expected: Vec<i64> = (1..=20000).collect();
    expected.insert(0, -5);
    assert_eq!(ids.len(), expected.len(), "{strategy:?}");
    assert_eq!(ids, expected, "{strategy:?}");
    // the coordinating transaction ends once every partition is done
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(c.open_snapshots(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_read_by_int_range_sees_one_snapshot() {
    concurrent_partitioned_read(PartitionStrategy::Range {
        column: "id".into(),
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_read_by_ctid_sees_one_snapshot() {
    concurrent_partitioned_read(PartitionStrategy::Ctid).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_read_by_hash_sees_one_snapshot() {
    concurrent_partitioned_read(PartitionStrategy::Hash { column: "k".into() }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_read_by_timestamp_range_and_auto() {
    let db = Db::new("parts2").await;
    db.sql(
        "CREATE TABLE e (id int4 PRIMARY KEY, ts timestamptz);
         INSERT INTO e SELECT g, CASE WHEN g = 1 THEN 'infinity' WHEN g = 2 THEN NULL
           ELSE timestamptz '1900-01-01 00:00:00+00' + g * interval '1 day' END FROM generate_series(1, 5000) g;",
    )
    .await;
    let c = db.connector();
    let req = ReadRequest::dataset(db.t("e"));
    for strategy in [
        PartitionStrategy::Range {
            column: "ts".into(),
        },
        PartitionStrategy::Auto,
    ] {
        let parts = c.plan_with(&req, 3, &strategy).await.unwrap();
        assert_eq!(parts.len(), 3);
        let mut batches = Vec::new();
        for p in parts {
            batches.push(
                connector_core::collect(c.read(p).await.unwrap())
                    .await
                    .unwrap(),
            );
        }
        let total: usize = batches.iter().map(RecordBatch::num_rows).sum();
        assert_eq!(total, 5000, "{strategy:?}");
    }
    // the cursor path inside each partition's snapshot transaction
    let mut cfg = db.config();
    cfg.copy_mode = CopyMode::Cursor;
    let cur = PostgresConnector::new(cfg).unwrap();
    let mut total = 0;
    for p in cur
        .plan(&req.clone().with_batch_rows(700), 3)
        .await
        .unwrap()
    {
        total += connector_core::collect(cur.read(p).await.unwrap())
            .await
            .unwrap()
            .num_rows();
    }
    assert_eq!(total, 5000);
    assert_eq!(cur.open_snapshots(), 0);
    // a view has no ctid: auto reads it as one partition
    db.sql("CREATE VIEW ev AS SELECT * FROM e").await;
    let parts = c.plan(&ReadRequest::dataset(db.t("ev")), 4).await.unwrap();
    assert_eq!(parts.len(), 1);
    let e = c
        .plan_with(
            &ReadRequest::dataset(db.t("ev")),
            4,
            &PartitionStrategy::Ctid,
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
}

/// Active backends with this application name.
async fn active(db: &Db, app: String) -> i64 {
    db.admin
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND state = 'active'",
            &[&app],
        )
        .await
        .unwrap()
        .get::<_, i64>(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_stream_cancels_the_query_and_keeps_the_pool() {
    let db = Db::new("cancel").await;
    // the cancel request opens its own connection, with the pool's TLS settings
    for mode in [SslMode::Disable, SslMode::Require] {
        cancel_and_reuse(&db, mode).await;
    }
}

async fn cancel_and_reuse(db: &Db, mode: SslMode) {
    let mut cfg = db.config();
    cfg.pool_size = 1;
    cfg.sslmode = mode;
    let app = format!("cancel_{}_{}", mode.as_str(), db.schema);
    cfg.application_name = Some(app.clone());
    let c = PostgresConnector::new(cfg).unwrap();
    // an endless generator: only a cancel stops it
    let mut s = c
        .read_stream(
            ReadRequest::query("SELECT generate_series(1, 1000000000000) AS g")
                .with_batch_rows(1000),
        )
        .await
        .unwrap();
    let first = s.next().await.unwrap().unwrap();
    assert_eq!(first.num_rows(), 1000);
    assert_eq!(active(db, app.clone()).await, 1);
    drop(s);
    let mut gone = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if active(db, app.clone()).await == 0 {
            gone = true;
            break;
        }
    }
    assert!(
        gone,
        "{mode:?}: the query still runs after the stream was dropped"
    );
    // the single pooled connection is usable again
    let b = read_all(&c, ReadRequest::query("SELECT 42::int4 AS x")).await;
    assert_eq!(b.column(0).as_primitive::<Int32Type>().value(0), 42);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_kinds_for_connection_auth_timeout_and_missing_things() {
    let db = Db::new("errs").await;
    // a closed port: Connection, temporary
    let mut cfg = db.config();
    cfg.port = 1;
    cfg.connect_timeout_ms = 2000;
    let c = PostgresConnector::new(cfg).unwrap();
    let e = Source::check(&c).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connection, "{e}");
    assert!(e.is_temporary());
    assert_eq!(e.connector(), Some("postgres"));
    // trust auth accepts any password, so "bad credentials" here is a role that may not log in
    // (28000 → Authentication) and a role that does not exist (also 28000).
    db.sql(&format!(
        "DROP ROLE IF EXISTS \"nologin_{0}\"; CREATE ROLE \"nologin_{0}\" NOLOGIN",
        std::process::id()
    ))
    .await;
    let mut cfg = db.config();
    cfg.user = format!("nologin_{}", std::process::id());
    cfg.password = Some("s3cr3t-pw".into());
    let c = PostgresConnector::new(cfg).unwrap();
    let e = Source::check(&c).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Authentication, "{e}");
    assert_eq!(e.sqlstate(), Some("28000"));
    assert!(!e.to_string().contains("s3cr3t-pw") && !format!("{e:?}").contains("s3cr3t-pw"));
    db.sql(&format!("DROP ROLE \"nologin_{}\"", std::process::id()))
        .await;
    // a database that does not exist: NotFound
    let mut cfg = db.config();
    cfg.dbname = "no_such_database_for_tests".into();
    let e = Source::check(&PostgresConnector::new(cfg).unwrap())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert_eq!(e.sqlstate(), Some("3D000"));
    // a missing table: NotFound naming it
    let c = db.connector();
    let e = c
        .read_batch(ReadRequest::dataset(db.t("missing")))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert_eq!(e.sqlstate(), Some("42P01"));
    assert_eq!(e.operation(), Some("read"));
    // statement timeout: Timeout, temporary
    let mut cfg = db.config();
    cfg.statement_timeout_ms = Some(200);
    let c = PostgresConnector::new(cfg).unwrap();
    let e = c
        .read_batch(ReadRequest::query("SELECT pg_sleep(3)::text AS x"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert_eq!(e.sqlstate(), Some("57014"));
    assert!(e.is_temporary());
    // a unique violation: Conflict
    db.sql("CREATE TABLE u (id int4 PRIMARY KEY); INSERT INTO u VALUES (1);")
        .await;
    let c = db.connector();
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("id", DataType::Int32, false)])),
        vec![Arc::new(Int32Array::from(vec![2, 1]))],
    )
    .unwrap();
    let e = c
        .write_batch(WriteRequest::append(db.t("u")), batch)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    assert_eq!(e.sqlstate(), Some("23505"));
    assert_eq!(db.count("u").await, 1);
}

fn ids_batch(ids: std::ops::Range<i64>, tag: &str) -> RecordBatch {
    RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("v", DataType::Utf8, true),
        ])),
        vec![
            Arc::new(Int64Array::from_iter_values(ids.clone())),
            Arc::new(StringArray::from_iter_values(
                ids.map(|i| format!("{tag}{i}")),
            )),
        ],
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_writes_leave_the_target_unchanged() {
    let db = Db::new("atomic").await;
    db.sql("CREATE TABLE w (id int8 PRIMARY KEY, v text); INSERT INTO w SELECT g, 'old' FROM generate_series(1, 10) g;")
        .await;
    let c = db.connector();
    let schema = ids_batch(0..1, "").schema();
    for mode in [
        WriteRequest::append(db.t("w")),
        WriteRequest::overwrite(db.t("w")),
        WriteRequest::upsert(db.t("w"), ["id"]),
        WriteRequest::delete(db.t("w"), ["id"]),
    ] {
        // the stream fails after two good batches (~3 MiB of rows already sent to the server)
        let batches = vec![
            Ok(ids_batch(100..100_100, "new")),
            Ok(ids_batch(200_000..300_000, "new")),
            Err(connector_core::Error::new(ErrorKind::Io, "upstream broke")),
        ];
        let s = RecordBatchStreamAdapter::boxed(schema.clone(), futures::stream::iter(batches));
        let e = c.write(mode.clone(), s).await.unwrap_err();
        assert_eq!(e.message(), "upstream broke", "{mode:?}");
        assert_eq!(db.count("w").await, 10, "{mode:?}");
    }
    // a bad value midway (NUL in text) names the column and row, and changes nothing
    let mut b = ids_batch(1000..1010, "x").columns().to_vec();
    b[1] = Arc::new(StringArray::from_iter_values((0..10).map(|i| {
        if i == 7 {
            "a\0b".to_owned()
        } else {
            "ok".to_owned()
        }
    })));
    let bad = RecordBatch::try_new(schema.clone(), b).unwrap();
    let e = c
        .write_batch(WriteRequest::overwrite(db.t("w")), bad)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert_eq!(e.location().and_then(|l| l.row), Some(7));
    assert_eq!(e.location().and_then(|l| l.column.as_deref()), Some("v"));
    assert_eq!(db.count("w").await, 10);
    let old: String = db
        .admin
        .query_one(&format!("SELECT min(v) FROM \"{}\".w", db.schema), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(old, "old");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_modes_upsert_delete_overwrite_and_drift() {
    let db = Db::new("modes").await;
    let c = db.connector();
    let t = db.t("m");
    let r = c
        .write_batch(WriteRequest::append(t.clone()), ids_batch(0..100, "a"))
        .await
        .unwrap();
    assert_eq!(r.rows, 100);
    // upsert: the last row per key wins; 50..100 updated, 100..150 inserted
    let mut up = ids_batch(50..150, "b");
    up = arrow::compute::concat_batches(&up.schema(), &[ids_batch(60..61, "first"), up]).unwrap();
    // without a unique index: the locked UPDATE + INSERT path
    c.write_batch(WriteRequest::upsert(t.clone(), ["id"]), up.clone())
        .await
        .unwrap();
    assert_eq!(db.count("m").await, 150);
    let b = read_all(
        &c,
        ReadRequest::dataset(t.clone()).with_filter(Expr::eq("id", 60)),
    )
    .await;
    assert_eq!(b.column(1).as_string::<i32>().value(0), "b60");
    // with a primary key: ON CONFLICT, same semantics
    db.sql("ALTER TABLE m ADD PRIMARY KEY (id)").await;
    c.write_batch(
        WriteRequest::upsert(t.clone(), ["id"]),
        ids_batch(140..160, "c"),
    )
    .await
    .unwrap();
    assert_eq!(db.count("m").await, 160);
    let b = read_all(
        &c,
        ReadRequest::dataset(t.clone()).with_filter(Expr::eq("id", 145)),
    )
    .await;
    assert_eq!(b.column(1).as_string::<i32>().value(0), "c145");
    // delete by keys
    let r = c
        .write_batch(
            WriteRequest::delete(t.clone(), ["id"]),
            ids_batch(0..10, "z"),
        )
        .await
        .unwrap();
    assert_eq!(r.rows_deleted, Some(10));
    assert_eq!(db.count("m").await, 150);
    // drift: a new column fails, then is added
    let extra = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("n", DataType::Float64, true),
        ])),
        vec![
            Arc::new(Int64Array::from(vec![1000])),
            Arc::new(arrow::array::Float64Array::from(vec![1.5])),
        ],
    )
    .unwrap();
    let e = c
        .write_batch(WriteRequest::append(t.clone()), extra.clone())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::SchemaMismatch);
    let r = c
        .write_batch(
            WriteRequest::append(t.clone())
                .with_schema_drift(connector_core::SchemaDriftPolicy::AddColumns),
            extra,
        )
        .await
        .unwrap();
    assert_eq!(r.columns_added, vec!["n".to_owned()]);
    // type mismatch names the column
    let wrong = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("id", DataType::Utf8, false)])),
        vec![Arc::new(StringArray::from(vec!["x"]))],
    )
    .unwrap();
    let e = c
        .write_batch(
            WriteRequest::append(t.clone())
                .with_schema_drift(connector_core::SchemaDriftPolicy::IgnoreExtra),
            wrong,
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::SchemaMismatch);
    assert_eq!(e.location().and_then(|l| l.column.as_deref()), Some("id"));
    // overwrite without the nullable column "n": an error under Fail, NULL under AddColumns
    let e = c
        .write_batch(WriteRequest::overwrite(t.clone()), ids_batch(0..3, "o"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::SchemaMismatch);
    c.write_batch(
        WriteRequest::overwrite(t.clone())
            .with_schema_drift(connector_core::SchemaDriftPolicy::AddColumns),
        ids_batch(0..3, "o"),
    )
    .await
    .unwrap();
    assert_eq!(db.count("m").await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arrow_types_written_and_read_back() {
    let db = Db::new("wtypes").await;
    let c = db.connector();
    let uuid_field = Field::new("u", DataType::FixedSizeBinary(16), true)
        .with_metadata([("ARROW:extension:name".to_owned(), "arrow.uuid".to_owned())].into());
    let schema = Arc::new(Schema::new(vec![
        Field::new(
            "ts_ns",
            DataType::Timestamp(TimeUnit::Nanosecond, None),
            true,
        ),
        Field::new("i8", DataType::Int8, true),
        uuid_field,
        Field::new(
            "dict",
            DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
            true,
        ),
        Field::new("d", DataType::Decimal128(20, 4), true),
        Field::new(
            "ls",
            DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true))),
            true,
        ),
    ]));
    let dict: arrow::array::DictionaryArray<Int32Type> = vec!["x", "y", "x"].into_iter().collect();
    let ls =
        arrow::array::ListArray::from_iter_primitive::<Int32Type, _, _>(vec![Some(vec![Some(1)])]);
    let _ = ls;
    let mut lb = arrow::array::ListBuilder::new(arrow::array::StringBuilder::new());
    lb.values().append_value("a");
    lb.values().append_null();
    lb.append(true);
    lb.append(false);
    lb.append(true);
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(arrow::array::TimestampNanosecondArray::from(vec![
                Some(1_000),
                None,
                Some(-2_000),
            ])),
            Arc::new(arrow::array::Int8Array::from(vec![
                Some(-128),
                Some(127),
                None,
            ])),
            Arc::new(
                arrow::array::FixedSizeBinaryArray::try_from_sparse_iter_with_size(
                    vec![Some([7u8; 16]), None, Some([0u8; 16])].into_iter(),
                    16,
                )
                .unwrap(),
            ),
            Arc::new(dict),
            Arc::new(
                Decimal128Array::from(vec![Some(-12_345_678_901_234_567), None, Some(1)])
                    .with_precision_and_scale(20, 4)
                    .unwrap(),
            ),
            Arc::new(lb.finish()),
        ],
    )
    .unwrap();
    c.write_batch(WriteRequest::append(db.t("w")), batch)
        .await
        .unwrap();
    let b = read_all(&c, ReadRequest::dataset(db.t("w"))).await;
    let s = b.schema();
    assert_eq!(
        s.field(0).data_type(),
        &DataType::Timestamp(TimeUnit::Microsecond, None)
    );
    assert_eq!(
        b.column(0)
            .as_primitive::<TimestampMicrosecondType>()
            .value(2),
        -2
    );
    assert_eq!(b.column(1).as_primitive::<Int16Type>().value(0), -128);
    assert_eq!(b.column(2).as_fixed_size_binary().value(0), &[7u8; 16]);
    assert_eq!(b.column(3).as_string::<i32>().value(2), "x");
    assert_eq!(
        b.column(4)
            .as_primitive::<arrow::datatypes::Decimal128Type>()
            .value(0),
        -12_345_678_901_234_567
    );
    let l = b.column(5).as_list::<i32>();
    assert!(l.is_null(1));
    assert!(l.value(0).is_null(1));
    // sub-microsecond timestamps would be truncated: refused
    let bad = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new(
            "ts_ns",
            DataType::Timestamp(TimeUnit::Nanosecond, None),
            true,
        )])),
        vec![Arc::new(arrow::array::TimestampNanosecondArray::from(
            vec![1_001],
        ))],
    )
    .unwrap();
    let e = c
        .write_batch(
            WriteRequest::append(db.t("w"))
                .with_schema_drift(connector_core::SchemaDriftPolicy::IgnoreExtra),
            bad,
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::SchemaMismatch, "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_builds_the_postgres_kind() {
    let db = Db::new("reg").await;
    let mut reg = connector_core::registry::Registry::new();
    connector_sql::postgres::register(&mut reg);
    let cfg = db.config();
    let json = serde_json::json!({
        "type": "postgres", "host": cfg.host, "port": cfg.port, "user": cfg.user, "dbname": cfg.dbname,
        "password": "${PG_TEST_SECRET}", "partitioning": {"mode": "ctid"}, "numeric": {"type": "utf8"}
    });
    let conn = reg
        .build_value_with(json, &|k| {
            (k == "PG_TEST_SECRET").then(|| "pw-never-printed".to_owned())
        })
        .await
        .unwrap();
    conn.check().await.unwrap();
    let src = conn.as_source().unwrap();
    assert!(!format!("{src:?}").contains("pw-never-printed"));
    let b = src
        .read_batch(ReadRequest::query("SELECT 1.50::numeric AS n"))
        .await
        .unwrap();
    assert_eq!(b.column(0).as_string::<i32>().value(0), "1.50");
    reg.build_value(serde_json::json!({"type": "postgres", "sslmode": "require"}))
        .await
        .unwrap();
    let e = reg
        .build_value(serde_json::json!({
            "type": "postgres", "sslmode": "verify_full", "sslrootcert": "/nonexistent.pem"
        }))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidConfig, "{e}");
}
