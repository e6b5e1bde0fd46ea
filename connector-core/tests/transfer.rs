//! Transfers between in-memory backends, with wrappers that slow down, fail or reshape
//! partitions.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::{AsArray, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use async_trait::async_trait;
use connector_core::stream::RecordBatchStreamAdapter;
use connector_core::transfer::{Progress, batch_bytes};
use connector_core::{
    DatasetInfo, Error, ErrorKind, MemoryStore, Partition, ReadRequest, Result,
    SendableRecordBatchStream, Sink, SinkCapabilities, Source, SourceCapabilities, SourceExt,
    TransferOptions, WriteReport, WriteRequest, transfer,
};
use futures::StreamExt;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("label", DataType::Utf8, true),
    ]))
}

fn rows(ids: std::ops::Range<i64>) -> RecordBatch {
    let labels: StringArray = ids.clone().map(|i| Some(format!("row-{i}"))).collect();
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int64Array::from_iter_values(ids)),
            Arc::new(labels),
        ],
    )
    .unwrap()
}

/// A store with table `src` of `n` rows (ids `0..n`) in batches of `batch` rows.
fn store_with(n: i64, batch: i64) -> MemoryStore {
    let store = MemoryStore::new();
    let batches = (0..n)
        .step_by(batch as usize)
        .map(|s| rows(s..(s + batch).min(n)))
        .collect();
    store.put("src", schema(), batches);
    store
}

