//! Parquet footers that make parquet's Thrift decoder slow must fail fast with a typed error.
//!
//! `data/parquet-thrift-skip-timeout.bin` is a 105-byte file found by the `parquet` fuzz target
//! (`fuzz/regressions/`): its 7-byte footer declares an unknown field of type
//! `map<bool, bool>` with ~197 million entries. parquet 59.3 skips unknown fields with
//! `skip_till_depth`, which reads nothing for a `bool` collection element, so it loops 394
//! million times over 2 bytes of input.
#![cfg(feature = "parquet")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use connector_core::{Error, ErrorKind, ReadRequest, SourceExt};
use connector_file::{
    ByteSource, FileFormat, FileOptions, FileSource, FormatReadOptions, InMemoryBytes,
    ParquetFormat,
};

const SLOW_FOOTER: &[u8] = include_bytes!("data/parquet-thrift-skip-timeout.bin");

/// Far below the seconds the unguarded decode takes in a debug build, far above the guard's cost.
const FAST: Duration = Duration::from_secs(2);

fn check(e: &Error, name: &str) {
    assert_eq!(e.kind(), ErrorKind::Decode, "{e}");
    assert_eq!(e.connector(), Some("parquet"), "{e}");
    let file = e.location().and_then(|l| l.file.as_deref()).unwrap_or("");
    assert!(file.ends_with(name), "{e}");
    assert!(e.to_string().contains("footer"), "{e}");
}

#[tokio::test]
async fn slow_thrift_footer_is_a_fast_decode_error_through_the_format() {
    let input: Arc<dyn ByteSource> =
        Arc::new(InMemoryBytes::new("mem://slow.parquet", SLOW_FOOTER));
    let format = ParquetFormat::default();

    let started = Instant::now();
    let e = format.infer_schema(input.clone()).await.unwrap_err();
    check(&e, "slow.parquet");
    let Err(e) = format.read(input, FormatReadOptions::default()).await else {
        panic!("read of a corrupt footer succeeded");
    };
    check(&e, "slow.parquet");
    assert!(started.elapsed() < FAST, "took {:?}", started.elapsed());
}

#[tokio::test]
async fn slow_thrift_footer_is_a_fast_decode_error_through_the_file_source() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("slow.parquet"), SLOW_FOOTER).unwrap();
    let source = FileSource::local(
        dir.path(),
        FileOptions::default().with_format(Arc::new(ParquetFormat::default())),
    )
    .unwrap();

    let started = Instant::now();
    let e = source
        .read_batch(ReadRequest::dataset("slow.parquet"))
        .await
        .unwrap_err();
    check(&e, "slow.parquet");
    assert!(started.elapsed() < FAST, "took {:?}", started.elapsed());
}

/// How long parquet itself takes on the footer, without our guard. Ignored: it spins for seconds
/// in a debug build. Run with
/// `cargo test [--release] -p connector-file --test parquet_footer -- --ignored --nocapture`.
#[test]
#[ignore = "measures the upstream slowness; seconds of CPU"]
fn measure_unguarded_parquet_decode() {
    use parquet::file::metadata::ParquetMetaDataReader;
    let started = Instant::now();
    let result =
        ParquetMetaDataReader::new().parse_and_finish(&bytes::Bytes::from_static(SLOW_FOOTER));
    let elapsed = started.elapsed();
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    println!("parquet decode of the slow footer ({profile}): {elapsed:?} -> {result:?}");
    assert!(result.is_err());
}

/// A file found by the `parquet` fuzz target whose embedded Arrow schema (`ARROW:schema`)
/// holds a field of type `NONE`: arrow-ipc 59.3 answers it with `unimplemented!`. The read must
/// fail with a typed error naming the file, not unwind into the caller.
#[tokio::test]
async fn embedded_arrow_schema_that_panics_arrow_ipc_is_a_decode_error() {
    let bytes: &[u8] = include_bytes!("data/parquet-arrow-schema-type-none.bin");
    let input: Arc<dyn ByteSource> = Arc::new(InMemoryBytes::new("mem://none.parquet", bytes));
    let format = ParquetFormat::default();
    let e = format.infer_schema(input.clone()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Decode, "{e}");
    let file = e.location().and_then(|l| l.file.as_deref()).unwrap_or("");
    assert!(file.ends_with("none.parquet"), "{e}");
    assert!(e.to_string().contains("malformed"), "{e}");
    let Err(e) = format.read(input, FormatReadOptions::default()).await else {
        panic!("read of a file with a corrupt embedded schema succeeded");
    };
    assert_eq!(e.kind(), ErrorKind::Decode, "{e}");
}
