//! TLS for the simulator: a throw-away CA, a certificate for 127.0.0.1 signed by it, and an
//! `axum::serve` listener that completes the handshake before handing a connection over.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use cc_core::{Error, Result, Vendor};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

fn pki_error(e: impl std::fmt::Display) -> Error {
    Error::invalid(Vendor::Genesys, "sim.tls", e.to_string())
}

/// A CA (its PEM for clients) and the server's rustls configuration.
pub(super) struct Pki {
    pub(super) ca_pem: String,
    pub(super) server_config: Arc<rustls::ServerConfig>,
}

impl Pki {
    pub(super) fn new() -> Result<Pki> {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
        let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(pki_error)?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "cc Genesys simulator CA");
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().map_err(pki_error)?)
            .map_err(pki_error)?;
        let key = KeyPair::generate().map_err(pki_error)?;
        let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .map_err(pki_error)?
            .signed_by(&key, &ca)
            .map_err(pki_error)?;
        let der =
            rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).map_err(pki_error)?;
        let config = rustls::ServerConfig::builder_with_provider(cc_transport::crypto_provider())
            .with_safe_default_protocol_versions()
            .map_err(pki_error)?
            .with_no_client_auth()
            .with_single_cert(vec![leaf.der().clone(), ca.der().clone()], der)
            .map_err(pki_error)?;
        Ok(Pki {
            ca_pem: ca.pem(),
            server_config: Arc::new(config),
        })
    }
}

/// Accepts TCP connections and runs each handshake in its own task, so a slow or broken
/// client never holds up the others; failed handshakes are dropped.
pub(super) struct TlsListener {
    addr: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
}

impl TlsListener {
    pub(super) fn new(tcp: TcpListener, config: Arc<rustls::ServerConfig>) -> TlsListener {
        let addr = tcp
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)));
        let acceptor = TlsAcceptor::from(config);
        let (tx, ready) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let Ok((stream, peer)) = tcp.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let (acceptor, conn_tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    let hs = tokio::time::timeout(Duration::from_secs(5), acceptor.accept(stream));
                    if let Ok(Ok(tls)) = hs.await {
                        let _ = conn_tx.send((tls, peer)).await;
                    }
                });
                if tx.is_closed() {
                    return;
                }
            }
        });
        TlsListener { addr, ready }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // The accept task ended: nothing will ever come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.addr)
    }
}
