//! Per-operation deadlines.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use futures::Stream;
use tokio::time::Sleep;

use super::Layer;
use crate::capability::{SinkCapabilities, SourceCapabilities};
use crate::connector::{Sink, Source};
use crate::error::{Error, ErrorKind, Result};
use crate::request::{DatasetInfo, Partition, ReadRequest, WriteReport, WriteRequest};
use crate::stream::{RecordBatchStream, SendableRecordBatchStream};

/// Puts a deadline on each operation of a [`Source`] or [`Sink`].
///
/// | operation | what the deadline covers |
/// |---|---|
/// | `check`, `discover`, `plan` | the whole call |
/// | `open` | [`Source::read`] until it returns the stream |
/// | `idle` | each wait of a read stream's consumer for the next batch (or the end); time the consumer spends between polls does not count |
/// | `write` | the whole [`Sink::write`], including consuming the input stream |
///
/// A missed deadline returns [`ErrorKind::Timeout`], which is temporary, naming the operation
/// (`open` and `idle` are part of `"read"`), what it waited for and the duration; the late call (or stream) is dropped, which cancels it. After an idle timeout the
/// stream ends. A deadline of `None` means no deadline for that operation.
///
/// Put this layer innermost, below [`super::RetryLayer`] (see the [module docs](super)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeoutLayer {
    check: Option<Duration>,
    discover: Option<Duration>,
    plan: Option<Duration>,
    open: Option<Duration>,
    idle: Option<Duration>,
    write: Option<Duration>,
}

impl TimeoutLayer {
    /// The same deadline for every operation.
    #[must_use]
    pub const fn new(timeout: Duration) -> Self {
        Self {
            check: Some(timeout),
            discover: Some(timeout),
            plan: Some(timeout),
            open: Some(timeout),
            idle: Some(timeout),
            write: Some(timeout),
        }
    }

    /// No deadline for any operation; set some with the `with_*` methods.
    #[must_use]
    pub const fn none() -> Self {
        Self {
            check: None,
            discover: None,
            plan: None,
            open: None,
            idle: None,
            write: None,
        }
    }

    /// Deadline for `check` (`None`: none).
    #[must_use]
    pub fn with_check_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.check = timeout.into();
        self
    }

    /// Deadline for `discover` (`None`: none).
    #[must_use]
    pub fn with_discover_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.discover = timeout.into();
        self
    }

    /// Deadline for `plan` (`None`: none).
    #[must_use]
    pub fn with_plan_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.plan = timeout.into();
        self
    }

    /// Deadline for opening a read: [`Source::read`] until it returns the stream (`None`: none).
    #[must_use]
    pub fn with_open_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.open = timeout.into();
        self
    }

    /// Longest wait for each next batch of a read stream (`None`: none).
    #[must_use]
    pub fn with_idle_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.idle = timeout.into();
        self
    }

    /// Deadline for a whole [`Sink::write`] (`None`: none). Large writes may need a long one.
    #[must_use]
    pub fn with_write_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.write = timeout.into();
        self
    }
}

impl<S> Layer<S> for TimeoutLayer {
    type Output = Timeout<S>;

    fn apply(&self, inner: S) -> Timeout<S> {
        Timeout {
            inner,
            config: *self,
        }
    }
}

/// A [`Source`] or [`Sink`] with deadlines; made by [`TimeoutLayer`].
#[derive(Debug, Clone)]
pub struct Timeout<S> {
    inner: S,
    config: TimeoutLayer,
}

