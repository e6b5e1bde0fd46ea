//! Stream a PostgreSQL table into a Parquet file with `transfer`, and report the peak memory.
//!
//! ```text
//! cargo run --release -p examples --example pg_to_parquet -- \
//!     --dsn "host=127.0.0.1 user=postgres dbname=test" --table bench_arrow.lineitem --out /tmp/lineitem.parquet
//! ```
//! Needs a running PostgreSQL with the table (`benches/pg_compare.py` loads `bench_arrow.lineitem`).
//! Prints rows, seconds and the process's peak resident set size (`VmHWM` from `/proc/self/status`),
//! which shows that the transfer streams: memory is bounded by the transfer's byte budget, the
//! Parquet writer's row group and the upload buffers, not by the table's size.

use std::sync::Arc;
use std::time::Instant;

use connector_core::{ReadRequest, TransferOptions, WriteRequest, transfer};
use connector_file::{FileOptions, FileSink};
use connector_sql::postgres::{PostgresConfig, PostgresConnector};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let dsn = arg(&args, "--dsn")
        .unwrap_or_else(|| "host=127.0.0.1 port=5432 user=postgres dbname=test".into());
    let table = arg(&args, "--table").unwrap_or_else(|| "bench_arrow.lineitem".into());
    let out = arg(&args, "--out").unwrap_or_else(|| "/tmp/pg_to_parquet/lineitem.parquet".into());
    let partitions: usize = arg(&args, "--partitions").map_or(Ok(2), |p| p.parse())?;
    let out = std::path::PathBuf::from(out);
    let dir = out.parent().ok_or("--out needs a directory")?;
    std::fs::create_dir_all(dir)?;
    let file = out
        .file_name()
        .ok_or("--out needs a file name")?
        .to_string_lossy()
        .into_owned();

    let source = Arc::new(PostgresConnector::new(PostgresConfig::from_dsn(&dsn)?)?);
    let sink = FileSink::local(dir, FileOptions::default())?;
    let started = Instant::now();
    let summary = transfer(
        source,
        ReadRequest::dataset(table),
        &sink,
        WriteRequest::overwrite(file),
        TransferOptions::default()
            .with_max_partitions(partitions)
            .with_concurrency(partitions)
            .with_memory_budget_bytes(64 << 20),
    )
    .await?;
    println!(
        "{{\"rows\": {}, \"seconds\": {:.3}, \"peak_rss_mib\": {:.1}, \"partitions\": {}}}",
        summary.rows_written,
        started.elapsed().as_secs_f64(),
        peak_rss_mib().unwrap_or(f64::NAN),
        summary.partitions
    );
    Ok(())
}
