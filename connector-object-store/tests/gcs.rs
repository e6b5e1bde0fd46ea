//! GCS without a server: no emulator available here accepts `object_store`'s XML-API writes, so
//! these tests cover configuration, URLs and credential errors only. The README says so.

use connector_core::ErrorKind;
use connector_core::registry::Registry;
use connector_object_store::{GcsConfig, ObjectStoreConnector, ObjectUrl, StoreKind};

/// A syntactically valid service-account document whose key is not a key.
fn bad_service_account() -> String {
    serde_json::json!({
        "type": "service_account",
        "project_id": "p",
        "private_key_id": "kid",
        "private_key": "-----BEGIN PRIVATE KEY-----\nTOPSECRETNOTAKEY\n-----END PRIVATE KEY-----\n",
        "client_email": "x@p.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": "https://oauth2.googleapis.com/token"
    })
    .to_string()
}

#[test]
fn builds_from_config_and_url() {
    let mut c = GcsConfig::new("gs://bucket/some/prefix/*.parquet");
    c.from_env = false;
    c.skip_signature = true;
    let conn = ObjectStoreConnector::gcs(&c).expect("builds");
    let u = conn.url();
    assert_eq!(u.kind, StoreKind::Gcs);
    assert_eq!(u.bucket, "bucket");
    assert_eq!(u.list_prefix(), "some/prefix");
    assert_eq!(u.glob(), Some("*.parquet"));
    let u = ObjectUrl::parse("https://storage.googleapis.com/b2/k/x.csv").expect("url");
    assert_eq!(
        (u.kind, u.bucket.as_str(), u.key.as_str()),
        (StoreKind::Gcs, "b2", "k/x.csv")
    );
}

#[test]
fn a_bad_service_account_key_is_an_error_without_the_key() {
    let mut c = GcsConfig::new("gs://bucket/p");
    c.from_env = false;
    c.service_account_key = Some(bad_service_account().into());
    let e = ObjectStoreConnector::gcs(&c).expect_err("a key that is not a key");
    assert_eq!(e.kind(), ErrorKind::Authentication, "{e}");
    assert_eq!(e.connector(), Some("gcs"));
    assert!(e.to_string().contains("gs://bucket/p"), "{e}");
    assert!(!e.to_string().contains("TOPSECRET") && !format!("{e:?}").contains("TOPSECRET"));
    assert!(!format!("{c:?}").contains("TOPSECRET"));

    let mut c = GcsConfig::new("gs://bucket/p");
    c.from_env = false;
    c.service_account_key = Some("not json at all TOPSECRET".into());
    let e = ObjectStoreConnector::gcs(&c).expect_err("not JSON");
    assert_eq!(e.kind(), ErrorKind::Authentication, "{e}");
    assert!(!e.to_string().contains("TOPSECRET"), "{e}");

    let mut c = GcsConfig::new("gs://bucket/p");
    c.from_env = false;
    c.service_account_path = Some("/nonexistent/key.json".into());
    let e = ObjectStoreConnector::gcs(&c).expect_err("missing file");
    assert_eq!(e.kind(), ErrorKind::Authentication, "{e}");
}

#[test]
fn wrong_scheme_is_invalid_config() {
    let e = ObjectStoreConnector::gcs(&GcsConfig::new("s3://b/k")).expect_err("s3 url");
    assert_eq!(e.kind(), ErrorKind::InvalidConfig, "{e}");
}

#[tokio::test]
async fn registry_knows_every_kind_and_builds_gcs() {
    let mut r = Registry::with_core();
    connector_object_store::register(&mut r);
    let kinds: Vec<&str> = r.kinds().iter().map(|k| k.kind).collect();
    for k in ["s3", "azure", "gcs", "http_files"] {
        assert!(kinds.contains(&k), "{kinds:?}");
    }
    let conn = r
        .build_yaml("type: gcs\nurl: gs://b/p\nfrom_env: false\nskip_signature: true\nlayout:\n  format: parquet\n  partition_by: [year]\n")
        .await
        .expect("builds");
    assert!(conn.as_source().is_ok() && conn.as_sink().is_ok());
    let e = r
        .build_yaml("type: gcs\nurl: gs://b/p\nbogus: 1\n")
        .await
        .expect_err("unknown key");
    assert_eq!(e.kind(), ErrorKind::InvalidConfig);
    let e = r
        .build_yaml("type: http_files\nurl: https://example.invalid/data/\n")
        .await
        .expect("http builds")
        .as_sink()
        .expect_err("http_files is read-only");
    assert_eq!(e.kind(), ErrorKind::Unsupported);
}
