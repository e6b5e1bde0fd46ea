//! The Arrow stream type every source returns and every sink consumes.

use std::pin::Pin;
use std::task::{Context, Poll};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};

use crate::error::Result;

/// A stream of record batches that all share [`RecordBatchStream::schema`].
pub trait RecordBatchStream: Stream<Item = Result<RecordBatch>> {
    /// The schema of every batch this stream yields, known before the first batch.
    fn schema(&self) -> SchemaRef;
}

/// A boxed, sendable [`RecordBatchStream`]: what [`crate::Source::read`] returns.
pub type SendableRecordBatchStream = Pin<Box<dyn RecordBatchStream + Send>>;

/// Pairs a schema with any stream of batches.
pub struct RecordBatchStreamAdapter {
    schema: SchemaRef,
    inner: BoxStream<'static, Result<RecordBatch>>,
}

impl RecordBatchStreamAdapter {
    /// Wrap `inner`, whose batches must all have `schema`.
    pub fn new<S>(schema: SchemaRef, inner: S) -> Self
    where
        S: Stream<Item = Result<RecordBatch>> + Send + 'static,
    {
        Self {
            schema,
            inner: inner.boxed(),
        }
    }

    /// Wrap and box in one step.
    pub fn boxed<S>(schema: SchemaRef, inner: S) -> SendableRecordBatchStream
    where
        S: Stream<Item = Result<RecordBatch>> + Send + 'static,
    {
        Box::pin(Self::new(schema, inner))
    }
}

impl std::fmt::Debug for RecordBatchStreamAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordBatchStreamAdapter")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

impl Stream for RecordBatchStreamAdapter {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.poll_next_unpin(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl RecordBatchStream for RecordBatchStreamAdapter {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}

/// A stream over batches already in memory.
#[must_use]
pub fn memory_stream(schema: SchemaRef, batches: Vec<RecordBatch>) -> SendableRecordBatchStream {
    RecordBatchStreamAdapter::boxed(schema, futures::stream::iter(batches.into_iter().map(Ok)))
}

/// An empty stream with `schema`.
#[must_use]
pub fn empty_stream(schema: SchemaRef) -> SendableRecordBatchStream {
    memory_stream(schema, Vec::new())
}
