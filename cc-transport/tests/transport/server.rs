//! Scripted local servers: a WebSocket server (plain or TLS) and HTTP routes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;

/// What the WebSocket server saw.
#[derive(Default)]
pub(crate) struct WsState {
    pub(crate) connections: AtomicUsize,
    pub(crate) received: Mutex<Vec<String>>,
    pub(crate) headers: Mutex<Vec<HeaderMap>>,
    /// Each close frame received: how many frames had been received before it, and its code.
    pub(crate) closes: Mutex<Vec<(usize, u16)>>,
    /// How many connections the server has finished with.
    pub(crate) ended: AtomicUsize,
}

impl WsState {
    pub(crate) fn received(&self) -> Vec<String> {
        self.received.lock().unwrap().clone()
    }
}

/// `/ws?mode=echo|silent&token=..`: echo server. Text commands: `drop` drops the TCP
/// connection without a close frame, `close:<code>` sends a close frame with that code.
/// `mode=silent` never reads nor writes (no pongs); `mode=slow` waits 20 ms before each
/// read, so frames pile up unread in its socket. `token=bad` is refused with 401.
pub(crate) fn ws_router(state: Arc<WsState>) -> Router {
    Router::new()
        .route("/ws", get(ws_handler))
        .with_state(state)
}

async fn ws_handler(
    ws: WebSocketUpgrade,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    State(state): State<Arc<WsState>>,
) -> Response {
    if q.get("token").map(String::as_str) == Some("bad") {
        return (StatusCode::UNAUTHORIZED, "token rejected").into_response();
    }
    state.connections.fetch_add(1, Ordering::SeqCst);
    state.headers.lock().unwrap().push(headers);
    let mode = q.get("mode").cloned().unwrap_or_default();
    ws.protocols(["sip"]).on_upgrade(move |socket| async move {
        serve_socket(socket, state.clone(), mode).await;
        state.ended.fetch_add(1, Ordering::SeqCst);
    })
}

async fn serve_socket(mut socket: WebSocket, state: Arc<WsState>, mode: String) {
    if mode == "silent" {
        tokio::time::sleep(Duration::from_secs(30)).await;
        return;
    }
    loop {
        if mode == "slow" {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let Some(Ok(msg)) = socket.recv().await else {
            return;
        };
        match msg {
            Message::Text(t) => {
                let text = t.as_str().to_owned();
                state.received.lock().unwrap().push(text.clone());
                if text == "drop" {
                    return;
                }
                if let Some(code) = text.strip_prefix("close:") {
                    let frame = CloseFrame {
                        code: code.parse().unwrap(),
                        reason: "bye".into(),
                    };
                    let _ = socket.send(Message::Close(Some(frame))).await;
                    // Wait for the client's close reply.
                    while let Some(Ok(_)) = socket.recv().await {}
                    return;
                }
                if socket.send(Message::Text(t)).await.is_err() {
                    return;
                }
            }
            Message::Binary(b) => {
                state
                    .received
                    .lock()
                    .unwrap()
                    .push(format!("binary:{}", b.len()));
                if socket.send(Message::Binary(b)).await.is_err() {
                    return;
                }
            }
            Message::Close(frame) => {
                let code = frame.map_or(1005, |f| f.code);
                let before = state.received.lock().unwrap().len();
                state.closes.lock().unwrap().push((before, code));
            }
            _ => {}
        }
    }
}

/// Serves `router` on 127.0.0.1:0 (plain HTTP) and returns the address.
pub(crate) async fn serve(router: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    addr
}

/// A port with nothing listening on it.
pub(crate) async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    addr
}

/// A throw-away CA and a server certificate for 127.0.0.1 signed by it.
pub(crate) struct TestPki {
    pub(crate) ca_pem: String,
    pub(crate) server_config: Arc<rustls::ServerConfig>,
}

pub(crate) fn test_pki() -> TestPki {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "cc-transport test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    let key = rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der()).unwrap();
    let server_config =
        rustls::ServerConfig::builder_with_provider(cc_transport::crypto_provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![leaf.der().clone(), ca.der().clone()], key)
            .unwrap();
    TestPki {
        ca_pem: ca.pem(),
        server_config: Arc::new(server_config),
    }
}

/// A TLS listener for `axum::serve`: failed handshakes are skipped.
struct TlsListener {
    tcp: TcpListener,
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
            if let Ok(Ok(tls)) =
                tokio::time::timeout(Duration::from_secs(5), self.acceptor.accept(tcp)).await
            {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// Serves `router` over TLS on 127.0.0.1:0.
pub(crate) async fn serve_tls(router: Router, config: Arc<rustls::ServerConfig>) -> SocketAddr {
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let listener = TlsListener {
        tcp,
        acceptor: tokio_rustls::TlsAcceptor::from(config),
    };
    tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    addr
}
