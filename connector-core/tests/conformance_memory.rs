//! The conformance suite against the in-memory reference backend, and proof that the suite
//! catches broken backends.
#![cfg(feature = "testkit")]

use std::sync::Arc;

use arrow::array::{Array, AsArray, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Int64Type};
use async_trait::async_trait;
use connector_core::stream::RecordBatchStreamAdapter;
use connector_core::testkit::{
    self, CASES, Harness, Outcome, all_types, assert_same_rows, counter_names, diff_rows,
    sample_rows, type_matrix,
};
use connector_core::{
    DatasetInfo, Error, ErrorKind, MemoryStore, Partition, ReadRequest, Result,
    SendableRecordBatchStream, Sink, SinkCapabilities, Source, SourceCapabilities, WriteMode,
    WriteReport, WriteRequest,
};
use futures::StreamExt;

fn memory_harness() -> Harness {
    let store = MemoryStore::new();
    Harness::new(
        Arc::new(store.source()),
        Arc::new(store.sink()),
        counter_names("t"),
    )
}

fn harness_with(source: Arc<dyn Source>, sink: Arc<dyn Sink>) -> Harness {
    Harness::new(source, sink, counter_names("t"))
}

#[tokio::test]
async fn memory_backend_passes_every_case() {
    let reports = testkit::run_all(&memory_harness()).await;
    assert_eq!(reports.len(), CASES.len());
    for r in &reports {
        if r.case == "bad_credentials" {
            assert!(matches!(r.outcome, Outcome::Skipped(_)), "{r:?}");
        } else {
            assert_eq!(r.outcome, Outcome::Passed, "{r:?}");
        }
    }
}

#[test]
fn type_matrix_is_deterministic_with_edges_and_ten_percent_nulls() {
    let types = all_types();
    let a = type_matrix(&types, 100);
    let b = type_matrix(&types, 100);
    assert_eq!(a, b);
    assert_eq!(a.num_columns(), types.len() + 1);
    assert_eq!(a.schema().field(0).name(), "id");
    assert!(!a.schema().field(0).is_nullable());
    assert_eq!(a.column(0).null_count(), 0);
    for (k, f) in a.schema().fields().iter().enumerate().skip(1) {
        assert!(f.is_nullable());
        assert_eq!(f.data_type(), &types[k - 1]);
        assert_eq!(a.column(k).null_count(), 10, "column {}", f.name());
    }
    let ints = a
        .column_by_name("c_int64")
        .unwrap()
        .as_primitive::<Int64Type>();
    assert!(ints.iter().any(|v| v == Some(i64::MIN)));
    assert!(ints.iter().any(|v| v == Some(i64::MAX)));
    assert!(
        ints.iter()
            .any(|v| v.is_some_and(|v| v < 0 && v > i64::MIN))
    );
    let strings = a.column_by_name("c_utf8").unwrap().as_string::<i32>();
    assert!(strings.iter().any(|v| v == Some("")));
    assert!(strings.iter().flatten().any(|s| s.contains('\n')));
    assert!(strings.iter().flatten().any(|s| s.contains('"')));
    assert!(strings.iter().flatten().any(|s| s.contains('🦀')));
    // Unique, SQL-safe column names.
    let names: std::collections::HashSet<_> = a
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(names.len(), a.num_columns());
    assert!(names.iter().all(|n| {
        n.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    }));
}

#[tokio::test]
async fn a_harness_with_fewer_types_round_trips_only_those() {
    let types = testkit::all_types_except(&[DataType::UInt64, DataType::Utf8View]);
    assert_eq!(types.len(), all_types().len() - 2);
    assert!(!types.contains(&DataType::UInt64));
    let store = MemoryStore::new();
    let h =
        harness_with(Arc::new(store.source()), Arc::new(store.sink())).with_types(types.clone());
    assert_eq!(testkit::case_round_trip(&h).await, Outcome::Passed);
    // The target holds exactly the id and the listed types.
    let written: Vec<DataType> = store
        .get("t_0_round_trip")
        .expect("the case wrote t_0_round_trip")
        .schema
        .fields()
        .iter()
        .skip(1)
        .map(|f| f.data_type().clone())
        .collect();
    assert_eq!(written, types);
}

#[test]
#[should_panic(expected = "not supported")]
fn type_matrix_rejects_unknown_types() {
    let _ = type_matrix(&[DataType::Float16], 3);
}

#[test]
fn diff_rows_ignores_order_and_reports_changes() {
    let rows = sample_rows(0..20, "");
    let reversed = {
        let idx = arrow::array::UInt32Array::from_iter_values((0..20).rev());
        arrow::compute::take_record_batch(&rows, &idx).unwrap()
    };
    assert_same_rows(&rows, &reversed);

    let mut cols = rows.columns().to_vec();
    let mut qty: Vec<Option<i64>> = cols[2].as_primitive::<Int64Type>().iter().collect();
    qty[5] = Some(12345);
    cols[2] = Arc::new(Int64Array::from(qty));
    let changed = RecordBatch::try_new(rows.schema(), cols).unwrap();
    let d = diff_rows(&rows, &changed).expect("a changed value is a difference");
    assert!(
        d.contains("\"qty\"") && d.contains("id 5") && d.contains("12345"),
        "{d}"
    );

    let d = diff_rows(&rows, &rows.slice(0, 19)).expect("a missing row is a difference");
    assert!(d.contains("missing ids: [19]"), "{d}");

    let d = diff_rows(&rows, &rows.project(&[1, 0, 2]).unwrap()).expect("column order matters");
    assert!(d.contains("columns differ"), "{d}");
}

