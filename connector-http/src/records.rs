//! From response bodies to Arrow: find the records (JSON pointer, NDJSON lines, CSV through
//! connector-file's codec) and decode them with arrow-json's `Decoder::serialize`, so nested
//! objects become structs and arrays become lists.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use connector_core::{Error, ErrorKind, Location, Result};
use serde::Deserialize;
use serde_json::Value;

/// How a response body holds its records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ResponseFormat {
    /// A JSON document; records are found by `records` (a JSON pointer).
    #[default]
    Json,
    /// One JSON object per line.
    Ndjson,
    /// CSV with a header row.
    Csv,
}

/// The records in `body`, as JSON objects.
pub fn extract_records(
    body: &[u8],
    format: ResponseFormat,
    pointer: &str,
    url: &str,
) -> Result<Vec<Value>> {
    match format {
        ResponseFormat::Json => {
            let doc: Value = parse_json(body, url)?;
            records_at(doc, pointer, url)
        }
        ResponseFormat::Ndjson => {
            let mut out = Vec::new();
            for (i, line) in body.split(|b| *b == b'\n').enumerate() {
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let v: Value = serde_json::from_slice(line).map_err(|e| {
                    Error::new(ErrorKind::Decode, format!("invalid JSON line: {e}"))
                        .with_location(Location::url(url).with_line(i as u64 + 1))
                })?;
                out.push(v);
            }
            Ok(out)
        }
        ResponseFormat::Csv => Err(Error::unsupported(
            "CSV responses are decoded by `decode_csv`",
        )),
    }
}

/// Parse a JSON body, with the line and column of a syntax error and a note for a truncated body.
pub fn parse_json(body: &[u8], url: &str) -> Result<Value> {
    serde_json::from_slice(body).map_err(|e| {
        let what = if e.is_eof() {
            "truncated JSON body"
        } else {
            "invalid JSON body"
        };
        Error::new(ErrorKind::Decode, format!("{what}: {e}"))
            .with_location(Location::url(url).with_line(e.line() as u64))
            .with_context("column", e.column())
            .with_context("body_bytes", body.len())
    })
}

/// The records at `pointer` in `doc`: an array's elements, or one object.
pub fn records_at(mut doc: Value, pointer: &str, url: &str) -> Result<Vec<Value>> {
    let target = if pointer.is_empty() || pointer == "/" {
        Some(doc)
    } else {
        doc.pointer_mut(pointer).map(Value::take)
    };
    match target {
        Some(Value::Array(a)) => Ok(a),
        Some(Value::Null) => Ok(Vec::new()),
        Some(o @ Value::Object(_)) => Ok(vec![o]),
        Some(other) => Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "records at {pointer:?} are a {} (expected an array of objects)",
                json_type(&other)
            ),
        )
        .with_location(Location::url(url))),
        None => Err(Error::new(
            ErrorKind::InvalidInput,
            format!("the response has nothing at records pointer {pointer:?}"),
        )
        .with_location(Location::url(url))),
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Infer a schema from records.
pub fn infer_schema(records: &[Value], url: &str) -> Result<SchemaRef> {
    let schema =
        arrow_json::reader::infer_json_schema_from_iterator(records.iter().map(|v| Ok(v.clone())))
            .map_err(|e| {
                Error::new(
                    ErrorKind::Decode,
                    format!("cannot infer a schema from the records: {e}"),
                )
                .with_location(Location::url(url))
            })?;
    Ok(Arc::new(schema))
}

/// Decode records into one batch of `schema`. Fields not in the schema are ignored.
pub fn to_batch(records: &[Value], schema: &SchemaRef, url: &str) -> Result<RecordBatch> {
    let mut decoder = arrow_json::ReaderBuilder::new(schema.clone())
        .with_batch_size(records.len().max(1))
        .build_decoder()
        .map_err(|e| Error::from(e).with_location(Location::url(url)))?;
    decoder.serialize(records).map_err(|e| {
        Error::new(
            ErrorKind::InvalidInput,
            format!("records do not match the schema: {e}"),
        )
        .with_location(Location::url(url))
    })?;
    Ok(decoder
        .flush()
        .map_err(|e| Error::from(e).with_location(Location::url(url)))?
        .unwrap_or_else(|| RecordBatch::new_empty(schema.clone())))
}

/// Read a field of a record by JSON pointer as a string (for cursors and incremental state).
#[must_use]
pub fn value_as_cursor(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointer_and_nesting() {
        let body = br#"{"data":[{"id":1,"tags":["a"],"author":{"name":"x"}},{"id":2,"tags":[],"author":null}]}"#;
        let recs = extract_records(body, ResponseFormat::Json, "/data", "u").unwrap();
        let schema = infer_schema(&recs, "u").unwrap();
        let b = to_batch(&recs, &schema, "u").unwrap();
        assert_eq!(b.num_rows(), 2);
        assert!(matches!(
            schema.field_with_name("author").unwrap().data_type(),
            arrow::datatypes::DataType::Struct(_)
        ));
        assert!(matches!(
            schema.field_with_name("tags").unwrap().data_type(),
            arrow::datatypes::DataType::List(_)
        ));
    }

    #[test]
    fn truncated_and_missing_pointer() {
        let e = extract_records(
            br#"{"data":[{"id":1"#,
            ResponseFormat::Json,
            "/data",
            "http://x/y",
        )
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Decode);
        assert!(e.to_string().contains("truncated"), "{e}");
        let e = extract_records(
            br#"{"items":[]}"#,
            ResponseFormat::Json,
            "/data",
            "http://x/y",
        )
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        let e = extract_records(b"{\"a\":1}\n{bad\n", ResponseFormat::Ndjson, "", "u").unwrap_err();
        assert_eq!(e.location().unwrap().line, Some(2));
    }
}

/// The records of a CSV body (header row required), typed by arrow-csv inference,
/// as JSON objects so they flow through the same page pipeline as JSON responses.
pub fn csv_records(body: &[u8], url: &str) -> Result<Vec<Value>> {
    let batches = crate::csv_body::decode(body, url)?;
    let mut writer = arrow_json::ArrayWriter::new(Vec::new());
    for b in &batches {
        writer
            .write(b)
            .map_err(|e| Error::from(e).with_location(Location::url(url)))?;
    }
    writer
        .finish()
        .map_err(|e| Error::from(e).with_location(Location::url(url)))?;
    let bytes = writer.into_inner();
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    match serde_json::from_slice(&bytes) {
        Ok(Value::Array(a)) => Ok(a),
        Ok(_) => Ok(Vec::new()),
        Err(e) => Err(
            Error::internal(format!("re-encoding CSV records failed: {e}"))
                .with_location(Location::url(url)),
        ),
    }
}
