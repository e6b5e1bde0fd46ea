//! SQL INSERT output executed by real engines: SQLite (rusqlite, in process), PostgreSQL (psql
//! against 127.0.0.1:5432, db `test`) and MariaDB (the `mariadb` CLI against 127.0.0.1:3306,
//! db `test`). Hostile identifiers and values must come back as data.

#![allow(clippy::doc_markdown)] // product names (PostgreSQL, SQLite, MariaDB) are not code

use std::io::Write as _;
use std::process::Command;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float64Array, Int64Array,
    StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use arrow::record_batch::RecordBatch;
use connector_core::ErrorKind;
use connector_file::{FileFormat, FormatReadOptions, InMemoryBytes, SqlDialect, SqlInsertFormat};

const HOSTILE: &[Option<&str>] = &[
    Some("'); DROP TABLE x; --"),
    Some("back\\slash\\' \\x41 \\n"),
    Some("new\nline\r\nand\ttab"),
    Some("unicode ü 日本 🎉"),
    Some("quotes \" `tick` ]bracket [x] ''"),
    Some(""),
    None,
    Some("ctrl-z \u{1a} bell \u{7}"),
];

const NAME_COL: &str = "we'ird \"name\" `col` ]";

fn hostile_batch() -> RecordBatch {
    let n = HOSTILE.len();
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new(NAME_COL, DataType::Utf8, true),
        Field::new("bin", DataType::Binary, true),
        Field::new("f", DataType::Float64, true),
        Field::new("b", DataType::Boolean, true),
        Field::new("d", DataType::Date32, true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, None), true),
        Field::new("dec", DataType::Decimal128(20, 4), true),
    ]));
    let bins: Vec<Option<&[u8]>> = vec![
        Some(&[0, 1, 255]),
        Some(b""),
        None,
        Some(b"'\\"),
        Some(b"x"),
        None,
        Some(b"\n"),
        Some(b"z"),
    ];
    let floats = vec![
        Some(1.5),
        Some(0.1),
        Some(1e300),
        Some(-2.5e-300),
        None,
        Some(f64::MAX),
        Some(-0.25),
        Some(3.0),
    ];
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from((0..n as i64).collect::<Vec<_>>())),
        Arc::new(StringArray::from(HOSTILE.to_vec())),
        Arc::new(BinaryArray::from(bins)),
        Arc::new(Float64Array::from(floats)),
        Arc::new(BooleanArray::from(vec![
            Some(true),
            Some(false),
            None,
            Some(true),
            Some(false),
            None,
            Some(true),
            Some(false),
        ])),
        Arc::new(Date32Array::from(vec![
            Some(19_723),
            Some(0),
            None,
            Some(-719_162),
            Some(2_932_896),
            None,
            Some(1),
            Some(2),
        ])),
        Arc::new(TimestampMicrosecondArray::from(vec![
            Some(1_704_164_645_123_456),
            Some(0),
            None,
            Some(-1),
            Some(1),
            None,
            Some(253_402_300_799_999_999),
            Some(86_400_000_000),
        ])),
        Arc::new(
            Decimal128Array::from(vec![
                Some(123_456_789_012_345_678),
                Some(-1),
                None,
                Some(0),
                Some(99_999_999_999_999_999),
                None,
                Some(10_000),
                Some(-12_345),
            ])
            .with_precision_and_scale(20, 4)
            .unwrap(),
        ),
    ];
    RecordBatch::try_new(schema, columns).unwrap()
}

/// Expected text of each column per row (as PostgreSQL and MariaDB print them).
fn expected_row(
    i: usize,
) -> (
    Option<String>,
    Option<String>,
    Option<&'static str>,
    Option<&'static str>,
) {
    let names: Vec<Option<String>> = HOSTILE.iter().map(|s| s.map(hex)).collect();
    let bins = [
        Some("0001ff"),
        Some(""),
        None,
        Some("275c"),
        Some("78"),
        None,
        Some("0a"),
        Some("7a"),
    ];
    let days = [
        Some("2024-01-01"),
        Some("1970-01-01"),
        None,
        Some("0001-01-01"),
        Some("9999-12-31"),
        None,
        Some("1970-01-02"),
        Some("1970-01-03"),
    ];
    let decs = [
        Some("12345678901234.5678"),
        Some("-0.0001"),
        None,
        Some("0.0000"),
        Some("9999999999999.9999"),
        None,
        Some("1.0000"),
        Some("-1.2345"),
    ];
    (
        names[i].clone(),
        bins[i].map(str::to_owned),
        days[i],
        decs[i],
    )
}

