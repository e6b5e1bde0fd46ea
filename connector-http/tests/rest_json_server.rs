//! The REST source and sink against a real json-server 0.17 (`CONNECTOR_TEST_REST_URL`,
//! started by `cargo xtask peers up`). The fixture (`xtask/fixtures/db.json`) holds 250 posts
//! with ids 1..=250 and 5 users.

mod common;

use arrow::datatypes::DataType;
use connector_core::{ErrorKind, ReadRequest, SinkExt, Source, SourceExt, WriteRequest};
use serde_json::json;

use common::{ints, rest, rest_url, strings};

const POSTS: i64 = 250;

fn posts(pagination: serde_json::Value, more: serde_json::Value) -> connector_http::Rest {
    let mut ep = json!({"name": "posts", "path": "posts"});
    ep["pagination"] = pagination;
    if let (Some(e), serde_json::Value::Object(m)) = (ep.as_object_mut(), more) {
        e.extend(m);
    }
    rest(json!({"base_url": rest_url(), "endpoints": [ep]}))
}

fn page_number(size: u64) -> serde_json::Value {
    json!({"style": "page_number", "param": "_page", "size_param": "_limit", "size": size})
}

fn all_ids() -> Vec<i64> {
    (1..=POSTS).collect()
}

#[tokio::test]
async fn page_number_sequential_and_concurrent_return_the_same_rows_in_order() {
    let seq = posts(
        page_number(20),
        json!({"total": {"header": "X-Total-Count"}, "concurrency": 1}),
    );
    let a = seq.read_batch(ReadRequest::dataset("posts")).await.unwrap();
    assert_eq!(ints(&a, "id"), all_ids());
    // 250 rows in pages of 20: 13 pages, and no request after the total is reached.
    assert_eq!(seq.client().requests_sent(), 13);

    let conc = posts(
        page_number(20),
        json!({"total": {"header": "X-Total-Count"}, "concurrency": 4}),
    );
    let b = conc
        .read_batch(ReadRequest::dataset("posts"))
        .await
        .unwrap();
    assert_eq!(conc.client().requests_sent(), 13);
    assert_eq!(
        a, b,
        "concurrent pages must give the same rows in the same order"
    );
}

#[tokio::test]
async fn page_number_without_total_stops_at_the_short_page() {
    let r = posts(page_number(100), json!({}));
    let b = r.read_batch(ReadRequest::dataset("posts")).await.unwrap();
    assert_eq!(ints(&b, "id"), all_ids());
    assert_eq!(r.client().requests_sent(), 3);
}

#[tokio::test]
async fn offset_pagination_with_start_and_end() {
    let r = posts(
        json!({"style": "offset_limit", "offset_param": "_start", "end_param": "_end", "limit": 40}),
        json!({}),
    );
    let b = r.read_batch(ReadRequest::dataset("posts")).await.unwrap();
    assert_eq!(ints(&b, "id"), all_ids());
    // 6 full pages and a short one.
    assert_eq!(r.client().requests_sent(), 7);

    let c = posts(
        json!({"style": "offset_limit", "offset_param": "_start", "end_param": "_end", "limit": 40}),
        json!({"total": {"header": "X-Total-Count"}, "concurrency": 4}),
    );
    let b2 = c.read_batch(ReadRequest::dataset("posts")).await.unwrap();
    assert_eq!(b, b2);
    assert_eq!(c.client().requests_sent(), 7);
}

#[tokio::test]
async fn link_header_pagination_follows_rel_next() {
    let r = posts(
        json!({"style": "link_header"}),
        json!({"params": {"_page": "1", "_limit": "25"}}),
    );
    let b = r.read_batch(ReadRequest::dataset("posts")).await.unwrap();
    assert_eq!(ints(&b, "id"), all_ids());
    assert_eq!(r.client().requests_sent(), 10);
}

#[tokio::test]
async fn total_from_header_and_limit_stop_requests_early() {
    for concurrency in [1, 4] {
        let r = posts(
            page_number(10),
            json!({"total": {"header": "X-Total-Count"}, "concurrency": concurrency}),
        );
        let b = r
            .read_batch(ReadRequest::dataset("posts").with_limit(25))
            .await
            .unwrap();
        assert_eq!(ints(&b, "id"), (1..=25).collect::<Vec<_>>());
        assert_eq!(
            r.client().requests_sent(),
            3,
            "limit 25 over pages of 10 needs 3 requests (concurrency {concurrency})"
        );
    }
    // With a filter the limit cannot cap the pages up front, but the lazy page stream stops
    // once the limit is reached.
    let r = posts(
        page_number(10),
        json!({"total": {"header": "X-Total-Count"}}),
    );
    let b = r
        .read_batch(
            ReadRequest::dataset("posts")
                .with_filter(connector_core::Expr::cmp(
                    "id",
                    connector_core::CmpOp::Gt,
                    30,
                ))
                .with_limit(5),
        )
        .await
        .unwrap();
    assert_eq!(ints(&b, "id"), vec![31, 32, 33, 34, 35]);
    assert_eq!(r.client().requests_sent(), 4);
}

