//! The resilience layers against a fault-injecting source and sink over the in-memory backend.
//!
//! Every test runs on a paused tokio clock: sleeps and timeouts complete at once in real time,
//! while `tokio::time::Instant` still sees the time they stand for.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::Int64Array;
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use connector_core::layers::{
    CircuitBreakerLayer, CircuitState, LayerExt, RetryLayer, TimeoutLayer,
};
use connector_core::{
    DatasetInfo, Error, ErrorKind, ErrorStatus, MemorySink, MemorySource, MemoryStore, Partition,
    ReadRequest, RecordBatchStreamAdapter, Result, SendableRecordBatchStream, Sink,
    SinkCapabilities, SinkExt, Source, SourceCapabilities, SourceExt, WriteReport, WriteRequest,
};
use futures::StreamExt;
use tokio::time::Instant;

// ---------------------------------------------------------------------------------------------
// Fault injection
// ---------------------------------------------------------------------------------------------

/// The operations faults can be injected into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Op {
    Check,
    Discover,
    Plan,
    Read,
    Write,
}

type MakeError = Arc<dyn Fn() -> Error + Send + Sync>;

/// What a read stream does after it was opened.
#[derive(Clone)]
enum StreamFault {
    /// Yield `after` batches, then this error, then end.
    Fail { after: usize, make: MakeError },
    /// Yield `after` batches, then wait forever.
    Hang { after: usize },
    /// Wait this long before each batch.
    Slow { per_batch: Duration },
}

#[derive(Default)]
struct FaultPlan {
    /// Fail the next `n` calls of an operation.
    fail: HashMap<Op, (usize, MakeError)>,
    /// Hang the next `n` calls of an operation.
    hang: HashMap<Op, usize>,
    /// Apply a stream fault to the next `n` opened read streams.
    stream: Option<(usize, StreamFault)>,
}

/// Shared fault plan and call counters. Clones share both.
#[derive(Clone, Default)]
struct Faults {
    plan: Arc<Mutex<FaultPlan>>,
    calls: Arc<Mutex<HashMap<Op, usize>>>,
}

impl fmt::Debug for Faults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Faults").finish_non_exhaustive()
    }
}

impl Faults {
    fn fail(&self, op: Op, times: usize, make: impl Fn() -> Error + Send + Sync + 'static) {
        self.plan
            .lock()
            .unwrap()
            .fail
            .insert(op, (times, Arc::new(make)));
    }

    fn hang(&self, op: Op, times: usize) {
        self.plan.lock().unwrap().hang.insert(op, times);
    }

    fn fail_stream(
        &self,
        after: usize,
        times: usize,
        make: impl Fn() -> Error + Send + Sync + 'static,
    ) {
        self.plan.lock().unwrap().stream = Some((
            times,
            StreamFault::Fail {
                after,
                make: Arc::new(make),
            },
        ));
    }

    fn slow_stream(&self, per_batch: Duration, times: usize) {
        self.plan.lock().unwrap().stream = Some((times, StreamFault::Slow { per_batch }));
    }

    fn hang_stream(&self, after: usize, times: usize) {
        self.plan.lock().unwrap().stream = Some((times, StreamFault::Hang { after }));
    }

    fn calls(&self, op: Op) -> usize {
        self.calls.lock().unwrap().get(&op).copied().unwrap_or(0)
    }

    /// Count a call and apply the fault planned for it, if any.
    async fn enter(&self, op: Op) -> Result<()> {
        *self.calls.lock().unwrap().entry(op).or_insert(0) += 1;
        let (hang, fail) = {
            let mut plan = self.plan.lock().unwrap();
            let hang = match plan.hang.get_mut(&op) {
                Some(n) if *n > 0 => {
                    *n -= 1;
                    true
                }
                _ => false,
            };
            let fail = match plan.fail.get_mut(&op) {
                Some((n, make)) if *n > 0 && !hang => {
                    *n -= 1;
                    Some(make())
                }
                _ => None,
            };
            (hang, fail)
        };
        if hang {
            std::future::pending::<()>().await;
        }
        fail.map_or(Ok(()), Err)
    }

    /// Apply the planned stream fault, if any, to a freshly opened stream.
    fn wrap_stream(&self, stream: SendableRecordBatchStream) -> SendableRecordBatchStream {
        let fault = {
            let mut plan = self.plan.lock().unwrap();
            match plan.stream.as_mut() {
                Some((n, fault)) if *n > 0 => {
                    *n -= 1;
                    Some(fault.clone())
                }
                _ => None,
            }
        };
        let schema = stream.schema();
        match fault {
            None => stream,
            Some(StreamFault::Fail { after, make }) => RecordBatchStreamAdapter::boxed(
                schema,
                stream
                    .take(after)
                    .chain(futures::stream::once(async move { Err(make()) })),
            ),
            Some(StreamFault::Hang { after }) => RecordBatchStreamAdapter::boxed(
                schema,
                stream.take(after).chain(futures::stream::pending()),
            ),
            Some(StreamFault::Slow { per_batch }) => RecordBatchStreamAdapter::boxed(
                schema,
                stream.then(move |item| async move {
                    tokio::time::sleep(per_batch).await;
                    item
                }),
            ),
        }
    }
}

