//! TLS for the PostgreSQL connection: rustls with the `ring` provider, libpq's `sslmode`
//! semantics (see the [module docs](super#connections)).

use std::convert::Infallible;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use connector_core::Error;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::SslMode;

/// The TLS connector of a pool: rustls, plus the mode and host for error messages.
#[derive(Clone)]
pub(crate) struct MakeTls {
    inner: MakeRustlsConnect,
    mode: SslMode,
}

impl MakeTls {
    /// `disable`, `prefer` and `require` accept any certificate (as libpq does; handshake
    /// signatures are still checked); `verify_full` checks the chain against [`roots`] and the
    /// host name.
    pub(crate) fn new(mode: SslMode, rootcert: Option<&Path>) -> Result<Self, Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::invalid_config(format!("TLS setup: {e}")))?;
        let config = if mode == SslMode::VerifyFull {
            builder
                .with_root_certificates(roots(rootcert)?)
                .with_no_client_auth()
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider)))
                .with_no_client_auth()
        };
        Ok(Self {
            inner: MakeRustlsConnect::new(config),
            mode,
        })
    }
}

impl std::fmt::Debug for MakeTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MakeTls")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

/// The trust anchors of `verify_full`: the certificates of `rootcert` when given (as libpq's
/// `sslrootcert`: they replace the platform store), else the platform store.
fn roots(rootcert: Option<&Path>) -> Result<RootCertStore, Error> {
    let mut roots = RootCertStore::empty();
    if let Some(path) = rootcert {
        let bad = |e: &dyn std::fmt::Display| {
            Error::invalid_config(format!("sslrootcert {}: {e}", path.display()))
        };
        for cert in CertificateDer::pem_file_iter(path).map_err(|e| bad(&e))? {
            roots.add(cert.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
        }
        if roots.is_empty() {
            return Err(bad(&"no PEM certificate in the file"));
        }
    } else {
        let native = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(native.certs);
        if roots.is_empty() {
            return Err(Error::invalid_config(
                "sslmode verify_full: no root certificate found in the platform store; \
                 set sslrootcert to a PEM file with the server's CA",
            ));
        }
    }
    Ok(roots)
}

/// libpq's `require`: the certificate is not verified, the handshake signatures are.
#[derive(Debug)]
struct AcceptAnyCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

impl<S> MakeTlsConnect<S> for MakeTls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = <MakeRustlsConnect as MakeTlsConnect<S>>::Stream;
    type TlsConnect = Connect<<MakeRustlsConnect as MakeTlsConnect<S>>::TlsConnect>;
    type Error = Infallible;

    fn make_tls_connect(&mut self, host: &str) -> Result<Self::TlsConnect, Infallible> {
        let inner = MakeTlsConnect::<S>::make_tls_connect(&mut self.inner, host)?;
        Ok(Connect {
            inner,
            host: host.to_owned(),
            mode: self.mode,
        })
    }
}

/// One handshake; its error names the mode and host.
pub(crate) struct Connect<T> {
    inner: T,
    host: String,
    mode: SslMode,
}

impl<S, T> TlsConnect<S> for Connect<T>
where
    S: 'static,
    T: TlsConnect<S, Error = std::io::Error> + 'static,
    T::Future: Send + 'static,
{
    type Stream = T::Stream;
    type Error = TlsError;
    type Future = Pin<Box<dyn Future<Output = Result<T::Stream, TlsError>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        let Self { inner, host, mode } = self;
        let handshake = inner.connect(stream);
        Box::pin(async move {
            handshake
                .await
                .map_err(|source| TlsError { mode, host, source })
        })
    }
}

/// A failed TLS handshake. Found again by [`super::error::map_pg`] in the driver error's sources.
#[derive(Debug)]
pub(crate) struct TlsError {
    mode: SslMode,
    host: String,
    source: std::io::Error,
}

impl TlsError {
    /// The certificate was rejected (`verify_full`), as opposed to a handshake that broke.
    pub(crate) fn is_verification(&self) -> bool {
        matches!(
            self.source
                .get_ref()
                .and_then(|e| e.downcast_ref::<rustls::Error>()),
            Some(rustls::Error::InvalidCertificate(_))
        )
    }
}

impl std::fmt::Display for TlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (mode, host, e) = (self.mode.as_str(), &self.host, &self.source);
        if self.is_verification() {
            write!(
                f,
                "sslmode {mode}: the certificate of {host} failed verification: {e} \
                 (trust its CA with sslrootcert, connect by the name in the certificate, \
                 or use sslmode require, which does not verify)"
            )
        } else {
            write!(f, "sslmode {mode}: TLS handshake with {host} failed: {e}")
        }
    }
}

impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}
