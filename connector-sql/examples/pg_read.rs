//! Read a PostgreSQL table into Arrow with N partitions in parallel (or write it back), and print
//! one JSON line with the row count and the time taken. Used by `benches/pg_compare.py`.
//!
//! ```text
//! cargo run --release -p connector-sql --features postgres --example pg_read -- \
//!     read --dsn "host=127.0.0.1 user=postgres dbname=test" --table bench_arrow.lineitem --partitions 2
//! cargo run --release -p connector-sql --features postgres --example pg_read -- \
//!     write --table bench_arrow.lineitem --target bench_arrow.lineitem_ours
//! ```
//! `read --stream` drops every batch as soon as it arrives (to measure peak memory of a streaming
//! transfer); without it all batches are kept in memory, like ConnectorX and ADBC do.

use std::time::Instant;

use connector_core::{ReadRequest, SinkExt, Source, WriteRequest};
use connector_sql::postgres::{PartitionStrategy, PostgresConfig, PostgresConnector};
use futures::TryStreamExt;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).cloned().unwrap_or_else(|| "read".into());
    let dsn = arg(&args, "--dsn")
        .unwrap_or_else(|| "host=127.0.0.1 port=5432 user=postgres dbname=test".into());
    let table = arg(&args, "--table").unwrap_or_else(|| "bench_arrow.lineitem".into());
    let partitions: usize = arg(&args, "--partitions").map_or(Ok(1), |p| p.parse())?;
    let batch_rows: usize = arg(&args, "--batch-rows").map_or(Ok(8192), |p| p.parse())?;
    let stream_only = args.iter().any(|a| a == "--stream");
    let mut config = PostgresConfig::from_dsn(&dsn)?;
    config.partitioning = match arg(&args, "--strategy").as_deref() {
        None | Some("ctid") => PartitionStrategy::Ctid,
        Some("auto") => PartitionStrategy::Auto,
        Some(col) => PartitionStrategy::Range {
            column: col.to_owned(),
        },
    };
    let source = PostgresConnector::new(config)?;
    let request = ReadRequest::dataset(table).with_batch_rows(batch_rows);

    let started = Instant::now();
    let parts = source.plan(&request, partitions).await?;
    let n_parts = parts.len();
    let mut tasks = Vec::with_capacity(n_parts);
    for p in parts {
        let s = source.clone();
        tasks.push(tokio::spawn(async move {
            let mut stream = s.read(p).await?;
            let mut kept = Vec::new();
            let mut rows = 0usize;
            while let Some(b) = stream.try_next().await? {
                rows += b.num_rows();
                if !stream_only {
                    kept.push(b);
                }
            }
            Ok::<_, connector_core::Error>((rows, kept))
        }));
    }
    let mut rows = 0usize;
    let mut bytes = 0usize;
    let mut batches = Vec::new();
    for t in tasks {
        let (n, kept) = t.await??;
        rows += n;
        for b in kept {
            bytes += b.get_array_memory_size();
            batches.push(b);
        }
    }
    let read_secs = started.elapsed().as_secs_f64();
    if mode == "write" {
        let target = arg(&args, "--target").unwrap_or_else(|| "bench_arrow.lineitem_ours".into());
        let schema = batches
            .first()
            .map(arrow::record_batch::RecordBatch::schema)
            .ok_or("nothing read")?;
        let started = Instant::now();
        let report = source
            .write_batches(WriteRequest::append(target), schema, batches)
            .await?;
        let secs = started.elapsed().as_secs_f64();
        println!(
            "{{\"rows\": {}, \"seconds\": {secs:.4}, \"read_seconds\": {read_secs:.4}}}",
            report.rows
        );
    } else {
        println!(
            "{{\"rows\": {rows}, \"partitions\": {n_parts}, \"seconds\": {read_secs:.4}, \"arrow_bytes\": {bytes}}}"
        );
    }
    Ok(())
}
