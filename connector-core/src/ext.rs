//! Conveniences over [`Source`] and [`Sink`], for every implementation.

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use futures::TryStreamExt;

use crate::connector::{Sink, Source};
use crate::error::{Error, ErrorKind, Result};
use crate::request::{ReadRequest, WriteReport, WriteRequest};
use crate::stream::{RecordBatchStreamAdapter, SendableRecordBatchStream, memory_stream};

/// Conveniences for every [`Source`].
#[async_trait]
pub trait SourceExt: Source {
    /// Plan `request` as one partition and read it as a stream.
    async fn read_stream(&self, request: ReadRequest) -> Result<SendableRecordBatchStream> {
        let mut parts = self.plan(&request, 1).await?;
        if parts.len() != 1 {
            return Err(Error::internal(format!(
                "plan with max_partitions=1 returned {} partitions",
                parts.len()
            ))
            .with_connector(self.name().to_owned())
            .with_operation("plan"));
        }
        self.read(parts.remove(0)).await
    }

    /// Plan `request` into up to `max_partitions` partitions, read them one after another and
    /// collect every batch, enforcing the request's total limit across partitions.
    async fn read_all_partitioned(
        &self,
        request: ReadRequest,
        max_partitions: usize,
    ) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        let parts = self.plan(&request, max_partitions.max(1)).await?;
        let mut schema = None;
        let mut out = Vec::new();
        let mut left = request.limit;
        for p in parts {
            if left == Some(0) {
                break;
            }
            let mut s = self.read(p).await?;
            schema.get_or_insert_with(|| s.schema());
            while let Some(b) = s.try_next().await? {
                let b = match left.as_mut() {
                    Some(n) => {
                        let take = b.num_rows().min(*n);
                        *n -= take;
                        b.slice(0, take)
                    }
                    None => b,
                };
                out.push(b);
                if left == Some(0) {
                    break;
                }
            }
        }
        let schema = schema.ok_or_else(|| {
            Error::internal("plan returned no partitions")
                .with_connector(self.name().to_owned())
                .with_operation("plan")
        })?;
        Ok((schema, out))
    }

    /// Read the whole request (one partition) into memory.
    async fn read_all(&self, request: ReadRequest) -> Result<Vec<RecordBatch>> {
        let s = self.read_stream(request).await?;
        s.try_collect().await
    }

    /// Read the whole request into one batch.
    async fn read_batch(&self, request: ReadRequest) -> Result<RecordBatch> {
        let s = self.read_stream(request).await?;
        collect(s).await
    }

    /// The schema of a dataset, as [`Source::discover`] reports it.
    async fn dataset_schema(&self, name: &str) -> Result<SchemaRef> {
        self.discover()
            .await?
            .into_iter()
            .find(|d| d.name == name)
            .map(|d| d.schema)
            .ok_or_else(|| {
                Error::new(ErrorKind::NotFound, format!("dataset {name:?} not found"))
                    .with_connector(self.name().to_owned())
                    .with_operation("discover")
            })
    }
}

impl<T: Source + ?Sized> SourceExt for T {}

/// Conveniences for every [`Sink`].
#[async_trait]
pub trait SinkExt: Sink {
    /// Write batches already in memory.
    async fn write_batches(
        &self,
        request: WriteRequest,
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
    ) -> Result<WriteReport> {
        self.write(request, memory_stream(schema, batches)).await
    }

    /// Write one batch.
    async fn write_batch(&self, request: WriteRequest, batch: RecordBatch) -> Result<WriteReport> {
        self.write(request, memory_stream(batch.schema(), vec![batch]))
            .await
    }
}

impl<T: Sink + ?Sized> SinkExt for T {}

/// Collect a stream into one batch (with the stream's schema, even when empty).
pub async fn collect(stream: SendableRecordBatchStream) -> Result<RecordBatch> {
    let schema = stream.schema();
    let batches: Vec<RecordBatch> = stream.try_collect().await?;
    Ok(arrow::compute::concat_batches(&schema, &batches)?)
}

/// Count rows and bytes as a stream passes by; the counters are readable while it runs.
#[derive(Debug, Clone, Default)]
pub struct StreamCounters {
    rows: std::sync::Arc<std::sync::atomic::AtomicU64>,
    bytes: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl StreamCounters {
    /// Rows seen so far.
    #[must_use]
    pub fn rows(&self) -> u64 {
        self.rows.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Arrow bytes seen so far.
    #[must_use]
    pub fn bytes(&self) -> u64 {
        self.bytes.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Wrap `stream`, counting every batch it yields.
    #[must_use]
    pub fn wrap(&self, stream: SendableRecordBatchStream) -> SendableRecordBatchStream {
        let schema = stream.schema();
        let c = self.clone();
        RecordBatchStreamAdapter::boxed(
            schema,
            stream.inspect_ok(move |b| {
                c.rows
                    .fetch_add(b.num_rows() as u64, std::sync::atomic::Ordering::Relaxed);
                c.bytes.fetch_add(
                    b.get_array_memory_size() as u64,
                    std::sync::atomic::Ordering::Relaxed,
                );
            }),
        )
    }
}

/// Box any `Stream` of batches with a schema, mapping its errors into ours.
pub fn boxed_stream<S, E>(schema: SchemaRef, stream: S) -> SendableRecordBatchStream
where
    S: futures::Stream<Item = std::result::Result<RecordBatch, E>> + Send + 'static,
    E: Into<Error> + 'static,
{
    RecordBatchStreamAdapter::boxed(schema, stream.map_err(Into::into))
}
