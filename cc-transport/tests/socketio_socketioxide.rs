//! The Socket.IO client against socketioxide (the server our simulators use), in process.

use std::time::Duration;

use cc_core::Vendor;
use cc_transport::BackoffPolicy;
use cc_transport::socketio::{SioClient, SioConfig, SioDisconnect, SioEvent, SioEvents};
use serde_json::{Value, json};
use socketioxide::SocketIo;
use socketioxide::extract::{AckSender, Data, SocketRef, TryData};
use socketioxide::handler::ConnectHandler;

#[derive(Debug)]
struct Refused;

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("who are you?")
    }
}

async fn middleware(TryData(auth): TryData<Value>) -> Result<(), Refused> {
    match auth {
        Ok(a) if a.get("channelCustomerIdentifier").is_some() => Ok(()),
        _ => Err(Refused),
    }
}

async fn on_connect(s: SocketRef, TryData(auth): TryData<Value>) {
    let _ = s.emit("welcome", &auth.unwrap_or(Value::Null));
    s.on("echo", async |Data(v): Data<Value>, ack: AckSender| {
        let _ = ack.send(&v);
    });
    s.on("bye", async |s: SocketRef| {
        let _ = s.disconnect();
    });
}

async fn server() -> String {
    let (layer, io) = SocketIo::builder().req_path("/wcm/socket.io").build_layer();
    io.ns("/", on_connect.with(middleware));
    let app = axum::Router::new().layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}/wcm")
}

fn config(url: &str, auth: Value) -> SioConfig {
    let mut c = SioConfig::new(Vendor::Expertflow, url::Url::parse(url).unwrap()).with_auth(auth);
    c.backoff = BackoffPolicy::fixed(Duration::from_millis(50));
    c
}

async fn next(events: &mut SioEvents) -> SioEvent {
    tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .expect("an event within 5 s")
        .expect("the client is running")
}

#[tokio::test]
async fn connect_ack_event_and_server_disconnect() {
    let url = server().await;
    let (io, mut events) =
        SioClient::connect(config(&url, json!({"channelCustomerIdentifier": "c-1"}))).unwrap();
    let welcome = loop {
        if let SioEvent::Event { name, args, .. } = next(&mut events).await
            && name == "welcome"
        {
            break args;
        }
    };
    assert_eq!(welcome, vec![json!({"channelCustomerIdentifier": "c-1"})]);
    let ack = io
        .emit_with_ack("echo", &[json!({"code": 200})])
        .await
        .unwrap();
    assert_eq!(ack.wait().await.unwrap(), vec![json!({"code": 200})]);
    io.emit("bye", &[]).await.unwrap();
    loop {
        match next(&mut events).await {
            SioEvent::Disconnected { reason } => {
                assert_eq!(reason, SioDisconnect::ServerDisconnect);
            }
            SioEvent::Closed { reason } => {
                assert_eq!(reason, "io server disconnect");
                break;
            }
            SioEvent::Reconnecting { .. } | SioEvent::Connected { .. } => panic!("reconnected"),
            _ => {}
        }
    }
}

#[tokio::test]
async fn refused_connect_is_final() {
    let url = server().await;
    let (_io, mut events) = SioClient::connect(config(&url, json!({}))).unwrap();
    loop {
        match next(&mut events).await {
            SioEvent::ConnectError { message, .. } => {
                assert_eq!(message, "who are you?");
                break;
            }
            SioEvent::Connected { .. } => panic!("connected"),
            _ => {}
        }
    }
    loop {
        match next(&mut events).await {
            SioEvent::Closed { .. } => break,
            SioEvent::Reconnecting { .. } | SioEvent::Connected { .. } => panic!("retried"),
            _ => {}
        }
    }
}