fn hex(s: &str) -> String {
    use std::fmt::Write as _;
    s.bytes().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

fn generate(format: &SqlInsertFormat, batches: &[RecordBatch]) -> String {
    let mut w = format.writer(batches[0].schema()).unwrap();
    let mut out = Vec::new();
    for b in batches {
        w.write(b).unwrap();
        out.extend_from_slice(&w.take_bytes());
    }
    out.extend_from_slice(&w.finish().unwrap());
    String::from_utf8(out).unwrap()
}

#[test]
fn sqlite_executes_the_output_and_reads_back_the_data() {
    type Row = (
        i64,
        Option<String>,
        Option<String>,
        Option<f64>,
        Option<i64>,
        Option<String>,
        Option<String>,
    );
    let batch = hostile_batch();
    let fmt = SqlInsertFormat::new(SqlDialect::Sqlite, "t\"; DROP TABLE x; --")
        .with_create_table(true)
        .with_rows_per_statement(3);
    // Two batches: statements span batch boundaries.
    let sql = generate(&fmt, &[batch.slice(0, 5), batch.slice(5, 3)]);
    assert_eq!(sql.matches("INSERT INTO").count(), 3, "{sql}");
    let conn = rusqlite::Connection::open_in_memory().unwrap();
    conn.execute_batch("CREATE TABLE x (a INTEGER);").unwrap();
    conn.execute_batch(&sql).unwrap();
    let q = format!(
        "SELECT id, hex(\"{}\"), hex(bin), f, b, d, ts FROM \"t\"\"; DROP TABLE x; --\" ORDER BY id",
        NAME_COL.replace('"', "\"\"")
    );
    let mut stmt = conn.prepare(&q).unwrap();
    let rows: Vec<Row> = stmt
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows.len(), HOSTILE.len());
    let floats = batch
        .column(3)
        .as_any()
        .downcast_ref::<Float64Array>()
        .unwrap();
    for (i, row) in rows.iter().enumerate() {
        let (name, bin, day, _) = expected_row(i);
        assert_eq!(row.0, i as i64);
        // SQLite's hex() of NULL is '' (not NULL).
        assert_eq!(
            row.1.clone().unwrap_or_default(),
            name.unwrap_or_default().to_uppercase(),
            "row {i}"
        );
        assert_eq!(
            row.2.clone().unwrap_or_default(),
            bin.unwrap_or_default().to_uppercase(),
            "row {i}"
        );
        assert_eq!(
            row.3,
            arrow::array::Array::is_valid(floats, i).then(|| floats.value(i)),
            "row {i}"
        );
        assert_eq!(row.5.as_deref(), day, "row {i}");
    }
    assert_eq!(rows[0].4, Some(1));
    assert_eq!(rows[2].4, None);
    assert_eq!(rows[0].6.as_deref(), Some("2024-01-02 03:04:05.123456"));
    assert_eq!(rows[3].6.as_deref(), Some("1969-12-31 23:59:59.999999"));
    // The decoy table is still there.
    let n: i64 = conn
        .query_row("SELECT count(*) FROM x", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 0);
}

#[test]
fn sqlite_non_finite_floats_and_nul_text() {
    let schema = Arc::new(Schema::new(vec![
        Field::new("f", DataType::Float64, true),
        Field::new("s", DataType::Utf8, true),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Float64Array::from(vec![
                f64::NAN,
                f64::INFINITY,
                f64::NEG_INFINITY,
            ])),
            Arc::new(StringArray::from(vec!["a\0b", "c", "\0"])),
        ],
    )
    .unwrap();
    let sql = generate(
        &SqlInsertFormat::new(SqlDialect::Sqlite, "n").with_create_table(true),
        &[batch],
    );
    let conn = rusqlite::Connection::open_in_memory().unwrap();
    conn.execute_batch(&sql).unwrap();
    let rows: Vec<(Option<f64>, String)> = conn
        .prepare("SELECT f, hex(s) FROM n ORDER BY rowid")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows[0], (None, "610062".to_owned()));
    assert_eq!(rows[1], (Some(f64::INFINITY), "63".to_owned()));
    assert_eq!(rows[2], (Some(f64::NEG_INFINITY), "00".to_owned()));
}

