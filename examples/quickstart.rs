//! Quickstart: no server needed.
//!
//! ```text
//! cargo run --example quickstart
//! ```
//!
//! 1. Generates 10,000 rows of TPC-H `lineitem` in process (integers, decimals, dates, strings).
//! 2. Writes them in every file format connector-file offers (CSV, JSON, Parquet, Excel, Avro, XML,
//!    SQL INSERT) through one [`FileSink`] over a temporary folder, and reads each file back
//!    through a [`FileSource`] (SQL INSERT is write-only), checking the row counts.
//! 3. Moves the CSV file into Parquet with [`connector_core::transfer`], showing a progress bar.
//! 4. Prints a summary table.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use comfy_table::{Cell, CellAlignment, Table, presets::UTF8_FULL};
use connector_core::{
    ReadRequest, SinkExt, Source, SourceExt, TransferOptions, WriteRequest, transfer,
};
use connector_file::{FileOptions, FileSink, FileSource};
use futures::TryStreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use tpchgen::generators::LineItemGenerator;
use tpchgen_arrow::{LineItemArrow, RecordBatchIterator};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How many `lineitem` rows to generate.
const ROWS: usize = 10_000;

/// Every format connector-file writes: (label, file name, can be read back).
const FORMATS: &[(&str, &str, bool)] = &[
    ("CSV", "lineitem.csv", true),
    ("JSON", "lineitem.json", true),
    ("Parquet", "lineitem.parquet", true),
    ("Excel", "lineitem.xlsx", true),
    ("Avro", "lineitem.avro", true),
    ("XML", "lineitem.xml", true),
    ("SQL INSERT", "lineitem.sql", false),
];

