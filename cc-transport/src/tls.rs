//! TLS trust for every connection of the crate.
//!
//! A [`TlsConfig`] is the public web PKI roots (`webpki-roots`) plus any extra PEM roots from
//! [`cc_core::TlsSettings`]. Both the WebSocket client and the HTTP client build their rustls
//! `ClientConfig` from it with the aws-lc-rs crypto provider chosen explicitly, so nothing
//! depends on a process-wide default provider and nothing panics when several rustls users
//! share a process. Certificate and host-name checks are always on: there is no switch
//! that turns them off.

use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use cc_core::{Error, Result, TlsSettings, Vendor};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{ClientConfig, RootCertStore};

/// The inputs of [`TlsConfig::from_settings`]: the PEM text and the PEM file's contents.
type SettingsKey = (Option<String>, Option<Vec<u8>>);

/// How many distinct TLS settings [`TlsConfig::from_settings`] remembers.
const SETTINGS_CACHE: usize = 16;

fn read_pem_file(vendor: Option<Vendor>, path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        Error::invalid(
            vendor,
            "tls.ca_file",
            format!("cannot read {}: {e}", path.display()),
        )
    })
}

/// The crypto provider of the whole crate: aws-lc-rs.
pub fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Installs aws-lc-rs as the process-wide default rustls provider, if none is installed yet.
///
/// This crate never needs it (it passes its provider explicitly); call it in `main` when
/// other code in the process builds rustls configs with `ClientConfig::builder()`.
pub fn install_default_crypto_provider() {
    // An `Err` means a provider is already installed, which is what we want.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// Trusted roots: the public web PKI plus extra roots. Cheap to clone; clones share one
/// WebSocket client config (and its TLS session cache), so thousands of connections cost
/// one config, not thousands.
#[derive(Clone)]
pub struct TlsConfig {
    roots: Arc<RootCertStore>,
    extra: usize,
    ws: Arc<OnceLock<Arc<ClientConfig>>>,
    http: Arc<OnceLock<ClientConfig>>,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("roots", &self.roots.len())
            .field("extra_roots", &self.extra)
            .finish()
    }
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig::webpki()
    }
}

impl TlsConfig {
    /// The public web PKI roots only (one shared store per process).
    pub fn webpki() -> Self {
        static WEBPKI: OnceLock<TlsConfig> = OnceLock::new();
        WEBPKI
            .get_or_init(|| TlsConfig {
                roots: Arc::new(RootCertStore {
                    roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
                }),
                extra: 0,
                ws: Arc::default(),
                http: Arc::default(),
            })
            .clone()
    }

