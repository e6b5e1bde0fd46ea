//! XML codec: rows from children of the root or a row tag, attributes, nested and repeated
//! elements, inference, explicit schemas, streaming over small chunks, broken XML with line and
//! column, and writer round trips.

use std::fmt::Write as _;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema, TimeUnit};
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use connector_core::{Error, ErrorKind, Result, collect};
use connector_file::{BadRows, FileFormat, FormatReadOptions, InMemoryBytes, XmlFormat};

const CATALOG: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<!-- a catalog -->
<catalog xmlns:x="urn:x">
  <item id="1" x:flag="yes">
    <name>Widget &amp; Co</name>
    <price currency="EUR">9.99</price>
    <qty>3</qty>
    <ok>true</ok>
    <day>2024-01-02</day>
    <at>2024-01-02T03:04:05.5</at>
    <tags><tag>a</tag><tag>b &lt;</tag></tags>
    <note><![CDATA[<raw> & stuff]]></note>
  </item>
  <item id="2">
    <name>Gadget &#x263A;</name>
    <price currency="USD">10</price>
    <qty>4</qty>
    <ok>false</ok>
    <alias>one</alias><alias>two</alias>
    <empty/>
  </item>
</catalog>
"#;

fn opts() -> FormatReadOptions {
    FormatReadOptions {
        batch_rows: 100,
        ..FormatReadOptions::default()
    }
}

async fn read_str(
    format: &XmlFormat,
    xml: &str,
    options: FormatReadOptions,
) -> Result<RecordBatch> {
    let input = Arc::new(InMemoryBytes::new("test.xml", xml.to_owned()));
    collect(format.read(input, options).await?).await
}

fn col<'a>(b: &'a RecordBatch, name: &str) -> &'a ArrayRef {
    b.column_by_name(name)
        .unwrap_or_else(|| panic!("no column {name} in {:?}", b.schema()))
}

#[tokio::test]
async fn children_of_the_root_become_rows_with_inferred_types() {
    let b = read_str(&XmlFormat::default(), CATALOG, opts())
        .await
        .unwrap();
    assert_eq!(b.num_rows(), 2);
    let schema = b.schema();
    let ty = |n: &str| schema.field_with_name(n).unwrap().data_type().clone();
    assert_eq!(ty("@id"), DataType::Int64);
    assert_eq!(ty("@flag"), DataType::Utf8);
    assert_eq!(ty("price"), DataType::Float64);
    assert_eq!(ty("price@currency"), DataType::Utf8);
    assert_eq!(ty("qty"), DataType::Int64);
    assert_eq!(ty("ok"), DataType::Boolean);
    assert_eq!(ty("day"), DataType::Date32);
    assert_eq!(ty("at"), DataType::Timestamp(TimeUnit::Microsecond, None));
    assert_eq!(
        col(&b, "@id").as_primitive::<Int64Type>().values().to_vec(),
        vec![1, 2]
    );
    let names = col(&b, "name").as_string::<i32>();
    assert_eq!(names.value(0), "Widget & Co");
    assert_eq!(names.value(1), "Gadget \u{263A}");
    assert_eq!(
        col(&b, "price")
            .as_primitive::<Float64Type>()
            .values()
            .to_vec(),
        vec![9.99, 10.0]
    );
    assert_eq!(col(&b, "price@currency").as_string::<i32>().value(1), "USD");
    assert_eq!(
        col(&b, "tags").as_string::<i32>().value(0),
        "<tag>a</tag><tag>b &lt;</tag>"
    );
    assert!(col(&b, "tags").is_null(1));
    assert_eq!(col(&b, "note").as_string::<i32>().value(0), "<raw> & stuff");
    assert_eq!(
        col(&b, "alias").as_string::<i32>().value(1),
        "<alias>one</alias><alias>two</alias>"
    );
    assert_eq!(col(&b, "empty").as_string::<i32>().value(1), "");
    assert!(col(&b, "@flag").is_null(1));
}

