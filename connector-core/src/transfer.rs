//! Transfers from any [`Source`] to any [`Sink`]: [`transfer()`].
//!
//! A transfer plans the read into partitions, reads up to
//! [`TransferOptions::concurrency`] of them at once on their own tasks, and merges their batches
//! into **one** stream handed to one [`Sink::write`] call (so an overwrite is one write, and an
//! atomic sink commits or rolls back the whole transfer).
//!
//! # Memory
//! Batches waiting between the readers and the sink are bounded by
//! [`TransferOptions::memory_budget_bytes`]: a reader acquires its batch's size (as measured by
//! [`batch_bytes`]) from a byte semaphore before queueing it, and the sink's stream releases it
//! when it takes the batch. A batch larger than the whole budget still passes: it waits until
//! nothing else is queued and then goes alone. So the bytes queued never exceed the budget, or
//! one batch when a batch is larger than the budget. (Each reader additionally holds the one batch
//! it is waiting to queue; the sink holds what it has taken.)
//!
//! # Failure
//! An error in any partition stops every other partition, ends the sink's stream with an error
//! (an atomic sink leaves its target unchanged) and fails the transfer with the partition's
//! error. All partitions must have the same schema (names and types), else the transfer fails
//! with [`ErrorKind::SchemaMismatch`].

use crate::drift::describe_schema as describe;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use futures::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::task::JoinSet;

use crate::connector::{Sink, Source};
use crate::error::{Error, ErrorKind, Result};
use crate::request::{Partition, ReadRequest, WriteReport, WriteRequest};
use crate::stream::{RecordBatchStreamAdapter, SendableRecordBatchStream};

const CONNECTOR: &str = "transfer";

/// Called with the progress of a transfer.
pub type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;

/// A per-batch transformation applied between the source and the sink. It must accept an empty
/// batch (the transfer derives the sink's schema from it) and return batches of one schema.
pub type BatchTransform = Arc<dyn Fn(RecordBatch) -> Result<RecordBatch> + Send + Sync>;

/// How far a transfer has come.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Progress {
    /// Rows taken from the source (after the total limit, before the transformation).
    pub rows_read: u64,
    /// Rows handed to the sink (after the transformation).
    pub rows_sent: u64,
    /// Arrow bytes handed to the sink, as measured by [`batch_bytes`].
    pub bytes: u64,
    /// Batches handed to the sink.
    pub batches: u64,
    /// Partitions read to the end.
    pub partitions_done: usize,
    /// Partitions planned.
    pub partitions_total: usize,
    /// Time since the transfer started.
    pub elapsed: Duration,
    /// `rows_sent` per second of `elapsed`.
    pub rows_per_second: f64,
    /// True in the last report, after the sink finished.
    pub finished: bool,
}

/// Options of a [`transfer()`]. Build with [`Default`] and the `with_*` methods.
#[derive(Clone)]
#[non_exhaustive]
pub struct TransferOptions {
    /// Plan at most this many partitions (default 8).
    pub max_partitions: usize,
    /// Read at most this many partitions at once (default 4).
    pub concurrency: usize,
    /// Bytes of batches that may wait between the readers and the sink (default 256 MiB).
    pub memory_budget_bytes: usize,
    /// Called with progress after batches and at the end.
    pub progress: Option<ProgressFn>,
    /// Receives the same progress as [`TransferOptions::progress`].
    pub progress_watch: Option<watch::Sender<Progress>>,
    /// Report progress at most this often (the final report always comes); zero reports after
    /// every batch (default).
    pub progress_interval: Duration,
    /// Applied to every batch on the reading tasks.
    pub transform: Option<BatchTransform>,
}

impl Default for TransferOptions {
    fn default() -> Self {
        Self {
            max_partitions: 8,
            concurrency: 4,
            memory_budget_bytes: 256 * 1024 * 1024,
            progress: None,
            progress_watch: None,
            progress_interval: Duration::ZERO,
            transform: None,
        }
    }
}

impl fmt::Debug for TransferOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransferOptions")
            .field("max_partitions", &self.max_partitions)
            .field("concurrency", &self.concurrency)
            .field("memory_budget_bytes", &self.memory_budget_bytes)
            .field("progress", &self.progress.is_some())
            .field("progress_watch", &self.progress_watch.is_some())
            .field("progress_interval", &self.progress_interval)
            .field("transform", &self.transform.is_some())
            .finish()
    }
}

