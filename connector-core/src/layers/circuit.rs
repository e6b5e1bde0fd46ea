//! A circuit breaker: stop calling a peer that keeps failing, and probe it after a cool-down.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use futures::{Stream, StreamExt};
use tokio::time::Instant;

use super::Layer;
use crate::capability::{SinkCapabilities, SourceCapabilities};
use crate::connector::{Sink, Source};
use crate::error::{Error, ErrorKind, ErrorStatus, Result};
use crate::request::{DatasetInfo, Partition, ReadRequest, WriteReport, WriteRequest};
use crate::stream::{RecordBatchStream, SendableRecordBatchStream};

/// The state of a [`Circuit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CircuitState {
    /// Calls go through; consecutive failures are counted.
    Closed,
    /// Calls fail at once with [`ErrorKind::CircuitOpen`] until the cool-down has passed.
    Open,
    /// The cool-down has passed: one probe call goes through, the others fail at once.
    HalfOpen,
}

impl CircuitState {
    /// A short lower-case name, stable for logs and metrics.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half-open",
        }
    }
}

impl fmt::Display for CircuitState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The shared state of a circuit breaker. Clones share one circuit.
///
/// # Rules
///
/// - **Closed**: calls go through. A call that fails with a temporary or persistent error, or
///   with [`ErrorKind::Timeout`], counts as a failure; `failure_threshold` failures in a row open
///   the circuit. A success resets the count. A permanent error (`NotFound`, `InvalidInput`,
///   `Authentication`, …) is an answer from a reachable peer and says nothing bad about its
///   health: it counts like a success. [`ErrorKind::Cancelled`] counts as nothing.
/// - **Open**: every call fails at once with [`ErrorKind::CircuitOpen`], without calling the
///   wrapped connector. The error is *temporary* and its [`Error::retry_after`] is the rest of the
///   cool-down, so a retry layer outside the breaker waits exactly that long.
/// - **Half-open**: the first call after the cool-down is let through as a probe (the move from
///   open to half-open happens lazily, at that call). While it runs, other calls fail at once.
///   If it succeeds, the circuit closes; if it fails, the circuit opens for another cool-down. A
///   probe that is dropped unfinished, or cancelled, lets the next call probe instead.
///
/// For a read, the first batch (or the end of an empty stream) counts as the success; an error
/// from the stream before it counts as the failure. Errors later in the stream count as failures
/// while the circuit is closed.
#[derive(Clone)]
pub struct Circuit {
    shared: Arc<Shared>,
}

struct Shared {
    failure_threshold: u32,
    cool_down: Duration,
    state: Mutex<Inner>,
}

struct Inner {
    phase: Phase,
    /// Bumped on every transition, so that a call admitted in an earlier phase cannot change
    /// the current one when it finishes late.
    generation: u64,
}

#[derive(Clone, Copy)]
enum Phase {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probing: bool },
}

/// How a finished call counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Success,
    Failure,
    Neutral,
}

impl Outcome {
    fn of_error(e: &Error) -> Self {
        if e.kind() == ErrorKind::Cancelled {
            Self::Neutral
        } else if e.kind() == ErrorKind::Timeout || e.status() != ErrorStatus::Permanent {
            Self::Failure
        } else {
            Self::Success
        }
    }

    fn of<T>(r: &Result<T>) -> Self {
        r.as_ref().err().map_or(Self::Success, Self::of_error)
    }
}

/// Why a call was not admitted.
enum Rejected {
    /// Open; this much cool-down is left.
    Open(Duration),
    /// Half-open with a probe in flight.
    Probing,
}

impl fmt::Debug for Circuit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Circuit")
            .field("state", &self.state())
            .field("consecutive_failures", &self.consecutive_failures())
            .field("failure_threshold", &self.shared.failure_threshold)
            .field("cool_down", &self.shared.cool_down)
            .finish()
    }
}

impl Circuit {
    /// A closed circuit that opens after `failure_threshold` consecutive failures (at least 1)
    /// and probes again after `cool_down`.
    #[must_use]
    pub fn new(failure_threshold: u32, cool_down: Duration) -> Self {
        Self {
            shared: Arc::new(Shared {
                failure_threshold: failure_threshold.max(1),
                cool_down,
                state: Mutex::new(Inner {
                    phase: Phase::Closed { failures: 0 },
                    generation: 0,
                }),
            }),
        }
    }