#[tokio::test]
async fn small_chunks_give_the_same_rows() {
    let whole = read_str(&XmlFormat::default(), CATALOG, opts())
        .await
        .unwrap();
    for chunk in [1, 2, 3, 7, 64] {
        let input = Arc::new(
            InMemoryBytes::new("chunked.xml", Bytes::from_static(CATALOG.as_bytes()))
                .with_stream_chunk(chunk),
        );
        let b = collect(XmlFormat::default().read(input, opts()).await.unwrap())
            .await
            .unwrap();
        assert_eq!(b, whole, "chunk {chunk}");
    }
}

#[tokio::test]
async fn row_tag_selects_records_at_any_depth() {
    let xml = "<root><meta><item>not a row? yes it is</item></meta><list>\n<item><v>1</v></item>\n<item><v>2</v></item></list></root>";
    let b = read_str(&XmlFormat::default().with_row_tag("item"), xml, opts())
        .await
        .unwrap();
    assert_eq!(b.num_rows(), 3);
    assert_eq!(
        col(&b, "#text").as_string::<i32>().value(0),
        "not a row? yes it is"
    );
    let v = col(&b, "v").as_primitive::<Int64Type>();
    assert_eq!((v.value(1), v.value(2)), (1, 2));
    assert!(col(&b, "v").is_null(0));
}

async fn broken(xml: &str) -> Error {
    read_str(&XmlFormat::default(), xml, opts())
        .await
        .unwrap_err()
}

fn line_and_column(e: &Error) -> (Option<u64>, Option<String>) {
    let line = e.location().and_then(|l| l.line);
    let column = e
        .context()
        .iter()
        .find(|(k, _)| *k == "column")
        .map(|(_, v)| v.clone());
    (line, column)
}

#[tokio::test]
async fn broken_xml_names_file_line_and_column() {
    let e = broken("<rows>\n  <row><a>1</a></row>\n  <row><a>2</b></row>\n</rows>").await;
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert_eq!(e.connector(), Some("xml"));
    assert_eq!(
        e.location().and_then(|l| l.file.as_deref()),
        Some("test.xml")
    );
    assert_eq!(line_and_column(&e).0, Some(3), "{e}");
    assert!(line_and_column(&e).1.is_some(), "{e}");

    let e = broken("<rows>\n<row><a>1</a></row>\n").await;
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("not closed"), "{e}");

    let e = broken("hello world").await;
    assert_eq!(e.kind(), ErrorKind::InvalidInput);

    let e = broken("").await;
    assert!(e.to_string().contains("no root"), "{e}");

    let e = broken("<rows>\n<row><a>&nope;</a></row></rows>").await;
    assert!(e.to_string().contains("unknown entity"), "{e}");
    assert_eq!(line_and_column(&e).0, Some(2));

    let e = broken("<rows><row/></rows><rows/>").await;
    assert!(e.to_string().contains("second root"), "{e}");

    let e = broken("<rows><row a=\"1\" a=\"2\"/></rows>").await;
    assert_eq!(e.kind(), ErrorKind::InvalidInput);

    let mut bad_utf8 = b"<rows><row><a>".to_vec();
    bad_utf8.extend_from_slice(&[0xff, 0xfe]);
    bad_utf8.extend_from_slice(b"</a></row></rows>");
    let input = Arc::new(InMemoryBytes::new("bad.xml", bad_utf8));
    let e = match XmlFormat::default().read(input, opts()).await {
        Ok(s) => collect(s).await.unwrap_err(),
        Err(e) => e,
    };
    assert_eq!(
        e.location().and_then(|l| l.file.as_deref()),
        Some("bad.xml"),
        "{e}"
    );
}

#[tokio::test]
async fn line_numbers_are_right_across_chunks() {
    let mut xml = String::from("<rows>\n");
    for i in 0..500 {
        let _ = writeln!(xml, "  <row><a>{i}</a></row>");
    }
    xml.push_str("  <row><a>x</b></row>\n</rows>\n");
    let input = Arc::new(InMemoryBytes::new("chunked.xml", Bytes::from(xml)).with_stream_chunk(13));
    let e = match XmlFormat::default().read(input, opts()).await {
        Ok(s) => collect(s).await.unwrap_err(),
        Err(e) => e,
    };
    assert_eq!(line_and_column(&e).0, Some(502), "{e}");
}