/// A [`MemorySource`] with injected faults.
#[derive(Debug, Clone)]
struct FaultySource {
    inner: MemorySource,
    faults: Faults,
}

#[async_trait]
impl Source for FaultySource {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn capabilities(&self) -> SourceCapabilities {
        self.inner.capabilities()
    }

    async fn check(&self) -> Result<()> {
        self.faults.enter(Op::Check).await?;
        self.inner.check().await
    }

    async fn discover(&self) -> Result<Vec<DatasetInfo>> {
        self.faults.enter(Op::Discover).await?;
        self.inner.discover().await
    }

    async fn plan(&self, request: &ReadRequest, max_partitions: usize) -> Result<Vec<Partition>> {
        self.faults.enter(Op::Plan).await?;
        self.inner.plan(request, max_partitions).await
    }

    async fn read(&self, partition: Partition) -> Result<SendableRecordBatchStream> {
        self.faults.enter(Op::Read).await?;
        let stream = self.inner.read(partition).await?;
        Ok(self.faults.wrap_stream(stream))
    }
}

/// A [`MemorySink`] with injected faults.
#[derive(Debug, Clone)]
struct FaultySink {
    inner: MemorySink,
    faults: Faults,
}

#[async_trait]
impl Sink for FaultySink {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn capabilities(&self) -> SinkCapabilities {
        self.inner.capabilities()
    }

    async fn check(&self) -> Result<()> {
        self.faults.enter(Op::Check).await?;
        self.inner.check().await
    }

    async fn write(
        &self,
        request: WriteRequest,
        data: SendableRecordBatchStream,
    ) -> Result<WriteReport> {
        self.faults.enter(Op::Write).await?;
        self.inner.write(request, data).await
    }
}

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

const ROWS: i64 = 50;
const BATCH_ROWS: usize = 10;

fn ids_batch(ids: impl IntoIterator<Item = i64>) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
    RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from_iter_values(ids))]).unwrap()
}

/// A store with table `t` of ids `0..ROWS`, and a faulty source and sink over it.
fn setup() -> (MemoryStore, FaultySource, FaultySink, Faults) {
    let store = MemoryStore::new();
    let batch = ids_batch(0..ROWS);
    store.put("t", batch.schema(), vec![batch]);
    let faults = Faults::default();
    let source = FaultySource {
        inner: store.source(),
        faults: faults.clone(),
    };
    let sink = FaultySink {
        inner: store.sink(),
        faults: faults.clone(),
    };
    (store, source, sink, faults)
}

fn request() -> ReadRequest {
    ReadRequest::dataset("t").with_batch_rows(BATCH_ROWS)
}

fn connection_error() -> Error {
    Error::new(ErrorKind::Connection, "connection reset by peer").with_connector("memory")
}

fn not_found_error() -> Error {
    Error::new(ErrorKind::NotFound, "no such table").with_connector("memory")
}

/// A retry layer with small delays.
fn quick_retry(max_attempts: usize) -> RetryLayer {
    RetryLayer::new()
        .with_max_attempts(max_attempts)
        .with_min_delay(Duration::from_millis(10))
        .with_max_delay(Duration::from_millis(100))
}

/// What a read of the whole of `t` returned: every id yielded before the stream ended, and the
/// error that ended it, if any. `Err` when the read could not be opened.
async fn read_ids<S: Source + ?Sized>(source: &S) -> Result<(Vec<i64>, Option<Error>)> {
    let partition = Partition::single(request());
    let mut stream = source.read(partition).await?;
    let mut ids = Vec::new();
    let mut error = None;
    while let Some(item) = stream.next().await {
        match item {
            Ok(batch) => {
                let col = batch
                    .column(0)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .unwrap();
                ids.extend(col.values().iter().copied());
            }
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    Ok((ids, error))
}

/// Asserts `ids` holds no duplicate and returns how many distinct ids it holds.
fn assert_unique(ids: &[i64]) -> usize {
    let set: BTreeSet<i64> = ids.iter().copied().collect();
    assert_eq!(set.len(), ids.len(), "a row was yielded twice: {ids:?}");
    set.len()
}

fn context<'a>(e: &'a Error, key: &str) -> Option<&'a str> {
    e.context()
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.as_str())
}

