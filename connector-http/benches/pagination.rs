//! Concurrent page fetches against a local server that adds 50 ms to every page.
//!
//! - Time: reading 100 pages with `concurrency: 8` (criterion, 10 samples) against reading them
//!   one after another (a 100-page sequential read takes over 5 s, so it is timed over 2 runs
//!   outside criterion's sampling to keep the whole bench under a minute). Goal: concurrent ≤ 1/6
//!   of sequential.
//! - Memory: the most pages in flight (requested by the connector but not yet consumed by the
//!   reader), and the most concurrent requests the server saw, for 100 and 400 pages. Both must
//!   stay at the concurrency (+1 for the page being consumed) whatever the page count.
//!
//! Run with `cargo bench -p connector-http --bench pagination`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Query, State};
use axum::response::IntoResponse;
use axum::routing::get;
use connector_core::{ReadRequest, SourceExt};
use criterion::{Criterion, SamplingMode};
use futures::TryStreamExt;

const PAGE_DELAY: Duration = Duration::from_millis(50);
const ROWS_PER_PAGE: usize = 100;

#[derive(Default)]
struct Stats {
    started: AtomicUsize,
    in_flight: AtomicUsize,
    peak_in_flight: AtomicUsize,
}

async fn page(
    State(stats): State<Arc<Stats>>,
    Query(q): Query<HashMap<String, String>>,
) -> impl IntoResponse {
    stats.started.fetch_add(1, Ordering::SeqCst);
    let now = stats.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    stats.peak_in_flight.fetch_max(now, Ordering::SeqCst);
    let pages: usize = q.get("pages").and_then(|p| p.parse().ok()).unwrap_or(100);
    let page: usize = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
    tokio::time::sleep(PAGE_DELAY).await;
    let first = (page - 1) * ROWS_PER_PAGE;
    let rows: Vec<serde_json::Value> = (first..first + ROWS_PER_PAGE)
        .map(|i| serde_json::json!({"id": i, "name": format!("row-{i}"), "payload": "x".repeat(200)}))
        .collect();
    stats.in_flight.fetch_sub(1, Ordering::SeqCst);
    (
        [("x-total-count", (pages * ROWS_PER_PAGE).to_string())],
        serde_json::Value::Array(rows).to_string(),
    )
}

async fn start_server() -> (String, Arc<Stats>) {
    let stats = Arc::new(Stats::default());
    let app = Router::new()
        .route("/pages", get(page))
        .with_state(stats.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, app).await.expect("bench server") });
    (url, stats)
}

fn connector(url: &str, pages: usize, concurrency: usize) -> connector_http::Rest {
    let config: connector_http::RestConfig = serde_json::from_value(serde_json::json!({
        "base_url": url,
        "endpoints": [{
            "name": "pages", "path": "pages",
            "params": {"pages": pages.to_string()},
            "pagination": {"style": "page_number", "param": "page", "size_param": "per_page", "size": ROWS_PER_PAGE},
            "total": {"header": "X-Total-Count"},
            "concurrency": concurrency
        }]
    }))
    .expect("config");
    connector_http::Rest::new(config).expect("connector")
}

/// Read every page, dropping each batch once counted; returns (rows, most pages in flight).
async fn read(url: &str, stats: &Stats, pages: usize, concurrency: usize) -> (usize, usize) {
    let rest = connector(url, pages, concurrency);
    let started_before = stats.started.load(Ordering::SeqCst);
    let mut stream = rest
        .read_stream(ReadRequest::dataset("pages"))
        .await
        .expect("open");
    let (mut rows, mut consumed, mut peak) = (0, 0, 0);
    while let Some(batch) = stream.try_next().await.expect("page") {
        rows += batch.num_rows();
        consumed += 1;
        let requested = stats.started.load(Ordering::SeqCst) - started_before;
        peak = usize::max(peak, requested - consumed + 1);
    }
    assert_eq!(rows, pages * ROWS_PER_PAGE);
    (rows, peak)
}

/// Peak resident set size of this process, from /proc (Linux), in MiB.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (url, stats) = rt.block_on(start_server());
    let test_mode = std::env::args().any(|a| a == "--test");

    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(7))
        .configure_from_args();
    let mut group = c.benchmark_group("rest_100_pages_50ms_each");
    group.sampling_mode(SamplingMode::Flat);
    group.bench_function("concurrency_8", |b| {
        b.to_async(&rt).iter(|| read(&url, &stats, 100, 8));
    });
    group.finish();

    if test_mode {
        rt.block_on(read(&url, &stats, 10, 1));
        return;
    }

    // Concurrent and sequential, timed the same way for the ratio.
    let time = |pages: usize, concurrency: usize, runs: u32| {
        let mut best = Duration::MAX;
        for _ in 0..runs {
            let t = Instant::now();
            rt.block_on(read(&url, &stats, pages, concurrency));
            best = best.min(t.elapsed());
        }
        best
    };
    let concurrent = time(100, 8, 3);
    let sequential = time(100, 1, 2);
    let ratio = sequential.as_secs_f64() / concurrent.as_secs_f64();
    println!(
        "100 pages, 50 ms each: sequential {sequential:.2?}, concurrency 8 {concurrent:.2?}: \
         concurrent is 1/{ratio:.1} of sequential (goal: at most 1/6)"
    );

    // Memory: pages in flight must not grow with the page count.
    for pages in [100, 400] {
        stats.peak_in_flight.store(0, Ordering::SeqCst);
        let rss_before = peak_rss_mib().unwrap_or(0.0);
        let (_, peak) = rt.block_on(read(&url, &stats, pages, 8));
        let rss_after = peak_rss_mib().unwrap_or(0.0);
        println!(
            "{pages} pages, concurrency 8: at most {peak} pages in flight at the reader, \
             {} concurrent requests at the server; peak RSS {rss_after:.1} MiB (+{:.1} MiB)",
            stats.peak_in_flight.load(Ordering::SeqCst),
            rss_after - rss_before
        );
    }
    assert!(ratio >= 6.0, "concurrent pages are only {ratio:.1}× faster");
}
