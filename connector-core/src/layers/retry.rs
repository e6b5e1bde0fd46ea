//! Retry of temporary errors, with exponential backoff and jitter.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use futures::StreamExt;
use tokio::time::Instant;

use super::Layer;
use crate::capability::{SinkCapabilities, SourceCapabilities};
use crate::connector::{Sink, Source};
use crate::error::{Error, ErrorKind, Result};
use crate::request::{DatasetInfo, Partition, ReadRequest, WriteReport, WriteRequest};
use crate::stream::{RecordBatchStreamAdapter, SendableRecordBatchStream};

type NotifyFn = dyn Fn(&RetryEvent<'_>) + Send + Sync;

/// Retries operations that fail with a temporary error ([`Error::is_temporary`]).
///
/// # What is retried
///
/// | operation | retried |
/// |---|---|
/// | [`Source::check`], [`Source::discover`], [`Source::plan`], [`Sink::check`] | yes |
/// | [`Source::read`]: opening the stream | yes |
/// | [`Source::read`]: stream errors **before the first batch** | yes: the partition is read again from the start |
/// | [`Source::read`]: stream errors after the first batch | no: passed through, marked persistent |
/// | [`Sink::write`] | no: the input stream cannot be replayed; the call is forwarded unchanged |
///
/// One read has one budget: the attempts to open the stream and to re-open it after an early
/// stream error count together.
///
/// # Schedule
///
/// The delays come from `backon`'s exponential backoff: `min_delay`, then multiplied by `factor`
/// up to `max_delay`, each with a random jitter of up to the same amount again when jitter is on
/// (the default). When the error carries [`Error::retry_after`] (a server's `Retry-After`), the
/// layer waits at least that long.
///
/// # Giving up
///
/// The layer stops after `max_attempts` attempts in total, or when the next wait would end later
/// than `max_elapsed` after the first attempt started. It then returns the last error marked
/// [`ErrorStatus::Persistent`](crate::ErrorStatus::Persistent) (so outer layers do not retry it
/// again), with the context `attempts` (and `retry`, saying which limit was reached). Errors that
/// are not temporary are returned at once, unchanged but for an `attempts` context when there
/// were earlier attempts.
///
/// Each retry is logged with `tracing::warn!` and reported to the optional
/// [notify hook](Self::with_notify).
#[derive(Clone)]
pub struct RetryLayer {
    max_attempts: usize,
    min_delay: Duration,
    max_delay: Duration,
    factor: f32,
    jitter: bool,
    max_elapsed: Option<Duration>,
    notify: Option<Arc<NotifyFn>>,
}

impl fmt::Debug for RetryLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryLayer")
            .field("max_attempts", &self.max_attempts)
            .field("min_delay", &self.min_delay)
            .field("max_delay", &self.max_delay)
            .field("factor", &self.factor)
            .field("jitter", &self.jitter)
            .field("max_elapsed", &self.max_elapsed)
            .field("notify", &self.notify.is_some())
            .finish()
    }
}

impl Default for RetryLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl RetryLayer {
    /// Defaults: 4 attempts, delays from 100 ms doubling up to 10 s with jitter, at most 60 s in
    /// total, no notify hook.
    #[must_use]
    pub fn new() -> Self {
        Self {
            max_attempts: 4,
            min_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(10),
            factor: 2.0,
            jitter: true,
            max_elapsed: Some(Duration::from_mins(1)),
            notify: None,
        }
    }

    /// Attempts in total, the first one included (at least 1; 1 means no retry).
    #[must_use]
    pub fn with_max_attempts(mut self, attempts: usize) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The first delay.
    #[must_use]
    pub fn with_min_delay(mut self, delay: Duration) -> Self {
        self.min_delay = delay;
        self
    }

    /// The longest delay the backoff grows to (a server's `retry_after` may ask for longer).
    #[must_use]
    pub fn with_max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// How much each delay grows over the previous one (values below 1 are taken as 1).
    #[must_use]
    pub fn with_factor(mut self, factor: f32) -> Self {
        self.factor = factor.max(1.0);
        self
    }

    /// Turn the random jitter on (the default) or off.
    #[must_use]
    pub fn with_jitter(mut self, jitter: bool) -> Self {
        self.jitter = jitter;
        self
    }

    /// The most time, from the start of the first attempt, after which no new attempt starts
    /// (`None`: no limit besides `max_attempts`).
    #[must_use]
    pub fn with_max_elapsed(mut self, max_elapsed: impl Into<Option<Duration>>) -> Self {
        self.max_elapsed = max_elapsed.into();
        self
    }

