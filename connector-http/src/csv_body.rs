//! CSV response bodies, decoded by connector-file's CSV codec over the in-memory body: the same
//! dialect handling, schema inference, BOM stripping and line-numbered errors as CSV files.

use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use connector_core::{Location, Result};
use connector_file::csv::CsvFormat;
use connector_file::{FileFormat, FormatReadOptions, InMemoryBytes};
use futures::TryStreamExt;

/// Decode a CSV body with a header row.
pub async fn decode(body: &[u8], url: &str) -> Result<Vec<RecordBatch>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    let format = CsvFormat::default();
    let input = Arc::new(InMemoryBytes::new(url, bytes::Bytes::copy_from_slice(body)));
    let options = FormatReadOptions {
        batch_rows: 8192,
        ..FormatReadOptions::default()
    };
    let stream = format
        .read(input, options)
        .await
        .map_err(|e| e.with_location(Location::url(url)))?;
    stream
        .try_collect()
        .await
        .map_err(|e| e.with_location(Location::url(url)))
}
