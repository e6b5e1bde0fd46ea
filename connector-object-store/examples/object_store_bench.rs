//! Benchmark driver for `benches/object_store_compare.py` (build with `--release`).
//!
//! ```text
//! object_store_bench gen <scale-factor> <files>   # TPC-H lineitem as <files> Parquet objects
//! object_store_bench get                          # plain object_store GETs of every object
//! object_store_bench read                         # Parquet read through connector-object-store
//! object_store_bench decode                       # decode-only: objects already in memory → Arrow
//! object_store_bench floor                        # GET + decode floor: full GETs → arrow-rs sync reader
//! object_store_bench transfer <local.parquet>     # S3 → one local Parquet file
//! ```
//!
//! The store comes from `BENCH_S3_ENDPOINT`, `BENCH_S3_ACCESS_KEY_ID`,
//! `BENCH_S3_SECRET_ACCESS_KEY` and `BENCH_S3_URL` (default `s3://bench/tpch`); the dataset is
//! `lineitem` under that URL. Each command prints one JSON line with what it measured.

use std::io::Write as _;
use std::sync::Arc;
use std::time::Instant;

use connector_core::{ReadRequest, Sink, Source, WriteRequest};
use connector_file::FileFormat as _;
use connector_object_store::{ObjectStoreConnector, S3Config};
use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStoreExt;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

fn config() -> S3Config {
    let mut c = S3Config::new(env("BENCH_S3_URL", "s3://bench/tpch"));
    c.endpoint = Some(env("BENCH_S3_ENDPOINT", "http://127.0.0.1:8333"));
    c.access_key_id = Some(env("BENCH_S3_ACCESS_KEY_ID", "connector-test").into());
    c.secret_access_key = Some(env("BENCH_S3_SECRET_ACCESS_KEY", "connector-test-secret").into());
    c.from_env = false;
    c.layout.format = Some("parquet".into());
    c
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let conn = ObjectStoreConnector::s3(&config())?;
    match args.first().map(String::as_str) {
        Some("gen") => {
            let sf: f64 = args.get(1).map_or(Ok(1.0), |s| s.parse())?;
            let files: i32 = args.get(2).map_or(Ok(8), |s| s.parse())?;
            generate(&conn, sf, files).await
        }
        Some("get") => plain_get(&conn).await,
        Some("read") => read(&conn).await,
        Some("decode") => decode_only(&conn).await,
        Some("floor") => floor(&conn).await,
        Some("transfer") => {
            let out = args.get(1).ok_or("transfer needs an output path")?;
            transfer(&conn, out).await
        }
        _ => Err("usage: object_store_bench gen <sf> <files> | get | read | decode | floor | transfer <out>".into()),
    }
}