// ----- broken backends the suite must catch --------------------------------------------------

/// Drops the last row of every write.
#[derive(Debug)]
struct DropLastRow(Arc<dyn Sink>);

#[async_trait]
impl Sink for DropLastRow {
    fn name(&self) -> &'static str {
        "drop-last-row"
    }
    fn capabilities(&self) -> SinkCapabilities {
        self.0.capabilities()
    }
    async fn check(&self) -> Result<()> {
        self.0.check().await
    }
    async fn write(
        &self,
        request: WriteRequest,
        data: SendableRecordBatchStream,
    ) -> Result<WriteReport> {
        let schema = data.schema();
        let batches: Vec<RecordBatch> = futures::TryStreamExt::try_collect(data).await?;
        let all = arrow::compute::concat_batches(&schema, &batches)?;
        let kept = all.slice(0, all.num_rows().saturating_sub(1));
        let mut report = self
            .0
            .write(
                request,
                connector_core::stream::memory_stream(schema, vec![kept]),
            )
            .await?;
        report.rows = all.num_rows() as u64;
        Ok(report)
    }
}

/// Ignores the request's filter.
#[derive(Debug)]
struct IgnoreFilter(Arc<dyn Source>);

#[async_trait]
impl Source for IgnoreFilter {
    fn name(&self) -> &'static str {
        "ignore-filter"
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
    async fn read(&self, mut partition: Partition) -> Result<SendableRecordBatchStream> {
        partition.request.filter = None;
        self.0.read(partition).await
    }
}

/// Duplicates the first batch of the last partition (a bad partition boundary).
#[derive(Debug)]
struct OverlappingPartitions(Arc<dyn Source>);

#[async_trait]
impl Source for OverlappingPartitions {
    fn name(&self) -> &'static str {
        "overlapping-partitions"
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
        let last = partition.count > 1 && partition.index + 1 == partition.count;
        let s = self.0.read(partition).await?;
        if !last {
            return Ok(s);
        }
        let schema = s.schema();
        let batches: Vec<RecordBatch> = futures::TryStreamExt::try_collect(s).await?;
        let mut out = batches.clone();
        if let Some(first) = batches.first() {
            out.push(first.slice(0, first.num_rows().min(1)));
        }
        Ok(connector_core::stream::memory_stream(schema, out))
    }
}

/// Turns `NotFound` into `Internal`.
#[derive(Debug)]
struct WrongErrorKind(Arc<dyn Source>);

#[async_trait]
impl Source for WrongErrorKind {
    fn name(&self) -> &'static str {
        "wrong-error-kind"
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
        self.0
            .plan(request, max_partitions)
            .await
            .map_err(|e| Error::internal(e.message().to_owned()).with_connector("x"))
    }
    async fn read(&self, partition: Partition) -> Result<SendableRecordBatchStream> {
        self.0.read(partition).await
    }
}

/// Declares only append (+create), but quietly performs every mode — or, with `refuse`, refuses
/// the others properly.
#[derive(Debug)]
struct AppendOnly {
    inner: Arc<dyn Sink>,
    refuse: bool,
}

#[async_trait]
impl Sink for AppendOnly {
    fn name(&self) -> &'static str {
        "append-only"
    }
    fn capabilities(&self) -> SinkCapabilities {
        SinkCapabilities::none()
            .with_append()
            .with_create_if_missing()
    }
    async fn check(&self) -> Result<()> {
        self.inner.check().await
    }
    async fn write(
        &self,
        request: WriteRequest,
        data: SendableRecordBatchStream,
    ) -> Result<WriteReport> {
        if self.refuse
            && (request.mode != WriteMode::Append
                || request.schema_drift == connector_core::SchemaDriftPolicy::AddColumns)
        {
            return Err(Error::unsupported("append only")
                .with_connector("append-only")
                .with_operation("write"));
        }
        self.inner.write(request, data).await
    }
}

/// A source whose batches do not match the schema its stream announces.
#[derive(Debug)]
struct LyingSchema(Arc<dyn Source>);

#[async_trait]
impl Source for LyingSchema {
    fn name(&self) -> &'static str {
        "lying-schema"
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
        let s = self.0.read(partition).await?;
        let announced = Arc::new(arrow::datatypes::Schema::new(
            s.schema()
                .fields()
                .iter()
                .map(|f| f.as_ref().clone().with_name(format!("x_{}", f.name())))
                .collect::<Vec<_>>(),
        ));
        Ok(RecordBatchStreamAdapter::boxed(announced, s.map(|b| b)))
    }
}

