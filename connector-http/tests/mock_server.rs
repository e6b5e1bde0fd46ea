//! Behaviour the real peers cannot show on demand, against a small in-process axum server:
//! Relay cursors, 429/503 with `Retry-After`, 5xx retries, timeouts, broken bodies, auth
//! challenges, `OAuth2` client credentials, pagination loops, body cursors and next URLs, NDJSON
//! and CSV bodies, the sink's batches and partial failures, the rate limit, incremental reads.

// Request and config values are built inline with `json!` at every call site.
#![allow(clippy::needless_pass_by_value)]

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use arrow::array::{Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use axum::Router;
use axum::body::Bytes;
use axum::extract::Query;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use connector_core::{
    ErrorKind, ErrorStatus, ReadRequest, SinkExt, Source, SourceExt, WriteRequest,
};
use connector_http::{GraphQL, GraphQLConfig};
use serde_json::{Value, json};

use common::{ints, rest, serve, strings};

type Params = Query<HashMap<String, String>>;

/// Counts requests and keeps their URIs.
#[derive(Default)]
struct Log {
    hits: AtomicUsize,
    uris: std::sync::Mutex<Vec<String>>,
}

impl Log {
    fn hit(&self, uri: &Uri) -> usize {
        self.uris.lock().unwrap().push(uri.to_string());
        self.hits.fetch_add(1, Ordering::SeqCst)
    }
    fn count(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
    fn uris(&self) -> Vec<String> {
        self.uris.lock().unwrap().clone()
    }
}

fn json_response(v: &Value) -> axum::response::Response {
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        v.to_string(),
    )
        .into_response()
}

fn items(range: std::ops::Range<i64>) -> Value {
    Value::Array(
        range
            .map(|i| json!({"id": i, "name": format!("item-{i}")}))
            .collect(),
    )
}

fn one_endpoint(url: &str, ep: Value, more: Value) -> connector_http::Rest {
    let mut c = json!({"base_url": url, "endpoints": [ep], "retry": {"min_delay_ms": 10, "max_delay_ms": 50}});
    if let (Some(o), Some(m)) = (c.as_object_mut(), more.as_object()) {
        o.extend(m.clone());
    }
    rest(c)
}

// ---------------------------------------------------------------------------------------------
// GraphQL Relay cursors
// ---------------------------------------------------------------------------------------------

fn relay_router(log: Arc<Log>, repeat_cursor: bool) -> Router {
    Router::new().route(
        "/graphql",
        post(move |uri: Uri, body: Bytes| {
            let log = log.clone();
            async move {
                log.hit(&uri);
                let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let after = req["variables"]["after"].as_str().map(str::to_owned);
                let page: i64 = match after.as_deref() {
                    None => 0,
                    Some(c) => c.trim_start_matches("cur").parse().unwrap_or(99) + 1,
                };
                let start = page * 4 + 1;
                let end = if page >= 2 { start + 2 } else { start + 4 };
                let edges: Vec<Value> = (start..end)
                    .map(|i| json!({"cursor": format!("e{i}"), "node": {"id": i, "title": format!("t{i}")}}))
                    .collect();
                let cursor = if repeat_cursor { "cur0".to_owned() } else { format!("cur{page}") };
                json_response(&json!({"data": {"repo": {"issues": {
                    "edges": edges,
                    "pageInfo": {"hasNextPage": page < 2, "endCursor": cursor}
                }}}}))
            }
        }),
    )
}

fn relay_source(url: &str) -> GraphQL {
    let c: GraphQLConfig = serde_json::from_value(json!({
        "url": format!("{url}/graphql"),
        "queries": [{
            "name": "issues",
            "query": "query($after: String) { repo { issues(first: 4, after: $after) { edges { node { id title } } pageInfo { hasNextPage endCursor } } } }",
            "records": "/repo/issues/edges",
            "node": "/node",
            "pagination": {"style": "relay", "after_var": "after", "page_info": "/repo/issues/pageInfo"}
        }]
    }))
    .unwrap();
    GraphQL::new(c).unwrap()
}

#[tokio::test]
async fn graphql_relay_cursors_follow_end_cursor() {
    let log = Arc::new(Log::default());
    let url = serve(relay_router(log.clone(), false)).await;
    let g = relay_source(&url);
    let b = g.read_batch(ReadRequest::dataset("issues")).await.unwrap();
    assert_eq!(ints(&b, "id"), (1..=10).collect::<Vec<_>>());
    assert_eq!(log.count(), 3);
    let names: Vec<&str> = b
        .schema_ref()
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    assert!(
        names.contains(&"title") && !names.contains(&"node"),
        "{names:?}"
    );
}

#[tokio::test]
async fn graphql_relay_repeating_cursor_is_an_error() {
    let log = Arc::new(Log::default());
    let url = serve(relay_router(log.clone(), true)).await;
    let e = relay_source(&url)
        .read_batch(ReadRequest::dataset("issues"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(e.message().contains("pagination loop"), "{e}");
    assert_eq!(e.connector(), Some("graphql"));
    assert_eq!(log.count(), 2);
}

// ---------------------------------------------------------------------------------------------
// Retries
// ---------------------------------------------------------------------------------------------

/// Fails the first `failures` requests with `status` (and `Retry-After: retry_after` if set).
fn flaky(
    log: Arc<Log>,
    failures: usize,
    status: StatusCode,
    retry_after: Option<&'static str>,
) -> Router {
    let handler = move |uri: Uri| {
        let log = log.clone();
        async move {
            if log.hit(&uri) < failures {
                let mut h = HeaderMap::new();
                if let Some(a) = retry_after {
                    h.insert("retry-after", a.parse().unwrap());
                }
                return (status, h, "try later").into_response();
            }
            json_response(&items(0..3))
        }
    };
    Router::new().route("/items", get(handler.clone()).post(handler))
}

#[tokio::test]
async fn rate_limited_429_waits_for_retry_after() {
    let log = Arc::new(Log::default());
    let url = serve(flaky(
        log.clone(),
        2,
        StatusCode::TOO_MANY_REQUESTS,
        Some("1"),
    ))
    .await;
    let r = one_endpoint(&url, json!({"name": "items", "path": "items"}), json!({}));
    let t = Instant::now();
    let b = r.read_batch(ReadRequest::dataset("items")).await.unwrap();
    let took = t.elapsed();
    assert_eq!(b.num_rows(), 3);
    assert_eq!(log.count(), 3, "two 429s, then success");
    assert_eq!(r.client().requests_sent(), 3);
    assert!(
        took >= Duration::from_millis(1950),
        "waited only {took:?} for 2 × Retry-After: 1"
    );
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[tokio::test]
async fn retry_after_longer_than_allowed_fails_at_once() {
    let log = Arc::new(Log::default());
    let url = serve(flaky(
        log.clone(),
        5,
        StatusCode::TOO_MANY_REQUESTS,
        Some("3600"),
    ))
    .await;
    let r = one_endpoint(&url, json!({"name": "items", "path": "items"}), json!({}));
    let t = Instant::now();
    let e = r
        .read_batch(ReadRequest::dataset("items"))
        .await
        .unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(2));
    assert_eq!(e.kind(), ErrorKind::RateLimited, "{e}");
    assert_eq!(e.status(), ErrorStatus::Persistent, "{e}");
    assert_eq!(e.retry_after(), Some(Duration::from_hours(1)));
    assert_eq!(log.count(), 1);
}

#[tokio::test]
async fn unavailable_503_with_retry_after_is_retried() {
    let log = Arc::new(Log::default());
    let url = serve(flaky(
        log.clone(),
        1,
        StatusCode::SERVICE_UNAVAILABLE,
        Some("1"),
    ))
    .await;
    let r = one_endpoint(&url, json!({"name": "items", "path": "items"}), json!({}));
    let t = Instant::now();
    let b = r.read_batch(ReadRequest::dataset("items")).await.unwrap();
    assert_eq!(b.num_rows(), 3);
    assert_eq!(log.count(), 2);
    assert!(
        t.elapsed() >= Duration::from_millis(950),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn server_error_then_success_get_is_retried_post_only_if_idempotent() {
    // GET: retried.
    let log = Arc::new(Log::default());
    let url = serve(flaky(
        log.clone(),
        1,
        StatusCode::INTERNAL_SERVER_ERROR,
        None,
    ))
    .await;
    let r = one_endpoint(&url, json!({"name": "items", "path": "items"}), json!({}));
    assert_eq!(
        r.read_batch(ReadRequest::dataset("items"))
            .await
            .unwrap()
            .num_rows(),
        3
    );
    assert_eq!(log.count(), 2);

    // POST, not declared idempotent: not retried.
    let log = Arc::new(Log::default());
    let url = serve(flaky(
        log.clone(),
        1,
        StatusCode::INTERNAL_SERVER_ERROR,
        None,
    ))
    .await;
    let r = one_endpoint(
        &url,
        json!({"name": "items", "path": "items", "method": "POST", "body": {"q": 1}}),
        json!({}),
    );
    let e = r
        .read_batch(ReadRequest::dataset("items"))
        .await
        .unwrap_err();
    assert_eq!(log.count(), 1);
    assert_eq!(e.vendor_code(), Some(500), "{e}");
    assert_eq!(e.connector(), Some("rest"));
    assert_eq!(e.operation(), Some("read"));
    assert!(
        e.location()
            .and_then(|l| l.url.as_deref())
            .is_some_and(|u| u.ends_with("/items")),
        "{e}"
    );

    // POST declared idempotent: retried.
    let log = Arc::new(Log::default());
    let url = serve(flaky(
        log.clone(),
        1,
        StatusCode::INTERNAL_SERVER_ERROR,
        None,
    ))
    .await;
    let r = one_endpoint(
        &url,
        json!({"name": "items", "path": "items", "method": "POST", "body": {"q": 1}, "idempotent": true}),
        json!({}),
    );
    assert_eq!(
        r.read_batch(ReadRequest::dataset("items"))
            .await
            .unwrap()
            .num_rows(),
        3
    );
    assert_eq!(log.count(), 2);
}

#[tokio::test]
async fn retries_give_up_after_max_retries() {
    let log = Arc::new(Log::default());
    let url = serve(flaky(log.clone(), 100, StatusCode::BAD_GATEWAY, None)).await;
    let r = one_endpoint(
        &url,
        json!({"name": "items", "path": "items"}),
        json!({"retry": {"max_retries": 2, "min_delay_ms": 10, "max_delay_ms": 20}}),
    );
    let e = r
        .read_batch(ReadRequest::dataset("items"))
        .await
        .unwrap_err();
    assert_eq!(log.count(), 3);
    assert_eq!(e.status(), ErrorStatus::Persistent, "{e}");
    assert!(
        e.context()
            .iter()
            .any(|(k, v)| *k == "attempts" && v == "3"),
        "{e}"
    );
}

#[tokio::test]
async fn slow_responses_time_out() {
    let log = Arc::new(Log::default());
    let l2 = log.clone();
    let router = Router::new().route(
        "/slow",
        get(move |uri: Uri| {
            let log = l2.clone();
            async move {
                log.hit(&uri);
                tokio::time::sleep(Duration::from_secs(5)).await;
                json_response(&items(0..1))
            }
        }),
    );
    let url = serve(router).await;
    let r = one_endpoint(
        &url,
        json!({"name": "slow", "path": "slow"}),
        json!({"timeout_ms": 200, "retry": {"max_retries": 1, "min_delay_ms": 10, "max_delay_ms": 10}}),
    );
    let t = Instant::now();
    let e = r
        .read_batch(ReadRequest::dataset("slow"))
        .await
        .unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert_eq!(log.count(), 2, "a GET that timed out is retried once");
    assert!(e.to_string().contains("/slow"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// Broken bodies
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn truncated_and_malformed_json_are_decode_errors_naming_the_url() {
    let router = Router::new()
        .route(
            "/truncated",
            get(|| async { (StatusCode::OK, r#"{"data": [{"id": 1}, {"id"#) }),
        )
        .route(
            "/malformed",
            get(|| async { (StatusCode::OK, r#"{"data": [{"id": 1},, ]}"#) }),
        )
        .route(
            "/html",
            get(|| async { (StatusCode::OK, "<html>oops</html>") }),
        );
    let url = serve(router).await;
    for (path, word) in [
        ("truncated", "truncated"),
        ("malformed", "invalid"),
        ("html", "invalid"),
    ] {
        let r = one_endpoint(
            &url,
            json!({"name": path, "path": path, "records": "/data"}),
            json!({}),
        );
        let e = r.read_batch(ReadRequest::dataset(path)).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Decode, "{path}: {e}");
        assert!(e.message().contains(word), "{path}: {e}");
        let loc = e.location().cloned().unwrap_or_default();
        assert_eq!(
            loc.url.as_deref(),
            Some(format!("{url}/{path}").as_str()),
            "{e}"
        );
        assert_eq!(loc.table.as_deref(), Some(path), "{e}");
        assert_eq!(e.connector(), Some("rest"));
        assert_eq!(e.operation(), Some("read"));
        assert!(e.to_string().contains(&format!("/{path}")), "{e}");
    }
}

#[tokio::test]
async fn a_later_page_that_does_not_fit_the_schema_is_an_error_naming_its_url() {
    let router = Router::new().route(
        "/drift",
        get(|Query(q): Params| async move {
            match q.get("page").map(String::as_str) {
                Some("1") => json_response(&json!([{"id": 1, "n": 10}, {"id": 2, "n": 20}])),
                Some("2") => json_response(&json!([{"id": 3, "n": "not a number"}])),
                _ => json_response(&json!([])),
            }
        }),
    );
    let url = serve(router).await;
    let r = one_endpoint(
        &url,
        json!({"name": "d", "path": "drift", "pagination": {"style": "page_number"}}),
        json!({}),
    );
    let e = r.read_batch(ReadRequest::dataset("d")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert_eq!(e.connector(), Some("rest"));
    let shown = e.location().and_then(|l| l.url.clone()).unwrap_or_default();
    assert!(shown.ends_with("/drift?page=2"), "{e}");
}

#[tokio::test]
async fn records_pointer_to_nothing_is_an_error() {
    let router = Router::new().route("/x", get(|| async { json_response(&json!({"items": []})) }));
    let url = serve(router).await;
    let r = one_endpoint(
        &url,
        json!({"name": "x", "path": "x", "records": "/data"}),
        json!({}),
    );
    let e = r.read_batch(ReadRequest::dataset("x")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(e.message().contains("/data"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// Auth
// ---------------------------------------------------------------------------------------------

const API_KEY: &str = "sk_live_ZZ9plural-Z-alpha";

/// `/bearer`, `/basic`, `/header-key` check their credentials; `/query-key` checks `?api_key=`,
/// pages with a `Link` header that echoes the key (as many servers do) and fails page 3 with a
/// body that echoes the request URL.
fn auth_router() -> Router {
    Router::new()
        .route(
            "/bearer",
            get(|h: HeaderMap| async move {
                if h.get("authorization").and_then(|v| v.to_str().ok()) == Some("Bearer tok-1") {
                    json_response(&items(0..2))
                } else {
                    (
                        StatusCode::UNAUTHORIZED,
                        [("www-authenticate", "Bearer")],
                        "no",
                    )
                        .into_response()
                }
            }),
        )
        .route(
            "/basic",
            get(|h: HeaderMap| async move {
                // base64("ann:s3cret")
                if h.get("authorization").and_then(|v| v.to_str().ok())
                    == Some("Basic YW5uOnMzY3JldA==")
                {
                    json_response(&items(0..2))
                } else {
                    (
                        StatusCode::UNAUTHORIZED,
                        [("www-authenticate", "Basic realm=\"x\"")],
                        "no",
                    )
                        .into_response()
                }
            }),
        )
        .route(
            "/header-key",
            get(|h: HeaderMap| async move {
                if h.get("x-api-key").and_then(|v| v.to_str().ok()) == Some(API_KEY) {
                    json_response(&items(0..2))
                } else {
                    (StatusCode::FORBIDDEN, "bad key").into_response()
                }
            }),
        )
        .route(
            "/query-key",
            get(|uri: Uri, Query(q): Params| async move {
                let keys = uri.query().unwrap_or("").matches("api_key=").count();
                if q.get("api_key").map(String::as_str) != Some(API_KEY) || keys != 1 {
                    return (
                        StatusCode::UNAUTHORIZED,
                        format!("key missing or sent {keys} times in {uri}"),
                    )
                        .into_response();
                }
                let page: i64 = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
                if page == 3 {
                    return (StatusCode::BAD_REQUEST, format!("cannot serve {uri}"))
                        .into_response();
                }
                let link = format!(
                    "</query-key?page={}&api_key={API_KEY}>; rel=\"next\"",
                    page + 1
                );
                (
                    StatusCode::OK,
                    [("link", link)],
                    items(page * 10..page * 10 + 2).to_string(),
                )
                    .into_response()
            }),
        )
}

#[tokio::test]
async fn bearer_and_basic_auth() {
    let url = serve(auth_router()).await;
    let ok = one_endpoint(
        &url,
        json!({"name": "b", "path": "bearer"}),
        json!({"auth": {"type": "bearer", "token": "tok-1"}}),
    );
    assert_eq!(
        ok.read_batch(ReadRequest::dataset("b"))
            .await
            .unwrap()
            .num_rows(),
        2
    );
    let bad = one_endpoint(
        &url,
        json!({"name": "b", "path": "bearer"}),
        json!({"auth": {"type": "bearer", "token": "tok-2"}}),
    );
    let e = bad.read_batch(ReadRequest::dataset("b")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Authentication, "{e}");
    assert!(!e.to_string().contains("tok-2") && !format!("{e:?}").contains("tok-2"));
    assert_eq!(bad.client().requests_sent(), 1, "a 401 is not retried");
    let e = Source::check(&bad).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Authentication, "{e}");
    assert_eq!(e.operation(), Some("check"));

    let ok = one_endpoint(
        &url,
        json!({"name": "b", "path": "basic"}),
        json!({"auth": {"type": "basic", "username": "ann", "password": "s3cret"}}),
    );
    assert_eq!(
        ok.read_batch(ReadRequest::dataset("b"))
            .await
            .unwrap()
            .num_rows(),
        2
    );
    let bad = one_endpoint(
        &url,
        json!({"name": "b", "path": "basic"}),
        json!({"auth": {"type": "basic", "username": "ann", "password": "wrong-pw"}}),
    );
    let e = bad.read_batch(ReadRequest::dataset("b")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Authentication, "{e}");
    assert!(!format!("{e} {e:?} {bad:?}").contains("wrong-pw"));
}

#[tokio::test]
async fn api_key_in_a_header() {
    let url = serve(auth_router()).await;
    let ok = one_endpoint(
        &url,
        json!({"name": "k", "path": "header-key"}),
        json!({"auth": {"type": "api_key", "name": "X-API-Key", "value": API_KEY}}),
    );
    assert_eq!(
        ok.read_batch(ReadRequest::dataset("k"))
            .await
            .unwrap()
            .num_rows(),
        2
    );
    assert!(!format!("{ok:?}").contains(API_KEY));
    let bad = one_endpoint(
        &url,
        json!({"name": "k", "path": "header-key"}),
        json!({"auth": {"type": "api_key", "name": "X-API-Key", "value": "nope-key"}}),
    );
    let e = bad.read_batch(ReadRequest::dataset("k")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Permission, "{e}");
}

#[tokio::test]
async fn api_key_in_the_query_never_appears_in_errors() {
    let url = serve(auth_router()).await;
    let r = one_endpoint(
        &url,
        json!({"name": "k", "path": "query-key", "pagination": {"style": "link_header"}}),
        json!({"auth": {"type": "api_key", "name": "api_key", "value": API_KEY, "location": "query"}}),
    );
    // Pages 1 and 2 arrive (the key was sent exactly once each time, also on the echoed next
    // link); page 3 fails with a body that echoes the request URL.
    let e = r.read_batch(ReadRequest::dataset("k")).await.unwrap_err();
    assert_eq!(r.client().requests_sent(), 3, "{e}");
    assert_eq!(e.vendor_code(), Some(400), "{e}");
    let shown = format!("{e} {e:?} {r:?}");
    assert!(!shown.contains(API_KEY), "the API key leaked: {shown}");
    assert!(shown.contains("page=3"), "{shown}");
    // A wrong key: 401, and neither key shows.
    let bad = one_endpoint(
        &url,
        json!({"name": "k", "path": "query-key"}),
        json!({"auth": {"type": "api_key", "name": "api_key", "value": "wrong-key-123", "location": "query"}}),
    );
    let e = bad.read_batch(ReadRequest::dataset("k")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Authentication, "{e}");
    assert!(!format!("{e} {e:?}").contains("wrong-key-123"), "{e}");
    // A connection error (nothing listens) does not show it either.
    let down = one_endpoint(
        "http://127.0.0.1:9",
        json!({"name": "k", "path": "query-key"}),
        json!({"auth": {"type": "api_key", "name": "api_key", "value": API_KEY, "location": "query"}, "retry": {"max_retries": 0}}),
    );
    let e = down
        .read_batch(ReadRequest::dataset("k"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connection, "{e}");
    assert!(!format!("{e} {e:?}").contains(API_KEY), "{e}");
}

// ---------------------------------------------------------------------------------------------
// OAuth2 client credentials
// ---------------------------------------------------------------------------------------------

struct OAuth {
    token_calls: AtomicUsize,
    api_calls: AtomicUsize,
    expires_in: u64,
    /// Tokens issued before this many token calls are rejected (simulates revocation).
    reject_below: AtomicUsize,
    last_form: std::sync::Mutex<String>,
}

fn oauth_router(state: Arc<OAuth>) -> Router {
    let s1 = state.clone();
    let s2 = state.clone();
    let s3 = state;
    Router::new()
        .route(
            "/token",
            post(move |h: HeaderMap, body: Bytes| {
                let s = s1.clone();
                async move {
                    // base64("client-a:client-secret-xyz")
                    if h.get("authorization").and_then(|v| v.to_str().ok())
                        != Some("Basic Y2xpZW50LWE6Y2xpZW50LXNlY3JldC14eXo=")
                    {
                        return (StatusCode::BAD_REQUEST, r#"{"error":"invalid_client"}"#).into_response();
                    }
                    *s.last_form.lock().unwrap() = String::from_utf8_lossy(&body).into_owned();
                    let n = s.token_calls.fetch_add(1, Ordering::SeqCst) + 1;
                    json_response(&json!({"access_token": format!("access-{n}"), "token_type": "bearer", "expires_in": s.expires_in}))
                }
            }),
        )
        .route(
            "/api/items",
            get(move |h: HeaderMap| {
                let s = s2.clone();
                async move {
                    s.api_calls.fetch_add(1, Ordering::SeqCst);
                    let n: usize = h
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.strip_prefix("Bearer access-"))
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0);
                    if n == 0 || n < s.reject_below.load(Ordering::SeqCst) {
                        return (StatusCode::UNAUTHORIZED, "expired token").into_response();
                    }
                    json_response(&items(0..2))
                }
            }),
        )
        .route(
            "/api/pages",
            get(move |h: HeaderMap, Query(q): Params| {
                let s = s3.clone();
                async move {
                    s.api_calls.fetch_add(1, Ordering::SeqCst);
                    let n: usize = h
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.strip_prefix("Bearer access-"))
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0);
                    if n == 0 || n < s.reject_below.load(Ordering::SeqCst) {
                        return (StatusCode::UNAUTHORIZED, "expired token").into_response();
                    }
                    let page: i64 = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
                    if page == 1 {
                        // The token is revoked right after the first page: the next pages,
                        // requested concurrently with it, are all rejected.
                        s.reject_below.fetch_max(n + 1, Ordering::SeqCst);
                    }
                    json_response(&json!({"total": 8, "data": items(page * 2..page * 2 + 2)}))
                }
            }),
        )
}

fn oauth_state(expires_in: u64) -> Arc<OAuth> {
    Arc::new(OAuth {
        token_calls: AtomicUsize::new(0),
        api_calls: AtomicUsize::new(0),
        expires_in,
        reject_below: AtomicUsize::new(0),
        last_form: std::sync::Mutex::new(String::new()),
    })
}

fn oauth_rest(url: &str, secret: &str) -> connector_http::Rest {
    one_endpoint(
        url,
        json!({"name": "items", "path": "api/items"}),
        json!({"auth": {
            "type": "o_auth2_client_credentials",
            "token_url": format!("{url}/token"),
            "client_id": "client-a",
            "client_secret": secret,
            "scopes": ["read", "write"],
            "extra": {"audience": "api"}
        }}),
    )
}

#[tokio::test]
async fn oauth2_token_is_fetched_once_for_many_requests() {
    let state = oauth_state(3600);
    let url = serve(oauth_router(state.clone())).await;
    let r = oauth_rest(&url, "client-secret-xyz");
    for _ in 0..4 {
        assert_eq!(
            r.read_batch(ReadRequest::dataset("items"))
                .await
                .unwrap()
                .num_rows(),
            2
        );
    }
    assert_eq!(state.token_calls.load(Ordering::SeqCst), 1);
    assert_eq!(state.api_calls.load(Ordering::SeqCst), 4);
    let form = state.last_form.lock().unwrap().clone();
    assert!(form.contains("grant_type=client_credentials"), "{form}");
    assert!(form.contains("scope=read+write"), "{form}");
    assert!(form.contains("audience=api"), "{form}");
    assert!(!format!("{r:?}").contains("client-secret-xyz"));
}

#[tokio::test]
async fn oauth2_token_is_refreshed_when_it_expires() {
    let state = oauth_state(1);
    let url = serve(oauth_router(state.clone())).await;
    let r = oauth_rest(&url, "client-secret-xyz");
    r.read_batch(ReadRequest::dataset("items")).await.unwrap();
    r.read_batch(ReadRequest::dataset("items")).await.unwrap();
    assert_eq!(state.token_calls.load(Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    r.read_batch(ReadRequest::dataset("items")).await.unwrap();
    assert_eq!(state.token_calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn oauth2_token_is_refreshed_once_on_a_401() {
    let state = oauth_state(3600);
    let url = serve(oauth_router(state.clone())).await;
    let r = oauth_rest(&url, "client-secret-xyz");
    r.read_batch(ReadRequest::dataset("items")).await.unwrap();
    // The server revokes access-1: the next request gets a 401, the client fetches a new token
    // once and the request succeeds.
    state.reject_below.store(2, Ordering::SeqCst);
    r.read_batch(ReadRequest::dataset("items")).await.unwrap();
    assert_eq!(state.token_calls.load(Ordering::SeqCst), 2);
    assert_eq!(state.api_calls.load(Ordering::SeqCst), 3);
    // A server that rejects every token: one refresh, then Authentication (no loop).
    state.reject_below.store(usize::MAX, Ordering::SeqCst);
    let e = r
        .read_batch(ReadRequest::dataset("items"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Authentication, "{e}");
    assert_eq!(state.token_calls.load(Ordering::SeqCst), 3);
    assert_eq!(state.api_calls.load(Ordering::SeqCst), 5);
}

#[tokio::test]
async fn oauth2_concurrent_rejections_refresh_the_token_once() {
    let state = oauth_state(3600);
    let url = serve(oauth_router(state.clone())).await;
    let r = one_endpoint(
        &url,
        json!({"name": "pages", "path": "api/pages", "records": "/data", "concurrency": 4,
               "pagination": {"style": "page_number", "size": 2}, "total": {"pointer": "/total"}}),
        json!({"auth": {
            "type": "o_auth2_client_credentials",
            "token_url": format!("{url}/token"),
            "client_id": "client-a",
            "client_secret": "client-secret-xyz"
        }}),
    );
    let b = r.read_batch(ReadRequest::dataset("pages")).await.unwrap();
    assert_eq!(ints(&b, "id"), (2..10).collect::<Vec<_>>());
    // Pages 2..4 were all rejected with token 1; one new token serves all three retries.
    assert_eq!(state.api_calls.load(Ordering::SeqCst), 1 + 3 + 3);
    assert_eq!(state.token_calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn oauth2_bad_client_secret_is_an_authentication_error() {
    let state = oauth_state(3600);
    let url = serve(oauth_router(state.clone())).await;
    let r = oauth_rest(&url, "not-the-secret");
    let e = r
        .read_batch(ReadRequest::dataset("items"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Authentication, "{e}");
    assert_eq!(state.api_calls.load(Ordering::SeqCst), 0);
    assert!(!format!("{e} {e:?}").contains("not-the-secret"));
    assert!(e.to_string().contains("/token"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// Pagination styles and loops
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_server_that_ignores_the_page_parameter_is_stopped() {
    let log = Arc::new(Log::default());
    let l2 = log.clone();
    let router = Router::new().route(
        "/same",
        get(move |uri: Uri| {
            let log = l2.clone();
            async move {
                log.hit(&uri);
                json_response(&json!({"total": 50, "data": items(0..5)}))
            }
        }),
    );
    let url = serve(router).await;
    for concurrency in [1_usize, 3] {
        let before = log.count();
        let r = one_endpoint(
            &url,
            json!({"name": "same", "path": "same", "records": "/data",
                   "pagination": {"style": "page_number", "size_param": "per_page", "size": 5},
                   "concurrency": concurrency, "total": {"pointer": "/total"}}),
            json!({}),
        );
        let e = r
            .read_batch(ReadRequest::dataset("same"))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        assert!(e.message().contains("pagination loop"), "{e}");
        let sent = log.count() - before;
        assert!(
            (2..=1 + concurrency).contains(&sent),
            "stopped at the first repeat, {sent} requests (concurrency {concurrency})"
        );
    }
}

#[tokio::test]
async fn a_repeating_cursor_or_next_url_is_stopped() {
    let log = Arc::new(Log::default());
    let (l2, l3) = (log.clone(), log.clone());
    let router = Router::new()
        .route(
            "/cursor",
            get(move |uri: Uri| {
                let log = l2.clone();
                async move {
                    let n = log.hit(&uri) as i64;
                    // Different rows every time, but always the same cursor.
                    json_response(&json!({"data": items(n * 10..n * 10 + 2), "next": "abc"}))
                }
            }),
        )
        .route(
            "/next",
            get(move |uri: Uri| {
                let log = l3.clone();
                async move {
                    let n = log.hit(&uri) as i64;
                    json_response(&json!({"data": items(n * 10..n * 10 + 2), "links": {"next": "/next?page=2"}}))
                }
            }),
        );
    let url = serve(router).await;
    let r = one_endpoint(
        &url,
        json!({"name": "c", "path": "cursor", "records": "/data", "pagination": {"style": "cursor", "param": "cursor", "pointer": "/next"}}),
        json!({}),
    );
    let e = r.read_batch(ReadRequest::dataset("c")).await.unwrap_err();
    assert!(e.message().contains("pagination loop"), "{e}");
    assert_eq!(r.client().requests_sent(), 2);

    let r = one_endpoint(
        &url,
        json!({"name": "n", "path": "next", "records": "/data", "pagination": {"style": "next_url", "pointer": "/links/next"}}),
        json!({}),
    );
    let e = r.read_batch(ReadRequest::dataset("n")).await.unwrap_err();
    assert!(e.message().contains("pagination loop"), "{e}");
    assert_eq!(r.client().requests_sent(), 2);
}

#[tokio::test]
async fn max_pages_caps_a_read() {
    let log = Arc::new(Log::default());
    let l2 = log.clone();
    let router = Router::new().route(
        "/pages",
        get(move |uri: Uri, Query(q): Params| {
            let log = l2.clone();
            async move {
                log.hit(&uri);
                let p: i64 = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
                json_response(&items(p * 10..p * 10 + 10))
            }
        }),
    );
    let url = serve(router).await;
    let r = one_endpoint(
        &url,
        json!({"name": "p", "path": "pages", "pagination": {"style": "page_number"}, "max_pages": 3}),
        json!({}),
    );
    let b = r.read_batch(ReadRequest::dataset("p")).await.unwrap();
    assert_eq!(b.num_rows(), 30);
    assert_eq!(log.count(), 3);
}

#[tokio::test]
async fn cursor_and_next_url_from_the_body() {
    let router = Router::new()
        .route(
            "/cursor",
            get(|Query(q): Params| async move {
                let at: i64 = q
                    .get("after")
                    .and_then(|c| c.strip_prefix("c-"))
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(0);
                let next = if at < 20 {
                    json!(format!("c-{}", at + 10))
                } else {
                    Value::Null
                };
                // Base parameters must survive into every page.
                assert_eq!(q.get("kind").map(String::as_str), Some("x"));
                json_response(
                    &json!({"result": {"rows": items(at..at + 10)}, "meta": {"next_cursor": next}}),
                )
            }),
        )
        .route(
            "/next",
            get(|Query(q): Params| async move {
                let page: i64 = q.get("page").and_then(|c| c.parse().ok()).unwrap_or(0);
                let next = if page < 3 {
                    json!(format!("next?page={}", page + 1))
                } else {
                    json!("")
                };
                json_response(
                    &json!({"results": items(page * 5..page * 5 + 5), "links": {"next": next}}),
                )
            }),
        );
    let url = serve(router).await;
    let r = one_endpoint(
        &url,
        json!({"name": "c", "path": "cursor", "params": {"kind": "x"}, "records": "/result/rows",
               "pagination": {"style": "cursor", "param": "after", "pointer": "/meta/next_cursor"}}),
        json!({}),
    );
    let b = r.read_batch(ReadRequest::dataset("c")).await.unwrap();
    assert_eq!(ints(&b, "id"), (0..30).collect::<Vec<_>>());
    assert_eq!(r.client().requests_sent(), 3);

    let r = one_endpoint(
        &url,
        json!({"name": "n", "path": "next", "records": "/results",
               "pagination": {"style": "next_url", "pointer": "/links/next"}}),
        json!({}),
    );
    let b = r.read_batch(ReadRequest::dataset("n")).await.unwrap();
    assert_eq!(ints(&b, "id"), (0..20).collect::<Vec<_>>());
    assert_eq!(r.client().requests_sent(), 4);
}

#[tokio::test]
async fn total_from_a_body_pointer_drives_concurrent_pages() {
    let log = Arc::new(Log::default());
    let l2 = log.clone();
    let router = Router::new().route(
        "/t",
        get(move |uri: Uri, Query(q): Params| {
            let log = l2.clone();
            async move {
                log.hit(&uri);
                let off: i64 = q.get("offset").and_then(|c| c.parse().ok()).unwrap_or(0);
                let lim: i64 = q.get("limit").and_then(|c| c.parse().ok()).unwrap_or(10);
                let end = (off + lim).min(95);
                json_response(&json!({"total": 95, "data": items(off..end)}))
            }
        }),
    );
    let url = serve(router).await;
    let r = one_endpoint(
        &url,
        json!({"name": "t", "path": "t", "records": "/data", "concurrency": 4,
               "pagination": {"style": "offset_limit", "limit": 10}, "total": {"pointer": "/total"}}),
        json!({}),
    );
    let b = r.read_batch(ReadRequest::dataset("t")).await.unwrap();
    assert_eq!(ints(&b, "id"), (0..95).collect::<Vec<_>>());
    assert_eq!(log.count(), 10);
}

/// Serves 30 rows, at most 7 per page whatever the client asks for (like APIs that cap
/// `per_page`), by page number (`page`, 1-based) or offset (`offset`).
fn capped_router(log: Arc<Log>) -> Router {
    Router::new().route(
        "/capped",
        get(move |uri: Uri, Query(q): Params| {
            let log = log.clone();
            async move {
                log.hit(&uri);
                let asked: i64 = q.get("limit").and_then(|p| p.parse().ok()).unwrap_or(10);
                let size = asked.min(7);
                let start = match (q.get("page"), q.get("offset")) {
                    (Some(p), _) => (p.parse::<i64>().unwrap_or(1) - 1) * size,
                    (None, Some(o)) => o.parse().unwrap_or(0),
                    (None, None) => 0,
                };
                let end = (start + size).min(30);
                json_response(&json!({"total": 30, "data": items(start.min(30)..end)}))
            }
        }),
    )
}

#[tokio::test]
async fn a_server_that_caps_the_page_size_loses_no_rows() {
    let log = Arc::new(Log::default());
    let url = serve(capped_router(log.clone())).await;
    for pagination in [
        json!({"style": "page_number", "size_param": "limit", "size": 10}),
        json!({"style": "offset_limit", "limit": 10}),
    ] {
        for concurrency in [1, 3] {
            let r = one_endpoint(
                &url,
                json!({"name": "c", "path": "capped", "records": "/data", "concurrency": concurrency,
                       "pagination": pagination.clone(), "total": {"pointer": "/total"}}),
                json!({}),
            );
            let b = r.read_batch(ReadRequest::dataset("c")).await.unwrap();
            assert_eq!(
                ints(&b, "id"),
                (0..30).collect::<Vec<_>>(),
                "{pagination} concurrency {concurrency}"
            );
            assert_eq!(
                r.client().requests_sent(),
                5,
                "{pagination} concurrency {concurrency}"
            );
            // A limit is met with the served page size: 20 rows need 3 pages of 7.
            let r = one_endpoint(
                &url,
                json!({"name": "c", "path": "capped", "records": "/data", "concurrency": concurrency,
                       "pagination": pagination.clone(), "total": {"pointer": "/total"}}),
                json!({}),
            );
            let b = r
                .read_batch(ReadRequest::dataset("c").with_limit(20))
                .await
                .unwrap();
            assert_eq!(
                ints(&b, "id"),
                (0..20).collect::<Vec<_>>(),
                "{pagination} concurrency {concurrency}"
            );
            assert_eq!(
                r.client().requests_sent(),
                3,
                "{pagination} concurrency {concurrency}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// NDJSON and CSV bodies
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn ndjson_and_csv_bodies() {
    let router = Router::new()
        .route(
            "/nd",
            get(|| async { "{\"id\":1,\"name\":\"a\",\"tags\":[\"x\"]}\n\n{\"id\":2,\"name\":null,\"tags\":[]}\n{\"id\":3,\"name\":\"c\",\"tags\":[\"y\",\"z\"]}\n" }),
        )
        .route(
            "/nd-bad",
            get(|| async { "{\"id\":1}\n{\"id\":2,\n" }),
        )
        .route(
            "/csv",
            get(|| async { "\u{feff}id,name,price\n1,alpha,1.5\n2,\"b, with comma\",2.25\n3,,3\n" }),
        );
    let url = serve(router).await;
    let r = one_endpoint(
        &url,
        json!({"name": "nd", "path": "nd", "format": "ndjson"}),
        json!({}),
    );
    let b = r.read_batch(ReadRequest::dataset("nd")).await.unwrap();
    assert_eq!(ints(&b, "id"), vec![1, 2, 3]);
    assert_eq!(
        strings(&b, "name"),
        vec![Some("a".into()), None, Some("c".into())]
    );
    assert!(matches!(
        b.schema().field_with_name("tags").unwrap().data_type(),
        DataType::List(_)
    ));

    let r = one_endpoint(
        &url,
        json!({"name": "bad", "path": "nd-bad", "format": "ndjson"}),
        json!({}),
    );
    let e = r.read_batch(ReadRequest::dataset("bad")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Decode, "{e}");
    assert_eq!(e.location().and_then(|l| l.line), Some(2), "{e}");

    let r = one_endpoint(
        &url,
        json!({"name": "csv", "path": "csv", "format": "csv"}),
        json!({}),
    );
    let b = r.read_batch(ReadRequest::dataset("csv")).await.unwrap();
    assert_eq!(ints(&b, "id"), vec![1, 2, 3]);
    assert_eq!(
        strings(&b, "name"),
        vec![Some("alpha".into()), Some("b, with comma".into()), None]
    );
    assert_eq!(
        b.schema().field_with_name("price").unwrap().data_type(),
        &DataType::Float64
    );
}

// ---------------------------------------------------------------------------------------------
// The sink
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct Received {
    bodies: std::sync::Mutex<Vec<(String, String)>>,
    calls: AtomicUsize,
}

/// Accepts every POST to `/in`, except those whose body contains `"id":<fail_id>` (500, always).
fn sink_router(state: Arc<Received>, fail_id: Option<i64>) -> Router {
    Router::new().route(
        "/in",
        post(move |h: HeaderMap, body: Bytes| {
            let s = state.clone();
            async move {
                s.calls.fetch_add(1, Ordering::SeqCst);
                let text = String::from_utf8_lossy(&body).into_owned();
                if let Some(id) = fail_id
                    && text.contains(&format!("\"id\":{id},"))
                {
                    return (StatusCode::INTERNAL_SERVER_ERROR, "database is on fire")
                        .into_response();
                }
                let ct = h
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                s.bodies.lock().unwrap().push((ct, text));
                StatusCode::CREATED.into_response()
            }
        }),
    )
}

fn rows(n: i64) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from((0..n).collect::<Vec<_>>())),
            Arc::new(StringArray::from(
                (0..n)
                    .map(|i| (i % 3 != 0).then(|| format!("n{i}")))
                    .collect::<Vec<_>>(),
            )),
        ],
    )
    .unwrap()
}

#[tokio::test]
async fn sink_sends_json_arrays_and_ndjson_in_batches() {
    for (format, ct) in [
        ("json_array", "application/json"),
        ("ndjson", "application/x-ndjson"),
    ] {
        let state = Arc::new(Received::default());
        let url = serve(sink_router(state.clone(), None)).await;
        let r = one_endpoint(
            &url,
            json!({"name": "x", "path": "x"}),
            json!({"sink": {"format": format, "batch_size": 3}}),
        );
        let b = rows(8);
        let report = r
            .write_batches(
                WriteRequest::append("in"),
                b.schema(),
                vec![b.slice(0, 5), b.slice(5, 3)],
            )
            .await
            .unwrap();
        assert_eq!(report.rows, 8);
        let bodies = state.bodies.lock().unwrap().clone();
        // 5 rows → 3 + 2, 3 rows → 3.
        assert_eq!(bodies.len(), 3, "{bodies:?}");
        let mut ids = Vec::new();
        for (got_ct, body) in &bodies {
            assert_eq!(got_ct, ct);
            let recs: Vec<Value> = if format == "ndjson" {
                body.lines()
                    .map(|l| serde_json::from_str(l).unwrap())
                    .collect()
            } else {
                serde_json::from_str(body).unwrap()
            };
            ids.extend(recs.iter().map(|r| r["id"].as_i64().unwrap()));
        }
        assert_eq!(ids, (0..8).collect::<Vec<_>>());
    }
}

#[tokio::test]
async fn sink_partial_failure_lists_failed_rows_and_accepted_rows() {
    // Continue: every batch is sent; the one carrying id 4 (rows 3..6) fails permanently.
    let state = Arc::new(Received::default());
    let url = serve(sink_router(state.clone(), Some(4))).await;
    let r = one_endpoint(
        &url,
        json!({"name": "x", "path": "x"}),
        json!({"sink": {"batch_size": 3, "on_error": "continue", "concurrency": 2}}),
    );
    let b = rows(8);
    let e = r
        .write_batch(WriteRequest::append("in"), b.clone())
        .await
        .unwrap_err();
    assert_eq!(
        state.calls.load(Ordering::SeqCst),
        3,
        "a POST is not retried"
    );
    assert!(e.message().contains("3..6"), "{e}");
    assert!(e.message().contains("5 rows were accepted"), "{e}");
    assert!(
        e.context()
            .iter()
            .any(|(k, v)| *k == "rows_accepted" && v == "5"),
        "{e}"
    );
    assert!(
        e.context()
            .iter()
            .any(|(k, v)| *k == "failed_rows" && v == "3..6"),
        "{e}"
    );
    assert_eq!(e.connector(), Some("rest"));
    assert_eq!(e.operation(), Some("write"));
    assert!(e.message().contains("database is on fire"), "{e}");

    // Fail: stops at the failed batch; what was accepted before is reported.
    let state = Arc::new(Received::default());
    let url = serve(sink_router(state.clone(), Some(4))).await;
    let r = one_endpoint(
        &url,
        json!({"name": "x", "path": "x"}),
        json!({"sink": {"batch_size": 3}}),
    );
    let e = r
        .write_batch(WriteRequest::append("in"), b.clone())
        .await
        .unwrap_err();
    assert_eq!(state.calls.load(Ordering::SeqCst), 2);
    assert!(
        e.context()
            .iter()
            .any(|(k, v)| *k == "rows_accepted" && v == "3"),
        "{e}"
    );

    // Idempotent PUT-style sinks retry a 500 (here it fails every time: 1 + 3 retries).
    let state = Arc::new(Received::default());
    let url = serve(sink_router(state.clone(), Some(4))).await;
    let r = one_endpoint(
        &url,
        json!({"name": "x", "path": "x"}),
        json!({"sink": {"batch_size": 3, "idempotent": true}, "retry": {"min_delay_ms": 5, "max_delay_ms": 10}}),
    );
    let e = r
        .write_batch(WriteRequest::append("in"), b)
        .await
        .unwrap_err();
    assert_eq!(state.calls.load(Ordering::SeqCst), 1 + 4, "{e}");
}

#[tokio::test]
async fn check_and_discover_errors_name_their_operation() {
    let down = one_endpoint(
        "http://127.0.0.1:9",
        json!({"name": "x", "path": "x"}),
        json!({"retry": {"max_retries": 0}}),
    );
    let e = down.discover().await.unwrap_err();
    assert_eq!(e.operation(), Some("discover"), "{e}");
    assert_eq!(e.kind(), ErrorKind::Connection, "{e}");
    let c: GraphQLConfig = serde_json::from_value(json!({
        "url": "http://127.0.0.1:9/graphql",
        "retry": {"max_retries": 0},
        "queries": [{"name": "q", "query": "{ a { b } }", "records": "/a"}]
    }))
    .unwrap();
    let g = GraphQL::new(c).unwrap();
    let e = Source::check(&g).await.unwrap_err();
    assert_eq!(
        (e.connector(), e.operation()),
        (Some("graphql"), Some("check")),
        "{e}"
    );
    let e = g.discover().await.unwrap_err();
    assert_eq!(e.operation(), Some("discover"), "{e}");
}

#[tokio::test]
async fn sink_refuses_modes_other_than_append() {
    let r = one_endpoint(
        "http://127.0.0.1:9",
        json!({"name": "x", "path": "x"}),
        json!({}),
    );
    let e = r
        .write_batch(WriteRequest::overwrite("in"), rows(2))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
}

// ---------------------------------------------------------------------------------------------
// Rate limit and incremental reads
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn rate_limit_spaces_requests() {
    let log = Arc::new(Log::default());
    let l2 = log.clone();
    let router = Router::new().route(
        "/one",
        get(move |uri: Uri, Query(q): Params| {
            let log = l2.clone();
            async move {
                log.hit(&uri);
                let p: i64 = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
                json_response(&json!({"total": 10, "data": items(p..p + 1)}))
            }
        }),
    );
    let url = serve(router).await;
    for concurrency in [1, 4] {
        let before = log.count();
        let r = one_endpoint(
            &url,
            json!({"name": "one", "path": "one", "records": "/data", "concurrency": concurrency,
                   "pagination": {"style": "page_number", "size": 1}, "total": {"pointer": "/total"}}),
            json!({"requests_per_second": 20.0}),
        );
        let t = Instant::now();
        let b = r.read_batch(ReadRequest::dataset("one")).await.unwrap();
        let took = t.elapsed();
        assert_eq!(b.num_rows(), 10);
        assert_eq!(log.count() - before, 10);
        assert!(
            took >= Duration::from_millis(440),
            "10 requests at 20/s took {took:?} (concurrency {concurrency})"
        );
    }
}

#[tokio::test]
async fn incremental_reads_send_the_last_cursor() {
    let log = Arc::new(Log::default());
    let l2 = log.clone();
    let router = Router::new().route(
        "/changes",
        get(move |uri: Uri, Query(q): Params| {
            let log = l2.clone();
            async move {
                log.hit(&uri);
                let all = [
                    ("2024-01-01T00:00:00Z", 1),
                    ("2024-01-03T10:00:00Z", 2),
                    ("2024-01-02T00:00:00Z", 3),
                ];
                let since = q.get("updated_since").cloned().unwrap_or_default();
                let rows: Vec<Value> = all
                    .iter()
                    .filter(|(t, _)| *t > since.as_str())
                    .map(|(t, id)| json!({"id": id, "updated_at": t}))
                    .collect();
                json_response(&Value::Array(rows))
            }
        }),
    );
    let url = serve(router).await;
    let r = one_endpoint(
        &url,
        json!({"name": "changes", "path": "changes",
               "incremental": {"param": "updated_since", "field": "/updated_at"}}),
        json!({}),
    );
    assert_eq!(r.cursor("changes"), None);
    let first = r.read_batch(ReadRequest::dataset("changes")).await.unwrap();
    assert_eq!(first.num_rows(), 3);
    assert_eq!(r.cursor("changes").as_deref(), Some("2024-01-03T10:00:00Z"));
    // A limited read is partial and does not move the cursor.
    r.set_cursor("changes", "2024-01-01T12:00:00Z");
    r.read_batch(ReadRequest::dataset("changes").with_limit(1))
        .await
        .unwrap();
    assert_eq!(r.cursor("changes").as_deref(), Some("2024-01-01T12:00:00Z"));
    r.set_cursor("changes", "2024-01-03T10:00:00Z");
    let second = r.read_batch(ReadRequest::dataset("changes")).await.unwrap();
    assert_eq!(second.num_rows(), 0);
    let uris = log.uris();
    assert!(!uris[0].contains("updated_since"), "{uris:?}");
    assert!(
        uris.last()
            .unwrap()
            .contains("updated_since=2024-01-03T10%3A00%3A00Z"),
        "{uris:?}"
    );
    // An empty read keeps the cursor.
    assert_eq!(r.cursor("changes").as_deref(), Some("2024-01-03T10:00:00Z"));
}