/// Write lineitem as `files` objects, generating the parts on all cores.
async fn generate(conn: &ObjectStoreConnector, sf: f64, files: i32) -> Result<(), BoxError> {
    let start = Instant::now();
    let sink = Arc::new(conn.sink());
    // Replace what an earlier run left.
    let old: Vec<_> = conn
        .store()
        .list(Some(&object_store::path::Path::from(format!(
            "{}/lineitem",
            conn.url().list_prefix()
        ))))
        .map_ok(|m| m.location)
        .try_collect()
        .await?;
    for p in old {
        conn.store().delete(&p).await?;
    }
    let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
    let results: Vec<Result<u64, BoxError>> = futures::stream::iter(1..=files)
        .map(|part| {
            let sink = sink.clone();
            async move {
                let (tx, rx) = tokio::sync::mpsc::channel(4);
                let generator = tpchgen::generators::LineItemGenerator::new(sf, part, files);
                let mut batches =
                    tpchgen_arrow::LineItemArrow::new(generator).with_batch_size(65_536);
                let first = batches.next().ok_or("no rows")?;
                let schema = first.schema();
                std::thread::spawn(move || {
                    if tx.blocking_send(Ok(first)).is_err() {
                        return;
                    }
                    for b in batches {
                        if tx.blocking_send(Ok(b)).is_err() {
                            return;
                        }
                    }
                });
                let stream =
                    connector_core::RecordBatchStreamAdapter::boxed(schema, tokio_stream_from(rx));
                let r = sink.write(WriteRequest::append("lineitem"), stream).await?;
                Ok(r.rows)
            }
        })
        .buffer_unordered(cores)
        .collect()
        .await;
    let mut rows = 0;
    for r in results {
        rows += r?;
    }
    let bytes = dataset_bytes(conn).await?;
    println!(
        "{{\"cmd\":\"gen\",\"rows\":{rows},\"bytes\":{bytes},\"secs\":{}}}",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<
        connector_core::Result<connector_core::arrow::array::RecordBatch>,
    >,
) -> impl futures::Stream<Item = connector_core::Result<connector_core::arrow::array::RecordBatch>>
{
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

async fn objects(conn: &ObjectStoreConnector) -> Result<Vec<object_store::ObjectMeta>, BoxError> {
    let prefix = object_store::path::Path::from(format!("{}/lineitem", conn.url().list_prefix()));
    let mut v: Vec<_> = conn.store().list(Some(&prefix)).try_collect().await?;
    v.retain(|m| !m.location.as_ref().contains("/_"));
    v.sort_by(|a, b| a.location.cmp(&b.location));
    Ok(v)
}

async fn dataset_bytes(conn: &ObjectStoreConnector) -> Result<u64, BoxError> {
    Ok(objects(conn).await?.iter().map(|m| m.size).sum())
}

/// Every object with one plain GET each, all objects at once.
async fn plain_get(conn: &ObjectStoreConnector) -> Result<(), BoxError> {
    let objs = objects(conn).await?;
    let n = objs.len().max(1);
    let start = Instant::now();
    let store = conn.store();
    let sizes: Vec<Result<u64, BoxError>> = futures::stream::iter(objs)
        .map(|m| {
            let store = store.clone();
            async move {
                let mut s = store.get(&m.location).await?.into_stream();
                let mut n = 0u64;
                while let Some(chunk) = s.next().await {
                    n += chunk?.len() as u64;
                }
                Ok(n)
            }
        })
        .buffer_unordered(n)
        .collect()
        .await;
    let mut bytes = 0;
    for s in sizes {
        bytes += s?;
    }
    println!(
        "{{\"cmd\":\"get\",\"bytes\":{bytes},\"secs\":{}}}",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The whole dataset through the source: one partition per object, all at once.
async fn read(conn: &ObjectStoreConnector) -> Result<(), BoxError> {
    let bytes = dataset_bytes(conn).await?;
    let start = Instant::now();
    let source = Arc::new(conn.source());
    let parts = source.plan(&ReadRequest::dataset("lineitem"), 64).await?;
    let n = parts.len();
    let rows: Vec<Result<u64, BoxError>> = futures::stream::iter(parts)
        .map(|p| {
            let source = source.clone();
            // Decoding is CPU work: give each partition its own task so all cores decode.
            tokio::spawn(async move {
                let mut s = source.read(p).await?;
                let mut rows = 0u64;
                while let Some(b) = s.next().await {
                    rows += b?.num_rows() as u64;
                }
                Ok::<u64, BoxError>(rows)
            })
        })
        .buffer_unordered(n)
        .map(|r| r.map_err(BoxError::from).and_then(|r| r))
        .collect()
        .await;
    let mut total = 0;
    for r in rows {
        total += r?;
    }
    println!(
        "{{\"cmd\":\"read\",\"rows\":{total},\"bytes\":{bytes},\"partitions\":{n},\"secs\":{}}}",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Rows per decoded batch in `decode` and `floor`: the connector's default
/// (`ReadRequest::DEFAULT_BATCH_ROWS`), so the floor decodes the way `read` does.
const FLOOR_BATCH_ROWS: usize = 8192;

/// One whole object fetched with a single GET into memory.
async fn get_all(
    store: Arc<dyn object_store::ObjectStore>,
    location: object_store::path::Path,
) -> Result<bytes::Bytes, BoxError> {
    Ok(store.get(&location).await?.bytes().await?)
}

/// Decodes one in-memory Parquet object with arrow-rs's synchronous reader (no connector code);
/// returns its row count.
fn decode_parquet(data: bytes::Bytes) -> Result<u64, BoxError> {
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(data)?
        .with_batch_size(FLOOR_BATCH_ROWS)
        .build()?;
    let mut rows = 0u64;
    for batch in reader {
        rows += batch?.num_rows() as u64;
    }
    Ok(rows)
}

/// Decodes every object on tokio's blocking pool, all at once (the concurrency of `read`: one
/// unit of work per object), and sums the rows.
async fn decode_all(
    work: impl Iterator<Item = tokio::task::JoinHandle<Result<u64, BoxError>>>,
) -> Result<u64, BoxError> {
    let mut rows = 0;
    for r in futures::future::join_all(work).await {
        rows += r??;
    }
    Ok(rows)
}

/// Decode cost alone: every object is fetched into memory first (not timed), then all are
/// decoded at once with arrow-rs's `ParquetRecordBatchReaderBuilder` over `Bytes`.
async fn decode_only(conn: &ObjectStoreConnector) -> Result<(), BoxError> {
    let objs = objects(conn).await?;
    let store = conn.store();
    let data: Vec<bytes::Bytes> = futures::stream::iter(objs)
        .map(|m| get_all(store.clone(), m.location))
        .buffered(16)
        .try_collect()
        .await?;
    let bytes: u64 = data.iter().map(|d| d.len() as u64).sum();
    let n = data.len();
    let start = Instant::now();
    let rows = decode_all(
        data.into_iter()
            .map(|d| tokio::task::spawn_blocking(move || decode_parquet(d))),
    )
    .await?;
    println!(
        "{{\"cmd\":\"decode\",\"rows\":{rows},\"bytes\":{bytes},\"objects\":{n},\"secs\":{}}}",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The floor for a Parquet read built only from object_store and arrow-rs: every object at once,
/// each one full GET into memory, then decoded on the blocking pool as soon as it arrives. The
/// store handle is the one `get` uses (`ObjectStoreConnector::store`, a plain
/// `Arc<dyn ObjectStore>`); no other connector code is involved.
async fn floor(conn: &ObjectStoreConnector) -> Result<(), BoxError> {
    let objs = objects(conn).await?;
    let bytes: u64 = objs.iter().map(|m| m.size).sum();
    let n = objs.len();
    let store = conn.store();
    let start = Instant::now();
    let rows = decode_all(objs.into_iter().map(|m| {
        let store = store.clone();
        tokio::spawn(async move {
            let data = get_all(store, m.location).await?;
            tokio::task::spawn_blocking(move || decode_parquet(data)).await?
        })
    }))
    .await?;
    println!(
        "{{\"cmd\":\"floor\",\"rows\":{rows},\"bytes\":{bytes},\"objects\":{n},\"secs\":{}}}",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// S3 → one local Parquet file, partitions read one after another (bounded memory).
async fn transfer(conn: &ObjectStoreConnector, out: &str) -> Result<(), BoxError> {
    let start = Instant::now();
    let source = conn.source();
    let parts = source.plan(&ReadRequest::dataset("lineitem"), 64).await?;
    let mut file = std::io::BufWriter::new(std::fs::File::create(out)?);
    let format = connector_file::ParquetFormat::default();
    let mut writer = None;
    let mut rows = 0u64;
    for p in parts {
        let mut s = source.read(p).await?;
        let w = match &mut writer {
            Some(w) => w,
            None => writer.insert(format.writer(s.schema())?),
        };
        while let Some(b) = s.next().await {
            let b = b?;
            rows += b.num_rows() as u64;
            w.write(&b)?;
            file.write_all(&w.take_bytes())?;
        }
    }
    if let Some(w) = writer {
        file.write_all(&w.finish()?)?;
    }
    file.flush()?;
    let bytes = std::fs::metadata(out)?.len();
    println!(
        "{{\"cmd\":\"transfer\",\"rows\":{rows},\"bytes\":{bytes},\"secs\":{}}}",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
