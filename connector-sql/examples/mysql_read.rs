//! Read a MySQL/MariaDB table into Arrow with N partitions read in parallel, and print one JSON
//! line with the row count and the time taken. Used by `benches/mysql_compare.py`.
//!
//! ```text
//! cargo run --release -p connector-sql --features mysql --example mysql_read -- \
//!     --url mysql://root@127.0.0.1:3306/bench --table lineitem --partitions 2 --partition-column l_orderkey
//! ```

use std::time::Instant;

use connector_core::{ReadRequest, Source};
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
    println!(
        "{{\"rows\": {rows}, \"partitions\": {n_parts}, \"seconds\": {secs:.4}, \"arrow_bytes\": {bytes}}}"
    );
    source.close().await;
    Ok(())
}
