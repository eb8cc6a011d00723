//! The brokered secrets of one run and the ephemeral CA that intercepts their hosts: what
//! the engine holds. Intercepting a connection with them is `broker.rs`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::policy::model::BrokerPlace;
use crate::secrets::Reflection;

/// One brokered secret: the step only ever sees `placeholder`.
pub struct BrokeredSecret {
    pub name: String,
    pub value: String,
    pub placeholder: String,
    /// Normalised host names the real value may be sent to.
    pub hosts: Vec<String>,
    /// Where in a request to those hosts the value is written.
    pub places: Vec<BrokerPlace>,
}

impl std::fmt::Debug for BrokeredSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokeredSecret")
            .field("name", &self.name)
            .field("hosts", &self.hosts)
            .field("places", &self.places)
            .finish()
    }
}

pub struct Broker {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    ca_pem: String,
    secrets: Vec<BrokeredSecret>,
    leaves: Mutex<HashMap<String, Arc<rustls::ServerConfig>>>,
    pub(super) client: Arc<rustls::ClientConfig>,
    /// Every brokered value → its placeholder, for responses from intercepted hosts.
    pub(super) reflection: Reflection,
}

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("generating the ephemeral CA: {0}")]
    Ca(String),
    #[error("no system trust roots to verify upstream servers with ({0})")]
    Roots(String),
    #[error("TLS configuration: {0}")]
    Tls(String),
    #[error("preparing the scan of responses for brokered values: {0}")]
    Scan(String),
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl Broker {
    /// Generates the CA (its key stays in this process's memory only) and loads the system
    /// roots (`SSL_CERT_FILE` / `SSL_CERT_DIR` are honoured) for verifying the real servers.
    pub fn new(secrets: Vec<BrokeredSecret>) -> Result<Broker, BrokerError> {
        let ca_err = |e: rcgen::Error| BrokerError::Ca(e.to_string());
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(ca_err)?;
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
        params.distinguished_name.push(
            rcgen::DnType::CommonName,
            "stepjail ephemeral CA (one step, in memory only)",
        );
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let key = rcgen::KeyPair::generate().map_err(ca_err)?;
        let ca = params.self_signed(&key).map_err(ca_err)?;
        let ca_pem = ca.pem();
        let issuer = rcgen::Issuer::new(params, key);

        let native = rustls_native_certs::load_native_certs();
        let mut roots = rustls::RootCertStore::empty();
        let (added, _) = roots.add_parsable_certificates(native.certs);
        if added == 0 {
            let why = native
                .errors
                .first()
                .map(|e| e.to_string())
                .unwrap_or_else(|| "none found".into());
            return Err(BrokerError::Roots(why));
        }
        let mut client = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| BrokerError::Tls(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        client.alpn_protocols = vec![b"http/1.1".to_vec()];
        let forms: Vec<(&str, &[u8], &[u8])> = secrets
            .iter()
            .map(|s| {
                (
                    s.name.as_str(),
                    s.value.as_bytes(),
                    s.placeholder.as_bytes(),
                )
            })
            .collect();
        let reflection = Reflection::new(&forms).map_err(|e| BrokerError::Scan(e.to_string()))?;
        Ok(Broker {
            issuer,
            ca_pem,
            secrets,
            leaves: Mutex::default(),
            client: Arc::new(client),
            reflection,
        })
    }

    /// The CA certificate (public), for the sandbox's trust bundle.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Is any secret bound to `host` (so its traffic is intercepted)?
    pub fn is_bound(&self, host: &str) -> bool {
        self.secrets
            .iter()
            .any(|s| s.hosts.iter().any(|h| h == host))
    }

    pub fn secrets(&self) -> &[BrokeredSecret] {
        &self.secrets
    }

    /// placeholder → real value, for the secrets bound to `host` that may be written at a
    /// place `at` accepts.
    pub(super) fn replacements(
        &self,
        host: &str,
        at: impl Fn(&BrokerPlace) -> bool,
    ) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.secrets
            .iter()
            .filter(|s| s.hosts.iter().any(|h| h == host) && s.places.iter().any(&at))
            .map(|s| {
                (
                    s.placeholder.as_bytes().to_vec(),
                    s.value.as_bytes().to_vec(),
                )
            })
            .collect()
    }

    /// A server configuration presenting a certificate for `host` signed by the ephemeral CA.
    pub(super) fn server_config(
        &self,
        host: &str,
    ) -> Result<Arc<rustls::ServerConfig>, BrokerError> {
        if let Some(c) = self.leaves.lock().expect("leaf cache").get(host) {
            return Ok(c.clone());
        }
        let ca_err = |e: rcgen::Error| BrokerError::Ca(e.to_string());
        let params = rcgen::CertificateParams::new(vec![host.to_string()]).map_err(ca_err)?;
        let key = rcgen::KeyPair::generate().map_err(ca_err)?;
        let cert = params.signed_by(&key, &self.issuer).map_err(ca_err)?;
        let chain: Vec<CertificateDer<'static>> = vec![cert.der().clone()];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| BrokerError::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| BrokerError::Tls(e.to_string()))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let config = Arc::new(config);
        self.leaves
            .lock()
            .expect("leaf cache")
            .insert(host.to_string(), config.clone());
        Ok(config)
    }
}
