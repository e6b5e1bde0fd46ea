//! The two implementer traits: [`Source`] and [`Sink`].
//!
//! They hold only what a backend must write. Conveniences live in [`crate::SourceExt`] and
//! [`crate::SinkExt`]; wrappers live in [`crate::layers`].

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;

use crate::capability::{SinkCapabilities, SourceCapabilities};
use crate::error::Result;
use crate::request::{DatasetInfo, Partition, ReadRequest, WriteReport, WriteRequest};
use crate::stream::SendableRecordBatchStream;

/// Something Arrow record batches can be read from.
///
/// # Contract
/// - [`Source::check`] proves the peer is reachable and the credentials work, and does nothing else.
/// - [`Source::plan`] returns between 1 and `max_partitions` partitions (never 0, even for an empty
///   dataset). Reading every partition returns every row of the request exactly once. A source
///   without [`SourceCapabilities::partitioned_reads`] returns exactly one.
/// - The stream [`Source::read`] returns honours the partition's request: only the projected
///   columns, in the projection's order; only rows matching the filter; at most `limit` rows.
///   What the backend cannot push down it applies with [`crate::residual::apply`]. Over several
///   partitions, the total limit is enforced by the caller ([`crate::SourceExt::read_all`],
///   [`crate::transfer()`]).
/// - The stream's [`crate::RecordBatchStream::schema`] equals the schema of every batch it yields,
///   and is known before the first batch.
/// - Dropping the stream cancels the read and releases its resources (connections go back to the pool).
/// - Errors carry the connector name and the operation (`"check"`, `"discover"`, `"plan"`, `"read"`).
#[async_trait]
pub trait Source: Send + Sync + Debug {
    /// The connector kind, e.g. `"postgres"` or `"parquet"`.
    fn name(&self) -> &str;

    /// What this source pushes down and supports.
    fn capabilities(&self) -> SourceCapabilities;

    /// Test the connection and the credentials.
    async fn check(&self) -> Result<()>;

    /// List the datasets this source offers, with their schemas.
    async fn discover(&self) -> Result<Vec<DatasetInfo>>;

    /// Split `request` into at most `max_partitions` independently readable partitions.
    async fn plan(&self, request: &ReadRequest, max_partitions: usize) -> Result<Vec<Partition>>;

    /// Read one partition.
    async fn read(&self, partition: Partition) -> Result<SendableRecordBatchStream>;
}

/// Something Arrow record batches can be written to.
///
/// # Contract
/// - [`Sink::write`] consumes the whole stream, or fails. A sink whose
///   [`SinkCapabilities::atomic`] is true leaves the target unchanged when it fails; each backend
///   documents what a failure leaves behind otherwise.
/// - A mode the sink does not support returns [`crate::ErrorKind::Unsupported`] before any data is
///   consumed.
/// - Schema differences follow [`crate::WriteRequest::schema_drift`].
/// - The report counts every row received, never silently dropping any.
#[async_trait]
pub trait Sink: Send + Sync + Debug {
    /// The connector kind, e.g. `"postgres"` or `"csv"`.
    fn name(&self) -> &str;

    /// What this sink supports.
    fn capabilities(&self) -> SinkCapabilities;

    /// Test the connection and the credentials.
    async fn check(&self) -> Result<()>;

    /// Write `data` to `request.target`.
    async fn write(
        &self,
        request: WriteRequest,
        data: SendableRecordBatchStream,
    ) -> Result<WriteReport>;
}

#[async_trait]
impl<T: Source + ?Sized> Source for Arc<T> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn capabilities(&self) -> SourceCapabilities {
        (**self).capabilities()
    }
    async fn check(&self) -> Result<()> {
        (**self).check().await
    }
    async fn discover(&self) -> Result<Vec<DatasetInfo>> {
        (**self).discover().await
    }
    async fn plan(&self, request: &ReadRequest, max_partitions: usize) -> Result<Vec<Partition>> {
        (**self).plan(request, max_partitions).await
    }
    async fn read(&self, partition: Partition) -> Result<SendableRecordBatchStream> {
        (**self).read(partition).await
    }
}

#[async_trait]
impl<T: Sink + ?Sized> Sink for Arc<T> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn capabilities(&self) -> SinkCapabilities {
        (**self).capabilities()
    }
    async fn check(&self) -> Result<()> {
        (**self).check().await
    }
    async fn write(
        &self,
        request: WriteRequest,
        data: SendableRecordBatchStream,
    ) -> Result<WriteReport> {
        (**self).write(request, data).await
    }
}
