//! Read a MySQL/MariaDB table into Arrow with N partitions read in parallel, and print one JSON
//! line with the row count and the time taken. Used by `benches/mysql_compare.py`.
//! With `--write-to <table>` it then writes the batches into that table (overwrite, one
//! transaction of multi-row INSERTs) and reports the write time too.
//!
//! ```text
//! cargo run --release -p connector-sql --features mysql --example mysql_read -- \
//!     --url mysql://root@127.0.0.1:3306/bench --table lineitem --partitions 2 --partition-column l_orderkey
//! ```

use std::time::Instant;

use connector_core::{ReadRequest, SinkExt, Source, WriteRequest};
use connector_sql::mysql::{MySqlConfig, MySqlConnector};
use futures::TryStreamExt;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let url = arg(&args, "--url").unwrap_or_else(|| "mysql://root@127.0.0.1:3306/bench".into());
    let table = arg(&args, "--table").unwrap_or_else(|| "lineitem".into());
    let partitions: usize = arg(&args, "--partitions").map_or(Ok(1), |p| p.parse())?;
    let batch_rows: usize = arg(&args, "--batch-rows").map_or(Ok(8192), |p| p.parse())?;
    let mut config = MySqlConfig::from_url(url);
    config.partition_column = arg(&args, "--partition-column");
    let source = MySqlConnector::new(config)?;

    let started = Instant::now();
    let request = ReadRequest::dataset(table).with_batch_rows(batch_rows);
    let parts = source.plan(&request, partitions).await?;
    let n_parts = parts.len();
    let mut tasks = Vec::with_capacity(n_parts);
    for p in parts {
        let s = source.clone();
        tasks.push(tokio::spawn(async move {
            let stream = s.read(p).await?;
            stream.try_collect::<Vec<_>>().await
        }));
    }
    let mut rows = 0usize;
    let mut bytes = 0usize;
    let mut batches = Vec::new();
    for t in tasks {
        for b in t.await?? {
            rows += b.num_rows();
            bytes += b.get_array_memory_size();
            batches.push(b);
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let mut write = String::new();
    if let Some(target) = arg(&args, "--write-to") {
        // Write what was read into `target` (overwrite, one transaction) and time it.
        let schema = batches
            .first()
            .map(arrow::array::RecordBatch::schema)
            .ok_or("nothing was read")?;
        let t = Instant::now();
        let report = source
            .write_batches(WriteRequest::overwrite(target), schema, batches)
            .await?;
        write = format!(
            ", \"write_rows\": {}, \"write_seconds\": {:.4}",
            report.rows,
            t.elapsed().as_secs_f64()
        );
    }
    println!(
        "{{\"rows\": {rows}, \"partitions\": {n_parts}, \"seconds\": {secs:.4}, \"arrow_bytes\": {bytes}{write}}}"
    );
    source.close().await;
    Ok(())
}
