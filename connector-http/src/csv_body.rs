//! CSV response bodies.
//!
//! Decoded with arrow-csv (schema inferred from the body, header row required). connector-file's
//! CSV codec adds files, globs and compression on top of the same reader; a body is one
//! in-memory document, so the reader is used directly.

use std::io::Cursor;

use arrow::record_batch::RecordBatch;
use connector_core::{Error, ErrorKind, Location, Result};

/// Decode a CSV body with a header row.
pub fn decode(body: &[u8], url: &str) -> Result<Vec<RecordBatch>> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    let fmt = arrow::csv::reader::Format::default().with_header(true);
    let (schema, _) = fmt
        .infer_schema(Cursor::new(body), Some(1000))
        .map_err(|e| {
            Error::new(
                ErrorKind::Decode,
                format!("cannot infer the CSV schema: {e}"),
            )
            .with_location(Location::url(url))
        })?;
    let reader = arrow::csv::ReaderBuilder::new(std::sync::Arc::new(schema))
        .with_format(fmt)
        .build(Cursor::new(body))
        .map_err(|e| Error::from(e).with_location(Location::url(url)))?;
    reader
        .map(|b| {
            b.map_err(|e| {
                Error::new(ErrorKind::Decode, format!("invalid CSV body: {e}"))
                    .with_location(Location::url(url))
            })
        })
        .collect()
}
