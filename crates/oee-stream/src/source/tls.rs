//! The TLS client configuration of the MQTT connection, built once from `mqtt.tls`.
//!
//! `check-config` runs [`build_client_config`], so a missing, unreadable or unparseable CA,
//! certificate or key is a configuration error with the key that names the file, not a
//! surprise at the first connect. The configuration uses the `ring` provider explicitly (no
//! process-wide default provider is needed) and TLS 1.2 and 1.3.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ClientConfig;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::settings::TlsConfig;

/// One problem with a TLS file: the configuration key (`mqtt.tls.ca` …) and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsProblem {
    pub key: &'static str,
    pub message: String,
}

impl std::fmt::Display for TlsProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Resolves a configured path against the directory of the configuration file.
pub fn resolve(base: &Path, file: &Path) -> PathBuf {
    if file.is_absolute() {
        file.to_path_buf()
    } else {
        base.join(file)
    }
}

/// Builds the rustls client configuration: the CA file's certificates as roots (the system
/// roots when no CA is given), and the client certificate chain and key for mutual TLS when
/// both are set. Every problem is reported, not only the first. `base` is the directory that
/// relative paths are relative to (the configuration file's).
pub fn build_client_config(tls: &TlsConfig, base: &Path) -> Result<ClientConfig, Vec<TlsProblem>> {
    let mut problems = Vec::new();
    let mut roots = RootCertStore::empty();
    match &tls.ca {
        Some(ca) => match read_certs(&resolve(base, ca)) {
            Ok(certs) => {
                for (i, c) in certs.into_iter().enumerate() {
                    if let Err(e) = roots.add(c) {
                        problems.push(TlsProblem {
                            key: "mqtt.tls.ca",
                            message: format!(
                                "certificate {} in `{}` is not a usable CA certificate: {e}",
                                i + 1,
                                resolve(base, ca).display()
                            ),
                        });
                    }
                }
            }
            Err(message) => problems.push(TlsProblem {
                key: "mqtt.tls.ca",
                message,
            }),
        },
        None => {
            let native = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(native.certs);
            if added == 0 {
                problems.push(TlsProblem {
                    key: "mqtt.tls.ca",
                    message: "no CA file is set and no system root certificates were found; \
                              set mqtt.tls.ca to the CA that signed the broker certificate"
                        .into(),
                });
            }
        }
    }
    let client = match (&tls.cert, &tls.key) {
        (Some(cert), Some(key)) => {
            let certs = read_certs(&resolve(base, cert))
                .map_err(|message| {
                    problems.push(TlsProblem {
                        key: "mqtt.tls.cert",
                        message,
                    })
                })
                .ok();
            let key = read_key(&resolve(base, key))
                .map_err(|message| {
                    problems.push(TlsProblem {
                        key: "mqtt.tls.key",
                        message,
                    })
                })
                .ok();
            certs.zip(key)
        }
        _ => None,
    };
    if let Some(name) = &tls.server_name
        && ServerName::try_from(name.as_str()).is_err()
    {
        problems.push(TlsProblem {
            key: "mqtt.tls.server_name",
            message: format!("`{name}` is not a DNS name or IP address"),
        });
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| {
            vec![TlsProblem {
                key: "mqtt.tls",
                message: format!("internal: TLS versions: {e}"),
            }]
        })?
        .with_root_certificates(roots);
    match client {
        Some((certs, key)) => builder.with_client_auth_cert(certs, key).map_err(|e| {
            vec![TlsProblem {
                key: "mqtt.tls.key",
                message: format!("the private key does not fit the client certificate: {e}"),
            }]
        }),
        None => Ok(builder.with_no_client_auth()),
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes =
        std::fs::read(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("`{}` is not a PEM certificate file: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "`{}` contains no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        ));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let bytes =
        std::fs::read(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| {
        format!(
            "`{}` holds no usable PEM private key (PKCS#8, PKCS#1 or SEC1): {e}",
            path.display()
        )
    })
}
