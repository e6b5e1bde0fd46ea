//! Building `rest` and `graphql` connectors from YAML through the registry, with `${ENV}`
//! secrets, against json-server and json-graphql-server.

mod common;

use connector_core::registry::{ConfigFormat, Registry, parse_config};
use connector_core::{ErrorKind, ReadRequest, SourceExt};

fn registry() -> Registry {
    let mut r = Registry::with_core();
    connector_http::register(&mut r);
    r
}

#[tokio::test]
async fn rest_and_graphql_from_yaml_with_env_secrets() {
    let reg = registry();
    let kinds: Vec<&str> = reg.kinds().iter().map(|k| k.kind).collect();
    assert!(
        kinds.contains(&"rest") && kinds.contains(&"graphql"),
        "{kinds:?}"
    );

    let rest_yaml = format!(
        r"
type: rest
base_url: {}
auth:
  type: bearer
  token: ${{TEST_REST_TOKEN}}
endpoints:
  - name: posts
    path: posts
    pagination: {{style: page_number, param: _page, size_param: _limit, size: 100}}
    total: {{header: X-Total-Count}}
    concurrency: 3
",
        common::rest_url()
    );
    let lookup = |name: &str| (name == "TEST_REST_TOKEN").then(|| "sekret-from-env".to_owned());
    let value = parse_config(&rest_yaml, ConfigFormat::Yaml).unwrap();
    let c = reg.build_value_with(value, &lookup).await.unwrap();
    let source = c.as_source().unwrap();
    assert!(!format!("{source:?}").contains("sekret-from-env"));
    assert!(c.as_sink().is_ok(), "rest is a sink too");
    c.check().await.unwrap();
    let posts = source
        .read_batch(ReadRequest::dataset("posts"))
        .await
        .unwrap();
    assert_eq!(posts.num_rows(), 250);

    // An unset variable names itself and the field that uses it.
    let value = parse_config(&rest_yaml, ConfigFormat::Yaml).unwrap();
    let e = reg.build_value_with(value, &|_| None).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidConfig);
    assert!(e.to_string().contains("TEST_REST_TOKEN"), "{e}");

    let gql_yaml = format!(
        r#"
type: graphql
url: {}
headers:
  X-Trace: ${{TEST_TRACE}}
queries:
  - name: users
    query: "{{ allUsers {{ id name }} }}"
    records: /allUsers
"#,
        common::graphql_url()
    );
    let value = parse_config(&gql_yaml, ConfigFormat::Yaml).unwrap();
    let c = reg
        .build_value_with(value, &|n: &str| {
            (n == "TEST_TRACE").then(|| "t-1".to_owned())
        })
        .await
        .unwrap();
    assert!(c.as_sink().is_err(), "graphql only reads");
    let users = c
        .as_source()
        .unwrap()
        .read_batch(ReadRequest::dataset("users"))
        .await
        .unwrap();
    assert_eq!(users.num_rows(), 5);

    // Config mistakes fail the build, naming the kind.
    let e = reg
        .build_yaml("type: rest\nbase_url: not a url\n")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidConfig, "{e}");
    assert_eq!(e.connector(), Some("rest"));
    let e = reg
        .build_yaml("type: rest\nbase_url: http://x\nendpoints: [{name: a, path: a, pagination: {style: sideways}}]\n")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidConfig, "{e}");
}
