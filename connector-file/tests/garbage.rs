//! Untrusted bytes into the CSV, JSON and Parquet codecs: results or typed errors that name the
//! file, never a panic. Inputs are valid files with bytes flipped, cut short or spliced, and pure
//! noise, from a fixed-seed generator so that any failure reproduces.
#![cfg(all(feature = "csv", feature = "json", feature = "parquet"))]

use std::sync::Arc;

use arrow::array::{Float64Array, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use connector_core::{Error, collect};
use connector_file::{
    BadRows, CsvFormat, FileFormat, FormatReadOptions, InMemoryBytes, JsonFormat, ParquetFormat,
};

/// A 64-bit linear congruential generator (Knuth's MMIX constants), high bits out.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 16
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("name", DataType::Utf8, true),
        Field::new("score", DataType::Float64, true),
    ]))
}

fn sample() -> RecordBatch {
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int64Array::from_iter_values(0..200)),
            Arc::new(StringArray::from_iter_values(
                (0..200).map(|i| format!("n\"{i},\n{i}")),
            )),
            Arc::new(Float64Array::from_iter_values((0..200).map(f64::from))),
        ],
    )
    .unwrap()
}

fn encode(format: &dyn FileFormat) -> Vec<u8> {
    let mut w = format.writer(schema()).unwrap();
    w.write(&sample()).unwrap();
    let mut out = w.take_bytes().to_vec();
    out.extend_from_slice(&w.finish().unwrap());
    out
}

fn mutate(valid: &[u8], rng: &mut Lcg) -> Vec<u8> {
    let mut v = valid.to_vec();
    match rng.below(4) {
        0 => {
            for _ in 0..=rng.below(8) {
                let i = rng.below(v.len());
                v[i] = rng.next() as u8;
            }
        }
        1 => v.truncate(rng.below(v.len())),
        2 => {
            let (a, b) = (rng.below(v.len()), rng.below(v.len()));
            let (a, b) = (a.min(b), a.max(b));
            v.drain(a..b);
        }
        _ => v = (0..rng.below(3000)).map(|_| rng.next() as u8).collect(),
    }
    v
}

fn check_error(e: &Error, name: &str, what: &str) {
    let file = e.location().and_then(|l| l.file.as_deref());
    assert_eq!(
        file,
        Some(name),
        "{what}: error does not name the file: {e}"
    );
}

/// Returns how many errors the input produced.
async fn exercise(format: &dyn FileFormat, data: Vec<u8>, name: &str) -> usize {
    let mut errors = 0;
    let input = Arc::new(InMemoryBytes::new(name, Bytes::from(data)));
    if let Err(e) = format.infer_schema(input.clone()).await {
        check_error(&e, name, "infer_schema");
        errors += 1;
    }
    for bad_rows in [BadRows::Fail, BadRows::Skip] {
        let options = FormatReadOptions {
            schema: Some(schema()),
            batch_rows: 16,
            bad_rows,
            ..FormatReadOptions::default()
        };
        match format.read(input.clone(), options).await {
            Ok(stream) => {
                if let Err(e) = collect(stream).await {
                    check_error(&e, name, "read");
                    errors += 1;
                }
            }
            Err(e) => {
                check_error(&e, name, "open");
                errors += 1;
            }
        }
    }
    errors
}

#[tokio::test]
async fn damaged_inputs_never_panic_and_errors_name_the_file() {
    let formats: Vec<(Arc<dyn FileFormat>, &str)> = vec![
        (Arc::new(CsvFormat::default()), "fuzz.csv"),
        (Arc::new(JsonFormat::default()), "fuzz.json"),
        (Arc::new(ParquetFormat::default()), "fuzz.parquet"),
    ];
    let mut rng = Lcg(0x5eed);
    for (format, name) in &formats {
        let valid = encode(format.as_ref());
        assert_eq!(exercise(format.as_ref(), valid.clone(), name).await, 0);
        let mut errors = 0;
        for _ in 0..150 {
            let data = mutate(&valid, &mut rng);
            errors += exercise(format.as_ref(), data, name).await;
        }
        // The damage is real: most inputs fail somewhere.
        assert!(
            errors > 100,
            "{name}: only {errors} errors from 150 damaged inputs"
        );
    }
}
