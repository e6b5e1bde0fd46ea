//! The REST sink: records in batches as JSON arrays, NDJSON or one object per request.
//!
//! Each request's outcome is tracked by the row range it carried. A failed request never
//! disappears: with `on_error = fail` the write stops at the first failure; with `continue` every
//! batch is sent and the error lists every failed row range. Either way the error says how many
//! rows were accepted before it, so nothing is dropped silently. HTTP has no transactions: rows
//! accepted before a failure stay written.

use std::time::Instant;

use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use connector_core::{Error, Location, Result, SendableRecordBatchStream, WriteReport};
use futures::{StreamExt, TryStreamExt};

use crate::client::{Body, HttpClient, RequestSpec};
use crate::rest::{OnBatchError, SinkConfig, SinkFormat, WriteMethod};

const NAME: &str = "rest";

/// One request's worth of rows.
struct Chunk {
    first_row: u64,
    rows: u64,
    body: Body,
}

fn encode(batch: &RecordBatch, format: SinkFormat) -> Result<Vec<Bytes>> {
    let mut out = Vec::new();
    match format {
        SinkFormat::JsonArray => {
            let mut w = arrow_json::ArrayWriter::new(Vec::new());
            w.write(batch)?;
            w.finish()?;
            out.push(Bytes::from(w.into_inner()));
        }
        SinkFormat::Ndjson => {
            let mut w = arrow_json::LineDelimitedWriter::new(Vec::new());
            w.write(batch)?;
            w.finish()?;
            out.push(Bytes::from(w.into_inner()));
        }
        SinkFormat::Object => {
            for i in 0..batch.num_rows() {
                let mut w = arrow_json::LineDelimitedWriter::new(Vec::new());
                w.write(&batch.slice(i, 1))?;
                w.finish()?;
                let mut v = w.into_inner();
                while v.last() == Some(&b'\n') {
                    v.pop();
                }
                out.push(Bytes::from(v));
            }
        }
    }
    Ok(out)
}

/// Send every row of `data` to `url`.
pub async fn write(
    client: HttpClient,
    url: url::Url,
    config: &SinkConfig,
    data: SendableRecordBatchStream,
) -> Result<WriteReport> {
    let started = Instant::now();
    let display = url.to_string();
    let size = config.batch_size.max(1) as usize;
    let format = config.format;
    let mut next_row = 0u64;
    let counters = connector_core::ext::StreamCounters::default();
    let data = counters.wrap(data);
    // Split incoming batches into request-sized chunks, lazily, so memory holds `concurrency` chunks.
    let chunks = data
        .map_err(|e| e.with_connector(NAME).with_operation("write"))
        .map_ok(move |b| {
            let mut v = Vec::new();
            let mut at = 0;
            while at < b.num_rows() {
                let len = (b.num_rows() - at).min(if format == SinkFormat::Object {
                    1
                } else {
                    size
                });
                v.push(b.slice(at, len));
                at += len;
            }
            futures::stream::iter(v.into_iter().map(Ok::<_, Error>))
        })
        .try_flatten()
        .map(move |b: Result<RecordBatch>| {
            let b = b?;
            let first_row = next_row;
            next_row += b.num_rows() as u64;
            let bytes = encode(&b, format)
                .map_err(|e| e.with_connector(NAME).with_operation("write"))?
                .into_iter()
                .next()
                .ok_or_else(|| {
                    Error::internal("a non-empty chunk encoded to no request body")
                        .with_connector(NAME)
                        .with_operation("write")
                })?;
            let body = match format {
                SinkFormat::JsonArray | SinkFormat::Object => {
                    Body::Bytes(bytes, "application/json")
                }
                SinkFormat::Ndjson => Body::Bytes(bytes, "application/x-ndjson"),
            };
            Ok(Chunk {
                first_row,
                rows: b.num_rows() as u64,
                body,
            })
        });
    let method = match config.method {
        WriteMethod::Post => reqwest::Method::POST,
        WriteMethod::Put => reqwest::Method::PUT,
    };
    let idempotent = config.idempotent;
    // After a failure with `on_error = fail`, no new request starts, but the requests already
    // in flight finish and are counted: the report must say exactly which rows were accepted.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop_reader = stop.clone();
    let sent = chunks
        .take_while(move |_| {
            futures::future::ready(!stop_reader.load(std::sync::atomic::Ordering::SeqCst))
        })
        .map(|chunk: Result<Chunk>| {
            let client = client.clone();
            let url = url.clone();
            let method = method.clone();
            async move {
                let chunk = chunk?;
                let spec = RequestSpec {
                    method,
                    url,
                    query: Vec::new(),
                    body: Some(chunk.body),
                    idempotent,
                };
                let outcome = client.send(&spec, "write").await.map(|_| ());
                Ok::<_, Error>((chunk.first_row, chunk.rows, outcome))
            }
        })
        .buffered(config.concurrency.max(1));
    futures::pin_mut!(sent);
    let mut accepted = 0u64;
    let mut failures: Vec<(u64, u64, Error)> = Vec::new();
    while let Some(item) = sent.next().await {
        let (first, rows, outcome) = item?;
        match outcome {
            Ok(()) => accepted += rows,
            Err(e) => {
                failures.push((first, rows, e));
                if config.on_error == OnBatchError::Fail {
                    stop.store(true, std::sync::atomic::Ordering::SeqCst);
                }
            }
        }
    }
    if let Some((first, rows, err)) = failures.first() {
        let ranges: Vec<String> = failures
            .iter()
            .map(|(f, n, _)| format!("{f}..{}", f + n))
            .collect();
        let total_failed: u64 = failures.iter().map(|(_, n, _)| n).sum();
        let mut e = Error::new(
            err.kind(),
            format!(
                "{} request(s) failed; rows {} were not accepted ({total_failed} rows); {accepted} rows were accepted and stay written; first failure (rows {first}..{}): {}",
                failures.len(),
                ranges.join(", "),
                first + rows,
                err.message()
            ),
        )
        .with_connector(NAME)
        .with_operation("write")
        .with_location(Location::url(&display))
        .with_context("rows_accepted", accepted)
        .with_context("failed_rows", ranges.join(","))
        .with_status(err.status());
        if let Some(code) = err.vendor_code() {
            e = e.with_vendor_code(code);
        }
        return Err(e);
    }
    let mut report = WriteReport::new(accepted, counters.bytes(), started.elapsed());
    report.outputs.push(display);
    Ok(report)
}
