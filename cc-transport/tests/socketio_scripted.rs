//! The Socket.IO client against a scripted Engine.IO server: handshake timeout, malformed
//! packets, ping/pong, acks that nobody asked for.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::get;
use cc_core::{ErrorKind, Vendor};
use cc_transport::BackoffPolicy;
use cc_transport::socketio::{SioClient, SioConfig, SioEvent, SioEvents};
use serde_json::json;
use tokio::sync::mpsc;

#[derive(Clone)]
struct Script {
    connections: Arc<AtomicUsize>,
    heard: mpsc::UnboundedSender<String>,
}

async fn upgrade(ws: WebSocketUpgrade, State(script): State<Script>) -> Response {
    ws.on_upgrade(move |socket| run(socket, script))
}

async fn recv_text(socket: &mut WebSocket) -> Option<String> {
    loop {
        match socket.recv().await? {
            Ok(Message::Text(t)) => return Some(t.to_string()),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

async fn run(mut socket: WebSocket, script: Script) {
    let n = script.connections.fetch_add(1, Ordering::SeqCst);
    if n == 0 {
        // First connection: never say anything; the client must give up on it.
        while recv_text(&mut socket).await.is_some() {}
        return;
    }
    let open = r#"0{"sid":"e1","upgrades":[],"pingInterval":60000,"pingTimeout":60000,"maxPayload":1000000}"#;
    let _ = socket.send(Message::Text(open.into())).await;
    let Some(connect) = recv_text(&mut socket).await else {
        return;
    };
    let _ = script.heard.send(connect);
    for frame in [
        r#"40{"sid":"s1"}"#,
        "9nope",
        r#"42[1]"#,
        r#"437["unasked"]"#,
        r#"42["ok",{"n":1}]"#,
        "2",
    ] {
        let _ = socket.send(Message::Text(frame.into())).await;
    }
    while let Some(t) = recv_text(&mut socket).await {
        let _ = script.heard.send(t);
    }
}

async fn next(events: &mut SioEvents) -> SioEvent {
    tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .expect("an event within 5 s")
        .expect("the client is running")
}

#[tokio::test]
async fn handshake_timeout_malformed_packets_and_pong() {
    let (tx, mut heard) = mpsc::unbounded_channel();
    let script = Script {
        connections: Arc::new(AtomicUsize::new(0)),
        heard: tx,
    };
    let app = axum::Router::new()
        .route("/socket.io/", get(upgrade))
        .with_state(script.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let url = url::Url::parse(&format!("http://{addr}")).unwrap();
    let mut config = SioConfig::new(Vendor::Expertflow, url).with_auth(json!({"k": "v"}));
    config.backoff = BackoffPolicy::fixed(Duration::from_millis(20));
    config.handshake_timeout = Duration::from_millis(200);
    let (_io, mut events) = SioClient::connect(config).unwrap();

    let mut errors = Vec::new();
    let mut reconnecting = false;
    loop {
        match next(&mut events).await {
            SioEvent::Reconnecting { .. } => reconnecting = true,
            SioEvent::Connected { sid, reconnect, .. } => {
                assert_eq!(sid, "s1");
                assert!(
                    !reconnect,
                    "the silent connection never connected the namespace"
                );
            }
            SioEvent::Error(e) => {
                assert_eq!(e.kind(), ErrorKind::Protocol);
                errors.push(e.to_string());
            }
            SioEvent::Event { name, args, .. } => {
                assert_eq!(name, "ok");
                assert_eq!(args, vec![json!({"n": 1})]);
                break;
            }
            SioEvent::Closed { reason } => panic!("closed: {reason}"),
            _ => {}
        }
    }
    assert!(reconnecting, "the silent first connection was given up");
    assert_eq!(script.connections.load(Ordering::SeqCst), 2);
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(errors[0].contains("Engine.IO packet type"), "{errors:?}");
    assert!(errors[1].contains("EVENT payload"), "{errors:?}");
    assert!(errors[2].contains("ack 7 was not asked for"), "{errors:?}");
    assert_eq!(heard.recv().await.unwrap(), r#"40{"k":"v"}"#);
    assert_eq!(heard.recv().await.unwrap(), "3");
}
