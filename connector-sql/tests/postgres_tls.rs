//! TLS against the local PostgreSQL 15 (127.0.0.1:5432), which runs with `ssl = on` and Debian's
//! self-signed snakeoil certificate (CN and DNS name `localhost`).
//! `CONNECTOR_TEST_PG_URL` overrides the libpq connection string.
#![cfg(feature = "postgres")]
#![allow(clippy::missing_panics_doc)]

use arrow::array::AsArray;
use connector_core::{ErrorKind, ErrorStatus, ReadRequest, SourceExt};
use connector_sql::postgres::{PostgresConfig, PostgresConnector, SslMode};

const SNAKEOIL: &str = "/etc/ssl/certs/ssl-cert-snakeoil.pem";
/// Debian's bundle of public CAs (without the snakeoil certificate).
const MOZILLA: &str = "/etc/ssl/certs/ca-certificates.crt";

fn config(mode: SslMode) -> PostgresConfig {
    let dsn = std::env::var("CONNECTOR_TEST_PG_URL")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres dbname=test".to_owned());
    let mut c = PostgresConfig::from_dsn(&dsn).expect("dsn");
    c.sslmode = mode;
    c.pool_size = 1;
    c
}

/// Whether this session is encrypted, as the server sees it.
async fn uses_ssl(c: PostgresConfig) -> Result<bool, connector_core::Error> {
    let conn = PostgresConnector::new(c)?;
    let b = conn
        .read_batch(ReadRequest::query(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        ))
        .await?;
    assert_eq!(b.num_rows(), 1);
    Ok(b.column(0).as_boolean().value(0))
}

#[tokio::test]
async fn disable_prefer_require() {
    assert!(!uses_ssl(config(SslMode::Disable)).await.unwrap());
    assert!(uses_ssl(config(SslMode::Prefer)).await.unwrap());
    assert!(uses_ssl(config(SslMode::Require)).await.unwrap());
}

/// Fails whatever the platform store holds: either the snakeoil certificate is not in it
/// (`UnknownIssuer`) or it is (Debian keeps it in `/etc/ssl/certs`) and does not name 127.0.0.1.
#[tokio::test]
async fn verify_full_with_platform_roots_fails_permanently() {
    let e = uses_ssl(config(SslMode::VerifyFull)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connection, "{e}");
    assert_eq!(e.status(), ErrorStatus::Permanent, "{e}");
    let msg = e.to_string();
    assert!(msg.contains("sslmode verify_full"), "{msg}");
    assert!(msg.contains("127.0.0.1"), "{msg}");
    assert!(msg.contains("failed verification"), "{msg}");
}

#[tokio::test]
async fn verify_full_with_rootcert() {
    assert!(
        std::path::Path::new(SNAKEOIL).exists() && std::path::Path::new(MOZILLA).exists(),
        "this test needs PostgreSQL's self-signed certificate {SNAKEOIL} and the CA bundle {MOZILLA}: \
         `apt-get install ssl-cert ca-certificates postgresql` (Debian's PostgreSQL serves that certificate)"
    );
    let mut c = config(SslMode::VerifyFull);
    // Public CAs only: the self-signed certificate has an unknown issuer.
    c.host = "localhost".into();
    c.sslrootcert = Some(MOZILLA.into());
    let e = uses_ssl(c.clone()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connection, "{e}");
    assert_eq!(e.status(), ErrorStatus::Permanent, "{e}");
    assert!(e.to_string().contains("UnknownIssuer"), "{e}");
    // Trusted, and by the name in the certificate (`localhost`): verified.
    c.sslrootcert = Some(SNAKEOIL.into());
    assert!(uses_ssl(c.clone()).await.unwrap());
    // Trusted, but the certificate does not name 127.0.0.1.
    c.host = "127.0.0.1".into();
    let e = uses_ssl(c).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connection, "{e}");
    assert_eq!(e.status(), ErrorStatus::Permanent, "{e}");
    assert!(e.to_string().contains("not valid for name"), "{e}");
}