    /// Call `notify` before each retry (after the failed attempt, before the wait).
    #[must_use]
    pub fn with_notify(mut self, notify: impl Fn(&RetryEvent<'_>) + Send + Sync + 'static) -> Self {
        self.notify = Some(Arc::new(notify));
        self
    }

    fn backoff(&self) -> ExponentialBackoff {
        let mut builder = ExponentialBuilder::new()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_factor(self.factor)
            .with_max_times(self.max_attempts.saturating_sub(1))
            // backon is built without its `std` feature, which would give the jitter a fixed
            // seed; seed it here so that clients do not all retry in step.
            .with_jitter_seed(rand::random());
        if self.jitter {
            builder = builder.with_jitter();
        }
        builder.build()
    }
}

impl<S> Layer<S> for RetryLayer {
    type Output = Retry<S>;

    fn apply(&self, inner: S) -> Retry<S> {
        Retry {
            inner: Arc::new(inner),
            policy: Arc::new(self.clone()),
        }
    }
}

/// One retry, as reported to the hook of [`RetryLayer::with_notify`].
#[derive(Debug)]
#[non_exhaustive]
pub struct RetryEvent<'a> {
    /// The connector name.
    pub connector: &'a str,
    /// The operation being retried (`"check"`, `"read"`, …).
    pub operation: &'a str,
    /// The attempt that failed, from 1.
    pub attempt: usize,
    /// How long the layer waits before the next attempt.
    pub delay: Duration,
    /// The error of the failed attempt.
    pub error: &'a Error,
}

/// A [`Source`] or [`Sink`] that retries temporary errors; made by [`RetryLayer`].
pub struct Retry<S> {
    // Shared so a read stream can re-open its partition after `read` has returned.
    inner: Arc<S>,
    policy: Arc<RetryLayer>,
}

impl<S> Clone for Retry<S> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            policy: Arc::clone(&self.policy),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for Retry<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retry")
            .field("inner", &self.inner)
            .field("policy", &self.policy)
            .finish()
    }
}

impl<S> Retry<S> {
    /// The wrapped connector.
    #[must_use]
    pub fn inner(&self) -> &S {
        &self.inner
    }

    fn budget(&self, connector: &str, operation: &'static str) -> Budget {
        Budget {
            backoff: self.policy.backoff(),
            policy: Arc::clone(&self.policy),
            started: Instant::now(),
            attempts: 0,
            connector: connector.to_owned(),
            operation,
        }
    }

    /// Run `attempt` until it succeeds or the budget says to give up.
    async fn run<T, F, Fut>(
        &self,
        connector: &str,
        operation: &'static str,
        mut attempt: F,
    ) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut budget = self.budget(connector, operation);
        loop {
            match attempt().await {
                Ok(v) => return Ok(v),
                Err(e) => match budget.after_failure(e) {
                    Verdict::RetryIn(delay) => tokio::time::sleep(delay).await,
                    Verdict::Stop(e) => return Err(e),
                },
            }
        }
    }
}

/// What to do after a failed attempt.
enum Verdict {
    /// Wait this long, then try again.
    RetryIn(Duration),
    /// Return this error.
    Stop(Error),
}

/// The retry state of one logical operation.
struct Budget {
    policy: Arc<RetryLayer>,
    backoff: ExponentialBackoff,
    started: Instant,
    attempts: usize,
    connector: String,
    operation: &'static str,
}

impl Budget {
    /// Account for one failed attempt.
    fn after_failure(&mut self, error: Error) -> Verdict {
        self.attempts += 1;
        let error = error
            .with_connector(self.connector.clone())
            .with_operation(self.operation);
        if !error.is_temporary() {
            return Verdict::Stop(if self.attempts > 1 {
                error.with_context("attempts", self.attempts)
            } else {
                error
            });
        }
        let Some(backoff) = self.backoff.next() else {
            return Verdict::Stop(self.give_up(error, "max attempts reached"));
        };
        let delay = error
            .retry_after()
            .map_or(backoff, |after| after.max(backoff));
        if let Some(max) = self.policy.max_elapsed
            && self.started.elapsed() + delay > max
        {
            return Verdict::Stop(self.give_up(error, "max elapsed time reached"));
        }
        tracing::warn!(
            connector = %self.connector,
            operation = self.operation,
            attempt = self.attempts,
            delay_ms = delay.as_millis() as u64,
            error = %error,
            "retrying after a temporary error"
        );
        if let Some(notify) = &self.policy.notify {
            notify(&RetryEvent {
                connector: &self.connector,
                operation: self.operation,
                attempt: self.attempts,
                delay,
                error: &error,
            });
        }
        Verdict::RetryIn(delay)
    }

    /// Count the elapsed time as if only `spent` had passed since the first attempt.
    fn restart_clock(&mut self, spent: Duration) {
        let now = Instant::now();
        self.started = now.checked_sub(spent).unwrap_or(now);
    }

    fn give_up(&self, error: Error, why: &'static str) -> Error {
        error
            .persist()
            .with_context("attempts", self.attempts)
            .with_context("retry", why)
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl<S: Source + 'static> Source for Retry<S> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn capabilities(&self) -> SourceCapabilities {
        self.inner.capabilities()
    }