#[test]
fn postgres_rejects_nul_in_text_with_a_typed_error() {
    let schema = Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8, true)]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![Arc::new(StringArray::from(vec!["a\0b"]))],
    )
    .unwrap();
    let mut w = SqlInsertFormat::new(SqlDialect::Postgres, "t")
        .writer(schema)
        .unwrap();
    let err = w.write(&batch).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(err.location().and_then(|l| l.column.as_deref()), Some("s"));
}

#[tokio::test]
async fn read_is_unsupported() {
    let input = Arc::new(InMemoryBytes::new("x.sql", "INSERT INTO t VALUES (1);"));
    let err = SqlInsertFormat::default()
        .read(input.clone(), FormatReadOptions::default())
        .await
        .err()
        .unwrap();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert_eq!(
        SqlInsertFormat::default()
            .infer_schema(input)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::Unsupported
    );
}

#[test]
fn oracle_and_sql_server_shapes() {
    let batch = hostile_batch().slice(0, 2);
    let ora = generate(
        &SqlInsertFormat::new(SqlDialect::Oracle, "t").with_rows_per_statement(10),
        std::slice::from_ref(&batch),
    );
    assert!(
        ora.starts_with("INSERT ALL\n  INTO \"t\" (\"id\", "),
        "{ora}"
    );
    assert!(ora.trim_end().ends_with("SELECT 1 FROM DUAL;"), "{ora}");
    assert!(
        ora.contains("DATE '2024-01-01'") && ora.contains("TIMESTAMP '2024-01-02 03:04:05.123456'"),
        "{ora}"
    );
    let mss = generate(
        &SqlInsertFormat::new(SqlDialect::SqlServer, "t").with_rows_per_statement(5000),
        &[batch],
    );
    assert!(
        mss.starts_with("INSERT INTO [t] ([id], [we'ird \"name\" `col` ]]]"),
        "{mss}"
    );
    assert!(
        mss.contains("N'''); DROP TABLE x; --'") && mss.contains("0x0001ff"),
        "{mss}"
    );
}

fn run(cmd: &mut Command, stdin: &str) -> String {
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn psql(sql: &str) -> String {
    run(
        Command::new("psql").args([
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "test",
            "-At",
            "-F",
            "|",
        ]),
        sql,
    )
}

#[test]
fn postgres_executes_the_output_and_reads_back_the_data() {
    let schema_name = format!("sqlinsert_test_{}", std::process::id());
    psql(&format!(
        "DROP SCHEMA IF EXISTS {schema_name} CASCADE; CREATE SCHEMA {schema_name}; CREATE TABLE {schema_name}.x (a int);"
    ));
    let batch = hostile_batch();
    let fmt = SqlInsertFormat::new(SqlDialect::Postgres, "t\"; DROP TABLE x; --")
        .with_schema(&schema_name)
        .with_create_table(true)
        .with_rows_per_statement(3);
    let sql = generate(&fmt, &[batch.slice(0, 4), batch.slice(4, 4)]);
    psql(&sql);
    let out = psql(&format!(
        "SELECT id, encode(convert_to(\"{}\", 'UTF8'), 'hex'), encode(bin, 'hex'), f, b, d, ts, dec FROM {schema_name}.\"t\"\"; DROP TABLE x; --\" ORDER BY id",
        NAME_COL.replace('"', "\"\"")
    ));
    let decoy = psql(&format!("SELECT count(*) FROM {schema_name}.x"));
    psql(&format!("DROP SCHEMA {schema_name} CASCADE"));
    assert_eq!(decoy.trim(), "0");
    let floats = batch
        .column(3)
        .as_any()
        .downcast_ref::<Float64Array>()
        .unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), HOSTILE.len(), "{out}");
    let ts = [
        "2024-01-02 03:04:05.123456",
        "1970-01-01 00:00:00",
        "",
        "1969-12-31 23:59:59.999999",
        "1970-01-01 00:00:00.000001",
        "",
        "9999-12-31 23:59:59.999999",
        "1970-01-02 00:00:00",
    ];
    for (i, line) in lines.iter().enumerate() {
        let cols: Vec<&str> = line.split('|').collect();
        let (name, bin, day, dec) = expected_row(i);
        assert_eq!(cols[0], i.to_string());
        assert_eq!(cols[1], name.unwrap_or_default(), "row {i}");
        assert_eq!(cols[2], bin.unwrap_or_default(), "row {i}");
        let f = (!cols[3].is_empty()).then(|| cols[3].parse::<f64>().unwrap());
        assert_eq!(
            f,
            arrow::array::Array::is_valid(floats, i).then(|| floats.value(i)),
            "row {i}"
        );
        assert_eq!(cols[5], day.unwrap_or_default(), "row {i}");
        assert_eq!(cols[6], ts[i], "row {i}");
        assert_eq!(cols[7], dec.unwrap_or_default(), "row {i}");
    }
    assert_eq!(lines[0].split('|').nth(4), Some("t"));
    assert_eq!(lines[1].split('|').nth(4), Some("f"));
}

