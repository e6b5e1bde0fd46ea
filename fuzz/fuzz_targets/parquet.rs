#![no_main]
//! Arbitrary bytes through the parquet decoder: no input may panic.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    connector_file_fuzz::run(
        &connector_file::ParquetFormat::default(),
        "fuzz.parquet",
        data,
        false,
    );
});
