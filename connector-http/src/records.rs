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
    // Values that do not fit the schema fail in `serialize` or in `flush`, depending on the
    // type; both are the same input error.
    let mismatch = |e: arrow::error::ArrowError| {
        Error::new(
            ErrorKind::InvalidInput,
            format!(
                "records do not match the schema (inferred from the first page unless configured): {e}"
            ),
        )
        .with_location(Location::url(url))
    };
    decoder.serialize(records).map_err(mismatch)?;
    Ok(decoder
        .flush()
        .map_err(mismatch)?
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

/// The records of a CSV body (header row required), decoded by connector-file's CSV codec
/// (the same reader, inference and error locations as CSV files), as JSON objects so they flow
/// through the same page pipeline as JSON responses.
pub async fn csv_records(body: &[u8], url: &str) -> Result<Vec<Value>> {
    let batches = crate::csv_body::decode(body, url).await?;
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

/// The order in which record fields appear in a response body.
///
/// `serde_json::Value` objects sort their keys, so a schema inferred from them would list
/// columns alphabetically. The first page's body is read once more into this tree (keys in
/// first-seen order, over every record and, for nested objects, every level) and the inferred
/// schema is reordered to match the server's field order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct KeyOrder {
    keys: Vec<String>,
    children: std::collections::HashMap<String, KeyOrder>,
}

/// A JSON value that keeps object keys in document order (scalars are not kept).
enum Ordered {
    Scalar,
    Array(Vec<Ordered>),
    Object(Vec<(String, Ordered)>),
}

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Ordered;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_bool<E>(self, _: bool) -> std::result::Result<Ordered, E> {
                Ok(Ordered::Scalar)
            }
            fn visit_i64<E>(self, _: i64) -> std::result::Result<Ordered, E> {
                Ok(Ordered::Scalar)
            }
            fn visit_u64<E>(self, _: u64) -> std::result::Result<Ordered, E> {
                Ok(Ordered::Scalar)
            }
            fn visit_f64<E>(self, _: f64) -> std::result::Result<Ordered, E> {
                Ok(Ordered::Scalar)
            }
            fn visit_str<E>(self, _: &str) -> std::result::Result<Ordered, E> {
                Ok(Ordered::Scalar)
            }
            fn visit_unit<E>(self) -> std::result::Result<Ordered, E> {
                Ok(Ordered::Scalar)
            }
            fn visit_none<E>(self) -> std::result::Result<Ordered, E> {
                Ok(Ordered::Scalar)
            }
            fn visit_some<D: serde::Deserializer<'de>>(
                self,
                d: D,
            ) -> std::result::Result<Ordered, D::Error> {
                Ordered::deserialize(d)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<Ordered, A::Error> {
                let mut v = Vec::new();
                while let Some(x) = seq.next_element()? {
                    v.push(x);
                }
                Ok(Ordered::Array(v))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Ordered, A::Error> {
                let mut v = Vec::new();
                while let Some((k, x)) = map.next_entry::<String, Ordered>()? {
                    v.push((k, x));
                }
                Ok(Ordered::Object(v))
            }
        }
        d.deserialize_any(V)
    }
}

impl Ordered {
    fn pointer(&self, pointer: &str) -> Option<&Ordered> {
        if pointer.is_empty() || pointer == "/" {
            return Some(self);
        }
        let mut at = self;
        for token in pointer.strip_prefix('/')?.split('/') {
            let token = token.replace("~1", "/").replace("~0", "~");
            at = match at {
                Ordered::Object(kvs) => &kvs.iter().find(|(k, _)| *k == token)?.1,
                Ordered::Array(items) => items.get(token.parse::<usize>().ok()?)?,
                Ordered::Scalar => return None,
            };
        }
        Some(at)
    }
}

impl KeyOrder {
    fn merge(&mut self, v: &Ordered) {
        match v {
            Ordered::Object(kvs) => {
                for (k, child) in kvs {
                    if !self.keys.contains(k) {
                        self.keys.push(k.clone());
                    }
                    self.children.entry(k.clone()).or_default().merge(child);
                }
            }
            Ordered::Array(items) => items.iter().for_each(|i| self.merge(i)),
            Ordered::Scalar => {}
        }
    }