#[test]
fn postgres_non_finite_floats() {
    let schema_name = format!("sqlinsert_nf_{}", std::process::id());
    psql(&format!(
        "DROP SCHEMA IF EXISTS {schema_name} CASCADE; CREATE SCHEMA {schema_name};"
    ));
    let schema = Arc::new(Schema::new(vec![Field::new("f", DataType::Float64, true)]));
    let batch = RecordBatch::try_new(
        schema,
        vec![Arc::new(Float64Array::from(vec![
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ]))],
    )
    .unwrap();
    let sql = generate(
        &SqlInsertFormat::new(SqlDialect::Postgres, "n")
            .with_schema(&schema_name)
            .with_create_table(true),
        &[batch],
    );
    psql(&sql);
    let out = psql(&format!("SELECT f FROM {schema_name}.n ORDER BY f"));
    psql(&format!("DROP SCHEMA {schema_name} CASCADE"));
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        vec!["-Infinity", "Infinity", "NaN"]
    );
}

fn mariadb(sql: &str) -> String {
    run(
        Command::new("mariadb").args([
            "-h",
            "127.0.0.1",
            "-P",
            "3306",
            "-uroot",
            "--default-character-set=utf8mb4",
            "--batch",
            "--skip-column-names",
            "test",
        ]),
        sql,
    )
}

#[test]
fn mariadb_executes_the_output_and_reads_back_the_data() {
    let table = format!("sqlinsert`{}; DROP TABLE x; --", std::process::id());
    let quoted = format!("`{}`", table.replace('`', "``"));
    let decoy = format!("`sqlinsert_decoy_{}`", std::process::id());
    mariadb(&format!(
        "DROP TABLE IF EXISTS {quoted}; DROP TABLE IF EXISTS {decoy}; CREATE TABLE {decoy} (a int);"
    ));
    let batch = hostile_batch();
    let fmt = SqlInsertFormat::new(SqlDialect::MySql, &table)
        .with_create_table(true)
        .with_rows_per_statement(5);
    let sql = generate(&fmt, std::slice::from_ref(&batch));
    mariadb(&sql);
    let out = mariadb(&format!(
        "SELECT id, LOWER(HEX(`{}`)), LOWER(HEX(bin)), f, b, d, ts, `dec` FROM {quoted} ORDER BY id",
        NAME_COL.replace('`', "``")
    ));
    let decoy_rows = mariadb(&format!("SELECT count(*) FROM {decoy}"));
    mariadb(&format!("DROP TABLE {quoted}; DROP TABLE {decoy};"));
    assert_eq!(decoy_rows.trim(), "0");
    let floats = batch
        .column(3)
        .as_any()
        .downcast_ref::<Float64Array>()
        .unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), HOSTILE.len(), "{out}");
    for (i, line) in lines.iter().enumerate() {
        let cols: Vec<&str> = line.split('\t').collect();
        let (name, bin, day, dec) = expected_row(i);
        assert_eq!(cols[0], i.to_string());
        assert_eq!(cols[1], name.as_deref().unwrap_or("NULL"), "row {i}");
        assert_eq!(cols[2], bin.as_deref().unwrap_or("NULL"), "row {i}");
        let f = (cols[3] != "NULL").then(|| cols[3].parse::<f64>().unwrap());
        assert_eq!(
            f,
            arrow::array::Array::is_valid(floats, i).then(|| floats.value(i)),
            "row {i}"
        );
        assert_eq!(cols[5], day.unwrap_or("NULL"), "row {i}");
        assert_eq!(cols[7], dec.unwrap_or("NULL"), "row {i}");
    }
    assert_eq!(
        lines[0].split('\t').nth(6),
        Some("2024-01-02 03:04:05.123456")
    );
}
