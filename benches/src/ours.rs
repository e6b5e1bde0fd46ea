//! Reading and writing through connector-file, the way an application would: a [`FileSource`] /
//! [`FileSink`] over the local file system (`object_store`'s `LocalFileSystem`), the format chosen
//! by the file's extension.

use std::path::Path;

use arrow::array::RecordBatch;
use connector_core::{ReadRequest, SinkExt, SourceExt, WriteRequest};
use connector_file::{FileOptions, FileSink, FileSource};
use futures::TryStreamExt;

use crate::{BATCH_ROWS, Result};

fn split(path: &Path) -> Result<(&Path, String)> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."));
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| format!("{}: not a file name", path.display()))?;
    Ok((dir, name.to_owned()))
}

/// Read `path` through connector-file; returns the row count.
pub async fn read(path: &Path) -> Result<usize> {
    let (dir, name) = split(path)?;
    let source = FileSource::local(dir, FileOptions::default())?;
    let mut stream = source
        .read_stream(ReadRequest::dataset(name).with_batch_rows(BATCH_ROWS))
        .await?;
    let mut rows = 0;
    while let Some(b) = stream.try_next().await? {
        rows += b.num_rows();
    }
    Ok(rows)
}

/// Write `batches` to `path` through connector-file (the format follows the extension);
/// returns the size of the file.
pub async fn write(path: &Path, batches: Vec<RecordBatch>) -> Result<u64> {
    let (dir, name) = split(path)?;
    let schema = batches
        .first()
        .map(RecordBatch::schema)
        .ok_or("nothing to write")?;
    std::fs::create_dir_all(dir)?;
    let sink = FileSink::local(dir, FileOptions::default())?;
    sink.write_batches(WriteRequest::overwrite(name), schema, batches)
        .await?;
    Ok(std::fs::metadata(path)?.len())
}
