//! TLS for the SSL listener: the server configuration built from PEM files, and reloaded from
//! them on SIGHUP (new connections get the new certificate; open ones keep theirs); and the
//! principal a client certificate stands for.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use thiserror::Error;
use tokio_rustls::TlsAcceptor;

use crate::security::principal_mapping::{subject_of, PrincipalMapper};

/// Why a TLS configuration could not be built.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("{what} {path}: {reason}")]
    File {
        /// Which setting.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// rustls refused the certificates or key (e.g. a key that does not match).
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// Where the listener's certificate, key and (optional) client CA live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
    /// PEM CA certificates that client certificates must chain to; none: no client certificate.
    pub client_ca: Option<PathBuf>,
}

/// The SSL listener's current TLS configuration.
pub struct Tls {
    files: TlsFiles,
    current: RwLock<TlsAcceptor>,
    principals: PrincipalMapper,
}

/// A client certificate whose subject no `ssl_principal_mapping_rules` rule matches, or maps
/// to an empty name or to ANONYMOUS.
#[derive(Debug, Error)]
#[error("the client certificate's subject maps to no principal (ssl_principal_mapping_rules)")]
pub struct NoPrincipal;

impl Tls {
    /// Reads `files` (an error names the file and the reason); client certificates' subjects
    /// become principals through `principals`.
    pub fn load(files: TlsFiles, principals: PrincipalMapper) -> Result<Self, TlsError> {
        let acceptor = acceptor(&files)?;
        Ok(Self {
            files,
            current: RwLock::new(acceptor),
            principals,
        })
    }

    /// The principal (`User:<name>`) of a client that presented `certificates` (its own first,
    /// as rustls gives them after verifying the chain); `None` without a certificate.
    pub fn principal_of(
        &self,
        certificates: Option<&[CertificateDer<'_>]>,
    ) -> Result<Option<String>, NoPrincipal> {
        let Some(own) = certificates.and_then(<[_]>::first) else {
            return Ok(None);
        };
        // An empty name (a certificate with no subject) or ANONYMOUS would share a principal
        // with every other such client, or with clients that did not authenticate.
        let name = subject_of(own)
            .and_then(|dn| self.principals.map(&dn))
            .filter(|name| !name.is_empty() && name != "ANONYMOUS")
            .ok_or(NoPrincipal)?;
        Ok(Some(format!("User:{name}")))
    }

    /// Reads the files again; on an error the current configuration stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let acceptor = acceptor(&self.files)?;
        *self.current.write() = acceptor;
        Ok(())
    }

    /// The acceptor for the next connection.
    pub fn acceptor(&self) -> TlsAcceptor {
        self.current.read().clone()
    }
}

fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor, TlsError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let chain = certificates("tls_cert_file", &files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| TlsError::File {
        what: "tls_key_file",
        path: files.key.clone(),
        reason: e.to_string(),
    })?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for cert in certificates("tls_client_ca_file", path)? {
                roots.add(cert).map_err(|e| TlsError::File {
                    what: "tls_client_ca_file",
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| TlsError::Config(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn certificates(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let error = |reason: String| TlsError::File {
        what,
        path: path.to_path_buf(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| error(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| error(e.to_string()))?;
    if certs.is_empty() {
        return Err(error("no certificate in the file".into()));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_mapper() -> PrincipalMapper {
        PrincipalMapper::parse("DEFAULT").unwrap()
    }

    #[test]
    fn unusable_files_are_refused_with_the_file_and_reason() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let files = |cert: &Path, key: &Path| TlsFiles {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            client_ca: None,
        };
        let missing = dir.path().join("missing.pem");
        let err = Tls::load(files(&missing, &empty), default_mapper())
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("tls_cert_file") && err.contains("missing.pem"),
            "{err}"
        );
        let err = Tls::load(files(&empty, &empty), default_mapper())
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("no certificate"), "{err}");
    }
}
