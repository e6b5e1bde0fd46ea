//! The `csv`, `json` and `parquet` kinds built from configuration.
#![cfg(all(feature = "csv", feature = "json", feature = "parquet"))]

use arrow::array::Int64Array;
use arrow::datatypes::DataType;
use connector_core::registry::Registry;
use connector_core::{ErrorKind, ReadRequest, SinkExt, SourceExt, WriteRequest};

fn registry() -> Registry {
    let mut r = Registry::with_core();
    connector_file::register_all(&mut r);
    r
}

#[tokio::test]
async fn kinds_are_registered_with_schemas() {
    let kinds: Vec<&str> = registry().kinds().iter().map(|k| k.kind).collect();
    for k in ["csv", "json", "parquet"] {
        assert!(kinds.contains(&k), "{kinds:?}");
    }
    let parquet = registry()
        .kinds()
        .into_iter()
        .find(|k| k.kind == "parquet")
        .unwrap();
    assert!(parquet.capabilities.source.unwrap().projection_pushdown);
    assert!(parquet.config_schema.to_string().contains("row_group_rows"));
}

#[tokio::test]
async fn csv_from_yaml_with_options_schema_and_skip() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.csv"), "id;name\n1;x\n2\n3;z\n").unwrap();
    let yaml = format!(
        "type: csv\npath: {:?}\nbad_rows: skip\nschema:\n  - {{ name: id, type: Int64 }}\n  - {{ name: name, type: Utf8 }}\noptions:\n  delimiter: \";\"\n",
        dir.path().display().to_string()
    );
    let c = registry().build_yaml(&yaml).await.unwrap();
    c.check().await.unwrap();
    let got = c
        .as_source()
        .unwrap()
        .read_batch(ReadRequest::dataset("a.csv"))
        .await
        .unwrap();
    assert_eq!(got.num_rows(), 2);
    assert_eq!(got.schema().field(0).data_type(), &DataType::Int64);
}

#[tokio::test]
async fn parquet_and_json_round_trip_through_built_connectors() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("new-root");
    for kind in ["parquet", "json"] {
        let config = serde_json::json!({
            "type": kind, "path": root.display().to_string(), "create": true,
        });
        let c = registry().build_value(config).await.unwrap();
        let batch = arrow::record_batch::RecordBatch::try_from_iter([(
            "id",
            std::sync::Arc::new(Int64Array::from(vec![1, 2, 3])) as _,
        )])
        .unwrap();
        let target = format!("t_{kind}");
        c.as_sink()
            .unwrap()
            .write_batch(WriteRequest::append(&target), batch.clone())
            .await
            .unwrap();
        let got = c
            .as_source()
            .unwrap()
            .read_batch(ReadRequest::dataset(&target))
            .await
            .unwrap();
        assert_eq!(got.num_rows(), 3, "{kind}");
    }
}

#[tokio::test]
async fn config_errors_are_invalid_config() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().display().to_string();
    for config in [
        serde_json::json!({"type": "csv", "path": path, "bogus": 1}),
        serde_json::json!({"type": "csv", "path": path, "options": {"delimiter": "é"}}),
        serde_json::json!({"type": "csv", "path": path, "schema": [{"name": "a", "type": "Nope"}]}),
        serde_json::json!({"type": "parquet", "path": path, "options": {"compression": "lzma"}}),
        serde_json::json!({"type": "json", "path": format!("{path}/missing")}),
    ] {
        let e = registry().build_value(config.clone()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidConfig, "{config}: {e}");
    }
}
