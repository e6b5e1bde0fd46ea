//! Shared pieces of the benchmarks: TPC-H `lineitem` generation, the input files, and the
//! arrow-rs baseline readers that connector-file is compared with.
//!
//! The input files are written with arrow-rs's own writers (neutral to every reader); the
//! interoperability check writes a second set through connector-file (see `gen_tpch --ours`).

use std::fs::File;
use std::io::{BufReader, BufWriter, Seek};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use tpchgen::generators::LineItemGenerator;
use tpchgen_arrow::{LineItemArrow, RecordBatchIterator};

pub mod ours;

/// Errors of the benchmark helpers.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Result of the benchmark helpers.
pub type Result<T> = std::result::Result<T, BoxError>;

/// Rows per batch for generation and for every reader.
pub const BATCH_ROWS: usize = 8192;

/// `tpchgen-arrow` produces `Utf8View` strings; the files and every reader use plain `Utf8`, the
/// type all of them (arrow-rs, pyarrow, `DuckDB`, our formats) read by default.
fn plain_type(t: &DataType) -> DataType {
    match t {
        DataType::Utf8View => DataType::Utf8,
        other => other.clone(),
    }
}

/// The `lineitem` schema as written to the files.
#[must_use]
pub fn lineitem_schema() -> SchemaRef {
    let generator = LineItemArrow::new(LineItemGenerator::new(0.001, 1, 1));
    plain_schema(generator.schema())
}

fn plain_schema(schema: &Schema) -> SchemaRef {
    Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| Field::new(f.name(), plain_type(f.data_type()), f.is_nullable()))
            .collect::<Vec<_>>(),
    ))
}

/// TPC-H `lineitem` at scale factor `sf` (SF 1 is about 6 million rows), `BATCH_ROWS` rows per batch.
pub fn lineitem(sf: f64) -> impl Iterator<Item = Result<RecordBatch>> {
    let generator =
        LineItemArrow::new(LineItemGenerator::new(sf, 1, 1)).with_batch_size(BATCH_ROWS);
    let schema = plain_schema(generator.schema());
    generator.map(move |b| {
        let columns = b
            .columns()
            .iter()
            .zip(schema.fields())
            .map(|(c, f)| cast(c, f.data_type()))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(RecordBatch::try_new(schema.clone(), columns)?)
    })
}

/// The input files of one scale factor.
#[derive(Debug, Clone)]
pub struct InputFiles {
    /// Rows in each file.
    pub rows: usize,
    /// Snappy-compressed Parquet, written by arrow-rs.
    pub parquet: PathBuf,
    /// CSV with a header row, written by arrow-rs.
    pub csv: PathBuf,
}

/// Write `lineitem` at `sf` as Parquet and CSV into `dir` with arrow-rs's writers, unless a
/// previous call already did (a marker file records the row count).
pub fn ensure_input_files(dir: &Path, sf: f64) -> Result<InputFiles> {
    std::fs::create_dir_all(dir)?;
    let parquet = dir.join("lineitem.parquet");
    let csv = dir.join("lineitem.csv");
    let marker = dir.join("lineitem.rows");
    if let Ok(text) = std::fs::read_to_string(&marker)
        && let Ok(rows) = text.trim().parse()
        && parquet.exists()
        && csv.exists()
    {
        return Ok(InputFiles { rows, parquet, csv });
    }
    let schema = lineitem_schema();
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut pq = ArrowWriter::try_new(
        BufWriter::new(File::create(&parquet)?),
        schema.clone(),
        Some(props),
    )?;
    let mut cw = arrow_csv::WriterBuilder::new()
        .with_header(true)
        .build(BufWriter::new(File::create(&csv)?));
    let mut rows = 0;
    for batch in lineitem(sf) {
        let batch = batch?;
        rows += batch.num_rows();
        pq.write(&batch)?;
        cw.write(&batch)?;
    }
    pq.close()?;
    drop(cw);
    std::fs::write(&marker, rows.to_string())?;
    Ok(InputFiles { rows, parquet, csv })
}

/// Read a Parquet file with arrow-rs's synchronous reader; returns the row count.
pub fn arrow_read_parquet(path: &Path) -> Result<usize> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(path)?)?
        .with_batch_size(BATCH_ROWS)
        .build()?;
    let mut rows = 0;
    for batch in reader {
        rows += batch?.num_rows();
    }
    Ok(rows)
}

/// Read a CSV file (header row, schema inferred from the first 1000 records) with arrow-csv;
/// returns the row count.
pub fn arrow_read_csv(path: &Path) -> Result<usize> {
    let mut file = File::open(path)?;
    let (schema, _) = arrow_csv::reader::Format::default()
        .with_header(true)
        .infer_schema(BufReader::new(&mut file), Some(1000))?;
    file.rewind()?;
    let reader = arrow_csv::ReaderBuilder::new(Arc::new(schema))
        .with_header(true)
        .with_batch_size(BATCH_ROWS)
        .build(BufReader::with_capacity(1 << 20, file))?;
    let mut rows = 0;
    for batch in reader {
        rows += batch?.num_rows();
    }
    Ok(rows)
}