impl<S> Timeout<S> {
    /// The wrapped connector.
    #[must_use]
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

/// What a deadline was set on: the operation named in the error, and what it waited for.
#[derive(Clone, Copy)]
struct Deadline {
    operation: &'static str,
    waiting_for: &'static str,
}

const CHECK: Deadline = Deadline {
    operation: "check",
    waiting_for: "check",
};
const DISCOVER: Deadline = Deadline {
    operation: "discover",
    waiting_for: "discover",
};
const PLAN: Deadline = Deadline {
    operation: "plan",
    waiting_for: "plan",
};
const OPEN: Deadline = Deadline {
    operation: "read",
    waiting_for: "the read stream to open",
};
const IDLE: Deadline = Deadline {
    operation: "read",
    waiting_for: "the next batch",
};
const WRITE: Deadline = Deadline {
    operation: "write",
    waiting_for: "write",
};

fn timeout_error(connector: &str, deadline: Deadline, after: Duration) -> Error {
    Error::new(
        ErrorKind::Timeout,
        format!("waited longer than {after:?} for {}", deadline.waiting_for),
    )
    .with_connector(connector.to_owned())
    .with_operation(deadline.operation)
    .with_context("timeout", format_args!("{after:?}"))
}

/// Run `fut` under an optional deadline.
async fn within<T>(
    connector: &str,
    deadline: Deadline,
    limit: Option<Duration>,
    fut: impl Future<Output = Result<T>>,
) -> Result<T> {
    match limit {
        None => fut.await,
        Some(after) => match tokio::time::timeout(after, fut).await {
            Ok(result) => result,
            Err(_elapsed) => Err(timeout_error(connector, deadline, after)),
        },
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl<S: Source> Source for Timeout<S> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn capabilities(&self) -> SourceCapabilities {
        self.inner.capabilities()
    }

    async fn check(&self) -> Result<()> {
        within(
            self.inner.name(),
            CHECK,
            self.config.check,
            self.inner.check(),
        )
        .await
    }

    async fn discover(&self) -> Result<Vec<DatasetInfo>> {
        within(
            self.inner.name(),
            DISCOVER,
            self.config.discover,
            self.inner.discover(),
        )
        .await
    }

    async fn plan(&self, request: &ReadRequest, max_partitions: usize) -> Result<Vec<Partition>> {
        within(
            self.inner.name(),
            PLAN,
            self.config.plan,
            self.inner.plan(request, max_partitions),
        )
        .await
    }

    async fn read(&self, partition: Partition) -> Result<SendableRecordBatchStream> {
        let stream = within(
            self.inner.name(),
            OPEN,
            self.config.open,
            self.inner.read(partition),
        )
        .await?;
        Ok(match self.config.idle {
            None => stream,
            Some(idle) => Box::pin(IdleTimeoutStream {
                schema: stream.schema(),
                inner: Some(stream),
                idle,
                sleep: Box::pin(tokio::time::sleep(idle)),
                armed: false,
                connector: self.inner.name().to_owned(),
            }),
        })
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl<S: Sink> Sink for Timeout<S> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn capabilities(&self) -> SinkCapabilities {
        self.inner.capabilities()
    }

    async fn check(&self) -> Result<()> {
        within(
            self.inner.name(),
            CHECK,
            self.config.check,
            self.inner.check(),
        )
        .await
    }

    async fn write(
        &self,
        request: WriteRequest,
        data: SendableRecordBatchStream,
    ) -> Result<WriteReport> {
        within(
            self.inner.name(),
            WRITE,
            self.config.write,
            self.inner.write(request, data),
        )
        .await
    }
}

/// Fails a read stream that waits longer than `idle` for its next batch, then ends it.
struct IdleTimeoutStream {
    /// `None` once the stream ended or timed out (the inner stream is dropped to cancel it).
    inner: Option<SendableRecordBatchStream>,
    /// The schema, kept for after the inner stream is dropped.
    schema: SchemaRef,
    idle: Duration,
    sleep: Pin<Box<Sleep>>,
    /// Whether `sleep` is set for the current wait. It is set at the first poll after a batch,
    /// so time the consumer spends between polls (backpressure) never counts as idle.
    armed: bool,
    connector: String,
}

impl Stream for IdleTimeoutStream {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        if !this.armed {
            let deadline = tokio::time::Instant::now() + this.idle;
            this.sleep.as_mut().reset(deadline);
            this.armed = true;
        }
        if let Poll::Ready(item) = inner.as_mut().poll_next(cx) {
            this.armed = false;
            if item.is_none() {
                this.inner = None;
            }
            return Poll::Ready(item);
        }
        if this.sleep.as_mut().poll(cx).is_ready() {
            this.inner = None;
            return Poll::Ready(Some(Err(timeout_error(&this.connector, IDLE, this.idle))));
        }
        Poll::Pending
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.as_ref().map_or((0, Some(0)), Stream::size_hint)
    }
}

impl RecordBatchStream for IdleTimeoutStream {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}
