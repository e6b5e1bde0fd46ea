//! The connector-core conformance cases that apply to the REST connector, over HTTP against an
//! in-process collection server (json-server cannot create collections, and every case writes
//! ids 0..200 into a fresh target): the REST sink POSTs NDJSON batches into `/c/<name>`, the REST
//! source reads them back with page-number pagination, and projection, filter and limit are
//! applied locally through `residual::apply`. The server requires a bearer token, so the
//! bad-credentials case runs too.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arrow::datatypes::DataType;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use connector_core::testkit::{self, Harness, Outcome};
use serde_json::{Value, json};

/// Records per collection, each kept as the JSON text it arrived as (so field order survives).
type Store = Arc<Mutex<HashMap<String, Vec<String>>>>;

fn authorized(h: &HeaderMap) -> bool {
    h.get("authorization").and_then(|v| v.to_str().ok()) == Some("Bearer good-token")
}

fn collection_server(store: Store) -> Router {
    let (s1, s2) = (store.clone(), store);
    Router::new().route(
        "/c/{name}",
        get(
            move |Path(name): Path<String>,
                  Query(q): Query<HashMap<String, String>>,
                  h: HeaderMap| {
                let store = s1.clone();
                async move {
                    if !authorized(&h) {
                        return StatusCode::UNAUTHORIZED.into_response();
                    }
                    let page: usize = q.get("_page").and_then(|p| p.parse().ok()).unwrap_or(1);
                    let limit: usize = q.get("_limit").and_then(|p| p.parse().ok()).unwrap_or(10);
                    let guard = store.lock().unwrap();
                    let Some(rows) = guard.get(&name) else {
                        return (StatusCode::NOT_FOUND, "{}").into_response();
                    };
                    let start = (page.max(1) - 1) * limit;
                    let slice: Vec<&str> = rows
                        .iter()
                        .skip(start)
                        .take(limit)
                        .map(String::as_str)
                        .collect();
                    (
                        StatusCode::OK,
                        [("x-total-count", rows.len().to_string())],
                        format!("[{}]", slice.join(",")),
                    )
                        .into_response()
                }
            },
        )
        .post(move |Path(name): Path<String>, h: HeaderMap, body: Bytes| {
            let store = s2.clone();
            async move {
                if !authorized(&h) {
                    return StatusCode::UNAUTHORIZED.into_response();
                }
                let text = String::from_utf8_lossy(&body).into_owned();
                let lines: Vec<String> = text
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(str::to_owned)
                    .collect();
                if lines
                    .iter()
                    .any(|l| !matches!(serde_json::from_str::<Value>(l), Ok(Value::Object(_))))
                {
                    return (StatusCode::BAD_REQUEST, "expected NDJSON objects").into_response();
                }
                store.lock().unwrap().entry(name).or_default().extend(lines);
                StatusCode::CREATED.into_response()
            }
        }),
    )
}

fn connector(url: &str, token: &str) -> connector_http::Rest {
    let endpoints: Vec<Value> = (0..40)
        .map(|i| {
            json!({
                "name": format!("t{i}"), "path": format!("t{i}"),
                "pagination": {"style": "page_number", "param": "_page", "size_param": "_limit", "size": 40},
                "total": {"header": "X-Total-Count"},
                "concurrency": 2
            })
        })
        .collect();
    common::rest(json!({
        "base_url": format!("{url}/c/"),
        "auth": {"type": "bearer", "token": token},
        "endpoints": endpoints,
        "sink": {"format": "ndjson", "batch_size": 64, "concurrency": 2}
    }))
}

#[tokio::test]
async fn rest_conformance_read_side() {
    let url = common::serve(collection_server(Store::default())).await;
    let rest = Arc::new(connector(&url, "good-token"));
    let n = std::sync::atomic::AtomicUsize::new(0);
    let harness = Harness::new(
        rest.clone(),
        rest.clone(),
        Arc::new(move |_case: &str| {
            format!("t{}", n.fetch_add(1, std::sync::atomic::Ordering::SeqCst))
        }),
    )
    .with_types(vec![DataType::Int64, DataType::Utf8, DataType::Boolean])
    .with_bad_credentials(Arc::new(connector(&url, "bad-token")));

    // round_trip first: it creates t0, which `check` then reads.
    let outcomes = vec![
        ("round_trip", testkit::case_round_trip(&harness).await),
        ("check", testkit::case_check(&harness).await),
        ("projection", testkit::case_projection(&harness).await),
        ("filter", testkit::case_filter(&harness).await),
        ("filter_types", testkit::case_filter_types(&harness).await),
        ("limit", testkit::case_limit(&harness).await),
        (
            "partitioned_read",
            testkit::case_partitioned_read(&harness).await,
        ),
        ("overwrite", testkit::case_overwrite(&harness).await),
        ("upsert", testkit::case_upsert(&harness).await),
        ("delete", testkit::case_delete(&harness).await),
        (
            "missing_dataset",
            testkit::case_missing_dataset(&harness).await,
        ),
        (
            "bad_credentials",
            testkit::case_bad_credentials(&harness).await,
        ),
    ];
    // The read-side cases must really run, not skip.
    for (case, outcome) in &outcomes {
        if [
            "round_trip",
            "projection",
            "filter",
            "limit",
            "missing_dataset",
            "bad_credentials",
        ]
        .contains(case)
        {
            assert_eq!(*outcome, Outcome::Passed, "{case}");
        }
    }
}