impl TransferOptions {
    /// Plan at most `n` partitions (at least 1).
    #[must_use]
    pub fn with_max_partitions(mut self, n: usize) -> Self {
        self.max_partitions = n.max(1);
        self
    }

    /// Read at most `n` partitions at once (at least 1).
    #[must_use]
    pub fn with_concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Let at most `bytes` of batches wait for the sink (at least 1).
    #[must_use]
    pub fn with_memory_budget_bytes(mut self, bytes: usize) -> Self {
        self.memory_budget_bytes = bytes.max(1);
        self
    }

    /// Call `f` with progress.
    #[must_use]
    pub fn with_progress(mut self, f: impl Fn(&Progress) + Send + Sync + 'static) -> Self {
        self.progress = Some(Arc::new(f));
        self
    }

    /// Publish progress on a watch channel.
    #[must_use]
    pub fn with_progress_watch(mut self, sender: watch::Sender<Progress>) -> Self {
        self.progress_watch = Some(sender);
        self
    }

    /// Publish progress on a new watch channel and return its receiver.
    #[must_use]
    pub fn watch_progress(self) -> (Self, watch::Receiver<Progress>) {
        let (tx, rx) = watch::channel(Progress::default());
        (self.with_progress_watch(tx), rx)
    }

    /// Report progress at most every `interval` (plus the final report).
    #[must_use]
    pub fn with_progress_interval(mut self, interval: Duration) -> Self {
        self.progress_interval = interval;
        self
    }

    /// Transform every batch with `f`.
    #[must_use]
    pub fn with_transform(
        mut self,
        f: impl Fn(RecordBatch) -> Result<RecordBatch> + Send + Sync + 'static,
    ) -> Self {
        self.transform = Some(Arc::new(f));
        self
    }
}

/// What a transfer did.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TransferSummary {
    /// Rows taken from the source (after the total limit, before the transformation).
    pub rows_read: u64,
    /// Rows handed to the sink (after the transformation).
    pub rows_sent: u64,
    /// Rows the sink reports as written ([`WriteReport::rows`]).
    pub rows_written: u64,
    /// Arrow bytes handed to the sink, as measured by [`batch_bytes`].
    pub bytes: u64,
    /// Batches handed to the sink.
    pub batches: u64,
    /// Partitions planned (and read).
    pub partitions: usize,
    /// Wall time of the whole transfer.
    pub elapsed: Duration,
    /// `rows_sent` per second of `elapsed`.
    pub rows_per_second: f64,
    /// The most bytes that were ever queued between the readers and the sink.
    pub peak_queued_bytes: u64,
    /// The sink's report.
    pub report: WriteReport,
}

/// The size a transfer charges a batch against its memory budget: the bytes of the batch's
/// slice of its buffers (a slice of a large batch costs only its part).
#[must_use]
pub fn batch_bytes(batch: &RecordBatch) -> usize {
    batch
        .columns()
        .iter()
        .map(|c| {
            c.to_data()
                .get_slice_memory_size()
                .unwrap_or_else(|_| c.get_array_memory_size())
        })
        .sum()
}

/// The byte budget, in units small enough that any budget fits the semaphore's `u32` requests.
struct Budget {
    semaphore: Arc<Semaphore>,
    unit: usize,
    units: u32,
}

impl Budget {
    fn new(bytes: usize) -> Self {
        let bytes = bytes.max(1);
        let unit = bytes.div_ceil(u32::MAX as usize).max(1);
        let units = u32::try_from(bytes / unit).unwrap_or(u32::MAX).max(1);
        Self {
            semaphore: Arc::new(Semaphore::new(units as usize)),
            unit,
            units,
        }
    }

    /// Units for a batch of `bytes`, capped at the whole budget so any batch can pass.
    fn units_for(&self, bytes: usize) -> u32 {
        u32::try_from(bytes.div_ceil(self.unit))
            .unwrap_or(u32::MAX)
            .min(self.units)
    }
}

