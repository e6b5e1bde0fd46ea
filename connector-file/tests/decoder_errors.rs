//! Untrusted bytes into the Excel, Avro and XML decoders: typed errors that name the file,
//! never a panic. Garbage comes from a fixed-seed generator, so failures reproduce.

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use connector_core::{Error, ErrorKind, collect};
use connector_file::{
    AvroFormat, ExcelFormat, FileFormat, FormatReadOptions, InMemoryBytes, XmlFormat,
};

/// xorshift64*: deterministic garbage.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Read `data` fully (schema inference and decode); `Ok(rows)` or the first error.
async fn decode(format: &dyn FileFormat, name: &str, data: Vec<u8>) -> Result<usize, Error> {
    let input = Arc::new(InMemoryBytes::new(name, data));
    format.infer_schema(input.clone()).await?;
    let options = FormatReadOptions {
        batch_rows: 16,
        ..FormatReadOptions::default()
    };
    Ok(collect(format.read(input, options).await?)
        .await?
        .num_rows())
}

/// An error about bad input: typed, and naming the file.
fn assert_located(e: &Error, name: &str, what: &str) {
    assert!(
        matches!(e.kind(), ErrorKind::Decode | ErrorKind::InvalidInput),
        "{what}: unexpected kind: {e}"
    );
    assert_eq!(
        e.location().and_then(|l| l.file.as_deref()),
        Some(name),
        "{what}: no file in {e}"
    );
    assert!(e.connector().is_some(), "{what}: no connector in {e}");
    assert!(e.operation().is_some(), "{what}: no operation in {e}");
}

fn sample() -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("x", DataType::Float64, true),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from((0..40).collect::<Vec<i64>>())),
        Arc::new(StringArray::from(
            (0..40)
                .map(|i| (i % 3 != 0).then(|| format!("n{i} <&>")))
                .collect::<Vec<_>>(),
        )),
        Arc::new(Float64Array::from(
            (0..40).map(|i| f64::from(i) / 7.0).collect::<Vec<_>>(),
        )),
    ];
    RecordBatch::try_new(schema, columns).unwrap()
}

fn encode(format: &dyn FileFormat, batch: &RecordBatch) -> Vec<u8> {
    let mut w = format.writer(batch.schema()).unwrap();
    w.write(batch).unwrap();
    let mut out = w.take_bytes().to_vec();
    out.extend_from_slice(&w.finish().unwrap());
    out
}

#[tokio::test]
async fn xlsx_that_is_not_a_zip() {
    for data in [
        b"".to_vec(),
        b"id,name\n1,a\n".to_vec(),
        b"PK".to_vec(),
        vec![0u8; 4096],
    ] {
        let e = decode(&ExcelFormat::default(), "report.xlsx", data)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Decode, "{e}");
        assert_located(&e, "report.xlsx", "not a zip");
        assert_eq!(e.connector(), Some("excel"));
    }
}

#[tokio::test]
async fn broken_xml_has_line_and_column() {
    let e = decode(
        &XmlFormat::default(),
        "feed.xml",
        b"<rows>\n  <row>\n    <a>1</b>\n  </row>\n</rows>".to_vec(),
    )
    .await
    .unwrap_err();
    assert_located(&e, "feed.xml", "mismatched tag");
    assert_eq!(e.location().and_then(|l| l.line), Some(3), "{e}");
    assert!(e.context().iter().any(|(k, _)| *k == "column"), "{e}");
    assert!(e.location().and_then(|l| l.byte_offset).is_some(), "{e}");
}

#[tokio::test]
async fn truncated_avro() {
    let bytes = encode(&AvroFormat::default(), &sample());
    for cut in [bytes.len() - 1, bytes.len() - 17, bytes.len() / 2, 5, 3] {
        let e = decode(&AvroFormat::default(), "events.avro", bytes[..cut].to_vec())
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Decode, "cut {cut}: {e}");
        assert_located(&e, "events.avro", "truncated avro");
    }
}

/// Garbage, garbage behind each format's magic, and mutations of a valid file.
fn inputs(valid: &[u8], magic: &[u8], seed: u64) -> Vec<Vec<u8>> {
    let mut rng = Rng(seed);
    let mut out = Vec::new();
    for _ in 0..150 {
        let len = rng.below(2048);
        out.push(rng.bytes(len));
    }
    for _ in 0..150 {
        let mut v = magic.to_vec();
        let len = rng.below(1024);
        v.extend(rng.bytes(len));
        out.push(v);
    }
    for _ in 0..150 {
        let mut v = valid.to_vec();
        for _ in 0..=rng.below(8) {
            let i = rng.below(v.len());
            v[i] = rng.next() as u8;
        }
        if rng.below(3) == 0 {
            v.truncate(rng.below(v.len()));
        }
        out.push(v);
    }
    out
}

async fn garbage_never_panics(format: &dyn FileFormat, name: &str, magic: &[u8], seed: u64) {
    let valid = encode(format, &sample());
    // Keep the valid file as a fuzzing seed (see fuzz/README.md).
    let seeds = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-seeds");
    std::fs::create_dir_all(&seeds).unwrap();
    std::fs::write(seeds.join(name), &valid).unwrap();
    assert_eq!(
        decode(format, name, valid.clone()).await.unwrap(),
        40,
        "the valid file reads"
    );
    let mut errors = 0;
    for (i, data) in inputs(&valid, magic, seed).into_iter().enumerate() {
        if let Err(e) = decode(format, name, data).await {
            assert_located(&e, name, &format!("input {i}"));
            errors += 1;
        }
    }
    assert!(errors >= 300, "only {errors} of 450 garbage inputs failed");
}

#[tokio::test]
async fn garbage_into_excel() {
    garbage_never_panics(
        &ExcelFormat::default(),
        "g.xlsx",
        b"PK\x03\x04",
        0x5eed_0001,
    )
    .await;
}

#[tokio::test]
async fn garbage_into_avro() {
    garbage_never_panics(&AvroFormat::default(), "g.avro", b"Obj\x01", 0x5eed_0002).await;
}

#[tokio::test]
async fn garbage_into_xml() {
    garbage_never_panics(
        &XmlFormat::default(),
        "g.xml",
        b"<rows><row><a>",
        0x5eed_0003,
    )
    .await;
}