// ---------------------------------------------------------------------------------------------
// Retry
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn flaky_n_times_then_fine_takes_n_plus_one_attempts() {
    let (_store, source, _sink, faults) = setup();
    let retries = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&retries);
    let source = source.layer(quick_retry(5).with_notify(move |event| {
        assert_eq!(event.error.kind(), ErrorKind::Connection);
        seen.fetch_add(1, Ordering::SeqCst);
    }));

    faults.fail(Op::Check, 3, connection_error);
    source.check().await.unwrap();
    assert_eq!(faults.calls(Op::Check), 4);
    assert_eq!(retries.load(Ordering::SeqCst), 3);

    faults.fail(Op::Discover, 2, connection_error);
    let datasets = source.discover().await.unwrap();
    assert_eq!(datasets.len(), 1);
    assert_eq!(faults.calls(Op::Discover), 3);

    faults.fail(Op::Plan, 1, connection_error);
    let parts = source.plan(&request(), 1).await.unwrap();
    assert_eq!(parts.len(), 1);
    assert_eq!(faults.calls(Op::Plan), 2);

    faults.fail(Op::Read, 2, connection_error);
    let (ids, error) = read_ids(&source).await.unwrap();
    assert!(error.is_none(), "{error:?}");
    assert_eq!(faults.calls(Op::Read), 3);
    assert_eq!(assert_unique(&ids), ROWS as usize);
    assert_eq!(ids, (0..ROWS).collect::<Vec<_>>());
    assert_eq!(retries.load(Ordering::SeqCst), 3 + 2 + 1 + 2);
}

#[tokio::test(start_paused = true)]
async fn always_failing_gives_up_persistent_then_circuit_opens_and_fails_fast() {
    let (_store, source, _sink, faults) = setup();
    faults.fail(Op::Check, usize::MAX, connection_error);
    faults.fail(Op::Discover, usize::MAX, connection_error);
    let cool_down = Duration::from_secs(30);
    let source = source
        .layer(quick_retry(3))
        .layer(CircuitBreakerLayer::new(2, cool_down));

    let e = source.check().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connection);
    assert_eq!(e.status(), ErrorStatus::Persistent);
    assert_eq!(context(&e, "attempts"), Some("3"));
    assert_eq!(e.operation(), Some("check"));
    assert_eq!(faults.calls(Op::Check), 3);
    assert_eq!(source.state(), CircuitState::Closed);
    assert_eq!(source.circuit().consecutive_failures(), 1);

    let e = source.check().await.unwrap_err();
    assert_eq!(e.status(), ErrorStatus::Persistent);
    assert_eq!(faults.calls(Op::Check), 6);
    assert_eq!(source.state(), CircuitState::Open);

    // Open: fail fast, without calling the inner source, for every operation.
    for _ in 0..5 {
        let e = source.check().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::CircuitOpen);
        assert_eq!(e.status(), ErrorStatus::Temporary);
        assert_eq!(e.connector(), Some("memory"));
        assert_eq!(e.operation(), Some("check"));
        let wait = e.retry_after().unwrap();
        assert!(wait > Duration::ZERO && wait <= cool_down, "{wait:?}");
    }
    let e = source.discover().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::CircuitOpen);
    let e = read_ids(&source).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::CircuitOpen);
    assert_eq!(faults.calls(Op::Check), 6);
    assert_eq!(faults.calls(Op::Discover), 0);
    assert_eq!(faults.calls(Op::Read), 0);
}

#[tokio::test(start_paused = true)]
async fn persistent_errors_are_not_retried_by_an_outer_retry() {
    let (_store, source, _sink, faults) = setup();
    faults.fail(Op::Check, usize::MAX, connection_error);
    let source = source.layer(quick_retry(2)).layer(quick_retry(3));
    let e = source.check().await.unwrap_err();
    assert_eq!(e.status(), ErrorStatus::Persistent);
    assert_eq!(faults.calls(Op::Check), 2);
}