#[tokio::test]
async fn projection_and_filter_are_applied_locally() {
    let r = posts(
        page_number(50),
        json!({"total": {"header": "X-Total-Count"}}),
    );
    let b = r
        .read_batch(
            ReadRequest::dataset("posts")
                .with_projection(["title", "id"])
                .with_filter(connector_core::Expr::eq("author", "carol")),
        )
        .await
        .unwrap();
    let names: Vec<&str> = b
        .schema_ref()
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    assert_eq!(names, ["title", "id"]);
    // Cross-check against json-server's own filter.
    let expected = posts(
        page_number(50),
        json!({"params": {"author": "carol"}, "total": {"header": "X-Total-Count"}}),
    )
    .read_batch(ReadRequest::dataset("posts"))
    .await
    .unwrap();
    assert!(expected.num_rows() > 0 && expected.num_rows() < 250);
    assert_eq!(ints(&b, "id"), ints(&expected, "id"));
}

#[tokio::test]
async fn discover_infers_types_including_lists() {
    let r = posts(page_number(20), json!({"primary_key": ["id"]}));
    let infos = r.discover().await.unwrap();
    assert_eq!(infos.len(), 1);
    let s = &infos[0].schema;
    let ty = |n: &str| s.field_with_name(n).unwrap().data_type().clone();
    assert_eq!(ty("id"), DataType::Int64);
    assert_eq!(ty("title"), DataType::Utf8);
    assert_eq!(ty("views"), DataType::Int64);
    assert_eq!(ty("published"), DataType::Boolean);
    assert!(
        matches!(ty("tags"), DataType::List(f) if f.data_type() == &DataType::Utf8),
        "tags: {:?}",
        ty("tags")
    );
    assert_eq!(infos[0].primary_key, ["id"]);
    // Discovery reads one page only.
    assert_eq!(r.client().requests_sent(), 1);
}

#[tokio::test]
async fn a_missing_endpoint_is_not_found() {
    let r = rest(json!({
        "base_url": rest_url(),
        "endpoints": [{"name": "nope", "path": "no-such-resource"}]
    }));
    let e = r
        .read_batch(ReadRequest::dataset("nope"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert_eq!(e.connector(), Some("rest"));
    assert_eq!(e.operation(), Some("read"));
    let url = e.location().and_then(|l| l.url.clone()).unwrap_or_default();
    assert!(url.contains("/no-such-resource"), "{e}");
    // 404 is permanent: no retries.
    assert_eq!(r.client().requests_sent(), 1);
    // A dataset that is not configured at all is NotFound too, before any request.
    let e = r
        .read_batch(ReadRequest::dataset("unknown"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
}

/// json-server cannot create collections, and every conformance case writes ids 0..200, so the
/// sink writes rows with ids in a range of its own into the fixture's `users` collection, reads
/// them back by that range, and deletes them.
#[tokio::test]
async fn sink_posts_objects_and_reads_them_back() {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let base = 10_000_000 + i64::from(nanos % 100_000) * 100;
    let ids: Vec<i64> = (base..base + 7).collect();
    let names: Vec<String> = ids.iter().map(|i| format!("user \"{i}\" ✓")).collect();
    let schema = std::sync::Arc::new(arrow::datatypes::Schema::new(vec![
        arrow::datatypes::Field::new("id", DataType::Int64, false),
        arrow::datatypes::Field::new("name", DataType::Utf8, true),
        arrow::datatypes::Field::new("active", DataType::Boolean, true),
    ]));
    let batch = arrow::record_batch::RecordBatch::try_new(
        schema.clone(),
        vec![
            std::sync::Arc::new(arrow::array::Int64Array::from(ids.clone())),
            std::sync::Arc::new(arrow::array::StringArray::from(names.clone())),
            std::sync::Arc::new(arrow::array::BooleanArray::from(vec![
                true, false, true, true, false, true, true,
            ])),
        ],
    )
    .unwrap();
    let r = rest(json!({
        "base_url": rest_url(),
        "endpoints": [{
            "name": "mine", "path": "users",
            "params": {"id_gte": base.to_string(), "id_lte": (base + 99).to_string(), "_sort": "id"},
        }],
        "sink": {"format": "object", "concurrency": 3}
    }));
    let report = r
        .write_batches(
            WriteRequest::append("users"),
            schema,
            vec![batch.slice(0, 4), batch.slice(4, 3)],
        )
        .await
        .unwrap();
    assert_eq!(report.rows, 7);
    assert_eq!(r.client().requests_sent(), 7, "one POST per row");
    let got = r.read_batch(ReadRequest::dataset("mine")).await.unwrap();
    assert_eq!(ints(&got, "id"), ids);
    assert_eq!(
        strings(&got, "name"),
        names.iter().cloned().map(Some).collect::<Vec<_>>()
    );
    assert_eq!(strings(&got, "active")[1].as_deref(), Some("false"));
    // Leave the fixture as it was.
    let http = reqwest::Client::new();
    for id in &ids {
        let resp = http
            .delete(format!("{}/users/{id}", rest_url()))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{}", resp.status());
    }
}

#[tokio::test]
async fn check_reaches_the_server() {
    let r = posts(page_number(5), json!({}));
    Source::check(&r).await.unwrap();
    let down = rest(json!({
        "base_url": "http://127.0.0.1:9",
        "endpoints": [{"name": "posts", "path": "posts"}],
        "retry": {"max_retries": 0}
    }));
    let e = Source::check(&down).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connection, "{e}");
    assert_eq!(e.operation(), Some("check"));
}