fn ids_of(store: &MemoryStore, table: &str) -> Vec<i64> {
    let t = store.get(table).expect("table exists");
    t.batches
        .iter()
        .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_rows_across_eight_partitions_arrive_exactly_once() {
    let store = store_with(100_000, 1_000);
    let summary = transfer(
        Arc::new(store.source()),
        ReadRequest::dataset("src").with_batch_rows(700),
        &store.sink(),
        WriteRequest::overwrite("dst"),
        TransferOptions::default()
            .with_max_partitions(8)
            .with_concurrency(3),
    )
    .await
    .unwrap();
    let mut ids = ids_of(&store, "dst");
    ids.sort_unstable();
    assert_eq!(ids, (0..100_000).collect::<Vec<_>>());
    assert_eq!(summary.partitions, 8);
    assert_eq!(summary.rows_read, 100_000);
    assert_eq!(summary.rows_sent, 100_000);
    assert_eq!(summary.rows_written, 100_000);
    assert!(
        summary.batches >= 143,
        "batches of at most 700 rows: {}",
        summary.batches
    );
    // The labels travelled with their ids.
    let t = store.get("dst").unwrap();
    for b in &t.batches {
        let id = b.column(0).as_primitive::<Int64Type>();
        let label = b.column(1).as_string::<i32>();
        for i in 0..b.num_rows() {
            assert_eq!(label.value(i), format!("row-{}", id.value(i)));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn progress_is_reported_and_the_last_report_equals_the_summary() {
    let store = store_with(20_000, 500);
    let seen: Arc<Mutex<Vec<Progress>>> = Arc::default();
    let recorder = seen.clone();
    let (options, watch) = TransferOptions::default()
        .with_max_partitions(4)
        .with_concurrency(2)
        .with_progress(move |p| recorder.lock().unwrap().push(p.clone()))
        .watch_progress();
    let summary = transfer(
        Arc::new(store.source()),
        ReadRequest::dataset("src"),
        &store.sink(),
        WriteRequest::append("dst"),
        options,
    )
    .await
    .unwrap();
    let seen = seen.lock().unwrap();
    assert!(
        seen.len() >= 40,
        "one report per batch and a final one: {}",
        seen.len()
    );
    assert!(seen.windows(2).all(|w| w[0].rows_sent <= w[1].rows_sent));
    assert!(seen[..seen.len() - 1].iter().all(|p| !p.finished));
    let last = seen.last().unwrap();
    assert!(last.finished);
    assert_eq!(last.rows_read, summary.rows_read);
    assert_eq!(last.rows_sent, summary.rows_sent);
    assert_eq!(last.rows_sent, 20_000);
    assert_eq!(last.bytes, summary.bytes);
    assert_eq!(last.batches, summary.batches);
    assert_eq!(last.partitions_total, summary.partitions);
    assert_eq!(last.partitions_done, summary.partitions);
    assert_eq!(last.elapsed, summary.elapsed);
    assert!((last.rows_per_second - summary.rows_per_second).abs() < f64::EPSILON);
    assert_eq!(&*watch.borrow(), last);
    assert_eq!(summary.report.rows, 20_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn progress_interval_throttles_reports_but_keeps_the_final_one() {
    let store = store_with(20_000, 500);
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c = count.clone();
    transfer(
        Arc::new(store.source()),
        ReadRequest::dataset("src"),
        &store.sink(),
        WriteRequest::append("dst"),
        TransferOptions::default()
            .with_progress_interval(Duration::from_hours(1))
            .with_progress(move |_| {
                c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }),
    )
    .await
    .unwrap();
    // The first batch and the final report.
    assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 2);
}

/// Passes the stream on to the inner sink, sleeping before each batch.
#[derive(Debug)]
struct SlowSink {
    inner: Arc<dyn Sink>,
    delay: Duration,
}

#[async_trait]
impl Sink for SlowSink {
    fn name(&self) -> &'static str {
        "slow"
    }
    fn capabilities(&self) -> SinkCapabilities {
        self.inner.capabilities()
    }
    async fn check(&self) -> Result<()> {
        self.inner.check().await
    }
    async fn write(
        &self,
        request: WriteRequest,
        data: SendableRecordBatchStream,
    ) -> Result<WriteReport> {
        let schema = data.schema();
        let delay = self.delay;
        let slowed = data.then(move |b| async move {
            tokio::time::sleep(delay).await;
            b
        });
        self.inner
            .write(request, RecordBatchStreamAdapter::boxed(schema, slowed))
            .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_budget_smaller_than_one_batch_does_not_deadlock() {
    let store = store_with(10_000, 1_000);
    let summary = tokio::time::timeout(
        Duration::from_secs(30),
        transfer(
            Arc::new(store.source()),
            ReadRequest::dataset("src"),
            &store.sink(),
            WriteRequest::append("dst"),
            TransferOptions::default()
                .with_max_partitions(8)
                .with_concurrency(4)
                .with_memory_budget_bytes(1),
        ),
    )
    .await
    .expect("the transfer finished")
    .unwrap();
    assert_eq!(summary.rows_written, 10_000);
    let max_batch = max_batch_bytes(&store);
    // With a one-byte budget only one batch can wait at a time.
    assert!(summary.peak_queued_bytes <= max_batch as u64);
    assert_eq!(ids_of(&store, "dst").len(), 10_000);
}

fn max_batch_bytes(store: &MemoryStore) -> usize {
    store
        .get("src")
        .unwrap()
        .batches
        .iter()
        .map(batch_bytes)
        .max()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn queued_bytes_stay_within_budget_plus_one_batch() {
    let store = store_with(40_000, 1_000);
    let max_batch = max_batch_bytes(&store);
    let slow = SlowSink {
        inner: Arc::new(store.sink()),
        delay: Duration::from_millis(2),
    };
    let budget = 3 * max_batch;
    let run = |budget: usize| {
        transfer(
            Arc::new(store.source()),
            ReadRequest::dataset("src"),
            &slow,
            WriteRequest::overwrite("dst"),
            TransferOptions::default()
                .with_max_partitions(8)
                .with_concurrency(8)
                .with_memory_budget_bytes(budget),
        )
    };
    let bounded = run(budget).await.unwrap();
    assert_eq!(bounded.rows_written, 40_000);
    assert!(
        bounded.peak_queued_bytes <= (budget + max_batch) as u64,
        "peak {} > budget {budget} + batch {max_batch}",
        bounded.peak_queued_bytes
    );
    assert!(bounded.peak_queued_bytes >= max_batch as u64);
    // Without a tight budget, eight fast readers queue more than the tight budget allows: the
    // bound above is the budget's doing.
    let unbounded = run(usize::MAX).await.unwrap();
    assert!(
        unbounded.peak_queued_bytes > (budget + max_batch) as u64,
        "unbounded peak {} should exceed {}",
        unbounded.peak_queued_bytes,
        budget + max_batch
    );
}

/// Wraps a source; partition `fail_at` yields one batch and then an error (or fails to open).
#[derive(Debug)]
struct FailingPartition {
    inner: Arc<dyn Source>,
    fail_at: usize,
    at_open: bool,
}

#[async_trait]
impl Source for FailingPartition {
    fn name(&self) -> &'static str {
        "failing"
    }
    fn capabilities(&self) -> SourceCapabilities {
        self.inner.capabilities()
    }
    async fn check(&self) -> Result<()> {
        self.inner.check().await
    }
    async fn discover(&self) -> Result<Vec<DatasetInfo>> {
        self.inner.discover().await
    }
    async fn plan(&self, request: &ReadRequest, max_partitions: usize) -> Result<Vec<Partition>> {
        self.inner.plan(request, max_partitions).await
    }
    async fn read(&self, partition: Partition) -> Result<SendableRecordBatchStream> {
        if partition.index != self.fail_at {
            return self.inner.read(partition).await;
        }
        let boom = || {
            Error::new(ErrorKind::Connection, "connection reset by peer")
                .with_connector("failing")
                .with_operation("read")
        };
        if self.at_open {
            return Err(boom());
        }
        let s = self.inner.read(partition).await?;
        let schema = s.schema();
        let failing = s
            .take(1)
            .chain(futures::stream::once(async move { Err(boom()) }));
        Ok(RecordBatchStreamAdapter::boxed(schema, failing))
    }
}

async fn failing_transfer_leaves_target_unchanged(fail_at: usize, at_open: bool) {
    let store = store_with(50_000, 1_000);
    store.put("dst", schema(), vec![rows(-5..0)]);
    let source = FailingPartition {
        inner: Arc::new(store.source()),
        fail_at,
        at_open,
    };
    let err = transfer(
        Arc::new(source),
        ReadRequest::dataset("src"),
        &store.sink(),
        WriteRequest::overwrite("dst"),
        TransferOptions::default()
            .with_max_partitions(8)
            .with_concurrency(3),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
    assert_eq!(err.connector(), Some("failing"));
    assert_eq!(err.operation(), Some("read"));
    assert!(
        err.context()
            .iter()
            .any(|(k, v)| *k == "partition" && *v == fail_at.to_string()),
        "{err:?}"
    );
    assert_eq!(ids_of(&store, "dst"), (-5..0).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_partition_fails_the_transfer_and_the_atomic_target_is_unchanged() {
    failing_transfer_leaves_target_unchanged(5, false).await;
    failing_transfer_leaves_target_unchanged(0, false).await;
    failing_transfer_leaves_target_unchanged(7, true).await;
    failing_transfer_leaves_target_unchanged(0, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_limit_holds_across_partitions() {
    let store = store_with(10_000, 300);
    for limit in [0_usize, 1, 1_234, 9_999, 10_000, 50_000] {
        let summary = transfer(
            Arc::new(store.source()),
            ReadRequest::dataset("src").with_limit(limit),
            &store.sink(),
            WriteRequest::overwrite("dst"),
            TransferOptions::default()
                .with_max_partitions(8)
                .with_concurrency(3),
        )
        .await
        .unwrap();
        let want = limit.min(10_000);
        let ids = ids_of(&store, "dst");
        assert_eq!(ids.len(), want, "limit {limit}");
        let distinct: HashSet<i64> = ids.iter().copied().collect();
        assert_eq!(distinct.len(), want, "limit {limit}: duplicates");
        assert!(ids.iter().all(|i| (0..10_000).contains(i)));
        assert_eq!(summary.rows_read, want as u64);
        assert_eq!(summary.rows_written, want as u64);
    }
}

/// Renames the columns of one partition.
#[derive(Debug)]
struct DriftingPartition(Arc<dyn Source>);

#[async_trait]
impl Source for DriftingPartition {
    fn name(&self) -> &'static str {
        "drifting"
    }
    fn capabilities(&self) -> SourceCapabilities {
        self.0.capabilities()
    }
    async fn check(&self) -> Result<()> {
        self.0.check().await
    }
    async fn discover(&self) -> Result<Vec<DatasetInfo>> {
        self.0.discover().await
    }
    async fn plan(&self, request: &ReadRequest, max_partitions: usize) -> Result<Vec<Partition>> {
        self.0.plan(request, max_partitions).await
    }
    async fn read(&self, partition: Partition) -> Result<SendableRecordBatchStream> {
        let odd = partition.index == 2;
        let s = self.0.read(partition).await?;
        if !odd {
            return Ok(s);
        }
        let renamed = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("other", DataType::Utf8, true),
        ]));
        let r = renamed.clone();
        Ok(RecordBatchStreamAdapter::boxed(
            renamed,
            s.map(move |b| b.map(|b| b.with_schema(r.clone()).unwrap())),
        ))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn partitions_with_different_schemas_are_a_schema_mismatch() {
    let store = store_with(10_000, 1_000);
    store.put("dst", schema(), vec![rows(-3..0)]);
    let err = transfer(
        Arc::new(DriftingPartition(Arc::new(store.source()))),
        ReadRequest::dataset("src"),
        &store.sink(),
        WriteRequest::overwrite("dst"),
        TransferOptions::default().with_max_partitions(4),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::SchemaMismatch, "{err}");
    assert!(err.message().contains("other"), "{err}");
    assert_eq!(ids_of(&store, "dst"), vec![-3, -2, -1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_transform_reshapes_every_batch_and_its_errors_fail_the_transfer() {
    let store = store_with(5_000, 1_000);
    let doubled = |b: RecordBatch| -> Result<RecordBatch> {
        let ids = b.column(0).as_primitive::<Int64Type>();
        let twice: Int64Array = ids.iter().map(|v| v.map(|v| v * 2)).collect();
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("twice", DataType::Int64, true),
        ]));
        Ok(RecordBatch::try_new(
            schema,
            vec![b.column(0).clone(), Arc::new(twice)],
        )?)
    };
    let summary = transfer(
        Arc::new(store.source()),
        ReadRequest::dataset("src"),
        &store.sink(),
        WriteRequest::overwrite("dst"),
        TransferOptions::default()
            .with_max_partitions(4)
            .with_transform(doubled),
    )
    .await
    .unwrap();
    assert_eq!(summary.rows_written, 5_000);
    let out = store
        .source()
        .read_batch(ReadRequest::dataset("dst"))
        .await
        .unwrap();
    assert_eq!(out.schema().field(1).name(), "twice");
    let ids = out.column(0).as_primitive::<Int64Type>();
    let twice = out.column(1).as_primitive::<Int64Type>();
    assert!((0..out.num_rows()).all(|i| twice.value(i) == ids.value(i) * 2));

    let failing = |b: RecordBatch| -> Result<RecordBatch> {
        let ids = b.column(0).as_primitive::<Int64Type>();
        if ids.iter().any(|v| v == Some(4_321)) {
            return Err(Error::new(ErrorKind::InvalidInput, "id 4321 is cursed"));
        }
        Ok(b)
    };
    let err = transfer(
        Arc::new(store.source()),
        ReadRequest::dataset("src"),
        &store.sink(),
        WriteRequest::overwrite("dst"),
        TransferOptions::default()
            .with_max_partitions(4)
            .with_transform(failing),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(err.operation(), Some("transform"));
    assert_eq!(err.connector(), Some("transfer"));
    // The earlier successful transfer's rows are still there.
    assert_eq!(ids_of(&store, "dst").len(), 5_000);
}

#[tokio::test]
async fn a_missing_dataset_fails_at_plan_with_not_found() {
    let store = MemoryStore::new();
    let err = transfer(
        Arc::new(store.source()),
        ReadRequest::dataset("nope"),
        &store.sink(),
        WriteRequest::append("dst"),
        TransferOptions::default(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(err.operation(), Some("plan"));
    assert!(store.get("dst").is_none());
}

/// Returns success after reading a single batch.
#[derive(Debug)]
struct QuitsEarly;

#[async_trait]
impl Sink for QuitsEarly {
    fn name(&self) -> &'static str {
        "quits-early"
    }
    fn capabilities(&self) -> SinkCapabilities {
        SinkCapabilities::none().with_append()
    }
    async fn check(&self) -> Result<()> {
        Ok(())
    }
    async fn write(
        &self,
        _request: WriteRequest,
        mut data: SendableRecordBatchStream,
    ) -> Result<WriteReport> {
        let b = data.next().await.transpose()?;
        Ok(WriteReport::new(
            b.map_or(0, |b| b.num_rows() as u64),
            0,
            Duration::ZERO,
        ))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_that_stops_reading_early_is_an_error() {
    let store = store_with(10_000, 1_000);
    let err = transfer(
        Arc::new(store.source()),
        ReadRequest::dataset("src"),
        &QuitsEarly,
        WriteRequest::append("dst"),
        TransferOptions::default(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Internal);
    assert_eq!(err.connector(), Some("quits-early"));
}

#[tokio::test]
async fn an_empty_source_writes_an_empty_target() {
    let store = MemoryStore::new();
    store.put("src", schema(), Vec::new());
    let summary = transfer(
        Arc::new(store.source()),
        ReadRequest::dataset("src"),
        &store.sink(),
        WriteRequest::overwrite("dst"),
        TransferOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(summary.rows_written, 0);
    let t = store.get("dst").unwrap();
    assert_eq!(t.schema, schema());
    assert_eq!(
        t.batches.iter().map(RecordBatch::num_rows).sum::<usize>(),
        0
    );
}

/// A source with a pool of `size` connections: an open partition stream holds one until it ends.
#[derive(Debug)]
struct Pooled {
    inner: Arc<dyn Source>,
    pool: Arc<tokio::sync::Semaphore>,
    reads: Arc<std::sync::atomic::AtomicUsize>,
}

#[async_trait]
impl Source for Pooled {
    fn name(&self) -> &'static str {
        "pooled"
    }
    fn capabilities(&self) -> SourceCapabilities {
        self.inner.capabilities()
    }
    async fn check(&self) -> Result<()> {
        self.inner.check().await
    }
    async fn discover(&self) -> Result<Vec<DatasetInfo>> {
        self.inner.discover().await
    }
    async fn plan(&self, request: &ReadRequest, max_partitions: usize) -> Result<Vec<Partition>> {
        self.inner.plan(request, max_partitions).await
    }
    async fn read(&self, partition: Partition) -> Result<SendableRecordBatchStream> {
        self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let conn = self
            .pool
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| Error::internal(e.to_string()))?;
        let s = self.inner.read(partition).await?;
        let schema = s.schema();
        // The connection goes back to the pool when the stream is dropped.
        let held = s.map(move |b| {
            let _ = &conn;
            b
        });
        Ok(RecordBatchStreamAdapter::boxed(schema, held))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pool_as_small_as_the_concurrency_does_not_deadlock() {
    let store = store_with(20_000, 1_000);
    for concurrency in [1, 2] {
        let source = Pooled {
            inner: Arc::new(store.source()),
            pool: Arc::new(tokio::sync::Semaphore::new(concurrency)),
            reads: Arc::default(),
        };
        let summary = tokio::time::timeout(
            Duration::from_secs(30),
            transfer(
                Arc::new(source),
                ReadRequest::dataset("src"),
                &store.sink(),
                WriteRequest::overwrite("dst"),
                TransferOptions::default()
                    .with_max_partitions(8)
                    .with_concurrency(concurrency)
                    .with_memory_budget_bytes(1),
            ),
        )
        .await
        .expect("no deadlock")
        .unwrap();
        assert_eq!(summary.rows_written, 20_000);
    }
}

#[tokio::test]
async fn an_unsupported_write_mode_is_refused_before_reading() {
    let store = store_with(1_000, 100);
    let reads = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let source = Pooled {
        inner: Arc::new(store.source()),
        pool: Arc::new(tokio::sync::Semaphore::new(4)),
        reads: reads.clone(),
    };
    let err = transfer(
        Arc::new(source),
        ReadRequest::dataset("src"),
        &QuitsEarly,
        WriteRequest::upsert("dst", ["id"]),
        TransferOptions::default(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert_eq!(reads.load(std::sync::atomic::Ordering::SeqCst), 0);
}

/// Partition 1 fails after a few milliseconds; every other partition streams forever, counting
/// how many of its streams are still alive.
#[derive(Debug, Default)]
struct EndlessButOne {
    alive: Arc<std::sync::atomic::AtomicIsize>,
    opened: Arc<std::sync::atomic::AtomicUsize>,
}

/// Decrements `alive` when the stream holding it is dropped.
struct AliveGuard(Arc<std::sync::atomic::AtomicIsize>);

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[async_trait]
impl Source for EndlessButOne {
    fn name(&self) -> &'static str {
        "endless"
    }
    fn capabilities(&self) -> SourceCapabilities {
        SourceCapabilities::none().with_partitioned_reads()
    }
    async fn check(&self) -> Result<()> {
        Ok(())
    }
    async fn discover(&self) -> Result<Vec<DatasetInfo>> {
        Ok(Vec::new())
    }
    async fn plan(&self, request: &ReadRequest, max_partitions: usize) -> Result<Vec<Partition>> {
        Ok((0..max_partitions)
            .map(|index| Partition {
                index,
                count: max_partitions,
                ..Partition::single(request.clone())
            })
            .collect())
    }
    async fn read(&self, partition: Partition) -> Result<SendableRecordBatchStream> {
        self.opened
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if partition.index == 1 {
            let fail = futures::stream::once(async {
                tokio::time::sleep(Duration::from_millis(30)).await;
                Err(Error::new(ErrorKind::Query, "partition 1 broke").with_connector("endless"))
            });
            return Ok(RecordBatchStreamAdapter::boxed(schema(), fail));
        }
        self.alive.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let guard = Arc::new(AliveGuard(self.alive.clone()));
        let endless = futures::stream::iter(0..).then(move |i: i64| {
            let _keep = guard.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(1)).await;
                Ok(rows(i * 10..i * 10 + 10))
            }
        });
        Ok(RecordBatchStreamAdapter::boxed(schema(), endless))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_partition_cancels_the_others() {
    let store = MemoryStore::new();
    let source = Arc::new(EndlessButOne::default());
    let err = tokio::time::timeout(
        Duration::from_secs(30),
        transfer(
            source.clone(),
            ReadRequest::dataset("x"),
            &store.sink(),
            WriteRequest::overwrite("dst"),
            TransferOptions::default()
                .with_max_partitions(4)
                .with_concurrency(4),
        ),
    )
    .await
    .expect("the transfer ends although three partitions never do")
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Query);
    assert_eq!(err.message(), "partition 1 broke");
    assert!(source.opened.load(std::sync::atomic::Ordering::SeqCst) >= 2);
    // Aborted tasks drop their streams shortly after.
    let mut alive = 1;
    for _ in 0..100 {
        alive = source.alive.load(std::sync::atomic::Ordering::SeqCst);
        if alive == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        alive, 0,
        "partition streams still alive after the transfer failed"
    );
    assert!(store.get("dst").is_none());
}

/// Counts partition streams open at once; each batch takes a millisecond.
#[derive(Debug, Default)]
struct Gauge {
    inner: Option<Arc<dyn Source>>,
    open: Arc<std::sync::atomic::AtomicIsize>,
    peak: Arc<std::sync::atomic::AtomicIsize>,
}

#[async_trait]
impl Source for Gauge {
    fn name(&self) -> &'static str {
        "gauge"
    }
    fn capabilities(&self) -> SourceCapabilities {
        self.inner.as_ref().unwrap().capabilities()
    }
    async fn check(&self) -> Result<()> {
        Ok(())
    }
    async fn discover(&self) -> Result<Vec<DatasetInfo>> {
        self.inner.as_ref().unwrap().discover().await
    }
    async fn plan(&self, request: &ReadRequest, max_partitions: usize) -> Result<Vec<Partition>> {
        self.inner
            .as_ref()
            .unwrap()
            .plan(request, max_partitions)
            .await
    }
    async fn read(&self, partition: Partition) -> Result<SendableRecordBatchStream> {
        let now = self.open.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        self.peak
            .fetch_max(now, std::sync::atomic::Ordering::SeqCst);
        let guard = Arc::new(AliveGuard(self.open.clone()));
        let s = self.inner.as_ref().unwrap().read(partition).await?;
        let schema = s.schema();
        let slow = s.then(move |b| {
            let _keep = guard.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(1)).await;
                b
            }
        });
        Ok(RecordBatchStreamAdapter::boxed(schema, slow))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn at_most_concurrency_partitions_are_read_at_once() {
    let store = store_with(16_000, 250);
    for concurrency in [1, 3] {
        let gauge = Arc::new(Gauge {
            inner: Some(Arc::new(store.source())),
            ..Gauge::default()
        });
        let summary = transfer(
            gauge.clone(),
            ReadRequest::dataset("src"),
            &store.sink(),
            WriteRequest::overwrite("dst"),
            TransferOptions::default()
                .with_max_partitions(8)
                .with_concurrency(concurrency),
        )
        .await
        .unwrap();
        assert_eq!(summary.rows_written, 16_000);
        let peak = gauge.peak.load(std::sync::atomic::Ordering::SeqCst);
        assert_eq!(peak, concurrency as isize, "concurrency {concurrency}");
    }
}