#[tokio::test(start_paused = true)]
async fn permanent_errors_are_not_retried_and_do_not_open_the_circuit() {
    let (_store, source, _sink, faults) = setup();
    let source = source
        .layer(quick_retry(5))
        .layer(CircuitBreakerLayer::new(1, Duration::from_secs(30)));

    faults.fail(Op::Check, 3, not_found_error);
    for n in 1..=3 {
        let e = source.check().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert_eq!(e.status(), ErrorStatus::Permanent);
        assert_eq!(faults.calls(Op::Check), n);
        assert_eq!(source.state(), CircuitState::Closed);
    }
    source.check().await.unwrap();

    faults.fail(Op::Read, 1, || {
        Error::new(ErrorKind::InvalidInput, "bad partition").with_connector("memory")
    });
    let e = read_ids(&source).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert_eq!(faults.calls(Op::Read), 1);
    assert_eq!(source.state(), CircuitState::Closed);
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_honoured() {
    let (_store, source, _sink, faults) = setup();
    let server_wait = Duration::from_secs(30);
    faults.fail(Op::Check, 1, move || {
        Error::new(ErrorKind::RateLimited, "slow down")
            .with_connector("memory")
            .with_retry_after(server_wait)
    });
    let delays = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&delays);
    let source = source.layer(
        quick_retry(3)
            .with_max_elapsed(Duration::from_secs(300))
            .with_notify(move |event| seen.lock().unwrap().push(event.delay)),
    );
    let started = Instant::now();
    source.check().await.unwrap();
    assert!(started.elapsed() >= server_wait, "{:?}", started.elapsed());
    assert_eq!(faults.calls(Op::Check), 2);
    let delays = delays.lock().unwrap().clone();
    assert_eq!(delays.len(), 1);
    assert!(delays[0] >= server_wait, "{delays:?}");
}

#[tokio::test(start_paused = true)]
async fn max_elapsed_stops_retrying_before_max_attempts() {
    let (_store, source, _sink, faults) = setup();
    faults.fail(Op::Check, usize::MAX, connection_error);
    // Delays 1 s, 2 s, 4 s (7 s in all); the next one, 8 s, would end after 10 s.
    let source = source.layer(
        RetryLayer::new()
            .with_max_attempts(100)
            .with_min_delay(Duration::from_secs(1))
            .with_max_delay(Duration::from_secs(60))
            .with_factor(2.0)
            .with_jitter(false)
            .with_max_elapsed(Duration::from_secs(10)),
    );
    let started = Instant::now();
    let e = source.check().await.unwrap_err();
    assert_eq!(faults.calls(Op::Check), 4);
    assert_eq!(e.status(), ErrorStatus::Persistent);
    assert_eq!(context(&e, "attempts"), Some("4"));
    assert_eq!(context(&e, "retry"), Some("max elapsed time reached"));
    assert!(started.elapsed() < Duration::from_secs(10));

    // A server asking for more than the budget allows is not waited for.
    let (_store, source, _sink, faults) = setup();
    faults.fail(Op::Check, usize::MAX, || {
        Error::new(ErrorKind::RateLimited, "come back tomorrow")
            .with_retry_after(Duration::from_secs(86_400))
    });
    let source = source.layer(quick_retry(5).with_max_elapsed(Duration::from_secs(60)));
    let e = source.check().await.unwrap_err();
    assert_eq!(e.status(), ErrorStatus::Persistent);
    assert_eq!(faults.calls(Op::Check), 1);
}

