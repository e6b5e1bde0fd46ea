//! Avro codec: write then read back, compression, truncation and corruption.

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Float64Array, Int32Array, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use connector_core::{ErrorKind, collect};
use connector_file::{AvroCompression, AvroFormat, FileFormat, FormatReadOptions, InMemoryBytes};

fn batch(offset: i64, n: usize) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("score", DataType::Float64, true),
        Field::new("ok", DataType::Boolean, false),
        Field::new("small", DataType::Int32, true),
    ]));
    let ids: Vec<i64> = (0..n as i64).map(|i| i + offset).collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids.clone())),
        Arc::new(StringArray::from(
            ids.iter()
                .map(|i| (i % 3 != 0).then(|| format!("name-{i} ü")))
                .collect::<Vec<_>>(),
        )),
        Arc::new(Float64Array::from(
            ids.iter()
                .map(|i| (i % 4 != 0).then_some(*i as f64 / 3.0))
                .collect::<Vec<_>>(),
        )),
        Arc::new(BooleanArray::from(
            ids.iter().map(|i| i % 2 == 0).collect::<Vec<_>>(),
        )),
        Arc::new(Int32Array::from(
            ids.iter()
                .map(|i| (i % 5 != 0).then_some(*i as i32))
                .collect::<Vec<_>>(),
        )),
    ];
    RecordBatch::try_new(schema, columns).unwrap()
}

fn write(format: &AvroFormat, batches: &[RecordBatch]) -> Vec<u8> {
    let mut w = format.writer(batches[0].schema()).unwrap();
    let mut out = Vec::new();
    for b in batches {
        w.write(b).unwrap();
        out.extend_from_slice(&w.take_bytes());
    }
    out.extend_from_slice(&w.finish().unwrap());
    out
}

async fn read(bytes: Vec<u8>, batch_rows: usize) -> connector_core::Result<RecordBatch> {
    let input = Arc::new(InMemoryBytes::new("data.avro", bytes));
    let o = FormatReadOptions {
        batch_rows,
        ..FormatReadOptions::default()
    };
    collect(AvroFormat::default().read(input, o).await?).await
}

#[tokio::test]
async fn round_trip_every_compression() {
    let batches = vec![batch(0, 100), batch(100, 57)];
    let expected = arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
    for compression in [
        AvroCompression::None,
        AvroCompression::Deflate,
        AvroCompression::Snappy,
        AvroCompression::Zstd,
    ] {
        let bytes = write(&AvroFormat { compression }, &batches);
        let out = read(bytes, 64).await.unwrap();
        assert_eq!(out, expected, "{compression:?}");
    }
}

#[tokio::test]
async fn infer_schema_comes_from_the_header() {
    let bytes = write(&AvroFormat::default(), &[batch(0, 3)]);
    let schema = AvroFormat::default()
        .infer_schema(Arc::new(InMemoryBytes::new("a.avro", bytes)))
        .await
        .unwrap();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, vec!["id", "name", "score", "ok", "small"]);
    assert_eq!(schema.field(0).data_type(), &DataType::Int64);
}

#[tokio::test]
async fn every_truncation_is_a_decode_error_never_fewer_rows() {
    let bytes = write(&AvroFormat::default(), &[batch(0, 20), batch(20, 20)]);
    // Every strict prefix either fails with a decode error naming the file, or (for a cut exactly
    // at a block boundary, which the format cannot tell from a complete file) returns whole blocks.
    for cut in 0..bytes.len() {
        match read(bytes[..cut].to_vec(), 16).await {
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::Decode, "cut at {cut}: {e}");
                assert_eq!(
                    e.location().and_then(|l| l.file.as_deref()),
                    Some("data.avro")
                );
                assert_eq!(e.connector(), Some("avro"));
            }
            Ok(b) => assert!(
                b.num_rows() == 0 || b.num_rows() == 20,
                "cut at {cut} gave {} rows",
                b.num_rows()
            ),
        }
    }
}

#[tokio::test]
async fn flipped_bytes_never_panic() {
    let bytes = write(
        &AvroFormat {
            compression: AvroCompression::Deflate,
        },
        &[batch(0, 30)],
    );
    for i in 0..bytes.len() {
        let mut b = bytes.clone();
        b[i] ^= 0xA5;
        if let Err(e) = read(b, 8).await {
            assert!(
                matches!(e.kind(), ErrorKind::Decode | ErrorKind::SchemaMismatch),
                "byte {i}: {e}"
            );
        }
    }
}
