//! Build connectors from configuration, wrap them in resilience layers, and transfer between
//! them. No server needed: a CSV directory and an SQLite file.
//!
//! ```text
//! cargo run --example registry
//! ```

use std::sync::Arc;
use std::time::Duration;

use connector_core::registry::Registry;
use connector_core::{
    CircuitBreakerLayer, LayerExt, ReadRequest, RetryLayer, SinkExt, SourceExt, TimeoutLayer,
    TransferOptions, WriteRequest, transfer,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let data_dir = dir.path().to_string_lossy().into_owned();

    // 1. A registry with every kind these crates were built with.
    let mut registry = Registry::with_core();
    connector_file::register_all(&mut registry);
    connector_sql::register(&mut registry);
    let kinds: Vec<&str> = registry.kinds().iter().map(|k| k.kind).collect();
    println!("registered kinds: {}", kinds.join(", "));

    // 2. Connectors from YAML; `${NAME}` comes from the environment (here: a custom lookup).
    let lookup = |name: &str| (name == "DATA_DIR").then(|| data_dir.clone());
    let csv_cfg = "type: csv\npath: ${DATA_DIR}/csv\ncreate: true\n";
    let db_cfg = "type: sqlite\npath: ${DATA_DIR}/demo.db\ncreate: true\n";
    let parse = |text: &str| {
        connector_core::registry::parse_config(text, connector_core::registry::ConfigFormat::Yaml)
    };
    let csv = registry.build_value_with(parse(csv_cfg)?, &lookup).await?;
    let db = registry.build_value_with(parse(db_cfg)?, &lookup).await?;
    csv.check().await?;
    db.check().await?;

    // 3. Some data into the CSV directory.
    let batch = connector_core::arrow::array::RecordBatch::try_from_iter([
        (
            "id",
            Arc::new(connector_core::arrow::array::Int64Array::from_iter_values(
                0..1000,
            )) as _,
        ),
        (
            "name",
            Arc::new(connector_core::arrow::array::StringArray::from_iter_values(
                (0..1000).map(|i| format!("row {i}")),
            )) as _,
        ),
    ])?;
    csv.as_sink()?
        .write_batch(WriteRequest::overwrite("people.csv"), batch)
        .await?;

    // 4. Resilience layers, in a visible order: timeout innermost, then retry, then the breaker.
    let source = csv
        .as_source()?
        .layer(TimeoutLayer::new(Duration::from_secs(30)))
        .layer(RetryLayer::new().with_max_attempts(3))
        .layer(CircuitBreakerLayer::new(5, Duration::from_secs(10)));

    // 5. Transfer CSV → SQLite.
    let summary = transfer(
        Arc::new(source),
        ReadRequest::dataset("people.csv"),
        db.as_sink()?.as_ref(),
        WriteRequest::overwrite("people"),
        TransferOptions::default(),
    )
    .await?;
    println!(
        "transferred {} rows in {:?}",
        summary.rows_written, summary.elapsed
    );

    let back = db
        .as_source()?
        .read_batch(ReadRequest::dataset("people").with_limit(3))
        .await?;
    println!(
        "{}",
        connector_core::arrow::util::pretty::pretty_format_batches(&[back])?
    );
    Ok(())
}