// ---------------------------------------------------------------------------------------------
// Read streams: retry only before the first batch
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn stream_failing_before_first_batch_is_reopened_and_yields_every_row_once() {
    let (_store, source, _sink, faults) = setup();
    faults.fail_stream(0, 2, connection_error);
    let source = source.layer(quick_retry(4));
    let (ids, error) = read_ids(&source).await.unwrap();
    assert!(error.is_none(), "{error:?}");
    assert_eq!(faults.calls(Op::Read), 3);
    assert_eq!(assert_unique(&ids), ROWS as usize);
    assert_eq!(ids, (0..ROWS).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn stream_failing_after_first_batch_is_not_retried_and_duplicates_nothing() {
    let (_store, source, _sink, faults) = setup();
    faults.fail_stream(2, 1, connection_error);
    let source = source.layer(quick_retry(4));
    let (ids, error) = read_ids(&source).await.unwrap();
    let e = error.expect("the stream error is passed through");
    assert_eq!(e.kind(), ErrorKind::Connection);
    assert_eq!(e.status(), ErrorStatus::Persistent);
    assert_eq!(faults.calls(Op::Read), 1);
    assert_eq!(assert_unique(&ids), 2 * BATCH_ROWS);
    assert_eq!(ids, (0..2 * BATCH_ROWS as i64).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn time_before_the_first_poll_is_not_charged_to_the_retry_budget() {
    let (_store, source, _sink, faults) = setup();
    faults.fail_stream(0, 1, connection_error);
    let source = source.layer(quick_retry(3).with_max_elapsed(Duration::from_secs(10)));
    let mut stream = source.read(Partition::single(request())).await.unwrap();
    // The consumer opens the read long before it polls it (e.g. partitions opened ahead).
    tokio::time::sleep(Duration::from_secs(600)).await;
    let mut rows = 0;
    while let Some(batch) = stream.next().await {
        rows += batch.unwrap().num_rows();
    }
    assert_eq!(rows, ROWS as usize);
    assert_eq!(faults.calls(Op::Read), 2);
    // Fused: polling after the end is fine.
    assert!(stream.next().await.is_none());
}

#[tokio::test(start_paused = true)]
async fn stream_failing_before_first_batch_every_time_gives_up() {
    let (_store, source, _sink, faults) = setup();
    faults.fail_stream(0, usize::MAX, connection_error);
    let source = source.layer(quick_retry(3));
    let (ids, error) = read_ids(&source).await.unwrap();
    let e = error.expect("the read gives up");
    assert!(ids.is_empty());
    assert_eq!(e.status(), ErrorStatus::Persistent);
    assert_eq!(e.operation(), Some("read"));
    assert_eq!(context(&e, "attempts"), Some("3"));
    assert_eq!(faults.calls(Op::Read), 3);
}

#[tokio::test(start_paused = true)]
async fn open_and_stream_failures_share_one_budget() {
    let (_store, source, _sink, faults) = setup();
    faults.fail(Op::Read, 1, connection_error);
    faults.fail_stream(0, usize::MAX, connection_error);
    let source = source.layer(quick_retry(3));
    let (_ids, error) = read_ids(&source).await.unwrap();
    let e = error.expect("the read gives up");
    assert_eq!(context(&e, "attempts"), Some("3"));
    assert_eq!(faults.calls(Op::Read), 3);
}

// ---------------------------------------------------------------------------------------------
// Circuit breaker
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn half_open_probe_that_succeeds_closes_the_circuit() {
    let (_store, source, _sink, faults) = setup();
    let cool_down = Duration::from_secs(10);
    let source = source.layer(CircuitBreakerLayer::new(1, cool_down));
    faults.fail(Op::Check, 1, connection_error);
    source.check().await.unwrap_err();
    assert_eq!(source.state(), CircuitState::Open);

    tokio::time::advance(Duration::from_secs(4)).await;
    let e = source.check().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::CircuitOpen);
    let wait = e.retry_after().unwrap();
    assert!(
        wait <= Duration::from_secs(6) && wait > Duration::from_secs(5),
        "{wait:?}"
    );
    assert_eq!(faults.calls(Op::Check), 1);

    tokio::time::advance(wait).await;
    source.check().await.unwrap();
    assert_eq!(faults.calls(Op::Check), 2);
    assert_eq!(source.state(), CircuitState::Closed);
    source.check().await.unwrap();
    assert_eq!(faults.calls(Op::Check), 3);
}

#[tokio::test(start_paused = true)]
async fn half_open_probe_that_fails_reopens_the_circuit() {
    let (_store, source, _sink, faults) = setup();
    let cool_down = Duration::from_secs(10);
    let source = source.layer(CircuitBreakerLayer::new(2, cool_down));
    faults.fail(Op::Check, 3, connection_error);
    source.check().await.unwrap_err();
    source.check().await.unwrap_err();
    assert_eq!(source.state(), CircuitState::Open);

    tokio::time::advance(cool_down).await;
    // One failed probe re-opens the circuit, whatever the threshold.
    let e = source.check().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connection);
    assert_eq!(faults.calls(Op::Check), 3);
    assert_eq!(source.state(), CircuitState::Open);
    let e = source.check().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::CircuitOpen);
    assert_eq!(faults.calls(Op::Check), 3);

    tokio::time::advance(cool_down).await;
    source.check().await.unwrap();
    assert_eq!(source.state(), CircuitState::Closed);
    assert_eq!(faults.calls(Op::Check), 4);
}

#[tokio::test(start_paused = true)]
async fn half_open_lets_one_probe_through_and_a_dropped_probe_frees_the_slot() {
    let (_store, source, _sink, faults) = setup();
    let cool_down = Duration::from_secs(10);
    let source = Arc::new(source.layer(CircuitBreakerLayer::new(1, cool_down)));
    faults.fail(Op::Check, 1, connection_error);
    source.check().await.unwrap_err();
    tokio::time::advance(cool_down).await;

    faults.hang(Op::Check, 1);
    let probe = tokio::spawn({
        let source = Arc::clone(&source);
        async move { source.check().await }
    });
    while faults.calls(Op::Check) < 2 {
        tokio::task::yield_now().await;
    }
    assert_eq!(source.state(), CircuitState::HalfOpen);
    let e = source.check().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::CircuitOpen);
    assert_eq!(e.status(), ErrorStatus::Temporary);
    assert_eq!(faults.calls(Op::Check), 2);

    probe.abort();
    assert!(probe.await.unwrap_err().is_cancelled());
    source.check().await.unwrap();
    assert_eq!(source.state(), CircuitState::Closed);
    assert_eq!(faults.calls(Op::Check), 3);
}