/// State shared by the reading tasks and the sink's stream.
struct Shared {
    source: Arc<dyn Source>,
    schema: SchemaRef,
    out_schema: SchemaRef,
    transform: Option<BatchTransform>,
    budget: Budget,
    slots: Arc<Semaphore>,
    /// Rows the request's limit still allows, if it has one.
    remaining: Option<AtomicU64>,
    rows_read: AtomicU64,
    partitions_done: AtomicUsize,
    queued: AtomicU64,
    peak_queued: AtomicU64,
    /// The first partition error; the transfer returns it.
    error: Mutex<Option<Error>>,
    /// Set with `error`: the sink's stream fails at once instead of draining the queue first.
    failed: AtomicBool,
    /// The sink's stream reached its end (every partition done, or the limit reached).
    finished: AtomicBool,
}

impl Shared {
    /// Claim up to `rows` rows from the limit; returns how many may pass.
    fn claim(&self, rows: usize) -> usize {
        let Some(remaining) = &self.remaining else {
            return rows;
        };
        let mut granted = 0;
        let _ = remaining.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
            granted = left.min(rows as u64);
            Some(left - granted)
        });
        granted as usize
    }

    fn limit_reached(&self) -> bool {
        self.remaining
            .as_ref()
            .is_some_and(|r| r.load(Ordering::SeqCst) == 0)
    }

    /// Keep the first error for the transfer's result; return a copy for the sink's stream.
    fn record_error(&self, e: Error) -> Error {
        let echo = echo(&e);
        let mut slot = self
            .error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if slot.is_none() {
            *slot = Some(e);
        }
        self.failed.store(true, Ordering::SeqCst);
        echo
    }

    /// A copy of the recorded error, if any.
    fn recorded(&self) -> Option<Error> {
        self.error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .map(echo)
    }

    fn take_error(&self) -> Option<Error> {
        self.error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }
}

/// What the sink's stream ends with when a partition fails (the transfer returns the original).
fn echo(e: &Error) -> Error {
    Error::new(e.kind(), e.message().to_owned())
        .with_connector(e.connector().unwrap_or(CONNECTOR).to_owned())
        .with_operation(e.operation().unwrap_or("read").to_owned())
}

/// One queued batch with the budget it holds.
struct Queued {
    batch: RecordBatch,
    bytes: usize,
    _permit: OwnedSemaphorePermit,
}

type Message = std::result::Result<Queued, Error>;

/// True when two schemas have the same column names and types, in order.
fn same_columns(a: &SchemaRef, b: &SchemaRef) -> bool {
    a.fields().len() == b.fields().len()
        && a.fields()
            .iter()
            .zip(b.fields())
            .all(|(x, y)| x.name() == y.name() && x.data_type() == y.data_type())
}

fn mismatch(what: &str, expected: &SchemaRef, actual: &SchemaRef) -> Error {
    Error::new(
        ErrorKind::SchemaMismatch,
        format!(
            "{what} has columns ({}), expected ({})",
            describe(actual),
            describe(expected)
        ),
    )
    .with_connector(CONNECTOR)
    .with_operation("read")
}

/// Give `batch` exactly `schema` (same names and types; nullability and metadata are taken from
/// `schema` and validated).
fn conform(batch: RecordBatch, schema: &SchemaRef, what: &str) -> Result<RecordBatch> {
    if batch.schema_ref() == schema {
        return Ok(batch);
    }
    if !same_columns(&batch.schema(), schema) {
        return Err(mismatch(what, schema, &batch.schema()));
    }
    let rows = batch.num_rows();
    RecordBatch::try_new_with_options(
        schema.clone(),
        batch.columns().to_vec(),
        &arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(rows)),
    )
    .map_err(|e| {
        Error::new(ErrorKind::SchemaMismatch, format!("{what}: {e}"))
            .with_connector(CONNECTOR)
            .with_operation("read")
    })
}