#[tokio::test]
#[should_panic(expected = "conformance [memory→drop-last-row] round_trip: FAILED")]
async fn a_sink_that_drops_a_row_fails_round_trip() {
    let store = MemoryStore::new();
    let h = harness_with(
        Arc::new(store.source()),
        Arc::new(DropLastRow(Arc::new(store.sink()))),
    );
    testkit::case_round_trip(&h).await;
}

#[tokio::test]
#[should_panic(expected = "conformance [ignore-filter→memory] filter: FAILED")]
async fn a_source_that_ignores_filters_fails_filter() {
    let store = MemoryStore::new();
    let h = harness_with(
        Arc::new(IgnoreFilter(Arc::new(store.source()))),
        Arc::new(store.sink()),
    );
    testkit::case_filter(&h).await;
}

#[tokio::test]
#[should_panic(expected = "partitioned_read: FAILED")]
async fn overlapping_partitions_fail_partitioned_read() {
    let store = MemoryStore::new();
    let h = harness_with(
        Arc::new(OverlappingPartitions(Arc::new(store.source()))),
        Arc::new(store.sink()),
    );
    testkit::case_partitioned_read(&h).await;
}

#[tokio::test]
#[should_panic(expected = "expected a not found error")]
async fn a_wrong_error_kind_fails_missing_dataset() {
    let store = MemoryStore::new();
    let h = harness_with(
        Arc::new(WrongErrorKind(Arc::new(store.source()))),
        Arc::new(store.sink()),
    );
    testkit::case_missing_dataset(&h).await;
}

#[tokio::test]
#[should_panic(expected = "differs from the stream's schema (x_id: Int64")]
async fn a_stream_schema_that_lies_fails() {
    let store = MemoryStore::new();
    let h = harness_with(
        Arc::new(LyingSchema(Arc::new(store.source()))),
        Arc::new(store.sink()),
    );
    testkit::case_projection(&h).await;
}

#[tokio::test]
#[should_panic(expected = "upsert: FAILED: write with unsupported mode")]
async fn an_undeclared_mode_that_is_not_refused_fails() {
    let store = MemoryStore::new();
    let h = harness_with(
        Arc::new(store.source()),
        Arc::new(AppendOnly {
            inner: Arc::new(store.sink()),
            refuse: false,
        }),
    );
    testkit::case_upsert(&h).await;
}

#[tokio::test]
async fn an_append_only_sink_that_refuses_properly_passes_and_skips_add_columns() {
    let store = MemoryStore::new();
    let h = harness_with(
        Arc::new(store.source()),
        Arc::new(AppendOnly {
            inner: Arc::new(store.sink()),
            refuse: true,
        }),
    );
    let reports = testkit::run_all(&h).await;
    let skipped: Vec<&str> = reports
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Skipped(_)))
        .map(|r| r.case)
        .collect();
    assert_eq!(skipped, ["schema_drift_add_columns", "bad_credentials"]);
}

#[tokio::test]
async fn run_all_reports_every_failing_case() {
    let store = MemoryStore::new();
    let h = harness_with(
        Arc::new(store.source()),
        Arc::new(DropLastRow(Arc::new(store.sink()))),
    );
    let joined = tokio::spawn(async move { testkit::run_all(&h).await }).await;
    let err = joined.expect_err("run_all must fail on a broken sink");
    assert!(err.is_panic());
    let msg = err.into_panic();
    let msg = msg.downcast_ref::<String>().cloned().unwrap_or_default();
    for case in ["round_trip", "projection", "filter", "upsert", "delete"] {
        assert!(
            msg.contains(&format!("] {case}: FAILED")),
            "{case} not reported in:\n{msg}"
        );
    }
}

#[tokio::test]
async fn bad_credentials_case_checks_the_error_kind() {
    /// Fails everything with the given kind.
    #[derive(Debug)]
    struct Refusing(ErrorKind);
    #[async_trait]
    impl Source for Refusing {
        fn name(&self) -> &'static str {
            "refusing"
        }
        fn capabilities(&self) -> SourceCapabilities {
            SourceCapabilities::none()
        }
        async fn check(&self) -> Result<()> {
            Err(Error::new(self.0, "no")
                .with_connector("refusing")
                .with_operation("check"))
        }
        async fn discover(&self) -> Result<Vec<DatasetInfo>> {
            Err(Error::new(self.0, "no"))
        }
        async fn plan(&self, _: &ReadRequest, _: usize) -> Result<Vec<Partition>> {
            Err(Error::new(self.0, "no")
                .with_connector("refusing")
                .with_operation("plan"))
        }
        async fn read(&self, _: Partition) -> Result<SendableRecordBatchStream> {
            Err(Error::new(self.0, "no"))
        }
    }
    let good = memory_harness().with_bad_credentials(Arc::new(Refusing(ErrorKind::Authentication)));
    assert_eq!(testkit::case_bad_credentials(&good).await, Outcome::Passed);
    let wrong = memory_harness().with_bad_credentials(Arc::new(Refusing(ErrorKind::Connection)));
    let r = tokio::spawn(async move { testkit::case_bad_credentials(&wrong).await }).await;
    assert!(r.is_err_and(|e| e.is_panic()));
}