#[tokio::test(start_paused = true)]
async fn stream_errors_count_as_circuit_failures() {
    let (_store, source, _sink, faults) = setup();
    let source = source.layer(CircuitBreakerLayer::new(2, Duration::from_secs(10)));

    // After the first batch: the first batch counted as a success, the late error as a failure.
    faults.fail_stream(1, 1, connection_error);
    let (ids, error) = read_ids(&source).await.unwrap();
    assert_eq!(ids.len(), BATCH_ROWS);
    assert_eq!(error.unwrap().kind(), ErrorKind::Connection);
    assert_eq!(source.circuit().consecutive_failures(), 1);
    assert_eq!(source.state(), CircuitState::Closed);

    // Before the first batch: the read's own failure, the second in a row.
    faults.fail_stream(0, 1, connection_error);
    let (ids, error) = read_ids(&source).await.unwrap();
    assert!(ids.is_empty());
    assert_eq!(error.unwrap().kind(), ErrorKind::Connection);
    assert_eq!(source.state(), CircuitState::Open);
    assert_eq!(
        read_ids(&source).await.unwrap_err().kind(),
        ErrorKind::CircuitOpen
    );
    assert_eq!(faults.calls(Op::Read), 2);
}

#[tokio::test(start_paused = true)]
async fn success_resets_the_failure_count() {
    let (_store, source, _sink, faults) = setup();
    let source = source.layer(CircuitBreakerLayer::new(2, Duration::from_secs(10)));
    for _ in 0..3 {
        faults.fail(Op::Check, 1, connection_error);
        source.check().await.unwrap_err();
        assert_eq!(source.circuit().consecutive_failures(), 1);
        source.check().await.unwrap();
        assert_eq!(source.circuit().consecutive_failures(), 0);
    }
    assert_eq!(source.state(), CircuitState::Closed);
}

#[tokio::test(start_paused = true)]
async fn outer_retry_waits_out_an_open_circuit() {
    let (_store, source, _sink, faults) = setup();
    let cool_down = Duration::from_secs(20);
    faults.fail(Op::Check, 1, connection_error);
    let source = source
        .layer(CircuitBreakerLayer::new(1, cool_down))
        .layer(quick_retry(3).with_max_elapsed(Duration::from_secs(60)));
    let started = Instant::now();
    // Attempt 1 fails and opens the circuit; attempt 2, after the short backoff, meets the open
    // circuit and is told to wait the cool-down; attempt 3 is the probe, which succeeds.
    source.check().await.unwrap();
    assert!(started.elapsed() >= cool_down, "{:?}", started.elapsed());
    assert_eq!(faults.calls(Op::Check), 2);
    assert_eq!(source.inner().state(), CircuitState::Closed);
}