    /// The web PKI roots plus the extra roots of `settings` (PEM text and/or a PEM file).
    /// Errors name the field (`tls.ca_pem`, `tls.ca_file`) and the vendor.
    ///
    /// Sessions with the same extra roots share one `TlsConfig` (its root store, its client
    /// configs and their TLS session caches): a process with thousands of sessions holds
    /// one copy of the roots per distinct setting, not one per session.
    pub fn from_settings(vendor: Vendor, settings: &TlsSettings) -> Result<Self> {
        if settings.ca_pem.is_none() && settings.ca_file.is_none() {
            return Ok(TlsConfig::webpki());
        }
        let file = match &settings.ca_file {
            Some(path) => Some((path.as_path(), read_pem_file(Some(vendor), path)?)),
            None => None,
        };
        let key = (
            settings.ca_pem.clone(),
            file.as_ref().map(|(_, text)| text.clone()),
        );
        static CACHE: Mutex<Vec<(SettingsKey, TlsConfig)>> = Mutex::new(Vec::new());
        let cached = |cache: &[(SettingsKey, TlsConfig)]| {
            cache
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, t)| t.clone())
        };
        if let Some(tls) = cached(&CACHE.lock().unwrap_or_else(|e| e.into_inner())) {
            return Ok(tls);
        }
        let mut tls = TlsConfig::webpki();
        if let Some(pem) = &settings.ca_pem {
            tls = tls.with_pem_roots(Some(vendor), "tls.ca_pem", pem.as_bytes())?;
        }
        if let Some((_, text)) = &file {
            tls = tls.with_pem_roots(Some(vendor), "tls.ca_file", text)?;
        }
        let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tls) = cached(&cache) {
            return Ok(tls);
        }
        if cache.len() >= SETTINGS_CACHE {
            cache.remove(0);
        }
        cache.push((key, tls.clone()));
        Ok(tls)
    }

    /// Adds the certificates of PEM text as trusted roots. `field` names the input in errors.
    pub fn with_pem_roots(
        mut self,
        vendor: Option<Vendor>,
        field: &'static str,
        pem: &[u8],
    ) -> Result<Self> {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| Error::invalid(vendor, field, format!("bad PEM: {e}")))?;
        if certs.is_empty() {
            return Err(Error::invalid(
                vendor,
                field,
                "no CERTIFICATE block found in the PEM text",
            ));
        }
        let mut roots = (*self.roots).clone();
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| Error::invalid(vendor, field, format!("unusable root: {e}")))?;
            self.extra += 1;
        }
        self.roots = Arc::new(roots);
        self.ws = Arc::default();
        self.http = Arc::default();
        Ok(self)
    }

    /// Adds the certificates of a PEM file as trusted roots.
    pub fn with_pem_file(self, vendor: Option<Vendor>, path: &Path) -> Result<Self> {
        let text = read_pem_file(vendor, path)?;
        self.with_pem_roots(vendor, "tls.ca_file", &text)
    }

    /// Whether `other` trusts the same roots through the same shared configs (a clone, or
    /// the same settings through [`TlsConfig::from_settings`]).
    pub fn shares_roots_with(&self, other: &TlsConfig) -> bool {
        Arc::ptr_eq(&self.roots, &other.roots) && Arc::ptr_eq(&self.http, &other.http)
    }

    /// How many roots were added besides the web PKI ones.
    pub fn extra_roots(&self) -> usize {
        self.extra
    }

    /// The shared client config for WebSockets (ALPN `http/1.1`), built on first use.
    pub(crate) fn ws_client_config(&self) -> Arc<ClientConfig> {
        self.ws
            .get_or_init(|| Arc::new(self.client_config(&[b"http/1.1"])))
            .clone()
    }

    /// The client config for HTTP (ALPN `h2`, `http/1.1`); clones share its session cache.
    pub(crate) fn http_client_config(&self) -> ClientConfig {
        self.http
            .get_or_init(|| self.client_config(&[b"h2", b"http/1.1"]))
            .clone()
    }

    /// A rustls client config with these roots and the aws-lc-rs provider, offering the
    /// given ALPN protocols.
    pub(crate) fn client_config(&self, alpn: &[&[u8]]) -> ClientConfig {
        let mut config = ClientConfig::builder_with_provider(crypto_provider())
            .with_safe_default_protocol_versions()
            .expect("aws-lc-rs supports the default TLS versions")
            .with_root_certificates(self.roots.clone())
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_pem_names_the_field() {
        let err = TlsConfig::webpki()
            .with_pem_roots(Some(Vendor::Genesys), "tls.ca_pem", b"hello")
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("tls.ca_pem"), "{text}");
        assert!(text.contains("genesys"), "{text}");

        let settings = TlsSettings {
            ca_pem: None,
            ca_file: Some("/nonexistent/ca.pem".into()),
        };
        let err = TlsConfig::from_settings(Vendor::Avaya, &settings).unwrap_err();
        assert!(err.to_string().contains("tls.ca_file"), "{err}");
    }

    #[test]
    fn default_has_public_roots_and_builds_configs() {
        let tls = TlsConfig::from_settings(Vendor::Tvox, &TlsSettings::default()).unwrap();
        assert_eq!(tls.extra_roots(), 0);
        let config = tls.client_config(&[b"http/1.1"]);
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
        assert!(format!("{tls:?}").contains("extra_roots: 0"));
        // The same settings give the same shared configs.
        let pem = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
            .unwrap()
            .cert
            .pem();
        let settings = TlsSettings {
            ca_pem: Some(pem),
            ca_file: None,
        };
        let a = TlsConfig::from_settings(Vendor::Tvox, &settings).unwrap();
        let b = TlsConfig::from_settings(Vendor::Genesys, &settings).unwrap();
        assert_eq!(a.extra_roots(), 1);
        assert!(a.shares_roots_with(&b));
        assert!(!a.shares_roots_with(&tls));
        assert!(Arc::ptr_eq(&a.ws_client_config(), &b.ws_client_config()));
        // Clones share the WebSocket config.
        let again = TlsConfig::webpki();
        assert!(Arc::ptr_eq(
            &tls.ws_client_config(),
            &again.ws_client_config()
        ));
    }
}
