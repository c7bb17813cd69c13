//! A scripted SIP-over-WebSocket server on 127.0.0.1 for the user agent's tests: each
//! accepted connection is handed to the test, which reads the UA's messages and writes
//! replies by hand.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::IntoResponse;
use axum::routing::get;
use cc_core::Vendor;
use cc_rtc::sip::{SipCodec, SipMessage};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;

/// The server; dropping it stops accepting.
pub struct SipServer {
    pub addr: SocketAddr,
    conns: mpsc::UnboundedReceiver<Conn>,
    task: tokio::task::JoinHandle<()>,
    tls: bool,
}

/// A TLS listener for `axum::serve` (failed handshakes are skipped).
struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                continue;
            };
            if let Ok(Ok(tls)) = tokio::time::timeout(WAIT, self.acceptor.accept(tcp)).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

impl Drop for SipServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One accepted WebSocket connection.
pub struct Conn {
    /// The subprotocol the client offered.
    pub offered: Option<String>,
    incoming: mpsc::UnboundedReceiver<String>,
    outgoing: mpsc::UnboundedSender<Option<String>>,
}

const WAIT: Duration = Duration::from_secs(5);

impl SipServer {
    pub async fn start() -> SipServer {
        let (tx, conns) = mpsc::unbounded_channel();
        let app = Router::new().route("/", get(upgrade)).with_state(tx);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        SipServer {
            addr,
            conns,
            task,
            tls: false,
        }
    }

    /// The same server behind TLS with a throw-away CA; returns the CA's PEM to trust.
    pub async fn start_tls() -> (SipServer, String) {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&leaf_key, &ca)
            .unwrap();
        let key = rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der()).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(cc_transport::crypto_provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![leaf.der().clone(), ca.der().clone()], key)
            .unwrap();
        let (tx, conns) = mpsc::unbounded_channel();
        let app = Router::new().route("/", get(upgrade)).with_state(tx);
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let listener = TlsListener {
            tcp,
            acceptor: tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config)),
        };
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (
            SipServer {
                addr,
                conns,
                task,
                tls: true,
            },
            ca.pem(),
        )
    }

    pub fn url(&self) -> url::Url {
        let scheme = if self.tls { "wss" } else { "ws" };
        url::Url::parse(&format!("{scheme}://{}/", self.addr)).unwrap()
    }

    /// The next connection (fails the test after 5 s).
    pub async fn accept(&mut self) -> Conn {
        tokio::time::timeout(WAIT, self.conns.recv())
            .await
            .expect("no connection within 5 s")
            .expect("server stopped")
    }
}

async fn upgrade(
    State(tx): State<mpsc::UnboundedSender<Conn>>,
    headers: axum::http::HeaderMap,
    ws: WebSocketUpgrade,
) -> impl IntoResponse {
    let offered = headers
        .get("sec-websocket-protocol")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    ws.protocols(["sip"])
        .on_upgrade(move |socket| serve(socket, tx, offered))
}

async fn serve(socket: WebSocket, conns: mpsc::UnboundedSender<Conn>, offered: Option<String>) {
    let (in_tx, incoming) = mpsc::unbounded_channel();
    let (outgoing, mut out_rx) = mpsc::unbounded_channel::<Option<String>>();
    let _ = conns.send(Conn {
        offered,
        incoming,
        outgoing,
    });
    let (mut sink, mut stream) = socket.split();
    loop {
        tokio::select! {
            msg = stream.next() => match msg {
                Some(Ok(Message::Text(t))) => { let _ = in_tx.send(t.as_str().to_owned()); }
                Some(Ok(_)) => {}
                _ => return,
            },
            out = out_rx.recv() => match out {
                Some(Some(text)) => { if sink.send(Message::Text(text.into())).await.is_err() { return; } }
                _ => { let _ = sink.close().await; return; }
            },
        }
    }
}

impl Conn {
    /// The next SIP message from the client (fails the test after 5 s or on a bad frame).
    pub async fn recv(&mut self) -> SipMessage {
        let text = self.recv_raw().await;
        SipCodec::new(Vendor::Expertflow)
            .parse(&text)
            .unwrap_or_else(|e| panic!("client sent a bad frame: {e}\n{text}"))
    }

    /// The next frame's text.
    pub async fn recv_raw(&mut self) -> String {
        tokio::time::timeout(WAIT, self.incoming.recv())
            .await
            .expect("no SIP message from the client within 5 s")
            .expect("connection closed")
    }

    /// The next message if one comes within `wait`.
    pub async fn try_recv(&mut self, wait: Duration) -> Option<SipMessage> {
        let text = tokio::time::timeout(wait, self.incoming.recv())
            .await
            .ok()??;
        Some(SipCodec::new(Vendor::Expertflow).parse(&text).unwrap())
    }

    pub fn send(&self, message: &SipMessage) {
        self.send_raw(&message.to_string());
    }

    pub fn send_raw(&self, text: &str) {
        let _ = self.outgoing.send(Some(text.to_owned()));
    }

    /// Closes the connection from the server side.
    pub fn close(&self) {
        let _ = self.outgoing.send(None);
    }
}