// ---------------------------------------------------------------------------------------------
// Timeouts
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn hanging_check_times_out() {
    let (_store, source, _sink, faults) = setup();
    faults.hang(Op::Check, 1);
    let source = source.layer(TimeoutLayer::new(Duration::from_secs(5)));
    let started = Instant::now();
    let e = source.check().await.unwrap_err();
    assert!(started.elapsed() >= Duration::from_secs(5));
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert_eq!(e.status(), ErrorStatus::Temporary);
    assert_eq!(e.operation(), Some("check"));
    assert_eq!(e.connector(), Some("memory"));
    assert_eq!(context(&e, "timeout"), Some("5s"));
    // The next call does not hang.
    source.check().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn per_operation_timeouts() {
    let (_store, source, _sink, faults) = setup();
    let source = source.layer(
        TimeoutLayer::none()
            .with_discover_timeout(Duration::from_secs(1))
            .with_plan_timeout(Duration::from_secs(2))
            .with_open_timeout(Duration::from_secs(3)),
    );
    faults.hang(Op::Discover, 1);
    faults.hang(Op::Plan, 1);
    faults.hang(Op::Read, 1);
    let e = source.discover().await.unwrap_err();
    assert_eq!(
        (e.kind(), e.operation()),
        (ErrorKind::Timeout, Some("discover"))
    );
    assert_eq!(context(&e, "timeout"), Some("1s"));
    let e = source.plan(&request(), 1).await.unwrap_err();
    assert_eq!(
        (e.kind(), e.operation()),
        (ErrorKind::Timeout, Some("plan"))
    );
    assert_eq!(context(&e, "timeout"), Some("2s"));
    let e = read_ids(&source).await.unwrap_err();
    assert_eq!(
        (e.kind(), e.operation()),
        (ErrorKind::Timeout, Some("read"))
    );
    assert!(e.to_string().contains("the read stream to open"), "{e}");
    assert_eq!(context(&e, "timeout"), Some("3s"));

    // No deadline for check: a hanging check is left hanging (only the test's own bound ends it).
    faults.hang(Op::Check, 1);
    let bounded = tokio::time::timeout(Duration::from_secs(3600), source.check()).await;
    assert!(bounded.is_err(), "check has no deadline: {bounded:?}");
}

#[tokio::test(start_paused = true)]
async fn idle_stream_times_out_and_ends() {
    let (_store, source, _sink, faults) = setup();
    faults.hang_stream(2, 1);
    let source = source.layer(TimeoutLayer::new(Duration::from_secs(5)));
    let mut stream = source.read(Partition::single(request())).await.unwrap();
    let schema = stream.schema();
    let mut rows = 0;
    let error = loop {
        match stream.next().await {
            Some(Ok(batch)) => rows += batch.num_rows(),
            Some(Err(e)) => break e,
            None => panic!("the stream ended without the idle timeout"),
        }
    };
    assert_eq!(rows, 2 * BATCH_ROWS);
    assert_eq!(error.kind(), ErrorKind::Timeout);
    assert_eq!(error.operation(), Some("read"));
    assert!(error.to_string().contains("the next batch"), "{error}");
    assert!(stream.next().await.is_none());
    assert_eq!(stream.schema(), schema);
}

#[tokio::test(start_paused = true)]
async fn idle_timeout_is_per_batch_not_per_stream() {
    let (_store, source, _sink, faults) = setup();
    // 5 batches, 3 s apart: 15 s in all, but never 5 s without a batch.
    faults.slow_stream(Duration::from_secs(3), 1);
    let source = source.layer(TimeoutLayer::new(Duration::from_secs(5)));
    let started = Instant::now();
    let (ids, error) = read_ids(&source).await.unwrap();
    assert!(error.is_none(), "{error:?}");
    assert_eq!(assert_unique(&ids), ROWS as usize);
    assert!(started.elapsed() >= Duration::from_secs(15));

    // 6 s between batches is too slow.
    faults.slow_stream(Duration::from_secs(6), 1);
    let (ids, error) = read_ids(&source).await.unwrap();
    assert!(ids.is_empty());
    assert_eq!(error.unwrap().kind(), ErrorKind::Timeout);
}

#[tokio::test(start_paused = true)]
async fn a_slow_consumer_is_not_an_idle_stream() {
    let (_store, source, _sink, faults) = setup();
    faults.slow_stream(Duration::from_secs(1), 1);
    let source = source.layer(TimeoutLayer::new(Duration::from_secs(5)));
    let mut stream = source.read(Partition::single(request())).await.unwrap();
    let mut rows = 0;
    // The consumer takes a minute before every poll; the source answers within a second.
    loop {
        tokio::time::sleep(Duration::from_secs(60)).await;
        match stream.next().await {
            Some(batch) => rows += batch.unwrap().num_rows(),
            None => break,
        }
    }
    assert_eq!(rows, ROWS as usize);
}

#[tokio::test(start_paused = true)]
async fn timeouts_under_retry_are_retried() {
    let (_store, source, _sink, faults) = setup();
    let source = source
        .layer(TimeoutLayer::new(Duration::from_secs(5)))
        .layer(quick_retry(3));

    faults.hang(Op::Check, 1);
    source.check().await.unwrap();
    assert_eq!(faults.calls(Op::Check), 2);

    // A hung open, then a stream that hangs before its first batch: both retried.
    faults.hang(Op::Read, 1);
    faults.hang_stream(0, 1);
    let (ids, error) = read_ids(&source).await.unwrap();
    assert!(error.is_none(), "{error:?}");
    assert_eq!(faults.calls(Op::Read), 3);
    assert_eq!(assert_unique(&ids), ROWS as usize);

    // A stream that goes idle after its first batch: passed through, not retried.
    faults.hang_stream(1, 1);
    let (ids, error) = read_ids(&source).await.unwrap();
    let e = error.expect("idle timeout");
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert_eq!(e.status(), ErrorStatus::Persistent);
    assert_eq!(faults.calls(Op::Read), 4);
    assert_eq!(assert_unique(&ids), BATCH_ROWS);
}

// ---------------------------------------------------------------------------------------------
// Sinks
// ---------------------------------------------------------------------------------------------

fn stored_ids(store: &MemoryStore, table: &str) -> Vec<i64> {
    store
        .get(table)
        .map(|t| {
            t.batches
                .iter()
                .flat_map(|b| {
                    b.column(0)
                        .as_any()
                        .downcast_ref::<Int64Array>()
                        .unwrap()
                        .values()
                        .to_vec()
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(start_paused = true)]
async fn sink_check_is_retried_but_write_is_not() {
    let (store, _source, sink, faults) = setup();
    let sink = sink.layer(quick_retry(5));

    faults.fail(Op::Check, 2, connection_error);
    sink.check().await.unwrap();
    assert_eq!(faults.calls(Op::Check), 3);

    faults.fail(Op::Write, 1, connection_error);
    let e = sink
        .write_batch(WriteRequest::append("out"), ids_batch(0..5))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connection);
    assert_eq!(e.status(), ErrorStatus::Temporary);
    assert_eq!(faults.calls(Op::Write), 1);
    assert!(store.get("out").is_none());

    let report = sink
        .write_batch(WriteRequest::append("out"), ids_batch(0..5))
        .await
        .unwrap();
    assert_eq!(report.rows, 5);
    assert_eq!(stored_ids(&store, "out"), vec![0, 1, 2, 3, 4]);
}

#[tokio::test(start_paused = true)]
async fn sink_write_and_check_time_out() {
    let (store, _source, sink, faults) = setup();
    let sink = sink.layer(
        TimeoutLayer::none()
            .with_check_timeout(Duration::from_secs(1))
            .with_write_timeout(Duration::from_secs(2)),
    );
    faults.hang(Op::Check, 1);
    let e = sink.check().await.unwrap_err();
    assert_eq!(
        (e.kind(), e.operation()),
        (ErrorKind::Timeout, Some("check"))
    );
    faults.hang(Op::Write, 1);
    let e = sink
        .write_batch(WriteRequest::append("out"), ids_batch(0..3))
        .await
        .unwrap_err();
    assert_eq!(
        (e.kind(), e.operation()),
        (ErrorKind::Timeout, Some("write"))
    );
    assert_eq!(context(&e, "timeout"), Some("2s"));
    assert!(store.get("out").is_none());
}

#[tokio::test(start_paused = true)]
async fn one_circuit_guards_the_source_and_the_sink_of_a_peer() {
    let (_store, source, sink, faults) = setup();
    let breaker = CircuitBreakerLayer::new(2, Duration::from_secs(10));
    let source = source.layer(&breaker);
    let sink = sink.layer(&breaker);

    faults.fail(Op::Write, 2, connection_error);
    for _ in 0..2 {
        let e = sink
            .write_batch(WriteRequest::append("out"), ids_batch(0..3))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Connection);
    }
    assert_eq!(breaker.circuit().state(), CircuitState::Open);
    assert_eq!(
        source.check().await.unwrap_err().kind(),
        ErrorKind::CircuitOpen
    );
    assert_eq!(
        sink.check().await.unwrap_err().kind(),
        ErrorKind::CircuitOpen
    );
    assert_eq!(faults.calls(Op::Check), 0);
    assert_eq!(faults.calls(Op::Write), 2);
}

// ---------------------------------------------------------------------------------------------
// Composition
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn full_stack_forwards_name_capabilities_and_data() {
    let (store, source, sink, faults) = setup();
    let breaker = CircuitBreakerLayer::new(3, Duration::from_secs(30));
    let stack = |s: FaultySource| {
        s.layer(TimeoutLayer::new(Duration::from_secs(5)))
            .layer(quick_retry(3))
            .layer(&breaker)
    };
    let source = stack(source);
    let sink = sink
        .layer(TimeoutLayer::new(Duration::from_secs(5)))
        .layer(quick_retry(3))
        .layer(&breaker);

    assert_eq!(source.name(), "memory");
    assert_eq!(source.capabilities(), store.source().capabilities());
    assert_eq!(Sink::name(&sink), "memory");
    assert_eq!(sink.capabilities(), store.sink().capabilities());

    faults.fail(Op::Plan, 1, connection_error);
    faults.fail_stream(0, 1, connection_error);
    let batches = source.read_all(request()).await.unwrap();
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    assert_eq!(rows, ROWS as usize);
    assert_eq!(faults.calls(Op::Plan), 2);
    assert_eq!(faults.calls(Op::Read), 2);
    assert_eq!(source.state(), CircuitState::Closed);

    // Layers wrap trait objects too.
    let dynamic: Arc<dyn Source> = Arc::new(store.source());
    let dynamic = dynamic.layer(quick_retry(2)).layer(&breaker);
    assert_eq!(
        dynamic.read_all(request()).await.unwrap().len(),
        batches.len()
    );

    let schema = batches[0].schema();
    sink.write_batches(WriteRequest::overwrite("copy"), schema, batches)
        .await
        .unwrap();
    assert_eq!(stored_ids(&store, "copy"), (0..ROWS).collect::<Vec<_>>());
}