    /// The field order of the records in `body` (at `pointer` for JSON), or `None` if the body
    /// cannot be read that way (the caller then keeps the inferred order).
    #[must_use]
    pub fn from_body(body: &[u8], format: ResponseFormat, pointer: &str) -> Option<Self> {
        let mut order = Self::default();
        match format {
            ResponseFormat::Json => {
                let doc: Ordered = serde_json::from_slice(body).ok()?;
                order.merge(doc.pointer(pointer)?);
            }
            ResponseFormat::Ndjson => {
                for line in body.split(|b| *b == b'\n') {
                    if line.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    order.merge(&serde_json::from_slice::<Ordered>(line).ok()?);
                }
            }
            ResponseFormat::Csv => {
                let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
                let (schema, _) = arrow::csv::reader::Format::default()
                    .with_header(true)
                    .infer_schema(std::io::Cursor::new(body), Some(1))
                    .ok()?;
                order.keys = schema.fields().iter().map(|f| f.name().clone()).collect();
            }
        }
        Some(order)
    }

    /// The order below `pointer` (e.g. `/node` for Relay edges).
    #[must_use]
    pub fn descend(&self, pointer: &str) -> Option<&Self> {
        let mut at = self;
        for token in pointer.strip_prefix('/')?.split('/') {
            at = at
                .children
                .get(&token.replace("~1", "/").replace("~0", "~"))?;
        }
        Some(at)
    }

    /// `schema` with its fields (and nested struct fields) in this order; fields the order
    /// does not know keep their relative order after the known ones.
    #[must_use]
    pub fn apply(&self, schema: &arrow::datatypes::Schema) -> SchemaRef {
        Arc::new(arrow::datatypes::Schema::new_with_metadata(
            self.fields(schema.fields()),
            schema.metadata().clone(),
        ))
    }

    fn fields(&self, fields: &arrow::datatypes::Fields) -> arrow::datatypes::Fields {
        let mut v: Vec<arrow::datatypes::FieldRef> = fields.iter().cloned().collect();
        v.sort_by_key(|f| {
            self.keys
                .iter()
                .position(|k| k == f.name())
                .unwrap_or(usize::MAX)
        });
        v.into_iter()
            .map(|f| {
                let child = self.children.get(f.name());
                match child {
                    Some(c) => Arc::new(
                        f.as_ref()
                            .clone()
                            .with_data_type(c.data_type(f.data_type())),
                    ),
                    None => f,
                }
            })
            .collect()
    }

    fn data_type(&self, dt: &arrow::datatypes::DataType) -> arrow::datatypes::DataType {
        use arrow::datatypes::DataType as D;
        match dt {
            D::Struct(fs) => D::Struct(self.fields(fs)),
            D::List(f) => D::List(Arc::new(
                f.as_ref()
                    .clone()
                    .with_data_type(self.data_type(f.data_type())),
            )),
            D::LargeList(f) => D::LargeList(Arc::new(
                f.as_ref()
                    .clone()
                    .with_data_type(self.data_type(f.data_type())),
            )),
            other => other.clone(),
        }
    }
}

#[cfg(test)]
mod order_tests {
    use super::*;

    #[test]
    fn inferred_schema_follows_the_body_order() {
        let body = br#"{"data":[{"zeta":1,"alpha":{"y":1,"b":2},"mid":[{"q":1,"a":2}]},{"new":true,"zeta":2}]}"#;
        let recs = extract_records(body, ResponseFormat::Json, "/data", "u").unwrap();
        let schema = infer_schema(&recs, "u").unwrap();
        let ordered = KeyOrder::from_body(body, ResponseFormat::Json, "/data")
            .unwrap()
            .apply(&schema);
        let names: Vec<&str> = ordered.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["zeta", "alpha", "mid", "new"]);
        let arrow::datatypes::DataType::Struct(inner) = ordered.field(1).data_type() else {
            panic!("struct expected");
        };
        assert_eq!(
            inner.iter().map(|f| f.name().as_str()).collect::<Vec<_>>(),
            ["y", "b"]
        );
        let arrow::datatypes::DataType::List(item) = ordered.field(2).data_type() else {
            panic!("list expected");
        };
        let arrow::datatypes::DataType::Struct(inner) = item.data_type() else {
            panic!("list of struct expected");
        };
        assert_eq!(
            inner.iter().map(|f| f.name().as_str()).collect::<Vec<_>>(),
            ["q", "a"]
        );
        // The batch decodes with the reordered schema.
        let b = to_batch(&recs, &ordered, "u").unwrap();
        assert_eq!(b.num_rows(), 2);
    }
}