    /// The current state. An open circuit whose cool-down has passed still reports
    /// [`CircuitState::Open`] until the next call moves it to half-open.
    #[must_use]
    pub fn state(&self) -> CircuitState {
        match self.lock().phase {
            Phase::Closed { .. } => CircuitState::Closed,
            Phase::Open { .. } => CircuitState::Open,
            Phase::HalfOpen { .. } => CircuitState::HalfOpen,
        }
    }

    /// Failures counted in a row while closed (0 in the other states).
    #[must_use]
    pub fn consecutive_failures(&self) -> u32 {
        match self.lock().phase {
            Phase::Closed { failures } => failures,
            _ => 0,
        }
    }

    // The state is replaced whole under the lock, so a panic elsewhere cannot leave it torn.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn admit(&self) -> std::result::Result<Permit, Rejected> {
        let mut inner = self.lock();
        let probe = match inner.phase {
            Phase::Closed { .. } => false,
            Phase::Open { until } => {
                let now = Instant::now();
                if now < until {
                    return Err(Rejected::Open(until - now));
                }
                inner.phase = Phase::HalfOpen { probing: true };
                inner.generation += 1;
                true
            }
            Phase::HalfOpen { probing: true } => return Err(Rejected::Probing),
            Phase::HalfOpen { probing: false } => {
                inner.phase = Phase::HalfOpen { probing: true };
                true
            }
        };
        Ok(Permit {
            circuit: self.clone(),
            generation: inner.generation,
            probe,
            done: false,
        })
    }

    fn record(&self, generation: u64, probe: bool, outcome: Outcome) {
        let mut inner = self.lock();
        if inner.generation != generation {
            return;
        }
        let next = match (inner.phase, outcome) {
            (Phase::Closed { .. }, Outcome::Success) => Phase::Closed { failures: 0 },
            (Phase::Closed { failures }, Outcome::Failure) => {
                let failures = failures.saturating_add(1);
                if failures >= self.shared.failure_threshold {
                    tracing::warn!(
                        failures,
                        cool_down_ms = self.shared.cool_down.as_millis() as u64,
                        "circuit breaker opened"
                    );
                    self.open_phase()
                } else {
                    Phase::Closed { failures }
                }
            }
            (Phase::HalfOpen { .. }, Outcome::Success) if probe => {
                tracing::info!("circuit breaker closed after a successful probe");
                Phase::Closed { failures: 0 }
            }
            (Phase::HalfOpen { .. }, Outcome::Failure) if probe => {
                tracing::warn!(
                    cool_down_ms = self.shared.cool_down.as_millis() as u64,
                    "circuit breaker re-opened after a failed probe"
                );
                self.open_phase()
            }
            (Phase::HalfOpen { .. }, Outcome::Neutral) if probe => {
                // The probe told nothing; let the next call probe. Same phase, same generation.
                inner.phase = Phase::HalfOpen { probing: false };
                return;
            }
            _ => return,
        };
        if std::mem::discriminant(&next) != std::mem::discriminant(&inner.phase) {
            inner.generation += 1;
        }
        inner.phase = next;
    }

    fn open_phase(&self) -> Phase {
        Phase::Open {
            until: Instant::now() + self.shared.cool_down,
        }
    }

    /// Count a failure seen outside an admitted call (a read stream failing after its first
    /// batch): only a closed circuit counts it.
    fn record_late_failure(&self) {
        let generation = self.lock().generation;
        self.record(generation, false, Outcome::Failure);
    }

    fn rejected_error(
        &self,
        rejected: &Rejected,
        connector: &str,
        operation: &'static str,
    ) -> Error {
        let e = match rejected {
            Rejected::Open(left) => Error::new(
                ErrorKind::CircuitOpen,
                format!(
                    "circuit open after {} consecutive failures; next probe in {left:?}",
                    self.shared.failure_threshold
                ),
            )
            .with_retry_after(*left),
            Rejected::Probing => Error::new(
                ErrorKind::CircuitOpen,
                "circuit half-open: a probe call is in flight",
            ),
        };
        e.temporary()
            .with_connector(connector.to_owned())
            .with_operation(operation)
    }

    /// Admit a call, run it, and count its outcome.
    async fn call<T, F, Fut>(&self, connector: &str, operation: &'static str, call: F) -> Result<T>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let permit = self
            .admit()
            .map_err(|r| self.rejected_error(&r, connector, operation))?;
        let result = call().await;
        permit.finish(Outcome::of(&result));
        result
    }
}

/// An admitted call. Dropped unfinished, it counts as nothing (and frees the probe slot).
struct Permit {
    circuit: Circuit,
    generation: u64,
    probe: bool,
    done: bool,
}

