#![no_main]
//! Arbitrary bytes through the xml decoder: no input may panic.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    connector_file_fuzz::run(
        &connector_file::XmlFormat::default(),
        "fuzz.xml",
        data,
        true,
    );
});