/// One line of the summary.
struct Row {
    format: String,
    rows: String,
    bytes: String,
    write_ms: String,
    read_ms: String,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("quickstart: some formats failed (see the table)");
            std::process::ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("quickstart: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<bool, BoxError> {
    let (schema, batches) = lineitem(ROWS)?;
    println!(
        "Generated {ROWS} rows of TPC-H lineitem ({} columns) in memory.",
        schema.fields().len()
    );

    let dir = tempfile::tempdir()?;
    println!(
        "Writing and reading back every file format under {}",
        dir.path().display()
    );
    // One sink and one source over the same folder; the format follows each file's extension.
    let sink = FileSink::local(dir.path(), FileOptions::default())?;
    let source = Arc::new(FileSource::local(dir.path(), FileOptions::default())?);

    let mut lines = Vec::new();
    let mut all_ok = true;
    for &(label, file, readable) in FORMATS {
        let line = match round_trip(
            &sink,
            source.as_ref(),
            dir.path(),
            file,
            readable,
            &schema,
            &batches,
        )
        .await
        {
            Ok(line) => {
                println!("  {label:<10} {file:<18} ok ({} bytes)", line.bytes);
                line
            }
            Err(e) => {
                println!("  {label:<10} {file:<18} FAILED: {e}");
                all_ok = false;
                Row {
                    format: label.to_owned(),
                    rows: "error".to_owned(),
                    bytes: "-".to_owned(),
                    write_ms: "-".to_owned(),
                    read_ms: truncate(&e.to_string(), 60),
                }
            }
        };
        lines.push(Row {
            format: label.to_owned(),
            ..line
        });
    }

    // A transfer between two formats, through the same streaming path any connector pair uses.
    match csv_to_parquet(Arc::clone(&source), &sink, dir.path()).await {
        Ok(line) => lines.push(line),
        Err(e) => {
            all_ok = false;
            eprintln!("transfer CSV -> Parquet failed: {e}");
        }
    }

    let mut table = Table::new();
    table
        .load_style(UTF8_FULL)
        .set_header(["format", "rows", "bytes", "write ms", "read ms"]);
    for l in lines {
        table.add_row([
            Cell::new(l.format),
            Cell::new(l.rows).set_alignment(CellAlignment::Right),
            Cell::new(l.bytes).set_alignment(CellAlignment::Right),
            Cell::new(l.write_ms).set_alignment(CellAlignment::Right),
            Cell::new(l.read_ms).set_alignment(CellAlignment::Right),
        ]);
    }
    println!("\n{table}");
    Ok(all_ok)
}

/// Write `batches` to `file`, read it back (if the format can be read) and check the row count.
async fn round_trip(
    sink: &FileSink,
    source: &FileSource,
    dir: &Path,
    file: &str,
    readable: bool,
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> Result<Row, BoxError> {
    let t = Instant::now();
    let report = sink
        .write_batches(
            WriteRequest::overwrite(file),
            schema.clone(),
            batches.to_vec(),
        )
        .await?;
    let write = t.elapsed();
    let bytes = std::fs::metadata(dir.join(file))?.len();
    let read_ms = if readable {
        let t = Instant::now();
        let rows = count_rows(source, file).await?;
        let read = t.elapsed();
        if rows != ROWS {
            return Err(format!("{file}: wrote {ROWS} rows, read back {rows}").into());
        }
        ms(read)
    } else {
        "write-only".to_owned()
    };
    Ok(Row {
        format: String::new(),
        rows: report.rows.to_string(),
        bytes: bytes.to_string(),
        write_ms: ms(write),
        read_ms,
    })
}

/// CSV -> Parquet with `connector_core::transfer` and a progress bar.
async fn csv_to_parquet(
    source: Arc<FileSource>,
    sink: &FileSink,
    dir: &Path,
) -> Result<Row, BoxError> {
    let target = "transfer/lineitem.parquet";
    let bar = ProgressBar::new(ROWS as u64).with_style(ProgressStyle::with_template(
        "transfer CSV -> Parquet {bar:40} {pos}/{len} rows {per_sec}",
    )?);
    let progress = bar.clone();
    let options = TransferOptions::default()
        .with_progress(move |p| progress.set_position(p.rows_read))
        .with_progress_interval(Duration::from_millis(20));
    let t = Instant::now();
    let summary = transfer(
        source.clone() as Arc<dyn Source>,
        ReadRequest::dataset("lineitem.csv"),
        sink,
        WriteRequest::overwrite(target),
        options,
    )
    .await?;
    let took = t.elapsed();
    bar.set_position(summary.rows_written);
    bar.finish();
    let t = Instant::now();
    let rows = count_rows(source.as_ref(), target).await?;
    let read = t.elapsed();
    if rows != ROWS || summary.rows_written != ROWS as u64 {
        return Err(format!(
            "transfer moved {} rows, read back {rows}",
            summary.rows_written
        )
        .into());
    }
    Ok(Row {
        format: "CSV -> Parquet (transfer)".to_owned(),
        rows: summary.rows_written.to_string(),
        bytes: std::fs::metadata(dir.join(target))?.len().to_string(),
        write_ms: ms(took),
        read_ms: ms(read),
    })
}

async fn count_rows(source: &FileSource, dataset: &str) -> Result<usize, BoxError> {
    let mut stream = source.read_stream(ReadRequest::dataset(dataset)).await?;
    let mut rows = 0;
    while let Some(b) = stream.try_next().await? {
        rows += b.num_rows();
    }
    Ok(rows)
}

/// `rows` rows of TPC-H `lineitem`, with its `Utf8View` strings as plain `Utf8`.
fn lineitem(rows: usize) -> Result<(SchemaRef, Vec<RecordBatch>), BoxError> {
    // SF 0.01 has about 60k rows; take the first `rows`.
    let generator = LineItemArrow::new(LineItemGenerator::new(0.01, 1, 1)).with_batch_size(2_500);
    let schema: SchemaRef = Arc::new(Schema::new(
        generator
            .schema()
            .fields()
            .iter()
            .map(|f| {
                let t = match f.data_type() {
                    DataType::Utf8View => DataType::Utf8,
                    t => t.clone(),
                };
                Field::new(f.name(), t, f.is_nullable())
            })
            .collect::<Vec<_>>(),
    ));
    let mut out = Vec::new();
    let mut n = 0;
    for b in generator {
        if n >= rows {
            break;
        }
        let b = b.slice(0, b.num_rows().min(rows - n));
        n += b.num_rows();
        let columns = b
            .columns()
            .iter()
            .zip(schema.fields())
            .map(|(c, f)| cast(c, f.data_type()))
            .collect::<Result<Vec<_>, _>>()?;
        out.push(RecordBatch::try_new(schema.clone(), columns)?);
    }
    Ok((schema, out))
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}