    async fn check(&self) -> Result<()> {
        self.run(self.inner.name(), "check", || self.inner.check())
            .await
    }

    async fn discover(&self) -> Result<Vec<DatasetInfo>> {
        self.run(self.inner.name(), "discover", || self.inner.discover())
            .await
    }

    async fn plan(&self, request: &ReadRequest, max_partitions: usize) -> Result<Vec<Partition>> {
        self.run(self.inner.name(), "plan", || {
            self.inner.plan(request, max_partitions)
        })
        .await
    }

    async fn read(&self, partition: Partition) -> Result<SendableRecordBatchStream> {
        let mut budget = self.budget(self.inner.name(), "read");
        let stream = loop {
            match self.inner.read(partition.clone()).await {
                Ok(stream) => break stream,
                Err(e) => match budget.after_failure(e) {
                    Verdict::RetryIn(delay) => tokio::time::sleep(delay).await,
                    Verdict::Stop(e) => return Err(e),
                },
            }
        };
        let schema = stream.schema();
        let state = ReadState {
            inner: Arc::clone(&self.inner),
            partition,
            schema: schema.clone(),
            stream: Some(stream),
            opened_in: Some(budget.started.elapsed()),
            yielded: false,
            done: false,
            budget,
        };
        // Fused: polling again after the end returns `None` instead of panicking.
        Ok(RecordBatchStreamAdapter::boxed(
            schema,
            futures::stream::unfold(state, ReadState::next).fuse(),
        ))
    }
}

/// A read stream that re-opens its partition after an error, but only before its first batch.
struct ReadState<S> {
    inner: Arc<S>,
    partition: Partition,
    schema: SchemaRef,
    /// `None` after an early error, until the partition is re-opened.
    stream: Option<SendableRecordBatchStream>,
    /// Time spent opening, until the first poll. The time between `read` returning and the
    /// first poll is the consumer's, not the retry budget's.
    opened_in: Option<Duration>,
    /// A batch was yielded: from now on nothing is retried.
    yielded: bool,
    /// The retry layer gave up; the stream is over.
    done: bool,
    budget: Budget,
}

impl<S: Source> ReadState<S> {
    async fn next(mut self) -> Option<(Result<RecordBatch>, Self)> {
        if self.done {
            return None;
        }
        if let Some(spent) = self.opened_in.take() {
            self.budget.restart_clock(spent);
        }
        loop {
            let Some(stream) = self.stream.as_mut() else {
                match self.inner.read(self.partition.clone()).await {
                    Ok(stream) if *stream.schema() != *self.schema => {
                        self.done = true;
                        let e = Error::new(
                            ErrorKind::SchemaMismatch,
                            "the re-opened read stream has a different schema than the first",
                        )
                        .with_connector(self.budget.connector.clone())
                        .with_operation("read")
                        .with_context("attempts", self.budget.attempts + 1);
                        return Some((Err(e), self));
                    }
                    Ok(stream) => self.stream = Some(stream),
                    Err(e) => {
                        if let Some(e) = self.retry_after(e).await {
                            return Some((Err(e), self));
                        }
                    }
                }
                continue;
            };
            match stream.next().await {
                Some(Ok(batch)) => {
                    self.yielded = true;
                    return Some((Ok(batch), self));
                }
                Some(Err(e)) if self.yielded => {
                    let e = if e.is_temporary() {
                        e.persist().with_context(
                            "retry",
                            "not retried: the stream had already yielded batches",
                        )
                    } else {
                        e
                    };
                    return Some((Err(e), self));
                }
                Some(Err(e)) => {
                    // Drop the failed stream (cancelling it) before waiting.
                    self.stream = None;
                    if let Some(e) = self.retry_after(e).await {
                        return Some((Err(e), self));
                    }
                }
                None => return None,
            }
        }
    }

    /// Wait before the next attempt (`None`), or mark the stream done and return the final error.
    async fn retry_after(&mut self, error: Error) -> Option<Error> {
        match self.budget.after_failure(error) {
            Verdict::RetryIn(delay) => {
                tokio::time::sleep(delay).await;
                None
            }
            Verdict::Stop(e) => {
                self.done = true;
                Some(e)
            }
        }
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl<S: Sink> Sink for Retry<S> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn capabilities(&self) -> SinkCapabilities {
        self.inner.capabilities()
    }

    async fn check(&self) -> Result<()> {
        self.run(self.inner.name(), "check", || self.inner.check())
            .await
    }

    /// Forwarded without retry: the input stream is consumed by the first attempt and cannot be
    /// replayed. Retry a write at a level that can rebuild its input (e.g. re-read the source).
    async fn write(
        &self,
        request: WriteRequest,
        data: SendableRecordBatchStream,
    ) -> Result<WriteReport> {
        self.inner.write(request, data).await
    }
}
