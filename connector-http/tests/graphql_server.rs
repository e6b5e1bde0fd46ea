//! The GraphQL source against a real json-graphql-server (`CONNECTOR_TEST_GRAPHQL_URL`, started
//! by `cargo xtask peers up`); the fixture (`xtask/fixtures/data.json`) holds 250 posts with
//! ids 1..=250, each linked to one of 5 users.

mod common;

use arrow::datatypes::DataType;
use connector_core::{ErrorKind, ReadRequest, Source, SourceExt};
use connector_http::{GraphQL, GraphQLConfig, GraphQLPagination, QueryConfig};
use graphql_client::GraphQLQuery;
use serde_json::json;

use common::{graphql_url, ints, strings};

fn graphql(queries: serde_json::Value) -> GraphQL {
    let mut config = json!({"url": graphql_url()});
    config["queries"] = queries;
    let c: GraphQLConfig = serde_json::from_value(config).unwrap();
    GraphQL::new(c).unwrap()
}

const PAGED: &str = "query Posts($page: Int, $perPage: Int) { allPosts(page: $page, perPage: $perPage) { id title views tags User { name email } } }";

#[tokio::test]
async fn page_pagination_reads_every_post_in_order() {
    let g = graphql(json!([{
        "name": "posts",
        "query": PAGED,
        "records": "/allPosts",
        "pagination": {"style": "page", "page_var": "page", "start": 0, "per_page_var": "perPage", "per_page": 30}
    }]));
    let b = g.read_batch(ReadRequest::dataset("posts")).await.unwrap();
    assert_eq!(ints(&b, "id"), (1..=250).collect::<Vec<_>>());
    // 8 full pages of 30 and a short one of 10.
    assert_eq!(g.client().requests_sent(), 9);
    let user = b.column_by_name("User").unwrap();
    assert!(
        matches!(user.data_type(), DataType::Struct(_)),
        "{:?}",
        user.data_type()
    );
}

#[tokio::test]
async fn discover_infers_nested_structs_and_lists() {
    let g = graphql(json!([{
        "name": "posts",
        "query": PAGED,
        "variables": {"perPage": 5},
        "records": "/allPosts",
        "pagination": {"style": "page", "per_page_var": "perPage", "per_page": 5},
        "primary_key": ["id"]
    }]));
    let infos = g.discover().await.unwrap();
    let s = &infos[0].schema;
    // GraphQL IDs are strings.
    assert_eq!(
        s.field_with_name("id").unwrap().data_type(),
        &DataType::Utf8
    );
    assert_eq!(
        s.field_with_name("views").unwrap().data_type(),
        &DataType::Int64
    );
    match s.field_with_name("User").unwrap().data_type() {
        DataType::Struct(fields) => {
            let names: Vec<&str> = fields.iter().map(|f| f.name().as_str()).collect();
            assert!(
                names.contains(&"name") && names.contains(&"email"),
                "{names:?}"
            );
        }
        other => panic!("User should be a struct, is {other:?}"),
    }
    assert!(matches!(
        s.field_with_name("tags").unwrap().data_type(),
        DataType::List(_)
    ));
    assert_eq!(g.client().requests_sent(), 1, "discovery reads one page");
}

#[tokio::test]
async fn a_native_query_runs_once() {
    let g = graphql(json!([]));
    let b = g
        .read_batch(ReadRequest::query(
            "{ allUsers(sortField: \"id\") { id name email active } }",
        ))
        .await
        .unwrap();
    assert_eq!(b.num_rows(), 5);
    assert_eq!(strings(&b, "name")[0].as_deref(), Some("alice"));
    assert_eq!(g.client().requests_sent(), 1);
    // Two top-level fields are ambiguous: an error, not a silent pick.
    let e = g
        .read_batch(ReadRequest::query(
            "{ allUsers { id } _allUsersMeta { count } }",
        ))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(e.message().contains("_allUsersMeta"), "{e}");
}

#[tokio::test]
async fn an_unknown_field_is_a_query_error_with_the_server_message() {
    let g = graphql(json!([{
        "name": "bad",
        "query": "{ allPosts(perPage: 2) { id no_such_field } }",
        "records": "/allPosts"
    }]));
    let e = g.read_batch(ReadRequest::dataset("bad")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Query, "{e}");
    assert_eq!(e.connector(), Some("graphql"));
    assert_eq!(e.operation(), Some("read"));
    assert!(
        e.message().contains("Cannot query field \"no_such_field\""),
        "{e}"
    );
    assert!(e.location().and_then(|l| l.url.as_ref()).is_some(), "{e:?}");
    // Also for a native query.
    let e = g
        .read_batch(ReadRequest::query("{ allPosts { nope } }"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Query, "{e}");
    assert!(e.message().contains("nope"), "{e}");
    // A query error is permanent: sent once each.
    assert_eq!(g.client().requests_sent(), 2);
}

#[derive(GraphQLQuery)]
#[graphql(
    schema_path = "tests/graphql/schema.graphql",
    query_path = "tests/graphql/posts_page.graphql",
    response_derives = "Debug"
)]
struct PostsPage;

#[tokio::test]
async fn a_typed_graphql_client_query_pages() {
    let q = QueryConfig::typed::<PostsPage>(
        "typed",
        posts_page::Variables {
            page: Some(0),
            per_page: Some(100),
        },
        "/allPosts",
    )
    .unwrap()
    .with_pagination(GraphQLPagination::Page {
        page_var: "page".into(),
        start: 0,
        per_page_var: Some("perPage".into()),
        per_page: Some(100),
    });
    let g = graphql(json!([])).with_query(q);
    let b = g.read_batch(ReadRequest::dataset("typed")).await.unwrap();
    assert_eq!(ints(&b, "id"), (1..=250).collect::<Vec<_>>());
    assert_eq!(g.client().requests_sent(), 3);
    // The typed response struct decodes the same server's answer, so the document matches the
    // schema the generated code was built from.
    let body = PostsPage::build_query(posts_page::Variables {
        page: Some(0),
        per_page: Some(2),
    });
    let resp: graphql_client::Response<posts_page::ResponseData> = reqwest::Client::new()
        .post(graphql_url())
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let posts = resp.data.unwrap().all_posts.unwrap();
    assert_eq!(posts.len(), 2);
}

#[tokio::test]
async fn check_reaches_the_server() {
    Source::check(&graphql(json!([]))).await.unwrap();
}