#[tokio::test]
async fn explicit_schema_bad_value_fails_or_is_skipped() {
    let xml = "<rows>\n<row><n>1</n></row>\n<row><n>two</n></row>\n<row><n>3</n></row>\n</rows>";
    let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int32, true)]));
    let e = read_str(
        &XmlFormat::default(),
        xml,
        FormatReadOptions {
            schema: Some(schema.clone()),
            ..opts()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert_eq!(e.location().and_then(|l| l.line), Some(3));
    assert_eq!(e.location().and_then(|l| l.column.as_deref()), Some("n"));
    let o = FormatReadOptions {
        schema: Some(schema),
        bad_rows: BadRows::Skip,
        ..opts()
    };
    let log = o.bad_row_log.clone();
    let b = read_str(&XmlFormat::default(), xml, o).await.unwrap();
    assert_eq!(
        b.column(0)
            .as_primitive::<arrow::datatypes::Int32Type>()
            .values()
            .to_vec(),
        vec![1, 3]
    );
    assert_eq!(log.count(), 1);
    assert_eq!(log.rows()[0].location.line, Some(3));
}

#[tokio::test]
async fn limit_and_batches() {
    let mut xml = String::from("<rows>");
    for i in 0..25 {
        let _ = write!(xml, "<row><a>{i}</a></row>");
    }
    xml.push_str("</rows>");
    let input = Arc::new(InMemoryBytes::new("x.xml", xml));
    let s = XmlFormat::default()
        .read(
            input.clone(),
            FormatReadOptions {
                batch_rows: 10,
                ..FormatReadOptions::default()
            },
        )
        .await
        .unwrap();
    let batches: Vec<RecordBatch> = futures::TryStreamExt::try_collect(s).await.unwrap();
    assert_eq!(
        batches
            .iter()
            .map(RecordBatch::num_rows)
            .collect::<Vec<_>>(),
        vec![10, 10, 5]
    );
    let s = XmlFormat::default()
        .read(
            input,
            FormatReadOptions {
                batch_rows: 10,
                limit: Some(12),
                ..FormatReadOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(collect(s).await.unwrap().num_rows(), 12);
}

#[tokio::test]
async fn writer_round_trips_values_attributes_and_nulls() {
    let schema = Arc::new(Schema::new(vec![
        Field::new("@id", DataType::Int64, true),
        Field::new("text", DataType::Utf8, true),
        Field::new("other", DataType::Utf8, true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(vec![1, 2, 3])),
            Arc::new(StringArray::from(vec![
                Some("<a> & 'b' \"c\"\r\nnext\ttab ü"),
                None,
                Some(""),
            ])),
            Arc::new(StringArray::from(vec![Some("x"), Some("]]>"), None])),
        ],
    )
    .unwrap();
    let fmt = XmlFormat::default().with_write_tags("data", "record");
    let mut w = fmt.writer(schema.clone()).unwrap();
    w.write(&batch.slice(0, 2)).unwrap();
    let mut out = w.take_bytes().to_vec();
    w.write(&batch.slice(2, 1)).unwrap();
    out.extend_from_slice(&w.finish().unwrap());
    let xml = String::from_utf8(out).unwrap();
    assert!(
        xml.contains("<data>") && xml.contains("<record id=\"1\">"),
        "{xml}"
    );
    let back = read_str(
        &XmlFormat::default(),
        &xml,
        FormatReadOptions {
            schema: Some(schema),
            ..opts()
        },
    )
    .await
    .unwrap();
    assert_eq!(back, batch);

    let bad = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8, true)])),
        vec![Arc::new(StringArray::from(vec!["bell \u{7}"]))],
    )
    .unwrap();
    let mut w = fmt.writer(bad.schema()).unwrap();
    let e = w.write(&bad).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert_eq!(e.location().and_then(|l| l.column.as_deref()), Some("s"));
}