impl Permit {
    fn finish(mut self, outcome: Outcome) {
        self.done = true;
        self.circuit.record(self.generation, self.probe, outcome);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.done {
            self.circuit
                .record(self.generation, self.probe, Outcome::Neutral);
        }
    }
}

/// Wraps connectors in a [`CircuitBreaker`]; see [`Circuit`] for the rules.
///
/// Every connector wrapped by one layer value (or its clones) shares one [`Circuit`]: wrap the
/// source and the sink of one peer with the same layer, and use a new layer for another peer.
/// Put this layer outermost, above [`super::RetryLayer`] (see the [module docs](super)).
#[derive(Debug, Clone)]
pub struct CircuitBreakerLayer {
    circuit: Circuit,
}

impl CircuitBreakerLayer {
    /// Open after `failure_threshold` consecutive failures (at least 1); probe after `cool_down`.
    #[must_use]
    pub fn new(failure_threshold: u32, cool_down: Duration) -> Self {
        Self {
            circuit: Circuit::new(failure_threshold, cool_down),
        }
    }

    /// The circuit shared by every connector this layer wraps.
    #[must_use]
    pub fn circuit(&self) -> &Circuit {
        &self.circuit
    }
}

impl<S> Layer<S> for CircuitBreakerLayer {
    type Output = CircuitBreaker<S>;

    fn apply(&self, inner: S) -> CircuitBreaker<S> {
        CircuitBreaker {
            inner,
            circuit: self.circuit.clone(),
        }
    }
}

/// A [`Source`] or [`Sink`] behind a circuit breaker; made by [`CircuitBreakerLayer`].
#[derive(Debug, Clone)]
pub struct CircuitBreaker<S> {
    inner: S,
    circuit: Circuit,
}

impl<S> CircuitBreaker<S> {
    /// The wrapped connector.
    #[must_use]
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The shared circuit.
    #[must_use]
    pub fn circuit(&self) -> &Circuit {
        &self.circuit
    }

    /// The circuit's current state.
    #[must_use]
    pub fn state(&self) -> CircuitState {
        self.circuit.state()
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl<S: Source> Source for CircuitBreaker<S> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn capabilities(&self) -> SourceCapabilities {
        self.inner.capabilities()
    }

    async fn check(&self) -> Result<()> {
        self.circuit
            .call(self.inner.name(), "check", || self.inner.check())
            .await
    }

    async fn discover(&self) -> Result<Vec<DatasetInfo>> {
        self.circuit
            .call(self.inner.name(), "discover", || self.inner.discover())
            .await
    }

    async fn plan(&self, request: &ReadRequest, max_partitions: usize) -> Result<Vec<Partition>> {
        self.circuit
            .call(self.inner.name(), "plan", || {
                self.inner.plan(request, max_partitions)
            })
            .await
    }

    async fn read(&self, partition: Partition) -> Result<SendableRecordBatchStream> {
        let permit = self
            .circuit
            .admit()
            .map_err(|r| self.circuit.rejected_error(&r, self.inner.name(), "read"))?;
        match self.inner.read(partition).await {
            Ok(stream) => Ok(Box::pin(BreakerStream {
                inner: stream,
                permit: Some(permit),
                circuit: self.circuit.clone(),
            })),
            Err(e) => {
                permit.finish(Outcome::of_error(&e));
                Err(e)
            }
        }
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl<S: Sink> Sink for CircuitBreaker<S> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn capabilities(&self) -> SinkCapabilities {
        self.inner.capabilities()
    }

    async fn check(&self) -> Result<()> {
        self.circuit
            .call(self.inner.name(), "check", || self.inner.check())
            .await
    }

    async fn write(
        &self,
        request: WriteRequest,
        data: SendableRecordBatchStream,
    ) -> Result<WriteReport> {
        self.circuit
            .call(self.inner.name(), "write", || {
                self.inner.write(request, data)
            })
            .await
    }
}

/// Counts a read stream's outcome: the first batch (or the end) is the success of the call.
struct BreakerStream {
    inner: SendableRecordBatchStream,
    /// The read's permit, until its outcome is known.
    permit: Option<Permit>,
    circuit: Circuit,
}

impl Stream for BreakerStream {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let item = futures::ready!(this.inner.poll_next_unpin(cx));
        let outcome = match &item {
            Some(Ok(_)) | None => Outcome::Success,
            Some(Err(e)) => Outcome::of_error(e),
        };
        match this.permit.take() {
            Some(permit) => permit.finish(outcome),
            None if outcome == Outcome::Failure => this.circuit.record_late_failure(),
            None => {}
        }
        Poll::Ready(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl RecordBatchStream for BreakerStream {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }
}