/// Read one partition into the queue. Returns an error to record; `Ok` also when the sink's
/// stream went away (the transfer is ending anyway).
async fn produce(
    shared: &Shared,
    tx: &mpsc::Sender<Message>,
    partition: Partition,
    opened: Option<(SendableRecordBatchStream, OwnedSemaphorePermit)>,
) -> Result<()> {
    let index = partition.index;
    let what = format!("partition {index}");
    let (stream, slot) = if let Some(opened) = opened {
        opened
    } else {
        let Ok(slot) = shared.slots.clone().acquire_owned().await else {
            return Ok(());
        };
        if shared.limit_reached() {
            shared.partitions_done.fetch_add(1, Ordering::SeqCst);
            return Ok(());
        }
        (shared.source.read(partition).await?, slot)
    };
    let result = pump(shared, tx, stream, &what).await;
    // The stream (and whatever connection it holds) is gone before the next partition may start.
    drop(slot);
    result
}

/// Move one partition's batches into the queue; consumes (and so drops) the stream.
async fn pump(
    shared: &Shared,
    tx: &mpsc::Sender<Message>,
    mut stream: SendableRecordBatchStream,
    what: &str,
) -> Result<()> {
    if !same_columns(&stream.schema(), &shared.schema) {
        return Err(mismatch(what, &shared.schema, &stream.schema()));
    }
    while let Some(batch) = stream.next().await {
        let batch = conform(batch?, &shared.schema, what)?;
        let granted = shared.claim(batch.num_rows());
        if granted == 0 && batch.num_rows() > 0 {
            break;
        }
        let batch = if granted < batch.num_rows() {
            batch.slice(0, granted)
        } else {
            batch
        };
        shared.rows_read.fetch_add(granted as u64, Ordering::SeqCst);
        let batch = match &shared.transform {
            Some(t) => conform(
                t(batch).map_err(|e| e.with_connector(CONNECTOR).with_operation("transform"))?,
                &shared.out_schema,
                &format!("the transformation of {what}"),
            )?,
            None => batch,
        };
        let bytes = batch_bytes(&batch);
        let units = shared.budget.units_for(bytes);
        let Ok(permit) = shared
            .budget
            .semaphore
            .clone()
            .acquire_many_owned(units)
            .await
        else {
            return Ok(());
        };
        let now = shared.queued.fetch_add(bytes as u64, Ordering::SeqCst) + bytes as u64;
        shared.peak_queued.fetch_max(now, Ordering::SeqCst);
        let item = Queued {
            batch,
            bytes,
            _permit: permit,
        };
        if tx.send(Ok(item)).await.is_err() {
            return Ok(());
        }
        if shared.limit_reached() {
            break;
        }
    }
    shared.partitions_done.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

/// Sends progress to the callback and the watch channel.
struct Reporter {
    callback: Option<ProgressFn>,
    watch: Option<watch::Sender<Progress>>,
    interval: Duration,
    last: Option<Instant>,
}

impl Reporter {
    fn enabled(&self) -> bool {
        self.callback.is_some() || self.watch.is_some()
    }

    fn emit(&mut self, progress: &Progress, force: bool) {
        if !self.enabled() {
            return;
        }
        let now = Instant::now();
        if !force
            && self
                .last
                .is_some_and(|t| now.duration_since(t) < self.interval)
        {
            return;
        }
        self.last = Some(now);
        if let Some(cb) = &self.callback {
            cb(progress);
        }
        if let Some(w) = &self.watch {
            w.send_replace(progress.clone());
        }
    }
}

/// Counters of what went to the sink.
#[derive(Default)]
struct Sent {
    rows: u64,
    bytes: u64,
    batches: u64,
}

fn rate(rows: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 { rows as f64 / secs } else { 0.0 }
}

/// The sink's side of the queue.
struct Consumer {
    shared: Arc<Shared>,
    rx: mpsc::Receiver<Message>,
    tasks: JoinSet<()>,
    sent: Arc<Mutex<Sent>>,
    reporter: Arc<Mutex<Reporter>>,
    started: Instant,
    partitions_total: usize,
    done: bool,
}

impl Consumer {
    fn progress(&self, sent: &Sent) -> Progress {
        let elapsed = self.started.elapsed();
        Progress {
            rows_read: self.shared.rows_read.load(Ordering::SeqCst),
            rows_sent: sent.rows,
            bytes: sent.bytes,
            batches: sent.batches,
            partitions_done: self.shared.partitions_done.load(Ordering::SeqCst),
            partitions_total: self.partitions_total,
            elapsed,
            rows_per_second: rate(sent.rows, elapsed),
            finished: false,
        }
    }

    async fn next(&mut self) -> Option<Result<RecordBatch>> {
        if self.done {
            return None;
        }
        if self.shared.failed.load(Ordering::SeqCst) {
            self.done = true;
            self.tasks.abort_all();
            return self.shared.recorded().map(Err);
        }
        if let Some(msg) = self.rx.recv().await {
            return match msg {
                Ok(item) => {
                    self.shared
                        .queued
                        .fetch_sub(item.bytes as u64, Ordering::SeqCst);
                    let progress = {
                        let mut sent = self
                            .sent
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                        sent.rows += item.batch.num_rows() as u64;
                        sent.bytes += item.bytes as u64;
                        sent.batches += 1;
                        self.progress(&sent)
                    };
                    self.reporter
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .emit(&progress, false);
                    // The permit drops here: the batch has left the queue.
                    Some(Ok(item.batch))
                }
                Err(e) => {
                    self.done = true;
                    self.tasks.abort_all();
                    Some(Err(e))
                }
            };
        }
        // Every reader finished. A reader that panicked dropped its sender without an error.
        self.done = true;
        while let Some(joined) = self.tasks.join_next().await {
            if let Err(e) = joined
                && e.is_panic()
            {
                let err = self.shared.record_error(
                    Error::internal("a partition reader panicked").with_connector(CONNECTOR),
                );
                return Some(Err(err));
            }
        }
        self.shared.finished.store(true, Ordering::SeqCst);
        None
    }
}

/// Move the rows `request` selects from `source` into `sink` as one [`Sink::write`] of `write`.
/// See the [module docs](self) for concurrency, memory and failure behaviour.
///
/// Must run inside a Tokio runtime (partitions are read on spawned tasks). A write mode the sink
/// does not declare is refused with [`ErrorKind::Unsupported`] before anything is read.
///
/// ```
/// use std::sync::Arc;
/// use connector_core::arrow::array::{Int64Array, RecordBatch};
/// use connector_core::{MemoryStore, ReadRequest, SinkExt, TransferOptions, WriteRequest, transfer};
///
/// # #[tokio::main(flavor = "multi_thread")]
/// # async fn main() -> connector_core::Result<()> {
/// let store = MemoryStore::new();
/// let batch = RecordBatch::try_from_iter([("id", Arc::new(Int64Array::from_iter_values(0..1000)) as _)])?;
/// store.sink().write_batch(WriteRequest::append("src"), batch).await?;
///
/// let summary = transfer(
///     Arc::new(store.source()),
///     ReadRequest::dataset("src").with_limit(600),
///     &store.sink(),
///     WriteRequest::overwrite("dst"),
///     TransferOptions::default()
///         .with_max_partitions(4)
///         .with_concurrency(2)
///         .with_progress(|p| eprintln!("{} rows, {}/{} partitions", p.rows_sent, p.partitions_done, p.partitions_total)),
/// )
/// .await?;
/// assert_eq!(summary.rows_written, 600);
/// # Ok(())
/// # }
/// ```
pub async fn transfer(
    source: Arc<dyn Source>,
    request: ReadRequest,
    sink: &dyn Sink,
    write: WriteRequest,
    options: TransferOptions,
) -> Result<TransferSummary> {
    let started = Instant::now();
    if !sink.capabilities().supports(&write.mode) {
        return Err(Error::unsupported(format!(
            "the sink does not support write mode {:?}",
            write.mode
        ))
        .with_connector(sink.name().to_owned())
        .with_operation("write"));
    }
    let mut parts = source
        .plan(&request, options.max_partitions.max(1))
        .await
        .map_err(|e| {
            e.with_connector(source.name().to_owned())
                .with_operation("plan")
        })?;
    if parts.is_empty() {
        return Err(Error::internal("plan returned no partitions")
            .with_connector(source.name().to_owned())
            .with_operation("plan"));
    }
    let partitions_total = parts.len();
    // The sink needs the schema before the first batch: open the first partition now.
    // It takes its reading slot first, so a source with a pool as small as `concurrency` cannot
    // have the other partitions wait on a connection this one holds.
    let slots = Arc::new(Semaphore::new(options.concurrency.max(1)));
    let Ok(first_slot) = slots.clone().acquire_owned().await else {
        return Err(Error::internal("the reading slots closed").with_connector(CONNECTOR));
    };
    let first = parts.remove(0);
    let first_stream = source.read(first.clone()).await.map_err(|e| {
        e.with_connector(source.name().to_owned())
            .with_operation("read")
            .with_context("partition", first.index)
    })?;
    let schema = first_stream.schema();
    let out_schema = match &options.transform {
        Some(t) => t(RecordBatch::new_empty(schema.clone()))
            .map_err(|e| e.with_connector(CONNECTOR).with_operation("transform"))?
            .schema(),
        None => schema.clone(),
    };
    let shared = Arc::new(Shared {
        source: source.clone(),
        schema,
        out_schema: out_schema.clone(),
        transform: options.transform.clone(),
        budget: Budget::new(options.memory_budget_bytes),
        slots,
        remaining: request.limit.map(|l| AtomicU64::new(l as u64)),
        rows_read: AtomicU64::new(0),
        partitions_done: AtomicUsize::new(0),
        queued: AtomicU64::new(0),
        peak_queued: AtomicU64::new(0),
        error: Mutex::new(None),
        failed: AtomicBool::new(false),
        finished: AtomicBool::new(false),
    });
    let (tx, rx) = mpsc::channel::<Message>(options.concurrency.max(1) * 2);
    let mut tasks = JoinSet::new();
    let jobs = std::iter::once((first, Some((first_stream, first_slot))))
        .chain(parts.into_iter().map(|p| (p, None)));
    for (partition, opened) in jobs {
        let shared = shared.clone();
        let tx = tx.clone();
        let index = partition.index;
        let name = source.name().to_owned();
        tasks.spawn(async move {
            if let Err(e) = produce(&shared, &tx, partition, opened).await {
                let e = e
                    .with_connector(name)
                    .with_operation("read")
                    .with_context("partition", index);
                let echo = shared.record_error(e);
                let _ = tx.send(Err(echo)).await;
            }
        });
    }
    drop(tx);

    let sent = Arc::new(Mutex::new(Sent::default()));
    let reporter = Arc::new(Mutex::new(Reporter {
        callback: options.progress.clone(),
        watch: options.progress_watch.clone(),
        interval: options.progress_interval,
        last: None,
    }));
    let consumer = Consumer {
        shared: shared.clone(),
        rx,
        tasks,
        sent: sent.clone(),
        reporter: reporter.clone(),
        started,
        partitions_total,
        done: false,
    };
    let stream = futures::stream::unfold(consumer, |mut c| async move {
        c.next().await.map(|item| (item, c))
    });
    let data = RecordBatchStreamAdapter::boxed(out_schema, stream);
    let result = sink.write(write, data).await;

    if let Some(e) = shared.take_error() {
        return Err(e);
    }
    let report = result.map_err(|e| {
        e.with_connector(sink.name().to_owned())
            .with_operation("write")
    })?;
    if !shared.finished.load(Ordering::SeqCst) {
        return Err(
            Error::internal("the sink returned before consuming the whole stream")
                .with_connector(sink.name().to_owned())
                .with_operation("write"),
        );
    }
    let elapsed = started.elapsed();
    let sent = sent
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let summary = TransferSummary {
        rows_read: shared.rows_read.load(Ordering::SeqCst),
        rows_sent: sent.rows,
        rows_written: report.rows,
        bytes: sent.bytes,
        batches: sent.batches,
        partitions: partitions_total,
        elapsed,
        rows_per_second: rate(sent.rows, elapsed),
        peak_queued_bytes: shared.peak_queued.load(Ordering::SeqCst),
        report,
    };
    let last = Progress {
        rows_read: summary.rows_read,
        rows_sent: summary.rows_sent,
        bytes: summary.bytes,
        batches: summary.batches,
        partitions_done: shared.partitions_done.load(Ordering::SeqCst),
        partitions_total,
        elapsed,
        rows_per_second: summary.rows_per_second,
        finished: true,
    };
    reporter
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .emit(&last, true);
    Ok(summary)
}
